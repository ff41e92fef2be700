//! The witness server on a loopback port, called through the log's client: each refusal
//! reaches the log as the status the protocol names.

use std::sync::Arc;

use careledger_app::witnesses::{WitnessClient, WitnessReply};
use careledger_core::checkpoint::LogKey;
use careledger_core::merkle::{TreeHash, TreeHead};
use careledger_core::note::{NoteSignature, NoteSigner, COSIGNATURE_V1};
use careledger_core::witness::{origin_hash, AddCheckpoint, Witness};

use super::*;

const ORIGIN: &str = "careledger.example/test-log";

fn head(size: u64, byte: u8) -> TreeHead {
    TreeHead {
        size,
        root: TreeHash([byte; 32]),
    }
}

fn body(log: &LogKey, old: u64, head: TreeHead) -> Vec<u8> {
    let note = log.sign(head).unwrap().to_string();
    AddCheckpoint::new(old, vec![], &note).unwrap().to_bytes()
}

/// Starts a witness server on a free loopback port; it stops with the test's runtime.
async fn start(log: &LogKey, state: &std::path::Path) -> (String, Arc<Witness>) {
    let signer =
        NoteSigner::from_seed("witness.example/hospital", COSIGNATURE_V1, &[0x33; 32]).unwrap();
    let witness = Arc::new(Witness::open(signer, &[log.verifier_key()], state).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve(listener, witness.clone(), std::future::pending()));
    (url, witness)
}

#[tokio::test]
async fn each_answer_of_the_protocol_reaches_the_log_as_its_status() {
    let state = tempfile::tempdir().unwrap();
    let log = LogKey::from_seed(ORIGIN, &[0x11; 32]).unwrap();
    let (url, witness) = start(&log, state.path()).await;
    let client = HttpWitnessClient::new();
    let post = |body: Vec<u8>| {
        let (client, url) = (client.clone(), url.clone());
        async move { client.add_checkpoint(&url, body).await.unwrap() }
    };
    let refused = |reply: WitnessReply| match reply {
        WitnessReply::Refused { status, body } => (status, body),
        other => panic!("expected a refusal, got {other:?}"),
    };

    // Cosigned: one line by the witness's key over the checkpoint.
    let WitnessReply::Cosigned(lines) = post(body(&log, 0, head(5, 1))).await else {
        panic!("the first checkpoint is cosigned");
    };
    let line = NoteSignature::parse_line(lines.trim_end()).unwrap();
    let text = log.sign(head(5, 1)).unwrap().text().to_owned();
    assert!(line
        .verify_cosignature(&witness.verifier_key(), &text)
        .is_ok());

    // Another old size: 409 with the witness's size (a rollback met with old 0 too).
    assert_eq!(
        post(body(&log, 0, head(9, 2))).await,
        WitnessReply::Conflict(5)
    );
    assert_eq!(
        post(body(&log, 0, head(3, 2))).await,
        WitnessReply::Conflict(5)
    );
    // A fork at the cosigned size, with the right old size: 422, saying so.
    let (status, text) = refused(post(body(&log, 5, head(5, 9))).await);
    assert_eq!(status, 422);
    assert!(text.contains("forked"), "{text}");
    // A rollback with the witness's size as old: 400, saying so.
    let (status, text) = refused(post(body(&log, 5, head(3, 1))).await);
    assert_eq!(status, 400);
    assert!(text.contains("smaller"), "{text}");
    // Malformed: 400.
    assert_eq!(refused(post(b"old five\n\n".to_vec()).await).0, 400);
    // Signed by another key of the origin: 403.
    let impostor = LogKey::from_seed(ORIGIN, &[0x44; 32]).unwrap();
    assert_eq!(refused(post(body(&impostor, 5, head(9, 2))).await).0, 403);
    // A log the witness does not follow: 404.
    let stranger = LogKey::from_seed("other.example/log", &[0x11; 32]).unwrap();
    assert_eq!(refused(post(body(&stranger, 0, head(1, 1))).await).0, 404);
    // The same checkpoint again is cosigned again.
    assert!(matches!(
        post(body(&log, 5, head(5, 1))).await,
        WitnessReply::Cosigned(_)
    ));
}

#[tokio::test]
async fn the_witness_serves_the_latest_checkpoint_it_cosigned_by_origin_hash() {
    let state = tempfile::tempdir().unwrap();
    let log = LogKey::from_seed(ORIGIN, &[0x11; 32]).unwrap();
    let (url, witness) = start(&log, state.path()).await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Empty<axum::body::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let get = |path: String| {
        let client = client.clone();
        async move {
            let response = client.get(path.parse().unwrap()).await.unwrap();
            let status = response.status().as_u16();
            let bytes = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    let path = format!("{url}/{}/checkpoint", origin_hash(ORIGIN));
    assert_eq!(get(path.clone()).await.0, 404);
    HttpWitnessClient::new()
        .add_checkpoint(&url, body(&log, 0, head(5, 1)))
        .await
        .unwrap();
    let (status, note) = get(path).await;
    assert_eq!(status, 200);
    assert_eq!(Some(note), witness.latest(ORIGIN));
}

#[tokio::test]
async fn an_unreachable_witness_is_an_error_naming_the_cause() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = HttpWitnessClient::new()
        .add_checkpoint(&format!("http://127.0.0.1:{port}"), b"old 0\n\n".to_vec())
        .await
        .unwrap_err();
    assert!(error.to_lowercase().contains("connect"), "{error}");
}
