//! The one way read models advance while the ledger takes writes.
//!
//! The ledger tells the projector each new durable position (`Ledger::on_durable`); the
//! projector's thread applies the new events to the read models and publishes the position it
//! reached. A caller that must read its own write (an HTTP append, the demo) waits for that
//! position. A second thread writes the read models' changes to disk now and then, so that a
//! restart catches up from a recent checkpoint; `finish` applies and writes the last changes.
//!
//! Nothing else applies or persists the read models of a running data directory: opening one
//! catches them up first ([`crate::DataDir::open`]), and a rebuild starts from nothing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use careledger_core::Ledger;
use careledger_projections::{ProjectionError, Projections};

/// How long the apply thread waits before trying again after a failure.
const RETRY_APPLY: Duration = Duration::from_secs(1);

/// How often the read models' changes are written at the least.
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// What the apply thread waits on: the newest durable position, and whether to stop.
#[derive(Default)]
struct Wake {
    durable: Mutex<(u64, bool)>,
    signal: Condvar,
}

/// The projector of one data directory: applies durable events to the read models and persists
/// them, each on its own thread.
pub struct Projector {
    projected: watch::Receiver<u64>,
    wake: Arc<Wake>,
    stop_persisting: Arc<(Mutex<bool>, Condvar)>,
    apply: Option<JoinHandle<()>>,
    persist: Option<JoinHandle<()>>,
    projections: Arc<Projections>,
    ledger: Arc<Ledger>,
    failed: Arc<AtomicBool>,
}

impl Projector {
    /// Starts following `ledger` from the read models' checkpoint.
    pub fn start(ledger: Arc<Ledger>, projections: Arc<Projections>) -> Projector {
        let wake = Arc::new(Wake::default());
        wake.durable.lock().0 = ledger.head().position;
        let (tx, projected) = watch::channel(projections.checkpoint());
        {
            let wake = wake.clone();
            ledger.on_durable(move |position| {
                let mut durable = wake.durable.lock();
                if position > durable.0 {
                    durable.0 = position;
                    wake.signal.notify_one();
                }
            });
        }
        let failed = Arc::new(AtomicBool::new(false));
        let apply = {
            let (wake, ledger, projections, failed) = (
                wake.clone(),
                ledger.clone(),
                projections.clone(),
                failed.clone(),
            );
            std::thread::Builder::new()
                .name("projector".into())
                .spawn(move || apply_loop(&wake, &ledger, &projections, &tx, &failed))
                .ok()
        };
        let stop_persisting = Arc::new((Mutex::new(false), Condvar::new()));
        let persist = {
            let (stop, projections) = (stop_persisting.clone(), projections.clone());
            std::thread::Builder::new()
                .name("projector-persist".into())
                .spawn(move || persist_loop(&stop, &projections))
                .ok()
        };
        if apply.is_none() || persist.is_none() {
            tracing::error!(
                "the projector's threads could not start; reads show the state at open"
            );
        }
        Projector {
            projected,
            wake,
            stop_persisting,
            apply,
            persist,
            projections,
            ledger,
            failed,
        }
    }

    /// The position the read models have reached.
    pub fn position(&self) -> u64 {
        *self.projected.borrow()
    }

    /// Waits until the read models show `position`, for at most `limit`; false when they did
    /// not get there in time (the events are durable all the same; the read models follow).
    pub async fn reached(&self, position: u64, limit: Duration) -> bool {
        let mut projected = self.projected.clone();
        let reached = tokio::time::timeout(limit, projected.wait_for(|p| *p >= position)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// As [`Projector::reached`], for callers outside an async runtime.
    pub fn reached_blocking(&self, position: u64, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut projected = self.projected.clone();
        loop {
            if *projected.borrow_and_update() >= position {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// True while applying fails (the read models stay behind until the store recovers).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Stops both threads, applies what is durable and writes the read models to disk.
    pub fn finish(mut self) -> Result<(), ProjectionError> {
        self.stop_threads();
        self.projections.apply_new(&self.ledger)?;
        self.projections.persist()?;
        self.projections.flush()
    }

    fn stop_threads(&mut self) {
        {
            let mut durable = self.wake.durable.lock();
            durable.1 = true;
            self.wake.signal.notify_one();
        }
        {
            let (stop, signal) = &*self.stop_persisting;
            *stop.lock() = true;
            signal.notify_one();
        }
        for thread in [self.apply.take(), self.persist.take()]
            .into_iter()
            .flatten()
        {
            let _ = thread.join();
        }
    }
}

impl Drop for Projector {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn apply_loop(
    wake: &Wake,
    ledger: &Ledger,
    projections: &Projections,
    projected: &watch::Sender<u64>,
    failed: &AtomicBool,
) {
    loop {
        {
            let mut durable = wake.durable.lock();
            while durable.0 <= projections.checkpoint() && !durable.1 {
                wake.signal.wait(&mut durable);
            }
            if durable.1 {
                return;
            }
        }
        match projections.apply_new(ledger) {
            Ok(_) => {
                if failed.swap(false, Ordering::AcqRel) {
                    tracing::info!("the read models apply new events again");
                }
                projected.send_replace(projections.checkpoint());
            }
            Err(e) => {
                // A storage failure (a full disk): the store reopens once the disk takes writes
                // again, tried here every second.
                if !failed.swap(true, Ordering::AcqRel) {
                    tracing::error!(error = %e, "the read models could not apply new events; retrying every second");
                }
                let mut durable = wake.durable.lock();
                if !durable.1 {
                    wake.signal.wait_for(&mut durable, RETRY_APPLY);
                }
                continue;
            }
        }
    }
}

/// Writes the read models' changes every second; when writing takes long (large views changing
/// all the time) the pause grows to ten times the time taken, so that persisting keeps to a
/// tenth of a core.
fn persist_loop(stop: &(Mutex<bool>, Condvar), projections: &Projections) {
    let (stopped, signal) = stop;
    let mut pause = PERSIST_EVERY;
    let mut failing = false;
    loop {
        {
            let mut stopped = stopped.lock();
            if !*stopped {
                signal.wait_for(&mut stopped, pause);
            }
            if *stopped {
                return;
            }
        }
        let started = Instant::now();
        match projections.persist() {
            // Once per episode: the store reopens by itself when the disk takes writes again.
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "persisting the read models failed; retrying every second");
            }
            Err(_) => {}
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the read models are persisted again");
            }
            Ok(()) => {}
        }
        pause = PERSIST_EVERY.max(started.elapsed() * 10);
    }
}
