//! Where the host gets a tenant's bearer token. The component never sees it.
//!
//! A [`TokenSource`] hands out tokens; the kinds a tenants file can name are a stored token
//! ([`StoredToken`]), and tokens fetched from Entra ID or Azure's managed-identity endpoints
//! ([`ClientCredentials`], [`ManagedIdentity`]) and kept in a [`CachedTokens`]. Every fetch goes
//! through the runtime's one HTTP client, the same one as the API traffic.

mod answer;
mod cache;
mod certificate;
mod entra;
mod file;
mod managed_identity;
mod secret;

pub use cache::{CachedTokens, Fetch, FetchFuture, Fresh};
pub use certificate::{ClientCertificate, SigningAlgorithm};
pub use entra::{ClientAuth, ClientCredentials};
pub use managed_identity::{IMDS_URL, IdentityEndpoint, ManagedIdentity};
pub use secret::Secret;

use crate::transport::HttpClient;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use thiserror::Error;

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
    /// An environment variable.
    Env(String),
    /// A file that only its owner can write; surrounding white space is ignored.
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret now (each time: a rotated file or variable is picked up).
    pub fn read(&self) -> Result<Secret, CredentialError> {
        let (value, from) = match self {
            SecretSource::Env(var) => (
                std::env::var(var).ok().map(Secret::new),
                format!("environment variable {var}"),
            ),
            SecretSource::File(path) => (
                Some(file::read_secret_text(path)?),
                format!("file {}", path.display()),
            ),
        };
        match value {
            Some(value) if !value.expose().trim().is_empty() => {
                Ok(Secret::new(value.expose().trim()))
            }
            _ => Err(CredentialError(format!("no secret in the {from}"))),
        }
    }

    /// Checks a file source before anything is sent: readable, not writable by other users,
    /// not empty. (An environment variable is read when needed.)
    pub fn check(&self) -> Result<(), CredentialError> {
        match self {
            SecretSource::Env(_) => Ok(()),
            SecretSource::File(_) => self.read().map(drop),
        }
    }
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
