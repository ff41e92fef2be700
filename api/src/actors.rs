//! Actors of the API and their bearer tokens, in `<data>/actors`.
//!
//! A token is 32 random bytes shown once, as hex, when the actor is added; only its BLAKE3 hash is
//! stored. An actor acts in one role: a care-team role of the core, or one of the API's own roles
//! `auditor` (reads everything, writes nothing) and `subscriber` (reads the event stream only).

use std::collections::HashMap;
use std::path::Path;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use careledger_core::ids::{ActorId, Text};
use careledger_core::role::{Line, Role};
use careledger_core::Actor;

use crate::error::ApiError;

/// The role an API actor acts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiRole {
    /// A member of care teams, in a care-team role.
    Care(Role),
    /// Reads every patient, writes nothing.
    Auditor,
    /// Reads the event stream only.
    Subscriber,
}

impl ApiRole {
    /// Parses `gp`, `cardiologist`, ..., `auditor`, `subscriber`.
    pub fn parse(raw: &str) -> Option<ApiRole> {
        match raw {
            "auditor" => Some(ApiRole::Auditor),
            "subscriber" => Some(ApiRole::Subscriber),
            other => Role::parse(other).map(ApiRole::Care),
        }
    }

    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiRole::Care(r) => r.as_str(),
            ApiRole::Auditor => "auditor",
            ApiRole::Subscriber => "subscriber",
        }
    }

    /// Every accepted role name, for help texts and errors.
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        names.extend(["auditor", "subscriber"]);
        names
    }
}

/// A registered actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiActor {
    /// Id.
    pub id: ActorId,
    /// Display name.
    pub name: Text,
    /// Role.
    pub role: ApiRole,
}

impl ApiActor {
    /// The core actor for writes; `None` for auditors and subscribers, who never write.
    pub fn as_care_actor(&self) -> Option<Actor> {
        match self.role {
            ApiRole::Care(role) => Some(Actor {
                id: self.id.clone(),
                role,
                name: self.name.clone(),
                organisation: None,
            }),
            _ => None,
        }
    }

    /// The line, for care roles.
    pub fn line(&self) -> Option<Line> {
        match self.role {
            ApiRole::Care(role) => Some(role.line()),
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredActor {
    actor: ApiActor,
    token_hash: [u8; 32],
}

/// The actor store: sled on disk, a map by token hash in memory.
pub struct ActorStore {
    db: sled::Db,
    by_token: RwLock<HashMap<[u8; 32], ApiActor>>,
}

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(format!("actor store: {e}"))
}

impl ActorStore {
    /// Opens the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ApiError> {
        let db = sled::Config::new().path(dir).open().map_err(|e| {
            if e.to_string().contains("could not acquire lock") {
                ApiError::Conflict(format!(
                    "{} is in use by another process (a running `careledger serve`?); stop it first",
                    dir.display()
                ))
            } else {
                internal(e)
            }
        })?;
        let mut by_token = HashMap::new();
        for item in db.iter() {
            let (_, value) = item.map_err(internal)?;
            let (stored, _): (StoredActor, usize) =
                bincode::serde::decode_from_slice(&value, bincode::config::standard())
                    .map_err(internal)?;
            by_token.insert(stored.token_hash, stored.actor);
        }
        Ok(Self {
            db,
            by_token: RwLock::new(by_token),
        })
    }

    /// Adds an actor and returns its token, which is not stored and cannot be shown again.
    pub fn add(&self, actor: ApiActor) -> Result<String, ApiError> {
        if self.db.contains_key(actor.id.as_str()).map_err(internal)? {
            return Err(ApiError::Conflict(format!(
                "actor {} exists already; choose another id",
                actor.id
            )));
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(internal)?;
        let token = hex::encode(secret);
        let stored = StoredActor {
            actor: actor.clone(),
            token_hash: token_hash(&token),
        };
        let bytes = bincode::serde::encode_to_vec(&stored, bincode::config::standard())
            .map_err(internal)?;
        self.db.insert(actor.id.as_str(), bytes).map_err(internal)?;
        self.db.flush().map_err(internal)?;
        self.by_token
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(stored.token_hash, actor);
        Ok(token)
    }

    /// The actor a token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<ApiActor> {
        self.by_token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&token_hash(token))
            .cloned()
    }

    /// All actors, by id, without tokens.
    pub fn list(&self) -> Result<Vec<ApiActor>, ApiError> {
        let mut actors: Vec<ApiActor> = self
            .by_token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        actors.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(actors)
    }
}
