//! Signing keys: an actor registers the public key of the client system that signs their
//! requests (RFC 9421, ed25519), as an event of the ledger's key stream.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use careledger_app::keys::KeyChange;
use careledger_core::ids::{ElementId, Text};

use crate::error::ApiError;
use crate::extract::{json_bytes, Caller};
use crate::routes::{blocking, events::written};
use crate::signature::base64_decode;
use crate::state::AppState;
use crate::wire::{AppendOutcomeView, ProblemDetails, RegisterKeyBody};

/// Registers a signing key for the caller: the public key of the client system (a GP
/// information system, a hospital EHR) that signs the caller's appends. Recorded as a
/// `signing_key_registered` event of the key stream (`careledger:keys`) in the caller's name;
/// answered as an append.
#[utoipa::path(post, path = "/actors/me/keys", tag = "keys", security(("bearer" = [])),
    request_body(content = RegisterKeyBody, content_type = "application/json"),
    responses(
        (status = 201, description = "registered and durable", body = AppendOutcomeView),
        (status = 400, description = "the body is malformed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "an auditor or subscriber registers no keys", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "the body is too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "a value is invalid, or the key id is taken", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the ledger takes no writes now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn register_key(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = json_bytes(&headers, body)?;
    let body: RegisterKeyBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Malformed(format!("the body is not a key registration: {e}")))?;
    let public_key: [u8; 32] = base64_decode(&body.public_key)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| ApiError::Unprocessable {
            code: "invalid_value".into(),
            message: "public_key: must be the 32-byte ed25519 public key in standard base64".into(),
        })?;
    let change = KeyChange::Register {
        key_id: ElementId::parse(&body.key_id)?,
        public_key,
        system: Text::new(body.system)?,
    };
    let reason = Text::new(body.reason.unwrap_or_default())?;
    let app = state.app.clone();
    let outcome = blocking(move || Ok(app.change_own_key(&caller, change, reason)?)).await?;
    written(&state, outcome).await
}
