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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::ids::Text;
    use crate::record::Timestamp;
    use crate::role::Role;
    use crate::signed_request::{SignatureProblem, SignedRequest};
    use crate::{AppendRequest, Error, ExpectedRevision, Ledger, LedgerConfig, Submission};
    use std::sync::Arc;

    fn actor(id: &str) -> Actor {
        Actor::new(
            ActorId::parse(id).unwrap(),
            Role::Gp,
            Text::new("A. Jansen").unwrap(),
        )
    }

    fn public_key(secret: &[u8; 32]) -> [u8; 32] {
        ed25519_dalek::SigningKey::from_bytes(secret)
            .verifying_key()
            .to_bytes()
    }

    fn register(owner: &str, key_id: &str) -> Command {
        Command::RegisterSigningKey(SigningKey {
            actor: ActorId::parse(owner).unwrap(),
            key_id: ElementId::parse(key_id).unwrap(),
            public_key: public_key(&[3; 32]),
            system: Text::new("HIS").unwrap(),
        })
    }

    fn request(stream: PatientId, by: Actor, command: Command) -> AppendRequest {
        AppendRequest {
            patient: stream,
            expected: ExpectedRevision::Any,
            actor: by,
            submissions: vec![Submission {
                command,
                occurred_at: None,
                reason: Text::new("operator's reason").unwrap(),
            }],
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    fn ledger(clock: Arc<ManualClock>) -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let config = LedgerConfig {
            clock,
            ..LedgerConfig::default()
        };
        let ledger = Ledger::open(dir.path(), config).unwrap();
        (dir, ledger)
    }

    #[test]
    fn an_actor_registers_their_own_key_and_the_operator_anyones_but_nobody_another_actors() {
        let (_dir, ledger) = ledger(Arc::new(ManualClock::new(Timestamp::from_micros(0))));
        let own = request(key_stream(), actor("gp-1"), register("gp-1", "his-1"));
        ledger.append(own).unwrap();
        let others = request(key_stream(), actor("gp-1"), register("card-1", "ehr-1"));
        match ledger.append(others) {
            Err(Error::Rejected(r)) => assert_eq!(r.code, RejectionCode::SigningKeyForOneself),
            other => panic!("{other:?}"),
        }
        let by_operator = request(key_stream(), operator(), register("card-1", "ehr-1"));
        ledger.append(by_operator).unwrap();
        let again = request(key_stream(), actor("gp-1"), register("gp-1", "his-1"));
        match ledger.append(again) {
            Err(Error::Rejected(r)) => assert_eq!(r.code, RejectionCode::SigningKeyExists),
            other => panic!("{other:?}"),
        }
        let registry = ledger.key_registry().unwrap();
        let card = ActorId::parse("card-1").unwrap();
        let key = registry
            .get(&card, &ElementId::parse("ehr-1").unwrap())
            .unwrap();
        assert_eq!(key.registered_by.id.as_str(), OPERATOR);
        assert_eq!(registry.iter().count(), 2);
    }

    #[test]
    fn key_commands_go_only_to_the_key_stream_and_patient_commands_never_there() {
        let (_dir, ledger) = ledger(Arc::new(ManualClock::new(Timestamp::from_micros(0))));
        let patient = PatientId::parse("999990007").unwrap();
        let in_patient = request(patient, actor("gp-1"), register("gp-1", "his-1"));
        assert!(matches!(ledger.append(in_patient), Err(Error::Invalid(_))));
        let note = Command::AddNote(crate::event::Note {
            kind: crate::event::NoteKind::Note,
            subject: Text::new("s").unwrap(),
            body: Text::new("b").unwrap(),
        });
        let in_keys = request(key_stream(), actor("gp-1"), note);
        assert!(matches!(ledger.append(in_keys), Err(Error::Invalid(_))));
    }

    #[test]
    fn a_signed_append_is_refused_when_stale_revoked_or_replayed_on_the_ledgers_clock() {
        use ed25519_dalek::Signer;
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(
            1_800_000_000_000_000,
        )));
        let (_dir, ledger) = ledger(clock.clone());
        let gp = actor("gp-1");
        ledger
            .append(request(key_stream(), gp.clone(), register("gp-1", "his-1")))
            .unwrap();
        let signed = |created: i64, base: &str| {
            let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
            SignedRequest {
                key_id: ElementId::parse("his-1").unwrap(),
                created,
                signature_input: "sig1=()".into(),
                signature: key.sign(base.as_bytes()).to_bytes().to_vec(),
                signature_base: base.into(),
                body: b"{}".to_vec(),
            }
        };
        let patient = PatientId::parse("999990007").unwrap();
        let founding = Command::AddCareTeamMember(crate::event::Member {
            actor: gp.id.clone(),
            name: gp.name.clone(),
            agb: None,
            role: Role::Gp,
            lead: crate::role::Lead::Cvrm,
            practitioner: crate::role::Practitioner::Main,
        });
        let append = |request_signed: &SignedRequest| {
            ledger.append_signed(
                request(patient.clone(), gp.clone(), founding.clone()),
                request_signed,
            )
        };
        let now = 1_800_000_000;
        let stale = append(&signed(now - 301, "a"));
        assert!(
            matches!(stale, Err(Error::Signature(SignatureProblem::Stale { .. }))),
            "{stale:?}"
        );
        let first = signed(now + 300, "b");
        let outcome = append(&first).unwrap();
        let recorded = ledger.read_position(outcome.events[0].position).unwrap();
        assert_eq!(
            recorded.record.signed_request,
            Some(SignedRequest::hash_of(&first.encode().unwrap()))
        );
        let replayed = append(&first);
        assert!(matches!(
            replayed,
            Err(Error::Signature(SignatureProblem::Replayed))
        ));
        let revoke = Command::RevokeSigningKey(crate::event::SigningKeyRevocation {
            actor: gp.id.clone(),
            key_id: ElementId::parse("his-1").unwrap(),
        });
        ledger
            .append(request(key_stream(), gp.clone(), revoke))
            .unwrap();
        let revoked = append(&signed(now, "c"));
        assert!(
            matches!(
                revoked,
                Err(Error::Signature(SignatureProblem::Revoked { .. }))
            ),
            "{revoked:?}"
        );
    }
}
