//! Golden vectors of the stored format: `tests/data/golden-v1.json` (record format 1, written
//! by earlier builds and still read) and `tests/data/golden-v2.json` (record format 2, written
//! by this build).
//!
//! The current format's file was written once (`CARELEDGER_WRITE_GOLDEN=1 cargo test --test
//! golden`) and is committed. A change to the record encoding, the frame or the hash fails these
//! tests: that needs a new record format version, an upcaster and a new vector file, never a
//! regenerated one. Older formats' files are never written again: their frames must keep
//! verifying and decoding into the records they were written from.

use careledger_core::chain::{encode_frame, event_hash, Frame};
use careledger_core::clinical::{
    Indication, Intolerance, IntoleranceKind, SmokingObservation, SmokingStatus,
};
use careledger_core::event::{
    Acknowledgement, Command, Dose, DoseUnit, Event, LeadHandover, Medication, Member, SigningKey,
    Target, TargetBasis,
};
use careledger_core::ids::{ActorId, AgbCode, AtcCode, ElementId, PatientId, Text, Uid};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::{
    decode_record, encode_record, Actor, Hash, Record, Timestamp, RECORD_FORMAT_VERSION,
};
use careledger_core::role::{Lead, Line, Practitioner, Role};
use careledger_core::verify::check_frame;
use serde_json::{json, Value};

const PATH_V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden-v1.json");
const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/golden-v2.json");

fn gp() -> Actor {
    Actor {
        id: ActorId::parse("gp-jansen").unwrap(),
        role: Role::Gp,
        name: Text::new("A. Jansen").unwrap(),
        organisation: None,
    }
}

fn cardiologist() -> Actor {
    Actor {
        id: ActorId::parse("card-devries").unwrap(),
        role: Role::Cardiologist,
        name: Text::new("J. de Vries").unwrap(),
        organisation: None,
    }
}

/// Three fixed records: a GP founds the team, adds the cardiologist, who sets an LDL target.
fn records() -> Vec<Record> {
    let patient = PatientId::parse("999990007").unwrap();
    let at = |s: i64| Timestamp::from_micros(1_772_355_600_000_000 + s * 1_000_000);
    let uid = |n: u8| Uid([n; 16]);
    let member = |a: &Actor, lead, practitioner| {
        Command::AddCareTeamMember(Member {
            actor: a.id.clone(),
            name: a.name.clone(),
            agb: None,
            role: a.role,
            lead,
            practitioner,
        })
        .into_event()
    };
    let target = Command::SetTarget(Target {
        comparator: Comparator::AtMost,
        value: Quantity::new(Measure::LdlCholesterol, 18).unwrap(),
        basis: TargetBasis::EscGuideline,
        rationale: Text::new("high risk after MI").unwrap(),
    })
    .into_event();
    let record = |revision: u64, actor: Actor, event, reason: &str| Record {
        patient: patient.clone(),
        revision,
        event_id: uid(revision as u8),
        recorded_at: at(revision as i64),
        occurred_at: at(0),
        actor,
        reason: Text::new(reason).unwrap(),
        correlation_id: uid(0xc0),
        causation_id: None,
        idempotency_key: Some("letter-2026-03-01".into()),
        signed_request: None,
        event,
    };
    vec![
        record(
            1,
            gp(),
            member(&gp(), Lead::Cvrm, Practitioner::Main),
            "founds the care team",
        ),
        record(
            2,
            gp(),
            member(&cardiologist(), Lead::OrganDisease, Practitioner::Co),
            "shared care",
        ),
        record(3, cardiologist(), target, "return letter"),
    ]
}

/// Records of the kinds and payloads that record format 2 added or changed: a medication with
/// its indication, an acknowledgement naming its recipient, a lead handover, an intolerance and
/// a smoking status, by an actor acting for an organisation. Positions 4 to 8, after `records()`.
fn format_2_records() -> Vec<Record> {
    let patient = PatientId::parse("999990007").unwrap();
    let at = |s: i64| Timestamp::from_micros(1_772_355_600_000_000 + s * 1_000_000);
    let uid = |n: u8| Uid([n; 16]);
    let mut gp_of_practice = gp();
    gp_of_practice.organisation = Some(AgbCode::parse("01012345").unwrap());
    let events = [
        (
            cardiologist(),
            Command::StartMedication(Medication {
                atc: AtcCode::parse("C10AA05").unwrap(),
                name: Text::new("atorvastatin").unwrap(),
                dose: Dose::parse("40", DoseUnit::Mg).unwrap(),
                frequency: Text::new("1x daily").unwrap(),
                indication: Some(Indication::Words(
                    Text::new("secondary prevention after MI").unwrap(),
                )),
            }),
            "return letter",
        ),
        (
            gp_of_practice.clone(),
            Command::AcknowledgeNotification(Acknowledgement {
                notification: 3,
                recipient: Line::First,
            }),
            "read",
        ),
        (
            gp_of_practice.clone(),
            Command::HandOverLead(LeadHandover {
                lead: Lead::Cvrm,
                to: ActorId::parse("gp-bakker").unwrap(),
            }),
            "practice handover",
        ),
        (
            gp_of_practice.clone(),
            Command::RecordIntolerance(Intolerance {
                atc: AtcCode::parse("C10AA05").unwrap(),
                substance: Text::new("atorvastatin").unwrap(),
                kind: IntoleranceKind::Intolerance,
                reaction: Text::new("myalgia, CK raised").unwrap(),
            }),
            "side effects",
        ),
        (
            gp_of_practice,
            Command::RecordSmokingStatus(SmokingObservation {
                status: SmokingStatus::Former,
            }),
            "consultation",
        ),
    ];
    events
        .into_iter()
        .enumerate()
        .map(|(i, (actor, command, reason))| {
            let revision = 4 + i as u64;
            Record {
                patient: patient.clone(),
                revision,
                event_id: uid(revision as u8),
                recorded_at: at(revision as i64),
                occurred_at: at(0),
                actor,
                reason: Text::new(reason).unwrap(),
                correlation_id: uid(0xc1),
                causation_id: Some(uid(0xca)),
                idempotency_key: None,
                signed_request: (revision == 5).then_some(Hash([0x5e; 32])),
                event: command.into_event(),
            }
        })
        .collect()
}

/// A record of the key stream: a signing key registered by its actor, position 9. The stream is
/// the ledger's own (`careledger:keys`), not a patient's; its revisions count from 1.
fn key_stream_records() -> Vec<Record> {
    let at = |s: i64| Timestamp::from_micros(1_772_355_600_000_000 + s * 1_000_000);
    vec![Record {
        patient: PatientId::parse("careledger:keys").unwrap(),
        revision: 1,
        event_id: Uid([9; 16]),
        recorded_at: at(9),
        occurred_at: at(9),
        actor: gp(),
        reason: Text::new("practice HIS signs my appends").unwrap(),
        correlation_id: Uid([0xc2; 16]),
        causation_id: None,
        idempotency_key: None,
        signed_request: None,
        event: Event::SigningKeyRegistered(SigningKey {
            actor: gp().id,
            key_id: ElementId::parse("his-2026").unwrap(),
            public_key: [0x3b; 32],
            system: Text::new("HIS of practice Jansen").unwrap(),
        }),
    }]
}

/// The vectors as this build computes them.
fn compute() -> Value {
    let mut prev = Hash::ZERO;
    let mut vectors = Vec::new();
    let all = records()
        .into_iter()
        .chain(format_2_records())
        .chain(key_stream_records());
    for (i, record) in all.enumerate() {
        let position = i as u64 + 1;
        let bytes = encode_record(&record).unwrap();
        let hash = event_hash(position, RECORD_FORMAT_VERSION, &prev, &bytes);
        let frame = encode_frame(RECORD_FORMAT_VERSION, &prev, &hash, &bytes);
        vectors.push(json!({
            "position": position,
            "record_format": RECORD_FORMAT_VERSION,
            "record_hex": hex(&bytes),
            "prev_hash": prev.to_hex(),
            "hash": hash.to_hex(),
            "frame_hex": hex(&frame),
        }));
        prev = hash;
    }
    json!({
        "format": format!("careledger golden vectors, frame version 1, record format {RECORD_FORMAT_VERSION}"),
        "vectors": vectors
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn committed() -> Value {
    if std::env::var_os("CARELEDGER_WRITE_GOLDEN").is_some() {
        std::fs::write(
            PATH,
            serde_json::to_string_pretty(&compute()).unwrap() + "\n",
        )
        .unwrap();
    }
    read(PATH)
}

fn read(path: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path} is committed: {e}")),
    )
    .unwrap()
}

/// Every committed vector file, old formats first.
fn every_committed() -> Vec<Value> {
    vec![read(PATH_V1), committed()]
}

#[test]
fn encoding_and_hashing_fixed_records_reproduce_the_committed_bytes() {
    let committed = committed();
    let computed = compute();
    for (want, got) in committed["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .zip(computed["vectors"].as_array().unwrap())
    {
        assert_eq!(
            want["record_hex"], got["record_hex"],
            "record bytes changed at position {}",
            want["position"]
        );
        assert_eq!(
            want["hash"], got["hash"],
            "hash changed at position {}",
            want["position"]
        );
        assert_eq!(
            want["frame_hex"], got["frame_hex"],
            "frame changed at position {}",
            want["position"]
        );
    }
    // Eight records of patients, then the key stream's registration at position 9 (added with
    // the key stream; the eight before it are unchanged).
    assert_eq!(committed["vectors"].as_array().unwrap().len(), 9);
}

#[test]
fn committed_frames_verify_from_their_bytes_alone() {
    for committed in every_committed() {
        frames_verify_from_their_bytes_alone(&committed);
    }
}

fn frames_verify_from_their_bytes_alone(committed: &Value) {
    let mut prev = Hash::ZERO;
    for v in committed["vectors"].as_array().unwrap() {
        let position = v["position"].as_u64().unwrap();
        let frame_bytes = unhex(v["frame_hex"].as_str().unwrap());
        // What another language does: split the frame, hash tag || position || format || prev || record.
        let frame = Frame::parse(&frame_bytes).unwrap();
        assert_eq!(frame.prev_hash, prev, "link at {position}");
        assert_eq!(
            frame.computed_hash(position),
            frame.hash,
            "hash at {position}"
        );
        assert_eq!(frame.hash.to_hex(), v["hash"].as_str().unwrap());
        let mut manual = blake3::Hasher::new();
        manual.update(b"careledger/event/v1\0");
        manual.update(&position.to_be_bytes());
        let format = v["record_format"].as_u64().unwrap() as u16;
        manual.update(&format.to_be_bytes());
        manual.update(&frame_bytes[3..35]);
        manual.update(&frame_bytes[67..]);
        assert_eq!(
            manual.finalize().to_hex().as_str(),
            v["hash"].as_str().unwrap(),
            "the documented recipe"
        );
        check_frame(position, &frame_bytes, &prev, true).unwrap();
        prev = frame.hash;
    }
}

#[test]
fn format_1_records_still_decode_into_the_records_they_were_written_from() {
    let committed = read(PATH_V1);
    for (v, written) in committed["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .zip(records())
    {
        let position = v["position"].as_u64().unwrap();
        let bytes = unhex(v["record_hex"].as_str().unwrap());
        let decoded = decode_record(position, 1, &bytes).unwrap();
        assert_eq!(decoded, written, "position {position} upcast from format 1");
    }
}

#[test]
fn flipping_any_byte_of_a_committed_frame_fails_its_check() {
    for committed in every_committed() {
        flipping_any_byte_fails(&committed);
    }
}

fn flipping_any_byte_fails(committed: &Value) {
    let mut prev = Hash::ZERO;
    for v in committed["vectors"].as_array().unwrap() {
        let position = v["position"].as_u64().unwrap();
        let frame_bytes = unhex(v["frame_hex"].as_str().unwrap());
        for i in 0..frame_bytes.len() {
            let mut tampered = frame_bytes.clone();
            tampered[i] ^= 0x01;
            let problem = check_frame(position, &tampered, &prev, true).unwrap_err();
            assert_eq!(problem.position, position, "byte {i}");
        }
        prev = Frame::parse(&frame_bytes).unwrap().hash;
    }
}
