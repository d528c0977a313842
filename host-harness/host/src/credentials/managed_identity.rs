//! Azure managed identities: a host running on Azure gets tokens without holding any secret,
//! from the Instance Metadata Service (virtual machines, AKS nodes) or from App Service's and
//! Functions' local identity endpoint.

use super::sign_in::SignIn;
use super::{CredentialError, Fetch, FetchFuture, Fresh, SecretSource};
use crate::transport::HttpClient;
use bytes::Bytes;
use http::HeaderValue;
use zeroize::Zeroizing;

/// Azure IMDS's token endpoint.
pub const IMDS_URL: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The API version both endpoints are asked for.
const API_VERSION: &str = "2019-08-01";

/// Which endpoint issues the identity's tokens.
#[derive(Debug, Clone)]
pub enum IdentityEndpoint {
    /// Azure IMDS at `url` (normally [`IMDS_URL`]), asked with `Metadata: true`.
    Imds {
        /// The token endpoint.
        url: String,
    },
    /// App Service or Functions at `url` (normally `$IDENTITY_ENDPOINT`), asked with
    /// `X-IDENTITY-HEADER` set to the secret in `header` (normally `$IDENTITY_HEADER`).
    AppService {
        /// The token endpoint.
        url: String,
        /// Where the header's value is.
        header: SecretSource,
    },
}

/// A system-assigned identity, or a user-assigned one named by its client ID.
#[derive(Debug, Clone)]
pub struct ManagedIdentity {
    /// The tenant's name in the host's configuration, for messages.
    pub tenant: String,
    /// Where tokens come from.
    pub endpoint: IdentityEndpoint,
    /// The resource the token is for, e.g. `https://api.securitycenter.microsoft.com`.
    pub resource: String,
    /// A user-assigned identity's client ID; `None` for the system-assigned one.
    pub client_id: Option<String>,
}

impl ManagedIdentity {
    async fn fetch_token(&self, http: &HttpClient) -> Result<Fresh, CredentialError> {
        let failed = |what: &str| CredentialError(format!("tenant {:?}: {what}", self.tenant));
        let (url, header) = match &self.endpoint {
            IdentityEndpoint::Imds { url } => (url, None),
            IdentityEndpoint::AppService { url, header } => (url, Some(header.read()?)),
        };
        let query = {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query
                .append_pair("api-version", API_VERSION)
                .append_pair("resource", &self.resource);
            if let Some(client_id) = &self.client_id {
                query.append_pair("client_id", client_id);
            }
            query.finish()
        };
        let mut request = http::Request::get(format!("{url}?{query}"))
            .header(http::header::ACCEPT, "application/json");
        request = match &header {
            None => request.header("Metadata", "true"),
            Some(secret) => {
                let copy = Zeroizing::new(secret.expose().as_bytes().to_vec());
                let mut value = HeaderValue::from_maybe_shared(Bytes::from_owner(copy))
                    .map_err(|_| failed("the identity header is not a valid header value"))?;
                value.set_sensitive(true);
                request.header("X-IDENTITY-HEADER", value)
            }
        };
        let request = request
            .body(Bytes::new())
            .map_err(|_| failed("the managed-identity endpoint is not a valid URI"))?;
        let sensitive: Vec<&str> = header.iter().map(|s| s.expose()).collect();
        let sign_in = SignIn {
            tenant: &self.tenant,
            endpoint: url,
            sensitive: &sensitive,
        };
        sign_in.exchange(http, request).await
    }
}

impl Fetch for ManagedIdentity {
    fn fetch<'a>(&'a self, http: &'a HttpClient) -> FetchFuture<'a> {
        Box::pin(self.fetch_token(http))
    }
}
