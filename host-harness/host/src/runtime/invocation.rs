//! The state of one invocation (a wasmtime `Store`'s data) and the host side of the imports.

use crate::bindings::defender::endpoint::{credentials, progress, rate_limit};
use crate::limits::Limits;
use crate::limits::{CpuMeter, MemoryQuota};
use crate::outbound::Outbound;
use crate::tenants::Tenant;
use crate::transport::HttpClient;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

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
    tenant: Tenant,
    client: HttpClient,
    progress: Option<ProgressSink>,
}

impl Invocation {
    /// Fresh state for one call for `tenant`: no environment, no stdio, no files, no sockets.
    pub fn new(
        tenant: Tenant,
        limits: &Limits,
        client: HttpClient,
        progress: Option<ProgressSink>,
    ) -> Self {
        Self {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(limits.resources);
                table
            },
            outbound: Outbound::new(client.clone(), tenant.origin.clone(), limits),
            memory: MemoryQuota::new(limits),
            cpu: CpuMeter::new(limits.cpu),
            tenant,
            client,
            progress,
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
    async fn get(&mut self, refresh: bool) -> Result<credentials::Grant, String> {
        let token = self
            .tenant
            .tokens
            .token(
                &self.client,
                if refresh { self.outbound.token() } else { None },
            )
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
    async fn acquire(&mut self) -> rate_limit::Permit {
        match self.tenant.limiter.try_acquire() {
            Ok(()) => {
                self.outbound.add_permit();
                rate_limit::Permit::Granted
            }
            Err(wait) => {
                rate_limit::Permit::Denied(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX))
            }
        }
    }

    async fn throttled(&mut self, retry_after_ms: u64) {
        self.tenant
            .limiter
            .pause(Duration::from_millis(retry_after_ms));
    }
}

impl progress::Host for Invocation {
    async fn report(&mut self, update: progress::Update) {
        if let Some(sink) = &self.progress {
            sink(&update);
        }
    }
}

impl crate::bindings::defender::endpoint::types::Host for Invocation {}
