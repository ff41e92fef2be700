//! The errors of `careledger-core`.

use std::fmt;

/// A value that failed validation: which field, and what is wrong with it.
///
/// The user's fault; the message says how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidInput {
    field: &'static str,
    problem: String,
}

impl InvalidInput {
    /// A validation failure of `field`.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }

    /// The field or value kind that failed.
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.problem)
    }
}

impl std::error::Error for InvalidInput {}

/// What kind of rule refused a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectionKind {
    /// A rule on the plan's content (agreement 4, a duplicate order, an unknown element): the
    /// command could be right from this actor with other content.
    Rule,
    /// A rule on who may do what (role, line, membership, authorship): this actor may not do
    /// this, whatever the content.
    NotPermitted,
}

/// Why a command was refused by the business rules. The user's fault: the message
/// names the rule (and the working agreement it comes from) and what would be accepted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    /// A stable machine-readable code, e.g. `not_in_care_team`.
    pub code: &'static str,
    /// A sentence a clinician can act on.
    pub message: String,
    /// A content rule or a permission rule.
    pub kind: RejectionKind,
}

impl Rejection {
    /// A refusal by a rule on the plan's content.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            kind: RejectionKind::Rule,
        }
    }

    /// A refusal by a rule on who may do what.
    pub fn not_permitted(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            kind: RejectionKind::NotPermitted,
        }
    }
}

/// Everything that can go wrong in the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A value failed validation (user's fault).
    #[error("invalid input: {0}")]
    Invalid(#[from] InvalidInput),
    /// A business rule refused the command (user's fault).
    #[error("rejected: {0}")]
    Rejected(#[from] Rejection),
    /// The stream's revision was not the expected one (a conflict: re-read and retry).
    #[error(
        "revision conflict on patient {patient}: expected {expected}, the stream is at {actual}"
    )]
    Conflict {
        /// The patient stream.
        patient: String,
        /// What the writer expected, as text (`no stream`, `revision 4`).
        expected: String,
        /// The current revision, as text.
        actual: String,
    },
    /// The idempotency key was used before for different content (a conflict).
    #[error("idempotency key {key:?} was already used for a different request; use a new key for new content")]
    IdempotencyMismatch {
        /// The reused key.
        key: String,
    },
    /// The stored chain failed verification (internal: the data was changed or damaged).
    #[error("ledger integrity: {0}")]
    Integrity(crate::verify::Problem),
    /// The ledger refuses writes: its head does not verify (only an operator can help), or an
    /// earlier storage failure persists (writing resumes by itself once the cause is removed).
    #[error("the ledger is refusing writes: {0}")]
    Poisoned(String),
    /// The ledger is damaged: acknowledged events are missing or changed, found by comparing
    /// it with its anchor or by the head check on open (only an operator can help; the ledger
    /// serves reads and refuses writes until then).
    #[error("{0}")]
    Damaged(crate::anchor::Damage),
    /// The storage engine or the file system failed (internal, or the disk is full or read-only).
    #[error("storage: {0}")]
    Storage(String),
    /// A Merkle proof cannot be made for these sizes or positions (user's fault), or does not
    /// verify.
    #[error("proof: {0}")]
    Proof(#[from] crate::merkle::ProofError),
    /// A stored record could not be decoded (internal).
    #[error("decoding record at position {position}: {detail}")]
    Decode {
        /// The record's global position.
        position: u64,
        /// What failed.
        detail: String,
    },
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Storage(e.to_string())
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
