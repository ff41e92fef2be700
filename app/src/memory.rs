//! One memory budget for a server, divided between its caches.
//!
//! The ledger, the read models, the actors and the access log are four sled databases, each
//! with a page cache sled keeps under a bound of its own; the read models keep decoded views in
//! a cache of their own, and the HTTP layer keeps rendered plans. `careledger serve
//! --memory-budget` sets the total; [`MemoryBudget`] divides it in fixed shares (64ths), and
//! what is left is headroom for everything not cached (threads' stacks, connections, request
//! buffers, the allocator's slack). `docs/performance.md` lists the split.

/// The memory budget of a server, in bytes, and its shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    total: u64,
}

/// The default budget, in MiB.
pub const DEFAULT_MEMORY_BUDGET_MIB: u64 = 512;
/// The smallest budget accepted, in MiB: below it the caches' shares are too small to hold
/// a sled node or a large plan.
pub const MIN_MEMORY_BUDGET_MIB: u64 = 64;

/// The shares, in 64ths of the total.
const VIEW_CACHE: u64 = 24;
const LEDGER_SLED: u64 = 16;
const PROJECTIONS_SLED: u64 = 6;
const PLAN_JSON: u64 = 4;
const ACCESS_LOG_SLED: u64 = 2;
const ACTORS_SLED: u64 = 1;

impl Default for MemoryBudget {
    fn default() -> Self {
        Self {
            total: DEFAULT_MEMORY_BUDGET_MIB << 20,
        }
    }
}

impl MemoryBudget {
    /// A budget of `mib` MiB; an error saying what is accepted when it is below
    /// [`MIN_MEMORY_BUDGET_MIB`].
    pub fn from_mib(mib: u64) -> Result<Self, String> {
        if mib < MIN_MEMORY_BUDGET_MIB {
            return Err(format!(
                "a memory budget of {mib} MiB is too small; give at least {MIN_MEMORY_BUDGET_MIB} MiB \
                 (the default is {DEFAULT_MEMORY_BUDGET_MIB})"
            ));
        }
        mib.checked_mul(1 << 20)
            .map(|total| Self { total })
            .ok_or_else(|| format!("a memory budget of {mib} MiB is out of range"))
    }

    fn share(&self, sixty_fourths: u64) -> u64 {
        self.total / 64 * sixty_fourths
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The read models' cache of decoded views (24/64).
    pub fn view_cache(&self) -> u64 {
        self.share(VIEW_CACHE)
    }

    /// sled's page cache for the ledger (16/64).
    pub fn ledger_sled(&self) -> u64 {
        self.share(LEDGER_SLED)
    }

    /// sled's page cache for the read models' database (6/64).
    pub fn projections_sled(&self) -> u64 {
        self.share(PROJECTIONS_SLED)
    }

    /// The HTTP layer's rendered plans (4/64).
    pub fn plan_json(&self) -> u64 {
        self.share(PLAN_JSON)
    }

    /// sled's page cache for the access log (2/64).
    pub fn access_log_sled(&self) -> u64 {
        self.share(ACCESS_LOG_SLED)
    }

    /// sled's page cache for the actors (1/64).
    pub fn actors_sled(&self) -> u64 {
        self.share(ACTORS_SLED)
    }

    /// What no cache is given: headroom for the rest of the process (11/64).
    pub fn headroom(&self) -> u64 {
        self.total
            - self.view_cache()
            - self.ledger_sled()
            - self.projections_sled()
            - self.plan_json()
            - self.access_log_sled()
            - self.actors_sled()
    }

    /// The read models' settings with this budget's caches.
    pub fn projections(
        &self,
        config: careledger_projections::ProjectionConfig,
    ) -> careledger_projections::ProjectionConfig {
        careledger_projections::ProjectionConfig {
            view_cache_bytes: self.view_cache(),
            sled_cache_bytes: self.projections_sled(),
            ..config
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_split_matches_each_stores_own_default() {
        let budget = MemoryBudget::default();
        let projections = careledger_projections::ProjectionConfig::default();
        assert_eq!(budget.view_cache(), projections.view_cache_bytes);
        assert_eq!(budget.projections_sled(), projections.sled_cache_bytes);
        assert_eq!(budget.actors_sled(), crate::actors::ACTORS_CACHE_BYTES);
        assert_eq!(
            budget.access_log_sled(),
            crate::access_log::AccessLogConfig::default().cache_bytes
        );
        assert_eq!(budget.headroom(), 88 << 20);
    }

    #[test]
    fn a_budget_too_small_is_refused_saying_what_is_accepted() {
        let refused = MemoryBudget::from_mib(16).unwrap_err();
        assert!(refused.contains("at least 64 MiB"), "{refused}");
        assert_eq!(
            MemoryBudget::from_mib(1024).unwrap().ledger_sled(),
            256 << 20
        );
    }
}
