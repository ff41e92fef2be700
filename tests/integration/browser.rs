//! The shared-care story in a real browser: headless Chromium (Debian's `chromium`) driven
//! through `chromedriver` over WebDriver, against a real server on loopback.
//!
//! The cardiologist signs in; the LDL target is set through the API; the GP sees it on the plan
//! page, is refused (in words, agreement 4) when stopping the statin for the patient's
//! preference, and stops it for side effects; the cardiologist acknowledges the notification
//! in the inbox with the keyboard alone; a forged form from another origin is refused; the
//! patient sees their plan. Screenshots go to `docs/img/` (the README shows them).
//!
//! Ignored by default (it needs Chromium); `.ci/run` installs `chromium chromium-driver` and
//! runs it, and it fails when they are missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

use crate::common::{serve_in_process, Fixture, PATIENT};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The WebDriver element reference's key (W3C WebDriver).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

/// A `chromedriver` process, ended when dropped.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: install it with `apt-get install {package}` (.ci/run does)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("{}/status", driver.base))
                .send()
                .await
                .ok();
            if let Some(r) = ready {
                let status: Value = r.json().await.unwrap_or(Value::Null);
                if status["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not get ready in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }
}

/// One browser session, ended when dropped, also when the test fails: the browser quits rather
/// than outliving its driver.
struct Browser {
    client: reqwest::Client,
    session: String,
    /// The driver's `host:port` and the session's path, for the blocking `DELETE` on drop.
    driver: String,
    path: String,
}

impl Drop for Browser {
    fn drop(&mut self) {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(&self.driver) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.path, self.driver
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

impl Browser {
    async fn open(driver: &Driver) -> Browser {
        let client = reqwest::Client::new();
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1200,1500", "--lang=nl"]
            }
        }}});
        let answer: Value = client
            .post(format!("{}/session", driver.base))
            .json(&capabilities)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {answer}"))
            .to_owned();
        Browser {
            client,
            session: format!("{}/session/{session}", driver.base),
            driver: driver.base.trim_start_matches("http://").to_owned(),
            path: format!("/session/{session}"),
        }
    }

    /// A WebDriver command's answer, an error included.
    async fn try_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let answer = self.try_call(method, path, body).await;
        assert!(
            answer["value"]["error"].is_null(),
            "WebDriver {path}: {answer}"
        );
        answer["value"].clone()
    }

    /// The rendered text of the page once it contains `expected` (a click's navigation may
    /// still be under way when the click returns); fails with the text after 15 s.
    async fn wait_for(&self, expected: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.try_text().await.unwrap_or_default();
            if text.contains(expected) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{expected:?} not shown at {}: {text}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn try_text(&self) -> Option<String> {
        let found = self
            .try_call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": "body"})),
            )
            .await;
        let body = found["value"][ELEMENT].as_str()?.to_owned();
        let text = self
            .try_call(reqwest::Method::GET, &format!("/element/{body}/text"), None)
            .await;
        text["value"].as_str().map(str::to_owned)
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {found}"))
            .to_owned()
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Presses keys on whatever has the focus.
    async fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for key in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": key.to_string()}));
            actions.push(json!({"type": "keyUp", "value": key.to_string()}));
        }
        self.call(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    /// The focused element's `aria-label`.
    async fn focused_label(&self) -> String {
        let active = self
            .call(reqwest::Method::GET, "/element/active", None)
            .await;
        let element = active[ELEMENT].as_str().unwrap().to_owned();
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/attribute/aria-label"),
            None,
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    /// The focused element's text.
    async fn focused_text(&self) -> String {
        let active = self
            .call(reqwest::Method::GET, "/element/active", None)
            .await;
        let element = active[ELEMENT].as_str().unwrap().to_owned();
        self.call(
            reqwest::Method::GET,
            &format!("/element/{element}/text"),
            None,
        )
        .await
        .as_str()
        .unwrap_or("")
        .to_owned()
    }

    async fn screenshot(&self, name: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/img");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    async fn sign_in(&self, base: &str, token: &str) {
        self.call(reqwest::Method::DELETE, "/cookie", None).await;
        self.go(&format!("{base}/ui/signin")).await;
        self.type_into("#token", token).await;
        self.click("main button[type=submit]").await;
    }
}

/// A page of another origin whose form posts a note to the patient's plan with a guessed token.
async fn forging_site(target: String) -> (String, tokio::task::JoinHandle<()>) {
    let page = format!(
        "<!doctype html><html lang=en><title>prize</title><form method=post action=\"{target}\">\
         <input type=hidden name=subject value=forged><input type=hidden name=csrf value=guess>\
         <button id=win type=submit>Win</button></form>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "drives headless Chromium through chromedriver; .ci/run installs them and runs it"]
async fn the_shared_care_story_in_a_real_browser() {
    let f = Fixture::with_patient().await;
    let server = serve_in_process(f.state.clone()).await;
    let base = server.base.clone();
    let driver = Driver::start().await;
    let browser = Browser::open(&driver).await;

    // The cardiologist signs in and sees their patient.
    browser.sign_in(&base, &f.token("card-1")).await;
    browser.wait_for("P. de Boer").await;
    assert!(browser.url().await.ends_with("/ui/patients"));

    // The LDL target is set through the API.
    let target = json!({"commands": [{"type": "set_target", "measure": "ldl", "comparator": "at_most",
        "value": "1.8", "unit": "mmol/L", "basis": "esc_guideline", "rationale": "very high risk (ESC)",
        "reason": "return letter"}]});
    let (status, answer) = f.post("card-1", PATIENT, &target, &[]).await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{answer}");

    // Readings: LDL at the practice, blood pressure at the practice and by the patient at home.
    let reading = |measure: &str, value: &str, unit: &str, source: &str, at: &str| {
        json!({"type": "record_measurement", "measure": measure, "value": value, "unit": unit,
               "source": source, "occurred_at": at, "reason": "CVRM follow-up"})
    };
    let practice = json!({"commands": [
        reading("ldl", "3.1", "mmol/L", "practice", "2026-06-02T08:30:00Z"),
        reading("ldl", "2.6", "mmol/L", "practice", "2026-09-01T08:30:00Z"),
        reading("ldl", "2.2", "mmol/L", "practice", "2026-11-20T08:30:00Z"),
        reading("systolic_bp", "152", "mm[Hg]", "practice", "2026-09-01T08:40:00Z"),
    ]});
    let (status, answer) = f.post("nurse-1", PATIENT, &practice, &[]).await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{answer}");
    let home = json!({"commands": [
        reading("systolic_bp", "148", "mm[Hg]", "self_measured_at_home", "2026-10-01T07:00:00Z"),
        reading("systolic_bp", "141", "mm[Hg]", "self_measured_at_home", "2026-10-15T07:00:00Z"),
        reading("systolic_bp", "136", "mm[Hg]", "self_measured_at_home", "2026-11-01T07:00:00Z"),
        reading("systolic_bp", "133", "mm[Hg]", "self_measured_at_home", "2026-11-25T07:00:00Z"),
    ]});
    let (status, answer) = f.post("patient-1", PATIENT, &home, &[]).await;
    assert_eq!(status, axum::http::StatusCode::CREATED, "{answer}");

    // The GP sees it on the plan page.
    browser.sign_in(&base, &f.token("gp-1")).await;
    browser.wait_for("P. de Boer").await;
    let plan = format!("{base}/ui/patients/{PATIENT}");
    browser.go(&plan).await;
    let text = browser.wait_for("Zorgplan van").await;
    for expected in [
        "LDL-cholesterol (LOINC 22748-8)",
        "≤ 1,8 mmol/L",
        "richtlijn ESC",
        "2,2 mmol/L",
        "niet behaald",
        "atorvastatin",
    ] {
        assert!(text.contains(expected), "{expected:?} not shown: {text}");
    }
    browser.screenshot("plan-gp.png").await;

    // Stopping the cardiologist's statin for the patient's preference is refused, in words.
    browser
        .click("#why-C10AA05 option[value=patient_preference]")
        .await;
    browser
        .click("form[action$='/medications/C10AA05/stop'] button")
        .await;
    browser.wait_for("Werkafspraak 4").await;
    browser.screenshot("refusal-agreement-4.png").await;

    // For side effects it is stopped.
    browser.go(&plan).await;
    browser.wait_for("Zorgplan van").await;
    browser
        .click("#why-C10AA05 option[value=side_effects]")
        .await;
    browser.type_into("#words-C10AA05", "spierpijn").await;
    browser
        .click("form[action$='/medications/C10AA05/stop'] button")
        .await;
    let text = browser.wait_for("Vastgelegd.").await;
    assert!(text.contains("gestopt"), "{text}");

    // The cardiologist acknowledges in the inbox with the keyboard alone: the first Tab
    // reaches the skip link, and Tab moves on until the acknowledge button, which Enter presses.
    browser.sign_in(&base, &f.token("card-1")).await;
    browser.wait_for("P. de Boer").await;
    browser
        .go(&format!("{base}/ui/patients/{PATIENT}/inbox"))
        .await;
    browser.wait_for("stopte atorvastatin").await;
    browser.screenshot("inbox.png").await;
    browser.keys(TAB).await;
    assert_eq!(browser.focused_text().await, "Naar de inhoud");
    let mut tabs = 1;
    while browser.focused_text().await != "Bevestigen" {
        browser.keys(TAB).await;
        tabs += 1;
        assert!(tabs < 30, "the acknowledge button is not reached by Tab");
    }
    // Open notifications come newest first: the statin's stop is the first button.
    let label = browser.focused_label().await;
    assert!(label.contains("stopte atorvastatin"), "{label}");
    browser.keys(ENTER).await;
    browser.wait_for("Melding bevestigd.").await;
    let (_, told) = f
        .get(
            "card-1",
            &format!("/patients/{PATIENT}/notifications?status=all"),
        )
        .await;
    let stop = told["notifications"]
        .as_array()
        .unwrap_or_else(|| panic!("{told}"))
        .iter()
        .find(|n| n["type"] == "medication_stopped")
        .cloned()
        .unwrap_or_else(|| panic!("{told}"));
    assert_eq!(stop["status"]["state"], "acknowledged", "{stop}");
    assert_eq!(stop["status"]["by"], "card-1", "{stop}");

    // A form from another origin is refused, and nothing is written.
    let head = f.head();
    let (forger, forging) = forging_site(format!("{base}/ui/patients/{PATIENT}/notes")).await;
    browser.go(&forger).await;
    browser.click("#win").await;
    browser.wait_for("Dit formulier is verlopen").await;
    assert_eq!(f.head(), head, "the forged form wrote nothing");
    forging.abort();

    // The patient sees their plan in plain language.
    browser.sign_in(&base, &f.token("patient-1")).await;
    browser.wait_for("Mijn zorgplan").await;
    browser.wait_for("streven naar ≤ 1,8 mmol/L").await;
    browser.screenshot("patient.png").await;

    drop(browser);
    drop(driver);
    server.shutdown().await;
}
