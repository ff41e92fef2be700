//! Lab orders as time passes: open orders close test by test as results arrive (in
//! [`crate::plan`]); here, an order with tests still pending expires after
//! [`ProjectionConfig::lab_order_expiry_days`] and then shows as `pending since <date>`, and the
//! signals that keep a second blood draw from happening: an open order of one line, shown to
//! both, and an annual CVRM order that leaves out the specialist's panel additions
//! (agreements 2 and 7).
//!
//! "Now" is the caller's: nothing here reads a clock.

use serde::{Deserialize, Serialize};

use careledger_core::event::Event;
use careledger_core::ids::ElementId;
use careledger_core::quantity::Measure;
use careledger_core::record::{RecordedEvent, Timestamp};

use crate::plan::{CarePlan, LabOrderEntry};
use crate::signals::Signal;
use crate::{PatientView, ProjectionConfig, Provenance};

/// The last annual CVRM lab order, kept after it closes for the panel-completeness signal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnualOrder {
    /// The order id.
    pub order: ElementId,
    /// Its tests.
    pub tests: Vec<Measure>,
    /// Who ordered it.
    pub ordered: Provenance,
}

/// An open lab order as of a given moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderStatus<'p> {
    /// The order id.
    pub order: &'p ElementId,
    /// The order, with its pending tests.
    pub entry: &'p LabOrderEntry,
    /// When the order was placed, by the clinician's time: its tests are pending since then.
    pub pending_since: Timestamp,
    /// True once the order is older than the expiry period with tests still pending.
    pub expired: bool,
}

/// Keeps the last annual order.
pub(crate) fn apply(plan: &mut CarePlan, recorded: &RecordedEvent, provenance: &Provenance) {
    if let Event::LabOrdered(o) = recorded.event() {
        if o.annual_panel {
            plan.last_annual_order = Some(AnnualOrder {
                order: o.order.clone(),
                tests: o.tests.clone(),
                ordered: provenance.clone(),
            });
        }
    }
}

/// The open lab orders (tests still pending, not entered in error) as of `now`.
pub fn open_orders<'p>(
    plan: &'p CarePlan,
    config: &ProjectionConfig,
    now: Timestamp,
) -> Vec<OrderStatus<'p>> {
    let expiry = i64::from(config.lab_order_expiry_days);
    plan.lab_orders
        .iter()
        .filter(|(_, o)| !plan.is_entered_in_error(o.ordered.position))
        .map(|(order, entry)| {
            let since = entry.ordered.occurred_at;
            OrderStatus {
                order,
                entry,
                pending_since: since,
                expired: since.days_until(now) >= expiry,
            }
        })
        .collect()
}

/// Tests by their codes, for a signal's values: `ldl,hba1c`.
fn codes(tests: &[Measure]) -> String {
    tests.iter().map(|t| t.code()).collect::<Vec<_>>().join(",")
}

/// Lab signals as of `now`: `lab_order_open` (an open order, so the other line does not draw
/// blood again), `lab_order_expired` (pending since a date, past the expiry period) and
/// `annual_panel_incomplete`.
pub(crate) fn signals(
    view: &PatientView,
    config: &ProjectionConfig,
    now: Timestamp,
) -> Vec<Signal> {
    let plan = &view.plan;
    // An open order is shown while the other line is in the care team; an expired one always.
    let other_line_in_team = |s: &OrderStatus<'_>| {
        s.entry
            .ordered
            .line
            .other()
            .is_some_and(|other| plan.care_team.iter().any(|m| m.line == other))
    };
    let mut out: Vec<Signal> = open_orders(plan, config, now)
        .into_iter()
        .filter(|s| s.expired || other_line_in_team(s))
        .map(|s| order_signal(&s, config))
        .collect();
    out.extend(annual_panel_incomplete(view));
    out
}

fn order_signal(s: &OrderStatus<'_>, config: &ProjectionConfig) -> Signal {
    let o = &s.entry.ordered;
    let values = [
        ("order", s.order.to_string()),
        ("role", o.role.as_str().to_owned()),
        ("name", o.actor_name.to_string()),
        ("line", o.line.as_str().to_owned()),
        ("tests", codes(&s.entry.pending)),
        ("since", s.pending_since.micros().to_string()),
        ("valid_days", config.lab_order_expiry_days.to_string()),
    ];
    let code = if s.expired {
        "lab_order_expired"
    } else {
        "lab_order_open"
    };
    Signal::new(code, None, &values, vec![o.position])
}

/// The specialist's additions (made before the last annual order) that the order left out and
/// that no later order or result has covered.
fn annual_panel_incomplete(view: &PatientView) -> Option<Signal> {
    let plan = &view.plan;
    let annual = plan.last_annual_order.as_ref()?;
    if plan.is_entered_in_error(annual.ordered.position) {
        return None;
    }
    let at = annual.ordered.position;
    let stands = |position: u64| position > at && !plan.is_entered_in_error(position);
    let covered_later = |test: Measure| {
        let ordered = plan
            .lab_order_history
            .values()
            .any(|r| stands(r.ordered.position) && r.tests.contains(&test));
        let resulted = plan.series.get(&test).is_some_and(|values| {
            values
                .iter()
                .any(|v| v.source.is_none() && stands(v.recorded.position))
        });
        ordered || resulted
    };
    let missing: Vec<Measure> = plan
        .annual_panel
        .iter()
        .filter_map(|t| {
            let added = t.added.as_ref()?;
            let counts = added.position < at && !plan.is_entered_in_error(added.position);
            (counts && !annual.tests.contains(&t.test) && !covered_later(t.test)).then_some(t.test)
        })
        .collect();
    (!missing.is_empty()).then(|| {
        let values = [
            ("order", annual.order.to_string()),
            (
                "ordered_at",
                annual.ordered.occurred_at.micros().to_string(),
            ),
            ("tests", codes(&missing)),
        ];
        Signal::new("annual_panel_incomplete", None, &values, vec![at])
    })
}
