//! The OpenAPI 3.1 document of the API, served at `/openapi.json`.

use serde_json::{json, Value};

use crate::dto::COMMAND_TYPES;

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
pub const ROUTES: [(&str, &str); 12] = [
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
    json!({
        "openapi": "3.1.0",
        "info": {"title": "careledger", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Event-sourced, hash-chained care-plan ledger for shared care between GP and specialist."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {"type": "object", "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"}, "code": {"type": "string"}}},
                "Command": {"type": "object", "required": ["type"], "properties": {
                    "type": {"type": "string", "enum": COMMAND_TYPES},
                    "reason": {"type": "string"}, "occurred_at": {"type": "string", "format": "date-time"}},
                    "additionalProperties": true},
                "AppendBody": {"type": "object", "required": ["commands"], "properties": {
                    "expected_revision": {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "enum": ["no_stream", "any"]}]},
                    "commands": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {"$ref": "#/components/schemas/Command"}}}}
            }
        },
        "paths": {
            "/health": {"get": {"summary": "Health: 503 with the reason when the head of the chain does not verify", "responses": {"200": {"description": "healthy"}, "503": {"description": "unhealthy"}}}},
            "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/verify": {"get": op("Verify the whole chain: count, head hash, first problem", json!([]), "200")},
            "/events": {"get": op("The global log after a position, paged", json!([query_param("after", "position to read after (0 = start)"), query_param("limit", "page size, 1 to 1000"), query_param("patient", "only this patient")]), "200")},
            "/events/stream": {"get": op("Server-Sent Events from a position on: catch-up then live; the SSE id is the position; resume with Last-Event-ID", json!([query_param("after", "position to read after"), query_param("patient", "only this patient"), {"name": "Last-Event-ID", "in": "header", "schema": {"type": "string"}}]), "200")},
            "/patients/{patient}/events": {
                "post": append,
                "get": op("The patient's events with hashes", json!([patient, query_param("from_revision", "first revision (1)"), query_param("limit", "1 to 1000")]), "200")
            },
            "/patients/{patient}/plan": {"get": op("The current care plan (IZP) with provenance", json!([patient]), "200")},
            "/patients/{patient}/audit": {"get": op("The audit trail", json!([patient, query_param("element", "e.g. target:ldl, medication:C10AA05, or a prefix medication:"), query_param("actor", "actor id"), query_param("line", "first, second or patient"), query_param("from", "RFC 3339, recorded at or after"), query_param("until", "RFC 3339, recorded before")]), "200")},
            "/patients/{patient}/signals": {"get": op("Signals: duplicate lab work, annual lab due, target not met, home trends", json!([patient]), "200")},
            "/patients/{patient}/notifications": {"get": op("Notifications to the caller's line", json!([patient, query_param("status", "open (default), overdue or all")]), "200")},
            "/patients/{patient}/notifications/{notification}/ack": {"post": op("Acknowledge a notification (records a notification_acknowledged event)", json!([patient, path_param("notification")]), "201")}
        }
    })
}
