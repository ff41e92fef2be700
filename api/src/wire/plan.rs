//! The care plan as the API returns it ([`PlanView`], `GET /patients/{patient}/plan`) and the
//! series of one measure ([`MeasureSeriesView`], `GET /patients/{patient}/measures/{measure}`),
//! with the provenance every element carries.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use careledger_core::clinical::{Indication, SmokingStatus as CoreSmokingStatus};
use careledger_core::event::ChangeReason;
use careledger_core::ids::{AtcCode, PatientId};
use careledger_core::quantity::{format_scaled, Measure, Quantity};
use careledger_projections::plan::{
    CarePlan, EpisodeStatus as CoreEpisodeStatus, MedicationEpisode, MedicationStepKind, Trend,
    ValueEntry,
};
use careledger_projections::Provenance;

use super::names::{
    ChangeReasonCode, CodeSystemUri, Comparator, Direction, EpisodeStatus, GoalOutcome,
    IntoleranceKind, Lead, LeadStatus, Line, MeasureCode, MeasurementSource, NoteKind,
    Practitioner, Role, SmokingStatus, TargetBasis, TargetStatus, TrendBasis, ValueKind,
};
use super::scalar::{HashHex, Time};

/// Values per measure the plan shows (the newest by clinical time); the rest are at
/// `GET /patients/{patient}/measures/{measure}`.
pub const PLAN_SERIES_VALUES: usize = 5;

/// Where an element of the plan comes from: the event that set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProvenanceView {
    /// The event's global position.
    pub position: u64,
    /// Its hash.
    #[schema(value_type = HashHex)]
    pub hash: String,
    /// Who recorded it.
    pub actor: String,
    /// Their display name.
    pub actor_name: String,
    /// The role they acted in.
    pub role: Role,
    /// Their line.
    pub line: Line,
    /// When the ledger recorded it.
    pub recorded_at: Time,
    /// When it happened, by the clinician's word.
    pub occurred_at: Time,
    /// Why.
    pub reason: String,
}

impl From<&Provenance> for ProvenanceView {
    fn from(p: &Provenance) -> Self {
        ProvenanceView {
            position: p.position,
            hash: p.hash.to_hex(),
            actor: p.actor.to_string(),
            actor_name: p.actor_name.to_string(),
            role: Role(p.role),
            line: Line(p.line),
            recorded_at: Time(p.recorded_at),
            occurred_at: Time(p.occurred_at),
            reason: p.reason.to_string(),
        }
    }
}

fn provenance(p: &Provenance) -> ProvenanceView {
    ProvenanceView::from(p)
}

/// A value with its unit, and both as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QuantityView {
    /// The value in the measure's precision ("1.8").
    pub value: String,
    /// The measure's unit.
    pub unit: String,
    /// Value and unit ("1.8 mmol/L").
    pub text: String,
}

impl From<&Quantity> for QuantityView {
    fn from(q: &Quantity) -> Self {
        QuantityView {
            value: q.value_text(),
            unit: q.measure().unit().to_owned(),
            text: q.to_string(),
        }
    }
}

/// Why a medication was changed or stopped: its code and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeReasonView {
    /// The code.
    pub code: ChangeReasonCode,
    /// In words ("side effects", "other: ...").
    pub text: String,
}

impl From<&ChangeReason> for ChangeReasonView {
    fn from(r: &ChangeReason) -> Self {
        ChangeReasonView {
            code: ChangeReasonCode::from(r),
            text: r.to_string(),
        }
    }
}

/// The mark on an entry marked entered in error: the correction's provenance; `None` for an
/// entry that stands.
fn correction_mark(plan: &CarePlan, position: u64) -> Option<ProvenanceView> {
    plan.corrections.get(&position).map(provenance)
}

/// One value of a measure's series, with its correction mark.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ValueEntryView {
    /// The value.
    pub value: QuantityView,
    /// Measurement or lab result.
    pub kind: ValueKind,
    /// Where a measurement was taken; `null` for a lab result.
    pub source: Option<MeasurementSource>,
    /// The lab order a result answers.
    pub order: Option<String>,
    /// When it was taken, by the clinician's word.
    pub occurred_at: Time,
    /// When the ledger recorded it.
    pub recorded_at: Time,
    /// The event that recorded it.
    pub provenance: ProvenanceView,
    /// The correction that marked it entered in error, if one did.
    pub entered_in_error: Option<ProvenanceView>,
}

impl ValueEntryView {
    /// A value of `plan`'s series.
    pub fn new(plan: &CarePlan, v: &ValueEntry) -> Self {
        ValueEntryView {
            value: QuantityView::from(&v.value),
            kind: if v.source.is_some() {
                ValueKind::Measurement
            } else {
                ValueKind::LabResult
            },
            source: v.source.map(Into::into),
            order: v.order.as_ref().map(ToString::to_string),
            occurred_at: Time(v.recorded.occurred_at),
            recorded_at: Time(v.recorded.recorded_at),
            provenance: provenance(&v.recorded),
            entered_in_error: correction_mark(plan, v.recorded.position),
        }
    }
}

/// The trend of a measure over its last readings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrendView {
    /// Which readings it is taken over.
    pub basis: TrendBasis,
    /// How many readings.
    pub readings: u64,
    /// Their positions.
    pub positions: Vec<u64>,
    /// Their mean, in the measure's precision.
    pub mean: String,
    /// The measure's unit.
    pub unit: String,
    /// Rising, falling or steady.
    pub direction: Direction,
}

impl TrendView {
    /// The trend `t` of `measure`.
    pub fn new(measure: Measure, t: &Trend) -> Self {
        TrendView {
            basis: t.basis.into(),
            readings: t.positions.len() as u64,
            positions: t.positions.clone(),
            mean: format_scaled(t.mean_scaled, measure.decimals()),
            unit: measure.unit().to_owned(),
            direction: t.direction.into(),
        }
    }
}

fn values(plan: &CarePlan, measure: Measure) -> &[ValueEntry] {
    plan.series
        .get(&measure)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Every value of one measure in clinical order (`occurred_at`, then position), corrected ones
/// marked, with the latest value that stands and the trend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeasureSeriesView {
    /// The patient.
    pub patient: String,
    /// The measure.
    pub measure: MeasureCode,
    /// Its name.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// The latest value that stands.
    pub latest: Option<ValueEntryView>,
    /// The trend over the configured readings.
    pub trend: Option<TrendView>,
    /// Every value.
    pub values: Vec<ValueEntryView>,
}

impl MeasureSeriesView {
    /// The series of `measure` in `plan`; `trend_readings` is the number of readings a trend
    /// is taken over.
    pub fn new(
        patient: &PatientId,
        plan: &CarePlan,
        measure: Measure,
        trend_readings: u32,
    ) -> Self {
        MeasureSeriesView {
            patient: patient.to_string(),
            measure: MeasureCode(measure),
            name: measure.name().to_owned(),
            unit: measure.unit().to_owned(),
            latest: plan
                .latest_value(measure)
                .map(|v| ValueEntryView::new(plan, v)),
            trend: plan
                .trend(measure, trend_readings)
                .map(|t| TrendView::new(measure, &t)),
            values: values(plan, measure)
                .iter()
                .map(|v| ValueEntryView::new(plan, v))
                .collect(),
        }
    }
}

/// The plan's summary of a measure's series: its last values and trend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SeriesSummaryView {
    /// The measure.
    pub measure: MeasureCode,
    /// Its unit.
    pub unit: String,
    /// How many values it has.
    pub values: u64,
    /// The last values in clinical order, at most [`PLAN_SERIES_VALUES`].
    pub last: Vec<ValueEntryView>,
    /// The trend over the configured readings.
    pub trend: Option<TrendView>,
}

impl SeriesSummaryView {
    fn new(plan: &CarePlan, measure: Measure, trend_readings: u32) -> Self {
        let values = values(plan, measure);
        let last = &values[values.len().saturating_sub(PLAN_SERIES_VALUES)..];
        SeriesSummaryView {
            measure: MeasureCode(measure),
            unit: measure.unit().to_owned(),
            values: values.len() as u64,
            last: last.iter().map(|v| ValueEntryView::new(plan, v)).collect(),
            trend: plan
                .trend(measure, trend_readings)
                .map(|t| TrendView::new(measure, &t)),
        }
    }
}

/// The care plan (IZP) with provenance: what stands (entries marked entered in error count for
/// nothing), the medication history, the last values of each measure with their trend, and the
/// corrections.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PlanView {
    /// The patient.
    pub patient: String,
    /// The patient's revision the plan shows.
    pub revision: u64,
    /// CVRM and the organ disease, each with its main practitioner.
    pub leads: Vec<LeadView>,
    /// The care team.
    pub care_team: Vec<TeamMemberView>,
    /// The shared-care arrangement, while it lasts.
    pub shared_care: Option<SharedCareView>,
    /// The effective target of each measure.
    pub targets: Vec<TargetView>,
    /// The active medication.
    pub medications: Vec<MedicationView>,
    /// Medication preferences.
    pub medication_preferences: Vec<PreferenceView>,
    /// Lab orders with tests pending.
    pub open_lab_orders: Vec<LabOrderView>,
    /// The annual CVRM panel with the specialist's additions.
    pub annual_panel: Vec<PanelTestView>,
    /// The latest result of each lab test.
    pub lab_results: Vec<LabResultView>,
    /// The latest measurement of each measure.
    pub measurements: Vec<MeasurementView>,
    /// Lifestyle goals.
    pub lifestyle_goals: Vec<GoalView>,
    /// Notes and letters.
    pub notes: Vec<NoteView>,
    /// Each measure's last values and trend.
    pub series: Vec<SeriesSummaryView>,
    /// Every medication episode, stopped and corrected ones included.
    pub medication_history: Vec<EpisodeView>,
    /// The positions marked entered in error.
    pub entered_in_error: Vec<u64>,
    /// The corrections, by corrected position.
    pub corrections: Vec<CorrectionView>,
    /// Intolerances and contra-indications.
    pub intolerances: Vec<IntoleranceView>,
    /// The problem list.
    pub problems: Vec<ProblemView>,
    /// The latest smoking status.
    pub smoking_status: Option<SmokingStatusView>,
    /// Every break of the glass on this record (seed 002): who opened it outside the care team,
    /// in which role, when, why, and until when; what they recorded is in the audit trail.
    pub emergency_access: Vec<EmergencyAccessView>,
}

/// Every break of the glass by one actor (`GET /actors/{actor}/emergency-access`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmergencyAccessListView {
    /// The actor.
    pub actor: String,
    /// Each use, oldest first.
    pub uses: Vec<EmergencyAccessUseView>,
}

/// One break of the glass, with the patient it opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmergencyAccessUseView {
    /// The patient.
    pub patient: String,
    /// When the access ended or ends.
    pub until: Time,
    /// Who broke the glass, in which role, when and why.
    pub opened: ProvenanceView,
}

/// A break of the glass: emergency access by a practitioner outside the care team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EmergencyAccessView {
    /// When the access ends (it is open until then).
    pub until: Time,
    /// Who broke the glass, in which role, when and why.
    pub opened: ProvenanceView,
}

/// A lead and who holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LeadView {
    /// The lead.
    pub lead: Lead,
    /// Its main practitioner, if assigned.
    pub main_practitioner: Option<MainPractitionerView>,
    /// Assigned or not.
    pub status: LeadStatus,
}

/// The main practitioner of a lead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MainPractitionerView {
    /// The member.
    pub actor: String,
    /// Their display name.
    pub name: String,
    /// Their role.
    pub role: Role,
}

/// A member of the care team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TeamMemberView {
    /// The member.
    pub actor: String,
    /// Their display name.
    pub name: String,
    /// Their AGB code.
    pub agb: Option<String>,
    /// Their role.
    pub role: Role,
    /// Their line.
    pub line: Line,
    /// What they lead.
    pub lead: Lead,
    /// Main or co-practitioner.
    pub practitioner: Practitioner,
    /// Who added them.
    pub provenance: ProvenanceView,
}

/// The shared-care arrangement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SharedCareView {
    /// What was agreed.
    pub arrangement: String,
    /// Who started it.
    pub provenance: ProvenanceView,
}

/// The effective target of a measure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TargetView {
    /// The measure.
    pub measure: MeasureCode,
    /// How a value is compared with it.
    pub comparator: Comparator,
    /// The target value.
    pub target: QuantityView,
    /// Guideline or individual.
    pub basis: TargetBasis,
    /// Why.
    pub rationale: String,
    /// The guideline default it replaces.
    pub replaced: Option<ReplacedTargetView>,
    /// The latest value that stands.
    pub latest: Option<LatestValueView>,
    /// Whether the latest value meets it.
    pub status: TargetStatus,
    /// Who set it; `null` for a guideline default.
    pub provenance: Option<ProvenanceView>,
    /// True when the event that set it was marked entered in error.
    pub entered_in_error: bool,
}

/// A target a set target replaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReplacedTargetView {
    /// How a value was compared with it.
    pub comparator: Comparator,
    /// Its value.
    pub target: QuantityView,
    /// Its basis.
    pub basis: TargetBasis,
}

/// The latest value of a target's measure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LatestValueView {
    /// The value.
    pub value: QuantityView,
    /// The position that recorded it.
    pub position: u64,
}

/// An active medication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MedicationView {
    /// The ATC code.
    pub atc: String,
    /// Its name.
    pub name: String,
    /// The current dose ("20 mg").
    pub dose: String,
    /// The current frequency.
    pub frequency: String,
    /// The prescriber's line.
    pub prescribed_by_line: Line,
    /// Who started it.
    pub started: ProvenanceView,
    /// The last dose change that stands.
    pub last_change: Option<ProvenanceView>,
    /// Why it is given.
    pub indication: Option<IndicationView>,
    /// True when its start was marked entered in error.
    pub entered_in_error: bool,
}

/// Why a medication is given: a problem on the list, or words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum IndicationView {
    /// A problem on the problem list.
    Problem {
        /// The problem's id.
        problem: String,
        /// Its code with its system ("ICPC K75"), if the problem is on the list.
        code: Option<String>,
        /// Its description, if the problem is on the list.
        description: Option<String>,
    },
    /// In words.
    Words {
        /// The indication.
        text: String,
    },
}

impl IndicationView {
    fn new(plan: &CarePlan, indication: &Indication) -> Self {
        match indication {
            Indication::Problem(id) => IndicationView::Problem {
                problem: id.to_string(),
                code: plan.problems.get(id).map(|p| p.code.to_string()),
                description: plan.problems.get(id).map(|p| p.description.to_string()),
            },
            Indication::Words(words) => IndicationView::Words {
                text: words.to_string(),
            },
        }
    }
}

/// A medication preference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PreferenceView {
    /// The preferred medication or group.
    pub atc: String,
    /// Its name.
    pub name: String,
    /// The preference in words.
    pub preference: String,
    /// Who recorded it.
    pub provenance: ProvenanceView,
}

/// A lab order with tests pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LabOrderView {
    /// The order's id.
    pub order: String,
    /// The tests ordered.
    pub tests: Vec<MeasureCode>,
    /// The tests without a result yet.
    pub pending: Vec<MeasureCode>,
    /// True for the yearly CVRM panel.
    pub annual_panel: bool,
    /// Who ordered it.
    pub provenance: ProvenanceView,
    /// When it was ordered, by the clinician's word.
    pub pending_since: Time,
}

/// A test of the annual panel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PanelTestView {
    /// The test.
    pub test: MeasureCode,
    /// The specialist's addition, if it is one.
    pub added_by_specialist: Option<ProvenanceView>,
}

/// The latest result of a lab test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LabResultView {
    /// The test.
    pub test: MeasureCode,
    /// The value.
    pub value: QuantityView,
    /// Who recorded it.
    pub provenance: ProvenanceView,
    /// True when it was marked entered in error.
    pub entered_in_error: bool,
}

/// The latest measurement of a measure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MeasurementView {
    /// The measure.
    pub measure: MeasureCode,
    /// The value.
    pub value: QuantityView,
    /// Where it was taken.
    pub source: Option<MeasurementSource>,
    /// Who recorded it.
    pub provenance: ProvenanceView,
    /// True when it was marked entered in error.
    pub entered_in_error: bool,
}

/// A lifestyle goal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GoalView {
    /// The goal's id.
    pub goal: String,
    /// The goal.
    pub description: String,
    /// How it ended; `null` while open.
    pub outcome: Option<GoalOutcome>,
    /// Who set it.
    pub provenance: ProvenanceView,
}

/// A note or letter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NoteView {
    /// Note or letter.
    pub kind: NoteKind,
    /// The subject.
    pub subject: String,
    /// The body.
    pub body: String,
    /// Who wrote it.
    pub provenance: ProvenanceView,
}

/// A correction: the corrected position and who corrected, when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct CorrectionView {
    /// The position marked entered in error.
    pub position: u64,
    /// The correction.
    pub correction: ProvenanceView,
}

/// One episode of a medication, from its start to its stop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EpisodeView {
    /// The ATC code.
    pub atc: String,
    /// Its name.
    pub name: String,
    /// Active, stopped or entered in error.
    pub status: EpisodeStatus,
    /// The start.
    pub started: EpisodeStartView,
    /// The dose changes, corrected ones included and marked.
    pub dose_changes: Vec<DoseChangeView>,
    /// The stop that stands, for a stopped episode.
    pub stopped: Option<StopView>,
    /// Stops marked entered in error.
    pub stops_entered_in_error: Vec<VoidedStopView>,
}

/// The start of an episode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EpisodeStartView {
    /// The dose it started at.
    pub dose: String,
    /// The frequency it started at.
    pub frequency: String,
    /// Who started it.
    pub provenance: ProvenanceView,
    /// The correction that marked it entered in error, if one did.
    pub entered_in_error: Option<ProvenanceView>,
}

/// A dose change of an episode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DoseChangeView {
    /// The new dose.
    pub dose: String,
    /// The new frequency.
    pub frequency: String,
    /// Why.
    pub change_reason: ChangeReasonView,
    /// Who changed it.
    pub provenance: ProvenanceView,
    /// The correction that marked it entered in error, if one did.
    pub entered_in_error: Option<ProvenanceView>,
}

/// The stop that stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StopView {
    /// Why.
    pub change_reason: ChangeReasonView,
    /// Who stopped it.
    pub by: String,
    /// Their display name.
    pub by_name: String,
    /// Their role.
    pub role: Role,
    /// Their line.
    pub line: Line,
    /// When, by the clinician's word.
    pub occurred_at: Time,
    /// When the ledger recorded it.
    pub recorded_at: Time,
    /// The stop's provenance.
    pub provenance: ProvenanceView,
}

/// A stop marked entered in error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VoidedStopView {
    /// Why it was stopped.
    pub change_reason: ChangeReasonView,
    /// Who stopped it.
    pub provenance: ProvenanceView,
    /// The correction.
    pub entered_in_error: Option<ProvenanceView>,
}

impl EpisodeView {
    fn new(plan: &CarePlan, atc: &AtcCode, e: &MedicationEpisode) -> Self {
        let status = plan.episode_status(e);
        EpisodeView {
            atc: atc.to_string(),
            name: e.name.to_string(),
            status: status.into(),
            started: EpisodeStartView {
                dose: e.dose.to_string(),
                frequency: e.frequency.to_string(),
                provenance: provenance(&e.started),
                entered_in_error: correction_mark(plan, e.started.position),
            },
            dose_changes: e
                .steps
                .iter()
                .filter_map(|s| match &s.kind {
                    MedicationStepKind::DoseChanged { dose, frequency } => Some(DoseChangeView {
                        dose: dose.to_string(),
                        frequency: frequency.to_string(),
                        change_reason: ChangeReasonView::from(&s.reason),
                        provenance: provenance(&s.recorded),
                        entered_in_error: correction_mark(plan, s.recorded.position),
                    }),
                    MedicationStepKind::Stopped => None,
                })
                .collect(),
            stopped: plan
                .standing_stop(e)
                .filter(|_| status == CoreEpisodeStatus::Stopped)
                .map(|s| StopView {
                    change_reason: ChangeReasonView::from(&s.reason),
                    by: s.recorded.actor.to_string(),
                    by_name: s.recorded.actor_name.to_string(),
                    role: Role(s.recorded.role),
                    line: Line(s.recorded.line),
                    occurred_at: Time(s.recorded.occurred_at),
                    recorded_at: Time(s.recorded.recorded_at),
                    provenance: provenance(&s.recorded),
                }),
            stops_entered_in_error: e
                .steps
                .iter()
                .filter(|s| {
                    s.kind == MedicationStepKind::Stopped
                        && plan.is_entered_in_error(s.recorded.position)
                })
                .map(|s| VoidedStopView {
                    change_reason: ChangeReasonView::from(&s.reason),
                    provenance: provenance(&s.recorded),
                    entered_in_error: correction_mark(plan, s.recorded.position),
                })
                .collect(),
        }
    }
}

/// An intolerance or contra-indication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IntoleranceView {
    /// The substance or group.
    pub atc: String,
    /// Its name.
    pub substance: String,
    /// Intolerance or contra-indication.
    pub kind: IntoleranceKind,
    /// The reaction in words.
    pub reaction: String,
    /// True when a stop for side effects recorded it.
    pub from_stop: bool,
    /// Who recorded it.
    pub provenance: ProvenanceView,
    /// True when it was marked entered in error.
    pub entered_in_error: bool,
}

/// A problem on the problem list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProblemView {
    /// The problem's id.
    pub problem: String,
    /// The code system's FHIR URI.
    pub code_system: CodeSystemUri,
    /// The code.
    pub code: String,
    /// In words.
    pub description: String,
    /// False once resolved.
    pub active: bool,
    /// Who recorded it.
    pub provenance: ProvenanceView,
    /// Who resolved it.
    pub resolved: Option<ProvenanceView>,
    /// True when it was marked entered in error.
    pub entered_in_error: bool,
}

/// The latest smoking status, coded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SmokingStatusView {
    /// The status.
    pub status: SmokingStatus,
    /// In words.
    pub text: String,
    /// The observation's LOINC code.
    pub loinc: String,
    /// The status as a SNOMED CT finding.
    pub snomed: String,
    /// Who recorded it.
    pub provenance: ProvenanceView,
}

impl PlanView {
    /// `plan` of `patient`; `trend_readings` is the number of readings a trend is taken over.
    pub fn new(patient: &PatientId, plan: &CarePlan, trend_readings: u32) -> Self {
        let in_error = |p: &Provenance| plan.is_entered_in_error(p.position);
        PlanView {
            patient: patient.to_string(),
            revision: plan.revision,
            leads: plan
                .leads()
                .iter()
                .map(|(lead, main)| LeadView {
                    lead: (*lead).into(),
                    main_practitioner: main.map(|m| MainPractitionerView {
                        actor: m.actor.to_string(),
                        name: m.name.to_string(),
                        role: Role(m.role),
                    }),
                    status: if main.is_some() {
                        LeadStatus::Assigned
                    } else {
                        LeadStatus::Unassigned
                    },
                })
                .collect(),
            care_team: plan
                .care_team
                .iter()
                .map(|m| TeamMemberView {
                    actor: m.actor.to_string(),
                    name: m.name.to_string(),
                    agb: m.agb.as_ref().map(|a| a.as_str().to_owned()),
                    role: Role(m.role),
                    line: Line(m.line),
                    lead: m.lead.into(),
                    practitioner: m.practitioner.into(),
                    provenance: provenance(&m.added),
                })
                .collect(),
            shared_care: plan.shared_care.as_ref().map(|(text, p)| SharedCareView {
                arrangement: text.to_string(),
                provenance: provenance(p),
            }),
            targets: plan
                .targets
                .iter()
                .map(|(measure, t)| TargetView {
                    measure: MeasureCode(*measure),
                    comparator: Comparator(t.effective.comparator),
                    target: QuantityView::from(&t.effective.value),
                    basis: t.effective.basis.into(),
                    rationale: t.rationale.to_string(),
                    replaced: t.replaced.as_ref().map(|r| ReplacedTargetView {
                        comparator: Comparator(r.comparator),
                        target: QuantityView::from(&r.value),
                        basis: r.basis.into(),
                    }),
                    latest: plan.latest_value(*measure).map(|v| LatestValueView {
                        value: QuantityView::from(&v.value),
                        position: v.recorded.position,
                    }),
                    status: plan.target_status(*measure).into(),
                    provenance: t.set.as_ref().map(provenance),
                    entered_in_error: t.set.as_ref().is_some_and(in_error),
                })
                .collect(),
            medications: plan
                .medications
                .iter()
                .map(|(atc, m)| MedicationView {
                    atc: atc.to_string(),
                    name: m.name.to_string(),
                    dose: m.dose.to_string(),
                    frequency: m.frequency.to_string(),
                    prescribed_by_line: Line(m.started.line),
                    started: provenance(&m.started),
                    last_change: m.last_change.as_ref().map(provenance),
                    indication: plan.indication(atc).map(|i| IndicationView::new(plan, i)),
                    entered_in_error: in_error(&m.started),
                })
                .collect(),
            medication_preferences: plan
                .preferences
                .iter()
                .map(|p| PreferenceView {
                    atc: p.atc.to_string(),
                    name: p.name.to_string(),
                    preference: p.preference.to_string(),
                    provenance: provenance(&p.recorded),
                })
                .collect(),
            open_lab_orders: plan
                .lab_orders
                .iter()
                .map(|(id, o)| LabOrderView {
                    order: id.to_string(),
                    tests: o.tests.iter().copied().map(MeasureCode).collect(),
                    pending: o.pending.iter().copied().map(MeasureCode).collect(),
                    annual_panel: o.annual_panel,
                    provenance: provenance(&o.ordered),
                    pending_since: Time(o.ordered.occurred_at),
                })
                .collect(),
            annual_panel: plan
                .annual_panel
                .iter()
                .map(|t| PanelTestView {
                    test: MeasureCode(t.test),
                    added_by_specialist: t.added.as_ref().map(provenance),
                })
                .collect(),
            lab_results: plan
                .lab_results
                .iter()
                .map(|(m, v)| LabResultView {
                    test: MeasureCode(*m),
                    value: QuantityView::from(&v.value),
                    provenance: provenance(&v.recorded),
                    entered_in_error: in_error(&v.recorded),
                })
                .collect(),
            measurements: plan
                .measurements
                .iter()
                .map(|(m, v)| MeasurementView {
                    measure: MeasureCode(*m),
                    value: QuantityView::from(&v.value),
                    source: v.source.map(Into::into),
                    provenance: provenance(&v.recorded),
                    entered_in_error: in_error(&v.recorded),
                })
                .collect(),
            lifestyle_goals: plan
                .goals
                .iter()
                .map(|(id, g)| GoalView {
                    goal: id.to_string(),
                    description: g.description.to_string(),
                    outcome: g.outcome.map(Into::into),
                    provenance: provenance(&g.set),
                })
                .collect(),
            notes: plan
                .notes
                .iter()
                .map(|n| NoteView {
                    kind: n.kind.into(),
                    subject: n.subject.to_string(),
                    body: n.body.to_string(),
                    provenance: provenance(&n.written),
                })
                .collect(),
            series: plan
                .series
                .keys()
                .map(|m| SeriesSummaryView::new(plan, *m, trend_readings))
                .collect(),
            medication_history: plan
                .medication_history
                .iter()
                .flat_map(|(atc, episodes)| episodes.iter().map(move |e| (atc, e)))
                .map(|(atc, e)| EpisodeView::new(plan, atc, e))
                .collect(),
            entered_in_error: plan.entered_in_error().collect(),
            corrections: plan
                .corrections
                .iter()
                .map(|(position, c)| CorrectionView {
                    position: *position,
                    correction: provenance(c),
                })
                .collect(),
            intolerances: plan
                .intolerances
                .iter()
                .map(|i| IntoleranceView {
                    atc: i.atc.to_string(),
                    substance: i.substance.to_string(),
                    kind: IntoleranceKind(i.kind),
                    reaction: i.reaction.to_string(),
                    from_stop: i.from_stop,
                    provenance: provenance(&i.recorded),
                    entered_in_error: in_error(&i.recorded),
                })
                .collect(),
            problems: plan
                .problems
                .iter()
                .map(|(id, p)| ProblemView {
                    problem: id.to_string(),
                    code_system: CodeSystemUri(p.code.system()),
                    code: p.code.code().to_owned(),
                    description: p.description.to_string(),
                    active: p.resolved.is_none(),
                    provenance: provenance(&p.recorded),
                    resolved: p.resolved.as_ref().map(provenance),
                    entered_in_error: in_error(&p.recorded),
                })
                .collect(),
            smoking_status: plan.smoking_status().map(|s| SmokingStatusView {
                status: SmokingStatus(s.status),
                text: s.status.name().to_owned(),
                loinc: CoreSmokingStatus::LOINC.to_owned(),
                snomed: s.status.snomed().to_owned(),
                provenance: provenance(&s.recorded),
            }),
            emergency_access: plan
                .emergency_access
                .iter()
                .map(|e| EmergencyAccessView {
                    until: Time(e.until),
                    opened: provenance(&e.opened),
                })
                .collect(),
        }
    }
}
