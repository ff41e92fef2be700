//! A region's ledger written quickly, and what a server does with it: `careledger-load bulk`
//! writes a realistic ledger through the ledger's own append path; `careledger-load measure`
//! takes the figures of a server over it (resident memory, plan reads of cached and uncached
//! patients, restart to serving, rebuild, verification with a cold page cache).

use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use careledger_app::actors::{AccessRole, ActorStore, RegisteredActor};
use careledger_app::{data_dir, MemoryBudget};
use careledger_core::event::{
    Command, Measurement, MeasurementSource, Member, Note, NoteKind, SharedCare, Target,
    TargetBasis,
};
use careledger_core::ids::{ActorId, PatientId, Text};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::role::{Lead, Practitioner, Role};
use careledger_core::{Actor, AppendRequest, ExpectedRevision, Ledger, LedgerConfig, Submission};
use careledger_projections::Projections;

/// `careledger-load bulk`: write a ledger of `--patients` patients with
/// `--events-per-patient` events each into a new data directory.
#[derive(Clone, Debug, clap::Args)]
pub struct BulkArgs {
    /// The data directory to write (new, or without a ledger).
    #[arg(long)]
    pub data: PathBuf,
    /// Patients, each with a care team of a GP and a cardiologist in shared care.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub patients: u64,
    /// Events per patient (the founding of the team takes the first four).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(4..))]
    pub events_per_patient: u64,
    /// Commands per append request (one patient each).
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub commands_per_request: u64,
    /// Threads appending at once, each for patients of its own: the appends of all of them
    /// waiting together share a group commit.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub writers: u64,
}

/// `careledger-load measure`: the figures of a server over a data directory `bulk` wrote.
#[derive(Clone, Debug, clap::Args)]
pub struct MeasureArgs {
    /// The data directory (written by `careledger-load bulk`; no server may hold it).
    #[arg(long)]
    pub data: PathBuf,
    /// The `careledger` binary to serve with (by default the one next to this program).
    #[arg(long)]
    pub careledger: Option<PathBuf>,
    /// The server's memory budget in MiB (`careledger serve --memory-budget`).
    #[arg(long, default_value_t = careledger_app::memory::DEFAULT_MEMORY_BUDGET_MIB)]
    pub memory_budget: u64,
    /// Patients read again and again for the cached reads.
    #[arg(long, default_value_t = 100)]
    pub cached_patients: u64,
    /// Seconds of cached reads.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Connections reading at once for the cached reads.
    #[arg(long, default_value_t = 16)]
    pub connections: u64,
    /// Distinct patients read once each, one at a time, right after the start: the uncached
    /// reads.
    #[arg(long, default_value_t = 2000)]
    pub uncached_reads: u64,
    /// Skip dropping the page cache (which needs root) before verification and the restart.
    #[arg(long)]
    pub warm: bool,
    /// Measure the server alone: no verification and no rebuild (the read models as an earlier
    /// run left them), for comparing servers on one data directory.
    #[arg(long)]
    pub serve_only: bool,
}

const GP: &str = "bulk-gp";
const CARDIOLOGIST: &str = "bulk-cardiologist";

fn actor(id: &str, role: Role, name: &str) -> anyhow::Result<Actor> {
    Ok(Actor {
        id: ActorId::parse(id)?,
        role,
        name: Text::new(name)?,
        organisation: None,
    })
}

/// The BSN of bulk patient `n`: a nine-digit number that passes the 11-proof, a different one
/// for every `n` (below 35 million). Of the eight-digit prefixes `2n` and `2n + 1` past
/// 20,000,000 the first that takes a check digit: their weighted sums differ by 2, so at most
/// one needs a check digit of 10, and are at least 18, so the 11-proof's sum is never zero.
pub fn bsn(n: u64) -> String {
    for k in 0..2 {
        let prefix = 20_000_000 + 2 * n + k;
        let digits: Vec<u64> = prefix
            .to_string()
            .bytes()
            .map(|b| u64::from(b - b'0'))
            .collect();
        let sum: u64 = digits
            .iter()
            .enumerate()
            .map(|(i, d)| (9 - i as u64) * d)
            .sum();
        let check = sum % 11;
        if check < 10 {
            return format!("{prefix}{check}");
        }
    }
    unreachable!("one of two neighbouring prefixes takes a check digit")
}

/// The commands of one request after the founding: a quarter's follow-up by one side.
fn follow_up(patient: u64, request: u64, commands: u64) -> anyhow::Result<Vec<Command>> {
    let mut out = Vec::with_capacity(commands as usize);
    for c in 0..commands {
        let r = patient.wrapping_mul(31).wrapping_add(request * 7 + c);
        let command = match r % 6 {
            0 | 1 => Command::RecordMeasurement(Measurement {
                value: Quantity::new(Measure::SystolicBloodPressure, 118 + (r % 50) as i64)?,
                source: if r.is_multiple_of(4) {
                    MeasurementSource::SelfMeasuredAtHome
                } else {
                    MeasurementSource::Practice
                },
            }),
            2 => Command::RecordMeasurement(Measurement {
                value: Quantity::new(Measure::DiastolicBloodPressure, 68 + (r % 25) as i64)?,
                source: MeasurementSource::Practice,
            }),
            3 | 4 => Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: Text::new("CVRM follow-up")?,
                body: Text::new(format!(
                    "Blood pressure discussed; salt restriction and exercise advice repeated \
                     (visit {request}.{c})."
                ))?,
            }),
            _ => Command::SetTarget(Target {
                comparator: Comparator::AtMost,
                value: Quantity::new(Measure::LdlCholesterol, 18 + (r % 8) as i64)?,
                basis: TargetBasis::EscGuideline,
                rationale: Text::new("high cardiovascular risk after myocardial infarction")?,
            }),
        };
        out.push(command);
    }
    Ok(out)
}

fn submissions(commands: Vec<Command>, reason: &str) -> anyhow::Result<Vec<Submission>> {
    let reason = Text::new(reason)?;
    Ok(commands
        .into_iter()
        .map(|command| Submission {
            command,
            occurred_at: None,
            reason: reason.clone(),
        })
        .collect())
}

/// Writes one patient's whole history, `commands` per request.
fn write_patient(
    ledger: &Ledger,
    n: u64,
    events: u64,
    commands: u64,
    gp: &Actor,
    cardiologist: &Actor,
    written: &AtomicU64,
) -> anyhow::Result<()> {
    let patient = PatientId::parse(&bsn(n))?;
    let member = |a: &Actor, lead, practitioner| {
        Command::AddCareTeamMember(Member {
            actor: a.id.clone(),
            name: a.name.clone(),
            agb: None,
            role: a.role,
            lead,
            practitioner,
        })
    };
    let founding = vec![
        member(gp, Lead::Cvrm, Practitioner::Main),
        member(cardiologist, Lead::OrganDisease, Practitioner::Main),
        Command::StartSharedCare(SharedCare {
            arrangement: Text::new(
                "CVRM by the GP practice, heart failure followed by cardiology",
            )?,
        }),
        Command::AddNote(Note {
            kind: NoteKind::Note,
            subject: Text::new("return letter")?,
            body: Text::new("LDL target 1.8 mmol/L per the ESC guideline; statin kept.")?,
        }),
    ];
    let mut left = events;
    let mut request = 0u64;
    let mut next = Some(founding);
    while left > 0 {
        let commands = match next.take() {
            Some(c) => c,
            None => follow_up(n, request, commands.min(left))?,
        };
        let count = commands.len() as u64;
        let by = if request % 3 == 2 { cardiologist } else { gp };
        let outcome = ledger
            .append(AppendRequest {
                patient: patient.clone(),
                expected: ExpectedRevision::Any,
                actor: by.clone(),
                submissions: submissions(commands, "quarterly consultation")?,
                idempotency_key: None,
                correlation_id: None,
                causation_id: None,
            })
            .map_err(|e| anyhow!("appending for patient {patient}: {e}"))?;
        let appended = outcome.events.len() as u64;
        if appended != count {
            bail!("patient {patient}: {count} commands wrote {appended} events");
        }
        written.fetch_add(appended, Ordering::Relaxed);
        left = left.saturating_sub(count);
        request += 1;
    }
    Ok(())
}

/// Writes the ledger and registers its practitioners; prints progress and the rate.
pub fn bulk(args: &BulkArgs) -> anyhow::Result<()> {
    let (ledger_dir, _, actors_dir) = data_dir::paths(&args.data);
    let ledger = Arc::new(Ledger::open(&ledger_dir, LedgerConfig::default())?);
    if ledger.head().position > 0 {
        bail!(
            "{} already holds a ledger of {} events; give a new data directory",
            args.data.display(),
            ledger.head().position
        );
    }
    let gp = actor(GP, Role::Gp, "Dr. A. Jansen")?;
    let cardiologist = actor(CARDIOLOGIST, Role::Cardiologist, "Dr. J. de Vries")?;
    {
        let actors = ActorStore::open(&actors_dir).map_err(|e| anyhow!("{e}"))?;
        for a in [&gp, &cardiologist] {
            actors
                .add(RegisteredActor::new(
                    a.id.clone(),
                    a.name.clone(),
                    AccessRole::Care(a.role),
                ))
                .map_err(|e| anyhow!("{e}"))?;
        }
    }
    let total = args.patients * args.events_per_patient;
    let written = Arc::new(AtomicU64::new(0));
    let next_patient = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let writers: Vec<_> = (0..args.writers)
        .map(|_| {
            let (ledger, written, next_patient) =
                (ledger.clone(), written.clone(), next_patient.clone());
            let (gp, cardiologist, args) = (gp.clone(), cardiologist.clone(), args.clone());
            std::thread::spawn(move || -> anyhow::Result<()> {
                loop {
                    let n = next_patient.fetch_add(1, Ordering::Relaxed);
                    if n >= args.patients {
                        return Ok(());
                    }
                    write_patient(
                        &ledger,
                        n,
                        args.events_per_patient,
                        args.commands_per_request,
                        &gp,
                        &cardiologist,
                        &written,
                    )?;
                }
            })
        })
        .collect();
    let mut last_report = Instant::now();
    while writers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            let done = written.load(Ordering::Relaxed);
            eprintln!(
                "{done}/{total} events, {:.0} events/s",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    for writer in writers {
        writer
            .join()
            .map_err(|_| anyhow!("a writer thread panicked"))??;
    }
    let elapsed = started.elapsed();
    let head = ledger.head().position;
    println!(
        "wrote {head} events for {} patients in {:.1} s ({:.0} events/s, {} commands per \
         request, {} writers); ledger on disk {} MiB",
        args.patients,
        elapsed.as_secs_f64(),
        head as f64 / elapsed.as_secs_f64(),
        args.commands_per_request,
        args.writers,
        ledger.size_on_disk()? >> 20
    );
    Ok(())
}

/// Drops the kernel's page cache, so that what follows reads from disk (needs root).
fn drop_page_cache() -> anyhow::Result<()> {
    Process::new("sync").status()?;
    std::fs::write("/proc/sys/vm/drop_caches", "3").context(
        "dropping the page cache (echo 3 > /proc/sys/vm/drop_caches) needs root; run as root, \
         or pass --warm to measure with a warm page cache",
    )
}

/// A process's resident memory and its peak, in KiB (`VmRSS`, `VmHWM`).
fn rss_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM, for a tidy stop; SIGKILL when it does not stop in time.
        let _ = Process::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    samples
        .get(((samples.len().saturating_sub(1)) as f64 * q).round() as usize)
        .copied()
        .unwrap_or_default()
}

/// Takes the figures; prints one line per figure.
pub fn measure(args: &MeasureArgs) -> anyhow::Result<()> {
    let budget = MemoryBudget::from_mib(args.memory_budget).map_err(|e| anyhow!("{e}"))?;
    let careledger = match &args.careledger {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .map(|dir| dir.join("careledger"))
            .ok_or_else(|| anyhow!("give --careledger PATH"))?,
    };
    if !careledger.exists() {
        bail!(
            "{} does not exist; build it (cargo build --release --bin careledger) or give --careledger PATH",
            careledger.display()
        );
    }
    let (ledger_dir, projections_dir, actors_dir) = data_dir::paths(&args.data);
    if !ledger_dir.join("db").exists() {
        bail!(
            "no ledger in {}; write one with careledger-load bulk",
            args.data.display()
        );
    }
    let ledger_config = LedgerConfig {
        cache_bytes: budget.ledger_sled(),
        ..LedgerConfig::default()
    };

    // Verification with a cold page cache, in this process.
    if !args.warm && !args.serve_only {
        drop_page_cache()?;
    }
    let started = Instant::now();
    let ledger = Ledger::open(&ledger_dir, ledger_config.clone())?;
    if !args.serve_only {
        let report = ledger.verify(&mut |_, _| {})?;
        let took = started.elapsed();
        if !report.is_intact() {
            bail!("the ledger does not verify: {:?}", report.problem);
        }
        let events = report.verified;
        println!(
            "verification ({}): {events} events in {:.2} s, {:.0} events/s",
            if args.warm { "warm" } else { "cold page cache" },
            took.as_secs_f64(),
            events as f64 / took.as_secs_f64()
        );
    }
    let events = ledger.head().position;

    // Rebuild from zero with the budget's view cache, as the server would at its first start.
    let started = Instant::now();
    let patients = {
        let projections = Projections::open(
            &projections_dir,
            budget.projections(careledger_projections::ProjectionConfig::default()),
        )?;
        if !args.serve_only {
            projections.rebuild(&ledger, &mut |_, _| {})?;
            projections.flush()?;
        }
        projections.patients_of(&ActorId::parse(GP)?)?.len() as u64
    };
    let took = started.elapsed();
    if patients == 0 {
        bail!("no patient of {GP} in the ledger; write it with careledger-load bulk");
    }
    if !args.serve_only {
        println!(
            "rebuild: {events} events in {:.2} s, {:.0} events/s (view cache {} MiB)",
            took.as_secs_f64(),
            events as f64 / took.as_secs_f64(),
            budget.view_cache() >> 20
        );
    }
    drop(ledger);

    // A reader for the server: an auditor reads every patient.
    let token = {
        let actors = ActorStore::open(&actors_dir).map_err(|e| anyhow!("{e}"))?;
        let mut suffix = [0u8; 4];
        getrandom::fill(&mut suffix).map_err(|e| anyhow!("{e}"))?;
        actors
            .add(RegisteredActor::new(
                ActorId::parse(&format!("measure-{}", hex::encode(suffix)))?,
                Text::new("Measurement")?,
                AccessRole::Auditor,
            ))
            .map_err(|e| anyhow!("{e}"))?
    };
    // sled lets go of its lock a moment after the store is dropped.
    std::thread::sleep(Duration::from_millis(200));

    // Restart to serving.
    if !args.warm {
        drop_page_cache()?;
    }
    let port = free_port()?;
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let server = Server {
        child: Process::new(&careledger)
            .args(["serve", "--data"])
            .arg(&args.data)
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--memory-budget", &args.memory_budget.to_string()])
            .args(["--no-checkpoints", "--rate-limit-per-second", "0"])
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", careledger.display()))?,
    };
    let pid = server.child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(args.connections as usize)
            .build()?;
        loop {
            let answer = client.get(format!("{url}/health")).send().await;
            if matches!(&answer, Ok(r) if r.status().is_success()) {
                break;
            }
            if started.elapsed() > Duration::from_secs(600) {
                bail!("the server did not serve within 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!(
            "restart to serving: {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let (rss, _) = rss_of(pid);
        println!("server memory after start: {} MiB resident", rss >> 10);

        let plan = {
            let (client, url, token) = (client.clone(), url.clone(), token.clone());
            move |n: u64| {
                let client = client.clone();
                let url = format!("{url}/patients/{}/plan", bsn(n % patients));
                let token = token.clone();
                async move {
                    let answer = client.get(url).bearer_auth(token).send().await?;
                    if !answer.status().is_success() {
                        bail!("plan read answered {}", answer.status());
                    }
                    answer.bytes().await?;
                    anyhow::Ok(())
                }
            }
        };

        // Uncached: distinct patients, one at a time, none read before.
        let mut latencies = Vec::new();
        let stride = (patients / args.uncached_reads.max(1)).max(1);
        for i in 0..args.uncached_reads.min(patients) {
            let t = Instant::now();
            plan(args.cached_patients + i * stride).await?;
            latencies.push(t.elapsed());
        }
        println!(
            "plan reads, uncached patients: {} reads, p50 {:.2} ms, p99 {:.2} ms",
            latencies.len(),
            percentile(&mut latencies, 0.5).as_secs_f64() * 1000.0,
            percentile(&mut latencies, 0.99).as_secs_f64() * 1000.0
        );

        // Cached: the same few patients again and again from many connections.
        for n in 0..args.cached_patients {
            plan(n).await?;
        }
        let reads = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let mut tasks = Vec::new();
        for c in 0..args.connections {
            let (reads, plan) = (reads.clone(), plan.clone());
            let cached = args.cached_patients.max(1);
            tasks.push(tokio::spawn(async move {
                let mut n = c;
                while Instant::now() < deadline {
                    plan(n % cached).await?;
                    reads.fetch_add(1, Ordering::Relaxed);
                    n += 7;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        let reads = reads.load(Ordering::Relaxed);
        println!(
            "plan reads, cached patients: {reads} reads in {} s, {:.0} reads/s ({} connections)",
            args.seconds,
            reads as f64 / args.seconds as f64,
            args.connections
        );
        let (rss, peak) = rss_of(pid);
        println!(
            "server memory: {} MiB resident, peak {} MiB (budget {} MiB)",
            rss >> 10,
            peak >> 10,
            args.memory_budget
        );
        anyhow::Ok(())
    })?;
    drop(server);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_patients_have_distinct_valid_bsns() {
        let mut seen = std::collections::HashSet::new();
        for n in (0..20_000).chain(34_999_000..35_000_000) {
            let bsn = bsn(n);
            assert!(careledger_core::ids::Bsn::parse(&bsn).is_ok(), "{n}: {bsn}");
            assert!(seen.insert(bsn), "{n} repeats a BSN");
        }
    }
}
