//! Events: the global log, one patient's stream, and appending commands.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use careledger_app::Write;
use careledger_core::timing::{self, Phase};
use careledger_core::{AppendOutcome, ExpectedRevision};

use crate::error::ApiError;
use crate::extract::{idempotency_key, if_match, json_bytes, Caller, Query, Readable};
use crate::routes::{blocking, blocking_write};
use crate::signature;
use crate::state::AppState;
use crate::wire::{
    self, AppendBody, AppendOutcomeView, EventPageView, PageQuery, PatientEventsView,
    ProblemDetails, StreamQuery,
};

/// A page of the global log: the events the caller may see, after a position.
///
/// Auditors and subscribers see every event; care roles the events of their own patients. Each
/// event carries its stored `frame` (base64), from which its `hash` can be computed again.
#[utoipa::path(get, path = "/events", tag = "events", security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "a page of events", body = EventPageView),
        (status = 400, description = "a parameter is not understood", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "an operator reads no patient data", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the ledger cannot be read now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn global_log(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(q): Query<PageQuery>,
) -> Result<Json<EventPageView>, ApiError> {
    state.app.may_read_log(&caller)?;
    let (after, limit, patient) = (q.after(), q.limit(), q.patient()?);
    let ledger = state.app.ledger.clone();
    let events = blocking(move || Ok(ledger.read_all_framed(after, limit)?)).await?;
    let next_after = events.last().map_or(after, |e| e.event.position);
    state.app.judges_events_through(&caller, next_after).await;
    let shown = events
        .iter()
        .filter(|e| {
            patient
                .as_ref()
                .is_none_or(|p| *p == e.event.record.patient)
        })
        .filter(|e| state.app.sees_events_of(&caller, &e.event.record.patient));
    Ok(Json(EventPageView::new(
        shown,
        next_after,
        state.app.ledger.head().position,
    )))
}

/// Appends commands to a patient's care plan, atomically.
///
/// Answers 201 once the events are durable (200 for a retry with the same `Idempotency-Key`
/// and content). A read made after the answer shows them: reads wait until the read models
/// hold every event acknowledged before the read began.
#[utoipa::path(post, path = "/patients/{patient}/events", tag = "events", security(("bearer" = [])),
    params(
        ("patient" = String, Path, description = "the patient (a BSN, or another id)", pattern = "^[A-Za-z0-9._:-]{1,64}$"),
        ("If-Match" = Option<String>, Header, description = "the expected revision: a number, \"no_stream\" or \"any\""),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and content writes once"),
        ("Signature-Input" = Option<String>, Header, description = "RFC 9421 signature parameters of a client system's signature (ed25519): covers at least \"@method\", \"@path\" and \"content-digest\" (and \"date\"), with created, keyid (a key registered with POST /actors/me/keys) and alg=\"ed25519\"; e.g. sig1=(\"@method\" \"@path\" \"content-digest\" \"date\");created=1735689600;keyid=\"his-1\";alg=\"ed25519\""),
        ("Signature" = Option<String>, Header, description = "RFC 9421 signature of the same label: sig1=:<base64 of the 64-byte ed25519 signature>:"),
        ("Content-Digest" = Option<String>, Header, description = "RFC 9530 digest of the body, required with a signature: sha-256=:<base64>:"),
    ),
    request_body(content = AppendBody, content_type = "application/json"),
    responses(
        (status = 201, description = "written and durable", body = AppendOutcomeView,
            headers(("ETag" = String, description = "the patient's revision after the write"))),
        (status = 200, description = "a retry of a write already made: its first outcome", body = AppendOutcomeView),
        (status = 400, description = "the body or a header is malformed", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token, or the request's signature is refused (unknown or revoked key, does not verify, Content-Digest does not match, created more than 300 s from the ledger's clock)", body = ProblemDetails, content_type = "application/problem+json",
            headers(("Accept-Signature" = String, description = "for a refused signature: the signature the server accepts (RFC 9421 §5.1)"))),
        (status = 403, description = "not in the care team, or a rule on who may do what refused it", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "the expected revision or the idempotency key conflicts, or the signature was used before (signature_replayed)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "the body is too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "the body is not JSON", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "a value is invalid or a rule on the plan refused it", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the ledger takes no writes now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn append(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(patient): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let patient = wire::patient_id(&patient)?;
    let acting = state.app.may_write(&caller, &patient)?.line();
    let parsing = timing::start(Phase::Parse);
    let bytes = json_bytes(&headers, body)?;
    let signed = signature::from_request(&signature::RequestParts {
        method: method.as_str(),
        path: uri.path(),
        authority: headers.get(header::HOST).and_then(|h| h.to_str().ok()),
        headers: &headers,
        body: &bytes,
    })?;
    let (expected, submissions) = wire::parse_append_body(&bytes, acting)?;
    drop(parsing);
    let write = Write {
        patient,
        expected: if_match(&headers)?
            .or(expected)
            .unwrap_or(ExpectedRevision::Any),
        submissions,
        idempotency_key: idempotency_key(&headers)?,
    };
    let app = state.app.clone();
    let outcome = blocking_write(move || match signed {
        Some(signed) => Ok(app.append_signed(&caller, write, &signed)?),
        None => Ok(app.append(&caller, write)?),
    })
    .await?;
    written(&state, outcome).await
}

/// The answer to a durable write. It does not wait for the read models (the reads that follow
/// do: [`crate::router`], `caught_up`), unless they fell more than
/// [`careledger_app::PROJECTION_LAG_LIMIT`] events behind it.
pub(crate) async fn written(
    state: &AppState,
    outcome: AppendOutcome,
) -> Result<Response, ApiError> {
    if let Some(last) = outcome.events.last() {
        state.app.keep_up(last.position).await;
    }
    let _responding = timing::start(Phase::Response);
    let status = if outcome.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = (status, Json(AppendOutcomeView::from(&outcome))).into_response();
    if let Ok(etag) = header::HeaderValue::from_str(&format!("\"{}\"", outcome.revision)) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// The patient's events, from a revision on, with their hashes and stored frames.
#[utoipa::path(get, path = "/patients/{patient}/events", tag = "events", security(("bearer" = [])),
    params(
        ("patient" = String, Path, description = "the patient (a BSN, or another id)", pattern = "^[A-Za-z0-9._:-]{1,64}$"),
        StreamQuery,
    ),
    responses(
        (status = 200, description = "the patient's events", body = PatientEventsView),
        (status = 400, description = "a parameter is not understood", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "no or an unknown token", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "not in the care team, or no such patient", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "the ledger cannot be read now", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn patient_events(
    State(state): State<AppState>,
    Readable { patient, .. }: Readable,
    Query(q): Query<StreamQuery>,
) -> Result<Json<PatientEventsView>, ApiError> {
    let (from, limit) = (q.from_revision(), q.limit());
    let ledger = state.app.ledger.clone();
    let events = blocking(move || Ok(ledger.read_stream_framed(&patient, from, limit)?)).await?;
    Ok(Json(events.iter().collect()))
}
