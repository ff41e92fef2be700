//! `careledger backup` (asks a running server to back its data directory up) and `careledger
//! restore` (a backup into an empty data directory; `--accept-loss` records acknowledged events
//! a restored ledger lacks).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;

use careledger_app::backup;

/// `careledger backup`.
#[derive(clap::Args)]
pub struct BackupArgs {
    /// Where the server writes the backup: an absolute path on the server's host, to an empty
    /// or absent directory.
    #[arg(long)]
    to: PathBuf,
    /// The running server's address (http://127.0.0.1:8080).
    #[arg(long, env = "CARELEDGER_URL")]
    url: String,
    /// An operator's bearer token.
    #[arg(long, env = "CARELEDGER_TOKEN", hide_env_values = true)]
    token: String,
    /// CAs (PEM) to trust for an https:// --url besides the system's.
    #[arg(long, env = "CARELEDGER_CA_FILE")]
    ca_file: Option<PathBuf>,
}

/// `careledger restore`.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The data directory to restore into: empty or absent (with --accept-loss: the restored
    /// one, server stopped).
    #[arg(long, default_value = "careledger-data", env = "CARELEDGER_DATA")]
    data: PathBuf,
    /// The backup's directory (what `careledger backup --to` wrote).
    #[arg(long, required_unless_present = "accept_loss")]
    from: Option<PathBuf>,
    /// A signed checkpoint newer than the backup (a witness's, a subscriber's, an auditor's):
    /// the restored ledger is checked against it and stays read-only while it lacks events it
    /// covers.
    #[arg(long, conflicts_with = "accept_loss")]
    checkpoint: Option<PathBuf>,
    /// A witness of the log (URL=VKEY, as `serve --witness` takes it; repeatable): asked which
    /// size it cosigned last, so that a restore older than what the witnesses hold is known.
    #[arg(
        long,
        conflicts_with = "accept_loss",
        env = "CARELEDGER_WITNESSES",
        value_delimiter = ','
    )]
    witness: Vec<String>,
    /// Record, signed with the log key, that the restored ledger lacks acknowledged events
    /// that cannot be brought back, so that it takes writes again; auditors see the record in
    /// /health and `careledger verify`.
    #[arg(long, requires = "reason")]
    accept_loss: bool,
    /// Why the loss is accepted, for the auditors who read it.
    #[arg(long)]
    reason: Option<String>,
}

/// Asks the server to back up and prints what it wrote, its secrets first.
pub fn backup_cmd(args: &BackupArgs) -> anyhow::Result<ExitCode> {
    if !args.to.is_absolute() {
        return Err(anyhow!(
            "--to {} is not an absolute path; give the directory as the server's host sees it (/...)",
            args.to.display()
        ));
    }
    let remote = crate::remote::Remote::new(&args.url, args.token.clone(), args.ca_file.as_ref())?;
    let body = serde_json::json!({ "to": args.to.display().to_string() });
    let answer = remote.send("POST", "/admin/backup", Some(body))?;
    let checked = match answer["checkpoint_size"].as_u64() {
        Some(size) => format!("checked against the signed checkpoint of size {size}"),
        None => "no checkpoint was signed yet, so it was checked against the head alone".into(),
    };
    say!(
        "Backed up and verified into {} (on the server's host): {} events, head {}, Merkle root {}; \
         {checked}.",
        answer["directory"].as_str().unwrap_or("?"),
        answer["ledger_size"],
        answer["head_hash"].as_str().unwrap_or("?"),
        answer["tree_root"].as_str().unwrap_or("?"),
    );
    say!("\nSECRETS in the copy: store it encrypted, readable by operators only:");
    for secret in answer["secrets"].as_array().into_iter().flatten() {
        say!(
            "  {:<12} {}",
            secret["path"].as_str().unwrap_or("?"),
            secret["what"].as_str().unwrap_or("?")
        );
    }
    say!("\nLeft out:");
    for line in answer["left_out"].as_array().into_iter().flatten() {
        say!("  {}", line.as_str().unwrap_or("?"));
    }
    say!("\nFiles:");
    for file in answer["files"].as_array().into_iter().flatten() {
        say!(
            "  {:>12}  {}",
            file["bytes"].as_u64().map_or("?".into(), |b| b.to_string()),
            file["path"].as_str().unwrap_or("?")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Restores a backup, or records a loss.
pub fn restore_cmd(args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    if args.accept_loss {
        let reason = args.reason.as_deref().unwrap_or_default();
        let loss = backup::accept_loss(&args.data, reason)?;
        say!(
            "Recorded, signed with the log key, in {}: the ledger holds {} events; {} acknowledged \
             events of the signed checkpoint of size {} are lost ({}). Writes resume on the next \
             start; /health and `careledger verify` show the record to auditors.",
            backup::recorded_loss_path(&args.data).display(),
            loss.restored_size,
            loss.witnessed_size - loss.restored_size,
            loss.witnessed_size,
            loss.reason
        );
        return Ok(ExitCode::SUCCESS);
    }
    let from = args
        .from
        .as_ref()
        .ok_or_else(|| anyhow!("give the backup with --from DIR"))?;
    let newer = args
        .checkpoint
        .as_ref()
        .map(|file| {
            std::fs::read_to_string(file)
                .map_err(|e| anyhow!("reading the checkpoint {}: {e}", file.display()))
        })
        .transpose()?;
    let data = std::path::absolute(&args.data)?;
    let witnesses = args
        .witness
        .iter()
        .map(|spec| careledger_app::witnesses::WitnessTarget::parse(spec))
        .collect::<Result<Vec<_>, _>>()?;
    let mut report = backup::restore(from, &data, newer.as_deref())?;
    if !witnesses.is_empty() {
        let client = careledger_api::witness::HttpWitnessClient::new();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let answers = runtime.block_on(backup::ask_witnesses(&data, &witnesses, &client))?;
        for answer in answers {
            match answer.size {
                Ok(size) => {
                    say!("Witness {} cosigned size {size} last.", answer.url);
                    if size > report.ledger_size {
                        let missing = size - report.ledger_size;
                        report.missing_events = report.missing_events.max(Some(missing));
                        report.latest_signed = report.latest_signed.max(Some(size));
                    }
                }
                Err(e) => say!(
                    "Witness {} did not say which size it cosigned: {e}; ask its operator (GET /<hex SHA-256 of the origin>/checkpoint).",
                    answer.url
                ),
            }
        }
    }
    say!(
        "Restored {} into {}: {} events verified, head {}; the read models are rebuilt on the first start.",
        from.display(),
        data.display(),
        report.ledger_size,
        report.head_hash
    );
    match report.missing_events {
        None => {
            say!(
                "The ledger is not behind any signed checkpoint known here (latest: {}).",
                report
                    .latest_signed
                    .map_or("none".into(), |size| format!("size {size}"))
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(missing) => {
            say!(
                "BEHIND: a signed checkpoint covers {} events; {missing} acknowledged events are \
                 missing. The server serves reads and refuses writes (503, /health 503) until \
                 they are brought back (restore a newer backup) or their loss is recorded: \
                 careledger restore --accept-loss --data {} --reason \"...\"",
                report.ledger_size + missing,
                data.display()
            );
            Ok(ExitCode::from(3))
        }
    }
}
