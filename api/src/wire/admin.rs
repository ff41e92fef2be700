//! Administering actors: the bodies and answers of `/admin/actors` (an operator's routes), also
//! what `careledger actors` sends with `--url` and checks on the data directory without it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use careledger_app::actors::{
    AccessRole, ActorRecord, OidcSubject, RegisteredActor, SubscriberScope,
};
use careledger_core::ids::{ActorId, AgbCode, Text};

use super::error::WireError;
use super::scalar::Time;

/// `POST /admin/actors`: a new actor. Their token is in the answer, once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddActorBody {
    /// The actor's id (`gp-jansen`).
    pub id: String,
    /// Display name ("A. Jansen").
    pub name: String,
    /// A care role (`gp`, `cardiologist`, ...), `auditor`, `subscriber` or `operator`.
    pub role: String,
    /// The AGB code (8 digits) of the practice or hospital the actor acts for; for a
    /// subscriber, the organisation whose patients' events it sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
    /// For a patient actor (required there, refused elsewhere): the BSN they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<String>,
    /// For a subscriber: `organisation` (the default when an organisation is given) or `all`,
    /// every patient, for a hospital-wide integration engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^(all|organisation)$")]
    pub scope: Option<String>,
    /// The OpenID Connect issuer whose access tokens with `oidc_subject` act as this actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// The `sub` of those access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_subject: Option<String>,
    /// Days the token is valid (1 to 1825); 90 for people, 365 for subscribers when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

impl AddActorBody {
    /// The actor record this body describes, each value checked.
    pub fn actor(&self) -> Result<RegisteredActor, WireError> {
        let role = AccessRole::parse(&self.role).ok_or_else(|| {
            WireError::invalid(
                "role",
                format!(
                    "{:?} is not a role; use one of {}",
                    self.role,
                    AccessRole::names().join(", ")
                ),
            )
        })?;
        let id = ActorId::parse(&self.id).map_err(|e| WireError::invalid("id", e))?;
        let name = Text::new(self.name.clone()).map_err(|e| WireError::invalid("name", e))?;
        let mut actor = RegisteredActor::new(id, name, role);
        if let Some(bsn) = &self.patient {
            actor = actor
                .bound_to(super::patient_id(bsn).map_err(|e| WireError::invalid("patient", e))?);
        }
        let organisation = self
            .organisation
            .as_deref()
            .map(AgbCode::parse)
            .transpose()
            .map_err(|e| WireError::invalid("organisation", e))?;
        if let Some(agb) = &organisation {
            actor = actor.acting_for(agb.clone());
        }
        let scope = match (self.scope.as_deref(), organisation) {
            (Some("all"), _) => Some(SubscriberScope::All),
            (Some("organisation") | None, Some(agb)) if role == AccessRole::Subscriber => {
                Some(SubscriberScope::Organisation(agb))
            }
            (Some("organisation"), _) => {
                return Err(WireError::invalid(
                    "scope",
                    "a scope is a subscriber's, and a scope of organisation needs the \
                     organisation's AGB code (organisation)",
                ))
            }
            (Some(other), _) => {
                return Err(WireError::invalid(
                    "scope",
                    format!("{other:?} is not a scope; use organisation or all"),
                ))
            }
            (None, _) => None,
        };
        if let Some(scope) = scope {
            actor = actor.scoped(scope);
        }
        match (&self.oidc_issuer, &self.oidc_subject) {
            (Some(issuer), Some(subject)) => {
                actor = actor.reached_as(OidcSubject {
                    issuer: issuer.clone(),
                    subject: subject.clone(),
                });
            }
            (None, None) => {}
            _ => {
                return Err(WireError::invalid(
                    "oidc_subject",
                    "an OpenID Connect subject is given with both oidc_issuer and oidc_subject",
                ))
            }
        }
        Ok(actor)
    }
}

/// `POST /admin/actors/{id}/rotate`: a new token for the actor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateTokenBody {
    /// Days the new token is valid (1 to 1825); the role's default when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
    /// Minutes the old token is still accepted (at most a week); refused at once when left
    /// out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_minutes: Option<u32>,
}

/// A token's life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct TokenLifeView {
    /// When it was issued.
    pub issued_at: Time,
    /// When it expires; `null` for a token issued before tokens expired (rotate it).
    pub expires_at: Option<Time>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Time>,
    /// Who revoked it.
    pub revoked_by: Option<String>,
    /// When it (or the actor's OpenID Connect subject) was last accepted.
    pub last_used_at: Option<Time>,
    /// Until when the token a rotation replaced is still accepted, while a grace period runs.
    pub previous_valid_until: Option<Time>,
}

/// An actor record as an operator sees it (never the token).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct AdminActorView {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: String,
    /// The AGB code of the organisation acted for.
    pub organisation: Option<String>,
    /// A patient actor's BSN.
    pub patient: Option<String>,
    /// A subscriber's scope: `organisation` (its organisation's patients) or `all`.
    pub scope: Option<String>,
    /// The OpenID Connect issuer the actor is reached by.
    pub oidc_issuer: Option<String>,
    /// The `sub` the actor is reached by.
    pub oidc_subject: Option<String>,
    /// Their token's life.
    pub token: TokenLifeView,
}

impl From<&ActorRecord> for AdminActorView {
    fn from(r: &ActorRecord) -> Self {
        let a = &r.actor;
        AdminActorView {
            id: a.id.to_string(),
            name: a.name.as_str().to_owned(),
            role: a.role.as_str().to_owned(),
            organisation: a.organisation.as_ref().map(|o| o.as_str().to_owned()),
            patient: a.patient.as_ref().map(|p| p.to_string()),
            scope: a.scope.as_ref().map(|s| match s {
                SubscriberScope::All => "all".to_owned(),
                SubscriberScope::Organisation(_) => "organisation".to_owned(),
            }),
            oidc_issuer: a.oidc.as_ref().map(|s| s.issuer.clone()),
            oidc_subject: a.oidc.as_ref().map(|s| s.subject.clone()),
            token: TokenLifeView {
                issued_at: r.token.issued_at.into(),
                expires_at: r.token.expires_at.map(Time::from),
                revoked_at: r.token.revoked.as_ref().map(|v| v.at.into()),
                revoked_by: r.token.revoked.as_ref().map(|v| v.by.to_string()),
                last_used_at: r.token.last_used_at.map(Time::from),
                previous_valid_until: r.previous_valid_until.map(Time::from),
            },
        }
    }
}

/// `GET /admin/actors`: every actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ActorListView {
    /// By id.
    pub actors: Vec<AdminActorView>,
}

/// A new token (`POST /admin/actors`, `POST /admin/actors/{id}/rotate`): shown this once;
/// only its hash is stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct IssuedTokenView {
    /// The bearer token.
    pub token: String,
    /// The actor's record.
    pub actor: AdminActorView,
}

/// `POST /admin/backup`: where the running server writes the backup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    /// An absolute path on the server's host, to an empty or absent directory.
    pub to: String,
}

/// A file the backup wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupFileView {
    /// Relative to the backup's directory.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
}

/// A secret in the backup: store the copy accordingly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupSecretView {
    /// The file or directory, relative to the backup.
    pub path: String,
    /// What it is and what someone holding it can do.
    pub what: String,
}

/// What `POST /admin/backup` wrote, verified: the copy was opened, its chain and anchor
/// verified, its head compared with the ledger's at `ledger_size` and with the latest signed
/// checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BackupView {
    /// The backup's directory on the server's host.
    pub directory: String,
    /// Events copied: the durable head when the backup began (writes went on after it).
    pub ledger_size: u64,
    /// The head hash at that size (hex).
    pub head_hash: String,
    /// The Merkle root at that size (hex).
    pub tree_root: String,
    /// The latest signed checkpoint's size, which the copy was checked against.
    pub checkpoint_size: Option<u64>,
    /// Access log entries copied.
    pub access_log_entries: Option<u64>,
    /// Actors copied.
    pub actors: u64,
    /// True: the copy verified before this answer.
    pub verified: bool,
    /// Every file written.
    pub files: Vec<BackupFileView>,
    /// The secrets the copy holds.
    pub secrets: Vec<BackupSecretView>,
    /// What is left out, and why.
    pub left_out: Vec<String>,
}

impl From<&careledger_app::backup::BackupReport> for BackupView {
    fn from(r: &careledger_app::backup::BackupReport) -> Self {
        BackupView {
            directory: r.directory.display().to_string(),
            ledger_size: r.ledger_size,
            head_hash: r.head_hash.to_hex(),
            tree_root: r.tree_root.clone(),
            checkpoint_size: r.checkpoint_size,
            access_log_entries: r.access_log_entries,
            actors: r.actors,
            verified: true,
            files: r
                .files
                .iter()
                .map(|(path, bytes)| BackupFileView {
                    path: path.clone(),
                    bytes: *bytes,
                })
                .collect(),
            secrets: r
                .secrets
                .iter()
                .map(|s| BackupSecretView {
                    path: s.path.into(),
                    what: s.what.into(),
                })
                .collect(),
            left_out: r.left_out.clone(),
        }
    }
}
