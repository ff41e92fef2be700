//! Signals for the care team: duplicate lab work, annual lab due, target not met, and trends
//! in home measurements.
//!
//! Signals are derived from the plan's histories when asked for: entries marked entered in
//! error never count, and lab work and readings are ordered by clinical time (`occurred_at`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use careledger_core::decide::WarningCode;
use careledger_core::duplicate_lab::{self, LabWork};
use careledger_core::quantity::{format_scaled, Measure};
use careledger_core::record::Timestamp;

use crate::plan::TargetStatus;
use crate::{PatientView, ProjectionConfig};

/// A signal worth a clinician's attention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    /// `duplicate_lab_work`, `annual_lab_due`, `target_not_met`, `home_trend_off_target`,
    /// `lab_order_open`, `lab_order_expired` or `annual_panel_incomplete`.
    pub code: String,
    /// The measure concerned, if one.
    pub measure: Option<Measure>,
    /// The sentence for the clinician, in English ([`crate::labels::signal_message`] renders
    /// it from `code` and `values` in either language).
    pub message: String,
    /// The values the sentence is filled with, language-neutral: a measure by its code, values
    /// as decimal text with a point, dates as microseconds since the epoch.
    pub values: BTreeMap<String, String>,
    /// The positions that give rise to it.
    pub positions: Vec<u64>,
}

impl Signal {
    /// A signal of `code` with its values; the English sentence is rendered from them.
    pub fn new(
        code: &str,
        measure: Option<Measure>,
        values: &[(&str, String)],
        positions: Vec<u64>,
    ) -> Signal {
        let mut values: BTreeMap<String, String> = values
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        if let Some(m) = measure {
            values.insert("measure".to_owned(), m.code().to_owned());
        }
        let message = crate::labels::signal_message(code, &values, crate::labels::Lang::En)
            .unwrap_or_default();
        Signal {
            code: code.to_owned(),
            measure,
            message,
            values,
            positions,
        }
    }
}

/// The plan's lab work: each test of a lab order, and each lab result, with whether it is
/// checked as a possible duplicate (a result naming its order is that order's work, see
/// [`careledger_core::duplicate_lab`]). Orders and results marked entered in error are left out.
fn lab_work(view: &PatientView) -> Vec<(LabWork, bool)> {
    let plan = &view.plan;
    let mut work: Vec<(LabWork, bool)> = plan
        .lab_order_history
        .values()
        .filter(|o| !plan.is_entered_in_error(o.ordered.position))
        .flat_map(|o| {
            o.tests.iter().map(|test| {
                let work = LabWork {
                    test: *test,
                    occurred_at: o.ordered.occurred_at,
                    position: o.ordered.position,
                };
                (work, true)
            })
        })
        .collect();
    for (measure, values) in &plan.series {
        work.extend(
            values
                .iter()
                .filter(|v| v.source.is_none())
                .filter(|v| !plan.is_entered_in_error(v.recorded.position))
                .map(|v| {
                    let work = LabWork {
                        test: *measure,
                        occurred_at: v.recorded.occurred_at,
                        position: v.recorded.position,
                    };
                    (work, v.order.is_none())
                }),
        );
    }
    // Clinical time orders lab work; ties by position.
    work.sort_by_key(|(w, _)| (w.occurred_at, w.position));
    work
}

/// Every signal's code, as `Signal::code` carries it (the labels give each a sentence).
pub const CODES: [&str; 9] = [
    "duplicate_lab_work",
    "annual_lab_due",
    "target_not_met",
    "home_trend_off_target",
    "lab_order_open",
    "lab_order_expired",
    "annual_panel_incomplete",
    "cvrm_lead_unassigned",
    "organ_disease_lead_unassigned",
];

/// The patient's signals as of `now`.
pub fn signals(view: &PatientView, config: &ProjectionConfig, now: Timestamp) -> Vec<Signal> {
    let mut out = duplicate_lab(view, config);
    out.extend(annual_lab_due(view, now));
    out.extend(targets_not_met(view));
    out.extend(home_trends(view, config));
    out.extend(leads_unassigned(view));
    out.extend(crate::lab::signals(view, config, now));
    out
}

/// A lead without a main practitioner (agreement 1): the CVRM lead of a plan the cardiologist
/// founded stays unassigned until a GP takes it, and both lines see it here.
fn leads_unassigned(view: &PatientView) -> Vec<Signal> {
    use careledger_core::role::Lead;
    let plan = &view.plan;
    if plan.care_team.is_empty() {
        return Vec::new();
    }
    // The organ disease needs a lead only where the second line takes part.
    let second_line = plan.shared_care.is_some()
        || plan
            .care_team
            .iter()
            .any(|m| m.line == careledger_core::role::Line::Second);
    plan.leads()
        .iter()
        .filter(|(lead, main)| main.is_none() && (*lead == Lead::Cvrm || second_line))
        .map(|(lead, _)| {
            let code = match lead {
                Lead::Cvrm => "cvrm_lead_unassigned",
                _ => "organ_disease_lead_unassigned",
            };
            Signal::new(code, None, &[], Vec::new())
        })
        .collect()
}

/// Agreement 7 over the plan's history: each lab work that duplicates lab work before it in
/// clinical time, by the rule of [`careledger_core::duplicate_lab`].
fn duplicate_lab(view: &PatientView, config: &ProjectionConfig) -> Vec<Signal> {
    let work = lab_work(view);
    let mut out = Vec::new();
    for (i, (now, checked)) in work.iter().enumerate() {
        if !checked {
            continue;
        }
        let earlier = work[..i].iter().map(|(w, _)| *w);
        let window = config.duplicate_lab_window_days;
        let Some(first) = duplicate_lab::duplicated(window, now.test, now.occurred_at, earlier)
        else {
            continue;
        };
        let code: String = WarningCode::DuplicateLabWork.into();
        let days = first.occurred_at.days_until(now.occurred_at).max(0);
        out.push(Signal::new(
            &code,
            Some(now.test),
            &[
                ("days", days.to_string()),
                ("first", first.position.to_string()),
            ],
            vec![first.position, now.position],
        ));
    }
    out
}

fn annual_lab_due(view: &PatientView, now: Timestamp) -> Option<Signal> {
    if view.plan.care_team.is_empty() {
        return None;
    }
    let plan = &view.plan;
    let last = plan
        .lab_order_history
        .values()
        .filter(|o| o.annual_panel && !plan.is_entered_in_error(o.ordered.position))
        .map(|o| (o.ordered.occurred_at, o.ordered.position))
        .max();
    let due = last.is_none_or(|(at, _)| at.days_until(now) > 365);
    due.then(|| {
        let values: Vec<(&str, String)> = last
            .map(|(at, _)| ("last_ordered_at", at.micros().to_string()))
            .into_iter()
            .collect();
        let positions = last.map(|(_, p)| vec![p]).unwrap_or_default();
        Signal::new("annual_lab_due", None, &values, positions)
    })
}

fn targets_not_met(view: &PatientView) -> Vec<Signal> {
    let plan = &view.plan;
    plan.targets
        .iter()
        .filter(|(m, _)| plan.target_status(**m) == TargetStatus::NotMet)
        .filter_map(|(m, target)| {
            let latest = plan.latest_value(*m)?;
            Some(Signal::new(
                "target_not_met",
                Some(*m),
                &[
                    ("value", latest.value.value_text()),
                    (
                        "comparator",
                        target.effective.comparator.symbol().to_owned(),
                    ),
                    ("target", target.effective.value.value_text()),
                ],
                vec![latest.recorded.position],
            ))
        })
        .collect()
}

fn home_trends(view: &PatientView, config: &ProjectionConfig) -> Vec<Signal> {
    let n = config.trend_readings.max(1);
    let mut out = Vec::new();
    for (measure, target) in &view.plan.targets {
        let Some(trend) = view.plan.home_trend(*measure, n) else {
            continue;
        };
        let mean = trend.mean_scaled;
        if !target
            .effective
            .comparator
            .holds(mean, target.effective.value.scaled())
        {
            out.push(Signal::new(
                "home_trend_off_target",
                Some(*measure),
                &[
                    ("readings", n.to_string()),
                    ("mean", format_scaled(mean, measure.decimals())),
                    (
                        "comparator",
                        target.effective.comparator.symbol().to_owned(),
                    ),
                    ("target", target.effective.value.value_text()),
                ],
                trend.positions.iter().rev().copied().collect(),
            ));
        }
    }
    out
}
