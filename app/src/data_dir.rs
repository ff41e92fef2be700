//! A data directory: where each part lives, and opening them together.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use careledger_core::checkpoint::{CheckpointConfig, CheckpointError, Checkpointer, LogKey};
use careledger_core::{Ledger, LedgerConfig};
use careledger_projections::{ProjectionConfig, Projections};

use crate::actors::ActorStore;
use crate::error::AppError;
use crate::hold::{HoldKind, WriteHold, WriteHolds};
use crate::memory::MemoryBudget;
use crate::reserve::Reserve;

/// Space the data directory keeps in reserve by default for a server (`serve --reserve-mib`):
/// enough for the stores to open and the access log to go on for a while on a full disk.
pub const DEFAULT_RESERVE_BYTES: u64 = 64 * 1024 * 1024;

/// How a data directory is opened.
#[derive(Clone, Debug, Default)]
pub struct OpenConfig {
    /// How the read models judge time.
    pub read_models: ProjectionConfig,
    /// The size of `<data>/reserve` (0: none is kept, as for the command-line tool's reads and
    /// the tests).
    pub reserve_bytes: u64,
    /// The caches' memory budget: the ledger's, the read models' and the actors' caches take
    /// their shares of it.
    pub budget: MemoryBudget,
}

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
    /// Why writes are held, when they are (a full disk, a restored ledger behind a witnessed
    /// checkpoint).
    pub holds: Arc<WriteHolds>,
    /// `<data>/reserve`: released when the stores cannot open on a full disk.
    pub reserve: Reserve,
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

/// The data directory's reserve of `bytes`.
pub fn reserve(data: &Path, bytes: u64) -> Reserve {
    Reserve::new(data.join("reserve"), bytes, "the data directory's reserve")
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

/// Runs `open`, a command-line tool's open of a stopped server's data directory. When it
/// fails for another reason than another process holding the directory, and the directory
/// keeps a reserve, the disk may be full: the reserve is released and `open` tried again, so
/// that reading and verifying work on a full disk too. The next `careledger serve` makes the
/// reserve again once space returns.
pub fn open_in_reserve<T>(
    data: &Path,
    open: impl Fn() -> Result<T, AppError>,
) -> Result<T, AppError> {
    let reserve = reserve(data, 0);
    match open() {
        Err(first) if !in_use(&first) && reserve.exists() => {
            tracing::warn!(error = %first, "opening failed; releasing the data directory's reserve and opening again (is the disk full?)");
            reserve.release();
            open()
        }
        opened => opened,
    }
}

/// The ledger, the read models (caught up) and the actors of `data`.
fn open_parts(
    data: &Path,
    config: &ProjectionConfig,
    budget: MemoryBudget,
) -> Result<(Ledger, Projections, ActorStore), AppError> {
    let (ledger_dir, projections_dir, actors_dir) = paths(data);
    let ledger_config = LedgerConfig {
        cache_bytes: budget.ledger_sled(),
        ..LedgerConfig::default()
    };
    let ledger = Ledger::open(&ledger_dir, ledger_config)?;
    let projections = Projections::open(&projections_dir, budget.projections(*config))?;
    projections.catch_up(&ledger)?;
    let actors = ActorStore::open_with_cache(&actors_dir, budget.actors_sled())?;
    Ok((ledger, projections, actors))
}

/// True when another process holds a part of the directory: no reserve helps then.
fn in_use(e: &AppError) -> bool {
    use careledger_core::StorageError;
    matches!(
        e,
        AppError::InUse(_)
            | AppError::Ledger(careledger_core::Error::Storage(StorageError::InUse { .. }))
            | AppError::Projections(careledger_projections::ProjectionError::Storage(
                StorageError::InUse { .. }
            ))
    )
}

/// The hold of a directory opened in its reserve's space.
pub(crate) fn disk_full(reserve: &Reserve, cause: &dyn std::fmt::Display) -> WriteHold {
    WriteHold {
        kind: HoldKind::DiskFull,
        reason: format!(
            "the disk of the data directory is full ({cause}); it was opened in the space of its \
             reserve ({}), and writes are refused while reads and verification go on: free disk \
             space (at least {} MiB); writes resume by themselves once the reserve can be made again",
            reserve.path().display(),
            (reserve.bytes() + crate::recovery::HEADROOM_BYTES).div_ceil(1024 * 1024)
        ),
        missing_events: None,
    }
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
        Self::open_configured(
            data,
            OpenConfig {
                read_models: config,
                reserve_bytes: 0,
                budget: MemoryBudget::default(),
            },
        )
    }

    /// As [`DataDir::open_with`], the ledger's, the read models' and the actors' caches taking
    /// their shares of `budget`.
    pub fn open_within(
        data: &Path,
        config: ProjectionConfig,
        budget: MemoryBudget,
    ) -> Result<Self, AppError> {
        Self::open_configured(
            data,
            OpenConfig {
                read_models: config,
                reserve_bytes: 0,
                budget,
            },
        )
    }

    /// Opens (or creates) every part, catches the projections up and keeps the reserve.
    ///
    /// Opening writes (sled writes as it opens). When it fails and a reserve is kept, the
    /// disk may be full: the reserve is released and the parts opened again in its space. The
    /// directory then serves reads and verification with writes held
    /// ([`HoldKind::DiskFull`]) until the reserve can be made again.
    pub fn open_configured(data: &Path, config: OpenConfig) -> Result<Self, AppError> {
        let reserve = reserve(data, config.reserve_bytes);
        let holds = Arc::new(WriteHolds::default());
        let (ledger, projections, actors) = match open_parts(
            data,
            &config.read_models,
            config.budget,
        ) {
            Err(first) if !in_use(&first) && reserve.exists() => {
                tracing::warn!(error = %first, "opening the data directory failed; releasing its reserve and opening again (is the disk full?)");
                reserve.release();
                let parts = open_parts(data, &config.read_models, config.budget)?;
                holds.hold(disk_full(&reserve, &first));
                parts
            }
            opened => opened?,
        };
        // A restored ledger behind a newer signed checkpoint takes no writes until the events
        // are brought back or their loss is recorded.
        crate::backup::check_behind(data, &ledger, &holds)?;
        if !holds.is_held(HoldKind::DiskFull) {
            if let Err(e) = reserve.ensure() {
                tracing::error!(error = %e, "the data directory keeps no reserve: free disk space, or a restart on a full disk will refuse to open");
            }
        }
        Ok(Self {
            path: data.to_owned(),
            ledger: Arc::new(ledger),
            projections: Arc::new(projections),
            actors: Arc::new(actors),
            holds,
            reserve,
        })
    }

    /// Holds writes for a full disk ([`HoldKind::DiskFull`]) when a part opened after the
    /// others (the access log) could open only in the space of the data directory's reserve;
    /// the recovery probe makes the reserve again and lifts the hold once there is room.
    pub fn hold_for_full_disk(&self, cause: &dyn std::fmt::Display) {
        self.holds.hold(disk_full(&self.reserve, cause));
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
