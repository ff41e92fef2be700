//! Where an append's time goes, phase by phase: HTTP, authentication, deciding, encoding,
//! sled, the journal's `fdatasync`, the read models, the response.
//!
//! Off unless [`enable`] is called (`careledger serve` does when `CARELEDGER_TIMINGS=1`): a
//! phase then costs one relaxed load. When on, each phase adds its count and its time to two
//! counters, and [`table`] prints the mean per request of each, which is how
//! `docs/performance.md` breaks an append down. The phases nest (a request holds all the
//! others), so they do not add up to the request's time; what is left over is the HTTP server's
//! own work (reading the request, routing, writing the response to the socket).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A phase of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The whole request, from the first middleware to the response built.
    Request,
    /// Reading the bearer token and looking up its actor.
    Authenticate,
    /// The access log's middleware: taking a permit, building and queueing the entry
    /// (authentication included: it is done there once per request).
    AccessLog,
    /// Parsing and checking the body into commands.
    Parse,
    /// Waiting for the writer lock.
    WriterLock,
    /// Under the writer lock: folding, the rules, numbering, encoding and staging.
    Decide,
    /// Encoding records and frames and hashing them onto the chain (part of `Decide`).
    Encode,
    /// Waiting until the append is durable: the group commit, as the appender sees it.
    Durable,
    /// The leader's write of the group's batch to sled (no sync).
    SledWrite,
    /// The leader's write and `fdatasync` of the group's journal entry.
    JournalSync,
    /// The leader's sled flush and `fdatasync` (a ledger without a journal, and checkpoints).
    SledSync,
    /// The leader's anchor write and `fdatasync` (a ledger without a journal, and checkpoints).
    AnchorSync,
    /// A checkpoint: sled synced, events anchored, the journal emptied.
    Checkpoint,
    /// A read waiting until the read models show the writes acknowledged before it.
    Projection,
    /// A write waiting for read models more than `PROJECTION_LAG_LIMIT` events behind.
    KeepUp,
    /// Building the response.
    Response,
}

impl Phase {
    /// Every phase, in the order a table lists them.
    pub const ALL: [Phase; 16] = [
        Phase::Request,
        Phase::Authenticate,
        Phase::AccessLog,
        Phase::Parse,
        Phase::WriterLock,
        Phase::Decide,
        Phase::Encode,
        Phase::Durable,
        Phase::SledWrite,
        Phase::JournalSync,
        Phase::SledSync,
        Phase::AnchorSync,
        Phase::Checkpoint,
        Phase::Projection,
        Phase::KeepUp,
        Phase::Response,
    ];

    /// The phase's name in tables and logs.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Request => "request",
            Phase::Authenticate => "authenticate",
            Phase::AccessLog => "access log",
            Phase::Parse => "parse",
            Phase::WriterLock => "writer lock",
            Phase::Decide => "decide",
            Phase::Encode => "  encode",
            Phase::Durable => "durable",
            Phase::SledWrite => "  sled write",
            Phase::JournalSync => "  journal sync",
            Phase::SledSync => "  sled flush+fdatasync",
            Phase::AnchorSync => "  anchor fdatasync",
            Phase::Checkpoint => "  checkpoint",
            Phase::Projection => "read waits for read models",
            Phase::KeepUp => "write waits for read models",
            Phase::Response => "response",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Set to `1` for `careledger serve` to count phases and print the table when it stops.
pub const TIMINGS_ENV: &str = "CARELEDGER_TIMINGS";

const PHASES: usize = Phase::ALL.len();

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTAL_NANOS: [AtomicU64; PHASES] = [const { AtomicU64::new(0) }; PHASES];
static COUNT: [AtomicU64; PHASES] = [const { AtomicU64::new(0) }; PHASES];

/// Starts counting (for the rest of the process).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether phases are counted.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Sets every counter to zero (after a warm-up).
pub fn reset() {
    for (total, count) in TOTAL_NANOS.iter().zip(COUNT.iter()) {
        total.store(0, Ordering::Relaxed);
        count.store(0, Ordering::Relaxed);
    }
}

/// Adds one occurrence of `phase` that took `took`.
pub fn record(phase: Phase, took: Duration) {
    if enabled() {
        let i = phase.index();
        TOTAL_NANOS[i].fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        COUNT[i].fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts the time until it is dropped as one occurrence of its phase.
#[must_use = "the phase is counted when the timer is dropped"]
pub struct Timer(Option<(Phase, Instant)>);

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some((phase, started)) = self.0 {
            record(phase, started.elapsed());
        }
    }
}

/// Starts timing one occurrence of `phase` (nothing when counting is off).
pub fn start(phase: Phase) -> Timer {
    Timer(enabled().then(|| (phase, Instant::now())))
}

/// One phase's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseTotal {
    /// The phase.
    pub phase: Phase,
    /// How often it occurred.
    pub count: u64,
    /// Its time, summed.
    pub total: Duration,
}

/// Every phase's counters now.
pub fn totals() -> Vec<PhaseTotal> {
    Phase::ALL
        .iter()
        .map(|&phase| PhaseTotal {
            phase,
            count: COUNT[phase.index()].load(Ordering::Relaxed),
            total: Duration::from_nanos(TOTAL_NANOS[phase.index()].load(Ordering::Relaxed)),
        })
        .collect()
}

/// The phases as a table: occurrences, mean time per occurrence and per request (µs).
pub fn table() -> String {
    let totals = totals();
    let requests = totals[Phase::Request.index()].count.max(1);
    let mut out = format!(
        "{:<24} {:>10} {:>14} {:>14}\n",
        "phase", "count", "µs each", "µs per request"
    );
    for t in totals.iter().filter(|t| t.count > 0) {
        let micros = t.total.as_secs_f64() * 1e6;
        out.push_str(&format!(
            "{:<24} {:>10} {:>14.1} {:>14.1}\n",
            t.phase.name(),
            t.count,
            micros / t.count as f64,
            micros / requests as f64
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_phase_is_listed_once_in_its_own_place() {
        for (i, phase) in Phase::ALL.iter().enumerate() {
            assert_eq!(phase.index(), i, "{phase:?}");
        }
    }

    #[test]
    fn phases_are_counted_only_once_enabled_and_the_table_lists_them() {
        // The counters are the process's: this is the only test in the crate that enables them.
        record(Phase::Parse, Duration::from_micros(5));
        assert_eq!(totals()[Phase::Parse.index()].count, 0);
        enable();
        record(Phase::Request, Duration::from_micros(300));
        record(Phase::Request, Duration::from_micros(100));
        record(Phase::JournalSync, Duration::from_micros(120));
        drop(start(Phase::Decide));
        let totals = totals();
        assert_eq!(totals[Phase::Request.index()].count, 2);
        assert_eq!(
            totals[Phase::Request.index()].total,
            Duration::from_micros(400)
        );
        assert_eq!(totals[Phase::Decide.index()].count, 1);
        let table = table();
        assert!(table.contains("journal sync"), "{table}");
        // 120 µs once, over two requests: 60 per request.
        let line = table.lines().find(|l| l.contains("journal")).unwrap();
        assert!(line.trim_end().ends_with("60.0"), "{line}");
        assert!(!table.contains("parse"), "{table}");
        reset();
        assert!(super::totals().iter().all(|t| t.count == 0));
    }
}
