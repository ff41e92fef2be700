//! The response types serialize to the JSON the hand-written code writes today, over a
//! representative history, with one deliberate difference: times.
//!
//! The old JSON writes times with `Timestamp`'s `Display`, which cuts them to whole seconds
//! (`2026-11-02T08:15:30Z` for an event recorded at `08:15:30.123456`): two events in one
//! second read alike, and a client cannot give back the time it read. The wire types write RFC
//! 3339 in UTC with six decimals (`2026-11-02T08:15:30.123456Z`), the time as the ledger holds
//! it. [`assert_same_json`] allows exactly that difference, at the keys that hold times.
//!
//! One field is new: every recorded event carries its stored `frame` in base64, which the old
//! JSON did not have ([`without_frame`] checks it and takes it out before comparing). The
//! audit entries' structured `message`, `from_state` and `to_state` and the signals' `values`
//! are added fields too, written by `legacy_view` as the read models hold them.

use serde::Serialize;
use serde_json::{json, Value};

use careledger_core::anchor::Damage;
use careledger_core::event::Event;
use careledger_core::quantity::Measure;
use careledger_core::role::Line;
use careledger_core::{Error, Timestamp};
use careledger_projections::notifications::{self, Which};
use careledger_projections::signals;

use super::history::{now, History};
use super::{legacy_dto as dto, legacy_view as view};
use crate::wire::scalar::Time;
use crate::wire::{
    AppendOutcomeView, AuditEntryView, EventPageView, HealthView, MeasureSeriesView,
    NotificationView, PatientEventsView, PlanView, ProblemDetails, RecordedEventView, SignalView,
    VerifyView,
};

/// The keys whose values are times.
const TIME_KEYS: [&str; 6] = [
    "recorded_at",
    "occurred_at",
    "created_at",
    "pending_since",
    "at",
    "until",
];

/// `new` is `old` but for times, which `new` writes to the microsecond where `old` wrote
/// whole seconds. Returns how many times differ only in that way.
fn assert_same_json(old: &Value, new: &Value, path: &str) -> usize {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let old_keys: Vec<&String> = o.keys().collect();
            let new_keys: Vec<&String> = n.keys().collect();
            assert_eq!(old_keys, new_keys, "the keys of {path}");
            o.iter()
                .map(|(key, value)| assert_same_json(value, &n[key], &format!("{path}.{key}")))
                .sum()
        }
        (Value::Array(o), Value::Array(n)) => {
            assert_eq!(o.len(), n.len(), "the length of {path}");
            o.iter()
                .zip(n)
                .enumerate()
                .map(|(i, (o, n))| assert_same_json(o, n, &format!("{path}[{i}]")))
                .sum()
        }
        (Value::String(o), Value::String(n)) if o != n => {
            let key = path.rsplit('.').next().unwrap_or_default();
            assert!(TIME_KEYS.contains(&key), "{path}: {o:?} became {n:?}");
            let t = Timestamp::parse_rfc3339(n).unwrap();
            assert_eq!(
                n,
                &Time(t).to_string(),
                "{path} is written with microseconds"
            );
            assert_eq!(o, &t.to_string(), "{path} is the same time, to the second");
            1
        }
        (Value::String(o), Value::String(n)) => {
            let key = path.rsplit('.').next().unwrap_or_default();
            if TIME_KEYS.contains(&key) {
                // The same text: the old JSON cut nothing only if the new one also reads
                // without decimals, which it never does.
                panic!("{path}: {n:?} should carry microseconds (the old JSON wrote {o:?})");
            }
            0
        }
        _ => {
            assert_eq!(old, new, "{path}");
            0
        }
    }
}

fn to_value(v: &impl Serialize) -> Value {
    serde_json::to_value(v).unwrap()
}

/// The recorded event `view` without its `frame`, after checking that the frame is the stored
/// one: it decodes from base64 and its hash, computed again, is the event's.
fn without_frame(mut view: Value) -> Value {
    use base64::Engine;
    let frame = view
        .as_object_mut()
        .and_then(|o| o.remove("frame"))
        .expect("a recorded event has its frame");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(frame.as_str().unwrap())
        .unwrap();
    let parsed = careledger_core::chain::Frame::parse(&bytes).unwrap();
    let position = view["position"].as_u64().unwrap();
    assert_eq!(
        parsed.computed_hash(position).to_hex(),
        view["hash"].as_str().unwrap(),
        "the frame of event {position} hashes to its hash"
    );
    view
}

/// A page's JSON with every event's frame checked and taken out.
fn page_without_frames(mut page: Value) -> Value {
    let events = page["events"].as_array_mut().unwrap();
    for e in events.iter_mut() {
        *e = without_frame(e.take());
    }
    page
}

#[test]
fn recorded_events_read_as_the_old_json_with_times_to_the_microsecond() {
    let h = History::build();
    let mut kinds = std::collections::BTreeSet::new();
    let mut times = 0;
    for (e, framed) in h.events.iter().zip(&h.framed) {
        let new = without_frame(to_value(&RecordedEventView::from(framed)));
        times += assert_same_json(
            &dto::recorded_event(e),
            &new,
            &format!("event {}", e.position),
        );
        assert_eq!(new["type"], e.event().kind(), "the tag is the event's kind");
        kinds.insert(e.event().kind());
    }
    let all: std::collections::BTreeSet<&str> = Event::KINDS.iter().copied().collect();
    assert_eq!(kinds, all, "the history holds every kind of event");
    assert_eq!(times, 2 * h.events.len(), "both times of every event");
}

#[test]
fn a_time_with_microseconds_reads_back_as_recorded_where_the_old_json_cut_it_to_seconds() {
    let h = History::build();
    let measured = h
        .framed
        .iter()
        .find(|e| {
            e.event.record.occurred_at
                == Timestamp::parse_rfc3339("2026-11-02T08:15:30.123456Z").unwrap()
        })
        .unwrap();
    let old = dto::recorded_event(&measured.event);
    let new = to_value(&RecordedEventView::from(measured));
    assert_eq!(old["occurred_at"], "2026-11-02T08:15:30Z");
    assert_eq!(new["occurred_at"], "2026-11-02T08:15:30.123456Z");
    // A time given with an offset is written in UTC.
    let offset = h
        .framed
        .iter()
        .find(|e| {
            e.event.record.occurred_at == Timestamp::parse_rfc3339("2026-11-02T08:00:00Z").unwrap()
        })
        .unwrap();
    assert_eq!(
        to_value(&RecordedEventView::from(offset))["occurred_at"],
        "2026-11-02T08:00:00.000000Z"
    );
}

#[test]
fn plans_read_as_the_old_json_with_times_to_the_microsecond() {
    assert_eq!(crate::wire::PLAN_SERIES_VALUES, view::PLAN_SERIES_VALUES);
    let h = History::build();
    let readings = h.config.trend_readings;
    for patient in History::patients() {
        let plan = &h.model.patient(&patient).unwrap().plan;
        let old = view::plan(&patient, plan, readings);
        let new = to_value(&PlanView::new(&patient, plan, readings));
        let times = assert_same_json(&old, &new, &format!("plan of {patient}"));
        assert!(times > 0);
    }
}

#[test]
fn every_measure_series_reads_as_the_old_json() {
    let h = History::build();
    let readings = h.config.trend_readings;
    let mut values = 0;
    for patient in History::patients() {
        let plan = &h.model.patient(&patient).unwrap().plan;
        for measure in Measure::ALL {
            let old = view::measure_series(&patient, plan, measure, readings);
            let new = to_value(&MeasureSeriesView::new(&patient, plan, measure, readings));
            assert_same_json(&old, &new, &format!("{} of {patient}", measure.code()));
            values += new["values"].as_array().unwrap().len();
        }
    }
    assert!(values > 10, "the history has values to compare");
}

#[test]
fn audit_entries_notifications_and_signals_read_as_the_old_json() {
    let h = History::build();
    let (mut entries, mut told, mut shown) = (0, 0, 0);
    for patient in History::patients() {
        let v = h.model.patient(&patient).unwrap();
        for e in &v.audit {
            assert_same_json(
                &view::audit_entry(e),
                &to_value(&AuditEntryView::from(e)),
                &format!("audit entry {}", e.position()),
            );
            entries += 1;
        }
        for line in [Line::First, Line::Second, Line::Patient] {
            for n in notifications::for_line(v, line, Which::All, &h.config, now()) {
                let overdue = n.is_overdue(&h.config, now());
                assert_same_json(
                    &view::notification(n, overdue),
                    &to_value(&NotificationView::new(n, overdue)),
                    &format!("notification {}", n.id),
                );
                told += 1;
            }
        }
        for s in signals::signals(v, &h.config, now()) {
            assert_same_json(&view::signal(&s), &to_value(&SignalView::from(&s)), &s.code);
            shown += 1;
        }
    }
    let of_patients = (h.events.iter())
        .filter(|e| !careledger_core::signing_keys::is_key_stream(&e.record.patient))
        .count();
    assert_eq!(
        entries, of_patients,
        "one audit entry per event of a patient"
    );
    assert!(
        told > 10 && shown > 3,
        "{told} notifications, {shown} signals"
    );
}

/// The body `append` in `http.rs` writes, as it writes it.
fn old_append_body(outcome: &careledger_core::AppendOutcome) -> Value {
    json!({
        "revision": outcome.revision,
        "replayed": outcome.replayed,
        "events": outcome.events.iter().map(|e| json!({
            "position": e.position, "revision": e.revision, "event_id": e.event_id.to_string(), "hash": e.hash.to_hex()
        })).collect::<Vec<_>>(),
        "warnings": outcome.warnings.iter().map(|w| json!({"code": w.code, "message": w.message})).collect::<Vec<_>>(),
    })
}

#[test]
fn append_outcomes_read_as_the_old_json_replays_and_warnings_included() {
    let h = History::build();
    for outcome in &h.outcomes {
        assert_same_json(
            &old_append_body(outcome),
            &to_value(&AppendOutcomeView::from(outcome)),
            "append",
        );
    }
    assert!(h.outcomes.iter().any(|o| o.replayed));
    assert!(h.outcomes.iter().any(|o| !o.warnings.is_empty()));
}

#[test]
fn pages_of_events_read_as_the_old_json() {
    let h = History::build();
    let head = h.ledger.head().position;
    let page = &h.events[3..9];
    let old = json!({"events": page.iter().map(dto::recorded_event).collect::<Vec<_>>(),
        "next_after": page[5].position, "head": head});
    let framed = &h.framed[3..9];
    let new = EventPageView::new(framed, page[5].position, head);
    assert_same_json(&old, &page_without_frames(to_value(&new)), "page");
    let old = json!({"events": page.iter().map(dto::recorded_event).collect::<Vec<_>>()});
    let new: PatientEventsView = framed.iter().collect();
    assert_same_json(&old, &page_without_frames(to_value(&new)), "patient events");
}

#[test]
fn verification_reads_as_the_old_json() {
    let h = History::build();
    let report = h.ledger.verify(&mut |_, _| {}).unwrap();
    let old = json!({
        "intact": report.is_intact(),
        "verified": report.verified,
        "head_hash": report.head_hash.to_hex(),
        "problem": report.problem.as_ref().map(|p| json!({"position": p.position, "detail": p.to_string()})),
    });
    assert_same_json(&old, &to_value(&VerifyView::from(&report)), "verify");
}

/// The bodies `health` in `http.rs` writes, as it writes them.
#[test]
fn health_reads_as_the_old_json_in_each_state() {
    let h = History::build();
    let head = h.ledger.head();
    let ok =
        json!({"status": "ok", "head_position": head.position, "head_hash": head.hash.to_hex()});
    assert_same_json(&ok, &to_value(&HealthView::new(&head, None)), "ok");
    let damage = Damage {
        last_anchored: head.position + 3,
        ledger_head: head.position,
        missing: 3,
        first_differing: None,
        detail: "the ledger ends before the anchor".into(),
    };
    let damaged = json!({"status": "unhealthy", "class": "damaged", "reason": damage.to_string(),
        "head_position": head.position, "last_anchored_position": damage.last_anchored,
        "missing_events": damage.missing});
    let view = HealthView::new(&head, Some(&Error::Damaged(damage)));
    assert!(!view.is_ok());
    assert_same_json(&damaged, &to_value(&view), "damaged");
    let failure = Error::Storage(String::from("the disk is full").into());
    let storage = json!({"status": "unhealthy", "class": "storage", "reason": failure.to_string(),
        "head_position": head.position});
    assert_same_json(
        &storage,
        &to_value(&HealthView::new(&head, Some(&failure))),
        "storage",
    );
}

/// The problem bodies `ApiError` writes, for a malformed request, a refused value, a damaged
/// ledger and a ledger that fails verification.
#[tokio::test]
async fn problem_bodies_read_as_the_ones_api_error_writes() {
    use crate::error::ApiError;
    use axum::response::IntoResponse;
    async fn body(e: ApiError) -> Value {
        let response = e.into_response();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }
    let damage = Damage {
        last_anchored: 12,
        ledger_head: 9,
        missing: 3,
        first_differing: None,
        detail: "the ledger ends before the anchor".into(),
    };
    let cases = [
        (
            ApiError::Malformed("commands[0].name is required".into()),
            ProblemDetails::new(
                400,
                "Malformed request",
                "malformed",
                "commands[0].name is required",
            ),
        ),
        (
            ApiError::Unprocessable {
                code: "invalid_value".into(),
                message: "commands[0].value: value out of range".into(),
            },
            ProblemDetails::new(
                422,
                "Rejected",
                "invalid_value",
                "commands[0].value: value out of range",
            ),
        ),
        (
            ApiError::Damaged(damage.clone()),
            ProblemDetails::new(503, "Ledger damaged", "ledger_damaged", damage.to_string())
                .with_damage(&damage),
        ),
        (
            ApiError::NotIntact {
                detail: "position 4: hash mismatch".into(),
                position: 4,
                verified: 3,
            },
            ProblemDetails::new(
                409,
                "Ledger not intact",
                "ledger_not_intact",
                "position 4: hash mismatch",
            )
            .with_not_intact(4, 3),
        ),
    ];
    for (error, problem) in cases {
        let old = body(error).await;
        assert_same_json(&old, &to_value(&problem), &problem.code);
    }
}

#[test]
fn an_export_reads_as_the_file_careledger_export_writes() {
    use careledger_core::checkpoint::{issue, LogKey};
    use careledger_core::ids::PatientId;
    let h = History::build();
    let dir = tempfile::tempdir().unwrap();
    let key = LogKey::from_seed("wire.example/log", &[0x21; 32]).unwrap();
    let size = h.ledger.head().position;
    let note = issue(&h.ledger, &key, &dir.path().join("checkpoint"), size).unwrap();
    for patient in super::history::PATIENTS {
        let patient = PatientId::parse(patient).unwrap();
        let export = careledger_core::export::export_patient(&h.ledger, &patient, &note).unwrap();
        let written = serde_json::to_vec_pretty(&crate::wire::ExportView::from(&export)).unwrap();
        assert_eq!(
            written,
            serde_json::to_vec_pretty(&export).unwrap(),
            "byte for byte the file of patient {patient}"
        );
    }
}
