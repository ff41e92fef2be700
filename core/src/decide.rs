//! The write model: a patient's state as the rules need it, and `decide`, the one place where
//! the business rules live.
//!
//! `decide` is pure: given the state folded from the patient's recorded events and a command,
//! it returns the events to record (and warnings for the writer) or a rejection. It reads no
//! clock and does no IO.

use std::collections::{BTreeMap, BTreeSet};

use crate::clinical::{self, ClinicalState};
use crate::error::Rejection;
use crate::event::{Command, Event, Member, NoteKind};
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
    /// Notifications by causing position: (recipient, acknowledged).
    notifications: BTreeMap<u64, (Line, bool)>,
    /// Global positions of this patient's events, ascending.
    positions: Vec<u64>,
    corrected: BTreeSet<u64>,
    /// Intolerances, problems, panel additions and order contents (see [`crate::clinical`]).
    clinical: ClinicalState,
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

    /// The state of the clinical catalogue: intolerances, problems, panel additions.
    pub fn clinical(&self) -> &ClinicalState {
        &self.clinical
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
        if let Some(to) = notify::recipient(&record.event, author, self.shared_care) {
            self.notifications.insert(recorded.position, (to, false));
        }
        self.revision = record.revision;
        self.positions.push(recorded.position);
        self.clinical.apply(recorded);
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
                if let Some(entry) = self.notifications.get_mut(&ack.notification) {
                    entry.1 = true;
                }
            }
            Event::EnteredInError(c) => {
                self.corrected.insert(c.position);
            }
            Event::MedicationPreferenceRecorded(_)
            | Event::AnnualPanelExtended(_)
            | Event::MeasurementRecorded(_)
            | Event::NoteAdded(_)
            | Event::IntoleranceRecorded(_)
            | Event::ProblemRecorded(_)
            | Event::ProblemResolved(_)
            | Event::SmokingStatusRecorded(_) => {}
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
        return found_team(actor, command);
    }
    authorize(state, actor, command)?;
    let mut warnings = check_rules(state, policy, actor, command, occurred_at)?;
    warnings.extend(clinical::check(&state.clinical, command)?);
    Ok(Decision {
        events: vec![command.clone().into_event()],
        warnings,
    })
}

/// The first event of a patient founds the care team: the founder adds themselves, or starts
/// shared care and is added as its first member.
fn found_team(actor: &Actor, command: &Command) -> Result<Decision, Rejection> {
    if actor.role == Role::Patient {
        return Err(reject(
            "not_in_care_team",
            "a patient's care team is founded by a practitioner; ask your GP or specialist to add you",
        ));
    }
    match command {
        Command::AddCareTeamMember(m) if m.actor == actor.id && m.role == actor.role => {
            check_member(m)?;
            Ok(Decision {
                events: vec![command.clone().into_event()],
                warnings: vec![],
            })
        }
        Command::StartSharedCare(_) => {
            let founder = Member {
                actor: actor.id.clone(),
                name: actor.name.clone(),
                agb: None,
                role: actor.role,
                lead: default_lead(actor.role),
                practitioner: Practitioner::Main,
            };
            let events = vec![
                Event::CareTeamMemberAdded(founder),
                command.clone().into_event(),
            ];
            Ok(Decision {
                events,
                warnings: vec![],
            })
        }
        _ => Err(reject(
            "no_care_team",
            "this patient has no care team yet: first add yourself, in your own role, as a \
             care-team member (add_care_team_member) or start shared care (start_shared_care)",
        )),
    }
}

/// The lead a role has by default: the GP leads CVRM, the specialist the organ disease.
pub fn default_lead(role: Role) -> Lead {
    match role.line() {
        Line::First if role.prescribes() => Lead::Cvrm,
        Line::Second => Lead::OrganDisease,
        _ => Lead::None,
    }
}

fn check_member(m: &Member) -> Result<(), Rejection> {
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
        return Err(reject(
            "not_in_care_team",
            format!(
                "{} is not in this patient's care team; a team member must add you first",
                actor.id
            ),
        ));
    };
    if member.role != actor.role {
        return Err(reject(
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
        | Command::RecordProblem(_)
        | Command::ResolveProblem(_) => role.prescribes(),
        Command::ExtendAnnualPanel(_) => role.line() == Line::Second,
        Command::AddCareTeamMember(_)
        | Command::RemoveCareTeamMember(_)
        | Command::OrderLab(_)
        | Command::RecordLabResult(_)
        | Command::MarkEnteredInError(_)
        | Command::RecordIntolerance(_) => role != Role::Patient,
        Command::RecordMeasurement(_)
        | Command::RecordSmokingStatus(_)
        | Command::SetLifestyleGoal(_)
        | Command::CloseLifestyleGoal(_)
        | Command::AddNote(_)
        | Command::AcknowledgeNotification(_) => true,
    };
    if !allowed {
        return Err(reject(
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
        | Command::RecordSmokingStatus(_)
        | Command::SetLifestyleGoal(_)
        | Command::CloseLifestyleGoal(_)
        | Command::AddNote(_)
        | Command::AcknowledgeNotification(_) => "every care-team member may",
        Command::AddCareTeamMember(_)
        | Command::RemoveCareTeamMember(_)
        | Command::OrderLab(_)
        | Command::RecordLabResult(_)
        | Command::MarkEnteredInError(_)
        | Command::RecordIntolerance(_) => "only practitioners may",
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
        }
        Command::RemoveCareTeamMember(r) if !state.members.contains_key(&r.actor) => {
            return Err(reject(
                "not_in_care_team",
                format!("{} is not in the care team", r.actor),
            ));
        }
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
        Command::AcknowledgeNotification(ack) => {
            check_acknowledgement(state, actor, ack.notification)?
        }
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
    position: u64,
) -> Result<(), Rejection> {
    match state.notifications.get(&position) {
        None => Err(reject(
            "unknown_notification",
            format!("there is no notification for this patient caused by position {position}"),
        )),
        Some((recipient, _)) if *recipient != actor.line() => Err(reject(
            "not_the_recipient",
            format!("the notification of position {position} is addressed to the {recipient}"),
        )),
        Some((_, true)) => Err(reject(
            "already_acknowledged",
            format!("the notification of position {position} was already acknowledged"),
        )),
        Some(_) => Ok(()),
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
