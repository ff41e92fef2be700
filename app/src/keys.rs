//! Client systems' signing keys: registering and revoking them in the ledger's key stream, and
//! appending the commands of a signed request.
//!
//! An actor registers their own keys with their token (the API's `POST /actors/me/keys`); the
//! operator registers anyone's from the command line, recorded as
//! [`careledger_core::signing_keys::OPERATOR`]. Either way the registration is an event of the
//! key stream that names who registered it.

use careledger_core::event::{Command, SigningKey, SigningKeyRevocation};
use careledger_core::ids::{ActorId, ElementId, Text};
use careledger_core::signed_request::SignedRequest;
use careledger_core::signing_keys;
use careledger_core::{Actor, AppendOutcome, AppendRequest, ExpectedRevision, Ledger, Submission};

use crate::actors::{ActorStore, RegisteredActor};
use crate::error::AppError;
use crate::service::{App, Write};

/// What a key command asks for.
pub enum KeyChange {
    /// Register `public_key` as `key_id` of the actor, held by `system`.
    Register {
        /// The key's id, unique per actor.
        key_id: ElementId,
        /// The ed25519 public key.
        public_key: [u8; 32],
        /// The client system that holds the private key.
        system: Text,
    },
    /// Revoke the actor's key `key_id`.
    Revoke {
        /// The key's id.
        key_id: ElementId,
    },
}

/// Appends a key change for `owner`, written by `by`, with `reason`.
pub fn change_key(
    ledger: &Ledger,
    by: Actor,
    owner: ActorId,
    change: KeyChange,
    reason: Text,
) -> Result<AppendOutcome, AppError> {
    let command = match change {
        KeyChange::Register {
            key_id,
            public_key,
            system,
        } => Command::RegisterSigningKey(SigningKey {
            actor: owner,
            key_id,
            public_key,
            system,
        }),
        KeyChange::Revoke { key_id } => Command::RevokeSigningKey(SigningKeyRevocation {
            actor: owner,
            key_id,
        }),
    };
    Ok(ledger.append(AppendRequest {
        patient: signing_keys::key_stream(),
        expected: ExpectedRevision::Any,
        actor: by,
        submissions: vec![Submission {
            command,
            occurred_at: None,
            reason,
        }],
        idempotency_key: None,
        correlation_id: None,
        causation_id: None,
    })?)
}

/// The operator's key change for a registered actor (`careledger keys register|revoke`).
pub fn operator_change_key(
    ledger: &Ledger,
    actors: &ActorStore,
    owner: &ActorId,
    change: KeyChange,
    reason: Text,
) -> Result<AppendOutcome, AppError> {
    if actors.get(owner)?.is_none() {
        return Err(AppError::NotFound(format!(
            "no actor {owner}; add them first with `careledger actors add`"
        )));
    }
    if reason.is_empty() {
        return Err(AppError::Invalid {
            code: "reason_required".into(),
            message: "the operator states why a key is registered or revoked (--reason)".into(),
        });
    }
    change_key(
        ledger,
        signing_keys::operator(),
        owner.clone(),
        change,
        reason,
    )
}

impl App {
    /// The caller registers or revokes one of their own signing keys.
    pub fn change_own_key(
        &self,
        caller: &RegisteredActor,
        change: KeyChange,
        reason: Text,
    ) -> Result<AppendOutcome, AppError> {
        let actor = caller.as_care_actor().ok_or_else(|| {
            AppError::Forbidden(format!(
                "an {} does not write to the ledger and signs no requests",
                caller.role.as_str()
            ))
        })?;
        self.writable()?;
        let owner = actor.id.clone();
        change_key(&self.ledger, actor, owner, change, reason)
    }

    /// Appends the caller's commands as [`App::append`] does, with the client system's signed
    /// request that carried them (checked by the ledger, stored with the events).
    pub fn append_signed(
        &self,
        caller: &RegisteredActor,
        write: Write,
        signed: &SignedRequest,
    ) -> Result<AppendOutcome, AppError> {
        self.append_with(caller, write, Some(signed))
    }
}
