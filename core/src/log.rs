//! The event log: hash-chained frames on a [`Storage`], and how they become durable and are read.
//!
//! The log numbers frames (positions), links them (each hash covers the one before), stages
//! them, and makes them durable by group commit; it keeps the anchor and the Merkle tree's edge
//! in step with what it writes, tells the `on_durable` listeners, serves reads up to the durable
//! position, and verifies. It knows bytes, not commands: what a frame's record says, and whether
//! it may be written, is the command handler's business ([`crate::handler`]).
//!
//! **Group commit.** Appends are numbered, linked and *staged* under one writer lock. The leader
//! of the next group commit writes every staged append to storage as one atomic batch (sled
//! writes its log buffer out twice for every batch it applies, each write waiting for the disk,
//! so one batch per sync instead of one per append), then syncs it (sled flush + `fdatasync`),
//! then appends the batch's hashes to the anchor and `fdatasync`s that, and only then publishes
//! the new durable position and acknowledges the appends it covers.
//!
//! **With a journal** ([`crate::journal`], as every ledger on sled has), the leader applies the
//! batch to storage without syncing it, appends the same batch to the journal and `fdatasync`s
//! that alone: one wait on the disk per group commit. A checkpoint every
//! [`CHECKPOINT_INTERVAL`] or [`CHECKPOINT_BYTES`] (and when the log is dropped) syncs the
//! storage, anchors what it holds and empties the journal. On open and after a storage failure
//! the journal's events are anchored and applied to storage again before anything is read.
//!
//! **Write epochs.** Every storage failure ends a write epoch: an append staged in an ended
//! epoch and not durable by then is never acknowledged, even if a later sync succeeds (after a
//! failed `fdatasync` the kernel may have dropped the pages that did not reach the disk and
//! report success for the next one). Writes are refused, with the cause, until the storage
//! reopens; what the reopened storage holds, as what the log finds on open, is synced before it
//! counts as durable.
//!
//! **Invariant:** readers never see an event before it is durable: reads stop at the durable
//! position.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::anchor::{Anchor, Damage};
use crate::chain::{encode_frame, event_hash, Frame};
use crate::clock::Clock;
use crate::error::{Error, Result, StorageError};
use crate::ids::PatientId;
use crate::journal::{encode_batch, Journal};
use crate::merkle::{open_tree, Frontier};
use crate::record::{decode_record, FramedEvent, Hash, RecordedEvent, RECORD_FORMAT_VERSION};
use crate::storage::{Storage, WriteBatch};
use crate::timing::{self, Phase};
use crate::verify::{check_frame, Problem};

/// Longest a sync waits for appenders that are about to commit, so that one sync covers them.
const GROUP_COMMIT_WAIT: Duration = Duration::from_micros(1_000);
/// With a journal: how long at most between checkpoints (storage synced, events anchored,
/// journal emptied) while appends arrive.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(2);
/// With a journal: the journal's size that makes the next group commit checkpoint.
pub const CHECKPOINT_BYTES: u64 = 16 * 1024 * 1024;
/// How many ended epochs are remembered: appenders of an older one have long given up.
const ENDED_EPOCHS_KEPT: usize = 64;

/// The head of the chain: the last durable position and its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Head {
    /// Last position (0 for an empty ledger).
    pub position: u64,
    /// Its hash ([`Hash::ZERO`] for an empty ledger).
    pub hash: Hash,
}

type DurableListener = Box<dyn Fn(u64) + Send + Sync>;

/// What the single writer owns, behind the writer lock: the log's tail, and the state the
/// command side keeps with it (`C`, the folded patients), so that folding, numbering and
/// staging are one critical section. `C` is emptied whenever the log starts again from what
/// storage holds (after a storage failure).
pub(crate) struct Writer<C> {
    /// The log's end as the writer sees it.
    pub(crate) tail: Tail,
    /// The command side's state.
    pub(crate) cache: C,
}

/// The writer's end of the log.
pub(crate) struct Tail {
    /// The last position numbered, staged ones included.
    head: Head,
    staged: Staged,
    /// The Merkle tree's right edge at what is written to storage.
    tree: Frontier,
}

/// Appends numbered, linked and folded into the writer's state, not yet written to storage.
/// The leader of the next group commit writes them as one batch, then syncs.
#[derive(Default)]
struct Staged {
    batch: WriteBatch,
    /// The epoch the appends were staged in.
    epoch: u64,
    /// With a journal: the batch the group commit's leader is journaling, taken from `batch`,
    /// stored once the journal holds it. Read like the staged batch until then.
    in_flight: WriteBatch,
}

impl Tail {
    /// The last position numbered, staged ones included.
    pub(crate) fn head(&self) -> Head {
        self.head
    }

    /// Starts one request's append after the last numbered position.
    pub(crate) fn begin(&self) -> Pending {
        Pending {
            head: self.head,
            batch: WriteBatch::default(),
        }
    }

    /// Stages `pending`, whose frames follow the tail's head, in `epoch`, for the next group
    /// commit.
    pub(crate) fn stage(&mut self, pending: Pending, epoch: u64) {
        // Gapless: the frames number on from the head. The count and both ends are checked
        // always (three comparisons); the walk over every frame only in debug builds, as this
        // is the append path.
        let frames = &pending.batch.frames;
        assert_eq!(
            frames.len() as u64,
            pending.head.position - self.head.position,
            "a staged append holds the frames from the tail's head to its own"
        );
        assert!(
            frames
                .first()
                .is_none_or(|(p, _)| *p == self.head.position + 1)
                && frames
                    .last()
                    .is_none_or(|(p, _)| *p == pending.head.position),
            "a staged append follows the tail's head"
        );
        debug_assert!(
            frames.windows(2).all(|w| w[1].0 == w[0].0 + 1),
            "the positions of a staged append are consecutive"
        );
        if self.staged.batch.is_empty() {
            self.staged.epoch = epoch;
        }
        self.staged.batch.extend(pending.batch);
        self.head = pending.head;
    }

    /// The batches not yet in storage, in position order: the one being journaled, then the
    /// staged one.
    fn unstored(&self) -> [&WriteBatch; 2] {
        [&self.staged.in_flight, &self.staged.batch]
    }

    /// True when a signed request with this hash is staged and not yet written.
    fn staged_signed_request(&self, hash: &Hash) -> bool {
        (self.unstored().into_iter())
            .flat_map(|b| b.signed_requests.iter())
            .any(|(h, _)| h == hash)
    }

    /// The value of an idempotency key staged and not yet written, if any.
    fn staged_idempotency(&self, key: &[u8]) -> Option<Vec<u8>> {
        (self.unstored().into_iter())
            .flat_map(|b| b.idempotency.iter())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// One request's frames, numbered and linked after the tail's head; nothing is staged until
/// [`Tail::stage`] takes them, so a request refused half-way leaves the log as it was.
pub(crate) struct Pending {
    /// The last frame linked, or the tail's head before the first.
    head: Head,
    batch: WriteBatch,
}

/// Where [`Pending::link`] put a record.
pub(crate) struct Linked {
    /// Its position.
    pub(crate) position: u64,
    /// The hash of the frame before it.
    pub(crate) prev_hash: Hash,
    /// Its hash.
    pub(crate) hash: Hash,
}

impl Pending {
    /// Numbers the encoded record `record` (the patient's event at `revision`), hashes it onto
    /// the chain and adds its frame and its per-patient index entry.
    pub(crate) fn link(&mut self, patient: &PatientId, revision: u64, record: &[u8]) -> Linked {
        let position = self.head.position + 1;
        let prev_hash = self.head.hash;
        let hash = event_hash(position, RECORD_FORMAT_VERSION, &prev_hash, record);
        self.batch.frames.push((
            position,
            encode_frame(RECORD_FORMAT_VERSION, &prev_hash, &hash, record),
        ));
        self.batch.index.push((patient.clone(), revision, position));
        self.head = Head { position, hash };
        Linked {
            position,
            prev_hash,
            hash,
        }
    }

    /// Stores a signed request's bytes under their hash with these frames.
    pub(crate) fn keep_signed_request(&mut self, hash: Hash, bytes: Vec<u8>) {
        self.batch.signed_requests.push((hash, bytes));
    }

    /// Stores `value` under the idempotency key `key` with these frames.
    pub(crate) fn remember(&mut self, key: &[u8], value: Vec<u8>) {
        self.batch.idempotency.push((key.to_vec(), value));
    }
}

/// The event log on one storage, with its anchor.
pub(crate) struct EventLog<C> {
    storage: Box<dyn Storage>,
    /// Times the retries after a storage failure.
    clock: Arc<dyn Clock>,
    /// After a storage failure, how often an append may try to reopen the storage.
    reopen_interval: Duration,
    writer: Mutex<Writer<C>>,
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
    /// The write-ahead journal, when the log keeps one: group commits sync it instead of the
    /// storage and the anchor.
    journal: Option<Mutex<JournalState>>,
}

/// The journal and when it was last emptied.
struct JournalState {
    journal: Journal,
    last_checkpoint: std::time::Instant,
}

impl<C: Default> EventLog<C> {
    /// Opens the log on `storage`, checking the head of the chain and comparing it with the
    /// anchor. A damaged log opens for reading only.
    pub(crate) fn open(
        storage: Box<dyn Storage>,
        mut anchor: Option<Anchor>,
        journal: Option<(Journal, Vec<WriteBatch>)>,
        clock: Arc<dyn Clock>,
        reopen_interval: Duration,
    ) -> Result<Self> {
        // The journal's events were acknowledged: anchored and stored before anything is read.
        let journal = match journal {
            Some((journal, batches)) => {
                absorb_journal(storage.as_ref(), anchor.as_mut(), batches)?;
                Some(journal)
            }
            None => None,
        };
        // What storage holds may include writes never synced (a process that stopped between
        // a write and its sync): sync them before taking them as durable, before readers see
        // them and the anchor adopts them.
        storage.sync()?;
        let (head, problem) = check_head(storage.as_ref())?;
        let damage = compare_with_anchor(storage.as_ref(), anchor.as_mut(), head, problem)?;
        let journal = match journal {
            Some(mut journal) => {
                // Storage and anchor now hold everything in it (a damaged log keeps it as it
                // is: it takes no writes).
                if damage.is_none() && journal.bytes() > 0 {
                    journal.reset()?;
                }
                Some(Mutex::new(JournalState {
                    journal,
                    last_checkpoint: clock.instant(),
                }))
            }
            None => None,
        };
        let tree = open_tree(storage.as_ref(), head.position)?;
        Ok(EventLog {
            storage,
            clock,
            reopen_interval,
            writer: Mutex::new(Writer {
                tail: Tail {
                    head,
                    staged: Staged::default(),
                    tree,
                },
                cache: C::default(),
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
            journal,
        })
    }

    /// Takes the writer lock for one append, with the epoch it stages in. Refuses while the log
    /// is damaged; after a storage failure, reopens the storage (at most every reopen interval)
    /// so that writing resumes once the cause is removed.
    pub(crate) fn lock_writer(&self) -> Result<(MutexGuard<'_, Writer<C>>, u64)> {
        let mut writer = self.writer.lock();
        self.recover_if_failed(&mut writer)?;
        // Read before staging: a sync that fails while this append is written ends the
        // epoch, and this append, possibly in the pages the failure lost, must then not be
        // acknowledged by a later sync. A reopen, which also ends the epoch, takes the
        // writer lock, so it cannot come between.
        let epoch = self.epoch.load(Ordering::SeqCst);
        if !writer.tail.staged.batch.is_empty() && writer.tail.staged.epoch != epoch {
            // A storage failure ended the epoch of the staged appends; the reopen that
            // follows starts the writer again from what storage holds.
            return Err(StorageError::Lost {
                context:
                    "a storage failure ended the writes waiting to be stored; send the request again"
                        .into(),
            }
            .into());
        }
        Ok((writer, epoch))
    }

    /// Refuses writes while the log is damaged; after a storage failure, reopens the storage
    /// when a retry is due and starts the writer again from what storage holds.
    fn recover_if_failed(&self, writer: &mut Writer<C>) -> Result<()> {
        let mut refusal = self.refusal.lock();
        let Some(current) = refusal.as_mut() else {
            return Ok(());
        };
        let now = self.clock.instant();
        let retry_due = current.retry_after.is_some_and(|at| now >= at);
        if !retry_due {
            return Err(current.error());
        }
        // The reopened storage may hold writes of the failed epoch that no sync covered (sled
        // writes its buffers out when the failed database is dropped): sync them before they
        // count as durable, as on open.
        let reopened = self
            .storage
            .reopen()
            .and_then(|()| self.absorb_journal_again());
        if let Err(e) = reopened.and_then(|()| self.storage.sync()) {
            current.retry_after = Some(now + self.reopen_interval);
            current.still_failing = Some(e.to_string());
            return Err(Error::Poisoned(current.describe()));
        }
        // Whatever was committed but not durable before the failure may be gone: start the
        // writer again from what is on disk, in a new epoch.
        self.end_epoch("the storage was reopened".into());
        let (head, problem) = check_head(self.storage.as_ref())?;
        let problem = match self.reload_anchor(head, problem) {
            Ok(problem) => problem,
            Err(e) => {
                current.retry_after = Some(now + self.reopen_interval);
                current.still_failing = Some(e.to_string());
                return Err(current.error());
            }
        };
        if problem.is_none() {
            if let Err(e) = self.empty_journal() {
                current.retry_after = Some(now + self.reopen_interval);
                current.still_failing = Some(e.to_string());
                return Err(current.error());
            }
        }
        writer.tail = Tail {
            head,
            staged: Staged::default(),
            tree: open_tree(self.storage.as_ref(), head.position)?,
        };
        writer.cache = C::default();
        *self.written.lock() = head;
        *self.durable.lock() = head;
        self.durable_position.store(head.position, Ordering::SeqCst);
        *refusal = problem.map(Refusal::damaged);
        match refusal.as_ref() {
            Some(r) => Err(r.error()),
            None => Ok(()),
        }
    }
}

impl<C> EventLog<C> {
    /// The storage, for the modules that read it directly (the Merkle tree).
    pub(crate) fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// Where the anchor lives, when the log keeps one.
    pub(crate) fn anchor_path(&self) -> Option<std::path::PathBuf> {
        self.anchor.as_ref().map(|a| a.lock().path().to_owned())
    }

    /// The clock that times the retries.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Why the log refuses writes (a damaged head, an earlier storage failure), if it does.
    pub(crate) fn head_problem(&self) -> Option<String> {
        self.refusal.lock().as_ref().map(Refusal::describe)
    }

    /// The damage found on open or by a verification since, if any.
    pub(crate) fn damage(&self) -> Option<Damage> {
        self.refusal.lock().as_ref().and_then(|r| r.damage.clone())
    }

    /// The cheap check behind `/health`: the damage found on open, a storage failure, or a
    /// stored head that has fallen behind, or differs from, the anchor's last entry.
    pub(crate) fn health(&self) -> Result<()> {
        if let Some(refusal) = self.refusal.lock().as_ref() {
            return Err(refusal.error());
        }
        let Some(anchor) = &self.anchor else {
            return Ok(());
        };
        let last = anchor.lock().last();
        crate::anchor::check_live_head(self.storage.as_ref(), last).map_err(Error::Damaged)
    }

    /// The durable head.
    pub(crate) fn head(&self) -> Head {
        *self.durable.lock()
    }

    /// Registers a function called with the new durable position after every group commit.
    pub(crate) fn on_durable(&self, listener: impl Fn(u64) + Send + Sync + 'static) {
        self.listeners.lock().push(Box::new(listener));
    }

    /// Counts an appender as about to commit until the guard drops, so that the leader of a
    /// group commit waits a moment for it.
    pub(crate) fn committing(&self) -> Committing<'_> {
        Committing::enter(&self.committing)
    }

    /// True when a signed request with this hash is staged or written.
    pub(crate) fn has_signed_request(&self, tail: &Tail, hash: &Hash) -> Result<bool> {
        Ok(tail.staged_signed_request(hash) || self.storage.signed_request(hash)?.is_some())
    }

    /// The stored bytes of a signed request (written, so durable once its events are).
    pub(crate) fn signed_request(&self, hash: &Hash) -> Result<Option<Vec<u8>>> {
        self.storage.signed_request(hash)
    }

    /// The value stored under an idempotency key, staged or written.
    pub(crate) fn idempotency(&self, tail: &Tail, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match tail.staged_idempotency(key) {
            Some(value) => Ok(Some(value)),
            None => self.storage.idempotency(key),
        }
    }

    /// The patient's events as the writer knows them: every one written to storage, staged
    /// ones included, durable or not.
    pub(crate) fn writer_stream(
        &self,
        tail: &mut Tail,
        patient: &PatientId,
    ) -> Result<Vec<RecordedEvent>> {
        let positions = self.storage.stream_positions(patient, 1, usize::MAX)?;
        let mut events = self.read_positions(&positions, decode_frame)?;
        // Staged appends may be the patient's (when the command side dropped its state after a
        // failed request), and so may the batch being journaled: they follow what storage
        // holds, read from those batches. (They are not written ahead of their group commit:
        // with a journal, a batch in storage before the journal holds it could outlive a crash
        // that the journal's entry did not.)
        for batch in tail.unstored() {
            let first = batch.frames.first().map_or(0, |(p, _)| *p);
            for (_, _, position) in (batch.index.iter()).filter(|(p, _, _)| p == patient) {
                let frame = usize::try_from(position - first)
                    .ok()
                    .and_then(|i| batch.frames.get(i))
                    .filter(|(p, _)| p == position)
                    .ok_or_else(|| not_stored(*position))?;
                events.push(decode_frame(*position, &frame.1)?);
            }
        }
        Ok(events)
    }

    /// After a failed write or sync: ends the epoch, so that nothing pending is acknowledged,
    /// and refuses writes until the storage is reopened.
    fn storage_failed(&self, doing: &str, e: &Error) {
        self.end_epoch(e.to_string());
        let mut refusal = self.refusal.lock();
        if refusal.is_none() {
            *refusal = Some(Refusal {
                reason: format!("{doing} failed: {e}"),
                damage: None,
                retry_after: Some(self.clock.instant()),
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
    pub(crate) fn make_durable(&self, position: u64, epoch: u64) -> Result<()> {
        loop {
            if let Some(settled) = self.settled(position, epoch) {
                return settled;
            }
            let mut state = self.sync_state.lock();
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
        let ended = self.ended_epochs.lock();
        let end = ended.iter().find(|end| end.epoch == epoch);
        if end.is_some_and(|end| position <= end.durable) {
            return Some(Ok(()));
        }
        let cause = end
            .map(|end| format!(" ({})", end.cause))
            .unwrap_or_default();
        Some(Err(StorageError::Lost {
            context: format!(
                "the write was lost to a storage failure before it became durable{cause}; send it again"
            ),
        }
        .into()))
    }

    /// Ends the current epoch: what is committed and not yet durable is never acknowledged.
    fn end_epoch(&self, cause: String) {
        let mut ended = self.ended_epochs.lock();
        let epoch = self.epoch.load(Ordering::SeqCst);
        ended.push(EndedEpoch {
            epoch,
            durable: self.durable_position.load(Ordering::SeqCst),
            cause,
        });
        if ended.len() > ENDED_EPOCHS_KEPT {
            ended.remove(0);
        }
        self.epoch.store(epoch + 1, Ordering::SeqCst);
    }

    /// The leader's part of a group commit: gather, write, sync, anchor, publish.
    fn lead_sync(&self) -> Result<()> {
        // Appenders already past their checks are about to commit: let them, so that this one
        // sync covers them too instead of each paying its own. Bounded, so that a steady stream
        // of appenders cannot hold the sync back; a bound on a spin, not the ledger's time, so
        // on the system's monotonic clock.
        let deadline = Instant::now() + GROUP_COMMIT_WAIT;
        while self.committing.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let journal_entry = self.write_staged(&mut self.writer.lock().tail)?;
        // Everything written before this point is covered by the sync below.
        let target = *self.written.lock();
        let mut checkpoint_due = false;
        if let Some(journal) = &self.journal {
            let mut journal = journal.lock();
            if let Some(entry) = journal_entry {
                let syncing = timing::start(Phase::JournalSync);
                if let Err(e) = journal.journal.append(&entry) {
                    self.storage_failed("journaling the writes", &e);
                    return Err(e);
                }
                drop(syncing);
                // Durable now; stored once the journal holds it, so that a crash never leaves
                // in storage part of a batch the journal lacks (the open stores the journal's
                // batches again, whole).
                let _writing = timing::start(Phase::SledWrite);
                let mut writer = self.writer.lock();
                let batch = std::mem::take(&mut writer.tail.staged.in_flight);
                if let Err(e) = self.storage.store_journaled(batch) {
                    self.storage_failed("a write", &e);
                    return Err(e);
                }
            }
            checkpoint_due = journal.journal.bytes() >= CHECKPOINT_BYTES
                || (journal.journal.bytes() > 0
                    && self.clock.instant() >= journal.last_checkpoint + CHECKPOINT_INTERVAL);
        } else {
            if let Err(e) = self.sync_storage() {
                self.storage_failed("making writes durable", &e);
                return Err(e);
            }
            if let Err(e) = self.anchor_through(target.position) {
                self.storage_failed("anchoring the writes", &e);
                return Err(e);
            }
        }
        {
            let mut durable = self.durable.lock();
            // The durable position only grows between reopens (a reopen starts again from what
            // storage holds). Cheap, so always checked.
            assert!(
                target.position >= durable.position,
                "the durable position went back from {} to {}",
                durable.position,
                target.position
            );
            *durable = target;
        }
        self.durable_position
            .store(target.position, Ordering::Release);
        for listener in self.listeners.lock().iter() {
            listener(target.position);
        }
        // After publishing: the appends above are durable in the journal whatever happens here.
        if checkpoint_due {
            if let Err(e) = self.checkpoint(target.position) {
                self.storage_failed("checkpointing the journal", &e);
                return Err(e);
            }
        }
        Ok(())
    }

    /// With a journal: syncs the storage, anchors every event up to `position` (all that is
    /// written) and empties the journal. Called by the sync's leader, or with no appender left.
    fn checkpoint(&self, position: u64) -> Result<()> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let _checkpointing = timing::start(Phase::Checkpoint);
        let mut journal = journal.lock();
        self.sync_storage()?;
        self.anchor_through(position)?;
        journal.journal.reset()?;
        journal.last_checkpoint = self.clock.instant();
        Ok(())
    }

    /// Syncs the storage (sled's flush and `fdatasync`).
    fn sync_storage(&self) -> Result<()> {
        let _syncing = timing::start(Phase::SledSync);
        self.storage.sync()
    }

    /// After the storage reopened: anchors the journal's events (as the disk holds them) and
    /// applies them to the storage again, into a fresh copy of the anchor from its file.
    fn absorb_journal_again(&self) -> Result<()> {
        let (Some(journal), Some(anchor)) = (&self.journal, &self.anchor) else {
            return Ok(());
        };
        let batches = journal.lock().journal.reread()?;
        let mut fresh = Anchor::open(anchor.lock().path())?;
        absorb_journal(self.storage.as_ref(), Some(&mut fresh), batches)?;
        *anchor.lock() = fresh;
        Ok(())
    }

    /// Empties the journal once storage and anchor hold what it held.
    fn empty_journal(&self) -> Result<()> {
        match &self.journal {
            Some(journal) => {
                let mut journal = journal.lock();
                if journal.journal.bytes() > 0 {
                    journal.journal.reset()?;
                }
                journal.last_checkpoint = self.clock.instant();
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Whether the journal writes directly; `None` without one.
    pub(crate) fn journal_writes_directly(&self) -> Option<bool> {
        self.journal
            .as_ref()
            .map(|j| j.lock().journal.writes_directly())
    }

    /// Where the journal lives, when the log keeps one.
    pub(crate) fn journal_path(&self) -> Option<std::path::PathBuf> {
        self.journal
            .as_ref()
            .map(|j| j.lock().journal.path().to_owned())
    }

    /// Writes the staged appends to storage as one atomic batch (not yet durable); with a
    /// journal, keeps the batch as the one in flight and returns its journal entry, for the
    /// caller to make durable and then store.
    fn write_staged(&self, tail: &mut Tail) -> Result<Option<Vec<u8>>> {
        if tail.staged.batch.is_empty() || tail.staged.epoch != self.epoch.load(Ordering::SeqCst) {
            // Nothing staged, or the appends of an ended epoch: those are never acknowledged,
            // and the reopen after the failure starts the writer again from storage.
            return Ok(None);
        }
        let mut batch = std::mem::take(&mut tail.staged.batch);
        // Gapless: the batch follows what is written, and nothing is written beyond what is
        // durable but the batches before it. Cheap (both ends), so always checked.
        let written = *self.written.lock();
        assert!(
            batch
                .frames
                .first()
                .is_none_or(|(p, _)| *p == written.position + 1)
                && batch
                    .frames
                    .last()
                    .is_none_or(|(p, _)| *p == tail.head.position),
            "the staged batch follows the written head {} up to the tail's {}",
            written.position,
            tail.head.position
        );
        assert!(
            self.head().position <= written.position,
            "durable beyond written"
        );
        self.anchor_stage(&batch.frames);
        // The tree's nodes go into the same batch as the frames they cover. After a failed
        // write the reopen reads the tree's edge again from storage.
        tail.tree.extend(&mut batch);
        // The tree covers exactly the frames written (unless it stopped at a damaged frame on
        // open): once synced, its size is the durable position. Cheap, so always checked.
        assert!(
            !tail.tree.in_step() || tail.tree.size() == tail.head.position,
            "the tree's size {} is the written position {}",
            tail.tree.size(),
            tail.head.position
        );
        if self.journal.is_some() {
            let mut entry = Vec::with_capacity(journal_entry_size(&batch));
            encode_batch(&batch, &mut entry);
            tail.staged.in_flight = batch;
            *self.written.lock() = tail.head;
            return Ok(Some(entry));
        }
        let writing = timing::start(Phase::SledWrite);
        let committed = self.storage.commit(batch);
        drop(writing);
        if let Err(e) = committed {
            // The batch may or may not be in sled's memory. Writes are refused until the
            // storage is reopened and the writer's state read again from it.
            self.storage_failed("a write", &e);
            return Err(e);
        }
        *self.written.lock() = tail.head;
        Ok(None)
    }

    /// The events at `positions` (ascending), each stored value read once, durable or not,
    /// each made by `make` from its position and frame.
    fn read_positions<T>(
        &self,
        positions: &[u64],
        make: fn(u64, &[u8]) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut events = Vec::with_capacity(positions.len());
        self.storage.frames_at(positions, &mut |position, frame| {
            let bytes = frame.ok_or_else(|| not_stored(position))?;
            events.push(make(position, bytes)?);
            Ok(())
        })?;
        Ok(events)
    }

    /// The patient's durable events from `from_revision` (1 is the first), up to `limit`, each
    /// made by `make` from its position and frame.
    pub(crate) fn read_stream<T>(
        &self,
        patient: &PatientId,
        from_revision: u64,
        limit: usize,
        make: fn(u64, &[u8]) -> Result<T>,
    ) -> Result<Vec<T>> {
        let durable = self.durable_position.load(Ordering::Acquire);
        let mut positions = self
            .storage
            .stream_positions(patient, from_revision.max(1), limit)?;
        positions.retain(|p| *p <= durable);
        self.read_positions(&positions, make)
    }

    /// Durable events of all patients after `after` (0 for the start), up to `limit`, in order,
    /// each made by `make` from its position and frame.
    pub(crate) fn read_all<T>(
        &self,
        after: u64,
        limit: usize,
        make: fn(u64, &[u8]) -> Result<T>,
    ) -> Result<Vec<T>> {
        let durable = self.durable_position.load(Ordering::Acquire);
        if after >= durable {
            return Ok(vec![]);
        }
        let limit = limit.min((durable - after) as usize);
        // Made straight from the scanned bytes: no copy of each frame on the way.
        let mut events = Vec::with_capacity(limit.min(8192));
        let mut failure = None;
        self.storage.scan(after + 1, &mut |position, bytes| {
            match make(position, bytes) {
                Ok(event) => events.push(event),
                Err(e) => failure = Some(e),
            }
            failure.is_none() && events.len() < limit
        })?;
        failure.map_or(Ok(events), Err)
    }

    /// Visits every durable event from position `from`, in order, without collecting them.
    pub(crate) fn for_each(
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

    /// The event at `position`, durable or not.
    pub(crate) fn read_position(&self, position: u64) -> Result<RecordedEvent> {
        self.read_positions(&[position], decode_frame)?
            .pop()
            .ok_or_else(|| not_stored(position))
    }

    /// Verifies the whole chain, the per-patient index against the frames, and the log
    /// against its anchor, and with `tree_sizes` recomputes the Merkle root at the end and at
    /// those sizes; damage found makes the log refuse writes from then on.
    pub(crate) fn verify(
        &self,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &std::sync::atomic::AtomicBool,
        recompute: crate::verify::Recompute<'_>,
    ) -> Result<Option<crate::verify::Verified>> {
        let total = self.head().position.max(self.written.lock().position);
        // The anchor as it was before the scan: entries added while it runs are of events the
        // scan may not have reached.
        let anchored = self.anchor.as_ref().and_then(|a| a.lock().last());
        let report = crate::anchor::catch_damage("verifying the ledger", || {
            let storage = self.storage.as_ref();
            let scanned = crate::verify::verify_chain(storage, total, progress, cancel, recompute)?;
            let Some(mut verified) = scanned else {
                return Ok(None);
            };
            if let Some(anchor) = &self.anchor {
                let anchor = anchor.lock();
                crate::anchor::verify_against(
                    &anchor,
                    anchored,
                    self.storage.as_ref(),
                    &mut verified.report,
                )?;
            }
            if verified.report.problem.is_some() {
                verified.heads = None;
            }
            Ok(Some(verified))
        })?;
        if let Some(problem) = report.as_ref().and_then(|v| v.report.problem.as_ref()) {
            self.found_damage(problem, anchored.map_or(0, |a| a.position), total);
        }
        Ok(report)
    }

    /// Refuses writes from now on because verification found `problem`.
    fn found_damage(&self, problem: &Problem, last_anchored: u64, head: u64) {
        let mut refusal = self.refusal.lock();
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
            anchor.lock().stage(frames);
        }
    }

    /// Makes the anchor hold every event up to `position` (written to storage and synced):
    /// one write and one `fdatasync` for the whole group commit.
    fn anchor_through(&self, position: u64) -> Result<()> {
        let _syncing = timing::start(Phase::AnchorSync);
        match &self.anchor {
            Some(anchor) => anchor.lock().sync_through(position),
            None => Ok(()),
        }
    }

    /// After the storage reopened: reads the anchor again from disk and compares it with the
    /// log, whose head is `head`.
    fn reload_anchor(&self, head: Head, problem: Option<Problem>) -> Result<Option<Damage>> {
        let mut fresh = match &self.anchor {
            Some(anchor) => Some(Anchor::open(anchor.lock().path())?),
            None => None,
        };
        let damage = compare_with_anchor(self.storage.as_ref(), fresh.as_mut(), head, problem)?;
        if let (Some(anchor), Some(fresh)) = (&self.anchor, fresh) {
            *anchor.lock() = fresh;
        }
        Ok(damage)
    }

    /// Bytes the log occupies on disk.
    pub(crate) fn size_on_disk(&self) -> Result<u64> {
        self.storage.size_on_disk()
    }
}

impl<C> Drop for EventLog<C> {
    /// Leaves the journal empty when everything in it can be synced and anchored, so that a
    /// ledger closed cleanly is whole in storage and anchor alone.
    fn drop(&mut self) {
        if self.refusal.get_mut().is_some() {
            return;
        }
        let Some(journal) = &self.journal else {
            return;
        };
        if journal.lock().journal.bytes() == 0 {
            return;
        }
        // On failure the journal stays as it is, for the next open to replay.
        let _ = self.checkpoint(self.durable_position.load(Ordering::SeqCst));
    }
}

/// About how many bytes the journal entry of `batch` takes.
fn journal_entry_size(batch: &WriteBatch) -> usize {
    let frames: usize = batch.frames.iter().map(|(_, f)| f.len() + 12).sum();
    frames + batch.index.len() * 40 + batch.tree.len() * 41 + 64
}

/// Brings what the journal held (`batches`, in order) into the anchor and the storage: the
/// anchor gets the hashes of its events after its last entry, and the storage every batch again
/// (what a crash left of them there is made whole; after a gap, which only damage leaves,
/// nothing more is stored and the comparison with the anchor names what is missing).
fn absorb_journal(
    storage: &dyn Storage,
    anchor: Option<&mut Anchor>,
    batches: Vec<WriteBatch>,
) -> Result<()> {
    if batches.is_empty() {
        return Ok(());
    }
    if let Some(anchor) = anchor.filter(|a| a.damage().is_none()) {
        let from = anchor.last().map(|a| a.position + 1);
        let mut first = None;
        let mut hashes = Vec::new();
        for (position, frame) in batches.iter().flat_map(|b| b.frames.iter()) {
            if from.is_some_and(|from| *position < from) {
                continue;
            }
            if first.is_none() {
                first = Some(*position);
            }
            hashes.push(Frame::parse(frame).map_or(Hash::ZERO, |f| f.hash));
        }
        // The journal follows the anchor's last entry (a checkpoint empties it only once the
        // anchor holds what it held); anything else is left to the comparison to name.
        if let Some(first) = first.filter(|f| from.is_none_or(|from| *f == from)) {
            anchor.append_copied(first, &hashes)?;
        }
    }
    // A group commit stores its batch only once the journal holds it, entry by entry: a crash
    // may have left any part of the journal's batches in storage, so each is stored again,
    // whole. After a gap, which only damage leaves (storage lost what a checkpoint synced, or
    // the journal skips positions), nothing is stored and the comparison with the anchor names
    // what is missing.
    let mut next = match batches.iter().find_map(|b| b.frames.first()) {
        Some(&(first, _)) if first > 1 && storage.frame(first - 1)?.is_none() => return Ok(()),
        Some(&(first, _)) => first,
        None => 0,
    };
    for batch in batches {
        if let (Some(&(first, _)), Some(&(last, _))) = (batch.frames.first(), batch.frames.last()) {
            if first != next {
                break;
            }
            next = last + 1;
        }
        storage.store_journaled(batch)?;
    }
    Ok(())
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

/// Why the log refuses writes.
struct Refusal {
    reason: String,
    /// Set when the log is damaged (acknowledged events missing or changed).
    damage: Option<Damage>,
    /// When a reopen of the storage may be tried; `None` when the log is damaged and only an
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
struct Leader<'a, C>(&'a EventLog<C>);

impl<C> Drop for Leader<'_, C> {
    fn drop(&mut self) {
        let waiters = {
            let mut state = self.0.sync_state.lock();
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
pub(crate) struct Committing<'a>(&'a AtomicU64);

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

/// The damage that makes a log read-only: a head that does not verify, or a log that
/// disagrees with its anchor (which is brought up to the log's head when it is behind).
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

/// The event decoded from its frame.
pub(crate) fn decode_frame(position: u64, bytes: &[u8]) -> Result<RecordedEvent> {
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

/// The event decoded from its frame, with a copy of the frame.
pub(crate) fn decode_framed(position: u64, bytes: &[u8]) -> Result<FramedEvent> {
    Ok(FramedEvent {
        event: decode_frame(position, bytes)?,
        frame: bytes.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anchor::anchor_path;
    use crate::clock::SystemClock;
    use crate::event::{Event, Note, NoteKind};
    use crate::ids::{ActorId, Text, Uid};
    use crate::journal::journal_path;
    use crate::record::{encode_record, Actor, Record, Timestamp};
    use crate::role::Role;
    use crate::storage::SledStorage;

    fn note(patient: &PatientId, revision: u64) -> Vec<u8> {
        let at = Timestamp::from_micros(1_772_355_600_000_000);
        encode_record(&Record {
            patient: patient.clone(),
            revision,
            event_id: Uid::random(),
            recorded_at: at,
            occurred_at: at,
            actor: Actor {
                id: ActorId::parse("gp-1").unwrap(),
                role: Role::Gp,
                name: Text::new("Dr. GP").unwrap(),
                organisation: None,
            },
            reason: Text::new("test").unwrap(),
            correlation_id: Uid::random(),
            causation_id: None,
            idempotency_key: None,
            signed_request: None,
            event: Event::NoteAdded(Note {
                kind: NoteKind::Note,
                subject: Text::new("note").unwrap(),
                body: Text::default(),
            }),
        })
        .unwrap()
    }

    #[test]
    fn a_patient_s_staged_events_are_read_from_the_batch_and_journaled_by_their_group_commit() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger");
        let log = EventLog::<()>::open(
            Box::new(SledStorage::open(&ledger).unwrap()),
            Some(Anchor::open(&anchor_path(&ledger)).unwrap()),
            Some(Journal::open(&journal_path(&ledger)).unwrap()),
            Arc::new(SystemClock),
            Duration::from_millis(200),
        )
        .unwrap();
        let patient = PatientId::parse("999990007").unwrap();
        let (mut writer, epoch) = log.lock_writer().unwrap();
        let mut pending = writer.tail.begin();
        pending.link(&patient, 1, &note(&patient, 1));
        pending.link(&patient, 2, &note(&patient, 2));
        writer.tail.stage(pending, epoch);
        // The command side folds the patient again (after a failed request, say).
        let events = log.writer_stream(&mut writer.tail, &patient).unwrap();
        let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
        assert_eq!(positions, [1, 2]);
        assert_eq!(
            log.storage().last_frame().unwrap(),
            None,
            "nothing is written ahead of the group commit"
        );
        drop(writer);
        log.make_durable(2, epoch).unwrap();
        let (_, batches) = Journal::open(&journal_path(&ledger)).unwrap();
        let journaled: Vec<u64> = (batches.iter())
            .flat_map(|b| b.frames.iter().map(|(p, _)| *p))
            .collect();
        assert_eq!(journaled, [1, 2], "the group commit journaled both");
        assert_eq!(log.head().position, 2);
    }

    fn open_log(ledger: &std::path::Path) -> EventLog<()> {
        EventLog::<()>::open(
            Box::new(SledStorage::open(ledger).unwrap()),
            Some(Anchor::open(&anchor_path(ledger)).unwrap()),
            Some(Journal::open(&journal_path(ledger)).unwrap()),
            Arc::new(SystemClock),
            Duration::from_millis(200),
        )
        .unwrap()
    }

    #[test]
    fn a_batch_being_journaled_is_read_from_memory_until_it_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(&dir.path().join("ledger"));
        let patient = PatientId::parse("999990007").unwrap();
        let (mut writer, epoch) = log.lock_writer().unwrap();
        let mut pending = writer.tail.begin();
        pending.link(&patient, 1, &note(&patient, 1));
        pending.link(&patient, 2, &note(&patient, 2));
        pending.remember(b"key-1", b"outcome".to_vec());
        writer.tail.stage(pending, epoch);
        // The leader takes the batch to journal it; the writer lock is free meanwhile.
        let entry = log.write_staged(&mut writer.tail).unwrap();
        assert!(entry.is_some(), "a journal entry to sync");
        assert!(writer.tail.staged.batch.is_empty());
        assert_eq!(log.storage().last_frame().unwrap(), None, "not stored yet");
        let events = log.writer_stream(&mut writer.tail, &patient).unwrap();
        let positions: Vec<u64> = events.iter().map(|e| e.position).collect();
        assert_eq!(
            positions,
            [1, 2],
            "the batch in flight is the patient's too"
        );
        assert_eq!(
            log.idempotency(&writer.tail, b"key-1").unwrap(),
            Some(b"outcome".to_vec()),
            "a retry finds the first outcome while it is journaled"
        );
    }

    #[test]
    fn what_a_crash_left_of_a_journaled_batch_in_storage_is_made_whole_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        let patient = PatientId::parse("999990007").unwrap();
        let log = open_log(&first);
        let (mut writer, epoch) = log.lock_writer().unwrap();
        let mut pending = writer.tail.begin();
        // 64 events: one complete subtree of the stored levels.
        for revision in 1..=64 {
            pending.link(&patient, revision, &note(&patient, revision));
        }
        writer.tail.stage(pending, epoch);
        drop(writer);
        log.make_durable(64, epoch).unwrap();
        // The power cut: the journal holds the batch; storage holds its frames and not its
        // index entries or tree nodes (sled wrote only part of the inserts).
        let second = dir.path().join("second");
        std::fs::create_dir_all(&second).unwrap();
        std::fs::copy(journal_path(&first), journal_path(&second)).unwrap();
        let (_, batches) = Journal::open(&journal_path(&second)).unwrap();
        let [batch] = <[WriteBatch; 1]>::try_from(batches).ok().unwrap();
        assert!(!batch.index.is_empty() && !batch.tree.is_empty());
        {
            let partial = SledStorage::open(&second).unwrap();
            partial
                .store_journaled(WriteBatch {
                    frames: batch.frames.clone(),
                    ..WriteBatch::default()
                })
                .unwrap();
            partial.sync().unwrap();
            assert!(partial
                .stream_positions(&patient, 1, 10)
                .unwrap()
                .is_empty());
        }
        let reopened = open_log(&second);
        assert_eq!(reopened.head().position, 64);
        assert!(reopened.damage().is_none(), "{:?}", reopened.damage());
        assert_eq!(
            reopened
                .storage()
                .stream_positions(&patient, 1, 100)
                .unwrap(),
            (1..=64).collect::<Vec<u64>>(),
            "the index entries are stored again from the journal"
        );
        for (level, index, hash) in &batch.tree {
            assert_eq!(
                reopened.storage().tree_node(*level, *index).unwrap(),
                Some(*hash),
                "the tree's nodes are stored again from the journal"
            );
        }
    }
}
