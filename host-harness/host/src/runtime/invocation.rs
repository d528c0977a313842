//! The state of one invocation (a wasmtime `Store`'s data) and the host side of the imports.

use crate::bindings::defender::endpoint::{credentials, progress, rate_limit};
use crate::limits::Limits;
use crate::limits::{CpuMeter, MemoryQuota};
use crate::outbound::Outbound;
use crate::rate_limit::Api;
use crate::tenants::Tenant;
use crate::transport::HttpClient;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The most random bytes one `wasi:random` call may ask for: the component asks for eight at a
/// time; the default (64 MiB) would let a guest make the host fill 64 MiB per call.
const MAX_RANDOM_BYTES: u64 = 1024;
/// The most bytes one set of header fields may hold (wasi-http's default is 128 KiB): the
/// component's requests carry three short headers, and this bounds what a guest holding its
/// 1,000 resources as fields can make the host keep.
const MAX_FIELDS_BYTES: usize = 16 * 1024;

/// Where a call's progress updates go.
pub type ProgressSink = Arc<dyn Fn(&progress::Update) + Send + Sync>;

/// One invocation's store data.
pub struct Invocation {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    pub(crate) outbound: Outbound,
    pub(crate) memory: MemoryQuota,
    pub(crate) cpu: CpuMeter,
    /// How many times the invocation's future has been polled (see [`CpuMeter`]).
    pub(crate) polls: Arc<AtomicU64>,
    tenant: Tenant,
    client: HttpClient,
    progress: Option<ProgressSink>,
    /// Whether this invocation has had its one refreshed credential.
    refreshed: bool,
}

impl Invocation {
    /// Fresh state for one call for `tenant`: no environment, no stdio, no files, no sockets.
    pub fn new(
        tenant: Tenant,
        limits: &Limits,
        client: HttpClient,
        progress: Option<ProgressSink>,
    ) -> Self {
        let polls = Arc::new(AtomicU64::new(0));
        Self {
            wasi: WasiCtx::builder().max_random_size(MAX_RANDOM_BYTES).build(),
            http: {
                let mut http = WasiHttpCtx::new();
                http.set_field_size_limit(MAX_FIELDS_BYTES);
                http
            },
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(limits.resources);
                table
            },
            outbound: Outbound::new(
                tenant.name(),
                client.clone(),
                tenant.origin.clone(),
                tenant.budgets.clone(),
                tenant.request_turns(),
                limits,
            ),
            memory: MemoryQuota::new(limits),
            cpu: CpuMeter::new(limits.cpu, polls.clone()),
            polls,
            tenant,
            client,
            progress,
            refreshed: false,
        }
    }
}

impl WasiView for Invocation {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Invocation {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl credentials::Host for Invocation {
    /// A refresh is honoured once per invocation, and only after the API answered 401 to this
    /// invocation's token: a guest cannot make the host fetch tokens in a loop.
    async fn get(&mut self, refresh: bool) -> Result<credentials::Grant, String> {
        let stale = if refresh && !self.refreshed && self.outbound.saw_unauthorized() {
            self.refreshed = true;
            self.outbound.token()
        } else {
            None
        };
        let token = self
            .tenant
            .tokens
            .token(&self.client, stale)
            .await
            .map_err(|e| e.to_string())?;
        self.outbound.set_token(token);
        Ok(credentials::Grant {
            api_base_url: self.outbound.origin().base_url(),
            authorization: self.outbound.seal().to_owned(),
        })
    }
}

impl rate_limit::Host for Invocation {
    async fn acquire(&mut self, api: rate_limit::Api) -> rate_limit::Permit {
        let api = Api::from(api);
        let answer = self.tenant.budgets.try_acquire(api).await;
        crate::telemetry::permit(self.tenant.name(), api, answer.is_ok());
        match answer {
            Ok(()) => {
                self.outbound.add_permit(api);
                rate_limit::Permit::Granted
            }
            Err(wait) => {
                rate_limit::Permit::Denied(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
            }
        }
    }

    async fn throttled(&mut self, api: rate_limit::Api, retry_after_ms: u64) {
        self.outbound
            .guest_throttled(api.into(), Duration::from_millis(retry_after_ms))
            .await;
    }
}

impl progress::Host for Invocation {
    async fn report(&mut self, update: progress::Update) {
        if let Some(sink) = &self.progress {
            sink(&update);
        }
    }
}

/// The most bytes of an ID in a progress update: the API's are 40 (devices) and 36 (actions).
const MAX_PROGRESS_ID_BYTES: usize = 256;
/// The most bytes of text in a progress update's error: the component cuts a failed look's
/// message to 512 characters, and its code and target to 256 each (at most 4 bytes a
/// character).
const MAX_PROGRESS_ERROR_BYTES: usize = 32 * 1024;
/// The most progress updates handed to the sink in a second: a poll round of the component
/// reports each device once, and rounds are seconds apart.
const MAX_PROGRESS_PER_SECOND: u32 = 1000;

/// `sink` behind a gate shared by every invocation of one call (a fan-out included): updates
/// with IDs and an error of a sane size, at a bounded rate, reach it; the rest are dropped, so a guest
/// cannot flood the embedder's sink.
pub(crate) fn gated(sink: ProgressSink) -> ProgressSink {
    let gate = Mutex::new(ProgressGate::new());
    Arc::new(move |update: &progress::Update| {
        let admitted = gate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admits(update);
        if admitted {
            sink(update);
        }
    })
}

/// Which progress updates pass: IDs and errors of a sane size, at most so many a second.
struct ProgressGate {
    window: Instant,
    in_window: u32,
}

impl ProgressGate {
    fn new() -> Self {
        Self {
            window: Instant::now(),
            in_window: 0,
        }
    }

    fn admits(&mut self, update: &progress::Update) -> bool {
        if update.machine_id.len() > MAX_PROGRESS_ID_BYTES
            || update.action_id.len() > MAX_PROGRESS_ID_BYTES
            || update
                .error
                .as_ref()
                .is_some_and(|e| e.text_bytes() > MAX_PROGRESS_ERROR_BYTES)
        {
            return false;
        }
        if self.window.elapsed() >= Duration::from_secs(1) {
            self.window = Instant::now();
            self.in_window = 0;
        }
        self.in_window = self.in_window.saturating_add(1);
        self.in_window <= MAX_PROGRESS_PER_SECOND
    }
}

impl crate::bindings::defender::endpoint::types::Host for Invocation {}
