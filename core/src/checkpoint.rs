//! Checkpoints: the tree's size and root signed by the log key, in the C2SP tlog-checkpoint
//! format as a C2SP signed note (`docs/hash-format.md`, "Checkpoints"), the log key and its
//! fixed origin, and the [`Checkpointer`] that issues them off the append path.
//!
//! A checkpoint's body is three lines: the origin, the tree size (decimal, the positions 1 to
//! size, so leaf indices 0 to size − 1), and the root hash in standard base64; the log key's
//! name is the origin.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use parking_lot::{Condvar, Mutex};

use crate::heads::HeadsMap;
use crate::ledger::Ledger;
use crate::merkle::{TreeHash, TreeHead};
use crate::note::{valid_name, Note, NoteError, NoteSigner, VerifierKey, ED25519};

/// Why the log key, a checkpoint or the checkpointer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// A note, key or signature is malformed or does not verify (bad input or a changed file).
    #[error(transparent)]
    Note(#[from] NoteError),
    /// The origin given differs from the one the log was started with (configuration error).
    #[error("the log's origin is {stored:?} (fixed when its key was made in {key_file}); {configured:?} was configured. The origin never changes: remove the --origin setting or set it to {stored:?}")]
    OriginChanged {
        /// The origin stored with the key.
        stored: String,
        /// The origin configured now.
        configured: String,
        /// The key file.
        key_file: String,
    },
    /// The ledger no longer holds the tree of the last checkpoint (internal: it was cut or
    /// rewritten after it was signed). The log signs nothing inconsistent with what it signed.
    #[error("the ledger does not extend the last signed checkpoint (size {size}): {problem}; no checkpoint is signed until an operator restores the ledger")]
    Inconsistent {
        /// The last checkpoint's tree size.
        size: u64,
        /// What differs.
        problem: String,
    },
    /// The ledger refuses writes (its head does not verify, or a storage failure persists):
    /// no checkpoint is signed until it verifies again.
    #[error("no checkpoint is signed while the ledger refuses writes: {0}")]
    Refusing(String),
    /// Reading the ledger failed.
    #[error(transparent)]
    Ledger(#[from] crate::error::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// A checkpoint's body: origin, tree size and root hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    origin: String,
    size: u64,
    root: TreeHash,
}

impl Checkpoint {
    /// The checkpoint of `head` for the log `origin`.
    pub fn new(origin: &str, head: TreeHead) -> Result<Self, NoteError> {
        if !valid_name(origin) {
            return Err(NoteError::BadName(origin.to_owned()));
        }
        Ok(Self {
            origin: origin.to_owned(),
            size: head.size,
            root: head.root,
        })
    }

    /// The origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The tree size: positions 1 to `size` (leaf indices 0 to `size - 1`).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root hash.
    pub fn root(&self) -> TreeHash {
        self.root
    }

    /// The note text: `<origin>\n<size>\n<base64 root>\n`.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root.0)
        )
    }

    /// Parses a checkpoint body of exactly three lines (no extension lines: see
    /// [`Checkpoint::parse_text`]).
    pub fn parse_body(text: &str) -> Result<Self, NoteError> {
        let bad = |problem: &str| NoteError::Malformed(format!("checkpoint body: {problem}"));
        let lines: Vec<&str> = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("it must end in a newline"))?
            .split('\n')
            .collect();
        let [origin, size, root] = lines.as_slice() else {
            return Err(bad("it must be three lines: origin, tree size, root hash"));
        };
        if origin.is_empty() {
            return Err(bad("the origin is empty"));
        }
        let leading_zero = size.len() > 1 && size.starts_with('0');
        let size: u64 = match size.parse() {
            Ok(n) if !leading_zero && size.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => {
                return Err(bad(
                    "the tree size must be a decimal number without leading zeros",
                ))
            }
        };
        let root: [u8; 32] = BASE64
            .decode(root)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("the root hash must be 32 bytes in standard base64"))?;
        Ok(Self {
            origin: (*origin).to_owned(),
            size,
            root: TreeHash(root),
        })
    }

    /// Parses a checkpoint note's text: the three body lines, then its extension lines (each
    /// non-empty, returned as they are; careledger writes the heads map's,
    /// [`crate::heads::HeadsLine`]).
    pub fn parse_text(text: &str) -> Result<(Self, Vec<&str>), NoteError> {
        let end = text
            .match_indices('\n')
            .nth(2)
            .map(|(at, _)| at + 1)
            .ok_or_else(|| NoteError::Malformed("a checkpoint has at least three lines".into()))?;
        let checkpoint = Self::parse_body(&text[..end])?;
        let extensions: Vec<&str> = text[end..].split_terminator('\n').collect();
        if !text.ends_with('\n') || extensions.iter().any(|line| line.is_empty()) {
            return Err(NoteError::Malformed(
                "a checkpoint's extension lines are non-empty and end in a newline".into(),
            ));
        }
        Ok((checkpoint, extensions))
    }

    /// Parses a signed checkpoint and checks the log's signature; cosignatures stay on the note.
    pub fn open(note: &str, log: &VerifierKey) -> Result<(Self, Note), NoteError> {
        let note = Note::parse(note)?;
        let (checkpoint, _) = Self::parse_text(note.verify(log)?)?;
        if checkpoint.origin != log.name() {
            return Err(NoteError::Malformed(format!(
                "the checkpoint's origin {:?} is not the log key's name {:?}",
                checkpoint.origin,
                log.name()
            )));
        }
        Ok((checkpoint, note))
    }
}

/// The log's signing key, whose name is the log's origin. Kept in one file under the data
/// directory, readable by its owner only, in golang.org/x/mod/sumdb/note's private-key form.
#[derive(Debug)]
pub struct LogKey {
    signer: NoteSigner,
}

impl LogKey {
    /// Reads the key in `path`, or makes one for `origin` (or a random
    /// `careledger.invalid/log-<hex>` when none is given) and writes it there (mode 0600). A
    /// configured origin other than the stored one is refused: a log's origin never changes.
    pub fn open_or_create(path: &Path, origin: Option<&str>) -> Result<Self, CheckpointError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = Self::read(path, &text)?;
                match origin {
                    Some(configured) if configured != key.origin() => {
                        Err(CheckpointError::OriginChanged {
                            stored: key.origin().to_owned(),
                            configured: configured.to_owned(),
                            key_file: path.display().to_string(),
                        })
                    }
                    _ => Ok(key),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create(path, origin),
            Err(e) => Err(io(path)(e)),
        }
    }

    /// Reads the key in `path`; an error naming the file when there is none.
    pub fn open(path: &Path) -> Result<Self, CheckpointError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        Self::read(path, &text)
    }

    fn read(path: &Path, text: &str) -> Result<Self, CheckpointError> {
        let signer = NoteSigner::parse_private_key(text).map_err(|e| CheckpointError::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        })?;
        Ok(Self { signer })
    }

    fn create(path: &Path, origin: Option<&str>) -> Result<Self, CheckpointError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| CheckpointError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(format!("no randomness for a new key: {e}")),
        })?;
        let origin = match origin {
            Some(origin) => origin.to_owned(),
            None => format!("careledger.invalid/log-{}", hex::encode(&seed[..4])),
        };
        let signer = NoteSigner::from_seed(&origin, ED25519, &seed)?;
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io(path))?;
        file.write_all(format!("{}\n", signer.to_private_key_string()).as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io(path))?;
        sync_parent(path)?;
        Ok(Self { signer })
    }

    /// A log key from a fixed seed (tests and test vectors).
    pub fn from_seed(origin: &str, seed: &[u8; 32]) -> Result<Self, NoteError> {
        Ok(Self {
            signer: NoteSigner::from_seed(origin, ED25519, seed)?,
        })
    }

    /// The same key signing for another origin (the access log's, `<origin>/access-log`): its
    /// verifier key has that name and its own key ID over the same public key.
    pub fn for_origin(&self, origin: &str) -> Result<Self, NoteError> {
        Ok(Self {
            signer: self.signer.renamed(origin)?,
        })
    }

    /// The origin (and key name).
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// The public key as a signed-note verifier key: `<origin>+<hex key ID>+<base64(0x01 ‖ key)>`.
    pub fn verifier_key(&self) -> VerifierKey {
        self.signer.verifier_key()
    }

    /// Signs the checkpoint of `head`.
    pub fn sign(&self, head: TreeHead) -> Result<Note, NoteError> {
        self.sign_extended(head, &[])
    }

    /// Signs the checkpoint of `head` with `extensions` as its extension lines (each non-empty,
    /// without a newline).
    pub fn sign_extended(&self, head: TreeHead, extensions: &[String]) -> Result<Note, NoteError> {
        let mut text = Checkpoint::new(self.origin(), head)?.body();
        for line in extensions {
            if line.is_empty() || line.contains('\n') {
                return Err(NoteError::Malformed(format!(
                    "extension line {line:?}: one non-empty line"
                )));
            }
            text.push_str(line);
            text.push('\n');
        }
        Note::sign(&text, &self.signer)
    }
}

fn sync_parent(path: &Path) -> Result<(), CheckpointError> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

/// When checkpoints are issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// After this many new events (0: only on the timer and at shutdown).
    pub every_events: u64,
    /// After this long, when the tree grew.
    pub every: Duration,
}

impl Default for CheckpointConfig {
    /// Every 1,000 events or 10 seconds, whichever comes first.
    fn default() -> Self {
        Self {
            every_events: 1_000,
            every: Duration::from_secs(10),
        }
    }
}

/// What the checkpointer's thread and the ledger's `on_durable` listener share.
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
    /// Notified after each checkpoint issued.
    issued: Condvar,
    latest: Mutex<Option<String>>,
    /// Why the last attempt to issue a checkpoint failed, until one succeeds.
    failure: Mutex<Option<String>>,
    /// Called with each checkpoint issued, on the checkpointer's thread.
    listeners: Mutex<Vec<IssuedListener>>,
}

/// What [`Checkpointer::on_issued`] calls with each new signed checkpoint.
type IssuedListener = Box<dyn Fn(&str) + Send>;

struct State {
    durable: u64,
    signed: u64,
    /// When the timer is due next, on the ledger's clock.
    next_tick: Instant,
    stop: bool,
}

/// Issues checkpoints of the ledger's tree on its own thread: after every
/// [`CheckpointConfig::every_events`] events or [`CheckpointConfig::every`] (on the ledger's
/// [`crate::clock::Clock`]), when the tree grew, and at [`Checkpointer::finish`]. The latest is
/// kept in one file, replaced atomically. Appends only store a number and, when a checkpoint is
/// due, wake the thread.
pub struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    config: CheckpointConfig,
}

impl Checkpointer {
    /// Starts issuing checkpoints of `ledger`'s tree signed with `key`, keeping the latest in
    /// `file`. Refuses to start when the ledger does not extend the checkpoint already in
    /// `file` (a log never signs a tree inconsistent with one it signed).
    pub fn start(
        ledger: Arc<Ledger>,
        key: LogKey,
        file: PathBuf,
        config: CheckpointConfig,
    ) -> Result<Self, CheckpointError> {
        let previous = read_latest(&file, &key)?;
        let head = ledger.head().position;
        let signed = match &previous {
            Some(checkpoint) => check_extends(&ledger, checkpoint, head)?,
            None => 0,
        };
        let clock = ledger.clock().clone();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                durable: head,
                signed,
                next_tick: clock.instant() + config.every,
                stop: false,
            }),
            wake: Condvar::new(),
            issued: Condvar::new(),
            latest: Mutex::new(
                previous
                    .is_some()
                    .then(|| std::fs::read_to_string(&file).ok())
                    .flatten(),
            ),
            failure: Mutex::new(None),
            listeners: Mutex::new(Vec::new()),
        });
        let listener = shared.clone();
        let every_events = config.every_events;
        ledger.on_durable(move |position| {
            let mut state = listener.state.lock();
            state.durable = position;
            // The thread's own timer wakes it on the system clock; this wakes it as soon as
            // the ledger's clock, whichever it is, says the interval has passed.
            let due_by_count = every_events > 0 && position >= state.signed + every_events;
            if due_by_count || clock.instant() >= state.next_tick {
                listener.wake.notify_one();
            }
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("checkpoints".into())
            .spawn(move || run(&worker, &ledger, &key, &file, config))
            .map_err(io(Path::new("checkpoint thread")))?;
        Ok(Self {
            shared,
            thread: Some(thread),
            config,
        })
    }

    /// When it signs: after how many events, after how long.
    pub fn config(&self) -> CheckpointConfig {
        self.config
    }

    /// The latest signed checkpoint, as a note.
    pub fn latest(&self) -> Option<String> {
        self.shared.latest.lock().clone()
    }

    /// Waits until a checkpoint of at least `size` has been issued, at most `timeout`; true if
    /// one was.
    pub fn wait_for(&self, size: u64, timeout: Duration) -> bool {
        let mut state = self.shared.state.lock();
        (self.shared.issued).wait_while_for(&mut state, |s| s.signed < size, timeout);
        state.signed >= size
    }

    /// Calls `listener` with every checkpoint issued from now on (the signed note), on the
    /// checkpointer's thread: it must only hand the note on (to witnesses, say), never wait.
    pub fn on_issued(&self, listener: impl Fn(&str) + Send + 'static) {
        self.shared.listeners.lock().push(Box::new(listener));
    }

    /// Why the last attempt to issue a checkpoint failed, while no later one succeeded.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure.lock().clone()
    }

    /// Issues a last checkpoint if the tree grew since the latest, and stops.
    pub fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The checkpointer's loop: wait for enough events, the timer or the stop, then sign.
fn run(shared: &Shared, ledger: &Ledger, key: &LogKey, file: &Path, config: CheckpointConfig) {
    let clock = ledger.clock();
    // Read from position 1 for the first checkpoint, then only the events since the last.
    let mut heads = HeadsMap::new();
    loop {
        let (size, stopping) = {
            let mut state = shared.state.lock();
            loop {
                let now = clock.instant();
                let due_by_count =
                    config.every_events > 0 && state.durable >= state.signed + config.every_events;
                if state.stop || due_by_count || now >= state.next_tick {
                    break;
                }
                let wait = state.next_tick - now;
                shared.wake.wait_for(&mut state, wait);
            }
            let now = clock.instant();
            if now >= state.next_tick {
                state.next_tick = now + config.every;
            }
            (state.durable, state.stop)
        };
        let signed = shared.state.lock().signed;
        if size > signed {
            match issue_with_heads(ledger, key, file, size, &mut heads) {
                Ok(note) => {
                    for listener in shared.listeners.lock().iter() {
                        listener(&note);
                    }
                    // The note first: whoever waits for the size reads it next.
                    *shared.latest.lock() = Some(note);
                    *shared.failure.lock() = None;
                    let mut state = shared.state.lock();
                    // A checkpoint's size only grows: only this thread signs, and only a
                    // larger tree. Cheap, so always checked.
                    assert!(
                        size > state.signed,
                        "checkpoint size {size} after {}",
                        state.signed
                    );
                    state.signed = size;
                    drop(state);
                    shared.issued.notify_all();
                }
                // The next tick tries again; appends go on regardless.
                Err(e) => {
                    *shared.failure.lock() =
                        Some(format!("issuing the checkpoint at size {size} failed: {e}"));
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// Signs the checkpoint at `size`, with the heads map's extension line, and stores it in `file`
/// (written aside, synced, renamed). Reads the whole ledger up to `size` for the heads map.
pub fn issue(
    ledger: &Ledger,
    key: &LogKey,
    file: &Path,
    size: u64,
) -> Result<String, CheckpointError> {
    issue_with_heads(ledger, key, file, size, &mut HeadsMap::new())
}

/// [`issue`] with the heads map kept from the last checkpoint: it reads only the events since.
pub fn issue_with_heads(
    ledger: &Ledger,
    key: &LogKey,
    file: &Path,
    size: u64,
    heads: &mut HeadsMap,
) -> Result<String, CheckpointError> {
    // A log signs only what it stands behind: nothing while its head does not verify.
    if let Some(problem) = ledger.head_problem() {
        return Err(CheckpointError::Refusing(problem));
    }
    let head = ledger.tree_head(size)?;
    heads.advance(ledger, size)?;
    let note = key
        .sign_extended(head, &[heads.line()?.to_line()])?
        .to_string();
    let aside = file.with_extension("new");
    let mut out = File::create(&aside).map_err(io(&aside))?;
    out.write_all(note.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(io(&aside))?;
    std::fs::rename(&aside, file).map_err(io(file))?;
    sync_parent(file)?;
    Ok(note)
}

/// The checkpoint stored in `file`, checked against the log key; `None` when there is none.
pub fn read_latest(file: &Path, key: &LogKey) -> Result<Option<Checkpoint>, CheckpointError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(file)(e)),
    };
    let (checkpoint, _) = Checkpoint::open(&text, &key.verifier_key())?;
    Ok(Some(checkpoint))
}

/// Checks that the ledger, at `head`, still holds the tree of `checkpoint`; returns its size.
fn check_extends(
    ledger: &Ledger,
    checkpoint: &Checkpoint,
    head: u64,
) -> Result<u64, CheckpointError> {
    let size = checkpoint.size();
    if size > head {
        return Err(CheckpointError::Inconsistent {
            size,
            problem: format!("the ledger holds only {head} events"),
        });
    }
    let root = ledger.tree_head(size)?.root;
    if root != checkpoint.root() {
        return Err(CheckpointError::Inconsistent {
            size,
            problem: format!(
                "the root at that size is {root}, the checkpoint signed {}",
                checkpoint.root()
            ),
        });
    }
    Ok(size)
}

/// What checking the Merkle tree against the chain found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeCheck {
    /// The tree size checked: the ledger's durable head.
    pub size: u64,
    /// The root the chain's hashes give at that size.
    pub root: TreeHash,
    /// What disagrees, in one sentence; `None` when the stored tree and the checkpoint agree
    /// with the chain.
    pub problem: Option<String>,
}

/// Recomputes the Merkle tree from the chain's event hashes alone, independent of the stored
/// subtrees, and checks the stored tree's root at the head, and `checkpoint`'s root at its size,
/// against it. A stored subtree that was changed would make every proof over it wrong; a ledger
/// that does not hold the tree of its last signed checkpoint was cut or rewritten below it.
///
/// This reads every event; after a verification, [`check_tree_of`] checks the same from the
/// roots it recomputed.
pub fn check_tree(
    ledger: &Ledger,
    checkpoint: Option<&Checkpoint>,
) -> Result<TreeCheck, CheckpointError> {
    let mut frontier = crate::merkle::Frontier::new();
    let mut completed = Vec::new();
    let wanted = checkpoint.map(Checkpoint::size);
    let mut at_checkpoint = (wanted == Some(0)).then(|| frontier.root());
    ledger.for_each(0, &mut |event| {
        frontier.push(crate::merkle::event_leaf(&event.hash), &mut completed);
        completed.clear();
        if Some(frontier.size()) == wanted {
            at_checkpoint = Some(frontier.root());
        }
        Ok(())
    })?;
    judge_tree(
        ledger,
        frontier.size(),
        frontier.root(),
        at_checkpoint,
        checkpoint,
    )
}

/// [`check_tree`] from the roots a verification of the whole chain recomputed
/// ([`Ledger::verify_with_roots`], asked for the checkpoint's size): the same checks without
/// reading the events again. `report` must be intact.
pub fn check_tree_of(
    report: &crate::verify::VerifyReport,
    ledger: &Ledger,
    checkpoint: Option<&Checkpoint>,
) -> Result<TreeCheck, CheckpointError> {
    let size = report.verified;
    let root = report
        .tree_root(size)
        .ok_or_else(|| CheckpointError::Inconsistent {
            size,
            problem: "the verification did not recompute the Merkle root at its head".into(),
        })?;
    let at_checkpoint = checkpoint.and_then(|c| report.tree_root(c.size()));
    judge_tree(ledger, size, root, at_checkpoint, checkpoint)
}

/// [`check_tree`] for a ledger whose stored tree was built from frames a verification has just
/// checked (a backup's copy, verified as it was written): the checkpoint against that tree,
/// without reading the events again.
pub fn check_stored_tree(
    ledger: &Ledger,
    checkpoint: Option<&Checkpoint>,
) -> Result<TreeCheck, CheckpointError> {
    let size = ledger.head().position;
    let root = ledger.tree_head(size)?.root;
    let at_checkpoint = match checkpoint {
        Some(c) if c.size() <= size => Some(ledger.tree_head(c.size())?.root),
        _ => None,
    };
    judge_tree(ledger, size, root, at_checkpoint, checkpoint)
}

/// The stored tree's root at `size` against `root` recomputed from the chain, and the
/// checkpoint's root against `at_checkpoint` (`None`: the chain does not reach its size).
fn judge_tree(
    ledger: &Ledger,
    size: u64,
    root: TreeHash,
    at_checkpoint: Option<TreeHash>,
    checkpoint: Option<&Checkpoint>,
) -> Result<TreeCheck, CheckpointError> {
    let stored = ledger.tree_head(size)?.root;
    let mut problem = None;
    if stored != root {
        problem = Some(format!(
            "the stored Merkle tree gives root {stored} at size {size}, the chain's hashes give \
             {root}: proofs served from it would not verify. The tree is derived from the \
             frames: restore the ledger from a backup, or remove its stored tree nodes (key \
             prefix 'm', docs/hash-format.md) so that the next open builds them again"
        ));
    }
    if let Some(checkpoint) = checkpoint {
        let problem_at = match at_checkpoint {
            None => Some(format!(
                "the last signed checkpoint covers {} events, the ledger holds {size}: \
                 acknowledged events are missing",
                checkpoint.size()
            )),
            Some(r) if r != checkpoint.root() => Some(format!(
                "the last signed checkpoint (size {}) has root {}, the chain gives {r}: the \
                 ledger was rewritten below a checkpoint the log signed",
                checkpoint.size(),
                checkpoint.root()
            )),
            Some(_) => None,
        };
        problem = problem.or(problem_at);
    }
    Ok(TreeCheck {
        size,
        root,
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::event::{Command, Note, NoteKind, SharedCare};
    use crate::ids::{ActorId, PatientId, Text};
    use crate::ledger::{AppendRequest, ExpectedRevision, LedgerConfig, Submission};
    use crate::record::{Actor, Timestamp};
    use crate::role::Role;

    fn append(ledger: &Ledger, command: Command) {
        let submission = Submission {
            command,
            occurred_at: None,
            reason: Text::new("routine").unwrap(),
        };
        let gp = Actor {
            id: ActorId::parse("gp-1").unwrap(),
            role: Role::Gp,
            name: Text::new("Dr. GP").unwrap(),
            organisation: None,
        };
        ledger
            .append(AppendRequest {
                patient: PatientId::parse("999990007").unwrap(),
                expected: ExpectedRevision::Any,
                actor: gp,
                submissions: vec![submission],
                idempotency_key: None,
                correlation_id: None,
                causation_id: None,
            })
            .unwrap();
    }

    #[test]
    fn the_interval_runs_on_the_ledgers_clock() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(Timestamp::from_micros(
            1_772_355_600_000_000,
        )));
        let config = LedgerConfig {
            clock: clock.clone(),
            ..LedgerConfig::default()
        };
        let ledger = Arc::new(Ledger::open(&dir.path().join("ledger"), config).unwrap());
        let key = LogKey::from_seed("example.org/log", &[7; 32]).unwrap();
        let every = Duration::from_millis(50);
        let config = CheckpointConfig {
            every_events: 0,
            every,
        };
        let file = dir.path().join("checkpoint");
        let checkpointer = Checkpointer::start(ledger.clone(), key, file, config).unwrap();
        let shared_care = SharedCare {
            arrangement: Text::new("shared").unwrap(),
        };
        append(&ledger, Command::StartSharedCare(shared_care));
        // Six intervals of the system's clock pass; none of the ledger's.
        assert!(
            !checkpointer.wait_for(1, 6 * every),
            "the ledger's clock stood still"
        );
        clock.advance(every);
        // The next append wakes the thread, unless its own timer saw the clock first.
        let note = Note {
            kind: NoteKind::Note,
            subject: Text::new("check").unwrap(),
            body: Text::default(),
        };
        append(&ledger, Command::AddNote(note));
        assert!(
            checkpointer.wait_for(2, Duration::from_secs(30)),
            "signed once the ledger's clock passed the interval"
        );
    }
}
