//! The access log as the API shows it: one entry per access to patient data
//! ([`AccessEntryView`]) in pages ([`AccessLogPageView`]).

use serde::Serialize;
use utoipa::ToSchema;

use careledger_app::access_log::{AccessReason, StoredEntry, Who};

use super::names::AccessReasonName;
use super::scalar::{HashHex, Time};

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AccessorView {
    /// False for a request without a known token (`id`, `role` and `organisation` are null).
    pub authenticated: bool,
    /// The actor's id.
    pub id: Option<String>,
    /// The role they act in.
    pub role: Option<String>,
    /// The AGB code of the organisation they act for.
    pub organisation: Option<String>,
}

/// One access to patient data, or an attempt, as the access log holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AccessEntryView {
    /// The entry's position in the access log (1 is the first; gapless).
    pub position: u64,
    /// The entry's hash in the access log's chain.
    #[schema(value_type = HashHex)]
    pub hash: String,
    /// When the server answered.
    pub recorded_at: Time,
    /// Who.
    pub who: AccessorView,
    /// The patient the route or query named.
    pub patient: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The route template, e.g. `/patients/{patient}/plan`.
    pub route: String,
    /// The path and query as requested (at most 512 bytes).
    pub resource: String,
    /// The outcome: the HTTP status answered.
    pub status: u16,
    /// The client's address (as a trusted proxy reported it, when through one).
    pub client: String,
    /// The trusted proxy's address, when the request came through one.
    pub via: Option<String>,
    /// The client system's `User-Agent` (at most 256 bytes).
    pub user_agent: Option<String>,
    /// Why the caller had access.
    pub reason: AccessReasonName,
    /// For `break_glass`: the justification given.
    pub justification: Option<String>,
}

impl From<&StoredEntry> for AccessEntryView {
    fn from(stored: &StoredEntry) -> Self {
        let e = &stored.entry;
        let who = match &e.who {
            Who::Unauthenticated => AccessorView {
                authenticated: false,
                id: None,
                role: None,
                organisation: None,
            },
            Who::Actor {
                id,
                role,
                organisation,
            } => AccessorView {
                authenticated: true,
                id: Some(id.clone()),
                role: Some(role.clone()),
                organisation: organisation.clone(),
            },
        };
        AccessEntryView {
            position: stored.position,
            hash: stored.hash.to_hex(),
            recorded_at: Time(e.recorded_at),
            who,
            patient: e.patient.clone(),
            method: e.method.to_string(),
            route: e.route.clone(),
            resource: e.resource.clone(),
            status: e.status,
            client: e.client.to_string(),
            via: e.via.clone(),
            user_agent: e.user_agent.clone(),
            reason: (&e.reason).into(),
            justification: match &e.reason {
                AccessReason::BreakGlass { justification } => Some(justification.clone()),
                _ => None,
            },
        }
    }
}

/// A page of the access log, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AccessLogPageView {
    /// The entries.
    pub entries: Vec<AccessEntryView>,
    /// Pass as `after` for the next page; null when this page is the last so far.
    pub next_after: Option<u64>,
    /// The access log's durable size when read: every request answered before this one is in
    /// it.
    pub durable: u64,
}
