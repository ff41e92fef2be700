//! Extractors: the authenticated caller, a readable patient from the path, the write headers.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};

use careledger_app::actors::RegisteredActor;
use careledger_core::ids::PatientId;
use careledger_core::ExpectedRevision;

use crate::error::ApiError;
use crate::state::AppState;
use crate::wire;
use crate::MAX_BODY_BYTES;

/// The authenticated caller: by a careledger token, or by an OpenID Connect access token whose
/// subject reaches a registered actor.
pub struct Caller(pub RegisteredActor);

/// The caller the access log's middleware authenticated, kept on the request so that the
/// handler's [`Caller`] does not look the token up again.
#[derive(Clone)]
pub(crate) struct Authenticated(pub(crate) RegisteredActor);

/// The patient of the path (`/patients/{patient}/...`) as the access log's middleware read it,
/// and whether the caller it authenticated may read them (the ground it recorded), kept on the
/// request so that [`Readable`] neither parses the path nor looks the care team up again.
#[derive(Clone)]
pub(crate) struct PathPatient {
    pub(crate) patient: PatientId,
    pub(crate) granted: bool,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = match parts.extensions.get::<Authenticated>() {
            Some(Authenticated(actor)) => actor.clone(),
            None => authenticate(&parts.headers, state).await?,
        };
        state.guards.admit(&caller.id)?;
        Ok(Caller(caller))
    }
}

/// The registered actor whose bearer token the request's `Authorization` header carries: a
/// careledger token, or an OpenID Connect access token whose subject reaches a registered
/// actor. The per-token rate limit is the `Caller` extractor's; a caller of this alone
/// (`/health`) is not counted.
pub async fn authenticate(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<RegisteredActor, ApiError> {
    let _authenticating =
        careledger_core::timing::start(careledger_core::timing::Phase::Authenticate);
    let header = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::Unauthenticated(
            "send an Authorization: Bearer <token> header; `careledger actors add` creates a token"
                .into(),
        )
    })?;
    let token = header.to_str().ok().and_then(bearer_token).ok_or_else(|| {
        ApiError::Unauthenticated("the Authorization header must be \"Bearer <token>\"".into())
    })?;
    if !crate::oidc::looks_like_jwt(token) {
        return Ok(state.app.authenticate(token)?);
    }
    let Some(oidc) = &state.oidc else {
        return Err(ApiError::InvalidToken {
            code: "oidc_not_configured".into(),
            message: "the bearer token is a JWT, but this server accepts no OpenID Connect access \
                      tokens (serve --oidc-issuer ...); use a careledger token"
                .into(),
        });
    };
    let subject = oidc.verify(token).await?;
    Ok(state.app.authenticate_subject(&subject)?)
}

/// The token of an `Authorization: Bearer <token>` header; the scheme's name is matched
/// case-insensitively (RFC 9110 §11.1).
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A caller who may read the patient named in the path (`/patients/{patient}/...`).
pub struct Readable {
    /// The caller.
    pub caller: RegisteredActor,
    /// The patient.
    pub patient: PatientId,
}

impl FromRequestParts<AppState> for Readable {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(caller) = Caller::from_request_parts(parts, state).await?;
        if let Some(PathPatient { patient, granted }) = parts.extensions.get::<PathPatient>() {
            if !granted {
                // Refused: asked again for the refusal's words.
                state.app.may_read(&caller, patient)?;
            }
            return Ok(Readable {
                caller,
                patient: patient.clone(),
            });
        }
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::Malformed(e.to_string()))?;
        let raw = params
            .iter()
            .find(|(name, _)| name == "patient")
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| ApiError::NotFound("no patient in this path".into()))?;
        let patient = wire::patient_id(raw)?;
        state.app.may_read(&caller, &patient)?;
        Ok(Readable { caller, patient })
    }
}

/// The expected revision of an `If-Match` header, if one was sent.
pub fn if_match(headers: &HeaderMap) -> Result<Option<ExpectedRevision>, ApiError> {
    headers
        .get(header::IF_MATCH)
        .map(|v| {
            let raw = v
                .to_str()
                .map_err(|_| ApiError::Malformed("If-Match must be text".into()))?;
            Ok(wire::expected_revision(raw)?)
        })
        .transpose()
}

/// The `Idempotency-Key` header, if one was sent.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::Malformed("Idempotency-Key must be text".into()))
        })
        .transpose()
}

/// The bytes of a JSON body: the content type must say so, and it must fit the limit.
pub fn json_bytes(
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
            "the body exceeds {MAX_BODY_BYTES} bytes; send fewer commands per request"
        )),
        _ => ApiError::Malformed(format!("the body could not be read: {e}")),
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::UnsupportedMediaType(
            "send the body as Content-Type: application/json".into(),
        ));
    }
    Ok(body)
}

/// Query parameters read into `T`, refused as a problem (400) naming what is wrong.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(q)| Query(q))
            .map_err(|e| {
                ApiError::Malformed(format!("the query is not understood: {}", e.body_text()))
            })
    }
}

/// Parses a non-negative whole number from a query parameter or header.
pub fn parse_u64(name: &str, raw: Option<&str>, default: u64) -> Result<u64, ApiError> {
    match raw {
        None => Ok(default),
        Some(r) => r.trim().parse().map_err(|_| {
            ApiError::Malformed(format!(
                "{name} must be a non-negative whole number, got {r:?}"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case_and_nothing_else_is() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
