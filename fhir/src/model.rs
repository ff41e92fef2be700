//! The FHIR R4 (4.0.1) JSON shapes careledger writes, and only those: each struct holds the
//! elements careledger fills, named as the specification names them, so that serde writes the
//! JSON of <https://hl7.org/fhir/R4/json.html> and reads it back.
//!
//! Absent elements are left out (FHIR forbids `null` and empty arrays); decimals are
//! [`Decimal`], written from fixed point.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A FHIR `decimal`, kept in fixed point: `scaled` in units of 10^-`decimals`. Written as a
/// JSON number with exactly `decimals` decimals (`1.80` stays `1.80`: FHIR keeps precision).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decimal {
    scaled: i64,
    decimals: u32,
}

impl Decimal {
    /// `scaled` units of 10^-`decimals`.
    pub fn new(scaled: i64, decimals: u32) -> Self {
        Self { scaled, decimals }
    }

    /// The value in units of 10^-`decimals`, rounded toward zero when this one has more.
    pub fn scaled_to(&self, decimals: u32) -> i64 {
        if decimals >= self.decimals {
            self.scaled * 10i64.pow(decimals - self.decimals)
        } else {
            self.scaled / 10i64.pow(self.decimals - decimals)
        }
    }

    /// Parses a JSON number's text (`-1.80`, `40`); exponents are refused.
    pub fn parse(raw: &str) -> Option<Self> {
        let (negative, digits) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let decimals = u32::try_from(frac.len()).ok()?;
        let magnitude: i64 = format!("{int}{frac}").parse().ok()?;
        Some(Self::new(
            if negative { -magnitude } else { magnitude },
            decimals,
        ))
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&careledger_core::quantity::format_scaled(
            self.scaled,
            self.decimals,
        ))
    }
}

impl Serialize for Decimal {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Read through serde_json's number: a resource inside the tagged `Resource` is buffered
        // before it is read, which `RawValue` does not survive. The number's shortest text is
        // the decimal written (`1.80` reads back as `1.8`: the same value).
        let number: serde_json::Number = Deserialize::deserialize(d)?;
        let text = number.to_string();
        Decimal::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text} is not a FHIR decimal")))
    }
}

/// `Meta`: the version of a resource and when it last changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// The ledger position of the last event that changed the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// When the ledger recorded that event (FHIR `instant`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
}

impl Meta {
    /// Nothing known: left out of the JSON (FHIR allows no empty object).
    pub fn is_empty(&self) -> bool {
        self.version_id.is_none() && self.last_updated.is_none()
    }
}

/// `Coding`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Coding {
    /// The code system's URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Coding {
    /// A code of `system` with its display name.
    pub fn new(system: &str, code: &str, display: &str) -> Self {
        Self {
            system: Some(system.to_owned()),
            code: Some(code.to_owned()),
            display: (!display.is_empty()).then(|| display.to_owned()),
        }
    }
}

/// `CodeableConcept`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CodeableConcept {
    /// The codes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    /// In words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl CodeableConcept {
    /// One code.
    pub fn coded(coding: Coding) -> Self {
        Self {
            coding: vec![coding],
            text: None,
        }
    }

    /// Words only.
    pub fn text(text: &str) -> Self {
        Self {
            coding: Vec::new(),
            text: Some(text.to_owned()),
        }
    }

    /// The code of `system`, if the concept has one.
    pub fn code_of(&self, system: &str) -> Option<&str> {
        self.coding
            .iter()
            .find(|c| c.system.as_deref() == Some(system))
            .and_then(|c| c.code.as_deref())
    }
}

/// `Identifier`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Identifier {
    /// `official`, `usual`, ...
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// The namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Identifier {
    /// `value` in `system`.
    pub fn new(system: &str, value: &str) -> Self {
        Self {
            use_: None,
            system: Some(system.to_owned()),
            value: Some(value.to_owned()),
        }
    }
}

/// `Reference`: a literal reference (`Goal/abc`), a logical one (an identifier), or both.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// `Type/id`, relative to the FHIR base.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The resource type of a logical reference.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// A logical reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    /// For people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Reference {
    /// `Type/id`.
    pub fn to(resource_type: &str, id: &str) -> Self {
        Self {
            reference: Some(format!("{resource_type}/{id}")),
            ..Self::default()
        }
    }

    /// `Type/id` with a display name.
    pub fn named(resource_type: &str, id: &str, display: &str) -> Self {
        Self {
            display: Some(display.to_owned()),
            ..Self::to(resource_type, id)
        }
    }

    /// A logical reference to a resource of `resource_type` by its identifier.
    pub fn logical(resource_type: &str, identifier: Identifier) -> Self {
        Self {
            type_: Some(resource_type.to_owned()),
            identifier: Some(identifier),
            ..Self::default()
        }
    }

    /// The id of a literal reference to `resource_type` (`Goal/abc` gives `abc`).
    pub fn id_of(&self, resource_type: &str) -> Option<&str> {
        self.reference
            .as_deref()?
            .strip_prefix(resource_type)?
            .strip_prefix('/')
    }
}

/// `Quantity`, in UCUM when `system` says so.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quantity {
    /// The value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Decimal>,
    /// `<`, `<=`, `>=`, `>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comparator: Option<String>,
    /// The unit for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The unit's system (UCUM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The unit's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// `Period`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Period {
    /// From.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Until.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// `HumanName`, as text: careledger keeps display names whole.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HumanName {
    /// The name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `Annotation`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// The note.
    pub text: String,
}

/// `Extension`, with the value types careledger uses (FHIR names the element by its type:
/// `valueCode`, `valueString`, ...). A complex extension holds `extension` instead.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    /// What the extension means: its definition's canonical URL, or a sub-extension's name.
    pub url: String,
    /// Sub-extensions of a complex extension.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// A code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_code: Option<String>,
    /// Words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    /// Yes or no.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_boolean: Option<bool>,
    /// A whole number of at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_positive_int: Option<u64>,
    /// A coded value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_coding: Option<Coding>,
    /// A quantity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_quantity: Option<Quantity>,
    /// A reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_reference: Option<Reference>,
    /// A date and time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_date_time: Option<String>,
}

impl Extension {
    fn at(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            ..Self::default()
        }
    }

    /// A code.
    pub fn code(url: &str, code: &str) -> Self {
        Self {
            value_code: Some(code.to_owned()),
            ..Self::at(url)
        }
    }

    /// Words.
    pub fn string(url: &str, text: &str) -> Self {
        Self {
            value_string: Some(text.to_owned()),
            ..Self::at(url)
        }
    }

    /// Yes or no.
    pub fn boolean(url: &str, value: bool) -> Self {
        Self {
            value_boolean: Some(value),
            ..Self::at(url)
        }
    }

    /// A positive whole number.
    pub fn positive_int(url: &str, value: u64) -> Self {
        Self {
            value_positive_int: Some(value),
            ..Self::at(url)
        }
    }

    /// A coded value.
    pub fn coding(url: &str, value: Coding) -> Self {
        Self {
            value_coding: Some(value),
            ..Self::at(url)
        }
    }

    /// A quantity.
    pub fn quantity(url: &str, value: Quantity) -> Self {
        Self {
            value_quantity: Some(value),
            ..Self::at(url)
        }
    }

    /// A reference.
    pub fn reference(url: &str, value: Reference) -> Self {
        Self {
            value_reference: Some(value),
            ..Self::at(url)
        }
    }

    /// A date and time.
    pub fn date_time(url: &str, value: String) -> Self {
        Self {
            value_date_time: Some(value),
            ..Self::at(url)
        }
    }

    /// A complex extension of sub-extensions.
    pub fn complex(url: &str, parts: Vec<Extension>) -> Self {
        Self {
            extension: parts,
            ..Self::at(url)
        }
    }
}

/// The extension at `url` among `extensions`.
pub fn extension<'e>(extensions: &'e [Extension], url: &str) -> Option<&'e Extension> {
    extensions.iter().find(|e| e.url == url)
}

/// `Patient`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Patient {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// The BSN, or the id careledger knows the patient by.
    pub identifier: Vec<Identifier>,
}

/// `Practitioner`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Practitioner {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// The AGB code, and careledger's actor id.
    pub identifier: Vec<Identifier>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name: Vec<HumanName>,
}

/// `PractitionerRole`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PractitionerRole {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// Line, lead, main or co-practitioner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The practitioner.
    pub practitioner: Reference,
    /// The organisation, by its AGB code, when the ledger knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<Reference>,
    /// The role.
    pub code: Vec<CodeableConcept>,
}

/// A participant of a `CareTeam`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CareTeamParticipant {
    /// Line, lead, main or co-practitioner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The role.
    pub role: Vec<CodeableConcept>,
    /// The member: a `PractitionerRole`, or the `Patient`.
    pub member: Reference,
    /// The organisation the member acts for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Reference>,
    /// Since when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
}

/// `CareTeam`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CareTeam {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// `active`.
    pub status: String,
    /// The patient.
    pub subject: Reference,
    /// The members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participant: Vec<CareTeamParticipant>,
}

/// An activity of a `CarePlan`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CarePlanActivity {
    /// The request that carries it out.
    pub reference: Reference,
}

/// `CarePlan`: the individual care plan (IZP).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CarePlan {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// The shared-care arrangement, the annual panel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// `active`.
    pub status: String,
    /// `plan`.
    pub intent: String,
    /// What kind of plan.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<CodeableConcept>,
    /// Its title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The patient.
    pub subject: Reference,
    /// When the plan was founded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Who founded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub author: Option<Reference>,
    /// The care team.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub care_team: Vec<Reference>,
    /// The problems it addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<Reference>,
    /// Targets and lifestyle goals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub goal: Vec<Reference>,
    /// Medication and lab orders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activity: Vec<CarePlanActivity>,
}

/// A target of a `Goal`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GoalTarget {
    /// The measure (LOINC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measure: Option<CodeableConcept>,
    /// The target value with its comparator, in UCUM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail_quantity: Option<Quantity>,
}

/// `Goal`: a target value of a measure, or a lifestyle goal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Goal {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// Basis, the default it replaces, the setter's line and lead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// `active`, `completed`, `cancelled`, `entered-in-error`.
    pub lifecycle_status: String,
    /// Achieved or not, for a closed lifestyle goal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub achievement_status: Option<CodeableConcept>,
    /// In words.
    pub description: CodeableConcept,
    /// The patient.
    pub subject: Reference,
    /// The target.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<GoalTarget>,
    /// When the status last changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_date: Option<String>,
    /// Why, in the setter's words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// Who set it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expressed_by: Option<Reference>,
}

/// A dose and rate of a `Dosage`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DoseAndRate {
    /// The dose per administration.
    pub dose_quantity: Quantity,
}

/// `Dosage`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dosage {
    /// Dose and frequency in words (`40 mg 1x daily`).
    pub text: String,
    /// How often, as recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient_instruction: Option<String>,
    /// The dose.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dose_and_rate: Vec<DoseAndRate>,
}

/// `MedicationRequest`: one medication agreement, from its start to its stop.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MedicationRequest {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// The prescriber's line, each dose change and the stop.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// `active`, `stopped`, `entered-in-error`.
    pub status: String,
    /// Why it was stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<CodeableConcept>,
    /// `order`.
    pub intent: String,
    /// The medication (ATC).
    pub medication_codeable_concept: CodeableConcept,
    /// The patient.
    pub subject: Reference,
    /// When it was started (clinical time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authored_on: Option<String>,
    /// Who started it.
    pub requester: Reference,
    /// The indication in words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reason_code: Vec<CodeableConcept>,
    /// The indication as a problem on the list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reason_reference: Vec<Reference>,
    /// The dose in force (the last dose change that stands).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dosage_instruction: Vec<Dosage>,
}

/// `ServiceRequest`: a lab order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequest {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// Part of the annual panel or not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The writer's order id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requisition: Option<Identifier>,
    /// `active`, `completed`, `entered-in-error`.
    pub status: String,
    /// `order`.
    pub intent: String,
    /// `laboratory`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<CodeableConcept>,
    /// What is ordered, in words.
    pub code: CodeableConcept,
    /// Each test ordered (LOINC).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub order_detail: Vec<CodeableConcept>,
    /// The patient.
    pub subject: Reference,
    /// When ordered (clinical time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authored_on: Option<String>,
    /// Who ordered.
    pub requester: Reference,
}

/// `Observation`: a lab result, a measurement or the smoking status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// Where it was measured (home self-measurement).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The lab order it answers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub based_on: Vec<Reference>,
    /// `final`, `entered-in-error`.
    pub status: String,
    /// `laboratory`, `vital-signs`, `social-history`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub category: Vec<CodeableConcept>,
    /// What was measured (LOINC).
    pub code: CodeableConcept,
    /// The patient.
    pub subject: Reference,
    /// When it was taken (clinical time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_date_time: Option<String>,
    /// When the ledger recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued: Option<String>,
    /// Who recorded it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub performer: Vec<Reference>,
    /// The value, in UCUM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_quantity: Option<Quantity>,
    /// A coded value (smoking status).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_codeable_concept: Option<CodeableConcept>,
    /// How it was taken, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<CodeableConcept>,
}

/// A reaction of an `AllergyIntolerance`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Reaction {
    /// The reaction in words.
    pub manifestation: Vec<CodeableConcept>,
}

/// `AllergyIntolerance`: an intolerance or contra-indication.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllergyIntolerance {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// Intolerance or contra-indication; recorded by a stop for side effects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// `active`; absent when entered in error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clinical_status: Option<CodeableConcept>,
    /// `confirmed` or `entered-in-error`.
    pub verification_status: CodeableConcept,
    /// `intolerance` for an intolerance; absent for a contra-indication.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// `medication`.
    pub category: Vec<String>,
    /// The substance or group (ATC).
    pub code: CodeableConcept,
    /// The patient.
    pub patient: Reference,
    /// When it was recorded (clinical time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_date: Option<String>,
    /// Who recorded it.
    pub recorder: Reference,
    /// The reaction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reaction: Vec<Reaction>,
}

/// `Condition`: a problem on the problem list.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// `active` or `resolved`; absent when entered in error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clinical_status: Option<CodeableConcept>,
    /// `confirmed` or `entered-in-error`.
    pub verification_status: CodeableConcept,
    /// `problem-list-item`.
    pub category: Vec<CodeableConcept>,
    /// ICPC-1-NL or ICD-10, and the description.
    pub code: CodeableConcept,
    /// The patient.
    pub subject: Reference,
    /// When it was resolved (clinical time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abatement_date_time: Option<String>,
    /// When it was recorded (clinical time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_date: Option<String>,
    /// Who recorded it.
    pub recorder: Reference,
}

/// A payload of a `Communication`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommunicationPayload {
    /// The message.
    pub content_string: String,
}

/// `Communication`: a notify-the-other-party message and its acknowledgement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Communication {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// The recipient line, the acknowledgement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The notification's id in careledger (`n-42-second`).
    pub identifier: Vec<Identifier>,
    /// `completed`, or `stopped` when withdrawn.
    pub status: String,
    /// Why it was withdrawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<CodeableConcept>,
    /// The patient.
    pub subject: Reference,
    /// The resources the causing change produced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub about: Vec<Reference>,
    /// When it was sent (the causing event's recording).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent: Option<String>,
    /// When its recipient acknowledged it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received: Option<String>,
    /// The recipient: the patient, or a line of the care team.
    pub recipient: Vec<Reference>,
    /// Who caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<Reference>,
    /// The message.
    pub payload: Vec<CommunicationPayload>,
}

/// An agent of a `Provenance`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProvenanceAgent {
    /// `author`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<CodeableConcept>,
    /// The role acted in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub role: Vec<CodeableConcept>,
    /// Who.
    pub who: Reference,
    /// The organisation they acted for (AGB code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_behalf_of: Option<Reference>,
}

/// An entity of a `Provenance`: the ledger event itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProvenanceEntity {
    /// `source`.
    pub role: String,
    /// The event, by its ledger position or hash.
    pub what: Reference,
}

/// `Provenance`: one ledger event and what it produced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// Resource id.
    pub id: String,
    /// Version.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// The resources the event produced or changed.
    pub target: Vec<Reference>,
    /// When it happened (clinical time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_date_time: Option<String>,
    /// When the ledger recorded it.
    pub recorded: String,
    /// Why, in the actor's words.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reason: Vec<CodeableConcept>,
    /// The event kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<CodeableConcept>,
    /// Who.
    pub agent: Vec<ProvenanceAgent>,
    /// The ledger event.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entity: Vec<ProvenanceEntity>,
}

/// An issue of an `OperationOutcome`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationOutcomeIssue {
    /// `error`, `fatal`.
    pub severity: String,
    /// `not-found`, `forbidden`, `invalid`, `login`, `exception`, ...
    pub code: String,
    /// What is wrong and how to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<String>,
}

/// `OperationOutcome`: an error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OperationOutcome {
    /// The issues.
    pub issue: Vec<OperationOutcomeIssue>,
}

/// Every resource careledger writes, tagged with its `resourceType`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "resourceType")]
#[allow(clippy::large_enum_variant)]
pub enum Resource {
    /// The patient.
    Patient(Patient),
    /// A care-team member.
    Practitioner(Practitioner),
    /// A care-team member's role.
    PractitionerRole(PractitionerRole),
    /// The care team.
    CareTeam(CareTeam),
    /// The IZP.
    CarePlan(CarePlan),
    /// A target or lifestyle goal.
    Goal(Goal),
    /// A medication agreement.
    MedicationRequest(MedicationRequest),
    /// A lab order.
    ServiceRequest(ServiceRequest),
    /// A value.
    Observation(Observation),
    /// An intolerance or contra-indication.
    AllergyIntolerance(AllergyIntolerance),
    /// A problem.
    Condition(Condition),
    /// A notification.
    Communication(Communication),
    /// A ledger event.
    Provenance(Provenance),
    /// An error.
    OperationOutcome(OperationOutcome),
}

impl Resource {
    /// The resource type's name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Resource::Patient(_) => "Patient",
            Resource::Practitioner(_) => "Practitioner",
            Resource::PractitionerRole(_) => "PractitionerRole",
            Resource::CareTeam(_) => "CareTeam",
            Resource::CarePlan(_) => "CarePlan",
            Resource::Goal(_) => "Goal",
            Resource::MedicationRequest(_) => "MedicationRequest",
            Resource::ServiceRequest(_) => "ServiceRequest",
            Resource::Observation(_) => "Observation",
            Resource::AllergyIntolerance(_) => "AllergyIntolerance",
            Resource::Condition(_) => "Condition",
            Resource::Communication(_) => "Communication",
            Resource::Provenance(_) => "Provenance",
            Resource::OperationOutcome(_) => "OperationOutcome",
        }
    }

    /// The resource id (none for an `OperationOutcome`).
    pub fn id(&self) -> Option<&str> {
        Some(match self {
            Resource::Patient(r) => &r.id,
            Resource::Practitioner(r) => &r.id,
            Resource::PractitionerRole(r) => &r.id,
            Resource::CareTeam(r) => &r.id,
            Resource::CarePlan(r) => &r.id,
            Resource::Goal(r) => &r.id,
            Resource::MedicationRequest(r) => &r.id,
            Resource::ServiceRequest(r) => &r.id,
            Resource::Observation(r) => &r.id,
            Resource::AllergyIntolerance(r) => &r.id,
            Resource::Condition(r) => &r.id,
            Resource::Communication(r) => &r.id,
            Resource::Provenance(r) => &r.id,
            Resource::OperationOutcome(_) => return None,
        })
    }

    /// The resource's version, to fill in.
    pub fn meta_mut(&mut self) -> Option<&mut Meta> {
        Some(match self {
            Resource::Patient(r) => &mut r.meta,
            Resource::Practitioner(r) => &mut r.meta,
            Resource::PractitionerRole(r) => &mut r.meta,
            Resource::CareTeam(r) => &mut r.meta,
            Resource::CarePlan(r) => &mut r.meta,
            Resource::Goal(r) => &mut r.meta,
            Resource::MedicationRequest(r) => &mut r.meta,
            Resource::ServiceRequest(r) => &mut r.meta,
            Resource::Observation(r) => &mut r.meta,
            Resource::AllergyIntolerance(r) => &mut r.meta,
            Resource::Condition(r) => &mut r.meta,
            Resource::Communication(r) => &mut r.meta,
            Resource::Provenance(r) => &mut r.meta,
            Resource::OperationOutcome(_) => return None,
        })
    }

    /// The resource's version, if it has one.
    pub fn meta(&self) -> Option<&Meta> {
        Some(match self {
            Resource::Patient(r) => &r.meta,
            Resource::Practitioner(r) => &r.meta,
            Resource::PractitionerRole(r) => &r.meta,
            Resource::CareTeam(r) => &r.meta,
            Resource::CarePlan(r) => &r.meta,
            Resource::Goal(r) => &r.meta,
            Resource::MedicationRequest(r) => &r.meta,
            Resource::ServiceRequest(r) => &r.meta,
            Resource::Observation(r) => &r.meta,
            Resource::AllergyIntolerance(r) => &r.meta,
            Resource::Condition(r) => &r.meta,
            Resource::Communication(r) => &r.meta,
            Resource::Provenance(r) => &r.meta,
            Resource::OperationOutcome(_) => return None,
        })
    }
}

/// The search mode of a `Bundle` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BundleSearch {
    /// `match` for the patient, `include` for everything else.
    pub mode: String,
}

/// An entry of a `Bundle`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry {
    /// The resource's absolute URL: the FHIR base followed by `Type/id`.
    pub full_url: String,
    /// The resource.
    pub resource: Resource,
    /// Why it is in the bundle.
    pub search: BundleSearch,
}

/// A link of a `Bundle`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BundleLink {
    /// `self`.
    pub relation: String,
    /// The request that produced the bundle.
    pub url: String,
}

/// `Bundle` of type `searchset`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// Always `Bundle`.
    pub resource_type: String,
    /// The patient's last ledger position, and when it was recorded.
    #[serde(default, skip_serializing_if = "Meta::is_empty")]
    pub meta: Meta,
    /// `searchset`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The number of matches.
    pub total: u64,
    /// How it was asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<BundleLink>,
    /// The resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<BundleEntry>,
}

impl Bundle {
    /// The resources of one type.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.entry.iter().map(|e| &e.resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_from_fixed_point_with_their_decimals() {
        let json = |d: Decimal| serde_json::to_string(&d).unwrap();
        assert_eq!(json(Decimal::new(18, 1)), "1.8");
        assert_eq!(json(Decimal::new(180, 2)), "1.80");
        assert_eq!(json(Decimal::new(140, 0)), "140");
        assert_eq!(json(Decimal::new(40_000, 3)), "40.000");
        assert_eq!(json(Decimal::new(-5, 1)), "-0.5");
    }

    #[test]
    fn decimals_read_back_to_the_same_value() {
        for (scaled, decimals) in [(18, 1), (180, 2), (140, 0), (40_000, 3), (2_500, 3)] {
            let written = Decimal::new(scaled, decimals);
            let quantity = Quantity {
                value: Some(written),
                ..Quantity::default()
            };
            let back: Quantity =
                serde_json::from_str(&serde_json::to_string(&quantity).unwrap()).unwrap();
            assert_eq!(back.value.unwrap().scaled_to(decimals), scaled);
        }
        assert_eq!(Decimal::parse("1e5"), None);
        assert_eq!(Decimal::parse("-"), None);
    }

    #[test]
    fn a_resource_is_tagged_with_its_type_and_leaves_out_what_is_absent() {
        let patient = Resource::Patient(Patient {
            id: "0123456789abcdef".into(),
            meta: Meta::default(),
            identifier: vec![Identifier::new(
                "http://fhir.nl/fhir/NamingSystem/bsn",
                "999990007",
            )],
        });
        let json = serde_json::to_value(&patient).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "resourceType": "Patient",
                "id": "0123456789abcdef",
                "identifier": [{"system": "http://fhir.nl/fhir/NamingSystem/bsn", "value": "999990007"}]
            })
        );
        let back: Resource = serde_json::from_value(json).unwrap();
        assert_eq!(back, patient);
    }
}
