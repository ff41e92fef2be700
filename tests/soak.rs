//! A sustained, bounded load with subscribers attached: writes at a steady rate, plan reads and
//! three SSE subscribers for two minutes (`CARELEDGER_SOAK_SECONDS` to change), against a server on
//! loopback. It ends with no error, every subscriber received exactly the ledger's events in order
//! (checked by `careledger loadtest` itself), and memory grows only with the data stored.

use std::process::Command;

#[test]
fn two_minutes_of_writes_reads_and_subscribers_end_without_error_loss_or_leak() {
    let seconds = std::env::var("CARELEDGER_SOAK_SECONDS").unwrap_or_else(|_| "120".into());
    let output = Command::new(env!("CARGO_BIN_EXE_careledger"))
        .args([
            "loadtest",
            "--spawn",
            "--seconds",
            &seconds,
            "--events",
            "1000000000",
            "--rate",
            "200",
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
    // Memory after warm-up grows with the events stored (sled's cache and the in-memory read
    // models), not with the number of requests: bound it per appended event.
    let line = report
        .lines()
        .find(|l| l.starts_with("memory:"))
        .expect("a memory line");
    let per_event: u64 = line
        .rsplit('(')
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        per_event < 16 * 1024,
        "memory grew by {per_event} bytes per event: {line}"
    );
}
