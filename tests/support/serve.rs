//! A real `serve` on 127.0.0.1 for a test, and an HTTP client to call it.

use bytes::Bytes;
use defender_host::Tenant;
use host_harness::serve::Service;
use host_harness::serve::config::{ApiKey, ServeConfig};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// A running service; stopped (gracefully) by [`Served::stop`] or when dropped (at once).
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Served {
    /// Starts `config`'s service for `tenants` on a free port, with the test component.
    pub async fn start(mut config: ServeConfig, tenants: Vec<(String, Tenant)>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        config.listen = listener.local_addr().expect("an address");
        // Audit records on a test's stdout would go around the test harness's capture.
        if config.audit_file.is_none() {
            config.audit_file = Some(crate::scratch_dir("serve").join("audit.jsonl"));
        }
        let url = format!("http://{}", config.listen);
        let service = Service::new(config, crate::component().clone(), tenants).expect("a service");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let signal = async move {
                let _ = stopped.await;
            };
            service
                .run(listener, signal)
                .await
                .expect("the service runs");
        });
        Self {
            url,
            stop: Some(stop),
            task,
        }
    }

    /// Stops taking requests, waits for jobs up to the config's grace, and returns when done.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        task.await.expect("the service stops cleanly");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An API key called `name` for `secret`, scoped to `tenants`.
pub fn key(name: &str, secret: &str, tenants: &[&str], metrics: bool) -> ApiKey {
    ApiKey::for_secret(name, secret, tenants, metrics)
}

/// What the service answered.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    /// The body, as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends `method url` with `headers` and `body`.
pub async fn call(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("a request");
    let response = client.request(request).await.expect("the service answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}
