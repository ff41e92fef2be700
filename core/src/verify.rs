//! Verification of the whole chain, and what it reports when something is wrong.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};

use crate::chain::Frame;
use crate::error::Result;
use crate::heads::{HeadsMap, HeadsRun, PatientHead, Stretch};
use crate::merkle::{cover, event_leaf, Frontier, TreeHash};
use crate::record::{decode_record, Hash, Record};
use crate::storage::{frames_in, Storage, StoredValue};

/// What is wrong at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The stored hash is not the hash of the stored bytes: the record or its header was changed.
    HashMismatch {
        /// Hash in the frame.
        stored: Hash,
        /// Hash of the bytes as they are.
        computed: Hash,
    },
    /// The stored previous hash is not the hash of the event before.
    BrokenLink {
        /// The hash of the event before.
        expected: Hash,
        /// What the frame says.
        stored: Hash,
    },
    /// A position is missing: the chain jumps from `position - 1` to `found`.
    Gap {
        /// The next position present.
        found: u64,
    },
    /// The frame or record cannot be decoded.
    Undecodable(String),
    /// Acknowledged events are missing at the end: the anchor holds events up to
    /// `last_anchored`, the ledger ends before `position`.
    Missing {
        /// The last position the anchor holds.
        last_anchored: u64,
        /// How many acknowledged events are missing.
        missing: u64,
    },
    /// The event's hash differs from the one anchored when it was acknowledged: it was
    /// rewritten (and the hashes after it recomputed).
    DiffersFromAnchor {
        /// The hash the anchor holds.
        anchored: Hash,
        /// The hash stored now.
        stored: Hash,
        /// The last position the anchor holds.
        last_anchored: u64,
    },
    /// The per-patient index disagrees with the event stored at this position.
    Index(String),
    /// The anchor file itself is damaged; what and where.
    AnchorDamaged(String),
}

/// The first problem found in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The global position where the chain first fails.
    pub position: u64,
    /// What is wrong there.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.position;
        match &self.kind {
            ProblemKind::HashMismatch { stored, computed } => write!(
                f,
                "hash mismatch at position {p}: stored {stored}, computed {computed} (the record was changed)"
            ),
            ProblemKind::BrokenLink { expected, stored } => write!(
                f,
                "broken link at position {p}: previous hash should be {expected}, frame says {stored}"
            ),
            ProblemKind::Gap { found } => {
                write!(f, "gap at position {p}: the next stored position is {found}")
            }
            ProblemKind::Undecodable(detail) => {
                write!(f, "undecodable record at position {p}: {detail}")
            }
            ProblemKind::Missing { last_anchored, missing } => write!(
                f,
                "acknowledged events missing: the ledger ends at position {}, the anchor holds acknowledged events up to position {last_anchored}: {missing} acknowledged events are missing",
                p - 1
            ),
            ProblemKind::DiffersFromAnchor { anchored, stored, last_anchored } => write!(
                f,
                "changed event at position {p}: its hash is {stored}, the anchor holds {anchored} (the anchor holds acknowledged events up to position {last_anchored}; 0 acknowledged events are missing, events from position {p} were rewritten)"
            ),
            ProblemKind::Index(detail) => {
                write!(f, "per-patient index wrong at position {p}: {detail}")
            }
            ProblemKind::AnchorDamaged(detail) => write!(
                f,
                "the anchor is damaged after position {}: {detail}",
                p.saturating_sub(1)
            ),
        }
    }
}

/// The result of verifying the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events checked and found intact.
    pub verified: u64,
    /// The hash of the last intact event ([`Hash::ZERO`] for an empty ledger).
    pub head_hash: Hash,
    /// The first problem, if any; checking stops there.
    pub problem: Option<Problem>,
    /// Roots of the Merkle tree recomputed from the verified events' hashes alone (not from the
    /// stored subtrees), by tree size, smallest first, when asked for
    /// ([`crate::Ledger::verify_with_roots`]): at `verified`, and at each size asked for that
    /// verification reached. Empty from [`crate::Ledger::verify`].
    pub tree_roots: Vec<(u64, TreeHash)>,
}

impl VerifyReport {
    /// True when every stored event verified.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }

    /// The Merkle root recomputed at tree size `size`, if verification reached it and it was
    /// asked for (the root at `verified` is, whenever roots are).
    pub fn tree_root(&self, size: u64) -> Option<TreeHash> {
        self.tree_roots
            .iter()
            .find(|(at, _)| *at == size)
            .map(|(_, root)| *root)
    }
}

/// Checks one stored frame at `position` against the hash of the event before it.
/// Returns the frame's hash when intact.
pub fn check_frame(
    position: u64,
    bytes: &[u8],
    prev: &Hash,
    decode: bool,
) -> Result<Hash, Problem> {
    check_frame_record(position, bytes, prev, decode).map(|(hash, _)| hash)
}

/// [`check_frame`], returning the decoded record too when `decode` is set.
fn check_frame_record(
    position: u64,
    bytes: &[u8],
    prev: &Hash,
    decode: bool,
) -> Result<(Hash, Option<Record>), Problem> {
    let problem = |kind| Problem { position, kind };
    let frame = Frame::parse(bytes)
        .ok_or_else(|| problem(ProblemKind::Undecodable("frame header is malformed".into())))?;
    let computed = frame.computed_hash(position);
    if computed != frame.hash {
        return Err(problem(ProblemKind::HashMismatch {
            stored: frame.hash,
            computed,
        }));
    }
    if frame.prev_hash != *prev {
        return Err(problem(ProblemKind::BrokenLink {
            expected: *prev,
            stored: frame.prev_hash,
        }));
    }
    if !decode {
        return Ok((frame.hash, None));
    }
    let record = decode_record(position, frame.format_version, frame.record)
        .map_err(|e| problem(ProblemKind::Undecodable(e.to_string())))?;
    Ok((frame.hash, Some(record)))
}

/// The per-patient index as stored: each patient's positions by revision (0 where the index
/// holds none), read before the frames so that each frame can be checked against it.
#[derive(Default)]
struct Index {
    streams: HashMap<Vec<u8>, Vec<u64>>,
    /// Entries at positions up to the limit, each of which some frame must match.
    entries: u64,
    /// The first inconsistency inside the index itself (a revision listed twice).
    problem: Option<Problem>,
}

impl Index {
    /// Reads the index from storage; `None` when the storage keeps none to list. Entries past
    /// `limit` (appends written since verification began) are left out.
    fn read(storage: &dyn Storage, limit: u64) -> Result<Option<Index>> {
        let mut index = Index::default();
        let listed = storage.scan_index(&mut |id, first, run| {
            let positions = index.streams.entry(id.to_vec()).or_default();
            for (offset, bytes) in run.chunks_exact(8).enumerate() {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                let position = u64::from_be_bytes(be);
                let slot = (first + offset as u64).saturating_sub(1) as usize;
                if position > limit || first == 0 {
                    continue;
                }
                if positions.len() <= slot {
                    positions.resize(slot + 1, 0);
                }
                if positions[slot] != 0 && index.problem.is_none() {
                    index.problem = Some(Problem {
                        position,
                        kind: ProblemKind::Index(format!(
                            "revision {} of patient {} is listed twice, at positions {} and {position}",
                            slot + 1,
                            String::from_utf8_lossy(id),
                            positions[slot]
                        )),
                    });
                }
                positions[slot] = position;
                index.entries += 1;
            }
            true
        })?;
        Ok(listed.then_some(index))
    }

    /// Checks that the index maps the record's patient and revision to `position`.
    fn check(&self, position: u64, record: &Record) -> Result<(), Problem> {
        let id = record.patient.as_str();
        let listed = self
            .streams
            .get(id.as_bytes())
            .and_then(|p| p.get(record.revision.saturating_sub(1) as usize))
            .copied()
            .unwrap_or(0);
        if listed == position {
            return Ok(());
        }
        let detail = if listed == 0 {
            format!(
                "the index holds no entry for patient {id} revision {}; reads of this patient skip the event",
                record.revision
            )
        } else {
            format!(
                "the index maps patient {id} revision {} to position {listed}",
                record.revision
            )
        };
        Err(Problem {
            position,
            kind: ProblemKind::Index(detail),
        })
    }

    /// After every frame up to `verified` matched an entry: the first entry no frame matched
    /// (one past the last event, or a position listed for two revisions).
    fn unmatched(&self, matched: u64, verified: u64) -> Option<Problem> {
        if matched == self.entries {
            return None;
        }
        let mut seen = std::collections::HashSet::new();
        let mut found = None;
        for (id, positions) in &self.streams {
            for (slot, position) in positions.iter().enumerate() {
                let extra = *position > verified || (*position != 0 && !seen.insert(*position));
                if extra && found.is_none_or(|(p, _, _)| *position < p) {
                    found = Some((*position, id, slot + 1));
                }
            }
        }
        let (position, id, revision) = found?;
        Some(Problem {
            position,
            kind: ProblemKind::Index(format!(
                "the index lists patient {} revision {revision} at position {position}, which holds no such event",
                String::from_utf8_lossy(id)
            )),
        })
    }
}

/// Stored bytes handed to a checking thread at a time (about a thousand events); small in unit
/// tests, so that a short chain crosses many chunk boundaries.
const CHUNK_BYTES: usize = if cfg!(test) { 2 * 1024 } else { 384 * 1024 };

/// Consecutive stored values, shared with storage rather than copied, for checking on another
/// thread.
struct Chunk {
    /// The position the first frame must have.
    first: u64,
    /// The stored hash of the frame before the first one ([`Hash::ZERO`] before position 1).
    prev: Hash,
    /// Each stored value with its key's position: one frame, or a group of them.
    values: Vec<(u64, StoredValue)>,
}

/// What checking one chunk found.
struct Checked {
    verified: u64,
    /// Frames checked against the per-patient index: matched in it ([`Against::Index`]), or
    /// added to the digest ([`Against::Digest`]).
    indexed: u64,
    /// The sum of the keyed hashes of the frames' index entries ([`Against::Digest`]).
    digest: u64,
    last_hash: Hash,
    /// The Merkle tree's leaves of the verified frames, as complete subtrees ([`cover`]).
    blocks: Vec<(u8, TreeHash)>,
    /// Each patient's events among the verified frames up to the heads map's size, in the
    /// order of their first event, when the heads map is asked for.
    heads: Vec<HeadsRun>,
    /// The first of those events that does not follow its patient's revision before it in
    /// this chunk; no run takes events after it.
    heads_problem: Option<Problem>,
    problem: Option<Problem>,
}

/// What a verification recomputes from the events it checks, besides checking them.
#[derive(Clone, Copy, Default)]
pub(crate) struct Recompute<'a> {
    /// The Merkle tree's roots: at the end, and at each of these sizes reached.
    pub(crate) tree_sizes: Option<&'a [u64]>,
    /// The heads map of the tree of this size.
    pub(crate) heads_at: Option<u64>,
}

/// What a verification found, and the heads map it recomputed when asked for: `None` when the
/// chain has a problem or ends before the map's size, an error when an event does not follow
/// its patient's revision before it.
pub(crate) struct Verified {
    pub(crate) report: VerifyReport,
    pub(crate) heads: Option<Result<HeadsMap>>,
}

/// What each frame's record is checked against for the per-patient index.
#[derive(Clone, Copy)]
enum Against<'a> {
    /// The storage keeps no index to list: nothing.
    Nothing,
    /// A digest of every frame's index entry (patient, revision, position), compared with the
    /// same digest of the stored index once both are read: the index is read beside the
    /// frames, in a thread of its own, without holding it in memory.
    Digest(&'a RandomState),
    /// The index as read beforehand: each frame is looked up in it, which names the first
    /// wrong entry in position order.
    Index(&'a Index),
}

/// The keyed hash of one index entry, summed into the digests: SipHash with a key drawn for
/// each verification, so that no stored content can be made to cancel out in the sum.
fn entry_hash(keys: &RandomState, patient: &[u8], revision: u64, position: u64) -> u64 {
    keys.hash_one((patient, revision, position))
}

impl Chunk {
    fn new(first: u64, prev: Hash) -> Self {
        Chunk {
            first,
            prev,
            values: Vec::with_capacity(1024),
        }
    }

    /// Checks every frame in order, each at the position after the one before and against its
    /// hash, decodes it, and checks it against the per-patient index up to `limit`; hashes the
    /// verified frames into the Merkle tree's subtrees, cut at the tree sizes in `cuts`, when
    /// the tree is asked for.
    fn check(&self, against: Against<'_>, limit: u64, recompute: Recompute<'_>) -> Checked {
        let cuts = recompute.tree_sizes;
        let heads_at = recompute.heads_at.unwrap_or(0);
        let mut prev = self.prev;
        let mut expected = self.first;
        let mut checked = Checked {
            verified: 0,
            indexed: 0,
            digest: 0,
            last_hash: prev,
            blocks: Vec::new(),
            heads: Vec::new(),
            heads_problem: None,
            problem: None,
        };
        let mut leaves = Vec::with_capacity(1024);
        let mut stretch = Stretch::default();
        'frames: for (first, value) in &self.values {
            for (position, frame) in frames_in(*first, value) {
                if position != expected {
                    checked.problem = Some(Problem {
                        position: expected,
                        kind: ProblemKind::Gap { found: position },
                    });
                    break 'frames;
                }
                let record = match check_frame_record(position, frame, &prev, true) {
                    Ok((hash, record)) => {
                        prev = hash;
                        record
                    }
                    Err(problem) => {
                        checked.problem = Some(problem);
                        break 'frames;
                    }
                };
                if let Some(record) = record.filter(|_| position <= limit) {
                    if position <= heads_at {
                        let head = PatientHead {
                            revision: record.revision,
                            position,
                            hash: prev,
                        };
                        stretch.add(record.patient.as_str(), head);
                    }
                    match against {
                        Against::Nothing => {}
                        Against::Digest(keys) => {
                            let patient = record.patient.as_str().as_bytes();
                            let entry = entry_hash(keys, patient, record.revision, position);
                            checked.digest = checked.digest.wrapping_add(entry);
                        }
                        Against::Index(index) => {
                            if let Err(problem) = index.check(position, &record) {
                                checked.problem = Some(problem);
                                break 'frames;
                            }
                        }
                    }
                    checked.indexed += 1;
                }
                if cuts.is_some() {
                    leaves.push(event_leaf(&prev));
                }
                checked.verified += 1;
                expected += 1;
            }
        }
        checked.last_hash = prev;
        if let Some(cuts) = cuts {
            checked.blocks = cover(self.first - 1, &leaves, cuts);
        }
        (checked.heads, checked.heads_problem) = stretch.finish();
        checked
    }
}

/// The per-patient index's entries up to `limit`, counted and digested as the checkers digest
/// the frames' ([`Against::Digest`]); `None` when the storage keeps no index to list.
fn index_digest(
    storage: &dyn Storage,
    limit: u64,
    keys: &RandomState,
    stop: &AtomicBool,
) -> Result<Option<(u64, u64)>> {
    let (mut entries, mut digest) = (0u64, 0u64);
    let listed = storage.scan_index(&mut |id, first, run| {
        if first == 0 {
            return true;
        }
        for (offset, bytes) in run.chunks_exact(8).enumerate() {
            let mut be = [0u8; 8];
            be.copy_from_slice(bytes);
            let position = u64::from_be_bytes(be);
            if position <= limit {
                let entry = entry_hash(keys, id, first + offset as u64, position);
                digest = digest.wrapping_add(entry);
                entries += 1;
            }
        }
        !stop.load(Ordering::Relaxed)
    })?;
    Ok(listed.then_some((entries, digest)))
}

/// Verifies the whole chain in `storage`, calling `progress(verified, total)` now and then, and
/// with `tree_sizes`, recomputes the Merkle tree's root at the end and at each of those sizes
/// it reaches.
///
/// A first pass checks the frames against a digest of the per-patient index, read beside them.
/// When it finds a problem, or the index's digest differs from the frames', a second pass reads
/// the index first and looks every frame up in it, which names the first problem in position
/// order, index or chain alike. Damage makes verification take about twice as long; an intact
/// ledger is read once.
///
/// `cancel` stops the scan between chunks when it turns true: the result is then `None`, since
/// what was not read is neither intact nor damaged.
pub(crate) fn verify_chain(
    storage: &dyn Storage,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
    cancel: &AtomicBool,
    recompute: Recompute<'_>,
) -> Result<Option<Verified>> {
    let keys = RandomState::new();
    let Some(first) = verify_pass(storage, total, progress, cancel, recompute, Some(&keys))? else {
        return Ok(None);
    };
    let agrees = first
        .index
        .is_none_or(|(entries, digest)| entries == first.indexed && digest == first.digest);
    if first.report.problem.is_none() && agrees {
        progress(first.report.verified, total);
        return Ok(Some(Verified {
            report: first.report,
            heads: first.heads,
        }));
    }
    // Something is wrong: the pass that holds the index names the first problem.
    let recompute = Recompute {
        heads_at: None,
        ..recompute
    };
    let Some(exact) = verify_pass(storage, total, &mut |_, _| {}, cancel, recompute, None)? else {
        return Ok(None);
    };
    let mut report = exact.report;
    if report.problem.is_none() {
        if let Some(index) = &exact.held {
            let matched_all = index.unmatched(exact.indexed, report.verified.min(total));
            report.problem = index.problem.clone().or(matched_all);
        }
    }
    progress(report.verified, total);
    Ok(Some(Verified {
        report,
        heads: None,
    }))
}

/// What one pass over the chain found.
struct Pass {
    report: VerifyReport,
    /// The heads map, when asked for and the pass reached its size without a problem.
    heads: Option<Result<HeadsMap>>,
    /// Frames checked against the index (up to the limit), and their digest.
    indexed: u64,
    digest: u64,
    /// The index's entries and their digest, in a pass that digests it.
    index: Option<(u64, u64)>,
    /// The index as read, in a pass that holds it.
    held: Option<Index>,
}

/// One pass over the chain: with `keys`, against a digest of the index read beside it (a
/// thread of its own); without, against the index read beforehand.
///
/// The work is split across threads: one scans storage and deals out the stored values in
/// chunks (shared, not copied), one checker per core recomputes hashes, checks links and
/// decodes records (the scanner waits for them most of the time, so the cores stay busy), and
/// this thread collects their findings in position order. The first problem in position order
/// is reported, exactly as a sequential check would; the chunk boundaries only decide who
/// checks what. A chunk's first frame is checked against the stored hash of the frame before
/// it, which the chunk before has verified (or else reports the first problem itself).
fn verify_pass(
    storage: &dyn Storage,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
    cancel: &AtomicBool,
    recompute: Recompute<'_>,
    keys: Option<&RandomState>,
) -> Result<Option<Pass>> {
    let tree_sizes = recompute.tree_sizes;
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let stop = AtomicBool::new(false);
    let held = match keys {
        Some(_) => None,
        None => Index::read(storage, total)?,
    };
    let pass = std::thread::scope(|scope| -> Result<Option<Pass>> {
        let stop = &stop;
        let digesting =
            keys.map(|keys| scope.spawn(move || index_digest(storage, total, keys, stop)));
        let against = match (keys, &held) {
            (Some(keys), _) => Against::Digest(keys),
            (None, Some(index)) => Against::Index(index),
            (None, None) => Against::Nothing,
        };
        let mut inputs = Vec::with_capacity(workers);
        let mut outputs = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (chunk_tx, chunk_rx) = mpsc::sync_channel::<Chunk>(2);
            let (checked_tx, checked_rx) = mpsc::channel::<Checked>();
            scope.spawn(move || {
                for chunk in chunk_rx {
                    if checked_tx
                        .send(chunk.check(against, total, recompute))
                        .is_err()
                    {
                        break;
                    }
                }
            });
            inputs.push(chunk_tx);
            outputs.push(checked_rx);
        }
        let scanner = scope.spawn(move || scan_chunks(storage, &inputs, stop, cancel));

        let mut pass = Pass {
            report: VerifyReport {
                verified: 0,
                head_hash: Hash::ZERO,
                problem: None,
                tree_roots: Vec::new(),
            },
            heads: None,
            indexed: 0,
            digest: 0,
            index: None,
            held: None,
        };
        let mut heads = recompute.heads_at.map(|_| Ok(HeadsMap::new()));
        let mut frontier = Frontier::new();
        let mut roots = Vec::new();
        let wanted = |size: u64| tree_sizes.is_some_and(|sizes| sizes.contains(&size));
        if wanted(0) {
            roots.push((0, frontier.root()));
        }
        let mut next_progress = PROGRESS_EVERY;
        let mut cancelled = false;
        'collect: for turn in 0.. {
            if cancel.load(Ordering::Relaxed) {
                cancelled = true;
                stop.store(true, Ordering::Relaxed);
                break 'collect;
            }
            let Ok(checked) = outputs[turn % workers].recv() else {
                break 'collect;
            };
            let report = &mut pass.report;
            if let (Some(Ok(map)), Some(at)) = (&mut heads, recompute.heads_at) {
                let end = (report.verified + checked.verified).min(at);
                let runs = checked.heads;
                if let Err(e) = map.merge_runs(end, runs, checked.heads_problem) {
                    heads = Some(Err(e));
                }
            }
            report.verified += checked.verified;
            pass.indexed += checked.indexed;
            pass.digest = pass.digest.wrapping_add(checked.digest);
            if checked.verified > 0 {
                report.head_hash = checked.last_hash;
            }
            for (level, root) in checked.blocks {
                frontier.push_subtree(level, root);
                if wanted(frontier.size()) {
                    roots.push((frontier.size(), frontier.root()));
                }
            }
            while report.verified >= next_progress {
                progress(next_progress, total);
                next_progress += PROGRESS_EVERY;
            }
            if checked.problem.is_some() {
                report.problem = checked.problem;
                stop.store(true, Ordering::Relaxed);
                break 'collect;
            }
        }
        // Dropping the receivers stops the checkers, and with them the scanner.
        drop(outputs);
        let scanned = scanner
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let digested = digesting.map(|thread| {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        // The scanner also stops when `cancel` turns true after the last chunk was collected.
        if cancelled || (pass.report.problem.is_none() && cancel.load(Ordering::Relaxed)) {
            return Ok(None);
        }
        if pass.report.problem.is_none() {
            scanned?;
            pass.index = digested.transpose()?.flatten();
        }
        let at_end = roots.last().map(|(size, _)| *size);
        if tree_sizes.is_some() && at_end != Some(frontier.size()) {
            roots.push((frontier.size(), frontier.root()));
        }
        pass.report.tree_roots = roots;
        // A map short of its size (the chain ended or broke before it) is no map of that tree.
        pass.heads = heads.filter(|map| {
            pass.report.problem.is_none()
                && map
                    .as_ref()
                    .map_or(true, |m| Some(m.size()) == recompute.heads_at)
        });
        Ok(Some(pass))
    })?;
    Ok(pass.map(|pass| Pass { held, ..pass }))
}

/// How often (in verified events) verification reports progress.
const PROGRESS_EVERY: u64 = 65_536;

/// Scans every stored value from position 1 and deals them out in chunks, round robin. Each
/// chunk starts where the last frame of the chunk before ends, so a checker finds a gap or a
/// damaged group at the position a sequential check would.
fn scan_chunks(
    storage: &dyn Storage,
    workers: &[SyncSender<Chunk>],
    stop: &AtomicBool,
    cancel: &AtomicBool,
) -> Result<()> {
    let mut chunk = Chunk::new(1, Hash::ZERO);
    let mut bytes = 0;
    let mut turn = 0usize;
    let mut closed = false;
    let send = |chunk: Chunk, turn: &mut usize| -> bool {
        let ok = workers[*turn % workers.len()].send(chunk).is_ok();
        *turn += 1;
        ok
    };
    storage.scan_values(1, &mut |first, value| {
        if stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
            return false;
        }
        bytes += value.len();
        let full = bytes >= CHUNK_BYTES;
        chunk.values.push((first, value));
        // The next chunk goes on after this value's last frame (a value without one, which
        // only damage makes, stays in this chunk for its checker to report).
        let last = chunk
            .values
            .last()
            .filter(|_| full)
            .and_then(|(first, value)| {
                let (position, frame) = frames_in(*first, value).last()?;
                Some((position, Frame::parse(frame).map_or(Hash::ZERO, |f| f.hash)))
            });
        if let Some((position, hash)) = last {
            let full = std::mem::replace(&mut chunk, Chunk::new(position + 1, hash));
            bytes = 0;
            if !send(full, &mut turn) {
                closed = true;
                return false;
            }
        }
        true
    })?;
    if !closed && !chunk.values.is_empty() {
        send(chunk, &mut turn);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Command, Member, Note, NoteKind};
    use crate::ids::PatientId as Pid;
    use crate::ids::{ActorId, PatientId, Text};
    use crate::ledger::{AppendRequest, ExpectedRevision, Ledger, LedgerConfig, Submission};
    use crate::record::Actor;
    use crate::role::{Lead, Practitioner, Role};
    use crate::storage::{SledStorage, WriteBatch};

    /// Storage that shows a damaged frame, or hides the stored value holding a position (the
    /// frames of one append, as removing it from the files would), when scanned.
    struct Damaged {
        inner: SledStorage,
        flip: Option<u64>,
        hide: Option<u64>,
    }

    impl Storage for Damaged {
        fn last_frame(&self) -> Result<Option<(u64, Vec<u8>)>> {
            self.inner.last_frame()
        }
        fn frame(&self, position: u64) -> Result<Option<Vec<u8>>> {
            self.inner.frame(position)
        }
        fn scan(&self, from: u64, visit: &mut dyn FnMut(u64, &[u8]) -> bool) -> Result<()> {
            self.inner.scan(from, visit)
        }
        fn scan_values(
            &self,
            from: u64,
            visit: &mut dyn FnMut(u64, StoredValue) -> bool,
        ) -> Result<()> {
            fn holds(first: u64, value: &[u8], position: Option<u64>) -> Option<(u64, &[u8])> {
                frames_in(first, value).find(|(p, _)| Some(*p) == position)
            }
            self.inner.scan_values(from, &mut |first, value| {
                if holds(first, &value, self.hide).is_some() {
                    return true;
                }
                if let Some((_, frame)) = holds(first, &value, self.flip) {
                    let last = frame.as_ptr() as usize - value.as_ptr() as usize + frame.len() - 1;
                    let mut copy = value.to_vec();
                    copy[last] ^= 1;
                    return visit(first, copy.into());
                }
                visit(first, value)
            })
        }
        fn stream_positions(&self, patient: &Pid, from: u64, limit: usize) -> Result<Vec<u64>> {
            self.inner.stream_positions(patient, from, limit)
        }
        fn idempotency(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.inner.idempotency(key)
        }
        fn signed_request(&self, hash: &crate::Hash) -> Result<Option<Vec<u8>>> {
            self.inner.signed_request(hash)
        }
        fn commit(&self, batch: WriteBatch) -> Result<()> {
            self.inner.commit(batch)
        }
        fn sync(&self) -> Result<()> {
            self.inner.sync()
        }
        fn size_on_disk(&self) -> Result<u64> {
            self.inner.size_on_disk()
        }
        fn reopen(&self) -> Result<()> {
            self.inner.reopen()
        }
    }

    fn submission(command: Command) -> Submission {
        Submission {
            command,
            occurred_at: None,
            reason: Text::new("test").unwrap(),
        }
    }

    /// A ledger of `events` events in `dir`, appended 40 at a time: stored values of one frame
    /// (the first event) and groups of 16 and 8, spread over many chunks of the test's size.
    fn build(dir: &std::path::Path, events: u64) {
        build_for(dir, events, 1);
    }

    /// [`build`] for `patients` patients: each founded in turn, then appends of 1 to 40 notes
    /// to one patient after another.
    fn build_for(dir: &std::path::Path, events: u64, patients: u64) {
        let storage = Box::new(SledStorage::open(dir).unwrap());
        let ledger = Ledger::with_storage(storage, LedgerConfig::default()).unwrap();
        let actor = Actor {
            id: ActorId::parse("gp-1").unwrap(),
            role: Role::Gp,
            name: Text::new("GP").unwrap(),
            organisation: None,
        };
        let request = |n: u64, submissions| AppendRequest {
            patient: PatientId::parse(&format!("patient-{n}")).unwrap(),
            expected: ExpectedRevision::Any,
            actor: actor.clone(),
            submissions,
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        };
        let found = Command::AddCareTeamMember(Member {
            actor: actor.id.clone(),
            name: actor.name.clone(),
            agb: None,
            role: Role::Gp,
            lead: Lead::Cvrm,
            practitioner: Practitioner::Main,
        });
        for n in 1..=patients.min(events) {
            ledger
                .append(request(n, vec![submission(found.clone())]))
                .unwrap();
        }
        let note = Command::AddNote(Note {
            kind: NoteKind::Note,
            subject: Text::new("s").unwrap(),
            body: Text::new("b").unwrap(),
        });
        let mut written = patients.min(events);
        let mut turn = 0;
        while written < events {
            let size = if patients == 1 { 40 } else { 1 + turn * 7 % 40 };
            let n = (events - written).min(size);
            let subs = (0..n).map(|_| submission(note.clone())).collect();
            ledger.append(request(1 + turn % patients, subs)).unwrap();
            written += n;
            turn += 1;
        }
    }

    fn verify_damaged(dir: &std::path::Path, flip: Option<u64>, hide: Option<u64>) -> VerifyReport {
        let storage = Damaged {
            inner: SledStorage::open(dir).unwrap(),
            flip,
            hide,
        };
        let ledger = Ledger::with_storage(Box::new(storage), LedgerConfig::default()).unwrap();
        let mut last_progress = 0;
        let report = ledger
            .verify(&mut |done, _| {
                assert!(done >= last_progress, "progress never goes back");
                last_progress = done;
            })
            .unwrap();
        assert_eq!(last_progress, report.verified);
        report
    }

    /// Every position, on both sides of every chunk boundary and at every place in a group.
    #[test]
    fn parallel_verification_reports_the_first_problem_in_position_order() {
        const EVENTS: u64 = 401;
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), EVENTS);

        let intact = verify_damaged(dir.path(), None, None);
        assert!(intact.is_intact(), "{:?}", intact.problem);
        assert_eq!(intact.verified, EVENTS);
        let storage = Box::new(SledStorage::open(dir.path()).unwrap());
        let ledger = Ledger::with_storage(storage, LedgerConfig::default()).unwrap();
        assert_eq!(intact.head_hash, ledger.head().hash);
        drop(ledger);

        for position in 1..=EVENTS {
            let report = verify_damaged(dir.path(), Some(position), None);
            let problem = report.problem.expect("a flipped byte is found");
            assert_eq!(problem.position, position);
            assert!(matches!(problem.kind, ProblemKind::HashMismatch { .. }));
            assert_eq!(report.verified, position - 1);
        }

        // The first event alone, then appends of 40 stored as values of 16, 16 and 8 frames.
        // A hidden value is a gap at its first position, up to the next stored value; a hidden
        // last value is the end of the chain, not a problem.
        let appends = (2..=EVENTS).step_by(40);
        let firsts = std::iter::once(1).chain(appends.flat_map(|a| [a, a + 16, a + 32]));
        for first in firsts {
            let end_of_append = if first == 1 {
                1
            } else {
                (first - 2) / 40 * 40 + 41
            };
            let next = (first + 16).min(end_of_append + 1);
            let report = verify_damaged(dir.path(), None, Some(first));
            assert_eq!(report.verified, first - 1);
            if next > EVENTS {
                assert!(report.is_intact(), "{:?}", report.problem);
                continue;
            }
            let problem = report.problem.expect("a hidden value is a gap");
            assert_eq!(problem.position, first);
            assert_eq!(problem.kind, ProblemKind::Gap { found: next });
        }
    }

    /// The Merkle roots verification recomputes, at the head and at sizes on both sides of
    /// chunk boundaries, are those of the stored tree; the checkpoint check from them agrees
    /// with the one that reads the events again.
    #[test]
    fn verification_recomputes_the_merkle_roots_it_is_asked_for() {
        const EVENTS: u64 = 401;
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), EVENTS);
        let storage = Box::new(SledStorage::open(dir.path()).unwrap());
        let ledger = Ledger::with_storage(storage, LedgerConfig::default()).unwrap();
        let sizes: Vec<u64> = vec![0, 1, 2, 17, 63, 64, 65, 128, 200, 255, 256, 400, 401, 500];
        let report = ledger.verify_with_roots(&mut |_, _| {}, &sizes).unwrap();
        assert!(report.is_intact(), "{:?}", report.problem);
        for size in sizes.iter().copied().filter(|s| *s <= EVENTS) {
            let stored = ledger.tree_head(size).unwrap().root;
            assert_eq!(report.tree_root(size), Some(stored), "size {size}");
        }
        assert_eq!(
            report.tree_root(500),
            None,
            "a size beyond the head is not reached"
        );
        assert_eq!(
            report.tree_root(3),
            None,
            "a size not asked for is not kept"
        );
        let roots: Vec<u64> = report.tree_roots.iter().map(|(size, _)| *size).collect();
        assert!(roots.windows(2).all(|w| w[0] < w[1]), "{roots:?}");

        let plain = ledger.verify(&mut |_, _| {}).unwrap();
        assert_eq!(plain.tree_roots, vec![], "roots only when asked for");
        let head_only = ledger.verify_with_roots(&mut |_, _| {}, &[]).unwrap();
        let head_root = ledger.tree_head(EVENTS).unwrap().root;
        assert_eq!(head_only.tree_roots, vec![(EVENTS, head_root)]);
        let of_report = crate::checkpoint::check_tree_of(&report, &ledger, None).unwrap();
        let reading = crate::checkpoint::check_tree(&ledger, None).unwrap();
        assert_eq!(of_report, reading);
        assert_eq!(of_report.problem, None);
    }

    /// The heads map of a checkpoint's tree, recomputed in the verification's pass from chunks
    /// checked on several threads, is the map read from the events one by one, at every size
    /// on both sides of chunk boundaries; none for a size the ledger has not reached.
    #[test]
    fn verification_recomputes_the_heads_map_of_a_checkpoint() {
        const EVENTS: u64 = 401;
        let dir = tempfile::tempdir().unwrap();
        build_for(dir.path(), EVENTS, 7);
        let storage = Box::new(SledStorage::open(dir.path()).unwrap());
        let ledger = Ledger::with_storage(storage, LedgerConfig::default()).unwrap();
        for size in [0, 1, 6, 7, 8, 9, 40, 63, 64, 65, 200, 333, 400, 401] {
            let (report, heads) = ledger.verify_for_checkpoint(&mut |_, _| {}, size).unwrap();
            assert!(report.is_intact(), "{:?}", report.problem);
            assert_eq!(report.verified, EVENTS);
            assert_eq!(
                report.tree_root(size),
                Some(ledger.tree_head(size).unwrap().root)
            );
            let mut recomputed = heads.expect("a map of a size reached").unwrap();
            let mut read = HeadsMap::build(&ledger, size).unwrap();
            assert_eq!(recomputed.size(), size);
            assert_eq!(
                recomputed.line().unwrap(),
                read.line().unwrap(),
                "size {size}"
            );
            for n in 1..=7 {
                let key =
                    crate::heads::HeadKey::of(&PatientId::parse(&format!("patient-{n}")).unwrap());
                assert_eq!(
                    recomputed.head(&key),
                    read.head(&key),
                    "size {size}, patient {n}"
                );
            }
        }
        let (_, beyond) = ledger
            .verify_for_checkpoint(&mut |_, _| {}, EVENTS + 1)
            .unwrap();
        assert!(
            beyond.is_none(),
            "no map of a tree the ledger has not reached"
        );
    }
}
