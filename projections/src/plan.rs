//! The current individual care plan (IZP) of a patient, each element with its provenance.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use careledger_core::event::{Dose, Event, GoalOutcome, MeasurementSource, NoteKind, TargetBasis};
use careledger_core::ids::{ActorId, AgbCode, AtcCode, ElementId, Text};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::RecordedEvent;
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
    /// The last dose change, if any.
    pub last_change: Option<Provenance>,
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

/// The latest value of a measure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueEntry {
    /// The value.
    pub value: Quantity,
    /// Where it was measured; `None` for a lab result.
    pub source: Option<MeasurementSource>,
    /// Who recorded it.
    pub recorded: Provenance,
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
    /// Medication preferences (agreement 2).
    pub preferences: Vec<PreferenceEntry>,
    /// Open lab orders (agreement 7).
    pub lab_orders: BTreeMap<ElementId, LabOrderEntry>,
    /// The annual CVRM panel with the specialist's additions (agreements 2 and 7).
    pub annual_panel: Vec<PanelTest>,
    /// Latest lab result per test (agreement 5).
    pub lab_results: BTreeMap<Measure, ValueEntry>,
    /// Latest measurement per measure (agreement 5).
    pub measurements: BTreeMap<Measure, ValueEntry>,
    /// Lifestyle goals, open and closed.
    pub goals: BTreeMap<ElementId, GoalEntry>,
    /// Notes and letters (agreement 5).
    pub notes: Vec<NoteEntry>,
    /// Positions marked as entered in error.
    pub entered_in_error: Vec<u64>,
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
            preferences: Vec::new(),
            lab_orders: BTreeMap::new(),
            annual_panel: BASE_ANNUAL_PANEL
                .iter()
                .map(|&test| PanelTest { test, added: None })
                .collect(),
            lab_results: BTreeMap::new(),
            measurements: BTreeMap::new(),
            goals: BTreeMap::new(),
            notes: Vec::new(),
            entered_in_error: Vec::new(),
            intolerances: Vec::new(),
            problems: BTreeMap::new(),
            indications: BTreeMap::new(),
            smoking_history: Vec::new(),
            last_annual_order: None,
        }
    }
}

impl CarePlan {
    /// The most recent value of a measure, lab result or measurement, by the clinician's time.
    pub fn latest_value(&self, measure: Measure) -> Option<&ValueEntry> {
        let lab = self.lab_results.get(&measure);
        let measured = self.measurements.get(&measure);
        match (lab, measured) {
            (Some(a), Some(b)) => Some(if b.recorded.occurred_at > a.recorded.occurred_at {
                b
            } else {
                a
            }),
            (a, b) => a.or(b),
        }
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

    /// True when the event at `position` was marked as entered in error.
    pub fn is_entered_in_error(&self, position: u64) -> bool {
        self.entered_in_error.contains(&position)
    }
}

/// The NHG default for a measure, if the guideline sets one.
fn guideline_default(measure: Measure) -> Option<TargetEntry> {
    CarePlan::default().targets.remove(&measure)
}

/// Folds one event of the patient into the plan.
pub(crate) fn apply(plan: &mut CarePlan, recorded: &RecordedEvent) {
    let p = Provenance::of(recorded);
    plan.revision = recorded.record.revision;
    match recorded.event() {
        Event::CareTeamMemberAdded(m) => plan.care_team.push(TeamEntry {
            actor: m.actor.clone(),
            name: m.name.clone(),
            agb: m.agb.clone(),
            role: m.role,
            line: m.role.line(),
            lead: m.lead,
            practitioner: m.practitioner,
            added: p,
        }),
        Event::CareTeamMemberRemoved(r) => plan.care_team.retain(|t| t.actor != r.actor),
        Event::SharedCareStarted(s) => plan.shared_care = Some((s.arrangement.clone(), p)),
        Event::SharedCareEnded(_) => plan.shared_care = None,
        Event::TargetSet(t) => {
            let measure = t.value.measure();
            let replaced = plan.targets.get(&measure).map(|e| e.effective.clone());
            let effective = TargetValue {
                comparator: t.comparator,
                value: t.value,
                basis: t.basis,
            };
            plan.targets.insert(
                measure,
                TargetEntry {
                    effective,
                    rationale: t.rationale.clone(),
                    set: Some(p),
                    replaced,
                },
            );
        }
        Event::TargetWithdrawn(w) => match guideline_default(w.measure) {
            Some(default) => {
                let replaced = plan.targets.get(&w.measure).map(|e| e.effective.clone());
                plan.targets.insert(
                    w.measure,
                    TargetEntry {
                        replaced,
                        ..default
                    },
                );
            }
            None => {
                plan.targets.remove(&w.measure);
            }
        },
        Event::MedicationStarted(m) => {
            let entry = MedicationEntry {
                name: m.name.clone(),
                dose: m.dose,
                frequency: m.frequency.clone(),
                started: p,
                last_change: None,
            };
            plan.medications.insert(m.atc.clone(), entry);
        }
        Event::MedicationDoseChanged(c) => {
            if let Some(entry) = plan.medications.get_mut(&c.atc) {
                entry.dose = c.dose;
                entry.frequency = c.frequency.clone();
                entry.last_change = Some(p);
            }
        }
        Event::MedicationStopped(s) => {
            plan.medications.remove(&s.atc);
        }
        Event::MedicationPreferenceRecorded(m) => plan.preferences.push(PreferenceEntry {
            atc: m.atc.clone(),
            name: m.name.clone(),
            preference: m.preference.clone(),
            recorded: p,
        }),
        Event::LabOrdered(o) => {
            let entry = LabOrderEntry {
                tests: o.tests.clone(),
                pending: o.tests.clone(),
                annual_panel: o.annual_panel,
                ordered: p,
            };
            plan.lab_orders.insert(o.order.clone(), entry);
        }
        Event::AnnualPanelExtended(ext) => {
            for test in &ext.tests {
                if !plan.annual_panel.iter().any(|t| t.test == *test) {
                    plan.annual_panel.push(PanelTest {
                        test: *test,
                        added: Some(p.clone()),
                    });
                }
            }
        }
        Event::LabResultRecorded(r) => {
            let measure = r.value.measure();
            if let Some(order) = r.order.as_ref().and_then(|o| plan.lab_orders.get_mut(o)) {
                order.pending.retain(|t| *t != measure);
            }
            if let Some(order) = &r.order {
                if plan
                    .lab_orders
                    .get(order)
                    .is_some_and(|o| o.pending.is_empty())
                {
                    plan.lab_orders.remove(order);
                }
            }
            plan.lab_results.insert(
                measure,
                ValueEntry {
                    value: r.value,
                    source: None,
                    recorded: p,
                },
            );
        }
        Event::MeasurementRecorded(m) => {
            let entry = ValueEntry {
                value: m.value,
                source: Some(m.source),
                recorded: p,
            };
            plan.measurements.insert(m.value.measure(), entry);
        }
        Event::LifestyleGoalSet(g) => {
            let entry = GoalEntry {
                description: g.description.clone(),
                outcome: None,
                set: p,
            };
            plan.goals.insert(g.goal.clone(), entry);
        }
        Event::LifestyleGoalClosed(c) => {
            if let Some(goal) = plan.goals.get_mut(&c.goal) {
                goal.outcome = Some(c.outcome);
            }
        }
        Event::NoteAdded(n) => plan.notes.push(NoteEntry {
            kind: n.kind,
            subject: n.subject.clone(),
            body: n.body.clone(),
            written: p,
        }),
        Event::NotificationAcknowledged(_)
        | Event::IntoleranceRecorded(_)
        | Event::ProblemRecorded(_)
        | Event::ProblemResolved(_)
        | Event::SmokingStatusRecorded(_) => {}
        Event::EnteredInError(c) => plan.entered_in_error.push(c.position),
    }
}
