//! Notify-the-other-party messages: a patient's notifications, and acknowledging one.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;

use careledger_core::record::Timestamp;
use careledger_core::role::Line;
use careledger_core::ExpectedRevision;
use careledger_projections::notifications;

use crate::error::ApiError;
use crate::extract::{idempotency_key, if_match, Caller, Query, Readable};
use crate::routes::{blocking_write, events::written};
use crate::state::AppState;
use crate::wire::{
    self, AppendOutcomeView, NotificationListView, NotificationQuery, NotificationView,
    ProblemDetails,
};

/// The notifications to the caller's line (to both lines for an auditor).
#[utoipa::path(get, path = "/patients/{patient}/notifications", tag = "notifications", security(("bearer" = [])),
    params(
        ("patient" = String, Path, description = "the patient (a BSN, or another id)", pattern = "^[A-Za-z0-9._:-]{1,64}$"),
        NotificationQuery,
    ),
    responses(
        (status = 200, description = "the notifications", body = NotificationListView),
        (status = 400, description = "a parameter is not understood", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "not in the care team, or no such patient", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn patient_notifications(
    State(state): State<AppState>,
    Readable { caller, patient }: Readable,
    Query(q): Query<NotificationQuery>,
) -> Result<Json<NotificationListView>, ApiError> {
    let which = q.which();
    let config = state.app.projections.config();
    let now = Timestamp::now();
    let lines: Vec<Line> = match caller.line() {
        Some(line) => vec![line],
        None => vec![Line::First, Line::Second],
    };
    Ok(Json(state.app.with_view(&patient, |v| {
        lines
            .into_iter()
            .flat_map(|line| notifications::for_line(v, line, which, config, now))
            .map(|n| NotificationView::new(n, n.is_overdue(config, now)))
            .collect()
    })?))
}

/// Acknowledges one of the caller's notifications (records a `notification_acknowledged`
/// event); answered as an append.
#[utoipa::path(post, path = "/patients/{patient}/notifications/{notification}/ack", tag = "notifications", security(("bearer" = [])),
    params(
        ("patient" = String, Path, description = "the patient (a BSN, or another id)", pattern = "^[A-Za-z0-9._:-]{1,64}$"),
        ("notification" = String, Path, description = "the notification's id: its causing position and recipient, e.g. n-42-second", pattern = "^n-[0-9]+(-(first|second|patient|care_group))?$"),
        ("If-Match" = Option<String>, Header, description = "the expected revision: a number, \"no_stream\" or \"any\""),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key writes once"),
    ),
    responses(
        (status = 201, description = "acknowledged and durable", body = AppendOutcomeView),
        (status = 200, description = "a retry of an acknowledgement already made", body = AppendOutcomeView),
        (status = 400, description = "the notification id or a header is malformed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "not in the care team, or not the notification's recipient", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "the expected revision or the idempotency key conflicts", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "no such notification, or already acknowledged or withdrawn", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the ledger takes no writes now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn acknowledge(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((patient, notification)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let patient = wire::patient_id(&patient)?;
    state.app.may_write(&caller, &patient)?;
    let expected = if_match(&headers)?.unwrap_or(ExpectedRevision::Any);
    let key = idempotency_key(&headers)?;
    let app = state.app.clone();
    let outcome = blocking_write(move || {
        Ok(app.acknowledge(&caller, patient, &notification, expected, key)?)
    })
    .await?;
    written(&state, outcome).await
}
