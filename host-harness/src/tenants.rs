//! The tenants file (TOML): each tenant's cloud, API and sign-in URLs, credential source, rate
//! budget and limits, resolved into [`Tenant`]s the runtime can serve.

use crate::certificate::ClientCertificate;
use crate::cloud::Cloud;
use crate::credentials::{SecretSource, StoredToken, TokenSource};
use crate::limits::Limits;
use crate::oauth::{ClientAuth, ClientCredentials, OAuthTokens};
use crate::origin::ApiOrigin;
use crate::rate_limit::{Budget, RateLimiter};
use crate::tenant::Tenant;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// A tenants file that cannot be used, naming the tenant and the setting.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this format.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with the line.
        message: String,
    },
    /// A tenant's settings do not make sense.
    #[error("tenant {tenant:?}: {setting}: {message}")]
    Invalid {
        /// The tenant's name.
        tenant: String,
        /// The setting at fault.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No tenant has that name.
    #[error("no tenant named {0:?} in the tenants file")]
    Unknown(String),
}

/// The whole file: `[[tenant]]` tables.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantsFile {
    #[serde(default, rename = "tenant")]
    tenants: Vec<TenantConfig>,
}

/// One `[[tenant]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TenantConfig {
    name: String,
    cloud: Cloud,
    tenant_id: Option<String>,
    api_url: Option<String>,
    authority: Option<String>,
    scope: Option<String>,
    credential: CredentialConfig,
    #[serde(default)]
    budget: Option<BudgetConfig>,
    #[serde(default)]
    limits: Option<LimitsConfig>,
}

/// `[tenant.credential]`, by `kind`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum CredentialConfig {
    /// A bearer token from `token-env` or `token-file`.
    #[serde(rename_all = "kebab-case")]
    Token {
        token_env: Option<String>,
        token_file: Option<PathBuf>,
    },
    /// Client credentials with a secret from `secret-env` or `secret-file`.
    #[serde(rename_all = "kebab-case")]
    ClientSecret {
        client_id: String,
        secret_env: Option<String>,
        secret_file: Option<PathBuf>,
    },
    /// Client credentials with a certificate: `certificate-file` (PEM) and `key-file` (PEM;
    /// defaults to the certificate file).
    #[serde(rename_all = "kebab-case")]
    ClientCertificate {
        client_id: String,
        certificate_file: PathBuf,
        key_file: Option<PathBuf>,
    },
}

/// `[tenant.budget]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BudgetConfig {
    per_minute: u32,
    per_hour: u32,
}

/// `[tenant.limits]`: any subset; the rest keep their defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct LimitsConfig {
    cpu_ms: Option<u64>,
    memory_mib: Option<usize>,
    wall_clock_secs: Option<u64>,
    connect_timeout_secs: Option<u64>,
    io_timeout_secs: Option<u64>,
    max_requests: Option<u32>,
    max_response_bytes: Option<u64>,
}

/// The tenants of a file, resolved.
pub struct Tenants {
    tenants: Vec<(String, Tenant)>,
}

impl Tenants {
    /// Reads and resolves a tenants file; relative paths in it are relative to the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses and resolves the text of a tenants file.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let file: TenantsFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let mut tenants: Vec<(String, Tenant)> = Vec::new();
        for config in file.tenants {
            if tenants.iter().any(|(name, _)| *name == config.name) {
                return Err(invalid(&config.name, "name", "appears twice".into()));
            }
            let tenant = config.resolve(base)?;
            tenants.push((config.name, tenant));
        }
        Ok(Self { tenants })
    }

    /// The tenant called `name`.
    pub fn get(&self, name: &str) -> Result<&Tenant, ConfigError> {
        self.tenants
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| ConfigError::Unknown(name.to_owned()))
    }

    /// Every tenant, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Tenant)> {
        self.tenants.iter().map(|(n, t)| (n.as_str(), t))
    }
}

impl TenantConfig {
    fn resolve(&self, base: &Path) -> Result<Tenant, ConfigError> {
        let name = &self.name;
        let api_url = match (&self.api_url, self.cloud.api_base()) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => url.to_owned(),
            (None, None) => {
                return Err(invalid(
                    name,
                    "api-url",
                    "required for the custom cloud".into(),
                ));
            }
        };
        let origin =
            ApiOrigin::parse(&api_url).map_err(|e| invalid(name, "api-url", e.to_string()))?;
        let tokens = self.token_source(base)?;
        let budget = self.budget.as_ref().map_or(Budget::default(), |b| Budget {
            per_minute: b.per_minute,
            per_hour: b.per_hour,
        });
        Ok(Tenant {
            origin,
            tokens,
            limiter: Arc::new(RateLimiter::new(budget)),
            limits: self.limits.as_ref().map(LimitsConfig::apply),
        })
    }

    fn token_source(&self, base: &Path) -> Result<Arc<dyn TokenSource>, ConfigError> {
        let name = &self.name;
        let source = |env: &Option<String>, file: &Option<PathBuf>, setting| match (env, file) {
            (Some(var), None) => Ok(SecretSource::Env(var.clone())),
            (None, Some(path)) => Ok(SecretSource::File(base.join(path))),
            _ => Err(invalid(
                name,
                setting,
                "give exactly one of the -env and -file settings".into(),
            )),
        };
        let (client_id, auth) = match &self.credential {
            CredentialConfig::Token {
                token_env,
                token_file,
            } => {
                let source = source(token_env, token_file, "credential.token-env")?;
                return Ok(Arc::new(StoredToken::new(source)));
            }
            CredentialConfig::ClientSecret {
                client_id,
                secret_env,
                secret_file,
            } => (
                client_id,
                ClientAuth::Secret(source(secret_env, secret_file, "credential.secret-env")?),
            ),
            CredentialConfig::ClientCertificate {
                client_id,
                certificate_file,
                key_file,
            } => {
                let certificate = base.join(certificate_file);
                let key = key_file
                    .as_ref()
                    .map_or(certificate.clone(), |k| base.join(k));
                let loaded = ClientCertificate::from_pem_files(&certificate, &key)
                    .map_err(|e| invalid(name, "credential.certificate-file", e.to_string()))?;
                (client_id, ClientAuth::Certificate(Arc::new(loaded)))
            }
        };
        let tenant_id = self
            .tenant_id
            .as_deref()
            .filter(|id| {
                !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
            })
            .ok_or_else(|| {
                invalid(
                    name,
                    "tenant-id",
                    "client credentials need the tenant's ID".into(),
                )
            })?;
        let authority = match (&self.authority, self.cloud.authority()) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => url.to_owned(),
            (None, None) => {
                return Err(invalid(
                    name,
                    "authority",
                    "required for the custom cloud".into(),
                ));
            }
        };
        let authority_origin =
            ApiOrigin::parse(&authority).map_err(|e| invalid(name, "authority", e.to_string()))?;
        let scope = match (&self.scope, self.cloud.default_scope()) {
            (Some(scope), _) => scope.clone(),
            (None, Some(scope)) => scope,
            (None, None) => format!("{}/.default", self.api_url.as_deref().unwrap_or_default()),
        };
        Ok(Arc::new(OAuthTokens::new(ClientCredentials {
            token_url: format!(
                "{}/{tenant_id}/oauth2/v2.0/token",
                authority_origin.base_url()
            ),
            client_id: client_id.clone(),
            scope,
            auth,
        })))
    }
}

impl LimitsConfig {
    fn apply(&self) -> Limits {
        let mut limits = Limits::default();
        let secs = Duration::from_secs;
        if let Some(ms) = self.cpu_ms {
            limits.cpu = Duration::from_millis(ms);
        }
        if let Some(mib) = self.memory_mib {
            limits.memory_bytes = mib.saturating_mul(1024 * 1024);
        }
        if let Some(s) = self.wall_clock_secs {
            limits.wall_clock = secs(s);
        }
        if let Some(s) = self.connect_timeout_secs {
            limits.connect_timeout = secs(s);
        }
        if let Some(s) = self.io_timeout_secs {
            limits.io_timeout = secs(s);
        }
        if let Some(n) = self.max_requests {
            limits.max_requests = n;
        }
        if let Some(n) = self.max_response_bytes {
            limits.max_response_bytes = n;
        }
        limits
    }
}

fn invalid(tenant: &str, setting: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid {
        tenant: tenant.to_owned(),
        setting,
        message,
    }
}

#[cfg(test)]
mod tests;
