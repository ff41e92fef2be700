//! One patient's history as evidence: an export holds the patient's stored frames exactly as
//! stored, an inclusion proof of each against one signed checkpoint, and the proof from the
//! checkpoint's heads map that no later event of the patient is left out; [`verify`] checks it
//! all with nothing but the log's verifier key (and the witnesses' keys, when named). The file
//! format is specified in `docs/hash-format.md`, "Exports".
//!
//! [`Export`] is the bundle's shape for serde; the front ends write it as JSON (binary fields in
//! standard base64). What is left out of an export of one patient is every other patient's
//! events: of them it shows only hashes (the Merkle paths, and the keys and commitments of the
//! two neighbouring leaves of the heads tree).

use serde::{Deserialize, Serialize};

use crate::chain::Frame;
use crate::checkpoint::Checkpoint;
use crate::error::Error;
use crate::heads::{
    HeadKey, HeadProof, HeadProofError, HeadsLine, HeadsMap, LeafProof, PatientHead,
};
use crate::ids::PatientId;
use crate::ledger::Ledger;
use crate::merkle::{event_leaf, verify_inclusion, TreeHash};
use crate::note::{Note, NoteError, VerifierKey, COSIGNATURE_V1};
use crate::record::{decode_record, Hash, RecordedEvent};
use crate::signed_request::{SignedRequest, MAX_CREATED_SKEW_SECONDS};
use crate::signing_keys::{self, KeyRegistry, RegisteredKey};

/// The `format` of an export file.
pub const FORMAT: &str = "careledger-export";
/// The `version` of the export format this build writes when the bundle carries signed
/// requests or key events; it reads this one and [`VERSION_1`].
pub const VERSION: u32 = 2;
/// The first version, still written when a bundle carries no signed request and no key event
/// (its shape is then the first version's), and still read.
pub const VERSION_1: u32 = 1;

/// One patient's history with the proofs that make it evidence (`docs/hash-format.md`,
/// "Exports").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Export {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format's version: [`VERSION`].
    pub version: u32,
    /// The patient's id, as every record of the export names it.
    pub patient: String,
    /// The signed checkpoint every proof is against: the C2SP signed note as the log stored it,
    /// with whatever cosignatures it carries.
    pub checkpoint: String,
    /// Every event of the patient in the checkpoint's tree, in position order.
    pub events: Vec<ExportedEvent>,
    /// That the last event is the patient's last in the checkpoint's tree; `None` when the
    /// checkpoint carries no heads map (signed before it existed): the tail is then unproven.
    pub heads: Option<ExportedHeads>,
    /// The signed requests the events name (`signed_request`), as stored (version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signed_requests: Vec<ExportedSignedRequest>,
    /// The key stream's events about the actors of the patient's events, in position order,
    /// each with its inclusion path against the same checkpoint (version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<ExportedEvent>,
}

/// A signed request as stored: the bytes whose BLAKE3 hash a record's `signed_request` holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedSignedRequest {
    /// The stored bytes ([`SignedRequest`]'s encoding).
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
}

/// One event: its position, its frame exactly as stored, and its inclusion path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedEvent {
    /// The event's position (leaf index `position − 1`).
    pub position: u64,
    /// The stored frame: the bytes whose BLAKE3 hash (with the position) is the event's hash.
    #[serde(with = "base64_bytes")]
    pub frame: Vec<u8>,
    /// The RFC 9162 inclusion path of the event in the checkpoint's tree.
    #[serde(with = "base64_hashes")]
    pub inclusion: Vec<TreeHash>,
}

/// The patient's leaf of the heads tree (made by the verifier from the last event) and its two
/// neighbours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedHeads {
    /// The patient's leaf index.
    pub index: u64,
    /// Its inclusion path in the heads tree.
    #[serde(with = "base64_hashes")]
    pub inclusion: Vec<TreeHash>,
    /// The leaf before it, unless it is the first.
    pub left: Option<ExportedLeaf>,
    /// The leaf after it, unless it is the last.
    pub right: Option<ExportedLeaf>,
}

/// A neighbouring leaf of the heads tree: its key and commitment (hashes only) and its path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedLeaf {
    /// Its index.
    pub index: u64,
    /// Its key: a hash of another patient's id.
    #[serde(with = "base64_32")]
    pub key: [u8; 32],
    /// Its head's commitment: a hash.
    #[serde(with = "base64_32")]
    pub commitment: [u8; 32],
    /// Its inclusion path in the heads tree.
    #[serde(with = "base64_hashes")]
    pub inclusion: Vec<TreeHash>,
}

impl From<LeafProof> for ExportedLeaf {
    fn from(proof: LeafProof) -> Self {
        Self {
            index: proof.index,
            key: proof.key.0,
            commitment: proof.commitment,
            inclusion: proof.path,
        }
    }
}

impl From<&ExportedLeaf> for LeafProof {
    fn from(leaf: &ExportedLeaf) -> Self {
        Self {
            index: leaf.index,
            key: HeadKey(leaf.key),
            commitment: leaf.commitment,
            path: leaf.inclusion.clone(),
        }
    }
}

/// Why an export cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The checkpoint note is malformed (a damaged checkpoint file).
    #[error("the checkpoint is malformed: {0}")]
    Checkpoint(#[from] NoteError),
    /// The patient has no events in the ledger.
    #[error("the ledger holds no events of patient {0}")]
    NoEvents(String),
    /// The checkpoint does not reach the patient's last event: an export proves every event
    /// against one checkpoint, so it waits for the next (the caller's to do).
    #[error("the latest checkpoint (tree size {size}) does not cover patient {patient}'s last event (position {position}); wait for the next checkpoint (a running server signs one after --checkpoint-every-events events or --checkpoint-every-secs seconds, and when it stops) and export again")]
    NotCovered {
        /// The patient.
        patient: String,
        /// The checkpoint's tree size.
        size: u64,
        /// The patient's last durable event.
        position: u64,
    },
    /// The checkpoint is not of this ledger, or the ledger changed below it.
    #[error("the checkpoint (tree size {size}) does not match this ledger: {detail}")]
    NotThisLedger {
        /// The checkpoint's tree size.
        size: u64,
        /// What differs.
        detail: String,
    },
    /// The heads map the ledger gives differs from the one the checkpoint signed.
    #[error("the heads map recomputed from the ledger ({computed}) is not the one the checkpoint signed ({signed}); run `careledger verify`")]
    HeadsDiffer {
        /// The signed line.
        signed: String,
        /// The recomputed line.
        computed: String,
    },
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(#[from] Error),
}

/// The export of `patient`'s history against the signed checkpoint `checkpoint` (a note as
/// the log stored it: `<data>/checkpoint`). Refused when the checkpoint does not cover the
/// patient's last durable event, or is not of this ledger. Reads the patient's frames, one
/// inclusion path per event and, when the checkpoint carries a heads map, every event up to
/// the checkpoint (to prove the patient's head in it).
pub fn export_patient(
    ledger: &Ledger,
    patient: &PatientId,
    checkpoint: &str,
) -> Result<Export, ExportError> {
    let note = Note::parse(checkpoint)?;
    let (signed, extensions) = Checkpoint::parse_text(note.text())?;
    let heads_line = HeadsLine::find(&extensions).map_err(NoteError::Malformed)?;
    let size = signed.size();
    let frames = patient_frames(ledger, patient)?;
    let Some(&(last, _)) = frames.last() else {
        return Err(ExportError::NoEvents(patient.to_string()));
    };
    if last > size {
        return Err(ExportError::NotCovered {
            patient: patient.to_string(),
            size,
            position: last,
        });
    }
    let root = ledger
        .tree_head(size)
        .map_err(|e| ExportError::NotThisLedger {
            size,
            detail: e.to_string(),
        })?
        .root;
    if root != signed.root() {
        return Err(ExportError::NotThisLedger {
            size,
            detail: format!(
                "the ledger's root at that size is {root}, the checkpoint's {}",
                signed.root()
            ),
        });
    }
    let mut events = Vec::with_capacity(frames.len());
    for (position, frame) in frames {
        let inclusion = ledger.inclusion_proof(position, size)?.path;
        events.push(ExportedEvent {
            position,
            frame,
            inclusion,
        });
    }
    let heads = match heads_line {
        Some(line) => Some(heads_proof(ledger, patient, size, &line)?),
        None => None,
    };
    let (signed_requests, keys) = signatures(ledger, &events, size)?;
    Ok(Export {
        format: FORMAT.to_owned(),
        version: if signed_requests.is_empty() && keys.is_empty() {
            VERSION_1
        } else {
            VERSION
        },
        patient: patient.to_string(),
        checkpoint: checkpoint.to_owned(),
        events,
        heads,
        signed_requests,
        keys,
    })
}

/// The signed requests the events name, and the key stream's events (up to the checkpoint's
/// `size`) about the actors who wrote them.
fn signatures(
    ledger: &Ledger,
    events: &[ExportedEvent],
    size: u64,
) -> Result<(Vec<ExportedSignedRequest>, Vec<ExportedEvent>), ExportError> {
    let mut hashes = Vec::new();
    let mut actors = std::collections::BTreeSet::new();
    for event in events {
        let Some(frame) = Frame::parse(&event.frame) else {
            continue;
        };
        let record = decode_record(event.position, frame.format_version, frame.record)?;
        actors.insert(record.actor.id.clone());
        if let Some(hash) = record.signed_request {
            if !hashes.contains(&hash) {
                hashes.push(hash);
            }
        }
    }
    let mut signed_requests = Vec::with_capacity(hashes.len());
    for hash in hashes {
        let bytes = ledger.signed_request(&hash)?.ok_or_else(|| {
            Error::from(crate::StorageError::corrupt(format!(
                "the signed request {hash} an event names is not stored"
            )))
        })?;
        signed_requests.push(ExportedSignedRequest { bytes });
    }
    let mut keys = Vec::new();
    for (position, frame) in patient_frames(ledger, &signing_keys::key_stream())? {
        if position > size {
            break;
        }
        let Some(parsed) = Frame::parse(&frame) else {
            continue;
        };
        let record = decode_record(position, parsed.format_version, parsed.record)?;
        let about = match &record.event {
            crate::event::Event::SigningKeyRegistered(k) => &k.actor,
            crate::event::Event::SigningKeyRevoked(r) => &r.actor,
            _ => continue,
        };
        if actors.contains(about) {
            let inclusion = ledger.inclusion_proof(position, size)?.path;
            keys.push(ExportedEvent {
                position,
                frame,
                inclusion,
            });
        }
    }
    Ok((signed_requests, keys))
}

/// The patient's durable frames exactly as stored, with their positions, in order.
fn patient_frames(ledger: &Ledger, patient: &PatientId) -> Result<Vec<(u64, Vec<u8>)>, Error> {
    let durable = ledger.head().position;
    let storage = ledger.storage();
    let mut positions = storage.stream_positions(patient, 1, usize::MAX)?;
    positions.retain(|p| *p <= durable);
    let mut frames = Vec::with_capacity(positions.len());
    storage.frames_at(&positions, &mut |position, frame| {
        let frame = frame.ok_or_else(|| Error::Decode {
            position,
            detail: "no event is stored at this position".into(),
        })?;
        frames.push((position, frame.to_vec()));
        Ok(())
    })?;
    Ok(frames)
}

/// The patient's leaf and its neighbours in the heads map of the tree of `size`, which must be
/// the one `line` signed.
fn heads_proof(
    ledger: &Ledger,
    patient: &PatientId,
    size: u64,
    line: &HeadsLine,
) -> Result<ExportedHeads, ExportError> {
    let mut map = HeadsMap::build(ledger, size)?;
    let computed = map.line()?;
    if computed != *line {
        return Err(ExportError::HeadsDiffer {
            signed: line.to_line(),
            computed: computed.to_line(),
        });
    }
    let proof = map
        .proof(&HeadKey::of(patient))?
        .ok_or_else(|| ExportError::NoEvents(patient.to_string()))?;
    Ok(ExportedHeads {
        index: proof.leaf.index,
        inclusion: proof.leaf.path,
        left: proof.left.map(ExportedLeaf::from),
        right: proof.right.map(ExportedLeaf::from),
    })
}

/// Whether the export proves that nothing of the patient after its last event is left out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completeness {
    /// The last event is the patient's head in the checkpoint's heads map of `patients`
    /// patients: no event of the patient up to the checkpoint is left out.
    Proven {
        /// How many patients the heads map holds.
        patients: u64,
    },
    /// The checkpoint was signed before the heads map existed: events after the export's last
    /// may be left out.
    TailUnproven,
}

/// What a verified export shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedExport {
    /// The patient.
    pub patient: PatientId,
    /// The checkpoint: origin, tree size and root.
    pub checkpoint: Checkpoint,
    /// The named witnesses and the time each cosigned (seconds since 1970, UTC).
    pub cosigned: Vec<(String, u64)>,
    /// The events, decoded (format 1 records upcast), in position order.
    pub events: Vec<RecordedEvent>,
    /// Whether the tail is proven.
    pub completeness: Completeness,
    /// Per event, in the order of `events`: signed by which registered key, or unsigned.
    pub signatures: Vec<EventSignature>,
}

/// Whether an event came from a client system's signed request, checked offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventSignature {
    /// Its record names no signed request.
    Unsigned {
        /// True when its actor had a key registered (and not revoked) before it: an event in
        /// their name that their client system did not sign.
        actor_had_key: bool,
    },
    /// Its signed request is in the export, hashes to the record's `signed_request`, and its
    /// signature verifies under the actor's key registered before it and not revoked.
    Signed {
        /// The key that signed.
        key: Box<RegisteredKey>,
        /// The request.
        request: Box<SignedRequest>,
    },
}

/// What made an export fail verification: each names the first thing that failed, in one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExportProblem {
    /// Not an export of a format and version this build reads.
    #[error("not a careledger export: {0}")]
    Format(String),
    /// The patient id does not parse, or is not the one expected.
    #[error("patient: {0}")]
    Patient(String),
    /// The checkpoint note is malformed.
    #[error("the checkpoint is malformed: {0}")]
    Checkpoint(String),
    /// The checkpoint is not signed by the log key given (another log, a changed checkpoint).
    #[error("the checkpoint's log signature: {0}")]
    LogSignature(String),
    /// A witness named did not cosign the checkpoint, or its cosignature does not verify.
    #[error("witness {witness}: {problem}")]
    Witness {
        /// The witness's key name.
        witness: String,
        /// What is wrong.
        problem: String,
    },
    /// The export holds no events.
    #[error("the export holds no events")]
    NoEvents,
    /// A frame is malformed: too short, or of an unknown frame version.
    #[error("event at position {position}: the frame is malformed (too short or of an unknown frame version)")]
    Malformed {
        /// The position given for it.
        position: u64,
    },
    /// A frame's bytes do not hash to its stored hash: changed.
    #[error("event at position {position}: hash mismatch: the frame's bytes hash to {computed}, it says {stored} (the frame was changed, or is not at this position)")]
    HashMismatch {
        /// The position given for it.
        position: u64,
        /// The hash the frame says.
        stored: Hash,
        /// The hash of its bytes.
        computed: Hash,
    },
    /// A record does not decode.
    #[error("event at position {position}: undecodable record: {detail}")]
    Undecodable {
        /// The position.
        position: u64,
        /// What failed.
        detail: String,
    },
    /// An event of another patient.
    #[error("event at position {position} is of patient {found}, not {patient}: the export mixes in another patient's event")]
    OtherPatient {
        /// The position.
        position: u64,
        /// The patient the export is of.
        patient: String,
        /// The patient the record names.
        found: String,
    },
    /// The positions are not increasing: events reordered or repeated.
    #[error("event at position {position} follows position {previous}: events are out of order or repeated")]
    OutOfOrder {
        /// The position.
        position: u64,
        /// The one before it in the export.
        previous: u64,
    },
    /// A revision is not the one after the previous: an event missing, added or moved.
    #[error("revision out of sequence at position {position}: expected revision {expected}, the record has {found} (an event of the patient is missing, added or moved)")]
    RevisionGap {
        /// The position.
        position: u64,
        /// The revision expected.
        expected: u64,
        /// The revision recorded.
        found: u64,
    },
    /// Two events at consecutive positions whose frames are not linked.
    #[error("broken link at position {position}: its previous hash is not the hash of position {}", position - 1)]
    BrokenLink {
        /// The position.
        position: u64,
    },
    /// An event is not in the checkpoint's tree.
    #[error(
        "event at position {position} is not in the checkpoint's tree (size {size}): {problem}"
    )]
    NotIncluded {
        /// The position.
        position: u64,
        /// The checkpoint's tree size.
        size: u64,
        /// Why.
        problem: String,
    },
    /// The completeness proof fails: events after the export's last are left out, or the
    /// heads proof was changed.
    #[error("incomplete: the export's last event (revision {revision}, position {position}) is not the patient's last in the checkpoint's heads map, so events after it are left out or the heads proof was changed ({problem})")]
    Incomplete {
        /// The last revision in the export.
        revision: u64,
        /// Its position.
        position: u64,
        /// What failed.
        problem: String,
    },
    /// The heads proof is missing, or given for a checkpoint without a heads map.
    #[error("{0}")]
    Heads(String),
    /// An event of the key stream in the export fails: changed, not in the checkpoint's tree,
    /// or not a key event.
    #[error("key event at position {position}: {problem}")]
    KeyEvent {
        /// The position given for it.
        position: u64,
        /// What failed.
        problem: String,
    },
    /// An event's signed request is missing, changed, or does not verify.
    #[error("event at position {position}: signed request: {problem}")]
    SignedRequest {
        /// The event's position.
        position: u64,
        /// What failed.
        problem: String,
    },
}

/// Checks `export` offline: the checkpoint's signature by `log` and the cosignature of every
/// one of `witnesses`, every frame's hash, the patient's revisions gapless from 1 (each record
/// naming the patient), every inclusion proof against the checkpoint's root, and, when the
/// checkpoint carries a heads map, that the last event is the patient's head in it.
pub fn verify(
    export: &Export,
    log: &VerifierKey,
    witnesses: &[VerifierKey],
) -> Result<VerifiedExport, ExportProblem> {
    let carries_signatures = !export.signed_requests.is_empty() || !export.keys.is_empty();
    let known = match export.version {
        VERSION => true,
        VERSION_1 => !carries_signatures,
        _ => false,
    };
    if export.format != FORMAT || !known {
        return Err(ExportProblem::Format(format!(
            "format {:?} version {}{}, this build reads {FORMAT:?} versions {VERSION_1} and \
             {VERSION}",
            export.format,
            export.version,
            if carries_signatures {
                " with signed requests or key events"
            } else {
                ""
            },
        )));
    }
    let patient =
        PatientId::parse(&export.patient).map_err(|e| ExportProblem::Patient(e.to_string()))?;
    let note =
        Note::parse(&export.checkpoint).map_err(|e| ExportProblem::Checkpoint(e.to_string()))?;
    let text = note
        .verify(log)
        .map_err(|e| ExportProblem::LogSignature(log_problem(&e, log)))?;
    let (checkpoint, extensions) =
        Checkpoint::parse_text(text).map_err(|e| ExportProblem::Checkpoint(e.to_string()))?;
    if checkpoint.origin() != log.name() {
        return Err(ExportProblem::LogSignature(format!(
            "the checkpoint's origin {:?} is not the log key's name {:?}",
            checkpoint.origin(),
            log.name()
        )));
    }
    let heads_line = HeadsLine::find(&extensions).map_err(ExportProblem::Checkpoint)?;
    let cosigned = witnesses
        .iter()
        .map(|w| cosignature(&note, w).map(|at| (w.name().to_owned(), at)))
        .collect::<Result<Vec<_>, _>>()?;
    let events = verify_events(export, &patient, &checkpoint)?;
    let completeness = verify_tail(export, &patient, &events, heads_line)?;
    let registry = verify_keys(export, &checkpoint)?;
    let signatures = verify_signatures(export, &events, &registry)?;
    Ok(VerifiedExport {
        patient,
        checkpoint,
        cosigned,
        events,
        completeness,
        signatures,
    })
}

fn log_problem(e: &NoteError, log: &VerifierKey) -> String {
    match e {
        NoteError::NotSigned(_) => format!(
            "the checkpoint carries no signature by the log key {log} (an export of another log, or the wrong --key)"
        ),
        NoteError::BadSignature(_) => format!(
            "the signature by {} does not verify: the checkpoint was changed, or signed by another key of that name",
            log.name()
        ),
        other => other.to_string(),
    }
}

/// The time `witness` cosigned the checkpoint.
fn cosignature(note: &Note, witness: &VerifierKey) -> Result<u64, ExportProblem> {
    let problem = |problem: String| ExportProblem::Witness {
        witness: witness.name().to_owned(),
        problem,
    };
    if witness.kind() != COSIGNATURE_V1 {
        return Err(problem(
            "the key given is not a cosigner key (signature type 0x04)".into(),
        ));
    }
    let signature = note
        .signatures()
        .iter()
        .find(|s| s.is_by(witness))
        .ok_or_else(|| problem("the checkpoint carries no cosignature by this witness".into()))?;
    signature
        .verify_cosignature(witness, note.text())
        .map_err(|_| problem("its cosignature does not verify over the checkpoint".into()))
}

/// Every event: frame, hash, record, patient, revision, order, links and inclusion.
fn verify_events(
    export: &Export,
    patient: &PatientId,
    checkpoint: &Checkpoint,
) -> Result<Vec<RecordedEvent>, ExportProblem> {
    if export.events.is_empty() {
        return Err(ExportProblem::NoEvents);
    }
    // Order first: a swap shows as such, not as the revision gap it also makes.
    for pair in export.events.windows(2) {
        if pair[1].position <= pair[0].position {
            return Err(ExportProblem::OutOfOrder {
                position: pair[1].position,
                previous: pair[0].position,
            });
        }
    }
    let size = checkpoint.size();
    let mut events: Vec<RecordedEvent> = Vec::with_capacity(export.events.len());
    for (i, exported) in export.events.iter().enumerate() {
        let position = exported.position;
        let frame = Frame::parse(&exported.frame).ok_or(ExportProblem::Malformed { position })?;
        let computed = frame.computed_hash(position);
        if computed != frame.hash {
            return Err(ExportProblem::HashMismatch {
                position,
                stored: frame.hash,
                computed,
            });
        }
        let record = decode_record(position, frame.format_version, frame.record).map_err(|e| {
            ExportProblem::Undecodable {
                position,
                detail: e.to_string(),
            }
        })?;
        if record.patient != *patient {
            return Err(ExportProblem::OtherPatient {
                position,
                patient: patient.to_string(),
                found: record.patient.to_string(),
            });
        }
        if let Some(before) = events.last() {
            if position == before.position + 1 && frame.prev_hash != before.hash {
                return Err(ExportProblem::BrokenLink { position });
            }
        }
        let expected = i as u64 + 1;
        if record.revision != expected {
            return Err(ExportProblem::RevisionGap {
                position,
                expected,
                found: record.revision,
            });
        }
        let not_included = |problem: String| ExportProblem::NotIncluded {
            position,
            size,
            problem,
        };
        if position == 0 || position > size {
            return Err(not_included(format!(
                "position {position} lies outside positions 1 to {size}"
            )));
        }
        verify_inclusion(
            &event_leaf(&frame.hash),
            position - 1,
            size,
            &exported.inclusion,
            &checkpoint.root(),
        )
        .map_err(|e| not_included(format!("the inclusion proof fails: {e}")))?;
        events.push(RecordedEvent {
            position,
            format_version: frame.format_version,
            prev_hash: frame.prev_hash,
            hash: frame.hash,
            record,
        });
    }
    Ok(events)
}

/// The key stream's events in the export: each frame's hash, its record a key event of the key
/// stream, positions increasing, and its inclusion in the checkpoint's tree; folded into the
/// registry they make.
fn verify_keys(export: &Export, checkpoint: &Checkpoint) -> Result<KeyRegistry, ExportProblem> {
    let mut registry = KeyRegistry::default();
    let size = checkpoint.size();
    let mut previous = 0;
    for exported in &export.keys {
        let position = exported.position;
        let problem = |problem: String| ExportProblem::KeyEvent { position, problem };
        if position <= previous {
            return Err(problem(format!(
                "follows position {previous}: key events are out of order or repeated"
            )));
        }
        previous = position;
        let frame = Frame::parse(&exported.frame)
            .ok_or_else(|| problem("the frame is malformed".into()))?;
        let computed = frame.computed_hash(position);
        if computed != frame.hash {
            return Err(problem(format!(
                "hash mismatch: the frame's bytes hash to {computed}, it says {} (the key event \
                 was changed)",
                frame.hash
            )));
        }
        let record = decode_record(position, frame.format_version, frame.record)
            .map_err(|e| problem(format!("undecodable record: {e}")))?;
        if !signing_keys::is_key_stream(&record.patient)
            || !matches!(
                record.event,
                crate::event::Event::SigningKeyRegistered(_)
                    | crate::event::Event::SigningKeyRevoked(_)
            )
        {
            return Err(problem("it is not a key event of the key stream".into()));
        }
        if position > size {
            return Err(problem(format!(
                "it lies outside the checkpoint's positions 1 to {size}"
            )));
        }
        verify_inclusion(
            &event_leaf(&frame.hash),
            position - 1,
            size,
            &exported.inclusion,
            &checkpoint.root(),
        )
        .map_err(|e| problem(format!("not in the checkpoint's tree: {e}")))?;
        registry.apply(position, &record);
    }
    Ok(registry)
}

/// Each event's signature: an event that names a signed request must have it in the export,
/// and it must verify under its actor's key registered before the event and not revoked, with
/// `created` within [`MAX_CREATED_SKEW_SECONDS`] of the event's recording time.
fn verify_signatures(
    export: &Export,
    events: &[RecordedEvent],
    registry: &KeyRegistry,
) -> Result<Vec<EventSignature>, ExportProblem> {
    let requests: Vec<(Hash, &[u8])> = (export.signed_requests.iter())
        .map(|r| (SignedRequest::hash_of(&r.bytes), r.bytes.as_slice()))
        .collect();
    let mut out = Vec::with_capacity(events.len());
    for event in events {
        let record = &event.record;
        let position = event.position;
        let Some(hash) = record.signed_request else {
            let actor_had_key = registry
                .iter()
                .any(|k| k.key.actor == record.actor.id && k.valid_at(position));
            out.push(EventSignature::Unsigned { actor_had_key });
            continue;
        };
        let problem = |problem: String| ExportProblem::SignedRequest { position, problem };
        let bytes = requests
            .iter()
            .find(|(h, _)| *h == hash)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                problem(format!(
                    "the record names signed request {hash}, which the export does not carry \
                     (left out, or changed so that it no longer hashes to it)"
                ))
            })?;
        let request = SignedRequest::decode(bytes)
            .map_err(|e| problem(format!("it does not decode: {e}")))?;
        let key = registry
            .get(&record.actor.id, &request.key_id)
            .ok_or_else(|| {
                problem(format!(
                    "it names key {} of {}, whose registration the export does not carry",
                    request.key_id, record.actor.id
                ))
            })?;
        if !key.valid_at(position) {
            return Err(problem(format!(
                "key {} of {} was not in use at this position (registered at {}, revoked at {:?})",
                request.key_id, record.actor.id, key.registered_at, key.revoked_at
            )));
        }
        if !request.verifies_under(&key.key.public_key) {
            return Err(problem(format!(
                "its signature does not verify under key {} of {}",
                request.key_id, record.actor.id
            )));
        }
        let recorded = record.recorded_at.micros().div_euclid(1_000_000);
        if (request.created - recorded).abs() > MAX_CREATED_SKEW_SECONDS {
            return Err(problem(format!(
                "it was created at {} (seconds since 1970), more than {MAX_CREATED_SKEW_SECONDS} \
                 s from the event's recording",
                request.created
            )));
        }
        out.push(EventSignature::Signed {
            key: Box::new(key.clone()),
            request: Box::new(request),
        });
    }
    Ok(out)
}

/// That the last event is the patient's head in the checkpoint's heads map.
fn verify_tail(
    export: &Export,
    patient: &PatientId,
    events: &[RecordedEvent],
    line: Option<HeadsLine>,
) -> Result<Completeness, ExportProblem> {
    let (line, heads) =
        match (line, &export.heads) {
            (None, None) => return Ok(Completeness::TailUnproven),
            (Some(line), Some(heads)) => (line, heads),
            (Some(_), None) => return Err(ExportProblem::Heads(
                "incomplete: the checkpoint commits to every patient's last event, and the export \
                 leaves out the proof of this patient's (\"heads\" is missing)"
                    .into(),
            )),
            (None, Some(_)) => return Err(ExportProblem::Heads(
                "the export carries a heads proof, and its checkpoint no heads map to prove it \
                 against"
                    .into(),
            )),
        };
    let Some(last) = events.last() else {
        return Err(ExportProblem::NoEvents);
    };
    let head = PatientHead {
        revision: last.record.revision,
        position: last.position,
        hash: last.hash,
    };
    let proof = HeadProof {
        leaf: LeafProof {
            index: heads.index,
            key: HeadKey::of(patient),
            commitment: head.commitment(),
            path: heads.inclusion.clone(),
        },
        left: heads.left.as_ref().map(LeafProof::from),
        right: heads.right.as_ref().map(LeafProof::from),
    };
    proof
        .verify(&HeadKey::of(patient), &head, &line)
        .map_err(|e| ExportProblem::Incomplete {
            revision: head.revision,
            position: head.position,
            problem: match e {
                HeadProofError::NotTheHead { problem, .. } => {
                    format!("its leaf does not prove against the heads root: {problem}")
                }
                other => other.to_string(),
            },
        })?;
    Ok(Completeness::Proven {
        patients: line.count,
    })
}

/// Serde for bytes as standard base64.
mod base64_bytes {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64
            .decode(text.as_bytes())
            .map_err(|_| serde::de::Error::custom("not standard base64"))
    }
}

/// Serde for a 32-byte value as standard base64.
mod base64_32 {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        super::base64_bytes::serialize(bytes, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        super::base64_bytes::deserialize(d)?
            .try_into()
            .map_err(|_| serde::de::Error::custom("a hash is 32 bytes"))
    }
}

/// Serde for a list of tree hashes, each as standard base64.
mod base64_hashes {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::merkle::TreeHash;

    pub fn serialize<S: Serializer>(hashes: &[TreeHash], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(hashes.len()))?;
        for hash in hashes {
            seq.serialize_element(&BASE64.encode(hash.0))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TreeHash>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts
            .iter()
            .map(|text| {
                BASE64
                    .decode(text.as_bytes())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .map(TreeHash)
                    .ok_or_else(|| {
                        serde::de::Error::custom("a hash is 32 bytes in standard base64")
                    })
            })
            .collect()
    }
}
