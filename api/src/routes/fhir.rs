//! FHIR R4 under `/fhir`: a patient's `$everything` Bundle, the search by BSN, reads of single
//! resources and the `CapabilityStatement`, as `application/fhir+json`; errors are
//! `OperationOutcome`s. The mapping is `careledger-fhir`'s; who may read is the plan's
//! (`App::may_read`), checked once the patient behind the FHIR id is known.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use careledger_app::actors::RegisteredActor;
use careledger_core::ids::{Bsn, PatientId};
use careledger_core::record::{RecordedEvent, Timestamp};
use careledger_fhir::bundle::{self, key_of_id};
use careledger_fhir::model::{OperationOutcome, OperationOutcomeIssue, Resource};
use careledger_fhir::{capability, codes, CONTENT_TYPE};

use crate::error::ApiError;
use crate::extract::{Caller, Query};
use crate::routes::blocking;
use crate::state::AppState;

/// An error answered as a FHIR `OperationOutcome`, with the status the API gives it elsewhere.
#[derive(Debug)]
pub struct FhirError(pub ApiError);

impl From<ApiError> for FhirError {
    fn from(e: ApiError) -> Self {
        FhirError(e)
    }
}

impl From<careledger_app::AppError> for FhirError {
    fn from(e: careledger_app::AppError) -> Self {
        FhirError(e.into())
    }
}

impl From<careledger_core::Error> for FhirError {
    fn from(e: careledger_core::Error) -> Self {
        FhirError(e.into())
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let code = match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid",
            StatusCode::UNAUTHORIZED => "login",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not-found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::SERVICE_UNAVAILABLE => "transient",
            _ => "exception",
        };
        let diagnostics = match &self.0 {
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "an internal error; the server's log has the detail".to_owned()
            }
            other => other.to_string(),
        };
        let outcome = Resource::OperationOutcome(OperationOutcome {
            issue: vec![OperationOutcomeIssue {
                severity: "error".into(),
                code: code.into(),
                diagnostics: Some(diagnostics),
            }],
        });
        let body = serde_json::to_vec(&outcome).unwrap_or_default();
        (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
    }
}

/// The parameters of `$everything`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EverythingQuery {
    /// Only resources whose last change the ledger recorded at or after this instant
    /// (RFC 3339); the Patient is always included.
    #[serde(rename = "_since")]
    #[param(rename = "_since", value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
}

/// The parameters of the Patient search.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PatientSearchQuery {
    /// `http://fhir.nl/fhir/NamingSystem/bsn|{bsn}`, or
    /// `https://careledger.example/fhir/NamingSystem/patient-id|{id}` for a patient known by
    /// another id.
    pub identifier: String,
}

fn fhir_base(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic()))
        .unwrap_or("localhost");
    format!("http://{host}/fhir")
}

fn fhir_json(bytes: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], bytes).into_response()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, FhirError> {
    serde_json::to_vec(value).map_err(|e| FhirError(ApiError::Internal(e.to_string())))
}

/// The patient whose key starts a FHIR resource id, if the read models know them; the access
/// log names the patient of a FHIR request by it. No authorisation: see `readable_patient`.
pub(crate) fn patient_of_id(state: &AppState, id: &str) -> Option<PatientId> {
    patient_of_key(state, key_of_id(id)?)
}

fn patient_of_key(state: &AppState, key: &str) -> Option<PatientId> {
    // The read models index patients by this key (`careledger_projections::fhir_key`, the
    // same as `bundle::patient_key`).
    match state.app.projections.patient_by_fhir_key(key) {
        Ok(patient) => patient,
        Err(e) => {
            tracing::error!(error = %e, "reading the index of FHIR keys failed");
            None
        }
    }
}

/// The patient a FHIR id belongs to, when the caller may read them; one refusal for an id of
/// nobody and for a patient the caller may not read, as for the plan.
fn readable_patient(
    state: &AppState,
    caller: &RegisteredActor,
    id: &str,
) -> Result<PatientId, FhirError> {
    let key = key_of_id(id).ok_or_else(|| {
        ApiError::NotFound(format!(
            "{id:?} is not a resource id of this server; ids start with the patient's 16-hex-digit key (find it with GET /fhir/Patient?identifier=http://fhir.nl/fhir/NamingSystem/bsn|{{bsn}})"
        ))
    })?;
    let patient = patient_of_key(state, key).ok_or_else(ApiError::not_in_care_team)?;
    state.app.may_read(caller, &patient)?;
    Ok(patient)
}

/// The patient's recorded events, read off the async workers.
async fn events_of(state: &AppState, patient: &PatientId) -> Result<Vec<RecordedEvent>, FhirError> {
    let ledger = state.app.ledger.clone();
    let patient = patient.clone();
    Ok(blocking(move || Ok(ledger.read_stream(&patient, 1, usize::MAX)?)).await?)
}

/// Everything about one patient as a FHIR `searchset` Bundle (`Patient/$everything`).
///
/// The Patient (BSN as identifier), the care team's Practitioners, PractitionerRoles and
/// CareTeam, the CarePlan (IZP), a Goal per target and lifestyle goal, a MedicationRequest per
/// medication agreement, a ServiceRequest per lab order, an Observation per value, the
/// AllergyIntolerances and Conditions, a Communication per notification and a Provenance per
/// recorded event. Entries marked entered in error stay, with that status.
#[utoipa::path(get, path = "/fhir/Patient/{id}/$everything", tag = "fhir", security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "the Patient's resource id (the patient's key, never the BSN)", pattern = "^[A-Za-z0-9.-]{1,64}$"),
        EverythingQuery,
    ),
    responses(
        (status = 200, description = "the searchset Bundle", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "a parameter is not understood", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "no or an unknown token", body = Object, content_type = "application/fhir+json"),
        (status = 403, description = "not in the care team, or no such patient", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "not an id of this server", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "the ledger cannot be read now", body = Object, content_type = "application/fhir+json"),
    ))]
pub async fn everything(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
    uri: Uri,
    Path(id): Path<String>,
    query: Result<Query<EverythingQuery>, ApiError>,
) -> Result<Response, FhirError> {
    let Caller(caller) = caller?;
    let Query(query) = query?;
    let since = query
        .since
        .as_deref()
        .map(|raw| {
            Timestamp::parse_rfc3339(raw).map_err(|_| {
                ApiError::Malformed(format!(
                    "_since must be an instant such as 2026-01-31T12:00:00Z, got {raw:?}"
                ))
            })
        })
        .transpose()?;
    if key_of_id(&id).map(str::len) != Some(id.len()) {
        return Err(FhirError(ApiError::NotFound(format!(
            "{id:?} is not a Patient id; a Patient's id is its 16-hex-digit key"
        ))));
    }
    let patient = readable_patient(&state, &caller, &id)?;
    let events = events_of(&state, &patient).await?;
    let base = fhir_base(&headers);
    let self_url = format!("http://{}{}", base_host(&base), uri);
    let bytes = state.app.with_view(&patient, |view| {
        let request = careledger_fhir::Request {
            base: &base,
            self_url: &self_url,
            since,
        };
        to_json(&bundle::everything(&patient, view, &events, request))
    })??;
    Ok(fhir_json(bytes))
}

fn base_host(base: &str) -> &str {
    base.trim_start_matches("http://").trim_end_matches("/fhir")
}

/// Finds a patient by identifier: the BSN (`http://fhir.nl/fhir/NamingSystem/bsn|{bsn}`), or
/// careledger's id of a patient known by another one.
///
/// A `searchset` Bundle with the Patient, or with nothing when there is no such patient or the
/// caller may not read them (the two are not told apart). A BSN failing the 11-proof is 400.
#[utoipa::path(get, path = "/fhir/Patient", tag = "fhir", security(("bearer" = [])),
    params(PatientSearchQuery),
    responses(
        (status = 200, description = "the searchset Bundle: the Patient, or nothing", body = Object, content_type = "application/fhir+json"),
        (status = 400, description = "no identifier, another system, or a BSN failing the 11-proof", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "no or an unknown token", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "the ledger cannot be read now", body = Object, content_type = "application/fhir+json"),
    ))]
pub async fn search_patient(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Result<Caller, ApiError>,
    uri: Uri,
    query: Result<Query<PatientSearchQuery>, ApiError>,
) -> Result<Response, FhirError> {
    let Caller(caller) = caller?;
    let Query(query) = query.map_err(|e| {
        ApiError::Malformed(format!("{e}; search by identifier={}|{{bsn}}", codes::BSN))
    })?;
    let usage = format!(
        "search by identifier={}|{{bsn}} or identifier={}|{{id}}",
        codes::BSN,
        codes::PATIENT_ID
    );
    let identifier = query.identifier;
    let (system, value) = identifier
        .split_once('|')
        .ok_or_else(|| ApiError::Malformed(format!("{identifier:?} names no system: {usage}")))?;
    let patient = match system {
        codes::BSN => {
            Bsn::parse(value).map_err(|e| ApiError::Malformed(e.to_string()))?;
            PatientId::parse(value).map_err(|e| ApiError::Malformed(e.to_string()))?
        }
        codes::PATIENT_ID => {
            PatientId::parse(value).map_err(|e| ApiError::Malformed(e.to_string()))?
        }
        other => {
            return Err(FhirError(ApiError::Malformed(format!(
                "patients are not searched by {other:?}: {usage}"
            ))))
        }
    };
    let base = fhir_base(&headers);
    let self_url = format!("http://{}{}", base_host(&base), uri);
    let known = state.app.may_read(&caller, &patient).is_ok()
        && state.app.with_view(&patient, |_| ()).is_ok();
    if !known {
        return Ok(fhir_json(to_json(&bundle::empty_search(&self_url))?));
    }
    let events = events_of(&state, &patient).await?;
    let bytes = state.app.with_view(&patient, |view| {
        let request = careledger_fhir::Request {
            base: &base,
            self_url: &self_url,
            since: None,
        };
        to_json(&bundle::patient_search(&patient, view, &events, request))
    })??;
    Ok(fhir_json(bytes))
}

/// One resource by type and id, as it stands (`meta.versionId` is the ledger position of its
/// last change).
#[utoipa::path(get, path = "/fhir/{resource_type}/{id}", tag = "fhir", security(("bearer" = [])),
    params(
        ("resource_type" = String, Path, description = "the resource type", pattern = "^[A-Za-z]{1,32}$"),
        ("id" = String, Path, description = "the resource id", pattern = "^[A-Za-z0-9.-]{1,64}$"),
    ),
    responses(
        (status = 200, description = "the resource", body = Object, content_type = "application/fhir+json"),
        (status = 401, description = "no or an unknown token", body = Object, content_type = "application/fhir+json"),
        (status = 403, description = "not in the care team, or no such patient", body = Object, content_type = "application/fhir+json"),
        (status = 404, description = "no such resource, or a type this server does not serve", body = Object, content_type = "application/fhir+json"),
        (status = 503, description = "the ledger cannot be read now", body = Object, content_type = "application/fhir+json"),
    ))]
pub async fn read(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    Path((resource_type, id)): Path<(String, String)>,
) -> Result<Response, FhirError> {
    let Caller(caller) = caller?;
    if !capability::READABLE.contains(&resource_type.as_str()) {
        return Err(FhirError(ApiError::NotFound(format!(
            "this server serves no {resource_type:?}; it serves {} (GET /fhir/metadata)",
            capability::READABLE.join(", ")
        ))));
    }
    let patient = readable_patient(&state, &caller, &id)?;
    let events = events_of(&state, &patient).await?;
    let resource = state.app.with_view(&patient, |view| {
        bundle::read(&patient, view, &events, &resource_type, &id)
    })?;
    let resource = resource.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no {resource_type} {id:?}; GET /fhir/Patient/{{id}}/$everything lists the patient's resources"
        ))
    })?;
    Ok(fhir_json(to_json(&resource)?))
}

/// The CapabilityStatement: what this FHIR endpoint offers, exactly. Needs no token.
#[utoipa::path(get, path = "/fhir/metadata", tag = "fhir",
    responses((status = 200, description = "the CapabilityStatement", body = Object, content_type = "application/fhir+json")))]
pub async fn metadata(headers: HeaderMap) -> Result<Response, FhirError> {
    let statement = capability::statement(&fhir_base(&headers), env!("CARGO_PKG_VERSION"));
    Ok(fhir_json(to_json(&statement)?))
}
