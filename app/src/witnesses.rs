//! Pushing the log's checkpoints to its witnesses (C2SP tlog-witness) and keeping what they
//! cosign.
//!
//! [`Witnesses`] runs one task beside the server: the [`Checkpointer`] hands it every new
//! signed checkpoint ([`Witnesses::follow`]), and it sends each to every configured witness with
//! the consistency proof from the size that witness cosigned last. Nothing of this is on the
//! append path: an append only wakes the checkpointer, whose thread hands the note over and
//! goes on; a push that is slow, refused or unanswered delays no append and no checkpoint.
//! A witness that is down or refuses is logged and tried again after a while and with the
//! next checkpoint; when checkpoints come faster than a push takes, only the newest is pushed.
//!
//! The cosignatures returned for a checkpoint are kept in `<data>/cosigned-checkpoint`: that
//! checkpoint's note with the log's signature followed by one cosignature line per witness that
//! cosigned it (written aside, synced, renamed). `<data>/checkpoint` stays the log's own, written
//! by the checkpointer alone. [`latest_checkpoint`] gives the latest checkpoint with the
//! cosignatures collected for it.
//!
//! The application layer speaks no HTTP: a [`WitnessClient`] (the HTTP crate's) carries a
//! request to a witness and tells its answer in the protocol's terms ([`WitnessReply`]).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use careledger_core::checkpoint::Checkpointer;
use careledger_core::merkle::TreeHash;
use careledger_core::note::{Note, NoteSignature, VerifierKey, COSIGNATURE_V1};
use careledger_core::witness::{parse_checkpoint_text, write_file_atomically, AddCheckpoint};
use careledger_core::Ledger;

use crate::data_dir::checkpoint_path;
use crate::error::AppError;

/// Where the latest checkpoint with the witnesses' cosignatures is kept.
pub fn cosigned_checkpoint_path(data: &Path) -> PathBuf {
    data.join("cosigned-checkpoint")
}

/// The latest signed checkpoint of the log in `data`, as a signed note with the log's signature
/// and every witness cosignature collected for it so far (none while it is being pushed, or
/// when no witness cosigned it); `None` before the first checkpoint. This is what a reader of
/// the log fetches to check that witnesses vouch for the tree it is shown.
pub fn latest_checkpoint(data: &Path) -> Result<Option<String>, AppError> {
    let Some(latest) = read_optional(&checkpoint_path(data))? else {
        return Ok(None);
    };
    let cosigned = read_optional(&cosigned_checkpoint_path(data))?;
    let same_checkpoint = |a: &str, b: &str| match (Note::parse(a), Note::parse(b)) {
        (Ok(a), Ok(b)) => a.text() == b.text(),
        _ => false,
    };
    Ok(Some(match cosigned {
        Some(cosigned) if same_checkpoint(&cosigned, &latest) => cosigned,
        _ => latest,
    }))
}

fn read_optional(path: &Path) -> Result<Option<String>, AppError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AppError::Store {
            context: "reading the checkpoint",
            detail: format!("{}: {e}", path.display()),
        }),
    }
}

/// A witness the log pushes its checkpoints to: the submission URL prefix (the request goes
/// to `<url>/add-checkpoint`) and the witness's cosigner verifier key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WitnessTarget {
    url: String,
    key: VerifierKey,
}

impl WitnessTarget {
    /// A witness at `url` (`http://host:port` with an optional path prefix) with cosigner key
    /// `key` (type 0x04).
    pub fn new(url: &str, key: VerifierKey) -> Result<Self, AppError> {
        let url = url.trim().trim_end_matches('/');
        let rest = url.strip_prefix("http://").ok_or_else(|| {
            AppError::Malformed(format!(
                "witness URL {url:?}: give http://host:port[/prefix] (put TLS in front of a witness \
                 reached over an untrusted network; what it returns is signed either way)"
            ))
        })?;
        if rest.is_empty() || rest.chars().any(char::is_whitespace) {
            return Err(AppError::Malformed(format!(
                "witness URL {url:?} has no host, or holds a space"
            )));
        }
        if key.kind() != COSIGNATURE_V1 {
            return Err(AppError::Malformed(format!(
                "{key} is not a witness's cosigner key (type 0x04); the witness's operator prints \
                 it with `careledger witness keygen`"
            )));
        }
        Ok(Self {
            url: url.to_owned(),
            key,
        })
    }

    /// Parses `URL=VKEY`, as `careledger serve --witness` takes it.
    pub fn parse(spec: &str) -> Result<Self, AppError> {
        let spec = spec.trim();
        // A URL may hold '=' (a query); the key is what follows the first '=' that leaves one.
        let key_at = spec
            .match_indices('=')
            .map(|(i, _)| i)
            .find(|&i| VerifierKey::parse(&spec[i + 1..]).is_ok())
            .ok_or_else(|| {
                AppError::Malformed(format!(
                    "witness {spec:?}: give URL=VKEY, e.g. http://127.0.0.1:7380=witness.example/gp+1a2b3c4d+BK…"
                ))
            })?;
        let key = VerifierKey::parse(&spec[key_at + 1..])
            .map_err(|e| AppError::Malformed(e.to_string()))?;
        Self::new(&spec[..key_at], key)
    }

    /// The submission URL prefix.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The witness's cosigner verifier key.
    pub fn key(&self) -> &VerifierKey {
        &self.key
    }
}

/// A witness's answer to an add-checkpoint request, in the protocol's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WitnessReply {
    /// It cosigned: its signature lines.
    Cosigned(String),
    /// It cosigned another size last (409): that size.
    Conflict(u64),
    /// Any other answer: the HTTP status and the start of the body.
    Refused {
        /// The status code.
        status: u16,
        /// The body, cut to a few hundred characters.
        body: String,
    },
}

/// A boxed future, as [`WitnessClient`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How the log reaches a witness: posts an add-checkpoint request body to
/// `<url>/add-checkpoint` and tells the answer, or why there was none (unreachable, broken
/// connection), in one sentence.
pub trait WitnessClient: Send + Sync {
    /// Sends `body` to the witness at `url`.
    fn add_checkpoint<'a>(
        &'a self,
        url: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<WitnessReply, String>>;
}

/// How pushes are timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushSettings {
    /// How long a witness may take to answer.
    pub timeout: Duration,
    /// After this long without a new checkpoint, the witnesses that did not cosign the latest
    /// one are tried again.
    pub retry_after: Duration,
}

impl Default for PushSettings {
    /// 10 s to answer, a retry after 30 s.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry_after: Duration::from_secs(30),
        }
    }
}

/// A checkpoint handed over for pushing.
#[derive(Clone, Debug)]
struct Offer {
    note: Note,
    size: u64,
}

impl Offer {
    fn parse(text: &str) -> Option<Offer> {
        let note = Note::parse(text).ok()?;
        let size = parse_checkpoint_text(note.text()).ok()?.size();
        Some(Offer { note, size })
    }
}

/// The pushing task and the channel checkpoints reach it by; stops when dropped.
pub struct Witnesses {
    offers: Arc<watch::Sender<Option<Offer>>>,
    pushed: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Witnesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Witnesses(pushed through {})", *self.pushed.borrow())
    }
}

/// What every push needs.
struct Context {
    ledger: Arc<Ledger>,
    client: Arc<dyn WitnessClient>,
    file: PathBuf,
    settings: PushSettings,
}

/// A witness, and the size it cosigned last as far as the log knows.
#[derive(Clone)]
struct Known {
    target: WitnessTarget,
    cosigned: Option<u64>,
}

impl Witnesses {
    /// Starts pushing to `targets` on a task of the current tokio runtime, for the log whose
    /// ledger is `ledger` and data directory `data`. Hand it checkpoints with
    /// [`Witnesses::follow`] or [`Witnesses::offer`]. The sizes each witness cosigned last are
    /// read from `<data>/cosigned-checkpoint`; a witness that cosigned something else answers
    /// with its size, and the push is retried once from there.
    pub fn start(
        ledger: Arc<Ledger>,
        data: &Path,
        targets: Vec<WitnessTarget>,
        client: Arc<dyn WitnessClient>,
        settings: PushSettings,
    ) -> Witnesses {
        let file = cosigned_checkpoint_path(data);
        let stored = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| Offer::parse(&t));
        let known = targets
            .into_iter()
            .map(|target| Known {
                cosigned: stored
                    .as_ref()
                    .filter(|s| cosignature_by(&s.note, target.key()).is_some())
                    .map(|s| s.size),
                target,
            })
            .collect();
        let (offers, receiver) = watch::channel(None);
        let (pushed_tx, pushed) = watch::channel(0);
        let context = Arc::new(Context {
            ledger,
            client,
            file,
            settings,
        });
        let task = tokio::spawn(run(context, known, stored, receiver, pushed_tx));
        Witnesses {
            offers: Arc::new(offers),
            pushed,
            task,
        }
    }

    /// Pushes every checkpoint `checkpointer` issues from now on, and its latest one now.
    pub fn follow(&self, checkpointer: &Checkpointer) {
        let offers = self.offers.clone();
        checkpointer.on_issued(move |note| offer(&offers, note));
        if let Some(latest) = checkpointer.latest() {
            self.offer(&latest);
        }
    }

    /// Hands over a signed checkpoint to push; one not larger than the last handed over, or
    /// one that does not parse, is ignored.
    pub fn offer(&self, note: &str) {
        offer(&self.offers, note);
    }

    /// Waits until a push of a checkpoint of at least `size` has been tried with every
    /// witness, at most `timeout`; true if one was.
    pub async fn wait_pushed(&self, size: u64, timeout: Duration) -> bool {
        let mut pushed = self.pushed.clone();
        tokio::time::timeout(timeout, pushed.wait_for(|p| *p >= size))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops pushing.
    pub fn stop(self) {}
}

impl Drop for Witnesses {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Replaces the offer when `note` is a larger checkpoint than the one offered last.
fn offer(offers: &watch::Sender<Option<Offer>>, note: &str) {
    let Some(new) = Offer::parse(note) else {
        tracing::warn!("a checkpoint handed over for the witnesses does not parse; not pushed");
        return;
    };
    offers.send_if_modified(|current| match current {
        Some(c) if c.size >= new.size => false,
        _ => {
            *current = Some(new);
            true
        }
    });
}

/// The cosignature by `key` on `note` that verifies over its text, if any.
fn cosignature_by(note: &Note, key: &VerifierKey) -> Option<NoteSignature> {
    note.signatures()
        .iter()
        .find(|s| s.is_by(key) && s.verify_cosignature(key, note.text()).is_ok())
        .cloned()
}

/// The checkpoint being pushed and the cosignatures it has.
struct Round {
    offer: Offer,
    cosigned: Note,
    /// Indices of the witnesses that have not cosigned it yet.
    pending: Vec<usize>,
}

impl Round {
    fn new(offer: Offer, known: &[Known]) -> Round {
        Round {
            cosigned: offer.note.clone(),
            pending: (0..known.len()).collect(),
            offer,
        }
    }
}

async fn run(
    context: Arc<Context>,
    mut known: Vec<Known>,
    stored: Option<Offer>,
    mut offers: watch::Receiver<Option<Offer>>,
    pushed: watch::Sender<u64>,
) {
    let mut round: Option<Round> = None;
    loop {
        let retry = round.as_ref().is_some_and(|r| !r.pending.is_empty());
        tokio::select! {
            changed = offers.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(context.settings.retry_after), if retry => {}
        }
        if let Some(offer) = offers.borrow_and_update().clone() {
            if round.as_ref().is_none_or(|r| r.offer.size < offer.size) {
                let mut next = Round::new(offer, &known);
                resume(&mut next, stored.as_ref(), &known);
                round = Some(next);
            }
        }
        let Some(round) = round.as_mut() else {
            continue;
        };
        if push_round(&context, &mut known, round).await {
            let text = round.cosigned.to_string();
            let file = context.file.clone();
            let written =
                tokio::task::spawn_blocking(move || write_file_atomically(&file, text.as_bytes()))
                    .await;
            if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
                tracing::error!(file = %context.file.display(), error = %e,
                    "storing the witnesses' cosignatures failed; the checkpoint is served without them");
            }
        }
        pushed.send_replace(round.offer.size);
    }
}

/// Takes over the cosignatures already stored for the same checkpoint (after a restart), so
/// that only the witnesses missing from it are asked.
fn resume(round: &mut Round, stored: Option<&Offer>, known: &[Known]) {
    let Some(stored) = stored.filter(|s| s.note.text() == round.offer.note.text()) else {
        return;
    };
    round.pending.retain(|&i| {
        let found = cosignature_by(&stored.note, known[i].target.key());
        if let Some(signature) = &found {
            round.cosigned.add_signature(signature.clone());
        }
        found.is_none()
    });
}

/// Pushes the round's checkpoint to its pending witnesses at once; true when a cosignature
/// was added.
async fn push_round(context: &Arc<Context>, known: &mut [Known], round: &mut Round) -> bool {
    let mut pushes = JoinSet::new();
    for &i in &round.pending {
        let (context, witness, offer) = (context.clone(), known[i].clone(), round.offer.clone());
        pushes.spawn(async move { (i, push(&context, &witness, &offer).await) });
    }
    let mut added = false;
    while let Some(done) = pushes.join_next().await {
        let Ok((i, (cosigned, signature))) = done else {
            continue;
        };
        known[i].cosigned = cosigned;
        if let Some(signature) = signature {
            round.cosigned.add_signature(signature);
            round.pending.retain(|&p| p != i);
            added = true;
        }
    }
    added
}

/// Pushes one checkpoint to one witness; returns the size the witness cosigned last as now
/// known, and its cosignature if it gave one.
async fn push(
    context: &Context,
    witness: &Known,
    offer: &Offer,
) -> (Option<u64>, Option<NoteSignature>) {
    let (url, size) = (witness.target.url(), offer.size);
    let mut cosigned = witness.cosigned;
    let mut old = cosigned.unwrap_or(0);
    for attempt in 0..2 {
        if old > size {
            tracing::error!(
                witness = url,
                cosigned = old,
                size,
                "the witness cosigned a larger checkpoint of this log than the one to push: the \
                 ledger was cut back, or another log signs with this log's key; the witness will \
                 refuse every checkpoint below that size"
            );
            return (cosigned, None);
        }
        let body = match request(context, old, offer).await {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(witness = url, old, size, error = %e,
                    "no consistency proof for the witness");
                return (cosigned, None);
            }
        };
        let reply = tokio::time::timeout(
            context.settings.timeout,
            context.client.add_checkpoint(url, body),
        )
        .await;
        match reply {
            Err(_) => tracing::warn!(
                witness = url,
                size,
                "the witness did not answer within {} s; tried again later",
                context.settings.timeout.as_secs()
            ),
            Ok(Err(e)) => {
                tracing::warn!(witness = url, size, error = %e,
                    "the witness is unreachable; tried again later")
            }
            Ok(Ok(WitnessReply::Cosigned(lines))) => {
                let signature = lines
                    .split_terminator('\n')
                    .filter_map(|l| NoteSignature::parse_line(l).ok())
                    .find(|s| {
                        s.is_by(witness.target.key())
                            && s.verify_cosignature(witness.target.key(), offer.note.text())
                                .is_ok()
                    });
                match &signature {
                    Some(_) => {
                        tracing::debug!(witness = url, size, "cosigned");
                        return (Some(size), signature);
                    }
                    None => tracing::warn!(
                        witness = url,
                        size,
                        "the witness answered without a valid cosignature by its key {}",
                        witness.target.key()
                    ),
                }
            }
            Ok(Ok(WitnessReply::Conflict(theirs))) => {
                cosigned = Some(theirs);
                if attempt == 0 && theirs != old {
                    // Learned the witness's size: prove from there (or, when it is beyond this
                    // checkpoint, say so at the top of the loop).
                    tracing::info!(
                        witness = url,
                        cosigned = theirs,
                        "the witness cosigned another size last; proving consistency from there"
                    );
                    old = theirs;
                    continue;
                }
                tracing::warn!(
                    witness = url,
                    cosigned = theirs,
                    size,
                    "the witness still answers with a conflict; tried again later"
                );
            }
            Ok(Ok(WitnessReply::Refused { status, body })) => {
                if (400..500).contains(&status) {
                    tracing::error!(witness = url, status, size, answer = %body,
                        "the witness refused the checkpoint");
                } else {
                    tracing::warn!(witness = url, status, size, answer = %body,
                        "the witness failed; tried again later");
                }
            }
        }
        return (cosigned, None);
    }
    (cosigned, None)
}

/// The add-checkpoint body for `offer` from `old`, with the ledger's consistency proof.
async fn request(context: &Context, old: u64, offer: &Offer) -> Result<Vec<u8>, String> {
    let size = offer.size;
    let path: Vec<TreeHash> = match old {
        0 => Vec::new(),
        _ => {
            let ledger = context.ledger.clone();
            tokio::task::spawn_blocking(move || ledger.consistency_proof(old, size))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
                .path
        }
    };
    AddCheckpoint::new(old, path, &offer.note.to_string())
        .map(|r| r.to_bytes())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
