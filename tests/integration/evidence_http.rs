//! Evidence over HTTP, against a real server on a loopback port: every event of `/events`,
//! `/patients/{id}/events` and the SSE stream carries its stored frame, from which the test
//! computes the hash again by `docs/hash-format.md` alone (plain BLAKE3, none of core's code);
//! the stream sends each signed checkpoint as `event: checkpoint` without disturbing resumption
//! by `Last-Event-ID`; and `GET /patients/{id}/export` gives the bundle `careledger export`
//! writes, to those who may read the patient, once a checkpoint covers the patient's last event.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use careledger_core::checkpoint::{Checkpoint, CheckpointConfig, Checkpointer, LogKey};
use careledger_core::note::VerifierKey;

use crate::common::{Fixture, PATIENT};

/// A second patient, founded by `gp-other`, so that the log interleaves two streams.
const OTHER_PATIENT: &str = "999990019";

/// A patient nobody recorded anything for.
const UNKNOWN_PATIENT: &str = "123456782";

struct Running {
    base: String,
    client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serves the fixture on 127.0.0.1, on a port the system picks.
async fn start(f: &Fixture) -> Running {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(careledger_api::serve(
        listener,
        f.state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    Running {
        base,
        client,
        stop: Some(stop),
        handle,
    }
}

impl Running {
    async fn get(&self, token: Option<&str>, path: &str) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn get_json(&self, token: &str, path: &str) -> Value {
        let response = self.get(Some(token), path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.unwrap()
    }

    async fn note(&self, token: &str, patient: &str, subject: &str) {
        let response = self
            .client
            .post(format!("{}/patients/{patient}/events", self.base))
            .bearer_auth(token)
            .json(&json!({"commands": [{"type": "add_note", "subject": subject}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    }

    /// Opens the event stream, resuming after `last_event_id` when given.
    async fn stream(&self, token: &str, last_event_id: Option<u64>) -> Sse {
        let mut request = self
            .client
            .get(format!("{}/events/stream", self.base))
            .bearer_auth(token)
            // The stream stays open: no overall time limit on it.
            .timeout(Duration::from_secs(3600));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        Sse {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            deadline: tokio::time::Instant::now() + Duration::from_secs(60),
        }
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.handle)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// One Server-Sent Event as it came over the wire.
#[derive(Debug)]
struct SseEvent {
    id: Option<u64>,
    event: String,
    data: Value,
}

type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<axum::body::Bytes>> + Send>>;

/// An open event stream, read block by block (comments such as heartbeats are skipped), for
/// at most a minute: heartbeats alone must not keep a test waiting.
struct Sse {
    stream: ByteStream,
    buffer: String,
    deadline: tokio::time::Instant,
}

impl Sse {
    async fn next(&mut self) -> SseEvent {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.starts_with(':') {
                    continue;
                }
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::to_owned)
                };
                assert_eq!(
                    block.lines().filter(|l| l.starts_with("data: ")).count(),
                    1,
                    "one data line per event: {block}"
                );
                return SseEvent {
                    id: field("id: ").map(|id| id.parse().unwrap()),
                    event: field("event: ").expect("every event names its type"),
                    data: serde_json::from_str(&field("data: ").unwrap()).unwrap(),
                };
            }
            let chunk = tokio::time::timeout_at(self.deadline, self.stream.next())
                .await
                .expect("the stream sends what is awaited within a minute")
                .expect("the stream stays open")
                .unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Reads until `done` holds of what was read.
    async fn until(&mut self, done: impl Fn(&[SseEvent]) -> bool) -> Vec<SseEvent> {
        let mut read = Vec::new();
        while !done(&read) {
            read.push(self.next().await);
        }
        read
    }
}

/// BLAKE3 over the domain tag, the position, the record format version, the previous hash and
/// the record bytes, as `docs/hash-format.md` specifies ("The hash").
fn event_hash(position: u64, format_version: u16, prev: &[u8], record: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"careledger/event/v1\0");
    hasher.update(&position.to_be_bytes());
    hasher.update(&format_version.to_be_bytes());
    hasher.update(prev);
    hasher.update(record);
    *hasher.finalize().as_bytes()
}

/// Checks one recorded event as the API returns it against its `frame`, by the layout of
/// `docs/hash-format.md` ("The frame"): returns its position and hash.
fn check_frame(event: &Value, source: &str) -> (u64, String) {
    let position = event["position"].as_u64().unwrap();
    let what = format!("{source}: the event at position {position}");
    let frame = BASE64
        .decode(
            event["frame"]
                .as_str()
                .unwrap_or_else(|| panic!("{what} has a frame")),
        )
        .unwrap_or_else(|e| panic!("{what}: the frame is not standard base64: {e}"));
    assert!(frame.len() > 67, "{what}: a frame is a header and a record");
    assert_eq!(frame[0], 1, "{what}: frame version 1");
    let format_version = u16::from_be_bytes([frame[1], frame[2]]);
    let (prev, stored, record) = (&frame[3..35], &frame[35..67], &frame[67..]);
    assert_eq!(u64::from(format_version), event["format_version"], "{what}");
    assert_eq!(hex::encode(prev), event["prev_hash"], "{what}: prev hash");
    assert_eq!(hex::encode(stored), event["hash"], "{what}: stored hash");
    let computed = event_hash(position, format_version, prev, record);
    assert_eq!(
        hex::encode(computed),
        event["hash"],
        "{what}: the hash computed from the frame"
    );
    (position, hex::encode(computed))
}

/// Checks every event's frame and that each links to the hash of the position before, as
/// `chain` (position → hash, every position from 1) holds it.
fn check_links(events: &[Value], chain: &BTreeMap<u64, String>, source: &str) {
    for event in events {
        let (position, _) = check_frame(event, source);
        let expected = match position {
            1 => "0".repeat(64),
            p => chain[&(p - 1)].clone(),
        };
        assert_eq!(
            event["prev_hash"], expected,
            "{source}: the event at position {position} links to the one before"
        );
    }
}

/// The fixture's patient and a second one, with a few notes each, interleaved in the log.
async fn two_patients(server: &Running, f: &Fixture) {
    let other = f.token("gp-other");
    let founding = json!({"commands": [{"type": "start_shared_care",
        "arrangement": "CVRM by GP", "reason": "letter"}]});
    let response = server
        .client
        .post(format!("{}/patients/{OTHER_PATIENT}/events", server.base))
        .bearer_auth(&other)
        .json(&founding)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    for i in 0..3 {
        server
            .note(&f.token("gp-1"), PATIENT, &format!("follow-up {i}"))
            .await;
        server
            .note(&other, OTHER_PATIENT, &format!("other {i}"))
            .await;
    }
}

/// Signs a checkpoint of everything so far, then keeps a checkpointer running with `config`,
/// whose checkpoints go to the stream's subscribers.
fn checkpoints(f: &Fixture, config: CheckpointConfig) -> Checkpointer {
    f.data
        .start_checkpoints(None, CheckpointConfig::default())
        .unwrap()
        .finish();
    let running = f.data.start_checkpoints(None, config).unwrap();
    f.state.app.follow_checkpoints(&running);
    running
}

fn log_key(f: &Fixture) -> VerifierKey {
    LogKey::open(&careledger_app::data_dir::log_key_path(&f.data.path))
        .unwrap()
        .verifier_key()
}

/// A checkpoint event's data: its note verifies with the log key, and its size and root are
/// the note's and the ledger's.
fn check_checkpoint(f: &Fixture, data: &Value) -> u64 {
    let (checkpoint, _) = Checkpoint::open(data["note"].as_str().unwrap(), &log_key(f))
        .unwrap_or_else(|e| panic!("the note verifies with the log key: {e}\n{data}"));
    let size = data["tree_size"].as_u64().unwrap();
    assert_eq!(checkpoint.size(), size);
    assert_eq!(data["origin"], checkpoint.origin());
    assert_eq!(data["root"], checkpoint.root().to_hex());
    assert_eq!(data["root_base64"], BASE64.encode(checkpoint.root().0));
    assert_eq!(
        f.data.ledger.tree_head(size).unwrap().root,
        checkpoint.root(),
        "the root is the ledger's at that size"
    );
    size
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_over_http_carries_the_frame_its_hash_is_computed_from() {
    let f = Fixture::with_patient().await;
    let server = start(&f).await;
    two_patients(&server, &f).await;
    let head = f.head();
    let auditor = f.token("auditor-1");

    // The global log, in pages, as an auditor sees it: every position from 1.
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = server
            .get_json(&auditor, &format!("/events?after={after}&limit=4"))
            .await;
        let events = page["events"].as_array().unwrap().clone();
        if events.is_empty() {
            break;
        }
        after = page["next_after"].as_u64().unwrap();
        all.extend(events);
    }
    assert_eq!(all.len() as u64, head);
    let chain: BTreeMap<u64, String> = all.iter().map(|e| check_frame(e, "/events")).collect();
    assert_eq!(
        chain.keys().copied().collect::<Vec<_>>(),
        (1..=head).collect::<Vec<_>>()
    );
    check_links(&all, &chain, "/events");
    assert_eq!(chain[&head], f.data.ledger.head().hash.to_hex());

    // Each patient's stream, as a member of its care team reads it: positions with gaps,
    // each linked to the event before it in the log.
    for (actor, patient) in [("gp-1", PATIENT), ("gp-other", OTHER_PATIENT)] {
        let path = format!("/patients/{patient}/events");
        let events = server.get_json(&f.token(actor), &path).await["events"]
            .as_array()
            .unwrap()
            .clone();
        assert!(events.len() >= 4, "{path}");
        assert!(events.iter().all(|e| e["patient"] == patient));
        check_links(&events, &chain, &path);
        for e in &events {
            let position = e["position"].as_u64().unwrap();
            assert_eq!(e["frame"], all[position as usize - 1]["frame"], "{path}");
        }
    }

    // The stream, from the start: the same frames.
    let mut sse = server.stream(&auditor, None).await;
    let read = sse
        .until(|read| read.iter().filter(|e| e.id.is_some()).count() as u64 == head)
        .await;
    let streamed: Vec<Value> = read
        .iter()
        .filter(|e| e.event != "checkpoint")
        .map(|e| {
            assert_eq!(e.id, e.data["position"].as_u64(), "the id is the position");
            assert_eq!(e.event, e.data["type"], "the event is the kind");
            e.data.clone()
        })
        .collect();
    assert_eq!(streamed.len() as u64, head);
    check_links(&streamed, &chain, "/events/stream");
    // And live: an event written now reaches the subscriber with its frame.
    server.note(&f.token("gp-1"), PATIENT, "live").await;
    let live = sse.until(|read| read.iter().any(|e| e.id.is_some())).await;
    let live = live.iter().find(|e| e.id.is_some()).unwrap();
    assert_eq!(live.id, Some(head + 1));
    check_links(
        std::slice::from_ref(&live.data),
        &chain,
        "/events/stream (live)",
    );
    drop(sse);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_each_signed_checkpoint_without_disturbing_resumption() {
    let f = Fixture::with_patient().await;
    let signed_first = f.head();
    // Signs once the three notes below are durable, and not before.
    let checkpointer = checkpoints(
        &f,
        CheckpointConfig {
            every_events: 3,
            every: Duration::from_secs(3600),
        },
    );
    let server = start(&f).await;
    let feed = f.token("feed-1");

    // On connecting: the latest checkpoint, once, with no id; then the events.
    let mut sse = server.stream(&feed, None).await;
    let first = sse.next().await;
    assert_eq!(first.event, "checkpoint");
    assert_eq!(first.id, None, "a checkpoint has no id");
    assert_eq!(check_checkpoint(&f, &first.data), signed_first);
    let caught_up = sse
        .until(|read| read.iter().filter(|e| e.id.is_some()).count() as u64 == signed_first)
        .await;
    assert!(caught_up.iter().all(|e| e.event != "checkpoint"));

    // Three events: the checkpointer signs, and the subscriber gets that checkpoint.
    for i in 0..3 {
        server
            .note(&f.token("gp-1"), PATIENT, &format!("follow-up {i}"))
            .await;
    }
    let head = f.head();
    assert_eq!(head, signed_first + 3);
    assert!(checkpointer.wait_for(head, Duration::from_secs(20)));
    let read = sse
        .until(|read| {
            read.iter().filter(|e| e.id.is_some()).count() as u64 == head - signed_first
                && read.iter().any(|e| e.event == "checkpoint")
        })
        .await;
    let signed: Vec<u64> = read
        .iter()
        .filter(|e| e.event == "checkpoint")
        .map(|e| {
            assert_eq!(e.id, None, "a checkpoint has no id");
            check_checkpoint(&f, &e.data)
        })
        .collect();
    assert_eq!(signed, vec![head], "the new checkpoint, once");
    let positions: Vec<u64> = read.iter().filter_map(|e| e.id).collect();
    assert_eq!(positions, (signed_first + 1..=head).collect::<Vec<_>>());
    let latest = *signed.last().unwrap();
    drop(sse);

    // Resuming after the last position seen: the latest checkpoint again, then the events after
    // that position only, each once; the checkpoint's lack of id moved nothing.
    let resume_after = head - 2;
    let mut sse = server.stream(&feed, Some(resume_after)).await;
    let again = sse.next().await;
    assert_eq!(again.event, "checkpoint");
    assert_eq!(check_checkpoint(&f, &again.data), latest);
    server
        .note(&f.token("gp-1"), PATIENT, "after resuming")
        .await;
    let read = sse
        .until(|read| read.iter().filter(|e| e.id.is_some()).count() == 3)
        .await;
    let positions: Vec<u64> = read.iter().filter_map(|e| e.id).collect();
    assert_eq!(positions, vec![head - 1, head, head + 1]);
    drop(sse);
    server.shutdown().await;
    tokio::task::block_in_place(|| checkpointer.finish());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_care_team_exports_a_patient_over_http_and_the_bundle_verifies() {
    let f = Fixture::with_patient().await;
    let checkpointer = checkpoints(
        &f,
        CheckpointConfig {
            every_events: 2,
            every: Duration::from_secs(3600),
        },
    );
    let server = start(&f).await;
    let key = log_key(&f);
    for actor in ["gp-1", "card-1", "patient-1", "auditor-1"] {
        let response = server
            .get(
                Some(&f.token(actor)),
                &format!("/patients/{PATIENT}/export"),
            )
            .await;
        assert_eq!(response.status(), 200, "{actor}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(
            response.headers()["content-disposition"],
            format!("attachment; filename=\"careledger-export-{PATIENT}.json\"").as_str()
        );
        let bytes = response.bytes().await.unwrap();
        let bundle: careledger_core::export::Export = serde_json::from_slice(&bytes).unwrap();
        let verified = careledger_core::export::verify(&bundle, &key, &[])
            .unwrap_or_else(|e| panic!("{actor}'s export verifies: {e}"));
        assert_eq!(
            verified.events.len() as u64,
            f.head(),
            "every event of the patient"
        );
        // The file `careledger export` writes from the same checkpoint, byte for byte.
        let cli = careledger_app::export::export_patient(
            &f.data.ledger,
            &f.data.path,
            &careledger_core::ids::PatientId::parse(PATIENT).unwrap(),
        )
        .unwrap();
        assert_eq!(bytes, serde_json::to_vec_pretty(&cli).unwrap());
    }

    // An event the latest checkpoint does not cover yet: 409, saying when the next comes.
    server
        .note(&f.token("gp-1"), PATIENT, "not yet signed")
        .await;
    let response = server
        .get(
            Some(&f.token("gp-1")),
            &format!("/patients/{PATIENT}/export"),
        )
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("the next checkpoint will")
            && detail.contains("after every 2 events or 3600 seconds"),
        "{detail}"
    );
    // The next event makes the checkpointer sign; then the export covers both.
    server.note(&f.token("gp-1"), PATIENT, "signed now").await;
    assert!(checkpointer.wait_for(f.head(), Duration::from_secs(20)));
    let response = server
        .get(
            Some(&f.token("card-1")),
            &format!("/patients/{PATIENT}/export"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let bundle: careledger_core::export::Export = response.json().await.unwrap();
    let verified = careledger_core::export::verify(&bundle, &key, &[]).unwrap();
    assert_eq!(verified.events.last().unwrap().position, f.head());
    server.shutdown().await;
    tokio::task::block_in_place(|| checkpointer.finish());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_refused_to_outsiders_alike_whether_or_not_the_patient_exists() {
    let f = Fixture::with_patient().await;
    checkpoints(&f, CheckpointConfig::default()).finish();
    let server = start(&f).await;
    let problem = |response: reqwest::Response| async move {
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };

    let outsider = f.token("gp-other");
    let known = problem(
        server
            .get(Some(&outsider), &format!("/patients/{PATIENT}/export"))
            .await,
    )
    .await;
    let unknown = problem(
        server
            .get(
                Some(&outsider),
                &format!("/patients/{UNKNOWN_PATIENT}/export"),
            )
            .await,
    )
    .await;
    assert_eq!(known.0, 403, "{}", known.1);
    assert_eq!(
        known, unknown,
        "nothing tells a known patient from an unknown one"
    );

    for (token, status) in [(None, 401), (Some("not-a-token".to_owned()), 401)] {
        let (got, body) = problem(
            server
                .get(token.as_deref(), &format!("/patients/{PATIENT}/export"))
                .await,
        )
        .await;
        assert_eq!(got, status, "{body}");
    }
    // A subscriber reads the stream only.
    let (got, _) = problem(
        server
            .get(
                Some(&f.token("feed-1")),
                &format!("/patients/{PATIENT}/export"),
            )
            .await,
    )
    .await;
    assert_eq!(got, 403);
    // A malformed id is a bad request, an auditor asking for a patient without events 404.
    let (got, _) = problem(
        server
            .get(
                Some(&f.token("auditor-1")),
                "/patients/not%20an%20id/export",
            )
            .await,
    )
    .await;
    assert_eq!(got, 400);
    let (got, body) = problem(
        server
            .get(
                Some(&f.token("auditor-1")),
                &format!("/patients/{UNKNOWN_PATIENT}/export"),
            )
            .await,
    )
    .await;
    assert_eq!(got, 404, "{body}");
    server.shutdown().await;
}
