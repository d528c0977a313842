//! The simulator is held to the API contract too: these requests are written by hand, byte for
//! byte, so they can break the rules the component never breaks.

use integration_tests::{MACHINE, SHA1, TOKEN, simulator};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one raw HTTP/1.1 request and returns the status and the JSON body.
async fn raw(base: &str, method: &str, path: &str, headers: &[&str], body: &str) -> (u16, Value) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(&format!("{header}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn bearer() -> String {
    format!("Authorization: Bearer {TOKEN}")
}

const JSON: &str = "Content-Type: application/json";

fn action_path() -> String {
    format!("/api/machines/{MACHINE}/StopAndQuarantineFile")
}

fn body(comment_key: &str, sha1_key: &str) -> String {
    format!(r#"{{"{comment_key}":"c","{sha1_key}":"{SHA1}"}}"#)
}

#[tokio::test]
async fn the_documented_request_creates_a_realistic_action() {
    let simulator = simulator().await;
    let (status, action) = raw(
        &simulator.base_url(),
        "POST",
        &action_path(),
        &[&bearer(), JSON],
        &body("Comment", "Sha1"),
    )
    .await;
    assert_eq!(status, 201);
    for member in [
        "id",
        "type",
        "status",
        "machineId",
        "requestor",
        "requestorComment",
        "creationDateTimeUtc",
        "lastUpdateDateTimeUtc",
        "relatedFileInfo",
        "@odata.context",
    ] {
        assert!(action.get(member).is_some(), "{member} missing");
    }
    assert_eq!(action["relatedFileInfo"]["fileIdentifierType"], "Sha1");
}

#[tokio::test]
async fn the_bearer_is_checked() {
    let simulator = simulator().await;
    let base = simulator.base_url();
    let (status, error) = raw(
        &base,
        "POST",
        &action_path(),
        &[JSON],
        &body("Comment", "Sha1"),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (401, Some("Unauthorized"))
    );
    let wrong = "Authorization: Bearer not-the-token";
    let (status, _) = raw(
        &base,
        "POST",
        &action_path(),
        &[wrong, JSON],
        &body("Comment", "Sha1"),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = raw(&base, "GET", "/api/machineactions", &[], "").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_content_type_and_the_case_sensitive_body_are_checked() {
    let simulator = simulator().await;
    let base = simulator.base_url();
    let auth = bearer();
    let text = "Content-Type: text/plain";
    let (status, _) = raw(
        &base,
        "POST",
        &action_path(),
        &[&auth, text],
        &body("Comment", "Sha1"),
    )
    .await;
    assert_eq!(status, 415);
    let (status, error) = raw(
        &base,
        "POST",
        &action_path(),
        &[&auth, JSON],
        &body("comment", "sha1"),
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("MissingRequiredParameter"))
    );
    let extra = format!(r#"{{"Comment":"c","Sha1":"{SHA1}","Extra":1}}"#);
    let (status, error) = raw(&base, "POST", &action_path(), &[&auth, JSON], &extra).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("InvalidRequestBody"))
    );
    let md5 = r#"{"Comment":"c","Sha1":"d41d8cd98f00b204e9800998ecf8427e"}"#;
    let (status, error) = raw(&base, "POST", &action_path(), &[&auth, JSON], md5).await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("InvalidHashValue"))
    );
    assert_eq!(simulator.action_count(), 0);
}

#[tokio::test]
async fn a_second_request_while_one_is_pending_is_active_request_already_exists() {
    let simulator = simulator().await;
    let base = simulator.base_url();
    let auth = bearer();
    let (first, _) = raw(
        &base,
        "POST",
        &action_path(),
        &[&auth, JSON],
        &body("Comment", "Sha1"),
    )
    .await;
    let (second, error) = raw(
        &base,
        "POST",
        &action_path(),
        &[&auth, JSON],
        &body("Comment", "Sha1"),
    )
    .await;
    assert_eq!((first, second), (201, 400));
    assert_eq!(error["error"]["code"], "ActiveRequestAlreadyExists");
    let filter = format!(
        "/api/machineactions?$filter=machineId%20eq%20%27{MACHINE}%27%20and%20type%20eq%20%27StopAndQuarantineFile%27"
    );
    let (status, listing) = raw(&base, "GET", &filter, &[&auth], "").await;
    assert_eq!(status, 200);
    assert_eq!(listing["value"].as_array().unwrap().len(), 1);
    let (status, error) = raw(
        &base,
        "GET",
        "/api/machineactions?$filter=nonsense",
        &[&auth],
        "",
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (400, Some("ODataError"))
    );
}

#[tokio::test]
async fn unknown_paths_are_not_found() {
    let simulator = simulator().await;
    let (status, error) = raw(
        &simulator.base_url(),
        "GET",
        "/api/alerts",
        &[&bearer()],
        "",
    )
    .await;
    assert_eq!(
        (status, error["error"]["code"].as_str()),
        (404, Some("ResourceNotFound"))
    );
}

#[tokio::test]
async fn a_watcher_hears_each_exchange_with_its_status_but_never_the_token() {
    let simulator = simulator().await;
    let mut exchanges = simulator.watch();
    let base = simulator.base_url();
    raw(
        &base,
        "POST",
        &action_path(),
        &[&bearer(), JSON],
        &body("Comment", "Sha1"),
    )
    .await;
    raw(
        &base,
        "GET",
        "/api/machineactions/x",
        &["Authorization: Bearer wrong"],
        "",
    )
    .await;

    let created = exchanges.recv().await.unwrap();
    assert_eq!(created.method, "POST");
    assert_eq!(created.path, action_path());
    assert_eq!(created.content_type.as_deref(), Some("application/json"));
    assert!(created.authorized);
    assert_eq!(created.body, body("Comment", "Sha1"));
    assert_eq!(created.status, Some(201));
    let logged = serde_json::to_string(&created).unwrap();
    assert!(!logged.contains(TOKEN), "the accepted token: {logged}");
    assert!(logged.contains("[redacted]"), "{logged}");
    let refused = exchanges.recv().await.unwrap();
    assert_eq!((refused.authorized, refused.status), (false, Some(401)));
    let logged = serde_json::to_string(&refused).unwrap();
    assert!(!logged.contains("wrong"), "the refused token: {logged}");
}

/// Sends `head` (request line and headers, without the blank line) and an empty body; returns
/// the status and the body as text.
async fn raw_head(base: &str, head: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("{head}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

#[tokio::test]
async fn a_request_without_one_valid_host_gets_the_front_doors_400() {
    // RFC 9112 §3.2: no Host, several, or one that is not valid: 400, from the front door.
    let simulator = simulator().await;
    let base = simulator.base_url();
    let authority = base.trim_start_matches("http://").to_owned();
    let port = authority.rsplit(':').next().unwrap().to_owned();
    let path = format!("GET /api/machineactions/x HTTP/1.1\r\n{}", bearer());
    for head in [
        path.clone(),
        format!("{path}\r\nHost: {authority}\r\nHost: {authority}"),
        format!("{path}\r\nHost: user@localhost:{port}"),
        format!("{path}\r\nHost: localhost:1"),
        format!("{path}\r\nHost: api.attacker.example:{port}"),
        format!("{path}\r\nHost: "),
    ] {
        let (status, body) = raw_head(&base, &head).await;
        assert_eq!(status, 400, "{head}");
        assert!(body.contains("Bad Request - Invalid Hostname"), "{body}");
    }
    let (status, _) = raw_head(&base, &format!("{path}\r\nHost: localhost:{port}")).await;
    assert_eq!(
        status, 404,
        "a good Host reaches the API, which has no such action"
    );
    let recorded = simulator.requests();
    assert_eq!(recorded.len(), 7);
    assert!(recorded[..6].iter().all(|r| r.host.is_none()));
    assert_eq!(
        recorded[6].host.as_deref(),
        Some(format!("localhost:{port}").as_str())
    );
}

#[tokio::test]
async fn the_token_endpoint_wants_exactly_the_grants_form() {
    let simulator = simulator().await;
    simulator.register_client(
        "t1",
        "app-1",
        defender_simulator::ClientProof::Secret("s3cret-value".into()),
    );
    let base = simulator.base_url();
    let form = "Content-Type: application/x-www-form-urlencoded";
    let good = "grant_type=client_credentials&client_id=app-1&scope=https%3A%2F%2Fapi.securitycenter.microsoft.com%2F.default&client_secret=s3cret-value";
    let cases = [
        (form, good, 200, None),
        (
            "Content-Type: application/json",
            good,
            400,
            Some("AADSTS900144"),
        ),
        (
            form,
            "grant_type=client_credentials&client_id=app-1&client_secret=s3cret-value",
            400,
            Some("AADSTS900144"),
        ),
        (
            form,
            &format!("{good}&client_id=app-1") as &str,
            400,
            Some("repeats"),
        ),
        (
            form,
            &format!("{good}&resource=x") as &str,
            400,
            Some("unexpected parameter"),
        ),
        (
            form,
            &good.replace("%2F.default", "") as &str,
            400,
            Some("AADSTS1002012"),
        ),
        (
            form,
            &good.replace("client_credentials", "password") as &str,
            400,
            Some("AADSTS70003"),
        ),
        (
            form,
            &good.replace("app-1", "app-2") as &str,
            400,
            Some("AADSTS700016"),
        ),
        (
            form,
            &good.replace("s3cret-value", "guess") as &str,
            401,
            Some("AADSTS7000215"),
        ),
    ];
    let mut exchanges = simulator.watch();
    for (content_type, body, status, code) in cases {
        let (got, answer) = raw(
            &base,
            "POST",
            "/t1/oauth2/v2.0/token",
            &[content_type],
            body,
        )
        .await;
        assert_eq!(got, status, "{body}");
        if let Some(code) = code {
            let description = answer["error_description"].as_str().unwrap_or_default();
            assert!(description.contains(code), "{body}: {answer}");
            for member in [
                "error",
                "error_codes",
                "trace_id",
                "correlation_id",
                "timestamp",
            ] {
                assert!(answer.get(member).is_some(), "{member} in {answer}");
            }
        } else {
            assert!(
                answer["access_token"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("sim."))
            );
            assert_eq!(answer["token_type"], "Bearer");
        }
    }
    let first = exchanges.recv().await.unwrap();
    let logged = serde_json::to_string(&first).unwrap();
    assert!(!logged.contains("s3cret-value"), "{logged}");
    assert!(
        first.body.contains("client_secret=[redacted]"),
        "{}",
        first.body
    );
    let not_a_form = exchanges.recv().await.unwrap();
    assert!(
        not_a_form.body.starts_with("[redacted: a ") && !not_a_form.body.contains("s3cret"),
        "{}",
        not_a_form.body
    );
}

#[tokio::test]
async fn imds_wants_its_metadata_header() {
    let simulator = simulator().await;
    simulator.set_managed_identities(defender_simulator::ManagedIdentities {
        system_assigned: true,
        ..Default::default()
    });
    let base = simulator.base_url();
    let path = "/metadata/identity/oauth2/token?api-version=2019-08-01&resource=https%3A%2F%2Fapi.securitycenter.microsoft.com";
    let (status, answer) = raw(&base, "GET", path, &[], "").await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error_description"],
        "Required metadata header not specified"
    );
    let (status, answer) = raw(&base, "GET", path, &["Metadata: true"], "").await;
    assert_eq!(status, 200);
    assert!(
        answer["expires_in"].is_string(),
        "IMDS writes numbers as strings: {answer}"
    );
    let other = format!("{path}&client_id=not-assigned");
    let (status, answer) = raw(&base, "GET", &other, &["Metadata: true"], "").await;
    assert_eq!(
        (status, answer["error_description"].as_str()),
        (400, Some("Identity not found"))
    );
}
