//! The witness's HTTP server: `POST /add-checkpoint` and the monitoring
//! `GET /<origin hash>/checkpoint` of C2SP tlog-witness.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;

use careledger_core::witness::{Witness, WitnessError, MAX_REQUEST_BYTES};

const TEXT: &str = "text/plain; charset=utf-8";
/// The media type of a 409's body: the witness's tree size.
pub const TLOG_SIZE: &str = "text/x.tlog.size";

/// The witness's routes over `witness`.
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .route("/{origin_hash}/checkpoint", get(latest))
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(witness)
}

/// Serves the witness on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish (a cosignature is returned only after its checkpoint is stored).
pub async fn serve(
    listener: TcpListener,
    witness: Arc<Witness>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(witness))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // Checking and storing (write, fsync, rename) block: off the async workers.
    match tokio::task::spawn_blocking(move || witness.add_checkpoint(&body, now)).await {
        Ok(Ok(cosignature)) => {
            (StatusCode::OK, [(CONTENT_TYPE, TEXT)], cosignature.line()).into_response()
        }
        Ok(Err(refused)) => refusal(&refused),
        Err(e) => {
            tracing::error!(error = %e, "the add-checkpoint task failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(CONTENT_TYPE, TEXT)],
                "internal error\n",
            )
                .into_response()
        }
    }
}

async fn latest(State(witness): State<Arc<Witness>>, Path(origin_hash): Path<String>) -> Response {
    match witness.latest_by_origin_hash(&origin_hash) {
        Some(note) => (StatusCode::OK, [(CONTENT_TYPE, TEXT)], note).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, TEXT)],
            "this witness has cosigned no checkpoint of a log with that origin hash\n",
        )
            .into_response(),
    }
}

/// The answer to a refused checkpoint: the protocol's status, and a sentence (a 409 carries the
/// size the witness cosigned last, as the protocol requires). Evidence against the log is
/// logged at error level.
fn refusal(refused: &WitnessError) -> Response {
    let (status, conflict) = status_of(refused);
    if refused.is_misbehaviour() {
        tracing::error!(error = %refused, "refused a checkpoint: evidence that the log rolled back or forked");
    } else if status.is_server_error() {
        tracing::error!(error = %refused, "add-checkpoint failed");
    } else {
        tracing::info!(status = status.as_u16(), error = %refused, "refused a checkpoint");
    }
    match conflict {
        Some(size) => (status, [(CONTENT_TYPE, TLOG_SIZE)], format!("{size}\n")).into_response(),
        None => (status, [(CONTENT_TYPE, TEXT)], format!("{refused}\n")).into_response(),
    }
}

/// The HTTP status of a refusal as C2SP tlog-witness prescribes it, and for a 409 the size to
/// answer with. A rollback or fork answers what its old size calls for: 400 when the old size
/// is beyond the checkpoint, 409 when it is not the size cosigned, 422 otherwise.
pub fn status_of(refused: &WitnessError) -> (StatusCode, Option<u64>) {
    let misbehaved = |old: u64, offered: u64, cosigned: u64| {
        if old > offered {
            (StatusCode::BAD_REQUEST, None)
        } else if old != cosigned {
            (StatusCode::CONFLICT, Some(cosigned))
        } else {
            (StatusCode::UNPROCESSABLE_ENTITY, None)
        }
    };
    match refused {
        WitnessError::Malformed(_) | WitnessError::OldBeyondSize { .. } => {
            (StatusCode::BAD_REQUEST, None)
        }
        WitnessError::UnknownLog(_) => (StatusCode::NOT_FOUND, None),
        WitnessError::Unverified(_) => (StatusCode::FORBIDDEN, None),
        WitnessError::Conflict { cosigned, .. } => (StatusCode::CONFLICT, Some(*cosigned)),
        WitnessError::Rollback {
            cosigned,
            offered,
            old,
            ..
        } => misbehaved(*old, *offered, *cosigned),
        WitnessError::Fork { size, old, .. } => misbehaved(*old, *size, *size),
        WitnessError::Inconsistent { .. } | WitnessError::BadProof(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, None)
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, None),
    }
}
