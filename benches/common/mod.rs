//! Workload shared by the benchmarks: realistic commands of about 300 record bytes, ledgers
//! in temporary directories, and helpers to read the machine's figures.
#![allow(dead_code)]

use std::path::Path;

use careledger_core::event::{
    Command, Dose, DoseUnit, Measurement, MeasurementSource, Medication, Member, Note, NoteKind,
    Target, TargetBasis,
};
use careledger_core::ids::{ActorId, AtcCode, PatientId, Text};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::role::{Lead, Practitioner, Role};
use careledger_core::{
    Actor, AppendRequest, ExpectedRevision, Ledger, LedgerConfig, Submission, Timestamp,
};

/// Writes one patient's plan history of `events` events: the care team, an LDL target of the
/// ESC guideline and a statin, then measurements and notes as [`command`] writes them, ten per
/// append (the FHIR and pages benchmarks read it back).
pub fn write_plan_history(ledger: &Ledger, who: &PatientId, events: u64) {
    let submission = |command: Command, reason: &str| Submission {
        command,
        occurred_at: None,
        reason: Text::new(reason).unwrap(),
    };
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
    while i < events.saturating_sub(founded) {
        let n = 10.min(events - founded - i);
        ledger
            .append(request(who.clone(), (i..i + n).map(command).collect()))
            .unwrap();
        i += n;
    }
}

/// The GP who writes every benchmark event.
pub fn gp() -> Actor {
    Actor {
        id: ActorId::parse("agb-01012345").unwrap(),
        role: Role::Gp,
        name: Text::new("Dr. J. de Vries, huisarts").unwrap(),
        organisation: None,
    }
}

/// Patient number `n`.
pub fn patient(n: u64) -> PatientId {
    PatientId::parse(&format!("patient-{n:08}")).unwrap()
}

/// The first command of a patient: the GP founds the care team.
pub fn found_team() -> Submission {
    let actor = gp();
    Submission {
        command: Command::AddCareTeamMember(Member {
            actor: actor.id,
            name: actor.name,
            agb: None,
            role: Role::Gp,
            lead: Lead::Cvrm,
            practitioner: Practitioner::Main,
        }),
        occurred_at: None,
        reason: Text::new("GP practice takes on cardiovascular risk management").unwrap(),
    }
}

/// A realistic follow-up command: mostly blood-pressure measurements with a reason in words,
/// every fourth a short note. Record bytes come to about 300 on average.
pub fn command(i: u64) -> Submission {
    let occurred_at = Some(Timestamp::from_micros(
        1_767_225_600_000_000 + i as i64 * 1_000_000,
    ));
    if i % 4 == 3 {
        return Submission {
            command: Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: Text::new("CVRM follow-up consultation").unwrap(),
                body: Text::new(
                    "Blood pressure at target, LDL 2.1 mmol/L. Continue atorvastatin 40 mg. \
                     Discussed walking 30 minutes a day; next check in three months.",
                )
                .unwrap(),
            }),
            occurred_at,
            reason: Text::new("quarterly CVRM consultation at the practice").unwrap(),
        };
    }
    let systolic = 120 + (i % 40) as i64;
    Submission {
        command: Command::RecordMeasurement(Measurement {
            value: Quantity::new(Measure::SystolicBloodPressure, systolic).unwrap(),
            source: MeasurementSource::Practice,
        }),
        occurred_at,
        reason: Text::new(
            "routine CVRM check by the practice nurse, seated after five minutes of rest, \
             left arm, automated device, mean of two readings; patient reports no complaints",
        )
        .unwrap(),
    }
}

/// An append of `submissions` to `patient`, any revision, random correlation.
pub fn request(patient: PatientId, submissions: Vec<Submission>) -> AppendRequest {
    AppendRequest {
        patient,
        expected: ExpectedRevision::Any,
        actor: gp(),
        submissions,
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    }
}

/// Opens a fresh ledger in `dir/ledger`, its anchor in `dir/ledger-anchor`. With
/// `CARELEDGER_BENCH_NO_ANCHOR=1` the ledger has no anchor (the group commit then writes and syncs
/// sled only, as before the anchor existed), for measuring the anchor's cost side by side.
pub fn open(dir: &Path) -> Ledger {
    let ledger = dir.join("ledger");
    if std::env::var_os("CARELEDGER_BENCH_NO_ANCHOR").is_some_and(|v| v == "1") {
        let storage = careledger_core::storage::SledStorage::open(&ledger).unwrap();
        return Ledger::with_storage(Box::new(storage), LedgerConfig::default()).unwrap();
    }
    Ledger::open(&ledger, LedgerConfig::default()).unwrap()
}

/// Founds the care team of patients `0..patients`.
pub fn found_patients(ledger: &Ledger, patients: u64) {
    for p in 0..patients {
        ledger
            .append(request(patient(p), vec![found_team()]))
            .unwrap();
    }
}

/// Appends `events` follow-up events spread round-robin over `patients` founded patients,
/// `per_append` commands to an append.
pub fn fill(ledger: &Ledger, patients: u64, events: u64, per_append: u64) {
    let mut i = 0;
    while i < events {
        let n = per_append.min(events - i);
        let subs = (i..i + n).map(command).collect();
        ledger
            .append(request(patient((i / per_append) % patients), subs))
            .unwrap();
        i += n;
    }
}

/// Peak resident memory of this process, in KiB (`VmHWM` of `/proc/self/status`).
pub fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Current resident memory of this process, in KiB.
pub fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Bytes in the files under `dir`, as allocated on disk (what `du` reports).
pub fn du_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            total += du_bytes(&entry.path());
        } else {
            total += meta.blocks() * 512;
        }
    }
    total
}

/// Mean cost of one 4 KiB `write` + `fdatasync` in `dir`, in nanoseconds, over `rounds`.
pub fn fsync_cost_ns(dir: &Path, rounds: u32) -> u64 {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = [7u8; 4096];
    let start = std::time::Instant::now();
    for _ in 0..rounds {
        file.write_all(&block).unwrap();
        file.sync_data().unwrap();
    }
    let ns = start.elapsed().as_nanos() as u64 / u64::from(rounds.max(1));
    drop(file);
    let _ = std::fs::remove_file(path);
    ns
}

/// User plus system CPU time of this process so far, in microseconds.
pub fn cpu_us() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct it is given and reads nothing else.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(usage.ru_utime) + us(usage.ru_stime)
}
