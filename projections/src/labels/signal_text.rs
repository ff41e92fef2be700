//! The explanatory sentence of a signal, from its code and values ([`crate::Signal`]), in Dutch
//! and English: measures by name, values with their units, dates in Europe/Amsterdam.

use std::collections::BTreeMap;

use careledger_core::quantity::Measure;
use careledger_core::record::Timestamp;
use careledger_core::role::{Line, Role};

use super::{date, measure_name, number, unit, Lang};

struct Values<'a> {
    values: &'a BTreeMap<String, String>,
    lang: Lang,
}

impl Values<'_> {
    fn v(&self, key: &str) -> &str {
        self.values.get(key).map_or("", String::as_str)
    }

    fn measure(&self) -> Option<Measure> {
        Measure::parse(self.v("measure")).ok()
    }

    fn measure_name(&self) -> String {
        self.measure().map_or_else(
            || self.v("measure").to_owned(),
            |m| measure_name(m, self.lang).to_owned(),
        )
    }

    /// A value of the signal's measure with its unit: "2,6 mmol/L".
    fn quantity(&self, key: &str) -> String {
        let value = number(self.v(key), self.lang);
        match self.measure() {
            Some(m) => format!("{value} {}", unit(m)),
            None => value,
        }
    }

    fn target(&self) -> String {
        format!("{} {}", self.v("comparator"), self.quantity("target"))
    }

    /// A date given as microseconds since the epoch, in Europe/Amsterdam.
    fn date(&self, key: &str) -> String {
        match self.v(key).parse::<i64>() {
            Ok(micros) => date(Timestamp::from_micros(micros), self.lang),
            Err(_) => self.v(key).to_owned(),
        }
    }

    fn tests(&self) -> String {
        self.v("tests")
            .split(',')
            .filter(|t| !t.is_empty())
            .map(|t| match Measure::parse(t) {
                Ok(m) => measure_name(m, self.lang).to_owned(),
                Err(_) => t.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// "huisarts A. Jansen (eerste lijn)".
    fn by(&self) -> String {
        match Role::parse(self.v("role")) {
            Some(role) => format!(
                "{} {} ({})",
                super::role(role, self.lang),
                self.v("name"),
                super::line(
                    Line::parse(self.v("line")).unwrap_or(role.line()),
                    self.lang
                )
            ),
            None => self.v("name").to_owned(),
        }
    }
}

/// A signal's sentence for the clinician, in the reader's language. An unknown code yields
/// `None`: the caller shows the signal's own sentence.
pub fn signal_message(code: &str, values: &BTreeMap<String, String>, lang: Lang) -> Option<String> {
    let s = Values { values, lang };
    let v = |k: &str| s.v(k);
    let text = match (code, lang) {
        ("duplicate_lab_work", Lang::Nl) => format!(
            "{} opnieuw aangevraagd {} dag(en) na positie {} (werkafspraak 7: voorkom dubbel \
             bloedonderzoek)",
            s.measure_name(),
            v("days"),
            v("first")
        ),
        ("duplicate_lab_work", Lang::En) => format!(
            "{} requested again {} day(s) after position {} (agreement 7: avoid duplicate blood \
             tests)",
            s.measure_name(),
            v("days"),
            v("first")
        ),
        ("annual_lab_due", Lang::Nl) if v("last_ordered_at").is_empty() => {
            "er is nog geen jaarlijks CVRM-lab aangevraagd (werkafspraak 7)".to_owned()
        }
        ("annual_lab_due", Lang::En) if v("last_ordered_at").is_empty() => {
            "no annual CVRM lab panel was ordered yet (agreement 7)".to_owned()
        }
        ("annual_lab_due", Lang::Nl) => format!(
            "het laatste jaarlijkse CVRM-lab is aangevraagd op {}, meer dan een jaar geleden \
             (werkafspraak 7)",
            s.date("last_ordered_at")
        ),
        ("annual_lab_due", Lang::En) => format!(
            "the last annual CVRM lab panel was ordered on {}, over a year ago (agreement 7)",
            s.date("last_ordered_at")
        ),
        ("target_not_met", Lang::Nl) => format!(
            "{} {} haalt de streefwaarde {} niet (werkafspraak 3)",
            s.measure_name(),
            s.quantity("value"),
            s.target()
        ),
        ("target_not_met", Lang::En) => format!(
            "{} {} does not meet the target {} (agreement 3)",
            s.measure_name(),
            s.quantity("value"),
            s.target()
        ),
        ("home_trend_off_target", Lang::Nl) => format!(
            "{}: het gemiddelde van de laatste {} thuismetingen is {}, buiten de streefwaarde {}",
            s.measure_name(),
            v("readings"),
            s.quantity("mean"),
            s.target()
        ),
        ("home_trend_off_target", Lang::En) => format!(
            "the mean of the last {} home readings of {} is {}, off target {}",
            v("readings"),
            s.measure_name(),
            s.quantity("mean"),
            s.target()
        ),
        ("cvrm_lead_unassigned", Lang::Nl) => {
            "nog geen huisarts heeft de regie over CVRM bij deze patiënt: een huisarts in het \
             team neemt de regie (draagt die aan zichzelf over), of het team voegt de huisarts \
             van de patiënt toe als hoofdbehandelaar (werkafspraak 1)"
                .to_owned()
        }
        ("cvrm_lead_unassigned", Lang::En) => {
            "no GP leads CVRM for this patient yet: a GP in the team takes the lead (hands it \
             over to themselves), or the team adds the patient's GP as main practitioner \
             (agreement 1)"
                .to_owned()
        }
        ("organ_disease_lead_unassigned", Lang::Nl) => {
            "geen specialist heeft de regie over het orgaanlijden bij deze patiënt: een \
             specialist in het team neemt de regie (draagt die aan zichzelf over) \
             (werkafspraak 1)"
                .to_owned()
        }
        ("organ_disease_lead_unassigned", Lang::En) => {
            "no specialist leads the organ disease for this patient: a specialist in the team \
             takes the lead (hands it over to themselves) (agreement 1)"
                .to_owned()
        }
        ("lab_order_expired", Lang::Nl) => format!(
            "labaanvraag {} van {}: {} open sinds {}, langer dan de {} dagen dat een \
             labaanvraag geldig is; vraag opnieuw aan als het nog nodig is",
            v("order"),
            s.by(),
            s.tests(),
            s.date("since"),
            v("valid_days")
        ),
        ("lab_order_expired", Lang::En) => format!(
            "lab order {} by {}: {} pending since {}, past the {} days a lab order stays \
             valid; order again if still needed",
            v("order"),
            s.by(),
            s.tests(),
            s.date("since"),
            v("valid_days")
        ),
        ("lab_order_open", Lang::Nl) => format!(
            "labaanvraag {} van {} op {}: {} nog open; beide lijnen gebruiken deze bloedafname \
             in plaats van opnieuw aan te vragen (werkafspraak 7)",
            v("order"),
            s.by(),
            s.date("since"),
            s.tests()
        ),
        ("lab_order_open", Lang::En) => format!(
            "lab order {} by {} on {}: {} pending; both lines use this blood draw rather than \
             ordering again (agreement 7)",
            v("order"),
            s.by(),
            s.date("since"),
            s.tests()
        ),
        ("annual_panel_incomplete", Lang::Nl) => format!(
            "het jaarlijkse CVRM-lab {} van {} mist {}, door de specialist aan het jaarlijkse \
             lab toegevoegd (werkafspraken 2 en 7); vraag ze aan bij de volgende bloedafname",
            v("order"),
            s.date("ordered_at"),
            s.tests()
        ),
        ("annual_panel_incomplete", Lang::En) => format!(
            "the annual CVRM lab {} of {} leaves out {}, added to the annual panel by the \
             specialist (agreements 2 and 7); order them with the next blood draw",
            v("order"),
            s.date("ordered_at"),
            s.tests()
        ),
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    use crate::signals::CODES;

    #[test]
    fn every_signal_has_a_sentence_in_both_languages() {
        for code in CODES {
            let nl = signal_message(code, &BTreeMap::new(), Lang::Nl).unwrap();
            let en = signal_message(code, &BTreeMap::new(), Lang::En).unwrap();
            assert_ne!(nl, en, "{code}");
            assert!(!nl.contains("agreement"), "{code}: {nl}");
        }
        assert_eq!(signal_message("unknown", &BTreeMap::new(), Lang::Nl), None);
    }

    #[test]
    fn a_target_not_met_reads_with_a_decimal_comma_and_the_unit() {
        let v = values(&[
            ("measure", "ldl"),
            ("value", "2.6"),
            ("comparator", "≤"),
            ("target", "1.8"),
        ]);
        assert_eq!(
            signal_message("target_not_met", &v, Lang::Nl).unwrap(),
            "LDL-cholesterol 2,6 mmol/L haalt de streefwaarde ≤ 1,8 mmol/L niet (werkafspraak 3)"
        );
        assert_eq!(
            signal_message("target_not_met", &v, Lang::En).unwrap(),
            "LDL cholesterol 2.6 mmol/L does not meet the target ≤ 1.8 mmol/L (agreement 3)"
        );
    }

    #[test]
    fn home_trends_duplicates_and_lab_orders_read_in_dutch() {
        let trend = values(&[
            ("measure", "systolic_bp"),
            ("readings", "3"),
            ("mean", "146.3"),
            ("comparator", "<"),
            ("target", "140"),
        ]);
        assert_eq!(
            signal_message("home_trend_off_target", &trend, Lang::Nl).unwrap(),
            "systolische bloeddruk: het gemiddelde van de laatste 3 thuismetingen is 146,3 mmHg, \
             buiten de streefwaarde < 140 mmHg"
        );
        let duplicate = values(&[("measure", "hba1c"), ("days", "12"), ("first", "40")]);
        assert_eq!(
            signal_message("duplicate_lab_work", &duplicate, Lang::Nl).unwrap(),
            "HbA1c opnieuw aangevraagd 12 dag(en) na positie 40 (werkafspraak 7: voorkom dubbel \
             bloedonderzoek)"
        );
        // 2 March 2026, 23:30 UTC is 3 March in Amsterdam.
        let since = Timestamp::parse_rfc3339("2026-03-02T23:30:00Z")
            .unwrap()
            .micros()
            .to_string();
        let order = values(&[
            ("order", "lab-1"),
            ("role", "cardiologist"),
            ("name", "J. de Vries"),
            ("line", "second"),
            ("tests", "ldl,creatinine"),
            ("since", &since),
            ("valid_days", "90"),
        ]);
        assert_eq!(
            signal_message("lab_order_open", &order, Lang::Nl).unwrap(),
            "labaanvraag lab-1 van cardioloog J. de Vries (tweede lijn) op 3 mrt 2026: \
             LDL-cholesterol, kreatinine nog open; beide lijnen gebruiken deze bloedafname in \
             plaats van opnieuw aan te vragen (werkafspraak 7)"
        );
        assert!(signal_message("lab_order_expired", &order, Lang::En)
            .unwrap()
            .contains("pending since 3 Mar 2026, past the 90 days"));
    }
}
