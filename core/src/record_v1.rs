//! Record format 1, frozen: the types its bytes decode into, and the upcaster to the current
//! [`Record`].
//!
//! bincode names nothing: a record is its fields in order, an enum its variant index. These
//! types therefore keep format 1's layout exactly as it was written; they are never encoded
//! again. When a payload that format 1 used changes shape, its old shape is copied here first
//! and the variant below points at the copy, with its conversion in [`upcast_event`].

use serde::Deserialize;

use crate::event::{
    Acknowledgement, Correction, Dose, DoseChange, Event, GoalClosure, LabOrder, LabResult,
    LifestyleGoal, Measurement, Medication, MedicationPreference, MedicationStop, Member,
    MemberRemoval, Note, PanelExtension, SharedCare, Target, TargetWithdrawal,
};
use crate::ids::{ActorId, AtcCode, PatientId, Text, Uid};
use crate::record::{Actor, Record, Timestamp};
use crate::role::{Line, Role};

/// The actor of a format 1 record: no organisation.
#[derive(Deserialize)]
pub(crate) struct ActorV1 {
    id: ActorId,
    role: Role,
    name: Text,
}

/// A format 1 acknowledgement: the notification named by its causing position only; its
/// recipient was the one line notified, the acknowledging actor's own.
#[derive(Deserialize)]
pub(crate) struct AcknowledgementV1 {
    notification: u64,
}

/// A format 1 medication start: no indication.
#[derive(Deserialize)]
pub(crate) struct MedicationV1 {
    atc: AtcCode,
    name: Text,
    dose: Dose,
    frequency: Text,
}

/// The event catalogue as format 1 wrote it, in its variant order.
#[derive(Deserialize)]
pub(crate) enum EventV1 {
    CareTeamMemberAdded(Member),
    CareTeamMemberRemoved(MemberRemoval),
    SharedCareStarted(SharedCare),
    SharedCareEnded(SharedCare),
    TargetSet(Target),
    TargetWithdrawn(TargetWithdrawal),
    MedicationStarted(MedicationV1),
    MedicationDoseChanged(DoseChange),
    MedicationStopped(MedicationStop),
    MedicationPreferenceRecorded(MedicationPreference),
    LabOrdered(LabOrder),
    AnnualPanelExtended(PanelExtension),
    LabResultRecorded(LabResult),
    MeasurementRecorded(Measurement),
    LifestyleGoalSet(LifestyleGoal),
    LifestyleGoalClosed(GoalClosure),
    NoteAdded(Note),
    NotificationAcknowledged(AcknowledgementV1),
    EnteredInError(Correction),
}

/// A format 1 record, field by field.
#[derive(Deserialize)]
pub(crate) struct RecordV1 {
    patient: PatientId,
    revision: u64,
    event_id: Uid,
    recorded_at: Timestamp,
    occurred_at: Timestamp,
    actor: ActorV1,
    reason: Text,
    correlation_id: Uid,
    causation_id: Option<Uid>,
    idempotency_key: Option<String>,
    event: EventV1,
}

impl From<RecordV1> for Record {
    fn from(old: RecordV1) -> Self {
        let actor = Actor::new(old.actor.id, old.actor.role, old.actor.name);
        let event = upcast_event(old.event, actor.line());
        Record {
            patient: old.patient,
            revision: old.revision,
            event_id: old.event_id,
            recorded_at: old.recorded_at,
            occurred_at: old.occurred_at,
            actor,
            reason: old.reason,
            correlation_id: old.correlation_id,
            causation_id: old.causation_id,
            idempotency_key: old.idempotency_key,
            signed_request: None,
            event,
        }
    }
}

/// A format 1 event as the current catalogue states it; `author` is the line of the actor who
/// recorded it.
fn upcast_event(old: EventV1, author: Line) -> Event {
    match old {
        EventV1::CareTeamMemberAdded(p) => Event::CareTeamMemberAdded(p),
        EventV1::CareTeamMemberRemoved(p) => Event::CareTeamMemberRemoved(p),
        EventV1::SharedCareStarted(p) => Event::SharedCareStarted(p),
        EventV1::SharedCareEnded(p) => Event::SharedCareEnded(p),
        EventV1::TargetSet(p) => Event::TargetSet(p),
        EventV1::TargetWithdrawn(p) => Event::TargetWithdrawn(p),
        EventV1::MedicationStarted(p) => Event::MedicationStarted(Medication {
            atc: p.atc,
            name: p.name,
            dose: p.dose,
            frequency: p.frequency,
            indication: None,
        }),
        EventV1::MedicationDoseChanged(p) => Event::MedicationDoseChanged(p),
        EventV1::MedicationStopped(p) => Event::MedicationStopped(p),
        EventV1::MedicationPreferenceRecorded(p) => Event::MedicationPreferenceRecorded(p),
        EventV1::LabOrdered(p) => Event::LabOrdered(p),
        EventV1::AnnualPanelExtended(p) => Event::AnnualPanelExtended(p),
        EventV1::LabResultRecorded(p) => Event::LabResultRecorded(p),
        EventV1::MeasurementRecorded(p) => Event::MeasurementRecorded(p),
        EventV1::LifestyleGoalSet(p) => Event::LifestyleGoalSet(p),
        EventV1::LifestyleGoalClosed(p) => Event::LifestyleGoalClosed(p),
        EventV1::NoteAdded(p) => Event::NoteAdded(p),
        EventV1::NotificationAcknowledged(p) => Event::NotificationAcknowledged(Acknowledgement {
            notification: p.notification,
            recipient: author,
        }),
        EventV1::EnteredInError(p) => Event::EnteredInError(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::DoseUnit;
    use crate::record::bincode_config;

    #[test]
    fn a_format_1_medication_start_reads_as_one_without_an_indication() {
        let start = Medication {
            atc: AtcCode::parse("C10AA05").unwrap(),
            name: Text::new("atorvastatin").unwrap(),
            dose: Dose::parse("40", DoseUnit::Mg).unwrap(),
            frequency: Text::new("1x daily").unwrap(),
            indication: None,
        };
        let event = Event::MedicationStarted(start);
        let current = bincode::serde::encode_to_vec(&event, bincode_config()).unwrap();
        // Format 1 wrote the same fields without the trailing `None` of the indication.
        let format_1 = &current[..current.len() - 1];
        let (old, read): (EventV1, usize) =
            bincode::serde::decode_from_slice(format_1, bincode_config()).unwrap();
        assert_eq!(read, format_1.len());
        assert_eq!(upcast_event(old, Line::First), event);
    }
}
