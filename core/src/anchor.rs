//! The anchor: a small append-only file, outside sled, of the hashes of every acknowledged event.
//!
//! sled runs its recovery inside `open`: it overwrites a torn tail, zeroes torn segments and
//! drops blob files past its stable point, so a damaged `db` file opens as a shorter ledger that
//! verifies. The anchor makes that loss visible. Each group commit, after sled's sync and before
//! any of its appends is acknowledged, appends one entry (the group's first position and the
//! hash of each of its events) and `fdatasync`s the file; so no acknowledged event is ever
//! outside it. On every open the ledger is compared with it ([`reconcile`]): a ledger that holds
//! less than the anchor says, or a different hash at the anchor's last position (an old event
//! rewritten and every later hash recomputed), opens for reading only, naming the damage.
//!
//! The file lives next to the ledger's directory (`<data>/ledger-anchor` for `<data>/ledger`),
//! so that restoring or losing the ledger's directory does not take the anchor with it. The
//! format is specified in `docs/hash-format.md`:
//!
//! ```text
//! header   "careledger/anchor\0" (18 bytes) ‖ version u16 BE (1)
//! entry    body_len u32 BE ‖ body ‖ check (8 bytes)
//! body     first u64 BE ‖ count u32 BE ‖ count × 32-byte BLAKE3 event hash
//! check    the first 8 bytes of BLAKE3("careledger/anchor-entry/v1\0" ‖ body_len ‖ body)
//! ```
//!
//! The first entry may start at any position: a ledger written before the anchor existed gets
//! one entry for its head on its first open (that open trusts what it finds). Every later entry
//! starts right after the one before. A torn last entry (a crash during its write, so never
//! acknowledged) is cut off on open; a bad entry with entries after it is damage.
//!
//! **Invariant:** an event is acknowledged only after its hash is durable in the anchor.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::chain::Frame;
use crate::error::{Error, Result, StorageError};
use crate::record::Hash;
use crate::storage::Storage;
use crate::verify::{Problem, ProblemKind, VerifyReport};

/// The file's first bytes.
pub const MAGIC: &[u8; 18] = b"careledger/anchor\0";
/// Version of the layout above.
pub const ANCHOR_VERSION: u16 = 1;
/// Length of the header: magic and version.
pub const HEADER_LEN: u64 = 20;
/// The domain-separation tag of an entry's check.
pub const ENTRY_TAG: &[u8; 27] = b"careledger/anchor-entry/v1\0";
/// Bytes of the body before the hashes: first position and count.
const BODY_HEAD: usize = 8 + 4;
/// Length of an entry's check.
const CHECK_LEN: usize = 8;
/// Most hashes in one entry (a group commit holds far fewer; larger counts are damage).
const MAX_ENTRY_HASHES: u32 = 1 << 20;
/// The file is extended ahead of its entries by this many written zero bytes (about 2,000
/// events; small, so that a nearly full disk is not taken up by it), synced once: an entry then overwrites blocks that are already allocated, so its
/// `fdatasync` writes data only and need not commit the file's new size through the file
/// system's journal. Reading stops at the zeros, as at a torn entry.
const PREALLOCATE_BYTES: u64 = 64 * 1024;

/// Where the anchor of the ledger in `ledger_dir` lives: next to it, `<dir>-anchor`.
pub fn anchor_path(ledger_dir: &Path) -> PathBuf {
    let name = ledger_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ledger".into());
    ledger_dir.with_file_name(format!("{name}-anchor"))
}

/// What the comparison of ledger and anchor found: acknowledged events missing or changed, or
/// a damaged anchor. The ledger then opens for reading only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// The last position the anchor holds: every event up to it was acknowledged.
    pub last_anchored: u64,
    /// The last position the ledger holds.
    pub ledger_head: u64,
    /// Acknowledged events the ledger does not hold at its end (`last_anchored - ledger_head`
    /// when the ledger is shorter, else 0).
    pub missing: u64,
    /// The first position whose stored hash differs from the anchored one, when known.
    pub first_differing: Option<u64>,
    /// What was found, as a sentence.
    pub detail: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the ledger is damaged: {}; the anchor holds acknowledged events up to position {}, the ledger ends at {}, {} acknowledged events are missing",
            self.detail, self.last_anchored, self.ledger_head, self.missing
        )?;
        if let Some(p) = self.first_differing {
            write!(f, ", the first changed event is at position {p}")?;
        }
        f.write_str("; writes are refused until an operator restores them (docs/reliability.md)")
    }
}

/// One anchored event: its position and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Anchored {
    /// The position.
    pub position: u64,
    /// The event's hash.
    pub hash: Hash,
}

/// The open anchor file, with the hashes written to storage and not yet anchored.
pub(crate) struct Anchor {
    path: PathBuf,
    file: File,
    /// Bytes of valid entries (where the next entry goes).
    len: u64,
    /// The file's length: written zeros from `len` on.
    allocated: u64,
    /// The first anchored position, if any entry exists.
    start: Option<u64>,
    /// The last anchored event.
    last: Option<Anchored>,
    /// Why the file cannot be trusted, found on open.
    damage: Option<String>,
    /// Hashes of events written to storage and not yet anchored, from `pending_first` on.
    pending_first: u64,
    pending: Vec<Hash>,
}

/// How a read of the anchor's entries ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// At the end of the file.
    Clean,
    /// At a torn last entry starting at this offset: cut it off.
    Torn(u64),
    /// At damage: what and where.
    Damaged(String),
}

/// Reads the entries of an anchor file in order, calling `visit(first, hashes)` for each valid
/// one; returns the offset after the last valid entry and how the read ended.
fn read_entries(
    file: &File,
    visit: &mut dyn FnMut(u64, &[Hash]),
) -> std::io::Result<(u64, Ending)> {
    let file_len = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut header = [0u8; HEADER_LEN as usize];
    match read_full(&mut reader, &mut header)? {
        n if n < header.len() => {
            // A crash while the file was being created: the header is torn; nothing was anchored.
            let torn = header[..n] == expected_header()[..n] || header[..n].iter().all(|b| *b == 0);
            return Ok(if torn {
                (0, Ending::Torn(0))
            } else {
                (
                    0,
                    Ending::Damaged("the file does not start with an anchor header".into()),
                )
            });
        }
        _ if header != expected_header() => {
            return Ok((
                0,
                Ending::Damaged(
                    "the file does not start with the anchor header of version 1".into(),
                ),
            ));
        }
        _ => {}
    }
    let mut offset = HEADER_LEN;
    let mut next: Option<u64> = None;
    let mut body = Vec::new();
    loop {
        if offset == file_len {
            return Ok((offset, Ending::Clean));
        }
        let torn_or = |reader: &mut BufReader<&File>, what: String| -> std::io::Result<Ending> {
            Ok(if rest_is_zero(reader)? {
                Ending::Torn(offset)
            } else {
                Ending::Damaged(what)
            })
        };
        let mut len_bytes = [0u8; 4];
        if read_full(&mut reader, &mut len_bytes)? < 4 {
            return Ok((offset, Ending::Torn(offset)));
        }
        let body_len = u32::from_be_bytes(len_bytes) as u64;
        let entry_end = offset + 4 + body_len + CHECK_LEN as u64;
        let count_ok = body_len >= (BODY_HEAD + 32) as u64
            && (body_len - BODY_HEAD as u64).is_multiple_of(32)
            && (body_len - BODY_HEAD as u64) / 32 <= MAX_ENTRY_HASHES as u64;
        if !count_ok {
            let what = format!("entry at byte {offset} has an impossible length {body_len}");
            return Ok((offset, torn_or(&mut reader, what)?));
        }
        if entry_end > file_len {
            // Runs past the end: the last write was cut short.
            return Ok((offset, Ending::Torn(offset)));
        }
        body.resize(body_len as usize, 0);
        let mut check = [0u8; CHECK_LEN];
        reader.read_exact(&mut body)?;
        reader.read_exact(&mut check)?;
        if check != entry_check(&len_bytes, &body) {
            let what = format!("entry at byte {offset} fails its checksum");
            if entry_end == file_len {
                return Ok((offset, Ending::Torn(offset)));
            }
            return Ok((offset, torn_or(&mut reader, what)?));
        }
        let (first, hashes) = parse_body(&body);
        if let Some(expected) = next {
            if first != expected {
                let what = format!(
                    "entry at byte {offset} starts at position {first}, the one before ended at {}",
                    expected - 1
                );
                return Ok((offset, Ending::Damaged(what)));
            }
        }
        next = Some(first + hashes.len() as u64);
        visit(first, &hashes);
        offset = entry_end;
    }
}

/// Reads until `buf` is full or the file ends; the number of bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Whether everything left to read is zero bytes (a file system that extended the file before
/// the data reached it).
fn rest_is_zero(reader: &mut impl Read) -> std::io::Result<bool> {
    let mut buf = [0u8; 8192];
    loop {
        let n = read_full(reader, &mut buf)?;
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        if n < buf.len() {
            return Ok(true);
        }
    }
}

/// Whether the file holds only zero bytes from `at` on (and something at all before it).
fn zeros_from(file: &File, at: u64) -> std::io::Result<bool> {
    if at < HEADER_LEN {
        return Ok(false);
    }
    let mut reader = BufReader::new(file);
    std::io::Seek::seek(&mut reader, std::io::SeekFrom::Start(at))?;
    rest_is_zero(&mut reader)
}

fn expected_header() -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..18].copy_from_slice(MAGIC);
    header[18..].copy_from_slice(&ANCHOR_VERSION.to_be_bytes());
    header
}

fn entry_check(len_bytes: &[u8; 4], body: &[u8]) -> [u8; CHECK_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(ENTRY_TAG);
    hasher.update(len_bytes);
    hasher.update(body);
    let mut check = [0u8; CHECK_LEN];
    check.copy_from_slice(&hasher.finalize().as_bytes()[..CHECK_LEN]);
    check
}

/// Splits a body whose length was checked: first position and hashes.
fn parse_body(body: &[u8]) -> (u64, Vec<Hash>) {
    let mut first = [0u8; 8];
    first.copy_from_slice(&body[..8]);
    let hashes = body[BODY_HEAD..]
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            Hash(h)
        })
        .collect();
    (u64::from_be_bytes(first), hashes)
}

/// Encodes one entry.
fn encode_entry(first: u64, hashes: &[Hash]) -> Vec<u8> {
    let body_len = (BODY_HEAD + 32 * hashes.len()) as u32;
    let mut entry = Vec::with_capacity(4 + body_len as usize + CHECK_LEN);
    entry.extend_from_slice(&body_len.to_be_bytes());
    entry.extend_from_slice(&first.to_be_bytes());
    entry.extend_from_slice(&(hashes.len() as u32).to_be_bytes());
    for hash in hashes {
        entry.extend_from_slice(&hash.0);
    }
    let check = entry_check(&body_len.to_be_bytes(), &entry[4..]);
    entry.extend_from_slice(&check);
    entry
}

fn anchor_err(path: &Path, doing: &str, e: std::io::Error) -> Error {
    StorageError::io(format!("{doing} the anchor {}", path.display()), e).into()
}

impl Anchor {
    /// Opens the anchor at `path`, creating it (header only) when missing, and cuts off a torn
    /// last entry. Damage inside the file does not fail the open: [`Anchor::damage`] names it.
    pub(crate) fn open(path: &Path) -> Result<Anchor> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| anchor_err(path, "opening", e))?;
        let mut start = None;
        let mut last = None;
        let (len, ending) = read_entries(&file, &mut |first, hashes| {
            start.get_or_insert(first);
            if let Some(hash) = hashes.last() {
                last = Some(Anchored {
                    position: first + hashes.len() as u64 - 1,
                    hash: *hash,
                });
            }
        })
        .map_err(|e| anchor_err(path, "reading", e))?;
        let mut anchor = Anchor {
            path: path.to_owned(),
            file,
            len,
            allocated: len,
            start,
            last,
            damage: None,
            pending_first: 0,
            pending: Vec::new(),
        };
        match ending {
            Ending::Clean => {}
            // Zeros written ahead stay as room for the next entries; torn bytes are cut.
            Ending::Torn(at)
                if zeros_from(&anchor.file, at).map_err(|e| anchor_err(path, "reading", e))? =>
            {
                anchor.allocated = (anchor.file.metadata())
                    .map_err(|e| anchor_err(path, "reading", e))?
                    .len();
            }
            Ending::Torn(at) => anchor.cut(at)?,
            Ending::Damaged(what) => anchor.damage = Some(what),
        }
        if !existed {
            // The new file's directory entry must be durable before anything is anchored in it.
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| anchor_err(path, "syncing the directory of", e))?;
            }
        }
        Ok(anchor)
    }

    /// Cuts the file at `at` (a torn entry, never acknowledged, or the zeros written ahead),
    /// writing the header if needed.
    fn cut(&mut self, at: u64) -> Result<()> {
        let fail = |e| anchor_err(&self.path, "cutting a torn entry off", e);
        self.file.set_len(at).map_err(fail)?;
        if at == 0 {
            self.file
                .write_all_at(&expected_header(), 0)
                .map_err(fail)?;
            self.len = HEADER_LEN;
        } else {
            self.len = at;
        }
        self.allocated = self.len;
        self.file.sync_all().map_err(fail)
    }

    /// Makes room for `bytes` more: extends the file with written zeros and syncs it (size
    /// and blocks), once per [`PREALLOCATE_BYTES`].
    fn reserve(&mut self, bytes: u64) -> Result<()> {
        if self.len + bytes <= self.allocated {
            return Ok(());
        }
        let grow = PREALLOCATE_BYTES.max(bytes);
        extend_with_zeros(&self.file, self.allocated, grow)
            .map_err(|e| anchor_err(&self.path, "extending", e))?;
        self.allocated += grow;
        Ok(())
    }

    /// Why the file cannot be trusted, if it cannot.
    pub(crate) fn damage(&self) -> Option<&str> {
        self.damage.as_deref()
    }

    /// The last anchored event.
    pub(crate) fn last(&self) -> Option<Anchored> {
        self.last
    }

    /// The first anchored position.
    pub(crate) fn start(&self) -> Option<u64> {
        self.start
    }

    /// The file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Remembers the hashes of frames written to storage (in position order), to be anchored by
    /// the next [`Anchor::sync_through`] that covers them.
    pub(crate) fn stage(&mut self, frames: &[(u64, Vec<u8>)]) {
        for (position, frame) in frames {
            if self.pending.is_empty() {
                self.pending_first = *position;
            }
            let hash = Frame::parse(frame).map_or(Hash::ZERO, |f| f.hash);
            self.pending.push(hash);
        }
    }

    /// Appends one entry for the staged hashes up to `position` and makes it durable: one write
    /// and one `fdatasync`. Positions already anchored are skipped.
    pub(crate) fn sync_through(&mut self, position: u64) -> Result<()> {
        if self.pending.is_empty() || position < self.pending_first {
            return Ok(());
        }
        let take = ((position - self.pending_first + 1) as usize).min(self.pending.len());
        let hashes: Vec<Hash> = self.pending.drain(..take).collect();
        let first = self.pending_first;
        self.pending_first += take as u64;
        self.append(first, &hashes)
    }

    /// Appends an entry for `hashes` from `first` and syncs it.
    fn append(&mut self, first: u64, hashes: &[Hash]) -> Result<()> {
        let Some(last_hash) = hashes.last() else {
            return Ok(());
        };
        if let Some(damage) = &self.damage {
            return Err(StorageError::corrupt(format!(
                "the anchor {} is damaged ({damage}); nothing more is acknowledged",
                self.path.display()
            ))
            .into());
        }
        let entry = encode_entry(first, hashes);
        self.reserve(entry.len() as u64)?;
        let fail = |e| anchor_err(&self.path, "writing", e);
        self.file.write_all_at(&entry, self.len).map_err(fail)?;
        self.file.sync_data().map_err(fail)?;
        self.len += entry.len() as u64;
        self.start.get_or_insert(first);
        self.last = Some(Anchored {
            position: first + hashes.len() as u64 - 1,
            hash: *last_hash,
        });
        Ok(())
    }

    /// Appends one entry for `hashes` from `first` and syncs it (a copy of another anchor's
    /// entries, [`crate::backup`]).
    pub(crate) fn append_copied(&mut self, first: u64, hashes: &[Hash]) -> Result<()> {
        self.append(first, hashes)
    }

    /// Visits every anchored `(position, hash)` in order, from the file on disk.
    pub(crate) fn for_each(&self, visit: &mut dyn FnMut(u64, &Hash)) -> Result<()> {
        let file = File::open(&self.path).map_err(|e| anchor_err(&self.path, "reading", e))?;
        read_entries(&file, &mut |first, hashes| {
            for (i, hash) in hashes.iter().enumerate() {
                visit(first + i as u64, hash);
            }
        })
        .map_err(|e| anchor_err(&self.path, "reading", e))?;
        Ok(())
    }
}

/// Writes `bytes` zero bytes into `file` from `at` and syncs it (size and blocks), so that later
/// writes there overwrite allocated blocks and their `fdatasync` writes data only (the anchor's
/// and the journal's room ahead of their entries).
pub(crate) fn extend_with_zeros(file: &File, at: u64, bytes: u64) -> std::io::Result<()> {
    file.write_all_at(&vec![0u8; bytes as usize], at)?;
    file.sync_all()
}

/// The hashes the anchor at `path` holds for positions 1 to `size`, read without writing to
/// it (the anchor of a running ledger, for a backup); fewer when it holds fewer.
pub(crate) fn hashes_up_to(path: &Path, size: u64) -> Result<Vec<Hash>> {
    let file = File::open(path).map_err(|e| anchor_err(path, "reading", e))?;
    let mut hashes = Vec::new();
    read_entries(&file, &mut |first, entry| {
        for (i, hash) in entry.iter().enumerate() {
            let position = first + i as u64;
            if position == hashes.len() as u64 + 1 && position <= size {
                hashes.push(*hash);
            }
        }
    })
    .map_err(|e| anchor_err(path, "reading", e))?;
    Ok(hashes)
}

/// Compares the ledger in `storage`, whose last stored position is `head`, with the anchor, and
/// brings the anchor up to the ledger's head when the ledger holds more (events made durable in
/// sled whose anchor entry a crash cut off: never acknowledged). A ledger older than its anchor
/// gets one entry for its head.
///
/// Returns the damage found, if any; an error only when the files cannot be read or written.
pub(crate) fn reconcile(
    anchor: &mut Anchor,
    storage: &dyn Storage,
    head: u64,
) -> Result<Option<Damage>> {
    if let Some(what) = anchor.damage() {
        return Ok(Some(Damage {
            last_anchored: anchor.last().map_or(0, |a| a.position),
            ledger_head: head,
            missing: 0,
            first_differing: None,
            detail: format!("the anchor {} is damaged: {what}", anchor.path().display()),
        }));
    }
    let Some(last) = anchor.last() else {
        if head == 0 {
            return Ok(None);
        }
        // A ledger written before the anchor existed (or a crash before its first entry was
        // durable): from here on the anchor covers it, starting at its head.
        let hash = storage
            .frame(head)?
            .as_deref()
            .and_then(Frame::parse)
            .map_or(Hash::ZERO, |f| f.hash);
        anchor.append(head, &[hash])?;
        return Ok(None);
    };
    let damage = |missing, detail: String| Damage {
        last_anchored: last.position,
        ledger_head: head,
        missing,
        first_differing: None,
        detail,
    };
    if head < last.position {
        let detail = format!(
            "the ledger ends at position {head}, before the last acknowledged event (positions {} to {} are gone)",
            head + 1,
            last.position
        );
        return Ok(Some(damage(last.position - head, detail)));
    }
    let stored = storage.frame(last.position)?;
    let stored_hash = stored.as_deref().and_then(Frame::parse).map(|f| f.hash);
    match stored_hash {
        None => {
            let detail = format!("no event is stored at position {}", last.position);
            return Ok(Some(damage(0, detail)));
        }
        Some(hash) if hash != last.hash => {
            let detail = format!(
                "the event at position {} has hash {hash}, the anchor holds {} (an event at or before it was changed)",
                last.position, last.hash
            );
            return Ok(Some(damage(0, detail)));
        }
        Some(_) => {}
    }
    if head > last.position {
        let mut hashes = Vec::with_capacity((head - last.position) as usize);
        storage.scan(last.position + 1, &mut |_, frame| {
            hashes.push(Frame::parse(frame).map_or(Hash::ZERO, |f| f.hash));
            true
        })?;
        anchor.append(last.position + 1, &hashes)?;
    }
    Ok(None)
}

/// The cheap comparison behind `/health`: the ledger's stored head against the anchor's last
/// entry. The stored head may be ahead (appends of a group commit under way), never behind,
/// and at the anchored position it holds the anchored hash.
pub(crate) fn check_live_head(
    storage: &dyn Storage,
    last: Option<Anchored>,
) -> std::result::Result<(), Damage> {
    let Some(last) = last else {
        return Ok(());
    };
    // A storage failure is reported by the ledger's refusal, not as damage.
    let Ok(stored) = storage.last_frame() else {
        return Ok(());
    };
    let head = stored.as_ref().map_or(0, |(p, _)| *p);
    let damage = |missing, detail| Damage {
        last_anchored: last.position,
        ledger_head: head,
        missing,
        first_differing: None,
        detail,
    };
    if head < last.position {
        let detail = format!("the stored head fell back to position {head}");
        return Err(damage(last.position - head, detail));
    }
    if head == last.position {
        let hash = stored
            .as_ref()
            .and_then(|(_, bytes)| Frame::parse(bytes))
            .map(|f| f.hash);
        if hash != Some(last.hash) {
            let detail = format!("the head at position {head} differs from the anchored hash");
            return Err(damage(0, detail));
        }
    }
    Ok(())
}

/// Adds to `report` (of a chain verified up to `report.verified`) what the anchor shows:
/// acknowledged events missing at the end, or a changed event (the first position whose hash
/// differs from the anchored one), or a damaged anchor. A problem the chain check found first
/// is kept.
pub(crate) fn verify_against(
    anchor: &Anchor,
    last: Option<Anchored>,
    storage: &dyn Storage,
    report: &mut VerifyReport,
) -> Result<()> {
    if let Some(what) = anchor.damage() {
        report.problem.get_or_insert(Problem {
            position: last.map_or(0, |a| a.position) + 1,
            kind: ProblemKind::AnchorDamaged(format!("{}: {what}", anchor.path().display())),
        });
        return Ok(());
    }
    let Some(last) = last else {
        return Ok(());
    };
    if report.problem.is_some() {
        return Ok(());
    }
    if report.verified < last.position {
        report.problem = Some(Problem {
            position: report.verified + 1,
            kind: ProblemKind::Missing {
                last_anchored: last.position,
                missing: last.position - report.verified,
            },
        });
        return Ok(());
    }
    let stored_at_last = if report.verified == last.position {
        Some(report.head_hash)
    } else {
        storage
            .frame(last.position)?
            .as_deref()
            .and_then(Frame::parse)
            .map(|f| f.hash)
    };
    if stored_at_last == Some(last.hash) {
        // The chain verified and ends the anchored prefix on the anchored hash: every hash
        // before it is the anchored one too (the chain links them).
        return Ok(());
    }
    // A consistent rewrite: find the first position whose hash differs from the anchored one.
    let start = anchor.start().unwrap_or(1);
    let mut anchored = Vec::with_capacity((last.position + 1 - start) as usize);
    anchor.for_each(&mut |position, hash| {
        if position <= last.position {
            anchored.push(*hash);
        }
    })?;
    let mut first = None;
    storage.scan(start, &mut |position, frame| {
        let Some(expected) = anchored.get((position - start) as usize) else {
            return false;
        };
        let stored = Frame::parse(frame).map_or(Hash::ZERO, |f| f.hash);
        if stored != *expected {
            first = Some((position, *expected, stored));
            return false;
        }
        true
    })?;
    let (position, anchored, stored) = first.unwrap_or((last.position, last.hash, Hash::ZERO));
    report.problem = Some(Problem {
        position,
        kind: ProblemKind::DiffersFromAnchor {
            anchored,
            stored,
            last_anchored: last.position,
        },
    });
    Ok(())
}

/// Runs `f`, turning a panic inside it (sled panics on some damaged files, in its recovery at
/// open and in iterators) into an error naming what was being done and what to do.
pub(crate) fn catch_damage<T>(doing: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(StorageError::corrupt(format!(
                "{doing}: the storage engine failed on damaged files ({message}); restore the ledger's files from a backup (docs/reliability.md)"
            ))
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> Hash {
        Hash([n; 32])
    }

    fn frame(hash: Hash) -> Vec<u8> {
        crate::chain::encode_frame(1, &Hash::ZERO, &hash, b"record")
    }

    /// An anchor at `path` holding entries of `sizes` events from position 1.
    fn write(path: &Path, sizes: &[u64]) -> u64 {
        let mut anchor = Anchor::open(path).unwrap();
        let mut position = 0;
        for size in sizes {
            let frames: Vec<(u64, Vec<u8>)> = (0..*size)
                .map(|_| {
                    position += 1;
                    (position, frame(hash(position as u8)))
                })
                .collect();
            anchor.stage(&frames);
            anchor.sync_through(position).unwrap();
        }
        position
    }

    fn anchored(path: &Path) -> Vec<(u64, Hash)> {
        let anchor = Anchor::open(path).unwrap();
        let mut all = Vec::new();
        anchor.for_each(&mut |p, h| all.push((p, *h))).unwrap();
        all
    }

    #[test]
    fn entries_read_back_in_position_order_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger-anchor");
        let last = write(&path, &[1, 3, 100, 2]);
        let all = anchored(&path);
        assert_eq!(all.len() as u64, last);
        for (i, (p, h)) in all.iter().enumerate() {
            assert_eq!(*p, i as u64 + 1);
            assert_eq!(*h, hash(*p as u8));
        }
        let anchor = Anchor::open(&path).unwrap();
        assert_eq!(anchor.start(), Some(1));
        assert_eq!(anchor.last().unwrap().position, last);
        assert!(anchor.damage().is_none());
    }

    #[test]
    fn sync_through_anchors_only_up_to_the_position_given() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        let mut anchor = Anchor::open(&path).unwrap();
        let frames: Vec<_> = (1..=5).map(|p| (p, frame(hash(p as u8)))).collect();
        anchor.stage(&frames);
        anchor.sync_through(3).unwrap();
        assert_eq!(anchor.last().unwrap().position, 3);
        assert_eq!(anchored(&path).len(), 3);
        anchor.sync_through(5).unwrap();
        assert_eq!(anchored(&path).len(), 5);
    }

    #[test]
    fn a_torn_last_entry_is_cut_off_at_every_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        write(&path, &[2, 3]);
        let entry = |hashes: usize| 4 + BODY_HEAD + hashes * 32 + CHECK_LEN;
        let second = HEADER_LEN as usize + entry(2);
        let written = std::fs::read(&path).unwrap();
        assert!(
            written[second + entry(3)..].iter().all(|b| *b == 0),
            "zeros written ahead"
        );
        let full = written[..second + entry(3)].to_vec();
        for cut in second..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let anchor = Anchor::open(&path).unwrap();
            assert!(anchor.damage().is_none(), "cut at {cut}");
            assert_eq!(anchor.last().unwrap().position, 2, "cut at {cut}");
            drop(anchor);
            let kept = std::fs::read(&path).unwrap();
            assert_eq!(kept[..second], full[..second], "cut at {cut}");
            assert!(
                kept[second..].iter().all(|b| *b == 0),
                "cut at {cut}: torn bytes stay"
            );
        }
        // A tail of zeros (written ahead, or by a file system that extended the file first)
        // is room for the next entries.
        let mut zeros = full[..second].to_vec();
        zeros.extend_from_slice(&[0u8; 50]);
        std::fs::write(&path, &zeros).unwrap();
        assert_eq!(Anchor::open(&path).unwrap().last().unwrap().position, 2);
        // Garbage followed by zeros (a torn entry in room written ahead) is cut off.
        let mut garbage = full[..second].to_vec();
        garbage.extend_from_slice(&full[second..second + 20]);
        garbage.extend_from_slice(&[0u8; 50]);
        std::fs::write(&path, &garbage).unwrap();
        assert_eq!(Anchor::open(&path).unwrap().last().unwrap().position, 2);
        assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, second);
        let mut anchor = Anchor::open(&path).unwrap();
        let frames = [(3, frame(hash(3)))];
        anchor.stage(&frames);
        anchor.sync_through(3).unwrap();
        drop(anchor);
        assert_eq!(
            anchored(&path).last().unwrap().0,
            3,
            "appends after the cut read back"
        );
    }

    #[test]
    fn a_bad_entry_with_entries_after_it_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        write(&path, &[2, 3, 4]);
        let mut bytes = std::fs::read(&path).unwrap();
        // A byte of the first entry's hashes.
        bytes[HEADER_LEN as usize + 4 + BODY_HEAD + 5] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let anchor = Anchor::open(&path).unwrap();
        let damage = anchor.damage().expect("damage in the middle is reported");
        assert!(damage.contains("checksum"), "{damage}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "a damaged anchor is not cut"
        );
    }

    #[test]
    fn a_file_that_is_not_an_anchor_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        std::fs::write(&path, b"something else entirely, not an anchor").unwrap();
        assert!(Anchor::open(&path).unwrap().damage().is_some());
    }

    #[test]
    fn anchor_path_is_next_to_the_ledger_directory() {
        assert_eq!(
            anchor_path(Path::new("/data/ledger")),
            PathBuf::from("/data/ledger-anchor")
        );
    }
}
