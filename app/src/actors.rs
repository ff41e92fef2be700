//! Registered actors and their bearer tokens, in `<data>/actors`.
//!
//! A token is 32 random bytes shown once, as hex, when the actor is added; only its BLAKE3 hash is
//! stored. An actor acts in one role: a care-team role of the core, or one of the API's own roles
//! `auditor` (reads everything, writes nothing) and `subscriber` (reads the event stream only).

use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use careledger_core::ids::{ActorId, AgbCode, PatientId, Text};
use careledger_core::role::{Line, Role};
use careledger_core::Actor;

use crate::error::AppError;

/// The role an API actor acts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessRole {
    /// A member of care teams, in a care-team role.
    Care(Role),
    /// Reads every patient, writes nothing.
    Auditor,
    /// Reads the event stream only.
    Subscriber,
}

impl AccessRole {
    /// Parses `gp`, `cardiologist`, ..., `auditor`, `subscriber`.
    pub fn parse(raw: &str) -> Option<AccessRole> {
        match raw {
            "auditor" => Some(AccessRole::Auditor),
            "subscriber" => Some(AccessRole::Subscriber),
            other => Role::parse(other).map(AccessRole::Care),
        }
    }

    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRole::Care(r) => r.as_str(),
            AccessRole::Auditor => "auditor",
            AccessRole::Subscriber => "subscriber",
        }
    }

    /// Every accepted role name, for help texts and errors.
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        names.extend(["auditor", "subscriber"]);
        names
    }
}

/// A registered actor: the actor record.
///
/// One record for everything the ledger and its API need to know of an actor: who they are,
/// the one role they act in, the organisation they act for (the AGB code of the GP practice or
/// hospital, carried into every record they write), and for a patient actor the one patient
/// (BSN) they are. Stored with a version mark (`StoredActor`), so that later fields (expiry,
/// client keys, a subscriber's scope) are added by a new version with an upcast, never by
/// re-reading old bytes differently.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredActor {
    /// Id.
    pub id: ActorId,
    /// Display name.
    pub name: Text,
    /// Role.
    pub role: AccessRole,
    /// The organisation acted for, when known: AGB code of the practice or hospital.
    pub organisation: Option<AgbCode>,
    /// For a patient actor: the patient they are. A patient actor joins and reads only this
    /// patient's care team.
    pub patient: Option<PatientId>,
}

impl RegisteredActor {
    /// An actor of no named organisation, bound to no patient (every role but `patient`).
    pub fn new(id: ActorId, name: Text, role: AccessRole) -> Self {
        Self {
            id,
            name,
            role,
            organisation: None,
            patient: None,
        }
    }

    /// The same actor bound to the patient they are (for the `patient` role).
    pub fn bound_to(mut self, patient: PatientId) -> Self {
        self.patient = Some(patient);
        self
    }

    /// The same actor acting for an organisation.
    pub fn acting_for(mut self, organisation: AgbCode) -> Self {
        self.organisation = Some(organisation);
        self
    }

    /// The core actor for writes; `None` for auditors and subscribers, who never write.
    pub fn as_care_actor(&self) -> Option<Actor> {
        match self.role {
            AccessRole::Care(role) => Some(Actor {
                id: self.id.clone(),
                role,
                name: self.name.clone(),
                organisation: self.organisation.clone(),
            }),
            _ => None,
        }
    }

    /// The line, for care roles.
    pub fn line(&self) -> Option<Line> {
        match self.role {
            AccessRole::Care(role) => Some(role.line()),
            _ => None,
        }
    }
}

/// The first stored layout: bincode of (id, name, role) and the token hash, with no mark.
#[derive(Deserialize)]
struct StoredActorV1 {
    id: ActorId,
    name: Text,
    role: AccessRole,
    token_hash: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct StoredActor {
    actor: RegisteredActor,
    token_hash: [u8; 32],
}

/// Stored values from layout 2 on start with `0x00` and the layout number. A layout 1 value
/// starts with the length of a non-empty id, never 0.
const LAYOUT_MARK: u8 = 0x00;
const LAYOUT: u8 = 2;

fn encode_stored(stored: &StoredActor) -> Result<Vec<u8>, AppError> {
    let mut bytes = vec![LAYOUT_MARK, LAYOUT];
    bytes.extend(
        bincode::serde::encode_to_vec(stored, bincode::config::standard()).map_err(internal)?,
    );
    Ok(bytes)
}

fn decode_stored(bytes: &[u8]) -> Result<StoredActor, AppError> {
    let config = bincode::config::standard();
    match bytes {
        [LAYOUT_MARK, LAYOUT, rest @ ..] => {
            let (stored, _): (StoredActor, usize) =
                bincode::serde::decode_from_slice(rest, config).map_err(internal)?;
            Ok(stored)
        }
        [LAYOUT_MARK, other, ..] => Err(internal(format!(
            "an actor is stored in layout {other}, unknown to this build"
        ))),
        _ => {
            let (old, _): (StoredActorV1, usize) =
                bincode::serde::decode_from_slice(bytes, config).map_err(internal)?;
            Ok(StoredActor {
                actor: RegisteredActor {
                    id: old.id,
                    name: old.name,
                    role: old.role,
                    organisation: None,
                    patient: None,
                },
                token_hash: old.token_hash,
            })
        }
    }
}

/// The actor store: sled on disk, a map by token hash in memory.
pub struct ActorStore {
    db: sled::Db,
    by_token: RwLock<HashMap<[u8; 32], RegisteredActor>>,
}

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Store {
        context: "actor store",
        detail: e.to_string(),
    }
}

impl ActorStore {
    /// Opens the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, AppError> {
        let db = sled::Config::new().path(dir).open().map_err(|e| {
            match careledger_core::storage::open_error(dir, e) {
                e @ careledger_core::StorageError::InUse { .. } => AppError::InUse(e.to_string()),
                e => internal(e),
            }
        })?;
        let mut by_token = HashMap::new();
        for item in db.iter() {
            let (_, value) = item.map_err(internal)?;
            let stored = decode_stored(&value)?;
            by_token.insert(stored.token_hash, stored.actor);
        }
        Ok(Self {
            db,
            by_token: RwLock::new(by_token),
        })
    }

    /// Adds an actor and returns its token, which is not stored and cannot be shown again.
    ///
    /// A patient actor is bound to the patient they are; no other actor is.
    pub fn add(&self, actor: RegisteredActor) -> Result<String, AppError> {
        if careledger_core::signing_keys::is_reserved(actor.id.as_str()) {
            return Err(AppError::Invalid {
                code: "reserved_id".into(),
                message: format!(
                    "actor ids starting with careledger: are the ledger's own ({} records the \
                     operator); choose another id",
                    careledger_core::signing_keys::OPERATOR
                ),
            });
        }
        let is_patient = actor.role == AccessRole::Care(Role::Patient);
        if is_patient != actor.patient.is_some() {
            return Err(AppError::Invalid {
                code: "patient_binding".into(),
                message: if is_patient {
                    "a patient actor is bound to the patient they are: give their BSN (--patient)"
                        .into()
                } else {
                    "only a patient actor is bound to a patient; leave out the patient".into()
                },
            });
        }
        if self.db.contains_key(actor.id.as_str()).map_err(internal)? {
            return Err(AppError::Conflict(format!(
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
        let bytes = encode_stored(&stored)?;
        self.db.insert(actor.id.as_str(), bytes).map_err(internal)?;
        self.db.flush().map_err(internal)?;
        self.by_token.write().insert(stored.token_hash, actor);
        Ok(token)
    }

    /// The actor a token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<RegisteredActor> {
        self.by_token.read().get(&token_hash(token)).cloned()
    }

    /// The registered actor with this id, if any.
    pub fn get(&self, id: &ActorId) -> Result<Option<RegisteredActor>, AppError> {
        match self.db.get(id.as_str()).map_err(internal)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode_stored(&bytes)?.actor)),
        }
    }

    /// All actors, by id, without tokens.
    pub fn list(&self) -> Result<Vec<RegisteredActor>, AppError> {
        let mut actors: Vec<RegisteredActor> = self.by_token.read().values().cloned().collect();
        actors.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(actors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first layout as earlier builds wrote it: (id, name, role) and the token hash.
    #[derive(Serialize)]
    struct WrittenByLayout1 {
        actor: (ActorId, Text, AccessRole),
        token_hash: [u8; 32],
    }

    #[test]
    fn actors_stored_in_the_first_layout_are_still_read_and_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let token = "0011";
        {
            let db = sled::open(dir.path()).unwrap();
            let old = WrittenByLayout1 {
                actor: (
                    ActorId::parse("gp-jansen").unwrap(),
                    Text::new("A. Jansen").unwrap(),
                    AccessRole::Care(Role::Gp),
                ),
                token_hash: token_hash(token),
            };
            let bytes = bincode::serde::encode_to_vec(&old, bincode::config::standard()).unwrap();
            db.insert("gp-jansen", bytes).unwrap();
            db.flush().unwrap();
        }
        let store = ActorStore::open(dir.path()).unwrap();
        let actor = store.authenticate(token).unwrap();
        assert_eq!(actor.id.as_str(), "gp-jansen");
        assert_eq!(actor.role, AccessRole::Care(Role::Gp));
        assert_eq!((actor.organisation, actor.patient), (None, None));
        let got = store.get(&ActorId::parse("gp-jansen").unwrap()).unwrap();
        assert_eq!(got.unwrap().name.as_str(), "A. Jansen");
    }

    #[test]
    fn a_patient_actor_needs_its_patient_and_no_other_actor_has_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = ActorStore::open(dir.path()).unwrap();
        let unbound = RegisteredActor::new(
            ActorId::parse("patient-1").unwrap(),
            Text::new("P. de Boer").unwrap(),
            AccessRole::Care(Role::Patient),
        );
        assert!(store.add(unbound.clone()).is_err());
        let bsn = PatientId::parse("999990007").unwrap();
        store.add(unbound.bound_to(bsn.clone())).unwrap();
        let gp = RegisteredActor::new(
            ActorId::parse("gp-1").unwrap(),
            Text::new("A. Jansen").unwrap(),
            AccessRole::Care(Role::Gp),
        )
        .bound_to(bsn);
        assert!(store.add(gp).is_err());
    }
}
