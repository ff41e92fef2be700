//! A crash test in sled's manner: a child process appends batches continuously and is killed with
//! SIGKILL at a random moment; after each kill the ledger reopens with every acknowledged event,
//! no partial batch, and a chain that verifies.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use careledger_core::event::{Command, Note, NoteKind, SharedCare};
use careledger_core::ids::{ActorId, PatientId, Text, Uid};
use careledger_core::role::Role;
use careledger_core::{Actor, AppendRequest, ExpectedRevision, Ledger, LedgerConfig, Submission};

const CHILD_ENV: &str = "CARELEDGER_CRASH_CHILD";
const ROUNDS: usize = 24;
const BATCH: usize = 3;

fn gp() -> Actor {
    Actor {
        id: ActorId::parse("gp-1").unwrap(),
        role: Role::Gp,
        name: Text::new("Dr. GP").unwrap(),
        organisation: None,
    }
}

fn submit(command: Command) -> Submission {
    Submission {
        command,
        occurred_at: None,
        reason: Text::new("crash test").unwrap(),
    }
}

/// The child: appends batches of three notes to a few patients until it is killed, printing
/// `correlation event-id event-id event-id` after each acknowledged append.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let ledger = Ledger::open(
        &std::path::Path::new(&dir).join("ledger"),
        LedgerConfig::default(),
    )
    .unwrap();
    let stdout = std::io::stdout();
    for n in 0u64.. {
        let patient = PatientId::parse(&format!("patient-{}", n % 5)).unwrap();
        let mut submissions = Vec::new();
        if ledger.read_stream(&patient, 1, 1).unwrap().is_empty() {
            submissions.push(submit(Command::StartSharedCare(SharedCare {
                arrangement: Text::new("x").unwrap(),
            })));
        }
        while submissions.len() < BATCH {
            let subject = Text::new(format!("note {n}")).unwrap();
            submissions.push(submit(Command::AddNote(Note {
                kind: NoteKind::Note,
                subject,
                body: Text::default(),
            })));
        }
        let correlation = Uid::random();
        let request = AppendRequest {
            patient,
            expected: ExpectedRevision::Any,
            actor: gp(),
            submissions,
            idempotency_key: None,
            correlation_id: Some(correlation),
            causation_id: None,
        };
        let outcome = ledger.append(request).unwrap();
        let ids: Vec<String> = outcome
            .events
            .iter()
            .map(|e| e.event_id.to_string())
            .collect();
        let mut out = stdout.lock();
        writeln!(out, "ack {correlation} {}", ids.join(" ")).unwrap();
        out.flush().unwrap();
    }
}

/// A small pseudo-random generator (xorshift), seeded from the clock: each run kills at other moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn every_acknowledged_event_survives_sigkill_and_no_batch_is_partial() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed = crate::common::seed();
    let mut rng = Rng(seed | 1);
    let mut acknowledged: HashMap<String, Vec<String>> = HashMap::new();
    for round in 0..ROUNDS {
        let mut child = Process::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack, writing) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ack ") {
                    let _ = first_ack.send(());
                    let mut parts = rest.split(' ').map(str::to_owned);
                    let correlation = parts.next().unwrap();
                    acks.push((correlation, parts.collect::<Vec<_>>()));
                }
            }
            acks
        });
        // Once the child writes (on a loaded machine opening the ledger can take longer than
        // the whole window), let it write for a random 0-200 ms more, then kill it.
        let _ = writing.recv_timeout(Duration::from_secs(20));
        let deadline = Instant::now() + Duration::from_millis(rng.next() % 200);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: kill(2) takes a pid and a signal number and touches no memory of ours.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL)
        };
        child.wait().unwrap();
        for (correlation, ids) in reader.join().unwrap() {
            acknowledged.insert(correlation, ids);
        }

        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        let report = ledger.verify(&mut |_, _| {}).unwrap();
        assert!(report.is_intact(), "round {round}: {:?}", report.problem);
        let events = ledger.read_all(0, usize::MAX).unwrap();
        let stored: HashSet<String> = events
            .iter()
            .map(|e| e.record.event_id.to_string())
            .collect();
        for (correlation, ids) in &acknowledged {
            for id in ids {
                assert!(
                    stored.contains(id),
                    "round {round}: acknowledged event {id} of {correlation} is missing"
                );
            }
        }
        let mut per_correlation: HashMap<Uid, usize> = HashMap::new();
        for e in &events {
            *per_correlation.entry(e.record.correlation_id).or_default() += 1;
        }
        for (correlation, count) in per_correlation {
            assert!(
                count == BATCH || count == BATCH + 1,
                "round {round}: batch {correlation} has {count} events: partial"
            );
        }
    }
    assert!(
        acknowledged.len() > ROUNDS,
        "the child acknowledged appends in most rounds"
    );
}
