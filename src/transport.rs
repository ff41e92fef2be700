//! `careledger serve`'s flags for connections, per-token limits and TLS, and the check that a
//! server reachable from other machines speaks TLS unless told otherwise.

use std::net::ToSocketAddrs;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};

use careledger_api::limits::{
    DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_RATE_BURST,
    DEFAULT_RATE_PER_SECOND, DEFAULT_STREAMS_PER_TOKEN, DEFAULT_VERIFY_TIMEOUT,
};
use careledger_api::{Limits, Rate, Transport};

/// Connections, per-token limits and TLS (`docs/security/connections.md`).
#[derive(clap::Args, Clone, Debug)]
pub struct TransportArgs {
    /// The address browsers reach this server at, e.g. https://careledger.example.nl, also
    /// behind a TLS-terminating proxy: the pages' session cookies are `Secure` when it is
    /// https, and a form's `Origin` must be this address.
    #[arg(long, env = "CARELEDGER_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    /// Connections open at once. At the cap the oldest connection without a request in flight
    /// is closed to make room; when all have one, the new connection is closed at once.
    /// Lowered, with a warning, to what the process's descriptor limit (`ulimit -n`) allows.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS as u64, env = "CARELEDGER_MAX_CONNECTIONS",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_connections: u64,
    /// Seconds a connection has to send a request's head; also the longest a kept-alive
    /// connection stays idle between requests. Closed without an answer after it.
    #[arg(long, default_value_t = DEFAULT_HEADER_READ_TIMEOUT.as_secs(),
          env = "CARELEDGER_HEADER_READ_TIMEOUT_SECS",
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub header_read_timeout_secs: u64,
    /// Requests per second one token may send on average (429 with Retry-After beyond it);
    /// 0 turns the limit off.
    #[arg(long, default_value_t = DEFAULT_RATE_PER_SECOND, env = "CARELEDGER_RATE_LIMIT_PER_SECOND")]
    pub rate_limit_per_second: u32,
    /// Requests one token may send at once after a quiet period.
    #[arg(long, default_value_t = DEFAULT_RATE_BURST, env = "CARELEDGER_RATE_LIMIT_BURST",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit_burst: u32,
    /// Event streams (/events/stream) one token may have open at once (429 beyond it).
    #[arg(long, default_value_t = DEFAULT_STREAMS_PER_TOKEN, env = "CARELEDGER_MAX_STREAMS_PER_TOKEN",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_streams_per_token: u32,
    /// Seconds a /verify (a scan of the whole chain, auditors only) may run before it is
    /// stopped with 408; decimals allowed (0.5). Give about a second per million events.
    #[arg(long, default_value_t = DEFAULT_VERIFY_TIMEOUT.as_secs_f64(),
          env = "CARELEDGER_VERIFY_TIMEOUT_SECS", value_parser = verify_timeout)]
    pub verify_timeout_secs: f64,
    /// Serve HTTPS with this certificate chain (PEM, the server's certificate first).
    #[arg(long, env = "CARELEDGER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "CARELEDGER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Require a client certificate signed by one of these CAs (PEM) of every client: for
    /// client systems that authenticate with a certificate as well as their token.
    #[arg(long, env = "CARELEDGER_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Serve plain HTTP on an address other machines can reach (behind a proxy that
    /// terminates TLS on the same host or network segment). Without it, such an address needs
    /// --tls-cert and --tls-key.
    #[arg(long, env = "CARELEDGER_ALLOW_PLAINTEXT")]
    pub allow_plaintext: bool,
}

/// A /verify time limit: a number of seconds from a millisecond to a day.
fn verify_timeout(text: &str) -> Result<f64, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds (e.g. 300 or 0.5)"))?;
    if !(0.001..=86_400.0).contains(&secs) {
        return Err(format!("{secs} s: give from 0.001 to 86400 seconds"));
    }
    Ok(secs)
}

impl TransportArgs {
    /// The server's limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            rate: (self.rate_limit_per_second > 0).then_some(Rate {
                per_second: self.rate_limit_per_second,
                burst: self.rate_limit_burst,
            }),
            streams_per_token: self.max_streams_per_token,
            verify_timeout: Duration::from_secs_f64(self.verify_timeout_secs),
        }
    }

    /// Plain HTTP, or HTTPS from the PEM files given; refuses plain HTTP on an address that
    /// is not loopback unless --allow-plaintext says so.
    pub fn transport(&self, addr: &str) -> anyhow::Result<Transport> {
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let config =
                careledger_api::tls::server_config(cert, key, self.tls_client_ca.as_deref())?;
            return Ok(Transport::Tls(config));
        }
        let reachable: Vec<_> = addr
            .to_socket_addrs()
            .with_context(|| format!("resolving --addr {addr}"))?
            .filter(|a| !a.ip().is_loopback())
            .collect();
        if reachable.is_empty() {
            return Ok(Transport::Plain);
        }
        if !self.allow_plaintext {
            return Err(anyhow!(
                "--addr {addr} is reachable from other machines, and without TLS tokens and \
                 patients' data would cross the network in the clear: give --tls-cert and \
                 --tls-key, or, behind a proxy that terminates TLS, --allow-plaintext"
            ));
        }
        tracing::warn!(
            %addr,
            "serving plain HTTP on an address other machines can reach (--allow-plaintext): \
             tokens and patients' data cross the network unencrypted unless a proxy in front \
             terminates TLS"
        );
        Ok(Transport::Plain)
    }
}

/// `--public-url`: an http:// or https:// origin, without a path.
fn parse_public_url(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "{raw:?} is no address; give it as https://host[:port]"
        ));
    };
    if scheme != "https" && scheme != "http" {
        return Err(format!(
            "{raw:?}: the public address is http:// or https://"
        ));
    }
    if rest.is_empty() || rest.contains('/') {
        return Err(format!(
            "{raw:?}: give the origin only (https://host[:port]), without a path"
        ));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct Flags {
        #[command(flatten)]
        transport: TransportArgs,
    }

    fn transport(args: &[&str], addr: &str) -> anyhow::Result<Transport> {
        let flags = Flags::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))?;
        flags.transport.transport(addr)
    }

    #[test]
    fn plain_http_is_refused_on_a_reachable_address_unless_allowed_and_always_fine_on_loopback() {
        assert!(matches!(
            transport(&[], "127.0.0.1:8080"),
            Ok(Transport::Plain)
        ));
        assert!(matches!(transport(&[], "[::1]:8080"), Ok(Transport::Plain)));
        let refused = transport(&[], "0.0.0.0:8080").err().unwrap().to_string();
        assert!(refused.contains("--allow-plaintext"), "{refused}");
        assert!(matches!(
            transport(&["--allow-plaintext"], "0.0.0.0:8080"),
            Ok(Transport::Plain)
        ));
        assert!(matches!(
            transport(&["--allow-plaintext"], "192.0.2.10:8080"),
            Ok(Transport::Plain)
        ));
    }

    #[test]
    fn the_verify_limit_takes_decimal_seconds_within_a_day() {
        let limits = |args: &[&str]| {
            Flags::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
                .map(|f| f.transport.limits().verify_timeout)
        };
        assert_eq!(limits(&[]).unwrap(), DEFAULT_VERIFY_TIMEOUT);
        assert_eq!(
            limits(&["--verify-timeout-secs", "0.5"]).unwrap(),
            Duration::from_millis(500)
        );
        for bad in ["0", "-1", "90000", "soon"] {
            let flag = format!("--verify-timeout-secs={bad}");
            let error = limits(&[&flag]).err().unwrap().to_string();
            assert!(error.contains("seconds"), "{bad}: {error}");
        }
    }
}
