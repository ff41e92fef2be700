//! Time and new identities as the ledger gets them: a [`Clock`] and an [`IdSource`], passed in
//! with [`crate::ledger::LedgerConfig`], so that a test or a seeded simulation can fix both and
//! replay a run exactly.
//!
//! The ledger reads its clock for an event's `recorded_at` and for the timing of its retries
//! after a storage failure; the checkpointer reads the ledger's clock for its interval. Nothing
//! else in this crate reads the system clock for the ledger's behaviour. (The group commit's
//! wait of a millisecond for appenders about to commit is a bound on a spin, not domain time,
//! and stays on the system's monotonic clock.)

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ids::Uid;
use crate::record::Timestamp;

/// Where the ledger takes the time from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The wall-clock time: when an event is recorded.
    fn now(&self) -> Timestamp;
    /// A monotonic instant, for intervals: retries, the checkpointer's timer.
    fn instant(&self) -> Instant;
}

/// The system's clocks: [`Timestamp::now`] and [`Instant::now`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that stands still until [`ManualClock::advance`] moves it; its wall-clock time and
/// its instant move together. For tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    start: Timestamp,
    origin: Instant,
    elapsed_micros: AtomicU64,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            start,
            origin: Instant::now(),
            elapsed_micros: AtomicU64::new(0),
        }
    }

    /// Moves the clock forward by `by` (to the microsecond).
    pub fn advance(&self, by: Duration) {
        let micros = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.elapsed_micros.fetch_add(micros, Ordering::SeqCst);
    }

    fn elapsed(&self) -> u64 {
        self.elapsed_micros.load(Ordering::SeqCst)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let elapsed = i64::try_from(self.elapsed()).unwrap_or(i64::MAX);
        Timestamp::from_micros(self.start.micros().saturating_add(elapsed))
    }

    fn instant(&self) -> Instant {
        self.origin + Duration::from_micros(self.elapsed())
    }
}

/// Where the ledger takes new event ids (and correlation ids a request leaves out) from.
pub trait IdSource: Send + Sync + fmt::Debug {
    /// A new id, different from every id this source gave before.
    fn next_id(&self) -> Uid;
}

/// Random version 4 UUIDs ([`Uid::random`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct RandomIds;

impl IdSource for RandomIds {
    fn next_id(&self) -> Uid {
        Uid::random()
    }
}

/// Ids from a seed: the same seed gives the same ids in the same order, each a well-formed
/// version 4 UUID. For tests and simulations.
#[derive(Debug)]
pub struct SeededIds {
    seed: u64,
    next: AtomicU64,
}

impl SeededIds {
    /// Ids drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        SeededIds {
            seed,
            next: AtomicU64::new(0),
        }
    }
}

/// SplitMix64's output function: consecutive inputs give well-mixed, distinct outputs.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl IdSource for SeededIds {
    fn next_id(&self) -> Uid {
        const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let base = self
            .seed
            .wrapping_add(n.wrapping_mul(2).wrapping_mul(GOLDEN));
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&mix(base).to_be_bytes());
        bytes[8..].copy_from_slice(&mix(base.wrapping_add(GOLDEN)).to_be_bytes());
        // Version 4, variant RFC 4122: the ids read as the random ones do.
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uid(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_its_time_and_its_instant_together_only_when_advanced() {
        let start = Timestamp::from_micros(1_772_355_600_000_000);
        let clock = ManualClock::new(start);
        let (t0, i0) = (clock.now(), clock.instant());
        assert_eq!((clock.now(), clock.instant()), (t0, i0), "it stands still");
        assert_eq!(t0, start);
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now().micros(), start.micros() + 90_000_000);
        assert_eq!(clock.instant() - i0, Duration::from_secs(90));
    }

    #[test]
    fn seeded_ids_repeat_for_a_seed_differ_between_seeds_and_are_v4_uuids() {
        let ids = |seed| {
            let source = SeededIds::new(seed);
            (0..1000).map(|_| source.next_id()).collect::<Vec<_>>()
        };
        let first = ids(7);
        assert_eq!(first, ids(7));
        assert_ne!(first, ids(8));
        let distinct: std::collections::HashSet<_> = first.iter().collect();
        assert_eq!(distinct.len(), first.len());
        for id in &first {
            let parsed = uuid::Uuid::from_bytes(id.0);
            assert_eq!(parsed.get_version_num(), 4);
            assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
        }
    }
}
