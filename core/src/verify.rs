//! Verification of the whole chain, and what it reports when something is wrong.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, SyncSender};

use crate::chain::Frame;
use crate::error::Result;
use crate::record::{decode_record, Hash};
use crate::storage::Storage;

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
}

impl VerifyReport {
    /// True when every stored event verified.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
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
    if decode {
        decode_record(position, frame.format_version, frame.record)
            .map_err(|e| problem(ProblemKind::Undecodable(e.to_string())))?;
    }
    Ok(frame.hash)
}

/// Frames handed to a checking thread at a time.
const CHUNK_FRAMES: usize = 1024;

/// Consecutive stored frames, copied out of storage for checking on another thread.
struct Chunk {
    /// The stored hash of the frame before the first one ([`Hash::ZERO`] before position 1).
    prev: Hash,
    /// Position of each frame and where its bytes end in `bytes`.
    frames: Vec<(u64, usize)>,
    bytes: Vec<u8>,
    /// A gap found right after the last frame: the chain stops there.
    gap: Option<Problem>,
}

/// What checking one chunk found.
struct Checked {
    verified: u64,
    last_hash: Hash,
    problem: Option<Problem>,
}

impl Chunk {
    fn new(prev: Hash) -> Self {
        Chunk {
            prev,
            frames: Vec::with_capacity(CHUNK_FRAMES),
            bytes: Vec::with_capacity(CHUNK_FRAMES * 512),
            gap: None,
        }
    }

    /// Checks every frame in order, each against the hash of the one before, and decodes it.
    fn check(&self) -> Checked {
        let mut prev = self.prev;
        let mut start = 0;
        let mut verified = 0;
        for &(position, end) in &self.frames {
            match check_frame(position, &self.bytes[start..end], &prev, true) {
                Ok(hash) => prev = hash,
                Err(problem) => {
                    return Checked {
                        verified,
                        last_hash: prev,
                        problem: Some(problem),
                    }
                }
            }
            verified += 1;
            start = end;
        }
        Checked {
            verified,
            last_hash: prev,
            problem: self.gap.clone(),
        }
    }
}

/// Verifies the whole chain in `storage`, calling `progress(verified, total)` now and then.
///
/// The work is split across threads: one scans storage and copies frames out in chunks, one
/// checker per core recomputes hashes, checks links and decodes records (the scanner waits for
/// them most of the time, so the cores stay busy), and this thread collects their
/// findings in position order. The first problem in position order is reported, exactly as a
/// sequential check would; the chunk boundaries only decide who checks what. A chunk's first
/// frame is checked against the stored hash of the frame before it, which the chunk before has
/// verified (or else reports the first problem itself).
pub(crate) fn verify_chain(
    storage: &dyn Storage,
    total: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let mut inputs = Vec::with_capacity(workers);
        let mut outputs = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (chunk_tx, chunk_rx) = mpsc::sync_channel::<Chunk>(2);
            let (checked_tx, checked_rx) = mpsc::channel::<Checked>();
            scope.spawn(move || {
                for chunk in chunk_rx {
                    if checked_tx.send(chunk.check()).is_err() {
                        break;
                    }
                }
            });
            inputs.push(chunk_tx);
            outputs.push(checked_rx);
        }
        let stop = &stop;
        let scanner = scope.spawn(move || scan_chunks(storage, &inputs, stop));

        let mut report = VerifyReport {
            verified: 0,
            head_hash: Hash::ZERO,
            problem: None,
        };
        let mut next_progress = PROGRESS_EVERY;
        'collect: for turn in 0.. {
            let Ok(checked) = outputs[turn % workers].recv() else {
                break 'collect;
            };
            report.verified += checked.verified;
            if checked.verified > 0 {
                report.head_hash = checked.last_hash;
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
        if report.problem.is_none() {
            scanned?;
        }
        progress(report.verified, total);
        Ok(report)
    })
}

/// How often (in verified events) verification reports progress.
const PROGRESS_EVERY: u64 = 65_536;

/// Scans every frame from position 1 and deals them out in chunks, round robin.
fn scan_chunks(
    storage: &dyn Storage,
    workers: &[SyncSender<Chunk>],
    stop: &AtomicBool,
) -> Result<()> {
    let mut expected = 1u64;
    let mut chunk = Chunk::new(Hash::ZERO);
    let mut turn = 0usize;
    let mut closed = false;
    let send = |chunk: Chunk, turn: &mut usize| -> bool {
        let ok = workers[*turn % workers.len()].send(chunk).is_ok();
        *turn += 1;
        ok
    };
    storage.scan(1, &mut |position, bytes| {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        if position != expected {
            chunk.gap = Some(Problem {
                position: expected,
                kind: ProblemKind::Gap { found: position },
            });
            return false;
        }
        chunk.bytes.extend_from_slice(bytes);
        chunk.frames.push((position, chunk.bytes.len()));
        expected += 1;
        if chunk.frames.len() == CHUNK_FRAMES {
            let prev = Frame::parse(bytes).map_or(Hash::ZERO, |f| f.hash);
            let full = std::mem::replace(&mut chunk, Chunk::new(prev));
            if !send(full, &mut turn) {
                closed = true;
                return false;
            }
        }
        true
    })?;
    if !closed && (!chunk.frames.is_empty() || chunk.gap.is_some()) {
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

    /// Storage that shows a damaged frame, or hides one, when scanned.
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
            self.inner.scan(from, &mut |position, bytes| {
                if Some(position) == self.hide {
                    return true;
                }
                if Some(position) == self.flip {
                    let mut copy = bytes.to_vec();
                    let last = copy.len() - 1;
                    copy[last] ^= 1;
                    return visit(position, &copy);
                }
                visit(position, bytes)
            })
        }
        fn stream_positions(&self, patient: &Pid, from: u64, limit: usize) -> Result<Vec<u64>> {
            self.inner.stream_positions(patient, from, limit)
        }
        fn idempotency(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.inner.idempotency(key)
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

    /// A ledger of `events` events (more than one verification range) in `dir`.
    fn build(dir: &std::path::Path, events: u64) {
        let ledger = Ledger::open(dir, LedgerConfig::default()).unwrap();
        let actor = Actor {
            id: ActorId::parse("gp-1").unwrap(),
            role: Role::Gp,
            name: Text::new("GP").unwrap(),
        };
        let request = |submissions| AppendRequest {
            patient: PatientId::parse("patient-1").unwrap(),
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
        ledger.append(request(vec![submission(found)])).unwrap();
        let note = Command::AddNote(Note {
            kind: NoteKind::Note,
            subject: Text::new("s").unwrap(),
            body: Text::new("b").unwrap(),
        });
        let mut written = 1;
        while written < events {
            let n = (events - written).min(500);
            let subs = (0..n).map(|_| submission(note.clone())).collect();
            ledger.append(request(subs)).unwrap();
            written += n;
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

    #[test]
    fn parallel_verification_reports_the_first_problem_in_position_order() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path(), 5_000);

        let intact = verify_damaged(dir.path(), None, None);
        assert!(intact.is_intact(), "{:?}", intact.problem);
        assert_eq!(intact.verified, 5_000);

        for position in [1, 1024, 1025, 2049, 4999, 5000] {
            let report = verify_damaged(dir.path(), Some(position), None);
            let problem = report.problem.expect("a flipped byte is found");
            assert_eq!(problem.position, position);
            assert!(matches!(problem.kind, ProblemKind::HashMismatch { .. }));
            assert_eq!(report.verified, position - 1);
        }

        let report = verify_damaged(dir.path(), None, Some(3000));
        let problem = report.problem.expect("a hidden frame is a gap");
        assert_eq!(problem.position, 3000);
        assert_eq!(problem.kind, ProblemKind::Gap { found: 3001 });
        assert_eq!(report.verified, 2999);

        // A hidden last frame is the end of the chain, not a problem.
        let report = verify_damaged(dir.path(), None, Some(5000));
        assert!(report.is_intact());
        assert_eq!(report.verified, 4999);
    }
}
