//! The cache's estimate of a view's memory is not below what the decoded views really take
//! from the heap, measured with a counting allocator (alone in this test binary, so that no
//! other test's allocations are counted).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicI64, Ordering};

use careledger_core::event::*;
use careledger_core::ids::{ActorId, PatientId, Text};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::role::{Lead, Practitioner, Role};
use careledger_core::{Actor, AppendRequest, ExpectedRevision, Ledger, LedgerConfig, Submission};
use careledger_projections::{ProjectionConfig, Projections};

/// The system allocator, counting the bytes in use.
struct Counting;

static IN_USE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a counter is added.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn gp() -> Actor {
    Actor {
        id: ActorId::parse("gp-1").unwrap(),
        role: Role::Gp,
        name: Text::new("A. Jansen").unwrap(),
        organisation: None,
    }
}

fn cardiologist() -> Actor {
    Actor {
        id: ActorId::parse("card-1").unwrap(),
        role: Role::Cardiologist,
        name: Text::new("J. de Vries").unwrap(),
        organisation: None,
    }
}

/// `actor` joins the care team as the main practitioner of `lead`.
fn main_member(actor: Actor, lead: Lead) -> Command {
    Command::AddCareTeamMember(Member {
        actor: actor.id,
        name: actor.name,
        agb: None,
        role: actor.role,
        lead,
        practitioner: Practitioner::Main,
    })
}

fn append(ledger: &Ledger, patient: &PatientId, command: Command) {
    append_by(ledger, patient, gp(), command);
}

fn append_by(ledger: &Ledger, patient: &PatientId, actor: Actor, command: Command) {
    ledger
        .append(AppendRequest {
            patient: patient.clone(),
            expected: ExpectedRevision::Any,
            actor,
            submissions: vec![Submission {
                command,
                occurred_at: None,
                reason: Text::new("quarterly consultation").unwrap(),
            }],
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        })
        .unwrap();
}

/// Which patients are in shared care, and which of their events are the cardiologist's.
#[derive(Clone, Copy, Debug)]
enum Mix {
    /// The GP's notes and measurements only: no notifications.
    GpOnly,
    /// Half the patients in shared care, a third of their events the cardiologist's targets.
    Half,
    /// Every patient in shared care, every event a target that notifies the GP: the most
    /// notifications, each sharing its audit entry's message.
    Targets,
}

impl Mix {
    fn shared(self, patient: usize) -> bool {
        match self {
            Mix::GpOnly => false,
            Mix::Half => patient % 2 == 1,
            Mix::Targets => true,
        }
    }

    fn targets(self, event: usize) -> bool {
        match self {
            Mix::GpOnly => false,
            Mix::Half => event % 3 == 2,
            Mix::Targets => true,
        }
    }
}

/// One test, the populations in turn: the counting allocator counts every thread.
#[test]
fn the_estimate_of_cached_views_is_not_below_their_heap() {
    for mix in [Mix::GpOnly, Mix::Half, Mix::Targets] {
        estimate_holds(mix);
    }
}

fn estimate_holds(mix: Mix) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
    let patients: Vec<PatientId> = (0..30)
        .map(|i| PatientId::parse(&format!("patient-{i}")).unwrap())
        .collect();
    for (i, patient) in patients.iter().enumerate() {
        append(&ledger, patient, main_member(gp(), Lead::Cvrm));
        // Views from a few events to a few hundred: notes and measurements, and in shared care
        // the cardiologist's targets, each notifying the GP.
        let shared = mix.shared(i);
        if shared {
            append(
                &ledger,
                patient,
                main_member(cardiologist(), Lead::OrganDisease),
            );
        }
        for j in 0..(i * i / 3 + 2) {
            if shared && mix.targets(j) {
                append_by(
                    &ledger,
                    patient,
                    cardiologist(),
                    Command::SetTarget(Target {
                        comparator: Comparator::AtMost,
                        value: Quantity::new(Measure::LdlCholesterol, 18 + j as i64 % 10).unwrap(),
                        basis: TargetBasis::Individual,
                        rationale: Text::new("high risk, ESC").unwrap(),
                    }),
                );
                continue;
            }
            let command = if j % 2 == 0 {
                Command::AddNote(Note {
                    kind: NoteKind::Note,
                    subject: Text::new("CVRM follow-up").unwrap(),
                    body: Text::new(format!("Blood pressure {j} at target.")).unwrap(),
                })
            } else {
                Command::RecordMeasurement(Measurement {
                    value: Quantity::new(Measure::SystolicBloodPressure, 110 + j as i64 % 70)
                        .unwrap(),
                    source: MeasurementSource::Practice,
                })
            };
            append(&ledger, patient, command);
        }
    }
    let at = dir.path().join("projections");
    let written = Projections::open(&at, ProjectionConfig::default()).unwrap();
    written.catch_up(&ledger).unwrap();
    drop(written);

    let projections = Projections::open(&at, ProjectionConfig::default()).unwrap();
    // sled's page cache takes what it reads: read everything once, so that only the views are
    // counted below.
    for patient in &patients {
        projections.view(patient).unwrap().unwrap();
    }
    projections.evict_stored();
    assert_eq!(projections.cache_stats().views, 0);
    let mut held = Vec::new();
    let before = IN_USE.load(Ordering::Relaxed);
    for patient in &patients {
        held.push(projections.view(patient).unwrap().unwrap());
    }
    let heap = IN_USE.load(Ordering::Relaxed) - before;
    let notifications: usize = held.iter().map(|v| v.notifications.len()).sum();
    assert_eq!(
        notifications > 100,
        !matches!(mix, Mix::GpOnly),
        "{notifications} notifications in the views of {mix:?}"
    );
    let stats = projections.cache_stats();
    assert_eq!(stats.views, patients.len() as u64);
    eprintln!(
        "{mix:?}: {} views: {heap} bytes on the heap, estimated {}",
        stats.views, stats.bytes
    );
    assert!(
        stats.bytes as i64 >= heap,
        "the estimate {} is below the heap the views take, {heap}",
        stats.bytes
    );
    assert!(
        (stats.bytes as i64) < heap * 3,
        "the estimate {} is far above the heap the views take, {heap}: the cache holds less than its budget allows",
        stats.bytes
    );
    drop(held);
}
