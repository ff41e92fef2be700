//! A running server, reached by the command-line tool over HTTP or HTTPS (`--url`, `--token`,
//! `--ca-file`): the commands that would otherwise open the data directory, which the server
//! holds, ask the server instead.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use serde_json::Value;

use careledger_api::client::{check_url, HttpClient};

/// The largest answer read (a long audit trail or an actor list).
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A running server to read through instead of the data directory it holds.
#[derive(clap::Args, Clone, Debug)]
pub struct ServerArgs {
    /// A running server's address (http://127.0.0.1:8080, https://...): the command goes
    /// through it, with --token, instead of opening the data directory (which the server holds).
    #[arg(long, env = "CARELEDGER_URL")]
    pub url: Option<String>,
    /// The bearer token the command acts with, for --url: an operator's for `actors`, an
    /// auditor's for `verify`, the reader's for `plan`, `audit` and `notifications`.
    #[arg(long, env = "CARELEDGER_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CAs (PEM) to trust for an https:// --url besides the system's.
    #[arg(long, env = "CARELEDGER_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

impl ServerArgs {
    /// The server named by `--url`, if one is, called with the token of `whose` ("an
    /// operator's", "an auditor's"): refused without a token.
    pub fn remote(&self, whose: &str) -> anyhow::Result<Option<Remote>> {
        let Some(url) = &self.url else {
            return Ok(None);
        };
        let token = self
            .token
            .clone()
            .ok_or_else(|| anyhow!("--url needs {whose} --token (or CARELEDGER_TOKEN)"))?;
        Ok(Some(Remote::new(url, token, self.ca_file.as_ref())?))
    }
}

/// A running server's address, a bearer token and the CAs to trust for it.
pub struct Remote {
    base: String,
    token: String,
    client: HttpClient,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    /// The server at `url` (http:// or https://), called with `token`; an https server's
    /// certificate is checked against the system's CAs and those of `ca_file`.
    pub fn new(url: &str, token: String, ca_file: Option<&PathBuf>) -> anyhow::Result<Remote> {
        check_url(url).map_err(|e| anyhow!("--url {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = HttpClient::new(ca_file.map(PathBuf::as_path), "--ca-file", CONNECT_TIMEOUT)?;
        Ok(Remote {
            base: url.trim_end_matches('/').to_owned(),
            token,
            client,
            runtime,
        })
    }

    /// Sends one request with a JSON body if given and returns the JSON answer; a problem
    /// answer is an error with its detail and code.
    pub fn send(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let bearer = format!("Bearer {}", self.token);
        let mut headers = vec![("accept", "application/json"), ("authorization", &bearer)];
        let bytes = match body {
            Some(body) => {
                headers.push(("content-type", "application/json"));
                serde_json::to_vec(&body)?
            }
            None => Vec::new(),
        };
        let call = self.client.call(
            method,
            &url,
            &headers,
            bytes,
            MAX_ANSWER_BYTES,
            REQUEST_TIMEOUT,
        );
        let answer = self
            .runtime
            .block_on(call)
            .map_err(|e| anyhow!("could not reach the server: {e}; is it running there?"))?;
        let status = answer.status;
        let value: Value = serde_json::from_slice(&answer.body)
            .map_err(|_| anyhow!("{url} answered {status} with no JSON"))?;
        if !status.is_success() {
            return Err(anyhow!(
                "{} ({status}, {})",
                value["detail"].as_str().unwrap_or("refused"),
                value["code"].as_str().unwrap_or("?")
            ));
        }
        Ok(value)
    }
}
