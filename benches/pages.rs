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
use careledger_core::event::{Command, Dose, DoseUnit, Medication, Target, TargetBasis};
use careledger_core::ids::{ActorId, AtcCode, Text};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::Timestamp;
use careledger_core::role::Role;
use careledger_core::Submission;
use careledger_projections::labels::Lang;
use careledger_projections::{ProjectionConfig, ReadModel};

use common::{command, found_team, open, patient, request};

const EVENTS: u64 = 1_000;

fn submission(command: Command, reason: &str) -> Submission {
    Submission {
        command,
        occurred_at: None,
        reason: Text::new(reason).unwrap(),
    }
}

fn pages(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let who = patient(1);
    let founding = vec![
        found_team(),
        submission(
            Command::SetTarget(Target {
                comparator: Comparator::AtMost,
                value: Quantity::new(Measure::LdlCholesterol, 18).unwrap(),
                basis: TargetBasis::EscGuideline,
                rationale: Text::new("high risk after MI").unwrap(),
            }),
            "return letter",
        ),
        submission(
            Command::StartMedication(Medication {
                atc: AtcCode::parse("C10AA05").unwrap(),
                name: Text::new("atorvastatin").unwrap(),
                dose: Dose::new(40_000, DoseUnit::Mg).unwrap(),
                frequency: Text::new("1x daily").unwrap(),
                indication: None,
            }),
            "secondary prevention",
        ),
    ];
    let founded = founding.len() as u64;
    ledger.append(request(who.clone(), founding)).unwrap();
    let mut i = 0;
    while i < EVENTS - founded {
        let n = 10.min(EVENTS - founded - i);
        ledger
            .append(request(who.clone(), (i..i + n).map(command).collect()))
            .unwrap();
        i += n;
    }
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
