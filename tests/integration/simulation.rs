//! A seeded, deterministic simulation of the ledger over a storage that fails on purpose, in
//! the manner of TigerBeetle's VOPR: rounds of appends to several patients (expected revisions
//! right and wrong, idempotency keys and retries), with writes, syncs and reopens of the real
//! sled storage failing as a seeded plan says, the ledger's clock moving on, and restarts. After
//! every step, and after a last restart without failures, the invariants are checked:
//!
//! - every acknowledged append is there, at the positions and with the hashes acknowledged;
//! - readers see no position before a sync of the storage covered it;
//! - no position is acknowledged twice, and a retry is answered with the append it repeats;
//! - the chain links, positions are gapless, and each patient's revisions are gapless;
//! - an append that got an error is absent, or present only where the storage may have written
//!   it, and then once: never written a second time by a retry;
//! - a storage error comes only from an injected failure (or the refusal one left behind);
//! - the chain, the per-patient index, the anchor and the Merkle tree agree (`verify`, `health`,
//!   `check_tree`).
//!
//! One thread drives the ledger; its clock is a `ManualClock` and its ids are seeded, so a round
//! is a function of its seed. The seed is printed; `CARELEDGER_SEED=<seed>` replays the run.

mod faulty_storage;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use careledger_core::anchor::anchor_path;
use careledger_core::checkpoint::check_tree;
use careledger_core::clock::{ManualClock, SeededIds};
use careledger_core::event::{Command, Measurement, MeasurementSource, Note, NoteKind, SharedCare};
use careledger_core::ids::{ActorId, PatientId, Text};
use careledger_core::quantity::{Measure, Quantity};
use careledger_core::role::Role;
use careledger_core::storage::SledStorage;
use careledger_core::{
    Actor, AppendRequest, Appended, Error, ExpectedRevision, Hash, Ledger, LedgerConfig,
    RejectionCode, Submission, Timestamp,
};

use faulty_storage::{Faults, FaultyStorage};

/// A small seeded generator (SplitMix64), enough to choose the steps of a round.
pub struct Rng(u64);

impl Rng {
    /// A generator drawing from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PATIENTS: [&str; 3] = ["sim-a", "sim-b", "sim-c"];
/// Rounds run until this much time has passed (at least two, at most [`MAX_ROUNDS`]).
const TIME_BOUND: Duration = Duration::from_secs(4);
const MAX_ROUNDS: u64 = 200;
const STEPS: u64 = 40;

fn gp() -> Actor {
    Actor {
        id: ActorId::parse("gp-1").unwrap(),
        role: Role::Gp,
        name: Text::new("Dr. GP").unwrap(),
        organisation: None,
    }
}

fn commands(rng: &mut Rng, founded: bool) -> Vec<Command> {
    if !founded {
        return vec![Command::StartSharedCare(SharedCare {
            arrangement: Text::new("shared").unwrap(),
        })];
    }
    (0..1 + rng.below(3))
        .map(|i| match rng.below(2) {
            0 => Command::RecordMeasurement(Measurement {
                value: Quantity::new(Measure::SystolicBloodPressure, 110 + rng.below(60) as i64)
                    .unwrap(),
                source: MeasurementSource::Practice,
            }),
            _ => Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: Text::new(format!("note {i}")).unwrap(),
                body: Text::default(),
            }),
        })
        .collect()
}

/// A keyed request sent, and its acknowledgement once one came.
struct Sent {
    request: AppendRequest,
    /// The events it records: founding records two (the founder joins, shared care starts).
    events: usize,
    acked: Option<Vec<Appended>>,
}

/// What happened, over all rounds: that the simulation reached what it is meant to.
#[derive(Debug, Default)]
struct Tally {
    acknowledged: u64,
    replayed: u64,
    refused: u64,
    injected: u64,
    restarts: u64,
    /// Appends that got an error and were found written after all.
    failed_but_written: u64,
}

/// What the ledger is checked against.
#[derive(Default)]
struct Model {
    /// Keyed requests, by key.
    keyed: BTreeMap<String, Sent>,
    /// Every acknowledged event, by position.
    acked: BTreeMap<u64, Appended>,
    next_key: u64,
    tally: Tally,
}

impl Model {
    /// Records an acknowledgement: a new write takes positions nobody was given, a retry is
    /// answered with what its first acknowledgement said.
    fn acknowledge(&mut self, key: Option<&String>, events: &[Appended], replayed: bool) {
        let earlier = key
            .and_then(|k| self.keyed.get(k))
            .and_then(|s| s.acked.clone());
        if let Some(earlier) = earlier {
            assert!(
                replayed,
                "a retry of an acknowledged append is answered, not written"
            );
            assert_eq!(
                events,
                &earlier[..],
                "a retry is answered with the append it repeats"
            );
            return;
        }
        for event in events {
            // A first answer by replay names a write that failed and survived: its positions
            // were given to nobody else either.
            if let Some(earlier) = self.acked.get(&event.position) {
                assert!(
                    replayed,
                    "position {} was acknowledged twice",
                    event.position
                );
                assert_eq!(
                    earlier, event,
                    "position {} was acknowledged twice",
                    event.position
                );
            }
            self.acked.insert(event.position, event.clone());
        }
        if let Some(sent) = key.and_then(|k| self.keyed.get_mut(k)) {
            sent.acked = Some(events.to_vec());
        }
    }
}

/// The request of one append step: a retry of an earlier keyed request now and then, else a
/// new one with a right or a wrong expected revision.
struct Step {
    request: AppendRequest,
    /// The expected revision is the one read before the append (always so for a retry, which
    /// is answered before its expected revision counts, unless it was never written).
    right: bool,
    retry: bool,
}

fn next_request(rng: &mut Rng, model: &mut Model, durable: &[u64; 3]) -> Step {
    if !model.keyed.is_empty() && rng.below(5) == 0 {
        let nth = rng.below(model.keyed.len() as u64) as usize;
        let sent = model.keyed.values().nth(nth).unwrap();
        return Step {
            request: sent.request.clone(),
            right: true,
            retry: true,
        };
    }
    let p = rng.below(PATIENTS.len() as u64) as usize;
    let revision = durable[p];
    let (expected, right) = match rng.below(10) {
        0..=3 => (ExpectedRevision::Any, true),
        4..=7 => (ExpectedRevision::Exact(revision), true),
        8 => (ExpectedRevision::Exact(revision + 1), false),
        _ => (ExpectedRevision::NoStream, revision == 0),
    };
    let key = (rng.below(5) != 0).then(|| {
        model.next_key += 1;
        format!("request-{}", model.next_key)
    });
    let submissions = commands(rng, revision > 0)
        .into_iter()
        .map(|command| Submission {
            command,
            occurred_at: None,
            reason: Text::new("simulated").unwrap(),
        })
        .collect();
    let request = AppendRequest {
        patient: PatientId::parse(PATIENTS[p]).unwrap(),
        expected,
        actor: gp(),
        submissions,
        idempotency_key: key.clone(),
        correlation_id: None,
        causation_id: None,
    };
    if let Some(key) = key {
        let founding = matches!(request.submissions[0].command, Command::StartSharedCare(_));
        let events = request.submissions.len() + usize::from(founding);
        let sent = Sent {
            request: request.clone(),
            events,
            acked: None,
        };
        model.keyed.insert(key, sent);
    }
    Step {
        request,
        right,
        retry: false,
    }
}

fn durable_revisions(ledger: &Ledger) -> [u64; 3] {
    PATIENTS.map(|p| {
        let patient = PatientId::parse(p).unwrap();
        ledger.read_stream(&patient, 1, usize::MAX).unwrap().len() as u64
    })
}

/// One append, and what its outcome may be.
fn append_step(ledger: &Ledger, model: &mut Model, rng: &mut Rng, faults: &Faults) {
    let Step {
        request,
        right,
        retry,
    } = next_request(rng, model, &durable_revisions(ledger));
    let refusing = ledger.head_problem().is_some();
    let injected_before = faults.injected();
    let result = ledger.append(request.clone());
    let injected = faults.injected() > injected_before;
    let key = request.idempotency_key.as_ref();
    match result {
        Ok(outcome) => {
            assert!(
                right || retry || refusing,
                "a wrong expected revision was written"
            );
            model.tally.acknowledged += 1;
            model.tally.replayed += u64::from(outcome.replayed);
            model.acknowledge(key, &outcome.events, outcome.replayed);
        }
        Err(Error::Conflict { .. }) => {
            // Without a refusal there is no reopen in this append, so the writer saw what the
            // reader saw; a reopen may bring back writes that failed, and a retry may come
            // after other appends.
            assert!(
                !right || refusing || retry,
                "a right expected revision conflicted"
            );
        }
        Err(Error::Storage(_) | Error::Poisoned(_)) => {
            assert!(
                injected || refusing,
                "a storage error with no failure behind it"
            );
            model.tally.refused += 1;
        }
        // A founding that failed may be found written after a reopen, and a retry of one may
        // come after another founding of the patient.
        Err(Error::Rejected(r)) if r.code == RejectionCode::SharedCareActive => {}
        Err(other) => panic!("unexpected error: {other}"),
    }
}

/// The invariants that hold after every step; `faults`, when the storage is the faulty one.
fn check(ledger: &Ledger, model: &Model, faults: Option<&Faults>) {
    let head = ledger.head();
    if let Some(faults) = faults {
        assert!(
            head.position <= faults.synced_through(),
            "readers see position {} before a sync of the storage covered it",
            head.position
        );
    }
    let events = ledger.read_all(0, usize::MAX).unwrap();
    assert_eq!(events.len() as u64, head.position, "positions are gapless");
    let mut prev = Hash::ZERO;
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.position, i as u64 + 1, "positions are gapless");
        assert_eq!(
            event.prev_hash, prev,
            "the chain links at {}",
            event.position
        );
        prev = event.hash;
    }
    assert_eq!(prev, head.hash, "the head is the last event");
    for (position, acked) in &model.acked {
        let event = events
            .get(*position as usize - 1)
            .unwrap_or_else(|| panic!("acknowledged position {position} is missing"));
        assert_eq!(
            (event.hash, event.record.event_id, event.record.revision),
            (acked.hash, acked.event_id, acked.revision),
            "position {position} is as acknowledged"
        );
    }
    for patient in PATIENTS {
        let patient = PatientId::parse(patient).unwrap();
        let stream = ledger.read_stream(&patient, 1, usize::MAX).unwrap();
        let revisions: Vec<u64> = stream.iter().map(|e| e.record.revision).collect();
        assert_eq!(revisions, (1..=stream.len() as u64).collect::<Vec<_>>());
        let in_all = events
            .iter()
            .filter(|e| e.record.patient == patient)
            .count();
        assert_eq!(
            in_all,
            stream.len(),
            "the index lists every event of {patient}"
        );
    }
}

/// After the last restart, without failures: the whole ledger verifies against its anchor and
/// its tree, and each keyed request is written once, or not at all unless the storage may have
/// written it.
fn check_final(ledger: &Ledger, model: &mut Model, faults: &Faults) {
    check(ledger, model, None);
    let report = ledger.verify(&mut |_, _| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problem);
    ledger.health().unwrap();
    assert!(ledger.damage().is_none());
    let tree = check_tree(ledger, None).unwrap();
    assert_eq!(tree.problem, None);
    let mut by_key: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let events = ledger.read_all(0, usize::MAX).unwrap();
    for event in &events {
        if let Some(key) = &event.record.idempotency_key {
            by_key.entry(key).or_default().push(event.position);
        }
    }
    let mut failed_but_written = 0;
    for (key, sent) in &model.keyed {
        let stored = by_key.get(key.as_str()).cloned().unwrap_or_default();
        if let Some(acked) = &sent.acked {
            let positions: Vec<u64> = acked.iter().map(|a| a.position).collect();
            assert_eq!(stored, positions, "{key} is written once, as acknowledged");
        } else if !stored.is_empty() {
            assert!(
                faults.given(key),
                "{key} failed, and the storage never had it"
            );
            assert_eq!(stored.len(), sent.events, "{key} is written once, whole");
            failed_but_written += 1;
            let first = stored[0];
            assert_eq!(
                stored,
                (first..first + sent.events as u64).collect::<Vec<_>>()
            );
        }
    }
    model.tally.failed_but_written += failed_but_written;
}

/// Opens the ledger on the faulty storage; an opening that a failure of the storage stops is
/// tried again, as an operator would restart the server.
fn open(path: &Path, faults: &Arc<Faults>, config: &LedgerConfig) -> Ledger {
    for _ in 0..100 {
        let storage = FaultyStorage::new(SledStorage::open(path).unwrap(), faults.clone());
        match Ledger::with_storage_and_anchor(Box::new(storage), &anchor_path(path), config.clone())
        {
            Ok(ledger) => return ledger,
            Err(Error::Storage(_)) => continue,
            Err(e) => panic!("opening failed: {e}"),
        }
    }
    panic!("opening failed a hundred times");
}

fn round(seed: u64) -> Tally {
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let faults = Arc::new(Faults::new(
        rng.next(),
        20 + rng.below(100),
        20 + rng.below(100),
        rng.below(500),
    ));
    let clock = Arc::new(ManualClock::new(Timestamp::from_micros(
        1_772_355_600_000_000,
    )));
    let config = LedgerConfig {
        reopen_interval: Duration::from_secs(1),
        clock: clock.clone(),
        ids: Arc::new(SeededIds::new(rng.next())),
        ..LedgerConfig::default()
    };
    let mut ledger = open(&path, &faults, &config);
    let mut model = Model::default();
    for _ in 0..STEPS {
        match rng.below(100) {
            0..=79 => append_step(&ledger, &mut model, &mut rng, &faults),
            80..=91 => clock.advance(Duration::from_millis(100 + rng.below(1500))),
            _ => {
                drop(ledger);
                ledger = open(&path, &faults, &config);
                model.tally.restarts += 1;
            }
        }
        check(&ledger, &model, Some(&faults));
    }
    faults.set_enabled(false);
    drop(ledger);
    let ledger = Ledger::open(&path, config).unwrap();
    check_final(&ledger, &mut model, &faults);
    model.tally.injected = faults.injected();
    model.tally
}

#[test]
fn a_seeded_simulation_with_storage_failures_and_restarts_keeps_every_invariant() {
    let seed = crate::common::seed();
    let started = Instant::now();
    let mut rounds = 0;
    let mut total = Tally::default();
    while rounds < MAX_ROUNDS && (rounds < 2 || started.elapsed() < TIME_BOUND) {
        let round_seed = seed.wrapping_add(rounds.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        eprintln!("round {rounds}: seed {round_seed}");
        let tally = round(round_seed);
        eprintln!("round {rounds}: {tally:?}");
        total.acknowledged += tally.acknowledged;
        total.replayed += tally.replayed;
        total.refused += tally.refused;
        total.injected += tally.injected;
        total.restarts += tally.restarts;
        total.failed_but_written += tally.failed_but_written;
        rounds += 1;
    }
    eprintln!("{rounds} rounds: {total:?}");
}
