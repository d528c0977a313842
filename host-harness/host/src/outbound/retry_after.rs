//! `Retry-After` as the host reads it from a 429 (RFC 9110 §10.2.3: delay-seconds or an
//! HTTP-date), so the tenant's pause comes from what the API said, clamped, not from the guest.

use std::time::{Duration, SystemTime};

/// The pause for a 429 without a `Retry-After` the host can read: a minute, what the
/// component waits in that case too.
pub const WITHOUT_ONE: Duration = Duration::from_secs(60);

/// The delay `value` asks for at `now`; `None` when it is neither form.
pub fn parse(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Any number of digits: one too large for u64 is a very long time, not garbage.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn reads_seconds_and_http_dates() {
        let now = at(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse("Sunday, 06-Nov-94 08:50:37 GMT", now),
            Some(Duration::from_secs(60)),
            "the obsolete RFC 850 form"
        );
        assert_eq!(
            parse("Sun, 06 Nov 1994 08:48:37 GMT", now),
            Some(Duration::ZERO),
            "a date in the past asks for no wait"
        );
    }

    #[test]
    fn huge_numbers_are_long_and_garbage_is_nothing() {
        let now = at(0);
        assert_eq!(
            parse("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for garbage in ["", "-5", "1.5", "soon", "\u{1b}[2J", "12 seconds"] {
            assert_eq!(parse(garbage, now), None, "{garbage:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_header_value_is_a_delay_or_nothing(value in ".{0,60}", now in 0u64..4_000_000_000) {
            let _ = parse(&value, at(now));
        }
    }
}
