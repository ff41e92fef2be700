//! The evidence a client checks for itself: Merkle inclusion and consistency proofs (RFC 9162,
//! SHA-256, hex), and their queries.
//!
//! Ledger positions start at 1, the tree's leaf indices at 0: a proof names both.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use careledger_core::merkle::{event_leaf, ConsistencyProof, InclusionProof, TreeHash};

use super::scalar::{HashHex, TreeHashHex};

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
