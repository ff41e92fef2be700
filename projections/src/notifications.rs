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
pub(crate) fn derive(
    view: &PatientView,
    recorded: &RecordedEvent,
    shared_care: bool,
) -> Option<Notification> {
    let _ = view;
    let record = &recorded.record;
    let recipient = notify::recipient(&record.event, record.actor.line(), shared_care)?;
    Some(Notification {
        id: format!("n-{}", recorded.position),
        patient: record.patient.clone(),
        recipient,
        position: recorded.position,
        kind: record.event.kind().to_owned(),
        summary: summary::sentence(recorded),
        reason: record.reason.to_string(),
        created_at: record.recorded_at,
        status: NotificationStatus::Open,
    })
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
    if let Some(n) = view
        .notifications
        .iter_mut()
        .find(|n| n.position == ack.notification)
    {
        n.status = status.clone();
    }
    if let Some(entry) = view
        .audit
        .iter_mut()
        .find(|e| e.position() == ack.notification)
    {
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
