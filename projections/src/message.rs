//! The structured text of an event: a template (the event's kind) and the values it is filled
//! with, language-neutral, so that every front end shows it in Dutch or English
//! ([`crate::labels::message`]). Notifications, the audit trail and the timeline read it.
//!
//! The values hold codes and plain numbers, never words of one language: a measure by its code
//! (`ldl`), a value as decimal text with a point (`1.8`), a dose's unit by its symbol (`mg`), a
//! reason, basis, source or outcome by its code. Names, subjects and reasons written by a
//! clinician are kept as written. `who` keeps the English "Role name" for clients that read it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use careledger_core::clinical::{IntoleranceKind, SmokingStatus};
use careledger_core::event::{
    ChangeReason, Dose, Event, GoalOutcome, MeasurementSource, NoteKind, TargetBasis,
};
use careledger_core::quantity::{Comparator, Measure, Quantity};
use careledger_core::record::RecordedEvent;
use careledger_core::role::Lead;

use crate::{summary, PatientView};

/// A word of a [`Message`]: a template, key or code the program knows (borrowed, no copy made
/// while folding), or a value written by a clinician or read back from storage (owned). Stored
/// and sent as a plain string.
pub type Word = Cow<'static, str>;

/// A text, kept structured: a template id and the values it is filled with, so that a page can
/// show it in Dutch as well as English. [`Message::english`] renders it in English,
/// [`crate::labels::message`] in either language.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The template: the causing event's kind (`medication_stopped`); `change` in read models
    /// written before every kind had its own, told in the one-line `summary` value.
    pub template: Word,
    /// The values by name (`who`, `drug`, `amount`, `atc`, `change_reason`, `reason`, ...).
    pub values: BTreeMap<Word, Word>,
}

impl Message {
    /// The message in English, for clinicians: names, doses and reasons, never a bare code.
    pub fn english(&self) -> String {
        crate::labels::message(self, crate::labels::Lang::En)
    }

    /// A message of `template` with no values yet.
    pub fn new(template: impl Into<Word>) -> Self {
        Message {
            template: template.into(),
            values: BTreeMap::new(),
        }
    }

    /// A message read from plain strings (a client's copy, a test).
    pub fn of_strings<'a>(
        template: &str,
        values: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        Message {
            template: Cow::Owned(template.to_owned()),
            values: values
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.to_owned()), Cow::Owned(v.to_owned())))
                .collect(),
        }
    }

    /// A value, empty when absent.
    pub fn value(&self, key: &str) -> &str {
        self.values.get(key).map_or("", |v| v.as_ref())
    }

    fn put(&mut self, key: impl Into<Word>, value: impl Into<Word>) {
        self.values.insert(key.into(), value.into());
    }
}

/// Codes of the enumerations a message names, each parsed back by the labels.
pub(crate) mod code {
    use super::*;

    /// `nhg_guideline`, `esc_guideline`, `individual`.
    pub const BASES: [(TargetBasis, &str); 3] = [
        (TargetBasis::NhgGuideline, "nhg_guideline"),
        (TargetBasis::EscGuideline, "esc_guideline"),
        (TargetBasis::Individual, "individual"),
    ];
    /// Where a measurement was taken.
    pub const SOURCES: [(MeasurementSource, &str); 3] = [
        (MeasurementSource::Practice, "practice"),
        (MeasurementSource::Hospital, "hospital"),
        (
            MeasurementSource::SelfMeasuredAtHome,
            "self_measured_at_home",
        ),
    ];
    /// How a goal ended.
    pub const OUTCOMES: [(GoalOutcome, &str); 3] = [
        (GoalOutcome::Achieved, "achieved"),
        (GoalOutcome::Abandoned, "abandoned"),
        (GoalOutcome::Replaced, "replaced"),
    ];
    /// Notes and letters.
    pub const NOTE_KINDS: [(NoteKind, &str); 3] = [
        (NoteKind::Note, "note"),
        (NoteKind::ReturnLetter, "return_letter"),
        (NoteKind::InterimLetter, "interim_letter"),
    ];
    /// Leads.
    pub const LEADS: [(Lead, &str); 3] = [
        (Lead::Cvrm, "cvrm"),
        (Lead::OrganDisease, "organ_disease"),
        (Lead::None, "none"),
    ];

    /// The code of `value` in `table`.
    pub fn of<T: PartialEq + Copy>(table: &[(T, &'static str)], value: T) -> &'static str {
        table
            .iter()
            .find(|(v, _)| *v == value)
            .map_or("", |(_, c)| c)
    }

    /// The value of `code` in `table`.
    pub fn parse<T: Copy>(table: &[(T, &'static str)], code: &str) -> Option<T> {
        table.iter().find(|(_, c)| *c == code).map(|(v, _)| *v)
    }

    /// A change reason's code; the words of another reason go in `change_reason_text`.
    pub fn change_reason(reason: &ChangeReason) -> (&'static str, String) {
        match reason {
            ChangeReason::SideEffects => ("side_effects", String::new()),
            ChangeReason::TargetNotReached => ("target_not_reached", String::new()),
            ChangeReason::PatientPreference => ("patient_preference", String::new()),
            ChangeReason::Other(words) => ("other", words.to_string()),
        }
    }
}

/// Puts a value's measure (by its code) and the value as decimal text.
fn put_quantity(m: &mut Message, value: &Quantity) {
    m.put("measure", value.measure().code());
    m.put("value", value.value_text());
}

/// Whose dose a message names: the new one, or the one it replaces (keys with `from_`).
#[derive(Clone, Copy)]
enum DoseKeys {
    New,
    Replaced,
}

fn put_dose(m: &mut Message, keys: DoseKeys, dose: &Dose, frequency: &str) {
    let [amount, unit, times] = match keys {
        DoseKeys::New => ["amount", "unit", "frequency"],
        DoseKeys::Replaced => ["from_amount", "from_unit", "from_frequency"],
    };
    m.put(amount, dose.amount_text());
    m.put(unit, dose.unit().symbol());
    m.put(times, frequency.to_owned());
}

fn put_reason(m: &mut Message, reason: &ChangeReason) {
    let (code, words) = code::change_reason(reason);
    m.put("change_reason", code);
    if !words.is_empty() {
        m.put("change_reason_text", words);
    }
}

fn tests(list: &[Measure]) -> String {
    list.iter().map(|t| t.code()).collect::<Vec<_>>().join(",")
}

/// The structured text of an event, read from the view before the event is applied.
fn of_event(view: &PatientView, recorded: &RecordedEvent) -> Message {
    let record = &recorded.record;
    let mut m = Message::new(record.event.kind());
    m.put("who", summary::who(recorded));
    m.put("role", record.actor.role.as_str());
    m.put("name", record.actor.name.to_string());
    m.put("reason", record.reason.to_string());
    let plan = &view.plan;
    let member_name = |actor: &careledger_core::ids::ActorId| {
        plan.care_team
            .iter()
            .find(|t| &t.actor == actor)
            .map_or_else(|| actor.to_string(), |t| t.name.to_string())
    };
    match &record.event {
        Event::CareTeamMemberAdded(a) => {
            m.put("member", a.name.to_string());
            m.put("member_role", a.role.as_str());
            m.put("lead", code::of(&code::LEADS, a.lead));
            m.put(
                "practitioner",
                match a.practitioner {
                    careledger_core::role::Practitioner::Main => "main",
                    careledger_core::role::Practitioner::Co => "co",
                    careledger_core::role::Practitioner::NotApplicable => "",
                },
            );
        }
        Event::CareTeamMemberRemoved(r) => {
            m.put("member", member_name(&r.actor));
            m.put("member_id", r.actor.to_string());
        }
        Event::LeadHandedOver(h) => {
            m.put("lead", code::of(&code::LEADS, h.lead));
            m.put("to", member_name(&h.to));
            m.put("to_id", h.to.to_string());
        }
        Event::SharedCareStarted(s) | Event::SharedCareEnded(s) => {
            m.put("arrangement", s.arrangement.to_string());
        }
        Event::TargetSet(t) => {
            put_quantity(&mut m, &t.value);
            m.put("comparator", t.comparator.symbol());
            m.put("basis", code::of(&code::BASES, t.basis));
            m.put("rationale", t.rationale.to_string());
        }
        Event::TargetWithdrawn(w) => {
            m.put("measure", w.measure.code());
            let default = crate::plan::CarePlan::default();
            if let Some(e) = default.targets.get(&w.measure) {
                m.put("default_comparator", e.effective.comparator.symbol());
                m.put("default_value", e.effective.value.value_text());
            }
        }
        Event::MedicationStarted(s) => {
            m.put("drug", s.name.to_string());
            m.put("atc", s.atc.to_string());
            put_dose(&mut m, DoseKeys::New, &s.dose, s.frequency.as_str());
        }
        Event::MedicationDoseChanged(c) => {
            m.put("atc", c.atc.to_string());
            if let Some(active) = plan.medications.get(&c.atc) {
                m.put("drug", active.name.to_string());
                put_dose(
                    &mut m,
                    DoseKeys::Replaced,
                    &active.dose,
                    active.frequency.as_str(),
                );
            }
            put_dose(&mut m, DoseKeys::New, &c.dose, c.frequency.as_str());
            put_reason(&mut m, &c.reason);
        }
        Event::MedicationStopped(s) => {
            m.put("atc", s.atc.to_string());
            if let Some(active) = plan.medications.get(&s.atc) {
                m.put("drug", active.name.to_string());
                put_dose(
                    &mut m,
                    DoseKeys::New,
                    &active.dose,
                    active.frequency.as_str(),
                );
            }
            put_reason(&mut m, &s.reason);
        }
        Event::MedicationPreferenceRecorded(p) => {
            m.put("drug", p.name.to_string());
            m.put("atc", p.atc.to_string());
            m.put("preference", p.preference.to_string());
        }
        Event::LabOrdered(o) => {
            m.put("order", o.order.to_string());
            m.put("tests", tests(&o.tests));
            if o.annual_panel {
                m.put("annual_panel", "true");
            }
        }
        Event::AnnualPanelExtended(e) => m.put("tests", tests(&e.tests)),
        Event::LabResultRecorded(r) => {
            put_quantity(&mut m, &r.value);
            if let Some(order) = &r.order {
                m.put("order", order.to_string());
            }
        }
        Event::MeasurementRecorded(r) => {
            put_quantity(&mut m, &r.value);
            m.put("source", code::of(&code::SOURCES, r.source));
        }
        Event::LifestyleGoalSet(g) => {
            m.put("goal", g.goal.to_string());
            m.put("description", g.description.to_string());
        }
        Event::LifestyleGoalClosed(c) => {
            m.put("goal", c.goal.to_string());
            m.put("outcome", code::of(&code::OUTCOMES, c.outcome));
            if let Some(g) = plan.goals.get(&c.goal) {
                m.put("description", g.description.to_string());
            }
        }
        Event::NoteAdded(n) => {
            m.put("note_kind", code::of(&code::NOTE_KINDS, n.kind));
            m.put("subject", n.subject.to_string());
        }
        Event::NotificationAcknowledged(a) => {
            m.put("notification", a.notification.to_string());
            m.put("recipient", a.recipient.as_str());
        }
        Event::EnteredInError(c) => m.put("corrected", c.position.to_string()),
        Event::IntoleranceRecorded(i) => {
            m.put("intolerance_kind", i.kind.code());
            m.put("substance", i.substance.to_string());
            m.put("atc", i.atc.to_string());
            m.put("reaction", i.reaction.to_string());
        }
        Event::ProblemRecorded(p) => {
            m.put("problem", p.problem.to_string());
            m.put("code", p.code.to_string());
            m.put("description", p.description.to_string());
        }
        Event::ProblemResolved(r) => {
            m.put("problem", r.problem.to_string());
            if let Some(p) = plan.problems.get(&r.problem) {
                m.put("code", p.code.to_string());
                m.put("description", p.description.to_string());
            }
        }
        Event::SmokingStatusRecorded(s) => m.put("status", s.status.code()),
        Event::SigningKeyRegistered(k) => {
            m.put("key_id", k.key_id.to_string());
            m.put("actor", k.actor.to_string());
            m.put("system", k.system.to_string());
        }
        Event::SigningKeyRevoked(r) => {
            m.put("key_id", r.key_id.to_string());
            m.put("actor", r.actor.to_string());
        }
        Event::GlassBroken(g) => m.put("hours", g.hours.to_string()),
    }
    m
}

/// The text of any event, a correction's with the corrected entry's inside.
pub(crate) fn for_event(view: &PatientView, recorded: &RecordedEvent) -> Message {
    match recorded.event() {
        Event::EnteredInError(c) => of_correction(view, recorded, c.position),
        _ => of_event(view, recorded),
    }
}

/// A correction's text: who marked which position, and the corrected entry's own message under
/// `what.` (its template at `what.template`), so that it reads in the reader's language too.
fn of_correction(view: &PatientView, recorded: &RecordedEvent, corrected: u64) -> Message {
    let mut m = of_event(view, recorded);
    m.put("corrected", corrected.to_string());
    if let Some(entry) = view.audit.iter().find(|e| e.position() == corrected) {
        m.put("what", entry.summary());
        m.put("what.template", entry.message.template.clone());
        for (k, v) in &entry.message.values {
            m.put(format!("what.{k}"), v.clone());
        }
    }
    m
}

/// The message nested under `prefix.` (a correction's `what.`), if any.
pub fn nested(message: &Message, prefix: &str) -> Option<Message> {
    let lead = format!("{prefix}.");
    let template = message
        .values
        .get(format!("{lead}template").as_str())?
        .clone();
    let values = message
        .values
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix(&lead)?;
            (key != "template").then(|| (Cow::Owned(key.to_owned()), v.clone()))
        })
        .collect();
    Some(Message { template, values })
}

/// What an audit entry's element was or becomes, structured as a [`Message`] whose template
/// names the kind of value: `target` (`comparator`, `value`, `measure`), `guideline_default`,
/// `medication` (`drug`, `amount`, `unit`, `frequency`), `dose`, `stopped`, `shared_care`,
/// `no_shared_care`, `goal_open`, `goal_closed` (`outcome`).
pub(crate) fn state(template: &'static str, values: &[(&'static str, Word)]) -> Message {
    Message {
        template: Cow::Borrowed(template),
        values: values
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
            .collect(),
    }
}

/// A target as a state: `≤ 1.8` of `ldl`.
pub(crate) fn target_state(comparator: Comparator, value: &Quantity) -> Message {
    state(
        "target",
        &[
            ("comparator", comparator.symbol().into()),
            ("value", value.value_text().into()),
            ("measure", value.measure().code().into()),
        ],
    )
}

/// A medication (name, dose, frequency) as a state.
pub(crate) fn medication_state(drug: Option<&str>, dose: &Dose, frequency: &str) -> Message {
    let mut m = Message::new(if drug.is_some() { "medication" } else { "dose" });
    if let Some(drug) = drug {
        m.put("drug", drug.to_owned());
    }
    put_dose(&mut m, DoseKeys::New, dose, frequency);
    m
}

/// Whether `status` is a known smoking-status code, for the labels.
pub(crate) fn smoking_status(code: &str) -> Option<SmokingStatus> {
    SmokingStatus::ALL.into_iter().find(|s| s.code() == code)
}

/// An intolerance kind by its code.
pub(crate) fn intolerance_kind(code: &str) -> Option<IntoleranceKind> {
    [
        IntoleranceKind::Intolerance,
        IntoleranceKind::ContraIndication,
    ]
    .into_iter()
    .find(|k| k.code() == code)
}
