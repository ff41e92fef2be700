//! Administering actors on a running server: what an operator may do, through the same store
//! the command line uses on a stopped server's data directory. Every change is visible to
//! authentication as soon as it returns.

use careledger_core::ids::ActorId;
use careledger_core::record::Timestamp;

use crate::actors::{check_token_days, days_after, AccessRole, ActorRecord, RegisteredActor};
use crate::error::AppError;
use crate::service::App;

/// A new token: the token itself (shown once) and the record it belongs to.
#[derive(Debug)]
pub struct IssuedToken {
    /// The bearer token; only its hash is stored.
    pub token: String,
    /// The actor's record after the change.
    pub record: ActorRecord,
}

/// Refuses a caller who is not an operator.
pub fn may_administer(caller: &RegisteredActor) -> Result<(), AppError> {
    match caller.role {
        AccessRole::Operator => Ok(()),
        other => Err(AppError::Forbidden(format!(
            "only an operator administers actors; this token is of a {} (the first operator is \
             added on the data directory: careledger actors add --role operator)",
            other.as_str()
        ))),
    }
}

/// When a token issued now for `role` expires: after `days`, or the role's default.
pub fn expiry(role: AccessRole, days: Option<u32>, now: Timestamp) -> Result<Timestamp, AppError> {
    let days = check_token_days(days.unwrap_or_else(|| role.default_token_days()))?;
    Ok(days_after(now, days))
}

impl App {
    /// Adds an actor (an operator's request) and returns their token, valid for `days` (the
    /// role's default when `None`).
    pub fn add_actor(
        &self,
        caller: &RegisteredActor,
        actor: RegisteredActor,
        days: Option<u32>,
    ) -> Result<IssuedToken, AppError> {
        may_administer(caller)?;
        let now = Timestamp::now();
        let expires_at = expiry(actor.role, days, now)?;
        let id = actor.id.clone();
        let token = self.actors.issue(actor, now, expires_at)?;
        Ok(IssuedToken {
            token,
            record: self.actors.record(&id)?,
        })
    }

    /// Every actor record, with their tokens' lives (an operator's request).
    pub fn actor_records(&self, caller: &RegisteredActor) -> Result<Vec<ActorRecord>, AppError> {
        may_administer(caller)?;
        self.actors.records()
    }

    /// Revokes an actor's token (an operator's request), recorded as revoked by the caller.
    pub fn revoke_actor(
        &self,
        caller: &RegisteredActor,
        id: &ActorId,
    ) -> Result<ActorRecord, AppError> {
        may_administer(caller)?;
        self.actors.revoke(id, &caller.id, Timestamp::now())
    }

    /// Replaces an actor's token (an operator's request) with one valid for `days` (the
    /// role's default when `None`); the old one is refused at once, or after `grace_minutes`.
    pub fn rotate_actor(
        &self,
        caller: &RegisteredActor,
        id: &ActorId,
        days: Option<u32>,
        grace_minutes: Option<u32>,
    ) -> Result<IssuedToken, AppError> {
        may_administer(caller)?;
        let role = self.actors.record(id)?.actor.role;
        let now = Timestamp::now();
        let expires_at = expiry(role, days, now)?;
        let (token, record) = self.actors.rotate(id, now, expires_at, grace_minutes)?;
        Ok(IssuedToken { token, record })
    }
}
