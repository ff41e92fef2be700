//! The read models persisted in their own sled database, with their checkpoint.
//!
//! The state of every patient changed by a batch of events and the checkpoint (the last position
//! applied) are written in one atomic sled batch, so that on start the read models load and catch
//! up from exactly where they stopped. Reads are served from memory.

use std::collections::BTreeSet;
use std::path::Path;

use careledger_core::ids::PatientId;
use careledger_core::storage::{open_error, StorageError};
use careledger_core::{Ledger, RecordedEvent};
use parking_lot::{Mutex, RwLock, RwLockReadGuard};

use crate::{PatientView, ProjectionConfig, ReadModel};

/// Events read from the ledger per catch-up step.
const CATCH_UP_BATCH: usize = 8192;
/// The rebuild's first batch; each next one is twice as large, up to [`CATCH_UP_BATCH`].
const FIRST_REBUILD_BATCH: usize = 512;
const CHECKPOINT_KEY: &[u8] = b"checkpoint";
/// The layout of this database; state stored in another layout is dropped on open and rebuilt
/// from the ledger by the catch-up.
const FORMAT_KEY: &[u8] = b"format";
/// Layout 4: plans keep their histories (series per measure, medication episodes, lab orders,
/// corrections) so that a correction retracts what was derived from the entry it marks, and
/// the catalogue's intolerances, problems and smoking status. Layout 5: the same shape, with
/// the care team folded by core's rule ([`careledger_core::care_team`]); a plan stored in layout 4
/// could name a member whose addition was corrected after a handover, so it is folded again.
const FORMAT: &[u8] = b"6";
const PATIENT_PREFIX: u8 = b'p';
/// A patient's encoded view is stored in chunks of at most this many bytes. sled 0.34 writes a
/// log item over a quarter of its segment (a node holding several large values) as a separate
/// blob file, and rewrites a leaf's values whenever it consolidates it: views of hundreds of
/// kilobytes as single values made persisting cost whole multi-megabyte nodes per insert. With
/// [`SEGMENT_BYTES`] a leaf of such chunks stays in the log.
const CHUNK_BYTES: usize = 16384;
/// From this many changed patients on, `persist` encodes on two threads.
const PARALLEL_ENCODE: usize = 8;

/// Errors of the projection store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The projections' own database failed (internal), or another process holds it
    /// ([`StorageError::InUse`]).
    #[error("projection storage: {0}")]
    Storage(StorageError),
    /// Persisted state could not be decoded: rebuild the projections (internal).
    #[error("projection state is unreadable ({0}); run `careledger rebuild`")]
    Decode(String),
    /// Reading the ledger failed.
    #[error("reading the ledger: {0}")]
    Ledger(#[from] careledger_core::Error),
}

fn storage(e: sled::Error) -> ProjectionError {
    ProjectionError::Storage(careledger_core::storage::engine_error(e))
}

/// sled's segment size for this database: 2 MiB, so that a leaf of 16 chunks stays under
/// sled's blob threshold (a quarter of a segment) and is written to its log, not to files.
const SEGMENT_BYTES: usize = 2 << 20;

/// Opens the projections' database. sled lets go of its file lock a moment after the previous
/// handle is dropped (a restart, a reopen): wait for that, within a bound. A database written
/// with other sled settings (an earlier version) is removed and created anew: it holds only
/// derived state, which the catch-up rebuilds from the ledger.
fn open_db(dir: &Path) -> Result<sled::Db, ProjectionError> {
    let mut attempts = 0;
    let mut recreated = false;
    loop {
        match sled::Config::new()
            .path(dir)
            .segment_size(SEGMENT_BYTES)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(sled::Error::Unsupported(_)) if !recreated => {
                recreated = true;
                std::fs::remove_dir_all(dir).map_err(|e| {
                    ProjectionError::Storage(StorageError::io(
                        format!(
                            "{} was written with other settings and could not be removed to be rebuilt",
                            dir.display()
                        ),
                        e,
                    ))
                })?;
            }
            Err(e) => match open_error(dir, e) {
                StorageError::InUse { .. } if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                e => return Err(ProjectionError::Storage(e)),
            },
        }
    }
}

/// Empties the database, leaving only the mark of this layout.
fn start_empty(db: &sled::Db) -> Result<(), ProjectionError> {
    db.clear().map_err(storage)?;
    db.insert(FORMAT_KEY, FORMAT).map_err(storage)?;
    Ok(())
}

/// The prefix of a patient's chunks: the id's length keeps one id from prefixing another's.
fn patient_key(patient: &PatientId) -> Vec<u8> {
    let id = patient.as_str().as_bytes();
    let mut key = Vec::with_capacity(2 + id.len() + 4);
    key.push(PATIENT_PREFIX);
    key.push(id.len() as u8);
    key.extend_from_slice(id);
    key
}

fn chunk_key(patient: &PatientId, chunk: u32) -> Vec<u8> {
    let mut key = patient_key(patient);
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

/// The patient id and chunk number of a chunk key.
fn parse_chunk_key(key: &[u8]) -> Result<(PatientId, u32), ProjectionError> {
    let malformed = || ProjectionError::Decode(format!("malformed key {key:?}"));
    let len = *key.get(1).ok_or_else(malformed)? as usize;
    let id = key.get(2..2 + len).ok_or_else(malformed)?;
    let chunk: [u8; 4] = key
        .get(2 + len..)
        .and_then(|c| c.try_into().ok())
        .ok_or_else(malformed)?;
    let id = std::str::from_utf8(id).map_err(|e| ProjectionError::Decode(e.to_string()))?;
    let patient = PatientId::parse(id).map_err(|e| ProjectionError::Decode(e.to_string()))?;
    Ok((patient, u32::from_be_bytes(chunk)))
}

/// LZ4 expands at most this many times: a stored size beyond it is damage, not data.
const MAX_EXPANSION: usize = 255;

/// A view as stored: its bincode encoding compressed as one LZ4 block, behind the encoding's
/// length (u32, little-endian). The audit trail repeats names, reasons and sentences, so a view
/// compresses well, and sled writes each stored byte more than twice.
fn compress_view(encoded: &[u8], out: &mut Vec<u8>) -> Result<(), ProjectionError> {
    let len = u32::try_from(encoded.len()).map_err(|_| {
        ProjectionError::Storage(
            format!(
                "a patient's read model of {} bytes is over 4 GiB",
                encoded.len()
            )
            .into(),
        )
    })?;
    out.clear();
    out.extend_from_slice(&len.to_le_bytes());
    out.resize(
        4 + lz4_flex::block::get_maximum_output_size(encoded.len()),
        0,
    );
    let written = lz4_flex::block::compress_into(encoded, &mut out[4..])
        .map_err(|e| ProjectionError::Storage(format!("compressing a read model: {e}").into()))?;
    out.truncate(4 + written);
    Ok(())
}

fn decode_view(stored: &[u8]) -> Result<PatientView, ProjectionError> {
    let (len, compressed) = stored.split_first_chunk::<4>().ok_or_else(|| {
        ProjectionError::Decode(format!("a stored view of {} bytes", stored.len()))
    })?;
    let len = u32::from_le_bytes(*len) as usize;
    if len > compressed.len().saturating_mul(MAX_EXPANSION) {
        return Err(ProjectionError::Decode(format!(
            "a stored view claims {len} bytes from {} compressed",
            compressed.len()
        )));
    }
    let encoded = lz4_flex::block::decompress(compressed, len)
        .map_err(|e| ProjectionError::Decode(format!("decompressing a stored view: {e}")))?;
    let (view, _): (PatientView, usize) =
        bincode::serde::decode_from_slice(&encoded, bincode::config::standard())
            .map_err(|e| ProjectionError::Decode(e.to_string()))?;
    Ok(view)
}

/// Encodes the views of `patients` (those still in the model), each under a read lock of its
/// own, so that appends wait for one patient's encoding at most, not for all of them.
fn encode_views<'a>(
    model: &RwLock<ReadModel>,
    patients: &[&'a PatientId],
) -> Result<Vec<(&'a PatientId, Vec<sled::IVec>)>, ProjectionError> {
    let mut out = Vec::with_capacity(patients.len());
    // Two buffers for all views, the compressed one cut into the stored chunks: no view-sized
    // buffer is allocated per patient.
    let mut encoded = Vec::new();
    let mut compressed = Vec::new();
    for patient in patients {
        encoded.clear();
        {
            let model = model.read();
            let Some(view) = model.patients.get(*patient) else {
                continue;
            };
            bincode::serde::encode_into_std_write(view, &mut encoded, bincode::config::standard())
                .map_err(|e| ProjectionError::Storage(StorageError::other(e)))?;
        }
        compress_view(&encoded, &mut compressed)?;
        let chunks = compressed
            .chunks(CHUNK_BYTES)
            .map(sled::IVec::from)
            .collect();
        out.push((*patient, chunks));
    }
    Ok(out)
}

/// Loads every patient's view, reassembling its chunks (stored in key order).
fn load_views(db: &sled::Db, model: &mut ReadModel) -> Result<(), ProjectionError> {
    let mut current: Option<(PatientId, Vec<u8>)> = None;
    for item in db.scan_prefix([PATIENT_PREFIX]) {
        let (key, value) = item.map_err(storage)?;
        let (patient, chunk) = parse_chunk_key(&key)?;
        match &mut current {
            Some((p, bytes)) if *p == patient => bytes.extend_from_slice(&value),
            _ => {
                if let Some((p, bytes)) = current.take() {
                    model.patients.insert(p, decode_view(&bytes)?);
                }
                if chunk != 0 {
                    return Err(ProjectionError::Decode(format!(
                        "the state of {patient} starts at chunk {chunk}"
                    )));
                }
                current = Some((patient, value.to_vec()));
            }
        }
    }
    if let Some((p, bytes)) = current {
        model.patients.insert(p, decode_view(&bytes)?);
    }
    Ok(())
}

/// The persisted read models.
pub struct Projections {
    db: sled::Db,
    config: ProjectionConfig,
    model: RwLock<ReadModel>,
    catching_up: Mutex<()>,
    /// Patients changed in memory since the last `persist`.
    dirty: Mutex<BTreeSet<PatientId>>,
    /// One `persist` at a time: a later call must not be overtaken by an earlier one's batch.
    persisting: Mutex<()>,
}

impl Projections {
    /// Opens the projections' database in `dir` and loads their state.
    pub fn open(dir: &Path, config: ProjectionConfig) -> Result<Self, ProjectionError> {
        let db = open_db(dir)?;
        if db.get(FORMAT_KEY).map_err(storage)?.as_deref() != Some(FORMAT) {
            // Empty, or written in an earlier layout: start from zero; the catch-up rebuilds.
            start_empty(&db)?;
        }
        let mut model = ReadModel::default();
        if let Some(bytes) = db.get(CHECKPOINT_KEY).map_err(storage)? {
            let raw: [u8; 8] = bytes
                .as_ref()
                .try_into()
                .map_err(|_| ProjectionError::Decode("checkpoint".into()))?;
            model.checkpoint = u64::from_be_bytes(raw);
        }
        load_views(&db, &mut model)?;
        Ok(Self {
            db,
            config,
            model: RwLock::new(model),
            catching_up: Mutex::new(()),
            dirty: Mutex::new(BTreeSet::new()),
            persisting: Mutex::new(()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ProjectionConfig {
        &self.config
    }

    /// Read access to all read models.
    pub fn read(&self) -> RwLockReadGuard<'_, ReadModel> {
        self.model.read()
    }

    /// The last position applied.
    pub fn checkpoint(&self) -> u64 {
        self.read().checkpoint
    }

    /// Applies every durable event after the checkpoint and persists the result; returns how many
    /// events were applied.
    pub fn catch_up(&self, ledger: &Ledger) -> Result<u64, ProjectionError> {
        self.catch_up_with_progress(ledger, &mut |_, _| {})
    }

    /// As [`Projections::catch_up`], persisting after each step and calling
    /// `progress(applied up to, head)`.
    pub fn catch_up_with_progress(
        &self,
        ledger: &Ledger,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, ProjectionError> {
        let head = ledger.head().position;
        if self.checkpoint() == 0 && head > 0 {
            // Nothing applied yet (a new database, or one in an earlier layout, dropped): fold
            // everything in memory and write each patient once, as `rebuild` does, instead of
            // writing every touched patient's whole view again after each step.
            return self.rebuild(ledger, progress);
        }
        let mut applied = 0;
        loop {
            let step = self.apply_step(ledger)?;
            self.persist()?;
            if step == 0 {
                return Ok(applied);
            }
            applied += step;
            progress(self.checkpoint(), head);
        }
    }

    /// Applies every durable event after the checkpoint in memory only; [`Projections::persist`]
    /// writes the changes later. Reads see the events at once.
    pub fn apply_new(&self, ledger: &Ledger) -> Result<u64, ProjectionError> {
        let mut applied = 0;
        loop {
            let step = self.apply_step(ledger)?;
            if step == 0 {
                return Ok(applied);
            }
            applied += step;
        }
    }

    /// Applies up to one batch of events after the checkpoint; returns how many.
    fn apply_step(&self, ledger: &Ledger) -> Result<u64, ProjectionError> {
        let _one_at_a_time = self.catching_up.lock();
        let after = self.checkpoint();
        let events = ledger.read_all(after, CATCH_UP_BATCH)?;
        if events.is_empty() {
            return Ok(0);
        }
        self.fold(&events);
        Ok(events.len() as u64)
    }

    /// Folds events read from the ledger into the model and marks their patients changed;
    /// returns the checkpoint after them. Call with `catching_up` held.
    fn fold(&self, events: &[RecordedEvent]) -> u64 {
        let mut model = self.model.write();
        let mut dirty = self.dirty.lock();
        for event in events {
            // Another catch-up may have applied it between our read and our lock.
            if event.position > model.checkpoint {
                model.apply(event);
                dirty.insert(event.record.patient.clone());
            }
        }
        model.checkpoint
    }

    /// Writes the patients changed since the last call and the checkpoint in one atomic batch.
    ///
    /// The checkpoint written is the one the changed patients were taken at; each view is
    /// encoded afterwards, one patient at a time, and may hold later events (appends go on
    /// meanwhile). On open those are not applied twice ([`ReadModel::apply`]), and a patient
    /// changed meanwhile is written again by the next call.
    pub fn persist(&self) -> Result<(), ProjectionError> {
        let _one_at_a_time = self.persisting.lock();
        let (changed, checkpoint) = {
            let model = self.model.read();
            let mut dirty = self.dirty.lock();
            (std::mem::take(&mut *dirty), model.checkpoint)
        };
        let model = &self.model;
        // Encoding is most of the work when many patients changed (a rebuild): two threads.
        let changed: Vec<&PatientId> = changed.iter().collect();
        let encoded: Vec<Vec<(&PatientId, Vec<sled::IVec>)>> = if changed.len() >= PARALLEL_ENCODE {
            let (first, second) = changed.split_at(changed.len() / 2);
            std::thread::scope(|scope| {
                let other = scope.spawn(|| encode_views(model, second));
                let mine = encode_views(model, first);
                let other = other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                Ok::<_, ProjectionError>(vec![mine?, other?])
            })?
        } else {
            vec![encode_views(model, &changed)?]
        };
        let mut batch = sled::Batch::default();
        for (patient, view) in encoded.into_iter().flatten() {
            let chunks = view.len() as u32;
            for (i, chunk) in view.into_iter().enumerate() {
                batch.insert(chunk_key(patient, i as u32), chunk);
            }
            // A view never shrinks by much, but a smaller one must not keep old chunks.
            for item in self
                .db
                .range(chunk_key(patient, chunks)..=chunk_key(patient, u32::MAX))
            {
                batch.remove(item.map_err(storage)?.0);
            }
        }
        batch.insert(CHECKPOINT_KEY, &checkpoint.to_be_bytes());
        self.db.apply_batch(batch).map_err(storage)
    }

    /// Clears the read models and folds the whole ledger again.
    pub fn rebuild(
        &self,
        ledger: &Ledger,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, ProjectionError> {
        {
            let _one_at_a_time = self.catching_up.lock();
            let mut model = self.model.write();
            start_empty(&self.db)?;
            *model = ReadModel::default();
            self.dirty.lock().clear();
        }
        // Fold everything in memory and write each patient once at the end: persisting after
        // every step would encode a growing view again and again. One thread reads and decodes
        // the next batch of events while this one folds the last.
        let head = ledger.head().position;
        let mut applied = 0;
        let (batches, received) = std::sync::mpsc::sync_channel::<Vec<RecordedEvent>>(2);
        // Folded batches go back to the reader to be freed there: glibc frees fastest in the
        // thread that allocated (a free from another thread takes the owning arena's lock, which
        // the reader holds while it decodes the next batch).
        let (folded, returned) = std::sync::mpsc::channel::<Vec<RecordedEvent>>();
        std::thread::scope(|scope| -> Result<(), ProjectionError> {
            let reader = scope.spawn(move || -> Result<(), ProjectionError> {
                let mut after = 0;
                // Small batches first, so that the fold starts early: with 8,192 from the start
                // a ledger of 10,000 events was read half before anything was folded.
                let mut batch = FIRST_REBUILD_BATCH;
                loop {
                    returned.try_iter().for_each(drop);
                    let events = ledger.read_all(after, batch)?;
                    batch = (batch * 2).min(CATCH_UP_BATCH);
                    let Some(last) = events.last() else {
                        return Ok(());
                    };
                    after = last.position;
                    if batches.send(events).is_err() {
                        return Ok(());
                    }
                }
            });
            for events in received {
                let checkpoint = {
                    let _one_at_a_time = self.catching_up.lock();
                    self.fold(&events)
                };
                applied += events.len() as u64;
                let _ = folded.send(events);
                progress(checkpoint, head);
            }
            reader
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        self.persist()?;
        Ok(applied)
    }

    /// Flushes the projections' database (they are rebuildable, so this is for tidy shutdowns).
    pub fn flush(&self) -> Result<(), ProjectionError> {
        self.db.flush().map(|_| ()).map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use careledger_core::event::{Command, Member, Note, NoteKind};
    use careledger_core::ids::{ActorId, Text};
    use careledger_core::role::{Lead, Practitioner, Role};
    use careledger_core::{Actor, AppendRequest, ExpectedRevision, LedgerConfig, Submission};

    fn text(t: &str) -> Text {
        Text::new(t).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An append by the GP to `patient`: founding its care team, or a note.
    fn append(ledger: &Ledger, patient: &str, founding: bool) {
        let gp = Actor {
            id: ActorId::parse("agb-01012345").unwrap_or_else(|e| panic!("{e}")),
            role: Role::Gp,
            name: text("Dr. J. de Vries"),
            organisation: None,
        };
        let command = if founding {
            Command::AddCareTeamMember(Member {
                actor: gp.id.clone(),
                name: gp.name.clone(),
                agb: None,
                role: Role::Gp,
                lead: Lead::Cvrm,
                practitioner: Practitioner::Main,
            })
        } else {
            Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: text("CVRM follow-up"),
                body: text("Blood pressure at target."),
            })
        };
        ledger
            .append(AppendRequest {
                patient: PatientId::parse(patient).unwrap_or_else(|e| panic!("{e}")),
                expected: ExpectedRevision::Any,
                actor: gp,
                submissions: vec![Submission {
                    command,
                    occurred_at: None,
                    reason: text("quarterly consultation"),
                }],
                idempotency_key: None,
                correlation_id: None,
                causation_id: None,
            })
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// `persist` writes the checkpoint its patients were taken at and encodes each view later,
    /// while appends go on: a stored view can hold events after the stored checkpoint. Opening
    /// and catching up must not apply those again.
    #[test]
    fn a_view_stored_ahead_of_its_checkpoint_catches_up_without_applying_anything_twice() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let at = dir.path().join("projections");
        append(&ledger, "patient-1", true);
        append(&ledger, "patient-2", true);
        let projections =
            Projections::open(&at, ProjectionConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        projections
            .catch_up(&ledger)
            .unwrap_or_else(|e| panic!("{e}"));
        let taken_at = projections.checkpoint();
        // Events that land while the views are being encoded, stored with the older checkpoint.
        for _ in 0..3 {
            append(&ledger, "patient-1", false);
        }
        append(&ledger, "patient-2", false);
        projections
            .apply_new(&ledger)
            .unwrap_or_else(|e| panic!("{e}"));
        projections.persist().unwrap_or_else(|e| panic!("{e}"));
        projections
            .db
            .insert(CHECKPOINT_KEY, &taken_at.to_be_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        drop(projections);

        let reopened =
            Projections::open(&at, ProjectionConfig::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reopened.checkpoint(), taken_at);
        reopened.catch_up(&ledger).unwrap_or_else(|e| panic!("{e}"));
        let rebuilt = Projections::open(&dir.path().join("rebuilt"), ProjectionConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        rebuilt
            .rebuild(&ledger, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(*reopened.read(), *rebuilt.read());
        let patient = PatientId::parse("patient-1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reopened.read().patients[&patient].audit.len(), 4);
    }

    fn stored(view: &PatientView) -> Vec<u8> {
        let encoded =
            bincode::serde::encode_to_vec(view, bincode::config::standard()).unwrap_or_default();
        let mut out = Vec::new();
        compress_view(&encoded, &mut out).unwrap_or_default();
        out
    }

    #[test]
    fn a_stored_view_reads_back_and_damage_is_an_error_not_a_crash() {
        let p = crate::Provenance {
            position: 42,
            hash: careledger_core::record::Hash::ZERO,
            actor: ActorId::parse("gp-1").unwrap_or_else(|e| panic!("{e}")),
            actor_name: Text::new("A. Jansen").unwrap_or_else(|e| panic!("{e}")),
            role: Role::Gp,
            line: careledger_core::role::Line::First,
            recorded_at: careledger_core::record::Timestamp::from_micros(0),
            occurred_at: careledger_core::record::Timestamp::from_micros(0),
            reason: Text::default(),
        };
        let note = crate::plan::NoteEntry {
            kind: NoteKind::Note,
            subject: Text::new("blood pressure").unwrap_or_else(|e| panic!("{e}")),
            body: Text::default(),
            written: p,
        };
        let view = PatientView {
            plan: crate::plan::CarePlan {
                notes: vec![note; 2_000],
                ..crate::plan::CarePlan::default()
            },
            ..PatientView::default()
        };
        let bytes = stored(&view);
        assert!(bytes.len() < 2_000, "repetitive state compresses");
        assert_eq!(decode_view(&bytes).ok(), Some(view));

        // A length beyond what LZ4 can expand to, a short record, and a cut block.
        let mut huge = bytes.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() / 2);
        for damaged in [huge, bytes[..3].to_vec(), cut] {
            assert!(
                matches!(decode_view(&damaged), Err(ProjectionError::Decode(_))),
                "{} damaged bytes must be reported as unreadable",
                damaged.len()
            );
        }
    }
}
