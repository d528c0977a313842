//! The tenants file (TOML): each tenant's cloud, API and sign-in URLs, credential, proxy and
//! trust settings, rate budgets (one per API, shared by the entries that sign in as the same
//! application to the same tenant) and limits, resolved into [`Tenant`]s the runtime can serve.
//! Everything is checked when the file is loaded, before anything is sent: unknown keys, files
//! that cannot be read or that other users can write, proxies and CA files that cannot be used.

mod budget_table;
mod credential_table;
mod parse_error;
mod tenant_table;

use crate::tenants::Tenant;
use crate::transport::Proxy;
use budget_table::{Budgets, Keeping};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tenant_table::FileTables;
use thiserror::Error;

/// The largest tenants file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A tenants file that cannot be used, naming the tenant and the setting. Never holds a secret.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {reason}")]
    Read {
        /// The tenants file.
        path: PathBuf,
        /// Why it could not be used.
        reason: String,
    },
    /// The file is not valid TOML for this format.
    #[error("{path}: {message}")]
    Parse {
        /// The tenants file the error is in.
        path: PathBuf,
        /// Where and what, without the offending line's text.
        message: String,
    },
    /// A tenant's settings do not make sense.
    #[error("{path}: tenant {tenant:?}: {setting}: {message}")]
    Invalid {
        /// The tenants file.
        path: PathBuf,
        /// The tenant's `name` in the file, escaped.
        tenant: String,
        /// The setting at fault.
        setting: &'static str,
        /// What is wrong, naming any file involved.
        message: String,
    },
    /// No tenant has that name.
    #[error("no tenant named {0:?} in the tenants file")]
    Unknown(String),
}

/// The tenants of a file, resolved.
pub struct TenantsFile {
    tenants: Vec<(String, Tenant)>,
}

impl TenantsFile {
    /// Reads and resolves a tenants file; relative paths in it are relative to the file.
    /// The file must be a regular file that no other user can write (it decides where tokens
    /// go and whom the host trusts).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read = |reason: String| ConfigError::Read {
            path: path.to_owned(),
            reason,
        };
        let bytes = crate::private_file::read(path, MAX_FILE_BYTES).map_err(read)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| read("not UTF-8 text".into()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let tenants = Self::parse(text, base).map_err(|error| error.in_file(path))?;
        let holds_proxy_credentials = tenants.iter().any(|(_, tenant)| {
            matches!(&tenant.network.proxy, Some(Proxy::Url(url)) if url.has_credentials())
        });
        if holds_proxy_credentials && readable_by_others(path) {
            return Err(read(
                "it holds a proxy's credentials and other users can read it; make it readable \
                 by its owner only (chmod go-rwx)"
                    .into(),
            ));
        }
        Ok(tenants)
    }

    /// Parses and resolves the text of a tenants file.
    pub fn parse(text: &str, base: &Path) -> Result<Self, ConfigError> {
        let file: FileTables = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::new(),
            message: parse_error::describe(&e, text),
        })?;
        let mut tenants: Vec<(String, Tenant)> = Vec::new();
        // The first tenant of each application, with its budgets (and where they are kept) as
        // written.
        let mut applications: HashMap<(String, String), (String, Budgets, Keeping, Tenant)> =
            HashMap::new();
        for config in file.tenants {
            if tenants.iter().any(|(name, _)| *name == config.name) {
                return Err(invalid(&config.name, "name", "appears twice".into()));
            }
            let mut tenant = config.resolve(base)?;
            if let Some(application) = config.application() {
                let budgets = config.budgets()?;
                let keeping = Keeping::of(config.budget_config());
                match applications.get(&application) {
                    Some((first, theirs, kept, _)) if *theirs != budgets || *kept != keeping => {
                        return Err(invalid(
                            &config.name,
                            "budget",
                            format!(
                                "signs in as the same application to the same tenant as \
                                 {first:?}, whose budgets the API counts as one: give both the \
                                 same [tenant.budget]"
                            ),
                        ));
                    }
                    Some((_, _, _, shared)) => {
                        tenant = tenant.with_budgets(shared.budgets.clone());
                    }
                    None => {
                        let first = (config.name.clone(), budgets, keeping, tenant.clone());
                        applications.insert(application, first);
                    }
                }
            }
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

impl ConfigError {
    fn in_file(self, file: &Path) -> Self {
        match self {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: file.to_owned(),
                message,
            },
            ConfigError::Invalid {
                tenant,
                setting,
                message,
                ..
            } => ConfigError::Invalid {
                path: file.to_owned(),
                tenant,
                setting,
                message,
            },
            other => other,
        }
    }
}

#[cfg(unix)]
fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
}

#[cfg(not(unix))]
fn readable_by_others(_path: &Path) -> bool {
    false
}

fn invalid(tenant: &str, setting: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid {
        path: PathBuf::from("the tenants file"),
        tenant: crate::escape::escape(tenant),
        setting,
        message: crate::escape::escape(&message),
    }
}

#[cfg(test)]
mod tests;
