//! The simulated Entra ID directory: the applications and managed identities registered with
//! it, the assertion IDs already used, and the tokens it issued (which the API endpoints accept
//! until they expire).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How an application registered in the simulated directory proves itself.
#[derive(Debug, Clone)]
pub enum ClientProof {
    /// A client secret, compared as Entra compares it: exactly.
    Secret(String),
    /// A certificate: its thumbprints (base64url SHA-1 `x5t` and SHA-256 `x5t#S256`) and its
    /// RSA public key (DER `RSAPublicKey`).
    Certificate {
        /// `x5t`.
        x5t: String,
        /// `x5t#S256`.
        x5t_s256: String,
        /// `RSAPublicKey` DER.
        public_key: Vec<u8>,
    },
    /// A federated identity credential: tokens from `issuer` about `subject`, for the audience
    /// `api://AzureADTokenExchange`, signed by `public_key` (RS256), as a Kubernetes cluster's
    /// service-account issuer signs them.
    Federated {
        /// The `iss` the token must carry.
        issuer: String,
        /// The `sub` the token must carry, e.g. `system:serviceaccount:soar:mde`.
        subject: String,
        /// The issuer's `RSAPublicKey` DER.
        public_key: Vec<u8>,
    },
}

/// The Defender for Endpoint API's identifiers as a token's audience: the two Microsoft's pages
/// use ("Create an app to access Microsoft Defender for Endpoint without a user"), and the US
/// Government ones shipping integrations use. A token for any other resource (Graph, say) is
/// refused by the API, as the real one refuses it.
const DEFENDER_RESOURCES: [&str; 5] = [
    "https://api.securitycenter.microsoft.com",
    "https://securitycenter.onmicrosoft.com/windowsatpservice",
    "https://api-gcc.securitycenter.microsoft.us",
    "https://api-gov.securitycenter.microsoft.us",
    "https://securitycenter.onmicrosoft.us/windowsatpservice",
];

/// A scope (`…/.default`) or a resource, as the resource it names.
fn resource_of(audience: &str) -> String {
    audience
        .trim_end_matches("/.default")
        .trim_end_matches('/')
        .to_ascii_lowercase()
}

/// A managed identity the simulated metadata endpoints answer for.
#[derive(Debug, Clone, Default)]
pub struct ManagedIdentities {
    /// Whether a system-assigned identity exists.
    pub system_assigned: bool,
    /// The client IDs of the user-assigned identities.
    pub user_assigned: Vec<String>,
    /// The `X-IDENTITY-HEADER` value App Service's endpoint demands; `None` turns it off.
    pub app_service_header: Option<String>,
}

/// The directory's state.
#[derive(Default)]
pub struct Directory {
    clients: HashMap<(String, String), ClientProof>,
    pub(super) identities: ManagedIdentities,
    used_assertions: HashSet<String>,
    /// The tokens issued.
    issued: Vec<Issued>,
    lifetime: Option<Duration>,
}

/// A token the directory issued.
struct Issued {
    token: String,
    /// Whom it was issued to: `{tenant}/{client ID}`, or a managed identity's client ID.
    holder: String,
    /// Whether the API takes it (its audience is the API's).
    for_the_api: bool,
    until: Instant,
}

const DEFAULT_LIFETIME: Duration = Duration::from_secs(3599);

impl Directory {
    /// Registers `client_id` in `tenant_id`.
    pub fn register(&mut self, tenant_id: &str, client_id: &str, proof: ClientProof) {
        self.clients
            .insert((tenant_id.to_owned(), client_id.to_owned()), proof);
    }

    /// The proof `client_id` of `tenant_id` was registered with.
    pub fn proof(&self, tenant_id: &str, client_id: &str) -> Option<&ClientProof> {
        self.clients
            .get(&(tenant_id.to_owned(), client_id.to_owned()))
    }

    /// Records an assertion's `jti`; `false` if it was used before (a replay).
    pub fn first_use(&mut self, issuer: &str, jti: &str) -> bool {
        self.used_assertions.insert(format!("{issuer} {jti}"))
    }

    /// How long issued tokens last.
    pub fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = Some(lifetime);
    }

    /// How long issued tokens last.
    pub fn lifetime(&self) -> Duration {
        self.lifetime.unwrap_or(DEFAULT_LIFETIME)
    }

    /// Issues a new token for `audience` (a scope or a resource) to `holder` (the application:
    /// `{tenant}/{client ID}`, or a managed identity's client ID).
    pub fn issue(&mut self, holder: &str, audience: &str) -> String {
        let mut bytes = [0u8; 24];
        // A predictable simulated token is harmless: it opens only this simulator.
        let _ = getrandom::fill(&mut bytes);
        let token = format!("sim.{}.{}", URL_SAFE_NO_PAD.encode(bytes), audience.len());
        // A lifetime past any instant (a test's "for ever") is a century.
        let century = Duration::from_secs(100 * 365 * 24 * 60 * 60);
        let until = Instant::now()
            .checked_add(self.lifetime().min(century))
            .unwrap_or_else(Instant::now);
        let for_the_api = DEFENDER_RESOURCES.contains(&resource_of(audience).as_str());
        self.issued.push(Issued {
            token: token.clone(),
            holder: holder.to_owned(),
            for_the_api,
            until,
        });
        token
    }

    /// Whether `token` was issued for the API and has not expired.
    pub fn accepts(&self, token: &str) -> bool {
        self.holder(token).is_some()
    }

    /// Whom `token` was issued to, if it was issued for the API and has not expired: the
    /// caller whose rate budget its calls spend.
    pub fn holder(&self, token: &str) -> Option<&str> {
        let now = Instant::now();
        self.issued
            .iter()
            .find(|issued| issued.token == token && issued.for_the_api && issued.until > now)
            .map(|issued| issued.holder.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_takes_only_tokens_issued_for_it() {
        let mut directory = Directory::default();
        for audience in [
            "https://api.securitycenter.microsoft.com/.default",
            "https://securitycenter.onmicrosoft.com/windowsatpservice/.default",
            "https://API-GOV.securitycenter.microsoft.us/",
            "https://api-gcc.securitycenter.microsoft.us",
        ] {
            let token = directory.issue("t1/app-1", audience);
            assert!(directory.accepts(&token), "{audience}");
            assert_eq!(directory.holder(&token), Some("t1/app-1"));
        }
        let graph = directory.issue("t1/app-1", "https://graph.microsoft.com/.default");
        assert!(!directory.accepts(&graph));
        assert!(!directory.accepts("sim.never-issued"));
    }
}
