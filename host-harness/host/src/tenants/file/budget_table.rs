//! `[tenant.budget]`: how many calls each API may take, and where that budget is kept.

use super::{ConfigError, invalid};
use crate::rate_limit::{Api, ApiBudgets, Budget, PermitSource};
use serde::Deserialize;
use std::sync::Arc;

/// `[tenant.budget]`: `per-minute` and `per-hour` for each API (by default the API's own, 100
/// and 1500), optionally an API's own, e.g. `[tenant.budget.list-actions]`, and where the
/// budget is kept: `backend = "local"` (this process, the default) or `"redis"`, with
/// `redis-url`, `fleet-size` (the hosts sharing it: each spends 1/N of it while Redis does not
/// answer) and `redis-timeout-ms`.
#[derive(Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct BudgetConfig {
    backend: Option<Backend>,
    redis_url: Option<String>,
    fleet_size: Option<u32>,
    redis_timeout_ms: Option<u64>,
    per_minute: Option<u32>,
    per_hour: Option<u32>,
    create_action: Option<ApiBudgetConfig>,
    get_action: Option<ApiBudgetConfig>,
    list_actions: Option<ApiBudgetConfig>,
    cancel_action: Option<ApiBudgetConfig>,
    file_machines: Option<ApiBudgetConfig>,
}

/// `[tenant.budget.<api>]`: what it leaves out is the tenant's `[tenant.budget]`.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ApiBudgetConfig {
    per_minute: Option<u32>,
    per_hour: Option<u32>,
}

/// A tenant's budget for each API, in [`Api::ALL`]'s order.
pub(crate) type Budgets = [Budget; 5];

/// Where a budget is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Backend {
    /// In this process.
    Local,
    /// In Redis, shared by every host that uses it.
    Redis,
}

/// Where a budget is kept, as written (its backend and their settings): entries that share
/// one budget must agree on it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Keeping(Option<Backend>, Option<String>, Option<u32>, Option<u64>);

impl Keeping {
    /// What `config` says.
    pub fn of(config: &BudgetConfig) -> Self {
        Self(
            config.backend,
            config.redis_url.clone(),
            config.fleet_size,
            config.redis_timeout_ms,
        )
    }
}

/// The longest `redis-timeout-ms`: a decision waits for Redis at most this long.
#[cfg(feature = "redis")]
const MAX_REDIS_TIMEOUT_MS: u64 = 10_000;
/// The most hosts `fleet-size` may name.
#[cfg(feature = "redis")]
const MAX_FLEET_SIZE: u32 = 1000;

impl BudgetConfig {
    /// No table: the API's budgets, in this process.
    pub const DEFAULT: BudgetConfig = BudgetConfig {
        backend: None,
        redis_url: None,
        fleet_size: None,
        redis_timeout_ms: None,
        per_minute: None,
        per_hour: None,
        create_action: None,
        get_action: None,
        list_actions: None,
        cancel_action: None,
        file_machines: None,
    };

    /// Where the budgets of tenant `name` are kept, holding `budgets`. `application` (its
    /// directory and client ID) names the budget in Redis, as the API counts it; without one,
    /// the tenant's name does.
    pub fn source(
        &self,
        name: &str,
        budgets: Budgets,
        application: Option<(String, String)>,
    ) -> Result<Arc<dyn PermitSource>, ConfigError> {
        let each: Vec<(Api, Budget)> = Api::ALL.into_iter().zip(budgets).collect();
        let redis_only = [
            ("redis-url", self.redis_url.is_some()),
            ("fleet-size", self.fleet_size.is_some()),
            ("redis-timeout-ms", self.redis_timeout_ms.is_some()),
        ];
        if self.backend != Some(Backend::Redis) {
            if let Some((setting, _)) = redis_only.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    name,
                    setting,
                    "only backend = \"redis\" uses it".into(),
                ));
            }
            return Ok(Arc::new(ApiBudgets::with_overrides(
                Budget::default(),
                &each,
            )));
        }
        let key = match application {
            Some((directory, client)) => format!("defender-budget:{directory}:{client}"),
            None => format!("defender-budget:tenant:{name}"),
        };
        self.redis(name, key, &each)
    }

    #[cfg(feature = "redis")]
    fn redis(
        &self,
        name: &str,
        key: String,
        each: &[(Api, Budget)],
    ) -> Result<Arc<dyn PermitSource>, ConfigError> {
        use crate::rate_limit::{RedisBudgets, RedisSettings};
        let Some(url) = &self.redis_url else {
            return Err(invalid(
                name,
                "redis-url",
                "required with backend = \"redis\"".into(),
            ));
        };
        let mut settings = RedisSettings::new(url.clone(), key);
        if let Some(size) = self.fleet_size {
            if size == 0 || size > MAX_FLEET_SIZE {
                let why = format!("must be from 1 to {MAX_FLEET_SIZE}");
                return Err(invalid(name, "fleet-size", why));
            }
            settings.fleet_size = size;
        }
        if let Some(ms) = self.redis_timeout_ms {
            if ms == 0 || ms > MAX_REDIS_TIMEOUT_MS {
                let why = format!("must be from 1 to {MAX_REDIS_TIMEOUT_MS}");
                return Err(invalid(name, "redis-timeout-ms", why));
            }
            settings.timeout = std::time::Duration::from_millis(ms);
        }
        let budgets = RedisBudgets::new(settings, Budget::default(), each)
            .map_err(|e| invalid(name, "redis-url", e.to_string()))?;
        Ok(Arc::new(budgets))
    }

    #[cfg(not(feature = "redis"))]
    fn redis(
        &self,
        name: &str,
        _key: String,
        _each: &[(Api, Budget)],
    ) -> Result<Arc<dyn PermitSource>, ConfigError> {
        Err(invalid(
            name,
            "backend",
            "this build has no Redis backend (the `redis` feature of defender-host)".into(),
        ))
    }

    /// Each API's budget, or the setting that is zero (a budget of nothing would refuse every
    /// call for ever).
    pub fn resolve(&self) -> Result<Budgets, &'static str> {
        let default = Budget::default();
        let each = Budget {
            per_minute: self.per_minute.unwrap_or(default.per_minute),
            per_hour: self.per_hour.unwrap_or(default.per_hour),
        };
        zero_in(None, each)?;
        let own = [
            (Api::CreateAction, &self.create_action),
            (Api::GetAction, &self.get_action),
            (Api::ListActions, &self.list_actions),
            (Api::CancelAction, &self.cancel_action),
            (Api::FileMachines, &self.file_machines),
        ];
        let mut budgets = [each; 5];
        for ((api, config), budget) in own.into_iter().zip(budgets.iter_mut()) {
            let Some(config) = config else {
                continue;
            };
            *budget = Budget {
                per_minute: config.per_minute.unwrap_or(each.per_minute),
                per_hour: config.per_hour.unwrap_or(each.per_hour),
            };
            zero_in(Some(api), *budget)?;
        }
        Ok(budgets)
    }
}

/// The setting of `api`'s table (or of `[tenant.budget]`) that makes `budget` zero.
fn zero_in(api: Option<Api>, budget: Budget) -> Result<(), &'static str> {
    let setting = |minute: bool| match (api, minute) {
        (None, true) => "budget.per-minute",
        (None, false) => "budget.per-hour",
        (Some(Api::CreateAction), true) => "budget.create-action.per-minute",
        (Some(Api::CreateAction), false) => "budget.create-action.per-hour",
        (Some(Api::GetAction), true) => "budget.get-action.per-minute",
        (Some(Api::GetAction), false) => "budget.get-action.per-hour",
        (Some(Api::ListActions), true) => "budget.list-actions.per-minute",
        (Some(Api::ListActions), false) => "budget.list-actions.per-hour",
        (Some(Api::CancelAction), true) => "budget.cancel-action.per-minute",
        (Some(Api::CancelAction), false) => "budget.cancel-action.per-hour",
        (Some(Api::FileMachines), true) => "budget.file-machines.per-minute",
        (Some(Api::FileMachines), false) => "budget.file-machines.per-hour",
    };
    match (budget.per_minute, budget.per_hour) {
        (0, _) => Err(setting(true)),
        (_, 0) => Err(setting(false)),
        _ => Ok(()),
    }
}
