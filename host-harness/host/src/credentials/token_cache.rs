//! A token fetched over HTTP, cached per tenant until shortly before it expires, fetched once
//! however many calls ask at the same moment, and fetched again when the API refuses it.

use super::{CredentialError, Secret, TokenFuture, TokenSource};
use crate::transport::HttpClient;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Renew a token this long before it expires (or at half its life, if that is sooner).
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// The longest a token is kept, whatever its issuer says (Entra's tokens last at most a day).
const LONGEST_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// The shortest: a token said to expire at once (or, through clock skew, in the past) is still
/// kept this long, so a burst of calls asks the issuer once a second, not once a call (IMDS
/// throttles); a 401 still refreshes it.
const SHORTEST_KEPT: Duration = Duration::from_secs(1);

/// A token just issued, and how long its issuer says it lasts.
#[derive(Debug)]
pub struct Fresh {
    /// The token to put after `Bearer ` (never printed).
    pub token: Secret,
    /// Its lifetime from now.
    pub lifetime: Duration,
}

/// A boxed future returned by [`Fetch::fetch`].
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Fresh, CredentialError>> + Send + 'a>>;

/// Something that gets a new token over HTTP: Entra's token endpoint, a managed-identity
/// endpoint.
pub trait Fetch: Send + Sync {
    /// Asks for a new token through `http`.
    fn fetch<'a>(&'a self, http: &'a HttpClient) -> FetchFuture<'a>;
}

/// A [`TokenSource`] that keeps the token a [`Fetch`] got until it is due for renewal.
pub struct CachedTokens<F> {
    fetcher: F,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    token: Secret,
    renew_at: Instant,
}

impl<F: Fetch> CachedTokens<F> {
    /// Caches what `fetcher` gets.
    pub fn new(fetcher: F) -> Self {
        Self {
            fetcher,
            cached: Mutex::new(None),
        }
    }

    async fn get(
        &self,
        http: &HttpClient,
        stale: Option<Secret>,
    ) -> Result<Secret, CredentialError> {
        // Held across the fetch: concurrent callers wait for the one fetch and share its token.
        let mut cached = self.cached.lock().await;
        if let Some(current) = cached.as_ref() {
            let refused = stale.as_ref() == Some(&current.token);
            if !refused && Instant::now() < current.renew_at {
                return Ok(current.token.clone());
            }
        }
        let fresh = self.fetcher.fetch(http).await?;
        let lifetime = fresh.lifetime.min(LONGEST_LIFETIME);
        let now = Instant::now();
        let kept = lifetime
            .saturating_sub(RENEW_BEFORE.min(lifetime / 2))
            .max(SHORTEST_KEPT);
        let renew_at = now.checked_add(kept).unwrap_or(now);
        *cached = Some(Cached {
            token: fresh.token.clone(),
            renew_at,
        });
        Ok(fresh.token)
    }
}

impl<F: Fetch> TokenSource for CachedTokens<F> {
    fn token<'a>(&'a self, http: &'a HttpClient, stale: Option<Secret>) -> TokenFuture<'a> {
        Box::pin(self.get(http, stale))
    }
}
