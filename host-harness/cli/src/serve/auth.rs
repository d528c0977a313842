//! Who is calling: a bearer API key, hashed and compared in constant time with every key of
//! the config, or nobody on a loopback listener that allows it explicitly.

use super::config::ApiKey;
use super::problem::Problem;
use axum::http::{HeaderMap, StatusCode, header};
use subtle::ConstantTimeEq;

/// The longest `Authorization` header read.
const MAX_AUTHORIZATION_BYTES: usize = 4096;

/// A caller that proved who it is.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's name (`anonymous` on a loopback listener without keys).
    pub name: String,
    tenants: Vec<String>,
    metrics: bool,
}

impl Caller {
    /// Whether the caller may act for `tenant`.
    pub fn allows(&self, tenant: &str) -> bool {
        self.tenants.iter().any(|t| t == "*" || t == tenant)
    }

    /// Whether the caller may read `/metrics`.
    pub fn reads_metrics(&self) -> bool {
        self.metrics
    }
}

/// The callers a listener admits.
pub struct Gate {
    keys: Vec<ApiKey>,
    anonymous: bool,
}

impl Gate {
    /// `keys`, and callers without one when `anonymous` (only ever on loopback: `serve`
    /// refuses the flag on any other address).
    pub fn new(keys: Vec<ApiKey>, anonymous: bool) -> Self {
        Self { keys, anonymous }
    }

    /// The caller `headers` prove, or a 401 problem.
    pub fn admit(&self, headers: &HeaderMap) -> Result<Caller, Problem> {
        let presented = headers.get(header::AUTHORIZATION);
        let Some(value) = presented else {
            if self.anonymous {
                return Ok(Caller {
                    name: "anonymous".into(),
                    tenants: vec!["*".into()],
                    metrics: true,
                });
            }
            return Err(unauthorized(
                "an API key is required: Authorization: Bearer <key>",
            ));
        };
        let bytes = value.as_bytes();
        if bytes.len() > MAX_AUTHORIZATION_BYTES {
            return Err(unauthorized("the Authorization header is too long"));
        }
        let key = match bytes.split_first_chunk::<7>() {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
            _ => return Err(unauthorized("only Bearer API keys are accepted")),
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, key);
        // Every key is compared, each in constant time: the time taken says nothing of which
        // key, or how much of one, matched.
        let mut found: Option<&ApiKey> = None;
        for candidate in &self.keys {
            if bool::from(candidate.sha256.ct_eq(digest.as_ref())) {
                found = Some(candidate);
            }
        }
        match found {
            Some(key) => Ok(Caller {
                name: key.name.clone(),
                tenants: key.tenants.clone(),
                metrics: key.metrics,
            }),
            None => Err(unauthorized("the API key is not known")),
        }
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn key(name: &str, secret: &str, tenants: &[&str]) -> ApiKey {
        ApiKey::for_secret(name, secret, tenants, false)
    }

    fn with(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn a_known_key_is_its_caller_scoped_to_its_tenants() {
        let gate = Gate::new(
            vec![
                key("tines", "s3cret", &["contoso"]),
                key("xsoar", "other", &["*"]),
            ],
            false,
        );
        let caller = gate.admit(&with("Bearer s3cret")).unwrap();
        assert_eq!(caller.name, "tines");
        assert!(caller.allows("contoso") && !caller.allows("fabrikam") && !caller.reads_metrics());
        assert!(
            gate.admit(&with("bearer other"))
                .unwrap()
                .allows("fabrikam")
        );
    }

    #[test]
    fn anything_else_is_401_and_never_repeats_the_key() {
        let gate = Gate::new(vec![key("tines", "s3cret", &["contoso"])], false);
        for header in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic czNjcmV0",
            "s3cret",
            "Bearer ",
        ] {
            let problem = gate.admit(&with(header)).unwrap_err();
            assert_eq!(problem.status, 401, "{header}");
            assert!(!problem.detail.contains("s3cre"), "{}", problem.detail);
        }
        assert_eq!(gate.admit(&HeaderMap::new()).unwrap_err().status, 401);
        let long = format!("Bearer {}", "a".repeat(5000));
        assert_eq!(gate.admit(&with(&long)).unwrap_err().status, 401);
    }

    #[test]
    fn without_a_key_only_an_anonymous_gate_admits() {
        let open = Gate::new(Vec::new(), true);
        assert_eq!(open.admit(&HeaderMap::new()).unwrap().name, "anonymous");
        // A key presented is still checked.
        assert_eq!(open.admit(&with("Bearer guess")).unwrap_err().status, 401);
    }
}
