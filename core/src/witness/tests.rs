//! The witness's decisions, given checkpoints of an in-memory log: what it cosigns, what it
//! refuses and why, and what it remembers across a restart.

use super::*;
use crate::checkpoint::LogKey;
use crate::merkle::{consistency_path, leaf_hash, node_hash, root, NodeSource, TreeHead};

const ORIGIN: &str = "careledger.example/test-log";
const NOW: u64 = 1_772_355_600;

/// A log in memory: its leaves' hashes, every level of complete subtrees.
struct Tree(Vec<Vec<TreeHash>>);

impl Tree {
    /// A tree of `size` leaves; `variant` changes every leaf (another history).
    fn new(size: u64, variant: u8) -> Self {
        let leaves: Vec<TreeHash> = (0..size)
            .map(|i| leaf_hash(&[variant, i as u8, (i >> 8) as u8]))
            .collect();
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().cloned().unwrap_or_default();
            levels.push(
                below
                    .chunks_exact(2)
                    .map(|p| node_hash(&p[0], &p[1]))
                    .collect(),
            );
        }
        Self(levels)
    }

    fn head(&self, size: u64) -> TreeHead {
        TreeHead {
            size,
            root: root(self, size).unwrap(),
        }
    }

    fn proof(&self, first: u64, second: u64) -> Vec<TreeHash> {
        match first {
            0 => Vec::new(),
            _ => consistency_path(self, first, second).unwrap(),
        }
    }
}

impl NodeSource for Tree {
    fn node(&self, level: u8, index: u64) -> crate::error::Result<TreeHash> {
        Ok(self.0[level as usize][index as usize])
    }
}

struct Setup {
    dir: tempfile::TempDir,
    log: LogKey,
    witness_key: String,
    tree: Tree,
}

impl Setup {
    fn new() -> Self {
        let witness = NoteSigner::from_seed(
            "witness.example/gp-cooperative",
            COSIGNATURE_V1,
            &[0x22; 32],
        )
        .unwrap();
        Self {
            dir: tempfile::tempdir().unwrap(),
            log: LogKey::from_seed(ORIGIN, &[0x11; 32]).unwrap(),
            witness_key: witness.to_private_key_string(),
            tree: Tree::new(40, 0),
        }
    }

    fn open(&self) -> Result<Witness, WitnessError> {
        Witness::open(
            NoteSigner::parse_private_key(&self.witness_key).unwrap(),
            &[self.log.verifier_key()],
            &self.dir.path().join("state"),
        )
    }

    /// The request for the log's checkpoint at `size` of `tree`, from `old`.
    fn request(&self, tree: &Tree, old: u64, size: u64) -> Vec<u8> {
        let note = self.log.sign(tree.head(size)).unwrap().to_string();
        AddCheckpoint::new(old, tree.proof(old, size), &note)
            .unwrap()
            .to_bytes()
    }
}

fn verifies(witness: &Witness, signature: &NoteSignature, body: &str) -> bool {
    signature
        .verify_cosignature(&witness.verifier_key(), body)
        .is_ok()
}

#[test]
fn the_first_checkpoint_is_cosigned_from_old_size_zero() {
    let s = Setup::new();
    let witness = s.open().unwrap();
    let cosignature = witness
        .add_checkpoint(&s.request(&s.tree, 0, 10), NOW)
        .unwrap();
    let body = Checkpoint::new(ORIGIN, s.tree.head(10)).unwrap().body();
    assert!(verifies(&witness, &cosignature, &body));
    assert_eq!(
        cosignature.verify_cosignature(&witness.verifier_key(), &body),
        Ok(NOW)
    );
    let latest = witness.latest(ORIGIN).unwrap();
    assert!(latest.starts_with(&body), "{latest}");
    assert_eq!(
        witness.latest_by_origin_hash(&origin_hash(ORIGIN)),
        Some(latest)
    );
}

#[test]
fn growth_with_a_valid_consistency_proof_is_cosigned() {
    let s = Setup::new();
    let witness = s.open().unwrap();
    witness
        .add_checkpoint(&s.request(&s.tree, 0, 7), NOW)
        .unwrap();
    for (old, size) in [(7, 11), (11, 11), (11, 32), (32, 40)] {
        let cosignature = witness
            .add_checkpoint(&s.request(&s.tree, old, size), NOW + size)
            .unwrap_or_else(|e| panic!("{old} -> {size}: {e}"));
        let body = Checkpoint::new(ORIGIN, s.tree.head(size)).unwrap().body();
        assert!(verifies(&witness, &cosignature, &body), "{old} -> {size}");
    }
}

#[test]
fn an_old_size_other_than_the_cosigned_one_is_a_conflict_naming_the_witness_size() {
    let s = Setup::new();
    let witness = s.open().unwrap();
    witness
        .add_checkpoint(&s.request(&s.tree, 0, 7), NOW)
        .unwrap();
    for old in [0, 5, 8] {
        match witness.add_checkpoint(&s.request(&s.tree, old, 11), NOW) {
            Err(WitnessError::Conflict {
                cosigned: 7,
                old: o,
            }) => assert_eq!(o, old),
            other => panic!("old {old}: expected a conflict at 7, got {other:?}"),
        }
    }
    // The submitter learns 7 and proves from there.
    witness
        .add_checkpoint(&s.request(&s.tree, 7, 11), NOW)
        .unwrap();
}

#[test]
fn a_checkpoint_smaller_than_the_cosigned_one_is_refused_as_a_rollback() {
    let s = Setup::new();
    let witness = s.open().unwrap();
    witness
        .add_checkpoint(&s.request(&s.tree, 0, 11), NOW)
        .unwrap();
    for old in [0, 3, 5] {
        let refused = witness
            .add_checkpoint(&s.request(&s.tree, old, 5), NOW)
            .unwrap_err();
        assert!(refused.is_misbehaviour(), "{refused}");
        match &refused {
            WitnessError::Rollback {
                cosigned: 11,
                offered: 5,
                ..
            } => assert!(refused.to_string().contains("smaller"), "{refused}"),
            other => panic!("expected a rollback, got {other:?}"),
        }
    }
    // The rolled-back request with the witness's own size as old is refused too.
    let note = s.log.sign(s.tree.head(5)).unwrap().to_string();
    let body = AddCheckpoint::new(11, vec![], &note).unwrap().to_bytes();
    assert!(matches!(
        witness.add_checkpoint(&body, NOW),
        Err(WitnessError::Rollback { old: 11, .. })
    ));
    assert!(witness.latest(ORIGIN).unwrap().contains("\n11\n"));
}

#[test]
fn a_fork_is_refused_at_the_same_size_and_beyond() {
    let s = Setup::new();
    let witness = s.open().unwrap();
    witness
        .add_checkpoint(&s.request(&s.tree, 0, 11), NOW)
        .unwrap();
    let other = Tree::new(40, 1);
    // The same size with another root.
    match witness.add_checkpoint(&s.request(&other, 11, 11), NOW) {
        Err(e @ WitnessError::Fork { size: 11, .. }) => assert!(e.is_misbehaviour()),
        other => panic!("expected a fork, got {other:?}"),
    }
    // A larger tree of another history: its own proof does not lead from the cosigned root.
    match witness.add_checkpoint(&s.request(&other, 11, 20), NOW) {
        Err(
            e @ WitnessError::Inconsistent {
                cosigned: 11,
                offered: 20,
                ..
            },
        ) => {
            assert!(e.is_misbehaviour());
        }
        other => panic!("expected an inconsistency, got {other:?}"),
    }
    // A forged proof for the right history does not verify either.
    let note = s.log.sign(s.tree.head(20)).unwrap().to_string();
    let mut proof = s.tree.proof(11, 20);
    proof[0].0[0] ^= 1;
    let body = AddCheckpoint::new(11, proof, &note).unwrap().to_bytes();
    assert!(matches!(
        witness.add_checkpoint(&body, NOW),
        Err(WitnessError::Inconsistent { .. })
    ));
    // Having refused both, it still cosigns only the history it cosigned.
    witness
        .add_checkpoint(&s.request(&s.tree, 11, 20), NOW)
        .unwrap();
    assert!(matches!(
        witness.add_checkpoint(&s.request(&other, 20, 20), NOW),
        Err(WitnessError::Fork { .. })
    ));
}

#[test]
fn a_checkpoint_without_a_valid_log_signature_is_refused() {
    let s = Setup::new();
    let witness = s.open().unwrap();
    let good = s.log.sign(s.tree.head(10)).unwrap().to_string();
    // The root changed after signing.
    let changed = good.replacen("\n10\n", "\n12\n", 1);
    let body = AddCheckpoint::new(0, vec![], &changed).unwrap().to_bytes();
    assert!(matches!(
        witness.add_checkpoint(&body, NOW),
        Err(WitnessError::Unverified(NoteError::BadSignature(_)))
    ));
    // Signed by another key of the same origin.
    let impostor = LogKey::from_seed(ORIGIN, &[0x33; 32]).unwrap();
    let note = impostor.sign(s.tree.head(10)).unwrap().to_string();
    let body = AddCheckpoint::new(0, vec![], &note).unwrap().to_bytes();
    assert!(matches!(
        witness.add_checkpoint(&body, NOW),
        Err(WitnessError::Unverified(NoteError::NotSigned(_)))
    ));
    // A log this witness does not follow.
    let stranger = LogKey::from_seed("other.example/log", &[0x11; 32]).unwrap();
    let note = stranger.sign(s.tree.head(10)).unwrap().to_string();
    let body = AddCheckpoint::new(0, vec![], &note).unwrap().to_bytes();
    assert!(matches!(
        witness.add_checkpoint(&body, NOW),
        Err(WitnessError::UnknownLog(o)) if o == "other.example/log"
    ));
    assert_eq!(witness.latest(ORIGIN), None, "nothing was cosigned");
}

#[test]
fn the_latest_cosigned_checkpoint_survives_a_restart_and_a_second_process_is_refused() {
    let s = Setup::new();
    {
        let witness = s.open().unwrap();
        witness
            .add_checkpoint(&s.request(&s.tree, 0, 11), NOW)
            .unwrap();
        assert!(matches!(s.open(), Err(WitnessError::Io { .. })));
    }
    let witness = s.open().unwrap();
    assert!(witness.latest(ORIGIN).unwrap().contains("\n11\n"));
    assert!(matches!(
        witness.add_checkpoint(&s.request(&s.tree, 0, 20), NOW),
        Err(WitnessError::Conflict { cosigned: 11, .. })
    ));
    assert!(matches!(
        witness.add_checkpoint(&s.request(&s.tree, 0, 5), NOW),
        Err(WitnessError::Rollback { .. })
    ));
    witness
        .add_checkpoint(&s.request(&s.tree, 11, 20), NOW)
        .unwrap();
    drop(witness);

    // A state file changed behind the witness's back stops it from starting.
    let path = state_path(&s.dir.path().join("state"), ORIGIN);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("\n20\n", "\n2\n", 1)).unwrap();
    assert!(matches!(s.open(), Err(WitnessError::State { .. })));
}

#[test]
fn malformed_requests_are_refused_with_what_is_wrong() {
    let s = Setup::new();
    let witness = s.open().unwrap();
    let note = s.log.sign(s.tree.head(10)).unwrap().to_string();
    let hash = BASE64.encode([7u8; 32]);
    for body in [
        String::new(),
        format!("old 0\n{note}"),
        format!("old 01\n\n{note}"),
        format!("old -1\n\n{note}"),
        format!("old 1\nnot base64\n\n{note}"),
        format!("old 1\n{}\n\n{note}", BASE64.encode([7u8; 31])),
        format!("new 0\n\n{note}"),
        format!("old 0\n\n{}", note.trim_end()),
        format!("old 0\n\n{}", note.replacen("\n10\n", "\nten\n", 1)),
        format!("old 1\n{}\n{note}", format!("{hash}\n").repeat(64)),
    ] {
        match witness.add_checkpoint(body.as_bytes(), NOW) {
            Err(WitnessError::Malformed(_)) => {}
            other => panic!("{body:?}: expected malformed, got {other:?}"),
        }
    }
    let beyond = AddCheckpoint::new(11, vec![], &note).unwrap().to_bytes();
    assert!(matches!(
        witness.add_checkpoint(&beyond, NOW),
        Err(WitnessError::OldBeyondSize { old: 11, size: 10 })
    ));
    let with_proof = AddCheckpoint::new(0, vec![TreeHash([1; 32])], &note)
        .unwrap()
        .to_bytes();
    assert!(matches!(
        witness.add_checkpoint(&with_proof, NOW),
        Err(WitnessError::BadProof(_))
    ));
}

#[test]
fn a_request_body_parses_back_to_itself() {
    let s = Setup::new();
    let note = s.log.sign(s.tree.head(11)).unwrap().to_string();
    let request = AddCheckpoint::new(7, s.tree.proof(7, 11), &note).unwrap();
    let body = request.to_bytes();
    let text = String::from_utf8(body.clone()).unwrap();
    assert!(text.starts_with("old 7\n"), "{text}");
    assert!(text.ends_with(&format!("\n\n{note}")), "{text}");
    assert_eq!(AddCheckpoint::parse(&body).unwrap(), request);
}

#[test]
fn extension_lines_are_cosigned_as_bytes_and_empty_ones_refused() {
    let text = format!("{ORIGIN}\n3\n{}\nextension\n", BASE64.encode([0u8; 32]));
    assert_eq!(parse_checkpoint_text(&text).unwrap().size(), 3);
    let empty = format!("{ORIGIN}\n3\n{}\n\nextension\n", BASE64.encode([0u8; 32]));
    assert!(parse_checkpoint_text(&empty).is_err());
}

#[test]
fn a_witness_key_is_a_cosigner_key_readable_by_its_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness-key");
    let made = create_witness_key(&path, "witness.example/hospital").unwrap();
    assert_eq!(made.verifier_key().kind(), COSIGNATURE_V1);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let read = read_witness_key(&path).unwrap();
    assert_eq!(read.verifier_key(), made.verifier_key());
    assert!(
        create_witness_key(&path, "witness.example/hospital").is_err(),
        "never overwritten"
    );
    let log_key = dir.path().join("log-key");
    LogKey::open_or_create(&log_key, Some(ORIGIN)).unwrap();
    assert!(matches!(
        read_witness_key(&log_key),
        Err(WitnessError::Key { .. })
    ));
}
