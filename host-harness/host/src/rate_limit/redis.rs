//! Budgets kept in Redis, so that every host serving one tenant spends one budget: the API
//! counts calls per application and tenant, not per host, and N hosts each with a budget of its
//! own would send N times the API's limit.
//!
//! Each decision is one Lua script, run atomically by Redis on Redis's own clock (`TIME`), so
//! the hosts' clocks do not matter: a sorted set of the grants of the last hour per API, and a
//! pause-until per API for the API's 429s. When Redis does not answer within a bound, or
//! answers something the script never returns, the host decides from a local budget of its
//! share (1/N of the budget by default), counts and logs it, and asks Redis again a moment
//! later: a Redis outage slows a fleet down, it never stops it. That local share counts what
//! Redis granted this host too, so a host that just spent its share does not spend it again
//! when Redis goes away.

use super::local::ApiBudgets;
use super::{Api, Budget, PermitFuture, PermitSource, Spans};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The script behind every decision. `KEYS[1]`: the API's grants (members unique, scored by
/// Redis time in ms); `KEYS[2]`: the API's pause-until (ms). `ARGV[1]`: `acquire`, `peek`,
/// `pause` or `replay`; for `pause`, `ARGV[2]` is its length in ms; for `replay` (grants this
/// host made alone while Redis was away), `ARGV[2]` is the hour's span, then pairs of a member
/// and its age in ms; otherwise `ARGV[2..5]` are per-minute, per-hour, the minute's and the
/// hour's spans in ms, `ARGV[6]` the new grant's member. Returns 0 (granted, or free now) or
/// the ms until a permit could be granted.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[1] == 'replay' then
  for i = 3, #ARGV, 2 do
    redis.call('ZADD', KEYS[1], now - tonumber(ARGV[i + 1]), ARGV[i])
  end
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 0
end
if ARGV[1] == 'pause' then
  local length = tonumber(ARGV[2])
  local current = tonumber(redis.call('GET', KEYS[2]) or '0')
  if now + length > current then
    redis.call('SET', KEYS[2], now + length, 'PX', length + 1000)
  end
  return 0
end
local per_minute, per_hour = tonumber(ARGV[2]), tonumber(ARGV[3])
local minute, hour = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - hour)
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return paused - now end
if per_hour == 0 then return hour end
if per_minute == 0 then return minute end
local total = redis.call('ZCARD', KEYS[1])
if total >= per_hour then
  local at = redis.call('ZRANGE', KEYS[1], total - per_hour, total - per_hour, 'WITHSCORES')
  return math.max(tonumber(at[2]) + hour - now, 1)
end
local since = '(' .. (now - minute)
local recent = redis.call('ZCOUNT', KEYS[1], since, '+inf')
if recent >= per_minute then
  local at = redis.call('ZRANGEBYSCORE', KEYS[1], since, '+inf', 'WITHSCORES', 'LIMIT',
    recent - per_minute, 1)
  return math.max(tonumber(at[2]) + minute - now, 1)
end
if ARGV[1] == 'acquire' then
  redis.call('ZADD', KEYS[1], now, ARGV[6])
  redis.call('PEXPIRE', KEYS[1], hour)
end
return 0
";

/// The longest wait the script may answer: a pause of a day (the most `max-retry-after-secs`
/// allows) and an hour's window; past it, the answer is not one the script gives, and the
/// host decides alone instead.
const MAX_WAIT_MS: i64 = 90_000_000;

/// How a [`RedisBudgets`] reaches Redis and what it does when Redis does not answer.
#[derive(Clone)]
pub struct RedisSettings {
    /// Redis's URL, `redis://[user:password@]host:port[/db]`. Never shown: it may hold a
    /// password.
    pub url: String,
    /// What the budget's keys begin with; one per (directory, application), as the API counts.
    pub key: String,
    /// How many hosts share the budget: without Redis, each host spends `1/fleet_size` of it.
    pub fleet_size: u32,
    /// The longest a decision waits for Redis before the host decides alone.
    pub timeout: Duration,
    /// How long the host decides alone after Redis failed, before asking Redis again.
    pub recheck: Duration,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"[redacted]")
            .field("key", &self.key)
            .field("fleet_size", &self.fleet_size)
            .field("timeout", &self.timeout)
            .field("recheck", &self.recheck)
            .finish()
    }
}

impl RedisSettings {
    /// Settings for `url` and `key`: a fleet of one, 200 ms per answer, Redis asked again a
    /// second after it failed.
    pub fn new(url: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key: key.into(),
            fleet_size: 1,
            timeout: Duration::from_millis(200),
            recheck: Duration::from_secs(1),
        }
    }
}

/// Why Redis settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL is not one the Redis client reads (the URL itself is not repeated: it may hold
    /// a password).
    #[error("redis-url is not a Redis URL (redis://host:port[/db]): {0}")]
    Url(String),
}

/// A tenant's budgets, one per API, kept in Redis and shared by every host that uses the same
/// Redis and key; see the module's documentation for what happens when Redis fails.
pub struct RedisBudgets {
    client: redis::Client,
    /// Made anew after a failure: a manager keeps its failed reconnection for the next call.
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    script: redis::Script,
    budgets: [Budget; 5],
    spans: Spans,
    settings: RedisSettings,
    /// This host's share, used while Redis does not answer.
    fallback: ApiBudgets,
    outage: Mutex<Outage>,
    /// Held while the grants made alone are added to Redis: no decision is asked of Redis
    /// before they are in its windows.
    replaying: tokio::sync::Mutex<()>,
    /// Per API, until when Redis said no: asked again only then, so a guest looping on a
    /// denied permit cannot turn each try into a Redis call.
    denied_until: Mutex<[Option<Instant>; 5]>,
    fallbacks: AtomicU64,
    /// Makes each grant's member unique across hosts: random, then counted.
    member: AtomicU64,
}

/// Redis's absence as this host sees it.
#[derive(Default)]
struct Outage {
    /// Until when the host decides alone (`None`: Redis is asked).
    until: Option<Instant>,
    /// Whether this outage was logged (once an outage, however long).
    logged: bool,
    /// Per API, the grants made alone, to add to Redis's windows when it answers again.
    owed: [Vec<Instant>; 5],
    /// For a minute after an outage, a grant needs this host's share too: the other hosts'
    /// grants made alone reach Redis only when each of them asks it again.
    cautious_until: Option<Instant>,
}

impl RedisBudgets {
    /// `budget` for each API but those in `overrides`, kept in Redis as `settings` say.
    /// Connects only when first asked.
    pub fn new(
        settings: RedisSettings,
        budget: Budget,
        overrides: &[(Api, Budget)],
    ) -> Result<Self, RedisError> {
        Self::over(settings, budget, overrides, Spans::API)
    }

    /// The same, over `spans`.
    pub(crate) fn over(
        settings: RedisSettings,
        budget: Budget,
        overrides: &[(Api, Budget)],
        spans: Spans,
    ) -> Result<Self, RedisError> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| RedisError::Url(e.category().to_owned()))?;
        let budgets = Api::ALL.map(|api| {
            overrides
                .iter()
                .rev()
                .find(|(a, _)| *a == api)
                .map_or(budget, |(_, b)| *b)
        });
        let share = settings.fleet_size.max(1);
        let shared = |b: Budget| Budget {
            per_minute: (b.per_minute / share).max(1),
            per_hour: (b.per_hour / share).max(1),
        };
        let own: Vec<(Api, Budget)> = Api::ALL
            .into_iter()
            .zip(budgets)
            .map(|(api, b)| (api, shared(b)))
            .collect();
        let fallback = ApiBudgets::on_clock(
            shared(budget),
            &own,
            std::sync::Arc::new(super::local::MonotonicClock::default()),
            spans,
        );
        let mut seed = [0u8; 8];
        // A constant seed only risks two hosts' grants sharing a member, counted once.
        let _ = getrandom::fill(&mut seed);
        Ok(Self {
            client,
            connection: tokio::sync::Mutex::new(None),
            script: redis::Script::new(SCRIPT),
            budgets,
            spans,
            settings,
            fallback,
            outage: Mutex::default(),
            replaying: tokio::sync::Mutex::new(()),
            denied_until: Mutex::new([None; 5]),
            fallbacks: AtomicU64::new(0),
            member: AtomicU64::new(u64::from_le_bytes(seed)),
        })
    }

    /// How many decisions this host made alone because Redis did not answer.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Whether Redis is asked (`false` while the host decides alone after a failure).
    pub fn redis_in_use(&self) -> bool {
        !self.deciding_alone()
    }

    /// Whether the host decides alone now.
    fn deciding_alone(&self) -> bool {
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        match outage.until {
            Some(at) if Instant::now() < at => true,
            Some(_) => {
                outage.until = None;
                false
            }
            None => false,
        }
    }

    /// The keys of `api`'s budget: one hash tag for both, so a Redis Cluster keeps them in one
    /// slot, as a script needs.
    fn keys(&self, api: Api) -> (String, String) {
        let prefix = &self.settings.key;
        (
            format!("{{{prefix}}}:{api}"),
            format!("{{{prefix}}}:{api}:paused"),
        )
    }

    /// Runs the script for `api` with `args` after the mode, within the timeout: the answer in
    /// ms, or why not (and the host decides alone for a while).
    async fn ask(&self, api: Api, mode: &str, args: &[u64]) -> Result<u64, String> {
        if self.deciding_alone() {
            return Err(String::new());
        }
        if let Err(why) = self.repay(api).await {
            *self.connection.lock().await = None;
            return Err(self.alone(why));
        }
        let answer =
            match tokio::time::timeout(self.settings.timeout, self.run(api, mode, args)).await {
                Ok(answer) => answer,
                Err(_) => Err(format!("no answer within {:?}", self.settings.timeout)),
            };
        match answer {
            Ok(ms) => {
                self.recovered(api).await;
                Ok(ms)
            }
            Err(why) => {
                *self.connection.lock().await = None;
                Err(self.alone(why))
            }
        }
    }

    /// One script call.
    async fn run(&self, api: Api, mode: &str, args: &[u64]) -> Result<u64, String> {
        let mut connection = self.connection().await?;
        let (grants, paused) = self.keys(api);
        let mut invocation = self.script.key(grants);
        invocation.key(paused).arg(mode);
        for arg in args {
            invocation.arg(*arg);
        }
        let value: redis::Value = invocation
            .invoke_async(&mut connection)
            .await
            .map_err(|e| describe(&e))?;
        match value {
            redis::Value::Int(ms) if (0..=MAX_WAIT_MS).contains(&ms) => {
                u64::try_from(ms).map_err(|_| "a negative wait".to_owned())
            }
            redis::Value::Int(_) => {
                Err("an answer the script never gives: a wait out of range".into())
            }
            _ => Err("an answer the script never gives: not an integer".into()),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, String> {
        let mut kept = self.connection.lock().await;
        if let Some(connection) = kept.as_ref() {
            return Ok(connection.clone());
        }
        let timeout = self.settings.timeout;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(|e| describe(&e))?;
        *kept = Some(connection.clone());
        Ok(connection)
    }

    /// Decides alone for a while, saying so once an outage.
    fn alone(&self, why: String) -> String {
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        if !outage.logged {
            tracing::warn!(
                budget = %crate::escape::escape(&self.settings.key),
                reason = %crate::escape::escape(&why),
                "Redis did not answer: deciding from this host's share of the budget"
            );
            outage.logged = true;
        }
        outage.until = Some(Instant::now() + self.settings.recheck);
        why
    }

    /// Redis answered: an outage is over, said once, and for a minute grants need this host's
    /// share too.
    async fn recovered(&self, _api: Api) {
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        if outage.logged {
            tracing::info!(budget = %crate::escape::escape(&self.settings.key), "Redis answers again");
            outage.logged = false;
            outage.cautious_until = Instant::now().checked_add(self.spans.minute);
        }
    }

    /// Adds the grants made alone for `api` to Redis's windows before anything else is asked
    /// of it, so Redis does not grant them a second time.
    async fn repay(&self, api: Api) -> Result<(), String> {
        let owes = |this: &Self| {
            let outage = this.outage.lock().unwrap_or_else(PoisonError::into_inner);
            outage
                .owed
                .get(api.index())
                .is_some_and(|owed| !owed.is_empty())
        };
        if !owes(self) {
            return Ok(());
        }
        let _turn = self.replaying.lock().await;
        let owed = {
            let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
            outage
                .owed
                .get_mut(api.index())
                .map(std::mem::take)
                .unwrap_or_default()
        };
        if owed.is_empty() {
            return Ok(());
        }
        let mut args = vec![millis(self.spans.hour)];
        for granted in &owed {
            args.push(self.member.fetch_add(1, Ordering::Relaxed));
            args.push(millis(granted.elapsed()));
        }
        let replayed =
            tokio::time::timeout(self.settings.timeout, self.run(api, "replay", &args)).await;
        match replayed {
            Ok(Ok(_)) => Ok(()),
            failed => {
                // Still owed: put them back for the next time Redis answers.
                let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(slot) = outage.owed.get_mut(api.index()) {
                    slot.extend(owed);
                }
                Err(match failed {
                    Ok(Err(why)) => why,
                    _ => format!("no answer within {:?}", self.settings.timeout),
                })
            }
        }
    }

    /// Whether grants still need this host's share too: during an outage (when Redis is asked
    /// again) and for a minute after it.
    fn cautious(&self) -> bool {
        let outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        outage.logged
            || outage
                .cautious_until
                .is_some_and(|until| Instant::now() < until)
    }

    /// Counts one decision made alone.
    fn counted_fallback(&self) {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("defender_budget_fallbacks_total", "budget" => crate::escape::escape(&self.settings.key))
            .increment(1);
    }

    /// A grant made alone, owed to Redis's windows (at most an hour's share is kept).
    fn owe(&self, api: Api) {
        let most = self.fallback.get(api).budget().per_hour as usize;
        let mut outage = self.outage.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(owed) = outage.owed.get_mut(api.index()) {
            owed.retain(|granted| granted.elapsed() < self.spans.hour);
            if owed.len() < most {
                owed.push(Instant::now());
            }
        }
    }

    /// How long Redis said `api` must wait, if that time has not passed.
    fn denied(&self, api: Api) -> Option<Duration> {
        let denied = self
            .denied_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let until = denied.get(api.index()).copied().flatten()?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// No permit for `api` before `wait` has passed (a later time already set stays).
    fn deny(&self, api: Api, wait: Duration) {
        let mut denied = self
            .denied_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = denied.get_mut(api.index()) {
            let until = Instant::now().checked_add(wait);
            *slot = (*slot).max(until);
        }
    }

    /// The script's arguments after the mode for `api`.
    fn rule(&self, api: Api, member: u64) -> [u64; 5] {
        let budget = self.budget(api);
        [
            u64::from(budget.per_minute),
            u64::from(budget.per_hour),
            millis(self.spans.minute),
            millis(self.spans.hour),
            member,
        ]
    }
}

impl PermitSource for RedisBudgets {
    fn try_acquire(&self, api: Api) -> PermitFuture<'_, Result<(), Duration>> {
        Box::pin(async move {
            if let Some(wait) = self.denied(api) {
                return Err(wait);
            }
            // Just after an outage, this host's share is asked first: a grant it would refuse
            // is not taken from Redis.
            let cautious = self.cautious();
            if cautious {
                let wait = self.fallback.get(api).available_in();
                if !wait.is_zero() {
                    // Redis is still told what was granted alone, if it answers.
                    let told = !self.deciding_alone()
                        && self.ask(api, "peek", &self.rule(api, 0)).await.is_ok();
                    if !told {
                        self.counted_fallback();
                    }
                    return Err(wait);
                }
            }
            let member = self.member.fetch_add(1, Ordering::Relaxed);
            match self.ask(api, "acquire", &self.rule(api, member)).await {
                Ok(0) if cautious => self.fallback.get(api).try_acquire(),
                Ok(0) => {
                    // This host's own spending, should it have to decide alone later.
                    self.fallback.get(api).record();
                    Ok(())
                }
                Ok(ms) => {
                    let wait = Duration::from_millis(ms);
                    self.deny(api, wait);
                    Err(wait)
                }
                Err(_) => {
                    self.counted_fallback();
                    let granted = self.fallback.get(api).try_acquire();
                    if granted.is_ok() {
                        self.owe(api);
                    }
                    granted
                }
            }
        })
    }

    fn available_in(&self, api: Api) -> PermitFuture<'_, Duration> {
        Box::pin(async move {
            if let Some(wait) = self.denied(api) {
                return wait;
            }
            match self.ask(api, "peek", &self.rule(api, 0)).await {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => {
                    self.counted_fallback();
                    self.fallback.get(api).available_in()
                }
            }
        })
    }

    fn pause(&self, api: Api, duration: Duration) -> PermitFuture<'_, ()> {
        Box::pin(async move {
            // Paused here too: if Redis fails next, this host still honours the 429.
            self.fallback.get(api).pause(duration);
            self.deny(api, duration);
            let _ = self.ask(api, "pause", &[millis(duration)]).await;
        })
    }

    fn budget(&self, api: Api) -> Budget {
        self.budgets[api.index()]
    }
}

/// `duration` in whole ms, at least 1.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// A Redis error in words, without the URL.
fn describe(error: &redis::RedisError) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.category()),
        None => error.category().to_owned(),
    }
}
