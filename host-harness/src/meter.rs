//! Enforcement of the per-invocation CPU and memory limits, with a typed error naming the limit.

use std::time::{Duration, Instant};
use thiserror::Error;

/// A limit an invocation ran into. Raised inside wasmtime as the trap's cause, so the runtime
/// can tell the caller which limit ended the call.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum LimitExceeded {
    /// The guest executed for longer than its CPU budget.
    #[error("CPU limit: the component ran for more than {0:?}")]
    Cpu(Duration),
    /// The guest tried to grow its memory past the limit.
    #[error("memory limit: the component tried to grow its memory past {0} bytes")]
    Memory(usize),
    /// The whole call took longer than its wall-clock limit.
    #[error("wall-clock limit: the call took longer than {0:?}")]
    WallClock(Duration),
    /// The guest passed more data to the host in one call than allowed.
    #[error("host-call limit: the component passed more than {0} bytes to the host in one call")]
    HostcallBytes(usize),
    /// The guest held more resources at once than allowed.
    #[error("resource limit: the component held more than {0} resources at once")]
    Resources(usize),
    /// A table grew past the limit.
    #[error("table limit: the component tried to grow a table past {0} elements")]
    TableElements(usize),
    /// The component attempted more outbound requests than allowed.
    #[error("request limit: the component attempted more than {0} requests")]
    Requests(u32),
    /// A response body was larger than allowed.
    #[error("response limit: a response body exceeded {0} bytes")]
    ResponseBytes(u64),
}

/// Time spent executing guest code, measured between the store's call hooks, so waits in the
/// host (HTTP, sleeps, permits) do not count.
pub struct CpuMeter {
    budget: Duration,
    used: Duration,
    running_since: Option<Instant>,
}

impl CpuMeter {
    /// A meter with `budget` of guest execution time.
    pub fn new(budget: Duration) -> Self {
        Self {
            budget,
            used: Duration::ZERO,
            running_since: None,
        }
    }

    /// The guest starts (or resumes) running.
    pub fn enter_guest(&mut self) {
        self.running_since.get_or_insert_with(Instant::now);
    }

    /// The guest stops running (it calls the host, or returns).
    pub fn leave_guest(&mut self) {
        if let Some(since) = self.running_since.take() {
            self.used += since.elapsed();
        }
    }

    /// Fails once the guest has used up its budget, counting the current run.
    pub fn check(&self) -> Result<(), LimitExceeded> {
        let current = self.running_since.map_or(Duration::ZERO, |s| s.elapsed());
        if self.used + current > self.budget {
            Err(LimitExceeded::Cpu(self.budget))
        } else {
            Ok(())
        }
    }
}

/// The memory, table and instance caps of one invocation.
pub struct MemoryQuota {
    max_bytes: usize,
    max_table_elements: usize,
    max_instances: usize,
}

impl MemoryQuota {
    /// The caps of `limits`.
    pub fn new(limits: &crate::limits::Limits) -> Self {
        Self {
            max_bytes: limits.memory_bytes,
            max_table_elements: limits.table_elements,
            max_instances: limits.instances,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryQuota {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            return Err(LimitExceeded::Memory(self.max_bytes).into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_table_elements {
            return Err(LimitExceeded::TableElements(self.max_table_elements).into());
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.max_instances
    }
}
