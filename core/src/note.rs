//! C2SP signed notes (`c2sp.org/signed-note`): ed25519 signing and verifier keys, note
//! signatures, and C2SP tlog-cosignature v1 (`c2sp.org/tlog-cosignature`) timestamped
//! cosignatures, on which a witness is built.
//!
//! The byte formats are those of the specifications, given with test vectors in
//! `docs/hash-format.md`:
//!
//! - key ID = SHA-256(key name ‖ `\n` ‖ signature type ‖ 32-byte public key)[..4], signature type
//!   `0x01` for a log's ed25519 key and `0x04` for an ed25519 cosigner;
//! - a verifier key is `<name>+<hex key ID>+<base64(type ‖ public key)>`;
//! - a signature line is `— <name> <base64(key ID ‖ signature)>`;
//! - a cosignature signs `cosignature/v1\ntime <t>\n` ‖ the checkpoint body, and its signature
//!   bytes are the 8-byte big-endian timestamp ‖ the 64-byte ed25519 signature.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type of an ed25519 note signature (a log's key).
pub const ED25519: u8 = 0x01;
/// Signature type of a timestamped ed25519 checkpoint cosignature (cosignature/v1).
pub const COSIGNATURE_V1: u8 = 0x04;
/// Most signature lines a note may carry: the spec asks verifiers to accept at least 16.
pub const MAX_SIGNATURES: usize = 64;
/// Longest note accepted, in bytes.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;

/// What is wrong with a note, a key or a signature. Bad input: the message says which part.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// A key name is empty, or holds a space, a `+` or a control character.
    #[error("key name {0:?} is not valid: it must be non-empty, without spaces, '+' or control characters (a schema-less URL such as example.org/careledger)")]
    BadName(String),
    /// A verifier or signing key string is malformed.
    #[error("key {key:?} is malformed: {problem}")]
    BadKey {
        /// The key as given.
        key: String,
        /// What is wrong.
        problem: String,
    },
    /// The note is malformed.
    #[error("the note is malformed: {0}")]
    Malformed(String),
    /// No signature by the expected key is on the note.
    #[error("the note carries no signature by {0}")]
    NotSigned(String),
    /// A signature by the expected key (name and key ID) does not verify.
    #[error("the signature by {0} does not verify: the note was changed or signed by another key")]
    BadSignature(String),
}

/// True when `name` is a valid key name (and checkpoint origin).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

fn check_name(name: &str) -> Result<(), NoteError> {
    match valid_name(name) {
        true => Ok(()),
        false => Err(NoteError::BadName(name.to_owned())),
    }
}

/// The key ID of a key: SHA-256(name ‖ `\n` ‖ type ‖ public key), first 4 bytes, big-endian.
pub fn key_id(name: &str, kind: u8, public: &[u8; 32]) -> u32 {
    let digest = Sha256::new()
        .chain_update(name.as_bytes())
        .chain_update([b'\n', kind])
        .chain_update(public)
        .finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// A public key with its name and signature type: what a verifier is configured with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    kind: u8,
    key: VerifyingKey,
}

impl VerifierKey {
    /// A verifier key for `name` of signature type `kind` ([`ED25519`] or [`COSIGNATURE_V1`]).
    pub fn new(name: &str, kind: u8, key: VerifyingKey) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            kind,
            key,
        })
    }

    /// Parses `<name>+<hex key ID>+<base64(type ‖ public key)>`, checking the key ID.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let bad = |problem: &str| NoteError::BadKey {
            key: vkey.to_owned(),
            problem: problem.to_owned(),
        };
        // Base64 may hold '+': the key is everything after the second one.
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("a verifier key is <name>+<hex key ID>+<base64 key>"));
        };
        check_name(name)?;
        let id = (id.len() == 8)
            .then(|| u32::from_str_radix(id, 16).ok())
            .flatten()
            .ok_or_else(|| bad("the key ID must be 8 hex digits"))?;
        let bytes = BASE64
            .decode(key)
            .map_err(|_| bad("the key is not standard base64"))?;
        let (kind, public) = match bytes.as_slice() {
            [kind @ (ED25519 | COSIGNATURE_V1), public @ ..] if public.len() == 32 => {
                (*kind, public)
            }
            [ED25519 | COSIGNATURE_V1, ..] => return Err(bad("an ed25519 key is 32 bytes")),
            _ => return Err(bad(
                "only ed25519 keys (type 0x01) and ed25519 cosigner keys (type 0x04) are supported",
            )),
        };
        let mut raw = [0u8; 32];
        raw.copy_from_slice(public);
        let key = VerifyingKey::from_bytes(&raw).map_err(|_| bad("not an ed25519 public key"))?;
        let parsed = Self {
            name: name.to_owned(),
            kind,
            key,
        };
        if parsed.key_id() != id {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(parsed)
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signature type.
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, self.kind, self.key.as_bytes())
    }

    /// The ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Checks an ed25519 signature over `message`.
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        Signature::from_slice(signature)
            .map(|s| self.key.verify(message, &s).is_ok())
            .unwrap_or(false)
    }
}

impl std::fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut bytes = Vec::with_capacity(33);
        bytes.push(self.kind);
        bytes.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{:08x}+{}",
            self.name,
            self.key_id(),
            BASE64.encode(bytes)
        )
    }
}

/// A named ed25519 signing key of one signature type: a log's key ([`ED25519`]) or a
/// cosigner's ([`COSIGNATURE_V1`]).
pub struct NoteSigner {
    name: String,
    kind: u8,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({})", self.verifier_key())
    }
}

impl NoteSigner {
    /// A signer for `name` from a 32-byte ed25519 seed (the private key of RFC 8032).
    pub fn from_seed(name: &str, kind: u8, seed: &[u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            kind,
            key: SigningKey::from_bytes(seed),
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The same key under another name (another log the same operator signs, such as the
    /// access log's origin): a different key ID, the same ed25519 key.
    pub fn renamed(&self, name: &str) -> Result<Self, NoteError> {
        check_name(name)?;
        Ok(Self {
            name: name.to_owned(),
            kind: self.kind,
            key: self.key.clone(),
        })
    }

    /// The public half, as a verifier key.
    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            kind: self.kind,
            key: self.key.verifying_key(),
        }
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.verifier_key().key_id()
    }

    /// The signing key in golang.org/x/mod/sumdb/note's private-key form:
    /// `PRIVATE+KEY+<name>+<hex key ID>+<base64(type ‖ seed)>`.
    pub fn to_private_key_string(&self) -> String {
        let mut bytes = Vec::with_capacity(33);
        bytes.push(self.kind);
        bytes.extend_from_slice(self.key.as_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.key_id(),
            BASE64.encode(bytes)
        )
    }

    /// Parses [`NoteSigner::to_private_key_string`]'s form, checking the key ID.
    pub fn parse_private_key(skey: &str) -> Result<Self, NoteError> {
        // Never echo a private key in an error.
        let bad = |problem: &str| NoteError::BadKey {
            key: "PRIVATE+KEY+…".to_owned(),
            problem: problem.to_owned(),
        };
        let rest = skey
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("a signing key starts with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad(
                "a signing key is PRIVATE+KEY+<name>+<hex key ID>+<base64 key>",
            ));
        };
        let id = (id.len() == 8)
            .then(|| u32::from_str_radix(id, 16).ok())
            .flatten()
            .ok_or_else(|| bad("the key ID must be 8 hex digits"))?;
        let bytes = BASE64
            .decode(key)
            .map_err(|_| bad("the key is not standard base64"))?;
        let (kind, seed) = match bytes.as_slice() {
            [kind @ (ED25519 | COSIGNATURE_V1), seed @ ..] if seed.len() == 32 => (*kind, seed),
            _ => {
                return Err(bad(
                    "not an ed25519 signing key (type 0x01 or 0x04, 32 bytes)",
                ))
            }
        };
        let mut raw = [0u8; 32];
        raw.copy_from_slice(seed);
        let signer = Self::from_seed(name, kind, &raw)?;
        if signer.key_id() != id {
            return Err(bad("the key ID does not match the name and key"));
        }
        Ok(signer)
    }

    /// Signs `text` (a note's text, ending in a newline) with a plain ed25519 note signature.
    pub fn sign(&self, text: &str) -> NoteSignature {
        let signature = self.key.sign(text.as_bytes()).to_bytes();
        NoteSignature::new(&self.name, self.key_id(), &signature)
    }

    /// Cosigns a checkpoint body (cosignature/v1) at `timestamp` (seconds since 1970, UTC).
    pub fn cosign(&self, body: &str, timestamp: u64) -> Result<NoteSignature, NoteError> {
        let message = cosigned_message(body, timestamp)?;
        let signature = self.key.sign(&message).to_bytes();
        let mut bytes = Vec::with_capacity(72);
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(&signature);
        Ok(NoteSignature::new(&self.name, self.key_id(), &bytes))
    }
}

/// The message a cosignature/v1 signs: `cosignature/v1\ntime <t>\n` ‖ the checkpoint body.
pub fn cosigned_message(body: &str, timestamp: u64) -> Result<Vec<u8>, NoteError> {
    if timestamp > i64::MAX as u64 {
        return Err(NoteError::Malformed(format!(
            "cosignature timestamp {timestamp} exceeds 2^63 - 1"
        )));
    }
    if body.split_terminator('\n').count() < 3 || !body.ends_with('\n') {
        return Err(NoteError::Malformed(
            "a cosigned checkpoint body has at least three lines, each ending in a newline".into(),
        ));
    }
    Ok(format!("cosignature/v1\ntime {timestamp}\n{body}").into_bytes())
}

/// One signature line of a note: the key's name, its key ID and the signature bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    name: String,
    key_id: u32,
    signature: Vec<u8>,
}

impl NoteSignature {
    fn new(name: &str, key_id: u32, signature: &[u8]) -> Self {
        Self {
            name: name.to_owned(),
            key_id,
            signature: signature.to_vec(),
        }
    }

    /// The signing key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The signing key's ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The signature bytes after the key ID.
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }

    /// The line: `— <name> <base64(key ID ‖ signature)>\n`.
    pub fn line(&self) -> String {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&self.signature);
        format!("\u{2014} {} {}\n", self.name, BASE64.encode(bytes))
    }

    /// Parses one signature line (without its newline).
    pub fn parse_line(line: &str) -> Result<Self, NoteError> {
        let bad =
            |problem: &str| NoteError::Malformed(format!("signature line {line:?}: {problem}"));
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| bad("it must start with an em dash (U+2014) and a space"))?;
        let (name, encoded) = rest
            .split_once(' ')
            .ok_or_else(|| bad("it must be '— <name> <base64 signature>'"))?;
        check_name(name)?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| bad("the signature is not standard base64"))?;
        if bytes.len() < 5 {
            return Err(bad("the signature is shorter than a key ID and one byte"));
        }
        let key_id = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        Ok(Self::new(name, key_id, &bytes[4..]))
    }

    /// True when this signature is by `key` (same name and key ID).
    pub fn is_by(&self, key: &VerifierKey) -> bool {
        self.name == key.name && self.key_id == key.key_id()
    }

    /// Checks this as a cosignature/v1 by `key` over `body`; returns its timestamp.
    pub fn verify_cosignature(&self, key: &VerifierKey, body: &str) -> Result<u64, NoteError> {
        if !self.is_by(key) || key.kind != COSIGNATURE_V1 {
            return Err(NoteError::NotSigned(key.name.clone()));
        }
        let bad = || NoteError::BadSignature(key.name.clone());
        if self.signature.len() != 8 + 64 {
            return Err(bad());
        }
        let mut time = [0u8; 8];
        time.copy_from_slice(&self.signature[..8]);
        let timestamp = u64::from_be_bytes(time);
        let message = cosigned_message(body, timestamp).map_err(|_| bad())?;
        match key.verifies(&message, &self.signature[8..]) {
            true => Ok(timestamp),
            false => Err(bad()),
        }
    }
}

/// A signed note: its text (ending in a newline) and its signatures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    text: String,
    signatures: Vec<NoteSignature>,
}

impl Note {
    /// A note of `text` signed by `signer`.
    pub fn sign(text: &str, signer: &NoteSigner) -> Result<Self, NoteError> {
        check_text(text)?;
        Ok(Self {
            text: text.to_owned(),
            signatures: vec![signer.sign(text)],
        })
    }

    /// The text, with its final newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signatures, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Adds a signature (a cosignature), replacing one by the same key.
    pub fn add_signature(&mut self, signature: NoteSignature) {
        self.signatures
            .retain(|s| !(s.name == signature.name && s.key_id == signature.key_id));
        self.signatures.push(signature);
    }

    /// Parses a signed note: text, a blank line, signature lines.
    pub fn parse(note: &str) -> Result<Self, NoteError> {
        if note.len() > MAX_NOTE_BYTES {
            return Err(NoteError::Malformed(format!(
                "{} bytes is longer than the {MAX_NOTE_BYTES} accepted",
                note.len()
            )));
        }
        if note.chars().any(|c| c.is_control() && c != '\n') {
            return Err(NoteError::Malformed(
                "it holds a control character other than newline".into(),
            ));
        }
        let split = note
            .rfind("\n\n")
            .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
        let text = &note[..split + 1];
        let lines = &note[split + 2..];
        if !lines.ends_with('\n') {
            return Err(NoteError::Malformed(
                "the last signature line must end in a newline".into(),
            ));
        }
        let signatures = lines
            .split_terminator('\n')
            .map(NoteSignature::parse_line)
            .collect::<Result<Vec<_>, _>>()?;
        if signatures.is_empty() {
            return Err(NoteError::Malformed("it carries no signature".into()));
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(NoteError::Malformed(format!(
                "{} signatures is more than the {MAX_SIGNATURES} accepted",
                signatures.len()
            )));
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// Checks the signature by `key` (an [`ED25519`] key) and returns the text. A note without
    /// a signature by that name and key ID, or with one that does not verify, is refused.
    pub fn verify(&self, key: &VerifierKey) -> Result<&str, NoteError> {
        let mut found = false;
        for signature in self.signatures.iter().filter(|s| s.is_by(key)) {
            found = true;
            if key.kind != ED25519 || !key.verifies(self.text.as_bytes(), &signature.signature) {
                return Err(NoteError::BadSignature(key.name.clone()));
            }
        }
        match found {
            true => Ok(&self.text),
            false => Err(NoteError::NotSigned(key.name.clone())),
        }
    }
}

fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed(
            "the text must end in a newline".into(),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed(
            "the text holds a control character other than newline".into(),
        ));
    }
    Ok(())
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for signature in &self.signatures {
            f.write_str(&signature.line())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// golang.org/x/mod/sumdb/note's test key and signed note (`note_test.go`, `TestSign`).
    const GO_SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn signing_with_the_go_reference_key_gives_the_go_reference_note() {
        let signer = NoteSigner::parse_private_key(GO_SKEY).unwrap();
        assert_eq!(signer.verifier_key().to_string(), GO_VKEY);
        assert_eq!(signer.to_private_key_string(), GO_SKEY);
        let note = Note::sign(GO_TEXT, &signer).unwrap();
        assert_eq!(note.to_string(), GO_NOTE);
        let parsed = Note::parse(GO_NOTE).unwrap();
        assert_eq!(parsed, note);
        let key = VerifierKey::parse(GO_VKEY).unwrap();
        assert_eq!(parsed.verify(&key).unwrap(), GO_TEXT);
    }

    #[test]
    fn the_signed_note_specs_example_verifies_and_a_changed_text_does_not() {
        let key = VerifierKey::parse(
            "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
        )
        .unwrap();
        let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
        assert_eq!(
            Note::parse(note).unwrap().verify(&key).unwrap(),
            "This is an example message.\n"
        );
        let changed = note.replace("example message", "exemplary message");
        assert_eq!(
            Note::parse(&changed).unwrap().verify(&key),
            Err(NoteError::BadSignature("example.com/foo".into()))
        );
        let other = VerifierKey::parse(GO_VKEY).unwrap();
        assert_eq!(
            Note::parse(note).unwrap().verify(&other),
            Err(NoteError::NotSigned("PeterNeumann".into()))
        );
    }

    #[test]
    fn mangled_verifier_keys_are_refused() {
        let bytes = GO_VKEY.as_bytes();
        for i in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] = changed[i].wrapping_add(1);
            if let Ok(text) = String::from_utf8(changed) {
                assert!(VerifierKey::parse(&text).is_err(), "{text}");
            }
        }
        assert!(VerifierKey::parse(&GO_VKEY[..GO_VKEY.len() - 4]).is_err());
        assert!(VerifierKey::parse("a b+00000000+AQ==").is_err());
    }

    #[test]
    fn a_cosignature_verifies_over_its_body_and_time_only() {
        let signer = NoteSigner::from_seed("witness.example/w1", COSIGNATURE_V1, &[7; 32]).unwrap();
        let key = signer.verifier_key();
        let body = "example.org/log\n5\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        let signature = signer.cosign(body, 1_700_000_000).unwrap();
        assert_eq!(signature.verify_cosignature(&key, body), Ok(1_700_000_000));
        let parsed = NoteSignature::parse_line(signature.line().trim_end()).unwrap();
        assert_eq!(parsed.verify_cosignature(&key, body), Ok(1_700_000_000));
        let other_body = body.replace("\n5\n", "\n6\n");
        assert!(signature.verify_cosignature(&key, &other_body).is_err());
        let mut retimed = signature.clone();
        retimed.signature[7] ^= 1;
        assert!(retimed.verify_cosignature(&key, body).is_err());
        assert!(signer.cosign("one line\n", 1).is_err());
    }

    #[test]
    fn malformed_notes_are_refused_with_what_is_wrong() {
        for bad in [
            "no blank line\n\u{2014} a AAAAAAA=\n",
            "text\n\n",
            "text\n\n- a AAAAAAAA\n",
            "text\n\n\u{2014} a AAAAAAAA",
            "te\u{7}xt\n\n\u{2014} a AAAAAAAA\n",
        ] {
            assert!(Note::parse(bad).is_err(), "{bad:?}");
        }
    }
}
