//! Where the host gets a tenant's bearer token. The component never sees it.

use crate::secret::Secret;
use std::future::Future;
use std::pin::Pin;
use thiserror::Error;

/// Why no token could be had. Messages never contain the secret.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct CredentialError(pub String);

/// A boxed future returned by [`TokenSource::token`].
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Secret, CredentialError>> + Send + 'a>>;

/// A supplier of bearer tokens for one tenant.
pub trait TokenSource: Send + Sync {
    /// The current token; with `refresh`, a fresh one (the API answered 401 to the last).
    fn token(&self, refresh: bool) -> TokenFuture<'_>;
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
    fn token(&self, _refresh: bool) -> TokenFuture<'_> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }
}

/// A token read from an environment variable when the component asks for it (and read again
/// on refresh), so a missing variable is reported as a credentials error only once the
/// input has been checked.
#[derive(Debug, Clone)]
pub struct EnvToken {
    var: String,
}

impl EnvToken {
    /// Reads the token from the environment variable `var`.
    pub fn new(var: impl Into<String>) -> Self {
        Self { var: var.into() }
    }
}

impl TokenSource for EnvToken {
    fn token(&self, _refresh: bool) -> TokenFuture<'_> {
        let result = match std::env::var(&self.var) {
            Ok(token) if !token.trim().is_empty() => Ok(Secret::new(token.trim())),
            _ => Err(CredentialError(format!(
                "no bearer token: set the environment variable {}",
                self.var
            ))),
        };
        Box::pin(async move { result })
    }
}
