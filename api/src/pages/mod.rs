//! The pages clinicians and patients read, rendered on the server with maud: the practitioner's
//! patients, a patient's plan at a glance with a chart per measure, the timeline, the
//! notification inbox with its forms, the patient's own page, and `/docs`.
//!
//! Routes live under `/ui/...`. Sign-in (a careledger token, or the identity provider's
//! authorization-code flow with PKCE: [`oidc_login`]) makes a server-side session ([`session`]); every page
//! request authenticates the session's token again, goes through the same authorisation as the
//! API (`App::may_read`, `App::with_view`), is recorded in the access log by the same middleware
//! (a cookie-session request is attributed to its actor) and counts against the same per-token
//! rate limit. Every form posts through `App::append` or `App::acknowledge`, carries the
//! session's CSRF token, and answers a refusal in words from `careledger_projections::labels`.
//!
//! Every page carries a strict Content-Security-Policy; CSS is embedded in the binary and served
//! from `/ui/static/`; nothing loads from another host.

pub mod docs;
pub mod forms;
pub mod inbox;
pub mod layout;
pub mod oidc_login;
pub mod patients;
pub mod plan;
pub mod proof;
pub mod session;
pub mod timeline;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use careledger_app::actors::RegisteredActor;
use careledger_projections::labels::Lang;

use crate::error::ApiError;
use crate::state::AppState;

/// The pages' Content-Security-Policy: nothing but this server's own style sheet, images and
/// script; forms post only here; no framing; no `<base>`.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The embedded style sheet (screen and print).
const STYLE_CSS: &str = include_str!("static/style.css");

/// Whether a path is one of the pages' (authenticated by the session cookie, not a bearer token).
pub(crate) fn is_page(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The pages' routes; the router records them in the access log like the API's.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/docs", get(docs::docs))
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/static/style.css", get(style))
        .route("/ui/signin", get(forms::signin_form).post(forms::signin))
        .route("/ui/signin/oidc", get(oidc_login::start))
        .route("/ui/signin/oidc/callback", get(oidc_login::callback))
        .route("/ui/signout", post(forms::signout))
        .route("/ui/patients", get(patients::list))
        .route("/ui/patients/{patient}", get(plan::plan_page))
        .route("/ui/patients/{patient}/timeline", get(timeline::timeline))
        .route(
            "/ui/patients/{patient}/proof/{position}",
            get(proof::proof_page),
        )
        .route("/ui/patients/{patient}/inbox", get(inbox::inbox))
        .route(
            "/ui/patients/{patient}/notifications/{notification}/acknowledge",
            post(forms::acknowledge),
        )
        .route("/ui/patients/{patient}/notes", post(forms::add_note))
        .route(
            "/ui/patients/{patient}/measurements",
            post(forms::record_measurement),
        )
        .route(
            "/ui/patients/{patient}/medications/{atc}/stop",
            post(forms::stop_medication),
        )
        .route("/ui/patients/{patient}/targets", post(forms::set_target))
}

/// `GET /`: a browser (`Accept: text/html`) is sent to the pages; anything else gets the API's
/// problem as before.
async fn root(headers: HeaderMap) -> Response {
    if wants_html(&headers) {
        return Redirect::to("/ui").into_response();
    }
    ApiError::NotFound(
        "no resource at /; the API is described at /openapi.json, the pages are at /ui".into(),
    )
    .into_response()
}

/// True when the request's `Accept` names HTML.
pub(crate) fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// `GET /ui`: the signed-in reader's start page: a practitioner's patients, a patient's own
/// plan; the sign-in form otherwise.
async fn home(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session::authenticate(&headers, &state).await {
        Err(_) => Redirect::to("/ui/signin").into_response(),
        Ok((actor, _, _)) => match &actor.patient {
            Some(own) => Redirect::to(&format!("/ui/patients/{}", own.as_str())).into_response(),
            None => Redirect::to("/ui/patients").into_response(),
        },
    }
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE_CSS,
    )
        .into_response()
}

/// The reader's language: `?lang=` first (remembered in a cookie), then the cookie, then Dutch.
#[derive(Clone, Copy, Debug)]
pub struct PageLang {
    /// The language.
    pub lang: Lang,
    /// True when `?lang=` chose it: the answer sets the cookie.
    pub chosen: bool,
}

impl PageLang {
    fn of(parts: &Parts) -> PageLang {
        let asked = parts.uri.query().and_then(|q| {
            q.split('&')
                .find_map(|p| p.strip_prefix("lang="))
                .and_then(Lang::parse)
        });
        match asked {
            Some(lang) => PageLang { lang, chosen: true },
            None => PageLang {
                lang: session::cookie(&parts.headers, session::LANG_COOKIE)
                    .and_then(Lang::parse)
                    .unwrap_or_default(),
                chosen: false,
            },
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PageLang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PageLang::of(parts))
    }
}

/// A signed-in reader of a page: the actor their session's token authenticates, the session's
/// CSRF token, and their language. A request without a live session is sent to sign in.
pub struct Reader {
    /// The actor.
    pub caller: RegisteredActor,
    /// The session's CSRF token, for the forms on the page.
    pub csrf: String,
    /// The language.
    pub lang: PageLang,
    /// Whether the session cookie is `Secure`.
    pub secure: bool,
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let lang = PageLang::of(parts);
        let (caller, csrf) = match session::authenticate(&parts.headers, state).await {
            Ok((actor, _, session)) => (actor, session.csrf),
            Err(_) => {
                // Gone, expired or its token refused: sign in again, and say why.
                let mut response = Redirect::to("/ui/signin?ended=1").into_response();
                clear_session_cookie(&mut response, state.secure_cookies());
                return Err(response);
            }
        };
        // A session's request counts against its token's rate, as the API's do.
        if let Err(e) = state.guards.admit(&caller.id) {
            return Err(error_page(lang.lang, &e));
        }
        Ok(Reader {
            caller,
            csrf,
            lang,
            secure: state.secure_cookies(),
        })
    }
}

/// Removes the session cookie in `response`.
pub(crate) fn clear_session_cookie(response: &mut Response, secure: bool) {
    if let Ok(v) =
        HeaderValue::from_str(&session::set_cookie(session::SESSION_COOKIE, "", 0, secure))
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// An HTML answer with the pages' headers: the CSP, no caching, the language cookie when
/// `?lang=` chose it.
pub(crate) fn html(status: StatusCode, lang: PageLang, markup: maud::Markup) -> Response {
    let mut response = (status, markup).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if lang.chosen {
        // The language is no secret and not a session: a year, readable by no script all the same.
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000",
            session::LANG_COOKIE,
            lang.lang.tag()
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    response
}

/// A refusal or failure as a page, in the reader's words: the rule's label with the ledger's
/// sentence for the detail.
pub(crate) fn error_page(lang: Lang, error: &ApiError) -> Response {
    refusal_page(lang, error, "/ui")
}

/// [`error_page`], with a link back to the page the refused form was on.
pub(crate) fn refusal_page(lang: Lang, error: &ApiError, back: &str) -> Response {
    let problem = error.problem();
    let text = careledger_projections::labels::refusal(&problem.code, &problem.detail, lang);
    let title = lang.pick("Niet gelukt", "Not done");
    let markup = layout::bare(
        lang,
        title,
        maud::html! {
            h1 { (title) }
            p.refusal role="alert" { (text) }
            p { a href=(back) { (lang.pick("Terug", "Back")) } }
        },
    );
    html(
        error.status(),
        PageLang {
            lang,
            chosen: false,
        },
        markup,
    )
}
