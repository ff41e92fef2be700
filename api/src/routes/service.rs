//! The service's own routes: `/health`, `/openapi.json`, `/verify`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::Caller;
use crate::routes::blocking;
use crate::state::AppState;

/// 200 while the ledger takes writes; 503 with the reason class (`damaged`: acknowledged
/// events missing or changed, found on open or by comparing the stored head with the anchor's
/// last entry; `storage`: a storage failure, which clears by itself once the cause is removed).
pub async fn health(State(state): State<AppState>) -> Response {
    let ledger = state.app.ledger.clone();
    let head = ledger.head();
    let checked = tokio::task::spawn_blocking(move || ledger.health()).await;
    let failure = match checked {
        Ok(result) => result.err(),
        Err(e) => Some(careledger_core::Error::Storage(format!(
            "health check failed: {e}"
        ))),
    };
    match failure {
        None => Json(json!({"status": "ok", "head_position": head.position, "head_hash": head.hash.to_hex()})).into_response(),
        Some(careledger_core::Error::Damaged(damage)) => {
            let body = json!({"status": "unhealthy", "class": "damaged", "reason": damage.to_string(),
                "head_position": head.position, "last_anchored_position": damage.last_anchored,
                "missing_events": damage.missing});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
        Some(other) => {
            let body = json!({"status": "unhealthy", "class": "storage", "reason": other.to_string(), "head_position": head.position});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// The OpenAPI document.
pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

/// Verifies the whole chain: 200 only for an intact ledger, else 409 naming the position.
pub async fn verify(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let app = state.app.clone();
    let report = blocking(move || Ok(app.verify(&caller)?)).await?;
    if let Some(problem) = &report.problem {
        return Err(ApiError::NotIntact {
            detail: problem.to_string(),
            position: problem.position,
            verified: report.verified,
        });
    }
    Ok(Json(json!({
        "intact": report.is_intact(),
        "verified": report.verified,
        "head_hash": report.head_hash.to_hex(),
        "problem": Value::Null,
    })))
}
