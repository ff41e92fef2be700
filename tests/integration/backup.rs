//! Online backup and restore: a backup taken while writers append over HTTP restores into a
//! fresh directory that serves and verifies; a restore older than a signed checkpoint stays
//! read-only until the loss is recorded; bad targets and callers are refused clearly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use careledger_api::AppState;
use careledger_app::actors::{AccessRole, RegisteredActor};
use careledger_app::DataDir;
use careledger_core::ids::{ActorId, Text};
use serde_json::{json, Value};

use crate::common::{serve_in_process, Fixture};

fn operator(f: &Fixture) -> String {
    f.data
        .actors
        .add(RegisteredActor::new(
            ActorId::parse("op-1").unwrap(),
            Text::new("Operator").unwrap(),
            AccessRole::Operator,
        ))
        .unwrap()
}

fn founding(n: u64) -> Value {
    json!({"commands": [{"type": "start_shared_care", "arrangement": format!("CVRM by the GP, number {n}"), "reason": "letter"}]})
}

async fn send(state: &AppState, request: Request<Body>) -> (StatusCode, Value) {
    use tower::ServiceExt;
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
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn backup_through(state: &AppState, token: &str, to: &str) -> (StatusCode, Value) {
    let request = Request::post("/admin/backup")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({ "to": to }).to_string()))
        .unwrap();
    send(state, request).await
}

/// Founds `count` care teams as the GP, with idempotency keys `<label>-0` on.
async fn found(f: &Fixture, label: &str, count: u64) {
    for n in 0..count {
        let (status, body) = f
            .post("gp-1", &format!("{label}-{n}"), &founding(n), &[])
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

/// Founds three care teams (idempotency keys `<label>-0` to `-2`) and backs the data directory
/// up through the API into `backup` in a new temporary directory: that directory, the backup's
/// path and the size backed up.
async fn three_founded_and_backed_up(
    f: &Fixture,
    op: &str,
    label: &str,
) -> (tempfile::TempDir, std::path::PathBuf, u64) {
    found(f, label, 3).await;
    let target = tempfile::tempdir().unwrap();
    let to = target.path().join("backup");
    let (status, answer) = backup_through(&f.state, op, to.to_str().unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let size = answer["ledger_size"].as_u64().unwrap();
    (target, to, size)
}

async fn get(state: &AppState, token: Option<&str>, uri: &str) -> (StatusCode, Value) {
    let mut request = Request::get(uri);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    send(state, request.body(Body::empty()).unwrap()).await
}

async fn post_events(
    state: &AppState,
    token: &str,
    patient: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let request = Request::post(format!("/patients/{patient}/events"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(state, request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_writers_append_restores_into_a_fresh_directory_that_serves_and_verifies(
) {
    let f = Fixture::empty();
    let op = operator(&f);
    // A keyed append before the backup: its retry after the restore is not written again.
    let keyed = founding(999);
    let (status, first) = f
        .post("gp-1", "keyed", &keyed, &[("idempotency-key", "letter-1")])
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let served = serve_in_process(f.state.clone()).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Two writers append over HTTP until told to stop; each keeps the event ids acknowledged.
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let base = served.base.clone();
            let token = f.token("gp-1");
            let stop = stop.clone();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut acked = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) || n < 5 {
                    let response = client
                        .post(format!("{base}/patients/writer-{w}-{n}/events"))
                        .bearer_auth(&token)
                        .json(&founding(n))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::CREATED);
                    let body: Value = response.json().await.unwrap();
                    for event in body["events"].as_array().unwrap() {
                        acked.push((
                            event["position"].as_u64().unwrap(),
                            event["event_id"].as_str().unwrap().to_owned(),
                        ));
                    }
                    n += 1;
                }
                acked
            })
        })
        .collect();
    // Writes are under way before the backup starts.
    while f.data.ledger.head().position < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let before = f.data.ledger.head().position;
    // A checkpoint signed while the writers go on: the copy must extend it.
    let key = careledger_core::checkpoint::LogKey::open(&careledger_app::data_dir::log_key_path(
        f.dir.path(),
    ))
    .unwrap();
    careledger_core::checkpoint::issue(
        &f.data.ledger,
        &key,
        &careledger_app::data_dir::checkpoint_path(f.dir.path()),
        before,
    )
    .unwrap();
    let target = tempfile::tempdir().unwrap();
    let to = target.path().join("backup-1");
    let response = reqwest::Client::new()
        .post(format!("{}/admin/backup", served.base))
        .bearer_auth(&op)
        .json(&json!({ "to": to }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for writer in writers {
        acked.extend(writer.await.unwrap());
    }
    served.shutdown().await;

    let size = answer["ledger_size"].as_u64().unwrap();
    assert!(
        size >= before,
        "the copy holds what was durable when it began: {answer}"
    );
    assert!(
        f.data.ledger.head().position > size,
        "writes went on during and after the backup"
    );
    assert_eq!(answer["verified"], true);
    assert_eq!(
        answer["checkpoint_size"], before,
        "checked against the checkpoint"
    );
    assert_eq!(
        answer["head_hash"],
        f.data.ledger.read_position(size).unwrap().hash.to_hex()
    );
    let secrets: Vec<&str> = answer["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert_eq!(secrets, ["log-key", "actors/", "access-log/"]);
    let files: Vec<&str> = answer["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    for expected in [
        "ledger-anchor",
        "log-key",
        "ledger/db",
        "actors/db",
        "access-log/store/db",
    ] {
        assert!(files.contains(&expected), "{expected} in {files:?}");
    }
    assert!(answer["access_log_entries"].as_u64().unwrap() > 0);

    // Restored into a fresh directory: it serves, verifies, and holds every event acknowledged
    // up to the copy's head.
    let fresh = tempfile::tempdir().unwrap();
    let data_path = fresh.path().join("data");
    let report = careledger_app::backup::restore(&to, &data_path, None).unwrap();
    assert_eq!(report.ledger_size, size);
    assert_eq!(report.missing_events, None);
    let restored = DataDir::open(&data_path).unwrap();
    assert!(restored.holds.current().is_none());
    let copied: std::collections::HashSet<String> = restored
        .ledger
        .read_all(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| e.record.event_id.to_string())
        .collect();
    let original = f.data.ledger.read_all(0, size as usize).unwrap();
    assert!(original
        .iter()
        .all(|e| copied.contains(&e.record.event_id.to_string())));
    // Every event acknowledged at a position up to the copy's head is in it.
    let within: Vec<_> = acked.iter().filter(|(p, _)| *p <= size).collect();
    let keyed_events = first["events"].as_array().unwrap().len();
    assert_eq!(
        (within.len() + keyed_events) as u64,
        size,
        "only the writers and the keyed append wrote"
    );
    assert!(within.iter().all(|(_, id)| copied.contains(id)));
    let state = AppState::start(&restored);
    // The tokens work on the restored server: their hashes were copied.
    let (status, verified) = get(&state, Some(&f.token("auditor-1")), "/verify").await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["verified"], size);
    let (status, plan) = get(&state, Some(&f.token("gp-1")), "/patients/writer-0-0/plan").await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    let (status, body) = post_events(&state, &f.token("gp-1"), "after-restore", &founding(0)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let retry = Request::post("/patients/keyed/events")
        .header("authorization", format!("Bearer {}", f.token("gp-1")))
        .header("content-type", "application/json")
        .header("idempotency-key", "letter-1")
        .body(Body::from(keyed.to_string()))
        .unwrap();
    let (status, replay) = send(&state, retry).await;
    assert!(status.is_success(), "{replay}");
    assert_eq!(
        replay["replayed"], true,
        "the idempotency key was copied: {replay}"
    );
    assert_eq!(replay["events"], first["events"]);
    let report = restored.ledger.verify(&mut |_, _| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.problem);
}

#[tokio::test]
async fn a_restore_older_than_a_signed_checkpoint_says_what_it_lacks_and_stays_read_only_until_the_loss_is_recorded(
) {
    let f = Fixture::empty();
    let op = operator(&f);
    let (_target, to, backed_up) = three_founded_and_backed_up(&f, &op, "early").await;
    assert_eq!(backed_up, f.data.ledger.head().position);
    found(&f, "late", 4).await;
    // The checkpoint the witnesses cosigned after the backup: four appends (8 events) more.
    let key = careledger_core::checkpoint::LogKey::open(&careledger_app::data_dir::log_key_path(
        f.dir.path(),
    ))
    .unwrap();
    let head = f.data.ledger.head().position;
    let witnessed = key
        .sign(f.data.ledger.tree_head(head).unwrap())
        .unwrap()
        .to_string();

    let fresh = tempfile::tempdir().unwrap();
    let data_path = fresh.path().join("data");
    let report = careledger_app::backup::restore(&to, &data_path, Some(&witnessed)).unwrap();
    let missing = head - backed_up;
    assert_eq!(missing, 8);
    assert_eq!(report.missing_events, Some(missing));
    assert_eq!(report.latest_signed, Some(head));

    let restored = DataDir::open(&data_path).unwrap();
    let state = AppState::start(&restored);
    let gp = f.token("gp-1");
    let (status, problem) = post_events(&state, &gp, "after-restore", &founding(0)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["code"], "behind_witnessed_checkpoint");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("8 acknowledged events are missing"),
        "{problem}"
    );
    let (status, health) = get(&state, Some(&f.token("auditor-1")), "/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health["class"], "behind_witnessed_checkpoint");
    assert_eq!(health["missing_events"], missing);
    // Reads go on.
    let (status, _) = get(&state, Some(&gp), "/patients/early-0/plan").await;
    assert_eq!(status, StatusCode::OK);
    drop(state);
    drop(restored);

    let refused = careledger_app::backup::accept_loss(&data_path, " ").unwrap_err();
    assert!(refused.to_string().contains("--reason"), "{refused}");
    let loss =
        careledger_app::backup::accept_loss(&data_path, "the disk and the newer backups burnt")
            .unwrap();
    assert_eq!((loss.restored_size, loss.witnessed_size), (backed_up, head));

    let restored = DataDir::open(&data_path).unwrap();
    let state = AppState::start(&restored);
    let (status, body) = post_events(&state, &gp, "after-restore", &founding(0)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, health) = get(&state, Some(&f.token("auditor-1")), "/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(
        health["recorded_loss"]["missing_events"], missing,
        "{health}"
    );
    assert_eq!(
        health["recorded_loss"]["reason"],
        "the disk and the newer backups burnt"
    );
    // The record is signed: a changed one is refused, not believed.
    let file = careledger_app::backup::recorded_loss_path(&data_path);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("missing=8", "missing=1")).unwrap();
    assert!(careledger_app::backup::recorded_loss(&data_path).is_err());
}

#[tokio::test]
async fn a_backup_is_refused_into_a_non_empty_or_relative_directory_and_to_anyone_but_an_operator()
{
    let f = Fixture::empty();
    let op = operator(&f);
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("something"), b"kept").unwrap();

    let (status, problem) = backup_through(&f.state, &op, target.path().to_str().unwrap()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "directory_not_empty");
    assert_eq!(
        std::fs::read(target.path().join("something")).unwrap(),
        b"kept"
    );

    let (status, problem) = backup_through(&f.state, &op, "backups/today").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["code"], "path_not_absolute");
    assert!(!std::path::Path::new("backups/today").exists());

    let to = target.path().join("new");
    for actor in ["gp-1", "auditor-1"] {
        let (status, problem) =
            backup_through(&f.state, &f.token(actor), to.to_str().unwrap()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("operator"),
            "{problem}"
        );
    }
    assert!(!to.exists());

    // A restore goes only into an empty data directory.
    let (status, _) = backup_through(&f.state, &op, to.to_str().unwrap()).await;
    assert_eq!(status, StatusCode::CREATED);
    let error = careledger_app::backup::restore(&to, target.path(), None).unwrap_err();
    assert!(error.to_string().contains("is not empty"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_backs_up_a_running_server_and_a_restore_behind_a_witness_lacks_events_until_the_loss_is_recorded(
) {
    use crate::common::process::careledger;
    use careledger_core::note::{NoteSigner, COSIGNATURE_V1};
    use careledger_core::witness::{AddCheckpoint, Witness};

    let f = Fixture::empty();
    let op = operator(&f);
    let served = serve_in_process(f.state.clone()).await;
    let key = careledger_core::checkpoint::LogKey::open(&careledger_app::data_dir::log_key_path(
        f.dir.path(),
    ))
    .unwrap();
    // A witness of this log, on a loopback port.
    let witness_state = tempfile::tempdir().unwrap();
    let signer =
        NoteSigner::from_seed("witness.example/gp-cooperative", COSIGNATURE_V1, &[7; 32]).unwrap();
    let witness_key = signer.verifier_key();
    let witness =
        Arc::new(Witness::open(signer, &[key.verifier_key()], witness_state.path()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let witness_url = format!("http://{}", listener.local_addr().unwrap());
    let (stop_witness, stopped) = tokio::sync::oneshot::channel::<()>();
    let witness_task = tokio::spawn(careledger_api::witness::serve(
        listener,
        witness.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    found(&f, "early", 2).await;
    let target = tempfile::tempdir().unwrap();
    let to = target.path().join("backup");
    let base = served.base.clone();
    let args: Vec<String> = [
        "backup",
        "--to",
        to.to_str().unwrap(),
        "--url",
        &base,
        "--token",
        &op,
    ]
    .map(String::from)
    .to_vec();
    let output = tokio::task::spawn_blocking(move || {
        careledger(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("SECRETS") && stdout.contains("log-key") && stdout.contains("actors/"),
        "{stdout}"
    );
    // What the copy was checked against, in words: no checkpoint is signed here yet.
    assert!(
        stdout.contains("no checkpoint was signed yet, so it was checked against the head alone"),
        "{stdout}"
    );
    assert!(!stdout.contains("null"), "{stdout}");
    let backed_up = f.data.ledger.head().position;

    // Two more appends, and the witness cosigns the checkpoint that covers them.
    found(&f, "late", 2).await;
    let head = f.data.ledger.head().position;
    let note = key
        .sign(f.data.ledger.tree_head(head).unwrap())
        .unwrap()
        .to_string();
    witness
        .add_checkpoint(&AddCheckpoint::new(0, vec![], &note).unwrap().to_bytes(), 1)
        .unwrap();
    served.shutdown().await;

    let fresh = tempfile::tempdir().unwrap();
    let data = fresh.path().join("data");
    let data_arg = data.to_str().unwrap().to_owned();
    let witness_arg = format!("{witness_url}={witness_key}");
    let from = to.to_str().unwrap().to_owned();
    let output = {
        let (data_arg, witness_arg, from) = (data_arg.clone(), witness_arg.clone(), from.clone());
        tokio::task::spawn_blocking(move || {
            careledger(&[
                "restore",
                "--from",
                &from,
                "--data",
                &data_arg,
                "--witness",
                &witness_arg,
            ])
        })
        .await
        .unwrap()
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(3),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let missing = head - backed_up;
    assert!(
        stdout.contains(&format!("cosigned size {head} last")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{missing} acknowledged events are missing")),
        "{stdout}"
    );

    // The same restore again is refused: the directory is no longer empty.
    let again = {
        let (data_arg, from) = (data_arg.clone(), from.clone());
        tokio::task::spawn_blocking(move || {
            careledger(&["restore", "--from", &from, "--data", &data_arg])
        })
        .await
        .unwrap()
    };
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty"));

    let restored = DataDir::open(&data).unwrap();
    let hold = restored.holds.current().expect("writes are held");
    assert_eq!(hold.missing_events, Some(missing));
    drop(restored);

    let output = {
        let data_arg = data_arg.clone();
        tokio::task::spawn_blocking(move || {
            careledger(&[
                "restore",
                "--accept-loss",
                "--reason",
                "no newer backup survived",
                "--data",
                &data_arg,
            ])
        })
        .await
        .unwrap()
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = tokio::task::spawn_blocking(move || careledger(&["verify", "--data", &data_arg]))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "recorded loss (signed by the log key): {missing} acknowledged events"
        )) && stdout.contains("no newer backup survived"),
        "{stdout}"
    );
    let restored = DataDir::open(&data).unwrap();
    assert!(
        restored.holds.current().is_none(),
        "the loss is recorded: writes resume"
    );

    let _ = stop_witness.send(());
    witness_task.await.unwrap().unwrap();
}

/// Signs, with the log key in `dir`, a checkpoint of `size` events whose root is not the
/// ledger's, and writes it as the latest checkpoint in `dir`.
fn write_wrong_checkpoint(dir: &std::path::Path, size: u64) {
    use careledger_core::merkle::{TreeHash, TreeHead};
    let key =
        careledger_core::checkpoint::LogKey::open(&careledger_app::data_dir::log_key_path(dir))
            .unwrap();
    let head = TreeHead {
        size,
        root: TreeHash([7; 32]),
    };
    let note = key.sign(head).unwrap().to_string();
    std::fs::write(careledger_app::data_dir::checkpoint_path(dir), note).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_or_a_restore_whose_signed_checkpoint_is_not_of_its_ledger_is_refused() {
    let f = Fixture::empty();
    let op = operator(&f);
    let (target, to, size) = three_founded_and_backed_up(&f, &op, "e").await;

    // The good backup restores, checked against a checkpoint of its own history.
    let key =
        careledger_core::checkpoint::LogKey::open(&careledger_app::data_dir::log_key_path(&to))
            .unwrap();
    let own = key
        .sign(f.data.ledger.tree_head(size - 1).unwrap())
        .unwrap();
    std::fs::write(
        careledger_app::data_dir::checkpoint_path(&to),
        own.to_string(),
    )
    .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let report = careledger_app::backup::restore(&to, &fresh.path().join("data"), None).unwrap();
    assert_eq!(report.ledger_size, size);
    assert_eq!(report.latest_signed, Some(size - 1));

    // A checkpoint the log signed with another root: the restore is refused, nothing served.
    write_wrong_checkpoint(&to, size - 1);
    let refused = fresh.path().join("refused");
    let error = careledger_app::backup::restore(&to, &refused, None).unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("not consistent with its signed checkpoint")
            && message.contains(&format!("size {}", size - 1)),
        "{message}"
    );

    // And a checkpoint beyond the ledger: acknowledged events are missing.
    write_wrong_checkpoint(&to, size + 5);
    let error = careledger_app::backup::restore(&to, &fresh.path().join("short"), None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("not consistent with its signed checkpoint")
            && error.contains("acknowledged events are missing"),
        "{error}"
    );

    // A backup of a data directory whose latest checkpoint is not of its ledger is refused.
    write_wrong_checkpoint(f.dir.path(), size);
    let again = target.path().join("again");
    let (status, problem) = backup_through(&f.state, &op, again.to_str().unwrap()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("not consistent with its signed checkpoint"),
        "{detail}"
    );
}
