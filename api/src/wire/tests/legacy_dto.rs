//! The API's own JSON shapes, converted by hand to and from the core's domain types.
//!
//! A command is posted as an object with a `type` (`set_target`, `stop_medication`...), its fields,
//! a `reason` and an optional `occurred_at`; an event reads back in the same shape under `data`,
//! so what an integrator writes is what they read.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use careledger_core::clinical::{
    Indication, Intolerance, IntoleranceKind, Problem, ProblemCode, ProblemCodeSystem,
    ProblemResolution, SmokingObservation, SmokingStatus,
};
use careledger_core::event::*;
use careledger_core::ids::{ActorId, AgbCode, AtcCode, ElementId, PatientId, Text, Uid};
use careledger_core::notify;
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::{RecordedEvent, Timestamp};
use careledger_core::role::{Lead, Line, Practitioner, Role};
use careledger_core::{ExpectedRevision, InvalidInput, Submission};

use crate::error::ApiError;

/// Longest JSON string value accepted anywhere, in bytes.
pub const MAX_STRING: usize = Text::MAX_LEN;

/// Reads fields of one JSON object, naming the path in every error and refusing unknown fields.
pub struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
    used: BTreeSet<&'static str>,
}

impl<'a> Fields<'a> {
    /// The object at `path`.
    pub fn of(value: &'a Value, path: impl Into<String>) -> Result<Self, ApiError> {
        let path = path.into();
        let map = value
            .as_object()
            .ok_or_else(|| ApiError::Malformed(format!("{path} must be a JSON object")))?;
        Ok(Self {
            map,
            path,
            used: BTreeSet::new(),
        })
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.insert(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A required string.
    pub fn string(&mut self, key: &'static str) -> Result<&'a str, ApiError> {
        self.opt_string(key)?
            .ok_or_else(|| ApiError::Malformed(format!("{} is required (a string)", self.at(key))))
    }

    /// An optional string.
    pub fn opt_string(&mut self, key: &'static str) -> Result<Option<&'a str>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.len() > MAX_STRING => Err(ApiError::Malformed(format!(
                "{} is {} bytes; at most {MAX_STRING} are accepted",
                self.at(key),
                s.len()
            ))),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ApiError::Malformed(format!(
                "{} must be a string, got {}",
                self.at(key),
                kind(other)
            ))),
        }
    }

    /// A required non-negative integer.
    pub fn u64(&mut self, key: &'static str) -> Result<u64, ApiError> {
        match self.get(key) {
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or_default()),
            Some(other) => Err(ApiError::Malformed(format!(
                "{} must be a non-negative whole number, got {}",
                self.at(key),
                kind(other)
            ))),
            None => Err(ApiError::Malformed(format!(
                "{} is required (a number)",
                self.at(key)
            ))),
        }
    }

    /// An optional boolean, `false` when absent.
    pub fn flag(&mut self, key: &'static str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(ApiError::Malformed(format!(
                "{} must be true or false, got {}",
                self.at(key),
                kind(other)
            ))),
        }
    }

    /// A required array of lab test codes.
    pub fn tests(&mut self, key: &'static str) -> Result<Vec<Measure>, ApiError> {
        let at = self.at(key);
        match self.get(key) {
            Some(Value::Array(items)) if items.len() <= Measure::ALL.len() * 2 => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let code = v.as_str().ok_or_else(|| {
                        ApiError::Malformed(format!("{at}[{i}] must be a test code string"))
                    })?;
                    Ok(Measure::parse(code)?)
                })
                .collect(),
            Some(Value::Array(_)) => Err(ApiError::Malformed(format!("{at} names too many tests"))),
            _ => Err(ApiError::Malformed(format!(
                "{at} is required: an array of test codes such as [\"ldl\"]"
            ))),
        }
    }

    /// The object at `key`, which must be present.
    pub fn done(self) -> Result<(), ApiError> {
        if let Some(unknown) = self.map.keys().find(|k| !self.used.contains(k.as_str())) {
            let known: Vec<_> = self.used.iter().copied().collect();
            return Err(ApiError::Malformed(format!(
                "{} is not a known field here; known fields: {}",
                self.at(unknown),
                known.join(", ")
            )));
        }
        Ok(())
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn text(raw: &str) -> Result<Text, ApiError> {
    Ok(Text::new(raw)?)
}

fn pick<T: Copy>(field: &str, raw: &str, options: &[(&str, T)]) -> Result<T, ApiError> {
    options
        .iter()
        .find(|(name, _)| *name == raw)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<_> = options.iter().map(|(n, _)| *n).collect();
            ApiError::Unprocessable {
                code: "invalid_value".into(),
                message: format!(
                    "{field} {raw:?} is unknown; use one of {}",
                    names.join(", ")
                ),
            }
        })
}

const BASES: [(&str, TargetBasis); 3] = [
    ("nhg_guideline", TargetBasis::NhgGuideline),
    ("esc_guideline", TargetBasis::EscGuideline),
    ("individual", TargetBasis::Individual),
];
const DOSE_UNITS: [(&str, DoseUnit); 5] = [
    ("mg", DoseUnit::Mg),
    ("ug", DoseUnit::Microgram),
    ("mL", DoseUnit::Ml),
    ("[iU]", DoseUnit::Unit),
    ("tablet", DoseUnit::Tablet),
];
const LEADS: [(&str, Lead); 3] = [
    ("cvrm", Lead::Cvrm),
    ("organ_disease", Lead::OrganDisease),
    ("none", Lead::None),
];
const PRACTITIONERS: [(&str, Practitioner); 3] = [
    ("main", Practitioner::Main),
    ("co", Practitioner::Co),
    ("not_applicable", Practitioner::NotApplicable),
];
const SOURCES: [(&str, MeasurementSource); 3] = [
    ("practice", MeasurementSource::Practice),
    ("hospital", MeasurementSource::Hospital),
    (
        "self_measured_at_home",
        MeasurementSource::SelfMeasuredAtHome,
    ),
];
const OUTCOMES: [(&str, GoalOutcome); 3] = [
    ("achieved", GoalOutcome::Achieved),
    ("abandoned", GoalOutcome::Abandoned),
    ("replaced", GoalOutcome::Replaced),
];
const NOTE_KINDS: [(&str, NoteKind); 3] = [
    ("note", NoteKind::Note),
    ("return_letter", NoteKind::ReturnLetter),
    ("interim_letter", NoteKind::InterimLetter),
];

fn name_of<T: PartialEq + Copy>(options: &[(&'static str, T)], value: T) -> &'static str {
    options
        .iter()
        .find(|(_, v)| *v == value)
        .map_or("unknown", |(n, _)| *n)
}

fn quantity(f: &mut Fields<'_>) -> Result<Quantity, ApiError> {
    let measure = Measure::parse(f.string("measure")?)?;
    let value = f.string("value")?;
    let unit = f.string("unit")?;
    Ok(Quantity::parse(measure, value, unit)?)
}

fn dose(f: &mut Fields<'_>) -> Result<Dose, ApiError> {
    let unit = pick("dose_unit", f.string("dose_unit")?, &DOSE_UNITS)?;
    Ok(Dose::parse(f.string("dose")?, unit)?)
}

fn change_reason(f: &mut Fields<'_>) -> Result<ChangeReason, ApiError> {
    let raw = f.string("change_reason")?;
    let detail = f.opt_string("change_reason_text")?;
    match raw {
        "side_effects" => Ok(ChangeReason::SideEffects),
        "target_not_reached" => Ok(ChangeReason::TargetNotReached),
        "patient_preference" => Ok(ChangeReason::PatientPreference),
        "other" => Ok(ChangeReason::Other(text(detail.unwrap_or_default())?)),
        other => Err(ApiError::Unprocessable {
            code: "invalid_value".into(),
            message: format!(
                "change_reason {other:?} is unknown; use side_effects, target_not_reached, patient_preference or other (with change_reason_text)"
            ),
        }),
    }
}

/// `notification` is a notification id (`n-42-second`) or the causing position (`42`);
/// `recipient` (`first`, `second`, `patient`) may be given beside a position and defaults to
/// the acting line.
fn acknowledgement(f: &mut Fields<'_>, acting: Line) -> Result<Acknowledgement, ApiError> {
    let at = f.at("notification");
    let bad_id = |raw: &str| {
        ApiError::Malformed(format!(
            "{at} {raw:?} is not a notification id; ids look like n-42-second (the causing \
             position and the recipient), or give the position as a number"
        ))
    };
    let (position, from_id) = match f.get("notification") {
        Some(Value::String(raw)) => {
            let raw = raw.clone();
            notify::parse_notification_id(&raw).ok_or_else(|| bad_id(&raw))?
        }
        _ => (f.u64("notification")?, None),
    };
    let given = f
        .opt_string("recipient")?
        .map(|raw| {
            Line::parse(raw).ok_or_else(|| ApiError::Unprocessable {
                code: "invalid_value".into(),
                message: format!("recipient {raw:?} is unknown; use first, second or patient"),
            })
        })
        .transpose()?;
    if let (Some(a), Some(b)) = (from_id, given) {
        if a != b {
            return Err(ApiError::Malformed(format!(
                "the notification id names the {a} but recipient says the {b}; give one of them"
            )));
        }
    }
    Ok(Acknowledgement {
        notification: position,
        recipient: from_id.or(given).unwrap_or(acting),
    })
}

const INTOLERANCE_KINDS: [(&str, IntoleranceKind); 2] = [
    ("intolerance", IntoleranceKind::Intolerance),
    ("contra_indication", IntoleranceKind::ContraIndication),
];

/// `indication_problem` (a problem id on the problem list) or `indication_text` (words), or
/// neither; not both.
fn indication(f: &mut Fields<'_>) -> Result<Option<Indication>, ApiError> {
    let problem = f.opt_string("indication_problem")?;
    let words = f.opt_string("indication_text")?;
    match (problem, words) {
        (Some(_), Some(_)) => Err(ApiError::Malformed(format!(
            "{} and {} exclude each other: name a problem on the problem list or give the \
             indication in words",
            f.at("indication_problem"),
            f.at("indication_text")
        ))),
        (Some(p), None) => Ok(Some(Indication::Problem(element(p)?))),
        (None, Some(w)) => Ok(Some(Indication::Words(text(w)?))),
        (None, None) => Ok(None),
    }
}

fn indication_json(indication: Option<&Indication>) -> Value {
    match indication {
        Some(Indication::Problem(p)) => json!({"indication_problem": p.as_str()}),
        Some(Indication::Words(w)) => json!({"indication_text": w.as_str()}),
        None => json!({}),
    }
}

fn element(raw: &str) -> Result<ElementId, ApiError> {
    Ok(ElementId::parse(raw)?)
}

/// Parses one command object of an append body.
pub fn submission(value: &Value, path: String, acting: Line) -> Result<Submission, ApiError> {
    let mut f = Fields::of(value, path)?;
    let kind = f.string("type")?;
    let reason = text(f.opt_string("reason")?.unwrap_or_default())?;
    let occurred_at = f
        .opt_string("occurred_at")?
        .map(Timestamp::parse_rfc3339)
        .transpose()?;
    let command = command(kind, &mut f, acting)?;
    f.done()?;
    Ok(Submission {
        command,
        occurred_at,
        reason,
    })
}

fn command(kind: &str, f: &mut Fields<'_>, acting: Line) -> Result<Command, ApiError> {
    Ok(match kind {
        "add_care_team_member" => Command::AddCareTeamMember(Member {
            actor: ActorId::parse(f.string("actor")?)?,
            name: text(f.string("name")?)?,
            agb: f.opt_string("agb")?.map(AgbCode::parse).transpose()?,
            role: Role::parse(f.string("role")?).ok_or_else(|| ApiError::Unprocessable {
                code: "invalid_value".into(),
                message: format!(
                    "role is unknown; use one of {}",
                    Role::ALL
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?,
            lead: pick("lead", f.opt_string("lead")?.unwrap_or("none"), &LEADS)?,
            practitioner: pick(
                "practitioner",
                f.opt_string("practitioner")?.unwrap_or("co"),
                &PRACTITIONERS,
            )?,
        }),
        "remove_care_team_member" => Command::RemoveCareTeamMember(MemberRemoval {
            actor: ActorId::parse(f.string("actor")?)?,
        }),
        "start_shared_care" => Command::StartSharedCare(SharedCare {
            arrangement: text(f.string("arrangement")?)?,
        }),
        "end_shared_care" => Command::EndSharedCare(SharedCare {
            arrangement: text(f.string("arrangement")?)?,
        }),
        "set_target" => Command::SetTarget(Target {
            comparator: Comparator::parse(f.string("comparator")?)?,
            value: quantity(f)?,
            basis: pick("basis", f.string("basis")?, &BASES)?,
            rationale: text(f.opt_string("rationale")?.unwrap_or_default())?,
        }),
        "withdraw_target" => Command::WithdrawTarget(TargetWithdrawal {
            measure: Measure::parse(f.string("measure")?)?,
        }),
        "start_medication" => Command::StartMedication(Medication {
            atc: AtcCode::parse(f.string("atc")?)?,
            name: text(f.string("name")?)?,
            dose: dose(f)?,
            frequency: text(f.string("frequency")?)?,
            indication: indication(f)?,
        }),
        "change_dose" => Command::ChangeDose(DoseChange {
            atc: AtcCode::parse(f.string("atc")?)?,
            dose: dose(f)?,
            frequency: text(f.string("frequency")?)?,
            reason: change_reason(f)?,
        }),
        "stop_medication" => Command::StopMedication(MedicationStop {
            atc: AtcCode::parse(f.string("atc")?)?,
            reason: change_reason(f)?,
        }),
        "record_medication_preference" => {
            Command::RecordMedicationPreference(MedicationPreference {
                atc: AtcCode::parse(f.string("atc")?)?,
                name: text(f.string("name")?)?,
                preference: text(f.string("preference")?)?,
            })
        }
        "order_lab" => Command::OrderLab(LabOrder {
            order: element(f.string("order")?)?,
            tests: f.tests("tests")?,
            annual_panel: f.flag("annual_panel")?,
        }),
        "extend_annual_panel" => Command::ExtendAnnualPanel(PanelExtension {
            tests: f.tests("tests")?,
        }),
        "record_lab_result" => Command::RecordLabResult(LabResult {
            order: f.opt_string("order")?.map(element).transpose()?,
            value: quantity(f)?,
        }),
        "record_measurement" => Command::RecordMeasurement(Measurement {
            value: quantity(f)?,
            source: pick("source", f.string("source")?, &SOURCES)?,
        }),
        "set_lifestyle_goal" => Command::SetLifestyleGoal(LifestyleGoal {
            goal: element(f.string("goal")?)?,
            description: text(f.string("description")?)?,
        }),
        "close_lifestyle_goal" => Command::CloseLifestyleGoal(GoalClosure {
            goal: element(f.string("goal")?)?,
            outcome: pick("outcome", f.string("outcome")?, &OUTCOMES)?,
        }),
        "add_note" => Command::AddNote(Note {
            kind: pick("kind", f.opt_string("kind")?.unwrap_or("note"), &NOTE_KINDS)?,
            subject: text(f.string("subject")?)?,
            body: text(f.opt_string("body")?.unwrap_or_default())?,
        }),
        "acknowledge_notification" => Command::AcknowledgeNotification(acknowledgement(f, acting)?),
        "mark_entered_in_error" => Command::MarkEnteredInError(Correction {
            position: f.u64("position")?,
        }),
        "hand_over_lead" => Command::HandOverLead(LeadHandover {
            lead: pick("lead", f.string("lead")?, &LEADS)?,
            to: ActorId::parse(f.string("to")?)?,
        }),
        "record_intolerance" => Command::RecordIntolerance(Intolerance {
            atc: AtcCode::parse(f.string("atc")?)?,
            substance: text(f.string("substance")?)?,
            kind: pick(
                "kind",
                f.opt_string("kind")?.unwrap_or("intolerance"),
                &INTOLERANCE_KINDS,
            )?,
            reaction: text(f.string("reaction")?)?,
        }),
        "record_problem" => {
            let system = ProblemCodeSystem::parse(f.string("code_system")?)?;
            Command::RecordProblem(Problem {
                problem: element(f.string("problem")?)?,
                code: ProblemCode::parse(system, f.string("code")?)?,
                description: text(f.string("description")?)?,
            })
        }
        "resolve_problem" => Command::ResolveProblem(ProblemResolution {
            problem: element(f.string("problem")?)?,
        }),
        "record_smoking_status" => Command::RecordSmokingStatus(SmokingObservation {
            status: SmokingStatus::parse(f.string("status")?)?,
        }),
        "break_glass" => {
            let hours = match f.get("hours") {
                None => careledger_core::event::EmergencyAccess::DEFAULT_HOURS,
                Some(_) => u8::try_from(f.u64("hours")?)
                    .map_err(|_| ApiError::Malformed("hours: 1 to 24".into()))?,
            };
            Command::BreakGlass(careledger_core::event::EmergencyAccess { hours })
        }
        other => {
            return Err(ApiError::Malformed(format!(
                "{other:?} is not a command type; use one of {}",
                COMMAND_TYPES.join(", ")
            )))
        }
    })
}

/// Every command type accepted by `POST /patients/{id}/events`.
pub const COMMAND_TYPES: [&str; 25] = [
    "add_care_team_member",
    "remove_care_team_member",
    "start_shared_care",
    "end_shared_care",
    "set_target",
    "withdraw_target",
    "start_medication",
    "change_dose",
    "stop_medication",
    "record_medication_preference",
    "order_lab",
    "extend_annual_panel",
    "record_lab_result",
    "record_measurement",
    "set_lifestyle_goal",
    "close_lifestyle_goal",
    "add_note",
    "acknowledge_notification",
    "mark_entered_in_error",
    "hand_over_lead",
    "record_intolerance",
    "record_problem",
    "resolve_problem",
    "record_smoking_status",
    "break_glass",
];

/// An append body: `{"expected_revision": ..., "commands": [...]}`.
pub struct AppendBody {
    /// From the body; `If-Match` takes precedence.
    pub expected: Option<ExpectedRevision>,
    /// The commands.
    pub submissions: Vec<Submission>,
}

/// Parses an expected revision: a number, `"no_stream"` or `"any"`.
pub fn expected_revision(raw: &str) -> Result<ExpectedRevision, ApiError> {
    let trimmed = raw.trim().trim_matches('"');
    match trimmed {
        "any" | "*" => Ok(ExpectedRevision::Any),
        "no_stream" => Ok(ExpectedRevision::NoStream),
        n => n.parse::<u64>().map(ExpectedRevision::Exact).map_err(|_| {
            ApiError::Malformed(format!(
                "expected revision {raw:?} is not a revision: use a whole number (0 for a new patient), \"no_stream\" or \"any\""
            ))
        }),
    }
}

/// Parses an append body of an actor acting in the `acting` line (the default recipient of an
/// acknowledgement).
pub fn append_body(value: &Value, acting: Line) -> Result<AppendBody, ApiError> {
    let mut f = Fields::of(value, "")?;
    let expected = match f.get("expected_revision") {
        None => None,
        Some(Value::Number(n)) => Some(expected_revision(&n.to_string())?),
        Some(Value::String(s)) => Some(expected_revision(s)?),
        Some(other) => {
            return Err(ApiError::Malformed(format!(
                "expected_revision must be a number or a string, got {}",
                kind(other)
            )))
        }
    };
    let commands = match f.get("commands") {
        Some(Value::Array(items)) => items,
        _ => {
            return Err(ApiError::Malformed(
                "commands is required: an array of command objects, each with a \"type\"".into(),
            ))
        }
    };
    if commands.is_empty() || commands.len() > careledger_core::ledger::MAX_BATCH {
        return Err(ApiError::Malformed(format!(
            "commands holds 1 to {} commands, got {}",
            careledger_core::ledger::MAX_BATCH,
            commands.len()
        )));
    }
    let submissions = commands
        .iter()
        .enumerate()
        .map(|(i, c)| submission(c, format!("commands[{i}]"), acting))
        .collect::<Result<_, _>>()?;
    f.done()?;
    Ok(AppendBody {
        expected,
        submissions,
    })
}

/// Parses a patient id from a path.
pub fn patient(raw: &str) -> Result<PatientId, ApiError> {
    PatientId::parse(raw).map_err(|e: InvalidInput| ApiError::Malformed(e.to_string()))
}

fn q(value: &Quantity) -> Value {
    json!({"measure": value.measure().code(), "value": value.value_text(), "unit": value.measure().unit()})
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
        b.extend(e);
    }
    base
}

fn reason_json(r: &ChangeReason) -> Value {
    match r {
        ChangeReason::SideEffects => json!({"change_reason": "side_effects"}),
        ChangeReason::TargetNotReached => json!({"change_reason": "target_not_reached"}),
        ChangeReason::PatientPreference => json!({"change_reason": "patient_preference"}),
        ChangeReason::Other(t) => {
            json!({"change_reason": "other", "change_reason_text": t.as_str()})
        }
    }
}

fn tests_json(tests: &[Measure]) -> Value {
    Value::from(tests.iter().map(|t| t.code()).collect::<Vec<_>>())
}

/// The event's payload in the shape of the command that recorded it.
pub fn event_data(event: &Event) -> Value {
    match event {
        Event::CareTeamMemberAdded(m) => json!({
            "actor": m.actor.as_str(), "name": m.name.as_str(), "agb": m.agb.as_ref().map(|a| a.as_str()),
            "role": m.role.as_str(), "line": m.role.line().as_str(),
            "lead": name_of(&LEADS, m.lead), "practitioner": name_of(&PRACTITIONERS, m.practitioner)}),
        Event::CareTeamMemberRemoved(r) => json!({"actor": r.actor.as_str()}),
        Event::LeadHandedOver(h) => json!({"lead": name_of(&LEADS, h.lead), "to": h.to.as_str()}),
        Event::SharedCareStarted(s) | Event::SharedCareEnded(s) => {
            json!({"arrangement": s.arrangement.as_str()})
        }
        Event::TargetSet(t) => merge(
            q(&t.value),
            json!({"comparator": t.comparator.symbol(), "basis": name_of(&BASES, t.basis), "rationale": t.rationale.as_str()}),
        ),
        Event::TargetWithdrawn(w) => json!({"measure": w.measure.code()}),
        Event::MedicationStarted(m) => merge(
            json!({"atc": m.atc.as_str(), "name": m.name.as_str(),
            "dose": m.dose.amount_text(), "dose_unit": m.dose.unit().symbol(), "frequency": m.frequency.as_str()}),
            indication_json(m.indication.as_ref()),
        ),
        Event::MedicationDoseChanged(c) => merge(
            json!({"atc": c.atc.as_str(), "dose": c.dose.amount_text(), "dose_unit": c.dose.unit().symbol(), "frequency": c.frequency.as_str()}),
            reason_json(&c.reason),
        ),
        Event::MedicationStopped(s) => {
            merge(json!({"atc": s.atc.as_str()}), reason_json(&s.reason))
        }
        Event::MedicationPreferenceRecorded(p) => {
            json!({"atc": p.atc.as_str(), "name": p.name.as_str(), "preference": p.preference.as_str()})
        }
        Event::LabOrdered(o) => {
            json!({"order": o.order.as_str(), "tests": tests_json(&o.tests), "annual_panel": o.annual_panel})
        }
        Event::AnnualPanelExtended(e) => json!({"tests": tests_json(&e.tests)}),
        Event::LabResultRecorded(r) => merge(
            q(&r.value),
            json!({"order": r.order.as_ref().map(|o| o.as_str())}),
        ),
        Event::MeasurementRecorded(m) => {
            merge(q(&m.value), json!({"source": name_of(&SOURCES, m.source)}))
        }
        Event::LifestyleGoalSet(g) => {
            json!({"goal": g.goal.as_str(), "description": g.description.as_str()})
        }
        Event::LifestyleGoalClosed(c) => {
            json!({"goal": c.goal.as_str(), "outcome": name_of(&OUTCOMES, c.outcome)})
        }
        Event::NoteAdded(n) => {
            json!({"kind": name_of(&NOTE_KINDS, n.kind), "subject": n.subject.as_str(), "body": n.body.as_str()})
        }
        Event::NotificationAcknowledged(a) => json!({
            "notification": notify::notification_id(a.notification, a.recipient),
            "position": a.notification,
            "recipient": a.recipient.as_str(),
        }),
        Event::EnteredInError(c) => json!({"position": c.position}),
        Event::IntoleranceRecorded(i) => {
            json!({"atc": i.atc.as_str(), "substance": i.substance.as_str(),
            "kind": i.kind.code(), "reaction": i.reaction.as_str()})
        }
        Event::ProblemRecorded(p) => {
            json!({"problem": p.problem.as_str(), "code_system": p.code.system().code(),
            "code": p.code.code(), "description": p.description.as_str()})
        }
        Event::ProblemResolved(r) => json!({"problem": r.problem.as_str()}),
        Event::SmokingStatusRecorded(s) => json!({"status": s.status.code()}),
        Event::SigningKeyRegistered(k) => json!({"actor": k.actor.as_str(),
            "key_id": k.key_id.as_str(),
            "public_key": crate::signature::base64_encode(&k.public_key),
            "system": k.system.as_str()}),
        Event::SigningKeyRevoked(r) => {
            json!({"actor": r.actor.as_str(), "key_id": r.key_id.as_str()})
        }
        Event::GlassBroken(a) => json!({"hours": a.hours}),
    }
}

fn uid(u: &Uid) -> String {
    u.to_string()
}

/// A recorded event as JSON, with its place in the chain.
pub fn recorded_event(e: &RecordedEvent) -> Value {
    let r = &e.record;
    json!({
        "position": e.position,
        "patient": r.patient.as_str(),
        "revision": r.revision,
        "event_id": uid(&r.event_id),
        "type": r.event.kind(),
        "recorded_at": r.recorded_at.to_string(),
        "occurred_at": r.occurred_at.to_string(),
        "actor": {"id": r.actor.id.as_str(), "name": r.actor.name.as_str(), "role": r.actor.role.as_str(), "line": r.actor.line().as_str(),
            "organisation": r.actor.organisation.as_ref().map(|o| o.as_str())},
        "reason": r.reason.as_str(),
        "correlation_id": uid(&r.correlation_id),
        "causation_id": r.causation_id.as_ref().map(uid),
        "idempotency_key": r.idempotency_key,
        "signed_request": r.signed_request.as_ref().map(|h| h.to_hex()),
        "format_version": e.format_version,
        "prev_hash": e.prev_hash.to_hex(),
        "hash": e.hash.to_hex(),
        "data": event_data(&r.event),
    })
}
