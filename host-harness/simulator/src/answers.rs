//! The answers the simulator can be told to give, and how they are written on the wire.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use serde_json::json;
use std::time::Duration;
use thiserror::Error;

/// Returned to hyper to close the connection without an answer.
#[derive(Debug, Error)]
#[error("the simulator dropped the connection on purpose")]
pub struct Dropped;

/// An answer, or a connection dropped on purpose.
pub type Answer = Result<Response<Full<Bytes>>, Dropped>;

/// One scripted answer, given to a request the endpoint found valid (see
/// [`crate::Simulator::script_route`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The endpoint's own answer, on any route: on the create route a new action (201), on the
    /// others the action polled, the action cancelled or the listing's page.
    Create,
    /// An error in the API's shape, `{"error": {"code", "message", "target"}}`.
    Error {
        /// HTTP status.
        status: u16,
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
    },
    /// 429 `TooManyRequests` with this `Retry-After` value, verbatim: seconds as the API sends
    /// them, or an HTTP date, which RFC 9110 §10.2.3 allows.
    Throttle {
        /// The `Retry-After` header's value.
        retry_after: String,
    },
    /// Any status with any body, e.g. HTML from a gateway or a broken JSON document.
    Raw {
        /// HTTP status.
        status: u16,
        /// The `Content-Type` to send, which need not match the body.
        content_type: String,
        /// The body, verbatim.
        body: String,
    },
    /// A body of `bytes` bytes of valid-looking JSON, larger than any sane answer.
    Oversized {
        /// HTTP status.
        status: u16,
        /// Body length.
        bytes: usize,
    },
    /// Waits, then gives the inner answer.
    Delayed(Duration, Box<Reply>),
    /// The endpoint's own answer computed, so its effect happens (an action created, cancelled,
    /// polled or listed), then the connection dropped without answering: the client cannot know
    /// what happened.
    CreateThenDrop,
    /// The connection dropped without an answer, and without the endpoint doing anything: the
    /// client cannot know that nothing happened.
    Drop,
    /// The inner answer with these headers added, or replacing the inner answer's of the same
    /// name (the last of a name wins). A name or value that is not a valid header (RFC 9110
    /// §5.1, §5.5) is skipped, as no server could send it; over a dropped connection the headers
    /// go nowhere.
    WithHeaders {
        /// The headers, as name and value.
        headers: Vec<(String, String)>,
        /// The answer they are added to.
        reply: Box<Reply>,
    },
}

impl Reply {
    /// 429 with `Retry-After` in seconds.
    pub fn throttle(seconds: u64) -> Self {
        Self::Throttle {
            retry_after: seconds.to_string(),
        }
    }

    /// An API error with the given status and code and a generic message.
    pub fn error(status: u16, code: &str) -> Self {
        Self::Error {
            status,
            code: code.into(),
            message: format!("Simulated {code}"),
        }
    }
}

/// One scripted answer for the next listing request (`GET /api/machineactions` or
/// `GET /api/files/{sha1}/machines`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageReply {
    /// Behave like the API.
    Api,
    /// The page the API would give, but with `@odata.nextLink` set to this URL (even when
    /// the page is the last).
    NextLink(String),
    /// This answer instead of the page; [`Reply::Create`] stands for the API's page, and
    /// [`Reply::CreateThenDrop`] for computing it (moving the listed actions along) and then
    /// dropping the connection.
    Answer(Reply),
}

/// Gives a scripted answer; `api` is the endpoint's own, for [`Reply::Create`] and
/// [`Reply::CreateThenDrop`], and is not called otherwise.
pub async fn render(mut reply: Reply, api: impl FnOnce() -> Response<Full<Bytes>>) -> Answer {
    // The headers of every `WithHeaders` met, outermost first.
    let mut added: Vec<Vec<(String, String)>> = Vec::new();
    let mut response = loop {
        break match reply {
            Reply::Create => api(),
            Reply::CreateThenDrop => {
                api();
                return Err(Dropped);
            }
            Reply::Drop => return Err(Dropped),
            Reply::WithHeaders {
                headers,
                reply: inner,
            } => {
                added.push(headers);
                reply = *inner;
                continue;
            }
            Reply::Error {
                status,
                code,
                message,
            } => api_error(status, &code, &message),
            Reply::Throttle { retry_after } => {
                let message = "Rate limit is exceeded. Try again later.";
                let mut response = api_error(429, "TooManyRequests", message);
                if let Ok(value) = http::HeaderValue::from_str(&retry_after) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            Reply::Raw {
                status,
                content_type,
                body,
            } => response(status, &content_type, body),
            Reply::Oversized { status, bytes } => {
                let filler = "x".repeat(bytes.saturating_sub(16));
                json_response(status, &format!("{{\"id\":\"{filler}\"}}"))
            }
            Reply::Delayed(wait, inner) => {
                tokio::time::sleep(wait).await;
                reply = *inner;
                continue;
            }
        };
    };
    // Inner headers first, so an outer `WithHeaders` replaces them.
    for (name, value) in added.iter().rev().flatten() {
        let name = http::HeaderName::from_bytes(name.as_bytes());
        if let (Ok(name), Ok(value)) = (name, http::HeaderValue::from_bytes(value.as_bytes())) {
            response.headers_mut().insert(name, value);
        }
    }
    Ok(response)
}

/// The correlation ID the simulator puts in every error's `target`.
pub fn correlation_id() -> String {
    let mut bytes = [0u8; 16];
    // Predictable IDs are harmless here: they only label simulated errors.
    let _ = getrandom::fill(&mut bytes);
    super::machine_action::guid(&bytes)
}

/// Builds an error response in the API's shape.
pub fn api_error(status: u16, code: &str, message: &str) -> Response<Full<Bytes>> {
    let body = json!({"error": {"code": code, "message": message, "target": correlation_id()}});
    json_response(status, &body.to_string())
}

/// A JSON response with the given status.
pub fn json_response(status: u16, body: &str) -> Response<Full<Bytes>> {
    response(status, "application/json; charset=utf-8", body.to_owned())
}

/// Any response.
pub fn response(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
