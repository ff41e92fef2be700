//! The OpenAPI 3.1 document, derived from the router's annotated handlers (utoipa-axum) and the
//! wire types' schemas, so that routes and document cannot diverge; served at `/openapi.json`.

use std::sync::OnceLock;

use axum::body::Bytes;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::OpenApi;

/// The document's fixed parts; the paths come from the router.
fn base() -> OpenApi {
    let mut doc = OpenApi::default();
    doc.info.title = "careledger".into();
    doc.info.version = env!("CARGO_PKG_VERSION").into();
    doc.info.description = Some(
        "An event-sourced, hash-chained ledger of individual care plans shared between a \
         patient's GP practice (first line) and a hospital specialist (second line). Every \
         request but /health and /openapi.json needs `Authorization: Bearer <token>` (401 \
         answers carry `WWW-Authenticate: Bearer`). Errors are application/problem+json (RFC \
         9457) with a stable `code`. Any authenticated request may be refused with 429 \
         `rate_limited` and `Retry-After` when its token sends more than the server's rate \
         (by default 50 requests a second, bursts of 200); a method a route does not take \
         answers 405 with `Allow`."
            .into(),
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    for (name, schema) in crate::wire::schemas() {
        components.schemas.insert(name, schema);
    }
    doc
}

/// The whole document: the router's paths over [`base`].
pub fn document() -> OpenApi {
    crate::router::routes(base()).into_openapi()
}

/// The document as served, serialized once.
pub fn document_bytes() -> Bytes {
    static DOCUMENT: OnceLock<Bytes> = OnceLock::new();
    DOCUMENT
        .get_or_init(|| Bytes::from(document().to_json().unwrap_or_default()))
        .clone()
}
