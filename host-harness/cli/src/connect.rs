//! The connection options every acting command takes, and the runtime and tenant they give.

use crate::Console;
use anyhow::{Context, Result};
use clap::Args;
use defender_host::credentials::StoredToken;
use defender_host::outbound::ApiOrigin;
use defender_host::tenants::{Cloud, TenantsFile};
use defender_host::{COMPONENT, Runtime, Tenant};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args)]
pub struct Connection {
    /// The tenant's API base URL (default: the commercial cloud's); http is accepted only for
    /// 127.0.0.1, [::1] and localhost.
    #[arg(long)]
    api_url: Option<String>,
    /// The environment variable that holds the bearer token.
    #[arg(long, default_value = "MDE_TOKEN")]
    token_env: String,
    /// A tenants file (TOML): the tenant's cloud, credential, budget and limits come from it.
    #[arg(long, requires = "tenant", conflicts_with_all = ["api_url", "token_env"])]
    tenants: Option<PathBuf>,
    /// The tenant to act for, by its name in the tenants file.
    #[arg(long, requires = "tenants")]
    tenant: Option<String>,
    /// Run this component instead of the embedded one.
    #[arg(long)]
    component: Option<PathBuf>,
    /// Where precompiled code is kept (default: the user's cache directory).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

impl Connection {
    /// The runtime and tenant the options describe; `None` after reporting a bad `--api-url`
    /// or tenants file on stderr.
    pub fn open(self, console: &mut Console<'_>) -> Result<Option<(Runtime, Tenant)>> {
        let tenant = match (&self.tenants, &self.tenant) {
            (Some(path), Some(name)) => TenantsFile::load(path)
                .and_then(|t| t.get(name).cloned())
                .map_err(|error| format!("invalid --tenants: {error}")),
            _ => ApiOrigin::parse(
                self.api_url
                    .as_deref()
                    .or(Cloud::Commercial.api_base())
                    .unwrap_or_default(),
            )
            .map(|origin| Tenant::new(origin, Arc::new(StoredToken::env(&self.token_env))))
            .map_err(|error| format!("invalid --api-url: {error}")),
        };
        let tenant = match tenant {
            Ok(tenant) => tenant,
            Err(message) => {
                crate::output::diagnostic(console, &message)?;
                return Ok(None);
            }
        };
        let runtime = load(self.component.as_deref(), self.cache_dir, console)?;
        Ok(Some((runtime, tenant)))
    }
}

/// The runtime for the embedded component or the one at `component`, with precompiled code
/// kept in `cache_dir` (or the user's cache directory); a refused cache is a warning on stderr.
pub fn load(
    component: Option<&Path>,
    cache_dir: Option<PathBuf>,
    console: &mut Console<'_>,
) -> Result<Runtime> {
    let bytes = match component {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("reading the component {}", path.display()))?,
        None => COMPONENT.to_vec(),
    };
    let mut builder = Runtime::builder();
    if let Some(dir) = cache_dir.or_else(default_cache_dir) {
        builder = builder.cache_dir(dir);
    }
    let runtime = builder.build(&bytes)?;
    if let Some(warning) = runtime.cache_warning() {
        crate::output::diagnostic(console, &format!("warning: {warning}"))?;
    }
    Ok(runtime)
}

/// Where the cache lives by default: `$XDG_CACHE_HOME/host-harness`, else
/// `$HOME/.cache/host-harness`.
fn default_cache_dir() -> Option<PathBuf> {
    let from = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    from("XDG_CACHE_HOME")
        .or_else(|| from("HOME").map(|home| home.join(".cache")))
        .map(|dir| dir.join("host-harness"))
}
