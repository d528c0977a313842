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
    let refused = exchanges.recv().await.unwrap();
    assert_eq!((refused.authorized, refused.status), (false, Some(401)));
    let logged = serde_json::to_string(&refused).unwrap();
    assert!(
        !logged.contains("wrong") && !logged.contains(TOKEN),
        "{logged}"
    );
}
