//! The write model: a patient's state as the rules need it, and `decide`, the one place where
//! the business rules live.
//!
//! `decide` is pure: given the state folded from the patient's recorded events and a command,
//! it returns the events to record (and warnings for the writer) or a rejection. It reads no
//! clock and does no IO.

use std::collections::{BTreeMap, BTreeSet};

use crate::care_team::TeamHistory;
use crate::clinical::{self, ClinicalState};
use crate::duplicate_lab::{self, LabWork};
use crate::error::{Rejection, RejectionCode};
use crate::event::{Command, Event, Member, NoteKind};
use crate::governance;
use crate::ids::{ActorId, AtcCode, ElementId, Text};
use crate::notify;
use crate::quantity::Measure;
use crate::record::{Actor, RecordedEvent, Timestamp};
use crate::role::{Lead, Line, Practitioner, Role};
use crate::signing_keys::KeyRegistry;

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
            duplicate_lab_window_days: crate::duplicate_lab::DEFAULT_WINDOW_DAYS,
        }
    }
}

crate::error::wire_codes! {
    /// What a warning is about: the stable code a client acts on. Its wire string is its name
    /// in snake_case (`duplicate_lab_work`).
    pub enum WarningCode {
        /// Agreement 7: the same lab test within the window, in either line.
        DuplicateLabWork = "duplicate_lab_work",
        /// A medication start of a substance with a recorded intolerance.
        KnownIntolerance = "known_intolerance",
        /// A medication start of a substance with a recorded contra-indication.
        KnownContraIndication = "known_contra_indication",
        /// A medication start in the class (ATC level 4) of a recorded intolerance.
        IntoleranceInSameClass = "intolerance_in_same_class",
        /// Agreements 2 and 7: an annual lab leaving out the specialist's additions.
        AnnualPanelIncomplete = "annual_panel_incomplete",
    }
}

/// A warning returned to the writer with an accepted append; nothing was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// What it is about, e.g. [`WarningCode::DuplicateLabWork`].
    pub code: WarningCode,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// The position of the start this episode of the medication began with.
    pub start_position: u64,
    /// Current dose, to refuse a change to the same dose.
    pub dose: crate::event::Dose,
    /// Current frequency.
    pub frequency: Text,
}

/// What the rules keep of each of the patient's events: who wrote it, so that a correction can
/// be checked against its author and line, and whether it is an acknowledgement or a correction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    position: u64,
    /// Index into `PatientState::authors`.
    author: u32,
    line: Line,
    kind: EntryKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryKind {
    Acknowledgement,
    Correction,
    EmergencyAccess,
    Other,
}

/// Emergency access held by a practitioner outside the care team, opened by breaking the glass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EmergencyGrant {
    /// The role they broke the glass in.
    pub role: Role,
    /// When the access ends (the last break of the glass counts).
    pub until: Timestamp,
}

/// One step of a medication's history, by ATC code.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MedicationStep {
    position: u64,
    line: Line,
    step: Step,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Start(crate::event::Dose, Text),
    Change(crate::event::Dose, Text),
    Stop,
}

/// A notification as the rules see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Told {
    /// The acknowledgement that stands, if any.
    acknowledged: Option<u64>,
    /// The causing event was marked entered in error before anyone acknowledged it.
    withdrawn: bool,
}

/// A patient's state as the rules need it: a fold over the patient's recorded events.
///
/// An event marked entered in error drops out of every fact the rules derive (membership,
/// shared care, targets, active medication, lab orders and the duplicate-lab window, open goals,
/// acknowledgements). Since a correction can arrive long after the fact it retracts, each fact is
/// kept as its history (events by position) and the current fact is folded again from the
/// entries that are not corrected, whenever that history or the corrections change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PatientState {
    revision: u64,
    /// The team's additions, removals and handovers, by position ([`crate::care_team`]).
    team: TeamHistory,
    /// The team as [`crate::care_team::fold`] leaves it.
    members: BTreeMap<ActorId, TeamMember>,
    /// Start (`true`) and end (`false`) of shared care, by position.
    shared_care_history: Vec<(u64, bool)>,
    shared_care: bool,
    /// Set (`true`) and withdrawn (`false`) per measure, by position.
    target_history: BTreeMap<Measure, Vec<(u64, bool)>>,
    targets: BTreeSet<Measure>,
    medication_history: BTreeMap<AtcCode, Vec<MedicationStep>>,
    medications: BTreeMap<AtcCode, ActiveMedication>,
    /// Every order id ever used, with the order's position: an id stays used after a correction.
    lab_orders: BTreeMap<ElementId, u64>,
    /// Every lab test ordered or resulted, by test.
    lab_seen: BTreeMap<Measure, Vec<LabWork>>,
    /// Set (`true`) and closed (`false`) per goal, by position.
    goal_history: BTreeMap<ElementId, Vec<(u64, bool)>>,
    /// Notifications by (causing position, recipient).
    notifications: BTreeMap<(u64, Line), Told>,
    /// Acknowledgements by position: the notification (causing position, recipient) each
    /// acknowledges.
    acknowledgements: BTreeMap<u64, (u64, Line)>,
    /// This patient's events, ascending by position.
    entries: Vec<Entry>,
    authors: Vec<ActorId>,
    corrected: BTreeSet<u64>,
    /// Intolerances, problems, panel additions and order contents (see [`crate::clinical`]).
    clinical: ClinicalState,
    /// The signing keys, in the key stream's state only ([`crate::signing_keys`]).
    keys: KeyRegistry,
    /// Emergency access by actor, from breaking the glass (seed 002).
    emergency: BTreeMap<ActorId, EmergencyGrant>,
}

/// The last entry of a history by position that is not corrected.
fn standing<'h, T>(history: &'h [(u64, T)], corrected: &BTreeSet<u64>) -> Option<&'h T> {
    history
        .iter()
        .rev()
        .find(|(position, _)| !corrected.contains(position))
        .map(|(_, value)| value)
}

/// Folds a medication's history, leaving out corrected steps: the episode active at the end.
///
/// A dose change or stop belongs to the episode active when it was recorded; when that
/// episode's start is corrected, there is no episode for it to act on and it drops out too.
fn fold_medication(
    steps: &[MedicationStep],
    corrected: &BTreeSet<u64>,
) -> Option<ActiveMedication> {
    let mut active: Option<ActiveMedication> = None;
    for s in steps.iter().filter(|s| !corrected.contains(&s.position)) {
        match &s.step {
            Step::Start(dose, frequency) => {
                active = Some(ActiveMedication {
                    started_by: s.line,
                    start_position: s.position,
                    dose: *dose,
                    frequency: frequency.clone(),
                })
            }
            Step::Change(dose, frequency) => {
                if let Some(a) = active.as_mut() {
                    a.dose = *dose;
                    a.frequency = frequency.clone();
                }
            }
            Step::Stop => active = None,
        }
    }
    active
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

    /// What the notify rule needs to know of the team before `author`'s `event` is applied.
    pub fn notify_context(&self, event: &Event, author: &ActorId) -> notify::Context {
        let team = self.members.iter().map(|(id, m)| (id, m.role));
        let emergency = self.emergency.contains_key(author);
        notify::Context::before(event, self.shared_care, team, author, emergency)
    }

    /// The emergency access `actor` holds at `now`, if they broke the glass and it has not
    /// ended.
    pub fn emergency_access(&self, actor: &ActorId, now: Timestamp) -> Option<&EmergencyGrant> {
        self.emergency.get(actor).filter(|grant| grant.until > now)
    }

    /// True when the event at `position` was marked entered in error.
    pub fn is_corrected(&self, position: u64) -> bool {
        self.corrected.contains(&position)
    }

    fn entry(&self, position: u64) -> Option<&Entry> {
        self.entries
            .binary_search_by_key(&position, |e| e.position)
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    fn author_index(&mut self, actor: &ActorId) -> u32 {
        match self.authors.iter().position(|a| a == actor) {
            Some(i) => i as u32,
            None => {
                self.authors.push(actor.clone());
                (self.authors.len() - 1) as u32
            }
        }
    }

    /// The dose changes and stop that belong to the episode started at `start`: a correction of
    /// that start takes them out of every derived fact with it.
    pub fn voided_by(&self, start: u64) -> Vec<u64> {
        let Some(steps) = self
            .medication_history
            .values()
            .find(|steps| steps.iter().any(|s| s.position == start))
        else {
            return Vec::new();
        };
        if !matches!(
            steps.iter().find(|s| s.position == start).map(|s| &s.step),
            Some(Step::Start(..))
        ) {
            return Vec::new();
        }
        steps
            .iter()
            .filter(|s| s.position > start && !self.corrected.contains(&s.position))
            .take_while(|s| !matches!(s.step, Step::Start(..)))
            .map(|s| s.position)
            .collect()
    }

    /// Who a correction of `position` by the `corrector`'s line must notify: whoever was told
    /// about the corrected entry or the entries it voids, and whoever wrote the entries it voids
    /// (see [`notify::correction_recipients`]).
    fn correction_recipients(&self, corrector: Line, position: u64) -> Vec<Line> {
        let voided = self.voided_by(position);
        let told: Vec<Line> = std::iter::once(position)
            .chain(voided.iter().copied())
            .flat_map(|p| self.recipients_of(p))
            .collect();
        let wrote = voided.iter().filter_map(|p| self.entry(*p).map(|e| e.line));
        notify::correction_recipients(corrector, told.into_iter().chain(wrote))
    }

    /// The recipients told of the event at `position`.
    fn recipients_of(&self, position: u64) -> Vec<Line> {
        self.notifications
            .range((position, Line::First)..=(position, Line::CareGroup))
            .map(|((_, line), _)| *line)
            .collect()
    }

    fn refresh_team(&mut self) {
        let corrected = &self.corrected;
        self.members = self
            .team
            .fold(|p| corrected.contains(&p))
            .into_iter()
            .map(|m| (m.actor.clone(), m.member))
            .collect();
    }

    fn refresh_target(&mut self, measure: Measure) {
        let set = self
            .target_history
            .get(&measure)
            .and_then(|h| standing(h, &self.corrected))
            .copied()
            .unwrap_or(false);
        if set {
            self.targets.insert(measure);
        } else {
            self.targets.remove(&measure);
        }
    }

    fn refresh_medication(&mut self, atc: &AtcCode) {
        let active = self
            .medication_history
            .get(atc)
            .and_then(|steps| fold_medication(steps, &self.corrected));
        match active {
            Some(a) => self.medications.insert(atc.clone(), a),
            None => self.medications.remove(atc),
        };
    }

    /// Folds every derived fact again from its history; after a correction.
    fn refresh_all(&mut self) {
        self.refresh_team();
        self.shared_care = standing(&self.shared_care_history, &self.corrected)
            .copied()
            .unwrap_or(false);
        let measures: Vec<Measure> = self.target_history.keys().copied().collect();
        for measure in measures {
            self.refresh_target(measure);
        }
        let atcs: Vec<AtcCode> = self.medication_history.keys().cloned().collect();
        for atc in &atcs {
            self.refresh_medication(atc);
        }
    }

    /// True when the lifestyle goal is open: its last standing event sets it.
    fn goal_open(&self, goal: &ElementId) -> bool {
        self.goal_history
            .get(goal)
            .and_then(|h| standing(h, &self.corrected))
            .copied()
            .unwrap_or(false)
    }

    /// The signing keys registered so far: empty but in the key stream's state.
    pub fn keys(&self) -> &KeyRegistry {
        &self.keys
    }

    /// The clinical part of the state: intolerances, problems, panel additions.
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
        let position = recorded.position;
        let recipients = match &record.event {
            Event::EnteredInError(c) => self.correction_recipients(author, c.position),
            event => {
                notify::recipients(event, author, self.notify_context(event, &record.actor.id))
            }
        };
        for recipient in recipients {
            let told = Told {
                acknowledged: None,
                withdrawn: false,
            };
            self.notifications.insert((position, recipient), told);
        }
        self.revision = record.revision;
        let kind = match &record.event {
            Event::NotificationAcknowledged(_) => EntryKind::Acknowledgement,
            Event::EnteredInError(_) => EntryKind::Correction,
            Event::GlassBroken(_) => EntryKind::EmergencyAccess,
            _ => EntryKind::Other,
        };
        let author_index = self.author_index(&record.actor.id);
        self.entries.push(Entry {
            position,
            author: author_index,
            line: author,
            kind,
        });
        self.clinical.apply(recorded);
        self.keys.apply(position, record);
        let seen = |test| LabWork {
            test,
            occurred_at: record.occurred_at,
            position,
        };
        let medication_step = |step| MedicationStep {
            position,
            line: author,
            step,
        };
        match &record.event {
            Event::CareTeamMemberAdded(m) => {
                let member = TeamMember {
                    role: m.role,
                    lead: m.lead,
                    practitioner: m.practitioner,
                };
                self.team.added(position, m.actor.clone(), member);
                self.refresh_team();
            }
            Event::CareTeamMemberRemoved(r) => {
                self.team.removed(position, r.actor.clone());
                self.refresh_team();
            }
            Event::SharedCareStarted(_) | Event::SharedCareEnded(_) => {
                let started = matches!(record.event, Event::SharedCareStarted(_));
                self.shared_care_history.push((position, started));
                self.shared_care = started;
            }
            Event::LeadHandedOver(h) => {
                self.team.lead_handed_over(position, h.lead, h.to.clone());
                self.refresh_team();
            }
            Event::TargetSet(t) => {
                let measure = t.value.measure();
                let history = self.target_history.entry(measure).or_default();
                history.push((position, true));
                self.refresh_target(measure);
            }
            Event::TargetWithdrawn(w) => {
                let history = self.target_history.entry(w.measure).or_default();
                history.push((position, false));
                self.refresh_target(w.measure);
            }
            Event::MedicationStarted(m) => {
                let step = medication_step(Step::Start(m.dose, m.frequency.clone()));
                self.medication_history
                    .entry(m.atc.clone())
                    .or_default()
                    .push(step);
                self.refresh_medication(&m.atc);
            }
            Event::MedicationDoseChanged(c) => {
                let step = medication_step(Step::Change(c.dose, c.frequency.clone()));
                self.medication_history
                    .entry(c.atc.clone())
                    .or_default()
                    .push(step);
                self.refresh_medication(&c.atc);
            }
            Event::MedicationStopped(s) => {
                let step = medication_step(Step::Stop);
                self.medication_history
                    .entry(s.atc.clone())
                    .or_default()
                    .push(step);
                self.refresh_medication(&s.atc);
            }
            Event::LabOrdered(order) => {
                self.lab_orders.insert(order.order.clone(), position);
                for test in &order.tests {
                    self.lab_seen.entry(*test).or_default().push(seen(*test));
                }
            }
            Event::LabResultRecorded(result) => {
                let test = result.value.measure();
                self.lab_seen.entry(test).or_default().push(seen(test));
            }
            Event::LifestyleGoalSet(goal) => {
                let history = self.goal_history.entry(goal.goal.clone()).or_default();
                history.push((position, true));
            }
            Event::LifestyleGoalClosed(closure) => {
                let history = self.goal_history.entry(closure.goal.clone()).or_default();
                history.push((position, false));
            }
            Event::NotificationAcknowledged(ack) => {
                if let Some(told) = self
                    .notifications
                    .get_mut(&(ack.notification, ack.recipient))
                {
                    told.acknowledged = Some(position);
                }
                self.acknowledgements
                    .insert(position, (ack.notification, ack.recipient));
            }
            Event::EnteredInError(c) => self.retract(c.position),
            Event::GlassBroken(access) => {
                let until = record.recorded_at.micros() + i64::from(access.hours) * 3_600_000_000;
                let grant = EmergencyGrant {
                    role: record.actor.role,
                    until: Timestamp::from_micros(until),
                };
                self.emergency.insert(record.actor.id.clone(), grant);
            }
            Event::MedicationPreferenceRecorded(_)
            | Event::AnnualPanelExtended(_)
            | Event::MeasurementRecorded(_)
            | Event::NoteAdded(_)
            | Event::IntoleranceRecorded(_)
            | Event::ProblemRecorded(_)
            | Event::ProblemResolved(_)
            | Event::SmokingStatusRecorded(_)
            | Event::SigningKeyRegistered(_)
            | Event::SigningKeyRevoked(_) => {}
        }
    }

    /// Takes the event at `position` out of every derived fact.
    fn retract(&mut self, position: u64) {
        self.corrected.insert(position);
        if let Some(notification) = self.acknowledgements.get(&position).copied() {
            if let Some(told) = self.notifications.get_mut(&notification) {
                if told.acknowledged == Some(position) {
                    told.acknowledged = None;
                }
            }
        }
        for recipient in self.recipients_of(position) {
            if let Some(told) = self.notifications.get_mut(&(position, recipient)) {
                if told.acknowledged.is_none() {
                    told.withdrawn = true;
                }
            }
        }
        self.refresh_all();
    }
}

fn reject(code: RejectionCode, message: impl Into<String>) -> Rejection {
    Rejection::new(code, message)
}

/// Decides a command of `actor` against the patient's state.
///
/// `occurred_at` is the clinician's time of the fact, used for the duplicate-lab window; `now`
/// is the time the ledger records it at, which emergency access is judged by.
pub fn decide(
    state: &PatientState,
    policy: &Policy,
    actor: &Actor,
    command: &Command,
    occurred_at: Timestamp,
    now: Timestamp,
) -> Result<Decision, Rejection> {
    if command.is_key_command() {
        crate::signing_keys::decide(&state.keys, actor, command)?;
        return Ok(Decision {
            events: vec![command.clone().into_event()],
            warnings: vec![],
        });
    }
    if state.is_empty() {
        return governance::found(actor, command);
    }
    permit(state, actor, command, now)?;
    let mut warnings = check_rules(state, policy, actor, command, occurred_at)?;
    warnings.extend(clinical::check(&state.clinical, command)?);
    Ok(Decision {
        events: vec![command.clone().into_event()],
        warnings,
    })
}

/// Whether `actor` may give `command` on this record at all: the permission part of [`decide`],
/// which the command handler asks before anything that reveals the record's state (its
/// revision against `If-Match`, an earlier request under the same idempotency key), so that
/// an outsider gets the same refusal whether or not the patient has a record.
pub fn permit(
    state: &PatientState,
    actor: &Actor,
    command: &Command,
    now: Timestamp,
) -> Result<(), Rejection> {
    if command.is_key_command() {
        // Decided in the key stream, which is no patient's record.
        return Ok(());
    }
    if state.is_empty() {
        return governance::may_found(actor, command);
    }
    if let Command::BreakGlass(access) = command {
        return may_break_glass(state, actor, access);
    }
    if actor.role == Role::CareGroupAdmin {
        if !governance::admin_may(command) {
            return Err(Rejection::not_permitted(
                RejectionCode::CareGroupAdminCorrectsTheTeam,
                format!(
                    "a care-group administrator corrects who is in the care team and who leads \
                     (add_care_team_member, remove_care_team_member, hand_over_lead, \
                     end_shared_care), not {}",
                    command.kind()
                ),
            ));
        }
        return Ok(());
    }
    authorize(state, actor, command, now)
}

/// Breaking the glass: a practitioner outside the care team, for 1 to 24 hours. The reason is
/// required by the command handler, as for every entry whose reason is its justification.
fn may_break_glass(
    state: &PatientState,
    actor: &Actor,
    access: &crate::event::EmergencyAccess,
) -> Result<(), Rejection> {
    if !actor.role.treats() {
        return Err(Rejection::not_permitted(
            RejectionCode::EmergencyAccessRefused,
            format!(
                "a {} does not break the glass; acute care is given by practitioners",
                actor.role
            ),
        ));
    }
    if state.member(&actor.id).is_some() {
        return Err(reject(
            RejectionCode::AlreadyInCareTeam,
            "you are in this patient's care team and read and write the record already; the \
             glass is for practitioners outside it",
        ));
    }
    if access.hours == 0 || access.hours > crate::event::EmergencyAccess::MAX_HOURS {
        return Err(reject(
            RejectionCode::EmergencyAccessRefused,
            format!(
                "emergency access lasts 1 to {} hours, not {}; break the glass again when it ends",
                crate::event::EmergencyAccess::MAX_HOURS,
                access.hours
            ),
        ));
    }
    Ok(())
}

/// What a practitioner may record under a broken glass: acute interventions (seed 002). The
/// care team's own governance (team, targets, shared care, corrections) stays with the team.
fn is_acute_intervention(command: &Command) -> bool {
    matches!(
        command,
        Command::StartMedication(_)
            | Command::ChangeDose(_)
            | Command::StopMedication(_)
            | Command::RecordMeasurement(_)
            | Command::RecordIntolerance(_)
            | Command::AddNote(_)
    )
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
            RejectionCode::LeadDoesNotFitLine,
            format!(
                "a {} works in the {line} and cannot lead {:?}: CVRM is led by the first line, \
                 the organ disease by the second",
                m.role, m.lead
            ),
        ));
    }
    if m.role == Role::Patient && m.practitioner != Practitioner::NotApplicable {
        return Err(reject(
            RejectionCode::PatientIsNotAPractitioner,
            "the patient joins the care team with practitioner \"not_applicable\"",
        ));
    }
    Ok(())
}

/// Membership and role checks: who may issue which command.
fn authorize(
    state: &PatientState,
    actor: &Actor,
    command: &Command,
    now: Timestamp,
) -> Result<(), Rejection> {
    let Some(member) = state.member(&actor.id) else {
        if let Some(grant) = state.emergency_access(&actor.id, now) {
            if grant.role == actor.role && is_acute_intervention(command) {
                return Ok(());
            }
            return Err(Rejection::not_permitted(
                RejectionCode::EmergencyAccessLimited,
                format!(
                    "under a broken glass you record acute interventions (start_medication, \
                     change_dose, stop_medication, record_measurement, record_intolerance, \
                     add_note), not {}; the care team does the rest",
                    command.kind()
                ),
            ));
        }
        if governance::is_founding(actor, command) && !actor.role.founds_care_teams() {
            // As on a patient without a record: the refusal names the role, not the record.
            return Err(governance::founder_not_permitted(actor));
        }
        return Err(Rejection::not_permitted(
            RejectionCode::NotInCareTeam,
            format!(
                "{} is not in this patient's care team; a team member must add you first",
                actor.id
            ),
        ));
    };
    if member.role != actor.role {
        return Err(Rejection::not_permitted(
            RejectionCode::RoleMismatch,
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
        | Command::HandOverLead(_)
        | Command::RecordProblem(_)
        | Command::ResolveProblem(_) => role.prescribes(),
        Command::ExtendAnnualPanel(_) => role.line() == Line::Second,
        Command::AddCareTeamMember(_)
        | Command::RemoveCareTeamMember(_)
        | Command::OrderLab(_)
        | Command::RecordLabResult(_)
        | Command::RecordIntolerance(_) => role != Role::Patient,
        // Who may correct which entry is a rule on the entry's author (`check_correction`).
        Command::MarkEnteredInError(_)
        | Command::RecordMeasurement(_)
        | Command::RecordSmokingStatus(_)
        | Command::SetLifestyleGoal(_)
        | Command::CloseLifestyleGoal(_)
        | Command::AddNote(_)
        | Command::AcknowledgeNotification(_) => true,
        // Decided apart, in the key stream (`signing_keys::decide`).
        Command::RegisterSigningKey(_) | Command::RevokeSigningKey(_) => false,
        // Decided apart, by `may_break_glass`.
        Command::BreakGlass(_) => false,
    };
    if !allowed {
        return Err(Rejection::not_permitted(
            RejectionCode::RoleNotPermitted,
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
        | Command::RecordIntolerance(_) => "only practitioners may",
        Command::MarkEnteredInError(_) => "the author or their own line may",
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
                    RejectionCode::AlreadyInCareTeam,
                    format!(
                        "{} is already in the care team; remove them first to change the role",
                        m.actor
                    ),
                ));
            }
            check_member(m)?;
            governance::check_addition(state, m)?;
        }
        Command::RemoveCareTeamMember(r) => governance::check_removal(state, actor, r)?,
        Command::HandOverLead(h) => governance::check_handover(state, actor, h)?,
        Command::StartSharedCare(_) if state.shared_care => {
            return Err(reject(
                RejectionCode::SharedCareActive,
                "shared care is already active for this patient",
            ));
        }
        Command::EndSharedCare(_) if !state.shared_care => {
            return Err(reject(
                RejectionCode::SharedCareInactive,
                "shared care is not active for this patient",
            ));
        }
        Command::WithdrawTarget(w) if !state.targets.contains(&w.measure) => {
            return Err(reject(
                RejectionCode::TargetNotSet,
                format!(
                    "there is no {} target to withdraw; the guideline default applies",
                    w.measure
                ),
            ));
        }
        Command::StartMedication(m) if state.medications.contains_key(&m.atc) => {
            return Err(reject(
                RejectionCode::MedicationAlreadyActive,
                format!(
                    "{} ({}) is already active; change its dose instead",
                    m.name, m.atc
                ),
            ));
        }
        Command::ChangeDose(c) => {
            let active = active_medication(state, &c.atc)?;
            // Agreement 4 yields to acute need: both lines are told at once instead.
            if state.member(&actor.id).is_some() {
                check_agreement_4(active, actor, &c.reason, "change")?;
            }
            if active.dose == c.dose && active.frequency == c.frequency {
                return Err(reject(
                    RejectionCode::DoseUnchanged,
                    format!("{} is already at {} {}", c.atc, c.dose, c.frequency),
                ));
            }
        }
        Command::StopMedication(s) => {
            let active = active_medication(state, &s.atc)?;
            if state.member(&actor.id).is_some() {
                check_agreement_4(active, actor, &s.reason, "stop")?;
            }
        }
        Command::OrderLab(order) => {
            non_empty_tests(&order.tests)?;
            if state.lab_orders.contains_key(&order.order) {
                return Err(reject(
                    RejectionCode::LabOrderExists,
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
                if !state.lab_orders.contains_key(order) {
                    return Err(reject(
                        RejectionCode::UnknownLabOrder,
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
                RejectionCode::PatientMeasuresAtHome,
                "a patient records measurements with source \"self_measured_at_home\"",
            ));
        }
        Command::SetLifestyleGoal(goal) if state.goal_history.contains_key(&goal.goal) => {
            return Err(reject(
                RejectionCode::GoalExists,
                format!(
                    "lifestyle goal {} exists already; use a new goal id",
                    goal.goal
                ),
            ));
        }
        Command::CloseLifestyleGoal(closure) if !state.goal_open(&closure.goal) => {
            return Err(reject(
                RejectionCode::GoalNotOpen,
                format!("lifestyle goal {} is not open", closure.goal),
            ));
        }
        Command::AddNote(note) if actor.role == Role::Patient && note.kind != NoteKind::Note => {
            return Err(reject(
                RejectionCode::PatientWritesNotes,
                "a patient adds notes, not letters",
            ));
        }
        Command::AcknowledgeNotification(ack) => check_acknowledgement(state, actor, ack)?,
        Command::MarkEnteredInError(c) => check_correction(state, actor, c.position)?,
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
            RejectionCode::MedicationNotActive,
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
            RejectionCode::Agreement4,
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
        return Err(reject(RejectionCode::NoTests, "name at least one lab test"));
    }
    let unique: BTreeSet<_> = tests.iter().collect();
    if unique.len() != tests.len() {
        return Err(reject(
            RejectionCode::RepeatedTest,
            "each lab test may be named once per request",
        ));
    }
    Ok(())
}

/// Agreement 7: the same test within the window, in either line, is flagged (not refused), by
/// the rule of [`crate::duplicate_lab`]. Orders and results marked entered in error never count.
fn duplicate_lab_warnings(
    state: &PatientState,
    policy: &Policy,
    tests: &[Measure],
    occurred_at: Timestamp,
) -> Vec<Warning> {
    let window = policy.duplicate_lab_window_days;
    tests
        .iter()
        .filter_map(|test| {
            let earlier = (state.lab_seen.get(test)?.iter())
                .filter(|s| !state.corrected.contains(&s.position))
                .copied();
            let seen = duplicate_lab::duplicated(window, *test, occurred_at, earlier)?;
            let days = seen.occurred_at.days_until(occurred_at);
            let when = if days >= 0 {
                format!("{days} day(s) earlier")
            } else {
                format!("{} day(s) later", -days)
            };
            Some(Warning {
                code: WarningCode::DuplicateLabWork,
                message: format!(
                    "{test} was already ordered or resulted {when} (position {}); working \
                     agreement 7 asks to avoid duplicate blood tests within {window} days",
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
            RejectionCode::NotTheRecipient,
            format!(
                "you act in the {own} and acknowledge only notifications to the {own}, not to the {}",
                ack.recipient
            ),
        ));
    }
    let to_anyone = state
        .notifications
        .range((position, Line::First)..=(position, Line::CareGroup))
        .map(|((_, line), _)| *line)
        .collect::<Vec<_>>();
    match state.notifications.get(&(position, own)) {
        Some(told) if told.acknowledged.is_some() => Err(reject(
            RejectionCode::AlreadyAcknowledged,
            format!(
                "the notification of position {position} to the {own} was already acknowledged"
            ),
        )),
        Some(told) if told.withdrawn => Err(reject(
            RejectionCode::NotificationWithdrawn,
            format!(
                "position {position} was marked entered in error, which withdrew its \
                 notification; acknowledge the notification of the correction instead"
            ),
        )),
        Some(_) => Ok(()),
        None if to_anyone.is_empty() => Err(reject(
            RejectionCode::UnknownNotification,
            format!("there is no notification for this patient caused by position {position}"),
        )),
        None => Err(Rejection::not_permitted(
            RejectionCode::NotTheRecipient,
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

/// Who may mark which entry entered in error (agreements 4 and 6), and what a correction may not
/// leave behind.
///
/// - Only the author, or a member of the author's line, corrects an entry: the other line changes
///   a prescription through the medication commands that agreement 4 governs.
/// - An acknowledgement is corrected only by the one who gave it.
/// - A correction is final: it is not itself corrected (the fact is recorded again instead).
/// - A stop that a later start of the same medication follows stays: correct the later start first.
/// - A care-team addition is not corrected when no practitioner would be left in the team.
fn check_correction(state: &PatientState, actor: &Actor, position: u64) -> Result<(), Rejection> {
    let Some(entry) = state.entry(position) else {
        return Err(reject(
            RejectionCode::NotThisPatientsEvent,
            format!("position {position} is not an event of this patient; corrections stay within one patient"),
        ));
    };
    if state.corrected.contains(&position) {
        return Err(reject(
            RejectionCode::AlreadyCorrected,
            format!("position {position} is already marked as entered in error"),
        ));
    }
    let by_author = state
        .authors
        .get(entry.author as usize)
        .is_some_and(|author| *author == actor.id);
    match entry.kind {
        EntryKind::Correction => {
            return Err(reject(
                RejectionCode::CorrectionIsFinal,
                format!(
                    "position {position} is itself a correction, and a correction is final; if the \
                     entry it marked was right after all, record that fact again with its clinical \
                     time (occurred_at)"
                ),
            ))
        }
        EntryKind::EmergencyAccess => {
            return Err(reject(
                RejectionCode::EmergencyAccessStays,
                format!(
                    "position {position} is a broken glass, a fact of access that stays on the \
                     record; a wrong reason is answered with a note"
                ),
            ))
        }
        EntryKind::Acknowledgement if !by_author => {
            return Err(Rejection::not_permitted(
                RejectionCode::AcknowledgementByItsAuthor,
                format!(
                    "position {position} is an acknowledgement, which only the one who gave it \
                     corrects"
                ),
            ))
        }
        _ => {}
    }
    if !by_author && entry.line != actor.line() {
        return Err(Rejection::not_permitted(
            RejectionCode::CorrectionByOtherLine,
            format!(
                "position {position} was entered in the {}; only its author or their own line marks \
                 it entered in error. To change the other line's medication use change_dose or \
                 stop_medication with the reason side effects or target not reached (working \
                 agreement 4); otherwise ask the {} to correct it",
                entry.line, entry.line
            ),
        ));
    }
    check_nothing_left_dangling(state, position)
}

fn check_nothing_left_dangling(state: &PatientState, position: u64) -> Result<(), Rejection> {
    for (atc, steps) in &state.medication_history {
        let Some(i) = steps.iter().position(|s| s.position == position) else {
            continue;
        };
        let restarted = matches!(steps[i].step, Step::Stop)
            && steps[i + 1..].iter().any(|s| {
                matches!(s.step, Step::Start(..)) && !state.corrected.contains(&s.position)
            });
        if restarted {
            return Err(reject(
                RejectionCode::RestartedAfterStop,
                format!(
                    "{atc} was started again after the stop at position {position}; correct that \
                     later start first, or stop the medication again"
                ),
            ));
        }
    }
    if state.team.is_addition(position) {
        // The team as it stands once this addition no longer counts.
        let after = state
            .team
            .fold(|p| p == position || state.corrected.contains(&p));
        if after.iter().all(|m| m.member.role == Role::Patient) {
            return Err(reject(
                RejectionCode::NoPractitionerLeft,
                format!(
                    "correcting the addition at position {position} would leave no practitioner in \
                     the care team; add the right practitioner first"
                ),
            ));
        }
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
            now,
        )
        .unwrap_err();
        assert_eq!(err.code, RejectionCode::NoCareTeam);
        let ok = decide(
            &state,
            &Policy::default(),
            &gp,
            &add_self(&gp, Role::Gp),
            now,
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
