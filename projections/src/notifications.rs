//! Notify-the-other-party messages, derived from the events with `careledger_core::notify`:
//! one per recipient (the other line, the patient), each acknowledged on its own.
//!
//! Derived, not stored separately: nothing can be lost between writing an event and notifying.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use careledger_core::event::Event;
use careledger_core::ids::{ActorId, PatientId};
use careledger_core::notify;
use careledger_core::record::{RecordedEvent, Timestamp};
use careledger_core::role::Line;

use crate::{PatientView, ProjectionConfig};

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

pub use crate::message::{Message, Word};

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
    pub kind: Word,
    /// The text, structured (shared with the causing event's audit entry while folding).
    #[serde(with = "crate::shared::message")]
    pub message: Arc<Message>,
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

    /// The text in English: the message rendered when read, never stored.
    pub fn summary(&self) -> String {
        self.message.english()
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
    message: &Arc<Message>,
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
    recipients
        .into_iter()
        .map(|recipient| Notification {
            id: notify::notification_id(recorded.position, recipient),
            patient: record.patient.clone(),
            recipient,
            position: recorded.position,
            kind: Word::Borrowed(record.event.kind()),
            message: Arc::clone(message),
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
