//! Token lifecycle against real servers: revocation, expiry and rotation refused at once on a
//! running server, last use shown, the operator's admin routes and `careledger actors --url`,
//! OpenID Connect access tokens (RFC 9068), and subscribers scoped to an organisation.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use careledger_app::actors::{days_after, AccessRole, OidcSubject, RegisteredActor};
use careledger_core::ids::{ActorId, AgbCode, Text};
use careledger_core::record::Timestamp;

use crate::common::process::{careledger, text, ServerProcess};
use crate::common::{Fixture, PATIENT};

use crate::common::serve_in_process as start;

fn actor(id: &str, role: AccessRole) -> RegisteredActor {
    RegisteredActor::new(
        ActorId::parse(id).unwrap(),
        Text::new(format!("Actor {id}")).unwrap(),
        role,
    )
}

/// Adds an operator to the fixture's data directory and returns their token.
fn operator(f: &Fixture) -> String {
    f.data
        .actors
        .add(actor("op-1", AccessRole::Operator))
        .unwrap()
}

async fn get(client: &reqwest::Client, url: &str, token: &str) -> (StatusCode, Value, String) {
    let response = client.get(url).bearer_auth(token).send().await.unwrap();
    let status = response.status();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, challenge)
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = client.post(url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Asserts a 401 with the code, `WWW-Authenticate: Bearer realm="careledger", error="invalid_token"` and a detail
/// containing each of `says`.
fn assert_refused(got: &(StatusCode, Value, String), code: &str, says: &[&str]) {
    let (status, body, challenge) = got;
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(
        challenge,
        "Bearer realm=\"careledger\", error=\"invalid_token\""
    );
    let detail = body["detail"].as_str().unwrap();
    for s in says {
        assert!(detail.contains(s), "{detail:?} says {s:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_through_the_admin_route_is_refused_at_once_while_its_client_keeps_calling()
{
    let f = Fixture::with_patient().await;
    let op = operator(&f);
    let server = start(f.state.clone()).await;
    let client = reqwest::Client::new();
    let plan = format!("{}/patients/{PATIENT}/plan", server.base);
    let gp = f.token("gp-1");
    let caller = {
        let (client, plan, gp) = (client.clone(), plan.clone(), gp.clone());
        tokio::spawn(async move {
            // (sent, answered, status) of every call, until the first refusal.
            let mut calls = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                assert!(Instant::now() < deadline, "the token was never refused");
                let sent = Instant::now();
                let got = get(&client, &plan, &gp).await;
                calls.push((sent, Instant::now(), got.0));
                if got.0 == StatusCode::UNAUTHORIZED {
                    assert_refused(&got, "token_revoked", &["gp-1", "revoked", "op-1"]);
                    return calls;
                }
            }
        })
    };
    // Let the client call a few times with the token still valid.
    let mut ok = 0;
    while ok < 5 {
        if get(&client, &plan, &gp).await.0 == StatusCode::OK {
            ok += 1;
        }
    }
    let (status, body) = post(
        &client,
        &format!("{}/admin/actors/gp-1/revoke", server.base),
        &op,
        None,
    )
    .await;
    let answered = Instant::now();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token"]["revoked_by"], "op-1");
    let calls = caller.await.unwrap();
    assert!(
        calls.iter().any(|(_, _, s)| *s == StatusCode::OK),
        "it was used before"
    );
    for (sent, _, status) in &calls {
        if *sent >= answered {
            assert_eq!(
                *status,
                StatusCode::UNAUTHORIZED,
                "accepted after revocation"
            );
        }
    }
    let (_, refused_at, _) = calls.last().unwrap();
    assert!(
        refused_at.saturating_duration_since(answered) < Duration::from_secs(1),
        "refused within a second of the revocation"
    );
    // Revoking again is a conflict; other actors are untouched.
    let again = post(
        &client,
        &format!("{}/admin/actors/gp-1/revoke", server.base),
        &op,
        None,
    )
    .await;
    assert_eq!(again.0, StatusCode::CONFLICT, "{}", again.1);
    assert_eq!(
        get(&client, &plan, &f.token("card-1")).await.0,
        StatusCode::OK
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_rotation_the_old_token_is_refused_and_the_new_one_accepted_and_a_grace_keeps_the_old_one_for_a_while(
) {
    let f = Fixture::with_patient().await;
    let op = operator(&f);
    let server = start(f.state.clone()).await;
    let client = reqwest::Client::new();
    let plan = format!("{}/patients/{PATIENT}/plan", server.base);
    let old = f.token("gp-1");
    let rotate = format!("{}/admin/actors/gp-1/rotate", server.base);
    let (status, body) = post(&client, &rotate, &op, Some(json!({"expires_in_days": 30}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let expires = body["actor"]["token"]["expires_at"].as_str().unwrap();
    let in_30_days = days_after(Timestamp::now(), 30).to_string();
    assert_eq!(&expires[..10], &in_30_days[..10], "30 days from now");
    assert_refused(
        &get(&client, &plan, &old).await,
        "token_replaced",
        &["gp-1", "rotation", "use the new token"],
    );
    assert_eq!(get(&client, &plan, &new).await.0, StatusCode::OK);
    // A rotation with a grace period: the token it replaces works on until the grace ends.
    let (status, body) = post(&client, &rotate, &op, Some(json!({"grace_minutes": 10}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let newer = body["token"].as_str().unwrap().to_owned();
    assert!(body["actor"]["token"]["previous_valid_until"].is_string());
    assert_eq!(get(&client, &plan, &new).await.0, StatusCode::OK);
    assert_eq!(get(&client, &plan, &newer).await.0, StatusCode::OK);
    assert_refused(&get(&client, &plan, &old).await, "token_unknown", &[]);
    // Bad values say what is wrong.
    let (status, body) = post(
        &client,
        &rotate,
        &op,
        Some(json!({"grace_minutes": 100000})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("grace"), "{body}");
    let (status, body) = post(&client, &rotate, &op, Some(json!({"expires_in_days": 0}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = post(
        &client,
        &format!("{}/admin/actors/nobody/rotate", server.base),
        &op,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refused_saying_when_it_expired_and_to_ask_for_a_rotation() {
    let f = Fixture::with_patient().await;
    let now = Timestamp::now();
    let issued = Timestamp::from_micros(now.micros() - 3 * 86_400_000_000);
    let expired_at = Timestamp::from_micros(now.micros() - 86_400_000_000);
    let token = f
        .data
        .actors
        .issue(
            actor("auditor-old", AccessRole::Auditor),
            issued,
            expired_at,
        )
        .unwrap();
    let server = start(f.state.clone()).await;
    let client = reqwest::Client::new();
    let got = get(&client, &format!("{}/events", server.base), &token).await;
    let day = &expired_at.to_string()[..10];
    assert_refused(
        &got,
        "token_expired",
        &["auditor-old", "expired on", day, "rotate"],
    );
    // An unknown token and a missing header are told apart.
    assert_refused(
        &get(&client, &format!("{}/events", server.base), "00ff").await,
        "token_unknown",
        &["not known"],
    );
    let bare = client
        .get(format!("{}/events", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        bare.headers()["www-authenticate"],
        "Bearer realm=\"careledger\""
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_routes_are_an_operators_who_reads_no_patient_data_and_list_shows_the_last_use() {
    let f = Fixture::with_patient().await;
    let op = operator(&f);
    let server = start(f.state.clone()).await;
    let client = reqwest::Client::new();
    let admin = format!("{}/admin/actors", server.base);
    // A care role administers nothing; an operator reads no patient data.
    let (status, body) = post(&client, &admin, &f.token("gp-1"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("operator"),
        "{body}"
    );
    assert_eq!(
        get(&client, &admin, &f.token("auditor-1")).await.0,
        StatusCode::FORBIDDEN
    );
    for path in [
        format!("/patients/{PATIENT}/plan"),
        "/events".to_owned(),
        "/events/stream".to_owned(),
    ] {
        let (status, body, _) = get(&client, &format!("{}{path}", server.base), &op).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("no patient data"));
    }
    // Added through the route: the token works at once.
    let (status, body) = post(
        &client,
        &admin,
        &op,
        Some(json!({"id": "gp-new", "name": "B. Nieuw", "role": "gp", "organisation": "01234567"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let expires = body["actor"]["token"]["expires_at"].as_str().unwrap();
    let in_90_days = days_after(Timestamp::now(), 90).to_string();
    assert_eq!(&expires[..10], &in_90_days[..10], "people get 90 days");
    let (status, _, _) = get(&client, &format!("{}/events", server.base), &token).await;
    assert_eq!(status, StatusCode::OK);
    // Bad bodies say what is wrong.
    let refusals = [
        (
            json!({"id": "x-1", "name": "X", "role": "surgeon"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "surgeon",
        ),
        (
            json!({"id": "gp-new", "name": "X", "role": "gp"}),
            StatusCode::CONFLICT,
            "exists",
        ),
        (
            json!({"id": "feed-x", "name": "X", "role": "subscriber"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "--scope all",
        ),
        (
            json!({"id": "x-2", "name": "X", "role": "gp", "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "colour",
        ),
        (
            json!({"id": "x-3", "name": "X", "role": "gp", "expires_in_days": 5000}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "1825",
        ),
    ];
    for (body, expected, says) in refusals {
        let (status, answer) = post(&client, &admin, &op, Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains(says),
            "{answer}"
        );
    }
    // The list shows when each token was last used, and never a token.
    let (status, list, _) = get(&client, &admin, &op).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let find = |id: &str| {
        list["actors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id)
            .unwrap()
            .clone()
    };
    assert!(find("gp-new")["token"]["last_used_at"].is_string());
    assert!(find("gp-1")["token"]["last_used_at"].is_string());
    assert!(find("gp-other")["token"]["last_used_at"].is_null());
    assert_eq!(find("feed-1")["scope"], "all");
    assert!(!list.to_string().contains(&token));
    server.shutdown().await;
}

/// The `careledger` binary with extra environment.
fn careledger_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_careledger"))
        .args(args)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn token_of(output: &std::process::Output) -> String {
    assert!(output.status.success(), "{}", text(output));
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actors_commands_administer_a_running_server_with_url_and_its_data_directory_without() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let op = token_of(&careledger(&[
        "actors", "add", "--data", data, "--id", "op-1", "--name", "Operator", "--role", "operator",
    ]));
    let client = reqwest::Client::new();
    let mut server = ServerProcess::start(dir.path(), &client).await;
    let base = server.base.clone();
    // The directory is held by the server: the error says to go through it.
    let held = careledger(&[
        "actors",
        "add",
        "--data",
        data,
        "--id",
        "gp-1",
        "--name",
        "A. Jansen",
        "--role",
        "gp",
    ]);
    assert!(!held.status.success());
    assert!(text(&held).contains("--url"), "{}", text(&held));
    let gp = token_of(&careledger(&[
        "actors",
        "add",
        "--url",
        &base,
        "--token",
        &op,
        "--id",
        "gp-1",
        "--name",
        "A. Jansen",
        "--role",
        "gp",
        "--organisation",
        "01234567",
        "--expires-in-days",
        "7",
    ]));
    assert_eq!(
        get(&client, &format!("{base}/events"), &gp).await.0,
        StatusCode::OK
    );
    // The environment stands in for the flags; the list shows the use just made.
    let env = [
        ("CARELEDGER_URL", base.as_str()),
        ("CARELEDGER_TOKEN", op.as_str()),
    ];
    let list = careledger_env(&["actors", "list"], &env);
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8(list.stdout).unwrap();
    let line = listed.lines().find(|l| l.starts_with("gp-1")).unwrap();
    assert!(!line.contains("last used never"), "{line}");
    assert!(line.contains("organisation 01234567"), "{line}");
    let in_7_days = days_after(Timestamp::now(), 7).to_string();
    assert!(
        line.contains(&format!("expires {}", &in_7_days[..10])),
        "{line}"
    );
    assert!(!listed.contains(&gp), "never a token");
    // Rotation: the old token is refused, the new one accepted.
    let new = token_of(&careledger_env(&["actors", "rotate", "--id", "gp-1"], &env));
    assert_refused(
        &get(&client, &format!("{base}/events"), &gp).await,
        "token_replaced",
        &[],
    );
    assert_eq!(
        get(&client, &format!("{base}/events"), &new).await.0,
        StatusCode::OK
    );
    // Revocation.
    let revoke = careledger_env(&["actors", "revoke", "--id", "gp-1"], &env);
    assert!(revoke.status.success(), "{}", text(&revoke));
    assert_refused(
        &get(&client, &format!("{base}/events"), &new).await,
        "token_revoked",
        &["op-1"],
    );
    // A refused token is refused with the server's words.
    let refused = careledger(&["actors", "list", "--url", &base, "--token", &gp]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("token_revoked"),
        "{}",
        text(&refused)
    );
    // Stopped: the last use was written on the way out and the data directory is free again.
    server.signal(libc::SIGTERM);
    let list = careledger(&["actors", "list", "--data", data]);
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8(list.stdout).unwrap();
    let line = listed.lines().find(|l| l.starts_with("gp-1")).unwrap();
    assert!(line.contains("REVOKED") && line.contains("op-1"), "{line}");
    assert!(!line.contains("last used never"), "{line}");
    let rotated = token_of(&careledger(&[
        "actors", "rotate", "--data", data, "--id", "gp-1",
    ]));
    assert_eq!(rotated.len(), 64);
}

/// Writes an actor record as a build of layout 1 (no mark: id, name, role, token hash) or
/// layout 2 (mark `0x00 0x02`: id, name, role, organisation, patient, token hash) did.
fn write_old_record(
    data: &std::path::Path,
    layout: u8,
    id: &str,
    role: AccessRole,
    organisation: Option<&str>,
    token: &str,
) {
    let config = bincode::config::standard();
    let (id, name) = (ActorId::parse(id).unwrap(), Text::new("Old actor").unwrap());
    let hash = *blake3::hash(token.as_bytes()).as_bytes();
    let bytes = match layout {
        1 => bincode::serde::encode_to_vec(&((id.clone(), name, role), hash), config).unwrap(),
        _ => {
            let organisation = organisation.map(|o| AgbCode::parse(o).unwrap());
            let patient: Option<careledger_core::ids::PatientId> = None;
            let record = ((id.clone(), name, role, organisation, patient), hash);
            let mut bytes = vec![0x00, 0x02];
            bytes.extend(bincode::serde::encode_to_vec(&record, config).unwrap());
            bytes
        }
    };
    let db = sled::open(data.join("actors")).unwrap();
    db.insert(id.as_str(), bytes).unwrap();
    db.flush().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actors_written_in_layouts_1_and_2_still_authenticate_on_a_server_until_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (gp_token, feed_token) = ("0123abcd".repeat(8), "4567cdef".repeat(8));
    write_old_record(
        dir.path(),
        1,
        "gp-old",
        AccessRole::Care(careledger_core::role::Role::Gp),
        None,
        &gp_token,
    );
    write_old_record(
        dir.path(),
        2,
        "feed-old",
        AccessRole::Subscriber,
        Some("01234567"),
        &feed_token,
    );
    let op = token_of(&careledger(&[
        "actors", "add", "--data", data, "--id", "op-1", "--name", "Operator", "--role", "operator",
    ]));
    let client = reqwest::Client::new();
    let server = ServerProcess::start(dir.path(), &client).await;
    let base = server.base.clone();
    for token in [&gp_token, &feed_token] {
        let (status, body, _) = get(&client, &format!("{base}/events"), token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let env = [
        ("CARELEDGER_URL", base.as_str()),
        ("CARELEDGER_TOKEN", op.as_str()),
    ];
    let list = careledger_env(&["actors", "list"], &env);
    assert!(list.status.success(), "{}", text(&list));
    let listed = String::from_utf8(list.stdout).unwrap();
    let line = |id: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap()
            .to_owned()
    };
    assert!(
        line("gp-old").contains("never expires (issued before expiry; rotate it)"),
        "{listed}"
    );
    assert!(line("feed-old").contains("scope organisation"), "{listed}");
    assert!(
        line("feed-old").contains("organisation 01234567"),
        "{listed}"
    );
    // Rotated, the actor gets a token that expires, written in layout 3.
    let new = token_of(&careledger_env(
        &["actors", "rotate", "--id", "gp-old"],
        &env,
    ));
    assert_refused(
        &get(&client, &format!("{base}/events"), &gp_token).await,
        "token_replaced",
        &[],
    );
    assert_eq!(
        get(&client, &format!("{base}/events"), &new).await.0,
        StatusCode::OK
    );
    let list = careledger_env(&["actors", "list"], &env);
    let listed = String::from_utf8(list.stdout).unwrap();
    let gp = listed.lines().find(|l| l.starts_with("gp-old")).unwrap();
    let in_90_days = days_after(Timestamp::now(), 90).to_string();
    assert!(
        gp.contains(&format!("expires {}", &in_90_days[..10])),
        "{gp}"
    );
}

// ---- OpenID Connect access tokens ----

const ISSUER: &str = "https://login.hospital.example/realms/care";
const AUDIENCE: &str = "careledger";

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// An ed25519 key of the test's issuer.
struct IssuerKey {
    kid: String,
    key: ed25519_dalek::SigningKey,
}

impl IssuerKey {
    fn new(kid: &str) -> IssuerKey {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).unwrap();
        IssuerKey {
            kid: kid.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&secret),
        }
    }

    fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": self.kid,
               "x": b64(self.key.verifying_key().as_bytes())})
    }

    /// A JWT of `header` and `claims`, signed with this key.
    fn sign(&self, header: &Value, claims: &Value) -> String {
        use ed25519_dalek::Signer;
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    fn access_token(&self, claims: &Value) -> String {
        self.sign(
            &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid}),
            claims,
        )
    }
}

fn claims(sub: &str) -> Value {
    let now = crate::common::unix_now();
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "client_id": "his", "iat": now,
           "exp": now + 300, "jti": "1", "role": "auditor"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_access_tokens_act_as_the_registered_actor_and_every_bad_token_is_refused_saying_why()
{
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let key = IssuerKey::new("k1");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [key.jwk()]}).to_string()).unwrap();
    let added = careledger(&[
        "actors",
        "add",
        "--data",
        data,
        "--id",
        "gp-oidc",
        "--name",
        "A. Jansen",
        "--role",
        "gp",
        "--organisation",
        "01234567",
        "--oidc-issuer",
        ISSUER,
        "--oidc-subject",
        "u-123",
    ]);
    assert!(added.status.success(), "{}", text(&added));
    let client = reqwest::Client::new();
    let server = ServerProcess::start_with(
        dir.path(),
        &client,
        &[
            "--oidc-issuer",
            ISSUER,
            "--oidc-audience",
            AUDIENCE,
            "--oidc-jwks-file",
            jwks.to_str().unwrap(),
        ],
    )
    .await;
    let base = &server.base;
    // A valid access token writes as the registered actor, in the registry's role and
    // organisation (the token's own "role" claim counts for nothing).
    let token = key.access_token(&claims("u-123"));
    let response = client
        .post(format!("{base}/patients/{PATIENT}/events"))
        .bearer_auth(&token)
        .json(&json!({"commands": [{"type": "start_shared_care",
            "arrangement": "CVRM by GP", "reason": "letter"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap()
    );
    let (status, events, _) = get(
        &client,
        &format!("{base}/patients/{PATIENT}/events"),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    let written = &events["events"][0]["actor"];
    assert_eq!(written["id"], "gp-oidc");
    assert_eq!(written["role"], "gp");
    assert_eq!(written["organisation"], "01234567");
    // A key the issuer publishes later is found by reading the keys again.
    let rolled = IssuerKey::new("k3");
    std::fs::write(
        &jwks,
        json!({"keys": [key.jwk(), rolled.jwk()]}).to_string(),
    )
    .unwrap();
    let got = get(
        &client,
        &format!("{base}/events"),
        &rolled.access_token(&claims("u-123")),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);

    let now = crate::common::unix_now();
    let other = IssuerKey::new("k2");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut c = claims("u-123");
        change(&mut c);
        key.access_token(&c)
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "wrong issuer",
            with(&|c| c["iss"] = json!("https://evil.example")),
            "oidc_wrong_issuer",
            ISSUER,
        ),
        (
            "wrong audience",
            with(&|c| c["aud"] = json!("another-api")),
            "oidc_wrong_audience",
            AUDIENCE,
        ),
        (
            "unknown key",
            other.access_token(&claims("u-123")),
            "oidc_unknown_key",
            "k2",
        ),
        (
            "expired",
            with(&|c| {
                c["exp"] = json!(now - 600);
                c["iat"] = json!(now - 900);
            }),
            "oidc_expired",
            "expired",
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(now + 600)),
            "oidc_not_yet_valid",
            "nbf",
        ),
        (
            "issued in the future",
            with(&|c| c["iat"] = json!(now + 600)),
            "oidc_not_yet_valid",
            "iat",
        ),
        (
            "an ID token",
            key.sign(
                &json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"}),
                &claims("u-123"),
            ),
            "oidc_not_access_token",
            "ID token",
        ),
        (
            "no typ",
            key.sign(&json!({"alg": "EdDSA", "kid": "k1"}), &claims("u-123")),
            "oidc_not_access_token",
            "at+jwt",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"at+jwt"}"#),
                b64(claims("u-123").to_string().as_bytes())
            ),
            "oidc_alg_refused",
            "alg none",
        ),
        (
            "HS256",
            format!(
                "{}.{}.{}",
                b64(br#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#),
                b64(claims("u-123").to_string().as_bytes()),
                b64(&[7u8; 32])
            ),
            "oidc_alg_refused",
            "HMAC",
        ),
        (
            "a forged signature",
            {
                let t = key.access_token(&claims("u-123"));
                let (head, _) = t.rsplit_once('.').unwrap();
                format!("{head}.{}", b64(&[1u8; 64]))
            },
            "oidc_bad_signature",
            "signature",
        ),
        (
            "an unmapped subject",
            key.access_token(&claims("u-999")),
            "oidc_subject_unknown",
            "u-999",
        ),
    ];
    for (case, token, code, says) in cases {
        let got = get(&client, &format!("{base}/events"), &token).await;
        assert_eq!(got.0, StatusCode::UNAUTHORIZED, "{case}: {}", got.1);
        assert_eq!(got.1["code"], code, "{case}: {}", got.1);
        assert_eq!(
            got.2, "Bearer realm=\"careledger\", error=\"invalid_token\"",
            "{case}"
        );
        let detail = got.1["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{case}: {detail:?} says {says:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_read_over_http_admit_an_oidc_subject_until_its_actor_is_revoked() {
    let f = Fixture::empty();
    let key = IssuerKey::new("k1");
    // The issuer's keys, served over loopback HTTP.
    let set = json!({"keys": [key.jwk()]});
    let jwks_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_url = format!("http://{}/jwks", jwks_listener.local_addr().unwrap());
    let jwks_server = tokio::spawn(async move {
        let router = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let set = set.clone();
                async move { axum::Json(set) }
            }),
        );
        axum::serve(jwks_listener, router).await
    });
    f.data
        .actors
        .add(
            actor("auditor-oidc", AccessRole::Auditor).reached_as(OidcSubject {
                issuer: ISSUER.into(),
                subject: "u-7".into(),
            }),
        )
        .unwrap();
    let op = operator(&f);
    let verifier = careledger_api::oidc::OidcVerifier::start(careledger_api::oidc::OidcConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks: careledger_api::oidc::JwksSource::Url(jwks_url),
        ca_file: None,
    })
    .await
    .unwrap();
    let server = start(f.state.clone().with_oidc(verifier)).await;
    let client = reqwest::Client::new();
    let token = key.access_token(&claims("u-7"));
    let events = format!("{}/events", server.base);
    assert_eq!(get(&client, &events, &token).await.0, StatusCode::OK);
    let (status, body) = post(
        &client,
        &format!("{}/admin/actors/auditor-oidc/revoke", server.base),
        &op,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_refused(
        &get(&client, &events, &token).await,
        "token_revoked",
        &["auditor-oidc"],
    );
    server.shutdown().await;
    jwks_server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_read_over_https_are_trusted_through_the_ca_file_and_not_without_it() {
    use crate::common::tls::{pki, serve_https_json};
    let f = Fixture::empty();
    let key = IssuerKey::new("k1");
    let pki = pki();
    let (addr, jwks_server) =
        serve_https_json(&pki, json!({"keys": [key.jwk()]}).to_string()).await;
    let jwks_url = format!("https://localhost:{}/jwks", addr.port());
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), &pki.ca).unwrap();
    f.data
        .actors
        .add(
            actor("auditor-oidc", AccessRole::Auditor).reached_as(OidcSubject {
                issuer: ISSUER.into(),
                subject: "u-7".into(),
            }),
        )
        .unwrap();
    let token = key.access_token(&claims("u-7"));
    let config = |ca_file: Option<std::path::PathBuf>| careledger_api::oidc::OidcConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks: careledger_api::oidc::JwksSource::Url(jwks_url.clone()),
        ca_file,
    };
    let client = reqwest::Client::new();
    // Trusted through the hospital's CA: the token is accepted.
    let verifier = careledger_api::oidc::OidcVerifier::start(config(Some(ca.path().into())))
        .await
        .unwrap();
    let server = start(f.state.clone().with_oidc(verifier)).await;
    let events = format!("{}/events", server.base);
    assert_eq!(get(&client, &events, &token).await.0, StatusCode::OK);
    server.shutdown().await;
    // Without it the keys cannot be read, and no token is accepted.
    let verifier = careledger_api::oidc::OidcVerifier::start(config(None))
        .await
        .unwrap();
    let server = start(f.state.clone().with_oidc(verifier)).await;
    let events = format!("{}/events", server.base);
    assert_eq!(
        get(&client, &events, &token).await.0,
        StatusCode::UNAUTHORIZED
    );
    server.shutdown().await;
    // A JWKS address of another scheme is refused at start.
    let mut ftp = config(None);
    ftp.jwks = careledger_api::oidc::JwksSource::Url("ftp://localhost/jwks".into());
    let refused = careledger_api::oidc::OidcVerifier::start(ftp)
        .await
        .unwrap_err();
    assert!(refused.contains("https://"), "{refused}");
    jwks_server.abort();
}

// ---- Subscribers scoped to an organisation ----

const PRACTICE_A: &str = "01111111";
const PRACTICE_B: &str = "02222222";
const PATIENT_B: &str = "999990019";

/// Reads SSE events (their data) until the one at `last` has arrived.
async fn read_stream_until(response: reqwest::Response, last: u64) -> Vec<Value> {
    let done = |seen: &[(u64, Value)]| seen.last().is_some_and(|(id, _)| *id >= last);
    let seen = crate::common::read_sse_until(response, done).await;
    seen.into_iter().map(|(_, data)| data).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practices_subscriber_sees_only_its_own_patients_events_on_events_and_the_stream() {
    let f = Fixture::empty();
    let add = |id: &str, agb: &str| {
        f.data
            .actors
            .add(
                actor(id, AccessRole::Care(careledger_core::role::Role::Gp))
                    .acting_for(AgbCode::parse(agb).unwrap()),
            )
            .unwrap()
    };
    let (gp_a, gp_b) = (add("gp-a", PRACTICE_A), add("gp-b", PRACTICE_B));
    let op = operator(&f);
    let server = start(f.state.clone()).await;
    let client = reqwest::Client::new();
    // The practice's subscriber is added by the operator, scoped to its organisation.
    let (status, body) = post(
        &client,
        &format!("{}/admin/actors", server.base),
        &op,
        Some(json!({"id": "his-a", "name": "Practice A HIS", "role": "subscriber", "organisation": PRACTICE_A})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["actor"]["scope"], "organisation");
    let expires = body["actor"]["token"]["expires_at"].as_str().unwrap();
    assert_eq!(
        &expires[..10],
        &days_after(Timestamp::now(), 365).to_string()[..10],
        "systems get a year"
    );
    let his_a = body["token"].as_str().unwrap().to_owned();
    let write = |token: String, patient: &'static str, subject: &'static str, founding: bool| {
        let (client, base) = (client.clone(), server.base.clone());
        async move {
            let command = if founding {
                json!({"type": "start_shared_care", "arrangement": "CVRM by GP", "reason": subject})
            } else {
                json!({"type": "add_note", "kind": "note", "subject": subject, "body": "ok", "reason": "consultation"})
            };
            let response = client
                .post(format!("{base}/patients/{patient}/events"))
                .bearer_auth(&token)
                .json(&json!({"commands": [command]}))
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::CREATED,
                "{}",
                response.text().await.unwrap()
            );
        }
    };
    write(gp_a.clone(), PATIENT, "a founded", true).await;
    write(gp_b.clone(), PATIENT_B, "b founded", true).await;
    write(gp_a.clone(), PATIENT, "a note", false).await;
    write(gp_b.clone(), PATIENT_B, "b note", false).await;
    write(gp_a.clone(), PATIENT, "a last", false).await;
    let head = f.head();
    let (status, page, _) = get(&client, &format!("{}/events?after=0", server.base), &his_a).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let patients: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["patient"].as_str().unwrap())
        .collect();
    assert!(
        !patients.is_empty() && patients.iter().all(|p| *p == PATIENT),
        "{patients:?}"
    );
    // The all-patients feed of the fixture sees both, and the practice's feed every event of
    // its own patient.
    let (_, page, _) = get(
        &client,
        &format!("{}/events?after=0", server.base),
        &f.token("feed-1"),
    )
    .await;
    let all = page["events"].as_array().unwrap();
    assert_eq!(all.len() as u64, head);
    let own = all.iter().filter(|e| e["patient"] == PATIENT).count();
    assert!(own < all.len());
    assert_eq!(patients.len(), own, "every event of its own patient");
    // The stream: from the start to the last event, only its own patient's.
    let response = client
        .get(format!("{}/events/stream?after=0", server.base))
        .bearer_auth(&his_a)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = read_stream_until(response, head).await;
    assert_eq!(seen.len(), own, "{seen:?}");
    assert!(seen.iter().all(|e| e["patient"] == PATIENT), "{seen:?}");
    // Live: practice B's next event is not sent, practice A's is.
    let response = client
        .get(format!("{}/events/stream?after={head}", server.base))
        .bearer_auth(&his_a)
        .send()
        .await
        .unwrap();
    let gp_b_token = gp_b.clone();
    write(gp_b, PATIENT_B, "b live", false).await;
    write(gp_a, PATIENT, "a live", false).await;
    let seen = read_stream_until(response, head + 2).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["patient"], PATIENT);
    assert_eq!(seen[0]["position"], head + 2);
    // Once practice A's nurse joins patient B's team, the practice's feed sees patient B too:
    // the scope follows the care team as the read models fold it.
    f.data
        .actors
        .add(
            actor(
                "nurse-a",
                AccessRole::Care(careledger_core::role::Role::PracticeNurse),
            )
            .acting_for(AgbCode::parse(PRACTICE_A).unwrap()),
        )
        .unwrap();
    // The event that brings the practice into patient B's team is on its live stream: the
    // stream judges it by the care team once the read models hold it (the write's answer does
    // not wait for them).
    let before = f.head();
    let live = client
        .get(format!("{}/events/stream?after={before}", server.base))
        .bearer_auth(&his_a)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    let response = client
        .post(format!("{}/patients/{PATIENT_B}/events", server.base))
        .bearer_auth(&gp_b_token)
        .json(
            &json!({"commands": [{"type": "add_care_team_member", "actor": "nurse-a",
            "name": "N. Nurse", "role": "practice_nurse"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        response.text().await.unwrap()
    );
    let seen = read_stream_until(live, before + 1).await;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0]["patient"], PATIENT_B);
    assert_eq!(seen[0]["type"], "care_team_member_added", "{seen:?}");
    let (_, page, _) = get(&client, &format!("{}/events?after=0", server.base), &his_a).await;
    let of_b = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["patient"] == PATIENT_B)
        .count();
    assert!(of_b >= 4, "patient B's whole history: {page}");
    server.shutdown().await;
}
