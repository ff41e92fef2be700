//! `GET /ui/patients/{patient}/timeline`: who changed what, from what to what, when (clinical
//! time and recording time), in which role and line and why, whether the other side was told
//! and acknowledged, each entry with its proof: its position and hash, and the link to its
//! inclusion proof in the ledger's Merkle tree (`proof.rs`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use careledger_core::ids::PatientId;
use careledger_projections::labels::{self, Lang};
use careledger_projections::{NotificationStatus, PatientView};

use super::plan::readable;
use super::{error_page, html, layout, Reader};
use crate::state::AppState;

/// The timeline page.
pub async fn timeline(
    State(state): State<AppState>,
    reader: Reader,
    Path(raw): Path<String>,
) -> Response {
    let l = reader.lang.lang;
    let rendered = readable(&state, &reader, &raw).and_then(|patient| {
        Ok(state
            .app
            .with_view(&patient, |view| render_timeline(&reader, &patient, view))?)
    });
    match rendered {
        Ok(markup) => html(StatusCode::OK, reader.lang, markup),
        Err(e) => error_page(l, &e),
    }
}

fn told(view: &PatientView, status: &NotificationStatus, l: Lang) -> Markup {
    match status {
        NotificationStatus::Acknowledged { by, at, .. } => {
            let name = view
                .plan
                .care_team
                .iter()
                .find(|m| &m.actor == by)
                .map_or(by.as_str(), |m| m.name.as_str());
            html! { (labels::notification_status(status, l)) " " (l.pick("door ", "by ")) (name) ", " (labels::datetime(*at, l)) }
        }
        other => html! { (labels::notification_status(other, l)) },
    }
}

/// What an element was or became, in the reader's language; a dash for nothing.
fn state(state: Option<&careledger_projections::message::Message>, l: Lang) -> String {
    state.map_or_else(|| "—".to_owned(), |s| labels::state(s, l))
}

/// The timeline, newest first (the bench renders it too).
pub fn render_timeline(reader: &Reader, patient: &PatientId, view: &PatientView) -> Markup {
    let l = reader.lang.lang;
    let plan = &view.plan;
    let id = patient.as_str();
    let title = format!("{} {id}", l.pick("Tijdlijn van", "Timeline of"));
    let body = html! {
        h1 { (title) }
        p { a href={ "/ui/patients/" (id) } { (l.pick("Terug naar het zorgplan", "Back to the care plan")) } }
        ol reversed {
            @for e in view.audit.iter().rev() {
                @let p = &e.provenance;
                li id={ "p" (p.position) } {
                    article {
                        @let heading = html! {
                            strong { (labels::event_kind(&e.kind, l)) } " — " (labels::message(&e.message, l))
                        };
                        h2 { @if e.corrected_by.is_some() { del { (heading) } } @else { (heading) } }
                        dl {
                            @if e.from_state.is_some() || e.to_state.is_some() {
                                dt { (l.pick("Van → naar", "From → to")) }
                                dd { (state(e.from_state.as_ref(), l)) " → " (state(e.to_state.as_ref(), l)) }
                            }
                            dt { (l.pick("Door", "By")) }
                            dd { (p.actor_name) " (" (labels::role(p.role, l)) ", " (labels::line(p.line, l)) ")" }
                            dt { (l.pick("Klinische tijd", "Clinical time")) }
                            dd { time datetime=(labels::machine_time(p.occurred_at)) { (labels::datetime(p.occurred_at, l)) } }
                            dt { (l.pick("Vastgelegd", "Recorded")) }
                            dd { time datetime=(labels::machine_time(p.recorded_at)) { (labels::datetime(p.recorded_at, l)) } }
                            @if !p.reason.as_str().is_empty() {
                                dt { (l.pick("Waarom", "Why")) }
                                dd { (p.reason) }
                            }
                            @for t in &e.notified {
                                dt { (l.pick("Gemeld aan ", "Told to ")) (labels::line(t.recipient, l)) }
                                dd { (told(view, &t.status, l)) }
                            }
                            @if let Some(c) = &e.correction {
                                dt { (l.pick("Gecorrigeerd", "Corrected")) }
                                dd.corrected { (l.pick("foutief ingevoerd; gecorrigeerd door ", "entered in error; corrected by ")) (layout::by(c, l)) ": " (c.reason) }
                            }
                            @if let Some(corrects) = e.corrects {
                                dt { (l.pick("Corrigeert", "Corrects")) }
                                dd { a href={ "#p" (corrects) } { (l.pick("positie ", "position ")) (corrects) } }
                            }
                            dt { (l.pick("Bewijs", "Proof")) }
                            dd {
                                (l.pick("positie ", "position ")) (p.position) ", " (l.pick("revisie ", "revision ")) (e.revision) ", hash "
                                span.hash { (p.hash.to_hex()) } " · "
                                a href={ "/ui/patients/" (id) "/proof/" (p.position) } { (l.pick("bewijs van opname", "inclusion proof")) }
                            }
                        }
                    }
                }
            }
        }
        @if plan.revision == 0 { p { (l.pick("Nog niets vastgelegd.", "Nothing recorded yet.")) } }
    };
    layout::page(reader, &title, body)
}
