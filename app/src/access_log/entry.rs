//! One access log entry: who accessed which patient's data, what, when, with what outcome, from
//! where, with which client system and why; and its stored bytes (`docs/access-log.md`).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use careledger_core::ids::{ActorId, PatientId};
use careledger_core::record::Timestamp;

use crate::actors::RegisteredActor;

/// Longest `User-Agent` kept, in bytes; a longer one is cut at a character boundary.
pub const MAX_USER_AGENT_BYTES: usize = 256;
/// Longest resource (path and query) kept, in bytes.
pub const MAX_RESOURCE_BYTES: usize = 512;

/// The version of the entry's stored layout, the frame's record format field.
pub const ENTRY_FORMAT_VERSION: u16 = 1;

/// Who made the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Who {
    /// No token, or a token the server does not know.
    Unauthenticated,
    /// A registered actor.
    Actor {
        /// The actor's id.
        id: String,
        /// The role they act in (`gp`, `auditor`, ...).
        role: String,
        /// The AGB code of the organisation they act for, when registered.
        organisation: Option<String>,
    },
}

impl Who {
    /// The registered actor as the log names them.
    pub fn actor(actor: &RegisteredActor) -> Who {
        Who::Actor {
            id: actor.id.as_str().to_owned(),
            role: actor.role.as_str().to_owned(),
            organisation: actor.organisation.as_ref().map(|o| o.as_str().to_owned()),
        }
    }

    /// The actor's id; `None` when unauthenticated.
    pub fn id(&self) -> Option<&str> {
        match self {
            Who::Unauthenticated => None,
            Who::Actor { id, .. } => Some(id),
        }
    }
}

/// Why the caller had access: the ground the server knows for it (NEN 7513's "reason").
///
/// Stored by variant number: variants are only ever added at the end, never reordered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessReason {
    /// No ground: unauthenticated, or refused (not in the care team, a subscriber on a
    /// patient route).
    NotEstablished,
    /// A member of the patient's care team, in the role they are registered in; for a route
    /// naming no patient (the global log), what the care roles' visibility rules allow.
    CareTeam,
    /// The patient reading their own record.
    OwnRecord,
    /// An auditor.
    Audit,
    /// The care group's administrator.
    Administration,
    /// A subscriber reading the event stream.
    Subscription,
    /// Emergency access outside the care team, with the justification the clinician gave
    /// (acute care; not yet granted by any route).
    BreakGlass {
        /// The clinician's justification.
        justification: String,
    },
}

impl AccessReason {
    /// The snake-case name on the wire and in the CLI.
    pub fn as_str(&self) -> &'static str {
        match self {
            AccessReason::NotEstablished => "not_established",
            AccessReason::CareTeam => "care_team",
            AccessReason::OwnRecord => "own_record",
            AccessReason::Audit => "audit",
            AccessReason::Administration => "administration",
            AccessReason::Subscription => "subscription",
            AccessReason::BreakGlass { .. } => "break_glass",
        }
    }
}

/// One access to patient data (or an attempt), as stored.
///
/// Stored as bincode 2 (standard configuration) in field order; `docs/access-log.md` lists the
/// layout. Fields are only ever added by a new [`ENTRY_FORMAT_VERSION`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    /// When the server answered, microseconds since the Unix epoch (UTC).
    pub recorded_at: Timestamp,
    /// Who.
    pub who: Who,
    /// The patient the route or query names, when it names a valid one.
    pub patient: Option<String>,
    /// The HTTP method (the standard ones borrowed, not allocated per request).
    pub method: Cow<'static, str>,
    /// The route template (`/patients/{patient}/plan`).
    pub route: String,
    /// The resource as requested: path and query, at most [`MAX_RESOURCE_BYTES`].
    pub resource: String,
    /// The outcome: the response's HTTP status.
    pub status: u16,
    /// The client's address: the peer's, or the one a trusted proxy reported for it; `unknown`
    /// when the server was not told (in-process requests).
    pub client: Cow<'static, str>,
    /// The trusted proxy's own address, when `client` is what it reported.
    pub via: Option<String>,
    /// The client system's `User-Agent`, at most [`MAX_USER_AGENT_BYTES`].
    pub user_agent: Option<String>,
    /// Why the caller had access.
    pub reason: AccessReason,
}

impl AccessEntry {
    /// The stored bytes of the entry.
    pub fn encode(&self) -> Vec<u8> {
        // Encoding plain strings, integers and enums into a Vec cannot fail.
        bincode::serde::encode_to_vec(self, bincode::config::standard()).unwrap_or_default()
    }

    /// Appends the stored bytes of the entry to `out` (the bytes [`AccessEntry::encode`]
    /// returns), so that a commit encodes its frames in place.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        // Writing plain strings, integers and enums into a Vec cannot fail.
        let _ = bincode::serde::encode_into_std_write(self, out, bincode::config::standard());
    }

    /// Decodes stored bytes of format `format`; `None` when they are not an entry of it.
    pub fn decode(format: u16, bytes: &[u8]) -> Option<AccessEntry> {
        if format != ENTRY_FORMAT_VERSION {
            return None;
        }
        match bincode::serde::decode_from_slice(bytes, bincode::config::standard()) {
            Ok((entry, used)) if used == bytes.len() => Some(entry),
            _ => None,
        }
    }

    /// Whether the entry is about `patient`.
    pub fn names_patient(&self, patient: &PatientId) -> bool {
        self.patient.as_deref() == Some(patient.as_str())
    }

    /// Whether `actor` made the request.
    pub fn is_by(&self, actor: &ActorId) -> bool {
        self.who.id() == Some(actor.as_str())
    }
}

/// The name of an HTTP method as an entry keeps it: the standard methods (RFC 9110, PATCH)
/// borrowed, any other copied.
pub fn method_name(method: &str) -> Cow<'static, str> {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    match STANDARD.iter().find(|m| **m == method) {
        Some(m) => Cow::Borrowed(m),
        None => Cow::Owned(method.to_owned()),
    }
}

/// `text` cut to at most `max` bytes at a character boundary.
pub fn bounded(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

/// Which entries a reader asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessFilter {
    /// Only entries naming this patient.
    pub patient: Option<PatientId>,
    /// Only requests by this actor.
    pub actor: Option<ActorId>,
    /// Recorded at or after.
    pub from: Option<Timestamp>,
    /// Recorded before.
    pub to: Option<Timestamp>,
}

impl AccessFilter {
    /// Whether `entry` passes.
    pub fn admits(&self, entry: &AccessEntry) -> bool {
        self.patient.as_ref().is_none_or(|p| entry.names_patient(p))
            && self.actor.as_ref().is_none_or(|a| entry.is_by(a))
            && self.from.is_none_or(|from| entry.recorded_at >= from)
            && self.to.is_none_or(|to| entry.recorded_at < to)
    }
}
