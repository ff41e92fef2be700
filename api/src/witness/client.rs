//! The log's HTTP client for its witnesses: hyper's HTTP/1 client (the stack axum builds on),
//! one pool of keep-alive connections for every witness.

use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::http::Request;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use careledger_app::witnesses::{BoxFuture, WitnessClient, WitnessReply};

use super::server::TLOG_SIZE;

/// Longest answer read from a witness (a few signature lines are a few hundred bytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How long connecting to a witness may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Posts add-checkpoint requests to witnesses over plain HTTP/1.1.
#[derive(Clone, Debug)]
pub struct HttpWitnessClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpWitnessClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpWitnessClient {
    /// A client with its own connection pool.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    async fn post(&self, url: &str, body: Vec<u8>) -> Result<WitnessReply, String> {
        let request = Request::post(format!("{url}/add-checkpoint"))
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{url}: {e}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| with_sources(&e))?;
        let status = response.status().as_u16();
        let sized = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(TLOG_SIZE));
        let body: Incoming = response.into_body();
        let bytes = Limited::new(body, MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the witness's answer: {e}"))?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let size = text.strip_suffix('\n').and_then(|n| n.parse().ok());
        Ok(match (status, size) {
            (200, _) => WitnessReply::Cosigned(text.into_owned()),
            (409, Some(size)) if sized => WitnessReply::Conflict(size),
            _ => WitnessReply::Refused {
                status,
                body: text.trim_end().chars().take(400).collect(),
            },
        })
    }
}

impl WitnessClient for HttpWitnessClient {
    fn add_checkpoint<'a>(
        &'a self,
        url: &'a str,
        body: Vec<u8>,
    ) -> BoxFuture<'a, Result<WitnessReply, String>> {
        Box::pin(self.post(url, body))
    }
}

/// An error with its causes, in one line ("client error (Connect): tcp connect error: …").
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
