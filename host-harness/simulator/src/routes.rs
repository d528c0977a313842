//! Which endpoint a request is for, and the API's answer to it.

use super::answers::{self, Answer, Reply};
use super::budget::{Api, Throttled};
use super::{
    RecordedRequest, Shared, front_door, identity, listings, lock, machine_action, sign_in,
};
use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// The most of a request body the simulator reads.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Records the request and answers it.
pub async fn answer(shared: Arc<Shared>, request: Request<Incoming>) -> Answer {
    let (parts, body) = request.into_parts();
    let header = |name| {
        parts
            .headers
            .get(name)
            .map(|v: &header::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let host = front_door::host(&parts, shared.port);
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => {
            return Ok(answers::api_error(
                413,
                "RequestEntityTooLarge",
                "Body too large",
            ));
        }
    };
    let request = RecordedRequest {
        version: parts.version,
        host: host.clone(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
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
    lock(&shared.requests).push(request.clone());
    let answer = match host {
        Some(_) => route(&shared, &parts, &request).await,
        None => Ok(front_door::refusal()),
    };
    let status = answer.as_ref().ok().map(|r| r.status().as_u16());
    shared.tell_watchers(&request, || authorized(&shared, &request), status);
    answer
}

/// The API endpoints, each a separate API with its own rate budget.
enum Endpoint<'a> {
    Create(&'a str),
    Get(&'a str),
    List,
    Cancel(&'a str),
    FileMachines(&'a str),
}

impl Endpoint<'_> {
    fn api(&self) -> Api {
        match self {
            Endpoint::Create(_) => Api::CreateAction,
            Endpoint::Get(_) => Api::GetAction,
            Endpoint::List => Api::ListActions,
            Endpoint::Cancel(_) => Api::CancelAction,
            Endpoint::FileMachines(_) => Api::FileMachines,
        }
    }
}

/// The endpoint's answer.
async fn route(shared: &Shared, parts: &http::request::Parts, request: &RecordedRequest) -> Answer {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let endpoint = match (&parts.method, segments.as_slice()) {
        (&Method::POST, [tenant_id, "oauth2", "v2.0", "token"]) => {
            let url = format!("{}{path}", shared.base_url);
            return Ok(sign_in::token(
                &mut lock(&shared.directory),
                tenant_id,
                &url,
                request.content_type.as_deref(),
                &request.body,
            ));
        }
        (&Method::GET, ["metadata", "identity", "oauth2", "token"]) => {
            return Ok(identity::token(
                &mut lock(&shared.directory),
                identity::Endpoint::Imds,
                query,
                header_value(parts, "metadata").as_deref(),
            ));
        }
        (&Method::GET, ["msi", "token"]) => {
            return Ok(identity::token(
                &mut lock(&shared.directory),
                identity::Endpoint::AppService,
                query,
                header_value(parts, "x-identity-header").as_deref(),
            ));
        }
        (&Method::POST, ["api", "machines", machine, "StopAndQuarantineFile"]) => {
            Some(Endpoint::Create(machine))
        }
        (&Method::GET, ["api", "machineactions", id]) => Some(Endpoint::Get(id)),
        (&Method::POST, ["api", "machineactions", id, "cancel"]) => Some(Endpoint::Cancel(id)),
        (&Method::GET, ["api", "machineactions"]) => Some(Endpoint::List),
        (&Method::GET, ["api", "files", sha1, "machines"]) => Some(Endpoint::FileMachines(sha1)),
        _ => None,
    };
    if !authorized(shared, request) {
        return match endpoint {
            // As before budgets existed: a scripted answer, or the API's own 401; not counted.
            Some(Endpoint::Create(machine)) => create_route(shared, machine, request).await,
            _ => Ok(unauthorized()),
        };
    }
    let Some(endpoint) = endpoint else {
        return Ok(answers::api_error(
            404,
            "ResourceNotFound",
            "Resource not found",
        ));
    };
    if let Err(throttled) = spend(shared, endpoint.api(), request) {
        return Ok(too_many_requests(throttled));
    }
    match endpoint {
        Endpoint::Create(machine) => create_route(shared, machine, request).await,
        Endpoint::Get(id) => Ok(poll(shared, id)),
        Endpoint::Cancel(id) => Ok(cancel(shared, id, request)),
        Endpoint::List => listings::actions(shared, path, query).await,
        Endpoint::FileMachines(sha1) => listings::machines(shared, sha1, path, query).await,
    }
}

/// Spends a call of the caller's budget for `api`: the caller is the application the
/// simulator's directory issued the token to, or one shared caller for any other token.
fn spend(shared: &Shared, api: Api, request: &RecordedRequest) -> Result<(), Throttled> {
    let caller =
        bearer(request).and_then(|token| lock(&shared.directory).holder(token).map(str::to_owned));
    let mut budget = lock(&shared.budget);
    budget.spend(api, caller.as_deref(), Instant::now())
}

/// "common errors" (learn.microsoft.com/defender-endpoint/api/common-errors): 429
/// `TooManyRequests` once the API's budget is spent, with `Retry-After` in seconds: when the
/// oldest call of the full window leaves it.
fn too_many_requests(throttled: Throttled) -> Response<Full<Bytes>> {
    let seconds = throttled.seconds();
    let message = format!("Rate limit is exceeded. Try again in {seconds} seconds.");
    let mut response = answers::api_error(429, "TooManyRequests", &message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, http::HeaderValue::from(seconds));
    response
}

/// A scripted answer, a per-device one, or the API's own behaviour.
async fn create_route(shared: &Shared, machine: &str, request: &RecordedRequest) -> Answer {
    let next = {
        let mut api = shared.api();
        match api.machine_replies.get(machine) {
            Some(reply) => reply.clone(),
            None => api.script.pop_front().unwrap_or(Reply::Create),
        }
    };
    answers::render(next, || create(shared, machine, request)).await
}

/// The request's bearer token, if it has a non-blank one.
fn bearer(request: &RecordedRequest) -> Option<&str> {
    request
        .authorization
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.trim().is_empty())
}

fn authorized(shared: &Shared, request: &RecordedRequest) -> bool {
    match (&shared.accepted_token, bearer(request)) {
        (_, None) => false,
        (_, Some(token)) if lock(&shared.directory).accepts(token) => true,
        (None, Some(_)) => true,
        (Some(accepted), Some(token)) => accepted == token,
    }
}

fn unauthorized() -> Response<Full<Bytes>> {
    answers::api_error(
        401,
        "Unauthorized",
        "Authorization has been denied for this request.",
    )
}

/// The API's own checks, in its order, then a new action.
fn create(shared: &Shared, machine_id: &str, request: &RecordedRequest) -> Response<Full<Bytes>> {
    if !authorized(shared, request) {
        return unauthorized();
    }
    if !json_content(request) {
        return unsupported_media_type();
    }
    if !is_hex40(machine_id) {
        let message = format!("Machine {machine_id} was not found");
        return answers::api_error(404, "ResourceNotFound", &message);
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
        return answers::api_error(
            400,
            "InvalidRequestBody",
            "Request body is not a JSON object",
        );
    };
    let member = |name: &str| body.get(name).and_then(Value::as_str);
    let (Some(comment), Some(sha1)) = (member("Comment"), member("Sha1")) else {
        let message = "Comment and Sha1 are required";
        return answers::api_error(400, "MissingRequiredParameter", message);
    };
    if body.len() != 2 {
        let message = "Unexpected members in request body";
        return answers::api_error(400, "InvalidRequestBody", message);
    }
    if !is_hex40(sha1) {
        let message = format!("Hash value {sha1} is not a valid SHA-1");
        return answers::api_error(400, "InvalidHashValue", &message);
    }
    if comment.trim().is_empty() {
        return answers::api_error(400, "InvalidInput", "Comment must not be empty");
    }
    let mut api = shared.api();
    if api.has_pending(machine_id) {
        let message = "Action is already in progress";
        return answers::api_error(400, "ActiveRequestAlreadyExists", message);
    }
    let created = machine_action::stop_and_quarantine(machine_id, sha1, comment, super::REQUESTOR);
    let created = api.add(created);
    answers::json_response(201, &created.to_string())
}

fn poll(shared: &Shared, id: &str) -> Response<Full<Bytes>> {
    match shared.api().poll(id) {
        Some(action) => answers::json_response(200, &action.to_string()),
        None => not_found_action(id),
    }
}

fn cancel(shared: &Shared, id: &str, request: &RecordedRequest) -> Response<Full<Bytes>> {
    if !json_content(request) {
        return unsupported_media_type();
    }
    let body = serde_json::from_slice::<Value>(&request.body).unwrap_or_default();
    let Some(comment) = body.get("Comment").and_then(Value::as_str) else {
        return answers::api_error(400, "MissingRequiredParameter", "Comment is required");
    };
    match shared.api().cancel(id, comment) {
        Ok(action) => answers::json_response(200, &action.to_string()),
        Err(None) => not_found_action(id),
        Err(Some(status)) => {
            let message = format!("Action {id} is already {status} and cannot be cancelled");
            answers::api_error(400, "BadRequest", &message)
        }
    }
}

fn not_found_action(id: &str) -> Response<Full<Bytes>> {
    answers::api_error(
        404,
        "ResourceNotFound",
        &format!("Machine action {id} was not found"),
    )
}

/// A header's value as text, if the request has exactly one.
fn header_value(parts: &http::request::Parts, name: &str) -> Option<String> {
    let mut values = parts.headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok().map(str::to_owned),
        _ => None,
    }
}

fn json_content(request: &RecordedRequest) -> bool {
    request.content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    })
}

fn unsupported_media_type() -> Response<Full<Bytes>> {
    let message = "Content-Type must be application/json";
    answers::api_error(415, "UnsupportedMediaType", message)
}

fn is_hex40(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit())
}
