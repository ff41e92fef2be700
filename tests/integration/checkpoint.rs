//! Checkpoints and cosignatures: golden vectors (`tests/data/checkpoint-v1.json`) made with fixed
//! seed keys and parsed back, the log key file and its fixed origin, and the checkpointer issuing
//! checkpoints after N events and at shutdown, refusing to sign over a ledger that no longer
//! extends its last checkpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use careledger_core::checkpoint::{
    read_latest, Checkpoint, CheckpointConfig, CheckpointError, Checkpointer, LogKey,
};
use careledger_core::event::{Command, Member, Note as NoteCommand, NoteKind};
use careledger_core::ids::{ActorId, PatientId, Text};
use careledger_core::merkle::{TreeHash, TreeHead};
use careledger_core::note::{Note, NoteSignature, NoteSigner, VerifierKey, COSIGNATURE_V1};
use careledger_core::role::{Lead, Practitioner, Role};
use careledger_core::{Actor, AppendRequest, ExpectedRevision, Ledger, LedgerConfig, Submission};
use serde_json::{json, Value};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/checkpoint-v1.json");
const MERKLE_GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/merkle-v1.json");
const ORIGIN: &str = "careledger.example/test-log";
const WITNESS: &str = "witness.example/gp-cooperative";
const LOG_SEED: [u8; 32] = [0x11; 32];
const WITNESS_SEED: [u8; 32] = [0x22; 32];
const COSIGNED_AT: u64 = 1_772_355_600;

/// The root of the golden Merkle vectors at size 11.
fn golden_head() -> TreeHead {
    let merkle: Value =
        serde_json::from_str(&std::fs::read_to_string(MERKLE_GOLDEN).unwrap()).unwrap();
    let root = merkle["roots"][11]["root"].as_str().unwrap();
    TreeHead {
        size: 11,
        root: TreeHash::from_hex(root).unwrap(),
    }
}

fn golden() -> Value {
    let log = LogKey::from_seed(ORIGIN, &LOG_SEED).unwrap();
    let note = log.sign(golden_head()).unwrap();
    let witness = NoteSigner::from_seed(WITNESS, COSIGNATURE_V1, &WITNESS_SEED).unwrap();
    let cosignature = witness.cosign(note.text(), COSIGNED_AT).unwrap();
    let mut cosigned = note.clone();
    cosigned.add_signature(cosignature.clone());
    json!({
        "format": "careledger checkpoints v1: C2SP tlog-checkpoint as a C2SP signed note (ed25519, type 0x01), cosignatures C2SP tlog-cosignature v1 (type 0x04)",
        "log_seed_hex": hex::encode(LOG_SEED),
        "log_verifier_key": log.verifier_key().to_string(),
        "checkpoint_body": note.text(),
        "signed_checkpoint": note.to_string(),
        "witness_seed_hex": hex::encode(WITNESS_SEED),
        "witness_verifier_key": witness.verifier_key().to_string(),
        "cosignature_time": COSIGNED_AT,
        "cosigned_message": String::from_utf8(
            careledger_core::note::cosigned_message(note.text(), COSIGNED_AT).unwrap()
        ).unwrap(),
        "cosignature_line": cosignature.line(),
        "cosigned_checkpoint": cosigned.to_string(),
    })
}

/// The file was written once (`CARELEDGER_WRITE_GOLDEN=1 cargo test --test checkpoint golden`)
/// and is committed: a change to the checkpoint, note or cosignature bytes fails here.
#[test]
fn golden_checkpoint_and_cosignature_still_hold_and_parse_back() {
    let computed = golden();
    if std::env::var_os("CARELEDGER_WRITE_GOLDEN").is_some() && !Path::new(GOLDEN).exists() {
        std::fs::write(
            GOLDEN,
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(GOLDEN).unwrap()).unwrap();
    assert_eq!(stored, computed);

    let text = |k: &str| stored[k].as_str().unwrap().to_owned();
    let log = VerifierKey::parse(&text("log_verifier_key")).unwrap();
    let witness = VerifierKey::parse(&text("witness_verifier_key")).unwrap();
    let (checkpoint, note) = Checkpoint::open(&text("cosigned_checkpoint"), &log).unwrap();
    assert_eq!(checkpoint.origin(), ORIGIN);
    assert_eq!(checkpoint.size(), 11);
    assert_eq!(checkpoint.root(), golden_head().root);
    assert_eq!(checkpoint.body(), text("checkpoint_body"));
    let cosignature = note
        .signatures()
        .iter()
        .find(|s| s.is_by(&witness))
        .unwrap();
    assert_eq!(
        cosignature.verify_cosignature(&witness, note.text()),
        Ok(COSIGNED_AT)
    );
    assert_eq!(cosignature.line(), text("cosignature_line"));

    // A changed size, or a cosignature moved onto another checkpoint, no longer verifies.
    let changed = text("cosigned_checkpoint").replacen("\n11\n", "\n12\n", 1);
    assert!(Checkpoint::open(&changed, &log).is_err());
    let other = Note::parse(&changed).unwrap();
    assert!(other.signatures()[1]
        .verify_cosignature(&witness, other.text())
        .is_err());
    let line = NoteSignature::parse_line(text("cosignature_line").trim_end()).unwrap();
    assert_eq!(
        line.verify_cosignature(&witness, note.text()),
        Ok(COSIGNED_AT)
    );
}

#[test]
fn malformed_checkpoint_bodies_are_refused() {
    for body in [
        "origin\n11\n",
        "origin\n011\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "origin\n-1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "origin\n1\nAAAA\n",
        "\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n",
        "origin\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ] {
        assert!(Checkpoint::parse_body(body).is_err(), "{body:?}");
    }
    let zero = "origin\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n";
    assert_eq!(Checkpoint::parse_body(zero).unwrap().size(), 0);
}

#[test]
fn the_log_key_is_made_once_readable_by_its_owner_only_and_its_origin_never_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log-key");
    let made = LogKey::open_or_create(&path, Some("hospital.example/careledger")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = LogKey::open_or_create(&path, None).unwrap();
    assert_eq!(again.verifier_key(), made.verifier_key());
    let same = LogKey::open_or_create(&path, Some("hospital.example/careledger")).unwrap();
    assert_eq!(same.verifier_key(), made.verifier_key());
    let vkey = made.verifier_key().to_string();
    assert!(vkey.starts_with("hospital.example/careledger+"), "{vkey}");
    assert_eq!(VerifierKey::parse(&vkey).unwrap(), made.verifier_key());

    match LogKey::open_or_create(&path, Some("other.example/log")) {
        Err(e @ CheckpointError::OriginChanged { .. }) => {
            let message = e.to_string();
            assert!(message.contains("hospital.example/careledger"), "{message}");
            assert!(message.contains("other.example/log"), "{message}");
        }
        other => panic!("a changed origin must be refused, got {other:?}"),
    }
    assert!(LogKey::open_or_create(&dir.path().join("k2"), Some("has space")).is_err());
    let generated = LogKey::open_or_create(&dir.path().join("k3"), None).unwrap();
    assert!(generated.origin().starts_with("careledger.invalid/log-"));
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
    let patient = PatientId::parse("patient-1").unwrap();
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
            patient,
            expected: ExpectedRevision::Any,
            actor: gp(),
            submissions,
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        })
        .unwrap();
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn checkpoints_are_issued_after_n_events_and_at_shutdown_and_verify_against_the_tree() {
    let dir = tempfile::tempdir().unwrap();
    let ledger =
        Arc::new(Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap());
    let key_file = dir.path().join("log-key");
    let file = dir.path().join("checkpoint");
    let key = LogKey::open_or_create(&key_file, Some(ORIGIN)).unwrap();
    let vkey = key.verifier_key();
    let config = CheckpointConfig {
        every_events: 10,
        every: HOUR,
    };
    let checkpointer = Checkpointer::start(ledger.clone(), key, file.clone(), config).unwrap();
    assert_eq!(checkpointer.latest(), None, "nothing to sign yet");
    append(&ledger, 12);
    assert!(checkpointer.wait_for(12, Duration::from_secs(30)));
    let (first, _) = Checkpoint::open(&checkpointer.latest().unwrap(), &vkey).unwrap();
    assert_eq!(first.size(), 12);
    assert_eq!(first.root(), ledger.tree_head(12).unwrap().root);

    append(&ledger, 3);
    checkpointer.finish();
    let key = LogKey::open(&key_file).unwrap();
    let last = read_latest(&file, &key).unwrap().unwrap();
    assert_eq!(
        last.size(),
        15,
        "the shutdown checkpoint covers every durable event"
    );
    assert_eq!(last.root(), ledger.tree_head(15).unwrap().root);
    let proof = ledger.consistency_proof(12, 15).unwrap();
    assert_eq!(proof.verify(&first.root(), &last.root()), Ok(()));

    // Restarted, it goes on from the stored checkpoint.
    let checkpointer = Checkpointer::start(ledger.clone(), key, file.clone(), config).unwrap();
    assert!(checkpointer
        .latest()
        .unwrap()
        .starts_with(&format!("{ORIGIN}\n15\n")));
    append(&ledger, 10);
    assert!(checkpointer.wait_for(25, Duration::from_secs(30)));
}

#[test]
fn no_checkpoint_is_signed_over_a_ledger_that_does_not_extend_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checkpoint");
    let key_file = dir.path().join("log-key");
    let config = CheckpointConfig {
        every_events: 1,
        every: HOUR,
    };
    // A checkpoint of a ledger of 8 events...
    {
        let ledger =
            Arc::new(Ledger::open(&dir.path().join("first"), LedgerConfig::default()).unwrap());
        append(&ledger, 8);
        let key = LogKey::open_or_create(&key_file, Some(ORIGIN)).unwrap();
        Checkpointer::start(ledger, key, file.clone(), config)
            .unwrap()
            .finish();
    }
    // ...is not followed by one of a shorter ledger (a rollback) or a different one (a rewrite).
    for events in [5, 9] {
        let ledger = Arc::new(
            Ledger::open(
                &dir.path().join(format!("other-{events}")),
                LedgerConfig::default(),
            )
            .unwrap(),
        );
        append(&ledger, events);
        let key = LogKey::open(&key_file).unwrap();
        match Checkpointer::start(ledger, key, file.clone(), config) {
            Err(e @ CheckpointError::Inconsistent { size: 8, .. }) => {
                assert!(e.to_string().contains("does not extend"), "{e}");
            }
            Err(other) => panic!("expected an inconsistency, got {other}"),
            Ok(_) => panic!("a checkpoint over a ledger of {events} events must be refused"),
        }
    }
}

#[test]
fn a_checkpoint_is_issued_on_the_timer_when_the_tree_grew_by_fewer_than_n_events() {
    let dir = tempfile::tempdir().unwrap();
    let ledger =
        Arc::new(Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap());
    let key = LogKey::from_seed(ORIGIN, &LOG_SEED).unwrap();
    let vkey = key.verifier_key();
    let config = CheckpointConfig {
        every_events: 1_000,
        every: Duration::from_millis(100),
    };
    let checkpointer =
        Checkpointer::start(ledger.clone(), key, dir.path().join("checkpoint"), config).unwrap();
    append(&ledger, 3);
    assert!(
        checkpointer.wait_for(3, Duration::from_secs(30)),
        "the timer signs the 3 new events"
    );
    let (checkpoint, _) = Checkpoint::open(&checkpointer.latest().unwrap(), &vkey).unwrap();
    assert_eq!(checkpoint.size(), 3);
    assert_eq!(checkpointer.failure(), None);
}

#[test]
fn verify_recomputes_the_tree_from_the_chain_and_names_a_changed_stored_subtree_or_a_checkpoint_the_ledger_does_not_hold(
) {
    use careledger_core::checkpoint::TreeCheck;
    // The check that reads the events again, and the one from the roots a verification
    // recomputed (`careledger verify`), find the same.
    let check_tree = |ledger: &Ledger, checkpoint: Option<&Checkpoint>| -> Result<TreeCheck, ()> {
        let reading = careledger_core::checkpoint::check_tree(ledger, checkpoint).unwrap();
        let sizes: Vec<u64> = checkpoint.iter().map(|c| c.size()).collect();
        let report = ledger.verify_with_roots(&mut |_, _| {}, &sizes).unwrap();
        assert!(report.is_intact(), "{:?}", report.problem);
        let of_report =
            careledger_core::checkpoint::check_tree_of(&report, ledger, checkpoint).unwrap();
        assert_eq!(of_report, reading);
        Ok(reading)
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger");
    let key = LogKey::from_seed(ORIGIN, &LOG_SEED).unwrap();
    let vkey = key.verifier_key();
    {
        let ledger = Ledger::open(&path, LedgerConfig::default()).unwrap();
        append(&ledger, 70);
        // Intact: the stored tree and a checkpoint the log signed agree with the chain.
        let note = key.sign(ledger.tree_head(40).unwrap()).unwrap().to_string();
        let (signed, _) = Checkpoint::open(&note, &vkey).unwrap();
        // A backup's copy, whose stored tree was built from frames it has just verified, is
        // checked against that tree and finds the same.
        let stored = |checkpoint: &Checkpoint| {
            careledger_core::checkpoint::check_stored_tree(&ledger, Some(checkpoint)).unwrap()
        };
        let check = check_tree(&ledger, Some(&signed)).unwrap();
        assert_eq!(stored(&signed), check);
        assert_eq!(check.problem, None);
        assert_eq!(
            (check.size, check.root),
            (70, ledger.tree_head(70).unwrap().root)
        );
        // A checkpoint over another tree, or over more events than the ledger holds.
        let other = TreeHead {
            size: 40,
            root: TreeHash([9; 32]),
        };
        let (forged, _) = Checkpoint::open(&key.sign(other).unwrap().to_string(), &vkey).unwrap();
        let check = check_tree(&ledger, Some(&forged)).unwrap();
        assert_eq!(stored(&forged), check);
        let problem = check.problem.unwrap();
        assert!(problem.contains("rewritten below"), "{problem}");
        let beyond = TreeHead {
            size: 90,
            root: TreeHash([9; 32]),
        };
        let (ahead, _) = Checkpoint::open(&key.sign(beyond).unwrap().to_string(), &vkey).unwrap();
        let check = check_tree(&ledger, Some(&ahead)).unwrap();
        assert_eq!(stored(&ahead), check);
        let problem = check.problem.unwrap();
        assert!(problem.contains("missing"), "{problem}");
    }
    // A stored subtree changed behind the ledger's back (key prefix 'm', level 6, index 0).
    {
        let db = sled::open(&path).unwrap();
        let mut key = vec![b'm', 6];
        key.extend_from_slice(&0u64.to_be_bytes());
        assert!(
            db.get(&key).unwrap().is_some(),
            "the first 64 leaves are stored"
        );
        db.insert(key, vec![0x5a; 32]).unwrap();
        db.flush().unwrap();
    }
    let ledger = Ledger::open(&path, LedgerConfig::default()).unwrap();
    let problem = check_tree(&ledger, None).unwrap().problem.unwrap();
    assert!(problem.contains("stored Merkle tree"), "{problem}");
}
