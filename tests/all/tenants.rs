//! Tenants from a tenants file against the simulator's sign-in and API endpoints: client
//! secrets and certificates, the token cache, single-flight fetches, expiry and refresh.

use defender_host::credentials::{ClientCertificate, SigningAlgorithm};
use defender_host::tenants::TenantsFile;
use defender_host::{ActionError, Tenant};
use defender_simulator::{ClientProof, Reply, Simulator};
use integration_tests::{COMMENT, MACHINE, SHA1, TENANT_ID, component, lab_tenants_file};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CLIENT_ID: &str = "3f1c2a9e-app";
const SECRET: &str = "client-secret-value-Zq8";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// A simulator that accepts only tokens its token endpoint issued.
async fn directory() -> Simulator {
    Simulator::start(0, Some("no-static-token-is-accepted"))
        .await
        .unwrap()
}

/// [`directory`] with the test application registered, its proof [`SECRET`].
async fn directory_with_app() -> Simulator {
    let simulator = directory().await;
    simulator.register_client(TENANT_ID, CLIENT_ID, ClientProof::Secret(SECRET.into()));
    simulator
}

/// A tenant of the `custom` cloud whose API and sign-in are `simulator`.
fn tenant(simulator: &Simulator, credential: &str) -> Tenant {
    let text = lab_tenants_file(&simulator.base_url(), "", credential);
    let tenants = TenantsFile::parse(&text, &fixtures()).expect("a valid tenants file");
    tenants.get("lab").unwrap().clone()
}

/// A tenants-file credential whose secret is in a file of its own (tests run in parallel).
fn secret_in_file() -> String {
    let path = integration_tests::scratch_dir("tenants-secret").join("secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    format!(
        r#"{{ kind = "client-secret", client-id = "{CLIENT_ID}", secret-file = "{}" }}"#,
        path.display()
    )
}

fn token_requests(simulator: &Simulator) -> Vec<String> {
    simulator
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/oauth2/v2.0/token"))
        .map(|r| String::from_utf8(r.body).unwrap())
        .collect()
}

fn api_authorizations(simulator: &Simulator) -> Vec<String> {
    simulator
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/"))
        .map(|r| r.authorization.unwrap_or_default())
        .collect()
}

async fn quarantine(tenant: &Tenant) -> Result<defender_host::MachineAction, ActionError> {
    quarantine_on(tenant, MACHINE).await
}

async fn quarantine_on(
    tenant: &Tenant,
    machine: &str,
) -> Result<defender_host::MachineAction, ActionError> {
    component()
        .stop_and_quarantine(tenant, machine, SHA1, COMMENT)
        .await
        .expect("the call completes")
        .result
}

#[tokio::test]
async fn a_client_secret_gets_a_token_that_the_api_accepts() {
    let simulator = directory_with_app().await;
    let tenant = tenant(&simulator, &secret_in_file());
    quarantine(&tenant).await.expect("the action");

    let forms = token_requests(&simulator);
    assert_eq!(forms.len(), 1);
    let fields: Vec<(String, String)> = form_fields(&forms[0]);
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("grant_type"), Some("client_credentials"));
    assert_eq!(field("client_id"), Some(CLIENT_ID));
    assert_eq!(field("client_secret"), Some(SECRET));
    assert_eq!(
        field("scope"),
        Some("https://api.securitycenter.microsoft.com/.default")
    );
    let requests = simulator.requests();
    assert!(
        requests[0]
            .path
            .starts_with(&format!("/{TENANT_ID}/oauth2/v2.0/token"))
    );
    assert!(api_authorizations(&simulator)[0].starts_with("Bearer sim."));
}

fn form_fields(form: &str) -> Vec<(String, String)> {
    form.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_certificate_signs_an_assertion_the_directory_accepts() {
    let simulator = directory().await;
    let certificate = ClientCertificate::from_pem_files(
        &fixtures().join("client-cert.pem"),
        &fixtures().join("client-key.pem"),
        SigningAlgorithm::PS256,
    )
    .unwrap();
    simulator.register_client(
        TENANT_ID,
        CLIENT_ID,
        ClientProof::Certificate {
            x5t: certificate.thumbprint().to_owned(),
            x5t_s256: certificate.thumbprint_sha256().to_owned(),
            public_key: certificate.public_key_der().to_vec(),
        },
    );
    let credential = format!(
        r#"{{ kind = "client-certificate", client-id = "{CLIENT_ID}", certificate-file = "client-cert.pem", key-file = "client-key.pem" }}"#
    );
    let tenant = tenant(&simulator, &credential);
    quarantine(&tenant).await.expect("the action");
    let forms = token_requests(&simulator);
    assert!(forms[0].contains(
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    ));
    assert!(!forms[0].contains("client_secret"));
}

#[tokio::test]
async fn a_certificate_the_directory_does_not_know_is_refused() {
    let simulator = directory().await;
    simulator.register_client(
        TENANT_ID,
        CLIENT_ID,
        ClientProof::Certificate {
            x5t: "someone-elses-thumbprint".into(),
            x5t_s256: "someone-elses-thumbprint".into(),
            public_key: vec![1, 2, 3],
        },
    );
    let credential = format!(
        r#"{{ kind = "client-certificate", client-id = "{CLIENT_ID}", certificate-file = "client-cert.pem", key-file = "client-key.pem" }}"#
    );
    let Err(ActionError::Credentials(message)) = quarantine(&tenant(&simulator, &credential)).await
    else {
        panic!("expected a credentials error");
    };
    assert!(message.contains("invalid_client"), "{message}");
    assert!(api_authorizations(&simulator).is_empty());
}

#[tokio::test]
async fn a_wrong_secret_is_a_credentials_error_that_does_not_show_it() {
    let simulator = directory().await;
    simulator.register_client(TENANT_ID, CLIENT_ID, ClientProof::Secret("another".into()));
    let Err(ActionError::Credentials(message)) =
        quarantine(&tenant(&simulator, &secret_in_file())).await
    else {
        panic!("expected a credentials error");
    };
    assert!(
        message.contains("401") && message.contains("invalid_client"),
        "{message}"
    );
    assert!(!message.contains(SECRET));
    assert!(api_authorizations(&simulator).is_empty());
}

#[tokio::test]
async fn the_token_is_cached_and_fetched_once_for_concurrent_calls() {
    let simulator = directory_with_app().await;
    let tenant = tenant(&simulator, &secret_in_file());
    let calls: Vec<_> = (0..20)
        .map(|i| {
            let tenant = tenant.clone();
            let machine = format!("{i:040x}");
            tokio::spawn(async move {
                component()
                    .stop_and_quarantine(&tenant, &machine, SHA1, COMMENT)
                    .await
                    .unwrap()
                    .result
            })
        })
        .collect();
    for call in calls {
        call.await
            .unwrap()
            .expect("every concurrent call gets its action");
    }
    quarantine(&tenant).await.expect("a later call");
    assert_eq!(token_requests(&simulator).len(), 1);
    let tokens: std::collections::HashSet<String> =
        api_authorizations(&simulator).into_iter().collect();
    assert_eq!(tokens.len(), 1);
}

#[tokio::test]
async fn an_expiring_token_is_renewed_before_it_expires() {
    let simulator = directory_with_app().await;
    simulator.set_token_lifetime(Duration::from_secs(2));
    let tenant = tenant(&simulator, &secret_in_file());
    quarantine(&tenant).await.expect("the first action");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    quarantine_on(&tenant, &"f".repeat(40))
        .await
        .expect("the second action");
    assert_eq!(token_requests(&simulator).len(), 2);
}

#[tokio::test]
async fn a_401_gets_a_fresh_token() {
    let simulator = directory_with_app().await;
    simulator.script([Reply::error(401, "Unauthorized")]);
    let tenant = tenant(&simulator, &secret_in_file());
    quarantine(&tenant)
        .await
        .expect("the action after a refresh");
    assert_eq!(token_requests(&simulator).len(), 2);
    let auth = api_authorizations(&simulator);
    assert_eq!(auth.len(), 2);
    assert_ne!(auth[0], auth[1]);
}

#[tokio::test]
async fn a_token_said_to_last_for_ever_is_kept_a_day_at_most_without_overflow() {
    let simulator = directory_with_app().await;
    simulator.set_token_lifetime(Duration::from_secs(u64::MAX));
    let tenant = tenant(&simulator, &secret_in_file());
    quarantine(&tenant).await.expect("the action");
    quarantine_on(&tenant, &"f".repeat(40))
        .await
        .expect("a second action with the cached token");
    assert_eq!(token_requests(&simulator).len(), 1);
}

#[tokio::test]
async fn a_guest_asking_for_fresh_tokens_in_a_loop_gets_the_cached_one() {
    let simulator = directory_with_app().await;
    let tenant = tenant(&simulator, &secret_in_file());
    let url = format!(
        "{}/api/machines/{MACHINE}/StopAndQuarantineFile",
        simulator.base_url()
    );
    let outcome = integration_tests::probe()
        .stop_and_quarantine(&tenant, &url, "credential,refresh-loop,permit", "")
        .await
        .expect("the probe completes");
    assert!(
        matches!(&outcome.result, Err(ActionError::Upstream(answer)) if answer.status == 201),
        "{:?}",
        outcome.result
    );
    assert_eq!(
        token_requests(&simulator).len(),
        1,
        "no 401 was seen: fifty refreshes asked, none fetched"
    );
}

#[tokio::test]
async fn entries_of_one_app_registration_share_its_budgets() {
    const OTHER_APP: &str = "8d2e4b6f-app";
    let simulator = directory_with_app().await;
    simulator.register_client(TENANT_ID, OTHER_APP, ClientProof::Secret(SECRET.into()));
    let credential = secret_in_file();
    // Two entries sign in as the test app, one as another app; an hour's budget of two calls.
    let text: String = [
        ("first", CLIENT_ID),
        ("second", CLIENT_ID),
        ("other", OTHER_APP),
    ]
    .iter()
    .map(|(name, app)| {
        lab_tenants_file(
            &simulator.base_url(),
            "",
            &credential.replace(CLIENT_ID, app),
        )
        .replace("name = \"lab\"", &format!("name = \"{name}\""))
            + "[tenant.budget]\nper-hour = 2\n"
    })
    .collect();
    let tenants = TenantsFile::parse(&text, &fixtures()).expect("a valid tenants file");
    let entry = |name: &str| tenants.get(name).unwrap().clone();
    quarantine_on(&entry("first"), integration_tests::FLEET[1])
        .await
        .expect("the first action");
    quarantine_on(&entry("second"), integration_tests::FLEET[2])
        .await
        .expect("the second action, from the same app's budget");
    let refused = quarantine_on(&entry("first"), MACHINE).await;
    let Err(ActionError::RateLimited(limited)) = &refused else {
        panic!("{refused:?}");
    };
    assert!(limited.api.is_none() && limited.retry_after_ms > 3_500_000);
    quarantine_on(&entry("other"), MACHINE)
        .await
        .expect("another app has a budget of its own");
    let posts = simulator
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/api/machines/"))
        .count();
    assert_eq!(posts, 3);
}
