//! careledger-core: the write model of the care-plan ledger.
//!
//! Domain types with validating constructors ([`ids`], [`role`], [`quantity`]), the event
//! catalogue ([`event`]) with its clinical payloads ([`clinical`]), the business rules ([`decide`]), the notify-the-other-party rule
//! ([`notify`]), and the append-only hash-chained log on sled ([`ledger`], [`chain`],
//! [`storage`], [`verify`]) with its anchor outside sled ([`anchor`]), its Merkle tree and signed
//! checkpoints ([`merkle`], [`note`], [`checkpoint`]) with the patients' heads map ([`heads`]),
//! and exports of one patient's history as evidence ([`export`]).
//!
//! **Invariant:** this crate knows nothing of HTTP, JSON DTOs or the command line.
#![deny(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod anchor;
pub mod chain;
pub mod checkpoint;
pub mod clinical;
pub mod decide;
pub mod error;
pub mod event;
pub mod export;
pub mod governance;
pub mod heads;
pub mod ids;
pub mod ledger;
pub mod merkle;
pub mod note;
pub mod notify;
pub mod quantity;
pub mod record;
mod record_v1;
pub mod role;
pub mod storage;
pub mod verify;

pub use error::{Error, InvalidInput, Rejection, RejectionKind, Result};
pub use ledger::{
    AppendOutcome, AppendRequest, ExpectedRevision, Head, Ledger, LedgerConfig, Submission,
};
pub use record::{Actor, Hash, Record, RecordedEvent, Timestamp};
