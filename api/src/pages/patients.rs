//! `GET /ui/patients`: a practitioner's patients (the care teams they belong to), with their
//! line's open notifications and the signals counted.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use careledger_core::record::Timestamp;

use super::{html, layout, Reader};
use crate::state::AppState;

/// The list of the reader's patients.
pub async fn list(State(state): State<AppState>, reader: Reader) -> Response {
    let l = reader.lang.lang;
    let patients = state.app.my_patients(&reader.caller, Timestamp::now());
    let title = l.pick("Mijn patiënten", "My patients");
    let body = html! {
        h1 { (title) }
        @if patients.is_empty() {
            p { (l.pick("U maakt nog geen deel uit van een zorgteam.", "You are not in any care team yet.")) }
        } @else {
            table {
                caption.muted { (l.pick("Patiënten in wier zorgteam u staat", "Patients whose care team you are in")) }
                thead { tr {
                    th scope="col" { (l.pick("Patiënt", "Patient")) }
                    th scope="col" { "BSN" }
                    th scope="col" { (l.pick("Open meldingen", "Open notifications")) }
                    th scope="col" { (l.pick("Signalen", "Signals")) }
                    th scope="col" { (l.pick("Verder", "More")) }
                } }
                tbody {
                    @for p in &patients {
                        @let id = p.patient.as_str();
                        tr {
                            td { a href={ "/ui/patients/" (id) } { (p.name.as_deref().unwrap_or(id)) } }
                            td { (id) }
                            td { a href={ "/ui/patients/" (id) "/inbox" } { (p.open_notifications) } }
                            td { (p.signals) }
                            td { a href={ "/ui/patients/" (id) "/timeline" } { (l.pick("Tijdlijn", "Timeline")) } }
                        }
                    }
                }
            }
        }
    };
    html(
        StatusCode::OK,
        reader.lang,
        layout::page(&reader, title, body),
    )
}
