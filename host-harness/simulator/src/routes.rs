//! Which endpoint a request is for, and the order in which it is answered: the front door
//! (`crate::front_door`), the sign-in endpoints (which need no token), then for the API the
//! bearer token (401 `Unauthorized`), the path (404), the endpoint's budget (429), the
//! endpoint's own checks of the request (`crate::actions`, `crate::listings`), and only then a
//! scripted answer (`crate::route_script`, then a per-device reply or a scripted page) or the
//! endpoint's own behaviour. A script thus never answers a request the API would refuse.

use super::answers::{self, Answer, Reply};
use super::budget::{Api, Throttled};
use super::retry_after::too_many_requests;
use super::{RecordedRequest, Shared, actions, front_door, identity, listings, lock, sign_in};
use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

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
    // Every API endpoint, create included, refuses a bad token first: never a scripted answer,
    // and not counted against a budget.
    if !authorized(shared, request) {
        return Ok(unauthorized());
    }
    let Some(endpoint) = endpoint else {
        return Ok(answers::api_error(
            404,
            "ResourceNotFound",
            "Resource not found",
        ));
    };
    if let Err(throttled) = spend(shared, endpoint.api(), request) {
        let format = shared.api().retry_after_format;
        return Ok(too_many_requests(throttled, format, SystemTime::now()));
    }
    match endpoint {
        Endpoint::Create(machine) => actions::create(shared, parts, machine, request).await,
        Endpoint::Get(id) => actions::poll(shared, parts, id).await,
        Endpoint::Cancel(id) => actions::cancel(shared, parts, id, request).await,
        Endpoint::List => listings::actions(shared, parts).await,
        Endpoint::FileMachines(sha1) => listings::machines(shared, parts, sha1).await,
    }
}

/// The next answer a route script holds for this request, if any: to be taken only once the
/// endpoint has found the request valid.
pub fn route_reply(shared: &Shared, parts: &http::request::Parts) -> Option<Reply> {
    shared.api().routes.take(&parts.method, parts.uri.path())
}

/// Spends a call of the caller's budget for `api`: the caller is the application the
/// simulator's directory issued the token to, or one shared caller for any other token.
fn spend(shared: &Shared, api: Api, request: &RecordedRequest) -> Result<(), Throttled> {
    let caller =
        bearer(request).and_then(|token| lock(&shared.directory).holder(token).map(str::to_owned));
    let mut budget = lock(&shared.budget);
    budget.spend(api, caller.as_deref(), Instant::now())
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

/// "common errors" (learn.microsoft.com/defender-endpoint/api/common-errors): 401
/// `Unauthorized` for a missing or invalid token.
fn unauthorized() -> Response<Full<Bytes>> {
    answers::api_error(
        401,
        "Unauthorized",
        "Authorization has been denied for this request.",
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
