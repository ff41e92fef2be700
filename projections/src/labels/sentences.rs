//! The sentences of notifications, the audit trail and the timeline, from their structured
//! [`Message`]: one template per event kind, Dutch and English side by side.
//!
//! Values are read by their codes ([`crate::message`]): a measure's name and unit, a number
//! with a decimal comma in Dutch, a reason, basis, source or outcome in words. A message stored
//! before every kind had its own template (`change`) shows its English summary as it is.

use careledger_core::clinical::IntoleranceKind;
use careledger_core::event::{ChangeReason, MeasurementSource, NoteKind};
use careledger_core::quantity::Measure;
use careledger_core::role::{Lead, Line, Role};

use super::{capitalise, number, unit, value_in, who_in, Lang};
use crate::message::{self, code, Message};

/// Reads one message's values in one language.
struct Reader<'m> {
    m: &'m Message,
    lang: Lang,
}

impl Reader<'_> {
    fn v(&self, key: &str) -> &str {
        self.m.value(key)
    }

    fn pick<'a>(&self, nl: &'a str, en: &'a str) -> &'a str {
        self.lang.pick(nl, en)
    }

    /// "Huisarts A. Jansen" / "GP A. Jansen".
    fn who(&self) -> String {
        match Role::parse(self.v("role")) {
            Some(role) => format!(
                "{} {}",
                capitalise(super::role(role, self.lang)),
                self.v("name")
            ),
            None => who_in(self.v("who"), self.lang),
        }
    }

    /// The measure, by its code (or, in messages stored before codes, its English name).
    fn measure(&self) -> Option<Measure> {
        let raw = self.v("measure");
        Measure::parse(raw)
            .ok()
            .or_else(|| Measure::ALL.into_iter().find(|m| m.name() == raw))
    }

    fn measure_name(&self) -> String {
        match self.measure() {
            Some(m) => super::measure_name(m, self.lang).to_owned(),
            None => self.v("measure").to_owned(),
        }
    }

    /// A value of the message's measure with its unit: "1,8 mmol/L".
    fn quantity(&self, key: &str) -> String {
        let value = number(self.v(key), self.lang);
        match self.measure() {
            Some(m) if !self.v(key).contains(' ') => format!("{value} {}", unit(m)),
            _ => value,
        }
    }

    /// A dose with its frequency: "2,5 mg 1x daags".
    fn dose(&self, prefix: &str) -> String {
        let amount = self.v(&format!("{prefix}amount"));
        let frequency = self.v(&format!("{prefix}frequency"));
        if amount.is_empty() {
            // Stored before doses were structured: "40 mg" under `dose` (or `from`).
            let old = if prefix == "from_" {
                self.v("from").to_owned()
            } else {
                format!("{} {frequency}", self.v("dose"))
            };
            return number(old.trim(), self.lang);
        }
        let unit = dose_unit(self.v(&format!("{prefix}unit")), amount, self.lang);
        format!("{} {unit} {frequency}", number(amount, self.lang))
            .trim()
            .to_owned()
    }

    fn change_reason(&self) -> String {
        let reason = match self.v("change_reason") {
            "side_effects" => ChangeReason::SideEffects,
            "target_not_reached" => ChangeReason::TargetNotReached,
            "patient_preference" => ChangeReason::PatientPreference,
            "other" => {
                return format!(
                    "{}: {}",
                    self.pick("anders", "other"),
                    self.v("change_reason_text")
                )
            }
            old => return value_in(old, self.lang),
        };
        super::change_reason(&reason, self.lang)
    }

    /// ": side effects, myalgia": the coded reason and the words given, without a dangling colon.
    fn because(&self, main: &str) -> String {
        let parts: Vec<&str> = [main.trim(), self.v("reason").trim()]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!(": {}", parts.join(", "))
        }
    }

    /// The tests of a lab order or panel extension, by name: "LDL-cholesterol, HbA1c".
    fn tests(&self) -> String {
        self.v("tests")
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| match Measure::parse(t) {
                Ok(m) => super::measure_name(m, self.lang).to_owned(),
                Err(_) => t.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn drug_and_atc(&self) -> String {
        match (self.v("drug"), self.v("atc")) {
            ("", atc) => atc.to_owned(),
            (drug, atc) => format!("{drug} ({atc})"),
        }
    }

    /// The lead handed over, in English: "CVRM", "the organ disease".
    fn lead_en(&self) -> &'static str {
        match code::parse(&code::LEADS, self.v("lead")) {
            Some(Lead::Cvrm) => "CVRM",
            Some(Lead::OrganDisease) => "the organ disease",
            _ => "nothing",
        }
    }
}

/// A dose's unit as clinicians write it: `µg`, Dutch `ml` and `IE`, tablets counted.
pub(crate) fn dose_unit(symbol: &str, amount: &str, lang: Lang) -> String {
    let one = amount == "1";
    match symbol {
        "ug" => "µg".to_owned(),
        "mL" => lang.pick("ml", "mL").to_owned(),
        "[iU]" => lang.pick("IE", "IU").to_owned(),
        "tablet" => match (lang, one) {
            (Lang::Nl, true) => "tablet".to_owned(),
            (Lang::Nl, false) => "tabletten".to_owned(),
            (Lang::En, true) => "tablet".to_owned(),
            (Lang::En, false) => "tablets".to_owned(),
        },
        other => other.to_owned(),
    }
}

/// A notification's or audit entry's sentence in the reader's language: names, doses, values
/// with their units and reasons, codes beside names, never a bare code.
pub fn message(message: &Message, lang: Lang) -> String {
    let r = Reader { m: message, lang };
    let who = r.who();
    let v = |k: &str| r.v(k);
    match (message.template.as_ref(), lang) {
        ("care_team_member_added", _) => member_added(&r, &who),
        ("care_team_member_removed", Lang::Nl) => {
            format!("{who} verwijderde {} uit het zorgteam", v("member"))
        }
        ("care_team_member_removed", Lang::En) => {
            format!("{who} removed {} from the care team", v("member"))
        }
        ("lead_handed_over", Lang::Nl) => format!(
            "{who} droeg de {} over aan {}, nu hoofdbehandelaar",
            code::parse(&code::LEADS, v("lead")).map_or("regie", |l| super::lead(l, lang)),
            v("to")
        ),
        ("lead_handed_over", Lang::En) => format!(
            "{who} handed the lead on {} to {}, now its main practitioner",
            r.lead_en(),
            v("to")
        ),
        ("shared_care_started", Lang::Nl) => {
            format!("{who} startte gedeelde zorg: {}", v("arrangement"))
        }
        ("shared_care_started", Lang::En) => {
            format!("{who} started shared care: {}", v("arrangement"))
        }
        ("shared_care_ended", Lang::Nl) => {
            format!("{who} beëindigde de gedeelde zorg: {}", v("arrangement"))
        }
        ("shared_care_ended", Lang::En) => {
            format!("{who} ended shared care: {}", v("arrangement"))
        }
        ("target_set", _) => target_set(&r, &who),
        ("target_withdrawn", _) => target_withdrawn(&r, &who),
        ("medication_started", Lang::Nl) => format!(
            "{who} startte {} {} ({}){}",
            v("drug"),
            r.dose(""),
            v("atc"),
            r.because("")
        ),
        ("medication_started", Lang::En) => format!(
            "{who} started {} {} ({}){}",
            v("drug"),
            r.dose(""),
            v("atc"),
            r.because("")
        ),
        ("medication_dose_changed", Lang::Nl) => format!(
            "{who} wijzigde {} van {} naar {}{}",
            r.drug_and_atc(),
            r.dose("from_"),
            r.dose(""),
            r.because(&r.change_reason())
        ),
        ("medication_dose_changed", Lang::En) => format!(
            "{who} changed {} from {} to {}{}",
            r.drug_and_atc(),
            r.dose("from_"),
            r.dose(""),
            r.because(&r.change_reason())
        ),
        ("medication_stopped", Lang::Nl) => format!(
            "{who} stopte {} {} ({}){}",
            v("drug"),
            r.dose(""),
            v("atc"),
            r.because(&r.change_reason())
        ),
        ("medication_stopped", Lang::En) => format!(
            "{who} stopped {} {} ({}){}",
            v("drug"),
            r.dose(""),
            v("atc"),
            r.because(&r.change_reason())
        ),
        ("medication_preference_recorded", Lang::Nl) => format!(
            "{who} legde een medicatievoorkeur vast voor {} ({}): {}",
            v("drug"),
            v("atc"),
            v("preference")
        ),
        ("medication_preference_recorded", Lang::En) => format!(
            "{who} recorded a preference for {} ({}): {}",
            v("drug"),
            v("atc"),
            v("preference")
        ),
        ("lab_ordered", _) => lab_ordered(&r, &who),
        ("annual_panel_extended", Lang::Nl) => {
            format!("{who} voegde {} toe aan het jaarlijkse CVRM-lab", r.tests())
        }
        ("annual_panel_extended", Lang::En) => {
            format!("{who} added {} to the annual CVRM panel", r.tests())
        }
        ("lab_result_recorded", _) => lab_result(&r, &who),
        ("measurement_recorded", _) => measurement(&r, &who),
        ("lifestyle_goal_set", Lang::Nl) => format!(
            "{who} stelde leefstijldoel {} op: {}",
            v("goal"),
            v("description")
        ),
        ("lifestyle_goal_set", Lang::En) => format!(
            "{who} set lifestyle goal {}: {}",
            v("goal"),
            v("description")
        ),
        ("lifestyle_goal_closed", _) => goal_closed(&r, &who),
        ("note_added", _) => note_added(&r, &who),
        ("notification_acknowledged", _) => acknowledged(&r, &who),
        ("entered_in_error", _) => entered_in_error(&r, &who),
        ("intolerance_recorded", _) => intolerance(&r, &who),
        ("problem_recorded", Lang::Nl) => format!(
            "{who} zette probleem {} op de probleemlijst: {} ({})",
            v("problem"),
            v("description"),
            v("code")
        ),
        ("problem_recorded", Lang::En) => format!(
            "{who} recorded problem {}: {} ({})",
            v("problem"),
            v("description"),
            v("code")
        ),
        ("problem_resolved", _) => problem_resolved(&r, &who),
        ("smoking_status_recorded", _) => {
            let status = message::smoking_status(v("status"))
                .map_or(v("status"), |s| super::smoking_status(s, lang));
            format!(
                "{who} {}: {status}",
                r.pick("legde de rookstatus vast", "recorded smoking status")
            )
        }
        ("signing_key_registered", Lang::Nl) => format!(
            "{who} registreerde ondertekeningssleutel {} van {} (systeem {})",
            v("key_id"),
            v("actor"),
            v("system")
        ),
        ("signing_key_registered", Lang::En) => format!(
            "{who} registered signing key {} of {} (client system {})",
            v("key_id"),
            v("actor"),
            v("system")
        ),
        ("signing_key_revoked", Lang::Nl) => format!(
            "{who} trok ondertekeningssleutel {} van {} in",
            v("key_id"),
            v("actor")
        ),
        ("signing_key_revoked", Lang::En) => format!(
            "{who} revoked signing key {} of {}",
            v("key_id"),
            v("actor")
        ),
        ("glass_broken", Lang::Nl) => format!(
            "{who} opende noodtoegang tot het dossier voor {} uur",
            v("hours")
        ),
        ("glass_broken", Lang::En) => format!(
            "{who} broke the glass: emergency access to the record for {} hours",
            v("hours")
        ),
        // Stored before every kind had its own template: the English summary as it is.
        _ if v("reason").trim().is_empty() => v("summary").to_owned(),
        _ => format!("{}; reason: {}", v("summary"), v("reason").trim()),
    }
}

fn member_added(r: &Reader<'_>, who: &str) -> String {
    let lang = r.lang;
    let mut about = Vec::new();
    if let Some(role) = Role::parse(r.v("member_role")) {
        about.push(super::role(role, lang).to_owned());
        // A patient's line is the patient: named once.
        if role != Role::Patient {
            about.push(super::line(role.line(), lang).to_owned());
        }
    }
    let practitioner = match r.v("practitioner") {
        "main" => r.pick("hoofdbehandelaar", "main practitioner"),
        "co" => r.pick("medebehandelaar", "co-practitioner"),
        _ => "",
    };
    let lead = code::parse(&code::LEADS, r.v("lead")).map_or("", |l| super::lead(l, lang));
    let roles: Vec<&str> = [practitioner, lead]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    let mut text = about.join(", ");
    if !roles.is_empty() {
        text = format!("{text}; {}", roles.join(", "));
    }
    match lang {
        Lang::Nl => format!(
            "{who} voegde {} ({text}) toe aan het zorgteam",
            r.v("member")
        ),
        Lang::En => format!("{who} added {} ({text}) to the care team", r.v("member")),
    }
}

fn target_set(r: &Reader<'_>, who: &str) -> String {
    let target = if r.v("comparator").is_empty() {
        // Stored before targets were structured: "≤ 1.8 mmol/L" under `target`.
        number(r.v("target"), r.lang)
    } else {
        format!("{} {}", r.v("comparator"), r.quantity("value"))
    };
    let basis = match code::parse(&code::BASES, r.v("basis")) {
        Some(b) => super::basis(b, r.lang).to_owned(),
        None => value_in(r.v("basis"), r.lang),
    };
    let because = r.because(r.v("rationale"));
    match r.lang {
        Lang::Nl => format!(
            "{who} stelde de streefwaarde voor {} vast op {target} ({basis}){because}",
            r.measure_name()
        ),
        Lang::En => format!(
            "{who} set the {} target to {target} ({basis}){because}",
            r.measure_name()
        ),
    }
}

fn target_withdrawn(r: &Reader<'_>, who: &str) -> String {
    let default = if !r.v("default_value").is_empty() {
        Some(format!(
            "{} {}",
            r.v("default_comparator"),
            r.quantity("default_value")
        ))
    } else if !r.v("default").is_empty() && r.v("default") != "(none)" {
        Some(number(r.v("default"), r.lang))
    } else {
        None
    };
    let because = r.because("");
    let measure = r.measure_name();
    match (r.lang, default) {
        (Lang::Nl, Some(d)) => format!(
            "{who} trok de streefwaarde voor {measure} in; de richtlijnwaarde {d} geldt weer{because}"
        ),
        (Lang::Nl, None) => format!(
            "{who} trok de streefwaarde voor {measure} in; er geldt geen richtlijnwaarde{because}"
        ),
        (Lang::En, Some(d)) => format!(
            "{who} withdrew the {measure} target; the guideline default {d} applies again{because}"
        ),
        (Lang::En, None) => format!(
            "{who} withdrew the {measure} target; no guideline default applies{because}"
        ),
    }
}

fn lab_ordered(r: &Reader<'_>, who: &str) -> String {
    let annual = r.v("annual_panel") == "true";
    match r.lang {
        Lang::Nl => format!(
            "{who} deed labaanvraag {}{}: {}",
            r.v("order"),
            if annual { " (jaarcontrole CVRM)" } else { "" },
            r.tests()
        ),
        Lang::En => format!(
            "{who} ordered lab {}{}: {}",
            r.v("order"),
            if annual { " (annual CVRM panel)" } else { "" },
            r.tests()
        ),
    }
}

fn lab_result(r: &Reader<'_>, who: &str) -> String {
    let order = r.v("order");
    match r.lang {
        Lang::Nl => format!(
            "{who} legde labuitslag {} {} vast{}",
            r.measure_name(),
            r.quantity("value"),
            if order.is_empty() {
                String::new()
            } else {
                format!(" (labaanvraag {order})")
            }
        ),
        Lang::En => format!(
            "{who} recorded lab result {} {}{}",
            r.measure_name(),
            r.quantity("value"),
            if order.is_empty() {
                String::new()
            } else {
                format!(" (lab order {order})")
            }
        ),
    }
}

fn measurement(r: &Reader<'_>, who: &str) -> String {
    let source = code::parse(&code::SOURCES, r.v("source"));
    let place = match source {
        Some(MeasurementSource::SelfMeasuredAtHome) => {
            r.pick("thuismeting", "self-measured at home")
        }
        Some(MeasurementSource::Practice) => r.pick("in de huisartspraktijk", "at the practice"),
        Some(MeasurementSource::Hospital) => r.pick("in het ziekenhuis", "at the hospital"),
        None => r.v("source"),
    };
    match r.lang {
        Lang::Nl => format!(
            "{who} legde {} {} vast ({place})",
            r.measure_name(),
            r.quantity("value")
        ),
        Lang::En => format!(
            "{who} recorded {} {} ({place})",
            r.measure_name(),
            r.quantity("value")
        ),
    }
}

fn goal_closed(r: &Reader<'_>, who: &str) -> String {
    let outcome =
        super::goal_outcome(code::parse(&code::OUTCOMES, r.v("outcome")), r.lang).to_owned();
    let description = match r.v("description") {
        "" => String::new(),
        d => format!(": {d}"),
    };
    match r.lang {
        Lang::Nl => format!(
            "{who} sloot leefstijldoel {} af ({outcome}){description}",
            r.v("goal")
        ),
        Lang::En => format!(
            "{who} closed lifestyle goal {} ({outcome}){description}",
            r.v("goal")
        ),
    }
}

fn note_added(r: &Reader<'_>, who: &str) -> String {
    let kind = code::parse(&code::NOTE_KINDS, r.v("note_kind")).unwrap_or(NoteKind::Note);
    let (nl, en) = match kind {
        NoteKind::Note => ("een notitie", "a note"),
        NoteKind::ReturnLetter => ("een terugrapportagebrief", "a return letter"),
        NoteKind::InterimLetter => ("een tussentijdse brief", "an interim letter"),
    };
    match r.lang {
        Lang::Nl => format!("{who} voegde {nl} toe: {}", r.v("subject")),
        Lang::En => format!("{who} added {en}: {}", r.v("subject")),
    }
}

fn acknowledged(r: &Reader<'_>, who: &str) -> String {
    let to = match Line::parse(r.v("recipient")) {
        Some(Line::Patient) => r.pick("aan de patiënt", "to the patient").to_owned(),
        Some(line) => format!(
            "{} {}",
            r.pick("aan de", "to the"),
            super::line(line, r.lang)
        ),
        None => String::new(),
    };
    match r.lang {
        Lang::Nl => format!(
            "{who} bevestigde de melding van positie {} {to}",
            r.v("notification")
        ),
        Lang::En => format!(
            "{who} acknowledged the notification of position {} {to}",
            r.v("notification")
        ),
    }
    .trim_end()
    .to_owned()
}

fn entered_in_error(r: &Reader<'_>, who: &str) -> String {
    let what = match message::nested(r.m, "what") {
        Some(inner) => message(&inner, r.lang),
        None => r.v("what").to_owned(),
    };
    let what = if what.is_empty() {
        what
    } else {
        format!(": {what}")
    };
    match r.lang {
        Lang::Nl => format!(
            "{who} markeerde positie {} als foutief ingevoerd{what}",
            r.v("corrected")
        ),
        Lang::En => format!(
            "{who} marked as entered in error (position {}){what}",
            r.v("corrected")
        ),
    }
}

fn intolerance(r: &Reader<'_>, who: &str) -> String {
    let kind = message::intolerance_kind(r.v("intolerance_kind"));
    let (substance, atc, reaction) = (r.v("substance"), r.v("atc"), r.v("reaction"));
    match (r.lang, kind) {
        (Lang::Nl, Some(IntoleranceKind::ContraIndication)) => {
            format!("{who} legde een contra-indicatie vast voor {substance} ({atc}): {reaction}")
        }
        (Lang::Nl, _) => {
            format!("{who} legde een intolerantie vast voor {substance} ({atc}): {reaction}")
        }
        (Lang::En, Some(IntoleranceKind::ContraIndication)) => {
            format!("{who} recorded a contra-indication for {substance} ({atc}): {reaction}")
        }
        (Lang::En, _) => {
            format!("{who} recorded an intolerance of {substance} ({atc}): {reaction}")
        }
    }
}

fn problem_resolved(r: &Reader<'_>, who: &str) -> String {
    let about = match (r.v("description"), r.v("code")) {
        ("", _) => String::new(),
        (d, "") => format!(": {d}"),
        (d, c) => format!(": {d} ({c})"),
    };
    match r.lang {
        Lang::Nl => format!(
            "{who} markeerde probleem {} als opgelost{about}",
            r.v("problem")
        ),
        Lang::En => format!("{who} resolved problem {}{about}", r.v("problem")),
    }
}

/// What an audit entry's element was or becomes ([`crate::message::state`]) in the reader's
/// language: "≤ 1,8 mmol/L", "atorvastatine 40 mg 1x daags", "gestopt", "richtlijnwaarde".
pub fn state(state: &Message, lang: Lang) -> String {
    let r = Reader { m: state, lang };
    match state.template.as_ref() {
        "target" => format!("{} {}", r.v("comparator"), r.quantity("value")),
        "guideline_default" => lang.pick("richtlijnwaarde", "guideline default").to_owned(),
        "medication" => format!("{} {}", r.v("drug"), r.dose("")),
        "dose" => r.dose(""),
        "stopped" => lang.pick("gestopt", "stopped").to_owned(),
        "shared_care" => lang.pick("gedeelde zorg", "shared care").to_owned(),
        "no_shared_care" => lang.pick("geen gedeelde zorg", "no shared care").to_owned(),
        "goal_open" => super::goal_outcome(None, lang).to_owned(),
        "goal_closed" => {
            super::goal_outcome(code::parse(&code::OUTCOMES, r.v("outcome")), lang).to_owned()
        }
        other => other.replace('_', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(template: &str, values: &[(&str, &str)]) -> Message {
        let mut m = Message::of_strings(template, values.iter().copied());
        m.values.entry("role".into()).or_insert("gp".into());
        m.values.entry("name".into()).or_insert("A. Jansen".into());
        m
    }

    fn both(message: &Message) -> (String, String) {
        (
            super::message(message, Lang::Nl),
            super::message(message, Lang::En),
        )
    }

    #[test]
    fn every_event_kind_has_a_template_of_its_own_in_both_languages() {
        for kind in careledger_core::event::Event::KINDS {
            let (nl, en) = both(&m(kind, &[]));
            assert!(nl.starts_with("Huisarts A. Jansen "), "{kind}: {nl}");
            assert!(en.starts_with("GP A. Jansen "), "{kind}: {en}");
            assert_ne!(nl, en, "{kind}");
            assert!(
                !nl.contains('_') && !en.contains('_'),
                "{kind}: {nl} / {en}"
            );
        }
    }

    #[test]
    fn targets_read_with_a_decimal_comma_and_their_unit() {
        let set = m(
            "target_set",
            &[
                ("role", "cardiologist"),
                ("name", "J. de Vries"),
                ("measure", "ldl"),
                ("comparator", "≤"),
                ("value", "1.8"),
                ("basis", "esc_guideline"),
                ("rationale", "hoog risico"),
            ],
        );
        assert_eq!(
            both(&set),
            (
                "Cardioloog J. de Vries stelde de streefwaarde voor LDL-cholesterol vast op \
                 ≤ 1,8 mmol/L (richtlijn ESC): hoog risico"
                    .to_owned(),
                "Cardiologist J. de Vries set the LDL cholesterol target to ≤ 1.8 mmol/L \
                 (ESC guideline): hoog risico"
                    .to_owned()
            )
        );
        let withdrawn = m(
            "target_withdrawn",
            &[
                ("measure", "systolic_bp"),
                ("default_comparator", "<"),
                ("default_value", "140"),
            ],
        );
        assert_eq!(
            both(&withdrawn).0,
            "Huisarts A. Jansen trok de streefwaarde voor systolische bloeddruk in; de \
             richtlijnwaarde < 140 mmHg geldt weer"
        );
        assert_eq!(
            both(&withdrawn).1,
            "GP A. Jansen withdrew the systolic blood pressure target; the guideline default \
             < 140 mmHg applies again"
        );
    }

    #[test]
    fn medication_changes_name_the_drug_dose_and_reason() {
        let changed = m(
            "medication_dose_changed",
            &[
                ("drug", "metoprolol"),
                ("atc", "C07AB02"),
                ("from_amount", "47.5"),
                ("from_unit", "mg"),
                ("from_frequency", "1x daags"),
                ("amount", "95"),
                ("unit", "mg"),
                ("frequency", "1x daags"),
                ("change_reason", "target_not_reached"),
                ("reason", "pols 90"),
            ],
        );
        assert_eq!(
            both(&changed),
            (
                "Huisarts A. Jansen wijzigde metoprolol (C07AB02) van 47,5 mg 1x daags naar 95 \
                 mg 1x daags: streefwaarde niet behaald, pols 90"
                    .to_owned(),
                "GP A. Jansen changed metoprolol (C07AB02) from 47.5 mg 1x daags to 95 mg 1x \
                 daags: target not reached, pols 90"
                    .to_owned()
            )
        );
        let started = m(
            "medication_started",
            &[
                ("drug", "acetylsalicylzuur"),
                ("atc", "B01AC06"),
                ("amount", "1"),
                ("unit", "tablet"),
                ("frequency", "1x daags"),
            ],
        );
        assert_eq!(
            both(&started).0,
            "Huisarts A. Jansen startte acetylsalicylzuur 1 tablet 1x daags (B01AC06)"
        );
        let stopped = m(
            "medication_stopped",
            &[
                ("drug", "atorvastatine"),
                ("atc", "C10AA05"),
                ("amount", "40"),
                ("unit", "mg"),
                ("frequency", "1x daags"),
                ("change_reason", "other"),
                ("change_reason_text", "interactie"),
            ],
        );
        assert_eq!(
            both(&stopped),
            (
                "Huisarts A. Jansen stopte atorvastatine 40 mg 1x daags (C10AA05): anders: \
                 interactie"
                    .to_owned(),
                "GP A. Jansen stopped atorvastatine 40 mg 1x daags (C10AA05): other: interactie"
                    .to_owned()
            )
        );
        let preference = m(
            "medication_preference_recorded",
            &[
                ("role", "cardiologist"),
                ("name", "J. de Vries"),
                ("drug", "rosuvastatine"),
                ("atc", "C10AA07"),
                ("preference", "bij intolerantie voor atorvastatine"),
            ],
        );
        assert_eq!(
            both(&preference).0,
            "Cardioloog J. de Vries legde een medicatievoorkeur vast voor rosuvastatine \
             (C10AA07): bij intolerantie voor atorvastatine"
        );
    }

    #[test]
    fn lab_work_and_measurements_read_with_names_units_and_where() {
        let order = m(
            "lab_ordered",
            &[
                ("order", "jc-2026"),
                ("tests", "ldl,hba1c,egfr"),
                ("annual_panel", "true"),
            ],
        );
        assert_eq!(
            both(&order),
            (
                "Huisarts A. Jansen deed labaanvraag jc-2026 (jaarcontrole CVRM): \
                 LDL-cholesterol, HbA1c, eGFR"
                    .to_owned(),
                "GP A. Jansen ordered lab jc-2026 (annual CVRM panel): LDL cholesterol, HbA1c, \
                 eGFR"
                    .to_owned()
            )
        );
        let panel = m(
            "annual_panel_extended",
            &[
                ("role", "cardiologist"),
                ("name", "J. de Vries"),
                ("tests", "nt_probnp"),
            ],
        );
        assert_eq!(
            both(&panel).0,
            "Cardioloog J. de Vries voegde NT-proBNP toe aan het jaarlijkse CVRM-lab"
        );
        let result = m(
            "lab_result_recorded",
            &[("measure", "ldl"), ("value", "2.6"), ("order", "jc-2026")],
        );
        assert_eq!(
            both(&result),
            (
                "Huisarts A. Jansen legde labuitslag LDL-cholesterol 2,6 mmol/L vast \
                 (labaanvraag jc-2026)"
                    .to_owned(),
                "GP A. Jansen recorded lab result LDL cholesterol 2.6 mmol/L (lab order jc-2026)"
                    .to_owned()
            )
        );
        let home = m(
            "measurement_recorded",
            &[
                ("role", "patient"),
                ("name", "P. de Boer"),
                ("measure", "systolic_bp"),
                ("value", "146"),
                ("source", "self_measured_at_home"),
            ],
        );
        assert_eq!(
            both(&home),
            (
                "Patiënt P. de Boer legde systolische bloeddruk 146 mmHg vast (thuismeting)"
                    .to_owned(),
                "Patient P. de Boer recorded systolic blood pressure 146 mmHg (self-measured at \
                 home)"
                    .to_owned()
            )
        );
        let weight = m(
            "measurement_recorded",
            &[
                ("role", "practice_nurse"),
                ("name", "S. Bakker"),
                ("measure", "weight"),
                ("value", "82.4"),
                ("source", "practice"),
            ],
        );
        assert_eq!(
            both(&weight).0,
            "Praktijkverpleegkundige S. Bakker legde gewicht 82,4 kg vast (in de huisartspraktijk)"
        );
    }

    #[test]
    fn the_care_team_notes_and_corrections_read_in_both_languages() {
        let added = m(
            "care_team_member_added",
            &[
                ("member", "J. de Vries"),
                ("member_role", "cardiologist"),
                ("practitioner", "main"),
                ("lead", "organ_disease"),
            ],
        );
        assert_eq!(
            both(&added),
            (
                "Huisarts A. Jansen voegde J. de Vries (cardioloog, tweede lijn; \
                 hoofdbehandelaar, regie orgaanlijden) toe aan het zorgteam"
                    .to_owned(),
                "GP A. Jansen added J. de Vries (cardiologist, second line; main practitioner, \
                 lead on the organ disease) to the care team"
                    .to_owned()
            )
        );
        let handed = m("lead_handed_over", &[("lead", "cvrm"), ("to", "B. Visser")]);
        assert_eq!(
            both(&handed).0,
            "Huisarts A. Jansen droeg de regie CVRM over aan B. Visser, nu hoofdbehandelaar"
        );
        let letter = m(
            "note_added",
            &[
                ("role", "cardiologist"),
                ("name", "J. de Vries"),
                ("note_kind", "return_letter"),
                ("subject", "Poliklinisch controle"),
            ],
        );
        assert_eq!(
            both(&letter),
            (
                "Cardioloog J. de Vries voegde een terugrapportagebrief toe: Poliklinisch \
                 controle"
                    .to_owned(),
                "Cardiologist J. de Vries added a return letter: Poliklinisch controle".to_owned()
            )
        );
        let ack = m(
            "notification_acknowledged",
            &[("notification", "12"), ("recipient", "second")],
        );
        assert_eq!(
            both(&ack).0,
            "Huisarts A. Jansen bevestigde de melding van positie 12 aan de tweede lijn"
        );
        // A correction names the corrected entry in the reader's language too.
        let corrected = m(
            "entered_in_error",
            &[
                ("corrected", "7"),
                (
                    "what",
                    "GP A. Jansen recorded lab result LDL cholesterol 2.6 mmol/L",
                ),
                ("what.template", "lab_result_recorded"),
                ("what.role", "gp"),
                ("what.name", "A. Jansen"),
                ("what.measure", "ldl"),
                ("what.value", "2.6"),
                ("reason", "verkeerde patiënt"),
            ],
        );
        assert_eq!(
            both(&corrected).0,
            "Huisarts A. Jansen markeerde positie 7 als foutief ingevoerd: Huisarts A. Jansen \
             legde labuitslag LDL-cholesterol 2,6 mmol/L vast"
        );
        assert!(both(&corrected).1.contains("2.6 mmol/L"));
    }

    #[test]
    fn the_clinical_catalogue_reads_in_both_languages() {
        let intolerance = m(
            "intolerance_recorded",
            &[
                ("intolerance_kind", "intolerance"),
                ("substance", "atorvastatine"),
                ("atc", "C10AA05"),
                ("reaction", "spierpijn, CK verhoogd"),
            ],
        );
        assert_eq!(
            both(&intolerance).0,
            "Huisarts A. Jansen legde een intolerantie vast voor atorvastatine (C10AA05): \
             spierpijn, CK verhoogd"
        );
        let problem = m(
            "problem_recorded",
            &[
                ("problem", "mi"),
                ("code", "ICPC K75"),
                ("description", "acuut myocardinfarct"),
            ],
        );
        assert_eq!(
            both(&problem).0,
            "Huisarts A. Jansen zette probleem mi op de probleemlijst: acuut myocardinfarct \
             (ICPC K75)"
        );
        let smoking = m("smoking_status_recorded", &[("status", "former")]);
        assert_eq!(
            both(&smoking),
            (
                "Huisarts A. Jansen legde de rookstatus vast: ex-roker".to_owned(),
                "GP A. Jansen recorded smoking status: ex-smoker".to_owned()
            )
        );
        let goal = m(
            "lifestyle_goal_closed",
            &[
                ("goal", "wandelen"),
                ("outcome", "achieved"),
                ("description", "30 minuten per dag"),
            ],
        );
        assert_eq!(
            both(&goal).0,
            "Huisarts A. Jansen sloot leefstijldoel wandelen af (behaald): 30 minuten per dag"
        );
        let glass = m(
            "glass_broken",
            &[
                ("role", "emergency_physician"),
                ("name", "K. Smit"),
                ("hours", "4"),
            ],
        );
        assert_eq!(
            both(&glass).0,
            "SEH-arts K. Smit opende noodtoegang tot het dossier voor 4 uur"
        );
    }

    #[test]
    fn an_old_change_message_shows_its_summary() {
        let old = Message::of_strings(
            "change",
            [("summary", "GP A. Jansen did something"), ("reason", "why")],
        );
        assert_eq!(
            message(&old, Lang::Nl),
            "GP A. Jansen did something; reason: why"
        );
    }

    #[test]
    fn states_read_in_both_languages() {
        let target = crate::message::state(
            "target",
            &[
                ("comparator", "≤".into()),
                ("value", "2.5".into()),
                ("measure", "ldl".into()),
            ],
        );
        assert_eq!(state(&target, Lang::Nl), "≤ 2,5 mmol/L");
        assert_eq!(state(&target, Lang::En), "≤ 2.5 mmol/L");
        let stopped = crate::message::state("stopped", &[]);
        assert_eq!(state(&stopped, Lang::Nl), "gestopt");
        let default = crate::message::state("guideline_default", &[]);
        assert_eq!(state(&default, Lang::Nl), "richtlijnwaarde");
        let closed = crate::message::state("goal_closed", &[("outcome", "abandoned".into())]);
        assert_eq!(state(&closed, Lang::Nl), "losgelaten");
    }
}
