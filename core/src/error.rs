//! The errors of `careledger-core`.

use std::fmt;
use std::path::PathBuf;

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
    /// The storage engine or the file system failed (internal, or the disk is full or
    /// read-only), or a write was lost to such a failure; [`StorageError`] says which.
    #[error("storage: {0}")]
    Storage(StorageError),
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

impl From<StorageError> for Error {
    fn from(e: StorageError) -> Self {
        Error::Storage(e)
    }
}

/// A failure of the storage under the ledger: the storage engine, the file system, or the bytes
/// they hold. Internal, or the disk is full or read-only; the API answers 503.
///
/// Its message includes its source's, so that one line says everything; the source is kept
/// for callers that inspect it (an [`std::io::ErrorKind`], say).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Another process holds the store's directory (sled locks it; usually a running server).
    /// The user's to resolve: stop that process, or go through it.
    #[error(
        "{} is in use by another process (a running `careledger serve`?); stop it first, or use the HTTP API",
        dir.display()
    )]
    InUse {
        /// The store's directory.
        dir: PathBuf,
    },
    /// The file system failed: a full disk, a file system remounted read-only, an IO error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, and to which file.
        context: String,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes are damaged or malformed (internal: restore from a backup).
    #[error("{context}")]
    Corrupt {
        /// What is damaged, and where.
        context: String,
    },
    /// A write did not become durable because a storage failure came first: it is not
    /// acknowledged; send it again.
    #[error("{context}")]
    Lost {
        /// What was lost, and the failure that lost it.
        context: String,
    },
    /// Another failure of the storage engine.
    #[error("{source}")]
    Other {
        /// The storage engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StorageError {
    /// A file system failure while doing `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StorageError::Io {
            context: context.into(),
            source,
        }
    }

    /// Damaged or malformed stored bytes, described by `context`.
    pub fn corrupt(context: impl Into<String>) -> Self {
        StorageError::Corrupt {
            context: context.into(),
        }
    }

    /// Another failure of the storage engine, with its source.
    pub fn other(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StorageError::Other {
            source: source.into(),
        }
    }

    /// The file system's error kind, when the file system failed.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            StorageError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// A failure described in words only (a storage implementation outside this crate, a task that
/// could not run): [`StorageError::Other`].
impl From<String> for StorageError {
    fn from(message: String) -> Self {
        StorageError::other(message)
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
