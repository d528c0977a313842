//! The thin layer: [`Host`] on top of the host's imports, wasi-http, wasi:clocks and
//! wasi:random. No decisions are made here.

use crate::bindings::defender::endpoint::progress::{self, Update};
use crate::bindings::defender::endpoint::{credentials, rate_limit};
use crate::call::{Host, SendError};
use crate::request::{ApiBase, ApiRequest, Method, Scheme};
use crate::response::{MAX_BODY_BYTES, RawResponse};
use wasip2::clocks::{monotonic_clock, wall_clock};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{self as http, Fields, OutgoingBody, OutgoingRequest, RequestOptions};
use wasip2::io::streams::StreamError;

const NANOS_PER_MS: u64 = 1_000_000;
/// Per-request timeouts asked of the host (which may clamp them further).
const CONNECT_TIMEOUT_MS: u64 = 10_000;
const FIRST_BYTE_TIMEOUT_MS: u64 = 30_000;
const BETWEEN_BYTES_TIMEOUT_MS: u64 = 30_000;

/// The component's view of its host.
pub struct Wasi;

impl Host for Wasi {
    fn credential(&mut self, refresh: bool) -> Result<credentials::Grant, String> {
        credentials::get(refresh)
    }

    fn acquire_permit(&mut self, api: rate_limit::Api) -> rate_limit::Permit {
        rate_limit::acquire(api)
    }

    fn throttled(&mut self, api: rate_limit::Api, retry_after_ms: u64) {
        rate_limit::throttled(api, retry_after_ms);
    }

    fn send(
        &mut self,
        base: &ApiBase,
        authorization: &str,
        request: &ApiRequest,
    ) -> Result<RawResponse, SendError> {
        send(base, authorization, request)
    }

    fn now_ms(&mut self) -> u64 {
        monotonic_clock::now() / NANOS_PER_MS
    }

    fn wall_clock_ms(&mut self) -> u64 {
        let now = wall_clock::now();
        now.seconds * 1000 + u64::from(now.nanoseconds) / NANOS_PER_MS
    }

    fn progress(&mut self, update: &Update) {
        progress::report(update);
    }

    fn sleep_ms(&mut self, ms: u64) {
        monotonic_clock::subscribe_duration(ms.saturating_mul(NANOS_PER_MS)).block();
    }

    fn random(&mut self) -> u64 {
        wasip2::random::insecure::get_insecure_random_u64()
    }
}

fn send(
    base: &ApiBase,
    authorization: &str,
    request: &ApiRequest,
) -> Result<RawResponse, SendError> {
    let not_sent = |message: String| SendError {
        message,
        maybe_sent: false,
    };
    let mut headers = vec![
        (
            "authorization".to_string(),
            authorization.as_bytes().to_vec(),
        ),
        ("accept".into(), b"application/json".to_vec()),
    ];
    let method = match request.method {
        Method::Get => http::Method::Get,
        Method::Post => {
            headers.push(("content-type".into(), b"application/json".to_vec()));
            let length = request.body.len().to_string().into_bytes();
            headers.push(("content-length".into(), length));
            http::Method::Post
        }
    };
    let headers = Fields::from_list(&headers)
        .map_err(|_| not_sent("the request headers were refused".into()))?;
    let outgoing = OutgoingRequest::new(headers);
    let scheme = match base.scheme {
        Scheme::Http => http::Scheme::Http,
        Scheme::Https => http::Scheme::Https,
    };
    let path = format!("{}{}", base.prefix, request.path);
    let refused = |what: &str| not_sent(format!("the request's {what} was refused"));
    outgoing
        .set_method(&method)
        .map_err(|()| refused("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| refused("scheme"))?;
    outgoing
        .set_authority(Some(&base.authority))
        .map_err(|()| refused("authority"))?;
    outgoing
        .set_path_with_query(Some(&path))
        .map_err(|()| refused("path"))?;

    // The body is written and finished before `handle`. A write can fail when the host refuses
    // the request, or report `closed` after the server already has the whole body: either way
    // the response future says what really happened, so write errors are not fatal here.
    if request.method == Method::Post {
        let body = outgoing.body().map_err(|()| refused("body"))?;
        write_body(&body, &request.body);
        let _ = OutgoingBody::finish(body, None);
    }

    let options = options().map_err(not_sent)?;
    let future = outgoing_handler::handle(outgoing, Some(options)).map_err(|code| failed(&code))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(failed(&code)),
        Some(Err(())) | None => {
            return Err(SendError {
                message: "the response was lost".into(),
                maybe_sent: true,
            });
        }
    };

    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let (body, truncated) = read_body(&response).map_err(|message| SendError {
        message: format!("HTTP {status}, then {message}"),
        maybe_sent: true,
    })?;
    Ok(RawResponse {
        status,
        retry_after,
        body,
        truncated,
    })
}

fn options() -> Result<RequestOptions, String> {
    let options = RequestOptions::new();
    let ns = |ms: u64| Some(ms * NANOS_PER_MS);
    options
        .set_connect_timeout(ns(CONNECT_TIMEOUT_MS))
        .and_then(|()| options.set_first_byte_timeout(ns(FIRST_BYTE_TIMEOUT_MS)))
        .and_then(|()| options.set_between_bytes_timeout(ns(BETWEEN_BYTES_TIMEOUT_MS)))
        .map_err(|()| "the host refused the request timeouts".to_string())?;
    Ok(options)
}

/// Writes as much of the body as the host takes, stopping at the first error; see `send` for
/// why an error here is not the outcome.
fn write_body(body: &OutgoingBody, bytes: &[u8]) {
    let Ok(stream) = body.write() else {
        return;
    };
    let mut rest = bytes;
    while !rest.is_empty() {
        let allowed = match stream.check_write() {
            Ok(0) => {
                stream.subscribe().block();
                continue;
            }
            Ok(n) => usize::try_from(n).unwrap_or(usize::MAX),
            Err(_) => return,
        };
        let (chunk, tail) = rest.split_at(allowed.min(rest.len()));
        if stream.write(chunk).is_err() {
            return;
        }
        rest = tail;
    }
}

/// Reads at most [`MAX_BODY_BYTES`], and says whether there was more.
fn read_body(response: &http::IncomingResponse) -> Result<(Vec<u8>, bool), String> {
    let body = response
        .consume()
        .map_err(|()| "the response body was already taken".to_string())?;
    let stream = body
        .stream()
        .map_err(|()| "the response body stream was refused".to_string())?;
    let mut bytes = Vec::new();
    loop {
        let room = (MAX_BODY_BYTES + 1).saturating_sub(bytes.len()) as u64;
        match stream.blocking_read(room.min(64 * 1024)) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(e) => return Err(stream_error("reading the response body", e)),
        }
        if bytes.len() > MAX_BODY_BYTES {
            bytes.truncate(MAX_BODY_BYTES);
            return Ok((bytes, true));
        }
    }
    Ok((bytes, false))
}

/// A failed exchange: whether the request may have reached the API depends on where it broke.
fn failed(code: &http::ErrorCode) -> SendError {
    use http::ErrorCode as E;
    let before_sending = matches!(
        code,
        E::DnsTimeout
            | E::DnsError(_)
            | E::DestinationNotFound
            | E::DestinationUnavailable
            | E::DestinationIpProhibited
            | E::DestinationIpUnroutable
            | E::ConnectionRefused
            | E::ConnectionTimeout
            | E::ConnectionLimitReached
            | E::TlsProtocolError
            | E::TlsCertificateError
            | E::TlsAlertReceived(_)
            | E::HttpRequestDenied
            | E::HttpRequestLengthRequired
            | E::HttpRequestBodySize(_)
            | E::HttpRequestMethodInvalid
            | E::HttpRequestUriInvalid
            | E::HttpRequestUriTooLong
            | E::HttpRequestHeaderSectionSize(_)
            | E::HttpRequestHeaderSize(_)
            | E::ConfigurationError
    );
    SendError {
        message: describe(code),
        maybe_sent: !before_sending,
    }
}

/// A wasi-http error code in words, spelled as WASI spells it, since that is what an
/// integrator will search for. (Named by hand: the derived `Debug` of the whole error type
/// costs the component kilobytes.)
fn describe(code: &http::ErrorCode) -> String {
    use http::ErrorCode as E;
    let name = match code {
        E::HttpRequestDenied => {
            return "HTTP-request-denied: the host's outbound policy refused the request".into();
        }
        E::DnsTimeout => "DNS-timeout",
        E::DnsError(_) => "DNS-error",
        E::DestinationNotFound => "destination-not-found",
        E::DestinationUnavailable => "destination-unavailable",
        E::DestinationIpProhibited => "destination-IP-prohibited",
        E::DestinationIpUnroutable => "destination-IP-unroutable",
        E::ConnectionRefused => "connection-refused",
        E::ConnectionTerminated => "connection-terminated",
        E::ConnectionTimeout => "connection-timeout",
        E::ConnectionReadTimeout => "connection-read-timeout",
        E::ConnectionWriteTimeout => "connection-write-timeout",
        E::ConnectionLimitReached => "connection-limit-reached",
        E::TlsProtocolError => "TLS-protocol-error",
        E::TlsCertificateError => "TLS-certificate-error",
        E::TlsAlertReceived(_) => "TLS-alert-received",
        E::HttpResponseIncomplete => "HTTP-response-incomplete",
        E::HttpResponseTimeout => "HTTP-response-timeout",
        E::HttpResponseBodySize(_) => "HTTP-response-body-size",
        E::HttpProtocolError => "HTTP-protocol-error",
        E::InternalError(_) => "internal-error",
        _ => "another wasi-http error",
    };
    format!("the request failed: {name}")
}

fn stream_error(doing: &str, error: StreamError) -> String {
    match error {
        StreamError::LastOperationFailed(e) => format!("{doing} failed: {}", e.to_debug_string()),
        StreamError::Closed => format!("{doing} failed: the stream closed"),
    }
}
