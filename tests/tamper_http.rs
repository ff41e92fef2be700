//! Tampering seen over HTTP: `/verify` names the position of a changed byte, and a server whose
//! head does not verify reports itself unhealthy, says why, and refuses writes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn careledger(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_careledger"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn flip_byte(data: &Path, position: u64) {
    let db = sled::open(data.join("ledger")).unwrap();
    let mut key = vec![b'e'];
    key.extend_from_slice(&position.to_be_bytes());
    let mut frame = db.get(&key).unwrap().unwrap().to_vec();
    let middle = frame.len() / 2;
    frame[middle] ^= 0x20;
    db.insert(key, frame).unwrap();
    db.flush().unwrap();
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

async fn start(data: &Path, client: &reqwest::Client) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_careledger"))
        .args([
            "serve",
            "--data",
            data.to_str().unwrap(),
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Server(child, base)
}

/// Demo data plus an auditor; returns (auditor token, GP token, head position).
fn prepare(data: &Path) -> (String, String, u64) {
    let demo =
        String::from_utf8(careledger(&["demo", "--data", data.to_str().unwrap()]).stdout).unwrap();
    let token_of = |id: &str| {
        demo.lines()
            .find(|l| l.trim_start().starts_with(id))
            .unwrap()
            .split_whitespace()
            .last()
            .unwrap()
            .to_owned()
    };
    let head = demo
        .lines()
        .find_map(|l| l.strip_prefix("Head: position "))
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    (token_of("auditor-1"), token_of("gp-jansen"), head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_endpoint_names_the_position_of_a_changed_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (auditor, _, _) = prepare(dir.path());
    flip_byte(dir.path(), 9);
    let client = reqwest::Client::new();
    let server = start(dir.path(), &client).await;
    let health = client
        .get(format!("{}/health", server.1))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "the head still verifies");
    let report: Value = client
        .get(format!("{}/verify", server.1))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["intact"], false);
    assert_eq!(report["verified"], 8);
    assert_eq!(report["problem"]["position"], 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_with_a_damaged_head_is_unhealthy_says_why_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (_, gp, head) = prepare(dir.path());
    flip_byte(dir.path(), head);
    let client = reqwest::Client::new();
    let server = start(dir.path(), &client).await;
    let health = client
        .get(format!("{}/health", server.1))
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
        .post(format!("{}/patients/pat-0003/events", server.1))
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
