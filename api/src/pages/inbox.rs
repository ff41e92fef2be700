//! `GET /ui/patients/{patient}/inbox`: the notifications to the reader's line about this
//! patient, open ones first, each open one with its acknowledge button.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use careledger_core::role::Line;
use careledger_projections::labels;
use careledger_projections::NotificationStatus;

use super::plan::readable;
use super::{error_page, html, layout, Reader};
use crate::state::AppState;

/// The inbox page.
pub async fn inbox(
    State(state): State<AppState>,
    reader: Reader,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let l = reader.lang.lang;
    let done = query.as_deref().is_some_and(|q| q.contains("done=1"));
    let line = reader.caller.line().unwrap_or(Line::First);
    let rendered = readable(&state, &reader, &raw).and_then(|patient| {
        Ok(state.app.with_view(&patient, |view| {
            let id = patient.as_str();
            let mut mine: Vec<_> = view
                .notifications
                .iter()
                .filter(|n| n.recipient == line)
                .collect();
            // Open first, newest first within each.
            mine.sort_by_key(|n| (n.status != NotificationStatus::Open, std::cmp::Reverse(n.position)));
            let title = format!("{} {id}", l.pick("Meldingen over", "Notifications about"));
            let body = html! {
                h1 { (title) }
                p { a href={ "/ui/patients/" (id) } { (l.pick("Terug naar het zorgplan", "Back to the care plan")) } }
                @if done { p.done role="status" { (l.pick("Melding bevestigd.", "Notification acknowledged.")) } }
                @if mine.is_empty() { p { (l.pick("Geen meldingen voor uw lijn.", "No notifications for your line.")) } }
                ul.inbox {
                    @for n in &mine {
                        li id=(n.id) {
                            p {
                                strong { (labels::event_kind(&n.kind, l)) } " — " (labels::message(&n.message, l))
                            }
                            p.muted {
                                time datetime=(labels::machine_time(n.created_at)) { (labels::datetime(n.created_at, l)) }
                                " · " (labels::notification_status(&n.status, l))
                                " · " a href={ "/ui/patients/" (id) "/timeline#p" (n.position) } { (l.pick("in de tijdlijn", "in the timeline")) }
                            }
                            @if n.status == NotificationStatus::Open {
                                form method="post" action={ "/ui/patients/" (id) "/notifications/" (n.id) "/acknowledge" } {
                                    input type="hidden" name="csrf" value=(reader.csrf);
                                    button type="submit" aria-label={ (l.pick("Bevestig melding: ", "Acknowledge notification: ")) (labels::message(&n.message, l)) } {
                                        (l.pick("Bevestigen", "Acknowledge"))
                                    }
                                }
                            }
                        }
                    }
                }
            };
            layout::page(&reader, &title, body)
        })?)
    });
    match rendered {
        Ok(markup) => html(StatusCode::OK, reader.lang, markup),
        Err(e) => error_page(l, &e),
    }
}
