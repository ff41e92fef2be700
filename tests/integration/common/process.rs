//! The `careledger` binary as a real server process on a free loopback port.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `careledger` with arguments and waits for it.
pub fn careledger(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_careledger"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// A running `careledger serve`; stopped (SIGKILL if still running) when dropped.
pub struct ServerProcess {
    pub child: Child,
    pub base: String,
}

impl ServerProcess {
    /// Starts the server on `data` and waits (at most 20 s) until it answers `/health`.
    pub async fn start(data: &Path, client: &reqwest::Client) -> ServerProcess {
        Self::start_with(data, client, &[]).await
    }

    /// [`ServerProcess::start`] with more arguments to `serve`.
    pub async fn start_with(data: &Path, client: &reqwest::Client, args: &[&str]) -> ServerProcess {
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
                // The durability tests write as fast as the server takes it, with one token;
                // the rate limit has its own tests (limits.rs).
                "--rate-limit-per-second",
                "0",
            ])
            .args(args)
            .env("RUST_LOG", "warn")
            // The access log's reserve, small: many test servers run at once.
            .env("CARELEDGER_ACCESS_LOG_RESERVE_MIB", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while client
            .get(format!("{}/health", server.base))
            .send()
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the server did not start within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server
    }

    /// Sends a signal and reaps the process.
    pub fn signal(&mut self, signal: i32) {
        // SAFETY: kill(2) takes a pid and a signal number and touches no memory of ours.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(self.child.id() as i32, signal)
        };
        let status = self.child.wait().unwrap();
        if signal != libc::SIGKILL {
            // A stop signal is handled from the moment the server answers: it ends the process
            // itself, never the signal's default action.
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&status),
                None,
                "the server was killed by signal {signal} instead of stopping: {status}"
            );
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes the demo into `data` and returns (auditor token, GP token, head position), read from
/// what `careledger demo` prints.
pub fn prepare_demo(data: &std::path::Path) -> (String, String, u64) {
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

/// A command's standard output and error, for messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Signs a checkpoint of the whole ledger in `data`, as a server does when it stops: the
/// checkpointer's last checkpoint at `finish`. The log key is made with `origin` when there is
/// none yet.
pub fn sign_checkpoint(data: &Path, origin: Option<&str>) {
    use careledger_core::checkpoint::{CheckpointConfig, Checkpointer, LogKey};
    use careledger_core::{Ledger, LedgerConfig};
    let ledger =
        std::sync::Arc::new(Ledger::open(&data.join("ledger"), LedgerConfig::default()).unwrap());
    let key = LogKey::open_or_create(&data.join("log-key"), origin).unwrap();
    let config = CheckpointConfig {
        every_events: 0,
        every: Duration::from_secs(3600),
    };
    Checkpointer::start(ledger, key, data.join("checkpoint"), config)
        .unwrap()
        .finish();
}

/// The log's verifier key, as `careledger key show` prints it.
pub fn log_key(data: &Path) -> String {
    let shown = careledger(&["key", "show", "--data", data.to_str().unwrap()]);
    assert!(shown.status.success(), "{}", text(&shown));
    String::from_utf8(shown.stdout).unwrap().trim().to_owned()
}
