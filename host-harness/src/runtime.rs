//! Compiling the component once and running each call in a fresh, limited store.

use crate::bindings::DefenderPre;
use crate::invocation::Invocation;
use crate::limits::Limits;
use crate::meter::LimitExceeded;
use crate::tenant::Tenant;
use crate::{ActionError, MachineAction};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use thiserror::Error;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{CallHook, Config, Engine, Store, UpdateDeadline};

/// How often the epoch advances; the CPU limit is checked at this granularity.
const EPOCH_TICK: Duration = Duration::from_millis(10);

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
}

/// What a call produced, with what the host saw of it.
#[derive(Debug)]
pub struct Outcome {
    /// The component's answer.
    pub result: Result<MachineAction, ActionError>,
    /// Requests the outbound policy refused, with the reason for each.
    pub denials: Vec<String>,
    /// Requests the outbound policy let through.
    pub requests_sent: u32,
}

/// One compiled component, ready to be instantiated per call. Share it (`Arc`) across tasks.
pub struct Runtime {
    engine: Engine,
    pre: DefenderPre<Invocation>,
    limits: Limits,
    ticking: Arc<AtomicBool>,
}

impl Runtime {
    /// Compiles and links `component` (the bytes of a `.wasm` component).
    pub fn new(component: &[u8], limits: Limits) -> Result<Self, RuntimeError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let engine = Engine::new(&config).map_err(RuntimeError::Load)?;
        let component = Component::new(&engine, component).map_err(RuntimeError::Load)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(RuntimeError::Load)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(RuntimeError::Load)?;
        crate::bindings::Defender::add_to_linker::<_, HasSelf<Invocation>>(&mut linker, |s| s)
            .map_err(RuntimeError::Load)?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(DefenderPre::new)
            .map_err(RuntimeError::Load)?;
        let ticking = Arc::new(AtomicBool::new(true));
        spawn_ticker(engine.clone(), ticking.clone());
        Ok(Self {
            engine,
            pre,
            limits,
            ticking,
        })
    }

    /// The limits every call gets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs `stop-and-quarantine` for `tenant` in a fresh store.
    pub async fn stop_and_quarantine(
        &self,
        tenant: &Tenant,
        machine_id: &str,
        sha1: &str,
        comment: &str,
    ) -> Result<Outcome, RuntimeError> {
        let mut store = self.store(tenant);
        let call = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            instance
                .defender_endpoint_actions()
                .call_stop_and_quarantine(&mut store, machine_id, sha1, comment)
                .await
        };
        let result = match tokio::time::timeout(self.limits.wall_clock, call).await {
            Ok(Ok(result)) => result,
            Ok(Err(error)) => return Err(classify(error)),
            Err(_) => {
                return Err(RuntimeError::Limit(LimitExceeded::WallClock(
                    self.limits.wall_clock,
                )));
            }
        };
        let outbound = &mut store.data_mut().outbound;
        Ok(Outcome {
            result,
            denials: outbound.take_denials(),
            requests_sent: outbound.sent(),
        })
    }

    fn store(&self, tenant: &Tenant) -> Store<Invocation> {
        let mut store = Store::new(&self.engine, Invocation::new(tenant.clone(), &self.limits));
        store.limiter(|state| &mut state.memory);
        store.call_hook(|mut ctx, hook| {
            let cpu = &mut ctx.data_mut().cpu;
            match hook {
                CallHook::CallingWasm | CallHook::ReturningFromHost => cpu.enter_guest(),
                CallHook::CallingHost | CallHook::ReturningFromWasm => cpu.leave_guest(),
            }
            Ok(())
        });
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            ctx.data().cpu.check()?;
            Ok(UpdateDeadline::Continue(1))
        });
        store
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
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
fn classify(error: wasmtime::Error) -> RuntimeError {
    match error.downcast_ref::<LimitExceeded>() {
        Some(limit) => RuntimeError::Limit(*limit),
        None => RuntimeError::Trap(error),
    }
}
