//! Reading and verifying a client assertion as Entra does: three base64url parts, a header
//! naming the algorithm (PS256 or RS256) and the certificate, claims, and an RSA signature over
//! the first two parts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::Value;

/// A JWT split and decoded, not yet trusted.
pub struct Jwt {
    pub header: Value,
    pub claims: Value,
    signed: String,
    signature: Vec<u8>,
}

impl Jwt {
    /// Splits and decodes `text`; `None` if it is not a JWS in compact form with JSON parts.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let decode = |part: &str| -> Option<Value> {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
        };
        Some(Self {
            header: decode(header)?,
            claims: decode(claims)?,
            signed: format!("{header}.{claims}"),
            signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
        })
    }

    /// The header's `alg`, if it is one Entra takes for client assertions.
    pub fn algorithm(&self) -> Option<&'static str> {
        match self.header["alg"].as_str()? {
            "PS256" => Some("PS256"),
            "RS256" => Some("RS256"),
            _ => None,
        }
    }

    /// Whether the signature verifies with the RSA `public_key` (DER `RSAPublicKey`) under the
    /// header's algorithm.
    pub fn signed_by(&self, public_key: &[u8]) -> bool {
        let algorithm = match self.algorithm() {
            Some("PS256") => &RSA_PSS_2048_8192_SHA256,
            Some("RS256") => &RSA_PKCS1_2048_8192_SHA256,
            _ => return false,
        };
        UnparsedPublicKey::new(algorithm, public_key)
            .verify(self.signed.as_bytes(), &self.signature)
            .is_ok()
    }

    /// A claim as a string.
    pub fn claim(&self, name: &str) -> Option<&str> {
        self.claims[name].as_str()
    }

    /// A claim as seconds since the epoch.
    pub fn time(&self, name: &str) -> Option<u64> {
        self.claims[name].as_u64()
    }
}
