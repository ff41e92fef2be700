//! What a checkpoint with the heads map costs, and what it costs appends.
//!
//! `cargo bench --bench checkpoint` builds a ledger of 10,000 patients and 100,000 events
//! (`CARELEDGER_CHECKPOINT_PATIENTS`, `CARELEDGER_CHECKPOINT_EVENTS`), then reports:
//!
//! - the first checkpoint after a start: the heads map read from position 1 and hashed;
//! - a checkpoint after 1,000 more events of existing patients (the changed leaves' paths
//!   hashed again), and after 1,000 events with 100 new patients among them (the tree hashed
//!   again from the kept leaf hashes), each the whole `issue_with_heads`: read the new events,
//!   hash, sign, write and sync the file;
//! - the export of one patient (which reads the ledger up to the checkpoint for the heads map)
//!   and its verification;
//! - durable appends (one writer, batches of 100) with a checkpointer signing every 1,000
//!   events against none, alternating.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use careledger_core::checkpoint::{issue_with_heads, CheckpointConfig, Checkpointer, LogKey};
use careledger_core::heads::HeadsMap;
use careledger_core::Ledger;

use common::{command, cpu_us, found_patients, open, patient, request};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `events` follow-up events of `patients` founded patients (from patient `first`), 10 to an
/// append, each append to the next patient.
fn follow_ups(ledger: &Ledger, first: u64, patients: u64, events: u64) {
    let mut i = 0;
    let mut p = 0;
    while i < events {
        let n = 10.min(events - i);
        let subs = (i..i + n).map(command).collect();
        ledger
            .append(request(patient(first + p % patients), subs))
            .unwrap();
        i += n;
        p += 1;
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let patients = env("CARELEDGER_CHECKPOINT_PATIENTS", 10_000);
    let events = env("CARELEDGER_CHECKPOINT_EVENTS", 100_000);
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let started = Instant::now();
    found_patients(&ledger, patients);
    follow_ups(&ledger, 0, patients, events - patients);
    let size = ledger.head().position;
    println!(
        "ledger: {patients} patients, {size} events, written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let key = LogKey::from_seed("bench.example/log", &[0x11; 32]).unwrap();
    let file = dir.path().join("checkpoint");

    let t = Instant::now();
    let mut map = HeadsMap::build(&ledger, size).unwrap();
    let read = t.elapsed();
    let t = Instant::now();
    let line = map.line().unwrap();
    let hashed = t.elapsed();
    println!(
        "first checkpoint's heads map: read {size} events {}, hash {} leaves {}",
        ms(read),
        line.count,
        ms(hashed)
    );
    let t = Instant::now();
    let mut heads = HeadsMap::new();
    issue_with_heads(&ledger, &key, &file, size, &mut heads).unwrap();
    println!(
        "first checkpoint after a start (issue_with_heads from nothing): {}",
        ms(t.elapsed())
    );

    let mut existing = Vec::new();
    let mut added = Vec::new();
    let mut next_patient = patients;
    for round in 0..5 {
        follow_ups(&ledger, round * 100, patients, 1_000);
        let size = ledger.head().position;
        let t = Instant::now();
        issue_with_heads(&ledger, &key, &file, size, &mut heads).unwrap();
        existing.push(t.elapsed());

        found_patients_from(&ledger, next_patient, 100);
        follow_ups(&ledger, 0, patients, 900);
        next_patient += 100;
        let size = ledger.head().position;
        let t = Instant::now();
        issue_with_heads(&ledger, &key, &file, size, &mut heads).unwrap();
        added.push(t.elapsed());
    }
    // The heads map's part alone: read 1,000 new events of existing patients and hash the paths.
    let mut alone = Vec::new();
    for round in 0..5 {
        follow_ups(&ledger, round * 100, patients, 1_000);
        let size = ledger.head().position;
        let t = Instant::now();
        heads.advance(&ledger, size).unwrap();
        heads.line().unwrap();
        alone.push(t.elapsed());
    }
    println!(
        "the heads map alone, 1,000 events of existing patients: median {} (five: {})",
        ms(median(alone.clone())),
        alone.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
    );
    println!(
        "checkpoint after 1,000 events of existing patients: median {} (five: {})",
        ms(median(existing.clone())),
        existing
            .iter()
            .map(|d| ms(*d))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "checkpoint after 1,000 events with 100 new patients: median {} (five: {})",
        ms(median(added.clone())),
        added.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(", ")
    );

    // A checkpoint of everything, for the export.
    let size = ledger.head().position;
    issue_with_heads(&ledger, &key, &file, size, &mut heads).unwrap();
    let note = std::fs::read_to_string(&file).unwrap();
    let t = Instant::now();
    let bundle = careledger_core::export::export_patient(&ledger, &patient(7), &note).unwrap();
    let exported = t.elapsed();
    let t = Instant::now();
    careledger_core::export::verify(&bundle, &key.verifier_key(), &[]).unwrap();
    println!(
        "export of one patient ({} events) at {} events: {}; its verification {}",
        bundle.events.len(),
        ledger.head().position,
        ms(exported),
        ms(t.elapsed())
    );
    drop(ledger);
    appends_with_and_without_checkpoints();
}

fn found_patients_from(ledger: &Ledger, first: u64, count: u64) {
    for p in first..first + count {
        ledger
            .append(request(patient(p), vec![common::found_team()]))
            .unwrap();
    }
}

/// One writer, batches of 100, 50,000 events over 1,000 patients: with a checkpointer signing
/// every 1,000 events, and without; alternating, twice each.
fn appends_with_and_without_checkpoints() {
    for round in 0..4 {
        let checkpoints = round % 2 == 0;
        let dir = tempfile::tempdir().unwrap();
        let ledger = Arc::new(open(dir.path()));
        found_patients(&ledger, 1_000);
        let checkpointer = checkpoints.then(|| {
            let key = LogKey::from_seed("bench.example/log", &[0x11; 32]).unwrap();
            let config = CheckpointConfig {
                every_events: 1_000,
                every: Duration::from_secs(10),
            };
            Checkpointer::start(ledger.clone(), key, dir.path().join("checkpoint"), config).unwrap()
        });
        let cpu = cpu_us();
        let t = Instant::now();
        let mut i = 0;
        while i < 50_000 {
            let subs = (i..i + 100).map(command).collect();
            ledger
                .append(request(patient((i / 100) % 1_000), subs))
                .unwrap();
            i += 100;
        }
        let wall = t.elapsed();
        if let Some(c) = &checkpointer {
            c.wait_for(ledger.head().position, Duration::from_secs(30));
        }
        drop(checkpointer);
        let cpu = cpu_us() - cpu;
        println!(
            "appends, batches of 100, 50,000 events, checkpoints {}: {:.0} events/s, CPU {:.2} s (checkpoints' included)",
            if checkpoints { "every 1,000 events" } else { "off" },
            50_000.0 / wall.as_secs_f64(),
            cpu as f64 / 1e6
        );
    }
}
