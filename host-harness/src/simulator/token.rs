//! The sign-in side: `POST /{tenant}/oauth2/v2.0/token` with client credentials (a secret or a
//! certificate's signed assertion), checked field by field, issuing tokens that expire.

use super::reply;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How an application registered in the simulated directory proves itself.
#[derive(Debug, Clone)]
pub enum ClientProof {
    /// A client secret.
    Secret(String),
    /// A certificate: its SHA-1 thumbprint (base64url, `x5t`) and RSA public key (DER).
    Certificate {
        /// `x5t`.
        thumbprint: String,
        /// `RSAPublicKey` DER.
        public_key: Vec<u8>,
    },
}

/// The simulated directory: registered applications and the tokens issued to them.
#[derive(Default)]
pub struct Directory {
    clients: HashMap<(String, String), ClientProof>,
    issued: Vec<(String, Instant)>,
    lifetime: Option<Duration>,
}

const DEFAULT_LIFETIME: Duration = Duration::from_secs(3599);

impl Directory {
    /// Registers `client_id` in `tenant_id`.
    pub fn register(&mut self, tenant_id: &str, client_id: &str, proof: ClientProof) {
        self.clients
            .insert((tenant_id.to_owned(), client_id.to_owned()), proof);
    }

    /// How long issued tokens last.
    pub fn set_lifetime(&mut self, lifetime: Duration) {
        self.lifetime = Some(lifetime);
    }

    /// Whether `token` was issued and has not expired.
    pub fn accepts(&self, token: &str) -> bool {
        let now = Instant::now();
        self.issued
            .iter()
            .any(|(t, until)| t == token && *until > now)
    }

    /// Answers a token request for `tenant_id` at `url` (the assertion's expected audience).
    pub fn token(&mut self, tenant_id: &str, url: &str, form: &[u8]) -> Response<Full<Bytes>> {
        let fields: HashMap<String, String> = form_urlencoded::parse(form).into_owned().collect();
        let field = |name: &str| fields.get(name).map(String::as_str);
        if field("grant_type") != Some("client_credentials") {
            return error(
                400,
                "unsupported_grant_type",
                "AADSTS70003: grant_type must be client_credentials",
            );
        }
        let Some(scope) = field("scope").filter(|s| s.ends_with("/.default")) else {
            return error(
                400,
                "invalid_scope",
                "AADSTS70011: scope must end with /.default",
            );
        };
        let Some(client_id) = field("client_id") else {
            return error(
                400,
                "invalid_request",
                "AADSTS900144: client_id is required",
            );
        };
        let Some(proof) = self
            .clients
            .get(&(tenant_id.to_owned(), client_id.to_owned()))
        else {
            return error(
                400,
                "unauthorized_client",
                "AADSTS700016: application not found in the directory",
            );
        };
        let proven = match proof {
            ClientProof::Secret(secret) => field("client_secret") == Some(secret.as_str()),
            ClientProof::Certificate {
                thumbprint,
                public_key,
            } => {
                field("client_assertion_type")
                    == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
                    && field("client_assertion").is_some_and(|jwt| {
                        assertion_is_valid(jwt, client_id, url, thumbprint, public_key)
                    })
            }
        };
        if !proven {
            return error(
                401,
                "invalid_client",
                "AADSTS7000215: invalid client credentials",
            );
        }
        let lifetime = self.lifetime.unwrap_or(DEFAULT_LIFETIME);
        let mut bytes = [0u8; 24];
        let _ = getrandom::fill(&mut bytes);
        let token = format!("sim.{}.{}", URL_SAFE_NO_PAD.encode(bytes), scope.len());
        self.issued.push((token.clone(), Instant::now() + lifetime));
        let body = json!({
            "token_type": "Bearer",
            "expires_in": lifetime.as_secs(),
            "ext_expires_in": lifetime.as_secs(),
            "access_token": token,
        });
        reply::json_response(200, &body.to_string())
    }
}

/// Checks an RS256 client assertion: header, thumbprint, audience, issuer, subject, expiry
/// and signature.
fn assertion_is_valid(
    jwt: &str,
    client_id: &str,
    audience: &str,
    thumbprint: &str,
    key: &[u8],
) -> bool {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return false;
    };
    let decode = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (Some(h), Some(c), Ok(sig)) = (
        decode(header),
        decode(claims),
        URL_SAFE_NO_PAD.decode(signature),
    ) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let signed = format!("{header}.{claims}");
    h["alg"] == "RS256"
        && h["x5t"] == thumbprint
        && c["aud"] == audience
        && c["iss"] == client_id
        && c["sub"] == client_id
        && c["exp"].as_u64().is_some_and(|exp| exp > now)
        && c["jti"].is_string()
        && UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key)
            .verify(signed.as_bytes(), &sig)
            .is_ok()
}

fn error(status: u16, code: &str, description: &str) -> Response<Full<Bytes>> {
    let body = json!({"error": code, "error_description": description});
    reply::json_response(status, &body.to_string())
}
