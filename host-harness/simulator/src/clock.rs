//! The simulated API's clock: the host's, shifted by an offset ([`crate::Simulator::
//! set_clock_offset`]), as a service's clock can be ahead of or behind its client's. The pages
//! say nothing of clock skew; the offset is the simulator's own model, so a test can see what a
//! client does where it compares the API's times with its own clock (and where it compares
//! them with the API's own, as a `$filter` built from an action's `creationDateTimeUtc`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The last instant written times can show: RFC 3339 and HTTP dates stop at year 9999.
const LAST_WRITABLE: Duration = Duration::new(253_402_300_799, 999_999_999);

/// The API's clock: the host's plus `offset_ms` milliseconds (negative: behind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    offset_ms: i64,
}

impl Clock {
    /// A clock `offset_ms` milliseconds ahead of the host's (behind when negative).
    pub fn new(offset_ms: i64) -> Self {
        Self { offset_ms }
    }

    /// The API's time now, as it writes it (`creationDateTimeUtc` and the like): RFC 3339 in
    /// UTC with microseconds.
    pub fn written_now(self) -> String {
        let by = Duration::from_millis(self.offset_ms.unsigned_abs());
        let now = SystemTime::now();
        let shifted = if self.offset_ms >= 0 {
            now.checked_add(by).unwrap_or_else(last_writable)
        } else {
            now.checked_sub(by).unwrap_or(UNIX_EPOCH)
        };
        humantime::format_rfc3339_micros(writable(shifted)).to_string()
    }
}

/// `at`, brought within the instants RFC 3339 and HTTP dates can write (the epoch to the end of
/// year 9999), as the formatters panic outside them.
pub fn writable(at: SystemTime) -> SystemTime {
    at.clamp(UNIX_EPOCH, last_writable())
}

fn last_writable() -> SystemTime {
    UNIX_EPOCH.checked_add(LAST_WRITABLE).unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(offset_ms: i64) -> SystemTime {
        humantime::parse_rfc3339(&Clock::new(offset_ms).written_now()).unwrap()
    }

    #[test]
    fn the_offset_shifts_written_times_and_extremes_are_clamped() {
        let hour_behind = written(-3_600_000);
        let expected = SystemTime::now() - Duration::from_secs(3600);
        let gap = expected.duration_since(hour_behind).unwrap_or_default();
        assert!(gap < Duration::from_secs(5), "{gap:?}");
        assert!(hour_behind <= expected);
        assert_eq!(written(i64::MIN), UNIX_EPOCH);
        let last = UNIX_EPOCH + Duration::new(253_402_300_799, 999_999_000);
        assert_eq!(written(i64::MAX), last);
    }
}
