//! The scalar shapes of the wire: [`Time`] (RFC 3339 to the microsecond), and the named string
//! schemas that request fields refer to (`Id`, `Text`, `Decimal`, ...).
//!
//! A request's strings stay `String` in the wire types: their values are checked by core's
//! constructors after the body's shape, so that a bad value is told apart (422) from a bad shape
//! (400). The uninhabited types here only give those strings their schema.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use careledger_core::event::Event;
use careledger_core::ids::{Text as CoreText, MAX_ID_LEN};
use careledger_core::record::Timestamp;

/// A point in time on the wire: RFC 3339 in UTC with six decimals (`2026-03-01T09:30:00.000000Z`),
/// so that a time reads back to the microsecond it was recorded with, and the fixed width sorts
/// as text in time order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub Timestamp);

impl From<Timestamp> for Time {
    fn from(t: Timestamp) -> Self {
        Time(t)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            &self
                .0
                .to_chrono()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        )
    }
}

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rfc3339;
        impl Visitor<'_> for Rfc3339 {
            type Value = Time;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time such as 2026-03-01T09:30:00Z")
            }
            fn visit_str<E: de::Error>(self, raw: &str) -> Result<Time, E> {
                Timestamp::parse_rfc3339(raw).map(Time).map_err(E::custom)
            }
        }
        d.deserialize_str(Rfc3339)
    }
}

impl PartialSchema for Time {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .description(Some(
                "RFC 3339. Written in UTC with microseconds (2026-03-01T09:30:00.000000Z); read \
                 with any offset and precision.",
            ))
            .into()
    }
}

impl ToSchema for Time {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Timestamp")
    }
}

/// A string schema: `pattern` and `max_length` where given.
fn string(description: &str, pattern: Option<&str>, max_length: Option<usize>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(pattern)
        .max_length(max_length)
        .description(Some(description))
        .into()
}

/// Declares a schema-only string type: uninhabited, it names the schema of `String` fields.
macro_rules! string_schema {
    ($(#[$meta:meta])* $ty:ident => $schema:expr) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub enum $ty {}

        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($ty))
            }
        }
    };
}

/// The pattern of identifiers (actors, patients, orders, goals, problems).
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,64}$";

string_schema! {
    /// The schema of an identifier: an actor, an order, a goal, a problem.
    Id => string(
        &format!(
            "An identifier: 1 to {MAX_ID_LEN} letters, digits, '-', '_', '.' or ':'."
        ),
        Some(ID_PATTERN),
        None,
    )
}

string_schema! {
    /// The schema of free text: names, reasons, notes.
    Text => string(
        "Free text without control characters other than newline and tab.",
        None,
        Some(CoreText::MAX_LEN),
    )
}

string_schema! {
    /// The schema of a decimal in text: a measured value or a dose.
    Decimal => string(
        "A decimal number in text, e.g. \"1.8\", in the precision of its measure or unit.",
        Some("^-?[0-9]+(\\.[0-9]+)?$"),
        None,
    )
}

string_schema! {
    /// The schema of an ATC code.
    AtcCode => string(
        "An ATC code (C10AA05 for atorvastatin) or a group of it (C10AA); upper-cased when read.",
        Some("^[A-Za-z]([0-9]{2}([A-Za-z]([A-Za-z]([0-9]{2})?)?)?)?$"),
        None,
    )
}

string_schema! {
    /// The schema of an AGB code.
    AgbCode => string(
        "A Dutch healthcare provider code (AGB): eight digits.",
        Some("^[0-9]{8}$"),
        None,
    )
}

string_schema! {
    /// The schema of a Merkle tree hash: SHA-256, 32 bytes in lower-case hexadecimal.
    TreeHashHex => string(
        "A SHA-256 Merkle tree hash (RFC 9162) in lower-case hexadecimal.",
        Some("^[0-9a-f]{64}$"),
        None,
    )
}

string_schema! {
    /// The schema of a hash: BLAKE3, 32 bytes in lower-case hexadecimal.
    HashHex => string(
        "A BLAKE3 hash in lower-case hexadecimal.",
        Some("^[0-9a-f]{64}$"),
        None,
    )
}

string_schema! {
    /// The schema of an event's stored frame: its bytes in standard base64 with padding.
    FrameBase64 => ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Byte)))
        .content_encoding("base64")
        .pattern(Some("^[A-Za-z0-9+/]*={0,2}$"))
        .description(Some(
            "The event's frame exactly as the ledger stores it, in standard base64 with padding: \
             frame version (1 byte, 1), record format version (u16 big-endian), previous hash \
             (32 bytes), hash (32 bytes), record bytes. The hash is BLAKE3 over \
             \"careledger/event/v1\\0\", the position (u64 big-endian), the record format \
             version, the previous hash and the record bytes (docs/hash-format.md).",
        ))
        .into()
}

string_schema! {
    /// The schema of a 32-byte hash in standard base64 (44 characters with padding).
    Hash32Base64 => ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Byte)))
        .content_encoding("base64")
        .pattern(Some("^[A-Za-z0-9+/]{43}=$"))
        .description(Some("32 bytes (a SHA-256 or BLAKE3 hash) in standard base64 with padding."))
        .into()
}

string_schema! {
    /// The schema of an event's kind: one of core's `Event::KINDS`.
    EventKind => crate::wire::names::string_enum(
        Event::KINDS,
        "The kind of a recorded event, in the catalogue's order.",
    )
}
