//! The workspace's integration tests, in one binary: the ledger and its proofs, the HTTP API
//! through the router and against real servers, the command-line tool, crash, tamper and damage
//! proofs, and the golden vectors of `tests/data`.
//!
//! Tests that need root (a tmpfs, loop devices) or take minutes are `#[ignore]`d with the reason, so
//! that `cargo test --workspace` passes for any developer; `.ci/run` runs them explicitly with
//! `cargo test --test integration -- --ignored`, where they fail when what they need is missing.

mod common;

mod access_log;
mod anchor_damage;
mod backup;
mod break_glass;
mod browser;
mod checkpoint;
mod cli;
mod conformance;
mod connections;
mod crash;
mod crash_server;
mod disk_trouble;
mod e2e_server;
mod evidence_http;
mod export;
mod fhir;
mod golden;
mod hostile_input;
mod http_api;
mod journal;
mod ledger_proofs;
mod merkle;
mod misuse;
mod pages;
mod python_verifier;
mod read_only_at_runtime;
mod signed_requests;
mod simulation;
mod tamper_http;
mod tokens;
mod witness;
