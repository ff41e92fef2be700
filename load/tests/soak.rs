//! A sustained, bounded load with subscribers attached: writes at a steady rate, plan reads as fast
//! as they go and three SSE subscribers for two minutes (`CARELEDGER_SOAK_SECONDS` to change),
//! against a server on loopback. It ends with no error, every subscriber received exactly the
//! ledger's events in order (checked by `careledger-load` itself), and memory stays flat: the
//! requests leave nothing behind (the stored data grows by a few megabytes in the run).

use std::process::Command;

#[test]
#[ignore = "a two-minute soak; run by .ci/run with `cargo test -p careledger-load -- --ignored`"]
fn two_minutes_of_writes_reads_and_subscribers_end_without_error_loss_or_leak() {
    let seconds = std::env::var("CARELEDGER_SOAK_SECONDS").unwrap_or_else(|_| "120".into());
    let output = Command::new(env!("CARGO_BIN_EXE_careledger-load"))
        .args([
            "--spawn",
            "--seconds",
            &seconds,
            "--events",
            "1000000000",
            "--rate",
            "25",
            "--connections",
            "4",
            "--patients",
            "32",
            "--subscribers",
            "3",
            "--plan-readers",
            "2",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("0 incomplete or out of order"), "{report}");
    assert!(!report.contains("errors:"), "{report}");
    // Resident memory after warm-up (a third into the run) and at the end: flat within a quarter,
    // plus room for the few megabytes of events stored and the load generator's own latency buffers.
    let line = report
        .lines()
        .find(|l| l.starts_with("memory:"))
        .expect("a memory line");
    let kib = |label: &str| -> u64 {
        let rest = line.split(label).nth(1).unwrap();
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let (warm, end) = (kib("after warm-up "), kib("at the end "));
    assert!(
        end <= warm + warm / 4 + 24 * 1024,
        "memory grew from {warm} KiB to {end} KiB: {line}"
    );
}
