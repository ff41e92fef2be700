//! `GET /ui/patients/{patient}/proof/{position}`: one event's proof, for a clinician or an
//! auditor who follows a timeline entry's link: the event's hash, its RFC 9162 inclusion proof
//! in the ledger's Merkle tree, and the signed checkpoint whose root it reaches, with how to
//! check it offline. Readable by whoever may read the patient's record.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::plan::readable;
use super::{error_page, html, layout, Reader};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire::InclusionProofView;

/// The size of a signed checkpoint (its second line), when there is one.
fn checkpoint_size(note: &str) -> Option<u64> {
    note.lines().nth(1)?.trim().parse().ok()
}

/// The proof page.
pub async fn proof_page(
    State(state): State<AppState>,
    reader: Reader,
    Path((raw, position)): Path<(String, u64)>,
) -> Response {
    let l = reader.lang.lang;
    let patient = match readable(&state, &reader, &raw) {
        Ok(patient) => patient,
        Err(e) => return error_page(l, &e),
    };
    let app = state.app.clone();
    let caller = reader.caller.clone();
    let wanted = patient.clone();
    let found = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let event = app.ledger.read_position(position)?;
        if event.record.patient != wanted {
            return Err(ApiError::NotFound(format!(
                "position {position} is no event of patient {wanted}"
            )));
        }
        // Against the latest signed checkpoint when it covers the event, so that the root
        // shown is the one the log key signed; against the head otherwise.
        let checkpoint = app.checkpoint()?;
        let signed = checkpoint
            .as_deref()
            .and_then(checkpoint_size)
            .filter(|size| *size >= position);
        let (proof, root) = app.inclusion_proof(&caller, position, signed)?;
        Ok((
            InclusionProofView::new(&proof, &root),
            signed.and(checkpoint),
        ))
    })
    .await;
    let (proof, checkpoint) = match found {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return error_page(l, &e),
        Err(e) => return error_page(l, &ApiError::Internal(e.to_string())),
    };
    let id = patient.as_str();
    let title = format!(
        "{} {position}",
        l.pick("Bewijs van positie", "Proof of position")
    );
    let body = html! {
        h1 { (title) }
        p { a href={ "/ui/patients/" (id) "/timeline#p" (position) } { (l.pick("Terug naar de tijdlijn", "Back to the timeline")) } }
        p { (l.pick(
            "Dit bewijs laat zien dat deze gebeurtenis in het grootboek staat, onveranderd, op deze plaats. Iedereen kan het nagaan zonder de server te vertrouwen.",
            "This proof shows that this event is in the ledger, unchanged, at this place. Anyone can check it without trusting the server."
        )) }
        dl.proof {
            dt { (l.pick("Patiënt", "Patient")) } dd { (id) }
            dt { (l.pick("Positie", "Position")) } dd { (proof.position) }
            dt { (l.pick("Hash van de gebeurtenis", "Event hash")) } dd { span.hash { (proof.event_hash) } }
            dt { (l.pick("Blad in de boom", "Leaf in the tree")) } dd { (proof.leaf_index) ": " span.hash { (proof.leaf_hash) } }
            dt { (l.pick("Boomgrootte", "Tree size")) } dd { (proof.tree_size) }
            dt { (l.pick("Wortel van de boom", "Root of the tree")) } dd { span.hash { (proof.root) } }
            dt { (l.pick("Bewijspad (RFC 9162)", "Proof path (RFC 9162)")) }
            dd {
                @if proof.path.is_empty() { (l.pick("leeg: de boom heeft één blad", "empty: the tree has one leaf")) }
                ol { @for hash in &proof.path { li { span.hash { (hash) } } } }
            }
        }
        h2 { (l.pick("Ondertekend controlepunt", "Signed checkpoint")) }
        @match &checkpoint {
            Some(note) => {
                p { (l.pick(
                    "De wortel hierboven is die van dit controlepunt, ondertekend met de sleutel van het grootboek:",
                    "The root above is this checkpoint's, signed with the ledger's key:"
                )) }
                pre.note { (note) }
            }
            None => p { (l.pick(
                "Nog niet in een ondertekend controlepunt: het bewijs loopt tot de huidige stand van het grootboek.",
                "Not yet in a signed checkpoint: the proof reaches the ledger's current head."
            )) }
        }
        h2 { (l.pick("Zelf nagaan", "Check it yourself")) }
        p { (l.pick(
            "Een export (GET /patients/{patiënt}/export) bevat de volledige geschiedenis van deze patiënt met alle bewijzen; de opdrachtregel controleert die zonder de server, met de sleutel van het grootboek (careledger key show):",
            "An export (GET /patients/{patient}/export) holds this patient's whole history with every proof; the command line checks it without the server, with the ledger's key (careledger key show):"
        )) }
        pre { "careledger verify-export " (id) ".json --key <" (l.pick("sleutel van het grootboek", "the ledger's key")) ">" }
    };
    html(
        StatusCode::OK,
        reader.lang,
        layout::page(&reader, &title, body),
    )
}
