//! What Microsoft's front doors refuse before any endpoint sees the request. RFC 9112 §3.2: "A
//! server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1 request message
//! that lacks a Host header field and to any request message that contains more than one Host
//! header field line or a Host header field with an invalid field value." Microsoft's HTTP
//! front ends (HTTP.sys behind the API, Azure Front Door) answer such a request, and one whose
//! host they do not serve, with an HTML page, not the API's JSON error. Over HTTP/2 the host is
//! the `:authority` pseudo-header (RFC 9113 §8.3.1), which must then be present.

use super::answers;
use bytes::Bytes;
use http::{Response, Version, header};
use http_body_util::Full;

/// HTTP.sys's page for a request whose host is missing or wrong.
const INVALID_HOSTNAME: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n<HTML><HEAD><TITLE>Bad Request</TITLE>\r\n<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n<BODY><h2>Bad Request - Invalid Hostname</h2>\r\n<hr><p>HTTP Error 400. The request hostname is invalid.</p>\r\n</BODY></HTML>\r\n";

/// The front door's answer to a request it refuses.
pub fn refusal() -> Response<Full<Bytes>> {
    answers::response(
        400,
        "text/html; charset=us-ascii",
        INVALID_HOSTNAME.to_owned(),
    )
}

/// The names this server answers to: it listens on 127.0.0.1 only.
const SERVED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// The host the request names (`Host`, or the URI's authority over HTTP/2); `None` when the
/// front door refuses it. A request for a host:port this server does not serve is refused,
/// as HTTP.sys refuses a host it has no binding for; over HTTP/2 a `Host` that disagrees with
/// `:authority` makes the request malformed (RFC 9113 §8.3.1).
pub fn host(parts: &http::request::Parts, port: u16) -> Option<String> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let named = match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => return None,
        (Some(value), None) => Some(value.to_str().ok()?.to_owned()),
        (None, _) => None,
    };
    let named = match (named, parts.uri.authority(), parts.version) {
        (Some(host), Some(authority), Version::HTTP_2)
            if !host.eq_ignore_ascii_case(authority.as_str()) =>
        {
            return None;
        }
        (Some(host), _, _) => host,
        (None, Some(authority), Version::HTTP_2) => authority.as_str().to_owned(),
        (None, _, _) => return None,
    };
    let authority = named.parse::<http::uri::Authority>().ok()?;
    let served = SERVED_NAMES
        .iter()
        .any(|name| authority.host().eq_ignore_ascii_case(name));
    if authority.as_str().contains('@') || !served || authority.port_u16() != Some(port) {
        return None;
    }
    Some(named)
}
