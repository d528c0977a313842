//! A stand-in for the Defender for Endpoint API on 127.0.0.1, faithful to its contract: it
//! checks the bearer token, the content type and the case-sensitive body; creates actions that
//! move from `Pending` through `InProgress` to a final status as they are polled; answers the
//! action, listing, cancel and machines-of-a-file endpoints; says `ActiveRequestAlreadyExists`
//! while a device has a pending action; and can be scripted, per request or per device, to give
//! any answer of the error table, `Retry-After`, delays, broken or oversized bodies, or a dropped
//! connection. It serves the sign-in token endpoint as well. It records every request it
//! receives.

mod action;
mod reply;
mod routes;
mod state;
mod token;

pub use reply::Reply;
pub use state::Progression;
pub use token::ClientProof;

use crate::secret::Secret;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The `requestor` of simulated actions, as an app token would show it.
const REQUESTOR: &str = "host-harness simulator app";

/// A request as the simulator received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
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
/// process needs to check the exact request, without the token (only whether it was accepted).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exchange {
    /// The method, e.g. `POST`.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// Whether the request carried a bearer token the simulator accepts.
    pub authorized: bool,
    /// The body, as text (invalid UTF-8 replaced).
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
    accepted_token: Option<Secret>,
    tenant: Mutex<state::Tenant>,
    directory: Mutex<token::Directory>,
    requests: Mutex<Vec<RecordedRequest>>,
    watchers: Mutex<Vec<mpsc::UnboundedSender<Exchange>>>,
    connections: AtomicUsize,
}

impl Shared {
    fn tenant(&self) -> MutexGuard<'_, state::Tenant> {
        lock(&self.tenant)
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
            content_type: request.content_type.clone(),
            authorized: authorized(),
            body: String::from_utf8_lossy(&request.body).into_owned(),
            status,
        };
        watchers.retain(|watcher| watcher.send(exchange.clone()).is_ok());
    }
}

impl Simulator {
    /// Serves on `127.0.0.1:port` (0 picks a free port). With `accepted_token`, only that
    /// bearer token is accepted; without, any non-empty one is.
    pub async fn start(port: u16, accepted_token: Option<Secret>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            base_url: format!("http://{addr}"),
            accepted_token,
            tenant: Mutex::default(),
            directory: Mutex::default(),
            requests: Mutex::default(),
            watchers: Mutex::default(),
            connections: AtomicUsize::new(0),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self { shared, server })
    }

    /// The base URL to give the host, e.g. `http://127.0.0.1:49152`. The token endpoint is
    /// served here too: use it as the authority of a `custom` cloud.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    /// Registers an application in the simulated directory, so the token endpoint issues it
    /// tokens (which the API endpoints then accept until they expire).
    pub fn register_client(&self, tenant_id: &str, client_id: &str, proof: ClientProof) {
        lock(&self.shared.directory).register(tenant_id, client_id, proof);
    }

    /// How long issued tokens last (default 3599 s).
    pub fn set_token_lifetime(&self, lifetime: std::time::Duration) {
        lock(&self.shared.directory).set_lifetime(lifetime);
    }

    /// Queues answers for the next stop-and-quarantine requests, in order; once they are used
    /// up the simulator behaves like the API again.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.tenant().script.extend(replies);
    }

    /// Answers every stop-and-quarantine request for this device with `reply`.
    pub fn reply_for_machine(&self, machine_id: &str, reply: Reply) {
        let mut tenant = self.shared.tenant();
        tenant.machine_replies.insert(machine_id.to_owned(), reply);
    }

    /// Says the file was seen on these devices (`GET /api/files/{sha1}/machines`). A file never
    /// declared is unknown (404).
    pub fn file_seen_on(&self, sha1: &str, machine_ids: &[&str]) {
        let machines = machine_ids.iter().map(|m| (*m).to_owned()).collect();
        self.shared
            .tenant()
            .files
            .insert(sha1.to_ascii_lowercase(), machines);
    }

    /// How new actions progress as they are polled.
    pub fn set_progression(&self, progression: Progression) {
        self.shared.tenant().progression = progression;
    }

    /// Makes the first `polls` GETs of each new action answer 404, as the API can right after
    /// creation.
    pub fn hide_new_actions(&self, polls: u32) {
        self.shared.tenant().hide_new_actions = polls;
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
        self.shared.tenant().action_count()
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

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| routes::answer(shared.clone(), request));
            // A client that hangs up, or an answer dropped on purpose, ends the connection.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
