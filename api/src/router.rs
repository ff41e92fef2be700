//! The router: every route, its limits and timeouts.

use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::routes::{events, notifications, patients, service};
use crate::sse;
use crate::state::AppState;

/// Time limit of ordinary requests (not of the SSE stream).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The router with every route, limits and timeouts.
pub fn app(state: AppState) -> Router {
    use tower_http::timeout::TimeoutLayer;
    let normal = Router::new()
        .route("/health", get(service::health))
        .route("/openapi.json", get(service::openapi))
        .route("/verify", get(service::verify))
        .route("/events", get(events::global_log))
        .route(
            "/patients/{patient}/events",
            post(events::append).get(events::patient_events),
        )
        .route("/patients/{patient}/plan", get(patients::plan))
        .route("/patients/{patient}/audit", get(patients::audit_trail))
        .route(
            "/patients/{patient}/signals",
            get(patients::patient_signals),
        )
        .route(
            "/patients/{patient}/measures/{measure}",
            get(patients::measure_series),
        )
        .route(
            "/patients/{patient}/notifications",
            get(notifications::patient_notifications),
        )
        .route(
            "/patients/{patient}/notifications/{notification}/ack",
            post(notifications::acknowledge),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    Router::new()
        .route("/events/stream", get(sse::stream))
        .merge(normal)
        .fallback(|| async { ApiError::NotFound("no such route; see /openapi.json".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::NotFound("this route does not take that method; see /openapi.json".into())
        })
        .layer(axum::extract::DefaultBodyLimit::max(crate::MAX_BODY_BYTES))
        // Request spans at DEBUG: the default INFO level logs no paths (they name patients).
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(
                    tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::DEBUG),
                )
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::DEBUG),
                ),
        )
        .with_state(state)
}
