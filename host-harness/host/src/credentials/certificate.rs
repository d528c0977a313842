//! Certificate credentials: a signed JWT client assertion, as Entra ID accepts in place of a
//! client secret. PS256 with the certificate's SHA-256 thumbprint (`x5t#S256`), as Microsoft's
//! certificate credentials page documents it; RS256 (with `x5t` too) for tenants that need the
//! older form.

use super::{CredentialError, MAX_CREDENTIAL_FILE_BYTES, Secret};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use serde_json::json;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// How long an assertion is valid (Entra accepts at most ten minutes).
const ASSERTION_LIFETIME_SECS: u64 = 600;

/// How an assertion is signed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum SigningAlgorithm {
    /// RSASSA-PSS with SHA-256, header `x5t#S256`: what Microsoft's page documents now.
    #[default]
    PS256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, header `x5t` and `x5t#S256`: the older form.
    RS256,
}

/// Which part of a certificate credential is unusable.
#[derive(Debug, Clone, Copy, Error, PartialEq, Eq)]
pub enum CertificateError {
    /// The certificate file holds no PEM certificate.
    #[error("no PEM certificate found")]
    NoCertificate,
    /// The key file holds no PEM RSA private key (PKCS#8 or PKCS#1).
    #[error("no PEM RSA private key (PKCS#8 or PKCS#1) found")]
    NoKey,
    /// The key is not an RSA key ring can sign with.
    #[error("the private key is not a usable RSA key")]
    UnusableKey,
}

/// An application's certificate and RSA private key.
pub struct ClientCertificate {
    key: RsaKeyPair,
    algorithm: SigningAlgorithm,
    x5t: String,
    x5t_s256: String,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t", &self.x5t)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// Reads the certificate and the key from PEM files (they may be the same file; no other
    /// user may be able to write either).
    pub fn from_pem_files(
        certificate: &Path,
        key: &Path,
        algorithm: SigningAlgorithm,
    ) -> Result<Self, CredentialError> {
        let read = |path: &Path| {
            crate::private_file::read(path, MAX_CREDENTIAL_FILE_BYTES).map_err(CredentialError)
        };
        let (certificate_pem, key_pem) = (read(certificate)?, read(key)?);
        Self::from_pem(&certificate_pem, &key_pem, algorithm).map_err(|error| {
            let file = match error {
                CertificateError::NoCertificate => certificate,
                CertificateError::NoKey | CertificateError::UnusableKey => key,
            };
            CredentialError(crate::escape::escape(&format!(
                "{}: {error}",
                file.display()
            )))
        })
    }

    /// Parses a PEM certificate (the first one) and a PEM RSA private key (PKCS#8 or PKCS#1).
    pub fn from_pem(
        certificate: &[u8],
        key: &[u8],
        algorithm: SigningAlgorithm,
    ) -> Result<Self, CertificateError> {
        let cert = CertificateDer::pem_slice_iter(certificate)
            .next()
            .and_then(Result::ok)
            .ok_or(CertificateError::NoCertificate)?;
        let key = match PrivateKeyDer::from_pem_slice(key) {
            Ok(PrivateKeyDer::Pkcs8(der)) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
            Ok(PrivateKeyDer::Pkcs1(der)) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
            _ => return Err(CertificateError::NoKey),
        }
        .map_err(|_| CertificateError::UnusableKey)?;
        Ok(Self {
            key,
            algorithm,
            x5t: URL_SAFE_NO_PAD.encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, &cert)),
            x5t_s256: URL_SAFE_NO_PAD.encode(digest(&SHA256, &cert)),
        })
    }

    /// The certificate's SHA-1 thumbprint, base64url (`x5t`), as the tenant registered it.
    pub fn thumbprint(&self) -> &str {
        &self.x5t
    }

    /// The certificate's SHA-256 thumbprint, base64url (`x5t#S256`).
    pub fn thumbprint_sha256(&self) -> &str {
        &self.x5t_s256
    }

    /// The public key (DER `RSAPublicKey`), to check assertions with.
    pub fn public_key_der(&self) -> &[u8] {
        self.key.public().as_ref()
    }

    /// A client assertion for `client_id` at the token endpoint `audience`.
    pub fn assertion(&self, client_id: &str, audience: &str) -> Result<Secret, CredentialError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| CredentialError("the system clock is before 1970".into()))?
            .as_secs();
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti)
            .map_err(|_| CredentialError("no randomness for the assertion's jti".into()))?;
        let (header, encoding): (_, &'static dyn RsaEncoding) = match self.algorithm {
            SigningAlgorithm::PS256 => (
                json!({"alg": "PS256", "typ": "JWT", "x5t#S256": self.x5t_s256}),
                &RSA_PSS_SHA256,
            ),
            SigningAlgorithm::RS256 => (
                json!({"alg": "RS256", "typ": "JWT", "x5t": self.x5t, "x5t#S256": self.x5t_s256}),
                &RSA_PKCS1_SHA256,
            ),
        };
        let claims = json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": URL_SAFE_NO_PAD.encode(jti),
            "iat": now,
            "nbf": now,
            "exp": now.saturating_add(ASSERTION_LIFETIME_SECS),
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                encoding,
                &SystemRandom::new(),
                signed.as_bytes(),
                &mut signature,
            )
            .map_err(|_| CredentialError("signing the client assertion failed".into()))?;
        Ok(Secret::new(format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}
