//! The signing keys of client systems: which public key may sign which actor's requests.
//!
//! A key is registered and revoked by events in one reserved, ledger-wide stream,
//! [`KEY_STREAM`], so that every key, and who registered it, is on the hash chain and covered by
//! the checkpoints and the heads map like any patient's events: a key the operator adds later is
//! visible and witnessed. [`KeyRegistry`] is the fold of that stream; [`decide`] holds its rules.

use std::collections::BTreeMap;

use crate::error::{Rejection, RejectionCode};
use crate::event::{Command, Event, SigningKey, SigningKeyRevocation};
use crate::ids::{ActorId, ElementId, PatientId};
use crate::record::{Actor, Record};

/// The id of the stream that holds the key registrations: not a patient. Patient routes and
/// commands refuse it.
pub const KEY_STREAM: &str = "careledger:keys";

/// The actor id the operator's registrations on the command line are recorded under; refused
/// as the id of an API actor, so no token acts as the operator.
pub const OPERATOR: &str = "careledger:operator";

/// The key stream's id as a stream id.
pub fn key_stream() -> PatientId {
    PatientId::reserved(KEY_STREAM)
}

/// True for the key stream's id.
pub fn is_key_stream(stream: &PatientId) -> bool {
    stream.as_str() == KEY_STREAM
}

/// True for ids reserved by the ledger itself (`careledger:…`): no patient or API actor has one.
pub fn is_reserved(id: &str) -> bool {
    id.starts_with("careledger:")
}

/// The operator as the key stream records them: registrations made on the command line, with
/// the server stopped.
pub fn operator() -> Actor {
    Actor::new(
        ActorId::reserved(OPERATOR),
        crate::role::Role::CareGroupAdmin,
        crate::ids::Text::fixed("the operator (command line)"),
    )
}

/// One registered key, as the key stream says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredKey {
    /// The key.
    pub key: SigningKey,
    /// The position of its registration.
    pub registered_at: u64,
    /// Who registered it (the actor, or [`OPERATOR`]).
    pub registered_by: Actor,
    /// The position of its revocation, if revoked.
    pub revoked_at: Option<u64>,
}

impl RegisteredKey {
    /// True when the key signs for an event at `position`: registered before it and not
    /// revoked before it.
    pub fn valid_at(&self, position: u64) -> bool {
        self.registered_at < position && self.revoked_at.is_none_or(|r| r > position)
    }
}

/// The keys folded from the key stream: by actor and key id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyRegistry {
    keys: BTreeMap<(ActorId, ElementId), RegisteredKey>,
}

impl KeyRegistry {
    /// Folds one record of the key stream at `position`; other events are ignored.
    pub fn apply(&mut self, position: u64, record: &Record) {
        match &record.event {
            Event::SigningKeyRegistered(key) => {
                self.keys.insert(
                    (key.actor.clone(), key.key_id.clone()),
                    RegisteredKey {
                        key: key.clone(),
                        registered_at: position,
                        registered_by: record.actor.clone(),
                        revoked_at: None,
                    },
                );
            }
            Event::SigningKeyRevoked(r) => {
                if let Some(key) = self.keys.get_mut(&(r.actor.clone(), r.key_id.clone())) {
                    key.revoked_at.get_or_insert(position);
                }
            }
            _ => {}
        }
    }

    /// The key `key_id` of `actor`, revoked or not.
    pub fn get(&self, actor: &ActorId, key_id: &ElementId) -> Option<&RegisteredKey> {
        self.keys.get(&(actor.clone(), key_id.clone()))
    }

    /// Every key, by actor and key id.
    pub fn iter(&self) -> impl Iterator<Item = &RegisteredKey> {
        self.keys.values()
    }
}

/// Decides a key command: an actor registers or revokes their own keys; the operator
/// ([`OPERATOR`]) anyone's. A key id is used once per actor, revoked or not, so that a signature
/// naming it always means one key.
pub fn decide(registry: &KeyRegistry, actor: &Actor, command: &Command) -> Result<(), Rejection> {
    let (owner, key_id) = match command {
        Command::RegisterSigningKey(SigningKey { actor, key_id, .. })
        | Command::RevokeSigningKey(SigningKeyRevocation { actor, key_id }) => (actor, key_id),
        _ => return Ok(()),
    };
    if actor.id != *owner && actor.id.as_str() != OPERATOR {
        return Err(Rejection::not_permitted(
            RejectionCode::SigningKeyForOneself,
            format!(
                "{} registers and revokes only their own signing keys, not those of {owner}; \
                 the operator registers others' with `careledger keys register`",
                actor.id
            ),
        ));
    }
    let existing = registry.get(owner, key_id);
    match command {
        Command::RegisterSigningKey(key) => {
            if existing.is_some() {
                return Err(Rejection::new(
                    RejectionCode::SigningKeyExists,
                    format!("{owner} has a signing key {key_id} already; choose a new key id"),
                ));
            }
            if ed25519_dalek::VerifyingKey::from_bytes(&key.public_key).is_err() {
                return Err(Rejection::new(
                    RejectionCode::SigningKeyInvalid,
                    "the public key is not an ed25519 public key (32 bytes, RFC 8032)",
                ));
            }
        }
        _ => {
            if existing.is_none_or(|k| k.revoked_at.is_some()) {
                return Err(Rejection::new(
                    RejectionCode::SigningKeyNotRegistered,
                    format!("{owner} has no signing key {key_id} in use to revoke"),
                ));
            }
        }
    }
    Ok(())
}
