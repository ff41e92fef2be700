//! Who may read what, and the actor registry's part of who may join a care team.
//!
//! Writes are authorised by core's `decide` from the patient's recorded state; reads are
//! authorised here from the read models' care team, which the same events fold into.

use careledger_core::event::Command;
use careledger_core::ids::PatientId;
use careledger_core::record::Timestamp;
use careledger_core::role::Role;
use careledger_core::Submission;
use careledger_projections::Projections;

use crate::actors::{AccessRole, ActorStore, RegisteredActor, SubscriberScope};
use crate::error::AppError;

/// True when a care-role caller is in the patient's care team, in the role they are
/// registered in.
pub fn in_care_team(
    projections: &Projections,
    caller: &RegisteredActor,
    patient: &PatientId,
) -> bool {
    let model = projections.read();
    model.patient(patient).is_some_and(|v| {
        v.plan
            .care_team
            .iter()
            .any(|m| m.actor == caller.id && AccessRole::Care(m.role) == caller.role)
    })
}

/// True when a practitioner outside the care team holds emergency access to the patient now,
/// in the role they are registered in (they broke the glass, seed 002).
pub fn has_emergency_access(
    projections: &Projections,
    caller: &RegisteredActor,
    patient: &PatientId,
) -> bool {
    let AccessRole::Care(role) = caller.role else {
        return false;
    };
    let now = Timestamp::now();
    let model = projections.read();
    model
        .patient(patient)
        .is_some_and(|v| v.plan.emergency_access_of(&caller.id, role, now).is_some())
}

/// A patient actor is only ever the patient they are bound to; other actors are bound to none.
pub fn is_self(caller: &RegisteredActor, patient: &PatientId) -> bool {
    caller.role != AccessRole::Care(Role::Patient) || caller.patient.as_ref() == Some(patient)
}

/// May the caller read this patient? Auditors and the care group's administrator read every
/// patient; care roles the patients whose care team they are in; subscribers only the stream;
/// operators no patient.
pub fn may_read(
    projections: &Projections,
    caller: &RegisteredActor,
    patient: &PatientId,
) -> Result<(), AppError> {
    match caller.role {
        AccessRole::Auditor => Ok(()),
        AccessRole::Subscriber => Err(AppError::Forbidden(
            "a subscriber reads the event stream (/events) only".into(),
        )),
        AccessRole::Operator => Err(operator_reads_no_patient_data()),
        // The care group's administrator corrects wrongly founded teams and must see them.
        AccessRole::Care(Role::CareGroupAdmin) => Ok(()),
        AccessRole::Care(_)
            if is_self(caller, patient)
                && (in_care_team(projections, caller, patient)
                    || has_emergency_access(projections, caller, patient)) =>
        {
            Ok(())
        }
        AccessRole::Care(_) => Err(AppError::not_in_care_team()),
    }
}

/// The refusal of every patient read to an operator.
pub fn operator_reads_no_patient_data() -> AppError {
    AppError::Forbidden(
        "an operator administers actors (/admin/actors) and reads no patient data".into(),
    )
}

/// Whether the caller may see an event of this patient in the global log or the stream.
/// A subscriber scoped to an organisation sees the patients whose care team, as the read
/// models fold it, has a member registered for that organisation.
pub fn sees_events_of(
    projections: &Projections,
    actors: &ActorStore,
    caller: &RegisteredActor,
    patient: &PatientId,
) -> bool {
    match caller.role {
        AccessRole::Auditor => true,
        AccessRole::Subscriber => match &caller.scope {
            Some(SubscriberScope::All) => true,
            Some(SubscriberScope::Organisation(agb)) => {
                let model = projections.read();
                model.patient(patient).is_some_and(|v| {
                    actors.any_registered_for(agb, v.plan.care_team.iter().map(|m| &m.actor))
                })
            }
            None => false,
        },
        AccessRole::Operator => false,
        AccessRole::Care(Role::CareGroupAdmin) => true,
        AccessRole::Care(_) => {
            is_self(caller, patient)
                && (in_care_team(projections, caller, patient)
                    || has_emergency_access(projections, caller, patient))
        }
    }
}

/// The actor registry's part of agreement 1: a member is a registered actor, added in the role
/// they hold, and a patient actor joins only their own care team. Checked before the append, as
/// `decide` knows nothing of the registry.
pub fn check_members_are_registered(
    actors: &ActorStore,
    patient: &PatientId,
    submissions: &[Submission],
) -> Result<(), AppError> {
    for submission in submissions {
        let Command::AddCareTeamMember(m) = &submission.command else {
            continue;
        };
        let refuse = |code: &str, message: String| AppError::Invalid {
            code: code.into(),
            message,
        };
        let Some(registered) = actors.get(&m.actor)? else {
            return Err(refuse(
                "unknown_actor",
                format!(
                    "{} is not a registered actor; the operator registers them first \
                     (careledger actors add --id {} --role {} ...)",
                    m.actor,
                    m.actor,
                    m.role.as_str()
                ),
            ));
        };
        if registered.role != AccessRole::Care(m.role) {
            return Err(refuse(
                "role_not_held",
                format!(
                    "{} is registered as {}, not as {}; add them in the role they hold",
                    m.actor,
                    registered.role.as_str(),
                    m.role.as_str()
                ),
            ));
        }
        if m.role == Role::Patient && registered.patient.as_ref() != Some(patient) {
            return Err(refuse(
                "patient_of_another_record",
                format!(
                    "{} is a patient actor bound to another patient; a patient joins only their \
                     own care team",
                    m.actor
                ),
            ));
        }
    }
    Ok(())
}
