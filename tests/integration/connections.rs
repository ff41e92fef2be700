//! The server's connections and limits against the real `careledger serve` process: idle and
//! slow clients under a low descriptor limit, per-token rate and stream limits, `/verify` for
//! auditors only, resuming beyond the head, the headers every answer carries, no query strings
//! in the logs, and TLS with and without client certificates.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::process::{careledger, text};
use crate::common::tls::{pki, tls_files, Pki};

/// A `careledger serve` child on a free loopback port, its standard error in a file; killed
/// when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Server {
    /// Starts `careledger serve` on `data` with `args`, at most `descriptors` open files if
    /// given, and waits (at most 20 s) until it accepts connections.
    fn start(data: &Path, args: &[&str], descriptors: Option<u64>) -> Server {
        Server::start_logging(data, args, descriptors, "warn")
    }

    /// [`Server::start`] with the log filter `log_level` (`RUST_LOG`).
    fn start_logging(
        data: &Path,
        args: &[&str],
        descriptors: Option<u64>,
        log_level: &str,
    ) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = data.with_extension("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_careledger"));
        command
            .args(["serve", "--data", data.to_str().unwrap()])
            .args(["--addr", &addr.to_string()])
            .args(args)
            .env("RUST_LOG", log_level)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(limit) = descriptors {
            limit_descriptors(&mut command, limit);
        }
        let child = command.spawn().unwrap();
        let mut server = Server { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("the server exited with {status}: {}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What the server wrote to its standard error so far.
    fn log(&self) -> String {
        let mut text = String::new();
        std::fs::File::open(&self.log)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes the child start with at most `limit` open descriptors (soft and hard).
fn limit_descriptors(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    let set_limit = move || -> std::io::Result<()> {
        let limit = libc::rlimit {
            rlim_cur: limit,
            rlim_max: limit,
        };
        // SAFETY: setrlimit(2) reads the struct we pass and touches no other memory of ours.
        #[allow(unsafe_code)]
        let failed = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0;
        if failed {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure runs in the child between fork and exec; it only calls setrlimit(2),
    // which is async-signal-safe, and allocates nothing.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(set_limit)
    };
}

/// Adds an actor to `data` with the server stopped and returns their token.
fn add_actor(data: &Path, id: &str, role: &str) -> String {
    let data = data.to_str().unwrap();
    let mut args = vec![
        "actors", "add", "--data", data, "--id", id, "--name", id, "--role", role,
    ];
    if role == "subscriber" {
        // A subscriber that must see every patient says so.
        args.extend(["--scope", "all"]);
    }
    let added = careledger(&args);
    assert!(added.status.success(), "{}", text(&added));
    String::from_utf8(added.stdout).unwrap().trim().to_owned()
}

/// A client that opens a new connection for every request.
fn fresh_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Reads until the server closes the connection, at most until `deadline`; the time it was
/// closed, or `None` if it is still open.
async fn closed_by(stream: &mut TcpStream, deadline: tokio::time::Instant) -> Option<Instant> {
    let mut buf = [0u8; 512];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(Instant::now()),
            // A 408 the server may send before it closes.
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

/// Sends a request head one byte a second; how long the server let it go on (it must close
/// the connection long before the head is complete).
async fn drip(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head =
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    for byte in head {
        if stream.write_all(&[*byte]).await.is_err() {
            return started.elapsed();
        }
        let next = tokio::time::Instant::now() + Duration::from_secs(1);
        if closed_by(&mut stream, next).await.is_some() {
            return started.elapsed();
        }
    }
    panic!(
        "a client sending one byte a second got its whole head in after {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_and_dripping_clients_neither_exhaust_descriptors_nor_keep_health_out() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // 256 descriptors: 300 idle connections would exhaust them without the cap.
    let server = Server::start(&data, &["--header-read-timeout-secs", "2"], Some(256));
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    let drips: Vec<_> = (0..5).map(|_| tokio::spawn(drip(server.addr))).collect();

    let client = fresh_client();
    for round in 0..5 {
        let asked = Instant::now();
        let health = client
            .get(format!("{}/health", server.base()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("round {round}: /health did not answer: {e}"));
        assert_eq!(health.status(), 200, "round {round}");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "round {round}: /health took {:?} with 300 idle connections open",
            asked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every idle connection is closed: made room for others, or at the header read timeout.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for (i, stream) in idle.iter_mut().enumerate() {
        assert!(
            closed_by(stream, deadline).await.is_some(),
            "idle connection {i} is still open 10 s after a 2 s header read timeout"
        );
    }
    for drip in drips {
        let lasted = drip.await.unwrap();
        assert!(
            lasted < Duration::from_secs(6),
            "a dripping client was let go on for {lasted:?} (header read timeout 2 s)"
        );
    }
    let health = client
        .get(format!("{}/health", server.base()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// Sends a request head on `stream` and reads the answer's head (up to the blank line).
async fn request_head(stream: &mut TcpStream, head: &str) -> String {
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    while !answer.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert_eq!(n, 1, "closed before the answer's head: {answer:?}");
        answer.push(byte[0]);
    }
    String::from_utf8(answer).unwrap()
}

#[tokio::test]
async fn idle_kept_alive_connections_close_at_the_header_timeout_and_streams_stay_open() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let feed = add_actor(&data, "feed-1", "subscriber");
    let server = Server::start(&data, &["--header-read-timeout-secs", "1"], None);

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let answer = request_head(
        &mut stream,
        &format!(
            "GET /events/stream HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {feed}\r\n\r\n"
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut kept_alive = TcpStream::connect(server.addr).await.unwrap();
    let answer = request_head(
        &mut kept_alive,
        "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    let mut idle = TcpStream::connect(server.addr).await.unwrap();

    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    assert!(
        closed_by(&mut kept_alive, deadline).await.is_some(),
        "a kept-alive connection idle for 5 s with a 1 s timeout is still open"
    );
    assert!(
        closed_by(&mut idle, deadline).await.is_some(),
        "a connection that never sent a head is still open after 5 s"
    );
    // The stream has been open for well over the timeout; its request is in flight, so it is
    // neither idle nor waiting for a head.
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(Duration::from_millis(300), stream.read(&mut buf)).await;
    assert!(
        !matches!(read, Ok(Ok(0) | Err(_))),
        "the event stream was closed by the header timeout"
    );
}

#[tokio::test]
async fn a_token_past_its_rate_gets_429_with_retry_after_and_other_tokens_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gp = add_actor(&data, "gp-busy", "gp");
    let auditor = add_actor(&data, "auditor-1", "auditor");
    let server = Server::start(
        &data,
        &["--rate-limit-per-second", "1", "--rate-limit-burst", "3"],
        None,
    );
    let client = reqwest::Client::new();
    let events = format!("{}/events", server.base());
    for i in 0..3 {
        let r = client.get(&events).bearer_auth(&gp).send().await.unwrap();
        assert_ne!(r.status(), 429, "request {i} is within the burst");
    }
    let mut refused = None;
    for _ in 0..20 {
        let r = client.get(&events).bearer_auth(&gp).send().await.unwrap();
        if r.status() == 429 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("20 requests past a burst of 3 at 1 per second get a 429");
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("1 requests per second") && detail.contains("up to 3"),
        "{detail}"
    );
    assert!(detail.contains("retry after"), "{detail}");

    let other = client
        .get(&events)
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200, "another token has its own bucket");
}

#[tokio::test]
async fn a_token_may_hold_only_its_share_of_open_streams() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let feed = add_actor(&data, "feed-1", "subscriber");
    let other = add_actor(&data, "feed-2", "subscriber");
    let server = Server::start(&data, &["--max-streams-per-token", "2"], None);
    let client = reqwest::Client::new();
    let stream = format!("{}/events/stream", server.base());
    let mut open = Vec::new();
    for _ in 0..2 {
        let r = client.get(&stream).bearer_auth(&feed).send().await.unwrap();
        assert_eq!(r.status(), 200);
        open.push(r);
    }
    let third = client.get(&stream).bearer_auth(&feed).send().await.unwrap();
    assert_eq!(third.status(), 429);
    assert!(third.headers().contains_key("retry-after"));
    let problem: Value = third.json().await.unwrap();
    assert_eq!(problem["code"], "too_many_streams", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("is 2"),
        "{problem}"
    );
    let theirs = client
        .get(&stream)
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 200, "another token has its own streams");
}

#[tokio::test]
async fn resuming_after_a_position_beyond_the_head_is_refused_naming_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (auditor, _gp, head) = crate::common::process::prepare_demo(&data);
    let server = Server::start(&data, &[], None);
    let client = reqwest::Client::new();
    let stream = format!("{}/events/stream", server.base());
    let beyond = head + 5;
    let by_query = client
        .get(format!("{stream}?after={beyond}"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    let by_header = client
        .get(&stream)
        .header("last-event-id", beyond.to_string())
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    for refused in [by_query, by_header] {
        assert_eq!(refused.status(), 416);
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["code"], "after_beyond_head", "{problem}");
        assert_eq!(problem["ledger_head_position"], head, "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.contains(&format!("head is at {head}")) && detail.contains(&beyond.to_string()),
            "{detail}"
        );
    }
    let at_head = client
        .get(format!("{stream}?after={head}"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(
        at_head.status(),
        200,
        "the head itself is a place to resume"
    );
}

#[tokio::test]
async fn only_auditors_verify_the_whole_chain() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let gp = add_actor(&data, "gp-1", "gp");
    let feed = add_actor(&data, "feed-1", "subscriber");
    let auditor = add_actor(&data, "auditor-1", "auditor");
    let server = Server::start(&data, &[], None);
    let client = reqwest::Client::new();
    let verify = format!("{}/verify", server.base());
    for (who, token) in [("gp", &gp), ("subscriber", &feed)] {
        let r = client.get(&verify).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 403, "{who}");
        let problem: Value = r.json().await.unwrap();
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("auditors only"),
            "{who}: {problem}"
        );
    }
    let r = client
        .get(&verify)
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_the_right_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let auditor = add_actor(&data, "auditor-1", "auditor");
    let server = Server::start(&data, &[], None);
    let client = reqwest::Client::new();
    let base = server.base();
    let csp = "default-src 'none'; frame-ancestors 'none'";

    let health = client.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    assert_eq!(health.headers()["content-security-policy"], csp);
    assert!(
        !health.headers().contains_key("cache-control"),
        "/health holds no patient data"
    );
    assert!(
        !health.headers().contains_key("strict-transport-security"),
        "no HSTS over plain HTTP"
    );

    // A lower-case scheme name is the same scheme.
    let events = client
        .get(format!("{base}/events"))
        .header("authorization", format!("bearer {auditor}"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    assert_eq!(events.headers()["cache-control"], "no-store");
    assert_eq!(events.headers()["x-content-type-options"], "nosniff");
    assert_eq!(events.headers()["content-security-policy"], csp);

    let wrong_method = client
        .delete(format!("{base}/verify"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_method.status(), 405);
    let allow = wrong_method.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "Allow: {allow}");
    assert_eq!(wrong_method.headers()["x-content-type-options"], "nosniff");
    let problem: Value = wrong_method.json().await.unwrap();
    assert_eq!(problem["code"], "method_not_allowed", "{problem}");

    let no_token = client.get(format!("{base}/events")).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    assert_eq!(
        no_token.headers()["www-authenticate"],
        "Bearer realm=\"careledger\""
    );
    let unknown = client
        .get(format!("{base}/events"))
        .bearer_auth("00ff00ff")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 401);
    assert_eq!(
        unknown.headers()["www-authenticate"],
        "Bearer realm=\"careledger\", error=\"invalid_token\""
    );
    assert_eq!(unknown.headers()["cache-control"], "no-store");
}

#[tokio::test]
async fn query_strings_never_reach_the_log_even_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let auditor = add_actor(&data, "auditor-1", "auditor");
    let secret = "a0b1c2d3e4f5secretquerytoken";
    let server = Server::start_logging(&data, &[], None, "trace");
    let client = reqwest::Client::new();
    let r = client
        .get(format!(
            "{}/events?access_token={secret}&after=0",
            server.base()
        ))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let log = server.log();
    assert!(
        log.contains("/events"),
        "the request was logged at trace level: {log}"
    );
    assert!(!log.contains(secret), "the query reached the log:\n{log}");
    assert!(!log.contains(&auditor), "the token reached the log");
}

#[test]
fn a_reachable_address_without_tls_refuses_to_start_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let refused = careledger(&[
        "serve",
        "--data",
        data.to_str().unwrap(),
        "--addr",
        "0.0.0.0:0",
    ]);
    assert!(!refused.status.success());
    let said = text(&refused);
    assert!(
        said.contains("--tls-cert") && said.contains("--allow-plaintext"),
        "{said}"
    );
    assert!(!data.exists(), "the data directory was not created");
}

/// GET `path` over HTTPS, trusting the PKI's CA, with the client certificate if `with_cert`.
async fn https_get(
    addr: SocketAddr,
    pki: &Pki,
    with_cert: bool,
    path: &str,
) -> Result<hyper::Response<hyper::body::Incoming>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_cert {
        let chain = vec![CertificateDer::from_pem_slice(pki.client_cert.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes()).unwrap();
        builder.with_client_auth_cert(chain, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", "localhost")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .unwrap();
    sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))
}

#[tokio::test]
async fn over_tls_the_server_answers_https_with_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let (cert, key, _) = tls_files(dir.path(), &pki);
    let server = Server::start(
        &dir.path().join("data"),
        &["--tls-cert", &cert, "--tls-key", &key],
        None,
    );
    let health = https_get(server.addr, &pki, false, "/health")
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");

    // Plain HTTP on the TLS port gets no answer.
    let plain = fresh_client()
        .get(format!("{}/health", server.base()))
        .send()
        .await;
    assert!(
        !plain.is_ok_and(|r| r.status() == 200),
        "plain HTTP is not served on the TLS port"
    );
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_a_certificate_it_signed_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki();
    let (cert, key, ca) = tls_files(dir.path(), &pki);
    let server = Server::start(
        &dir.path().join("data"),
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &ca,
        ],
        None,
    );
    let without = https_get(server.addr, &pki, false, "/health").await;
    assert!(
        without.is_err(),
        "a client without a certificate was served: {:?}",
        without.map(|r| r.status())
    );
    let with = https_get(server.addr, &pki, true, "/health").await.unwrap();
    assert_eq!(with.status(), 200);

    // A certificate from another CA is refused too.
    let stranger = pki_with_other_client(&pki);
    let refused = https_get(server.addr, &stranger, true, "/health").await;
    assert!(refused.is_err(), "a certificate of another CA was accepted");
}

/// The same server trust, with a client certificate of a CA the server does not know.
fn pki_with_other_client(pki: &Pki) -> Pki {
    let other = self::pki();
    Pki {
        ca: pki.ca.clone(),
        server_cert: pki.server_cert.clone(),
        server_key: pki.server_key.clone(),
        client_cert: other.client_cert,
        client_key: other.client_key,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verification_past_its_time_limit_is_stopped_with_408_and_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Long enough that no scan of it ends within a millisecond.
    crate::common::built::build(&data, 20_000);
    let auditor = add_actor(&data, "auditor-1", "auditor");
    let server = Server::start(&data, &["--verify-timeout-secs", "0.001"], None);
    let client = fresh_client();
    let verify = format!("{}/verify", server.base());
    let r = client
        .get(&verify)
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 408);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let problem: Value = r.json().await.unwrap();
    assert_eq!(problem["code"], "timed_out", "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("--verify-timeout-secs"), "{detail}");
    // The scan itself stops (it does not run on to the head in the background) and gives its
    // slot back: the next verification is admitted, not told that one is in progress.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = client
            .get(&verify)
            .bearer_auth(&auditor)
            .send()
            .await
            .unwrap();
        if r.status() == 408 {
            break;
        }
        assert_eq!(r.status(), 429, "a second verification waits for the first");
        assert!(Instant::now() < deadline, "the stopped scan kept its slot");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = server.log();
    assert!(
        log.contains("a verification was stopped before the head"),
        "{log}"
    );
}

#[tokio::test]
async fn with_its_default_limit_the_same_verification_reaches_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    crate::common::built::build(&data, 20_000);
    let auditor = add_actor(&data, "auditor-1", "auditor");
    let server = Server::start(&data, &[], None);
    let r = fresh_client()
        .get(format!("{}/verify", server.base()))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert!(report["verified"].as_u64().unwrap() >= 20_000, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actors_commands_reach_a_server_over_https_trusting_the_ca_file_and_name_an_untrusted_one(
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pki = pki();
    let (cert, key, ca) = tls_files(dir.path(), &pki);
    let op = add_actor(&data, "op-1", "operator");
    let server = Server::start(&data, &["--tls-cert", &cert, "--tls-key", &key], None);
    // The certificate names localhost.
    let url = format!("https://localhost:{}", server.addr.port());
    let trusted = careledger(&[
        "actors",
        "list",
        "--url",
        &url,
        "--token",
        &op,
        "--ca-file",
        &ca,
    ]);
    assert!(trusted.status.success(), "{}", text(&trusted));
    assert!(text(&trusted).contains("op-1"), "{}", text(&trusted));
    // Without the CA the server's certificate is not trusted, and the error says so.
    let untrusted = careledger(&["actors", "list", "--url", &url, "--token", &op]);
    assert!(!untrusted.status.success());
    let said = text(&untrusted).to_lowercase();
    assert!(
        said.contains("certificate") && said.contains("could not reach"),
        "{said}"
    );
    // A URL of another scheme is refused before anything is sent.
    let ftp = careledger(&[
        "actors",
        "list",
        "--url",
        "ftp://localhost/",
        "--token",
        &op,
    ]);
    assert!(!ftp.status.success());
    assert!(text(&ftp).contains("https://"), "{}", text(&ftp));
}
