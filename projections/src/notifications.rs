//! Notify-the-other-party messages, derived from the events with `careledger_core::notify`:
//! one per recipient (the other line, the patient), each acknowledged on its own.
//!
//! Derived, not stored separately: nothing can be lost between writing an event and notifying.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use careledger_core::event::Event;
use careledger_core::ids::{ActorId, PatientId};
use careledger_core::notify;
use careledger_core::record::{RecordedEvent, Timestamp};
use careledger_core::role::Line;

use crate::{summary, PatientView, ProjectionConfig};

/// Open or acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationStatus {
    /// Not yet acknowledged.
    Open,
    /// Acknowledged by a member of the recipient line.
    Acknowledged {
        /// Who.
        by: ActorId,
        /// When the acknowledgement was recorded.
        at: Timestamp,
        /// Its position.
        position: u64,
    },
}

/// A notification's text, kept structured: a template id and the values it is filled with, so
/// that a page can show it in Dutch as well as English. [`Message::english`] renders it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The template: the causing event's kind (`medication_stopped`), or `change` for kinds
    /// told in the audit's one-line summary.
    pub template: String,
    /// The values by name (`who`, `drug`, `dose`, `atc`, `change_reason`, `reason`, ...).
    pub values: BTreeMap<String, String>,
}

impl Message {
    fn value(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }

    /// The message in English, for clinicians: names, doses and reasons, never a bare code.
    pub fn english(&self) -> String {
        let v = |k: &str| self.value(k);
        let because = |main: &str| join_reasons(main, v("reason"));
        match self.template.as_str() {
            "medication_started" => format!(
                "{} started {} {} {} ({}){}",
                v("who"),
                v("drug"),
                v("dose"),
                v("frequency"),
                v("atc"),
                because("")
            ),
            "medication_dose_changed" => format!(
                "{} changed {} ({}) from {} to {} {}{}",
                v("who"),
                v("drug"),
                v("atc"),
                v("from"),
                v("dose"),
                v("frequency"),
                because(v("change_reason"))
            ),
            "medication_stopped" => format!(
                "{} stopped {} {} {} ({}){}",
                v("who"),
                v("drug"),
                v("dose"),
                v("frequency"),
                v("atc"),
                because(v("change_reason"))
            ),
            "target_set" => format!(
                "{} set the {} target to {} ({}){}",
                v("who"),
                v("measure"),
                v("target"),
                v("basis"),
                because(v("rationale"))
            ),
            "target_withdrawn" => format!(
                "{} withdrew the {} target; the guideline default {} applies again{}",
                v("who"),
                v("measure"),
                v("default"),
                because("")
            ),
            _ => format!("{}{}", v("summary"), because("")),
        }
    }
}

/// `": side effects, myalgia"`: the coded reason and the words given, without a dangling colon.
fn join_reasons(main: &str, words: &str) -> String {
    let parts: Vec<&str> = [main.trim(), words.trim()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

/// A message to a recipient (the other line, or the patient) about an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Stable id: `n-<position of the causing event>-<recipient>` (`n-42-second`).
    pub id: String,
    /// The patient.
    pub patient: PatientId,
    /// Who must be told: a practitioner line or the patient.
    pub recipient: Line,
    /// The causing event's position; an acknowledgement names it with the recipient.
    pub position: u64,
    /// The causing event's kind (`medication_stopped`).
    pub kind: String,
    /// The text, structured.
    pub message: Message,
    /// The text in English (`message` rendered).
    pub summary: String,
    /// The reason given with the event.
    pub reason: String,
    /// When the causing event was recorded.
    pub created_at: Timestamp,
    /// Open or acknowledged.
    pub status: NotificationStatus,
}

impl Notification {
    /// True when open for longer than the configured number of days as of `now`.
    pub fn is_overdue(&self, config: &ProjectionConfig, now: Timestamp) -> bool {
        self.status == NotificationStatus::Open
            && self.created_at.days_until(now) >= i64::from(config.overdue_after_days)
    }
}

/// The structured text of an event, read from the view before the event is applied.
pub(crate) fn message(view: &PatientView, recorded: &RecordedEvent) -> Message {
    let record = &recorded.record;
    let mut values = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        values.insert(k.to_owned(), v);
    };
    put("who", summary::who(recorded));
    put("reason", record.reason.to_string());
    let medication = |atc| {
        view.plan.medications.get(atc).map(|m| {
            (
                m.name.to_string(),
                m.dose.to_string(),
                m.frequency.to_string(),
            )
        })
    };
    let template = match &record.event {
        Event::MedicationStarted(m) => {
            put("drug", m.name.to_string());
            put("atc", m.atc.to_string());
            put("dose", m.dose.to_string());
            put("frequency", m.frequency.to_string());
            "medication_started"
        }
        Event::MedicationDoseChanged(c) => {
            let (drug, dose, frequency) = medication(&c.atc).unwrap_or_default();
            put("drug", drug);
            put("atc", c.atc.to_string());
            put("from", format!("{dose} {frequency}"));
            put("dose", c.dose.to_string());
            put("frequency", c.frequency.to_string());
            put("change_reason", c.reason.to_string());
            "medication_dose_changed"
        }
        Event::MedicationStopped(s) => {
            let (drug, dose, frequency) = medication(&s.atc).unwrap_or_default();
            put("drug", drug);
            put("atc", s.atc.to_string());
            put("dose", dose);
            put("frequency", frequency);
            put("change_reason", s.reason.to_string());
            "medication_stopped"
        }
        Event::TargetSet(t) => {
            put("measure", t.value.measure().name().to_owned());
            put("target", format!("{} {}", t.comparator.symbol(), t.value));
            put("basis", summary::basis(t.basis).to_owned());
            put("rationale", t.rationale.to_string());
            "target_set"
        }
        Event::TargetWithdrawn(w) => {
            put("measure", w.measure.name().to_owned());
            let default = crate::plan::CarePlan::default();
            let text = default
                .targets
                .get(&w.measure)
                .map(|e| format!("{} {}", e.effective.comparator.symbol(), e.effective.value))
                .unwrap_or_else(|| "(none)".into());
            put("default", text);
            "target_withdrawn"
        }
        _ => {
            put("summary", summary::sentence(recorded));
            "change"
        }
    };
    Message {
        template: template.to_owned(),
        values,
    }
}

/// The notifications an event causes: one per recipient, none for most events.
pub(crate) fn derive(
    view: &PatientView,
    recorded: &RecordedEvent,
    context: notify::Context,
) -> Vec<Notification> {
    let record = &recorded.record;
    let recipients = notify::recipients(&record.event, record.actor.line(), context);
    if recipients.is_empty() {
        return Vec::new();
    }
    let message = message(view, recorded);
    let summary = message.english();
    recipients
        .into_iter()
        .map(|recipient| Notification {
            id: notify::notification_id(recorded.position, recipient),
            patient: record.patient.clone(),
            recipient,
            position: recorded.position,
            kind: record.event.kind().to_owned(),
            message: message.clone(),
            summary: summary.clone(),
            reason: record.reason.to_string(),
            created_at: record.recorded_at,
            status: NotificationStatus::Open,
        })
        .collect()
}

/// Marks a notification acknowledged when the event is its acknowledgement.
pub(crate) fn apply_acknowledgement(view: &mut PatientView, recorded: &RecordedEvent) {
    let Event::NotificationAcknowledged(ack) = recorded.event() else {
        return;
    };
    let status = NotificationStatus::Acknowledged {
        by: recorded.record.actor.id.clone(),
        at: recorded.record.recorded_at,
        position: recorded.position,
    };
    let matches =
        |position: u64, recipient: Line| position == ack.notification && recipient == ack.recipient;
    if let Some(n) = view
        .notifications
        .iter_mut()
        .find(|n| matches(n.position, n.recipient))
    {
        n.status = status.clone();
    }
    if let Some(entry) = view
        .audit
        .iter_mut()
        .find(|e| e.position() == ack.notification)
    {
        if let Some(told) = entry
            .notified
            .iter_mut()
            .find(|t| t.recipient == ack.recipient)
        {
            told.status = status;
        }
    }
}

/// Which notifications to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Which {
    /// Not yet acknowledged.
    Open,
    /// Open for longer than the configured days.
    Overdue,
    /// All.
    All,
}

/// The notifications of a patient for a recipient line.
pub fn for_line<'v>(
    view: &'v PatientView,
    line: Line,
    which: Which,
    config: &ProjectionConfig,
    now: Timestamp,
) -> Vec<&'v Notification> {
    view.notifications
        .iter()
        .filter(|n| n.recipient == line)
        .filter(|n| match which {
            Which::All => true,
            Which::Open => n.status == NotificationStatus::Open,
            Which::Overdue => n.is_overdue(config, now),
        })
        .collect()
}
