//! The read models on disk behind a bounded cache give exactly the views of a full fold in
//! memory, whatever the history and however small the cache; the indexes across patients agree
//! with a scan of every view; the cache keeps to its budget.
//!
//! Randomised: the seed is printed, and `CARELEDGER_SEED=<n>` replays a run.

use std::collections::BTreeSet;
use std::path::Path;

use careledger_core::event::*;
use careledger_core::ids::{ActorId, AtcCode, PatientId, Text};
use careledger_core::quantity::{Measure, Quantity};
use careledger_core::role::{Lead, Line, Practitioner, Role};
use careledger_core::{Actor, AppendRequest, ExpectedRevision, Ledger, LedgerConfig, Submission};
use careledger_projections::{fhir_key, ProjectionConfig, Projections, ReadModel};

/// splitmix64: a small generator whose whole state is the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    let seed = match std::env::var("CARELEDGER_SEED") {
        Ok(s) => s.parse().expect("CARELEDGER_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    eprintln!("seed {seed} (replay with CARELEDGER_SEED={seed})");
    seed
}

fn actor(id: &str, role: Role, name: &str) -> Actor {
    Actor {
        id: ActorId::parse(id).unwrap(),
        role,
        name: Text::new(name).unwrap(),
        organisation: None,
    }
}

fn gp() -> Actor {
    actor("gp-1", Role::Gp, "A. Jansen")
}

fn cardiologist() -> Actor {
    actor("card-1", Role::Cardiologist, "J. de Vries")
}

/// A GP outside every care team, who breaks the glass now and then.
fn outsider() -> Actor {
    actor("gp-9", Role::Gp, "H. Smit")
}

fn member(a: &Actor, lead: Lead, practitioner: Practitioner) -> Command {
    Command::AddCareTeamMember(Member {
        actor: a.id.clone(),
        name: a.name.clone(),
        agb: None,
        role: a.role,
        lead,
        practitioner,
    })
}

/// One command for a patient, drawn from `r`: some are refused by the rules (a cardiologist not
/// yet in the team), which writes nothing.
fn command(r: u64) -> (Actor, Command) {
    match r % 9 {
        0 => (
            gp(),
            member(&cardiologist(), Lead::OrganDisease, Practitioner::Main),
        ),
        1 | 2 => (
            gp(),
            Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: Text::new("CVRM follow-up").unwrap(),
                body: Text::new(
                    "Blood pressure at target; lifestyle advice repeated."
                        .repeat(1 + (r / 9 % 4) as usize),
                )
                .unwrap(),
            }),
        ),
        3 => (
            cardiologist(),
            Command::StartMedication(Medication {
                atc: AtcCode::parse("C10AA05").unwrap(),
                name: Text::new("atorvastatin").unwrap(),
                dose: Dose::parse("40", DoseUnit::Mg).unwrap(),
                frequency: Text::new("1x daily").unwrap(),
                indication: None,
            }),
        ),
        4 | 5 => (
            gp(),
            Command::RecordMeasurement(Measurement {
                value: Quantity::new(Measure::SystolicBloodPressure, 120 + (r / 9 % 60) as i64)
                    .unwrap(),
                source: MeasurementSource::Practice,
            }),
        ),
        6 => (
            outsider(),
            Command::BreakGlass(EmergencyAccess {
                hours: EmergencyAccess::DEFAULT_HOURS,
            }),
        ),
        7 => (
            gp(),
            Command::StartSharedCare(SharedCare {
                arrangement: Text::new("CVRM by the GP, heart failure by cardiology").unwrap(),
            }),
        ),
        _ => (
            gp(),
            Command::SetTarget(Target {
                comparator: careledger_core::quantity::Comparator::AtMost,
                value: Quantity::new(Measure::LdlCholesterol, 18).unwrap(),
                basis: TargetBasis::EscGuideline,
                rationale: Text::new("high risk").unwrap(),
            }),
        ),
    }
}

fn append(ledger: &Ledger, patient: &PatientId, who: &Actor, commands: Vec<Command>) {
    let _refused_or_written = ledger.append(AppendRequest {
        patient: patient.clone(),
        expected: ExpectedRevision::Any,
        actor: who.clone(),
        submissions: commands
            .into_iter()
            .map(|command| Submission {
                command,
                occurred_at: None,
                reason: Text::new("consultation").unwrap(),
            })
            .collect(),
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    });
}

/// Every view the ledger's events fold into, in memory.
fn full_fold(ledger: &Ledger) -> ReadModel {
    let mut model = ReadModel::default();
    for event in ledger.read_all(0, usize::MAX).unwrap() {
        model.apply(&event);
    }
    model
}

fn tiny(config_bytes: u64) -> ProjectionConfig {
    ProjectionConfig {
        view_cache_bytes: config_bytes,
        ..ProjectionConfig::default()
    }
}

/// The indexes answer what a scan of every view answers.
fn indexes_agree(projections: &Projections, model: &ReadModel) {
    let scan = |keep: &dyn Fn(&careledger_projections::PatientView) -> bool| -> Vec<PatientId> {
        model
            .patients
            .iter()
            .filter(|(_, v)| keep(v))
            .map(|(p, _)| p.clone())
            .collect()
    };
    let sorted = |mut v: Vec<PatientId>| {
        v.sort();
        v
    };
    assert_eq!(
        projections.patients().unwrap(),
        model.patients.keys().cloned().collect::<Vec<_>>(),
        "every patient"
    );
    for who in [gp(), cardiologist(), outsider()] {
        assert_eq!(
            sorted(projections.patients_of(&who.id).unwrap()),
            scan(&|v| v.plan.care_team.iter().any(|m| m.actor == who.id)),
            "the patients of {}",
            who.id
        );
        assert_eq!(
            sorted(projections.emergency_patients_of(&who.id).unwrap()),
            scan(&|v| v
                .plan
                .emergency_access
                .iter()
                .any(|e| e.opened.actor == who.id)),
            "the uses of the glass by {}",
            who.id
        );
    }
    for line in [Line::First, Line::Second, Line::Patient, Line::CareGroup] {
        assert_eq!(
            sorted(projections.patients_notifying(line).unwrap()),
            scan(&|v| v.notifications.iter().any(|n| {
                n.recipient == line && n.status == careledger_projections::NotificationStatus::Open
            })),
            "open notifications to {line:?}"
        );
    }
    for (patient, view) in &model.patients {
        let key = fhir_key(view).expect("a patient with events has a key");
        assert_eq!(
            projections.patient_by_fhir_key(&key).unwrap().as_ref(),
            Some(patient),
            "the FHIR key of {patient}"
        );
        let team: Vec<(ActorId, Role)> = view
            .plan
            .care_team
            .iter()
            .map(|m| (m.actor.clone(), m.role))
            .collect();
        assert_eq!(projections.care_team(patient).unwrap(), Some(team));
    }
}

fn same_views(projections: &Projections, ledger: &Ledger, when: &str) {
    projections.apply_new(ledger).unwrap();
    let expected = full_fold(ledger);
    let got = projections.to_read_model().unwrap();
    assert_eq!(got.checkpoint, expected.checkpoint, "{when}: checkpoint");
    assert_eq!(
        got.patients.keys().collect::<Vec<_>>(),
        expected.patients.keys().collect::<Vec<_>>(),
        "{when}: patients"
    );
    for (patient, view) in &expected.patients {
        assert_eq!(
            &got.patients[patient], view,
            "{when}: the view of {patient}"
        );
    }
    indexes_agree(projections, &expected);
}

fn open(at: &Path, config: ProjectionConfig) -> Projections {
    Projections::open(at, config).unwrap()
}

#[test]
fn a_cache_that_evicts_every_view_gives_the_views_of_a_full_fold_after_any_history() {
    let mut rng = Rng(seed());
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        let at = dir.path().join("projections");
        // One byte: every view is evicted as soon as it is stored.
        let config = tiny(1);
        let mut projections = open(&at, config);
        let patients: Vec<PatientId> = (0..2 + rng.below(12))
            .map(|i| PatientId::parse(&format!("patient-{i}")).unwrap())
            .collect();
        let mut founded = BTreeSet::new();
        let appends = 40 + rng.below(160);
        for i in 0..appends {
            let patient = &patients[rng.below(patients.len() as u64) as usize];
            if founded.insert(patient.clone()) {
                append(
                    &ledger,
                    patient,
                    &gp(),
                    vec![member(&gp(), Lead::Cvrm, Practitioner::Main)],
                );
            } else {
                let commands = 1 + rng.below(3);
                let mut who = gp();
                let mut batch = Vec::new();
                let r = rng.next();
                for c in 0..commands {
                    let (actor, command) = command(r.rotate_left(c as u32 * 7));
                    if c == 0 {
                        who = actor.clone();
                    }
                    if actor.id == who.id {
                        batch.push(command);
                    }
                }
                append(&ledger, patient, &who, batch);
            }
            match rng.below(12) {
                0..=3 => {
                    projections.apply_new(&ledger).unwrap();
                }
                4 => projections.persist().unwrap(),
                5 => {
                    // A restart: what was persisted, caught up from its checkpoint.
                    projections.persist().unwrap();
                    drop(projections);
                    projections = open(&at, config);
                    projections.catch_up(&ledger).unwrap();
                }
                _ => {}
            }
            if i % 37 == 0 {
                // Changed views still unstored: the indexes take them from the cache.
                same_views(&projections, &ledger, &format!("round {round}, append {i}"));
            }
        }
        same_views(&projections, &ledger, &format!("round {round}, the end"));
        projections.persist().unwrap();
        assert_eq!(
            projections.cache_stats().views,
            0,
            "round {round}: with a cache of one byte every stored view is evicted"
        );
        same_views(
            &projections,
            &ledger,
            &format!("round {round}, all evicted"),
        );

        // A rebuild through the same tiny cache: a pass per few patients.
        let rebuilt = open(&dir.path().join("rebuilt"), config);
        rebuilt.rebuild(&ledger, &mut |_, _| {}).unwrap();
        assert_eq!(rebuilt.checkpoint(), ledger.head().position);
        same_views(&rebuilt, &ledger, &format!("round {round}, rebuilt"));
        drop(rebuilt);
        let reopened = open(&dir.path().join("rebuilt"), config);
        same_views(
            &reopened,
            &ledger,
            &format!("round {round}, rebuilt and reopened"),
        );
    }
}

#[test]
fn the_cache_keeps_to_its_budget_once_its_views_are_stored() {
    let mut rng = Rng(seed());
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
    let budget = 48 * 1024;
    let projections = open(&dir.path().join("projections"), tiny(budget));
    let patients: Vec<PatientId> = (0..40)
        .map(|i| PatientId::parse(&format!("patient-{i}")).unwrap())
        .collect();
    for patient in &patients {
        append(
            &ledger,
            patient,
            &gp(),
            vec![member(&gp(), Lead::Cvrm, Practitioner::Main)],
        );
    }
    for _ in 0..600 {
        let patient = &patients[rng.below(patients.len() as u64) as usize];
        let (who, command) = command(1 + rng.below(2) * 3 + rng.below(2) * 9);
        append(&ledger, patient, &who, vec![command]);
        projections.apply_new(&ledger).unwrap();
        let stats = projections.cache_stats();
        // Over the budget only by views not yet stored.
        assert!(
            stats.bytes <= budget + projections.dirty_bytes(),
            "{stats:?} with {} bytes dirty",
            projections.dirty_bytes()
        );
    }
    projections.persist().unwrap();
    let stats = projections.cache_stats();
    assert!(stats.bytes <= budget, "{stats:?}");
    assert!(
        stats.views > 0 && stats.views < patients.len() as u64,
        "some views cached, not all: {stats:?}"
    );
    // Reading every patient in turn keeps within the budget too.
    for patient in &patients {
        assert!(projections.view(patient).unwrap().is_some());
        let stats = projections.cache_stats();
        assert!(stats.bytes <= budget, "{stats:?}");
    }
}
