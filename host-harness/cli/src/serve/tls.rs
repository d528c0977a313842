//! TLS for `serve`, and optionally mutual TLS: a client must then present a certificate signed
//! by one of the configured CAs before any HTTP is read. Each handshake runs on its
//! connection's own task, bounded in time (`serve/mod.rs`), so a client that stalls one cannot
//! hold the listener.

use anyhow::{Context, Result};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;
/// The largest PEM file read.
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// `[tls]`: the service's certificate and key, and the CAs whose client certificates it
/// requires (mutual TLS), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the service's first.
    pub cert_file: PathBuf,
    /// PEM private key.
    pub key_file: PathBuf,
    /// PEM CA certificates: when set, every client must present a certificate they signed.
    pub client_ca_file: Option<PathBuf>,
}

impl TlsFiles {
    /// The server configuration the files describe.
    pub fn acceptor(&self) -> Result<TlsAcceptor> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&read(&self.cert_file)?)
                .collect::<Result<_, _>>()
                .with_context(|| {
                    format!(
                        "tls.cert-file {}: not PEM certificates",
                        self.cert_file.display()
                    )
                })?;
        if chain.is_empty() {
            anyhow::bail!(
                "tls.cert-file {}: holds no certificate",
                self.cert_file.display()
            );
        }
        let key = PrivateKeyDer::from_pem_slice(&read(&self.key_file)?).map_err(|_| {
            anyhow::anyhow!(
                "tls.key-file {}: no PEM private key",
                self.key_file.display()
            )
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?;
        let builder = match &self.client_ca_file {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for ca in CertificateDer::pem_slice_iter(&read(path)?) {
                    let ca = ca.with_context(|| {
                        format!("tls.client-ca-file {}: not PEM", path.display())
                    })?;
                    roots.add(ca).with_context(|| {
                        format!(
                            "tls.client-ca-file {}: not a CA certificate",
                            path.display()
                        )
                    })?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .with_context(|| format!("tls.client-ca-file {}", path.display()))?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder
            .with_single_cert(chain, key)
            .context("tls.key-file does not match tls.cert-file")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    let length = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if length > MAX_PEM_BYTES {
        anyhow::bail!("{} is larger than {MAX_PEM_BYTES} bytes", path.display());
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
