//! Where the host gets a tenant's bearer token. The component never sees it.

use crate::secret::Secret;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use thiserror::Error;

/// Why no token could be had. Messages never contain the secret.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct CredentialError(pub String);

/// A boxed future returned by [`TokenSource::token`].
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Secret, CredentialError>> + Send + 'a>>;

/// A supplier of bearer tokens for one tenant, shared by all its invocations.
pub trait TokenSource: Send + Sync {
    /// A token to use. `stale` is the token the API just refused (401): a source that can
    /// refresh gets a new one unless it already has one newer than `stale`.
    fn token(&self, stale: Option<Secret>) -> TokenFuture<'_>;
}

/// Where a secret is kept outside the host's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable.
    Env(String),
    /// A file; surrounding white space is ignored.
    File(PathBuf),
}

impl SecretSource {
    /// Reads the secret now (each time: a rotated file or variable is picked up).
    pub fn read(&self) -> Result<Secret, CredentialError> {
        let (value, from) = match self {
            SecretSource::Env(var) => (
                std::env::var(var).ok(),
                format!("environment variable {var}"),
            ),
            SecretSource::File(path) => (
                std::fs::read_to_string(path).ok(),
                format!("file {}", path.display()),
            ),
        };
        match value {
            Some(value) if !value.trim().is_empty() => Ok(Secret::new(value.trim())),
            _ => Err(CredentialError(format!("no secret in the {from}"))),
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
    fn token(&self, _stale: Option<Secret>) -> TokenFuture<'_> {
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
    fn token(&self, _stale: Option<Secret>) -> TokenFuture<'_> {
        let result = self
            .0
            .read()
            .map_err(|e| CredentialError(format!("no bearer token: {e}")));
        Box::pin(async move { result })
    }
}
