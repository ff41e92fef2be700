//! Authorship the operator cannot forge: a clinician registers their client system's key, signs
//! appends with HTTP Message Signatures (RFC 9421, ed25519) and the server accepts them only
//! when the key, the signature, the digest, the time and the path hold, storing the signed
//! request with the events; an export shows which events carry a valid signature by which
//! registered key, an event the operator appended in the clinician's name as unsigned, and any
//! change to a stored signed request or a key registration fails verification.

use std::path::Path;
use std::process::Output;

use careledger_api::signature::{base64_encode, public_key, sign};
use careledger_core::event::{Command, Note, NoteKind};
use careledger_core::export::Export;
use careledger_core::ids::{PatientId, Text};
use careledger_core::signed_request::SignedRequest;
use careledger_core::{AppendRequest, ExpectedRevision, Ledger, LedgerConfig, Submission};
use serde_json::{json, Value};

use crate::common::process::{careledger, prepare_demo, sign_checkpoint, ServerProcess};
use crate::common::{note_body, unix_now};

const PATIENT: &str = "999990007";
const OTHER: &str = "999990019";
const SECRET: [u8; 32] = [11; 32];
const DATE: &str = "Thu, 03 Dec 2026 09:30:00 GMT";

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A request signed for `signed_path` (with `secret` as key `key_id`, created at `created`) over
/// `signed_body`, as sent.
struct Signed {
    signed_path: String,
    signed_body: Vec<u8>,
    secret: [u8; 32],
    key_id: &'static str,
    created: i64,
}

impl Signed {
    fn new(body: Vec<u8>) -> Self {
        Self {
            signed_path: format!("/patients/{PATIENT}/events"),
            signed_body: body,
            secret: SECRET,
            key_id: "his-1",
            created: unix_now(),
        }
    }

    /// Sends it to `path` with `body` (which may differ from what was signed).
    async fn send_to(
        &self,
        client: &reqwest::Client,
        base: &str,
        token: &str,
        path: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let h = sign(
            "POST",
            &self.signed_path,
            DATE,
            &self.signed_body,
            self.key_id,
            &self.secret,
            self.created,
        );
        client
            .post(format!("{base}{path}"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("date", DATE)
            .header("content-digest", h.content_digest)
            .header("signature-input", h.signature_input)
            .header("signature", h.signature)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    async fn send(&self, client: &reqwest::Client, base: &str, token: &str) -> reqwest::Response {
        let path = self.signed_path.clone();
        self.send_to(client, base, token, &path, self.signed_body.clone())
            .await
    }
}

async fn revision(client: &reqwest::Client, base: &str, token: &str) -> usize {
    let events: Value = client
        .get(format!("{base}/patients/{PATIENT}/events?limit=1000"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    events["events"].as_array().unwrap().len()
}

/// Asserts a refusal with `status` and problem `code`, and that nothing was written.
async fn assert_refused(
    response: reqwest::Response,
    status: u16,
    code: &str,
    case: &str,
    written_before: usize,
    (client, base, token): (&reqwest::Client, &str, &str),
) {
    assert_eq!(response.status().as_u16(), status, "{case}");
    if status == 401 {
        assert!(
            response.headers().contains_key("accept-signature"),
            "{case}: a 401 for a signature says what is accepted"
        );
    }
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], code, "{case}: {problem}");
    assert!(
        problem["detail"].as_str().unwrap().len() > 20,
        "{case}: the problem says what to fix: {problem}"
    );
    assert_eq!(
        revision(client, base, token).await,
        written_before,
        "{case}: nothing is written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_appends_are_stored_with_their_events_and_every_bad_signature_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (_auditor, gp, _) = prepare_demo(data);
    let client = reqwest::Client::new();
    let mut server = ServerProcess::start(data, &client).await;
    let base = server.base.clone();

    let registered = client
        .post(format!("{base}/actors/me/keys"))
        .bearer_auth(&gp)
        .json(
            &json!({"key_id": "his-1", "public_key": base64_encode(&public_key(&SECRET)),
            "system": "HIS of practice Jansen", "reason": "the practice HIS signs my appends"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status().as_u16(), 201);

    let first = Signed::new(note_body("signed follow-up"));
    let accepted = first.send(&client, &base, &gp).await;
    assert_eq!(accepted.status().as_u16(), 201);
    let before = revision(&client, &base, &gp).await;
    let here = (&client, base.as_str(), gp.as_str());

    let mut wrong_key = Signed::new(note_body("wrong key"));
    wrong_key.secret = [12; 32];
    let r = wrong_key.send(&client, &base, &gp).await;
    assert_refused(r, 401, "signature_invalid", "another key", before, here).await;

    let changed = Signed::new(note_body("what was signed"));
    let path = changed.signed_path.clone();
    let r = (changed.send_to(&client, &base, &gp, &path, note_body("what was sent"))).await;
    assert_refused(
        r,
        401,
        "content_digest_mismatch",
        "a changed body",
        before,
        here,
    )
    .await;

    let mut other = Signed::new(note_body("for another patient"));
    other.signed_path = format!("/patients/{OTHER}/events");
    let r = (other.send_to(
        &client,
        &base,
        &gp,
        &format!("/patients/{PATIENT}/events"),
        note_body("for another patient"),
    ))
    .await;
    assert_refused(
        r,
        401,
        "signature_invalid",
        "another patient's path",
        before,
        here,
    )
    .await;

    let mut stale = Signed::new(note_body("stale"));
    stale.created = unix_now() - 3600;
    let r = stale.send(&client, &base, &gp).await;
    assert_refused(
        r,
        401,
        "signature_stale",
        "created an hour ago",
        before,
        here,
    )
    .await;

    let mut unknown = Signed::new(note_body("unknown key"));
    unknown.key_id = "his-9";
    let r = unknown.send(&client, &base, &gp).await;
    assert_refused(
        r,
        401,
        "signature_key_unknown",
        "an unregistered key id",
        before,
        here,
    )
    .await;

    let r = first.send(&client, &base, &gp).await;
    assert_refused(
        r,
        409,
        "signature_replayed",
        "the accepted request again",
        before,
        here,
    )
    .await;

    server.signal(libc::SIGTERM);
    drop(server);

    // The accepted request's record names the stored request's hash.
    let ledger = Ledger::open(&data.join("ledger"), LedgerConfig::default()).unwrap();
    let patient = PatientId::parse(PATIENT).unwrap();
    let events = ledger.read_stream(&patient, 1, usize::MAX).unwrap();
    let last = events.last().unwrap();
    let hash = last
        .record
        .signed_request
        .expect("the signed append names its request");
    let bytes = ledger.signed_request(&hash).unwrap().unwrap();
    assert_eq!(SignedRequest::hash_of(&bytes), hash);
    let stored = SignedRequest::decode(&bytes).unwrap();
    assert_eq!(stored.body, note_body("signed follow-up"));
    assert_eq!(stored.key_id.as_str(), "his-1");
    assert!(events[..events.len() - 1]
        .iter()
        .all(|e| e.record.signed_request.is_none()));
}

fn verify_export(file: &Path, key: &str) -> Output {
    careledger(&["verify-export", file.to_str().unwrap(), "--key", key])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_shows_the_signed_event_signed_and_the_operators_event_in_the_clinicians_name_unsigned(
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let d = data.to_str().unwrap();
    let (_auditor, gp, _) = prepare_demo(data);
    let client = reqwest::Client::new();
    let mut server = ServerProcess::start(data, &client).await;
    let registered = client
        .post(format!("{}/actors/me/keys", server.base))
        .bearer_auth(&gp)
        .json(
            &json!({"key_id": "his-1", "public_key": base64_encode(&public_key(&SECRET)),
            "system": "HIS of practice Jansen"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status().as_u16(), 201);
    let signed = Signed::new(note_body("signed follow-up"));
    assert_eq!(
        signed
            .send(&client, &server.base, &gp)
            .await
            .status()
            .as_u16(),
        201
    );
    server.signal(libc::SIGTERM);
    drop(server);

    // The operator, with the server stopped, appends in the GP's name without the GP's key, and
    // registers a key for the cardiologist from the command line.
    let ledger = Ledger::open(&data.join("ledger"), LedgerConfig::default()).unwrap();
    let patient = PatientId::parse(PATIENT).unwrap();
    let gp_actor = ledger
        .read_stream(&patient, 1, usize::MAX)
        .unwrap()
        .last()
        .unwrap()
        .record
        .actor
        .clone();
    ledger
        .append(AppendRequest {
            patient: patient.clone(),
            expected: ExpectedRevision::Any,
            actor: gp_actor,
            submissions: vec![Submission {
                command: Command::AddNote(Note {
                    kind: NoteKind::Note,
                    subject: Text::new("written by the operator").unwrap(),
                    body: Text::new("not from the GP's system").unwrap(),
                }),
                occurred_at: None,
                reason: Text::new("consultation").unwrap(),
            }],
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        })
        .unwrap();
    drop(ledger);
    let card_key = base64_encode(&public_key(&[13; 32]));
    let out = careledger(&[
        "keys",
        "register",
        "--data",
        d,
        "--actor",
        "card-devries",
        "--key-id",
        "ehr-1",
        "--public-key",
        &card_key,
        "--system",
        "hospital EHR",
        "--reason",
        "requested by the hospital's IT department",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let out = careledger(&["keys", "list", "--data", d]);
    let listed = text(&out);
    assert!(
        listed.contains("card-devries") && listed.contains("by careledger:operator"),
        "{listed}"
    );
    assert!(
        listed.contains("gp-jansen") && listed.contains("by gp-jansen"),
        "{listed}"
    );

    sign_checkpoint(data, None);
    let file = data.join("export.json");
    let out = careledger(&[
        "export",
        "--data",
        d,
        "--patient",
        PATIENT,
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = careledger(&["key", "show", "--data", d]);
    let key = String::from_utf8(shown.stdout).unwrap().trim().to_owned();

    let out = verify_export(&file, &key);
    let printed = text(&out);
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("1 of"), "{printed}");
    let signed_lines = printed
        .matches("signed by his-1 of gp-jansen (registered at position")
        .count();
    assert_eq!(signed_lines, 1, "{printed}");
    assert!(printed.contains("by gp-jansen)"), "{printed}");
    assert!(
        printed.contains("unsigned (although gp-jansen had a signing key registered"),
        "the operator's event in the GP's name shows as unsigned: {printed}"
    );

    let bundle: Export = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(bundle.version, 2);
    assert_eq!(bundle.signed_requests.len(), 1);
    assert!(!bundle.keys.is_empty());
    let check = |name: &str, bundle: &Export, cause: &str| {
        let changed = data.join(format!("{name}.json"));
        std::fs::write(&changed, serde_json::to_vec(bundle).unwrap()).unwrap();
        let out = verify_export(&changed, &key);
        let printed = text(&out);
        assert_eq!(out.status.code(), Some(1), "{name}: {printed}");
        let failed: Vec<_> = printed
            .lines()
            .filter(|l| l.starts_with("FAILED: "))
            .collect();
        assert_eq!(failed.len(), 1, "{name}: {printed}");
        assert!(failed[0].contains(cause), "{name}: {printed}");
    };

    // A changed byte anywhere in the stored request: it no longer hashes to the record's hash.
    let mut tampered = bundle.clone();
    let bytes = &mut tampered.signed_requests[0].bytes;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    check("tampered-request", &tampered, "signed request");

    // The signed request left out.
    let mut tampered = bundle.clone();
    tampered.signed_requests.clear();
    check("request-left-out", &tampered, "does not carry");

    // A changed key registration: its frame no longer hashes to its hash.
    let mut tampered = bundle.clone();
    let frame = &mut tampered.keys[0].frame;
    let last = frame.len() - 1;
    frame[last] ^= 1;
    check("tampered-key", &tampered, "key event at position");

    // The GP's key registration left out: the signature has no registered key to verify under.
    let mut tampered = bundle.clone();
    tampered.keys.retain(|k| {
        let record = careledger_core::chain::Frame::parse(&k.frame).unwrap();
        !String::from_utf8_lossy(record.record).contains("his-1")
    });
    check(
        "key-left-out",
        &tampered,
        "whose registration the export does not carry",
    );
}
