//! careledger-api: the HTTP API over the ledger and its read models, and the command-line tool.
//!
//! **API boundary:** only this crate speaks HTTP/JSON; its request and response shapes are its own
//! ([`dto`], [`view`]), converted by hand from the domain types.
#![deny(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod actors;
pub mod cli;
pub mod demo;
pub mod dto;
pub mod error;
pub mod http;
pub mod loadtest;
pub mod openapi;
pub mod server;
pub mod view;
pub mod wire;
