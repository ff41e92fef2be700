//! The HTTP API: routes, authentication, permissions and the SSE subscription.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

use careledger_core::ids::{ActorId, PatientId};
use careledger_core::notify;
use careledger_core::quantity::Measure;
use careledger_core::record::Timestamp;
use careledger_core::role::{Line, Role};
use careledger_core::{AppendRequest, ExpectedRevision, Ledger, RecordedEvent};
use careledger_projections::audit::{self, AuditFilter};
use careledger_projections::notifications::{self, Which};
use careledger_projections::{signals, Projections};

use crate::actors::{ActorStore, ApiActor, ApiRole};
use crate::dto;
use crate::error::ApiError;
use crate::view;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Time limit of ordinary requests (not of the SSE stream).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an idle SSE connection gets a heartbeat comment.
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// Largest page of the global log.
pub const MAX_PAGE: usize = 1000;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The ledger.
    pub ledger: Arc<Ledger>,
    /// The read models.
    pub projections: Arc<Projections>,
    /// Actors and tokens.
    pub actors: Arc<ActorStore>,
    /// The durable position, updated after every group commit.
    pub durable: watch::Receiver<u64>,
    /// Turns true when the server shuts down, so that open SSE streams end.
    pub shutdown: watch::Receiver<bool>,
    /// Recently durable events, encoded once for all subscribers.
    pub feed: Arc<Feed>,
    /// Rendered plans, reused until the patient's next event.
    plans: Arc<PlanCache>,
    shutdown_tx: Arc<watch::Sender<bool>>,
}

impl AppState {
    /// Wires the state: the ledger's durable listener feeds the watch channel.
    pub fn new(
        ledger: Arc<Ledger>,
        projections: Arc<Projections>,
        actors: Arc<ActorStore>,
    ) -> Self {
        let (tx, rx) = watch::channel(ledger.head().position);
        ledger.on_durable(move |position| {
            tx.send_if_modified(|current| {
                let newer = position > *current;
                if newer {
                    *current = position;
                }
                newer
            });
        });
        let (shutdown_tx, shutdown) = watch::channel(false);
        let feed = Arc::new(Feed::new(ledger.head().position));
        Self {
            ledger,
            projections,
            actors,
            durable: rx,
            shutdown,
            shutdown_tx: Arc::new(shutdown_tx),
            feed,
            plans: Arc::new(PlanCache::default()),
        }
    }

    /// Ends the open SSE streams; in-flight requests finish.
    pub fn begin_shutdown(&self) {
        self.shutdown_tx.send_replace(true);
    }
}

/// The router with every route, limits and timeouts.
pub fn app(state: AppState) -> Router {
    use tower_http::timeout::TimeoutLayer;
    let normal = Router::new()
        .route("/health", get(health))
        .route("/openapi.json", get(openapi))
        .route("/verify", get(verify))
        .route("/events", get(global_log))
        .route(
            "/patients/{patient}/events",
            post(append).get(patient_events),
        )
        .route("/patients/{patient}/plan", get(plan))
        .route("/patients/{patient}/audit", get(audit_trail))
        .route("/patients/{patient}/signals", get(patient_signals))
        .route(
            "/patients/{patient}/measures/{measure}",
            get(measure_series),
        )
        .route(
            "/patients/{patient}/notifications",
            get(patient_notifications),
        )
        .route(
            "/patients/{patient}/notifications/{notification}/ack",
            post(acknowledge),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    Router::new()
        .route("/events/stream", get(stream))
        .merge(normal)
        .fallback(|| async { ApiError::NotFound("no such route; see /openapi.json".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::NotFound("this route does not take that method; see /openapi.json".into())
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Request spans at DEBUG: the default INFO level logs no paths (they name patients).
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(
                    tower_http::trace::DefaultMakeSpan::new().level(tracing::Level::DEBUG),
                )
                .on_response(
                    tower_http::trace::DefaultOnResponse::new().level(tracing::Level::DEBUG),
                ),
        )
        .with_state(state)
}

/// The authenticated caller.
pub struct Caller(pub ApiActor);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(header::AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthenticated("send an Authorization: Bearer <token> header; `careledger actors add` creates a token".into())
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "the Authorization header must be \"Bearer <token>\"".into(),
                )
            })?;
        state
            .actors
            .authenticate(token.trim())
            .map(Caller)
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "the bearer token is not known; ask the operator for a new one".into(),
                )
            })
    }
}

/// A caller who may read the patient named in the path (`/patients/{patient}/...`).
pub struct Readable {
    /// The caller.
    pub caller: ApiActor,
    /// The patient.
    pub patient: PatientId,
}

impl FromRequestParts<AppState> for Readable {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Caller(caller) = Caller::from_request_parts(parts, state).await?;
        let Path(params) = Path::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::Malformed(e.to_string()))?;
        let raw = params
            .iter()
            .find(|(name, _)| name == "patient")
            .map(|(_, value)| value.as_str())
            .ok_or_else(|| ApiError::NotFound("no patient in this path".into()))?;
        let patient = dto::patient(raw)?;
        may_read(state, &caller, &patient)?;
        Ok(Readable { caller, patient })
    }
}

fn forbidden() -> ApiError {
    ApiError::not_in_care_team()
}

/// True when a care-role caller is in the patient's care team (from the plan read model).
fn in_care_team(state: &AppState, caller: &ApiActor, patient: &PatientId) -> bool {
    let model = state.projections.read();
    model.patient(patient).is_some_and(|v| {
        v.plan
            .care_team
            .iter()
            .any(|m| m.actor == caller.id && ApiRole::Care(m.role) == caller.role)
    })
}

/// May the caller read this patient? Auditors read everything; care roles their own patients.
fn may_read(state: &AppState, caller: &ApiActor, patient: &PatientId) -> Result<(), ApiError> {
    match caller.role {
        ApiRole::Auditor => Ok(()),
        ApiRole::Subscriber => Err(ApiError::Forbidden(
            "a subscriber reads the event stream (/events) only".into(),
        )),
        // The care group's administrator corrects wrongly founded teams and must see them.
        ApiRole::Care(Role::CareGroupAdmin) => Ok(()),
        ApiRole::Care(_) if is_self(caller, patient) && in_care_team(state, caller, patient) => {
            Ok(())
        }
        ApiRole::Care(_) => Err(forbidden()),
    }
}

/// A patient actor is only ever the patient they are bound to; other actors are bound to none.
fn is_self(caller: &ApiActor, patient: &PatientId) -> bool {
    caller.role != ApiRole::Care(Role::Patient) || caller.patient.as_ref() == Some(patient)
}

/// The actor registry's part of agreement 1: a member is a registered actor, added in the role
/// they hold, and a patient actor joins only their own care team. Checked before the append, as
/// `decide` knows nothing of the registry.
fn check_members_are_registered(
    actors: &ActorStore,
    patient: &PatientId,
    submissions: &[careledger_core::Submission],
) -> Result<(), ApiError> {
    for submission in submissions {
        let careledger_core::event::Command::AddCareTeamMember(m) = &submission.command else {
            continue;
        };
        let refuse = |code: &str, message: String| ApiError::Unprocessable {
            code: code.into(),
            message,
        };
        let Some(registered) = actors.get(&m.actor)? else {
            return Err(refuse(
                "unknown_actor",
                format!(
                    "{} is not a registered actor; the operator registers them first \
                     (careledger actors add --id {} --role {} ...)",
                    m.actor,
                    m.actor,
                    m.role.as_str()
                ),
            ));
        };
        if registered.role != ApiRole::Care(m.role) {
            return Err(refuse(
                "role_not_held",
                format!(
                    "{} is registered as {}, not as {}; add them in the role they hold",
                    m.actor,
                    registered.role.as_str(),
                    m.role.as_str()
                ),
            ));
        }
        if m.role == Role::Patient && registered.patient.as_ref() != Some(patient) {
            return Err(refuse(
                "patient_of_another_record",
                format!(
                    "{} is a patient actor bound to another patient; a patient joins only their \
                     own care team",
                    m.actor
                ),
            ));
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("worker failed: {e}")))?
}

/// 200 while the ledger takes writes; 503 with the reason class (`damaged`: acknowledged
/// events missing or changed, found on open or by comparing the stored head with the anchor's
/// last entry; `storage`: a storage failure, which clears by itself once the cause is removed).
async fn health(State(state): State<AppState>) -> Response {
    let head = state.ledger.head();
    let ledger = state.ledger.clone();
    let checked = tokio::task::spawn_blocking(move || ledger.health()).await;
    let failure = match checked {
        Ok(result) => result.err(),
        Err(e) => Some(careledger_core::Error::Storage(
            format!("health check failed: {e}").into(),
        )),
    };
    match failure {
        None => Json(json!({"status": "ok", "head_position": head.position, "head_hash": head.hash.to_hex()})).into_response(),
        Some(careledger_core::Error::Damaged(damage)) => {
            let body = json!({"status": "unhealthy", "class": "damaged", "reason": damage.to_string(),
                "head_position": head.position, "last_anchored_position": damage.last_anchored,
                "missing_events": damage.missing});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
        Some(other) => {
            let body = json!({"status": "unhealthy", "class": "storage", "reason": other.to_string(), "head_position": head.position});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}

async fn verify(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    if caller.role == ApiRole::Subscriber {
        return Err(ApiError::Forbidden(
            "a subscriber reads the event stream only".into(),
        ));
    }
    let ledger = state.ledger.clone();
    let report = blocking(move || Ok(ledger.verify(&mut |_, _| {})?)).await?;
    if let Some(problem) = &report.problem {
        return Err(ApiError::NotIntact {
            detail: problem.to_string(),
            position: problem.position,
            verified: report.verified,
        });
    }
    Ok(Json(json!({
        "intact": report.is_intact(),
        "verified": report.verified,
        "head_hash": report.head_hash.to_hex(),
        "problem": report.problem.as_ref().map(|p| json!({"position": p.position, "detail": p.to_string()})),
    })))
}

#[derive(Deserialize)]
struct PageQuery {
    after: Option<String>,
    limit: Option<String>,
    patient: Option<String>,
}

fn parse_u64(name: &str, raw: Option<&str>, default: u64) -> Result<u64, ApiError> {
    match raw {
        None => Ok(default),
        Some(r) => r.trim().parse().map_err(|_| {
            ApiError::Malformed(format!(
                "{name} must be a non-negative whole number, got {r:?}"
            ))
        }),
    }
}

/// Whether the caller may see an event of this patient in the global log.
fn visible(state: &AppState, caller: &ApiActor, patient: &PatientId) -> bool {
    match caller.role {
        ApiRole::Auditor | ApiRole::Subscriber => true,
        ApiRole::Care(Role::CareGroupAdmin) => true,
        ApiRole::Care(_) => is_self(caller, patient) && in_care_team(state, caller, patient),
    }
}

async fn global_log(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<Value>, ApiError> {
    let after = parse_u64("after", q.after.as_deref(), 0)?;
    let limit = parse_u64("limit", q.limit.as_deref(), 100)?.clamp(1, MAX_PAGE as u64) as usize;
    let patient = q.patient.as_deref().map(dto::patient).transpose()?;
    let ledger = state.ledger.clone();
    let events = blocking(move || Ok(ledger.read_all(after, limit)?)).await?;
    let next_after = events.last().map_or(after, |e| e.position);
    let events: Vec<Value> = events
        .iter()
        .filter(|e| patient.as_ref().is_none_or(|p| *p == e.record.patient))
        .filter(|e| visible(&state, &caller, &e.record.patient))
        .map(dto::recorded_event)
        .collect();
    Ok(Json(
        json!({"events": events, "next_after": next_after, "head": state.ledger.head().position}),
    ))
}

fn if_match(headers: &HeaderMap) -> Result<Option<ExpectedRevision>, ApiError> {
    headers
        .get(header::IF_MATCH)
        .map(|v| {
            let raw = v
                .to_str()
                .map_err(|_| ApiError::Malformed("If-Match must be text".into()))?;
            dto::expected_revision(raw)
        })
        .transpose()
}

fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(ApiError::UnsupportedMediaType(
            "send the body as Content-Type: application/json".into(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::Malformed(format!("the body is not valid JSON: {e}")))
}

async fn append(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(patient): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
            "the body exceeds {MAX_BODY_BYTES} bytes; send fewer commands per request"
        )),
        _ => ApiError::Malformed(format!("the body could not be read: {e}")),
    })?;
    let patient = dto::patient(&patient)?;
    let actor = caller.as_care_actor().ok_or_else(|| {
        ApiError::Forbidden(format!(
            "an {} does not write to the ledger",
            caller.role.as_str()
        ))
    })?;
    if !is_self(&caller, &patient) {
        return Err(forbidden());
    }
    let value = json_body(&headers, &body)?;
    let parsed = dto::append_body(&value, actor.line())?;
    check_members_are_registered(&state.actors, &patient, &parsed.submissions)?;
    let expected = if_match(&headers)?
        .or(parsed.expected)
        .unwrap_or(ExpectedRevision::Any);
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::Malformed("Idempotency-Key must be text".into()))
        })
        .transpose()?;
    let request = AppendRequest {
        patient,
        expected,
        actor,
        submissions: parsed.submissions,
        idempotency_key,
        correlation_id: None,
        causation_id: None,
    };
    let (ledger, projections) = (state.ledger.clone(), state.projections.clone());
    let outcome = blocking(move || {
        let outcome = ledger.append(request)?;
        // Read your writes: the plan reflects this append when the response arrives. The
        // projections persist in the background (`server::serve`). The events are durable by
        // now, so a failure here must not turn the acknowledgement into an error.
        if let Err(e) = projections.apply_new(&ledger) {
            tracing::error!(error = %e, "the read models could not apply new events; they catch up later");
        }
        Ok(outcome)
    })
    .await?;
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = json!({
        "revision": outcome.revision,
        "replayed": outcome.replayed,
        "events": outcome.events.iter().map(|e| json!({
            "position": e.position, "revision": e.revision, "event_id": e.event_id.to_string(), "hash": e.hash.to_hex()
        })).collect::<Vec<_>>(),
        "warnings": outcome.warnings.iter().map(|w| json!({"code": w.code, "message": w.message})).collect::<Vec<_>>(),
    });
    let mut response = (status, Json(body)).into_response();
    if let Ok(etag) = header::HeaderValue::from_str(&format!("\"{}\"", outcome.revision)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct StreamQuery {
    from_revision: Option<String>,
    limit: Option<String>,
}

async fn patient_events(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
    Query(q): Query<StreamQuery>,
) -> Result<Json<Value>, ApiError> {
    let from = parse_u64("from_revision", q.from_revision.as_deref(), 1)?;
    let limit = parse_u64("limit", q.limit.as_deref(), 100)?.clamp(1, MAX_PAGE as u64) as usize;
    let ledger = state.ledger.clone();
    let events = blocking(move || Ok(ledger.read_stream(&patient, from, limit)?)).await?;
    Ok(Json(
        json!({"events": events.iter().map(dto::recorded_event).collect::<Vec<_>>()}),
    ))
}

async fn plan(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
) -> Result<Response, ApiError> {
    let bytes = {
        let model = state.projections.read();
        let view = model.patient(&patient).ok_or_else(forbidden)?;
        let revision = view.plan.revision;
        match state.plans.get(&patient, revision) {
            Some(bytes) => bytes,
            None => {
                let readings = state.projections.config().trend_readings;
                let bytes = Bytes::from(view::plan(&patient, &view.plan, readings).to_string());
                state.plans.put(patient, revision, bytes.clone());
                bytes
            }
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// Plans rendered to JSON, each with the patient's revision it shows: a plan is a function of
/// the patient's events alone, so it is rendered once per change and served as shared bytes to
/// every reader until the patient's next event.
#[derive(Default)]
struct PlanCache(std::sync::RwLock<std::collections::HashMap<PatientId, (u64, Bytes)>>);

/// Plans kept at most; beyond that the cache starts again empty.
const PLAN_CACHE_ENTRIES: usize = 10_000;

impl PlanCache {
    fn get(&self, patient: &PatientId, revision: u64) -> Option<Bytes> {
        let plans = self.0.read().unwrap_or_else(|p| p.into_inner());
        plans
            .get(patient)
            .filter(|(cached, _)| *cached == revision)
            .map(|(_, bytes)| bytes.clone())
    }

    fn put(&self, patient: PatientId, revision: u64, bytes: Bytes) {
        let mut plans = self.0.write().unwrap_or_else(|p| p.into_inner());
        if plans.len() >= PLAN_CACHE_ENTRIES && !plans.contains_key(&patient) {
            plans.clear();
        }
        plans.insert(patient, (revision, bytes));
    }
}

/// `GET /patients/{patient}/measures/{measure}`: every value of one measure, in clinical order,
/// corrected ones marked; read as the plan is.
async fn measure_series(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
    Path((_, raw)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    // An unknown measure names no resource: 404, listing the measures there are.
    let measure = Measure::parse(&raw).map_err(|e| ApiError::NotFound(e.to_string()))?;
    let model = state.projections.read();
    let view = model.patient(&patient).ok_or_else(forbidden)?;
    let readings = state.projections.config().trend_readings;
    Ok(Json(view::measure_series(
        &patient, &view.plan, measure, readings,
    )))
}

#[derive(Deserialize)]
struct AuditQuery {
    element: Option<String>,
    actor: Option<String>,
    line: Option<String>,
    from: Option<String>,
    until: Option<String>,
}

fn audit_filter(q: AuditQuery) -> Result<AuditFilter, ApiError> {
    let line = q
        .line
        .map(|l| match l.as_str() {
            "first" => Ok(Line::First),
            "second" => Ok(Line::Second),
            "patient" => Ok(Line::Patient),
            other => Err(ApiError::Malformed(format!(
                "line {other:?} is unknown; use first, second or patient"
            ))),
        })
        .transpose()?;
    let time = |raw: Option<String>| raw.map(|r| Timestamp::parse_rfc3339(&r)).transpose();
    Ok(AuditFilter {
        element: q.element,
        actor: q.actor.map(|a| ActorId::parse(&a)).transpose()?,
        line,
        from: time(q.from)?,
        until: time(q.until)?,
    })
}

async fn audit_trail(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let filter = audit_filter(q)?;
    let model = state.projections.read();
    let view = model.patient(&patient).ok_or_else(forbidden)?;
    let entries: Vec<Value> = audit::query(view, &filter)
        .into_iter()
        .map(view::audit_entry)
        .collect();
    Ok(Json(
        json!({"patient": patient.as_str(), "entries": entries}),
    ))
}

async fn patient_signals(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
) -> Result<Json<Value>, ApiError> {
    let model = state.projections.read();
    let view = model.patient(&patient).ok_or_else(forbidden)?;
    let list = signals::signals(view, state.projections.config(), Timestamp::now());
    Ok(Json(
        json!({"signals": list.iter().map(view::signal).collect::<Vec<_>>()}),
    ))
}

#[derive(Deserialize)]
struct NotificationQuery {
    status: Option<String>,
}

async fn patient_notifications(
    State(state): State<AppState>,
    Readable { caller, patient }: Readable,
    Query(q): Query<NotificationQuery>,
) -> Result<Json<Value>, ApiError> {
    let which = match q.status.as_deref().unwrap_or("open") {
        "open" => Which::Open,
        "overdue" => Which::Overdue,
        "all" => Which::All,
        other => {
            return Err(ApiError::Malformed(format!(
                "status {other:?} is unknown; use open, overdue or all"
            )))
        }
    };
    let model = state.projections.read();
    let view = model.patient(&patient).ok_or_else(forbidden)?;
    let config = state.projections.config();
    let now = Timestamp::now();
    let lines: Vec<Line> = match caller.line() {
        Some(line) => vec![line],
        None => vec![Line::First, Line::Second],
    };
    let list: Vec<Value> = lines
        .into_iter()
        .flat_map(|line| notifications::for_line(view, line, which, config, now))
        .map(|n| view::notification(n, n.is_overdue(config, now)))
        .collect();
    Ok(Json(json!({"notifications": list})))
}

async fn acknowledge(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((patient, notification)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some((position, recipient)) = notify::parse_notification_id(&notification) else {
        return Err(ApiError::Malformed(format!(
            "{notification:?} is not a notification id; ids look like n-42-second (the causing \
             position and the recipient: first, second or patient)"
        )));
    };
    let mut command = json!({"type": "acknowledge_notification", "notification": position, "reason": "acknowledged"});
    if let Some(recipient) = recipient {
        command["recipient"] = json!(recipient.as_str());
    }
    let body = json!({"commands": [command]});
    let mut headers = headers;
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    append(
        State(state),
        Caller(caller),
        Path(patient),
        headers,
        Ok(Bytes::from(body.to_string())),
    )
    .await
}

/// `GET /events/stream`: Server-Sent Events from a position on, catch-up then live.
///
/// Each event is framed once (`id`, `event`, `data`) by the feed and shared by every subscriber;
/// the events that became visible since a subscriber's last wake-up go out in one write. A
/// comment line (`:heartbeat`) is sent after [`HEARTBEAT`] in which nothing was sent.
async fn stream(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    Query(q): Query<PageQuery>,
) -> Result<Response, ApiError> {
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::Malformed("Last-Event-ID must be a position".into()))
        })
        .transpose()?;
    let after = match last_event_id {
        Some(id) => parse_u64("Last-Event-ID", Some(id), 0)?,
        None => parse_u64("after", q.after.as_deref(), 0)?,
    };
    let patient = q.patient.as_deref().map(dto::patient).transpose()?;
    if let (Some(p), ApiRole::Care(_)) = (&patient, caller.role) {
        may_read(&state, &caller, p)?;
    }
    let subscription = Subscription::new(state, caller, patient, after);
    let stream = futures::stream::unfold(subscription, |mut sub| async move {
        let chunk = sub.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), sub))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}

/// A durable event encoded once for every subscriber.
pub struct FeedItem {
    position: u64,
    patient: PatientId,
    /// The whole SSE event: `id`, `event` and one `data` line (the JSON has no newlines).
    frame: Bytes,
}

impl FeedItem {
    fn of(event: &RecordedEvent) -> FeedItem {
        let data = dto::recorded_event(event).to_string();
        let kind = event.record.event.kind();
        let mut frame = Vec::with_capacity(data.len() + kind.len() + 40);
        frame.extend_from_slice(b"id: ");
        frame.extend_from_slice(event.position.to_string().as_bytes());
        frame.extend_from_slice(b"\nevent: ");
        frame.extend_from_slice(kind.as_bytes());
        frame.extend_from_slice(b"\ndata: ");
        frame.extend_from_slice(data.as_bytes());
        frame.extend_from_slice(b"\n\n");
        FeedItem {
            position: event.position,
            patient: event.record.patient.clone(),
            frame: Bytes::from(frame),
        }
    }
}

/// Recently durable events, read from the ledger and encoded once by one task
/// ([`run_feed`]) for all SSE subscribers; older positions are read from the ledger.
pub struct Feed {
    recent: std::sync::RwLock<std::collections::VecDeque<Arc<FeedItem>>>,
    fed: watch::Sender<u64>,
    active: std::sync::atomic::AtomicBool,
}

/// Events the feed keeps for subscribers that are a little behind.
const FEED_CAPACITY: usize = 8192;

impl Feed {
    fn new(position: u64) -> Self {
        Feed {
            recent: std::sync::RwLock::new(std::collections::VecDeque::new()),
            fed: watch::channel(position).0,
            active: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The items after `after`, if the feed holds `after + 1` (or nothing newer exists yet).
    fn after(&self, after: u64) -> Option<Vec<Arc<FeedItem>>> {
        let recent = self.recent.read().unwrap_or_else(|p| p.into_inner());
        let first = recent.front()?.position;
        let last = recent.back()?.position;
        if after + 1 < first {
            return None;
        }
        if after >= last {
            return Some(Vec::new());
        }
        let start = (after + 1 - first) as usize;
        Some(recent.range(start..).take(256).cloned().collect())
    }
}

/// The items after `after`: from the feed when it holds them, otherwise from the ledger.
async fn next_items(state: &AppState, after: u64) -> Option<Vec<Arc<FeedItem>>> {
    if state.feed.active.load(std::sync::atomic::Ordering::Acquire) {
        if let Some(items) = state.feed.after(after) {
            if !items.is_empty() || *state.feed.fed.borrow() <= after {
                return Some(items);
            }
        }
    }
    let ledger = state.ledger.clone();
    let events = tokio::task::spawn_blocking(move || ledger.read_all(after, 256))
        .await
        .ok()?
        .ok()?;
    Some(events.iter().map(|e| Arc::new(FeedItem::of(e))).collect())
}

/// One SSE subscriber's place in the stream.
struct Subscription {
    state: AppState,
    caller: ApiActor,
    patient: Option<PatientId>,
    /// The last position sent (or skipped as not the caller's to see).
    after: u64,
    last_sent: tokio::time::Instant,
    /// Fires [`HEARTBEAT`] after the last write. Re-armed only when it fires, so a busy stream
    /// does not touch the runtime's timers on every write.
    heartbeat: std::pin::Pin<Box<tokio::time::Sleep>>,
    fed: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
}

impl Subscription {
    /// A subscription of `caller` to the events after `after` (of `patient` only, if given).
    fn new(state: AppState, caller: ApiActor, patient: Option<PatientId>, after: u64) -> Self {
        Subscription {
            fed: state.feed.fed.subscribe(),
            shutdown: state.shutdown.clone(),
            state,
            caller,
            patient,
            after,
            last_sent: tokio::time::Instant::now(),
            heartbeat: Box::pin(tokio::time::sleep(HEARTBEAT)),
        }
    }

    /// The next bytes to send: the events visible since the last call, in one chunk, or a
    /// heartbeat after [`HEARTBEAT`] of silence; `None` ends the stream (shutdown, or the ledger
    /// could not be read).
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            // Also when events flow that this subscriber does not see (another patient's).
            if tokio::time::Instant::now() >= self.last_sent + HEARTBEAT {
                return Some(self.heartbeat());
            }
            let items = next_items(&self.state, self.after).await?;
            if items.is_empty() {
                let more = wait_for_more(
                    &self.state.feed,
                    &mut self.fed,
                    &mut self.state.durable,
                    &mut self.shutdown,
                    self.after,
                );
                tokio::select! {
                    more = more => {
                        if !more {
                            return None;
                        }
                    }
                    // Armed at the last heartbeat; the check above sends the next one when
                    // the quiet period since the last write is over.
                    () = &mut self.heartbeat => {
                        self.heartbeat.as_mut().reset(self.last_sent + HEARTBEAT);
                    }
                }
                continue;
            }
            self.after = items.last().map_or(self.after, |e| e.position);
            let shown: Vec<&Arc<FeedItem>> = items
                .iter()
                .filter(|e| self.patient.as_ref().is_none_or(|p| *p == e.patient))
                .filter(|e| visible(&self.state, &self.caller, &e.patient))
                .collect();
            let chunk = match shown.as_slice() {
                [] => continue,
                [one] => one.frame.clone(),
                many => Bytes::from(
                    many.iter()
                        .map(|e| &e.frame[..])
                        .collect::<Vec<_>>()
                        .concat(),
                ),
            };
            return Some(self.sent(chunk));
        }
    }

    fn sent(&mut self, chunk: Bytes) -> Bytes {
        self.last_sent = tokio::time::Instant::now();
        chunk
    }

    fn heartbeat(&mut self) -> Bytes {
        let chunk = self.sent(Bytes::from_static(b":heartbeat\n\n"));
        self.heartbeat.as_mut().reset(self.last_sent + HEARTBEAT);
        chunk
    }
}

/// Waits until something after `after` may be there; false when the server shuts down.
async fn wait_for_more(
    feed: &Feed,
    fed: &mut watch::Receiver<u64>,
    durable: &mut watch::Receiver<u64>,
    shutdown: &mut watch::Receiver<bool>,
    after: u64,
) -> bool {
    if *shutdown.borrow_and_update() {
        return false;
    }
    let changed = if feed.active.load(std::sync::atomic::Ordering::Acquire) {
        if *fed.borrow_and_update() > after {
            return true;
        }
        fed.changed()
    } else {
        if *durable.borrow_and_update() > after {
            return true;
        }
        durable.changed()
    };
    tokio::select! {
        changed = changed => changed.is_ok(),
        _ = shutdown.changed() => false,
    }
}

/// Newly durable events the feed reads on its own task; a larger backlog (start-up, a burst) is
/// read on a blocking thread.
const DIRECT_READ: u64 = 64;

/// Reads each newly durable event once, encodes it, and publishes it to the subscribers.
pub async fn run_feed(state: AppState) {
    let mut durable = state.durable.clone();
    let mut fed = state.ledger.head().position;
    state.feed.fed.send_replace(fed);
    state
        .feed
        .active
        .store(true, std::sync::atomic::Ordering::Release);
    loop {
        while *durable.borrow_and_update() > fed {
            let backlog = *durable.borrow() - fed;
            let read = if backlog <= DIRECT_READ {
                // Events this process committed moments ago are in sled's cache: reading them
                // takes microseconds, while a hop to a blocking thread and back delayed every
                // subscriber (1,000 subscribers: delivery p99 20-28 -> 9-17 ms).
                Ok(state.ledger.read_all(fed, DIRECT_READ as usize))
            } else {
                let ledger = state.ledger.clone();
                let from = fed;
                tokio::task::spawn_blocking(move || ledger.read_all(from, 1024)).await
            };
            let Ok(Ok(events)) = read else {
                state
                    .feed
                    .active
                    .store(false, std::sync::atomic::Ordering::Release);
                return;
            };
            if events.is_empty() {
                break;
            }
            let items: Vec<Arc<FeedItem>> =
                events.iter().map(|e| Arc::new(FeedItem::of(e))).collect();
            fed = items.last().map_or(fed, |i| i.position);
            {
                let mut recent = state.feed.recent.write().unwrap_or_else(|p| p.into_inner());
                recent.extend(items);
                while recent.len() > FEED_CAPACITY {
                    recent.pop_front();
                }
            }
            state.feed.fed.send_replace(fed);
        }
        if durable.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use careledger_core::LedgerConfig;
    use careledger_projections::ProjectionConfig;

    /// The state of a server on an empty ledger in `dir`.
    fn empty_server(dir: &std::path::Path) -> AppState {
        let ledger = Ledger::open(&dir.join("ledger"), LedgerConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let projections = Projections::open(&dir.join("projections"), ProjectionConfig::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let actors = ActorStore::open(&dir.join("actors")).unwrap_or_else(|e| panic!("{e}"));
        AppState::new(Arc::new(ledger), Arc::new(projections), Arc::new(actors))
    }

    /// The next chunk is a heartbeat, one quiet period after `since` (the last write).
    async fn expect_heartbeat(sub: &mut Subscription, since: tokio::time::Instant) {
        assert_eq!(
            sub.next_chunk().await.as_deref(),
            Some(&b":heartbeat\n\n"[..])
        );
        let quiet = since.elapsed();
        assert!(
            quiet >= HEARTBEAT && quiet < HEARTBEAT + Duration::from_secs(1),
            "heartbeat {quiet:?} after the last write"
        );
    }

    fn subscription(state: AppState) -> Subscription {
        let caller = ApiActor::new(
            ActorId::parse("gp-system").unwrap_or_else(|e| panic!("{e}")),
            careledger_core::ids::Text::new("GP system").unwrap_or_else(|e| panic!("{e}")),
            ApiRole::Subscriber,
        );
        Subscription::new(state, caller, None, 0)
    }

    /// A subscriber that follows one patient gets its heartbeat while other patients' events
    /// flow past it: they keep its stream busy but send it nothing.
    #[tokio::test(start_paused = true)]
    async fn a_filtered_stream_gets_heartbeats_while_events_it_does_not_see_flow() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = empty_server(dir.path());
        let mut sub = subscription(state.clone());
        sub.patient = Some(PatientId::parse("patient-2").unwrap_or_else(|e| panic!("{e}")));

        let ledger = state.ledger.clone();
        let writer = tokio::spawn(async move {
            for i in 0..8 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let ledger = ledger.clone();
                let request = if i == 0 { founding() } else { note() };
                tokio::task::spawn_blocking(move || ledger.append(request))
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        });
        let started = tokio::time::Instant::now();
        expect_heartbeat(&mut sub, started).await;
        assert!(
            sub.after >= 4,
            "the other patient's events were read and passed over"
        );
        writer.await.unwrap_or_else(|e| panic!("{e}"));
    }

    fn note() -> AppendRequest {
        use careledger_core::event::{Command, Note, NoteKind};
        use careledger_core::ids::Text;
        use careledger_core::Submission;
        let text = |t: &str| Text::new(t).unwrap_or_else(|e| panic!("{e}"));
        let mut request = founding();
        request.expected = ExpectedRevision::Any;
        request.submissions = vec![Submission {
            command: Command::AddNote(Note {
                kind: NoteKind::Note,
                subject: text("CVRM follow-up"),
                body: text("Blood pressure at target."),
            }),
            occurred_at: None,
            reason: text("quarterly consultation"),
        }];
        request
    }

    fn founding() -> AppendRequest {
        use careledger_core::event::{Command, Member};
        use careledger_core::ids::Text;
        use careledger_core::role::{Lead, Practitioner, Role};
        use careledger_core::{Actor, Submission};
        let text = |t: &str| Text::new(t).unwrap_or_else(|e| panic!("{e}"));
        let gp = Actor {
            id: ActorId::parse("agb-01012345").unwrap_or_else(|e| panic!("{e}")),
            role: Role::Gp,
            name: text("Dr. J. de Vries"),
            organisation: None,
        };
        AppendRequest {
            patient: PatientId::parse("patient-1").unwrap_or_else(|e| panic!("{e}")),
            expected: ExpectedRevision::NoStream,
            submissions: vec![Submission {
                command: Command::AddCareTeamMember(Member {
                    actor: gp.id.clone(),
                    name: gp.name.clone(),
                    agb: None,
                    role: Role::Gp,
                    lead: Lead::Cvrm,
                    practitioner: Practitioner::Main,
                }),
                occurred_at: None,
                reason: text("takes on cardiovascular risk management"),
            }],
            actor: gp,
            idempotency_key: None,
            correlation_id: None,
            causation_id: None,
        }
    }

    /// The heartbeat timer is armed once per quiet period, not per write: an idle stream still
    /// gets its heartbeat after exactly [`HEARTBEAT`] of silence, and not before.
    #[tokio::test(start_paused = true)]
    async fn an_idle_stream_gets_a_heartbeat_after_the_quiet_period_and_not_before() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = empty_server(dir.path());
        let mut sub = subscription(state.clone());

        let started = tokio::time::Instant::now();
        let early =
            tokio::time::timeout(HEARTBEAT - Duration::from_secs(1), sub.next_chunk()).await;
        assert!(
            early.is_err(),
            "nothing is sent before the quiet period ends"
        );
        expect_heartbeat(&mut sub, started).await;

        // An event part-way through the next quiet period goes out at once and starts it anew:
        // the timer that fires at the old deadline is re-armed, not answered with a heartbeat.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let ledger = state.ledger.clone();
        tokio::task::spawn_blocking(move || ledger.append(founding()))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let event = sub.next_chunk().await.unwrap_or_default();
        assert!(event.starts_with(b"id: 1\n"), "{event:?}");
        let sent = tokio::time::Instant::now();
        expect_heartbeat(&mut sub, sent).await;
        state.begin_shutdown();
        assert_eq!(sub.next_chunk().await, None);
    }
}
