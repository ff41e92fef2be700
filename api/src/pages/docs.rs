//! `GET /docs`: the API described as a page, built from the served OpenAPI document (so that
//! the two cannot differ), with no external assets.

use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde_json::Value;

use super::{html, layout, PageLang};

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The API's routes by tag, each with its method, path, summary and description.
pub async fn docs(lang: PageLang) -> Response {
    let l = lang.lang;
    let doc: Value =
        serde_json::from_slice(&crate::openapi::document_bytes()).unwrap_or(Value::Null);
    let title = doc["info"]["title"].as_str().unwrap_or("careledger API");
    let version = doc["info"]["version"].as_str().unwrap_or("");
    let mut operations: Vec<(String, &str, String, &Value)> = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(op) = item.get(method) {
                    let tag = op["tags"][0].as_str().unwrap_or("other").to_owned();
                    operations.push((tag, method, path.clone(), op));
                }
            }
        }
    }
    operations.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
    let mut tags: Vec<&str> = operations.iter().map(|o| o.0.as_str()).collect();
    tags.dedup();
    let body = html! {
        h1 { (title) " " small { (version) } }
        p {
            (l.pick("Deze pagina beschrijft de HTTP-API; het machineleesbare document staat op ",
                    "This page describes the HTTP API; the machine-readable document is at "))
            a href="/openapi.json" { "/openapi.json" } ". "
            (l.pick("Clinici en patiënten lezen het zorgplan op ", "Clinicians and patients read the care plan at "))
            a href="/ui" { "/ui" } "."
        }
        nav aria-label=(l.pick("Onderdelen", "Sections")) {
            ul { @for t in &tags { li { a href={ "#tag-" (t) } { (t) } } } }
        }
        @for t in &tags {
            section aria-labelledby={ "tag-" (t) } {
                h2 id={ "tag-" (t) } { (t) }
                @for (_, method, path, op) in operations.iter().filter(|o| o.0 == *t) {
                    article {
                        h3 { code { (method.to_uppercase()) " " (path) } }
                        @if let Some(s) = op["summary"].as_str() { p { strong { (s) } } }
                        @if let Some(d) = op["description"].as_str() { p { (d) } }
                        @if let Some(params) = op["parameters"].as_array() {
                            @if !params.is_empty() {
                                ul { @for p in params {
                                    li { code { (p["name"].as_str().unwrap_or("")) } " (" (p["in"].as_str().unwrap_or("")) ")"
                                        @if let Some(d) = p["description"].as_str() { ": " (d) } }
                                } }
                            }
                        }
                        @if let Some(responses) = op["responses"].as_object() {
                            ul.muted { @for (status, r) in responses {
                                li { (status) ": " (r["description"].as_str().unwrap_or("")) }
                            } }
                        }
                    }
                }
            }
        }
    };
    let title = format!("{title} — {}", l.pick("documentatie", "documentation"));
    html(StatusCode::OK, lang, layout::bare(l, &title, body))
}
