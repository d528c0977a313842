//! OAuth 2.0 client credentials against Entra ID: a client secret or a certificate, a token
//! cached per tenant until shortly before it expires, fetched once however many calls ask at
//! the same moment, and refreshed when the API refuses it.

use crate::certificate::ClientCertificate;
use crate::credentials::{CredentialError, SecretSource, TokenFuture, TokenSource};
use crate::secret::Secret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use wasmtime_wasi_http::RequestOptions;

/// How the application proves who it is.
#[derive(Clone)]
pub enum ClientAuth {
    /// `client_secret`, read from its source at each fetch.
    Secret(SecretSource),
    /// A signed JWT `client_assertion`, for tenants that forbid secrets.
    Certificate(Arc<ClientCertificate>),
}

/// An application registration in one tenant, and where to get its tokens.
#[derive(Clone)]
pub struct ClientCredentials {
    /// `{authority}/{tenant-id}/oauth2/v2.0/token`.
    pub token_url: String,
    /// The application (client) ID.
    pub client_id: String,
    /// The scope, e.g. `https://api.securitycenter.microsoft.com/.default`.
    pub scope: String,
    /// The proof.
    pub auth: ClientAuth,
}

/// Renew a token this long before it expires (or at half its life, if that is sooner).
const RENEW_BEFORE: Duration = Duration::from_secs(300);
/// The most of a token response read.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A [`TokenSource`] that fetches and caches tokens with client credentials.
pub struct OAuthTokens {
    client: ClientCredentials,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    token: Secret,
    renew_at: Instant,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
}

impl OAuthTokens {
    /// A token source for `client`.
    pub fn new(client: ClientCredentials) -> Self {
        Self {
            client,
            cached: Mutex::new(None),
        }
    }

    async fn get(&self, stale: Option<Secret>) -> Result<Secret, CredentialError> {
        // Held across the fetch: concurrent callers wait for the one fetch and share its token.
        let mut cached = self.cached.lock().await;
        if let Some(current) = cached.as_ref() {
            let refused = stale.as_ref() == Some(&current.token);
            if !refused && Instant::now() < current.renew_at {
                return Ok(current.token.clone());
            }
        }
        let (token, lifetime) = self.fetch().await?;
        let renew_at = Instant::now() + lifetime.saturating_sub(RENEW_BEFORE.min(lifetime / 2));
        *cached = Some(Cached {
            token: token.clone(),
            renew_at,
        });
        Ok(token)
    }

    /// The token request's form, which holds the secret or the assertion.
    fn form(&self) -> Result<Secret, CredentialError> {
        let client = &self.client;
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &client.client_id)
            .append_pair("scope", &client.scope);
        match &client.auth {
            ClientAuth::Secret(source) => {
                let secret = source.read()?;
                form.append_pair("client_secret", secret.expose());
            }
            ClientAuth::Certificate(certificate) => {
                let assertion = certificate.assertion(&client.client_id, &client.token_url)?;
                form.append_pair(
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                )
                .append_pair("client_assertion", assertion.expose());
            }
        }
        Ok(Secret::new(form.finish()))
    }

    async fn fetch(&self) -> Result<(Secret, Duration), CredentialError> {
        let body = self.form()?;
        let (status, response) = post_form(&self.client.token_url, body).await?;
        if status != 200 {
            let error: Option<ErrorResponse> = serde_json::from_slice(&response).ok();
            let (code, description) =
                error.map_or((None, None), |e| (e.error, e.error_description));
            return Err(CredentialError(format!(
                "the token endpoint answered {status}: {} {}",
                code.unwrap_or_default(),
                description.unwrap_or_default()
            )));
        }
        let parsed: TokenResponse = serde_json::from_slice(&response).map_err(|e| {
            CredentialError(format!("the token endpoint's answer is not a token ({e})"))
        })?;
        Ok((
            Secret::new(parsed.access_token),
            Duration::from_secs(parsed.expires_in),
        ))
    }
}

impl TokenSource for OAuthTokens {
    fn token(&self, stale: Option<Secret>) -> TokenFuture<'_> {
        Box::pin(self.get(stale))
    }
}

/// POSTs a form with the host's HTTP client (the same one that serves the component); the
/// body is a secret and never appears in errors.
async fn post_form(url: &str, body: Secret) -> Result<(u16, Vec<u8>), CredentialError> {
    let failed = |what: String| CredentialError(format!("requesting a token from {url}: {what}"));
    let request = http::Request::post(url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(
            Full::new(Bytes::from(body.expose().to_owned()))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .map_err(|e| failed(e.to_string()))?;
    let options = RequestOptions {
        connect_timeout: Some(Duration::from_secs(10)),
        first_byte_timeout: Some(Duration::from_secs(30)),
        between_bytes_timeout: Some(Duration::from_secs(30)),
    };
    let (response, io) = wasmtime_wasi_http::default_send_request(request, Some(options))
        .await
        .map_err(|e| failed(e.to_string()))?;
    tokio::spawn(io);
    let status = response.status().as_u16();
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| failed(e.to_string()))?
        .to_bytes();
    Ok((status, bytes.to_vec()))
}
