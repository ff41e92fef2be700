//! A patient's read models: the plan, the series of one measure, the audit trail, the signals.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use careledger_core::ids::ActorId;
use careledger_core::quantity::Measure;
use careledger_core::record::Timestamp;
use careledger_core::role::Line;
use careledger_projections::audit::{self, AuditFilter};
use careledger_projections::signals;

use crate::error::ApiError;
use crate::extract::Readable;
use crate::state::AppState;
use crate::view;

/// `GET /patients/{patient}/plan`: the current plan, rendered once per change.
pub async fn plan(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
) -> Result<Response, ApiError> {
    let readings = state.app.projections.config().trend_readings;
    let bytes = state.app.with_view(&patient, |v| {
        let revision = v.plan.revision;
        match state.plans.get(&patient, revision) {
            Some(bytes) => bytes,
            None => {
                let bytes = Bytes::from(view::plan(&patient, &v.plan, readings).to_string());
                state.plans.put(patient.clone(), revision, bytes.clone());
                bytes
            }
        }
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// `GET /patients/{patient}/measures/{measure}`: every value of one measure, in clinical order,
/// corrected ones marked; read as the plan is.
pub async fn measure_series(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
    Path((_, raw)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    // An unknown measure names no resource: 404, listing the measures there are.
    let measure = Measure::parse(&raw).map_err(|e| ApiError::NotFound(e.to_string()))?;
    let readings = state.app.projections.config().trend_readings;
    Ok(Json(state.app.with_view(&patient, |v| {
        view::measure_series(&patient, &v.plan, measure, readings)
    })?))
}

/// The audit trail's filters.
#[derive(Deserialize)]
pub struct AuditQuery {
    element: Option<String>,
    actor: Option<String>,
    line: Option<String>,
    from: Option<String>,
    until: Option<String>,
}

fn audit_filter(q: AuditQuery) -> Result<AuditFilter, ApiError> {
    let line = q
        .line
        .map(|l| match l.as_str() {
            "first" => Ok(Line::First),
            "second" => Ok(Line::Second),
            "patient" => Ok(Line::Patient),
            other => Err(ApiError::Malformed(format!(
                "line {other:?} is unknown; use first, second or patient"
            ))),
        })
        .transpose()?;
    let time = |raw: Option<String>| raw.map(|r| Timestamp::parse_rfc3339(&r)).transpose();
    Ok(AuditFilter {
        element: q.element,
        actor: q.actor.map(|a| ActorId::parse(&a)).transpose()?,
        line,
        from: time(q.from)?,
        until: time(q.until)?,
    })
}

/// `GET /patients/{patient}/audit`: who changed what, when, in which role and why.
pub async fn audit_trail(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = audit_filter(q)?;
    let entries: Vec<Value> = state.app.with_view(&patient, |v| {
        audit::query(v, &filter)
            .into_iter()
            .map(view::audit_entry)
            .collect()
    })?;
    Ok(Json(
        json!({"patient": patient.as_str(), "entries": entries}),
    ))
}

/// `GET /patients/{patient}/signals`: what needs attention now.
pub async fn patient_signals(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
) -> Result<Json<Value>, ApiError> {
    let config = state.app.projections.config();
    let list: Vec<Value> = state.app.with_view(&patient, |v| {
        signals::signals(v, config, Timestamp::now())
            .iter()
            .map(view::signal)
            .collect()
    })?;
    Ok(Json(json!({"signals": list})))
}
