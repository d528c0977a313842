//! Enforcement of the per-invocation CPU and memory limits.

use super::{LimitExceeded, Limits};
use std::time::{Duration, Instant};

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
            self.used = self.used.saturating_add(since.elapsed());
        }
    }

    /// Fails once the guest has used up its budget, counting the current run.
    pub fn check(&self) -> Result<(), LimitExceeded> {
        let current = self.running_since.map_or(Duration::ZERO, |s| s.elapsed());
        if self.used.saturating_add(current) > self.budget {
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
    pub fn new(limits: &Limits) -> Self {
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
