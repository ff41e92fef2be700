//! What the FHIR export of one patient costs: `GET /fhir/Patient/{id}/$everything` for a
//! patient with 1,000 events (the target is under 50 ms).
//!
//! `cargo bench --bench fhir` writes one patient's history (`CARELEDGER_FHIR_EVENTS`, 1,000 by
//! default: the care team, a target, a statin, then measurements and notes as the other
//! benchmarks write them), folds the read models, and reports, over 50 rounds, the median and
//! the slowest of:
//!
//! - reading the patient's events from the ledger (what the route does first);
//! - building the Bundle from the read models and the events;
//! - building it and writing its JSON (what the route answers), with the JSON's size.

mod common;

use std::time::{Duration, Instant};

use careledger_projections::ReadModel;

use common::{open, patient, write_plan_history};

const ROUNDS: usize = 50;
const TARGET: Duration = Duration::from_millis(50);

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn measure(label: &str, mut f: impl FnMut() -> usize) -> usize {
    let mut times = Vec::with_capacity(ROUNDS);
    let mut size = 0;
    for _ in 0..ROUNDS {
        let t = Instant::now();
        size = f();
        times.push(t.elapsed());
    }
    times.sort();
    let median = times[ROUNDS / 2];
    let slowest = times[ROUNDS - 1];
    println!(
        "{label}: median {:.2} ms, slowest {:.2} ms{}",
        median.as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3,
        if median < TARGET {
            ""
        } else {
            " (over the 50 ms target)"
        }
    );
    size
}

fn main() {
    let events = env("CARELEDGER_FHIR_EVENTS", 1_000);
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let who = patient(1);
    write_plan_history(&ledger, &who, events);
    let stream = ledger.read_stream(&who, 1, usize::MAX).unwrap();
    let mut model = ReadModel::default();
    for e in &stream {
        model.apply(e);
    }
    let view = model.patient(&who).unwrap();
    println!("one patient, {} events", stream.len());

    measure("read the patient's events", || {
        ledger.read_stream(&who, 1, usize::MAX).unwrap().len()
    });
    let request = careledger_fhir::Request {
        base: "http://localhost:8080/fhir",
        self_url: "http://localhost:8080/fhir/Patient/x/$everything",
        since: None,
    };
    let resources = measure("build the Bundle", || {
        careledger_fhir::everything(&who, view, &stream, request)
            .entry
            .len()
    });
    let bytes = measure("build the Bundle and write its JSON", || {
        let bundle = careledger_fhir::everything(&who, view, &stream, request);
        serde_json::to_vec(&bundle).unwrap().len()
    });
    println!("the Bundle: {resources} resources, {bytes} bytes of JSON");
}
