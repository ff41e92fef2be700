//! Query parameters read through axum's `Query`, as the handlers will read them, mean what the
//! handlers' hand-read parameters mean today: the same defaults, the same clamped page size,
//! the same refusals.

use axum::extract::Query;
use axum::http::Uri;

use careledger_core::role::Line;
use careledger_projections::notifications::Which;

use super::{new_class, Class};
use crate::wire::{patient_id, AuditQuery, NotificationQuery, PageQuery, StreamQuery};

fn query<T: serde::de::DeserializeOwned>(q: &str) -> Result<T, String> {
    let uri: Uri = format!("/x?{q}").parse().unwrap();
    Query::<T>::try_from_uri(&uri)
        .map(|Query(t)| t)
        .map_err(|e| e.body_text())
}

#[test]
fn a_page_defaults_to_the_start_and_a_hundred_and_clamps_its_size() {
    let page: PageQuery = query("").unwrap();
    assert_eq!(
        (page.after(), page.limit(), page.patient().unwrap()),
        (0, 100, None)
    );
    let page: PageQuery = query("after=5&limit=5000&patient=pat-1").unwrap();
    assert_eq!((page.after(), page.limit()), (5, 1000));
    assert_eq!(page.patient().unwrap().unwrap().as_str(), "pat-1");
    assert_eq!(query::<PageQuery>("limit=0").unwrap().limit(), 1);
    for bad in ["after=-1", "after=x", "limit=99999999999999999999999"] {
        assert!(query::<PageQuery>(bad).is_err(), "{bad}");
    }
    let error = query::<PageQuery>("patient=123456789")
        .unwrap()
        .patient()
        .unwrap_err();
    assert_eq!(new_class(&error), Class::Malformed);
    assert!(error.message.contains("11-proof"), "{error}");
    assert_eq!(patient_id("123456789").unwrap_err(), error);
}

#[test]
fn a_stream_reads_from_revision_one() {
    let stream: StreamQuery = query("").unwrap();
    assert_eq!((stream.from_revision(), stream.limit()), (1, 100));
    let stream: StreamQuery = query("from_revision=4&limit=2").unwrap();
    assert_eq!((stream.from_revision(), stream.limit()), (4, 2));
    assert!(query::<StreamQuery>("from_revision=-4").is_err());
}

#[test]
fn an_audit_query_names_a_line_and_refuses_a_time_that_is_not_one() {
    let filter = query::<AuditQuery>(
        "element=medication:&actor=gp-1&line=second&from=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00.5%2B01:00",
    )
    .unwrap()
    .filter()
    .unwrap();
    assert_eq!(filter.element.as_deref(), Some("medication:"));
    assert_eq!(filter.actor.unwrap().as_str(), "gp-1");
    assert_eq!(filter.line, Some(Line::Second));
    assert!(filter.from.unwrap() < filter.until.unwrap());
    let error = query::<AuditQuery>("line=third").unwrap_err();
    assert!(error.contains("third"), "{error}");
    for (bad, path) in [
        ("from=yesterday", "from"),
        ("until=soon", "until"),
        ("actor=x%20y", "actor"),
    ] {
        let error = query::<AuditQuery>(bad).unwrap().filter().unwrap_err();
        assert_eq!(new_class(&error), Class::Invalid, "{bad}");
        assert_eq!(error.path, path);
    }
}

#[test]
fn notifications_are_the_open_ones_unless_asked_otherwise() {
    assert_eq!(query::<NotificationQuery>("").unwrap().which(), Which::Open);
    assert_eq!(
        query::<NotificationQuery>("status=overdue")
            .unwrap()
            .which(),
        Which::Overdue
    );
    assert_eq!(
        query::<NotificationQuery>("status=all").unwrap().which(),
        Which::All
    );
    assert!(query::<NotificationQuery>("status=maybe").is_err());
}
