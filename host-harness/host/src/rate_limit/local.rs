//! The budgets kept in this process: sliding windows over the permits granted, plus pauses
//! ordered by the API's 429s. [`ApiBudgets`] holds one [`RateLimiter`] per [`Api`].

use super::{Api, Budget, PermitFuture, PermitSource, Spans};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One budget per API for one application in one tenant: what the API counts separately. Share
/// one `Arc<ApiBudgets>` between every [`crate::Tenant`] that signs in as the same application
/// to the same tenant (the tenants file does).
pub struct ApiBudgets {
    limiters: [RateLimiter; 5],
}

impl ApiBudgets {
    /// The same `budget` for each API.
    pub fn new(budget: Budget) -> Self {
        Self::with_overrides(budget, &[])
    }

    /// `budget` for each API but those given their own in `overrides`.
    pub fn with_overrides(budget: Budget, overrides: &[(Api, Budget)]) -> Self {
        Self::on_clock(
            budget,
            overrides,
            Arc::new(MonotonicClock::default()),
            Spans::API,
        )
    }

    /// `budget` for each API but those in `overrides`, on `clock` and over `spans`.
    pub(crate) fn on_clock(
        budget: Budget,
        overrides: &[(Api, Budget)],
        clock: Arc<dyn Clock>,
        spans: Spans,
    ) -> Self {
        let of = |api: Api| {
            let budget = overrides
                .iter()
                .rev()
                .find(|(a, _)| *a == api)
                .map_or(budget, |(_, b)| *b);
            RateLimiter::on_clock(budget, clock.clone(), spans)
        };
        Self {
            limiters: Api::ALL.map(of),
        }
    }

    /// The budget of `api`.
    pub fn get(&self, api: Api) -> &RateLimiter {
        // `limiters` holds one limiter for each of `Api::ALL`, in that order.
        &self.limiters[api.index()]
    }
}

impl PermitSource for ApiBudgets {
    fn try_acquire(&self, api: Api) -> PermitFuture<'_, Result<(), Duration>> {
        let answer = self.get(api).try_acquire();
        Box::pin(std::future::ready(answer))
    }

    fn available_in(&self, api: Api) -> PermitFuture<'_, Duration> {
        let answer = self.get(api).available_in();
        Box::pin(std::future::ready(answer))
    }

    fn pause(&self, api: Api, duration: Duration) -> PermitFuture<'_, ()> {
        self.get(api).pause(duration);
        Box::pin(std::future::ready(()))
    }

    fn budget(&self, api: Api) -> Budget {
        self.get(api).budget()
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

/// The shared limiter of one API of one tenant.
pub struct RateLimiter {
    budget: Budget,
    clock: Arc<dyn Clock>,
    spans: Spans,
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
        Self::on_clock(budget, Arc::new(MonotonicClock::default()), Spans::API)
    }

    /// A limiter with `budget` on the given clock, over `spans`.
    pub(crate) fn on_clock(budget: Budget, clock: Arc<dyn Clock>, spans: Spans) -> Self {
        Self {
            budget,
            clock,
            spans,
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
        let Spans { minute, hour } = self.spans;
        while windows.granted.front().is_some_and(|&t| t + hour <= now) {
            windows.granted.pop_front();
        }
        if windows.paused_until > now {
            return Err(windows.paused_until - now);
        }
        let granted = &windows.granted;
        let hourly = self.budget.per_hour as usize;
        if granted.len() >= hourly {
            return Err(wait_for(granted, granted.len() - hourly, hour, now));
        }
        let minutely = self.budget.per_minute as usize;
        let in_last_minute = granted.len() - granted.partition_point(|&t| t + minute <= now);
        if in_last_minute >= minutely {
            return Err(wait_for(granted, granted.len() - minutely, minute, now));
        }
        Ok(())
    }

    /// Counts a permit granted elsewhere (by a shared budget) as granted now, so that if this
    /// limiter has to decide alone later, it knows what this host already spent.
    pub(crate) fn record(&self) {
        let now = self.clock.now();
        let mut windows = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = self.wait(&mut windows, now);
        // Never more than a whole hour's budget: older grants would be forgotten anyway.
        if windows.granted.len() < self.budget.per_hour as usize {
            windows.granted.push_back(now);
        }
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
        (
            RateLimiter::on_clock(budget, clock.clone(), Spans::API),
            clock,
        )
    }

    #[test]
    fn the_minute_window_slides() {
        let (limiter, clock) = limiter(3, 100);
        for _ in 0..3 {
            limiter.try_acquire().unwrap();
            clock.advance(Duration::from_secs(10));
        }
        // Granted at 0, 10 and 20 s; now 30 s: the first frees at 61 s (60 and the margin).
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(31)));
        clock.advance(Duration::from_secs(30));
        assert_eq!(limiter.try_acquire(), Err(Duration::from_secs(1)));
        clock.advance(Duration::from_secs(1));
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
        // 60 minutes passed: exactly the hourly budget, never more, until the margin is over.
        assert_eq!(granted, 150);
        assert!(limiter.try_acquire().is_err());
        clock.advance(super::super::ARRIVAL_MARGIN);
        assert!(limiter.try_acquire().is_ok());
    }

    #[test]
    fn each_api_has_a_budget_of_its_own() {
        let clock = Arc::new(ManualClock::default());
        let small = Budget {
            per_minute: 1,
            per_hour: 10,
        };
        let budgets = ApiBudgets::on_clock(
            Budget::default(),
            &[(Api::ListActions, small)],
            clock.clone(),
            Spans::API,
        );
        for _ in 0..100 {
            budgets.get(Api::CreateAction).try_acquire().unwrap();
        }
        assert!(budgets.get(Api::CreateAction).try_acquire().is_err());
        // Creating spent nothing of polling's budget.
        budgets.get(Api::GetAction).try_acquire().unwrap();
        budgets.get(Api::ListActions).try_acquire().unwrap();
        assert!(budgets.get(Api::ListActions).try_acquire().is_err());
        assert_eq!(budgets.get(Api::ListActions).budget(), small);
        // A pause of one API leaves the others.
        budgets
            .get(Api::CancelAction)
            .pause(Duration::from_secs(30));
        assert!(budgets.get(Api::CancelAction).try_acquire().is_err());
        budgets.get(Api::FileMachines).try_acquire().unwrap();
    }

    #[test]
    fn api_names_are_the_wits() {
        for api in Api::ALL {
            assert_eq!(Api::from_name(api.name()), Some(api));
        }
        assert_eq!(Api::ListActions.to_string(), "list-actions");
        assert_eq!(Api::from_name("machines"), None);
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
        assert_eq!(per_minute.try_acquire(), Err(Spans::API.minute));
        let (per_hour, _clock) = limiter(10, 0);
        assert_eq!(per_hour.try_acquire(), Err(Spans::API.hour));
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
