//! JSON renderings of the read models for the API and `--json` on the command line.
#![allow(dead_code, missing_docs)]

use serde_json::{json, Value};

use careledger_core::clinical::Indication;
use careledger_core::event::{ChangeReason, GoalOutcome, MeasurementSource, NoteKind, TargetBasis};
use careledger_core::ids::{AtcCode, PatientId};
use careledger_core::quantity::{format_scaled, Measure, Quantity};
use careledger_core::role::{Lead, Practitioner};
use careledger_projections::audit::AuditEntry;
use careledger_projections::notifications::{Notification, NotificationStatus};
use careledger_projections::plan::{
    CarePlan, Direction, EpisodeStatus, MedicationEpisode, MedicationStepKind, TargetStatus, Trend,
    TrendBasis, ValueEntry,
};
use careledger_projections::{Provenance, Signal};

fn quantity(q: &Quantity) -> Value {
    json!({"value": q.value_text(), "unit": q.measure().unit(), "text": q.to_string()})
}

/// Provenance as JSON.
pub fn provenance(p: &Provenance) -> Value {
    json!({
        "position": p.position,
        "hash": p.hash.to_hex(),
        "actor": p.actor.as_str(),
        "actor_name": p.actor_name.as_str(),
        "role": p.role.as_str(),
        "line": p.line.as_str(),
        "recorded_at": p.recorded_at.to_string(),
        "occurred_at": p.occurred_at.to_string(),
        "reason": p.reason.as_str(),
    })
}

fn basis(b: TargetBasis) -> &'static str {
    match b {
        TargetBasis::NhgGuideline => "nhg_guideline",
        TargetBasis::EscGuideline => "esc_guideline",
        TargetBasis::Individual => "individual",
    }
}

fn status(s: TargetStatus) -> &'static str {
    match s {
        TargetStatus::Met => "met",
        TargetStatus::NotMet => "not_met",
        TargetStatus::NoData => "no_data",
    }
}

fn lead(l: Lead) -> &'static str {
    match l {
        Lead::Cvrm => "cvrm",
        Lead::OrganDisease => "organ_disease",
        Lead::None => "none",
    }
}

fn practitioner(p: Practitioner) -> &'static str {
    match p {
        Practitioner::Main => "main",
        Practitioner::Co => "co",
        Practitioner::NotApplicable => "not_applicable",
    }
}

fn source(s: Option<MeasurementSource>) -> Option<&'static str> {
    s.map(|s| match s {
        MeasurementSource::Practice => "practice",
        MeasurementSource::Hospital => "hospital",
        MeasurementSource::SelfMeasuredAtHome => "self_measured_at_home",
    })
}

/// Values per measure the plan shows (the newest by clinical time); the rest are at
/// `GET /patients/{id}/measures/{measure}`.
pub const PLAN_SERIES_VALUES: usize = 5;

/// The mark on an entry marked entered in error: the correction's position and who corrected,
/// when and why; `null` for an entry that stands.
fn correction_mark(plan: &CarePlan, position: u64) -> Value {
    plan.corrections
        .get(&position)
        .map_or(Value::Null, provenance)
}

fn change_reason(r: &ChangeReason) -> Value {
    let code = match r {
        ChangeReason::SideEffects => "side_effects",
        ChangeReason::TargetNotReached => "target_not_reached",
        ChangeReason::PatientPreference => "patient_preference",
        ChangeReason::Other(_) => "other",
    };
    json!({"code": code, "text": r.to_string()})
}

/// One value of a measure's series as JSON, with its correction mark.
pub fn value_entry(plan: &CarePlan, v: &ValueEntry) -> Value {
    json!({
        "value": quantity(&v.value),
        "kind": if v.source.is_some() { "measurement" } else { "lab_result" },
        "source": source(v.source),
        "order": v.order.as_ref().map(|o| o.as_str()),
        "occurred_at": v.recorded.occurred_at.to_string(),
        "recorded_at": v.recorded.recorded_at.to_string(),
        "provenance": provenance(&v.recorded),
        "entered_in_error": correction_mark(plan, v.recorded.position),
    })
}

/// A trend as JSON.
pub fn trend(measure: Measure, t: &Trend) -> Value {
    json!({
        "basis": match t.basis { TrendBasis::SelfMeasuredAtHome => "self_measured_at_home", TrendBasis::AllValues => "all_values" },
        "readings": t.positions.len(),
        "positions": t.positions,
        "mean": format_scaled(t.mean_scaled, measure.decimals()),
        "unit": measure.unit(),
        "direction": match t.direction { Direction::Rising => "rising", Direction::Falling => "falling", Direction::Steady => "steady" },
    })
}

/// A measure's series as JSON: every value in clinical order (`occurred_at`, then position),
/// corrected ones marked, with the latest value that stands and the trend.
pub fn measure_series(
    patient: &PatientId,
    plan: &CarePlan,
    measure: Measure,
    trend_readings: u32,
) -> Value {
    let values = plan
        .series
        .get(&measure)
        .map(Vec::as_slice)
        .unwrap_or_default();
    json!({
        "patient": patient.as_str(),
        "measure": measure.code(),
        "name": measure.name(),
        "unit": measure.unit(),
        "latest": plan.latest_value(measure).map(|v| value_entry(plan, v)),
        "trend": plan.trend(measure, trend_readings).map(|t| trend(measure, &t)),
        "values": values.iter().map(|v| value_entry(plan, v)).collect::<Vec<_>>(),
    })
}

fn series_summary(plan: &CarePlan, measure: Measure, trend_readings: u32) -> Value {
    let values = plan
        .series
        .get(&measure)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let last = &values[values.len().saturating_sub(PLAN_SERIES_VALUES)..];
    json!({
        "measure": measure.code(),
        "unit": measure.unit(),
        "values": values.len(),
        "last": last.iter().map(|v| value_entry(plan, v)).collect::<Vec<_>>(),
        "trend": plan.trend(measure, trend_readings).map(|t| trend(measure, &t)),
    })
}

fn episode(plan: &CarePlan, atc: &AtcCode, e: &MedicationEpisode) -> Value {
    let status = plan.episode_status(e);
    json!({
        "atc": atc.as_str(), "name": e.name.as_str(),
        "status": match status { EpisodeStatus::Active => "active", EpisodeStatus::Stopped => "stopped", EpisodeStatus::EnteredInError => "entered_in_error" },
        "started": {"dose": e.dose.to_string(), "frequency": e.frequency.as_str(), "provenance": provenance(&e.started),
            "entered_in_error": correction_mark(plan, e.started.position)},
        "dose_changes": e.steps.iter().filter_map(|s| match &s.kind {
            MedicationStepKind::DoseChanged { dose, frequency } => Some(json!({
                "dose": dose.to_string(), "frequency": frequency.as_str(), "change_reason": change_reason(&s.reason),
                "provenance": provenance(&s.recorded), "entered_in_error": correction_mark(plan, s.recorded.position),
            })),
            MedicationStepKind::Stopped => None,
        }).collect::<Vec<_>>(),
        "stopped": plan.standing_stop(e).filter(|_| status == EpisodeStatus::Stopped).map(|s| json!({
            "change_reason": change_reason(&s.reason), "by": s.recorded.actor.as_str(), "by_name": s.recorded.actor_name.as_str(),
            "role": s.recorded.role.as_str(), "line": s.recorded.line.as_str(),
            "occurred_at": s.recorded.occurred_at.to_string(), "recorded_at": s.recorded.recorded_at.to_string(),
            "provenance": provenance(&s.recorded),
        })),
        "stops_entered_in_error": e.steps.iter()
            .filter(|s| s.kind == MedicationStepKind::Stopped && plan.is_entered_in_error(s.recorded.position))
            .map(|s| json!({"change_reason": change_reason(&s.reason), "provenance": provenance(&s.recorded),
                "entered_in_error": correction_mark(plan, s.recorded.position)}))
            .collect::<Vec<_>>(),
    })
}

fn indication(plan: &CarePlan, i: Option<&Indication>) -> Value {
    match i {
        None => Value::Null,
        Some(Indication::Problem(id)) => json!({
            "problem": id.as_str(),
            "code": plan.problems.get(id).map(|p| p.code.to_string()),
            "description": plan.problems.get(id).map(|p| p.description.as_str()),
        }),
        Some(Indication::Words(words)) => json!({"text": words.as_str()}),
    }
}

/// The catalogue's parts of the plan: intolerances, problems and smoking status.
fn clinical(plan: &CarePlan) -> Value {
    let in_error = |p: &Provenance| plan.is_entered_in_error(p.position);
    json!({
        "intolerances": plan.intolerances.iter().map(|i| json!({
            "atc": i.atc.as_str(), "substance": i.substance.as_str(), "kind": i.kind.code(),
            "reaction": i.reaction.as_str(), "from_stop": i.from_stop,
            "provenance": provenance(&i.recorded), "entered_in_error": in_error(&i.recorded),
        })).collect::<Vec<_>>(),
        "problems": plan.problems.iter().map(|(id, p)| json!({
            "problem": id.as_str(), "code_system": p.code.system().uri(), "code": p.code.code(),
            "description": p.description.as_str(), "active": p.resolved.is_none(),
            "provenance": provenance(&p.recorded), "resolved": p.resolved.as_ref().map(provenance),
            "entered_in_error": in_error(&p.recorded),
        })).collect::<Vec<_>>(),
        "smoking_status": plan.smoking_status().map(|s| json!({
            "status": s.status.code(), "text": s.status.name(),
            "loinc": careledger_core::clinical::SmokingStatus::LOINC, "snomed": s.status.snomed(),
            "provenance": provenance(&s.recorded),
        })),
        "emergency_access": plan.emergency_access.iter().map(|e| json!({
            "until": e.until.to_string(), "opened": provenance(&e.opened),
        })).collect::<Vec<_>>(),
    })
}

/// The care plan as JSON; `trend_readings` is the number of readings a trend is taken over.
pub fn plan(patient: &PatientId, plan: &CarePlan, trend_readings: u32) -> Value {
    let mut out = plan_core(patient, plan, trend_readings);
    if let (Some(o), Value::Object(extra)) = (out.as_object_mut(), clinical(plan)) {
        o.extend(extra);
    }
    out
}

fn plan_core(patient: &PatientId, plan: &CarePlan, trend_readings: u32) -> Value {
    let in_error = |p: &Provenance| plan.is_entered_in_error(p.position);
    json!({
        "patient": patient.as_str(),
        "revision": plan.revision,
        "leads": plan.leads().iter().map(|(l, main)| json!({
            "lead": lead(*l),
            "main_practitioner": main.map(|m| json!({"actor": m.actor.as_str(), "name": m.name.as_str(), "role": m.role.as_str()})),
            "status": if main.is_some() { "assigned" } else { "unassigned" },
        })).collect::<Vec<_>>(),
        "care_team": plan.care_team.iter().map(|m| json!({
            "actor": m.actor.as_str(), "name": m.name.as_str(), "agb": m.agb.as_ref().map(|a| a.as_str()),
            "role": m.role.as_str(), "line": m.line.as_str(), "lead": lead(m.lead),
            "practitioner": practitioner(m.practitioner), "provenance": provenance(&m.added),
        })).collect::<Vec<_>>(),
        "shared_care": plan.shared_care.as_ref().map(|(text, p)| json!({"arrangement": text.as_str(), "provenance": provenance(p)})),
        "targets": plan.targets.iter().map(|(measure, t)| json!({
            "measure": measure.code(),
            "comparator": t.effective.comparator.symbol(),
            "target": quantity(&t.effective.value),
            "basis": basis(t.effective.basis),
            "rationale": t.rationale.as_str(),
            "replaced": t.replaced.as_ref().map(|r| json!({"comparator": r.comparator.symbol(), "target": quantity(&r.value), "basis": basis(r.basis)})),
            "latest": plan.latest_value(*measure).map(|v| json!({"value": quantity(&v.value), "position": v.recorded.position})),
            "status": status(plan.target_status(*measure)),
            "provenance": t.set.as_ref().map(provenance),
            "entered_in_error": t.set.as_ref().is_some_and(in_error),
        })).collect::<Vec<_>>(),
        "medications": plan.medications.iter().map(|(atc, m)| json!({
            "atc": atc.as_str(), "name": m.name.as_str(), "dose": m.dose.to_string(), "frequency": m.frequency.as_str(),
            "prescribed_by_line": m.started.line.as_str(),
            "started": provenance(&m.started), "last_change": m.last_change.as_ref().map(provenance),
            "indication": indication(plan, plan.indication(atc)),
            "entered_in_error": in_error(&m.started),
        })).collect::<Vec<_>>(),
        "medication_preferences": plan.preferences.iter().map(|p| json!({
            "atc": p.atc.as_str(), "name": p.name.as_str(), "preference": p.preference.as_str(), "provenance": provenance(&p.recorded),
        })).collect::<Vec<_>>(),
        "open_lab_orders": plan.lab_orders.iter().map(|(id, o)| json!({
            "order": id.as_str(), "tests": o.tests.iter().map(|t| t.code()).collect::<Vec<_>>(),
            "pending": o.pending.iter().map(|t| t.code()).collect::<Vec<_>>(),
            "annual_panel": o.annual_panel, "provenance": provenance(&o.ordered),
            "pending_since": o.ordered.occurred_at.to_string(),
        })).collect::<Vec<_>>(),
        "annual_panel": plan.annual_panel.iter().map(|t| json!({
            "test": t.test.code(), "added_by_specialist": t.added.as_ref().map(provenance),
        })).collect::<Vec<_>>(),
        "lab_results": plan.lab_results.iter().map(|(m, v)| json!({
            "test": m.code(), "value": quantity(&v.value), "provenance": provenance(&v.recorded), "entered_in_error": in_error(&v.recorded),
        })).collect::<Vec<_>>(),
        "measurements": plan.measurements.iter().map(|(m, v)| json!({
            "measure": m.code(), "value": quantity(&v.value), "source": source(v.source), "provenance": provenance(&v.recorded),
            "entered_in_error": in_error(&v.recorded),
        })).collect::<Vec<_>>(),
        "lifestyle_goals": plan.goals.iter().map(|(id, g)| json!({
            "goal": id.as_str(), "description": g.description.as_str(),
            "outcome": g.outcome.map(|o| match o { GoalOutcome::Achieved => "achieved", GoalOutcome::Abandoned => "abandoned", GoalOutcome::Replaced => "replaced" }),
            "provenance": provenance(&g.set),
        })).collect::<Vec<_>>(),
        "notes": plan.notes.iter().map(|n| json!({
            "kind": match n.kind { NoteKind::Note => "note", NoteKind::ReturnLetter => "return_letter", NoteKind::InterimLetter => "interim_letter" },
            "subject": n.subject.as_str(), "body": n.body.as_str(), "provenance": provenance(&n.written),
        })).collect::<Vec<_>>(),
        "series": plan.series.keys().map(|m| series_summary(plan, *m, trend_readings)).collect::<Vec<_>>(),
        "medication_history": plan.medication_history.iter()
            .flat_map(|(atc, episodes)| episodes.iter().map(move |e| episode(plan, atc, e)))
            .collect::<Vec<_>>(),
        "entered_in_error": plan.entered_in_error().collect::<Vec<_>>(),
        "corrections": plan.corrections.iter().map(|(position, c)| json!({
            "position": position, "correction": provenance(c),
        })).collect::<Vec<_>>(),
    })
}

fn notification_status(s: &NotificationStatus) -> Value {
    match s {
        NotificationStatus::Open => json!({"state": "open"}),
        NotificationStatus::Acknowledged { by, at, position } => {
            json!({"state": "acknowledged", "by": by.as_str(), "at": at.to_string(), "position": position})
        }
        NotificationStatus::Withdrawn { correction } => {
            json!({"state": "withdrawn", "correction": correction})
        }
    }
}

/// An audit entry as JSON.
pub fn audit_entry(e: &AuditEntry) -> Value {
    let p = &e.provenance;
    json!({
        "position": p.position, "hash": p.hash.to_hex(), "revision": e.revision,
        "type": e.kind, "element": e.element, "summary": e.summary(),
        "message": {"template": e.message.template, "values": e.message.values},
        "from": e.from(), "to": e.to(),
        "from_state": e.from_state.as_ref().map(|m| json!({"template": m.template, "values": m.values})),
        "to_state": e.to_state.as_ref().map(|m| json!({"template": m.template, "values": m.values})),
        "actor": {"id": p.actor.as_str(), "name": p.actor_name.as_str(), "role": p.role.as_str(), "line": p.line.as_str()},
        "recorded_at": p.recorded_at.to_string(), "occurred_at": p.occurred_at.to_string(), "reason": p.reason.as_str(),
        "notified": e.notified.iter().map(|n| json!({"recipient": n.recipient.as_str(), "status": notification_status(&n.status)})).collect::<Vec<_>>(),
        "corrected_by": e.corrected_by, "corrects": e.corrects,
        "correction": e.correction.as_ref().map(provenance), "voided_with": e.voided_with,
    })
}

/// A notification as JSON.
pub fn notification(n: &Notification, overdue: bool) -> Value {
    json!({
        "id": n.id, "patient": n.patient.as_str(), "recipient": n.recipient.as_str(), "position": n.position,
        "type": n.kind, "summary": n.summary(), "reason": n.reason, "created_at": n.created_at.to_string(),
        "message": {"template": n.message.template, "values": n.message.values},
        "status": notification_status(&n.status), "overdue": overdue,
    })
}

/// A signal as JSON.
pub fn signal(s: &Signal) -> Value {
    json!({"code": s.code, "measure": s.measure.map(|m| m.code()), "message": s.message, "values": s.values, "positions": s.positions})
}
