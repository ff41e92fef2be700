//! The audit trail: every change to a patient's plan, who made it, when, why, what it changed,
//! the hash that proves it, and whether the other line was told and acknowledged.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use careledger_core::event::Event;
use careledger_core::ids::ActorId;
use careledger_core::record::{RecordedEvent, Timestamp};
use careledger_core::role::Line;

use crate::labels::{self, Lang};
use crate::message::{self as text, Message, Word};
use crate::notifications::{Notification, NotificationStatus};
use crate::plan::TargetValue;
use crate::{summary, PatientView, Provenance};

/// Whether the other line was told of a change, and whether they acknowledged it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Told {
    /// The line told.
    pub recipient: Line,
    /// Open or acknowledged (by whom, when).
    pub status: NotificationStatus,
}

/// One entry of the audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Who, in which role and line, when (both clocks), why, and the position and hash that prove it.
    pub provenance: Provenance,
    /// Revision in the patient's stream.
    pub revision: u64,
    /// Event kind (`target_set`).
    pub kind: Word,
    /// The plan element (`target:ldl`, `medication:C10AA05`).
    pub element: String,
    /// The sentence, structured: shown in the reader's language by [`crate::labels::message`],
    /// in English by [`AuditEntry::summary`].
    #[serde(with = "crate::shared::message")]
    pub message: Arc<Message>,
    /// The element before the change, structured ([`crate::labels::state`] renders it; in
    /// English [`AuditEntry::from`]).
    pub from_state: Option<Message>,
    /// The element after the change, structured.
    pub to_state: Option<Message>,
    /// Who was told of the change (the other line, the patient), and whether they acknowledged.
    pub notified: Vec<Told>,
    /// The position of the correction that marks this entry as entered in error.
    pub corrected_by: Option<u64>,
    /// That correction: who corrected, in which role and line, when (both clocks) and why.
    pub correction: Option<Provenance>,
    /// For a dose change or stop of a medication whose start was marked entered in error: that
    /// start's position. The entry was voided with it and counts for nothing.
    pub voided_with: Option<u64>,
    /// For a correction: the position it marks.
    pub corrects: Option<u64>,
}

impl AuditEntry {
    /// The event's global position.
    pub fn position(&self) -> u64 {
        self.provenance.position
    }

    /// One sentence, in English: the message rendered when read, never stored (the read models
    /// keep the structured text only).
    pub fn summary(&self) -> String {
        self.message.english()
    }

    /// The element before the change, where it had a value, in English.
    pub fn from(&self) -> Option<String> {
        self.from_state.as_ref().map(|s| labels::state(s, Lang::En))
    }

    /// The element after the change, in English.
    pub fn to(&self) -> Option<String> {
        self.to_state.as_ref().map(|s| labels::state(s, Lang::En))
    }
}

/// Filters on the audit trail; empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    /// The element (`target:ldl`, `medication:C10AA05`), or a prefix ending in `:` (`medication:`).
    pub element: Option<String>,
    /// The actor.
    pub actor: Option<ActorId>,
    /// The actor's line.
    pub line: Option<Line>,
    /// Recorded at or after.
    pub from: Option<Timestamp>,
    /// Recorded before.
    pub until: Option<Timestamp>,
}

impl AuditFilter {
    /// True when the entry passes every given filter.
    pub fn matches(&self, e: &AuditEntry) -> bool {
        let element_ok = self.element.as_deref().is_none_or(|want| {
            if want.ends_with(':') {
                e.element.starts_with(want)
            } else {
                e.element == want
            }
        });
        element_ok
            && self.actor.as_ref().is_none_or(|a| *a == e.provenance.actor)
            && self.line.is_none_or(|l| l == e.provenance.line)
            && self.from.is_none_or(|t| e.provenance.recorded_at >= t)
            && self.until.is_none_or(|t| e.provenance.recorded_at < t)
    }
}

/// The patient's audit trail through a filter, in ledger order.
pub fn query<'v>(view: &'v PatientView, filter: &AuditFilter) -> Vec<&'v AuditEntry> {
    view.audit.iter().filter(|e| filter.matches(e)).collect()
}

fn target_state(t: &TargetValue) -> Message {
    text::target_state(t.comparator, &t.value)
}

fn plain(template: &'static str) -> Message {
    text::state(template, &[])
}

/// What the element was and becomes, read from the plan before the event is applied.
fn change(view: &PatientView, event: &Event) -> (Option<Message>, Option<Message>) {
    let plan = &view.plan;
    let active = |atc| {
        plan.medications
            .get(atc)
            .map(|m| text::medication_state(Some(m.name.as_str()), &m.dose, m.frequency.as_str()))
    };
    match event {
        Event::TargetSet(t) => (
            plan.targets
                .get(&t.value.measure())
                .map(|e| target_state(&e.effective)),
            Some(text::target_state(t.comparator, &t.value)),
        ),
        Event::TargetWithdrawn(w) => (
            plan.targets
                .get(&w.measure)
                .map(|e| target_state(&e.effective)),
            Some(plain("guideline_default")),
        ),
        Event::MedicationStarted(m) => (
            None,
            Some(text::medication_state(
                Some(m.name.as_str()),
                &m.dose,
                m.frequency.as_str(),
            )),
        ),
        Event::MedicationDoseChanged(c) => (
            active(&c.atc),
            Some(text::medication_state(None, &c.dose, c.frequency.as_str())),
        ),
        Event::MedicationStopped(s) => (active(&s.atc), Some(plain("stopped"))),
        Event::SharedCareStarted(_) => (Some(plain("no_shared_care")), Some(plain("shared_care"))),
        Event::SharedCareEnded(_) => (Some(plain("shared_care")), Some(plain("no_shared_care"))),
        Event::LifestyleGoalClosed(c) => (
            Some(plain("goal_open")),
            Some(text::state(
                "goal_closed",
                &[(
                    "outcome",
                    text::code::of(&text::code::OUTCOMES, c.outcome).into(),
                )],
            )),
        ),
        _ => (None, None),
    }
}

/// Adds the entry for an event (called before the plan folds the event in).
pub(crate) fn record(
    view: &mut PatientView,
    recorded: &RecordedEvent,
    provenance: &Provenance,
    notified: &[Notification],
    message: Arc<Message>,
) {
    let r = &recorded.record;
    let (from_state, to_state) = change(view, &r.event);
    let corrects = match &r.event {
        Event::EnteredInError(c) => Some(c.position),
        _ => None,
    };
    if let Some(target) = corrects {
        let voided: Vec<u64> = view
            .plan
            .voided_by(target)
            .iter()
            .map(|(p, _)| *p)
            .collect();
        for entry in view.audit.iter_mut() {
            if entry.position() == target {
                entry.corrected_by = Some(recorded.position);
                entry.correction = Some(provenance.clone());
            } else if voided.contains(&entry.position()) {
                entry.voided_with = Some(target);
            }
        }
    }
    view.audit.push(AuditEntry {
        provenance: provenance.clone(),
        revision: r.revision,
        kind: Word::Borrowed(r.event.kind()),
        element: summary::element(&r.event),
        message,
        from_state,
        to_state,
        notified: notified
            .iter()
            .map(|n| Told {
                recipient: n.recipient,
                status: n.status.clone(),
            })
            .collect(),
        corrected_by: None,
        correction: None,
        voided_with: None,
        corrects,
    });
}
