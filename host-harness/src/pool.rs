//! The host's HTTP client for the component's requests: one pool of kept-alive connections
//! (HTTP/1.1, or HTTP/2 where the server offers it over TLS; TLS sessions resumed) shared by
//! every invocation of a runtime, with at most so many requests in flight to any one host (the
//! rest wait their turn, so a burst does not open a connection per request). The outbound
//! policy decides what may be sent; this only sends it, within the timeouts the policy clamped.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Idle connections kept per host.
const MAX_IDLE_PER_HOST: usize = 64;
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How many requests may be in flight to one host unless the embedder says otherwise.
pub const DEFAULT_MAX_REQUESTS_PER_HOST: usize = 64;

/// A shared pool of connections.
#[derive(Clone)]
pub struct ConnectionPool {
    client: Client<HttpsConnector<HttpConnector>, WasiBody>,
    per_host: Arc<PerHost>,
}

/// A turn for each request in flight, per host (scheme, host and port).
struct PerHost {
    limit: usize,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl PerHost {
    /// Waits for a turn to send to `uri`'s host; the turn ends when the permit is dropped.
    /// (`None` only if the semaphore were closed, which it never is.)
    async fn turn(&self, uri: &http::Uri) -> Option<OwnedSemaphorePermit> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map_or("", |a| a.as_str())
        );
        let semaphore = self
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
            .clone();
        semaphore.acquire_owned().await.ok()
    }
}

impl ConnectionPool {
    /// A pool that lets at most `max_requests_per_host` requests (at least one) be in flight to
    /// any one host, from request to the end of the response body.
    pub fn new(max_requests_per_host: usize) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(connector());
        let per_host = PerHost {
            limit: max_requests_per_host.max(1),
            hosts: Mutex::default(),
        };
        Self {
            client,
            per_host: Arc::new(per_host),
        }
    }

    /// Sends `request` once it has a turn for its host (the wait is bounded by the invocation's
    /// wall clock, not by the request's timeouts): the connection and the response head within
    /// `connect_timeout + first_byte_timeout`, each body frame within `between_bytes_timeout`.
    pub async fn send(
        &self,
        request: http::Request<WasiBody>,
        options: RequestOptions,
    ) -> Result<http::Response<WasiBody>, Error> {
        let head = options.connect_timeout.unwrap_or_default()
            + options.first_byte_timeout.unwrap_or_default();
        let between = options
            .between_bytes_timeout
            .unwrap_or(Duration::from_secs(30));
        let turn = self.per_host.turn(request.uri()).await;
        let response = match tokio::time::timeout(head, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) if error.is_connect() => return Err(Error::ConnectionRefused),
            Ok(Err(_)) => return Err(Error::HttpProtocolError),
            Err(_) => return Err(Error::HttpResponseTimeout),
        };
        Ok(response
            .map(|body| Patient::new(body.map_err(Error::from), between, turn).boxed_unsync()))
    }
}

/// TCP without Nagle's delay, TLS (rustls, the webpki roots) for `https`, HTTP/1.1 and HTTP/2 as
/// the server offers.
pub(crate) fn connector() -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http)
}

/// A body that fails when the next frame takes longer than `between` to arrive, and holds its
/// request's turn for the host until it is dropped.
struct Patient<B> {
    inner: B,
    between: Duration,
    deadline: Pin<Box<Sleep>>,
    _turn: Option<OwnedSemaphorePermit>,
}

impl<B> Patient<B> {
    fn new(inner: B, between: Duration, turn: Option<OwnedSemaphorePermit>) -> Self {
        Self {
            inner,
            between,
            deadline: Box::pin(tokio::time::sleep(between)),
            _turn: turn,
        }
    }
}

impl<B> Body for Patient<B>
where
    B: Body<Data = Bytes, Error = Error> + Unpin,
{
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            let next = Instant::now() + self.between;
            self.deadline.as_mut().reset(next);
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
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
