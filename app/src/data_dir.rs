//! A data directory: where each part lives, and opening them together.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use careledger_core::checkpoint::{CheckpointConfig, CheckpointError, Checkpointer, LogKey};
use careledger_core::{Ledger, LedgerConfig};
use careledger_projections::{ProjectionConfig, Projections};

use crate::actors::ActorStore;
use crate::error::AppError;
use crate::memory::MemoryBudget;

/// The parts of a data directory: `<data>/ledger`, `<data>/projections`, `<data>/actors`.
pub struct DataDir {
    /// The data directory itself.
    pub path: PathBuf,
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// The read models, caught up with the ledger when opened.
    pub projections: Arc<Projections>,
    /// Actors and token hashes.
    pub actors: Arc<ActorStore>,
}

/// Where each part lives: the ledger, the read models and the actors.
pub fn paths(data: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        data.join("ledger"),
        data.join("projections"),
        data.join("actors"),
    )
}

/// The log's ed25519 signing key, whose name is the log's origin (mode 0600).
pub fn log_key_path(data: &Path) -> PathBuf {
    data.join("log-key")
}

/// The latest signed checkpoint, a signed note, replaced atomically.
pub fn checkpoint_path(data: &Path) -> PathBuf {
    data.join("checkpoint")
}

/// Opens the ledger of a data directory that has one (for the commands that only read it).
pub fn open_existing_ledger(data: &Path) -> Result<Ledger, AppError> {
    let (ledger_dir, _, _) = paths(data);
    if !ledger_dir.join("db").exists() {
        return Err(AppError::NotFound(format!(
            "no ledger in {}; give the data directory with --data",
            data.display()
        )));
    }
    Ok(Ledger::open(&ledger_dir, LedgerConfig::default())?)
}

impl DataDir {
    /// Opens (or creates) every part and catches the projections up, with the read models'
    /// default settings.
    pub fn open(data: &Path) -> Result<Self, AppError> {
        Self::open_with(data, ProjectionConfig::default())
    }

    /// Opens (or creates) every part and catches the projections up; `config` sets how the read
    /// models judge time (overdue notifications, expired lab orders).
    pub fn open_with(data: &Path, config: ProjectionConfig) -> Result<Self, AppError> {
        Self::open_within(data, config, MemoryBudget::default())
    }

    /// As [`DataDir::open_with`], the ledger's, the read models' and the actors' caches taking
    /// their shares of `budget` (the read models' settings for time from `config`).
    pub fn open_within(
        data: &Path,
        config: ProjectionConfig,
        budget: MemoryBudget,
    ) -> Result<Self, AppError> {
        let (ledger_dir, projections_dir, actors_dir) = paths(data);
        let ledger_config = LedgerConfig {
            cache_bytes: budget.ledger_sled(),
            ..LedgerConfig::default()
        };
        let ledger = Arc::new(Ledger::open(&ledger_dir, ledger_config)?);
        let projections = Arc::new(Projections::open(
            &projections_dir,
            budget.projections(config),
        )?);
        projections.catch_up(&ledger)?;
        let actors = Arc::new(ActorStore::open_with_cache(
            &actors_dir,
            budget.actors_sled(),
        )?);
        Ok(Self {
            path: data.to_owned(),
            ledger,
            projections,
            actors,
        })
    }

    /// Opens the log key (made on first start for `origin`; a different origin later is
    /// refused) and starts issuing checkpoints into `<data>/checkpoint`.
    pub fn start_checkpoints(
        &self,
        origin: Option<&str>,
        config: CheckpointConfig,
    ) -> Result<Checkpointer, CheckpointError> {
        let key = LogKey::open_or_create(&log_key_path(&self.path), origin)?;
        Checkpointer::start(
            self.ledger.clone(),
            key,
            checkpoint_path(&self.path),
            config,
        )
    }
}
