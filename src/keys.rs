//! `careledger keys`: client systems' signing keys for signed appends (RFC 9421, ed25519).
//!
//! The operator registers and revokes an actor's keys with the server stopped (as `actors
//! add`); each is an event of the ledger's key stream recorded in the operator's name
//! (`careledger:operator`), so a key added by the operator is visible as such. `keygen` makes a
//! key pair for a client system.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use clap::Subcommand;

use careledger_api::signature::{base64_decode, base64_encode, public_key};
use careledger_app::actors::ActorStore;
use careledger_app::data_dir;
use careledger_app::keys::{operator_change_key, KeyChange};
use careledger_core::ids::{ActorId, ElementId, Text};
use careledger_core::{Ledger, LedgerConfig};

/// The data directory argument.
#[derive(clap::Args)]
pub struct DataArg {
    /// The data directory (holds ledger/, projections/ and actors/).
    #[arg(long, default_value = "careledger-data", env = "CARELEDGER_DATA")]
    data: std::path::PathBuf,
}

/// `careledger keys …`.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Register a client system's public key for an actor's signed requests, in the operator's
    /// name. Stop the server first.
    Register {
        #[command(flatten)]
        data: DataArg,
        /// The actor whose requests the key signs (a registered actor).
        #[arg(long)]
        actor: String,
        /// The key's id, as the `keyid` of the signatures names it; unique per actor.
        #[arg(long)]
        key_id: String,
        /// The ed25519 public key, 32 bytes in standard base64 (as `keys keygen` prints it).
        #[arg(long)]
        public_key: String,
        /// The client system that holds the private key.
        #[arg(long)]
        system: String,
        /// Why the operator registers it.
        #[arg(long)]
        reason: String,
    },
    /// Revoke an actor's signing key, in the operator's name. Stop the server first.
    Revoke {
        #[command(flatten)]
        data: DataArg,
        /// The actor.
        #[arg(long)]
        actor: String,
        /// The key's id.
        #[arg(long)]
        key_id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
    /// List the signing keys the key stream records, with who registered each.
    List {
        #[command(flatten)]
        data: DataArg,
    },
    /// Make an ed25519 key pair for a client system: writes the private key (32 bytes, standard
    /// base64, mode 0600) to --out and prints the public key to register.
    Keygen {
        /// The file for the private key; refused if it exists.
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

/// Runs a `keys` command.
pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Register {
            data,
            actor,
            key_id,
            public_key,
            system,
            reason,
        } => {
            let public_key: [u8; 32] = base64_decode(&public_key)
                .and_then(|k| k.try_into().ok())
                .ok_or_else(|| {
                anyhow!("--public-key: give the 32-byte ed25519 public key in standard base64")
            })?;
            let change = KeyChange::Register {
                key_id: ElementId::parse(&key_id).context("--key-id")?,
                public_key,
                system: Text::new(system).context("--system")?,
            };
            record_change(&data.data, &actor, change, &reason)
        }
        KeysCommand::Revoke {
            data,
            actor,
            key_id,
            reason,
        } => {
            let change = KeyChange::Revoke {
                key_id: ElementId::parse(&key_id).context("--key-id")?,
            };
            record_change(&data.data, &actor, change, &reason)
        }
        KeysCommand::List { data } => {
            let ledger = data_dir::open_existing_ledger(&data.data)?;
            for key in ledger.key_registry()?.iter() {
                let state = match key.revoked_at {
                    Some(p) => format!("revoked at position {p}"),
                    None => "in use".to_owned(),
                };
                say!(
                    "{:<24} {:<20} {}  registered at position {} by {}; {state}; system {}",
                    key.key.actor.as_str(),
                    key.key.key_id.as_str(),
                    base64_encode(&key.key.public_key),
                    key.registered_at,
                    key.registered_by.id,
                    key.key.system
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Keygen { out } => keygen(&out),
    }
}

fn record_change(
    data: &Path,
    actor: &str,
    change: KeyChange,
    reason: &str,
) -> anyhow::Result<ExitCode> {
    let actor = ActorId::parse(actor).context("--actor")?;
    let (ledger_dir, _, actors_dir) = data_dir::paths(data);
    let actors = ActorStore::open(&actors_dir)?;
    let ledger = Ledger::open(&ledger_dir, LedgerConfig::default())?;
    let outcome = operator_change_key(
        &ledger,
        &actors,
        &actor,
        change,
        Text::new(reason).context("--reason")?,
    )?;
    for e in &outcome.events {
        say!(
            "recorded at position {} in the key stream, hash {}",
            e.position,
            e.hash
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(out: &Path) -> anyhow::Result<ExitCode> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow!("no randomness: {e}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(out)
        .with_context(|| format!("{} (refused if it exists)", out.display()))?;
    std::io::Write::write_all(
        &mut file,
        format!("{}\n", base64_encode(&secret)).as_bytes(),
    )?;
    file.sync_all()?;
    say!("{}", base64_encode(&public_key(&secret)));
    eprintln!(
        "Private key written to {}; register the public key above for the actor \
         (POST /actors/me/keys, or `careledger keys register`).",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
