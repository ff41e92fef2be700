//! The event catalogue (past-tense facts) and the commands (imperatives) that produce them.
//!
//! Both enums are generated from one list so that they cannot drift apart: each command has
//! exactly one event of the same payload. Variants are only ever appended at the end of the list:
//! the stored encoding names a variant by its index (see `docs/hash-format.md`).

use serde::{Deserialize, Serialize};

use crate::clinical::{Indication, Intolerance, Problem, ProblemResolution, SmokingObservation};
use crate::ids::{ActorId, AgbCode, AtcCode, ElementId, Text};
use crate::quantity::{Comparator, Measure, Quantity};
use crate::role::{Lead, Practitioner, Role};

/// A member of a patient's care team, as added.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The practitioner (or the patient).
    pub actor: ActorId,
    /// Display name ("J. de Vries").
    pub name: Text,
    /// AGB code, when the member has one.
    pub agb: Option<AgbCode>,
    /// Role in the team; the line follows from it.
    pub role: Role,
    /// What the member leads.
    pub lead: Lead,
    /// Main or co-practitioner.
    pub practitioner: Practitioner,
}

/// A member leaving the care team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRemoval {
    /// The member who leaves.
    pub actor: ActorId,
}

/// The shared-care arrangement between the lines (agreement 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedCare {
    /// What was agreed, in a sentence ("CVRM by GP, heart failure follow-up by cardiology").
    pub arrangement: Text,
}

/// Where a target value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TargetBasis {
    /// The Dutch GP guideline (NHG standard CVRM).
    NhgGuideline,
    /// The European Society of Cardiology guideline.
    EscGuideline,
    /// An individual target for this patient.
    Individual,
}

/// A target value for a measure (streefwaarde).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// How a value is compared with the target.
    pub comparator: Comparator,
    /// The target value; its measure is the target's measure.
    pub value: Quantity,
    /// Guideline or individual.
    pub basis: TargetBasis,
    /// Why this target ("high risk, ESC").
    pub rationale: Text,
}

/// Withdrawal of the target for a measure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetWithdrawal {
    /// The measure whose target is withdrawn.
    pub measure: Measure,
}

/// Units a dose is expressed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DoseUnit {
    /// Milligram.
    Mg,
    /// Microgram.
    Microgram,
    /// Millilitre.
    Ml,
    /// International units.
    Unit,
    /// Tablets or capsules.
    Tablet,
}

impl DoseUnit {
    /// The UCUM-like symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            DoseUnit::Mg => "mg",
            DoseUnit::Microgram => "ug",
            DoseUnit::Ml => "mL",
            DoseUnit::Unit => "[iU]",
            DoseUnit::Tablet => "tablet",
        }
    }
}

/// A dose in thousandths of its unit (40 mg is `40_000`), so no floating point is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dose {
    amount_milli: u64,
    unit: DoseUnit,
}

impl Dose {
    /// Largest amount accepted, in thousandths.
    pub const MAX_MILLI: u64 = 100_000_000;

    /// A dose; zero and absurd amounts are refused.
    pub fn new(amount_milli: u64, unit: DoseUnit) -> Result<Self, crate::error::InvalidInput> {
        if amount_milli == 0 || amount_milli > Self::MAX_MILLI {
            return Err(crate::error::InvalidInput::new(
                "dose",
                format!(
                    "must be more than 0 and at most {} {}",
                    Self::MAX_MILLI / 1000,
                    unit.symbol()
                ),
            ));
        }
        Ok(Self { amount_milli, unit })
    }

    /// Parses a decimal amount such as `"40"` or `"2.5"` (up to three decimals).
    pub fn parse(amount: &str, unit: DoseUnit) -> Result<Self, crate::error::InvalidInput> {
        let bad = || {
            crate::error::InvalidInput::new(
                "dose",
                format!("{amount:?} is not a positive decimal with at most 3 decimals"),
            )
        };
        let (int, frac) = amount.trim().split_once('.').unwrap_or((amount.trim(), ""));
        if int.is_empty()
            || int.len() > 9
            || frac.len() > 3
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let whole: u64 = int.parse().map_err(|_| bad())?;
        let frac_milli = format!("{frac:0<3}").parse::<u64>().map_err(|_| bad())?;
        Self::new(whole * 1000 + frac_milli, unit)
    }

    /// The amount in thousandths of the unit.
    pub fn amount_milli(&self) -> u64 {
        self.amount_milli
    }

    /// The unit.
    pub fn unit(&self) -> DoseUnit {
        self.unit
    }

    /// The amount as decimal text without trailing zeros (`"2.5"`).
    pub fn amount_text(&self) -> String {
        let whole = self.amount_milli / 1000;
        let frac = self.amount_milli % 1000;
        if frac == 0 {
            whole.to_string()
        } else {
            format!("{whole}.{}", format!("{frac:03}").trim_end_matches('0'))
        }
    }
}

impl std::fmt::Display for Dose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.amount_text(), self.unit.symbol())
    }
}

/// A medication as started.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Medication {
    /// ATC code; at most one active medication per code.
    pub atc: AtcCode,
    /// Product or substance name ("atorvastatin").
    pub name: Text,
    /// The dose per administration.
    pub dose: Dose,
    /// How often ("1x daily").
    pub frequency: Text,
    /// Why it is given: a problem on the problem list or words; optional.
    pub indication: Option<Indication>,
}

/// Why a medication was changed or stopped; agreement 4 admits only the first two across lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeReason {
    /// Side effects (bijwerkingen).
    SideEffects,
    /// The target was not reached (niet behalen van streefwaarde).
    TargetNotReached,
    /// The patient's preference.
    PatientPreference,
    /// Anything else, in words.
    Other(Text),
}

impl ChangeReason {
    /// True for the reasons agreement 4 accepts for changing the other line's medication.
    pub fn permits_change_across_lines(&self) -> bool {
        matches!(
            self,
            ChangeReason::SideEffects | ChangeReason::TargetNotReached
        )
    }
}

impl std::fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChangeReason::SideEffects => f.write_str("side effects"),
            ChangeReason::TargetNotReached => f.write_str("target not reached"),
            ChangeReason::PatientPreference => f.write_str("patient preference"),
            ChangeReason::Other(text) => write!(f, "other: {text}"),
        }
    }
}

/// A change of dose or frequency of an active medication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoseChange {
    /// Which active medication.
    pub atc: AtcCode,
    /// The new dose.
    pub dose: Dose,
    /// The new frequency.
    pub frequency: Text,
    /// Why.
    pub reason: ChangeReason,
}

/// Stopping an active medication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MedicationStop {
    /// Which active medication.
    pub atc: AtcCode,
    /// Why.
    pub reason: ChangeReason,
}

/// A medication preference stated by a practitioner, usually the specialist's return letter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MedicationPreference {
    /// The preferred medication (or group).
    pub atc: AtcCode,
    /// Its name.
    pub name: Text,
    /// The preference in words ("prefer rosuvastatin over atorvastatin if intolerant").
    pub preference: Text,
}

/// A lab order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabOrder {
    /// The writer's id for this order, unique per patient.
    pub order: ElementId,
    /// The tests ordered; never empty.
    pub tests: Vec<Measure>,
    /// True when this is the yearly CVRM panel (agreement 7).
    pub annual_panel: bool,
}

/// The specialist's additions to the annual CVRM lab panel (agreement 2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelExtension {
    /// Tests to add; never empty.
    pub tests: Vec<Measure>,
}

/// A lab result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabResult {
    /// The order it answers, when known.
    pub order: Option<ElementId>,
    /// The value; its measure is the test.
    pub value: Quantity,
}

/// Where a measurement was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MeasurementSource {
    /// At the GP practice.
    Practice,
    /// At the hospital.
    Hospital,
    /// By the patient at home.
    SelfMeasuredAtHome,
}

/// A measurement (blood pressure, weight...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measurement {
    /// The value.
    pub value: Quantity,
    /// Where it was taken.
    pub source: MeasurementSource,
}

/// A lifestyle goal of the patient's own action plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifestyleGoal {
    /// The writer's id for the goal, unique per patient.
    pub goal: ElementId,
    /// The goal ("walk 30 minutes a day").
    pub description: Text,
}

/// How a lifestyle goal ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GoalOutcome {
    /// Achieved.
    Achieved,
    /// Given up.
    Abandoned,
    /// Replaced by another goal.
    Replaced,
}

/// Closing a lifestyle goal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoalClosure {
    /// Which open goal.
    pub goal: ElementId,
    /// How it ended.
    pub outcome: GoalOutcome,
}

/// Kinds of written communication in the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NoteKind {
    /// A note in the plan.
    Note,
    /// The specialist's return letter (terugrapportagebrief).
    ReturnLetter,
    /// An interim letter between the lines.
    InterimLetter,
}

/// A note or letter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Note or letter.
    pub kind: NoteKind,
    /// A one-line subject.
    pub subject: Text,
    /// The body.
    pub body: Text,
}

/// Acknowledging a notification. A notification is named by the global position of the
/// event that caused it and its recipient (see [`crate::notify`]); each recipient acknowledges
/// its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    /// Position of the event whose notification is acknowledged.
    pub notification: u64,
    /// The recipient whose notification it is: the acknowledging actor's own line.
    pub recipient: crate::role::Line,
}

/// Marking an earlier event of the same patient as entered in error. It marks; it does not undo:
/// record the right fact next to it. Only the entry's author or their own line marks it (an
/// acknowledgement only its author), and a correction is final (`docs/clinical-rules.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    /// Global position of the event entered in error.
    pub position: u64,
}

/// Handing a lead over to another member: the main practitioner of the lead gives it to a
/// practitioner of the same line in the team, who becomes its main practitioner; the one
/// handing over stays in the team as co-practitioner. A lead with no main practitioner (a plan
/// founded by the other line) is taken by a practitioner of its line handing it to themselves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeadHandover {
    /// The lead handed over: CVRM or the organ disease.
    pub lead: Lead,
    /// The member who takes it.
    pub to: ActorId,
}

/// A client system's public key for one actor's signed requests (RFC 9421, ed25519), recorded
/// in the ledger's key stream ([`crate::signing_keys::KEY_STREAM`]). The record's actor is who
/// registered it: the actor themselves, or the operator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKey {
    /// The actor whose requests the key signs.
    pub actor: ActorId,
    /// The key's id, as the `keyid` parameter of a signature names it; unique per actor.
    pub key_id: ElementId,
    /// The ed25519 public key (RFC 8032), 32 bytes.
    pub public_key: [u8; 32],
    /// The client system holding the private key ("HIS Medicom, practice Jansen").
    pub system: Text,
}

/// The end of a signing key: requests signed with it later are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningKeyRevocation {
    /// The actor whose key it is.
    pub actor: ActorId,
    /// The key's id.
    pub key_id: ElementId,
}

/// Breaking the glass (seed 002): a practitioner outside the care team (a GP at an out-of-hours
/// post, an emergency physician, any registered practitioner) opens one patient's record in acute
/// need, for a limited time, with the reason in the record's `reason`. While it lasts they read
/// the record and record acute interventions; both lines are told at once of the access and of
/// each intervention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmergencyAccess {
    /// How long the access lasts, in hours from the time it is recorded (1 to 24).
    pub hours: u8,
}

impl EmergencyAccess {
    /// The longest access one break of the glass opens, in hours.
    pub const MAX_HOURS: u8 = 24;
    /// The access opened when no duration is asked for: an evening at an out-of-hours post or a
    /// stay in the emergency department.
    pub const DEFAULT_HOURS: u8 = 4;
}

macro_rules! catalogue {
    ($( $(#[$doc:meta])* $command:ident => $event:ident ( $payload:ty ), $kind:literal, $event_kind:literal; )*) => {
        /// What a writer asks the ledger to do; `decide` turns it into events or a rejection.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Command {
            $( $(#[$doc])* $command($payload), )*
        }

        /// A recorded fact about a patient's care plan.
        #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum Event {
            $( $(#[$doc])* $event($payload), )*
        }

        impl Command {
            /// The event this command records once accepted.
            pub fn into_event(self) -> Event {
                match self { $( Command::$command(p) => Event::$event(p), )* }
            }

            /// The snake-case name of the command (`set_target`).
            pub fn kind(&self) -> &'static str {
                match self { $( Command::$command(_) => $kind, )* }
            }
        }

        impl Event {
            /// The snake-case names of the events in variant order: `KINDS[i]` is the kind of
            /// the variant stored with index `i` (`docs/hash-format.md`, the event catalogue).
            pub const KINDS: &'static [&'static str] = &[ $( $event_kind, )* ];

            /// The snake-case name of the event (`target_set`).
            pub fn kind(&self) -> &'static str {
                match self { $( Event::$event(_) => $event_kind, )* }
            }
        }
    };
}

catalogue! {
    /// A practitioner or the patient joins the care team (agreement 1).
    AddCareTeamMember => CareTeamMemberAdded(Member), "add_care_team_member", "care_team_member_added";
    /// A member leaves the care team.
    RemoveCareTeamMember => CareTeamMemberRemoved(MemberRemoval), "remove_care_team_member", "care_team_member_removed";
    /// Shared care between the lines begins (agreement 1).
    StartSharedCare => SharedCareStarted(SharedCare), "start_shared_care", "shared_care_started";
    /// Shared care ends; the first line keeps CVRM.
    EndSharedCare => SharedCareEnded(SharedCare), "end_shared_care", "shared_care_ended";
    /// A target value is set (agreements 2 and 3).
    SetTarget => TargetSet(Target), "set_target", "target_set";
    /// A target is withdrawn; the guideline default applies again.
    WithdrawTarget => TargetWithdrawn(TargetWithdrawal), "withdraw_target", "target_withdrawn";
    /// A medication is started.
    StartMedication => MedicationStarted(Medication), "start_medication", "medication_started";
    /// The dose of an active medication changes (agreement 4).
    ChangeDose => MedicationDoseChanged(DoseChange), "change_dose", "medication_dose_changed";
    /// An active medication is stopped (agreement 4).
    StopMedication => MedicationStopped(MedicationStop), "stop_medication", "medication_stopped";
    /// A medication preference is recorded (agreement 2).
    RecordMedicationPreference => MedicationPreferenceRecorded(MedicationPreference), "record_medication_preference", "medication_preference_recorded";
    /// Lab work is ordered (agreement 7).
    OrderLab => LabOrdered(LabOrder), "order_lab", "lab_ordered";
    /// The specialist adds tests to the annual CVRM panel (agreement 2).
    ExtendAnnualPanel => AnnualPanelExtended(PanelExtension), "extend_annual_panel", "annual_panel_extended";
    /// A lab result is recorded (agreement 5).
    RecordLabResult => LabResultRecorded(LabResult), "record_lab_result", "lab_result_recorded";
    /// A measurement is recorded, in practice, hospital or at home (agreement 5).
    RecordMeasurement => MeasurementRecorded(Measurement), "record_measurement", "measurement_recorded";
    /// A lifestyle goal is set.
    SetLifestyleGoal => LifestyleGoalSet(LifestyleGoal), "set_lifestyle_goal", "lifestyle_goal_set";
    /// A lifestyle goal is closed.
    CloseLifestyleGoal => LifestyleGoalClosed(GoalClosure), "close_lifestyle_goal", "lifestyle_goal_closed";
    /// A note or letter is added (agreement 5).
    AddNote => NoteAdded(Note), "add_note", "note_added";
    /// The recipient acknowledges a notification (agreement 6).
    AcknowledgeNotification => NotificationAcknowledged(Acknowledgement), "acknowledge_notification", "notification_acknowledged";
    /// An earlier event is marked as entered in error.
    MarkEnteredInError => EnteredInError(Correction), "mark_entered_in_error", "entered_in_error";
    /// The main practitioner of a lead hands it over (agreement 1, seed 001).
    HandOverLead => LeadHandedOver(LeadHandover), "hand_over_lead", "lead_handed_over";
    /// An intolerance or contra-indication is recorded directly (a stop for side effects records
    /// one too, see `clinical`).
    RecordIntolerance => IntoleranceRecorded(Intolerance), "record_intolerance", "intolerance_recorded";
    /// A problem (ICPC-1-NL or ICD-10) is put on the problem list.
    RecordProblem => ProblemRecorded(Problem), "record_problem", "problem_recorded";
    /// A problem is resolved; it stays on the list as resolved.
    ResolveProblem => ProblemResolved(ProblemResolution), "resolve_problem", "problem_resolved";
    /// Smoking status, a coded observation (LOINC 72166-2).
    RecordSmokingStatus => SmokingStatusRecorded(SmokingObservation), "record_smoking_status", "smoking_status_recorded";
    /// A client system's public key is registered for an actor's signed requests; recorded in
    /// the key stream, never in a patient's.
    RegisterSigningKey => SigningKeyRegistered(SigningKey), "register_signing_key", "signing_key_registered";
    /// A signing key is revoked; recorded in the key stream.
    RevokeSigningKey => SigningKeyRevoked(SigningKeyRevocation), "revoke_signing_key", "signing_key_revoked";
    /// A practitioner outside the care team breaks the glass (seed 002).
    BreakGlass => GlassBroken(EmergencyAccess), "break_glass", "glass_broken";
}

impl Command {
    /// True for the commands of the key stream ([`crate::signing_keys::KEY_STREAM`]), which
    /// are about no patient.
    pub fn is_key_command(&self) -> bool {
        matches!(
            self,
            Command::RegisterSigningKey(_) | Command::RevokeSigningKey(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dose_parses_and_prints_without_floats() {
        let d = Dose::parse("2.5", DoseUnit::Mg).unwrap();
        assert_eq!(d.amount_milli(), 2500);
        assert_eq!(d.to_string(), "2.5 mg");
        assert_eq!(
            Dose::parse("40", DoseUnit::Mg).unwrap().to_string(),
            "40 mg"
        );
        assert!(Dose::parse("0", DoseUnit::Mg).is_err());
        assert!(Dose::parse("1.2345", DoseUnit::Mg).is_err());
        assert!(Dose::parse("-5", DoseUnit::Mg).is_err());
    }

    #[test]
    fn only_side_effects_and_target_not_reached_cross_lines() {
        assert!(ChangeReason::SideEffects.permits_change_across_lines());
        assert!(ChangeReason::TargetNotReached.permits_change_across_lines());
        assert!(!ChangeReason::PatientPreference.permits_change_across_lines());
        assert!(!ChangeReason::Other(Text::new("x").unwrap()).permits_change_across_lines());
    }
}
