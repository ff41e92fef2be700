//! Proofs about the ledger itself: tampering is found at its position, replay equals incremental
//! state, and concurrent writers neither lose nor duplicate a revision.

use std::path::Path;
use std::sync::Arc;

use careledger_core::event::{Command, Measurement, MeasurementSource, Note, NoteKind, SharedCare};
use careledger_core::ids::{ActorId, PatientId, Text};
use careledger_core::quantity::{Measure, Quantity};
use careledger_core::role::Role;
use careledger_core::verify::ProblemKind;
use careledger_core::{
    Actor, AppendRequest, Error, ExpectedRevision, Ledger, LedgerConfig, Submission,
};
use proptest::prelude::*;

use crate::common::tamper;

fn gp(n: usize) -> Actor {
    Actor {
        id: ActorId::parse(&format!("gp-{n}")).unwrap(),
        role: Role::Gp,
        name: Text::new("Dr. GP").unwrap(),
        organisation: None,
    }
}

fn submit(command: Command) -> Submission {
    Submission {
        command,
        occurred_at: None,
        reason: Text::new("consultation").unwrap(),
    }
}

fn request(
    patient: &str,
    actor: Actor,
    expected: ExpectedRevision,
    commands: Vec<Command>,
) -> AppendRequest {
    AppendRequest {
        patient: PatientId::parse(patient).unwrap(),
        expected,
        actor,
        submissions: commands.into_iter().map(submit).collect(),
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    }
}

fn found() -> Command {
    Command::StartSharedCare(SharedCare {
        arrangement: Text::new("CVRM by the GP").unwrap(),
    })
}

fn bp(systolic: i64) -> Command {
    Command::RecordMeasurement(Measurement {
        value: Quantity::new(Measure::SystolicBloodPressure, systolic).unwrap(),
        source: MeasurementSource::Practice,
    })
}

fn note(subject: &str) -> Command {
    Command::AddNote(Note {
        kind: NoteKind::Note,
        subject: Text::new(subject).unwrap(),
        body: Text::default(),
    })
}

/// A ledger shared by writer threads, with `patient` founded by `gp(actor)`; also returns how
/// many events the founding wrote.
fn shared_ledger(dir: &Path, patient: &str, actor: usize) -> (Arc<Ledger>, usize) {
    let ledger = Arc::new(Ledger::open(&dir.join("ledger"), LedgerConfig::default()).unwrap());
    let founded = ledger
        .append(request(
            patient,
            gp(actor),
            ExpectedRevision::NoStream,
            vec![found()],
        ))
        .unwrap();
    (ledger, founded.events.len())
}

/// A ledger with `patients` patients and `per_patient` measurements each.
fn build(dir: &Path, patients: usize, per_patient: usize) -> u64 {
    let ledger = Ledger::open(&dir.join("ledger"), LedgerConfig::default()).unwrap();
    for p in 0..patients {
        let id = format!("patient-{p}");
        ledger
            .append(request(
                &id,
                gp(0),
                ExpectedRevision::NoStream,
                vec![found()],
            ))
            .unwrap();
        let commands = (0..per_patient).map(|i| bp(110 + i as i64)).collect();
        ledger
            .append(request(&id, gp(0), ExpectedRevision::Any, commands))
            .unwrap();
    }
    ledger.head().position
}

/// Opens the ledger's sled database directly, as someone tampering with it would; waits (bounded)
/// until the ledger's own handle has let go of the lock.
fn open_raw(dir: &Path) -> sled::Db {
    for _ in 0..100 {
        match sled::open(dir.join("ledger")) {
            Ok(db) => return db,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
    panic!("the ledger's database stayed locked");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any single flipped byte of any stored frame is reported at exactly that frame's position.
    #[test]
    fn flipped_byte_is_reported_at_its_position(frame_pick in 0usize..1000, offset_pick in 0usize..10_000, bit in 0u8..8) {
        let dir = tempfile::tempdir().unwrap();
        let head = build(dir.path(), 3, 6);
        let position = 1 + (frame_pick as u64 % head);
        {
            let db = open_raw(dir.path());
            tamper::flip(&db, position, offset_pick, 1 << bit);
        }
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        let report = ledger.verify(&mut |_, _| {}).unwrap();
        let problem = report.problem.expect("a flipped byte is found");
        prop_assert_eq!(problem.position, position, "{}", problem);
        prop_assert_eq!(report.verified, position - 1);
    }

    /// Any valid random history replays to the same patient state as it had while appending.
    #[test]
    fn replay_from_zero_equals_incremental_state(readings in proptest::collection::vec(50i64..300, 1..40), batch in 1usize..8) {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        ledger.append(request("p", gp(0), ExpectedRevision::NoStream, vec![found()])).unwrap();
        for chunk in readings.chunks(batch) {
            let commands = chunk.iter().map(|r| bp(*r)).collect();
            ledger.append(request("p", gp(0), ExpectedRevision::Any, commands)).unwrap();
        }
        let patient = PatientId::parse("p").unwrap();
        let live = ledger.patient_state(&patient).unwrap();
        drop(ledger);
        let reopened = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        prop_assert_eq!(reopened.patient_state(&patient).unwrap(), live);
        let intact = reopened.verify(&mut |_, _| {}).unwrap().is_intact();
        prop_assert!(intact);
    }
}

#[test]
fn deleted_events_are_reported_as_a_gap_at_the_first_missing_position() {
    // Removing a stored value removes the frames written together in it.
    for removed in [1, 4, 12] {
        let dir = tempfile::tempdir().unwrap();
        let head = build(dir.path(), 2, 4);
        let (first, count) = {
            let db = open_raw(dir.path());
            let (key, value, _) = tamper::locate(&db, removed);
            let first = u64::from_be_bytes(key[1..9].try_into().unwrap());
            let count = careledger_core::storage::frames_in(first, &value).count() as u64;
            tamper::remove_value(&db, removed);
            (first, count)
        };
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        let report = ledger.verify(&mut |_, _| {}).unwrap();
        if first + count > head {
            // The last value removed: the chain is intact up to the new head, and the anchor
            // shows the acknowledged events missing after it.
            assert_eq!(report.verified, first - 1);
            let problem = report.problem.unwrap();
            assert!(
                matches!(problem.kind, ProblemKind::Missing { last_anchored, missing } if last_anchored == head && missing == count),
                "{problem}"
            );
            continue;
        }
        let problem = report.problem.unwrap();
        assert_eq!(problem.position, first, "{problem}");
        assert!(
            matches!(problem.kind, ProblemKind::Gap { found } if found == first + count),
            "{problem}"
        );
    }
}

#[test]
fn damaged_head_is_reported_on_open_and_writes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let head = build(dir.path(), 1, 3);
    {
        let db = open_raw(dir.path());
        tamper::change(&db, head, |frame| {
            let last = frame.len() - 1;
            frame[last] ^= 0xff;
        });
    }
    let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
    let problem = ledger
        .head_problem()
        .expect("the head check on open finds it");
    assert!(problem.contains(&format!("position {head}")), "{problem}");
    let refused = ledger
        .append(request(
            "patient-0",
            gp(0),
            ExpectedRevision::Any,
            vec![bp(120)],
        ))
        .unwrap_err();
    assert!(matches!(refused, Error::Damaged(_)), "{refused}");
}

/// Retries of one request racing each other (a client resending after a timeout, two gateways
/// delivering the same message) write it once, whether the first is still waiting for its group
/// commit or already stored; every caller gets the same events.
#[test]
fn concurrent_retries_with_one_idempotency_key_write_once() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let (ledger, founding) = shared_ledger(dir.path(), "p-1", 1);
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (ledger, barrier) = (ledger.clone(), barrier.clone());
            std::thread::spawn(move || {
                (0..ROUNDS)
                    .map(|round| {
                        let mut retry = request(
                            "p-1",
                            gp(1),
                            ExpectedRevision::Any,
                            vec![bp(120 + round as i64)],
                        );
                        retry.idempotency_key = Some(format!("message-{round}"));
                        barrier.wait();
                        ledger.append(retry).unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let outcomes: Vec<Vec<_>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for round in 0..ROUNDS {
        let round: Vec<_> = outcomes.iter().map(|o| &o[round]).collect();
        let written = round.iter().filter(|o| !o.replayed).count();
        assert_eq!(
            written, 1,
            "one caller writes, the others are answered with its events"
        );
        assert!(round.iter().all(|o| o.events == round[0].events));
    }
    let events = ledger.read_all(0, usize::MAX).unwrap();
    assert_eq!(events.len(), founding + ROUNDS);
    assert!(ledger.verify(&mut |_, _| {}).unwrap().is_intact());
}

/// A request that fails after some of its events were folded into the patient's state makes
/// the writer fold that state again from storage, while other appends to the same patient may
/// still be waiting for their group commit: no revision is lost or given twice.
#[test]
fn failed_requests_among_concurrent_appends_keep_revisions_gapless() {
    const THREADS: usize = 8;
    const WRITES: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let (ledger, founding) = shared_ledger(dir.path(), "p-1", 1);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let mut written = 0;
                for w in 0..WRITES {
                    if (t + w) % 3 == 0 {
                        // The first measurement is folded, the second is refused: nothing is written.
                        let mut failing =
                            request("p-1", gp(1), ExpectedRevision::Any, vec![bp(120), bp(125)]);
                        let tomorrow = careledger_core::Timestamp::now().plus_days(1);
                        failing.submissions[1].occurred_at = Some(tomorrow);
                        assert!(ledger.append(failing).is_err());
                    }
                    let outcome = ledger
                        .append(request("p-1", gp(1), ExpectedRevision::Any, vec![bp(130)]))
                        .unwrap();
                    written += outcome.events.len();
                }
                written
            })
        })
        .collect();
    let written: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let patient = PatientId::parse("p-1").unwrap();
    let stream = ledger.read_stream(&patient, 1, usize::MAX).unwrap();
    let revisions: Vec<u64> = stream.iter().map(|e| e.record.revision).collect();
    assert_eq!(
        revisions,
        (1..=(founding + written) as u64).collect::<Vec<_>>()
    );
    let all = ledger.read_all(0, usize::MAX).unwrap();
    assert_eq!(
        all.len(),
        stream.len(),
        "every event is the patient's, none lost"
    );
    assert!(ledger.verify(&mut |_, _| {}).unwrap().is_intact());
}

#[test]
fn concurrent_writers_with_exact_revisions_win_each_revision_once() {
    let dir = tempfile::tempdir().unwrap();
    let (ledger, _) = shared_ledger(dir.path(), "shared", 0);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let patient = PatientId::parse("shared").unwrap();
                let mut won = Vec::new();
                while won.len() < 25 {
                    let current = ledger.read_stream(&patient, 1, usize::MAX).unwrap().len() as u64;
                    let command = note(&format!("thread {t} write {}", won.len()));
                    match ledger.append(request(
                        "shared",
                        gp(0),
                        ExpectedRevision::Exact(current),
                        vec![command],
                    )) {
                        Ok(outcome) => won.push(outcome.revision),
                        Err(Error::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
                won
            })
        })
        .collect();
    let mut revisions: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    revisions.sort_unstable();
    // Founding wrote revisions 1 and 2; the 200 writes won 3..=202, each exactly once.
    assert_eq!(revisions, (3..=202).collect::<Vec<_>>());
    let events = ledger.read_all(0, usize::MAX).unwrap();
    assert_eq!(events.len(), 202);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.position, i as u64 + 1, "global positions are gapless");
        assert_eq!(
            e.record.revision,
            i as u64 + 1,
            "one patient: revision equals position"
        );
    }
    assert!(ledger.verify(&mut |_, _| {}).unwrap().is_intact());
}

#[test]
fn concurrent_writers_on_different_patients_are_all_durable_and_gapless() {
    let dir = tempfile::tempdir().unwrap();
    let ledger =
        Arc::new(Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let id = format!("patient-{t}");
                ledger
                    .append(request(
                        &id,
                        gp(t),
                        ExpectedRevision::NoStream,
                        vec![found()],
                    ))
                    .unwrap();
                (0..40)
                    .map(|i| {
                        ledger
                            .append(request(
                                &id,
                                gp(t),
                                ExpectedRevision::Any,
                                vec![bp(100 + i)],
                            ))
                            .unwrap()
                            .events[0]
                            .event_id
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acknowledged: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    drop(ledger);
    let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
    let events = ledger.read_all(0, usize::MAX).unwrap();
    assert_eq!(events.len(), 8 * 42);
    assert!(events
        .iter()
        .enumerate()
        .all(|(i, e)| e.position == i as u64 + 1));
    let stored: std::collections::HashSet<_> = events.iter().map(|e| e.record.event_id).collect();
    assert!(acknowledged.iter().all(|id| stored.contains(id)));
    assert!(ledger.verify(&mut |_, _| {}).unwrap().is_intact());
}

/// Where the scripted storage holds a thread until the test releases it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Point {
    /// Inside the sync that fails: released, it fails.
    Sync,
    /// Inside an idempotency lookup, which the ledger makes under its writer lock right before
    /// it stages an append.
    Lookup,
    /// Inside the first write to storage after the failing sync began, before sled gets it.
    Commit,
    /// Inside the first read of a patient's stream from storage after the failing sync began
    /// (the writer folding a patient's state again, under its lock).
    Fold,
}

/// Real sled storage that, once armed, holds the ledger's threads at [`Point`]s until the test
/// lets them go, and fails the sync it holds, as `fdatasync` does when the disk reports an
/// error: the threads are ordered by what they are doing, never by time.
struct Scripted {
    inner: careledger_core::storage::SledStorage,
    script: Arc<Script>,
}

#[derive(Default)]
struct Script {
    state: std::sync::Mutex<ScriptState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct ScriptState {
    armed: bool,
    /// Whether a write to storage is held after the failing sync began.
    hold_commit: bool,
    reached: std::collections::HashSet<Point>,
    released: std::collections::HashSet<Point>,
}

impl Script {
    fn arm(&self, hold_commit: bool) {
        let mut state = self.state.lock().unwrap();
        state.armed = true;
        state.hold_commit = hold_commit;
    }

    /// Holds the calling thread at `point` (once; later arrivals pass) until it is released.
    /// Whether it was held.
    fn hold(&self, point: Point, when: impl Fn(&ScriptState) -> bool) -> bool {
        let mut state = self.state.lock().unwrap();
        if !state.armed || state.reached.contains(&point) || !when(&state) {
            return false;
        }
        state.reached.insert(point);
        self.changed.notify_all();
        let (_state, timeout) = self
            .changed
            .wait_timeout_while(state, std::time::Duration::from_secs(30), |s| {
                !s.released.contains(&point)
            })
            .unwrap();
        assert!(!timeout.timed_out(), "{point:?} was never released");
        true
    }

    /// Waits until a thread is held at `point`.
    fn reached(&self, point: Point) {
        let state = self.state.lock().unwrap();
        let (_state, timeout) = self
            .changed
            .wait_timeout_while(state, std::time::Duration::from_secs(30), |s| {
                !s.reached.contains(&point)
            })
            .unwrap();
        assert!(!timeout.timed_out(), "no thread reached {point:?}");
    }

    fn release(&self, point: Point) {
        self.state.lock().unwrap().released.insert(point);
        self.changed.notify_all();
    }
}

impl careledger_core::storage::Storage for Scripted {
    fn last_frame(&self) -> careledger_core::Result<Option<(u64, Vec<u8>)>> {
        self.inner.last_frame()
    }
    fn frame(&self, position: u64) -> careledger_core::Result<Option<Vec<u8>>> {
        self.inner.frame(position)
    }
    fn scan(
        &self,
        from: u64,
        visit: &mut dyn FnMut(u64, &[u8]) -> bool,
    ) -> careledger_core::Result<()> {
        self.inner.scan(from, visit)
    }
    fn stream_positions(
        &self,
        patient: &PatientId,
        from: u64,
        limit: usize,
    ) -> careledger_core::Result<Vec<u64>> {
        (self.script).hold(Point::Fold, |s| {
            s.hold_commit && s.reached.contains(&Point::Sync)
        });
        self.inner.stream_positions(patient, from, limit)
    }
    fn idempotency(&self, key: &[u8]) -> careledger_core::Result<Option<Vec<u8>>> {
        self.script.hold(Point::Lookup, |_| true);
        self.inner.idempotency(key)
    }
    fn signed_request(
        &self,
        hash: &careledger_core::Hash,
    ) -> careledger_core::Result<Option<Vec<u8>>> {
        self.inner.signed_request(hash)
    }
    fn commit(&self, batch: careledger_core::storage::WriteBatch) -> careledger_core::Result<()> {
        (self.script).hold(Point::Commit, |s| {
            s.hold_commit && s.reached.contains(&Point::Sync)
        });
        self.inner.commit(batch)
    }
    fn sync(&self) -> careledger_core::Result<()> {
        if self.script.hold(Point::Sync, |_| true) {
            let eio = std::io::Error::from_raw_os_error(5);
            return Err(careledger_core::StorageError::io("syncing", eio).into());
        }
        self.inner.sync()
    }
    fn size_on_disk(&self) -> careledger_core::Result<u64> {
        self.inner.size_on_disk()
    }
    fn reopen(&self) -> careledger_core::Result<()> {
        self.inner.reopen()
    }
}

/// After a failed `fdatasync` the kernel may report success for the next one although the
/// pages of the first never reached the disk. So a write staged or written before a failed
/// sync, or while it failed, is never acknowledged, even when a later sync succeeds.
#[test]
fn no_write_pending_at_a_failed_sync_is_acknowledged_by_a_later_one() {
    for while_writing in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let script = Arc::new(Script::default());
        let storage = Scripted {
            inner: careledger_core::storage::SledStorage::open(dir.path()).unwrap(),
            script: script.clone(),
        };
        let config = LedgerConfig {
            reopen_interval: std::time::Duration::ZERO,
            ..LedgerConfig::default()
        };
        let ledger = Arc::new(Ledger::with_storage(Box::new(storage), config).unwrap());
        ledger
            .append(request(
                "p-1",
                gp(1),
                ExpectedRevision::NoStream,
                vec![found()],
            ))
            .unwrap();
        script.arm(while_writing);
        let append = |request: AppendRequest| {
            let ledger = ledger.clone();
            std::thread::spawn(move || ledger.append(request))
        };
        // `first` leads the group commit whose sync fails; `second` (keyed) is about to be
        // staged behind it, in the epoch the failure ends.
        let first = append(request("p-1", gp(1), ExpectedRevision::Any, vec![bp(120)]));
        script.reached(Point::Sync);
        let mut keyed = request("p-1", gp(1), ExpectedRevision::Any, vec![bp(130)]);
        keyed.idempotency_key = Some("second".into());
        let second = append(keyed);
        script.reached(Point::Lookup);
        let third = while_writing.then(|| {
            // `third` waits for the writer lock that `second` holds; once `second` has staged,
            // a request for the same patient that fails half-way drops the patient's folded
            // state, and the next one folds it again from storage and the staged `second`
            // (nothing is written to storage outside a group commit): that fold is held while
            // the sync fails.
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let mut failing =
                    request("p-1", gp(1), ExpectedRevision::Any, vec![bp(125), bp(126)]);
                let tomorrow = careledger_core::Timestamp::now().plus_days(1);
                failing.submissions[1].occurred_at = Some(tomorrow);
                assert!(ledger.append(failing).is_err());
                ledger.append(request("p-1", gp(1), ExpectedRevision::Any, vec![bp(140)]))
            })
        });
        if while_writing {
            script.release(Point::Lookup);
            script.reached(Point::Fold);
        }
        script.release(Point::Sync);
        let first = first.join().unwrap();
        let first = first.expect_err("the failed sync is reported");
        assert!(first.to_string().contains("Input/output error"), "{first}");
        // The failure has ended the epoch: let the held threads go on.
        script.release(Point::Lookup);
        script.release(Point::Commit);
        script.release(Point::Fold);
        let pending =
            std::iter::once(second.join().unwrap()).chain(third.map(|t| t.join().unwrap()));
        for (which, outcome) in ["second", "third"].into_iter().zip(pending) {
            let error = outcome.expect_err(&format!(
                "the {which} append, pending at a failed sync, is not acknowledged (while writing: {while_writing})"
            ));
            assert!(
                error.to_string().contains("Input/output error"),
                "the error says why: {error}"
            );
        }
        // Writing resumes: the storage is reopened from disk and later syncs succeed.
        let outcome = ledger
            .append(request("p-1", gp(1), ExpectedRevision::Any, vec![bp(140)]))
            .unwrap();
        assert!(ledger.read_position(outcome.events[0].position).is_ok());
        assert!(ledger.verify(&mut |_, _| {}).unwrap().is_intact());
    }
}
