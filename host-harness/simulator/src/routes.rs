//! Which endpoint a request is for, and the API's answer to it.

use super::answers::{self, Reply};
use super::{RecordedRequest, Shared, front_door, identity, lock, machine_action, sign_in};
use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use std::sync::Arc;
use thiserror::Error;

/// The most of a request body the simulator reads.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Returned to hyper to close the connection without an answer.
#[derive(Debug, Error)]
#[error("the simulator dropped the connection on purpose")]
pub struct Dropped;

type Answer = Result<Response<Full<Bytes>>, Dropped>;

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

/// The endpoint's answer.
async fn route(shared: &Shared, parts: &http::request::Parts, request: &RecordedRequest) -> Answer {
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (&parts.method, segments.as_slice()) {
        (&Method::POST, ["api", "machines", machine, "StopAndQuarantineFile"]) => {
            create_route(shared, machine, request).await
        }
        (&Method::POST, [tenant_id, "oauth2", "v2.0", "token"]) => {
            let url = format!("{}{path}", shared.base_url);
            Ok(sign_in::token(
                &mut lock(&shared.directory),
                tenant_id,
                &url,
                request.content_type.as_deref(),
                &request.body,
            ))
        }
        (&Method::GET, ["metadata", "identity", "oauth2", "token"]) => Ok(identity::token(
            &mut lock(&shared.directory),
            identity::Endpoint::Imds,
            query,
            header_value(parts, "metadata").as_deref(),
        )),
        (&Method::GET, ["msi", "token"]) => Ok(identity::token(
            &mut lock(&shared.directory),
            identity::Endpoint::AppService,
            query,
            header_value(parts, "x-identity-header").as_deref(),
        )),
        _ if !authorized(shared, request) => Ok(unauthorized()),
        (&Method::GET, ["api", "machineactions", id]) => Ok(poll(shared, id)),
        (&Method::POST, ["api", "machineactions", id, "cancel"]) => Ok(cancel(shared, id, request)),
        (&Method::GET, ["api", "machineactions"]) => Ok(list(shared, query)),
        (&Method::GET, ["api", "files", sha1, "machines"]) => Ok(machines_of(shared, sha1)),
        _ => Ok(answers::api_error(
            404,
            "ResourceNotFound",
            "Resource not found",
        )),
    }
}

/// A scripted answer, a per-device one, or the API's own behaviour.
async fn create_route(shared: &Shared, machine: &str, request: &RecordedRequest) -> Answer {
    let mut next = {
        let mut api = shared.api();
        match api.machine_replies.get(machine) {
            Some(reply) => reply.clone(),
            None => api.script.pop_front().unwrap_or(Reply::Create),
        }
    };
    loop {
        return Ok(match next {
            Reply::Create => create(shared, machine, request),
            Reply::CreateThenDrop => {
                create(shared, machine, request);
                return Err(Dropped);
            }
            Reply::Error {
                status,
                code,
                message,
            } => answers::api_error(status, &code, &message),
            Reply::Throttle { retry_after } => {
                let mut response = answers::api_error(
                    429,
                    "TooManyRequests",
                    "Rate limit is exceeded. Try again later.",
                );
                if let Ok(value) = http::HeaderValue::from_str(&retry_after) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            }
            Reply::Raw {
                status,
                content_type,
                body,
            } => answers::response(status, &content_type, body),
            Reply::Oversized { status, bytes } => {
                let filler = "x".repeat(bytes.saturating_sub(16));
                answers::json_response(status, &format!("{{\"id\":\"{filler}\"}}"))
            }
            Reply::Delayed(wait, inner) => {
                tokio::time::sleep(wait).await;
                next = *inner;
                continue;
            }
        });
    }
}

fn authorized(shared: &Shared, request: &RecordedRequest) -> bool {
    let bearer = request
        .authorization
        .as_deref()
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.trim().is_empty());
    match (&shared.accepted_token, bearer) {
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
    api.add(created.clone());
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

/// `$filter=field eq 'value' and ...`, as the API's OData subset takes it.
fn list(shared: &Shared, query: &str) -> Response<Full<Bytes>> {
    let filter = form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "$filter")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let mut terms = Vec::new();
    for term in filter.split(" and ").filter(|t| !t.trim().is_empty()) {
        let parsed = term.trim().split_once(" eq ").and_then(|(field, value)| {
            let value = value.trim().strip_prefix('\'')?.strip_suffix('\'')?;
            Some((field.trim().to_owned(), value.to_owned()))
        });
        match parsed {
            Some(term) => terms.push(term),
            None => return answers::api_error(400, "ODataError", "Invalid $filter"),
        }
    }
    let value = shared.api().list(&terms);
    answers::json_response(200, &json!({ "value": value }).to_string())
}

/// The devices that have seen a file; for a file never seen, "If the file doesn't exist, an empty
/// set is returned" with 200 ("Get file related machines", learn.microsoft.com/defender-endpoint/
/// api/get-file-related-machines).
fn machines_of(shared: &Shared, sha1: &str) -> Response<Full<Bytes>> {
    let api = shared.api();
    let machines = api
        .files
        .get(&sha1.to_ascii_lowercase())
        .map_or(&[][..], Vec::as_slice);
    let value: Vec<Value> = machines
        .iter()
        .map(|id| json!({"id": id, "computerDnsName": format!("desktop-{}.contoso.local", &id[..id.len().min(8)])}))
        .collect();
    answers::json_response(200, &json!({ "value": value }).to_string())
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
