//! The plan element each event touches, and the actor who wrote it in English (`who`, kept in
//! messages for clients that read it); the sentences themselves are [`crate::message`]'s,
//! rendered by [`crate::labels::message`].

use careledger_core::event::Event;
use careledger_core::record::RecordedEvent;

/// The plan element an event is about, as a filter key: `target:ldl`, `medication:C10AA05`,
/// `care_team:gp-1`, `lab:ldl`, `goal:walk`, `shared_care`, `annual_panel`, `note`,
/// `notification:<position>`, `correction:<position>`, `intolerance:C10AA05`, `problem:mi`,
/// `smoking_status`.
pub fn element(event: &Event) -> String {
    match event {
        Event::CareTeamMemberAdded(m) => format!("care_team:{}", m.actor),
        Event::CareTeamMemberRemoved(r) => format!("care_team:{}", r.actor),
        Event::LeadHandedOver(h) => format!("care_team:{}", h.to),
        Event::SharedCareStarted(_) | Event::SharedCareEnded(_) => "shared_care".into(),
        Event::TargetSet(t) => format!("target:{}", t.value.measure().code()),
        Event::TargetWithdrawn(w) => format!("target:{}", w.measure.code()),
        Event::MedicationStarted(m) => format!("medication:{}", m.atc),
        Event::MedicationDoseChanged(c) => format!("medication:{}", c.atc),
        Event::MedicationStopped(s) => format!("medication:{}", s.atc),
        Event::MedicationPreferenceRecorded(p) => format!("medication:{}", p.atc),
        Event::LabOrdered(o) => format!("lab_order:{}", o.order),
        Event::AnnualPanelExtended(_) => "annual_panel".into(),
        Event::LabResultRecorded(r) => format!("lab:{}", r.value.measure().code()),
        Event::MeasurementRecorded(m) => format!("measurement:{}", m.value.measure().code()),
        Event::LifestyleGoalSet(g) => format!("goal:{}", g.goal),
        Event::LifestyleGoalClosed(c) => format!("goal:{}", c.goal),
        Event::NoteAdded(_) => "note".into(),
        Event::NotificationAcknowledged(a) => format!(
            "notification:{}",
            careledger_core::notify::notification_id(a.notification, a.recipient)
        ),
        Event::EnteredInError(c) => format!("correction:{}", c.position),
        Event::IntoleranceRecorded(i) => format!("intolerance:{}", i.atc),
        Event::ProblemRecorded(p) => format!("problem:{}", p.problem),
        Event::ProblemResolved(r) => format!("problem:{}", r.problem),
        Event::SmokingStatusRecorded(_) => "smoking_status".into(),
        Event::SigningKeyRegistered(k) => format!("signing_key:{}:{}", k.actor, k.key_id),
        Event::SigningKeyRevoked(r) => format!("signing_key:{}:{}", r.actor, r.key_id),
        Event::GlassBroken(_) => "emergency_access".into(),
    }
}

/// The actor with their role: "GP A. Jansen", "Cardiologist J. de Vries".
pub fn who(recorded: &RecordedEvent) -> String {
    let actor = &recorded.record.actor;
    format!("{} {}", capitalise(&actor.role.to_string()), actor.name)
}

/// The text with its first letter in upper case.
pub(crate) fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
