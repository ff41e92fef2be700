//! The application: one data directory's ledger, read models, actors, projector and feed, and
//! the operations every front end (HTTP, the command-line tool, the demo) goes through.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::watch;

use careledger_core::checkpoint::{CheckpointConfig, Checkpointer};
use careledger_core::event::{Acknowledgement, Command};
use careledger_core::export::Export;
use careledger_core::ids::{PatientId, Text};
use careledger_core::merkle::{ConsistencyProof, InclusionProof, TreeHash};
use careledger_core::notify;
use careledger_core::role::Line;
use careledger_core::timing::Phase;
use careledger_core::verify::VerifyReport;
use careledger_core::{AppendOutcome, AppendRequest, ExpectedRevision, Ledger, Submission};
use careledger_projections::{PatientView, Projections};

use crate::access;
use crate::actors::{AccessRole, ActorStore, RegisteredActor, TokenRefusal};
use crate::data_dir::DataDir;
use crate::error::AppError;
use crate::feed::{Feed, Render};
use crate::hold::WriteHolds;
use crate::projector::Projector;
use crate::recovery::RecoveryProbe;

/// How long a read (or a write held back by [`PROJECTION_LAG_LIMIT`], or the stream's filter by
/// care team) waits for the read models before going on with what they show.
pub const READ_YOUR_WRITES: Duration = Duration::from_secs(5);

/// How many events the read models may fall behind the durable head before a write's answer waits
/// for them: the bound on what a read waits for after a burst of writes (the projector applies
/// several thousand events a second on this class of machine, so well under a second).
pub const PROJECTION_LAG_LIMIT: u64 = 1_000;

/// What a writer asks for: commands for one patient, and the conditions they are written on.
pub struct Write {
    /// The patient.
    pub patient: PatientId,
    /// The commands, written atomically.
    pub submissions: Vec<Submission>,
    /// The patient's revision the writer has seen.
    pub expected: ExpectedRevision,
    /// A key that makes a retry return the first outcome instead of writing again.
    pub idempotency_key: Option<String>,
}

/// A patient in the caller's care: what a practitioner's list of patients shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MyPatient {
    /// The patient.
    pub patient: PatientId,
    /// Their name, as the care team has it, when the patient is a member.
    pub name: Option<String>,
    /// Notifications to the caller's line not yet acknowledged.
    pub open_notifications: u64,
    /// Signals worth a clinician's attention (duplicate lab work, targets not met...).
    pub signals: u64,
    /// The plan's revision.
    pub revision: u64,
}

/// One data directory in use: everything a request needs, cheap to clone.
#[derive(Clone)]
pub struct App {
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// The read models.
    pub projections: Arc<Projections>,
    /// Actors and tokens.
    pub actors: Arc<ActorStore>,
    /// Durable events, rendered once for every subscriber.
    pub feed: Arc<Feed>,
    /// The data directory.
    pub path: std::path::PathBuf,
    /// Why writes are held, when they are: checked before every append, reported by `/health`.
    pub holds: Arc<WriteHolds>,
    projector: Arc<Projector>,
    _recovery: Arc<RecoveryProbe>,
    last_used: Arc<LastUsedWriter>,
    /// When this server's checkpointer signs, once one is followed ([`App::follow_checkpoints`]).
    signing: Arc<OnceLock<CheckpointConfig>>,
    durable: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    shutdown_tx: Arc<watch::Sender<bool>>,
}

impl App {
    /// Starts the projector over an opened data directory; `render` renders each durable event
    /// for the feed's subscribers.
    pub fn start(dir: &DataDir, render: Render) -> App {
        let ledger = dir.ledger.clone();
        let (tx, durable) = watch::channel(ledger.head().position);
        ledger.on_durable(move |position| {
            tx.send_if_modified(|current| {
                let newer = position > *current;
                if newer {
                    *current = position;
                }
                newer
            });
        });
        let (shutdown_tx, shutdown) = watch::channel(false);
        let projector = Arc::new(Projector::start(ledger.clone(), dir.projections.clone()));
        App {
            feed: Arc::new(Feed::new(ledger.head().position, render)),
            path: dir.path.clone(),
            holds: dir.holds.clone(),
            _recovery: Arc::new(RecoveryProbe::start(
                &ledger,
                &dir.holds,
                dir.reserve.clone(),
            )),
            ledger,
            projections: dir.projections.clone(),
            actors: dir.actors.clone(),
            projector,
            last_used: Arc::new(LastUsedWriter::start(&dir.actors)),
            signing: Arc::new(OnceLock::new()),
            durable,
            shutdown,
            shutdown_tx: Arc::new(shutdown_tx),
        }
    }

    /// Hands every checkpoint `checkpointer` signs from now on to the feed's subscribers, and
    /// remembers when it signs (for the refusal of an export that waits for the next).
    pub fn follow_checkpoints(&self, checkpointer: &Checkpointer) {
        let _ = self.signing.set(checkpointer.config());
        let feed = self.feed.clone();
        checkpointer.on_issued(move |note| feed.publish_checkpoint(note));
        if let Some(latest) = checkpointer.latest() {
            self.feed.publish_checkpoint(&latest);
        }
    }

    /// Follows the durable position.
    pub fn durable(&self) -> watch::Receiver<u64> {
        self.durable.clone()
    }

    /// Turns true when the server shuts down, so that open streams end.
    pub fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }

    /// Ends the open streams; requests in flight finish.
    pub fn begin_shutdown(&self) {
        self.shutdown_tx.send_replace(true);
    }

    /// Keeps the feed current until the ledger's durable channel closes; run it on a task.
    pub async fn run_feed(&self) {
        self.feed.run(self.ledger.clone(), self.durable()).await;
    }

    /// Stops the projector, writes the read models and the actors' last uses. While other clones of the app are still
    /// held (a stream not yet dropped), the projector keeps running for them, and what is
    /// durable is applied and written all the same.
    pub fn finish(self) -> Result<(), AppError> {
        let App {
            projector,
            ledger,
            projections,
            actors,
            last_used,
            ..
        } = self;
        drop(last_used);
        let projected = match Arc::try_unwrap(projector) {
            Ok(projector) => projector.finish().map_err(AppError::from),
            Err(_) => (|| -> Result<(), AppError> {
                projections.apply_new(&ledger)?;
                projections.persist()?;
                Ok(projections.flush()?)
            })(),
        };
        // The last uses are written whether or not the read models could be.
        let used = actors.write_last_used();
        projected.and(used)
    }

    /// The actor a bearer token belongs to; refused when it is unknown, expired, revoked or
    /// replaced by a rotation, saying which.
    pub fn authenticate(&self, token: &str) -> Result<RegisteredActor, AppError> {
        self.actors
            .authenticate(token, careledger_core::record::Timestamp::now())
            .map_err(refused)
    }

    /// The actor an OpenID Connect subject (a validated access token's `iss` and `sub`)
    /// reaches; refused when no actor is reached by it or the actor is revoked.
    pub fn authenticate_subject(
        &self,
        subject: &crate::actors::OidcSubject,
    ) -> Result<RegisteredActor, AppError> {
        match self
            .actors
            .authenticate_subject(subject, careledger_core::record::Timestamp::now())
        {
            Some(outcome) => outcome.map_err(refused),
            None => Err(AppError::TokenRefused {
                code: "oidc_subject_unknown".into(),
                message: format!(
                    "the access token is valid, but no actor is reached by subject {:?} of {}; \
                     the operator registers it (careledger actors add ... --oidc-issuer {} \
                     --oidc-subject {})",
                    subject.subject, subject.issuer, subject.issuer, subject.subject
                ),
            }),
        }
    }

    /// Refuses an operator the global log and the stream: they read no patient data.
    pub fn may_read_log(&self, caller: &RegisteredActor) -> Result<(), AppError> {
        match caller.role {
            AccessRole::Operator => Err(access::operator_reads_no_patient_data()),
            _ => Ok(()),
        }
    }

    /// Refuses a caller who may not read this patient.
    pub fn may_read(&self, caller: &RegisteredActor, patient: &PatientId) -> Result<(), AppError> {
        access::may_read(&self.projections, caller, patient)
    }

    /// Whether the caller may see this patient's events in the log or the stream.
    pub fn sees_events_of(&self, caller: &RegisteredActor, patient: &PatientId) -> bool {
        access::sees_events_of(&self.projections, &self.actors, caller, patient)
    }

    /// Waits, when the caller's view of the log depends on care teams, until the read models
    /// hold the events up to `position`, so that [`App::sees_events_of`] judges an event by a
    /// care team that includes it (a subscriber must not miss the event that adds their
    /// organisation to a team).
    pub async fn judges_events_through(&self, caller: &RegisteredActor, position: u64) {
        if access::sees_events_by_care_team(caller) {
            self.projected(position).await;
        }
    }

    /// Calls `f` with the patient's read models, which the caller must have been allowed to read
    /// ([`App::may_read`]); a patient without a record gets the same refusal as one the caller
    /// may not see.
    pub fn with_view<R>(
        &self,
        patient: &PatientId,
        f: impl FnOnce(&PatientView) -> R,
    ) -> Result<R, AppError> {
        self.projections
            .with_view(patient, f)?
            .ok_or_else(AppError::not_in_care_team)
    }

    /// The patients whose care team has the caller, each with the caller's line's open
    /// notifications and the patient's signals counted as of `now`, in patient-id order: a
    /// practitioner's list of their patients. A patient actor gets their own record; other
    /// roles (auditors, subscribers, the operator) are in no care team and get none.
    ///
    /// The one query over the read models for this list, so that it moves with them.
    pub fn my_patients(
        &self,
        caller: &RegisteredActor,
        now: careledger_core::record::Timestamp,
    ) -> Vec<MyPatient> {
        use careledger_projections::notifications::{for_line, Which};
        let Some(line) = caller.line() else {
            return Vec::new();
        };
        let config = self.projections.config();
        // The index of a member's patients, then each patient's view (from the cache, or read
        // from disk): memory stays bounded whatever the number of patients.
        let patients = match self.projections.patients_of(&caller.id) {
            Ok(patients) => patients,
            Err(e) => {
                tracing::error!(error = %e, "listing a practitioner's patients failed");
                return Vec::new();
            }
        };
        patients
            .into_iter()
            .filter_map(|patient| {
                let view = self.projections.view(&patient).ok().flatten()?;
                view.plan
                    .care_team
                    .iter()
                    .any(|m| m.actor == caller.id)
                    .then(|| MyPatient {
                        patient: patient.clone(),
                        name: view
                            .plan
                            .care_team
                            .iter()
                            .find(|m| m.role == careledger_core::role::Role::Patient)
                            .map(|m| m.name.to_string()),
                        open_notifications: for_line(&view, line, Which::Open, config, now).len()
                            as u64,
                        signals: careledger_projections::signals::signals(&view, config, now).len()
                            as u64,
                        revision: view.plan.revision,
                    })
            })
            .collect()
    }

    /// Refuses a caller who may not write to this patient's record at all: only care roles
    /// write, and a patient actor only to their own record. Checked before anything of the
    /// request is read; who may write what is `decide`'s.
    pub fn may_write(
        &self,
        caller: &RegisteredActor,
        patient: &PatientId,
    ) -> Result<careledger_core::Actor, AppError> {
        let actor = caller.as_care_actor().ok_or_else(|| {
            AppError::Forbidden(format!(
                "an {} does not write to the ledger",
                caller.role.as_str()
            ))
        })?;
        if !access::is_self(caller, patient) {
            return Err(AppError::not_in_care_team());
        }
        Ok(actor)
    }

    /// Appends the caller's commands (blocking until they are durable): [`App::may_write`], then
    /// a new care-team member must be a registered actor in the role they are added in;
    /// everything else is `decide`'s.
    pub fn append(
        &self,
        caller: &RegisteredActor,
        write: Write,
    ) -> Result<AppendOutcome, AppError> {
        self.append_with(caller, write, None)
    }

    /// [`App::append`], with the signed request that carried the commands, if any.
    pub(crate) fn append_with(
        &self,
        caller: &RegisteredActor,
        write: Write,
        signed: Option<&careledger_core::signed_request::SignedRequest>,
    ) -> Result<AppendOutcome, AppError> {
        let actor = self.may_write(caller, &write.patient)?;
        self.writable()?;
        access::check_members_are_registered(&self.actors, &write.patient, &write.submissions)?;
        let request = AppendRequest {
            patient: write.patient,
            expected: write.expected,
            actor,
            submissions: write.submissions,
            idempotency_key: write.idempotency_key,
            correlation_id: None,
            causation_id: None,
        };
        Ok(match signed {
            Some(signed) => self.ledger.append_signed(request, signed)?,
            None => self.ledger.append(request)?,
        })
    }

    /// Refused while writes are held (a full disk, a restored ledger that lacks acknowledged
    /// events), saying why and what the operator does.
    pub fn writable(&self) -> Result<(), AppError> {
        match self.holds.current() {
            Some(hold) => Err(AppError::WritesHeld(hold)),
            None => Ok(()),
        }
    }

    /// Acknowledges a notification by its id (`n-42-second`); the recipient is the caller's
    /// own line unless the id names it.
    pub fn acknowledge(
        &self,
        caller: &RegisteredActor,
        patient: PatientId,
        notification: &str,
        expected: ExpectedRevision,
        idempotency_key: Option<String>,
    ) -> Result<AppendOutcome, AppError> {
        let Some((position, recipient)) = notify::parse_notification_id(notification) else {
            return Err(AppError::Malformed(format!(
                "{notification:?} is not a notification id; ids look like n-42-second (the \
                 causing position and the recipient: first, second or patient)"
            )));
        };
        let acting = caller.line().unwrap_or(Line::First);
        let submission = Submission {
            command: Command::AcknowledgeNotification(Acknowledgement {
                notification: position,
                recipient: recipient.unwrap_or(acting),
            }),
            occurred_at: None,
            reason: Text::new("acknowledged")?,
        };
        self.append(
            caller,
            Write {
                patient,
                submissions: vec![submission],
                expected,
                idempotency_key,
            },
        )
    }

    /// Waits until the read models show every event acknowledged before the call (the durable
    /// head), for at most [`READ_YOUR_WRITES`]: a read that follows a write sees it, whoever
    /// wrote it. Writes answer once durable and do not wait for the read models; reads do, and
    /// only while the projector is behind (an atomic comparison when it is not). While applying
    /// fails (a full disk) reads answer at once with what the read models show.
    pub async fn caught_up(&self) {
        if !self.projector.failed() {
            let head = self.ledger.head().position;
            self.reach(head, Some(Phase::Projection)).await;
        }
    }

    /// Back-pressure for writers: waits, when the read models are more than
    /// [`PROJECTION_LAG_LIMIT`] events behind the write at `position`, until they are within it
    /// (for at most [`READ_YOUR_WRITES`]). Writes then go no faster than the read models follow,
    /// and a read never waits for more than that many events.
    pub async fn keep_up(&self, position: u64) {
        if !self.projector.failed() {
            let within = position.saturating_sub(PROJECTION_LAG_LIMIT);
            self.reach(within, Some(Phase::KeepUp)).await;
        }
    }

    /// Waits until the read models show `position`, for at most [`READ_YOUR_WRITES`]; the
    /// events are durable either way.
    pub async fn projected(&self, position: u64) {
        self.reach(position, None).await;
    }

    /// [`App::projected`], the wait counted as `phase` when it is not over at once.
    async fn reach(&self, position: u64, phase: Option<Phase>) {
        if self.projector.position() >= position {
            return;
        }
        let _waiting = phase.map(careledger_core::timing::start);
        if !self.projector.reached(position, READ_YOUR_WRITES).await {
            tracing::warn!(
                position,
                "the read models did not reach a new write in time; they follow"
            );
        }
    }

    /// As [`App::projected`], outside an async runtime.
    pub fn projected_blocking(&self, position: u64) {
        if self.projector.position() >= position {
            return;
        }
        if !self.projector.reached_blocking(position, READ_YOUR_WRITES) {
            tracing::warn!(
                position,
                "the read models did not reach a new write in time; they follow"
            );
        }
    }

    /// The latest signed checkpoint with every witness cosignature collected for it (a C2SP
    /// signed note); `None` before the first.
    pub fn checkpoint(&self) -> Result<Option<String>, AppError> {
        crate::witnesses::latest_checkpoint(&self.path)
    }

    /// An inclusion proof of the event at `position` in the tree of `tree_size` (the durable
    /// head when `None`): auditors and subscribers for any event, care roles for the events of
    /// the patients they may read.
    pub fn inclusion_proof(
        &self,
        caller: &RegisteredActor,
        position: u64,
        tree_size: Option<u64>,
    ) -> Result<(InclusionProof, TreeHash), AppError> {
        let size = tree_size.unwrap_or_else(|| self.ledger.head().position);
        let proof = self.ledger.inclusion_proof(position, size)?;
        let event = self.ledger.read_position(position)?;
        if !self.sees_events_of(caller, &event.record.patient) {
            return Err(AppError::Forbidden(format!(
                "the event at position {position} is of a patient you may not read"
            )));
        }
        let root = self.ledger.tree_head(size)?.root;
        Ok((proof, root))
    }

    /// A consistency proof from the tree of `first` events to that of `second` (the durable
    /// head when `None`), with both roots: it names no patient, so every authenticated role
    /// may ask for it.
    pub fn consistency_proof(
        &self,
        first: u64,
        second: Option<u64>,
    ) -> Result<(ConsistencyProof, TreeHash, TreeHash), AppError> {
        let second = second.unwrap_or_else(|| self.ledger.head().position);
        let proof = self.ledger.consistency_proof(first, second)?;
        let first_root = self.ledger.tree_head(first)?.root;
        let second_root = self.ledger.tree_head(second)?.root;
        Ok((proof, first_root, second_root))
    }

    /// The export of `patient`'s history as evidence (`careledger_core::export`), for a caller
    /// who may read the patient ([`App::may_read`], checked before anything else: a patient
    /// without a record gets the same refusal as one the caller may not see). Not found when
    /// the patient has no events; a conflict, saying when this server signs the next
    /// checkpoint, while no checkpoint covers the patient's last event yet. Reads the ledger:
    /// call it on a blocking thread.
    pub fn export(
        &self,
        caller: &RegisteredActor,
        patient: &PatientId,
    ) -> Result<Export, AppError> {
        self.may_read(caller, patient)?;
        crate::export::export_patient_served(
            &self.ledger,
            &self.path,
            patient,
            self.signing.get().copied(),
        )
    }

    /// Verifies the whole chain: a full scan, so auditors only (checking the ledger is their
    /// work; a care role or a subscriber would only load the server). The scan stops between
    /// chunks once `cancel` turns true, and then gives `None`.
    pub fn verify(
        &self,
        caller: &RegisteredActor,
        cancel: &std::sync::atomic::AtomicBool,
    ) -> Result<Option<VerifyReport>, AppError> {
        self.may_verify(caller)?;
        let mut reached = (0, 0);
        let report = self
            .ledger
            .verify_cancellable(&mut |done, total| reached = (done, total), cancel)?;
        if report.is_none() {
            tracing::warn!(
                verified = reached.0,
                of = reached.1,
                "a verification was stopped before the head: its time limit ended or its \
                 client went away"
            );
        }
        Ok(report)
    }

    /// Whether `caller` may verify the whole chain: auditors only.
    pub fn may_verify(&self, caller: &RegisteredActor) -> Result<(), AppError> {
        if caller.role == crate::actors::AccessRole::Auditor {
            return Ok(());
        }
        Err(AppError::Forbidden(format!(
            "verifying the whole chain is a full scan of the ledger, for auditors only; you act \
             as {}: ask an auditor, or the operator runs `careledger verify` with the server \
             stopped",
            caller.role.as_str()
        )))
    }
}

/// Why a token was refused, as the caller is told: what happened and what to do.
pub(crate) fn refused(refusal: TokenRefusal) -> AppError {
    let (code, message) = match refusal {
        TokenRefusal::Unknown => (
            "token_unknown",
            "the bearer token is not known; ask the operator for a new one".to_owned(),
        ),
        TokenRefusal::Expired { actor, at } => (
            "token_expired",
            format!(
                "the bearer token of {actor} expired on {at}: ask the operator to rotate it \
                 (careledger actors rotate --id {actor})"
            ),
        ),
        TokenRefusal::Revoked { actor, revocation } => (
            "token_revoked",
            format!(
                "the bearer token of {actor} was revoked on {} by {}; ask the operator for a \
                 new one",
                revocation.at, revocation.by
            ),
        ),
        TokenRefusal::Replaced { actor, at } => (
            "token_replaced",
            format!(
                "this bearer token of {actor} was replaced by a rotation and is refused since \
                 {at}; use the new token"
            ),
        ),
    };
    AppError::TokenRefused {
        code: code.into(),
        message,
    }
}

/// Writes the actors' last-used times every [`crate::actors::LAST_USED_WRITE_INTERVAL`] on a
/// thread of its own, until dropped; it holds the store weakly, so that it never keeps a data
/// directory open.
struct LastUsedWriter {
    _stop: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
}

impl LastUsedWriter {
    fn start(actors: &Arc<ActorStore>) -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let actors = Arc::downgrade(actors);
        let spawned = std::thread::Builder::new()
            .name("actors-last-used".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(crate::actors::LAST_USED_WRITE_INTERVAL)
                {
                    let Some(actors) = actors.upgrade() else {
                        return;
                    };
                    if let Err(e) = actors.write_last_used() {
                        tracing::warn!(error = %e, "writing the actors' last use failed; retried");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread writes the actors' last use until shutdown");
        }
        LastUsedWriter {
            _stop: std::sync::Mutex::new(stop),
        }
    }
}
