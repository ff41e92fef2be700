//! Registered actors and their bearer tokens, in `<data>/actors`.
//!
//! A token is 32 random bytes shown once, as hex, when the actor is added or their token is
//! rotated; only its BLAKE3 hash is stored. Each token has a life ([`TokenLife`]): it is issued,
//! expires (by default after [`PERSON_TOKEN_DAYS`] for people, [`SYSTEM_TOKEN_DAYS`] for
//! systems such as subscribers), may be revoked, and is replaced at once by rotation (the old one
//! may be kept valid for a short grace period). When it was last used is kept in memory and
//! written at most every [`LAST_USED_WRITE_INTERVAL`] and when the store closes.
//!
//! An actor acts in one role: a care-team role of the core, or one of the API's own roles
//! `auditor` (reads everything, writes nothing), `subscriber` (reads the event stream, within
//! its scope) and `operator` (administers actors, reads no patient data).

use parking_lot::RwLock;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use careledger_core::ids::{ActorId, AgbCode, PatientId, Text};
use careledger_core::record::Timestamp;
use careledger_core::role::{Line, Role};
use careledger_core::Actor;

use crate::error::AppError;

/// Days a token issued to a person (a care role, an auditor, an operator) is valid by default.
pub const PERSON_TOKEN_DAYS: u32 = 90;
/// Days a token issued to a system (a subscriber) is valid by default.
pub const SYSTEM_TOKEN_DAYS: u32 = 365;
/// The longest validity a token may be given, in days.
pub const MAX_TOKEN_DAYS: u32 = 1825;
/// The longest grace period an old token may be kept for after rotation, in minutes.
pub const MAX_GRACE_MINUTES: u32 = 7 * 24 * 60;
/// How often the last-used times kept in memory are written to the store.
pub const LAST_USED_WRITE_INTERVAL: Duration = Duration::from_secs(60);

/// The role an API actor acts in.
///
/// Stored by variant index: a new role is added at the end, never between.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessRole {
    /// A member of care teams, in a care-team role.
    Care(Role),
    /// Reads every patient, writes nothing.
    Auditor,
    /// Reads the event stream only, of the patients in its [`SubscriberScope`].
    Subscriber,
    /// Administers actors and their tokens; reads no patient data and writes nothing.
    Operator,
}

impl AccessRole {
    /// Parses `gp`, `cardiologist`, ..., `auditor`, `subscriber`, `operator`.
    pub fn parse(raw: &str) -> Option<AccessRole> {
        match raw {
            "auditor" => Some(AccessRole::Auditor),
            "subscriber" => Some(AccessRole::Subscriber),
            "operator" => Some(AccessRole::Operator),
            other => Role::parse(other).map(AccessRole::Care),
        }
    }

    /// The snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRole::Care(r) => r.as_str(),
            AccessRole::Auditor => "auditor",
            AccessRole::Subscriber => "subscriber",
            AccessRole::Operator => "operator",
        }
    }

    /// Every accepted role name, for help texts and errors.
    pub fn names() -> Vec<&'static str> {
        let mut names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
        names.extend(["auditor", "subscriber", "operator"]);
        names
    }

    /// How many days a token of this role is valid unless told otherwise: a year for systems
    /// (subscribers), ninety days for people.
    pub fn default_token_days(self) -> u32 {
        match self {
            AccessRole::Subscriber => SYSTEM_TOKEN_DAYS,
            _ => PERSON_TOKEN_DAYS,
        }
    }
}

/// Which patients' events a subscriber sees.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubscriberScope {
    /// The patients whose care team has a member registered for this organisation (a GP
    /// practice's information system sees its own patients).
    Organisation(AgbCode),
    /// Every patient: a hospital-wide integration engine, given explicitly.
    All,
}

/// The OpenID Connect subject an actor is reached by: access tokens of this issuer with this
/// `sub` act as this actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OidcSubject {
    /// The issuer (`iss`), as the tokens name it.
    pub issuer: String,
    /// The subject (`sub`).
    pub subject: String,
}

/// A registered actor: the actor record.
///
/// One record for everything the ledger and its API need to know of an actor: who they are,
/// the one role they act in, the organisation they act for (the AGB code of the GP practice or
/// hospital, carried into every record they write), for a patient actor the one patient (BSN)
/// they are, the OpenID Connect subject they may also be reached by, and for a subscriber the
/// patients whose events it sees. Stored with a layout mark, so that later fields are added by a
/// new layout with an upcast, never by re-reading old bytes differently.
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
    /// The OpenID Connect subject whose access tokens act as this actor, if any.
    pub oidc: Option<OidcSubject>,
    /// For a subscriber (required there, refused elsewhere): the patients whose events it sees.
    pub scope: Option<SubscriberScope>,
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
            oidc: None,
            scope: None,
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

    /// The same actor, also reached by this OpenID Connect subject.
    pub fn reached_as(mut self, subject: OidcSubject) -> Self {
        self.oidc = Some(subject);
        self
    }

    /// The same subscriber, seeing the events of the patients in `scope`.
    pub fn scoped(mut self, scope: SubscriberScope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The core actor for writes; `None` for auditors, subscribers and operators, who never
    /// write.
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

    /// Refuses a record whose parts do not fit its role.
    fn check(&self) -> Result<(), AppError> {
        let invalid = |code: &str, message: String| AppError::Invalid {
            code: code.into(),
            message,
        };
        if careledger_core::signing_keys::is_reserved(self.id.as_str()) {
            return Err(invalid(
                "reserved_id",
                format!(
                    "actor ids starting with careledger: are the ledger's own ({} records the \
                     operator); choose another id",
                    careledger_core::signing_keys::OPERATOR
                ),
            ));
        }
        let is_patient = self.role == AccessRole::Care(Role::Patient);
        if is_patient != self.patient.is_some() {
            return Err(invalid(
                "patient_binding",
                if is_patient {
                    "a patient actor is bound to the patient they are: give their BSN (--patient)"
                        .into()
                } else {
                    "only a patient actor is bound to a patient; leave out the patient".into()
                },
            ));
        }
        let is_subscriber = self.role == AccessRole::Subscriber;
        if is_subscriber != self.scope.is_some() {
            return Err(invalid(
                "subscriber_scope",
                if is_subscriber {
                    "a subscriber sees the events of one organisation's patients: give its AGB \
                     code (--organisation); a hospital-wide integration engine that must see \
                     every patient is added with --scope all"
                        .into()
                } else {
                    "only a subscriber has a scope; leave out the scope".into()
                },
            ));
        }
        if let Some(oidc) = &self.oidc {
            if oidc.issuer.trim().is_empty() || oidc.subject.trim().is_empty() {
                return Err(invalid(
                    "oidc_subject",
                    "an OpenID Connect subject needs both the issuer and the sub".into(),
                ));
            }
        }
        Ok(())
    }
}

/// A token's life: when it was issued and expires, whether it was revoked, when it was last
/// used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenLife {
    /// When the token was issued (added or rotated). For records of layouts 1 and 2, when they
    /// were first read by a build that knows token lives.
    pub issued_at: Timestamp,
    /// When it stops being accepted. `None` only for tokens issued before tokens expired
    /// (layouts 1 and 2): they stay valid until rotated, and `actors list` says so.
    pub expires_at: Option<Timestamp>,
    /// The revocation, if revoked.
    pub revoked: Option<Revocation>,
    /// When the token (or the actor's OpenID Connect subject) was last accepted, as last written.
    pub last_used_at: Option<Timestamp>,
}

/// Who revoked an actor's token, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// When.
    pub at: Timestamp,
    /// The operator (`careledger:operator` for the command line on the data directory).
    pub by: ActorId,
}

/// The token a rotation replaced, remembered so that it is refused as replaced (not unknown),
/// and accepted until `valid_until` when the rotation gave a grace period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PreviousToken {
    token_hash: [u8; 32],
    valid_until: Timestamp,
}

/// An actor record as the operator sees it: the actor and their token's life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActorRecord {
    /// The actor.
    pub actor: RegisteredActor,
    /// Their token's life.
    pub token: TokenLife,
    /// Until when the token a rotation replaced is still accepted, while a grace period runs.
    pub previous_valid_until: Option<Timestamp>,
}

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    /// No actor has this token.
    Unknown,
    /// The token expired at this time.
    Expired {
        /// The actor.
        actor: ActorId,
        /// When.
        at: Timestamp,
    },
    /// The actor's token was revoked.
    Revoked {
        /// The actor.
        actor: ActorId,
        /// The revocation.
        revocation: Revocation,
    },
    /// A rotation replaced this token (its grace period, if any, is over).
    Replaced {
        /// The actor.
        actor: ActorId,
        /// When it stopped being accepted.
        at: Timestamp,
    },
}

/// The first stored layout: bincode of (id, name, role) and the token hash, with no mark.
#[derive(Deserialize)]
struct StoredActorV1 {
    id: ActorId,
    name: Text,
    role: AccessRole,
    token_hash: [u8; 32],
}

/// The actor record of layout 2, frozen as it was written.
#[derive(Serialize, Deserialize)]
struct RegisteredActorV2 {
    id: ActorId,
    name: Text,
    role: AccessRole,
    organisation: Option<AgbCode>,
    patient: Option<PatientId>,
}

/// Layout 2: the actor record (without OpenID Connect subject or scope) and the token hash.
#[derive(Serialize, Deserialize)]
struct StoredActorV2 {
    actor: RegisteredActorV2,
    token_hash: [u8; 32],
}

/// Layout 3: the actor record, the token hash, its life and the token a rotation replaced.
#[derive(Clone, Serialize, Deserialize)]
struct StoredActor {
    actor: RegisteredActor,
    token_hash: [u8; 32],
    life: TokenLife,
    previous: Option<PreviousToken>,
}

/// Stored values from layout 2 on start with `0x00` and the layout number. A layout 1 value
/// starts with the length of a non-empty id, never 0.
const LAYOUT_MARK: u8 = 0x00;
const LAYOUT_2: u8 = 2;
const LAYOUT: u8 = 3;

fn encode_stored(stored: &StoredActor) -> Result<Vec<u8>, AppError> {
    let mut bytes = vec![LAYOUT_MARK, LAYOUT];
    bytes.extend(
        bincode::serde::encode_to_vec(stored, bincode::config::standard()).map_err(internal)?,
    );
    Ok(bytes)
}

/// A record of layout 1 or 2, upcast: its token never expires (as it did not when issued), a
/// subscriber keeps seeing what it saw (its organisation's patients when it has one, else
/// every patient), and `issued_at` is when it was read.
fn upcast(actor: RegisteredActorV2, token_hash: [u8; 32], read_at: Timestamp) -> StoredActor {
    let scope = (actor.role == AccessRole::Subscriber).then(|| match &actor.organisation {
        Some(agb) => SubscriberScope::Organisation(agb.clone()),
        None => SubscriberScope::All,
    });
    StoredActor {
        actor: RegisteredActor {
            id: actor.id,
            name: actor.name,
            role: actor.role,
            organisation: actor.organisation,
            patient: actor.patient,
            oidc: None,
            scope,
        },
        token_hash,
        life: TokenLife {
            issued_at: read_at,
            expires_at: None,
            revoked: None,
            last_used_at: None,
        },
        previous: None,
    }
}

fn decode_stored(bytes: &[u8], read_at: Timestamp) -> Result<StoredActor, AppError> {
    let config = bincode::config::standard();
    match bytes {
        [LAYOUT_MARK, LAYOUT, rest @ ..] => {
            let (stored, _): (StoredActor, usize) =
                bincode::serde::decode_from_slice(rest, config).map_err(internal)?;
            Ok(stored)
        }
        [LAYOUT_MARK, LAYOUT_2, rest @ ..] => {
            let (old, _): (StoredActorV2, usize) =
                bincode::serde::decode_from_slice(rest, config).map_err(internal)?;
            Ok(upcast(old.actor, old.token_hash, read_at))
        }
        [LAYOUT_MARK, other, ..] => Err(internal(format!(
            "an actor is stored in layout {other}, unknown to this build"
        ))),
        _ => {
            let (old, _): (StoredActorV1, usize) =
                bincode::serde::decode_from_slice(bytes, config).map_err(internal)?;
            let actor = RegisteredActorV2 {
                id: old.id,
                name: old.name,
                role: old.role,
                organisation: None,
                patient: None,
            };
            Ok(upcast(actor, old.token_hash, read_at))
        }
    }
}

/// One actor in memory: the stored record, and the last use not yet written.
struct Entry {
    stored: StoredActor,
    /// Microseconds of the last accepted use; 0 when never used.
    last_used_us: AtomicI64,
}

impl Entry {
    fn new(stored: StoredActor) -> Self {
        let last = stored.life.last_used_at.map_or(0, Timestamp::micros);
        Entry {
            stored,
            last_used_us: AtomicI64::new(last),
        }
    }

    /// The stored record with the last use kept in memory.
    fn current(&self) -> StoredActor {
        let mut stored = self.stored.clone();
        let last = self.last_used_us.load(Ordering::Relaxed);
        if last != 0 {
            stored.life.last_used_at = Some(Timestamp::from_micros(last));
        }
        stored
    }

    fn record(&self) -> ActorRecord {
        let stored = self.current();
        ActorRecord {
            actor: stored.actor,
            token: stored.life,
            previous_valid_until: stored.previous.map(|p| p.valid_until),
        }
    }

    fn used(&self, now: Timestamp) {
        self.last_used_us.fetch_max(now.micros(), Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Registry {
    by_id: HashMap<ActorId, Entry>,
    /// Current and replaced tokens, by hash.
    by_token: HashMap<[u8; 32], ActorId>,
    by_subject: HashMap<OidcSubject, ActorId>,
}

impl Registry {
    fn insert(&mut self, stored: StoredActor) {
        let id = stored.actor.id.clone();
        self.by_token.insert(stored.token_hash, id.clone());
        if let Some(previous) = &stored.previous {
            self.by_token.insert(previous.token_hash, id.clone());
        }
        if let Some(subject) = &stored.actor.oidc {
            self.by_subject.insert(subject.clone(), id.clone());
        }
        self.by_id.insert(id, Entry::new(stored));
    }
}

/// The actor store: sled on disk, the registry in memory.
pub struct ActorStore {
    db: sled::Db,
    registry: RwLock<Registry>,
}

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

fn new_token() -> Result<String, AppError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(internal)?;
    Ok(hex::encode(secret))
}

fn internal(e: impl std::fmt::Display) -> AppError {
    AppError::Store {
        context: "actor store",
        detail: e.to_string(),
    }
}

/// `now` plus whole days.
pub fn days_after(now: Timestamp, days: u32) -> Timestamp {
    Timestamp::from_micros(
        now.micros()
            .saturating_add(i64::from(days) * 86_400_000_000),
    )
}

fn minutes_after(now: Timestamp, minutes: u32) -> Timestamp {
    Timestamp::from_micros(now.micros().saturating_add(i64::from(minutes) * 60_000_000))
}

/// Refuses a validity outside 1 day ..= [`MAX_TOKEN_DAYS`].
pub fn check_token_days(days: u32) -> Result<u32, AppError> {
    if days == 0 || days > MAX_TOKEN_DAYS {
        return Err(AppError::Invalid {
            code: "invalid_value".into(),
            message: format!(
                "a token is valid for 1 to {MAX_TOKEN_DAYS} days; {days} is outside that \
                 (expires_in_days, --expires-in-days)"
            ),
        });
    }
    Ok(days)
}

/// sled's page cache for the actors' database by default (sled's own default is 1 GiB).
pub const ACTORS_CACHE_BYTES: u64 = 8 << 20;

impl ActorStore {
    /// Opens the store in `dir`, with sled's page cache of [`ACTORS_CACHE_BYTES`].
    pub fn open(dir: &Path) -> Result<Self, AppError> {
        Self::open_with_cache(dir, ACTORS_CACHE_BYTES)
    }

    /// Opens the store in `dir`, with sled's page cache of `cache_bytes` (a share of the
    /// memory budget: the registry is read into memory on open, so sled's cache serves writes).
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self, AppError> {
        // Every write flushes itself, so sled's background flusher is not needed.
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None);
        let db = crate::error::open_store_db(&config, dir, "opening the actors' registry")?;
        let now = Timestamp::now();
        let mut registry = Registry::default();
        for item in db.iter() {
            let (_, value) = item.map_err(internal)?;
            registry.insert(decode_stored(&value, now)?);
        }
        Ok(Self {
            db,
            registry: RwLock::new(registry),
        })
    }

    /// Copies every actor as stored (token hashes, not tokens) into a new store in `dir`.
    pub fn copy_to(&self, dir: &Path) -> Result<u64, AppError> {
        let target = ActorStore::open(dir)?;
        let mut copied = 0;
        for item in self.db.iter() {
            let (key, value) = item.map_err(internal)?;
            target.db.insert(key, value).map_err(internal)?;
            copied += 1;
        }
        target.db.flush().map_err(internal)?;
        Ok(copied)
    }

    fn write(&self, stored: &StoredActor) -> Result<(), AppError> {
        let bytes = encode_stored(stored)?;
        self.db
            .insert(stored.actor.id.as_str(), bytes)
            .map_err(internal)?;
        self.db.flush().map_err(internal)?;
        Ok(())
    }

    /// Adds an actor with a token of the role's default validity and returns the token, which
    /// is not stored and cannot be shown again.
    pub fn add(&self, actor: RegisteredActor) -> Result<String, AppError> {
        let now = Timestamp::now();
        let expires_at = days_after(now, actor.role.default_token_days());
        self.issue(actor, now, expires_at)
    }

    /// Adds an actor whose token, issued at `now`, expires at `expires_at`, and returns the
    /// token. A patient actor is bound to the patient they are and a subscriber has a scope;
    /// no other actor has either. An OpenID Connect subject reaches one actor only.
    pub fn issue(
        &self,
        actor: RegisteredActor,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<String, AppError> {
        actor.check()?;
        let mut registry = self.registry.write();
        if registry.by_id.contains_key(&actor.id)
            || self.db.contains_key(actor.id.as_str()).map_err(internal)?
        {
            return Err(AppError::Conflict(format!(
                "actor {} exists already; choose another id",
                actor.id
            )));
        }
        if let Some(other) = actor.oidc.as_ref().and_then(|s| registry.by_subject.get(s)) {
            return Err(AppError::Conflict(format!(
                "the OpenID Connect subject is already that of actor {other}; one subject \
                 reaches one actor"
            )));
        }
        let token = new_token()?;
        let stored = StoredActor {
            actor,
            token_hash: token_hash(&token),
            life: TokenLife {
                issued_at: now,
                expires_at: Some(expires_at),
                revoked: None,
                last_used_at: None,
            },
            previous: None,
        };
        self.write(&stored)?;
        registry.insert(stored);
        Ok(token)
    }

    /// The actor a token belongs to, at `now`; records the use.
    pub fn authenticate(
        &self,
        token: &str,
        now: Timestamp,
    ) -> Result<RegisteredActor, TokenRefusal> {
        let hash = token_hash(token);
        let registry = self.registry.read();
        let entry = registry
            .by_token
            .get(&hash)
            .and_then(|id| registry.by_id.get(id))
            .ok_or(TokenRefusal::Unknown)?;
        let stored = &entry.stored;
        let actor = stored.actor.id.clone();
        if let Some(revocation) = &stored.life.revoked {
            return Err(TokenRefusal::Revoked {
                actor,
                revocation: revocation.clone(),
            });
        }
        if stored.token_hash == hash {
            if let Some(at) = stored.life.expires_at.filter(|at| *at <= now) {
                return Err(TokenRefusal::Expired { actor, at });
            }
        } else {
            match &stored.previous {
                Some(p) if p.token_hash == hash && p.valid_until > now => {}
                Some(p) => {
                    return Err(TokenRefusal::Replaced {
                        actor,
                        at: p.valid_until,
                    })
                }
                None => return Err(TokenRefusal::Unknown),
            }
        }
        entry.used(now);
        Ok(stored.actor.clone())
    }

    /// The actor an OpenID Connect subject reaches, at `now`; records the use. `None` when no
    /// actor is reached by it; a revoked actor is refused as its token is.
    pub fn authenticate_subject(
        &self,
        subject: &OidcSubject,
        now: Timestamp,
    ) -> Option<Result<RegisteredActor, TokenRefusal>> {
        let registry = self.registry.read();
        let entry = registry
            .by_subject
            .get(subject)
            .and_then(|id| registry.by_id.get(id))?;
        if let Some(revocation) = &entry.stored.life.revoked {
            return Some(Err(TokenRefusal::Revoked {
                actor: entry.stored.actor.id.clone(),
                revocation: revocation.clone(),
            }));
        }
        entry.used(now);
        Some(Ok(entry.stored.actor.clone()))
    }

    /// The registered actor with this id, if any.
    pub fn get(&self, id: &ActorId) -> Result<Option<RegisteredActor>, AppError> {
        Ok(self
            .registry
            .read()
            .by_id
            .get(id)
            .map(|e| e.stored.actor.clone()))
    }

    /// The organisation an actor is registered for, if they are registered with one.
    pub fn organisation_of(&self, id: &ActorId) -> Option<AgbCode> {
        self.registry
            .read()
            .by_id
            .get(id)
            .and_then(|e| e.stored.actor.organisation.clone())
    }

    /// Whether any of `members` is registered for `organisation`.
    pub fn any_registered_for<'a>(
        &self,
        organisation: &AgbCode,
        mut members: impl Iterator<Item = &'a ActorId>,
    ) -> bool {
        let registry = self.registry.read();
        members.any(|id| {
            registry
                .by_id
                .get(id)
                .is_some_and(|e| e.stored.actor.organisation.as_ref() == Some(organisation))
        })
    }

    /// All actors, by id, without tokens.
    pub fn list(&self) -> Result<Vec<RegisteredActor>, AppError> {
        Ok(self.records()?.into_iter().map(|r| r.actor).collect())
    }

    /// Every actor record with its token's life, by id.
    pub fn records(&self) -> Result<Vec<ActorRecord>, AppError> {
        let mut records: Vec<ActorRecord> = self
            .registry
            .read()
            .by_id
            .values()
            .map(Entry::record)
            .collect();
        records.sort_by(|a, b| a.actor.id.cmp(&b.actor.id));
        Ok(records)
    }

    /// One actor's record.
    pub fn record(&self, id: &ActorId) -> Result<ActorRecord, AppError> {
        self.registry
            .read()
            .by_id
            .get(id)
            .map(Entry::record)
            .ok_or_else(|| unknown_actor(id))
    }

    /// Revokes an actor's token (and any token a rotation replaced) at `now`, by `by`: every
    /// later request with it is refused, as are access tokens of the actor's OpenID Connect
    /// subject. A rotation issues a new token.
    pub fn revoke(
        &self,
        id: &ActorId,
        by: &ActorId,
        now: Timestamp,
    ) -> Result<ActorRecord, AppError> {
        let mut registry = self.registry.write();
        let entry = registry
            .by_id
            .get_mut(id)
            .ok_or_else(|| unknown_actor(id))?;
        if let Some(r) = &entry.stored.life.revoked {
            return Err(AppError::Conflict(format!(
                "the token of {id} was revoked already, on {} by {}; rotate to issue a new one",
                r.at, r.by
            )));
        }
        let mut stored = entry.current();
        stored.life.revoked = Some(Revocation {
            at: now,
            by: by.clone(),
        });
        self.write(&stored)?;
        entry.stored = stored;
        Ok(entry.record())
    }

    /// Replaces an actor's token at `now` with a new one that expires at `expires_at`, and
    /// returns it. The old token is refused from now on, or after `grace_minutes` when given (a
    /// revoked token gets no grace). A revoked actor is admitted again with the new token.
    pub fn rotate(
        &self,
        id: &ActorId,
        now: Timestamp,
        expires_at: Timestamp,
        grace_minutes: Option<u32>,
    ) -> Result<(String, ActorRecord), AppError> {
        if let Some(grace) = grace_minutes.filter(|m| *m > MAX_GRACE_MINUTES) {
            return Err(AppError::Invalid {
                code: "invalid_value".into(),
                message: format!(
                    "a grace period is at most {MAX_GRACE_MINUTES} minutes (a week); {grace} is \
                     longer (grace_minutes, --grace-minutes)"
                ),
            });
        }
        let token = new_token()?;
        let mut guard = self.registry.write();
        let registry = &mut *guard;
        let entry = registry
            .by_id
            .get_mut(id)
            .ok_or_else(|| unknown_actor(id))?;
        let mut stored = entry.current();
        let grace = match stored.life.revoked {
            Some(_) => None,
            None => grace_minutes,
        };
        let replaced = stored.token_hash;
        let forgotten = stored.previous.take();
        stored.previous = Some(PreviousToken {
            token_hash: replaced,
            valid_until: grace.map_or(now, |m| minutes_after(now, m)),
        });
        stored.token_hash = token_hash(&token);
        stored.life = TokenLife {
            issued_at: now,
            expires_at: Some(expires_at),
            revoked: None,
            last_used_at: stored.life.last_used_at,
        };
        self.write(&stored)?;
        if let Some(forgotten) = forgotten {
            registry.by_token.remove(&forgotten.token_hash);
        }
        registry.by_token.insert(stored.token_hash, id.clone());
        entry.stored = stored;
        Ok((token, entry.record()))
    }

    /// Writes the last-used times kept in memory that are newer than the stored ones.
    pub fn write_last_used(&self) -> Result<(), AppError> {
        let mut registry = self.registry.write();
        let mut batch = sled::Batch::default();
        let mut changed = false;
        for entry in registry.by_id.values_mut() {
            let last = entry.last_used_us.load(Ordering::Relaxed);
            let written = entry.stored.life.last_used_at.map_or(0, Timestamp::micros);
            if last > written {
                let stored = entry.current();
                batch.insert(stored.actor.id.as_str(), encode_stored(&stored)?);
                entry.stored = stored;
                changed = true;
            }
        }
        if changed {
            self.db.apply_batch(batch).map_err(internal)?;
            self.db.flush().map_err(internal)?;
        }
        Ok(())
    }
}

fn unknown_actor(id: &ActorId) -> AppError {
    AppError::NotFound(format!(
        "no actor {id}; `careledger actors list` shows the registered actors"
    ))
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
            // No background flusher: its thread would hold the directory's lock a moment
            // after this handle is dropped, and the store's open below would find it in use.
            let db = sled::Config::new()
                .path(dir.path())
                .flush_every_ms(None)
                .open()
                .unwrap();
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
        let actor = store.authenticate(token, Timestamp::now()).unwrap();
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

    fn gp(id: &str) -> RegisteredActor {
        RegisteredActor::new(
            ActorId::parse(id).unwrap(),
            Text::new("A. Jansen").unwrap(),
            AccessRole::Care(Role::Gp),
        )
    }

    #[test]
    fn actors_stored_in_the_second_layout_are_still_read_with_tokens_that_never_expire() {
        let dir = tempfile::tempdir().unwrap();
        let agb = AgbCode::parse("01234567").unwrap();
        let write = |id: &str, role: AccessRole, organisation: Option<AgbCode>, token: &str| {
            let stored = StoredActorV2 {
                actor: RegisteredActorV2 {
                    id: ActorId::parse(id).unwrap(),
                    name: Text::new("Feed").unwrap(),
                    role,
                    organisation,
                    patient: None,
                },
                token_hash: token_hash(token),
            };
            let mut bytes = vec![LAYOUT_MARK, LAYOUT_2];
            bytes.extend(
                bincode::serde::encode_to_vec(&stored, bincode::config::standard()).unwrap(),
            );
            (id.to_owned(), bytes)
        };
        {
            // No background flusher: its thread would hold the directory's lock a moment
            // after this handle is dropped, and the store's open below would find it in use.
            let db = sled::Config::new()
                .path(dir.path())
                .flush_every_ms(None)
                .open()
                .unwrap();
            for (id, bytes) in [
                write("gp-2", AccessRole::Care(Role::Gp), Some(agb.clone()), "aa"),
                write(
                    "feed-practice",
                    AccessRole::Subscriber,
                    Some(agb.clone()),
                    "bb",
                ),
                write("feed-all", AccessRole::Subscriber, None, "cc"),
            ] {
                db.insert(id.as_str(), bytes).unwrap();
            }
            db.flush().unwrap();
        }
        let store = ActorStore::open(dir.path()).unwrap();
        let far = days_after(Timestamp::now(), 10 * 365);
        let gp = store.authenticate("aa", far).unwrap();
        assert_eq!(gp.organisation, Some(agb.clone()));
        assert_eq!((gp.oidc, gp.scope), (None, None));
        let practice = store.authenticate("bb", far).unwrap();
        assert_eq!(practice.scope, Some(SubscriberScope::Organisation(agb)));
        let all = store.authenticate("cc", far).unwrap();
        assert_eq!(all.scope, Some(SubscriberScope::All));
        let record = store.record(&ActorId::parse("gp-2").unwrap()).unwrap();
        assert_eq!(record.token.expires_at, None, "an old token never expired");
        // Written again in layout 3 by a rotation, and read back as such.
        let id = ActorId::parse("gp-2").unwrap();
        let now = Timestamp::now();
        let (token, _) = store.rotate(&id, now, days_after(now, 1), None).unwrap();
        drop(store);
        let store = ActorStore::open(dir.path()).unwrap();
        assert_eq!(
            store.db.get("gp-2").unwrap().unwrap()[..2],
            [LAYOUT_MARK, LAYOUT]
        );
        assert_eq!(store.authenticate(&token, now).unwrap().id, id);
    }

    #[test]
    fn a_token_is_refused_once_expired_revoked_or_replaced_and_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let store = ActorStore::open(dir.path()).unwrap();
        let now = Timestamp::now();
        let id = ActorId::parse("gp-1").unwrap();
        let token = store.issue(gp("gp-1"), now, days_after(now, 1)).unwrap();
        assert!(store.authenticate(&token, now).is_ok());
        let later = days_after(now, 2);
        assert!(matches!(
            store.authenticate(&token, later),
            Err(TokenRefusal::Expired { .. })
        ));
        let (new, _) = store
            .rotate(&id, now, days_after(now, 5), Some(10))
            .unwrap();
        assert!(store.authenticate(&token, now).is_ok(), "within the grace");
        assert!(matches!(
            store.authenticate(&token, minutes_after(now, 11)),
            Err(TokenRefusal::Replaced { .. })
        ));
        assert!(store.authenticate(&new, later).is_ok());
        let operator = ActorId::parse("op-1").unwrap();
        store.revoke(&id, &operator, now).unwrap();
        match store.authenticate(&new, now) {
            Err(TokenRefusal::Revoked { revocation, .. }) => assert_eq!(revocation.by, operator),
            other => panic!("{other:?}"),
        }
        assert!(
            store.authenticate(&token, now).is_err(),
            "no grace after revocation"
        );
        assert_eq!(store.authenticate("00", now), Err(TokenRefusal::Unknown));
    }

    #[test]
    fn the_last_use_is_written_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let now = Timestamp::now();
        {
            let store = ActorStore::open(dir.path()).unwrap();
            let token = store.add(gp("gp-1")).unwrap();
            store.authenticate(&token, now).unwrap();
            store.write_last_used().unwrap();
        }
        let store = ActorStore::open(dir.path()).unwrap();
        let record = store.record(&ActorId::parse("gp-1").unwrap()).unwrap();
        assert_eq!(record.token.last_used_at, Some(now));
    }

    #[test]
    fn a_subscriber_needs_a_scope_and_no_other_actor_has_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = ActorStore::open(dir.path()).unwrap();
        let feed = RegisteredActor::new(
            ActorId::parse("feed-1").unwrap(),
            Text::new("Feed").unwrap(),
            AccessRole::Subscriber,
        );
        assert!(store.add(feed.clone()).is_err());
        store.add(feed.scoped(SubscriberScope::All)).unwrap();
        assert!(store.add(gp("gp-1").scoped(SubscriberScope::All)).is_err());
    }
}
