//! Events: the global log, one patient's stream, and appending commands.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use careledger_app::Write;
use careledger_core::{AppendOutcome, ExpectedRevision};

use crate::error::ApiError;
use crate::extract::{idempotency_key, if_match, json_body, parse_u64, Caller, Readable};
use crate::routes::blocking;
use crate::state::AppState;
use crate::{dto, MAX_PAGE};

/// The query of a page of the global log (and of the stream).
#[derive(Deserialize)]
pub struct PageQuery {
    pub(crate) after: Option<String>,
    pub(crate) limit: Option<String>,
    pub(crate) patient: Option<String>,
}

/// `GET /events`: a page of the global log, the events the caller may see.
pub async fn global_log(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let after = parse_u64("after", q.after.as_deref(), 0)?;
    let limit = parse_u64("limit", q.limit.as_deref(), 100)?.clamp(1, MAX_PAGE as u64) as usize;
    let patient = q.patient.as_deref().map(dto::patient).transpose()?;
    let ledger = state.app.ledger.clone();
    let events = blocking(move || Ok(ledger.read_all(after, limit)?)).await?;
    let next_after = events.last().map_or(after, |e| e.position);
    let events: Vec<Value> = events
        .iter()
        .filter(|e| patient.as_ref().is_none_or(|p| *p == e.record.patient))
        .filter(|e| state.app.sees_events_of(&caller, &e.record.patient))
        .map(dto::recorded_event)
        .collect();
    Ok(Json(
        json!({"events": events, "next_after": next_after, "head": state.app.ledger.head().position}),
    ))
}

/// `POST /patients/{patient}/events`: appends commands atomically; 201 once durable (200 for
/// a replay of the same idempotency key), with the plan already showing them.
pub async fn append(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(patient): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let patient = dto::patient(&patient)?;
    let acting = state.app.may_write(&caller, &patient)?.line();
    let value = json_body(&headers, body)?;
    let parsed = dto::append_body(&value, acting)?;
    let write = Write {
        patient,
        expected: if_match(&headers)?
            .or(parsed.expected)
            .unwrap_or(ExpectedRevision::Any),
        submissions: parsed.submissions,
        idempotency_key: idempotency_key(&headers)?,
    };
    let app = state.app.clone();
    let outcome = blocking(move || Ok(app.append(&caller, write)?)).await?;
    written(&state, outcome).await
}

/// The answer to a write, once the read models show it (read your writes).
pub(crate) async fn written(
    state: &AppState,
    outcome: AppendOutcome,
) -> Result<Response, ApiError> {
    if let Some(last) = outcome.events.last() {
        state.app.projected(last.position).await;
    }
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = json!({
        "revision": outcome.revision,
        "replayed": outcome.replayed,
        "events": outcome.events.iter().map(|e| json!({
            "position": e.position, "revision": e.revision, "event_id": e.event_id.to_string(), "hash": e.hash.to_hex()
        })).collect::<Vec<_>>(),
        "warnings": outcome.warnings.iter().map(|w| json!({"code": w.code, "message": w.message})).collect::<Vec<_>>(),
    });
    let mut response = (status, Json(body)).into_response();
    if let Ok(etag) = header::HeaderValue::from_str(&format!("\"{}\"", outcome.revision)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// The query of one patient's stream.
#[derive(Deserialize)]
pub struct StreamQuery {
    from_revision: Option<String>,
    limit: Option<String>,
}

/// `GET /patients/{patient}/events`: the patient's events from a revision on.
pub async fn patient_events(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
    Query(q): Query<StreamQuery>,
) -> Result<Json<Value>, ApiError> {
    let from = parse_u64("from_revision", q.from_revision.as_deref(), 1)?;
    let limit = parse_u64("limit", q.limit.as_deref(), 100)?.clamp(1, MAX_PAGE as u64) as usize;
    let ledger = state.app.ledger.clone();
    let events = blocking(move || Ok(ledger.read_stream(&patient, from, limit)?)).await?;
    Ok(Json(
        json!({"events": events.iter().map(dto::recorded_event).collect::<Vec<_>>()}),
    ))
}
