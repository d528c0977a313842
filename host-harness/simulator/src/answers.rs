//! The answers the simulator can be told to give, and how they are written on the wire.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::Full;
use serde_json::json;
use std::time::Duration;

/// One scripted answer for the next action request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Behave like the API: check the request and create the action (201).
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
    /// Creates the action like [`Reply::Create`], then drops the connection without answering:
    /// the client cannot know the action exists.
    CreateThenDrop,
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
