//! A stand-in for the Defender for Endpoint API and its sign-in on 127.0.0.1, at least as strict
//! as Microsoft's pages and front doors: it refuses a request without a valid `Host` as they do
//! (RFC 9112 §3.2); checks the bearer token, the content type and the case-sensitive body;
//! creates actions that move from `Pending` through `InProgress` to a final status as they are
//! polled (by GET or by listing) or as time passes ([`Progression::Settle`]); answers the
//! action, listing, cancel and machines-of-a-file endpoints; says `ActiveRequestAlreadyExists`
//! while a device has a pending action; and answers a cancel of an action already final with 400
//! `BadRequest`, the common-errors page's general row (learn.microsoft.com/defender-endpoint/api/
//! common-errors: "BadRequest | BadRequest (400) | General Bad Request error message."), its own
//! choice where the cancel page (learn.microsoft.com/defender-endpoint/api/cancel-machine-action)
//! is silent. Each of the five API endpoints has its own rate budget per caller (by default the
//! pages' 100 calls a minute and 1500 an hour, [`RateLimit`]), past which it answers 429 with
//! `Retry-After` in seconds or, on request, as an HTTP date ([`RetryAfterFormat`]). The two
//! listings page as OData does (`$top`, `$skip`, a server page size and `@odata.nextLink`) and
//! take only the documented `$filter` subset.
//!
//! A test can script any API route by method and path pattern ([`Simulator::script_route`]),
//! each device's creates ([`Simulator::reply_for_machine`]) and the listings page by page
//! ([`PageReply`]), to give any answer of the error table, `Retry-After`, delays, broken or
//! oversized bodies, extra headers, or a dropped connection, with or without the endpoint's
//! effect ([`Reply`]). A scripted answer is given only to a request the endpoint finds valid:
//! the token, the path, the budget and the endpoint's own checks come first. Where the pages are
//! silent the simulator has models of its own: listings that lag creation
//! ([`Simulator::set_listing_lag`]) and an API clock ahead of or behind the host's
//! ([`Simulator::set_clock_offset`]).
//!
//! It serves Entra's token endpoint (secrets, certificate assertions, federated tokens, each
//! checked field by field) and Azure's managed-identity endpoints. Over TLS it offers HTTP/2 and
//! HTTP/1.1 by ALPN. It records every request it receives.

mod actions;
mod answers;
mod api_state;
mod budget;
mod clock;
mod directory;
pub mod example;
mod filter;
mod front_door;
mod identity;
mod jwt;
mod listings;
mod machine_action;
mod paging;
mod progression;
mod retry_after;
mod route_script;
mod routes;
mod sign_in;
#[cfg(test)]
mod tests;

pub use answers::{PageReply, Reply};
pub use budget::{ApiCalls, RateLimit};
pub use directory::{ClientProof, ManagedIdentities};
pub use progression::Progression;
pub use retry_after::RetryAfterFormat;
pub use route_script::PatternError;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// The `requestor` of simulated actions, as an app token would show it.
const REQUESTOR: &str = "host-harness simulator app";

/// A request as the simulator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The HTTP version it came in.
    pub version: http::Version,
    /// The host it named (`Host`, or HTTP/2's `:authority`); `None` when it named none or
    /// several, which the front door refused.
    pub host: Option<String>,
    /// Every header, in order, verbatim (names lower-cased).
    pub headers: Vec<(String, String)>,
    /// The method, e.g. `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Authorization` header, verbatim.
    pub authorization: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body (at most 1 MiB).
    pub body: Vec<u8>,
}

/// One request and the simulator's answer, as `watch` reports it: what a test in another
/// process needs to check the exact request, without any secret (only whether the token was
/// accepted; credential headers and form fields show as `[redacted]`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exchange {
    /// The method, e.g. `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The HTTP version, e.g. `HTTP/1.1`.
    pub version: String,
    /// The host the request named.
    pub host: Option<String>,
    /// Every header, in order; the values of `authorization`, `proxy-authorization` and
    /// `x-identity-header` redacted.
    pub headers: Vec<(String, String)>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// Whether the request carried a bearer token the simulator accepts.
    pub authorized: bool,
    /// The body, as text (invalid UTF-8 replaced; a token request's `client_secret` and
    /// `client_assertion` redacted).
    pub body: String,
    /// The answer's status; `None` when the connection was dropped on purpose.
    pub status: Option<u16>,
}

/// A running simulator. Dropping it stops accepting connections.
pub struct Simulator {
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    base_url: String,
    port: u16,
    accepted_token: Option<String>,
    api: Mutex<api_state::ApiState>,
    budget: Mutex<budget::Budget>,
    directory: Mutex<directory::Directory>,
    requests: Mutex<Vec<RecordedRequest>>,
    watchers: Mutex<Vec<mpsc::UnboundedSender<Exchange>>>,
    connections: AtomicUsize,
}

impl Shared {
    fn api(&self) -> MutexGuard<'_, api_state::ApiState> {
        lock(&self.api)
    }

    /// Tells every watcher of the exchange (`authorized` is asked only when someone watches).
    fn tell_watchers(
        &self,
        request: &RecordedRequest,
        authorized: impl FnOnce() -> bool,
        status: Option<u16>,
    ) {
        let mut watchers = lock(&self.watchers);
        if watchers.is_empty() {
            return;
        }
        let exchange = Exchange {
            method: request.method.clone(),
            path: request.path.clone(),
            version: format!("{:?}", request.version),
            host: request.host.clone(),
            headers: request
                .headers
                .iter()
                .map(|(name, value)| {
                    let secret = ["authorization", "proxy-authorization", "x-identity-header"]
                        .contains(&name.as_str());
                    let shown = if secret { "[redacted]" } else { value.as_str() };
                    (name.clone(), shown.to_owned())
                })
                .collect(),
            content_type: request.content_type.clone(),
            authorized: authorized(),
            body: shown_body(request),
            status,
        };
        watchers.retain(|watcher| watcher.send(exchange.clone()).is_ok());
    }
}

/// The body as a watcher sees it: a token request's re-written from its parsed form with the
/// credentials cut out (whatever their encoding), or withheld whole when it is not a form.
fn shown_body(request: &RecordedRequest) -> String {
    let to_token_endpoint = request.path.split('?').next().is_some_and(|path| {
        path.ends_with("/oauth2/v2.0/token") || path.ends_with("/oauth2/token")
    });
    if !to_token_endpoint {
        return String::from_utf8_lossy(&request.body).into_owned();
    }
    let is_form = request.content_type.as_deref().is_some_and(|ct| {
        ct.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !is_form {
        return format!(
            "[redacted: a {}-byte body that is not a form]",
            request.body.len()
        );
    }
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    form_urlencoded::parse(&request.body)
        .map(|(name, value)| {
            let secret = ["client_secret", "client_assertion"].contains(&name.as_ref());
            let value = if secret {
                "[redacted]".into()
            } else {
                encode(&value)
            };
            format!("{}={value}", encode(&name))
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The certificate chain and key the simulator serves TLS with (PEM).
pub struct TlsIdentity {
    /// The server's certificate, then any intermediates.
    pub certificate_chain_pem: Vec<u8>,
    /// The server certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key_pem: Vec<u8>,
}

impl Simulator {
    /// Serves plain HTTP/1.1 on `127.0.0.1:port` (0 picks a free port). With `accepted_token`,
    /// only that bearer token is accepted; without, any non-empty one is.
    pub async fn start(port: u16, accepted_token: Option<&str>) -> std::io::Result<Self> {
        Self::serve(port, accepted_token.map(str::to_owned), None).await
    }

    /// Serves HTTPS on `127.0.0.1:port` with `identity`, offering HTTP/2 and HTTP/1.1 by ALPN;
    /// its base URL names `localhost`, which the certificate must cover.
    pub async fn start_tls(
        port: u16,
        accepted_token: Option<&str>,
        identity: TlsIdentity,
    ) -> std::io::Result<Self> {
        let tls = acceptor(&identity)?;
        Self::serve(port, accepted_token.map(str::to_owned), Some(tls)).await
    }

    async fn serve(
        port: u16,
        accepted_token: Option<String>,
        tls: Option<TlsAcceptor>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let base_url = match tls {
            Some(_) => format!("https://localhost:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let shared = Arc::new(Shared {
            base_url,
            port: addr.port(),
            accepted_token,
            api: Mutex::default(),
            budget: Mutex::default(),
            directory: Mutex::default(),
            requests: Mutex::default(),
            watchers: Mutex::default(),
            connections: AtomicUsize::new(0),
        });
        let server = tokio::spawn(accept(listener, tls, shared.clone()));
        Ok(Self { shared, server })
    }

    /// The base URL to give the host, e.g. `http://127.0.0.1:49152` or
    /// `https://localhost:49152`. The token endpoint is served here too: use it as the
    /// authority of a `custom` cloud; IMDS's endpoint is `{base}/metadata/identity/oauth2/token`
    /// and App Service's `{base}/msi/token`.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Registers an application in the simulated directory, so the token endpoint issues it
    /// tokens (which the API endpoints then accept until they expire).
    pub fn register_client(&self, tenant_id: &str, client_id: &str, proof: ClientProof) {
        lock(&self.shared.directory).register(tenant_id, client_id, proof);
    }

    /// Says which managed identities the IMDS and App Service endpoints answer for.
    pub fn set_managed_identities(&self, identities: ManagedIdentities) {
        lock(&self.shared.directory).identities = identities;
    }

    /// How long issued tokens last (default 3599 s).
    pub fn set_token_lifetime(&self, lifetime: std::time::Duration) {
        lock(&self.shared.directory).set_lifetime(lifetime);
    }

    /// Queues answers for the next valid stop-and-quarantine requests, in order; once they are
    /// used up the simulator behaves like the API again. The same as
    /// `script_route("POST", "/api/machines/*/StopAndQuarantineFile", replies)`.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        let pattern = route_script::RoutePattern::create_action();
        self.shared.api().routes.add(pattern, replies);
    }

    /// Queues answers for the next valid requests to an API route, in order, so a test can make
    /// any endpoint misbehave (the simulator's own device: the pages document no such thing).
    /// `method` is compared exactly (`GET`, `POST`); `path_pattern` is a path starting with `/`,
    /// split on `/`, where `*` matches exactly one non-empty segment and any other segment must
    /// be equal (case-sensitive); the query is ignored. Each matching request takes the next
    /// reply of the route's queue; once it is used up the endpoint behaves like the API again.
    /// When several routes match, the earliest registered that still has replies answers.
    ///
    /// A reply is taken only by a request to one of the five API endpoints that passes the
    /// token, the budget and the endpoint's own checks (a 401, 404, 429, 415 or 400 of the API
    /// comes first and leaves the reply queued); the sign-in endpoints are never scripted. For
    /// the create route the route script comes before [`Simulator::reply_for_machine`], and for
    /// the listings before [`Simulator::script_pages`].
    pub fn script_route(
        &self,
        method: &str,
        path_pattern: &str,
        replies: impl IntoIterator<Item = Reply>,
    ) -> Result<(), PatternError> {
        let pattern = route_script::RoutePattern::parse(method, path_pattern)?;
        self.shared.api().routes.add(pattern, replies);
        Ok(())
    }

    /// Answers every valid stop-and-quarantine request for this device with `reply`, unless a
    /// route script ([`Simulator::script_route`], [`Simulator::script`]) answers it first.
    pub fn reply_for_machine(&self, machine_id: &str, reply: Reply) {
        let mut tenant = self.shared.api();
        tenant.machine_replies.insert(machine_id.to_owned(), reply);
    }

    /// Says the file was seen on these devices (`GET /api/files/{sha1}/machines`). A file never
    /// declared has been seen nowhere (an empty list, as the API answers).
    pub fn file_seen_on(&self, sha1: &str, machine_ids: &[&str]) {
        let machines = machine_ids.iter().map(|m| (*m).to_owned()).collect();
        self.shared
            .api()
            .files
            .insert(sha1.to_ascii_lowercase(), machines);
    }

    /// How actions progress, as they are polled or as time passes.
    pub fn set_progression(&self, progression: Progression) {
        self.shared.api().progression = progression;
    }

    /// Makes the first `polls` GETs of each new action answer 404, as the API can right after
    /// creation (listings show it all the same).
    pub fn hide_new_actions(&self, polls: u32) {
        self.shared.api().hide_new_actions = polls;
    }

    /// Makes `GET /api/machineactions` leave out actions created less than `lag` ago (a GET by
    /// ID still finds them, subject to [`Simulator::hide_new_actions`]). No page says how soon a
    /// new action is listed, so a client must not rely on it being listed at once: this is the
    /// simulator's own model of a listing that lags creation. Default zero.
    pub fn set_listing_lag(&self, lag: std::time::Duration) {
        self.shared.api().listing_lag = lag;
    }

    /// Sets the API's clock `offset_ms` milliseconds ahead of the host's (behind when negative):
    /// every time the API writes (`creationDateTimeUtc`, `lastUpdateDateTimeUtc`,
    /// `cancellationDateTimeUtc`) is the host's clock plus the offset, and a `$filter` on
    /// `creationDateTimeUtc` compares with those written times. [`Progression::Settle`] and the
    /// listing lag still go by the real time elapsed, and `Retry-After` dates by the host's
    /// clock. No page speaks of clock skew: the simulator's own model, so a test can check that
    /// a client does not compare its own clock with the API's. Default zero.
    pub fn set_clock_offset(&self, offset_ms: i64) {
        self.shared.api().clock = clock::Clock::new(offset_ms);
    }

    /// How the budget's 429 writes `Retry-After`: in seconds as the API does (the default), or
    /// as an HTTP date, which RFC 9110 §10.2.3 allows and a client must read as well.
    pub fn set_retry_after_format(&self, format: RetryAfterFormat) {
        self.shared.api().retry_after_format = format;
    }

    /// Sets each caller's budget for each API; `None` lifts the limits entirely (for
    /// benchmarks that send thousands of calls). The budgets are per API ("Rate limitations for
    /// this API are 100 calls per minute and 1500 calls per hour", on each endpoint's page) and
    /// per caller: the application the simulator's directory issued the token to, or one shared
    /// caller for any other token. Unauthorized calls and calls refused with 429 do not count.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        lock(&self.shared.budget).set_limit(limit);
    }

    /// How many calls each API answered and refused for its budget, one entry per API in the
    /// order `create-action`, `get-action`, `list-actions`, `cancel-action`, `file-machines`.
    pub fn api_calls(&self) -> Vec<ApiCalls> {
        lock(&self.shared.budget).calls()
    }

    /// The server's page size for both listings (default and most 10,000: "Maximum page size
    /// is 10,000"); clamped to 1..=10000. Longer listings are cut into pages linked by
    /// `@odata.nextLink`.
    pub fn set_page_size(&self, n: usize) {
        self.shared.api().page_size = paging::PageSize::new(n);
    }

    /// Queues answers for the next listing requests (`GET /api/machineactions` and
    /// `GET /api/files/{sha1}/machines` alike), in order, each taken after authentication, the
    /// rate limit and the query's checks, and after any route script ([`Simulator::
    /// script_route`]); once they are used up the listings behave like the API again.
    pub fn script_pages(&self, replies: impl IntoIterator<Item = PageReply>) {
        self.shared.api().page_script.extend(replies);
    }

    /// Makes every action created from now on carry this member too (replacing a member of that
    /// name), as the API adds members over time.
    pub fn add_action_member(&self, name: &str, value: serde_json::Value) {
        self.shared
            .api()
            .extra_members
            .insert(name.to_owned(), value);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Every request from now on, with its answer, as it is answered.
    pub fn watch(&self) -> mpsc::UnboundedReceiver<Exchange> {
        let (sender, receiver) = mpsc::unbounded_channel();
        lock(&self.shared.watchers).push(sender);
        receiver
    }

    /// How many TCP connections clients have opened.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many actions exist in the simulated tenant.
    pub fn action_count(&self) -> usize {
        self.shared.api().action_count()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A TLS acceptor for `identity`, offering HTTP/2 and HTTP/1.1.
fn acceptor(identity: &TlsIdentity) -> std::io::Result<TlsAcceptor> {
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, what);
    let chain = CertificateDer::pem_slice_iter(&identity.certificate_chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("the certificate chain: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(&identity.private_key_pem)
        .map_err(|e| invalid(format!("the private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn accept(listener: TcpListener, tls: Option<TlsAcceptor>, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| routes::answer(shared.clone(), request));
            // A client that hangs up, fails the handshake, or an answer dropped on purpose, ends
            // the connection.
            match tls {
                Some(tls) => {
                    if let Ok(stream) = tls.accept(stream).await {
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .http1_only()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}
