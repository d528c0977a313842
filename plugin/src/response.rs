//! What an answer from the API means, following the error table of the API contract.

use crate::bindings::defender::endpoint::types::{
    ActionError, ApiError, ForbiddenError, MachineAction,
};
use crate::machine_action;
use serde_json::Value;

/// The most of a response body the component reads; the rest is discarded unread.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long to wait on a 429 that came without a usable `Retry-After`.
pub const DEFAULT_RETRY_AFTER_MS: u64 = 60_000;

/// The application permissions this action needs, for the 403 error.
pub const REQUIRED_PERMISSIONS: &str = "Machine.StopAndQuarantine, and Machine.Read.All or \
    Machine.ReadWrite.All (application permissions; a delegated caller also needs the \
    'Active remediation actions' role and access to the device's group)";

/// An answer as the transport received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawResponse {
    /// The HTTP status, which decides the verdict before the body does.
    pub status: u16,
    /// The `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// The body, at most [`MAX_BODY_BYTES`].
    pub body: Vec<u8>,
    /// Whether the body was longer than [`MAX_BODY_BYTES`] and cut.
    pub truncated: bool,
}

/// What to do with an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// 200 or 201: the body is the answer.
    Success,
    /// A final failure: never retried.
    Fail(ActionError),
    /// 401: worth one more try with a fresh credential.
    Unauthorized(ApiError),
    /// 429: wait this long, then try again.
    Throttled { retry_after_ms: u64, api: ApiError },
    /// 500, 502, 503, 504: try again after a backoff.
    ServerError(ApiError),
}

/// Interprets one answer; `wall_clock_ms` (milliseconds since the Unix epoch) turns a
/// `Retry-After` date into a wait.
pub fn interpret(response: &RawResponse, wall_clock_ms: u64) -> Verdict {
    let status = response.status;
    if status == 200 || status == 201 {
        return Verdict::Success;
    }
    let api = api_error(response);
    match status {
        400 if api.code.as_deref() == Some("ActiveRequestAlreadyExists") => {
            Verdict::Fail(ActionError::AlreadyPending(api))
        }
        401 => Verdict::Unauthorized(api),
        403 => Verdict::Fail(ActionError::Forbidden(ForbiddenError {
            required_permissions: REQUIRED_PERMISSIONS.into(),
            api,
        })),
        404 => Verdict::Fail(ActionError::NotFound(api)),
        429 => Verdict::Throttled {
            retry_after_ms: retry_after_ms(response.retry_after.as_deref(), wall_clock_ms),
            api,
        },
        500 | 502 | 503 | 504 => Verdict::ServerError(api),
        _ => Verdict::Fail(ActionError::Upstream(api)),
    }
}

/// What a request may have done at the API though its successful answer cannot be read: the
/// error says so, and says nothing of the kind for a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// A read: nothing changed.
    Read,
    /// A POST that creates an action.
    Create,
    /// A POST that cancels one.
    Cancel,
}

/// The MachineAction in a successful answer. A body that is not one is an upstream error that
/// says what the request may have done all the same.
pub fn machine_action(
    response: &RawResponse,
    effect: Effect,
) -> Result<MachineAction, ActionError> {
    success_body(response, effect, machine_action::parse)
}

/// A page of `{"value": [...], "@odata.nextLink": ...}`, the shape of every listing.
pub fn listing(response: &RawResponse) -> Result<machine_action::Page, ActionError> {
    success_body(response, Effect::Read, machine_action::parse_listing)
}

fn success_body<T>(
    response: &RawResponse,
    effect: Effect,
    parse: impl FnOnce(&[u8]) -> Result<T, String>,
) -> Result<T, ActionError> {
    let parsed = if response.truncated {
        Err(format!("its body exceeds {MAX_BODY_BYTES} bytes"))
    } else {
        parse(&response.body)
    };
    parsed.map_err(|why| {
        let status = response.status;
        let done = match effect {
            Effect::Read => "",
            Effect::Create => "; the action may have been created",
            Effect::Cancel => "; the cancellation may have been made",
        };
        ActionError::Upstream(ApiError {
            status,
            code: None,
            message: Some(format!("the API answered {status} but {why}{done}")),
            target: None,
        })
    })
}

/// The most characters kept of an error's `code` and `target` (a word and a GUID).
const MAX_CODE_CHARS: usize = 256;
/// The most characters kept of an error's `message`.
const MAX_MESSAGE_CHARS: usize = 4096;

/// At most `most` characters of `text`, with `…` where it was cut.
pub fn shortened(text: &str, most: usize) -> String {
    match text.char_indices().nth(most) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Reads `{"error": {"code", "message", "target"}}` (each bounded); any other body is
/// described instead.
pub fn api_error(response: &RawResponse) -> ApiError {
    let mut api = ApiError {
        status: response.status,
        code: None,
        message: None,
        target: None,
    };
    let error = serde_json::from_slice::<Value>(&response.body)
        .ok()
        .and_then(|body| body.get("error").cloned());
    if let Some(error) = error.as_ref().and_then(Value::as_object) {
        // Bounded, so a verbose or hostile answer cannot make one device's error outgrow what
        // a call may hand back.
        let text = |key: &str, most: usize| {
            error
                .get(key)
                .and_then(Value::as_str)
                .map(|t| shortened(t, most))
        };
        api.code = text("code", MAX_CODE_CHARS);
        api.message = text("message", MAX_MESSAGE_CHARS);
        api.target = text("target", MAX_CODE_CHARS);
    } else if response.truncated {
        api.message = Some(format!("the error body exceeds {MAX_BODY_BYTES} bytes"));
    } else if !response.body.is_empty() {
        api.message = Some(format!(
            "the error body is not the API's error object: {}",
            excerpt(&response.body)
        ));
    }
    api
}

/// `Retry-After` as a wait: delay-seconds (the API's usual form, digits only) or an HTTP date
/// (RFC 9110 §10.2.3, which the API may send too), counted from `wall_clock_ms`; a date in the
/// past is no wait. A sign, a fraction or garbage gets the default. (This project's host hands
/// the component seconds it has read itself; another host may pass the API's header through.)
pub fn retry_after_ms(header: Option<&str>, wall_clock_ms: u64) -> u64 {
    let Some(value) = header.map(str::trim).filter(|value| !value.is_empty()) else {
        return DEFAULT_RETRY_AFTER_MS;
    };
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Any number of digits: one too large for u64 is a very long time, not garbage.
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return secs.saturating_mul(1000);
    }
    match httpdate::parse_http_date(value) {
        Ok(at) => at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| {
                u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
            })
            .saturating_sub(wall_clock_ms),
        Err(_) => DEFAULT_RETRY_AFTER_MS,
    }
}

/// The first 200 characters of a body, printable only.
fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            retry_after: None,
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn error_body(code: &str) -> String {
        format!(r#"{{"error":{{"code":"{code}","message":"m {code}","target":"t-1"}}}}"#)
    }

    #[test]
    fn created_is_the_action() {
        let response = answer(201, r#"{"id":"x","status":"Pending"}"#);
        assert_eq!(interpret(&response, 0), Verdict::Success);
        assert_eq!(machine_action(&response, Effect::Create).unwrap().id, "x");
    }

    #[test]
    fn created_with_garbage_says_the_action_may_exist() {
        let Err(ActionError::Upstream(api)) = machine_action(&answer(201, "oops"), Effect::Create)
        else {
            panic!("expected upstream");
        };
        assert_eq!(api.status, 201);
        assert!(api.message.unwrap().contains("may have been created"));
    }

    #[test]
    fn a_read_with_garbage_claims_nothing_was_done() {
        let Err(ActionError::Upstream(read)) = machine_action(&answer(200, "oops"), Effect::Read)
        else {
            panic!("expected upstream");
        };
        let Err(ActionError::Upstream(listed)) = listing(&answer(200, "oops")) else {
            panic!("expected upstream");
        };
        for api in [read, listed] {
            assert!(!api.message.unwrap().contains("may have been"));
        }
        let Err(ActionError::Upstream(api)) = machine_action(&answer(200, "oops"), Effect::Cancel)
        else {
            panic!("expected upstream");
        };
        assert!(
            api.message
                .unwrap()
                .contains("cancellation may have been made")
        );
    }

    #[test]
    fn oversized_success_is_refused() {
        let mut response = answer(201, r#"{"id":"x"}"#);
        response.truncated = true;
        assert!(matches!(
            machine_action(&response, Effect::Create),
            Err(ActionError::Upstream(_))
        ));
    }

    #[test]
    fn an_errors_fields_are_bounded() {
        let body = format!(
            r#"{{"error":{{"code":"{}","message":"{}","target":"t"}}}}"#,
            "C".repeat(10_000),
            "é".repeat(100_000)
        );
        let api = api_error(&answer(400, &body));
        assert_eq!(api.code.unwrap().chars().count(), MAX_CODE_CHARS + 1);
        assert_eq!(api.message.unwrap().chars().count(), MAX_MESSAGE_CHARS + 1);
        assert_eq!(api.target.as_deref(), Some("t"));
    }

    #[test]
    fn listings_are_read() {
        let response = answer(200, r#"{"value":[{"id":"a"},{"id":"b"}]}"#);
        assert_eq!(listing(&response).unwrap().items.len(), 2);
        assert!(listing(&answer(200, r#"{"values":[]}"#)).is_err());
    }

    #[test]
    fn every_final_400_is_upstream_with_code_message_and_target() {
        for code in [
            "InvalidInput",
            "InvalidRequestBody",
            "InvalidHashValue",
            "MissingRequiredParameter",
            "BadRequest",
            "ODataError",
            "OsPlatformNotSupported",
            "ClientVersionNotSupported",
        ] {
            let Verdict::Fail(ActionError::Upstream(api)) =
                interpret(&answer(400, &error_body(code)), 0)
            else {
                panic!("{code}");
            };
            assert_eq!(api.code.as_deref(), Some(code));
            assert_eq!(api.message, Some(format!("m {code}")));
            assert_eq!(api.target.as_deref(), Some("t-1"));
        }
    }

    #[test]
    fn already_pending_is_its_own_error() {
        let verdict = interpret(&answer(400, &error_body("ActiveRequestAlreadyExists")), 0);
        assert!(matches!(
            verdict,
            Verdict::Fail(ActionError::AlreadyPending(_))
        ));
    }

    #[test]
    fn forbidden_names_the_permissions() {
        let Verdict::Fail(ActionError::Forbidden(f)) =
            interpret(&answer(403, &error_body("Forbidden")), 0)
        else {
            panic!("expected forbidden");
        };
        assert!(f.required_permissions.contains("Machine.StopAndQuarantine"));
        assert!(f.required_permissions.contains("Machine.ReadWrite.All"));
        assert_eq!(f.api.code.as_deref(), Some("Forbidden"));
    }

    #[test]
    fn statuses_map_to_their_verdicts() {
        assert!(matches!(
            interpret(&answer(401, &error_body("Unauthorized")), 0),
            Verdict::Unauthorized(_)
        ));
        assert!(matches!(
            interpret(&answer(404, &error_body("ResourceNotFound")), 0),
            Verdict::Fail(ActionError::NotFound(_))
        ));
        for status in [500, 502, 503, 504] {
            assert!(matches!(
                interpret(&answer(status, ""), 0),
                Verdict::ServerError(_)
            ));
        }
        for status in [405, 409, 501, 505] {
            assert!(matches!(
                interpret(&answer(status, ""), 0),
                Verdict::Fail(ActionError::Upstream(_))
            ));
        }
    }

    #[test]
    fn throttling_reads_retry_after() {
        let mut response = answer(429, &error_body("TooManyRequests"));
        response.retry_after = Some("7".into());
        assert!(matches!(
            interpret(&response, 0),
            Verdict::Throttled {
                retry_after_ms: 7000,
                ..
            }
        ));
        assert_eq!(retry_after_ms(None, 0), DEFAULT_RETRY_AFTER_MS);
        for garbage in ["+100000000", "-5", " + 3", "1.5", "soon", ""] {
            assert_eq!(
                retry_after_ms(Some(garbage), 0),
                DEFAULT_RETRY_AFTER_MS,
                "{garbage}"
            );
        }
        assert_eq!(retry_after_ms(Some("99999999999999999999999"), 0), u64::MAX);
    }

    #[test]
    fn a_retry_after_date_is_the_time_until_it() {
        // Wed, 21 Oct 2015 07:28:00 GMT is 1,445,412,480 s after the epoch.
        let date = Some("Wed, 21 Oct 2015 07:28:00 GMT");
        let at = 1_445_412_480_000;
        assert_eq!(retry_after_ms(date, at - 42_000), 42_000);
        assert_eq!(retry_after_ms(date, at + 5_000), 0, "a date in the past");
        assert_eq!(
            retry_after_ms(Some("Wednesday, 21-Oct-15 07:28:00 GMT"), at - 1_000),
            1_000,
            "the obsolete RFC 850 form"
        );
    }

    #[test]
    fn non_json_error_bodies_are_described() {
        let api = api_error(&answer(502, "<html>\nBad gateway</html>"));
        assert_eq!(api.code, None);
        assert_eq!(
            api.message.as_deref(),
            Some("the error body is not the API's error object: <html> Bad gateway</html>")
        );
        let mut big = answer(500, "{");
        big.truncated = true;
        assert!(api_error(&big).message.unwrap().contains("exceeds"));
    }
}
