//! Notify-the-other-party messages: a patient's notifications, and acknowledging one.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use careledger_core::record::Timestamp;
use careledger_core::role::Line;
use careledger_core::ExpectedRevision;
use careledger_projections::notifications::{self, Which};

use crate::dto;
use crate::error::ApiError;
use crate::extract::{idempotency_key, if_match, Caller, Readable};
use crate::routes::{blocking, events::written};
use crate::state::AppState;
use crate::view;

/// The notifications' filter.
#[derive(Deserialize)]
pub struct NotificationQuery {
    status: Option<String>,
}

/// `GET /patients/{patient}/notifications`: the caller's line's notifications (both lines'
/// for an auditor).
pub async fn patient_notifications(
    State(state): State<AppState>,
    Readable { caller, patient }: Readable,
    Query(q): Query<NotificationQuery>,
) -> Result<Json<Value>, ApiError> {
    let which = match q.status.as_deref().unwrap_or("open") {
        "open" => Which::Open,
        "overdue" => Which::Overdue,
        "all" => Which::All,
        other => {
            return Err(ApiError::Malformed(format!(
                "status {other:?} is unknown; use open, overdue or all"
            )))
        }
    };
    let config = state.app.projections.config();
    let now = Timestamp::now();
    let lines: Vec<Line> = match caller.line() {
        Some(line) => vec![line],
        None => vec![Line::First, Line::Second],
    };
    let list: Vec<Value> = state.app.with_view(&patient, |v| {
        lines
            .into_iter()
            .flat_map(|line| notifications::for_line(v, line, which, config, now))
            .map(|n| view::notification(n, n.is_overdue(config, now)))
            .collect()
    })?;
    Ok(Json(json!({"notifications": list})))
}

/// `POST /patients/{patient}/notifications/{notification}/ack`: acknowledges the caller's
/// notification; answered as an append.
pub async fn acknowledge(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((patient, notification)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let patient = dto::patient(&patient)?;
    state.app.may_write(&caller, &patient)?;
    let expected = if_match(&headers)?.unwrap_or(ExpectedRevision::Any);
    let key = idempotency_key(&headers)?;
    let app = state.app.clone();
    let outcome =
        blocking(move || Ok(app.acknowledge(&caller, patient, &notification, expected, key)?))
            .await?;
    written(&state, outcome).await
}
