//! The server's TLS configuration: its certificate chain and key from PEM files, and, when a
//! client CA is given, client certificates required and verified against it (mutual TLS for
//! client systems).
//!
//! rustls with the `ring` provider, named here rather than installed process-wide, so that
//! nothing else in the process depends on which provider is the default.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// What is wrong with the TLS files, as a sentence naming the file and how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsSetupError(String);

/// The server's TLS configuration from `cert` (PEM: the server's certificate first, then the
/// intermediates), `key` (PEM: its private key, PKCS#8, PKCS#1 or SEC1) and, if given,
/// `client_ca` (PEM: the CAs whose client certificates are accepted; every client must then
/// present one).
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(cert)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        TlsSetupError(format!(
            "--tls-key {}: no private key could be read ({e}); give the PEM file of the \
             certificate's private key",
            key.display()
        ))
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(format!("TLS protocol versions: {e}")))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(path)? {
                roots.add(ca).map_err(|e| {
                    TlsSetupError(format!(
                        "--tls-client-ca {}: a certificate is not a usable CA ({e})",
                        path.display()
                    ))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| TlsSetupError(format!("--tls-client-ca {}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key_der).map_err(|e| {
        TlsSetupError(format!(
            "--tls-cert {} and --tls-key {}: {e}; the key must be the certificate's",
            cert.display(),
            key.display()
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Every certificate in the PEM file at `path`; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let what = |e: &dyn std::fmt::Display| {
        TlsSetupError(format!(
            "{}: the certificates could not be read ({e}); give a PEM file with \
             -----BEGIN CERTIFICATE----- blocks",
            path.display()
        ))
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(&e))?;
    if certificates.is_empty() {
        return Err(what(&"the file holds none"));
    }
    Ok(certificates)
}

/// The TLS configuration careledger's own clients use (the identity provider's keys, the
/// command-line tool's requests to a running server): the system's trusted CAs
/// (`/etc/ssl/certs` and the like, as `SSL_CERT_FILE`/`SSL_CERT_DIR` name them) and, when
/// `extra_ca` is given, the CAs of that PEM file too (a hospital's own CA). `flag` names the
/// setting that gave `extra_ca`, for the error.
pub fn client_config(
    extra_ca: Option<&Path>,
    flag: &str,
) -> Result<rustls::ClientConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped: a machine without any still reaches servers
    // whose CA is given with `extra_ca`, and a missing CA shows as a failed handshake naming it.
    let system = rustls_native_certs::load_native_certs();
    for error in &system.errors {
        tracing::debug!(%error, "a system CA certificate could not be read");
    }
    let (_, unusable) = roots.add_parsable_certificates(system.certs);
    if unusable > 0 {
        tracing::debug!(
            unusable,
            "system CA certificates rustls cannot use were skipped"
        );
    }
    if let Some(path) = extra_ca {
        for ca in certificates(path)? {
            roots.add(ca).map_err(|e| {
                TlsSetupError(format!(
                    "{flag} {}: a certificate is not a usable CA ({e})",
                    path.display()
                ))
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsSetupError(format!(
            "no trusted CA certificates: this machine has none installed (install the \
             ca-certificates package) and {flag} was not given"
        )));
    }
    // No ALPN here: the HTTPS connector names the protocols it speaks.
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError(format!("TLS protocol versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
