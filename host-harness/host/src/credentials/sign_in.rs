//! Reading a token endpoint's answer: the token and its lifetime, or why sign-in was refused
//! (Entra's `error`, `error_description` with its `AADSTS` code, and the IDs support asks for),
//! in one line that names the tenant and the endpoint and never holds a secret.

use super::{CredentialError, Fresh, Secret};
use crate::escape::escape;
use crate::transport::{HttpClient, Reply, TransportError};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most of a token answer read (Entra's are about 2 KB).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How much of a body that is not JSON is shown.
const SHOWN_CHARS: usize = 160;

/// One sign-in: whose, where, and the values that must never be shown.
pub struct SignIn<'a> {
    /// The tenant's name in the host's configuration.
    pub tenant: &'a str,
    /// The endpoint, without its query.
    pub endpoint: &'a str,
    /// The secret, assertion or header sent, to be cut out of anything shown.
    pub sensitive: &'a [&'a str],
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    expires_on: Option<Value>,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: Option<Value>,
    error_description: Option<String>,
    message: Option<String>,
    trace_id: Option<String>,
    correlation_id: Option<String>,
}

impl SignIn<'_> {
    /// Sends the token `request` through `http` and reads the answer (at most
    /// `MAX_ANSWER_BYTES` of it): the token, or why there is none.
    pub async fn exchange(
        &self,
        http: &HttpClient,
        request: http::Request<Bytes>,
    ) -> Result<Fresh, CredentialError> {
        let reply = http
            .exchange(request, MAX_ANSWER_BYTES)
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.read(&reply)
    }

    /// The token in a successful answer, or why there is none.
    pub fn read(&self, reply: &Reply) -> Result<Fresh, CredentialError> {
        if reply.status != http::StatusCode::OK {
            return Err(self.refused(reply));
        }
        let answer: TokenAnswer = serde_json::from_slice(&reply.body).map_err(|e| {
            self.error(&format!(
                "the answer (HTTP 200) is not a token: {}",
                escape(&e.to_string())
            ))
        })?;
        if answer.access_token.trim().is_empty() {
            return Err(self.error("the answer (HTTP 200) holds an empty access_token"));
        }
        let lifetime = match (
            seconds(answer.expires_in.as_ref()),
            seconds(answer.expires_on.as_ref()),
        ) {
            (Some(expires_in), _) => Duration::from_secs(expires_in),
            (None, Some(expires_on)) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                Duration::from_secs(expires_on.saturating_sub(now))
            }
            (None, None) => {
                return Err(
                    self.error("the answer (HTTP 200) says neither expires_in nor expires_on")
                );
            }
        };
        Ok(Fresh {
            token: Secret::new(answer.access_token),
            lifetime,
        })
    }

    /// No answer came.
    fn unreachable(&self, error: &TransportError) -> CredentialError {
        self.error(&format!("no answer: {error}"))
    }

    /// Why the endpoint refused: Entra's error and description, or a summary of a body that is
    /// not Entra's JSON (an HTML page from a front door or a proxy).
    fn refused(&self, reply: &Reply) -> CredentialError {
        let status = reply.status.as_u16();
        let parsed = serde_json::from_slice::<ErrorAnswer>(&reply.body)
            .ok()
            .filter(|e| e.error.is_some() || e.error_description.is_some() || e.message.is_some());
        let what = match parsed {
            Some(answer) => {
                let code = match &answer.error {
                    Some(Value::String(code)) => code.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let description = answer
                    .error_description
                    .or(answer.message)
                    .unwrap_or_default();
                let mut what = format!("HTTP {status} {code}: {description}");
                let ids: Vec<String> = [
                    ("trace ID", answer.trace_id),
                    ("correlation ID", answer.correlation_id),
                ]
                .into_iter()
                .filter_map(|(name, id)| id.map(|id| format!("{name} {id}")))
                .collect();
                if !ids.is_empty() {
                    what.push_str(&format!(" ({})", ids.join(", ")));
                }
                what
            }
            None => format!("HTTP {status} with {}", self.summary(reply)),
        };
        self.error(&format!("sign-in refused: {what}"))
    }

    /// A body that is not Entra's JSON, in a few words: its type, size and first characters.
    fn summary(&self, reply: &Reply) -> String {
        let content_type = reply
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type");
        if reply.body.is_empty() {
            return format!("an empty body ({content_type})");
        }
        let text = self.redact(&String::from_utf8_lossy(&reply.body));
        if self.still_echoes(&text) {
            return format!(
                "a {content_type} body of {} bytes, not shown: it may echo a credential",
                reply.body.len()
            );
        }
        let words: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut shown: String = words.chars().take(SHOWN_CHARS).collect();
        if words.chars().count() > SHOWN_CHARS {
            shown.push('…');
        }
        format!(
            "a {content_type} body of {} bytes, not a token endpoint's JSON: {shown:?}",
            reply.body.len()
        )
    }

    /// `text` with every sensitive value cut out, as sent and as a form, a URL or JSON would
    /// encode it (an answer may echo the request in any of these).
    fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for value in self.sensitive.iter().filter(|v| v.len() >= 4) {
            let form: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
            let json = serde_json::to_string(value).unwrap_or_default();
            let json = json.trim_matches('"').to_owned();
            for variant in [value.to_string(), form.replace('+', "%20"), form, json] {
                if !variant.is_empty() {
                    text = text.replace(&variant, "[redacted]");
                }
            }
        }
        text
    }

    /// Whether `text` still holds a long enough piece of a sensitive value to matter (an echo
    /// cut short, or encoded some other way).
    fn still_echoes(&self, text: &str) -> bool {
        const PIECE: usize = 12;
        self.sensitive.iter().any(|value| {
            let bytes = value.as_bytes();
            bytes.len() >= PIECE
                && bytes
                    .windows(PIECE)
                    .any(|piece| std::str::from_utf8(piece).is_ok_and(|piece| text.contains(piece)))
        })
    }

    /// A message naming the tenant and the endpoint, escaped, with the sensitive values cut out.
    fn error(&self, what: &str) -> CredentialError {
        let text = format!(
            "tenant {:?}: token endpoint {}: {what}",
            self.tenant, self.endpoint
        );
        CredentialError(escape(&self.redact(&text)))
    }
}

/// Seconds as Entra writes them (a number) or as the managed-identity endpoints do (a string).
fn seconds(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "client-secret-Zq8";

    fn sign_in() -> SignIn<'static> {
        SignIn {
            tenant: "contoso",
            endpoint: "https://login.microsoftonline.com/72f9/oauth2/v2.0/token",
            sensitive: &[SECRET],
        }
    }

    fn reply(status: u16, content_type: &str, body: &str) -> Reply {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, content_type.parse().unwrap());
        Reply {
            status: http::StatusCode::from_u16(status).unwrap(),
            headers,
            body: zeroize::Zeroizing::new(body.as_bytes().to_vec()),
        }
    }

    #[test]
    fn reads_entras_token_and_the_managed_identity_forms() {
        let entra = reply(
            200,
            "application/json",
            r#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0"}"#,
        );
        let fresh = sign_in().read(&entra).unwrap();
        assert_eq!(fresh.token.expose(), "eyJ0");
        assert_eq!(fresh.lifetime, Duration::from_secs(3599));
        let imds = reply(
            200,
            "application/json",
            r#"{"access_token":"eyJ1","expires_in":"86399","expires_on":"1","token_type":"Bearer"}"#,
        );
        assert_eq!(
            sign_in().read(&imds).unwrap().lifetime,
            Duration::from_secs(86399)
        );
        let later = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 600;
        let app_service = reply(
            200,
            "application/json",
            &format!(r#"{{"access_token":"eyJ2","expires_on":"{later}"}}"#),
        );
        let lifetime = sign_in().read(&app_service).unwrap().lifetime;
        assert!(lifetime <= Duration::from_secs(600) && lifetime >= Duration::from_secs(590));
    }

    #[test]
    fn a_refusal_names_tenant_endpoint_status_code_and_description() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided.","error_codes":[7000215],"trace_id":"t-1","correlation_id":"c-2"}"#;
        let error = sign_in()
            .read(&reply(401, "application/json", body))
            .unwrap_err();
        assert_eq!(
            error.0,
            "tenant \"contoso\": token endpoint https://login.microsoftonline.com/72f9/oauth2/v2.0/token: \
             sign-in refused: HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided. \
             (trace ID t-1, correlation ID c-2)"
        );
    }

    #[test]
    fn an_html_page_is_summarised_and_control_characters_escaped() {
        let page = "<html><head><title>400 Bad Request</title></head>\n<body>\u{1b}[2J no Host</body></html>";
        let error = sign_in().read(&reply(400, "text/html", page)).unwrap_err();
        assert!(
            error.0.contains("HTTP 400 with a text/html body of"),
            "{error}"
        );
        assert!(error.0.contains("400 Bad Request"), "{error}");
        assert!(!error.0.contains('\u{1b}'), "{error}");
        let description =
            format!(r#"{{"error":"x\u001b]0;title\u0007","error_description":"echo {SECRET}"}}"#);
        let error = sign_in()
            .read(&reply(400, "application/json", &description))
            .unwrap_err();
        assert!(
            !error.0.contains('\u{1b}') && !error.0.contains('\u{7}'),
            "{error}"
        );
        assert!(
            !error.0.contains(SECRET) && error.0.contains("[redacted]"),
            "{error}"
        );
    }

    #[test]
    fn a_success_without_a_usable_token_is_an_error() {
        for body in [
            r#"{"expires_in":5}"#,
            r#"{"access_token":"","expires_in":5}"#,
            r#"{"access_token":"x"}"#,
            "not json",
        ] {
            assert!(
                sign_in()
                    .read(&reply(200, "application/json", body))
                    .is_err(),
                "{body}"
            );
        }
        let empty = sign_in().read(&reply(502, "text/plain", "")).unwrap_err();
        assert!(empty.0.contains("HTTP 502 with an empty body"), "{empty}");
    }

    #[test]
    fn an_echoed_request_never_shows_the_secret_however_it_is_encoded_or_cut() {
        let secret = "Abc8Q~k2.Zz_9-xyWq";
        let sign_in = SignIn {
            tenant: "contoso",
            endpoint: "https://login.microsoftonline.com/72f9/oauth2/v2.0/token",
            sensitive: &[secret],
        };
        let encoded: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let padding = "x".repeat(150);
        for page in [
            format!("<pre>client_secret={encoded}</pre>"),
            format!("<pre>{{\"client_secret\":\"{secret}\"}}</pre>"),
            format!("<pre>{padding}client_secret={secret}</pre>"),
            format!("<pre>secret: {}</pre>", &secret[..14]),
        ] {
            let error = sign_in.read(&reply(400, "text/html", &page)).unwrap_err();
            assert!(!error.0.contains(&secret[..12]), "{error}");
            assert!(!error.0.contains(&encoded[..12]), "{error}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_token_endpoint_answer_is_a_token_or_an_error_without_the_secret(
            status in 100u16..600,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
            content_type in "[ -~]{0,40}",
        ) {
            let mut headers = http::HeaderMap::new();
            if let Ok(value) = content_type.parse() {
                headers.insert(http::header::CONTENT_TYPE, value);
            }
            let Ok(status) = http::StatusCode::from_u16(status) else { return Ok(()); };
            let answer = Reply { status, headers, body: zeroize::Zeroizing::new(body) };
            if let Err(error) = sign_in().read(&answer) {
                proptest::prop_assert!(!error.0.contains(SECRET));
                proptest::prop_assert!(!error.0.chars().any(char::is_control));
            }
        }
    }
}
