//! The OpenAPI 3.1 document of the API, served at `/openapi.json`.
#![allow(dead_code, missing_docs)]

use serde_json::{json, Value};

use careledger_core::quantity::Measure;

use super::legacy_dto::COMMAND_TYPES;

/// The fields of each command type: (name, JSON Schema, required).
type Fields = &'static [(&'static str, &'static str, bool)];

const S: &str = r#"{"type": "string"}"#;
/// Stands for the measure codes; [`measure_schema`] lists them from `Measure::ALL`.
const MEASURE: &str = r#"{"type": "string", "format": "measure"}"#;
const DECIMAL: &str = r#"{"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$", "description": "a decimal in the measure's unit and precision, e.g. \"1.8\""}"#;
/// Stands for an array of measure codes; [`measure_schema`] fills in the items.
const TESTS: &str = r#"{"type": "array", "format": "measures"}"#;
const DOSE_UNIT: &str = r#"{"type": "string", "enum": ["mg", "ug", "mL", "[iU]", "tablet"]}"#;
const CHANGE_REASON: &str = r#"{"type": "string", "enum": ["side_effects", "target_not_reached", "patient_preference", "other"]}"#;
const POSITION: &str = r#"{"type": "integer", "minimum": 1}"#;
const INTOLERANCE_KIND: &str =
    r#"{"type": "string", "enum": ["intolerance", "contra_indication"], "default": "intolerance"}"#;
const CODE_SYSTEM: &str = r#"{"type": "string", "enum": ["icpc_1_nl", "icd_10", "http://hl7.org/fhir/sid/icpc-1-nl", "http://hl7.org/fhir/sid/icd-10"], "description": "ICPC-1-NL in general practice (K75, T90.02), ICD-10 in the hospital (I21, I50.9)"}"#;
const SMOKING_STATUS: &str = r#"{"type": "string", "enum": ["never", "former", "current"], "description": "LOINC 72166-2; SNOMED CT 266919005, 8517006, 77176002"}"#;

/// Every command and its fields; `reason` and `occurred_at` are common to all.
const COMMANDS: [(&str, Fields); 24] = [
    (
        "add_care_team_member",
        &[
            ("actor", S, true),
            ("name", S, true),
            (
                "agb",
                r#"{"type": "string", "pattern": "^[0-9]{8}$"}"#,
                false,
            ),
            (
                "role",
                r#"{"type": "string", "enum": ["gp", "practice_nurse", "practice_assistant", "cardiologist", "vascular_internist", "elderly_care_physician", "pharmacist", "patient"]}"#,
                true,
            ),
            (
                "lead",
                r#"{"type": "string", "enum": ["cvrm", "organ_disease", "none"]}"#,
                false,
            ),
            (
                "practitioner",
                r#"{"type": "string", "enum": ["main", "co", "not_applicable"]}"#,
                false,
            ),
        ],
    ),
    ("remove_care_team_member", &[("actor", S, true)]),
    ("start_shared_care", &[("arrangement", S, true)]),
    ("end_shared_care", &[("arrangement", S, true)]),
    (
        "set_target",
        &[
            ("measure", MEASURE, true),
            (
                "comparator",
                r#"{"type": "string", "enum": ["<=", "<", ">=", ">"]}"#,
                true,
            ),
            ("value", DECIMAL, true),
            ("unit", S, true),
            (
                "basis",
                r#"{"type": "string", "enum": ["nhg_guideline", "esc_guideline", "individual"]}"#,
                true,
            ),
            ("rationale", S, false),
        ],
    ),
    ("withdraw_target", &[("measure", MEASURE, true)]),
    (
        "start_medication",
        &[
            ("atc", S, true),
            ("name", S, true),
            ("dose", DECIMAL, true),
            ("dose_unit", DOSE_UNIT, true),
            ("frequency", S, true),
            ("indication_problem", S, false),
            ("indication_text", S, false),
        ],
    ),
    (
        "change_dose",
        &[
            ("atc", S, true),
            ("dose", DECIMAL, true),
            ("dose_unit", DOSE_UNIT, true),
            ("frequency", S, true),
            ("change_reason", CHANGE_REASON, true),
            ("change_reason_text", S, false),
        ],
    ),
    (
        "stop_medication",
        &[
            ("atc", S, true),
            ("change_reason", CHANGE_REASON, true),
            ("change_reason_text", S, false),
        ],
    ),
    (
        "record_medication_preference",
        &[("atc", S, true), ("name", S, true), ("preference", S, true)],
    ),
    (
        "order_lab",
        &[
            ("order", S, true),
            ("tests", TESTS, true),
            ("annual_panel", r#"{"type": "boolean"}"#, false),
        ],
    ),
    ("extend_annual_panel", &[("tests", TESTS, true)]),
    (
        "record_lab_result",
        &[
            ("order", S, false),
            ("measure", MEASURE, true),
            ("value", DECIMAL, true),
            ("unit", S, true),
        ],
    ),
    (
        "record_measurement",
        &[
            ("measure", MEASURE, true),
            ("value", DECIMAL, true),
            ("unit", S, true),
            (
                "source",
                r#"{"type": "string", "enum": ["practice", "hospital", "self_measured_at_home"]}"#,
                true,
            ),
        ],
    ),
    (
        "set_lifestyle_goal",
        &[("goal", S, true), ("description", S, true)],
    ),
    (
        "close_lifestyle_goal",
        &[
            ("goal", S, true),
            (
                "outcome",
                r#"{"type": "string", "enum": ["achieved", "abandoned", "replaced"]}"#,
                true,
            ),
        ],
    ),
    (
        "add_note",
        &[
            (
                "kind",
                r#"{"type": "string", "enum": ["note", "return_letter", "interim_letter"]}"#,
                false,
            ),
            ("subject", S, true),
            ("body", S, false),
        ],
    ),
    (
        "acknowledge_notification",
        &[
            (
                "notification",
                r#"{"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^n-[0-9]+(-(first|second|patient))?$"}], "description": "the causing position, or a notification id such as n-42-second"}"#,
                true,
            ),
            (
                "recipient",
                r#"{"type": "string", "enum": ["first", "second", "patient"], "description": "whose notification; defaults to the acting line"}"#,
                false,
            ),
        ],
    ),
    ("mark_entered_in_error", &[("position", POSITION, true)]),
    (
        "hand_over_lead",
        &[
            (
                "lead",
                r#"{"type": "string", "enum": ["cvrm", "organ_disease"]}"#,
                true,
            ),
            (
                "to",
                r#"{"type": "string", "description": "the member who takes the lead"}"#,
                true,
            ),
        ],
    ),
    (
        "record_intolerance",
        &[
            ("atc", S, true),
            ("substance", S, true),
            ("kind", INTOLERANCE_KIND, false),
            ("reaction", S, true),
        ],
    ),
    (
        "record_problem",
        &[
            ("problem", S, true),
            ("code_system", CODE_SYSTEM, true),
            ("code", S, true),
            ("description", S, true),
        ],
    ),
    ("resolve_problem", &[("problem", S, true)]),
    ("record_smoking_status", &[("status", SMOKING_STATUS, true)]),
];

/// The measure codes with their UCUM unit and LOINC code.
fn measure_schema() -> Value {
    let codes: Vec<&str> = Measure::ALL.iter().map(|m| m.code()).collect();
    let described: Vec<String> = Measure::ALL
        .iter()
        .map(|m| format!("{} ({}, LOINC {})", m.code(), m.unit(), m.loinc()))
        .collect();
    json!({"type": "string", "enum": codes, "description": described.join("; ")})
}

fn field_schema(schema: &str) -> Value {
    if schema == MEASURE {
        measure_schema()
    } else if schema == TESTS {
        json!({"type": "array", "minItems": 1, "items": measure_schema()})
    } else {
        serde_json::from_str(schema).unwrap_or(Value::Null)
    }
}

/// One schema per command type, keyed by the `type` discriminator.
fn command_schemas() -> Value {
    let mut schemas = serde_json::Map::new();
    for (kind, fields) in COMMANDS {
        let mut properties = serde_json::Map::new();
        properties.insert("type".into(), json!({"const": kind}));
        properties.insert(
            "reason".into(),
            json!({"type": "string", "maxLength": 8192}),
        );
        properties.insert(
            "occurred_at".into(),
            json!({"type": "string", "format": "date-time"}),
        );
        let mut required = vec![json!("type")];
        for (name, schema, is_required) in fields {
            properties.insert((*name).into(), field_schema(schema));
            if *is_required {
                required.push(json!(name));
            }
        }
        schemas.insert(
            format!("Command_{kind}"),
            json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false}),
        );
    }
    Value::Object(schemas)
}

fn problem_responses() -> Value {
    let problem = json!({"description": "RFC 9457 problem", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    json!({"400": problem, "401": problem, "403": problem, "422": problem, "503": problem})
}

fn op(summary: &str, params: Value, ok: &str) -> Value {
    let mut responses = problem_responses();
    responses[ok] = json!({"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}});
    json!({"summary": summary, "parameters": params, "security": [{"bearer": []}], "responses": responses})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": {"type": "string"}})
}

/// Every route the router serves, as (method, path); the document covers exactly these.
pub const ROUTES: [(&str, &str); 13] = [
    ("get", "/health"),
    ("get", "/openapi.json"),
    ("get", "/verify"),
    ("get", "/events"),
    ("get", "/events/stream"),
    ("post", "/patients/{patient}/events"),
    ("get", "/patients/{patient}/events"),
    ("get", "/patients/{patient}/plan"),
    ("get", "/patients/{patient}/audit"),
    ("get", "/patients/{patient}/signals"),
    ("get", "/patients/{patient}/measures/{measure}"),
    ("get", "/patients/{patient}/notifications"),
    (
        "post",
        "/patients/{patient}/notifications/{notification}/ack",
    ),
];

/// The document.
pub fn document() -> Value {
    let patient = path_param("patient");
    let mut append = op(
        "Append commands to a patient's care plan; answers after the events are durable",
        json!([patient, {"name": "If-Match", "in": "header", "schema": {"type": "string"}, "description": "expected revision: a number, \"no_stream\" or \"any\""},
               {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}, "description": "a retry with the same key and content writes once"}]),
        "201",
    );
    append["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AppendBody"}}}});
    append["responses"]["409"] = json!({"description": "revision or idempotency conflict", "content": {"application/problem+json": {}}});
    append["responses"]["413"] =
        json!({"description": "body too large", "content": {"application/problem+json": {}}});
    append["responses"]["415"] =
        json!({"description": "not JSON", "content": {"application/problem+json": {}}});
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "careledger", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Event-sourced, hash-chained care-plan ledger for shared care between GP and specialist."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {"type": "object", "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"}, "code": {"type": "string"}}},
                "Command": {
                    "oneOf": COMMAND_TYPES.iter().map(|t| json!({"$ref": format!("#/components/schemas/Command_{t}")})).collect::<Vec<_>>(),
                    "discriminator": {"propertyName": "type"}},
                "AppendBody": {"type": "object", "required": ["commands"], "properties": {
                    "expected_revision": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "enum": ["no_stream", "any"]}]},
                    "commands": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"$ref": "#/components/schemas/Command"}}}}
            }
        },
        "paths": {
            "/health": {"get": {"summary": "Health: 503 with the reason and its class (damaged: acknowledged events missing or changed, by the anchor or the head check; storage: a storage failure)", "responses": {"200": {"description": "healthy"}, "503": {"description": "unhealthy"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/verify": {"get": op("Verify the whole chain, the per-patient index and the anchor: 200 with count and head hash only when intact, else 409 problem+json with the position", json!([]), "200")},
            "/events": {"get": op("The global log after a position, paged", json!([query_param("after", "position to read after (0 = start)"), query_param("limit", "page size, 1 to 1000"), query_param("patient", "only this patient")]), "200")},
            "/events/stream": {"get": op("Server-Sent Events from a position on: catch-up then live; the SSE id is the position; resume with Last-Event-ID", json!([query_param("after", "position to read after"), query_param("patient", "only this patient"), {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}]), "200")},
            "/patients/{patient}/events": {
                "post": append,
                "get": op("The patient's events with hashes", json!([patient, query_param("from_revision", "first revision (1)"), query_param("limit", "1 to 1000")]), "200")
            },
            "/patients/{patient}/plan": {"get": op("The current care plan (IZP) with provenance: what stands (entries marked entered in error count for nothing), the medication history, the last values of each measure with their trend, and the corrections with who corrected, when and why", json!([patient]), "200")},
            "/patients/{patient}/audit": {"get": op("The audit trail", json!([patient, query_param("element", "e.g. target:ldl, medication:C10AA05, or a prefix medication:"), query_param("actor", "actor id"), query_param("line", "first, second or patient"), query_param("from", "RFC 3339, recorded at or after"), query_param("until", "RFC 3339, recorded before")]), "200")},
            "/patients/{patient}/measures/{measure}": {"get": op("Every value of one measure (lab results and measurements) in clinical order (occurred_at, then position), with source and provenance, entries marked entered in error included and marked, the latest value that stands and the trend; 404 names the known measures", json!([patient, path_param("measure")]), "200")},
            "/patients/{patient}/signals": {"get": op("Signals: duplicate lab work, annual lab due, target not met, home trends, open and expired lab orders (pending since), annual panel incomplete, a lead without its main practitioner", json!([patient]), "200")},
            "/patients/{patient}/notifications": {"get": op("Notifications to the caller's line", json!([patient, query_param("status", "open (default), overdue or all")]), "200")},
            "/patients/{patient}/notifications/{notification}/ack": {"post": op("Acknowledge a notification (records a notification_acknowledged event)", json!([patient, path_param("notification")]), "201")}
        }
    });
    doc["paths"]["/events/stream"]["get"]["responses"]["200"] = json!({"description": "the stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}});
    doc["paths"]["/patients/{patient}/measures/{measure}"]["get"]["responses"]["404"] = json!({"description": "no such measure; the detail names the known ones", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    if let (Some(schemas), Value::Object(commands)) = (
        doc["components"]["schemas"].as_object_mut(),
        command_schemas(),
    ) {
        schemas.extend(commands);
    }
    doc
}
