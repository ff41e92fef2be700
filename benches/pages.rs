//! What the pages cost on the server: the plan page and the timeline of a patient with 1,000
//! events, rendered to HTML from the read models (the target is under 20 ms each).
//!
//! `cargo bench --bench pages` writes one patient's history (the care team, a target, a statin,
//! then measurements and notes as the other benchmarks write them), folds the read models, and
//! times rendering each page to its HTML string.

mod common;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};

use careledger_api::pages::{plan::render_plan, timeline::render_timeline, PageLang, Reader};
use careledger_app::actors::{AccessRole, RegisteredActor};
use careledger_core::ids::{ActorId, Text};
use careledger_core::record::Timestamp;
use careledger_core::role::Role;
use careledger_projections::labels::Lang;
use careledger_projections::{ProjectionConfig, ReadModel};

use common::{open, patient, write_plan_history};

const EVENTS: u64 = 1_000;

fn pages(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let who = patient(1);
    write_plan_history(&ledger, &who, EVENTS);
    let mut model = ReadModel::default();
    for e in &ledger.read_stream(&who, 1, usize::MAX).unwrap() {
        model.apply(e);
    }
    let view = model.patient(&who).unwrap();
    assert_eq!(view.audit.len() as u64, EVENTS);
    let reader = Reader {
        caller: RegisteredActor::new(
            ActorId::parse("gp-1").unwrap(),
            Text::new("A. Jansen").unwrap(),
            AccessRole::Care(Role::Gp),
        ),
        csrf: "0".repeat(64),
        lang: PageLang {
            lang: Lang::Nl,
            chosen: false,
        },
        secure: false,
    };
    let signals = careledger_projections::signals::signals(
        view,
        &ProjectionConfig::default(),
        Timestamp::now(),
    );
    let mut group = c.benchmark_group("pages, 1,000 events");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    group.bench_function("plan page", |b| {
        b.iter(|| {
            render_plan(&reader, &who, view, &signals, false)
                .into_string()
                .len()
        })
    });
    group.bench_function("timeline", |b| {
        b.iter(|| render_timeline(&reader, &who, view).into_string().len())
    });
    group.finish();
}

criterion_group!(benches, pages);
criterion_main!(benches);
