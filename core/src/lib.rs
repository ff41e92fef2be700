//! careledger-core: the write model of the care-plan ledger.
//!
//! Domain types with validating constructors ([`ids`], [`role`], [`quantity`]), the event
//! catalogue ([`event`]) with its clinical payloads ([`clinical`]), the business rules
//! ([`decide`], [`governance`], [`duplicate_lab`]), the notify-the-other-party rule ([`notify`]),
//! and the append-only hash-chained log on sled ([`ledger`], the facade over the command handler
//! [`handler`] and the event log [`log`]; [`chain`], [`storage`], [`verify`]) with its anchor
//! outside sled ([`anchor`]), the Merkle tree and signed checkpoints ([`merkle`], [`note`],
//! [`checkpoint`]) with the patients' heads map ([`heads`]) and witnesses ([`witness`]), exports
//! of one patient's history as evidence ([`export`]), and the clock and ids the ledger is given
//! ([`clock`]).
//!
//! **Invariant:** this crate knows nothing of HTTP, JSON DTOs or the command line.
#![deny(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod anchor;
pub mod backup;
pub mod care_team;
pub mod chain;
pub mod checkpoint;
pub mod clinical;
pub mod clock;
pub mod decide;
pub mod duplicate_lab;
pub mod error;
pub mod event;
pub mod export;
pub mod governance;
pub mod handler;
pub mod heads;
pub mod ids;
pub mod journal;
pub mod ledger;
pub mod log;
pub mod merkle;
pub mod note;
pub mod notify;
pub mod quantity;
pub mod record;
mod record_v1;
pub mod role;
pub mod signed_request;
pub mod signing_keys;
pub mod storage;
pub mod timing;
pub mod verify;
pub mod witness;

pub use error::{
    Error, InvalidInput, Rejection, RejectionCode, RejectionKind, Result, StorageError,
};
pub use ledger::{
    AppendOutcome, AppendRequest, Appended, ExpectedRevision, Head, Ledger, LedgerConfig,
    Submission,
};
pub use record::{Actor, FramedEvent, Hash, Record, RecordedEvent, Timestamp};
