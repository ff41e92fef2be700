//! Breaking the glass, as the auditor reviews it: every use by one actor, across patients.

use axum::extract::{Path, State};
use axum::Json;

use careledger_app::actors::AccessRole;
use careledger_core::ids::ActorId;

use crate::error::ApiError;
use crate::extract::Caller;
use crate::state::AppState;
use crate::wire::scalar::Time;
use crate::wire::{
    EmergencyAccessListView, EmergencyAccessUseView, ProblemDetails, ProvenanceView,
};

/// Every break of the glass by one actor, on every patient, oldest first: the patient, the role
/// they acted in, when, why and until when (seed 002). For auditors only; what each did under
/// it is in that patient's audit trail.
#[utoipa::path(get, path = "/actors/{actor}/emergency-access", tag = "audit", security(("bearer" = [])),
    params(("actor" = String, Path, description = "the actor who broke the glass")),
    responses(
        (status = 200, description = "every use, with its reason", body = EmergencyAccessListView),
        (status = 400, description = "the actor id is malformed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "not an auditor", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn emergency_access_of_actor(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(actor): Path<String>,
) -> Result<Json<EmergencyAccessListView>, ApiError> {
    if caller.role != AccessRole::Auditor {
        return Err(ApiError::Forbidden(
            "every use of the glass by an actor is listed to auditors; a care team sees the \
             uses on its own patients in their plans"
                .into(),
        ));
    }
    let actor = ActorId::parse(&actor)
        .map_err(|e| ApiError::Malformed(format!("the actor id is not valid: {e}")))?;
    // The index of grants by actor names the patients; only their views are read.
    let projections = &state.app.projections;
    let patients = projections
        .emergency_patients_of(&actor)
        .map_err(careledger_app::AppError::from)?;
    let mut uses: Vec<EmergencyAccessUseView> = Vec::new();
    for patient in patients {
        let found = projections
            .with_view(&patient, |view| {
                view.plan
                    .emergency_access
                    .iter()
                    .filter(|e| e.opened.actor == actor)
                    .map(|e| EmergencyAccessUseView {
                        patient: patient.to_string(),
                        until: Time(e.until),
                        opened: ProvenanceView::from(&e.opened),
                    })
                    .collect::<Vec<_>>()
            })
            .map_err(careledger_app::AppError::from)?;
        uses.extend(found.into_iter().flatten());
    }
    uses.sort_by_key(|u| u.opened.position);
    Ok(Json(EmergencyAccessListView {
        actor: actor.to_string(),
        uses,
    }))
}
