//! End-to-end: a real server on a loopback port, a real SSE subscriber, and a shutdown during a
//! burst of writes.

use crate::common::{Fixture, PATIENT};
use serde_json::{json, Value};

use crate::common::{read_sse_until, serve_in_process, Served};

async fn start(f: &Fixture) -> Served {
    serve_in_process(f.state.clone()).await
}

async fn append_note(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    subject: String,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{base}/patients/{PATIENT}/events"))
        .bearer_auth(token)
        .json(&json!({"commands": [{"type": "add_note", "subject": subject}]}))
        .send()
        .await
}

/// Reads SSE events (id, data) from a response until `count` have arrived.
async fn read_events(response: reqwest::Response, count: usize) -> Vec<(u64, Value)> {
    read_sse_until(response, |seen| seen.len() >= count).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_subscriber_that_reconnects_with_last_event_id_gets_every_event_once_in_order() {
    let f = Fixture::with_patient().await;
    let server = start(&f).await;
    let client = reqwest::Client::new();
    let (gp, feed) = (f.token("gp-1"), f.token("feed-1"));
    for i in 0..10 {
        assert!(
            append_note(&client, &server.base, &gp, format!("before {i}"))
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    // First connection: catch up part of the log, then disconnect mid-stream.
    let response = client
        .get(format!("{}/events/stream", server.base))
        .bearer_auth(&feed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut seen = read_events(response, 7).await;
    let last = seen.last().unwrap().0;
    // Writes continue while the subscriber is away and after it is back.
    let writer = {
        let (client, base, gp) = (client.clone(), server.base.clone(), gp.clone());
        tokio::spawn(async move {
            for i in 0..20 {
                assert!(append_note(&client, &base, &gp, format!("during {i}"))
                    .await
                    .unwrap()
                    .status()
                    .is_success());
            }
        })
    };
    let response = client
        .get(format!("{}/events/stream", server.base))
        .bearer_auth(&feed)
        .header("last-event-id", last.to_string())
        .send()
        .await
        .unwrap();
    writer.await.unwrap();
    let total = f.head() as usize;
    seen.extend(read_events(response, total - seen.len()).await);
    let positions: Vec<u64> = seen.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        positions,
        (1..=total as u64).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let ledger: Vec<_> = f.data.ledger.read_all(0, usize::MAX).unwrap();
    for ((id, data), event) in seen.iter().zip(&ledger) {
        assert_eq!(*id, event.position);
        assert_eq!(data["hash"], event.hash.to_hex());
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_during_a_burst_of_writes_loses_no_acknowledged_event() {
    let f = Fixture::with_patient().await;
    let server = start(&f).await;
    let client = reqwest::Client::new();
    let gp = f.token("gp-1");
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, base, gp) = (client.clone(), server.base.clone(), gp.clone());
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..200 {
                match append_note(&client, &base, &gp, format!("w{w}-{i}")).await {
                    Ok(r) if r.status() == 201 => {
                        let body: Value = r.json().await.unwrap();
                        acknowledged
                            .push(body["events"][0]["event_id"].as_str().unwrap().to_owned());
                    }
                    // Refused or cut off by the shutdown: not acknowledged.
                    _ => break,
                }
            }
            acknowledged
        }));
    }
    // Let the burst get going, then stop the server while writes are in flight.
    while f.head() < 60 {
        tokio::task::yield_now().await;
    }
    server.shutdown().await;
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    assert!(!acknowledged.is_empty());
    let stored: std::collections::HashSet<String> = f
        .data
        .ledger
        .read_all(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| e.record.event_id.to_string())
        .collect();
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged but missing: {lost:?}");
    assert!(f.data.ledger.verify(&mut |_, _| {}).unwrap().is_intact());
}
