//! Who may read what, and the actor registry's part of who may join a care team.
//!
//! Writes are authorised by core's `decide` from the patient's recorded state; reads are
//! authorised here from the read models' care team, which the same events fold into.

use careledger_core::event::Command;
use careledger_core::ids::{AgbCode, PatientId};
use careledger_core::record::Timestamp;
use careledger_core::role::Role;
use careledger_core::Submission;
use careledger_projections::Projections;

use crate::access_log::AccessReason;
use crate::actors::{AccessRole, ActorStore, RegisteredActor, SubscriberScope};
use crate::error::AppError;

/// True when a care-role caller is in the patient's care team, in the role they are
/// registered in; false too when the read models cannot be read (logged).
pub fn in_care_team(
    projections: &Projections,
    caller: &RegisteredActor,
    patient: &PatientId,
) -> bool {
    care_team_has(projections, caller, patient).unwrap_or_else(|e| {
        tracing::error!(error = %e, "reading a care team failed");
        false
    })
}

/// [`in_care_team`], with a failure to read the read models as an error. The care team is
/// read from its index when the patient's view is not cached: no whole view is decoded for it.
fn care_team_has(
    projections: &Projections,
    caller: &RegisteredActor,
    patient: &PatientId,
) -> Result<bool, AppError> {
    Ok(projections.care_team(patient)?.is_some_and(|team| {
        team.iter()
            .any(|(actor, role)| *actor == caller.id && AccessRole::Care(*role) == caller.role)
    }))
}

/// True when a practitioner outside the care team holds emergency access to the patient now,
/// in the role they are registered in (they broke the glass, seed 002).
pub fn has_emergency_access(
    projections: &Projections,
    caller: &RegisteredActor,
    patient: &PatientId,
) -> bool {
    emergency_access(projections, caller, patient).is_some()
}

/// The reason the caller gave when they broke the glass on this patient's record, while the
/// access lasts; `None` too when the read models cannot be read (logged).
pub fn emergency_access(
    projections: &Projections,
    caller: &RegisteredActor,
    patient: &PatientId,
) -> Option<String> {
    emergency_access_checked(projections, caller, patient).unwrap_or_else(|e| {
        tracing::error!(error = %e, "reading emergency access failed");
        None
    })
}

/// [`emergency_access`], with a failure to read the read models as an error.
fn emergency_access_checked(
    projections: &Projections,
    caller: &RegisteredActor,
    patient: &PatientId,
) -> Result<Option<String>, AppError> {
    let AccessRole::Care(role) = caller.role else {
        return Ok(None);
    };
    let now = Timestamp::now();
    Ok(projections
        .with_view(patient, |view| {
            view.plan
                .emergency_access_of(&caller.id, role, now)
                .map(|grant| grant.opened.reason.to_string())
        })?
        .flatten())
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
    read_reason(projections, caller, patient).map(|_| ())
}

/// Why the caller may read this patient (the access log's reason), or why not: [`may_read`]'s
/// rules, naming their ground.
pub fn read_reason(
    projections: &Projections,
    caller: &RegisteredActor,
    patient: &PatientId,
) -> Result<AccessReason, AppError> {
    match caller.role {
        AccessRole::Auditor => Ok(AccessReason::Audit),
        AccessRole::Subscriber => Err(AppError::Forbidden(
            "a subscriber reads the event stream (/events) only".into(),
        )),
        AccessRole::Operator => Err(operator_reads_no_patient_data()),
        // The care group's administrator corrects wrongly founded teams and must see them.
        AccessRole::Care(Role::CareGroupAdmin) => Ok(AccessReason::Administration),
        AccessRole::Care(role) if is_self(caller, patient) => {
            if care_team_has(projections, caller, patient)? {
                return Ok(match role {
                    Role::Patient => AccessReason::OwnRecord,
                    _ => AccessReason::CareTeam,
                });
            }
            match emergency_access_checked(projections, caller, patient)? {
                Some(justification) => Ok(AccessReason::BreakGlass { justification }),
                None => Err(AppError::not_in_care_team()),
            }
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

/// The reason an access log entry records for a request by `caller`: for a patient, the ground
/// [`read_reason`] gives (none when it refuses); for a route naming no patient, the ground of the
/// caller's role (the global log and the stream show each caller what the read rules let them).
pub fn access_reason(
    projections: &Projections,
    caller: &RegisteredActor,
    patient: Option<&PatientId>,
) -> AccessReason {
    match patient {
        Some(patient) => {
            read_reason(projections, caller, patient).unwrap_or(AccessReason::NotEstablished)
        }
        None => match caller.role {
            AccessRole::Auditor => AccessReason::Audit,
            AccessRole::Subscriber => AccessReason::Subscription,
            AccessRole::Operator | AccessRole::Care(Role::CareGroupAdmin) => {
                AccessReason::Administration
            }
            AccessRole::Care(Role::Patient) => AccessReason::OwnRecord,
            AccessRole::Care(_) => AccessReason::CareTeam,
        },
    }
}

/// May the caller read who accessed this patient's record? The patient themself and auditors;
/// not the care team (who looked at a record is the patient's and the auditor's to see).
pub fn may_read_access_log_of(
    caller: &RegisteredActor,
    patient: &PatientId,
) -> Result<(), AppError> {
    match caller.role {
        AccessRole::Auditor => Ok(()),
        AccessRole::Care(Role::Patient) if caller.patient.as_ref() == Some(patient) => Ok(()),
        _ => Err(AppError::Forbidden(
            "who accessed a record is shown to the patient themself and to auditors only".into(),
        )),
    }
}

/// May the caller read the whole access log? Auditors only.
pub fn may_read_access_log(caller: &RegisteredActor) -> Result<(), AppError> {
    match caller.role {
        AccessRole::Auditor => Ok(()),
        _ => Err(AppError::Forbidden(
            "the access log is read by auditors; a patient reads who accessed their own record at \
             /patients/{patient}/access-log"
                .into(),
        )),
    }
}

/// Whose events a caller sees in the global log and the stream.
enum SeesEvents<'a> {
    /// Every patient's (auditors, the care group's administrator, all-patients subscribers).
    All,
    /// None (the operator, a subscriber without a scope).
    None,
    /// The patients whose care team has a member registered for this organisation.
    Organisation(&'a AgbCode),
    /// The patients whose care team has the caller, or to whom they have emergency access.
    OwnPatients,
}

fn sees_events(caller: &RegisteredActor) -> SeesEvents<'_> {
    match (&caller.role, &caller.scope) {
        (AccessRole::Auditor, _) | (AccessRole::Care(Role::CareGroupAdmin), _) => SeesEvents::All,
        (AccessRole::Subscriber, Some(SubscriberScope::All)) => SeesEvents::All,
        (AccessRole::Subscriber, Some(SubscriberScope::Organisation(agb))) => {
            SeesEvents::Organisation(agb)
        }
        (AccessRole::Subscriber, None) | (AccessRole::Operator, _) => SeesEvents::None,
        (AccessRole::Care(_), _) => SeesEvents::OwnPatients,
    }
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
    match sees_events(caller) {
        SeesEvents::All => true,
        SeesEvents::None => false,
        SeesEvents::Organisation(agb) => match projections.care_team(patient) {
            Ok(team) => team.is_some_and(|team| {
                actors.any_registered_for(agb, team.iter().map(|(actor, _)| actor))
            }),
            Err(e) => {
                tracing::error!(error = %e, "reading a care team failed");
                false
            }
        },
        SeesEvents::OwnPatients => {
            is_self(caller, patient)
                && (in_care_team(projections, caller, patient)
                    || has_emergency_access(projections, caller, patient))
        }
    }
}

/// Whether [`sees_events_of`] asks the read models (a care team, an emergency access) for this
/// caller: their answer for an event is then only right once the read models hold that event.
pub fn sees_events_by_care_team(caller: &RegisteredActor) -> bool {
    matches!(
        sees_events(caller),
        SeesEvents::Organisation(_) | SeesEvents::OwnPatients
    )
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
