//! How results are shown: the MachineAction as the API sent it (every member, in the API's
//! spelling), so existing parsers work, and an [`ActionError`] as one line that names the
//! field, or the HTTP status with the API's code, message and correlation ID.

use defender_host::escape::is_unsafe;
use defender_host::{ActionError, ApiError, MachineAction, MachineOutcome};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value, json};

/// The action's JSON object as the API sent it (the component's `raw`, checked to be one),
/// with the white space between its tokens taken out and the characters a terminal acts on
/// escaped ([`safe_json`]); or, when the component gave none, the typed record written with
/// the API's names, escaped the same way.
pub fn action_raw(action: &MachineAction) -> serde_json::Result<Box<RawValue>> {
    let sent = action.raw.trim();
    let json = match RawValue::from_string(sent.to_owned()) {
        Ok(_) if sent.starts_with('{') => sent.to_owned(),
        _ => serde_json::to_string(&action_json(action))?,
    };
    RawValue::from_string(safe_json(&json, false))
}

/// Valid JSON `json` with, inside its strings, every character [`is_unsafe`] names (control,
/// bidirectional and separator characters, which serde_json and the API may write raw) written
/// as a `\uXXXX` escape: the same text once decoded, so nothing received can move a terminal's
/// cursor or reorder a line. Without `keep_space`, the white space between tokens goes too.
pub fn safe_json(json: &str, keep_space: bool) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
            if is_unsafe(c) {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
                continue;
            }
        } else if !keep_space && matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        } else {
            in_string = c == '"';
        }
        out.push(c);
    }
    out
}

/// The MachineAction with the API's member names (`id`, `type`, `status`, `machineId`,
/// `relatedFileInfo`, ...); absent members are `null`, as the API writes them.
pub fn action_json(action: &MachineAction) -> Value {
    let file = action.related_file_info.as_ref().map(|f| {
        json!({"fileIdentifier": f.file_identifier, "fileIdentifierType": f.file_identifier_type})
    });
    let mut members = Map::new();
    let mut put = |key: &str, value: Value| {
        members.insert(key.to_owned(), value);
    };
    put("id", json!(action.id));
    put("type", json!(action.action_type));
    put("status", json!(action.status.as_api_str()));
    put("machineId", json!(action.machine_id));
    put("computerDnsName", json!(action.computer_dns_name));
    put("requestor", json!(action.requestor));
    put("requestorComment", json!(action.requestor_comment));
    put("requestSource", json!(action.request_source));
    put("creationDateTimeUtc", json!(action.creation_date_time_utc));
    put(
        "lastUpdateDateTimeUtc",
        json!(action.last_update_date_time_utc),
    );
    put(
        "cancellationRequestor",
        json!(action.cancellation_requestor),
    );
    put("cancellationComment", json!(action.cancellation_comment));
    put(
        "cancellationDateTimeUtc",
        json!(action.cancellation_date_time_utc),
    );
    put("relatedFileInfo", json!(file));
    Value::Object(members)
}

/// One device's entry in a fan-out's output.
#[derive(Serialize)]
#[serde(untagged, rename_all = "camelCase")]
pub enum Entry<'a> {
    /// `{"machineId", "action", "adopted"?, "pollError"?, "cancelError"?}`: the action as the
    /// API sent it, and why the last look at it or its cancellation failed.
    #[serde(rename_all = "camelCase")]
    Action {
        machine_id: &'a str,
        action: Box<RawValue>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        adopted: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        poll_error: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cancel_error: Option<Value>,
    },
    /// `{"machineId", "error"}`.
    #[serde(rename_all = "camelCase")]
    Error { machine_id: &'a str, error: Value },
}

/// A fan-out's outcomes: `[{"machineId", "action"} | {"machineId", "error"}]`, in input order,
/// with `"adopted": true` where an already pending action was returned, and `"pollError"` or
/// `"cancelError"` where the last poll of the action or its cancellation failed.
pub fn outcomes_json(outcomes: &[MachineOutcome]) -> serde_json::Result<Vec<Entry<'_>>> {
    outcomes
        .iter()
        .map(|o| {
            Ok(match &o.outcome {
                Ok(q) => Entry::Action {
                    machine_id: &o.machine_id,
                    action: action_raw(&q.action)?,
                    adopted: q.adopted,
                    poll_error: q.poll_error.as_ref().map(error_json),
                    cancel_error: q.cancel_error.as_ref().map(error_json),
                },
                Err(error) => Entry::Error {
                    machine_id: &o.machine_id,
                    error: error_json(error),
                },
            })
        })
        .collect()
}

/// An error as JSON: its kind, the one-line message, and the API's fields where there are any.
pub fn error_json(error: &ActionError) -> Value {
    let api = error.api();
    let mut members = Map::new();
    members.insert("kind".into(), json!(error.kind()));
    members.insert("message".into(), json!(error_line(error)));
    if let Some(api) = api {
        members.insert("status".into(), json!(api.status));
        members.insert("code".into(), json!(api.code));
        members.insert("target".into(), json!(api.target));
    }
    if let ActionError::RateLimited(r) = error {
        members.insert("retryAfterMs".into(), json!(r.retry_after_ms));
    }
    Value::Object(members)
}

/// One line describing the error, for stderr.
pub fn error_line(error: &ActionError) -> String {
    match error {
        ActionError::InvalidInput(i) => format!("invalid {}: {}", i.field, i.message),
        ActionError::Unauthorized(api) => format!("unauthorized: {}", api_text(api)),
        ActionError::Forbidden(f) => format!(
            "forbidden: {}; the application needs {}",
            api_text(&f.api),
            f.required_permissions
        ),
        ActionError::NotFound(api) => format!("not found: {}", api_text(api)),
        ActionError::AlreadyPending(api) => {
            format!(
                "already pending: an action for this device is in progress: {}",
                api_text(api)
            )
        }
        ActionError::RateLimited(r) => {
            let api = r
                .api
                .as_ref()
                .map_or("by the host's rate budget".into(), api_text);
            format!("rate limited, retry after {} ms: {api}", r.retry_after_ms)
        }
        ActionError::Upstream(api) => format!("API error: {}", api_text(api)),
        ActionError::Transport(message) => format!("transport error: {message}"),
        ActionError::Credentials(message) => format!("credentials: {message}"),
    }
}

/// `HTTP 404, code ResourceNotFound, message "...", target 43f4...`.
fn api_text(api: &ApiError) -> String {
    let mut text = format!("HTTP {}", api.status);
    if let Some(code) = &api.code {
        text.push_str(&format!(", code {code}"));
    }
    if let Some(message) = &api.message {
        text.push_str(&format!(", message {message:?}"));
    }
    if let Some(target) = &api.target {
        text.push_str(&format!(", target {target}"));
    }
    text
}
