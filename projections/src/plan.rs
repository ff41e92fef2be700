//! The current individual care plan (IZP) of a patient, each element with its provenance.
//!
//! Corrections and clinical time (see `docs/clinical-rules.md`):
//! - an event marked entered in error drops out of every fact the plan derives (care team,
//!   shared care, targets, active medication, open lab orders, the annual panel, latest values,
//!   preferences, goals, notes); it stays in the histories the plan keeps (the series of each
//!   measure, the medication history, the corrections with who corrected, when and why);
//! - a correction may arrive long after the fact it retracts, so each fact that a retraction can
//!   change is kept as its history and folded again from the entries that stand;
//! - values are ordered by clinical time (`occurred_at`, ties by position): a result entered late
//!   is not the latest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use careledger_core::care_team;
use careledger_core::decide::TeamMember;
use careledger_core::event::{
    ChangeReason, Dose, Event, GoalOutcome, MeasurementSource, NoteKind, TargetBasis,
};
use careledger_core::ids::{ActorId, AgbCode, AtcCode, ElementId, Text};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::{RecordedEvent, Timestamp};
use careledger_core::role::{Lead, Line, Practitioner, Role};

use careledger_core::clinical::Indication;

use crate::clinical::{IntoleranceEntry, ProblemEntry, SmokingEntry};
use crate::lab::AnnualOrder;
use crate::Provenance;

/// The measures of the yearly CVRM lab panel before any specialist's additions.
pub const BASE_ANNUAL_PANEL: [Measure; 6] = [
    Measure::TotalCholesterol,
    Measure::LdlCholesterol,
    Measure::Glucose,
    Measure::Creatinine,
    Measure::Egfr,
    Measure::Potassium,
];

/// A member of the care team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamEntry {
    /// The member.
    pub actor: ActorId,
    /// Display name.
    pub name: Text,
    /// AGB code.
    pub agb: Option<AgbCode>,
    /// Role.
    pub role: Role,
    /// Line.
    pub line: Line,
    /// What they lead.
    pub lead: Lead,
    /// Main or co-practitioner.
    pub practitioner: Practitioner,
    /// Who added them.
    pub added: Provenance,
}

/// A target value as it stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetValue {
    /// Comparator.
    pub comparator: Comparator,
    /// Value.
    pub value: Quantity,
    /// Guideline or individual.
    pub basis: TargetBasis,
}

/// The effective target of a measure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetEntry {
    /// The target in force.
    pub effective: TargetValue,
    /// Why, in the setter's words (empty for a guideline default).
    pub rationale: Text,
    /// The event that set it; `None` for the guideline default.
    pub set: Option<Provenance>,
    /// The target it replaced (the guideline default or an earlier target).
    pub replaced: Option<TargetValue>,
}

/// Whether the latest value meets a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TargetStatus {
    /// The latest value meets the target.
    Met,
    /// The latest value does not meet the target.
    NotMet,
    /// No value recorded yet.
    NoData,
}

/// An active medication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MedicationEntry {
    /// Name.
    pub name: Text,
    /// Current dose.
    pub dose: Dose,
    /// Current frequency.
    pub frequency: Text,
    /// Who started it (the prescriber's line is `started.line`).
    pub started: Provenance,
    /// The last dose change that stands, if any.
    pub last_change: Option<Provenance>,
}

/// What happened to a medication after its start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MedicationStepKind {
    /// The dose or frequency changed.
    DoseChanged {
        /// The new dose.
        dose: Dose,
        /// The new frequency.
        frequency: Text,
    },
    /// The medication was stopped.
    Stopped,
}

/// A dose change or stop of a medication episode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MedicationStep {
    /// Dose change or stop.
    pub kind: MedicationStepKind,
    /// Why (agreement 4: side effects or target not reached across lines).
    pub reason: ChangeReason,
    /// Who, when (both clocks), and the reason in words.
    pub recorded: Provenance,
}

/// One episode of a medication: from its start to its stop, with the dose changes between.
/// Kept after the stop, as medication history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MedicationEpisode {
    /// Name.
    pub name: Text,
    /// The dose it started at.
    pub dose: Dose,
    /// The frequency it started at.
    pub frequency: Text,
    /// Who started it; its position names the episode.
    pub started: Provenance,
    /// Dose changes and stops, in ledger order, corrected ones included.
    pub steps: Vec<MedicationStep>,
}

/// Where a medication episode stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EpisodeStatus {
    /// Being taken.
    Active,
    /// Stopped by a stop that stands.
    Stopped,
    /// Its start was marked entered in error: it never counted, nor did its steps.
    EnteredInError,
}

/// A change to the care team, kept to fold the team again after a correction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum TeamChange {
    Added(TeamEntry),
    Removed(ActorId, u64),
    /// A lead handed to a member (who becomes its main practitioner), at a position.
    LeadHandedOver(Lead, ActorId, u64),
}

impl TeamChange {
    fn position(&self) -> u64 {
        match self {
            TeamChange::Added(t) => t.added.position,
            TeamChange::Removed(_, p) | TeamChange::LeadHandedOver(_, _, p) => *p,
        }
    }
}

/// A target set (`Some`) or withdrawn (`None`), kept to fold the target again after a correction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TargetStep {
    set: Option<(TargetValue, Text)>,
    recorded: Provenance,
}

/// A lab order as placed, open or not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabOrderRecord {
    /// Tests ordered.
    pub tests: Vec<Measure>,
    /// Part of the annual CVRM panel.
    pub annual_panel: bool,
    /// Who ordered, when.
    pub ordered: Provenance,
}

/// A medication preference.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferenceEntry {
    /// The medication.
    pub atc: AtcCode,
    /// Its name.
    pub name: Text,
    /// The preference.
    pub preference: Text,
    /// Who stated it.
    pub recorded: Provenance,
}

/// An open lab order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabOrderEntry {
    /// Tests ordered.
    pub tests: Vec<Measure>,
    /// Tests still without a result.
    pub pending: Vec<Measure>,
    /// Part of the annual CVRM panel.
    pub annual_panel: bool,
    /// Who ordered.
    pub ordered: Provenance,
}

/// A test of the annual panel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelTest {
    /// The test.
    pub test: Measure,
    /// The specialist's addition that put it there; `None` for the base panel.
    pub added: Option<Provenance>,
}

/// A value of a measure: a lab result or a measurement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueEntry {
    /// The value.
    pub value: Quantity,
    /// Where it was measured; `None` for a lab result.
    pub source: Option<MeasurementSource>,
    /// For a lab result, the order it answers.
    pub order: Option<ElementId>,
    /// Who recorded it, when it was taken (`occurred_at`) and recorded, and why.
    /// Shared with the event's audit entry: a series of readings holds each reading's
    /// provenance once, not a copy beside the audit trail's.
    pub recorded: Provenance,
}

impl ValueEntry {
    /// The clinical order of values: when taken, then position.
    pub fn clinical_key(&self) -> (careledger_core::record::Timestamp, u64) {
        (self.recorded.occurred_at, self.recorded.position)
    }
}

/// The direction of a trend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// The last reading is higher than the first.
    Rising,
    /// The last reading is lower than the first.
    Falling,
    /// Equal.
    Steady,
}

/// Which values a trend is taken over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrendBasis {
    /// The patient's own readings at home: what the home-trend signal uses.
    SelfMeasuredAtHome,
    /// Every value that stands, of any source.
    AllValues,
}

/// The trend of the last readings of a measure, in clinical time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trend {
    /// Which values.
    pub basis: TrendBasis,
    /// The readings' positions, oldest first by clinical time.
    pub positions: Vec<u64>,
    /// Their mean, scaled as the measure's values (rounded toward zero).
    pub mean_scaled: i64,
    /// First to last.
    pub direction: Direction,
}

/// A lifestyle goal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalEntry {
    /// The goal.
    pub description: Text,
    /// How it ended, if it did.
    pub outcome: Option<GoalOutcome>,
    /// Who set it.
    pub set: Provenance,
    /// Who closed it, if it was.
    pub closed: Option<Provenance>,
}

/// A note or letter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteEntry {
    /// Note or letter.
    pub kind: NoteKind,
    /// Subject.
    pub subject: Text,
    /// Body.
    pub body: Text,
    /// Who wrote it.
    pub written: Provenance,
}

/// A break of the glass (seed 002): a practitioner outside the care team opened the record in
/// acute need.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyAccessEntry {
    /// When the access ends.
    pub until: Timestamp,
    /// Who broke the glass, in which role, when and why (the reason).
    pub opened: Provenance,
}

impl EmergencyAccessEntry {
    /// True while the access lasts at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.until > now
    }
}

/// The individual care plan (IZP) of one patient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarePlan {
    /// The stream revision folded up to.
    pub revision: u64,
    /// Active care-team members (agreement 1).
    pub care_team: Vec<TeamEntry>,
    /// The shared-care arrangement, while active (agreement 1).
    pub shared_care: Option<(Text, Provenance)>,
    /// Effective targets per measure (agreements 2 and 3).
    pub targets: BTreeMap<Measure, TargetEntry>,
    /// Active medication by ATC code (agreement 4).
    pub medications: BTreeMap<AtcCode, MedicationEntry>,
    /// Every medication episode by ATC code, active, stopped or entered in error, in the order
    /// started (agreements 4 and 6).
    pub medication_history: BTreeMap<AtcCode, Vec<MedicationEpisode>>,
    /// Medication preferences (agreement 2).
    pub preferences: Vec<PreferenceEntry>,
    /// Open lab orders (agreement 7).
    pub lab_orders: BTreeMap<ElementId, LabOrderEntry>,
    /// Every lab order as placed, open or not.
    pub lab_order_history: BTreeMap<ElementId, LabOrderRecord>,
    /// The annual CVRM panel with the specialist's additions (agreements 2 and 7).
    pub annual_panel: Vec<PanelTest>,
    /// Latest lab result per test by clinical time (agreement 5).
    pub lab_results: BTreeMap<Measure, ValueEntry>,
    /// Latest measurement per measure by clinical time (agreement 5).
    pub measurements: BTreeMap<Measure, ValueEntry>,
    /// Every value per measure, lab results and measurements, ordered by clinical time
    /// (`occurred_at`, then position), corrected ones included.
    pub series: BTreeMap<Measure, Vec<ValueEntry>>,
    /// Lifestyle goals, open and closed.
    pub goals: BTreeMap<ElementId, GoalEntry>,
    /// Notes and letters (agreement 5).
    pub notes: Vec<NoteEntry>,
    /// The corrections: by the position marked entered in error, the correction's provenance
    /// (who corrected, in which role and line, when, why, and its position).
    pub corrections: BTreeMap<u64, Provenance>,
    pub(crate) team_history: Vec<TeamChange>,
    /// Starts (`Some`) and ends (`None`) of shared care.
    pub(crate) shared_care_history: Vec<(Option<Text>, Provenance)>,
    pub(crate) target_history: BTreeMap<Measure, Vec<TargetStep>>,
    pub(crate) panel_extensions: Vec<(Vec<Measure>, Provenance)>,
    /// Intolerances and contra-indications, in the order recorded ([`crate::clinical`]).
    pub intolerances: Vec<IntoleranceEntry>,
    /// The problem list, active and resolved.
    pub problems: BTreeMap<ElementId, ProblemEntry>,
    /// The indication of each medication that was started with one.
    pub indications: BTreeMap<AtcCode, Indication>,
    /// Smoking-status observations, in the order recorded.
    pub smoking_history: Vec<SmokingEntry>,
    /// The last annual CVRM lab order ([`crate::lab`]).
    pub last_annual_order: Option<AnnualOrder>,
    /// Every break of the glass on this record, in the order recorded: both lines see who
    /// opened it and why; what they recorded is in the audit trail under their name.
    pub emergency_access: Vec<EmergencyAccessEntry>,
}

impl CarePlan {
    /// The emergency access `actor` holds at `now` in `role`, if any (the last break of the
    /// glass counts, as in the write model).
    pub fn emergency_access_of(
        &self,
        actor: &ActorId,
        role: Role,
        now: Timestamp,
    ) -> Option<&EmergencyAccessEntry> {
        self.emergency_access
            .iter()
            .rev()
            .find(|e| &e.opened.actor == actor)
            .filter(|e| e.opened.role == role && e.is_open(now))
    }
}

impl CarePlan {
    /// Each lead with its main practitioner, `None` while unassigned (a plan founded by the
    /// cardiologist has no CVRM lead until a GP takes it; both lines see that).
    pub fn leads(&self) -> [(Lead, Option<&TeamEntry>); 2] {
        let main = |lead| {
            self.care_team
                .iter()
                .find(|m| m.lead == lead && m.practitioner == Practitioner::Main)
        };
        [
            (Lead::Cvrm, main(Lead::Cvrm)),
            (Lead::OrganDisease, main(Lead::OrganDisease)),
        ]
    }
}

impl Default for CarePlan {
    fn default() -> Self {
        let default_target = |comparator, measure, scaled| {
            let value = Quantity::new(measure, scaled).ok()?;
            Some((
                measure,
                TargetEntry {
                    effective: TargetValue {
                        comparator,
                        value,
                        basis: TargetBasis::NhgGuideline,
                    },
                    rationale: Text::default(),
                    set: None,
                    replaced: None,
                },
            ))
        };
        let targets = [
            default_target(Comparator::AtMost, Measure::LdlCholesterol, 25),
            default_target(Comparator::Below, Measure::SystolicBloodPressure, 140),
        ]
        .into_iter()
        .flatten()
        .collect();
        Self {
            revision: 0,
            care_team: Vec::new(),
            shared_care: None,
            targets,
            medications: BTreeMap::new(),
            medication_history: BTreeMap::new(),
            preferences: Vec::new(),
            lab_orders: BTreeMap::new(),
            lab_order_history: BTreeMap::new(),
            annual_panel: BASE_ANNUAL_PANEL
                .iter()
                .map(|&test| PanelTest { test, added: None })
                .collect(),
            lab_results: BTreeMap::new(),
            measurements: BTreeMap::new(),
            series: BTreeMap::new(),
            goals: BTreeMap::new(),
            notes: Vec::new(),
            corrections: BTreeMap::new(),
            team_history: Vec::new(),
            shared_care_history: Vec::new(),
            target_history: BTreeMap::new(),
            panel_extensions: Vec::new(),
            intolerances: Vec::new(),
            problems: BTreeMap::new(),
            indications: BTreeMap::new(),
            smoking_history: Vec::new(),
            last_annual_order: None,
            emergency_access: Vec::new(),
        }
    }
}

impl CarePlan {
    /// The most recent value of a measure that stands, lab result or measurement, by clinical
    /// time (`occurred_at`, ties broken by position).
    pub fn latest_value(&self, measure: Measure) -> Option<&ValueEntry> {
        self.standing_values(measure).next_back()
    }

    /// The values of a measure that stand (not entered in error), in clinical order.
    pub fn standing_values(
        &self,
        measure: Measure,
    ) -> impl DoubleEndedIterator<Item = &ValueEntry> {
        self.series
            .get(&measure)
            .into_iter()
            .flatten()
            .filter(|v| !self.is_entered_in_error(v.recorded.position))
    }

    /// Whether the latest value of the measure meets its effective target.
    pub fn target_status(&self, measure: Measure) -> TargetStatus {
        let Some(target) = self.targets.get(&measure) else {
            return TargetStatus::NoData;
        };
        match self.latest_value(measure) {
            None => TargetStatus::NoData,
            Some(v)
                if target
                    .effective
                    .comparator
                    .holds(v.value.scaled(), target.effective.value.scaled()) =>
            {
                TargetStatus::Met
            }
            Some(_) => TargetStatus::NotMet,
        }
    }

    /// The trend of the last `readings` values of a measure that stand: over the patient's home
    /// readings when there are that many (the home-trend signal's basis), otherwise over all
    /// values; `None` with fewer than two values.
    pub fn trend(&self, measure: Measure, readings: u32) -> Option<Trend> {
        let n = readings.max(2) as usize;
        let home = self.home_trend(measure, readings);
        if home.is_some() {
            return home;
        }
        let values: Vec<&ValueEntry> = self.standing_values(measure).rev().take(n).collect();
        trend_of(TrendBasis::AllValues, values)
    }

    /// The trend of the last `readings` self-measured home readings that stand, if there are
    /// that many (at least one).
    pub fn home_trend(&self, measure: Measure, readings: u32) -> Option<Trend> {
        let n = readings.max(1) as usize;
        let values: Vec<&ValueEntry> = self
            .standing_values(measure)
            .rev()
            .filter(|v| v.source == Some(MeasurementSource::SelfMeasuredAtHome))
            .take(n)
            .collect();
        if values.len() < n {
            return None;
        }
        trend_of(TrendBasis::SelfMeasuredAtHome, values)
    }

    /// True when the event at `position` was marked as entered in error.
    pub fn is_entered_in_error(&self, position: u64) -> bool {
        self.corrections.contains_key(&position)
    }

    /// The positions marked entered in error, ascending.
    pub fn entered_in_error(&self) -> impl Iterator<Item = u64> + '_ {
        self.corrections.keys().copied()
    }

    /// Where a medication episode stands.
    pub fn episode_status(&self, episode: &MedicationEpisode) -> EpisodeStatus {
        if self.is_entered_in_error(episode.started.position) {
            return EpisodeStatus::EnteredInError;
        }
        if self.standing_stop(episode).is_some() {
            EpisodeStatus::Stopped
        } else {
            EpisodeStatus::Active
        }
    }

    /// The stop of an episode that stands, if any.
    pub fn standing_stop<'e>(&self, episode: &'e MedicationEpisode) -> Option<&'e MedicationStep> {
        episode.steps.iter().find(|s| {
            s.kind == MedicationStepKind::Stopped && !self.is_entered_in_error(s.recorded.position)
        })
    }

    /// The entries a correction of `position` voids with it, with the line that wrote each: the
    /// dose changes and stop of a medication episode whose start is corrected (a drug that was
    /// never started was never changed nor stopped).
    pub fn voided_by(&self, position: u64) -> Vec<(u64, Line)> {
        self.medication_history
            .values()
            .flatten()
            .find(|e| e.started.position == position)
            .map(|episode| {
                episode
                    .steps
                    .iter()
                    .filter(|s| !self.is_entered_in_error(s.recorded.position))
                    .map(|s| (s.recorded.position, s.recorded.line))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The start position of the episode an entry at `position` was voided with, if it was.
    pub fn voided_with(&self, position: u64) -> Option<u64> {
        self.medication_history.values().flatten().find_map(|e| {
            (self.is_entered_in_error(e.started.position)
                && e.steps.iter().any(|s| s.recorded.position == position))
            .then_some(e.started.position)
        })
    }
}

fn trend_of(basis: TrendBasis, mut newest_first: Vec<&ValueEntry>) -> Option<Trend> {
    if newest_first.len() < 2 && basis == TrendBasis::AllValues {
        return None;
    }
    newest_first.reverse();
    let values = newest_first;
    let first = values.first()?.value.scaled();
    let last = values.last()?.value.scaled();
    let sum: i64 = values.iter().map(|v| v.value.scaled()).sum();
    Some(Trend {
        basis,
        positions: values.iter().map(|v| v.recorded.position).collect(),
        mean_scaled: sum / values.len() as i64,
        direction: match last.cmp(&first) {
            std::cmp::Ordering::Greater => Direction::Rising,
            std::cmp::Ordering::Less => Direction::Falling,
            std::cmp::Ordering::Equal => Direction::Steady,
        },
    })
}

/// The NHG default for a measure, if the guideline sets one.
fn guideline_default(measure: Measure) -> Option<TargetEntry> {
    CarePlan::default().targets.remove(&measure)
}

/// Folds one event of the patient into the plan.
pub(crate) fn apply(plan: &mut CarePlan, recorded: &RecordedEvent, shared: &Provenance) {
    let p = shared.clone();
    plan.revision = recorded.record.revision;
    match recorded.event() {
        Event::CareTeamMemberAdded(m) => {
            plan.team_history.push(TeamChange::Added(TeamEntry {
                actor: m.actor.clone(),
                name: m.name.clone(),
                agb: m.agb.clone(),
                role: m.role,
                line: m.role.line(),
                lead: m.lead,
                practitioner: m.practitioner,
                added: p,
            }));
            refresh_team(plan);
        }
        Event::CareTeamMemberRemoved(r) => {
            plan.team_history
                .push(TeamChange::Removed(r.actor.clone(), p.position));
            refresh_team(plan);
        }
        Event::LeadHandedOver(h) => {
            plan.team_history
                .push(TeamChange::LeadHandedOver(h.lead, h.to.clone(), p.position));
            refresh_team(plan);
        }
        Event::SharedCareStarted(s) => {
            plan.shared_care_history
                .push((Some(s.arrangement.clone()), p));
            refresh_shared_care(plan);
        }
        Event::SharedCareEnded(_) => {
            plan.shared_care_history.push((None, p));
            refresh_shared_care(plan);
        }
        Event::TargetSet(t) => {
            let measure = t.value.measure();
            let effective = TargetValue {
                comparator: t.comparator,
                value: t.value,
                basis: t.basis,
            };
            let step = TargetStep {
                set: Some((effective, t.rationale.clone())),
                recorded: p,
            };
            plan.target_history.entry(measure).or_default().push(step);
            refresh_target(plan, measure);
        }
        Event::TargetWithdrawn(w) => {
            let step = TargetStep {
                set: None,
                recorded: p,
            };
            plan.target_history.entry(w.measure).or_default().push(step);
            refresh_target(plan, w.measure);
        }
        Event::MedicationStarted(m) => {
            let episode = MedicationEpisode {
                name: m.name.clone(),
                dose: m.dose,
                frequency: m.frequency.clone(),
                started: p,
                steps: Vec::new(),
            };
            plan.medication_history
                .entry(m.atc.clone())
                .or_default()
                .push(episode);
            refresh_medication(plan, &m.atc);
        }
        Event::MedicationDoseChanged(c) => {
            let kind = MedicationStepKind::DoseChanged {
                dose: c.dose,
                frequency: c.frequency.clone(),
            };
            add_step(plan, &c.atc, kind, c.reason.clone(), p);
        }
        Event::MedicationStopped(s) => {
            add_step(
                plan,
                &s.atc,
                MedicationStepKind::Stopped,
                s.reason.clone(),
                p,
            );
        }
        Event::MedicationPreferenceRecorded(m) => plan.preferences.push(PreferenceEntry {
            atc: m.atc.clone(),
            name: m.name.clone(),
            preference: m.preference.clone(),
            recorded: p,
        }),
        Event::LabOrdered(o) => {
            let record = LabOrderRecord {
                tests: o.tests.clone(),
                annual_panel: o.annual_panel,
                ordered: p,
            };
            plan.lab_order_history.insert(o.order.clone(), record);
            refresh_order(plan, &o.order);
        }
        Event::AnnualPanelExtended(ext) => {
            plan.panel_extensions.push((ext.tests.clone(), p));
            refresh_panel(plan);
        }
        Event::LabResultRecorded(r) => {
            let entry = ValueEntry {
                value: r.value,
                source: None,
                order: r.order.clone(),
                recorded: shared.clone(),
            };
            add_value(plan, entry);
            if let Some(order) = &r.order {
                refresh_order(plan, order);
            }
        }
        Event::MeasurementRecorded(m) => {
            let entry = ValueEntry {
                value: m.value,
                source: Some(m.source),
                order: None,
                recorded: shared.clone(),
            };
            add_value(plan, entry);
        }
        Event::LifestyleGoalSet(g) => {
            let entry = GoalEntry {
                description: g.description.clone(),
                outcome: None,
                set: p,
                closed: None,
            };
            plan.goals.insert(g.goal.clone(), entry);
        }
        Event::LifestyleGoalClosed(c) => {
            if let Some(goal) = plan.goals.get_mut(&c.goal) {
                goal.outcome = Some(c.outcome);
                goal.closed = Some(p);
            }
        }
        Event::NoteAdded(n) => plan.notes.push(NoteEntry {
            kind: n.kind,
            subject: n.subject.clone(),
            body: n.body.clone(),
            written: p,
        }),
        Event::GlassBroken(access) => {
            let until = p.recorded_at.micros() + i64::from(access.hours) * 3_600_000_000;
            plan.emergency_access.push(EmergencyAccessEntry {
                until: Timestamp::from_micros(until),
                opened: p,
            });
        }
        Event::NotificationAcknowledged(_)
        | Event::IntoleranceRecorded(_)
        | Event::ProblemRecorded(_)
        | Event::ProblemResolved(_)
        | Event::SmokingStatusRecorded(_)
        | Event::SigningKeyRegistered(_)
        | Event::SigningKeyRevoked(_) => {}
        Event::EnteredInError(c) => retract(plan, c.position, p),
    }
}

/// Takes the event at `position` out of every fact the plan derives; it stays in the histories,
/// marked with the correction's provenance.
///
/// Corrections are final (a correction is never itself corrected), so what is removed here is
/// never needed again; facts that fold over a history are folded again.
fn retract(plan: &mut CarePlan, position: u64, correction: Provenance) {
    plan.corrections.insert(position, correction);
    plan.preferences.retain(|e| e.recorded.position != position);
    plan.notes.retain(|e| e.written.position != position);
    plan.goals.retain(|_, g| g.set.position != position);
    for goal in plan.goals.values_mut() {
        if goal.closed.as_ref().is_some_and(|c| c.position == position) {
            goal.outcome = None;
            goal.closed = None;
        }
    }
    refresh_team(plan);
    refresh_shared_care(plan);
    let measures: Vec<Measure> = plan.target_history.keys().copied().collect();
    for measure in measures {
        refresh_target(plan, measure);
    }
    let atcs: Vec<AtcCode> = plan.medication_history.keys().cloned().collect();
    for atc in &atcs {
        refresh_medication(plan, atc);
    }
    let orders: Vec<ElementId> = plan.lab_order_history.keys().cloned().collect();
    for order in &orders {
        refresh_order(plan, order);
    }
    refresh_panel(plan);
    let measures: Vec<Measure> = plan.series.keys().copied().collect();
    for measure in measures {
        refresh_latest(plan, measure);
    }
}

/// The team folded by core's rule ([`careledger_core::care_team::fold`]), the one the ledger
/// authorises writes with; each member shown with the name, AGB code and provenance of the
/// addition that made them a member.
fn refresh_team(plan: &mut CarePlan) {
    let changes = plan.team_history.iter().map(|change| {
        let core = match change {
            TeamChange::Added(entry) => care_team::TeamChange::Added {
                actor: &entry.actor,
                member: TeamMember {
                    role: entry.role,
                    lead: entry.lead,
                    practitioner: entry.practitioner,
                },
            },
            TeamChange::Removed(actor, _) => care_team::TeamChange::Removed { actor },
            TeamChange::LeadHandedOver(lead, to, _) => {
                care_team::TeamChange::LeadHandedOver { lead: *lead, to }
            }
        };
        (change.position(), core)
    });
    let corrections = &plan.corrections;
    let team = care_team::fold(changes, |p| corrections.contains_key(&p));
    let added: BTreeMap<u64, &TeamEntry> = plan
        .team_history
        .iter()
        .filter_map(|change| match change {
            TeamChange::Added(entry) => Some((entry.added.position, entry)),
            _ => None,
        })
        .collect();
    plan.care_team = team
        .into_iter()
        .filter_map(|m| {
            let entry = added.get(&m.added_at)?;
            Some(TeamEntry {
                lead: m.member.lead,
                practitioner: m.member.practitioner,
                ..TeamEntry::clone(entry)
            })
        })
        .collect();
}

fn refresh_shared_care(plan: &mut CarePlan) {
    plan.shared_care = plan
        .shared_care_history
        .iter()
        .rev()
        .find(|(_, p)| !plan.corrections.contains_key(&p.position))
        .and_then(|(arrangement, p)| arrangement.clone().map(|a| (a, p.clone())));
}

/// The standing target of `measure`: the last step of its history not entered in error (the
/// guideline's default when it withdrew the target, or when there is none), with the value it
/// replaced, that of the step before it. Read from the end, so that a long history costs no more
/// than a short one.
fn refresh_target(plan: &mut CarePlan, measure: Measure) {
    let mut standing = (plan.target_history.get(&measure).into_iter().flatten())
        .rev()
        .filter(|step| !plan.corrections.contains_key(&step.recorded.position));
    let (last, before) = (standing.next(), standing.next());
    let default = guideline_default(measure);
    let replaced = match before.map(|step| &step.set) {
        Some(Some((effective, _))) => Some(effective.clone()),
        Some(None) | None => default.as_ref().map(|d| d.effective.clone()),
    };
    let entry = match last {
        None => default,
        Some(step) => match &step.set {
            Some((effective, rationale)) => Some(TargetEntry {
                effective: effective.clone(),
                rationale: rationale.clone(),
                set: Some(step.recorded.clone()),
                replaced,
            }),
            None => default.map(|d| TargetEntry { replaced, ..d }),
        },
    };
    match entry {
        Some(e) => plan.targets.insert(measure, e),
        None => plan.targets.remove(&measure),
    };
}

/// A dose change or stop belongs to the episode active when it was recorded.
fn add_step(
    plan: &mut CarePlan,
    atc: &AtcCode,
    kind: MedicationStepKind,
    reason: ChangeReason,
    recorded: Provenance,
) {
    let corrections = &plan.corrections;
    let active = plan.medication_history.get_mut(atc).and_then(|episodes| {
        episodes.iter_mut().rev().find(|e| {
            !corrections.contains_key(&e.started.position)
                && !e.steps.iter().any(|s| {
                    s.kind == MedicationStepKind::Stopped
                        && !corrections.contains_key(&s.recorded.position)
                })
        })
    });
    if let Some(episode) = active {
        episode.steps.push(MedicationStep {
            kind,
            reason,
            recorded,
        });
    }
    refresh_medication(plan, atc);
}

fn refresh_medication(plan: &mut CarePlan, atc: &AtcCode) {
    let active = plan
        .medication_history
        .get(atc)
        .into_iter()
        .flatten()
        .rev()
        .find(|e| plan.episode_status(e) == EpisodeStatus::Active)
        .map(|episode| {
            let mut entry = MedicationEntry {
                name: episode.name.clone(),
                dose: episode.dose,
                frequency: episode.frequency.clone(),
                started: episode.started.clone(),
                last_change: None,
            };
            for step in &episode.steps {
                if plan.is_entered_in_error(step.recorded.position) {
                    continue;
                }
                if let MedicationStepKind::DoseChanged { dose, frequency } = &step.kind {
                    entry.dose = *dose;
                    entry.frequency = frequency.clone();
                    entry.last_change = Some(step.recorded.clone());
                }
            }
            entry
        });
    match active {
        Some(entry) => plan.medications.insert(atc.clone(), entry),
        None => plan.medications.remove(atc),
    };
}

/// An order is open while it stands and a test of it has no result that stands.
fn refresh_order(plan: &mut CarePlan, order: &ElementId) {
    let open = plan.lab_order_history.get(order).and_then(|record| {
        if plan.is_entered_in_error(record.ordered.position) {
            return None;
        }
        let pending: Vec<Measure> = record
            .tests
            .iter()
            .copied()
            .filter(|test| {
                !plan
                    .standing_values(*test)
                    .any(|v| v.order.as_ref() == Some(order))
            })
            .collect();
        (!pending.is_empty()).then(|| LabOrderEntry {
            tests: record.tests.clone(),
            pending,
            annual_panel: record.annual_panel,
            ordered: record.ordered.clone(),
        })
    });
    match open {
        Some(entry) => plan.lab_orders.insert(order.clone(), entry),
        None => plan.lab_orders.remove(order),
    };
}

fn refresh_panel(plan: &mut CarePlan) {
    let mut panel: Vec<PanelTest> = BASE_ANNUAL_PANEL
        .iter()
        .map(|&test| PanelTest { test, added: None })
        .collect();
    for (tests, p) in &plan.panel_extensions {
        if plan.corrections.contains_key(&p.position) {
            continue;
        }
        for test in tests {
            if !panel.iter().any(|t| t.test == *test) {
                panel.push(PanelTest {
                    test: *test,
                    added: Some(p.clone()),
                });
            }
        }
    }
    plan.annual_panel = panel;
}

/// Inserts a value into its measure's series at its place in clinical time.
fn add_value(plan: &mut CarePlan, entry: ValueEntry) {
    let measure = entry.value.measure();
    let series = plan.series.entry(measure).or_default();
    let key = entry.clinical_key();
    let at = series.partition_point(|v| v.clinical_key() <= key);
    series.insert(at, entry);
    refresh_latest(plan, measure);
}

fn refresh_latest(plan: &mut CarePlan, measure: Measure) {
    let lab = plan
        .standing_values(measure)
        .rev()
        .find(|v| v.source.is_none())
        .cloned();
    let measured = plan
        .standing_values(measure)
        .rev()
        .find(|v| v.source.is_some())
        .cloned();
    match lab {
        Some(v) => plan.lab_results.insert(measure, v),
        None => plan.lab_results.remove(&measure),
    };
    match measured {
        Some(v) => plan.measurements.insert(measure, v),
        None => plan.measurements.remove(&measure),
    };
}
