//! A patient's read models: the plan, the series of one measure, the audit trail, the signals.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use careledger_core::quantity::Measure;
use careledger_core::record::Timestamp;
use careledger_projections::audit;
use careledger_projections::signals;

use crate::error::ApiError;
use crate::extract::{Query, Readable};
use crate::state::AppState;
use crate::wire::names::MeasureCode;
use crate::wire::{
    AuditQuery, AuditTrailView, MeasureSeriesView, PlanView, ProblemDetails, SignalListView,
};

/// The current care plan (IZP), with the provenance of every element.
///
/// What stands (entries marked entered in error count for nothing), the medication history,
/// the last values of each measure with their trend, and the corrections with who corrected,
/// when and why. Rendered once per change of the patient's record.
#[utoipa::path(get, path = "/patients/{patient}/plan", tag = "patients", security(("bearer" = [])),
    params(("patient" = String, Path, description = "the patient (a BSN, or another id)", pattern = "^[A-Za-z0-9._:-]{1,64}$")),
    responses(
        (status = 200, description = "the plan", body = PlanView),
        (status = 400, description = "the patient id is malformed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "not in the care team, or no such patient", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn plan(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
) -> Result<Response, ApiError> {
    let readings = state.app.projections.config().trend_readings;
    let bytes = state.app.with_view(&patient, |v| {
        let revision = v.plan.revision;
        match state.plans.get(&patient, revision) {
            Some(bytes) => Ok::<_, ApiError>(bytes),
            None => {
                let view = PlanView::new(&patient, &v.plan, readings);
                let bytes = Bytes::from(
                    serde_json::to_vec(&view).map_err(|e| ApiError::Internal(e.to_string()))?,
                );
                state.plans.put(patient.clone(), revision, bytes.clone());
                Ok(bytes)
            }
        }
    })??;
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// Every value of one measure, in clinical order.
///
/// Lab results and measurements by `occurred_at`, then position, with source and provenance;
/// entries marked entered in error are included and marked; the latest value that stands and
/// the trend. An unknown measure is 404, naming the known ones.
#[utoipa::path(get, path = "/patients/{patient}/measures/{measure}", tag = "patients", security(("bearer" = [])),
    params(
        ("patient" = String, Path, description = "the patient (a BSN, or another id)", pattern = "^[A-Za-z0-9._:-]{1,64}$"),
        ("measure" = MeasureCode, Path, description = "the measure"),
    ),
    responses(
        (status = 200, description = "the series", body = MeasureSeriesView),
        (status = 400, description = "the patient id is malformed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "not in the care team, or no such patient", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "no such measure; the detail names the known ones", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn measure_series(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
    Path(path): Path<(String, String)>,
) -> Result<Json<MeasureSeriesView>, ApiError> {
    let measure = Measure::parse(&path.1).map_err(|e| ApiError::NotFound(e.to_string()))?;
    let readings = state.app.projections.config().trend_readings;
    Ok(Json(state.app.with_view(&patient, |v| {
        MeasureSeriesView::new(&patient, &v.plan, measure, readings)
    })?))
}

/// The audit trail: who changed what, from what to what, when, in which role and line, why,
/// and whether the other side was told and acknowledged.
#[utoipa::path(get, path = "/patients/{patient}/audit", tag = "patients", security(("bearer" = [])),
    params(
        ("patient" = String, Path, description = "the patient (a BSN, or another id)", pattern = "^[A-Za-z0-9._:-]{1,64}$"),
        AuditQuery,
    ),
    responses(
        (status = 200, description = "the entries, oldest first", body = AuditTrailView),
        (status = 400, description = "a parameter is not understood", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "not in the care team, or no such patient", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "a filter value is invalid", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn audit_trail(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditTrailView>, ApiError> {
    let filter = q.filter()?;
    Ok(Json(state.app.with_view(&patient, |v| {
        AuditTrailView::new(&patient, audit::query(v, &filter))
    })?))
}

/// What needs attention now: duplicate lab work, annual lab due, target not met, home trends,
/// open and expired lab orders, an incomplete annual panel, a lead without its main
/// practitioner.
#[utoipa::path(get, path = "/patients/{patient}/signals", tag = "patients", security(("bearer" = [])),
    params(("patient" = String, Path, description = "the patient (a BSN, or another id)", pattern = "^[A-Za-z0-9._:-]{1,64}$")),
    responses(
        (status = 200, description = "the signals", body = SignalListView),
        (status = 400, description = "the patient id is malformed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "not in the care team, or no such patient", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn patient_signals(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
) -> Result<Json<SignalListView>, ApiError> {
    let config = state.app.projections.config();
    Ok(Json(state.app.with_view(&patient, |v| {
        signals::signals(v, config, Timestamp::now())
            .iter()
            .collect()
    })?))
}
