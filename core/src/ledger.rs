//! The ledger: the one write path (`append`), reads, group commit and verification.
//!
//! **Invariant:** an event, once acknowledged, is never rewritten or deleted; `append` is the
//! only write path. Appends are serialised by one writer lock (which assigns positions and links
//! the chain) and made durable by a shared sync: every append whose batch was committed before a
//! sync starts is covered by that sync (group commit). Readers see only durable events.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::Thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::anchor::{anchor_path, Anchor, Damage};
use crate::chain::{encode_frame, event_hash, Frame};
use crate::decide::{decide, PatientState, Policy, Warning};
use crate::error::{Error, InvalidInput, Result};
use crate::event::Command;
use crate::ids::{PatientId, Text, Uid};
use crate::merkle::{open_tree, Frontier};
use crate::record::{
    decode_record, encode_record, Actor, Hash, Record, RecordedEvent, Timestamp,
    RECORD_FORMAT_VERSION,
};
use crate::storage::{SledStorage, Storage, WriteBatch};
use crate::verify::{check_frame, Problem, VerifyReport};

/// Most commands accepted in one append.
pub const MAX_BATCH: usize = 1000;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// How far in the future an `occurred_at` may lie (clock skew between systems), in minutes.
pub const MAX_FUTURE_MINUTES: i64 = 10;
/// Longest a sync waits for appenders that are about to commit, so that one sync covers them.
const GROUP_COMMIT_WAIT: Duration = Duration::from_micros(1_000);
/// How many ended epochs are remembered: appenders of an older one have long given up.
const ENDED_EPOCHS_KEPT: usize = 64;

/// What the writer expects the patient's stream to be at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedRevision {
    /// No check.
    Any,
    /// The patient has no events yet.
    NoStream,
    /// The stream is at exactly this revision (its number of events).
    Exact(u64),
}

impl std::fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedRevision::Any => f.write_str("any revision"),
            ExpectedRevision::NoStream => f.write_str("no stream"),
            ExpectedRevision::Exact(n) => write!(f, "revision {n}"),
        }
    }
}

/// One command with the clinician's time and reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// What to do.
    pub command: Command,
    /// When it happened (clinician's word); defaults to the recording time when `None`.
    pub occurred_at: Option<Timestamp>,
    /// Why.
    pub reason: Text,
}

/// A request to append commands to one patient's stream, atomically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// The patient.
    pub patient: PatientId,
    /// The expected revision of the stream.
    pub expected: ExpectedRevision,
    /// Who appends.
    pub actor: Actor,
    /// The commands, in order; 1 to [`MAX_BATCH`].
    pub submissions: Vec<Submission>,
    /// A key that makes retries safe: the same key with the same content writes once.
    pub idempotency_key: Option<String>,
    /// Groups this append with others of one workflow; random when `None`.
    pub correlation_id: Option<Uid>,
    /// What caused this append, if anything.
    pub causation_id: Option<Uid>,
}

/// Where one appended event landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// Global position.
    pub position: u64,
    /// Revision in the patient's stream.
    pub revision: u64,
    /// Event id.
    pub event_id: Uid,
    /// Hash.
    pub hash: Hash,
}

/// The result of a durable append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The events written, in order (one command may record more than one event).
    pub events: Vec<Appended>,
    /// The stream's revision after the append.
    pub revision: u64,
    /// Warnings for the writer, such as duplicate lab work.
    pub warnings: Vec<Warning>,
    /// True when an earlier append with the same idempotency key was returned and nothing written.
    pub replayed: bool,
}

/// The head of the chain: the last durable position and its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Head {
    /// Last position (0 for an empty ledger).
    pub position: u64,
    /// Its hash ([`Hash::ZERO`] for an empty ledger).
    pub hash: Hash,
}

/// Options for opening a ledger.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// The rules' settings.
    pub policy: Policy,
    /// After a storage failure, how often an append may try to reopen the storage. Reopening
    /// replays sled's log, so it is not tried on every request.
    pub reopen_interval: Duration,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            reopen_interval: Duration::from_millis(200),
        }
    }
}

type DurableListener = Box<dyn Fn(u64) + Send + Sync>;

/// State owned by the single writer.
struct Writer {
    /// The last position numbered, staged ones included.
    head: Head,
    patients: HashMap<PatientId, PatientState>,
    staged: Staged,
    /// The Merkle tree's right edge at what is written to storage.
    tree: Frontier,
}

/// Appends numbered, linked and folded into the writer's state, not yet written to storage.
/// The leader of the next group commit writes them as one atomic batch, then syncs: sled
/// writes its log buffer out twice for every batch it applies (each write waiting for the
/// disk), so one batch per sync instead of one per append.
#[derive(Default)]
struct Staged {
    batch: WriteBatch,
    /// The epoch the appends were staged in.
    epoch: u64,
}

/// The care-plan ledger.
pub struct Ledger {
    storage: Box<dyn Storage>,
    policy: Policy,
    reopen_interval: Duration,
    writer: Mutex<Writer>,
    /// Head of what is written to storage (maybe not yet durable).
    written: Mutex<Head>,
    /// Head of what is durable; readers see up to here.
    durable: Mutex<Head>,
    durable_position: AtomicU64,
    /// Appenders that have entered `append` and not yet staged their events (or given up).
    committing: AtomicU64,
    /// Who syncs and who waits for it.
    sync_state: Mutex<SyncState>,
    /// Why writes are refused, if they are.
    refusal: Mutex<Option<Refusal>>,
    /// Ended by every storage failure (and by the reopen after it): an append committed in an
    /// ended epoch and not durable when it ended may be lost and is never acknowledged, even if
    /// a later sync succeeds. After a failed `fdatasync` the kernel may have dropped the pages
    /// that did not reach the disk and report success for the next one ("fsyncgate").
    epoch: AtomicU64,
    /// The durable position at the end of each recent epoch, and the failure that ended it.
    ended_epochs: Mutex<Vec<EndedEpoch>>,
    listeners: Mutex<Vec<DurableListener>>,
    /// The hashes of every acknowledged event, outside sled (`None` on a storage given without
    /// one, as the tests' fault-injecting storages are).
    anchor: Option<Mutex<Anchor>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a ledger lock is a bug; the state it guards is still consistent
    // because every mutation is completed before the guard is dropped.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Ledger {
    /// Opens (or creates) a ledger in `dir` on sled, with its anchor next to it
    /// ([`crate::anchor::anchor_path`]), checking the head of the chain and comparing the ledger
    /// with the anchor. A damaged ledger opens for reading only ([`Ledger::damage`]); files
    /// so damaged that sled fails inside its own recovery give an error naming them.
    pub fn open(dir: &Path, config: LedgerConfig) -> Result<Ledger> {
        let open = || {
            let storage = SledStorage::open(dir)?;
            let anchor = Anchor::open(&anchor_path(dir))?;
            Self::build(Box::new(storage), Some(anchor), config)
        };
        crate::anchor::catch_damage(&format!("opening the ledger in {}", dir.display()), open)
    }

    /// Opens a ledger on any storage, with the anchor at `anchor` (created when missing).
    pub fn with_storage_and_anchor(
        storage: Box<dyn Storage>,
        anchor: &Path,
        config: LedgerConfig,
    ) -> Result<Ledger> {
        Self::build(storage, Some(Anchor::open(anchor)?), config)
    }

    /// Opens a ledger on any storage, without an anchor. When the head does not verify, the
    /// ledger opens for reading and verification but refuses writes; [`Ledger::head_problem`]
    /// says why.
    pub fn with_storage(storage: Box<dyn Storage>, config: LedgerConfig) -> Result<Ledger> {
        Self::build(storage, None, config)
    }

    fn build(
        storage: Box<dyn Storage>,
        mut anchor: Option<Anchor>,
        config: LedgerConfig,
    ) -> Result<Ledger> {
        let (head, problem) = check_head(storage.as_ref())?;
        let damage = compare_with_anchor(storage.as_ref(), anchor.as_mut(), head, problem)?;
        let tree = open_tree(storage.as_ref(), head.position)?;
        let ledger = Ledger {
            storage,
            policy: config.policy,
            reopen_interval: config.reopen_interval,
            writer: Mutex::new(Writer {
                head,
                patients: HashMap::new(),
                staged: Staged::default(),
                tree,
            }),
            written: Mutex::new(head),
            durable: Mutex::new(head),
            durable_position: AtomicU64::new(head.position),
            committing: AtomicU64::new(0),
            sync_state: Mutex::new(SyncState::default()),
            refusal: Mutex::new(damage.map(Refusal::damaged)),
            epoch: AtomicU64::new(0),
            ended_epochs: Mutex::new(Vec::new()),
            listeners: Mutex::new(Vec::new()),
            anchor: anchor.map(Mutex::new),
        };
        Ok(ledger)
    }

    /// Why the ledger refuses writes (a damaged head, an earlier storage failure), if it does.
    pub fn head_problem(&self) -> Option<String> {
        lock(&self.refusal).as_ref().map(Refusal::describe)
    }

    /// The damage found on open (acknowledged events missing or changed, a damaged anchor or
    /// head) or by a verification since, if any: the ledger then serves reads and refuses writes.
    pub fn damage(&self) -> Option<Damage> {
        lock(&self.refusal).as_ref().and_then(|r| r.damage.clone())
    }

    /// The cheap check behind `/health`: the damage found on open, a storage failure, or a
    /// stored head that has fallen behind, or differs from, the anchor's last entry.
    pub fn health(&self) -> std::result::Result<(), Error> {
        if let Some(refusal) = lock(&self.refusal).as_ref() {
            return Err(refusal.error());
        }
        let Some(anchor) = &self.anchor else {
            return Ok(());
        };
        let last = lock(anchor).last();
        crate::anchor::check_live_head(self.storage.as_ref(), last).map_err(Error::Damaged)
    }

    /// The storage, for the modules that read it directly (the Merkle tree).
    pub(crate) fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// The durable head.
    pub fn head(&self) -> Head {
        *lock(&self.durable)
    }

    /// Registers a function called with the new durable position after every group commit.
    /// It runs on the appending thread: keep it short and never block in it.
    pub fn on_durable(&self, listener: impl Fn(u64) + Send + Sync + 'static) {
        lock(&self.listeners).push(Box::new(listener));
    }

    /// Appends the request's commands atomically and returns once they are durable.
    pub fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        check_request(&request)?;
        let fingerprint = request
            .idempotency_key
            .as_ref()
            .map(|_| fingerprint(&request));
        let committing = Committing::enter(&self.committing);
        let (outcome, last_position) = {
            let mut writer = lock(&self.writer);
            self.recover_if_failed(&mut writer)?;
            // Read before staging: a sync that fails while this append is written ends the
            // epoch, and this append, possibly in the pages the failure lost, must then not be
            // acknowledged by a later sync. A reopen, which also ends the epoch, takes the
            // writer lock, so it cannot come between.
            let epoch = self.epoch.load(Ordering::SeqCst);
            if !writer.staged.batch.is_empty() && writer.staged.epoch != epoch {
                // A storage failure ended the epoch of the staged appends; the reopen that
                // follows starts the writer again from what storage holds.
                return Err(Error::Storage(
                    "a storage failure ended the writes waiting to be stored; send the request again"
                        .into(),
                ));
            }
            if let (Some(key), Some(print)) = (&request.idempotency_key, &fingerprint) {
                let staged = (writer.staged.batch.idempotency.iter())
                    .find(|(k, _)| k == key.as_bytes())
                    .map(|(_, v)| v.clone());
                let found = match staged {
                    Some(value) => Some(value),
                    None => self.storage.idempotency(key.as_bytes())?,
                };
                if let Some(value) = found {
                    drop(writer);
                    drop(committing);
                    return self.replay(key, print, &value, epoch);
                }
            }
            let outcome = self.append_locked(&mut writer, &request, fingerprint.as_ref(), epoch)?;
            (outcome, (writer.head.position, epoch))
        };
        drop(committing);
        self.make_durable(last_position.0, last_position.1)?;
        Ok(outcome)
    }

    /// Refuses writes while the ledger is damaged; after a storage failure, reopens the storage
    /// (at most every [`LedgerConfig::reopen_interval`]) so that writing resumes once the cause is removed.
    fn recover_if_failed(&self, writer: &mut Writer) -> Result<()> {
        let mut refusal = lock(&self.refusal);
        let Some(current) = refusal.as_mut() else {
            return Ok(());
        };
        let retry_due = current.retry_after.is_some_and(|at| Instant::now() >= at);
        if !retry_due {
            return Err(current.error());
        }
        if let Err(e) = self.storage.reopen() {
            current.retry_after = Some(Instant::now() + self.reopen_interval);
            current.still_failing = Some(e.to_string());
            return Err(Error::Poisoned(current.describe()));
        }
        // Whatever was committed but not durable before the failure may be gone: start the
        // writer again from what is on disk, in a new epoch.
        self.end_epoch(&Error::Storage("the storage was reopened".into()));
        let (head, problem) = check_head(self.storage.as_ref())?;
        let problem = match self.reload_anchor(head, problem) {
            Ok(problem) => problem,
            Err(e) => {
                current.retry_after = Some(Instant::now() + self.reopen_interval);
                current.still_failing = Some(e.to_string());
                return Err(current.error());
            }
        };
        writer.head = head;
        writer.patients.clear();
        writer.staged = Staged::default();
        writer.tree = open_tree(self.storage.as_ref(), head.position)?;
        *lock(&self.written) = head;
        *lock(&self.durable) = head;
        self.durable_position.store(head.position, Ordering::SeqCst);
        *refusal = problem.map(Refusal::damaged);
        match refusal.as_ref() {
            Some(r) => Err(r.error()),
            None => Ok(()),
        }
    }

    fn append_locked(
        &self,
        writer: &mut Writer,
        request: &AppendRequest,
        fingerprint: Option<&Hash>,
        epoch: u64,
    ) -> Result<AppendOutcome> {
        let mut state = self.take_state(writer, &request.patient)?;
        let before = state.revision();
        let result = self.decide_and_stage(writer, request, fingerprint, &mut state, epoch);
        // The state goes back unless a failed request had already folded some of its events
        // into it; then it is folded again from storage on next use.
        if result.is_ok() || state.revision() == before {
            writer.patients.insert(request.patient.clone(), state);
        }
        result
    }

    fn decide_and_stage(
        &self,
        writer: &mut Writer,
        request: &AppendRequest,
        fingerprint: Option<&Hash>,
        state: &mut PatientState,
        epoch: u64,
    ) -> Result<AppendOutcome> {
        check_expected(&request.patient, request.expected, state.revision())?;
        let recorded_at = Timestamp::now();
        let correlation_id = request.correlation_id.unwrap_or_else(Uid::random);
        let mut head = writer.head;
        let mut batch = WriteBatch::default();
        let mut appended = Vec::new();
        let mut warnings = Vec::new();
        for submission in &request.submissions {
            let occurred_at = submission.occurred_at.unwrap_or(recorded_at);
            check_occurred_at(occurred_at, recorded_at)?;
            if request.actor.role == crate::role::Role::CareGroupAdmin
                && submission.reason.is_empty()
            {
                return Err(crate::error::Rejection::new(
                    "reason_required",
                    "a care-group administrator's correction states its reason (\"reason\")",
                )
                .into());
            }
            let decision = decide(
                state,
                &self.policy,
                &request.actor,
                &submission.command,
                occurred_at,
            )?;
            warnings.extend(decision.warnings);
            for event in decision.events {
                let record = Record {
                    patient: request.patient.clone(),
                    revision: state.revision() + 1,
                    event_id: Uid::random(),
                    recorded_at,
                    occurred_at,
                    actor: request.actor.clone(),
                    reason: submission.reason.clone(),
                    correlation_id,
                    causation_id: request.causation_id,
                    idempotency_key: request.idempotency_key.clone(),
                    signed_request: None,
                    event,
                };
                let bytes = encode_record(&record)?;
                let position = head.position + 1;
                let hash = event_hash(position, RECORD_FORMAT_VERSION, &head.hash, &bytes);
                batch.frames.push((
                    position,
                    encode_frame(RECORD_FORMAT_VERSION, &head.hash, &hash, &bytes),
                ));
                batch
                    .index
                    .push((request.patient.clone(), record.revision, position));
                appended.push(Appended {
                    position,
                    revision: record.revision,
                    event_id: record.event_id,
                    hash,
                });
                let recorded = RecordedEvent {
                    position,
                    format_version: RECORD_FORMAT_VERSION,
                    prev_hash: head.hash,
                    hash,
                    record,
                };
                state.apply(&recorded);
                head = Head { position, hash };
            }
        }
        if let (Some(key), Some(print)) = (&request.idempotency_key, fingerprint) {
            batch
                .idempotency
                .push((key.as_bytes().to_vec(), idempotency_value(print, &appended)));
        }
        if writer.staged.batch.is_empty() {
            writer.staged.epoch = epoch;
        }
        writer.staged.batch.extend(batch);
        writer.head = head;
        let revision = state.revision();
        Ok(AppendOutcome {
            events: appended,
            revision,
            warnings,
            replayed: false,
        })
    }

    /// After a failed write or sync: ends the epoch, so that nothing pending is acknowledged,
    /// and refuses writes until the storage is reopened.
    fn storage_failed(&self, doing: &str, e: &Error) {
        self.end_epoch(e);
        let mut refusal = lock(&self.refusal);
        if refusal.is_none() {
            *refusal = Some(Refusal {
                reason: format!("{doing} failed: {e}"),
                damage: None,
                retry_after: Some(Instant::now()),
                still_failing: None,
            });
        }
    }

    /// Makes everything up to `position` durable, sharing one sync among concurrent appenders.
    ///
    /// One appender at a time leads a sync; the others park until it ends. The leader wakes
    /// exactly the waiters it covered (they return without taking any lock) and the ones it did
    /// not (one of them leads the next sync), so that covered appenders start their next append
    /// while the next sync gathers commits.
    fn make_durable(&self, position: u64, epoch: u64) -> Result<()> {
        loop {
            if let Some(settled) = self.settled(position, epoch) {
                return settled;
            }
            let mut state = lock(&self.sync_state);
            if let Some(settled) = self.settled(position, epoch) {
                return settled;
            }
            if state.syncing {
                state.waiters.push(std::thread::current());
                drop(state);
                // A wake-up between the unlock and the park is not lost: park returns at once.
                std::thread::park();
                continue;
            }
            state.syncing = true;
            drop(state);
            // Hands the lead on even if the sync panics, so that waiting appenders never hang.
            let _leader = Leader(self);
            self.lead_sync()?;
        }
    }

    /// Whether the write at `position`, committed in `epoch`, is settled: `Ok` once it is
    /// durable, an error when its epoch ended (a storage failure) before it was; `None` while
    /// it waits for a sync.
    fn settled(&self, position: u64, epoch: u64) -> Option<Result<()>> {
        if self.epoch.load(Ordering::SeqCst) == epoch {
            let durable = self.durable_position.load(Ordering::SeqCst);
            // Checked again: a reopen between the two loads resets the durable position.
            if self.epoch.load(Ordering::SeqCst) == epoch {
                return (durable >= position).then_some(Ok(()));
            }
        }
        let ended = lock(&self.ended_epochs);
        let end = ended.iter().find(|end| end.epoch == epoch);
        if end.is_some_and(|end| position <= end.durable) {
            return Some(Ok(()));
        }
        let cause = end
            .map(|end| format!(" ({})", end.cause))
            .unwrap_or_default();
        Some(Err(Error::Storage(format!(
            "the write was lost to a storage failure before it became durable{cause}; send it again"
        ))))
    }

    /// Ends the current epoch: what is committed and not yet durable is never acknowledged.
    fn end_epoch(&self, cause: &Error) {
        let mut ended = lock(&self.ended_epochs);
        let epoch = self.epoch.load(Ordering::SeqCst);
        ended.push(EndedEpoch {
            epoch,
            durable: self.durable_position.load(Ordering::SeqCst),
            cause: cause.to_string(),
        });
        if ended.len() > ENDED_EPOCHS_KEPT {
            ended.remove(0);
        }
        self.epoch.store(epoch + 1, Ordering::SeqCst);
    }

    /// The leader's part of a group commit: gather, sync, publish.
    fn lead_sync(&self) -> Result<()> {
        // Appenders already past their checks are about to commit: let them, so that this one
        // sync covers them too instead of each paying its own. Bounded, so that a steady stream
        // of appenders cannot hold the sync back.
        let deadline = Instant::now() + GROUP_COMMIT_WAIT;
        while self.committing.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        self.write_staged(&mut lock(&self.writer))?;
        // Everything written before this point is covered by the sync below.
        let target = *lock(&self.written);
        if let Err(e) = self.storage.sync() {
            self.storage_failed("making writes durable", &e);
            return Err(e);
        }
        if let Err(e) = self.anchor_through(target.position) {
            self.storage_failed("anchoring the writes", &e);
            return Err(e);
        }
        *lock(&self.durable) = target;
        self.durable_position
            .store(target.position, Ordering::Release);
        for listener in lock(&self.listeners).iter() {
            listener(target.position);
        }
        Ok(())
    }

    /// Writes the staged appends to storage as one atomic batch (not yet durable).
    fn write_staged(&self, writer: &mut Writer) -> Result<()> {
        if writer.staged.batch.is_empty()
            || writer.staged.epoch != self.epoch.load(Ordering::SeqCst)
        {
            // Nothing staged, or the appends of an ended epoch: those are never acknowledged,
            // and the reopen after the failure starts the writer again from storage.
            return Ok(());
        }
        let mut batch = std::mem::take(&mut writer.staged.batch);
        self.anchor_stage(&batch.frames);
        // The tree's nodes go into the same atomic batch as the frames they cover. After a
        // failed commit the reopen reads the tree's edge again from storage.
        writer.tree.extend(&mut batch);
        if let Err(e) = self.storage.commit(batch) {
            // The batch may or may not be in sled's memory. Writes are refused until the
            // storage is reopened and the writer's state read again from it.
            self.storage_failed("a write", &e);
            return Err(e);
        }
        *lock(&self.written) = writer.head;
        Ok(())
    }

    /// Answers a retry of the append that wrote or staged `stored` (the idempotency entry)
    /// in `epoch`, once that append is durable.
    fn replay(&self, key: &str, print: &Hash, stored: &[u8], epoch: u64) -> Result<AppendOutcome> {
        let (stored_print, positions) = parse_idempotency_value(stored)
            .ok_or_else(|| Error::Storage(format!("idempotency entry for {key:?} is malformed")))?;
        if stored_print != *print {
            return Err(Error::IdempotencyMismatch {
                key: key.to_owned(),
            });
        }
        let last = positions.last().copied().unwrap_or(0);
        self.make_durable(last, epoch)?;
        let mut events = Vec::with_capacity(positions.len());
        let mut revision = 0;
        for position in positions {
            let recorded = self.read_position(position)?;
            revision = recorded.record.revision;
            events.push(Appended {
                position,
                revision,
                event_id: recorded.record.event_id,
                hash: recorded.hash,
            });
        }
        Ok(AppendOutcome {
            events,
            revision,
            warnings: vec![],
            replayed: true,
        })
    }

    /// Takes the patient's state out of the writer's cache (folding it from storage when absent),
    /// so that an append works on it in place instead of on a copy.
    fn take_state(&self, writer: &mut Writer, patient: &PatientId) -> Result<PatientState> {
        if let Some(state) = writer.patients.remove(patient) {
            return Ok(state);
        }
        // Storage must hold every event the state is folded from: staged appends may be the
        // patient's when its state was dropped after a failed request. Only then are they
        // written ahead of their group commit.
        if (writer.staged.batch.index.iter()).any(|(p, _, _)| p == patient) {
            self.write_staged(writer)?;
        }
        let mut state = PatientState::default();
        for recorded in self.read_stream_unbounded(patient)? {
            state.apply(&recorded);
        }
        Ok(state)
    }

    /// The patient's state as the rules see it (care team, active medication...), durable events only.
    pub fn patient_state(&self, patient: &PatientId) -> Result<PatientState> {
        let mut state = PatientState::default();
        for recorded in self.read_stream(patient, 1, usize::MAX)? {
            state.apply(&recorded);
        }
        Ok(state)
    }

    fn read_stream_unbounded(&self, patient: &PatientId) -> Result<Vec<RecordedEvent>> {
        let positions = self.storage.stream_positions(patient, 1, usize::MAX)?;
        self.read_positions(&positions)
    }

    /// The events at `positions` (ascending), each stored value read once.
    fn read_positions(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>> {
        let mut events = Vec::with_capacity(positions.len());
        self.storage.frames_at(positions, &mut |position, frame| {
            let bytes = frame.ok_or_else(|| not_stored(position))?;
            events.push(decode_frame(position, bytes)?);
            Ok(())
        })?;
        Ok(events)
    }

    /// The patient's durable events from `from_revision` (1 is the first), up to `limit`.
    pub fn read_stream(
        &self,
        patient: &PatientId,
        from_revision: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let durable = self.durable_position.load(Ordering::Acquire);
        let mut positions = self
            .storage
            .stream_positions(patient, from_revision.max(1), limit)?;
        positions.retain(|p| *p <= durable);
        self.read_positions(&positions)
    }

    /// Durable events of all patients after `after` (0 for the start), up to `limit`, in order.
    pub fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        let durable = self.durable_position.load(Ordering::Acquire);
        if after >= durable {
            return Ok(vec![]);
        }
        let limit = limit.min((durable - after) as usize);
        // Decoded straight from the scanned bytes: no copy of each frame on the way.
        let mut events = Vec::with_capacity(limit.min(8192));
        let mut failure = None;
        self.storage.scan(after + 1, &mut |position, bytes| {
            match decode_frame(position, bytes) {
                Ok(event) => events.push(event),
                Err(e) => failure = Some(e),
            }
            failure.is_none() && events.len() < limit
        })?;
        failure.map_or(Ok(events), Err)
    }

    /// Visits every durable event from position `from`, in order, without collecting them.
    pub fn for_each(
        &self,
        from: u64,
        visit: &mut dyn FnMut(RecordedEvent) -> Result<()>,
    ) -> Result<()> {
        let durable = self.durable_position.load(Ordering::Acquire);
        let mut failure = None;
        self.storage.scan(from, &mut |position, bytes| {
            if position > durable {
                return false;
            }
            match decode_frame(position, bytes).and_then(&mut *visit) {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e);
                    false
                }
            }
        })?;
        failure.map_or(Ok(()), Err)
    }

    /// The durable event at `position`.
    pub fn read_position(&self, position: u64) -> Result<RecordedEvent> {
        self.read_positions(&[position])?
            .pop()
            .ok_or_else(|| not_stored(position))
    }

    /// Verifies the whole chain, the per-patient index against the frames, and the ledger
    /// against its anchor (no acknowledged event missing or changed), calling
    /// `progress(verified, total)` now and then. Damaged files give a report or an error naming
    /// the damage, never a panic.
    ///
    /// Damage found here (a gap in the middle, a changed byte, a wrong index entry: what the
    /// cheap comparison on open cannot see) makes the ledger refuse writes from then on, as
    /// damage found on open does.
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
        let total = self.head().position.max(lock(&self.written).position);
        // The anchor as it was before the scan: entries added while it runs are of events the
        // scan may not have reached.
        let anchored = self.anchor.as_ref().and_then(|a| lock(a).last());
        let report = crate::anchor::catch_damage("verifying the ledger", || {
            let mut report = crate::verify::verify_chain(self.storage.as_ref(), total, progress)?;
            if let Some(anchor) = &self.anchor {
                let anchor = lock(anchor);
                crate::anchor::verify_against(
                    &anchor,
                    anchored,
                    self.storage.as_ref(),
                    &mut report,
                )?;
            }
            Ok(report)
        })?;
        if let Some(problem) = &report.problem {
            self.found_damage(problem, anchored.map_or(0, |a| a.position), total);
        }
        Ok(report)
    }

    /// Refuses writes from now on because verification found `problem`.
    fn found_damage(&self, problem: &Problem, last_anchored: u64, head: u64) {
        let mut refusal = lock(&self.refusal);
        if refusal.as_ref().is_some_and(|r| r.damage.is_some()) {
            return;
        }
        let missing = match problem.kind {
            crate::verify::ProblemKind::Missing { missing, .. } => missing,
            _ => 0,
        };
        *refusal = Some(Refusal::damaged(Damage {
            last_anchored,
            ledger_head: head,
            missing,
            first_differing: Some(problem.position),
            detail: format!("verification found: {problem}"),
        }));
    }

    /// Remembers the hashes of frames about to be written to storage, for the anchor.
    fn anchor_stage(&self, frames: &[(u64, Vec<u8>)]) {
        if let Some(anchor) = &self.anchor {
            lock(anchor).stage(frames);
        }
    }

    /// Makes the anchor hold every event up to `position` (written to storage and synced):
    /// one write and one `fdatasync` for the whole group commit.
    fn anchor_through(&self, position: u64) -> Result<()> {
        match &self.anchor {
            Some(anchor) => lock(anchor).sync_through(position),
            None => Ok(()),
        }
    }

    /// After the storage reopened: reads the anchor again from disk and compares it with the
    /// ledger, whose head is `head`.
    fn reload_anchor(&self, head: Head, problem: Option<Problem>) -> Result<Option<Damage>> {
        let mut fresh = match &self.anchor {
            Some(anchor) => Some(Anchor::open(lock(anchor).path())?),
            None => None,
        };
        let damage = compare_with_anchor(self.storage.as_ref(), fresh.as_mut(), head, problem)?;
        if let (Some(anchor), Some(fresh)) = (&self.anchor, fresh) {
            *lock(anchor) = fresh;
        }
        Ok(damage)
    }

    /// Bytes the ledger occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.storage.size_on_disk()
    }
}

fn not_stored(position: u64) -> Error {
    Error::Decode {
        position,
        detail: "no event is stored at this position".into(),
    }
}

/// An epoch ended by a storage failure.
struct EndedEpoch {
    epoch: u64,
    /// The durable position when it ended.
    durable: u64,
    cause: String,
}

/// Why the ledger refuses writes.
struct Refusal {
    reason: String,
    /// Set when the ledger is damaged (acknowledged events missing or changed).
    damage: Option<Damage>,
    /// When a reopen of the storage may be tried; `None` when the ledger is damaged and only an
    /// operator can help.
    retry_after: Option<Instant>,
    /// Why the last attempt to reopen the storage failed.
    still_failing: Option<String>,
}

impl Refusal {
    /// The reason, with what the last reopen attempt found.
    fn describe(&self) -> String {
        match &self.still_failing {
            Some(e) => format!("{} (reopening failed: {e})", self.reason),
            None => self.reason.clone(),
        }
    }

    fn damaged(damage: Damage) -> Self {
        Refusal {
            reason: damage.to_string(),
            damage: Some(damage),
            retry_after: None,
            still_failing: None,
        }
    }

    /// The error an append gets: the damage, typed, or the storage failure.
    fn error(&self) -> Error {
        match &self.damage {
            Some(damage) => Error::Damaged(damage.clone()),
            None => Error::Poisoned(self.describe()),
        }
    }
}

/// The leader of a group commit; dropping it ends the lead and wakes every waiter (those
/// covered return, one of the others leads the next sync).
struct Leader<'a>(&'a Ledger);

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        let waiters = {
            let mut state = lock(&self.0.sync_state);
            state.syncing = false;
            std::mem::take(&mut state.waiters)
        };
        for waiter in waiters {
            waiter.unpark();
        }
    }
}

/// The group-commit rendezvous: whether a sync is under way and who waits for it to end.
#[derive(Default)]
struct SyncState {
    syncing: bool,
    waiters: Vec<Thread>,
}

/// Counts an appender as committing until it has committed its batch or given up.
struct Committing<'a>(&'a AtomicU64);

impl<'a> Committing<'a> {
    fn enter(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Committing(counter)
    }
}

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Checks the last stored frame and its link to the one before.
fn check_head(storage: &dyn Storage) -> Result<(Head, Option<Problem>)> {
    let Some((position, bytes)) = storage.last_frame()? else {
        return Ok((Head::default(), None));
    };
    let prev = if position <= 1 {
        Hash::ZERO
    } else {
        match storage.frame(position - 1)? {
            Some(b) => match Frame::parse(&b) {
                Some(f) => f.hash,
                None => Hash::ZERO,
            },
            None => Hash::ZERO,
        }
    };
    let head_hash = Frame::parse(&bytes).map(|f| f.hash).unwrap_or_default();
    let head = Head {
        position,
        hash: head_hash,
    };
    Ok((head, check_frame(position, &bytes, &prev, true).err()))
}

/// The damage that makes a ledger read-only: a head that does not verify, or a ledger that
/// disagrees with its anchor (which is brought up to the ledger's head when it is behind).
fn compare_with_anchor(
    storage: &dyn Storage,
    anchor: Option<&mut Anchor>,
    head: Head,
    head_problem: Option<Problem>,
) -> Result<Option<Damage>> {
    let last_anchored = anchor
        .as_ref()
        .and_then(|a| a.last())
        .map_or(0, |a| a.position);
    let found = match anchor {
        Some(anchor) => crate::anchor::reconcile(anchor, storage, head.position)?,
        None => None,
    };
    Ok(found.or_else(|| {
        head_problem.map(|problem| Damage {
            last_anchored,
            ledger_head: head.position,
            missing: 0,
            first_differing: None,
            detail: format!("the head of the chain does not verify: {problem}"),
        })
    }))
}

fn decode_frame(position: u64, bytes: &[u8]) -> Result<RecordedEvent> {
    let frame = Frame::parse(bytes).ok_or_else(|| Error::Decode {
        position,
        detail: "frame header is malformed".into(),
    })?;
    let record = decode_record(position, frame.format_version, frame.record)?;
    Ok(RecordedEvent {
        position,
        format_version: frame.format_version,
        prev_hash: frame.prev_hash,
        hash: frame.hash,
        record,
    })
}

fn check_request(request: &AppendRequest) -> Result<()> {
    let n = request.submissions.len();
    if n == 0 || n > MAX_BATCH {
        return Err(InvalidInput::new(
            "events",
            format!("an append holds 1 to {MAX_BATCH} commands, got {n}"),
        )
        .into());
    }
    if let Some(key) = &request.idempotency_key {
        if key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY_LEN
            || key.chars().any(char::is_control)
        {
            return Err(InvalidInput::new(
                "idempotency key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable characters"),
            )
            .into());
        }
    }
    Ok(())
}

fn check_expected(patient: &PatientId, expected: ExpectedRevision, actual: u64) -> Result<()> {
    let ok = match expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => actual == 0,
        ExpectedRevision::Exact(n) => actual == n,
    };
    if ok {
        return Ok(());
    }
    Err(Error::Conflict {
        patient: patient.to_string(),
        expected: expected.to_string(),
        actual: if actual == 0 {
            "no stream".into()
        } else {
            format!("revision {actual}")
        },
    })
}

/// The earliest `occurred_at` accepted: 1900-01-01T00:00:00Z, in microseconds.
const EARLIEST_OCCURRED_AT_MICROS: i64 = -2_208_988_800_000_000;

fn check_occurred_at(occurred_at: Timestamp, recorded_at: Timestamp) -> Result<()> {
    if occurred_at.micros() < EARLIEST_OCCURRED_AT_MICROS {
        return Err(InvalidInput::new(
            "occurred_at",
            format!("{occurred_at} lies before 1900; give the time the fact happened"),
        )
        .into());
    }
    let limit = recorded_at.micros() + MAX_FUTURE_MINUTES * 60_000_000;
    if occurred_at.micros() > limit {
        return Err(InvalidInput::new(
            "occurred_at",
            format!("{occurred_at} lies in the future; give the time the fact happened"),
        )
        .into());
    }
    Ok(())
}

/// A hash of what an idempotent request asks for, to tell a retry from a different request.
fn fingerprint(request: &AppendRequest) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"careledger/idempotency/v1\0");
    let content = (
        &request.patient,
        &request.expected,
        &request.actor,
        &request.submissions,
    );
    match bincode::serde::encode_to_vec(content, bincode::config::standard()) {
        Ok(bytes) => hasher.update(&bytes),
        // Encoding plain data cannot fail; fall back to the debug form rather than panic.
        Err(_) => hasher.update(format!("{content:?}").as_bytes()),
    };
    Hash(*hasher.finalize().as_bytes())
}

fn idempotency_value(print: &Hash, appended: &[Appended]) -> Vec<u8> {
    let mut value = Vec::with_capacity(32 + 8 * appended.len());
    value.extend_from_slice(&print.0);
    for a in appended {
        value.extend_from_slice(&a.position.to_be_bytes());
    }
    value
}

fn parse_idempotency_value(value: &[u8]) -> Option<(Hash, Vec<u64>)> {
    if value.len() < 32 || !(value.len() - 32).is_multiple_of(8) {
        return None;
    }
    let print = Hash(value[..32].try_into().ok()?);
    let positions = value[32..]
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
        .collect();
    Some((print, positions))
}

/// Shared handle type used by the servers.
pub type SharedLedger = Arc<Ledger>;
