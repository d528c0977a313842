//! OAuth 2.0 client credentials against Entra ID's v2.0 token endpoint: the application proves
//! itself with a client secret, a certificate's signed assertion, or a federated token (a
//! Kubernetes service account's, for workload identity).

use super::certificate::ClientCertificate;
use super::sign_in::SignIn;
use super::{CredentialError, Fetch, FetchFuture, Fresh, Secret, SecretSource};
use crate::transport::HttpClient;
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;
use zeroize::Zeroizing;

/// `client_assertion_type` for a JWT assertion (RFC 7523).
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How the application proves who it is.
#[derive(Clone)]
pub enum ClientAuth {
    /// `client_secret`, read from its source at each fetch.
    Secret(SecretSource),
    /// A JWT `client_assertion` signed with the application's certificate.
    Certificate(Arc<ClientCertificate>),
    /// A federated token used as the `client_assertion` (Kubernetes workload identity), read
    /// from this file at each fetch: it rotates.
    FederatedToken(PathBuf),
}

/// An application registration in one tenant, and where to get its tokens.
#[derive(Clone)]
pub struct ClientCredentials {
    /// The tenant's name in the host's configuration, for messages.
    pub tenant: String,
    /// `{authority}/{tenant-id}/oauth2/v2.0/token`.
    pub token_url: String,
    /// The application (client) ID.
    pub client_id: String,
    /// The scope, e.g. `https://api.securitycenter.microsoft.com/.default`.
    pub scope: String,
    /// How the application proves who it is.
    pub auth: ClientAuth,
}

impl ClientCredentials {
    /// An error naming the tenant and the endpoint.
    fn failed(&self, error: CredentialError) -> CredentialError {
        CredentialError(format!(
            "tenant {:?}: token endpoint {}: {error}",
            self.tenant, self.token_url
        ))
    }

    /// The token request's form, and the value in it that must never be shown.
    fn form(&self) -> Result<(Zeroizing<String>, Secret), CredentialError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials")
            .append_pair("client_id", &self.client_id)
            .append_pair("scope", &self.scope);
        let proof = match &self.auth {
            ClientAuth::Secret(source) => {
                let secret = source.read().map_err(|e| self.failed(e))?;
                form.append_pair("client_secret", secret.expose());
                secret
            }
            ClientAuth::Certificate(certificate) => {
                let assertion = certificate
                    .assertion(&self.client_id, &self.token_url)
                    .map_err(|e| self.failed(e))?;
                form.append_pair("client_assertion_type", JWT_BEARER)
                    .append_pair("client_assertion", assertion.expose());
                assertion
            }
            ClientAuth::FederatedToken(path) => {
                let token = SecretSource::File(path.clone()).read().map_err(|e| {
                    self.failed(CredentialError(format!("the federated token: {e}")))
                })?;
                form.append_pair("client_assertion_type", JWT_BEARER)
                    .append_pair("client_assertion", token.expose());
                token
            }
        };
        Ok((Zeroizing::new(form.finish()), proof))
    }

    async fn fetch_token(&self, http: &HttpClient) -> Result<Fresh, CredentialError> {
        let (mut form, proof) = self.form()?;
        let sign_in = SignIn {
            tenant: &self.tenant,
            endpoint: &self.token_url,
            sensitive: &[proof.expose()],
        };
        let request = http::Request::post(&self.token_url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json")
            // The form holds the secret or assertion: its buffer is moved, not copied, into a
            // body that wipes it when hyper drops it.
            .body(Bytes::from_owner(Zeroizing::new(
                std::mem::take(&mut *form).into_bytes(),
            )))
            .map_err(|_| {
                CredentialError(format!(
                    "tenant {:?}: the token URL is not a valid URI",
                    self.tenant
                ))
            })?;
        sign_in.exchange(http, request).await
    }
}

impl Fetch for ClientCredentials {
    fn fetch<'a>(&'a self, http: &'a HttpClient) -> FetchFuture<'a> {
        Box::pin(self.fetch_token(http))
    }
}
