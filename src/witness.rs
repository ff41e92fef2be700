//! Witnesses on the command line: `careledger witness keygen|serve`, which a second party (the
//! GP cooperative, the hospital) runs to cosign the log's checkpoints, and `serve --witness`,
//! the witnesses the log pushes its checkpoints to.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use clap::Subcommand;

use careledger_app::witnesses::{PushSettings, WitnessTarget, Witnesses};
use careledger_app::DataDir;
use careledger_core::checkpoint::Checkpointer;
use careledger_core::note::VerifierKey;
use careledger_core::witness::{create_witness_key, read_witness_key, Witness};

/// A witness's key and server.
#[derive(Subcommand)]
pub enum WitnessCommand {
    /// Make a witness's cosigner key in --out (mode 0600, never overwritten) and print its
    /// verifier key, which the log's operator gives `careledger serve --witness`.
    Keygen {
        /// The witness's name, a schema-less URL naming it, e.g. witness.example/gp-cooperative.
        #[arg(long)]
        name: String,
        /// The file to create.
        #[arg(long)]
        out: PathBuf,
    },
    /// Run a witness: cosign each checkpoint of the log that extends the last one cosigned, and
    /// refuse (loudly) one that is smaller or inconsistent with it. Stop it with Ctrl-C or
    /// SIGTERM.
    Serve {
        /// The witness's private key, made by `careledger witness keygen`.
        #[arg(long, env = "CARELEDGER_WITNESS_KEY")]
        key: PathBuf,
        /// The log's verifier key, as `careledger key show` prints it (repeatable: one per log
        /// followed, or several keys of one log).
        #[arg(long = "log-key", required = true)]
        log_keys: Vec<String>,
        /// The witness's state directory: the latest checkpoint cosigned per log. Back it up;
        /// a witness that loses it could be made to cosign a fork.
        #[arg(long, env = "CARELEDGER_WITNESS_STATE")]
        state: PathBuf,
        /// Address to listen on.
        #[arg(
            long,
            default_value = "127.0.0.1:7380",
            env = "CARELEDGER_WITNESS_ADDR"
        )]
        addr: String,
    },
    /// Check a cosigned checkpoint (a file, or standard input with -): the log's signature and
    /// a valid cosignature by every --witness-key. Prints the size, root and each cosignature's
    /// time; exits 1 when anything is missing or does not verify.
    Verify {
        /// The log's verifier key, as `careledger key show` prints it.
        #[arg(long = "log-key")]
        log_key: String,
        /// A witness whose cosignature is required (repeatable).
        #[arg(long = "witness-key", required = true)]
        witness_keys: Vec<String>,
        /// The cosigned checkpoint: a file, or - for standard input.
        checkpoint: PathBuf,
    },
}

/// Runs a `careledger witness` command.
pub fn run(command: WitnessCommand) -> anyhow::Result<ExitCode> {
    match command {
        WitnessCommand::Keygen { name, out } => keygen(&name, &out),
        WitnessCommand::Serve {
            key,
            log_keys,
            state,
            addr,
        } => serve(&key, &log_keys, &state, &addr),
        WitnessCommand::Verify {
            log_key,
            witness_keys,
            checkpoint,
        } => verify(&log_key, &witness_keys, &checkpoint),
    }
}

fn verify(log_key: &str, witness_keys: &[String], file: &Path) -> anyhow::Result<ExitCode> {
    let log = VerifierKey::parse(log_key).context("--log-key")?;
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let (checkpoint, note) = careledger_core::checkpoint::Checkpoint::open(&text, &log)
        .context("the checkpoint does not carry a valid signature by the log's key")?;
    say!(
        "checkpoint {} size {} root {}",
        checkpoint.origin(),
        checkpoint.size(),
        checkpoint.root()
    );
    let mut all = true;
    for spec in witness_keys {
        let witness =
            VerifierKey::parse(spec).with_context(|| format!("--witness-key {spec:?}"))?;
        let found = note.signatures().iter().find(|s| s.is_by(&witness));
        match found.map(|s| s.verify_cosignature(&witness, note.text())) {
            Some(Ok(time)) => say!(
                "cosigned by {} at {time} (seconds since 1970, UTC)",
                witness.name()
            ),
            Some(Err(e)) => {
                all = false;
                say!("NOT cosigned by {}: {e}", witness.name());
            }
            None => {
                all = false;
                say!(
                    "NOT cosigned by {}: no cosignature by that key",
                    witness.name()
                );
            }
        }
    }
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn keygen(name: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let signer = create_witness_key(out, name)?;
    say!("{}", signer.verifier_key());
    Ok(ExitCode::SUCCESS)
}

fn serve(key: &Path, log_keys: &[String], state: &Path, addr: &str) -> anyhow::Result<ExitCode> {
    let signer = read_witness_key(key)?;
    let logs = log_keys
        .iter()
        .map(|k| VerifierKey::parse(k).with_context(|| format!("--log-key {k:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let witness = Arc::new(Witness::open(signer, &logs, state)?);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let stop = crate::cli::shutdown_signal();
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        tracing::info!(
            addr = %listener.local_addr()?,
            witness = %witness.verifier_key(),
            logs = ?log_keys,
            state = %state.display(),
            "witness serving"
        );
        careledger_api::witness::serve(listener, witness, stop).await?;
        tracing::info!("witness stopped");
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// The witnesses `careledger serve` pushes every new checkpoint to.
#[derive(clap::Args, Clone, Debug)]
pub struct WitnessArgs {
    /// A witness to push every new checkpoint to, as URL=VKEY: its URL (http://host:port) and
    /// the verifier key `careledger witness keygen` printed for it. Repeatable; in the
    /// environment, several separated by commas. Pushing runs beside the server and never
    /// holds up an append; a witness that is down is tried again later.
    #[arg(long = "witness", env = "CARELEDGER_WITNESSES", value_delimiter = ',')]
    pub witnesses: Vec<String>,
}

impl WitnessArgs {
    /// The witnesses, checked (a malformed one refuses the start).
    pub fn targets(&self) -> anyhow::Result<Vec<WitnessTarget>> {
        self.witnesses
            .iter()
            .filter(|w| !w.trim().is_empty())
            .map(|w| WitnessTarget::parse(w).map_err(|e| anyhow!("--witness: {e}")))
            .collect()
    }
}

/// Starts pushing the checkpoints of `checkpointer` to `targets` on the current runtime;
/// nothing when there are no witnesses or no checkpoints.
pub fn start_pushing(
    dir: &DataDir,
    checkpointer: Option<&Checkpointer>,
    targets: Vec<WitnessTarget>,
) -> Option<Witnesses> {
    if targets.is_empty() {
        return None;
    }
    let Some(checkpointer) = checkpointer else {
        tracing::error!("no checkpoints are signed, so none is pushed to the witnesses");
        return None;
    };
    let urls: Vec<String> = targets.iter().map(|t| t.url().to_owned()).collect();
    let witnesses = Witnesses::start(
        dir.ledger.clone(),
        &dir.path,
        targets,
        Arc::new(careledger_api::witness::HttpWitnessClient::new()),
        PushSettings::default(),
    );
    witnesses.follow(checkpointer);
    tracing::info!(witnesses = ?urls, "pushing checkpoints to witnesses");
    Some(witnesses)
}
