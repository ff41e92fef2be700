//! A witness of a log, after C2SP tlog-witness (`c2sp.org/tlog-witness`): it verifies a new
//! checkpoint of a log it knows against the last one it cosigned, and cosigns it
//! (tlog-cosignature v1) only when the log grew append-only from there. It never cosigns two
//! checkpoints of one log that are not consistent with each other, so a log cannot show one
//! history to some readers and another to others without a witness refusing one of them.
//!
//! This module holds the protocol's text formats and its decisions; the HTTP server and client
//! live in `careledger-api` (`witness`), the pushing of checkpoints in `careledger-app`
//! (`witnesses`). Byte formats are specified in `docs/hash-format.md` ("Witnesses").
//!
//! - [`AddCheckpoint`]: the body of `POST <prefix>/add-checkpoint`: `old <size>\n`, up to 63
//!   consistency proof lines (base64 hashes), an empty line, the signed checkpoint note.
//! - [`Witness`]: the witness's key, the logs it follows (origin and verifier keys) and, for
//!   each, the latest checkpoint it cosigned, stored in its state directory (written aside,
//!   synced, renamed) before any cosignature leaves it.
//! - [`create_witness_key`], [`read_witness_key`]: the witness's private key file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::checkpoint::Checkpoint;
use crate::merkle::{empty_root, verify_consistency, TreeHash};
use crate::note::{
    Note, NoteError, NoteSignature, NoteSigner, VerifierKey, COSIGNATURE_V1, ED25519,
    MAX_NOTE_BYTES,
};

/// Most consistency proof lines a request may carry (the protocol's limit).
pub const MAX_PROOF_LINES: usize = 63;
/// Longest add-checkpoint request body accepted, in bytes: the old size line, 63 proof lines
/// and the longest note accepted.
pub const MAX_REQUEST_BYTES: usize = 32 + MAX_PROOF_LINES * 46 + 1 + MAX_NOTE_BYTES;

/// Why a witness refused a checkpoint, or could not start. Which are the submitter's fault,
/// which are evidence against the log and which are the witness's own failures is said per
/// variant; [`WitnessError::is_misbehaviour`] picks out the evidence.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessError {
    /// The request is not an add-checkpoint body, or its checkpoint is malformed (the
    /// submitter's fault).
    #[error("malformed add-checkpoint request: {0}")]
    Malformed(String),
    /// The checkpoint's origin is not a log this witness follows.
    #[error("this witness follows no log with origin {0:?}")]
    UnknownLog(String),
    /// The checkpoint carries no valid signature by the log's key (a trusted key's signature
    /// that fails, or none at all).
    #[error("the checkpoint is not signed by the log's key: {0}")]
    Unverified(NoteError),
    /// The old size is larger than the checkpoint's size (the submitter's fault).
    #[error("the old size {old} is larger than the checkpoint's size {size}")]
    OldBeyondSize {
        /// The old size of the request.
        old: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The old size is not the size of the latest checkpoint this witness cosigned for the
    /// log: the submitter should prove consistency from `cosigned` instead.
    #[error("the old size {old} is not {cosigned}, the size of the latest checkpoint this witness cosigned for the log")]
    Conflict {
        /// The size of the latest checkpoint cosigned for this log (0 when none).
        cosigned: u64,
        /// The old size of the request.
        old: u64,
    },
    /// Evidence against the log: a checkpoint it signed is smaller than one the witness
    /// cosigned (the log was rolled back, or an old checkpoint is being replayed).
    #[error("refused: the log {origin:?} signed a checkpoint of size {offered}, smaller than the checkpoint of size {cosigned} this witness cosigned; a log only grows (rolled back, or an old checkpoint replayed)")]
    Rollback {
        /// The log's origin.
        origin: String,
        /// The size of the latest cosigned checkpoint.
        cosigned: u64,
        /// The size of the refused checkpoint.
        offered: u64,
        /// The old size of the request.
        old: u64,
    },
    /// Evidence against the log: it signed a checkpoint of the size the witness cosigned,
    /// with another root hash (a fork: two histories under one key).
    #[error("refused: the log {origin:?} signed a checkpoint of size {size} with root {offered}, and this witness cosigned root {cosigned} at that size; the log forked")]
    Fork {
        /// The log's origin.
        origin: String,
        /// The size of both checkpoints.
        size: u64,
        /// The root hash cosigned.
        cosigned: TreeHash,
        /// The root hash of the refused checkpoint.
        offered: TreeHash,
        /// The old size of the request.
        old: u64,
    },
    /// The consistency proof does not prove that the checkpoint extends the one cosigned:
    /// a wrong proof, or a log whose new tree does not contain the old one (a fork).
    #[error("refused: the consistency proof from size {cosigned} to size {offered} of the log {origin:?} does not verify ({problem}); this witness cosigns only a checkpoint that extends the one it cosigned")]
    Inconsistent {
        /// The log's origin.
        origin: String,
        /// The size of the latest cosigned checkpoint.
        cosigned: u64,
        /// The size of the refused checkpoint.
        offered: u64,
        /// What failed.
        problem: String,
    },
    /// The request's proof is wrong for reasons the protocol names on their own: a proof
    /// given with old size 0, or a checkpoint of size 0 whose root is not the empty tree's.
    #[error("refused: {0}")]
    BadProof(String),
    /// The witness's key is malformed, or not a cosigner key.
    #[error("the witness key in {path}: {problem}")]
    Key {
        /// The key file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// The stored state does not verify (a changed file, or another witness key): the witness
    /// refuses to start rather than forget what it cosigned.
    #[error("the witness state in {path} does not verify: {problem}; restore it from a backup (starting without it would let this witness cosign a fork of what it cosigned before)")]
    State {
        /// The state file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// Reading or writing a file failed (the witness's failure).
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The failure.
        source: std::io::Error,
    },
}

impl WitnessError {
    /// True when the refusal is evidence that the log misbehaved (rolled back or forked), as
    /// far as this witness can tell: worth an operator's attention.
    pub fn is_misbehaviour(&self) -> bool {
        matches!(
            self,
            WitnessError::Rollback { .. }
                | WitnessError::Fork { .. }
                | WitnessError::Inconsistent { .. }
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WitnessError + '_ {
    move |source| WitnessError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The body of an add-checkpoint request: the size the submitter believes the witness
/// cosigned last, the consistency proof from that size to the checkpoint's, and the signed
/// checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddCheckpoint {
    old: u64,
    proof: Vec<TreeHash>,
    checkpoint: String,
}

impl AddCheckpoint {
    /// A request for `checkpoint` (a signed note, ending in a newline) from `old` with `proof`.
    pub fn new(old: u64, proof: Vec<TreeHash>, checkpoint: &str) -> Result<Self, WitnessError> {
        if proof.len() > MAX_PROOF_LINES {
            return Err(WitnessError::Malformed(format!(
                "{} proof lines is more than the {MAX_PROOF_LINES} allowed",
                proof.len()
            )));
        }
        if !checkpoint.ends_with('\n') {
            return Err(WitnessError::Malformed(
                "the checkpoint note must end in a newline".into(),
            ));
        }
        Ok(Self {
            old,
            proof,
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// The size of the previous checkpoint.
    pub fn old(&self) -> u64 {
        self.old
    }

    /// The consistency proof's hashes.
    pub fn proof(&self) -> &[TreeHash] {
        &self.proof
    }

    /// The signed checkpoint note.
    pub fn checkpoint(&self) -> &str {
        &self.checkpoint
    }

    /// The request body: `old <size>\n`, one base64 hash per line, `\n`, the note.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut body = format!("old {}\n", self.old);
        for hash in &self.proof {
            body.push_str(&BASE64.encode(hash.0));
            body.push('\n');
        }
        body.push('\n');
        body.push_str(&self.checkpoint);
        body.into_bytes()
    }

    /// Parses a request body (the note itself is parsed later, by the witness).
    pub fn parse(body: &[u8]) -> Result<Self, WitnessError> {
        let bad = |problem: &str| WitnessError::Malformed(problem.to_owned());
        if body.len() > MAX_REQUEST_BYTES {
            return Err(bad(&format!(
                "{} bytes is longer than the {MAX_REQUEST_BYTES} accepted",
                body.len()
            )));
        }
        let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
        let (first, mut rest) = text
            .split_once('\n')
            .ok_or_else(|| bad("the body must start with an 'old <size>' line"))?;
        let old = first
            .strip_prefix("old ")
            .and_then(parse_decimal)
            .ok_or_else(|| {
                bad("the first line must be 'old <size>', a decimal without leading zeros")
            })?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest.split_once('\n').ok_or_else(|| {
                bad("the proof lines must end with an empty line before the checkpoint")
            })?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(bad(&format!(
                    "more than {MAX_PROOF_LINES} consistency proof lines"
                )));
            }
            let hash: [u8; 32] = BASE64
                .decode(line)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    bad("each consistency proof line must be a 32-byte hash in standard base64")
                })?;
            proof.push(TreeHash(hash));
        }
        Self::new(old, proof, rest)
    }
}

/// A decimal without leading zeros ("0" alone is zero).
fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok()).flatten()
}

/// Parses a checkpoint's note text: its first three lines are the origin, size and root (as
/// [`Checkpoint::parse_body`] reads them); the lines after them, if any, are extension lines,
/// which a cosignature covers as bytes but vouches nothing for.
pub fn parse_checkpoint_text(text: &str) -> Result<Checkpoint, NoteError> {
    let mut end = 0;
    for _ in 0..3 {
        end += text[end..]
            .find('\n')
            .map(|i| i + 1)
            .ok_or_else(|| NoteError::Malformed("a checkpoint has at least three lines".into()))?;
    }
    if text[end..].split_terminator('\n').any(str::is_empty) {
        return Err(NoteError::Malformed(
            "a checkpoint's extension lines must not be empty".into(),
        ));
    }
    Checkpoint::parse_body(&text[..end])
}

/// The lowercase hex SHA-256 of a log's origin: how the protocol's monitoring path
/// (`GET <prefix>/<origin hash>/checkpoint`) and the witness's state files name a log.
pub fn origin_hash(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

/// The latest checkpoint cosigned for one log.
struct Latest {
    checkpoint: Checkpoint,
    /// The checkpoint with the log's signatures and this witness's cosignature.
    note: String,
}

/// A witness: its cosigning key, the logs it follows, and for each the latest checkpoint it
/// cosigned. Checking a request against that checkpoint and storing the new one happen under
/// one lock, so that two requests cannot both pass against the same old state.
pub struct Witness {
    signer: NoteSigner,
    logs: HashMap<String, Vec<VerifierKey>>,
    dir: PathBuf,
    latest: Mutex<HashMap<String, Latest>>,
    /// Held while the witness runs: a second process on the same state could cosign a fork.
    _lock: File,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Witness({}, {})", self.signer.name(), self.dir.display())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Witness {
    /// Opens the witness with its cosigner key `signer`, following the logs whose verifier
    /// keys are `logs` (ed25519 keys, named by the logs' origins; several keys of one origin
    /// are all trusted), with its state in `dir` (created when missing). Refuses to start when
    /// another process holds `dir`, or when a stored checkpoint does not carry this witness's
    /// own valid cosignature.
    pub fn open(
        signer: NoteSigner,
        logs: &[VerifierKey],
        dir: &Path,
    ) -> Result<Self, WitnessError> {
        if signer.verifier_key().kind() != COSIGNATURE_V1 {
            return Err(WitnessError::Key {
                path: signer.name().to_owned(),
                problem:
                    "not a cosigner key (type 0x04); make one with `careledger witness keygen`"
                        .into(),
            });
        }
        let mut by_origin: HashMap<String, Vec<VerifierKey>> = HashMap::new();
        for key in logs {
            if key.kind() != ED25519 {
                return Err(WitnessError::Malformed(format!(
                    "the log key {key} is not a log's ed25519 key (type 0x01)"
                )));
            }
            by_origin
                .entry(key.name().to_owned())
                .or_default()
                .push(key.clone());
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        lock_file.try_lock().map_err(|e| WitnessError::Io {
            path: lock_path.display().to_string(),
            source: std::io::Error::other(format!(
                "another witness process holds this state directory ({e})"
            )),
        })?;
        let mut latest = HashMap::new();
        let own = signer.verifier_key();
        for origin in by_origin.keys() {
            let path = state_path(dir, origin);
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&path)(e)),
            };
            let state = |problem: String| WitnessError::State {
                path: path.display().to_string(),
                problem,
            };
            let note = Note::parse(&text).map_err(|e| state(e.to_string()))?;
            let checkpoint =
                parse_checkpoint_text(note.text()).map_err(|e| state(e.to_string()))?;
            if checkpoint.origin() != origin {
                return Err(state(format!(
                    "it holds a checkpoint of {:?}",
                    checkpoint.origin()
                )));
            }
            let cosigned = note
                .signatures()
                .iter()
                .filter(|s| s.is_by(&own))
                .any(|s| s.verify_cosignature(&own, note.text()).is_ok());
            if !cosigned {
                return Err(state(format!(
                    "it carries no valid cosignature by this witness's key {own}"
                )));
            }
            latest.insert(
                origin.clone(),
                Latest {
                    checkpoint,
                    note: text,
                },
            );
        }
        Ok(Self {
            signer,
            logs: by_origin,
            dir: dir.to_owned(),
            latest: Mutex::new(latest),
            _lock: lock_file,
        })
    }

    /// The witness's verifier key, for the logs' operators and for readers of cosignatures.
    pub fn verifier_key(&self) -> VerifierKey {
        self.signer.verifier_key()
    }

    /// The latest checkpoint cosigned for the log `origin`, with the log's signature and this
    /// witness's cosignature; `None` before the first.
    pub fn latest(&self, origin: &str) -> Option<String> {
        lock(&self.latest).get(origin).map(|l| l.note.clone())
    }

    /// [`Witness::latest`] of the log whose [`origin_hash`] is `hash`.
    pub fn latest_by_origin_hash(&self, hash: &str) -> Option<String> {
        lock(&self.latest)
            .iter()
            .find(|(origin, _)| origin_hash(origin) == hash)
            .map(|(_, l)| l.note.clone())
    }

    /// Handles an add-checkpoint request body at `now` (seconds since 1970, UTC; the time
    /// the cosignature states): checks it against the latest checkpoint cosigned for its log,
    /// stores the new one durably, and only then returns the cosignature.
    pub fn add_checkpoint(&self, body: &[u8], now: u64) -> Result<NoteSignature, WitnessError> {
        let request = AddCheckpoint::parse(body)?;
        let note = Note::parse(request.checkpoint())
            .map_err(|e| WitnessError::Malformed(e.to_string()))?;
        let checkpoint = parse_checkpoint_text(note.text())
            .map_err(|e| WitnessError::Malformed(e.to_string()))?;
        let origin = checkpoint.origin().to_owned();
        let keys = self
            .logs
            .get(&origin)
            .ok_or_else(|| WitnessError::UnknownLog(origin.clone()))?;
        let log_signatures = verify_log_signatures(&note, keys)?;

        let mut latest = lock(&self.latest);
        let (cosigned, cosigned_root) = match latest.get(&origin) {
            Some(l) => (l.checkpoint.size(), l.checkpoint.root()),
            None => (0, empty_root()),
        };
        check_consistency(&request, &checkpoint, cosigned, cosigned_root)?;

        // The timestamp is never zero: a zero timestamp makes no statement about time.
        let cosignature = self
            .signer
            .cosign(note.text(), now.max(1))
            .map_err(|e| WitnessError::Malformed(e.to_string()))?;
        let mut stored = format!("{}\n", note.text());
        for signature in log_signatures.iter().chain([&cosignature]) {
            stored.push_str(&signature.line());
        }
        let path = state_path(&self.dir, &origin);
        write_file_atomically(&path, stored.as_bytes()).map_err(io(&path))?;
        latest.insert(
            origin,
            Latest {
                checkpoint,
                note: stored,
            },
        );
        Ok(cosignature)
    }
}

/// The signatures by `keys` on `note`, each of which verifies; at least one. A signature by a
/// trusted key's name and ID that fails to verify refuses the note, as signed-note says.
fn verify_log_signatures(
    note: &Note,
    keys: &[VerifierKey],
) -> Result<Vec<NoteSignature>, WitnessError> {
    let mut valid = Vec::new();
    let mut missing = None;
    for key in keys {
        match note.verify(key) {
            Ok(_) => valid.extend(note.signatures().iter().filter(|s| s.is_by(key)).cloned()),
            Err(e @ NoteError::NotSigned(_)) => missing = Some(e),
            Err(e) => return Err(WitnessError::Unverified(e)),
        }
    }
    match (valid.is_empty(), missing) {
        (false, _) => Ok(valid),
        (true, Some(e)) => Err(WitnessError::Unverified(e)),
        (true, None) => Err(WitnessError::Unverified(NoteError::NotSigned(
            "the log".into(),
        ))),
    }
}

/// The protocol's checks of a verified checkpoint against the latest one cosigned (of size
/// `cosigned` and root `cosigned_root`; 0 and the empty tree's root when none).
fn check_consistency(
    request: &AddCheckpoint,
    checkpoint: &Checkpoint,
    cosigned: u64,
    cosigned_root: TreeHash,
) -> Result<(), WitnessError> {
    let (old, size, root) = (request.old(), checkpoint.size(), checkpoint.root());
    let origin = checkpoint.origin().to_owned();
    // Evidence against the log comes first, whatever the old size says.
    if size < cosigned {
        return Err(WitnessError::Rollback {
            origin,
            cosigned,
            offered: size,
            old,
        });
    }
    if size == cosigned && root != cosigned_root {
        return Err(WitnessError::Fork {
            origin,
            size,
            cosigned: cosigned_root,
            offered: root,
            old,
        });
    }
    if old > size {
        return Err(WitnessError::OldBeyondSize { old, size });
    }
    if old != cosigned {
        return Err(WitnessError::Conflict { cosigned, old });
    }
    if size == 0 && root != empty_root() {
        return Err(WitnessError::BadProof(
            "a checkpoint of size 0 must carry the empty tree's root hash".into(),
        ));
    }
    if old == 0 {
        return match request.proof().is_empty() {
            true => Ok(()),
            false => Err(WitnessError::BadProof(
                "with old size 0 the consistency proof must be empty".into(),
            )),
        };
    }
    verify_consistency(old, size, &cosigned_root, &root, request.proof()).map_err(|e| {
        WitnessError::Inconsistent {
            origin,
            cosigned,
            offered: size,
            problem: e.to_string(),
        }
    })
}

fn state_path(dir: &Path, origin: &str) -> PathBuf {
    dir.join(format!("{}.checkpoint", origin_hash(origin)))
}

/// Writes `bytes` to `path` durably and atomically: into `<path>.new`, synced, renamed over
/// `path`, and the directory synced, so that a crash leaves the old file or the new one.
pub fn write_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(".new");
    let aside = PathBuf::from(aside);
    let mut file = File::create(&aside)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&aside, path)?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Makes a witness's cosigner key named `name` (a schema-less URL naming the witness, e.g.
/// `witness.example/gp-cooperative`) and writes it to `path`, which must not exist, readable
/// by its owner only (mode 0600), in the signed-note private-key form
/// ([`NoteSigner::to_private_key_string`]).
pub fn create_witness_key(path: &Path, name: &str) -> Result<NoteSigner, WitnessError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| WitnessError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(format!("no randomness for a new key: {e}")),
    })?;
    let signer =
        NoteSigner::from_seed(name, COSIGNATURE_V1, &seed).map_err(|e| WitnessError::Key {
            path: path.display().to_string(),
            problem: e.to_string(),
        })?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io(path))?;
    file.write_all(format!("{}\n", signer.to_private_key_string()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(path))?;
    sync_parent(path).map_err(io(path))?;
    Ok(signer)
}

/// Reads a witness's cosigner key from `path`; a log's key (type 0x01) is refused.
pub fn read_witness_key(path: &Path) -> Result<NoteSigner, WitnessError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let key = |problem: String| WitnessError::Key {
        path: path.display().to_string(),
        problem,
    };
    let signer = NoteSigner::parse_private_key(&text).map_err(|e| key(e.to_string()))?;
    if signer.verifier_key().kind() != COSIGNATURE_V1 {
        return Err(key(
            "it is not a cosigner key (type 0x04): a witness signs with its own key, made by \
             `careledger witness keygen`, never with a log's key"
                .into(),
        ));
    }
    Ok(signer)
}

#[cfg(test)]
mod tests;
