//! The ledger's state and the API's errors as the API returns them: the verification report
//! ([`VerifyView`]), health ([`HealthView`]) and the `application/problem+json` body of every
//! error ([`ProblemDetails`], RFC 9457).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use careledger_core::anchor::Damage;
use careledger_core::verify::VerifyReport;
use careledger_core::{Error, Head};

use super::names::{HealthStatus, UnhealthyClass};
use super::scalar::HashHex;

/// The result of verifying the whole chain (`GET /verify`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyView {
    /// True when every stored event verified.
    pub intact: bool,
    /// Events checked and found intact.
    pub verified: u64,
    /// The hash of the last intact event.
    #[schema(value_type = HashHex)]
    pub head_hash: String,
    /// The first problem, if any.
    pub problem: Option<VerifyProblemView>,
}

/// Where verification first failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VerifyProblemView {
    /// The position.
    pub position: u64,
    /// What is wrong there.
    pub detail: String,
}

impl From<&VerifyReport> for VerifyView {
    fn from(r: &VerifyReport) -> Self {
        VerifyView {
            intact: r.is_intact(),
            verified: r.verified,
            head_hash: r.head_hash.to_hex(),
            problem: r.problem.as_ref().map(|p| VerifyProblemView {
                position: p.position,
                detail: p.to_string(),
            }),
        }
    }
}

/// Whether the ledger takes writes (`GET /health`): 200, or 503 with the reason's class. The
/// details (the head, the reason as a sentence, what is missing) are given to auditors and the
/// operator only ([`HealthView::public`] leaves them out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HealthView {
    /// `ok` or `unhealthy`.
    pub status: HealthStatus,
    /// Why it is unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<UnhealthyClass>,
    /// The reason, as a sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The ledger's head position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_position: Option<u64>,
    /// The head's hash, when healthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<HashHex>)]
    pub head_hash: Option<String>,
    /// The last position the anchor holds, when damaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_anchored_position: Option<u64>,
    /// Acknowledged events missing from the ledger, when damaged or restored behind a signed
    /// checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_events: Option<u64>,
    /// Acknowledged events whose loss the operator recorded after a restore (a signed, logged
    /// record: `careledger restore --accept-loss`), for auditors; absent when none was lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_loss: Option<RecordedLossView>,
}

/// A loss of acknowledged events recorded by the operator after a restore.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordedLossView {
    /// Acknowledged events the restored ledger lacks.
    pub missing_events: u64,
    /// The ledger's size when the loss was recorded (the restored head).
    pub restored_size: u64,
    /// The size of the signed checkpoint the ledger fell behind.
    pub witnessed_size: u64,
    /// Why, in the operator's words.
    pub reason: String,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
}

impl HealthView {
    /// Health at `head`, given the health check's failure, if any.
    pub fn new(head: &Head, failure: Option<&Error>) -> Self {
        let unhealthy = |class, reason| HealthView::unhealthy(head, class, reason);
        match failure {
            None => HealthView {
                status: HealthStatus::Ok,
                class: None,
                reason: None,
                head_position: Some(head.position),
                head_hash: Some(head.hash.to_hex()),
                last_anchored_position: None,
                missing_events: None,
                recorded_loss: None,
            },
            Some(Error::Damaged(damage)) => HealthView {
                last_anchored_position: Some(damage.last_anchored),
                missing_events: Some(damage.missing),
                ..unhealthy(UnhealthyClass::Damaged, damage.to_string())
            },
            Some(other) => unhealthy(UnhealthyClass::Storage, other.to_string()),
        }
    }

    /// Health while the access log cannot be written: every request for patient data is
    /// refused, since nothing is served unlogged.
    pub fn access_log_failed(head: &Head, failure: &str) -> Self {
        HealthView::unhealthy(
            head,
            UnhealthyClass::Storage,
            format!(
                "the access log cannot be written ({failure}); requests for patient data are \
                 refused until it can"
            ),
        )
    }

    /// Unhealthy at `head` for `reason`, with nothing else said.
    fn unhealthy(head: &Head, class: UnhealthyClass, reason: String) -> Self {
        HealthView {
            status: HealthStatus::Unhealthy,
            class: Some(class),
            reason: Some(reason),
            head_position: Some(head.position),
            head_hash: None,
            last_anchored_position: None,
            missing_events: None,
            recorded_loss: None,
        }
    }

    /// What anyone may know without a token: up or down, and the class of the reason.
    pub fn public(self) -> Self {
        HealthView {
            status: self.status,
            class: self.class,
            reason: None,
            head_position: None,
            head_hash: None,
            last_anchored_position: None,
            missing_events: None,
            recorded_loss: None,
        }
    }

    /// Health while writes are held: the hold's class, reason and missing events.
    pub fn held(head: &Head, hold: &careledger_app::hold::WriteHold) -> Self {
        use careledger_app::hold::HoldKind;
        let class = match hold.kind {
            HoldKind::DiskFull => UnhealthyClass::DiskFull,
            _ => UnhealthyClass::BehindWitnessedCheckpoint,
        };
        HealthView {
            status: HealthStatus::Unhealthy,
            class: Some(class),
            reason: Some(hold.reason.clone()),
            head_position: Some(head.position),
            head_hash: None,
            last_anchored_position: None,
            missing_events: hold.missing_events,
            recorded_loss: None,
        }
    }

    /// With the operator's record of acknowledged events lost in a restore, if any.
    pub fn with_recorded_loss(self, loss: Option<&careledger_app::backup::RecordedLoss>) -> Self {
        HealthView {
            recorded_loss: loss.map(|l| RecordedLossView {
                missing_events: l.witnessed_size - l.restored_size,
                restored_size: l.restored_size,
                witnessed_size: l.witnessed_size,
                reason: l.reason.clone(),
                recorded_at: l.recorded_at.to_string(),
            }),
            ..self
        }
    }

    /// True when the ledger takes writes (200), false for 503.
    pub fn is_ok(&self) -> bool {
        self.status == HealthStatus::Ok
    }
}

/// Where problem types are named: `{PROBLEM_TYPE_BASE}{code}`.
pub const PROBLEM_TYPE_BASE: &str = "https://careledger.example/problems/";

/// The body of every error response (`application/problem+json`, RFC 9457).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProblemDetails {
    /// The problem type's URI, named by its code.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short title of the problem type.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong here, as a sentence.
    pub detail: String,
    /// A stable code (`malformed`, `invalid_value`, `agreement_4`, `ledger_damaged`).
    pub code: String,
    /// With `ledger_damaged`: the last position the anchor holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_anchored_position: Option<u64>,
    /// With `ledger_damaged`: the last position the ledger holds; with `after_beyond_head`:
    /// the ledger's head, the furthest position a stream can resume after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_head_position: Option<u64>,
    /// With `ledger_damaged`: acknowledged events the ledger does not hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_events: Option<u64>,
    /// With `ledger_damaged`: the first position whose hash differs from the anchored one,
    /// `null` when none is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_changed_position: Option<Option<u64>>,
    /// With `ledger_not_intact`: where the ledger first fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
    /// With `ledger_not_intact`: events verified before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<u64>,
}

impl ProblemDetails {
    /// A problem of `status` with its title, code and detail.
    pub fn new(status: u16, title: &str, code: &str, detail: impl Into<String>) -> Self {
        ProblemDetails {
            problem_type: format!("{PROBLEM_TYPE_BASE}{code}"),
            title: title.to_owned(),
            status,
            detail: detail.into(),
            code: code.to_owned(),
            last_anchored_position: None,
            ledger_head_position: None,
            missing_events: None,
            first_changed_position: None,
            position: None,
            verified: None,
        }
    }

    /// With what the anchor holds that the ledger does not.
    pub fn with_damage(mut self, damage: &Damage) -> Self {
        self.last_anchored_position = Some(damage.last_anchored);
        self.ledger_head_position = Some(damage.ledger_head);
        self.missing_events = Some(damage.missing);
        self.first_changed_position = Some(damage.first_differing);
        self
    }

    /// With where the ledger first fails verification.
    pub fn with_not_intact(mut self, position: u64, verified: u64) -> Self {
        self.position = Some(position);
        self.verified = Some(verified);
        self
    }
}
