//! Malformed and hostile requests at every endpoint: every answer is a 4xx problem body, never a
//! 5xx, and the ledger is byte-for-byte unchanged afterwards.

use crate::common::{Fixture, PATIENT};
use axum::body::Body;
use axum::http::Request;
use proptest::prelude::*;

/// Resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// Cases run so far, and the memory after the first ones (the warm-up).
static CASES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static WARM_KIB: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The ledger as bytes: every event's position and hash, and the head.
fn fingerprint(f: &Fixture) -> Vec<(u64, String)> {
    f.data
        .ledger
        .read_all(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| (e.position, e.hash.to_hex()))
        .collect()
}

fn hostile_bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"{not json".to_vec()),
        Just(b"".to_vec()),
        Just(b"null".to_vec()),
        Just(br#"{"commands": "all of them"}"#.to_vec()),
        Just(br#"{"commands": [{"type": "set_target", "measure": "ldl", "comparator": "<=", "value": "1.8", "unit": "mg/dL", "basis": "esc_guideline"}]}"#.to_vec()),
        Just(br#"{"commands": [{"type": "set_target", "measure": "ldl", "comparator": "<=", "value": "1e308", "unit": "mmol/L", "basis": "esc_guideline"}]}"#.to_vec()),
        Just(br#"{"commands": [{"type": "record_measurement", "measure": "weight", "value": "-5", "unit": "kg", "source": "practice"}]}"#.to_vec()),
        Just(br#"{"commands": [{"type": "record_measurement", "measure": "systolic_bp", "value": 120, "unit": "mm[Hg]", "source": "practice"}]}"#.to_vec()),
        Just(br#"{"commands": [{"type": "drop_table"}]}"#.to_vec()),
        Just(br#"{"commands": [{"type": "start_medication"}]}"#.to_vec()),
        Just(br#"{"commands": [{"type": "acknowledge_notification", "notification": -1}]}"#.to_vec()),
        Just(br#"{"commands": [{"type": "mark_entered_in_error", "position": 18446744073709551615}]}"#.to_vec()),
        Just(br#"{"commands": [{"type": "add_care_team_member", "actor": "x y", "name": "n", "role": "gp"}]}"#.to_vec()),
        Just(br#"{"commands": [{"type": "add_care_team_member", "actor": "x", "name": "n", "role": "gp", "agb": "123"}]}"#.to_vec()),
        Just(format!(r#"{{"commands": [{{"type": "add_note", "subject": "{}"}}]}}"#, "x".repeat(9000)).into_bytes()),
        Just(format!(r#"{{"commands": {}1{}}}"#, "[".repeat(10_000), "]".repeat(10_000)).into_bytes()),
        Just(vec![0xff, 0xfe, 0x00, 0x80, b'{']),
        Just(br#"{"commands": [{"type": "add_note", "subject": "bell\u0007"}]}"#.to_vec()),
        proptest::collection::vec(any::<u8>(), 0..256),
        "[a-z{}\\[\\]\":,0-9 ]{0,200}".prop_map(String::into_bytes),
    ]
}

fn hostile_paths() -> impl Strategy<Value = (String, &'static str)> {
    prop_oneof![
        Just((format!("/patients/{PATIENT}/events"), "POST")),
        Just(("/patients/123456789/events".to_owned(), "POST")),
        Just(("/patients/has%20space/events".to_owned(), "POST")),
        Just((format!("/patients/{}/events", "x".repeat(300)), "POST")),
        Just((
            format!("/patients/{PATIENT}/notifications/n-abc/ack"),
            "POST"
        )),
        Just((
            format!("/patients/{PATIENT}/notifications/n-99999/ack"),
            "POST"
        )),
        Just((format!("/patients/{PATIENT}/audit?from=yesterday"), "GET")),
        Just((format!("/patients/{PATIENT}/audit?line=third"), "GET")),
        Just((
            format!("/patients/{PATIENT}/notifications?status=maybe"),
            "GET"
        )),
        Just((
            format!("/patients/{PATIENT}/events?from_revision=-4"),
            "GET"
        )),
        Just(("/events?after=-1".to_owned(), "GET")),
        Just(("/events?limit=99999999999999999999999".to_owned(), "GET")),
        Just(("/events/stream?after=x".to_owned(), "GET")),
        Just(("/patients/123456789/plan".to_owned(), "GET")),
        Just(("/nowhere".to_owned(), "GET")),
        Just(("/verify".to_owned(), "DELETE")),
    ]
}

fn hostile_if_match() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some("-1".to_owned())),
        Just(Some("99999999999999999999999".into())),
        Just(Some("W/\"abc\"".into())),
        Just(Some("0".into()))
    ]
}

/// Set in the child process that runs the cases alone, so that its memory is its own.
const ISOLATED: &str = "CARELEDGER_HOSTILE_INPUT_CHILD";

/// Runs the cases in a process of their own: the memory bound below is about this process, and
/// the other tests of this binary run alongside in threads.
#[test]
fn hostile_requests_get_a_4xx_problem_and_change_nothing() {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hostile_input::hostile_request_cases",
            "--test-threads",
            "1",
            "--nocapture",
        ])
        .env(ISOLATED, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    /// The cases; they run only in the child process of the test above.
    #[test]
    fn hostile_request_cases(
        body in hostile_bodies(),
        (path, method) in hostile_paths(),
        if_match in hostile_if_match(),
        bad_last_event_id in proptest::option::of("[^0-9]{1,20}"),
        actor in prop_oneof![Just("gp-1"), Just("card-1"), Just("patient-1"), Just("auditor-1"), Just("feed-1")],
    ) {
        if std::env::var_os(ISOLATED).is_none() {
            return Ok(());
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let f = Fixture::with_patient().await;
            let before = fingerprint(&f);
            let mut request = Request::builder()
                .method(method)
                .uri(&path)
                .header("authorization", format!("Bearer {}", f.token(actor)))
                .header("content-type", "application/json");
            if let Some(v) = &if_match {
                request = request.header("if-match", v.as_str());
            }
            if let Some(v) = &bad_last_event_id {
                if let Ok(value) = axum::http::HeaderValue::from_str(v) {
                    request = request.header("last-event-id", value);
                }
            }
            let (status, problem, headers) = f.send(request.body(Body::from(body.clone())).unwrap()).await;
            assert!(status.is_client_error(), "{method} {path} as {actor} with {:?}: {status} {problem}", String::from_utf8_lossy(&body));
            assert_eq!(headers["content-type"], "application/problem+json", "{method} {path}: {status}");
            assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{problem}");
            assert_eq!(fingerprint(&f), before, "the ledger is unchanged");
        });
        // Memory stays bounded: after a warm-up, hostile requests leave nothing behind.
        use std::sync::atomic::Ordering::SeqCst;
        let case = CASES.fetch_add(1, SeqCst);
        if case == 20 {
            WARM_KIB.store(rss_kib(), SeqCst);
        } else if case > 20 {
            let (warm, now) = (WARM_KIB.load(SeqCst), rss_kib());
            assert!(now <= warm + 64 * 1024, "memory grew from {warm} KiB to {now} KiB over {case} cases");
        }
    }
}
