//! Administering actors on a running server (`/admin/actors`): an operator adds actors, lists
//! them with their tokens' lives, revokes and rotates tokens. Each change is visible to
//! authentication as soon as it is answered.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use careledger_app::admin::IssuedToken;
use careledger_core::ids::ActorId;

use crate::error::ApiError;
use crate::extract::{json_bytes, Caller};
use crate::routes::blocking;
use crate::state::AppState;
use crate::wire::{
    ActorListView, AddActorBody, AdminActorView, BackupBody, BackupView, IssuedTokenView,
    ProblemDetails, RotateTokenBody, WireError,
};

fn issued(issued: &IssuedToken) -> IssuedTokenView {
    IssuedTokenView {
        token: issued.token.clone(),
        actor: AdminActorView::from(&issued.record),
    }
}

fn actor_id(raw: &str) -> Result<ActorId, ApiError> {
    Ok(ActorId::parse(raw).map_err(|e| WireError::invalid("id", e))?)
}

/// A JSON body read into `T`; an empty body is `T::default()`.
fn body_or_default<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
    what: &str,
) -> Result<T, ApiError> {
    if body.as_ref().is_ok_and(|b| b.is_empty()) {
        return Ok(T::default());
    }
    let bytes = json_bytes(headers, body)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Malformed(format!("the body is not {what}: {e}")))
}

/// Adds an actor and answers their bearer token, shown this once (only its hash is stored).
/// Only an operator may.
#[utoipa::path(post, path = "/admin/actors", tag = "admin", security(("bearer" = [])),
    request_body(content = AddActorBody, content_type = "application/json"),
    responses(
        (status = 201, description = "added; the token is shown this once", body = IssuedTokenView),
        (status = 400, description = "the body is malformed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no token, or a refused one", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "the caller is not an operator", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "an actor with this id, or this OpenID Connect subject, exists", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "a value is invalid (role, AGB code, scope, days)", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn add_actor(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<IssuedTokenView>), ApiError> {
    careledger_app::admin::may_administer(&caller)?;
    let bytes = json_bytes(&headers, body)?;
    let body: AddActorBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Malformed(format!("the body is not an actor: {e}")))?;
    let actor = body.actor()?;
    let app = state.app.clone();
    let added = blocking(move || Ok(app.add_actor(&caller, actor, body.expires_in_days)?)).await?;
    Ok((StatusCode::CREATED, Json(issued(&added))))
}

/// Every actor with their token's life (never the tokens). Only an operator may.
#[utoipa::path(get, path = "/admin/actors", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "every actor, by id", body = ActorListView),
        (status = 401, description = "no token, or a refused one", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "the caller is not an operator", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn list_actors(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<ActorListView>, ApiError> {
    let records = state.app.actor_records(&caller)?;
    Ok(Json(ActorListView {
        actors: records.iter().map(AdminActorView::from).collect(),
    }))
}

/// Revokes an actor's token: refused from this answer on, as are the access tokens of their
/// OpenID Connect subject. A rotation issues a new one. Only an operator may.
#[utoipa::path(post, path = "/admin/actors/{id}/revoke", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "the actor's id")),
    responses(
        (status = 200, description = "revoked", body = AdminActorView),
        (status = 401, description = "no token, or a refused one", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "the caller is not an operator", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "no such actor", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "revoked already", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "the id is not an actor id", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn revoke_actor(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<AdminActorView>, ApiError> {
    careledger_app::admin::may_administer(&caller)?;
    let id = actor_id(&id)?;
    let app = state.app.clone();
    let record = blocking(move || Ok(app.revoke_actor(&caller, &id)?)).await?;
    Ok(Json(AdminActorView::from(&record)))
}

/// Replaces an actor's token with a new one, answered this once: the old one is refused from
/// this answer on, or after `grace_minutes`. A revoked actor is admitted again with the new
/// token. Only an operator may.
#[utoipa::path(post, path = "/admin/actors/{id}/rotate", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "the actor's id")),
    request_body(content = RotateTokenBody, content_type = "application/json", description = "optional: an empty body takes the defaults"),
    responses(
        (status = 200, description = "rotated; the new token is shown this once", body = IssuedTokenView),
        (status = 400, description = "the body is malformed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no token, or a refused one", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "the caller is not an operator", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "no such actor", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "a value is invalid (days, grace)", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn rotate_actor(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<IssuedTokenView>, ApiError> {
    careledger_app::admin::may_administer(&caller)?;
    let id = actor_id(&id)?;
    let body: RotateTokenBody = body_or_default(&headers, body, "a rotation")?;
    let app = state.app.clone();
    let rotated = blocking(move || {
        Ok(app.rotate_actor(&caller, &id, body.expires_in_days, body.grace_minutes)?)
    })
    .await?;
    Ok(Json(issued(&rotated)))
}

/// Backs the data directory up while the server runs: a consistent copy of the ledger up to
/// its durable head (writes go on meanwhile), the anchor, the log key, the checkpoints, the
/// actors and the access log, written into `to` on the server's host and verified (chain,
/// anchor, head, the latest signed checkpoint) before the answer. The read models are left
/// out: they are rebuilt on the first start after `careledger restore`. The answer names every
/// file and the secrets among them. Only an operator may.
#[utoipa::path(post, path = "/admin/backup", tag = "admin", security(("bearer" = [])),
    request_body(content = BackupBody, content_type = "application/json"),
    responses(
        (status = 201, description = "written and verified; what it holds, and its secrets", body = BackupView),
        (status = 400, description = "the body is malformed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no token, or a refused one", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "the caller is not an operator", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "the copy did not verify against the ledger or its checkpoint", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "`to` is not absolute (`path_not_absolute`) or not empty (`directory_not_empty`)", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn backup(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<BackupView>), ApiError> {
    let bytes = json_bytes(&headers, body)?;
    let body: BackupBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::Malformed(format!("the body is not a backup request: {e}")))?;
    let app = state.app.clone();
    let access_log = state.access_log.clone();
    let report = blocking(move || {
        Ok(app.backup(
            &caller,
            std::path::Path::new(&body.to),
            access_log.as_deref(),
        )?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(BackupView::from(&report))))
}
