//! The `careledger` command-line tool.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::{Parser, Subcommand};

use careledger_core::ids::ActorId;
use careledger_core::record::Timestamp;
use careledger_core::role::Line;
use careledger_core::timing;
use careledger_core::{Ledger, LedgerConfig};
use careledger_projections::audit::{self, AuditFilter};
use careledger_projections::notifications::{self, Which};
use careledger_projections::{signals, ProjectionConfig, Projections};

use careledger_api::wire::{self, AuditEntryView, NotificationView, PlanView};
use careledger_api::AppState;
use careledger_app::data_dir::{self, DataDir};

use crate::remote::Remote;
use crate::{demo, export, render};

/// careledger: an event-sourced, hash-chained care-plan ledger for shared care between the GP
/// practice (first line) and the hospital specialist (second line).
#[derive(Parser)]
#[command(name = "careledger", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Data {
    /// The data directory (holds ledger/, projections/ and actors/).
    #[arg(long, default_value = "careledger-data", env = "CARELEDGER_DATA")]
    data: PathBuf,
}

/// How the read models judge time: the settings a clinician's signals and messages depend on.
#[derive(clap::Args)]
struct ReadModelArgs {
    /// An open notification is overdue after this many days (shown as overdue, listed by
    /// `status=overdue`); 0 makes every open notification overdue at once.
    #[arg(long, default_value_t = 7, env = "CARELEDGER_OVERDUE_AFTER_DAYS",
          value_parser = clap::value_parser!(u32).range(0..=3650))]
    overdue_after_days: u32,
    /// A lab order with tests still pending expires after this many days and shows as
    /// "pending since" (a Dutch lab request form is valid for about three months).
    #[arg(long, default_value_t = 90, env = "CARELEDGER_LAB_ORDER_EXPIRY_DAYS",
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    lab_order_expiry_days: u32,
}

impl ReadModelArgs {
    fn config(&self) -> ProjectionConfig {
        ProjectionConfig {
            overdue_after_days: self.overdue_after_days,
            lab_order_expiry_days: self.lab_order_expiry_days,
            ..ProjectionConfig::default()
        }
    }
}

#[derive(clap::Args)]
struct PatientArgs {
    #[command(flatten)]
    data: Data,
    #[command(flatten)]
    read_models: ReadModelArgs,
    #[command(flatten)]
    server: crate::remote::ServerArgs,
    #[command(flatten)]
    lang: render::LangArg,
    /// The patient id (a BSN or another id).
    #[arg(long)]
    patient: String,
    /// Print JSON for programs instead of text for people.
    #[arg(long)]
    json: bool,
}

/// A patient's record as FHIR.
#[derive(clap::Args)]
struct FhirArgs {
    #[command(flatten)]
    data: Data,
    #[command(flatten)]
    read_models: ReadModelArgs,
    /// The patient id (a BSN or another id).
    #[arg(long)]
    patient: String,
    /// Only resources changed at or after this instant (RFC 3339), as `_since`.
    #[arg(long)]
    since: Option<String>,
    /// The FHIR base the resources' fullUrl start with: the server's address followed by /fhir.
    #[arg(long, default_value = "http://localhost:8080/fhir")]
    base: String,
}

/// When the server signs checkpoints of its Merkle tree.
#[derive(clap::Args, Clone, Debug)]
pub struct CheckpointArgs {
    /// The log's origin, the first line of every checkpoint and the log key's name, e.g.
    /// hospital.example/careledger. Fixed on the first start (a random careledger.invalid/log-…
    /// when not given); a different one later is refused.
    #[arg(long, env = "CARELEDGER_ORIGIN")]
    pub origin: Option<String>,
    /// Sign a checkpoint after this many new events.
    #[arg(
        long,
        default_value_t = 1000,
        env = "CARELEDGER_CHECKPOINT_EVERY_EVENTS"
    )]
    pub checkpoint_every_events: u64,
    /// Sign a checkpoint after this many seconds when the ledger grew.
    #[arg(long, default_value_t = 10, env = "CARELEDGER_CHECKPOINT_EVERY_SECS")]
    pub checkpoint_every_secs: u64,
    /// Sign no checkpoints (for measurements side by side).
    #[arg(long)]
    pub no_checkpoints: bool,
}

impl CheckpointArgs {
    /// The checkpointer's settings; `None` when checkpoints are off.
    pub fn config(&self) -> anyhow::Result<Option<careledger_core::checkpoint::CheckpointConfig>> {
        if self.no_checkpoints {
            return Ok(None);
        }
        if self.checkpoint_every_secs == 0 {
            return Err(anyhow!(
                "--checkpoint-every-secs must be at least 1 (use --no-checkpoints to sign none)"
            ));
        }
        Ok(Some(careledger_core::checkpoint::CheckpointConfig {
            every_events: self.checkpoint_every_events,
            every: Duration::from_secs(self.checkpoint_every_secs),
        }))
    }
}

/// OpenID Connect access tokens (RFC 9068) accepted besides careledger's own tokens.
#[derive(clap::Args, Clone, Debug)]
pub struct OidcArgs {
    /// The issuer (`iss`) whose access tokens are accepted, e.g.
    /// https://login.hospital.example/realms/care; each token's subject must be registered
    /// (careledger actors add --oidc-issuer ... --oidc-subject ...).
    #[arg(long, env = "CARELEDGER_OIDC_ISSUER", requires = "oidc_audience")]
    pub oidc_issuer: Option<String>,
    /// The audience (`aud`) the access tokens must name: this server.
    #[arg(long, env = "CARELEDGER_OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// The issuer's keys, a JWKS document on disk (read again when a token names an unknown
    /// key, at most once a minute).
    #[arg(
        long,
        env = "CARELEDGER_OIDC_JWKS_FILE",
        conflicts_with = "oidc_jwks_url"
    )]
    pub oidc_jwks_file: Option<PathBuf>,
    /// The issuer's keys, a JWKS document served over https:// (or plain http:// from a local
    /// sidecar), read again as the file is.
    #[arg(long, env = "CARELEDGER_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,
    /// CAs (PEM) to trust for an https:// --oidc-jwks-url and --oidc-token-endpoint besides
    /// the system's, e.g. the hospital's own CA.
    #[arg(long, env = "CARELEDGER_OIDC_CA_FILE")]
    pub oidc_ca_file: Option<PathBuf>,
    /// The pages' client id at the identity provider: with it, the sign-in page offers the
    /// authorization-code flow with PKCE (needs --public-url and the two endpoints).
    #[arg(
        long,
        env = "CARELEDGER_OIDC_CLIENT_ID",
        requires_all = ["oidc_issuer", "oidc_authorization_endpoint", "oidc_token_endpoint"]
    )]
    pub oidc_client_id: Option<String>,
    /// The identity provider's authorization endpoint, where the browser signs in.
    #[arg(
        long,
        env = "CARELEDGER_OIDC_AUTHORIZATION_ENDPOINT",
        requires = "oidc_client_id"
    )]
    pub oidc_authorization_endpoint: Option<String>,
    /// The identity provider's token endpoint, https:// (trusting the system's CAs and
    /// --oidc-ca-file), or plain http:// from a local proxy or sidecar.
    #[arg(
        long,
        env = "CARELEDGER_OIDC_TOKEN_ENDPOINT",
        requires = "oidc_client_id"
    )]
    pub oidc_token_endpoint: Option<String>,
}

impl OidcArgs {
    /// The pages' sign-in with the identity provider, when a client id is given.
    fn login(&self) -> Option<careledger_api::pages::oidc_login::OidcLoginSettings> {
        Some(careledger_api::pages::oidc_login::OidcLoginSettings {
            client_id: self.oidc_client_id.clone()?,
            authorization_endpoint: self.oidc_authorization_endpoint.clone()?,
            token_endpoint: self.oidc_token_endpoint.clone()?,
            ca_file: self.oidc_ca_file.clone(),
        })
    }
}

impl OidcArgs {
    /// The configuration, when an issuer is given.
    fn config(&self) -> anyhow::Result<Option<careledger_api::oidc::OidcConfig>> {
        use careledger_api::oidc::{JwksSource, OidcConfig};
        let (Some(issuer), Some(audience)) = (&self.oidc_issuer, &self.oidc_audience) else {
            if self.oidc_jwks_file.is_some() || self.oidc_jwks_url.is_some() {
                return Err(anyhow!(
                    "the issuer's keys are given without --oidc-issuer and --oidc-audience"
                ));
            }
            return Ok(None);
        };
        let jwks = match (&self.oidc_jwks_file, &self.oidc_jwks_url) {
            (Some(file), None) => JwksSource::File(file.clone()),
            (None, Some(url)) => JwksSource::Url(url.clone()),
            _ => {
                return Err(anyhow!(
                    "--oidc-issuer needs the issuer's keys: --oidc-jwks-file or --oidc-jwks-url"
                ))
            }
        };
        Ok(Some(OidcConfig {
            issuer: issuer.clone(),
            audience: audience.clone(),
            jwks,
            ca_file: self.oidc_ca_file.clone(),
        }))
    }
}

#[derive(Subcommand)]
enum Command {
    /// Start the HTTP server (stop it with Ctrl-C or SIGTERM; in-flight writes finish first).
    Serve {
        #[command(flatten)]
        data: Data,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "CARELEDGER_ADDR")]
        addr: String,
        #[command(flatten)]
        read_models: ReadModelArgs,
        #[command(flatten)]
        checkpoints: CheckpointArgs,
        #[command(flatten)]
        witnesses: crate::witness::WitnessArgs,
        #[command(flatten)]
        transport: crate::transport::TransportArgs,
        // Boxed: the largest of the commands' arguments, kept off the stack of the others.
        #[command(flatten)]
        oidc: Box<OidcArgs>,
        #[command(flatten)]
        access_log: crate::access_log::AccessLogArgs,
        /// Disk space the data directory keeps in reserve, in MiB (`<data>/reserve`): on a
        /// full disk it is released so that the server starts, serves reads and verification
        /// and refuses writes with 503 until space returns (0: none).
        #[arg(long, default_value_t = 64, env = "CARELEDGER_RESERVE_MIB")]
        reserve_mib: u64,
        /// The memory the server's caches may use together, in MiB: the read models' cache of
        /// decoded views, sled's page caches of the ledger, read models, access log and actors,
        /// and the rendered plans, in the shares docs/performance.md lists (at least 64).
        #[arg(long = "memory-budget", value_name = "MIB", env = "CARELEDGER_MEMORY_BUDGET_MIB",
              default_value_t = careledger_app::memory::DEFAULT_MEMORY_BUDGET_MIB)]
        memory_budget: u64,
    },
    /// Write a realistic shared-care history and demo actors into an empty data directory, and print their tokens.
    Demo {
        #[command(flatten)]
        data: Data,
    },
    /// Verify the whole hash chain, and the access log when there is one: prints the count and
    /// head hash; exits 1 naming the first bad position.
    Verify {
        #[command(flatten)]
        data: Data,
        /// With --url: the running server verifies its ledger (an auditor's --token).
        #[command(flatten)]
        server: crate::remote::ServerArgs,
    },
    /// Print a patient's current care plan (targets, medication, lab, goals) with provenance.
    Plan(PatientArgs),
    /// Print a patient's record as a FHIR R4 searchset Bundle: what GET /fhir/Patient/{id}/$everything answers.
    Fhir(FhirArgs),
    /// Print a patient's audit trail: who changed what, when, why, and whether the other line was told.
    Audit {
        #[command(flatten)]
        args: PatientArgs,
        /// Only this element, e.g. target:ldl or medication:C10AA05 (or a prefix like medication:).
        #[arg(long)]
        element: Option<String>,
        /// Only this actor.
        #[arg(long)]
        actor: Option<String>,
    },
    /// Print a patient's notify-the-other-party messages.
    Notifications {
        #[command(flatten)]
        args: PatientArgs,
        /// open, overdue or all.
        #[arg(long, default_value = "all")]
        status: String,
    },
    /// The access log (NEN 7513): every access to patient data. Verify it, list it, show the
    /// verifier key of its checkpoints.
    AccessLog {
        #[command(subcommand)]
        command: crate::access_log::AccessLogCommand,
    },
    /// Manage the actors who may use the API and their tokens: on a running server with --url
    /// and an operator's --token, or on a stopped server's data directory.
    Actors {
        #[command(subcommand)]
        command: crate::actors::ActorsCommand,
    },
    /// Client systems' signing keys for signed appends (RFC 9421, ed25519): register, revoke,
    /// list, and make a key pair.
    Keys {
        #[command(subcommand)]
        command: crate::keys::KeysCommand,
    },
    /// Back a running server's data directory up (the server writes the copy on its host and
    /// verifies it), with --url and an operator's --token; prints what it wrote and the
    /// secrets in it.
    Backup(crate::backup::BackupArgs),
    /// Restore a backup into an empty data directory and verify it (--from, --checkpoint for a
    /// newer signed checkpoint); or, with --accept-loss --reason, record that acknowledged
    /// events a restored ledger lacks are lost. Exits 3 when the restored ledger is behind.
    Restore(crate::backup::RestoreArgs),
    /// Rebuild the read models from the ledger, from position 1.
    Rebuild {
        #[command(flatten)]
        data: Data,
    },
    /// Merkle proofs over the chain, as JSON with hex hashes (positions start at 1; a
    /// position's leaf index is position - 1). Reads the ledger directly: stop the server first.
    Proof {
        #[command(subcommand)]
        command: ProofCommand,
    },
    /// The log's signing key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// A witness, run by a second party: its key, the server that cosigns the log's checkpoints
    /// (C2SP tlog-witness), and checking a cosigned checkpoint.
    Witness {
        #[command(subcommand)]
        command: crate::witness::WitnessCommand,
    },
    /// Write one patient's history as evidence: the stored frames, an inclusion proof of each
    /// against the latest signed checkpoint, and the proof that no later event is left out.
    /// Reads the ledger directly: stop the server first.
    Export {
        #[command(flatten)]
        data: Data,
        /// The patient id.
        #[arg(long)]
        patient: String,
        /// The file to write (JSON).
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an export offline (no server, no data directory) and print the verified history;
    /// exits 1 naming the first thing that failed.
    VerifyExport {
        /// The export file.
        file: PathBuf,
        /// The log's verifier key, as `careledger key show` prints it.
        #[arg(long)]
        key: String,
        /// A witness's verifier key (<name>+<hex key ID>+<base64 key>); its cosignature must be
        /// on the checkpoint. Repeat for several.
        #[arg(long)]
        witness: Vec<String>,
        /// The patient the export must be of.
        #[arg(long)]
        patient: Option<String>,
        /// Fail when the export cannot prove its tail (a checkpoint without a heads map).
        #[arg(long)]
        require_complete: bool,
    },
}

#[derive(Subcommand)]
enum ProofCommand {
    /// That the event at --position is in the tree of --tree-size events (RFC 9162 §2.1.3).
    Inclusion {
        #[command(flatten)]
        data: Data,
        /// The event's position (1 is the first).
        #[arg(long)]
        position: u64,
        /// The tree size (default: the ledger's head).
        #[arg(long)]
        tree_size: Option<u64>,
    },
    /// That the tree of --second events extends the tree of --first events (RFC 9162 §2.1.4).
    Consistency {
        #[command(flatten)]
        data: Data,
        /// The older tree size (at least 1).
        #[arg(long)]
        first: u64,
        /// The newer tree size (default: the ledger's head).
        #[arg(long)]
        second: Option<u64>,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Print the log's public key as a signed-note verifier key
    /// (<origin>+<hex key ID>+<base64 key>), for auditors and witnesses.
    Show {
        #[command(flatten)]
        data: Data,
    },
}

/// Runs the tool; errors go to stderr with exit code 1 (2 for usage errors, by clap).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    quiet_storage_panics();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// sled panics on some damaged files (in its recovery at open, in iterators); the ledger
/// catches those and returns an error naming the damage, which `main` prints as one line. The
/// panic message with its backtrace would only bury that line, so it is not printed.
fn quiet_storage_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_sled = info.location().is_some_and(|l| l.file().contains("/sled-"));
        if !in_sled {
            default(info);
        }
    }));
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            data,
            addr,
            read_models,
            checkpoints,
            witnesses,
            transport,
            oidc,
            access_log,
            reserve_mib,
            memory_budget,
        } => serve(
            &data.data,
            &addr,
            careledger_app::data_dir::OpenConfig {
                read_models: read_models.config(),
                reserve_bytes: reserve_mib * 1024 * 1024,
                budget: careledger_app::MemoryBudget::from_mib(memory_budget)
                    .map_err(|e| anyhow!("--memory-budget: {e}"))?,
            },
            &ServeArgs {
                checkpoints,
                witnesses,
                transport,
                oidc: *oidc,
                access_log,
            },
        ),
        Command::AccessLog { command } => crate::access_log::run(command),
        Command::Witness { command } => crate::witness::run(command),
        Command::Key {
            command: KeyCommand::Show { data },
        } => key_show(&data.data),
        Command::Proof { command } => proof(command),
        Command::Demo { data } => run_demo(&data.data),
        Command::Verify { data, server } => match &server.url {
            Some(url) => verify_remote(url, &server),
            None => verify(&data.data),
        },
        Command::Plan(args) => plan(&args),
        Command::Fhir(args) => fhir(&args),
        Command::Audit {
            args,
            element,
            actor,
        } => audit_cmd(&args, element, actor),
        Command::Notifications { args, status } => notifications_cmd(&args, &status),
        Command::Actors { command } => crate::actors::run(command),
        Command::Keys { command } => crate::keys::run(command),
        Command::Rebuild { data } => rebuild(&data.data),
        Command::Backup(args) => crate::backup::backup_cmd(&args),
        Command::Restore(args) => crate::backup::restore_cmd(&args),
        Command::Export { data, patient, out } => export::export_cmd(&data.data, &patient, &out),
        Command::VerifyExport {
            file,
            key,
            witness,
            patient,
            require_complete,
        } => export::verify_export_cmd(&export::VerifyOptions {
            file: &file,
            key: &key,
            witnesses: &witness,
            patient: patient.as_deref(),
            require_complete,
        }),
    }
}

/// What `serve` is configured with besides where and how the read models judge time.
struct ServeArgs {
    checkpoints: CheckpointArgs,
    witnesses: crate::witness::WitnessArgs,
    transport: crate::transport::TransportArgs,
    oidc: OidcArgs,
    access_log: crate::access_log::AccessLogArgs,
}

fn serve(
    data: &Path,
    addr: &str,
    open: careledger_app::data_dir::OpenConfig,
    args: &ServeArgs,
) -> anyhow::Result<ExitCode> {
    let ServeArgs {
        checkpoints,
        witnesses,
        transport: transport_args,
        oidc,
        access_log,
    } = args;
    let memory = open.budget;
    let config = checkpoints.config()?;
    let mut access = None;
    let witnesses = witnesses.targets()?;
    let oidc_login = oidc.login();
    let oidc = oidc.config()?;
    // Before the data directory is opened: a server that may not start touches nothing.
    let transport = transport_args.transport(addr)?;
    let limits = transport_args.limits();
    let runtime = tokio::runtime::Runtime::new()?;
    let mut checkpointer = None;
    let timings = std::env::var_os(timing::TIMINGS_ENV).is_some_and(|v| v == "1");
    if timings {
        timing::enable();
        tracing::info!(
            "{}=1: counting each request's phases; the table is printed when the server stops",
            timing::TIMINGS_ENV
        );
    }
    let served = runtime.block_on(async {
        let dir = tokio::task::block_in_place(|| DataDir::open_configured(data, open))?;
        if let Some(problem) = dir.ledger.head_problem() {
            tracing::error!(%problem, "the ledger refuses writes; /health reports it");
        }
        if let Some(hold) = dir.holds.current() {
            tracing::error!(reason = %hold.reason, "writes are held; /health reports it");
        }
        if let Some(config) = config {
            match dir.start_checkpoints(checkpoints.origin.as_deref(), config) {
                Ok(started) => checkpointer = Some(started),
                // A changed origin is a configuration error: refuse to start.
                Err(e @ careledger_core::checkpoint::CheckpointError::OriginChanged { .. }) => {
                    return Err(anyhow!("{e}"));
                }
                Err(e) => tracing::error!(error = %e, "signing no checkpoints"),
            }
        }
        // Pushes each new checkpoint on a task of its own, never on the append path.
        let _pushing = crate::witness::start_pushing(&dir, checkpointer.as_ref(), witnesses);
        let stop = shutdown_signal();
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        let tls = matches!(transport, careledger_api::Transport::Tls(_));
        let journal = match dir.ledger.journal_writes_directly() {
            Some(true) => "direct",
            Some(false) => "buffered",
            None => "none",
        };
        tracing::info!(addr = %listener.local_addr()?, tls, data = %data.display(), head = dir.ledger.head().position, journal, "careledger serving");
        // Every access to patient data is recorded; none is served while it cannot be.
        access = tokio::task::block_in_place(|| {
            access_log.open(data, checkpoints.origin.as_deref(), config, memory.access_log_sled())
        })?;
        let mut state = AppState::start(&dir)
            .with_limits(limits)
            .with_plan_cache_bytes(memory.plan_json())
            .with_trusted_proxies(access_log.trusted_proxy.clone());
        if let Some(log) = &access {
            if log.opened_in_data_reserve() && !dir.holds.is_held(careledger_app::hold::HoldKind::DiskFull) {
                dir.hold_for_full_disk(&"the access log could not open");
            }
            state = state.with_access_log(log.clone());
        }
        if let Some(url) = &transport_args.public_url {
            state = state.with_public_url(url);
        }
        if let Some(oidc) = oidc {
            let issuer = oidc.issuer.clone();
            let verifier = careledger_api::oidc::OidcVerifier::start(oidc)
                .await
                .map_err(|e| anyhow!("OpenID Connect: {e}"))?;
            state = state.with_oidc(verifier);
            tracing::info!(%issuer, "accepting OpenID Connect access tokens");
        }
        if let Some(login) = oidc_login {
            state = state
                .with_oidc_login(login)
                .map_err(|e| anyhow!("OpenID Connect sign-in: {e}"))?;
        }
        // Every checkpoint signed goes to the SSE subscribers as it is signed.
        if let Some(checkpointer) = checkpointer.as_ref() {
            state.app.follow_checkpoints(checkpointer);
        }
        let app = state.app.clone();
        careledger_api::serve_with(listener, state, transport, stop).await?;
        anyhow::Ok((dir, app))
    });
    // A request stuck on a failing disk must not keep the process alive.
    runtime.shutdown_timeout(CLOSE_DEADLINE);
    if timings {
        eprint!("{}", timing::table());
    }
    close_within(served?, checkpointer, access, CLOSE_DEADLINE)
}

fn proof(command: ProofCommand) -> anyhow::Result<ExitCode> {
    let hexes = |path: &[careledger_core::merkle::TreeHash]| -> Vec<String> {
        path.iter().map(|h| h.to_hex()).collect()
    };
    let json = match command {
        ProofCommand::Inclusion {
            data,
            position,
            tree_size,
        } => {
            let ledger = open_ledger(&data.data)?;
            let size = tree_size.unwrap_or(ledger.head().position);
            let proof = ledger.inclusion_proof(position, size)?;
            let root = ledger.tree_head(size)?.root;
            serde_json::json!({
                "position": proof.position,
                "leaf_index": proof.leaf_index,
                "tree_size": proof.tree_size,
                "event_hash": proof.event_hash.to_string(),
                "leaf_hash": careledger_core::merkle::event_leaf(&proof.event_hash).to_hex(),
                "root": root.to_hex(),
                "path": hexes(&proof.path),
            })
        }
        ProofCommand::Consistency {
            data,
            first,
            second,
        } => {
            let ledger = open_ledger(&data.data)?;
            let second = second.unwrap_or(ledger.head().position);
            let proof = ledger.consistency_proof(first, second)?;
            serde_json::json!({
                "first": proof.first,
                "second": proof.second,
                "first_root": ledger.tree_head(first)?.root.to_hex(),
                "second_root": ledger.tree_head(second)?.root.to_hex(),
                "path": hexes(&proof.path),
            })
        }
    };
    say!("{}", serde_json::to_string_pretty(&json)?);
    Ok(ExitCode::SUCCESS)
}

/// Opens the ledger of a data directory that has one.
fn open_ledger(data: &Path) -> anyhow::Result<Ledger> {
    let (ledger_dir, _, _) = data_dir::paths(data);
    if !ledger_dir.join("db").exists() {
        return Err(anyhow!(
            "no ledger in {}; give the data directory with --data",
            data.display()
        ));
    }
    Ok(data_dir::open_in_reserve(data, || {
        Ok(Ledger::open(&ledger_dir, LedgerConfig::default())?)
    })?)
}

fn key_show(data: &Path) -> anyhow::Result<ExitCode> {
    let path = data_dir::log_key_path(data);
    if !path.exists() {
        return Err(anyhow!(
            "no log key in {}; it is made on the first `careledger serve` (give --data for another directory)",
            data.display()
        ));
    }
    let key = careledger_core::checkpoint::LogKey::open(&path)?;
    say!("{}", key.verifier_key());
    Ok(ExitCode::SUCCESS)
}

/// How long stopping may take to save the read models and close the stores.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// Signs the last checkpoint, saves the read models and closes the stores, giving up after `deadline`: on a failing disk
/// sled can wait forever for a write that never completes, and a stop must not hang. Giving up
/// loses nothing acknowledged (every acknowledged event is durable); the read models catch up
/// from the ledger on the next start.
fn close_within(
    (dir, app): (DataDir, careledger_app::App),
    checkpointer: Option<careledger_core::checkpoint::Checkpointer>,
    access: Option<std::sync::Arc<careledger_app::access_log::AccessLog>>,
    deadline: Duration,
) -> anyhow::Result<ExitCode> {
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // What is queued is written, and the access log's last checkpoint signed.
        if let Some(access) = access {
            access.finish();
        }
        // The last checkpoint covers every acknowledged event.
        if let Some(checkpointer) = checkpointer {
            checkpointer.finish();
        }
        let saved = app.finish();
        drop(dir);
        let _ = done.send(saved);
    });
    match finished.recv_timeout(deadline) {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "saving the read models failed; they catch up from the ledger on the next start");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            tracing::error!(
                "closing the data directory did not finish within {} s (is the disk failing?); stopping anyway: acknowledged events are durable and the read models catch up on the next start",
                deadline.as_secs()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn run_demo(data: &Path) -> anyhow::Result<ExitCode> {
    let dir = DataDir::open(data)?;
    let app = AppState::start(&dir).app.clone();
    let report = demo::run(&app)?;
    app.finish()?;
    say!("Wrote {} events to {}:", report.events, data.display());
    for line in &report.lines {
        say!("  {line}");
    }
    if !report.tokens.is_empty() {
        say!("\nDemo actors and their bearer tokens (shown once):");
        for (id, role, token) in &report.tokens {
            say!("  {id:<20} {role:<20} {token}");
        }
    }
    let head = dir.ledger.head();
    say!("\nHead: position {}, hash {}", head.position, head.hash);
    Ok(ExitCode::SUCCESS)
}

/// `verify --url`: the running server verifies its whole chain (`GET /verify`, auditors only).
fn verify_remote(url: &str, server: &crate::remote::ServerArgs) -> anyhow::Result<ExitCode> {
    let Some(remote) = server.remote("an auditor's")? else {
        return Err(anyhow!("--url is needed to verify through a server"));
    };
    let started = std::time::Instant::now();
    let answer = remote.send("GET", "/verify", None);
    let view: wire::VerifyView = match answer {
        Ok(value) => serde_json::from_value(value)
            .context("the server's answer to /verify is not what this build reads")?,
        Err(e) => {
            say!("FAILED: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    say!(
        "ok: {} events verified by the server at {url} in {:.2?}; head hash {}",
        view.verified,
        started.elapsed(),
        view.head_hash
    );
    Ok(ExitCode::SUCCESS)
}

fn verify(data: &Path) -> anyhow::Result<ExitCode> {
    let ledger = open_ledger(data)?;
    let checkpoint = latest_checkpoint(data)?;
    let started = std::time::Instant::now();
    let mut progress = |done, total| {
        if total > 0 {
            eprint!("\rverifying: {done}/{total} events");
            let _ = std::io::stderr().flush();
        }
    };
    // With a signed checkpoint, the heads map it signed is recomputed in the same pass.
    let (report, heads) = match &checkpoint {
        Some(checkpoint) => ledger.verify_for_checkpoint(&mut progress, checkpoint.size())?,
        None => (ledger.verify_with_roots(&mut progress, &[])?, None),
    };
    eprintln!();
    match &report.problem {
        None => {
            let tree = check_tree(data, &ledger, &report, checkpoint.as_ref(), heads)?;
            if let Some(problem) = &tree.problem {
                say!("FAILED: {problem}");
                return Ok(ExitCode::FAILURE);
            }
            say!(
                "ok: {} events verified in {:.2?}; head hash {}; Merkle root {} at size {}",
                report.verified,
                started.elapsed(),
                report.head_hash,
                tree.root,
                tree.size
            );
            if let Some(loss) = careledger_app::backup::recorded_loss(data)? {
                say!(
                    "recorded loss (signed by the log key): {} acknowledged events after position {} \
                     of a signed checkpoint of size {} were lost in a restore; recorded at {}: {}",
                    loss.witnessed_size - loss.restored_size,
                    loss.restored_size,
                    loss.witnessed_size,
                    loss.recorded_at,
                    loss.reason
                );
            }
            if careledger_app::access_log::dir(data).exists() {
                return crate::access_log::verify(data);
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(problem) => {
            say!("FAILED: {problem}");
            say!(
                "{} events before it verified; last good hash {}",
                report.verified,
                report.head_hash
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The log's latest signed checkpoint, checked against the log key, when the log has signed one.
fn latest_checkpoint(
    data: &Path,
) -> anyhow::Result<Option<careledger_core::checkpoint::Checkpoint>> {
    use careledger_core::checkpoint::{read_latest, LogKey};
    let key_file = data_dir::log_key_path(data);
    if !key_file.exists() {
        return Ok(None);
    }
    let key = LogKey::open(&key_file)?;
    Ok(read_latest(&data_dir::checkpoint_path(data), &key)?)
}

/// The Merkle tree as the verification `report` recomputed it from the chain, against the
/// stored tree and, when the log has signed one, its last `checkpoint` and the heads map it
/// signed, against the one the verification recomputed (`heads`).
fn check_tree(
    data: &Path,
    ledger: &Ledger,
    report: &careledger_core::verify::VerifyReport,
    checkpoint: Option<&careledger_core::checkpoint::Checkpoint>,
    heads: Option<careledger_core::Result<careledger_core::heads::HeadsMap>>,
) -> anyhow::Result<careledger_core::checkpoint::TreeCheck> {
    use careledger_core::heads;
    let mut check = careledger_core::checkpoint::check_tree_of(report, ledger, checkpoint)?;
    if check.problem.is_none() && checkpoint.is_some() {
        let note = std::fs::read_to_string(data_dir::checkpoint_path(data))?;
        let note = careledger_core::note::Note::parse(&note)?;
        check.problem = match heads {
            Some(map) => heads::check_signed_of(map, note.text())?,
            // Not recomputed (the ledger is shorter than the checkpoint, which the tree's
            // check reports first): read from the events.
            None => heads::check_signed(ledger, note.text())?,
        };
    }
    Ok(check)
}

/// Opens the ledger and the read models, caught up.
fn open_read_models(
    data: &Path,
    config: ProjectionConfig,
) -> anyhow::Result<(Ledger, Projections)> {
    let (ledger_dir, projections_dir, _) = data_dir::paths(data);
    if !ledger_dir.join("db").exists() {
        return Err(anyhow!(
            "no ledger in {}; give the data directory with --data",
            data.display()
        ));
    }
    // On a full disk too (sled writes as it opens): in the reserve's space.
    Ok(data_dir::open_in_reserve(data, || {
        let ledger = Ledger::open(&ledger_dir, LedgerConfig::default())?;
        let projections = Projections::open(&projections_dir, config)?;
        projections.catch_up(&ledger)?;
        Ok((ledger, projections))
    })?)
}

fn fhir(args: &FhirArgs) -> anyhow::Result<ExitCode> {
    let patient = wire::patient_id(&args.patient)?;
    let since = args
        .since
        .as_deref()
        .map(|raw| {
            Timestamp::parse_rfc3339(raw).with_context(|| {
                format!("--since must be an instant such as 2026-01-31T12:00:00Z, got {raw:?}")
            })
        })
        .transpose()?;
    let (ledger, projections) = open_read_models(&args.data.data, args.read_models.config())?;
    let events = ledger.read_stream(&patient, 1, usize::MAX)?;
    let view = projections
        .view(&patient)?
        .ok_or_else(|| anyhow!("no events for patient {patient}"))?;
    let view = &*view;
    let key = careledger_fhir::patient_key(view)
        .ok_or_else(|| anyhow!("no events for patient {patient}"))?;
    let self_url = format!(
        "{}/Patient/{key}/$everything",
        args.base.trim_end_matches('/')
    );
    let request = careledger_fhir::Request {
        base: args.base.trim_end_matches('/'),
        self_url: &self_url,
        since,
    };
    let bundle = careledger_fhir::everything(&patient, view, &events, request);
    say!("{}", serde_json::to_string_pretty(&bundle)?);
    Ok(ExitCode::SUCCESS)
}

/// Prints `value` as JSON for programs.
fn print_json(value: &impl serde::Serialize) -> anyhow::Result<ExitCode> {
    say!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

/// `value` with everything but unreserved characters percent-encoded, for a query string.
fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl PatientArgs {
    /// The running server named by `--url`, if one is.
    fn remote(&self) -> anyhow::Result<Option<Remote>> {
        self.server.remote("the reader's")
    }

    /// GET `path` of the patient's record from the running server, as `T`.
    fn fetch<T: serde::de::DeserializeOwned>(
        &self,
        remote: &Remote,
        path: &str,
    ) -> anyhow::Result<T> {
        let patient = query_value(&self.patient);
        let value = remote.send("GET", &format!("/patients/{patient}{path}"), None)?;
        serde_json::from_value(value)
            .with_context(|| format!("the server's answer to {path} is not what this build reads"))
    }
}

fn plan(args: &PatientArgs) -> anyhow::Result<ExitCode> {
    let patient = wire::patient_id(&args.patient)?;
    let (view, signals) = match args.remote()? {
        Some(remote) => {
            let view: PlanView = args.fetch(&remote, "/plan")?;
            let signals: wire::SignalListView = args.fetch(&remote, "/signals")?;
            (view, signals.signals)
        }
        None => {
            let (_ledger, projections) =
                open_read_models(&args.data.data, args.read_models.config())?;
            let view = projections
                .view(&patient)?
                .ok_or_else(|| anyhow!("no events for patient {patient}"))?;
            let view = &*view;
            let signals = signals::signals(view, projections.config(), render::now());
            (
                PlanView::new(&patient, &view.plan, projections.config().trend_readings),
                signals.iter().map(wire::SignalView::from).collect(),
            )
        }
    };
    if args.json {
        return print_json(&view);
    }
    render::plan(&view, &signals, args.lang.lang);
    Ok(ExitCode::SUCCESS)
}

fn audit_cmd(
    args: &PatientArgs,
    element: Option<String>,
    actor: Option<String>,
) -> anyhow::Result<ExitCode> {
    let patient = wire::patient_id(&args.patient)?;
    let actor = actor.map(|a| ActorId::parse(&a)).transpose()?;
    let entries: Vec<AuditEntryView> = match args.remote()? {
        Some(remote) => {
            let mut query = Vec::new();
            if let Some(element) = &element {
                query.push(format!("element={}", query_value(element)));
            }
            if let Some(actor) = &actor {
                query.push(format!("actor={}", query_value(actor.as_str())));
            }
            let path = format!("/audit?{}", query.join("&"));
            let trail: wire::AuditTrailView = args.fetch(&remote, &path)?;
            trail.entries
        }
        None => {
            let (_ledger, projections) =
                open_read_models(&args.data.data, args.read_models.config())?;
            let filter = AuditFilter {
                element,
                actor,
                ..AuditFilter::default()
            };
            let view = projections
                .view(&patient)?
                .ok_or_else(|| anyhow!("no events for patient {patient}"))?;
            let view = &*view;
            audit::query(view, &filter)
                .into_iter()
                .map(AuditEntryView::from)
                .collect()
        }
    };
    if args.json {
        return print_json(&entries);
    }
    render::audit(&entries, args.lang.lang);
    Ok(ExitCode::SUCCESS)
}

fn notifications_cmd(args: &PatientArgs, status: &str) -> anyhow::Result<ExitCode> {
    let patient = wire::patient_id(&args.patient)?;
    let which = match status {
        "open" => Which::Open,
        "overdue" => Which::Overdue,
        "all" => Which::All,
        other => {
            return Err(anyhow!(
                "--status {other:?} is unknown; use open, overdue or all"
            ))
        }
    };
    let list: Vec<NotificationView> = match args.remote()? {
        Some(remote) => {
            let listed: wire::NotificationListView =
                args.fetch(&remote, &format!("/notifications?status={status}"))?;
            listed.notifications
        }
        None => {
            let (_ledger, projections) =
                open_read_models(&args.data.data, args.read_models.config())?;
            let view = projections
                .view(&patient)?
                .ok_or_else(|| anyhow!("no events for patient {patient}"))?;
            let view = &*view;
            let now = render::now();
            let config = projections.config();
            [Line::First, Line::Second]
                .into_iter()
                .flat_map(|l| notifications::for_line(view, l, which, config, now))
                .map(|n| NotificationView::new(n, n.is_overdue(config, now)))
                .collect()
        }
    };
    if args.json {
        return print_json(&list);
    }
    render::notifications(&list, args.lang.lang);
    Ok(ExitCode::SUCCESS)
}

fn rebuild(data: &Path) -> anyhow::Result<ExitCode> {
    let (ledger_dir, projections_dir, _) = data_dir::paths(data);
    let ledger = Ledger::open(&ledger_dir, LedgerConfig::default())?;
    let projections = Projections::open(&projections_dir, ProjectionConfig::default())?;
    let started = std::time::Instant::now();
    let applied = projections.rebuild(&ledger, &mut |done, total| {
        eprint!("\rrebuilding: {done}/{total} events");
        let _ = std::io::stderr().flush();
    })?;
    eprintln!();
    projections.flush()?;
    say!(
        "rebuilt the read models from {applied} events in {:.2?}",
        started.elapsed()
    );
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled: a signal sent the moment the server says it is serving, or answers
/// its first request, then stops it cleanly (in-flight writes finished, the last checkpoint
/// signed) instead of killing it by the signal's default action. Call it inside the runtime,
/// before the listener is bound.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    let received = |handler: std::io::Result<Signal>| async move {
        match handler {
            Ok(mut handler) => {
                handler.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    async move {
        tokio::select! {
            () = received(interrupt) => {},
            () = received(terminate) => {},
        }
    }
}
