//! Conformance of the server to the OpenAPI document it serves: seeded random requests to every
//! documented operation, with every kind of caller, valid and invalid parameters and bodies, against
//! a real server on loopback. Every answer must be a status the operation documents, with the
//! content type documented for that status, and a body that validates against the documented
//! schema (JSON Schema 2020-12, as OpenAPI 3.1 uses). No answer may be a 5xx.
//!
//! The seed is printed; `CARELEDGER_SEED=<seed>` replays a run, `CARELEDGER_CONFORMANCE_CASES`
//! changes how many requests are sent (default 900).

use std::collections::BTreeMap;
use std::time::Duration;

use careledger_core::ids::PatientId;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::common::{self, Fixture, ACTORS, PATIENT};

/// A small, seeded generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One documented operation.
struct Operation {
    path: String,
    method: String,
    parameters: Vec<Value>,
    /// Status (or `default`) → content type → schema (`Value::Null` when none is given).
    responses: BTreeMap<String, BTreeMap<String, Value>>,
    has_body: bool,
}

/// Resolves a local `$ref` (`#/components/...`) against the document.
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(pointer) => doc
            .pointer(pointer.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("the document has no {pointer}")),
        None => value,
    }
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("the document has paths") {
        let shared: Vec<Value> = item["parameters"].as_array().cloned().unwrap_or_default();
        for method in ["get", "post", "put", "patch", "delete"] {
            let Some(op) = item.get(method) else { continue };
            let mut parameters = shared.clone();
            parameters.extend(op["parameters"].as_array().cloned().unwrap_or_default());
            let parameters = parameters.iter().map(|p| resolve(doc, p).clone()).collect();
            let mut responses = BTreeMap::new();
            for (status, response) in op["responses"].as_object().expect("responses") {
                let response = resolve(doc, response);
                let mut contents = BTreeMap::new();
                if let Some(content) = response.get("content").and_then(Value::as_object) {
                    for (media, body) in content {
                        contents.insert(
                            media.clone(),
                            body.get("schema").cloned().unwrap_or(Value::Null),
                        );
                    }
                }
                responses.insert(status.clone(), contents);
            }
            found.push(Operation {
                path: path.clone(),
                method: method.to_owned(),
                parameters,
                responses,
                has_body: op.get("requestBody").is_some(),
            });
        }
    }
    found
}

/// A value for a parameter: mostly one its schema allows, sometimes one it does not.
/// `notifications` are the ids of the notifications open at the start. A `careful` value is one
/// the schema allows, and the fixture's patient.
fn parameter_value(
    rng: &mut Rng,
    name: &str,
    schema: &Value,
    notifications: &[String],
    fhir_id: &str,
    careful: bool,
) -> String {
    if !careful && rng.chance(15) {
        return rng
            .pick(&["", "x", "-1", "18446744073709551616", "%00", "1.5", "null"])
            .to_string();
    }
    match name {
        "patient" if careful => return PATIENT.to_owned(),
        "patient" => {
            return rng
                .pick(&[PATIENT, PATIENT, "999990019", "123456782"])
                .to_string()
        }
        "notification" if rng.chance(70) && !notifications.is_empty() => {
            return rng.pick(notifications).clone()
        }
        "notification" => return rng.pick(&["n-999-second", "n-1", "n-1-first"]).to_string(),
        // FHIR: the patient's resource id (its key, never the BSN), searched by the BSN.
        "id" if careful && !fhir_id.is_empty() => return fhir_id.to_owned(),
        "resource_type" if careful => return "Patient".to_owned(),
        "identifier" if careful => {
            return format!("http://fhir.nl/fhir/NamingSystem/bsn|{PATIENT}")
        }
        // An actor the operator's routes act on: one no careful request calls as.
        "id" if careful => return "gp-other".to_owned(),
        "id" => return rng.pick(&["gp-other", "nobody", "a b"]).to_string(),
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        let option = rng.pick(options);
        return option
            .as_str()
            .map_or_else(|| option.to_string(), str::to_owned);
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("integer") => {
            let low = schema.get("minimum").and_then(Value::as_u64).unwrap_or(0);
            let high = schema
                .get("maximum")
                .and_then(Value::as_u64)
                .unwrap_or(low + 8);
            (low + rng.next() % (high - low + 1)).to_string()
        }
        Some("boolean") => rng.pick(&["true", "false"]).to_string(),
        _ if schema.get("format").and_then(Value::as_str) == Some("date-time") => rng
            .pick(&["2025-01-01T00:00:00Z", "2030-06-01T12:00:00+02:00"])
            .to_string(),
        _ => match name {
            "measure" => rng
                .pick(&["ldl", "systolic_bp", "hba1c", "nonsense"])
                .to_string(),
            "actor" => rng.pick(&["gp-1", "card-1", "nobody"]).to_string(),
            "element" => rng.pick(&["medication:C10AA05", "target:ldl"]).to_string(),
            _ => rng.pick(&["a", "first", "1"]).to_string(),
        },
    }
}

/// A request body for a write: valid commands of several kinds, and malformed ones.
/// A `careful` body is one of the valid ones, as JSON.
fn body(rng: &mut Rng, careful: bool) -> (Vec<u8>, &'static str) {
    let valid = [
        json!({"commands": [{"type": "add_note", "kind": "note", "subject": "Follow-up", "body": "Blood pressure at target.", "reason": "consultation"}]}),
        json!({"commands": [{"type": "record_measurement", "measure": "systolic_bp", "value": "138", "unit": "mm[Hg]", "source": "self_measured_at_home", "reason": "home reading"}]}),
        json!({"commands": [{"type": "set_target", "measure": "ldl", "comparator": "<=", "value": "1.8", "unit": "mmol/L", "basis": "esc_guideline", "reason": "high risk"}]}),
        json!({"commands": [{"type": "change_dose", "atc": "C10AA05", "dose": "20", "dose_unit": "mg", "frequency": "1x daily", "change_reason": "side_effects", "reason": "myalgia"}]}),
        json!({"commands": [{"type": "acknowledge_notification", "notification": "n-5-first"}]}),
        json!({"expected_revision": 0, "commands": [{"type": "start_shared_care", "arrangement": "CVRM", "reason": "letter"}]}),
    ];
    let malformed: [&[u8]; 6] = [
        b"",
        b"{",
        b"[]",
        br#"{"commands": []}"#,
        br#"{"commands": [{"type": "record_measurement", "measure": "ldl", "value": "abc"}]}"#,
        br#"{"commands": [{"type": "add_note", "kind": "note", "subject": "s", "body": "b", "extra": 1}]}"#,
    ];
    if careful {
        return (
            rng.pick(&valid).to_string().into_bytes(),
            "application/json",
        );
    }
    let content_type = if rng.chance(5) {
        "text/plain"
    } else {
        "application/json"
    };
    if rng.chance(70) {
        (rng.pick(&valid).to_string().into_bytes(), content_type)
    } else {
        (rng.pick(&malformed).to_vec(), content_type)
    }
}

/// A body for a signing key's registration: a valid one with a fresh key id, or a malformed one.
fn key_body(rng: &mut Rng, careful: bool) -> (Vec<u8>, &'static str) {
    let public_key =
        careledger_api::signature::base64_encode(&careledger_api::signature::public_key(&[13; 32]));
    let valid = json!({"key_id": format!("his-{}", rng.next()), "public_key": public_key,
        "system": "HIS", "reason": "signs my appends"});
    if careful || rng.chance(50) {
        return (valid.to_string().into_bytes(), "application/json");
    }
    let malformed: [&[u8]; 4] = [
        b"{",
        br#"{"key_id": "k"}"#,
        br#"{"key_id": "k", "public_key": "AAAA", "system": "s"}"#,
        br#"{"key_id": "k k", "public_key": "AAAA", "system": "s", "extra": 1}"#,
    ];
    (rng.pick(&malformed).to_vec(), "application/json")
}

/// A body for the operator's routes: a new actor (a fresh id), a rotation, or a backup into a
/// fresh directory under `backups`; or a malformed one.
fn admin_body(
    rng: &mut Rng,
    path: &str,
    careful: bool,
    backups: &std::path::Path,
) -> (Vec<u8>, &'static str) {
    if path == "/admin/backup" {
        let fresh = backups.join(format!("backup-{}", rng.next()));
        let valid = json!({ "to": fresh });
        if careful || rng.chance(50) {
            return (valid.to_string().into_bytes(), "application/json");
        }
        // Relative, not empty (the directory of every backup), not a path, unknown fields.
        let malformed = [
            json!({"to": "backups/today"}),
            json!({"to": backups}),
            json!({"to": 5}),
            json!({"to": fresh, "extra": 1}),
        ];
        return (
            rng.pick(&malformed).to_string().into_bytes(),
            "application/json",
        );
    }
    let valid = if path == "/admin/actors" {
        json!({"id": format!("auditor-{}", rng.next()), "name": "Auditor", "role": "auditor",
            "expires_in_days": 30})
    } else {
        json!({"grace_minutes": 5, "expires_in_days": 30})
    };
    if careful || rng.chance(50) {
        return (valid.to_string().into_bytes(), "application/json");
    }
    let malformed: [&[u8]; 5] = [
        b"{",
        br#"{"id": "gp-1", "name": "again", "role": "gp"}"#,
        br#"{"id": "feed-2", "name": "Feed", "role": "subscriber"}"#,
        br#"{"id": "x", "name": "X", "role": "surgeon", "extra": 1}"#,
        br#"{"expires_in_days": 0}"#,
    ];
    let content_type = if rng.chance(10) {
        "text/plain"
    } else {
        "application/json"
    };
    (rng.pick(&malformed).to_vec(), content_type)
}

/// Checks one answer against what the operation documents; returns the failure, if any.
fn check(
    doc: &Value,
    op: &Operation,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> Result<(), String> {
    if status >= 500 && status != 503 {
        return Err(format!("answered {status}"));
    }
    let Some(contents) = op
        .responses
        .get(&status.to_string())
        .or_else(|| op.responses.get("default"))
    else {
        let documented: Vec<&String> = op.responses.keys().collect();
        return Err(format!(
            "answered {status}, which the document does not list (it lists {documented:?})"
        ));
    };
    if contents.is_empty() {
        return Ok(());
    }
    let media = content_type.split(';').next().unwrap_or("").trim();
    let Some(schema) = contents.get(media) else {
        let documented: Vec<&String> = contents.keys().collect();
        return Err(format!(
            "answered {status} as {media:?}; the document gives {documented:?}"
        ));
    };
    if !media.ends_with("json") || schema.is_null() {
        // Text (a signed note) and streams are checked by their status and type.
        return Ok(());
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("answered {status} with a body that is not JSON: {e}"))?;
    // The schema with the document's components beside it, so that its local `$ref`s resolve.
    let mut rooted = json!({"$schema": "https://json-schema.org/draft/2020-12/schema"});
    if let Some(object) = schema.as_object() {
        for (k, v) in object {
            rooted[k] = v.clone();
        }
    }
    rooted["components"] = doc["components"].clone();
    let validator = jsonschema::validator_for(&rooted)
        .map_err(|e| format!("the documented schema does not compile: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .take(3)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "answered {status} with a body the schema refuses: {}\n{value}",
            errors.join("; ")
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_matches_the_served_openapi_document() {
    let seed = common::seed();
    let mut rng = Rng(seed | 1);
    let cases_asked: Option<usize> = std::env::var("CARELEDGER_CONFORMANCE_CASES")
        .ok()
        .and_then(|c| c.parse().ok());

    let f = Fixture::with_patient().await;
    // A signed checkpoint, so that GET /checkpoint has one to serve.
    f.data
        .start_checkpoints(
            None,
            careledger_core::checkpoint::CheckpointConfig::default(),
        )
        .unwrap()
        .finish();
    // And one after every event while the requests run: an export waits for the checkpoint
    // that covers the patient's last event (409 until then), and the stream sends each one.
    let checkpointer = f
        .data
        .start_checkpoints(
            None,
            careledger_core::checkpoint::CheckpointConfig {
                every_events: 1,
                every: Duration::from_secs(1),
            },
        )
        .unwrap();
    f.state.app.follow_checkpoints(&checkpointer);
    // Where the operator's backups go; one that is not empty for the refusals.
    let backups = tempfile::tempdir().unwrap();
    std::fs::write(backups.path().join("kept"), b"not empty").unwrap();
    // The operator, whose careful requests reach the admin routes.
    let operator = f
        .data
        .actors
        .add(careledger_app::actors::RegisteredActor::new(
            careledger_core::ids::ActorId::parse("op-1").unwrap(),
            careledger_core::ids::Text::new("Operator").unwrap(),
            careledger_app::actors::AccessRole::Operator,
        ))
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(careledger_api::serve(
        listener,
        f.state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    let doc: Value = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "an OpenAPI 3.1 document: {}",
        doc["openapi"]
    );
    let operations = operations(&doc);
    // The notifications open for each member of the care team, so that acknowledgements can
    // succeed (each once; later ones are refused as already acknowledged).
    let mut notifications = Vec::new();
    for actor in ["gp-1", "card-1", "nurse-1", "patient-1"] {
        let (_, body) = f
            .get(actor, &format!("/patients/{PATIENT}/notifications"))
            .await;
        for n in body["notifications"].as_array().into_iter().flatten() {
            notifications.extend(n["id"].as_str().map(str::to_owned));
        }
    }
    assert!(
        !notifications.is_empty(),
        "the fixture has open notifications"
    );
    assert!(operations.len() >= 10, "{} operations", operations.len());
    // About 45 requests per operation, so that each reaches success whatever the seed.
    let cases = cases_asked.unwrap_or(45 * operations.len());
    let fhir_id = {
        let view = f
            .data
            .projections
            .view(&PatientId::parse(PATIENT).unwrap())
            .unwrap()
            .unwrap();
        careledger_fhir::patient_key(&view).unwrap()
    };

    // Every actor, the care team's members twice as often, no token and an unknown one.
    let callers: Vec<Option<String>> = ACTORS
        .iter()
        .map(|(id, _)| Some(f.token(id)))
        .chain(["gp-1", "card-1", "patient-1"].map(|id| Some(f.token(id))))
        .chain([None, Some("not-a-token".to_owned()), Some(operator.clone())])
        .collect();
    let mut failures = Vec::new();
    let mut seen: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
    for case in 0..cases {
        let op = &operations[case % operations.len()];
        // One request in four is well-formed from a member of the care team (an auditor for the
        // access log), so that every operation's success is reached whatever the seed; the rest
        // are anything at all.
        let careful = rng.chance(25);
        let mut path = op.path.clone();
        // An `id` is a FHIR resource's on /fhir routes, an actor's on the operator's.
        let fhir_id: &str = if op.path.starts_with("/fhir") {
            &fhir_id
        } else {
            ""
        };
        let mut query = Vec::new();
        let mut headers = Vec::new();
        for parameter in &op.parameters {
            let name = parameter["name"].as_str().unwrap_or_default();
            let schema = &parameter["schema"];
            let required = parameter["required"].as_bool().unwrap_or(false);
            match parameter["in"].as_str() {
                Some("path") => {
                    let value =
                        parameter_value(&mut rng, name, schema, &notifications, fhir_id, careful);
                    let value = if value.is_empty() { "x".into() } else { value };
                    path = path.replace(&format!("{{{name}}}"), &value);
                }
                Some("query") if required || (!careful && rng.chance(50)) => {
                    query.push((
                        name.to_owned(),
                        parameter_value(&mut rng, name, schema, &notifications, fhir_id, careful),
                    ));
                }
                Some("header") if required || (!careful && rng.chance(30)) => {
                    headers.push((
                        name.to_owned(),
                        parameter_value(&mut rng, name, schema, &notifications, fhir_id, careful),
                    ));
                }
                _ => {}
            }
        }
        let url = format!("{base}{path}");
        let mut request = match op.method.as_str() {
            "post" => client.post(&url),
            "put" => client.put(&url),
            "patch" => client.patch(&url),
            "delete" => client.delete(&url),
            _ => client.get(&url),
        }
        .query(&query);
        let caller = match careful {
            true if op.path.starts_with("/admin/") => Some(operator.clone()),
            // The access log, the uses of the glass and /verify are the auditors' to read.
            true if op.path.contains("access-log")
                || op.path.ends_with("/emergency-access")
                || op.path == "/verify" =>
            {
                Some(f.token("auditor-1"))
            }
            true => {
                let member: &&str = rng.pick(&["gp-1", "card-1"]);
                Some(f.token(member))
            }
            false => rng.pick(&callers).clone(),
        };
        if let Some(token) = caller {
            request = request.bearer_auth(token);
        }
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if op.has_body {
            let (bytes, content_type) = match op.path.as_str() {
                "/actors/me/keys" => key_body(&mut rng, careful),
                admin if admin.starts_with("/admin/") => {
                    admin_body(&mut rng, admin, careful, backups.path())
                }
                _ => body(&mut rng, careful),
            };
            request = request.header("content-type", content_type).body(bytes);
        }
        let described = format!("{} {url} {query:?} {headers:?}", op.method.to_uppercase());
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{described}: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        *seen
            .entry(format!("{} {}", op.method, op.path))
            .or_default()
            .entry(status)
            .or_default() += 1;
        let bytes = if content_type.starts_with("text/event-stream") {
            // A stream does not end by itself: its status and type are what is checked.
            Vec::new()
        } else {
            response
                .bytes()
                .await
                .map(|b| b.to_vec())
                .unwrap_or_default()
        };
        if let Err(failure) = check(&doc, op, status, &content_type, &bytes) {
            failures.push(format!("{described}: {failure}"));
        }
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::task::block_in_place(|| checkpointer.finish());
    eprintln!("statuses per operation: {seen:#?}");
    assert!(
        failures.is_empty(),
        "{} of {cases} answers differ from the document (seed {seed}):\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    for (operation, statuses) in &seen {
        assert!(
            statuses.keys().any(|s| (200..300).contains(s)),
            "{operation} never answered with success; the generated requests miss it: {statuses:?}"
        );
    }
}
