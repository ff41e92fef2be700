//! A signed request as evidence: what a client system signed (an RFC 9421 message signature
//! with ed25519), kept beside the chain and bound to the events it produced by its hash
//! ([`crate::record::Record::signed_request`]).
//!
//! The ledger treats the request as bytes: the signature base the API built from the HTTP
//! request, the signature over it, the key that signed and the body. Whether the base's
//! components (method, path, content digest) match the request is the API's to check, and
//! `careledger verify-export`'s to check again; the ledger checks what needs its state: the key
//! is registered for the actor and in use, the signature verifies, `created` is recent on the
//! ledger's clock, and the signature was not used before (`docs/hash-format.md`, "Signed
//! requests").

use serde::{Deserialize, Serialize};

use crate::ids::{ActorId, ElementId};
use crate::record::Hash;

/// How far `created` may lie from the ledger's clock, either way, in seconds.
pub const MAX_CREATED_SKEW_SECONDS: i64 = 300;

/// A signed request as stored: encoded with bincode 2 (`config::standard()`), its fields in
/// order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRequest {
    /// The `keyid` parameter: the actor's registered key that signed.
    pub key_id: ElementId,
    /// The `created` parameter: when the client signed, seconds since 1970 UTC.
    pub created: i64,
    /// The signature's entry of the `Signature-Input` header (`sig1=("@method" …);created=…`).
    pub signature_input: String,
    /// The ed25519 signature, 64 bytes (the entry of the `Signature` header, decoded).
    pub signature: Vec<u8>,
    /// The signature base (RFC 9421 §2.5) the signature is over, as the server built it.
    pub signature_base: String,
    /// The request body, byte for byte.
    pub body: Vec<u8>,
}

impl SignedRequest {
    /// The stored bytes.
    pub fn encode(&self) -> crate::Result<Vec<u8>> {
        bincode::serde::encode_to_vec(self, bincode::config::standard()).map_err(|e| {
            crate::StorageError::other(format!("encoding a signed request: {e}")).into()
        })
    }

    /// Reads stored bytes; every byte must be used.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let (value, read): (Self, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                .map_err(|e| e.to_string())?;
        if read != bytes.len() {
            return Err(format!("{} trailing bytes", bytes.len() - read));
        }
        Ok(value)
    }

    /// The hash that binds stored bytes to their events: BLAKE3 of the bytes.
    pub fn hash_of(bytes: &[u8]) -> Hash {
        Hash(*blake3::hash(bytes).as_bytes())
    }

    /// True when the signature verifies over the signature base under `public_key` (ed25519,
    /// strict: no small-order keys, no malleable signatures, so that a signature has one form
    /// and a replay cannot be disguised).
    pub fn verifies_under(&self, public_key: &[u8; 32]) -> bool {
        let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
            return false;
        };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(&self.signature) else {
            return false;
        };
        key.verify_strict(self.signature_base.as_bytes(), &signature)
            .is_ok()
    }
}

/// Why the ledger refused a signed request. Each is the client's to fix; the message says how.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureProblem {
    /// No key with this id is registered for the actor.
    #[error(
        "no signing key {key_id:?} is registered for {actor}; register the client system's \
         public key first (POST /actors/me/keys) or sign with a registered key"
    )]
    UnknownKey {
        /// The authenticated actor.
        actor: ActorId,
        /// The `keyid` of the signature.
        key_id: String,
    },
    /// The key was revoked.
    #[error(
        "signing key {key_id} of {actor} was revoked at position {position}; sign with a key \
         in use"
    )]
    Revoked {
        /// The authenticated actor.
        actor: ActorId,
        /// The key.
        key_id: ElementId,
        /// Where it was revoked.
        position: u64,
    },
    /// The signature does not verify over the signature base under the registered key.
    #[error(
        "the signature does not verify under signing key {key_id}: sign exactly the signature \
         base of RFC 9421 §2.5 over this request's method, path, Content-Digest (and Date), \
         with the private key registered as {key_id}"
    )]
    Invalid {
        /// The key.
        key_id: ElementId,
    },
    /// `created` is too far from the ledger's clock.
    #[error(
        "the signature was created at {created} (seconds since 1970), more than \
         {MAX_CREATED_SKEW_SECONDS} s from the ledger's clock ({now}); sign each request \
         when it is sent, with a synchronised clock"
    )]
    Stale {
        /// The `created` parameter.
        created: i64,
        /// The ledger's clock, in seconds.
        now: i64,
    },
    /// The same signed request was accepted before.
    #[error(
        "this signed request was accepted before and is stored with the events it wrote; a \
         signature is used once: sign every request anew (with a new `created`)"
    )]
    Replayed,
}

impl SignatureProblem {
    /// True for a replay: a conflict with what is recorded rather than a bad credential.
    pub fn is_replay(&self) -> bool {
        matches!(self, SignatureProblem::Replayed)
    }
}
