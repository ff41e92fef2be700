//! OpenID Connect access tokens (RFC 9068, JWT profile for OAuth 2.0 access tokens) as bearer
//! tokens, besides careledger's own.
//!
//! A token is accepted when its header says it is an access token (`typ` `at+jwt` or
//! `application/at+jwt`, so an ID token is refused), it is signed with an asymmetric algorithm
//! (never `none`, never HMAC: the key is public), by a key of the issuer's JWKS named by its
//! `kid`, and its `iss`, `aud`, `exp`, `nbf` and `iat` hold with [`LEEWAY_SECS`] of leeway. Its
//! `iss` and `sub` then name the registered actor it acts as; the actor's role and organisation
//! come from the registry, never from the token's claims.
//!
//! The keys come from a file or an `https://` (or, for a local sidecar, `http://`) URL, trusted
//! through the system's CAs or the operator's CA file, and are read again when a token names an
//! unknown `kid`, at most once every [`REFRESH_INTERVAL`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use base64::Engine as _;
use http_body_util::Full;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use careledger_app::actors::OidcSubject;

use crate::client::{check_url, HttpClient};
use crate::error::ApiError;

/// Leeway on `exp`, `nbf` and `iat`, for clocks slightly apart.
pub const LEEWAY_SECS: u64 = 30;
/// The shortest time between two readings of the keys prompted by unknown `kid`s.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);
/// The largest JWKS document read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long reading the JWKS over HTTP may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the issuer's keys are read from.
#[derive(Clone, Debug)]
pub enum JwksSource {
    /// A JWKS document on disk.
    File(PathBuf),
    /// A JWKS document served over HTTPS (`https://…`), or plain HTTP from a local sidecar.
    Url(String),
}

/// The accepted issuer and audience, and where their keys are.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The issuer (`iss`) the tokens must name, exactly.
    pub issuer: String,
    /// The audience (`aud`) the tokens must include: this server.
    pub audience: String,
    /// The issuer's keys.
    pub jwks: JwksSource,
    /// CAs (PEM) trusted for an `https://` JWKS besides the system's: a hospital's own CA.
    pub ca_file: Option<PathBuf>,
}

/// Validates access tokens against one issuer's keys.
pub struct OidcVerifier {
    config: OidcConfig,
    keys: parking_lot::RwLock<Vec<Jwk>>,
    /// When the keys were last read for an unknown `kid`; one reading at a time.
    refreshed: tokio::sync::Mutex<Option<Instant>>,
    client: HttpClient,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The claims read from an access token; `aud`, `exp` and `nbf` are checked by the validation.
#[derive(Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    iat: Option<i64>,
}

/// A token refused, with its code and what to do.
fn refuse(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::InvalidToken {
        code: code.into(),
        message: message.into(),
    }
}

/// Whether a bearer token has the shape of a JWT (three dot-separated parts); careledger's own
/// tokens are hex.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

impl OidcVerifier {
    /// A verifier for `config`, its keys read once now. A file that cannot be read or parsed is
    /// an error; a URL that cannot be reached now is logged and read again on the first token.
    pub async fn start(config: OidcConfig) -> Result<OidcVerifier, String> {
        // One backend is compiled in (`rust_crypto`); naming it keeps the choice explicit.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        if config.issuer.trim().is_empty() || config.audience.trim().is_empty() {
            return Err("--oidc-issuer and --oidc-audience must not be empty".into());
        }
        if let JwksSource::Url(url) = &config.jwks {
            check_url(url).map_err(|e| format!("--oidc-jwks-url: {e}"))?;
        }
        let client = HttpClient::new(config.ca_file.as_deref(), "--oidc-ca-file", FETCH_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let verifier = OidcVerifier {
            config,
            keys: parking_lot::RwLock::new(Vec::new()),
            refreshed: tokio::sync::Mutex::new(None),
            client,
        };
        match (verifier.read_keys().await, &verifier.config.jwks) {
            (Ok(keys), _) => *verifier.keys.write() = keys,
            (Err(e), JwksSource::File(_)) => return Err(e),
            (Err(e), JwksSource::Url(_)) => {
                tracing::warn!(error = %e, "the OpenID Connect keys could not be read; read again on the first token")
            }
        }
        Ok(verifier)
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Reads the JWKS document: the keys that parse (keys of unknown types are skipped).
    async fn read_keys(&self) -> Result<Vec<Jwk>, String> {
        let bytes = match &self.config.jwks {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("reading the JWKS {}: {e}", path.display()))?,
            JwksSource::Url(url) => self.fetch(url).await?,
        };
        #[derive(Deserialize)]
        struct RawSet {
            keys: Vec<serde_json::Value>,
        }
        let raw: RawSet = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the JWKS is not a JSON Web Key Set: {e}"))?;
        let keys: Vec<Jwk> = raw
            .keys
            .into_iter()
            .filter_map(|k| match serde_json::from_value::<Jwk>(k) {
                Ok(key) => Some(key),
                Err(e) => {
                    tracing::warn!(error = %e, "a JWKS key of an unknown kind is skipped");
                    None
                }
            })
            .collect();
        Ok(keys)
    }

    async fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let request = axum::http::Request::get(url)
            .header(axum::http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("{url}: {e}"))?;
        let answer = self
            .client
            .send(request, MAX_JWKS_BYTES, FETCH_TIMEOUT)
            .await?;
        if !answer.status.is_success() {
            return Err(format!("{url} answered {}", answer.status));
        }
        Ok(answer.body.to_vec())
    }

    /// The key named `kid` (the only key when the token names none), reading the keys again
    /// when it is unknown and the last reading is at least [`REFRESH_INTERVAL`] ago.
    async fn key(&self, kid: Option<&str>) -> Option<Jwk> {
        let find = |keys: &[Jwk]| -> Option<Jwk> {
            match kid {
                Some(kid) => keys
                    .iter()
                    .find(|k| k.common.key_id.as_deref() == Some(kid))
                    .cloned(),
                None if keys.len() == 1 => keys.first().cloned(),
                None => None,
            }
        };
        let found = find(self.keys.read().as_slice());
        if found.is_some() {
            return found;
        }
        let mut refreshed = self.refreshed.lock().await;
        // Another request may have read them while this one waited.
        let found = find(self.keys.read().as_slice());
        if found.is_some() {
            return found;
        }
        if refreshed.is_some_and(|at| at.elapsed() < REFRESH_INTERVAL) {
            return None;
        }
        *refreshed = Some(Instant::now());
        match self.read_keys().await {
            Ok(keys) => {
                let key = find(&keys);
                *self.keys.write() = keys;
                key
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the OpenID Connect keys again failed");
                None
            }
        }
    }

    /// Validates an access token and returns the subject it names (`iss`, `sub`).
    pub async fn verify(&self, token: &str) -> Result<OidcSubject, ApiError> {
        let header = raw_header(token)?;
        let alg = header["alg"].as_str().unwrap_or_default();
        if alg.eq_ignore_ascii_case("none") {
            return Err(refuse(
                "oidc_alg_refused",
                "the access token is unsigned (alg none); only tokens signed by the issuer are \
                 accepted",
            ));
        }
        if alg.to_ascii_uppercase().starts_with("HS") {
            return Err(refuse(
                "oidc_alg_refused",
                format!(
                    "the access token is signed with {alg}, an HMAC algorithm (a shared \
                     secret); only asymmetric algorithms (RS256, PS256, ES256, EdDSA, ...) \
                     with the issuer's published keys are accepted"
                ),
            ));
        }
        let typ = header["typ"].as_str().unwrap_or("(none)");
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(refuse(
                "oidc_not_access_token",
                format!(
                    "the token's typ is {typ:?}, not at+jwt: it is not an access token (an ID \
                     token is never a bearer token); send the access token the issuer gave \
                     for this API (RFC 9068)"
                ),
            ));
        }
        let parsed = jsonwebtoken::decode_header(token).map_err(|e| {
            refuse(
                "oidc_alg_refused",
                format!("the access token's header is not accepted ({e}); alg {alg:?}"),
            )
        })?;
        let kid = parsed.kid.as_deref();
        let key = self.key(kid).await.ok_or_else(|| {
            refuse(
                "oidc_unknown_key",
                format!(
                    "the access token is signed by key {}, which is not among the issuer's \
                     keys (read again at most every {} s); is it from another issuer?",
                    kid.unwrap_or("(no kid)"),
                    REFRESH_INTERVAL.as_secs()
                ),
            )
        })?;
        if let Some(key_alg) = &key.common.key_algorithm {
            if format!("{key_alg:?}") != format!("{:?}", parsed.alg) {
                return Err(refuse(
                    "oidc_alg_refused",
                    format!("the access token says alg {alg}, but its key is for {key_alg:?}"),
                ));
            }
        }
        let decoding = DecodingKey::from_jwk(&key).map_err(|e| {
            refuse(
                "oidc_unknown_key",
                format!("the issuer's key {} cannot be used: {e}", kid.unwrap_or("")),
            )
        })?;
        let claims = self.validate(token, parsed.alg, &decoding)?;
        Ok(OidcSubject {
            issuer: claims.iss,
            subject: claims.sub,
        })
    }

    fn validate(&self, token: &str, alg: Algorithm, key: &DecodingKey) -> Result<Claims, ApiError> {
        use jsonwebtoken::errors::ErrorKind as K;
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        validation.set_issuer(&[self.config.issuer.as_str()]);
        validation.set_audience(&[self.config.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| match e
            .kind()
        {
            K::ExpiredSignature => refuse(
                "oidc_expired",
                "the access token has expired (exp); get a new one from the issuer",
            ),
            K::ImmatureSignature => refuse(
                "oidc_not_yet_valid",
                "the access token is not valid yet (nbf); check the clocks",
            ),
            K::InvalidIssuer => refuse(
                "oidc_wrong_issuer",
                format!(
                    "the access token is of another issuer; this server accepts tokens of \
                         {}",
                    self.config.issuer
                ),
            ),
            K::InvalidAudience => refuse(
                "oidc_wrong_audience",
                format!(
                    "the access token is not for this server: its aud does not include {}",
                    self.config.audience
                ),
            ),
            K::MissingRequiredClaim(claim) => refuse(
                "oidc_claim_missing",
                format!("the access token has no {claim} claim"),
            ),
            K::InvalidSignature => refuse(
                "oidc_bad_signature",
                "the access token's signature does not verify under the issuer's key",
            ),
            _ => refuse(
                "oidc_invalid",
                format!("the access token is not accepted: {e}"),
            ),
        })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        match data.claims.iat {
            None => Err(refuse(
                "oidc_claim_missing",
                "the access token has no iat claim (RFC 9068 requires it)",
            )),
            Some(iat) if iat > now + LEEWAY_SECS as i64 => Err(refuse(
                "oidc_not_yet_valid",
                "the access token was issued in the future (iat); check the clocks",
            )),
            Some(_) => Ok(data.claims),
        }
    }
}

/// The token's header as JSON, read before anything else so that `alg none` and HMAC are
/// refused by name.
fn raw_header(token: &str) -> Result<serde_json::Value, ApiError> {
    let malformed = || {
        refuse(
            "oidc_malformed",
            "the bearer token looks like a JWT but its header cannot be read",
        )
    };
    let first = token.split('.').next().ok_or_else(malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .map_err(|_| malformed())?;
    let header: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    if !header.is_object() {
        return Err(malformed());
    }
    Ok(header)
}
