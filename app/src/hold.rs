//! Holds on writes: reasons, outside the ledger, why a running server takes no writes while it
//! serves reads and verification, until the operator acts or the cause goes away.
//!
//! - [`HoldKind::DiskFull`]: the data directory's reserve was released so that the stores could
//!   open on a full disk; lifted by itself once the reserve can be made again
//!   ([`crate::recovery`]).
//! - [`HoldKind::BehindWitnessed`]: a restored ledger holds fewer events than a checkpoint that
//!   was signed (and witnessed) before the backup; lifted when the events are brought back or
//!   the operator records the loss (`careledger restore --accept-loss`, [`crate::backup`]).

use parking_lot::RwLock;

/// Why writes are held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HoldKind {
    /// The disk is full: the reserve was released to open the stores.
    DiskFull,
    /// A restored ledger lacks acknowledged events that a signed checkpoint covers.
    BehindWitnessed,
}

impl HoldKind {
    /// The stable snake_case code of the hold (the API's problem code, `/health`'s class).
    pub fn as_str(self) -> &'static str {
        match self {
            HoldKind::DiskFull => "disk_full",
            HoldKind::BehindWitnessed => "behind_witnessed_checkpoint",
        }
    }
}

/// One hold: its kind, the reason with what the operator does, and for a restored ledger how
/// many acknowledged events it lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteHold {
    /// Why.
    pub kind: HoldKind,
    /// What is wrong and what the operator does, as a sentence.
    pub reason: String,
    /// Acknowledged events the ledger lacks ([`HoldKind::BehindWitnessed`]).
    pub missing_events: Option<u64>,
}

/// The holds of one data directory, shared by the app and what lifts them.
#[derive(Debug, Default)]
pub struct WriteHolds {
    holds: RwLock<Vec<WriteHold>>,
}

impl WriteHolds {
    /// Holds writes for `hold`'s reason, replacing an earlier hold of the same kind.
    pub fn hold(&self, hold: WriteHold) {
        let mut holds = self.holds.write();
        holds.retain(|h| h.kind != hold.kind);
        tracing::error!(kind = hold.kind.as_str(), reason = %hold.reason, "writes are held");
        holds.push(hold);
    }

    /// Lifts the hold of `kind`; true when there was one.
    pub fn lift(&self, kind: HoldKind) -> bool {
        let mut holds = self.holds.write();
        let before = holds.len();
        holds.retain(|h| h.kind != kind);
        let lifted = holds.len() < before;
        if lifted {
            tracing::info!(kind = kind.as_str(), "writes are no longer held");
        }
        lifted
    }

    /// The first hold, if writes are held.
    pub fn current(&self) -> Option<WriteHold> {
        self.holds.read().first().cloned()
    }

    /// True while a hold of `kind` is in place.
    pub fn is_held(&self, kind: HoldKind) -> bool {
        self.holds.read().iter().any(|h| h.kind == kind)
    }
}
