//! The verifier in another language: `verifiers/python/careledger_verify.py`, written from
//! `docs/hash-format.md` alone (Python 3, standard library only), run as a child process. It
//! accepts exports made by this code and decodes every event variant of the catalogue (both
//! record formats), rejects tampered bundles with one `FAILED:` line, checks a real server's
//! ledger over HTTP, and passes its own BLAKE3 and Ed25519 self-tests.
//!
//! Python 3 is required: without it these tests fail, saying to install it (`.ci/run` does).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use careledger_api::signature::{base64_encode, from_request, public_key, sign, RequestParts};
use careledger_core::chain::{encode_frame, event_hash, Frame};
use careledger_core::checkpoint::LogKey;
use careledger_core::clinical::{
    Indication, Intolerance, IntoleranceKind, Problem, ProblemCode, ProblemCodeSystem,
    ProblemResolution, SmokingObservation, SmokingStatus,
};
use careledger_core::event::*;
use careledger_core::export::Export;
use careledger_core::ids::{ActorId, AgbCode, AtcCode, ElementId, PatientId, Text, Uid};
use careledger_core::note::{Note as SignedNote, NoteSigner, COSIGNATURE_V1};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::{
    decode_record, encode_record, Actor, Hash, Record, Timestamp, RECORD_FORMAT_VERSION,
};
use careledger_core::role::{Lead, Line, Practitioner, Role};
use careledger_core::signed_request::SignedRequest;
use careledger_core::signing_keys::operator;
use careledger_core::{AppendRequest, ExpectedRevision, Ledger, LedgerConfig, Submission};
use serde_json::{json, Value};

use crate::common::process::{
    careledger, log_key, prepare_demo, sign_checkpoint, text, ServerProcess,
};
use crate::common::{note_body, unix_now};

const PATIENT: &str = "999990007";
const ORIGIN: &str = "hospital.example/careledger";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("verifiers/python/careledger_verify.py")
}

/// Runs the Python verifier; fails loudly when python3 is missing.
fn python(args: &[&str]) -> Output {
    match std::process::Command::new("python3")
        .arg(script())
        .args(args)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "python3 is not installed: the Python verifier's tests need it; install python3 \
             (apt-get install -y python3), as .ci/run does"
        ),
        Err(e) => panic!("running python3: {e}"),
    }
}

/// Asserts exit code 1 and one `FAILED:` line holding `cause`.
fn assert_fails(out: &Output, cause: &str, case: &str) {
    let all = text(out);
    assert_eq!(out.status.code(), Some(1), "{case}: {all}");
    assert!(!all.contains("Traceback"), "{case}: {all}");
    let failed: Vec<&str> = all.lines().filter(|l| l.starts_with("FAILED: ")).collect();
    assert_eq!(failed.len(), 1, "{case}: one FAILED line: {all}");
    assert!(
        failed[0].contains(cause),
        "{case}: expected {cause:?} in {:?}",
        failed[0]
    );
}

fn export(data: &Path, patient: &str) -> (PathBuf, Export) {
    let file = data.join(format!("{patient}.json"));
    let out = careledger(&[
        "export",
        "--data",
        data.to_str().unwrap(),
        "--patient",
        patient,
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let bundle = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    (file, bundle)
}

/// Asserts that the printed history has one line per event naming its position, revision,
/// kind and actor, as the Rust decoder reads the frame.
fn assert_names_every_event(printed: &str, bundle: &Export) {
    for event in &bundle.events {
        let frame = Frame::parse(&event.frame).unwrap();
        let record = decode_record(event.position, frame.format_version, frame.record).unwrap();
        let prefix = format!("#{:<5} rev {:<4} ", event.position, record.revision);
        let line = printed
            .lines()
            .find(|l| l.trim_start().starts_with(&prefix))
            .unwrap_or_else(|| panic!("no line for position {}: {printed}", event.position));
        for part in [
            record.event.kind().to_string(),
            format!("by {} ({}, ", record.actor.name, record.actor.id),
            " recorded 20".to_string(),
        ] {
            assert!(line.contains(&part), "{part:?} in {line:?}");
        }
    }
}

#[test]
fn the_python_selftest_passes_the_blake3_and_rfc_8032_vectors() {
    let out = python(&["selftest"]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    for expected in [
        "ok  BLAKE3, 0 bytes",
        "ok  BLAKE3, 1023 bytes",
        "ok  BLAKE3, 1025 bytes",
        "ok  BLAKE3, 31744 bytes",
        "ok  Ed25519, RFC 8032 test 1",
        "ok  Ed25519, RFC 8032 test 3",
        "selftest passed",
    ] {
        assert!(printed.contains(expected), "{expected:?} in {printed}");
    }
}

/// The demo with a checkpoint signed and a witness's cosignature kept beside it.
struct Demo {
    dir: tempfile::TempDir,
    key: String,
    witness: String,
    file: PathBuf,
    bundle: Export,
}

impl Demo {
    fn new() -> Demo {
        let dir = tempfile::tempdir().unwrap();
        let demo = careledger(&["demo", "--data", dir.path().to_str().unwrap()]);
        assert!(demo.status.success(), "{}", text(&demo));
        sign_checkpoint(dir.path(), Some(ORIGIN));
        let signer =
            NoteSigner::from_seed("witness.example/w1", COSIGNATURE_V1, &[0x22; 32]).unwrap();
        let checkpoint = std::fs::read_to_string(dir.path().join("checkpoint")).unwrap();
        let mut note = SignedNote::parse(&checkpoint).unwrap();
        note.add_signature(signer.cosign(note.text(), 1_772_355_600).unwrap());
        std::fs::write(dir.path().join("cosigned-checkpoint"), note.to_string()).unwrap();
        let (file, bundle) = export(dir.path(), PATIENT);
        Demo {
            key: log_key(dir.path()),
            witness: signer.verifier_key().to_string(),
            dir,
            file,
            bundle,
        }
    }

    /// Writes `value` beside the export and verifies it with the log and witness keys.
    fn verify(&self, name: &str, value: &Value, extra: &[&str]) -> Output {
        let file = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec(value).unwrap()).unwrap();
        let mut args = vec!["export", file.to_str().unwrap(), "--key", &self.key];
        args.extend_from_slice(extra);
        python(&args)
    }

    fn json(&self) -> Value {
        serde_json::to_value(&self.bundle).unwrap()
    }
}

#[test]
fn the_python_verifier_accepts_a_real_export_and_prints_every_event() {
    let demo = Demo::new();
    let out = python(&[
        "export",
        demo.file.to_str().unwrap(),
        "--key",
        &demo.key,
        "--witness",
        &demo.witness,
        "--patient",
        PATIENT,
    ]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.starts_with(&format!(
            "VERIFIED: the history of patient {PATIENT}, {} events",
            demo.bundle.events.len()
        )),
        "{printed}"
    );
    assert!(
        printed.contains("cosigned by  witness.example/w1 at 2026-03-01T09:00:00Z"),
        "{printed}"
    );
    assert!(
        printed.contains("complete     the checkpoint's heads map (3 patients)"),
        "{printed}"
    );
    assert_names_every_event(&printed, &demo.bundle);
}

#[test]
fn the_python_verifier_rejects_every_tampered_bundle() {
    let demo = Demo::new();
    let good = demo.json();
    let n = demo.bundle.events.len();
    let witness = ["--witness", demo.witness.as_str()];
    let out = demo.verify("good", &good, &witness);
    assert!(out.status.success(), "{}", text(&out));

    let mut flipped = demo.bundle.clone();
    let frame = &mut flipped.events[2].frame;
    let at = frame.len() - 5;
    frame[at] ^= 0x01;
    let flipped = serde_json::to_value(&flipped).unwrap();
    assert_fails(
        &demo.verify("flipped", &flipped, &[]),
        "hash mismatch",
        "a flipped byte in a frame",
    );

    let mut removed = good.clone();
    removed["events"].as_array_mut().unwrap().remove(n / 2);
    assert_fails(
        &demo.verify("removed", &removed, &[]),
        "revision out of sequence",
        "an event removed",
    );

    let mut tail = good.clone();
    tail["events"].as_array_mut().unwrap().pop();
    assert_fails(
        &demo.verify("tail", &tail, &[]),
        "incomplete: the export's last event",
        "the tail event removed",
    );

    let other_log = LogKey::from_seed(ORIGIN, &[0x33; 32])
        .unwrap()
        .verifier_key()
        .to_string();
    let args = ["export", demo.file.to_str().unwrap(), "--key", &other_log];
    assert_fails(
        &python(&args),
        "no signature by the log key",
        "a wrong log key",
    );

    let absent = NoteSigner::from_seed("witness.example/w2", COSIGNATURE_V1, &[0x44; 32])
        .unwrap()
        .verifier_key()
        .to_string();
    assert_fails(
        &demo.verify(
            "good",
            &good,
            &["--witness", &demo.witness, "--witness", &absent],
        ),
        "witness witness.example/w2: the checkpoint carries no cosignature",
        "a missing witness cosignature",
    );
    let mut uncosigned = good.clone();
    let checkpoint = std::fs::read_to_string(demo.dir.path().join("checkpoint")).unwrap();
    uncosigned["checkpoint"] = json!(checkpoint);
    assert_fails(
        &demo.verify("uncosigned", &uncosigned, &witness),
        "witness witness.example/w1: the checkpoint carries no cosignature",
        "the cosignature line removed",
    );

    let mut path = demo.bundle.clone();
    path.events[1].inclusion[0].0[0] ^= 0x80;
    let path = serde_json::to_value(&path).unwrap();
    assert_fails(
        &demo.verify("path", &path, &[]),
        "is not in the checkpoint's tree",
        "a changed inclusion path",
    );

    let mut heads = demo.bundle.clone();
    heads.heads.as_mut().unwrap().inclusion[0].0[31] ^= 1;
    let heads = serde_json::to_value(&heads).unwrap();
    assert_fails(
        &demo.verify("heads", &heads, &[]),
        "incomplete",
        "a changed heads proof",
    );

    let mut neighbour = good.clone();
    let side = if neighbour["heads"]["left"].is_null() {
        "right"
    } else {
        "left"
    };
    neighbour["heads"][side] = Value::Null;
    assert_fails(
        &demo.verify("neighbour", &neighbour, &[]),
        "neighbour in the heads tree",
        "a heads neighbour left out",
    );

    let mut swapped = good.clone();
    swapped["events"].as_array_mut().unwrap().swap(2, 3);
    assert_fails(
        &demo.verify("swapped", &swapped, &[]),
        "out of order",
        "two events swapped",
    );

    let mut unknown = good.clone();
    unknown["extra"] = json!(1);
    assert_fails(
        &demo.verify("unknown", &unknown, &[]),
        "malformed export",
        "an unknown field",
    );

    let truncated = demo.dir.path().join("truncated.json");
    let bytes = std::fs::read(&demo.file).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let args = ["export", truncated.to_str().unwrap(), "--key", &demo.key];
    assert_fails(&python(&args), "not valid JSON", "a truncated file");
}

fn text_of(s: &str) -> Text {
    Text::new(s).unwrap()
}

fn element(s: &str) -> ElementId {
    ElementId::parse(s).unwrap()
}

fn atc(s: &str) -> AtcCode {
    AtcCode::parse(s).unwrap()
}

/// One command of every event variant, in variant order, with options set and choices varied.
fn every_variant() -> Vec<Event> {
    let shared = SharedCare {
        arrangement: text_of("CVRM by the GP, heart by cardiology"),
    };
    let ldl = |scaled| Quantity::new(Measure::LdlCholesterol, scaled).unwrap();
    let commands = vec![
        Command::AddCareTeamMember(Member {
            actor: ActorId::parse("card-devries").unwrap(),
            name: text_of("J. de Vries"),
            agb: Some(AgbCode::parse("03123456").unwrap()),
            role: Role::Cardiologist,
            lead: Lead::OrganDisease,
            practitioner: Practitioner::Co,
        }),
        Command::RemoveCareTeamMember(MemberRemoval {
            actor: ActorId::parse("pharm-visser").unwrap(),
        }),
        Command::StartSharedCare(shared.clone()),
        Command::EndSharedCare(shared),
        Command::SetTarget(Target {
            comparator: Comparator::Below,
            value: ldl(18),
            basis: TargetBasis::Individual,
            rationale: text_of("high risk\tafter MI"),
        }),
        Command::WithdrawTarget(TargetWithdrawal {
            measure: Measure::HdlCholesterol,
        }),
        Command::StartMedication(Medication {
            atc: atc("C10AA05"),
            name: text_of("atorvastatin"),
            dose: Dose::parse("40", DoseUnit::Mg).unwrap(),
            frequency: text_of("1x daily"),
            indication: Some(Indication::Words(text_of("secondary prevention"))),
        }),
        Command::ChangeDose(DoseChange {
            atc: atc("C10AA05"),
            dose: Dose::parse("0.5", DoseUnit::Tablet).unwrap(),
            frequency: text_of("1x daily"),
            reason: ChangeReason::Other(text_of("moved abroad")),
        }),
        Command::StopMedication(MedicationStop {
            atc: atc("C10AA05"),
            reason: ChangeReason::PatientPreference,
        }),
        Command::RecordMedicationPreference(MedicationPreference {
            atc: atc("C10AA07"),
            name: text_of("rosuvastatin"),
            preference: text_of("if intolerant"),
        }),
        Command::OrderLab(LabOrder {
            order: element("lab-1"),
            tests: vec![Measure::LdlCholesterol, Measure::Lvef],
            annual_panel: true,
        }),
        Command::ExtendAnnualPanel(PanelExtension {
            tests: vec![Measure::NtProBnp],
        }),
        Command::RecordLabResult(LabResult {
            order: Some(element("lab-1")),
            value: ldl(3),
        }),
        Command::RecordMeasurement(Measurement {
            value: Quantity::new(Measure::SystolicBloodPressure, 138).unwrap(),
            source: MeasurementSource::SelfMeasuredAtHome,
        }),
        Command::SetLifestyleGoal(LifestyleGoal {
            goal: element("walk"),
            description: text_of("walk 30 minutes a day\nevery day"),
        }),
        Command::CloseLifestyleGoal(GoalClosure {
            goal: element("walk"),
            outcome: GoalOutcome::Replaced,
        }),
        Command::AddNote(Note {
            kind: NoteKind::InterimLetter,
            subject: text_of("interim letter"),
            body: text_of("seen in clinic; ü and € are UTF-8"),
        }),
        Command::AcknowledgeNotification(Acknowledgement {
            notification: 300,
            recipient: Line::Second,
        }),
        Command::MarkEnteredInError(Correction { position: 70_000 }),
        Command::HandOverLead(LeadHandover {
            lead: Lead::Cvrm,
            to: ActorId::parse("gp-bakker").unwrap(),
        }),
        Command::RecordIntolerance(Intolerance {
            atc: atc("C09AA02"),
            substance: text_of("enalapril"),
            kind: IntoleranceKind::ContraIndication,
            reaction: text_of("angioedema"),
        }),
        Command::RecordProblem(Problem {
            problem: element("hf"),
            code: ProblemCode::parse(ProblemCodeSystem::Icd10, "I50.9").unwrap(),
            description: text_of("heart failure"),
        }),
        Command::ResolveProblem(ProblemResolution {
            problem: element("hf"),
        }),
        Command::RecordSmokingStatus(SmokingObservation {
            status: SmokingStatus::Current,
        }),
        Command::BreakGlass(careledger_core::event::EmergencyAccess { hours: 4 }),
    ];
    commands.into_iter().map(Command::into_event).collect()
}

/// The key stream's variants: a registration of a key of gp-jansen and its revocation.
fn key_events() -> (Event, Event) {
    let registration = Command::RegisterSigningKey(SigningKey {
        actor: ActorId::parse("gp-jansen").unwrap(),
        key_id: element("his-1"),
        public_key: public_key(&[11; 32]),
        system: text_of("HIS of practice Jansen"),
    });
    let revocation = Command::RevokeSigningKey(SigningKeyRevocation {
        actor: ActorId::parse("gp-jansen").unwrap(),
        key_id: element("his-1"),
    });
    (registration.into_event(), revocation.into_event())
}

fn golden_v1_frames() -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden-v1.json");
    let golden: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    golden["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| hex::decode(v["frame_hex"].as_str().unwrap()).unwrap())
        .collect()
}

/// Writes a ledger of raw frames into `<data>/ledger` the way the store lays them out
/// (`docs/hash-format.md`, "Where the bytes live"): the three format 1 frames of
/// `golden-v1.json` (positions 1 to 3 of the patient), then one format 2 record of every event
/// variant for the patient, with another patient's event between them.
fn write_every_variant_ledger(data: &Path) -> usize {
    let mut frames: Vec<(u64, String, u64, Vec<u8>)> = golden_v1_frames()
        .into_iter()
        .enumerate()
        .map(|(i, frame)| (i as u64 + 1, PATIENT.to_owned(), i as u64 + 1, frame))
        .collect();
    let mut prev = Hash(Frame::parse(&frames.last().unwrap().3).unwrap().hash.0);
    let mut revisions = std::collections::HashMap::from([(PATIENT.to_owned(), 3u64)]);
    let gp = Actor {
        id: ActorId::parse("gp-jansen").unwrap(),
        role: Role::Gp,
        name: text_of("A. Jansen"),
        organisation: Some(AgbCode::parse("01012345").unwrap()),
    };
    let mut events: Vec<(String, Actor, Event)> = every_variant()
        .into_iter()
        .map(|e| (PATIENT.to_owned(), gp.clone(), e))
        .collect();
    let other = Event::SharedCareStarted(SharedCare {
        arrangement: text_of("another patient"),
    });
    events.insert(5, ("999990019".to_owned(), gp.clone(), other));
    // The key stream's two variants, about the patient's actor: the operator registers a key
    // of gp-jansen, who later revokes it.
    let keys = careledger_core::signing_keys::KEY_STREAM.to_owned();
    let (registration, revocation) = key_events();
    events.insert(8, (keys.clone(), operator(), registration));
    events.insert(20, (keys, gp, revocation));
    let variants = events.len() - 1;
    for (patient, actor, event) in events {
        let position = frames.len() as u64 + 1;
        let revision = revisions.entry(patient.clone()).or_insert(0);
        *revision += 1;
        let record = Record {
            patient: PatientId::parse(&patient).unwrap(),
            revision: *revision,
            event_id: Uid([position as u8; 16]),
            recorded_at: Timestamp::from_micros(1_772_355_600_000_000 + position as i64),
            occurred_at: Timestamp::from_micros(-86_400_000_000),
            actor,
            reason: text_of("every variant"),
            correlation_id: Uid([0xc1; 16]),
            causation_id: Some(Uid([0xca; 16])),
            idempotency_key: Some(format!("key-{position}")),
            // No stored signed request to export: the signed export below has one.
            signed_request: None,
            event,
        };
        let bytes = encode_record(&record).unwrap();
        let hash = event_hash(position, RECORD_FORMAT_VERSION, &prev, &bytes);
        let frame = encode_frame(RECORD_FORMAT_VERSION, &prev, &hash, &bytes);
        frames.push((position, patient, *revision, frame));
        prev = hash;
    }
    let db = sled::open(data.join("ledger")).unwrap();
    for (position, patient, revision, frame) in &frames {
        let mut key = vec![b'e'];
        key.extend_from_slice(&position.to_be_bytes());
        db.insert(key, frame.as_slice()).unwrap();
        let mut key = vec![b's', patient.len() as u8];
        key.extend_from_slice(patient.as_bytes());
        key.extend_from_slice(&revision.to_be_bytes());
        db.insert(key, &position.to_be_bytes()).unwrap();
    }
    db.flush().unwrap();
    variants
}

#[test]
fn the_python_verifier_decodes_every_event_variant_of_both_record_formats() {
    let dir = tempfile::tempdir().unwrap();
    let variants = write_every_variant_ledger(dir.path());
    assert_eq!(variants, Event::KINDS.len());
    sign_checkpoint(dir.path(), Some(ORIGIN));
    let (file, bundle) = export(dir.path(), PATIENT);
    assert_eq!(
        bundle.version, 2,
        "the key events make it a version 2 export"
    );
    assert_eq!(bundle.keys.len(), 2);
    assert_eq!(bundle.events.len(), 3 + variants - 2);
    let out = python(&[
        "export",
        file.to_str().unwrap(),
        "--key",
        &log_key(dir.path()),
        "--patient",
        PATIENT,
    ]);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert_names_every_event(&printed, &bundle);
    for kind in Event::KINDS {
        assert!(
            printed.contains(&format!(" {kind} ")),
            "{kind} in {printed}"
        );
    }
    // Payloads as the catalogue reads them, format 1 upcast.
    for expected in [
        r#""reason": {"Other": "moved abroad"}"#,
        r#""indication": {"Words": "secondary prevention"}"#,
        r#""code": {"code": "I50.9", "system": "icd_10"}"#,
        r#""value": {"measure": "ldl", "scaled": 3}"#,
        r#""tests": ["ldl", "lvef"]"#,
        r#""amount_milli": 500, "unit": "tablet""#,
        r#""notification": 300, "recipient": "second""#,
        r#""position": 70000"#,
        "ü and € are UTF-8",
        // The key stream's payloads, and each unsigned event of gp-jansen while the key was in
        // use named as such.
        r#""key_id": "his-1", "public_key": ""#,
        r#""system": "HIS of practice Jansen""#,
        "key events   2 of the careledger:keys stream",
        "by the operator (command line) (careledger:operator, care_group_admin)",
        "unsigned (although gp-jansen had a signing key registered: not from their client system)",
        "signatures   0 of 28 events signed",
        r#""hours": 4"#,
    ] {
        assert!(printed.contains(expected), "{expected:?} in {printed}");
    }
}

async fn wait_for_checkpoint(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    size: u64,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = client
            .get(format!("{base}/checkpoint"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        if response.status().is_success() {
            let note = response.text().await.unwrap();
            let signed: u64 = note.lines().nth(1).unwrap().parse().unwrap();
            if signed >= size {
                return note;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_verifier_checks_a_real_servers_ledger_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (auditor, gp, head) = prepare_demo(data);
    let client = reqwest::Client::new();
    let args = [
        "--origin",
        ORIGIN,
        "--checkpoint-every-events",
        "1",
        "--checkpoint-every-secs",
        "1",
    ];
    let server = ServerProcess::start_with(data, &client, &args).await;
    let key = log_key(data);
    let saved = dir.path().join("saved-checkpoint");
    let first = wait_for_checkpoint(&client, &server.base, &auditor, head).await;
    std::fs::write(&saved, first).unwrap();
    let response = client
        .post(format!("{}/patients/{PATIENT}/events", server.base))
        .bearer_auth(&gp)
        .json(&json!({"commands": [{"type": "add_note", "subject": "after the saved checkpoint"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    wait_for_checkpoint(&client, &server.base, &auditor, head + 1).await;

    // Until GET /events carries each event's stored frame ("frame", base64), the verifier
    // cannot recompute a hash over HTTP, and this test fails saying so.
    let events: Value = client
        .get(format!("{}/events?limit=1", server.base))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        events["events"][0]["frame"].is_string(),
        "GET /events does not yet carry each event's stored frame as \"frame\" (base64): the \
         Python verifier's ledger check needs it: {}",
        events["events"][0]
    );

    let base = server.base.clone();
    let (auditor_token, key_arg) = (auditor.clone(), key.clone());
    let saved_arg = saved.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        python(&[
            "ledger",
            &base,
            "--token",
            &auditor_token,
            "--key",
            &key_arg,
            "--checkpoint",
            &saved_arg,
        ])
    })
    .await
    .unwrap();
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(
        printed.starts_with(&format!("VERIFIED: the ledger at {}", server.base)),
        "{printed}"
    );
    assert!(
        printed.contains("consistent   with the saved checkpoint at size"),
        "{printed}"
    );
    assert!(printed.contains("heads map    3 patients"), "{printed}");

    let wrong = LogKey::from_seed(ORIGIN, &[0x33; 32])
        .unwrap()
        .verifier_key()
        .to_string();
    let base = server.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        python(&["ledger", &base, "--token", &auditor, "--key", &wrong])
    })
    .await
    .unwrap();
    assert_fails(&out, "no signature by the log key", "a wrong log key");
    drop(server);
}

const SECRET: [u8; 32] = [11; 32];
const DATE: &str = "Thu, 03 Dec 2026 09:30:00 GMT";

/// A signed request as the server stores it: signed with `SECRET` as key `his-1` for `POST
/// path` over `body`, read back from its headers as the server reads them.
fn signed_request(path: &str, body: &[u8]) -> SignedRequest {
    let h = sign("POST", path, DATE, body, "his-1", &SECRET, unix_now());
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("date", DATE.parse().unwrap());
    headers.insert("content-digest", h.content_digest.parse().unwrap());
    headers.insert("signature-input", h.signature_input.parse().unwrap());
    headers.insert("signature", h.signature.parse().unwrap());
    let parts = RequestParts {
        method: "POST",
        path,
        authority: None,
        headers: &headers,
        body,
    };
    from_request(&parts).unwrap().unwrap()
}

/// The signed and unsigned line of each event, by position, as either verifier prints them
/// (the Rust CLI under `#<position> revision …`, the Python one under `#<position> rev …`).
fn signature_lines(printed: &str) -> std::collections::BTreeMap<u64, String> {
    let mut lines = std::collections::BTreeMap::new();
    let mut position = None;
    for line in printed.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix('#') {
            position = rest.split_whitespace().next().and_then(|p| p.parse().ok());
        } else if line.starts_with("signed by ") || line.starts_with("unsigned") {
            if let Some(p) = position {
                lines.insert(p, line.to_owned());
            }
        }
    }
    lines
}

/// The one `FAILED:` line of a refusal.
fn failed_line(out: &Output) -> String {
    let all = text(out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let failed: Vec<&str> = all.lines().filter(|l| l.starts_with("FAILED: ")).collect();
    assert_eq!(failed.len(), 1, "one FAILED line: {all}");
    failed[0].to_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The demo after gp-jansen registered key `his-1` and appended one signed note, and the
/// operator, with the server stopped, appended one note in gp-jansen's name unsigned.
async fn signed_demo(data: &Path) {
    let (_auditor, gp, _) = prepare_demo(data);
    let client = reqwest::Client::new();
    let mut server = ServerProcess::start_with(data, &client, &["--origin", ORIGIN]).await;
    let registered = client
        .post(format!("{}/actors/me/keys", server.base))
        .bearer_auth(&gp)
        .json(
            &json!({"key_id": "his-1", "public_key": base64_encode(&public_key(&SECRET)),
            "system": "HIS of practice Jansen"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status().as_u16(), 201);
    let path = format!("/patients/{PATIENT}/events");
    let body = note_body("signed follow-up");
    let h = sign("POST", &path, DATE, &body, "his-1", &SECRET, unix_now());
    let response = client
        .post(format!("{}{path}", server.base))
        .bearer_auth(&gp)
        .header("content-type", "application/json")
        .header("date", DATE)
        .header("content-digest", h.content_digest)
        .header("signature-input", h.signature_input)
        .header("signature", h.signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    server.signal(libc::SIGTERM);
    drop(server);
    let ledger = Ledger::open(&data.join("ledger"), LedgerConfig::default()).unwrap();
    ledger
        .append(gp_note(&ledger, "written by the operator"))
        .unwrap();
}

/// A note of gp-jansen for the patient, as the core appends it.
fn gp_note(ledger: &Ledger, subject: &str) -> AppendRequest {
    let patient = PatientId::parse(PATIENT).unwrap();
    let events = ledger.read_stream(&patient, 1, usize::MAX).unwrap();
    let gp = events
        .iter()
        .rev()
        .find(|e| e.record.actor.id.as_str() == "gp-jansen")
        .unwrap()
        .record
        .actor
        .clone();
    AppendRequest {
        patient,
        expected: ExpectedRevision::Any,
        actor: gp,
        submissions: vec![Submission {
            command: Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: text_of(subject),
                body: text_of("Blood pressure at target."),
            }),
            occurred_at: None,
            reason: text_of("consultation"),
        }],
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    }
}

fn verify_both(file: &Path, key: &str) -> (Output, Output) {
    let file = file.to_str().unwrap();
    (
        careledger(&["verify-export", file, "--key", key]),
        python(&["export", file, "--key", key]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_verifier_checks_a_version_2_export_with_a_signed_and_an_unsigned_event_as_verify_export_does(
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    signed_demo(&data).await;
    // Copies before the checkpoint, for the requests only the HTTP checks refuse (below).
    let other_path = dir.path().join("other-path");
    let other_body = dir.path().join("other-body");
    copy_dir(&data, &other_path);
    copy_dir(&data, &other_body);
    sign_checkpoint(&data, Some(ORIGIN));
    let (file, bundle) = export(&data, PATIENT);
    assert_eq!(bundle.version, 2);
    assert_eq!(bundle.signed_requests.len(), 1);
    assert!(!bundle.keys.is_empty());
    let key = log_key(&data);

    let (rust, py) = verify_both(&file, &key);
    let (rust_printed, py_printed) = (text(&rust), text(&py));
    assert!(rust.status.success(), "{rust_printed}");
    assert!(py.status.success(), "{py_printed}");
    assert_names_every_event(&py_printed, &bundle);
    let (rust_lines, py_lines) = (signature_lines(&rust_printed), signature_lines(&py_printed));
    assert!(!rust_lines.is_empty(), "{rust_printed}");
    for (position, line) in &rust_lines {
        assert_eq!(
            py_lines.get(position),
            Some(line),
            "position {position}: {py_printed}"
        );
    }
    let signed: Vec<_> = (py_lines.values())
        .filter(|l| l.starts_with("signed by his-1 of gp-jansen (registered at position "))
        .collect();
    assert_eq!(signed.len(), 1, "{py_printed}");
    assert!(signed[0].ends_with(" by gp-jansen)"), "{}", signed[0]);
    assert!(
        py_lines.values().any(|l| l
            == "unsigned (although gp-jansen had a signing key registered: not from their client system)"),
        "the operator's note in the GP's name is unsigned: {py_printed}"
    );
    assert_eq!(py_lines.len(), bundle.events.len(), "{py_printed}");
    assert!(
        py_printed.contains(&format!(
            "signatures   1 of {} events signed",
            bundle.events.len()
        )),
        "{py_printed}"
    );

    // Each tampering fails both verifiers with the same line.
    let check = |name: &str, tampered: &Export, cause: &str| {
        let changed = dir.path().join(format!("{name}.json"));
        std::fs::write(&changed, serde_json::to_vec(tampered).unwrap()).unwrap();
        let (rust, py) = verify_both(&changed, &key);
        let (rust_failed, py_failed) = (failed_line(&rust), failed_line(&py));
        assert!(!text(&py).contains("Traceback"), "{name}: {}", text(&py));
        assert!(py_failed.contains(cause), "{name}: {py_failed}");
        assert_eq!(py_failed, rust_failed, "{name}");
    };
    let stored = SignedRequest::decode(&bundle.signed_requests[0].bytes).unwrap();
    let mut changed = stored.clone();
    changed.body = note_body("another subject");
    let mut tampered = bundle.clone();
    tampered.signed_requests[0].bytes = changed.encode().unwrap();
    check("changed-body", &tampered, "which the export does not carry");

    let mut changed = stored.clone();
    changed.signature[10] ^= 1;
    let mut tampered = bundle.clone();
    tampered.signed_requests[0].bytes = changed.encode().unwrap();
    check(
        "changed-signature",
        &tampered,
        "which the export does not carry",
    );

    let mut tampered = bundle.clone();
    tampered.signed_requests.clear();
    check("request-left-out", &tampered, "does not carry");

    let mut tampered = bundle.clone();
    tampered.keys.retain(|k| {
        let frame = Frame::parse(&k.frame).unwrap();
        !String::from_utf8_lossy(frame.record).contains("his-1")
    });
    check(
        "key-left-out",
        &tampered,
        "whose registration the export does not carry",
    );

    let mut tampered = bundle.clone();
    let frame = &mut tampered.keys[0].frame;
    let last = frame.len() - 1;
    frame[last] ^= 1;
    check("changed-key", &tampered, "(the key event was changed)");

    let mut tampered = bundle.clone();
    tampered.version = 1;
    check(
        "version-1-with-signatures",
        &tampered,
        "not a careledger export",
    );

    // Requests the ledger accepts (the key, the signature and the time hold) and only the HTTP
    // checks refuse: signed for another patient's path, or over a body that is not the events.
    let path = format!("/patients/{PATIENT}/events");
    for (data, request, cause) in [
        (
            &other_path,
            signed_request(
                "/patients/999990019/events",
                &note_body("written by the operator"),
            ),
            "not POST /patients/999990007/events",
        ),
        (
            &other_body,
            signed_request(&path, &note_body("what was signed")),
            "its body's 1 commands are not the 1 events that name it",
        ),
    ] {
        let ledger = Ledger::open(&data.join("ledger"), LedgerConfig::default()).unwrap();
        ledger
            .append_signed(gp_note(&ledger, "written by the operator"), &request)
            .unwrap();
        drop(ledger);
        sign_checkpoint(data, Some(ORIGIN));
        let (file, _) = export(data, PATIENT);
        let (rust, py) = verify_both(&file, &key);
        let (rust_failed, py_failed) = (failed_line(&rust), failed_line(&py));
        assert!(py_failed.contains(cause), "{py_failed}");
        assert_eq!(py_failed, rust_failed);
    }
}
