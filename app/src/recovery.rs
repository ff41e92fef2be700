//! The recovery probe: a thread that brings a running server back to taking writes once the
//! cause of a storage failure or of a full disk is removed, without waiting for a write to
//! arrive (a load balancer that routes by `/health` never sends one to a server it sees down).
//!
//! Every [`PROBE_INTERVAL`] it
//! - reopens the ledger's storage after a storage failure ([`Ledger::recover`]: the storage
//!   reopens once a probe write succeeds), and
//! - while writes are held for a full disk, makes the data directory's reserve again once the
//!   file system has room for it, and then lifts the hold.
//!
//! It does nothing while all is well, and holds the ledger weakly, so that it never keeps a data
//! directory open.

use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::Duration;

use careledger_core::Ledger;

use crate::hold::{HoldKind, WriteHolds};
use crate::reserve::Reserve;

/// How often the probe looks.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Free space asked for beyond the reserve before it is made again: making it must not fill
/// the disk again at once.
pub(crate) const HEADROOM_BYTES: u64 = 4 * 1024 * 1024;

/// The probe's thread, stopped when dropped.
pub(crate) struct RecoveryProbe {
    _stop: Mutex<mpsc::Sender<()>>,
}

impl RecoveryProbe {
    /// Starts probing `ledger` and the full-disk hold of `holds`.
    pub(crate) fn start(ledger: &Arc<Ledger>, holds: &Arc<WriteHolds>, reserve: Reserve) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let ledger = Arc::downgrade(ledger);
        let holds = Arc::downgrade(holds);
        let spawned = std::thread::Builder::new()
            .name("recovery-probe".into())
            .spawn(move || run(&ledger, &holds, &reserve, &stopped));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no recovery probe: writes resume only when one arrives");
        }
        RecoveryProbe {
            _stop: Mutex::new(stop),
        }
    }
}

fn run(
    ledger: &Weak<Ledger>,
    holds: &Weak<WriteHolds>,
    reserve: &Reserve,
    stopped: &mpsc::Receiver<()>,
) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(PROBE_INTERVAL) {
        let (Some(ledger), Some(holds)) = (ledger.upgrade(), holds.upgrade()) else {
            return;
        };
        probe(&ledger, &holds, reserve);
    }
}

/// One look: reopen a failed storage, make the reserve again after a full disk.
pub(crate) fn probe(ledger: &Ledger, holds: &WriteHolds, reserve: &Reserve) {
    if ledger.head_problem().is_some() && ledger.damage().is_none() {
        match ledger.recover() {
            Ok(()) => tracing::info!("the ledger's storage reopened; writes resume"),
            Err(e) => tracing::debug!(error = %e, "the ledger's storage is still failing"),
        }
    }
    if holds.is_held(HoldKind::DiskFull) && has_room_for(reserve) {
        match reserve.ensure() {
            Ok(()) => {
                holds.lift(HoldKind::DiskFull);
            }
            Err(e) => tracing::warn!(error = %e, "the disk is still too full for the reserve"),
        }
    }
}

/// True when the file system holding the reserve has room for it and some headroom.
fn has_room_for(reserve: &Reserve) -> bool {
    let dir = reserve.path().parent().unwrap_or(reserve.path());
    fs2::available_space(dir).is_ok_and(|free| free >= reserve.bytes() + HEADROOM_BYTES)
}
