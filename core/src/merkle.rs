//! The Merkle tree over the chain (RFC 6962 / RFC 9162 §2.1), its proofs and their verifiers.
//!
//! The leaves are the events' 32-byte BLAKE3 hashes, in position order; the tree hashes them with
//! SHA-256, as C2SP tlog-checkpoint requires, so that standard verifiers and witnesses work with
//! it: leaf hash = SHA-256(`0x00` ‖ event hash), node = SHA-256(`0x01` ‖ left ‖ right), and the
//! root of the empty tree is SHA-256 of nothing. The BLAKE3 chain stays as it is; the tree is a
//! second structure over the same hashes.
//!
//! **Positions and leaf indices:** ledger positions start at 1, the tree's leaf indices at 0:
//! the event at position *p* is leaf *p − 1*, and the tree of size *n* holds positions 1 to *n*.
//! The proof functions of this module speak leaf indices; [`Ledger::inclusion_proof`] takes a
//! position.
//!
//! The tree is maintained incrementally: the writer keeps its right edge ([`Frontier`]) and adds
//! the hash of every complete subtree of [`STORED_FROM_LEVEL`] or more levels to the batch of the
//! group commit that completes it, so the tree and the chain are written atomically together.
//! Subtrees below that level (up to 64 leaves, one aligned block) are hashed from the frames when
//! a proof needs them: every sled entry costs a group commit about as much as a frame group, and
//! storing every level would triple the entries it writes. A root at any size and any proof
//! then cost O(log n) reads (`docs/hash-format.md`, "The Merkle tree").

use std::cell::RefCell;
use std::fmt;

use sha2::{Digest, Sha256};

use crate::chain::Frame;
use crate::error::{Error, Result};
use crate::ledger::Ledger;
use crate::record::Hash;
use crate::storage::{Storage, WriteBatch};

/// The first byte hashed into a leaf hash.
pub const LEAF_PREFIX: u8 = 0x00;
/// The first byte hashed into an interior node's hash.
pub const NODE_PREFIX: u8 = 0x01;
/// The lowest level whose complete subtrees are stored (level 6: subtrees of 64 leaves). Lower
/// ones are hashed from the frames of their aligned block of 64 when needed.
pub const STORED_FROM_LEVEL: u8 = 6;
/// Most leaves whose nodes a catch-up writes in one batch.
const CATCH_UP_BATCH: u64 = 65_536;

/// A SHA-256 hash in the Merkle tree: a leaf hash, a node, or a root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TreeHash(pub [u8; 32]);

impl TreeHash {
    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits.
    pub fn from_hex(raw: &str) -> Option<Self> {
        let bytes = hex::decode(raw).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Display for TreeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for TreeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TreeHash({})", self.to_hex())
    }
}

/// The leaf hash of any leaf data: SHA-256(`0x00` ‖ data). The ledger's leaves are event hashes
/// ([`event_leaf`]).
pub fn leaf_hash(data: &[u8]) -> TreeHash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(data);
    TreeHash(hasher.finalize().into())
}

/// The leaf hash of an event: SHA-256(`0x00` ‖ its 32-byte BLAKE3 hash).
pub fn event_leaf(hash: &Hash) -> TreeHash {
    leaf_hash(&hash.0)
}

/// An interior node: SHA-256(`0x01` ‖ left ‖ right).
pub fn node_hash(left: &TreeHash, right: &TreeHash) -> TreeHash {
    let mut hasher = Sha256::new();
    hasher.update([NODE_PREFIX]);
    hasher.update(left.0);
    hasher.update(right.0);
    TreeHash(hasher.finalize().into())
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> TreeHash {
    TreeHash(Sha256::digest([]).into())
}

/// Why a proof cannot be made or does not verify. The request's fault, except
/// [`ProofError::RootMismatch`] and [`ProofError::WrongLength`], which say that a proof (or the
/// log that made it) is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Position 0 was asked for; positions start at 1.
    #[error("there is no position 0: ledger positions start at 1 (leaf index = position - 1)")]
    PositionZero,
    /// The position (or leaf) lies outside the tree.
    #[error("position {position} lies beyond the tree of size {tree_size}; ask for a tree size of at least {position}")]
    PositionBeyondTree {
        /// The position asked for (leaf index + 1).
        position: u64,
        /// The tree size asked for.
        tree_size: u64,
    },
    /// A consistency proof from the empty tree was asked for.
    #[error("a consistency proof from tree size 0 proves nothing (every tree extends the empty tree); give a first size from 1")]
    FirstSizeZero,
    /// The first tree is larger than the second.
    #[error("the first tree size {first} exceeds the second {second}; a tree is consistent only with trees at least as large")]
    FirstBeyondSecond {
        /// The first (older) tree size.
        first: u64,
        /// The second (newer) tree size.
        second: u64,
    },
    /// The tree size is beyond what is durable.
    #[error("tree size {tree_size} exceeds the ledger's durable size {durable}; ask for a size up to {durable}")]
    BeyondDurable {
        /// The tree size asked for.
        tree_size: u64,
        /// The ledger's durable size (its head position).
        durable: u64,
    },
    /// The proof has the wrong number of hashes for its sizes.
    #[error("the proof holds {got} hashes where one for these tree sizes holds {expected}")]
    WrongLength {
        /// How many a proof for these sizes holds.
        expected: usize,
        /// How many were given.
        got: usize,
    },
    /// The proof does not lead to the root hash it should.
    #[error("the proof does not lead to the expected root hash")]
    RootMismatch,
}

/// Where the hashes of complete subtrees come from: the stored tree, or an in-memory one.
pub trait NodeSource {
    /// The hash of the complete subtree at `level` (0 = leaves) and `index` (counted from the
    /// left, 0 first), covering leaf indices `index · 2^level` up to `(index + 1) · 2^level`.
    fn node(&self, level: u8, index: u64) -> Result<TreeHash>;
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[start:end]): the root of the leaves from index `start` (inclusive) to `end` (exclusive).
pub fn subtree_root(source: &dyn NodeSource, start: u64, end: u64) -> Result<TreeHash> {
    let n = end - start;
    if n == 0 {
        return Ok(empty_root());
    }
    if n.is_power_of_two() && start.is_multiple_of(n) {
        return source.node(n.trailing_zeros() as u8, start / n);
    }
    let k = split_point(n);
    let left = subtree_root(source, start, start + k)?;
    let right = subtree_root(source, start + k, end)?;
    Ok(node_hash(&left, &right))
}

/// The root hash of the tree of `size` leaves.
pub fn root(source: &dyn NodeSource, size: u64) -> Result<TreeHash> {
    subtree_root(source, 0, size)
}

/// The audit path of leaf `leaf_index` (0-based; position − 1) in the tree of `size` leaves,
/// RFC 9162 §2.1.3.1, from the leaf's sibling up to the root's child.
pub fn inclusion_path(
    source: &dyn NodeSource,
    leaf_index: u64,
    size: u64,
) -> Result<Vec<TreeHash>> {
    if leaf_index >= size {
        return Err(ProofError::PositionBeyondTree {
            position: leaf_index + 1,
            tree_size: size,
        }
        .into());
    }
    let mut path = Vec::new();
    path_of(source, leaf_index, 0, size, &mut path)?;
    Ok(path)
}

/// PATH(m, D[start:end]), `m` counted from `start`.
fn path_of(
    source: &dyn NodeSource,
    m: u64,
    start: u64,
    end: u64,
    path: &mut Vec<TreeHash>,
) -> Result<()> {
    let n = end - start;
    if n <= 1 {
        return Ok(());
    }
    let k = split_point(n);
    if m < k {
        path_of(source, m, start, start + k, path)?;
        path.push(subtree_root(source, start + k, end)?);
    } else {
        path_of(source, m - k, start + k, end, path)?;
        path.push(subtree_root(source, start, start + k)?);
    }
    Ok(())
}

/// The consistency proof from the tree of `first` leaves to the one of `second` leaves,
/// RFC 9162 §2.1.4.1. Empty when `first == second` (the trees are the same); an error when
/// `first` is 0 or larger than `second`.
pub fn consistency_path(source: &dyn NodeSource, first: u64, second: u64) -> Result<Vec<TreeHash>> {
    check_sizes(first, second)?;
    let mut path = Vec::new();
    if first < second {
        subproof(source, first, 0, second, true, &mut path)?;
    }
    Ok(path)
}

fn check_sizes(first: u64, second: u64) -> Result<(), ProofError> {
    if first == 0 {
        return Err(ProofError::FirstSizeZero);
    }
    if first > second {
        return Err(ProofError::FirstBeyondSecond { first, second });
    }
    Ok(())
}

/// SUBPROOF(m, D[start:end], b).
fn subproof(
    source: &dyn NodeSource,
    m: u64,
    start: u64,
    end: u64,
    whole: bool,
    path: &mut Vec<TreeHash>,
) -> Result<()> {
    let n = end - start;
    if m == n {
        if !whole {
            path.push(subtree_root(source, start, end)?);
        }
        return Ok(());
    }
    let k = split_point(n);
    if m <= k {
        subproof(source, m, start, start + k, whole, path)?;
        path.push(subtree_root(source, start + k, end)?);
    } else {
        subproof(source, m - k, start + k, end, false, path)?;
        path.push(subtree_root(source, start, start + k)?);
    }
    Ok(())
}

/// Checks an inclusion proof (RFC 9162 §2.1.3.2): that the leaf with hash `leaf` at
/// `leaf_index` (0-based; position − 1) is in the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &TreeHash,
    leaf_index: u64,
    size: u64,
    path: &[TreeHash],
    root: &TreeHash,
) -> Result<(), ProofError> {
    if leaf_index >= size {
        return Err(ProofError::PositionBeyondTree {
            position: leaf_index + 1,
            tree_size: size,
        });
    }
    let expected = inclusion_length(leaf_index, size);
    if path.len() != expected {
        return Err(ProofError::WrongLength {
            expected,
            got: path.len(),
        });
    }
    let (mut f_n, mut s_n) = (leaf_index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s_n == 0 {
            return Err(ProofError::WrongLength {
                expected,
                got: path.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 || r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// How many hashes the inclusion proof of leaf `index` in a tree of `size` leaves holds.
fn inclusion_length(index: u64, size: u64) -> usize {
    let (mut f_n, mut s_n, mut len) = (index, size - 1, 0);
    while s_n != 0 {
        if f_n & 1 == 1 || f_n == s_n {
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        }
        f_n >>= 1;
        s_n >>= 1;
        len += 1;
    }
    len
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): that the tree of `second` leaves with root
/// `second_root` extends the tree of `first` leaves with root `first_root`. When the sizes are
/// equal the proof must be empty and the roots equal; `first` must not be 0.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &TreeHash,
    second_root: &TreeHash,
    path: &[TreeHash],
) -> Result<(), ProofError> {
    check_sizes(first, second)?;
    if first == second {
        if !path.is_empty() {
            return Err(ProofError::WrongLength {
                expected: 0,
                got: path.len(),
            });
        }
        return match first_root == second_root {
            true => Ok(()),
            false => Err(ProofError::RootMismatch),
        };
    }
    let too_short = || ProofError::WrongLength {
        expected: path.len() + 1,
        got: path.len(),
    };
    let mut hashes: Vec<TreeHash> = Vec::with_capacity(path.len() + 1);
    if first.is_power_of_two() {
        hashes.push(*first_root);
    }
    hashes.extend_from_slice(path);
    let (mut f_n, mut s_n) = (first - 1, second - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let Some((start, rest)) = hashes.split_first() else {
        return Err(too_short());
    };
    let (mut f_r, mut s_r) = (*start, *start);
    for c in rest {
        if s_n == 0 {
            return Err(ProofError::WrongLength {
                expected: hashes.len() - 1,
                got: path.len(),
            });
        }
        if f_n & 1 == 1 || f_n == s_n {
            f_r = node_hash(c, &f_r);
            s_r = node_hash(c, &s_r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            s_r = node_hash(&s_r, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(too_short());
    }
    if f_r != *first_root || s_r != *second_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// A complete subtree's hash to store: `(level, index, hash)`.
pub type TreeNode = (u8, u64, [u8; 32]);

/// The right edge of the tree: for each set bit *l* of the size, the hash of the complete
/// subtree of 2^*l* leaves there. Enough to add leaves and to compute the root; the writer keeps
/// one and adds the nodes each leaf completes to the group commit's batch.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    size: u64,
    pending: Vec<TreeHash>,
    /// False once a leaf could not be added in order (a damaged frame): the frontier stops
    /// there, and proofs beyond it are computed from the frames, which name the damage.
    in_step: bool,
}

impl Frontier {
    /// The frontier of an empty tree.
    pub fn new() -> Self {
        Self {
            size: 0,
            pending: vec![TreeHash::default(); 64],
            in_step: true,
        }
    }

    /// The frontier of the tree of `size` leaves, read from `source`: one node per set bit.
    pub fn load(source: &dyn NodeSource, size: u64) -> Result<Self> {
        let mut frontier = Self::new();
        for level in 0..64u8 {
            if size >> level & 1 == 1 {
                frontier.pending[level as usize] = source.node(level, (size >> level) - 1)?;
            }
        }
        frontier.size = size;
        Ok(frontier)
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// False once a leaf could not be added in order (a damaged frame on open): the frontier
    /// stopped there.
    pub fn in_step(&self) -> bool {
        self.in_step
    }

    /// Adds a leaf hash; pushes every complete subtree it completes at [`STORED_FROM_LEVEL`] or
    /// above onto `completed`.
    pub fn push(&mut self, leaf: TreeHash, completed: &mut Vec<TreeNode>) {
        let index = self.size;
        let mut hash = leaf;
        let mut level = 0usize;
        while index >> level & 1 == 1 {
            hash = node_hash(&self.pending[level], &hash);
            level += 1;
            if level >= STORED_FROM_LEVEL as usize {
                completed.push((level as u8, index >> level, hash.0));
            }
        }
        self.pending[level] = hash;
        self.size += 1;
    }

    /// Adds a complete subtree of 2^`level` leaves whose root is `root`, as pushing its leaves
    /// one by one would (without the completed nodes). The tree's size must be a multiple of
    /// 2^`level`, as it is for the blocks of [`cover`] pushed in order.
    pub fn push_subtree(&mut self, level: u8, root: TreeHash) {
        debug_assert!(
            self.size.is_multiple_of(1 << level),
            "a subtree out of alignment"
        );
        let mut hash = root;
        let mut at = level as usize;
        while self.size >> at & 1 == 1 {
            hash = node_hash(&self.pending[at], &hash);
            at += 1;
        }
        self.pending[at] = hash;
        self.size += 1 << level;
    }

    /// The root of the tree as it stands.
    pub fn root(&self) -> TreeHash {
        let mut root: Option<TreeHash> = None;
        for level in 0..64 {
            if self.size >> level & 1 == 1 {
                let node = &self.pending[level];
                root = Some(match root {
                    None => *node,
                    Some(right) => node_hash(node, &right),
                });
            }
        }
        root.unwrap_or_else(empty_root)
    }

    /// Adds the leaves of the batch's frames, in order, and the nodes they complete to the
    /// batch's tree entries. A frame out of step with the tree (a damaged ledger) stops it.
    pub fn extend(&mut self, batch: &mut WriteBatch) {
        for (position, frame) in &batch.frames {
            if !self.in_step || *position != self.size + 1 {
                self.in_step = false;
                return;
            }
            match Frame::parse(frame) {
                Some(parsed) => self.push(event_leaf(&parsed.hash), &mut batch.tree),
                None => {
                    self.in_step = false;
                    return;
                }
            }
        }
    }
}

/// The tree as stored with the ledger: complete subtrees of [`STORED_FROM_LEVEL`] levels and
/// more are read from storage; smaller ones, and any that is missing (a ledger written before
/// the tree, or a catch-up that could not write), are hashed from the frames.
pub struct StoredTree<'a> {
    storage: &'a dyn Storage,
    /// The aligned block of 64 leaves read last: its first leaf index and its leaf hashes.
    block: RefCell<Option<(u64, Vec<TreeHash>)>>,
}

const BLOCK: u64 = 1 << STORED_FROM_LEVEL;

impl<'a> StoredTree<'a> {
    /// The tree stored in `storage`.
    pub fn new(storage: &'a dyn Storage) -> Self {
        Self {
            storage,
            block: RefCell::new(None),
        }
    }

    /// The leaf hashes of the block of 64 leaves holding leaf `index`, as far as frames exist.
    fn block_of(&self, index: u64) -> Result<std::cell::Ref<'_, (u64, Vec<TreeHash>)>> {
        let first = index / BLOCK * BLOCK;
        let cached = matches!(&*self.block.borrow(), Some((f, leaves)) if *f == first && (index - first) < leaves.len() as u64);
        if !cached {
            let mut leaves = Vec::with_capacity(BLOCK as usize);
            let mut failure = None;
            // Leaf index i is position i + 1. The block's leaves stop at the first frame that is
            // missing or cannot be split: those before it still serve.
            self.storage.scan(first + 1, &mut |position, bytes| {
                let expected = first + 1 + leaves.len() as u64;
                if position > first + BLOCK {
                    return false;
                }
                if position != expected {
                    failure = Some(not_stored(expected - 1));
                    return false;
                }
                match Frame::parse(bytes) {
                    Some(frame) => leaves.push(event_leaf(&frame.hash)),
                    None => {
                        failure = Some(Error::Decode {
                            position,
                            detail: "frame header is malformed; the Merkle tree cannot cover it"
                                .into(),
                        });
                        return false;
                    }
                }
                true
            })?;
            if index - first >= leaves.len() as u64 {
                return Err(failure.unwrap_or_else(|| not_stored(index)));
            }
            *self.block.borrow_mut() = Some((first, leaves));
        }
        let block = std::cell::Ref::filter_map(self.block.borrow(), |b| b.as_ref())
            .map_err(|_| not_stored(index))?;
        if index - block.0 >= block.1.len() as u64 {
            return Err(not_stored(index));
        }
        Ok(block)
    }
}

fn not_stored(index: u64) -> Error {
    Error::Decode {
        position: index + 1,
        detail: "no event is stored at this position; the Merkle tree cannot cover it".into(),
    }
}

impl NodeSource for StoredTree<'_> {
    fn node(&self, level: u8, index: u64) -> Result<TreeHash> {
        if level < STORED_FROM_LEVEL {
            let first = index << level;
            let block = self.block_of(first + (1 << level) - 1)?;
            let offset = (first - block.0) as usize;
            let leaves = &block.1[offset..offset + (1usize << level)];
            return Ok(fold_leaves(leaves));
        }
        if let Some(hash) = self.storage.tree_node(level, index)? {
            return Ok(TreeHash(hash));
        }
        let left = self.node(level - 1, 2 * index)?;
        let right = self.node(level - 1, 2 * index + 1)?;
        Ok(node_hash(&left, &right))
    }
}

/// The leaves from index `start` on (`leaves`) as the fewest aligned complete subtrees, none of
/// which crosses a tree size in `cuts`, in order, each as `(level, root)`: what a thread that
/// hashed a run of leaves hands on, so that [`Frontier::push_subtree`] adds the run in a few
/// steps and the frontier passes through every size in `cuts`.
pub fn cover(start: u64, leaves: &[TreeHash], cuts: &[u64]) -> Vec<(u8, TreeHash)> {
    let end = start + leaves.len() as u64;
    let mut blocks = Vec::new();
    let mut at = start;
    while at < end {
        let until = cuts
            .iter()
            .copied()
            .filter(|&cut| cut > at && cut < end)
            .min()
            .unwrap_or(end);
        // The largest block aligned at `at` that ends by `until`.
        let mut level = at.trailing_zeros().min(63);
        while 1u64 << level > until - at {
            level -= 1;
        }
        let from = (at - start) as usize;
        let root = fold_leaves(&leaves[from..from + (1usize << level)]);
        blocks.push((level as u8, root));
        at += 1 << level;
    }
    blocks
}

/// The root of a complete subtree from its leaf hashes (a power of two of them).
fn fold_leaves(leaves: &[TreeHash]) -> TreeHash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let half = leaves.len() / 2;
    node_hash(&fold_leaves(&leaves[..half]), &fold_leaves(&leaves[half..]))
}

/// Opens the tree of a ledger whose head is at `head`: the frontier at that size, after
/// building and storing whatever part of the tree the frames have and the stored tree has not
/// (a ledger written before the tree existed, or one whose tree is shorter). Storing is best
/// effort: a subtree that could not be stored is hashed from the frames when needed.
pub fn open_tree(storage: &dyn Storage, head: u64) -> Result<Frontier> {
    let covered = match storage.last_tree_node(STORED_FROM_LEVEL)? {
        Some(index) => ((index + 1) * BLOCK).min(head),
        None => 0,
    };
    // Nodes at or above the stored level are complete only on block boundaries.
    let stored = covered / BLOCK * BLOCK;
    let source = StoredTree::new(storage);
    let mut frontier = Frontier::load(&source, stored)?;
    if stored == head {
        return Ok(frontier);
    }
    let mut batch = WriteBatch::default();
    let mut failure = None;
    storage.scan(stored + 1, &mut |position, bytes| {
        if position > head {
            return false;
        }
        match Frame::parse(bytes) {
            Some(frame) if position == frontier.size + 1 => {
                frontier.push(event_leaf(&frame.hash), &mut batch.tree);
            }
            _ => {
                frontier.in_step = false;
                return false;
            }
        }
        if frontier.size.is_multiple_of(CATCH_UP_BATCH) {
            if let Err(e) = storage.commit(std::mem::take(&mut batch)) {
                failure = Some(e);
            }
        }
        true
    })?;
    if frontier.size < head {
        frontier.in_step = false;
    }
    if failure.is_none() && !batch.tree.is_empty() {
        failure = storage.commit(batch).err();
    }
    if failure.is_none() {
        // Best effort, as above: the frames stay the source of every hash.
        let _ = storage.sync();
    }
    Ok(frontier)
}

/// A tree size and its root hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// Leaves in the tree: the positions 1 to `size`.
    pub size: u64,
    /// The root hash.
    pub root: TreeHash,
}

/// That the event at `position` is in the tree of `tree_size` leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The event's ledger position (starting at 1).
    pub position: u64,
    /// Its leaf index in the tree: `position - 1`.
    pub leaf_index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The event's BLAKE3 hash (the leaf data).
    pub event_hash: Hash,
    /// The audit path, from the leaf's sibling up.
    pub path: Vec<TreeHash>,
}

impl InclusionProof {
    /// Checks the proof against a root hash of its tree size.
    pub fn verify(&self, root: &TreeHash) -> Result<(), ProofError> {
        verify_inclusion(
            &event_leaf(&self.event_hash),
            self.leaf_index,
            self.tree_size,
            &self.path,
            root,
        )
    }
}

/// That the tree of `second` leaves extends the tree of `first` leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The older tree's size.
    pub first: u64,
    /// The newer tree's size.
    pub second: u64,
    /// The proof's hashes (empty when the sizes are equal).
    pub path: Vec<TreeHash>,
}

impl ConsistencyProof {
    /// Checks the proof against the two trees' root hashes.
    pub fn verify(&self, first_root: &TreeHash, second_root: &TreeHash) -> Result<(), ProofError> {
        verify_consistency(self.first, self.second, first_root, second_root, &self.path)
    }
}

impl Ledger {
    fn check_durable(&self, tree_size: u64) -> Result<()> {
        let durable = self.head().position;
        if tree_size > durable {
            return Err(ProofError::BeyondDurable { tree_size, durable }.into());
        }
        Ok(())
    }

    /// The root of the tree over positions 1 to `tree_size` (at most the durable head).
    pub fn tree_head(&self, tree_size: u64) -> Result<TreeHead> {
        self.check_durable(tree_size)?;
        let root = root(&StoredTree::new(self.storage()), tree_size)?;
        Ok(TreeHead {
            size: tree_size,
            root,
        })
    }

    /// The inclusion proof of the event at `position` (starting at 1; leaf index
    /// `position - 1`) in the tree of `tree_size` leaves (at most the durable head).
    pub fn inclusion_proof(&self, position: u64, tree_size: u64) -> Result<InclusionProof> {
        if position == 0 {
            return Err(ProofError::PositionZero.into());
        }
        if position > tree_size {
            return Err(ProofError::PositionBeyondTree {
                position,
                tree_size,
            }
            .into());
        }
        self.check_durable(tree_size)?;
        let event_hash = self.read_position(position)?.hash;
        let path = inclusion_path(&StoredTree::new(self.storage()), position - 1, tree_size)?;
        Ok(InclusionProof {
            position,
            leaf_index: position - 1,
            tree_size,
            event_hash,
            path,
        })
    }

    /// The consistency proof from the tree of `first` leaves to the tree of `second` leaves
    /// (`0 < first <= second <=` the durable head; empty when they are equal).
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<ConsistencyProof> {
        check_sizes(first, second)?;
        self.check_durable(second)?;
        let path = consistency_path(&StoredTree::new(self.storage()), first, second)?;
        Ok(ConsistencyProof {
            first,
            second,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree in memory: every level of complete subtrees.
    struct Memory(Vec<Vec<TreeHash>>);

    impl Memory {
        fn new(leaves: &[TreeHash]) -> Self {
            let mut levels = vec![leaves.to_vec()];
            while levels.last().is_some_and(|l| l.len() > 1) {
                let below = levels.last().cloned().unwrap_or_default();
                levels.push(
                    below
                        .chunks_exact(2)
                        .map(|p| node_hash(&p[0], &p[1]))
                        .collect(),
                );
            }
            Self(levels)
        }
    }

    impl NodeSource for Memory {
        fn node(&self, level: u8, index: u64) -> Result<TreeHash> {
            Ok(self.0[level as usize][index as usize])
        }
    }

    /// RFC 6962 test leaves and roots (transparency-dev/merkle, `testonly/constants.go`).
    const RFC_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const RFC_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn roots_of_the_rfc_6962_test_leaves_match_the_published_ones() {
        let leaves: Vec<TreeHash> = RFC_LEAVES
            .iter()
            .map(|l| leaf_hash(&hex::decode(l).unwrap()))
            .collect();
        let memory = Memory::new(&leaves);
        let mut frontier = Frontier::new();
        for (size, expected) in RFC_ROOTS.iter().enumerate() {
            assert_eq!(
                root(&memory, size as u64).unwrap().to_hex(),
                *expected,
                "size {size}"
            );
            assert_eq!(
                frontier.root().to_hex(),
                *expected,
                "frontier at size {size}"
            );
            if size < leaves.len() {
                frontier.push(leaves[size], &mut Vec::new());
            }
        }
    }

    /// Runs of leaves of every length from every start, pushed as [`cover`]'s blocks, give the
    /// roots that pushing leaf by leaf gives, at the end of each run and at each cut inside it.
    #[test]
    fn covering_runs_with_subtrees_gives_the_roots_leaf_by_leaf() {
        let leaves: Vec<TreeHash> = (0..=200u8).map(|i| leaf_hash(&[i])).collect();
        let memory = Memory::new(&leaves);
        for run in 1..=40usize {
            let cuts = [7, 64, 65, 129, run as u64 * 3];
            let mut frontier = Frontier::new();
            let mut at = 0;
            while at < leaves.len() {
                let end = (at + run).min(leaves.len());
                for (level, root) in cover(at as u64, &leaves[at..end], &cuts) {
                    frontier.push_subtree(level, root);
                    let size = frontier.size();
                    if cuts.contains(&size) {
                        assert_eq!(frontier.root(), root_of(&memory, size), "cut {size}");
                    }
                }
                at = end;
                assert_eq!(frontier.size(), at as u64);
                assert_eq!(
                    frontier.root(),
                    root_of(&memory, at as u64),
                    "run {run} to {at}"
                );
            }
            let blocks = cover(0, &leaves[..128], &[]);
            assert_eq!(blocks, vec![(7, root_of(&memory, 128))]);
        }
    }

    fn root_of(memory: &Memory, size: u64) -> TreeHash {
        root(memory, size).unwrap()
    }

    #[test]
    fn the_frontier_completes_subtrees_from_the_stored_level_up_with_their_indices() {
        let leaves: Vec<TreeHash> = (0..=255u8).map(|i| leaf_hash(&[i])).collect();
        let memory = Memory::new(&leaves);
        let mut frontier = Frontier::new();
        let mut completed = Vec::new();
        for leaf in &leaves {
            frontier.push(*leaf, &mut completed);
        }
        let expected: Vec<TreeNode> = [(6, 0), (6, 1), (7, 0), (6, 2), (6, 3), (7, 1), (8, 0)]
            .iter()
            .map(|&(l, i)| (l, i, memory.node(l, i).unwrap().0))
            .collect();
        assert_eq!(completed, expected);
        let reloaded = Frontier::load(&memory, 151).unwrap();
        let mut grown = Frontier::new();
        for leaf in &leaves[..151] {
            grown.push(*leaf, &mut Vec::new());
        }
        assert_eq!(reloaded.root(), grown.root());
    }

    #[test]
    fn a_consistency_proof_from_size_zero_or_to_a_smaller_tree_is_refused() {
        let memory = Memory::new(&[leaf_hash(b"a"), leaf_hash(b"b")]);
        assert!(matches!(
            consistency_path(&memory, 0, 2),
            Err(Error::Proof(ProofError::FirstSizeZero))
        ));
        assert!(matches!(
            consistency_path(&memory, 2, 1),
            Err(Error::Proof(ProofError::FirstBeyondSecond {
                first: 2,
                second: 1
            }))
        ));
        assert_eq!(consistency_path(&memory, 2, 2).unwrap(), vec![]);
        let r = root(&memory, 2).unwrap();
        assert_eq!(verify_consistency(2, 2, &r, &r, &[]), Ok(()));
        assert_eq!(
            verify_consistency(2, 2, &r, &empty_root(), &[]),
            Err(ProofError::RootMismatch)
        );
    }
}
