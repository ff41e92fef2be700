//! The journal: a write-ahead file of the ledger's group commits, so that one sync of it makes
//! an append durable.
//!
//! sled's `flush` pays for its own log write and `sync_file_range`, and the durable append
//! before this file also synced sled's file and then the anchor: two or three waits on the disk
//! per group commit. With the journal, a group commit applies its batch to sled without a
//! flush, appends the same batch to this file and syncs it: one wait. Every so often a
//! *checkpoint* syncs sled, anchors everything written ([`crate::anchor`]) and empties the
//! journal by starting a new generation. On open, and after a storage failure, the journal's
//! batches are anchored first and then applied to sled again (each batch is keyed by positions
//! that are written once, so applying one twice changes nothing), before the ledger is read.
//!
//! The file lives next to the ledger's directory (`<data>/ledger-journal` for
//! `<data>/ledger`). The format is specified in `docs/hash-format.md`:
//!
//! ```text
//! header   "careledger/journal\0" (19 bytes) ‖ version u16 BE (1) ‖ generation u64 BE
//!          ‖ check (8 bytes): the first 8 bytes of BLAKE3(HEADER_TAG ‖ the 29 bytes before)
//! entry    body_len u32 BE ‖ body ‖ check (8 bytes)
//! check    the first 8 bytes of BLAKE3(ENTRY_TAG ‖ generation u64 BE ‖ body_len ‖ body)
//! body     frames      count u32 ‖ count × (position u64 ‖ len u32 ‖ frame bytes)
//!          index       count u32 ‖ count × (patient len u16 ‖ patient ‖ revision u64 ‖ position u64)
//!          idempotency count u32 ‖ count × (len u32 ‖ key ‖ len u32 ‖ value)
//!          tree        count u32 ‖ count × (level u8 ‖ index u64 ‖ hash 32 bytes)
//!          signed      count u32 ‖ count × (hash 32 bytes ‖ len u32 ‖ stored request)
//! ```
//!
//! Integers are big-endian. The file is extended ahead of its entries with written zeros, so
//! that an entry's sync writes data only. Reading stops at the first entry whose check
//! fails: zeros, a torn last entry (a crash during its write: never acknowledged), or an entry
//! of an earlier generation left behind by a checkpoint. A new generation is started by
//! rewriting the header in place (with direct writes, the header's block), so a checkpoint
//! costs one small write and sync.
//!
//! **Direct writes.** Where the file system allows it, entries are written with `O_DIRECT` and
//! `O_DSYNC`: each append is one `pwrite` of whole 4 KiB blocks (the block the last entry ends
//! in, written again from memory, then the new entry, then zeros to the block's end) that returns
//! once the blocks are on stable storage; the kernel follows it with the device's cache flush, as
//! it does for `fdatasync`. The entry is not copied into the page cache and written back from
//! there: on the test machines' disk a lone durable write took 0–25 µs less, the sync inside a
//! server taking appends about 5 % less (docs/performance.md, "The journal written past the
//! page cache"). A file system that refuses `O_DIRECT` (tmpfs before Linux 6.6) gets the
//! buffered write and `fdatasync` instead; the file is the same either way.
//!
//! **Invariant:** an event is acknowledged only after its frame is durable in the journal or
//! (once a checkpoint covered it) in sled and the anchor.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::ids::PatientId;
use crate::record::Hash;
use crate::storage::WriteBatch;

/// The file's first bytes.
pub const MAGIC: &[u8; 19] = b"careledger/journal\0";
/// Version of the layout above.
pub const JOURNAL_VERSION: u16 = 1;
/// The domain-separation tag of the header's check.
pub const HEADER_TAG: &[u8; 29] = b"careledger/journal-header/v1\0";
/// The domain-separation tag of an entry's check.
pub const ENTRY_TAG: &[u8; 28] = b"careledger/journal-entry/v1\0";
/// Length of the header: magic, version, generation and check.
pub const HEADER_LEN: u64 = 19 + 2 + 8 + 8;
/// Length of an entry's check.
const CHECK_LEN: usize = 8;
/// The longest entry body taken as an entry when read (a group commit is far smaller).
const MAX_BODY: u64 = 1 << 30;
/// The file is extended ahead of its entries by written zeros, synced once: by half its size,
/// at least this much (small, so that a nearly full disk is not taken up by it)...
const PREALLOCATE_MIN: u64 = 64 * 1024;
/// ... and at most this much at a time.
const PREALLOCATE_MAX: u64 = 4 * 1024 * 1024;
/// The unit of direct writes: their offsets, lengths and memory are multiples of it (the
/// largest logical block size of common disks; a multiple of the smaller ones). The file is
/// extended to a multiple of it.
const BLOCK: u64 = 4096;

/// Where the journal of the ledger in `ledger_dir` lives: next to it, `<dir>-journal`.
pub fn journal_path(ledger_dir: &Path) -> PathBuf {
    let name = ledger_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ledger".into());
    ledger_dir.with_file_name(format!("{name}-journal"))
}

/// The open journal file.
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    generation: u64,
    /// Where the next entry goes.
    len: u64,
    /// The file's length: written zeros (or stale entries) from `len` on.
    allocated: u64,
    /// The file's bytes from the start of the block that holds `len` up to `len`, as written:
    /// a direct write covers whole blocks, so it writes them again in front of the next entry.
    tail: Vec<u8>,
    /// The file opened again for direct writes, where the file system allows them.
    direct: Option<Direct>,
}

/// The largest write buffer kept between appends (group commits are far smaller).
const BUFFER_KEPT: usize = 1 << 20;

/// The journal opened with `O_DIRECT | O_DSYNC`, and the memory its writes are made from.
struct Direct {
    file: File,
    /// Holds a block-aligned stretch for one write (found in it by [`aligned`]); grown as needed.
    buffer: Vec<u8>,
}

impl Direct {
    /// Writes the blocks from `start` to `end`: `kept` (the bytes the file holds from `start`
    /// on), then `entry`, then zeros. `Ok(false)` when the write was refused for its alignment
    /// (nothing was written).
    fn write(&mut self, start: u64, end: u64, kept: &[u8], entry: &[u8]) -> std::io::Result<bool> {
        let Some(buffer) = aligned(&mut self.buffer, (end - start) as usize) else {
            return Ok(false);
        };
        let (prefix, rest) = buffer.split_at_mut(kept.len());
        prefix.copy_from_slice(kept);
        let (written, zeros) = rest.split_at_mut(entry.len());
        written.copy_from_slice(entry);
        zeros.fill(0);
        let written = self.file.write_all_at(buffer, start);
        if self.buffer.len() > BUFFER_KEPT {
            // A rare large group commit (a bulk load's) does not keep its memory.
            self.buffer = Vec::new();
        }
        match written {
            Ok(()) => Ok(true),
            Err(e) if refused_direct(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Opens `path` for direct, synchronous writes; `None` where the file system refuses them.
fn open_direct(path: &Path) -> Option<Direct> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path)
        .ok()?;
    Some(Direct {
        file,
        buffer: Vec::new(),
    })
}

/// A block-aligned stretch of `len` bytes inside `buffer`, which is grown when it is too small;
/// `None` if the allocator gave memory that cannot be aligned (then the write is buffered).
fn aligned(buffer: &mut Vec<u8>, len: usize) -> Option<&mut [u8]> {
    let block = BLOCK as usize;
    if buffer.len() < len + block {
        *buffer = vec![0u8; (len + block).next_power_of_two()];
    }
    let offset = buffer.as_ptr().align_offset(block);
    let end = offset.checked_add(len)?;
    buffer.get_mut(offset..end)
}

/// Whether a direct write failed for a reason of its own (alignment the device does not take),
/// not of the disk's: the write is then made the buffered way instead.
fn refused_direct(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// `n` rounded up to a whole number of blocks.
fn whole_blocks(n: u64) -> u64 {
    n.div_ceil(BLOCK) * BLOCK
}

fn journal_err(path: &Path, doing: &str, e: std::io::Error) -> crate::error::Error {
    StorageError::io(format!("{doing} the journal {}", path.display()), e).into()
}

fn check(tag: &[u8], parts: &[&[u8]]) -> [u8; CHECK_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(tag);
    for part in parts {
        hasher.update(part);
    }
    let mut out = [0u8; CHECK_LEN];
    out.copy_from_slice(&hasher.finalize().as_bytes()[..CHECK_LEN]);
    out
}

fn header(generation: u64) -> [u8; HEADER_LEN as usize] {
    let mut out = [0u8; HEADER_LEN as usize];
    out[..19].copy_from_slice(MAGIC);
    out[19..21].copy_from_slice(&JOURNAL_VERSION.to_be_bytes());
    out[21..29].copy_from_slice(&generation.to_be_bytes());
    let sum = check(HEADER_TAG, &[&out[..29]]);
    out[29..].copy_from_slice(&sum);
    out
}

impl Journal {
    /// Opens (or creates) the journal at `path`, with the batches it holds, in order.
    pub(crate) fn open(path: &Path) -> Result<(Journal, Vec<WriteBatch>)> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| journal_err(path, "opening", e))?;
        let file_len = (file.metadata())
            .map_err(|e| journal_err(path, "reading", e))?
            .len();
        let mut journal = Journal {
            path: path.to_owned(),
            file,
            generation: 1,
            len: HEADER_LEN,
            allocated: file_len,
            tail: Vec::new(),
            direct: None,
        };
        if file_len >= HEADER_LEN {
            let batches = journal.reread()?;
            journal.direct = open_direct(path);
            return Ok((journal, batches));
        }
        // New, or a crash while it was being created: nothing was journaled in it.
        let bytes = std::fs::read(path).map_err(|e| journal_err(path, "reading", e))?;
        let prefix_is_magic = bytes.iter().zip(MAGIC.iter()).all(|(a, b)| a == b);
        if !prefix_is_magic && bytes.iter().any(|b| *b != 0) {
            return Err(StorageError::corrupt(format!(
                "{} is not a careledger journal (it does not start with its header)",
                path.display()
            ))
            .into());
        }
        journal.start_file()?;
        if !existed {
            sync_parent(path)?;
        }
        journal.direct = open_direct(path);
        Ok((journal, Vec::new()))
    }

    /// Whether appends are written directly (`O_DIRECT | O_DSYNC`), not through the page cache.
    pub(crate) fn writes_directly(&self) -> bool {
        self.direct.is_some()
    }

    /// The batches in the file now (after a storage failure, the journal as the disk has it).
    pub(crate) fn reread(&mut self) -> Result<Vec<WriteBatch>> {
        let bytes = std::fs::read(&self.path).map_err(|e| journal_err(&self.path, "reading", e))?;
        if (bytes.len() as u64) < HEADER_LEN {
            return Ok(Vec::new());
        }
        self.generation = read_header(&self.path, &bytes[..HEADER_LEN as usize])?;
        let (batches, end) = read_entries(&self.path, self.generation, &bytes)?;
        self.len = end;
        self.allocated = bytes.len() as u64;
        let block_start = (end - end % BLOCK) as usize;
        self.tail = bytes[block_start..end as usize].to_vec();
        Ok(batches)
    }

    /// Writes a fresh header of generation 1 and room for entries, synced.
    fn start_file(&mut self) -> Result<()> {
        let path = self.path.clone();
        let fail = |e| journal_err(&path, "creating", e);
        self.file.set_len(0).map_err(fail)?;
        self.file.write_all_at(&header(1), 0).map_err(fail)?;
        self.generation = 1;
        self.len = HEADER_LEN;
        self.allocated = HEADER_LEN;
        self.tail = header(1).to_vec();
        self.reserve(0)?;
        self.file.sync_all().map_err(fail)
    }

    /// Bytes of entries in the current generation.
    pub(crate) fn bytes(&self) -> u64 {
        self.len - HEADER_LEN
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry for `body` (a batch encoded by [`encode_batch`]) and makes it durable:
    /// one direct, synchronous write, or a buffered one and `fdatasync`.
    pub(crate) fn append(&mut self, body: &[u8]) -> Result<()> {
        let body_len = u32::try_from(body.len()).map_err(|_| {
            StorageError::other(format!(
                "a group commit of {} bytes is too large for one journal entry",
                body.len()
            ))
        })?;
        let len_bytes = body_len.to_be_bytes();
        let sum = check(
            ENTRY_TAG,
            &[&self.generation.to_be_bytes(), &len_bytes, body],
        );
        let mut entry = Vec::with_capacity(4 + body.len() + CHECK_LEN);
        entry.extend_from_slice(&len_bytes);
        entry.extend_from_slice(body);
        entry.extend_from_slice(&sum);
        if self.direct.is_some() {
            // The blocks from the one `len` lies in to the end of the entry's last.
            let start = self.len - self.tail.len() as u64;
            let end = whole_blocks(self.len + entry.len() as u64);
            self.reserve(end - self.len)?;
            if let Some(direct) = &mut self.direct {
                match direct.write(start, end, &self.tail, &entry) {
                    Ok(true) => {
                        self.advance(&entry);
                        return Ok(());
                    }
                    // Refused for its alignment: the buffered write below, from now on.
                    Ok(false) => self.direct = None,
                    Err(e) => return Err(journal_err(&self.path, "writing", e)),
                }
            }
        }
        self.reserve(entry.len() as u64)?;
        let fail = |e| journal_err(&self.path, "writing", e);
        self.file.write_all_at(&entry, self.len).map_err(fail)?;
        self.file.sync_data().map_err(fail)?;
        self.advance(&entry);
        Ok(())
    }

    /// Moves the end past `entry`, just written, keeping the bytes of the block it ends in.
    fn advance(&mut self, entry: &[u8]) {
        let end = self.len + entry.len() as u64;
        let block_start = end - end % BLOCK;
        if block_start > self.len {
            self.tail.clear();
            self.tail
                .extend_from_slice(&entry[(block_start - self.len) as usize..]);
        } else {
            self.tail.extend_from_slice(entry);
        }
        self.len = end;
    }

    /// Empties the journal: starts the next generation, whose header makes every entry before
    /// it stale. Called once everything in it is durable in sled and the anchor.
    pub(crate) fn reset(&mut self) -> Result<()> {
        let next = self.generation + 1;
        let header = header(next);
        let path = self.path.clone();
        let fail = |e| journal_err(&path, "starting a new generation of", e);
        // Directly: the header's block, the header followed by zeros.
        if self.allocated < BLOCK {
            self.reserve(BLOCK - self.len)?;
        }
        let written = match &mut self.direct {
            Some(direct) => direct.write(0, BLOCK, &[], &header).map_err(fail)?,
            None => false,
        };
        if !written {
            self.direct = None;
            self.file.write_all_at(&header, 0).map_err(fail)?;
            self.file.sync_data().map_err(fail)?;
        }
        self.generation = next;
        self.len = HEADER_LEN;
        self.tail = header.to_vec();
        Ok(())
    }

    /// Makes room for `bytes` more: extends the file with written zeros and syncs it (size and
    /// blocks), by half the file's size, from [`PREALLOCATE_MIN`] to [`PREALLOCATE_MAX`] at a
    /// time, to a whole number of blocks. Once a generation has grown the file, the next ones
    /// reuse its blocks.
    fn reserve(&mut self, bytes: u64) -> Result<()> {
        if self.len + bytes <= self.allocated && bytes > 0 {
            return Ok(());
        }
        if bytes == 0 && self.allocated >= self.len + PREALLOCATE_MIN {
            return Ok(());
        }
        let step = (self.allocated / 2).clamp(PREALLOCATE_MIN, PREALLOCATE_MAX);
        let grow = whole_blocks(self.allocated + step.max(bytes)) - self.allocated;
        crate::anchor::extend_with_zeros(&self.file, self.allocated, grow)
            .map_err(|e| journal_err(&self.path, "extending", e))?;
        self.allocated += grow;
        Ok(())
    }
}

fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| journal_err(path, "syncing the directory of", e)),
        _ => Ok(()),
    }
}

/// What an operator does about a journal that cannot be read (docs/reliability.md).
const DAMAGED_JOURNAL_ADVICE: &str = "after a clean stop it holds nothing; after a crash it may \
     hold the events acknowledged in the 2 s before it. Keep a copy, move the file aside and run \
     `careledger verify --data`: the ledger then opens from sled and its anchor, and names any \
     anchored event sled lost (docs/reliability.md)";

fn read_header(path: &Path, bytes: &[u8]) -> Result<u64> {
    let damaged = |what: &str| {
        StorageError::corrupt(format!(
            "the journal {} is damaged: {what}; {DAMAGED_JOURNAL_ADVICE}",
            path.display()
        ))
    };
    if &bytes[..19] != MAGIC {
        return Err(damaged("it does not start with the journal header").into());
    }
    let version = u16::from_be_bytes([bytes[19], bytes[20]]);
    if version != JOURNAL_VERSION {
        return Err(damaged(&format!(
            "its version is {version}, this build reads version {JOURNAL_VERSION}"
        ))
        .into());
    }
    if check(HEADER_TAG, &[&bytes[..29]]) != bytes[29..37] {
        return Err(damaged("its header's check does not match").into());
    }
    let mut generation = [0u8; 8];
    generation.copy_from_slice(&bytes[21..29]);
    Ok(u64::from_be_bytes(generation))
}

/// The entries of `generation` from the header on, decoded, and the offset after the last.
fn read_entries(path: &Path, generation: u64, bytes: &[u8]) -> Result<(Vec<WriteBatch>, u64)> {
    let mut batches = Vec::new();
    let mut offset = HEADER_LEN as usize;
    while let Some(&[a, b, c, d]) = bytes.get(offset..offset + 4) {
        let len_bytes = [a, b, c, d];
        let body_len = u32::from_be_bytes(len_bytes) as usize;
        if body_len == 0 || body_len as u64 > MAX_BODY {
            break;
        }
        let end = offset + 4 + body_len + CHECK_LEN;
        let Some(entry) = bytes.get(offset..end) else {
            break;
        };
        let body = &entry[4..4 + body_len];
        let sum = check(ENTRY_TAG, &[&generation.to_be_bytes(), &len_bytes, body]);
        if sum != entry[4 + body_len..] {
            // Zeros, a torn last entry, or one of an earlier generation: the end.
            break;
        }
        let batch = decode_batch(body).ok_or_else(|| {
            StorageError::corrupt(format!(
                "the journal {} is damaged: its entry at byte {offset} passes its check but does not decode; {DAMAGED_JOURNAL_ADVICE}",
                path.display()
            ))
        })?;
        batches.push(batch);
        offset = end;
    }
    Ok((batches, offset as u64))
}

/// Appends the journal body of `batch` to `out`.
pub(crate) fn encode_batch(batch: &WriteBatch, out: &mut Vec<u8>) {
    let count = |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u32).to_be_bytes());
    let bytes = |out: &mut Vec<u8>, b: &[u8]| {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    };
    count(out, batch.frames.len());
    for (position, frame) in &batch.frames {
        out.extend_from_slice(&position.to_be_bytes());
        bytes(out, frame);
    }
    count(out, batch.index.len());
    for (patient, revision, position) in &batch.index {
        let id = patient.as_str().as_bytes();
        out.extend_from_slice(&(id.len() as u16).to_be_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(&revision.to_be_bytes());
        out.extend_from_slice(&position.to_be_bytes());
    }
    count(out, batch.idempotency.len());
    for (key, value) in &batch.idempotency {
        bytes(out, key);
        bytes(out, value);
    }
    count(out, batch.tree.len());
    for (level, index, hash) in &batch.tree {
        out.push(*level);
        out.extend_from_slice(&index.to_be_bytes());
        out.extend_from_slice(hash);
    }
    count(out, batch.signed_requests.len());
    for (hash, stored) in &batch.signed_requests {
        out.extend_from_slice(&hash.0);
        bytes(out, stored);
    }
}

/// Reads a body written by [`encode_batch`]; `None` when it is malformed.
fn decode_batch(body: &[u8]) -> Option<WriteBatch> {
    let mut r = Reader(body);
    let mut batch = WriteBatch::default();
    for _ in 0..r.u32()? {
        let position = r.u64()?;
        let frame = r.bytes()?.to_vec();
        batch.frames.push((position, frame));
    }
    for _ in 0..r.u32()? {
        let len = r.u16()? as usize;
        let patient = std::str::from_utf8(r.take(len)?).ok()?;
        let patient = PatientId::parse(patient).ok()?;
        batch.index.push((patient, r.u64()?, r.u64()?));
    }
    for _ in 0..r.u32()? {
        let key = r.bytes()?.to_vec();
        let value = r.bytes()?.to_vec();
        batch.idempotency.push((key, value));
    }
    for _ in 0..r.u32()? {
        let level = r.take(1)?[0];
        let index = r.u64()?;
        let hash: [u8; 32] = r.take(32)?.try_into().ok()?;
        batch.tree.push((level, index, hash));
    }
    for _ in 0..r.u32()? {
        let hash: [u8; 32] = r.take(32)?.try_into().ok()?;
        let stored = r.bytes()?.to_vec();
        batch.signed_requests.push((Hash(hash), stored));
    }
    r.0.is_empty().then_some(batch)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: u64, n: u64) -> WriteBatch {
        let patient = PatientId::parse("999990007").unwrap();
        WriteBatch {
            frames: (first..first + n)
                .map(|p| (p, format!("frame {p}").into_bytes()))
                .collect(),
            index: (first..first + n)
                .map(|p| (patient.clone(), p, p))
                .collect(),
            idempotency: vec![(b"key".to_vec(), b"value".to_vec())],
            tree: vec![(1, first, [7u8; 32])],
            signed_requests: vec![(Hash([9u8; 32]), b"signed".to_vec())],
        }
    }

    fn body(batch: &WriteBatch) -> Vec<u8> {
        let mut out = Vec::new();
        encode_batch(batch, &mut out);
        out
    }

    fn positions(batches: &[WriteBatch]) -> Vec<u64> {
        batches
            .iter()
            .flat_map(|b| b.frames.iter().map(|(p, _)| *p))
            .collect()
    }

    #[test]
    fn a_batch_reads_back_as_it_was_written() {
        let original = batch(5, 3);
        let decoded = decode_batch(&body(&original)).unwrap();
        assert_eq!(decoded.frames, original.frames);
        assert_eq!(decoded.index, original.index);
        assert_eq!(decoded.idempotency, original.idempotency);
        assert_eq!(decoded.tree, original.tree);
        assert_eq!(decoded.signed_requests, original.signed_requests);
        let mut longer = body(&original);
        longer.push(0);
        assert!(
            decode_batch(&longer).is_none(),
            "trailing bytes are refused"
        );
    }

    #[test]
    fn appended_entries_come_back_on_open_and_a_reset_empties_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(&dir.path().join("ledger"));
        let (mut journal, found) = Journal::open(&path).unwrap();
        assert!(found.is_empty());
        journal.append(&body(&batch(1, 2))).unwrap();
        journal.append(&body(&batch(3, 1))).unwrap();
        drop(journal);
        let (mut journal, found) = Journal::open(&path).unwrap();
        assert_eq!(positions(&found), [1, 2, 3]);
        journal.reset().unwrap();
        // One entry of the new generation over the first stale one: the stale second is not read.
        journal.append(&body(&batch(4, 1))).unwrap();
        drop(journal);
        let (_, found) = Journal::open(&path).unwrap();
        assert_eq!(positions(&found), [4]);
    }

    #[test]
    fn a_torn_last_entry_is_not_read_and_the_next_append_overwrites_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(&dir.path().join("ledger"));
        let (mut journal, _) = Journal::open(&path).unwrap();
        journal.append(&body(&batch(1, 1))).unwrap();
        let end = journal.len;
        journal.append(&body(&batch(2, 1))).unwrap();
        // Tear the second entry: its last bytes never reached the disk.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0u8; 8], journal.len - 8).unwrap();
        drop(journal);
        let (mut journal, found) = Journal::open(&path).unwrap();
        assert_eq!(positions(&found), [1]);
        assert_eq!(journal.len, end);
        journal.append(&body(&batch(2, 2))).unwrap();
        drop(journal);
        let (_, found) = Journal::open(&path).unwrap();
        assert_eq!(positions(&found), [1, 2, 3]);
    }

    #[test]
    fn a_damaged_header_is_refused_with_the_file_named_and_a_foreign_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(&dir.path().join("ledger"));
        let (mut journal, _) = Journal::open(&path).unwrap();
        journal.append(&body(&batch(1, 1))).unwrap();
        drop(journal);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0xAA], 25).unwrap();
        let Err(e) = Journal::open(&path) else {
            panic!("a damaged header opened");
        };
        let text = e.to_string();
        assert!(text.contains("journal") && text.contains("check"), "{text}");
        let foreign = dir.path().join("other");
        std::fs::write(&foreign, b"hello").unwrap();
        let Err(e) = Journal::open(&foreign) else {
            panic!("a foreign file opened");
        };
        assert!(e.to_string().contains("not a careledger journal"), "{e}");
    }

    /// A directory on the disk the build is on (the target directory), whose file system takes
    /// direct writes, unlike a tmpfs `/tmp` would.
    fn on_disk() -> tempfile::TempDir {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
        std::fs::create_dir_all(&target).unwrap();
        tempfile::Builder::new()
            .prefix("journal-")
            .tempdir_in(target)
            .unwrap()
    }

    /// A batch of one frame of `size` bytes at `position`.
    fn sized(position: u64, size: usize) -> WriteBatch {
        let mut batch = batch(position, 1);
        batch.frames[0].1 = vec![(position % 251) as u8; size];
        batch
    }

    #[test]
    fn direct_and_buffered_journals_hold_the_same_entries_byte_for_byte() {
        let dir = on_disk();
        let direct_path = journal_path(&dir.path().join("direct"));
        let buffered_path = journal_path(&dir.path().join("buffered"));
        let open = |path: &Path, direct: bool| {
            let (mut journal, found) = Journal::open(path).unwrap();
            if direct {
                assert!(
                    journal.writes_directly(),
                    "the file system of {} takes O_DIRECT",
                    path.display()
                );
            } else {
                journal.direct = None;
            }
            (journal, found)
        };
        let (mut direct, _) = open(&direct_path, true);
        let (mut buffered, _) = open(&buffered_path, false);
        // Entries that end inside the block the one before ended in, exactly at a block's end,
        // across one boundary and across several; a new generation and a reopen on the way,
        // each leaving the end inside a block.
        let sizes = [
            1, 17, 3_950, 4_059, 96, 4_096, 4_095, 12_000, 1, 8_192, 3, 50_000, 700, 70_000,
        ];
        let mut expected = Vec::new();
        for (i, size) in sizes.into_iter().enumerate() {
            let position = i as u64 + 1;
            let entry = body(&sized(position, size));
            direct.append(&entry).unwrap();
            buffered.append(&entry).unwrap();
            expected.push(position);
            assert_eq!(direct.len, buffered.len);
            if i == 4 {
                direct.reset().unwrap();
                buffered.reset().unwrap();
                expected.clear();
            }
            if i == 8 {
                drop((direct, buffered));
                let found;
                (direct, found) = open(&direct_path, true);
                assert_eq!(positions(&found), expected);
                (buffered, _) = open(&buffered_path, false);
            }
        }
        let len = direct.len as usize;
        drop((direct, buffered));
        let (direct, found) = open(&direct_path, true);
        assert_eq!(positions(&found), expected);
        let (_, found) = open(&buffered_path, false);
        assert_eq!(positions(&found), expected);
        let direct_bytes = std::fs::read(&direct_path).unwrap();
        let buffered_bytes = std::fs::read(&buffered_path).unwrap();
        assert_eq!(direct_bytes[..len], buffered_bytes[..len]);
        assert_eq!(direct.allocated % BLOCK, 0, "extended by whole blocks");
        assert!(
            direct_bytes[len..].iter().all(|b| *b == 0),
            "zeros after the last entry"
        );
    }

    #[test]
    fn a_journal_written_buffered_is_continued_directly() {
        let dir = on_disk();
        let path = journal_path(&dir.path().join("ledger"));
        let (mut journal, _) = Journal::open(&path).unwrap();
        journal.direct = None;
        journal.append(&body(&sized(1, 5_000))).unwrap();
        journal.append(&body(&sized(2, 300))).unwrap();
        drop(journal);
        let (mut journal, found) = Journal::open(&path).unwrap();
        assert!(journal.writes_directly());
        assert_eq!(positions(&found), [1, 2]);
        journal.append(&body(&sized(3, 10))).unwrap();
        drop(journal);
        let (_, found) = Journal::open(&path).unwrap();
        assert_eq!(positions(&found), [1, 2, 3]);
    }

    #[test]
    fn a_header_torn_while_the_file_was_created_starts_an_empty_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = journal_path(&dir.path().join("ledger"));
        std::fs::write(&path, &MAGIC[..7]).unwrap();
        let (journal, found) = Journal::open(&path).unwrap();
        assert!(found.is_empty());
        assert_eq!(journal.bytes(), 0);
    }
}
