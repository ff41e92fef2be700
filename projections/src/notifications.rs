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
    /// The causing entry was marked entered in error before anyone acknowledged it; the
    /// correction's own notification tells the recipient.
    Withdrawn {
        /// The correction's position.
        correction: u64,
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
            "entered_in_error" => format!(
                "{} marked as entered in error (position {}){}{}",
                v("who"),
                v("corrected"),
                if v("what").is_empty() { "" } else { ": " },
                v("what")
            ),
            _ if v("reason").trim().is_empty() => v("summary").to_owned(),
            _ => format!("{}; reason: {}", v("summary"), v("reason").trim()),
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
///
/// A correction (`entered_in_error`) tells whoever was told of the corrected entry, or of the
/// entries it voids, or wrote those (`careledger_core::notify::correction_recipients`, as
/// `decide` does); its text names what was corrected.
pub(crate) fn derive(
    view: &PatientView,
    recorded: &RecordedEvent,
    context: notify::Context,
) -> Vec<Notification> {
    let record = &recorded.record;
    let author = record.actor.line();
    let recipients = match &record.event {
        Event::EnteredInError(c) => {
            let voided = view.plan.voided_by(c.position);
            let told: Vec<Line> = std::iter::once(c.position)
                .chain(voided.iter().map(|(p, _)| *p))
                .flat_map(|p| {
                    view.notifications
                        .iter()
                        .filter(move |n| n.position == p)
                        .map(|n| n.recipient)
                })
                .collect();
            let wrote = voided.iter().map(|(_, line)| *line);
            notify::correction_recipients(author, told.into_iter().chain(wrote))
        }
        event => notify::recipients(event, author, context),
    };
    if recipients.is_empty() {
        return Vec::new();
    }
    let message = match &record.event {
        Event::EnteredInError(c) => correction_message(view, recorded, c.position),
        _ => message(view, recorded),
    };
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

/// "GP A. Jansen marked as entered in error (position 12): GP A. Jansen started amlodipine ...".
fn correction_message(view: &PatientView, recorded: &RecordedEvent, corrected: u64) -> Message {
    let what = view
        .audit
        .iter()
        .find(|e| e.position() == corrected)
        .map_or_else(String::new, |e| e.summary.clone());
    let mut values = BTreeMap::new();
    values.insert("who".to_owned(), summary::who(recorded));
    values.insert("corrected".to_owned(), corrected.to_string());
    values.insert("what".to_owned(), what);
    values.insert("reason".to_owned(), recorded.record.reason.to_string());
    Message {
        template: "entered_in_error".to_owned(),
        values,
    }
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
    set_status(view, ack.notification, Some(ack.recipient), status);
}

/// A correction withdraws the corrected entry's notifications while they are open, and a
/// corrected acknowledgement leaves its notification open again.
pub(crate) fn apply_correction(view: &mut PatientView, recorded: &RecordedEvent) {
    let Event::EnteredInError(c) = recorded.event() else {
        return;
    };
    let open: Vec<Line> = view
        .notifications
        .iter()
        .filter(|n| n.position == c.position && n.status == NotificationStatus::Open)
        .map(|n| n.recipient)
        .collect();
    for recipient in open {
        let status = NotificationStatus::Withdrawn {
            correction: recorded.position,
        };
        set_status(view, c.position, Some(recipient), status);
    }
    let acknowledged = view.notifications.iter().find_map(|n| match n.status {
        NotificationStatus::Acknowledged { position, .. } if position == c.position => {
            Some((n.position, n.recipient))
        }
        _ => None,
    });
    if let Some((notification, recipient)) = acknowledged {
        set_status(
            view,
            notification,
            Some(recipient),
            NotificationStatus::Open,
        );
    }
}

/// Sets a notification's status (of one recipient), and the same in its audit entry.
fn set_status(
    view: &mut PatientView,
    notification: u64,
    recipient: Option<Line>,
    status: NotificationStatus,
) {
    let matches =
        |position: u64, to: Line| position == notification && recipient.is_none_or(|r| r == to);
    for n in view
        .notifications
        .iter_mut()
        .filter(|n| matches(n.position, n.recipient))
    {
        n.status = status.clone();
    }
    if let Some(entry) = view.audit.iter_mut().find(|e| e.position() == notification) {
        for told in entry
            .notified
            .iter_mut()
            .filter(|t| recipient.is_none_or(|r| r == t.recipient))
        {
            told.status = status.clone();
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
