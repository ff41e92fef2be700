//! A storage that fails on purpose: the real `SledStorage` underneath (sled itself is never
//! mocked), and a seeded plan of which `commit`, `sync` and `reopen` calls fail, and how.
//!
//! A failing `commit` or `sync` fails either before sled is called (nothing happened) or after
//! it (sled did the work, the caller hears of a failure): the storage may have written what the
//! ledger is told was not written. The plan remembers the idempotency keys of every batch sled
//! was given, so that a simulation can tell what the storage may have written.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use careledger_core::ids::PatientId;
use careledger_core::storage::{
    FrameVisitor, IndexVisitor, SledStorage, Storage, StoredValue, WriteBatch,
};
use careledger_core::{Result, StorageError};

use super::Rng;

/// Which calls fail, drawn from a seeded generator, and what the storage was given.
pub struct Faults {
    state: Mutex<State>,
}

struct State {
    rng: Rng,
    /// Chance that a commit, a sync or a reopen fails, in thousandths.
    commit_per_mille: u64,
    sync_per_mille: u64,
    reopen_per_mille: u64,
    enabled: bool,
    /// Failures injected so far.
    injected: u64,
    /// The idempotency keys of every batch handed to sled, applied or not yet synced.
    given: HashSet<Vec<u8>>,
    /// The last position sled applied, and the last one a sync of sled covered.
    written_through: u64,
    synced_through: u64,
}

/// Where a failure is injected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    /// Before sled is called.
    Before,
    /// After sled did the work.
    After,
}

impl Faults {
    /// A plan drawn from `seed`, failing each kind of call with the chance given (thousandths).
    pub fn new(
        seed: u64,
        commit_per_mille: u64,
        sync_per_mille: u64,
        reopen_per_mille: u64,
    ) -> Self {
        Faults {
            state: Mutex::new(State {
                rng: Rng::new(seed),
                commit_per_mille,
                sync_per_mille,
                reopen_per_mille,
                enabled: true,
                injected: 0,
                given: HashSet::new(),
                written_through: 0,
                synced_through: 0,
            }),
        }
    }

    /// Stops (or starts again) injecting failures.
    pub fn set_enabled(&self, enabled: bool) {
        self.state.lock().unwrap().enabled = enabled;
    }

    /// Failures injected so far.
    pub fn injected(&self) -> u64 {
        self.state.lock().unwrap().injected
    }

    /// The last position that a sync of sled covered, over every storage of this plan.
    pub fn synced_through(&self) -> u64 {
        self.state.lock().unwrap().synced_through
    }

    /// Whether sled was ever given a batch holding this idempotency key. Keys are stored scoped
    /// to the actor and the patient (`actor 0x00 patient 0x00 key`, docs/hash-format.md).
    pub fn given(&self, key: &str) -> bool {
        let state = self.state.lock().unwrap();
        state
            .given
            .iter()
            .any(|stored| stored.rsplit(|b| *b == 0).next() == Some(key.as_bytes()))
    }

    fn draw(&self, per_mille: impl Fn(&State) -> u64) -> Fault {
        let mut state = self.state.lock().unwrap();
        let chance = per_mille(&state);
        if !state.enabled || state.rng.below(1000) >= chance {
            return Fault::None;
        }
        state.injected += 1;
        if state.rng.below(2) == 0 {
            Fault::Before
        } else {
            Fault::After
        }
    }
}

fn injected(doing: &str) -> careledger_core::Error {
    // EIO, as a failing disk reports it.
    StorageError::io(
        format!("{doing} (injected)"),
        std::io::Error::from_raw_os_error(5),
    )
    .into()
}

/// `SledStorage` with the failures of a [`Faults`] plan.
pub struct FaultyStorage {
    inner: SledStorage,
    faults: Arc<Faults>,
}

impl FaultyStorage {
    /// Wraps `inner`.
    pub fn new(inner: SledStorage, faults: Arc<Faults>) -> Self {
        FaultyStorage { inner, faults }
    }
}

impl Storage for FaultyStorage {
    fn last_frame(&self) -> Result<Option<(u64, Vec<u8>)>> {
        self.inner.last_frame()
    }
    fn frame(&self, position: u64) -> Result<Option<Vec<u8>>> {
        self.inner.frame(position)
    }
    fn frames_at(&self, positions: &[u64], visit: &mut FrameVisitor<'_>) -> Result<()> {
        self.inner.frames_at(positions, visit)
    }
    fn scan(&self, from: u64, visit: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<()> {
        self.inner.scan(from, visit)
    }
    fn scan_values(
        &self,
        from: u64,
        visit: &mut dyn FnMut(u64, StoredValue) -> bool,
    ) -> Result<()> {
        self.inner.scan_values(from, visit)
    }
    fn stream_positions(
        &self,
        patient: &PatientId,
        from_revision: u64,
        limit: usize,
    ) -> Result<Vec<u64>> {
        self.inner.stream_positions(patient, from_revision, limit)
    }
    fn idempotency(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.idempotency(key)
    }
    fn signed_request(&self, hash: &careledger_core::Hash) -> Result<Option<Vec<u8>>> {
        self.inner.signed_request(hash)
    }
    fn scan_index(&self, visit: &mut IndexVisitor<'_>) -> Result<bool> {
        self.inner.scan_index(visit)
    }
    fn tree_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>> {
        self.inner.tree_node(level, index)
    }
    fn last_tree_node(&self, level: u8) -> Result<Option<u64>> {
        self.inner.last_tree_node(level)
    }
    fn commit(&self, batch: WriteBatch) -> Result<()> {
        let fault = self.faults.draw(|s| s.commit_per_mille);
        if fault == Fault::Before {
            return Err(injected("writing a batch"));
        }
        let keys: Vec<Vec<u8>> = batch.idempotency.iter().map(|(k, _)| k.clone()).collect();
        let last = batch.frames.last().map(|(position, _)| *position);
        self.faults.state.lock().unwrap().given.extend(keys);
        self.inner.commit(batch)?;
        if let Some(last) = last {
            let mut state = self.faults.state.lock().unwrap();
            state.written_through = state.written_through.max(last);
        }
        match fault {
            Fault::After => Err(injected("writing a batch")),
            _ => Ok(()),
        }
    }
    fn sync(&self) -> Result<()> {
        let fault = self.faults.draw(|s| s.sync_per_mille);
        if fault == Fault::Before {
            return Err(injected("syncing"));
        }
        self.inner.sync()?;
        let mut state = self.faults.state.lock().unwrap();
        state.synced_through = state.written_through;
        drop(state);
        match fault {
            Fault::After => Err(injected("syncing")),
            _ => Ok(()),
        }
    }
    fn size_on_disk(&self) -> Result<u64> {
        self.inner.size_on_disk()
    }
    fn reopen(&self) -> Result<()> {
        if self.faults.draw(|s| s.reopen_per_mille) != Fault::None {
            return Err(injected("reopening"));
        }
        self.inner.reopen()
    }
}
