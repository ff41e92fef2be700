//! careledger-projections: read models folded from the ledger's recorded events.
//!
//! - [`plan`]: the current individual care plan (IZP) of each patient, with provenance;
//! - [`audit`]: the audit trail, filterable, with the notification status of each change;
//! - [`notifications`]: the notify-the-other-party messages;
//! - [`signals`]: duplicate lab work, annual lab due, target not met, home-measurement trends,
//!   and the lab-order signals of [`lab`];
//! - [`message`]: the structured text of each event (a template and language-neutral values),
//!   which notifications and the audit trail keep and [`labels`] renders;
//! - [`labels`]: human labels in Dutch and English for every front end, times in Europe/Amsterdam;
//! - [`clinical`]: intolerances, problems, indications and smoking status in the plan;
//! - [`store`]: the projections on disk in their own sled database, with their checkpoint, the
//!   indexes across patients and a bounded cache of decoded views.
//!
//! **Invariant:** projections do no IO and read no clock: [`ReadModel::apply`] is a pure fold over
//! recorded events, and "now" is passed in by the caller wherever time matters.
#![deny(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod audit;
pub mod clinical;
pub mod lab;
pub mod labels;
pub mod message;
pub mod notifications;
pub mod plan;
mod shared;
pub mod signals;
pub mod store;
mod summary;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use careledger_core::ids::{ActorId, PatientId, Text};
use careledger_core::record::{Hash, RecordedEvent, Timestamp};
use careledger_core::role::{Line, Role};

pub use audit::{AuditEntry, AuditFilter};
pub use notifications::{Notification, NotificationStatus};
pub use plan::CarePlan;
pub use signals::Signal;
pub use store::{fhir_key, CacheStats, ProjectionError, Projections};

/// Settings of the read models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectionConfig {
    /// An open notification becomes overdue after this many days.
    pub overdue_after_days: u32,
    /// The same lab test within this many days is duplicate lab work (agreement 7).
    pub duplicate_lab_window_days: u32,
    /// Self-measured readings averaged by the trend signal.
    pub trend_readings: u32,
    /// A lab order with tests still pending expires after this many days and shows as
    /// `pending since <date>` (a Dutch lab request form is valid for about three months).
    pub lab_order_expiry_days: u32,
    /// The budget of the cache of decoded views, in bytes (an estimate per view): views beyond
    /// it are evicted once they are stored (`docs/performance.md`, the memory budget).
    pub view_cache_bytes: u64,
    /// sled's page cache for the read models' database, in bytes.
    pub sled_cache_bytes: u64,
}

/// The view cache's share of the default memory budget of 512 MiB (`careledger serve
/// --memory-budget`; `careledger_app::MemoryBudget` divides it).
pub const DEFAULT_VIEW_CACHE_BYTES: u64 = 192 << 20;
/// The read models' sled cache's share of the default memory budget of 512 MiB.
pub const DEFAULT_SLED_CACHE_BYTES: u64 = 48 << 20;

impl Default for ProjectionConfig {
    fn default() -> Self {
        Self {
            overdue_after_days: 7,
            duplicate_lab_window_days: careledger_core::duplicate_lab::DEFAULT_WINDOW_DAYS,
            trend_readings: 3,
            lab_order_expiry_days: 90,
            view_cache_bytes: DEFAULT_VIEW_CACHE_BYTES,
            sled_cache_bytes: DEFAULT_SLED_CACHE_BYTES,
        }
    }
}

/// Where an element of the plan comes from: the event that set it. One event's provenance is
/// shared by everything the event made in a view (its audit entry, the element it set, a
/// reading in a series, a correction's mark): cloning it copies a pointer.
///
/// Its serde form is its fields, except in a view encoded for the store, where a provenance
/// the view gave before is a reference to its position (`shared.rs`).
#[derive(Clone, PartialEq, Eq)]
pub struct Provenance(std::sync::Arc<ProvenanceFields>);

/// What a [`Provenance`] says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenanceFields {
    /// Global position of the event.
    pub position: u64,
    /// Its hash, which proves it.
    pub hash: Hash,
    /// Who recorded it.
    pub actor: ActorId,
    /// Their display name.
    pub actor_name: Text,
    /// The role they acted in.
    pub role: Role,
    /// Their line.
    pub line: Line,
    /// When the ledger recorded it.
    pub recorded_at: Timestamp,
    /// When it happened, by the clinician's word.
    pub occurred_at: Timestamp,
    /// Why.
    pub reason: Text,
}

impl Provenance {
    /// The provenance of a recorded event.
    pub fn of(recorded: &RecordedEvent) -> Self {
        let r = &recorded.record;
        Provenance::new(ProvenanceFields {
            position: recorded.position,
            hash: recorded.hash,
            actor: r.actor.id.clone(),
            actor_name: r.actor.name.clone(),
            role: r.actor.role,
            line: r.actor.line(),
            recorded_at: r.recorded_at,
            occurred_at: r.occurred_at,
            reason: r.reason.clone(),
        })
    }

    /// A provenance of these fields.
    pub fn new(fields: ProvenanceFields) -> Self {
        Provenance(std::sync::Arc::new(fields))
    }

    /// True when both are the same provenance in memory, not merely equal.
    pub fn shares(&self, other: &Provenance) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for Provenance {
    type Target = ProvenanceFields;

    fn deref(&self) -> &ProvenanceFields {
        &self.0
    }
}

impl std::fmt::Debug for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Everything derived for one patient.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientView {
    /// The current plan.
    pub plan: CarePlan,
    /// The audit trail, in ledger order.
    pub audit: Vec<AuditEntry>,
    /// Notify-the-other-party messages, in ledger order.
    pub notifications: Vec<Notification>,
}

impl PatientView {
    /// Folds one of this patient's recorded events in; returns false when the view already
    /// holds it. Every event adds one audit entry to its patient's view, so a view that holds an
    /// event at or after this position (one stored ahead of the checkpoint stored with it, or
    /// folded further by an earlier pass of a rebuild) is left as it is.
    pub fn apply(&mut self, recorded: &RecordedEvent) -> bool {
        if self
            .audit
            .last()
            .is_some_and(|e| e.position() >= recorded.position)
        {
            return false;
        }
        let context = notify_context(self, recorded);
        let text = std::sync::Arc::new(message::for_event(self, recorded));
        let notified = notifications::derive(self, recorded, context, &text);
        // One provenance per event, shared by everything the event makes in the view.
        let provenance = Provenance::of(recorded);
        audit::record(self, recorded, &provenance, &notified, text);
        clinical::apply(&mut self.plan, recorded, &provenance);
        lab::apply(&mut self.plan, recorded, &provenance);
        plan::apply(&mut self.plan, recorded, &provenance);
        self.notifications.extend(notified);
        notifications::apply_acknowledgement(self, recorded);
        notifications::apply_correction(self, recorded);
        true
    }

    /// The position of the last event folded in (0 for an empty view).
    pub fn last_position(&self) -> u64 {
        self.audit.last().map_or(0, |e| e.position())
    }
}

/// What the notify rule needs of the team, read from the view before the event is applied: the
/// same facts `PatientState::notify_context` reads in the write model.
fn notify_context(
    view: &PatientView,
    recorded: &RecordedEvent,
) -> careledger_core::notify::Context {
    let team = view.plan.care_team.iter().map(|m| (&m.actor, m.role));
    let shared_care = view.plan.shared_care.is_some();
    let author = &recorded.record.actor.id;
    let emergency = view
        .plan
        .emergency_access
        .iter()
        .any(|e| &e.opened.actor == author);
    careledger_core::notify::Context::before(recorded.event(), shared_care, team, author, emergency)
}

/// Every patient's [`PatientView`] in memory, and the position folded up to: the fold of a
/// whole history where it is small (an export's verification, tests). The server's read models
/// are [`Projections`], on disk behind a bounded cache.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadModel {
    /// The last position applied.
    pub checkpoint: u64,
    /// Per patient.
    pub patients: BTreeMap<PatientId, PatientView>,
}

impl ReadModel {
    /// Folds one recorded event in. Events are applied in position order; applying an event at
    /// or below the checkpoint is a programmer error.
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        assert!(
            recorded.position > self.checkpoint,
            "events are applied once, in order"
        );
        // The key stream holds no patient's plan: no view, no audit entry.
        if careledger_core::signing_keys::is_key_stream(&recorded.record.patient) {
            self.checkpoint = recorded.position;
            return;
        }
        let view = self
            .patients
            .entry(recorded.record.patient.clone())
            .or_default();
        view.apply(recorded);
        self.checkpoint = recorded.position;
    }

    /// One patient's view.
    pub fn patient(&self, patient: &PatientId) -> Option<&PatientView> {
        self.patients.get(patient)
    }
}
