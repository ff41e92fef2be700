//! careledger-load: a bounded load on a server over loopback, reporting throughput and
//! latency of appends and plan reads, and the delay from an append's acknowledgement to its
//! delivery to SSE subscribers.

pub mod bulk;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use careledger_core::ids::{ActorId, Text};

use careledger_api::AppState;
use careledger_app::actors::{AccessRole, RegisteredActor};
use careledger_app::DataDir;

/// What to run.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "careledger-load",
    version,
    about = "A bounded loopback load on a careledger server"
)]
pub struct LoadArgs {
    /// Start a server in this process on a fresh temporary data directory (loopback, free port).
    #[arg(long, conflicts_with_all = ["url", "token"])]
    pub spawn: bool,
    /// Base URL of a running server; only loopback addresses are accepted.
    #[arg(long)]
    pub url: Option<String>,
    /// Bearer token of a GP actor on that server.
    #[arg(long)]
    pub token: Option<String>,
    /// Concurrent appending connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Patients the appends spread over.
    #[arg(long, default_value_t = 64)]
    pub patients: usize,
    /// Stop after this many appended events.
    #[arg(long, default_value_t = 20_000)]
    pub events: u64,
    /// Stop after this many seconds at most.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Pace the appends to this many events per second in total (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Concurrent plan readers.
    #[arg(long, default_value_t = 0)]
    pub plan_readers: usize,
    /// SSE subscribers on /events/stream.
    #[arg(long, default_value_t = 0)]
    pub subscribers: usize,
    /// With --spawn: sign no checkpoints (for measurements side by side).
    #[arg(long, requires = "spawn")]
    pub no_checkpoints: bool,
    /// With --spawn: sign a checkpoint after this many new events (as `careledger serve`).
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_every_events: u64,
    /// With --spawn: sign a checkpoint after this many seconds when the ledger grew.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_every_secs: u64,
}

/// Latencies in microseconds.
#[derive(Default)]
struct Samples(Vec<u64>);

impl Samples {
    fn summary(&mut self) -> String {
        if self.0.is_empty() {
            return "no samples".into();
        }
        self.0.sort_unstable();
        let at = |q: f64| self.0[((self.0.len() - 1) as f64 * q).round() as usize];
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(at(0.50)),
            ms(at(0.99)),
            ms(at(1.0))
        )
    }
}

fn check_loopback(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("--url {url:?}"))?;
    let host = parsed
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']']);
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!("--url must point at this machine (127.0.0.0/8, localhost or ::1); got {host:?}");
    }
    Ok(())
}

/// Runs the load; prints the report; errors when any request failed or a subscriber missed events.
pub fn run(args: LoadArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if args.spawn {
            let dir = tempfile_dir()?;
            let data =
                tokio::task::block_in_place(|| DataDir::open(&dir)).map_err(|e| anyhow!("{e}"))?;
            let actor = RegisteredActor::new(
                ActorId::parse("load-gp")?,
                Text::new("Load GP")?,
                AccessRole::Care(careledger_core::role::Role::Gp),
            );
            let token = data.actors.add(actor).map_err(|e| anyhow!("{e}"))?;
            let auditor = RegisteredActor::new(
                ActorId::parse("load-auditor")?,
                Text::new("Load auditor")?,
                AccessRole::Auditor,
            );
            let auditor_token = data.actors.add(auditor).map_err(|e| anyhow!("{e}"))?;
            let checkpointer = if args.no_checkpoints {
                None
            } else {
                let config = careledger_core::checkpoint::CheckpointConfig {
                    every_events: args.checkpoint_every_events,
                    every: Duration::from_secs(args.checkpoint_every_secs),
                };
                Some(
                    data.start_checkpoints(None, config)
                        .map_err(|e| anyhow!("{e}"))?,
                )
            };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            // The access log as `careledger serve` keeps it (without the reserve file), unless
            // CARELEDGER_BENCH_NO_ACCESS_LOG=1 measures without it.
            let access_log = careledger_app::access_log::open_unless_measuring(
                &data.path,
                careledger_app::access_log::AccessLogConfig {
                    reserve_bytes: 0,
                    ..Default::default()
                },
            )
            .map_err(|e| anyhow!("{e}"))?
            .map(std::sync::Arc::new);
            // One token drives every append and every subscriber: no per-token limits.
            let mut state = AppState::start(&data).with_limits(careledger_api::Limits::unlimited());
            if let Some(log) = &access_log {
                state = state.with_access_log(log.clone());
            }
            let app = state.app.clone();
            let server = tokio::spawn(careledger_api::serve(listener, state, async move {
                let _ = stopped.await;
            }));
            let result = drive(&args, &url, &token, &auditor_token).await;
            let _ = stop.send(());
            server.await??;
            if let Some(checkpointer) = checkpointer {
                checkpointer.finish();
            }
            if let Some(log) = access_log {
                tokio::task::block_in_place(|| log.finish());
            }
            tokio::task::block_in_place(|| app.finish()).map_err(|e| anyhow!("{e}"))?;
            drop(data);
            let _ = std::fs::remove_dir_all(&dir);
            result
        } else {
            let url = args
                .url
                .clone()
                .unwrap_or_else(|| "http://127.0.0.1:8080".into());
            check_loopback(&url)?;
            let token = args
                .token
                .clone()
                .ok_or_else(|| anyhow!("give --token of a GP actor, or use --spawn"))?;
            drive(&args, &url, &token, &token).await
        }
    })
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| anyhow!("{e}"))?;
    let dir = std::env::temp_dir().join(format!("careledger-load-{}", hex::encode(bytes)));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

struct Shared {
    client: reqwest::Client,
    url: String,
    token: String,
    prefix: String,
    remaining: AtomicU64,
    stop: AtomicBool,
    acked_at: AckTimes,
    /// The last position subscribers must reach; 0 while the load runs.
    until: AtomicU64,
    /// Appends acknowledged so far.
    acked: AtomicU64,
    /// Subscribers whose subscription was answered (or failed): the load starts when all are.
    subscribed: AtomicU64,
    errors: Mutex<HashMap<String, u64>>,
}

impl Shared {
    fn error(&self, what: String) {
        *self.errors.lock().entry(what).or_default() += 1;
    }
}

async fn drive(args: &LoadArgs, url: &str, token: &str, reader_token: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections + args.plan_readers + 4)
        .build()?;
    let mut prefix = [0u8; 4];
    getrandom::fill(&mut prefix).map_err(|e| anyhow!("{e}"))?;
    let shared = Arc::new(Shared {
        client,
        url: url.to_owned(),
        token: token.to_owned(),
        prefix: format!("load-{}", hex::encode(prefix)),
        remaining: AtomicU64::new(args.events),
        stop: AtomicBool::new(false),
        acked_at: AckTimes::new(args.events.min(ACK_SLOTS) as usize + 1024),
        until: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        subscribed: AtomicU64::new(0),
        errors: Mutex::new(HashMap::new()),
    });
    let patients = args.patients.max(1);
    // Found every patient's care team first; this is not measured.
    for p in 0..patients {
        let body = json!({"commands": [{"type": "start_shared_care", "arrangement": "load", "reason": "load"}]});
        let r = shared
            .client
            .post(format!("{url}/patients/{}-{p}/events", shared.prefix))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "founding patient {p} failed: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
    }
    let start_position = head(&shared).await?;
    shared.acked_at.base.store(start_position, Ordering::SeqCst);
    let subscribers: Vec<_> = (0..args.subscribers)
        .map(|_| {
            tokio::spawn(subscribe(
                shared.clone(),
                reader_token.to_owned(),
                start_position,
            ))
        })
        .collect();
    // Delivery delays are measured on live subscriptions: the load starts once every subscriber
    // is connected (1,000 connections take a while), or after 30 s.
    let connecting = Instant::now();
    while shared.subscribed.load(Ordering::SeqCst) < args.subscribers as u64
        && connecting.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let per_connection_rate = if args.rate == 0 {
        0.0
    } else {
        args.rate as f64 / args.connections.max(1) as f64
    };
    let appenders: Vec<_> = (0..args.connections.max(1))
        .map(|c| {
            tokio::spawn(append_loop(
                shared.clone(),
                c,
                patients,
                deadline,
                per_connection_rate,
            ))
        })
        .collect();
    let readers: Vec<_> = (0..args.plan_readers)
        .map(|r| {
            tokio::spawn(read_loop(
                shared.clone(),
                reader_token.to_owned(),
                r,
                patients,
            ))
        })
        .collect();
    let sampler = tokio::spawn(sample_memory(shared.clone(), started));
    let mut append_latency = Samples::default();
    for a in appenders {
        append_latency.0.extend(a.await?.0);
    }
    let elapsed = started.elapsed();
    shared.stop.store(true, Ordering::SeqCst);
    let mut plan_latency = Samples::default();
    for r in readers {
        plan_latency.0.extend(r.await?.0);
    }
    let end_position = head(&shared).await?;
    shared.until.store(end_position.max(1), Ordering::SeqCst);
    let memory = sampler.await?;
    let appended = append_latency.0.len() as u64;
    println!(
        "appends:     {appended} events in {:.2} s = {:.0} events/s; {}",
        elapsed.as_secs_f64(),
        appended as f64 / elapsed.as_secs_f64(),
        append_latency.summary()
    );
    if args.plan_readers > 0 {
        println!(
            "plan reads:  {} in {:.2} s = {:.0} reads/s; {}",
            plan_latency.0.len(),
            elapsed.as_secs_f64(),
            plan_latency.0.len() as f64 / elapsed.as_secs_f64(),
            plan_latency.summary()
        );
    }
    let mut missed = 0;
    let mut delivery = Samples::default();
    for s in subscribers {
        let (positions, delays) = tokio::time::timeout(Duration::from_secs(30), s)
            .await
            .map_err(|_| anyhow!("a subscriber did not catch up within 30 s"))???;
        let expected: Vec<u64> = (start_position + 1..=end_position).collect();
        if positions != expected {
            missed += 1;
        }
        delivery.0.extend(delays.0);
    }
    if args.subscribers > 0 {
        println!("subscribers: {} each received {} events; {} incomplete or out of order; delivery after acknowledgement: {}", args.subscribers, end_position - start_position, missed, delivery.summary());
    }
    if let (Some(warm), Some(last)) = (memory.get(memory.len() / 3), memory.last()) {
        let events = last.1.saturating_sub(warm.1);
        let grown = last.0.saturating_sub(warm.0) * 1024;
        println!(
            "memory:      rss after warm-up {} KiB, at the end {} KiB, {events} events appended in between ({} bytes per event)",
            warm.0,
            last.0,
            grown / events.max(1)
        );
    }
    let errors = shared.errors.lock().clone();
    if !errors.is_empty() {
        println!("errors: {errors:?}");
    }
    if !errors.is_empty() || missed > 0 {
        bail!("the load ended with errors or incomplete subscribers");
    }
    Ok(())
}

/// Resident memory of this process in KiB (`VmRSS`), 0 where `/proc` is not available.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

/// Samples (rss KiB, acknowledged appends) every second until the appenders are done.
async fn sample_memory(shared: Arc<Shared>, started: Instant) -> Vec<(u64, u64)> {
    let _ = started;
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !shared.stop.load(Ordering::SeqCst) {
        tick.tick().await;
        samples.push((rss_kib(), shared.acked.load(Ordering::SeqCst)));
    }
    samples
}

/// The ledger's head position, as a page of the global log gives it to any reader (`/health`
/// gives it to auditors only).
async fn head(shared: &Shared) -> anyhow::Result<u64> {
    let r: Value = shared
        .client
        .get(format!("{}/events?after=0&limit=1", shared.url))
        .bearer_auth(&shared.token)
        .send()
        .await?
        .json()
        .await?;
    r["head"]
        .as_u64()
        .ok_or_else(|| anyhow!("unexpected /events answer {r}"))
}

async fn append_loop(
    shared: Arc<Shared>,
    connection: usize,
    patients: usize,
    deadline: Instant,
    rate: f64,
) -> Samples {
    let mut samples = Samples::default();
    let mut n = 0u64;
    let interval = (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate));
    let mut next = Instant::now();
    while Instant::now() < deadline {
        if shared
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| r.checked_sub(1))
            .is_err()
        {
            break;
        }
        if let Some(interval) = interval {
            next += interval;
            tokio::time::sleep_until(next.into()).await;
        }
        let patient = (connection + n as usize * 7) % patients;
        n += 1;
        let body = json!({"commands": [{"type": "record_measurement", "measure": "systolic_bp", "value": format!("{}", 110 + n % 60),
            "unit": "mm[Hg]", "source": "practice", "reason": "load: routine CVRM check at the practice"}]});
        let sent = Instant::now();
        let response = shared
            .client
            .post(format!(
                "{}/patients/{}-{patient}/events",
                shared.url, shared.prefix
            ))
            .bearer_auth(&shared.token)
            .json(&body)
            .send()
            .await;
        match response {
            Ok(r) if r.status() == 201 => {
                let acked = Instant::now();
                samples
                    .0
                    .push(acked.duration_since(sent).as_micros() as u64);
                shared.acked.fetch_add(1, Ordering::SeqCst);
                if let Ok(body) = r.json::<Value>().await {
                    if let Some(position) = body["events"][0]["position"].as_u64() {
                        shared.acked_at.record(position, acked);
                    }
                }
            }
            Ok(r) => shared.error(format!("append {}", r.status())),
            Err(e) => shared.error(format!("append transport: {e}")),
        }
    }
    samples
}

async fn read_loop(shared: Arc<Shared>, token: String, reader: usize, patients: usize) -> Samples {
    let mut samples = Samples::default();
    let mut n = reader;
    while !shared.stop.load(Ordering::SeqCst) {
        let url = format!(
            "{}/patients/{}-{}/plan",
            shared.url,
            shared.prefix,
            n % patients
        );
        n += 1;
        let sent = Instant::now();
        match shared.client.get(url).bearer_auth(&token).send().await {
            Ok(r) if r.status() == 200 => {
                let _ = r.bytes().await;
                samples.0.push(sent.elapsed().as_micros() as u64);
            }
            Ok(r) => shared.error(format!("plan {}", r.status())),
            Err(e) => shared.error(format!("plan transport: {e}")),
        }
    }
    samples
}

/// A subscriber: reads the stream from `after` until it has seen `shared.until` (once that is
/// known); returns the positions received, in order, and each one's delay after acknowledgement.
async fn subscribe(
    shared: Arc<Shared>,
    token: String,
    after: u64,
) -> anyhow::Result<(Vec<u64>, Samples)> {
    let connected = RawSse::open(&shared.url, &token, after).await;
    shared.subscribed.fetch_add(1, Ordering::SeqCst);
    let mut sse = connected?;
    let mut buffer: Vec<u8> = Vec::new();
    let mut positions = Vec::new();
    let mut delays = Samples::default();
    // Wake now and then to see whether the end is known, even when no event arrives (one timer
    // for the whole subscription: a timeout per read armed a timer for every chunk).
    let mut look = tokio::time::interval(Duration::from_millis(100));
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let until = shared.until.load(Ordering::SeqCst);
        if until != 0 && positions.last().copied().unwrap_or(after) >= until {
            return Ok((positions, delays));
        }
        // Only the new bytes (and the newline before them) can complete a block.
        let mut search = buffer.len().saturating_sub(1);
        tokio::select! {
            open = sse.read(&mut buffer) => {
                if !open? {
                    return Ok((positions, delays));
                }
            }
            _ = look.tick() => continue,
        }
        let received = Instant::now();
        let mut start = 0;
        while let Some(end) = find_blank_line(&buffer, search) {
            if let Some(position) = sse_id(&buffer[start..end]) {
                if let Some(acked) = shared.acked_at.get(position) {
                    delays
                        .0
                        .push(received.saturating_duration_since(acked).as_micros() as u64);
                }
                positions.push(position);
            }
            start = end + 2;
            search = start;
        }
        buffer.drain(..start);
    }
}

/// An SSE subscription read straight from its HTTP/1.1 connection. A thousand subscribers share
/// the cores with the server they measure; an HTTP client library hands each chunk from its
/// connection task to the reader's task through a channel, two task wake-ups per chunk.
struct RawSse {
    socket: tokio::net::TcpStream,
    /// Bytes read and not yet decoded.
    raw: Vec<u8>,
    chunked: Chunked,
}

impl RawSse {
    /// `GET /events/stream?after=` with the token; fails unless the answer is 200 and chunked.
    async fn open(url: &str, token: &str, after: u64) -> anyhow::Result<RawSse> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let parsed = reqwest::Url::parse(url).with_context(|| format!("{url:?}"))?;
        let host = parsed.host_str().context("the URL has no host")?;
        let port = parsed
            .port_or_known_default()
            .context("the URL has no port")?;
        // `socket_addrs` takes IPv6 hosts without their brackets; the Host header keeps them.
        let addresses = parsed.socket_addrs(|| None)?;
        let mut socket = tokio::net::TcpStream::connect(&*addresses).await?;
        socket.set_nodelay(true)?;
        let request = format!(
            "GET /events/stream?after={after} HTTP/1.1\r\nHost: {host}:{port}\r\n\
             Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await?;
        let mut raw = Vec::with_capacity(64 * 1024);
        let head_end = loop {
            if let Some(i) = memchr::memmem::find(&raw, b"\r\n\r\n") {
                break i;
            }
            if raw.len() > 16 * 1024 {
                bail!("subscribing: no end of the response head in 16 KiB");
            }
            if socket.read_buf(&mut raw).await? == 0 {
                bail!("subscribing: the server closed the connection");
            }
        };
        let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
        let status = head.lines().next().unwrap_or_default().to_owned();
        if !status.starts_with("http/1.1 200") {
            bail!("subscribing failed: {status}");
        }
        if !head.lines().any(|l| l == "transfer-encoding: chunked") {
            bail!("subscribing: the stream is not chunked");
        }
        raw.drain(..head_end + 4);
        Ok(RawSse {
            socket,
            raw,
            chunked: Chunked::default(),
        })
    }

    /// Reads what the server sent next and appends its content to `out`; false at the end.
    /// Cancel-safe: nothing read is lost when the future is dropped.
    async fn read(&mut self, out: &mut Vec<u8>) -> anyhow::Result<bool> {
        use tokio::io::AsyncReadExt;
        let before = out.len();
        // Bytes that came with the response head, or an incomplete piece read earlier.
        if self.chunked.decode(&mut self.raw, out)? {
            return Ok(false);
        }
        if out.len() > before {
            return Ok(true);
        }
        if self.raw.capacity() - self.raw.len() < 16 * 1024 {
            self.raw.reserve(64 * 1024);
        }
        if self.socket.read_buf(&mut self.raw).await? == 0 {
            return Ok(false);
        }
        Ok(!self.chunked.decode(&mut self.raw, out)?)
    }
}

/// HTTP/1.1 chunked transfer coding, decoded as it arrives.
#[derive(Default)]
struct Chunked {
    /// Bytes of the current chunk still to come; `None` while a size line is expected.
    remaining: Option<usize>,
}

impl Chunked {
    /// Moves the content of every whole piece of `raw` to `out`, keeping an incomplete size line
    /// or chunk end in `raw`; true once the last (empty) chunk was read.
    fn decode(&mut self, raw: &mut Vec<u8>, out: &mut Vec<u8>) -> anyhow::Result<bool> {
        let mut at = 0;
        let ended = loop {
            match self.remaining {
                None => {
                    let Some(line) = memchr::memmem::find(&raw[at..], b"\r\n") else {
                        break false;
                    };
                    let size = std::str::from_utf8(&raw[at..at + line])
                        .ok()
                        .and_then(|l| l.split(';').next())
                        .and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok())
                        .with_context(|| {
                            format!(
                                "a chunk size line {:?}",
                                String::from_utf8_lossy(&raw[at..at + line])
                            )
                        })?;
                    at += line + 2;
                    if size == 0 {
                        break true;
                    }
                    self.remaining = Some(size);
                }
                Some(0) => {
                    if raw.len() - at < 2 {
                        break false;
                    }
                    if &raw[at..at + 2] != b"\r\n" {
                        bail!("a chunk does not end in CRLF");
                    }
                    at += 2;
                    self.remaining = None;
                }
                Some(left) => {
                    let n = left.min(raw.len() - at);
                    if n == 0 {
                        break false;
                    }
                    out.extend_from_slice(&raw[at..at + n]);
                    at += n;
                    self.remaining = Some(left - n);
                }
            }
        };
        raw.drain(..at);
        Ok(ended)
    }
}

/// Where the next `\n\n` at or after `from` starts (a vectorised search: a thousand subscribers
/// scan every byte the server sends, on the same cores as the server).
fn find_blank_line(buffer: &[u8], from: usize) -> Option<usize> {
    // Built once: `memmem::find` builds its searcher on every call.
    static BLANK_LINE: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\n\n"));
    BLANK_LINE.find(buffer.get(from..)?).map(|i| i + from)
}

/// The `id:` of an SSE block, as a position.
fn sse_id(block: &[u8]) -> Option<u64> {
    let line = block
        .split(|b| *b == b'\n')
        .find_map(|l| l.strip_prefix(b"id: "))?;
    std::str::from_utf8(line).ok()?.trim().parse().ok()
}

/// Most acknowledgement times kept for the delivery delays.
const ACK_SLOTS: u64 = 4_000_000;

/// When each position after `base` was acknowledged: written once by its appender, read by every
/// subscriber without a lock (a map behind one mutex made the subscribers queue on it).
struct AckTimes {
    start: Instant,
    base: AtomicU64,
    /// Nanoseconds after `start`, plus one; zero while unknown.
    slots: Vec<AtomicU64>,
}

impl AckTimes {
    fn new(slots: usize) -> Self {
        AckTimes {
            start: Instant::now(),
            base: AtomicU64::new(u64::MAX),
            slots: (0..slots).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot(&self, position: u64) -> Option<&AtomicU64> {
        let first = self.base.load(Ordering::SeqCst).checked_add(1)?;
        let index = position.checked_sub(first)?;
        self.slots.get(usize::try_from(index).ok()?)
    }

    fn record(&self, position: u64, at: Instant) {
        if let Some(slot) = self.slot(position) {
            let nanos = at.saturating_duration_since(self.start).as_nanos() as u64;
            slot.store(nanos + 1, Ordering::Release);
        }
    }

    fn get(&self, position: u64) -> Option<Instant> {
        let nanos = self.slot(position)?.load(Ordering::Acquire);
        (nanos > 0).then(|| self.start + Duration::from_nanos(nanos - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::{find_blank_line, sse_id, Chunked};

    #[test]
    fn chunked_content_is_decoded_however_the_bytes_arrive() {
        let (first, second) = (&b"id: 7\nevent: recorded\ndata: "[..], &b"{}\n\n"[..]);
        let mut wire = format!("{:x}\r\n", first.len()).into_bytes();
        wire.extend_from_slice(first);
        wire.extend_from_slice(format!("\r\n{:x};ext=1\r\n", second.len()).as_bytes());
        wire.extend_from_slice(second);
        wire.extend_from_slice(b"\r\n0\r\n\r\n");
        let content = b"id: 7\nevent: recorded\ndata: {}\n\n";
        for piece in 1..=wire.len() {
            let (mut chunked, mut raw, mut out) = (Chunked::default(), Vec::new(), Vec::new());
            let mut ended = false;
            // What follows the last chunk (the trailer's empty line) is not content.
            for bytes in wire.chunks(piece) {
                raw.extend_from_slice(bytes);
                ended = chunked.decode(&mut raw, &mut out).unwrap();
                if ended {
                    break;
                }
            }
            assert!(ended, "pieces of {piece}: the last chunk ends the stream");
            assert_eq!(out, content, "pieces of {piece}");
        }
        let mut raw = b"zz\r\n".to_vec();
        assert!(Chunked::default()
            .decode(&mut raw, &mut Vec::new())
            .is_err());
        let mut raw = b"2\r\nabXY".to_vec();
        assert!(Chunked::default()
            .decode(&mut raw, &mut Vec::new())
            .is_err());
    }

    #[test]
    fn sse_blocks_are_found_where_they_end_and_give_their_id() {
        let stream =
            b"id: 7\nevent: recorded\ndata: {}\n\nid: 8\ndata: {\"a\":1}\n\n: heartbeat\n\nid: 9\n";
        let first = find_blank_line(stream, 0).unwrap();
        assert_eq!(&stream[first..first + 2], b"\n\n");
        assert_eq!(sse_id(&stream[..first]), Some(7));
        let second = find_blank_line(stream, first + 2).unwrap();
        assert_eq!(sse_id(&stream[first + 2..second]), Some(8));
        let third = find_blank_line(stream, second + 2).unwrap();
        assert_eq!(
            sse_id(&stream[second + 2..third]),
            None,
            "a comment has no id"
        );
        assert_eq!(
            find_blank_line(stream, third + 2),
            None,
            "the last block is incomplete"
        );
        assert_eq!(find_blank_line(stream, stream.len() + 1), None);
    }
}
