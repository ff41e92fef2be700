//! A real server process under a write load is killed with SIGKILL at random moments; after each
//! restart every acknowledged write is there, no batch is partial, the chain verifies, and the
//! projections that caught up from their checkpoint equal a rebuild from zero.

use std::collections::HashSet;
use crate::common;

use std::time::Duration;

use crate::common::process::{careledger, ServerProcess};

use serde_json::{json, Value};

const ROUNDS: usize = 12;
const PATIENT: &str = "999990007";

async fn all_events(client: &reqwest::Client, base: &str, token: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = client
            .get(format!("{base}/events?after={after}&limit=1000"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let batch = page["events"].as_array().unwrap().clone();
        if batch.is_empty() {
            return events;
        }
        after = page["next_after"].as_u64().unwrap();
        events.extend(batch);
    }
}

/// Writes batches of three notes until the server stops answering; returns the acknowledged
/// event ids of each request.
async fn write_until_killed(
    client: reqwest::Client,
    base: String,
    token: String,
    writer: usize,
    round: usize,
) -> Vec<Vec<String>> {
    let mut acknowledged = Vec::new();
    for i in 0.. {
        let commands: Vec<Value> = (0..3)
            .map(|k| json!({"type": "add_note", "subject": format!("r{round} w{writer} n{i}.{k}")}))
            .collect();
        let response = client
            .post(format!("{base}/patients/{PATIENT}/events"))
            .bearer_auth(&token)
            .header("idempotency-key", format!("r{round}-w{writer}-{i}"))
            .json(&json!({"commands": commands}))
            .send()
            .await;
        match response {
            Ok(r) if r.status() == 201 => {
                let body: Value = r.json().await.unwrap_or(Value::Null);
                let ids: Vec<String> = body["events"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|e| e["event_id"].as_str().unwrap().to_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                if ids.len() == 3 {
                    acknowledged.push(ids);
                }
            }
            _ => return acknowledged,
        }
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_server_keeps_every_acknowledged_write_and_catches_up_to_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let token = |args: &[&str]| {
        String::from_utf8(careledger(args).stdout)
            .unwrap()
            .trim()
            .to_owned()
    };
    let gp = token(&[
        "actors", "add", "--data", data, "--id", "gp-1", "--name", "Dr. GP", "--role", "gp",
    ]);
    let auditor = token(&[
        "actors",
        "add",
        "--data",
        data,
        "--id",
        "auditor-1",
        "--name",
        "Auditor",
        "--role",
        "auditor",
    ]);
    let client = reqwest::Client::new();
    let mut server = ServerProcess::start(dir.path(), &client).await;
    let founding =
        json!({"commands": [{"type": "start_shared_care", "arrangement": "crash test"}]});
    let r = client
        .post(format!("{}/patients/{PATIENT}/events", server.base))
        .bearer_auth(&gp)
        .json(&founding)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let mut seed = common::seed() | 1;
    let mut acknowledged: Vec<Vec<String>> = Vec::new();
    for round in 0..ROUNDS {
        let writers: Vec<_> = (0..4)
            .map(|w| {
                tokio::spawn(write_until_killed(
                    client.clone(),
                    server.base.clone(),
                    gp.clone(),
                    w,
                    round,
                ))
            })
            .collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        tokio::time::sleep(Duration::from_millis(50 + seed % 250)).await;
        server.signal(libc::SIGKILL);
        for w in writers {
            acknowledged.extend(w.await.unwrap());
        }
        server = ServerProcess::start(dir.path(), &client).await;

        let events = all_events(&client, &server.base, &auditor).await;
        let stored: HashSet<&str> = events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap())
            .collect();
        for ids in &acknowledged {
            for id in ids {
                assert!(
                    stored.contains(id.as_str()),
                    "round {round}: acknowledged event {id} is missing"
                );
            }
        }
        common::assert_no_partial_batch(&events, 3, &format!("round {round}"));
        let verify: Value = client
            .get(format!("{}/verify", server.base))
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(verify["intact"], true, "round {round}: {verify}");
    }
    assert!(
        acknowledged.len() >= ROUNDS,
        "writes were acknowledged in the rounds"
    );

    // The plan the restarted server serves (caught up from its checkpoint) equals a rebuild.
    let served: Value = client
        .get(format!("{}/patients/{PATIENT}/plan", server.base))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    server.signal(libc::SIGTERM);
    assert!(careledger(&["rebuild", "--data", data]).status.success());
    let rebuilt: Value = serde_json::from_slice(
        &careledger(&["plan", "--data", data, "--patient", PATIENT, "--json"]).stdout,
    )
    .unwrap();
    assert_eq!(served, rebuilt);
}
