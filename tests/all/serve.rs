//! `serve` through HTTP on 127.0.0.1: every endpoint with a real service, the real component
//! and the simulator behind it; keys and their tenants, problem details, idempotency, waiting,
//! the audit trail, and the OpenAPI files kept in the repository.

use defender_simulator::example::{MACHINE, SHA1};
use host_harness::serve::config::ServeConfig;
use host_harness::serve::openapi;
use integration_tests::serve::{Answer, Served, call, key};
use integration_tests::{TOKEN, posts, scratch_dir, simulator, tenant};
use serde_json::{Value, json};
use std::time::Duration;

const OTHER: &str = "2d5bc9d7e413ddd7902c2932e418702b84d0cc08";

/// A service with two tenants on one simulator and two keys: `tines` for `contoso` (and
/// metrics), `xsoar` for `fabrikam`.
async fn two_tenants(config: ServeConfig) -> (defender_simulator::Simulator, Served) {
    named_tenants(config, "contoso", "fabrikam").await
}

/// The same, with the tenants named `a` and `b` (metrics are the process's: a test that reads
/// them names its tenants its own way).
async fn named_tenants(
    config: ServeConfig,
    a: &str,
    b: &str,
) -> (defender_simulator::Simulator, Served) {
    let simulator = simulator().await;
    let mut config = config;
    config.keys = vec![
        key("tines", "tines-secret", &[a], true),
        key("xsoar", "xsoar-secret", &[b], false),
    ];
    let tenants = vec![
        (a.to_owned(), tenant(&simulator).with_name(a)),
        (b.to_owned(), tenant(&simulator).with_name(b)),
    ];
    let served = Served::start(config, tenants).await;
    (simulator, served)
}

const TINES: (&str, &str) = ("authorization", "Bearer tines-secret");
const XSOAR: (&str, &str) = ("authorization", "Bearer xsoar-secret");
const JSON: (&str, &str) = ("content-type", "application/json");

fn body(machines: &[&str]) -> String {
    json!({"machineIds": machines, "sha1": SHA1, "comment": "Quarantine by serve"}).to_string()
}

async fn post(served: &Served, tenant: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let url = format!("{}/v1/tenants/{tenant}/quarantine", served.url);
    call("POST", &url, headers, body).await
}

async fn post_to(url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    call("POST", url, headers, body).await
}

/// Reads the job at `location` until it is no longer running.
async fn finished(served: &Served, location: &str, auth: (&str, &str)) -> Value {
    for _ in 0..200 {
        let job = call("GET", &format!("{}{location}", served.url), &[auth], "").await;
        assert_eq!(job.status, 200, "{}", job.body);
        let job = job.json();
        if job["status"] != "running" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the job at {location} never ended");
}

fn assert_problem(answer: &Answer, status: u16, kind: &str) -> Value {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    let problem = answer.json();
    assert_eq!(problem["status"], status);
    assert_eq!(problem["kind"], kind, "{problem}");
    assert_eq!(problem["type"], format!("urn:defender:problem:{kind}"));
    assert!(problem["title"].is_string() && problem["detail"].is_string());
    problem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantine_is_a_job_with_the_apis_json_whole() {
    let (simulator, served) = two_tenants(ServeConfig::default()).await;
    let answer = post(&served, "contoso", &[TINES, JSON], &body(&[MACHINE, OTHER])).await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    let location = answer.header("location").expect("a Location").to_owned();
    let created = answer.json();
    assert_eq!(
        location,
        format!("/v1/jobs/{}", created["id"].as_str().unwrap())
    );
    assert_eq!(
        (created["status"].as_str(), created["tenant"].as_str()),
        (Some("running"), Some("contoso"))
    );
    assert_eq!(created["requestedBy"], "tines");
    let job = finished(&served, &location, TINES).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let outcomes = job["outcomes"].as_array().unwrap();
    assert_eq!(outcomes.len(), 2);
    for (outcome, machine) in outcomes.iter().zip([MACHINE, OTHER]) {
        assert_eq!(outcome["machineId"], machine);
        // The API's MachineAction, every member as it sent them.
        let action = &outcome["action"];
        assert_eq!(action["type"], "StopAndQuarantineFile");
        assert_eq!(action["relatedFileInfo"]["fileIdentifier"], SHA1);
        assert!(action["@odata.context"].is_string() && action["id"].is_string());
    }
    assert_eq!(posts(&simulator), 2);
    // The action, and its cancellation, by ID.
    let id = outcomes[0]["action"]["id"].as_str().unwrap();
    let url = format!("{}/v1/tenants/contoso/actions/{id}", served.url);
    let action = call("GET", &url, &[TINES], "").await;
    assert_eq!(
        (action.status, action.json()["id"].as_str()),
        (200, Some(id))
    );
    let cancel = call(
        "POST",
        &format!("{url}/cancel"),
        &[TINES, JSON],
        r#"{"comment":"false positive"}"#,
    )
    .await;
    assert_eq!(cancel.status, 200, "{}", cancel.body);
    assert_eq!(cancel.json()["status"], "Cancelled");
    // An action that does not exist is the API's 404, as a problem.
    let missing = format!(
        "{}/v1/tenants/contoso/actions/00000000-0000-0000-0000-000000000000",
        served.url
    );
    assert_problem(&call("GET", &missing, &[TINES], "").await, 404, "not-found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sees_only_its_tenants_and_unknown_keys_nothing() {
    let (simulator, served) = named_tenants(ServeConfig::default(), "scoped-a", "scoped-b").await;
    let job = post(&served, "scoped-a", &[TINES, JSON], &body(&[MACHINE])).await;
    let location = job.header("location").unwrap().to_owned();
    finished(&served, &location, TINES).await;
    // Another tenant's key: as if neither the tenant nor the job existed.
    assert_problem(
        &post(&served, "scoped-a", &[XSOAR, JSON], &body(&[MACHINE])).await,
        404,
        "not-found",
    );
    assert_problem(
        &call("GET", &format!("{}{location}", served.url), &[XSOAR], "").await,
        404,
        "not-found",
    );
    let action = format!("{}/v1/tenants/scoped-a/actions/x", served.url);
    assert_problem(&call("GET", &action, &[XSOAR], "").await, 404, "not-found");
    assert_problem(
        &post(&served, "nowhere", &[TINES, JSON], &body(&[MACHINE])).await,
        404,
        "not-found",
    );
    // No key, a wrong one, another scheme: 401 with a challenge, the key never repeated.
    for auth in [
        None,
        Some("Bearer tines-secreT"),
        Some("Basic dGluZXMtc2VjcmV0"),
    ] {
        let headers: Vec<(&str, &str)> = auth
            .map(|a| ("authorization", a))
            .into_iter()
            .chain([JSON])
            .collect();
        let answer = post(&served, "scoped-a", &headers, &body(&[MACHINE])).await;
        assert_problem(&answer, 401, "unauthorized");
        assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
        assert!(!answer.body.contains("secret"), "{}", answer.body);
    }
    // Metrics: a key allowed to read them, one that is not, none.
    let metrics = call("GET", &format!("{}/metrics", served.url), &[TINES], "").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains(
            "defender_permits_total{tenant=\"scoped-a\",api=\"create-action\",result=\"granted\"}"
        ),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("defender_serve_requests_total"));
    assert!(!metrics.body.contains(TOKEN) && !metrics.body.contains("tines-secret"));
    assert_problem(
        &call("GET", &format!("{}/metrics", served.url), &[XSOAR], "").await,
        403,
        "forbidden",
    );
    assert_problem(
        &call("GET", &format!("{}/metrics", served.url), &[], "").await,
        401,
        "unauthorized",
    );
    // Health needs no key.
    assert_eq!(
        call("GET", &format!("{}/healthz", served.url), &[], "")
            .await
            .status,
        200
    );
    assert_eq!(
        call("GET", &format!("{}/readyz", served.url), &[], "")
            .await
            .status,
        200
    );
    assert_eq!(
        posts(&simulator),
        1,
        "only the allowed key's request was sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_problem_and_nothing_is_sent() {
    let config = ServeConfig {
        max_body_bytes: 4096,
        ..ServeConfig::default()
    };
    let (simulator, served) = two_tenants(config).await;
    let sha1_and_comment = format!(r#""sha1":"{SHA1}","comment":"c""#);
    for (body, field) in [
        ("{not json".to_owned(), "body"),
        (
            format!(r#"{{"machineIds":["{MACHINE}"],{sha1_and_comment},"extra":1}}"#),
            "extra",
        ),
        (r#"{"machineIds":["x"],"comment":"c"}"#.to_owned(), "sha1"),
        (
            format!(r#"{{"machineIds":["zz"],{sha1_and_comment}}}"#),
            "machineIds[0]",
        ),
        (
            format!(r#"{{"machineIds":"{MACHINE}",{sha1_and_comment}}}"#),
            "machineIds",
        ),
        (
            format!(
                r#"{{"machineIds":["{MACHINE}"],{sha1_and_comment},"wait":{{"timeoutSeconds":5,"x":1}}}}"#
            ),
            "wait.x",
        ),
        (
            format!(r#"{{"machineIds":["{MACHINE}"],"everywhere":true,{sha1_and_comment}}}"#),
            "machineIds",
        ),
        (format!(r#"{{{sha1_and_comment}}}"#), "machineIds"),
        (
            format!(r#"{{"machineIds":["{MACHINE}"],"sha1":"abc","comment":"c"}}"#),
            "sha1",
        ),
        (
            format!(
                r#"{{"machineIds":["{MACHINE}"],{sha1_and_comment},"wait":{{"timeoutSeconds":0}}}}"#
            ),
            "wait.timeoutSeconds",
        ),
    ] {
        let answer = post(&served, "contoso", &[TINES, JSON], &body).await;
        let problem = assert_problem(&answer, 400, "invalid-input");
        assert_eq!(problem["field"], field, "{body}: {problem}");
    }
    let large = format!(
        r#"{{"machineIds":["{MACHINE}"],"sha1":"{SHA1}","comment":"{}"}}"#,
        "a".repeat(5000)
    );
    assert_problem(
        &post(&served, "contoso", &[TINES, JSON], &large).await,
        413,
        "too-large",
    );
    let text = post(
        &served,
        "contoso",
        &[TINES, ("content-type", "text/plain")],
        &body(&[MACHINE]),
    )
    .await;
    assert_eq!(text.status, 415, "{}", text.body);
    let long_key = "k".repeat(300);
    let answer = post(
        &served,
        "contoso",
        &[TINES, JSON, ("idempotency-key", &long_key)],
        &body(&[MACHINE]),
    )
    .await;
    assert_eq!(
        assert_problem(&answer, 400, "invalid-input")["field"],
        "Idempotency-Key"
    );
    let prefer = post(
        &served,
        "contoso",
        &[TINES, JSON, ("prefer", "wait=soon")],
        &body(&[MACHINE]),
    )
    .await;
    assert_eq!(
        assert_problem(&prefer, 400, "invalid-input")["field"],
        "Prefer"
    );
    let cancel = format!("{}/v1/tenants/contoso/actions/a/cancel", served.url);
    assert_problem(
        &call("POST", &cancel, &[TINES, JSON], r#"{"comment":1}"#).await,
        400,
        "invalid-input",
    );
    for job in ["0123456789abcdef0123456789abcdef", "../etc", "x"] {
        let answer = call(
            "GET",
            &format!("{}/v1/jobs/{job}", served.url),
            &[TINES],
            "",
        )
        .await;
        assert_problem(&answer, 404, "not-found");
    }
    assert_problem(
        &call("GET", &format!("{}/v2/nothing", served.url), &[TINES], "").await,
        404,
        "not-found",
    );
    // A method the endpoint does not take, a path that is not UTF-8: problems too.
    let jobs = format!("{}/v1/jobs/0123456789abcdef0123456789abcdef", served.url);
    assert_problem(
        &call("DELETE", &jobs, &[TINES], "").await,
        405,
        "invalid-input",
    );
    let bad_path = format!("{}/v1/tenants/%FF/quarantine", served.url);
    let answer = post_to(&bad_path, &[TINES, JSON], &body(&[MACHINE])).await;
    assert_eq!(
        assert_problem(&answer, 400, "invalid-input")["field"],
        "path"
    );
    assert!(simulator.requests().is_empty(), "nothing reached the API");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_gives_the_same_job_and_never_a_second_post() {
    let (simulator, served) = two_tenants(ServeConfig::default()).await;
    let headers = [TINES, JSON, ("idempotency-key", "incident-42")];
    let first = post(&served, "contoso", &headers, &body(&[MACHINE])).await;
    assert_eq!(first.status, 202, "{}", first.body);
    let again = post(&served, "contoso", &headers, &body(&[MACHINE])).await;
    assert!(matches!(again.status, 200 | 202), "{}", again.body);
    assert_eq!(again.json()["id"], first.json()["id"]);
    finished(&served, first.header("location").unwrap(), TINES).await;
    let later = post(&served, "contoso", &headers, &body(&[MACHINE])).await;
    assert_eq!(
        (later.status, later.json()["id"].clone()),
        (200, first.json()["id"].clone())
    );
    assert_eq!(posts(&simulator), 1);
    // The same key with another body.
    assert_problem(
        &post(&served, "contoso", &headers, &body(&[OTHER])).await,
        409,
        "conflict",
    );
    // Another caller's key of the same name is its own.
    let theirs = [XSOAR, JSON, ("idempotency-key", "incident-42")];
    let other = post(&served, "fabrikam", &theirs, &body(&[MACHINE])).await;
    assert_eq!(other.status, 202, "{}", other.body);
    assert_ne!(other.json()["id"], first.json()["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_answers_when_the_job_is_done_or_the_preference_runs_out() {
    let (_simulator, served) = two_tenants(ServeConfig::default()).await;
    let waiting = json!({"machineIds": [MACHINE], "sha1": SHA1, "comment": "c", "wait": {"timeoutSeconds": 60}}).to_string();
    let url = format!("{}/v1/tenants/contoso/quarantine?wait=true", served.url);
    let done = call("POST", &url, &[TINES, JSON], &waiting).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.header("preference-applied"), Some("wait"));
    let job = done.json();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["outcomes"][0]["action"]["status"], "Succeeded");
    assert_eq!(job["progress"][0]["status"], "Succeeded");
    // Prefer: wait=0 answers at once, before the polls are over.
    let now = post(
        &served,
        "contoso",
        &[TINES, JSON, ("prefer", "wait=0")],
        &waiting,
    )
    .await;
    assert_eq!(now.status, 202, "{}", now.body);
    assert_eq!(now.json()["status"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_leaves_an_audit_record_without_a_secret() {
    let dir = scratch_dir("serve-audit");
    let path = dir.join("audit.jsonl");
    let config = ServeConfig {
        audit_file: Some(path.clone()),
        ..ServeConfig::default()
    };
    let (_simulator, served) = two_tenants(config).await;
    let answer = post(&served, "contoso", &[TINES, JSON], &body(&[MACHINE, "zz"])).await;
    assert_eq!(
        answer.status, 400,
        "bad input leaves no record: {}",
        answer.body
    );
    let answer = post(&served, "contoso", &[TINES, JSON], &body(&[MACHINE, OTHER])).await;
    let job = finished(&served, answer.header("location").unwrap(), TINES).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2, "{text}");
    for (record, machine) in records.iter().zip([MACHINE, OTHER]) {
        assert_eq!(record["requestedBy"], "tines");
        assert_eq!(record["tenant"], "contoso");
        assert_eq!(record["machineId"], machine);
        assert_eq!(record["sha1"], SHA1);
        assert_eq!(record["comment"], "Quarantine by serve");
        assert_eq!(record["outcome"], "Pending");
        assert_eq!(record["jobId"], job["id"]);
        assert!(record["actionId"].is_string());
    }
    assert!(!text.contains(TOKEN) && !text.contains("secret"));
}

#[test]
fn the_committed_openapi_files_are_the_generated_ones() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi");
    for (file, generated) in [
        ("openapi.json", openapi::openapi_json()),
        ("swagger-2.0.json", openapi::swagger2_json()),
    ] {
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        assert!(
            committed == generated,
            "openapi/{file} differs from what the code generates: run `cargo run --bin host-harness -- openapi --out-dir openapi`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_serves_its_openapi_documents() {
    let (_simulator, served) = two_tenants(ServeConfig::default()).await;
    let doc = call("GET", &format!("{}/openapi.json", served.url), &[], "").await;
    assert_eq!(
        (doc.status, doc.body.clone()),
        (200, openapi::openapi_json())
    );
    let v2 = call("GET", &format!("{}/openapi-v2.json", served.url), &[], "").await;
    assert_eq!(v2.json()["swagger"], "2.0");
}

/// `GET /healthz` over TLS to `address`, trusting `ca`, presenting `client` if given: the
/// status, or why the connection failed.
async fn healthz_over_tls(
    address: &str,
    ca: &integration_tests::tls::TestCa,
    client: Option<&defender_simulator::TlsIdentity>,
) -> Result<u16, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some(identity) => {
            let chain = CertificateDer::pem_slice_iter(&identity.certificate_chain_pem)
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(&identity.private_key_pem).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let io = hyper_util::rt::TokioIo::new(tls);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get("/healthz")
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(response.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_client_ca_only_clients_with_its_certificates_get_in() {
    use host_harness::serve::tls::TlsFiles;
    let ca = integration_tests::tls::TestCa::new();
    let dir = scratch_dir("serve-mtls");
    let server = ca.server(integration_tests::tls::Leaf::Localhost);
    std::fs::write(dir.join("cert.pem"), &server.certificate_chain_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &server.private_key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.pem).unwrap();
    let config = ServeConfig {
        tls: Some(TlsFiles {
            cert_file: dir.join("cert.pem"),
            key_file: dir.join("key.pem"),
            client_ca_file: Some(dir.join("ca.pem")),
        }),
        ..ServeConfig::default()
    };
    let (_simulator, served) = two_tenants(config).await;
    let address = served.url.trim_start_matches("http://").to_owned();
    let client = ca.client("tines");
    assert_eq!(
        healthz_over_tls(&address, &ca, Some(&client)).await,
        Ok(200)
    );
    // No certificate, or one another CA signed: no HTTP at all.
    assert!(healthz_over_tls(&address, &ca, None).await.is_err());
    let stranger = integration_tests::tls::TestCa::new().client("stranger");
    assert!(
        healthz_over_tls(&address, &ca, Some(&stranger))
            .await
            .is_err()
    );
    // Plain HTTP on the TLS port gets no answer either.
    let plain = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::spawn(
            async move { call("GET", &format!("http://{address}/healthz"), &[], "").await },
        ),
    )
    .await;
    assert!(!matches!(plain, Ok(Ok(ref answer)) if answer.status == 200));
}
