//! The file's tables as written, and how one `[[tenant]]` table becomes a [`Tenant`].

use super::credential_table::CredentialConfig;
use super::invalid;
use crate::limits::Limits;
use crate::outbound::ApiOrigin;
use crate::rate_limit::{Api, ApiBudgets, Budget};
use crate::tenants::Cloud;
use crate::tenants::Tenant;
use crate::transport::{Network, Proxy, TrustedRoots};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::ConfigError;

/// The whole file as written: its `[[tenant]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTables {
    #[serde(default, rename = "tenant")]
    pub tenants: Vec<TenantConfig>,
}

/// One `[[tenant]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct TenantConfig {
    pub name: String,
    pub cloud: Cloud,
    pub tenant_id: Option<String>,
    /// Only for the `custom` cloud.
    pub api_url: Option<String>,
    /// Only for the `custom` cloud.
    pub authority: Option<String>,
    pub scope: Option<String>,
    /// `none`, `environment`, or `http://[user:password@]host:port`.
    pub proxy: Option<String>,
    /// PEM roots trusted besides the system's.
    pub ca_file: Option<PathBuf>,
    /// How many of the tenant's invocations run at once.
    pub max_concurrent_invocations: Option<usize>,
    /// How many of the tenant's requests are in flight at once.
    pub max_requests_in_flight: Option<usize>,
    pub credential: CredentialConfig,
    #[serde(default)]
    pub budget: Option<BudgetConfig>,
    #[serde(default)]
    pub limits: Option<LimitsConfig>,
}

/// `[tenant.budget]`: `per-minute` and `per-hour` for each API (by default the API's own, 100
/// and 1500), and optionally an API's own, e.g. `[tenant.budget.list-actions]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct BudgetConfig {
    per_minute: Option<u32>,
    per_hour: Option<u32>,
    create_action: Option<ApiBudgetConfig>,
    get_action: Option<ApiBudgetConfig>,
    list_actions: Option<ApiBudgetConfig>,
    cancel_action: Option<ApiBudgetConfig>,
    file_machines: Option<ApiBudgetConfig>,
}

/// `[tenant.budget.<api>]`: what it leaves out is the tenant's `[tenant.budget]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct ApiBudgetConfig {
    per_minute: Option<u32>,
    per_hour: Option<u32>,
}

/// A tenant's budget for each API, in [`Api::ALL`]'s order.
pub(super) type Budgets = [Budget; 5];

impl BudgetConfig {
    /// Each API's budget, or the setting that is zero (a budget of nothing would refuse every
    /// call for ever).
    fn resolve(&self) -> Result<Budgets, &'static str> {
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

/// `[tenant.limits]`: any subset; the rest keep their defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct LimitsConfig {
    cpu_ms: Option<u64>,
    memory_mib: Option<usize>,
    wall_clock_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
    io_timeout_secs: Option<u64>,
    max_requests: Option<u32>,
    max_response_bytes: Option<u64>,
    max_retry_after_secs: Option<u64>,
}

/// Where a tenant signs in: the token endpoint's authority and the scope asked for.
pub(super) struct SignInPlace {
    pub authority: ApiOrigin,
    pub scope: String,
}

impl TenantConfig {
    pub fn resolve(&self, base: &Path) -> Result<Tenant, ConfigError> {
        let name = &self.name;
        let custom = self.cloud == Cloud::Custom;
        for (setting, value) in [("api-url", &self.api_url), ("authority", &self.authority)] {
            if value.is_some() && !custom {
                return Err(invalid(
                    name,
                    setting,
                    format!(
                        "only cloud = \"custom\" may set it; the {} cloud's is fixed",
                        self.cloud
                    ),
                ));
            }
        }
        let api_url = match (&self.api_url, self.cloud.api_base()) {
            (Some(url), _) => url.as_str(),
            (None, Some(url)) => url,
            (None, None) => {
                return Err(invalid(
                    name,
                    "api-url",
                    "required for the custom cloud".into(),
                ));
            }
        };
        let origin =
            ApiOrigin::parse(api_url).map_err(|e| invalid(name, "api-url", e.to_string()))?;
        let network = self.network(base)?;
        let tokens = self.credential.token_source(self, base)?;
        let each: Vec<(Api, Budget)> = Api::ALL.into_iter().zip(self.budgets()?).collect();
        let budgets = Arc::new(ApiBudgets::with_overrides(Budget::default(), &each));
        let mut tenant = Tenant::new(origin, tokens).with_budgets(budgets);
        // A count of things at once: at least one, at most what a runtime can run.
        let cap = |setting: &'static str, value: Option<usize>| match value {
            Some(max) if max == 0 || max > crate::MAX_IN_FLIGHT => Err(invalid(
                name,
                setting,
                format!("must be from 1 to {}", crate::MAX_IN_FLIGHT),
            )),
            other => Ok(other),
        };
        if let Some(max) = cap(
            "max-concurrent-invocations",
            self.max_concurrent_invocations,
        )? {
            tenant = tenant.with_max_concurrent_invocations(max);
        }
        if let Some(max) = cap("max-requests-in-flight", self.max_requests_in_flight)? {
            tenant = tenant.with_max_requests_in_flight(max);
        }
        tenant.limits = match &self.limits {
            Some(table) => Some(
                table
                    .apply()
                    .map_err(|(setting, why)| invalid(name, setting, why))?,
            ),
            None => None,
        };
        tenant.network = network;
        Ok(tenant)
    }

    /// The tenant's budget for each API: `[tenant.budget]`, or the API's own.
    pub fn budgets(&self) -> Result<Budgets, ConfigError> {
        let resolved = match &self.budget {
            Some(config) => config.resolve(),
            None => BudgetConfig::default().resolve(),
        };
        resolved.map_err(|setting| {
            invalid(
                &self.name,
                setting,
                "must be at least 1: a budget of nothing refuses every call".into(),
            )
        })
    }

    /// The application this tenant signs in as, and to which directory, in lower case (as
    /// written: a directory named by its domain and by its ID are two): the API counts its
    /// budgets per application and tenant. A user-assigned managed identity is known by its
    /// client ID alone. `None` for a stored token or a system-assigned identity, whose
    /// application the file does not name.
    pub fn application(&self) -> Option<(String, String)> {
        let client_id = self.credential.client_id()?.to_ascii_lowercase();
        if self.credential.is_managed_identity() {
            return Some(("managed identity".into(), client_id));
        }
        let tenant_id = self
            .tenant_id
            .clone()
            .or_else(|| self.credential.tenant_id_from_environment())?;
        Some((tenant_id.to_ascii_lowercase(), client_id))
    }

    fn network(&self, base: &Path) -> Result<Network, ConfigError> {
        let proxy = match &self.proxy {
            Some(text) => {
                Some(Proxy::parse(text).map_err(|e| invalid(&self.name, "proxy", e.to_string()))?)
            }
            None => None,
        };
        let extra_roots = match &self.ca_file {
            Some(path) => TrustedRoots::from_pem_file(&base.join(path))
                .map_err(|e| invalid(&self.name, "ca-file", e.to_string()))?,
            None => TrustedRoots::default(),
        };
        Ok(Network { proxy, extra_roots })
    }

    /// The authority and scope of a credential that signs in: the cloud's, or for the custom
    /// cloud, the ones it must name.
    pub fn sign_in_place(&self) -> Result<SignInPlace, ConfigError> {
        let name = &self.name;
        let authority = match (&self.authority, self.cloud.authority()) {
            (Some(url), _) => url.as_str(),
            (None, Some(url)) => url,
            (None, None) => {
                return Err(invalid(
                    name,
                    "authority",
                    "required for the custom cloud".into(),
                ));
            }
        };
        let authority =
            ApiOrigin::parse(authority).map_err(|e| invalid(name, "authority", e.to_string()))?;
        let scope = match (&self.scope, self.cloud.default_scope()) {
            (Some(scope), _) => scope.clone(),
            (None, Some(scope)) => scope,
            (None, None) => {
                return Err(invalid(
                    name,
                    "scope",
                    "required for the custom cloud: name the resource's .default scope".into(),
                ));
            }
        };
        if !scope.ends_with("/.default") {
            return Err(invalid(
                name,
                "scope",
                "an application's scope ends with /.default".into(),
            ));
        }
        Ok(SignInPlace { authority, scope })
    }

    /// The directory (tenant) ID to sign in to: the table's, else `fallback` (an environment
    /// variable's value, for workload identity).
    pub fn tenant_id(&self, fallback: Option<String>) -> Result<String, ConfigError> {
        self.tenant_id
            .clone()
            .or(fallback)
            .filter(|id| {
                !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
            })
            .ok_or_else(|| {
                invalid(
                    &self.name,
                    "tenant-id",
                    "signing in needs the tenant's directory ID (letters, digits, - and .)".into(),
                )
            })
    }
}

/// The largest value each duration setting takes: a day, beyond which a typo is likelier than
/// a need, and arithmetic on instants could overflow.
const MAX_SECS: u64 = 24 * 60 * 60;

impl LimitsConfig {
    /// The limits the table sets over the defaults, or the first setting out of its range.
    fn apply(&self) -> Result<Limits, (&'static str, String)> {
        let mut limits = Limits::default();
        let secs = |setting: &'static str, value: Option<u64>| match value {
            Some(s) if s > MAX_SECS => {
                Err((setting, format!("{s} is more than a day ({MAX_SECS})")))
            }
            Some(s) => Ok(Some(Duration::from_secs(s))),
            None => Ok(None),
        };
        if let Some(ms) = self.cpu_ms {
            secs("limits.cpu-ms", Some(ms / 1000))?;
            limits.cpu = Duration::from_millis(ms);
        }
        if let Some(mib) = self.memory_mib {
            // The pool's memory slots hold at most this much, whatever a tenant asks.
            let most = crate::runtime::MOST_MEMORY / (1024 * 1024);
            if mib == 0 || mib > most {
                return Err(("limits.memory-mib", format!("must be from 1 to {most}")));
            }
            limits.memory_bytes = mib.saturating_mul(1024 * 1024);
        }
        if let Some(d) = secs("limits.wall-clock-secs", self.wall_clock_secs)? {
            limits.wall_clock = d;
        }
        if let Some(d) = secs("limits.connect-timeout-secs", self.connect_timeout_secs)? {
            limits.connect_timeout = d;
        }
        if let Some(d) = secs("limits.io-timeout-secs", self.io_timeout_secs)? {
            limits.io_timeout = d;
        }
        if let Some(d) = secs("limits.max-retry-after-secs", self.max_retry_after_secs)? {
            limits.max_retry_after = d;
        }
        if let Some(n) = self.max_requests {
            limits.max_requests = n;
        }
        if let Some(n) = self.max_response_bytes {
            limits.max_response_bytes = n;
        }
        Ok(limits)
    }
}
