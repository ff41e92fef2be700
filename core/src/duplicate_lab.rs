//! Agreement 7's duplicate-lab rule, once: the write model warns with it when lab work is
//! recorded ([`crate::decide`]), and the read models show it as a signal on the plan.
//!
//! Lab work is a test of a lab order, or a lab result. The same test again, in either line, less
//! than a window of whole days from earlier lab work in clinical time (`occurred_at`, both ways:
//! a result entered late still lies next to the order it duplicates) is duplicate lab work. A
//! result naming its order is that order's work: it counts as earlier work, and is never itself a
//! duplicate (its callers do not ask). Work marked entered in error never counts: the callers
//! leave it out of the earlier work they pass.

use crate::quantity::Measure;
use crate::record::Timestamp;

/// The window, in days, of the write model's rules and of the read models unless configured
/// otherwise.
pub const DEFAULT_WINDOW_DAYS: u32 = 30;

/// One lab test ordered or resulted at a clinical time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabWork {
    /// The test.
    pub test: Measure,
    /// When it was ordered or the blood drawn (the clinician's time).
    pub occurred_at: Timestamp,
    /// The event that recorded it.
    pub position: u64,
}

/// The earlier lab work that `test` at `occurred_at` duplicates, if any: of the same test, less
/// than `window_days` whole days away in clinical time, the nearest; of two as near, the one
/// recorded last.
pub fn duplicated(
    window_days: u32,
    test: Measure,
    occurred_at: Timestamp,
    earlier: impl IntoIterator<Item = LabWork>,
) -> Option<LabWork> {
    let window = i64::from(window_days);
    earlier
        .into_iter()
        .filter(|work| work.test == test)
        .filter(|work| work.occurred_at.days_until(occurred_at).abs() < window)
        .min_by_key(|work| {
            let apart = (occurred_at.micros() - work.occurred_at.micros()).unsigned_abs();
            (apart, std::cmp::Reverse(work.position))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000_000;

    fn work(test: Measure, day: i64, position: u64) -> LabWork {
        LabWork {
            test,
            occurred_at: Timestamp::from_micros(day * DAY),
            position,
        }
    }

    #[test]
    fn the_nearest_work_of_the_same_test_inside_the_window_either_way_is_duplicated() {
        let ldl = Measure::LdlCholesterol;
        let earlier = [
            work(ldl, 100, 1),
            work(Measure::Hba1c, 119, 2),
            work(ldl, 110, 3),
            work(ldl, 125, 4),
        ];
        let at = Timestamp::from_micros(120 * DAY);
        assert_eq!(duplicated(30, ldl, at, earlier), Some(earlier[3]));
        assert_eq!(
            duplicated(30, ldl, at, earlier[..3].to_vec()),
            Some(earlier[2])
        );
        assert_eq!(
            duplicated(10, ldl, at, earlier[..3].to_vec()),
            None,
            "10 days is outside"
        );
        assert_eq!(duplicated(30, Measure::Egfr, at, earlier), None);
    }

    #[test]
    fn of_two_as_near_the_one_recorded_last_is_named() {
        let ldl = Measure::LdlCholesterol;
        let at = Timestamp::from_micros(50 * DAY);
        let earlier = [work(ldl, 45, 7), work(ldl, 45, 3)];
        assert_eq!(
            duplicated(30, ldl, at, earlier).map(|w| w.position),
            Some(7)
        );
    }
}
