//! Projection rebuild from zero: events folded per second into the plan, audit trail,
//! notifications and signals, including writing them to the projections' database.
//!
//! `cargo bench --bench rebuild` (sizes: `CARELEDGER_REBUILD_EVENTS`, default 100000).

mod common;

use std::time::Instant;

use careledger_projections::{ProjectionConfig, Projections};

fn main() {
    let events: u64 = std::env::var("CARELEDGER_REBUILD_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let patients = (events / 500).max(1);
    let dir = tempfile::tempdir().unwrap();
    let ledger = common::open(&dir.path().join("ledger"));
    common::found_patients(&ledger, patients);
    common::fill(&ledger, patients, events, 100);
    let head = ledger.head().position;
    for run in 1..=3 {
        let projections = Projections::open(
            &dir.path().join(format!("projections-{run}")),
            ProjectionConfig::default(),
        )
        .unwrap();
        let started = Instant::now();
        let applied = projections.rebuild(&ledger, &mut |_, _| {}).unwrap();
        let elapsed = started.elapsed();
        assert_eq!(applied, head);
        println!(
            "rebuild run {run}: {applied} events over {patients} patients in {:.2} s = {:.0} events/s",
            elapsed.as_secs_f64(),
            applied as f64 / elapsed.as_secs_f64()
        );
    }
}
