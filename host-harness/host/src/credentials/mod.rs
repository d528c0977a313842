//! Where the host gets a tenant's bearer token. The component never sees it.
//!
//! A [`TokenSource`] hands out tokens; the kinds a tenants file can name are a stored token
//! ([`StoredToken`]), and tokens fetched from Entra ID or Azure's managed-identity endpoints
//! ([`ClientCredentials`], [`ManagedIdentity`]) and kept in a [`CachedTokens`]. Every fetch goes
//! through the runtime's one HTTP client, the same one as the API traffic.

mod certificate;
mod entra;
mod managed_identity;
mod secret;
mod sign_in;
mod token_cache;

pub use certificate::{CertificateError, ClientCertificate, SigningAlgorithm};
pub use entra::{ClientAuth, ClientCredentials};
pub use managed_identity::{IMDS_URL, IdentityEndpoint, ManagedIdentity};
pub use secret::Secret;
pub use token_cache::{CachedTokens, Fetch, FetchFuture, Fresh};

use crate::transport::HttpClient;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use thiserror::Error;

/// The largest credential file read: a PEM bundle with a 4096-bit key is a few kilobytes.
const MAX_CREDENTIAL_FILE_BYTES: u64 = 64 * 1024;

/// Why no token could be had. Messages never contain a secret, and text received from outside
/// is escaped.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct CredentialError(pub String);

/// A boxed future returned by [`TokenSource::token`].
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Secret, CredentialError>> + Send + 'a>>;

/// A supplier of bearer tokens for one tenant, shared by all its invocations.
pub trait TokenSource: Send + Sync {
    /// A token to use. `stale` is the token the API just refused (401): a source that can
    /// refresh gets a new one unless it already has one newer than `stale`. `http` is the
    /// host's client with the tenant's proxy and trust settings, for sources that fetch.
    fn token<'a>(&'a self, http: &'a HttpClient, stale: Option<Secret>) -> TokenFuture<'a>;
}

/// Where a secret is kept outside the host's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable, by name (read when the secret is needed).
    Env(String),
    /// A file that only its owner can write; surrounding white space is ignored.
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret now (each time: a rotated file or variable is picked up).
    pub fn read(&self) -> Result<Secret, CredentialError> {
        let (value, from) = match self {
            SecretSource::Env(var) => {
                if !is_variable_name(var) {
                    return Err(CredentialError(INVALID_VARIABLE_NAME.into()));
                }
                let value = std::env::var(var).ok().map(zeroize::Zeroizing::new);
                (
                    value.map(|v| Secret::new(v.as_str())),
                    format!("environment variable {var}"),
                )
            }
            SecretSource::File(path) => {
                let bytes = crate::private_file::read(path, MAX_CREDENTIAL_FILE_BYTES)
                    .map_err(CredentialError)?;
                let text = std::str::from_utf8(&bytes).ok().map(Secret::new);
                let shown = crate::escape::escape(&path.display().to_string());
                (text, format!("file {shown} (UTF-8 text)"))
            }
        };
        match value {
            Some(value) if !value.expose().trim().is_empty() => {
                Ok(Secret::new(value.expose().trim()))
            }
            _ => Err(CredentialError(format!("no secret in the {from}"))),
        }
    }

    /// Checks the source before anything is sent: a variable's name is a name (a secret typed
    /// in its place is refused without being shown); a file is readable, not writable by other
    /// users and not empty. (A variable's value is read when needed.)
    pub fn check(&self) -> Result<(), CredentialError> {
        match self {
            SecretSource::Env(var) if !is_variable_name(var) => {
                Err(CredentialError(INVALID_VARIABLE_NAME.into()))
            }
            SecretSource::Env(_) => Ok(()),
            SecretSource::File(_) => self.read().map(drop),
        }
    }
}

const INVALID_VARIABLE_NAME: &str = "the environment variable's name is not a name (letters, \
     digits and _, not starting with a digit); it is not shown, in case a secret was typed in \
     its place";

/// Whether `name` can be an environment variable's name as shells write them.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 256
}

/// A fixed token. It cannot be refreshed: after a 401 it is handed out again, and the
/// component's second 401 ends the call.
#[derive(Debug, Clone)]
pub struct StaticToken(Secret);

impl StaticToken {
    /// Uses `token` for every request.
    pub fn new(token: Secret) -> Self {
        Self(token)
    }
}

impl TokenSource for StaticToken {
    fn token<'a>(&'a self, _http: &'a HttpClient, _stale: Option<Secret>) -> TokenFuture<'a> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// A token kept in an environment variable or a file, read when the component asks for it (so
/// a missing one is reported as a credentials error only once the input has been checked, and a
/// rotated one is picked up on refresh).
#[derive(Debug, Clone)]
pub struct StoredToken(SecretSource);

impl StoredToken {
    /// A token read from `source`.
    pub fn new(source: SecretSource) -> Self {
        Self(source)
    }

    /// A token read from the environment variable `var`.
    pub fn env(var: impl Into<String>) -> Self {
        Self(SecretSource::Env(var.into()))
    }
}

impl TokenSource for StoredToken {
    fn token<'a>(&'a self, _http: &'a HttpClient, _stale: Option<Secret>) -> TokenFuture<'a> {
        let result = self
            .0
            .read()
            .map_err(|e| CredentialError(format!("no bearer token: {e}")));
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_in_place_of_a_variable_name_is_never_shown() {
        for name in ["Abc8Q~secret.value", "1ABC", "", "MDE TOKEN"] {
            let source = SecretSource::Env(name.into());
            let error = source.check().expect_err(name);
            assert!(error.0.contains("not a name"), "{error}");
            assert!(name.is_empty() || !error.0.contains(name), "{error}");
            assert_eq!(source.read().expect_err(name), error);
        }
        assert!(SecretSource::Env("MDE_TOKEN".into()).check().is_ok());
    }
}
