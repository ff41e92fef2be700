//! Online backup and restore of a data directory.
//!
//! A running server holds its data directory exclusively, so the server makes the backup
//! ([`App::backup`], asked for by an operator over HTTP): a consistent copy of everything
//! needed to serve again, verified before success is reported. The read models are left out:
//! they are derived state, rebuilt from the ledger on the first start after a restore.
//!
//! What the copy holds, in the layout of a data directory:
//! - `checkpoint`, `cosigned-checkpoint`: the latest signed checkpoint and the witnesses'
//!   cosignatures, read *before* the ledger's head is taken, so that the copy extends them;
//! - `ledger/`, `ledger-anchor`: the ledger's first P events, P the durable head
//!   ([`careledger_core::Ledger::copy_prefix`]: the chain is append-only and keyed by position);
//! - `log-key` (secret), `actors/` (token hashes: secret), `access-log/` (its store up to its
//!   durable position, its checkpoint);
//! - `backup-manifest`: what was copied, line by line.
//!
//! [`restore`] copies a backup into an empty data directory and verifies it. A restored ledger
//! that holds fewer events than a signed checkpoint known to be newer (`--checkpoint FILE`,
//! kept as `<data>/witnessed-checkpoint`) lacks acknowledged events: [`check_behind`] holds
//! writes until they are brought back or the operator records the loss ([`accept_loss`], a
//! note signed with the log key in `<data>/recorded-loss`, shown by `/health` and `careledger
//! verify`).

use std::path::{Path, PathBuf};

use careledger_core::checkpoint::{read_latest, Checkpoint, LogKey};
use careledger_core::merkle::TreeHead;
use careledger_core::note::Note;
use careledger_core::record::{Hash, Timestamp};
use careledger_core::{Ledger, LedgerConfig};

use crate::actors::{AccessRole, RegisteredActor};
use crate::data_dir::{checkpoint_path, log_key_path, paths};
use crate::error::AppError;
use crate::hold::{HoldKind, WriteHold, WriteHolds};
use crate::service::App;

/// The file naming what a backup holds.
pub const MANIFEST: &str = "backup-manifest";

/// A newer signed checkpoint than the restored ledger, given at restore.
pub fn witnessed_checkpoint_path(data: &Path) -> PathBuf {
    data.join("witnessed-checkpoint")
}

/// Sizes witnesses said they cosigned, asked at restore (`<size> <witness URL>` a line).
pub fn witnessed_sizes_path(data: &Path) -> PathBuf {
    data.join("witnessed-sizes")
}

/// The operator's signed record of acknowledged events lost in a restore.
pub fn recorded_loss_path(data: &Path) -> PathBuf {
    data.join("recorded-loss")
}

/// A secret a backup holds, and why it is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secret {
    /// The file or directory, relative to the backup.
    pub path: &'static str,
    /// What it is and what someone holding it can do.
    pub what: &'static str,
}

/// The secrets every backup holds.
pub const SECRETS: [Secret; 3] = [
    Secret {
        path: "log-key",
        what: "the log's ed25519 signing key: whoever holds it can sign checkpoints (and access \
               log checkpoints) in the log's name",
    },
    Secret {
        path: "actors/",
        what: "every actor's token hashes: not the tokens themselves, but enough to test \
               guessed tokens offline",
    },
    Secret {
        path: "access-log/",
        what: "who accessed which patient's record, when (NEN 7513): patient data",
    },
];

/// What a backup wrote.
#[derive(Clone, Debug)]
pub struct BackupReport {
    /// The backup's directory.
    pub directory: PathBuf,
    /// Events copied: the durable head when the backup began.
    pub ledger_size: u64,
    /// The copy's head hash (the ledger's at that size).
    pub head_hash: Hash,
    /// The Merkle root at that size.
    pub tree_root: String,
    /// The latest signed checkpoint's size, when there is one; the copy was checked against it.
    pub checkpoint_size: Option<u64>,
    /// Access log entries copied.
    pub access_log_entries: Option<u64>,
    /// Actors copied.
    pub actors: u64,
    /// Every file written, relative to the directory, with its size in bytes.
    pub files: Vec<(String, u64)>,
    /// The secrets in the copy.
    pub secrets: Vec<Secret>,
    /// What is left out and why.
    pub left_out: Vec<String>,
}

fn store_error(context: &'static str) -> impl Fn(std::io::Error) -> AppError {
    move |e| AppError::Store {
        context,
        detail: e.to_string(),
    }
}

/// Refuses a backup or restore target that is not absolute, or not empty.
pub fn check_target(dir: &Path, what: &str) -> Result<(), AppError> {
    if !dir.is_absolute() {
        return Err(AppError::Invalid {
            code: "path_not_absolute".into(),
            message: format!(
                "the {what} {} is not an absolute path; give it from the root (/...), as seen \
                 on the server's host",
                dir.display()
            ),
        });
    }
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(AppError::Invalid {
            code: "directory_not_empty".into(),
            message: format!(
                "the {what} {} is not empty; give an empty or absent directory (nothing in it is \
                 changed)",
                dir.display()
            ),
        }),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AppError::Invalid {
            code: "directory_unusable".into(),
            message: format!("the {what} {} cannot be used: {e}", dir.display()),
        }),
    }
}

impl App {
    /// Backs the data directory up into `to` (absolute, empty or absent) while writes go on,
    /// and verifies the copy before it reports; the operator's. `access_log` is the server's
    /// access log, when it keeps one. Blocks: call it on a blocking thread.
    pub fn backup(
        &self,
        caller: &RegisteredActor,
        to: &Path,
        access_log: Option<&crate::access_log::AccessLog>,
    ) -> Result<BackupReport, AppError> {
        if caller.role != AccessRole::Operator {
            return Err(AppError::Forbidden(format!(
                "backups are made by an operator; you act as {}",
                caller.role.as_str()
            )));
        }
        check_target(to, "backup directory")?;
        std::fs::create_dir_all(to).map_err(store_error("creating the backup directory"))?;
        // The checkpoints first: the ledger's head, taken after, is at least their size.
        for name in ["checkpoint", "cosigned-checkpoint", "log-key"] {
            copy_file(&self.path.join(name), &to.join(name))?;
        }
        let size = self.ledger.head().position;
        let (ledger_dir, _, actors_dir) = paths(to);
        let copied = self.ledger.copy_prefix(&ledger_dir, size)?;
        let actors = self.actors.copy_to(&actors_dir)?;
        let access_log_entries = access_log.map(|log| log.copy_into(to)).transpose()?;
        let checkpoint_size = check_copy_against_checkpoint(to)?;
        let tree_root = copied.tree.root.to_hex();
        write_manifest(to, size, &copied.head_hash, &tree_root, checkpoint_size)?;
        Ok(BackupReport {
            directory: to.to_owned(),
            ledger_size: size,
            head_hash: copied.head_hash,
            tree_root,
            checkpoint_size,
            access_log_entries,
            actors,
            files: files_in(to)?,
            secrets: SECRETS.to_vec(),
            left_out: vec![
                "projections/: the read models, derived state; rebuilt from the ledger on the \
                 first start after a restore"
                    .into(),
                "reserve, access-log/reserve: disk space kept in reserve, made again on start"
                    .into(),
            ],
        })
    }
}

fn copy_file(from: &Path, to: &Path) -> Result<(), AppError> {
    match std::fs::copy(from, to) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(AppError::Store {
            context: "copying a file",
            detail: format!("{} to {}: {e}", from.display(), to.display()),
        }),
    }
}

/// The latest checkpoint the data directory `dir` holds, checked against its log key.
fn signed_checkpoint(dir: &Path) -> Result<Option<Checkpoint>, AppError> {
    let key_file = log_key_path(dir);
    if !key_file.exists() {
        return Ok(None);
    }
    let key = LogKey::open(&key_file).map_err(checkpoint_error)?;
    read_latest(&checkpoint_path(dir), &key).map_err(checkpoint_error)
}

/// Checks a copy that [`Ledger::copy_prefix`] verified against the latest signed checkpoint
/// the data directory `dir` holds: the copy's tree, built from its verified frames when it was
/// first opened, must reach the checkpoint's size with its root. The checkpoint's size.
fn check_copy_against_checkpoint(dir: &Path) -> Result<Option<u64>, AppError> {
    let Some(checkpoint) = signed_checkpoint(dir)? else {
        return Ok(None);
    };
    let ledger = Ledger::open(&paths(dir).0, LedgerConfig::default())?;
    let check = careledger_core::checkpoint::check_stored_tree(&ledger, Some(&checkpoint))
        .map_err(checkpoint_error)?;
    consistent(dir, check)?;
    Ok(Some(checkpoint.size()))
}

/// Verifies the restored ledger of the data directory `dir`, opened as `ledger`, and checks it
/// against the latest signed checkpoint `dir` holds, in one pass over its events; the
/// checkpoint's size.
fn verify_restored(dir: &Path, ledger: &Ledger) -> Result<Option<u64>, AppError> {
    let checkpoint = signed_checkpoint(dir)?;
    let sizes: Vec<u64> = checkpoint.iter().map(Checkpoint::size).collect();
    let report = ledger.verify_with_roots(&mut |_, _| {}, &sizes)?;
    if let Some(problem) = report.problem {
        return Err(AppError::Conflict(format!(
            "the restored ledger does not verify: {problem}; restore another backup"
        )));
    }
    let check = careledger_core::checkpoint::check_tree_of(&report, ledger, checkpoint.as_ref())
        .map_err(checkpoint_error)?;
    consistent(dir, check)?;
    Ok(checkpoint.map(|c| c.size()))
}

/// Refuses the copy in `dir` when the check of its tree against its signed checkpoint found a
/// problem.
fn consistent(dir: &Path, check: careledger_core::checkpoint::TreeCheck) -> Result<(), AppError> {
    match check.problem {
        Some(problem) => Err(AppError::Conflict(format!(
            "the copy in {} is not consistent with its signed checkpoint: {problem}",
            dir.display()
        ))),
        None => Ok(()),
    }
}

fn checkpoint_error(e: impl std::fmt::Display) -> AppError {
    AppError::Conflict(format!("the signed checkpoint: {e}"))
}

fn write_manifest(
    to: &Path,
    size: u64,
    head: &Hash,
    root: &str,
    checkpoint: Option<u64>,
) -> Result<(), AppError> {
    let text = format!(
        "careledger backup v1\nmade_at {}\nledger_size {size}\nhead_hash {}\ntree_root {root}\n\
         checkpoint_size {}\nread_models left out: rebuilt from the ledger on the first start\n\
         secrets: log-key, actors/ (token hashes), access-log/ (patient data)\n",
        Timestamp::now(),
        head.to_hex(),
        checkpoint.map_or("none".into(), |c| c.to_string()),
    );
    std::fs::write(to.join(MANIFEST), text).map_err(store_error("writing the backup's manifest"))
}

/// Every file under `dir`, relative, with its size, sorted.
fn files_in(dir: &Path) -> Result<Vec<(String, u64)>, AppError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at).map_err(store_error("listing the backup"))? {
            let entry = entry.map_err(store_error("listing the backup"))?;
            let meta = entry
                .metadata()
                .map_err(store_error("listing the backup"))?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                let relative = entry.path();
                let relative = relative.strip_prefix(dir).unwrap_or(&relative);
                out.push((relative.display().to_string(), meta.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Copies the directory tree `from` into `to`, file by file, each synced.
fn copy_tree(from: &Path, to: &Path) -> Result<(), AppError> {
    std::fs::create_dir_all(to).map_err(store_error("creating the data directory"))?;
    for entry in std::fs::read_dir(from).map_err(store_error("reading the backup"))? {
        let entry = entry.map_err(store_error("reading the backup"))?;
        let target = to.join(entry.file_name());
        if entry
            .file_type()
            .map_err(store_error("reading the backup"))?
            .is_dir()
        {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(store_error("copying the backup"))?;
            std::fs::File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(store_error("syncing the restored files"))?;
        }
    }
    Ok(())
}

/// What a restore found.
#[derive(Clone, Debug)]
pub struct RestoreReport {
    /// Events restored.
    pub ledger_size: u64,
    /// The restored head hash.
    pub head_hash: Hash,
    /// The latest signed checkpoint known (the backup's, or the newer one given) and its size.
    pub latest_signed: Option<u64>,
    /// Acknowledged events the restored ledger lacks, when it is behind a signed checkpoint.
    pub missing_events: Option<u64>,
}

/// Restores the backup in `from` into the empty data directory `data`: copies it, opens and
/// verifies the ledger (chain, index, anchor, the backup's checkpoint). `newer` is a signed
/// checkpoint known to be later than the backup (a witness's, a subscriber's): checked against
/// the log key, kept as `<data>/witnessed-checkpoint` when it covers more events than the
/// backup holds, which then holds writes until they are brought back or the loss is recorded.
pub fn restore(from: &Path, data: &Path, newer: Option<&str>) -> Result<RestoreReport, AppError> {
    if !from.join(MANIFEST).exists() || !paths(from).0.join("db").exists() {
        return Err(AppError::NotFound(format!(
            "{} holds no careledger backup (no {MANIFEST}, no ledger/); give the directory `careledger backup --to` wrote",
            from.display()
        )));
    }
    check_target(data, "data directory")?;
    let newer = newer
        .map(|note| {
            let key = LogKey::open(&log_key_path(from)).map_err(checkpoint_error)?;
            Checkpoint::open(note, &key.verifier_key())
                .map(|(checkpoint, _)| (note, checkpoint))
                .map_err(|e| AppError::Invalid {
                    code: "checkpoint_refused".into(),
                    message: format!(
                        "the checkpoint given is not a checkpoint signed by this backup's log key: {e}"
                    ),
                })
        })
        .transpose()?;
    copy_tree(from, data)?;
    let _ = std::fs::remove_file(data.join(MANIFEST));
    let ledger = Ledger::open(&paths(data).0, LedgerConfig::default())?;
    let backup_checkpoint = verify_restored(data, &ledger)?;
    let head = ledger.head();
    let mut latest_signed = backup_checkpoint;
    let mut missing_events = None;
    if let Some((note, checkpoint)) = newer {
        let size = checkpoint.size();
        if size <= head.position {
            // Within the restored ledger: it must be of this history.
            let root = ledger.tree_head(size)?.root;
            if root != checkpoint.root() {
                return Err(AppError::Conflict(format!(
                    "the checkpoint given (size {size}) is not of the restored ledger's history: \
                     its root differs"
                )));
            }
        } else {
            std::fs::write(witnessed_checkpoint_path(data), note)
                .map_err(store_error("keeping the newer checkpoint"))?;
            missing_events = Some(size - head.position);
        }
        latest_signed = latest_signed.max(Some(size));
    }
    Ok(RestoreReport {
        ledger_size: head.position,
        head_hash: head.hash,
        latest_signed,
        missing_events,
    })
}

/// What one witness said of a restored ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessSize {
    /// The witness's URL.
    pub url: String,
    /// The size it cosigned last, or why it did not say.
    pub size: Result<u64, String>,
}

/// Asks each witness which size it cosigned last (C2SP tlog-witness: an add-checkpoint
/// request for the restored size, signed with the restored log key; a witness that holds
/// another size answers 409 with it, one that holds this one cosigns it again). Sizes beyond
/// the restored ledger are kept in `<data>/witnessed-sizes`, so that the data directory opens
/// with writes held until the events are back or their loss is recorded.
pub async fn ask_witnesses(
    data: &Path,
    witnesses: &[crate::witnesses::WitnessTarget],
    client: &dyn crate::witnesses::WitnessClient,
) -> Result<Vec<WitnessSize>, AppError> {
    let (size, body) = {
        let key = LogKey::open(&log_key_path(data)).map_err(checkpoint_error)?;
        let ledger = Ledger::open(&paths(data).0, LedgerConfig::default())?;
        let size = ledger.head().position;
        let note = key
            .sign(ledger.tree_head(size)?)
            .map_err(checkpoint_error)?;
        let body = careledger_core::witness::AddCheckpoint::new(size, vec![], &note.to_string())
            .map_err(checkpoint_error)?
            .to_bytes();
        (size, body)
    };
    let mut answers = Vec::new();
    for witness in witnesses {
        let size = match client.add_checkpoint(witness.url(), body.clone()).await {
            Ok(crate::witnesses::WitnessReply::Cosigned(_)) => Ok(size),
            Ok(crate::witnesses::WitnessReply::Conflict(held)) => Ok(held),
            Ok(crate::witnesses::WitnessReply::Refused { status, body }) => {
                Err(format!("answered {status}: {body}"))
            }
            Err(e) => Err(e),
        };
        answers.push(WitnessSize {
            url: witness.url().to_owned(),
            size,
        });
    }
    let ahead: String = answers
        .iter()
        .filter_map(|a| match a.size {
            Ok(held) if held > size => Some(format!("{held} {}\n", a.url)),
            _ => None,
        })
        .collect();
    if !ahead.is_empty() {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(witnessed_sizes_path(data))
            .and_then(|mut f| f.write_all(ahead.as_bytes()).and_then(|()| f.sync_all()))
            .map_err(store_error("keeping the witnesses' sizes"))?;
    }
    Ok(answers)
}

/// Holds writes when the ledger of `data` is behind a newer signed checkpoint kept at restore
/// and no recorded loss covers it.
pub fn check_behind(data: &Path, ledger: &Ledger, holds: &WriteHolds) -> Result<(), AppError> {
    let Some(witnessed) = witnessed_size(data)? else {
        return Ok(());
    };
    let head = ledger.head().position;
    if witnessed <= head {
        return Ok(());
    }
    if recorded_loss(data)?.is_some_and(|loss| loss.witnessed_size >= witnessed) {
        return Ok(());
    }
    holds.hold(WriteHold {
        kind: HoldKind::BehindWitnessed,
        reason: format!(
            "the restored ledger holds {head} events, but a checkpoint of {witnessed} events \
             was signed (and cosigned by witnesses) before: {} acknowledged events are missing. Bring them back \
             (restore a newer backup), or record their loss: careledger restore --accept-loss \
             --data {} --reason \"...\"",
            witnessed - head,
            data.display()
        ),
        missing_events: Some(witnessed - head),
    });
    Ok(())
}

/// The largest size known to have been signed or cosigned after the backup: the newer signed
/// checkpoint kept at restore (its signature checked) and the sizes the witnesses said they
/// cosigned.
fn witnessed_size(data: &Path) -> Result<Option<u64>, AppError> {
    let from_witnesses = match std::fs::read_to_string(witnessed_sizes_path(data)) {
        Ok(text) => text
            .lines()
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .max(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(store_error("reading the witnesses' sizes")(e)),
    };
    Ok(signed_witnessed_size(data)?.max(from_witnesses))
}

/// The size of the newer signed checkpoint kept at restore, its signature checked.
fn signed_witnessed_size(data: &Path) -> Result<Option<u64>, AppError> {
    match std::fs::read_to_string(witnessed_checkpoint_path(data)) {
        Ok(note) => {
            let key = LogKey::open(&log_key_path(data)).map_err(checkpoint_error)?;
            Checkpoint::open(&note, &key.verifier_key())
                .map(|(c, _)| Some(c.size()))
                .map_err(checkpoint_error)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(store_error("reading the witnessed checkpoint")(e)),
    }
}

/// A recorded loss of acknowledged events, as signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedLoss {
    /// The ledger's size when it was recorded.
    pub restored_size: u64,
    /// The signed checkpoint's size it fell behind.
    pub witnessed_size: u64,
    /// Why, in the operator's words.
    pub reason: String,
    /// When.
    pub recorded_at: Timestamp,
}

/// The first extension line of a loss record.
const LOSS_LINE: &str = "careledger/recorded-loss/v1";

/// The origin loss records are signed under.
fn loss_origin(origin: &str) -> String {
    format!("{origin}/recorded-loss")
}

/// Records, with the server stopped, that the restored ledger of `data` lacks the events a
/// newer signed checkpoint covered: a note signed with the log key (under origin
/// `<origin>/recorded-loss`), with the restored tree head, the checkpoint's size, the time and
/// the reason, in `<data>/recorded-loss`. Writes are taken again on the next start; the record
/// stays, for auditors.
pub fn accept_loss(data: &Path, reason: &str) -> Result<RecordedLoss, AppError> {
    if reason.trim().is_empty() {
        return Err(AppError::Invalid {
            code: "reason_required".into(),
            message: "say why the loss is accepted (--reason), for the auditors who read it".into(),
        });
    }
    let Some(witnessed) = witnessed_size(data)? else {
        return Err(AppError::NotFound(format!(
            "{} holds no newer signed or cosigned checkpoint: nothing is known to be lost",
            data.display()
        )));
    };
    let key = LogKey::open(&log_key_path(data)).map_err(checkpoint_error)?;
    let ledger = Ledger::open(&paths(data).0, LedgerConfig::default())?;
    let head = ledger.head().position;
    if witnessed <= head {
        return Err(AppError::Conflict(format!(
            "the ledger holds {head} events, as many as the signed checkpoint of {witnessed}: \
             nothing is lost"
        )));
    }
    let tree = ledger.tree_head(head)?;
    let loss = RecordedLoss {
        restored_size: head,
        witnessed_size: witnessed,
        reason: reason.trim().to_owned(),
        recorded_at: Timestamp::now(),
    };
    let line = format!(
        "{LOSS_LINE} witnessed={witnessed} missing={} recorded_at={} reason={}",
        witnessed - head,
        loss.recorded_at.micros(),
        hex::encode(loss.reason.as_bytes())
    );
    let note = key
        .for_origin(&loss_origin(key.origin()))
        .and_then(|k| {
            k.sign_extended(
                TreeHead {
                    size: head,
                    root: tree.root,
                },
                &[line],
            )
        })
        .map_err(checkpoint_error)?;
    std::fs::write(recorded_loss_path(data), note.to_string())
        .map_err(store_error("writing the recorded loss"))?;
    tracing::warn!(
        missing = witnessed - head,
        reason = %loss.reason,
        "recorded the loss of acknowledged events"
    );
    Ok(loss)
}

/// The recorded loss of `data`, its signature checked with the log key; `None` when none.
pub fn recorded_loss(data: &Path) -> Result<Option<RecordedLoss>, AppError> {
    let text = match std::fs::read_to_string(recorded_loss_path(data)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(store_error("reading the recorded loss")(e)),
    };
    let key = LogKey::open(&log_key_path(data)).map_err(checkpoint_error)?;
    let key = key
        .for_origin(&loss_origin(key.origin()))
        .map_err(checkpoint_error)?;
    let note = Note::parse(&text).map_err(checkpoint_error)?;
    let body = note.verify(&key.verifier_key()).map_err(checkpoint_error)?;
    let (checkpoint, extensions) = Checkpoint::parse_text(body).map_err(checkpoint_error)?;
    let malformed = || {
        AppError::Conflict(format!(
            "{} is malformed",
            recorded_loss_path(data).display()
        ))
    };
    let line = extensions
        .iter()
        .find_map(|l| l.strip_prefix(LOSS_LINE))
        .ok_or_else(malformed)?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
            .ok_or_else(malformed)
    };
    let number = |name: &str| field(name)?.parse::<u64>().map_err(|_| malformed());
    let reason = hex::decode(field("reason")?)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(malformed)?;
    let micros = field("recorded_at")?
        .parse::<i64>()
        .map_err(|_| malformed())?;
    Ok(Some(RecordedLoss {
        restored_size: checkpoint.size(),
        witnessed_size: number("witnessed")?,
        reason,
        recorded_at: Timestamp::from_micros(micros),
    }))
}
