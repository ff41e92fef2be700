//! Notify-the-other-party messages, derived from the events with `careledger_core::notify`.
//!
//! Derived, not stored separately: nothing can be lost between writing an event and notifying.

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

/// A message to the other line about an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Stable id: `n-<position of the causing event>`.
    pub id: String,
    /// The patient.
    pub patient: PatientId,
    /// The line that must be told.
    pub recipient: Line,
    /// The causing event's position; also what an acknowledgement names.
    pub position: u64,
    /// The causing event's kind (`medication_stopped`).
    pub kind: String,
    /// One sentence for the recipient.
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

/// The notification an event causes, if any.
///
/// A correction (`entered_in_error`) tells the line that was told of the corrected entry, or of
/// the entries it voids, or that wrote those (`careledger_core::notify::correction_recipient`, as
/// `decide` does); its sentence names what was corrected.
pub(crate) fn derive(
    view: &PatientView,
    recorded: &RecordedEvent,
    shared_care: bool,
) -> Option<Notification> {
    let record = &recorded.record;
    let author = record.actor.line();
    let (recipient, summary) = match &record.event {
        Event::EnteredInError(c) => {
            let voided = view.plan.voided_by(c.position);
            let told = std::iter::once(c.position)
                .chain(voided.iter().map(|(p, _)| *p))
                .filter_map(|p| view.notifications.iter().find(|n| n.position == p))
                .map(|n| n.recipient)
                .chain(voided.iter().map(|(_, line)| *line));
            let recipient = notify::correction_recipient(author, told)?;
            (recipient, correction_sentence(view, recorded, c.position))
        }
        event => (
            notify::recipient(event, author, shared_care)?,
            summary::sentence(recorded),
        ),
    };
    Some(Notification {
        id: format!("n-{}", recorded.position),
        patient: record.patient.clone(),
        recipient,
        position: recorded.position,
        kind: record.event.kind().to_owned(),
        summary,
        reason: record.reason.to_string(),
        created_at: record.recorded_at,
        status: NotificationStatus::Open,
    })
}

/// "GP A. Jansen marked as entered in error: GP A. Jansen started amlodipine ... (position 12)".
fn correction_sentence(view: &PatientView, recorded: &RecordedEvent, corrected: u64) -> String {
    let what = view
        .audit
        .iter()
        .find(|e| e.position() == corrected)
        .map_or_else(String::new, |e| format!(": {}", e.summary));
    let actor = &recorded.record.actor;
    format!(
        "{} {} marked as entered in error (position {corrected}){what}",
        summary::capitalise(&actor.role.to_string()),
        actor.name
    )
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
    set_status(view, ack.notification, status);
}

/// A correction withdraws the corrected entry's notification while it is open, and a corrected
/// acknowledgement leaves its notification open again.
pub(crate) fn apply_correction(view: &mut PatientView, recorded: &RecordedEvent) {
    let Event::EnteredInError(c) = recorded.event() else {
        return;
    };
    let open = view
        .notifications
        .iter()
        .any(|n| n.position == c.position && n.status == NotificationStatus::Open);
    if open {
        let status = NotificationStatus::Withdrawn {
            correction: recorded.position,
        };
        set_status(view, c.position, status);
    }
    let acknowledged = view.notifications.iter().find_map(|n| match n.status {
        NotificationStatus::Acknowledged { position, .. } if position == c.position => {
            Some(n.position)
        }
        _ => None,
    });
    if let Some(notification) = acknowledged {
        set_status(view, notification, NotificationStatus::Open);
    }
}

/// Sets a notification's status, and the same in its audit entry.
fn set_status(view: &mut PatientView, notification: u64, status: NotificationStatus) {
    if let Some(n) = view
        .notifications
        .iter_mut()
        .find(|n| n.position == notification)
    {
        n.status = status.clone();
    }
    if let Some(entry) = view.audit.iter_mut().find(|e| e.position() == notification) {
        if let Some(told) = entry.notification.as_mut() {
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
