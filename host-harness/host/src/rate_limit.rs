//! A tenant's rate budget: sliding windows over the permits granted, plus pauses ordered by the
//! API's 429s. One limiter is shared by every invocation of the tenant.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// How many API calls a tenant may make. The default is the API's own: 100 a minute and 1500
/// an hour, counted per application and tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Calls in any 60-second window.
    pub per_minute: u32,
    /// Calls in any 3600-second window.
    pub per_hour: u32,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            per_minute: 100,
            per_hour: 1500,
        }
    }
}

/// A source of time, so tests can drive the limiter by hand.
pub(crate) trait Clock: Send + Sync {
    /// Time elapsed since an arbitrary fixed start.
    fn now(&self) -> Duration;
}

/// The real monotonic clock.
#[derive(Debug)]
pub(crate) struct MonotonicClock(Instant);

impl Default for MonotonicClock {
    fn default() -> Self {
        Self(Instant::now())
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

/// The shared limiter of one tenant.
pub struct RateLimiter {
    budget: Budget,
    clock: Arc<dyn Clock>,
    state: Mutex<Windows>,
}

#[derive(Default)]
struct Windows {
    /// When each permit of the last hour was granted, oldest first.
    granted: VecDeque<Duration>,
    /// No permit before this time (set by a 429's `Retry-After`).
    paused_until: Duration,
}

impl RateLimiter {
    /// A limiter with `budget` on the real clock.
    pub fn new(budget: Budget) -> Self {
        Self::with_clock(budget, Arc::new(MonotonicClock::default()))
    }

    /// A limiter with `budget` on the given clock.
    pub(crate) fn with_clock(budget: Budget, clock: Arc<dyn Clock>) -> Self {
        Self {
            budget,
            clock,
            state: Mutex::new(Windows::default()),
        }
    }

    /// Grants a permit now, or says how long until one can be granted.
    pub fn try_acquire(&self) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut windows = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.wait(&mut windows, now)?;
        windows.granted.push_back(now);
        Ok(())
    }

    /// How long until a permit could be granted (zero: now), granting none.
    pub fn available_in(&self) -> Duration {
        let now = self.clock.now();
        let mut windows = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.wait(&mut windows, now).err().unwrap_or(Duration::ZERO)
    }

    /// Forgets grants older than an hour, then says how long until the next permit.
    fn wait(&self, windows: &mut Windows, now: Duration) -> Result<(), Duration> {
        while windows.granted.front().is_some_and(|&t| t + HOUR <= now) {
            windows.granted.pop_front();
        }
        if windows.paused_until > now {
            return Err(windows.paused_until - now);
        }
        let granted = &windows.granted;
        let hourly = self.budget.per_hour as usize;
        if granted.len() >= hourly {
            return Err(wait_for(granted, granted.len() - hourly, HOUR, now));
        }
        let minutely = self.budget.per_minute as usize;
        let in_last_minute = granted.len() - granted.partition_point(|&t| t + MINUTE <= now);
        if in_last_minute >= minutely {
            return Err(wait_for(granted, granted.len() - minutely, MINUTE, now));
        }
        Ok(())
    }

    /// Pauses the tenant for `retry_after` (the API answered 429).
    pub fn pause(&self, retry_after: Duration) {
        let until = self.clock.now().saturating_add(retry_after);
        let mut windows = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        windows.paused_until = windows.paused_until.max(until);
    }

    /// The budget this limiter enforces.
    pub fn budget(&self) -> Budget {
        self.budget
    }
}

/// Time until the permit at `index` leaves a window of `span` (a whole span for a zero budget);
/// never zero, so callers sleep.
fn wait_for(granted: &VecDeque<Duration>, index: usize, span: Duration, now: Duration) -> Duration {
    let frees_at = granted.get(index).map_or(now + span, |&t| t + span);
    frees_at.saturating_sub(now).max(Duration::from_millis(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[derive(Default)]
    struct ManualClock(AtomicU64);

    impl ManualClock {
        fn advance(&self, d: Duration) {
            self.0.fetch_add(d.as_millis() as u64, Ordering::SeqCst);
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Duration {
            Duration::from_millis(self.0.load(Ordering::SeqCst))
        }
    }

    fn limiter(per_minute: u32, per_hour: u32) -> (RateLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::default());
        let budget = Budget {
            per_minute,
            per_hour,
        };
        (RateLimiter::with_clock(budget, clock.clone()), clock)
    }

    #[test]
    fn the_minute_window_slides() {
        let (limiter, clock) = limiter(3, 100);
        for _ in 0..3 {
            limiter.try_acquire().unwrap();
            clock.advance(Duration::from_secs(10));
        }
        // Granted at 0, 10 and 20 s; now 30 s: the first frees at 60 s.
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(30)));
        clock.advance(Duration::from_secs(30));
        limiter.try_acquire().unwrap();
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(10)));
    }

    #[test]
    fn the_hour_window_holds_across_minutes() {
        let (limiter, clock) = limiter(100, 150);
        let mut granted = 0;
        for _ in 0..120 {
            while limiter.try_acquire().is_ok() {
                granted += 1;
            }
            clock.advance(Duration::from_secs(30));
        }
        // 60 minutes passed: exactly the hourly budget, never more.
        assert_eq!(granted, 150);
        assert!(limiter.try_acquire().is_ok());
    }

    #[test]
    fn a_pause_blocks_until_it_ends() {
        let (limiter, clock) = limiter(100, 1500);
        limiter.pause(Duration::from_secs(5));
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(5)));
        clock.advance(Duration::from_secs(5));
        limiter.try_acquire().unwrap();
    }

    #[test]
    fn a_zero_budget_waits_a_whole_window() {
        let (per_minute, _clock) = limiter(0, 10);
        assert_eq!(per_minute.try_acquire(), Err(MINUTE));
        let (per_hour, _clock) = limiter(10, 0);
        assert_eq!(per_hour.try_acquire(), Err(HOUR));
    }

    #[test]
    fn no_interleaving_of_threads_exceeds_the_budget() {
        let (limiter, _clock) = limiter(100, 1500);
        let limiter = Arc::new(limiter);
        let granted = AtomicU64::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..50 {
                        if limiter.try_acquire().is_ok() {
                            granted.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
            }
        });
        assert_eq!(granted.load(Ordering::SeqCst), 100);
    }
}
