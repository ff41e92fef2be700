//! The API's errors, mapped once to `application/problem+json` bodies (RFC 9457).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::wire::ProblemDetails;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The request is malformed: bad JSON, wrong types, missing fields (400).
    #[error("{0}")]
    Malformed(String),
    /// No bearer token, or not a bearer token (401, `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthenticated(String),
    /// A bearer token was refused (401, `WWW-Authenticate: Bearer error="invalid_token"`):
    /// unknown, expired, revoked, replaced, or an access token that does not validate; the
    /// code says which.
    #[error("{message}")]
    InvalidToken {
        /// `token_expired`, `token_revoked`, `oidc_wrong_issuer`, ….
        code: String,
        /// The sentence, saying what to do.
        message: String,
    },
    /// The caller may not do this to this patient (403). The message never reveals whether the
    /// patient exists.
    #[error("{0}")]
    Forbidden(String),
    /// A rule on who may do what refused the command (403): the code names the rule
    /// (`role_not_permitted`, `not_the_author`), the message what would be allowed.
    #[error("{message}")]
    NotPermitted {
        /// The rule's stable code.
        code: String,
        /// The sentence.
        message: String,
    },
    /// A signed request's message signature was refused (401 with `Accept-Signature`, or 409
    /// `signature_replayed` for a signature used before): the code names what is wrong.
    #[error("{message}")]
    Signature {
        /// `signature_invalid`, `signature_key_unknown`, `signature_stale`, ….
        code: String,
        /// The sentence, saying how to fix it.
        message: String,
    },
    /// No such resource (404).
    #[error("{0}")]
    NotFound(String),
    /// The route does not take this method (405; the router adds `Allow`).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A stream was asked to resume after a position the ledger has not reached (416, code
    /// `after_beyond_head`, naming the head): the client holds a position of another ledger,
    /// or of this one before a restore.
    #[error(
        "the stream cannot resume after position {after}: the ledger's head is at {head}; resume \
         from at most {head} (0 reads from the start)"
    )]
    BeyondHead {
        /// The position asked for.
        after: u64,
        /// The ledger's head (the last durable position).
        head: u64,
    },
    /// A limit of the server was reached (429 with `Retry-After`): the code names which
    /// (`rate_limited`, `too_many_streams`, `verify_in_progress`), the message the limit and
    /// when to retry.
    #[error("{message}")]
    TooManyRequests {
        /// The limit's stable code.
        code: String,
        /// The sentence, naming the limit and when to retry.
        message: String,
        /// Seconds to wait before retrying, sent as `Retry-After`.
        retry_after_secs: u64,
    },
    /// Expected revision or idempotency conflict (409).
    #[error("{0}")]
    Conflict(String),
    /// The body is too large (413).
    #[error("{0}")]
    TooLarge(String),
    /// Not JSON (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A value is invalid or a business rule refused the command (422).
    #[error("{message}")]
    Unprocessable {
        /// A stable code (`agreement_4`, `invalid_value`).
        code: String,
        /// The sentence.
        message: String,
    },
    /// The ledger cannot write now: storage failure or damaged head (503).
    #[error("{0}")]
    Unavailable(String),
    /// The ledger is damaged: acknowledged events are missing or changed (503, code
    /// `ledger_damaged`, naming the last anchored position and how many are missing). Writes
    /// stay refused until an operator restores the events.
    #[error("{0}")]
    Damaged(careledger_core::anchor::Damage),
    /// Verification found the ledger not intact (409, code `ledger_not_intact`): the stored
    /// ledger conflicts with what it must be; the position says where.
    #[error("{detail}")]
    NotIntact {
        /// The first problem, as a sentence.
        detail: String,
        /// Where the ledger first fails.
        position: u64,
        /// Events verified before it.
        verified: u64,
    },
    /// The request ran past its time limit and what it did was stopped (408, code
    /// `timed_out`): the detail says which limit and how to ask for less.
    #[error("{0}")]
    TimedOut(String),
    /// Writes are held (503): the code names why (`disk_full`: the server opened on a full disk
    /// in its reserve's space; `behind_witnessed_checkpoint`: a restored ledger lacks
    /// acknowledged events), the message what the operator does. Reads go on.
    #[error("{message}")]
    WritesHeld {
        /// The hold's stable code.
        code: String,
        /// The sentence.
        message: String,
    },
    /// The access log cannot be kept (503, code `access_log_unavailable`): the request was not
    /// served, so that no access goes unlogged.
    #[error("{0}")]
    AccessLogUnavailable(String),
    /// A bug or an unexpected failure (500); the detail goes to the log only.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The one 403 for a patient the caller may not see, whether or not the patient exists.
    pub fn not_in_care_team() -> ApiError {
        ApiError::Forbidden(
            "you are not in this patient's care team, or the patient does not exist; a team member \
             must add you (a new patient's team is founded by starting shared care or adding yourself)"
                .into(),
        )
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.parts().0
    }

    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            ApiError::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed", "Malformed request"),
            ApiError::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Not authenticated",
            ),
            ApiError::InvalidToken { .. } => {
                (StatusCode::UNAUTHORIZED, "invalid_token", "Token refused")
            }
            ApiError::Forbidden(_) | ApiError::NotPermitted { .. } => {
                (StatusCode::FORBIDDEN, "forbidden", "Not permitted")
            }
            ApiError::Signature { code, .. } if code == "signature_replayed" => (
                StatusCode::CONFLICT,
                "signature_replayed",
                "Signature used before",
            ),
            ApiError::Signature { .. } => (
                StatusCode::UNAUTHORIZED,
                "signature_refused",
                "Signature refused",
            ),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", "Not found"),
            ApiError::MethodNotAllowed(_) => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
            ),
            ApiError::BeyondHead { .. } => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                "after_beyond_head",
                "Position beyond the head",
            ),
            ApiError::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many requests",
            ),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            ApiError::TooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                "Request too large",
            ),
            ApiError::UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
            ),
            ApiError::Unprocessable { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "rejected", "Rejected")
            }
            ApiError::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Ledger unavailable",
            ),
            ApiError::AccessLogUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "access_log_unavailable",
                "Access log unavailable",
            ),
            ApiError::WritesHeld { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "writes_held",
                "Writes held",
            ),
            ApiError::Damaged(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ledger_damaged",
                "Ledger damaged",
            ),
            ApiError::NotIntact { .. } => (
                StatusCode::CONFLICT,
                "ledger_not_intact",
                "Ledger not intact",
            ),
            ApiError::TimedOut(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "timed_out",
                "Request timed out",
            ),
            ApiError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }
}

impl From<careledger_core::Error> for ApiError {
    fn from(e: careledger_core::Error) -> Self {
        use careledger_core::Error as E;
        match e {
            E::Invalid(i) => ApiError::Unprocessable {
                code: "invalid_value".into(),
                message: i.to_string(),
            },
            // One answer for "not a member" and "no such patient", so that nobody learns which.
            E::Rejected(r)
                if matches!(
                    r.code,
                    careledger_core::RejectionCode::NotInCareTeam
                        | careledger_core::RejectionCode::NoCareTeam
                ) =>
            {
                ApiError::not_in_care_team()
            }
            E::Rejected(r) if r.kind == careledger_core::RejectionKind::NotPermitted => {
                ApiError::NotPermitted {
                    code: r.code.into(),
                    message: r.message,
                }
            }
            E::Rejected(r) => ApiError::Unprocessable {
                code: r.code.into(),
                message: r.message,
            },
            e @ (E::Conflict { .. } | E::IdempotencyMismatch { .. }) => {
                ApiError::Conflict(e.to_string())
            }
            E::Signature(p) => {
                use careledger_core::signed_request::SignatureProblem as P;
                let code = match &p {
                    P::UnknownKey { .. } => "signature_key_unknown",
                    P::Revoked { .. } => "signature_key_revoked",
                    P::Invalid { .. } => "signature_invalid",
                    P::Stale { .. } => "signature_stale",
                    P::Replayed => "signature_replayed",
                    _ => "signature_refused",
                };
                ApiError::Signature {
                    code: code.into(),
                    message: p.to_string(),
                }
            }
            E::Damaged(damage) => ApiError::Damaged(damage),
            E::Proof(p) => ApiError::Unprocessable {
                code: "no_such_proof".into(),
                message: p.to_string(),
            },
            e @ (E::Poisoned(_) | E::Storage(_)) => ApiError::Unavailable(e.to_string()),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<careledger_app::AppError> for ApiError {
    fn from(e: careledger_app::AppError) -> Self {
        use careledger_app::AppError as A;
        match e {
            A::Malformed(m) => ApiError::Malformed(m),
            A::Unauthenticated(m) => ApiError::Unauthenticated(m),
            A::TokenRefused { code, message } => ApiError::InvalidToken { code, message },
            A::Forbidden(m) => ApiError::Forbidden(m),
            A::NotPermitted { code, message } => ApiError::NotPermitted { code, message },
            A::NotFound(m) => ApiError::NotFound(m),
            A::Conflict(m) => ApiError::Conflict(m),
            A::Invalid { code, message } => ApiError::Unprocessable { code, message },
            A::Ledger(e) => e.into(),
            A::InUse(m) => ApiError::Unavailable(m),
            A::AccessLogUnavailable(m) => ApiError::AccessLogUnavailable(m),
            A::WritesHeld(hold) => ApiError::WritesHeld {
                code: hold.kind.as_str().into(),
                message: hold.reason,
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<crate::signature::SignatureError> for ApiError {
    fn from(e: crate::signature::SignatureError) -> Self {
        ApiError::Signature {
            code: e.code.into(),
            message: e.message,
        }
    }
}

impl From<careledger_core::InvalidInput> for ApiError {
    fn from(e: careledger_core::InvalidInput) -> Self {
        ApiError::Unprocessable {
            code: "invalid_value".into(),
            message: e.to_string(),
        }
    }
}

impl From<careledger_projections::ProjectionError> for ApiError {
    fn from(e: careledger_projections::ProjectionError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<crate::wire::WireError> for ApiError {
    fn from(e: crate::wire::WireError) -> Self {
        match e.kind {
            crate::wire::WireErrorKind::Invalid { code } => ApiError::Unprocessable {
                code: code.into(),
                message: e.message,
            },
            _ => ApiError::Malformed(e.message),
        }
    }
}

impl ApiError {
    /// The problem+json body this error answers with.
    pub fn problem(&self) -> ProblemDetails {
        let (status, kind, title) = self.parts();
        let (code, detail) = match self {
            ApiError::Unprocessable { code, message }
            | ApiError::NotPermitted { code, message }
            | ApiError::Signature { code, message }
            | ApiError::TooManyRequests { code, message, .. }
            | ApiError::WritesHeld { code, message } => (code.clone(), message.clone()),
            ApiError::InvalidToken { code, message } => (code.clone(), message.clone()),
            ApiError::Internal(_) => (
                kind.to_owned(),
                "an internal error occurred; it was logged for the operator".to_owned(),
            ),
            ApiError::Unavailable(detail) => (
                kind.to_owned(),
                format!("{detail}; retry later with the same Idempotency-Key"),
            ),
            other => (kind.to_owned(), other.to_string()),
        };
        let problem = ProblemDetails::new(status.as_u16(), title, &code, detail);
        match self {
            ApiError::Damaged(damage) => problem.with_damage(damage),
            ApiError::NotIntact {
                position, verified, ..
            } => problem.with_not_intact(*position, *verified),
            ApiError::BeyondHead { head, .. } => ProblemDetails {
                ledger_head_position: Some(*head),
                ..problem
            },
            _ => problem,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(detail) => tracing::error!(%detail, "internal error"),
            ApiError::Unavailable(detail) => tracing::warn!(%detail, "ledger unavailable"),
            ApiError::WritesHeld { message, .. } => tracing::warn!(%message, "write refused"),
            ApiError::AccessLogUnavailable(detail) => {
                tracing::warn!(%detail, "access refused: the access log cannot be kept")
            }
            ApiError::Damaged(damage) => tracing::error!(%damage, "ledger damaged"),
            _ => {}
        }
        let problem = self.problem();
        let status =
            StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED && matches!(self, ApiError::Signature { .. }) {
            response.headers_mut().insert(
                header::HeaderName::from_static("accept-signature"),
                header::HeaderValue::from_static(crate::signature::ACCEPT_SIGNATURE),
            );
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        if let ApiError::TooManyRequests {
            retry_after_secs, ..
        } = &self
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(*retry_after_secs),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750: the scheme the client must use, and for a token that is not known, why.
            let challenge = match &self {
                ApiError::InvalidToken { .. } => {
                    "Bearer realm=\"careledger\", error=\"invalid_token\""
                }
                _ => "Bearer realm=\"careledger\"",
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(challenge),
            );
        }
        response
    }
}
