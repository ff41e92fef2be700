//! The hash chain: how an event is framed for storage and how its hash is computed.
//!
//! The layout is specified byte for byte in `docs/hash-format.md`; keep the two in step.

use crate::record::Hash;

/// Version of the frame layout below.
pub const FRAME_VERSION: u8 = 1;

/// The domain-separation tag that starts every hashed message.
pub const HASH_TAG: &[u8; 20] = b"careledger/event/v1\0";

/// Length of the frame header before the record bytes.
pub const HEADER_LEN: usize = 1 + 2 + 32 + 32;

/// The hash of the event at `position` with `prev_hash` before it and these record bytes.
pub fn event_hash(position: u64, format_version: u16, prev_hash: &Hash, record: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(HASH_TAG);
    hasher.update(&position.to_be_bytes());
    hasher.update(&format_version.to_be_bytes());
    hasher.update(&prev_hash.0);
    hasher.update(record);
    Hash(*hasher.finalize().as_bytes())
}

/// Builds the stored frame: version, record format, previous hash, hash, record bytes.
pub fn encode_frame(format_version: u16, prev_hash: &Hash, hash: &Hash, record: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(HEADER_LEN + record.len());
    frame.push(FRAME_VERSION);
    frame.extend_from_slice(&format_version.to_be_bytes());
    frame.extend_from_slice(&prev_hash.0);
    frame.extend_from_slice(&hash.0);
    frame.extend_from_slice(record);
    frame
}

/// A stored frame split into its parts, borrowing the record bytes.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Record format version.
    pub format_version: u16,
    /// The previous event's hash as stored.
    pub prev_hash: Hash,
    /// This event's hash as stored.
    pub hash: Hash,
    /// The exact record bytes that were hashed.
    pub record: &'a [u8],
}

impl<'a> Frame<'a> {
    /// Splits stored bytes; `None` when too short or of an unknown frame version.
    pub fn parse(bytes: &'a [u8]) -> Option<Frame<'a>> {
        if bytes.len() < HEADER_LEN || bytes[0] != FRAME_VERSION {
            return None;
        }
        let format_version = u16::from_be_bytes([bytes[1], bytes[2]]);
        let prev_hash = Hash(bytes[3..35].try_into().ok()?);
        let hash = Hash(bytes[35..67].try_into().ok()?);
        Some(Frame {
            format_version,
            prev_hash,
            hash,
            record: &bytes[HEADER_LEN..],
        })
    }

    /// The hash recomputed from the stored bytes.
    pub fn computed_hash(&self, position: u64) -> Hash {
        event_hash(position, self.format_version, &self.prev_hash, self.record)
    }
}
