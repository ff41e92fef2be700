//! The command line's text for a clinician: a care plan, an audit trail and notifications, in
//! Dutch or English (`--lang`), times in Europe/Amsterdam, units as clinicians write them and
//! codes beside names. It renders the views the API answers, so that a data directory and a
//! running server (`--url`) print alike.

use careledger_api::wire::names::{MeasureCode, WireName as _};
use careledger_api::wire::scalar::Time;
use careledger_api::wire::{
    AuditEntryView, MessageView, NotificationStatusView, NotificationView, PlanView,
    ProvenanceView, QuantityView, SignalView,
};
use careledger_core::quantity::Measure;
use careledger_core::record::Timestamp;
use careledger_projections::labels::{self, Lang};

/// The language asked for: `--lang`, else `CARELEDGER_LANG`, else Dutch.
#[derive(clap::Args, Clone, Debug)]
pub struct LangArg {
    /// The language of the text: nl (Dutch, the default) or en (English).
    #[arg(long = "lang", env = "CARELEDGER_LANG", default_value = "nl", value_parser = parse_lang)]
    pub lang: Lang,
}

fn parse_lang(raw: &str) -> Result<Lang, String> {
    Lang::parse(raw).ok_or_else(|| format!("{raw:?}: give nl (Dutch) or en (English)"))
}

fn when(t: Time, lang: Lang) -> String {
    labels::datetime(t.0, lang)
}

fn day(t: Time, lang: Lang) -> String {
    labels::date(t.0, lang)
}

/// "1,8 mmol/L": the value as the reader writes numbers, the unit as clinicians write it.
fn amount(q: &QuantityView, measure: Measure, lang: Lang) -> String {
    format!(
        "{} {}",
        labels::number(&q.value, lang),
        labels::unit(measure)
    )
}

/// "A. Jansen (huisarts, eerste lijn), 3 dec 2026 11:15".
fn by(p: &ProvenanceView, lang: Lang) -> String {
    format!(
        "{} ({}, {}), {}",
        p.actor_name,
        labels::role(p.role.0, lang),
        labels::line(p.line.0, lang),
        when(p.recorded_at, lang)
    )
}

/// Why a medication changed, in the reader's language; the words given for another reason.
fn change_reason(reason: &careledger_api::wire::ChangeReasonView, lang: Lang) -> String {
    use careledger_core::event::ChangeReason;
    let core = match reason.code.as_str() {
        "side_effects" => ChangeReason::SideEffects,
        "target_not_reached" => ChangeReason::TargetNotReached,
        "patient_preference" => ChangeReason::PatientPreference,
        _ => return reason.text.clone(),
    };
    labels::change_reason(&core, lang)
}

/// A problem's code system by the name clinicians use: ICPC-1-NL, ICD-10.
fn code_system(uri: &str) -> &str {
    match uri {
        "http://hl7.org/fhir/sid/icpc-1-nl" => "ICPC-1-NL",
        "http://hl7.org/fhir/sid/icd-10" => "ICD-10",
        other => other,
    }
}

fn measure_of(code: MeasureCode) -> Measure {
    code.0
}

/// " [DOORGEHAALD: foutief ingevoerd]" for an entry marked entered in error; never hidden.
fn struck(entered_in_error: bool, lang: Lang) -> &'static str {
    if entered_in_error {
        lang.pick(
            "  [DOORGEHAALD: foutief ingevoerd]",
            "  [STRUCK THROUGH: entered in error]",
        )
    } else {
        ""
    }
}

/// Prints a care plan with its signals.
pub fn plan(p: &PlanView, signals: &[SignalView], lang: Lang) {
    let t = |nl: &'static str, en: &'static str| lang.pick(nl, en);
    say!(
        "{} {} ({} {})",
        t("Zorgplan van patiënt", "Care plan of patient"),
        p.patient,
        t("revisie", "revision"),
        p.revision
    );
    match &p.shared_care {
        Some(shared) => say!(
            "{}: {} ({} {})",
            t("Gedeelde zorg", "Shared care"),
            shared.arrangement,
            t("vastgelegd door", "recorded by"),
            by(&shared.provenance, lang)
        ),
        None => say!("{}: {}", t("Gedeelde zorg", "Shared care"), t("nee", "no")),
    }

    say!("\n{}:", t("Zorgteam", "Care team"));
    for m in &p.care_team {
        let mut parts = vec![
            labels::role(m.role.0, lang).to_owned(),
            labels::line(m.line.0, lang).to_owned(),
        ];
        for extra in [
            labels::lead(m.lead.into(), lang),
            labels::practitioner(m.practitioner.into(), lang),
        ] {
            if !extra.is_empty() {
                parts.push(extra.to_owned());
            }
        }
        let agb = m
            .agb
            .as_ref()
            .map_or(String::new(), |agb| format!(", AGB {agb}"));
        say!("  {:<24} {}{agb}", m.name, parts.join(", "));
    }

    say!("\n{}:", t("Streefwaarden", "Targets"));
    for target in &p.targets {
        let measure = measure_of(target.measure);
        let status = labels::target_status(target.status.into(), lang);
        // "latest 2,9 mmol/L: not met", or only "no value yet".
        let latest = target.latest.as_ref().map_or_else(
            || status.to_owned(),
            |l| {
                format!(
                    "{} {}: {status}",
                    t("laatste", "latest"),
                    amount(&l.value, measure, lang)
                )
            },
        );
        let set = match &target.provenance {
            Some(p) => format!("{} {}", t("gesteld door", "set by"), by(p, lang)),
            None => t("standaard van de richtlijn", "the guideline's default").to_owned(),
        };
        let replaced = target.replaced.as_ref().map_or(String::new(), |r| {
            format!(
                "; {} {} {} ({})",
                t("vervangt", "replaces"),
                r.comparator.0.symbol(),
                amount(&r.target, measure, lang),
                labels::basis(r.basis.into(), lang)
            )
        });
        say!(
            "  {}: {} {} ({}); {latest}; {set}{replaced}{}",
            labels::measure(measure, lang),
            target.comparator.0.symbol(),
            amount(&target.target, measure, lang),
            labels::basis(target.basis.into(), lang),
            struck(target.entered_in_error, lang)
        );
    }

    say!("\n{}:", t("Actuele medicatie", "Active medication"));
    for m in &p.medications {
        say!(
            "  {} (ATC {}) {} {}; {} {} {} {}",
            m.name,
            m.atc,
            labels::dose_text(&m.dose, lang),
            m.frequency,
            t("voorgeschreven in de", "prescribed in the"),
            labels::line(m.prescribed_by_line.0, lang),
            t("door", "by"),
            by(&m.started, lang),
        );
        if let Some(change) = &m.last_change {
            say!(
                "      {} {}",
                t("laatst gewijzigd door", "last changed by"),
                by(change, lang)
            );
        }
        if m.entered_in_error {
            say!("     {}", struck(true, lang));
        }
    }
    for episode in &p.medication_history {
        if episode.status.as_str() == "active" {
            continue;
        }
        let how = match &episode.stopped {
            Some(stop) => format!(
                "{} {} ({}, {}) {} {}: {}",
                t("gestopt door", "stopped by"),
                stop.by_name,
                labels::role(stop.role.0, lang),
                labels::line(stop.line.0, lang),
                t("op", "on"),
                day(stop.occurred_at, lang),
                change_reason(&stop.change_reason, lang)
            ),
            None => labels::episode_status(episode.status.into(), lang).to_owned(),
        };
        say!(
            "  {}: {} (ATC {}) {how}",
            t("eerder", "earlier"),
            episode.name,
            episode.atc
        );
    }
    for pref in &p.medication_preferences {
        say!(
            "  {}: {} (ATC {}): {}",
            t("voorkeur", "preference"),
            pref.name,
            pref.atc,
            pref.preference
        );
    }

    say!(
        "\n{}:",
        t(
            "Intoleranties en contra-indicaties",
            "Intolerances and contra-indications"
        )
    );
    for i in &p.intolerances {
        say!(
            "  {} (ATC {}), {}: {}; {} {}{}",
            i.substance,
            i.atc,
            labels::intolerance_kind(i.kind.0, lang),
            i.reaction,
            t("vastgelegd door", "recorded by"),
            by(&i.provenance, lang),
            struck(i.entered_in_error, lang)
        );
    }
    say!("\n{}:", t("Probleemlijst", "Problems"));
    for problem in &p.problems {
        let state = match &problem.resolved {
            Some(r) => format!("{} {}", t("opgelost", "resolved"), day(r.occurred_at, lang)),
            None => t("actief", "active").to_owned(),
        };
        say!(
            "  {} ({} {}): {state}{}",
            problem.description,
            code_system(problem.code_system.as_str()),
            problem.code,
            struck(problem.entered_in_error, lang)
        );
    }
    if let Some(smoking) = &p.smoking_status {
        say!(
            "\n{}: {}",
            t("Roken", "Smoking"),
            labels::smoking_status(smoking.status.0, lang)
        );
    }

    say!("\n{}:", t("Jaarlijkse CVRM-controle", "Annual CVRM panel"));
    for test in &p.annual_panel {
        let added = test
            .added_by_specialist
            .as_ref()
            .map_or(String::new(), |p| {
                format!(" ({} {})", t("toegevoegd door", "added by"), by(p, lang))
            });
        say!("  {}{added}", labels::measure(measure_of(test.test), lang));
    }
    for order in &p.open_lab_orders {
        let pending: Vec<&str> = order
            .pending
            .iter()
            .map(|m| labels::measure_name(measure_of(*m), lang))
            .collect();
        say!(
            "  {} {}: {} {} {}",
            t("openstaande labaanvraag", "open lab order"),
            order.order,
            pending.join(", "),
            t("open sinds", "pending since"),
            day(order.pending_since, lang)
        );
    }

    say!("\n{}:", t("Laatste waarden", "Latest values"));
    for r in &p.lab_results {
        let measure = measure_of(r.test);
        say!(
            "  {:<44} {:<16} {}, {} ({} {}){}",
            labels::measure(measure, lang),
            amount(&r.value, measure, lang),
            labels::measurement_source(None, lang),
            when(r.provenance.occurred_at, lang),
            t("positie", "position"),
            r.provenance.position,
            struck(r.entered_in_error, lang)
        );
    }
    for m in &p.measurements {
        let measure = measure_of(m.measure);
        say!(
            "  {:<44} {:<16} {}, {} ({} {}){}",
            labels::measure(measure, lang),
            amount(&m.value, measure, lang),
            labels::measurement_source(m.source.map(Into::into), lang),
            when(m.provenance.occurred_at, lang),
            t("positie", "position"),
            m.provenance.position,
            struck(m.entered_in_error, lang)
        );
    }

    say!("\n{}:", t("Leefstijldoelen", "Lifestyle goals"));
    for g in &p.lifestyle_goals {
        say!(
            "  {}: {} ({})",
            g.goal,
            g.description,
            labels::goal_outcome(g.outcome.map(Into::into), lang)
        );
    }
    say!("\n{}:", t("Notities en brieven", "Notes and letters"));
    for n in &p.notes {
        say!(
            "  [{}] {}, {} {}",
            labels::note_kind(n.kind.into(), lang),
            n.subject,
            t("door", "by"),
            by(&n.provenance, lang)
        );
    }
    if !p.corrections.is_empty() {
        say!("\n{}:", t("Correcties", "Corrections"));
        for c in &p.corrections {
            say!(
                "  {} {} {}: {} {}: {}",
                t("positie", "position"),
                c.position,
                t("foutief ingevoerd", "entered in error"),
                t("gecorrigeerd door", "corrected by"),
                by(&c.correction, lang),
                c.correction.reason
            );
        }
    }
    if !signals.is_empty() {
        say!("\n{}:", t("Signalen", "Signals"));
        for s in signals {
            let measure = s.measure.map_or(String::new(), |m| {
                format!(" ({})", labels::measure_name(measure_of(m), lang))
            });
            let message = labels::signal_message(&s.code, &s.values, lang)
                .unwrap_or_else(|| s.message.clone());
            say!("  {}{measure}: {message}", labels::signal(&s.code, lang));
        }
    }
}

/// Prints audit trail entries.
pub fn audit(entries: &[AuditEntryView], lang: Lang) {
    let t = |nl: &'static str, en: &'static str| lang.pick(nl, en);
    for e in entries {
        let what = labels::message(&e.message.to_message(), lang);
        say!("#{:<5} {} {what}", e.position, when(e.recorded_at, lang));
        if e.from_state.is_some() || e.to_state.is_some() {
            let state = |s: &Option<MessageView>| {
                s.as_ref()
                    .map_or_else(|| "-".to_owned(), |s| labels::state(&s.to_message(), lang))
            };
            say!(
                "       {}: {} -> {}",
                t("wijziging", "change"),
                state(&e.from_state),
                state(&e.to_state)
            );
        }
        say!(
            "       {} {} ({}, {}), {} {}, {}: {}",
            t("door", "by"),
            e.actor.name,
            labels::role(e.actor.role.0, lang),
            labels::line(e.actor.line.0, lang),
            t("klinisch", "occurred"),
            when(e.occurred_at, lang),
            t("reden", "reason"),
            e.reason
        );
        for told in &e.notified {
            say!(
                "       {} {}: {}",
                labels::line(told.recipient.0, lang),
                t("geïnformeerd", "told"),
                status(&told.status, lang)
            );
        }
        if let Some(c) = e.corrected_by {
            say!(
                "       {} {c})",
                t(
                    "FOUTIEF INGEVOERD (correctie op positie",
                    "ENTERED IN ERROR (correction at position"
                )
            );
        }
        if let Some(start) = e.voided_with {
            say!(
                "       {} {start} {}",
                t(
                    "VERVALLEN: de start op positie",
                    "VOID: the medication start at position"
                ),
                t("was foutief ingevoerd", "was entered in error")
            );
        }
        say!("       hash {}", e.hash);
    }
}

fn status(s: &NotificationStatusView, lang: Lang) -> String {
    let t = |nl: &'static str, en: &'static str| lang.pick(nl, en);
    match s {
        NotificationStatusView::Open => t("nog niet bevestigd", "not yet acknowledged").to_owned(),
        NotificationStatusView::Acknowledged { by, at, position } => format!(
            "{} {by} {} {} ({} {position})",
            t("bevestigd door", "acknowledged by"),
            t("op", "at"),
            when(*at, lang),
            t("positie", "position")
        ),
        NotificationStatusView::Withdrawn { correction } => format!(
            "{} {correction})",
            t(
                "ingetrokken: foutief ingevoerd (correctie op positie",
                "withdrawn: entered in error (correction at position"
            )
        ),
    }
}

/// Prints notifications.
pub fn notifications(list: &[NotificationView], lang: Lang) {
    for n in list {
        let state = if n.overdue && matches!(n.status, NotificationStatusView::Open) {
            lang.pick("TE LAAT", "OVERDUE").to_owned()
        } else {
            status(&n.status, lang)
        };
        let message = labels::message(&n.message.to_message(), lang);
        say!(
            "{:<14} {} {:<12} {}  {message}",
            n.id,
            lang.pick("aan", "to"),
            labels::line(n.recipient.0, lang),
            state
        );
    }
}

/// Now, for the read models' clock-dependent views (overdue, signals).
pub fn now() -> Timestamp {
    Timestamp::now()
}
