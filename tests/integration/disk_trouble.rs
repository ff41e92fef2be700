//! Disk trouble: a full disk or a read-only file system makes appends fail with a clear error,
//! damages nothing already stored, and writing resumes once the cause is removed.
//!
//! The ledger lives on a small tmpfs mounted for the test (the test machines run as root).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use careledger_core::event::{Command, SharedCare};
use careledger_core::ids::{ActorId, PatientId, Text, Uid};
use careledger_core::role::Role;
use careledger_core::{
    Actor, AppendRequest, Error, ExpectedRevision, Ledger, LedgerConfig, Submission,
};

/// A tmpfs of a given size, unmounted on drop.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let status = Process::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("running mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CAP_SYS_ADMIN)"
        );
        Tmpfs { _dir: dir, path }
    }

    /// Remounts with `options`. sled lets go of its files a moment after the ledger is
    /// dropped, and a file system with a file open for writing cannot turn read-only: retried
    /// for up to 5 s.
    fn remount(&self, options: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let output = Process::new("mount")
                .args(["-o", &format!("remount,{options}")])
                .arg(&self.path)
                .output()
                .unwrap();
            if output.status.success() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "remount {options}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Reopening after a failure is tried on every append, so the test needs no waiting.
fn config() -> LedgerConfig {
    LedgerConfig {
        reopen_interval: std::time::Duration::ZERO,
        ..LedgerConfig::default()
    }
}

fn gp() -> Actor {
    Actor {
        id: ActorId::parse("gp-1").unwrap(),
        role: Role::Gp,
        name: Text::new("Dr. A. Jansen").unwrap(),
        organisation: None,
    }
}

/// Founds a new patient's care team: two events of about 300 bytes.
fn found(n: u64) -> AppendRequest {
    AppendRequest {
        patient: PatientId::parse(&format!("patient-{n}")).unwrap(),
        expected: ExpectedRevision::NoStream,
        actor: gp(),
        submissions: vec![Submission {
            command: Command::StartSharedCare(SharedCare {
                arrangement: Text::new("CVRM by the GP, heart failure by cardiology. ".repeat(4))
                    .unwrap(),
            }),
            occurred_at: None,
            reason: Text::new("return letter").unwrap(),
        }],
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    }
}

/// Appends until the first failure; returns the acknowledged event ids and the error.
fn append_until_failure(ledger: &Ledger, next: &mut u64, limit: u64) -> (Vec<Uid>, Option<Error>) {
    let mut acked = Vec::new();
    while *next < limit {
        match ledger.append(found(*next)) {
            Ok(outcome) => acked.extend(outcome.events.iter().map(|e| e.event_id)),
            Err(e) => return (acked, Some(e)),
        }
        *next += 1;
    }
    (acked, None)
}

fn stored_ids(dir: &Path) -> (HashSet<Uid>, u64) {
    let ledger = Ledger::open(dir, config()).unwrap();
    let report = ledger.verify(&mut |_, _| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problem);
    let events = ledger.read_all(0, usize::MAX).unwrap();
    (
        events.iter().map(|e| e.record.event_id).collect(),
        report.verified,
    )
}

#[test]
#[ignore = "needs root to mount a tmpfs; run by .ci/run with --ignored"]
fn full_disk_fails_appends_clearly_keeps_what_was_stored_and_resumes_when_space_returns() {
    let fs = Tmpfs::mount("2m");
    let dir = fs.path.join("ledger");
    let ledger = Ledger::open(&dir, config()).unwrap();
    let mut next = 0;
    let (mut acked, error) = append_until_failure(&ledger, &mut next, 100_000);
    let error = error.expect("a 2 MiB file system fills up");
    assert!(
        error.to_string().contains("No space left on device"),
        "the error names the cause: {error}"
    );
    // While the disk stays full, appends keep failing with the cause in the message.
    let again = ledger.append(found(next)).unwrap_err();
    assert!(
        matches!(again, Error::Poisoned(_) | Error::Storage(_)),
        "{again}"
    );
    assert!(again.to_string().contains("No space left"), "{again}");

    fs.remount("size=64m");
    // The refused append may be stored all the same (its journal entry reached the file before
    // the failure, and the reopen stored the journal's batches: docs/reliability.md); then
    // whole, once, and never acknowledged. Either way the next patient is new.
    ledger.recover().unwrap();
    let refused = PatientId::parse(&format!("patient-{next}")).unwrap();
    let stored_refused = ledger.read_stream(&refused, 1, 10).unwrap();
    assert!(
        stored_refused.is_empty() || stored_refused.len() == 2,
        "a refused append is absent or whole: {} events",
        stored_refused.len()
    );
    next += 1;
    let limit = next + 200;
    let (more, error) = append_until_failure(&ledger, &mut next, limit);
    assert!(
        error.is_none(),
        "writing resumes once space returns: {error:?}"
    );
    assert_eq!(more.len(), 400);
    acked.extend(more);
    drop(ledger);

    let (stored, count) = stored_ids(&dir);
    let missing: Vec<_> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged events lost: {missing:?}");
    assert_eq!(
        count % 2,
        0,
        "no partial batch: each append wrote two events"
    );
}

#[test]
#[ignore = "needs root to mount a tmpfs; run by .ci/run with --ignored"]
fn read_only_data_directory_is_refused_clearly_and_opens_again_when_writable() {
    let fs = Tmpfs::mount("64m");
    let dir = fs.path.join("ledger");
    let ledger = Ledger::open(&dir, config()).unwrap();
    let mut next = 0;
    let (acked, error) = append_until_failure(&ledger, &mut next, 50);
    assert!(error.is_none());
    drop(ledger);

    fs.remount("ro");
    let error = Ledger::open(&dir, config())
        .err()
        .expect("a read-only directory cannot hold a ledger");
    assert!(
        error.to_string().contains("Read-only file system"),
        "the error names the cause: {error}"
    );

    fs.remount("rw");
    let ledger = Ledger::open(&dir, config()).unwrap();
    let limit = next + 50;
    let (more, error) = append_until_failure(&ledger, &mut next, limit);
    assert!(error.is_none(), "writing resumes: {error:?}");
    assert_eq!(more.len(), 100);
    drop(ledger);

    let (stored, count) = stored_ids(&dir);
    assert!(
        acked.iter().all(|id| stored.contains(id)),
        "acknowledged events lost"
    );
    assert_eq!(count, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount a tmpfs; run by .ci/run with --ignored"]
async fn full_disk_answers_503_over_http_and_201_again_once_space_returns() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use careledger_app::actors::{AccessRole, RegisteredActor};
    use careledger_app::DataDir;
    use tower::ServiceExt;

    let fs = Tmpfs::mount("3m");
    let data = DataDir::open(&fs.path.join("data")).unwrap();
    let token = data
        .actors
        .add(RegisteredActor::new(
            ActorId::parse("gp-1").unwrap(),
            Text::new("Dr. GP").unwrap(),
            AccessRole::Care(Role::Gp),
        ))
        .unwrap();
    // One token writes until the disk is full: far past what the per-token rate limit admits,
    // which is not what this test is about.
    let state =
        careledger_api::AppState::start(&data).with_limits(careledger_api::Limits::unlimited());
    let post = |n: u64| {
        let body = serde_json::json!({"commands": [{"type": "start_shared_care", "arrangement": "CVRM by the GP, heart failure by cardiology. ".repeat(3)}]});
        Request::post(format!("/patients/patient-{n}/events"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let mut n = 0;
    let problem = loop {
        let response = careledger_api::app(state.clone())
            .oneshot(post(n))
            .await
            .unwrap();
        n += 1;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            assert!(response.headers().contains_key("retry-after"));
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            break serde_json::from_slice::<serde_json::Value>(&bytes).unwrap();
        }
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "until the disk is full"
        );
        assert!(n < 100_000, "a 3 MiB file system fills up");
    };
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{problem}"
    );
    let stored = data.ledger.head().position;

    fs.remount("size=64m");
    // The ledger reopens its storage at most every 200 ms: the first writes after the cause is
    // removed may still be refused; within two seconds they succeed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let response = careledger_api::app(state.clone())
            .oneshot(post(n))
            .await
            .unwrap();
        n += 1;
        if response.status() == StatusCode::CREATED {
            break;
        }
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        if std::time::Instant::now() >= deadline {
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            panic!(
                "writing resumes once space returns: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        tokio::task::yield_now().await;
    }
    assert!(data.ledger.head().position > stored);
    assert!(data.ledger.verify(&mut |_, _| {}).unwrap().is_intact());
}

/// What the HTTP tests below share: a router over a data directory, and requests to it.
mod http {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use careledger_api::AppState;
    use careledger_app::actors::{AccessRole, RegisteredActor};
    use careledger_app::DataDir;
    use careledger_core::ids::{ActorId, Text};
    use careledger_core::role::Role;
    use tower::ServiceExt;

    /// A GP's and an auditor's tokens.
    pub fn actors(data: &DataDir) -> (String, String) {
        let add = |id: &str, role| {
            data.actors
                .add(RegisteredActor::new(
                    ActorId::parse(id).unwrap(),
                    Text::new(format!("Dr. {id}")).unwrap(),
                    role,
                ))
                .unwrap()
        };
        (
            add("gp-1", AccessRole::Care(Role::Gp)),
            add("auditor-1", AccessRole::Auditor),
        )
    }

    pub fn state(data: &DataDir) -> AppState {
        AppState::start(data).with_limits(careledger_api::Limits::unlimited())
    }

    pub async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, serde_json::Value) {
        let response = careledger_api::app(state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn get(
        state: &AppState,
        token: Option<&str>,
        uri: &str,
    ) -> (StatusCode, serde_json::Value) {
        let mut request = Request::get(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        send(state, request.body(Body::empty()).unwrap()).await
    }

    /// Founds patient `n`'s care team; the event ids the answer acknowledges, or the refusal.
    pub async fn found(
        state: &AppState,
        token: &str,
        n: u64,
    ) -> Result<Vec<String>, (StatusCode, serde_json::Value)> {
        let body = serde_json::json!({"commands": [{"type": "start_shared_care", "arrangement": "CVRM by the GP, heart failure by cardiology. ".repeat(3)}]});
        let request = Request::post(format!("/patients/patient-{n}/events"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        match send(state, request).await {
            (StatusCode::CREATED, body) => Ok(body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event_id"].as_str().unwrap().to_owned())
                .collect()),
            refused => Err(refused),
        }
    }

    /// Every acknowledged event id is in the ledger, and the ledger verifies.
    pub fn assert_nothing_acknowledged_lost(data: &DataDir, acked: &[String]) {
        let report = data.ledger.verify(&mut |_, _| {}).unwrap();
        assert!(report.is_intact(), "{:?}", report.problem);
        let stored: std::collections::HashSet<String> = data
            .ledger
            .read_all(0, usize::MAX)
            .unwrap()
            .iter()
            .map(|e| e.record.event_id.to_string())
            .collect();
        let lost: Vec<_> = acked.iter().filter(|id| !stored.contains(*id)).collect();
        assert!(lost.is_empty(), "acknowledged events lost: {lost:?}");
    }

    /// Polls `/health` (no write is sent) until it answers `expected`, for at most 10 s.
    pub async fn wait_for_health(state: &AppState, expected: StatusCode) -> serde_json::Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (status, body) = get(state, None, "/health").await;
            if status == expected {
                return body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/health still answers {status} {body}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// Fills the file system holding `dir` to the last block: a file that is written until the
/// disk refuses.
fn fill_disk(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in [64 * 1024, 4096, 512, 1] {
        let bytes = vec![0u8; chunk];
        while file.write_all(&bytes).is_ok() {}
    }
    let _ = file.sync_all();
    path
}

/// The data directory at `path`, keeping a reserve of `bytes` (the default's 64 MiB would not fit
/// the tests' small file systems).
fn data_dir_with_reserve(
    path: &Path,
    bytes: u64,
) -> Result<careledger_app::DataDir, careledger_app::error::AppError> {
    careledger_app::DataDir::open_configured(
        path,
        careledger_app::data_dir::OpenConfig {
            reserve_bytes: bytes,
            ..careledger_app::data_dir::OpenConfig::default()
        },
    )
}

/// The access log of the data directory at `path`, as `serve` keeps it, with a reserve of
/// `bytes` of its own.
fn access_log_with_reserve(
    path: &Path,
    bytes: u64,
) -> std::sync::Arc<careledger_app::access_log::AccessLog> {
    use careledger_app::access_log::{AccessLog, AccessLogConfig};
    std::sync::Arc::new(
        AccessLog::open(
            path,
            AccessLogConfig {
                reserve_bytes: bytes,
                ..AccessLogConfig::default()
            },
        )
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount a tmpfs; run by .ci/run with --ignored"]
async fn a_server_started_on_a_full_disk_serves_reads_and_verification_refuses_writes_and_takes_them_again_once_space_returns(
) {
    use axum::http::StatusCode;

    let fs = Tmpfs::mount("40m");
    let path = fs.path.join("data");
    // The read models' store opens 2 MiB segments: the reserve must hold a few.
    let open = || data_dir_with_reserve(&path, 8 * 1024 * 1024);
    let data = open().unwrap();
    assert!(data.holds.current().is_none());
    let (gp, auditor) = http::actors(&data);
    let state = http::state(&data);
    let mut acked = Vec::new();
    for n in 0..20 {
        acked.extend(http::found(&state, &gp, n).await.unwrap());
    }
    let head = data.ledger.head();
    drop(state);
    drop(data);

    // The disk fills while the server is down (another process's logs, say).
    let filler = fill_disk(&fs.path);
    let data = open().expect("a server starts on a full disk, in its reserve's space");
    let state = http::state(&data);
    assert_eq!(data.ledger.head(), head);

    // Reads and verification answer.
    let (status, plan) = http::get(&state, Some(&gp), "/patients/patient-3/plan").await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    let (status, verified) = http::get(&state, Some(&auditor), "/verify").await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["verified"], head.position);

    // Writes are refused with 503, saying what is wrong and what the operator does.
    let (status, problem) = http::found(&state, &gp, 100).await.unwrap_err();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["code"], "disk_full", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("disk") && detail.contains("full") && detail.contains("free disk space"),
        "{detail}"
    );
    let (status, health) = http::get(&state, None, "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["class"], "disk_full", "{health}");
    let (_, health) = http::get(&state, Some(&auditor), "/health").await;
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("free disk space"),
        "{health}"
    );

    // Space returns: /health says so by itself, with no write sent, and writes resume.
    std::fs::remove_file(filler).unwrap();
    http::wait_for_health(&state, StatusCode::OK).await;
    assert!(data.reserve.is_kept(), "the reserve is made again");
    acked.extend(http::found(&state, &gp, 101).await.unwrap());
    http::assert_nothing_acknowledged_lost(&data, &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount a tmpfs; run by .ci/run with --ignored"]
async fn health_recovers_by_itself_once_space_returns_after_the_disk_filled_while_serving() {
    use axum::http::StatusCode;
    use careledger_app::DataDir;

    let fs = Tmpfs::mount("3m");
    let data = DataDir::open(&fs.path.join("data")).unwrap();
    let (gp, _) = http::actors(&data);
    let state = http::state(&data);
    let mut acked = Vec::new();
    let mut n = 0;
    let refusal = loop {
        match http::found(&state, &gp, n).await {
            Ok(ids) => acked.extend(ids),
            Err(refusal) => break refusal,
        }
        n += 1;
        assert!(n < 100_000, "a 3 MiB file system fills up");
    };
    assert_eq!(refusal.0, StatusCode::SERVICE_UNAVAILABLE, "{}", refusal.1);
    let health = http::wait_for_health(&state, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(health["class"], "storage", "{health}");

    fs.remount("size=64m");
    // No write is sent: the server notices by itself.
    http::wait_for_health(&state, StatusCode::OK).await;
    acked.extend(http::found(&state, &gp, n + 1).await.unwrap());
    http::assert_nothing_acknowledged_lost(&data, &acked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount a tmpfs; run by .ci/run with --ignored"]
async fn verify_and_plan_answer_on_a_full_disk() {
    let fs = Tmpfs::mount("40m");
    let path = fs.path.join("data");
    let data = data_dir_with_reserve(&path, 8 * 1024 * 1024).unwrap();
    let (gp, _) = http::actors(&data);
    let state = http::state(&data);
    for n in 0..5 {
        http::found(&state, &gp, n).await.unwrap();
    }
    drop(state);
    drop(data);
    fill_disk(&fs.path);

    let data_arg = path.to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        let verify = crate::common::process::careledger(&["verify", "--data", &data_arg]);
        let plan = crate::common::process::careledger(&[
            "plan",
            "--data",
            &data_arg,
            "--patient",
            "patient-3",
        ]);
        (verify, plan)
    })
    .await
    .unwrap();
    let (verify, plan) = output;
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).contains("ok: 10 events verified"));
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(
        !path.join("reserve").exists(),
        "opening needed the reserve's space: the disk was full"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount a tmpfs; run by .ci/run with --ignored"]
async fn verify_checks_the_ledger_and_the_access_log_on_a_full_disk() {
    let fs = Tmpfs::mount("40m");
    let path = fs.path.join("data");
    // sled's open writes up to a segment (512 KiB): the ledger's open in `verify` takes most of
    // this reserve, and the access log's then finds no room in what is left, as when the
    // ledger's open takes the data directory's reserve on a full disk.
    let data = data_dir_with_reserve(&path, 640 * 1024).unwrap();
    // As `serve` keeps it, with a reserve of its own.
    let log = access_log_with_reserve(&path, 4 * 1024 * 1024);
    let (gp, _) = http::actors(&data);
    let state = http::state(&data).with_access_log(log.clone());
    for n in 0..5 {
        http::found(&state, &gp, n).await.unwrap();
    }
    let (status, plan) = http::get(&state, Some(&gp), "/patients/patient-3/plan").await;
    assert_eq!(status, axum::http::StatusCode::OK, "{plan}");
    log.finish();
    let recorded = log.durable();
    assert_eq!(recorded, 6, "five writes and a read");
    drop(state);
    drop(log);
    drop(data);
    fill_disk(&fs.path);

    let data_arg = path.to_str().unwrap().to_owned();
    let verify = tokio::task::spawn_blocking(move || {
        crate::common::process::careledger(&["verify", "--data", &data_arg])
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(stdout.contains("ok: 10 events verified"), "{stdout}");
    assert!(
        stdout.contains(&format!("ok: {recorded} access log entries verified")),
        "{stdout}"
    );
    assert!(
        !path.join("reserve").exists(),
        "opening the ledger needed the data directory's reserve: the disk was full"
    );
    assert!(
        !path.join("access-log").join("reserve").exists(),
        "opening the access log needed its own reserve: the ledger's open took the other"
    );
}

/// With the disk full and the access log's reserve gone, a read cannot be recorded: every
/// request for patient data is refused, so `/health` is down too (a load balancer must not
/// route to the server), saying why; once space returns both come back without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root to mount a tmpfs; run by .ci/run with --ignored"]
async fn health_is_down_while_the_access_log_cannot_be_written_and_up_again_once_it_can() {
    use axum::http::StatusCode;

    let fs = Tmpfs::mount("40m");
    let path = fs.path.join("data");
    let data = data_dir_with_reserve(&path, 8 * 1024 * 1024).unwrap();
    // No reserve of its own: the full disk reaches the access log at once.
    let log = access_log_with_reserve(&path, 0);
    let (gp, auditor) = http::actors(&data);
    let state = http::state(&data).with_access_log(log.clone());
    http::found(&state, &gp, 0).await.unwrap();
    let (status, health) = http::get(&state, None, "/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    let filler = fill_disk(&fs.path);

    // Reads go on until the access log fails to commit one; from then on each is refused.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        let (status, body) = http::get(&state, Some(&gp), "/patients/patient-0/plan").await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break body;
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "reads are refused once the access log cannot record them"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(refused["code"], "access_log_unavailable", "{refused}");
    let health = http::wait_for_health(&state, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(health["class"], "storage", "{health}");
    assert!(
        health.get("reason").is_none(),
        "no reason without a token: {health}"
    );
    let (status, health) = http::get(&state, Some(&auditor), "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    let reason = health["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("the access log cannot be written") && reason.contains("No space left"),
        "{health}"
    );

    std::fs::remove_file(filler).unwrap();
    // No request needs to succeed first: the access log's writer tries again by itself.
    http::wait_for_health(&state, StatusCode::OK).await;
    let (status, plan) = http::get(&state, Some(&gp), "/patients/patient-0/plan").await;
    assert_eq!(status, StatusCode::OK, "{plan}");
}

/// A note of about 1.5 KiB that does not compress (hex of a hash chain), by the GP.
fn incompressible_note(n: u64) -> AppendRequest {
    let mut body = String::new();
    let mut hash = blake3::hash(&n.to_le_bytes());
    while body.len() < 1500 {
        body.push_str(&hash.to_hex());
        hash = blake3::hash(hash.as_bytes());
    }
    AppendRequest {
        patient: PatientId::parse(&format!("patient-{}", n % 40)).unwrap(),
        expected: ExpectedRevision::Any,
        actor: gp(),
        submissions: vec![Submission {
            command: Command::AddNote(careledger_core::event::Note {
                kind: careledger_core::event::NoteKind::Note,
                subject: Text::new("consultation").unwrap(),
                body: Text::new(body).unwrap(),
            }),
            occurred_at: None,
            reason: Text::new("quarterly consultation").unwrap(),
        }],
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    }
}

/// The read models' database on a disk that fills up while the ledger (elsewhere) takes
/// writes: applying or persisting fails with the cause; once space returns the store reopens by
/// itself, without a restart, catches up and stores everything.
#[test]
#[ignore = "needs root to mount a tmpfs; run by .ci/run with --ignored"]
fn read_models_reopen_after_a_full_disk_without_a_restart() {
    use careledger_projections::{ProjectionConfig, Projections, ReadModel};

    let fs = Tmpfs::mount("6m");
    let elsewhere = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&elsewhere.path().join("ledger"), config()).unwrap();
    let at = fs.path.join("projections");
    // A small cache: views are read back from the database, reopened or not.
    let read_models = ProjectionConfig {
        view_cache_bytes: 256 * 1024,
        ..ProjectionConfig::default()
    };
    let projections = Projections::open(&at, read_models).unwrap();
    for patient in 0..40 {
        ledger.append(found(patient)).unwrap();
    }
    let mut n = 0;
    let error = loop {
        for _ in 0..20 {
            ledger.append(incompressible_note(n)).unwrap();
            n += 1;
        }
        // sled refuses reads too once a write failed: applying (a view read on a miss) or
        // persisting fails first.
        match projections
            .apply_new(&ledger)
            .and_then(|_| projections.persist())
        {
            Ok(()) => assert!(n < 100_000, "a 6 MiB file system fills up"),
            Err(e) => break e,
        }
    };
    assert!(
        error.to_string().contains("No space left"),
        "the error names the cause: {error}"
    );
    // While the disk stays full the ledger goes on; the read models cannot store anything.
    for _ in 0..10 {
        ledger.append(incompressible_note(n)).unwrap();
        n += 1;
    }
    let _ = projections.apply_new(&ledger);
    assert!(projections.persist().is_err(), "the disk is still full");

    fs.remount("size=64m");
    projections
        .apply_new(&ledger)
        .expect("the store reopens once the disk takes writes again");
    projections.persist().unwrap();
    for _ in 0..10 {
        ledger.append(incompressible_note(n)).unwrap();
        n += 1;
    }
    projections.apply_new(&ledger).unwrap();
    projections.persist().unwrap();

    let mut expected = ReadModel::default();
    for event in ledger.read_all(0, usize::MAX).unwrap() {
        expected.apply(&event);
    }
    assert_eq!(projections.to_read_model().unwrap(), expected);
    drop(projections);
    let reopened = Projections::open(&at, read_models).unwrap();
    assert_eq!(
        reopened.checkpoint(),
        ledger.head().position,
        "everything was stored once space returned"
    );
    assert_eq!(reopened.to_read_model().unwrap(), expected);
}
