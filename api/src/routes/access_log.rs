//! The access log (NEN 7513): every access to patient data for auditors, a patient's own "who
//! looked at my record", and the access log's latest signed checkpoint. Nothing here writes:
//! the access log has no write route; the server alone records in it.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use careledger_app::access;
use careledger_app::access_log::{AccessFilter, AccessLog};

use crate::error::ApiError;
use crate::extract::{Caller, Query};
use crate::routes::blocking;
use crate::state::AppState;
use crate::wire::{
    self, AccessEntryView, AccessLogPageView, AccessLogQuery, PatientAccessLogQuery, ProblemDetails,
};

/// How long a read of the access log waits for the entries recorded before it to be durable.
const READ_WAITS: Duration = Duration::from_secs(2);

fn kept(state: &AppState) -> Result<Arc<AccessLog>, ApiError> {
    state.access_log.clone().ok_or_else(|| {
        ApiError::AccessLogUnavailable(
            "this server keeps no access log (it runs for measurements only, with \
             CARELEDGER_BENCH_NO_ACCESS_LOG=1)"
                .into(),
        )
    })
}

/// A page of the entries that pass `filter`, after every entry recorded before it is durable.
async fn page(
    log: Arc<AccessLog>,
    filter: AccessFilter,
    after: u64,
    limit: usize,
) -> Result<AccessLogPageView, ApiError> {
    blocking(move || {
        if !log.wait_recorded(READ_WAITS) {
            return Err(ApiError::AccessLogUnavailable(format!(
                "the access log did not write the latest entries within {} s{}; retry shortly",
                READ_WAITS.as_secs(),
                log.failure().map(|f| format!(" ({f})")).unwrap_or_default()
            )));
        }
        let durable = log.durable();
        let (entries, next_after) = log.list(&filter, after, limit)?;
        Ok(AccessLogPageView {
            entries: entries.iter().map(AccessEntryView::from).collect(),
            next_after,
            durable,
        })
    })
    .await
}

/// Every access to patient data, refused attempts included, oldest first (auditors).
///
/// Each entry says who (actor, role, organisation, or unauthenticated), which patient, what
/// (method, route, resource), when, the outcome (HTTP status), from where, with which client
/// system, and why the caller had access. Every request answered before this one is in it.
/// Reading it is itself recorded. Nothing in it can be changed or removed through the API.
#[utoipa::path(get, path = "/access-log", tag = "access log", security(("bearer" = [])),
    params(AccessLogQuery),
    responses(
        (status = 200, description = "a page of entries, oldest first", body = AccessLogPageView),
        (status = 400, description = "a parameter is not understood", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "not an auditor", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "a filter value is invalid", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the access log cannot be kept or read now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn access_log(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<AccessLogQuery>,
) -> Result<Json<AccessLogPageView>, ApiError> {
    access::may_read_access_log(&caller)?;
    let filter = q.filter()?;
    Ok(Json(
        page(kept(&state)?, filter, q.after(), q.limit()).await?,
    ))
}

/// Who accessed this patient's record: for the patient themself and for auditors.
///
/// The same entries as `/access-log?patient=`, oldest first; the care team does not see them.
#[utoipa::path(get, path = "/patients/{patient}/access-log", tag = "access log", security(("bearer" = [])),
    params(
        ("patient" = String, Path, description = "the patient (a BSN, or another id)", pattern = "^[A-Za-z0-9._:-]{1,64}$"),
        PatientAccessLogQuery,
    ),
    responses(
        (status = 200, description = "a page of entries, oldest first", body = AccessLogPageView),
        (status = 400, description = "a parameter is not understood", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "neither the patient themself nor an auditor", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "a filter value is invalid", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the access log cannot be kept or read now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn patient_access_log(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
    Query(q): Query<PatientAccessLogQuery>,
) -> Result<Json<AccessLogPageView>, ApiError> {
    let patient = wire::patient_id(&raw)?;
    access::may_read_access_log_of(&caller, &patient)?;
    let filter = q.filter(patient)?;
    Ok(Json(
        page(kept(&state)?, filter, q.after(), q.limit()).await?,
    ))
}

/// The access log's latest signed checkpoint: a C2SP tlog-checkpoint of its own origin
/// (`<origin>/access-log`) whose size is the number of entries and whose hash is the chain's
/// head hash (`docs/access-log.md`), signed with the log key under that origin.
#[utoipa::path(get, path = "/access-log/checkpoint", tag = "access log", security(("bearer" = [])),
    responses(
        (status = 200, description = "the signed note", body = String, content_type = "text/plain"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "no access log checkpoint has been signed yet", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "this server keeps no access log", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn access_log_checkpoint(
    State(state): State<AppState>,
    Caller(_caller): Caller,
) -> Result<Response, ApiError> {
    let note = kept(&state)?.latest_checkpoint().ok_or_else(|| {
        ApiError::NotFound(
            "no access log checkpoint has been signed yet; the server signs one with the ledger's \
             checkpoint settings and when it stops (none with --no-checkpoints)"
                .into(),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}
