//! Exports of one patient's history as evidence, against the data directory's latest signed
//! checkpoint (`careledger_core::export`; the file format in `docs/hash-format.md`, "Exports").

use std::path::Path;

use careledger_core::export::{Export, ExportError};
use careledger_core::ids::PatientId;
use careledger_core::Ledger;

use crate::data_dir::checkpoint_path;
use crate::error::AppError;

/// The export of `patient`'s history from `ledger`, whose data directory is `data`, against the
/// latest checkpoint in `<data>/checkpoint` with whatever cosignatures it carries. Not found
/// when the patient has no events or the log has signed no checkpoint yet; a conflict when the
/// latest checkpoint does not yet cover the patient's last event (it is signed again after at
/// most `--checkpoint-every-secs` seconds while the server runs, and when it stops).
///
/// The caller decides who may export whom (`App::may_read`), and writes the bundle as JSON.
pub fn export_patient(
    ledger: &Ledger,
    data: &Path,
    patient: &PatientId,
) -> Result<Export, AppError> {
    let file = checkpoint_path(data);
    let note = match std::fs::read_to_string(&file) {
        Ok(note) => note,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AppError::NotFound(format!(
                "the log has signed no checkpoint yet ({} is missing); start `careledger serve` \
                 on this data directory: it signs one within --checkpoint-every-secs seconds and \
                 when it stops",
                file.display()
            )))
        }
        Err(e) => {
            return Err(AppError::Store {
                context: "reading the latest checkpoint",
                detail: format!("{}: {e}", file.display()),
            })
        }
    };
    careledger_core::export::export_patient(ledger, patient, &note).map_err(|e| match e {
        ExportError::NoEvents(_) => AppError::NotFound(e.to_string()),
        ExportError::NotCovered { .. } => AppError::Conflict(e.to_string()),
        ExportError::Ledger(e) => AppError::Ledger(e),
        other => AppError::Internal(other.to_string()),
    })
}
