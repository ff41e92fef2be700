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

/// Declares an enum of stable machine-readable codes, each with its wire string: the string is
/// written once, and `as_str`, `Display` and serde all use it.
macro_rules! wire_codes {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize,
        )]
        #[non_exhaustive]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $wire)] $variant, )*
        }

        impl $name {
            /// Every code, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The wire string: snake_case, stable.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }

            /// The code with this wire string, if there is one.
            pub fn parse(wire: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|code| code.as_str() == wire)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Compares the wire string.
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        /// Compares the wire string.
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl From<$name> for String {
            fn from(code: $name) -> String {
                code.as_str().to_owned()
            }
        }
    };
}
pub(crate) use wire_codes;

wire_codes! {
    /// Which rule refused a command: the stable code a client acts on (`code` in an API
    /// problem body). Its wire string is its name in snake_case (`not_in_care_team`).
    pub enum RejectionCode {
        /// An acknowledgement is corrected only by the one who gave it.
        AcknowledgementByItsAuthor = "acknowledgement_by_its_author",
        /// Agreement 4: the other line's medication is changed or stopped only for side
        /// effects or target not reached.
        Agreement4 = "agreement_4",
        /// The notification was acknowledged already.
        AlreadyAcknowledged = "already_acknowledged",
        /// The entry is marked entered in error already.
        AlreadyCorrected = "already_corrected",
        /// The actor is in the care team already.
        AlreadyInCareTeam = "already_in_care_team",
        /// The member is the lead's main practitioner already.
        AlreadyMainPractitioner = "already_main_practitioner",
        /// A care-group administrator corrects only the team and who leads it.
        CareGroupAdminCorrectsTheTeam = "care_group_admin_corrects_the_team",
        /// Only the author or their own line corrects an entry.
        CorrectionByOtherLine = "correction_by_other_line",
        /// A correction is not itself corrected.
        CorrectionIsFinal = "correction_is_final",
        /// Breaking the glass opens a record for acute care only: the command is not one of
        /// the acute interventions, or the access has ended.
        EmergencyAccessLimited = "emergency_access_limited",
        /// Breaking the glass asks a practitioner's role, a reason and 1 to 24 hours.
        EmergencyAccessRefused = "emergency_access_refused",
        /// A broken glass is a fact of access and stays on the record.
        EmergencyAccessStays = "emergency_access_stays",
        /// The dose change names the dose and frequency already prescribed.
        DoseUnchanged = "dose_unchanged",
        /// This role does not found a care team (agreement 1).
        FounderNotPermitted = "founder_not_permitted",
        /// A lifestyle goal with this id exists.
        GoalExists = "goal_exists",
        /// The lifestyle goal is not open.
        GoalNotOpen = "goal_not_open",
        /// A lab order with this id exists.
        LabOrderExists = "lab_order_exists",
        /// The lead is not one of the member's line.
        LeadDoesNotFitLine = "lead_does_not_fit_line",
        /// The lead has a main practitioner; a new member joins as co-practitioner.
        LeadHasMainPractitioner = "lead_has_main_practitioner",
        /// The main practitioner hands the lead over before leaving the team.
        MainPractitionerHandsOverFirst = "main_practitioner_hands_over_first",
        /// The medication is active already.
        MedicationAlreadyActive = "medication_already_active",
        /// The medication is not active.
        MedicationNotActive = "medication_not_active",
        /// The patient has no care team yet: the first command founds it.
        NoCareTeam = "no_care_team",
        /// A correction would leave no practitioner in the team.
        NoPractitionerLeft = "no_practitioner_left",
        /// A lab request names no test.
        NoTests = "no_tests",
        /// The lead named is no lead (`none`).
        NotALead = "not_a_lead",
        /// The actor, or the member named, is not in the patient's care team.
        NotInCareTeam = "not_in_care_team",
        /// The notification is addressed to another line.
        NotTheRecipient = "not_the_recipient",
        /// The position named is not an event of this patient.
        NotThisPatientsEvent = "not_this_patients_event",
        /// The notification was withdrawn by a correction of its cause.
        NotificationWithdrawn = "notification_withdrawn",
        /// Only the main practitioner hands the lead over.
        OnlyMainPractitionerHandsOver = "only_main_practitioner_hands_over",
        /// Only the main practitioner removes a member of their line.
        OnlyMainPractitionerRemoves = "only_main_practitioner_removes",
        /// A member of the other line is removed only by that line's main practitioner.
        OtherLinesMember = "other_lines_member",
        /// The patient joins the team as no practitioner.
        PatientIsNotAPractitioner = "patient_is_not_a_practitioner",
        /// A patient records measurements taken at home.
        PatientMeasuresAtHome = "patient_measures_at_home",
        /// A patient adds notes, not letters.
        PatientWritesNotes = "patient_writes_notes",
        /// A problem with this id exists.
        ProblemExists = "problem_exists",
        /// The problem is not active.
        ProblemNotActive = "problem_not_active",
        /// A care-group administrator's correction states its reason.
        ReasonRequired = "reason_required",
        /// A lab request names a test twice.
        RepeatedTest = "repeated_test",
        /// A stop that a later start follows stays until that start is corrected.
        RestartedAfterStop = "restarted_after_stop",
        /// The actor acts in another role than the team lists them in.
        RoleMismatch = "role_mismatch",
        /// The actor's role may not give this command.
        RoleNotPermitted = "role_not_permitted",
        /// Shared care is active already.
        SharedCareActive = "shared_care_active",
        /// Shared care is not active.
        SharedCareInactive = "shared_care_inactive",
        /// A signing key with this id is registered for the actor already.
        SigningKeyExists = "signing_key_exists",
        /// A signing key is registered by its actor, or by the operator on the command line.
        SigningKeyForOneself = "signing_key_for_oneself",
        /// No signing key with this id is registered (and not revoked) for the actor.
        SigningKeyNotRegistered = "signing_key_not_registered",
        /// The public key is not an ed25519 public key.
        SigningKeyInvalid = "signing_key_invalid",
        /// There is no target of this measure to withdraw.
        TargetNotSet = "target_not_set",
        /// The result names an order that did not request its test.
        TestNotInOrder = "test_not_in_order",
        /// The result names an order never placed for this patient.
        UnknownLabOrder = "unknown_lab_order",
        /// No notification of this patient is caused by that position.
        UnknownNotification = "unknown_notification",
        /// The indication names a problem not on the patient's problem list.
        UnknownProblem = "unknown_problem",
    }
}

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
    /// The rule's stable code, e.g. [`RejectionCode::NotInCareTeam`].
    pub code: RejectionCode,
    /// A sentence a clinician can act on.
    pub message: String,
    /// A content rule or a permission rule.
    pub kind: RejectionKind,
}

impl Rejection {
    /// A refusal by a rule on the plan's content.
    pub fn new(code: RejectionCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            kind: RejectionKind::Rule,
        }
    }

    /// A refusal by a rule on who may do what.
    pub fn not_permitted(code: RejectionCode, message: impl Into<String>) -> Self {
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
    /// A signed request's message signature was refused (the client's fault: 401, or 409 for
    /// a signature used before); [`crate::signed_request::SignatureProblem`] says what and how
    /// to fix it.
    #[error("signature: {0}")]
    Signature(crate::signed_request::SignatureProblem),
    /// A stored record could not be decoded (internal).
    #[error("decoding record at position {position}: {detail}")]
    Decode {
        /// The record's global position.
        position: u64,
        /// What failed.
        detail: String,
    },
}

impl From<crate::signed_request::SignatureProblem> for Error {
    fn from(e: crate::signed_request::SignatureProblem) -> Self {
        Error::Signature(e)
    }
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
/// for callers that inspect it (`std::error::Error::source`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// Another process holds the store's directory (sled locks it; usually a running server).
    /// The user's to resolve: stop that process, or go through it.
    #[error(
        "{} is in use by another process (a running `careledger serve`?): read through the server with --url and --token (plan, audit, notifications, verify, actors), or stop it first",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::WarningCode;

    /// `Agreement4` is `agreement_4`: an underscore before every capital and every digit run.
    fn snake_case(name: &str) -> String {
        let mut out = String::new();
        let mut previous_digit = false;
        for (i, c) in name.chars().enumerate() {
            let digit = c.is_ascii_digit();
            if i > 0 && (c.is_ascii_uppercase() || (digit && !previous_digit)) {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            previous_digit = digit;
        }
        out
    }

    fn check<C>(all: &[C])
    where
        C: Copy + std::fmt::Debug + std::fmt::Display + serde::Serialize,
        C: serde::de::DeserializeOwned + PartialEq + PartialEq<&'static str>,
    {
        let mut seen = std::collections::BTreeSet::new();
        for &code in all {
            let wire = code.to_string();
            assert_eq!(wire, snake_case(&format!("{code:?}")));
            assert!(seen.insert(wire.clone()), "{wire} is given twice");
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{wire}\""));
            assert_eq!(
                serde_json::from_str::<C>(&format!("\"{wire}\"")).unwrap(),
                code
            );
        }
    }

    #[test]
    fn every_code_is_its_name_in_snake_case_on_the_wire_and_reads_back() {
        check(RejectionCode::ALL);
        check(WarningCode::ALL);
        for &code in RejectionCode::ALL {
            assert_eq!(RejectionCode::parse(code.as_str()), Some(code));
            assert!(code == code.as_str());
        }
        assert_eq!(RejectionCode::Agreement4.as_str(), "agreement_4");
        assert_eq!(RejectionCode::parse("agreement4"), None);
    }
}
