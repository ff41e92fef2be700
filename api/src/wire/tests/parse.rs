//! The new append-body parser against the old one (`dto::append_body`): the bodies the old one
//! accepts (those of the integration tests, the demo's and the history's) read to the same
//! submissions; the bodies it refuses are refused with the same class (400 or 422) and a
//! message that names the path; an unknown field is refused by name.

use proptest::prelude::*;
use serde_json::{json, Value};

use careledger_core::role::Line;
use careledger_core::ExpectedRevision;

use super::history::History;
use super::legacy_dto as dto;
use super::{new_class, old_class, Class};
use crate::wire::{expected_revision, parse_append_body, WireError};

const LINES: [Line; 3] = [Line::First, Line::Second, Line::Patient];

/// Bodies the integration tests post and the old parser accepts (`tests/integration`).
fn accepted_in_the_integration_tests() -> Vec<Value> {
    let commands = |list: Value| json!({ "commands": list });
    vec![
        json!({"commands": [{"type": "stop_medication", "atc": "C10AA05", "change_reason": "side_effects", "reason": "myalgia"}]}),
        json!({"commands": [{"type": "stop_medication", "atc": "C10AA05", "change_reason": "patient_preference", "reason": "myalgia"}]}),
        json!({"commands": [{"type": "set_target", "measure": "ldl", "comparator": "<=", "value": "1.8",
            "unit": "mmol/L", "basis": "esc_guideline", "rationale": "high risk"}]}),
        json!({"commands": [{"type": "record_measurement", "measure": "systolic_bp", "value": "138",
            "unit": "mm[Hg]", "source": "self_measured_at_home", "reason": "morning reading"}]}),
        json!({"commands": [{"type": "add_note", "subject": "first"}]}),
        json!({"commands": [{"type": "add_note", "subject": "discussed statin side effects"}]}),
        json!({"commands": [{"type": "add_care_team_member", "actor": "nobody-9", "name": "Someone",
            "role": "gp", "practitioner": "co"}]}),
        json!({"commands": [{"type": "add_care_team_member", "actor": "patient-2", "name": "Someone",
            "role": "patient", "practitioner": "not_applicable"}]}),
        json!({"commands": [{"type": "add_care_team_member", "actor": "gp-1",
            "name": "Dr. gp-1", "role": "gp", "lead": "cvrm", "practitioner": "main"}]}),
        json!({"commands": [
            {"type": "start_shared_care", "arrangement": "heart failure by cardiology", "reason": "referral"},
            {"type": "add_care_team_member", "actor": "gp-1", "name": "A. Jansen", "role": "gp"}]}),
        json!({"commands": [{"type": "hand_over_lead", "lead": "cvrm", "to": "gp-1", "reason": "my patient"}]}),
        json!({"commands": [{"type": "start_medication", "atc": "C08CA01", "name": "amlodipine",
            "dose": "5", "dose_unit": "mg", "frequency": "1x daily", "reason": "blood pressure"}]}),
        json!({"commands": [{"type": "mark_entered_in_error", "position": 7, "reason": "wrong patient"}]}),
        json!({"commands": [{"type": "record_lab_result", "measure": "ldl", "value": "1.7", "unit": "mmol/L",
            "occurred_at": "2026-03-01T09:00:00Z", "reason": "CVRM lab"}]}),
        commands(json!([{"type": "extend_annual_panel", "tests": ["nt_probnp", "uacr"]}])),
        commands(json!([{"type": "stop_medication", "atc": "C10AA05",
            "change_reason": "side_effects", "reason": "myalgia, CK raised"}])),
        commands(
            json!([{"type": "start_medication", "atc": "C10AA05", "name": "atorvastatin",
            "dose": "20", "dose_unit": "mg", "frequency": "1x daily"}]),
        ),
        commands(json!([
            {"type": "record_problem", "problem": "mi", "code_system": "icpc_1_nl", "code": "K75",
             "description": "myocardial infarction 2024"},
            {"type": "record_problem", "problem": "dm", "code_system": "http://hl7.org/fhir/sid/icpc-1-nl",
             "code": "T90.02", "description": "diabetes mellitus type 2"},
            {"type": "start_medication", "atc": "B01AC06", "name": "acetylsalicylic acid", "dose": "80",
             "dose_unit": "mg", "frequency": "1x daily", "indication_problem": "mi"},
            {"type": "record_intolerance", "atc": "C09AA", "substance": "ACE inhibitors",
             "kind": "intolerance", "reaction": "dry cough"},
            {"type": "record_smoking_status", "status": "former"},
            {"type": "resolve_problem", "problem": "dm"}
        ])),
        commands(
            json!([{"type": "start_medication", "atc": "C09AA02", "name": "enalapril",
            "dose": "10", "dose_unit": "mg", "frequency": "1x daily", "indication_text": "hypertension"}]),
        ),
        commands(json!([{"type": "order_lab", "order": "year-1",
            "tests": ["ldl", "hdl", "triglycerides"], "annual_panel": true}])),
        json!({"commands": [{"type": "remove_care_team_member", "actor": "nurse-1"}]}),
        json!({"commands": [{"type": "set_target", "measure": "ldl", "comparator": "<=",
            "value": "1.8", "unit": "mmol/L", "basis": "individual", "rationale": "x", "reason": "y"}]}),
        json!({"commands": [{"type": "remove_care_team_member", "actor": "nurse-1",
            "reason": "added to the wrong patient's team"}]}),
        json!({"commands": [
            {"type": "start_shared_care", "arrangement": "CVRM by GP, heart by cardiology", "reason": "letter"},
            {"type": "add_care_team_member", "actor": "card-1", "name": "J. de Vries", "role": "cardiologist", "lead": "organ_disease", "practitioner": "co"},
            {"type": "add_care_team_member", "actor": "nurse-1", "name": "M. Bakker", "role": "practice_nurse"},
            {"type": "add_care_team_member", "actor": "patient-1", "name": "P. de Boer", "role": "patient", "practitioner": "not_applicable"}
        ]}),
        json!({"commands": [{"type": "add_care_team_member", "actor": "gp-other", "name": "Other", "role": "gp", "lead": "cvrm", "practitioner": "main"}]}),
        json!({"commands": [{"type": "start_shared_care", "arrangement": "CVRM by the GP, heart failure by cardiology. ".repeat(3)}]}),
        // The acknowledgement the ack route builds, by position and by id.
        json!({"commands": [{"type": "acknowledge_notification", "notification": 12, "reason": "acknowledged"}]}),
        json!({"commands": [{"type": "acknowledge_notification", "notification": 12, "recipient": "second", "reason": "acknowledged"}]}),
        json!({"commands": [{"type": "acknowledge_notification", "notification": "n-12-patient"}]}),
        json!({"commands": [{"type": "acknowledge_notification", "notification": "n-12"}]}),
        json!({"commands": [{"type": "acknowledge_notification", "notification": "n-12-first", "recipient": "first"}]}),
        // Expected revisions and nulls the old parser reads as absent.
        json!({"expected_revision": 0, "commands": [{"type": "add_note", "subject": "x"}]}),
        json!({"expected_revision": "no_stream", "commands": [{"type": "add_note", "subject": "x"}]}),
        json!({"expected_revision": "any", "commands": [{"type": "add_note", "subject": "x"}]}),
        json!({"expected_revision": "*", "commands": [{"type": "add_note", "subject": "x"}]}),
        json!({"expected_revision": "\"7\"", "commands": [{"type": "add_note", "subject": "x"}]}),
        json!({"expected_revision": null, "commands": [{"type": "add_note", "subject": "x", "body": null,
            "kind": null, "reason": null, "occurred_at": null}]}),
        json!({"commands": [{"type": "order_lab", "order": "o", "tests": [], "annual_panel": null}]}),
        json!({"commands": [{"type": "add_note", "subject": "x".repeat(8192)}]}),
    ]
}

/// The new parser reads `body` as the old one does, for an actor of `line`.
fn assert_read_alike(body: &Value, line: Line) {
    let old = dto::append_body(body, line).unwrap_or_else(|e| panic!("{body}: {e}"));
    let (expected, submissions) = parse_append_body(body.to_string().as_bytes(), line)
        .unwrap_or_else(|e| panic!("{body}: {e}"));
    assert_eq!(expected, old.expected, "{body}");
    assert_eq!(submissions, old.submissions, "{body}");
}

#[test]
fn bodies_the_old_parser_accepts_read_to_the_same_submissions() {
    let history = History::build();
    let mut bodies = accepted_in_the_integration_tests();
    bodies.extend(history.bodies.iter().map(|(_, b)| b.clone()));
    assert!(bodies.len() > 60);
    for body in &bodies {
        for line in LINES {
            assert_read_alike(body, line);
        }
    }
}

/// How each parser refuses `raw`; the old one as the handler calls it (JSON first).
fn refusals(raw: &[u8]) -> (Class, Class, WireError) {
    let old = match serde_json::from_slice::<Value>(raw) {
        Err(_) => Class::Malformed,
        Ok(value) => match dto::append_body(&value, Line::First) {
            Err(e) => old_class(&e),
            Ok(_) => panic!("the old parser accepts {}", String::from_utf8_lossy(raw)),
        },
    };
    let new = parse_append_body(raw, Line::First).expect_err(&format!(
        "the new parser accepts {}",
        String::from_utf8_lossy(raw)
    ));
    (old, new_class(&new), new)
}

/// (body, what its problem's message must say, the path it must name). The messages are those
/// the integration tests look for in the problem's detail.
fn refused() -> Vec<(String, &'static str, &'static str)> {
    let one = |command: Value| json!({"commands": [command]}).to_string();
    vec![
        ("{not json".into(), "not valid JSON", ""),
        ("".into(), "not valid JSON", ""),
        ("[]".into(), "must be a JSON object", ""),
        ("null".into(), "must be a JSON object", ""),
        (r#"{"commands": []}"#.into(), "1 to 1000", "commands"),
        (r#"{"commands": "all of them"}"#.into(), "must be an array", "commands"),
        (r#"{"commands": [7]}"#.into(), "must be a JSON object", "commands[0]"),
        (r#"{"expected": 1, "commands": [{"type": "add_note", "subject": "x"}]}"#.into(), "not a known field", "expected"),
        (r#"{"commands": [{"type": "teleport"}]}"#.into(), "not a command type", "commands[0].type"),
        (r#"{"commands": [{"subject": "x"}]}"#.into(), "commands[0].type is required", "commands[0].type"),
        (r#"{"commands": [{"type": 3, "subject": "x"}]}"#.into(), "must be a string", "commands[0].type"),
        (r#"{"commands": [{"type": "withdraw_target", "measure": "ldl", "colour": "red"}]}"#.into(), "commands[0].colour", "commands[0].colour"),
        (r#"{"commands": [{"type": "acknowledge_notification", "notification": "seven"}]}"#.into(), "commands[0].notification", "commands[0].notification"),
        (r#"{"commands": [{"type": "acknowledge_notification", "notification": -1}]}"#.into(), "commands[0].notification", "commands[0].notification"),
        (r#"{"commands": [{"type": "acknowledge_notification", "notification": "n-4-first", "recipient": "second"}]}"#.into(), "give one of them", "commands[0].recipient"),
        (r#"{"commands": [{"type": "acknowledge_notification", "notification": 4, "recipient": "third"}]}"#.into(), "third", "commands[0].recipient"),
        (r#"{"commands": [{"type": "start_medication", "atc": "C10AA05"}]}"#.into(), "commands[0].name is required", "commands[0].name"),
        (r#"{"commands": [{"type": "start_medication"}]}"#.into(), "is required", "commands[0].atc"),
        (r#"{"expected_revision": -3, "commands": [{"type": "withdraw_target", "measure": "ldl"}]}"#.into(), "expected revision", "expected_revision"),
        (r#"{"expected_revision": "soon", "commands": [{"type": "withdraw_target", "measure": "ldl"}]}"#.into(), "expected revision", "expected_revision"),
        (r#"{"expected_revision": true, "commands": [{"type": "withdraw_target", "measure": "ldl"}]}"#.into(), "expected_revision", "expected_revision"),
        (one(json!({"type": "set_target", "measure": "ldl", "comparator": "<=", "value": "1.8", "unit": "mg/dL", "basis": "esc_guideline"})), "mmol/L", "commands[0].unit"),
        (one(json!({"type": "set_target", "measure": "ldl", "comparator": "<=", "value": "1e308", "unit": "mmol/L", "basis": "esc_guideline"})), "plain decimal", "commands[0].value"),
        (one(json!({"type": "set_target", "measure": "ldl", "comparator": "≈", "value": "1.8", "unit": "mmol/L", "basis": "esc_guideline"})), "comparator", "commands[0].comparator"),
        (one(json!({"type": "set_target", "measure": "ldl", "comparator": "<", "value": "1.8", "unit": "mmol/L", "basis": "hunch"})), "nhg_guideline", "commands[0].basis"),
        (one(json!({"type": "record_measurement", "measure": "weight", "value": "-5", "unit": "kg", "source": "practice"})), "plausible range", "commands[0].value"),
        (one(json!({"type": "record_measurement", "measure": "systolic_bp", "value": "400", "unit": "mm[Hg]", "source": "practice"})), "50 to 300", "commands[0].value"),
        (one(json!({"type": "record_measurement", "measure": "systolic_bp", "value": 120, "unit": "mm[Hg]", "source": "practice"})), "must be a string, got a number", "commands[0].value"),
        (one(json!({"type": "record_measurement", "measure": "systolic_bp", "value": "120", "unit": "mm[Hg]", "source": "pharmacy"})), "self_measured_at_home", "commands[0].source"),
        (one(json!({"type": "mark_entered_in_error", "position": "4"})), "non-negative whole number", "commands[0].position"),
        (one(json!({"type": "mark_entered_in_error", "position": 1.5})), "non-negative whole number", "commands[0].position"),
        (one(json!({"type": "add_care_team_member", "actor": "x y", "name": "n", "role": "gp"})), "actor id", "commands[0].actor"),
        (one(json!({"type": "add_care_team_member", "actor": "x", "name": "n", "role": "gp", "agb": "123"})), "AGB", "commands[0].agb"),
        (one(json!({"type": "add_care_team_member", "actor": "x", "name": "n", "role": "surgeon"})), "care_group_admin", "commands[0].role"),
        (one(json!({"type": "add_care_team_member", "actor": "x", "name": "n", "role": "gp", "lead": "everything"})), "organ_disease", "commands[0].lead"),
        (one(json!({"type": "add_care_team_member", "actor": "x", "name": "n", "role": "gp", "practitioner": "chief"})), "not_applicable", "commands[0].practitioner"),
        (one(json!({"type": "add_note", "subject": "x".repeat(9000)})), "at most 8192", "commands[0].subject"),
        (one(json!({"type": "add_note", "subject": "x", "reason": "y".repeat(8193)})), "at most 8192", "commands[0].reason"),
        (one(json!({"type": "add_note", "subject": "bell\u{7}"})), "control characters", "commands[0].subject"),
        (one(json!({"type": "add_note", "subject": "x", "kind": "postcard"})), "return_letter", "commands[0].kind"),
        (one(json!({"type": "add_note", "subject": "x", "occurred_at": "yesterday"})), "RFC 3339", "commands[0].occurred_at"),
        (one(json!({"type": "add_note", "subject": "x", "reason": 5})), "must be a string", "commands[0].reason"),
        (one(json!({"type": "record_problem", "problem": "x", "code_system": "icpc_1_nl", "code": "I21", "description": "MI"})), "K75", "commands[0].code"),
        (one(json!({"type": "record_problem", "problem": "x", "code_system": "snomed", "code": "K75", "description": "MI"})), "icd_10", "commands[0].code_system"),
        (one(json!({"type": "record_smoking_status", "status": "sometimes"})), "never, former or current", "commands[0].status"),
        (one(json!({"type": "start_medication", "atc": "C10AA07", "name": "rosuvastatin", "dose": "10",
            "dose_unit": "mg", "frequency": "1x daily", "indication_problem": "mi", "indication_text": "MI"})), "exclude each other", "commands[0].indication_problem"),
        (one(json!({"type": "start_medication", "atc": "C10AA07", "name": "rosuvastatin", "dose": "10",
            "dose_unit": "mcg", "frequency": "1x daily"})), "tablet", "commands[0].dose_unit"),
        (one(json!({"type": "start_medication", "atc": "C10AA07", "name": "rosuvastatin", "dose": "0",
            "dose_unit": "mg", "frequency": "1x daily"})), "dose", "commands[0].dose"),
        (one(json!({"type": "start_medication", "atc": "statin", "name": "rosuvastatin", "dose": "10",
            "dose_unit": "mg", "frequency": "1x daily"})), "ATC", "commands[0].atc"),
        (one(json!({"type": "stop_medication", "atc": "C10AA07", "change_reason": "bored"})), "target_not_reached", "commands[0].change_reason"),
        (one(json!({"type": "extend_annual_panel", "tests": ["bnp"]})), "nt_probnp", "commands[0].tests[0]"),
        (one(json!({"type": "extend_annual_panel", "tests": ["ldl", 5]})), "must be a string", "commands[0].tests[1]"),
        (one(json!({"type": "extend_annual_panel", "tests": vec!["ldl"; 43]})), "at most 42", "commands[0].tests"),
        (one(json!({"type": "order_lab", "order": "o", "tests": ["ldl"], "annual_panel": "yes"})), "true or false", "commands[0].annual_panel"),
        (one(json!({"type": "close_lifestyle_goal", "goal": "g", "outcome": "forgotten"})), "abandoned", "commands[0].outcome"),
        (one(json!({"type": "record_intolerance", "atc": "C10AA", "substance": "statins", "reaction": "x", "kind": "allergy"})), "contra_indication", "commands[0].kind"),
        (one(json!({"type": "hand_over_lead", "lead": "all", "to": "gp-1"})), "cvrm", "commands[0].lead"),
        (one(json!({"type": "hand_over_lead", "lead": "cvrm", "to": ""})), "actor id", "commands[0].to"),
        (one(json!({"type": "set_lifestyle_goal", "goal": "walk 30", "description": "walk"})), "element id", "commands[0].goal"),
        (one(json!({"type": "record_lab_result", "order": "", "measure": "ldl", "value": "1.8", "unit": "mmol/L"})), "element id", "commands[0].order"),
        (json!({"commands": vec![json!({"type": "add_note", "subject": "x"}); 1001]}).to_string(), "1 to 1000", "commands"),
        (json!({"commands": [{"type": "add_note", "subject": "x"}, {"type": "add_note"}]}).to_string(), "commands[1].subject is required", "commands[1].subject"),
    ]
}

#[test]
fn bodies_the_old_parser_refuses_are_refused_alike_naming_the_path() {
    for (raw, says, path) in refused() {
        let (old, new, error) = refusals(raw.as_bytes());
        let shown = &raw[..raw.len().min(200)];
        assert_eq!(new, old, "{shown}: {error}");
        assert!(
            error.message.contains(says),
            "{shown}: {error:?} should say {says:?}"
        );
        assert_eq!(error.path, path, "{shown}: {error:?}");
        assert!(
            error.message.contains(path),
            "{shown}: the message names the path: {error:?}"
        );
    }
}

#[test]
fn hostile_bodies_are_refused_alike() {
    let nested = format!(
        r#"{{"commands": {}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    for raw in [
        nested.as_bytes(),
        &[0xff, 0xfe, 0x00, 0x80, b'{'],
        b"{}",
        br#"{"commands": {}}"#,
    ] {
        let (old, new, _) = refusals(raw);
        assert_eq!(new, old);
    }
}

#[test]
fn an_unknown_field_is_refused_by_name_with_the_known_ones() {
    let error = parse_append_body(
        br#"{"commands": [{"type": "add_note", "subject": "x", "subjcet": "y"}]}"#,
        Line::First,
    )
    .unwrap_err();
    assert!(error.is_malformed());
    assert_eq!(error.path, "commands[0].subjcet");
    assert!(error.message.contains("subject, body"), "{error}");
    let error = parse_append_body(
        br#"{"commands": [{"type": "add_note", "subject": "x"}], "expected_revison": 3}"#,
        Line::First,
    )
    .unwrap_err();
    assert_eq!(error.path, "expected_revison");
    assert!(
        error.message.contains("expected_revision, commands"),
        "{error}"
    );
}

#[test]
fn the_type_may_come_anywhere_in_a_command() {
    let last = br#"{"commands": [{"subject": "x", "reason": "y", "type": "add_note"}]}"#;
    let first = br#"{"commands": [{"type": "add_note", "subject": "x", "reason": "y"}]}"#;
    assert_eq!(
        parse_append_body(last, Line::First).unwrap(),
        parse_append_body(first, Line::First).unwrap()
    );
    // Read by serde_json directly (as an axum `Json` extractor would), the type need not come
    // first either.
    let body: crate::wire::AppendBody = serde_json::from_slice(last).unwrap();
    assert_eq!(body.commands[0].kind(), "add_note");
    let refused: Result<crate::wire::AppendBody, _> = serde_json::from_slice(
        br#"{"commands": [{"subject": "x", "type": "add_note", "colour": 1}]}"#,
    );
    assert!(refused.unwrap_err().to_string().contains("colour"));
}

#[test]
fn if_match_reads_as_the_old_parser_reads_it() {
    for raw in ["0", "7", "\"7\"", " 12 ", "any", "*", "\"*\"", "no_stream"] {
        let old = dto::expected_revision(raw).unwrap();
        assert_eq!(expected_revision(raw).unwrap(), old, "{raw:?}");
    }
    assert_eq!(expected_revision("any").unwrap(), ExpectedRevision::Any);
    for raw in ["-1", "W/\"abc\"", "99999999999999999999999", "seven"] {
        assert!(dto::expected_revision(raw).is_err());
        let error = expected_revision(raw).unwrap_err();
        assert!(error.is_malformed());
        assert_eq!(error.path, "If-Match");
        assert!(error.message.contains("expected revision"), "{error}");
    }
}

/// One change to a valid body: a field removed, added, retyped or given another value.
#[derive(Clone, Debug)]
enum Mutation {
    Remove(usize),
    Add(String, Value),
    Replace(usize, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let value = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z_0-9.:-]{0,12}".prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::from),
        Just(json!("ldl")),
        Just(json!("1.8")),
        Just(json!("n-3-first")),
        Just(json!(["ldl", "hdl"])),
        Just(json!({})),
        Just(json!("x".repeat(8193))),
    ];
    prop_oneof![
        (0usize..16).prop_map(Mutation::Remove),
        ("[a-z_]{1,12}", value.clone()).prop_map(|(k, v)| Mutation::Add(k, v)),
        (0usize..16, value).prop_map(|(i, v)| Mutation::Replace(i, v)),
    ]
}

fn mutate(body: &Value, index: usize, m: &Mutation) -> Value {
    let mut body = body.clone();
    let commands = body["commands"].as_array_mut().unwrap();
    let n = commands.len();
    let command = commands[index % n].as_object_mut().unwrap();
    let keys: Vec<String> = command.keys().cloned().collect();
    match m {
        Mutation::Remove(i) => {
            command.remove(&keys[i % keys.len()]);
        }
        Mutation::Add(key, value) => {
            command.insert(key.clone(), value.clone());
        }
        Mutation::Replace(i, value) => {
            command.insert(keys[i % keys.len()].clone(), value.clone());
        }
    }
    body
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any one change to a body of the history is accepted by both parsers alike (to the same
    /// submissions) or refused by both with the same class, the new one naming a path in the
    /// changed command.
    #[test]
    fn a_changed_body_is_read_or_refused_alike(
        pick in any::<prop::sample::Index>(),
        command in 0usize..8,
        m in mutation(),
    ) {
        let bodies = accepted_in_the_integration_tests();
        let body = mutate(&bodies[pick.index(bodies.len())], command, &m);
        let old = dto::append_body(&body, Line::Second);
        let new = parse_append_body(body.to_string().as_bytes(), Line::Second);
        match (old, new) {
            (Ok(old), Ok((expected, submissions))) => {
                prop_assert_eq!(expected, old.expected);
                prop_assert_eq!(submissions, old.submissions);
            }
            (Err(old), Err(new)) => {
                prop_assert_eq!(new_class(&new), old_class(&old), "{}: old {}, new {}", body, old, new);
                prop_assert!(new.path.starts_with("commands["), "{:?}", new);
                prop_assert!(new.message.contains(&new.path), "{:?}", new);
            }
            (old, new) => prop_assert!(false, "{}: old {:?}, new {:?}", body, old.map(|_| ()), new),
        }
    }
}
