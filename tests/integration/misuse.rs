//! Misuse: every endpoint with no token, a wrong token, another care team's token, and a role
//! that may not do the thing. All refused; none reveals whether the patient exists.


use axum::body::Body;
use axum::http::{Request, StatusCode};
use crate::common::{Fixture, PATIENT};
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
