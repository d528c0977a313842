//! When to try again, and for how long.

/// The retry policy of one action call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Everything (waiting for permits, throttling, backoff) ends by this many ms after the start.
    pub deadline_ms: u64,
    /// How many times a 500/502/503/504 is retried.
    pub max_server_retries: u32,
    /// The first backoff after a server error, before jitter.
    pub backoff_base_ms: u64,
    /// The longest backoff, before jitter.
    pub backoff_cap_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            deadline_ms: 90_000,
            max_server_retries: 3,
            backoff_base_ms: 500,
            backoff_cap_ms: 8_000,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1-based) after a server error: exponential,
    /// capped, with "equal jitter" (half fixed, half random) so that many callers hit by the
    /// same outage do not come back in step.
    pub fn backoff_ms(&self, attempt: u32, random: u64) -> u64 {
        let exp = self
            .backoff_base_ms
            .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
            .min(self.backoff_cap_ms);
        let half = exp / 2;
        half + random % (exp - half + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered_within_bounds() {
        let policy = RetryPolicy::default();
        for random in [0, 1, 7, u64::MAX / 3, u64::MAX] {
            let first = policy.backoff_ms(1, random);
            assert!((250..=500).contains(&first), "{first}");
            let second = policy.backoff_ms(2, random);
            assert!((500..=1000).contains(&second), "{second}");
            let late = policy.backoff_ms(30, random);
            assert!((4000..=8000).contains(&late), "{late}");
        }
        assert_ne!(policy.backoff_ms(3, 1), policy.backoff_ms(3, 999));
    }
}
