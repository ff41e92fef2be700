//! The patients' heads map: at every checkpoint the log also commits to each patient's last
//! event, so that an export of one patient's history can prove it leaves out nothing at the
//! tail (`docs/hash-format.md`, "The heads map").
//!
//! Each patient with events in the tree of the checkpoint's size has one **leaf**: the key
//! BLAKE3(`careledger/heads/v1/key\0` ‖ patient id), which names the patient without spelling
//! out the id, and a commitment to its head, BLAKE3(`careledger/heads/v1/head\0` ‖ revision ‖
//! position ‖ event hash). The leaves, sorted by key, form an RFC 6962 tree (SHA-256, leaf hash
//! = SHA-256(`0x00` ‖ key ‖ commitment)), whose size and root the checkpoint carries as the
//! extension line `careledger/heads/v1 <count> <base64 root>`.
//!
//! [`HeadsMap`] keeps the map from the events themselves, a checkpoint's worth at a time
//! ([`HeadsMap::advance`] reads only the events since the size it was last advanced to), and
//! its tree: when no patient was added since the last root, only the paths of the changed
//! leaves are hashed again; otherwise the tree is hashed again from the kept leaf hashes.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::chain::Frame;
use crate::error::{Error, Result};
use crate::ids::PatientId;
use crate::ledger::Ledger;
use crate::merkle::{
    empty_root, inclusion_path, leaf_hash, node_hash, root, verify_inclusion, NodeSource,
    ProofError, TreeHash,
};
use crate::record::Hash;
use crate::verify::{Problem, ProblemKind};

/// The domain tag hashed before a patient id into its key.
pub const KEY_TAG: &[u8; 24] = b"careledger/heads/v1/key\0";
/// The domain tag hashed before a head's fields into its commitment.
pub const HEAD_TAG: &[u8; 25] = b"careledger/heads/v1/head\0";
/// The first word of the checkpoint's extension line that carries the heads tree.
pub const LINE_PREFIX: &str = "careledger/heads/v1";

/// A patient's key in the heads map: BLAKE3(`careledger/heads/v1/key\0` ‖ patient id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HeadKey(pub [u8; 32]);

impl HeadKey {
    /// The key of `patient`.
    pub fn of(patient: &PatientId) -> Self {
        Self::of_id(patient.as_str())
    }

    /// The key of the patient id as a record stores it.
    pub(crate) fn of_id(id: &str) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(KEY_TAG);
        hasher.update(id.as_bytes());
        Self(*hasher.finalize().as_bytes())
    }
}

/// A patient's last event in a tree: its revision, position and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PatientHead {
    /// The patient's revision (their number of events).
    pub revision: u64,
    /// The event's position.
    pub position: u64,
    /// The event's hash.
    pub hash: Hash,
}

impl PatientHead {
    /// BLAKE3(`careledger/heads/v1/head\0` ‖ revision (u64 BE) ‖ position (u64 BE) ‖ hash): what
    /// the leaf shows of the head. Its event hash, which nobody without that event knows, keeps
    /// the revision and position of a neighbour's leaf from being guessed.
    pub fn commitment(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(HEAD_TAG);
        hasher.update(&self.revision.to_be_bytes());
        hasher.update(&self.position.to_be_bytes());
        hasher.update(&self.hash.0);
        *hasher.finalize().as_bytes()
    }
}

/// The leaf hash of a key and a head's commitment: SHA-256(`0x00` ‖ key ‖ commitment).
pub fn leaf(key: &HeadKey, commitment: &[u8; 32]) -> TreeHash {
    let mut data = [0u8; 64];
    data[..32].copy_from_slice(&key.0);
    data[32..].copy_from_slice(commitment);
    leaf_hash(&data)
}

/// The heads tree's size and root, as a checkpoint's extension line carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadsLine {
    /// How many patients (leaves).
    pub count: u64,
    /// The tree's root.
    pub root: TreeHash,
}

impl HeadsLine {
    /// `careledger/heads/v1 <count> <base64 root>`, without a newline.
    pub fn to_line(&self) -> String {
        format!(
            "{LINE_PREFIX} {} {}",
            self.count,
            BASE64.encode(self.root.0)
        )
    }

    /// Finds the heads line among a checkpoint's extension lines: `None` when there is none
    /// (a checkpoint signed before the heads map existed), an error when one starting with
    /// [`LINE_PREFIX`] is malformed or there are two. Other extension lines are passed over.
    pub fn find(extensions: &[&str]) -> std::result::Result<Option<Self>, String> {
        let mut found = None;
        for line in extensions {
            let mut words = line.split(' ');
            if words.next() != Some(LINE_PREFIX) {
                continue;
            }
            if found.is_some() {
                return Err(format!("the checkpoint carries two {LINE_PREFIX} lines"));
            }
            let bad = || {
                format!("the extension line {line:?} is not '{LINE_PREFIX} <count> <base64 root>'")
            };
            let count = words.next().and_then(parse_decimal).ok_or_else(bad)?;
            let root: [u8; 32] = words
                .next()
                .and_then(|r| BASE64.decode(r).ok())
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?;
            if words.next().is_some() {
                return Err(bad());
            }
            found = Some(Self {
                count,
                root: TreeHash(root),
            });
        }
        Ok(found)
    }
}

/// A decimal without leading zeros ("0" alone is zero).
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// One leaf of the heads tree as a proof shows it: its index, key and commitment, and its
/// inclusion path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafProof {
    /// The leaf's index in the sorted list.
    pub index: u64,
    /// Its key.
    pub key: HeadKey,
    /// Its head's commitment.
    pub commitment: [u8; 32],
    /// Its RFC 9162 inclusion path in the heads tree.
    pub path: Vec<TreeHash>,
}

impl LeafProof {
    /// Checks the leaf's inclusion in the heads tree `line`.
    pub fn verify(&self, line: &HeadsLine) -> std::result::Result<(), ProofError> {
        verify_inclusion(
            &leaf(&self.key, &self.commitment),
            self.index,
            line.count,
            &self.path,
            &line.root,
        )
    }
}

/// That a patient's head is the one leaf of its key: its own leaf and those of its neighbours
/// in key order (none on the side where it is the first or the last).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadProof {
    /// The patient's leaf.
    pub leaf: LeafProof,
    /// The leaf before it (a smaller key).
    pub left: Option<LeafProof>,
    /// The leaf after it (a larger key).
    pub right: Option<LeafProof>,
}

/// Why a patient's head does not prove against a heads line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeadProofError {
    /// The patient's leaf, made from the head claimed, is not in the tree.
    #[error("the patient's leaf (revision {revision}, position {position}) is not in the heads tree: {problem}")]
    NotTheHead {
        /// The revision claimed.
        revision: u64,
        /// The position claimed.
        position: u64,
        /// Why its proof fails.
        problem: ProofError,
    },
    /// A neighbour's leaf is missing, misplaced, out of key order or does not prove.
    #[error("the {side} neighbour in the heads tree does not show the patient's key occurs once: {problem}")]
    Neighbour {
        /// `left` or `right`.
        side: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl HeadProof {
    /// Checks that `head` is the patient `key`'s one leaf in the heads tree `line`: the leaf
    /// proves at its index, and its neighbours prove at the indices beside it with a smaller
    /// and a larger key (in a tree sorted by key, the key then occurs nowhere else).
    pub fn verify(
        &self,
        key: &HeadKey,
        head: &PatientHead,
        line: &HeadsLine,
    ) -> std::result::Result<(), HeadProofError> {
        let own = LeafProof {
            key: *key,
            commitment: head.commitment(),
            ..self.leaf.clone()
        };
        own.verify(line)
            .map_err(|problem| HeadProofError::NotTheHead {
                revision: head.revision,
                position: head.position,
                problem,
            })?;
        let index = self.leaf.index;
        let sides = [
            ("left", &self.left, index.checked_sub(1), true),
            (
                "right",
                &self.right,
                index.checked_add(1).filter(|i| *i < line.count),
                false,
            ),
        ];
        for (side, neighbour, expected, smaller) in sides {
            let problem = |problem: String| HeadProofError::Neighbour { side, problem };
            match (neighbour, expected) {
                (None, None) => {}
                (None, Some(at)) => {
                    return Err(problem(format!("the leaf at index {at} is not given")));
                }
                (Some(n), None) => {
                    return Err(problem(format!(
                        "a leaf is given at index {} where the tree has none",
                        n.index
                    )));
                }
                (Some(n), Some(at)) => {
                    if n.index != at {
                        return Err(problem(format!(
                            "it is given at index {}, not {at}",
                            n.index
                        )));
                    }
                    let ordered = if smaller { n.key < *key } else { n.key > *key };
                    if !ordered {
                        return Err(problem(format!(
                            "its key is not {} the patient's",
                            if smaller { "below" } else { "above" }
                        )));
                    }
                    n.verify(line).map_err(|e| problem(e.to_string()))?;
                }
            }
        }
        Ok(())
    }
}

/// A patient's entry: the head and its leaf hash, kept so that unchanged leaves are not hashed
/// again; `None` until the tree next needs it (a patient with several events between two
/// checkpoints has its leaf hashed once).
#[derive(Clone, Copy, Debug)]
struct Entry {
    head: PatientHead,
    leaf: Option<TreeHash>,
}

impl Entry {
    fn leaf(&mut self, key: &HeadKey) -> TreeHash {
        let head = self.head;
        *self
            .leaf
            .get_or_insert_with(|| leaf(key, &head.commitment()))
    }
}

/// Every complete subtree of the heads tree: `levels[l][i]` covers leaves `i·2^l` to
/// `(i+1)·2^l − 1`; the incomplete right edge is hashed from them on demand.
#[derive(Clone, Debug, Default)]
struct Levels {
    /// The keys in order, at the leaf indices of `levels[0]`.
    keys: Vec<HeadKey>,
    levels: Vec<Vec<TreeHash>>,
}

impl Levels {
    fn build(keys: Vec<HeadKey>, leaves: Vec<TreeHash>) -> Self {
        let mut levels = vec![leaves];
        while let Some(below) = levels.last().filter(|l| l.len() > 1) {
            let above = below
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(above);
        }
        Self { keys, levels }
    }

    fn size(&self) -> u64 {
        self.keys.len() as u64
    }

    /// Replaces the leaf at `index` and hashes its path up again.
    fn update(&mut self, index: usize, leaf: TreeHash) {
        let mut at = index;
        if let Some(slot) = self.levels.first_mut().and_then(|l| l.get_mut(at)) {
            *slot = leaf;
        }
        for level in 1..self.levels.len() {
            at /= 2;
            let (below, above) = self.levels.split_at_mut(level);
            let below = &below[level - 1];
            let Some(slot) = above[0].get_mut(at) else {
                break;
            };
            *slot = node_hash(&below[2 * at], &below[2 * at + 1]);
        }
    }
}

impl NodeSource for Levels {
    fn node(&self, level: u8, index: u64) -> Result<TreeHash> {
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(Error::Proof(ProofError::RootMismatch))
    }
}

/// The heads map of the tree of [`HeadsMap::size`] events, and its tree.
#[derive(Clone, Debug, Default)]
pub struct HeadsMap {
    size: u64,
    heads: BTreeMap<HeadKey, Entry>,
    /// The tree as last hashed; `None` before the first root or after a patient was added.
    tree: Option<Levels>,
    /// Keys whose head changed since the tree was hashed.
    changed: BTreeSet<HeadKey>,
}

impl HeadsMap {
    /// The map of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The map of the tree of the first `size` events of `ledger`, read from position 1.
    pub fn build(ledger: &Ledger, size: u64) -> Result<Self> {
        let mut map = Self::new();
        map.advance(ledger, size)?;
        Ok(map)
    }

    /// The tree size the map is of: positions 1 to `size`.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// How many patients have events in it.
    pub fn count(&self) -> u64 {
        self.heads.len() as u64
    }

    /// The head of the patient with `key`, if they have events in the tree.
    pub fn head(&self, key: &HeadKey) -> Option<PatientHead> {
        self.heads.get(key).map(|e| e.head)
    }

    /// Brings the map from its size to `size` with the events in between, read from the
    /// ledger (never below its size: a log's tree only grows). Each event must follow its
    /// patient's last revision; otherwise the ledger is inconsistent and the map stays as it was
    /// at the last event that followed.
    pub fn advance(&mut self, ledger: &Ledger, size: u64) -> Result<()> {
        if size < self.size {
            return Err(ProofError::FirstBeyondSecond {
                first: self.size,
                second: size,
            }
            .into());
        }
        if size == self.size {
            return Ok(());
        }
        let durable = ledger.head().position;
        if size > durable {
            return Err(ProofError::BeyondDurable {
                tree_size: size,
                durable,
            }
            .into());
        }
        // The stored frames, not decoded records: the map needs each event's hash, patient and
        // revision, which are the frame's header and the first two fields of its record.
        let mut failure = None;
        ledger
            .storage()
            .scan(self.size + 1, &mut |position, frame| {
                if position > size {
                    return false;
                }
                match self.record_frame(position, frame) {
                    Ok(()) => true,
                    Err(e) => {
                        failure = Some(e);
                        false
                    }
                }
            })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if self.size < size {
            return Err(Error::Integrity(Problem {
                position: self.size + 1,
                kind: ProblemKind::Undecodable("no event is stored at this position".into()),
            }));
        }
        Ok(())
    }

    /// Records the stored frame at `position`.
    fn record_frame(&mut self, position: u64, frame: &[u8]) -> Result<()> {
        let undecodable = |detail: &str| {
            Error::Integrity(Problem {
                position,
                kind: ProblemKind::Undecodable(detail.to_owned()),
            })
        };
        let frame =
            Frame::parse(frame).ok_or_else(|| undecodable("the frame header is malformed"))?;
        let (id, revision) = record_prefix(frame.record).ok_or_else(|| {
            undecodable("the record does not start with a patient id and a revision")
        })?;
        let head = PatientHead {
            revision,
            position,
            hash: frame.hash,
        };
        self.record_keyed(HeadKey::of_id(id), id, head)
    }

    /// Records the event `head` of `patient`, the next position after the map's size.
    pub fn record(&mut self, patient: &PatientId, head: PatientHead) -> Result<()> {
        self.record_keyed(HeadKey::of(patient), patient.as_str(), head)
    }

    fn record_keyed(&mut self, key: HeadKey, patient: &str, head: PatientHead) -> Result<()> {
        let position = head.position;
        if position != self.size + 1 {
            return Err(Error::Integrity(Problem {
                position: self.size + 1,
                kind: ProblemKind::Gap { found: position },
            }));
        }
        let before = self.heads.get(&key).map_or(0, |e| e.head.revision);
        if head.revision != before + 1 {
            return Err(Error::Integrity(does_not_follow(
                position,
                patient,
                head.revision,
                before,
            )));
        }
        let entry = Entry { head, leaf: None };
        if self.heads.insert(key, entry).is_none() {
            // A new leaf moves every leaf after it: the tree is hashed again.
            self.tree = None;
            self.changed.clear();
        } else if self.tree.is_some() {
            self.changed.insert(key);
        }
        self.size = position;
        Ok(())
    }

    /// Brings the map from its size to `end` with one stretch of events that a verification
    /// checked ([`crate::Ledger::verify_for_checkpoint`]): each patient's `runs` in it, found
    /// consecutive within the stretch, up to `within`, the first event there that did not
    /// follow its patient's revision before it. Fails as [`HeadsMap::advance`] does, at the
    /// first event in position order that does not follow its patient's last revision.
    pub(crate) fn merge_runs(
        &mut self,
        end: u64,
        runs: Vec<HeadsRun>,
        within: Option<Problem>,
    ) -> Result<()> {
        let mut first_problem = within;
        for run in &runs {
            let before = self.heads.get(&run.key).map_or(0, |e| e.head.revision);
            if run.first_revision != before + 1
                && first_problem
                    .as_ref()
                    .is_none_or(|p| run.first_position < p.position)
            {
                first_problem = Some(does_not_follow(
                    run.first_position,
                    &run.patient,
                    run.first_revision,
                    before,
                ));
            }
        }
        if let Some(problem) = first_problem {
            return Err(Error::Integrity(problem));
        }
        for run in runs {
            let entry = Entry {
                head: run.last,
                leaf: None,
            };
            if self.heads.insert(run.key, entry).is_none() {
                self.tree = None;
                self.changed.clear();
            } else if self.tree.is_some() {
                self.changed.insert(run.key);
            }
        }
        self.size = self.size.max(end);
        Ok(())
    }

    /// Brings the kept tree up to the map: the changed paths, or all of it.
    fn refresh(&mut self) {
        match &mut self.tree {
            Some(levels) => {
                for key in std::mem::take(&mut self.changed) {
                    if let (Ok(index), Some(entry)) =
                        (levels.keys.binary_search(&key), self.heads.get_mut(&key))
                    {
                        levels.update(index, entry.leaf(&key));
                    }
                }
            }
            None => {
                let keys = self.heads.keys().copied().collect();
                let leaves = self.heads.iter_mut().map(|(k, e)| e.leaf(k)).collect();
                self.tree = Some(Levels::build(keys, leaves));
                self.changed.clear();
            }
        }
    }

    /// The kept tree, brought up to the map.
    fn tree(&mut self) -> &Levels {
        self.refresh();
        self.tree.get_or_insert_with(Levels::default)
    }

    /// The heads tree's size and root: the checkpoint's extension line.
    pub fn line(&mut self) -> Result<HeadsLine> {
        let tree = self.tree();
        let count = tree.size();
        let root = match count {
            0 => empty_root(),
            n => root(tree, n)?,
        };
        Ok(HeadsLine { count, root })
    }

    /// The proof that `key`'s head is its one leaf; `None` when the patient has no events in
    /// the tree.
    pub fn proof(&mut self, key: &HeadKey) -> Result<Option<HeadProof>> {
        self.refresh();
        let Some(tree) = &self.tree else {
            return Ok(None);
        };
        let Ok(index) = tree.keys.binary_search(key) else {
            return Ok(None);
        };
        let size = tree.size();
        let leaf_at = |index: usize| -> Result<LeafProof> {
            let leaf_key = tree.keys[index];
            Ok(LeafProof {
                index: index as u64,
                key: leaf_key,
                commitment: [0; 32],
                path: inclusion_path(tree, index as u64, size)?,
            })
        };
        let mut own = leaf_at(index)?;
        let mut left = index.checked_sub(1).map(leaf_at).transpose()?;
        let mut right = Some(index + 1)
            .filter(|i| *i < tree.keys.len())
            .map(leaf_at)
            .transpose()?;
        for proof in [Some(&mut own), left.as_mut(), right.as_mut()]
            .into_iter()
            .flatten()
        {
            if let Some(entry) = self.heads.get(&proof.key) {
                proof.commitment = entry.head.commitment();
            }
        }
        Ok(Some(HeadProof {
            leaf: own,
            left,
            right,
        }))
    }
}

/// The event at `position`, `patient`'s revision `revision`, does not follow the revision
/// `before` it.
pub(crate) fn does_not_follow(position: u64, patient: &str, revision: u64, before: u64) -> Problem {
    Problem {
        position,
        kind: ProblemKind::Index(format!(
            "patient {patient}'s revision {revision} follows revision {before}"
        )),
    }
}

/// The heads of one stretch of consecutive events, gathered for [`HeadsMap::merge_runs`]
/// (on another thread than the map's, in a verification's pass): each patient's run of
/// events in it, up to the first event that does not follow its patient's revision before it
/// within the stretch.
#[derive(Default)]
pub(crate) struct Stretch {
    runs: std::collections::HashMap<String, HeadsRun>,
    problem: Option<Problem>,
}

impl Stretch {
    /// Adds the next event, `head` of `patient`; nothing once one did not follow.
    pub(crate) fn add(&mut self, patient: &str, head: PatientHead) {
        if self.problem.is_some() {
            return;
        }
        match self.runs.get_mut(patient) {
            Some(run) if head.revision == run.last.revision + 1 => run.last = head,
            Some(run) => {
                let before = run.last.revision;
                self.problem = Some(does_not_follow(
                    head.position,
                    patient,
                    head.revision,
                    before,
                ));
            }
            None => {
                let run = HeadsRun {
                    key: HeadKey::of_id(patient),
                    patient: patient.to_owned(),
                    first_revision: head.revision,
                    first_position: head.position,
                    last: head,
                };
                self.runs.insert(patient.to_owned(), run);
            }
        }
    }

    /// The runs, and the event that did not follow, if one did.
    pub(crate) fn finish(self) -> (Vec<HeadsRun>, Option<Problem>) {
        (self.runs.into_values().collect(), self.problem)
    }
}

/// One patient's events in a stretch of the chain, consecutive revisions, for
/// [`HeadsMap::merge_runs`].
pub(crate) struct HeadsRun {
    /// The patient's key.
    pub(crate) key: HeadKey,
    /// The patient id, for the message when the run does not follow.
    pub(crate) patient: String,
    /// The revision and position of its first event in the stretch.
    pub(crate) first_revision: u64,
    pub(crate) first_position: u64,
    /// Its last event in the stretch.
    pub(crate) last: PatientHead,
}

/// The patient id and the revision at the start of record bytes of any format (both formats
/// start with them: `docs/hash-format.md`, "The record bytes"): a bincode string (varint
/// length, UTF-8) and a varint.
fn record_prefix(record: &[u8]) -> Option<(&str, u64)> {
    let (length, rest) = varint(record)?;
    let length = usize::try_from(length).ok()?;
    let id = std::str::from_utf8(rest.get(..length)?).ok()?;
    let (revision, _) = varint(&rest[length..])?;
    Some((id, revision))
}

/// bincode's varint: a byte below 251, or 251, 252, 253 and a u16, u32 or u64 little-endian.
fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (&first, rest) = bytes.split_first()?;
    let width = match first {
        0..=250 => return Some((u64::from(first), rest)),
        251 => 2,
        252 => 4,
        253 => 8,
        _ => return None,
    };
    let mut value = [0u8; 8];
    value[..width].copy_from_slice(rest.get(..width)?);
    Some((u64::from_le_bytes(value), &rest[width..]))
}

/// Recomputes, from the ledger, the heads map of the tree a checkpoint's note `text` signed and
/// compares it with the heads line the note carries: `None` when they agree (or the note
/// carries none), otherwise what differs, in one sentence. What an auditor with the data
/// directory checks of the heads maps, which no witness can.
pub fn check_signed(ledger: &Ledger, text: &str) -> Result<Option<String>> {
    check_signed_with(text, |size| HeadsMap::build(ledger, size))
}

/// [`check_signed`] with the heads map a verification recomputed in its pass
/// ([`crate::Ledger::verify_for_checkpoint`]), which reads no event again; `map` is the map
/// of the checkpoint's size, or why there is none. A map of another size is refused.
pub fn check_signed_of(map: Result<HeadsMap>, text: &str) -> Result<Option<String>> {
    check_signed_with(text, move |size| {
        let map = map?;
        if map.size() != size {
            return Err(Error::Poisoned(format!(
                "the heads map recomputed is of tree size {}, the checkpoint's is {size}",
                map.size()
            )));
        }
        Ok(map)
    })
}

fn check_signed_with(
    text: &str,
    build: impl FnOnce(u64) -> Result<HeadsMap>,
) -> Result<Option<String>> {
    let (checkpoint, extensions) = match crate::checkpoint::Checkpoint::parse_text(text) {
        Ok(parsed) => parsed,
        Err(e) => return Ok(Some(format!("the checkpoint is malformed: {e}"))),
    };
    let signed = match HeadsLine::find(&extensions) {
        Ok(Some(line)) => line,
        Ok(None) => return Ok(None),
        Err(e) => return Ok(Some(e)),
    };
    let computed = build(checkpoint.size())?.line()?;
    Ok((computed != signed).then(|| {
        format!(
            "the last signed checkpoint (size {}) carries the heads map {:?}; the ledger's events \
             give {:?}: the log signed a heads map that is not the patients' last events",
            checkpoint.size(),
            signed.to_line(),
            computed.to_line()
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn patient(n: u32) -> PatientId {
        PatientId::parse(&format!("p-{n}")).unwrap()
    }

    fn hash_of(position: u64) -> Hash {
        Hash(*blake3::hash(&position.to_be_bytes()).as_bytes())
    }

    /// A map built from `events` (each a patient number), in order, from position 1.
    fn map_of(events: &[u32]) -> (HeadsMap, BTreeMap<u32, PatientHead>) {
        let mut map = HeadsMap::new();
        let mut heads: BTreeMap<u32, PatientHead> = BTreeMap::new();
        for (i, n) in events.iter().enumerate() {
            let position = i as u64 + 1;
            let revision = heads.get(n).map_or(0, |h| h.revision) + 1;
            let head = PatientHead {
                revision,
                position,
                hash: hash_of(position),
            };
            map.record(&patient(*n), head).unwrap();
            heads.insert(*n, head);
        }
        (map, heads)
    }

    /// The root recomputed from nothing but the sorted leaves, as a verifier elsewhere would.
    fn reference_root(heads: &BTreeMap<u32, PatientHead>) -> TreeHash {
        let mut leaves: Vec<(HeadKey, TreeHash)> = heads
            .iter()
            .map(|(n, h)| {
                let key = HeadKey::of(&patient(*n));
                (key, leaf(&key, &h.commitment()))
            })
            .collect();
        leaves.sort_by_key(|(key, _)| *key);
        fn mth(leaves: &[TreeHash]) -> TreeHash {
            match leaves.len() {
                0 => empty_root(),
                1 => leaves[0],
                n => {
                    let k = 1 << (63 - (n as u64 - 1).leading_zeros());
                    node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
                }
            }
        }
        mth(&leaves.iter().map(|(_, l)| *l).collect::<Vec<_>>())
    }

    #[test]
    fn the_empty_map_has_the_empty_root_and_proves_nobody() {
        let mut map = HeadsMap::new();
        let line = map.line().unwrap();
        assert_eq!((line.count, line.root), (0, empty_root()));
        assert_eq!(map.proof(&HeadKey::of(&patient(1))).unwrap(), None);
    }

    #[test]
    fn a_heads_line_reads_back_and_malformed_ones_are_refused() {
        let line = HeadsLine {
            count: 3,
            root: TreeHash([7; 32]),
        };
        let text = line.to_line();
        assert_eq!(HeadsLine::find(&["other 1", &text]), Ok(Some(line)));
        assert_eq!(HeadsLine::find(&["other 1"]), Ok(None));
        assert!(HeadsLine::find(&[&text, &text]).is_err());
        for bad in [
            "careledger/heads/v1 03 BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
            "careledger/heads/v1 3",
            "careledger/heads/v1 3 AAAA",
            &format!("{text} more"),
        ] {
            assert!(HeadsLine::find(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_record_prefix_reads_bincodes_string_and_varint() {
        let widths = [0, 1, 250, 251, 65_535, 65_536, 1 << 32, u64::MAX];
        for revision in widths {
            let bytes = bincode::serde::encode_to_vec(
                ("999990007", revision, "the rest of the record"),
                crate::record::bincode_config(),
            )
            .unwrap();
            assert_eq!(record_prefix(&bytes), Some(("999990007", revision)));
            assert_eq!(record_prefix(&bytes[..bytes.len().min(5)]), None);
        }
        assert_eq!(record_prefix(&[0xfe, 0, 0]), None);
    }

    #[test]
    fn a_revision_that_does_not_follow_is_refused() {
        let mut map = HeadsMap::new();
        let head = |revision, position| PatientHead {
            revision,
            position,
            hash: hash_of(position),
        };
        map.record(&patient(1), head(1, 1)).unwrap();
        assert!(map.record(&patient(1), head(3, 2)).is_err());
        assert!(map.record(&patient(2), head(1, 3)).is_err());
        map.record(&patient(2), head(1, 2)).unwrap();
    }

    proptest! {
        /// Random patients and events, the tree kept across several checkpoints: every
        /// patient's head proves, with its neighbours; a head that is not the last (a later
        /// event left out of an export) does not.
        #[test]
        fn every_patients_head_proves_and_an_earlier_one_does_not(
            events in proptest::collection::vec(0u32..40, 1..300),
            cuts in proptest::collection::vec(0usize..300, 0..4),
        ) {
            let mut map = HeadsMap::new();
            let mut heads: BTreeMap<u32, PatientHead> = BTreeMap::new();
            let mut history: BTreeMap<u32, Vec<PatientHead>> = BTreeMap::new();
            for (i, n) in events.iter().enumerate() {
                let position = i as u64 + 1;
                let revision = heads.get(n).map_or(0, |h| h.revision) + 1;
                let head = PatientHead { revision, position, hash: hash_of(position) };
                map.record(&patient(*n), head).unwrap();
                heads.insert(*n, head);
                history.entry(*n).or_default().push(head);
                // A checkpoint now and then: the tree is kept and updated from here on.
                if cuts.contains(&i) {
                    prop_assert_eq!(map.line().unwrap().root, reference_root(&heads));
                }
            }
            let line = map.line().unwrap();
            prop_assert_eq!(line.count, heads.len() as u64);
            prop_assert_eq!(line.root, reference_root(&heads));
            for (n, head) in &heads {
                let key = HeadKey::of(&patient(*n));
                let proof = map.proof(&key).unwrap().unwrap();
                prop_assert_eq!(proof.verify(&key, head, &line), Ok(()));
                for earlier in &history[n][..history[n].len() - 1] {
                    let refused = matches!(
                        proof.verify(&key, earlier, &line),
                        Err(HeadProofError::NotTheHead { .. })
                    );
                    prop_assert!(refused);
                }
            }
        }
    }

    /// The outcome of bringing a map to the end of `events` (patient, revision): its line and
    /// size, or the problem it stopped at.
    fn outcome(map: Result<HeadsMap>) -> std::result::Result<(HeadsLine, u64), Problem> {
        match map {
            Ok(mut map) => Ok((map.line().unwrap(), map.size())),
            Err(Error::Integrity(problem)) => Err(problem),
            Err(other) => panic!("not an integrity problem: {other}"),
        }
    }

    proptest! {
        /// A verification gathers each stretch of the chain on its own and merges the
        /// stretches in order: the same map as event by event, or the same first event that
        /// does not follow its patient's revision before it, wherever the stretches are cut.
        #[test]
        fn stretches_merged_give_the_map_or_the_problem_of_event_by_event(
            events in proptest::collection::vec((0u32..8, 0u32..50), 1..200),
            cuts in proptest::collection::btree_set(1usize..200, 0..6),
            faulty in proptest::bool::ANY,
        ) {
            // In a faulty ledger, one event in 25 skips a revision or repeats one.
            let mut revisions: BTreeMap<u32, u64> = BTreeMap::new();
            let events: Vec<(PatientId, PatientHead)> = events
                .iter()
                .enumerate()
                .map(|(i, (n, chance))| {
                    let last = revisions.get(n).copied().unwrap_or(0);
                    let revision = match chance {
                        0 if faulty => last + 2,
                        1 if faulty => last,
                        _ => last + 1,
                    };
                    revisions.insert(*n, revision);
                    let position = i as u64 + 1;
                    (patient(*n), PatientHead { revision, position, hash: hash_of(position) })
                })
                .collect();

            let one_by_one = (|| {
                let mut map = HeadsMap::new();
                for (patient, head) in &events {
                    map.record(patient, *head)?;
                }
                Ok(map)
            })();

            let mut bounds: Vec<usize> = cuts.into_iter().filter(|c| *c < events.len()).collect();
            bounds.insert(0, 0);
            bounds.push(events.len());
            let merged = (|| {
                let mut map = HeadsMap::new();
                for pair in bounds.windows(2) {
                    let mut stretch = Stretch::default();
                    for (patient, head) in &events[pair[0]..pair[1]] {
                        stretch.add(patient.as_str(), *head);
                    }
                    let (runs, problem) = stretch.finish();
                    map.merge_runs(pair[1] as u64, runs, problem)?;
                }
                Ok(map)
            })();
            prop_assert_eq!(outcome(merged), outcome(one_by_one));
        }
    }

    #[test]
    fn a_neighbour_left_out_or_out_of_order_is_refused() {
        let (mut map, heads) = map_of(&[1, 2, 3, 1, 4, 2]);
        let line = map.line().unwrap();
        let (n, head) = heads
            .iter()
            .find(|(n, _)| {
                let proof = map.proof(&HeadKey::of(&patient(**n))).unwrap().unwrap();
                proof.left.is_some() && proof.right.is_some()
            })
            .unwrap();
        let key = HeadKey::of(&patient(*n));
        let proof = map.proof(&key).unwrap().unwrap();
        assert_eq!(proof.verify(&key, head, &line), Ok(()));
        let mut no_left = proof.clone();
        no_left.left = None;
        assert!(matches!(
            no_left.verify(&key, head, &line),
            Err(HeadProofError::Neighbour { side: "left", .. })
        ));
        let mut swapped = proof.clone();
        std::mem::swap(&mut swapped.left, &mut swapped.right);
        assert!(swapped.verify(&key, head, &line).is_err());
        let mut moved = proof.clone();
        if let Some(right) = moved.right.as_mut() {
            right.index += 1;
        }
        assert!(moved.verify(&key, head, &line).is_err());
    }
}
