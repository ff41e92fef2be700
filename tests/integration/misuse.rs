//! Misuse: every endpoint with no token, a wrong token, another care team's token, and a role
//! that may not do the thing. All refused; none reveals whether the patient exists.

use crate::common::{Fixture, PATIENT};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

/// Every patient-scoped endpoint, as (method, path with `{p}` for the patient, body).
fn endpoints() -> Vec<(&'static str, &'static str, Option<serde_json::Value>)> {
    let note = json!({"commands": [{"type": "add_note", "subject": "x"}]});
    vec![
        ("POST", "/patients/{p}/events", Some(note)),
        ("GET", "/patients/{p}/events", None),
        ("GET", "/patients/{p}/plan", None),
        ("GET", "/patients/{p}/audit", None),
        ("GET", "/patients/{p}/signals", None),
        ("GET", "/patients/{p}/notifications", None),
        ("POST", "/patients/{p}/notifications/n-5/ack", None),
    ]
}

fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Option<serde_json::Value>,
) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    r.body(
        body.as_ref()
            .map_or(Body::empty(), |b| Body::from(b.to_string())),
    )
    .unwrap()
}

#[tokio::test]
async fn no_token_and_wrong_token_are_401_everywhere() {
    let f = Fixture::with_patient().await;
    let global = [
        ("GET", "/events"),
        ("GET", "/events/stream"),
        ("GET", "/verify"),
    ];
    let mut all: Vec<(String, String, Option<serde_json::Value>)> = endpoints()
        .into_iter()
        .map(|(m, p, b)| (m.to_owned(), p.replace("{p}", PATIENT), b))
        .collect();
    all.extend(
        global
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string(), None)),
    );
    let head = f.head();
    for (method, path, body) in &all {
        for token in [
            None,
            Some("not-a-token"),
            Some("0000000000000000000000000000000000000000000000000000000000000000"),
        ] {
            let (status, problem, _) = f.send(request(method, path, token, body)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} with {token:?}: {problem}"
            );
        }
    }
    assert_eq!(f.head(), head);
}

#[tokio::test]
async fn another_care_teams_gp_is_refused_and_cannot_tell_whether_the_patient_exists() {
    let f = Fixture::with_patient().await;
    let head = f.head();
    for (method, path, body) in endpoints() {
        let existing = f
            .send(request(
                method,
                &path.replace("{p}", PATIENT),
                Some(&f.token("gp-other")),
                &body,
            ))
            .await;
        let missing = f
            .send(request(
                method,
                &path.replace("{p}", "999990019"),
                Some(&f.token("gp-other")),
                &body,
            ))
            .await;
        assert_eq!(
            existing.0,
            StatusCode::FORBIDDEN,
            "{method} {path}: {}",
            existing.1
        );
        assert_eq!(
            (existing.0, existing.1.clone()),
            (missing.0, missing.1.clone()),
            "{method} {path} leaks existence"
        );
    }
    assert_eq!(f.head(), head, "nothing was written");
}

#[tokio::test]
async fn roles_are_held_to_what_they_may_do() {
    let f = Fixture::with_patient().await;
    let head = f.head();
    let target = json!({"commands": [{"type": "set_target", "measure": "ldl", "comparator": "<=", "value": "1.8", "unit": "mmol/L", "basis": "esc_guideline"}]});
    let cases = [
        (
            "patient-1",
            "POST",
            format!("/patients/{PATIENT}/events"),
            Some(target.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "feed-1",
            "POST",
            format!("/patients/{PATIENT}/events"),
            Some(target.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "auditor-1",
            "POST",
            format!("/patients/{PATIENT}/events"),
            Some(target.clone()),
            StatusCode::FORBIDDEN,
        ),
        (
            "auditor-1",
            "POST",
            format!("/patients/{PATIENT}/notifications/n-5/ack"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "feed-1",
            "GET",
            format!("/patients/{PATIENT}/plan"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "feed-1",
            "GET",
            format!("/patients/{PATIENT}/audit"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "feed-1",
            "GET",
            "/verify".to_owned(),
            None,
            StatusCode::FORBIDDEN,
        ),
    ];
    for (actor, method, path, body, expected) in cases {
        let (status, problem, _) = f
            .send(request(method, &path, Some(&f.token(actor)), &body))
            .await;
        assert_eq!(status, expected, "{actor} {method} {path}: {problem}");
        assert!(problem["detail"].is_string());
    }
    assert_eq!(f.head(), head, "nothing was written");
    // And what they may do still works.
    assert_eq!(
        f.get("auditor-1", &format!("/patients/{PATIENT}/audit"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(f.get("feed-1", "/events").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_practitioner_sees_only_their_patients_in_the_global_log() {
    let f = Fixture::with_patient().await;
    let other = json!({"commands": [{"type": "add_care_team_member", "actor": "gp-other", "name": "Other", "role": "gp", "lead": "cvrm", "practitioner": "main"}]});
    let (status, body) = f.post("gp-other", "999990019", &other, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, page) = f.get("gp-other", "/events?limit=1000").await;
    let patients: Vec<_> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["patient"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !patients.is_empty() && patients.iter().all(|p| p == "999990019"),
        "{patients:?}"
    );
}

/// A second patient with a record, whom `patient-1` (bound to [`PATIENT`]) is not.
const OTHER_PATIENT: &str = "999990020";
/// A patient without a record.
const NO_RECORD: &str = "999990032";

/// Every write an outsider can try, with every header and body field that names a revision or
/// an earlier request: the answer must not depend on whether the patient has a record.
type Write = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    serde_json::Value,
);

fn writes() -> Vec<Write> {
    let note = json!({"commands": [{"type": "add_note", "subject": "x"}]});
    let pinned =
        json!({"expected_revision": 3, "commands": [{"type": "add_note", "subject": "x"}]});
    let founding = json!({"commands": [{"type": "add_care_team_member", "actor": "{actor}",
        "name": "Dr. X", "role": "{role}", "practitioner": "co"}]});
    let ack = serde_json::Value::Null;
    vec![
        ("POST", "/patients/{p}/events", vec![], note.clone()),
        (
            "POST",
            "/patients/{p}/events",
            vec![("if-match", "no_stream")],
            note.clone(),
        ),
        (
            "POST",
            "/patients/{p}/events",
            vec![("if-match", "7")],
            note.clone(),
        ),
        (
            "POST",
            "/patients/{p}/events",
            vec![("if-match", "any")],
            note.clone(),
        ),
        ("POST", "/patients/{p}/events", vec![], pinned),
        (
            "POST",
            "/patients/{p}/events",
            vec![("idempotency-key", "k-1")],
            note,
        ),
        ("POST", "/patients/{p}/events", vec![], founding),
        (
            "POST",
            "/patients/{p}/notifications/n-5/ack",
            vec![],
            ack.clone(),
        ),
        (
            "POST",
            "/patients/{p}/notifications/n-5/ack",
            vec![("if-match", "no_stream")],
            ack.clone(),
        ),
        (
            "POST",
            "/patients/{p}/notifications/n-5-second/ack",
            vec![("if-match", "9")],
            ack,
        ),
    ]
}

async fn try_write(
    f: &Fixture,
    caller: &str,
    role: &str,
    patient: &str,
    write: &Write,
) -> (StatusCode, serde_json::Value) {
    let (method, path, headers, body) = write;
    let body = (!body.is_null()).then(|| {
        serde_json::from_str(
            &body
                .to_string()
                .replace("{actor}", caller)
                .replace("{role}", role),
        )
        .unwrap()
    });
    let mut r = request(
        method,
        &path.replace("{p}", patient),
        Some(&f.token(caller)),
        &body,
    );
    for (name, value) in headers {
        r.headers_mut().insert(*name, value.parse().unwrap());
    }
    let (status, body, _) = f.send(r).await;
    (status, body)
}

#[tokio::test]
async fn no_write_reveals_by_status_or_body_whether_a_patient_has_a_record() {
    let f = Fixture::with_patient().await;
    // A second record, which patient-1 may not touch.
    let founding = json!({"commands": [{"type": "add_care_team_member", "actor": "gp-1",
        "name": "Dr. gp-1", "role": "gp", "lead": "cvrm", "practitioner": "main"}]});
    let (status, body) = f.post("gp-1", OTHER_PATIENT, &founding, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let head = f.head();
    // A GP (who may found a team) and a pharmacist (who may not) outside the team, and a
    // patient actor writing to a record that is not their own.
    let cases = [
        ("gp-other", "gp", PATIENT),
        ("pharm-other", "pharmacist", PATIENT),
        ("patient-1", "patient", OTHER_PATIENT),
    ];
    for (caller, role, existing) in cases {
        for write in writes() {
            let (method, path, headers, body) = &write;
            let on_record = try_write(&f, caller, role, existing, &write).await;
            let founds = body.to_string().contains("add_care_team_member");
            if founds && role == "gp" {
                // A GP founds the team of a patient without a record: that they can is the
                // one thing a founder learns (docs/security.md); on a record it is refused.
                assert_eq!(
                    on_record.0,
                    StatusCode::FORBIDDEN,
                    "{caller} {path}: {}",
                    on_record.1
                );
                continue;
            }
            let on_none = try_write(&f, caller, role, NO_RECORD, &write).await;
            assert_eq!(
                on_record.0,
                StatusCode::FORBIDDEN,
                "{caller} {method} {path} {headers:?}: {}",
                on_record.1
            );
            assert_eq!(
                on_record, on_none,
                "{caller} {method} {path} {headers:?} tells a record from none"
            );
            let text = on_record.1.to_string();
            assert!(
                !text.contains("revision") && !text.contains("already"),
                "{caller} {method} {path} {headers:?}: the refusal names state: {text}"
            );
        }
    }
    assert_eq!(f.head(), head, "nothing was written");
}

#[tokio::test]
async fn idempotency_keys_belong_to_the_actor_and_the_patient() {
    let f = Fixture::with_patient().await;
    let f = &f;
    // Every request here carries the same key.
    let keyed = |actor: &'static str, patient: &'static str, body: &serde_json::Value| {
        let body = body.clone();
        async move {
            f.post(actor, patient, &body, &[("idempotency-key", "k-1")])
                .await
        }
    };
    let note = |subject: &str| json!({"commands": [{"type": "add_note", "subject": subject}]});
    let (status, gp) = keyed("gp-1", PATIENT, &note("from the GP")).await;
    assert_eq!(status, StatusCode::CREATED, "{gp}");
    // Another actor's request under the same key is its own request: written, not a 409 and
    // not the GP's answer.
    let (status, card) = keyed("card-1", PATIENT, &note("from cardiology")).await;
    assert_eq!(status, StatusCode::CREATED, "{card}");
    assert_ne!(card["events"], gp["events"]);
    // An outsider using the GP's key learns nothing of it.
    let (status, outsider) = keyed("gp-other", PATIENT, &note("from the GP")).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{outsider}");
    let (_, plain) = f.post("gp-other", PATIENT, &note("x"), &[]).await;
    assert_eq!(outsider, plain, "the same refusal as without the key");
    // The same key for another patient is another request.
    let founding = json!({"commands": [{"type": "add_care_team_member", "actor": "gp-1",
        "name": "Dr. gp-1", "role": "gp", "lead": "cvrm", "practitioner": "main"}]});
    let (status, other) = keyed("gp-1", OTHER_PATIENT, &founding).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    // A retry by the GP still answers the GP's own request.
    let head = f.head();
    let (status, again) = keyed("gp-1", PATIENT, &note("from the GP")).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["events"], gp["events"]);
    assert_eq!(f.head(), head);
}

#[tokio::test]
async fn a_member_removed_from_the_team_cannot_replay_an_earlier_request() {
    let f = Fixture::with_patient().await;
    let note = json!({"commands": [{"type": "add_note", "subject": "home visit"}]});
    let (status, first) = f
        .post("nurse-1", PATIENT, &note, &[("idempotency-key", "visit-1")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let removal = json!({"commands": [{"type": "remove_care_team_member", "actor": "nurse-1",
        "reason": "moved to another practice"}]});
    let (status, body) = f.post("gp-1", PATIENT, &removal, &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let head = f.head();
    let (status, replay) = f
        .post("nurse-1", PATIENT, &note, &[("idempotency-key", "visit-1")])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{replay}");
    let (_, refused) = f.post("nurse-1", PATIENT, &note, &[]).await;
    assert_eq!(replay, refused, "the same refusal as a new request");
    assert_eq!(f.head(), head);
}

#[tokio::test]
async fn health_tells_anyone_up_or_down_and_only_auditors_the_head() {
    let f = Fixture::with_patient().await;
    let (status, public, _) = f
        .send(Request::get("/health").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(public, json!({"status": "ok"}));
    let (status, care) = f.get("gp-1", "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        care,
        json!({"status": "ok"}),
        "a care role is not told the head"
    );
    let (status, audit) = f.get("auditor-1", "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(audit["head_position"], f.head(), "{audit}");
    assert!(audit["head_hash"].is_string(), "{audit}");
    let (status, body, _) = f
        .send(
            Request::get("/health")
                .header("authorization", "Bearer 00ff")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}
