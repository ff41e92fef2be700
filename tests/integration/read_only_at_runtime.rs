//! The file system under the ledger fails while the server runs, on a real ext4 image on a loop
//! device mounted for the test (the test machines run as root):
//!
//! - it turns read-only, as ext4 does when it detects an error (`errors=remount-ro`, raised
//!   through ext4's `trigger_fs_error`, the same path as a real metadata error): appends in flight
//!   and after it are refused with 503 naming the cause, reads too (the access log on the same
//!   disk cannot record them, and nothing is served unlogged), `/health` says why, the
//!   server shuts down cleanly, and after the operator's repair (unmount, `e2fsck`, mount) it starts
//!   again with every write acknowledged before the failure present;
//! - the power is cut (ext4's shutdown without flushing its journal, as the file system tests of
//!   the kernel simulate it): whatever was not durable is gone, and every write acknowledged
//!   before the cut survives.
//!
//! "Before the failure" is measured at the client: the acknowledgement arrived before the test
//! started to fail the file system. While ext4 aborts its journal, `fdatasync` can return success
//! for data that does not survive (docs/reliability.md shows this without careledger, with
//! four threads writing and syncing one file); no program above the file system can tell those
//! acknowledgements apart, so they are counted, not asserted.

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::process::{careledger, ServerProcess};
use serde_json::{json, Value};

const PATIENT: &str = "999990007";
const ROUNDS: usize = 6;

/// An ext4 image mounted on a loop device with `errors=remount-ro`; unmounted on drop.
struct Ext4 {
    dir: tempfile::TempDir,
}

impl Ext4 {
    /// Creates and mounts the image; panics, naming what is missing, on a machine without loop
    /// devices or e2fsprogs (these tests are ignored by default and run on purpose).
    fn create() -> Ext4 {
        let tools = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
            .iter()
            .any(|p| Path::new(p).exists());
        assert!(
            Path::new("/dev/loop-control").exists(),
            "this test needs loop devices (/dev/loop-control) and root"
        );
        assert!(
            tools,
            "this test needs mkfs.ext4 (Debian package e2fsprogs)"
        );
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(256 << 20)
            .unwrap();
        run("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        std::fs::create_dir(dir.path().join("mnt")).unwrap();
        let fs = Ext4 { dir };
        fs.mount();
        fs
    }

    fn image(&self) -> PathBuf {
        self.dir.path().join("disk.img")
    }

    fn mount_point(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    fn mount(&self) {
        run(
            "mount",
            &[
                "-o",
                "loop,errors=remount-ro",
                self.image().to_str().unwrap(),
                self.mount_point().to_str().unwrap(),
            ],
        );
    }

    /// The loop device the file system is mounted from, such as `loop3`.
    fn device(&self) -> String {
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        let point = self.mount_point();
        mounts
            .lines()
            .find_map(|line| {
                let mut fields = line.split(' ');
                let source = fields.next()?;
                (Path::new(fields.next()?) == point).then(|| source.to_owned())
            })
            .expect("the image is mounted")
            .trim_start_matches("/dev/")
            .to_owned()
    }

    /// Raises an ext4 error: the journal is aborted and the file system turns read-only.
    fn fail(&self) -> Instant {
        let started = Instant::now();
        let trigger = format!("/sys/fs/ext4/{}/trigger_fs_error", self.device());
        std::fs::write(&trigger, "careledger test: simulated metadata error\n").unwrap();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
        let point = self.mount_point();
        assert!(
            mounts.lines().any(|l| l.contains(point.to_str().unwrap())
                && (l.contains(" ro,") || l.contains("emergency_ro"))),
            "the file system turned read-only"
        );
        started
    }

    /// Cuts the power: from now on nothing reaches the disk, and what was not durable is lost.
    fn cut_power(&self) -> Instant {
        let started = Instant::now();
        const EXT4_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587D;
        const EXT4_GOING_FLAGS_NOLOGFLUSH: u32 = 2;
        let dir = std::fs::File::open(self.mount_point()).unwrap();
        let flags = EXT4_GOING_FLAGS_NOLOGFLUSH;
        // SAFETY: the ioctl reads one u32 from a valid pointer.
        #[allow(unsafe_code)]
        let result = unsafe {
            libc::ioctl(
                std::os::unix::io::AsRawFd::as_raw_fd(&dir),
                EXT4_IOC_SHUTDOWN,
                &flags,
            )
        };
        assert_eq!(result, 0, "{}", std::io::Error::last_os_error());
        started
    }

    /// After a power cut: the disk comes back and is mounted again.
    fn power_on(&self) {
        run("umount", &[self.mount_point().to_str().unwrap()]);
        self.mount();
    }

    /// What an operator does: unmount, repair, mount again.
    fn repair(&self) {
        run("umount", &[self.mount_point().to_str().unwrap()]);
        let status = Process::new("e2fsck")
            .args(["-f", "-y"])
            .arg(self.image())
            .status()
            .unwrap();
        // 0: clean; 1: errors corrected (the error flag this test raised).
        assert!(
            matches!(status.code(), Some(0 | 1)),
            "e2fsck repairs the file system: {status}"
        );
        self.mount();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        let _ = Process::new("umount")
            .arg("-l")
            .arg(self.mount_point())
            .status();
    }
}

fn run(program: &str, args: &[&str]) {
    let status = Process::new(program).args(args).status().unwrap();
    assert!(
        status.success(),
        "{program} {args:?}: {status} (this test needs root and loop devices)"
    );
}

/// Event ids with the moment their acknowledgement arrived.
type Acknowledged = Vec<(String, Instant)>;

/// Writes batches of two notes until a write is refused; returns the acknowledged events and the
/// refusal (status and problem body).
async fn write_until_refused(
    client: reqwest::Client,
    base: String,
    token: String,
    writer: usize,
    acks: Arc<AtomicU64>,
) -> (Acknowledged, u16, Value) {
    let mut acknowledged = Vec::new();
    for i in 0.. {
        let commands: Vec<Value> = (0..2)
            .map(|k| json!({"type": "add_note", "subject": format!("w{writer} n{i}.{k}")}))
            .collect();
        let response = client
            .post(format!("{base}/patients/{PATIENT}/events"))
            .bearer_auth(&token)
            .json(&json!({"commands": commands}))
            .send()
            .await
            .unwrap();
        // The status line arrives once the server has decided: the moment of acknowledgement.
        let arrived = Instant::now();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap();
        if status != 201 {
            return (acknowledged, status, body);
        }
        acks.fetch_add(1, Ordering::SeqCst);
        for event in body["events"].as_array().unwrap() {
            acknowledged.push((event["event_id"].as_str().unwrap().to_owned(), arrived));
        }
    }
    unreachable!()
}

async fn get(client: &reqwest::Client, url: String, token: &str) -> (u16, Value) {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A server on the ext4 image with a GP, an auditor and one patient in care.
struct Scene {
    /// Appends acknowledged so far, by every writer.
    acks: Arc<AtomicU64>,
    data: PathBuf,
    client: reqwest::Client,
    gp: String,
    auditor: String,
}

impl Scene {
    async fn start(fs: &Ext4) -> (Scene, ServerProcess) {
        let data = fs.mount_point().join("data");
        let add = |id: &str, role: &str| {
            let output = careledger(&[
                "actors",
                "add",
                "--data",
                data.to_str().unwrap(),
                "--id",
                id,
                "--name",
                id,
                "--role",
                role,
            ]);
            assert!(output.status.success());
            String::from_utf8(output.stdout).unwrap().trim().to_owned()
        };
        let scene = Scene {
            acks: Arc::new(AtomicU64::new(0)),
            gp: add("gp-1", "gp"),
            auditor: add("auditor-1", "auditor"),
            client: reqwest::Client::new(),
            data,
        };
        let server = ServerProcess::start(&scene.data, &scene.client).await;
        let founding = json!({"commands": [{"type": "start_shared_care", "arrangement": "disk failure test"}]});
        let r = scene
            .client
            .post(format!("{}/patients/{PATIENT}/events", server.base))
            .bearer_auth(&scene.gp)
            .json(&founding)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        (scene, server)
    }

    /// Four writers, each until its first refusal.
    fn writers(
        &self,
        server: &ServerProcess,
    ) -> Vec<tokio::task::JoinHandle<(Acknowledged, u16, Value)>> {
        (0..4)
            .map(|w| {
                tokio::spawn(write_until_refused(
                    self.client.clone(),
                    server.base.clone(),
                    self.gp.clone(),
                    w,
                    self.acks.clone(),
                ))
            })
            .collect()
    }

    /// Asserts that every event acknowledged before `failure` is stored, that no batch is partial
    /// and that the chain verifies; returns the ones acknowledged later that are missing.
    async fn assert_stored(
        &self,
        server: &ServerProcess,
        acknowledged: &[(String, Instant)],
        failure: Instant,
        when: &str,
    ) -> HashSet<String> {
        let mut events = Vec::new();
        loop {
            let (status, page) = self
                .get(
                    server,
                    &format!("/events?after={}&limit=1000", events.len()),
                )
                .await;
            assert_eq!(status, 200, "{page}");
            let batch = page["events"].as_array().unwrap();
            if batch.is_empty() {
                break;
            }
            events.extend(batch.iter().cloned());
        }
        let stored: HashSet<&str> = events
            .iter()
            .map(|e| e["event_id"].as_str().unwrap())
            .collect();
        let (missing, racing): (Vec<_>, Vec<_>) = acknowledged
            .iter()
            .filter(|(id, _)| !stored.contains(id.as_str()))
            .partition(|(_, arrived)| *arrived < failure);
        assert!(
            missing.is_empty(),
            "{when}: {} of {} events acknowledged before the failure are missing: {missing:?}",
            missing.len(),
            acknowledged.len()
        );
        common::assert_no_partial_batch(&events, 2, when);
        let (status, verify) = self.get(server, "/verify").await;
        assert_eq!(
            (status, &verify["intact"]),
            (200, &json!(true)),
            "{when}: {verify}"
        );
        racing.into_iter().map(|(id, _)| id.clone()).collect()
    }

    /// Waits (at most 20 s) until `more` appends beyond those acknowledged so far are.
    async fn until_acknowledged(&self, more: u64) {
        let target = self.acks.load(Ordering::SeqCst) + more;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.acks.load(Ordering::SeqCst) < target {
            assert!(Instant::now() < deadline, "the writers make no progress");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// A GET as the auditor.
    async fn get(&self, server: &ServerProcess, path: &str) -> (u16, Value) {
        get(
            &self.client,
            format!("{}{path}", server.base),
            &self.auditor,
        )
        .await
    }

    async fn assert_writable(&self, server: &ServerProcess) {
        let r = self
            .client
            .post(format!("{}/patients/{PATIENT}/events", server.base))
            .bearer_auth(&self.gp)
            .json(&json!({"commands": [{"type": "add_note", "subject": "after the repair"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "writing works after the repair");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, loop devices and mkfs.ext4; run by .ci/run with --ignored"]
async fn file_system_turning_read_only_refuses_writes_and_unloggable_reads_and_loses_nothing() {
    let fs = Ext4::create();
    let (scene, mut server) = Scene::start(&fs).await;
    let writers = scene.writers(&server);
    scene.until_acknowledged(200).await;
    let failure = fs.fail();
    let mut acknowledged = Vec::new();
    for writer in writers {
        let (ids, status, problem) = writer.await.unwrap();
        assert_eq!(status, 503, "a write on a read-only disk: {problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains("Read-only file system") || detail.contains("Input/output error"),
            "the problem names the cause: {problem}"
        );
        acknowledged.extend(ids);
    }
    assert!(
        acknowledged.len() >= 400,
        "200 appends of two notes were acknowledged before the error"
    );

    // Later writes are refused with the cause; /health says why.
    let (ids, status, problem) = write_until_refused(
        scene.client.clone(),
        server.base.clone(),
        scene.gp.clone(),
        9,
        scene.acks.clone(),
    )
    .await;
    assert!(ids.is_empty(), "no write succeeds on a read-only disk");
    assert_eq!(status, 503, "{problem}");
    // Refused by the ledger, or first by the access log on the same disk (whose `fdatasync`
    // may fail with EIO as ext4 aborts its journal): either names the cause.
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("Read-only file system") || detail.contains("Input/output error"),
        "{problem}"
    );
    let (status, health) = scene.get(&server, "/health").await;
    assert_eq!(status, 503, "{health}");
    // The ledger's last failure: the later writes may have been refused by the access log
    // before the ledger tried (and failed) again.
    let reason = health["reason"].as_str().unwrap();
    assert!(
        reason.contains("Read-only file system") || reason.contains("Input/output error"),
        "{health}"
    );
    // Reads are refused too: the access log on the same disk cannot record them, and nothing
    // is served unlogged. The access log learns that at its next commit of the refused
    // writes' entries, within its durability bound of their answers on a disk that keeps up
    // (waited for up to 5 s here: the disk is shared with parallel tests); from then on every
    // read is refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (status, plan) = loop {
        let (status, plan) = scene
            .get(&server, &format!("/patients/{PATIENT}/plan"))
            .await;
        if status == 503 || Instant::now() >= deadline {
            break (status, plan);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(status, 503, "a read that cannot be logged: {plan}");
    assert_eq!(plan["code"], "access_log_unavailable", "{plan}");
    let (status, page) = scene.get(&server, "/events?after=0&limit=10").await;
    let detail = page["detail"].as_str().unwrap_or_default();
    assert!(
        status == 503 && (detail.contains("Read-only") || detail.contains("Input/output error")),
        "reading the ledger is refused, naming the cause: {status} {page}"
    );

    // The server stops on SIGTERM although it cannot persist its read models.
    let stop = Instant::now();
    server.signal(libc::SIGTERM);
    assert!(
        stop.elapsed() < Duration::from_secs(15),
        "the server stops promptly on a read-only disk"
    );
    drop(server);

    fs.repair();
    let output = careledger(&["verify", "--data", scene.data.to_str().unwrap()]);
    assert!(
        output.status.success(),
        "the chain verifies after the repair: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let server = ServerProcess::start(&scene.data, &scene.client).await;
    let racing = scene
        .assert_stored(&server, &acknowledged, failure, "after the repair")
        .await;
    eprintln!(
        "{} of {} acknowledged events were acknowledged while ext4 aborted its journal and are gone",
        racing.len(),
        acknowledged.len()
    );
    let (status, health) = scene.get(&server, "/health").await;
    assert_eq!(status, 200, "{health}");
    scene.assert_writable(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, loop devices and mkfs.ext4; run by .ci/run with --ignored"]
async fn power_cut_under_concurrent_writers_loses_no_acknowledged_write() {
    let fs = Ext4::create();
    let (scene, mut server) = Scene::start(&fs).await;
    let mut acknowledged = Vec::new();
    for round in 0..ROUNDS {
        let writers = scene.writers(&server);
        scene.until_acknowledged(25 + 25 * round as u64).await;
        let cut = fs.cut_power();
        for writer in writers {
            let (ids, status, problem) = writer.await.unwrap();
            assert_eq!(status, 503, "round {round}: {problem}");
            acknowledged.extend(ids);
        }
        server.signal(libc::SIGKILL);
        fs.power_on();
        server = ServerProcess::start(&scene.data, &scene.client).await;
        let racing = scene
            .assert_stored(&server, &acknowledged, cut, &format!("round {round}"))
            .await;
        assert!(
            racing.len() <= 8,
            "round {round}: {racing:?} acknowledged as the power went are gone"
        );
        acknowledged.retain(|(id, _)| !racing.contains(id));
    }
    assert!(acknowledged.len() > ROUNDS * 8, "writes were acknowledged");
    scene.assert_writable(&server).await;
}
