//! Acute care (seed 002): a GP at an out-of-hours post, in no care team, breaks the glass to
//! read a patient's record and record an acute intervention; both lines are told at once and
//! see who opened the record and why; the auditor lists every use per actor.

use crate::common::{assert_problem, Fixture, PATIENT};
use axum::http::StatusCode;
use serde_json::{json, Value};

fn break_glass(reason: &str) -> Value {
    json!({"commands": [{"type": "break_glass", "hours": 4, "reason": reason}]})
}

#[tokio::test]
async fn an_out_of_hours_gp_breaks_the_glass_reads_acts_and_both_lines_see_it() {
    let f = Fixture::with_patient().await;
    let plan = format!("/patients/{PATIENT}/plan");
    // Before: refused as any outsider, with the same answer as for a patient without a record.
    let (status, before) = f.get("ooh-1", &plan).await;
    assert_problem(status, &before, StatusCode::FORBIDDEN);
    let (_, none) = f.get("ooh-1", "/patients/999990019/plan").await;
    assert_eq!(before, none);

    // No reason, or too long an access: refused, nothing written.
    let head = f.head();
    let (status, body) = f
        .post(
            "ooh-1",
            PATIENT,
            &json!({"commands": [{"type": "break_glass"}]}),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "reason_required", "{body}");
    let (status, body) = f
        .post(
            "ooh-1",
            PATIENT,
            &json!({"commands": [{"type": "break_glass", "hours": 48, "reason": "x"}]}),
            &[],
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert!(
        body["detail"].as_str().unwrap().contains("1 to 24"),
        "{body}"
    );
    assert_eq!(f.head(), head);

    let reason = "chest pain at the out-of-hours post; medication and intolerances needed now";
    let (status, opened) = f.post("ooh-1", PATIENT, &break_glass(reason), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{opened}");
    let opened_at = opened["events"][0]["position"].as_u64().unwrap();

    // Now the record reads: targets, medication, intolerances, and the broken glass itself.
    let (status, read) = f.get("ooh-1", &plan).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read["medications"][0]["atc"], "C10AA05", "{read}");
    let access = &read["emergency_access"][0];
    assert_eq!(access["opened"]["actor"], "ooh-1", "{read}");
    assert_eq!(access["opened"]["role"], "out_of_hours_gp", "{read}");
    assert_eq!(access["opened"]["reason"], reason, "{read}");

    // An acute intervention on the cardiologist's statin: agreement 4 yields.
    let stop = json!({"commands": [{"type": "stop_medication", "atc": "C10AA05",
        "change_reason": "patient_preference", "reason": "suspected rhabdomyolysis, CK pending"}]});
    let (status, stopped) = f.post("ooh-1", PATIENT, &stop, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{stopped}");
    let stopped_at = stopped["events"][0]["position"].as_u64().unwrap();
    // But not the team's governance.
    let target = json!({"commands": [{"type": "set_target", "measure": "ldl", "comparator": "<=",
        "value": "1.8", "unit": "mmol/L", "basis": "esc_guideline", "reason": "x"}]});
    let (status, body) = f.post("ooh-1", PATIENT, &target, &[]).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "emergency_access_limited", "{body}");

    // Both lines are told of the access and of the stop, each in their own list.
    for (actor, line) in [("gp-1", "first"), ("card-1", "second")] {
        let (status, list) = f
            .get(actor, &format!("/patients/{PATIENT}/notifications"))
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let ids: Vec<&str> = list["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|n| n["id"].as_str())
            .collect();
        for position in [opened_at, stopped_at] {
            let id = format!("n-{position}-{line}");
            assert!(ids.contains(&id.as_str()), "{actor} is told {id}: {list}");
        }
    }
    // Both lines see the access in the plan too.
    let (_, gp_plan) = f.get("gp-1", &plan).await;
    assert_eq!(gp_plan["emergency_access"], read["emergency_access"]);

    // The auditor lists every use of the glass by this actor, with its reason.
    let (status, uses) = f.get("auditor-1", "/actors/ooh-1/emergency-access").await;
    assert_eq!(status, StatusCode::OK, "{uses}");
    assert_eq!(uses["uses"].as_array().unwrap().len(), 1, "{uses}");
    assert_eq!(uses["uses"][0]["patient"], PATIENT);
    assert_eq!(uses["uses"][0]["opened"]["reason"], reason);
    let (status, body) = f.get("gp-1", "/actors/ooh-1/emergency-access").await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);

    // The access log (NEN 7513) records the read before the glass as refused, and every access
    // under it with the reason "break_glass" and the justification given.
    let (status, log) = f
        .get(
            "auditor-1",
            &format!("/access-log?patient={PATIENT}&actor=ooh-1&limit=100"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    let entries = log["entries"].as_array().expect("entries");
    let refused = entries
        .iter()
        .find(|e| e["status"] == 403 && e["method"] == "GET")
        .unwrap_or_else(|| panic!("the refused read is recorded: {log}"));
    assert_eq!(refused["reason"], "not_established", "{refused}");
    let under_glass: Vec<&Value> = entries
        .iter()
        .filter(|e| e["reason"] == "break_glass")
        .collect();
    assert!(under_glass.len() >= 3, "the reads and the stop: {log}");
    for entry in under_glass {
        assert_eq!(entry["justification"], reason, "{entry}");
    }
}

#[tokio::test]
async fn a_member_the_patient_and_other_roles_do_not_break_the_glass() {
    let f = Fixture::with_patient().await;
    let head = f.head();
    let (status, body) = f.post("gp-1", PATIENT, &break_glass("x"), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["code"], "already_in_care_team", "{body}");
    let (status, body) = f.post("patient-1", PATIENT, &break_glass("x"), &[]).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN);
    assert_eq!(f.head(), head);
}
