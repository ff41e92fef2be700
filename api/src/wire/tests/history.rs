//! A representative history in a fresh ledger: the demo's three patients (both lines, every
//! event kind of the catalogue) and a fourth with what the demo leaves out (an organisation on
//! the actor, an idempotency key, an acknowledgement by id, reasons in words, a corrected
//! medication start and stop, times with microseconds). Every body is read by the old parser
//! and the new one, which must agree, before it is appended.

use serde_json::{json, Value};

use careledger_core::ids::{ActorId, AgbCode, PatientId, Text};
use careledger_core::role::{Line, Role};
use careledger_core::{
    Actor, AppendOutcome, AppendRequest, ExpectedRevision, Ledger, LedgerConfig,
};
use careledger_core::{FramedEvent, RecordedEvent, Timestamp};
use careledger_projections::{ProjectionConfig, ReadModel};

use super::legacy_dto as dto;
use crate::wire::parse_append_body;

/// The actors: (id, name, role).
const ACTORS: [(&str, &str, &str); 7] = [
    ("gp-jansen", "A. Jansen", "gp"),
    ("poh-bakker", "M. Bakker", "practice_nurse"),
    ("assistant-smit", "S. Smit", "practice_assistant"),
    ("card-devries", "J. de Vries", "cardiologist"),
    ("pharm-visser", "K. Visser", "pharmacist"),
    ("patient-999990007", "P. de Boer", "patient"),
    ("hap-mulder", "R. Mulder", "out_of_hours_gp"),
];

/// The patients the history writes.
pub const PATIENTS: [&str; 4] = ["999990007", "999990019", "pat-0003", "pat-0004"];

/// The ledger, its events, the read models folded from them, and every body written.
pub struct History {
    _dir: tempfile::TempDir,
    /// The ledger.
    pub ledger: Ledger,
    /// Every recorded event, in position order.
    pub events: Vec<RecordedEvent>,
    /// The same events, each with its stored frame.
    pub framed: Vec<FramedEvent>,
    /// The read models.
    pub model: ReadModel,
    /// Their configuration.
    pub config: ProjectionConfig,
    /// Every append body written, with the writer's line.
    pub bodies: Vec<(Line, Value)>,
    /// The outcome of every append, a replayed one among them.
    pub outcomes: Vec<AppendOutcome>,
}

impl History {
    /// Writes the history.
    pub fn build() -> History {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("ledger"), LedgerConfig::default()).unwrap();
        let mut w = Writer {
            ledger: &ledger,
            bodies: Vec::new(),
            outcomes: Vec::new(),
        };
        shared_care_story(&mut w);
        specialist_led_patient(&mut w);
        gp_only_patient(&mut w);
        what_the_demo_leaves_out(&mut w);
        signing_keys(&ledger);
        let (bodies, outcomes) = (w.bodies, w.outcomes);
        let events = ledger.read_all(0, usize::MAX).unwrap();
        let framed = ledger.read_all_framed(0, usize::MAX).unwrap();
        let mut model = ReadModel::default();
        for e in &events {
            model.apply(e);
        }
        History {
            _dir: dir,
            ledger,
            events,
            framed,
            model,
            config: ProjectionConfig::default(),
            bodies,
            outcomes,
        }
    }

    /// The patients, parsed.
    pub fn patients() -> Vec<PatientId> {
        PATIENTS
            .iter()
            .map(|p| PatientId::parse(p).unwrap())
            .collect()
    }
}

/// A client system's key registered and revoked in the key stream, so that the history holds
/// every kind of event.
fn signing_keys(ledger: &Ledger) {
    use careledger_app::keys::{change_key, KeyChange};
    let owner = actor(ACTORS[0].0);
    let key_id = careledger_core::ids::ElementId::parse("his-1").unwrap();
    let register = KeyChange::Register {
        key_id: key_id.clone(),
        public_key: crate::signature::public_key(&[13; 32]),
        system: Text::new("HIS").unwrap(),
    };
    let reason = Text::new("the practice HIS signs my appends").unwrap();
    change_key(ledger, owner.clone(), owner.id.clone(), register, reason).unwrap();
    let reason = Text::new("HIS replaced").unwrap();
    let revoke = KeyChange::Revoke { key_id };
    change_key(ledger, owner.clone(), owner.id, revoke, reason).unwrap();
}

/// A fixed "now" after the history, for overdue notifications and signals.
pub fn now() -> Timestamp {
    Timestamp::parse_rfc3339("2027-06-01T12:00:00Z").unwrap()
}

fn actor(id: &str) -> Actor {
    let (_, name, role) = ACTORS.iter().find(|(a, _, _)| *a == id).unwrap();
    Actor {
        id: ActorId::parse(id).unwrap(),
        role: Role::parse(role).unwrap(),
        name: Text::new(*name).unwrap(),
        organisation: None,
    }
}

struct Writer<'a> {
    ledger: &'a Ledger,
    bodies: Vec<(Line, Value)>,
    outcomes: Vec<AppendOutcome>,
}

impl Writer<'_> {
    fn write(&mut self, patient: &str, who: &str, commands: Vec<Value>) -> Vec<u64> {
        self.write_as(patient, actor(who), None, commands)
    }

    /// Appends `commands` as `actor`, after both parsers read the body alike.
    fn write_as(
        &mut self,
        patient: &str,
        actor: Actor,
        idempotency_key: Option<&str>,
        commands: Vec<Value>,
    ) -> Vec<u64> {
        let body = json!({"commands": commands});
        let old = dto::append_body(&body, actor.line()).unwrap();
        let (expected, submissions) =
            parse_append_body(body.to_string().as_bytes(), actor.line()).unwrap();
        assert_eq!(submissions, old.submissions, "{body}");
        assert_eq!(expected, old.expected, "{body}");
        self.bodies.push((actor.line(), body));
        let outcome = self
            .ledger
            .append(AppendRequest {
                patient: PatientId::parse(patient).unwrap(),
                expected: ExpectedRevision::Any,
                actor,
                submissions,
                idempotency_key: idempotency_key.map(str::to_owned),
                correlation_id: None,
                causation_id: None,
            })
            .unwrap();
        let positions = outcome.events.iter().map(|e| e.position).collect();
        self.outcomes.push(outcome);
        positions
    }
}

fn member(actor_id: &str, lead: &str, practitioner: &str) -> Value {
    let (id, name, role) = ACTORS.iter().find(|(a, _, _)| *a == actor_id).unwrap();
    json!({"type": "add_care_team_member", "actor": id, "name": name, "role": role, "lead": lead,
          "practitioner": practitioner, "reason": "joins the care team"})
}

/// The demo's patient 999990007: shared care, an LDL target, a statin changed for side effects
/// and acknowledged, corrections.
fn shared_care_story(w: &mut Writer<'_>) {
    let p = "999990007";
    w.write(p, "gp-jansen", vec![json!({"type": "start_shared_care",
        "arrangement": "CVRM by the GP practice; heart failure follow-up by cardiology", "reason": "after myocardial infarction"})]);
    w.write(
        p,
        "gp-jansen",
        vec![
            member("card-devries", "organ_disease", "co"),
            member("poh-bakker", "none", "co"),
            member("assistant-smit", "none", "co"),
            member("pharm-visser", "none", "co"),
            member("patient-999990007", "none", "not_applicable"),
        ],
    );
    w.write(p, "gp-jansen", vec![
        json!({"type": "record_problem", "problem": "mi", "code_system": "icpc_1_nl", "code": "K75",
               "description": "myocardial infarction", "reason": "discharge letter"}),
        json!({"type": "record_smoking_status", "status": "former", "reason": "stopped smoking after the infarction"}),
        json!({"type": "record_measurement", "measure": "bmi", "value": "27.4", "unit": "kg/m2",
               "source": "practice", "reason": "CVRM intake"}),
    ]);
    w.write(
        p,
        "pharm-visser",
        vec![json!({"type": "record_intolerance", "atc": "C09AA02",
        "substance": "enalapril", "kind": "intolerance", "reaction": "dry cough (2019)",
        "reason": "medication review"})],
    );
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
    ]);
    w.write(p, "assistant-smit", vec![json!({"type": "order_lab", "order": "lab-2026-01", "annual_panel": true,
        "tests": ["total_cholesterol", "ldl", "hdl", "glucose", "creatinine", "egfr", "potassium", "ck", "alt", "nt_probnp"],
        "reason": "yearly CVRM lab with the cardiologist's additions"})]);
    w.write(p, "assistant-smit", vec![
        json!({"type": "record_lab_result", "order": "lab-2026-01", "measure": "ldl", "value": "2.4", "unit": "mmol/L", "reason": "lab"}),
        json!({"type": "record_lab_result", "order": "lab-2026-01", "measure": "ck", "value": "420", "unit": "U/L", "reason": "lab"}),
        json!({"type": "record_lab_result", "order": "lab-2026-01", "measure": "nt_probnp", "value": "1250", "unit": "ng/L", "reason": "lab"}),
    ]);
    let changed = w.write(
        p,
        "gp-jansen",
        vec![
            json!({"type": "change_dose", "atc": "C10AA05", "dose": "20", "dose_unit": "mg",
        "frequency": "1x daily", "change_reason": "side_effects", "reason": "myalgia, CK raised"}),
        ],
    );
    w.write(p, "card-devries", vec![json!({"type": "acknowledge_notification", "notification": changed[0], "reason": "read"})]);
    let ldl_typo = w.write(
        p,
        "card-devries",
        vec![json!({"type": "record_lab_result", "measure": "ldl",
        "value": "0.9", "unit": "mmol/L", "reason": "outpatient lab"})],
    );
    w.write(p, "card-devries", vec![
        json!({"type": "mark_entered_in_error", "position": ldl_typo[0], "reason": "typed 0.9 for 2.9"}),
        json!({"type": "record_lab_result", "measure": "ldl", "value": "2.9", "unit": "mmol/L", "reason": "outpatient lab"}),
    ]);
    w.write(
        p,
        "gp-jansen",
        vec![json!({"type": "stop_medication", "atc": "C10AA05",
        "change_reason": "side_effects", "reason": "myalgia persists at 20 mg"})],
    );
    w.write(p, "gp-jansen", vec![json!({"type": "start_medication", "atc": "C10AA07", "name": "rosuvastatin", "dose": "10",
        "dose_unit": "mg", "frequency": "1x daily", "indication_problem": "mi",
        "reason": "the cardiologist's preference after atorvastatin intolerance"})]);
    w.write(p, "patient-999990007", vec![
        json!({"type": "record_measurement", "measure": "systolic_bp", "value": "142", "unit": "mm[Hg]", "source": "self_measured_at_home", "reason": "home"}),
        json!({"type": "record_measurement", "measure": "systolic_bp", "value": "139", "unit": "mm[Hg]", "source": "self_measured_at_home", "reason": "home"}),
        json!({"type": "record_measurement", "measure": "systolic_bp", "value": "144", "unit": "mm[Hg]", "source": "self_measured_at_home", "reason": "home"}),
        json!({"type": "set_lifestyle_goal", "goal": "walk-30", "description": "walk 30 minutes a day", "reason": "own action plan"}),
        json!({"type": "add_note", "kind": "note", "subject": "Dizzy in the mornings", "reason": "for the nurse"}),
    ]);
    w.write(
        p,
        "gp-jansen",
        vec![
            json!({"type": "record_problem", "problem": "dizzy", "code_system": "icpc_1_nl",
        "code": "N17", "description": "dizziness in the mornings", "reason": "consultation"}),
        ],
    );
    let typo = w.write(
        p,
        "poh-bakker",
        vec![
            json!({"type": "record_measurement", "measure": "weight", "value": "91.2",
        "unit": "kg", "source": "practice", "reason": "consultation"}),
        ],
    );
    w.write(p, "poh-bakker", vec![
        json!({"type": "mark_entered_in_error", "position": typo[0], "reason": "recorded on the wrong day"}),
        json!({"type": "record_measurement", "measure": "weight", "value": "81.2", "unit": "kg", "source": "practice", "reason": "consultation"}),
        json!({"type": "close_lifestyle_goal", "goal": "walk-30", "outcome": "achieved", "reason": "walks daily now"}),
    ]);
    w.write(p, "gp-jansen", vec![json!({"type": "resolve_problem", "problem": "dizzy", "reason": "gone since the dose of the diuretic was lowered"})]);
    w.write(p, "card-devries", vec![json!({"type": "withdraw_target", "measure": "systolic_bp", "reason": "heart failure stable; guideline target suffices"})]);
    w.write(p, "gp-jansen", vec![json!({"type": "remove_care_team_member", "actor": "pharm-visser", "reason": "medication review done"})]);
}

/// The demo's patient 999990019: founded by the cardiologist, so CVRM has no lead until the GP
/// takes it; shared care ends.
fn specialist_led_patient(w: &mut Writer<'_>) {
    let p = "999990019";
    w.write(p, "card-devries", vec![json!({"type": "start_shared_care", "arrangement": "atrial fibrillation follow-up by cardiology", "reason": "referral"})]);
    w.write(p, "card-devries", vec![member("gp-jansen", "none", "co")]);
    w.write(
        p,
        "gp-jansen",
        vec![
            json!({"type": "hand_over_lead", "lead": "cvrm", "to": "gp-jansen",
        "reason": "the patient's GP takes the CVRM lead"}),
        ],
    );
    w.write(p, "card-devries", vec![
        json!({"type": "start_medication", "atc": "C09AA02", "name": "enalapril", "dose": "10", "dose_unit": "mg", "frequency": "2x daily", "reason": "hypertension"}),
        json!({"type": "record_lab_result", "measure": "potassium", "value": "4.6", "unit": "mmol/L", "reason": "hospital lab"}),
    ]);
    w.write(p, "gp-jansen", vec![
        json!({"type": "record_measurement", "measure": "systolic_bp", "value": "152", "unit": "mm[Hg]", "source": "practice", "reason": "CVRM check"}),
        json!({"type": "change_dose", "atc": "C09AA02", "dose": "20", "dose_unit": "mg", "frequency": "2x daily", "change_reason": "target_not_reached", "reason": "BP above target"}),
    ]);
    w.write(p, "card-devries", vec![json!({"type": "end_shared_care", "arrangement": "stable; back to the GP for CVRM", "reason": "discharged from outpatient follow-up"})]);
}

/// The demo's patient pat-0003: first line only; a duplicate lab order is flagged.
fn gp_only_patient(w: &mut Writer<'_>) {
    let p = "pat-0003";
    w.write(p, "gp-jansen", vec![member("gp-jansen", "cvrm", "main")]);
    w.write(p, "gp-jansen", vec![
        json!({"type": "order_lab", "order": "lab-a", "tests": ["ldl", "hba1c"], "reason": "CVRM check"}),
        json!({"type": "order_lab", "order": "lab-b", "tests": ["ldl"], "reason": "forgot the first order"}),
    ]);
}

/// Patient pat-0004: what the demo does not write.
fn what_the_demo_leaves_out(w: &mut Writer<'_>) {
    let p = "pat-0004";
    let mut gp = actor("gp-jansen");
    gp.organisation = Some(AgbCode::parse("01012345").unwrap());
    let intake = vec![
        member("gp-jansen", "cvrm", "main"),
        json!({"type": "add_care_team_member", "actor": "card-devries", "name": "J. de Vries",
               "agb": "03123456", "role": "cardiologist", "lead": "organ_disease"}),
        json!({"type": "start_shared_care", "arrangement": "heart failure by cardiology"}),
    ];
    w.write_as(p, gp.clone(), Some("intake-1"), intake.clone());
    // The same append again with its key: replayed, nothing written.
    w.write_as(p, gp.clone(), Some("intake-1"), intake);
    // Times with microseconds, a reason in words, an indication in words.
    w.write_as(p, gp.clone(), None, vec![
        json!({"type": "record_measurement", "measure": "systolic_bp", "value": "151", "unit": "mm[Hg]",
               "source": "practice", "occurred_at": "2026-11-02T08:15:30.123456Z", "reason": "consultation"}),
        json!({"type": "start_medication", "atc": "c08ca01", "name": "amlodipine", "dose": "2.5",
               "dose_unit": "mg", "frequency": "1x daily", "indication_text": "hypertension",
               "occurred_at": "2026-11-02T09:00:00+01:00"}),
        json!({"type": "start_medication", "atc": "C03AA03", "name": "hydrochlorothiazide", "dose": "12.5",
               "dose_unit": "mg", "frequency": "1x daily", "reason": "hypertension"}),
        json!({"type": "record_intolerance", "atc": "C07AB", "substance": "beta blockers",
               "kind": "contra_indication", "reaction": "severe asthma"}),
        json!({"type": "set_target", "measure": "ldl", "comparator": "≤", "value": "2.6", "unit": "mmol/L",
               "basis": "nhg_guideline"}),
        json!({"type": "add_note", "subject": "Intake done"}),
    ]);
    let changed = w.write_as(
        p,
        gp.clone(),
        None,
        vec![
            json!({"type": "change_dose", "atc": "C08CA01", "dose": "5", "dose_unit": "mg",
            "frequency": "1x daily", "change_reason": "other",
            "change_reason_text": "ankle oedema at the higher dose was ruled out", "reason": "BP"}),
        ],
    );
    w.write(
        p,
        "card-devries",
        vec![json!({"type": "acknowledge_notification",
            "notification": format!("n-{}-second", changed[0]), "reason": "seen"})],
    );
    // A stop entered in error, then the start itself: the episode is voided, its stop marked.
    let stop = w.write_as(
        p,
        gp.clone(),
        None,
        vec![json!({"type": "stop_medication", "atc": "C03AA03",
            "change_reason": "patient_preference", "reason": "wants fewer pills"})],
    );
    w.write_as(
        p,
        gp.clone(),
        None,
        vec![json!({"type": "mark_entered_in_error", "position": stop[0], "reason": "wrong drug"})],
    );
    w.write_as(
        p,
        gp,
        None,
        vec![json!({"type": "stop_medication", "atc": "C08CA01",
            "change_reason": "other", "change_reason_text": "dizziness", "reason": "dizzy"})],
    );
    w.write(
        p,
        "card-devries",
        vec![
            json!({"type": "order_lab", "order": "hf-1", "tests": ["nt_probnp", "sodium"],
            "occurred_at": "2026-11-20T10:00:00.5Z"}),
        ],
    );
    // The out-of-hours post breaks the glass and records what it did (seed 002).
    w.write(
        p,
        "hap-mulder",
        vec![
            json!({"type": "break_glass", "hours": 6, "reason": "palpitations at the out-of-hours post"}),
            json!({"type": "add_note", "subject": "Out-of-hours visit", "reason": "acute visit"}),
        ],
    );
}
