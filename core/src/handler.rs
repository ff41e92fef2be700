//! The command handler: turns an append request into records on the event log.
//!
//! It checks a request (size, idempotency key, clinical times), the expected revision and a
//! retried request's fingerprint, folds the patient's state from the log and asks
//! [`crate::decide::decide`] about each command, and hands the records of what was decided to
//! the log ([`crate::log`]) to be numbered, linked and made durable. It keeps each patient's
//! folded state between appends, under the log's writer lock, so that folding, numbering and
//! staging are one critical section.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, IdSource};
use crate::decide::{decide, PatientState, Policy, Warning};
use crate::error::{Error, InvalidInput, RejectionCode, Result, StorageError};
use crate::event::Command;
use crate::ids::{PatientId, Text, Uid};
use crate::log::{EventLog, Writer};
use crate::record::{
    encode_record, Actor, Hash, Record, RecordedEvent, Timestamp, RECORD_FORMAT_VERSION,
};
use crate::signed_request::{SignatureProblem, SignedRequest, MAX_CREATED_SKEW_SECONDS};
use crate::signing_keys;
use crate::timing::{self, Phase};

/// Most commands accepted in one append.
pub const MAX_BATCH: usize = 1000;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// How far in the future an `occurred_at` may lie (clock skew between systems), in minutes.
pub const MAX_FUTURE_MINUTES: i64 = 10;

/// What the writer expects the patient's stream to be at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedRevision {
    /// No check.
    Any,
    /// The patient has no events yet.
    NoStream,
    /// The stream is at exactly this revision (its number of events).
    Exact(u64),
}

impl std::fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedRevision::Any => f.write_str("any revision"),
            ExpectedRevision::NoStream => f.write_str("no stream"),
            ExpectedRevision::Exact(n) => write!(f, "revision {n}"),
        }
    }
}

/// One command with the clinician's time and reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submission {
    /// What to do.
    pub command: Command,
    /// When it happened (clinician's word); defaults to the recording time when `None`.
    pub occurred_at: Option<Timestamp>,
    /// Why.
    pub reason: Text,
}

/// A request to append commands to one patient's stream, atomically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendRequest {
    /// The patient.
    pub patient: PatientId,
    /// The expected revision of the stream.
    pub expected: ExpectedRevision,
    /// Who appends.
    pub actor: Actor,
    /// The commands, in order; 1 to [`MAX_BATCH`].
    pub submissions: Vec<Submission>,
    /// A key that makes retries safe: the same key with the same content writes once.
    pub idempotency_key: Option<String>,
    /// Groups this append with others of one workflow; random when `None`.
    pub correlation_id: Option<Uid>,
    /// What caused this append, if anything.
    pub causation_id: Option<Uid>,
}

/// Where one appended event landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appended {
    /// Global position.
    pub position: u64,
    /// Revision in the patient's stream.
    pub revision: u64,
    /// Event id.
    pub event_id: Uid,
    /// Hash.
    pub hash: Hash,
}

/// The result of a durable append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The events written, in order (one command may record more than one event).
    pub events: Vec<Appended>,
    /// The stream's revision after the append.
    pub revision: u64,
    /// Warnings for the writer, such as duplicate lab work.
    pub warnings: Vec<Warning>,
    /// True when an earlier append with the same idempotency key was returned and nothing written.
    pub replayed: bool,
}

/// The patients' states folded so far, kept by the writer between appends.
pub(crate) type PatientStates = HashMap<PatientId, PatientState>;

/// The event log as the command handler uses it.
pub(crate) type Log = EventLog<PatientStates>;

/// Handles append requests against the log.
pub(crate) struct CommandHandler {
    policy: Policy,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdSource>,
}

impl CommandHandler {
    /// A handler applying the rules' settings `policy`, recording the time of `clock` and
    /// naming events with `ids`.
    pub(crate) fn new(policy: Policy, clock: Arc<dyn Clock>, ids: Arc<dyn IdSource>) -> Self {
        Self { policy, clock, ids }
    }

    /// Appends the request's commands atomically and returns once they are durable. With
    /// `signed`, the client system's signed request that carried the commands: it is checked
    /// against the key stream and the clock, stored with the events, and each event's record
    /// names its hash.
    pub(crate) fn append(
        &self,
        log: &Log,
        request: AppendRequest,
        signed: Option<&SignedRequest>,
    ) -> Result<AppendOutcome> {
        check_request(&request)?;
        let fingerprint = request
            .idempotency_key
            .as_ref()
            .map(|_| fingerprint(&request));
        let committing = log.committing();
        let (outcome, last_position, epoch) = {
            let waiting = timing::start(Phase::WriterLock);
            let (mut writer, epoch) = log.lock_writer()?;
            drop(waiting);
            let _deciding = timing::start(Phase::Decide);
            if let (Some(key), Some(print)) = (&request.idempotency_key, &fingerprint) {
                if let Some(value) = stored_idempotency(log, &writer.tail, &request, key, print)? {
                    // A retry is answered only to whoever may still give its commands: a
                    // member removed since gets the refusal, not the earlier answer.
                    permit_first(log, &mut writer, &request, self.clock.now())?;
                    drop(writer);
                    drop(committing);
                    return replay(log, key, print, &value, epoch);
                }
            }
            let signed = match signed {
                Some(signed) => Some(self.check_signed(log, &mut writer, &request, signed)?),
                None => None,
            };
            let outcome = self.append_locked(
                log,
                &mut writer,
                &request,
                fingerprint.as_ref(),
                signed,
                epoch,
            )?;
            (outcome, writer.tail.head().position, epoch)
        };
        drop(committing);
        let _durable = timing::start(Phase::Durable);
        log.make_durable(last_position, epoch)?;
        Ok(outcome)
    }

    /// Checks a signed request under the writer lock (so that two copies of one request cannot
    /// both pass the replay check) and returns its stored bytes and their hash: the key is
    /// registered for the request's actor and not revoked, the signature verifies, `created` is
    /// within [`MAX_CREATED_SKEW_SECONDS`] of the ledger's clock, and no request with the same
    /// bytes was stored before.
    fn check_signed(
        &self,
        log: &Log,
        writer: &mut Writer<PatientStates>,
        request: &AppendRequest,
        signed: &SignedRequest,
    ) -> Result<(Hash, Vec<u8>)> {
        let stream = signing_keys::key_stream();
        let keys = take_state(log, writer, &stream)?;
        let found = keys.keys().get(&request.actor.id, &signed.key_id).cloned();
        writer.cache.insert(stream, keys);
        let key = found.ok_or_else(|| SignatureProblem::UnknownKey {
            actor: request.actor.id.clone(),
            key_id: signed.key_id.to_string(),
        })?;
        if let Some(position) = key.revoked_at {
            return Err(SignatureProblem::Revoked {
                actor: request.actor.id.clone(),
                key_id: signed.key_id.clone(),
                position,
            }
            .into());
        }
        if !signed.verifies_under(&key.key.public_key) {
            return Err(SignatureProblem::Invalid {
                key_id: signed.key_id.clone(),
            }
            .into());
        }
        let now = self.clock.now().micros().div_euclid(1_000_000);
        if (signed.created - now).abs() > MAX_CREATED_SKEW_SECONDS {
            return Err(SignatureProblem::Stale {
                created: signed.created,
                now,
            }
            .into());
        }
        let bytes = signed.encode()?;
        let hash = SignedRequest::hash_of(&bytes);
        if log.has_signed_request(&writer.tail, &hash)? {
            return Err(SignatureProblem::Replayed.into());
        }
        Ok((hash, bytes))
    }

    fn append_locked(
        &self,
        log: &Log,
        writer: &mut Writer<PatientStates>,
        request: &AppendRequest,
        fingerprint: Option<&Hash>,
        signed: Option<(Hash, Vec<u8>)>,
        epoch: u64,
    ) -> Result<AppendOutcome> {
        let mut state = take_state(log, writer, &request.patient)?;
        let before = state.revision();
        let result = self.decide_and_stage(writer, request, fingerprint, signed, &mut state, epoch);
        // The state goes back unless a failed request had already folded some of its events
        // into it; then it is folded again from storage on next use.
        if result.is_ok() || state.revision() == before {
            writer.cache.insert(request.patient.clone(), state);
        }
        result
    }

    /// Decides each command against the patient's state, folding what it decided in, and
    /// stages the records of all of them, or none.
    fn decide_and_stage(
        &self,
        writer: &mut Writer<PatientStates>,
        request: &AppendRequest,
        fingerprint: Option<&Hash>,
        signed: Option<(Hash, Vec<u8>)>,
        state: &mut PatientState,
        epoch: u64,
    ) -> Result<AppendOutcome> {
        let recorded_at = self.clock.now();
        // Permission before the revision: an outsider learns nothing of the record.
        if let Some(first) = request.submissions.first() {
            crate::decide::permit(state, &request.actor, &first.command, recorded_at)?;
        }
        check_expected(&request.patient, request.expected, state.revision())?;
        let correlation_id = (request.correlation_id).unwrap_or_else(|| self.ids.next_id());
        let mut pending = writer.tail.begin();
        let mut appended = Vec::new();
        let mut warnings = Vec::new();
        for submission in &request.submissions {
            let occurred_at = submission.occurred_at.unwrap_or(recorded_at);
            check_occurred_at(occurred_at, recorded_at)?;
            if request.actor.role == crate::role::Role::CareGroupAdmin
                && submission.reason.is_empty()
            {
                return Err(crate::error::Rejection::new(
                    RejectionCode::ReasonRequired,
                    "a care-group administrator's correction states its reason (\"reason\")",
                )
                .into());
            }
            if matches!(submission.command, Command::BreakGlass(_)) && submission.reason.is_empty()
            {
                return Err(crate::error::Rejection::new(
                    RejectionCode::ReasonRequired,
                    "breaking the glass states its reason (\"reason\"): the acute need, as the \
                     care team and the auditor will read it",
                )
                .into());
            }
            let decision = decide(
                state,
                &self.policy,
                &request.actor,
                &submission.command,
                occurred_at,
                recorded_at,
            )?;
            warnings.extend(decision.warnings);
            for event in decision.events {
                let record = Record {
                    patient: request.patient.clone(),
                    revision: state.revision() + 1,
                    event_id: self.ids.next_id(),
                    recorded_at,
                    occurred_at,
                    actor: request.actor.clone(),
                    reason: submission.reason.clone(),
                    correlation_id,
                    causation_id: request.causation_id,
                    idempotency_key: request.idempotency_key.clone(),
                    signed_request: signed.as_ref().map(|(hash, _)| *hash),
                    event,
                };
                let encoding = timing::start(Phase::Encode);
                let bytes = encode_record(&record)?;
                let linked = pending.link(&request.patient, record.revision, &bytes);
                drop(encoding);
                appended.push(Appended {
                    position: linked.position,
                    revision: record.revision,
                    event_id: record.event_id,
                    hash: linked.hash,
                });
                state.apply(&RecordedEvent {
                    position: linked.position,
                    format_version: RECORD_FORMAT_VERSION,
                    prev_hash: linked.prev_hash,
                    hash: linked.hash,
                    record,
                });
            }
        }
        if let (Some(key), Some(print)) = (&request.idempotency_key, fingerprint) {
            pending.remember(
                &scoped_idempotency_key(request, key),
                idempotency_value(print, &appended),
            );
        }
        if let Some((hash, bytes)) = signed {
            pending.keep_signed_request(hash, bytes);
        }
        writer.tail.stage(pending, epoch);
        Ok(AppendOutcome {
            events: appended,
            revision: state.revision(),
            warnings,
            replayed: false,
        })
    }
}

/// Takes the patient's state out of the writer's cache (folding it from the log when absent),
/// so that an append works on it in place instead of on a copy.
fn take_state(
    log: &Log,
    writer: &mut Writer<PatientStates>,
    patient: &PatientId,
) -> Result<PatientState> {
    if let Some(state) = writer.cache.remove(patient) {
        return Ok(state);
    }
    Ok(fold(&log.writer_stream(&mut writer.tail, patient)?))
}

/// The state folded from a patient's recorded events, in revision order.
pub(crate) fn fold(events: &[RecordedEvent]) -> PatientState {
    let mut state = PatientState::default();
    for recorded in events {
        state.apply(recorded);
    }
    state
}

/// Refuses a request whose first command its actor may not give on the patient's record as it
/// stands (`decide::permit`), folding the state under the writer lock.
fn permit_first(
    log: &Log,
    writer: &mut Writer<PatientStates>,
    request: &AppendRequest,
    now: Timestamp,
) -> Result<()> {
    let Some(first) = request.submissions.first() else {
        return Ok(());
    };
    let state = take_state(log, writer, &request.patient)?;
    let permitted = crate::decide::permit(&state, &request.actor, &first.command, now);
    writer.cache.insert(request.patient.clone(), state);
    Ok(permitted?)
}

/// The idempotency entry of an earlier request under the same key, by the same actor for the
/// same patient. Entries written before keys were scoped are stored under the bare key; one of
/// those counts only when its fingerprint, which covers the actor and the patient, is this
/// request's (otherwise it was someone else's request, which no longer conflicts).
fn stored_idempotency(
    log: &Log,
    tail: &crate::log::Tail,
    request: &AppendRequest,
    key: &str,
    print: &Hash,
) -> Result<Option<Vec<u8>>> {
    if let Some(value) = log.idempotency(tail, &scoped_idempotency_key(request, key))? {
        return Ok(Some(value));
    }
    Ok(log
        .idempotency(tail, key.as_bytes())?
        .filter(|value| value.get(..32) == Some(&print.0[..])))
}

/// The stored key of an idempotency key: scoped to the actor and the patient, so that one
/// client's keys neither answer nor block another's. Ids hold no NUL byte.
fn scoped_idempotency_key(request: &AppendRequest, key: &str) -> Vec<u8> {
    let actor = request.actor.id.as_str().as_bytes();
    let patient = request.patient.as_str().as_bytes();
    let mut scoped = Vec::with_capacity(actor.len() + patient.len() + key.len() + 2);
    scoped.extend_from_slice(actor);
    scoped.push(0);
    scoped.extend_from_slice(patient);
    scoped.push(0);
    scoped.extend_from_slice(key.as_bytes());
    scoped
}

/// Answers a retry of the append that wrote or staged `stored` (the idempotency entry)
/// in `epoch`, once that append is durable.
fn replay(log: &Log, key: &str, print: &Hash, stored: &[u8], epoch: u64) -> Result<AppendOutcome> {
    let (stored_print, positions) = parse_idempotency_value(stored).ok_or_else(|| {
        StorageError::corrupt(format!("idempotency entry for {key:?} is malformed"))
    })?;
    if stored_print != *print {
        return Err(Error::IdempotencyMismatch {
            key: key.to_owned(),
        });
    }
    let last = positions.last().copied().unwrap_or(0);
    log.make_durable(last, epoch)?;
    let mut events = Vec::with_capacity(positions.len());
    let mut revision = 0;
    for position in positions {
        let recorded = log.read_position(position)?;
        revision = recorded.record.revision;
        events.push(Appended {
            position,
            revision,
            event_id: recorded.record.event_id,
            hash: recorded.hash,
        });
    }
    Ok(AppendOutcome {
        events,
        revision,
        warnings: vec![],
        replayed: true,
    })
}

fn check_request(request: &AppendRequest) -> Result<()> {
    let key_stream = signing_keys::is_key_stream(&request.patient);
    for submission in &request.submissions {
        if submission.command.is_key_command() != key_stream {
            let detail = if key_stream {
                format!(
                    "{} is the ledger's stream of signing keys, not a patient: it takes only \
                     register_signing_key and revoke_signing_key",
                    signing_keys::KEY_STREAM
                )
            } else {
                format!(
                    "{} is recorded in the ledger's key stream, not in a patient's: register \
                     keys with POST /actors/me/keys or `careledger keys register`",
                    submission.command.kind()
                )
            };
            return Err(InvalidInput::new("patient", detail).into());
        }
    }
    let n = request.submissions.len();
    if n == 0 || n > MAX_BATCH {
        return Err(InvalidInput::new(
            "events",
            format!("an append holds 1 to {MAX_BATCH} commands, got {n}"),
        )
        .into());
    }
    if let Some(key) = &request.idempotency_key {
        if key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY_LEN
            || key.chars().any(char::is_control)
        {
            return Err(InvalidInput::new(
                "idempotency key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable characters"),
            )
            .into());
        }
    }
    Ok(())
}

fn check_expected(patient: &PatientId, expected: ExpectedRevision, actual: u64) -> Result<()> {
    let ok = match expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => actual == 0,
        ExpectedRevision::Exact(n) => actual == n,
    };
    if ok {
        return Ok(());
    }
    Err(Error::Conflict {
        patient: patient.to_string(),
        expected: expected.to_string(),
        actual: if actual == 0 {
            "no stream".into()
        } else {
            format!("revision {actual}")
        },
    })
}

/// The earliest `occurred_at` accepted: 1900-01-01T00:00:00Z, in microseconds.
const EARLIEST_OCCURRED_AT_MICROS: i64 = -2_208_988_800_000_000;

fn check_occurred_at(occurred_at: Timestamp, recorded_at: Timestamp) -> Result<()> {
    if occurred_at.micros() < EARLIEST_OCCURRED_AT_MICROS {
        return Err(InvalidInput::new(
            "occurred_at",
            format!("{occurred_at} lies before 1900; give the time the fact happened"),
        )
        .into());
    }
    let limit = recorded_at.micros() + MAX_FUTURE_MINUTES * 60_000_000;
    if occurred_at.micros() > limit {
        return Err(InvalidInput::new(
            "occurred_at",
            format!("{occurred_at} lies in the future; give the time the fact happened"),
        )
        .into());
    }
    Ok(())
}

/// A hash of what an idempotent request asks for, to tell a retry from a different request.
fn fingerprint(request: &AppendRequest) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"careledger/idempotency/v1\0");
    let content = (
        &request.patient,
        &request.expected,
        &request.actor,
        &request.submissions,
    );
    match bincode::serde::encode_to_vec(content, bincode::config::standard()) {
        Ok(bytes) => hasher.update(&bytes),
        // Encoding plain data cannot fail; fall back to the debug form rather than panic.
        Err(_) => hasher.update(format!("{content:?}").as_bytes()),
    };
    Hash(*hasher.finalize().as_bytes())
}

/// The idempotency entry of an append: its request's fingerprint and the positions it wrote.
fn idempotency_value(print: &Hash, appended: &[Appended]) -> Vec<u8> {
    let mut value = Vec::with_capacity(32 + 8 * appended.len());
    value.extend_from_slice(&print.0);
    for a in appended {
        value.extend_from_slice(&a.position.to_be_bytes());
    }
    value
}

pub(crate) fn parse_idempotency_value(value: &[u8]) -> Option<(Hash, Vec<u64>)> {
    if value.len() < 32 || !(value.len() - 32).is_multiple_of(8) {
        return None;
    }
    let print = Hash(value[..32].try_into().ok()?);
    let positions = value[32..]
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
        .collect();
    Some((print, positions))
}
