//! A tenant's rate budgets, one per API: sliding windows over the permits granted, plus pauses
//! ordered by the API's 429s. Each API page gives its own limit ("Rate limitations for this
//! API are 100 calls per minute and 1500 calls per hour"), counted per application and tenant,
//! so [`ApiBudgets`] holds one [`RateLimiter`] per [`Api`], shared by every invocation of every
//! tenant entry that signs in as the same application.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A permit counts this much longer than its window: the API counts a call when it arrives,
/// after the host granted it, and arrivals are not evenly late, so a window that frees exactly
/// on time would let a call arrive before its predecessor's minute is over.
const ARRIVAL_MARGIN: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60).saturating_add(ARRIVAL_MARGIN);
const HOUR: Duration = Duration::from_secs(3600).saturating_add(ARRIVAL_MARGIN);

/// What a permit is for: one of the API's endpoints the component calls, each with a budget of
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST /api/machines/{id}/StopAndQuarantineFile`.
    CreateAction,
    /// `GET /api/machineactions/{id}`.
    GetAction,
    /// `GET /api/machineactions` (List MachineActions).
    ListActions,
    /// `POST /api/machineactions/{id}/cancel`.
    CancelAction,
    /// `GET /api/files/{sha1}/machines`.
    FileMachines,
}

impl Api {
    /// Every API, in the order the WIT names them.
    pub const ALL: [Api; 5] = [
        Api::CreateAction,
        Api::GetAction,
        Api::ListActions,
        Api::CancelAction,
        Api::FileMachines,
    ];

    /// The API's name in the WIT and the tenants file, e.g. `create-action`.
    pub fn name(self) -> &'static str {
        match self {
            Api::CreateAction => "create-action",
            Api::GetAction => "get-action",
            Api::ListActions => "list-actions",
            Api::CancelAction => "cancel-action",
            Api::FileMachines => "file-machines",
        }
    }

    /// The API named `name`, as [`Api::name`] spells it.
    pub fn from_name(name: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|api| api.name() == name)
    }

    /// Where the API is in [`Api::ALL`], and so in every per-API array.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
        Self::on_clock(budget, overrides, Arc::new(MonotonicClock::default()))
    }

    fn on_clock(budget: Budget, overrides: &[(Api, Budget)], clock: Arc<dyn Clock>) -> Self {
        let of = |api: Api| {
            let budget = overrides
                .iter()
                .rev()
                .find(|(a, _)| *a == api)
                .map_or(budget, |(_, b)| *b);
            RateLimiter::with_clock(budget, clock.clone())
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

/// How many calls to one API a tenant may make. The default is the API's own: 100 a minute and
/// 1500 an hour, counted per application and tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Calls in any 60-second window (counted over 61 s, for calls that arrive late).
    pub per_minute: u32,
    /// Calls in any 3600-second window (counted over 3601 s).
    pub per_hour: u32,
}

impl Budget {
    /// `per_minute` calls a minute and `per_hour` an hour.
    pub const fn new(per_minute: u32, per_hour: u32) -> Self {
        Self {
            per_minute,
            per_hour,
        }
    }
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

/// The shared limiter of one API of one tenant.
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
        clock.advance(ARRIVAL_MARGIN);
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
