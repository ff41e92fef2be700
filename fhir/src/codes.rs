//! The code systems, naming systems and extensions of careledger's FHIR, each URL once.
//!
//! The Dutch systems are those Nictiz's profiles expect; careledger's own (roles, lines, leads,
//! reasons, event kinds and the extensions) live under [`OWN`] and are defined in docs/fhir.md.

use careledger_core::event::{ChangeReason, DoseUnit, GoalOutcome, MeasurementSource, TargetBasis};
use careledger_core::quantity::Comparator;
use careledger_core::role::{Lead, Line, Practitioner};

/// The citizen service number (BSN).
pub const BSN: &str = "http://fhir.nl/fhir/NamingSystem/bsn";
/// AGB codes of practitioners and organisations (Vektis).
pub const AGB: &str = "http://fhir.nl/fhir/NamingSystem/agb-z";
/// ATC, the WHO's anatomical therapeutic chemical classification.
pub const ATC: &str = "http://www.whocc.no/atc";
/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// UCUM units.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// SNOMED CT.
pub const SNOMED: &str = "http://snomed.info/sct";
/// ICPC-1-NL, the Dutch general-practice classification.
pub const ICPC_1_NL: &str = "http://hl7.org/fhir/sid/icpc-1-nl";
/// ICD-10.
pub const ICD_10: &str = "http://hl7.org/fhir/sid/icd-10";
/// HL7's observation categories.
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
/// HL7's clinical status of a condition.
pub const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
/// HL7's verification status of a condition.
pub const CONDITION_VERIFICATION: &str =
    "http://terminology.hl7.org/CodeSystem/condition-ver-status";
/// HL7's condition categories.
pub const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
/// HL7's clinical status of an allergy or intolerance.
pub const ALLERGY_CLINICAL: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
/// HL7's verification status of an allergy or intolerance.
pub const ALLERGY_VERIFICATION: &str =
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
/// HL7's goal achievement codes.
pub const GOAL_ACHIEVEMENT: &str = "http://terminology.hl7.org/CodeSystem/goal-achievement";
/// HL7's provenance participant types.
pub const PROVENANCE_PARTICIPANT_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/provenance-participant-type";

/// The root of careledger's own systems and definitions.
pub const OWN: &str = "https://careledger.example/fhir";
/// Patients careledger knows by an id that is not a BSN.
pub const PATIENT_ID: &str = "https://careledger.example/fhir/NamingSystem/patient-id";
/// careledger's actor ids.
pub const ACTOR_ID: &str = "https://careledger.example/fhir/NamingSystem/actor-id";
/// A lab order's id, as its writer gave it.
pub const LAB_ORDER_ID: &str = "https://careledger.example/fhir/NamingSystem/lab-order-id";
/// A notification's id (`n-42-second`).
pub const NOTIFICATION_ID: &str = "https://careledger.example/fhir/NamingSystem/notification-id";
/// A ledger event by its global position.
pub const LEDGER_POSITION: &str = "https://careledger.example/fhir/NamingSystem/ledger-position";
/// A ledger event by its hash (hex of the 32-byte hash of `docs/hash-format.md`).
pub const EVENT_HASH: &str = "https://careledger.example/fhir/NamingSystem/event-hash";
/// Care roles (`gp`, `cardiologist`, ...).
pub const ROLE: &str = "https://careledger.example/fhir/CodeSystem/role";
/// Why a medication was changed or stopped.
pub const CHANGE_REASON: &str = "https://careledger.example/fhir/CodeSystem/change-reason";
/// The event kinds of the catalogue (`target_set`, ...).
pub const EVENT_KIND: &str = "https://careledger.example/fhir/CodeSystem/event-kind";
/// The kinds of care plan.
pub const PLAN_CATEGORY: &str = "https://careledger.example/fhir/CodeSystem/plan-category";

/// Extension: the line of a care-team member, a prescriber or a target's setter
/// (`first`, `second`, `patient`, `care_group`).
pub const EXT_LINE: &str = "https://careledger.example/fhir/StructureDefinition/line";
/// Extension: what a member leads (`cvrm`, `organ-disease`, `none`).
pub const EXT_LEAD: &str = "https://careledger.example/fhir/StructureDefinition/lead";
/// Extension: main or co-practitioner (`main`, `co`, `not-applicable`).
pub const EXT_PRACTITIONER: &str =
    "https://careledger.example/fhir/StructureDefinition/practitioner-kind";
/// Extension: a target's basis (`nhg`, `esc`, `individual`).
pub const EXT_TARGET_BASIS: &str =
    "https://careledger.example/fhir/StructureDefinition/target-basis";
/// Extension: the target a target replaced (a `Quantity` with its comparator).
pub const EXT_TARGET_REPLACES: &str =
    "https://careledger.example/fhir/StructureDefinition/target-replaces";
/// Extension: a dose change or stop of a medication agreement (complex).
pub const EXT_MEDICATION_CHANGE: &str =
    "https://careledger.example/fhir/StructureDefinition/medication-change";
/// Extension: where a value was measured (`practice`, `hospital`, `self-measured-at-home`).
pub const EXT_MEASUREMENT_SOURCE: &str =
    "https://careledger.example/fhir/StructureDefinition/measurement-source";
/// Extension: a lab order is the annual CVRM panel.
pub const EXT_ANNUAL_PANEL: &str =
    "https://careledger.example/fhir/StructureDefinition/annual-panel";
/// Extension: an intolerance is a contra-indication, or was recorded by a stop for side effects.
pub const EXT_INTOLERANCE_KIND: &str =
    "https://careledger.example/fhir/StructureDefinition/intolerance-kind";
/// Extension: an intolerance recorded by a stop of the medication for side effects.
pub const EXT_RECORDED_BY_STOP: &str =
    "https://careledger.example/fhir/StructureDefinition/recorded-by-stop";
/// Extension: the acknowledgement of a notification (complex: `by`, `position`).
pub const EXT_ACKNOWLEDGEMENT: &str =
    "https://careledger.example/fhir/StructureDefinition/acknowledgement";
/// Extension: the shared-care arrangement of a plan.
pub const EXT_SHARED_CARE: &str = "https://careledger.example/fhir/StructureDefinition/shared-care";
/// Extension: a test of the annual CVRM panel (a LOINC `Coding`).
pub const EXT_ANNUAL_PANEL_TEST: &str =
    "https://careledger.example/fhir/StructureDefinition/annual-panel-test";
/// Sub-extension: the ledger position of the event that made a change or acknowledgement.
pub const EXT_POSITION: &str = "position";

/// Every code system and naming system URL a resource may carry, for the test that holds them
/// to what Dutch systems expect.
pub const SYSTEMS: &[&str] = &[
    BSN,
    AGB,
    ATC,
    LOINC,
    UCUM,
    SNOMED,
    ICPC_1_NL,
    ICD_10,
    OBSERVATION_CATEGORY,
    CONDITION_CLINICAL,
    CONDITION_VERIFICATION,
    CONDITION_CATEGORY,
    ALLERGY_CLINICAL,
    ALLERGY_VERIFICATION,
    GOAL_ACHIEVEMENT,
    PROVENANCE_PARTICIPANT_TYPE,
    PATIENT_ID,
    ACTOR_ID,
    LAB_ORDER_ID,
    NOTIFICATION_ID,
    LEDGER_POSITION,
    EVENT_HASH,
    ROLE,
    CHANGE_REASON,
    EVENT_KIND,
    PLAN_CATEGORY,
];

/// Every extension of careledger's own, by its URL.
pub const EXTENSIONS: &[&str] = &[
    EXT_LINE,
    EXT_LEAD,
    EXT_PRACTITIONER,
    EXT_TARGET_BASIS,
    EXT_TARGET_REPLACES,
    EXT_MEDICATION_CHANGE,
    EXT_MEASUREMENT_SOURCE,
    EXT_ANNUAL_PANEL,
    EXT_INTOLERANCE_KIND,
    EXT_RECORDED_BY_STOP,
    EXT_ACKNOWLEDGEMENT,
    EXT_SHARED_CARE,
    EXT_ANNUAL_PANEL_TEST,
];

/// FHIR's comparator of a target.
pub fn comparator(c: Comparator) -> &'static str {
    match c {
        Comparator::AtMost => "<=",
        Comparator::Below => "<",
        Comparator::AtLeast => ">=",
        Comparator::Above => ">",
    }
}

/// The comparator of FHIR's code.
pub fn parse_comparator(raw: &str) -> Option<Comparator> {
    [
        Comparator::AtMost,
        Comparator::Below,
        Comparator::AtLeast,
        Comparator::Above,
    ]
    .into_iter()
    .find(|c| comparator(*c) == raw)
}

/// The code of a target's basis.
pub fn target_basis(b: TargetBasis) -> &'static str {
    match b {
        TargetBasis::NhgGuideline => "nhg",
        TargetBasis::EscGuideline => "esc",
        TargetBasis::Individual => "individual",
    }
}

/// The code of a line.
pub fn line(l: Line) -> &'static str {
    match l {
        Line::First => "first",
        Line::Second => "second",
        Line::Patient => "patient",
        Line::CareGroup => "care-group",
    }
}

/// The code of a lead.
pub fn lead(l: Lead) -> &'static str {
    match l {
        Lead::Cvrm => "cvrm",
        Lead::OrganDisease => "organ-disease",
        Lead::None => "none",
    }
}

/// The code of main or co-practitioner.
pub fn practitioner(p: Practitioner) -> &'static str {
    match p {
        Practitioner::Main => "main",
        Practitioner::Co => "co",
        Practitioner::NotApplicable => "not-applicable",
    }
}

/// The code of a change reason, and its words for `Other`.
pub fn change_reason(r: &ChangeReason) -> (&'static str, String) {
    match r {
        ChangeReason::SideEffects => ("side-effects", "side effects".into()),
        ChangeReason::TargetNotReached => ("target-not-reached", "target not reached".into()),
        ChangeReason::PatientPreference => ("patient-preference", "patient preference".into()),
        ChangeReason::Other(words) => ("other", words.as_str().to_owned()),
    }
}

/// The code of where a value was measured.
pub fn measurement_source(s: MeasurementSource) -> &'static str {
    match s {
        MeasurementSource::Practice => "practice",
        MeasurementSource::Hospital => "hospital",
        MeasurementSource::SelfMeasuredAtHome => "self-measured-at-home",
    }
}

/// The UCUM code and the unit for people of a dose unit; a tablet is UCUM's annotation
/// `{tablet}`.
pub fn dose_unit(u: DoseUnit) -> (&'static str, &'static str) {
    match u {
        DoseUnit::Mg => ("mg", "mg"),
        DoseUnit::Microgram => ("ug", "microgram"),
        DoseUnit::Ml => ("mL", "mL"),
        DoseUnit::Unit => ("[iU]", "IU"),
        DoseUnit::Tablet => ("{tablet}", "tablet"),
    }
}

/// The lifecycle status and achievement of a closed lifestyle goal.
pub fn goal_outcome(o: GoalOutcome) -> (&'static str, &'static str) {
    match o {
        GoalOutcome::Achieved => ("completed", "achieved"),
        GoalOutcome::Abandoned => ("cancelled", "not-achieved"),
        GoalOutcome::Replaced => ("cancelled", "no-progress"),
    }
}
