//! Every enumeration on the wire, each named in one place: the JSON names, their parsing, their
//! serde and their OpenAPI enumeration come from the same table.
//!
//! Two kinds:
//!
//! - Names core already owns (a role's `as_str`, a measure's `code`, a dose unit's `symbol`) are
//!   wrapped: the wrapper serializes, parses and lists its schema enumeration through core's
//!   table, so the API cannot drift from the command line and the messages (`core_named!`).
//! - Names only the API uses (a lead, a target basis, a trend's direction) are written here, once
//!   per variant, in `wire_enum!`: the literal becomes the serde rename (which the `ToSchema`
//!   derive reads), `as_str` and `parse`.
//!
//! Both kinds implement [`WireName`], with which request values are parsed after the body's
//! shape has been checked.

use std::fmt;

use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{PartialSchema, ToSchema};

use careledger_core::clinical as core_clinical;
use careledger_core::event as core_event;
use careledger_core::quantity as core_quantity;
use careledger_core::role as core_role;
use careledger_projections::notifications as core_notifications;
use careledger_projections::plan as core_plan;

/// A value with a JSON name: parsed from it and written as it.
pub trait WireName: Copy + PartialEq + fmt::Debug + 'static {
    /// Every value, in declaration order.
    fn all() -> Vec<Self>;
    /// The JSON name.
    fn as_str(self) -> &'static str;
    /// The value with this JSON name (or, where core accepts them, another spelling of it).
    fn parse(raw: &str) -> Option<Self>;
}

/// The JSON names of every value of `T`, for messages and schemas.
pub fn names<T: WireName>() -> Vec<&'static str> {
    T::all().into_iter().map(T::as_str).collect()
}

/// "use one of a, b, c" for messages.
pub(crate) fn one_of<T: WireName>() -> String {
    format!("use one of {}", names::<T>().join(", "))
}

/// A string schema enumerating `names`.
pub(crate) fn string_enum(names: &[&str], description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names.iter().copied()))
        .description(Some(description))
        .into()
}

/// Serde by name: a string in, a string out, with the accepted names listed when it is none of
/// them.
fn deserialize_by_name<'de, D: Deserializer<'de>, T: WireName>(d: D) -> Result<T, D::Error> {
    struct ByName<T>(std::marker::PhantomData<T>);
    impl<T: WireName> Visitor<'_> for ByName<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "one of {}", names::<T>().join(", "))
        }
        fn visit_str<E: de::Error>(self, raw: &str) -> Result<T, E> {
            T::parse(raw).ok_or_else(|| E::invalid_value(Unexpected::Str(raw), &self))
        }
    }
    d.deserialize_str(ByName(std::marker::PhantomData))
}

/// An enumeration whose names core owns: a wrapper around the core type that reads and writes
/// core's names. `$all` lists the variants, `$name` names one, `$parse` reads one, and `$schema`
/// lists what the schema accepts (the names, and where core accepts them, other spellings).
macro_rules! core_named {
    (
        $(#[$meta:meta])*
        $ty:ident($core:ty) {
            all: $all:expr,
            name: $name:expr,
            parse: $parse:expr,
            schema: $schema:expr,
            description: $description:expr $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct $ty(pub $core);

        impl WireName for $ty {
            fn all() -> Vec<Self> {
                let all: &[$core] = &$all;
                all.iter().copied().map($ty).collect()
            }
            fn as_str(self) -> &'static str {
                let name: fn($core) -> &'static str = $name;
                name(self.0)
            }
            fn parse(raw: &str) -> Option<Self> {
                let parse: fn(&str) -> Option<$core> = $parse;
                parse(raw).map($ty)
            }
        }

        impl From<$core> for $ty {
            fn from(value: $core) -> Self {
                $ty(value)
            }
        }

        impl From<$ty> for $core {
            fn from(value: $ty) -> Self {
                value.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize_by_name(d)
            }
        }

        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                let accepted: fn() -> Vec<&'static str> = $schema;
                string_enum(&accepted(), $description)
            }
        }

        impl ToSchema for $ty {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($ty))
            }
        }
    };
}

/// An enumeration only the API names: each variant with its JSON name, written once. With
/// `for core::Type`, conversions both ways are generated, and a variant added to either side
/// fails to compile until it is added to the other.
macro_rules! wire_enum {
    (
        @convert $ty:ident $core:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $json:tt ),+ $(,)?
        }
    ) => {
        impl From<$core> for $ty {
            fn from(value: $core) -> Self {
                type Core = $core;
                match value { $(Core::$variant => $ty::$variant,)+ }
            }
        }

        impl From<$ty> for $core {
            fn from(value: $ty) -> Self {
                type Core = $core;
                match value { $($ty::$variant => Core::$variant,)+ }
            }
        }
    };
    ($(#[$meta:meta])* $ty:ident for $core:ty { $($body:tt)* }) => {
        wire_enum! { $(#[$meta])* $ty { $($body)* } }
        wire_enum! { @convert $ty $core { $($body)* } }
    };
    (
        $(#[$meta:meta])*
        $ty:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $json:tt ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        pub enum $ty {
            $( $(#[$vmeta])* #[serde(rename = $json)] $variant, )+
        }

        impl WireName for $ty {
            fn all() -> Vec<Self> {
                vec![$($ty::$variant),+]
            }
            fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $json,)+ }
            }
            fn parse(raw: &str) -> Option<Self> {
                match raw { $($json => Some($ty::$variant),)+ _ => None }
            }
        }
    };
}

/// Every value of an enumeration, by name: the variants core lists nowhere are listed here, and
/// the `match` makes a variant added in core fail to compile until it is listed.
macro_rules! variants {
    ($core:ty: $($variant:ident),+ $(,)?) => {{
        type Core = $core;
        const _: fn(Core) = |value| match value { $(Core::$variant => (),)+ };
        [$(Core::$variant),+]
    }};
}

core_named! {
    /// A care-team role (`gp`, `cardiologist`, ...): core's [`core_role::Role::as_str`].
    Role(core_role::Role) {
        all: core_role::Role::ALL,
        name: core_role::Role::as_str,
        parse: core_role::Role::parse,
        schema: names::<Role>,
        description: "A care-team role; its line follows from it.",
    }
}

core_named! {
    /// A line of care (`first`, `second`, `patient`, `care_group`): core's
    /// [`core_role::Line::as_str`].
    Line(core_role::Line) {
        all: variants!(core_role::Line: First, Second, Patient, CareGroup),
        name: core_role::Line::as_str,
        parse: core_role::Line::parse,
        schema: names::<Line>,
        description: "A line of care: the GP practice (first), the hospital specialist (second), \
                      the patient, or the care group.",
    }
}

core_named! {
    /// A measure's code (`ldl`, `systolic_bp`): core's [`core_quantity::Measure::code`], in the
    /// order of `Measure::ALL`.
    MeasureCode(core_quantity::Measure) {
        all: core_quantity::Measure::ALL,
        name: core_quantity::Measure::code,
        parse: |raw| core_quantity::Measure::parse(raw).ok(),
        schema: names::<MeasureCode>,
        description: &measures_description(),
    }
}

/// The description of [`MeasureCode`]'s schema: each measure with its UCUM unit and LOINC
/// code, from core's table.
fn measures_description() -> String {
    let each: Vec<String> = careledger_core::quantity::Measure::ALL
        .iter()
        .map(|m| format!("`{}`: {} (LOINC {})", m.code(), m.unit(), m.loinc()))
        .collect();
    format!(
        "A measure's code. Each measure has one UCUM unit, fixed decimals, a plausible range and \
         a LOINC code (docs/measures.md); the unit of a value must be the measure's unit. {}.",
        each.join("; ")
    )
}

core_named! {
    /// Tobacco smoking status (`never`, `former`, `current`): core's
    /// [`core_clinical::SmokingStatus::code`].
    SmokingStatus(core_clinical::SmokingStatus) {
        all: core_clinical::SmokingStatus::ALL,
        name: core_clinical::SmokingStatus::code,
        parse: |raw| core_clinical::SmokingStatus::parse(raw).ok(),
        schema: names::<SmokingStatus>,
        description: "Tobacco smoking status (LOINC 72166-2).",
    }
}

core_named! {
    /// Intolerance or contra-indication: core's [`core_clinical::IntoleranceKind::code`].
    IntoleranceKind(core_clinical::IntoleranceKind) {
        all: variants!(core_clinical::IntoleranceKind: Intolerance, ContraIndication),
        name: core_clinical::IntoleranceKind::code,
        parse: |raw| <IntoleranceKind as WireName>::all()
            .into_iter()
            .find(|k| k.as_str() == raw)
            .map(|k| k.0),
        schema: names::<IntoleranceKind>,
        description: "An intolerance (the patient reacted badly) or a contra-indication (the \
                      substance must not be given).",
    }
}

core_named! {
    /// A problem's code system as a code (`icpc_1_nl`, `icd_10`): core's
    /// [`core_clinical::ProblemCodeSystem::code`]; the FHIR system URI is accepted too.
    CodeSystem(core_clinical::ProblemCodeSystem) {
        all: variants!(core_clinical::ProblemCodeSystem: Icpc1Nl, Icd10),
        name: core_clinical::ProblemCodeSystem::code,
        parse: |raw| core_clinical::ProblemCodeSystem::parse(raw).ok(),
        schema: || {
            let mut accepted = names::<CodeSystem>();
            accepted.extend(names::<CodeSystemUri>());
            accepted
        },
        description: "ICPC-1-NL in general practice (K75, T90.02), ICD-10 in the hospital \
                      (I21, I50.9); as a code or as the FHIR system URI.",
    }
}

core_named! {
    /// A problem's code system as its FHIR system URI: core's
    /// [`core_clinical::ProblemCodeSystem::uri`].
    CodeSystemUri(core_clinical::ProblemCodeSystem) {
        all: variants!(core_clinical::ProblemCodeSystem: Icpc1Nl, Icd10),
        name: core_clinical::ProblemCodeSystem::uri,
        parse: |raw| core_clinical::ProblemCodeSystem::parse(raw).ok(),
        schema: names::<CodeSystemUri>,
        description: "The FHIR system URI of a problem's code system.",
    }
}

core_named! {
    /// The unit of a dose (`mg`, `ug`, `mL`, `[iU]`, `tablet`): core's
    /// [`core_event::DoseUnit::symbol`].
    DoseUnit(core_event::DoseUnit) {
        all: variants!(core_event::DoseUnit: Mg, Microgram, Ml, Unit, Tablet),
        name: core_event::DoseUnit::symbol,
        parse: |raw| <DoseUnit as WireName>::all()
            .into_iter()
            .find(|u| u.as_str() == raw)
            .map(|u| u.0),
        schema: names::<DoseUnit>,
        description: "The unit a dose is given in.",
    }
}

core_named! {
    /// How a value is compared with a target: written as core's symbol
    /// ([`core_quantity::Comparator::symbol`]: `≤`, `<`, `≥`, `>`), read with core's parser,
    /// which also takes `<=`, `>=` and the names.
    Comparator(core_quantity::Comparator) {
        all: variants!(core_quantity::Comparator: AtMost, Below, AtLeast, Above),
        name: core_quantity::Comparator::symbol,
        parse: |raw| core_quantity::Comparator::parse(raw).ok(),
        schema: || {
            let mut accepted = names::<Comparator>();
            accepted.extend(COMPARATOR_SPELLINGS);
            accepted
        },
        description: "How a value is compared with its target; written as a symbol (≤, <, ≥, \
                      >), read also as <= and >= or by name.",
    }
}

/// The other spellings core's comparator parser takes, for the schema (a test holds them to
/// the parser).
pub(crate) const COMPARATOR_SPELLINGS: [&str; 6] =
    ["<=", ">=", "at_most", "below", "at_least", "above"];

wire_enum! {
    /// What a care-team member leads.
    Lead for core_role::Lead {
        /// Cardiovascular risk management: the GP's lead.
        Cvrm = "cvrm",
        /// The organ disease: the specialist's lead.
        OrganDisease = "organ_disease",
        /// No lead of their own.
        None = "none",
    }
}

wire_enum! {
    /// Main or co-practitioner (hoofdbehandelaar, medebehandelaar).
    Practitioner for core_role::Practitioner {
        /// The main practitioner of a lead.
        Main = "main",
        /// A co-practitioner.
        Co = "co",
        /// Not a practitioner (the patient, a supporting role).
        NotApplicable = "not_applicable",
    }
}

wire_enum! {
    /// Where a target value comes from.
    TargetBasis for core_event::TargetBasis {
        /// The Dutch GP guideline (NHG standard CVRM).
        NhgGuideline = "nhg_guideline",
        /// The European Society of Cardiology guideline.
        EscGuideline = "esc_guideline",
        /// An individual target for this patient.
        Individual = "individual",
    }
}

wire_enum! {
    /// Whether the latest value meets its target.
    TargetStatus for core_plan::TargetStatus {
        /// The latest value meets the target.
        Met = "met",
        /// The latest value does not meet the target.
        NotMet = "not_met",
        /// No value yet.
        NoData = "no_data",
    }
}

wire_enum! {
    /// Where a measurement was taken.
    MeasurementSource for core_event::MeasurementSource {
        /// At the GP practice.
        Practice = "practice",
        /// At the hospital.
        Hospital = "hospital",
        /// By the patient at home.
        SelfMeasuredAtHome = "self_measured_at_home",
    }
}

wire_enum! {
    /// A note or a letter.
    NoteKind for core_event::NoteKind {
        /// A note in the plan.
        Note = "note",
        /// The specialist's return letter.
        ReturnLetter = "return_letter",
        /// An interim letter between the lines.
        InterimLetter = "interim_letter",
    }
}

wire_enum! {
    /// How a lifestyle goal ended.
    GoalOutcome for core_event::GoalOutcome {
        /// Achieved.
        Achieved = "achieved",
        /// Given up.
        Abandoned = "abandoned",
        /// Replaced by another goal.
        Replaced = "replaced",
    }
}

wire_enum! {
    /// Why a medication was changed or stopped; `other` comes with `change_reason_text`.
    ChangeReasonCode {
        /// Side effects.
        SideEffects = "side_effects",
        /// The target was not reached.
        TargetNotReached = "target_not_reached",
        /// The patient's preference.
        PatientPreference = "patient_preference",
        /// Anything else, in words.
        Other = "other",
    }
}

impl From<&core_event::ChangeReason> for ChangeReasonCode {
    fn from(reason: &core_event::ChangeReason) -> Self {
        match reason {
            core_event::ChangeReason::SideEffects => ChangeReasonCode::SideEffects,
            core_event::ChangeReason::TargetNotReached => ChangeReasonCode::TargetNotReached,
            core_event::ChangeReason::PatientPreference => ChangeReasonCode::PatientPreference,
            core_event::ChangeReason::Other(_) => ChangeReasonCode::Other,
        }
    }
}

wire_enum! {
    /// Where a medication episode stands.
    EpisodeStatus for core_plan::EpisodeStatus {
        /// Still given.
        Active = "active",
        /// Stopped.
        Stopped = "stopped",
        /// Its start was marked entered in error.
        EnteredInError = "entered_in_error",
    }
}

wire_enum! {
    /// Which readings a trend is taken over.
    TrendBasis for core_plan::TrendBasis {
        /// The patient's own home readings.
        SelfMeasuredAtHome = "self_measured_at_home",
        /// Every value of the measure.
        AllValues = "all_values",
    }
}

wire_enum! {
    /// The direction of a trend.
    Direction for core_plan::Direction {
        /// Going up.
        Rising = "rising",
        /// Going down.
        Falling = "falling",
        /// Neither.
        Steady = "steady",
    }
}

wire_enum! {
    /// Whether a lead has its main practitioner.
    LeadStatus {
        /// A main practitioner holds the lead.
        Assigned = "assigned",
        /// Nobody holds it yet.
        Unassigned = "unassigned",
    }
}

wire_enum! {
    /// A value of a measure's series: a measurement (with a source) or a lab result.
    ValueKind {
        /// Measured in practice, hospital or at home.
        Measurement = "measurement",
        /// A lab result.
        LabResult = "lab_result",
    }
}

wire_enum! {
    /// Which notifications to list (`GET /patients/{patient}/notifications?status=`).
    NotificationFilter for core_notifications::Which {
        /// Not yet acknowledged (the default).
        Open = "open",
        /// Open for longer than the configured days.
        Overdue = "overdue",
        /// All.
        All = "all",
    }
}

wire_enum! {
    /// The line an audit query is narrowed to (`GET /patients/{patient}/audit?line=`).
    AuditLine {
        /// The GP practice.
        First = "first",
        /// The hospital specialist.
        Second = "second",
        /// The patient.
        Patient = "patient",
    }
}

impl From<AuditLine> for core_role::Line {
    fn from(line: AuditLine) -> Self {
        match line {
            AuditLine::First => core_role::Line::First,
            AuditLine::Second => core_role::Line::Second,
            AuditLine::Patient => core_role::Line::Patient,
        }
    }
}

wire_enum! {
    /// Whether the ledger takes writes (`GET /health`).
    HealthStatus {
        /// It does.
        Ok = "ok",
        /// It does not; `class` and `reason` say why.
        Unhealthy = "unhealthy",
    }
}

wire_enum! {
    /// Why the ledger takes no writes.
    UnhealthyClass {
        /// Acknowledged events are missing or changed.
        Damaged = "damaged",
        /// A storage failure, which clears once its cause is removed.
        Storage = "storage",
        /// The disk is full: the server opened in its reserve's space and holds writes until
        /// the reserve can be made again, which it notices by itself.
        DiskFull = "disk_full",
        /// A restored ledger lacks acknowledged events that a signed checkpoint covers: writes
        /// are held until they are brought back or the operator records the loss.
        BehindWitnessedCheckpoint = "behind_witnessed_checkpoint",
    }
}

wire_enum! {
    /// The `event:` of a Server-Sent Event on `GET /events/stream` that is not a recorded
    /// event (whose `event:` is its kind, one of core's `Event::KINDS`).
    StreamEventType {
        /// A signed checkpoint; its `data` is a `CheckpointEventView`, and it has no `id`.
        Checkpoint = "checkpoint",
    }
}

wire_enum! {
    /// Why the caller had access, as the access log records it (NEN 7513's reason).
    AccessReasonName {
        /// No ground: unauthenticated, or refused.
        NotEstablished = "not_established",
        /// A member of the patient's care team (for routes naming no patient: the care roles'
        /// visibility rules).
        CareTeam = "care_team",
        /// The patient reading their own record.
        OwnRecord = "own_record",
        /// An auditor.
        Audit = "audit",
        /// The care group's administrator.
        Administration = "administration",
        /// A subscriber reading the event stream.
        Subscription = "subscription",
        /// Emergency access outside the care team; `justification` says why.
        BreakGlass = "break_glass",
    }
}

impl From<&careledger_app::access_log::AccessReason> for AccessReasonName {
    fn from(reason: &careledger_app::access_log::AccessReason) -> Self {
        use careledger_app::access_log::AccessReason as R;
        match reason {
            R::NotEstablished => AccessReasonName::NotEstablished,
            R::CareTeam => AccessReasonName::CareTeam,
            R::OwnRecord => AccessReasonName::OwnRecord,
            R::Audit => AccessReasonName::Audit,
            R::Administration => AccessReasonName::Administration,
            R::Subscription => AccessReasonName::Subscription,
            R::BreakGlass { .. } => AccessReasonName::BreakGlass,
        }
    }
}
