//! The three endpoints of one action: create ("Stop and quarantine file", learn.microsoft.com/
//! defender-endpoint/api/stop-and-quarantine-file), get ("Get machineAction",
//! learn.microsoft.com/defender-endpoint/api/get-machineaction-object) and cancel ("Cancel machine
//! action", learn.microsoft.com/defender-endpoint/api/cancel-machine-action). Each first checks
//! the request as the API does, then gives a scripted answer if one is due
//! (`crate::route_script`; for create then a per-device reply), else its own behaviour. The error
//! codes are the common-errors page's (learn.microsoft.com/defender-endpoint/api/common-errors).

use super::answers::{self, Answer, Reply};
use super::routes::route_reply;
use super::{RecordedRequest, Shared, machine_action};
use bytes::Bytes;
use http::Response;
use http::request::Parts;
use http_body_util::Full;
use serde_json::Value;
use thiserror::Error;

/// Why an endpoint refused a request before doing anything, each with the common-errors page's
/// code; the message is the simulator's (the page: "The message is a free text that can be
/// changed").
#[derive(Debug, Clone, PartialEq, Eq, Error)]
enum Refusal {
    /// Not `application/json`: 415.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// A device ID that is not 40 hex digits: 404 `ResourceNotFound`.
    #[error("Machine {0} was not found")]
    UnknownMachine(String),
    /// A body that is not a JSON object: 400 `InvalidRequestBody`.
    #[error("Request body is not a JSON object")]
    NotAnObject,
    /// A required member missing or not text: 400 `MissingRequiredParameter`.
    #[error("{0}")]
    MissingParameter(&'static str),
    /// Members besides the documented ones: 400 `InvalidRequestBody`.
    #[error("Unexpected members in request body")]
    UnexpectedMembers,
    /// A `Sha1` that is not 40 hex digits: 400 `InvalidHashValue`.
    #[error("Hash value {0} is not a valid SHA-1")]
    InvalidHash(String),
    /// A blank `Comment`: 400 `InvalidInput`.
    #[error("Comment must not be empty")]
    BlankComment,
}

impl Refusal {
    /// The API's answer.
    fn answer(&self) -> Response<Full<Bytes>> {
        let (status, code) = match self {
            Self::UnsupportedMediaType => (415, "UnsupportedMediaType"),
            Self::UnknownMachine(_) => (404, "ResourceNotFound"),
            Self::NotAnObject | Self::UnexpectedMembers => (400, "InvalidRequestBody"),
            Self::MissingParameter(_) => (400, "MissingRequiredParameter"),
            Self::InvalidHash(_) => (400, "InvalidHashValue"),
            Self::BlankComment => (400, "InvalidInput"),
        };
        answers::api_error(status, code, &self.to_string())
    }
}

/// What a valid create request asks for.
struct Order<'a> {
    machine_id: &'a str,
    sha1: String,
    comment: String,
}

/// `POST /api/machines/{id}/StopAndQuarantineFile`: the checks, then the route script, the
/// device's own reply, or a new action.
pub async fn create(
    shared: &Shared,
    parts: &Parts,
    machine_id: &str,
    request: &RecordedRequest,
) -> Answer {
    let order = match check_create(machine_id, request) {
        Ok(order) => order,
        Err(refused) => return Ok(refused.answer()),
    };
    let reply = route_reply(shared, parts)
        .or_else(|| shared.api().machine_replies.get(machine_id).cloned())
        .unwrap_or(Reply::Create);
    answers::render(reply, || create_action(shared, &order)).await
}

/// The create page's request checks, in the API's order: the JSON content type, a device ID of
/// 40 hex digits, and a body of exactly `Comment` and `Sha1`, both text, the hash a SHA-1 and
/// the comment not blank.
fn check_create<'a>(machine_id: &'a str, request: &RecordedRequest) -> Result<Order<'a>, Refusal> {
    if !json_content(request) {
        return Err(Refusal::UnsupportedMediaType);
    }
    if !is_hex40(machine_id) {
        return Err(Refusal::UnknownMachine(machine_id.to_owned()));
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
        return Err(Refusal::NotAnObject);
    };
    let member = |name: &str| body.get(name).and_then(Value::as_str);
    let (Some(comment), Some(sha1)) = (member("Comment"), member("Sha1")) else {
        return Err(Refusal::MissingParameter("Comment and Sha1 are required"));
    };
    if body.len() != 2 {
        return Err(Refusal::UnexpectedMembers);
    }
    if !is_hex40(sha1) {
        return Err(Refusal::InvalidHash(sha1.to_owned()));
    }
    if comment.trim().is_empty() {
        return Err(Refusal::BlankComment);
    }
    Ok(Order {
        machine_id,
        sha1: sha1.to_owned(),
        comment: comment.to_owned(),
    })
}

/// The create endpoint's own behaviour for a valid request: `ActiveRequestAlreadyExists` while
/// the device has an action pending, else a new action (201).
fn create_action(shared: &Shared, order: &Order<'_>) -> Response<Full<Bytes>> {
    let mut api = shared.api();
    if api.has_pending(order.machine_id) {
        let message = "Action is already in progress";
        return answers::api_error(400, "ActiveRequestAlreadyExists", message);
    }
    let now = api.clock.written_now();
    let created = machine_action::stop_and_quarantine(
        order.machine_id,
        &order.sha1,
        &order.comment,
        super::REQUESTOR,
        &now,
    );
    let created = api.add(created);
    answers::json_response(201, &created.to_string())
}

/// `GET /api/machineactions/{id}`: nothing to check, then the route script or the action,
/// moved along its progression (404 for an unknown or still hidden one).
pub async fn poll(shared: &Shared, parts: &Parts, id: &str) -> Answer {
    let reply = route_reply(shared, parts).unwrap_or(Reply::Create);
    answers::render(reply, || match shared.api().poll(id) {
        Some(action) => answers::json_response(200, &action.to_string()),
        None => not_found_action(id),
    })
    .await
}

/// `POST /api/machineactions/{id}/cancel`: the JSON content type (415) and a body that is a JSON
/// object (400 `InvalidRequestBody`) with a text `Comment` (400 `MissingRequiredParameter`),
/// then the route script or the cancellation: 200 with the cancelled action, 404 for an unknown
/// one. The page cancels "an already launched machine action that isn't yet in final state" and
/// documents no answer for a final one; the simulator then answers 400 `BadRequest`, the
/// common-errors page's general row ("BadRequest | BadRequest (400) | General Bad Request error
/// message."), its own choice where the cancel page is silent. A test can script any other
/// answer with [`crate::Simulator::script_route`].
pub async fn cancel(shared: &Shared, parts: &Parts, id: &str, request: &RecordedRequest) -> Answer {
    let comment = match check_cancel(request) {
        Ok(comment) => comment,
        Err(refused) => return Ok(refused.answer()),
    };
    let reply = route_reply(shared, parts).unwrap_or(Reply::Create);
    answers::render(reply, || match shared.api().cancel(id, &comment) {
        Ok(action) => answers::json_response(200, &action.to_string()),
        Err(None) => not_found_action(id),
        Err(Some(status)) => {
            let message = format!("Action {id} is already {status} and cannot be cancelled");
            answers::api_error(400, "BadRequest", &message)
        }
    })
    .await
}

/// The cancel page's request checks; the comment it asks for.
fn check_cancel(request: &RecordedRequest) -> Result<String, Refusal> {
    if !json_content(request) {
        return Err(Refusal::UnsupportedMediaType);
    }
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(&request.body) else {
        return Err(Refusal::NotAnObject);
    };
    match body.get("Comment").and_then(Value::as_str) {
        Some(comment) => Ok(comment.to_owned()),
        None => Err(Refusal::MissingParameter("Comment is required")),
    }
}

fn not_found_action(id: &str) -> Response<Full<Bytes>> {
    answers::api_error(
        404,
        "ResourceNotFound",
        &format!("Machine action {id} was not found"),
    )
}

fn json_content(request: &RecordedRequest) -> bool {
    request.content_type.as_deref().is_some_and(|ct| {
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    })
}

fn is_hex40(value: &str) -> bool {
    value.len() == 40 && value.bytes().all(|b| b.is_ascii_hexdigit())
}
