//! Human labels for everything a reader sees, in Dutch (the default) and English: roles, lines,
//! leads, measures with their units as clinicians write them and their codes beside the names,
//! target bases, change reasons, medication status, event kinds, notification messages,
//! signals and refusals; times and dates in Europe/Amsterdam.
//!
//! One place for every front end (the pages, the command line): no front end shows a Rust enum
//! name or a code instead of a name. No HTML here: the callers escape what they render.

use chrono_tz::Europe::Amsterdam;

use careledger_core::clinical::{IntoleranceKind, SmokingStatus};
use careledger_core::event::{
    ChangeReason, Dose, GoalOutcome, MeasurementSource, NoteKind, TargetBasis,
};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::Timestamp;
use careledger_core::role::{Lead, Line, Practitioner, Role};

use crate::notifications::NotificationStatus;

mod sentences;
mod signal_text;

use crate::plan::{EpisodeStatus, TargetStatus};
pub use sentences::{message, state};
pub use signal_text::signal_message;

/// The language a reader reads in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    /// Dutch, the default.
    #[default]
    Nl,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 tag (`nl`, `en`), as `<html lang>` and the `lang` cookie take it.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::Nl => "nl",
            Lang::En => "en",
        }
    }

    /// Parses `nl` or `en` (and their regional forms, `nl-NL`, `en-GB`); anything else is `None`.
    pub fn parse(raw: &str) -> Option<Lang> {
        let primary = raw.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "nl" => Some(Lang::Nl),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    /// Picks the Dutch or the English text.
    pub fn pick<'a>(self, nl: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Nl => nl,
            Lang::En => en,
        }
    }
}

/// A role: "huisarts" / "GP".
pub fn role(role: Role, lang: Lang) -> &'static str {
    let (nl, en) = match role {
        Role::Gp => ("huisarts", "GP"),
        Role::PracticeNurse => ("praktijkverpleegkundige", "practice nurse"),
        Role::PracticeAssistant => ("doktersassistent", "practice assistant"),
        Role::Cardiologist => ("cardioloog", "cardiologist"),
        Role::VascularInternist => ("vasculair internist", "vascular internist"),
        Role::ElderlyCarePhysician => ("specialist ouderengeneeskunde", "elderly-care physician"),
        Role::Pharmacist => ("apotheker", "pharmacist"),
        Role::Patient => ("patiënt", "patient"),
        Role::CareGroupAdmin => ("beheerder zorggroep", "care-group administrator"),
        Role::OutOfHoursGp => ("huisarts huisartsenpost", "GP at an out-of-hours post"),
        Role::EmergencyPhysician => ("SEH-arts", "emergency physician"),
    };
    lang.pick(nl, en)
}

/// A line: "eerste lijn" / "first line".
pub fn line(line: Line, lang: Lang) -> &'static str {
    let (nl, en) = match line {
        Line::First => ("eerste lijn", "first line"),
        Line::Second => ("tweede lijn", "second line"),
        Line::Patient => ("patiënt", "patient"),
        Line::CareGroup => ("zorggroep", "care group"),
    };
    lang.pick(nl, en)
}

/// A lead: "regie CVRM" / "lead on CVRM"; empty for no lead.
pub fn lead(lead: Lead, lang: Lang) -> &'static str {
    let (nl, en) = match lead {
        Lead::Cvrm => ("regie CVRM", "lead on CVRM"),
        Lead::OrganDisease => ("regie orgaanlijden", "lead on the organ disease"),
        Lead::None => ("", ""),
    };
    lang.pick(nl, en)
}

/// Main or co-practitioner; empty when not a practitioner.
pub fn practitioner(practitioner: Practitioner, lang: Lang) -> &'static str {
    let (nl, en) = match practitioner {
        Practitioner::Main => ("hoofdbehandelaar", "main practitioner"),
        Practitioner::Co => ("medebehandelaar", "co-practitioner"),
        Practitioner::NotApplicable => ("", ""),
    };
    lang.pick(nl, en)
}

/// A measure's name without its code: "LDL-cholesterol" / "LDL cholesterol".
pub fn measure_name(measure: Measure, lang: Lang) -> &'static str {
    let nl = match measure {
        Measure::LdlCholesterol => "LDL-cholesterol",
        Measure::TotalCholesterol => "totaal cholesterol",
        Measure::SystolicBloodPressure => "systolische bloeddruk",
        Measure::DiastolicBloodPressure => "diastolische bloeddruk",
        Measure::Hba1c => "HbA1c",
        Measure::Egfr => "eGFR",
        Measure::Weight => "gewicht",
        Measure::Glucose => "glucose",
        Measure::Potassium => "kalium",
        Measure::Creatinine => "kreatinine",
        Measure::CreatineKinase => "creatinekinase (CK)",
        Measure::Alt => "ALAT",
        Measure::NtProBnp => "NT-proBNP",
        Measure::HdlCholesterol => "HDL-cholesterol",
        Measure::Triglycerides => "triglyceriden",
        Measure::NonHdlCholesterol => "non-HDL-cholesterol",
        Measure::UrineAlbuminCreatinineRatio => "albumine/kreatinine-ratio in urine",
        Measure::Sodium => "natrium",
        Measure::HeartRate => "hartfrequentie",
        Measure::Bmi => "BMI",
        Measure::Lvef => "linkerventrikelejectiefractie (LVEF)",
    };
    lang.pick(nl, measure.name())
}

/// A measure with its code beside the name: "LDL-cholesterol (LOINC 22748-8)".
pub fn measure(measure: Measure, lang: Lang) -> String {
    format!(
        "{} (LOINC {})",
        measure_name(measure, lang),
        measure.loinc()
    )
}

/// A measure's unit as clinicians write it: `mmHg`, not the UCUM `mm[Hg]`; `µmol/L`, `kg/m²`.
pub fn unit(measure: Measure) -> &'static str {
    match measure.unit() {
        "mm[Hg]" => "mmHg",
        "umol/L" => "µmol/L",
        "kg/m2" => "kg/m²",
        "mL/min/{1.73_m2}" => "mL/min/1,73 m²",
        other => other,
    }
}

/// A number as the reader writes it: a decimal comma in Dutch, a point in English.
pub fn number(text: &str, lang: Lang) -> String {
    match lang {
        Lang::Nl => text.replace('.', ","),
        Lang::En => text.to_owned(),
    }
}

/// A value with its unit: "1,8 mmol/L" / "1.8 mmol/L".
pub fn quantity(value: &Quantity, lang: Lang) -> String {
    format!(
        "{} {}",
        number(&value.value_text(), lang),
        unit(value.measure())
    )
}

/// A target: "≤ 1,8 mmol/L".
pub fn target(comparator: Comparator, value: &Quantity, lang: Lang) -> String {
    format!("{} {}", comparator.symbol(), quantity(value, lang))
}

/// What a target is based on: "richtlijn NHG" / "NHG guideline".
pub fn basis(basis: TargetBasis, lang: Lang) -> &'static str {
    let (nl, en) = match basis {
        TargetBasis::NhgGuideline => ("richtlijn NHG", "NHG guideline"),
        TargetBasis::EscGuideline => ("richtlijn ESC", "ESC guideline"),
        TargetBasis::Individual => ("individuele streefwaarde", "individual target"),
    };
    lang.pick(nl, en)
}

/// Whether a target is met: "behaald" / "met".
pub fn target_status(status: TargetStatus, lang: Lang) -> &'static str {
    let (nl, en) = match status {
        TargetStatus::Met => ("behaald", "met"),
        TargetStatus::NotMet => ("niet behaald", "not met"),
        TargetStatus::NoData => ("nog geen waarde", "no value yet"),
    };
    lang.pick(nl, en)
}

/// Why a medication changed: "bijwerkingen" / "side effects"; the words given for another reason.
pub fn change_reason(reason: &ChangeReason, lang: Lang) -> String {
    let (nl, en) = match reason {
        ChangeReason::SideEffects => ("bijwerkingen", "side effects"),
        ChangeReason::TargetNotReached => ("streefwaarde niet behaald", "target not reached"),
        ChangeReason::PatientPreference => ("voorkeur van de patiënt", "patient preference"),
        ChangeReason::Other(words) => {
            return format!("{}: {words}", lang.pick("anders", "other"));
        }
    };
    lang.pick(nl, en).to_owned()
}

/// A medication episode's status: "in gebruik" / "active".
pub fn episode_status(status: EpisodeStatus, lang: Lang) -> &'static str {
    let (nl, en) = match status {
        EpisodeStatus::Active => ("in gebruik", "active"),
        EpisodeStatus::Stopped => ("gestopt", "stopped"),
        EpisodeStatus::EnteredInError => ("foutief ingevoerd", "entered in error"),
    };
    lang.pick(nl, en)
}

/// Where a measurement was taken: "thuis gemeten" / "self-measured at home".
pub fn measurement_source(source: Option<MeasurementSource>, lang: Lang) -> &'static str {
    let (nl, en) = match source {
        None => ("laboratorium", "laboratory"),
        Some(MeasurementSource::Practice) => ("in de huisartspraktijk", "at the GP practice"),
        Some(MeasurementSource::Hospital) => ("in het ziekenhuis", "at the hospital"),
        Some(MeasurementSource::SelfMeasuredAtHome) => ("thuis gemeten", "self-measured at home"),
    };
    lang.pick(nl, en)
}

/// A note or letter: "terugrapportagebrief" / "return letter".
pub fn note_kind(kind: NoteKind, lang: Lang) -> &'static str {
    let (nl, en) = match kind {
        NoteKind::Note => ("notitie", "note"),
        NoteKind::ReturnLetter => ("terugrapportagebrief", "return letter"),
        NoteKind::InterimLetter => ("tussentijdse brief", "interim letter"),
    };
    lang.pick(nl, en)
}

/// Smoking status: "ex-roker" / "ex-smoker".
pub fn smoking_status(status: SmokingStatus, lang: Lang) -> &'static str {
    let (nl, en) = match status {
        SmokingStatus::Never => ("nooit gerookt", "never smoked tobacco"),
        SmokingStatus::Former => ("ex-roker", "ex-smoker"),
        SmokingStatus::Current => ("roker", "smoker"),
    };
    lang.pick(nl, en)
}

/// An intolerance or a contra-indication: "intolerantie" / "intolerance".
pub fn intolerance_kind(kind: IntoleranceKind, lang: Lang) -> &'static str {
    let (nl, en) = match kind {
        IntoleranceKind::Intolerance => ("intolerantie", "intolerance"),
        IntoleranceKind::ContraIndication => ("contra-indicatie", "contra-indication"),
    };
    lang.pick(nl, en)
}

/// A dose as clinicians write it: "2,5 mg", "100 µg", "1 tablet", "2 tabletten", "10 IE".
pub fn dose(dose: &Dose, lang: Lang) -> String {
    let amount = dose.amount_text();
    format!(
        "{} {}",
        number(&amount, lang),
        sentences::dose_unit(dose.unit().symbol(), &amount, lang)
    )
}

/// A dose given as text with its unit symbol (`"2.5 mg"`, as the API writes it), as
/// clinicians write it.
pub fn dose_text(text: &str, lang: Lang) -> String {
    match text.trim().split_once(' ') {
        Some((amount, symbol)) => format!(
            "{} {}",
            number(amount, lang),
            sentences::dose_unit(symbol, amount, lang)
        ),
        None => number(text, lang),
    }
}

/// How a lifestyle goal ended.
pub fn goal_outcome(outcome: Option<GoalOutcome>, lang: Lang) -> &'static str {
    let (nl, en) = match outcome {
        None => ("lopend", "open"),
        Some(GoalOutcome::Achieved) => ("behaald", "achieved"),
        Some(GoalOutcome::Abandoned) => ("losgelaten", "abandoned"),
        Some(GoalOutcome::Replaced) => ("vervangen", "replaced"),
    };
    lang.pick(nl, en)
}

/// An event kind (`target_set`) in words: "streefwaarde vastgesteld" / "target set". An unknown
/// kind is shown as it is rather than hidden.
pub fn event_kind(kind: &str, lang: Lang) -> String {
    let (nl, en) = match kind {
        "care_team_member_added" => ("lid zorgteam toegevoegd", "care-team member added"),
        "care_team_member_removed" => ("lid zorgteam verwijderd", "care-team member removed"),
        "shared_care_started" => ("gedeelde zorg gestart", "shared care started"),
        "shared_care_ended" => ("gedeelde zorg beëindigd", "shared care ended"),
        "target_set" => ("streefwaarde vastgesteld", "target set"),
        "target_withdrawn" => ("streefwaarde ingetrokken", "target withdrawn"),
        "medication_started" => ("medicatie gestart", "medication started"),
        "medication_dose_changed" => ("dosering gewijzigd", "dose changed"),
        "medication_stopped" => ("medicatie gestopt", "medication stopped"),
        "medication_preference_recorded" => (
            "medicatievoorkeur vastgelegd",
            "medication preference recorded",
        ),
        "lab_ordered" => ("laboratoriumonderzoek aangevraagd", "lab work ordered"),
        "annual_panel_extended" => (
            "jaarlijkse CVRM-lab aangevuld",
            "annual CVRM panel extended",
        ),
        "lab_result_recorded" => ("labuitslag vastgelegd", "lab result recorded"),
        "measurement_recorded" => ("meting vastgelegd", "measurement recorded"),
        "lifestyle_goal_set" => ("leefstijldoel gesteld", "lifestyle goal set"),
        "lifestyle_goal_closed" => ("leefstijldoel afgesloten", "lifestyle goal closed"),
        "note_added" => ("notitie of brief toegevoegd", "note or letter added"),
        "notification_acknowledged" => ("melding bevestigd", "notification acknowledged"),
        "entered_in_error" => (
            "gemarkeerd als foutief ingevoerd",
            "marked entered in error",
        ),
        "lead_handed_over" => ("regie overgedragen", "lead handed over"),
        "intolerance_recorded" => ("intolerantie vastgelegd", "intolerance recorded"),
        "problem_recorded" => ("probleem vastgelegd", "problem recorded"),
        "problem_resolved" => ("probleem opgelost", "problem resolved"),
        "smoking_status_recorded" => ("rookstatus vastgelegd", "smoking status recorded"),
        "signing_key_registered" => (
            "ondertekeningssleutel geregistreerd",
            "signing key registered",
        ),
        "signing_key_revoked" => ("ondertekeningssleutel ingetrokken", "signing key revoked"),
        "glass_broken" => ("noodtoegang geopend", "emergency access opened"),
        other => return other.replace('_', " "),
    };
    lang.pick(nl, en).to_owned()
}

/// A notification's status: "open", "bevestigd", "ingetrokken".
pub fn notification_status(status: &NotificationStatus, lang: Lang) -> &'static str {
    let (nl, en) = match status {
        NotificationStatus::Open => ("open", "open"),
        NotificationStatus::Acknowledged { .. } => ("bevestigd", "acknowledged"),
        NotificationStatus::Withdrawn { .. } => ("ingetrokken", "withdrawn"),
    };
    lang.pick(nl, en)
}

/// A signal's code (`target_not_met`) in words.
pub fn signal(code: &str, lang: Lang) -> String {
    let (nl, en) = match code {
        "duplicate_lab_work" => ("dubbel laboratoriumonderzoek", "duplicate lab work"),
        "annual_lab_due" => ("jaarlijkse CVRM-lab nodig", "annual CVRM lab due"),
        "target_not_met" => ("streefwaarde niet behaald", "target not met"),
        "home_trend_off_target" => (
            "thuismetingen gaan de verkeerde kant op",
            "home readings trend off target",
        ),
        "lab_order_open" => ("labaanvraag open", "lab order open"),
        "lab_order_expired" => ("labaanvraag verlopen", "lab order expired"),
        "annual_panel_incomplete" => ("jaarlijkse CVRM-lab onvolledig", "annual panel incomplete"),
        "cvrm_lead_unassigned" => ("regie CVRM niet toegewezen", "CVRM lead unassigned"),
        "organ_disease_lead_unassigned" => (
            "regie orgaanlijden niet toegewezen",
            "organ disease lead unassigned",
        ),
        other => return other.replace('_', " "),
    };
    lang.pick(nl, en).to_owned()
}

/// A signal's sentence in the reader's language; the read models' own English sentence for a
/// code without a rendering.
pub fn signal_sentence(signal: &crate::Signal, lang: Lang) -> String {
    signal_message(&signal.code, &signal.values, lang).unwrap_or_else(|| signal.message.clone())
}

/// The English values a notification's message is filled with, in Dutch: a change reason,
/// a measure's name, a target's basis. Anything else (names, doses, words given) as it is.
pub(crate) fn value_in(value: &str, lang: Lang) -> String {
    if lang == Lang::En {
        return value.to_owned();
    }
    let reason = match value {
        "side effects" => Some(ChangeReason::SideEffects),
        "target not reached" => Some(ChangeReason::TargetNotReached),
        "patient preference" => Some(ChangeReason::PatientPreference),
        _ => None,
    };
    if let Some(reason) = reason {
        return change_reason(&reason, lang);
    }
    if let Some(m) = Measure::ALL.iter().find(|m| m.name() == value) {
        return measure_name(*m, lang).to_owned();
    }
    for b in [
        TargetBasis::NhgGuideline,
        TargetBasis::EscGuideline,
        TargetBasis::Individual,
    ] {
        if basis(b, Lang::En).eq_ignore_ascii_case(value) {
            return basis(b, lang).to_owned();
        }
    }
    value.to_owned()
}

/// A role named at the start of `who` ("GP A. Jansen", "Cardiologist B. de Vries") in Dutch.
pub(crate) fn who_in(who: &str, lang: Lang) -> String {
    if lang == Lang::En {
        return who.to_owned();
    }
    let mut roles = Role::ALL;
    // The longest English name first: "GP at an out-of-hours post" before "GP".
    roles.sort_by_key(|r| std::cmp::Reverse(r.to_string().len()));
    for r in roles {
        let english = r.to_string();
        let matches = who
            .get(..english.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(&english))
            && who[english.len()..].starts_with(' ');
        if matches {
            return format!("{}{}", capitalise(role(r, lang)), &who[english.len()..]);
        }
    }
    who.to_owned()
}

pub(crate) fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A refusal of a rule (`agreement_4`) in words a clinician understands, with the ledger's own
/// sentence after it for the detail. Unknown codes keep the ledger's sentence alone.
pub fn refusal(code: &str, detail: &str, lang: Lang) -> String {
    let (nl, en) = match code {
        "agreement_4" => (
            "Werkafspraak 4: medicatie van de andere lijn wordt alleen gewijzigd of gestopt \
             vanwege bijwerkingen of het niet behalen van de streefwaarde.",
            "Agreement 4: the other line's medication is changed or stopped only for side \
             effects or because the target is not reached.",
        ),
        "role_not_permitted" => (
            "Uw rol mag dit niet vastleggen.",
            "Your role may not record this.",
        ),
        "not_in_care_team" => (
            "U maakt geen deel uit van het zorgteam van deze patiënt.",
            "You are not in this patient's care team.",
        ),
        "not_the_recipient" => (
            "Deze melding is voor de andere lijn bestemd.",
            "This notification is addressed to the other line.",
        ),
        "already_acknowledged" => (
            "Deze melding is al bevestigd.",
            "This notification was acknowledged already.",
        ),
        "medication_not_active" => (
            "Deze medicatie is niet (meer) in gebruik.",
            "This medication is not active.",
        ),
        "patient_measures_at_home" => (
            "Een patiënt legt alleen thuismetingen vast.",
            "A patient records measurements taken at home.",
        ),
        "patient_writes_notes" => (
            "Een patiënt schrijft notities, geen brieven.",
            "A patient adds notes, not letters.",
        ),
        "correction_by_other_line" => (
            "Alleen de auteur of diens eigen lijn corrigeert een invoer.",
            "Only the author or their own line corrects an entry.",
        ),
        "invalid_value" => ("De waarde klopt niet.", "The value is not valid."),
        "csrf" => (
            "Dit formulier is verlopen of komt niet van deze pagina; laad de pagina opnieuw en \
             probeer het nog eens.",
            "This form has expired or did not come from this page; reload the page and try \
             again.",
        ),
        _ => return detail.to_owned(),
    };
    if detail.is_empty() {
        lang.pick(nl, en).to_owned()
    } else {
        format!("{} ({detail})", lang.pick(nl, en))
    }
}

const MONTHS_NL: [&str; 12] = [
    "jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec",
];
const MONTHS_EN: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn local(t: Timestamp) -> chrono::DateTime<chrono_tz::Tz> {
    t.to_chrono().with_timezone(&Amsterdam)
}

/// A date in Europe/Amsterdam: "3 dec 2026" / "3 Dec 2026".
pub fn date(t: Timestamp, lang: Lang) -> String {
    use chrono::Datelike;
    let d = local(t);
    let month = d.month0() as usize;
    let name = match lang {
        Lang::Nl => MONTHS_NL[month],
        Lang::En => MONTHS_EN[month],
    };
    format!("{} {name} {}", d.day(), d.year())
}

/// A date and time in Europe/Amsterdam: "3 dec 2026 11:15" / "3 Dec 2026, 11:15", on the
/// 24-hour clock both Dutch and English clinical readers use.
pub fn datetime(t: Timestamp, lang: Lang) -> String {
    let time = local(t).format("%H:%M");
    match lang {
        Lang::Nl => format!("{} {time}", date(t, lang)),
        Lang::En => format!("{}, {time}", date(t, lang)),
    }
}

/// The same instant as an RFC 3339 string with its Amsterdam offset, for `<time datetime>`.
pub fn machine_time(t: Timestamp) -> String {
    local(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn at(rfc3339: &str) -> Timestamp {
        Timestamp::parse_rfc3339(rfc3339).unwrap()
    }

    #[test]
    fn times_are_shown_in_amsterdam_across_daylight_saving() {
        // Winter: UTC+1; summer: UTC+2.
        assert_eq!(
            datetime(at("2026-12-03T10:15:00Z"), Lang::Nl),
            "3 dec 2026 11:15"
        );
        assert_eq!(
            datetime(at("2026-07-01T10:15:00Z"), Lang::En),
            "1 Jul 2026, 12:15"
        );
        // Late evening in UTC is the next day in Amsterdam.
        assert_eq!(date(at("2026-03-31T23:30:00Z"), Lang::Nl), "1 apr 2026");
        assert_eq!(
            machine_time(at("2026-07-01T10:15:00Z")),
            "2026-07-01T12:15:00+02:00"
        );
    }

    #[test]
    fn units_are_written_as_clinicians_write_them_with_the_code_beside_the_name() {
        let bp = Quantity::new(Measure::SystolicBloodPressure, 135).unwrap();
        assert_eq!(quantity(&bp, Lang::Nl), "135 mmHg");
        let ldl = Quantity::new(Measure::LdlCholesterol, 18).unwrap();
        assert_eq!(quantity(&ldl, Lang::Nl), "1,8 mmol/L");
        assert_eq!(quantity(&ldl, Lang::En), "1.8 mmol/L");
        assert_eq!(target(Comparator::AtMost, &ldl, Lang::Nl), "≤ 1,8 mmol/L");
        assert_eq!(
            measure(Measure::LdlCholesterol, Lang::Nl),
            "LDL-cholesterol (LOINC 22748-8)"
        );
        assert_eq!(unit(Measure::Bmi), "kg/m²");
        assert_eq!(unit(Measure::Hba1c), "mmol/mol");
        for m in Measure::ALL {
            assert!(!unit(m).contains('['), "{m:?}: {}", unit(m));
            assert!(!unit(m).contains('{'), "{m:?}: {}", unit(m));
            for lang in [Lang::Nl, Lang::En] {
                assert!(measure(m, lang).contains(m.loinc()));
                assert!(!measure_name(m, lang).contains('_'));
            }
        }
    }

    #[test]
    fn every_role_line_and_event_kind_has_a_label_in_both_languages() {
        for r in Role::ALL {
            for lang in [Lang::Nl, Lang::En] {
                assert!(!role(r, lang).is_empty());
                assert!(!role(r, lang).contains('_'), "{r:?}");
                assert!(!line(r.line(), lang).is_empty());
            }
        }
        for kind in careledger_core::event::Event::KINDS {
            for lang in [Lang::Nl, Lang::En] {
                let label = event_kind(kind, lang);
                assert!(!label.contains('_'), "{kind}: {label}");
            }
            // An unknown kind falls back to its words; every known kind has a Dutch label.
            assert_ne!(
                event_kind(kind, Lang::Nl),
                kind.replace('_', " "),
                "{kind} has no Dutch label"
            );
        }
        assert_eq!(lead(Lead::Cvrm, Lang::Nl), "regie CVRM");
        assert_eq!(practitioner(Practitioner::Co, Lang::En), "co-practitioner");
        assert_eq!(
            measurement_source(Some(MeasurementSource::SelfMeasuredAtHome), Lang::Nl),
            "thuis gemeten"
        );
    }

    #[test]
    fn every_signal_has_a_dutch_label() {
        for code in crate::signals::CODES {
            assert_ne!(signal(code, Lang::Nl), code.replace('_', " "), "{code}");
        }
    }

    #[test]
    fn a_notification_reads_in_dutch_with_its_reasons_translated() {
        let m = Message::of_strings(
            "medication_stopped",
            [
                ("who", "GP A. Jansen"),
                ("drug", "atorvastatine"),
                ("dose", "40 mg"),
                ("frequency", "1x daags"),
                ("atc", "C10AA05"),
                ("change_reason", "side effects"),
                ("reason", "spierpijn"),
            ],
        );
        assert_eq!(
            message(&m, Lang::Nl),
            "Huisarts A. Jansen stopte atorvastatine 40 mg 1x daags (C10AA05): bijwerkingen, \
             spierpijn"
        );
        assert_eq!(message(&m, Lang::En), m.english());
    }

    #[test]
    fn a_refusal_of_agreement_4_is_told_in_words_with_the_detail_after() {
        let text = refusal("agreement_4", "detail", Lang::Nl);
        assert!(text.starts_with("Werkafspraak 4"), "{text}");
        assert!(text.ends_with("(detail)"));
        assert_eq!(refusal("something_else", "as it is", Lang::En), "as it is");
    }

    #[test]
    fn languages_parse_from_tags() {
        assert_eq!(Lang::parse("nl-NL"), Some(Lang::Nl));
        assert_eq!(Lang::parse("EN"), Some(Lang::En));
        assert_eq!(Lang::parse("de"), None);
        assert_eq!(Lang::default(), Lang::Nl);
    }
}
