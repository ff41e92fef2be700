//! careledger's outbound HTTP client, over plain HTTP or HTTPS: hyper's HTTP/1 client (the stack
//! axum builds on) with rustls, trusting the system's CAs and, when given, a CA file of the
//! operator's (a hospital's own CA). The identity provider's keys are read with it, and the
//! command-line tool talks to a running server with it.

use std::path::Path;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::tls::{client_config, TlsSetupError};

/// A pool of keep-alive connections to any `http://` or `https://` address.
#[derive(Clone, Debug)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A server's answer, its body read whole.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl HttpClient {
    /// A client trusting the system's CAs and those of `extra_ca` (PEM), connecting within
    /// `connect_timeout`. `flag` names the setting that gave `extra_ca`, for errors.
    pub fn new(
        extra_ca: Option<&Path>,
        flag: &str,
        connect_timeout: Duration,
    ) -> Result<Self, TlsSetupError> {
        let tls = client_config(extra_ca, flag)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends a `method` request to `url` with `headers` (name, value) and `body`, and reads
    /// the answer as [`HttpClient::send`] does.
    pub async fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("{method} {url}: {e}"))?;
        self.send(request, max_bytes, timeout).await
    }

    /// Sends `request` and reads the answer, at most `max_bytes` of body, all within `timeout`.
    /// The error is one line naming the address and the cause (a refused connection, a
    /// certificate not trusted, no answer in time).
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let url = request.uri().to_string();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{url}: {}", with_sources(&e)))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = Limited::new(response.into_body(), max_bytes)
                .collect()
                .await
                .map_err(|e| format!("reading the answer of {url}: {e}"))?
                .to_bytes();
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("{url}: no answer within {} s", timeout.as_secs()))?
    }
}

/// Whether `url` is an address this client can reach: `http://` or `https://` and a host.
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url} is not a URL ({e}); give http(s)://host[:port][/path]"))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(_)) => Ok(()),
        _ => Err(format!(
            "{url}: give an http:// or https:// address with a host, e.g. \
             https://careledger.example.org"
        )),
    }
}

/// An error with its causes, in one line ("client error (Connect): invalid peer certificate:
/// UnknownIssuer").
pub(crate) fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
