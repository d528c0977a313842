use super::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http_body_util::BodyExt;
use ring::digest::{SHA1_FOR_LEGACY_USE_ONLY, SHA256, digest};
use ring::signature::{KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

const CERTIFICATE: &[u8] = include_bytes!("../../../../tests/fixtures/client-cert.pem");
const KEY: &[u8] = include_bytes!("../../../../tests/fixtures/client-key.pem");
const URL: &str = "https://login.test/t1/oauth2/v2.0/token";

/// The fixture's key pair (the tests sign with it as the application would).
fn key_pair() -> RsaKeyPair {
    let Ok(PrivateKeyDer::Pkcs8(der)) = PrivateKeyDer::from_pem_slice(KEY) else {
        panic!("a PKCS#8 key");
    };
    RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap()
}

/// The fixture certificate's thumbprint under `algorithm`, base64url, as `x5t`/`x5t#S256`.
fn thumbprint(algorithm: &'static ring::digest::Algorithm) -> String {
    let der = CertificateDer::from_pem_slice(CERTIFICATE).unwrap();
    URL_SAFE_NO_PAD.encode(digest(algorithm, &der))
}

fn directory() -> Directory {
    let mut directory = Directory::default();
    directory.register(
        "t1",
        "app-1",
        ClientProof::Certificate {
            x5t: thumbprint(&SHA1_FOR_LEGACY_USE_ONLY),
            x5t_s256: thumbprint(&SHA256),
            public_key: key_pair().public_key().as_ref().to_vec(),
        },
    );
    directory
}

/// A JWT with this header and these claims, signed by the fixture key.
fn sign(header: Value, claims: Value) -> String {
    let pair = key_pair();
    let encoding: &'static dyn RsaEncoding = if header["alg"] == "RS256" {
        &RSA_PKCS1_SHA256
    } else {
        &RSA_PSS_SHA256
    };
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        encoding,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn good_claims() -> Value {
    json!({"aud": URL, "iss": "app-1", "sub": "app-1", "jti": "j-1",
           "nbf": now(), "iat": now(), "exp": now() + 600})
}

fn good_header() -> Value {
    json!({"alg": "PS256", "typ": "JWT", "x5t#S256": thumbprint(&SHA256)})
}

/// The status and AADSTS code of the endpoint's answer to `assertion`.
fn answer(directory: &mut Directory, assertion: &str) -> (u16, String) {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", "app-1")
        .append_pair("scope", "https://api.securitycenter.microsoft.com/.default")
        .append_pair("client_assertion_type", JWT_BEARER)
        .append_pair("client_assertion", assertion)
        .finish();
    let response = token(
        directory,
        "t1",
        URL,
        Some("application/x-www-form-urlencoded"),
        form.as_bytes(),
    );
    let status = response.status().as_u16();
    let body = futures_body(response);
    let code = body["error_codes"][0]
        .as_u64()
        .map_or(String::new(), |c| c.to_string());
    (status, code)
}

fn futures_body(response: Response<Full<Bytes>>) -> Value {
    let bytes = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(response.into_body().collect())
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn assertions_as_the_certificate_page_documents_them_are_accepted_in_both_algorithms() {
    let ps256 = sign(good_header(), good_claims());
    assert_eq!(answer(&mut directory(), &ps256).0, 200);
    let rs256 = json!({"alg": "RS256", "typ": "JWT", "x5t": thumbprint(&SHA1_FOR_LEGACY_USE_ONLY)});
    assert_eq!(answer(&mut directory(), &sign(rs256, good_claims())).0, 200);
}

#[test]
fn every_documented_claim_and_header_is_checked() {
    let thumbprint = thumbprint(&SHA256).to_owned();
    let with = |key: &str, value: Value| {
        let mut claims = good_claims();
        claims[key] = value;
        claims
    };
    let without = |key: &str| {
        let mut claims = good_claims();
        claims.as_object_mut().unwrap().remove(key);
        claims
    };
    let cases = [
        (
            good_header(),
            with("aud", json!("https://login.test/t1/oauth2/token")),
            "700212",
        ),
        (good_header(), with("iss", json!("app-2")), "700023"),
        (good_header(), with("sub", json!("app-2")), "700023"),
        (good_header(), with("exp", json!(now() - 5)), "700024"),
        (good_header(), with("exp", json!(now() + 3600)), "700024"),
        (good_header(), with("nbf", json!(now() + 3600)), "700024"),
        (good_header(), without("nbf"), "700024"),
        (good_header(), without("jti"), "700025"),
        (
            json!({"alg": "HS256", "x5t#S256": thumbprint}),
            good_claims(),
            "5002738",
        ),
        (json!({"alg": "PS256"}), good_claims(), "700027"),
        (
            json!({"alg": "PS256", "x5t#S256": "c29tZW9uZS1lbHNl"}),
            good_claims(),
            "700027",
        ),
    ];
    for (header, claims, code) in cases {
        let assertion = sign(header.clone(), claims.clone());
        assert_eq!(
            answer(&mut directory(), &assertion),
            (401, code.to_owned()),
            "{header} {claims}"
        );
    }
}

#[test]
fn a_signature_made_under_another_algorithm_or_reused_jti_is_refused() {
    let mut directory = directory();
    let assertion = sign(good_header(), good_claims());
    assert_eq!(answer(&mut directory, &assertion).0, 200);
    assert_eq!(
        answer(&mut directory, &assertion),
        (401, "700025".into()),
        "a replay"
    );
    let mut header = good_header();
    header["alg"] = json!("RS256");
    let parts: Vec<&str> = assertion.split('.').collect();
    let relabelled = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        parts[1],
        parts[2]
    );
    let mut fresh = self::directory();
    assert_eq!(answer(&mut fresh, &relabelled), (401, "700027".into()));
}
