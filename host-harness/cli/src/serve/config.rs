//! The serve config file (TOML): where to listen, the tenants file, the callers' API keys (as
//! SHA-256 hashes, each scoped to tenants), where jobs live, and where audit records go.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The largest config file read.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// The most API keys a config may hold.
const MAX_KEYS: usize = 10_000;

/// The config as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ConfigFile {
    listen: Option<SocketAddr>,
    tenants_file: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    #[serde(default)]
    jobs: JobsTable,
    #[serde(default)]
    audit: AuditTable,
    tls: Option<TlsTable>,
    #[serde(default, rename = "key")]
    keys: Vec<KeyTable>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct JobsTable {
    backend: Option<String>,
    redis_url: Option<String>,
    max: Option<usize>,
    max_running: Option<usize>,
    ttl_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct AuditTable {
    file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct TlsTable {
    cert_file: PathBuf,
    key_file: PathBuf,
    client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct KeyTable {
    name: String,
    sha256: String,
    tenants: Vec<String>,
    #[serde(default)]
    metrics: bool,
}

/// One caller's API key, known only by its hash.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Who the caller is, in audit records and logs.
    pub name: String,
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
    /// The tenants the key may act for (`*`: every tenant).
    pub tenants: Vec<String>,
    /// Whether the key may read `/metrics`.
    pub metrics: bool,
}

impl ApiKey {
    /// The key `secret`, known by its SHA-256 as a config holds it: for tools that make a
    /// config (benchmarks, tests).
    pub fn for_secret(name: &str, secret: &str, tenants: &[&str], metrics: bool) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
        let mut sha256 = [0u8; 32];
        sha256.copy_from_slice(digest.as_ref());
        Self {
            name: name.into(),
            sha256,
            tenants: tenants.iter().map(|t| (*t).to_owned()).collect(),
            metrics,
        }
    }

    /// Whether the key may act for `tenant`.
    pub fn allows(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == "*" || t == tenant)
    }
}

/// Where jobs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobsBackend {
    /// In this process only.
    Memory,
    /// In Redis, shared by every `serve` process that uses it.
    Redis(String),
}

/// The settings `serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The tenants file; `None`: one tenant, `simulator`, on an in-process simulator.
    pub tenants_file: Option<PathBuf>,
    /// The largest request body read.
    pub max_body_bytes: usize,
    /// Where jobs live.
    pub jobs: JobsBackend,
    /// The most jobs kept at once.
    pub max_jobs: usize,
    /// The most jobs this process runs at once; past it, new ones get 503.
    pub max_running: usize,
    /// How long a job (and an idempotency key) is kept.
    pub job_ttl: Duration,
    /// How long a shutdown waits for jobs in flight.
    pub shutdown_grace: Duration,
    /// Where audit records go: a file, or stdout (`-` or none).
    pub audit_file: Option<PathBuf>,
    /// The callers.
    pub keys: Vec<ApiKey>,
    /// Whether callers without a key are served (only on a loopback address).
    pub anonymous_loopback: bool,
    /// TLS, and mutual TLS with a client CA; `None`: plain HTTP.
    pub tls: Option<super::tls::TlsFiles>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tenants_file: None,
            max_body_bytes: 64 * 1024,
            jobs: JobsBackend::Memory,
            max_jobs: 10_000,
            max_running: 1000,
            job_ttl: Duration::from_secs(24 * 3600),
            shutdown_grace: Duration::from_secs(30),
            audit_file: None,
            keys: Vec::new(),
            anonymous_loopback: false,
            tls: None,
        }
    }
}

impl ServeConfig {
    /// Reads the config file at `path`; relative paths in it are relative to it.
    pub fn load(path: &Path) -> Result<Self> {
        let metadata =
            std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        if metadata.len() > MAX_CONFIG_BYTES {
            bail!("{} is larger than {MAX_CONFIG_BYTES} bytes", path.display());
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("in {}", path.display()))
    }

    /// Parses a config's text.
    pub fn parse(text: &str, base: &Path) -> Result<Self> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let mut config = Self::default();
        if let Some(listen) = file.listen {
            config.listen = listen;
        }
        config.tenants_file = file.tenants_file.map(|p| base.join(p));
        if let Some(bytes) = file.max_body_bytes {
            if !(1024..=16 * 1024 * 1024).contains(&bytes) {
                bail!("max-body-bytes: must be from 1024 to 16777216");
            }
            config.max_body_bytes = bytes;
        }
        config.jobs = match (file.jobs.backend.as_deref(), file.jobs.redis_url) {
            (None | Some("memory"), None) => JobsBackend::Memory,
            (Some("redis"), Some(url)) => JobsBackend::Redis(url),
            (Some("redis"), None) => bail!("jobs.redis-url: required with backend = \"redis\""),
            (None | Some("memory"), Some(_)) => {
                bail!("jobs.redis-url: only backend = \"redis\" uses it")
            }
            (Some(_), _) => bail!("jobs.backend: must be \"memory\" or \"redis\""),
        };
        if let Some(max) = file.jobs.max {
            if !(1..=1_000_000).contains(&max) {
                bail!("jobs.max: must be from 1 to 1000000");
            }
            config.max_jobs = max;
        }
        if let Some(max) = file.jobs.max_running {
            if !(1..=100_000).contains(&max) {
                bail!("jobs.max-running: must be from 1 to 100000");
            }
            config.max_running = max;
        }
        if let Some(secs) = file.jobs.ttl_secs {
            if !(60..=7 * 24 * 3600).contains(&secs) {
                bail!("jobs.ttl-secs: must be from 60 to 604800");
            }
            config.job_ttl = Duration::from_secs(secs);
        }
        if let Some(secs) = file.jobs.shutdown_grace_secs {
            if secs > 3600 {
                bail!("jobs.shutdown-grace-secs: must be at most 3600");
            }
            config.shutdown_grace = Duration::from_secs(secs);
        }
        config.audit_file = file
            .audit
            .file
            .filter(|p| p != Path::new("-"))
            .map(|p| base.join(p));
        config.tls = file.tls.map(|t| super::tls::TlsFiles {
            cert_file: base.join(t.cert_file),
            key_file: base.join(t.key_file),
            client_ca_file: t.client_ca_file.map(|p| base.join(p)),
        });
        if file.keys.len() > MAX_KEYS {
            bail!("key: at most {MAX_KEYS} keys");
        }
        for key in file.keys {
            config.keys.push(key.resolve()?);
        }
        Ok(config)
    }
}

impl KeyTable {
    fn resolve(self) -> Result<ApiKey> {
        let name = defender_host::escape::escape(&self.name);
        if name.is_empty() || name.len() > 128 {
            bail!("key.name: must be 1 to 128 characters");
        }
        let Some(sha256) = parse_sha256(&self.sha256) else {
            bail!(
                "key {name:?}: sha256 must be 64 hex characters (the SHA-256 of the key, e.g. from `sha256sum`)"
            );
        };
        if self.tenants.is_empty() {
            bail!("key {name:?}: tenants must name at least one tenant (or \"*\")");
        }
        Ok(ApiKey {
            name,
            sha256,
            tenants: self.tenants,
            metrics: self.metrics,
        })
    }
}

/// 64 hex characters as 32 bytes.
fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_whole_config_is_read() {
        let text = format!(
            "listen = \"127.0.0.1:9000\"\ntenants-file = \"t.toml\"\n[jobs]\nbackend = \"redis\"\n\
             redis-url = \"redis://127.0.0.1:6379/0\"\nmax = 50\nttl-secs = 600\n\
             [audit]\nfile = \"audit.jsonl\"\n[tls]\ncert-file = \"c.pem\"\nkey-file = \"k.pem\"\n\
             client-ca-file = \"ca.pem\"\n[[key]]\nname = \"tines\"\nsha256 = \"{HASH}\"\n\
             tenants = [\"contoso\"]\nmetrics = true\n"
        );
        let config = ServeConfig::parse(&text, Path::new("/etc/d")).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.tenants_file.unwrap(), Path::new("/etc/d/t.toml"));
        assert_eq!(
            config.jobs,
            JobsBackend::Redis("redis://127.0.0.1:6379/0".into())
        );
        assert_eq!((config.max_jobs, config.job_ttl.as_secs()), (50, 600));
        assert_eq!(config.audit_file.unwrap(), Path::new("/etc/d/audit.jsonl"));
        let key = &config.keys[0];
        assert!(key.allows("contoso") && !key.allows("fabrikam") && key.metrics);
        assert_eq!(key.sha256[0], 0x9f);
        let tls = config.tls.unwrap();
        assert_eq!(tls.client_ca_file.unwrap(), Path::new("/etc/d/ca.pem"));
    }

    #[test]
    fn bad_settings_are_named() {
        for (text, named) in [
            ("[jobs]\nbackend = \"redis\"", "jobs.redis-url"),
            ("[jobs]\nbackend = \"disk\"", "jobs.backend"),
            ("[jobs]\nmax = 0", "jobs.max"),
            ("max-body-bytes = 10", "max-body-bytes"),
            (
                "[[key]]\nname = \"a\"\nsha256 = \"xyz\"\ntenants = [\"t\"]",
                "sha256",
            ),
            (
                &format!("[[key]]\nname = \"a\"\nsha256 = \"{HASH}\"\ntenants = []"),
                "tenants",
            ),
            ("secret = 1", "unknown field"),
        ] {
            let error = format!(
                "{:#}",
                ServeConfig::parse(text, Path::new("/")).unwrap_err()
            );
            assert!(error.contains(named), "{text}: {error}");
        }
    }
}
