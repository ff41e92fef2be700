//! Projection rebuild from zero: events folded per second into the plan, audit trail,
//! notifications and signals, including writing them to the projections' database.
//!
//! `cargo bench --bench rebuild` (sizes: `CARELEDGER_REBUILD_EVENTS`, default 100000). The ledger
//! is built once; it is rebuilt three times in fresh processes that open it from disk, as
//! `careledger rebuild` does, then three times in one process. Each run also times opening the
//! rebuilt projections again, which loads every stored view (what a restart costs). With
//! `CARELEDGER_REBUILD_DIR` the ledger is kept in that directory, and
//! `rebuild-<hash> --rebuild-only <dir>` rebuilds from it alone (for profiles).

mod common;

/// The `careledger` binary's allocator, so that the figures are those of the program shipped.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::time::Instant;

use careledger_projections::{ProjectionConfig, Projections};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--rebuild-only") {
        // A fresh process, as `careledger rebuild` is: open the ledger, rebuild, report.
        let dir = std::path::PathBuf::from(&args[i + 1]);
        let ledger = common::open(&dir.join("ledger"));
        rebuild_once(
            &ledger,
            &dir.join(format!("projections-{}", std::process::id())),
            "fresh process",
        );
        println!(
            "  peak memory of that process: {} MiB",
            common::peak_rss_kib() / 1024
        );
        return;
    }
    let events: u64 = std::env::var("CARELEDGER_REBUILD_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    if let Some(i) = args.iter().position(|a| a == "--build-only") {
        let dir = std::path::PathBuf::from(&args[i + 1]);
        let patients = (events / 500).max(1);
        let ledger = common::open(&dir.join("ledger"));
        common::found_patients(&ledger, patients);
        common::fill(&ledger, patients, events, 100);
        println!("{events} events over {patients} patients");
        return;
    }
    let temporary = tempfile::tempdir().unwrap();
    // `CARELEDGER_REBUILD_DIR` keeps the ledger there, for profiling `--rebuild-only <dir>`.
    let kept = std::env::var_os("CARELEDGER_REBUILD_DIR").map(std::path::PathBuf::from);
    let dir = kept.as_deref().unwrap_or(temporary.path());
    let exe = std::env::current_exe().unwrap();
    // The ledger is written by a process of its own, which has ended (its sled threads with it)
    // before the rebuilds start, as a server has before `careledger rebuild` runs.
    let child = |what: &str| {
        let status = std::process::Command::new(&exe)
            .arg(what)
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "{what} failed");
    };
    child("--build-only");
    // Each in a process of its own, the ledger opened from disk: what `careledger rebuild` does.
    for _ in 0..3 {
        child("--rebuild-only");
    }
    // Then three runs in this process, one after the other.
    let ledger = common::open(&dir.join("ledger"));
    for run in 1..=3 {
        rebuild_once(
            &ledger,
            &dir.join(format!("projections-{run}")),
            &format!("run {run} in one process"),
        );
    }
}

/// Rebuilds the read models from `ledger` into a new projections database at `at`.
fn rebuild_once(ledger: &careledger_core::Ledger, at: &std::path::Path, what: &str) {
    let projections = Projections::open(at, ProjectionConfig::default()).unwrap();
    let started = Instant::now();
    let applied = projections.rebuild(ledger, &mut |_, _| {}).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(applied, ledger.head().position);
    println!(
        "rebuild, {what}: {applied} events in {:.3} s = {:.0} events/s",
        elapsed.as_secs_f64(),
        applied as f64 / elapsed.as_secs_f64()
    );
    // What a restart costs afterwards: opening the projections reads their checkpoint; views
    // are read from disk as they are asked for.
    drop(projections);
    let started = Instant::now();
    let reopened = Projections::open(at, ProjectionConfig::default()).unwrap();
    let elapsed = started.elapsed();
    assert_eq!(reopened.checkpoint(), applied);
    println!(
        "  opening the stored read models again: {:.3} s = {:.0} events/s",
        elapsed.as_secs_f64(),
        applied as f64 / elapsed.as_secs_f64()
    );
}
