//! Exports of one patient's history as evidence: `careledger export` writes the demo patient's
//! frames with their proofs against the latest signed checkpoint, `careledger verify-export`
//! checks them offline with the log key alone and prints the history, and fails, naming the
//! cause in one line, on every kind of tampering; the heads map's golden vector.

use std::path::{Path, PathBuf};
use std::process::Output;

use careledger_core::checkpoint::{issue, LogKey};
use careledger_core::export::{self, Completeness, Export};
use careledger_core::heads::{HeadKey, HeadsMap, PatientHead, KEY_TAG};
use careledger_core::ids::PatientId;
use careledger_core::note::{Note, NoteSigner, COSIGNATURE_V1};
use careledger_core::record::Hash;
use careledger_core::{Ledger, LedgerConfig};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::process::{careledger, log_key, sign_checkpoint, text, ServerProcess};

const PATIENT: &str = "999990007";
const OTHER: &str = "999990019";
const ORIGIN: &str = "hospital.example/careledger";

fn demo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let demo = careledger(&["demo", "--data", dir.path().to_str().unwrap()]);
    assert!(demo.status.success(), "{}", text(&demo));
    dir
}

fn open_ledger(data: &Path) -> Ledger {
    Ledger::open(&data.join("ledger"), LedgerConfig::default()).unwrap()
}

fn export_to(data: &Path, patient: &str, out: &Path) -> Output {
    careledger(&[
        "export",
        "--data",
        data.to_str().unwrap(),
        "--patient",
        patient,
        "--out",
        out.to_str().unwrap(),
    ])
}

fn verify_export(file: &Path, key: &str, extra: &[&str]) -> Output {
    let mut args = vec!["verify-export", file.to_str().unwrap(), "--key", key];
    args.extend_from_slice(extra);
    careledger(&args)
}

fn read_bundle(file: &Path) -> Export {
    serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap()
}

/// The demo with a checkpoint signed, and the export of the demo patient.
struct Exported {
    dir: tempfile::TempDir,
    file: PathBuf,
    key: String,
    bundle: Export,
}

impl Exported {
    fn new() -> Self {
        let dir = demo();
        sign_checkpoint(dir.path(), Some(ORIGIN));
        let file = dir.path().join("export.json");
        let out = export_to(dir.path(), PATIENT, &file);
        assert!(out.status.success(), "{}", text(&out));
        Self {
            key: log_key(dir.path()),
            bundle: read_bundle(&file),
            file,
            dir,
        }
    }

    /// Writes `bundle` beside the export and verifies it.
    fn verify_changed(&self, name: &str, bundle: &Export, extra: &[&str]) -> Output {
        let file = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec(bundle).unwrap()).unwrap();
        verify_export(&file, &self.key, extra)
    }
}

/// Asserts that verification failed with exit code 1 and one FAILED line holding `cause`.
fn assert_fails_naming(out: &Output, cause: &str, case: &str) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(1), "{case}: {all}");
    assert!(!all.contains("panicked"), "{case}: {all}");
    let failed: Vec<&str> = all.lines().filter(|l| l.starts_with("FAILED: ")).collect();
    assert_eq!(failed.len(), 1, "{case}: one FAILED line: {all}");
    assert!(
        failed[0].contains(cause),
        "{case}: expected {cause:?} in {:?}",
        failed[0]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_after_the_server_stopped_verifies_offline_and_prints_the_history() {
    let dir = demo();
    let client = reqwest::Client::new();
    let mut server = ServerProcess::start(dir.path(), &client).await;
    // The server signs its last checkpoint when it stops.
    server.signal(libc::SIGTERM);
    let note = std::fs::read_to_string(dir.path().join("checkpoint")).unwrap();
    assert!(note.contains("\ncareledger/heads/v1 3 "), "{note}");
    let file = dir.path().join("999990007.json");
    let out = export_to(dir.path(), PATIENT, &file);
    assert!(out.status.success(), "{}", text(&out));

    // The auditor's check of the data directory recomputes the heads map the log signed.
    let verified = careledger(&["verify", "--data", dir.path().to_str().unwrap()]);
    assert!(verified.status.success(), "{}", text(&verified));

    // Offline: only the file and the key, in another directory.
    let key = log_key(dir.path());
    let elsewhere = tempfile::tempdir().unwrap();
    let moved = elsewhere.path().join("evidence.json");
    std::fs::copy(&file, &moved).unwrap();
    drop(dir);
    let out = verify_export(&moved, &key, &["--patient", PATIENT]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.starts_with("VERIFIED: the history of patient 999990007"),
        "{printed}"
    );
    assert!(
        printed.contains("complete     the checkpoint's heads map (3 patients)"),
        "{printed}"
    );
    for expected in [
        // who (name and id), role and line
        "who: J. de Vries (card-devries), cardiologist, second line",
        "who: A. Jansen (gp-jansen), GP, first line",
        // what changed from what to what
        "what: target:ldl changed from",
        // when, both clocks, and why
        "when: recorded 20",
        ", occurred 20",
        "why: ",
        // the notification to the other party and its acknowledgement
        "told second line: acknowledged by card-devries",
        "hash ",
    ] {
        assert!(printed.contains(expected), "{expected:?} in {printed}");
    }
}

#[test]
fn verify_names_a_signed_heads_map_that_is_not_the_patients_last_events() {
    let dir = demo();
    let ledger = open_ledger(dir.path());
    let key = LogKey::open_or_create(&dir.path().join("log-key"), Some(ORIGIN)).unwrap();
    let size = ledger.head().position;
    // The heads map as it was one event earlier: the last event's patient shows an older head.
    let mut earlier = HeadsMap::build(&ledger, size - 1).unwrap();
    let wrong = earlier.line().unwrap().to_line();
    let note = key
        .sign_extended(ledger.tree_head(size).unwrap(), &[wrong])
        .unwrap();
    std::fs::write(dir.path().join("checkpoint"), note.to_string()).unwrap();
    drop(ledger);
    let out = careledger(&["verify", "--data", dir.path().to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the log signed a heads map that is not the patients' last events"),
        "{}",
        text(&out)
    );
    let out = export_to(dir.path(), PATIENT, &dir.path().join("x.json"));
    assert!(
        !out.status.success() && text(&out).contains("is not the one the checkpoint signed"),
        "{}",
        text(&out)
    );
}

#[test]
fn every_kind_of_tampering_fails_naming_its_cause() {
    let exported = Exported::new();
    let good = &exported.bundle;
    let n = good.events.len();
    assert!(n >= 6, "the demo patient has {n} events");
    let out = verify_export(&exported.file, &exported.key, &[]);
    assert!(out.status.success(), "{}", text(&out));

    let mut flipped = good.clone();
    let frame = &mut flipped.events[2].frame;
    let at = frame.len() - 5;
    frame[at] ^= 0x01;
    let out = exported.verify_changed("flipped", &flipped, &[]);
    assert_fails_naming(&out, "hash mismatch", "a changed byte in a frame");

    let mut header = good.clone();
    header.events[1].frame[0] = 0x02;
    let out = exported.verify_changed("header", &header, &[]);
    assert_fails_naming(&out, "the frame is malformed", "a changed frame version");

    let mut last_dropped = good.clone();
    last_dropped.events.pop();
    let out = exported.verify_changed("last-dropped", &last_dropped, &[]);
    assert_fails_naming(
        &out,
        "incomplete: the export's last event",
        "the last event dropped",
    );

    let mut middle_dropped = good.clone();
    middle_dropped.events.remove(n / 2);
    let out = exported.verify_changed("middle-dropped", &middle_dropped, &[]);
    assert_fails_naming(&out, "revision out of sequence", "a middle event dropped");

    let mut swapped = good.clone();
    swapped.events.swap(2, 3);
    let out = exported.verify_changed("swapped", &swapped, &[]);
    assert_fails_naming(&out, "out of order", "two events swapped");

    let mut repeated = good.clone();
    let again = repeated.events[3].clone();
    repeated.events.insert(4, again);
    let out = exported.verify_changed("repeated", &repeated, &[]);
    assert_fails_naming(&out, "out of order or repeated", "an event repeated");

    // Another patient's export of the same ledger and checkpoint.
    let other_file = exported.dir.path().join("other.json");
    let out = export_to(exported.dir.path(), OTHER, &other_file);
    assert!(out.status.success(), "{}", text(&out));
    let other = read_bundle(&other_file);
    let mut added = good.clone();
    let foreign = other
        .events
        .iter()
        .find(|e| {
            e.position > good.events[n - 2].position && e.position < good.events[n - 1].position
        })
        .or(other.events.last())
        .unwrap()
        .clone();
    let at = added
        .events
        .partition_point(|e| e.position < foreign.position);
    added.events.insert(at, foreign);
    let out = exported.verify_changed("added", &added, &[]);
    assert_fails_naming(
        &out,
        "is of patient 999990019, not 999990007",
        "another patient's event added",
    );

    let mut replaced = other.clone();
    replaced.patient = PATIENT.to_owned();
    let out = exported.verify_changed("replaced", &replaced, &[]);
    assert_fails_naming(
        &out,
        "is of patient 999990019, not 999990007",
        "another patient's frames",
    );
    let out = verify_export(&other_file, &exported.key, &["--patient", PATIENT]);
    assert_fails_naming(
        &out,
        "the export is of patient 999990019, not 999990007",
        "another patient's export",
    );

    let mut bad_path = good.clone();
    bad_path.events[1].inclusion[0].0[0] ^= 0x80;
    let out = exported.verify_changed("bad-path", &bad_path, &[]);
    assert_fails_naming(
        &out,
        "is not in the checkpoint's tree",
        "an inclusion proof changed",
    );

    let mut short_path = good.clone();
    short_path.events[1].inclusion.pop();
    let out = exported.verify_changed("short-path", &short_path, &[]);
    assert_fails_naming(
        &out,
        "is not in the checkpoint's tree",
        "an inclusion proof cut",
    );

    let mut moved = good.clone();
    moved.events[n - 1].position += 1;
    let out = exported.verify_changed("moved", &moved, &[]);
    assert_fails_naming(&out, "hash mismatch", "an event given another position");

    let mut heads_changed = good.clone();
    heads_changed.heads.as_mut().unwrap().inclusion[0].0[31] ^= 1;
    let out = exported.verify_changed("heads-changed", &heads_changed, &[]);
    assert_fails_naming(&out, "incomplete", "the heads proof changed");

    let mut neighbour_dropped = good.clone();
    let heads = neighbour_dropped.heads.as_mut().unwrap();
    if heads.left.is_some() {
        heads.left = None;
    } else {
        heads.right = None;
    }
    let out = exported.verify_changed("neighbour-dropped", &neighbour_dropped, &[]);
    assert_fails_naming(&out, "neighbour in the heads tree", "a neighbour left out");

    let mut no_heads = good.clone();
    no_heads.heads = None;
    let out = exported.verify_changed("no-heads", &no_heads, &[]);
    assert_fails_naming(&out, "\"heads\" is missing", "the heads proof removed");

    let mut resized = good.clone();
    let size_line = resized.checkpoint.lines().nth(1).unwrap().to_owned();
    let bigger = (size_line.parse::<u64>().unwrap() + 1).to_string();
    resized.checkpoint =
        resized
            .checkpoint
            .replacen(&format!("\n{size_line}\n"), &format!("\n{bigger}\n"), 1);
    let out = exported.verify_changed("resized", &resized, &[]);
    assert_fails_naming(&out, "does not verify", "the checkpoint changed");

    let mut unsigned = good.clone();
    let cut = unsigned.checkpoint.rfind("\n\n").unwrap();
    unsigned.checkpoint.truncate(cut + 2);
    let out = exported.verify_changed("unsigned", &unsigned, &[]);
    assert_fails_naming(&out, "the checkpoint is malformed", "the signature removed");

    let bytes = std::fs::read(&exported.file).unwrap();
    let truncated = exported.dir.path().join("truncated.json");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let out = verify_export(&truncated, &exported.key, &[]);
    assert_fails_naming(&out, "not valid JSON", "the file truncated");

    let garbage = exported.dir.path().join("garbage.json");
    std::fs::write(&garbage, b"\x00\xffPK\x03\x04 this is no export").unwrap();
    let out = verify_export(&garbage, &exported.key, &[]);
    assert_fails_naming(&out, "not valid JSON", "not JSON");

    let other_json = exported.dir.path().join("other-json.json");
    std::fs::write(
        &other_json,
        br#"{"format": "something else", "events": []}"#,
    )
    .unwrap();
    let out = verify_export(&other_json, &exported.key, &[]);
    assert_fails_naming(&out, "not a careledger export", "JSON of another kind");

    let mut value: Value = serde_json::from_slice(&bytes).unwrap();
    value["events"][0]["frame"] = json!("not base64!");
    let bad_base64 = exported.dir.path().join("bad-base64.json");
    std::fs::write(&bad_base64, serde_json::to_vec(&value).unwrap()).unwrap();
    let out = verify_export(&bad_base64, &exported.key, &[]);
    assert_fails_naming(&out, "malformed export", "a frame that is not base64");

    let empty_file = exported.dir.path().join("empty.json");
    let mut empty = good.clone();
    empty.events.clear();
    std::fs::write(&empty_file, serde_json::to_vec(&empty).unwrap()).unwrap();
    let out = verify_export(&empty_file, &exported.key, &[]);
    assert_fails_naming(&out, "holds no events", "no events");
}

#[test]
fn a_wrong_log_key_or_a_witness_that_did_not_cosign_is_refused() {
    let exported = Exported::new();
    let other_log = LogKey::from_seed(ORIGIN, &[0x33; 32])
        .unwrap()
        .verifier_key()
        .to_string();
    let out = verify_export(&exported.file, &other_log, &[]);
    assert_fails_naming(
        &out,
        "no signature by the log key",
        "another key of the same name",
    );
    let other_name = LogKey::from_seed("other.example/log", &[0x33; 32])
        .unwrap()
        .verifier_key()
        .to_string();
    let out = verify_export(&exported.file, &other_name, &[]);
    assert_fails_naming(&out, "no signature by the log key", "another log's key");

    // A witness cosigned the latest checkpoint: its cosignature is kept beside it, in
    // <data>/cosigned-checkpoint, and the export carries it.
    let witness = NoteSigner::from_seed("witness.example/w1", COSIGNATURE_V1, &[0x22; 32]).unwrap();
    let absent = NoteSigner::from_seed("witness.example/w2", COSIGNATURE_V1, &[0x44; 32]).unwrap();
    let file = exported.dir.path().join("checkpoint");
    let mut note = Note::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    note.add_signature(witness.cosign(note.text(), 1_772_355_600).unwrap());
    std::fs::write(
        exported.dir.path().join("cosigned-checkpoint"),
        note.to_string(),
    )
    .unwrap();
    let cosigned = exported.dir.path().join("cosigned.json");
    let out = export_to(exported.dir.path(), PATIENT, &cosigned);
    assert!(out.status.success(), "{}", text(&out));
    let w1 = witness.verifier_key().to_string();
    let w2 = absent.verifier_key().to_string();
    let out = verify_export(&cosigned, &exported.key, &["--witness", &w1]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("cosigned by  witness.example/w1 at 2026-03-01T09:00:00Z"),
        "{}",
        text(&out)
    );
    let out = verify_export(
        &cosigned,
        &exported.key,
        &["--witness", &w1, "--witness", &w2],
    );
    assert_fails_naming(
        &out,
        "witness witness.example/w2: the checkpoint carries no cosignature",
        "a witness that did not cosign",
    );
    let out = verify_export(&exported.file, &exported.key, &["--witness", &w1]);
    assert_fails_naming(
        &out,
        "witness witness.example/w1: the checkpoint carries no cosignature",
        "an export without the cosignature",
    );
    // The cosignatures of an older checkpoint are not carried into an export of the latest.
    {
        let ledger = open_ledger(exported.dir.path());
        let key = LogKey::open(&exported.dir.path().join("log-key")).unwrap();
        let size = ledger.head().position;
        let mut older = key.sign(ledger.tree_head(size - 1).unwrap()).unwrap();
        older.add_signature(witness.cosign(older.text(), 1_772_355_600).unwrap());
        std::fs::write(
            exported.dir.path().join("cosigned-checkpoint"),
            older.to_string(),
        )
        .unwrap();
    }
    let uncosigned = exported.dir.path().join("uncosigned.json");
    let out = export_to(exported.dir.path(), PATIENT, &uncosigned);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!read_bundle(&uncosigned)
        .checkpoint
        .contains("witness.example/w1"));

    // A cosignature changed in the bundle.
    let mut bundle = read_bundle(&cosigned);
    let line = bundle
        .checkpoint
        .lines()
        .find(|l| l.contains("witness.example/w1"))
        .unwrap()
        .to_owned();
    let sig = line.rsplit(' ').next().unwrap();
    let changed_sig = format!(
        "{}{}",
        &sig[..20],
        if &sig[20..21] == "A" { "B" } else { "A" }
    ) + &sig[21..];
    bundle.checkpoint = bundle.checkpoint.replace(sig, &changed_sig);
    let out = exported.verify_changed("bad-cosignature", &bundle, &["--witness", &w1]);
    assert_fails_naming(
        &out,
        "its cosignature does not verify",
        "a changed cosignature",
    );

    // A log key given as a witness, and a witness key given as the log key, are refused.
    let out = verify_export(&cosigned, &exported.key, &["--witness", &exported.key]);
    assert!(
        !out.status.success() && text(&out).contains("not a witness's cosigner key"),
        "{}",
        text(&out)
    );
    let out = verify_export(&cosigned, &w1, &[]);
    assert!(
        !out.status.success() && text(&out).contains("not a log key"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_export_reveals_nothing_of_other_patients_beyond_hashes() {
    let exported = Exported::new();
    let json = std::fs::read_to_string(&exported.file).unwrap();
    // Every frame is the patient's own.
    for event in &exported.bundle.events {
        let frame = careledger_core::chain::Frame::parse(&event.frame).unwrap();
        let record = careledger_core::record::decode_record(
            event.position,
            frame.format_version,
            frame.record,
        )
        .unwrap();
        assert_eq!(record.patient.as_str(), PATIENT);
    }
    // No other patient's id appears; of the neighbours in the heads map only a key and a
    // commitment (hashes) are shown.
    for other in [OTHER, "pat-0003"] {
        assert!(!json.contains(other), "{other} in the export");
    }
    let heads: Value = serde_json::from_str::<Value>(&json).unwrap()["heads"].clone();
    for side in ["left", "right"] {
        if let Some(neighbour) = heads[side].as_object() {
            let mut fields: Vec<&str> = neighbour.keys().map(String::as_str).collect();
            fields.sort_unstable();
            assert_eq!(fields, ["commitment", "inclusion", "index", "key"]);
        }
    }
}

#[test]
fn an_export_against_a_checkpoint_without_heads_says_the_tail_is_unproven() {
    let dir = demo();
    let ledger = open_ledger(dir.path());
    let key = LogKey::open_or_create(&dir.path().join("log-key"), Some(ORIGIN)).unwrap();
    // A checkpoint as builds before the heads map signed it: three lines.
    let head = ledger.tree_head(ledger.head().position).unwrap();
    std::fs::write(
        dir.path().join("checkpoint"),
        key.sign(head).unwrap().to_string(),
    )
    .unwrap();
    drop(ledger);
    let file = dir.path().join("old.json");
    let out = export_to(dir.path(), PATIENT, &file);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("WARNING: that checkpoint carries no heads map"),
        "{}",
        text(&out)
    );
    assert!(read_bundle(&file).heads.is_none());
    let key = log_key(dir.path());
    let out = verify_export(&file, &key, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("WARNING      the tail is unproven"),
        "{}",
        text(&out)
    );
    let out = verify_export(&file, &key, &["--require-complete"]);
    assert_fails_naming(&out, "the tail is unproven", "--require-complete");
    // Nor can a heads proof be slipped in against it.
    let mut bundle = read_bundle(&file);
    bundle.heads = Some(export::ExportedHeads {
        index: 0,
        inclusion: vec![],
        left: None,
        right: None,
    });
    let changed = dir.path().join("slipped.json");
    std::fs::write(&changed, serde_json::to_vec(&bundle).unwrap()).unwrap();
    let out = verify_export(&changed, &key, &[]);
    assert_fails_naming(
        &out,
        "no heads map to prove it against",
        "a heads proof without heads map",
    );
}

#[test]
fn an_export_is_refused_while_the_latest_checkpoint_does_not_cover_the_patient() {
    let dir = demo();
    let ledger = open_ledger(dir.path());
    let key = LogKey::open_or_create(&dir.path().join("log-key"), Some(ORIGIN)).unwrap();
    let patient = PatientId::parse(PATIENT).unwrap();
    let last = ledger
        .read_stream(&patient, 1, usize::MAX)
        .unwrap()
        .last()
        .unwrap()
        .position;
    issue(&ledger, &key, &dir.path().join("checkpoint"), last - 1).unwrap();
    drop(ledger);
    let out = export_to(dir.path(), PATIENT, &dir.path().join("x.json"));
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains(&format!(
            "does not cover patient 999990007's last event (position {last})"
        )) && said.contains("wait for the next checkpoint"),
        "{said}"
    );
    assert!(!dir.path().join("x.json").exists());

    let none = demo();
    let out = export_to(none.path(), PATIENT, &none.path().join("x.json"));
    assert!(
        !out.status.success() && text(&out).contains("the log has signed no checkpoint yet"),
        "{}",
        text(&out)
    );
}

/// Writes the frames of `tests/data/golden-v1.json` (record format 1, patient 999990007,
/// positions 1 to 3) into a new ledger's sled database as a build of that format stored them.
fn ledger_of_format_1(dir: &Path) {
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/golden-v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let db = sled::open(dir.join("ledger")).unwrap();
    let mut positions = Vec::new();
    for vector in golden["vectors"].as_array().unwrap() {
        let position = vector["position"].as_u64().unwrap();
        let mut key = vec![b'e'];
        key.extend_from_slice(&position.to_be_bytes());
        db.insert(
            key,
            hex::decode(vector["frame_hex"].as_str().unwrap()).unwrap(),
        )
        .unwrap();
        positions.extend_from_slice(&position.to_be_bytes());
    }
    let mut index = vec![b's', 9];
    index.extend_from_slice(PATIENT.as_bytes());
    index.extend_from_slice(&1u64.to_be_bytes());
    db.insert(index, positions).unwrap();
    db.flush().unwrap();
}

#[test]
fn records_of_format_1_stay_readable_and_verifiable_in_an_export() {
    use careledger_core::event::{Command, Target, TargetBasis};
    use careledger_core::ids::{ActorId, Text};
    use careledger_core::ledger::{AppendRequest, ExpectedRevision, Submission};
    use careledger_core::quantity::{Comparator, Measure, Quantity};
    use careledger_core::record::Actor;
    use careledger_core::role::Role;

    let dir = tempfile::tempdir().unwrap();
    ledger_of_format_1(dir.path());
    let ledger = open_ledger(dir.path());
    let patient = PatientId::parse(PATIENT).unwrap();
    // A later event in the current format, on top of the format 1 history.
    ledger
        .append(AppendRequest {
            patient: patient.clone(),
            expected: ExpectedRevision::Exact(3),
            actor: Actor::new(
                ActorId::parse("card-devries").unwrap(),
                Role::Cardiologist,
                Text::new("J. de Vries").unwrap(),
            ),
            submissions: vec![Submission {
                command: Command::SetTarget(Target {
                    comparator: Comparator::AtMost,
                    value: Quantity::new(Measure::LdlCholesterol, 14).unwrap(),
                    basis: TargetBasis::Individual,
                    rationale: Text::new("progression").unwrap(),
                }),
                occurred_at: None,
                reason: Text::new("follow-up letter").unwrap(),
            }],
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        })
        .unwrap();
    let key = LogKey::open_or_create(&dir.path().join("log-key"), Some(ORIGIN)).unwrap();
    let note = issue(&ledger, &key, &dir.path().join("checkpoint"), 4).unwrap();
    let bundle = export::export_patient(&ledger, &patient, &note).unwrap();
    let verified = export::verify(&bundle, &key.verifier_key(), &[]).unwrap();
    let formats: Vec<u16> = verified.events.iter().map(|e| e.format_version).collect();
    assert_eq!(formats, [1, 1, 1, 2]);
    assert_eq!(verified.completeness, Completeness::Proven { patients: 1 });
    assert_eq!(verified.events[0].record.actor.name.as_str(), "A. Jansen");
    drop(ledger);

    let file = dir.path().join("v1.json");
    let out = export_to(dir.path(), PATIENT, &file);
    assert!(out.status.success(), "{}", text(&out));
    let out = verify_export(&file, &key.verifier_key().to_string(), &[]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.contains("revisions 1 to 4, positions 1 to 4"),
        "{printed}"
    );
    assert!(
        printed.contains("who: A. Jansen (gp-jansen), GP, first line"),
        "{printed}"
    );
    assert!(printed.contains("why: founds the care team"), "{printed}");
}

const HEADS_VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/heads-v1.json");

/// The events of the heads-map vectors: (position, patient), positions from 1; the event hash
/// of position p is BLAKE3 of `careledger heads vector ` and the byte p.
const VECTOR_EVENTS: [(u64, &str); 9] = [
    (1, "999990007"),
    (2, "999990019"),
    (3, "999990007"),
    (4, "pat-0003"),
    (5, "999990019"),
    (6, "p-4"),
    (7, "999990007"),
    (8, "p-5"),
    (9, "p-4"),
];

fn vector_hash(position: u64) -> Hash {
    let mut input = b"careledger heads vector ".to_vec();
    input.push(position as u8);
    Hash(*blake3::hash(&input).as_bytes())
}

fn heads_vectors() -> Value {
    let mut map = HeadsMap::new();
    let mut revisions = std::collections::BTreeMap::new();
    for (position, id) in VECTOR_EVENTS {
        let revision = revisions.entry(id).and_modify(|r| *r += 1).or_insert(1u64);
        let head = PatientHead {
            revision: *revision,
            position,
            hash: vector_hash(position),
        };
        map.record(&PatientId::parse(id).unwrap(), head).unwrap();
    }
    let line = map.line().unwrap();
    let mut leaves: Vec<Value> = revisions
        .keys()
        .map(|id| {
            let patient = PatientId::parse(id).unwrap();
            let key = HeadKey::of(&patient);
            let head = map.head(&key).unwrap();
            let proof = map.proof(&key).unwrap().unwrap();
            json!({
                "patient": id,
                "revision": head.revision,
                "position": head.position,
                "hash": head.hash.to_hex(),
                "key": hex::encode(key.0),
                "commitment": hex::encode(head.commitment()),
                "leaf_hash": careledger_core::heads::leaf(&key, &head.commitment()).to_hex(),
                "index": proof.leaf.index,
                "inclusion": proof.leaf.path.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
            })
        })
        .collect();
    leaves.sort_by_key(|l| l["index"].as_u64());
    json!({
        "format": "careledger heads map vectors, heads/v1",
        "events": VECTOR_EVENTS.iter().map(|(p, id)| json!({
            "position": p, "patient": id, "hash": vector_hash(*p).to_hex(),
        })).collect::<Vec<_>>(),
        "leaves": leaves,
        "count": line.count,
        "root": line.root.to_hex(),
        "line": line.to_line(),
    })
}

/// RFC 6962 MTH over leaf hashes, written from the RFC's text.
fn mth(leaves: &[[u8; 32]]) -> [u8; 32] {
    match leaves.len() {
        0 => Sha256::digest([]).into(),
        1 => leaves[0],
        n => {
            let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
            let mut hasher = Sha256::new();
            hasher.update([1u8]);
            hasher.update(mth(&leaves[..k]));
            hasher.update(mth(&leaves[k..]));
            hasher.finalize().into()
        }
    }
}

#[test]
fn the_heads_map_encoding_matches_its_golden_vector() {
    let computed = heads_vectors();
    if std::env::var_os("CARELEDGER_WRITE_GOLDEN").is_some() && !Path::new(HEADS_VECTORS).exists() {
        std::fs::write(
            HEADS_VECTORS,
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
    }
    let committed: Value =
        serde_json::from_str(&std::fs::read_to_string(HEADS_VECTORS).unwrap()).unwrap();
    assert_eq!(
        computed, committed,
        "the heads map's encoding changed: that needs heads/v2, never a regenerated file"
    );

    // The committed leaves and root, recomputed from the specification alone.
    let mut leaves = Vec::new();
    for leaf in committed["leaves"].as_array().unwrap() {
        let id = leaf["patient"].as_str().unwrap();
        let key = blake3::Hasher::new()
            .update(KEY_TAG)
            .update(id.as_bytes())
            .finalize();
        assert_eq!(hex::encode(key.as_bytes()), leaf["key"], "{id}");
        let commitment = blake3::Hasher::new()
            .update(b"careledger/heads/v1/head\0")
            .update(&leaf["revision"].as_u64().unwrap().to_be_bytes())
            .update(&leaf["position"].as_u64().unwrap().to_be_bytes())
            .update(&hex::decode(leaf["hash"].as_str().unwrap()).unwrap())
            .finalize();
        assert_eq!(
            hex::encode(commitment.as_bytes()),
            leaf["commitment"],
            "{id}"
        );
        let hash: [u8; 32] = Sha256::new()
            .chain_update([0u8])
            .chain_update(key.as_bytes())
            .chain_update(commitment.as_bytes())
            .finalize()
            .into();
        assert_eq!(hex::encode(hash), leaf["leaf_hash"], "{id}");
        leaves.push((key.as_bytes().to_owned(), hash));
    }
    let sorted = leaves.windows(2).all(|w| w[0].0 < w[1].0);
    assert!(sorted, "the leaves are listed in key order");
    let hashes: Vec<[u8; 32]> = leaves.iter().map(|(_, h)| *h).collect();
    assert_eq!(hex::encode(mth(&hashes)), committed["root"]);
    assert_eq!(committed["count"], leaves.len());
}

/// A small random number generator for the seeded test (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

#[test]
fn random_histories_export_verify_and_any_tail_left_out_is_found() {
    use careledger_core::checkpoint::issue_with_heads;
    use careledger_core::event::{Command, Measurement, MeasurementSource, Member};
    use careledger_core::export::ExportProblem;
    use careledger_core::ids::{ActorId, Text};
    use careledger_core::ledger::{AppendRequest, ExpectedRevision, Submission};
    use careledger_core::quantity::{Measure, Quantity};
    use careledger_core::record::Actor;
    use careledger_core::role::{Lead, Practitioner, Role};

    let mut rng = Rng(crate::common::seed() | 1);
    let dir = tempfile::tempdir().unwrap();
    let ledger = open_ledger(dir.path());
    let key = LogKey::from_seed(ORIGIN, &[0x11; 32]).unwrap();
    let file = dir.path().join("checkpoint");
    let gp = Actor::new(
        ActorId::parse("gp-1").unwrap(),
        Role::Gp,
        Text::new("A. Jansen").unwrap(),
    );
    let patients: Vec<PatientId> = (0..12)
        .map(|n| PatientId::parse(&format!("p-{n}")).unwrap())
        .collect();
    let mut founded = vec![false; patients.len()];
    let mut heads = HeadsMap::new();
    let mut notes = Vec::new();
    for append in 0..80 {
        let p = rng.below(patients.len() as u64) as usize;
        let mut submissions = Vec::new();
        if !founded[p] {
            founded[p] = true;
            submissions.push(Submission {
                command: Command::AddCareTeamMember(Member {
                    actor: gp.id.clone(),
                    name: gp.name.clone(),
                    agb: None,
                    role: Role::Gp,
                    lead: Lead::Cvrm,
                    practitioner: Practitioner::Main,
                }),
                occurred_at: None,
                reason: Text::new("founds the team").unwrap(),
            });
        }
        for _ in 0..1 + rng.below(3) {
            submissions.push(Submission {
                command: Command::RecordMeasurement(Measurement {
                    value: Quantity::new(
                        Measure::SystolicBloodPressure,
                        120 + rng.below(40) as i64,
                    )
                    .unwrap(),
                    source: MeasurementSource::Practice,
                }),
                occurred_at: None,
                reason: Text::new("routine check").unwrap(),
            });
        }
        ledger
            .append(AppendRequest {
                patient: patients[p].clone(),
                expected: ExpectedRevision::Any,
                actor: gp.clone(),
                submissions,
                idempotency_key: None,
                correlation_id: None,
                causation_id: None,
            })
            .unwrap();
        // Checkpoints now and then, the heads map kept from one to the next.
        if append % 20 == 19 || rng.below(10) == 0 {
            let size = ledger.head().position;
            notes.push((
                size,
                issue_with_heads(&ledger, &key, &file, size, &mut heads).unwrap(),
            ));
        }
    }
    let vkey = key.verifier_key();
    for (n, (size, note)) in notes.iter().enumerate() {
        let last_note = n + 1 == notes.len();
        let mut heads_at = HeadsMap::build(&ledger, *size).unwrap();
        for patient in &patients {
            let history = ledger.read_stream(patient, 1, usize::MAX).unwrap();
            let covered = history.iter().filter(|e| e.position <= *size).count();
            let exported = export::export_patient(&ledger, patient, note);
            if history.is_empty() {
                assert!(exported.is_err());
                continue;
            }
            if covered < history.len() {
                let refused = matches!(exported, Err(export::ExportError::NotCovered { .. }));
                assert!(refused, "{patient} at size {size}");
                continue;
            }
            let bundle = exported.unwrap();
            let verified = export::verify(&bundle, &vkey, &[]).unwrap();
            assert_eq!(verified.events.len(), history.len());
            assert_eq!(
                verified.completeness,
                Completeness::Proven {
                    patients: heads_at.line().unwrap().count
                }
            );
            if !last_note {
                continue;
            }
            // Any tail left out is found.
            for keep in 1..bundle.events.len() {
                let mut cut = bundle.clone();
                cut.events.truncate(keep);
                let found = matches!(
                    export::verify(&cut, &vkey, &[]),
                    Err(ExportProblem::Incomplete { .. })
                );
                assert!(found, "{patient}: {keep} of {} kept", bundle.events.len());
            }
            // Any event left out in the middle is found.
            for gone in 0..bundle.events.len().saturating_sub(1) {
                let mut cut = bundle.clone();
                cut.events.remove(gone);
                assert!(
                    export::verify(&cut, &vkey, &[]).is_err(),
                    "{patient}: {gone} left out"
                );
            }
        }
    }
}
