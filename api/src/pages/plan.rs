//! `GET /ui/patients/{patient}`: the plan at a glance for a practitioner (care team, targets
//! with their charts, medication and its history, lab orders and the annual panel, goals,
//! letters, with the forms a clinician uses while reading), and for the patient their own plan
//! in plain language with their readings entry. Corrections are struck through with who
//! corrected and why, never hidden.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use careledger_core::ids::PatientId;
use careledger_core::quantity::Measure;
use careledger_core::record::Timestamp;
use careledger_core::role::{Lead, Role};
use careledger_projections::labels::{self, Lang};
use careledger_projections::plan::{CarePlan, TargetEntry, ValueEntry};
use careledger_projections::PatientView;

use super::{error_page, html, layout, Reader};
use crate::error::ApiError;
use crate::state::AppState;
use crate::wire;

/// The patient named in the path, when the reader may read them (as the API decides).
pub(crate) fn readable(
    state: &AppState,
    reader: &Reader,
    raw: &str,
) -> Result<PatientId, ApiError> {
    let patient = wire::patient_id(raw)?;
    state.app.may_read(&reader.caller, &patient)?;
    Ok(patient)
}

/// The plan page.
pub async fn plan_page(
    State(state): State<AppState>,
    reader: Reader,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let l = reader.lang.lang;
    let done = query.as_deref().is_some_and(|q| q.contains("done=1"));
    let rendered = readable(&state, &reader, &raw).and_then(|patient| {
        let config = *state.app.projections.config();
        Ok(state.app.with_view(&patient, |view| {
            let signals = careledger_projections::signals::signals(view, &config, Timestamp::now());
            if reader.caller.patient.is_some() {
                own_plan(&reader, &patient, view, done)
            } else {
                render_plan(&reader, &patient, view, &signals, done)
            }
        })?)
    });
    match rendered {
        Ok(markup) => html(StatusCode::OK, reader.lang, markup),
        Err(e) => error_page(l, &e),
    }
}

/// The practitioner's plan page, rendered from the patient's view (the bench renders it too).
pub fn render_plan(
    reader: &Reader,
    patient: &PatientId,
    view: &PatientView,
    signals: &[careledger_projections::Signal],
    done: bool,
) -> Markup {
    let l = reader.lang.lang;
    let plan = &view.plan;
    let id = patient.as_str();
    let name = patient_name(plan).unwrap_or(id);
    let title = format!("{} {name}", l.pick("Zorgplan van", "Care plan of"));
    let body = html! {
        h1 { (title) }
        p.muted { "BSN " (id) " · " (l.pick("revisie", "revision")) " " (plan.revision) }
        nav aria-label=(l.pick("Over deze patiënt", "About this patient")) {
            ul {
                li { a href={ "/ui/patients/" (id) "/timeline" } { (l.pick("Tijdlijn: wie veranderde wat", "Timeline: who changed what")) } }
                li { a href={ "/ui/patients/" (id) "/inbox" } { (l.pick("Meldingen", "Notifications")) } }
            }
        }
        @if done { p.done role="status" { (l.pick("Vastgelegd.", "Recorded.")) } }
        (team(plan, l))
        @if !signals.is_empty() {
            section aria-labelledby="signals" {
                h2 #signals { (l.pick("Signalen", "Signals")) }
                ul { @for s in signals { li { strong { (labels::signal(&s.code, l)) } ": " (labels::signal_sentence(s, l)) } } }
            }
        }
        (targets(plan, l))
        (charts(plan, l))
        (medication(reader, plan, id))
        (lab(plan, l))
        (goals(plan, l))
        (notes(plan, l))
        (practitioner_forms(reader, id))
    };
    layout::page(reader, &title, body)
}

fn patient_name(plan: &CarePlan) -> Option<&str> {
    plan.care_team
        .iter()
        .find(|m| m.role == Role::Patient)
        .map(|m| m.name.as_str())
}

/// "gecorrigeerd door X (rol, lijn), datum: reden", for an entry marked entered in error.
fn corrected(plan: &CarePlan, position: u64, l: Lang) -> Option<Markup> {
    plan.corrections.get(&position).map(|c| {
        html! {
            span.corrected {
                " — " (l.pick("foutief ingevoerd; gecorrigeerd door", "entered in error; corrected by")) " "
                (layout::by(c, l)) ": " (c.reason)
            }
        }
    })
}

/// Text struck through when its entry was corrected, with who corrected and why.
fn maybe_struck(plan: &CarePlan, position: u64, l: Lang, content: Markup) -> Markup {
    match corrected(plan, position, l) {
        Some(note) => html! { del { (content) } (note) },
        None => content,
    }
}

fn team(plan: &CarePlan, l: Lang) -> Markup {
    html! {
        section aria-labelledby="team" {
            h2 #team { (l.pick("Zorgteam", "Care team")) }
            @if let Some((arrangement, set)) = &plan.shared_care {
                p { strong { (l.pick("Gedeelde zorg: ", "Shared care: ")) } (arrangement) " — " (layout::by(set, l)) }
            }
            p {
                @for (lead, main) in plan.leads() {
                    (labels::lead(lead, l)) ": "
                    @match main {
                        Some(m) => { (m.name) " (" (labels::role(m.role, l)) ")" }
                        None => { em { (l.pick("nog niet toegewezen", "not yet assigned")) } }
                    }
                    @if lead == Lead::Cvrm { " · " }
                }
            }
            table {
                thead { tr {
                    th scope="col" { (l.pick("Naam", "Name")) }
                    th scope="col" { (l.pick("Rol", "Role")) }
                    th scope="col" { (l.pick("Lijn", "Line")) }
                    th scope="col" { (l.pick("Regie", "Lead")) }
                    th scope="col" { (l.pick("Behandelaar", "Practitioner")) }
                } }
                tbody { @for m in &plan.care_team { tr {
                    td { (m.name) }
                    td { (labels::role(m.role, l)) }
                    td { (labels::line(m.line, l)) }
                    td { (labels::lead(m.lead, l)) }
                    td { (labels::practitioner(m.practitioner, l)) }
                } } }
            }
        }
    }
}

fn latest(plan: &CarePlan, measure: Measure) -> Option<&ValueEntry> {
    plan.latest_value(measure)
}

fn targets(plan: &CarePlan, l: Lang) -> Markup {
    html! {
        section aria-labelledby="targets" {
            h2 #targets { (l.pick("Streefwaarden", "Targets")) }
            table {
                thead { tr {
                    th scope="col" { (l.pick("Meting", "Measure")) }
                    th scope="col" { (l.pick("Streefwaarde", "Target")) }
                    th scope="col" { (l.pick("Vervangt", "Replaces")) }
                    th scope="col" { (l.pick("Vastgesteld door", "Set by")) }
                    th scope="col" { (l.pick("Laatste waarde", "Latest value")) }
                    th scope="col" { (l.pick("Behaald?", "Met?")) }
                } }
                tbody { @for (measure, t) in &plan.targets {
                    @let status = plan.target_status(*measure);
                    tr {
                        th scope="row" { (labels::measure(*measure, l)) }
                        td { (labels::target(t.effective.comparator, &t.effective.value, l)) br; small { (labels::basis(t.effective.basis, l)) } }
                        td { @if let Some(r) = &t.replaced { (labels::target(r.comparator, &r.value, l)) " " small { (labels::basis(r.basis, l)) } } }
                        td { @match &t.set {
                            Some(p) => { (layout::by(p, l)) @if !t.rationale.as_str().is_empty() { br; small { (t.rationale) } } }
                            None => { (l.pick("richtlijn (standaard)", "guideline (default)")) }
                        } }
                        td { @if let Some(v) = latest(plan, *measure) {
                            (labels::quantity(&v.value, l)) br; small { (labels::date(v.recorded.occurred_at, l)) ", " (labels::measurement_source(v.source, l)) }
                        } }
                        td class=(match status { careledger_projections::plan::TargetStatus::Met => "met", careledger_projections::plan::TargetStatus::NotMet => "notmet", _ => "muted" }) {
                            (labels::target_status(status, l))
                        }
                    }
                } }
            }
        }
    }
}

/// The measures worth a chart: those with a target or with values.
fn charted(plan: &CarePlan) -> Vec<Measure> {
    let mut measures: Vec<Measure> = Measure::ALL
        .into_iter()
        .filter(|m| plan.series.get(m).is_some_and(|s| !s.is_empty()))
        .collect();
    measures.sort_by_key(|m| !plan.targets.contains_key(m));
    measures
}

fn charts(plan: &CarePlan, l: Lang) -> Markup {
    let measures = charted(plan);
    html! {
        section aria-labelledby="trends" {
            h2 #trends { (l.pick("Verloop per meting", "Trends per measure")) }
            p.legend.muted {
                span { "● " (l.pick("praktijk, ziekenhuis of lab", "practice, hospital or lab")) }
                span { "□ " (labels::measurement_source(Some(careledger_core::event::MeasurementSource::SelfMeasuredAtHome), l)) }
                span { "- - " (l.pick("streefwaarde", "target")) }
            }
            div.charts { @for m in measures {
                (chart(plan, m, plan.targets.get(&m), l))
            } }
        }
    }
}

const CHART_W: i64 = 320;
const CHART_H: i64 = 140;
const PAD: i64 = 24;

/// A small SVG chart of a measure's standing values in clinical order against its target, home
/// readings drawn apart; the values follow as a table for those who do not see the chart.
pub fn chart(plan: &CarePlan, measure: Measure, target: Option<&TargetEntry>, l: Lang) -> Markup {
    let series = plan.series.get(&measure).map_or(&[][..], Vec::as_slice);
    let standing: Vec<&ValueEntry> = series
        .iter()
        .filter(|v| !plan.is_entered_in_error(v.recorded.position))
        .collect();
    let target_scaled = target.map(|t| t.effective.value.scaled());
    let mut lo = standing
        .iter()
        .map(|v| v.value.scaled())
        .chain(target_scaled)
        .min()
        .unwrap_or(0);
    let mut hi = standing
        .iter()
        .map(|v| v.value.scaled())
        .chain(target_scaled)
        .max()
        .unwrap_or(1);
    if hi == lo {
        hi += 1;
        lo -= 1;
    }
    let span = hi - lo;
    let y = |scaled: i64| PAD + (hi - scaled) * (CHART_H - 2 * PAD) / span;
    let n = standing.len() as i64;
    let x = |i: i64| {
        if n <= 1 {
            CHART_W / 2
        } else {
            PAD + i * (CHART_W - 2 * PAD) / (n - 1)
        }
    };
    let points: String = standing
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{},{} ", x(i as i64), y(v.value.scaled())))
        .collect();
    let name = labels::measure(measure, l);
    let label = format!(
        "{}: {} {}",
        name,
        standing.len(),
        l.pick("waarden", "values")
    );
    let home = |v: &ValueEntry| {
        v.source == Some(careledger_core::event::MeasurementSource::SelfMeasuredAtHome)
    };
    html! {
        figure {
            figcaption { (name) " (" (labels::unit(measure)) ")" }
            svg xmlns="http://www.w3.org/2000/svg" width=(CHART_W) height=(CHART_H)
                viewBox={ "0 0 " (CHART_W) " " (CHART_H) } role="img" aria-label=(label) {
                title { (label) }
                rect x="0" y="0" width=(CHART_W) height=(CHART_H) fill="#ffffff" stroke="#c8c8c8" {}
                @if let Some(t) = target {
                    @let ty = y(t.effective.value.scaled());
                    line x1=(PAD) x2=(CHART_W - PAD) y1=(ty) y2=(ty) stroke="#1d5e20" stroke-width="2" stroke-dasharray="6 4" {}
                    text x=(CHART_W - PAD) y=(ty - 4) font-size="11" text-anchor="end" fill="#1d5e20" {
                        (labels::target(t.effective.comparator, &t.effective.value, l))
                    }
                }
                text x="2" y=(PAD - 8) font-size="10" fill="#4a4a4a" { (labels::number(&careledger_core::quantity::format_scaled(hi, measure.decimals()), l)) }
                text x="2" y=(CHART_H - 6) font-size="10" fill="#4a4a4a" { (labels::number(&careledger_core::quantity::format_scaled(lo, measure.decimals()), l)) }
                @if n > 1 {
                    polyline points=(points) fill="none" stroke="#0b4f8a" stroke-width="1.5" {}
                }
                @for (i, v) in standing.iter().enumerate() {
                    @let (px, py) = (x(i as i64), y(v.value.scaled()));
                    @if home(v) {
                        rect x=(px - 4) y=(py - 4) width="8" height="8" fill="#ffffff" stroke="#0b4f8a" stroke-width="2" {
                            title { (labels::quantity(&v.value, l)) ", " (labels::date(v.recorded.occurred_at, l)) ", " (labels::measurement_source(v.source, l)) }
                        }
                    } @else {
                        circle cx=(px) cy=(py) r="4" fill="#0b4f8a" {
                            title { (labels::quantity(&v.value, l)) ", " (labels::date(v.recorded.occurred_at, l)) ", " (labels::measurement_source(v.source, l)) }
                        }
                    }
                }
            }
            details {
                summary { (l.pick("Waarden", "Values")) }
                ul { @for v in series.iter().rev().take(20) {
                    li { (maybe_struck(plan, v.recorded.position, l, html! {
                        (labels::quantity(&v.value, l)) " — " (labels::datetime(v.recorded.occurred_at, l)) ", " (labels::measurement_source(v.source, l))
                    })) }
                } }
            }
        }
    }
}

fn medication(reader: &Reader, plan: &CarePlan, id: &str) -> Markup {
    let l = reader.lang.lang;
    let prescriber =
        matches!(reader.caller.role, careledger_app::actors::AccessRole::Care(r) if r.prescribes());
    html! {
        section aria-labelledby="medication" {
            h2 #medication { (l.pick("Medicatie in gebruik", "Active medication")) }
            table {
                thead { tr {
                    th scope="col" { (l.pick("Middel", "Drug")) }
                    th scope="col" { (l.pick("Dosering", "Dose")) }
                    th scope="col" { (l.pick("Voorgeschreven door", "Prescribed by")) }
                    @if prescriber { th scope="col" { (l.pick("Stoppen", "Stop")) } }
                } }
                tbody { @for (atc, m) in &plan.medications { tr {
                    td { (m.name) " " small { "(ATC " (atc.as_str()) ")" } }
                    td { (labels::dose(&m.dose, l)) " " (m.frequency) }
                    td { (layout::by(&m.started, l)) }
                    @if prescriber { td {
                        form method="post" action={ "/ui/patients/" (id) "/medications/" (atc.as_str()) "/stop" } {
                            input type="hidden" name="csrf" value=(reader.csrf);
                            label for={ "why-" (atc.as_str()) } { (l.pick("Reden", "Reason")) }
                            select id={ "why-" (atc.as_str()) } name="change_reason" {
                                option value="side_effects" { (labels::change_reason(&careledger_core::event::ChangeReason::SideEffects, l)) }
                                option value="target_not_reached" { (labels::change_reason(&careledger_core::event::ChangeReason::TargetNotReached, l)) }
                                option value="patient_preference" { (labels::change_reason(&careledger_core::event::ChangeReason::PatientPreference, l)) }
                            }
                            label for={ "words-" (atc.as_str()) } { (l.pick("Toelichting", "Explanation")) }
                            input id={ "words-" (atc.as_str()) } name="reason" type="text";
                            button type="submit" { (l.pick("Stop ", "Stop ")) (m.name) }
                        }
                    } }
                } } }
            }
            h3 { (l.pick("Medicatiegeschiedenis", "Medication history")) }
            ul { @for (atc, episodes) in &plan.medication_history { @for e in episodes {
                li {
                    (maybe_struck(plan, e.started.position, l, html! {
                        strong { (e.name) } " (ATC " (atc.as_str()) ") " (labels::dose(&e.dose, l)) " " (e.frequency) " — "
                        (labels::episode_status(plan.episode_status(e), l)) "; "
                        (l.pick("gestart door ", "started by ")) (layout::by(&e.started, l))
                    }))
                    @if !e.steps.is_empty() { ul { @for s in &e.steps { li {
                        (maybe_struck(plan, s.recorded.position, l, html! {
                            @match &s.kind {
                                careledger_projections::plan::MedicationStepKind::DoseChanged { dose, frequency } => {
                                    (l.pick("dosering gewijzigd naar ", "dose changed to ")) (labels::dose(dose, l)) " " (frequency)
                                }
                                careledger_projections::plan::MedicationStepKind::Stopped => { (l.pick("gestopt", "stopped")) }
                            }
                            " (" (labels::change_reason(&s.reason, l)) ") — " (layout::by(&s.recorded, l))
                            @if !s.recorded.reason.as_str().is_empty() { ": " (s.recorded.reason) }
                        }))
                    } } } }
                }
            } } }
            @if !plan.intolerances.is_empty() {
                h3 { (l.pick("Intoleranties", "Intolerances")) }
                ul { @for i in &plan.intolerances { li {
                    (maybe_struck(plan, i.recorded.position, l, html! {
                        (i.substance) " (ATC " (i.atc.as_str()) "), " (labels::intolerance_kind(i.kind, l)) ": " (i.reaction) " — " (layout::by(&i.recorded, l))
                    }))
                } } }
            }
        }
    }
}

fn lab(plan: &CarePlan, l: Lang) -> Markup {
    html! {
        section aria-labelledby="lab" {
            h2 #lab { (l.pick("Laboratorium", "Lab work")) }
            h3 { (l.pick("Open aanvragen", "Open orders")) }
            @if plan.lab_orders.is_empty() { p.muted { (l.pick("Geen.", "None.")) } }
            ul { @for (order, o) in &plan.lab_orders { li {
                (order.as_str()) ": "
                @for (i, t) in o.pending.iter().enumerate() { @if i > 0 { ", " } (labels::measure_name(*t, l)) }
                " — " (layout::by(&o.ordered, l))
            } } }
            h3 { (l.pick("Jaarlijkse CVRM-lab", "Annual CVRM lab panel")) }
            ul { @for t in &plan.annual_panel { li {
                (labels::measure(t.test, l))
                @if let Some(added) = &t.added { " — " em { (l.pick("toegevoegd door ", "added by ")) (layout::by(added, l)) } }
            } } }
        }
    }
}

fn goals(plan: &CarePlan, l: Lang) -> Markup {
    html! {
        section aria-labelledby="goals" {
            h2 #goals { (l.pick("Leefstijldoelen", "Lifestyle goals")) }
            @if plan.goals.is_empty() { p.muted { (l.pick("Geen.", "None.")) } }
            ul { @for g in plan.goals.values() { li {
                (maybe_struck(plan, g.set.position, l, html! {
                    (g.description) " — " (labels::goal_outcome(g.outcome, l)) "; " (layout::by(&g.set, l))
                }))
            } } }
        }
    }
}

fn notes(plan: &CarePlan, l: Lang) -> Markup {
    html! {
        section aria-labelledby="notes" {
            h2 #notes { (l.pick("Notities en brieven", "Notes and letters")) }
            @if plan.notes.is_empty() { p.muted { (l.pick("Geen.", "None.")) } }
            @for n in plan.notes.iter().rev() {
                article {
                    (maybe_struck(plan, n.written.position, l, html! {
                        h3 { (labels::note_kind(n.kind, l)) ": " (n.subject) }
                        p { (n.body) }
                        p.muted { (layout::by(&n.written, l)) }
                    }))
                }
            }
        }
    }
}

/// The measures offered in the readings and target forms.
const FORM_MEASURES: [Measure; 7] = [
    Measure::SystolicBloodPressure,
    Measure::DiastolicBloodPressure,
    Measure::LdlCholesterol,
    Measure::Hba1c,
    Measure::Weight,
    Measure::Glucose,
    Measure::HeartRate,
];

fn measure_options(l: Lang) -> Markup {
    html! { @for m in FORM_MEASURES { option value=(m.code()) { (labels::measure_name(m, l)) " (" (labels::unit(m)) ")" } } }
}

fn practitioner_forms(reader: &Reader, id: &str) -> Markup {
    let l = reader.lang.lang;
    html! {
        section aria-labelledby="actions" {
            h2 #actions { (l.pick("Vastleggen", "Record")) }
            form method="post" action={ "/ui/patients/" (id) "/notes" } {
                fieldset {
                    legend { (l.pick("Notitie of brief", "Note or letter")) }
                    label for="note-kind" { (l.pick("Soort", "Kind")) }
                    select #note-kind name="kind" {
                        option value="note" { (labels::note_kind(careledger_core::event::NoteKind::Note, l)) }
                        option value="return_letter" { (labels::note_kind(careledger_core::event::NoteKind::ReturnLetter, l)) }
                        option value="interim_letter" { (labels::note_kind(careledger_core::event::NoteKind::InterimLetter, l)) }
                    }
                    label for="note-subject" { (l.pick("Onderwerp", "Subject")) }
                    input #note-subject name="subject" type="text" required;
                    label for="note-body" { (l.pick("Tekst", "Text")) }
                    textarea #note-body name="body" rows="3" {}
                    input type="hidden" name="csrf" value=(reader.csrf);
                    p { button type="submit" { (l.pick("Notitie toevoegen", "Add note")) } }
                }
            }
            (measurement_form(reader, id, false))
            form method="post" action={ "/ui/patients/" (id) "/targets" } {
                fieldset {
                    legend { (l.pick("Streefwaarde", "Target")) }
                    label for="target-measure" { (l.pick("Meting", "Measure")) }
                    select #target-measure name="measure" { (measure_options(l)) }
                    label for="target-comparator" { (l.pick("Vergelijking", "Comparison")) }
                    select #target-comparator name="comparator" {
                        option value="at_most" { "≤" } option value="below" { "<" }
                        option value="at_least" { "≥" } option value="above" { ">" }
                    }
                    label for="target-value" { (l.pick("Waarde", "Value")) }
                    input #target-value name="value" type="text" inputmode="decimal" required;
                    label for="target-basis" { (l.pick("Grond", "Basis")) }
                    select #target-basis name="basis" {
                        option value="nhg_guideline" { (labels::basis(careledger_core::event::TargetBasis::NhgGuideline, l)) }
                        option value="esc_guideline" { (labels::basis(careledger_core::event::TargetBasis::EscGuideline, l)) }
                        option value="individual" { (labels::basis(careledger_core::event::TargetBasis::Individual, l)) }
                    }
                    label for="target-rationale" { (l.pick("Onderbouwing", "Rationale")) }
                    input #target-rationale name="rationale" type="text";
                    input type="hidden" name="csrf" value=(reader.csrf);
                    p { button type="submit" { (l.pick("Streefwaarde vastleggen", "Set target")) } }
                }
            }
        }
    }
}

fn measurement_form(reader: &Reader, id: &str, patient: bool) -> Markup {
    let l = reader.lang.lang;
    html! {
        form method="post" action={ "/ui/patients/" (id) "/measurements" } {
            fieldset {
                legend { @if patient { (l.pick("Mijn meting van thuis", "My reading at home")) } @else { (l.pick("Meting", "Measurement")) } }
                label for="reading-measure" { (l.pick("Wat", "What")) }
                select #reading-measure name="measure" { (measure_options(l)) }
                label for="reading-value" { (l.pick("Waarde", "Value")) }
                input #reading-value name="value" type="text" inputmode="decimal" required;
                @if !patient {
                    label for="reading-source" { (l.pick("Waar gemeten", "Where taken")) }
                    select #reading-source name="source" {
                        option value="practice" { (labels::measurement_source(Some(careledger_core::event::MeasurementSource::Practice), l)) }
                        option value="hospital" { (labels::measurement_source(Some(careledger_core::event::MeasurementSource::Hospital), l)) }
                        option value="self_measured_at_home" { (labels::measurement_source(Some(careledger_core::event::MeasurementSource::SelfMeasuredAtHome), l)) }
                    }
                }
                input type="hidden" name="csrf" value=(reader.csrf);
                p { button type="submit" { (l.pick("Meting vastleggen", "Record reading")) } }
            }
        }
    }
}

/// The patient's own page, in plain language: targets and trends, medication, readings entry,
/// action plan, and what changed recently.
fn own_plan(reader: &Reader, patient: &PatientId, view: &PatientView, done: bool) -> Markup {
    let l = reader.lang.lang;
    let plan = &view.plan;
    let id = patient.as_str();
    let title = l.pick("Mijn zorgplan", "My care plan");
    let body = html! {
        h1 { (title) }
        @if done { p.done role="status" { (l.pick("Uw meting is vastgelegd. Uw zorgverleners zien hem.", "Your reading is recorded. Your care team sees it.")) } }
        section aria-labelledby="mine-team" {
            h2 #mine-team { (l.pick("Wie u behandelt", "Who treats you")) }
            ul { @for m in plan.care_team.iter().filter(|m| m.role != Role::Patient) {
                li { (m.name) ", " (labels::role(m.role, l)) @if m.lead != Lead::None { " — " (labels::lead(m.lead, l)) } }
            } }
        }
        section aria-labelledby="mine-targets" {
            h2 #mine-targets { (l.pick("Uw streefwaarden", "Your targets")) }
            ul { @for (measure, t) in &plan.targets {
                @let status = plan.target_status(*measure);
                li {
                    (labels::measure_name(*measure, l)) ": "
                    (l.pick("streven naar ", "aim for ")) (labels::target(t.effective.comparator, &t.effective.value, l))
                    @if let Some(v) = latest(plan, *measure) {
                        "; " (l.pick("laatst gemeten ", "last measured ")) (labels::quantity(&v.value, l))
                        " (" (labels::date(v.recorded.occurred_at, l)) ")"
                    }
                    " — " (labels::target_status(status, l))
                }
            } }
        }
        (charts(plan, l))
        section aria-labelledby="mine-medication" {
            h2 #mine-medication { (l.pick("Uw medicijnen", "Your medicines")) }
            ul { @for m in plan.medications.values() {
                li { (m.name) ", " (labels::dose(&m.dose, l)) " " (m.frequency) " — " (l.pick("voorgeschreven door ", "prescribed by ")) (m.started.actor_name) }
            } }
        }
        (measurement_form(reader, id, true))
        section aria-labelledby="mine-goals" {
            h2 #mine-goals { (l.pick("Mijn actieplan", "My action plan")) }
            @if plan.goals.is_empty() { p.muted { (l.pick("Nog geen doelen afgesproken.", "No goals agreed yet.")) } }
            ul { @for g in plan.goals.values() { li { (g.description) " — " (labels::goal_outcome(g.outcome, l)) } } }
        }
        section aria-labelledby="mine-recent" {
            h2 #mine-recent { (l.pick("Wat er recent veranderde", "What changed recently")) }
            ul { @for e in view.audit.iter().rev().filter(|e| e.kind != "notification_acknowledged").take(10) {
                li { (maybe_struck(plan, e.position(), l, html! {
                    (labels::date(e.provenance.recorded_at, l)) ": " (labels::message(&e.message, l))
                })) }
            } }
        }
    };
    layout::page(reader, title, body)
}
