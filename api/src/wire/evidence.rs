//! The evidence a client checks for itself: Merkle inclusion and consistency proofs (RFC 9162,
//! SHA-256, hex), and their queries; the checkpoints of the event stream; one patient's export.
//!
//! Ledger positions start at 1, the tree's leaf indices at 0: a proof names both.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use careledger_core::export::{Export, ExportedLeaf};
use careledger_core::merkle::{event_leaf, ConsistencyProof, InclusionProof, TreeHash};

use super::scalar::{FrameBase64, Hash32Base64, HashHex, TreeHashHex};

/// `GET /proof/inclusion`: which event, in which tree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// The event's ledger position (from 1; its leaf index is `position - 1`).
    #[param(minimum = 1)]
    pub position: u64,
    /// The tree size the proof is for (the durable head when absent).
    #[param(minimum = 1)]
    pub tree_size: Option<u64>,
}

/// `GET /proof/consistency`: from which tree size to which.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The older tree's size (from 1; 0 proves nothing and is refused).
    #[param(minimum = 1)]
    pub first: u64,
    /// The newer tree's size (the durable head when absent); equal sizes give an empty proof.
    #[param(minimum = 1)]
    pub second: Option<u64>,
}

fn hexes(path: &[TreeHash]) -> Vec<String> {
    path.iter().map(TreeHash::to_hex).collect()
}

/// That an event is in a tree: recompute the root from the leaf hash and the audit path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct InclusionProofView {
    /// The event's ledger position (from 1).
    pub position: u64,
    /// Its leaf index (`position - 1`).
    pub leaf_index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The event's BLAKE3 hash, the leaf's data.
    #[schema(value_type = HashHex)]
    pub event_hash: String,
    /// SHA-256(0x00 ‖ event hash).
    #[schema(value_type = TreeHashHex)]
    pub leaf_hash: String,
    /// The tree's root hash.
    #[schema(value_type = TreeHashHex)]
    pub root: String,
    /// The audit path, from the leaf's sibling up.
    #[schema(value_type = Vec<TreeHashHex>)]
    pub path: Vec<String>,
}

impl InclusionProofView {
    /// The proof, with the root it leads to.
    pub fn new(proof: &InclusionProof, root: &TreeHash) -> Self {
        InclusionProofView {
            position: proof.position,
            leaf_index: proof.leaf_index,
            tree_size: proof.tree_size,
            event_hash: proof.event_hash.to_hex(),
            leaf_hash: event_leaf(&proof.event_hash).to_hex(),
            root: root.to_hex(),
            path: hexes(&proof.path),
        }
    }
}

/// That the newer tree extends the older one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConsistencyProofView {
    /// The older tree's size.
    pub first: u64,
    /// The newer tree's size.
    pub second: u64,
    /// The older tree's root hash.
    #[schema(value_type = TreeHashHex)]
    pub first_root: String,
    /// The newer tree's root hash.
    #[schema(value_type = TreeHashHex)]
    pub second_root: String,
    /// The proof's hashes (empty when the sizes are equal).
    #[schema(value_type = Vec<TreeHashHex>)]
    pub path: Vec<String>,
}

impl ConsistencyProofView {
    /// The proof, with both roots.
    pub fn new(proof: &ConsistencyProof, first_root: &TreeHash, second_root: &TreeHash) -> Self {
        ConsistencyProofView {
            first: proof.first,
            second: proof.second,
            first_root: first_root.to_hex(),
            second_root: second_root.to_hex(),
            path: hexes(&proof.path),
        }
    }
}

/// A signed checkpoint on the event stream (`event: checkpoint`): every checkpoint the log
/// signs, and the latest once when a subscriber connects. Keep them all: each later one must
/// extend the one before (`GET /proof/consistency`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CheckpointEventView {
    /// The log's origin (the checkpoint's first line).
    pub origin: String,
    /// The tree size: the checkpoint covers positions 1 to `tree_size`.
    pub tree_size: u64,
    /// The tree's root hash in hexadecimal.
    #[schema(value_type = TreeHashHex)]
    pub root: String,
    /// The tree's root hash in standard base64, as the note's third line writes it.
    #[schema(value_type = Hash32Base64)]
    pub root_base64: String,
    /// The whole signed note (C2SP signed note of a tlog-checkpoint, with the heads map's
    /// extension line): the log's signature and the witnesses' cosignatures known when it was
    /// sent (none yet for a checkpoint just signed; `GET /checkpoint` has those collected
    /// since).
    pub note: String,
}

impl CheckpointEventView {
    /// The checkpoint of `origin` at `tree_size` with `root`, signed as `note`.
    pub fn new(origin: &str, tree_size: u64, root: &TreeHash, note: &str) -> Self {
        CheckpointEventView {
            origin: origin.to_owned(),
            tree_size,
            root: root.to_hex(),
            root_base64: BASE64.encode(root.0),
            note: note.to_owned(),
        }
    }
}

fn base64s(path: &[TreeHash]) -> Vec<String> {
    path.iter().map(|h| BASE64.encode(h.0)).collect()
}

/// One patient's history as evidence (`GET /patients/{patient}/export`): the file `careledger
/// export` writes, format `careledger-export` version 1, or 2 with signed requests (`docs/hash-format.md`, "Exports").
/// Check it offline with `careledger verify-export FILE --key LOGKEY`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExportView {
    /// `careledger-export`.
    pub format: String,
    /// The format's version: 2 when it carries signed requests or key events, otherwise 1.
    pub version: u32,
    /// The patient's id, as every record in the file names it.
    pub patient: String,
    /// The signed checkpoint every proof is against, with the witnesses' cosignatures.
    pub checkpoint: String,
    /// Every event of the patient up to the checkpoint's tree size, in position order.
    pub events: Vec<ExportedEventView>,
    /// That the last event is the patient's last in the checkpoint's tree; `null` when the
    /// checkpoint carries no heads map.
    pub heads: Option<ExportedHeadsView>,
    /// Version 2: the signed requests the events name, as stored; absent when none is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signed_requests: Vec<ExportedSignedRequestView>,
    /// Version 2: the key stream's events of the actors involved, with their inclusion paths;
    /// absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<ExportedEventView>,
}

/// A signed request of an export: the stored bytes whose BLAKE3 hash a record names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExportedSignedRequestView {
    /// The stored bytes, standard base64 with padding.
    #[schema(value_type = FrameBase64)]
    pub bytes: String,
}

/// One event of an export: its position, its frame as stored, its inclusion path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExportedEventView {
    /// The event's position (leaf index `position - 1`).
    pub position: u64,
    /// The frame exactly as stored.
    #[schema(value_type = FrameBase64)]
    pub frame: String,
    /// The RFC 9162 inclusion path in the checkpoint's tree, from the leaf's sibling up.
    #[schema(value_type = Vec<Hash32Base64>)]
    pub inclusion: Vec<String>,
}

/// The heads proof of an export: the patient's leaf index, its path and its neighbours.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExportedHeadsView {
    /// The patient's leaf index in the heads tree.
    pub index: u64,
    /// Its inclusion path in the heads tree.
    #[schema(value_type = Vec<Hash32Base64>)]
    pub inclusion: Vec<String>,
    /// The leaf before it; `null` for the first.
    pub left: Option<ExportedLeafView>,
    /// The leaf after it; `null` for the last.
    pub right: Option<ExportedLeafView>,
}

/// A neighbouring leaf of the heads tree: hashes only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ExportedLeafView {
    /// Its index.
    pub index: u64,
    /// Its key: a hash of another patient's id.
    #[schema(value_type = Hash32Base64)]
    pub key: String,
    /// Its head's commitment.
    #[schema(value_type = Hash32Base64)]
    pub commitment: String,
    /// Its inclusion path in the heads tree.
    #[schema(value_type = Vec<Hash32Base64>)]
    pub inclusion: Vec<String>,
}

impl From<&ExportedLeaf> for ExportedLeafView {
    fn from(leaf: &ExportedLeaf) -> Self {
        ExportedLeafView {
            index: leaf.index,
            key: BASE64.encode(leaf.key),
            commitment: BASE64.encode(leaf.commitment),
            inclusion: base64s(&leaf.inclusion),
        }
    }
}

impl From<&careledger_core::export::ExportedEvent> for ExportedEventView {
    fn from(e: &careledger_core::export::ExportedEvent) -> Self {
        ExportedEventView {
            position: e.position,
            frame: BASE64.encode(&e.frame),
            inclusion: base64s(&e.inclusion),
        }
    }
}

impl From<&Export> for ExportView {
    fn from(export: &Export) -> Self {
        ExportView {
            format: export.format.clone(),
            version: export.version,
            patient: export.patient.clone(),
            checkpoint: export.checkpoint.clone(),
            events: export.events.iter().map(ExportedEventView::from).collect(),
            signed_requests: export
                .signed_requests
                .iter()
                .map(|r| ExportedSignedRequestView {
                    bytes: BASE64.encode(&r.bytes),
                })
                .collect(),
            keys: export.keys.iter().map(ExportedEventView::from).collect(),
            heads: export.heads.as_ref().map(|h| ExportedHeadsView {
                index: h.index,
                inclusion: base64s(&h.inclusion),
                left: h.left.as_ref().map(ExportedLeafView::from),
                right: h.right.as_ref().map(ExportedLeafView::from),
            }),
        }
    }
}
