//! The ledger: the one facade over the event log ([`crate::log`]) and the command handler
//! ([`crate::handler`]) that writes to it.
//!
//! **Invariant:** an event, once acknowledged, is never rewritten or deleted; [`Ledger::append`]
//! is the only write path. Appends are serialised by one writer lock (which assigns positions
//! and links the chain) and made durable by a shared sync: every append whose batch was
//! committed before a sync starts is covered by that sync (group commit). Readers see only
//! durable events.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::anchor::{anchor_path, Anchor, Damage};
use crate::clock::{Clock, IdSource, RandomIds, SystemClock};
use crate::decide::{PatientState, Policy};
use crate::error::{Error, Result};
use crate::handler::{CommandHandler, Log};
use crate::heads::HeadsMap;
use crate::ids::PatientId;
use crate::journal::{journal_path, Journal};
use crate::log::{decode_frame, decode_framed};
use crate::record::{FramedEvent, RecordedEvent};
use crate::storage::{SledStorage, Storage, WriteBatch};
use crate::verify::{Recompute, Verified, VerifyReport};

pub use crate::handler::{
    AppendOutcome, AppendRequest, Appended, ExpectedRevision, Submission, MAX_BATCH,
    MAX_FUTURE_MINUTES, MAX_IDEMPOTENCY_KEY_LEN,
};
pub use crate::log::Head;

/// Options for opening a ledger.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// The rules' settings.
    pub policy: Policy,
    /// After a storage failure, how often an append may try to reopen the storage (by
    /// [`LedgerConfig::clock`]). Reopening replays sled's log, so it is not tried on every
    /// request.
    pub reopen_interval: Duration,
    /// Where the time comes from: events' `recorded_at`, the retry timing, the checkpointer's
    /// interval. The system clock by default.
    pub clock: Arc<dyn Clock>,
    /// Where new event ids (and the correlation ids requests leave out) come from: random
    /// version 4 UUIDs by default.
    pub ids: Arc<dyn IdSource>,
    /// sled's page cache for the ledger, in bytes (a share of `careledger serve
    /// --memory-budget`); 1 GiB by default ([`crate::storage::CACHE_BYTES`]).
    pub cache_bytes: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            reopen_interval: Duration::from_millis(200),
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds),
            cache_bytes: crate::storage::CACHE_BYTES,
        }
    }
}

/// The care-plan ledger.
pub struct Ledger {
    log: Log,
    handler: CommandHandler,
}

impl Ledger {
    /// Opens (or creates) a ledger in `dir` on sled, with its anchor and its write-ahead
    /// journal next to it ([`crate::anchor::anchor_path`], [`crate::journal::journal_path`]),
    /// replaying the journal into sled, checking the head of the chain and comparing the ledger
    /// with the anchor. A damaged ledger opens for reading only ([`Ledger::damage`]); files
    /// so damaged that sled fails inside its own recovery give an error naming them.
    pub fn open(dir: &Path, config: LedgerConfig) -> Result<Ledger> {
        let open = || {
            let storage = SledStorage::open_with_cache(dir, config.cache_bytes)?;
            let anchor = Anchor::open(&anchor_path(dir))?;
            let journal = Journal::open(&journal_path(dir))?;
            Self::build(Box::new(storage), Some(anchor), Some(journal), config)
        };
        crate::anchor::catch_damage(&format!("opening the ledger in {}", dir.display()), open)
    }

    /// Opens a ledger on any storage, with the anchor at `anchor` (created when missing).
    pub fn with_storage_and_anchor(
        storage: Box<dyn Storage>,
        anchor: &Path,
        config: LedgerConfig,
    ) -> Result<Ledger> {
        Self::build(storage, Some(Anchor::open(anchor)?), None, config)
    }

    /// Opens a ledger on any storage with the anchor at `anchor` and the write-ahead journal at
    /// `journal` (both created when missing): a group commit then syncs the journal alone, as a
    /// ledger opened by [`Ledger::open`] does.
    pub fn with_storage_anchor_and_journal(
        storage: Box<dyn Storage>,
        anchor: &Path,
        journal: &Path,
        config: LedgerConfig,
    ) -> Result<Ledger> {
        Self::build(
            storage,
            Some(Anchor::open(anchor)?),
            Some(Journal::open(journal)?),
            config,
        )
    }

    /// Opens a ledger on any storage, without an anchor. When the head does not verify, the
    /// ledger opens for reading and verification but refuses writes; [`Ledger::head_problem`]
    /// says why.
    pub fn with_storage(storage: Box<dyn Storage>, config: LedgerConfig) -> Result<Ledger> {
        Self::build(storage, None, None, config)
    }

    fn build(
        storage: Box<dyn Storage>,
        anchor: Option<Anchor>,
        journal: Option<(Journal, Vec<WriteBatch>)>,
        config: LedgerConfig,
    ) -> Result<Ledger> {
        let log = Log::open(
            storage,
            anchor,
            journal,
            config.clock.clone(),
            config.reopen_interval,
        )?;
        Ok(Ledger {
            log,
            handler: CommandHandler::new(config.policy, config.clock, config.ids),
        })
    }

    /// Why the ledger refuses writes (a damaged head, an earlier storage failure), if it does.
    pub fn head_problem(&self) -> Option<String> {
        self.log.head_problem()
    }

    /// The damage found on open (acknowledged events missing or changed, a damaged anchor or
    /// head) or by a verification since, if any: the ledger then serves reads and refuses writes.
    pub fn damage(&self) -> Option<Damage> {
        self.log.damage()
    }

    /// After a storage failure, tries to take writes again without waiting for one: reopens
    /// the storage (at most every reopen interval, once a probe write succeeds), as the next
    /// append would. Ok when the ledger takes writes; the refusal otherwise. A background
    /// probe calls it, so that `/health` recovers with no write sent.
    pub fn recover(&self) -> Result<()> {
        self.log.lock_writer().map(drop)
    }

    /// The cheap check behind `/health`: the damage found on open, a storage failure, or a
    /// stored head that has fallen behind, or differs from, the anchor's last entry.
    pub fn health(&self) -> std::result::Result<(), Error> {
        self.log.health()
    }

    /// Where the anchor lives, when the ledger keeps one (for a backup's copy of it).
    pub(crate) fn anchor_file(&self) -> Option<std::path::PathBuf> {
        self.log.anchor_path()
    }

    /// Where the ledger's journal lives, when it keeps one.
    pub fn journal_file(&self) -> Option<std::path::PathBuf> {
        self.log.journal_path()
    }

    /// Whether the journal's appends bypass the page cache (`O_DIRECT | O_DSYNC`, where the file
    /// system allows it) or are written and then `fdatasync`ed; `None` without a journal.
    pub fn journal_writes_directly(&self) -> Option<bool> {
        self.log.journal_writes_directly()
    }

    /// The storage, for the modules that read it directly (the Merkle tree, a backup).
    pub(crate) fn storage(&self) -> &dyn Storage {
        self.log.storage()
    }

    /// The clock the ledger takes its time from ([`LedgerConfig::clock`]).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        self.log.clock()
    }

    /// The durable head.
    pub fn head(&self) -> Head {
        self.log.head()
    }

    /// Registers a function called with the new durable position after every group commit.
    /// It runs on the appending thread: keep it short and never block in it.
    pub fn on_durable(&self, listener: impl Fn(u64) + Send + Sync + 'static) {
        self.log.on_durable(listener);
    }

    /// Appends the request's commands atomically and returns once they are durable.
    pub fn append(&self, request: AppendRequest) -> Result<AppendOutcome> {
        self.handler.append(&self.log, request, None)
    }

    /// Appends the commands of a client system's signed request (the API has checked that
    /// `signed` is this request's): refused with [`Error::Signature`] unless its key is
    /// registered for the request's actor and in use, the signature verifies, it was created
    /// within five minutes of the ledger's clock and it was not used before. The request is
    /// stored with the events, and each event's record names its hash.
    pub fn append_signed(
        &self,
        request: AppendRequest,
        signed: &crate::signed_request::SignedRequest,
    ) -> Result<AppendOutcome> {
        self.handler.append(&self.log, request, Some(signed))
    }

    /// The stored bytes of the signed request with this hash (a record's `signed_request`).
    pub fn signed_request(&self, hash: &crate::Hash) -> Result<Option<Vec<u8>>> {
        self.log.signed_request(hash)
    }

    /// The signing keys as the durable events of the key stream say: the key stream's state,
    /// folded as the rules fold it.
    pub fn key_registry(&self) -> Result<crate::signing_keys::KeyRegistry> {
        Ok(self
            .patient_state(&crate::signing_keys::key_stream())?
            .keys()
            .clone())
    }

    /// The patient's state as the rules see it (care team, active medication...), durable events only.
    pub fn patient_state(&self, patient: &PatientId) -> Result<PatientState> {
        Ok(crate::handler::fold(&self.log.read_stream(
            patient,
            1,
            usize::MAX,
            decode_frame,
        )?))
    }

    /// The patient's durable events from `from_revision` (1 is the first), up to `limit`.
    pub fn read_stream(
        &self,
        patient: &PatientId,
        from_revision: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        self.log
            .read_stream(patient, from_revision, limit, decode_frame)
    }

    /// As [`Ledger::read_stream`], each event with its frame as stored: what a client hashes
    /// again to check the event (`docs/hash-format.md`). The frame is the one each event is
    /// decoded from; nothing is read twice.
    pub fn read_stream_framed(
        &self,
        patient: &PatientId,
        from_revision: u64,
        limit: usize,
    ) -> Result<Vec<FramedEvent>> {
        self.log
            .read_stream(patient, from_revision, limit, decode_framed)
    }

    /// Every patient with events, each once, in the order of the per-patient index (by the
    /// id's length, then the id); ids that are no patient (the key stream) are left out. `None`
    /// when the storage keeps no index it can list. A read model rebuilt patient by patient
    /// starts here.
    pub fn patients(&self) -> Result<Option<Vec<PatientId>>> {
        let mut patients = Vec::new();
        let mut last: Vec<u8> = Vec::new();
        let listed = self.log.storage().scan_index(&mut |id, _, _| {
            if id != last.as_slice() {
                last.clear();
                last.extend_from_slice(id);
                if let Some(patient) = std::str::from_utf8(id)
                    .ok()
                    .and_then(|id| PatientId::parse(id).ok())
                {
                    patients.push(patient);
                }
            }
            true
        })?;
        Ok(listed.then_some(patients))
    }

    /// Durable events of all patients after `after` (0 for the start), up to `limit`, in order.
    pub fn read_all(&self, after: u64, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.log.read_all(after, limit, decode_frame)
    }

    /// As [`Ledger::read_all`], each event with its frame as stored (see
    /// [`Ledger::read_stream_framed`]).
    pub fn read_all_framed(&self, after: u64, limit: usize) -> Result<Vec<FramedEvent>> {
        self.log.read_all(after, limit, decode_framed)
    }

    /// Visits every durable event from position `from`, in order, without collecting them.
    pub fn for_each(
        &self,
        from: u64,
        visit: &mut dyn FnMut(RecordedEvent) -> Result<()>,
    ) -> Result<()> {
        self.log.for_each(from, visit)
    }

    /// The durable event at `position`.
    pub fn read_position(&self, position: u64) -> Result<RecordedEvent> {
        self.log.read_position(position)
    }

    /// Verifies the whole chain, the per-patient index against the frames, and the ledger
    /// against its anchor (no acknowledged event missing or changed), calling
    /// `progress(verified, total)` now and then. Damaged files give a report or an error naming
    /// the damage, never a panic.
    ///
    /// Damage found here (a gap in the middle, a changed byte, a wrong index entry: what the
    /// cheap comparison on open cannot see) makes the ledger refuse writes from then on, as
    /// damage found on open does.
    pub fn verify(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
        self.verify_recomputing(progress, Recompute::default())
            .map(|verified| verified.report)
    }

    /// [`Ledger::verify`], which recomputes the Merkle tree's root from the verified hashes at
    /// the end (always) and at each of `tree_sizes` it reaches, in the same pass: what a
    /// signed checkpoint is checked against ([`crate::checkpoint::check_tree_of`]).
    pub fn verify_with_roots(
        &self,
        progress: &mut dyn FnMut(u64, u64),
        tree_sizes: &[u64],
    ) -> Result<VerifyReport> {
        let recompute = Recompute {
            tree_sizes: Some(tree_sizes),
            heads_at: None,
        };
        self.verify_recomputing(progress, recompute)
            .map(|verified| verified.report)
    }

    /// What an auditor checks of a signed checkpoint of tree size `size`, in one pass over the
    /// ledger: [`Ledger::verify_with_roots`] at `size`, and the heads map of that tree
    /// recomputed from the verified events, which [`crate::heads::check_signed_of`] compares
    /// with the one the checkpoint signed. The map is `None` when the chain has a problem or
    /// ends before `size`, and an error, as [`HeadsMap::build`] gives, when an event up to
    /// `size` does not follow its patient's revision before it.
    pub fn verify_for_checkpoint(
        &self,
        progress: &mut dyn FnMut(u64, u64),
        size: u64,
    ) -> Result<(VerifyReport, Option<Result<HeadsMap>>)> {
        let recompute = Recompute {
            tree_sizes: Some(&[size]),
            heads_at: Some(size),
        };
        let verified = self.verify_recomputing(progress, recompute)?;
        Ok((verified.report, verified.heads))
    }

    fn verify_recomputing(
        &self,
        progress: &mut dyn FnMut(u64, u64),
        recompute: Recompute<'_>,
    ) -> Result<Verified> {
        let never = std::sync::atomic::AtomicBool::new(false);
        let verified = self.log.verify(progress, &never, recompute)?;
        // Only `cancel` ends a scan without a report, and nothing sets this one.
        verified.ok_or_else(|| Error::Poisoned("verification stopped without a cause".into()))
    }

    /// [`Ledger::verify`], stopped between chunks of the scan once `cancel` turns true: `None`
    /// then, since what was not read is neither intact nor damaged. The HTTP server stops a
    /// scan whose request has timed out or whose client has gone.
    pub fn verify_cancellable(
        &self,
        progress: &mut dyn FnMut(u64, u64),
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<Option<VerifyReport>> {
        let verified = self.log.verify(progress, cancel, Recompute::default())?;
        Ok(verified.map(|verified| verified.report))
    }

    /// Bytes the ledger occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64> {
        self.log.size_on_disk()
    }
}

/// Shared handle type used by the servers.
pub type SharedLedger = Arc<Ledger>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ManualClock, SeededIds};
    use crate::event::{Command, SharedCare};
    use crate::ids::{ActorId, Text};
    use crate::record::{Actor, Timestamp};
    use crate::role::Role;

    fn found() -> AppendRequest {
        AppendRequest {
            patient: PatientId::parse("999990007").unwrap(),
            expected: ExpectedRevision::NoStream,
            actor: Actor {
                id: ActorId::parse("gp-1").unwrap(),
                role: Role::Gp,
                name: Text::new("Dr. GP").unwrap(),
                organisation: None,
            },
            submissions: vec![Submission {
                command: Command::StartSharedCare(SharedCare {
                    arrangement: Text::new("shared").unwrap(),
                }),
                occurred_at: None,
                reason: Text::new("referral").unwrap(),
            }],
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    #[test]
    fn a_ledger_given_its_clock_and_seeded_ids_records_the_same_chain_again() {
        let start = Timestamp::from_micros(1_772_355_600_000_000);
        let run = || {
            let dir = tempfile::tempdir().unwrap();
            let config = LedgerConfig {
                clock: Arc::new(ManualClock::new(start)),
                ids: Arc::new(SeededIds::new(42)),
                ..LedgerConfig::default()
            };
            let ledger = Ledger::open(&dir.path().join("ledger"), config).unwrap();
            ledger.append(found()).unwrap();
            ledger.read_all(0, usize::MAX).unwrap()
        };
        let (first, again) = (run(), run());
        assert_eq!(first, again);
        assert!(first.iter().all(|e| e.record.recorded_at == start));
        assert_ne!(first[0].record.event_id, first[1].record.event_id);
    }

    #[test]
    fn a_cancelled_verification_gives_no_report_and_an_uncancelled_one_the_whole_chain() {
        use std::sync::atomic::AtomicBool;
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        ledger.append(found()).unwrap();
        let cancelled = ledger
            .verify_cancellable(&mut |_, _| {}, &AtomicBool::new(true))
            .unwrap();
        assert!(cancelled.is_none(), "{cancelled:?}");
        let report = ledger
            .verify_cancellable(&mut |_, _| {}, &AtomicBool::new(false))
            .unwrap()
            .unwrap();
        assert!(report.is_intact());
        assert_eq!(report.verified, ledger.head().position);
        // A cancelled scan found nothing wrong and so leaves writes alone.
        assert!(ledger.health().is_ok());
    }

    #[test]
    fn framed_reads_give_each_event_with_the_frame_it_was_decoded_from() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        ledger.append(found()).unwrap();
        let patient = PatientId::parse("999990007").unwrap();
        let plain = ledger.read_all(0, usize::MAX).unwrap();
        let framed = ledger.read_all_framed(0, usize::MAX).unwrap();
        let stream = ledger.read_stream_framed(&patient, 1, usize::MAX).unwrap();
        assert_eq!(framed, stream);
        assert_eq!(framed.len(), plain.len());
        for (f, e) in framed.iter().zip(&plain) {
            assert_eq!(&f.event, e);
            let frame = crate::chain::Frame::parse(&f.frame).unwrap();
            assert_eq!(frame.hash, e.hash);
            assert_eq!(frame.prev_hash, e.prev_hash);
            assert_eq!(frame.computed_hash(e.position), e.hash);
        }
    }
}
