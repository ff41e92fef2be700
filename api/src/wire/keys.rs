//! The body of a signing key's registration.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /actors/me/keys`: a client system's public key for the caller's signed requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterKeyBody {
    /// The key's id, as the `keyid` parameter of the signatures will name it; unique per
    /// actor, never reused (letters, digits, `-`, `_`, `.`, `:`; at most 64).
    #[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub key_id: String,
    /// The ed25519 public key (RFC 8032), 32 bytes in standard base64.
    pub public_key: String,
    /// The client system that holds the private key ("HIS Medicom, practice Jansen").
    pub system: String,
    /// Why, in the actor's words.
    pub reason: Option<String>,
}
