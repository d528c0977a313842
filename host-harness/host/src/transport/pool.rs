//! The runtime's pool of kept-alive connections, shared by every invocation and by sign-in:
//! one hyper client per network setting (proxy and roots), at most so many requests in flight
//! to any one host (the rest wait their turn, so a burst does not open a connection per
//! request), and per-request timeouts.

use super::failure::{TransportError, classify};
use super::network::{Network, NetworkError};
use super::proxy::Connector;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error as ErrorCode, RequestOptions, WasiBody};
use zeroize::Zeroizing;

/// Idle connections kept per host.
const MAX_IDLE_PER_HOST: usize = 64;
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How many requests may be in flight to one host unless the embedder says otherwise.
pub const DEFAULT_MAX_REQUESTS_PER_HOST: usize = 64;

type HyperClient = Client<HttpsConnector<Connector>, WasiBody>;

/// The pool: a client for the runtime's network setting and one for each tenant setting that
/// differs (tenants sharing a setting share it), each made when first used, so making a
/// runtime does not read the system's roots.
#[derive(Clone)]
pub(crate) struct ConnectionPool {
    inner: Arc<Shared>,
}

struct Shared {
    defaults: Network,
    default_client: OnceLock<HyperClient>,
    others: Mutex<HashMap<Network, HyperClient>>,
    per_host: PerHost,
}

/// A turn for each request in flight, per host (scheme, lower-cased host and port: the same
/// host however a guest spells it).
struct PerHost {
    limit: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Hosts with a turn map entry before idle entries are swept away.
const HOSTS_KEPT: usize = 64;

impl PerHost {
    /// Waits for a turn to send to `host`; the turn ends when the permit is dropped.
    /// (`None` only if the semaphore were closed, which it never is.)
    async fn turn(&self, host: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
            if hosts.len() >= HOSTS_KEPT {
                // An entry nobody holds or waits on is idle: drop it, so the map does not grow
                // with every host ever asked for.
                hosts.retain(|_, semaphore| Arc::strong_count(semaphore) > 1);
            }
            hosts
                .entry(host.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
                .clone()
        };
        semaphore.acquire_owned().await.ok()
    }
}

fn hyper_client(network: &Network) -> Result<HyperClient, NetworkError> {
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .build(network.connector()?))
}

impl ConnectionPool {
    /// A pool for `defaults` that lets at most `max_requests_per_host` requests (at least one)
    /// be in flight to any one host, from request to the end of the response body.
    pub fn new(defaults: Network, max_requests_per_host: usize) -> Self {
        let defaults = defaults.over(&Network::default());
        Self {
            inner: Arc::new(Shared {
                default_client: OnceLock::new(),
                defaults,
                others: Mutex::default(),
                per_host: PerHost {
                    limit: max_requests_per_host.max(1),
                    hosts: Mutex::default(),
                },
            }),
        }
    }

    /// The client for a tenant's `network` setting (laid over the runtime's), with `timeouts`.
    pub fn client(
        &self,
        network: &Network,
        timeouts: Timeouts,
    ) -> Result<HttpClient, NetworkError> {
        let shared = &self.inner;
        // Keyed by the tenant's own setting, so the common case costs a lookup, not a merge.
        let client = if network.is_inherited() {
            match shared.default_client.get() {
                Some(client) => client.clone(),
                None => {
                    let made = hyper_client(&shared.defaults)?;
                    shared.default_client.get_or_init(|| made).clone()
                }
            }
        } else {
            let mut others = shared.others.lock().unwrap_or_else(PoisonError::into_inner);
            match others.get(network) {
                Some(client) => client.clone(),
                None => {
                    let client = hyper_client(&network.over(&shared.defaults))?;
                    others.insert(network.clone(), client.clone());
                    client
                }
            }
        };
        Ok(HttpClient {
            client,
            pool: self.clone(),
            timeouts,
        })
    }
}

/// The longest a request may wait: to connect, and for each byte of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// To open the connection (and tunnel and TLS handshake).
    pub connect: Duration,
    /// For the answer's first byte, and between its bytes.
    pub io: Duration,
}

/// The host's HTTP client for one tenant: the runtime's pool, with the tenant's proxy and
/// trust settings and timeouts. Token sources get it to sign in with.
#[derive(Clone)]
pub struct HttpClient {
    client: HyperClient,
    pool: ConnectionPool,
    timeouts: Timeouts,
}

/// A complete answer: status, headers and a body read up to a bound, wiped from memory when
/// dropped. Its `Debug` shows the status and the body's size, never the body (a token
/// endpoint's holds a token).
pub struct Reply {
    /// The answer's status.
    pub status: http::StatusCode,
    /// The answer's headers.
    pub headers: http::HeaderMap,
    /// The answer's body, whole (within the caller's bound).
    pub body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// Sends a request with a small body and reads the whole answer, refusing one whose body is
    /// longer than `max_body_bytes`. `Host` (or HTTP/2's `:authority`) comes from the URI.
    pub async fn exchange(
        &self,
        request: http::Request<Bytes>,
        max_body_bytes: usize,
    ) -> Result<Reply, TransportError> {
        let request = request.map(|body| {
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync()
        });
        let destination = destination(request.uri());
        let response = self.send(request, None, None).await?;
        let (parts, body) = response.into_parts();
        let mut body = Limited::new(body, max_body_bytes);
        let mut bytes = Zeroizing::new(Vec::new());
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|error| {
                let detail = if error.is::<http_body_util::LengthLimitError>() {
                    format!("{destination} answered with more than {max_body_bytes} bytes")
                } else {
                    format!("{destination}: reading the answer failed ({error})")
                };
                TransportError::new(ErrorCode::HttpResponseIncomplete, detail)
            })?;
            if let Ok(data) = frame.into_data() {
                bytes.extend_from_slice(&data);
            }
        }
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body: bytes,
        })
    }

    /// Sends `request` once it has a turn for its host (the wait is bounded by the caller, not
    /// by the request's timeouts): the connection and the response head within the connect and
    /// first-byte timeouts, each body frame within the between-bytes timeout. `options` may
    /// shorten the client's timeouts, never lengthen them. `held` (the caller's own turn, e.g.
    /// its tenant's) is kept and given back with the host's turn.
    pub(crate) async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        held: Option<OwnedSemaphorePermit>,
    ) -> Result<http::Response<WasiBody>, TransportError> {
        let options = options.unwrap_or_default();
        let shorter = |asked: Option<Duration>, most: Duration| asked.map_or(most, |d| d.min(most));
        let head = shorter(options.connect_timeout, self.timeouts.connect)
            .saturating_add(shorter(options.first_byte_timeout, self.timeouts.io));
        let between = shorter(options.between_bytes_timeout, self.timeouts.io);
        let destination = destination(request.uri());
        let turns: Vec<_> = held
            .into_iter()
            .chain(self.pool.inner.per_host.turn(&destination).await)
            .collect();
        let response = match tokio::time::timeout(head, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => return Err(classify(&error, &destination)),
            Err(_) => {
                return Err(TransportError::new(
                    ErrorCode::HttpResponseTimeout,
                    format!("{destination} did not answer within {}s", head.as_secs()),
                ));
            }
        };
        Ok(response
            .map(|body| Patient::new(body.map_err(ErrorCode::from), between, turns).boxed_unsync()))
    }
}

/// `scheme://host:port` of a request, without user information or path.
pub(crate) fn destination(uri: &http::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("?");
    match uri.authority() {
        Some(authority) => {
            let port = authority.port_u16().unwrap_or(match scheme {
                "https" => 443,
                _ => 80,
            });
            crate::escape::escape(&format!(
                "{scheme}://{}:{port}",
                authority.host().to_ascii_lowercase()
            ))
        }
        None => format!("{scheme}://?"),
    }
}

/// A body that fails when the next frame takes longer than `between` to arrive, and holds its
/// request's turn for the host until it ends, is dropped, or goes unread for `between`: a
/// watchdog takes the turn back from a body nobody reads (a guest sitting on its answers would
/// otherwise hold the host's turns for its whole wall clock), and the body then fails.
struct Patient<B> {
    inner: B,
    between: Duration,
    deadline: Pin<Box<Sleep>>,
    turn: Arc<Turn>,
}

/// A request's turns (for its host, and any its caller holds), shared by its body and the
/// body's watchdog.
struct Turn {
    permits: Mutex<Vec<OwnedSemaphorePermit>>,
    last_frame: Mutex<Instant>,
    taken_back: AtomicBool,
}

impl Turn {
    fn release(&self) {
        self.permits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl<B> Patient<B> {
    fn new(inner: B, between: Duration, permits: Vec<OwnedSemaphorePermit>) -> Self {
        let turn = Arc::new(Turn {
            permits: Mutex::new(permits),
            last_frame: Mutex::new(Instant::now()),
            taken_back: AtomicBool::new(false),
        });
        tokio::spawn(watch(Arc::downgrade(&turn), between));
        Self {
            inner,
            between,
            deadline: Box::pin(tokio::time::sleep(between)),
            turn,
        }
    }
}

/// Takes the turn back once the body has gone `between` without a frame being read; ends when
/// the body is gone.
async fn watch(turn: Weak<Turn>, between: Duration) {
    let mut wake = Instant::now().checked_add(between);
    while let Some(at) = wake {
        tokio::time::sleep_until(at).await;
        let Some(turn) = turn.upgrade() else {
            return;
        };
        let last = *turn
            .last_frame
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match last.checked_add(between) {
            Some(due) if due > Instant::now() => wake = Some(due),
            _ => {
                turn.taken_back.store(true, Ordering::Relaxed);
                turn.release();
                return;
            }
        }
    }
}

impl<B> Body for Patient<B>
where
    B: Body<Data = Bytes, Error = ErrorCode> + Unpin,
{
    type Data = Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ErrorCode>>> {
        if self.turn.taken_back.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(ErrorCode::ConnectionReadTimeout)));
        }
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            let now = Instant::now();
            *self
                .turn
                .last_frame
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = now;
            if let Some(next) = now.checked_add(self.between) {
                self.deadline.as_mut().reset(next);
            }
            if frame.is_none() || self.inner.is_end_stream() {
                self.turn.release();
            }
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(ErrorCode::ConnectionReadTimeout))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_is_scheme_host_and_port_only() {
        let cases = [
            (
                "https://API.security.microsoft.com/api/x?y=1",
                "https://api.security.microsoft.com:443",
            ),
            ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080"),
            ("http://user:pw@127.0.0.1/x", "http://127.0.0.1:80"),
        ];
        for (uri, expected) in cases {
            assert_eq!(destination(&uri.parse().unwrap()), expected);
        }
    }
}
