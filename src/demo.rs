//! A realistic shared-care history for a fresh data directory: three patients, both lines, every
//! event kind of the catalogue, and demo actors with their tokens.

use serde_json::{json, Value};

use anyhow::anyhow;

use careledger_api::wire;
use careledger_app::actors::{AccessRole, RegisteredActor};
use careledger_app::{App, Write};
use careledger_core::ids::{ActorId, PatientId, Text};
use careledger_core::ExpectedRevision;

/// The demo actors: (id, name, role).
pub const ACTORS: [(&str, &str, &str); 9] = [
    ("gp-jansen", "A. Jansen", "gp"),
    ("poh-bakker", "M. Bakker", "practice_nurse"),
    ("assistant-smit", "S. Smit", "practice_assistant"),
    ("card-devries", "J. de Vries", "cardiologist"),
    ("pharm-visser", "K. Visser", "pharmacist"),
    ("patient-999990007", "P. de Boer", "patient"),
    ("auditor-1", "Quality auditor", "auditor"),
    ("his-sync", "GP information system feed", "subscriber"),
    ("hap-mulder", "R. Mulder", "out_of_hours_gp"),
];

/// What the demo wrote.
pub struct DemoReport {
    /// Lines describing each append.
    pub lines: Vec<String>,
    /// (actor id, role, token) of each demo actor created.
    pub tokens: Vec<(String, String, String)>,
    /// Events written.
    pub events: u64,
}

/// The registered demo actor `id`.
fn actor(app: &App, id: &str) -> anyhow::Result<RegisteredActor> {
    app.actors
        .get(&ActorId::parse(id)?)?
        .ok_or_else(|| anyhow!("no demo actor {id}"))
}

struct Writer<'a> {
    app: &'a App,
    report: DemoReport,
}

impl Writer<'_> {
    fn write(
        &mut self,
        patient: &str,
        who: &str,
        commands: Vec<Value>,
    ) -> anyhow::Result<Vec<u64>> {
        let actor = actor(self.app, who)?;
        let acting = actor
            .line()
            .ok_or_else(|| anyhow!("{who} does not write"))?;
        let body = json!({"commands": commands}).to_string();
        let (_, submissions) = wire::parse_append_body(body.as_bytes(), acting)?;
        let write = Write {
            patient: PatientId::parse(patient)?,
            expected: ExpectedRevision::Any,
            submissions,
            idempotency_key: None,
        };
        let kinds: Vec<String> = write
            .submissions
            .iter()
            .map(|s| s.command.kind().to_owned())
            .collect();
        let outcome = self.app.append(&actor, write)?;
        let positions: Vec<u64> = outcome.events.iter().map(|e| e.position).collect();
        self.report.events += positions.len() as u64;
        self.report.lines.push(format!(
            "patient {patient:<10} {who:<18} {:>5}..{:<5} {}",
            positions.first().copied().unwrap_or(0),
            positions.last().copied().unwrap_or(0),
            kinds.join(", ")
        ));
        for w in &outcome.warnings {
            self.report
                .lines
                .push(format!("    warning: {}", w.message));
        }
        Ok(positions)
    }
}

fn member(actor_id: &str, lead: &str, practitioner: &str) -> anyhow::Result<Value> {
    let (id, name, role) = ACTORS
        .iter()
        .find(|(a, _, _)| *a == actor_id)
        .ok_or_else(|| anyhow!("no demo actor {actor_id}"))?;
    Ok(
        json!({"type": "add_care_team_member", "actor": id, "name": name, "role": role, "lead": lead,
              "practitioner": practitioner, "reason": "joins the care team"}),
    )
}

/// Creates the demo actors (those that do not exist yet) and writes the history into an empty
/// ledger, through the same checks as every other write.
pub fn run(app: &App) -> anyhow::Result<DemoReport> {
    let actors = &app.actors;
    if app.ledger.head().position != 0 {
        return Err(anyhow!(
            "the demo writes into an empty ledger; this one holds events already. Use a new --data directory"
        ));
    }
    let mut tokens = Vec::new();
    let known: Vec<ActorId> = actors.list()?.into_iter().map(|a| a.id).collect();
    for (id, name, role) in ACTORS {
        let id = ActorId::parse(id)?;
        if known.contains(&id) {
            continue;
        }
        let role = AccessRole::parse(role).ok_or_else(|| anyhow!("unknown role {role}"))?;
        let mut actor = RegisteredActor::new(id.clone(), Text::new(name)?, role);
        if let Some(bsn) = id.as_str().strip_prefix("patient-") {
            actor = actor.bound_to(PatientId::parse(bsn)?);
        }
        if role == AccessRole::Subscriber {
            // The demo's actors name no organisations: its feed sees every patient.
            actor = actor.scoped(careledger_app::actors::SubscriberScope::All);
        }
        let token = actors.add(actor)?;
        tokens.push((id.to_string(), role.as_str().to_owned(), token));
    }
    let mut w = Writer {
        app,
        report: DemoReport {
            lines: Vec::new(),
            tokens,
            events: 0,
        },
    };
    shared_care_story(&mut w)?;
    specialist_led_patient(&mut w)?;
    gp_only_patient(&mut w)?;
    Ok(w.report)
}

/// Patient 999990007: shared care, an LDL target, a statin changed for side effects and acknowledged.
fn shared_care_story(w: &mut Writer<'_>) -> anyhow::Result<()> {
    let p = "999990007";
    w.write(p, "gp-jansen", vec![json!({"type": "start_shared_care",
        "arrangement": "CVRM by the GP practice; heart failure follow-up by cardiology", "reason": "after myocardial infarction"})])?;
    w.write(
        p,
        "gp-jansen",
        vec![
            member("card-devries", "organ_disease", "co")?,
            member("poh-bakker", "none", "co")?,
            member("assistant-smit", "none", "co")?,
            member("pharm-visser", "none", "co")?,
            member("patient-999990007", "none", "not_applicable")?,
        ],
    )?;
    w.write(p, "gp-jansen", vec![
        json!({"type": "record_problem", "problem": "mi", "code_system": "icpc_1_nl", "code": "K75",
               "description": "myocardial infarction", "reason": "discharge letter"}),
        json!({"type": "record_smoking_status", "status": "former", "reason": "stopped smoking after the infarction"}),
        json!({"type": "record_measurement", "measure": "bmi", "value": "27.4", "unit": "kg/m2",
               "source": "practice", "reason": "CVRM intake"}),
    ])?;
    w.write(
        p,
        "pharm-visser",
        vec![json!({"type": "record_intolerance", "atc": "C09AA02",
        "substance": "enalapril", "kind": "intolerance", "reaction": "dry cough (2019)",
        "reason": "medication review"})],
    )?;
    w.write(p, "card-devries", vec![
        json!({"type": "add_note", "kind": "return_letter", "subject": "Return letter after outpatient visit",
               "body": "Stable after MI. Targets and medication preferences below.", "reason": "terugrapportagebrief"}),
        json!({"type": "set_target", "measure": "ldl", "comparator": "<=", "value": "1.8", "unit": "mmol/L",
               "basis": "esc_guideline", "rationale": "high risk after MI", "reason": "return letter"}),
        json!({"type": "set_target", "measure": "systolic_bp", "comparator": "<", "value": "130", "unit": "mm[Hg]",
               "basis": "individual", "rationale": "heart failure", "reason": "return letter"}),
        json!({"type": "record_medication_preference", "atc": "C10AA07", "name": "rosuvastatin",
               "preference": "rosuvastatin if atorvastatin is not tolerated", "reason": "return letter"}),
        json!({"type": "extend_annual_panel", "tests": ["ck", "alt", "nt_probnp"], "reason": "statin monitoring; heart failure follow-up"}),
        json!({"type": "record_problem", "problem": "hf", "code_system": "icd_10", "code": "I50.9",
               "description": "heart failure with reduced ejection fraction", "reason": "return letter"}),
        json!({"type": "record_measurement", "measure": "lvef", "value": "35", "unit": "%",
               "source": "hospital", "reason": "echocardiography"}),
        json!({"type": "start_medication", "atc": "C10AA05", "name": "atorvastatin", "dose": "40", "dose_unit": "mg",
               "frequency": "1x daily", "indication_problem": "mi", "reason": "secondary prevention"}),
        json!({"type": "record_measurement", "measure": "systolic_bp", "value": "138", "unit": "mm[Hg]",
               "source": "hospital", "reason": "outpatient visit"}),
    ])?;
    w.write(p, "assistant-smit", vec![json!({"type": "order_lab", "order": "lab-2026-01", "annual_panel": true,
        "tests": ["total_cholesterol", "ldl", "hdl", "glucose", "creatinine", "egfr", "potassium", "ck", "alt", "nt_probnp"],
        "reason": "yearly CVRM lab with the cardiologist's additions"})])?;
    w.write(p, "assistant-smit", vec![
        json!({"type": "record_lab_result", "order": "lab-2026-01", "measure": "ldl", "value": "2.4", "unit": "mmol/L", "reason": "lab"}),
        json!({"type": "record_lab_result", "order": "lab-2026-01", "measure": "ck", "value": "420", "unit": "U/L", "reason": "lab"}),
        json!({"type": "record_lab_result", "order": "lab-2026-01", "measure": "nt_probnp", "value": "1250", "unit": "ng/L", "reason": "lab"}),
    ])?;
    let changed = w.write(
        p,
        "gp-jansen",
        vec![
            json!({"type": "change_dose", "atc": "C10AA05", "dose": "20", "dose_unit": "mg",
        "frequency": "1x daily", "change_reason": "side_effects", "reason": "myalgia, CK raised"}),
        ],
    )?;
    w.write(p, "card-devries", vec![json!({"type": "acknowledge_notification", "notification": changed[0], "reason": "read"})])?;
    // The cardiologist types 0.9 for 2.9 and corrects it: the wrong value stays visible, marked,
    // and counts for nothing; the GP, told of the result, is told of the correction.
    let ldl_typo = w.write(
        p,
        "card-devries",
        vec![json!({"type": "record_lab_result", "measure": "ldl",
        "value": "0.9", "unit": "mmol/L", "reason": "outpatient lab"})],
    )?;
    w.write(p, "card-devries", vec![
        json!({"type": "mark_entered_in_error", "position": ldl_typo[0], "reason": "typed 0.9 for 2.9"}),
        json!({"type": "record_lab_result", "measure": "ldl", "value": "2.9", "unit": "mmol/L", "reason": "outpatient lab"}),
    ])?;
    let stopped = w.write(
        p,
        "gp-jansen",
        vec![json!({"type": "stop_medication", "atc": "C10AA05",
        "change_reason": "side_effects", "reason": "myalgia persists at 20 mg"})],
    )?;
    // The stop for side effects records an atorvastatin intolerance; rosuvastatin is of the same
    // class (C10AA), so its start is warned about, mildly, and accepted.
    w.write(p, "gp-jansen", vec![json!({"type": "start_medication", "atc": "C10AA07", "name": "rosuvastatin", "dose": "10",
        "dose_unit": "mg", "frequency": "1x daily", "indication_problem": "mi",
        "reason": "the cardiologist's preference after atorvastatin intolerance"})])?;
    let _ = stopped;
    w.write(p, "patient-999990007", vec![
        json!({"type": "record_measurement", "measure": "systolic_bp", "value": "142", "unit": "mm[Hg]", "source": "self_measured_at_home", "reason": "home"}),
        json!({"type": "record_measurement", "measure": "systolic_bp", "value": "139", "unit": "mm[Hg]", "source": "self_measured_at_home", "reason": "home"}),
        json!({"type": "record_measurement", "measure": "systolic_bp", "value": "144", "unit": "mm[Hg]", "source": "self_measured_at_home", "reason": "home"}),
        json!({"type": "set_lifestyle_goal", "goal": "walk-30", "description": "walk 30 minutes a day", "reason": "own action plan"}),
        json!({"type": "add_note", "kind": "note", "subject": "Dizzy in the mornings", "reason": "for the nurse"}),
    ])?;
    w.write(
        p,
        "gp-jansen",
        vec![
            json!({"type": "record_problem", "problem": "dizzy", "code_system": "icpc_1_nl",
        "code": "N17", "description": "dizziness in the mornings", "reason": "consultation"}),
        ],
    )?;
    let weight = w.write(
        p,
        "poh-bakker",
        vec![
            json!({"type": "record_measurement", "measure": "weight", "value": "812.0",
        "unit": "kg", "source": "practice", "reason": "consultation"}),
        ],
    );
    // The nurse's typo is refused by the plausible range; she records the right value.
    if weight.is_err() {
        w.report.lines.push(
            "    refused: weight 812.0 kg is outside the plausible range (as intended)".into(),
        );
    }
    let typo = w.write(
        p,
        "poh-bakker",
        vec![
            json!({"type": "record_measurement", "measure": "weight", "value": "91.2",
        "unit": "kg", "source": "practice", "reason": "consultation"}),
        ],
    )?;
    w.write(p, "poh-bakker", vec![
        json!({"type": "mark_entered_in_error", "position": typo[0], "reason": "recorded on the wrong day"}),
        json!({"type": "record_measurement", "measure": "weight", "value": "81.2", "unit": "kg", "source": "practice", "reason": "consultation"}),
        json!({"type": "close_lifestyle_goal", "goal": "walk-30", "outcome": "achieved", "reason": "walks daily now"}),
    ])?;
    w.write(p, "gp-jansen", vec![json!({"type": "resolve_problem", "problem": "dizzy", "reason": "gone since the dose of the diuretic was lowered"})])?;
    w.write(p, "card-devries", vec![json!({"type": "withdraw_target", "measure": "systolic_bp", "reason": "heart failure stable; guideline target suffices"})])?;
    w.write(p, "gp-jansen", vec![json!({"type": "remove_care_team_member", "actor": "pharm-visser", "reason": "medication review done"})])?;
    // Saturday night at the out-of-hours post (seed 002): the GP there is in no care team,
    // breaks the glass to see medication and intolerances, and records what was done; both
    // lines are told at once.
    w.write(p, "hap-mulder", vec![
        json!({"type": "break_glass", "hours": 4, "reason": "palpitations at the out-of-hours post; medication and intolerances needed"}),
        json!({"type": "add_note", "kind": "note", "subject": "Out-of-hours visit", "body": "Palpitations, ECG sinus rhythm 96/min; no change to medication. GP to review Monday.", "reason": "acute visit"}),
    ])?;
    Ok(())
}

/// Patient 999990019: founded by the cardiologist, so CVRM has no lead until the GP, added
/// later, takes it; shared care ends.
fn specialist_led_patient(w: &mut Writer<'_>) -> anyhow::Result<()> {
    let p = "999990019";
    w.write(p, "card-devries", vec![json!({"type": "start_shared_care", "arrangement": "atrial fibrillation follow-up by cardiology", "reason": "referral"})])?;
    w.write(p, "card-devries", vec![member("gp-jansen", "none", "co")?])?;
    w.write(
        p,
        "gp-jansen",
        vec![
            json!({"type": "hand_over_lead", "lead": "cvrm", "to": "gp-jansen",
        "reason": "the patient's GP takes the CVRM lead"}),
        ],
    )?;
    w.write(p, "card-devries", vec![
        json!({"type": "start_medication", "atc": "C09AA02", "name": "enalapril", "dose": "10", "dose_unit": "mg", "frequency": "2x daily", "reason": "hypertension"}),
        json!({"type": "record_lab_result", "measure": "potassium", "value": "4.6", "unit": "mmol/L", "reason": "hospital lab"}),
    ])?;
    w.write(p, "gp-jansen", vec![
        json!({"type": "record_measurement", "measure": "systolic_bp", "value": "152", "unit": "mm[Hg]", "source": "practice", "reason": "CVRM check"}),
        json!({"type": "change_dose", "atc": "C09AA02", "dose": "20", "dose_unit": "mg", "frequency": "2x daily", "change_reason": "target_not_reached", "reason": "BP above target"}),
    ])?;
    w.write(p, "card-devries", vec![json!({"type": "end_shared_care", "arrangement": "stable; back to the GP for CVRM", "reason": "discharged from outpatient follow-up"})])?;
    Ok(())
}

/// Patient pat-0003: first line only; a duplicate lab order is flagged.
fn gp_only_patient(w: &mut Writer<'_>) -> anyhow::Result<()> {
    let p = "pat-0003";
    w.write(p, "gp-jansen", vec![member("gp-jansen", "cvrm", "main")?])?;
    w.write(p, "gp-jansen", vec![
        json!({"type": "order_lab", "order": "lab-a", "tests": ["ldl", "hba1c"], "reason": "CVRM check"}),
        json!({"type": "order_lab", "order": "lab-b", "tests": ["ldl"], "reason": "forgot the first order"}),
    ])?;
    Ok(())
}
