//! Entra ID's v2.0 token endpoint, `POST /{tenant}/oauth2/v2.0/token`, for the client
//! credentials grant, as strict as Microsoft's pages describe it:
//! - the body is `application/x-www-form-urlencoded` with exactly the parameters of the grant
//!   ("OAuth 2.0 client credentials flow", learn.microsoft.com/entra/identity-platform/
//!   v2-oauth2-client-creds-grant-flow): `client_id`, `scope` (ending in `/.default`),
//!   `grant_type=client_credentials`, and either `client_secret` or `client_assertion_type` +
//!   `client_assertion`; each once (RFC 6749 §3.2). Entra ignores parameters it does not know;
//!   the simulator refuses them, to catch a client that sends what it should not;
//! - a certificate's assertion ("Microsoft identity platform application authentication
//!   certificate credentials", learn.microsoft.com/entra/identity-platform/
//!   certificate-credentials) is checked whole: `alg` PS256 or RS256, `x5t#S256` (or `x5t`)
//!   naming the registered certificate, the signature, `aud` = this exact token URL,
//!   `iss` = `sub` = the client ID, a `jti` never used before, `nbf` not in the future, and
//!   `exp` in the future but at most ten minutes away (the page asks for "5-10 minutes after
//!   `nbf` at most" and says Entra does not enforce it yet; the simulator does);
//! - a federated token (workload identity federation, learn.microsoft.com/entra/workload-id/
//!   workload-identity-federation) must come from the registered issuer and subject, for the
//!   audience `api://AzureADTokenExchange`, signed by the issuer's key.
//!
//! Errors carry Entra's shape: `error`, `error_description` starting with an `AADSTS` code,
//! `error_codes`, `timestamp`, `trace_id`, `correlation_id`.

use super::answers;
use super::directory::{ClientProof, Directory};
use super::jwt::Jwt;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::json;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The audience of a federated token exchanged with Entra.
const EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";
/// The longest an assertion may live.
const MAX_ASSERTION_LIFETIME_SECS: u64 = 600;
/// Clock skew allowed between the client and the directory.
const SKEW_SECS: u64 = 60;

/// Answers a token request for `tenant_id`; `url` is this endpoint's own URL, the audience
/// assertions must name.
pub fn token(
    directory: &mut Directory,
    tenant_id: &str,
    url: &str,
    content_type: Option<&str>,
    form: &[u8],
) -> Response<Full<Bytes>> {
    let is_form = content_type.is_some_and(|ct| {
        ct.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !is_form {
        return missing("grant_type");
    }
    let mut fields: HashMap<String, String> = HashMap::new();
    for (name, value) in form_urlencoded::parse(form) {
        if fields
            .insert(name.to_string(), value.into_owned())
            .is_some()
        {
            return error(
                400,
                "invalid_request",
                900144,
                &format!("The request body repeats the parameter '{name}'."),
            );
        }
    }
    let field = |name: &str| {
        fields
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    for required in ["grant_type", "client_id", "scope"] {
        if field(required).is_none() {
            return missing(required);
        }
    }
    if field("grant_type") != Some("client_credentials") {
        return error(
            400,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let secret = field("client_secret");
    let assertion = (field("client_assertion_type"), field("client_assertion"));
    let expected: &[&str] = match (secret, assertion) {
        (Some(_), (None, None)) => &["grant_type", "client_id", "scope", "client_secret"],
        (None, (Some(JWT_BEARER), Some(_))) => &[
            "grant_type",
            "client_id",
            "scope",
            "client_assertion_type",
            "client_assertion",
        ],
        (None, (Some(_), Some(_))) => {
            return error(
                400,
                "invalid_request",
                7000216,
                "'client_assertion_type' must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            );
        }
        (None, (None, _) | (_, None)) => return missing("client_assertion"),
        (Some(_), _) => {
            return error(
                400,
                "invalid_request",
                900144,
                "Give either client_secret or client_assertion, not both.",
            );
        }
    };
    if let Some(extra) = fields.keys().find(|k| !expected.contains(&k.as_str())) {
        return error(
            400,
            "invalid_request",
            900144,
            &format!("(simulator: stricter than Entra) unexpected parameter '{extra}'."),
        );
    }
    let client_id = field("client_id").unwrap_or_default();
    let scope = field("scope").unwrap_or_default();
    if !scope.ends_with("/.default") {
        return error(
            400,
            "invalid_scope",
            1002012,
            &format!(
                "The provided value for scope {scope} is not valid. Client credential flows must \
                 have a scope value with /.default suffixed to the resource identifier."
            ),
        );
    }
    let Some(proof) = directory.proof(tenant_id, client_id).cloned() else {
        return error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "Application with identifier '{client_id}' was not found in the directory \
                 '{tenant_id}'."
            ),
        );
    };
    let refusal = match (&proof, secret, assertion.1) {
        (ClientProof::Secret(expected), Some(given), _) if given == expected => None,
        (ClientProof::Secret(_), Some(_), _) => Some((7000215, "Invalid client secret provided.")),
        (ClientProof::Certificate { .. }, _, Some(jwt)) => {
            certificate_assertion(directory, &proof, jwt, client_id, url)
        }
        (ClientProof::Federated { .. }, _, Some(jwt)) => federated_token(&proof, jwt),
        _ => Some((
            7000218,
            "The request body must contain the credential the application was registered with.",
        )),
    };
    if let Some((code, description)) = refusal {
        return error(401, "invalid_client", code, description);
    }
    let token = directory.issue(&format!("{tenant_id}/{client_id}"), scope);
    let lifetime = directory.lifetime().as_secs();
    let body = json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    });
    answers::json_response(200, &body.to_string())
}

type Refusal = Option<(u32, &'static str)>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A certificate's client assertion, checked as the certificate credentials page describes it.
fn certificate_assertion(
    directory: &mut Directory,
    proof: &ClientProof,
    text: &str,
    client_id: &str,
    url: &str,
) -> Refusal {
    let ClientProof::Certificate {
        x5t,
        x5t_s256,
        public_key,
    } = proof
    else {
        return Some((700027, "Client assertion failed signature validation."));
    };
    let Some(jwt) = Jwt::parse(text) else {
        return Some((50027, "Invalid JWT token. The token is malformed."));
    };
    if jwt.algorithm().is_none() {
        return Some((
            5002738,
            "Invalid JWT token. The algorithm must be PS256 or RS256.",
        ));
    }
    let given = (jwt.header["x5t#S256"].as_str(), jwt.header["x5t"].as_str());
    let names_the_certificate = match given {
        (None, None) => false,
        (s256, sha1) => s256.is_none_or(|t| t == x5t_s256) && sha1.is_none_or(|t| t == x5t),
    };
    if !names_the_certificate {
        return Some((
            700027,
            "The certificate with identifier used to sign the client assertion is not \
             registered on application.",
        ));
    }
    if !jwt.signed_by(public_key) {
        return Some((700027, "Client assertion failed signature validation."));
    }
    if jwt.claim("aud") != Some(url) {
        return Some((
            700212,
            "No matching federated identity record found for presented assertion audience: \
             the aud claim must be the token endpoint's exact URL.",
        ));
    }
    if jwt.claim("iss") != Some(client_id) || jwt.claim("sub") != Some(client_id) {
        return Some((
            700023,
            "Client assertion audience claim does not match: iss and sub must be the client ID.",
        ));
    }
    times_and_jti(directory, &jwt, client_id, MAX_ASSERTION_LIFETIME_SECS)
}

/// `exp` ahead but at most `longest` away, `nbf` not ahead, and a `jti` never seen before.
fn times_and_jti(directory: &mut Directory, jwt: &Jwt, issuer: &str, longest: u64) -> Refusal {
    let now = now();
    let (Some(exp), Some(nbf)) = (jwt.time("exp"), jwt.time("nbf")) else {
        return Some((700024, "Client assertion is missing exp or nbf."));
    };
    if exp <= now || exp > now.saturating_add(longest).saturating_add(SKEW_SECS) {
        return Some((
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    if nbf > now.saturating_add(SKEW_SECS) {
        return Some((
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    let Some(jti) = jwt.claim("jti").filter(|j| !j.is_empty()) else {
        return Some((700025, "Client assertion is missing its jti claim."));
    };
    if !directory.first_use(issuer, jti) {
        return Some((
            700025,
            "Client assertion has been used before (jti replay).",
        ));
    }
    None
}

/// A federated token from the registered issuer about the registered subject.
fn federated_token(proof: &ClientProof, text: &str) -> Refusal {
    let ClientProof::Federated {
        issuer,
        subject,
        public_key,
    } = proof
    else {
        return Some((70021, "No matching federated identity record found."));
    };
    let Some(jwt) = Jwt::parse(text) else {
        return Some((50027, "Invalid JWT token. The token is malformed."));
    };
    if jwt.claim("iss") != Some(issuer) {
        return Some((
            700211,
            "No matching federated identity record found for presented assertion issuer.",
        ));
    }
    if jwt.claim("sub") != Some(subject) {
        return Some((
            70021,
            "No matching federated identity record found for presented assertion subject.",
        ));
    }
    let audience_matches = match &jwt.claims["aud"] {
        serde_json::Value::String(aud) => aud == EXCHANGE_AUDIENCE,
        serde_json::Value::Array(auds) => auds.iter().any(|a| a == EXCHANGE_AUDIENCE),
        _ => false,
    };
    if !audience_matches {
        return Some((
            700212,
            "No matching federated identity record found for presented assertion audience.",
        ));
    }
    if !jwt.signed_by(public_key) {
        return Some((700027, "Client assertion failed signature validation."));
    }
    // A projected service-account token is reused until the kubelet rotates it, so unlike a
    // certificate's assertion it may be presented many times; it must still be current.
    let now = now();
    let current = jwt.time("exp").is_some_and(|exp| exp > now)
        && jwt
            .time("nbf")
            .is_none_or(|nbf| nbf <= now.saturating_add(SKEW_SECS));
    if !current {
        return Some((
            700024,
            "Client assertion is not within its valid time range.",
        ));
    }
    None
}

fn missing(parameter: &str) -> Response<Full<Bytes>> {
    error(
        400,
        "invalid_request",
        900144,
        &format!("The request body must contain the following parameter: '{parameter}'."),
    )
}

/// An error in Entra's shape.
fn error(status: u16, code: &str, aadsts: u32, description: &str) -> Response<Full<Bytes>> {
    let trace = answers::correlation_id();
    let correlation = answers::correlation_id();
    // Entra's clock is the host's: the offset of `set_clock_offset` is the Defender API's.
    let timestamp = super::clock::Clock::default().written_now();
    let body = json!({
        "error": code,
        "error_description": format!(
            "AADSTS{aadsts}: {description} Trace ID: {trace} Correlation ID: {correlation} \
             Timestamp: {timestamp}"
        ),
        "error_codes": [aadsts],
        "timestamp": timestamp,
        "trace_id": trace,
        "correlation_id": correlation,
    });
    answers::json_response(status, &body.to_string())
}

#[cfg(test)]
mod tests;
