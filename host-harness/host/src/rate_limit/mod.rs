//! A tenant's rate budgets, one per API. Each API page gives its own limit ("Rate limitations
//! for this API are 100 calls per minute and 1500 calls per hour"), counted per application and
//! tenant, so a [`PermitSource`] answers for each [`Api`] separately, and every tenant entry that
//! signs in as the same application shares one.
//!
//! Two sources: [`ApiBudgets`], in this process (the default), and, with the `redis` feature,
//! [`RedisBudgets`], kept in Redis so that several hosts serving one tenant share its budget.

mod local;
#[cfg(feature = "redis")]
mod redis;

pub use local::{ApiBudgets, RateLimiter};
#[cfg(feature = "redis")]
pub use redis::{RedisBudgets, RedisError, RedisSettings};

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// What a [`PermitSource`]'s calls return: a boxed future, so the trait can be a `dyn` object
/// shared by every clone of a tenant.
pub type PermitFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a tenant's permits come from: one budget per [`Api`], shared by everything that spends
/// it. The host asks before each request the component sends, and tells it of each 429.
pub trait PermitSource: Send + Sync {
    /// Grants a permit for `api` now, or says how long until one could be granted.
    fn try_acquire(&self, api: Api) -> PermitFuture<'_, Result<(), Duration>>;

    /// How long until a permit for `api` could be granted (zero: now), granting none.
    fn available_in(&self, api: Api) -> PermitFuture<'_, Duration>;

    /// Grants no permit for `api` for `duration` (the API answered 429).
    fn pause(&self, api: Api, duration: Duration) -> PermitFuture<'_, ()>;

    /// The budget enforced for `api`.
    fn budget(&self, api: Api) -> Budget;
}

/// A permit counts this much longer than its window: the API counts a call when it arrives,
/// after the host granted it, and arrivals are not evenly late, so a window that frees exactly
/// on time would let a call arrive before its predecessor's minute is over.
const ARRIVAL_MARGIN: Duration = Duration::from_secs(1);

/// The two windows a budget is counted over, each with the arrival margin. Only tests scale
/// them down; the API's are a minute and an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Spans {
    /// The window of [`Budget::per_minute`].
    pub minute: Duration,
    /// The window of [`Budget::per_hour`].
    pub hour: Duration,
}

impl Spans {
    /// The API's windows: 61 s and 3601 s.
    pub const API: Spans = Spans {
        minute: Duration::from_secs(60).saturating_add(ARRIVAL_MARGIN),
        hour: Duration::from_secs(3600).saturating_add(ARRIVAL_MARGIN),
    };
}

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

#[cfg(test)]
mod tests;
