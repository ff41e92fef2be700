//! Request bodies: the append body of `POST /patients/{patient}/events` ([`AppendBody`], one
//! [`CommandBody`] per command), read in two steps into core's [`Submission`]s.
//!
//! First the shape ([`super::json::read`]): objects, known and required fields, JSON types,
//! string lengths; a problem there is malformed (400). Then the values, with core's validating
//! constructors (`Measure::parse`, `Quantity::parse`, `AtcCode::parse`, `Text::new`, ...); a
//! problem there is an invalid value (422, `invalid_value`). Both name the path.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::openapi::schema::{Discriminator, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use careledger_core::clinical::{
    Indication, Intolerance, Problem, ProblemCode, ProblemCodeSystem, ProblemResolution,
    SmokingObservation, SmokingStatus as CoreSmokingStatus,
};
use careledger_core::event::{
    Acknowledgement, ChangeReason, Command, Correction, Dose, DoseChange, EmergencyAccess,
    GoalClosure, LabOrder, LabResult, LeadHandover, LifestyleGoal, Measurement, Medication,
    MedicationPreference, MedicationStop, Member, MemberRemoval, Note, PanelExtension, SharedCare,
    Target, TargetWithdrawal,
};
use careledger_core::ids::Text as CoreText;
use careledger_core::ids::{ActorId, AgbCode as CoreAgbCode, AtcCode as CoreAtcCode, ElementId};
use careledger_core::ledger::MAX_BATCH;
use careledger_core::notify;
use careledger_core::quantity::{Comparator as CoreComparator, Measure, Quantity};
use careledger_core::record::Timestamp;
use careledger_core::role::Line as CoreLine;
use careledger_core::{ExpectedRevision, Submission};

use super::error::{WireError, WireErrorKind};
use super::json::{self, join};
use super::names::{
    one_of, ChangeReasonCode, CodeSystem, Comparator, DoseUnit, GoalOutcome, IntoleranceKind, Lead,
    Line, MeasureCode, MeasurementSource, NoteKind, Practitioner, Role, SmokingStatus, TargetBasis,
    WireName,
};
use super::scalar::{AgbCode, AtcCode, Decimal, Id, Text, Time};

/// The most tests one lab order or panel extension names (each measure twice over).
pub const MAX_TESTS: usize = Measure::ALL.len() * 2;

/// Reads an append body of an actor acting in the `acting` line (the default recipient of an
/// acknowledgement): the expected revision it names, if any, and its commands as core's
/// submissions.
pub fn parse_append_body(
    bytes: &[u8],
    acting: CoreLine,
) -> Result<(Option<ExpectedRevision>, Vec<Submission>), WireError> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| WireError {
        path: String::new(),
        message: format!("the body is not valid JSON: {e}"),
        kind: WireErrorKind::Malformed,
    })?;
    let body: AppendBody = json::read(&value)?;
    body.into_submissions(acting)
}

/// Reads an expected revision from the `If-Match` header: a number, `"no_stream"` or `"any"`
/// (or `*`), quoted or not.
pub fn expected_revision(raw: &str) -> Result<ExpectedRevision, WireError> {
    parse_expected(raw).map_err(|message| WireError {
        path: "If-Match".into(),
        message,
        kind: WireErrorKind::Malformed,
    })
}

fn parse_expected(raw: &str) -> Result<ExpectedRevision, String> {
    match raw.trim().trim_matches('"') {
        "any" | "*" => Ok(ExpectedRevision::Any),
        "no_stream" => Ok(ExpectedRevision::NoStream),
        n => n.parse::<u64>().map(ExpectedRevision::Exact).map_err(|_| {
            format!(
                "expected revision {raw:?} is not a revision: use a whole number (0 for a new \
                 patient), \"no_stream\" or \"any\""
            )
        }),
    }
}

/// The body of `POST /patients/{patient}/events`.
///
/// Read it with [`parse_append_body`], which also bounds every string to
/// [`CoreText::MAX_LEN`] bytes and names the path of every problem; serde alone (`serde_json`,
/// an axum `Json`) reads the same shapes without those.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendBody {
    /// The revision the patient's stream must be at; the `If-Match` header takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_revision: Option<ExpectedRevisionWire>,
    /// The commands, recorded atomically in this order.
    #[schema(min_items = 1, max_items = 1000)]
    pub commands: Vec<CommandBody>,
}

impl AppendBody {
    /// The expected revision and the submissions, each command's values checked by core.
    pub fn into_submissions(
        self,
        acting: CoreLine,
    ) -> Result<(Option<ExpectedRevision>, Vec<Submission>), WireError> {
        let count = self.commands.len();
        if count == 0 || count > MAX_BATCH {
            return Err(WireError::malformed(
                "commands",
                format!("holds 1 to {MAX_BATCH} commands, got {count}"),
            ));
        }
        let submissions = self
            .commands
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_submission(&format!("commands[{i}]"), acting))
            .collect::<Result<_, _>>()?;
        Ok((self.expected_revision.map(Into::into), submissions))
    }
}

/// An expected revision in a body: a number, `"no_stream"` or `"any"` (`"*"` and numbers in a
/// string are read too).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedRevisionWire {
    /// The stream is at exactly this revision (0 for a new patient).
    Exact(u64),
    /// The patient has no events yet.
    NoStream,
    /// No check.
    Any,
}

impl From<ExpectedRevisionWire> for ExpectedRevision {
    fn from(e: ExpectedRevisionWire) -> Self {
        match e {
            ExpectedRevisionWire::Exact(n) => ExpectedRevision::Exact(n),
            ExpectedRevisionWire::NoStream => ExpectedRevision::NoStream,
            ExpectedRevisionWire::Any => ExpectedRevision::Any,
        }
    }
}

impl From<ExpectedRevision> for ExpectedRevisionWire {
    fn from(e: ExpectedRevision) -> Self {
        match e {
            ExpectedRevision::Exact(n) => ExpectedRevisionWire::Exact(n),
            ExpectedRevision::NoStream => ExpectedRevisionWire::NoStream,
            ExpectedRevision::Any => ExpectedRevisionWire::Any,
        }
    }
}

impl Serialize for ExpectedRevisionWire {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExpectedRevisionWire::Exact(n) => s.serialize_u64(*n),
            ExpectedRevisionWire::NoStream => s.serialize_str("no_stream"),
            ExpectedRevisionWire::Any => s.serialize_str("any"),
        }
    }
}

impl<'de> Deserialize<'de> for ExpectedRevisionWire {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Revision;
        impl Visitor<'_> for Revision {
            type Value = ExpectedRevisionWire;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(ExpectedRevisionWire::Exact(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
                self.visit_str(&n.to_string())
            }
            fn visit_str<E: de::Error>(self, raw: &str) -> Result<Self::Value, E> {
                parse_expected(raw).map(Into::into).map_err(E::custom)
            }
        }
        d.deserialize_any(Revision)
    }
}

impl PartialSchema for ExpectedRevisionWire {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["no_stream", "any", "*"])),
            )
            .description(Some(
                "The revision the stream must be at (0 or \"no_stream\" for a new patient), or \
                 \"any\" for no check.",
            ))
            .into()
    }
}

impl ToSchema for ExpectedRevisionWire {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ExpectedRevision")
    }
}

/// The notification an acknowledgement names: its causing position, or its id (`n-42-second`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum NotificationRef {
    /// The position of the event that caused it.
    Position(u64),
    /// Its id: `n-<position>-<recipient>` (or `n-<position>`, the caller's own).
    Id(String),
}

impl<'de> Deserialize<'de> for NotificationRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Reference;
        impl Visitor<'_> for Reference {
            type Value = NotificationRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a position (a whole number) or a notification id such as n-42-second")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
                Ok(NotificationRef::Position(n))
            }
            fn visit_str<E: de::Error>(self, raw: &str) -> Result<Self::Value, E> {
                Ok(NotificationRef::Id(raw.to_owned()))
            }
        }
        d.deserialize_any(Reference)
    }
}

impl PartialSchema for NotificationRef {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^n-[0-9]+(-(first|second|patient|care_group))?$")),
            )
            .description(Some(
                "The causing position, or a notification id such as n-42-second.",
            ))
            .into()
    }
}

impl ToSchema for NotificationRef {}

/// Where in the body a command is, for the paths of its problems.
struct At<'a>(&'a str);

impl At<'_> {
    fn path(&self, field: &str) -> String {
        join(self.0, field)
    }

    fn invalid(&self, field: &str, problem: impl fmt::Display) -> WireError {
        WireError::invalid(self.path(field), problem)
    }

    fn malformed(&self, field: &str, problem: impl fmt::Display) -> WireError {
        WireError::malformed(self.path(field), problem)
    }

    fn text(&self, field: &str, raw: &str) -> Result<CoreText, WireError> {
        CoreText::new(raw).map_err(|e| self.invalid(field, e))
    }

    fn opt_text(&self, field: &str, raw: Option<&str>) -> Result<CoreText, WireError> {
        self.text(field, raw.unwrap_or_default())
    }

    fn element(&self, field: &str, raw: &str) -> Result<ElementId, WireError> {
        ElementId::parse(raw).map_err(|e| self.invalid(field, e))
    }

    fn actor(&self, field: &str, raw: &str) -> Result<ActorId, WireError> {
        ActorId::parse(raw).map_err(|e| self.invalid(field, e))
    }

    fn atc(&self, raw: &str) -> Result<CoreAtcCode, WireError> {
        CoreAtcCode::parse(raw).map_err(|e| self.invalid("atc", e))
    }

    fn measure(&self, field: &str, raw: &str) -> Result<Measure, WireError> {
        Measure::parse(raw).map_err(|e| self.invalid(field, e))
    }

    /// A value of `measure` in `unit`: a wrong unit is the unit's problem, anything else the
    /// value's.
    fn quantity(&self, measure: &str, value: &str, unit: &str) -> Result<Quantity, WireError> {
        let measure = self.measure("measure", measure)?;
        Quantity::parse(measure, value, unit).map_err(|e| {
            let field = if e.field() == "unit" { "unit" } else { "value" };
            self.invalid(field, e)
        })
    }

    /// A name of `T` (`lead`, `basis`, ...); an unknown one lists the names there are.
    fn named<T: WireName>(&self, field: &str, raw: &str) -> Result<T, WireError> {
        T::parse(raw).ok_or_else(|| {
            self.invalid(
                field,
                format!("{field} {raw:?} is unknown; {}", one_of::<T>()),
            )
        })
    }

    fn opt_named<T: WireName>(
        &self,
        field: &str,
        raw: Option<&str>,
        default: T,
    ) -> Result<T, WireError> {
        raw.map_or(Ok(default), |raw| self.named(field, raw))
    }

    fn dose(&self, amount: &str, unit: &str) -> Result<Dose, WireError> {
        let unit: DoseUnit = self.named("dose_unit", unit)?;
        Dose::parse(amount, unit.0).map_err(|e| self.invalid("dose", e))
    }

    fn change_reason(&self, code: &str, text: Option<&str>) -> Result<ChangeReason, WireError> {
        Ok(
            match self.named::<ChangeReasonCode>("change_reason", code)? {
                ChangeReasonCode::SideEffects => ChangeReason::SideEffects,
                ChangeReasonCode::TargetNotReached => ChangeReason::TargetNotReached,
                ChangeReasonCode::PatientPreference => ChangeReason::PatientPreference,
                ChangeReasonCode::Other => {
                    ChangeReason::Other(self.opt_text("change_reason_text", text)?)
                }
            },
        )
    }

    fn tests(&self, raw: &[String]) -> Result<Vec<Measure>, WireError> {
        if raw.len() > MAX_TESTS {
            return Err(self.malformed(
                "tests",
                format!(
                    "names {} tests; at most {MAX_TESTS} are accepted",
                    raw.len()
                ),
            ));
        }
        raw.iter()
            .enumerate()
            .map(|(i, code)| self.measure(&format!("tests[{i}]"), code))
            .collect()
    }

    /// `indication_problem` (a problem on the list) or `indication_text` (words), or neither.
    fn indication(
        &self,
        problem: Option<&str>,
        words: Option<&str>,
    ) -> Result<Option<Indication>, WireError> {
        match (problem, words) {
            (Some(_), Some(_)) => Err(self.malformed(
                "indication_problem",
                format!(
                    "and {} exclude each other: name a problem on the problem list or give the \
                     indication in words",
                    self.path("indication_text")
                ),
            )),
            (Some(p), None) => Ok(Some(Indication::Problem(
                self.element("indication_problem", p)?,
            ))),
            (None, Some(w)) => Ok(Some(Indication::Words(self.text("indication_text", w)?))),
            (None, None) => Ok(None),
        }
    }
}

/// A command's conversion into core's, after its shape was read.
trait IntoCommand {
    fn into_command(self, at: &At<'_>, acting: CoreLine) -> Result<Command, WireError>;
}

/// Declares each command's body (its fields, then `reason` and `occurred_at`), [`CommandBody`]
/// over them, its `type` names and its schema.
macro_rules! commands {
    ($(
        $(#[$doc:meta])*
        $kind:literal => $name:ident {
            $( $(#[$field_meta:meta])* $field:ident : $field_ty:ty ),* $(,)?
        }
    )*) => {
        $(
            $(#[$doc])*
            #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
            #[serde(deny_unknown_fields)]
            pub struct $name {
                $( $(#[$field_meta])* pub $field: $field_ty, )*
                /// Why, in the writer's words; empty when absent.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[schema(value_type = Option<Text>)]
                pub reason: Option<String>,
                /// When it happened, by the clinician's word; the recording time when absent.
                #[serde(default, skip_serializing_if = "Option::is_none")]
                #[schema(value_type = Option<Time>)]
                pub occurred_at: Option<String>,
            }
        )*

        /// One command of an append body: an object with its `type` and the type's fields, all
        /// at one level. Every command also takes `reason` and `occurred_at`.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
        #[serde(tag = "type")]
        pub enum CommandBody {
            $( $(#[$doc])* #[serde(rename = $kind)] $name($name), )*
        }

        /// Every command type accepted by `POST /patients/{patient}/events`, in core's order.
        pub const COMMAND_TYPES: &[&str] = &[$($kind),*];

        impl CommandBody {
            /// The command's `type`.
            pub fn kind(&self) -> &'static str {
                match self { $(CommandBody::$name(_) => $kind,)* }
            }

            fn common(&self) -> (Option<&str>, Option<&str>) {
                match self {
                    $(CommandBody::$name(c) => (c.reason.as_deref(), c.occurred_at.as_deref()),)*
                }
            }

            fn with_common(mut self, reason: Option<String>, occurred_at: Option<String>) -> Self {
                match &mut self {
                    $(CommandBody::$name(c) => {
                        c.reason = reason;
                        c.occurred_at = occurred_at;
                    })*
                }
                self
            }

            fn into_command(self, at: &At<'_>, acting: CoreLine) -> Result<Command, WireError> {
                match self { $(CommandBody::$name(c) => c.into_command(at, acting),)* }
            }

            /// Reads the rest of a command object whose `type` was read first.
            fn read_rest<'de, A: MapAccess<'de>>(kind: &str, map: A) -> Result<Self, A::Error> {
                let rest = de::value::MapAccessDeserializer::new(map);
                match kind {
                    $($kind => $name::deserialize(rest).map(CommandBody::$name),)*
                    other => Err(de::Error::custom(unknown_type(other))),
                }
            }

            /// Reads a buffered command object by its type.
            fn read_value(kind: &str, object: Value) -> Result<Self, serde_json::Error> {
                match kind {
                    $($kind => serde_json::from_value(object).map(CommandBody::$name),)*
                    other => Err(de::Error::custom(unknown_type(other))),
                }
            }

            /// Each command's schema with its `type`, named after its body type.
            fn variant_schemas() -> Vec<(String, RefOr<Schema>, &'static str)> {
                vec![$(
                    ($name::name().into_owned(), tagged($kind, $name::schema()), $kind),
                )*]
            }

            /// The schemas the command bodies refer to.
            fn referenced_schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
                $( <$name as ToSchema>::schemas(out); )*
            }
        }
    };
}

/// The sentence for a `type` that names no command.
fn unknown_type(kind: &str) -> String {
    format!(
        "{kind:?} is not a command type; use one of {}",
        COMMAND_TYPES.join(", ")
    )
}

/// `schema` with the `type` property that names its command.
fn tagged(kind: &str, schema: RefOr<Schema>) -> RefOr<Schema> {
    match schema {
        RefOr::T(Schema::Object(mut object)) => {
            object.properties.insert(
                "type".into(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([kind]))
                    .into(),
            );
            object.required.insert(0, "type".into());
            RefOr::T(Schema::Object(object))
        }
        other => other,
    }
}

commands! {
    /// A practitioner or the patient joins the care team.
    "add_care_team_member" => AddCareTeamMember {
        /// The member: a registered actor, added in the role they hold.
        #[schema(value_type = Id)]
        actor: String,
        /// Their display name.
        #[schema(value_type = Text)]
        name: String,
        /// Their AGB code, when they have one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<AgbCode>)]
        agb: Option<String>,
        /// Their role in the team; the line follows from it.
        #[schema(value_type = Role)]
        role: String,
        /// What they lead; `none` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Lead>, default = "none")]
        lead: Option<String>,
        /// Main or co-practitioner; `co` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Practitioner>, default = "co")]
        practitioner: Option<String>,
    }
    /// A member leaves the care team.
    "remove_care_team_member" => RemoveCareTeamMember {
        /// The member who leaves.
        #[schema(value_type = Id)]
        actor: String,
    }
    /// Shared care between the lines begins.
    "start_shared_care" => StartSharedCare {
        /// What was agreed, in a sentence.
        #[schema(value_type = Text)]
        arrangement: String,
    }
    /// Shared care ends; the first line keeps CVRM.
    "end_shared_care" => EndSharedCare {
        /// What was agreed, in a sentence.
        #[schema(value_type = Text)]
        arrangement: String,
    }
    /// A target value is set for a measure.
    "set_target" => SetTarget {
        /// The measure.
        #[schema(value_type = MeasureCode)]
        measure: String,
        /// How a value is compared with the target.
        #[schema(value_type = Comparator)]
        comparator: String,
        /// The target value, in the measure's unit and precision.
        #[schema(value_type = Decimal)]
        value: String,
        /// The measure's unit (its one UCUM unit).
        unit: String,
        /// Guideline or individual.
        #[schema(value_type = TargetBasis)]
        basis: String,
        /// Why this target; empty when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Text>)]
        rationale: Option<String>,
    }
    /// The target of a measure is withdrawn; the guideline default applies again.
    "withdraw_target" => WithdrawTarget {
        /// The measure.
        #[schema(value_type = MeasureCode)]
        measure: String,
    }
    /// A medication is started.
    "start_medication" => StartMedication {
        /// Its ATC code.
        #[schema(value_type = AtcCode)]
        atc: String,
        /// Its name.
        #[schema(value_type = Text)]
        name: String,
        /// The dose per administration, up to three decimals.
        #[schema(value_type = Decimal)]
        dose: String,
        /// The dose's unit.
        #[schema(value_type = DoseUnit)]
        dose_unit: String,
        /// How often ("1x daily").
        #[schema(value_type = Text)]
        frequency: String,
        /// Why: a problem on the problem list (not with `indication_text`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Id>)]
        indication_problem: Option<String>,
        /// Why, in words (not with `indication_problem`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Text>)]
        indication_text: Option<String>,
    }
    /// The dose of an active medication changes.
    "change_dose" => ChangeDose {
        /// Which active medication.
        #[schema(value_type = AtcCode)]
        atc: String,
        /// The new dose.
        #[schema(value_type = Decimal)]
        dose: String,
        /// The dose's unit.
        #[schema(value_type = DoseUnit)]
        dose_unit: String,
        /// The new frequency.
        #[schema(value_type = Text)]
        frequency: String,
        /// Why.
        #[schema(value_type = ChangeReasonCode)]
        change_reason: String,
        /// The reason in words, with `other`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Text>)]
        change_reason_text: Option<String>,
    }
    /// An active medication is stopped.
    "stop_medication" => StopMedication {
        /// Which active medication.
        #[schema(value_type = AtcCode)]
        atc: String,
        /// Why.
        #[schema(value_type = ChangeReasonCode)]
        change_reason: String,
        /// The reason in words, with `other`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Text>)]
        change_reason_text: Option<String>,
    }
    /// A medication preference is recorded.
    "record_medication_preference" => RecordMedicationPreference {
        /// The preferred medication or group.
        #[schema(value_type = AtcCode)]
        atc: String,
        /// Its name.
        #[schema(value_type = Text)]
        name: String,
        /// The preference in words.
        #[schema(value_type = Text)]
        preference: String,
    }
    /// Lab work is ordered.
    "order_lab" => OrderLab {
        /// The writer's id for the order, unique per patient.
        #[schema(value_type = Id)]
        order: String,
        /// The tests ordered.
        #[schema(value_type = Vec<MeasureCode>, min_items = 1, max_items = 42)]
        tests: Vec<String>,
        /// True for the yearly CVRM panel; false when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(default = false)]
        annual_panel: Option<bool>,
    }
    /// The specialist adds tests to the annual CVRM panel.
    "extend_annual_panel" => ExtendAnnualPanel {
        /// The tests to add.
        #[schema(value_type = Vec<MeasureCode>, min_items = 1, max_items = 42)]
        tests: Vec<String>,
    }
    /// A lab result is recorded.
    "record_lab_result" => RecordLabResult {
        /// The order it answers, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Id>)]
        order: Option<String>,
        /// The test.
        #[schema(value_type = MeasureCode)]
        measure: String,
        /// The value, in the measure's unit and precision.
        #[schema(value_type = Decimal)]
        value: String,
        /// The measure's unit.
        unit: String,
    }
    /// A measurement is recorded, in practice, hospital or at home.
    "record_measurement" => RecordMeasurement {
        /// The measure.
        #[schema(value_type = MeasureCode)]
        measure: String,
        /// The value, in the measure's unit and precision.
        #[schema(value_type = Decimal)]
        value: String,
        /// The measure's unit.
        unit: String,
        /// Where it was taken.
        #[schema(value_type = MeasurementSource)]
        source: String,
    }
    /// A lifestyle goal is set.
    "set_lifestyle_goal" => SetLifestyleGoal {
        /// The writer's id for the goal, unique per patient.
        #[schema(value_type = Id)]
        goal: String,
        /// The goal.
        #[schema(value_type = Text)]
        description: String,
    }
    /// A lifestyle goal is closed.
    "close_lifestyle_goal" => CloseLifestyleGoal {
        /// Which open goal.
        #[schema(value_type = Id)]
        goal: String,
        /// How it ended.
        #[schema(value_type = GoalOutcome)]
        outcome: String,
    }
    /// A note or letter is added.
    "add_note" => AddNote {
        /// Note or letter; `note` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<NoteKind>, default = "note")]
        kind: Option<String>,
        /// A one-line subject.
        #[schema(value_type = Text)]
        subject: String,
        /// The body; empty when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Text>)]
        body: Option<String>,
    }
    /// The recipient acknowledges a notification.
    "acknowledge_notification" => AcknowledgeNotification {
        /// The notification: its causing position or its id.
        notification: NotificationRef,
        /// Whose notification, beside a position; the acting line when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<Line>)]
        recipient: Option<String>,
    }
    /// An earlier event is marked entered in error.
    "mark_entered_in_error" => MarkEnteredInError {
        /// The global position of the event entered in error.
        #[schema(minimum = 1)]
        position: u64,
    }
    /// The main practitioner of a lead hands it over.
    "hand_over_lead" => HandOverLead {
        /// The lead handed over.
        #[schema(value_type = Lead)]
        lead: String,
        /// The member who takes it.
        #[schema(value_type = Id)]
        to: String,
    }
    /// An intolerance or contra-indication is recorded.
    "record_intolerance" => RecordIntolerance {
        /// The substance or group.
        #[schema(value_type = AtcCode)]
        atc: String,
        /// Its name.
        #[schema(value_type = Text)]
        substance: String,
        /// Intolerance or contra-indication; `intolerance` when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[schema(value_type = Option<IntoleranceKind>, default = "intolerance")]
        kind: Option<String>,
        /// The reaction or the reason, in words.
        #[schema(value_type = Text)]
        reaction: String,
    }
    /// A problem is put on the problem list.
    "record_problem" => RecordProblem {
        /// The writer's id for the problem, unique per patient.
        #[schema(value_type = Id)]
        problem: String,
        /// The code system.
        #[schema(value_type = CodeSystem)]
        code_system: String,
        /// The code, valid in its system (K75, T90.02; I21, I50.9).
        code: String,
        /// The problem in words.
        #[schema(value_type = Text)]
        description: String,
    }
    /// A problem is resolved; it stays on the list as resolved.
    "resolve_problem" => ResolveProblem {
        /// Which active problem.
        #[schema(value_type = Id)]
        problem: String,
    }
    /// Smoking status is recorded.
    "record_smoking_status" => RecordSmokingStatus {
        /// The status.
        #[schema(value_type = SmokingStatus)]
        status: String,
    }
    /// A practitioner outside the care team breaks the glass (seed 002): for `hours` (1 to 24,
    /// 4 when left out) they read the record and record acute interventions; both lines are told
    /// at once. The `reason` (the acute need) is required.
    "break_glass" => BreakGlass {
        /// How long the access lasts, in hours (1 to 24; 4 when left out).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hours: Option<u32>,
    }
}

impl CommandBody {
    /// Core's submission for this command at `path` (`commands[3]`), by an actor acting in the
    /// `acting` line.
    pub fn into_submission(self, path: &str, acting: CoreLine) -> Result<Submission, WireError> {
        let at = At(path);
        let (reason, occurred_at) = self.common();
        let reason = at.opt_text("reason", reason)?;
        let occurred_at = occurred_at
            .map(|raw| Timestamp::parse_rfc3339(raw).map_err(|e| at.invalid("occurred_at", e)))
            .transpose()?;
        let command = self.into_command(&at, acting)?;
        Ok(Submission {
            command,
            occurred_at,
            reason,
        })
    }
}

impl<'de> Deserialize<'de> for CommandBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(CommandVisitor)
    }
}

/// Reads a command object: its `type` first when it comes first (then each field is read in
/// place), else the object buffered and read by its type.
struct CommandVisitor;

impl<'de> Visitor<'de> for CommandVisitor {
    type Value = CommandBody;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CommandBody, A::Error> {
        let first: Option<String> = map.next_key()?;
        match first.as_deref() {
            None => Err(de::Error::missing_field("type")),
            Some("type") => {
                let kind = map.next_value_seed(Kind)?;
                CommandBody::read_rest(kind, map)
            }
            Some(other) => {
                let mut object = Map::new();
                object.insert(other.to_owned(), map.next_value()?);
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    object.insert(key, value);
                }
                let kind = match object.remove("type") {
                    Some(Value::String(kind)) => kind,
                    Some(_) => return Err(de::Error::custom("type must be a string")),
                    None => return Err(de::Error::missing_field("type")),
                };
                CommandBody::read_value(&kind, Value::Object(object)).map_err(de::Error::custom)
            }
        }
    }
}

/// A command's `type`, one of [`COMMAND_TYPES`].
struct Kind;

impl<'de> DeserializeSeed<'de> for Kind {
    type Value = &'static str;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for Kind {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a command type")
    }

    fn visit_str<E: de::Error>(self, raw: &str) -> Result<&'static str, E> {
        COMMAND_TYPES
            .iter()
            .find(|k| **k == raw)
            .copied()
            .ok_or_else(|| E::custom(unknown_type(raw)))
    }
}

impl CommandBody {
    /// The name of the schema of the command `kind` among the components.
    #[cfg(test)]
    pub(crate) fn schema_name(kind: &str) -> String {
        CommandBody::variant_schemas()
            .into_iter()
            .find(|(_, _, k)| *k == kind)
            .map(|(name, ..)| name)
            .unwrap_or_default()
    }
}

impl PartialSchema for CommandBody {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new();
        let mut discriminator = Discriminator::new("type");
        for (name, _, kind) in CommandBody::variant_schemas() {
            let reference = Ref::from_schema_name(name);
            discriminator
                .mapping
                .insert(kind.to_owned(), reference.ref_location.clone());
            one_of = one_of.item(reference);
        }
        one_of
            .discriminator(Some(discriminator))
            .description(Some(
                "One command: an object with its `type` and that type's fields at one level; \
                 unknown fields are refused.",
            ))
            .into()
    }
}

impl ToSchema for CommandBody {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Command")
    }

    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        for (name, schema, _) in CommandBody::variant_schemas() {
            out.push((name, schema));
        }
        CommandBody::referenced_schemas(out);
    }
}

impl IntoCommand for AddCareTeamMember {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::AddCareTeamMember(Member {
            actor: at.actor("actor", &self.actor)?,
            name: at.text("name", &self.name)?,
            agb: self
                .agb
                .as_deref()
                .map(|raw| CoreAgbCode::parse(raw).map_err(|e| at.invalid("agb", e)))
                .transpose()?,
            role: at.named::<Role>("role", &self.role)?.0,
            lead: at
                .opt_named("lead", self.lead.as_deref(), Lead::None)?
                .into(),
            practitioner: at
                .opt_named(
                    "practitioner",
                    self.practitioner.as_deref(),
                    Practitioner::Co,
                )?
                .into(),
        }))
    }
}

impl IntoCommand for RemoveCareTeamMember {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::RemoveCareTeamMember(MemberRemoval {
            actor: at.actor("actor", &self.actor)?,
        }))
    }
}

impl IntoCommand for StartSharedCare {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::StartSharedCare(SharedCare {
            arrangement: at.text("arrangement", &self.arrangement)?,
        }))
    }
}

impl IntoCommand for EndSharedCare {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::EndSharedCare(SharedCare {
            arrangement: at.text("arrangement", &self.arrangement)?,
        }))
    }
}

impl IntoCommand for SetTarget {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::SetTarget(Target {
            comparator: CoreComparator::parse(&self.comparator)
                .map_err(|e| at.invalid("comparator", e))?,
            value: at.quantity(&self.measure, &self.value, &self.unit)?,
            basis: at.named::<TargetBasis>("basis", &self.basis)?.into(),
            rationale: at.opt_text("rationale", self.rationale.as_deref())?,
        }))
    }
}

impl IntoCommand for WithdrawTarget {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::WithdrawTarget(TargetWithdrawal {
            measure: at.measure("measure", &self.measure)?,
        }))
    }
}

impl IntoCommand for StartMedication {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::StartMedication(Medication {
            atc: at.atc(&self.atc)?,
            name: at.text("name", &self.name)?,
            dose: at.dose(&self.dose, &self.dose_unit)?,
            frequency: at.text("frequency", &self.frequency)?,
            indication: at.indication(
                self.indication_problem.as_deref(),
                self.indication_text.as_deref(),
            )?,
        }))
    }
}

impl IntoCommand for ChangeDose {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::ChangeDose(DoseChange {
            atc: at.atc(&self.atc)?,
            dose: at.dose(&self.dose, &self.dose_unit)?,
            frequency: at.text("frequency", &self.frequency)?,
            reason: at.change_reason(&self.change_reason, self.change_reason_text.as_deref())?,
        }))
    }
}

impl IntoCommand for StopMedication {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::StopMedication(MedicationStop {
            atc: at.atc(&self.atc)?,
            reason: at.change_reason(&self.change_reason, self.change_reason_text.as_deref())?,
        }))
    }
}

impl IntoCommand for RecordMedicationPreference {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::RecordMedicationPreference(MedicationPreference {
            atc: at.atc(&self.atc)?,
            name: at.text("name", &self.name)?,
            preference: at.text("preference", &self.preference)?,
        }))
    }
}

impl IntoCommand for OrderLab {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::OrderLab(LabOrder {
            order: at.element("order", &self.order)?,
            tests: at.tests(&self.tests)?,
            annual_panel: self.annual_panel.unwrap_or(false),
        }))
    }
}

impl IntoCommand for ExtendAnnualPanel {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::ExtendAnnualPanel(PanelExtension {
            tests: at.tests(&self.tests)?,
        }))
    }
}

impl IntoCommand for RecordLabResult {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::RecordLabResult(LabResult {
            order: self
                .order
                .as_deref()
                .map(|raw| at.element("order", raw))
                .transpose()?,
            value: at.quantity(&self.measure, &self.value, &self.unit)?,
        }))
    }
}

impl IntoCommand for RecordMeasurement {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::RecordMeasurement(Measurement {
            value: at.quantity(&self.measure, &self.value, &self.unit)?,
            source: at
                .named::<MeasurementSource>("source", &self.source)?
                .into(),
        }))
    }
}

impl IntoCommand for SetLifestyleGoal {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::SetLifestyleGoal(LifestyleGoal {
            goal: at.element("goal", &self.goal)?,
            description: at.text("description", &self.description)?,
        }))
    }
}

impl IntoCommand for CloseLifestyleGoal {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::CloseLifestyleGoal(GoalClosure {
            goal: at.element("goal", &self.goal)?,
            outcome: at.named::<GoalOutcome>("outcome", &self.outcome)?.into(),
        }))
    }
}

impl IntoCommand for AddNote {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::AddNote(Note {
            kind: at
                .opt_named("kind", self.kind.as_deref(), NoteKind::Note)?
                .into(),
            subject: at.text("subject", &self.subject)?,
            body: at.opt_text("body", self.body.as_deref())?,
        }))
    }
}

impl IntoCommand for AcknowledgeNotification {
    /// The recipient comes from the id, or from `recipient`, or is the acting line; an id and a
    /// `recipient` that disagree are refused.
    fn into_command(self, at: &At<'_>, acting: CoreLine) -> Result<Command, WireError> {
        let (position, from_id) = match &self.notification {
            NotificationRef::Position(position) => (*position, None),
            NotificationRef::Id(raw) => notify::parse_notification_id(raw).ok_or_else(|| {
                at.malformed(
                    "notification",
                    format!(
                        "{raw:?} is not a notification id; ids look like n-42-second (the \
                         causing position and the recipient), or give the position as a number"
                    ),
                )
            })?,
        };
        let given = self
            .recipient
            .as_deref()
            .map(|raw| at.named::<Line>("recipient", raw).map(|l| l.0))
            .transpose()?;
        if let (Some(a), Some(b)) = (from_id, given) {
            if a != b {
                return Err(at.malformed(
                    "recipient",
                    format!("says the {b} but the notification id names the {a}; give one of them"),
                ));
            }
        }
        Ok(Command::AcknowledgeNotification(Acknowledgement {
            notification: position,
            recipient: from_id.or(given).unwrap_or(acting),
        }))
    }
}

impl IntoCommand for MarkEnteredInError {
    fn into_command(self, _: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::MarkEnteredInError(Correction {
            position: self.position,
        }))
    }
}

impl IntoCommand for HandOverLead {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::HandOverLead(LeadHandover {
            lead: at.named::<Lead>("lead", &self.lead)?.into(),
            to: at.actor("to", &self.to)?,
        }))
    }
}

impl IntoCommand for RecordIntolerance {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::RecordIntolerance(Intolerance {
            atc: at.atc(&self.atc)?,
            substance: at.text("substance", &self.substance)?,
            kind: at
                .opt_named(
                    "kind",
                    self.kind.as_deref(),
                    IntoleranceKind(careledger_core::clinical::IntoleranceKind::Intolerance),
                )?
                .0,
            reaction: at.text("reaction", &self.reaction)?,
        }))
    }
}

impl IntoCommand for RecordProblem {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        let system = ProblemCodeSystem::parse(&self.code_system)
            .map_err(|e| at.invalid("code_system", e))?;
        Ok(Command::RecordProblem(Problem {
            problem: at.element("problem", &self.problem)?,
            code: ProblemCode::parse(system, &self.code).map_err(|e| at.invalid("code", e))?,
            description: at.text("description", &self.description)?,
        }))
    }
}

impl IntoCommand for ResolveProblem {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::ResolveProblem(ProblemResolution {
            problem: at.element("problem", &self.problem)?,
        }))
    }
}

impl IntoCommand for BreakGlass {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        let hours = match self.hours {
            None => EmergencyAccess::DEFAULT_HOURS,
            Some(h) => u8::try_from(h)
                .ok()
                .filter(|h| (1..=EmergencyAccess::MAX_HOURS).contains(h))
                .ok_or_else(|| {
                    at.invalid(
                        "hours",
                        format!(
                            "emergency access lasts 1 to {} hours, got {h}",
                            EmergencyAccess::MAX_HOURS
                        ),
                    )
                })?,
        };
        Ok(Command::BreakGlass(EmergencyAccess { hours }))
    }
}

impl IntoCommand for RecordSmokingStatus {
    fn into_command(self, at: &At<'_>, _: CoreLine) -> Result<Command, WireError> {
        Ok(Command::RecordSmokingStatus(SmokingObservation {
            status: CoreSmokingStatus::parse(&self.status).map_err(|e| at.invalid("status", e))?,
        }))
    }
}

/// A submission as a command body, as a client would write it: optional fields that hold their
/// default are written out anyway, an empty reason is left out. The key stream's commands have
/// no body of a patient's append: [`NotAPatientCommand`].
impl TryFrom<&Submission> for CommandBody {
    type Error = NotAPatientCommand;

    fn try_from(s: &Submission) -> Result<Self, NotAPatientCommand> {
        let reason = (!s.reason.is_empty()).then(|| s.reason.to_string());
        let occurred_at = s.occurred_at.map(|t| Time(t).to_string());
        Ok(CommandBody::try_from(&s.command)?.with_common(reason, occurred_at))
    }
}

/// A command of the key stream (`register_signing_key`, `revoke_signing_key`), which no
/// patient's append carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotAPatientCommand;

fn name<T: WireName>(value: impl Into<T>) -> String {
    value.into().as_str().to_owned()
}

fn change_reason_text(reason: &ChangeReason) -> Option<String> {
    match reason {
        ChangeReason::Other(text) => Some(text.to_string()),
        _ => None,
    }
}

/// A command as its body, without `reason` and `occurred_at`.
impl TryFrom<&Command> for CommandBody {
    type Error = NotAPatientCommand;

    fn try_from(command: &Command) -> Result<Self, NotAPatientCommand> {
        let q = |value: &Quantity| {
            (
                value.measure().code().to_owned(),
                value.value_text(),
                value.measure().unit().to_owned(),
            )
        };
        let tests = |tests: &[Measure]| tests.iter().map(|t| t.code().to_owned()).collect();
        Ok(match command {
            Command::AddCareTeamMember(m) => CommandBody::AddCareTeamMember(AddCareTeamMember {
                actor: m.actor.to_string(),
                name: m.name.to_string(),
                agb: m.agb.as_ref().map(|a| a.as_str().to_owned()),
                role: name::<Role>(m.role),
                lead: Some(name::<Lead>(m.lead)),
                practitioner: Some(name::<Practitioner>(m.practitioner)),
                reason: None,
                occurred_at: None,
            }),
            Command::RemoveCareTeamMember(r) => {
                CommandBody::RemoveCareTeamMember(RemoveCareTeamMember {
                    actor: r.actor.to_string(),
                    reason: None,
                    occurred_at: None,
                })
            }
            Command::StartSharedCare(s) => CommandBody::StartSharedCare(StartSharedCare {
                arrangement: s.arrangement.to_string(),
                reason: None,
                occurred_at: None,
            }),
            Command::EndSharedCare(s) => CommandBody::EndSharedCare(EndSharedCare {
                arrangement: s.arrangement.to_string(),
                reason: None,
                occurred_at: None,
            }),
            Command::SetTarget(t) => {
                let (measure, value, unit) = q(&t.value);
                CommandBody::SetTarget(SetTarget {
                    measure,
                    comparator: name::<Comparator>(t.comparator),
                    value,
                    unit,
                    basis: name::<TargetBasis>(t.basis),
                    rationale: Some(t.rationale.to_string()),
                    reason: None,
                    occurred_at: None,
                })
            }
            Command::WithdrawTarget(w) => CommandBody::WithdrawTarget(WithdrawTarget {
                measure: w.measure.code().to_owned(),
                reason: None,
                occurred_at: None,
            }),
            Command::StartMedication(m) => {
                let (indication_problem, indication_text) = match &m.indication {
                    Some(Indication::Problem(p)) => (Some(p.to_string()), None),
                    Some(Indication::Words(w)) => (None, Some(w.to_string())),
                    None => (None, None),
                };
                CommandBody::StartMedication(StartMedication {
                    atc: m.atc.to_string(),
                    name: m.name.to_string(),
                    dose: m.dose.amount_text(),
                    dose_unit: name::<DoseUnit>(m.dose.unit()),
                    frequency: m.frequency.to_string(),
                    indication_problem,
                    indication_text,
                    reason: None,
                    occurred_at: None,
                })
            }
            Command::ChangeDose(c) => CommandBody::ChangeDose(ChangeDose {
                atc: c.atc.to_string(),
                dose: c.dose.amount_text(),
                dose_unit: name::<DoseUnit>(c.dose.unit()),
                frequency: c.frequency.to_string(),
                change_reason: ChangeReasonCode::from(&c.reason).as_str().to_owned(),
                change_reason_text: change_reason_text(&c.reason),
                reason: None,
                occurred_at: None,
            }),
            Command::StopMedication(s) => CommandBody::StopMedication(StopMedication {
                atc: s.atc.to_string(),
                change_reason: ChangeReasonCode::from(&s.reason).as_str().to_owned(),
                change_reason_text: change_reason_text(&s.reason),
                reason: None,
                occurred_at: None,
            }),
            Command::RecordMedicationPreference(p) => {
                CommandBody::RecordMedicationPreference(RecordMedicationPreference {
                    atc: p.atc.to_string(),
                    name: p.name.to_string(),
                    preference: p.preference.to_string(),
                    reason: None,
                    occurred_at: None,
                })
            }
            Command::OrderLab(o) => CommandBody::OrderLab(OrderLab {
                order: o.order.to_string(),
                tests: tests(&o.tests),
                annual_panel: Some(o.annual_panel),
                reason: None,
                occurred_at: None,
            }),
            Command::ExtendAnnualPanel(e) => CommandBody::ExtendAnnualPanel(ExtendAnnualPanel {
                tests: tests(&e.tests),
                reason: None,
                occurred_at: None,
            }),
            Command::RecordLabResult(r) => {
                let (measure, value, unit) = q(&r.value);
                CommandBody::RecordLabResult(RecordLabResult {
                    order: r.order.as_ref().map(ToString::to_string),
                    measure,
                    value,
                    unit,
                    reason: None,
                    occurred_at: None,
                })
            }
            Command::RecordMeasurement(m) => {
                let (measure, value, unit) = q(&m.value);
                CommandBody::RecordMeasurement(RecordMeasurement {
                    measure,
                    value,
                    unit,
                    source: name::<MeasurementSource>(m.source),
                    reason: None,
                    occurred_at: None,
                })
            }
            Command::SetLifestyleGoal(g) => CommandBody::SetLifestyleGoal(SetLifestyleGoal {
                goal: g.goal.to_string(),
                description: g.description.to_string(),
                reason: None,
                occurred_at: None,
            }),
            Command::CloseLifestyleGoal(c) => CommandBody::CloseLifestyleGoal(CloseLifestyleGoal {
                goal: c.goal.to_string(),
                outcome: name::<GoalOutcome>(c.outcome),
                reason: None,
                occurred_at: None,
            }),
            Command::AddNote(n) => CommandBody::AddNote(AddNote {
                kind: Some(name::<NoteKind>(n.kind)),
                subject: n.subject.to_string(),
                body: Some(n.body.to_string()),
                reason: None,
                occurred_at: None,
            }),
            Command::AcknowledgeNotification(a) => {
                CommandBody::AcknowledgeNotification(AcknowledgeNotification {
                    notification: NotificationRef::Position(a.notification),
                    recipient: Some(name::<Line>(a.recipient)),
                    reason: None,
                    occurred_at: None,
                })
            }
            Command::MarkEnteredInError(c) => CommandBody::MarkEnteredInError(MarkEnteredInError {
                position: c.position,
                reason: None,
                occurred_at: None,
            }),
            Command::HandOverLead(h) => CommandBody::HandOverLead(HandOverLead {
                lead: name::<Lead>(h.lead),
                to: h.to.to_string(),
                reason: None,
                occurred_at: None,
            }),
            Command::RecordIntolerance(i) => CommandBody::RecordIntolerance(RecordIntolerance {
                atc: i.atc.to_string(),
                substance: i.substance.to_string(),
                kind: Some(name::<IntoleranceKind>(i.kind)),
                reaction: i.reaction.to_string(),
                reason: None,
                occurred_at: None,
            }),
            Command::RecordProblem(p) => CommandBody::RecordProblem(RecordProblem {
                problem: p.problem.to_string(),
                code_system: name::<CodeSystem>(p.code.system()),
                code: p.code.code().to_owned(),
                description: p.description.to_string(),
                reason: None,
                occurred_at: None,
            }),
            Command::ResolveProblem(r) => CommandBody::ResolveProblem(ResolveProblem {
                problem: r.problem.to_string(),
                reason: None,
                occurred_at: None,
            }),
            Command::RecordSmokingStatus(s) => {
                CommandBody::RecordSmokingStatus(RecordSmokingStatus {
                    status: name::<SmokingStatus>(s.status),
                    reason: None,
                    occurred_at: None,
                })
            }
            Command::BreakGlass(a) => CommandBody::BreakGlass(BreakGlass {
                hours: Some(u32::from(a.hours)),
                reason: None,
                occurred_at: None,
            }),
            Command::RegisterSigningKey(_) | Command::RevokeSigningKey(_) => {
                return Err(NotAPatientCommand)
            }
        })
    }
}
