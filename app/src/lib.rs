//! careledger-app: the application layer between the ledger and its front ends.
//!
//! It opens a data directory ([`DataDir`]), owns the ledger, the read models, the registered
//! actors, the [`projector`] that advances the read models and the [`feed`] that serves
//! subscribers, and offers the operations every front end goes through ([`App`]): who may read
//! what, writes with the registry's checks, acknowledgements, verification. It speaks neither
//! HTTP nor JSON; its errors ([`AppError`]) say what went wrong for the HTTP crate and the
//! command-line tool to put in their own words.
#![deny(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod access;
pub mod access_log;
pub mod actors;
pub mod admin;
pub mod backup;
pub mod data_dir;
pub mod error;
pub mod export;
pub mod feed;
pub mod hold;
pub mod keys;
pub mod memory;
pub mod projector;
pub mod recovery;
pub mod reserve;
pub mod service;
pub mod witnesses;

pub use data_dir::DataDir;
pub use error::AppError;
pub use memory::MemoryBudget;
pub use service::{App, MyPatient, Write, PROJECTION_LAG_LIMIT};
