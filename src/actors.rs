//! `careledger actors add|list|revoke|rotate`: on a running server through its admin routes
//! (`--url`, `--token`, an operator's), or on the data directory of a stopped one, recorded as
//! done by the operator (`careledger:operator`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Subcommand;
use serde_json::Value;

use crate::remote::Remote;
use careledger_api::wire::{AddActorBody, AdminActorView, RotateTokenBody};
use careledger_app::actors::{ActorStore, MAX_TOKEN_DAYS};
use careledger_app::admin;
use careledger_app::data_dir;
use careledger_app::AppError;
use careledger_core::ids::ActorId;
use careledger_core::record::Timestamp;

/// Where the actors are: a running server, or a data directory.
#[derive(clap::Args)]
pub struct Target {
    /// The data directory (holds ledger/, projections/ and actors/); used when no --url is
    /// given, while no server runs on it.
    #[arg(long, default_value = "careledger-data", env = "CARELEDGER_DATA")]
    data: PathBuf,
    /// A running server administers its actors through its admin routes, with an operator's
    /// token.
    #[command(flatten)]
    server: crate::remote::ServerArgs,
}

/// The actor commands.
#[derive(Subcommand)]
pub enum ActorsCommand {
    /// Add an actor and print their bearer token (shown once; only its hash is stored).
    Add {
        #[command(flatten)]
        target: Target,
        /// Actor id, e.g. gp-jansen.
        #[arg(long)]
        id: String,
        /// Display name, e.g. "A. Jansen".
        #[arg(long)]
        name: String,
        /// gp, practice_nurse, practice_assistant, cardiologist, vascular_internist,
        /// elderly_care_physician, pharmacist, patient, care_group_admin, out_of_hours_gp,
        /// emergency_physician, auditor, subscriber
        /// or operator.
        #[arg(long)]
        role: String,
        /// For a patient actor (required there, refused elsewhere): the BSN of the patient they
        /// are; they join and read only that patient's care team.
        #[arg(long)]
        patient: Option<String>,
        /// The AGB code (8 digits) of the practice or hospital the actor acts for; recorded with
        /// every event they write. A subscriber sees the events of this organisation's patients.
        #[arg(long)]
        organisation: Option<String>,
        /// For a subscriber: `organisation` (the default with --organisation), or `all` for a
        /// hospital-wide integration engine that sees every patient's events.
        #[arg(long)]
        scope: Option<String>,
        /// The OpenID Connect issuer whose access tokens with --oidc-subject act as this actor.
        #[arg(long, requires = "oidc_subject")]
        oidc_issuer: Option<String>,
        /// The `sub` of those access tokens.
        #[arg(long, requires = "oidc_issuer")]
        oidc_subject: Option<String>,
        /// Days the token is valid (default 90 for people, 365 for subscribers).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_TOKEN_DAYS)))]
        expires_in_days: Option<u32>,
    },
    /// List actors with their tokens' expiry, last use and revocation (never the tokens).
    List {
        #[command(flatten)]
        target: Target,
    },
    /// Revoke an actor's token: refused from now on (within a second on a running server).
    Revoke {
        #[command(flatten)]
        target: Target,
        /// The actor's id.
        #[arg(long)]
        id: String,
    },
    /// Replace an actor's token with a new one and print it: the old one is refused at once,
    /// or after --grace-minutes.
    Rotate {
        #[command(flatten)]
        target: Target,
        /// The actor's id.
        #[arg(long)]
        id: String,
        /// Days the new token is valid (default 90 for people, 365 for subscribers).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_TOKEN_DAYS)))]
        expires_in_days: Option<u32>,
        /// Minutes the old token is still accepted, so that clients can change over.
        #[arg(long)]
        grace_minutes: Option<u32>,
    },
}

/// Runs an actor command.
pub fn run(command: ActorsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ActorsCommand::Add {
            target,
            id,
            name,
            role,
            patient,
            organisation,
            scope,
            oidc_issuer,
            oidc_subject,
            expires_in_days,
        } => {
            let body = AddActorBody {
                id,
                name,
                role,
                organisation,
                patient,
                scope,
                oidc_issuer,
                oidc_subject,
                expires_in_days,
            };
            let answer = match target.remote()? {
                Some(remote) => {
                    remote.send("POST", "/admin/actors", Some(serde_json::to_value(&body)?))?
                }
                None => {
                    let actor = body.actor().map_err(|e| anyhow!("{e}"))?;
                    let store = open_store(&target.data)?;
                    let now = Timestamp::now();
                    let expires_at = admin::expiry(actor.role, body.expires_in_days, now)?;
                    let id = actor.id.clone();
                    let token = store.issue(actor, now, expires_at)?;
                    issued_json(token, &store.record(&id)?)?
                }
            };
            print_issued(&answer, "added")
        }
        ActorsCommand::List { target } => {
            let answer = match target.remote()? {
                Some(remote) => remote.send("GET", "/admin/actors", None)?,
                None => {
                    let store = open_store(&target.data)?;
                    let actors: Vec<AdminActorView> =
                        store.records()?.iter().map(AdminActorView::from).collect();
                    serde_json::json!({ "actors": actors })
                }
            };
            for actor in answer["actors"].as_array().into_iter().flatten() {
                say!("{}", list_line(actor));
            }
            Ok(ExitCode::SUCCESS)
        }
        ActorsCommand::Revoke { target, id } => {
            let answer = match target.remote()? {
                Some(remote) => remote.send("POST", &format!("/admin/actors/{id}/revoke"), None)?,
                None => {
                    let store = open_store(&target.data)?;
                    let record = store.revoke(
                        &ActorId::parse(&id)?,
                        &careledger_core::signing_keys::operator().id,
                        Timestamp::now(),
                    )?;
                    serde_json::to_value(AdminActorView::from(&record))?
                }
            };
            say!("{}", list_line(&answer));
            eprintln!("The token of {id} is revoked; `careledger actors rotate --id {id}` issues a new one.");
            Ok(ExitCode::SUCCESS)
        }
        ActorsCommand::Rotate {
            target,
            id,
            expires_in_days,
            grace_minutes,
        } => {
            let body = RotateTokenBody {
                expires_in_days,
                grace_minutes,
            };
            let answer = match target.remote()? {
                Some(remote) => remote.send(
                    "POST",
                    &format!("/admin/actors/{id}/rotate"),
                    Some(serde_json::to_value(&body)?),
                )?,
                None => {
                    let store = open_store(&target.data)?;
                    let id = ActorId::parse(&id)?;
                    let role = store.record(&id)?.actor.role;
                    let now = Timestamp::now();
                    let expires_at = admin::expiry(role, expires_in_days, now)?;
                    let (token, record) = store.rotate(&id, now, expires_at, grace_minutes)?;
                    issued_json(token, &record)?
                }
            };
            print_issued(&answer, "given a new token")
        }
    }
}

/// Opens the actors of a data directory; one held by a running server is administered through
/// that server.
fn open_store(data: &Path) -> anyhow::Result<ActorStore> {
    ActorStore::open(&data_dir::paths(data).2).map_err(|e| match e {
        AppError::InUse(_) => anyhow!(
            "the data directory {} is in use by a running server; administer its actors through \
             it: add --url http://<its address> --token <an operator's token> (or set \
             CARELEDGER_URL and CARELEDGER_TOKEN)",
            data.display()
        ),
        other => anyhow::Error::from(other),
    })
}

fn issued_json(
    token: String,
    record: &careledger_app::actors::ActorRecord,
) -> anyhow::Result<Value> {
    Ok(serde_json::json!({ "token": token, "actor": AdminActorView::from(record) }))
}

fn print_issued(answer: &Value, what: &str) -> anyhow::Result<ExitCode> {
    let token = answer["token"]
        .as_str()
        .ok_or_else(|| anyhow!("the answer holds no token: {answer}"))?;
    say!("{token}");
    let actor = &answer["actor"];
    eprintln!(
        "Actor {} ({}) {what}; the token expires {}. It is shown once; keep it secret.",
        actor["id"].as_str().unwrap_or("?"),
        actor["role"].as_str().unwrap_or("?"),
        actor["token"]["expires_at"].as_str().unwrap_or("never")
    );
    Ok(ExitCode::SUCCESS)
}

/// One actor as a line of `actors list`.
fn list_line(actor: &Value) -> String {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let day = |v: &Value| text(v).map(|t| t.chars().take(10).collect::<String>());
    let mut extra = String::new();
    if let Some(p) = text(&actor["patient"]) {
        extra.push_str(&format!("  patient {p}"));
    }
    if let Some(o) = text(&actor["organisation"]) {
        extra.push_str(&format!("  organisation {o}"));
    }
    if let Some(s) = text(&actor["scope"]) {
        extra.push_str(&format!("  scope {s}"));
    }
    if let (Some(i), Some(s)) = (text(&actor["oidc_issuer"]), text(&actor["oidc_subject"])) {
        extra.push_str(&format!("  oidc {i} {s}"));
    }
    let token = &actor["token"];
    let state = match (text(&token["revoked_at"]), day(&token["expires_at"])) {
        (Some(at), _) => format!(
            "REVOKED {} by {}",
            at.chars().take(10).collect::<String>(),
            text(&token["revoked_by"]).unwrap_or_default()
        ),
        (None, Some(expires)) => format!("expires {expires}"),
        (None, None) => "never expires (issued before expiry; rotate it)".into(),
    };
    let used = text(&token["last_used_at"])
        .map(|t| t.chars().take(19).collect::<String>().replace('T', " "))
        .unwrap_or_else(|| "never".into());
    format!(
        "{:<24} {:<24} {:<24} {state}  last used {used}{extra}",
        actor["id"].as_str().unwrap_or("?"),
        actor["role"].as_str().unwrap_or("?"),
        actor["name"].as_str().unwrap_or("?"),
    )
}

impl Target {
    fn remote(&self) -> anyhow::Result<Option<Remote>> {
        self.server.remote("an operator's")
    }
}
