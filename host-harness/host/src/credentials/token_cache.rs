//! A token fetched over HTTP, cached per tenant until shortly before it expires, fetched once
//! however many calls ask at the same moment, and fetched again when the API refuses it.

use super::{CredentialError, Secret, TokenFuture, TokenSource};
use crate::transport::HttpClient;
use std::collections::VecDeque;
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

/// The most tokens fetched early (because the API refused the cached one) in a minute; past
/// it the cached token is handed out again until the minute has passed.
const MAX_FORCED_REFRESHES_PER_MINUTE: usize = 6;

/// A [`TokenSource`] that keeps the token a [`Fetch`] got until it is due for renewal.
pub struct CachedTokens<F> {
    fetcher: F,
    cached: Mutex<Option<Cached>>,
    forced: std::sync::Mutex<VecDeque<Instant>>,
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
            forced: std::sync::Mutex::default(),
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
            let due = Instant::now() >= current.renew_at;
            if !due && (!refused || !self.may_force_refresh()) {
                return Ok(current.token.clone());
            }
        }
        let fetched = self.fetcher.fetch(http).await;
        crate::telemetry::token_fetch(fetched.is_ok());
        let fresh = fetched?;
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

impl<F> CachedTokens<F> {
    /// Whether one more early fetch fits this minute's allowance (and counts it).
    fn may_force_refresh(&self) -> bool {
        let now = Instant::now();
        let mut forced = self
            .forced
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while forced
            .front()
            .is_some_and(|at| now.duration_since(*at) >= Duration::from_secs(60))
        {
            forced.pop_front();
        }
        if forced.len() >= MAX_FORCED_REFRESHES_PER_MINUTE {
            return false;
        }
        forced.push_back(now);
        true
    }
}

impl<F: Fetch> TokenSource for CachedTokens<F> {
    fn token<'a>(&'a self, http: &'a HttpClient, stale: Option<Secret>) -> TokenFuture<'a> {
        Box::pin(self.get(http, stale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts fetches; each token is new.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Fetch for Counting {
        fn fetch<'a>(&'a self, _http: &'a HttpClient) -> FetchFuture<'a> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                Ok(Fresh {
                    token: Secret::new(format!("token-{n}")),
                    lifetime: Duration::from_secs(3600),
                })
            })
        }
    }

    #[tokio::test]
    async fn early_fetches_for_refused_tokens_are_bounded_per_minute() {
        let http = crate::transport::ConnectionPool::new(Default::default(), 1)
            .client(
                &Default::default(),
                crate::transport::Timeouts {
                    connect: Duration::from_secs(1),
                    io: Duration::from_secs(1),
                },
            )
            .expect("a client");
        let cache = CachedTokens::new(Counting::default());
        let mut token = cache.get(&http, None).await.unwrap();
        for _ in 0..20 {
            token = cache.get(&http, Some(token)).await.unwrap();
        }
        assert_eq!(
            cache.fetcher.0.load(Ordering::SeqCst),
            1 + MAX_FORCED_REFRESHES_PER_MINUTE
        );
        assert_eq!(
            cache.get(&http, None).await.unwrap(),
            token,
            "the cache still serves"
        );
    }
}
