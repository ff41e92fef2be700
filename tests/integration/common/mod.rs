//! Shared set-up for the API tests: a data directory with a care team and actors.
#![allow(dead_code)]

pub mod built;
pub mod process;
pub mod tamper;
pub mod tls;

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use careledger_api::{app, AppState};
use careledger_app::actors::{AccessRole, RegisteredActor, SubscriberScope};
use careledger_app::DataDir;
use careledger_core::ids::{ActorId, PatientId, Text};
use serde_json::{json, Value};
use tower::ServiceExt;

/// A data directory with actors and tokens.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub data: DataDir,
    pub state: AppState,
    pub tokens: HashMap<&'static str, String>,
}

pub const ACTORS: [(&str, &str); 9] = [
    ("gp-1", "gp"),
    ("card-1", "cardiologist"),
    ("nurse-1", "practice_nurse"),
    ("patient-1", "patient"),
    ("auditor-1", "auditor"),
    ("feed-1", "subscriber"),
    ("gp-other", "gp"),
    ("pharm-other", "pharmacist"),
    ("ooh-1", "out_of_hours_gp"),
];

pub const PATIENT: &str = "999990007";

impl Fixture {
    /// Actors only; no patient yet.
    pub fn empty() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let mut tokens = HashMap::new();
        for (id, role) in ACTORS {
            let mut actor = RegisteredActor::new(
                ActorId::parse(id).unwrap(),
                Text::new(format!("Dr. {id}")).unwrap(),
                AccessRole::parse(role).unwrap(),
            );
            if role == "patient" {
                actor = actor.bound_to(PatientId::parse(PATIENT).unwrap());
            }
            if role == "subscriber" {
                actor = actor.scoped(SubscriberScope::All);
            }
            tokens.insert(id, data.actors.add(actor).unwrap());
        }
        // Every request through the fixture's router is recorded, as on a real server, and the
        // access log signs its checkpoints with the data directory's log key.
        let key = careledger_core::checkpoint::LogKey::open_or_create(
            &careledger_app::data_dir::log_key_path(dir.path()),
            None,
        )
        .unwrap();
        let key = key
            .for_origin(&careledger_app::access_log::origin_for(key.origin()))
            .unwrap();
        let signing = careledger_core::checkpoint::CheckpointConfig {
            every_events: 8,
            every: std::time::Duration::from_secs(1),
        };
        let access_log = careledger_app::access_log::AccessLog::open(
            dir.path(),
            careledger_app::access_log::AccessLogConfig {
                reserve_bytes: 0,
                signing: Some((key, signing)),
                ..Default::default()
            },
        )
        .unwrap();
        // Tests here send many requests with one token as fast as they go; the rate limit has
        // its own tests against the real server (connections.rs).
        let state = AppState::start(&data)
            .with_access_log(std::sync::Arc::new(access_log))
            .with_limits(careledger_api::Limits {
                rate: None,
                ..careledger_api::Limits::default()
            });
        Fixture {
            dir,
            data,
            state,
            tokens,
        }
    }

    /// A patient in shared care: GP (founder), cardiologist, nurse and the patient in the team;
    /// the cardiologist started atorvastatin.
    pub async fn with_patient() -> Fixture {
        let f = Fixture::empty();
        let founding = json!({"commands": [
            {"type": "start_shared_care", "arrangement": "CVRM by GP, heart by cardiology", "reason": "letter"},
            {"type": "add_care_team_member", "actor": "card-1", "name": "J. de Vries", "role": "cardiologist", "lead": "organ_disease", "practitioner": "co"},
            {"type": "add_care_team_member", "actor": "nurse-1", "name": "M. Bakker", "role": "practice_nurse"},
            {"type": "add_care_team_member", "actor": "patient-1", "name": "P. de Boer", "role": "patient", "practitioner": "not_applicable"}
        ]});
        let (status, body) = f.post("gp-1", PATIENT, &founding, &[]).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let statin = json!({"commands": [{"type": "start_medication", "atc": "C10AA05", "name": "atorvastatin",
            "dose": "40", "dose_unit": "mg", "frequency": "1x daily", "reason": "secondary prevention"}]});
        let (status, body) = f.post("card-1", PATIENT, &statin, &[]).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        f
    }

    pub fn token(&self, actor: &str) -> String {
        self.tokens[actor].clone()
    }

    /// Sends a request through the router.
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Value, axum::http::HeaderMap) {
        let response = app(self.state.clone()).oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, body, headers)
    }

    pub async fn get(&self, actor: &str, uri: &str) -> (StatusCode, Value) {
        let request = Request::get(uri)
            .header("authorization", format!("Bearer {}", self.token(actor)))
            .body(Body::empty())
            .unwrap();
        let (status, body, _) = self.send(request).await;
        (status, body)
    }

    pub async fn post(
        &self,
        actor: &str,
        patient: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = Request::post(format!("/patients/{patient}/events"))
            .header("authorization", format!("Bearer {}", self.token(actor)))
            .header("content-type", "application/json");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let (status, body, _) = self
            .send(request.body(Body::from(body.to_string())).unwrap())
            .await;
        (status, body)
    }

    pub fn head(&self) -> u64 {
        self.data.ledger.head().position
    }
}

/// Asserts an RFC 9457 problem body with the given status.
pub fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["type"].is_string(),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "a problem says what is wrong: {body}"
    );
}

/// Asserts that every request that wrote notes wrote all `size` of them or none: the
/// `note_added` events of `events` (from `GET /events`), counted per correlation id.
pub fn assert_no_partial_batch(events: &[Value], size: usize, when: &str) {
    let mut per_correlation: HashMap<&str, usize> = HashMap::new();
    for e in events.iter().filter(|e| e["type"] == "note_added") {
        *per_correlation
            .entry(e["correlation_id"].as_str().unwrap())
            .or_default() += 1;
    }
    assert!(
        per_correlation.values().all(|n| *n == size),
        "{when}: a batch is partial: {per_correlation:?}"
    );
}

/// The seed of a randomised test: `CARELEDGER_SEED` when set, else taken from the clock; printed
/// either way, so that a failure can be replayed with `CARELEDGER_SEED=<seed>`.
pub fn seed() -> u64 {
    let seed = std::env::var("CARELEDGER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("seed {seed} (replay with CARELEDGER_SEED={seed})");
    seed
}

/// Seconds since the Unix epoch, as a signature's `created`.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An append body of one consultation note with this subject.
pub fn note_body(subject: &str) -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!({"commands": [{"type": "add_note", "kind": "note",
        "subject": subject, "body": "Blood pressure at target.", "reason": "consultation"}]}),
    )
    .unwrap()
}

/// A router state served on 127.0.0.1, on a port the system picks, in this process.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serves `state` until [`Served::shutdown`].
pub async fn serve_in_process(state: AppState) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(careledger_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Served {
        base,
        stop: Some(stop),
        handle,
    }
}

impl Served {
    /// Stops serving and waits for the server to finish, 30 s at the most.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(std::time::Duration::from_secs(30), self.handle)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// Reads Server-Sent Events (id, data as JSON) from `response` until `done` says the events
/// read so far are enough; 20 s at the most between chunks.
pub async fn read_sse_until(
    response: reqwest::Response,
    mut done: impl FnMut(&[(u64, Value)]) -> bool,
) -> Vec<(u64, Value)> {
    use futures::StreamExt;
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut out = Vec::new();
    while !done(&out) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(20), stream.next())
            .await
            .expect("events arrive")
            .expect("stream open")
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let id = block
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .map(|v| v.parse::<u64>().unwrap());
            let data = block.lines().find_map(|l| l.strip_prefix("data: "));
            if let (Some(id), Some(data)) = (id, data) {
                out.push((id, serde_json::from_str(data).unwrap()));
                if done(&out) {
                    return out;
                }
            }
        }
    }
    out
}
