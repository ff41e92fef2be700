//! The forms: sign-in and sign-out, and the actions a clinician or patient takes while reading
//! (acknowledge a notification, add a note or letter, record a measurement, stop a medication,
//! set a target). Each write is the API's: the form's fields become the same JSON command body
//! the API parses (`wire::parse_append_body`), written through `App::append` or
//! `App::acknowledge` under the same rules. A refusal is shown in words; a success redirects
//! (POST-redirect-GET).
//!
//! CSRF: every form carries the session's token in a hidden `csrf` field, and the sign-in form
//! a value that must match its double-submit cookie; a request whose `Origin` names another
//! origin is refused.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde_json::{json, Value};

use careledger_app::Write;
use careledger_core::ExpectedRevision;
use careledger_projections::labels::Lang;

use super::session::{self, SESSION_COOKIE, SIGNIN_COOKIE};
use super::{error_page, html, layout, refusal_page, PageLang, Reader};
use crate::error::ApiError;
use crate::routes::blocking_write;
use crate::state::AppState;
use crate::wire;

/// The fields of a posted form.
type Fields = HashMap<String, String>;

/// Refuses a form whose `Origin` names another origin than this server's: the public address
/// when one is set, else the `Host` the request was sent to.
fn same_origin(headers: &HeaderMap, state: &AppState) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        // Browsers send Origin with every POST; its absence is judged by the CSRF token alone.
        return true;
    };
    if let Some(public) = state.public_url.as_deref() {
        return origin.eq_ignore_ascii_case(public);
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// The CSRF refusal, as a page (403).
fn forged(lang: Lang) -> Response {
    let error = ApiError::NotPermitted {
        code: "csrf".into(),
        message: String::new(),
    };
    error_page(lang, &error)
}

/// Checks a signed-in reader's form (same origin, the session's CSRF token): the refusal when
/// it fails.
fn check_form(
    reader: &Reader,
    headers: &HeaderMap,
    state: &AppState,
    fields: &Fields,
) -> Option<Response> {
    let token = fields.get("csrf").map_or("", String::as_str);
    if !same_origin(headers, state) || !session::same_secret(token, &reader.csrf) {
        return Some(forged(reader.lang.lang));
    }
    None
}

/// `GET /ui/signin`: the sign-in form, with a fresh double-submit value.
pub async fn signin_form(
    State(state): State<AppState>,
    lang: PageLang,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let ended = query.as_deref().is_some_and(|q| q.contains("ended=1"));
    signin_page(&state, lang, StatusCode::OK, ended, None)
}

fn signin_page(
    state: &AppState,
    lang: PageLang,
    status: StatusCode,
    ended: bool,
    refusal: Option<String>,
) -> Response {
    let l = lang.lang;
    let check = match session::random_hex() {
        Ok(check) => check,
        Err(e) => return error_page(l, &ApiError::from(e)),
    };
    let title = l.pick("Aanmelden", "Sign in");
    let markup = layout::bare(
        l,
        title,
        html! {
            h1 { (title) }
            @if ended {
                p.refusal role="status" {
                    (l.pick("Uw sessie is beëindigd (afgemeld, verlopen of het token is ingetrokken). Meld u opnieuw aan.",
                            "Your session has ended (signed out, expired, or its token was revoked). Sign in again."))
                }
            }
            @if let Some(text) = &refusal {
                p.refusal role="alert" { (text) }
            }
            form method="post" action="/ui/signin" {
                input type="hidden" name="check" value=(check);
                label for="token" { (l.pick("Uw careledger-token", "Your careledger token")) }
                input #token type="password" name="token" autocomplete="current-password" required;
                p.muted { (l.pick(
                    "Het token staat niet in de pagina of de cookie: de server bewaart het bij uw sessie tot u zich afmeldt of de server herstart.",
                    "The token is kept neither in the page nor in the cookie: the server keeps it with your session until you sign out or the server restarts.")) }
                button type="submit" { (title) }
            }
            @if let Some(oidc) = &state.oidc {
                @if state.oidc_login.is_some() {
                    p {
                        a #oidc href="/ui/signin/oidc" {
                            (l.pick("Aanmelden via ", "Sign in with ")) (oidc.config().issuer)
                        }
                    }
                }
            }
        },
    );
    let mut response = html(status, lang, markup);
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        SIGNIN_COOKIE,
        &check,
        600,
        state.secure_cookies(),
    )) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

/// `POST /ui/signin`: a careledger token into a session.
pub async fn signin(
    State(state): State<AppState>,
    lang: PageLang,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    let l = lang.lang;
    let cookie = session::cookie(&headers, SIGNIN_COOKIE).unwrap_or("");
    let check = fields.get("check").map_or("", String::as_str);
    if !same_origin(&headers, &state) || cookie.is_empty() || !session::same_secret(cookie, check) {
        return forged(l);
    }
    let token = fields.get("token").map_or("", |t| t.trim()).to_owned();
    if let Err(e) = state.app.authenticate(&token) {
        let text = l
            .pick(
                "Dit token wordt niet aanvaard",
                "This token is not accepted",
            )
            .to_owned();
        let problem = ApiError::from(e).problem();
        return signin_page(
            &state,
            lang,
            StatusCode::UNAUTHORIZED,
            false,
            Some(format!("{text}: {}", problem.detail)),
        );
    }
    // A new session id on every sign-in; the one this browser held before ends.
    if let Some((old, _)) = session::session_of(&headers, &state) {
        state.sessions.end(&old);
    }
    let id = match state.sessions.start(token) {
        Ok(id) => id,
        Err(e) => return error_page(l, &ApiError::from(e)),
    };
    let mut response = Redirect::to("/ui").into_response();
    let secure = state.secure_cookies();
    for cookie in [
        session::set_cookie(
            SESSION_COOKIE,
            &id,
            session::SESSION_LIFETIME.as_secs(),
            secure,
        ),
        session::set_cookie(SIGNIN_COOKIE, "", 0, secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// `POST /ui/signout`: ends the session.
pub async fn signout(
    State(state): State<AppState>,
    reader: Reader,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some(refused) = check_form(&reader, &headers, &state, &fields) {
        return refused;
    }
    if let Some((id, _)) = session::session_of(&headers, &state) {
        state.sessions.end(&id);
    }
    let mut response = Redirect::to("/ui/signin").into_response();
    super::clear_session_cookie(&mut response, reader.secure);
    response
}

/// Writes one command, given as the API's JSON command object, for the reader; redirects to
/// `back` with `done=1`, or answers the refusal in words.
async fn write(
    state: &AppState,
    reader: Reader,
    patient: &str,
    command: Value,
    back: &str,
) -> Response {
    let lang = reader.lang.lang;
    match write_command(state, reader, patient, command).await {
        Ok(()) => Redirect::to(&format!("{back}?done=1")).into_response(),
        Err(e) => refusal_page(lang, &e, back),
    }
}

async fn write_command(
    state: &AppState,
    reader: Reader,
    patient: &str,
    command: Value,
) -> Result<(), ApiError> {
    let patient = wire::patient_id(patient)?;
    let acting = state.app.may_write(&reader.caller, &patient)?.line();
    let body = serde_json::to_vec(&json!({ "commands": [command] }))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (expected, submissions) = wire::parse_append_body(&body, acting)?;
    let write = Write {
        patient,
        expected: expected.unwrap_or(ExpectedRevision::Any),
        submissions,
        idempotency_key: None,
    };
    let app = state.app.clone();
    let caller = reader.caller;
    // The page it redirects to waits for the read models to show the write (`caught_up`).
    blocking_write(move || Ok(app.append(&caller, write)?)).await?;
    Ok(())
}

/// The field, trimmed; empty when absent.
fn field<'f>(fields: &'f Fields, name: &str) -> &'f str {
    fields.get(name).map_or("", |v| v.trim())
}

/// The optional text field as JSON: absent when empty.
fn optional(fields: &Fields, name: &str) -> Value {
    match field(fields, name) {
        "" => Value::Null,
        v => Value::String(v.to_owned()),
    }
}

/// Drops the JSON nulls of a command object, as the API reads an absent field.
fn command(mut value: Value) -> Value {
    if let Value::Object(map) = &mut value {
        map.retain(|_, v| !v.is_null());
    }
    value
}

/// `POST /ui/patients/{patient}/notifications/{notification}/acknowledge`.
pub async fn acknowledge(
    State(state): State<AppState>,
    reader: Reader,
    headers: HeaderMap,
    Path((patient, notification)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some(refused) = check_form(&reader, &headers, &state, &fields) {
        return refused;
    }
    let lang = reader.lang.lang;
    let back = format!("/ui/patients/{patient}/inbox");
    let result = async {
        let patient = wire::patient_id(&patient)?;
        let app = state.app.clone();
        let caller = reader.caller;
        blocking_write(move || {
            Ok(app.acknowledge(&caller, patient, &notification, ExpectedRevision::Any, None)?)
        })
        .await?;
        Ok::<(), ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("{back}?done=1")).into_response(),
        Err(e) => refusal_page(lang, &e, &back),
    }
}

/// `POST /ui/patients/{patient}/notes`: a note, or a letter from a practitioner.
pub async fn add_note(
    State(state): State<AppState>,
    reader: Reader,
    headers: HeaderMap,
    Path(patient): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some(refused) = check_form(&reader, &headers, &state, &fields) {
        return refused;
    }
    let c = command(json!({
        "type": "add_note",
        "kind": optional(&fields, "kind"),
        "subject": field(&fields, "subject"),
        "body": optional(&fields, "body"),
        "reason": optional(&fields, "reason"),
    }));
    let back = format!("/ui/patients/{patient}");
    write(&state, reader, &patient, c, &back).await
}

/// The unit the API takes for a measure chosen on a form (empty for an unknown measure, which
/// the API then names).
fn unit_of(measure: &str) -> &'static str {
    careledger_core::quantity::Measure::parse(measure).map_or("", |m| m.unit())
}

/// `POST /ui/patients/{patient}/measurements`: a reading; a patient's is taken at home.
pub async fn record_measurement(
    State(state): State<AppState>,
    reader: Reader,
    headers: HeaderMap,
    Path(patient): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some(refused) = check_form(&reader, &headers, &state, &fields) {
        return refused;
    }
    let measure = field(&fields, "measure");
    let unit = unit_of(measure);
    // A decimal comma is how Dutch readers type a value.
    let value = field(&fields, "value").replace(',', ".");
    let source = match field(&fields, "source") {
        "" if reader.caller.patient.is_some() => "self_measured_at_home",
        "" => "practice",
        s => s,
    }
    .to_owned();
    let c = command(json!({
        "type": "record_measurement",
        "measure": measure,
        "value": value,
        "unit": unit,
        "source": source,
        "reason": optional(&fields, "reason"),
    }));
    let back = format!("/ui/patients/{patient}");
    write(&state, reader, &patient, c, &back).await
}

/// `POST /ui/patients/{patient}/medications/{atc}/stop`: agreement 4 applies across lines.
pub async fn stop_medication(
    State(state): State<AppState>,
    reader: Reader,
    headers: HeaderMap,
    Path((patient, atc)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some(refused) = check_form(&reader, &headers, &state, &fields) {
        return refused;
    }
    let c = command(json!({
        "type": "stop_medication",
        "atc": atc,
        "change_reason": field(&fields, "change_reason"),
        "change_reason_text": optional(&fields, "change_reason_text"),
        "reason": optional(&fields, "reason"),
    }));
    let back = format!("/ui/patients/{patient}");
    write(&state, reader, &patient, c, &back).await
}

/// `POST /ui/patients/{patient}/targets`: a target, where the role allows.
pub async fn set_target(
    State(state): State<AppState>,
    reader: Reader,
    headers: HeaderMap,
    Path(patient): Path<String>,
    Form(fields): Form<Fields>,
) -> Response {
    if let Some(refused) = check_form(&reader, &headers, &state, &fields) {
        return refused;
    }
    let measure = field(&fields, "measure");
    let unit = unit_of(measure);
    let c = command(json!({
        "type": "set_target",
        "measure": measure,
        "comparator": field(&fields, "comparator"),
        "value": field(&fields, "value").replace(',', "."),
        "unit": unit,
        "basis": field(&fields, "basis"),
        "rationale": optional(&fields, "rationale"),
        "reason": optional(&fields, "reason"),
    }));
    let back = format!("/ui/patients/{patient}");
    write(&state, reader, &patient, c, &back).await
}
