//! The router: every route, its limits and timeouts; the OpenAPI paths are derived from it.

use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::routes::{emergency, events, evidence, fhir, keys, notifications, patients, service};
use crate::sse;
use crate::state::AppState;

/// Time limit of ordinary requests (not of the SSE stream).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every documented route, over the document `doc`: the one list the router and the OpenAPI
/// document are both made from. Every route but the stream has a time limit.
pub(crate) fn routes(doc: OpenApi) -> OpenApiRouter<AppState> {
    use tower_http::timeout::TimeoutLayer;
    let limited = OpenApiRouter::new()
        .routes(routes!(service::health))
        .routes(routes!(service::openapi))
        .routes(routes!(service::verify))
        .routes(routes!(events::global_log))
        .routes(routes!(events::append, events::patient_events))
        .routes(routes!(patients::plan))
        .routes(routes!(patients::audit_trail))
        .routes(routes!(patients::patient_signals))
        .routes(routes!(patients::measure_series))
        .routes(routes!(notifications::patient_notifications))
        .routes(routes!(notifications::acknowledge))
        .routes(routes!(keys::register_key))
        .routes(routes!(evidence::checkpoint))
        .routes(routes!(evidence::inclusion))
        .routes(routes!(evidence::consistency))
        .routes(routes!(evidence::export))
        .routes(routes!(emergency::emergency_access_of_actor))
        .routes(routes!(fhir::metadata))
        .routes(routes!(fhir::search_patient))
        .routes(routes!(fhir::everything))
        .routes(routes!(fhir::read))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    OpenApiRouter::with_openapi(doc)
        .routes(routes!(sse::stream))
        .merge(limited)
}

/// The router with every route, limits and timeouts.
pub fn app(state: AppState) -> Router {
    let (router, _) = routes(OpenApi::default()).split_for_parts();
    router
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
