//! The HTTP API through the router: status codes with problem bodies, the care-team and role
//! rules, conflicts and idempotency.

use crate::common::{assert_problem, Fixture, PATIENT};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

fn stop_statin(reason: &str) -> serde_json::Value {
    json!({"commands": [{"type": "stop_medication", "atc": "C10AA05", "change_reason": reason, "reason": "myalgia"}]})
}

#[tokio::test]
async fn missing_or_unknown_token_is_401_with_a_problem_body() {
    let f = Fixture::with_patient().await;
    let request = Request::get(format!("/patients/{PATIENT}/plan"))
        .body(Body::empty())
        .unwrap();
    let (status, body, headers) = f.send(request).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["content-type"], "application/problem+json");
    let request = Request::get(format!("/patients/{PATIENT}/plan"))
        .header("authorization", "Bearer 00ff")
        .body(Body::empty())
        .unwrap();
    let (status, body, _) = f.send(request).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn outsider_gets_the_same_403_for_an_existing_and_a_missing_patient() {
    let f = Fixture::with_patient().await;
    let (status, existing) = f
        .get("gp-other", &format!("/patients/{PATIENT}/plan"))
        .await;
    assert_problem(status, &existing, StatusCode::FORBIDDEN);
    let (status, missing) = f.get("gp-other", "/patients/999990019/plan").await;
    assert_problem(status, &missing, StatusCode::FORBIDDEN);
    assert_eq!(
        existing, missing,
        "a 403 must not reveal whether the patient exists"
    );
    let before = f.head();
    let (status, body) = f
        .post("gp-other", PATIENT, &stop_statin("side_effects"), &[])
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(f.head(), before);
}

#[tokio::test]
async fn roles_that_may_not_write_are_refused_and_nothing_is_written() {
    let f = Fixture::with_patient().await;
    let before = f.head();
    let target = json!({"commands": [{"type": "set_target", "measure": "ldl", "comparator": "<=", "value": "1.8",
        "unit": "mmol/L", "basis": "esc_guideline", "rationale": "high risk"}]});
    for (actor, expected) in [
        ("auditor-1", StatusCode::FORBIDDEN),
        ("feed-1", StatusCode::FORBIDDEN),
        ("patient-1", StatusCode::FORBIDDEN),
        ("nurse-1", StatusCode::FORBIDDEN),
    ] {
        let (status, body) = f.post(actor, PATIENT, &target, &[]).await;
        assert_problem(status, &body, expected);
    }
    assert_eq!(f.head(), before);
    let (status, body) = f.get("feed-1", &format!("/patients/{PATIENT}/plan")).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn patient_reads_own_plan_and_adds_a_home_measurement() {
    let f = Fixture::with_patient().await;
    let reading = json!({"commands": [{"type": "record_measurement", "measure": "systolic_bp", "value": "138",
        "unit": "mm[Hg]", "source": "self_measured_at_home", "reason": "morning reading"}]});
    let (status, body) = f.post("patient-1", PATIENT, &reading, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, plan) = f
        .get("patient-1", &format!("/patients/{PATIENT}/plan"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let bp = plan["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["measure"] == "systolic_bp")
        .unwrap();
    assert_eq!(bp["value"]["value"], "138");
    assert_eq!(bp["source"], "self_measured_at_home");
}

#[tokio::test]
async fn gp_cannot_stop_cardiologists_statin_for_patient_preference_422_cites_agreement_4() {
    let f = Fixture::with_patient().await;
    let before = f.head();
    let (status, body) = f
        .post("gp-1", PATIENT, &stop_statin("patient_preference"), &[])
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "agreement_4");
    assert!(
        body["detail"].as_str().unwrap().contains("agreement 4"),
        "{body}"
    );
    assert_eq!(f.head(), before);
    let (status, body) = f
        .post("gp-1", PATIENT, &stop_statin("side_effects"), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn malformed_requests_are_400_naming_the_field() {
    let f = Fixture::with_patient().await;
    let before = f.head();
    let cases = [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (r#"{"commands": []}"#, "1 to 1000"),
        (
            r#"{"commands": [{"type": "teleport"}]}"#,
            "not a command type",
        ),
        (
            r#"{"commands": [{"type": "withdraw_target", "measure": "ldl", "colour": "red"}]}"#,
            "commands[0].colour",
        ),
        (
            r#"{"commands": [{"type": "acknowledge_notification", "notification": "seven"}]}"#,
            "commands[0].notification",
        ),
        (
            r#"{"commands": [{"type": "start_medication", "atc": "C10AA05"}]}"#,
            "commands[0].name is required",
        ),
        (
            r#"{"expected_revision": -3, "commands": [{"type": "withdraw_target", "measure": "ldl"}]}"#,
            "expected revision",
        ),
    ];
    for (raw, mentions) in cases {
        let request = Request::post(format!("/patients/{PATIENT}/events"))
            .header("authorization", format!("Bearer {}", f.token("gp-1")))
            .header("content-type", "application/json")
            .body(Body::from(raw))
            .unwrap();
        let (status, body, _) = f.send(request).await;
        assert_problem(status, &body, StatusCode::BAD_REQUEST);
        assert!(
            body["detail"].as_str().unwrap().contains(mentions),
            "{raw}: {body}"
        );
    }
    assert_eq!(f.head(), before);
}

#[tokio::test]
async fn invalid_values_are_422_naming_measure_value_and_range() {
    let f = Fixture::with_patient().await;
    let body = json!({"commands": [{"type": "record_measurement", "measure": "systolic_bp", "value": "400",
        "unit": "mm[Hg]", "source": "practice"}]});
    let (status, problem) = f.post("nurse-1", PATIENT, &body, &[]).await;
    assert_problem(status, &problem, StatusCode::UNPROCESSABLE_ENTITY);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("systolic blood pressure")
            && detail.contains("400")
            && detail.contains("50 to 300"),
        "{detail}"
    );
}

#[tokio::test]
async fn wrong_media_type_is_415_and_huge_body_is_413() {
    let f = Fixture::with_patient().await;
    let request = Request::post(format!("/patients/{PATIENT}/events"))
        .header("authorization", format!("Bearer {}", f.token("gp-1")))
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    let (status, body, _) = f.send(request).await;
    assert_problem(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = format!(
        r#"{{"commands": [{{"type": "add_note", "subject": "{}"}}]}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let request = Request::post(format!("/patients/{PATIENT}/events"))
        .header("authorization", format!("Bearer {}", f.token("gp-1")))
        .header("content-type", "application/json")
        .body(Body::from(huge))
        .unwrap();
    let (status, body, _) = f.send(request).await;
    assert_problem(status, &body, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn if_match_that_lost_the_race_gets_409_and_writes_nothing() {
    let f = Fixture::with_patient().await;
    let (_, plan) = f.get("gp-1", &format!("/patients/{PATIENT}/plan")).await;
    let revision = plan["revision"].as_u64().unwrap().to_string();
    let note = |subject: &str| json!({"commands": [{"type": "add_note", "subject": subject}]});
    let (status, body) = f
        .post("gp-1", PATIENT, &note("first"), &[("if-match", &revision)])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = f.head();
    let (status, body) = f
        .post(
            "card-1",
            PATIENT,
            &note("second"),
            &[("if-match", &revision)],
        )
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    assert_eq!(f.head(), before, "a lost race writes nothing");
}

#[tokio::test]
async fn retried_request_with_the_same_idempotency_key_writes_once() {
    let f = Fixture::with_patient().await;
    let note = json!({"commands": [{"type": "add_note", "subject": "letter received"}]});
    let (first_status, first) = f
        .post("gp-1", PATIENT, &note, &[("idempotency-key", "req-42")])
        .await;
    assert_eq!(first_status, StatusCode::CREATED, "{first}");
    let head = f.head();
    let (again_status, again) = f
        .post("gp-1", PATIENT, &note, &[("idempotency-key", "req-42")])
        .await;
    assert_eq!(again_status, StatusCode::OK);
    assert_eq!(again["replayed"], true);
    assert_eq!(again["events"], first["events"]);
    assert_eq!(f.head(), head, "the retry wrote nothing");
    let other = json!({"commands": [{"type": "add_note", "subject": "something else"}]});
    let (status, body) = f
        .post("gp-1", PATIENT, &other, &[("idempotency-key", "req-42")])
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT);
    assert_eq!(f.head(), head);
}

#[tokio::test]
async fn statin_story_notifies_the_cardiologist_who_acknowledges_and_the_auditor_sees_it() {
    let f = Fixture::with_patient().await;
    let (status, stopped) = f
        .post("gp-1", PATIENT, &stop_statin("side_effects"), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let position = stopped["events"][0]["position"].as_u64().unwrap();
    let (_, open) = f
        .get("card-1", &format!("/patients/{PATIENT}/notifications"))
        .await;
    let n = open["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["position"] == position)
        .unwrap()
        .clone();
    assert_eq!(n["recipient"], "second");
    assert!(
        n["summary"]
            .as_str()
            .unwrap()
            .contains("stopped atorvastatin"),
        "{n}"
    );
    let request = Request::post(format!(
        "/patients/{PATIENT}/notifications/{}/ack",
        n["id"].as_str().unwrap()
    ))
    .header("authorization", format!("Bearer {}", f.token("card-1")))
    .body(Body::empty())
    .unwrap();
    let (status, body, _) = f.send(request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, audit) = f
        .get(
            "auditor-1",
            &format!("/patients/{PATIENT}/audit?element=medication:C10AA05"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let stop = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "medication_stopped")
        .unwrap();
    assert_eq!(stop["actor"]["id"], "gp-1");
    assert_eq!(stop["actor"]["line"], "first");
    assert_eq!(stop["notified"][0]["recipient"], "second");
    assert_eq!(stop["notified"][0]["status"]["state"], "acknowledged");
    assert_eq!(stop["notified"][0]["status"]["by"], "card-1");
}

#[tokio::test]
async fn openapi_document_covers_every_route() {
    let f = Fixture::empty();
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let (status, doc, _) = f.send(request).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    // The document is derived from the router: every operation it lists is served (none falls
    // through to the router's "no such route"), with the bearer scheme where a token is needed.
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            if path == "/events/stream" {
                // A stream does not end; the conformance test checks that it is served.
                continue;
            }
            let uri = path
                .replace("{patient}", PATIENT)
                .replace("{measure}", "ldl")
                .replace("{notification}", "n-1-second")
                .replace("{resource_type}", "Patient")
                .replace("{id}", "0123456789abcdef");
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .header("authorization", format!("Bearer {}", f.token("auditor-1")))
                .body(Body::empty())
                .unwrap();
            let (status, body, _) = f.send(request).await;
            assert!(
                !(status == StatusCode::NOT_FOUND
                    && body["detail"]
                        .as_str()
                        .unwrap_or("")
                        .contains("no such route")),
                "{method} {path} is documented but not served"
            );
            let public = ["/health", "/openapi.json", "/fhir/metadata"].contains(&path.as_str());
            assert_eq!(
                operation["security"].is_array(),
                !public,
                "{method} {path}: a token is asked for exactly where one is needed"
            );
        }
    }
    assert!(operations >= 16, "{operations} operations");
    for path in [
        "/checkpoint",
        "/proof/inclusion",
        "/proof/consistency",
        "/events/stream",
    ] {
        assert!(
            doc["paths"][path]["get"].is_object(),
            "{path} is documented"
        );
    }
}

#[tokio::test]
async fn health_and_verify_report_an_intact_ledger() {
    let f = Fixture::with_patient().await;
    let (status, health, _) = f
        .send(Request::get("/health").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "ok");
    let (status, report) = f.get("auditor-1", "/verify").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["intact"], true);
    assert_eq!(report["verified"], f.head());
}

#[tokio::test]
async fn bad_paging_and_last_event_id_are_400() {
    let f = Fixture::with_patient().await;
    let (status, body) = f.get("feed-1", "/events?after=minus-one").await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    let request = Request::get("/events/stream")
        .header("authorization", format!("Bearer {}", f.token("feed-1")))
        .header("last-event-id", "abc")
        .body(Body::empty())
        .unwrap();
    let (status, body, _) = f.send(request).await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST);
    let (status, page) = f.get("feed-1", "/events?after=0&limit=3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["events"].as_array().unwrap().len(), 3);
    assert_eq!(page["next_after"], 3);
}

#[tokio::test]
async fn a_plan_read_after_a_change_shows_the_change() {
    let f = Fixture::with_patient().await;
    let plan_uri = format!("/patients/{PATIENT}/plan");
    let (status, before) = f.get("gp-1", &plan_uri).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    // Read twice: the second answer is the rendered plan kept for this revision.
    let (_, again) = f.get("nurse-1", &plan_uri).await;
    assert_eq!(before, again);
    let notes = |plan: &serde_json::Value| plan["notes"].as_array().unwrap().len();
    let note =
        json!({"commands": [{"type": "add_note", "subject": "discussed statin side effects"}]});
    let (status, body) = f.post("gp-1", PATIENT, &note, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, after) = f.get("card-1", &plan_uri).await;
    assert_eq!(notes(&after), notes(&before) + 1, "{after}");
    assert_eq!(
        after["revision"].as_u64().unwrap(),
        before["revision"].as_u64().unwrap() + 1
    );
}

// Care-team governance through the API (agreement 1): the actor registry's part.

fn add_member(actor: &str, role: &str) -> serde_json::Value {
    json!({"commands": [{"type": "add_care_team_member", "actor": actor, "name": "Someone",
        "role": role, "practitioner": if role == "patient" { "not_applicable" } else { "co" }}]})
}

#[tokio::test]
async fn agreement_1_members_are_registered_actors_added_in_the_role_they_hold() {
    let f = Fixture::with_patient().await;
    let head = f.head();
    let (status, body) = f
        .post("gp-1", PATIENT, &add_member("nobody-9", "gp"), &[])
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "unknown_actor", "{body}");
    let (status, body) = f
        .post(
            "gp-1",
            PATIENT,
            &add_member("gp-other", "cardiologist"),
            &[],
        )
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "role_not_held", "{body}");
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("registered as gp"));
    assert_eq!(f.head(), head, "nothing was written");
    let (status, body) = f
        .post("gp-1", PATIENT, &add_member("gp-other", "gp"), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn agreement_1_a_patient_actor_joins_and_reads_only_their_own_record() {
    use careledger_app::actors::{AccessRole, RegisteredActor};
    use careledger_core::ids::{ActorId, PatientId, Text};
    use careledger_core::role::Role;
    let f = Fixture::with_patient().await;
    let other = "999990019";
    f.data
        .actors
        .add(
            RegisteredActor::new(
                ActorId::parse("patient-2").unwrap(),
                Text::new("Q. Jansen").unwrap(),
                AccessRole::Care(Role::Patient),
            )
            .bound_to(PatientId::parse(other).unwrap()),
        )
        .unwrap();
    let (status, body) = f
        .post("gp-1", PATIENT, &add_member("patient-2", "patient"), &[])
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "patient_of_another_record", "{body}");
    // patient-1 is bound to PATIENT: added to another patient's team, it is refused too.
    let founding = json!({"commands": [{"type": "add_care_team_member", "actor": "gp-1",
        "name": "Dr. gp-1", "role": "gp", "lead": "cvrm", "practitioner": "main"}]});
    let (status, body) = f.post("gp-1", other, &founding, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = f
        .post("gp-1", other, &add_member("patient-1", "patient"), &[])
        .await;
    assert_eq!(body["code"], "patient_of_another_record", "{status} {body}");
    let (status, _) = f
        .get("patient-1", &format!("/patients/{PATIENT}/plan"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = f.get("patient-1", &format!("/patients/{other}/plan")).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn role_refusals_are_403_with_a_code_naming_the_rule_and_content_rules_stay_422() {
    let f = Fixture::with_patient().await;
    let target = json!({"commands": [{"type": "set_target", "measure": "ldl", "comparator": "<=",
        "value": "1.8", "unit": "mmol/L", "basis": "individual", "rationale": "x"}]});
    let (status, body) = f.post("patient-1", PATIENT, &target, &[]).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "role_not_permitted", "{body}");
    let (status, body) = f
        .post("gp-1", PATIENT, &stop_statin("patient_preference"), &[])
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "agreement_4", "{body}");
}

#[tokio::test]
async fn agreement_1_a_plan_founded_by_the_cardiologist_shows_both_lines_the_cvrm_lead_unassigned()
{
    let f = Fixture::empty();
    let founding = json!({"commands": [
        {"type": "start_shared_care", "arrangement": "heart failure by cardiology", "reason": "referral"},
        {"type": "add_care_team_member", "actor": "gp-1", "name": "A. Jansen", "role": "gp"}]});
    let (status, body) = f.post("card-1", PATIENT, &founding, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for reader in ["card-1", "gp-1"] {
        let (status, plan) = f.get(reader, &format!("/patients/{PATIENT}/plan")).await;
        assert_eq!(status, StatusCode::OK, "{plan}");
        assert_eq!(plan["leads"][0]["lead"], "cvrm");
        assert_eq!(plan["leads"][0]["status"], "unassigned", "{plan}");
        assert_eq!(plan["leads"][1]["main_practitioner"]["actor"], "card-1");
        let (_, signals) = f.get(reader, &format!("/patients/{PATIENT}/signals")).await;
        assert!(
            signals["signals"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["code"] == "cvrm_lead_unassigned"),
            "{signals}"
        );
    }
    let take = json!({"commands": [{"type": "hand_over_lead", "lead": "cvrm", "to": "gp-1", "reason": "my patient"}]});
    let (status, body) = f.post("gp-1", PATIENT, &take, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, plan) = f.get("card-1", &format!("/patients/{PATIENT}/plan")).await;
    assert_eq!(
        plan["leads"][0]["main_practitioner"]["actor"], "gp-1",
        "{plan}"
    );
    let (_, notes) = f
        .get("card-1", &format!("/patients/{PATIENT}/notifications"))
        .await;
    assert!(
        notes["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "lead_handed_over"),
        "the second line is told: {notes}"
    );
}

// Corrections through the API (agreements 4 and 6) and the series of a measure.

fn amlodipine() -> serde_json::Value {
    json!({"commands": [{"type": "start_medication", "atc": "C08CA01", "name": "amlodipine",
        "dose": "5", "dose_unit": "mg", "frequency": "1x daily", "reason": "blood pressure"}]})
}

fn correct(position: u64, why: &str) -> serde_json::Value {
    json!({"commands": [{"type": "mark_entered_in_error", "position": position, "reason": why}]})
}

fn first_position(body: &serde_json::Value) -> u64 {
    body["events"][0]["position"].as_u64().unwrap()
}

#[tokio::test]
async fn agreement_4_cardiologist_cannot_mark_the_gps_amlodipine_entered_in_error_and_is_pointed_to_the_medication_commands(
) {
    let f = Fixture::with_patient().await;
    let (status, body) = f.post("gp-1", PATIENT, &amlodipine(), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let start = first_position(&body);
    let before = f.head();
    let (status, body) = f
        .post("card-1", PATIENT, &correct(start, "not needed"), &[])
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "correction_by_other_line");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("stop_medication") && detail.contains("agreement 4"),
        "{detail}"
    );
    assert_eq!(f.head(), before);
    let (_, plan) = f.get("gp-1", &format!("/patients/{PATIENT}/plan")).await;
    assert!(plan["medications"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["atc"] == "C08CA01"));
}

#[tokio::test]
async fn agreement_6_only_the_author_corrects_an_acknowledgement() {
    let f = Fixture::with_patient().await;
    let (_, body) = f.post("gp-1", PATIENT, &amlodipine(), &[]).await;
    let start = first_position(&body);
    let ack = Request::post(format!("/patients/{PATIENT}/notifications/n-{start}/ack"))
        .header("authorization", format!("Bearer {}", f.token("card-1")))
        .body(Body::empty())
        .unwrap();
    let (status, body, _) = f.send(ack).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let acknowledgement = first_position(&body);
    let (status, body) = f
        .post("gp-1", PATIENT, &correct(acknowledgement, "not read"), &[])
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "acknowledgement_by_its_author");
    let (status, body) = f
        .post(
            "card-1",
            PATIENT,
            &correct(acknowledgement, "wrong notification"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, open) = f
        .get("card-1", &format!("/patients/{PATIENT}/notifications"))
        .await;
    assert!(open["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["position"] == start));
}

#[tokio::test]
async fn agreement_6_a_correction_tells_the_line_told_of_the_entry_and_the_plan_keeps_it_marked() {
    let f = Fixture::with_patient().await;
    let (_, body) = f.post("gp-1", PATIENT, &amlodipine(), &[]).await;
    let start = first_position(&body);
    let (status, body) = f
        .post("gp-1", PATIENT, &correct(start, "wrong patient"), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let correction = first_position(&body);
    let (_, open) = f
        .get("card-1", &format!("/patients/{PATIENT}/notifications"))
        .await;
    let positions: Vec<u64> = open["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["position"].as_u64().unwrap())
        .collect();
    assert!(
        positions.contains(&correction) && !positions.contains(&start),
        "{open}"
    );
    let (_, plan) = f.get("gp-1", &format!("/patients/{PATIENT}/plan")).await;
    assert!(!plan["medications"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["atc"] == "C08CA01"));
    let episode = plan["medication_history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["atc"] == "C08CA01")
        .unwrap();
    assert_eq!(episode["status"], "entered_in_error");
    let mark = &episode["started"]["entered_in_error"];
    assert_eq!(mark["position"], correction);
    assert_eq!(mark["actor"], "gp-1");
    assert_eq!(mark["reason"], "wrong patient");
}

#[tokio::test]
async fn series_of_a_measure_is_read_like_the_plan_in_clinical_order_and_names_the_known_measures()
{
    let f = Fixture::with_patient().await;
    let ldl = |value: &str, occurred_at: &str| {
        json!({"commands": [{"type": "record_lab_result", "measure": "ldl", "value": value, "unit": "mmol/L",
            "occurred_at": occurred_at, "reason": "CVRM lab"}]})
    };
    let (status, body) = f
        .post("gp-1", PATIENT, &ldl("1.7", "2026-03-01T09:00:00Z"), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let today = first_position(&body);
    let (status, body) = f
        .post("card-1", PATIENT, &ldl("3.1", "2025-08-13T09:00:00Z"), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let old = first_position(&body);
    let uri = format!("/patients/{PATIENT}/measures/ldl");
    let (status, series) = f.get("patient-1", &uri).await;
    assert_eq!(status, StatusCode::OK, "{series}");
    let order: Vec<u64> = series["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["provenance"]["position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        order,
        vec![old, today],
        "clinical time, not recording order"
    );
    assert_eq!(series["latest"]["provenance"]["position"], today);
    assert_eq!(series["values"][0]["kind"], "lab_result");
    assert_eq!(series["values"][0]["provenance"]["line"], "second");
    let (_, plan) = f.get("gp-1", &format!("/patients/{PATIENT}/plan")).await;
    let target = plan["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["measure"] == "ldl")
        .unwrap();
    assert_eq!(target["latest"]["position"], today);
    assert_eq!(target["status"], "met");
    assert!(plan["series"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["measure"] == "ldl" && s["last"].as_array().unwrap().len() == 2));
    let (status, body) = f.get("gp-other", &uri).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = f
        .get("gp-1", &format!("/patients/{PATIENT}/measures/cholesterol"))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND);
    assert!(body["detail"].as_str().unwrap().contains("ldl"), "{body}");
}

// ---- The clinical catalogue through JSON ----

fn commands(list: serde_json::Value) -> serde_json::Value {
    json!({ "commands": list })
}

#[tokio::test]
async fn agreement_2_the_specialist_adds_nt_probnp_to_the_annual_panel_and_an_unknown_test_names_the_known_ones(
) {
    let f = Fixture::with_patient().await;
    let extend = commands(json!([{"type": "extend_annual_panel", "tests": ["nt_probnp", "uacr"]}]));
    let (status, body) = f.post("card-1", PATIENT, &extend, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, plan) = f.get("gp-1", &format!("/patients/{PATIENT}/plan")).await;
    let panel: Vec<&str> = plan["annual_panel"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["test"].as_str().unwrap())
        .collect();
    assert!(panel.contains(&"nt_probnp"), "{panel:?}");
    let unknown = commands(json!([{"type": "extend_annual_panel", "tests": ["bnp"]}]));
    let (status, body) = f.post("card-1", PATIENT, &unknown, &[]).await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"].as_str().unwrap().contains("nt_probnp"),
        "{body}"
    );
}

#[tokio::test]
async fn a_statin_stopped_for_side_effects_shows_as_an_intolerance_and_restarting_it_warns() {
    let f = Fixture::with_patient().await;
    let stop = commands(json!([{"type": "stop_medication", "atc": "C10AA05",
        "change_reason": "side_effects", "reason": "myalgia, CK raised"}]));
    let (status, body) = f.post("gp-1", PATIENT, &stop, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, plan) = f.get("card-1", &format!("/patients/{PATIENT}/plan")).await;
    let intolerance = &plan["intolerances"][0];
    assert_eq!(intolerance["atc"], "C10AA05");
    assert_eq!(intolerance["substance"], "atorvastatin");
    assert_eq!(intolerance["reaction"], "myalgia, CK raised");
    assert_eq!(intolerance["from_stop"], true);
    assert_eq!(intolerance["provenance"]["actor"], "gp-1");
    let restart = commands(
        json!([{"type": "start_medication", "atc": "C10AA05", "name": "atorvastatin",
        "dose": "20", "dose_unit": "mg", "frequency": "1x daily"}]),
    );
    let (status, body) = f.post("card-1", PATIENT, &restart, &[]).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a warning, not a refusal: {body}"
    );
    assert_eq!(body["warnings"][0]["code"], "known_intolerance");
    let message = body["warnings"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("myalgia, CK raised") && message.contains("gp-1"),
        "{message}"
    );
}

#[tokio::test]
async fn problems_indications_intolerances_and_smoking_status_read_back_as_written() {
    let f = Fixture::with_patient().await;
    let written = json!([
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
    ]);
    let (status, body) = f
        .post("gp-1", PATIENT, &commands(written.clone()), &[])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let first = body["events"][0]["position"].as_u64().unwrap();
    let (_, page) = f
        .get("feed-1", &format!("/events?after={}&limit=6", first - 1))
        .await;
    for (event, command) in page["events"]
        .as_array()
        .unwrap()
        .iter()
        .zip(written.as_array().unwrap())
    {
        for (key, value) in command.as_object().unwrap() {
            if key == "type" || key == "code_system" {
                continue;
            }
            assert_eq!(&event["data"][key], value, "{key} of {}", event["type"]);
        }
    }
    assert_eq!(page["events"][1]["data"]["code_system"], "icpc_1_nl");
    let (_, plan) = f.get("card-1", &format!("/patients/{PATIENT}/plan")).await;
    let aspirin = plan["medications"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["atc"] == "B01AC06")
        .unwrap();
    assert_eq!(aspirin["indication"]["problem"], "mi");
    assert_eq!(aspirin["indication"]["code"], "ICPC K75");
    let problems = plan["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 2);
    let dm = problems.iter().find(|p| p["problem"] == "dm").unwrap();
    assert_eq!(dm["active"], false);
    assert_eq!(dm["code_system"], "http://hl7.org/fhir/sid/icpc-1-nl");
    assert_eq!(plan["smoking_status"]["status"], "former");
    assert_eq!(plan["smoking_status"]["snomed"], "8517006");
    assert_eq!(plan["smoking_status"]["loinc"], "72166-2");
    assert_eq!(plan["intolerances"][0]["atc"], "C09AA");
    let enalapril = commands(
        json!([{"type": "start_medication", "atc": "C09AA02", "name": "enalapril",
        "dose": "10", "dose_unit": "mg", "frequency": "1x daily", "indication_text": "hypertension"}]),
    );
    let (status, body) = f.post("gp-1", PATIENT, &enalapril, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["warnings"][0]["code"], "known_intolerance",
        "group code C09AA covers C09AA02"
    );
}

#[tokio::test]
async fn bad_catalogue_input_says_what_is_wrong() {
    let f = Fixture::with_patient().await;
    let before = f.head();
    let cases = [
        (
            json!({"type": "record_problem", "problem": "x", "code_system": "icpc_1_nl", "code": "I21",
            "description": "MI"}),
            "K75",
        ),
        (
            json!({"type": "record_problem", "problem": "x", "code_system": "snomed", "code": "K75",
            "description": "MI"}),
            "icd_10",
        ),
        (
            json!({"type": "record_smoking_status", "status": "sometimes"}),
            "never, former or current",
        ),
        (
            json!({"type": "start_medication", "atc": "C10AA07", "name": "rosuvastatin", "dose": "10",
            "dose_unit": "mg", "frequency": "1x daily", "indication_problem": "mi", "indication_text": "MI"}),
            "exclude each other",
        ),
    ];
    for (command, hint) in cases {
        let (status, body) = f
            .post("gp-1", PATIENT, &commands(json!([command])), &[])
            .await;
        assert!(status.is_client_error(), "{status} {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(hint),
            "{hint}: {body}"
        );
    }
    assert_eq!(f.head(), before);
}

#[tokio::test]
async fn agreement_7_an_annual_order_without_the_specialists_additions_warns_and_signals() {
    let f = Fixture::with_patient().await;
    let extend = commands(json!([{"type": "extend_annual_panel", "tests": ["nt_probnp"]}]));
    let (status, body) = f.post("card-1", PATIENT, &extend, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let annual = commands(json!([{"type": "order_lab", "order": "year-1",
        "tests": ["ldl", "hdl", "triglycerides"], "annual_panel": true}]));
    let (status, body) = f.post("gp-1", PATIENT, &annual, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["warnings"][0]["code"], "annual_panel_incomplete",
        "{body}"
    );
    let (_, signals) = f
        .get("card-1", &format!("/patients/{PATIENT}/signals"))
        .await;
    let codes: Vec<&str> = signals
        .as_array()
        .or_else(|| signals["signals"].as_array())
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"annual_panel_incomplete"), "{codes:?}");
    assert!(
        codes.contains(&"lab_order_open"),
        "the cardiologist sees the GP's order: {codes:?}"
    );
    let (_, plan) = f.get("card-1", &format!("/patients/{PATIENT}/plan")).await;
    assert!(
        plan["open_lab_orders"][0]["pending_since"].is_string(),
        "{plan}"
    );
}

#[tokio::test]
async fn openapi_lists_every_measure_with_its_loinc_code_and_the_catalogue_commands() {
    let f = Fixture::empty();
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let (_, doc, _) = f.send(request).await;
    let resolve = |v: &serde_json::Value| -> serde_json::Value {
        match v["$ref"].as_str() {
            Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap().clone(),
            None => v.clone(),
        }
    };
    // Every command of the catalogue is documented, refusing unknown fields.
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for kind in careledger_api::wire::COMMAND_TYPES {
        let variant = schemas
            .values()
            .find(|v| v["properties"]["type"]["enum"][0] == *kind)
            .unwrap_or_else(|| panic!("{kind} is documented"));
        assert_eq!(variant["additionalProperties"], false, "{kind}");
    }
    let measure = resolve(&serde_json::json!({"$ref": "#/components/schemas/MeasureCode"}));
    let codes: Vec<&str> = measure["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for m in careledger_core::quantity::Measure::ALL {
        assert!(codes.contains(&m.code()), "{} is documented", m.code());
        assert!(
            measure["description"].as_str().unwrap().contains(m.loinc()),
            "{} names its LOINC code",
            m.code()
        );
    }
}

#[tokio::test]
async fn the_organisation_an_actor_acts_for_is_recorded_with_every_event_they_write() {
    use careledger_app::actors::{AccessRole, RegisteredActor};
    use careledger_core::ids::{ActorId, AgbCode, Text};
    use careledger_core::role::Role;
    let f = Fixture::empty();
    let token = f
        .data
        .actors
        .add(
            RegisteredActor::new(
                ActorId::parse("gp-practice").unwrap(),
                Text::new("B. Smit").unwrap(),
                AccessRole::Care(Role::Gp),
            )
            .acting_for(AgbCode::parse("01012345").unwrap()),
        )
        .unwrap();
    let founding = json!({"commands": [{"type": "add_care_team_member", "actor": "gp-practice",
        "name": "B. Smit", "role": "gp", "lead": "cvrm", "practitioner": "main"}]});
    let request = Request::post(format!("/patients/{PATIENT}/events"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(founding.to_string()))
        .unwrap();
    let (status, body, _) = f.send(request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, events) = f.get("auditor-1", "/events").await;
    assert_eq!(status, StatusCode::OK);
    let actor = &events["events"][0]["actor"];
    assert_eq!(actor["id"], "gp-practice");
    assert_eq!(actor["organisation"], "01012345", "{events}");
}

#[tokio::test]
async fn agreement_1_a_care_group_admin_corrects_a_team_over_http_with_a_reason_and_both_lines_are_told(
) {
    use careledger_app::actors::{AccessRole, RegisteredActor};
    use careledger_core::ids::{ActorId, Text};
    use careledger_core::role::Role;
    let f = Fixture::with_patient().await;
    let token = f
        .data
        .actors
        .add(RegisteredActor::new(
            ActorId::parse("admin-1").unwrap(),
            Text::new("Zorggroep").unwrap(),
            AccessRole::Care(Role::CareGroupAdmin),
        ))
        .unwrap();
    let post = |body: serde_json::Value| {
        Request::post(format!("/patients/{PATIENT}/events"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    // The administrator sees the team it is to correct.
    let request = Request::get(format!("/patients/{PATIENT}/plan"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, _) = f.send(request).await;
    assert_eq!(status, StatusCode::OK);
    let head = f.head();
    let (status, body, _) = f
        .send(post(
            json!({"commands": [{"type": "remove_care_team_member", "actor": "nurse-1"}]}),
        ))
        .await;
    assert_problem(status, &body, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "reason_required", "{body}");
    let target = json!({"commands": [{"type": "set_target", "measure": "ldl", "comparator": "<=",
        "value": "1.8", "unit": "mmol/L", "basis": "individual", "rationale": "x", "reason": "y"}]});
    let (status, body, _) = f.send(post(target)).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "care_group_admin_corrects_the_team", "{body}");
    assert_eq!(f.head(), head, "nothing was written");
    let (status, body, _) = f
        .send(post(
            json!({"commands": [{"type": "remove_care_team_member", "actor": "nurse-1",
            "reason": "added to the wrong patient's team"}]}),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let removal = body["events"][0]["position"].as_u64().unwrap();
    for (reader, line) in [("gp-1", "first"), ("card-1", "second")] {
        let (_, listed) = f
            .get(reader, &format!("/patients/{PATIENT}/notifications"))
            .await;
        let id = format!("n-{removal}-{line}");
        assert!(
            listed["notifications"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["id"] == id.as_str()),
            "{reader} is told: {listed}"
        );
    }
}
