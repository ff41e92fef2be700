//! Criterion benchmarks of the embedded ledger: durable appends (one writer, concurrent
//! writers sharing group commits, batches of 100 commands), full-chain verification, reading a
//! patient's stream, and the projections: rebuilding them from zero and reading a plan.
//!
//! Run with `cargo bench --bench ledger`; CI only compiles them (`cargo bench --no-run`).

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use common::{command, fill, found_patients, open, patient, request};

fn appends(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));

    group.throughput(Throughput::Elements(1));
    group.bench_function("single_writer", |b| {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        found_patients(&ledger, 1);
        let mut i = 0;
        b.iter(|| {
            i += 1;
            ledger
                .append(request(patient(0), vec![command(i)]))
                .unwrap()
        });
    });

    for writers in [8u64, 64] {
        for shared in [false, true] {
            let name = if shared {
                "shared_patient"
            } else {
                "own_patient"
            };
            group.bench_with_input(
                BenchmarkId::new(format!("concurrent_{name}"), writers),
                &writers,
                |b, &writers| {
                    let dir = tempfile::tempdir().unwrap();
                    let ledger = Arc::new(open(dir.path()));
                    found_patients(&ledger, writers);
                    b.iter_custom(|iters| concurrent(&ledger, writers, iters, shared));
                },
            );
        }
    }

    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_100", |b| {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path());
        found_patients(&ledger, 100);
        let mut i = 0u64;
        b.iter(|| {
            let subs = (i..i + 100).map(command).collect();
            let p = patient((i / 100) % 100);
            i += 100;
            ledger.append(request(p, subs)).unwrap()
        });
    });
    group.finish();
}

/// `iters` single-event appends spread over `writers` threads; returns the wall time.
fn concurrent(
    ledger: &Arc<careledger_core::Ledger>,
    writers: u64,
    iters: u64,
    shared: bool,
) -> Duration {
    let next = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..writers {
            let ledger = Arc::clone(ledger);
            let next = &next;
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= iters {
                    break;
                }
                let p = if shared { patient(0) } else { patient(w) };
                ledger.append(request(p, vec![command(i)])).unwrap();
            });
        }
    });
    start.elapsed()
}

fn verification(c: &mut Criterion) {
    const EVENTS: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    found_patients(&ledger, 1000);
    fill(&ledger, 1000, EVENTS - 1000, 100);
    let total = ledger.head().position;
    let mut group = c.benchmark_group("verify");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6));
    group.throughput(Throughput::Elements(total));
    group.bench_function(BenchmarkId::new("full_chain", total), |b| {
        b.iter(|| {
            let report = ledger.verify(&mut |_, _| {}).unwrap();
            assert!(report.is_intact());
            report
        })
    });
    group.finish();
}

fn reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    found_patients(&ledger, 100);
    // 100 patients of about 1,000 events each, interleaved as a practice would write them.
    fill(&ledger, 100, 99_900, 100);
    let stream = ledger
        .read_stream(&patient(7), 1, usize::MAX)
        .unwrap()
        .len() as u64;
    let mut group = c.benchmark_group("read");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(stream));
    group.bench_function(BenchmarkId::new("patient_stream", stream), |b| {
        b.iter(|| ledger.read_stream(&patient(7), 1, usize::MAX).unwrap())
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("patient_state", |b| {
        b.iter(|| ledger.patient_state(&patient(7)).unwrap())
    });
    group.finish();
}

fn projections(c: &mut Criterion) {
    use careledger_projections::{ProjectionConfig, Projections};
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir.path().join("ledger"));
    found_patients(&ledger, 40);
    // 40 patients of about 500 events each; a rebuild is a few tens of milliseconds.
    fill(&ledger, 40, 19_960, 100);
    let total = ledger.head().position;
    let projections =
        Projections::open(&dir.path().join("projections"), ProjectionConfig::default()).unwrap();
    let mut group = c.benchmark_group("projections");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    // Clears the read models, folds every event and writes every patient's view.
    group.throughput(Throughput::Elements(total));
    group.bench_function(BenchmarkId::new("rebuild_from_zero", total), |b| {
        b.iter(|| projections.rebuild(&ledger, &mut |_, _| {}).unwrap())
    });
    // What `GET /patients/{id}/plan` does when the rendered plan is not cached: the patient's
    // view from the read model, rendered to JSON.
    group.throughput(Throughput::Elements(1));
    group.bench_function("plan", |b| {
        b.iter(|| {
            let view = projections.view(&patient(7)).unwrap().unwrap();
            let readings = projections.config().trend_readings;
            serde_json::to_string(&careledger_api::wire::PlanView::new(
                &patient(7),
                &view.plan,
                readings,
            ))
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, appends, verification, reads, projections);
criterion_main!(benches);
