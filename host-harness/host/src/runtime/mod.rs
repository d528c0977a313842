//! Compiling the component once and running each call in a fresh, limited store.

mod builder;
pub mod code_cache;
mod fanout;
mod invocation;
mod sizing;

pub use builder::RuntimeBuilder;
pub use invocation::ProgressSink;
use tracing::Instrument;

use crate::bindings::exports::defender::endpoint::actions::{Prepared, QuarantineRequest};
use crate::bindings::{Defender, DefenderPre};
use crate::limits::LimitExceeded;
use crate::limits::Limits;
use crate::rate_limit::Api;
use crate::tenants::Tenant;
use crate::transport::{ConnectionPool, HttpClient, NetworkError, Timeouts};
use crate::{ActionError, MachineAction};
use code_cache::Source;
use invocation::Invocation;
pub(crate) use sizing::MOST_MEMORY;
use sizing::Sizing;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::Semaphore;
use wasmtime::component::ResourceTableError;
use wasmtime::{CallHook, Engine, Store, UpdateDeadline};

/// How often the epoch advances; the CPU limit is checked at this granularity.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How many invocations run at once unless the embedder says otherwise.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;
/// The most invocations a runtime may be asked to run at once: each is a pooled slot of
/// reserved address space.
pub const MAX_IN_FLIGHT: usize = 10_000;

/// The pool's slots kept for `prepare` beside `max_in_flight`.
pub(crate) const CHECK_SLOTS: usize = 16;

/// A failure of the host or the sandbox, as opposed to the action's own [`ActionError`].
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// The engine could not be configured or the component could not be compiled or linked.
    #[error("loading the component: {0:#}")]
    Load(wasmtime::Error),
    /// The call ran into one of its limits and was stopped.
    #[error("the call was stopped: {0}")]
    Limit(LimitExceeded),
    /// The component trapped or could not be instantiated.
    #[error("the component failed: {0:#}")]
    Trap(wasmtime::Error),
    /// A network setting (the runtime's or the tenant's proxy and roots) could not be put to use.
    #[error("the network settings: {0}")]
    Network(#[from] NetworkError),
    /// The component answered outside its contract (e.g. `prepare` named devices it was not
    /// given), so the host acted on none of it.
    #[error("the component broke its contract: {0}")]
    Contract(String),
}

/// What a call produced, with what the host saw of it.
#[derive(Debug)]
pub struct Outcome<T> {
    /// The component's answer.
    pub result: Result<T, ActionError>,
    /// Requests the outbound policy refused, with the reason for each.
    pub denials: Vec<String>,
    /// Requests the outbound policy let through.
    pub requests_sent: u32,
    /// Why requests that were let through got no answer (a certificate not trusted, a proxy
    /// refusing the tunnel), in order; the component itself only sees an error code.
    pub connection_errors: Vec<String>,
    /// Why the host stopped waiting for a fan-out's actions before the component was done (the
    /// limit its invocation ran into); the outcomes keep the last status seen.
    pub wait_stopped: Option<String>,
}

/// An export call in progress: the component's answer, or the trap that ended it.
type ExportCall<'a, T> =
    Pin<Box<dyn Future<Output = wasmtime::Result<Result<T, ActionError>>> + Send + 'a>>;

/// One compiled component, ready to be instantiated per call. Cheap to clone (clones share
/// everything); any number of calls, for any tenants, may be made at once, and at most
/// `max_in_flight` run at a time; the rest wait their turn.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

/// What every clone of a runtime shares.
struct Shared {
    engine: Engine,
    pre: DefenderPre<Invocation>,
    limits: Limits,
    in_flight: Semaphore,
    /// Slots of their own for `prepare`, which sends nothing: a request is checked even while
    /// every other slot (and the tenant's every turn) is held by calls that wait for hours.
    checks: Semaphore,
    pool: ConnectionPool,
    source: Source,
    cache_warning: Option<String>,
    ticking: Arc<AtomicBool>,
}

impl Runtime {
    /// Compiles and links `component` (the bytes of a `.wasm` component) with the default
    /// options and these limits; see [`RuntimeBuilder`] for the rest.
    pub fn new(component: &[u8], limits: Limits) -> Result<Self, RuntimeError> {
        RuntimeBuilder::default().limits(limits).build(component)
    }

    /// Options for a runtime: limits, concurrency, a precompiled-code cache.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    pub(crate) fn from_parts(
        engine: Engine,
        pre: DefenderPre<Invocation>,
        limits: Limits,
        max_in_flight: usize,
        pool: ConnectionPool,
        source: Source,
        cache_warning: Option<String>,
    ) -> Self {
        let ticking = Arc::new(AtomicBool::new(true));
        spawn_ticker(engine.clone(), ticking.clone());
        let shared = Shared {
            engine,
            pre,
            limits,
            in_flight: Semaphore::new(max_in_flight),
            checks: Semaphore::new(CHECK_SLOTS),
            pool,
            source,
            cache_warning,
            ticking,
        };
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Whether the component's code came from the cache or was compiled.
    pub fn source(&self) -> Source {
        self.shared.source
    }

    /// Why the code cache (or an entry in it) was not used, when it was refused: the code was
    /// compiled afresh instead.
    pub fn cache_warning(&self) -> Option<&str> {
        self.shared.cache_warning.as_deref()
    }

    /// The limits a call for `tenant` gets: the tenant's own, or the runtime's defaults.
    pub fn limits_for(&self, tenant: &Tenant) -> Limits {
        tenant.limits.unwrap_or(self.shared.limits)
    }

    /// Runs `stop-and-quarantine` for one device.
    pub async fn stop_and_quarantine(
        &self,
        tenant: &Tenant,
        machine_id: &str,
        sha1: &str,
        comment: &str,
    ) -> Result<Outcome<MachineAction>, RuntimeError> {
        let args = (machine_id.to_owned(), sha1.to_owned(), comment.to_owned());
        self.run(
            tenant,
            "stop-and-quarantine",
            Sizing::starting_with(Api::CreateAction),
            None,
            move |guest, store| {
                Box::pin(async move {
                    let (machine_id, sha1, comment) = args;
                    guest
                        .defender_endpoint_actions()
                        .call_stop_and_quarantine(store, &machine_id, &sha1, &comment)
                        .await
                })
            },
        )
        .await
    }

    /// Runs `prepare`: checks and normalises a request without sending anything.
    pub async fn prepare(
        &self,
        tenant: &Tenant,
        request: QuarantineRequest,
    ) -> Result<Outcome<Prepared>, RuntimeError> {
        self.run(
            tenant,
            "prepare",
            Sizing::checks(),
            None,
            move |guest, store| {
                Box::pin(async move {
                    guest
                        .defender_endpoint_actions()
                        .call_prepare(store, &request)
                        .await
                })
            },
        )
        .await
    }

    /// Runs `get-action`.
    pub async fn get_action(
        &self,
        tenant: &Tenant,
        action_id: &str,
    ) -> Result<Outcome<MachineAction>, RuntimeError> {
        let id = action_id.to_owned();
        self.run(
            tenant,
            "get-action",
            Sizing::starting_with(Api::GetAction),
            None,
            move |guest, store| {
                Box::pin(async move {
                    guest
                        .defender_endpoint_actions()
                        .call_get_action(store, &id)
                        .await
                })
            },
        )
        .await
    }

    /// Runs `cancel-action`.
    pub async fn cancel_action(
        &self,
        tenant: &Tenant,
        action_id: &str,
        comment: &str,
    ) -> Result<Outcome<MachineAction>, RuntimeError> {
        let args = (action_id.to_owned(), comment.to_owned());
        self.run(
            tenant,
            "cancel-action",
            Sizing::starting_with(Api::CancelAction),
            None,
            move |guest, store| {
                Box::pin(async move {
                    let (id, comment) = args;
                    guest
                        .defender_endpoint_actions()
                        .call_cancel_action(store, &id, &comment)
                        .await
                })
            },
        )
        .await
    }

    /// For measurement: makes a fresh store and instance for `tenant` and drops them, returning
    /// how long the instantiation took (what `host-harness bench` reports as "instantiate").
    pub async fn measure_instantiation(&self, tenant: &Tenant) -> Result<Duration, RuntimeError> {
        let mut store = self.store(tenant, &self.limits_for(tenant), None)?;
        let started = std::time::Instant::now();
        self.shared
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(RuntimeError::Trap)?;
        Ok(started.elapsed())
    }

    /// The host's HTTP client for `tenant` (the runtime's pool with the tenant's proxy, roots
    /// and timeouts): what the component's requests and the tenant's sign-in go through, for an
    /// embedder that sends requests of its own the same way.
    pub fn http_client(&self, tenant: &Tenant) -> Result<HttpClient, RuntimeError> {
        let limits = self.limits_for(tenant);
        let timeouts = Timeouts {
            connect: limits.connect_timeout,
            io: limits.io_timeout,
        };
        Ok(self.shared.pool.client(&tenant.network, timeouts)?)
    }

    /// Instantiates the component in a fresh store for `tenant` and makes one call of
    /// `export`, within the tenant's limits grown as `sizing` says; counted and logged.
    async fn run<T>(
        &self,
        tenant: &Tenant,
        export: &'static str,
        sizing: Sizing,
        progress: Option<ProgressSink>,
        call: impl for<'a> FnOnce(&'a Defender, &'a mut Store<Invocation>) -> ExportCall<'a, T>,
    ) -> Result<Outcome<T>, RuntimeError> {
        let started = std::time::Instant::now();
        let span = tracing::info_span!("invocation", tenant = tenant.name(), export);
        let result = self
            .invoke(tenant, sizing, progress, call)
            .instrument(span)
            .await;
        let outcome = match &result {
            Ok(_) => "returned",
            Err(RuntimeError::Limit(limit)) => limit.name(),
            Err(RuntimeError::Trap(_)) => "trapped",
            Err(_) => "failed",
        };
        crate::telemetry::invocation(tenant.name(), export, outcome, started.elapsed());
        result
    }

    /// [`Runtime::run`]'s work.
    async fn invoke<T>(
        &self,
        tenant: &Tenant,
        sizing: Sizing,
        progress: Option<ProgressSink>,
        call: impl for<'a> FnOnce(&'a Defender, &'a mut Store<Invocation>) -> ExportCall<'a, T>,
    ) -> Result<Outcome<T>, RuntimeError> {
        let limits = sizing.grow(self.limits_for(tenant));
        let wall_clock = limits.wall_clock;
        // The semaphores are never closed, so acquiring only waits. The tenant's turn first: a
        // tenant at its own cap waits without holding one of the runtime's slots. Then waits
        // for the tenant's budget (or a 429's pause), up to half the wall clock in all: an
        // invocation that would only sleep on a denied permit does that before it takes a
        // slot. One that would wait longer goes in and is told at once that it cannot.
        let (_tenant_turn, _turn) = if sizing.checks_only {
            (None, self.shared.checks.acquire().await.ok())
        } else {
            let tenant_turn = tenant.invocation_turn().await;
            let waiting_since = tokio::time::Instant::now();
            while let Some(api) = sizing.first {
                let wait = tenant.budgets.available_in(api).await;
                if wait.is_zero() || waiting_since.elapsed().saturating_add(wait) > wall_clock / 2 {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            (tenant_turn, self.shared.in_flight.acquire().await.ok())
        };
        let mut store = self.store(tenant, &limits, progress)?;
        store.data_mut().cpu.set_deadline(wall_clock);
        let polls = store.data().polls.clone();
        let invocation = Counted {
            polls,
            inner: Box::pin(async {
                let instance = self.shared.pre.instantiate_async(&mut store).await?;
                call(&instance, &mut store).await
            }),
        };
        let result = match tokio::time::timeout(wall_clock, invocation).await {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => return Err(classify(error, &limits)),
            Err(_) => return Err(RuntimeError::Limit(LimitExceeded::WallClock(wall_clock))),
        };
        if let Some(limit) = store.data().outbound.tripped() {
            return Err(RuntimeError::Limit(limit));
        }
        let outbound = &mut store.data_mut().outbound;
        Ok(Outcome {
            result,
            denials: outbound.take_denials(),
            requests_sent: outbound.sent(),
            connection_errors: outbound.take_failures(),
            wait_stopped: None,
        })
    }

    fn store(
        &self,
        tenant: &Tenant,
        limits: &Limits,
        progress: Option<ProgressSink>,
    ) -> Result<Store<Invocation>, RuntimeError> {
        let http = self.http_client(tenant)?;
        let invocation = Invocation::new(tenant.clone(), limits, http, progress);
        let mut store = Store::new(&self.shared.engine, invocation);
        store.set_hostcall_fuel(limits.hostcall_bytes);
        store.limiter(|state| &mut state.memory);
        store.call_hook(|mut ctx, hook| {
            let cpu = &mut ctx.data_mut().cpu;
            match hook {
                CallHook::CallingWasm => cpu.enter_guest(),
                CallHook::ReturningFromWasm => cpu.leave_guest(),
                CallHook::CallingHost => cpu.enter_host(),
                CallHook::ReturningFromHost => cpu.leave_host()?,
            }
            Ok(())
        });
        store.set_epoch_deadline(1);
        // Checked every tick of guest execution; yielding lets the executor run its timers (the
        // wall clock) and other tasks between ticks.
        store.epoch_deadline_callback(|ctx| {
            ctx.data().cpu.check()?;
            if let Some(limit) = ctx.data().outbound.tripped() {
                return Err(limit.into());
            }
            Ok(UpdateDeadline::Yield(1))
        });
        Ok(store)
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

/// A future that counts its polls, so the CPU meter can tell a host call that returned within
/// one poll (synchronous host work) from one that yielded (a wait).
struct Counted<F> {
    polls: Arc<AtomicU64>,
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        self.polls.fetch_add(1, Ordering::Relaxed);
        self.inner.as_mut().poll(cx)
    }
}

/// Advances the engine's epoch every tick until the runtime is dropped.
fn spawn_ticker(engine: Engine, ticking: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        while ticking.load(Ordering::Relaxed) {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
        }
    });
}

/// Names the limit behind a trap, when a limit caused it.
fn classify(error: wasmtime::Error, limits: &Limits) -> RuntimeError {
    if let Some(limit) = error.downcast_ref::<LimitExceeded>() {
        return RuntimeError::Limit(*limit);
    }
    let table_full = error
        .chain()
        .any(|cause| matches!(cause.downcast_ref(), Some(ResourceTableError::Full)));
    if table_full {
        return RuntimeError::Limit(LimitExceeded::Resources(limits.resources));
    }
    // Wasmtime 48 keeps the type of this error private; its message is all there is to go by.
    let hostcall_fuel = error
        .chain()
        .any(|cause| cause.to_string().contains("fuel allocated for hostcalls"));
    if hostcall_fuel {
        return RuntimeError::Limit(LimitExceeded::HostcallBytes(limits.hostcall_bytes));
    }
    // Nor this one's: wasmtime 48.0.8's `bump_resource_counts` bails with "resource limit exceeded:
    // instance count too high"; a test (`limits.rs`) fails should the wording change.
    let instances = error
        .chain()
        .any(|cause| cause.to_string().contains("instance count too high"));
    if instances {
        return RuntimeError::Limit(LimitExceeded::Instances(limits.instances));
    }
    RuntimeError::Trap(error)
}
