//! Signing in to the pages with the identity provider: the OpenID Connect authorization-code
//! flow with PKCE (RFC 7636, `S256`).
//!
//! `GET /ui/signin/oidc` draws a `state` and a code verifier, keeps the verifier on the server
//! under the state (10 minutes), binds the state to the browser in the `careledger_oidc` cookie,
//! and sends the browser to the provider's authorization endpoint with the verifier's
//! challenge. The provider sends it back to `GET /ui/signin/oidc/callback` with a code; the
//! server checks the state against the cookie, exchanges the code and the verifier at the
//! token endpoint (over `https://`, trusting the system's CAs and `--oidc-ca-file`; or plain
//! `http://` from a local proxy or sidecar, as the JWKS URL), validates
//! the access token as the API does (`OidcVerifier`), and starts a session for the actor the
//! token's subject reaches. Each page request validates that access token again, so the
//! session ends when it expires or its actor is revoked.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use http_body_util::Full;
use maud::html;
use parking_lot::Mutex;
use serde::Deserialize;
use sha2::Digest;

use super::session::{self, SESSION_COOKIE};
use super::{error_page, html, layout, PageLang};
use crate::error::ApiError;
use crate::state::AppState;

/// The state cookie: it must come back on the provider's redirect, a cross-site navigation, so
/// it is `SameSite=Lax` (the session cookie stays `Strict`).
pub const STATE_COOKIE: &str = "careledger_oidc";
/// How long a sign-in at the provider may take.
const PENDING_LIFETIME: Duration = Duration::from_secs(600);
/// Sign-ins under way at most; beyond that the oldest is dropped.
const MAX_PENDING: usize = 10_000;
/// The longest token-endpoint answer read.
const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// How long the token endpoint has to answer.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the provider's endpoints are and who this server is to it.
#[derive(Clone, Debug)]
pub struct OidcLoginSettings {
    /// The client id registered at the provider for these pages.
    pub client_id: String,
    /// The provider's authorization endpoint (the browser goes there).
    pub authorization_endpoint: String,
    /// The provider's token endpoint, `https://` (or plain `http://` from a local proxy or
    /// sidecar): this server calls it.
    pub token_endpoint: String,
    /// CAs (PEM) trusted for an `https://` token endpoint besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

/// The pages' OpenID Connect sign-in.
pub struct OidcLogin {
    settings: OidcLoginSettings,
    redirect_uri: String,
    pending: Mutex<HashMap<String, (String, Instant)>>,
    client: crate::client::HttpClient,
}

impl OidcLogin {
    /// The sign-in for `settings`, its callback under `public_url`.
    pub fn new(settings: OidcLoginSettings, public_url: &str) -> Result<OidcLogin, String> {
        crate::client::check_url(&settings.token_endpoint)
            .map_err(|e| format!("--oidc-token-endpoint: {e}"))?;
        if settings.client_id.trim().is_empty() {
            return Err("--oidc-client-id must not be empty".into());
        }
        let client = crate::client::HttpClient::new(
            settings.ca_file.as_deref(),
            "--oidc-ca-file",
            TOKEN_TIMEOUT,
        )
        .map_err(|e| e.to_string())?;
        Ok(OidcLogin {
            redirect_uri: format!(
                "{}/ui/signin/oidc/callback",
                public_url.trim_end_matches('/')
            ),
            settings,
            pending: Mutex::new(HashMap::new()),
            client,
        })
    }

    fn remember(&self, state: String, verifier: String) {
        let mut pending = self.pending.lock();
        pending.retain(|_, (_, at)| at.elapsed() < PENDING_LIFETIME);
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(state, (verifier, Instant::now()));
    }

    fn take(&self, state: &str) -> Option<String> {
        self.pending
            .lock()
            .remove(state)
            .filter(|(_, at)| at.elapsed() < PENDING_LIFETIME)
            .map(|(verifier, _)| verifier)
    }

    /// Exchanges `code` and its verifier for an access token.
    async fn exchange(&self, code: &str, verifier: &str) -> Result<String, String> {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("client_id", self.settings.client_id.as_str()),
            ("code_verifier", verifier),
        ]
        .iter()
        .map(|(k, v)| format!("{k}={}", form_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
        let request = hyper::Request::post(&self.settings.token_endpoint)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(form)))
            .map_err(|e| e.to_string())?;
        let answer = self
            .client
            .send(request, MAX_TOKEN_BYTES, TOKEN_TIMEOUT)
            .await
            .map_err(|e| format!("the token endpoint: {e}"))?;
        let (status, body) = (answer.status, answer.body);
        if !status.is_success() {
            return Err(format!(
                "the token endpoint refused the code ({status}): {}",
                String::from_utf8_lossy(&body)
            ));
        }
        #[derive(Deserialize)]
        struct TokenAnswer {
            access_token: String,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| format!("the token endpoint's answer has no access_token: {e}"))?;
        Ok(answer.access_token)
    }
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The S256 challenge of a code verifier: base64url(SHA-256(verifier)), unpadded.
pub fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier))
}

fn not_configured() -> ApiError {
    ApiError::NotFound(
        "this server signs in with careledger tokens only (no --oidc-client-id)".into(),
    )
}

/// `GET /ui/signin/oidc`: to the provider, with a fresh state and PKCE challenge.
pub async fn start(State(state): State<AppState>, lang: PageLang) -> Response {
    let Some(login) = state.oidc_login.clone() else {
        return error_page(lang.lang, &not_configured());
    };
    let (flow, verifier) = match (session::random_hex(), session::random_hex()) {
        (Ok(flow), Ok(verifier)) => (flow, verifier),
        (Err(e), _) | (_, Err(e)) => return error_page(lang.lang, &ApiError::from(e)),
    };
    let url = format!(
        "{}{}response_type=code&client_id={}&redirect_uri={}&scope=openid&state={flow}\
         &code_challenge={}&code_challenge_method=S256",
        login.settings.authorization_endpoint,
        if login.settings.authorization_endpoint.contains('?') {
            '&'
        } else {
            '?'
        },
        form_encode(&login.settings.client_id),
        form_encode(&login.redirect_uri),
        challenge(&verifier),
    );
    login.remember(flow.clone(), verifier);
    let mut response = Redirect::to(&url).into_response();
    let cookie = format!(
        "{STATE_COOKIE}={flow}; Path=/ui/signin/oidc; HttpOnly; SameSite=Lax; Max-Age={}{}",
        PENDING_LIFETIME.as_secs(),
        if state.secure_cookies() {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// The provider's redirect back.
#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /ui/signin/oidc/callback`: the code for a session.
pub async fn callback(
    State(state): State<AppState>,
    lang: PageLang,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    let l = lang.lang;
    let refused = |message: String| {
        error_page(
            l,
            &ApiError::InvalidToken {
                code: "oidc_sign_in_refused".into(),
                message,
            },
        )
    };
    let (Some(login), Some(verifier_oidc)) = (state.oidc_login.clone(), state.oidc.clone()) else {
        return error_page(l, &not_configured());
    };
    if let Some(error) = back.error {
        return refused(format!("the identity provider answered {error}"));
    }
    let (Some(code), Some(flow)) = (back.code, back.state) else {
        return refused("the identity provider's answer has no code or no state".into());
    };
    let bound = session::cookie(&headers, STATE_COOKIE).unwrap_or("");
    if bound.is_empty() || !session::same_secret(bound, &flow) {
        return refused(
            "this sign-in was not started in this browser (the state does not match); start \
             again at /ui/signin"
                .into(),
        );
    }
    let Some(verifier) = login.take(&flow) else {
        return refused("this sign-in expired or was used already; start again".into());
    };
    let token = match login.exchange(&code, &verifier).await {
        Ok(token) => token,
        Err(e) => return refused(e),
    };
    let actor = match verifier_oidc.verify(&token).await {
        Ok(subject) => state.app.authenticate_subject(&subject),
        Err(e) => return error_page(l, &e),
    };
    if let Err(e) = actor {
        return error_page(l, &ApiError::from(e));
    }
    if let Some((old, _)) = session::session_of(&headers, &state) {
        state.sessions.end(&old);
    }
    let id = match state.sessions.start(token) {
        Ok(id) => id,
        Err(e) => return error_page(l, &ApiError::from(e)),
    };
    // The provider's redirect is a cross-site navigation, on which a browser withholds the
    // SameSite=Strict session cookie: a page of our own moves on to /ui, same-site.
    let title = l.pick("Aangemeld", "Signed in");
    let markup = layout::bare(
        l,
        title,
        html! {
            h1 { (title) }
            p { a #continue href="/ui" { (l.pick("Verder naar uw patiënten", "On to your patients")) } }
        },
    );
    let mut response = html(StatusCode::OK, lang, markup);
    let secure = state.secure_cookies();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str("0; url=/ui") {
        headers.insert(header::REFRESH, v);
    }
    for cookie in [
        session::set_cookie(
            SESSION_COOKIE,
            &id,
            session::SESSION_LIFETIME.as_secs(),
            secure,
        ),
        format!("{STATE_COOKIE}=; Path=/ui/signin/oidc; HttpOnly; SameSite=Lax; Max-Age=0"),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_challenge_is_rfc_7636s_s256() {
        // RFC 7636, appendix B.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
