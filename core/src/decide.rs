//! The write model: a patient's state as the rules need it, and `decide`, the one place where
//! the business rules live.
//!
//! `decide` is pure: given the state folded from the patient's recorded events and a command,
//! it returns the events to record (and warnings for the writer) or a rejection. It reads no
//! clock and does no IO.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Rejection;
use crate::event::{Command, Event, Member, NoteKind};
use crate::governance;
use crate::ids::{ActorId, AtcCode, ElementId, Text};
use crate::notify;
use crate::quantity::Measure;
use crate::record::{Actor, RecordedEvent, Timestamp};
use crate::role::{Lead, Line, Practitioner, Role};

/// Settings of the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The same lab test ordered or resulted within this many days is flagged as duplicate
    /// lab work (agreement 7).
    pub duplicate_lab_window_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            duplicate_lab_window_days: 30,
        }
    }
}

/// A warning returned to the writer with an accepted append; nothing was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// A stable code, e.g. `duplicate_lab_work`.
    pub code: &'static str,
    /// A sentence for the clinician.
    pub message: String,
}

/// What `decide` accepted: the events to record and warnings for the writer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Events to record, in order.
    pub events: Vec<Event>,
    /// Warnings for the writer.
    pub warnings: Vec<Warning>,
}

/// A member of the care team as the rules see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TeamMember {
    /// The role they were added in.
    pub role: Role,
    /// What they lead.
    pub lead: Lead,
    /// Main or co-practitioner.
    pub practitioner: Practitioner,
}

/// An active medication as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveMedication {
    /// The line that started it; agreement 4 protects it against the other line.
    pub started_by: Line,
    /// Current dose, as text, to refuse a change to the same dose.
    pub dose: crate::event::Dose,
    /// Current frequency.
    pub frequency: Text,
}

/// The last time a lab test was ordered or resulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LabSeen {
    occurred_at: Timestamp,
    position: u64,
}

/// A patient's state as the rules need it: a fold over the patient's recorded events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatientState {
    revision: u64,
    members: BTreeMap<ActorId, TeamMember>,
    shared_care: bool,
    targets: BTreeSet<Measure>,
    medications: BTreeMap<AtcCode, ActiveMedication>,
    lab_orders: BTreeSet<ElementId>,
    lab_seen: BTreeMap<Measure, LabSeen>,
    goals_open: BTreeSet<ElementId>,
    goals_known: BTreeSet<ElementId>,
    /// Notifications by (causing position, recipient): acknowledged or not.
    notifications: BTreeMap<(u64, Line), bool>,
    /// Global positions of this patient's events, ascending.
    positions: Vec<u64>,
    corrected: BTreeSet<u64>,
}

impl PatientState {
    /// The revision the stream is at: the number of events recorded for the patient.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// True when the patient has no events.
    pub fn is_empty(&self) -> bool {
        self.revision == 0
    }

    /// The active member with this id, if any.
    pub fn member(&self, actor: &ActorId) -> Option<&TeamMember> {
        self.members.get(actor)
    }

    /// Active members of the care team.
    pub fn members(&self) -> impl Iterator<Item = (&ActorId, &TeamMember)> {
        self.members.iter()
    }

    /// True while shared care is active.
    pub fn shared_care(&self) -> bool {
        self.shared_care
    }

    /// Active medications.
    pub fn medications(&self) -> &BTreeMap<AtcCode, ActiveMedication> {
        &self.medications
    }

    /// What the notify rule needs to know of the team before `event` is applied.
    pub fn notify_context(&self, event: &Event) -> notify::Context {
        let removed_member_line = match event {
            Event::CareTeamMemberRemoved(r) => self.members.get(&r.actor).map(|m| m.role.line()),
            _ => None,
        };
        notify::Context {
            shared_care: self.shared_care,
            patient_in_team: self.members.values().any(|m| m.role == Role::Patient),
            removed_member_line,
        }
    }

    /// Folds one recorded event of this patient into the state.
    ///
    /// Events are applied in revision order; a gap is a programmer error.
    pub fn apply(&mut self, recorded: &RecordedEvent) {
        let record = &recorded.record;
        assert_eq!(
            record.revision,
            self.revision + 1,
            "revisions are applied in order without gaps"
        );
        let author = record.actor.line();
        for to in notify::recipients(&record.event, author, self.notify_context(&record.event)) {
            self.notifications.insert((recorded.position, to), false);
        }
        self.revision = record.revision;
        self.positions.push(recorded.position);
        let seen = LabSeen {
            occurred_at: record.occurred_at,
            position: recorded.position,
        };
        match &record.event {
            Event::CareTeamMemberAdded(m) => {
                let member = TeamMember {
                    role: m.role,
                    lead: m.lead,
                    practitioner: m.practitioner,
                };
                self.members.insert(m.actor.clone(), member);
            }
            Event::CareTeamMemberRemoved(r) => {
                self.members.remove(&r.actor);
            }
            Event::LeadHandedOver(h) => {
                for member in self.members.values_mut() {
                    if member.lead == h.lead && member.practitioner == Practitioner::Main {
                        member.practitioner = Practitioner::Co;
                    }
                }
                if let Some(member) = self.members.get_mut(&h.to) {
                    member.lead = h.lead;
                    member.practitioner = Practitioner::Main;
                }
            }
            Event::SharedCareStarted(_) => self.shared_care = true,
            Event::SharedCareEnded(_) => self.shared_care = false,
            Event::TargetSet(t) => {
                self.targets.insert(t.value.measure());
            }
            Event::TargetWithdrawn(w) => {
                self.targets.remove(&w.measure);
            }
            Event::MedicationStarted(m) => {
                let active = ActiveMedication {
                    started_by: author,
                    dose: m.dose,
                    frequency: m.frequency.clone(),
                };
                self.medications.insert(m.atc.clone(), active);
            }
            Event::MedicationDoseChanged(c) => {
                if let Some(active) = self.medications.get_mut(&c.atc) {
                    active.dose = c.dose;
                    active.frequency = c.frequency.clone();
                }
            }
            Event::MedicationStopped(s) => {
                self.medications.remove(&s.atc);
            }
            Event::LabOrdered(order) => {
                self.lab_orders.insert(order.order.clone());
                for test in &order.tests {
                    self.lab_seen.insert(*test, seen);
                }
            }
            Event::LabResultRecorded(result) => {
                self.lab_seen.insert(result.value.measure(), seen);
            }
            Event::LifestyleGoalSet(goal) => {
                self.goals_open.insert(goal.goal.clone());
                self.goals_known.insert(goal.goal.clone());
            }
            Event::LifestyleGoalClosed(closure) => {
                self.goals_open.remove(&closure.goal);
            }
            Event::NotificationAcknowledged(ack) => {
                if let Some(acknowledged) = self
                    .notifications
                    .get_mut(&(ack.notification, ack.recipient))
                {
                    *acknowledged = true;
                }
            }
            Event::EnteredInError(c) => {
                self.corrected.insert(c.position);
            }
            Event::MedicationPreferenceRecorded(_)
            | Event::AnnualPanelExtended(_)
            | Event::MeasurementRecorded(_)
            | Event::NoteAdded(_) => {}
        }
    }
}

fn reject(code: &'static str, message: impl Into<String>) -> Rejection {
    Rejection::new(code, message)
}

/// Decides a command of `actor` against the patient's state.
///
/// `occurred_at` is the clinician's time of the fact, used for the duplicate-lab window.
pub fn decide(
    state: &PatientState,
    policy: &Policy,
    actor: &Actor,
    command: &Command,
    occurred_at: Timestamp,
) -> Result<Decision, Rejection> {
    if state.is_empty() {
        return governance::found(actor, command);
    }
    if actor.role == Role::CareGroupAdmin {
        if !governance::admin_may(command) {
            return Err(Rejection::not_permitted(
                "care_group_admin_corrects_the_team",
                format!(
                    "a care-group administrator corrects who is in the care team and who leads                      (add_care_team_member, remove_care_team_member, hand_over_lead,                      end_shared_care), not {}",
                    command.kind()
                ),
            ));
        }
    } else {
        authorize(state, actor, command)?;
    }
    let warnings = check_rules(state, policy, actor, command, occurred_at)?;
    Ok(Decision {
        events: vec![command.clone().into_event()],
        warnings,
    })
}

/// The lead a role has by default: the GP leads CVRM, the specialist the organ disease.
pub fn default_lead(role: Role) -> Lead {
    match role.line() {
        Line::First if role.prescribes() => Lead::Cvrm,
        Line::Second => Lead::OrganDisease,
        _ => Lead::None,
    }
}

pub(crate) fn check_member(m: &Member) -> Result<(), Rejection> {
    let line = m.role.line();
    let fits = match m.lead {
        Lead::Cvrm => line == Line::First,
        Lead::OrganDisease => line == Line::Second,
        Lead::None => true,
    };
    if !fits {
        return Err(reject(
            "lead_does_not_fit_line",
            format!(
                "a {} works in the {line} and cannot lead {:?}: CVRM is led by the first line, \
                 the organ disease by the second",
                m.role, m.lead
            ),
        ));
    }
    if m.role == Role::Patient && m.practitioner != Practitioner::NotApplicable {
        return Err(reject(
            "patient_is_not_a_practitioner",
            "the patient joins the care team with practitioner \"not_applicable\"",
        ));
    }
    Ok(())
}

/// Membership and role checks: who may issue which command.
fn authorize(state: &PatientState, actor: &Actor, command: &Command) -> Result<(), Rejection> {
    let Some(member) = state.member(&actor.id) else {
        return Err(Rejection::not_permitted(
            "not_in_care_team",
            format!(
                "{} is not in this patient's care team; a team member must add you first",
                actor.id
            ),
        ));
    };
    if member.role != actor.role {
        return Err(Rejection::not_permitted(
            "role_mismatch",
            format!(
                "you act as {} but the care team lists you as {}",
                actor.role, member.role
            ),
        ));
    }
    let role = actor.role;
    let allowed = match command {
        Command::SetTarget(_)
        | Command::WithdrawTarget(_)
        | Command::StartMedication(_)
        | Command::ChangeDose(_)
        | Command::StopMedication(_)
        | Command::RecordMedicationPreference(_)
        | Command::StartSharedCare(_)
        | Command::EndSharedCare(_)
        | Command::HandOverLead(_) => role.prescribes(),
        Command::ExtendAnnualPanel(_) => role.line() == Line::Second,
        Command::AddCareTeamMember(_)
        | Command::RemoveCareTeamMember(_)
        | Command::OrderLab(_)
        | Command::RecordLabResult(_)
        | Command::MarkEnteredInError(_) => role != Role::Patient,
        Command::RecordMeasurement(_)
        | Command::SetLifestyleGoal(_)
        | Command::CloseLifestyleGoal(_)
        | Command::AddNote(_)
        | Command::AcknowledgeNotification(_) => true,
    };
    if !allowed {
        return Err(Rejection::not_permitted(
            "role_not_permitted",
            format!(
                "a {role} may not {}; {}",
                command.kind().replace('_', " "),
                who_may(command)
            ),
        ));
    }
    Ok(())
}

fn who_may(command: &Command) -> &'static str {
    match command {
        Command::ExtendAnnualPanel(_) => "additions to the annual panel come from the specialist (agreement 2)",
        Command::RecordMeasurement(_)
        | Command::SetLifestyleGoal(_)
        | Command::CloseLifestyleGoal(_)
        | Command::AddNote(_)
        | Command::AcknowledgeNotification(_) => "every care-team member may",
        Command::AddCareTeamMember(_)
        | Command::RemoveCareTeamMember(_)
        | Command::OrderLab(_)
        | Command::RecordLabResult(_)
        | Command::MarkEnteredInError(_) => "only practitioners may",
        _ => "only a prescribing practitioner (GP, cardiologist, vascular internist, elderly-care physician) may",
    }
}

/// The rules on the plan's content, once membership and role are settled.
fn check_rules(
    state: &PatientState,
    policy: &Policy,
    actor: &Actor,
    command: &Command,
    occurred_at: Timestamp,
) -> Result<Vec<Warning>, Rejection> {
    match command {
        Command::AddCareTeamMember(m) => {
            if state.members.contains_key(&m.actor) {
                return Err(reject(
                    "already_in_care_team",
                    format!(
                        "{} is already in the care team; remove them first to change the role",
                        m.actor
                    ),
                ));
            }
            check_member(m)?;
            governance::check_addition(state, actor, m)?;
        }
        Command::RemoveCareTeamMember(r) => governance::check_removal(state, actor, r)?,
        Command::HandOverLead(h) => governance::check_handover(state, actor, h)?,
        Command::StartSharedCare(_) if state.shared_care => {
            return Err(reject(
                "shared_care_active",
                "shared care is already active for this patient",
            ));
        }
        Command::EndSharedCare(_) if !state.shared_care => {
            return Err(reject(
                "shared_care_inactive",
                "shared care is not active for this patient",
            ));
        }
        Command::WithdrawTarget(w) if !state.targets.contains(&w.measure) => {
            return Err(reject(
                "target_not_set",
                format!(
                    "there is no {} target to withdraw; the guideline default applies",
                    w.measure
                ),
            ));
        }
        Command::StartMedication(m) if state.medications.contains_key(&m.atc) => {
            return Err(reject(
                "medication_already_active",
                format!(
                    "{} ({}) is already active; change its dose instead",
                    m.name, m.atc
                ),
            ));
        }
        Command::ChangeDose(c) => {
            let active = active_medication(state, &c.atc)?;
            check_agreement_4(active, actor, &c.reason, "change")?;
            if active.dose == c.dose && active.frequency == c.frequency {
                return Err(reject(
                    "dose_unchanged",
                    format!("{} is already at {} {}", c.atc, c.dose, c.frequency),
                ));
            }
        }
        Command::StopMedication(s) => {
            let active = active_medication(state, &s.atc)?;
            check_agreement_4(active, actor, &s.reason, "stop")?;
        }
        Command::OrderLab(order) => {
            non_empty_tests(&order.tests)?;
            if state.lab_orders.contains(&order.order) {
                return Err(reject(
                    "lab_order_exists",
                    format!(
                        "lab order {} exists already; use a new order id",
                        order.order
                    ),
                ));
            }
            return Ok(duplicate_lab_warnings(
                state,
                policy,
                &order.tests,
                occurred_at,
            ));
        }
        Command::ExtendAnnualPanel(ext) => non_empty_tests(&ext.tests)?,
        Command::RecordLabResult(result) => {
            if let Some(order) = &result.order {
                if !state.lab_orders.contains(order) {
                    return Err(reject(
                        "unknown_lab_order",
                        format!("lab order {order} was never placed for this patient"),
                    ));
                }
                return Ok(vec![]);
            }
            let tests = [result.value.measure()];
            return Ok(duplicate_lab_warnings(state, policy, &tests, occurred_at));
        }
        Command::RecordMeasurement(m)
            if actor.role == Role::Patient
                && m.source != crate::event::MeasurementSource::SelfMeasuredAtHome =>
        {
            return Err(reject(
                "patient_measures_at_home",
                "a patient records measurements with source \"self_measured_at_home\"",
            ));
        }
        Command::SetLifestyleGoal(goal) if state.goals_known.contains(&goal.goal) => {
            return Err(reject(
                "goal_exists",
                format!(
                    "lifestyle goal {} exists already; use a new goal id",
                    goal.goal
                ),
            ));
        }
        Command::CloseLifestyleGoal(closure) if !state.goals_open.contains(&closure.goal) => {
            return Err(reject(
                "goal_not_open",
                format!("lifestyle goal {} is not open", closure.goal),
            ));
        }
        Command::AddNote(note) if actor.role == Role::Patient && note.kind != NoteKind::Note => {
            return Err(reject(
                "patient_writes_notes",
                "a patient adds notes, not letters",
            ));
        }
        Command::AcknowledgeNotification(ack) => check_acknowledgement(state, actor, ack)?,
        Command::MarkEnteredInError(c) => check_correction(state, c.position)?,
        _ => {}
    }
    Ok(vec![])
}

fn active_medication<'s>(
    state: &'s PatientState,
    atc: &AtcCode,
) -> Result<&'s ActiveMedication, Rejection> {
    state.medications.get(atc).ok_or_else(|| {
        reject(
            "medication_not_active",
            format!("{atc} is not an active medication of this patient; start it first"),
        )
    })
}

/// Agreement 4: medication of one line is kept by the other unless side effects or target not reached.
fn check_agreement_4(
    active: &ActiveMedication,
    actor: &Actor,
    reason: &crate::event::ChangeReason,
    verb: &str,
) -> Result<(), Rejection> {
    if active.started_by != actor.line() && !reason.permits_change_across_lines() {
        return Err(reject(
            "agreement_4",
            format!(
                "this medication was prescribed in the {}; working agreement 4 keeps it unless it \
                 must {verb} because of side effects or target not reached (reason given: {reason})",
                active.started_by
            ),
        ));
    }
    Ok(())
}

fn non_empty_tests(tests: &[Measure]) -> Result<(), Rejection> {
    if tests.is_empty() {
        return Err(reject("no_tests", "name at least one lab test"));
    }
    let unique: BTreeSet<_> = tests.iter().collect();
    if unique.len() != tests.len() {
        return Err(reject(
            "repeated_test",
            "each lab test may be named once per request",
        ));
    }
    Ok(())
}

/// Agreement 7: the same test within the window, in either line, is flagged (not refused).
fn duplicate_lab_warnings(
    state: &PatientState,
    policy: &Policy,
    tests: &[Measure],
    occurred_at: Timestamp,
) -> Vec<Warning> {
    let window = i64::from(policy.duplicate_lab_window_days);
    tests
        .iter()
        .filter_map(|test| {
            let seen = state.lab_seen.get(test)?;
            let days = seen.occurred_at.days_until(occurred_at);
            (days.abs() < window).then(|| Warning {
                code: "duplicate_lab_work",
                message: format!(
                    "{test} was already ordered or resulted {} day(s) earlier (position {}); \
                     working agreement 7 asks to avoid duplicate blood tests within {window} days",
                    days.max(0),
                    seen.position
                ),
            })
        })
        .collect()
}

fn check_acknowledgement(
    state: &PatientState,
    actor: &Actor,
    ack: &crate::event::Acknowledgement,
) -> Result<(), Rejection> {
    let position = ack.notification;
    let own = actor.line();
    if ack.recipient != own {
        return Err(Rejection::not_permitted(
            "not_the_recipient",
            format!(
                "you act in the {own} and acknowledge only notifications to the {own}, not to the {}",
                ack.recipient
            ),
        ));
    }
    let to_anyone = state
        .notifications
        .range((position, Line::First)..=(position, Line::Patient))
        .map(|((_, line), _)| *line)
        .collect::<Vec<_>>();
    match state.notifications.get(&(position, own)) {
        Some(true) => Err(reject(
            "already_acknowledged",
            format!(
                "the notification of position {position} to the {own} was already acknowledged"
            ),
        )),
        Some(false) => Ok(()),
        None if to_anyone.is_empty() => Err(reject(
            "unknown_notification",
            format!("there is no notification for this patient caused by position {position}"),
        )),
        None => Err(Rejection::not_permitted(
            "not_the_recipient",
            format!(
                "the notification of position {position} is addressed to the {}, not to the {own}",
                to_anyone
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        )),
    }
}

fn check_correction(state: &PatientState, position: u64) -> Result<(), Rejection> {
    if state.positions.binary_search(&position).is_err() {
        return Err(reject(
            "not_this_patients_event",
            format!("position {position} is not an event of this patient; corrections stay within one patient"),
        ));
    }
    if state.corrected.contains(&position) {
        return Err(reject(
            "already_corrected",
            format!("position {position} is already marked as entered in error"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::SharedCare;

    fn actor(id: &str, role: Role) -> Actor {
        Actor {
            id: ActorId::parse(id).unwrap(),
            role,
            name: Text::new(id).unwrap(),
            organisation: None,
        }
    }

    fn add_self(a: &Actor, role: Role) -> Command {
        Command::AddCareTeamMember(Member {
            actor: a.id.clone(),
            name: a.name.clone(),
            agb: None,
            role,
            lead: Lead::None,
            practitioner: Practitioner::Main,
        })
    }

    #[test]
    fn founder_must_join_in_the_role_they_act_in() {
        let gp = actor("gp-1", Role::Gp);
        let state = PatientState::default();
        let now = Timestamp::from_micros(0);
        let err = decide(
            &state,
            &Policy::default(),
            &gp,
            &add_self(&gp, Role::Cardiologist),
            now,
        )
        .unwrap_err();
        assert_eq!(err.code, "no_care_team");
        let ok = decide(
            &state,
            &Policy::default(),
            &gp,
            &add_self(&gp, Role::Gp),
            now,
        )
        .unwrap();
        assert_eq!(ok.events.len(), 1);
    }

    #[test]
    fn starting_shared_care_founds_the_team_with_the_founder_as_main_practitioner() {
        let card = actor("card-1", Role::Cardiologist);
        let command = Command::StartSharedCare(SharedCare {
            arrangement: Text::new("x").unwrap(),
        });
        let decision = decide(
            &PatientState::default(),
            &Policy::default(),
            &card,
            &command,
            Timestamp::from_micros(0),
        )
        .unwrap();
        match &decision.events[..] {
            [Event::CareTeamMemberAdded(m), Event::SharedCareStarted(_)] => {
                assert_eq!(m.actor, card.id);
                assert_eq!(m.lead, Lead::OrganDisease);
                assert_eq!(m.practitioner, Practitioner::Main);
            }
            other => panic!("unexpected events {other:?}"),
        }
    }
}
