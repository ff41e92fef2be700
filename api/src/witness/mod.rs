//! C2SP tlog-witness over HTTP: the witness's server ([`server`]), which a second party (the GP
//! cooperative, the hospital) runs with `careledger witness serve`, and the log's client
//! ([`client`]), with which `careledger-app`'s `witnesses` pushes checkpoints to it.
//!
//! The decisions are `careledger_core::witness`'s; this module carries them over HTTP:
//!
//! | request | answer |
//! | --- | --- |
//! | `POST /add-checkpoint`, cosigned | 200, `text/plain`: the witness's cosignature line |
//! | malformed, or old size beyond the checkpoint's | 400, a sentence |
//! | no valid signature by the log's key | 403, a sentence |
//! | a log the witness does not follow | 404, a sentence |
//! | old size is not the size it cosigned last | 409, `text/x.tlog.size`: that size and `\n` |
//! | a proof that does not verify, a rollback or fork met with the right old size | 422, a sentence |
//! | `GET /<hex SHA-256 of origin>/checkpoint` | 200, the latest checkpoint it cosigned, or 404 |

pub mod client;
pub mod server;

pub use client::HttpWitnessClient;
pub use server::{router, serve, status_of};

#[cfg(test)]
mod tests;
