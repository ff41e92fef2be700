//! One-line human summaries of events and the plan element each event touches.

use careledger_core::event::{Event, TargetBasis};
use careledger_core::quantity::Measure;
use careledger_core::record::RecordedEvent;

/// The basis of a target in words.
pub(crate) fn basis(b: TargetBasis) -> &'static str {
    match b {
        TargetBasis::NhgGuideline => "NHG guideline",
        TargetBasis::EscGuideline => "ESC guideline",
        TargetBasis::Individual => "individual",
    }
}

fn tests(list: &[Measure]) -> String {
    list.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
}

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

/// "Cardiologist J. de Vries set LDL cholesterol target ≤ 1.8 mmol/L (ESC guideline): high risk".
pub fn sentence(recorded: &RecordedEvent) -> String {
    format!("{} {}", who(recorded), what(recorded.event()))
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

/// The predicate of the summary sentence.
pub fn what(event: &Event) -> String {
    match event {
        Event::CareTeamMemberAdded(m) => {
            format!(
                "added {} ({}, {}) to the care team",
                m.name,
                m.role,
                m.role.line()
            )
        }
        Event::CareTeamMemberRemoved(r) => format!("removed {} from the care team", r.actor),
        Event::LeadHandedOver(h) => format!(
            "handed the lead on {} to {}, now its main practitioner",
            match h.lead {
                careledger_core::role::Lead::Cvrm => "CVRM",
                careledger_core::role::Lead::OrganDisease => "the organ disease",
                careledger_core::role::Lead::None => "nothing",
            },
            h.to
        ),
        Event::SharedCareStarted(s) => format!("started shared care: {}", s.arrangement),
        Event::SharedCareEnded(s) => format!("ended shared care: {}", s.arrangement),
        Event::TargetSet(t) => format!(
            "set {} target {} {} ({}): {}",
            t.value.measure().name(),
            t.comparator.symbol(),
            t.value,
            basis(t.basis),
            t.rationale
        ),
        Event::TargetWithdrawn(w) => format!("withdrew the {} target", w.measure.name()),
        Event::MedicationStarted(m) => {
            format!("started {} ({}) {} {}", m.name, m.atc, m.dose, m.frequency)
        }
        Event::MedicationDoseChanged(c) => {
            format!(
                "changed {} to {} {} because of {}",
                c.atc, c.dose, c.frequency, c.reason
            )
        }
        Event::MedicationStopped(s) => format!("stopped {} because of {}", s.atc, s.reason),
        Event::MedicationPreferenceRecorded(p) => {
            format!(
                "recorded a preference for {} ({}): {}",
                p.name, p.atc, p.preference
            )
        }
        Event::LabOrdered(o) => format!(
            "ordered lab {}: {}{}",
            o.order,
            tests(&o.tests),
            if o.annual_panel {
                " (annual CVRM panel)"
            } else {
                ""
            }
        ),
        Event::AnnualPanelExtended(e) => {
            format!("added {} to the annual CVRM panel", tests(&e.tests))
        }
        Event::LabResultRecorded(r) => {
            format!(
                "recorded lab result {} {}",
                r.value.measure().name(),
                r.value
            )
        }
        Event::MeasurementRecorded(m) => format!(
            "recorded {} {} ({})",
            m.value.measure().name(),
            m.value,
            match m.source {
                careledger_core::event::MeasurementSource::Practice => "at the practice",
                careledger_core::event::MeasurementSource::Hospital => "at the hospital",
                careledger_core::event::MeasurementSource::SelfMeasuredAtHome => {
                    "self-measured at home"
                }
            }
        ),
        Event::LifestyleGoalSet(g) => format!("set lifestyle goal {}: {}", g.goal, g.description),
        Event::LifestyleGoalClosed(c) => {
            format!(
                "closed lifestyle goal {} ({})",
                c.goal,
                match c.outcome {
                    careledger_core::event::GoalOutcome::Achieved => "achieved",
                    careledger_core::event::GoalOutcome::Abandoned => "abandoned",
                    careledger_core::event::GoalOutcome::Replaced => "replaced",
                }
            )
        }
        Event::NoteAdded(n) => format!(
            "added {}: {}",
            match n.kind {
                careledger_core::event::NoteKind::Note => "a note",
                careledger_core::event::NoteKind::ReturnLetter => "a return letter",
                careledger_core::event::NoteKind::InterimLetter => "an interim letter",
            },
            n.subject
        ),
        Event::NotificationAcknowledged(a) => {
            format!(
                "acknowledged the notification of position {} to the {}",
                a.notification, a.recipient
            )
        }
        Event::EnteredInError(c) => {
            format!("marked position {} as entered in error", c.position)
        }
        Event::IntoleranceRecorded(i) => format!(
            "recorded {} {} ({}): {}",
            i.kind, i.substance, i.atc, i.reaction
        ),
        Event::ProblemRecorded(p) => {
            format!(
                "recorded problem {} ({}): {}",
                p.problem, p.code, p.description
            )
        }
        Event::ProblemResolved(r) => format!("resolved problem {}", r.problem),
        Event::SmokingStatusRecorded(s) => {
            format!("recorded smoking status: {}", s.status.name())
        }
        Event::SigningKeyRegistered(k) => format!(
            "registered signing key {} of {} (client system {})",
            k.key_id, k.actor, k.system
        ),
        Event::SigningKeyRevoked(r) => {
            format!("revoked signing key {} of {}", r.key_id, r.actor)
        }
        Event::GlassBroken(a) => format!(
            "broke the glass: emergency access to the record for {} hours",
            a.hours
        ),
    }
}
