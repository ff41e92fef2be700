//! Recorded events as the API returns them ([`RecordedEventView`], in `GET /events`,
//! `GET /patients/{patient}/events` and the SSE stream), and the outcome of an append
//! ([`AppendOutcomeView`]).
//!
//! An event's `data` has the shape of the command that recorded it, so that what an integrator
//! writes is what they read; `type` and `data` are [`EventData`], tagged by the event's kind.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Serialize;
use utoipa::ToSchema;

use careledger_core::clinical::Indication;
use careledger_core::event::{ChangeReason, Event};
use careledger_core::notify;
use careledger_core::quantity::Quantity;
use careledger_core::{AppendOutcome, FramedEvent, RecordedEvent};

use super::names::{
    ChangeReasonCode, CodeSystem, Comparator, DoseUnit, GoalOutcome, IntoleranceKind, Lead, Line,
    MeasureCode, MeasurementSource, NoteKind, Practitioner, Role, SmokingStatus, TargetBasis,
};
use super::scalar::{FrameBase64, HashHex, Time};

/// A recorded event with its place in the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct RecordedEventView {
    /// Global position, gapless from 1.
    pub position: u64,
    /// The patient's id.
    pub patient: String,
    /// Revision in the patient's stream, gapless from 1.
    pub revision: u64,
    /// The event's id (a UUID).
    pub event_id: String,
    /// When the ledger recorded it.
    pub recorded_at: Time,
    /// When it happened, by the clinician's word.
    pub occurred_at: Time,
    /// Who recorded it.
    pub actor: ActorView,
    /// Why, in the actor's words.
    pub reason: String,
    /// Groups the events of one request.
    pub correlation_id: String,
    /// The event or message that caused this one.
    pub causation_id: Option<String>,
    /// The idempotency key of the append that wrote it.
    pub idempotency_key: Option<String>,
    /// The hash of the signed request whose commands produced it.
    #[schema(value_type = Option<HashHex>)]
    pub signed_request: Option<String>,
    /// The record format it was written in.
    pub format_version: u16,
    /// The hash of the event before it (zeros for position 1).
    #[schema(value_type = HashHex)]
    pub prev_hash: String,
    /// Its hash.
    #[schema(value_type = HashHex)]
    pub hash: String,
    /// Its frame exactly as stored, in standard base64: the bytes its hash is computed over,
    /// with its position (`docs/hash-format.md`).
    #[schema(value_type = FrameBase64)]
    pub frame: String,
    /// `type` (the event's kind) and `data` (its payload).
    #[serde(flatten)]
    pub event: EventData,
}

impl From<&FramedEvent> for RecordedEventView {
    fn from(framed: &FramedEvent) -> Self {
        RecordedEventView::new(&framed.event, &framed.frame)
    }
}

impl RecordedEventView {
    /// The event `e` with `frame`, the stored bytes it was decoded from.
    pub fn new(e: &RecordedEvent, frame: &[u8]) -> Self {
        let r = &e.record;
        RecordedEventView {
            position: e.position,
            patient: r.patient.to_string(),
            revision: r.revision,
            event_id: r.event_id.to_string(),
            recorded_at: Time(r.recorded_at),
            occurred_at: Time(r.occurred_at),
            actor: ActorView {
                id: r.actor.id.to_string(),
                name: r.actor.name.to_string(),
                role: Role(r.actor.role),
                line: Line(r.actor.line()),
                organisation: r.actor.organisation.as_ref().map(|o| o.as_str().to_owned()),
            },
            reason: r.reason.to_string(),
            correlation_id: r.correlation_id.to_string(),
            causation_id: r.causation_id.as_ref().map(ToString::to_string),
            idempotency_key: r.idempotency_key.clone(),
            signed_request: r.signed_request.as_ref().map(|h| h.to_hex()),
            format_version: e.format_version,
            prev_hash: e.prev_hash.to_hex(),
            hash: e.hash.to_hex(),
            frame: BASE64.encode(frame),
            event: EventData::from(&r.event),
        }
    }
}

/// Who recorded an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ActorView {
    /// The actor's id.
    pub id: String,
    /// Their display name.
    pub name: String,
    /// The role they acted in.
    pub role: Role,
    /// Their line.
    pub line: Line,
    /// The AGB code of the organisation they acted for, when known.
    pub organisation: Option<String>,
}

/// An event's kind (`type`) and payload (`data`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum EventData {
    /// A practitioner or the patient joined the care team.
    CareTeamMemberAdded(MemberData),
    /// A member left the care team.
    CareTeamMemberRemoved(MemberRemovalData),
    /// Shared care began.
    SharedCareStarted(SharedCareData),
    /// Shared care ended.
    SharedCareEnded(SharedCareData),
    /// A target was set.
    TargetSet(TargetData),
    /// A target was withdrawn.
    TargetWithdrawn(TargetWithdrawalData),
    /// A medication was started.
    MedicationStarted(MedicationData),
    /// A dose was changed.
    MedicationDoseChanged(DoseChangeData),
    /// A medication was stopped.
    MedicationStopped(MedicationStopData),
    /// A medication preference was recorded.
    MedicationPreferenceRecorded(MedicationPreferenceData),
    /// Lab work was ordered.
    LabOrdered(LabOrderData),
    /// Tests were added to the annual panel.
    AnnualPanelExtended(PanelExtensionData),
    /// A lab result was recorded.
    LabResultRecorded(LabResultData),
    /// A measurement was recorded.
    MeasurementRecorded(MeasurementData),
    /// A lifestyle goal was set.
    LifestyleGoalSet(LifestyleGoalData),
    /// A lifestyle goal was closed.
    LifestyleGoalClosed(GoalClosureData),
    /// A note or letter was added.
    NoteAdded(NoteData),
    /// A notification was acknowledged.
    NotificationAcknowledged(AcknowledgementData),
    /// An earlier event was marked entered in error.
    EnteredInError(CorrectionData),
    /// A lead was handed over.
    LeadHandedOver(LeadHandoverData),
    /// An intolerance or contra-indication was recorded.
    IntoleranceRecorded(IntoleranceData),
    /// A problem was put on the problem list.
    ProblemRecorded(ProblemData),
    /// A problem was resolved.
    ProblemResolved(ProblemResolutionData),
    /// Smoking status was recorded.
    SmokingStatusRecorded(SmokingStatusData),
    /// A client system's signing key was registered for an actor (key stream).
    SigningKeyRegistered(SigningKeyData),
    /// A signing key was revoked (key stream).
    SigningKeyRevoked(SigningKeyRevocationData),
    /// A practitioner outside the care team broke the glass.
    GlassBroken(EmergencyAccessData),
}

/// `glass_broken`: emergency access opened for a number of hours; who and why are the event's
/// actor and reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct EmergencyAccessData {
    /// How long the access lasts, in hours from the time it was recorded.
    pub hours: u8,
}

/// `care_team_member_added`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MemberData {
    /// The member.
    pub actor: String,
    /// Their display name.
    pub name: String,
    /// Their AGB code.
    pub agb: Option<String>,
    /// Their role.
    pub role: Role,
    /// The line of their role.
    pub line: Line,
    /// What they lead.
    pub lead: Lead,
    /// Main or co-practitioner.
    pub practitioner: Practitioner,
}

/// `care_team_member_removed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MemberRemovalData {
    /// The member who left.
    pub actor: String,
}

/// `lead_handed_over`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LeadHandoverData {
    /// The lead.
    pub lead: Lead,
    /// The member who took it.
    pub to: String,
}

/// `shared_care_started`, `shared_care_ended`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SharedCareData {
    /// What was agreed.
    pub arrangement: String,
}

/// `target_set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TargetData {
    /// The measure.
    pub measure: MeasureCode,
    /// The target value in the measure's unit.
    pub value: String,
    /// The measure's unit.
    pub unit: String,
    /// How a value is compared with it.
    pub comparator: Comparator,
    /// Guideline or individual.
    pub basis: TargetBasis,
    /// Why this target.
    pub rationale: String,
}

/// `target_withdrawn`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TargetWithdrawalData {
    /// The measure.
    pub measure: MeasureCode,
}

/// `medication_started`: an indication is given as a problem or in words, or not at all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MedicationData {
    /// The ATC code.
    pub atc: String,
    /// Its name.
    pub name: String,
    /// The dose.
    pub dose: String,
    /// The dose's unit.
    pub dose_unit: DoseUnit,
    /// How often.
    pub frequency: String,
    /// The problem it is given for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indication_problem: Option<String>,
    /// Why it is given, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub indication_text: Option<String>,
}

/// `medication_dose_changed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct DoseChangeData {
    /// The ATC code.
    pub atc: String,
    /// The new dose.
    pub dose: String,
    /// The dose's unit.
    pub dose_unit: DoseUnit,
    /// The new frequency.
    pub frequency: String,
    /// Why.
    pub change_reason: ChangeReasonCode,
    /// The reason in words, with `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_reason_text: Option<String>,
}

/// `medication_stopped`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MedicationStopData {
    /// The ATC code.
    pub atc: String,
    /// Why.
    pub change_reason: ChangeReasonCode,
    /// The reason in words, with `other`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_reason_text: Option<String>,
}

/// `medication_preference_recorded`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MedicationPreferenceData {
    /// The preferred medication or group.
    pub atc: String,
    /// Its name.
    pub name: String,
    /// The preference in words.
    pub preference: String,
}

/// `lab_ordered`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LabOrderData {
    /// The writer's id for the order.
    pub order: String,
    /// The tests ordered.
    pub tests: Vec<MeasureCode>,
    /// True for the yearly CVRM panel.
    pub annual_panel: bool,
}

/// `annual_panel_extended`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PanelExtensionData {
    /// The tests added.
    pub tests: Vec<MeasureCode>,
}

/// `lab_result_recorded`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LabResultData {
    /// The test.
    pub measure: MeasureCode,
    /// The value in the measure's unit.
    pub value: String,
    /// The measure's unit.
    pub unit: String,
    /// The order it answers.
    pub order: Option<String>,
}

/// `measurement_recorded`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct MeasurementData {
    /// The measure.
    pub measure: MeasureCode,
    /// The value in the measure's unit.
    pub value: String,
    /// The measure's unit.
    pub unit: String,
    /// Where it was taken.
    pub source: MeasurementSource,
}

/// `lifestyle_goal_set`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct LifestyleGoalData {
    /// The writer's id for the goal.
    pub goal: String,
    /// The goal.
    pub description: String,
}

/// `lifestyle_goal_closed`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct GoalClosureData {
    /// The goal.
    pub goal: String,
    /// How it ended.
    pub outcome: GoalOutcome,
}

/// `note_added`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct NoteData {
    /// Note or letter.
    pub kind: NoteKind,
    /// The subject.
    pub subject: String,
    /// The body.
    pub body: String,
}

/// `notification_acknowledged`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AcknowledgementData {
    /// The notification's id (`n-42-second`).
    pub notification: String,
    /// The position of the event that caused it.
    pub position: u64,
    /// Whose notification it was.
    pub recipient: Line,
}

/// `entered_in_error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct CorrectionData {
    /// The position of the event marked entered in error.
    pub position: u64,
}

/// `intolerance_recorded`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct IntoleranceData {
    /// The substance or group.
    pub atc: String,
    /// Its name.
    pub substance: String,
    /// Intolerance or contra-indication.
    pub kind: IntoleranceKind,
    /// The reaction in words.
    pub reaction: String,
}

/// `problem_recorded`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProblemData {
    /// The writer's id for the problem.
    pub problem: String,
    /// The code system.
    pub code_system: CodeSystem,
    /// The code.
    pub code: String,
    /// The problem in words.
    pub description: String,
}

/// `problem_resolved`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ProblemResolutionData {
    /// The problem.
    pub problem: String,
}

/// `smoking_status_recorded`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SmokingStatusData {
    /// The status.
    pub status: SmokingStatus,
}

/// `signing_key_registered`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SigningKeyData {
    /// The actor whose requests the key signs.
    pub actor: String,
    /// The key's id (the `keyid` of its signatures).
    pub key_id: String,
    /// The ed25519 public key, 32 bytes, standard base64.
    pub public_key: String,
    /// The client system holding the private key.
    pub system: String,
}

/// `signing_key_revoked`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SigningKeyRevocationData {
    /// The actor whose key it was.
    pub actor: String,
    /// The key's id.
    pub key_id: String,
}

/// (measure, value, unit) of a quantity.
fn quantity(q: &Quantity) -> (MeasureCode, String, String) {
    (
        MeasureCode(q.measure()),
        q.value_text(),
        q.measure().unit().to_owned(),
    )
}

/// (change_reason, change_reason_text).
fn change_reason(r: &ChangeReason) -> (ChangeReasonCode, Option<String>) {
    let text = match r {
        ChangeReason::Other(text) => Some(text.to_string()),
        _ => None,
    };
    (ChangeReasonCode::from(r), text)
}

impl From<&Event> for EventData {
    fn from(event: &Event) -> Self {
        match event {
            Event::CareTeamMemberAdded(m) => EventData::CareTeamMemberAdded(MemberData {
                actor: m.actor.to_string(),
                name: m.name.to_string(),
                agb: m.agb.as_ref().map(|a| a.as_str().to_owned()),
                role: Role(m.role),
                line: Line(m.role.line()),
                lead: m.lead.into(),
                practitioner: m.practitioner.into(),
            }),
            Event::CareTeamMemberRemoved(r) => {
                EventData::CareTeamMemberRemoved(MemberRemovalData {
                    actor: r.actor.to_string(),
                })
            }
            Event::SharedCareStarted(s) => EventData::SharedCareStarted(SharedCareData {
                arrangement: s.arrangement.to_string(),
            }),
            Event::SharedCareEnded(s) => EventData::SharedCareEnded(SharedCareData {
                arrangement: s.arrangement.to_string(),
            }),
            Event::TargetSet(t) => {
                let (measure, value, unit) = quantity(&t.value);
                EventData::TargetSet(TargetData {
                    measure,
                    value,
                    unit,
                    comparator: Comparator(t.comparator),
                    basis: t.basis.into(),
                    rationale: t.rationale.to_string(),
                })
            }
            Event::TargetWithdrawn(w) => EventData::TargetWithdrawn(TargetWithdrawalData {
                measure: MeasureCode(w.measure),
            }),
            Event::MedicationStarted(m) => {
                let (indication_problem, indication_text) = match &m.indication {
                    Some(Indication::Problem(p)) => (Some(p.to_string()), None),
                    Some(Indication::Words(w)) => (None, Some(w.to_string())),
                    None => (None, None),
                };
                EventData::MedicationStarted(MedicationData {
                    atc: m.atc.to_string(),
                    name: m.name.to_string(),
                    dose: m.dose.amount_text(),
                    dose_unit: DoseUnit(m.dose.unit()),
                    frequency: m.frequency.to_string(),
                    indication_problem,
                    indication_text,
                })
            }
            Event::MedicationDoseChanged(c) => {
                let (change_reason, change_reason_text) = change_reason(&c.reason);
                EventData::MedicationDoseChanged(DoseChangeData {
                    atc: c.atc.to_string(),
                    dose: c.dose.amount_text(),
                    dose_unit: DoseUnit(c.dose.unit()),
                    frequency: c.frequency.to_string(),
                    change_reason,
                    change_reason_text,
                })
            }
            Event::MedicationStopped(s) => {
                let (change_reason, change_reason_text) = change_reason(&s.reason);
                EventData::MedicationStopped(MedicationStopData {
                    atc: s.atc.to_string(),
                    change_reason,
                    change_reason_text,
                })
            }
            Event::MedicationPreferenceRecorded(p) => {
                EventData::MedicationPreferenceRecorded(MedicationPreferenceData {
                    atc: p.atc.to_string(),
                    name: p.name.to_string(),
                    preference: p.preference.to_string(),
                })
            }
            Event::LabOrdered(o) => EventData::LabOrdered(LabOrderData {
                order: o.order.to_string(),
                tests: o.tests.iter().copied().map(MeasureCode).collect(),
                annual_panel: o.annual_panel,
            }),
            Event::AnnualPanelExtended(e) => EventData::AnnualPanelExtended(PanelExtensionData {
                tests: e.tests.iter().copied().map(MeasureCode).collect(),
            }),
            Event::LabResultRecorded(r) => {
                let (measure, value, unit) = quantity(&r.value);
                EventData::LabResultRecorded(LabResultData {
                    measure,
                    value,
                    unit,
                    order: r.order.as_ref().map(ToString::to_string),
                })
            }
            Event::MeasurementRecorded(m) => {
                let (measure, value, unit) = quantity(&m.value);
                EventData::MeasurementRecorded(MeasurementData {
                    measure,
                    value,
                    unit,
                    source: m.source.into(),
                })
            }
            Event::LifestyleGoalSet(g) => EventData::LifestyleGoalSet(LifestyleGoalData {
                goal: g.goal.to_string(),
                description: g.description.to_string(),
            }),
            Event::LifestyleGoalClosed(c) => EventData::LifestyleGoalClosed(GoalClosureData {
                goal: c.goal.to_string(),
                outcome: c.outcome.into(),
            }),
            Event::NoteAdded(n) => EventData::NoteAdded(NoteData {
                kind: n.kind.into(),
                subject: n.subject.to_string(),
                body: n.body.to_string(),
            }),
            Event::NotificationAcknowledged(a) => {
                EventData::NotificationAcknowledged(AcknowledgementData {
                    notification: notify::notification_id(a.notification, a.recipient),
                    position: a.notification,
                    recipient: Line(a.recipient),
                })
            }
            Event::EnteredInError(c) => EventData::EnteredInError(CorrectionData {
                position: c.position,
            }),
            Event::LeadHandedOver(h) => EventData::LeadHandedOver(LeadHandoverData {
                lead: h.lead.into(),
                to: h.to.to_string(),
            }),
            Event::IntoleranceRecorded(i) => EventData::IntoleranceRecorded(IntoleranceData {
                atc: i.atc.to_string(),
                substance: i.substance.to_string(),
                kind: IntoleranceKind(i.kind),
                reaction: i.reaction.to_string(),
            }),
            Event::ProblemRecorded(p) => EventData::ProblemRecorded(ProblemData {
                problem: p.problem.to_string(),
                code_system: CodeSystem(p.code.system()),
                code: p.code.code().to_owned(),
                description: p.description.to_string(),
            }),
            Event::ProblemResolved(r) => EventData::ProblemResolved(ProblemResolutionData {
                problem: r.problem.to_string(),
            }),
            Event::SmokingStatusRecorded(s) => {
                EventData::SmokingStatusRecorded(SmokingStatusData {
                    status: SmokingStatus(s.status),
                })
            }
            Event::SigningKeyRegistered(k) => EventData::SigningKeyRegistered(SigningKeyData {
                actor: k.actor.to_string(),
                key_id: k.key_id.to_string(),
                public_key: crate::signature::base64_encode(&k.public_key),
                system: k.system.to_string(),
            }),
            Event::SigningKeyRevoked(r) => EventData::SigningKeyRevoked(SigningKeyRevocationData {
                actor: r.actor.to_string(),
                key_id: r.key_id.to_string(),
            }),
            Event::GlassBroken(a) => EventData::GlassBroken(EmergencyAccessData { hours: a.hours }),
        }
    }
}

/// The answer to an append: the stream's revision, whether it was a replay of an earlier
/// append with the same idempotency key, the events written and the warnings for the writer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AppendOutcomeView {
    /// The stream's revision after the append (also the `ETag`).
    pub revision: u64,
    /// True when an earlier append with the same key was returned and nothing written.
    pub replayed: bool,
    /// The events written, in order.
    pub events: Vec<AppendedView>,
    /// Warnings for the writer, such as duplicate lab work.
    pub warnings: Vec<WarningView>,
}

/// One event an append wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AppendedView {
    /// Global position.
    pub position: u64,
    /// Revision in the patient's stream.
    pub revision: u64,
    /// The event's id.
    pub event_id: String,
    /// Its hash.
    #[schema(value_type = HashHex)]
    pub hash: String,
}

/// A warning for the writer: accepted, but worth a look.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct WarningView {
    /// A stable code (`duplicate_lab_work`, `known_intolerance`).
    pub code: String,
    /// A sentence for the clinician.
    pub message: String,
}

impl From<&AppendOutcome> for AppendOutcomeView {
    fn from(o: &AppendOutcome) -> Self {
        AppendOutcomeView {
            revision: o.revision,
            replayed: o.replayed,
            events: o
                .events
                .iter()
                .map(|e| AppendedView {
                    position: e.position,
                    revision: e.revision,
                    event_id: e.event_id.to_string(),
                    hash: e.hash.to_hex(),
                })
                .collect(),
            warnings: o
                .warnings
                .iter()
                .map(|w| WarningView {
                    code: w.code.to_string(),
                    message: w.message.clone(),
                })
                .collect(),
        }
    }
}

/// A page of the global log (`GET /events`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct EventPageView {
    /// The events the caller may see, in position order.
    pub events: Vec<RecordedEventView>,
    /// The position to read after for the next page.
    pub next_after: u64,
    /// The ledger's head position.
    pub head: u64,
}

impl EventPageView {
    /// A page of `events`, to be continued after `next_after`, of a ledger at `head`.
    pub fn new<'a>(
        events: impl IntoIterator<Item = &'a FramedEvent>,
        next_after: u64,
        head: u64,
    ) -> Self {
        EventPageView {
            events: events.into_iter().map(RecordedEventView::from).collect(),
            next_after,
            head,
        }
    }
}

/// A patient's events (`GET /patients/{patient}/events`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct PatientEventsView {
    /// The events, in revision order.
    pub events: Vec<RecordedEventView>,
}

impl<'a> FromIterator<&'a FramedEvent> for PatientEventsView {
    fn from_iter<I: IntoIterator<Item = &'a FramedEvent>>(events: I) -> Self {
        PatientEventsView {
            events: events.into_iter().map(RecordedEventView::from).collect(),
        }
    }
}
