//! A plain HTTP/1.1 client for the tests, over `std::net` (one connection per request), and
//! the helpers they share.

use crate::Simulator;
use serde_json::{Value, json};
use std::future::Future;
use std::io::{Read, Write};

/// The static token the test simulators accept.
pub const TOKEN: &str = "simulator-test-token";
/// The API page's file.
pub const SHA1: &str = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9";

/// A device ID from a number.
pub fn machine(n: u8) -> String {
    format!("{n:02x}").repeat(20)
}

/// Runs a test on a runtime of its own.
pub fn run(test: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(test);
}

/// A simulator that accepts [`TOKEN`].
pub async fn start() -> Simulator {
    Simulator::start(0, Some(TOKEN)).await.unwrap()
}

/// What came back.
pub struct Answered {
    /// The status.
    pub status: u16,
    /// The headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body as JSON (`null` if it is not).
    pub body: Value,
}

impl Answered {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, value)| value.as_str())
    }
}

/// Sends `head` (request line and headers but `Host`, `Content-Length` and `Connection`) and
/// `body` on a connection of its own; `None` when the simulator dropped the connection without
/// answering.
async fn try_exchange(simulator: &Simulator, head: String, body: &str) -> Option<Answered> {
    let host = simulator
        .base_url()
        .trim_start_matches("http://")
        .to_owned();
    let request = format!(
        "{head}\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let raw = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&host).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        // A connection dropped on purpose may end in a reset: what was read is all there is.
        let _ = stream.read_to_end(&mut raw);
        String::from_utf8(raw).unwrap()
    })
    .await
    .unwrap();
    if raw.is_empty() {
        return None;
    }
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    Some(Answered {
        status,
        headers,
        body,
    })
}

/// [`try_exchange`], which must be answered.
async fn exchange(simulator: &Simulator, head: String, body: &str) -> Answered {
    let answered = try_exchange(simulator, head, body).await;
    answered.expect("the simulator dropped the connection")
}

/// Sends an API request with `token` and this `Content-Type` (none with `None`); `None` when
/// the connection was dropped without an answer.
pub async fn try_send(
    simulator: &Simulator,
    token: &str,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> Option<Answered> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nAuthorization: Bearer {token}");
    if let Some(content_type) = content_type {
        head.push_str(&format!("\r\nContent-Type: {content_type}"));
    }
    try_exchange(simulator, head, body).await
}

/// Sends an API request with `token`.
pub async fn send_as(
    simulator: &Simulator,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> Answered {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json"
    );
    exchange(simulator, head, body).await
}

/// A token from the simulator's directory for an application registered with a secret.
pub async fn token_for(simulator: &Simulator, tenant: &str, client: &str, secret: &str) -> String {
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", client)
        .append_pair("client_secret", secret)
        .append_pair("scope", "https://api.securitycenter.microsoft.com/.default")
        .finish();
    let head = format!(
        "POST /{tenant}/oauth2/v2.0/token HTTP/1.1\r\n\
         Content-Type: application/x-www-form-urlencoded"
    );
    let answered = exchange(simulator, head, &form).await;
    answered.body["access_token"].as_str().unwrap().to_owned()
}

/// `GET path` with [`TOKEN`].
pub async fn get(simulator: &Simulator, path: &str) -> Answered {
    send_as(simulator, TOKEN, "GET", path, "").await
}

/// The create path of a device.
pub fn create_path(machine_id: &str) -> String {
    format!("/api/machines/{machine_id}/StopAndQuarantineFile")
}

/// A valid create body.
pub fn create_body() -> String {
    json!({"Comment": "test", "Sha1": SHA1}).to_string()
}

/// Creates an action on the device, which must succeed.
pub async fn create(simulator: &Simulator, machine_id: &str) -> Answered {
    let answered = send_as(
        simulator,
        TOKEN,
        "POST",
        &create_path(machine_id),
        &create_body(),
    )
    .await;
    assert_eq!(answered.status, 201, "{}", answered.body);
    answered
}

/// An action's ID from its JSON.
pub fn id_of(action: &Answered) -> String {
    action.body["id"].as_str().unwrap().to_owned()
}

/// An API's (answered, throttled) counters.
pub fn calls(simulator: &Simulator, api: &str) -> (u64, u64) {
    let all = simulator.api_calls();
    let found = all.iter().find(|c| c.api == api).unwrap();
    (found.answered, found.throttled)
}

/// The path and query of a next link the simulator gave.
pub fn next_of(simulator: &Simulator, page: &Answered) -> Option<String> {
    let link = page.body["@odata.nextLink"].as_str()?;
    Some(link.strip_prefix(&simulator.base_url()).unwrap().to_owned())
}
