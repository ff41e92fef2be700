//! The narrow storage interface the ledger writes through, and its sled implementation.
//!
//! **Invariant:** no sled type appears outside this module. The ledger sees ordered bytes:
//! frames by position, a per-patient index of positions, and idempotency entries.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::Result;
use crate::ids::PatientId;
use crate::record::Hash;

pub use crate::error::StorageError;

/// One atomic write: event frames, their stream index entries, and idempotency entries. The
/// ledger writes the appends of one group commit as one batch.
#[derive(Debug, Default)]
pub struct WriteBatch {
    /// `(position, frame bytes)`, ascending and gapless after the current head.
    pub frames: Vec<(u64, Vec<u8>)>,
    /// `(patient, revision, position)` for each frame.
    pub index: Vec<(PatientId, u64, u64)>,
    /// `(key, value)` to remember each idempotent request.
    pub idempotency: Vec<(Vec<u8>, Vec<u8>)>,
    /// `(level, index, hash)` of each complete subtree of the Merkle tree that these frames
    /// complete (see [`crate::merkle`]).
    pub tree: Vec<crate::merkle::TreeNode>,
    /// `(BLAKE3 hash, stored bytes)` of each signed request whose events these frames are
    /// (see [`crate::signed_request`]).
    pub signed_requests: Vec<(Hash, Vec<u8>)>,
}

impl WriteBatch {
    /// Adds `later`, whose frames follow this batch's, to this batch.
    pub fn extend(&mut self, later: WriteBatch) {
        self.frames.extend(later.frames);
        self.index.extend(later.index);
        self.idempotency.extend(later.idempotency);
        self.tree.extend(later.tree);
        self.signed_requests.extend(later.signed_requests);
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
            && self.idempotency.is_empty()
            && self.tree.is_empty()
            && self.signed_requests.is_empty()
    }
}

/// A stored value as storage holds it (one frame, or a group read with [`frames_in`]), shared
/// rather than copied: cloning it counts a reference.
#[derive(Clone)]
pub struct StoredValue(Arc<dyn AsRef<[u8]> + Send + Sync>);

impl StoredValue {
    /// Shares `bytes` (a `Vec<u8>`, a storage engine's own buffer) without copying them.
    pub fn new(bytes: impl AsRef<[u8]> + Send + Sync + 'static) -> Self {
        StoredValue(Arc::new(bytes))
    }
}

impl std::ops::Deref for StoredValue {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        (*self.0).as_ref()
    }
}

impl std::fmt::Debug for StoredValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StoredValue").field(&&**self).finish()
    }
}

impl From<Vec<u8>> for StoredValue {
    fn from(bytes: Vec<u8>) -> Self {
        StoredValue::new(bytes)
    }
}

/// Called with each per-patient index entry: patient id, first revision, positions. Returns
/// whether to go on: `false` stops the scan.
pub type IndexVisitor<'a> = dyn FnMut(&[u8], u64, &[u8]) -> bool + 'a;

/// Called with each requested position and its frame, if stored.
pub type FrameVisitor<'a> = dyn FnMut(u64, Option<&[u8]>) -> Result<()> + 'a;

/// Ordered, atomic, durable-on-request byte storage for the ledger.
pub trait Storage: Send + Sync {
    /// The frame with the highest position, if any.
    fn last_frame(&self) -> Result<Option<(u64, Vec<u8>)>>;
    /// The frame at `position`.
    fn frame(&self, position: u64) -> Result<Option<Vec<u8>>>;
    /// The frames at `positions` (ascending), visited in order; `None` where nothing is stored.
    fn frames_at(&self, positions: &[u64], visit: &mut FrameVisitor<'_>) -> Result<()> {
        for &position in positions {
            visit(position, self.frame(position)?.as_deref())?;
        }
        Ok(())
    }
    /// Visits every frame from `from` on, ascending, until `visit` returns false.
    fn scan(&self, from: u64, visit: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<()>;
    /// Visits every stored value from the one holding `from` on, ascending, until `visit`
    /// returns false: the key's position and the value as stored (one frame, or a group read
    /// with [`frames_in`]), shared rather than copied, for handing to other threads. The
    /// default makes each frame of [`Storage::scan`] a value of its own.
    fn scan_values(
        &self,
        from: u64,
        visit: &mut dyn FnMut(u64, StoredValue) -> bool,
    ) -> Result<()> {
        self.scan(from, &mut |position, frame| {
            visit(position, StoredValue::from(frame.to_vec()))
        })
    }
    /// Positions of the patient's events from revision `from_revision` on, up to `limit`.
    fn stream_positions(
        &self,
        patient: &PatientId,
        from_revision: u64,
        limit: usize,
    ) -> Result<Vec<u64>>;
    /// The stored value of an idempotency key.
    fn idempotency(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// The stored bytes of the signed request with this BLAKE3 hash, if any.
    fn signed_request(&self, hash: &Hash) -> Result<Option<Vec<u8>>>;
    /// Visits every per-patient index entry in key order: the patient's id, the first revision
    /// of the run and its positions (8 bytes big-endian each). `Ok(false)` when this storage
    /// keeps no index it can list; verification then does not check the index.
    fn scan_index(&self, visit: &mut IndexVisitor<'_>) -> Result<bool> {
        let _ = visit;
        Ok(false)
    }

    /// Visits every stored idempotency entry (key without its prefix, value). A storage that
    /// cannot list them visits none.
    fn scan_idempotency(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        let _ = visit;
        Ok(())
    }

    /// The stored hash of the Merkle tree's complete subtree at `level` and `index`, if stored.
    /// A storage that keeps no tree answers `None`, and the ledger hashes it from the frames.
    fn tree_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>> {
        let _ = (level, index);
        Ok(None)
    }
    /// The index of the last stored subtree at `level`, if any.
    fn last_tree_node(&self, level: u8) -> Result<Option<u64>> {
        let _ = level;
        Ok(None)
    }
    /// Applies the batch atomically: all of it is visible to reads, or none. Not yet durable.
    fn commit(&self, batch: WriteBatch) -> Result<()>;

    /// Stores a batch that a synced write-ahead journal already holds: entry by entry, not as
    /// one atomic write, since a crash part-way is repaired by storing the journal's batches
    /// again on open (writing the same entries twice changes nothing). Not yet durable.
    /// Storages without a cheaper way commit it.
    fn store_journaled(&self, batch: WriteBatch) -> Result<()> {
        self.commit(batch)
    }
    /// Makes everything committed so far durable.
    fn sync(&self) -> Result<()>;
    /// Bytes the store occupies on disk.
    fn size_on_disk(&self) -> Result<u64>;
    /// Drops what is in memory and opens the store again from disk, after a failure. Whatever
    /// was committed but not made durable may be lost; whole batches only.
    fn reopen(&self) -> Result<()>;
}

const FRAME: u8 = b'e';
const STREAM: u8 = b's';
const IDEMPOTENCY: u8 = b'i';
const SIGNED_REQUEST: u8 = b'r';

fn signed_request_key(hash: &Hash) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = SIGNED_REQUEST;
    key[1..].copy_from_slice(&hash.0);
    key
}
const TREE: u8 = b'm';

/// The key of a Merkle tree node: `'m'` ‖ level ‖ index (u64 BE).
fn tree_key(level: u8, index: u64) -> [u8; 10] {
    let mut key = [TREE; 10];
    key[1] = level;
    key[2..].copy_from_slice(&index.to_be_bytes());
    key
}

fn frame_key(position: u64) -> [u8; 9] {
    let mut key = [FRAME; 9];
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

/// The key of a stream index entry: a run of the patient's revisions starting at `revision`.
fn stream_key(patient: &PatientId, revision: u64) -> Vec<u8> {
    let id = patient.as_str().as_bytes();
    let mut key = Vec::with_capacity(2 + id.len() + 8);
    key.push(STREAM);
    // Ids are at most 64 bytes, so one length byte keeps one patient's keys from
    // prefixing another's.
    key.push(id.len() as u8);
    key.extend_from_slice(id);
    key.extend_from_slice(&revision.to_be_bytes());
    key
}

/// The revision at the end of a stream index key.
fn revision_of(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key
        .len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .ok_or_else(|| StorageError::corrupt(format!("malformed stream index key {key:?}")))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Groups index entries into runs of one patient's consecutive revisions, next to each other in
/// the batch: one sled entry per run, keyed by its first revision, holding the positions (8
/// bytes each, big-endian). A batch of 100 commands writes one index entry instead of 100; a
/// run of one is the entry of a single event.
fn index_runs(index: &[(PatientId, u64, u64)]) -> Vec<(&PatientId, u64, Vec<u8>)> {
    let mut runs: Vec<(&PatientId, u64, Vec<u8>)> = Vec::new();
    for (patient, revision, position) in index {
        match runs.last_mut() {
            Some((p, first, positions))
                if *p == patient && *first + (positions.len() / 8) as u64 == *revision =>
            {
                positions.extend_from_slice(&position.to_be_bytes());
            }
            _ => runs.push((patient, *revision, position.to_be_bytes().to_vec())),
        }
    }
    runs
}

/// Every sled entry of `batch`, key and value: its tree nodes, its frames (in groups), its
/// index runs, its idempotency entries and its signed requests.
fn entries(batch: WriteBatch, mut put: impl FnMut(sled::IVec, sled::IVec)) {
    for (level, index, hash) in &batch.tree {
        put(tree_key(*level, *index)[..].into(), hash[..].into());
    }
    for frames in batch.frames.chunks(GROUP_FRAMES) {
        match frames {
            [(position, frame)] => put(frame_key(*position)[..].into(), frame.as_slice().into()),
            frames => put(
                frame_key(frames[0].0)[..].into(),
                group_value(frames).into(),
            ),
        }
    }
    for (patient, first, positions) in index_runs(&batch.index) {
        put(stream_key(patient, first).into(), positions.into());
    }
    for (key, value) in batch.idempotency {
        let mut full = Vec::with_capacity(1 + key.len());
        full.push(IDEMPOTENCY);
        full.extend_from_slice(&key);
        put(full.into(), value.into());
    }
    for (hash, bytes) in batch.signed_requests {
        put(signed_request_key(&hash)[..].into(), bytes.into());
    }
}

fn position_of(key: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = key
        .get(1..9)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| StorageError::corrupt(format!("malformed frame key {key:?}")))?;
    Ok(u64::from_be_bytes(bytes))
}

/// The first byte of a sled value that holds the frames of several consecutive positions
/// written together (an append of several events, or the appends of one group commit). A lone
/// frame starts with its version byte ([`crate::chain::FRAME_VERSION`]), which is never this.
pub const GROUP_MARKER: u8 = 0xFF;

/// Most frames in one group value. sled rewrites a leaf whole when it consolidates it, and writes
/// an item over a quarter of its 512 KiB segment as a separate blob file: groups of up to 16
/// frames (~6 KiB) keep the leaves at the end of the ledger, where appends land, small (larger
/// groups made later single appends slower: `docs/performance.md`).
const GROUP_FRAMES: usize = 16;

/// The stored value of several consecutive frames committed together (at most [`GROUP_FRAMES`]):
/// `GROUP_MARKER ‖ (u32 BE length ‖ frame)…`, kept under the first one's key. A lone frame is
/// stored as it is.
fn group_value(frames: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let size = 1 + frames.iter().map(|(_, f)| 4 + f.len()).sum::<usize>();
    let mut value = Vec::with_capacity(size);
    value.push(GROUP_MARKER);
    for (_, frame) in frames {
        value.extend_from_slice(&(frame.len() as u32).to_be_bytes());
        value.extend_from_slice(frame);
    }
    value
}

/// The frames a stored value holds, with their positions, the first being `first` (the key's).
/// A group whose lengths no longer fit its bytes yields, at the position where they stop
/// fitting, the rest of the value as that position's "frame", so that checking it reports the
/// damage at exactly that position.
pub fn frames_in(first: u64, value: &[u8]) -> impl Iterator<Item = (u64, &[u8])> {
    let grouped = value.first() == Some(&GROUP_MARKER);
    let mut rest = if grouped { &value[1..] } else { value };
    let mut position = first;
    let mut single = !grouped;
    std::iter::from_fn(move || {
        if single {
            single = false;
            let frame = rest;
            rest = &[];
            return Some((position, frame));
        }
        if rest.is_empty() {
            return None;
        }
        let at = position;
        position += 1;
        let frame = rest
            .get(..4)
            .map(|l| u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize)
            .and_then(|len| rest.get(4..4 + len));
        match frame {
            Some(frame) => {
                rest = &rest[4 + frame.len()..];
                Some((at, frame))
            }
            None => {
                let damaged = rest;
                rest = &[];
                Some((at, damaged))
            }
        }
    })
}

/// The frame at `position` in a stored value whose first position is `first`.
fn frame_at(first: u64, value: &[u8], position: u64) -> Option<&[u8]> {
    frames_in(first, value)
        .find(|(p, _)| *p == position)
        .map(|(_, frame)| frame)
}

/// How often, and how long apart, opening retries while another handle still holds the lock.
const LOCK_ATTEMPTS: u32 = 50;
const LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(20);

/// sled reports its file lock held by another process as an IO error of kind `Other`, known
/// only by its message. This is the one place that reads it.
fn is_lock_error(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io) if io.kind() == std::io::ErrorKind::Other
        && io.to_string().contains("could not acquire lock"))
}

/// What opening a sled database in `dir` failed with, as a [`StorageError`]:
/// [`StorageError::InUse`] when another process holds the directory (usually a running
/// server), [`StorageError::Corrupt`] when sled cannot read its files.
///
/// For the stores of a data directory that open sled themselves (the projections, the API's
/// actors): they recognise "in use" by the variant, and nothing outside this module reads
/// sled's messages.
pub fn open_error(
    dir: &Path,
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> StorageError {
    let error = error.into();
    let e = match error.downcast::<sled::Error>() {
        Ok(e) => *e,
        Err(other) => return StorageError::Other { source: other },
    };
    if is_lock_error(&e) {
        return StorageError::InUse {
            dir: dir.to_owned(),
        };
    }
    if matches!(e, sled::Error::Corruption { .. }) {
        return StorageError::corrupt(format!(
            "the files in {} are damaged: sled cannot read them ({e}); restore them from a backup (docs/reliability.md)",
            dir.display()
        ));
    }
    from_sled(e)
}

/// A failure of an open sled database as a [`StorageError`], for the stores that use sled
/// themselves (see [`open_error`]).
pub fn engine_error(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> StorageError {
    match error.into().downcast::<sled::Error>() {
        Ok(e) => from_sled(*e),
        Err(other) => StorageError::Other { source: other },
    }
}

/// A failure of sled while the database is open.
fn sled_err(e: sled::Error) -> crate::error::Error {
    from_sled(e).into()
}

fn from_sled(e: sled::Error) -> StorageError {
    match e {
        // sled's own wording of an IO error, kept so that messages read as they did.
        sled::Error::Io(source) => StorageError::io("IO error", source),
        sled::Error::Corruption { .. } => StorageError::corrupt(e.to_string()),
        e => StorageError::other(e),
    }
}

/// sled's page cache. Verification and stream reads of pages outside it re-read and re-parse
/// them from the log, so a cache much smaller than a large ledger slows verification down
/// (`docs/performance.md`). sled counts what it caches, so this bounds memory rather than
/// reserving it.
pub const CACHE_BYTES: u64 = 1024 * 1024 * 1024;

/// Size of the file written to check that the data directory takes writes again.
const PROBE_BYTES: usize = 64 * 1024;

/// The ledger's storage in an embedded sled database.
///
/// "Durable" means: sled's `flush` (which ends in `sync_file_range`, not enough through a
/// volatile disk cache), then `fdatasync` of sled's data file and of any new blob files.
///
/// sled latches the first IO error (a full disk, a file system remounted read-only) and fails
/// every later write; [`Storage::reopen`] drops the database and opens it again from disk, which
/// is how writing resumes once the cause is removed.
pub struct SledStorage {
    dir: PathBuf,
    open: RwLock<Option<Arc<OpenDb>>>,
    /// Why the store is closed, when reopening it failed.
    closed_because: Mutex<String>,
    synced_blobs: Mutex<HashSet<std::ffi::OsString>>,
    /// sled's page cache, kept for a reopen.
    cache_bytes: u64,
}

/// Removes the snapshots sled left unfinished in `dir` (`snap.*.generating`); true when it
/// removed one. sled writes a snapshot under that name and renames it once complete, so a file
/// left with it (an open that ran out of disk space, a crash while opening) never holds the
/// database's state; sled 0.34 nonetheless reads it on the next open and reports the whole
/// database corrupt. Called only after an open failed for a reason other than another process
/// holding the directory, so that no running process is writing the file.
pub fn clear_unfinished_snapshots(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut cleared = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.")
            && name.ends_with(".generating")
            && std::fs::remove_file(entry.path()).is_ok()
        {
            cleared = true;
        }
    }
    cleared
}

/// Opens the sled database `config` names (in `dir`), for every store of a data directory.
///
/// sled releases its file lock only when its last background task lets go of the database, a
/// moment after the handle is dropped: a reopen right after a close (a restart, a reopen after a
/// storage failure, a copy opened again) waits for that, within a bound, before the directory is
/// called in use. A snapshot sled left unfinished is removed once and the open tried again
/// ([`clear_unfinished_snapshots`]). Other failures are returned as sled gave them, for the
/// caller to judge (usually with [`open_error`]).
pub fn open_sled(config: &sled::Config, dir: &Path) -> std::result::Result<sled::Db, sled::Error> {
    let mut attempts = 0;
    let mut cleared = false;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(e) if is_lock_error(&e) && attempts < LOCK_ATTEMPTS => {
                attempts += 1;
                std::thread::sleep(LOCK_RETRY);
            }
            Err(e) if !is_lock_error(&e) && !cleared && clear_unfinished_snapshots(dir) => {
                cleared = true;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Waits, within the bound a reopen waits ([`open_sled`]), until no sled handle holds the
/// database in `dir` (sled keeps an exclusive lock on its `db` file while any of its threads
/// still hold the database): before its files are removed once its handle is dropped, so that
/// none of sled's background work writes into the directory afterwards.
/// [`StorageError::InUse`] when it is still held.
pub fn wait_until_released(dir: &Path) -> std::result::Result<(), StorageError> {
    let path = dir.join("db");
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StorageError::io(format!("opening {}", path.display()), e)),
    };
    for _ in 0..=LOCK_ATTEMPTS {
        match file.try_lock() {
            // Released again when `file` is closed.
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => std::thread::sleep(LOCK_RETRY),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StorageError::io(format!("locking {}", path.display()), e))
            }
        }
    }
    Err(StorageError::InUse {
        dir: dir.to_owned(),
    })
}

/// An open sled database and its data file, kept open for `fdatasync`.
struct OpenDb {
    db: sled::Db,
    data_file: File,
}

impl OpenDb {
    fn open(dir: &Path, cache_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StorageError::io(format!("creating {}", dir.display()), e))?;
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None);
        let db = open_sled(&config, dir).map_err(|e| open_error(dir, e))?;
        let path = dir.join("db");
        let data_file = File::open(&path)
            .map_err(|e| StorageError::io(format!("opening {}", path.display()), e))?;
        Ok(Self { db, data_file })
    }
}

impl SledStorage {
    /// Opens or creates the store in `dir`, with sled's default page cache for the ledger
    /// ([`CACHE_BYTES`]).
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_cache(dir, CACHE_BYTES)
    }

    /// Opens or creates the store in `dir` with a page cache of `cache_bytes` (a share of the
    /// server's memory budget).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self> {
        let open = OpenDb::open(dir, cache_bytes)?;
        Ok(Self {
            cache_bytes,
            dir: dir.to_owned(),
            open: RwLock::new(Some(Arc::new(open))),
            closed_because: Mutex::new(String::new()),
            synced_blobs: Mutex::new(HashSet::new()),
        })
    }

    /// The open database; an error while it is closed between a failure and a reopen.
    fn db(&self) -> Result<Arc<OpenDb>> {
        let guard = self.open.read();
        guard.clone().ok_or_else(|| {
            let because = self.closed_because.lock();
            StorageError::other(format!(
                "the store is closed after a storage failure ({because}); it reopens on the next write"
            ))
            .into()
        })
    }

    /// The stored value whose frames include `position`, with its first position: the last
    /// frame key at or before `position`.
    fn value_holding(&self, position: u64) -> Result<Option<(u64, sled::IVec)>> {
        let found = self
            .db()?
            .db
            .range(frame_key(0)..=frame_key(position))
            .next_back();
        match found {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(sled_err)?;
                Ok(Some((position_of(&k)?, v)))
            }
        }
    }

    /// Writes, syncs and removes a small file in the store's directory: tells whether the file
    /// system takes writes again without giving up the open database, which still serves reads.
    fn probe_writable(&self) -> Result<()> {
        let path = self.dir.join("write-probe");
        let result = (|| {
            let mut file = File::create(&path)?;
            std::io::Write::write_all(&mut file, &[0u8; PROBE_BYTES])?;
            file.sync_data()?;
            std::fs::remove_file(&path)
        })();
        result.map_err(|e| StorageError::io("the data directory takes no writes", e).into())
    }

    fn sync_new_blobs(&self) -> Result<()> {
        let blobs = self.dir.join("blobs");
        let Ok(entries) = std::fs::read_dir(&blobs) else {
            return Ok(());
        };
        let failed = |e| {
            StorageError::io(
                format!("syncing sled's blob files in {}", blobs.display()),
                e,
            )
        };
        let mut synced = self.synced_blobs.lock();
        // A blob counts as synced only once it and its directory entry are: after a failed
        // sync the next one syncs it again.
        let mut new = Vec::new();
        for entry in entries {
            let entry = entry.map_err(failed)?;
            if !synced.contains(&entry.file_name()) {
                File::open(entry.path())
                    .and_then(|f| f.sync_data())
                    .map_err(failed)?;
                new.push(entry.file_name());
            }
        }
        if !new.is_empty() {
            File::open(&blobs)
                .and_then(|d| d.sync_all())
                .map_err(failed)?;
            synced.extend(new);
        }
        Ok(())
    }
}

impl Storage for SledStorage {
    fn last_frame(&self) -> Result<Option<(u64, Vec<u8>)>> {
        match self.db()?.db.scan_prefix([FRAME]).next_back() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item.map_err(sled_err)?;
                Ok(frames_in(position_of(&k)?, &v)
                    .last()
                    .map(|(position, frame)| (position, frame.to_vec())))
            }
        }
    }

    fn frame(&self, position: u64) -> Result<Option<Vec<u8>>> {
        let Some((first, value)) = self.value_holding(position)? else {
            return Ok(None);
        };
        Ok(frame_at(first, &value, position).map(<[u8]>::to_vec))
    }

    fn frames_at(&self, positions: &[u64], visit: &mut FrameVisitor<'_>) -> Result<()> {
        // A patient's consecutive positions usually share a stored value: look each value up once.
        let mut held: Option<(u64, sled::IVec)> = None;
        let find = |held: &Option<(u64, sled::IVec)>, position| {
            held.as_ref()
                .and_then(|(first, value)| frame_at(*first, value, position))
                .is_some()
        };
        for &position in positions {
            if !find(&held, position) {
                held = self.value_holding(position)?;
            }
            let frame = held
                .as_ref()
                .and_then(|(first, value)| frame_at(*first, value, position));
            visit(position, frame)?;
        }
        Ok(())
    }

    fn scan(&self, from: u64, visit: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<()> {
        self.scan_values(from, &mut |first, value| {
            frames_in(first, &value)
                .filter(|(position, _)| *position >= from)
                .all(|(position, frame)| visit(position, frame))
        })
    }

    fn scan_values(
        &self,
        from: u64,
        visit: &mut dyn FnMut(u64, StoredValue) -> bool,
    ) -> Result<()> {
        let open = self.db()?;
        // The group holding `from` may start before it.
        let start = match self.value_holding(from)? {
            Some((first, _)) => first,
            None => from,
        };
        for item in open.db.range(frame_key(start)..=frame_key(u64::MAX)) {
            let (k, v) = item.map_err(sled_err)?;
            if !visit(position_of(&k)?, StoredValue::new(v)) {
                break;
            }
        }
        Ok(())
    }

    fn stream_positions(
        &self,
        patient: &PatientId,
        from_revision: u64,
        limit: usize,
    ) -> Result<Vec<u64>> {
        let open = self.db()?;
        let end = stream_key(patient, u64::MAX);
        // The run holding `from_revision` may start before it.
        let start = match open
            .db
            .range(stream_key(patient, 0)..=stream_key(patient, from_revision))
            .next_back()
        {
            Some(item) => item.map_err(sled_err)?.0.to_vec(),
            None => stream_key(patient, from_revision),
        };
        let mut out = Vec::new();
        for item in open.db.range(start..=end) {
            if out.len() >= limit {
                break;
            }
            let (key, run) = item.map_err(sled_err)?;
            let first = revision_of(&key)?;
            if run.is_empty() || run.len() % 8 != 0 {
                return Err(StorageError::corrupt(format!(
                    "malformed stream index entry for {patient} at revision {first}"
                ))
                .into());
            }
            for (offset, bytes) in run.chunks_exact(8).enumerate() {
                if first + offset as u64 >= from_revision && out.len() < limit {
                    let mut position = [0u8; 8];
                    position.copy_from_slice(bytes);
                    out.push(u64::from_be_bytes(position));
                }
            }
        }
        Ok(out)
    }

    fn idempotency(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut full = Vec::with_capacity(1 + key.len());
        full.push(IDEMPOTENCY);
        full.extend_from_slice(key);
        Ok(self
            .db()?
            .db
            .get(full)
            .map_err(sled_err)?
            .map(|v| v.to_vec()))
    }

    fn signed_request(&self, hash: &Hash) -> Result<Option<Vec<u8>>> {
        Ok(self
            .db()?
            .db
            .get(signed_request_key(hash))
            .map_err(sled_err)?
            .map(|v| v.to_vec()))
    }

    fn scan_index(&self, visit: &mut IndexVisitor<'_>) -> Result<bool> {
        for item in self.db()?.db.scan_prefix([STREAM]) {
            let (key, run) = item.map_err(sled_err)?;
            let id = key
                .get(1)
                .and_then(|len| key.get(2..2 + *len as usize))
                .filter(|id| 2 + id.len() + 8 == key.len())
                .ok_or_else(|| {
                    StorageError::corrupt(format!("malformed stream index key {key:?}"))
                })?;
            if !visit(id, revision_of(&key)?, &run) {
                break;
            }
        }
        Ok(true)
    }

    fn scan_idempotency(&self, visit: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
        for item in self.db()?.db.scan_prefix([IDEMPOTENCY]) {
            let (key, value) = item.map_err(sled_err)?;
            visit(&key[1..], &value);
        }
        Ok(())
    }

    fn tree_node(&self, level: u8, index: u64) -> Result<Option<[u8; 32]>> {
        let Some(value) = self
            .db()?
            .db
            .get(tree_key(level, index))
            .map_err(sled_err)?
        else {
            return Ok(None);
        };
        let hash: [u8; 32] = value.as_ref().try_into().map_err(|_| {
            StorageError::corrupt(format!(
                "the Merkle tree node at level {level}, index {index} is {} bytes long, not 32",
                value.len()
            ))
        })?;
        Ok(Some(hash))
    }

    fn last_tree_node(&self, level: u8) -> Result<Option<u64>> {
        let found = self
            .db()?
            .db
            .range(tree_key(level, 0)..=tree_key(level, u64::MAX))
            .next_back();
        match found {
            None => Ok(None),
            Some(item) => {
                let (key, _) = item.map_err(sled_err)?;
                let bytes: [u8; 8] = key
                    .get(2..10)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| StorageError::corrupt(format!("malformed tree key {key:?}")))?;
                Ok(Some(u64::from_be_bytes(bytes)))
            }
        }
    }

    fn commit(&self, batch: WriteBatch) -> Result<()> {
        let mut b = sled::Batch::default();
        entries(batch, |key, value| b.insert(key, value));
        self.db()?.db.apply_batch(b).map_err(sled_err)
    }

    fn store_journaled(&self, batch: WriteBatch) -> Result<()> {
        // sled's `apply_batch` rolls its IO buffer before and after the batch so that the
        // batch is recovered whole: two buffer writes and `sync_file_range`s per group commit.
        // The journal makes the batch whole instead, so plain inserts do.
        let open = self.db()?;
        let mut failed = None;
        entries(batch, |key, value| {
            if failed.is_none() {
                if let Err(e) = open.db.insert(key, value) {
                    failed = Some(e);
                }
            }
        });
        failed.map_or(Ok(()), |e| Err(sled_err(e)))
    }

    fn sync(&self) -> Result<()> {
        let open = self.db()?;
        open.db.flush().map_err(sled_err)?;
        open.data_file.sync_data().map_err(|e| {
            StorageError::io(format!("syncing {}", self.dir.join("db").display()), e)
        })?;
        self.sync_new_blobs()
    }

    fn reopen(&self) -> Result<()> {
        // While the file system takes no writes (read-only, full), keep the failed database:
        // reads still work through it, and a reopen would fail anyway.
        self.probe_writable()?;
        let mut guard = self.open.write();
        // Drop the failed database first: sled holds an exclusive lock on its files.
        *guard = None;
        match OpenDb::open(&self.dir, self.cache_bytes) {
            Ok(open) => {
                *guard = Some(Arc::new(open));
                Ok(())
            }
            Err(e) => {
                *self.closed_because.lock() = e.to_string();
                Err(e)
            }
        }
    }

    fn size_on_disk(&self) -> Result<u64> {
        self.db()?.db.size_on_disk().map_err(sled_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patient(id: &str) -> PatientId {
        PatientId::parse(id).unwrap()
    }

    /// Commits `runs` of `(patient, revisions)` as separate batches, positions in order.
    fn store(dir: &Path, batches: &[&[(&str, u64)]]) -> SledStorage {
        let storage = SledStorage::open(dir).unwrap();
        let mut position = 0;
        for batch in batches {
            let mut write = WriteBatch::default();
            for (id, revision) in batch.iter() {
                position += 1;
                write.frames.push((position, vec![position as u8]));
                write.index.push((patient(id), *revision, position));
            }
            storage.commit(write).unwrap();
        }
        storage
    }

    #[test]
    fn stream_positions_read_across_runs_from_any_revision_with_any_limit() {
        let dir = tempfile::tempdir().unwrap();
        // Patient a: revisions 1 (alone), 2..=4 (a run), 5 (alone), 6..=7 (a run);
        // patient b in between, and a batch holding both patients.
        let storage = store(
            dir.path(),
            &[
                &[("a", 1)],
                &[("a", 2), ("a", 3), ("a", 4)],
                &[("b", 1), ("b", 2)],
                &[("a", 5)],
                &[("a", 6), ("a", 7), ("b", 3)],
            ],
        );
        let a = [1, 2, 3, 4, 7, 8, 9];
        let b = [5, 6, 10];
        for (id, positions) in [("a", &a[..]), ("b", &b[..])] {
            for from in 0..=positions.len() as u64 + 1 {
                for limit in 0..=positions.len() + 1 {
                    let expected: Vec<u64> = positions
                        .iter()
                        .copied()
                        .skip(from.saturating_sub(1) as usize)
                        .take(limit)
                        .collect();
                    assert_eq!(
                        storage.stream_positions(&patient(id), from, limit).unwrap(),
                        expected,
                        "patient {id} from {from} limit {limit}"
                    );
                }
            }
        }
        assert!(storage
            .stream_positions(&patient("c"), 1, 10)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn frames_of_one_append_are_read_by_position_from_anywhere_in_their_group() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SledStorage::open(dir.path()).unwrap();
        // Appends of 1, 3, 40 and 2 events: a lone frame, a group, three values of up to 16
        // frames, a group.
        let mut position = 0;
        for size in [1usize, 3, 40, 2] {
            let mut batch = WriteBatch::default();
            for _ in 0..size {
                position += 1;
                batch
                    .frames
                    .push((position, vec![FRAME, position as u8, 7]));
            }
            storage.commit(batch).unwrap();
        }
        let frame = |p: u64| vec![FRAME, p as u8, 7];
        let last = position;
        for p in 1..=last {
            assert_eq!(storage.frame(p).unwrap(), Some(frame(p)), "position {p}");
        }
        assert_eq!(storage.frame(last + 1).unwrap(), None);
        assert_eq!(storage.last_frame().unwrap(), Some((last, frame(last))));
        let values = storage.db().unwrap().db.scan_prefix([FRAME]).count();
        assert_eq!(
            values,
            1 + 1 + 3 + 1,
            "groups of at most {GROUP_FRAMES} frames"
        );
        let scanned = |from: u64, limit: usize| {
            let mut read = Vec::new();
            storage
                .scan(from, &mut |p, bytes| {
                    assert_eq!(bytes, frame(p));
                    read.push(p);
                    read.len() < limit
                })
                .unwrap();
            read
        };
        for from in 1..=last + 1 {
            assert_eq!(
                scanned(from, 100),
                (from..=last).collect::<Vec<_>>(),
                "from {from}"
            );
        }
        assert_eq!(scanned(2, 2), [2, 3]);
    }

    #[test]
    fn a_group_whose_lengths_were_changed_yields_the_rest_at_the_position_where_it_breaks() {
        let frames = [(10, vec![1u8, 2, 3]), (11, vec![4, 5]), (12, vec![6])];
        let mut value = group_value(&frames);
        assert_eq!(
            frames_in(10, &value).collect::<Vec<_>>(),
            [(10, &[1u8, 2, 3][..]), (11, &[4, 5][..]), (12, &[6][..])]
        );
        // The second frame's length now runs past the end of the value.
        value[1 + 4 + 3 + 3] = 200;
        let read: Vec<(u64, Vec<u8>)> = frames_in(10, &value)
            .map(|(p, f)| (p, f.to_vec()))
            .collect();
        assert_eq!(read[0], (10, vec![1, 2, 3]));
        assert_eq!(read[1].0, 11);
        assert_eq!(read.len(), 2, "nothing is read past the damage");
    }

    #[test]
    fn a_directory_another_handle_holds_is_in_use_by_its_variant() {
        let dir = tempfile::tempdir().unwrap();
        let held = sled::open(dir.path()).unwrap();
        let refused = sled::open(dir.path()).unwrap_err();
        let error = open_error(dir.path(), refused);
        assert!(
            matches!(&error, StorageError::InUse { dir: d } if d == dir.path()),
            "{error:?}"
        );
        assert!(error.to_string().contains("in use by another process"));
        match SledStorage::open(dir.path()) {
            Err(crate::error::Error::Storage(StorageError::InUse { .. })) => {}
            other => panic!("expected in use, got {:?}", other.err()),
        }
        drop(held);
        assert!(SledStorage::open(dir.path()).is_ok());
    }

    #[test]
    fn a_database_is_released_once_every_handle_and_sleds_threads_let_go() {
        let dir = tempfile::tempdir().unwrap();
        assert!(wait_until_released(dir.path()).is_ok(), "no database yet");
        let held = sled::open(dir.path()).unwrap();
        assert!(matches!(
            wait_until_released(dir.path()),
            Err(StorageError::InUse { .. })
        ));
        // With sled's background flusher, whose thread lets go a moment after the handle.
        drop(held);
        assert!(wait_until_released(dir.path()).is_ok());
        assert!(sled::open(dir.path()).is_ok());
    }

    #[test]
    fn a_batch_of_one_patient_writes_one_index_entry() {
        let index = [
            (patient("a"), 4, 10),
            (patient("a"), 5, 11),
            (patient("a"), 6, 12),
            (patient("b"), 1, 13),
            (patient("a"), 8, 14),
        ];
        let runs = index_runs(&index);
        let shape: Vec<(&str, u64, usize)> = runs
            .iter()
            .map(|(p, first, positions)| (p.as_str(), *first, positions.len() / 8))
            .collect();
        assert_eq!(shape, [("a", 4, 3), ("b", 1, 1), ("a", 8, 1)]);
    }

    #[test]
    fn a_snapshot_sled_left_unfinished_is_removed_and_the_store_opens_with_its_data() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = SledStorage::open(dir.path()).unwrap();
            let open = storage.db().unwrap();
            open.db.insert(b"k", b"v".as_slice()).unwrap();
            open.db.flush().unwrap();
        }
        // As an open that ran out of disk space leaves it: an empty snapshot under the name
        // sled writes before renaming, past every complete one.
        std::fs::write(dir.path().join("snap.7FFFFFFFFFFFFFFF.generating"), b"").unwrap();
        assert!(
            sled::open(dir.path()).is_err(),
            "sled itself takes it for its snapshot and refuses the database"
        );
        let storage = SledStorage::open(dir.path()).unwrap();
        assert_eq!(
            storage.db().unwrap().db.get(b"k").unwrap().as_deref(),
            Some(b"v".as_slice())
        );
        assert!(!dir.path().join("snap.7FFFFFFFFFFFFFFF.generating").exists());
    }
}
