//! careledger-api: the HTTP API over the application layer.
//!
//! **API boundary:** only this crate speaks HTTP/JSON; its request and response shapes are its own
//! ([`dto`], [`view`]), converted from the domain types. Handlers call the application layer
//! (`careledger-app`) for everything that is not HTTP: who may read and write, appending,
//! acknowledging, verifying.
#![deny(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod access_log;
pub mod client;
pub mod error;
pub mod extract;
pub mod limits;
pub mod oidc;
pub mod openapi;
pub mod pages;
pub mod router;
pub mod routes;
pub mod serve;
pub mod signature;
pub mod sse;
pub mod state;
pub mod tls;
pub mod wire;
pub mod witness;

pub use limits::{Limits, Rate};
pub use router::app;
pub use serve::{serve, serve_with, Transport};
pub use state::AppState;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest page of the global log.
pub const MAX_PAGE: usize = 1000;
