//! Evidence a client checks for itself: the latest signed checkpoint with its cosignatures,
//! Merkle inclusion and consistency proofs against it, and one patient's export.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::error::ApiError;
use crate::extract::{Caller, Query};
use crate::routes::blocking;
use crate::state::AppState;
use crate::wire::{
    self, ConsistencyProofView, ConsistencyQuery, ExportView, InclusionProofView, InclusionQuery,
    ProblemDetails,
};

/// The latest signed checkpoint (C2SP tlog-checkpoint as a signed note) with every witness
/// cosignature collected for it.
///
/// Check it with the log's verifier key (`careledger key show`) and the witnesses' keys.
#[utoipa::path(get, path = "/checkpoint", tag = "evidence", security(("bearer" = [])),
    responses(
        (status = 200, description = "the signed note", body = String, content_type = "text/plain"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "no checkpoint has been signed yet", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the checkpoint cannot be read now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn checkpoint(
    State(state): State<AppState>,
    Caller(_caller): Caller,
) -> Result<Response, ApiError> {
    let app = state.app.clone();
    let note = blocking(move || Ok(app.checkpoint()?)).await?;
    let note = note.ok_or_else(|| {
        ApiError::NotFound(
            "no checkpoint has been signed yet; the server signs one after the first events (see --checkpoint-every-events)".into(),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
}

/// That the event at a position is in the tree of a size (RFC 9162 audit path, SHA-256).
///
/// Positions start at 1, leaf indices at 0. Auditors and subscribers may ask for any event,
/// care roles for the events of the patients they may read.
#[utoipa::path(get, path = "/proof/inclusion", tag = "evidence", security(("bearer" = [])),
    params(InclusionQuery),
    responses(
        (status = 200, description = "the proof and the root it leads to", body = InclusionProofView),
        (status = 400, description = "a parameter is not understood", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "the event is of a patient the caller may not read", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "no such proof: position 0, a position beyond the tree, a tree beyond the durable head", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the ledger cannot be read now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn inclusion(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<InclusionQuery>,
) -> Result<Json<InclusionProofView>, ApiError> {
    let app = state.app.clone();
    let (proof, root) =
        blocking(move || Ok(app.inclusion_proof(&caller, q.position, q.tree_size)?)).await?;
    Ok(Json(InclusionProofView::new(&proof, &root)))
}

/// That a newer tree extends an older one (RFC 9162 consistency proof, SHA-256).
///
/// Equal sizes give an empty proof; a first size of 0 proves nothing and is refused.
#[utoipa::path(get, path = "/proof/consistency", tag = "evidence", security(("bearer" = [])),
    params(ConsistencyQuery),
    responses(
        (status = 200, description = "the proof and both roots", body = ConsistencyProofView),
        (status = 400, description = "a parameter is not understood", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "no such proof: a first size of 0, a first size beyond the second, a size beyond the durable head", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the ledger cannot be read now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn consistency(
    State(state): State<AppState>,
    Caller(_caller): Caller,
    Query(q): Query<ConsistencyQuery>,
) -> Result<Json<ConsistencyProofView>, ApiError> {
    let app = state.app.clone();
    let (proof, first_root, second_root) =
        blocking(move || Ok(app.consistency_proof(q.first, q.second)?)).await?;
    Ok(Json(ConsistencyProofView::new(
        &proof,
        &first_root,
        &second_root,
    )))
}

/// One patient's history as evidence: the file `careledger export` writes.
///
/// Every event of the patient with its stored frame and its inclusion proof against the latest
/// signed checkpoint (with the witnesses' cosignatures collected for it), and the heads-map
/// proof that no later event of the patient is left out (`docs/hash-format.md`, "Exports").
/// Check it offline with `careledger verify-export FILE --key LOGKEY`. For those who may read
/// the patient: the care team, the patient, auditors. While the latest checkpoint does not
/// cover the patient's last event, the answer is 409: the next checkpoint will.
#[utoipa::path(get, path = "/patients/{patient}/export", tag = "evidence", security(("bearer" = [])),
    params(("patient" = String, Path, description = "the patient (a BSN, or another id)", pattern = "^[A-Za-z0-9._:-]{1,64}$")),
    responses(
        (status = 200, description = "the export, as a file to keep", body = ExportView, content_type = "application/json",
            headers(("Content-Disposition" = String, description = "attachment; filename=\"careledger-export-<patient>.json\""))),
        (status = 400, description = "the patient id is malformed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "not in the care team, or no such patient", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "the patient has no events (for callers who may read every patient)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "the latest checkpoint does not yet cover the patient's last event; the detail says when the next is signed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "the checkpoint does not match the ledger (run careledger verify)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the ledger cannot be read now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn export(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(patient): Path<String>,
) -> Result<Response, ApiError> {
    let patient = wire::patient_id(&patient)?;
    let app = state.app.clone();
    let exported = {
        let patient = patient.clone();
        blocking(move || Ok(app.export(&caller, &patient)?)).await?
    };
    // Written as `careledger export` writes its file.
    let body = serde_json::to_vec_pretty(&ExportView::from(&exported))
        .map_err(|e| ApiError::Internal(format!("writing the export: {e}")))?;
    let disposition = format!("attachment; filename=\"careledger-export-{patient}.json\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
