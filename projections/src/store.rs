//! The read models on disk, in their own sled database, with a bounded cache of decoded views.
//!
//! Each patient's [`PatientView`] is stored (bincode, one LZ4 block, cut into chunks) together
//! with the indexes that queries across patients use, and the checkpoint (the last position
//! applied). A cache holds the views last used, decoded, up to a budget in bytes (an estimate
//! per view), and evicts the least recently used view that is persisted. Applying an event loads
//! its patient's view on a miss and marks it *dirty*; [`Projections::persist`] writes every
//! dirty view, its index entries and the checkpoint they were all taken at in one atomic sled
//! batch, after which they may be evicted.
//!
//! **Invariant:** a dirty view is never evicted: the cache holds every change that is not yet
//! stored, so a view read from disk is never older than the checkpoint in memory says.
//!
//! **Invariant:** the stored checkpoint never runs ahead of the stored views: the checkpoint and
//! the views changed up to it are written in one batch, from a snapshot taken at that checkpoint.
//!
//! A storage failure (a full disk) marks the store broken; the next apply or persist reopens
//! the database once a probe file can be written and synced, and folds again from the stored
//! checkpoint whatever the failed database may have lost.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use careledger_core::ids::{ActorId, PatientId};
use careledger_core::role::{Line, Role};
use careledger_core::storage::{open_error, StorageError};
use careledger_core::{Ledger, RecordedEvent};
use parking_lot::{Mutex, RwLock};

use crate::{NotificationStatus, PatientView, ProjectionConfig, ReadModel};

/// Events read from the ledger per catch-up step.
const CATCH_UP_BATCH: usize = 8192;
/// The rebuild's first batch; each next one is twice as large, up to [`CATCH_UP_BATCH`].
const FIRST_REBUILD_BATCH: usize = 512;
const CHECKPOINT_KEY: &[u8] = b"checkpoint";
/// The layout of this database; state stored in another layout is dropped on open and rebuilt
/// from the ledger by the catch-up.
const FORMAT_KEY: &[u8] = b"format";
/// Layout 4: plans keep their histories (series per measure, medication episodes, lab orders,
/// corrections) so that a correction retracts what was derived from the entry it marks, and
/// the catalogue's intolerances, problems and smoking status. Layout 5: the same shape, with
/// the care team folded by core's rule ([`careledger_core::care_team`]); a plan stored in layout 4
/// could name a member whose addition was corrected after a handover, so it is folded again.
/// Layout 7: the indexes across patients (care-team members, emergency grants, FHIR keys, open
/// notifications) stored beside the views. Layout 8: every audit entry keeps its sentence and
/// its from and to structured (`message`, `from_state`, `to_state`) and every notification a
/// template of its own kind, so that each reads in Dutch and English; rebuilt from the ledger.
/// Layout 9: the English renderings of those texts (an entry's summary, from and to, a
/// notification's summary) are no longer stored but rendered when read. An event's audit entry
/// and its notifications share one message while folding; each stores its own copy. Layout 10:
/// a provenance the view gave before is stored as a reference to its event's position, and a
/// message it gave before as a reference to its number (`shared.rs`); both read back shared.
const FORMAT: &[u8] = b"10";
const PATIENT_PREFIX: u8 = b'p';
/// The care team of a patient: `'t'` ‖ patient → the members (actor and role).
const TEAM_PREFIX: u8 = b't';
/// The patients of a care-team member: `'m'` ‖ actor ‖ patient.
const MEMBER_PREFIX: u8 = b'm';
/// Who broke the glass on which patient: `'g'` ‖ actor ‖ patient.
const GRANT_PREFIX: u8 = b'g';
/// A patient by the key its FHIR resource ids start with: `'k'` ‖ 16 hex digits.
const FHIR_KEY_PREFIX: u8 = b'k';
/// Patients with an open notification to a recipient: `'o'` ‖ line ‖ patient.
const OPEN_PREFIX: u8 = b'o';
/// The index keys a patient holds, to remove those a change makes stale: `'x'` ‖ patient.
const HELD_PREFIX: u8 = b'x';
/// A patient's encoded view is stored in chunks of at most this many bytes. sled 0.34 writes a
/// log item over a quarter of its segment (a node holding several large values) as a separate
/// blob file, and rewrites a leaf's values whenever it consolidates it: views of hundreds of
/// kilobytes as single values made persisting cost whole multi-megabyte nodes per insert. With
/// [`SEGMENT_BYTES`] a leaf of such chunks stays in the log.
const CHUNK_BYTES: usize = 16384;
/// Threads of a rebuild that reads patient by patient: more than the cores, so that while one
/// waits for the ledger's pages from disk others fold. On a 2-core machine a 10M-event rebuild
/// took 102-109 s with four against 126-132 s with two (docs/performance.md).
const REBUILD_WORKERS: usize = 4;

/// From this many changed patients on, `persist` encodes on two threads.
const PARALLEL_ENCODE: usize = 8;
/// The estimate of a decoded view's heap bytes per byte of its bincode encoding (strings,
/// vectors' spare capacity, provenances, maps), measured by `projections/tests/cache_memory.rs`
/// with a counting allocator; an estimate above the truth keeps the cache under its budget.
/// With each provenance and message stored once, a view whose every event notifies the other
/// line takes 5.4 bytes of heap per encoded byte (a GP's notes and readings alone 4.4).
const HEAP_PER_ENCODED_BYTE: u64 = 6;
/// What a cache entry costs beyond its view (the entry, its place in the recency order).
const ENTRY_BYTES: u64 = 256;
/// What one applied event is counted to add to a view until the view is encoded again.
const EVENT_BYTES: u64 = 2048;
/// Size of the file written to check that the directory takes writes again after a failure.
const PROBE_BYTES: usize = 64 * 1024;

/// Errors of the projection store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The projections' own database failed (internal), or another process holds it
    /// ([`StorageError::InUse`]).
    #[error("projection storage: {0}")]
    Storage(StorageError),
    /// Persisted state could not be decoded: rebuild the projections (internal).
    #[error("projection state is unreadable ({0}); run `careledger rebuild`")]
    Decode(String),
    /// Reading the ledger failed.
    #[error("reading the ledger: {0}")]
    Ledger(#[from] careledger_core::Error),
}

fn storage(e: sled::Error) -> ProjectionError {
    ProjectionError::Storage(careledger_core::storage::engine_error(e))
}

/// sled's segment size for this database: 2 MiB, so that a leaf of 16 chunks stays under
/// sled's blob threshold (a quarter of a segment) and is written to its log, not to files.
const SEGMENT_BYTES: usize = 2 << 20;

/// Opens the projections' database with a page cache of `cache_bytes`. sled lets go of its file
/// lock a moment after the previous handle is dropped (a restart, a reopen): wait for that,
/// within a bound. A database written with other sled settings (an earlier version) is removed
/// and created anew: it holds only derived state, which the catch-up rebuilds from the ledger.
fn open_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, ProjectionError> {
    let config = sled::Config::new()
        .path(dir)
        .segment_size(SEGMENT_BYTES)
        .cache_capacity(cache_bytes);
    match careledger_core::storage::open_sled(&config, dir) {
        Ok(db) => Ok(db),
        Err(sled::Error::Unsupported(_)) => {
            remove_files_in(dir).map_err(|e| {
                ProjectionError::Storage(StorageError::io(
                    format!(
                        "{} was written with other settings and could not be removed to be rebuilt",
                        dir.display()
                    ),
                    e,
                ))
            })?;
            careledger_core::storage::open_sled(&config, dir)
                .map_err(|e| ProjectionError::Storage(open_error(dir, e)))
        }
        Err(e) => Err(ProjectionError::Storage(open_error(dir, e))),
    }
}

/// A new, empty database in `dir`, in place of whatever was there (its handle dropped first):
/// removing the files is quick, where emptying a large database key by key takes as long as
/// writing it (14 s for the views of 10M events).
fn fresh_db(dir: &Path, cache_bytes: u64) -> Result<sled::Db, ProjectionError> {
    // sled's threads may hold the dropped database a moment longer, and would write into the
    // new one's directory.
    careledger_core::storage::wait_until_released(dir).map_err(ProjectionError::Storage)?;
    remove_files_in(dir).map_err(|e| {
        ProjectionError::Storage(StorageError::io(
            format!("removing the files in {} to rebuild them", dir.display()),
            e,
        ))
    })?;
    let db = open_db(dir, cache_bytes)?;
    start_empty(&db)?;
    Ok(db)
}

/// Removes what is in `dir`, keeping the directory itself: it may be a volume mounted there, or
/// a link.
fn remove_files_in(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Empties the database, leaving only the mark of this layout.
fn start_empty(db: &sled::Db) -> Result<(), ProjectionError> {
    db.clear().map_err(storage)?;
    db.insert(FORMAT_KEY, FORMAT).map_err(storage)?;
    Ok(())
}

fn stored_checkpoint(db: &sled::Db) -> Result<u64, ProjectionError> {
    match db.get(CHECKPOINT_KEY).map_err(storage)? {
        None => Ok(0),
        Some(bytes) => {
            let raw: [u8; 8] = bytes
                .as_ref()
                .try_into()
                .map_err(|_| ProjectionError::Decode("checkpoint".into()))?;
            Ok(u64::from_be_bytes(raw))
        }
    }
}

/// A byte string behind its length (one byte: ids are at most 64 bytes), so that one id never
/// prefixes another's keys.
fn push_id(key: &mut Vec<u8>, id: &str) {
    key.push(id.len() as u8);
    key.extend_from_slice(id.as_bytes());
}

/// The id behind its length at the start of `bytes`, and what follows it.
fn split_id(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let id = rest.get(..len as usize)?;
    Some((std::str::from_utf8(id).ok()?, rest.get(len as usize..)?))
}

/// The prefix of a patient's chunks: the id's length keeps one id from prefixing another's.
fn patient_key(patient: &PatientId) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + patient.as_str().len() + 4);
    key.push(PATIENT_PREFIX);
    push_id(&mut key, patient.as_str());
    key
}

fn chunk_key(patient: &PatientId, chunk: u32) -> Vec<u8> {
    let mut key = patient_key(patient);
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

fn prefixed(prefix: u8, ids: &[&str]) -> Vec<u8> {
    let mut key = vec![prefix];
    for id in ids {
        push_id(&mut key, id);
    }
    key
}

/// LZ4 expands at most this many times: a stored size beyond it is damage, not data.
const MAX_EXPANSION: usize = 255;

/// A view as stored: its bincode encoding compressed as one LZ4 block, behind the encoding's
/// length (u32, little-endian). The audit trail repeats names, reasons and sentences, so a view
/// compresses well, and sled writes each stored byte more than twice.
fn compress_view(encoded: &[u8], out: &mut Vec<u8>) -> Result<(), ProjectionError> {
    let len = u32::try_from(encoded.len()).map_err(|_| {
        ProjectionError::Storage(
            format!(
                "a patient's read model of {} bytes is over 4 GiB",
                encoded.len()
            )
            .into(),
        )
    })?;
    out.clear();
    out.extend_from_slice(&len.to_le_bytes());
    out.resize(
        4 + lz4_flex::block::get_maximum_output_size(encoded.len()),
        0,
    );
    let written = lz4_flex::block::compress_into(encoded, &mut out[4..])
        .map_err(|e| ProjectionError::Storage(format!("compressing a read model: {e}").into()))?;
    out.truncate(4 + written);
    Ok(())
}

/// A stored view decoded, with the length of its bincode encoding.
fn decode_view(stored: &[u8]) -> Result<(PatientView, usize), ProjectionError> {
    let (len, compressed) = stored.split_first_chunk::<4>().ok_or_else(|| {
        ProjectionError::Decode(format!("a stored view of {} bytes", stored.len()))
    })?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > compressed.len().saturating_mul(MAX_EXPANSION) {
        return Err(ProjectionError::Decode(format!(
            "a stored view claims {len} bytes from {} compressed",
            compressed.len()
        )));
    }
    let encoded = lz4_flex::block::decompress(compressed, len)
        .map_err(|e| ProjectionError::Decode(format!("decompressing a stored view: {e}")))?;
    let (view, _): (PatientView, usize) = crate::shared::reading(|| {
        bincode::serde::decode_from_slice(&encoded, bincode::config::standard())
    })
    .map_err(|e| ProjectionError::Decode(e.to_string()))?;
    Ok((view, len))
}

/// Reads one patient's stored view, reassembling its chunks (stored in key order).
fn load_view(
    db: &sled::Db,
    patient: &PatientId,
) -> Result<Option<(PatientView, usize)>, ProjectionError> {
    let mut bytes = Vec::new();
    for (expected, item) in (0u32..).zip(db.scan_prefix(patient_key(patient))) {
        let (key, value) = item.map_err(storage)?;
        let chunk = key
            .len()
            .checked_sub(4)
            .and_then(|at| <[u8; 4]>::try_from(&key[at..]).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| ProjectionError::Decode(format!("malformed key {key:?}")))?;
        if chunk != expected {
            return Err(ProjectionError::Decode(format!(
                "the state of {patient} has chunk {chunk} where {expected} belongs"
            )));
        }
        bytes.extend_from_slice(&value);
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    decode_view(&bytes).map(Some)
}

/// The cache's estimate of a decoded view's memory, from the length of its encoding.
fn estimate(encoded_len: usize) -> u64 {
    encoded_len as u64 * HEAP_PER_ENCODED_BYTE + ENTRY_BYTES
}

/// The key a patient's FHIR resource ids start with: the first 16 hex digits of the hash of
/// the patient's first event (`careledger_fhir::patient_key` gives the same).
pub fn fhir_key(view: &PatientView) -> Option<String> {
    let first = view.audit.first()?;
    Some(first.provenance.hash.to_hex()[..16].to_owned())
}

/// An index entry: its key and value.
type IndexEntry = (Vec<u8>, Vec<u8>);

/// The index entries a patient's view holds, each as key and value; every value starts with
/// the patient (behind its length), then what the entry carries (the team for `'t'`).
fn index_entries(
    patient: &PatientId,
    view: &PatientView,
) -> Result<Vec<IndexEntry>, ProjectionError> {
    let id = patient.as_str();
    let mut of_patient = Vec::with_capacity(1 + id.len());
    push_id(&mut of_patient, id);
    let mut entries = Vec::new();
    let team: Vec<(ActorId, Role)> = view
        .plan
        .care_team
        .iter()
        .map(|m| (m.actor.clone(), m.role))
        .collect();
    let mut value = of_patient.clone();
    bincode::serde::encode_into_std_write(&team, &mut value, bincode::config::standard())
        .map_err(|e| ProjectionError::Storage(StorageError::other(e)))?;
    entries.push((prefixed(TEAM_PREFIX, &[id]), value));
    let mut members: Vec<&str> = team.iter().map(|(a, _)| a.as_str()).collect();
    members.sort_unstable();
    members.dedup();
    for actor in members {
        entries.push((prefixed(MEMBER_PREFIX, &[actor, id]), of_patient.clone()));
    }
    let mut grantees: Vec<&str> = view
        .plan
        .emergency_access
        .iter()
        .map(|e| e.opened.actor.as_str())
        .collect();
    grantees.sort_unstable();
    grantees.dedup();
    for actor in grantees {
        entries.push((prefixed(GRANT_PREFIX, &[actor, id]), of_patient.clone()));
    }
    if let Some(key) = fhir_key(view) {
        let mut k = vec![FHIR_KEY_PREFIX];
        k.extend_from_slice(key.as_bytes());
        entries.push((k, of_patient.clone()));
    }
    let mut open: Vec<Line> = view
        .notifications
        .iter()
        .filter(|n| n.status == NotificationStatus::Open)
        .map(|n| n.recipient)
        .collect();
    open.sort_unstable_by_key(|l| l.as_str());
    open.dedup();
    for line in open {
        entries.push((
            prefixed(OPEN_PREFIX, &[line.as_str(), id]),
            of_patient.clone(),
        ));
    }
    Ok(entries)
}

/// Views read from disk ahead of a fold, by patient (`None`: none stored).
type Preloaded = HashMap<PatientId, Option<(PatientView, usize)>>;

/// A decoded view in the cache.
struct Entry {
    view: Arc<PatientView>,
    /// The estimate of its memory.
    bytes: u64,
    /// Changed since it was last stored.
    dirty: bool,
    /// Counts its changes, so that `persist` marks clean only a view not changed since its
    /// snapshot.
    version: u64,
    /// Its place in the recency order.
    tick: u64,
}

/// The decoded views last used, and the position they are folded up to.
#[derive(Default)]
struct Cache {
    entries: HashMap<PatientId, Entry>,
    /// Least recently used first.
    order: BTreeMap<u64, PatientId>,
    tick: u64,
    /// The sum of the entries' estimates.
    bytes: u64,
    /// The last position applied.
    checkpoint: u64,
}

impl Cache {
    /// The view of a cached patient, marked as used now.
    fn get(&mut self, patient: &PatientId) -> Option<Arc<PatientView>> {
        let entry = self.entries.get_mut(patient)?;
        self.order.remove(&entry.tick);
        self.tick += 1;
        entry.tick = self.tick;
        self.order.insert(self.tick, patient.clone());
        Some(entry.view.clone())
    }

    fn insert(&mut self, patient: PatientId, view: Arc<PatientView>, bytes: u64) {
        self.tick += 1;
        self.order.insert(self.tick, patient.clone());
        self.bytes += bytes;
        let old = self.entries.insert(
            patient,
            Entry {
                view,
                bytes,
                dirty: false,
                version: 0,
                tick: self.tick,
            },
        );
        assert!(old.is_none(), "a view is cached once");
    }

    /// Evicts the least recently used clean views until the estimate is at most `budget`;
    /// dirty views stay whatever the estimate.
    fn evict(&mut self, budget: u64) {
        if self.bytes <= budget {
            return;
        }
        let mut victims = Vec::new();
        let mut freed = 0;
        for (tick, patient) in &self.order {
            if self.bytes - freed <= budget {
                break;
            }
            if let Some(entry) = self.entries.get(patient).filter(|e| !e.dirty) {
                freed += entry.bytes;
                victims.push(*tick);
            }
        }
        for tick in victims {
            if let Some(patient) = self.order.remove(&tick) {
                if let Some(entry) = self.entries.remove(&patient) {
                    self.bytes -= entry.bytes;
                }
            }
        }
    }

    fn dirty_bytes(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| e.dirty)
            .map(|e| e.bytes)
            .sum()
    }
}

/// What the cache holds now: for tests, benchmarks and the load tool's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheStats {
    /// Views cached.
    pub views: u64,
    /// Views changed and not yet stored.
    pub dirty: u64,
    /// The estimate of the cached views' memory.
    pub bytes: u64,
    /// The budget the estimate is kept under, but for dirty views.
    pub budget: u64,
}

/// A view to persist: taken from the cache at a checkpoint.
struct Snapshot {
    patient: PatientId,
    view: Arc<PatientView>,
    version: u64,
}

/// A view encoded for storing, with the length of its encoding.
struct Encoded {
    patient: PatientId,
    version: u64,
    chunks: Vec<sled::IVec>,
    encoded_len: usize,
    index: Vec<IndexEntry>,
}

/// bincode's writer into a reused buffer. A view's encoding is thousands of writes of a byte or
/// a few (varints, enum tags, short strings); through `std::io::Write` each was a call into
/// `memmove` (6 % of a profiled rebuild's samples, 2 % with this writer). A single byte is
/// pushed here instead.
struct BufferWriter<'a>(&'a mut Vec<u8>);

impl bincode::enc::write::Writer for BufferWriter<'_> {
    #[inline(always)]
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        match bytes {
            [byte] => self.0.push(*byte),
            _ => self.0.extend_from_slice(bytes),
        }
        Ok(())
    }
}

/// Encodes the snapshots' views, compressed and cut into the stored chunks, with their index
/// entries: two buffers for all views, no view-sized buffer per patient.
fn encode_views(snapshots: &[Snapshot]) -> Result<Vec<Encoded>, ProjectionError> {
    let mut out = Vec::with_capacity(snapshots.len());
    let mut encoded = Vec::new();
    let mut compressed = Vec::new();
    for s in snapshots {
        encoded.clear();
        crate::shared::writing(|| {
            bincode::serde::encode_into_writer(
                &*s.view,
                BufferWriter(&mut encoded),
                bincode::config::standard(),
            )
        })
        .map_err(|e| ProjectionError::Storage(StorageError::other(e)))?;
        compress_view(&encoded, &mut compressed)?;
        out.push(Encoded {
            patient: s.patient.clone(),
            version: s.version,
            chunks: compressed
                .chunks(CHUNK_BYTES)
                .map(sled::IVec::from)
                .collect(),
            encoded_len: encoded.len(),
            index: index_entries(&s.patient, &s.view)?,
        });
    }
    Ok(out)
}

/// The batch that stores encoded views with their index entries, removing a view's chunks
/// beyond its new length and the index entries it no longer holds.
fn batch_of(db: &sled::Db, encoded: &[Encoded]) -> Result<sled::Batch, ProjectionError> {
    let mut batch = sled::Batch::default();
    for view in encoded {
        let chunks = view.chunks.len() as u32;
        for (i, chunk) in view.chunks.iter().enumerate() {
            batch.insert(chunk_key(&view.patient, i as u32), chunk.clone());
        }
        // A view never shrinks by much, but a smaller one must not keep old chunks.
        for item in db.range(chunk_key(&view.patient, chunks)..=chunk_key(&view.patient, u32::MAX))
        {
            batch.remove(item.map_err(storage)?.0);
        }
        let held_key = prefixed(HELD_PREFIX, &[view.patient.as_str()]);
        let held: Vec<Vec<u8>> = match db.get(&held_key).map_err(storage)? {
            None => Vec::new(),
            Some(bytes) => {
                bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                    .map_err(|e| ProjectionError::Decode(e.to_string()))?
                    .0
            }
        };
        let now: HashSet<&[u8]> = view.index.iter().map(|(k, _)| k.as_slice()).collect();
        for stale in held.iter().filter(|k| !now.contains(k.as_slice())) {
            batch.remove(stale.as_slice());
        }
        for (key, value) in &view.index {
            batch.insert(key.as_slice(), value.as_slice());
        }
        let keys: Vec<&[u8]> = view.index.iter().map(|(k, _)| k.as_slice()).collect();
        let keys = bincode::serde::encode_to_vec(&keys, bincode::config::standard())
            .map_err(|e| ProjectionError::Storage(StorageError::other(e)))?;
        batch.insert(held_key, keys);
    }
    Ok(batch)
}

/// The persisted read models with their cache.
pub struct Projections {
    dir: PathBuf,
    /// `None` only while a failed database is being replaced.
    db: RwLock<Option<sled::Db>>,
    config: ProjectionConfig,
    cache: Mutex<Cache>,
    /// Held to read from disk what is not cached (shared) and to write a batch (exclusive), so
    /// that a view is never read half written.
    io: RwLock<()>,
    /// One applier at a time.
    catching_up: Mutex<()>,
    /// One `persist` at a time: a later call must not be overtaken by an earlier one's batch.
    persisting: Mutex<()>,
    /// The checkpoint last stored.
    persisted: AtomicU64,
    /// A storage operation failed since the database was last opened.
    broken: AtomicBool,
}

impl Projections {
    /// Opens the projections' database in `dir`; views are read as they are used.
    pub fn open(dir: &Path, config: ProjectionConfig) -> Result<Self, ProjectionError> {
        let mut db = open_db(dir, config.sled_cache_bytes)?;
        if db.get(FORMAT_KEY).map_err(storage)?.as_deref() != Some(FORMAT) {
            // Empty, or written in an earlier layout: start from zero; the catch-up rebuilds.
            if db.first().map_err(storage)?.is_some() {
                drop(db);
                db = fresh_db(dir, config.sled_cache_bytes)?;
            } else {
                start_empty(&db)?;
            }
        }
        let checkpoint = stored_checkpoint(&db)?;
        Ok(Self {
            dir: dir.to_owned(),
            db: RwLock::new(Some(db)),
            config,
            cache: Mutex::new(Cache {
                checkpoint,
                ..Cache::default()
            }),
            io: RwLock::new(()),
            catching_up: Mutex::new(()),
            persisting: Mutex::new(()),
            persisted: AtomicU64::new(checkpoint),
            broken: AtomicBool::new(false),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ProjectionConfig {
        &self.config
    }

    fn db(&self) -> Result<sled::Db, ProjectionError> {
        self.db.read().clone().ok_or_else(|| {
            ProjectionError::Storage(StorageError::other(
                "the read models' database is closed after a storage failure; it reopens once \
                 the disk takes writes again",
            ))
        })
    }

    /// Marks the store broken on a storage failure, so that the next apply or persist reopens it.
    fn noting<T>(&self, result: Result<T, ProjectionError>) -> Result<T, ProjectionError> {
        if let Err(ProjectionError::Storage(_)) = &result {
            self.broken.store(true, Ordering::Release);
        }
        result
    }

    /// The last position applied.
    pub fn checkpoint(&self) -> u64 {
        self.cache.lock().checkpoint
    }

    /// What the cache holds now.
    pub fn cache_stats(&self) -> CacheStats {
        let cache = self.cache.lock();
        CacheStats {
            views: cache.entries.len() as u64,
            dirty: cache.entries.values().filter(|e| e.dirty).count() as u64,
            bytes: cache.bytes,
            budget: self.config.view_cache_bytes,
        }
    }

    /// One patient's read models: from the cache, or read from disk into it. `None` for a
    /// patient without events.
    pub fn view(&self, patient: &PatientId) -> Result<Option<Arc<PatientView>>, ProjectionError> {
        if let Some(view) = self.cache.lock().get(patient) {
            return Ok(Some(view));
        }
        let _no_batch_meanwhile = self.io.read();
        let loaded = self.noting(self.db().and_then(|db| load_view(&db, patient)))?;
        let mut cache = self.cache.lock();
        // The applier may have loaded and changed it meanwhile: its copy is the newer.
        if let Some(view) = cache.get(patient) {
            return Ok(Some(view));
        }
        let Some((view, encoded_len)) = loaded else {
            return Ok(None);
        };
        let view = Arc::new(view);
        cache.insert(patient.clone(), view.clone(), estimate(encoded_len));
        cache.evict(self.config.view_cache_bytes);
        Ok(Some(view))
    }

    /// Calls `f` with one patient's read models; `None` for a patient without events.
    pub fn with_view<R>(
        &self,
        patient: &PatientId,
        f: impl FnOnce(&PatientView) -> R,
    ) -> Result<Option<R>, ProjectionError> {
        Ok(self.view(patient)?.map(|view| f(&view)))
    }

    /// The care team of a patient (member and role), without decoding the whole view when it is
    /// not cached; `None` for a patient without events.
    pub fn care_team(
        &self,
        patient: &PatientId,
    ) -> Result<Option<Vec<(ActorId, Role)>>, ProjectionError> {
        let team_of = |view: &PatientView| {
            view.plan
                .care_team
                .iter()
                .map(|m| (m.actor.clone(), m.role))
                .collect()
        };
        if let Some(view) = self.cache.lock().get(patient) {
            return Ok(Some(team_of(&view)));
        }
        let _no_batch_meanwhile = self.io.read();
        let stored = self.noting(self.db().and_then(|db| {
            db.get(prefixed(TEAM_PREFIX, &[patient.as_str()]))
                .map_err(storage)
        }))?;
        if let Some(view) = self.cache.lock().get(patient) {
            return Ok(Some(team_of(&view)));
        }
        let Some(stored) = stored else {
            return Ok(None);
        };
        let (_, team) = split_id(&stored)
            .ok_or_else(|| ProjectionError::Decode("a stored care team".into()))?;
        let (team, _): (Vec<(ActorId, Role)>, usize) =
            bincode::serde::decode_from_slice(team, bincode::config::standard())
                .map_err(|e| ProjectionError::Decode(e.to_string()))?;
        Ok(Some(team))
    }

    /// The patients whose index entries start with `prefix`, with what each entry carries:
    /// the stored index, but for the views changed since they were stored, whose entries are
    /// taken from the cache.
    fn indexed(&self, prefix: &[u8]) -> Result<Vec<(PatientId, Vec<u8>)>, ProjectionError> {
        let _no_batch_meanwhile = self.io.read();
        let mut found = BTreeMap::new();
        let db = self.noting(self.db())?;
        for item in db.scan_prefix(prefix) {
            let (key, value) = self.noting(item.map_err(storage))?;
            let (id, payload) = split_id(&value)
                .ok_or_else(|| ProjectionError::Decode(format!("index entry {key:?}")))?;
            let patient =
                PatientId::parse(id).map_err(|e| ProjectionError::Decode(e.to_string()))?;
            found.insert(patient, payload.to_vec());
        }
        let cache = self.cache.lock();
        for (patient, entry) in cache.entries.iter().filter(|(_, e)| e.dirty) {
            found.remove(patient);
            for (key, value) in index_entries(patient, &entry.view)? {
                if key.starts_with(prefix) {
                    let payload = split_id(&value)
                        .map(|(_, p)| p.to_vec())
                        .unwrap_or_default();
                    found.insert(patient.clone(), payload);
                }
            }
        }
        Ok(found.into_iter().collect())
    }

    /// The patients whose care team `actor` is in (a practitioner's patient list).
    pub fn patients_of(&self, actor: &ActorId) -> Result<Vec<PatientId>, ProjectionError> {
        let prefix = prefixed(MEMBER_PREFIX, &[actor.as_str()]);
        Ok(self.indexed(&prefix)?.into_iter().map(|(p, _)| p).collect())
    }

    /// The patients on whose record `actor` broke the glass, at any time.
    pub fn emergency_patients_of(
        &self,
        actor: &ActorId,
    ) -> Result<Vec<PatientId>, ProjectionError> {
        let prefix = prefixed(GRANT_PREFIX, &[actor.as_str()]);
        Ok(self.indexed(&prefix)?.into_iter().map(|(p, _)| p).collect())
    }

    /// The patients with a notification to `line` not yet acknowledged or withdrawn.
    pub fn patients_notifying(&self, line: Line) -> Result<Vec<PatientId>, ProjectionError> {
        let prefix = prefixed(OPEN_PREFIX, &[line.as_str()]);
        Ok(self.indexed(&prefix)?.into_iter().map(|(p, _)| p).collect())
    }

    /// The patient whose FHIR resource ids start with `key` ([`fhir_key`]).
    pub fn patient_by_fhir_key(&self, key: &str) -> Result<Option<PatientId>, ProjectionError> {
        let mut prefix = vec![FHIR_KEY_PREFIX];
        prefix.extend_from_slice(key.as_bytes());
        Ok(self.indexed(&prefix)?.into_iter().map(|(p, _)| p).next())
    }

    /// Every patient with events, in id order.
    pub fn patients(&self) -> Result<Vec<PatientId>, ProjectionError> {
        Ok(self
            .indexed(&[TEAM_PREFIX])?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }

    /// Every patient's view, read into one in-memory model (for tests and small ledgers: it
    /// holds every view at once, which the cache exists not to do).
    pub fn to_read_model(&self) -> Result<ReadModel, ProjectionError> {
        let mut model = ReadModel {
            checkpoint: self.checkpoint(),
            ..ReadModel::default()
        };
        for patient in self.patients()? {
            if let Some(view) = self.view(&patient)? {
                model.patients.insert(patient, (*view).clone());
            }
        }
        Ok(model)
    }

    /// Applies every durable event after the checkpoint and persists the result; returns how many
    /// events were applied.
    pub fn catch_up(&self, ledger: &Ledger) -> Result<u64, ProjectionError> {
        self.catch_up_with_progress(ledger, &mut |_, _| {})
    }

    /// As [`Projections::catch_up`], persisting after each step and calling
    /// `progress(applied up to, head)`.
    pub fn catch_up_with_progress(
        &self,
        ledger: &Ledger,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, ProjectionError> {
        let head = ledger.head().position;
        if self.checkpoint() == 0 && head > 0 {
            // Nothing applied yet (a new database, or one in an earlier layout, dropped): fold
            // in passes of patients and write each view once, as `rebuild` does.
            return self.rebuild(ledger, progress);
        }
        let mut applied = 0;
        loop {
            let step = self.apply_step(ledger)?;
            self.persist()?;
            if step == 0 {
                return Ok(applied);
            }
            applied += step;
            progress(self.checkpoint(), head);
        }
    }

    /// Applies every durable event after the checkpoint; changed views stay in the cache until
    /// [`Projections::persist`] writes them (or the cache, full, writes them back itself).
    /// Reads see the events at once.
    pub fn apply_new(&self, ledger: &Ledger) -> Result<u64, ProjectionError> {
        let mut applied = 0;
        loop {
            let step = self.apply_step(ledger)?;
            if step == 0 {
                return Ok(applied);
            }
            applied += step;
        }
    }

    /// Applies up to one batch of events after the checkpoint; returns how many.
    fn apply_step(&self, ledger: &Ledger) -> Result<u64, ProjectionError> {
        // While the disk takes no writes, keep the failed database: events whose views are
        // cached still fold (sled refuses reads after a failed write, so a miss fails until
        // the store reopens), the changed views staying in the cache.
        let _ = self.recover_if_broken();
        let count = {
            let _one_at_a_time = self.catching_up.lock();
            let after = self.checkpoint();
            let events = ledger.read_all(after, CATCH_UP_BATCH)?;
            if events.is_empty() {
                return Ok(0);
            }
            let db = self.noting(self.db())?;
            let mut preloaded = self.noting(self.preload(&db, &events))?;
            self.noting(self.fold(&db, &events, true, &mut preloaded, &mut |_, _| true))?;
            events.len() as u64
        };
        self.write_back_if_full()?;
        Ok(count)
    }

    /// When changed views fill the cache, writes them so that they may be evicted.
    fn write_back_if_full(&self) -> Result<(), ProjectionError> {
        let full = self.cache.lock().bytes > self.config.view_cache_bytes;
        if full {
            self.persist()?;
        }
        Ok(())
    }

    /// Reads from disk the views of the events' patients that are not cached, before `fold`
    /// takes the cache's lock, so that reads of cached views do not wait for the disk. A view not
    /// cached is not dirty, so what is stored is its latest state and no batch is writing it;
    /// only the applier (holding `catching_up`) changes views. `None` for a patient with no
    /// stored view.
    fn preload(
        &self,
        db: &sled::Db,
        events: &[RecordedEvent],
    ) -> Result<Preloaded, ProjectionError> {
        let missing: BTreeSet<&PatientId> = {
            let cache = self.cache.lock();
            events
                .iter()
                .map(|e| &e.record.patient)
                .filter(|p| {
                    !careledger_core::signing_keys::is_key_stream(p)
                        && !cache.entries.contains_key(*p)
                })
                .collect()
        };
        let mut preloaded = HashMap::with_capacity(missing.len());
        for patient in missing {
            preloaded.insert(patient.clone(), load_view(db, patient)?);
        }
        Ok(preloaded)
    }

    /// Folds events read from the ledger into the cached views, loading a view on a miss, and
    /// marks the views changed; `admit(patient, position)` says whether to fold a patient's
    /// event (a rebuild's pass folds some patients). With `advance`, the checkpoint moves to
    /// each event. Call with `catching_up` held.
    fn fold(
        &self,
        db: &sled::Db,
        events: &[RecordedEvent],
        advance: bool,
        preloaded: &mut Preloaded,
        admit: &mut dyn FnMut(&PatientId, u64) -> bool,
    ) -> Result<u64, ProjectionError> {
        let mut cache = self.cache.lock();
        let mut folded = 0;
        for event in events {
            // Another catch-up may have applied it between our read and our lock.
            if advance && event.position <= cache.checkpoint {
                continue;
            }
            let patient = &event.record.patient;
            let holds_plan = !careledger_core::signing_keys::is_key_stream(patient);
            if holds_plan && admit(patient, event.position) {
                if !cache.entries.contains_key(patient) {
                    // Not cached, so not dirty: what is stored is its latest state (and no
                    // batch is writing it), read here without the `io` lock.
                    let stored = match preloaded.remove(patient) {
                        Some(stored) => stored,
                        None => load_view(db, patient)?,
                    };
                    let (view, bytes) = match stored {
                        Some((view, len)) => (view, estimate(len)),
                        None => (PatientView::default(), ENTRY_BYTES),
                    };
                    cache.insert(patient.clone(), Arc::new(view), bytes);
                }
                let cache = &mut *cache;
                if let Some(entry) = cache.entries.get_mut(patient) {
                    if Arc::make_mut(&mut entry.view).apply(event) {
                        entry.dirty = true;
                        entry.version += 1;
                        entry.bytes += EVENT_BYTES;
                        cache.bytes += EVENT_BYTES;
                        folded += 1;
                    }
                    cache.order.remove(&entry.tick);
                    cache.tick += 1;
                    entry.tick = cache.tick;
                    cache.order.insert(cache.tick, patient.clone());
                }
            }
            if advance {
                cache.checkpoint = event.position;
            }
        }
        cache.evict(self.config.view_cache_bytes);
        Ok(folded)
    }

    /// Writes the views changed since they were last stored, their index entries and the
    /// checkpoint they were taken at, in one atomic batch; then they may be evicted.
    pub fn persist(&self) -> Result<(), ProjectionError> {
        self.recover_if_broken()?;
        let result = self.persist_once();
        self.noting(result)
    }

    fn persist_once(&self) -> Result<(), ProjectionError> {
        let _one_at_a_time = self.persisting.lock();
        let (checkpoint, snapshots) = {
            let cache = self.cache.lock();
            let snapshots: Vec<Snapshot> = cache
                .entries
                .iter()
                .filter(|(_, e)| e.dirty)
                .map(|(patient, e)| Snapshot {
                    patient: patient.clone(),
                    view: e.view.clone(),
                    version: e.version,
                })
                .collect();
            (cache.checkpoint, snapshots)
        };
        if snapshots.is_empty() && checkpoint == self.persisted.load(Ordering::Acquire) {
            return Ok(());
        }
        // Encoding is most of the work when many patients changed (a rebuild): two threads.
        let encoded: Vec<Encoded> = if snapshots.len() >= PARALLEL_ENCODE {
            let (first, second) = snapshots.split_at(snapshots.len() / 2);
            std::thread::scope(|scope| {
                let other = scope.spawn(|| encode_views(second));
                let mut mine = encode_views(first)?;
                let other = other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
                mine.extend(other);
                Ok::<_, ProjectionError>(mine)
            })?
        } else {
            encode_views(&snapshots)?
        };
        drop(snapshots);
        let db = self.db()?;
        let mut batch = batch_of(&db, &encoded)?;
        batch.insert(CHECKPOINT_KEY, &checkpoint.to_be_bytes());
        {
            let _no_reads_meanwhile = self.io.write();
            db.apply_batch(batch).map_err(storage)?;
        }
        self.persisted.store(checkpoint, Ordering::Release);
        let mut cache = self.cache.lock();
        for view in encoded {
            let cache = &mut *cache;
            if let Some(entry) = cache.entries.get_mut(&view.patient) {
                if entry.version == view.version {
                    entry.dirty = false;
                    let bytes = estimate(view.encoded_len);
                    cache.bytes = cache.bytes - entry.bytes + bytes;
                    entry.bytes = bytes;
                }
            }
        }
        cache.evict(self.config.view_cache_bytes);
        Ok(())
    }

    /// After a storage failure: once the directory takes writes again (a probe file written and
    /// synced), reopens the database and continues from what it holds. The cache keeps its
    /// changed views, written by the next persist; should the reopened database lack a batch
    /// the failed one had accepted (its checkpoint is older than the last one written), the
    /// cache forgets everything and the applier folds again from the stored checkpoint.
    fn recover_if_broken(&self) -> Result<(), ProjectionError> {
        if !self.broken.load(Ordering::Acquire) {
            return Ok(());
        }
        let _no_applier = self.catching_up.lock();
        let _no_persist = self.persisting.lock();
        if !self.broken.load(Ordering::Acquire) {
            return Ok(());
        }
        let probe = self.dir.join("write-probe");
        (|| {
            let mut file = std::fs::File::create(&probe)?;
            std::io::Write::write_all(&mut file, &[0u8; PROBE_BYTES])?;
            file.sync_data()?;
            std::fs::remove_file(&probe)
        })()
        .map_err(|e| {
            let _ = std::fs::remove_file(&probe);
            ProjectionError::Storage(StorageError::io(
                "the read models' directory takes no writes",
                e,
            ))
        })?;
        let _no_reads = self.io.write();
        let mut db = self.db.write();
        // sled holds an exclusive lock on its files: the failed database goes first.
        *db = None;
        let reopened = open_db(&self.dir, self.config.sled_cache_bytes)?;
        let checkpoint = stored_checkpoint(&reopened)?;
        *db = Some(reopened);
        if checkpoint != self.persisted.load(Ordering::Acquire) {
            // A batch the failed database accepted is not on disk: views evicted since may be
            // missing from it. Forget them all and fold again from what is stored.
            *self.cache.lock() = Cache {
                checkpoint,
                ..Cache::default()
            };
            self.persisted.store(checkpoint, Ordering::Release);
        }
        self.broken.store(false, Ordering::Release);
        Ok(())
    }

    /// Clears the read models and folds the whole ledger again, up to its head when the rebuild
    /// starts, in bounded memory: patient by patient from each one's stream when the ledger lists
    /// its patients (sled's does), else in passes over the ledger. Each view is written once.
    /// The checkpoint is stored at the end: a rebuild cut short starts again.
    pub fn rebuild(
        &self,
        ledger: &Ledger,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, ProjectionError> {
        self.recover_if_broken()?;
        let _one_at_a_time = self.catching_up.lock();
        {
            let _no_persist = self.persisting.lock();
            let _no_reads = self.io.write();
            let mut db = self.db.write();
            // sled holds an exclusive lock on its files: the old database goes first. On a
            // failure the store stays closed and broken, and reopens as after any other.
            *db = None;
            *db = Some(self.noting(fresh_db(&self.dir, self.config.sled_cache_bytes))?);
            *self.cache.lock() = Cache::default();
            self.persisted.store(0, Ordering::Release);
        }
        let db = self.db()?;
        let head = ledger.head().position;
        let applied = match ledger.patients()? {
            Some(patients) => self.rebuild_by_patient(ledger, &db, &patients, head, progress)?,
            None => self.rebuild_in_passes(ledger, &db, head, progress)?,
        };
        self.cache.lock().checkpoint = head;
        self.noting(self.persist_once())?;
        Ok(applied)
    }

    /// The rebuild of a ledger that lists its patients: each patient's stream read and folded
    /// on its own, on [`REBUILD_WORKERS`] threads, the views written in batches that together
    /// fill half the cache: memory holds a few views, and each view is written once.
    fn rebuild_by_patient(
        &self,
        ledger: &Ledger,
        db: &sled::Db,
        patients: &[PatientId],
        head: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, ProjectionError> {
        let batch_bytes = (self.config.view_cache_bytes / 2 / REBUILD_WORKERS as u64).max(1);
        let folded = AtomicU64::new(0);
        let next = AtomicU64::new(0);
        let work = || -> Result<(), ProjectionError> {
            let mut pending: Vec<Snapshot> = Vec::new();
            let mut pending_bytes = 0;
            let write = |pending: &mut Vec<Snapshot>| -> Result<(), ProjectionError> {
                let encoded = encode_views(pending)?;
                pending.clear();
                let batch = batch_of(db, &encoded)?;
                let _no_reads_meanwhile = self.io.write();
                self.noting(db.apply_batch(batch).map_err(storage))
            };
            loop {
                // Patients in runs of 64, so that the threads' batches hold neighbouring keys.
                let from = next.fetch_add(64, Ordering::Relaxed) as usize;
                let Some(run) = patients.get(from..(from + 64).min(patients.len())) else {
                    break;
                };
                for patient in run {
                    let events = ledger.read_stream(patient, 1, usize::MAX)?;
                    let mut view = PatientView::default();
                    // Every event adds one audit entry: the trail's room, allocated once.
                    view.audit.reserve_exact(events.len());
                    let mut count = 0;
                    for event in events {
                        if event.position <= head && view.apply(&event) {
                            count += 1;
                        }
                    }
                    if count == 0 {
                        continue;
                    }
                    folded.fetch_add(count, Ordering::Relaxed);
                    pending_bytes += count * EVENT_BYTES;
                    pending.push(Snapshot {
                        patient: patient.clone(),
                        view: Arc::new(view),
                        version: 0,
                    });
                    if pending_bytes >= batch_bytes {
                        write(&mut pending)?;
                        pending_bytes = 0;
                    }
                }
            }
            if !pending.is_empty() {
                write(&mut pending)?;
            }
            Ok(())
        };
        std::thread::scope(|scope| -> Result<(), ProjectionError> {
            let workers: Vec<_> = (0..REBUILD_WORKERS).map(|_| scope.spawn(work)).collect();
            // This thread reports progress while the workers fold.
            let mut ticks = 0u32;
            while workers.iter().any(|w| !w.is_finished()) {
                std::thread::sleep(std::time::Duration::from_millis(5));
                ticks += 1;
                if ticks.is_multiple_of(40) {
                    progress(folded.load(Ordering::Relaxed), head);
                }
            }
            workers.into_iter().try_for_each(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
        })?;
        progress(folded.load(Ordering::Relaxed), head);
        Ok(folded.load(Ordering::Relaxed))
    }

    /// The rebuild of a ledger that does not list its patients: passes over the ledger, each
    /// folding the patients whose views, projected to the end of the ledger, fit half the cache
    /// (the others' events skipped), writing each view once, when its pass ends.
    fn rebuild_in_passes(
        &self,
        ledger: &Ledger,
        db: &sled::Db,
        head: u64,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, ProjectionError> {
        let db = db.clone();
        let budget = self.config.view_cache_bytes;
        let mut done: HashSet<PatientId> = HashSet::new();
        let mut from = 0;
        let mut applied = 0;
        while from < head {
            let mut admitted: HashSet<PatientId> = HashSet::new();
            let mut closed = false;
            let mut next_from: Option<u64> = None;
            let pass_from = from;
            self.read_ledger(ledger, from, head, &mut |events| {
                let last = events.last().map_or(from, |e| e.position);
                let folded = self.noting(self.fold(
                    &db,
                    events,
                    false,
                    &mut Preloaded::new(),
                    &mut |patient, position| {
                        if done.contains(patient) {
                            false
                        } else if admitted.contains(patient) {
                            true
                        } else if !closed {
                            admitted.insert(patient.clone());
                            true
                        } else {
                            next_from.get_or_insert(position - 1);
                            false
                        }
                    },
                ))?;
                applied += folded;
                // Close the pass once the views admitted, grown in proportion to the rest of
                // the ledger, would fill half the cache.
                let bytes = self.cache.lock().bytes;
                let projected = u128::from(bytes) * u128::from(head - pass_from)
                    / u128::from((last - pass_from).max(1));
                if projected > u128::from(budget / 2) {
                    closed = true;
                }
                if bytes > budget {
                    self.persist_once()?;
                }
                progress(last, head);
                Ok(())
            })?;
            self.noting(self.persist_once())?;
            self.cache.lock().evict(0);
            done.extend(admitted);
            match next_from {
                Some(position) => from = position,
                None => break,
            }
        }
        Ok(applied)
    }

    /// Reads the ledger's events after `from` up to `head` in growing batches on a thread of
    /// its own, handing each batch to `fold` on this one.
    fn read_ledger(
        &self,
        ledger: &Ledger,
        from: u64,
        head: u64,
        fold: &mut dyn FnMut(&[RecordedEvent]) -> Result<(), ProjectionError>,
    ) -> Result<(), ProjectionError> {
        let (batches, received) = std::sync::mpsc::sync_channel::<Vec<RecordedEvent>>(2);
        // Folded batches go back to the reader to be freed there: glibc frees fastest in the
        // thread that allocated (a free from another thread takes the owning arena's lock, which
        // the reader holds while it decodes the next batch).
        let (folded, returned) = std::sync::mpsc::channel::<Vec<RecordedEvent>>();
        std::thread::scope(|scope| -> Result<(), ProjectionError> {
            let reader = scope.spawn(move || -> Result<(), ProjectionError> {
                let mut after = from;
                // Small batches first, so that the fold starts early: with 8,192 from the start
                // a ledger of 10,000 events was read half before anything was folded.
                let mut batch = FIRST_REBUILD_BATCH;
                while after < head {
                    returned.try_iter().for_each(drop);
                    let mut events = ledger.read_all(after, batch)?;
                    batch = (batch * 2).min(CATCH_UP_BATCH);
                    events.retain(|e| e.position <= head);
                    let Some(last) = events.last() else {
                        return Ok(());
                    };
                    after = last.position;
                    if batches.send(events).is_err() {
                        return Ok(());
                    }
                }
                Ok(())
            });
            let mut result = Ok(());
            for events in received {
                if result.is_ok() {
                    result = fold(&events);
                }
                let _ = folded.send(events);
                if result.is_err() {
                    break;
                }
            }
            let read = reader
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            result.and(read)
        })
    }

    /// Flushes the projections' database (they are rebuildable, so this is for tidy shutdowns).
    pub fn flush(&self) -> Result<(), ProjectionError> {
        let result = self
            .db()
            .and_then(|db| db.flush().map(|_| ()).map_err(storage));
        self.noting(result)
    }

    /// Evicts every stored view from the cache (views not yet stored stay), for tests and
    /// measurements of reads from disk.
    #[doc(hidden)]
    pub fn evict_stored(&self) {
        self.cache.lock().evict(0);
    }

    /// The estimate of the cached views not yet stored, for tests.
    #[doc(hidden)]
    pub fn dirty_bytes(&self) -> u64 {
        self.cache.lock().dirty_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use careledger_core::event::{Command, Member, Note, NoteKind};
    use careledger_core::ids::{ActorId, Text};
    use careledger_core::role::{Lead, Practitioner, Role};
    use careledger_core::{Actor, AppendRequest, ExpectedRevision, LedgerConfig, Submission};

    fn text(t: &str) -> Text {
        Text::new(t).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An append by the GP to `patient`: founding its care team, or a note.
    fn append(ledger: &Ledger, patient: &str, founding: bool) {
        let command = if founding {
            Command::AddCareTeamMember(Member {
                actor: ActorId::parse("agb-01012345").unwrap_or_else(|e| panic!("{e}")),
                name: text("Dr. J. de Vries"),
                agb: None,
                role: Role::Gp,
                lead: Lead::Cvrm,
                practitioner: Practitioner::Main,
            })
        } else {
            Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: text("CVRM follow-up"),
                body: text("Blood pressure at target."),
            })
        };
        append_command(ledger, patient, command);
    }

    /// An append of `command` by the GP to `patient`.
    fn append_command(ledger: &Ledger, patient: &str, command: Command) {
        let gp = Actor {
            id: ActorId::parse("agb-01012345").unwrap_or_else(|e| panic!("{e}")),
            role: Role::Gp,
            name: text("Dr. J. de Vries"),
            organisation: None,
        };
        ledger
            .append(AppendRequest {
                patient: PatientId::parse(patient).unwrap_or_else(|e| panic!("{e}")),
                expected: ExpectedRevision::Any,
                actor: gp,
                submissions: vec![Submission {
                    command,
                    occurred_at: None,
                    reason: text("quarterly consultation"),
                }],
                idempotency_key: None,
                correlation_id: None,
                causation_id: None,
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `persist` writes the checkpoint its patients were taken at and encodes each view later,
    /// while appends go on: a stored view can hold events after the stored checkpoint. Opening
    /// and catching up must not apply those again.
    #[test]
    fn a_view_stored_ahead_of_its_checkpoint_catches_up_without_applying_anything_twice() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let at = dir.path().join("projections");
        append(&ledger, "patient-1", true);
        append(&ledger, "patient-2", true);
        let projections =
            Projections::open(&at, ProjectionConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        projections
            .catch_up(&ledger)
            .unwrap_or_else(|e| panic!("{e}"));
        let taken_at = projections.checkpoint();
        // Events that land while the views are being encoded, stored with the older checkpoint.
        for _ in 0..3 {
            append(&ledger, "patient-1", false);
        }
        append(&ledger, "patient-2", false);
        projections
            .apply_new(&ledger)
            .unwrap_or_else(|e| panic!("{e}"));
        projections.persist().unwrap_or_else(|e| panic!("{e}"));
        projections
            .db()
            .unwrap_or_else(|e| panic!("{e}"))
            .insert(CHECKPOINT_KEY, &taken_at.to_be_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        drop(projections);

        let reopened =
            Projections::open(&at, ProjectionConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reopened.checkpoint(), taken_at);
        reopened.catch_up(&ledger).unwrap_or_else(|e| panic!("{e}"));
        let rebuilt = Projections::open(&dir.path().join("rebuilt"), ProjectionConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        rebuilt
            .rebuild(&ledger, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            reopened.to_read_model().unwrap_or_else(|e| panic!("{e}")),
            rebuilt.to_read_model().unwrap_or_else(|e| panic!("{e}"))
        );
        let patient = PatientId::parse("patient-1").unwrap_or_else(|e| panic!("{e}"));
        let view = reopened.view(&patient).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(view.map(|v| v.audit.len()), Some(4));
    }

    #[test]
    fn a_rebuild_replaces_the_files_in_the_directory_and_leaves_the_directory_itself() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        append(&ledger, "patient-1", true);
        append(&ledger, "patient-1", false);
        append(&ledger, "patient-2", true);
        // The read models' directory is a link to another place, as a mounted volume would be
        // a directory the rebuild must not remove.
        let volume = dir.path().join("volume");
        std::fs::create_dir(&volume).unwrap_or_else(|e| panic!("{e}"));
        let at = dir.path().join("projections");
        std::os::unix::fs::symlink(&volume, &at).unwrap_or_else(|e| panic!("{e}"));
        let projections =
            Projections::open(&at, ProjectionConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        projections
            .catch_up(&ledger)
            .unwrap_or_else(|e| panic!("{e}"));
        projections.persist().unwrap_or_else(|e| panic!("{e}"));
        let before = projections
            .to_read_model()
            .unwrap_or_else(|e| panic!("{e}"));
        // A key no rebuild writes: gone once the files are replaced.
        projections
            .db()
            .unwrap_or_else(|e| panic!("{e}"))
            .insert(b"left-behind", b"x")
            .unwrap_or_else(|e| panic!("{e}"));

        projections
            .rebuild(&ledger, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{e}"));
        let link = std::fs::symlink_metadata(&at).unwrap_or_else(|e| panic!("{e}"));
        assert!(link.file_type().is_symlink(), "the directory itself stays");
        assert!(
            volume.join("db").exists(),
            "the database is in the linked place"
        );
        let db = projections.db().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            db.get(b"left-behind").unwrap_or_else(|e| panic!("{e}")),
            None
        );
        assert_eq!(
            projections
                .to_read_model()
                .unwrap_or_else(|e| panic!("{e}")),
            before
        );
        // And it goes on: a new event, persisted and read back after a reopen.
        append(&ledger, "patient-2", false);
        projections
            .apply_new(&ledger)
            .unwrap_or_else(|e| panic!("{e}"));
        projections.persist().unwrap_or_else(|e| panic!("{e}"));
        drop(db);
        drop(projections);
        let reopened =
            Projections::open(&at, ProjectionConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reopened.checkpoint(), ledger.head().position);
    }

    fn stored(view: &PatientView) -> Vec<u8> {
        let encoded = crate::shared::writing(|| {
            bincode::serde::encode_to_vec(view, bincode::config::standard())
        })
        .unwrap_or_default();
        let mut out = Vec::new();
        compress_view(&encoded, &mut out).unwrap_or_default();
        out
    }

    #[test]
    fn a_stored_view_reads_back_and_damage_is_an_error_not_a_crash() {
        let p = crate::Provenance::new(crate::ProvenanceFields {
            position: 42,
            hash: careledger_core::record::Hash::ZERO,
            actor: ActorId::parse("gp-1").unwrap_or_else(|e| panic!("{e}")),
            actor_name: Text::new("A. Jansen").unwrap_or_else(|e| panic!("{e}")),
            role: Role::Gp,
            line: careledger_core::role::Line::First,
            recorded_at: careledger_core::record::Timestamp::from_micros(0),
            occurred_at: careledger_core::record::Timestamp::from_micros(0),
            reason: Text::default(),
        });
        let note = crate::plan::NoteEntry {
            kind: NoteKind::Note,
            subject: Text::new("blood pressure").unwrap_or_else(|e| panic!("{e}")),
            body: Text::default(),
            written: p,
        };
        let view = PatientView {
            plan: crate::plan::CarePlan {
                notes: vec![note; 2_000],
                ..crate::plan::CarePlan::default()
            },
            ..PatientView::default()
        };
        let bytes = stored(&view);
        assert!(bytes.len() < 2_000, "repetitive state compresses");
        assert_eq!(decode_view(&bytes).ok().map(|(v, _)| v), Some(view));

        // A length beyond what LZ4 can expand to, a short record, and a cut block.
        let mut huge = bytes.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() / 2);
        for damaged in [huge, bytes[..3].to_vec(), cut] {
            assert!(
                matches!(decode_view(&damaged), Err(ProjectionError::Decode(_))),
                "{} damaged bytes must be reported as unreadable",
                damaged.len()
            );
        }
    }

    /// A view stored with each event's provenance once reads back equal, its audit entries and
    /// series entries sharing their event's provenance as they did when folded, and at least a
    /// fifth smaller than with a copy of the provenance in every element (a quarter, for these
    /// readings and notes).
    #[test]
    fn a_stored_view_holds_each_provenance_once_and_reads_it_back_shared() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        append(&ledger, "patient-1", true);
        append_command(
            &ledger,
            "patient-1",
            Command::AddCareTeamMember(Member {
                actor: ActorId::parse("card-1").unwrap_or_else(|e| panic!("{e}")),
                name: text("J. Bakker"),
                agb: None,
                role: Role::Cardiologist,
                lead: Lead::OrganDisease,
                practitioner: Practitioner::Main,
            }),
        );
        for i in 0..40 {
            append_command(
                &ledger,
                "patient-1",
                Command::RecordMeasurement(careledger_core::event::Measurement {
                    value: careledger_core::quantity::Quantity::new(
                        careledger_core::quantity::Measure::SystolicBloodPressure,
                        120 + i,
                    )
                    .unwrap_or_else(|e| panic!("{e}")),
                    source: careledger_core::event::MeasurementSource::SelfMeasuredAtHome,
                }),
            );
            append(&ledger, "patient-1", false);
        }
        let patient = PatientId::parse("patient-1").unwrap_or_else(|e| panic!("{e}"));
        let mut view = PatientView::default();
        for recorded in ledger
            .read_stream(&patient, 1, usize::MAX)
            .unwrap_or_else(|e| panic!("{e}"))
        {
            assert!(view.apply(&recorded));
        }

        let bytes = stored(&view);
        let (read, encoded_len) = decode_view(&bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read, view);
        let plain = bincode::serde::encode_to_vec(&view, bincode::config::standard())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            encoded_len * 5 < plain.len() * 4,
            "{encoded_len} bytes with each provenance once, {} with copies",
            plain.len()
        );
        let series = read
            .plan
            .series
            .values()
            .next()
            .unwrap_or_else(|| panic!("a series of readings"));
        assert_eq!(series.len(), 40);
        for entry in series {
            let audit = read
                .audit
                .iter()
                .find(|a| a.position() == entry.recorded.position)
                .unwrap_or_else(|| panic!("the reading's audit entry"));
            assert!(audit.provenance.shares(&entry.recorded));
        }

        // A notification's text is its event's sentence in the audit trail, shared too.
        assert!(!read.notifications.is_empty());
        for notification in &read.notifications {
            let audit = read
                .audit
                .iter()
                .find(|a| a.position() == notification.position)
                .unwrap_or_else(|| panic!("the notification's audit entry"));
            assert!(std::sync::Arc::ptr_eq(
                &audit.message,
                &notification.message
            ));
        }

        // Outside a stored view a provenance is its fields, as the JSON answers give it.
        let json =
            serde_json::to_value(&*read.audit[0].provenance).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(json["position"], 1);
        assert_eq!(json["actor"], "agb-01012345");
    }

    /// A stored reference to a provenance the view did not give before is damage, reported.
    #[test]
    fn a_provenance_referring_to_a_position_not_given_before_is_unreadable() {
        let patient = PatientId::parse("patient-1").unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        append(&ledger, "patient-1", true);
        let recorded = ledger
            .read_stream(&patient, 1, 1)
            .unwrap_or_else(|e| panic!("{e}"))
            .remove(0);
        let provenance = crate::Provenance::of(&recorded);
        // Written a second time in one view, the provenance is a reference; read alone, it
        // refers to nothing.
        let reference = crate::shared::writing(|| {
            bincode::serde::encode_to_vec(&provenance, bincode::config::standard()).and_then(|_| {
                bincode::serde::encode_to_vec(&provenance, bincode::config::standard())
            })
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let read: Result<(crate::Provenance, usize), _> = crate::shared::reading(|| {
            bincode::serde::decode_from_slice(&reference, bincode::config::standard())
        });
        let error = read.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("a provenance refers to 1"), "{error}");
    }
}
