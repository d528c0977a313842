//! Which certificate authorities the host trusts: the operating system's roots, the bundled web
//! PKI roots, and the roots of a `ca-file` (a TLS-inspecting proxy's, a private API gateway's).

use ring::digest::{Context, SHA256};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use thiserror::Error;

/// The largest `ca-file` read: a bundle of a few hundred certificates.
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Why a `ca-file` cannot be used.
#[derive(Debug, Error)]
pub enum TrustError {
    /// It could not be read, is not a regular file, is too large, or other users can write it.
    #[error("the CA file: {0}")]
    Read(String),
    /// It holds no PEM certificate, or a broken one.
    #[error("the CA file {path} {reason}")]
    NoCertificate {
        /// The CA file that holds no usable certificate.
        path: PathBuf,
        /// What was found instead.
        reason: String,
    },
}

/// Certificate authorities trusted besides the system's and the bundled ones. Cheap to clone;
/// compared and hashed by a digest of the certificates.
#[derive(Clone, Default)]
pub struct TrustedRoots {
    certificates: Arc<Vec<CertificateDer<'static>>>,
    digest: [u8; 32],
}

impl TrustedRoots {
    /// The certificates of a PEM file (one or many `CERTIFICATE` blocks; anything else in the
    /// file is ignored).
    /// The file must be a regular file that no other user can write: whoever can write it
    /// decides whom the host trusts.
    pub fn from_pem_file(path: &Path) -> Result<Self, TrustError> {
        let pem = crate::private_file::read(path, MAX_CA_FILE_BYTES).map_err(TrustError::Read)?;
        Self::from_pem(&pem).map_err(|reason| TrustError::NoCertificate {
            path: path.to_owned(),
            reason,
        })
    }

    /// The certificates of PEM text; an error says what is missing.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("holds a certificate that does not parse ({e})"))?;
        if certificates.is_empty() {
            return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
        }
        let mut roots = RootCertStore::empty();
        let (_, refused) = roots.add_parsable_certificates(certificates.iter().cloned());
        if refused > 0 {
            return Err(format!(
                "holds {refused} certificate(s) that cannot be a trust anchor"
            ));
        }
        Ok(Self::from_certificates(certificates))
    }

    fn from_certificates(certificates: Vec<CertificateDer<'static>>) -> Self {
        let mut context = Context::new(&SHA256);
        for certificate in &certificates {
            context.update(
                &u64::try_from(certificate.len())
                    .unwrap_or(u64::MAX)
                    .to_le_bytes(),
            );
            context.update(certificate);
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(context.finish().as_ref());
        Self {
            certificates: Arc::new(certificates),
            digest,
        }
    }

    /// Both sets.
    pub fn and(&self, other: &TrustedRoots) -> TrustedRoots {
        if other.is_empty() {
            return self.clone();
        }
        if self.is_empty() {
            return other.clone();
        }
        let mut both = self.certificates.as_ref().clone();
        both.extend(other.certificates.iter().cloned());
        Self::from_certificates(both)
    }

    /// Whether no certificate is added.
    pub fn is_empty(&self) -> bool {
        self.certificates.is_empty()
    }

    /// The store a TLS connection verifies against: these, the system's and the web PKI's.
    pub(crate) fn store(&self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        store.add_parsable_certificates(system_roots().iter().cloned());
        store.add_parsable_certificates(self.certificates.iter().cloned());
        store
    }
}

impl PartialEq for TrustedRoots {
    fn eq(&self, other: &Self) -> bool {
        self.digest == other.digest
    }
}

impl Eq for TrustedRoots {}

impl Hash for TrustedRoots {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.digest.hash(state);
    }
}

impl std::fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedRoots({} certificates)", self.certificates.len())
    }
}

/// The operating system's roots, read once per process (a missing or unreadable store leaves
/// the bundled roots).
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_PEM: &[u8] = b"just some text\n";

    #[test]
    fn a_file_without_a_certificate_is_refused() {
        let error = TrustedRoots::from_pem(NOT_PEM).expect_err("no certificate");
        assert!(error.contains("no PEM certificate"), "{error}");
        let key_only = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        assert!(TrustedRoots::from_pem(key_only).is_err());
    }

    #[test]
    fn a_missing_file_names_itself() {
        let path = Path::new("/nonexistent/corp-root.pem");
        let error = TrustedRoots::from_pem_file(path).expect_err("missing");
        assert!(
            error.to_string().contains("/nonexistent/corp-root.pem"),
            "{error}"
        );
    }

    #[test]
    fn no_roots_added_is_the_default_and_joins_to_the_other() {
        let none = TrustedRoots::default();
        assert!(none.is_empty());
        assert_eq!(none.and(&none), none);
    }
}
