//! The floor under SSE delivery on this machine: the same fan-out as the server's event feed,
//! with nothing of careledger in it.
//!
//! `cargo bench --bench fanout` (`-- --subscribers N --rate R --seconds S --size B`; defaults
//! 1,000 subscribers, 1,000 messages/s, 5 s, 300-byte messages). A producer publishes one message
//! every 1/R s to a shared list and wakes the connections through a `watch` channel, as
//! `run_feed` does; each connection's task writes every message it has not yet sent in one
//! `write_all` to its TCP socket (`TCP_NODELAY`), as an SSE subscriber does; the subscribers read
//! over loopback in the same process and record the delay from publication to arrival. No HTTP,
//! no SSE framing, no JSON, no ledger, no appends: if this misses a delay target, careledger's
//! feed cannot meet it on the same machine with its subscribers on the same cores.
//! Loopback only; stops after the set time.

use std::collections::VecDeque;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Settings {
    subscribers: usize,
    rate: u64,
    seconds: u64,
    size: usize,
}

fn settings() -> Settings {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Settings {
        subscribers: value("--subscribers", 1000) as usize,
        rate: value("--rate", 1000).max(1),
        seconds: value("--seconds", 5).max(1),
        size: (value("--size", 300) as usize).max(16),
    }
}

/// Published messages: (sequence number, bytes), the newest last.
type Published = Arc<RwLock<VecDeque<(u64, Arc<[u8]>)>>>;

fn main() {
    let s = settings();
    // Two worker threads: the machine's two cores, as the server's default runtime.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(s));
}

async fn run(s: Settings) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let published: Published = Arc::default();
    let (newest, watching) = tokio::sync::watch::channel(0u64);
    let start = Instant::now();

    // The server side: one task per connection, woken by the watch channel.
    let accepting = {
        let published = published.clone();
        let subscribers = s.subscribers;
        tokio::spawn(async move {
            for _ in 0..subscribers {
                let (socket, _) = listener.accept().await.unwrap();
                socket.set_nodelay(true).unwrap();
                tokio::spawn(serve(socket, published.clone(), watching.clone()));
            }
        })
    };

    // The subscribers: read whole messages and record publication-to-arrival delays.
    let total = s.rate * s.seconds;
    let mut readers = Vec::with_capacity(s.subscribers);
    for _ in 0..s.subscribers {
        let socket = TcpStream::connect(address).await.unwrap();
        readers.push(tokio::spawn(subscribe(socket, s.size, total, start)));
    }
    accepting.await.unwrap();

    // The producer: one message every 1/rate s, stamped with its publication time.
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / s.rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let began = Instant::now();
    for seq in 1..=total {
        tick.tick().await;
        let mut message = vec![0u8; s.size];
        message[..8].copy_from_slice(&seq.to_le_bytes());
        let at = start.elapsed().as_nanos() as u64;
        message[8..16].copy_from_slice(&at.to_le_bytes());
        {
            let mut list = published.write().unwrap();
            list.push_back((seq, message.into()));
            while list.len() > 4096 {
                list.pop_front();
            }
        }
        newest.send_replace(seq);
    }
    let published_in = began.elapsed();

    let mut delays = Vec::new();
    for reader in readers {
        delays.extend(reader.await.unwrap());
    }
    let received_in = began.elapsed();
    delays.sort_unstable();
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q) as usize] as f64 / 1e6;
    println!(
        "{} subscribers, {} messages of {} bytes at {}/s: published in {:.2} s, all received in {:.2} s",
        s.subscribers,
        total,
        s.size,
        s.rate,
        published_in.as_secs_f64(),
        received_in.as_secs_f64()
    );
    println!(
        "  publication to arrival over {} deliveries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        delays.len(),
        at(0.50),
        at(0.99),
        at(1.0)
    );
}

/// One connection: whenever something new was published, write all of it in one go.
async fn serve(
    mut socket: TcpStream,
    published: Published,
    mut newest: tokio::sync::watch::Receiver<u64>,
) {
    let mut sent = 0u64;
    let mut chunk = Vec::new();
    while newest.changed().await.is_ok() {
        chunk.clear();
        {
            let list = published.read().unwrap();
            for (seq, bytes) in list.iter() {
                if *seq > sent {
                    chunk.extend_from_slice(bytes);
                    sent = *seq;
                }
            }
        }
        if !chunk.is_empty() && socket.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

/// One subscriber: the delay of each message, in nanoseconds, until `total` have arrived.
async fn subscribe(mut socket: TcpStream, size: usize, total: u64, start: Instant) -> Vec<u64> {
    let mut delays = Vec::with_capacity(total as usize);
    let mut buffer = vec![0u8; 256 * 1024];
    let mut filled = 0;
    while (delays.len() as u64) < total {
        let n = socket.read(&mut buffer[filled..]).await.unwrap();
        assert!(n > 0, "the connection closed early");
        filled += n;
        let now = start.elapsed().as_nanos() as u64;
        let whole = filled / size * size;
        for message in buffer[..whole].chunks_exact(size) {
            let at = u64::from_le_bytes(message[8..16].try_into().unwrap());
            delays.push(now.saturating_sub(at));
        }
        buffer.copy_within(whole..filled, 0);
        filled -= whole;
    }
    delays
}
