//! A kept-alive HTTP/1.1 client for the service benchmarks: JSON in, status and JSON out.

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// A client of one service.
#[derive(Clone)]
pub struct Client {
    pool: Pool<HttpConnector, Full<Bytes>>,
    auth: String,
}

impl Client {
    /// A client presenting `key`.
    pub fn new(key: &str) -> Self {
        Self {
            pool: Pool::builder(TokioExecutor::new()).build_http(),
            auth: format!("Bearer {key}"),
        }
    }

    /// `method url` with `headers` and a JSON `body` (none when empty): the status and the body
    /// as JSON (`null` when it is not).
    pub async fn call(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(u16, serde_json::Value)> {
        let (status, bytes) = self.send(method, url, headers, body).await?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or_default()))
    }

    /// `GET url`'s body as text.
    pub async fn text(&self, url: &str) -> Result<String> {
        let (_, bytes) = self.send("GET", url, &[], "").await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<(u16, Bytes)> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(url)
            .header("authorization", &self.auth);
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body.to_owned())))?;
        let response = self
            .pool
            .request(request)
            .await
            .with_context(|| format!("{method} {url}"))?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| anyhow::anyhow!("reading the answer to {method} {url}: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}
