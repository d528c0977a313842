//! The host's HTTP client for the component's requests: one pool of kept-alive connections
//! (HTTP/1.1, or HTTP/2 where the server offers it over TLS; TLS sessions resumed) shared by
//! every invocation of a runtime. The outbound policy decides what may be sent; this only
//! sends it, within the timeouts the policy clamped.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Idle connections kept per host.
const MAX_IDLE_PER_HOST: usize = 64;
/// How long an idle connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A shared pool of connections.
#[derive(Clone)]
pub struct ConnectionPool {
    client: Client<HttpsConnector<HttpConnector>, WasiBody>,
}

impl Default for ConnectionPool {
    fn default() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .build(connector);
        Self { client }
    }
}

impl ConnectionPool {
    /// Sends `request`: the connection and the response head within `connect_timeout +
    /// first_byte_timeout`, each body frame within `between_bytes_timeout`.
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
        let response = match tokio::time::timeout(head, self.client.request(request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(error)) if error.is_connect() => return Err(Error::ConnectionRefused),
            Ok(Err(_)) => return Err(Error::HttpProtocolError),
            Err(_) => return Err(Error::HttpResponseTimeout),
        };
        Ok(response.map(|body| Patient::new(body.map_err(Error::from), between).boxed_unsync()))
    }
}

/// A body that fails when the next frame takes longer than `between` to arrive.
struct Patient<B> {
    inner: B,
    between: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<B> Patient<B> {
    fn new(inner: B, between: Duration) -> Self {
        Self {
            inner,
            between,
            deadline: Box::pin(tokio::time::sleep(between)),
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
