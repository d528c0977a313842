//! `[tenant.credential]`: which kind of credential a tenant uses, checked and turned into its
//! [`TokenSource`].

use super::tenant_table::TenantConfig;
use super::{ConfigError, invalid};
use crate::credentials::{
    CachedTokens, CertificateError, ClientAuth, ClientCertificate, ClientCredentials, IMDS_URL,
    IdentityEndpoint, ManagedIdentity, SecretSource, SigningAlgorithm, StoredToken, TokenSource,
};
use crate::outbound::{HostKind, host_kind};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `[tenant.credential]`, by `kind`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub(super) enum CredentialConfig {
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
    /// Client credentials with a certificate: `certificate-file` (PEM), `key-file` (PEM;
    /// defaults to the certificate file), `algorithm` (`PS256`, the default, or `RS256`).
    #[serde(rename_all = "kebab-case")]
    ClientCertificate {
        client_id: String,
        certificate_file: PathBuf,
        key_file: Option<PathBuf>,
        #[serde(default)]
        algorithm: SigningAlgorithm,
    },
    /// An Azure managed identity: system-assigned, or user-assigned with `client-id`.
    #[serde(rename_all = "kebab-case")]
    ManagedIdentity {
        client_id: Option<String>,
        /// `imds` or `app-service`; by default App Service's when `IDENTITY_ENDPOINT` is set.
        source: Option<IdentitySource>,
        /// The token endpoint, instead of IMDS's or `$IDENTITY_ENDPOINT`.
        endpoint: Option<String>,
        identity_header_env: Option<String>,
        identity_header_file: Option<PathBuf>,
    },
    /// Kubernetes workload identity federation: the projected service-account token exchanged
    /// as a client assertion.
    #[serde(rename_all = "kebab-case")]
    WorkloadIdentity {
        /// Defaults to `$AZURE_CLIENT_ID`.
        client_id: Option<String>,
        /// Defaults to `$AZURE_FEDERATED_TOKEN_FILE`.
        token_file: Option<PathBuf>,
    },
}

/// Which managed-identity endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(super) enum IdentitySource {
    Imds,
    AppService,
}

impl CredentialConfig {
    /// The application's client ID, where the credential names one (or workload identity's
    /// environment does).
    pub fn client_id(&self) -> Option<String> {
        match self {
            Self::Token { .. } => None,
            Self::ClientSecret { client_id, .. } | Self::ClientCertificate { client_id, .. } => {
                Some(client_id.clone())
            }
            Self::ManagedIdentity { client_id, .. } => client_id.clone(),
            Self::WorkloadIdentity { client_id, .. } => {
                client_id.clone().or_else(|| env("AZURE_CLIENT_ID"))
            }
        }
    }

    /// Whether this is an Azure managed identity.
    pub fn is_managed_identity(&self) -> bool {
        matches!(self, Self::ManagedIdentity { .. })
    }

    /// The directory ID the environment gives a credential that reads it (workload identity).
    pub fn tenant_id_from_environment(&self) -> Option<String> {
        match self {
            Self::WorkloadIdentity { .. } => env("AZURE_TENANT_ID"),
            _ => None,
        }
    }
}

fn env(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}

impl CredentialConfig {
    pub fn token_source(
        &self,
        tenant: &TenantConfig,
        base: &Path,
    ) -> Result<Arc<dyn TokenSource>, ConfigError> {
        let name = tenant.name.as_str();
        // A secret from `{setting}-env` or `{setting}-file`, the file checked now.
        let source =
            |env_var: &Option<String>,
             file: &Option<PathBuf>,
             (env_setting, file_setting): (&'static str, &'static str)| {
                match (env_var, file) {
                    (Some(var), None) => Ok(SecretSource::Env(var.clone())),
                    (None, Some(path)) => {
                        let source = SecretSource::File(base.join(path));
                        source
                            .check()
                            .map_err(|e| invalid(name, file_setting, e.0))?;
                        Ok(source)
                    }
                    _ => Err(invalid(
                        name,
                        env_setting,
                        format!("give exactly one of {env_setting} and {file_setting}"),
                    )),
                }
            };
        let (client_id, auth, tenant_id) = match self {
            Self::Token {
                token_env,
                token_file,
            } => {
                let source = source(
                    token_env,
                    token_file,
                    ("credential.token-env", "credential.token-file"),
                )?;
                return Ok(Arc::new(StoredToken::new(source)));
            }
            Self::ManagedIdentity {
                client_id,
                source: chosen,
                endpoint,
                identity_header_env,
                identity_header_file,
            } => {
                let place = tenant.sign_in_place()?;
                let app_service = match chosen {
                    Some(chosen) => *chosen == IdentitySource::AppService,
                    None => env("IDENTITY_ENDPOINT").is_some(),
                };
                let url = match (endpoint, app_service) {
                    (Some(url), _) => url.clone(),
                    (None, false) => IMDS_URL.to_owned(),
                    (None, true) => env("IDENTITY_ENDPOINT").ok_or_else(|| {
                        invalid(
                            name,
                            "credential.endpoint",
                            "App Service's endpoint comes from IDENTITY_ENDPOINT, which is not set"
                                .into(),
                        )
                    })?,
                };
                let url = identity_endpoint(&url)
                    .map_err(|why| invalid(name, "credential.endpoint", why))?;
                let proxied = tenant
                    .proxy
                    .as_deref()
                    .map(str::trim)
                    .is_some_and(|p| p != "none" && p != "environment");
                if app_service && proxied && url.starts_with("http:") {
                    return Err(invalid(
                        name,
                        "proxy",
                        "App Service's identity endpoint is plain http on this machine; through \
                         a proxy its X-IDENTITY-HEADER would travel in clear to the proxy's own \
                         machine: set proxy = \"none\" for this tenant"
                            .into(),
                    ));
                }
                let endpoint = if app_service {
                    let header = match (identity_header_env, identity_header_file) {
                        (None, None) => SecretSource::Env("IDENTITY_HEADER".into()),
                        (env_var, file) => source(
                            env_var,
                            file,
                            (
                                "credential.identity-header-env",
                                "credential.identity-header-file",
                            ),
                        )?,
                    };
                    IdentityEndpoint::AppService { url, header }
                } else {
                    if identity_header_env.is_some() || identity_header_file.is_some() {
                        return Err(invalid(
                            name,
                            "credential.identity-header-env",
                            "only App Service's endpoint takes an identity header".into(),
                        ));
                    }
                    IdentityEndpoint::Imds { url }
                };
                let resource = place.scope.trim_end_matches("/.default").to_owned();
                return Ok(Arc::new(CachedTokens::new(ManagedIdentity {
                    tenant: name.to_owned(),
                    endpoint,
                    resource,
                    client_id: client_id.clone(),
                })));
            }
            Self::ClientSecret {
                client_id,
                secret_env,
                secret_file,
            } => (
                client_id.clone(),
                ClientAuth::Secret(source(
                    secret_env,
                    secret_file,
                    ("credential.secret-env", "credential.secret-file"),
                )?),
                tenant.tenant_id(None)?,
            ),
            Self::ClientCertificate {
                client_id,
                certificate_file,
                key_file,
                algorithm,
            } => {
                let certificate = base.join(certificate_file);
                let key = key_file
                    .as_ref()
                    .map_or(certificate.clone(), |k| base.join(k));
                let read = |path: &Path, setting| {
                    crate::private_file::read(path, 64 * 1024)
                        .map_err(|why| invalid(name, setting, why))
                };
                let certificate_pem = read(&certificate, "credential.certificate-file")?;
                let key_pem = read(&key, "credential.key-file")?;
                let loaded = ClientCertificate::from_pem(&certificate_pem, &key_pem, *algorithm)
                    .map_err(|error| {
                        let (setting, file) = match error {
                            CertificateError::NoCertificate => {
                                ("credential.certificate-file", &certificate)
                            }
                            _ => ("credential.key-file", &key),
                        };
                        invalid(name, setting, format!("{}: {error}", file.display()))
                    })?;
                (
                    client_id.clone(),
                    ClientAuth::Certificate(Arc::new(loaded)),
                    tenant.tenant_id(None)?,
                )
            }
            Self::WorkloadIdentity {
                client_id,
                token_file,
            } => {
                let client_id = client_id
                    .clone()
                    .or_else(|| env("AZURE_CLIENT_ID"))
                    .ok_or_else(|| {
                        invalid(
                            name,
                            "credential.client-id",
                            "give it, or set AZURE_CLIENT_ID".into(),
                        )
                    })?;
                let token_file = token_file
                    .as_ref()
                    .map(|path| base.join(path))
                    .or_else(|| env("AZURE_FEDERATED_TOKEN_FILE").map(PathBuf::from))
                    .ok_or_else(|| {
                        invalid(
                            name,
                            "credential.token-file",
                            "give it, or set AZURE_FEDERATED_TOKEN_FILE".into(),
                        )
                    })?;
                SecretSource::File(token_file.clone())
                    .check()
                    .map_err(|e| invalid(name, "credential.token-file", e.0))?;
                authority_host_agrees(tenant)?;
                (
                    client_id,
                    ClientAuth::FederatedToken(token_file),
                    tenant.tenant_id(env("AZURE_TENANT_ID"))?,
                )
            }
        };
        let place = tenant.sign_in_place()?;
        Ok(Arc::new(CachedTokens::new(ClientCredentials {
            tenant: name.to_owned(),
            token_url: format!(
                "{}/{tenant_id}/oauth2/v2.0/token",
                place.authority.base_url()
            ),
            client_id,
            scope: place.scope,
            auth,
        })))
    }
}

/// `AZURE_AUTHORITY_HOST`, which the workload-identity webhook sets, must name the tenant's own
/// sign-in authority: a token meant for one cloud is never sent to another's.
fn authority_host_agrees(tenant: &TenantConfig) -> Result<(), ConfigError> {
    let Some(host) = env("AZURE_AUTHORITY_HOST") else {
        return Ok(());
    };
    let place = tenant.sign_in_place()?;
    let normalised = host.trim().trim_end_matches('/').to_ascii_lowercase();
    if normalised == place.authority.base_url() {
        return Ok(());
    }
    Err(invalid(
        &tenant.name,
        "authority",
        format!(
            "AZURE_AUTHORITY_HOST is {normalised} but the tenant signs in at {}",
            place.authority
        ),
    ))
}

/// A managed-identity endpoint: `https`, or plain `http` to a loopback or link-local address
/// (IMDS, App Service's local endpoint); no credentials or query in the URL.
fn identity_endpoint(url: &str) -> Result<String, String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("{} is not a URL", crate::escape::escape(url)))?;
    let authority = uri
        .authority()
        .filter(|a| !a.as_str().contains('@') && !a.host().is_empty())
        .ok_or_else(|| "the URL must name a host, without credentials".to_owned())?;
    if uri.query().is_some() {
        return Err("the URL must not carry a query".into());
    }
    let local = host_kind(authority.host()) != HostKind::Elsewhere;
    match uri.scheme_str() {
        Some("https") => Ok(url.to_owned()),
        Some("http") if local => Ok(url.to_owned()),
        Some("http") => {
            Err("plain http is allowed only to loopback or link-local addresses".into())
        }
        _ => Err("the URL must be http(s)".into()),
    }
}
