//! Witnesses: the golden add-checkpoint request (`tests/data/witness-v1.json`) and its answer,
//! and real processes: `careledger witness serve` cosigning what a `careledger serve --witness`
//! pushes, and refusing a rolled-back copy of that log and a checkpoint forged with its key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use careledger_app::witnesses::latest_checkpoint;
use careledger_core::checkpoint::{Checkpoint, LogKey};
use careledger_core::merkle::{TreeHash, TreeHead};
use careledger_core::note::{Note, NoteSignature, NoteSigner, VerifierKey, COSIGNATURE_V1};
use careledger_core::witness::{origin_hash, AddCheckpoint, Witness};
use serde_json::{json, Value};

use crate::common::process::{careledger, prepare_demo, ServerProcess};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/witness-v1.json");
const MERKLE_GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/merkle-v1.json");
const ORIGIN: &str = "careledger.example/test-log";
const WITNESS: &str = "witness.example/gp-cooperative";
const LOG_SEED: [u8; 32] = [0x11; 32];
const WITNESS_SEED: [u8; 32] = [0x22; 32];
const COSIGNED_AT: u64 = 1_772_355_600;
const WAIT: Duration = Duration::from_secs(30);

fn merkle_head(merkle: &Value, size: u64) -> TreeHead {
    TreeHead {
        size,
        root: TreeHash::from_hex(merkle["roots"][size as usize]["root"].as_str().unwrap()).unwrap(),
    }
}

/// A witness that cosigned the golden log at size 7 is asked to cosign size 11.
fn golden() -> Value {
    let merkle: Value =
        serde_json::from_str(&std::fs::read_to_string(MERKLE_GOLDEN).unwrap()).unwrap();
    let log = LogKey::from_seed(ORIGIN, &LOG_SEED).unwrap();
    let previous = log.sign(merkle_head(&merkle, 7)).unwrap().to_string();
    let checkpoint = log.sign(merkle_head(&merkle, 11)).unwrap().to_string();
    let proof = merkle["consistency"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["first"] == 7 && p["second"] == 11)
        .unwrap()["path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| TreeHash::from_hex(h.as_str().unwrap()).unwrap())
        .collect();
    let request = AddCheckpoint::new(7, proof, &checkpoint).unwrap();
    let witness = NoteSigner::from_seed(WITNESS, COSIGNATURE_V1, &WITNESS_SEED).unwrap();
    let text = Note::parse(&checkpoint).unwrap().text().to_owned();
    json!({
        "format": "careledger witnesses v1: C2SP tlog-witness add-checkpoint request body and its answer, a tlog-cosignature v1 line",
        "log_verifier_key": log.verifier_key().to_string(),
        "witness_verifier_key": witness.verifier_key().to_string(),
        "previously_cosigned_checkpoint": previous,
        "add_checkpoint_body": String::from_utf8(request.to_bytes()).unwrap(),
        "cosignature_time": COSIGNED_AT,
        "response_body": witness.cosign(&text, COSIGNED_AT).unwrap().line(),
        "conflict_response_body": "7\n",
    })
}

/// Written once (`CARELEDGER_WRITE_GOLDEN=1`, when the file is missing) and committed: a change
/// to the request's or the answer's bytes fails here.
#[test]
fn golden_add_checkpoint_request_and_its_cosignature_still_hold() {
    let computed = golden();
    if std::env::var_os("CARELEDGER_WRITE_GOLDEN").is_some() && !Path::new(GOLDEN).exists() {
        std::fs::write(
            GOLDEN,
            serde_json::to_string_pretty(&computed).unwrap() + "\n",
        )
        .unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(GOLDEN).unwrap()).unwrap();
    assert_eq!(stored, computed);
    let text = |k: &str| stored[k].as_str().unwrap().to_owned();

    // A witness that cosigned size 7 answers the stored request with the stored line, byte for
    // byte (ed25519 signatures are deterministic), and the same line as checkpoint-v1.json's.
    let state = tempfile::tempdir().unwrap();
    let log = VerifierKey::parse(&text("log_verifier_key")).unwrap();
    let signer = NoteSigner::from_seed(WITNESS, COSIGNATURE_V1, &WITNESS_SEED).unwrap();
    let witness = Witness::open(signer, &[log], state.path()).unwrap();
    let first = AddCheckpoint::new(0, vec![], &text("previously_cosigned_checkpoint")).unwrap();
    witness.add_checkpoint(&first.to_bytes(), 1).unwrap();
    let body = text("add_checkpoint_body");
    assert!(body.starts_with("old 7\n"));
    let answer = witness
        .add_checkpoint(body.as_bytes(), COSIGNED_AT)
        .unwrap();
    assert_eq!(answer.line(), text("response_body"));
    let checkpoint_golden: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/checkpoint-v1.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        text("response_body"),
        checkpoint_golden["cosignature_line"].as_str().unwrap()
    );
    let parsed = AddCheckpoint::parse(body.as_bytes()).unwrap();
    assert_eq!((parsed.old(), parsed.proof().len()), (7, 5));
    assert_eq!(parsed.to_bytes(), body.as_bytes());
}

/// A running `careledger witness serve`; killed when dropped. Its log goes to a file.
struct WitnessProcess {
    child: Child,
    url: String,
    log: PathBuf,
}

impl WitnessProcess {
    /// Starts the witness and waits (at most 20 s) until its port answers.
    fn start(key: &Path, log_key: &str, state: &Path, port: u16) -> WitnessProcess {
        let log = state.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_careledger"))
            .args(["witness", "serve", "--key", key.to_str().unwrap()])
            .args(["--log-key", log_key, "--state", state.to_str().unwrap()])
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let witness = WitnessProcess {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the witness did not start within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        witness
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the data directory's latest checkpoint, of at least `size`, carries a
/// cosignature by `witness`; returns the checkpoint and the cosignature's time.
async fn cosigned(
    data: &Path,
    witness: &VerifierKey,
    log: &VerifierKey,
    size: u64,
) -> (Checkpoint, u64) {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(text) = latest_checkpoint(data).unwrap() {
            let (checkpoint, note) = Checkpoint::open(&text, log).unwrap();
            let time = note
                .signatures()
                .iter()
                .find(|s| s.is_by(witness))
                .map(|s| s.verify_cosignature(witness, note.text()).unwrap());
            if let (Some(time), true) = (time, checkpoint.size() >= size) {
                return (checkpoint, time);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint of size {size} cosigned by {witness} within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn append_note(client: &reqwest::Client, base: &str, gp: &str) {
    let response = client
        .post(format!("{base}/patients/pat-0003/events"))
        .bearer_auth(gp)
        .json(&json!({"commands": [{"type": "add_note", "subject": "witnessed"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, String, String) {
    let response = client
        .post(format!("{url}/add-checkpoint"))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_process_cosigns_the_served_checkpoint_and_refuses_a_rolled_back_or_forged_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let (_, gp, head) = prepare_demo(&data);
    // The same log as it was before the events below: a copy to roll back to.
    let rolled_back = tmp.path().join("rolled-back");
    copy_dir(&data, &rolled_back);

    // The second party makes its key and hands the verifier key to the log's operator.
    let witness_key = tmp.path().join("witness-key");
    let keygen = careledger(&[
        "witness",
        "keygen",
        "--name",
        WITNESS,
        "--out",
        witness_key.to_str().unwrap(),
    ]);
    assert!(keygen.status.success(), "{keygen:?}");
    let witness_vkey = String::from_utf8(keygen.stdout).unwrap().trim().to_owned();
    let witness = VerifierKey::parse(&witness_vkey).unwrap();

    // The log starts with the witness configured before the witness runs: it is down, and
    // the log serves and takes writes all the same.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let serve_args = [
        "--origin",
        ORIGIN,
        "--checkpoint-every-events",
        "1",
        "--checkpoint-every-secs",
        "1",
        "--witness",
        &format!("{url}={witness_vkey}"),
    ];
    let mut server = ServerProcess::start_with(&data, &client, &serve_args).await;
    append_note(&client, &server.base, &gp).await;
    let shown = careledger(&["key", "show", "--data", data.to_str().unwrap()]);
    let log_vkey = String::from_utf8(shown.stdout).unwrap().trim().to_owned();
    let log = VerifierKey::parse(&log_vkey).unwrap();

    // The witness starts; the next checkpoint is pushed and cosigned.
    let state = tmp.path().join("witness-state");
    let witness_process = WitnessProcess::start(&witness_key, &log_vkey, &state, port);
    append_note(&client, &server.base, &gp).await;
    let (checkpoint, time) = cosigned(&data, &witness, &log, head + 2).await;
    assert!(time > 1_700_000_000, "a real time: {time}");
    append_note(&client, &server.base, &gp).await;
    let (checkpoint, _) = cosigned(&data, &witness, &log, checkpoint.size() + 1).await;
    let cosigned_size = checkpoint.size();
    // The witness serves what it cosigned last, by origin hash.
    let served = client
        .get(format!("{url}/{}/checkpoint", origin_hash(ORIGIN)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(served.starts_with(&checkpoint.body()), "{served}");
    server.signal(libc::SIGTERM);
    // A reader checks the cosigned checkpoint on the command line.
    let file = tmp.path().join("cosigned");
    std::fs::write(&file, latest_checkpoint(&data).unwrap().unwrap()).unwrap();
    let check = |file: &Path| {
        careledger(&[
            "witness",
            "verify",
            "--log-key",
            &log_vkey,
            "--witness-key",
            &witness_vkey,
            file.to_str().unwrap(),
        ])
    };
    let checked = check(&file);
    let printed = String::from_utf8_lossy(&checked.stdout).into_owned();
    assert!(checked.status.success(), "{printed}");
    assert!(
        printed.contains(&format!("size {cosigned_size} ")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("cosigned by {WITNESS} at ")),
        "{printed}"
    );

    // The rolled-back copy, with the same key and fewer events, gets no cosignature: the
    // witness refuses it and logs why at error level.
    std::fs::copy(data.join("log-key"), rolled_back.join("log-key")).unwrap();
    let old = ServerProcess::start_with(&rolled_back, &client, &serve_args).await;
    let deadline = Instant::now() + WAIT;
    while !witness_process.log().contains("ERROR") {
        assert!(Instant::now() < deadline, "{}", witness_process.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logged = witness_process.log();
    assert!(logged.contains("rolled back or forked"), "{logged}");
    let smaller = latest_checkpoint(&rolled_back).unwrap().unwrap();
    let (smaller_checkpoint, note) = Checkpoint::open(&smaller, &log).unwrap();
    assert_eq!(smaller_checkpoint.size(), head);
    assert!(note.signatures().iter().all(|s| !s.is_by(&witness)));
    drop(old);
    let uncosigned = tmp.path().join("uncosigned");
    std::fs::write(&uncosigned, &smaller).unwrap();
    let checked = check(&uncosigned);
    assert!(!checked.status.success());
    assert!(
        String::from_utf8_lossy(&checked.stdout).contains(&format!("NOT cosigned by {WITNESS}"))
    );

    // The same refusals, asked directly: with the witness's size as old size (400), with
    // another old size (409, the witness's size), and a checkpoint signed with the log's key
    // at the cosigned size over another root (422, a fork).
    let request = |old: u64, note: &str| AddCheckpoint::new(old, vec![], note).unwrap().to_bytes();
    let url = &witness_process.url;
    let (status, _, body) = post(&client, url, request(cosigned_size, &smaller)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("smaller"), "{body}");
    let (status, content_type, body) = post(&client, url, request(0, &smaller)).await;
    assert_eq!((status, content_type.as_str()), (409, "text/x.tlog.size"));
    assert_eq!(body, format!("{cosigned_size}\n"));
    let key = LogKey::open(&data.join("log-key")).unwrap();
    let forged = key
        .sign(TreeHead {
            size: cosigned_size,
            root: TreeHash([0x5a; 32]),
        })
        .unwrap()
        .to_string();
    let (status, _, body) = post(&client, url, request(cosigned_size, &forged)).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("forked"), "{body}");
    // What the witness vouches for is unchanged.
    let served_after = client
        .get(format!("{url}/{}/checkpoint", origin_hash(ORIGIN)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served_after, served);
    let line = served
        .lines()
        .find(|l| l.starts_with(&format!("\u{2014} {WITNESS} ")))
        .unwrap();
    let signature = NoteSignature::parse_line(line).unwrap();
    // A cosignature covers the whole checkpoint text, extension lines included.
    let text = Note::parse(&served).unwrap().text().to_owned();
    assert!(text.starts_with(&checkpoint.body()), "{text}");
    assert!(signature.verify_cosignature(&witness, &text).is_ok());
}

#[test]
fn witness_keygen_never_overwrites_a_key_and_serve_refuses_a_log_key_as_its_own() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("witness-key");
    let path = key.to_str().unwrap();
    let made = careledger(&["witness", "keygen", "--name", WITNESS, "--out", path]);
    assert!(made.status.success());
    let again = careledger(&["witness", "keygen", "--name", WITNESS, "--out", path]);
    assert!(!again.status.success());
    let log_key = tmp.path().join("log-key");
    let log = LogKey::open_or_create(&log_key, Some(ORIGIN)).unwrap();
    let vkey = log.verifier_key().to_string();
    let state = tmp.path().join("state");
    let refused = careledger(&[
        "witness",
        "serve",
        "--key",
        log_key.to_str().unwrap(),
        "--log-key",
        &vkey,
        "--state",
        state.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8(refused.stderr).unwrap();
    assert!(stderr.contains("not a cosigner key"), "{stderr}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
