//! The clinical catalogue in the plan: intolerances and contra-indications (recorded directly
//! or by a stop for side effects), the problem list, the indication of each medication, and
//! smoking status.
//!
//! Entries marked as entered in error stay in the lists (the view marks them) but no longer
//! count: [`CarePlan::active_intolerances`] and [`CarePlan::smoking_status`] skip them.

use serde::{Deserialize, Serialize};

use careledger_core::clinical::{Indication, IntoleranceKind, ProblemCode, SmokingStatus};
use careledger_core::event::{ChangeReason, Event};
use careledger_core::ids::{AtcCode, Text};
use careledger_core::record::RecordedEvent;

use crate::plan::CarePlan;
use crate::Provenance;

/// An intolerance or contra-indication, with who recorded it and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntoleranceEntry {
    /// The substance or group.
    pub atc: AtcCode,
    /// Its name.
    pub substance: Text,
    /// Intolerance or contra-indication.
    pub kind: IntoleranceKind,
    /// The reaction in words.
    pub reaction: Text,
    /// True when a stop for side effects recorded it.
    pub from_stop: bool,
    /// The event that recorded it.
    pub recorded: Provenance,
}

/// A problem on the problem list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProblemEntry {
    /// The coded problem.
    pub code: ProblemCode,
    /// In words.
    pub description: Text,
    /// Who recorded it.
    pub recorded: Provenance,
    /// Who resolved it, if anyone.
    pub resolved: Option<Provenance>,
}

/// A smoking-status observation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmokingEntry {
    /// The status.
    pub status: SmokingStatus,
    /// Who recorded it, and when it held.
    pub recorded: Provenance,
}

impl CarePlan {
    /// Intolerances and contra-indications that count: not entered in error.
    pub fn active_intolerances(&self) -> impl Iterator<Item = &IntoleranceEntry> {
        self.intolerances
            .iter()
            .filter(|i| !self.is_entered_in_error(i.recorded.position))
    }

    /// The latest smoking status by clinical time (ties: the later position), skipping entries
    /// in error.
    pub fn smoking_status(&self) -> Option<&SmokingEntry> {
        self.smoking_history
            .iter()
            .filter(|s| !self.is_entered_in_error(s.recorded.position))
            .max_by_key(|s| (s.recorded.occurred_at, s.recorded.position))
    }

    /// The indication of a medication, if one was given when it was started.
    pub fn indication(&self, atc: &AtcCode) -> Option<&Indication> {
        self.indications.get(atc)
    }
}

/// Folds one event into the catalogue's parts of the plan. Runs before [`crate::plan::apply`],
/// so that a stopped medication's name is still known.
pub(crate) fn apply(plan: &mut CarePlan, recorded: &RecordedEvent, provenance: &Provenance) {
    let p = || provenance.clone();
    match recorded.event() {
        Event::MedicationStarted(m) => match &m.indication {
            Some(indication) => {
                plan.indications.insert(m.atc.clone(), indication.clone());
            }
            None => {
                plan.indications.remove(&m.atc);
            }
        },
        Event::MedicationStopped(s) if s.reason == ChangeReason::SideEffects => {
            let substance = plan
                .medications
                .get(&s.atc)
                .map(|m| m.name.clone())
                .unwrap_or_else(|| Text::new(s.atc.as_str()).unwrap_or_default());
            let reason = &recorded.record.reason;
            let reaction = if reason.as_str().trim().is_empty() {
                Text::new("side effects").unwrap_or_default()
            } else {
                reason.clone()
            };
            plan.intolerances.push(IntoleranceEntry {
                atc: s.atc.clone(),
                substance,
                kind: IntoleranceKind::Intolerance,
                reaction,
                from_stop: true,
                recorded: p(),
            });
        }
        Event::IntoleranceRecorded(i) => plan.intolerances.push(IntoleranceEntry {
            atc: i.atc.clone(),
            substance: i.substance.clone(),
            kind: i.kind,
            reaction: i.reaction.clone(),
            from_stop: false,
            recorded: p(),
        }),
        Event::ProblemRecorded(problem) => {
            plan.problems.insert(
                problem.problem.clone(),
                ProblemEntry {
                    code: problem.code.clone(),
                    description: problem.description.clone(),
                    recorded: p(),
                    resolved: None,
                },
            );
        }
        Event::ProblemResolved(r) => {
            if let Some(entry) = plan.problems.get_mut(&r.problem) {
                entry.resolved = Some(p());
            }
        }
        Event::SmokingStatusRecorded(s) => plan.smoking_history.push(SmokingEntry {
            status: s.status,
            recorded: p(),
        }),
        _ => {}
    }
}
