//! Each API's call budget. Every page of the five endpoints states its own limit: "Rate
//! limitations for this API are 100 calls per minute and 1500 calls per hour"
//! (learn.microsoft.com/defender-endpoint/api/stop-and-quarantine-file, get-machineaction-object,
//! get-machineactions-collection, cancel-machine-action, get-file-related-machines), and "common
//! errors" (learn.microsoft.com/defender-endpoint/api/common-errors) says the limits are "calls
//! per API" and that a call past them gets 429 `TooManyRequests` with a `Retry-After` header. So
//! the simulator keeps one budget per API and per caller (the application a token was issued to,
//! per application + tenant as observed in the field), with two sliding windows: at most
//! `per_minute` answered calls in any 60 s and `per_hour` in any 3600 s. A refused call is not
//! counted, so a client that waits as long as `Retry-After` says is answered.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// One of the five APIs, each with its own budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// `POST /api/machines/{id}/StopAndQuarantineFile`.
    CreateAction,
    /// `GET /api/machineactions/{id}`.
    GetAction,
    /// `GET /api/machineactions`.
    ListActions,
    /// `POST /api/machineactions/{id}/cancel`.
    CancelAction,
    /// `GET /api/files/{sha1}/machines`.
    FileMachines,
}

impl Api {
    /// Every API, in the order [`Budget::calls`] reports them.
    pub const ALL: [Api; 5] = [
        Api::CreateAction,
        Api::GetAction,
        Api::ListActions,
        Api::CancelAction,
        Api::FileMachines,
    ];

    /// The API's name in [`ApiCalls::api`].
    pub fn name(self) -> &'static str {
        match self {
            Api::CreateAction => "create-action",
            Api::GetAction => "get-action",
            Api::ListActions => "list-actions",
            Api::CancelAction => "cancel-action",
            Api::FileMachines => "file-machines",
        }
    }

    fn index(self) -> usize {
        match self {
            Api::CreateAction => 0,
            Api::GetAction => 1,
            Api::ListActions => 2,
            Api::CancelAction => 3,
            Api::FileMachines => 4,
        }
    }
}

/// The calls each caller may make to each API: by default the pages' 100 a minute and 1500 an
/// hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Answered calls allowed in any 60 seconds.
    pub per_minute: u32,
    /// Answered calls allowed in any 3600 seconds.
    pub per_hour: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_minute: 100,
            per_hour: 1500,
        }
    }
}

/// How one API's calls fared, over every caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCalls {
    /// `create-action`, `get-action`, `list-actions`, `cancel-action` or `file-machines`.
    pub api: &'static str,
    /// Calls within the budget (answered by the API, whatever the answer).
    pub answered: u64,
    /// Calls refused with 429 because the budget was spent (scripted 429s are not counted).
    pub throttled: u64,
}

/// A call over the budget, and when the caller may call again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limit is exceeded: try again in {} seconds", self.seconds())]
pub struct Throttled {
    /// How long until the oldest call in the full window leaves it.
    pub retry_after: Duration,
}

impl Throttled {
    /// `retry_after` in whole seconds, rounded up, at least 1: the `Retry-After` header.
    pub fn seconds(&self) -> u64 {
        let whole = self.retry_after.as_secs();
        let rounded = if self.retry_after.subsec_nanos() > 0 {
            whole.saturating_add(1)
        } else {
            whole
        };
        rounded.max(1)
    }
}

/// The budgets of every API and caller.
#[derive(Debug)]
pub struct Budget {
    limit: Option<RateLimit>,
    /// The instants of the answered calls of the last hour, oldest first, by API and caller
    /// (`None`: a token the simulator's directory did not issue).
    windows: HashMap<(Api, Option<String>), VecDeque<Instant>>,
    answered: [u64; 5],
    throttled: [u64; 5],
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            limit: Some(RateLimit::default()),
            windows: HashMap::new(),
            answered: [0; 5],
            throttled: [0; 5],
        }
    }
}

impl Budget {
    /// Sets the limit; `None` lifts it (calls are then counted but not remembered).
    pub fn set_limit(&mut self, limit: Option<RateLimit>) {
        self.limit = limit;
    }

    /// Spends one call of `caller`'s budget for `api` at `now` (which must not go back in time
    /// between calls), or says when it may call again.
    pub fn spend(&mut self, api: Api, caller: Option<&str>, now: Instant) -> Result<(), Throttled> {
        let index = api.index();
        let Some(limit) = self.limit else {
            bump(&mut self.answered, index);
            return Ok(());
        };
        let window = self
            .windows
            .entry((api, caller.map(str::to_owned)))
            .or_default();
        let age = |t: &Instant| now.saturating_duration_since(*t);
        while window.front().is_some_and(|t| age(t) >= HOUR) {
            window.pop_front();
        }
        let minute_start = window.partition_point(|t| age(t) >= MINUTE);
        let waits = [
            wait(window, minute_start, limit.per_minute, MINUTE, now),
            wait(window, 0, limit.per_hour, HOUR, now),
        ];
        match waits.into_iter().flatten().max() {
            Some(retry_after) => {
                bump(&mut self.throttled, index);
                Err(Throttled { retry_after })
            }
            None => {
                window.push_back(now);
                bump(&mut self.answered, index);
                Ok(())
            }
        }
    }

    /// The counters of each API, in [`Api::ALL`]'s order.
    pub fn calls(&self) -> Vec<ApiCalls> {
        Api::ALL
            .iter()
            .map(|api| ApiCalls {
                api: api.name(),
                answered: self.answered[api.index()],
                throttled: self.throttled[api.index()],
            })
            .collect()
    }
}

fn bump(counters: &mut [u64; 5], index: usize) {
    if let Some(counter) = counters.get_mut(index) {
        *counter = counter.saturating_add(1);
    }
}

/// How long until a call fits in the window of length `span` that holds `window[start..]`
/// (`None`: it fits now). It fits once all but `limit - 1` of those calls have left; the last
/// to leave of them is the oldest of a full window.
fn wait(
    window: &VecDeque<Instant>,
    start: usize,
    limit: u32,
    span: Duration,
    now: Instant,
) -> Option<Duration> {
    let count = window.len().saturating_sub(start);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if count < limit {
        return None;
    }
    let last_to_leave = start.saturating_add(count.saturating_sub(limit));
    Some(match window.get(last_to_leave) {
        Some(t) => span.saturating_sub(now.saturating_duration_since(*t)),
        // A limit of 0: nothing ever fits; say the window's length.
        None => span,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(per_minute: u32, per_hour: u32) -> Budget {
        let mut budget = Budget::default();
        budget.set_limit(Some(RateLimit {
            per_minute,
            per_hour,
        }));
        budget
    }

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn the_minute_window_refuses_until_its_oldest_call_leaves() {
        let start = Instant::now();
        let mut budget = limited(2, 1500);
        assert!(budget.spend(Api::ListActions, None, start).is_ok());
        assert!(
            budget
                .spend(Api::ListActions, None, at(start, 1_000))
                .is_ok()
        );
        let refused = budget.spend(Api::ListActions, None, at(start, 30_500));
        assert_eq!(refused.map_err(|t| t.seconds()), Err(30));
        // Another API, and another caller of the same API, have budgets of their own.
        assert!(
            budget
                .spend(Api::GetAction, None, at(start, 30_500))
                .is_ok()
        );
        let app = Some("tenant/app");
        assert!(
            budget
                .spend(Api::ListActions, app, at(start, 30_500))
                .is_ok()
        );
        assert!(
            budget
                .spend(Api::ListActions, None, at(start, 60_000))
                .is_ok()
        );
    }

    #[test]
    fn refused_calls_do_not_count() {
        let start = Instant::now();
        let mut budget = limited(2, 1500);
        assert!(budget.spend(Api::CreateAction, None, start).is_ok());
        assert!(
            budget
                .spend(Api::CreateAction, None, at(start, 1_000))
                .is_ok()
        );
        for refused_at in [2_000, 30_000, 59_999] {
            assert!(
                budget
                    .spend(Api::CreateAction, None, at(start, refused_at))
                    .is_err()
            );
        }
        // Counted, the refusals would fill the window until 119.999 s.
        assert!(
            budget
                .spend(Api::CreateAction, None, at(start, 60_000))
                .is_ok()
        );
        let calls = budget.calls();
        assert_eq!(calls[0].api, "create-action");
        assert_eq!((calls[0].answered, calls[0].throttled), (3, 3));
    }

    #[test]
    fn the_hour_window_counts_too() {
        let start = Instant::now();
        let mut budget = limited(100, 3);
        for minute in [0, 10, 20] {
            assert!(
                budget
                    .spend(Api::FileMachines, None, at(start, minute * 60_000))
                    .is_ok()
            );
        }
        let refused = budget.spend(Api::FileMachines, None, at(start, 30 * 60_000));
        assert_eq!(refused.map_err(|t| t.seconds()), Err(1800));
        assert!(
            budget
                .spend(Api::FileMachines, None, at(start, 60 * 60_000))
                .is_ok()
        );
    }

    #[test]
    fn a_lifted_or_lowered_limit_never_panics() {
        let start = Instant::now();
        let mut budget = Budget::default();
        budget.set_limit(None);
        for _ in 0..5000 {
            assert!(budget.spend(Api::GetAction, None, start).is_ok());
        }
        let mut budget = limited(0, 0);
        let refused = budget.spend(Api::CancelAction, None, start);
        assert_eq!(refused.map_err(|t| t.seconds()), Err(3600));
        assert_eq!(
            Throttled {
                retry_after: Duration::ZERO
            }
            .seconds(),
            1
        );
    }
}
