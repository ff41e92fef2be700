//! What the team is told, as the API returns it: the audit trail ([`AuditTrailView`]),
//! notifications ([`NotificationListView`]) and signals ([`SignalListView`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use careledger_core::ids::PatientId;
use careledger_projections::audit::AuditEntry;
use careledger_projections::notifications::{Message, Notification, NotificationStatus};
use careledger_projections::Signal;

use super::names::{Line, MeasureCode, Role};
use super::plan::ProvenanceView;
use super::scalar::{EventKind, HashHex, Time};

/// A patient's audit trail (`GET /patients/{patient}/audit`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditTrailView {
    /// The patient.
    pub patient: String,
    /// The entries that pass the query, in ledger order.
    pub entries: Vec<AuditEntryView>,
}

impl AuditTrailView {
    /// `entries` of `patient`.
    pub fn new<'a>(patient: &PatientId, entries: impl IntoIterator<Item = &'a AuditEntry>) -> Self {
        AuditTrailView {
            patient: patient.to_string(),
            entries: entries.into_iter().map(AuditEntryView::from).collect(),
        }
    }
}

/// One entry of the audit trail: what changed from what to what, who, when, why, whom it told,
/// and the corrections linked both ways.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntryView {
    /// The event's global position.
    pub position: u64,
    /// Its hash.
    #[schema(value_type = HashHex)]
    pub hash: String,
    /// The patient's revision.
    pub revision: u64,
    /// The event's kind.
    #[serde(rename = "type")]
    #[schema(value_type = EventKind)]
    pub kind: String,
    /// The plan element it touches (`target:ldl`, `medication:C10AA05`).
    pub element: String,
    /// One sentence, in English.
    pub summary: String,
    /// The sentence, structured: the event's kind as template and its values, for a client
    /// that shows it in another language.
    pub message: MessageView,
    /// What the element was, in English.
    pub from: Option<String>,
    /// What it became, in English.
    pub to: Option<String>,
    /// What the element was, structured (template `target`, `medication`, `dose`, `stopped`,
    /// `guideline_default`, `shared_care`, `no_shared_care`, `goal_open`, `goal_closed`).
    pub from_state: Option<MessageView>,
    /// What it became, structured.
    pub to_state: Option<MessageView>,
    /// Who.
    pub actor: AuditActorView,
    /// When the ledger recorded it.
    pub recorded_at: Time,
    /// When it happened, by the clinician's word.
    pub occurred_at: Time,
    /// Why.
    pub reason: String,
    /// Whom it told, and whether they acknowledged.
    pub notified: Vec<ToldView>,
    /// The correction that marked it entered in error.
    pub corrected_by: Option<u64>,
    /// The entry this correction marks.
    pub corrects: Option<u64>,
    /// The correction's provenance.
    pub correction: Option<ProvenanceView>,
    /// The correction that voided it along with its medication's start.
    pub voided_with: Option<u64>,
}

/// Who wrote an audited event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AuditActorView {
    /// The actor.
    pub id: String,
    /// Their display name.
    pub name: String,
    /// Their role.
    pub role: Role,
    /// Their line.
    pub line: Line,
}

/// A recipient told of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ToldView {
    /// The recipient.
    pub recipient: Line,
    /// Their notification's status.
    pub status: NotificationStatusView,
}

impl From<&AuditEntry> for AuditEntryView {
    fn from(e: &AuditEntry) -> Self {
        let p = &e.provenance;
        AuditEntryView {
            position: p.position,
            hash: p.hash.to_hex(),
            revision: e.revision,
            kind: e.kind.to_string(),
            element: e.element.clone(),
            summary: e.summary(),
            message: MessageView::from(&*e.message),
            from: e.from(),
            to: e.to(),
            from_state: e.from_state.as_ref().map(MessageView::from),
            to_state: e.to_state.as_ref().map(MessageView::from),
            actor: AuditActorView {
                id: p.actor.to_string(),
                name: p.actor_name.to_string(),
                role: Role(p.role),
                line: Line(p.line),
            },
            recorded_at: Time(p.recorded_at),
            occurred_at: Time(p.occurred_at),
            reason: p.reason.to_string(),
            notified: e
                .notified
                .iter()
                .map(|n| ToldView {
                    recipient: Line(n.recipient),
                    status: NotificationStatusView::from(&n.status),
                })
                .collect(),
            corrected_by: e.corrected_by,
            corrects: e.corrects,
            correction: e.correction.as_ref().map(ProvenanceView::from),
            voided_with: e.voided_with,
        }
    }
}

/// A notification's state: open, acknowledged (by whom, when, at which position) or withdrawn
/// (by a correction before anyone acknowledged it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum NotificationStatusView {
    /// Not yet acknowledged.
    Open,
    /// Acknowledged by a member of the recipient line.
    Acknowledged {
        /// Who.
        by: String,
        /// When the acknowledgement was recorded.
        at: Time,
        /// Its position.
        position: u64,
    },
    /// The causing entry was marked entered in error before anyone acknowledged it.
    Withdrawn {
        /// The correction's position.
        correction: u64,
    },
}

impl From<&NotificationStatus> for NotificationStatusView {
    fn from(s: &NotificationStatus) -> Self {
        match s {
            NotificationStatus::Open => NotificationStatusView::Open,
            NotificationStatus::Acknowledged { by, at, position } => {
                NotificationStatusView::Acknowledged {
                    by: by.to_string(),
                    at: Time(*at),
                    position: *position,
                }
            }
            NotificationStatus::Withdrawn { correction } => NotificationStatusView::Withdrawn {
                correction: *correction,
            },
        }
    }
}

/// A patient's notifications to the caller's line (`GET /patients/{patient}/notifications`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationListView {
    /// The notifications.
    pub notifications: Vec<NotificationView>,
}

impl FromIterator<NotificationView> for NotificationListView {
    fn from_iter<I: IntoIterator<Item = NotificationView>>(notifications: I) -> Self {
        NotificationListView {
            notifications: notifications.into_iter().collect(),
        }
    }
}

/// A notification to one recipient.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    /// Its id (`n-42-second`).
    pub id: String,
    /// The patient.
    pub patient: String,
    /// The recipient line.
    pub recipient: Line,
    /// The position of the event that caused it.
    pub position: u64,
    /// That event's kind.
    #[serde(rename = "type")]
    #[schema(value_type = EventKind)]
    pub kind: String,
    /// The audit's one-line summary.
    pub summary: String,
    /// The writer's reason.
    pub reason: String,
    /// When the causing event was recorded.
    pub created_at: Time,
    /// The message, structured.
    pub message: MessageView,
    /// Open, acknowledged or withdrawn.
    pub status: NotificationStatusView,
    /// True when open for longer than the configured days.
    pub overdue: bool,
}

/// A text kept structured: a template and the values it is filled with, language-neutral
/// (measures by code, values as decimal text with a point, reasons and sources by code), so
/// that a client shows it in Dutch or English.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    /// The template: the causing event's kind (`change` in texts stored before every kind had
    /// its own, told in the `summary` value), or a state's kind.
    pub template: String,
    /// The values by name.
    pub values: BTreeMap<String, String>,
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        MessageView {
            template: m.template.to_string(),
            values: m
                .values
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl MessageView {
    /// The read models' message, for the labels.
    pub fn to_message(&self) -> Message {
        Message::of_strings(
            &self.template,
            self.values.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )
    }
}

impl NotificationView {
    /// `n`, overdue or not as of the caller's now.
    pub fn new(n: &Notification, overdue: bool) -> Self {
        NotificationView {
            id: n.id.clone(),
            patient: n.patient.to_string(),
            recipient: Line(n.recipient),
            position: n.position,
            kind: n.kind.to_string(),
            summary: n.summary(),
            reason: n.reason.clone(),
            created_at: Time(n.created_at),
            message: MessageView::from(&*n.message),
            status: NotificationStatusView::from(&n.status),
            overdue,
        }
    }
}

/// A patient's signals (`GET /patients/{patient}/signals`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignalListView {
    /// The signals as of now.
    pub signals: Vec<SignalView>,
}

impl<'a> FromIterator<&'a Signal> for SignalListView {
    fn from_iter<I: IntoIterator<Item = &'a Signal>>(signals: I) -> Self {
        SignalListView {
            signals: signals.into_iter().map(SignalView::from).collect(),
        }
    }
}

/// A signal worth a clinician's attention.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SignalView {
    /// `duplicate_lab_work`, `annual_lab_due`, `target_not_met`, `home_trend_off_target`,
    /// `lab_order_open`, `lab_order_expired`, `annual_panel_incomplete`,
    /// `cvrm_lead_unassigned`, ...
    pub code: String,
    /// The measure concerned, if one.
    pub measure: Option<MeasureCode>,
    /// A sentence for the clinician, in English.
    pub message: String,
    /// The values the sentence is filled with, language-neutral (a measure by its code, values
    /// as decimal text with a point, dates as microseconds since the epoch), for a client that
    /// shows it in another language.
    pub values: BTreeMap<String, String>,
    /// The positions that give rise to it.
    pub positions: Vec<u64>,
}

impl From<&Signal> for SignalView {
    fn from(s: &Signal) -> Self {
        SignalView {
            code: s.code.clone(),
            measure: s.measure.map(MeasureCode),
            message: s.message.clone(),
            values: s.values.clone(),
            positions: s.positions.clone(),
        }
    }
}
