//! Verification of the whole chain, and what it reports when something is wrong.

use std::fmt;

use crate::chain::Frame;
use crate::record::{decode_record, Hash};

/// What is wrong at a position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProblemKind {
    /// The stored hash is not the hash of the stored bytes: the record or its header was changed.
    HashMismatch {
        /// Hash in the frame.
        stored: Hash,
        /// Hash of the bytes as they are.
        computed: Hash,
    },
    /// The stored previous hash is not the hash of the event before.
    BrokenLink {
        /// The hash of the event before.
        expected: Hash,
        /// What the frame says.
        stored: Hash,
    },
    /// A position is missing: the chain jumps from `position - 1` to `found`.
    Gap {
        /// The next position present.
        found: u64,
    },
    /// The frame or record cannot be decoded.
    Undecodable(String),
}

/// The first problem found in the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The global position where the chain first fails.
    pub position: u64,
    /// What is wrong there.
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.position;
        match &self.kind {
            ProblemKind::HashMismatch { stored, computed } => write!(
                f,
                "hash mismatch at position {p}: stored {stored}, computed {computed} (the record was changed)"
            ),
            ProblemKind::BrokenLink { expected, stored } => write!(
                f,
                "broken link at position {p}: previous hash should be {expected}, frame says {stored}"
            ),
            ProblemKind::Gap { found } => {
                write!(f, "gap at position {p}: the next stored position is {found}")
            }
            ProblemKind::Undecodable(detail) => {
                write!(f, "undecodable record at position {p}: {detail}")
            }
        }
    }
}

/// The result of verifying the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events checked and found intact.
    pub verified: u64,
    /// The hash of the last intact event ([`Hash::ZERO`] for an empty ledger).
    pub head_hash: Hash,
    /// The first problem, if any; checking stops there.
    pub problem: Option<Problem>,
}

impl VerifyReport {
    /// True when every stored event verified.
    pub fn is_intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// Checks one stored frame at `position` against the hash of the event before it.
/// Returns the frame's hash when intact.
pub fn check_frame(
    position: u64,
    bytes: &[u8],
    prev: &Hash,
    decode: bool,
) -> Result<Hash, Problem> {
    let problem = |kind| Problem { position, kind };
    let frame = Frame::parse(bytes)
        .ok_or_else(|| problem(ProblemKind::Undecodable("frame header is malformed".into())))?;
    let computed = frame.computed_hash(position);
    if computed != frame.hash {
        return Err(problem(ProblemKind::HashMismatch {
            stored: frame.hash,
            computed,
        }));
    }
    if frame.prev_hash != *prev {
        return Err(problem(ProblemKind::BrokenLink {
            expected: *prev,
            stored: frame.prev_hash,
        }));
    }
    if decode {
        decode_record(position, frame.format_version, frame.record)
            .map_err(|e| problem(ProblemKind::Undecodable(e.to_string())))?;
    }
    Ok(frame.hash)
}
