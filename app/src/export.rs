//! Exports of one patient's history as evidence, against the data directory's latest signed
//! checkpoint with the witnesses' cosignatures collected for it (`careledger_core::export`; the
//! file format in `docs/hash-format.md`, "Exports").

use std::path::{Path, PathBuf};

use careledger_core::checkpoint::CheckpointConfig;
use careledger_core::export::{Export, ExportError};
use careledger_core::ids::PatientId;
use careledger_core::note::Note;
use careledger_core::Ledger;

use crate::data_dir::checkpoint_path;
use crate::error::AppError;

/// Where the log's witnesses' cosignatures of the latest checkpoint are kept, beside it: that
/// checkpoint's note with the log's signature and one cosignature line per witness.
pub fn cosigned_checkpoint_path(data: &Path) -> PathBuf {
    data.join("cosigned-checkpoint")
}

/// The export of `patient`'s history from `ledger`, whose data directory is `data`, against the
/// latest checkpoint (`<data>/checkpoint`) with the cosignatures collected for it
/// (`<data>/cosigned-checkpoint`, when it holds the same checkpoint). Not found when the
/// patient has no events or the log has signed no checkpoint yet; a conflict when the latest
/// checkpoint does not yet cover the patient's last event (a running server signs the next
/// after at most `--checkpoint-every-secs` seconds, and one when it stops).
///
/// The caller decides who may export whom (`App::may_read`), and writes the bundle as JSON.
pub fn export_patient(
    ledger: &Ledger,
    data: &Path,
    patient: &PatientId,
) -> Result<Export, AppError> {
    let Some(note) = checkpoint_with_cosignatures(data)? else {
        return Err(AppError::NotFound(format!(
            "the log has signed no checkpoint yet ({} is missing); start `careledger serve` on \
             this data directory: it signs one within --checkpoint-every-secs seconds and when \
             it stops",
            checkpoint_path(data).display()
        )));
    };
    careledger_core::export::export_patient(ledger, patient, &note).map_err(refusal)
}

/// As [`export_patient`], for a running server whose checkpointer signs as `signing` says
/// (`None`: it signs none): a patient without events is not found; one whose last event no
/// checkpoint covers yet (or before the first checkpoint) is a conflict whose detail says that
/// the next checkpoint will cover it, and when this server signs it.
pub fn export_patient_served(
    ledger: &Ledger,
    data: &Path,
    patient: &PatientId,
    signing: Option<CheckpointConfig>,
) -> Result<Export, AppError> {
    if ledger.read_stream(patient, 1, 1)?.is_empty() {
        return Err(AppError::NotFound(format!(
            "the ledger holds no events of patient {patient}"
        )));
    }
    let Some(note) = checkpoint_with_cosignatures(data)? else {
        return Err(AppError::Conflict(format!(
            "the log has signed no checkpoint yet, so patient {patient}'s events cannot be \
             proven against one; the next checkpoint will cover them: {}; export again then",
            next_checkpoint(signing)
        )));
    };
    careledger_core::export::export_patient(ledger, patient, &note).map_err(|e| match e {
        ExportError::NotCovered { size, position, .. } => AppError::Conflict(format!(
            "the latest checkpoint (tree size {size}) does not yet cover patient {patient}'s \
             last event (position {position}); the next checkpoint will: {}; export again then",
            next_checkpoint(signing)
        )),
        other => refusal(other),
    })
}

/// When a server that signs as `signing` says signs its next checkpoint, in words.
fn next_checkpoint(signing: Option<CheckpointConfig>) -> String {
    let Some(config) = signing else {
        return "this server signs no checkpoints (started with --no-checkpoints, or without its \
                log key); one is signed when a server that signs them runs on this data directory"
            .into();
    };
    let secs = config.every.as_secs_f64();
    match config.every_events {
        0 => format!("this server signs one every {secs} seconds when the ledger grew"),
        events => format!(
            "this server signs one after every {events} events or {secs} seconds, whichever \
             comes first"
        ),
    }
}

/// The app's errors for a refused export.
fn refusal(e: ExportError) -> AppError {
    match e {
        ExportError::NoEvents(_) => AppError::NotFound(e.to_string()),
        ExportError::NotCovered { .. } => AppError::Conflict(e.to_string()),
        ExportError::Ledger(e) => AppError::Ledger(e),
        other => AppError::Internal(other.to_string()),
    }
}

/// The latest checkpoint with the cosignatures collected for it, `None` before the first.
fn checkpoint_with_cosignatures(data: &Path) -> Result<Option<String>, AppError> {
    let file = checkpoint_path(data);
    let Some(latest) = read_optional(&file)? else {
        return Ok(None);
    };
    Ok(Some(
        match read_optional(&cosigned_checkpoint_path(data))? {
            Some(cosigned) if same_checkpoint(&cosigned, &latest) => cosigned,
            _ => latest,
        },
    ))
}

/// True when two signed notes carry the same text (their signatures may differ).
fn same_checkpoint(a: &str, b: &str) -> bool {
    match (Note::parse(a), Note::parse(b)) {
        (Ok(a), Ok(b)) => a.text() == b.text(),
        _ => false,
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, AppError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AppError::Store {
            context: "reading the latest checkpoint",
            detail: format!("{}: {e}", path.display()),
        }),
    }
}
