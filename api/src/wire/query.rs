//! Query parameters of the read endpoints, with their ranges, patterns and enumerations declared
//! for the OpenAPI document (`IntoParams`), and their conversion into what the reads take.

use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use careledger_app::access_log::AccessFilter;
use careledger_core::ids::{ActorId, PatientId};
use careledger_core::record::Timestamp;
use careledger_projections::audit::AuditFilter;
use careledger_projections::notifications::Which;

use super::error::WireError;
use super::names::{AuditLine, NotificationFilter};
use super::scalar::{Id, Time};

/// Largest page of events.
pub const MAX_PAGE: u32 = 1000;
/// Page size when none is asked for.
pub const DEFAULT_PAGE: u32 = 100;

/// Reads a patient id from a path or query (`/patients/{patient}/...`, `?patient=`); an id that
/// is not one (a nine-digit number failing the BSN 11-proof among them) is malformed.
///
/// The ledger's own streams (`careledger:keys`, the signing keys) are no patient: refused here.
pub fn patient_id(raw: &str) -> Result<PatientId, WireError> {
    let id = stream_id(raw)?;
    if careledger_core::signing_keys::is_reserved(id.as_str()) {
        return Err(WireError::malformed(
            "patient",
            format!(
                "{raw:?} is reserved by the ledger (the stream of signing keys is \
                 {}); name a patient, or read the keys' events with GET /events?patient={}",
                careledger_core::signing_keys::KEY_STREAM,
                careledger_core::signing_keys::KEY_STREAM
            ),
        ));
    }
    Ok(id)
}

/// A stream's id in a query: a patient, or one of the ledger's own streams.
fn stream_id(raw: &str) -> Result<PatientId, WireError> {
    // Core's sentence names the patient id already ("patient id may hold only ...").
    PatientId::parse(raw).map_err(|e| WireError {
        path: "patient".into(),
        message: e.to_string(),
        kind: super::WireErrorKind::Malformed,
    })
}

/// A page size as asked for, within 1 to [`MAX_PAGE`] ([`DEFAULT_PAGE`] when not asked for).
fn page(limit: Option<u32>) -> usize {
    limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize
}

/// `GET /events` and `GET /events/stream`: where to start, how many, and one patient only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The position to read after (0, the default, reads from the start).
    #[param(minimum = 0)]
    pub after: Option<u64>,
    /// The page size, 1 to 1000 (100 when absent; larger asks get 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only this patient's events.
    #[param(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub patient: Option<String>,
}

impl PageQuery {
    /// The position to read after.
    pub fn after(&self) -> u64 {
        self.after.unwrap_or(0)
    }

    /// The page size.
    pub fn limit(&self) -> usize {
        page(self.limit)
    }

    /// The patient asked for; an id that is not one is malformed.
    pub fn patient(&self) -> Result<Option<PatientId>, WireError> {
        self.patient.as_deref().map(stream_id).transpose()
    }
}

/// `GET /patients/{patient}/events`: the first revision and how many.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The first revision to read (1, the default, reads from the start).
    #[param(minimum = 1)]
    pub from_revision: Option<u64>,
    /// The page size, 1 to 1000 (100 when absent; larger asks get 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl StreamQuery {
    /// The first revision.
    pub fn from_revision(&self) -> u64 {
        self.from_revision.unwrap_or(1)
    }

    /// The page size.
    pub fn limit(&self) -> usize {
        page(self.limit)
    }
}

/// `GET /patients/{patient}/audit`: the entries of one element, actor or line, recorded in a
/// period.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The element (`target:ldl`, `medication:C10AA05`) or a prefix of it (`medication:`).
    pub element: Option<String>,
    /// The actor's id.
    #[param(value_type = Option<Id>)]
    pub actor: Option<String>,
    /// The actor's line.
    #[param(inline)]
    pub line: Option<AuditLine>,
    /// Recorded at or after (RFC 3339).
    #[param(value_type = Option<Time>)]
    pub from: Option<String>,
    /// Recorded before (RFC 3339).
    #[param(value_type = Option<Time>)]
    pub until: Option<String>,
}

impl AuditQuery {
    /// The audit filter: an actor id or a time that is not one is an invalid value.
    pub fn filter(self) -> Result<AuditFilter, WireError> {
        let time = |name: &str, raw: Option<String>| {
            raw.map(|r| Timestamp::parse_rfc3339(&r).map_err(|e| WireError::invalid(name, e)))
                .transpose()
        };
        Ok(AuditFilter {
            element: self.element,
            actor: self
                .actor
                .map(|a| ActorId::parse(&a).map_err(|e| WireError::invalid("actor", e)))
                .transpose()?,
            line: self.line.map(Into::into),
            from: time("from", self.from)?,
            until: time("until", self.until)?,
        })
    }
}

/// `GET /patients/{patient}/notifications`: which notifications.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Open (the default), overdue or all.
    #[param(inline)]
    pub status: Option<NotificationFilter>,
}

impl NotificationQuery {
    /// Which notifications to list.
    pub fn which(&self) -> Which {
        self.status.unwrap_or(NotificationFilter::Open).into()
    }
}

/// `GET /access-log`: one patient's or one actor's entries, recorded in a period, a page at a
/// time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessLogQuery {
    /// Only entries naming this patient.
    #[param(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
    pub patient: Option<String>,
    /// Only requests by this actor.
    #[param(value_type = Option<Id>)]
    pub actor: Option<String>,
    /// Recorded at or after (RFC 3339).
    #[param(value_type = Option<Time>)]
    pub from: Option<String>,
    /// Recorded before (RFC 3339).
    #[param(value_type = Option<Time>)]
    pub to: Option<String>,
    /// The position to read after (0, the default, reads from the start).
    #[param(minimum = 0)]
    pub after: Option<u64>,
    /// The page size, 1 to 1000 (100 when absent; larger asks get 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// `GET /patients/{patient}/access-log`: one actor's entries, recorded in a period, a page at a
/// time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatientAccessLogQuery {
    /// Only requests by this actor.
    #[param(value_type = Option<Id>)]
    pub actor: Option<String>,
    /// Recorded at or after (RFC 3339).
    #[param(value_type = Option<Time>)]
    pub from: Option<String>,
    /// Recorded before (RFC 3339).
    #[param(value_type = Option<Time>)]
    pub to: Option<String>,
    /// The position to read after (0, the default, reads from the start).
    #[param(minimum = 0)]
    pub after: Option<u64>,
    /// The page size, 1 to 1000 (100 when absent; larger asks get 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

impl AccessLogQuery {
    /// The filter: a patient, actor or time that is not one is refused, naming it.
    pub fn filter(&self) -> Result<AccessFilter, WireError> {
        let patient = self.patient.as_deref().map(patient_id).transpose()?;
        access_filter(patient, &self.actor, &self.from, &self.to)
    }

    /// The position to read after.
    pub fn after(&self) -> u64 {
        self.after.unwrap_or(0)
    }

    /// The page size.
    pub fn limit(&self) -> usize {
        page(self.limit)
    }
}

impl PatientAccessLogQuery {
    /// The filter for `patient`: an actor or time that is not one is refused, naming it.
    pub fn filter(&self, patient: PatientId) -> Result<AccessFilter, WireError> {
        access_filter(Some(patient), &self.actor, &self.from, &self.to)
    }

    /// The position to read after.
    pub fn after(&self) -> u64 {
        self.after.unwrap_or(0)
    }

    /// The page size.
    pub fn limit(&self) -> usize {
        page(self.limit)
    }
}

fn access_filter(
    patient: Option<PatientId>,
    actor: &Option<String>,
    from: &Option<String>,
    to: &Option<String>,
) -> Result<AccessFilter, WireError> {
    let time = |name: &str, raw: &Option<String>| {
        raw.as_deref()
            .map(|r| Timestamp::parse_rfc3339(r).map_err(|e| WireError::invalid(name, e)))
            .transpose()
    };
    Ok(AccessFilter {
        patient,
        actor: actor
            .as_deref()
            .map(|a| ActorId::parse(a).map_err(|e| WireError::invalid("actor", e)))
            .transpose()?,
        from: time("from", from)?,
        to: time("to", to)?,
    })
}
