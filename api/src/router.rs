//! The router: every route, its limits and timeouts; the OpenAPI paths are derived from it.

use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::routes::{
    access_log, admin, emergency, events, evidence, fhir, keys, notifications, patients, service,
};
use crate::sse;
use crate::state::AppState;

/// Time limit of ordinary requests (not of the SSE stream).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Every documented route, over the document `doc`: the one list the router and the OpenAPI
/// document are both made from. Every route but the stream has a time limit (/verify its own).
pub(crate) fn routes(doc: OpenApi) -> OpenApiRouter<AppState> {
    use tower_http::timeout::TimeoutLayer;
    let limited = OpenApiRouter::new()
        .routes(routes!(service::health))
        .routes(routes!(service::openapi))
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
        .routes(routes!(admin::add_actor, admin::list_actors))
        .routes(routes!(admin::revoke_actor))
        .routes(routes!(admin::rotate_actor))
        .routes(routes!(access_log::access_log))
        .routes(routes!(access_log::patient_access_log))
        .routes(routes!(access_log::access_log_checkpoint))
        .routes(routes!(fhir::metadata))
        .routes(routes!(fhir::search_patient))
        .routes(routes!(fhir::everything))
        .routes(routes!(fhir::read))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    // The stream runs for as long as its subscriber follows; /verify has its own limit
    // (`Limits::verify_timeout`), since a full scan may rightly take longer than a request.
    OpenApiRouter::with_openapi(doc)
        .routes(routes!(sse::stream))
        .routes(routes!(service::verify))
        // A backup copies the whole ledger: at a region's size it takes minutes, and an
        // operator waits for its answer rather than have it cut off.
        .routes(routes!(admin::backup))
        .merge(limited)
}

/// The router with every route, limits and timeouts, and the headers every answer carries.
pub fn app(state: AppState) -> Router {
    let (router, _) = routes(OpenApi::default()).split_for_parts();
    let hsts = state.hsts;
    // Every route is recorded in the access log (the fallbacks name no resource and serve no
    // data); outermost on each route, so that a timeout's 408 is recorded too.
    let recorded = axum::middleware::from_fn_with_state(state.clone(), crate::access_log::record);
    let caught_up = axum::middleware::from_fn_with_state(state.clone(), reads_see_writes);
    router
        .merge(crate::pages::routes())
        .route_layer(recorded)
        // Outside the access log, whose ground for an access is the care team as the read
        // models hold it.
        .route_layer(caught_up)
        .fallback(|| async { ApiError::NotFound("no such route; see /openapi.json".into()) })
        // The router adds `Allow` with the methods the route takes.
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed(
                "this route does not take that method; the Allow header lists those it takes, \
                 see /openapi.json"
                    .into(),
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(crate::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                security_headers(request, next, hsts)
            },
        ))
        // Request spans at DEBUG: the default INFO level logs no paths (they name patients).
        // The span names the method and the path, never the query: a client may put a token
        // or a patient's number there.
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(|request: &axum::http::Request<axum::body::Body>| {
                    tracing::debug_span!(
                        "request",
                        method = %request.method(),
                        path = %request.uri().path(),
                        version = ?request.version(),
                    )
                })
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::DEBUG),
                ),
        )
        .with_state(state)
}

/// Routes that read nothing of the read models: they answer without waiting for them.
const READ_NO_READ_MODELS: [&str; 5] = [
    "/health",
    "/openapi.json",
    "/checkpoint",
    "/verify",
    "/ui/static/style.css",
];

/// Writes answer once durable; a read (GET, HEAD) first waits until the read models hold every
/// event acknowledged before it arrived, so that it shows them, whoever wrote them. Without
/// writes in flight that is one comparison.
async fn reads_see_writes(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::http::Method;
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if reads && !READ_NO_READ_MODELS.contains(&request.uri().path()) {
        state.app.caught_up().await;
    }
    next.run(request).await
}

/// Routes whose answers hold no patient's data and may be cached.
const CACHEABLE: [&str; 4] = [
    "/health",
    "/openapi.json",
    "/checkpoint",
    "/ui/static/style.css",
];

/// The headers every answer carries: no content sniffing, no framing, nothing loaded from
/// anywhere (`default-src 'none'`) but for the pages, which load their own style sheet, no caching of anything
/// that may hold a patient's data, and HSTS when served over TLS.
async fn security_headers(
    request: axum::extract::Request,
    next: axum::middleware::Next,
    hsts: bool,
) -> axum::response::Response {
    use axum::http::header::{self, HeaderValue};
    let _request = careledger_core::timing::start(careledger_core::timing::Phase::Request);
    let cacheable = CACHEABLE.contains(&request.uri().path());
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A page sets its own, strict policy (`pages::CSP`); everything else loads nothing.
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    if !cacheable {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}
