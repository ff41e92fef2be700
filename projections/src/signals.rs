//! Signals for the care team: duplicate lab work, annual lab due, target not met, and trends
//! in home measurements.

use serde::{Deserialize, Serialize};

use careledger_core::event::{Event, MeasurementSource};
use careledger_core::quantity::{format_scaled, Measure};
use careledger_core::record::{RecordedEvent, Timestamp};

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
    /// A sentence for the clinician.
    pub message: String,
    /// The positions that give rise to it.
    pub positions: Vec<u64>,
}

/// Keeps the lab history the duplicate-lab signal needs.
pub(crate) fn track(view: &mut PatientView, recorded: &RecordedEvent) {
    let at = recorded.record.occurred_at;
    match recorded.event() {
        Event::LabOrdered(o) => {
            if o.annual_panel {
                view.last_annual_panel = Some((at, recorded.position));
            }
            for t in &o.tests {
                view.lab_history.push((*t, at, recorded.position));
            }
        }
        Event::LabResultRecorded(r) if r.order.is_none() => {
            view.lab_history
                .push((r.value.measure(), at, recorded.position));
        }
        _ => {}
    }
}

/// The patient's signals as of `now`.
pub fn signals(view: &PatientView, config: &ProjectionConfig, now: Timestamp) -> Vec<Signal> {
    let mut out = duplicate_lab(view, config);
    out.extend(annual_lab_due(view, now));
    out.extend(targets_not_met(view));
    out.extend(home_trends(view, config));
    out.extend(crate::lab::signals(view, config, now));
    out
}

fn duplicate_lab(view: &PatientView, config: &ProjectionConfig) -> Vec<Signal> {
    let window = i64::from(config.duplicate_lab_window_days);
    let mut out = Vec::new();
    for (i, (test, at, position)) in view.lab_history.iter().enumerate() {
        let earlier = view.lab_history[..i]
            .iter()
            .rev()
            .find(|(t, when, _)| t == test && when.days_until(*at).abs() < window);
        if let Some((_, when, first)) = earlier {
            out.push(Signal {
                code: "duplicate_lab_work".into(),
                measure: Some(*test),
                message: format!(
                    "{} requested again {} day(s) after position {first} (agreement 7: avoid duplicate blood tests)",
                    test.name(),
                    when.days_until(*at).max(0)
                ),
                positions: vec![*first, *position],
            });
        }
    }
    out
}

fn annual_lab_due(view: &PatientView, now: Timestamp) -> Option<Signal> {
    if view.plan.care_team.is_empty() {
        return None;
    }
    let last = view.last_annual_panel;
    let due = last.is_none_or(|(at, _)| at.days_until(now) > 365);
    due.then(|| Signal {
        code: "annual_lab_due".into(),
        measure: None,
        message: match last {
            None => "no annual CVRM lab panel was ordered yet (agreement 7)".into(),
            Some((at, _)) => format!(
                "the last annual CVRM lab panel was ordered on {at}, over a year ago (agreement 7)"
            ),
        },
        positions: last.map(|(_, p)| vec![p]).unwrap_or_default(),
    })
}

fn targets_not_met(view: &PatientView) -> Vec<Signal> {
    let plan = &view.plan;
    plan.targets
        .iter()
        .filter(|(m, _)| plan.target_status(**m) == TargetStatus::NotMet)
        .filter_map(|(m, target)| {
            let latest = plan.latest_value(*m)?;
            Some(Signal {
                code: "target_not_met".into(),
                measure: Some(*m),
                message: format!(
                    "{} {} does not meet the target {} {} (agreement 3)",
                    m.name(),
                    latest.value,
                    target.effective.comparator.symbol(),
                    target.effective.value
                ),
                positions: vec![latest.recorded.position],
            })
        })
        .collect()
}

fn home_trends(view: &PatientView, config: &ProjectionConfig) -> Vec<Signal> {
    let n = config.trend_readings.max(1) as usize;
    let mut out = Vec::new();
    for (measure, target) in &view.plan.targets {
        let readings: Vec<(i64, u64)> = view
            .audit
            .iter()
            .rev()
            .filter(|e| {
                e.element == format!("measurement:{}", measure.code()) && e.corrected_by.is_none()
            })
            .filter_map(|e| home_value(view, e.position()).map(|v| (v, e.position())))
            .take(n)
            .collect();
        if readings.len() < n {
            continue;
        }
        let mean = readings.iter().map(|(v, _)| v).sum::<i64>() / n as i64;
        if !target
            .effective
            .comparator
            .holds(mean, target.effective.value.scaled())
        {
            out.push(Signal {
                code: "home_trend_off_target".into(),
                measure: Some(*measure),
                message: format!(
                    "the mean of the last {n} home readings of {} is {} {}, off target {} {}",
                    measure.name(),
                    format_scaled(mean, measure.decimals()),
                    measure.unit(),
                    target.effective.comparator.symbol(),
                    target.effective.value
                ),
                positions: readings.iter().map(|(_, p)| *p).collect(),
            });
        }
    }
    out
}

fn home_value(view: &PatientView, position: u64) -> Option<i64> {
    view.home_readings
        .iter()
        .find(|(p, _)| *p == position)
        .map(|(_, v)| *v)
}

/// Records a self-measured reading for the trend signal.
pub(crate) fn track_home(view: &mut PatientView, recorded: &RecordedEvent) {
    if let Event::MeasurementRecorded(m) = recorded.event() {
        if m.source == MeasurementSource::SelfMeasuredAtHome {
            view.home_readings
                .push((recorded.position, m.value.scaled()));
        }
    }
}
