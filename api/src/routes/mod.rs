//! The handlers, by resource.

pub mod access_log;
pub mod admin;
pub mod emergency;
pub mod events;
pub mod evidence;
pub mod fhir;
pub mod keys;
pub mod notifications;
pub mod patients;
pub mod service;

use crate::error::ApiError;

/// Runs blocking work (ledger reads and writes) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}
