//! The two paths `bench` compares: the component through the host, and a plain Rust client
//! doing what the component does over the host's own HTTP client, with device IDs no server
//! has seen before.

use super::{COMMENT, SHA1};
use anyhow::{Result, bail};
use bytes::Bytes;
use defender_host::credentials::{Secret, StaticToken};
use defender_host::outbound::ApiOrigin;
use defender_host::rate_limit::Budget;
use defender_host::transport::HttpClient;
use defender_host::{Runtime, Tenant};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The most of an answer the native client reads.
const MAX_BENCH_ANSWER_BYTES: usize = 1024 * 1024;

/// The tenant the component path runs as: no rate limit, a fixed token, and no per-tenant cap
/// below the runtime's own (the benchmark measures the runtime, one tenant at a time).
pub fn bench_tenant(base: &str, token: Secret) -> Result<Tenant> {
    let unlimited = Budget {
        per_minute: u32::MAX,
        per_hour: u32::MAX,
    };
    Ok(
        Tenant::new(ApiOrigin::parse(base)?, Arc::new(StaticToken::new(token)))
            .with_budget(unlimited)
            .with_max_concurrent_invocations(defender_host::MAX_IN_FLIGHT)
            .with_max_requests_in_flight(defender_host::MAX_IN_FLIGHT),
    )
}

/// A new device ID for every call, prefixed by one random to this run, so a server that lives
/// longer than the run (`--api-url`) never sees a device twice and never answers
/// `ActiveRequestAlreadyExists`.
pub struct Machines {
    run: u32,
    next: AtomicU64,
}

impl Machines {
    /// A numbering for this run.
    pub fn new() -> Result<Self> {
        let mut run = [0u8; 4];
        getrandom::fill(&mut run).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        Ok(Self {
            run: u32::from_le_bytes(run),
            next: AtomicU64::new(0),
        })
    }

    /// The next device's ID.
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}{n:032x}", self.run)
    }
}

/// A plain Rust client doing what the component does: the host's own HTTP client (the same
/// pool of kept-alive connections), the same body built with serde_json, the same members read
/// from the answer.
#[derive(Clone)]
pub struct Native {
    client: HttpClient,
    base: String,
    authorization: Arc<str>,
}

impl Native {
    /// A client for the server at `base`, through `runtime`'s pool as `tenant` would reach it.
    pub fn new(runtime: &Runtime, tenant: &Tenant, base: &str, token: &Secret) -> Result<Self> {
        Ok(Self {
            client: runtime.http_client(tenant)?,
            base: base.to_owned(),
            authorization: format!("Bearer {}", token.expose()).into(),
        })
    }

    /// One action for a new device.
    pub async fn call(&self, machines: &Machines) -> Result<()> {
        let machine = machines.next();
        let body = json!({"Comment": COMMENT, "Sha1": SHA1}).to_string();
        let request = http::Request::post(format!(
            "{}/api/machines/{machine}/StopAndQuarantineFile",
            self.base
        ))
        .header("authorization", &*self.authorization)
        .header("content-type", "application/json")
        .body(Bytes::from(body))?;
        let reply = self
            .client
            .exchange(request, MAX_BENCH_ANSWER_BYTES)
            .await?;
        let status = reply.status.as_u16();
        let action: Value = serde_json::from_slice(&reply.body)?;
        let parsed = (
            action["id"].as_str().map(str::to_owned),
            action["status"].as_str().map(str::to_owned),
            action["relatedFileInfo"]["fileIdentifier"]
                .as_str()
                .map(str::to_owned),
        );
        if status != 201 || parsed.0.is_none() {
            bail!("the native call got {status}");
        }
        Ok(())
    }
}

/// One action for a new device, through the component.
pub async fn component_call(runtime: &Runtime, tenant: &Tenant, machines: &Machines) -> Result<()> {
    let machine = machines.next();
    let outcome = runtime
        .stop_and_quarantine(tenant, &machine, SHA1, COMMENT)
        .await?;
    outcome
        .result
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("the component call failed: {e:?}"))
}
