//! `careledger access-log`: verify the access log, list its entries, show its verifier key; and
//! what `serve` needs to keep it (`--trusted-proxy`, the reserve).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::anyhow;
use clap::Subcommand;

use careledger_api::wire::AccessEntryView;
use careledger_app::access_log::{self, AccessFilter, AccessLog, AccessLogConfig};
use careledger_app::data_dir;
use careledger_core::checkpoint::{CheckpointConfig, LogKey};
use careledger_core::ids::ActorId;
use careledger_core::note::VerifierKey;

/// How `serve` keeps the access log.
#[derive(clap::Args, Clone, Debug)]
pub struct AccessLogArgs {
    /// Reverse proxies whose X-Forwarded-For / Forwarded header names the client in the access
    /// log (comma-separated addresses); any other peer is recorded as the client itself.
    #[arg(long, value_delimiter = ',', env = "CARELEDGER_TRUSTED_PROXY")]
    pub trusted_proxy: Vec<IpAddr>,
    /// Disk space kept in reserve for the access log, in MiB, released when a write to it fails
    /// (a full disk), so that reads go on being logged and answered for a while.
    #[arg(long, default_value_t = 64, env = "CARELEDGER_ACCESS_LOG_RESERVE_MIB")]
    pub access_log_reserve_mib: u64,
}

impl AccessLogArgs {
    /// Opens the access log of `data`, signing its checkpoints with the log key under the
    /// access log's origin when checkpoints are signed; `None` only for measurements
    /// (`CARELEDGER_BENCH_NO_ACCESS_LOG=1`).
    pub fn open(
        &self,
        data: &Path,
        origin: Option<&str>,
        checkpoints: Option<CheckpointConfig>,
        cache_bytes: u64,
    ) -> anyhow::Result<Option<Arc<AccessLog>>> {
        let key = |origin: Option<&str>| -> anyhow::Result<LogKey> {
            let key = LogKey::open_or_create(&data_dir::log_key_path(data), origin)?;
            Ok(key.for_origin(&access_log::origin_for(key.origin()))?)
        };
        // Without its key the log is kept all the same, unsigned, as the ledger's checkpointer
        // signs nothing then either.
        let signing = match checkpoints.map(|config| (key(origin), config)) {
            None => None,
            Some((Ok(key), config)) => Some((key, config)),
            Some((Err(e), _)) => {
                tracing::error!(error = %e, "signing no access log checkpoints");
                None
            }
        };
        let config = AccessLogConfig {
            reserve_bytes: self.access_log_reserve_mib * 1024 * 1024,
            signing,
            cache_bytes,
            ..AccessLogConfig::default()
        };
        Ok(access_log::open_unless_measuring(data, config)?.map(Arc::new))
    }
}

/// `careledger access-log ...`.
#[derive(Subcommand)]
pub enum AccessLogCommand {
    /// Verify the access log: every entry's hash and link, gapless positions, the patient
    /// index, and its last signed checkpoint; exits 1 naming the first bad position. Reads the
    /// data directory directly: stop the server first.
    Verify {
        /// The data directory.
        #[arg(long, default_value = "careledger-data", env = "CARELEDGER_DATA")]
        data: PathBuf,
    },
    /// List the entries, oldest first (one line each, or JSON). Stop the server first.
    List {
        /// The data directory.
        #[arg(long, default_value = "careledger-data", env = "CARELEDGER_DATA")]
        data: PathBuf,
        /// Only entries naming this patient.
        #[arg(long)]
        patient: Option<String>,
        /// Only requests by this actor.
        #[arg(long)]
        actor: Option<String>,
        /// Print JSON (the API's entry shape) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the verifier key of the access log's checkpoints
    /// (<origin>/access-log+<hex key ID>+<base64 key>).
    Key {
        /// The data directory.
        #[arg(long, default_value = "careledger-data", env = "CARELEDGER_DATA")]
        data: PathBuf,
    },
}

/// Runs an `access-log` command.
pub fn run(command: AccessLogCommand) -> anyhow::Result<ExitCode> {
    match command {
        AccessLogCommand::Verify { data } => verify(&data),
        AccessLogCommand::List {
            data,
            patient,
            actor,
            json,
        } => list(&data, patient, actor, json),
        AccessLogCommand::Key { data } => {
            let key = verifier_key(&data)?.ok_or_else(|| {
                anyhow!(
                    "no log key in {}; it is made on the first `careledger serve`",
                    data.display()
                )
            })?;
            say!("{key}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The access log's verifier key, when the data directory has a log key.
fn verifier_key(data: &Path) -> anyhow::Result<Option<VerifierKey>> {
    let path = data_dir::log_key_path(data);
    if !path.exists() {
        return Ok(None);
    }
    let key = LogKey::open(&path)?;
    Ok(Some(
        key.for_origin(&access_log::origin_for(key.origin()))?
            .verifier_key(),
    ))
}

/// Verifies the access log and prints one line; the failure names its position.
pub fn verify(data: &Path) -> anyhow::Result<ExitCode> {
    let key = verifier_key(data)?;
    let check = access_log::verify(data, key.as_ref())?;
    if let Some(problem) = &check.report.problem {
        say!("FAILED: {problem}");
        say!(
            "{} access log entries before it verified; last good hash {}",
            check.report.verified,
            check.report.head_hash
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Some(problem) = &check.checkpoint_problem {
        say!("FAILED: the access log's checkpoint: {problem}");
        return Ok(ExitCode::FAILURE);
    }
    let signed = match check.checkpoint_size {
        Some(size) => format!("; its checkpoint of size {size} verifies"),
        None => "; no checkpoint signed yet".to_owned(),
    };
    say!(
        "ok: {} access log entries verified; head hash {}{signed}",
        check.report.verified,
        check.report.head_hash
    );
    Ok(ExitCode::SUCCESS)
}

fn list(
    data: &Path,
    patient: Option<String>,
    actor: Option<String>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let filter = AccessFilter {
        patient: patient
            .as_deref()
            .map(careledger_api::wire::patient_id)
            .transpose()?,
        actor: actor.as_deref().map(ActorId::parse).transpose()?,
        ..AccessFilter::default()
    };
    let store = access_log::open_store(data)?;
    let (head, _) = store.head()?;
    let mut after = 0;
    loop {
        let (entries, more) = store.list(&filter, after, head, 1000)?;
        for stored in &entries {
            let view = AccessEntryView::from(stored);
            if json {
                say!("{}", serde_json::to_string(&view)?);
            } else {
                let who = match (&view.who.id, &view.who.role) {
                    (Some(id), Some(role)) => format!("{id} ({role})"),
                    _ => "unauthenticated".to_owned(),
                };
                say!(
                    "{:>6}  {}  {:<28} {:<9} {} {} {}  from {}  {}",
                    view.position,
                    view.recorded_at,
                    who,
                    view.patient.as_deref().unwrap_or("-"),
                    view.method,
                    view.route,
                    view.status,
                    view.client,
                    serde_json::to_value(view.reason)?
                        .as_str()
                        .unwrap_or_default()
                );
            }
        }
        match (more, entries.last()) {
            (true, Some(last)) => after = last.position,
            _ => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}
