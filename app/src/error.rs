//! The application layer's errors: what went wrong, in terms of the ledger and its users, never
//! of HTTP. The HTTP crate maps each to a status and a problem+json body; the command-line tool
//! prints it as one line.

use careledger_core::anchor::Damage;

/// Everything an operation of the application layer can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// An identifier or parameter does not parse (a patient id in a path, a notification id).
    #[error("{0}")]
    Malformed(String),
    /// No credentials, or unknown ones.
    #[error("{0}")]
    Unauthenticated(String),
    /// A bearer token was refused: unknown, expired, revoked, replaced by rotation, or an
    /// access token that does not validate. The code says which (`token_expired`, ...), the
    /// message what to do.
    #[error("{message}")]
    TokenRefused {
        /// A stable code.
        code: String,
        /// The sentence.
        message: String,
    },
    /// The caller may not do this to this patient. The message never reveals whether the
    /// patient exists.
    #[error("{0}")]
    Forbidden(String),
    /// A rule on who may do what refused the command: the code names the rule
    /// (`role_not_permitted`, `not_the_author`), the message what would be allowed.
    #[error("{message}")]
    NotPermitted {
        /// The rule's stable code.
        code: String,
        /// The sentence.
        message: String,
    },
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// Something already exists, or the state is not what the caller expected.
    #[error("{0}")]
    Conflict(String),
    /// A value is invalid or a business rule refused the command: the code names it
    /// (`agreement_4`, `invalid_value`, `unknown_actor`).
    #[error("{message}")]
    Invalid {
        /// A stable code.
        code: String,
        /// The sentence.
        message: String,
    },
    /// The ledger refused or failed: a rejection, a conflict, a storage failure, damage.
    #[error(transparent)]
    Ledger(#[from] careledger_core::Error),
    /// The read models could not be read or written.
    #[error(transparent)]
    Projections(#[from] careledger_projections::ProjectionError),
    /// The data directory is held by another process.
    #[error("{0}")]
    InUse(String),
    /// A store of the application layer (the actors) failed.
    #[error("{context}: {detail}")]
    Store {
        /// What was being done.
        context: &'static str,
        /// The failure.
        detail: String,
    },
    /// The access log cannot be kept (its queue is full, or it cannot be written): the access
    /// is refused rather than served unlogged.
    #[error("{0}")]
    AccessLogUnavailable(String),
    /// Writes are held (a full disk, a restored ledger behind a witnessed checkpoint): reads
    /// and verification go on; the hold says why and what the operator does.
    #[error("{}", .0.reason)]
    WritesHeld(crate::hold::WriteHold),
    /// A bug or an unexpected failure.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    /// The one refusal for a patient the caller may not see, whether or not the patient exists.
    pub fn not_in_care_team() -> AppError {
        AppError::Forbidden(
            "you are not in this patient's care team, or the patient does not exist; a team member \
             must add you (a new patient's team is founded by starting shared care or adding yourself)"
                .into(),
        )
    }

    /// The damage that keeps the ledger from taking writes, if that is what this error is.
    pub fn damage(&self) -> Option<&Damage> {
        match self {
            AppError::Ledger(careledger_core::Error::Damaged(d)) => Some(d),
            _ => None,
        }
    }
}

impl From<careledger_core::InvalidInput> for AppError {
    fn from(e: careledger_core::InvalidInput) -> Self {
        AppError::Invalid {
            code: "invalid_value".into(),
            message: e.to_string(),
        }
    }
}

/// Opens the sled database `config` names in `dir`, for a store of the application layer (the
/// actors, the access log): another process holding it is [`AppError::InUse`], any other
/// failure an [`AppError::Store`] with `context`. See [`careledger_core::storage::open_sled`].
pub(crate) fn open_store_db(
    config: &sled::Config,
    dir: &std::path::Path,
    context: &'static str,
) -> Result<sled::Db, AppError> {
    careledger_core::storage::open_sled(config, dir).map_err(|e| {
        match careledger_core::storage::open_error(dir, e) {
            e @ careledger_core::StorageError::InUse { .. } => AppError::InUse(e.to_string()),
            e => AppError::Store {
                context,
                detail: e.to_string(),
            },
        }
    })
}
