//! Problem details (RFC 9457) for every error `serve` answers, with the same kinds as the
//! command line's errors (`invalid-input`, `not-found`, `rate-limited`, ...) and, for the API's
//! own failures, its status, code, message and correlation ID.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use defender_host::{ActionError, RuntimeError};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type of a problem (RFC 9457 §3).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error answered as problem details; boxed, as errors travel far and are rarely made.
#[derive(Debug)]
pub struct Problem(Box<ProblemDetails>);

impl std::ops::Deref for Problem {
    type Target = ProblemDetails;

    fn deref(&self) -> &ProblemDetails {
        &self.0
    }
}

impl std::ops::DerefMut for Problem {
    fn deref_mut(&mut self) -> &mut ProblemDetails {
        &mut self.0
    }
}

impl Serialize for Problem {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

/// An error, as RFC 9457 problem details.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProblemDetails {
    /// A URI naming the kind of problem: `urn:defender:problem:<kind>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The kind's title.
    pub title: String,
    /// The HTTP status of this answer.
    pub status: u16,
    /// What went wrong this time, in one line.
    pub detail: String,
    /// The kind, as the command line names it: `invalid-input`, `unauthorized`, `forbidden`,
    /// `not-found`, `already-pending`, `rate-limited`, `upstream`, `transport`, `credentials`,
    /// `limit`, `conflict`, `too-large`, `unavailable`, `host`.
    pub kind: String,
    /// The input field at fault, for `invalid-input`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// The Defender API's HTTP status, when it answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_status: Option<u16>,
    /// The Defender API's error code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The Defender API's correlation ID (`error.target`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// How long to wait before trying again, for `rate-limited`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl Problem {
    /// A problem of `kind` with `status` and `detail`.
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Self(Box::new(ProblemDetails {
            problem_type: format!("urn:defender:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: defender_host::escape::escape(&detail.into()),
            kind: kind.to_owned(),
            field: None,
            api_status: None,
            code: None,
            target: None,
            retry_after_ms: None,
        }))
    }

    /// 400: the request is not what the operation takes; `field` names the part at fault.
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        let mut problem = Self::new(StatusCode::BAD_REQUEST, "invalid-input", detail);
        problem.field = Some(defender_host::escape::escape(field));
        problem
    }

    /// 404 for anything the caller may not see or that does not exist: the two are not told
    /// apart, so a key cannot learn which tenants or jobs exist.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("no such {what}"),
        )
    }

    /// The component's error for a call, with the status a caller should see: its own input
    /// 400, a missing action 404, a pending one 409, the budget 429, the API's or the sign-in's
    /// failures 502.
    pub fn from_action(error: &ActionError) -> Self {
        let status = match error {
            ActionError::InvalidInput(_) => StatusCode::BAD_REQUEST,
            ActionError::NotFound(_) => StatusCode::NOT_FOUND,
            ActionError::AlreadyPending(_) => StatusCode::CONFLICT,
            ActionError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_GATEWAY,
        };
        let mut problem = Self::new(status, error.kind(), crate::output::json::error_line(error));
        if let ActionError::InvalidInput(input) = error {
            problem.field = Some(defender_host::escape::escape(&json_name(&input.field)));
        }
        if let Some(api) = error.api() {
            problem.api_status = Some(api.status);
            problem.code = api.code.as_deref().map(defender_host::escape::escape);
            problem.target = api.target.as_deref().map(defender_host::escape::escape);
        }
        if let ActionError::RateLimited(r) = error {
            problem.retry_after_ms = Some(r.retry_after_ms);
        }
        problem
    }

    /// The host's own failure to carry a call out (a limit, a trap, the network setting).
    pub fn from_runtime(error: &RuntimeError) -> Self {
        let kind = match error {
            RuntimeError::Limit(_) => "limit",
            _ => "host",
        };
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            kind,
            format!("{error:#}"),
        )
    }
}

/// A field as the component names it (`machine-ids[0]`, `max-machines`) as the request's JSON
/// names it (`machineIds[0]`, `maxMachines`).
fn json_name(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        match c {
            '-' => upper = true,
            c if upper => {
                out.extend(c.to_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after_ms.map(|ms| ms.div_ceil(1000));
        let unauthorized = status == StatusCode::UNAUTHORIZED;
        let body = serde_json::to_vec(&*self.0).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if unauthorized {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
