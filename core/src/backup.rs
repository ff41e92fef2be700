//! A consistent copy of a running ledger's first events, for an online backup.
//!
//! The ledger is append-only and keyed by position, so its first `size` events, once durable,
//! never change: copying every stored frame up to a durable head `size`, the per-patient index
//! entries and signed requests of those frames, the idempotency entries that name only those
//! positions, and the anchor's entries up to `size` gives a ledger that is exactly this one at
//! `size`, while writes continue after it. The copy's Merkle tree is built from its frames when
//! it is first opened (as for any ledger whose stored tree is shorter than its chain), and
//! [`Ledger::copy_prefix`] opens the copy and verifies it before it reports success.

use std::path::Path;

use crate::anchor::{anchor_path, hashes_up_to, Anchor};
use crate::chain::Frame;
use crate::error::{Error, Result, StorageError};
use crate::ledger::{Ledger, LedgerConfig};
use crate::log::decode_frame;
use crate::merkle::TreeHead;
use crate::record::Hash;
use crate::storage::{SledStorage, Storage, WriteBatch};

/// Frames written to the copy per batch.
const FRAMES_PER_BATCH: usize = 4096;

/// What a copy holds, checked by opening and verifying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiedLedger {
    /// Events copied (the copy's head position).
    pub size: u64,
    /// The copy's head hash, equal to the source's at `size`.
    pub head_hash: Hash,
    /// The copy's Merkle tree head, equal to the source's at `size`.
    pub tree: TreeHead,
    /// Idempotency entries copied.
    pub idempotency_entries: u64,
    /// Signed requests copied.
    pub signed_requests: u64,
}

impl Ledger {
    /// Copies the first `size` events (at most the durable head) into a new ledger in `dir`
    /// (which must not hold one), with its anchor beside it, then opens the copy and verifies
    /// it: chain, index and anchor intact, the head hash and the Merkle root at `size` equal to
    /// this ledger's. Reads only what is durable; appends go on meanwhile.
    pub fn copy_prefix(&self, dir: &Path, size: u64) -> Result<CopiedLedger> {
        let head = self.head().position;
        if size > head {
            return Err(StorageError::other(format!(
                "cannot copy {size} events: the durable head is at {head}"
            ))
            .into());
        }
        if dir.join("db").exists() {
            return Err(StorageError::other(format!(
                "{} already holds a ledger; copy into an empty directory",
                dir.display()
            ))
            .into());
        }
        let source_head = self.tree_head(size)?;
        let source_hash = match size {
            0 => Hash::ZERO,
            _ => self.read_position(size)?.hash,
        };
        let (idempotency_entries, signed_requests) = {
            let target = SledStorage::open(dir)?;
            let signed = self.copy_frames(&target, size)?;
            let idempotency = self.copy_idempotency(&target, size)?;
            target.sync()?;
            (idempotency, signed)
        };
        self.copy_anchor(&anchor_path(dir), size)?;

        // Opened as any ledger: the tree is built from the frames, the anchor compared.
        let copy = Ledger::open(dir, LedgerConfig::default())?;
        let report = copy.verify(&mut |_, _| {})?;
        if let Some(problem) = report.problem {
            return Err(
                StorageError::corrupt(format!("the copy does not verify: {problem}")).into(),
            );
        }
        let tree = copy.tree_head(size)?;
        let copied = copy.head();
        if copied.position != size || copied.hash != source_hash || tree != source_head {
            return Err(StorageError::corrupt(format!(
                "the copy's head ({}, {}) is not the ledger's at {size} ({source_hash})",
                copied.position, copied.hash
            ))
            .into());
        }
        Ok(CopiedLedger {
            size,
            head_hash: copied.hash,
            tree,
            idempotency_entries,
            signed_requests,
        })
    }

    /// Writes frames 1 to `size` with their index entries and signed requests; the number of
    /// signed requests copied.
    fn copy_frames(&self, target: &SledStorage, size: u64) -> Result<u64> {
        let mut batch = WriteBatch::default();
        let mut signed = 0;
        let mut failure: Option<Error> = None;
        let flush = |batch: &mut WriteBatch| target.commit(std::mem::take(batch));
        self.storage().scan(1, &mut |position, frame| {
            if position > size {
                return false;
            }
            let step = (|| -> Result<()> {
                let event = decode_frame(position, frame)?;
                let record = &event.record;
                batch
                    .index
                    .push((record.patient.clone(), record.revision, position));
                if let Some(hash) = record.signed_request {
                    if let Some(bytes) = self.storage().signed_request(&hash)? {
                        batch.signed_requests.push((hash, bytes));
                        signed += 1;
                    }
                }
                batch.frames.push((position, frame.to_vec()));
                if batch.frames.len() >= FRAMES_PER_BATCH {
                    flush(&mut batch)?;
                }
                Ok(())
            })();
            match step {
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
        if !batch.frames.is_empty() {
            flush(&mut batch)?;
        }
        Ok(signed)
    }

    /// Copies the idempotency entries whose appends lie within the first `size` events.
    fn copy_idempotency(&self, target: &SledStorage, size: u64) -> Result<u64> {
        let mut batch = WriteBatch::default();
        self.storage().scan_idempotency(&mut |key, value| {
            let within = crate::handler::parse_idempotency_value(value)
                .is_some_and(|(_, positions)| positions.iter().all(|p| *p <= size));
            if within {
                batch.idempotency.push((key.to_vec(), value.to_vec()));
            }
        })?;
        let copied = batch.idempotency.len() as u64;
        if copied > 0 {
            target.commit(batch)?;
        }
        Ok(copied)
    }

    /// Writes the anchor's entries for positions 1 to `size` into a new anchor at `path`.
    fn copy_anchor(&self, path: &Path, size: u64) -> Result<()> {
        let Some(source) = self.anchor_file() else {
            return Ok(());
        };
        let mut hashes = hashes_up_to(&source, size)?;
        // The events after the last checkpoint are durable in the journal and anchored by the
        // next one: their hashes come from the stored frames.
        if (hashes.len() as u64) < size && self.journal_file().is_some() {
            let mut failure = None;
            self.storage()
                .scan(hashes.len() as u64 + 1, &mut |position, frame| {
                    if position > size {
                        return false;
                    }
                    match Frame::parse(frame) {
                        Some(f) if position == hashes.len() as u64 + 1 => {
                            hashes.push(f.hash);
                            true
                        }
                        _ => {
                            failure = Some(position);
                            false
                        }
                    }
                })?;
            if let Some(position) = failure {
                return Err(StorageError::corrupt(format!(
                    "the frame at position {position} does not parse; nothing was copied past it"
                ))
                .into());
            }
        }
        if (hashes.len() as u64) < size {
            return Err(StorageError::corrupt(format!(
                "the anchor {} holds {} events, fewer than the {size} to copy",
                source.display(),
                hashes.len()
            ))
            .into());
        }
        let mut anchor = Anchor::open(path)?;
        for (chunk, first) in hashes
            .chunks(FRAMES_PER_BATCH)
            .zip((1..).step_by(FRAMES_PER_BATCH))
        {
            anchor.append_copied(first, chunk)?;
        }
        Ok(())
    }
}
