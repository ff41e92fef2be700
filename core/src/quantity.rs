//! Clinical quantities in fixed point: a measure, its UCUM unit, precision, plausible range and
//! LOINC code.
//!
//! No floating point anywhere: 1.8 mmol/L is stored as `18` tenths. Each measure has exactly one
//! unit, so a value in the wrong unit is refused instead of silently converted.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::InvalidInput;

/// A measured or targeted clinical quantity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Measure {
    /// LDL cholesterol.
    LdlCholesterol,
    /// Total cholesterol.
    TotalCholesterol,
    /// Systolic blood pressure.
    SystolicBloodPressure,
    /// Diastolic blood pressure.
    DiastolicBloodPressure,
    /// HbA1c.
    Hba1c,
    /// Estimated glomerular filtration rate.
    Egfr,
    /// Body weight.
    Weight,
    /// Fasting plasma glucose.
    Glucose,
    /// Serum potassium.
    Potassium,
    /// Serum creatinine.
    Creatinine,
    /// Creatine kinase (statin side effects).
    CreatineKinase,
    /// Alanine aminotransferase (ALAT).
    Alt,
    /// NT-proBNP (heart failure follow-up); reported as a mass concentration in ng/L.
    NtProBnp,
    /// HDL cholesterol.
    HdlCholesterol,
    /// Triglycerides.
    Triglycerides,
    /// Non-HDL cholesterol.
    NonHdlCholesterol,
    /// Albumin/creatinine ratio in urine.
    UrineAlbuminCreatinineRatio,
    /// Serum sodium.
    Sodium,
    /// Heart rate.
    HeartRate,
    /// Body mass index, as given by the practitioner (not computed from weight and height).
    Bmi,
    /// Left ventricular ejection fraction.
    Lvef,
}

/// Unit, decimals and plausible range (in scaled units) of a measure.
struct Spec {
    unit: &'static str,
    decimals: u32,
    min: i64,
    max: i64,
    name: &'static str,
    code: &'static str,
    loinc: &'static str,
}

impl Measure {
    /// Every measure.
    pub const ALL: [Measure; 21] = [
        Measure::LdlCholesterol,
        Measure::TotalCholesterol,
        Measure::SystolicBloodPressure,
        Measure::DiastolicBloodPressure,
        Measure::Hba1c,
        Measure::Egfr,
        Measure::Weight,
        Measure::Glucose,
        Measure::Potassium,
        Measure::Creatinine,
        Measure::CreatineKinase,
        Measure::Alt,
        Measure::NtProBnp,
        Measure::HdlCholesterol,
        Measure::Triglycerides,
        Measure::NonHdlCholesterol,
        Measure::UrineAlbuminCreatinineRatio,
        Measure::Sodium,
        Measure::HeartRate,
        Measure::Bmi,
        Measure::Lvef,
    ];

    fn spec(self) -> Spec {
        // Dutch labs report mmol/L: the LOINC codes are those for moles per volume, except
        // NT-proBNP (ng/L, a mass concentration). Sources are listed in docs/measures.md.
        let s = |unit, decimals, min, max, name, code, loinc| Spec {
            unit,
            decimals,
            min,
            max,
            name,
            code,
            loinc,
        };
        match self {
            Measure::LdlCholesterol => s("mmol/L", 1, 1, 200, "LDL cholesterol", "ldl", "22748-8"),
            Measure::TotalCholesterol => s(
                "mmol/L",
                1,
                5,
                300,
                "total cholesterol",
                "total_cholesterol",
                "14647-2",
            ),
            Measure::SystolicBloodPressure => s(
                "mm[Hg]",
                0,
                50,
                300,
                "systolic blood pressure",
                "systolic_bp",
                "8480-6",
            ),
            Measure::DiastolicBloodPressure => s(
                "mm[Hg]",
                0,
                20,
                200,
                "diastolic blood pressure",
                "diastolic_bp",
                "8462-4",
            ),
            Measure::Hba1c => s("mmol/mol", 0, 10, 200, "HbA1c", "hba1c", "59261-8"),
            Measure::Egfr => s("mL/min/{1.73_m2}", 0, 1, 200, "eGFR", "egfr", "62238-1"),
            Measure::Weight => s("kg", 1, 10, 5000, "weight", "weight", "29463-7"),
            Measure::Glucose => s("mmol/L", 1, 5, 500, "glucose", "glucose", "14771-0"),
            Measure::Potassium => s("mmol/L", 1, 10, 100, "potassium", "potassium", "2823-3"),
            Measure::Creatinine => s("umol/L", 0, 10, 3000, "creatinine", "creatinine", "14682-9"),
            Measure::CreatineKinase => s("U/L", 0, 1, 100_000, "creatine kinase", "ck", "2157-6"),
            Measure::Alt => s("U/L", 0, 1, 10_000, "ALAT", "alt", "1742-6"),
            Measure::NtProBnp => s("ng/L", 0, 1, 100_000, "NT-proBNP", "nt_probnp", "33762-6"),
            Measure::HdlCholesterol => s("mmol/L", 2, 10, 500, "HDL cholesterol", "hdl", "14646-4"),
            Measure::Triglycerides => s(
                "mmol/L",
                1,
                1,
                500,
                "triglycerides",
                "triglycerides",
                "14927-8",
            ),
            Measure::NonHdlCholesterol => s(
                "mmol/L",
                1,
                5,
                250,
                "non-HDL cholesterol",
                "non_hdl",
                "70204-3",
            ),
            Measure::UrineAlbuminCreatinineRatio => s(
                "mg/mmol",
                1,
                0,
                5000,
                "urine albumin/creatinine ratio",
                "uacr",
                "32294-1",
            ),
            Measure::Sodium => s("mmol/L", 0, 100, 180, "sodium", "sodium", "2951-2"),
            Measure::HeartRate => s("/min", 0, 20, 250, "heart rate", "heart_rate", "8867-4"),
            Measure::Bmi => s("kg/m2", 1, 100, 800, "BMI", "bmi", "39156-5"),
            Measure::Lvef => s("%", 0, 5, 90, "LVEF", "lvef", "10230-1"),
        }
    }

    /// The one UCUM unit this measure is recorded in.
    pub fn unit(self) -> &'static str {
        self.spec().unit
    }

    /// The unit as clinicians write it, for text people read: `mmHg` for UCUM's `mm[Hg]`,
    /// `µmol/L`, `kg/m²`, `mL/min/1.73 m²`; the UCUM code ([`Measure::unit`]) everywhere a
    /// program reads it.
    pub fn display_unit(self) -> &'static str {
        match self.unit() {
            "mm[Hg]" => "mmHg",
            "umol/L" => "µmol/L",
            "kg/m2" => "kg/m²",
            "mL/min/{1.73_m2}" => "mL/min/1.73 m²",
            other => other,
        }
    }

    /// Decimals kept: the value is stored as an integer of 10^-decimals units.
    pub fn decimals(self) -> u32 {
        self.spec().decimals
    }

    /// A human name ("LDL cholesterol").
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The snake-case code used in JSON and on the command line (`ldl`, `systolic_bp`).
    pub fn code(self) -> &'static str {
        self.spec().code
    }

    /// The LOINC code of the observation (`22748-8` for LDL cholesterol in mmol/L).
    pub fn loinc(self) -> &'static str {
        self.spec().loinc
    }

    /// Parses the snake-case code.
    pub fn parse(code: &str) -> Result<Measure, InvalidInput> {
        Measure::ALL
            .into_iter()
            .find(|m| m.code() == code)
            .ok_or_else(|| {
                let known: Vec<&str> = Measure::ALL.iter().map(|m| m.code()).collect();
                InvalidInput::new(
                    "measure",
                    format!("{code:?} is unknown; use one of {}", known.join(", ")),
                )
            })
    }

    /// The plausible range in scaled units, inclusive.
    pub fn range_scaled(self) -> (i64, i64) {
        let s = self.spec();
        (s.min, s.max)
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value of a measure, in fixed point, within the measure's plausible range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Quantity {
    measure: Measure,
    scaled: i64,
}

impl Quantity {
    /// A quantity from its scaled integer (`18` for 1.8 mmol/L LDL); checks the range.
    pub fn new(measure: Measure, scaled: i64) -> Result<Self, InvalidInput> {
        let (min, max) = measure.range_scaled();
        if scaled < min || scaled > max {
            return Err(InvalidInput::new(
                "value",
                format!(
                    "{} of {} {} is outside the plausible range {} to {} {}",
                    measure.name(),
                    format_scaled(scaled, measure.decimals()),
                    measure.unit(),
                    format_scaled(min, measure.decimals()),
                    format_scaled(max, measure.decimals()),
                    measure.unit()
                ),
            ));
        }
        Ok(Self { measure, scaled })
    }

    /// Parses a decimal text such as `"1.8"` in the given unit, which must be the measure's unit.
    pub fn parse(measure: Measure, value: &str, unit: &str) -> Result<Self, InvalidInput> {
        if unit != measure.unit() {
            return Err(InvalidInput::new(
                "unit",
                format!(
                    "{unit:?} is not accepted for {}; record it in {}",
                    measure.name(),
                    measure.unit()
                ),
            ));
        }
        let scaled = parse_decimal(value, measure.decimals()).map_err(|why| {
            InvalidInput::new("value", format!("{value:?} for {}: {why}", measure.name()))
        })?;
        Self::new(measure, scaled)
    }

    /// The measure.
    pub fn measure(&self) -> Measure {
        self.measure
    }

    /// The value in units of 10^-decimals.
    pub fn scaled(&self) -> i64 {
        self.scaled
    }

    /// The value as decimal text without unit (`"1.8"`).
    pub fn value_text(&self) -> String {
        format_scaled(self.scaled, self.measure.decimals())
    }
}

/// The value and the unit as clinicians write it ("144 mmHg"): for text people read.
impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.value_text(), self.measure.display_unit())
    }
}

/// Formats a scaled integer with `decimals` decimals.
pub fn format_scaled(scaled: i64, decimals: u32) -> String {
    if decimals == 0 {
        return scaled.to_string();
    }
    let factor = 10i64.pow(decimals);
    let sign = if scaled < 0 { "-" } else { "" };
    let abs = scaled.unsigned_abs();
    let factor = factor.unsigned_abs();
    format!(
        "{sign}{}.{:0width$}",
        abs / factor,
        abs % factor,
        width = decimals as usize
    )
}

/// Parses a plain decimal (`"140"`, `"1.8"`) into an integer of 10^-decimals units.
fn parse_decimal(raw: &str, decimals: u32) -> Result<i64, String> {
    let raw = raw.trim();
    let (neg, body) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let digits_ok = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits_ok(int) || !digits_ok(frac) || int.len() > 12 {
        return Err("is not a plain decimal number such as 1.8".into());
    }
    if frac.len() > decimals as usize {
        return Err(format!("has more than {decimals} decimal(s)"));
    }
    let mut scaled: i64 = int.parse().map_err(|_| "is too large".to_string())?;
    for i in 0..decimals as usize {
        let d = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        scaled = scaled * 10 + d;
    }
    Ok(if neg { -scaled } else { scaled })
}

/// How a value is compared with a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Comparator {
    /// ≤
    AtMost,
    /// <
    Below,
    /// ≥
    AtLeast,
    /// >
    Above,
}

impl Comparator {
    /// True when `value` meets a target of `target` under this comparator.
    pub fn holds(self, value: i64, target: i64) -> bool {
        match self {
            Comparator::AtMost => value <= target,
            Comparator::Below => value < target,
            Comparator::AtLeast => value >= target,
            Comparator::Above => value > target,
        }
    }

    /// The mathematical symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::AtMost => "≤",
            Comparator::Below => "<",
            Comparator::AtLeast => "≥",
            Comparator::Above => ">",
        }
    }

    /// Parses `<=`, `≤`, `<`, `>=`, `≥`, `>` or the snake-case names.
    pub fn parse(raw: &str) -> Result<Self, InvalidInput> {
        Ok(match raw {
            "<=" | "≤" | "at_most" => Comparator::AtMost,
            "<" | "below" => Comparator::Below,
            ">=" | "≥" | "at_least" => Comparator::AtLeast,
            ">" | "above" => Comparator::Above,
            _ => {
                return Err(InvalidInput::new(
                    "comparator",
                    format!("{raw:?} is unknown; use <=, <, >= or >"),
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldl_is_parsed_in_tenths() {
        let q = Quantity::parse(Measure::LdlCholesterol, "1.8", "mmol/L").unwrap();
        assert_eq!(q.scaled(), 18);
        assert_eq!(q.to_string(), "1.8 mmol/L");
    }

    #[test]
    fn wrong_unit_names_the_right_one() {
        let err = Quantity::parse(Measure::LdlCholesterol, "70", "mg/dL").unwrap_err();
        assert!(err.to_string().contains("mmol/L"), "{err}");
    }

    #[test]
    fn out_of_range_names_measure_value_and_range() {
        let err = Quantity::parse(Measure::SystolicBloodPressure, "400", "mm[Hg]").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("systolic blood pressure"), "{text}");
        assert!(text.contains("400"), "{text}");
        assert!(text.contains("50 to 300"), "{text}");
    }

    #[test]
    fn too_many_decimals_and_garbage_are_rejected() {
        assert!(Quantity::parse(Measure::LdlCholesterol, "1.85", "mmol/L").is_err());
        assert!(Quantity::parse(Measure::LdlCholesterol, "1,8", "mmol/L").is_err());
        assert!(Quantity::parse(Measure::LdlCholesterol, "NaN", "mmol/L").is_err());
        assert!(Quantity::parse(Measure::LdlCholesterol, "", "mmol/L").is_err());
        assert!(Quantity::parse(Measure::Weight, "99999999999999999", "kg").is_err());
    }

    #[test]
    fn formatting_round_trips() {
        for m in Measure::ALL {
            let (min, max) = m.range_scaled();
            for scaled in [min, (min + max) / 2, max] {
                let q = Quantity::new(m, scaled).unwrap();
                let back = Quantity::parse(m, &q.value_text(), m.unit()).unwrap();
                assert_eq!(q, back);
            }
        }
    }

    #[test]
    fn every_measure_has_a_distinct_code_and_loinc_code() {
        let codes: std::collections::BTreeSet<_> = Measure::ALL.iter().map(|m| m.code()).collect();
        let loinc: std::collections::BTreeSet<_> = Measure::ALL.iter().map(|m| m.loinc()).collect();
        assert_eq!(codes.len(), Measure::ALL.len());
        assert_eq!(loinc.len(), Measure::ALL.len());
        for m in Measure::ALL {
            let (number, check) = m.loinc().split_once('-').unwrap();
            assert!(number.bytes().all(|b| b.is_ascii_digit()), "{m:?}");
            assert_eq!(check.len(), 1, "{m:?}");
            assert_eq!(Measure::parse(m.code()).unwrap(), m);
        }
    }

    #[test]
    fn loinc_check_digits_are_valid() {
        // LOINC check digit: Mod 10 over the number's digits (Luhn).
        for m in Measure::ALL {
            let (number, check) = m.loinc().split_once('-').unwrap();
            let mut sum = 0;
            for (i, b) in number.bytes().rev().enumerate() {
                let d = u32::from(b - b'0');
                sum += if i % 2 == 0 {
                    let x = d * 2;
                    x / 10 + x % 10
                } else {
                    d
                };
            }
            let expected = (10 - sum % 10) % 10;
            assert_eq!(check, expected.to_string(), "{m:?} {}", m.loinc());
        }
    }

    #[test]
    fn docs_measures_lists_every_measure_with_its_index_unit_and_loinc_code() {
        let doc = include_str!("../../docs/measures.md");
        for (index, m) in Measure::ALL.iter().enumerate() {
            let row = format!("| {index} | `{}` |", m.code());
            let line = doc
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("docs/measures.md has no row {row}"));
            assert!(line.contains(&format!("`{}`", m.unit())), "{line}");
            assert!(line.contains(&format!("| {} |", m.loinc())), "{line}");
        }
    }

    #[test]
    fn nt_probnp_is_recorded_in_ng_per_litre() {
        let q = Quantity::parse(Measure::NtProBnp, "1250", "ng/L").unwrap();
        assert_eq!(q.to_string(), "1250 ng/L");
        assert!(Quantity::parse(Measure::NtProBnp, "1250", "pmol/L").is_err());
    }

    #[test]
    fn comparators_hold_as_their_symbols_say() {
        assert!(Comparator::AtMost.holds(18, 18));
        assert!(!Comparator::Below.holds(18, 18));
        assert!(Comparator::AtLeast.holds(60, 60));
        assert!(!Comparator::Above.holds(60, 60));
    }
}
