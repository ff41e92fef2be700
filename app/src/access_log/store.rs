//! The access log's storage: its own sled database in `<data>/access-log/db`, the hash chain
//! over the stored entries, the patient index, and verification (`docs/access-log.md`).
//!
//! The entries themselves are appended to a file of their own, `<data>/access-log/entries`: a
//! group of up to [`GROUP`] consecutive frames written together (`0xFF` ‖ for each, its length
//! (u32 BE) ‖ the frame), one after the other. sled keeps where each group is and the patient
//! index. Keys: `e` ‖ first position (u64 big-endian) → where the group is in the file (`0xFE` ‖
//! offset (u64 BE) ‖ length (u32 BE)), or, as earlier builds wrote them, the group itself or one
//! lone frame; `q` ‖ patient id ‖ `0x00` ‖ last position → the positions (u64 BE each, ascending,
//! the last the key's) of that patient's entries in one commit (the patient index, derived: one
//! key per patient per commit, [`INDEX_RUN`] positions at most); as earlier builds wrote it, `p`
//! ‖ patient id ‖ `0x00` ‖ first position → the positions of that patient's entries in the
//! group starting there, or nothing for the lone entry at that position. An entry is written
//! once, at the end of a file, instead of being copied through sled's log and pages: sled's work
//! per commit is a few small inserts. Frames are encoded and hashed straight into the commit's
//! buffer, the bytes that go to the file ([`Commit`]). A write appends
//! the groups and `fdatasync`s the file before sled records where they are, so sled never
//! points past what is durable; bytes after the last group sled names (a crash between the
//! two) are cut off when the store opens. A frame has the ledger's layout
//! (`careledger_core::chain::encode_frame`): version, entry format, previous hash, hash, entry
//! bytes; the hash is [`entry_hash`], BLAKE3 under the access log's own tag.

use std::fs::File;
use std::path::{Path, PathBuf};

use careledger_core::chain::Frame;
use careledger_core::record::Hash;

use super::entry::{AccessEntry, AccessFilter, ENTRY_FORMAT_VERSION};
use crate::error::AppError;

/// The domain-separation tag that starts every hashed access log entry.
pub const ACCESS_HASH_TAG: &[u8; 21] = b"careledger/access/v1\0";

const ENTRY: u8 = b'e';
/// The patient index as earlier builds wrote it: one key per patient per group, by its first
/// position. Read, never written.
const BY_PATIENT_GROUP: u8 = b'p';
/// The patient index: one key per patient per commit, by its last position.
const BY_PATIENT: u8 = b'q';
/// Positions under one patient index key at most (4 KiB of value); a patient with more entries
/// in one commit gets a key per run of this many.
pub const INDEX_RUN: usize = 512;
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

/// Positions of a patient index value under a key of `at` (its first position in the
/// layout of earlier builds, its last in this one's): the u64s it holds, or, empty, `at`.
fn indexed_positions(at: u64, value: &[u8]) -> Vec<u64> {
    if value.is_empty() {
        return vec![at];
    }
    value
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
        .collect()
}

/// The patient and the position of a patient index key of either layout.
fn index_key_parts(key: &[u8]) -> Option<(&[u8], u64)> {
    let (rest, tail) = key.split_last_chunk::<8>()?;
    let (&0, patient) = rest.get(1..)?.split_last()? else {
        return None;
    };
    Some((patient, u64::from_be_bytes(*tail)))
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

/// A patient index key of `layout` ([`BY_PATIENT`], or [`BY_PATIENT_GROUP`] of earlier builds).
fn patient_key(layout: u8, patient: &str, position: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(patient.len() + 10);
    key.push(layout);
    key.extend_from_slice(patient.as_bytes());
    key.push(0);
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// One commit's entries, framed, chained and hashed straight into the bytes that go to the
/// entries file (groups of up to [`GROUP`] frames), with where each group starts and each
/// patient's positions: built once, written as often as a retry needs.
pub(crate) struct Commit<'a> {
    bytes: Vec<u8>,
    /// Each group's first position and where it starts in `bytes`.
    groups: Vec<(u64, usize)>,
    by_patient: std::collections::BTreeMap<&'a str, Vec<u64>>,
    /// The position the next entry gets.
    next: u64,
    head_hash: Hash,
}

impl<'a> Commit<'a> {
    /// A commit after the entry at `head` with hash `head_hash`, building in `buffer` (its
    /// contents dropped, its capacity kept: the writer hands the last commit's buffer back).
    pub(crate) fn new(head: u64, head_hash: Hash, mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        Commit {
            bytes: buffer,
            groups: Vec::new(),
            by_patient: Default::default(),
            next: head + 1,
            head_hash,
        }
    }

    /// Frames `entry` as the next position: its length, the frame's header, the entry's bytes
    /// encoded in place, and its hash over them written into the header.
    pub(crate) fn push(&mut self, entry: &'a AccessEntry) {
        use careledger_core::chain::{FRAME_VERSION, HEADER_LEN};
        let position = self.next;
        if self
            .groups
            .last()
            .is_none_or(|(first, _)| position - first == GROUP as u64)
        {
            self.groups.push((position, self.bytes.len()));
            self.bytes.push(GROUP_MARK);
        }
        let length_at = self.bytes.len();
        self.bytes.extend_from_slice(&[0; 4]);
        let frame_at = self.bytes.len();
        self.bytes.push(FRAME_VERSION);
        self.bytes
            .extend_from_slice(&ENTRY_FORMAT_VERSION.to_be_bytes());
        self.bytes.extend_from_slice(&self.head_hash.0);
        self.bytes.extend_from_slice(&[0; 32]);
        let entry_at = self.bytes.len();
        entry.encode_into(&mut self.bytes);
        let hash = entry_hash(
            position,
            ENTRY_FORMAT_VERSION,
            &self.head_hash,
            &self.bytes[entry_at..],
        );
        self.bytes[entry_at - 32..entry_at].copy_from_slice(&hash.0);
        debug_assert_eq!(entry_at - frame_at, HEADER_LEN);
        let frame_len = (self.bytes.len() - frame_at) as u32;
        self.bytes[length_at..frame_at].copy_from_slice(&frame_len.to_be_bytes());
        if let Some(patient) = &entry.patient {
            self.by_patient.entry(patient).or_default().push(position);
        }
        self.next += 1;
        self.head_hash = hash;
    }

    /// The last position framed (the head before it when none was).
    pub(crate) fn last(&self) -> u64 {
        self.next - 1
    }

    /// The hash of the last entry framed.
    pub(crate) fn head_hash(&self) -> Hash {
        self.head_hash
    }

    /// Its buffer back, for the next commit.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.bytes
    }

    /// Each group: its first position and its bytes.
    fn groups(&self) -> impl Iterator<Item = (u64, std::ops::Range<usize>)> + '_ {
        let ends = self
            .groups
            .iter()
            .skip(1)
            .map(|(_, start)| *start)
            .chain([self.bytes.len()]);
        self.groups
            .iter()
            .zip(ends)
            .map(|((first, start), end)| (*first, *start..end))
    }
}

/// The patient index entries of one patient's positions in one commit: a key per run of at
/// most [`INDEX_RUN`] positions, by its last.
fn index_entries<'a>(
    patient: &'a str,
    positions: &'a [u64],
) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a {
    positions.chunks(INDEX_RUN).map(move |run| {
        let last = run[run.len() - 1];
        let value: Vec<u8> = run.iter().flat_map(|p| p.to_be_bytes()).collect();
        (patient_key(BY_PATIENT, patient, last), value)
    })
}

/// Frames `entry` at `position` after `prev_hash` the plain way, as the format document
/// describes it: the reference [`Commit::push`] is held to.
#[cfg(test)]
fn frame(position: u64, prev_hash: &Hash, entry: &AccessEntry) -> (Hash, Vec<u8>) {
    let bytes = entry.encode();
    let hash = entry_hash(position, ENTRY_FORMAT_VERSION, prev_hash, &bytes);
    (
        hash,
        careledger_core::chain::encode_frame(ENTRY_FORMAT_VERSION, prev_hash, &hash, &bytes),
    )
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

/// Says whether the index is right about a patient (by id) and a position
/// ([`AccessStore::verify`]).
type PairCheck<'a, Id> = dyn FnMut(&Id, u64) -> Result<bool, AppError> + 'a;

/// What walking the access log's patient index found ([`AccessStore::verify`]).
#[derive(Debug, PartialEq, Eq)]
enum IndexWalk {
    /// Every entry as it should be: how many positions it lists.
    Listed(u64),
    /// A wrong entry at this position, or a malformed key (`None`).
    Wrong(Option<u64>),
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
        let config = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .cache_capacity(cache_bytes);
        let db = crate::error::open_store_db(&config, dir, "opening the access log")?;
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

    /// Writes `commit`: its groups appended to the entries file, `fdatasync`; then where each
    /// group is and the patient index (one key per patient) in one atomic sled batch, made
    /// durable (sled flush, then `fdatasync` of its data file).
    pub(crate) fn write(&self, commit: &Commit<'_>) -> Result<(), AppError> {
        use std::os::unix::fs::FileExt as _;
        let mut end = self.end.lock();
        let mut batch = sled::Batch::default();
        for (first, range) in commit.groups() {
            let len = u32::try_from(range.len()).map_err(|_| {
                AppError::Internal("a group of access log entries over 4 GiB".into())
            })?;
            batch.insert(
                &entry_key(first)[..],
                &place_value(*end + range.start as u64, len)[..],
            );
        }
        for (patient, positions) in &commit.by_patient {
            for (key, value) in index_entries(patient, positions) {
                batch.insert(key, value);
            }
        }
        // At the end sled names, whatever a failed attempt left there: a retry writes over it.
        self.entries
            .write_all_at(&commit.bytes, *end)
            .and_then(|()| self.entries.sync_data())
            .map_err(io_error("writing the access log's entries"))?;
        self.db
            .apply_batch(batch)
            .map_err(store_error("writing the access log"))?;
        self.sync()?;
        *end += commit.bytes.len() as u64;
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
            if key.first() == Some(&BY_PATIENT) {
                // A commit's positions, keyed by the last: those up to `through`, keyed by
                // the last of them (a commit after `through` has none).
                let Some((patient, last)) = index_key_parts(&key) else {
                    continue;
                };
                let kept: Vec<u64> = indexed_positions(last, &value)
                    .into_iter()
                    .filter(|p| *p <= through)
                    .collect();
                if let Some(&last) = kept.last() {
                    let patient = std::str::from_utf8(patient).unwrap_or_default();
                    let value: Vec<u8> = kept.iter().flat_map(|p| p.to_be_bytes()).collect();
                    batch.insert(patient_key(BY_PATIENT, patient, last), value);
                }
                continue;
            }
            let first = match key.as_ref() {
                [ENTRY, ..] => position_of(&key),
                [BY_PATIENT_GROUP, ..] => index_key_parts(&key).map(|(_, first)| first),
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
            for position in self.patient_positions(patient.as_str(), after, through) {
                let position = position?;
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

    /// The positions the patient index lists for `patient` after `after`, up to `through`,
    /// ascending: those of earlier builds' layout first (all older than this one's).
    fn patient_positions<'a>(
        &'a self,
        patient: &str,
        after: u64,
        through: u64,
    ) -> impl Iterator<Item = Result<u64, AppError>> + 'a {
        // A group holding a position after `after` starts at most GROUP - 1 before it.
        let from = (after + 1).saturating_sub(GROUP as u64 - 1);
        let by_group = self.db.range(
            patient_key(BY_PATIENT_GROUP, patient, from)
                ..=patient_key(BY_PATIENT_GROUP, patient, through),
        );
        // A commit's key is its last position: the first key at or after `after + 1` holds
        // the first position after `after`, or precedes it in the same commit.
        let by_commit = self.db.range(
            patient_key(BY_PATIENT, patient, after + 1)
                ..=patient_key(BY_PATIENT, patient, u64::MAX),
        );
        by_group
            .chain(by_commit)
            .flat_map(|item| {
                let positions = item
                    .map_err(store_error("reading the access log"))
                    .and_then(|(key, value)| {
                        let (_, at) = index_key_parts(&key)
                            .ok_or_else(|| AppError::Internal("a malformed index key".into()))?;
                        Ok(indexed_positions(at, &value))
                    });
                match positions {
                    Ok(positions) => positions.into_iter().map(Ok).collect::<Vec<_>>(),
                    Err(e) => vec![Err(e)],
                }
            })
            .filter(move |p| p.as_ref().map_or(true, |p| *p > after))
            .take_while(move |p| p.as_ref().map_or(true, |p| *p <= through))
    }

    /// Whether the patient index lists `position` under `patient`.
    fn indexed(&self, patient: &str, position: u64) -> Result<bool, AppError> {
        let next = self
            .patient_positions(patient, position - 1, position)
            .next()
            .transpose()?;
        Ok(next == Some(position))
    }

    /// Verifies every stored entry: gapless positions from 1, each frame's hash over its stored
    /// bytes, each link to the entry before, each entry readable and its patient indexed; and no
    /// index position without its entry. Stops at the first problem.
    ///
    /// The entries and the patient index are each read once, in key order, and compared by a
    /// keyed digest of their (patient, position) pairs. Only when something is wrong are they
    /// read again, each entry looked up in the index and each index position in the entries,
    /// to name the first problem.
    pub fn verify(&self) -> Result<AccessVerifyReport, AppError> {
        use std::hash::BuildHasher as _;
        let keys = std::collections::hash_map::RandomState::new();
        let (mut indexed, mut digest) = (0u64, 0u64);
        let report = self.walk_entries(&mut |patient, position| {
            indexed += 1;
            digest = digest.wrapping_add(keys.hash_one((patient.as_bytes(), position)));
            Ok(true)
        })?;
        if report.problem.is_none() {
            let mut listed_digest = 0u64;
            let walked = self.walk_index(&mut |patient, position| {
                listed_digest = listed_digest.wrapping_add(keys.hash_one((patient, position)));
                Ok(true)
            })?;
            if walked == IndexWalk::Listed(indexed) && listed_digest == digest {
                return Ok(report);
            }
        }
        self.verify_exact()
    }

    /// [`AccessStore::verify`] entry by entry: each entry's patient looked up in the index, and
    /// each indexed position in the entries, which names the first problem.
    fn verify_exact(&self) -> Result<AccessVerifyReport, AppError> {
        let mut indexed = 0u64;
        let mut report = self.walk_entries(&mut |patient, position| {
            indexed += 1;
            self.indexed(patient, position)
        })?;
        if report.problem.is_some() {
            return Ok(report);
        }
        let walked = self.walk_index(&mut |patient, position| {
            Ok(self
                .frame_at(position)?
                .and_then(|f| decode(position, &f).ok())
                .is_some_and(|s| s.entry.patient.is_some_and(|p| patient == p.as_bytes())))
        })?;
        match walked {
            IndexWalk::Listed(listed) if listed == indexed => {}
            IndexWalk::Listed(_) => {
                report.problem = Some(AccessProblem::IndexWrong {
                    position: report.verified,
                });
            }
            IndexWalk::Wrong(position) => {
                report.problem = Some(AccessProblem::IndexWrong {
                    position: position.unwrap_or(report.verified),
                });
            }
        }
        Ok(report)
    }

    /// Checks every stored entry in order (gapless positions from 1, each frame's hash and
    /// link, each entry readable), calling `names(patient, position)` for each entry that names
    /// a patient: whether the index is right about it (`false` is reported at that position).
    /// Stops at the first problem.
    fn walk_entries(&self, names: &mut PairCheck<'_, str>) -> Result<AccessVerifyReport, AppError> {
        let mut report = AccessVerifyReport {
            verified: 0,
            head_hash: Hash::ZERO,
            problem: None,
        };
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
                    if !names(patient, position)? {
                        report.problem = Some(AccessProblem::IndexWrong { position });
                        return Ok(report);
                    }
                }
                report.verified = position;
                report.head_hash = stored.hash;
            }
        }
        Ok(report)
    }

    /// Walks the patient index, calling `listed(patient, position)` for each position it
    /// lists: whether that entry names the patient. Stops at the first wrong or malformed one.
    fn walk_index(&self, listed: &mut PairCheck<'_, [u8]>) -> Result<IndexWalk, AppError> {
        let mut count = 0u64;
        let keys = self
            .db
            .scan_prefix([BY_PATIENT_GROUP])
            .chain(self.db.scan_prefix([BY_PATIENT]));
        for item in keys {
            let (key, value) = item.map_err(store_error("verifying the access log"))?;
            let Some((patient, at)) = index_key_parts(&key) else {
                return Ok(IndexWalk::Wrong(None));
            };
            let positions = indexed_positions(at, &value);
            // A commit's key names its last position, and its positions ascend.
            let by_commit = key[0] == BY_PATIENT;
            let ordered = positions.windows(2).all(|w| w[0] < w[1])
                && (!by_commit || positions.last() == Some(&at));
            if !ordered || value.len() % 8 != 0 {
                return Ok(IndexWalk::Wrong(Some(
                    positions.last().copied().unwrap_or(at),
                )));
            }
            for position in positions {
                count += 1;
                if !listed(patient, position)? {
                    return Ok(IndexWalk::Wrong(Some(position)));
                }
            }
        }
        Ok(IndexWalk::Listed(count))
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

    /// Writes `entries` as one commit after the store's head; the new head hash.
    fn write(store: &AccessStore, entries: &[AccessEntry]) -> Hash {
        let (head, head_hash) = store.head().unwrap();
        let mut commit = Commit::new(head, head_hash, Vec::new());
        for e in entries {
            commit.push(e);
        }
        store.write(&commit).unwrap();
        commit.head_hash()
    }

    fn positions_of(store: &AccessStore, patient: &str, after: u64, through: u64) -> Vec<u64> {
        let filter = AccessFilter {
            patient: Some(PatientId::parse(patient).unwrap()),
            ..AccessFilter::default()
        };
        let (found, _) = store.list(&filter, after, through, usize::MAX).unwrap();
        found.iter().map(|s| s.position).collect()
    }

    /// The patient index keys of `layout`: (patient, position in the key, positions listed).
    fn index_keys(store: &AccessStore, layout: u8) -> Vec<(String, u64, Vec<u64>)> {
        store
            .db
            .scan_prefix([layout])
            .map(|item| {
                let (key, value) = item.unwrap();
                let (patient, at) = index_key_parts(&key).unwrap();
                (
                    String::from_utf8(patient.to_vec()).unwrap(),
                    at,
                    indexed_positions(at, &value),
                )
            })
            .collect()
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

    /// Frames `entries` after `prev` from position `from` on, the plain way: the frames and
    /// the last hash.
    fn framed_from(from: u64, prev: Hash, entries: &[AccessEntry]) -> (Vec<Vec<u8>>, Hash) {
        let mut prev = prev;
        let framed = entries
            .iter()
            .zip(from..)
            .map(|(e, position)| {
                let (hash, frame) = frame(position, &prev, e);
                prev = hash;
                frame
            })
            .collect();
        (framed, prev)
    }

    #[test]
    fn one_commit_writes_one_index_key_per_patient_keyed_by_its_last_position() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(dir.path()).unwrap();
        let patients = ["999990007", "999990019", "999990020"];
        // 150 entries over three groups: patient n % 4 (the fourth names none).
        let entries: Vec<AccessEntry> = (0..150u16)
            .map(|n| entry(200 + n, patients.get(usize::from(n % 4)).copied()))
            .collect();
        write(&store, &entries);
        let more: Vec<AccessEntry> = (0..10u16)
            .map(|n| entry(300 + n, Some(patients[0])))
            .collect();
        let head = write(&store, &more);
        let keys = index_keys(&store, BY_PATIENT);
        assert_eq!(
            keys.len(),
            4,
            "three patients in the first commit, one in the second"
        );
        assert!(index_keys(&store, BY_PATIENT_GROUP).is_empty());
        let expected_first =
            |i: u64| -> Vec<u64> { (1..=150).filter(|p| (p - 1) % 4 == i).collect() };
        assert!(keys.contains(&(patients[0].into(), 149, expected_first(0))));
        assert!(keys.contains(&(patients[1].into(), 150, expected_first(1))));
        assert!(keys.contains(&(patients[2].into(), 147, expected_first(2))));
        assert!(keys.contains(&(patients[0].into(), 160, (151..=160).collect())));
        // Listed from any point, across commits.
        let all: Vec<u64> = expected_first(0).into_iter().chain(151..=160).collect();
        assert_eq!(positions_of(&store, patients[0], 0, 160), all);
        let after_100: Vec<u64> = all.iter().copied().filter(|p| *p > 100).collect();
        assert_eq!(positions_of(&store, patients[0], 100, 160), after_100);
        assert_eq!(
            positions_of(&store, patients[0], 140, 152),
            vec![141, 145, 149, 151, 152]
        );
        assert_eq!(
            positions_of(&store, patients[2], 147, 160),
            Vec::<u64>::new()
        );
        let report = store.verify().unwrap();
        assert_eq!(
            (report.verified, report.head_hash, report.problem),
            (160, head, None)
        );
    }

    #[test]
    fn a_patient_with_more_entries_in_one_commit_than_a_run_gets_a_key_per_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(dir.path()).unwrap();
        let entries: Vec<AccessEntry> = (0..1100u16).map(|n| entry(n, Some("999990007"))).collect();
        write(&store, &entries);
        let lasts: Vec<u64> = index_keys(&store, BY_PATIENT).iter().map(|k| k.1).collect();
        assert_eq!(lasts, vec![512, 1024, 1100]);
        assert_eq!(
            positions_of(&store, "999990007", 1000, 1030),
            (1001..=1030).collect::<Vec<u64>>()
        );
        assert_eq!(store.verify().unwrap().problem, None);
    }

    #[test]
    fn an_index_key_naming_another_patient_s_entry_is_named_by_verification() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(dir.path()).unwrap();
        write(
            &store,
            &[entry(200, Some("999990007")), entry(200, Some("999990019"))],
        );
        store
            .db
            .insert(
                patient_key(BY_PATIENT, "999990007", 2),
                &2u64.to_be_bytes()[..],
            )
            .unwrap();
        assert_eq!(
            store.verify().unwrap().problem,
            Some(AccessProblem::IndexWrong { position: 2 })
        );
    }

    #[test]
    fn a_copy_through_a_commit_keeps_only_the_index_up_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(&dir.path().join("from")).unwrap();
        write(&store, &[entry(200, Some("999990007")), entry(201, None)]);
        write(
            &store,
            &[entry(202, Some("999990007")), entry(203, Some("999990019"))],
        );
        store.copy_through(&dir.path().join("to"), 2).unwrap();
        let copy = AccessStore::open(&dir.path().join("to")).unwrap();
        assert_eq!(copy.head().unwrap().0, 2);
        assert_eq!(copy.verify().unwrap().problem, None);
        assert_eq!(positions_of(&copy, "999990007", 0, 2), vec![1]);
        assert_eq!(index_keys(&copy, BY_PATIENT).len(), 1);
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
            .map(|f| f.len() as u64 + 4)
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
        let head = write(&store, &[entry(404, Some("999990019"))]);
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
            group.extend_from_slice(&(f.len() as u32).to_be_bytes());
            group.extend_from_slice(f);
        }
        store.db.insert(entry_key(1), group).unwrap();
        store.db.insert(entry_key(3), old[2].clone()).unwrap();
        store
            .db
            .insert(
                patient_key(BY_PATIENT_GROUP, "999990007", 1),
                &1u64.to_be_bytes()[..],
            )
            .unwrap();
        drop(store);
        let store = AccessStore::open(dir.path()).unwrap();
        assert_eq!(store.head().unwrap(), (3, head));
        let head = write(&store, &[entry(203, Some("999990007"))]);
        let report = store.verify().unwrap();
        assert_eq!(
            (report.verified, report.head_hash, report.problem),
            (4, head, None)
        );
        assert_eq!(positions_of(&store, "999990007", 0, 4), vec![1, 4]);
    }

    #[test]
    fn an_index_of_earlier_builds_one_key_per_group_reads_before_the_one_per_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccessStore::open(dir.path()).unwrap();
        // 130 entries as an earlier build indexed them: a key per patient per group of 64,
        // by the group's first position (1, 65, 129).
        let entries: Vec<AccessEntry> = (0..130u16)
            .map(|n| entry(n, Some(["999990007", "999990019"][usize::from(n % 2)])))
            .collect();
        let head = write(&store, &entries);
        for (patient, _, _) in index_keys(&store, BY_PATIENT) {
            store
                .db
                .remove(patient_key(
                    BY_PATIENT,
                    &patient,
                    if patient == "999990007" { 129 } else { 130 },
                ))
                .unwrap();
        }
        for first in [1u64, 65, 129] {
            for (patient, parity) in [("999990007", 1), ("999990019", 0)] {
                let value: Vec<u8> = (first..(first + 64).min(131))
                    .filter(|p| p % 2 == parity)
                    .flat_map(|p| p.to_be_bytes())
                    .collect();
                store
                    .db
                    .insert(patient_key(BY_PATIENT_GROUP, patient, first), value)
                    .unwrap();
            }
        }
        assert!(index_keys(&store, BY_PATIENT).is_empty());
        let report = store.verify().unwrap();
        assert_eq!(
            (report.verified, report.head_hash, report.problem),
            (130, head, None)
        );
        // Then this build's commits, one key per patient each.
        write(
            &store,
            &[entry(1, Some("999990007")), entry(2, Some("999990007"))],
        );
        assert_eq!(index_keys(&store, BY_PATIENT).len(), 1);
        let odd: Vec<u64> = (1..=130).filter(|p| p % 2 == 1).chain([131, 132]).collect();
        assert_eq!(positions_of(&store, "999990007", 0, 132), odd);
        assert_eq!(
            positions_of(&store, "999990007", 100, 131),
            odd.iter()
                .copied()
                .filter(|p| (101..=131).contains(p))
                .collect::<Vec<u64>>()
        );
        assert_eq!(store.verify().unwrap().problem, None);
        // A copy keeps both layouts.
        store.copy_through(&dir.path().join("copy"), 132).unwrap();
        let copy = AccessStore::open(&dir.path().join("copy")).unwrap();
        assert_eq!(copy.verify().unwrap().problem, None);
        assert_eq!(positions_of(&copy, "999990007", 0, 132), odd);
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
        let (framed_hash, framed) = frame(1, &Hash::ZERO, &entry);
        assert_eq!(framed_hash.0, *hash.as_bytes());
        let mut expected = vec![0x01, 0x00, 0x01];
        expected.extend([0u8; 32]);
        expected.extend(hash.as_bytes());
        expected.extend(&bytes);
        assert_eq!(framed, expected);
        // A commit frames it in place into the same bytes, in a group of its own.
        let mut commit = Commit::new(0, Hash::ZERO, vec![7; 3]);
        commit.push(&entry);
        let mut group = vec![GROUP_MARK];
        group.extend((expected.len() as u32).to_be_bytes());
        group.extend(&expected);
        assert_eq!(commit.bytes, group);
        assert_eq!(commit.head_hash().0, *hash.as_bytes());
    }

    #[test]
    fn a_commit_frames_chains_and_groups_as_frame_by_frame() {
        let entries: Vec<AccessEntry> = (0..130u16)
            .map(|n| entry(200 + n, (n % 3 == 0).then_some("999990007")))
            .collect();
        let prev = Hash([9; 32]);
        let mut commit = Commit::new(40, prev, Vec::new());
        for e in &entries {
            commit.push(e);
        }
        let (frames, head) = framed_from(41, prev, &entries);
        assert_eq!((commit.last(), commit.head_hash()), (170, head));
        type Group<'a> = (u64, Vec<(u64, &'a [u8])>);
        let groups: Vec<Group<'_>> = commit
            .groups()
            .map(|(first, range)| (first, frames_in(first, &commit.bytes[range]).unwrap()))
            .collect();
        assert_eq!(
            groups
                .iter()
                .map(|(first, g)| (*first, g.len()))
                .collect::<Vec<_>>(),
            vec![(41, 64), (105, 64), (169, 2)]
        );
        let in_commit: Vec<&[u8]> = groups
            .iter()
            .flat_map(|(_, g)| g.iter().map(|f| f.1))
            .collect();
        let expected: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        assert_eq!(in_commit, expected);
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
