//! The access log (NEN 7513): every access to patient data, refused attempts included, in its own
//! append-only, hash-chained log beside the ledger, with its own signed checkpoints.
//!
//! A front end takes a [`Permit`] before it serves a request ([`AccessLog::reserve`]: refused
//! when the queue is full or the log cannot be written, so that nothing is served unlogged) and
//! records the entry with the outcome when it answers ([`Permit::record`]). Entries get their
//! positions in the order they are recorded; a writer thread makes them durable in group commits
//! (one sled batch, flush, `fdatasync`) as soon as they are queued, so that an entry is durable
//! within [`DURABLE_WITHIN`] of its answer on a working disk. The writer signs a checkpoint of
//! the chain's size and head hash every so many entries or seconds and when it stops. The
//! patients' streams, their revisions and the ledger's checkpoints are untouched by any of it.
//!
//! The layout, the hash and the checkpoints are specified in `docs/access-log.md`.

mod entry;
mod store;

pub use entry::{
    bounded, method_name, AccessEntry, AccessFilter, AccessReason, Who, ENTRY_FORMAT_VERSION,
    MAX_RESOURCE_BYTES, MAX_USER_AGENT_BYTES,
};
pub use store::{
    entry_hash, entry_key, AccessProblem, AccessStore, AccessVerifyReport, StoredEntry,
    ACCESS_HASH_TAG,
};

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use careledger_core::checkpoint::{Checkpoint, CheckpointConfig, LogKey};
use careledger_core::merkle::{TreeHash, TreeHead};
use careledger_core::note::VerifierKey;
use careledger_core::record::{Hash, Timestamp};

use crate::error::AppError;
use crate::reserve::Reserve;
use store::Commit;

/// An entry is durable this long after its request was answered, on a disk that syncs in
/// less than half of it: the writer commits as soon as an entry is queued, but no sooner than
/// [`COMMIT_SPACING`] after its last commit, and a commit waits at most for the one before it.
pub const DURABLE_WITHIN: Duration = Duration::from_millis(50);

/// Entries queued and not yet durable at most, by default; beyond it accesses are refused.
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;

/// Space kept in reserve by default: released at the first failed write, so that the log can
/// go on (and reads with it) for a while on a full disk.
pub const DEFAULT_RESERVE_BYTES: u64 = 64 * 1024 * 1024;

/// Set to `1` to keep no access log (measurements side by side only: a server without it serves
/// patient data unlogged).
pub const NO_ACCESS_LOG_ENV: &str = "CARELEDGER_BENCH_NO_ACCESS_LOG";

/// The access log's origin for a ledger of `origin`.
pub fn origin_for(ledger_origin: &str) -> String {
    format!("{ledger_origin}/access-log")
}

/// Where the access log's parts live under the data directory.
pub fn dir(data: &Path) -> PathBuf {
    data.join("access-log")
}

fn store_dir(data: &Path) -> PathBuf {
    dir(data).join("store")
}

/// The latest signed access log checkpoint.
pub fn checkpoint_path(data: &Path) -> PathBuf {
    dir(data).join("checkpoint")
}

/// The access log's reserve of `bytes` (released at its first failed write).
fn reserve(data: &Path, bytes: u64) -> Reserve {
    Reserve::new(dir(data).join("reserve"), bytes, "the access log's reserve")
}

/// The reserve an open of the access log's store released to make room for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Released {
    /// None: the store opened at once.
    Nothing,
    /// The access log's own (`<data>/access-log/reserve`).
    OwnReserve,
    /// The data directory's (`<data>/reserve`).
    DataReserve,
}

/// Opens the store of the data directory `data`. sled writes as it opens: when that fails
/// for another reason than another process holding the store, the disk may be full, and the
/// open is tried again in the space of the access log's reserve `own`, then of the data
/// directory's (as [`crate::data_dir::open_in_reserve`] opens the ledger and read models), so
/// that the server and `careledger verify` open the log on a full disk too. A serve makes
/// both reserves again once there is room.
fn open_store_in_reserve(
    data: &Path,
    cache_bytes: u64,
    own: &Reserve,
) -> Result<(AccessStore, Released), AppError> {
    let dir = store_dir(data);
    let mut failure = match AccessStore::open_with_cache(&dir, cache_bytes) {
        Ok(store) => return Ok((store, Released::Nothing)),
        Err(e @ AppError::InUse(_)) => return Err(e),
        Err(e) => e,
    };
    let reserves = [
        (own.clone(), Released::OwnReserve),
        (crate::data_dir::reserve(data, 0), Released::DataReserve),
    ];
    for (reserve, released) in reserves {
        if !reserve.release() {
            continue;
        }
        tracing::warn!(error = %failure, reserve = %reserve.path().display(), "opening the access log failed; opening it again in the space of a reserve (is the disk full?)");
        match AccessStore::open_with_cache(&dir, cache_bytes) {
            Ok(store) => return Ok((store, released)),
            Err(e @ AppError::InUse(_)) => return Err(e),
            Err(e) => failure = e,
        }
    }
    Err(failure)
}

/// How the access log is kept.
#[derive(Debug)]
pub struct AccessLogConfig {
    /// Entries queued and not yet durable at most.
    pub queue_capacity: usize,
    /// Bytes kept in reserve for a full disk (0: none).
    pub reserve_bytes: u64,
    /// The key that signs checkpoints (the log key for the access log's origin,
    /// [`LogKey::for_origin`]) and when; `None` signs none.
    pub signing: Option<(LogKey, CheckpointConfig)>,
    /// sled's page cache for the access log, in bytes (a share of the memory budget).
    pub cache_bytes: u64,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        Self {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            reserve_bytes: DEFAULT_RESERVE_BYTES,
            signing: None,
            cache_bytes: store::CACHE_BYTES,
        }
    }
}

struct Queue {
    entries: Vec<(u64, AccessEntry)>,
    /// The position the next recorded entry gets.
    next: u64,
    stop: bool,
}

struct Shared {
    data: PathBuf,
    store: RwLock<Option<AccessStore>>,
    queue: Mutex<Queue>,
    wake: Condvar,
    durable: Mutex<u64>,
    became_durable: Condvar,
    /// Permits given out whose entries are not durable yet.
    outstanding: AtomicUsize,
    capacity: usize,
    failed: AtomicBool,
    failure: Mutex<String>,
    latest_checkpoint: Mutex<Option<String>>,
    /// sled's page cache, kept for a reopen.
    cache_bytes: u64,
}

/// The access log of a running server.
pub struct AccessLog {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    verifier: Option<VerifierKey>,
    /// Opened in the space of the data directory's reserve.
    in_data_reserve: bool,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AccessLog({})", self.shared.data.display())
    }
}

/// The right to serve one request: its entry is recorded with [`Permit::answered`] (the entry
/// [`Permit::keep`] gave it, with the answer's status) or [`Permit::record`]. A permit dropped
/// unrecorded (the request's future was dropped: its client went away) records the entry it
/// keeps as it is, or else gives its place in the queue back.
pub struct Permit {
    shared: Arc<Shared>,
    entry: Option<AccessEntry>,
    recorded: bool,
}

/// The status recorded for a request whose client went away before it was answered (nginx's
/// "client closed request").
pub const CLIENT_CLOSED: u16 = 499;

impl Permit {
    /// Keeps the request's entry: recorded as it is should the request end without an answer
    /// (give it the status [`CLIENT_CLOSED`]), else by [`Permit::answered`]. One entry, not a
    /// copy for each ending.
    pub fn keep(&mut self, entry: AccessEntry) {
        self.entry = Some(entry);
    }

    /// The entry kept, to complete while the request is served.
    pub fn kept_mut(&mut self) -> Option<&mut AccessEntry> {
        self.entry.as_mut()
    }

    /// Queues the kept entry with the answer's `status`, recorded at `recorded_at`; its
    /// position. `None` when no entry was kept (the place is given back).
    pub fn answered(mut self, status: u16, recorded_at: Timestamp) -> Option<u64> {
        let mut entry = self.entry.take()?;
        entry.status = status;
        entry.recorded_at = recorded_at;
        self.recorded = true;
        Some(push(&self.shared, entry))
    }

    /// Queues `entry` for the writer (instead of any kept); returns its position.
    pub fn record(mut self, entry: AccessEntry) -> u64 {
        self.recorded = true;
        self.entry = None;
        push(&self.shared, entry)
    }
}

fn push(shared: &Shared, entry: AccessEntry) -> u64 {
    let mut queue = shared.queue.lock();
    let position = queue.next;
    queue.next += 1;
    queue.entries.push((position, entry));
    drop(queue);
    shared.wake.notify_one();
    position
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.recorded {
            return;
        }
        match self.entry.take() {
            Some(entry) => {
                push(&self.shared, entry);
            }
            None => {
                self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl AccessLog {
    /// Opens (or creates) the access log of the data directory `data` and starts its writer.
    /// Keeps the reserve file of `config.reserve_bytes` (made on first start). A stored
    /// checkpoint that the log does not extend (the log was cut or changed) stops the signing,
    /// and says so in the server's log; the log is kept all the same.
    pub fn open(data: &Path, config: AccessLogConfig) -> Result<AccessLog, AppError> {
        let reserve = reserve(data, config.reserve_bytes);
        // Opening writes: on a full disk a reserve makes the room for it.
        let (store, released) = open_store_in_reserve(data, config.cache_bytes, &reserve)?;
        let (head, head_hash) = store.head()?;
        if let Err(e) = reserve.ensure() {
            // A full disk: the log is kept all the same, and says so; a restart with space
            // makes the reserve again.
            tracing::error!(error = %e, "the access log keeps no reserve; free disk space");
        }
        let file = checkpoint_path(data);
        let mut signing = config.signing;
        let stored = signing
            .as_ref()
            .map(|(key, _)| check_stored_checkpoint(&store, &file, &key.verifier_key(), head));
        let (signed, latest) = match stored {
            Some(Ok(Some((size, note)))) => (size, Some(note)),
            Some(Err(problem)) => {
                tracing::error!(%problem, "signing no access log checkpoints");
                signing = None;
                (0, None)
            }
            _ => (0, None),
        };
        let verifier = signing.as_ref().map(|(key, _)| key.verifier_key());
        let shared = Arc::new(Shared {
            data: data.to_owned(),
            store: RwLock::new(Some(store)),
            queue: Mutex::new(Queue {
                entries: Vec::new(),
                next: head + 1,
                stop: false,
            }),
            wake: Condvar::new(),
            durable: Mutex::new(head),
            became_durable: Condvar::new(),
            outstanding: AtomicUsize::new(0),
            capacity: config.queue_capacity.max(1),
            failed: AtomicBool::new(false),
            failure: Mutex::new(String::new()),
            latest_checkpoint: Mutex::new(latest),
            cache_bytes: config.cache_bytes,
        });
        let worker = shared.clone();
        let writer = Writer {
            head,
            head_hash,
            signed,
            signing,
            last_signed_at: Instant::now(),
            last_commit: Instant::now(),
            buffer: Vec::new(),
            spare: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || writer.run(&worker))
            .map_err(|e| AppError::Internal(format!("starting the access log writer: {e}")))?;
        Ok(AccessLog {
            shared,
            thread: Mutex::new(Some(thread)),
            verifier,
            in_data_reserve: released == Released::DataReserve,
        })
    }

    /// True when the log could open only in the space of the data directory's reserve (the
    /// disk is full and the log kept no reserve of its own): the server then holds writes
    /// until that reserve is made again ([`crate::DataDir::hold_for_full_disk`]).
    pub fn opened_in_data_reserve(&self) -> bool {
        self.in_data_reserve
    }

    /// A place in the queue for one request's entry; refused (the request must not be served)
    /// while the log cannot be written or the queue is full.
    pub fn reserve(&self) -> Result<Permit, AppError> {
        if self.shared.failed.load(Ordering::Acquire) {
            return Err(AppError::AccessLogUnavailable(format!(
                "the access log cannot be kept ({}); no patient data is served unlogged, retry \
                 shortly",
                self.shared.failure.lock()
            )));
        }
        let taken = self.shared.outstanding.fetch_add(1, Ordering::AcqRel);
        if taken >= self.shared.capacity {
            self.shared.outstanding.fetch_sub(1, Ordering::AcqRel);
            return Err(AppError::AccessLogUnavailable(format!(
                "the access log cannot be kept: {} entries wait to be written; no patient data \
                 is served unlogged, retry shortly",
                self.shared.capacity
            )));
        }
        Ok(Permit {
            shared: self.shared.clone(),
            entry: None,
            recorded: false,
        })
    }

    /// Copies the durable entries into a new access log store under the data directory
    /// `data` (a backup); the position copied through.
    pub fn copy_into(&self, data: &Path) -> Result<u64, AppError> {
        // The checkpoint first: the durable position, read after, is at least its size.
        let file = checkpoint_path(&self.shared.data);
        if file.exists() {
            std::fs::create_dir_all(dir(data)).map_err(|e| AppError::Store {
                context: "copying the access log",
                detail: format!("{}: {e}", dir(data).display()),
            })?;
            let to = checkpoint_path(data);
            std::fs::copy(&file, &to).map_err(|e| AppError::Store {
                context: "copying the access log's checkpoint",
                detail: format!("{}: {e}", to.display()),
            })?;
        }
        let through = self.durable();
        match self.shared.store.read().as_ref() {
            Some(store) => store.copy_through(&store_dir(data), through)?,
            None => {
                return Err(AppError::AccessLogUnavailable(
                    "the access log's store is closed after a failure; retry the backup once it is written again".into(),
                ))
            }
        }
        // The copy verified: every entry, and its checkpoint against the log's key.
        let check = verify(data, self.verifier_key())?;
        if let Some(problem) = check
            .report
            .problem
            .map(|p| p.to_string())
            .or(check.checkpoint_problem)
        {
            return Err(AppError::Conflict(format!(
                "the access log's copy does not verify: {problem}"
            )));
        }
        Ok(through)
    }

    /// The last durable position.
    pub fn durable(&self) -> u64 {
        *self.shared.durable.lock()
    }

    /// Waits until every entry recorded so far is durable, at most `timeout`; true if it is.
    pub fn wait_recorded(&self, timeout: Duration) -> bool {
        let through = self.shared.queue.lock().next - 1;
        let mut durable = self.shared.durable.lock();
        self.shared
            .became_durable
            .wait_while_for(&mut durable, |d| *d < through, timeout);
        *durable >= through
    }

    /// Durable entries after `after` that pass `filter`, at most `limit`, oldest first; and the
    /// position to read after for the next page, when there may be more.
    pub fn list(
        &self,
        filter: &AccessFilter,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<StoredEntry>, Option<u64>), AppError> {
        let through = self.durable();
        let guard = self.shared.store.read();
        let store = guard.as_ref().ok_or_else(|| {
            AppError::AccessLogUnavailable(
                "the access log is being reopened after a storage failure; retry shortly".into(),
            )
        })?;
        let (entries, more) = store.list(filter, after, through, limit)?;
        let next = more.then(|| entries.last().map_or(after, |e| e.position));
        Ok((entries, next))
    }

    /// The latest signed access log checkpoint (a C2SP signed note); `None` before the first or
    /// when none are signed.
    pub fn latest_checkpoint(&self) -> Option<String> {
        self.shared.latest_checkpoint.lock().clone()
    }

    /// The verifier key of the access log's checkpoints, when it signs them.
    pub fn verifier_key(&self) -> Option<&VerifierKey> {
        self.verifier.as_ref()
    }

    /// Why the log cannot be written now, while it cannot.
    pub fn failure(&self) -> Option<String> {
        self.shared
            .failed
            .load(Ordering::Acquire)
            .then(|| self.shared.failure.lock().clone())
    }

    /// Writes what is queued, signs a last checkpoint and stops the writer. Requests after it
    /// are still queued but not written.
    pub fn finish(&self) {
        self.shared.queue.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The writer thread's own state.
struct Writer {
    head: u64,
    head_hash: Hash,
    signed: u64,
    signing: Option<(LogKey, CheckpointConfig)>,
    last_signed_at: Instant,
    last_commit: Instant,
    /// The last commit's buffer, kept for the next (its capacity, not its bytes).
    buffer: Vec<u8>,
    /// The queue's last vector, kept empty for the next batch to be taken into.
    spare: Vec<(u64, AccessEntry)>,
}

/// Commits are at least this far apart: under load, the entries of many requests share one
/// sled batch and one `fdatasync` (each sync costs the machine a wake-up and a disk flush),
/// while an entry queued after a quiet spell is committed at once.
pub const COMMIT_SPACING: Duration = Duration::from_millis(10);

/// Entries the writer's spare queue vector keeps room for at most.
const SPARE_CAPACITY: usize = 4096;

/// How long the writer waits between attempts after a failed write.
const RETRY: Duration = Duration::from_millis(200);
/// Attempts at stopping before the queued entries are given up (the process is ending).
const ATTEMPTS_AT_STOP: u32 = 10;

impl Writer {
    fn run(mut self, shared: &Shared) {
        loop {
            let since = self.last_commit.elapsed();
            if since < COMMIT_SPACING {
                std::thread::sleep(COMMIT_SPACING - since);
            }
            let (batch, stop) = {
                let mut queue = shared.queue.lock();
                while queue.entries.is_empty() && !queue.stop {
                    match self.next_tick() {
                        Some(wait) => {
                            if shared.wake.wait_for(&mut queue, wait).timed_out() {
                                break;
                            }
                        }
                        None => shared.wake.wait(&mut queue),
                    }
                }
                let batch = std::mem::replace(&mut queue.entries, std::mem::take(&mut self.spare));
                (batch, queue.stop)
            };
            if !batch.is_empty() && !self.commit(shared, &batch, stop) {
                return;
            }
            // The entries are dropped here, off the queue's lock; the vector is kept.
            let mut batch = batch;
            batch.clear();
            // Not the capacity of a rare burst, kept for good.
            if batch.capacity() <= SPARE_CAPACITY {
                self.spare = batch;
            }
            if self.checkpoint_due(stop) {
                self.sign(shared);
            }
            if stop && shared.queue.lock().entries.is_empty() {
                return;
            }
        }
    }

    /// Chains and writes one batch, retrying (after reopening the store, and once releasing
    /// the reserve) until it is durable; false when it was given up at stop.
    fn commit(&mut self, shared: &Shared, batch: &[(u64, AccessEntry)], stop: bool) -> bool {
        let buffer = std::mem::take(&mut self.buffer);
        let mut commit = Commit::new(self.head, self.head_hash, buffer);
        for (position, entry) in batch {
            // Positions are given in queue order and written in it: gapless.
            assert_eq!(
                *position,
                commit.last() + 1,
                "access log positions are gapless"
            );
            commit.push(entry);
        }
        let mut attempts = 0;
        loop {
            let written = match shared.store.read().as_ref() {
                Some(store) => store.write(&commit),
                None => Err(AppError::AccessLogUnavailable("the store is closed".into())),
            };
            match written {
                Ok(()) => break,
                Err(e) => {
                    attempts += 1;
                    *shared.failure.lock() = e.to_string();
                    shared.failed.store(true, Ordering::Release);
                    tracing::error!(error = %e, "writing the access log failed; accesses are refused until it is written");
                    if reserve(&shared.data, 0).release() {
                        tracing::warn!("the access log goes on in its reserve's space; free disk space and restart to make it again");
                    }
                    let stopping = stop || shared.queue.lock().stop;
                    if stopping && attempts >= ATTEMPTS_AT_STOP {
                        tracing::error!(
                            entries = batch.len(),
                            "stopping with access log entries that could not be written"
                        );
                        return false;
                    }
                    std::thread::sleep(RETRY);
                    reopen(shared);
                }
            }
        }
        let last = commit.last();
        self.last_commit = Instant::now();
        self.head = last;
        self.head_hash = commit.head_hash();
        self.buffer = commit.into_buffer();
        shared.failed.store(false, Ordering::Release);
        // Places first: whoever waits for durability may take a place next.
        shared.outstanding.fetch_sub(batch.len(), Ordering::AcqRel);
        *shared.durable.lock() = last;
        shared.became_durable.notify_all();
        true
    }

    fn next_tick(&self) -> Option<Duration> {
        let (_, config) = self.signing.as_ref()?;
        if self.head == self.signed {
            return None;
        }
        Some(
            (self.last_signed_at + config.every)
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        )
    }

    fn checkpoint_due(&self, stop: bool) -> bool {
        let Some((_, config)) = &self.signing else {
            return false;
        };
        let grown = self.head - self.signed;
        grown > 0
            && (stop
                || (config.every_events > 0 && grown >= config.every_events)
                || self.last_signed_at.elapsed() >= config.every)
    }

    fn sign(&mut self, shared: &Shared) {
        let Some((key, _)) = &self.signing else {
            return;
        };
        let head = TreeHead {
            size: self.head,
            root: TreeHash(self.head_hash.0),
        };
        let file = checkpoint_path(&shared.data);
        match key
            .sign(head)
            .map_err(|e| e.to_string())
            .and_then(|note| write_atomically(&file, &note.to_string()).map(|()| note))
        {
            Ok(note) => {
                assert!(
                    self.head > self.signed,
                    "an access log checkpoint only grows"
                );
                self.signed = self.head;
                *shared.latest_checkpoint.lock() = Some(note.to_string());
            }
            Err(problem) => {
                tracing::error!(%problem, size = self.head, "signing the access log checkpoint failed; the next tick tries again");
            }
        }
        self.last_signed_at = Instant::now();
    }
}

/// Drops the failed database and opens it again from disk (sled latches its first IO error).
fn reopen(shared: &Shared) {
    let mut guard = shared.store.write();
    *guard = None;
    match AccessStore::open_with_cache(&store_dir(&shared.data), shared.cache_bytes) {
        Ok(store) => *guard = Some(store),
        Err(e) => *shared.failure.lock() = e.to_string(),
    }
}

fn write_atomically(file: &Path, text: &str) -> Result<(), String> {
    let aside = file.with_extension("new");
    let written = File::create(&aside)
        .and_then(|mut out| {
            out.write_all(text.as_bytes())?;
            out.sync_all()
        })
        .and_then(|()| std::fs::rename(&aside, file))
        .and_then(|()| match file.parent() {
            Some(dir) => File::open(dir).and_then(|d| d.sync_all()),
            None => Ok(()),
        });
    written.map_err(|e| format!("{}: {e}", file.display()))
}

/// The stored checkpoint checked against the key and the store: its size and note, `None`
/// when there is none; an error saying what disagrees.
fn check_stored_checkpoint(
    store: &AccessStore,
    file: &Path,
    key: &VerifierKey,
    head: u64,
) -> Result<Option<(u64, String)>, String> {
    let note = match std::fs::read_to_string(file) {
        Ok(note) => note,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    let (checkpoint, _) = Checkpoint::open(&note, key).map_err(|e| e.to_string())?;
    check_extends(store, &checkpoint, head)?;
    Ok(Some((checkpoint.size(), note)))
}

/// Checks that the stored log holds the chain `checkpoint` signed: at least its size, and the
/// hash at that size its root.
fn check_extends(store: &AccessStore, checkpoint: &Checkpoint, head: u64) -> Result<(), String> {
    let size = checkpoint.size();
    if size > head {
        return Err(format!(
            "the access log holds {head} entries, its checkpoint signed {size}"
        ));
    }
    if size == 0 {
        return Ok(());
    }
    let frame = store
        .frame_at(size)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the access log has no entry at its checkpoint's size {size}"))?;
    let hash = careledger_core::chain::Frame::parse(&frame)
        .map(|f| f.hash)
        .ok_or_else(|| format!("the entry at {size} cannot be read"))?;
    if hash.0 != checkpoint.root().0 {
        return Err(format!(
            "the hash at position {size} is not the one its checkpoint signed"
        ));
    }
    Ok(())
}

/// What `careledger access-log verify` found: the chain, then the last checkpoint.
#[derive(Debug)]
pub struct AccessLogCheck {
    /// The chain's verification.
    pub report: AccessVerifyReport,
    /// The size of the checkpoint checked, when there is one.
    pub checkpoint_size: Option<u64>,
    /// What disagrees with the checkpoint, when something does.
    pub checkpoint_problem: Option<String>,
}

/// Verifies the access log of a data directory whose server is stopped: every entry, and its
/// last checkpoint against `key` (the access log's verifier key) when there is one.
pub fn verify(data: &Path, key: Option<&VerifierKey>) -> Result<AccessLogCheck, AppError> {
    if !store_dir(data).join("db").exists() {
        return Err(AppError::NotFound(format!(
            "no access log in {}; it is made on the first `careledger serve`",
            data.display()
        )));
    }
    // On a full disk too, in a reserve's space, as the ledger opens for verification.
    let (store, _) = open_store_in_reserve(data, store::CACHE_BYTES, &reserve(data, 0))?;
    let report = store.verify()?;
    let mut check = AccessLogCheck {
        report,
        checkpoint_size: None,
        checkpoint_problem: None,
    };
    let Some(key) = key else {
        return Ok(check);
    };
    let note = match std::fs::read_to_string(checkpoint_path(data)) {
        Ok(note) => note,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(check),
        Err(e) => {
            check.checkpoint_problem = Some(e.to_string());
            return Ok(check);
        }
    };
    match Checkpoint::open(&note, key) {
        Err(e) => check.checkpoint_problem = Some(format!("the access log checkpoint: {e}")),
        Ok((checkpoint, _)) => {
            check.checkpoint_size = Some(checkpoint.size());
            let verified = check.report.verified;
            if let Err(problem) = check_extends(&store, &checkpoint, verified) {
                check.checkpoint_problem = Some(problem);
            }
        }
    }
    Ok(check)
}

/// Opens the access log of `data` for a server, or `None` when [`NO_ACCESS_LOG_ENV`] is `1`
/// (measurements side by side only; the server says so in its log).
pub fn open_unless_measuring(
    data: &Path,
    config: AccessLogConfig,
) -> Result<Option<AccessLog>, AppError> {
    if std::env::var_os(NO_ACCESS_LOG_ENV).is_some_and(|v| v == "1") {
        tracing::warn!(
            "{NO_ACCESS_LOG_ENV}=1: keeping no access log; patient data is served unlogged (for \
             measurements only)"
        );
        return Ok(None);
    }
    AccessLog::open(data, config).map(Some)
}

/// Opens the stored access log of a stopped server for reading (`careledger access-log list`).
pub fn open_store(data: &Path) -> Result<AccessStore, AppError> {
    if !store_dir(data).join("db").exists() {
        return Err(AppError::NotFound(format!(
            "no access log in {}; it is made on the first `careledger serve`",
            data.display()
        )));
    }
    open_store_in_reserve(data, store::CACHE_BYTES, &reserve(data, 0)).map(|(store, _)| store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use careledger_core::record::Timestamp;

    fn entry(n: u16) -> AccessEntry {
        AccessEntry {
            recorded_at: Timestamp::from_micros(i64::from(n)),
            who: Who::Unauthenticated,
            patient: None,
            method: "GET".into(),
            route: "/events".into(),
            resource: "/events".into(),
            status: n,
            client: "unknown".into(),
            via: None,
            user_agent: None,
            reason: AccessReason::NotEstablished,
        }
    }

    #[test]
    fn a_full_queue_refuses_until_the_writer_has_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = AccessLog::open(
            dir.path(),
            AccessLogConfig {
                queue_capacity: 1,
                reserve_bytes: 4096,
                signing: None,
                ..AccessLogConfig::default()
            },
        )
        .unwrap();
        let permit = log.reserve().unwrap();
        assert!(matches!(
            log.reserve(),
            Err(AppError::AccessLogUnavailable(_))
        ));
        assert_eq!(permit.record(entry(401)), 1);
        assert!(log.wait_recorded(Duration::from_secs(5)));
        // A permit dropped unrecorded gives its place back.
        drop(log.reserve().unwrap());
        log.reserve().unwrap().record(entry(200));
        assert!(log.wait_recorded(Duration::from_secs(5)));
        let (entries, next) = log.list(&AccessFilter::default(), 0, 10).unwrap();
        let statuses: Vec<u16> = entries.iter().map(|e| e.entry.status).collect();
        assert_eq!((statuses, next), (vec![401, 200], None));
        assert_eq!(
            std::fs::metadata(reserve(dir.path(), 0).path())
                .unwrap()
                .len(),
            4096
        );
    }

    #[test]
    fn a_kept_entry_is_recorded_once_with_the_answer_or_as_kept_when_the_request_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let config = AccessLogConfig {
            reserve_bytes: 0,
            ..AccessLogConfig::default()
        };
        let log = AccessLog::open(dir.path(), config).unwrap();
        let mut answered = log.reserve().unwrap();
        answered.keep(entry(CLIENT_CLOSED));
        answered.kept_mut().unwrap().route = "/patients/{patient}/plan".into();
        let mut dropped = log.reserve().unwrap();
        dropped.keep(entry(CLIENT_CLOSED));
        assert_eq!(answered.answered(200, Timestamp::from_micros(7)), Some(1));
        drop(dropped);
        // A permit that kept nothing records nothing and gives its place back.
        assert_eq!(
            log.reserve()
                .unwrap()
                .answered(200, Timestamp::from_micros(8)),
            None
        );
        assert!(log.wait_recorded(Duration::from_secs(5)));
        let (entries, _) = log.list(&AccessFilter::default(), 0, 10).unwrap();
        let got: Vec<(u64, u16, &str, i64)> = entries
            .iter()
            .map(|e| {
                (
                    e.position,
                    e.entry.status,
                    e.entry.route.as_ref(),
                    e.entry.recorded_at.micros(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 200, "/patients/{patient}/plan", 7),
                (2, CLIENT_CLOSED, "/events", i64::from(CLIENT_CLOSED))
            ]
        );
        assert_eq!(log.shared.outstanding.load(Ordering::Acquire), 0);
    }

    #[test]
    fn checkpoints_sign_the_size_and_head_hash_and_the_log_reopens_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let signing = || {
            let key = LogKey::from_seed("hospital.example/careledger", &[7; 32]).unwrap();
            let key = key
                .for_origin(&origin_for("hospital.example/careledger"))
                .unwrap();
            let config = CheckpointConfig {
                every_events: 2,
                every: Duration::from_secs(3600),
            };
            Some((key, config))
        };
        let config = || AccessLogConfig {
            reserve_bytes: 0,
            signing: signing(),
            ..AccessLogConfig::default()
        };
        let log = AccessLog::open(dir.path(), config()).unwrap();
        let key = log.verifier_key().unwrap().clone();
        assert_eq!(key.name(), "hospital.example/careledger/access-log");
        for n in 0..3 {
            log.reserve().unwrap().record(entry(200 + n));
        }
        log.finish();
        let note = log.latest_checkpoint().unwrap();
        let (checkpoint, _) = Checkpoint::open(&note, &key).unwrap();
        assert_eq!(checkpoint.size(), 3);
        drop(log);
        let check = verify(dir.path(), Some(&key)).unwrap();
        assert_eq!(check.report.verified, 3);
        assert_eq!(check.report.head_hash.0, checkpoint.root().0);
        assert_eq!(
            (check.checkpoint_size, check.checkpoint_problem),
            (Some(3), None)
        );
        // Reopened, it goes on from position 4 and keeps signing.
        let log = AccessLog::open(dir.path(), config()).unwrap();
        assert_eq!(log.reserve().unwrap().record(entry(204)), 4);
        log.finish();
        let (checkpoint, _) = Checkpoint::open(&log.latest_checkpoint().unwrap(), &key).unwrap();
        assert_eq!(checkpoint.size(), 4);
    }
}
