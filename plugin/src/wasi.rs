//! The thin layer: [`Host`] on top of the host's imports, wasi-http, wasi:clocks and
//! wasi:random. No decisions are made here.

use crate::bindings::defender::endpoint::{credentials, rate_limit};
use crate::call::Host;
use crate::request::{ApiBase, ApiRequest, Method, Scheme};
use crate::response::{MAX_BODY_BYTES, RawResponse};
use wasip2::clocks::monotonic_clock;
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

    fn acquire_permit(&mut self) -> rate_limit::Permit {
        rate_limit::acquire()
    }

    fn throttled(&mut self, retry_after_ms: u64) {
        rate_limit::throttled(retry_after_ms);
    }

    fn send(
        &mut self,
        base: &ApiBase,
        authorization: &str,
        request: &ApiRequest,
    ) -> Result<RawResponse, String> {
        send(base, authorization, request)
    }

    fn now_ms(&mut self) -> u64 {
        monotonic_clock::now() / NANOS_PER_MS
    }

    fn sleep_ms(&mut self, ms: u64) {
        monotonic_clock::subscribe_duration(ms.saturating_mul(NANOS_PER_MS)).block();
    }

    fn random(&mut self) -> u64 {
        wasip2::random::insecure::get_insecure_random_u64()
    }
}

fn send(base: &ApiBase, authorization: &str, request: &ApiRequest) -> Result<RawResponse, String> {
    let headers = Fields::from_list(&[
        ("authorization".into(), authorization.as_bytes().to_vec()),
        ("content-type".into(), b"application/json".to_vec()),
        ("accept".into(), b"application/json".to_vec()),
        (
            "content-length".into(),
            request.body.len().to_string().into_bytes(),
        ),
    ])
    .map_err(|e| format!("the request headers were refused: {e:?}"))?;
    let outgoing = OutgoingRequest::new(headers);
    let method = match request.method {
        Method::Post => http::Method::Post,
    };
    let scheme = match base.scheme {
        Scheme::Http => http::Scheme::Http,
        Scheme::Https => http::Scheme::Https,
    };
    let path = format!("{}{}", base.prefix, request.path);
    let refused = |what: &str| format!("the request's {what} was refused");
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

    // The body is written and finished before `handle`. If the host refuses the request, the
    // write may fail; the response future then carries the real reason, so it wins.
    let body = outgoing.body().map_err(|()| refused("body"))?;
    let written = write_body(&body, &request.body);
    let finished = OutgoingBody::finish(body, None).map_err(|e| format!("{e:?}"));

    let future =
        outgoing_handler::handle(outgoing, Some(options()?)).map_err(|code| describe(&code))?;
    future.subscribe().block();
    let response = match future.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(describe(&code)),
        Some(Err(())) | None => return Err("the response was lost".into()),
    };
    written?;
    finished.map_err(|e| format!("the request body could not be finished: {e}"))?;

    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .first()
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let (body, truncated) = read_body(&response)?;
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

fn write_body(body: &OutgoingBody, bytes: &[u8]) -> Result<(), String> {
    let stream = body
        .write()
        .map_err(|()| "the request body stream was refused".to_string())?;
    let mut rest = bytes;
    while !rest.is_empty() {
        let allowed = loop {
            match stream.check_write() {
                Ok(0) => stream.subscribe().block(),
                Ok(n) => break usize::try_from(n).unwrap_or(usize::MAX),
                Err(e) => return Err(stream_error("writing the request body", e)),
            }
        };
        let (chunk, tail) = rest.split_at(allowed.min(rest.len()));
        stream
            .write(chunk)
            .map_err(|e| stream_error("writing the request body", e))?;
        rest = tail;
    }
    Ok(())
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

/// A wasi-http error code in words; the host's refusal is spelled as WASI spells it, since
/// that is what an integrator will search for.
fn describe(code: &http::ErrorCode) -> String {
    match code {
        http::ErrorCode::HttpRequestDenied => {
            "HTTP-request-denied: the host's outbound policy refused the request".into()
        }
        other => {
            let name = format!("{other:?}");
            let name = name.strip_prefix("ErrorCode::").unwrap_or(&name).to_owned();
            format!("the request failed: {name}")
        }
    }
}

fn stream_error(doing: &str, error: StreamError) -> String {
    match error {
        StreamError::LastOperationFailed(e) => format!("{doing} failed: {}", e.to_debug_string()),
        StreamError::Closed => format!("{doing} failed: the stream closed"),
    }
}
