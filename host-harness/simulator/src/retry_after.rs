//! The budget's 429 and how its `Retry-After` is written. "common errors" (learn.microsoft.com/
//! defender-endpoint/api/common-errors) says a call past the limits gets 429 `TooManyRequests`
//! with a `Retry-After` header; the API sends seconds, and RFC 9110 §10.2.3 allows an HTTP date
//! instead (an IMF-fixdate, RFC 9110 §5.6.7), which a client must read as well.

use super::answers;
use super::budget::Throttled;
use super::clock::writable;
use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body_util::Full;
use std::time::{Duration, SystemTime};

/// How the budget's 429 writes `Retry-After` ([`crate::Simulator::set_retry_after_format`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RetryAfterFormat {
    /// Whole seconds, e.g. `Retry-After: 30`, as the API sends it.
    #[default]
    Seconds,
    /// An HTTP date, e.g. `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT`: now plus the seconds on
    /// the host's clock (not shifted by [`crate::Simulator::set_clock_offset`]), rounded up to the
    /// next whole second, so a client that waits until then is never early.
    HttpDate,
}

/// 429 `TooManyRequests` for a call over its budget, `Retry-After` written in `format` (`now`
/// being the host's clock).
pub fn too_many_requests(
    throttled: Throttled,
    format: RetryAfterFormat,
    now: SystemTime,
) -> Response<Full<Bytes>> {
    let seconds = throttled.seconds();
    let message = format!("Rate limit is exceeded. Try again in {seconds} seconds.");
    let mut response = answers::api_error(429, "TooManyRequests", &message);
    let value = match format {
        RetryAfterFormat::Seconds => Ok(HeaderValue::from(seconds)),
        RetryAfterFormat::HttpDate => HeaderValue::from_str(&http_date(now, seconds)),
    };
    // An IMF-fixdate is always a valid header value.
    if let Ok(value) = value {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// `now + seconds` as an IMF-fixdate, rounded up to the next whole second (the format has no
/// fractions).
fn http_date(now: SystemTime, seconds: u64) -> String {
    let due = now.checked_add(Duration::from_secs(seconds)).unwrap_or(now);
    let fraction = due
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|since| since.subsec_nanos())
        .unwrap_or_default();
    let due = match fraction {
        0 => due,
        nanos => due
            .checked_add(Duration::from_nanos(u64::from(
                1_000_000_000_u32.saturating_sub(nanos),
            )))
            .unwrap_or(due),
    };
    httpdate::fmt_http_date(writable(due))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_rounded_up_to_the_next_second() {
        let at = |millis| SystemTime::UNIX_EPOCH + Duration::from_millis(millis);
        assert_eq!(http_date(at(1_000_200), 5), "Thu, 01 Jan 1970 00:16:46 GMT");
        assert_eq!(http_date(at(1_000_000), 5), "Thu, 01 Jan 1970 00:16:45 GMT");
        assert_eq!(http_date(at(999_999), 0), "Thu, 01 Jan 1970 00:16:40 GMT");
    }
}
