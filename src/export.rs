//! `careledger export` and `careledger verify-export`: one patient's history as a file of
//! evidence, and its offline check with nothing but the log's key (and the witnesses' keys).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{anyhow, Context};

use careledger_core::export::{self, Completeness, EventSignature, Export, VerifiedExport};
use careledger_core::ids::PatientId;
use careledger_core::note::{VerifierKey, COSIGNATURE_V1, ED25519};
use careledger_core::record::Timestamp;
use careledger_projections::audit::{self, AuditEntry, AuditFilter};
use careledger_projections::notifications::NotificationStatus;
use careledger_projections::ReadModel;

/// Largest export file read: one patient's history with its proofs is far smaller.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Writes the export of `patient` against the latest checkpoint of the data directory `data`.
pub fn export_cmd(data: &Path, patient: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let patient = PatientId::parse(patient)?;
    let ledger = careledger_app::data_dir::open_existing_ledger(data)?;
    let bundle = careledger_app::export::export_patient(&ledger, data, &patient)?;
    let json = serde_json::to_vec_pretty(&bundle)?;
    std::fs::write(out, json).with_context(|| format!("writing {}", out.display()))?;
    let last = bundle.events.last().map_or(0, |e| e.position);
    say!(
        "Exported {} events of patient {patient} (the last at position {last}) to {}",
        bundle.events.len(),
        out.display()
    );
    let size = careledger_core::note::Note::parse(&bundle.checkpoint)
        .ok()
        .and_then(|n| {
            careledger_core::checkpoint::Checkpoint::parse_text(n.text())
                .ok()
                .map(|(c, _)| c.size())
        })
        .unwrap_or(0);
    say!("against the checkpoint of tree size {size}.");
    if bundle.heads.is_none() {
        say!(
            "WARNING: that checkpoint carries no heads map (it was signed before they existed): \
             the export cannot prove that no later event of the patient is left out. Export \
             again after the server has signed a new checkpoint."
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Options of `verify-export`.
pub struct VerifyOptions<'a> {
    /// The export file.
    pub file: &'a Path,
    /// The log's verifier key, as `careledger key show` prints it.
    pub key: &'a str,
    /// Witnesses whose cosignature must be on the checkpoint.
    pub witnesses: &'a [String],
    /// The patient the export must be of.
    pub patient: Option<&'a str>,
    /// Fail when the tail is unproven (a checkpoint without a heads map).
    pub require_complete: bool,
}

/// Checks an export offline and prints the verified history; exits 1 with one line naming the
/// first thing that failed.
pub fn verify_export_cmd(options: &VerifyOptions<'_>) -> anyhow::Result<ExitCode> {
    let log = VerifierKey::parse(options.key).context("--key")?;
    if log.kind() != ED25519 {
        return Err(anyhow!(
            "--key {}: not a log key (signature type 0x01); give the key `careledger key show` prints",
            options.key
        ));
    }
    let witnesses = options
        .witnesses
        .iter()
        .map(|w| {
            let key = VerifierKey::parse(w).with_context(|| format!("--witness {w}"))?;
            match key.kind() {
                COSIGNATURE_V1 => Ok(key),
                _ => Err(anyhow!(
                    "--witness {w}: not a witness's cosigner key (signature type 0x04)"
                )),
            }
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let expected = options.patient.map(PatientId::parse).transpose()?;
    let verified = read(options.file)
        .and_then(|bundle| export::verify(&bundle, &log, &witnesses).map_err(|e| e.to_string()))
        .and_then(|verified| match &expected {
            Some(p) if *p != verified.patient => Err(format!(
                "patient: the export is of patient {}, not {p}",
                verified.patient
            )),
            _ => Ok(verified),
        })
        .and_then(|verified| check_signed_requests(&verified).map(|()| verified));
    let verified = match verified {
        Ok(verified) => verified,
        Err(problem) => {
            say!("FAILED: {problem}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // Printing stops quietly when stdout goes away (a pager closed, `| head`).
    let _ = print_verified(&mut std::io::stdout().lock(), &verified, &log);
    match (&verified.completeness, options.require_complete) {
        (Completeness::TailUnproven, true) => {
            say!("FAILED: the tail is unproven and --require-complete was given");
            Ok(ExitCode::FAILURE)
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Reads and parses an export file; the error is the one line to print.
fn read(file: &Path) -> Result<Export, String> {
    let size = std::fs::metadata(file)
        .map_err(|e| format!("{}: {e}", file.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(format!(
            "not a careledger export: {} is {size} bytes, more than the {MAX_FILE_BYTES} an export of one patient may have",
            file.display()
        ));
    }
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let error = match serde_json::from_slice::<Export>(&bytes) {
        Ok(bundle) => return Ok(bundle),
        Err(e) => e,
    };
    if error.classify() != serde_json::error::Category::Data {
        return Err(format!(
            "not a careledger export: the file is not valid JSON ({error}); a truncated or damaged file?"
        ));
    }
    // Valid JSON of another shape: another kind of file, another version, or a damaged export.
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let version = value.get("version");
    match value.get("format").and_then(|f| f.as_str()) {
        Some(export::FORMAT)
            if !matches!(
                version.and_then(|v| v.as_u64()),
                Some(v) if v == u64::from(export::VERSION) || v == u64::from(export::VERSION_1)
            ) =>
        {
            Err(format!(
                "not a careledger export this build reads: version {}, this build reads versions {} and {}",
                version.map_or("missing".into(), |v| v.to_string()),
                export::VERSION_1,
                export::VERSION
            ))
        }
        Some(export::FORMAT) => Err(format!("malformed export: {error}")),
        _ => Err(format!(
            "not a careledger export: its \"format\" is not {:?}",
            export::FORMAT
        )),
    }
}

/// What only the HTTP layer knows of a signed request, checked again for every one the export
/// carries: its signature base covers `POST` to this patient's events, its content digest is
/// its body's, and its body's commands are the events that name it, in order, with their
/// reasons and clinical times.
fn check_signed_requests(verified: &VerifiedExport) -> Result<(), String> {
    let path = format!("/patients/{}/events", verified.patient);
    let mut checked = std::collections::HashSet::new();
    for (event, signature) in verified.events.iter().zip(&verified.signatures) {
        let EventSignature::Signed { request, .. } = signature else {
            continue;
        };
        let Some(hash) = event.record.signed_request else {
            continue;
        };
        if !checked.insert(hash) {
            continue;
        }
        let fail = |problem: String| {
            format!(
                "event at position {}: signed request: {problem}",
                event.position
            )
        };
        let stored = careledger_api::signature::check_stored(request).map_err(fail)?;
        if stored.method != "POST" || stored.path != path {
            return Err(fail(format!(
                "it was signed for {} {}, not POST {path}: a signed request of another \
                 patient or route",
                stored.method, stored.path
            )));
        }
        let (_, submissions) =
            careledger_api::wire::parse_append_body(&request.body, event.record.actor.line())
                .map_err(|e| fail(format!("its body does not read as an append: {e}")))?;
        let produced: Vec<_> = (verified.events.iter())
            .filter(|e| e.record.signed_request == Some(hash))
            .collect();
        let matches = submissions.len() == produced.len()
            && submissions.iter().zip(&produced).all(|(s, e)| {
                s.command.clone().into_event() == e.record.event
                    && s.reason == e.record.reason
                    && s.occurred_at.unwrap_or(e.record.recorded_at) == e.record.occurred_at
            });
        if !matches {
            return Err(fail(format!(
                "its body's {} commands are not the {} events that name it",
                submissions.len(),
                produced.len()
            )));
        }
    }
    Ok(())
}

/// One event's signature, for people.
fn signature_line(verified: &VerifiedExport, position: u64) -> Option<String> {
    let i = verified
        .events
        .iter()
        .position(|e| e.position == position)?;
    let actor = &verified.events[i].record.actor.id;
    Some(match &verified.signatures[i] {
        EventSignature::Signed { key, .. } => format!(
            "signed by {} of {} (registered at position {} by {})",
            key.key.key_id, key.key.actor, key.registered_at, key.registered_by.id
        ),
        EventSignature::Unsigned {
            actor_had_key: true,
        } => format!(
            "unsigned (although {actor} had a signing key registered: not from their client system)"
        ),
        EventSignature::Unsigned { .. } => "unsigned".to_owned(),
    })
}

/// The verified history, for people.
fn print_verified(
    out: &mut dyn Write,
    verified: &VerifiedExport,
    log: &VerifierKey,
) -> std::io::Result<()> {
    let checkpoint = &verified.checkpoint;
    let events = &verified.events;
    let (Some(first), Some(last)) = (events.first(), events.last()) else {
        return Ok(());
    };
    writeln!(out, "VERIFIED: the history of patient {}", verified.patient)?;
    writeln!(
        out,
        "  checkpoint   {} at tree size {}, root {}",
        checkpoint.origin(),
        checkpoint.size(),
        checkpoint.root()
    )?;
    writeln!(out, "  signed by    {log}")?;
    for (witness, at) in &verified.cosigned {
        let at = i64::try_from(*at)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .map_or_else(
                || format!("{at} s"),
                |us| Timestamp::from_micros(us).to_string(),
            );
        writeln!(out, "  cosigned by  {witness} at {at}")?;
    }
    writeln!(
        out,
        "  events       {}: revisions 1 to {}, positions {} to {}; every frame hashes to its \
         hash and is in the checkpoint's tree",
        events.len(),
        last.record.revision,
        first.position,
        last.position
    )?;
    match verified.completeness {
        Completeness::Proven { patients } => writeln!(
            out,
            "  complete     the checkpoint's heads map ({patients} patients) shows revision {} \
             at position {} as the patient's last event: nothing of this patient up to tree \
             size {} is left out",
            last.record.revision,
            last.position,
            checkpoint.size()
        )?,
        Completeness::TailUnproven => writeln!(
            out,
            "  WARNING      the tail is unproven: the checkpoint was signed before checkpoints \
             carried the heads map, so events of this patient after revision {} (position {}) \
             up to tree size {} may be left out; export again against a newer checkpoint",
            last.record.revision,
            last.position,
            checkpoint.size()
        )?,
    }
    let signed = (verified.signatures.iter())
        .filter(|s| matches!(s, EventSignature::Signed { .. }))
        .count();
    writeln!(
        out,
        "  signatures   {signed} of {} events signed by their actor's client system, each \
         verified under a key whose registration is in the checkpoint's tree",
        events.len(),
    )?;
    writeln!(out)?;
    let mut model = ReadModel::default();
    for event in events {
        model.apply(event);
    }
    let Some(view) = model.patient(&verified.patient) else {
        return Ok(());
    };
    for entry in audit::query(view, &AuditFilter::default()) {
        let signature = signature_line(verified, entry.provenance.position);
        print_entry(out, entry, signature.as_deref())?;
    }
    Ok(())
}

fn print_entry(
    out: &mut dyn Write,
    e: &AuditEntry,
    signature: Option<&str>,
) -> std::io::Result<()> {
    let p = &e.provenance;
    writeln!(
        out,
        "#{:<5} revision {:<4} {}",
        p.position,
        e.revision,
        e.summary()
    )?;
    writeln!(
        out,
        "       who: {} ({}), {}, {}",
        p.actor_name, p.actor, p.role, p.line
    )?;
    let (from, to) = (e.from(), e.to());
    if from.is_some() || to.is_some() {
        writeln!(
            out,
            "       what: {} changed from {} to {}",
            e.element,
            from.as_deref().unwrap_or("nothing"),
            to.as_deref().unwrap_or("nothing")
        )?;
    }
    writeln!(
        out,
        "       when: recorded {}, occurred {}",
        p.recorded_at, p.occurred_at
    )?;
    writeln!(out, "       why: {}", p.reason)?;
    if let Some(signature) = signature {
        writeln!(out, "       {signature}")?;
    }
    for told in &e.notified {
        let status = match &told.status {
            NotificationStatus::Open => "not acknowledged in this history".to_owned(),
            NotificationStatus::Acknowledged { by, at, position } => {
                format!("acknowledged by {by} at {at} (position {position})")
            }
            NotificationStatus::Withdrawn { correction } => {
                format!("withdrawn: entered in error (correction at position {correction})")
            }
        };
        writeln!(out, "       told {}: {status}", told.recipient)?;
    }
    if let Some(c) = e.corrected_by {
        writeln!(out, "       ENTERED IN ERROR (correction at position {c})")?;
    }
    if let Some(start) = e.voided_with {
        writeln!(
            out,
            "       VOID: the medication start at position {start} was entered in error"
        )?;
    }
    writeln!(out, "       hash {}", p.hash)?;
    Ok(())
}
