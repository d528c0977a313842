//! The service's endpoints. Each checks the caller first, then its input (bounded, exact JSON),
//! and only then does work; every error is a [`Problem`].

use super::State;
use super::auth::Caller;
use super::jobs::{Idempotency, Job, JobStatus};
use super::problem::{Problem, ProblemDetails};
use super::runner::{self, Submitted};
use crate::output::json::action_raw;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use defender_host::{
    File, MachineAction, Outcome, QuarantineRequest, RuntimeError, Targets, Tenant, Wait,
};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// The longest a request waits for its job (`?wait=true`, `Prefer: wait=N`).
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// How often a job run by another process is read while a request waits for it.
const STORE_POLL: Duration = Duration::from_millis(500);
/// The longest a request's body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// `POST /v1/tenants/{tenant}/quarantine`'s body: the JSON form of `quarantine-request`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct QuarantineBody {
    /// The devices' IDs (40 hex characters each); leave out with `everywhere`.
    pub machine_ids: Option<Vec<String>>,
    /// Every device on which the API has seen the file, instead of `machineIds`.
    #[serde(default)]
    pub everywhere: bool,
    /// The file's SHA-1 (40 hex characters).
    pub sha1: String,
    /// The comment attached to each action.
    pub comment: String,
    /// Wait for the actions to end (polling), up to a timeout.
    pub wait: Option<WaitBody>,
    /// The most devices `everywhere` may act on (default and at most 1000).
    pub max_machines: Option<u32>,
}

/// How long to wait for the actions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WaitBody {
    /// Seconds to wait, 1 to 86400.
    pub timeout_seconds: u64,
    /// Cancel what is still pending at the timeout.
    #[serde(default)]
    pub cancel_on_timeout: bool,
}

/// `POST …/actions/{actionId}/cancel`'s body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CancelBody {
    /// Why the action is cancelled.
    pub comment: String,
}

/// `?wait=true`: answer when the job is done.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WaitQuery {
    /// Answer only when the job is done (at most an hour).
    pub wait: Option<bool>,
}

impl FromRequestParts<Arc<State>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Self, Problem> {
        state.gate.admit(&parts.headers)
    }
}

/// The tenant `name` if the caller may act for it; otherwise 404, as for a tenant that does
/// not exist.
fn tenant<'a>(state: &'a State, caller: &Caller, name: &str) -> Result<&'a Tenant, Problem> {
    match state.tenants.get(name) {
        Some(tenant) if caller.allows(name) => Ok(tenant),
        _ => Err(Problem::not_found("tenant")),
    }
}

/// Start a quarantine job.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/quarantine",
    operation_id = "StopAndQuarantine",
    tag = "actions",
    params(
        ("tenant" = String, Path, description = "The tenant's name in the tenants file"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key and body while the job is kept (ttl-secs, 24 hours by default) give the same job; another body, 409"),
        ("Prefer" = Option<String>, Header, description = "`wait=N`: answer when the job is done, or after N seconds"),
        WaitQuery,
    ),
    request_body(content = QuarantineBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The job, done", body = Job),
        (status = 202, description = "The job, running; poll its Location", body = Job,
            headers(("Location" = String, description = "The job's URL"))),
        (status = 400, description = "Invalid input: nothing was sent", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No or an unknown API key", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant for this key", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The Idempotency-Key was used with another body", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 405, description = "Not a method of this endpoint", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within 30 s", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "The host could not check the request (a limit, a trap)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 502, description = "The component failed to check the request", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "The service runs as many jobs as it may, or its store is down", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("apiKey" = []))
)]
pub async fn quarantine(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let Path(tenant_name) = path.map_err(path_problem)?;
    let tenant = tenant(&state, &caller, &tenant_name)?;
    let Query(query) = query.map_err(|e| Problem::invalid("query", e.body_text()))?;
    let wait = requested_wait(query.wait.unwrap_or(false), &headers)?;
    let idempotency_key = idempotency_key(&headers)?;
    let bytes = read_body(&headers, body, state.config.max_body_bytes).await?;
    let parsed: QuarantineBody = parse(&bytes)?;
    let request = request_of(parsed)?;
    let idempotency = idempotency_key.map(|key| Idempotency {
        caller: caller.name.clone(),
        key,
        request_sha256: request_hash(&tenant_name, &bytes),
    });
    let job =
        match runner::submit(&state, &caller, &tenant_name, tenant, request, idempotency).await? {
            Submitted::Started(job) | Submitted::Existing(job) => job,
        };
    let job = match wait {
        Some(wait) => wait_for(&state, job, wait).await,
        None => job,
    };
    Ok(job_response(job, wait.is_some()))
}

/// Show a job.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    operation_id = "GetJob",
    tag = "jobs",
    params(("id" = String, Path, description = "The job's ID")),
    responses(
        (status = 200, description = "The job: its status, each device's outcome with the API's MachineAction whole", body = Job),
        (status = 401, description = "No or an unknown API key", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such job for this key (or it expired)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 503, description = "The job store does not answer", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("apiKey" = []))
)]
pub async fn get_job(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, Problem> {
    let Path(id) = path.map_err(path_problem)?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Problem::not_found("job"));
    }
    let job = state.store.get(&id).await.map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    })?;
    match job {
        Some(job) if caller.allows(&job.tenant) => {
            Ok(axum::Json(runner::reconcile(&state, job)).into_response())
        }
        _ => Err(Problem::not_found("job")),
    }
}

/// Show a machine action.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant}/actions/{actionId}",
    operation_id = "GetAction",
    tag = "actions",
    params(
        ("tenant" = String, Path, description = "The tenant's name in the tenants file"),
        ("actionId" = String, Path, description = "The action's ID"),
    ),
    responses(
        (status = 200, description = "The API's MachineAction, whole", body = Object),
        (status = 400, description = "Invalid action ID: nothing was sent", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No or an unknown API key", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant for this key, or no such action", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "The tenant's budget is spent", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "The host stopped the call (a limit, a trap)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 502, description = "The API or the sign-in failed", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("apiKey" = []))
)]
pub async fn get_action(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, Problem> {
    let Path((tenant_name, action_id)) = path.map_err(path_problem)?;
    let tenant = tenant(&state, &caller, &tenant_name)?;
    let outcome = state.runtime.get_action(tenant, &action_id).await;
    action_response(outcome)
}

/// Cancel a machine action that is not final yet.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant}/actions/{actionId}/cancel",
    operation_id = "CancelAction",
    tag = "actions",
    params(
        ("tenant" = String, Path, description = "The tenant's name in the tenants file"),
        ("actionId" = String, Path, description = "The action's ID"),
    ),
    request_body(content = CancelBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The API's MachineAction, whole", body = Object),
        (status = 400, description = "Invalid input: nothing was sent", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 401, description = "No or an unknown API key", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant for this key, or no such action", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 408, description = "The body did not arrive within 30 s", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 409, description = "The API refused: the action is already being cancelled", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 415, description = "The body is not application/json", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "The tenant's budget is spent", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 500, description = "The host stopped the call (a limit, a trap)", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 502, description = "The API or the sign-in failed", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("apiKey" = []))
)]
pub async fn cancel_action(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    caller: Caller,
    Path((tenant_name, action_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let tenant = tenant(&state, &caller, &tenant_name)?;
    let bytes = read_body(&headers, body, state.config.max_body_bytes).await?;
    let parsed: CancelBody = parse(&bytes)?;
    let outcome = state
        .runtime
        .cancel_action(tenant, &action_id, &parsed.comment)
        .await;
    action_response(outcome)
}

/// Whether the process is up.
#[utoipa::path(get, path = "/healthz", operation_id = "Health", tag = "service",
    responses((status = 200, description = "The process answers", body = String, content_type = "text/plain")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Whether the process can take jobs: it is not shutting down and its job store answers.
#[utoipa::path(get, path = "/readyz", operation_id = "Ready", tag = "service",
    responses(
        (status = 200, description = "Ready", body = String, content_type = "text/plain"),
        (status = 503, description = "Shutting down, or the job store does not answer", body = ProblemDetails, content_type = "application/problem+json"),
    ))]
pub async fn readyz(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
) -> Result<&'static str, Problem> {
    if state
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "shutting down",
        ));
    }
    state.store.ready().await.map_err(|e| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            e.to_string(),
        )
    })?;
    Ok("ready\n")
}

/// The Prometheus metrics.
#[utoipa::path(get, path = "/metrics", operation_id = "Metrics", tag = "service",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 401, description = "No or an unknown API key", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 403, description = "The key may not read metrics (`metrics = true` in its table)", body = ProblemDetails, content_type = "application/problem+json"),
    ),
    security(("apiKey" = [])))]
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    caller: Caller,
) -> Result<Response, Problem> {
    if !caller.reads_metrics() {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this API key may not read metrics",
        ));
    }
    let text = state.metrics.render();
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// A job as the answer: 200 when done, 202 with its `Location` while it runs.
fn job_response(job: Job, waited: bool) -> Response {
    let running = job.status == JobStatus::Running;
    let location = format!("/v1/jobs/{}", job.id);
    let status = if running {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut response = (status, axum::Json(job)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if waited {
        response
            .headers_mut()
            .insert("preference-applied", HeaderValue::from_static("wait"));
    }
    response
}

/// Waits up to `wait` for a job to end: on its own end if this process runs it, by reading
/// the store every half second if another does. A shutdown ends the wait at once.
async fn wait_for(state: &State, job: Job, wait: Duration) -> Job {
    let mut stopping = state.stopping.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    let mut job = job;
    while job.status == JobStatus::Running && tokio::time::Instant::now() < deadline {
        let done = state
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&job.id)
            .map(|running| running.done.clone());
        let pause = async {
            match done {
                Some(mut done) => {
                    let _ = done.wait_for(|d| *d).await;
                }
                // Not (or no longer) run here: read the store now, then every half second.
                None if job.owner == state.instance => {}
                None => tokio::time::sleep(STORE_POLL).await,
            }
        };
        tokio::select! {
            () = pause => {}
            () = tokio::time::sleep_until(deadline) => {}
            _ = stopping.wait_for(|s| *s) => return job,
        }
        match state.store.get(&job.id).await {
            Ok(Some(stored)) => job = runner::reconcile(state, stored),
            _ => return job,
        }
    }
    job
}

/// A MachineAction call's outcome as the answer: the API's JSON whole, or a problem.
fn action_response(
    outcome: Result<Outcome<MachineAction>, RuntimeError>,
) -> Result<Response, Problem> {
    let outcome = outcome.map_err(|e| Problem::from_runtime(&e))?;
    let action = outcome.result.map_err(|e| Problem::from_action(&e))?;
    let raw = action_raw(&action)
        .map_err(|e| Problem::new(StatusCode::BAD_GATEWAY, "upstream", e.to_string()))?;
    let mut response = raw.get().to_owned().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// How long the caller asked to wait: `?wait=true` (an hour at most) or `Prefer: wait=N`.
fn requested_wait(query: bool, headers: &HeaderMap) -> Result<Option<Duration>, Problem> {
    let mut wait = query.then_some(MAX_WAIT);
    for value in headers.get_all("prefer") {
        let text = value
            .to_str()
            .map_err(|_| Problem::invalid("Prefer", "not ASCII text"))?;
        for preference in text.split(',') {
            let Some(seconds) = preference.trim().strip_prefix("wait=") else {
                continue;
            };
            let seconds: u64 = seconds
                .trim()
                .parse()
                .map_err(|_| Problem::invalid("Prefer", "wait= takes whole seconds"))?;
            wait = Some(Duration::from_secs(seconds).min(MAX_WAIT));
        }
    }
    Ok(wait)
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    let visible = text.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if text.is_empty() || text.len() > MAX_IDEMPOTENCY_KEY || !visible {
        return Err(Problem::invalid(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// The body, if it is JSON and no larger than `max` (413 otherwise, read no further).
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<bytes::Bytes, Problem> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid-input",
            "the body must be application/json",
        ));
    }
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the body is larger than {max} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > max as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, max).collect()).await;
    match read {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(_)) => Err(Problem::invalid("body", "the body could not be read")),
        Err(_) => Err(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid-input",
            format!(
                "the body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// `bytes` as `T`, or a 400 naming the field at fault (`wait.timeoutSeconds`,
/// `machineIds[2]`, or the unknown field's own name).
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<T, _> = serde_path_to_error::deserialize(&mut reader);
    if parsed.is_ok() {
        reader.end().map_err(|e| {
            Problem::invalid("body", format!("the body is not the operation's JSON: {e}"))
        })?;
    }
    parsed.map_err(|error| {
        let message = error.inner().to_string();
        let at = error.path().to_string();
        // The path names an unknown field itself; a missing one, its parent.
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let top = matches!(at.as_str(), "." | "" | "?");
        let field = match (missing, top) {
            (Some(name), true) => name.to_owned(),
            (Some(name), false) => format!("{at}.{name}"),
            (None, true) => "body".to_owned(),
            (None, false) => at,
        };
        Problem::invalid(
            &field,
            format!("the body is not the operation's JSON: {message}"),
        )
    })
}

/// A path that is not one (bad UTF-8 in a segment, say), as a problem.
fn path_problem(rejection: PathRejection) -> Problem {
    Problem::invalid("path", rejection.body_text())
}

/// The component's request for a body.
fn request_of(body: QuarantineBody) -> Result<QuarantineRequest, Problem> {
    let targets = match (body.machine_ids, body.everywhere) {
        (Some(ids), false) => Targets::Machines(ids),
        (None, true) => Targets::Everywhere,
        (Some(_), true) => {
            return Err(Problem::invalid(
                "machineIds",
                "give machineIds or everywhere, not both",
            ));
        }
        (None, false) => {
            return Err(Problem::invalid(
                "machineIds",
                "give machineIds, or everywhere = true",
            ));
        }
    };
    let wait = match body.wait {
        Some(wait) if !(1..=86_400).contains(&wait.timeout_seconds) => {
            return Err(Problem::invalid(
                "wait.timeoutSeconds",
                "must be from 1 to 86400",
            ));
        }
        Some(wait) => Some(Wait {
            timeout_ms: wait.timeout_seconds * 1000,
            cancel_on_timeout: wait.cancel_on_timeout,
        }),
        None => None,
    };
    Ok(QuarantineRequest {
        targets,
        file: File::Sha1(body.sha1),
        comment: body.comment,
        wait,
        max_machines: body.max_machines,
    })
}

/// SHA-256 of the tenant and the body, in hex: what an idempotency key is bound to.
fn request_hash(tenant: &str, body: &[u8]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(tenant.as_bytes());
    context.update(&[0]);
    context.update(body);
    context
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
