//! How the ledger's costs grow with its size, and the machine figures they depend on.
//!
//! `cargo bench --bench scale` prints the machine (cores, fsync cost), group-commit throughput
//! (appends per second against syncs per second for 1, 8 and 64 writers, and batches of 100),
//! then builds ledgers of 10k, 100k and 1M events, each in a child process so that its peak
//! memory is its own, and reports append latency at that size, full verification time, disk
//! bytes per event and peak memory.
//!
//! Sizes: `CARELEDGER_SCALE_SIZES=10000,100000` (default `10000,100000,1000000`). The sizes
//! stop after `CARELEDGER_SCALE_LIMIT_S` seconds in all (default 600; the default sizes take
//! about a minute on a 2-core machine).
//! One size only, in this process: `cargo bench --bench scale -- --size 100000`.
//! A fixed workload for instruction counts (batches of 100 commands, 20,000 events):
//! `valgrind --tool=callgrind target/release/deps/scale-* --batches-only 20000`, and
//! single-event appends to one patient: `... --single-appends 5000`.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use careledger_core::chain::HEADER_LEN;
use careledger_core::Ledger;

use common::{command, fill, found_patients, open, patient, request};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--size") {
        let size = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(10_000);
        one_size(size);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--batches-only") {
        // A fixed amount of work for instruction counts: `valgrind --tool=callgrind`.
        let events = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(20_000);
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        found_patients(&ledger, 100);
        fill(&ledger, 100, events, 100);
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--single-appends") {
        // Single-event appends to one patient whose stream grows: instruction counts.
        let appends = args
            .get(i + 1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(5_000);
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        found_patients(&ledger, 1);
        for a in 0..appends {
            ledger
                .append(request(patient(0), vec![command(a)]))
                .unwrap();
        }
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--writers") {
        // One group-commit case of single-event writers, for profiles and `perf stat`.
        let writers = args.get(i + 1).and_then(|s| s.parse().ok()).unwrap_or(64);
        group_commit_cases(&[(writers, 1, 40_000)]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    machine();
    group_commit();
    sled_floor();
    let sizes =
        std::env::var("CARELEDGER_SCALE_SIZES").unwrap_or_else(|_| "10000,100000,1000000".into());
    println!("\n== growth with ledger size (each size in its own process) ==");
    println!(
        "{:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>11} {:>9} {:>9} {:>9} {:>9}",
        "events",
        "build ev/s",
        "app p50 us",
        "app p99 us",
        "app max us",
        "verify s",
        "verify ev/s",
        "sled B/ev",
        "du B/ev",
        "frame B",
        "peak MiB"
    );
    let exe = std::env::current_exe().unwrap();
    let limit_s = std::env::var("CARELEDGER_SCALE_LIMIT_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600u64);
    let deadline = Instant::now() + Duration::from_secs(limit_s);
    for size in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<u64>().ok())
    {
        let mut child = std::process::Command::new(&exe)
            .arg("--size")
            .arg(size.to_string())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        match status {
            Some(status) => assert!(status.success(), "size {size} failed"),
            None => {
                println!(
                    "{size:>9} stopped: the run exceeded {limit_s} s (CARELEDGER_SCALE_LIMIT_S)"
                );
                break;
            }
        }
    }
}

fn machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let dir = tempfile::tempdir().unwrap();
    let runs: Vec<u64> = (0..5)
        .map(|_| common::fsync_cost_ns(dir.path(), 200))
        .collect();
    let mut sorted = runs.clone();
    sorted.sort_unstable();
    println!("== machine ==");
    println!("cpu: {model}, {cores} cores");
    println!(
        "write 4 KiB + fdatasync: median {:.1} us (runs of 200: {:?} ns)",
        sorted[2] as f64 / 1e3,
        runs
    );
}

/// Appends per second against syncs per second: proof that concurrent appenders share syncs.
fn group_commit() {
    println!("\n== durable appends, group commit ==");
    println!(
        "{:>22} {:>10} {:>12} {:>10} {:>14} {:>14}",
        "case", "events", "events/s", "syncs/s", "appends/sync", "cpu us/event"
    );
    group_commit_cases(&[
        (1, 1, 2_000),
        (8, 1, 20_000),
        (64, 1, 40_000),
        (1, 100, 500),
        (4, 100, 1_000),
    ]);
}

/// Runs `(writers, events per append, appends)` cases and prints a line for each.
fn group_commit_cases(cases: &[(u64, u64, u64)]) {
    for &(writers, per_append, appends) in cases {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(open(dir.path()));
        found_patients(&ledger, writers.max(100));
        let syncs = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&syncs);
        ledger.on_durable(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        });
        let cpu_before = common::cpu_us();
        let (elapsed, events) = run_writers(&ledger, writers, per_append, appends);
        let cpu_per_event = (common::cpu_us() - cpu_before) as f64 / events as f64;
        let secs = elapsed.as_secs_f64();
        let syncs = syncs.load(Ordering::Relaxed);
        let case = format!("{writers} writer(s) x {per_append}/append");
        println!(
            "{case:>22} {events:>10} {:>12.0} {:>10.0} {:>14.1} {:>14.1}",
            events as f64 / secs,
            syncs as f64 / secs,
            appends as f64 / syncs.max(1) as f64,
            cpu_per_event
        );
    }
}

/// What sled alone costs for the same writes as a batch of 100 single-event commands: per
/// event one frame of ~350 bytes and one stream-index entry, one `apply_batch` per 100 events,
/// then a flush and an fdatasync, as the ledger does. No rules, encoding or hashing: the
/// ceiling the ledger cannot pass on this storage.
fn sled_floor() {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(1024 * 1024 * 1024)
        .flush_every_ms(None)
        .open()
        .unwrap();
    let data = std::fs::File::open(dir.path().join("db")).unwrap();
    let frame = vec![0x5au8; 350];
    let batches = 500u64;
    let mut commit = Duration::ZERO;
    let start = Instant::now();
    for b in 0..batches {
        let t = Instant::now();
        let mut batch = sled::Batch::default();
        // As the ledger stores a batch: values of up to 16 frames each (a group: a marker byte,
        // then each frame behind its u32 length), one stream index entry holding the 100
        // positions.
        let mut positions = Vec::with_capacity(800);
        for first in (0..100u64).step_by(16) {
            let mut group = Vec::with_capacity(1 + 16 * (4 + frame.len()));
            group.push(0xFF);
            for i in first..(first + 16).min(100) {
                group.extend_from_slice(&(frame.len() as u32).to_be_bytes());
                group.extend_from_slice(&frame);
                positions.extend_from_slice(&(b * 100 + i + 1).to_be_bytes());
            }
            let mut key = vec![b'e'];
            key.extend_from_slice(&(b * 100 + first + 1).to_be_bytes());
            batch.insert(key, group);
        }
        let mut index = vec![b's', 16];
        index.extend_from_slice(format!("patient-{:08}", b % 100).as_bytes());
        index.extend_from_slice(&(b / 100 * 100 + 1).to_be_bytes());
        batch.insert(index, positions);
        db.apply_batch(batch).unwrap();
        commit += t.elapsed();
        db.flush().unwrap();
        data.sync_data().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let events = (batches * 100) as f64;
    println!(
        "{:>22} {:>10} {:>12.0}   (sled apply_batch alone: {:.1} us/event, {:.0} events/s)",
        "sled only x 100/batch",
        batches * 100,
        events / secs,
        commit.as_secs_f64() * 1e6 / events,
        events / commit.as_secs_f64()
    );
}

fn run_writers(ledger: &Ledger, writers: u64, per_append: u64, appends: u64) -> (Duration, u64) {
    let next = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let next = &next;
            s.spawn(move || loop {
                let a = next.fetch_add(1, Ordering::Relaxed);
                if a >= appends {
                    break;
                }
                let first = a * per_append;
                let subs = (first..first + per_append).map(command).collect();
                let p = if writers == 1 {
                    patient(a % 100)
                } else {
                    patient(w)
                };
                ledger.append(request(p, subs)).unwrap();
            });
        }
    });
    (start.elapsed(), appends * per_append)
}

fn one_size(size: u64) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    // A practice-sized spread: about 1,000 events per patient.
    let patients = (size / 1_000).max(10);
    let start = Instant::now();
    found_patients(&ledger, patients);
    fill(&ledger, patients, size - patients, 100);
    let build = start.elapsed();
    let events = ledger.head().position;

    let mut latencies_us: Vec<u64> = (0..1_000u64)
        .map(|i| {
            let t = Instant::now();
            ledger
                .append(request(patient(i % patients), vec![command(size + i)]))
                .unwrap();
            t.elapsed().as_micros() as u64
        })
        .collect();
    latencies_us.sort_unstable();
    let pct = |p: usize| latencies_us[(latencies_us.len() * p / 100).min(latencies_us.len() - 1)];

    let total = ledger.head().position;
    let start = Instant::now();
    let report = ledger.verify(&mut |_, _| {}).unwrap();
    let verify = start.elapsed();
    assert!(report.is_intact() && report.verified == total);

    let mut frame_bytes = 0u64;
    let sample = ledger.read_all(0, 10_000).unwrap();
    for e in &sample {
        frame_bytes += (HEADER_LEN
            + careledger_core::record::encode_record(&e.record)
                .unwrap()
                .len()) as u64;
    }
    let frame_avg = frame_bytes / sample.len().max(1) as u64;
    let sled_bytes = ledger.size_on_disk().unwrap();
    drop(ledger);
    let du = common::du_bytes(dir.path());
    println!(
        "{:>9} {:>10.0} {:>10} {:>10} {:>10} {:>10.2} {:>11.0} {:>9} {:>9} {:>9} {:>9}",
        total,
        events as f64 / build.as_secs_f64(),
        pct(50),
        pct(99),
        latencies_us[latencies_us.len() - 1],
        verify.as_secs_f64(),
        total as f64 / verify.as_secs_f64(),
        sled_bytes / total,
        du / total,
        frame_avg,
        common::peak_rss_kib() / 1024
    );
}
