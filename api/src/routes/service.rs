//! The service's own routes: `/health`, `/openapi.json`, `/verify`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use careledger_app::actors::AccessRole;

use crate::error::ApiError;
use crate::extract::Caller;
use crate::limits::CancelOnDrop;
use crate::routes::blocking;
use crate::state::AppState;
use crate::wire::{HealthView, ProblemDetails, VerifyView};

/// Whether the ledger takes writes.
///
/// 200 while it does; 503 with the reason class (`damaged`: acknowledged events missing or
/// changed, found on open or by comparing the stored head with the anchor's last entry;
/// `storage`: a storage failure, which clears by itself once the cause is removed; `disk_full`:
/// the server opened on a full disk and holds writes until space returns, noticed by itself;
/// `behind_witnessed_checkpoint`: a restored ledger lacks acknowledged events). Without a
/// token, or with one of a role that neither audits nor operates, the answer is only that; an
/// auditor's or the operator's token also gets the head, the reason and what is missing.
#[utoipa::path(get, path = "/health", tag = "service",
    responses(
        (status = 200, description = "the ledger takes writes; the head for auditors", body = HealthView),
        (status = 401, description = "a token was sent and is not known", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the ledger takes no writes, and the reason's class; the details for auditors", body = HealthView),
    ))]
pub async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let details = match headers.get(axum::http::header::AUTHORIZATION) {
        None => false,
        Some(_) => match crate::extract::authenticate(&headers, &state).await {
            Ok(caller) => matches!(caller.role, AccessRole::Auditor | AccessRole::Operator),
            Err(e) => return e.into_response(),
        },
    };
    let ledger = state.app.ledger.clone();
    let head = ledger.head();
    let failure = match tokio::task::spawn_blocking(move || ledger.health()).await {
        Ok(result) => result.err(),
        Err(e) => Some(careledger_core::Error::Poisoned(format!(
            "the health check failed: {e}"
        ))),
    };
    // The ledger's own failure first (damage outranks a hold); then a hold on writes; then an
    // access log that cannot be written, which refuses every request for patient data.
    let unlogged = state.access_log.as_ref().and_then(|log| log.failure());
    let view = match (&failure, state.app.holds.current(), unlogged) {
        (None, Some(hold), _) => HealthView::held(&head, &hold),
        (None, None, Some(unlogged)) => HealthView::access_log_failed(&head, &unlogged),
        _ => HealthView::new(&head, failure.as_ref()),
    };
    let status = if view.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let view = if details {
        // A loss of acknowledged events recorded after a restore stays visible to auditors.
        match careledger_app::backup::recorded_loss(&state.app.path) {
            Ok(loss) => view.with_recorded_loss(loss.as_ref()),
            Err(e) => {
                tracing::error!(error = %e, "the recorded loss cannot be read");
                view
            }
        }
    } else {
        view.public()
    };
    (status, Json(view)).into_response()
}

/// This document: the OpenAPI 3.1 description of every route, derived from the router.
#[utoipa::path(get, path = "/openapi.json", tag = "service",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
pub async fn openapi() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_bytes(),
    )
        .into_response()
}

/// Verifies the whole chain, the per-patient index and the anchor.
///
/// 200 with the count and head hash only when the ledger is intact; otherwise 409 with the
/// position where it first fails. A full scan: for auditors only, one at a time (429 with
/// `Retry-After` while another runs), and stopped when it runs past its own time limit
/// (`Limits::verify_timeout`) or its client goes (408).
#[utoipa::path(get, path = "/verify", tag = "service", security(("bearer" = [])),
    responses(
        (status = 200, description = "the ledger is intact", body = VerifyView),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "only auditors verify the whole chain", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 408, description = "the scan did not reach the head within its time limit (`--verify-timeout-secs`) and was stopped (code `timed_out`)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "the ledger is not intact: where it first fails", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "another verification is running (code `verify_in_progress`), or this token sent too many requests (`rate_limited`); `Retry-After` says when to retry", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the ledger cannot be read now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<VerifyView>, ApiError> {
    state.app.may_verify(&caller)?;
    let slot = state.guards.start_verify()?;
    // Dropped with this future when the request's time limit ends it (or its client goes):
    // the scan sees the flag between chunks and stops, and only then gives the slot back.
    let cancel = Arc::new(AtomicBool::new(false));
    let _cancel_on_drop = CancelOnDrop(Arc::clone(&cancel));
    let app = state.app.clone();
    let limit = state.limits().verify_timeout;
    let scan = blocking(move || {
        let _slot = slot;
        Ok(app.verify(&caller, &cancel)?)
    });
    let Ok(report) = tokio::time::timeout(limit, scan).await else {
        return Err(ApiError::TimedOut(format!(
            "the verification did not reach the head within {} s and was stopped; the \
             operator sets the limit with --verify-timeout-secs, or runs `careledger verify` \
             with the server stopped",
            limit.as_secs_f64()
        )));
    };
    let Some(report) = report? else {
        return Err(ApiError::Unavailable(
            "the verification was stopped before it reached the head".into(),
        ));
    };
    if let Some(problem) = &report.problem {
        return Err(ApiError::NotIntact {
            detail: problem.to_string(),
            position: problem.position,
            verified: report.verified,
        });
    }
    Ok(Json(VerifyView::from(&report)))
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use careledger_app::actors::{AccessRole, RegisteredActor};
    use careledger_core::ids::{ActorId, Text};

    use crate::state::AppState;

    async fn verify_as(state: &AppState, token: &str) -> axum::response::Response {
        let request = Request::get("/verify")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        crate::app(state.clone()).oneshot(request).await.unwrap()
    }

    /// A second verification while one runs is told to come back later, and may once the
    /// first has ended.
    #[tokio::test]
    async fn one_verification_runs_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let data = careledger_app::DataDir::open(dir.path()).unwrap();
        let auditor = RegisteredActor::new(
            ActorId::parse("auditor-1").unwrap(),
            Text::new("Auditor").unwrap(),
            AccessRole::Auditor,
        );
        let token = data.actors.add(auditor).unwrap();
        let state = AppState::start(&data);

        let running = state.guards.start_verify().unwrap();
        let refused = verify_as(&state, &token).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.headers()["retry-after"], "10");
        let body = axum::body::to_bytes(refused.into_body(), usize::MAX)
            .await
            .unwrap();
        let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(problem["code"], "verify_in_progress", "{problem}");

        drop(running);
        assert_eq!(verify_as(&state, &token).await.status(), StatusCode::OK);
    }
}
