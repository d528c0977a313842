//! The file's tables as written, and how one `[[tenant]]` table becomes a [`Tenant`].

use super::budget_table::{BudgetConfig, Budgets};
use super::credential_table::CredentialConfig;
use super::invalid;
use crate::limits::Limits;
use crate::outbound::ApiOrigin;
use crate::tenants::Cloud;
use crate::tenants::Tenant;
use crate::transport::{Network, Proxy, TrustedRoots};
use serde::Deserialize;
use std::path::{Path, PathBuf};
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
        let budgets = self
            .budget_config()
            .source(name, self.budgets()?, self.application())?;
        let mut tenant = Tenant::new(origin, tokens)
            .with_name(name)
            .with_budgets(budgets);
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
        let resolved = self.budget_config().resolve();
        resolved.map_err(|setting| {
            invalid(
                &self.name,
                setting,
                "must be at least 1: a budget of nothing refuses every call".into(),
            )
        })
    }

    /// `[tenant.budget]`, or the defaults when the tenant has none.
    pub fn budget_config(&self) -> &BudgetConfig {
        static DEFAULT: BudgetConfig = BudgetConfig::DEFAULT;
        self.budget.as_ref().unwrap_or(&DEFAULT)
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
