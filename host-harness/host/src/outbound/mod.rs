//! The outbound policy: the hook every wasi-http request of the component goes through.
//!
//! A request leaves only if it goes to the tenant's API origin, is one the component's job needs
//! (method and path: the [`Api`] it calls), carries the invocation's sealed credential, and is
//! covered by a permit from that API's budget. The hook then swaps
//! the seal for the real token and sends it through the host's client, whose timeouts bound
//! the ones the component asks for. Everything else gets `HTTP-request-denied`, and the reason
//! is kept for the host's report; so is the reason of a request that got no answer (a TLS or
//! proxy failure), which the component only learns as an error code.

mod capability;
mod origin;
mod retry_after;

pub use origin::{ApiOrigin, OriginError};
pub(crate) use origin::{HostKind, host_kind};

use crate::credentials::Secret;
use crate::hex::hex;
use crate::limits::LimitExceeded;
use crate::limits::Limits;
use crate::rate_limit::{Api, PermitSource};
use crate::transport::{HttpClient, destination};
use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderValue};
use http_body_util::{BodyExt, Limited};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};
use zeroize::Zeroizing;

/// How long a permit may wait for its request: the budget counted it when it was granted, and
/// the API counts the request when it arrives, so a permit kept for later would let requests
/// arrive closer together than the budget allows.
const PERMIT_LIFETIME: Duration = Duration::from_secs(1);
/// The most unused permits an invocation holds per API.
const MAX_PERMITS_HELD: usize = 64;

/// The per-invocation state of the policy.
pub struct Outbound {
    http: HttpClient,
    /// The tenant's name, for metrics and logs.
    tenant: Arc<str>,
    budgets: Arc<dyn PermitSource>,
    /// The tenant's turns for requests in flight, shared by all its invocations.
    requests: Arc<Semaphore>,
    max_retry_after: Duration,
    /// Set for an API when a response of this invocation from it was a 429: only then may the
    /// guest pause that API's budget.
    throttled: Arc<[AtomicBool; 5]>,
    /// Set when a response of this invocation was a 401: only then may the guest ask for a
    /// fresh token.
    unauthorized: Arc<AtomicBool>,
    origin: ApiOrigin,
    seal: String,
    token: Option<Secret>,
    /// When each permit granted and not yet used was granted, per API (in [`Api::ALL`]'s
    /// order): a permit lasts [`PERMIT_LIFETIME`].
    permits: [VecDeque<Instant>; 5],
    max_requests: u32,
    max_response_bytes: u64,
    attempts: u32,
    denials: Vec<String>,
    /// Why requests that were let through got no answer; filled by their futures.
    failures: Arc<Mutex<Vec<String>>>,
    sent: u32,
    /// Set by the hook or by a response body (which outlives the hook's call).
    tripped: Arc<OnceLock<LimitExceeded>>,
}

type ResponseFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl Outbound {
    /// A policy for one invocation against `origin`, with a fresh random seal.
    pub fn new(
        tenant: &str,
        http: HttpClient,
        origin: ApiOrigin,
        budgets: Arc<dyn PermitSource>,
        requests: Arc<Semaphore>,
        limits: &Limits,
    ) -> Self {
        let mut nonce = [0u8; 16];
        // Without OS randomness the seal would be guessable; fail closed with a seal nobody
        // can send (it contains a newline, which no header value may).
        let seal = match getrandom::fill(&mut nonce) {
            Ok(()) => format!("Bearer sealed.{}", hex(&nonce)),
            Err(_) => "sealed\n".to_owned(),
        };
        Self {
            tenant: Arc::from(tenant),
            http,
            budgets,
            requests,
            max_retry_after: limits.max_retry_after,
            throttled: Arc::default(),
            unauthorized: Arc::default(),
            origin,
            seal,
            token: None,
            permits: Default::default(),
            max_requests: limits.max_requests,
            max_response_bytes: limits.max_response_bytes,
            attempts: 0,
            denials: Vec::new(),
            failures: Arc::default(),
            sent: 0,
            tripped: Arc::default(),
        }
    }

    /// The placeholder the component puts in `Authorization`.
    pub fn seal(&self) -> &str {
        &self.seal
    }

    /// The origin requests may go to.
    pub fn origin(&self) -> &ApiOrigin {
        &self.origin
    }

    /// Stores the token the seal stands for.
    pub fn set_token(&mut self, token: Secret) {
        self.token = Some(token);
    }

    /// The token the seal stands for now, if one was granted.
    pub fn token(&self) -> Option<Secret> {
        self.token.clone()
    }

    /// The limit a request ran into, which ends the invocation.
    pub fn tripped(&self) -> Option<LimitExceeded> {
        self.tripped.get().copied()
    }

    /// Records a permit granted by `api`'s budget.
    pub fn add_permit(&mut self, api: Api) {
        if let Some(permits) = self.permits.get_mut(api.index()) {
            expire(permits);
            // The budget counted it now; more than the invocation may send are not kept.
            if permits.len() < MAX_PERMITS_HELD {
                permits.push_back(Instant::now());
            }
        }
    }

    /// Why requests were refused, in order.
    pub fn take_denials(&mut self) -> Vec<String> {
        std::mem::take(&mut self.denials)
    }

    /// Why requests that were let through got no answer, in order.
    pub fn take_failures(&mut self) -> Vec<String> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The guest says `api` throttled it for `retry_after`: that API's budget is paused for
    /// that long, at most the limit, and only if this invocation did get a 429 from it (a guest
    /// cannot pause its tenant on its own say-so).
    pub async fn guest_throttled(&self, api: Api, retry_after: Duration) {
        // Once for each 429 the host saw: a guest cannot re-arm the pause in a loop.
        let saw = self
            .throttled
            .get(api.index())
            .is_some_and(|flag| flag.swap(false, Ordering::Relaxed));
        if saw {
            self.budgets
                .pause(api, retry_after.min(self.max_retry_after))
                .await;
        }
    }

    /// Whether the API answered 401 to a request of this invocation.
    pub fn saw_unauthorized(&self) -> bool {
        self.unauthorized.load(Ordering::Relaxed)
    }

    /// How many requests were let through.
    pub fn sent(&self) -> u32 {
        self.sent
    }

    /// Applies the policy to one request, rewriting it in place when it may go; the API it
    /// calls.
    fn admit(&mut self, request: &mut http::Request<WasiBody>) -> Result<Api, String> {
        self.attempts += 1;
        if self.attempts > self.max_requests {
            let _ = self.tripped.set(LimitExceeded::Requests(self.max_requests));
            return Err(format!("more than {} requests", self.max_requests));
        }
        if !self.origin.admits(request.uri()) {
            return Err(format!(
                "{} is outside the allowlist (only {} is allowed)",
                destination(request.uri()),
                self.origin
            ));
        }
        let api = capability::of(request.method(), request.uri())?;
        let headers = request.headers_mut();
        let sealed = headers.get_all(AUTHORIZATION).iter().count() == 1
            && headers.get(AUTHORIZATION).map(HeaderValue::as_bytes) == Some(self.seal.as_bytes());
        if !sealed {
            return Err(
                "the request does not carry the sealed credential the host granted \
                 (an Authorization header of the component's own is never sent)"
                    .into(),
            );
        }
        let Some(token) = &self.token else {
            return Err("no credential was granted to this invocation".into());
        };
        let fresh = self.permits.get_mut(api.index()).is_some_and(|permits| {
            expire(permits);
            permits.pop_front().is_some()
        });
        if !fresh {
            return Err(format!(
                "the request is not covered by a rate-limit permit for {api} (one granted in \
                 the last {} s)",
                PERMIT_LIFETIME.as_secs()
            ));
        }
        // One copy of the token in the header, in a buffer wiped when the request is dropped.
        let bearer = Zeroizing::new(format!("Bearer {}", token.expose()).into_bytes());
        let mut value = HeaderValue::from_maybe_shared(Bytes::from_owner(bearer))
            .map_err(|_| "the tenant's token is not a valid header value".to_string())?;
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
        self.sent += 1;
        Ok(api)
    }
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> ResponseFuture {
        let api = match self.admit(&mut request) {
            Ok(api) => api,
            Err(reason) => {
                self.denials.push(reason);
                return Box::new(async { Err(Error::HttpRequestDenied) });
            }
        };
        let max_bytes = self.max_response_bytes;
        let limit = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        let tripped = self.tripped.clone();
        let failures = self.failures.clone();
        let http = self.http.clone();
        let tenant = self.tenant.clone();
        let requests = self.requests.clone();
        let (budgets, throttled, unauthorized, max_retry_after) = (
            self.budgets.clone(),
            self.throttled.clone(),
            self.unauthorized.clone(),
            self.max_retry_after,
        );
        Box::new(async move {
            // The tenant's turn first, so one tenant's requests cannot hold all of a shared
            // host's turns; it is given back with the host's.
            let tenant_turn = requests.acquire_owned().await.ok();
            let started = std::time::Instant::now();
            let sent = http.send(request, options, tenant_turn).await;
            let status = sent.as_ref().ok().map(|r| r.status().as_u16());
            crate::telemetry::api_call(&tenant, api, status, started.elapsed());
            let mut response = sent.map_err(|failure| {
                failures
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(failure.detail);
                failure.code
            })?;
            if response.status() == http::StatusCode::UNAUTHORIZED {
                unauthorized.store(true, Ordering::Relaxed);
            }
            if response.status() == http::StatusCode::TOO_MANY_REQUESTS {
                if let Some(flag) = throttled.get(api.index()) {
                    flag.store(true, Ordering::Relaxed);
                }
                let asked = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| retry_after::parse(value, SystemTime::now()))
                    .unwrap_or(retry_after::WITHOUT_ONE);
                let pause = asked.min(max_retry_after);
                // Only this API's budget: the others were not throttled.
                budgets.pause(api, pause).await;
                // The component reads the pause the host applies, in seconds: one parser (this
                // one), dates included, never more than the clamp, and always a header, so a
                // value only the component would read (`+5`, garbage) never reaches it.
                let seconds = pause.as_secs() + u64::from(pause.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, seconds.into());
            }
            let response = response.map(|body| {
                Limited::new(body, limit)
                    .map_err(move |_| {
                        let _ = tripped.set(LimitExceeded::ResponseBytes(max_bytes));
                        Error::HttpResponseBodySize(Some(max_bytes))
                    })
                    .boxed_unsync()
            });
            let io = async { Ok(()) };
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }
}

/// Drops the permits older than [`PERMIT_LIFETIME`] (the oldest are first).
fn expire(permits: &mut VecDeque<Instant>) {
    while permits
        .front()
        .is_some_and(|granted| granted.elapsed() > PERMIT_LIFETIME)
    {
        permits.pop_front();
    }
}
