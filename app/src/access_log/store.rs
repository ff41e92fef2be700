//! The access log's storage: its own sled database in `<data>/access-log/db`, the hash chain
//! over the stored entries, the patient index, and verification (`docs/access-log.md`).
//!
//! The entries themselves are appended to a file of their own, `<data>/access-log/entries`: a
//! group of up to [`GROUP`] consecutive frames written together (`0xFF` ‖ for each, its length
//! (u32 BE) ‖ the frame), one after the other. sled keeps where each group is and the patient
//! index. Keys: `e` ‖ first position (u64 big-endian) → where the group is in the file (`0xFE` ‖
//! offset (u64 BE) ‖ length (u32 BE)), or, as earlier builds wrote them, the group itself or one
//! lone frame; `p` ‖ patient id ‖ `0x00` ‖ first position → the positions (u64 BE each) of that
//! patient's entries in the group, or nothing for the lone entry at that position (the patient
//! index, derived). An entry is written once, at the end of a file, instead of being copied
//! through sled's log and pages: sled's work per batch is a few small inserts. A write appends
//! the groups and `fdatasync`s the file before sled records where they are, so sled never
//! points past what is durable; bytes after the last group sled names (a crash between the
//! two) are cut off when the store opens. A frame has the ledger's layout
//! (`careledger_core::chain::encode_frame`): version, entry format, previous hash, hash, entry
//! bytes; the hash is [`entry_hash`], BLAKE3 under the access log's own tag.

use std::fs::File;
use std::path::{Path, PathBuf};

use careledger_core::chain::{encode_frame, Frame};
use careledger_core::record::Hash;

use super::entry::{AccessEntry, AccessFilter, ENTRY_FORMAT_VERSION};
use crate::error::AppError;

/// The domain-separation tag that starts every hashed access log entry.
pub const ACCESS_HASH_TAG: &[u8; 21] = b"careledger/access/v1\0";

const ENTRY: u8 = b'e';
const BY_PATIENT: u8 = b'p';
/// sled's page cache for the access log: entries are written far more than read back, and
/// sled's default (1 GiB) would let the cache grow with the log.
pub const CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// Entries stored together in one value at most.
pub const GROUP: usize = 64;
/// The first byte of a group of frames (a frame starts with its version, never this).
const GROUP_MARK: u8 = 0xFF;
/// The first byte of where a group is in the entries file (offset, length).
const PLACE_MARK: u8 = 0xFE;
/// The file the groups of entries are appended to, in the store's directory.
const ENTRIES_FILE: &str = "entries";

/// Where a group is in the entries file, as sled stores it.
fn place_value(offset: u64, len: u32) -> [u8; 13] {
    let mut value = [0; 13];
    value[0] = PLACE_MARK;
    value[1..9].copy_from_slice(&offset.to_be_bytes());
    value[9..].copy_from_slice(&len.to_be_bytes());
    value
}

/// The offset and length a stored value names, when it names a place in the entries file.
fn place_of(value: &[u8]) -> Option<(u64, u32)> {
    let (&PLACE_MARK, rest) = value.split_first()? else {
        return None;
    };
    let offset = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let len = u32::from_be_bytes(rest.get(8..12)?.try_into().ok()?);
    Some((offset, len))
}

/// The frames of a stored value whose key names `first`: (position, frame) each.
fn frames_in(first: u64, value: &[u8]) -> Option<Vec<(u64, &[u8])>> {
    let Some((&GROUP_MARK, mut rest)) = value.split_first() else {
        return Some(vec![(first, value)]);
    };
    let mut frames = Vec::new();
    let mut position = first;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return None;
        }
        frames.push((position, &tail[..len]));
        rest = &tail[len..];
        position += 1;
    }
    Some(frames)
}

/// The frame at `position` in the group whose first position is `first`, if it holds it.
fn frame_in(first: u64, group: &[u8], position: u64) -> Option<Vec<u8>> {
    frames_in(first, group)?
        .into_iter()
        .find(|(p, _)| *p == position)
        .map(|(_, frame)| frame.to_vec())
}

/// Positions of a patient index value under the key of `first`.
fn indexed_positions(first: u64, value: &[u8]) -> Vec<u64> {
    if value.is_empty() {
        return vec![first];
    }
    value
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}

/// The hash of the entry at `position` with `prev_hash` before it and these entry bytes.
pub fn entry_hash(position: u64, format_version: u16, prev_hash: &Hash, entry: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(ACCESS_HASH_TAG);
    hasher.update(&position.to_be_bytes());
    hasher.update(&format_version.to_be_bytes());
    hasher.update(&prev_hash.0);
    hasher.update(entry);
    Hash(*hasher.finalize().as_bytes())
}

/// The key of the entry at `position`.
pub fn entry_key(position: u64) -> [u8; 9] {
    let mut key = [ENTRY; 9];
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

fn patient_key(patient: &str, position: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(patient.len() + 10);
    key.push(BY_PATIENT);
    key.extend_from_slice(patient.as_bytes());
    key.push(0);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// One entry framed and hashed, ready to be written.
pub(crate) struct Framed {
    pub(crate) position: u64,
    pub(crate) hash: Hash,
    pub(crate) frame: Vec<u8>,
    pub(crate) patient: Option<String>,
}

/// Frames `entry` at `position` after `prev_hash`.
pub(crate) fn frame(position: u64, prev_hash: &Hash, entry: &AccessEntry) -> Framed {
    let bytes = entry.encode();
    let hash = entry_hash(position, ENTRY_FORMAT_VERSION, prev_hash, &bytes);
    Framed {
        position,
        hash,
        frame: encode_frame(ENTRY_FORMAT_VERSION, prev_hash, &hash, &bytes),
        patient: entry.patient.clone(),
    }
}

/// One stored entry as read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntry {
    /// Its position (1 is the first).
    pub position: u64,
    /// Its hash as stored.
    pub hash: Hash,
    /// The entry.
    pub entry: AccessEntry,
}

/// What verifying the access log found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessVerifyReport {
    /// Entries verified before the first problem (all of them when there is none).
    pub verified: u64,
    /// The hash of the last entry verified ([`Hash::ZERO`] when none).
    pub head_hash: Hash,
    /// The first problem, naming its position; `None` when the log is intact.
    pub problem: Option<AccessProblem>,
}

/// The first thing wrong in the access log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccessProblem {
    /// The stored bytes do not hash to the stored hash (an entry was changed).
    #[error("access log position {position}: the stored entry does not hash to its stored hash (changed after it was written)")]
    HashMismatch {
        /// Where.
        position: u64,
    },
    /// The previous hash stored in a frame is not the hash of the entry before it.
    #[error("access log position {position}: its previous hash is not the hash of position {}", .position - 1)]
    BrokenLink {
        /// Where.
        position: u64,
    },
    /// A position is missing: the next stored one is later.
    #[error("access log position {position} is missing (the next stored entry is at {found})")]
    Gap {
        /// The missing position.
        position: u64,
        /// The next stored position.
        found: u64,
    },
    /// The frame or its entry cannot be read.
    #[error("access log position {position}: the stored frame cannot be read ({what})")]
    Undecodable {
        /// Where.
        position: u64,
        /// What is wrong.
        what: String,
    },
    /// The patient index names an entry that does not name that patient, or misses one.
    #[error("access log position {position}: the patient index disagrees with the entry")]
    IndexWrong {
        /// Where.
        position: u64,
    },
}

/// The access log's entries file and sled database.
pub struct AccessStore {
    dir: PathBuf,
    db: sled::Db,
    data_file: File,
    entries: File,
    /// Where the next group goes in the entries file: the end of the last one sled names.
    end: parking_lot::Mutex<u64>,
}

fn store_error(context: &'static str) -> impl Fn(sled::Error) -> AppError {
    move |e| AppError::Store {
        context,
        detail: e.to_string(),
    }
}

fn io_error(context: &'static str) -> impl Fn(std::io::Error) -> AppError {
    move |e| AppError::Store {
        context,
        detail: e.to_string(),
    }
}

impl AccessStore {
    /// Opens (or creates) the database in `dir`, with sled's page cache of [`CACHE_BYTES`].
    pub fn open(dir: &Path) -> Result<Self, AppError> {
        Self::open_with_cache(dir, CACHE_BYTES)
    }

    /// Opens (or creates) the database in `dir`, with sled's page cache of `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, AppError> {
        std::fs::create_dir_all(dir).map_err(io_error("creating the access log directory"))?;
        // sled releases its lock a moment after a close; a reopen right after waits for it.
        let mut attempts = 0;
        let db = loop {
            let config = sled::Config::new()
                .path(dir)
                .flush_every_ms(None)
                .cache_capacity(cache_bytes);
            match config.open() {
                Ok(db) => break db,
                Err(e) => match careledger_core::storage::open_error(dir, e) {
                    careledger_core::StorageError::InUse { .. } if attempts < 50 => {
                        attempts += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    e @ careledger_core::StorageError::InUse { .. } => {
                        return Err(AppError::InUse(e.to_string()))
                    }
                    // A snapshot sled left unfinished is removed and the open tried again.
                    _ if careledger_core::storage::clear_unfinished_snapshots(dir) => {}
                    e => {
                        return Err(AppError::Store {
                            context: "opening the access log",
                            detail: e.to_string(),
                        })
                    }
                },
            }
        };
        let data_file =
            File::open(dir.join("db")).map_err(io_error("opening the access log's data file"))?;
        let entries = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(ENTRIES_FILE))
            .map_err(io_error("opening the access log's entries file"))?;
        let last = db
            .range(entry_key(0)..=entry_key(u64::MAX))
            .next_back()
            .transpose()
            .map_err(store_error("reading the access log's head"))?;
        let end = last
            .and_then(|(_, value)| place_of(&value))
            .map_or(0, |(offset, len)| offset + u64::from(len));
        let len = entries
            .metadata()
            .map_err(io_error("reading the access log's entries file"))?
            .len();
        if len > end {
            // Appended and synced, but the write ended before sled recorded where: never
            // acknowledged to the writer, cut off so that the next group starts at `end`.
            entries
                .set_len(end)
                .and_then(|()| entries.sync_data())
                .map_err(io_error(
                    "cutting an unrecorded tail off the access log's entries",
                ))?;
        }
        // Shorter than `end` is damage: reads and verification name the groups it lost.
        Ok(Self {
            dir: dir.to_owned(),
            db,
            data_file,
            entries,
            end: parking_lot::Mutex::new(end),
        })
    }

    /// The group of frames a stored value holds or names in the entries file.
    fn group<'a>(&self, value: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, String> {
        use std::os::unix::fs::FileExt as _;
        let Some((offset, len)) = place_of(value) else {
            return Ok(std::borrow::Cow::Borrowed(value));
        };
        let mut bytes = vec![0; len as usize];
        self.entries
            .read_exact_at(&mut bytes, offset)
            .map_err(|e| {
                format!("the entries file holds no {len} bytes at offset {offset} ({e})")
            })?;
        Ok(std::borrow::Cow::Owned(bytes))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last stored position and its hash ((0, zero) when empty).
    pub fn head(&self) -> Result<(u64, Hash), AppError> {
        let last = self
            .db
            .range(entry_key(0)..=entry_key(u64::MAX))
            .next_back()
            .transpose()
            .map_err(store_error("reading the access log's head"))?;
        match last {
            None => Ok((0, Hash::ZERO)),
            Some((key, value)) => {
                let malformed = |detail: String| AppError::Store {
                    context: "reading the access log's head",
                    detail,
                };
                let first =
                    position_of(&key).ok_or_else(|| malformed("a malformed entry key".into()))?;
                let group = self.group(&value).map_err(|e| {
                    malformed(format!("the group at position {first} cannot be read: {e}"))
                })?;
                let (position, frame) = frames_in(first, &group)
                    .and_then(|frames| frames.last().copied())
                    .ok_or_else(|| {
                        malformed(format!("the group at position {first} cannot be read"))
                    })?;
                let frame = Frame::parse(frame).ok_or_else(|| {
                    malformed(format!("the frame at position {position} cannot be read"))
                })?;
                Ok((position, frame.hash))
            }
        }
    }

    /// Writes `framed` and the patient index in one atomic batch, then makes it durable: sled
    /// flush, then `fdatasync` of its data file.
    pub(crate) fn write(&self, framed: &[Framed]) -> Result<(), AppError> {
        use std::os::unix::fs::FileExt as _;
        let mut end = self.end.lock();
        let size: usize = framed.iter().map(|f| f.frame.len() + 4).sum();
        let mut bytes = Vec::with_capacity(size + framed.len().div_ceil(GROUP));
        let mut batch = sled::Batch::default();
        for group in framed.chunks(GROUP) {
            let first = group[0].position;
            let start = bytes.len();
            bytes.push(GROUP_MARK);
            let mut by_patient: std::collections::BTreeMap<&str, Vec<u8>> = Default::default();
            for f in group {
                bytes.extend_from_slice(&(f.frame.len() as u32).to_be_bytes());
                bytes.extend_from_slice(&f.frame);
                if let Some(patient) = &f.patient {
                    let positions = by_patient.entry(patient).or_default();
                    positions.extend_from_slice(&f.position.to_be_bytes());
                }
            }
            let len = u32::try_from(bytes.len() - start).map_err(|_| {
                AppError::Internal("a group of access log entries over 4 GiB".into())
            })?;
            batch.insert(
                &entry_key(first)[..],
                &place_value(*end + start as u64, len)[..],
            );
            for (patient, positions) in by_patient {
                batch.insert(patient_key(patient, first), positions);
            }
        }
        // At the end sled names, whatever a failed attempt left there: a retry writes over it.
        self.entries
            .write_all_at(&bytes, *end)
            .and_then(|()| self.entries.sync_data())
            .map_err(io_error("writing the access log's entries"))?;
        self.db
            .apply_batch(batch)
            .map_err(store_error("writing the access log"))?;
        self.sync()?;
        *end += bytes.len() as u64;
        Ok(())
    }

    fn sync(&self) -> Result<(), AppError> {
        self.db
            .flush()
            .map_err(store_error("flushing the access log"))?;
        self.data_file
            .sync_data()
            .map_err(io_error("syncing the access log"))
    }

    /// Copies the entries up to `through` (durable: the log is append-only and keyed by
    /// position, so they never change) with their patient index into a new store in `dir`,
    /// synced; later entries, written meanwhile, are left out.
    pub fn copy_through(&self, dir: &Path, through: u64) -> Result<(), AppError> {
        use std::os::unix::fs::FileExt as _;
        let target = AccessStore::open(dir)?;
        let mut batch = sled::Batch::default();
        // The groups go to the copy's entries file, one after the other, as the writer puts
        // them; sled names their new places.
        let mut end = 0u64;
        for item in self.db.iter() {
            let (key, value) = item.map_err(store_error("reading the access log to copy it"))?;
            let first = match key.as_ref() {
                [ENTRY, ..] => position_of(&key),
                [BY_PATIENT, .., _, _, _, _, _, _, _, _] => {
                    key[key.len() - 8..].try_into().ok().map(u64::from_be_bytes)
                }
                _ => None,
            };
            if first.is_none_or(|first| first > through) {
                continue;
            }
            if key.first() == Some(&ENTRY) {
                let group = self.group(&value).map_err(|detail| AppError::Store {
                    context: "reading the access log to copy it",
                    detail,
                })?;
                let len = u32::try_from(group.len()).map_err(|_| {
                    AppError::Internal("a group of access log entries over 4 GiB".into())
                })?;
                target
                    .entries
                    .write_all_at(&group, end)
                    .map_err(io_error("writing the access log's copy"))?;
                batch.insert(key, &place_value(end, len)[..]);
                end += u64::from(len);
            } else {
                batch.insert(key, value);
            }
        }
        target
            .entries
            .sync_data()
            .map_err(io_error("writing the access log's copy"))?;
        target
            .db
            .apply_batch(batch)
            .map_err(store_error("writing the access log's copy"))?;
        target.sync()
    }

    /// The entry at `position`, as stored (the test and the CLI's tools read it).
    pub fn frame_at(&self, position: u64) -> Result<Option<Vec<u8>>, AppError> {
        let Some((first, group)) = self.group_at(position)? else {
            return Ok(None);
        };
        Ok(frame_in(first, &group, position))
    }

    /// The group of frames that holds `position`: its first position and its bytes.
    fn group_at(&self, position: u64) -> Result<Option<(u64, Vec<u8>)>, AppError> {
        let Some((key, value)) = self
            .db
            .range(entry_key(0)..=entry_key(position))
            .next_back()
            .transpose()
            .map_err(store_error("reading the access log"))?
        else {
            return Ok(None);
        };
        let first = position_of(&key).unwrap_or(0);
        let group = self.group(&value).map_err(|detail| AppError::Store {
            context: "reading the access log",
            detail,
        })?;
        Ok(Some((first, group.into_owned())))
    }

    /// The stored values from the one holding `position` on: (first position, value).
    fn groups_from(
        &self,
        position: u64,
    ) -> Result<impl Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>, AppError> {
        let start = self
            .db
            .range(entry_key(0)..=entry_key(position))
            .next_back()
            .transpose()
            .map_err(store_error("reading the access log"))?
            .map_or(entry_key(position), |(key, _)| {
                entry_key(position_of(&key).unwrap_or(position))
            });
        Ok(self.db.range(start..=entry_key(u64::MAX)))
    }

    /// The entries after `after`, up to `through`, that pass `filter`, at most `limit`; and
    /// whether more may follow. With a patient, only the patient index's positions are read.
    pub fn list(
        &self,
        filter: &AccessFilter,
        after: u64,
        through: u64,
        limit: usize,
    ) -> Result<(Vec<StoredEntry>, bool), AppError> {
        let read = |position: u64, frame: &[u8]| -> Result<StoredEntry, AppError> {
            decode(position, frame).map_err(|p| AppError::Store {
                context: "reading the access log",
                detail: p.to_string(),
            })
        };
        let mut found = Vec::new();
        if after >= through {
            return Ok((found, false));
        }
        if let Some(patient) = &filter.patient {
            // A patient's entries of one group are read from one reading of the group.
            let mut last: Option<(u64, Vec<u8>)> = None;
            // A group holding a position after `after` starts at most GROUP - 1 before it.
            let from = (after + 1).saturating_sub(GROUP as u64 - 1);
            let start = patient_key(patient.as_str(), from);
            let end = patient_key(patient.as_str(), through);
            for item in self.db.range(start..=end) {
                let (key, value) = item.map_err(store_error("reading the access log"))?;
                let first = u64::from_be_bytes(
                    key[key.len() - 8..]
                        .try_into()
                        .map_err(|_| AppError::Internal("a malformed index key".into()))?,
                );
                for position in indexed_positions(first, &value) {
                    if position <= after || position > through {
                        continue;
                    }
                    let holds = |(first, group): &(u64, Vec<u8>)| frame_in(*first, group, position);
                    let mut frame = last.as_ref().and_then(holds);
                    if frame.is_none() {
                        last = self.group_at(position)?;
                        frame = last.as_ref().and_then(holds);
                    }
                    let Some(frame) = frame else {
                        continue;
                    };
                    let stored = read(position, &frame)?;
                    if filter.admits(&stored.entry) {
                        if found.len() == limit {
                            return Ok((found, true));
                        }
                        found.push(stored);
                    }
                }
            }
            return Ok((found, false));
        }
        for item in self.groups_from(after + 1)? {
            let (key, value) = item.map_err(store_error("reading the access log"))?;
            let first = position_of(&key).unwrap_or(0);
            let group = self.group(&value).map_err(|detail| AppError::Store {
                context: "reading the access log",
                detail,
            })?;
            let frames = frames_in(first, &group).ok_or_else(|| AppError::Store {
                context: "reading the access log",
                detail: format!("the group at position {first} cannot be read"),
            })?;
            for (position, frame) in frames {
                if position <= after {
                    continue;
                }
                if position > through {
                    return Ok((found, false));
                }
                let stored = read(position, frame)?;
                if filter.admits(&stored.entry) {
                    if found.len() == limit {
                        return Ok((found, true));
                    }
                    found.push(stored);
                }
            }
        }
        Ok((found, false))
    }

    /// Whether the patient index lists `position` under `patient`.
    fn indexed(&self, patient: &str, position: u64) -> Result<bool, AppError> {
        let from = position.saturating_sub(GROUP as u64 - 1);
        for item in self
            .db
            .range(patient_key(patient, from)..=patient_key(patient, position))
        {
            let (key, value) = item.map_err(store_error("verifying the access log"))?;
            let first = u64::from_be_bytes(key[key.len() - 8..].try_into().unwrap_or([0; 8]));
            if indexed_positions(first, &value).contains(&position) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Verifies every stored entry: gapless positions from 1, each frame's hash over its stored
    /// bytes, each link to the entry before, each entry readable and its patient indexed; and no
    /// index position without its entry. Stops at the first problem.
    pub fn verify(&self) -> Result<AccessVerifyReport, AppError> {
        let mut report = AccessVerifyReport {
            verified: 0,
            head_hash: Hash::ZERO,
            problem: None,
        };
        let mut indexed = 0u64;
        for item in self.db.range(entry_key(0)..=entry_key(u64::MAX)) {
            let (key, value) = item.map_err(store_error("verifying the access log"))?;
            let first = position_of(&key).unwrap_or(0);
            let group = match self.group(&value) {
                Ok(group) => group,
                Err(what) => {
                    report.problem = Some(AccessProblem::Undecodable {
                        position: first,
                        what,
                    });
                    return Ok(report);
                }
            };
            let Some(frames) = frames_in(first, &group) else {
                report.problem = Some(AccessProblem::Undecodable {
                    position: first,
                    what: "a group of frames that ends early".into(),
                });
                return Ok(report);
            };
            for (position, frame) in frames {
                let expected = report.verified + 1;
                if position != expected {
                    report.problem = Some(AccessProblem::Gap {
                        position: expected,
                        found: position,
                    });
                    return Ok(report);
                }
                let stored = match check(position, &report.head_hash, frame) {
                    Ok(stored) => stored,
                    Err(problem) => {
                        report.problem = Some(problem);
                        return Ok(report);
                    }
                };
                if let Some(patient) = &stored.entry.patient {
                    indexed += 1;
                    if !self.indexed(patient, position)? {
                        report.problem = Some(AccessProblem::IndexWrong { position });
                        return Ok(report);
                    }
                }
                report.verified = position;
                report.head_hash = stored.hash;
            }
        }
        let mut listed = 0u64;
        for item in self.db.scan_prefix([BY_PATIENT]) {
            let (key, value) = item.map_err(store_error("verifying the access log"))?;
            let first = u64::from_be_bytes(key[key.len() - 8..].try_into().unwrap_or([0; 8]));
            let patient = &key[1..key.len() - 9];
            for position in indexed_positions(first, &value) {
                listed += 1;
                let names = self
                    .frame_at(position)?
                    .and_then(|f| decode(position, &f).ok())
                    .is_some_and(|s| s.entry.patient.is_some_and(|p| patient == p.as_bytes()));
                if !names {
                    report.problem = Some(AccessProblem::IndexWrong { position });
                    return Ok(report);
                }
            }
        }
        if listed != indexed && report.problem.is_none() {
            report.problem = Some(AccessProblem::IndexWrong {
                position: report.verified,
            });
        }
        Ok(report)
    }

    /// Overwrites the stored frame at `position` (tamper tests only: nothing else ever writes
    /// a stored entry again).
    #[doc(hidden)]
    pub fn overwrite_for_tests(&self, position: u64, frame: &[u8]) -> Result<(), AppError> {
        let (key, value) = self
            .db
            .range(entry_key(0)..=entry_key(position))
            .next_back()
            .transpose()
            .map_err(store_error("reading the access log"))?
            .ok_or_else(|| AppError::Internal(format!("no entry at {position}")))?;
        let first = position_of(&key).unwrap_or(0);
        let group = self.group(&value).map_err(AppError::Internal)?;
        let frames = frames_in(first, &group)
            .ok_or_else(|| AppError::Internal(format!("no group at {first}")))?;
        let mut rewritten = vec![GROUP_MARK];
        for (p, f) in frames {
            let f = if p == position { frame } else { f };
            rewritten.extend_from_slice(&(f.len() as u32).to_be_bytes());
            rewritten.extend_from_slice(f);
        }
        use std::os::unix::fs::FileExt as _;
        match place_of(&value) {
            // In place when it fits, as a tamperer with the file would.
            Some((offset, len)) if rewritten.len() == len as usize => self
                .entries
                .write_all_at(&rewritten, offset)
                .and_then(|()| self.entries.sync_data())
                .map_err(io_error("writing the access log's entries")),
            // Else at the end, and sled names the new place.
            Some(_) => {
                let mut end = self.end.lock();
                self.entries
                    .write_all_at(&rewritten, *end)
                    .and_then(|()| self.entries.sync_data())
                    .map_err(io_error("writing the access log's entries"))?;
                let place = place_value(*end, rewritten.len() as u32);
                self.db
                    .insert(key, &place[..])
                    .map_err(store_error("writing the access log"))?;
                self.sync()?;
                *end += rewritten.len() as u64;
                Ok(())
            }
            None => {
                self.db
                    .insert(key, rewritten)
                    .map_err(store_error("writing the access log"))?;
                self.sync()
            }
        }
    }
}

fn position_of(key: &[u8]) -> Option<u64> {
    match key {
        [ENTRY, rest @ ..] => rest.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// Reads a stored frame without checking its link.
fn decode(position: u64, value: &[u8]) -> Result<StoredEntry, AccessProblem> {
    let frame = Frame::parse(value).ok_or_else(|| AccessProblem::Undecodable {
        position,
        what: "too short, or an unknown frame version".into(),
    })?;
    let entry = AccessEntry::decode(frame.format_version, frame.record).ok_or_else(|| {
        AccessProblem::Undecodable {
            position,
            what: format!("not an entry of format {}", frame.format_version),
        }
    })?;
    Ok(StoredEntry {
        position,
        hash: frame.hash,
        entry,
    })
}

/// Checks one stored frame at `position` after `prev` and reads it.
fn check(position: u64, prev: &Hash, value: &[u8]) -> Result<StoredEntry, AccessProblem> {
    let frame = Frame::parse(value).ok_or_else(|| AccessProblem::Undecodable {
        position,
        what: "too short, or an unknown frame version".into(),
    })?;
    let computed = entry_hash(
        position,
        frame.format_version,
        &frame.prev_hash,
        frame.record,
    );
    if computed != frame.hash {
        return Err(AccessProblem::HashMismatch { position });
    }
    if frame.prev_hash != *prev {
        return Err(AccessProblem::BrokenLink { position });
    }
    decode(position, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::entry::{AccessReason, Who};
    use careledger_core::ids::PatientId;
    use careledger_core::record::Timestamp;

    fn entry(status: u16, patient: Option<&str>) -> AccessEntry {
        AccessEntry {
            recorded_at: Timestamp::from_micros(1_700_000_000_000_000 + i64::from(status)),
            who: Who::Actor {
                id: "gp-1".into(),
                role: "gp".into(),
                organisation: None,
            },
            patient: patient.map(str::to_owned),
            method: "GET".into(),
            route: "/patients/{patient}/plan".into(),
            resource: "/patients/999990007/plan".into(),
            status,
            client: "127.0.0.1".into(),
            via: None,
            user_agent: Some("test".into()),
            reason: AccessReason::CareTeam,
        }
    }

    fn write(store: &AccessStore, entries: &[AccessEntry]) -> Hash {
        let mut prev = Hash::ZERO;
        let framed: Vec<Framed> = entries
            .iter()
            .zip(1..)
            .map(|(e, position)| {
                let f = frame(position, &prev, e);
                prev = f.hash;
                f
            })
            .collect();
        store.write(&framed).unwrap();
        prev
    }

    #[test]
    fn a_written_chain_verifies_and_lists_one_patient_s_entries_by_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(dir.path()).unwrap();
        let head = write(
            &store,
            &[
                entry(200, Some("999990007")),
                entry(403, Some("999990019")),
                entry(200, None),
                entry(401, Some("999990007")),
            ],
        );
        assert_eq!(store.head().unwrap(), (4, head));
        let report = store.verify().unwrap();
        assert_eq!(
            (report.verified, report.head_hash, report.problem),
            (4, head, None)
        );
        let filter = AccessFilter {
            patient: Some(PatientId::parse("999990007").unwrap()),
            ..AccessFilter::default()
        };
        let (found, more) = store.list(&filter, 0, 4, 10).unwrap();
        let positions: Vec<u64> = found.iter().map(|s| s.position).collect();
        assert_eq!((positions, more), (vec![1, 4], false));
        let (page, more) = store.list(&AccessFilter::default(), 1, 4, 2).unwrap();
        assert_eq!(page.len(), 2);
        assert!(more);
        assert_eq!(page[0].entry.status, 403);
    }

    /// Frames `entries` after `prev` from position `from` on.
    fn framed_from(from: u64, prev: Hash, entries: &[AccessEntry]) -> (Vec<Framed>, Hash) {
        let mut prev = prev;
        let framed = entries
            .iter()
            .zip(from..)
            .map(|(e, position)| {
                let f = frame(position, &prev, e);
                prev = f.hash;
                f
            })
            .collect();
        (framed, prev)
    }

    #[test]
    fn entries_go_to_the_entries_file_and_sled_names_only_where() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(dir.path()).unwrap();
        let entries: Vec<AccessEntry> = (0..150)
            .map(|n| entry(200 + n, Some("999990007")))
            .collect();
        let head = write(&store, &entries);
        let file_len = std::fs::metadata(dir.path().join(ENTRIES_FILE))
            .unwrap()
            .len();
        let framed_len: u64 = framed_from(1, Hash::ZERO, &entries)
            .0
            .iter()
            .map(|f| f.frame.len() as u64 + 4)
            .sum();
        // Three groups (64, 64, 22), each with its mark.
        assert_eq!(file_len, framed_len + 3);
        for item in store.db.range(entry_key(0)..=entry_key(u64::MAX)) {
            let (_, value) = item.unwrap();
            assert!(
                place_of(&value).is_some(),
                "sled holds a place, not the frames"
            );
        }
        drop(store);
        let store = AccessStore::open(dir.path()).unwrap();
        assert_eq!(store.head().unwrap(), (150, head));
        assert_eq!(store.verify().unwrap().problem, None);
    }

    #[test]
    fn bytes_after_the_last_recorded_group_are_cut_off_on_open_and_writing_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(dir.path()).unwrap();
        let head = write(&store, &[entry(200, Some("999990007")), entry(200, None)]);
        drop(store);
        // A crash after the entries file was synced and before sled recorded the group.
        let path = dir.path().join(ENTRIES_FILE);
        let recorded = std::fs::metadata(&path).unwrap().len();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, &[0xFF, 0, 0, 1, 0, 7, 7, 7]).unwrap();
        drop(file);
        let store = AccessStore::open(dir.path()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), recorded);
        assert_eq!(store.head().unwrap(), (2, head));
        let (framed, head) = framed_from(3, head, &[entry(404, Some("999990019"))]);
        store.write(&framed).unwrap();
        let report = store.verify().unwrap();
        assert_eq!(
            (report.verified, report.head_hash, report.problem),
            (3, head, None)
        );
    }

    #[test]
    fn groups_stored_in_sled_by_earlier_builds_still_read_and_verify_before_new_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(dir.path()).unwrap();
        // As an earlier build wrote them: the group itself in sled, and a lone frame.
        let (old, head) = framed_from(
            1,
            Hash::ZERO,
            &[
                entry(200, Some("999990007")),
                entry(201, None),
                entry(202, None),
            ],
        );
        let mut group = vec![GROUP_MARK];
        for f in &old[..2] {
            group.extend_from_slice(&(f.frame.len() as u32).to_be_bytes());
            group.extend_from_slice(&f.frame);
        }
        store.db.insert(entry_key(1), group).unwrap();
        store.db.insert(entry_key(3), old[2].frame.clone()).unwrap();
        store
            .db
            .insert(patient_key("999990007", 1), &1u64.to_be_bytes()[..])
            .unwrap();
        drop(store);
        let store = AccessStore::open(dir.path()).unwrap();
        assert_eq!(store.head().unwrap(), (3, head));
        let (new, head) = framed_from(4, head, &[entry(203, Some("999990007"))]);
        store.write(&new).unwrap();
        let report = store.verify().unwrap();
        assert_eq!(
            (report.verified, report.head_hash, report.problem),
            (4, head, None)
        );
        let filter = AccessFilter {
            patient: Some(PatientId::parse("999990007").unwrap()),
            ..AccessFilter::default()
        };
        let (found, _) = store.list(&filter, 0, 4, 10).unwrap();
        let positions: Vec<u64> = found.iter().map(|s| s.position).collect();
        assert_eq!(positions, vec![1, 4]);
    }

    #[test]
    fn an_entries_file_that_lost_its_tail_is_named_by_verification_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(dir.path()).unwrap();
        let entries: Vec<AccessEntry> = (0..70).map(|n| entry(200 + n, None)).collect();
        write(&store, &entries);
        let path = dir.path().join(ENTRIES_FILE);
        let len = std::fs::metadata(&path).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let report = store.verify().unwrap();
        assert_eq!(report.verified, 64, "the first group stands");
        match report.problem {
            Some(AccessProblem::Undecodable { position, what }) => {
                assert_eq!(position, 65);
                assert!(what.contains("entries file"), "{what}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// The layout of `docs/access-log.md`, written out by hand: the frame and hash of an entry.
    #[test]
    fn an_entry_is_framed_and_hashed_as_the_format_document_says() {
        let entry = AccessEntry {
            recorded_at: Timestamp::from_micros(1),
            who: Who::Unauthenticated,
            patient: None,
            method: "GET".into(),
            route: "/events".into(),
            resource: "/x".into(),
            status: 200,
            client: "unknown".into(),
            via: None,
            user_agent: None,
            reason: AccessReason::NotEstablished,
        };
        let mut bytes = vec![0x02, 0x00, 0x00, 3];
        bytes.extend(b"GET");
        bytes.push(7);
        bytes.extend(b"/events");
        bytes.push(2);
        bytes.extend(b"/x");
        bytes.push(200);
        bytes.push(7);
        bytes.extend(b"unknown");
        bytes.extend([0x00, 0x00, 0x00]);
        assert_eq!(entry.encode(), bytes);
        let mut hashed = b"careledger/access/v1\0".to_vec();
        hashed.extend(1u64.to_be_bytes());
        hashed.extend(1u16.to_be_bytes());
        hashed.extend([0u8; 32]);
        hashed.extend(&bytes);
        let hash = blake3::hash(&hashed);
        let framed = frame(1, &Hash::ZERO, &entry);
        assert_eq!(framed.hash.0, *hash.as_bytes());
        let mut expected = vec![0x01, 0x00, 0x01];
        expected.extend([0u8; 32]);
        expected.extend(hash.as_bytes());
        expected.extend(&bytes);
        assert_eq!(framed.frame, expected);
    }

    #[test]
    fn a_changed_byte_is_named_at_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(dir.path()).unwrap();
        write(
            &store,
            &[entry(200, None), entry(200, None), entry(200, None)],
        );
        let mut frame = store.frame_at(2).unwrap().unwrap();
        let at = frame.len() - 3;
        frame[at] ^= 0x40;
        store.overwrite_for_tests(2, &frame).unwrap();
        let report = store.verify().unwrap();
        assert_eq!(report.verified, 1);
        assert_eq!(
            report.problem,
            Some(AccessProblem::HashMismatch { position: 2 })
        );
    }
}
