//! Pushing checkpoints to witnesses called in-process: what is pushed, what is kept, and
//! what a witness that is down, or that cosigned something else, changes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use careledger_core::checkpoint::{CheckpointConfig, LogKey};
use careledger_core::event::{Command, Member, Note as NoteCommand, NoteKind};
use careledger_core::ids::{ActorId, PatientId, Text};
use careledger_core::note::{NoteSigner, ED25519};
use careledger_core::role::{Lead, Practitioner, Role};
use careledger_core::witness::{Witness, WitnessError};
use careledger_core::{Actor, AppendRequest, ExpectedRevision, LedgerConfig, Submission};

use super::*;
use crate::data_dir::log_key_path;

const ORIGIN: &str = "careledger.example/test-log";
const HOUR: Duration = Duration::from_secs(3600);
const WAIT: Duration = Duration::from_secs(30);

/// Witnesses called directly, by URL; a URL without a witness, or one switched off, is down.
#[derive(Default)]
struct InProcess {
    witnesses: HashMap<String, Arc<Witness>>,
    down: AtomicBool,
}

impl WitnessClient for InProcess {
    fn add_checkpoint<'a>(
        &'a self,
        url: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<WitnessReply, String>> {
        Box::pin(async move {
            let witness = match self.witnesses.get(url) {
                Some(w) if !self.down.load(Ordering::SeqCst) => w,
                _ => return Err("connection refused".to_owned()),
            };
            Ok(match witness.add_checkpoint(&body, 1_772_355_600) {
                Ok(signature) => WitnessReply::Cosigned(signature.line()),
                Err(WitnessError::Conflict { cosigned, .. }) => WitnessReply::Conflict(cosigned),
                Err(e) => WitnessReply::Refused {
                    status: 422,
                    body: e.to_string(),
                },
            })
        })
    }
}

fn witness(dir: &Path, name: &str, seed: u8, log: &LogKey) -> Arc<Witness> {
    let signer = NoteSigner::from_seed(name, COSIGNATURE_V1, &[seed; 32]).unwrap();
    Arc::new(
        Witness::open(
            signer,
            &[log.verifier_key()],
            &dir.join(name.replace('/', "_")),
        )
        .unwrap(),
    )
}

fn target(url: &str, witness: &Witness) -> WitnessTarget {
    WitnessTarget::new(url, witness.verifier_key()).unwrap()
}

fn gp() -> Actor {
    Actor {
        id: ActorId::parse("gp-jansen").unwrap(),
        role: Role::Gp,
        name: Text::new("A. Jansen").unwrap(),
        organisation: None,
    }
}

fn append(ledger: &Ledger, count: usize) {
    let mut submissions = Vec::new();
    if ledger.head().position == 0 {
        submissions.push(Submission {
            command: Command::AddCareTeamMember(Member {
                actor: gp().id,
                name: gp().name,
                agb: None,
                role: Role::Gp,
                lead: Lead::Cvrm,
                practitioner: Practitioner::Main,
            }),
            occurred_at: None,
            reason: Text::new("founds the team").unwrap(),
        });
    }
    while submissions.len() < count {
        submissions.push(Submission {
            command: Command::AddNote(NoteCommand {
                kind: NoteKind::Note,
                subject: Text::new("follow-up").unwrap(),
                body: Text::new("at target").unwrap(),
            }),
            occurred_at: None,
            reason: Text::new("consultation").unwrap(),
        });
    }
    ledger
        .append(AppendRequest {
            patient: PatientId::parse("patient-1").unwrap(),
            expected: ExpectedRevision::Any,
            actor: gp(),
            submissions,
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        })
        .unwrap();
}

/// A data directory with a ledger, its log key and a checkpointer signing every 5 events.
struct Log {
    dir: tempfile::TempDir,
    ledger: Arc<Ledger>,
    checkpointer: Checkpointer,
}

impl Log {
    fn new() -> Log {
        let dir = tempfile::tempdir().unwrap();
        let ledger =
            Arc::new(Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap());
        let key = LogKey::open_or_create(&log_key_path(dir.path()), Some(ORIGIN)).unwrap();
        let config = CheckpointConfig {
            every_events: 5,
            every: HOUR,
        };
        let checkpointer =
            Checkpointer::start(ledger.clone(), key, checkpoint_path(dir.path()), config).unwrap();
        Log {
            dir,
            ledger,
            checkpointer,
        }
    }

    fn key(&self) -> LogKey {
        LogKey::open(&log_key_path(self.dir.path())).unwrap()
    }

    /// Appends `count` events and waits for their checkpoint.
    async fn grow(&self, count: usize) -> u64 {
        append(&self.ledger, count);
        let size = self.ledger.head().position;
        assert!(self.checkpointer.wait_for(size, WAIT));
        size
    }

    fn served(&self) -> Note {
        Note::parse(&latest_checkpoint(self.dir.path()).unwrap().unwrap()).unwrap()
    }
}

fn settings() -> PushSettings {
    PushSettings {
        timeout: Duration::from_secs(5),
        retry_after: HOUR,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_checkpoint_is_pushed_and_the_served_checkpoint_carries_the_cosignature() {
    let log = Log::new();
    let state = tempfile::tempdir().unwrap();
    let gp = witness(state.path(), "witness.example/gp", 0x22, &log.key());
    let hospital = witness(state.path(), "witness.example/hospital", 0x33, &log.key());
    let client = InProcess {
        witnesses: HashMap::from([("http://gp".to_owned(), gp.clone())]),
        ..InProcess::default()
    };
    // The hospital's witness is down.
    let targets = vec![
        target("http://gp", &gp),
        target("http://hospital", &hospital),
    ];
    let witnesses = Witnesses::start(
        log.ledger.clone(),
        log.dir.path(),
        targets,
        Arc::new(client),
        settings(),
    );
    witnesses.follow(&log.checkpointer);
    assert_eq!(latest_checkpoint(log.dir.path()).unwrap(), None);

    for count in [5, 7] {
        let size = log.grow(count).await;
        assert!(witnesses.wait_pushed(size, WAIT).await);
        let served = log.served();
        assert!(served.text().contains(&format!("\n{size}\n")));
        let by_gp = cosignature_by(&served, &gp.verifier_key()).expect("the GP's witness cosigned");
        assert_eq!(
            by_gp.verify_cosignature(&gp.verifier_key(), served.text()),
            Ok(1_772_355_600)
        );
        assert!(cosignature_by(&served, &hospital.verifier_key()).is_none());
        assert!(served.verify(&log.key().verifier_key()).is_ok());
        assert!(gp.latest(ORIGIN).unwrap().starts_with(served.text()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_witness_that_cosigned_another_size_answers_with_it_and_the_push_proves_from_there() {
    let log = Log::new();
    let state = tempfile::tempdir().unwrap();
    let gp = witness(state.path(), "witness.example/gp", 0x22, &log.key());
    // The witness cosigned size 5 for this log before; the log remembers nothing of it.
    log.grow(5).await;
    let first = log.checkpointer.latest().unwrap();
    gp.add_checkpoint(
        &AddCheckpoint::new(0, vec![], &first).unwrap().to_bytes(),
        1,
    )
    .unwrap();
    let client = InProcess {
        witnesses: HashMap::from([("http://gp".to_owned(), gp.clone())]),
        ..InProcess::default()
    };
    let witnesses = Witnesses::start(
        log.ledger.clone(),
        log.dir.path(),
        vec![target("http://gp", &gp)],
        Arc::new(client),
        settings(),
    );
    witnesses.follow(&log.checkpointer);
    let size = log.grow(8).await;
    assert!(witnesses.wait_pushed(size, WAIT).await);
    assert!(cosignature_by(&log.served(), &gp.verifier_key()).is_some());
    assert!(gp.latest(ORIGIN).unwrap().contains(&format!("\n{size}\n")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_witness_that_was_down_cosigns_the_latest_checkpoint_when_it_is_back() {
    let log = Log::new();
    let state = tempfile::tempdir().unwrap();
    let gp = witness(state.path(), "witness.example/gp", 0x22, &log.key());
    let client = Arc::new(InProcess {
        witnesses: HashMap::from([("http://gp".to_owned(), gp.clone())]),
        down: AtomicBool::new(true),
    });
    let witnesses = Witnesses::start(
        log.ledger.clone(),
        log.dir.path(),
        vec![target("http://gp", &gp)],
        client.clone(),
        PushSettings {
            timeout: Duration::from_secs(5),
            retry_after: Duration::from_millis(50),
        },
    );
    witnesses.follow(&log.checkpointer);
    let size = log.grow(5).await;
    assert!(witnesses.wait_pushed(size, WAIT).await);
    assert!(cosignature_by(&log.served(), &gp.verifier_key()).is_none());
    // Appends went on meanwhile; the witness comes back and the retry brings its cosignature.
    client.down.store(false, Ordering::SeqCst);
    let deadline = Instant::now() + WAIT;
    while cosignature_by(&log.served(), &gp.verifier_key()).is_none() {
        assert!(
            Instant::now() < deadline,
            "no cosignature after the witness came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_restart_the_log_asks_only_the_witnesses_missing_from_the_stored_checkpoint() {
    let log = Log::new();
    let state = tempfile::tempdir().unwrap();
    let gp = witness(state.path(), "witness.example/gp", 0x22, &log.key());
    let client = Arc::new(InProcess {
        witnesses: HashMap::from([("http://gp".to_owned(), gp.clone())]),
        ..InProcess::default()
    });
    let start = || {
        let witnesses = Witnesses::start(
            log.ledger.clone(),
            log.dir.path(),
            vec![target("http://gp", &gp)],
            client.clone(),
            settings(),
        );
        witnesses.follow(&log.checkpointer);
        witnesses
    };
    let size = log.grow(5).await;
    let first = start();
    assert!(first.wait_pushed(size, WAIT).await);
    let stored = latest_checkpoint(log.dir.path()).unwrap();
    drop(first);
    // The witness is down now; the stored cosignature stays, and the next push proves from 5.
    client.down.store(true, Ordering::SeqCst);
    let again = start();
    assert!(again.wait_pushed(size, WAIT).await);
    assert_eq!(latest_checkpoint(log.dir.path()).unwrap(), stored);
    client.down.store(false, Ordering::SeqCst);
    let size = log.grow(5).await;
    assert!(again.wait_pushed(size, WAIT).await);
    assert!(cosignature_by(&log.served(), &gp.verifier_key()).is_some());
}

#[test]
fn a_witness_is_given_as_url_and_cosigner_key() {
    let key = NoteSigner::from_seed("witness.example/gp", COSIGNATURE_V1, &[0x22; 32])
        .unwrap()
        .verifier_key();
    let parsed = WitnessTarget::parse(&format!("http://127.0.0.1:7380 {key}")).unwrap_err();
    assert!(parsed.to_string().contains("URL=VKEY"), "{parsed}");
    let parsed = WitnessTarget::parse(&format!("http://127.0.0.1:7380/={key}")).unwrap();
    assert_eq!(parsed.url(), "http://127.0.0.1:7380");
    assert_eq!(parsed.key(), &key);
    let with_query = WitnessTarget::parse(&format!("http://w.example/a?b=c={key}")).unwrap();
    assert_eq!(with_query.url(), "http://w.example/a?b=c");
    for bad in [
        format!("https://w.example={key}"),
        format!("http://={key}"),
        "http://w.example".to_owned(),
        format!(
            "http://w.example={}",
            NoteSigner::from_seed("log.example", ED25519, &[1; 32])
                .unwrap()
                .verifier_key()
        ),
    ] {
        assert!(WitnessTarget::parse(&bad).is_err(), "{bad}");
    }
}
