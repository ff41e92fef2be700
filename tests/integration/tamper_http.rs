//! Tampering seen over HTTP: `/verify` names the position of a changed byte, and a server whose
//! head does not verify reports itself unhealthy, says why, and refuses writes.

use crate::common;

use std::path::Path;

use crate::common::process::{prepare_demo, ServerProcess};

use serde_json::{json, Value};

fn flip_byte(data: &Path, position: u64) {
    let db = sled::open(data.join("ledger")).unwrap();
    common::tamper::change(&db, position, |frame| {
        let middle = frame.len() / 2;
        frame[middle] ^= 0x20;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_endpoint_names_the_position_of_a_changed_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (auditor, _, _) = prepare_demo(dir.path());
    flip_byte(dir.path(), 9);
    let client = reqwest::Client::new();
    let server = ServerProcess::start(dir.path(), &client).await;
    let health = client
        .get(format!("{}/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the head still verifies");
    let response = client
        .get(format!("{}/verify", server.base))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409, "200 only for an intact ledger");
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "ledger_not_intact", "{problem}");
    assert_eq!(problem["verified"], 8);
    assert_eq!(problem["position"], 9);
    // Once verification has found the break in the middle, the server no longer reports
    // itself healthy (and refuses writes).
    let health = client
        .get(format!("{}/health", server.base))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["class"], "damaged", "{body}");
    assert!(
        body["reason"].as_str().unwrap().contains("position 9"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_with_a_damaged_head_is_unhealthy_says_why_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (auditor, gp, head) = prepare_demo(dir.path());
    flip_byte(dir.path(), head);
    let client = reqwest::Client::new();
    let server = ServerProcess::start(dir.path(), &client).await;
    let health = client
        .get(format!("{}/health", server.base))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let body: Value = health.json().await.unwrap();
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("position {head}")),
        "{body}"
    );
    let write = client
        .post(format!("{}/patients/pat-0003/events", server.base))
        .bearer_auth(&gp)
        .json(&json!({"commands": [{"type": "add_note", "subject": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 503);
    let problem: Value = write.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("does not verify"),
        "{problem}"
    );
}
