//! Every kind of credential signs in through the host's one HTTP client and the token is used on
//! the API, over HTTPS with a CA made for the test (trusted only through `ca-file`), once
//! directly and once through a `CONNECT` proxy; the exact token request is checked as the
//! strict simulator received it. Then what goes wrong: a certificate not trusted, issued for
//! another name or expired; a proxy that wants credentials; a request without `Host`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use defender_host::credentials::{ClientCertificate, SigningAlgorithm};
use defender_host::tenants::TenantsFile;
use defender_host::{ActionError, Tenant};
use defender_simulator::{ClientProof, ManagedIdentities, RecordedRequest, Simulator};
use integration_tests::proxy::ConnectProxy;
use integration_tests::tls::{Leaf, TestCa};
use integration_tests::{COMMENT, MACHINE, SCOPE, SHA1, TENANT_ID, component, lab_tenants_file};
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

const CLIENT_ID: &str = "3f1c2a9e-5b7d-4e0f-9a1b-2c3d4e5f6a7b";
const SECRET: &str = "client-secret-value-Zq8";
const IDENTITY_HEADER: &str = "identity-header-secret-77";
const RESOURCE_QUERY: &str =
    "api-version=2019-08-01&resource=https%3A%2F%2Fapi.securitycenter.microsoft.com";
const K8S_ISSUER: &str = "https://oidc.aks.test.example/7f1c/";
const K8S_SUBJECT: &str = "system:serviceaccount:soar:mde";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Secret,
    Certificate(SigningAlgorithm),
    Imds,
    AppService,
    Workload,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn certificate(algorithm: SigningAlgorithm) -> ClientCertificate {
    ClientCertificate::from_pem_files(
        &fixtures().join("client-cert.pem"),
        &fixtures().join("client-key.pem"),
        algorithm,
    )
    .expect("the fixture certificate")
}

/// A directory of the test's own, for its tenants file and the files it names.
fn scratch() -> PathBuf {
    integration_tests::scratch_dir("sign-in")
}

fn write_private(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writable");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// A projected service-account token as a Kubernetes cluster issues it (RS256); `jti` tells
/// one rotation from the next.
fn service_account_token(jti: &str) -> String {
    let key = std::fs::read(fixtures().join("client-key.pem")).expect("the fixture key");
    let der = pem_to_der(&key);
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("an RSA key");
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k8s"}"#);
    let claims = URL_SAFE_NO_PAD.encode(
        serde_json::json!({
            "aud": ["api://AzureADTokenExchange"],
            "iss": K8S_ISSUER,
            "sub": K8S_SUBJECT,
            "iat": now(),
            "nbf": now(),
            "exp": now() + 3600,
            "jti": jti,
        })
        .to_string(),
    );
    let signed = format!("{header}.{claims}");
    let mut signature = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .expect("signed");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The DER inside a PKCS#8 PEM block.
fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64 PEM")
}

/// Registers `kind`'s credential with the simulator's directory and returns its
/// `[tenant.credential]` table (files written into `dir`).
fn credential(simulator: &Simulator, dir: &Path, kind: Kind) -> String {
    let base = simulator.base_url();
    match kind {
        Kind::Secret => {
            simulator.register_client(TENANT_ID, CLIENT_ID, ClientProof::Secret(SECRET.into()));
            write_private(dir, "app.secret", SECRET);
            format!(
                r#"{{ kind = "client-secret", client-id = "{CLIENT_ID}", secret-file = "app.secret" }}"#
            )
        }
        Kind::Certificate(algorithm) => {
            let certificate = certificate(algorithm);
            simulator.register_client(
                TENANT_ID,
                CLIENT_ID,
                ClientProof::Certificate {
                    x5t: certificate.thumbprint().to_owned(),
                    x5t_s256: certificate.thumbprint_sha256().to_owned(),
                    public_key: certificate.public_key_der().to_vec(),
                },
            );
            let fixtures = fixtures();
            format!(
                r#"{{ kind = "client-certificate", client-id = "{CLIENT_ID}", certificate-file = "{}", key-file = "{}", algorithm = "{algorithm:?}" }}"#,
                fixtures.join("client-cert.pem").display(),
                fixtures.join("client-key.pem").display()
            )
        }
        Kind::Imds => {
            simulator.set_managed_identities(ManagedIdentities {
                system_assigned: true,
                ..ManagedIdentities::default()
            });
            format!(
                r#"{{ kind = "managed-identity", source = "imds", endpoint = "{base}/metadata/identity/oauth2/token" }}"#
            )
        }
        Kind::AppService => {
            simulator.set_managed_identities(ManagedIdentities {
                user_assigned: vec![CLIENT_ID.into()],
                app_service_header: Some(IDENTITY_HEADER.into()),
                ..ManagedIdentities::default()
            });
            write_private(dir, "identity.header", IDENTITY_HEADER);
            format!(
                r#"{{ kind = "managed-identity", source = "app-service", client-id = "{CLIENT_ID}", endpoint = "{base}/msi/token", identity-header-file = "identity.header" }}"#
            )
        }
        Kind::Workload => {
            simulator.register_client(
                TENANT_ID,
                CLIENT_ID,
                ClientProof::Federated {
                    issuer: K8S_ISSUER.into(),
                    subject: K8S_SUBJECT.into(),
                    public_key: certificate(SigningAlgorithm::RS256)
                        .public_key_der()
                        .to_vec(),
                },
            );
            write_private(dir, "azure-identity-token", &service_account_token("first"));
            format!(
                r#"{{ kind = "workload-identity", client-id = "{CLIENT_ID}", token-file = "azure-identity-token" }}"#
            )
        }
    }
}

/// A `custom`-cloud tenant whose API and sign-in are `simulator`, with `extra` settings.
fn tenant(simulator: &Simulator, dir: &Path, credential: &str, extra: &str) -> Tenant {
    let text = lab_tenants_file(&simulator.base_url(), extra, credential);
    write_private(dir, "tenants.toml", &text);
    let tenants = TenantsFile::load(&dir.join("tenants.toml")).expect("a valid tenants file");
    tenants.get("lab").expect("the tenant").clone()
}

/// An HTTPS simulator with a fresh CA, its CA file written into `dir`.
async fn https_simulator(dir: &Path, leaf: Leaf) -> Simulator {
    let ca = TestCa::new();
    std::fs::write(dir.join("ca.pem"), &ca.pem).expect("writable");
    Simulator::start_tls(0, Some("no-static-token-is-accepted"), ca.server(leaf))
        .await
        .expect("the simulator starts")
}

fn header<'a>(request: &'a RecordedRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn form(request: &RecordedRequest) -> Vec<(String, String)> {
    form_urlencoded_pairs(&request.body)
}

fn form_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn jwt_part(jwt: &str, index: usize) -> Value {
    let part = jwt.split('.').nth(index).expect("a JWT part");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
}

/// Checks the token request `kind` sends, as the simulator received it.
fn check_token_request(request: &RecordedRequest, kind: Kind, base: &str) {
    let port = base.rsplit(':').next().expect("a port");
    assert_eq!(
        request.host.as_deref(),
        Some(format!("localhost:{port}").as_str())
    );
    assert_eq!(header(request, "authorization"), None, "{request:?}");
    match kind {
        Kind::Imds | Kind::AppService => {
            assert_eq!(request.method, "GET");
            let (path, identity_header) = match kind {
                Kind::Imds => ("/metadata/identity/oauth2/token", ("metadata", "true")),
                _ => ("/msi/token", ("x-identity-header", IDENTITY_HEADER)),
            };
            let client = if kind == Kind::AppService {
                format!("&client_id={CLIENT_ID}")
            } else {
                String::new()
            };
            assert_eq!(request.path, format!("{path}?{RESOURCE_QUERY}{client}"));
            assert_eq!(header(request, identity_header.0), Some(identity_header.1));
            assert!(request.body.is_empty());
        }
        _ => {
            assert_eq!(request.method, "POST");
            assert_eq!(request.path, format!("/{TENANT_ID}/oauth2/v2.0/token"));
            assert_eq!(
                request.content_type.as_deref(),
                Some("application/x-www-form-urlencoded")
            );
            let fields = form(request);
            let names: BTreeSet<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(field("grant_type"), Some("client_credentials"));
            assert_eq!(field("client_id"), Some(CLIENT_ID));
            assert_eq!(field("scope"), Some(SCOPE));
            let proof: BTreeSet<&str> = if kind == Kind::Secret {
                assert_eq!(field("client_secret"), Some(SECRET));
                ["client_secret"].into()
            } else {
                assert_eq!(field("client_assertion_type"), Some(JWT_BEARER));
                let assertion = field("client_assertion").expect("an assertion");
                let (header, claims) = (jwt_part(assertion, 0), jwt_part(assertion, 1));
                if let Kind::Certificate(algorithm) = kind {
                    assert_eq!(header["alg"], format!("{algorithm:?}"));
                    assert!(header["x5t#S256"].is_string());
                    assert_eq!(
                        claims["aud"],
                        format!("{base}/{TENANT_ID}/oauth2/v2.0/token")
                    );
                    assert_eq!(claims["iss"], CLIENT_ID);
                    assert_eq!(claims["sub"], CLIENT_ID);
                } else {
                    assert_eq!(claims["iss"], K8S_ISSUER);
                }
                ["client_assertion_type", "client_assertion"].into()
            };
            let expected: BTreeSet<&str> = ["grant_type", "client_id", "scope"]
                .into_iter()
                .chain(proof)
                .collect();
            assert_eq!(names, expected);
        }
    }
}

/// `kind` signs in and the component's action follows with the issued token, over HTTPS
/// (HTTP/2 by ALPN), directly or through a CONNECT proxy.
async fn signs_in_and_acts(kind: Kind, through_proxy: bool) {
    let dir = scratch();
    let simulator = https_simulator(&dir, Leaf::Localhost).await;
    let proxy = ConnectProxy::start(None).await;
    let credential = credential(&simulator, &dir, kind);
    let route = if through_proxy {
        format!("proxy = \"{}\"", proxy.url())
    } else {
        "proxy = \"none\"".to_owned()
    };
    let tenant = tenant(
        &simulator,
        &dir,
        &credential,
        &format!("ca-file = \"ca.pem\"\n{route}"),
    );
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .expect("the call completes");
    let action = outcome.result.expect("the action, after signing in");
    assert_eq!(action.machine_id.as_deref(), Some(MACHINE));
    assert!(outcome.connection_errors.is_empty());

    let requests = simulator.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for request in &requests {
        assert_eq!(request.version, http::Version::HTTP_2, "ALPN offers HTTP/2");
    }
    check_token_request(&requests[0], kind, &simulator.base_url());
    let api = &requests[1];
    assert_eq!(api.method, "POST");
    assert_eq!(
        api.path,
        format!("/api/machines/{MACHINE}/StopAndQuarantineFile")
    );
    assert!(
        header(api, "authorization").is_some_and(|a| a.starts_with("Bearer sim.")),
        "the API got the issued token: {api:?}"
    );

    let port = simulator.base_url().rsplit(':').next().map(str::to_owned);
    if through_proxy {
        eprintln!(
            "{kind:?} through the proxy: {} tunnel(s), to {:?}; the simulator accepted {} connection(s)",
            proxy.tunnels(),
            proxy.targets(),
            simulator.connections()
        );
        assert!(proxy.tunnels() >= 1);
        assert_eq!(
            simulator.connections(),
            proxy.tunnels(),
            "every connection was tunnelled"
        );
        for target in proxy.targets() {
            assert_eq!(
                Some(target),
                port.as_ref().map(|p| format!("localhost:{p}"))
            );
        }
    } else {
        assert_eq!(proxy.tunnels(), 0);
        assert!(simulator.connections() >= 1);
    }
}

#[tokio::test]
async fn a_client_secret() {
    signs_in_and_acts(Kind::Secret, false).await;
    signs_in_and_acts(Kind::Secret, true).await;
}

#[tokio::test]
async fn a_certificate_signing_ps256() {
    signs_in_and_acts(Kind::Certificate(SigningAlgorithm::PS256), false).await;
    signs_in_and_acts(Kind::Certificate(SigningAlgorithm::PS256), true).await;
}

#[tokio::test]
async fn a_certificate_signing_rs256() {
    signs_in_and_acts(Kind::Certificate(SigningAlgorithm::RS256), false).await;
    signs_in_and_acts(Kind::Certificate(SigningAlgorithm::RS256), true).await;
}

#[tokio::test]
async fn a_managed_identity_through_imds() {
    signs_in_and_acts(Kind::Imds, false).await;
    signs_in_and_acts(Kind::Imds, true).await;
}

#[tokio::test]
async fn a_managed_identity_through_app_service() {
    signs_in_and_acts(Kind::AppService, false).await;
    signs_in_and_acts(Kind::AppService, true).await;
}

#[tokio::test]
async fn a_workload_identity() {
    signs_in_and_acts(Kind::Workload, false).await;
    signs_in_and_acts(Kind::Workload, true).await;
}

#[tokio::test]
async fn a_managed_identity_is_cached_and_refreshed_like_the_other_kinds() {
    let dir = scratch();
    let simulator = https_simulator(&dir, Leaf::Localhost).await;
    let credential = credential(&simulator, &dir, Kind::Imds);
    let tenant = tenant(
        &simulator,
        &dir,
        &credential,
        "ca-file = \"ca.pem\"\nproxy = \"none\"",
    );
    simulator.script([defender_simulator::Reply::error(401, "Unauthorized")]);
    for machine in [MACHINE, "ffffffffffffffffffffffffffffffffffffffff"] {
        component()
            .stop_and_quarantine(&tenant, machine, SHA1, COMMENT)
            .await
            .expect("the call completes")
            .result
            .expect("the action");
    }
    let fetches: Vec<String> = simulator
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/metadata/"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        fetches.len(),
        2,
        "one fetch, one refresh after the 401, then the cache"
    );
}

/// The sign-in error for a server whose certificate the host refuses.
async fn refused_sign_in(leaf: Leaf, trust_the_ca: bool) -> String {
    let dir = scratch();
    let simulator = https_simulator(&dir, leaf).await;
    let credential = credential(&simulator, &dir, Kind::Secret);
    let extra = if trust_the_ca {
        "ca-file = \"ca.pem\""
    } else {
        ""
    };
    let tenant = tenant(
        &simulator,
        &dir,
        &credential,
        &format!("{extra}\nproxy = \"none\""),
    );
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .expect("the call completes");
    let Err(ActionError::Credentials(message)) = outcome.result else {
        panic!("expected a credentials error, got {:?}", outcome.result);
    };
    assert!(
        simulator.requests().is_empty(),
        "nothing got past the handshake"
    );
    assert!(message.contains("tenant \"lab\""), "{message}");
    assert!(message.contains("localhost"), "{message}");
    message
}

#[tokio::test]
async fn a_certificate_the_host_does_not_trust_is_named_with_the_reason() {
    let unknown = refused_sign_in(Leaf::Localhost, false).await;
    assert!(unknown.contains("unknown issuer"), "{unknown}");
    assert!(!unknown.contains("connection-refused"), "{unknown}");
    let mismatch = refused_sign_in(Leaf::OtherName, true).await;
    assert!(mismatch.contains("name mismatch"), "{mismatch}");
    let expired = refused_sign_in(Leaf::Expired, true).await;
    assert!(expired.contains("has expired"), "{expired}");
}

#[tokio::test]
async fn an_untrusted_api_is_reported_by_the_host_with_the_reason() {
    let dir = scratch();
    let simulator = https_simulator(&dir, Leaf::Localhost).await;
    std::fs::write(dir.join("token"), "a-static-token").expect("writable");
    let tenant = tenant(
        &simulator,
        &dir,
        r#"{ kind = "token", token-file = "token" }"#,
        "proxy = \"none\"",
    );
    let outcome = component()
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await
        .expect("the call completes");
    let Err(ActionError::Transport(message)) = &outcome.result else {
        panic!("expected a transport error, got {:?}", outcome.result);
    };
    assert!(message.contains("TLS-certificate-error"), "{message}");
    assert_eq!(
        outcome.connection_errors.len(),
        1,
        "{:?}",
        outcome.connection_errors
    );
    let detail = &outcome.connection_errors[0];
    assert!(
        detail.contains("https://localhost:") && detail.contains("unknown issuer"),
        "{detail}"
    );
}

#[tokio::test]
async fn a_proxy_that_wants_credentials_gets_them_and_they_are_never_shown() {
    let dir = scratch();
    let simulator = https_simulator(&dir, Leaf::Localhost).await;
    let proxy = ConnectProxy::start(Some(("svc-mde", "proxy-pass-91"))).await;
    let credential = credential(&simulator, &dir, Kind::Secret);
    let through = |url: &str| format!("ca-file = \"ca.pem\"\nproxy = \"{url}\"");

    let wrong = proxy.url().replace("proxy-pass-91", "wrong-pass-17");
    for url in [proxy.url_without_credentials(), wrong] {
        let tenant = tenant(&simulator, &dir, &credential, &through(&url));
        let outcome = component()
            .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
            .await
            .expect("the call completes");
        let Err(ActionError::Credentials(message)) = &outcome.result else {
            panic!("expected a credentials error, got {:?}", outcome.result);
        };
        assert!(
            message.contains("407") && message.contains("127.0.0.1"),
            "{message}"
        );
        let shown = format!("{outcome:?} {:?}", tenant.network);
        assert!(!shown.contains("wrong-pass-17"), "{shown}");
    }
    assert_eq!(proxy.refused(), 2);
    assert!(simulator.requests().is_empty());

    let with = tenant(&simulator, &dir, &credential, &through(&proxy.url()));
    let outcome = component()
        .stop_and_quarantine(&with, MACHINE, SHA1, COMMENT)
        .await
        .expect("the call completes");
    outcome
        .result
        .as_ref()
        .expect("the action through the proxy");
    assert!(proxy.tunnels() >= 1);
    assert_eq!(proxy.refused(), 2);
    let shown = format!("{outcome:?} {:?}", with.network);
    assert!(
        !shown.contains("proxy-pass-91") && shown.contains("(with credentials)"),
        "{shown}"
    );

    std::fs::set_permissions(
        dir.join("tenants.toml"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let error = TenantsFile::load(&dir.join("tenants.toml"))
        .err()
        .expect("refused");
    assert!(
        error.to_string().contains("holds a proxy's credentials"),
        "{error}"
    );
    assert!(!error.to_string().contains("proxy-pass-91"));
}

#[tokio::test]
async fn the_federated_token_is_read_again_at_every_fetch() {
    let dir = scratch();
    let simulator = https_simulator(&dir, Leaf::Localhost).await;
    let credential = credential(&simulator, &dir, Kind::Workload);
    let tenant = tenant(
        &simulator,
        &dir,
        &credential,
        "ca-file = \"ca.pem\"\nproxy = \"none\"",
    );
    let first = std::fs::read_to_string(dir.join("azure-identity-token")).expect("written");
    // The 401 comes half a second after the POST arrives; the kubelet rotates the token in
    // between, so the refresh that follows the 401 must read the new one.
    simulator.script([defender_simulator::Reply::Delayed(
        std::time::Duration::from_millis(500),
        Box::new(defender_simulator::Reply::error(401, "Unauthorized")),
    )]);
    let call = component().stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT);
    let rotate = async {
        while simulator.requests().len() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        write_private(
            &dir,
            "azure-identity-token",
            &service_account_token("second"),
        );
    };
    let (outcome, ()) = tokio::join!(call, rotate);
    outcome
        .expect("the call completes")
        .result
        .expect("the action");
    let assertions: Vec<String> = simulator
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .filter_map(|r| {
            form(r)
                .into_iter()
                .find(|(k, _)| k == "client_assertion")
                .map(|(_, v)| v)
        })
        .collect();
    assert_eq!(assertions.len(), 2, "a fetch, then a refresh after the 401");
    assert_eq!(assertions[0], first);
    assert_ne!(assertions[1], first, "the rotated token was read");
}

#[tokio::test]
async fn every_request_the_host_sends_over_http1_names_its_host() {
    // Plain HTTP/1.1, as IMDS and App Service's local endpoint speak it.
    for kind in [
        Kind::Secret,
        Kind::Certificate(SigningAlgorithm::PS256),
        Kind::Imds,
        Kind::AppService,
        Kind::Workload,
    ] {
        let simulator = Simulator::start(0, Some("no-static-token-is-accepted"))
            .await
            .expect("the simulator starts");
        let dir = scratch();
        let credential = credential(&simulator, &dir, kind);
        let tenant = tenant(&simulator, &dir, &credential, "proxy = \"none\"");
        let action = component()
            .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
            .await
            .expect("the call completes")
            .result
            .expect("the action");
        component()
            .get_action(&tenant, &action.id)
            .await
            .expect("the call completes")
            .result
            .expect("the action's status");
        let requests = simulator.requests();
        assert_eq!(
            requests.len(),
            3,
            "{kind:?}: sign-in, the action and its status: {requests:?}"
        );
        let authority = simulator
            .base_url()
            .trim_start_matches("http://")
            .to_owned();
        for request in &requests {
            assert_eq!(request.version, http::Version::HTTP_11);
            let hosts: Vec<&str> = request
                .headers
                .iter()
                .filter(|(n, _)| n == "host")
                .map(|(_, v)| v.as_str())
                .collect();
            assert_eq!(
                hosts,
                [authority.as_str()],
                "{kind:?}: {} {}",
                request.method,
                request.path
            );
        }
    }
}
