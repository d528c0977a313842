//! A stand-in for the Defender for Endpoint API on 127.0.0.1, faithful to its contract: it
//! checks the bearer token, the content type and the case-sensitive body, answers 201 with a
//! realistic MachineAction, and can be scripted to give any answer of the error table, with
//! `Retry-After`, delays, broken or oversized bodies. It records every request it receives.

mod action;
mod reply;

pub use reply::Reply;

use crate::secret::Secret;
use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The most of a request body the simulator reads.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;
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

/// A running simulator. Dropping it stops accepting connections.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    accepted_token: Option<Secret>,
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

impl Simulator {
    /// Serves on `127.0.0.1:port` (0 picks a free port). With `accepted_token`, only that
    /// bearer token is accepted; without, any non-empty one is.
    pub async fn start(port: u16, accepted_token: Option<Secret>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            accepted_token,
            script: Mutex::default(),
            requests: Mutex::default(),
        });
        let server = tokio::spawn(serve(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// The base URL to give the host, e.g. `http://127.0.0.1:49152`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues answers for the next action requests, in order; once they are used up the
    /// simulator behaves like the API again.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        lock(&self.shared.script).extend(replies);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(shared.clone(), request));
            // A client that hangs up mid-request is not the simulator's problem.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &header::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => {
            return Ok(reply::api_error(
                413,
                "RequestEntityTooLarge",
                "Body too large",
            ));
        }
    };
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned(),
        authorization: header(header::AUTHORIZATION),
        content_type: header(header::CONTENT_TYPE),
        body,
    };
    lock(&shared.requests).push(recorded.clone());

    let Some(machine_id) = action_target(&recorded.path) else {
        return Ok(reply::api_error(
            404,
            "ResourceNotFound",
            "Resource not found",
        ));
    };
    if parts.method != Method::POST {
        return Ok(reply::api_error(
            405,
            "MethodNotAllowed",
            "Method not allowed",
        ));
    }
    let mut next = lock(&shared.script).pop_front().unwrap_or(Reply::Create);
    loop {
        return Ok(match next {
            Reply::Create => create(&shared, machine_id, &recorded),
            Reply::Error {
                status,
                code,
                message,
            } => reply::api_error(status, &code, &message),
            Reply::Throttle { retry_after_secs } => {
                let mut response = reply::api_error(
                    429,
                    "TooManyRequests",
                    "Rate limit is exceeded. Try again later.",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, retry_after_secs.into());
                response
            }
            Reply::Raw {
                status,
                content_type,
                body,
            } => reply::response(status, &content_type, body),
            Reply::Oversized { status, bytes } => {
                let filler = "x".repeat(bytes.saturating_sub(16));
                reply::json_response(status, &format!("{{\"id\":\"{filler}\"}}"))
            }
            Reply::Delayed(wait, inner) => {
                tokio::time::sleep(wait).await;
                next = *inner;
                continue;
            }
        });
    }
}

/// The machine ID of `/api/machines/{id}/StopAndQuarantineFile`.
fn action_target(path: &str) -> Option<&str> {
    path.strip_prefix("/api/machines/")?
        .strip_suffix("/StopAndQuarantineFile")
        .filter(|id| !id.contains('/'))
}

/// The API's own checks, in its order, then a new action.
fn create(shared: &Shared, machine_id: &str, request: &RecordedRequest) -> Response<Full<Bytes>> {
    let bearer = request
        .authorization
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.trim().is_empty());
    let authorized = match (&shared.accepted_token, bearer) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(accepted), Some(token)) => accepted.expose() == token,
    };
    if !authorized {
        return reply::api_error(
            401,
            "Unauthorized",
            "Authorization has been denied for this request.",
        );
    }
    let json = request.content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    });
    if !json {
        return reply::api_error(
            415,
            "UnsupportedMediaType",
            "Content-Type must be application/json",
        );
    }
    if !is_hex40(machine_id) {
        return reply::api_error(
            404,
            "ResourceNotFound",
            &format!("Machine {machine_id} was not found"),
        );
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
        return reply::api_error(
            400,
            "InvalidRequestBody",
            "Request body is not a JSON object",
        );
    };
    let member = |name: &str| body.get(name).and_then(Value::as_str);
    let (Some(comment), Some(sha1)) = (member("Comment"), member("Sha1")) else {
        return reply::api_error(
            400,
            "MissingRequiredParameter",
            "Comment and Sha1 are required",
        );
    };
    if body.len() != 2 {
        return reply::api_error(
            400,
            "InvalidRequestBody",
            "Unexpected members in request body",
        );
    }
    if !is_hex40(sha1) {
        return reply::api_error(
            400,
            "InvalidHashValue",
            &format!("Hash value {sha1} is not a valid SHA-1"),
        );
    }
    if comment.trim().is_empty() {
        return reply::api_error(400, "InvalidInput", "Comment must not be empty");
    }
    let action = action::stop_and_quarantine(machine_id, sha1, comment, REQUESTOR);
    reply::json_response(201, &action.to_string())
}

fn is_hex40(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit())
}
