//! Recorded events: the envelope every event is stored in, and its exact byte encoding.
//!
//! The record bytes are encoded once, at append, and stored as they are; verification hashes
//! those stored bytes and never re-encodes (see `docs/hash-format.md`).

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::{Error, Result, StorageError};
use crate::event::Event;
use crate::ids::{ActorId, AgbCode, PatientId, Text, Uid};
use crate::role::{Line, Role};

/// Version of the record encoding written by this build. Bump it, add an upcaster in
/// [`decode_record`], and add a golden vector when the record layout changes.
///
/// - 1: the first format. Still read: [`crate::record_v1`] decodes it and upcasts it.
/// - 2: the actor's organisation, the hash of a signed request, notifications acknowledged per
///   recipient, and the event kinds and payloads of the CVRM catalogue.
pub const RECORD_FORMAT_VERSION: u16 = 2;

/// A point in time as microseconds since the Unix epoch, UTC. Fixed width, no time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

impl Timestamp {
    /// From microseconds since the epoch.
    pub fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the epoch.
    pub fn micros(self) -> i64 {
        self.0
    }

    /// The current time from the system clock. The ledger takes its time from its
    /// [`crate::clock::Clock`] instead, which is this one unless a test sets another.
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_micros())
    }

    /// From a chrono time.
    pub fn from_chrono(t: chrono::DateTime<chrono::Utc>) -> Self {
        Self(t.timestamp_micros())
    }

    /// As a chrono time.
    pub fn to_chrono(self) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros(self.0).unwrap_or_default()
    }

    /// Parses RFC 3339 (`2026-03-01T09:30:00Z`).
    pub fn parse_rfc3339(raw: &str) -> Result<Self, crate::error::InvalidInput> {
        chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| Self(t.timestamp_micros()))
            .map_err(|e| {
                crate::error::InvalidInput::new(
                    "time",
                    format!("{raw:?} is not an RFC 3339 time such as 2026-03-01T09:30:00Z ({e})"),
                )
            })
    }

    /// Whole days from `self` to `later` (negative if `later` is earlier).
    pub fn days_until(self, later: Timestamp) -> i64 {
        (later.0 - self.0).div_euclid(86_400_000_000)
    }

    /// This time plus whole days.
    pub fn plus_days(self, days: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(days.saturating_mul(86_400_000_000)))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .to_chrono()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        )
    }
}

/// Who acts: an authenticated practitioner, patient or system, with the role they act in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The actor's id.
    pub id: ActorId,
    /// The role they act in.
    pub role: Role,
    /// Display name, for messages.
    pub name: Text,
    /// The organisation the actor acted for: the AGB code of the GP practice or the hospital,
    /// when the actor registry knows it (record format 2 on; `None` in format 1 records).
    pub organisation: Option<AgbCode>,
}

impl Actor {
    /// An actor acting for no named organisation.
    pub fn new(id: ActorId, role: Role, name: Text) -> Self {
        Self {
            id,
            role,
            name,
            organisation: None,
        }
    }

    /// The line of the actor's role.
    pub fn line(&self) -> Line {
        self.role.line()
    }
}

/// A 32-byte BLAKE3 hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The hash of nothing: the `prev_hash` of position 1.
    pub const ZERO: Hash = Hash([0; 32]);

    /// Lower-case hexadecimal.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The hashed content of one event: everything but the chain links, encoded with bincode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The patient's stream.
    pub patient: PatientId,
    /// Revision in the patient's stream, gapless from 1.
    pub revision: u64,
    /// Unique id of the event.
    pub event_id: Uid,
    /// When the ledger recorded it (server clock).
    pub recorded_at: Timestamp,
    /// When it happened, by the clinician's word.
    pub occurred_at: Timestamp,
    /// Who recorded it, in which role.
    pub actor: Actor,
    /// Why, in the actor's words.
    pub reason: Text,
    /// Groups events of one request or workflow.
    pub correlation_id: Uid,
    /// The event or message that caused this one, if any.
    pub causation_id: Option<Uid>,
    /// The idempotency key of the append that wrote it, if given.
    pub idempotency_key: Option<String>,
    /// The BLAKE3 hash of the signed HTTP request (RFC 9421 message signature) whose commands
    /// produced this event, when the client system signed it. The request itself is kept beside
    /// the chain; this hash binds it to the event. Always `None` in format 1 records.
    pub signed_request: Option<Hash>,
    /// The fact itself.
    pub event: Event,
}

/// An event as read back from the ledger: its record plus its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global position, gapless from 1.
    pub position: u64,
    /// Record format version it was written in.
    pub format_version: u16,
    /// Hash of the event at `position - 1` ([`Hash::ZERO`] for position 1).
    pub prev_hash: Hash,
    /// This event's hash.
    pub hash: Hash,
    /// The content.
    pub record: Record,
}

impl RecordedEvent {
    /// The event.
    pub fn event(&self) -> &Event {
        &self.record.event
    }
}

/// An event as read back together with its frame: the bytes exactly as the ledger stores them
/// (frame version, record format version, previous hash, hash, record bytes;
/// `docs/hash-format.md`, "The frame"), from which anyone can recompute the event's hash.
///
/// The frame is the one the event was decoded from, copied once out of the stored value; reads
/// that need no frame ([`crate::Ledger::read_all`]) copy nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FramedEvent {
    /// The decoded event.
    pub event: RecordedEvent,
    /// Its frame as stored.
    pub frame: Vec<u8>,
}

pub(crate) fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// Encodes a record in the current format. Called once per event, at append.
pub fn encode_record(record: &Record) -> Result<Vec<u8>> {
    // Most records are 250-400 bytes: reserving up front saves the reallocations of growing
    // from empty; the bytes are the same.
    let mut out = Vec::with_capacity(512);
    bincode::serde::encode_into_std_write(record, &mut out, bincode_config())
        .map_err(|e| StorageError::other(format!("encoding record: {e}")))?;
    Ok(out)
}

/// Decodes record bytes written in `format_version`, upcasting older formats.
pub fn decode_record(position: u64, format_version: u16, bytes: &[u8]) -> Result<Record> {
    match format_version {
        1 => decode_exact::<crate::record_v1::RecordV1>(position, bytes).map(Record::from),
        2 => decode_exact::<Record>(position, bytes),
        other => Err(Error::Decode {
            position,
            detail: format!("record format version {other} is unknown to this build"),
        }),
    }
}

/// Decodes one value that must use every byte.
fn decode_exact<T: serde::de::DeserializeOwned>(position: u64, bytes: &[u8]) -> Result<T> {
    let (value, read): (T, usize) = bincode::serde::decode_from_slice(bytes, bincode_config())
        .map_err(|e| Error::Decode {
            position,
            detail: e.to_string(),
        })?;
    if read != bytes.len() {
        return Err(Error::Decode {
            position,
            detail: format!("{} trailing bytes after the record", bytes.len() - read),
        });
    }
    Ok(value)
}
