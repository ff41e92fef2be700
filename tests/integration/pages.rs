//! The pages over HTTP on a loopback server: sign-in and sign-out, each page, the forms going
//! through the API's rules (a refusal shown in words), CSRF refusals, a revoked token ending
//! its sessions, and page reads in the access log under the session's actor.

use std::time::Duration;

use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::{redirect, Client, StatusCode};
use serde_json::{json, Value};

use careledger_core::ids::ActorId;
use careledger_core::record::Timestamp;

use crate::common::{serve_in_process, Fixture, Served, PATIENT};

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; \
                   form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A browser of our own: no redirects followed, cookies kept by hand.
pub struct Browser {
    client: Client,
    base: String,
    cookies: Vec<(String, String)>,
}

/// Percent-encodes a form value (application/x-www-form-urlencoded).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of the first `<input ... name="{name}" ... value="...">` in `html`.
pub fn hidden_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(rest[..rest.find('"')?].to_owned())
}

impl Browser {
    pub fn new(base: &str) -> Browser {
        Browser {
            client: Client::builder()
                .redirect(redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(SET_COOKIE) {
            let value = value.to_str().unwrap();
            let (pair, attributes) = value.split_once(';').unwrap_or((value, ""));
            let (name, v) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != name);
            if !attributes.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), v.to_owned()));
            }
        }
    }

    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// GET with the browser's cookies: status, headers, body.
    pub async fn get(&mut self, path: &str) -> (StatusCode, HeaderMap, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("accept", "text/html")
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        self.keep_cookies(&headers);
        (status, headers, response.text().await.unwrap())
    }

    /// POSTs a form, with an `Origin` header when given.
    pub async fn post(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(COOKIE, self.cookie_header())
            .body(body);
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status(), response.headers().clone());
        self.keep_cookies(&headers);
        (status, headers, response.text().await.unwrap())
    }

    /// Signs in with `token` through the form, as a browser does.
    pub async fn sign_in(&mut self, token: &str) -> (StatusCode, HeaderMap) {
        let (status, _, form) = self.get("/ui/signin").await;
        assert_eq!(status, StatusCode::OK, "{form}");
        let check = hidden_value(&form, "check").expect("the sign-in form carries its check");
        let origin = self.base.clone();
        let (status, headers, body) = self
            .post(
                "/ui/signin",
                &[("check", &check), ("token", token)],
                Some(&origin),
            )
            .await;
        let _ = body;
        (status, headers)
    }

    /// The CSRF token of the page at `path`.
    pub async fn csrf(&mut self, path: &str) -> String {
        let (status, _, page) = self.get(path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        hidden_value(&page, "csrf").expect("a signed-in page carries the session's CSRF token")
    }
}

fn location(headers: &HeaderMap) -> &str {
    headers.get(LOCATION).map_or("", |v| v.to_str().unwrap())
}

async fn served() -> (Fixture, Served) {
    let f = Fixture::with_patient().await;
    let server = serve_in_process(f.state.clone()).await;
    (f, server)
}

/// The cardiologist sets the LDL target through the API.
async fn cardiologist_sets_ldl_target(f: &Fixture) {
    let body = json!({"commands": [{"type": "set_target", "measure": "ldl", "comparator": "at_most",
        "value": "1.8", "unit": "mmol/L", "basis": "esc_guideline", "rationale": "very high risk",
        "reason": "return letter"}]});
    let (status, answer) = f.post("card-1", PATIENT, &body, &[]).await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{answer}");
}

#[tokio::test]
async fn a_browser_at_the_root_is_sent_to_the_pages_and_an_api_client_gets_a_problem() {
    let (_f, server) = served().await;
    let mut browser = Browser::new(&server.base);
    let (status, headers, _) = browser.get("/").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/ui");
    let (status, headers, _) = browser.get("/ui").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/ui/signin");
    let answer = reqwest::get(format!("{}/", server.base)).await.unwrap();
    assert_eq!(answer.status(), StatusCode::NOT_FOUND);
    assert!(answer.headers()[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/problem+json"));
    // The API keeps answering JSON, whatever the Accept.
    let (status, headers, body) = browser.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[CONTENT_TYPE].to_str().unwrap().contains("json"),
        "{body}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn signing_in_with_a_token_opens_the_pages_in_a_strict_session_and_signing_out_ends_it() {
    let (f, server) = served().await;
    let mut browser = Browser::new(&server.base);
    let (status, headers) = browser.sign_in(&f.token("gp-1")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/ui");
    let session = headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("careledger_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(
        !session.contains("Secure"),
        "plain http on loopback: {session}"
    );
    assert!(
        !session.contains(&f.token("gp-1")),
        "the token stays on the server"
    );
    assert_eq!(browser.cookie("careledger_session").unwrap().len(), 64);

    let (status, headers, _) = browser.get("/ui").await;
    assert_eq!(location(&headers), "/ui/patients", "{status}");
    let (status, headers, page) = browser.get("/ui/patients").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(headers["content-security-policy"], CSP);
    assert!(page.contains("Mijn patiënten"), "{page}");
    assert!(
        page.contains(PATIENT) && page.contains("P. de Boer"),
        "{page}"
    );
    assert!(page.contains("href=\"#main\""), "a skip link: {page}");

    let csrf = hidden_value(&page, "csrf").unwrap();
    let (status, headers, _) = browser.post("/ui/signout", &[("csrf", &csrf)], None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/ui/signin");
    assert!(browser.cookie("careledger_session").is_none());
    assert!(f.state.sessions_held() == 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_token_is_refused_on_the_sign_in_page_in_words() {
    let (_f, server) = served().await;
    let mut browser = Browser::new(&server.base);
    let (status, _) = browser.sign_in("not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(browser.cookie("careledger_session").is_none());
    // The sign-in form without its double-submit cookie is refused as forged.
    let mut other = Browser::new(&server.base);
    let (status, _, page) = other
        .post("/ui/signin", &[("check", "abc"), ("token", "x")], None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(page.contains("Dit formulier is verlopen"), "{page}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_plan_page_shows_the_cardiologists_target_with_chart_medication_and_team() {
    let (f, server) = served().await;
    cardiologist_sets_ldl_target(&f).await;
    let reading = json!({"commands": [{"type": "record_measurement", "measure": "ldl", "value": "2.4",
        "unit": "mmol/L", "source": "practice", "reason": "lab"}]});
    let (status, answer) = f.post("gp-1", PATIENT, &reading, &[]).await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{answer}");

    let mut browser = Browser::new(&server.base);
    browser.sign_in(&f.token("gp-1")).await;
    let (status, headers, page) = browser.get(&format!("/ui/patients/{PATIENT}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(headers["content-security-policy"], CSP);
    for text in [
        "LDL-cholesterol (LOINC 22748-8)",
        "≤ 1,8 mmol/L",
        "richtlijn ESC",
        "very high risk",
        "2,4 mmol/L",
        "niet behaald",
        "Dr. card-1 (cardioloog, tweede lijn)",
        "J. de Vries",
        "atorvastatin",
        "regie orgaanlijden",
        "medebehandelaar",
        "<svg",
        "stroke-dasharray",
    ] {
        assert!(page.contains(text), "{text:?} missing from the plan page");
    }
    assert!(!page.contains("mm[Hg]") && !page.contains("OrganDisease"));

    let (status, headers, page) = browser
        .get(&format!("/ui/patients/{PATIENT}?lang=en"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("≤ 1.8 mmol/L") && page.contains("Care plan of"),
        "{page}"
    );
    assert!(headers
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| v.to_str().unwrap().starts_with("careledger_lang=en")));
    // The language is remembered.
    let (_, _, page) = browser.get(&format!("/ui/patients/{PATIENT}")).await;
    assert!(page.contains("Care plan of"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_form_that_breaks_agreement_4_is_refused_in_words_and_a_permitted_stop_is_recorded() {
    let (f, server) = served().await;
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&f.token("gp-1")).await;
    let plan = format!("/ui/patients/{PATIENT}");
    let csrf = browser.csrf(&plan).await;
    let stop = format!("{plan}/medications/C10AA05/stop");
    let head = f.head();
    let (status, _, page) = browser
        .post(
            &stop,
            &[("csrf", &csrf), ("change_reason", "patient_preference")],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("Werkafspraak 4"), "{page}");
    assert_eq!(f.head(), head, "nothing was written");

    let (status, headers, _) = browser
        .post(
            &stop,
            &[
                ("csrf", &csrf),
                ("change_reason", "side_effects"),
                ("reason", "spierpijn"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), format!("{plan}?done=1"));
    let (_, _, page) = browser.get(&format!("{plan}?done=1")).await;
    assert!(page.contains("Vastgelegd."));
    assert!(
        page.contains("gestopt") && page.contains("spierpijn"),
        "{page}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_forged_form_is_refused_without_a_write() {
    let (f, server) = served().await;
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&f.token("gp-1")).await;
    let plan = format!("/ui/patients/{PATIENT}");
    let csrf = browser.csrf(&plan).await;
    let notes = format!("{plan}/notes");
    let head = f.head();
    for (fields, origin) in [
        (vec![("subject", "forged")], None),
        (
            vec![("subject", "forged"), ("csrf", "0".repeat(64).as_str())],
            None,
        ),
        (
            vec![("subject", "forged"), ("csrf", csrf.as_str())],
            Some("http://evil.example"),
        ),
    ] {
        let (status, _, page) = browser.post(&notes, &fields, origin).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
        assert!(page.contains("Dit formulier is verlopen"), "{page}");
    }
    assert_eq!(f.head(), head, "no forged form wrote anything");
    let origin = server.base.clone();
    let (status, _, _) = browser
        .post(
            &notes,
            &[("subject", "genuine"), ("csrf", &csrf)],
            Some(&origin),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(f.head(), head + 1);
    server.shutdown().await;
}

#[tokio::test]
async fn the_inbox_acknowledges_a_notification_and_the_timeline_links_each_entry_to_its_proof() {
    let (f, server) = served().await;
    // The GP stops the cardiologist's statin for side effects: the second line is told.
    let stop = json!({"commands": [{"type": "stop_medication", "atc": "C10AA05",
        "change_reason": "side_effects", "reason": "myalgia"}]});
    let (status, answer) = f.post("gp-1", PATIENT, &stop, &[]).await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{answer}");
    let position = answer["events"][0]["position"].as_u64().unwrap();

    let mut browser = Browser::new(&server.base);
    browser.sign_in(&f.token("card-1")).await;
    let inbox = format!("/ui/patients/{PATIENT}/inbox");
    let (status, _, page) = browser.get(&inbox).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("stopte atorvastatin"), "{page}");
    assert!(page.contains("bijwerkingen, myalgia"), "{page}");
    let csrf = hidden_value(&page, "csrf").unwrap();
    let ack = format!("/ui/patients/{PATIENT}/notifications/n-{position}-second/acknowledge");
    let (status, headers, _) = browser.post(&ack, &[("csrf", &csrf)], None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), format!("{inbox}?done=1"));
    let (_, _, page) = browser.get(&inbox).await;
    assert!(page.contains("bevestigd"), "{page}");
    assert!(
        !page.contains(&format!("n-{position}-second/acknowledge")),
        "an acknowledged notification has no button: {page}"
    );
    // Twice is refused, in words.
    let (status, _, page) = browser.post(&ack, &[("csrf", &csrf)], None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{page}");
    assert!(page.contains("al bevestigd"), "{page}");

    let (status, _, page) = browser
        .get(&format!("/ui/patients/{PATIENT}/timeline"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let proof_link = format!("/ui/patients/{PATIENT}/proof/{position}");
    assert!(page.contains(&proof_link), "{page}");
    let (_, stored) = f
        .get("auditor-1", &format!("/patients/{PATIENT}/events"))
        .await;
    let hash = stored["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["position"] == position)
        .map(|e| e["hash"].as_str().unwrap().to_owned())
        .unwrap();
    assert!(page.contains(&hash), "the timeline shows the stored hash");
    assert!(page.contains("bevestigd door J. de Vries"), "{page}");
    assert!(page.contains("Klinische tijd") && page.contains("Vastgelegd"));

    // The link opens the proof in the signed-in session: the event's hash, its path, and the
    // root the API's inclusion proof for the same tree reaches.
    let (status, _, proof_page) = browser.get(&proof_link).await;
    assert_eq!(status, StatusCode::OK, "{proof_page}");
    assert!(proof_page.contains(&hash), "{proof_page}");
    let size = proof_page
        .split("Boomgrootte</dt><dd>")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the page names the tree's size");
    let (_, api_proof) = f
        .get(
            "auditor-1",
            &format!("/proof/inclusion?position={position}&tree_size={size}"),
        )
        .await;
    assert!(
        proof_page.contains(api_proof["root"].as_str().unwrap()),
        "the root of the API's proof: {proof_page}"
    );
    for step in api_proof["path"].as_array().unwrap() {
        assert!(proof_page.contains(step.as_str().unwrap()), "{proof_page}");
    }
    // A position of another patient is no proof of this patient's record.
    let (status, _, refused) = browser
        .get(&format!("/ui/patients/{PATIENT}/proof/1000000"))
        .await;
    assert_ne!(status, StatusCode::OK, "{refused}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_patient_reads_their_own_plan_in_plain_language_and_records_a_home_reading() {
    let (f, server) = served().await;
    cardiologist_sets_ldl_target(&f).await;
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&f.token("patient-1")).await;
    let (_, headers, _) = browser.get("/ui").await;
    let own = format!("/ui/patients/{PATIENT}");
    assert_eq!(location(&headers), own);
    let (status, _, page) = browser.get(&own).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for text in [
        "Mijn zorgplan",
        "Uw streefwaarden",
        "streven naar ≤ 1,8 mmol/L",
        "Uw medicijnen",
        // What changed recently, in a sentence: who did what, and why.
        "Wat er recent veranderde",
        "stelde de streefwaarde voor",
    ] {
        assert!(page.contains(text), "{text:?} missing: {page}");
    }
    let csrf = hidden_value(&page, "csrf").unwrap();
    let (status, _, _) = browser
        .post(
            &format!("{own}/measurements"),
            &[
                ("csrf", &csrf),
                ("measure", "systolic_bp"),
                ("value", "142"),
            ],
            None,
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, page) = browser.get(&own).await;
    assert!(
        page.contains("142 mmHg") && page.contains("thuis gemeten"),
        "{page}"
    );
    // Not someone else's record.
    let (status, _, page) = browser.get("/ui/patients/999990019").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_revoked_token_ends_its_sessions_at_the_next_page() {
    let (f, server) = served().await;
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&f.token("gp-1")).await;
    let (status, _, _) = browser.get("/ui/patients").await;
    assert_eq!(status, StatusCode::OK);
    f.state
        .app
        .actors
        .revoke(
            &ActorId::parse("gp-1").unwrap(),
            &ActorId::parse("careledger:operator").unwrap(),
            Timestamp::now(),
        )
        .unwrap();
    let (status, headers, _) = browser.get("/ui/patients").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/ui/signin?ended=1");
    assert!(
        f.state.sessions_held() == 0,
        "the revoked token's session ended"
    );
    let (_, _, page) = browser.get("/ui/signin?ended=1").await;
    assert!(page.contains("ingetrokken"), "{page}");
    server.shutdown().await;
}

#[tokio::test]
async fn page_reads_are_in_the_access_log_under_the_sessions_actor() {
    let (f, server) = served().await;
    let mut browser = Browser::new(&server.base);
    browser.sign_in(&f.token("card-1")).await;
    let (status, _, _) = browser.get(&format!("/ui/patients/{PATIENT}")).await;
    assert_eq!(status, StatusCode::OK);
    let route = "/ui/patients/{patient}";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let entry: Value = loop {
        let (status, page) = f.get("auditor-1", "/access-log?limit=1000").await;
        assert_eq!(status, axum::http::StatusCode::OK, "{page}");
        let found = page["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["route"] == route)
            .cloned();
        if let Some(entry) = found {
            break entry;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access-log entry for the page: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(entry["who"]["id"], "card-1", "{entry}");
    assert_eq!(entry["patient"], PATIENT, "{entry}");
    assert_eq!(entry["status"], 200, "{entry}");
    assert_eq!(entry["reason"], "care_team", "{entry}");
    server.shutdown().await;
}

#[tokio::test]
async fn the_docs_page_describes_the_api_from_its_openapi_document() {
    let (_f, server) = served().await;
    let mut browser = Browser::new(&server.base);
    let (status, headers, page) = browser.get("/docs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-security-policy"], CSP);
    assert!(page.contains("GET /patients/{patient}/plan"), "{page}");
    assert!(page.contains("POST /patients/{patient}/events"), "{page}");
    assert!(!page.contains("http://") || !page.contains("<script src=\"http"));
    let (status, headers, css) = browser.get("/ui/static/style.css").await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert!(css.contains("@media print"));
    server.shutdown().await;
}

// ---- Signing in with the identity provider: authorization code with PKCE ----

const ISSUER: &str = "https://login.hospital.example/realms/care";
const AUDIENCE: &str = "careledger";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A small identity provider on loopback: `/authorize` sends the browser straight back with a
/// code (the user is taken as signed in), `/token` gives an access token for the code only with
/// the verifier whose S256 challenge came with it, `/jwks` its key.
struct Provider {
    base: String,
    handle: tokio::task::JoinHandle<()>,
}

impl Provider {
    async fn start(subject: &'static str) -> Provider {
        use axum::extract::{Form, Query};
        use axum::response::IntoResponse;
        use axum::routing::{get, post};
        use std::collections::HashMap;
        use std::sync::{Arc, Mutex};
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).unwrap();
        let key = ed25519_dalek::SigningKey::from_bytes(&secret);
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA",
            "kid": "k1", "x": b64(key.verifying_key().as_bytes())}]});
        let challenges: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let issued = challenges.clone();
        let app = axum::Router::new()
            .route(
                "/authorize",
                get(move |Query(q): Query<HashMap<String, String>>| {
                    let issued = issued.clone();
                    async move {
                        assert_eq!(q["response_type"], "code");
                        assert_eq!(q["code_challenge_method"], "S256");
                        let code = format!("code-{}", q["state"]);
                        issued
                            .lock()
                            .unwrap()
                            .insert(code.clone(), q["code_challenge"].clone());
                        axum::response::Redirect::to(&format!(
                            "{}?code={code}&state={}",
                            q["redirect_uri"], q["state"]
                        ))
                    }
                }),
            )
            .route(
                "/token",
                post(move |Form(f): Form<HashMap<String, String>>| {
                    let challenges = challenges.clone();
                    let key = key.clone();
                    async move {
                        let expected = challenges.lock().unwrap().remove(&f["code"]);
                        let challenge =
                            careledger_api::pages::oidc_login::challenge(&f["code_verifier"]);
                        if expected.as_deref() != Some(challenge.as_str()) {
                            return (StatusCode::BAD_REQUEST, "invalid_grant").into_response();
                        }
                        use ed25519_dalek::Signer;
                        let now = crate::common::unix_now();
                        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "k1"});
                        let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": subject,
                            "client_id": "careledger-pages", "iat": now, "exp": now + 300, "jti": "1"});
                        let input = format!(
                            "{}.{}",
                            b64(header.to_string().as_bytes()),
                            b64(claims.to_string().as_bytes())
                        );
                        let token =
                            format!("{input}.{}", b64(&key.sign(input.as_bytes()).to_bytes()));
                        axum::Json(json!({"access_token": token, "token_type": "Bearer",
                            "expires_in": 300}))
                        .into_response()
                    }
                }),
            )
            .route(
                "/jwks",
                get(move || {
                    let jwks = jwks.clone();
                    async move { axum::Json(jwks) }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Provider { base, handle }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_provider_signs_a_practitioner_in_with_pkce_and_a_foreign_state_is_refused() {
    let f = Fixture::with_patient().await;
    f.data
        .actors
        .add(
            careledger_app::actors::RegisteredActor::new(
                ActorId::parse("gp-oidc").unwrap(),
                careledger_core::ids::Text::new("A. Jansen").unwrap(),
                careledger_app::actors::AccessRole::parse("gp").unwrap(),
            )
            .reached_as(careledger_app::actors::OidcSubject {
                issuer: ISSUER.into(),
                subject: "u-42".into(),
            }),
        )
        .unwrap();
    // The new GP joins the patient's team, so that their list shows the patient.
    let join = json!({"commands": [{"type": "add_care_team_member", "actor": "gp-oidc",
        "name": "A. Jansen", "role": "gp", "lead": "cvrm", "practitioner": "co", "reason": "locum"}]});
    let (status, answer) = f.post("gp-1", PATIENT, &join, &[]).await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{answer}");
    let provider = Provider::start("u-42").await;
    let verifier = careledger_api::oidc::OidcVerifier::start(careledger_api::oidc::OidcConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks: careledger_api::oidc::JwksSource::Url(format!("{}/jwks", provider.base)),
        ca_file: None,
    })
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = f
        .state
        .clone()
        .with_oidc(verifier)
        .with_public_url(&base)
        .with_oidc_login(careledger_api::pages::oidc_login::OidcLoginSettings {
            client_id: "careledger-pages".into(),
            authorization_endpoint: format!("{}/authorize", provider.base),
            token_endpoint: format!("{}/token", provider.base),
            ca_file: None,
        })
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(careledger_api::serve(listener, state, async move {
        let _ = stopped.await;
    }));

    let mut browser = Browser::new(&base);
    let (_, _, page) = browser.get("/ui/signin").await;
    assert!(page.contains("/ui/signin/oidc"), "{page}");
    let (status, headers, _) = browser.get("/ui/signin/oidc").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let authorize = location(&headers).to_owned();
    assert!(authorize.starts_with(&provider.base) && authorize.contains("code_challenge="));
    let state_cookie = browser.cookie("careledger_oidc").unwrap().to_owned();
    // At the provider (no cookies of ours go there), and back.
    let back = Browser::new(&provider.base)
        .get(authorize.trim_start_matches(&provider.base))
        .await
        .1;
    let callback = location(&back).trim_start_matches(&base).to_owned();
    assert!(
        callback.starts_with("/ui/signin/oidc/callback?code="),
        "{callback}"
    );

    // A browser that did not start this sign-in is refused.
    let mut other = Browser::new(&base);
    let (status, _, page) = other.get(&callback).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{page}");
    assert!(other.cookie("careledger_session").is_none());

    let (status, headers, page) = browser.get(&callback).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(headers["refresh"], "0; url=/ui");
    assert!(
        browser.cookie("careledger_oidc").is_none(),
        "the state is spent"
    );
    assert_ne!(state_cookie, "");
    let (status, _, page) = browser.get("/ui/patients").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        page.contains("A. Jansen (huisarts)") && page.contains(PATIENT),
        "{page}"
    );
    // The code was spent: using it again is refused.
    let (status, _, _) = browser.get(&callback).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    provider.handle.abort();
}

/// Sends commands as `actor` through the API and expects them recorded.
async fn record(f: &Fixture, actor: &str, commands: Value) {
    let (status, answer) = f
        .post(actor, PATIENT, &json!({ "commands": commands }), &[])
        .await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{answer}");
}

#[tokio::test]
async fn lab_work_readings_letters_and_team_changes_read_in_dutch_in_the_inbox_timeline_and_signals_and_in_english_when_asked(
) {
    let (f, server) = served().await;
    cardiologist_sets_ldl_target(&f).await;
    record(
        &f,
        "card-1",
        json!([
            {"type": "order_lab", "order": "lab-7", "tests": ["ldl", "creatinine"], "annual_panel": false,
             "reason": "outpatient visit"},
            {"type": "extend_annual_panel", "tests": ["nt_probnp"], "reason": "heart failure follow-up"},
            {"type": "record_lab_result", "measure": "ldl", "value": "2.6", "unit": "mmol/L", "reason": "outpatient lab"},
            {"type": "record_measurement", "measure": "systolic_bp", "value": "138", "unit": "mm[Hg]",
             "source": "hospital", "reason": "outpatient visit"},
            {"type": "add_note", "kind": "return_letter", "subject": "Controle polikliniek", "body": "Stabiel.",
             "reason": "return letter"}
        ]),
    )
    .await;
    record(
        &f,
        "gp-1",
        json!([{"type": "add_care_team_member", "actor": "pharm-other", "name": "K. Visser",
                "role": "pharmacist", "practitioner": "co", "reason": "medication review"}]),
    )
    .await;

    // The GP's inbox: every message in Dutch, values with a decimal comma and their units.
    let mut gp = Browser::new(&server.base);
    gp.sign_in(&f.token("gp-1")).await;
    let inbox = format!("/ui/patients/{PATIENT}/inbox");
    let (status, _, page) = gp.get(&inbox).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    for text in [
        "Cardioloog Dr. card-1 stelde de streefwaarde voor LDL-cholesterol vast op ≤ 1,8 mmol/L \
         (richtlijn ESC): very high risk, return letter",
        "Cardioloog Dr. card-1 voegde NT-proBNP toe aan het jaarlijkse CVRM-lab",
        "Cardioloog Dr. card-1 legde labuitslag LDL-cholesterol 2,6 mmol/L vast",
        "Cardioloog Dr. card-1 legde systolische bloeddruk 138 mmHg vast (in het ziekenhuis)",
        "Cardioloog Dr. card-1 voegde een terugrapportagebrief toe: Controle polikliniek",
        "Cardioloog Dr. card-1 startte atorvastatin 40 mg 1x daily (C10AA05)",
    ] {
        assert!(
            page.contains(text),
            "{text:?} missing from the inbox:\n{page}"
        );
    }
    for english in [
        "recorded lab result",
        "to the annual CVRM panel",
        "set the LDL",
        "added a return letter",
        "at the hospital",
        // Nothing is marked as English any more (the link to the English pages is, rightly).
        "<span lang=\"en\">",
    ] {
        assert!(!page.contains(english), "{english:?} in the Dutch inbox");
    }
    // The cardiologist is told of the new member of the team, in Dutch.
    let mut card = Browser::new(&server.base);
    card.sign_in(&f.token("card-1")).await;
    let (_, _, page) = card.get(&inbox).await;
    assert!(
        page.contains("Huisarts Dr. gp-1 voegde K. Visser (apotheker, eerste lijn; medebehandelaar) toe aan het zorgteam"),
        "{page}"
    );

    // The timeline: the lab order, which told nobody, and each change from what to what.
    let timeline = format!("/ui/patients/{PATIENT}/timeline");
    let (_, _, page) = gp.get(&timeline).await;
    for text in [
        "Cardioloog Dr. card-1 deed labaanvraag lab-7: LDL-cholesterol, kreatinine",
        "≤ 2,5 mmol/L → ≤ 1,8 mmol/L",
        "Huisarts Dr. gp-1 startte gedeelde zorg: CVRM by GP, heart by cardiology",
    ] {
        assert!(
            page.contains(text),
            "{text:?} missing from the timeline:\n{page}"
        );
    }
    assert!(!page.contains("ordered lab") && !page.contains("1.8 mmol/L"));

    // The plan page's signals, in Dutch.
    let plan = format!("/ui/patients/{PATIENT}");
    let (_, _, page) = gp.get(&plan).await;
    for text in [
        "LDL-cholesterol 2,6 mmol/L haalt de streefwaarde ≤ 1,8 mmol/L niet (werkafspraak 3)",
        "labaanvraag lab-7 van cardioloog Dr. card-1 (tweede lijn) op ",
        "kreatinine nog open",
    ] {
        assert!(
            page.contains(text),
            "{text:?} missing from the plan:\n{page}"
        );
    }
    assert!(!page.contains("does not meet the target"));

    // English when asked.
    let (_, _, page) = gp.get(&format!("{inbox}?lang=en")).await;
    assert!(
        page.contains("Cardiologist Dr. card-1 recorded lab result LDL cholesterol 2.6 mmol/L"),
        "{page}"
    );
    assert!(!page.contains("legde labuitslag"), "{page}");
    let (_, _, page) = gp.get(&timeline).await;
    assert!(
        page.contains("Cardiologist Dr. card-1 ordered lab lab-7: LDL cholesterol, creatinine"),
        "{page}"
    );
    assert!(page.contains("≤ 2.5 mmol/L → ≤ 1.8 mmol/L"), "{page}");
    let (_, _, page) = gp.get(&plan).await;
    assert!(
        page.contains(
            "LDL cholesterol 2.6 mmol/L does not meet the target ≤ 1.8 mmol/L (agreement 3)"
        ),
        "{page}"
    );
    server.shutdown().await;
}
