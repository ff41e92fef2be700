//! The read models persisted in their own sled database, with their checkpoint.
//!
//! The state of every patient changed by a batch of events and the checkpoint (the last position
//! applied) are written in one atomic sled batch, so that on start the read models load and catch
//! up from exactly where they stopped. Reads are served from memory.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use careledger_core::ids::PatientId;
use careledger_core::Ledger;

use crate::{PatientView, ProjectionConfig, ReadModel};

/// Events read from the ledger per catch-up step.
const CATCH_UP_BATCH: usize = 8192;
const CHECKPOINT_KEY: &[u8] = b"checkpoint";
const PATIENT_PREFIX: u8 = b'p';

/// Errors of the projection store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// The projections' own database failed (internal).
    #[error("projection storage: {0}")]
    Storage(String),
    /// Persisted state could not be decoded: rebuild the projections (internal).
    #[error("projection state is unreadable ({0}); run `careledger rebuild`")]
    Decode(String),
    /// Reading the ledger failed.
    #[error("reading the ledger: {0}")]
    Ledger(#[from] careledger_core::Error),
}

fn storage(e: sled::Error) -> ProjectionError {
    ProjectionError::Storage(e.to_string())
}

/// Opens the projections' database. sled lets go of its file lock a moment after the previous
/// handle is dropped (a restart, a reopen): wait for that, within a bound.
fn open_db(dir: &Path) -> Result<sled::Db, ProjectionError> {
    let mut attempts = 0;
    loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => return Ok(db),
            Err(e) if e.to_string().contains("could not acquire lock") && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) if e.to_string().contains("could not acquire lock") => {
                return Err(ProjectionError::Storage(format!(
                    "{} is in use by another process (a running `careledger serve`?); stop it first",
                    dir.display()
                )))
            }
            Err(e) => return Err(storage(e)),
        }
    }
}

fn patient_key(patient: &PatientId) -> Vec<u8> {
    let mut key = vec![PATIENT_PREFIX];
    key.extend_from_slice(patient.as_str().as_bytes());
    key
}

/// The persisted read models.
pub struct Projections {
    db: sled::Db,
    config: ProjectionConfig,
    model: RwLock<ReadModel>,
    catching_up: Mutex<()>,
    /// Patients changed in memory since the last `persist`.
    dirty: Mutex<BTreeSet<PatientId>>,
}

impl Projections {
    /// Opens the projections' database in `dir` and loads their state.
    pub fn open(dir: &Path, config: ProjectionConfig) -> Result<Self, ProjectionError> {
        let db = open_db(dir)?;
        let mut model = ReadModel::default();
        if let Some(bytes) = db.get(CHECKPOINT_KEY).map_err(storage)? {
            let raw: [u8; 8] = bytes
                .as_ref()
                .try_into()
                .map_err(|_| ProjectionError::Decode("checkpoint".into()))?;
            model.checkpoint = u64::from_be_bytes(raw);
        }
        for item in db.scan_prefix([PATIENT_PREFIX]) {
            let (key, value) = item.map_err(storage)?;
            let id = std::str::from_utf8(&key[1..])
                .map_err(|e| ProjectionError::Decode(e.to_string()))?;
            let patient =
                PatientId::parse(id).map_err(|e| ProjectionError::Decode(e.to_string()))?;
            let (view, _): (PatientView, usize) =
                bincode::serde::decode_from_slice(&value, bincode::config::standard())
                    .map_err(|e| ProjectionError::Decode(e.to_string()))?;
            model.patients.insert(patient, view);
        }
        Ok(Self {
            db,
            config,
            model: RwLock::new(model),
            catching_up: Mutex::new(()),
            dirty: Mutex::new(BTreeSet::new()),
        })
    }

    /// The settings.
    pub fn config(&self) -> &ProjectionConfig {
        &self.config
    }

    /// Read access to all read models.
    pub fn read(&self) -> RwLockReadGuard<'_, ReadModel> {
        self.model.read().unwrap_or_else(|p| p.into_inner())
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
        let _one_at_a_time = self.catching_up.lock().unwrap_or_else(|p| p.into_inner());
        let after = self.checkpoint();
        let events = ledger.read_all(after, CATCH_UP_BATCH)?;
        if events.is_empty() {
            return Ok(0);
        }
        let mut model = self.model.write().unwrap_or_else(|p| p.into_inner());
        let mut dirty = self.dirty.lock().unwrap_or_else(|p| p.into_inner());
        for event in &events {
            // Another catch-up may have applied it between our read and our lock.
            if event.position > model.checkpoint {
                model.apply(event);
                dirty.insert(event.record.patient.clone());
            }
        }
        Ok(events.len() as u64)
    }

    /// Writes the patients changed since the last call and the checkpoint in one atomic batch.
    pub fn persist(&self) -> Result<(), ProjectionError> {
        let model = self.model.read().unwrap_or_else(|p| p.into_inner());
        let changed = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        let mut batch = sled::Batch::default();
        for patient in &changed {
            if let Some(view) = model.patients.get(patient) {
                let bytes = bincode::serde::encode_to_vec(view, bincode::config::standard())
                    .map_err(|e| ProjectionError::Storage(e.to_string()))?;
                batch.insert(patient_key(patient), bytes);
            }
        }
        batch.insert(CHECKPOINT_KEY, &model.checkpoint.to_be_bytes());
        self.db.apply_batch(batch).map_err(storage)
    }

    /// Clears the read models and folds the whole ledger again.
    pub fn rebuild(
        &self,
        ledger: &Ledger,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, ProjectionError> {
        {
            let _one_at_a_time = self.catching_up.lock().unwrap_or_else(|p| p.into_inner());
            let mut model = self.model.write().unwrap_or_else(|p| p.into_inner());
            self.db.clear().map_err(storage)?;
            *model = ReadModel::default();
            self.dirty.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        // Fold everything in memory and write each patient once at the end: persisting after
        // every step would encode a growing view again and again.
        let head = ledger.head().position;
        let mut applied = 0;
        loop {
            let step = self.apply_step(ledger)?;
            if step == 0 {
                break;
            }
            applied += step;
            progress(self.checkpoint(), head);
        }
        self.persist()?;
        Ok(applied)
    }

    /// Flushes the projections' database (they are rebuildable, so this is for tidy shutdowns).
    pub fn flush(&self) -> Result<(), ProjectionError> {
        self.db.flush().map(|_| ()).map_err(storage)
    }
}
