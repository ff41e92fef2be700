//! Opening a data directory and serving it until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::serve::ListenerExt;
use careledger_core::checkpoint::{CheckpointConfig, CheckpointError, Checkpointer, LogKey};
use careledger_core::{Ledger, LedgerConfig};
use careledger_projections::{ProjectionConfig, Projections};
use tokio::net::TcpListener;

use crate::actors::ActorStore;
use crate::error::ApiError;
use crate::http::{app, AppState};

/// The parts of a data directory: `<data>/ledger`, `<data>/projections`, `<data>/actors`.
pub struct DataDir {
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// The read models, caught up with the ledger.
    pub projections: Arc<Projections>,
    /// Actors and token hashes.
    pub actors: Arc<ActorStore>,
}

/// Where each part lives.
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

impl DataDir {
    /// Opens (or creates) every part and catches the projections up, with the read models'
    /// default settings.
    pub fn open(data: &Path) -> Result<Self, ApiError> {
        Self::open_with(data, ProjectionConfig::default())
    }

    /// Opens (or creates) every part and catches the projections up; `config` sets how the read
    /// models judge time (overdue notifications, expired lab orders).
    pub fn open_with(data: &Path, config: ProjectionConfig) -> Result<Self, ApiError> {
        let (ledger_dir, projections_dir, actors_dir) = paths(data);
        let ledger = Arc::new(
            Ledger::open(&ledger_dir, LedgerConfig::default()).map_err(|e| {
                ApiError::Internal(format!(
                    "opening the ledger in {}: {e}",
                    ledger_dir.display()
                ))
            })?,
        );
        let projections = Arc::new(Projections::open(&projections_dir, config)?);
        projections.catch_up(&ledger)?;
        let actors = Arc::new(ActorStore::open(&actors_dir)?);
        Ok(Self {
            ledger,
            projections,
            actors,
        })
    }

    /// Opens the log key (made on first start for `origin`; a different origin later is
    /// refused) and starts issuing checkpoints into `<data>/checkpoint`.
    pub fn start_checkpoints(
        &self,
        data: &Path,
        origin: Option<&str>,
        config: CheckpointConfig,
    ) -> Result<Checkpointer, CheckpointError> {
        let key = LogKey::open_or_create(&log_key_path(data), origin)?;
        Checkpointer::start(self.ledger.clone(), key, checkpoint_path(data), config)
    }

    /// The shared state for the router.
    pub fn state(&self) -> AppState {
        AppState::new(
            self.ledger.clone(),
            self.projections.clone(),
            self.actors.clone(),
        )
    }
}

/// Serves on `listener` until `shutdown` resolves, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let for_shutdown = state.clone();
    let persister = tokio::spawn(persist_projections(state.clone()));
    let feed = tokio::spawn(crate::http::run_feed(state.clone()));
    let router = app(state);
    // Small writes (an SSE event, a 201) go out at once: with Nagle's algorithm a write waits
    // for the ACK of the one before, which the client may delay by 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
        }
    });
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        for_shutdown.begin_shutdown();
    })
    .await?;
    persister.abort();
    feed.abort();
    Ok(())
}

/// Writes the projections' changes to disk every second, so that a restart catches up from a
/// recent checkpoint; the caller writes the last changes after `serve` returns. Persisting encodes
/// each changed patient's whole view: when that takes long (large views changing all the time),
/// the pause grows to ten times the time taken, so that persisting keeps to a tenth of a core and
/// a restart catches up a little more.
async fn persist_projections(state: AppState) {
    let second = std::time::Duration::from_secs(1);
    let mut pause = second;
    loop {
        tokio::time::sleep(pause).await;
        let projections = state.projections.clone();
        let started = std::time::Instant::now();
        let result = tokio::task::spawn_blocking(move || projections.persist()).await;
        if let Ok(Err(e)) = result {
            tracing::warn!(error = %e, "persisting the projections failed; they catch up on restart");
        }
        pause = second.max(started.elapsed() * 10);
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
