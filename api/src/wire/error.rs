//! [`WireError`]: what is wrong with a request, where in it, and whether it is malformed (400) or
//! holds an invalid value (422).

use std::fmt;

/// What is wrong with a request, and where.
///
/// The HTTP layer maps [`WireErrorKind::Malformed`] to 400 and [`WireErrorKind::Invalid`] to 422
/// with the code; the wire layer itself knows no status codes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireError {
    /// The JSON path of the problem (`commands[3].value`), the query parameter or header
    /// (`If-Match`); empty for the whole body.
    pub path: String,
    /// The problem as a sentence that names the path.
    pub message: String,
    /// Malformed or invalid.
    pub kind: WireErrorKind,
}

/// The class of a [`WireError`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireErrorKind {
    /// The request's shape is wrong: not JSON, a missing or unknown field, a value of the wrong
    /// JSON type, a string too long, too many commands (400).
    Malformed,
    /// The shape is right but a value is not: an unknown code, a value out of range, an id that
    /// is not one (422).
    Invalid {
        /// The stable problem code: `invalid_value`.
        code: &'static str,
    },
}

/// The code of an invalid value.
pub const INVALID_VALUE: &str = "invalid_value";

impl WireError {
    /// A malformed request at `path`; `problem` continues the sentence that starts with the path
    /// ("is required", "must be a string, got a number").
    pub fn malformed(path: impl Into<String>, problem: impl fmt::Display) -> Self {
        let path = path.into();
        let message = if path.is_empty() {
            problem.to_string()
        } else {
            format!("{path} {problem}")
        };
        Self {
            path,
            message,
            kind: WireErrorKind::Malformed,
        }
    }

    /// An invalid value at `path`: `problem` is a complete sentence (usually core's
    /// [`careledger_core::InvalidInput`]), prefixed with the path.
    pub fn invalid(path: impl Into<String>, problem: impl fmt::Display) -> Self {
        let path = path.into();
        let message = if path.is_empty() {
            problem.to_string()
        } else {
            format!("{path}: {problem}")
        };
        Self {
            path,
            message,
            kind: WireErrorKind::Invalid {
                code: INVALID_VALUE,
            },
        }
    }

    /// True for a malformed request (400).
    pub fn is_malformed(&self) -> bool {
        self.kind == WireErrorKind::Malformed
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WireError {}
