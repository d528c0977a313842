//! Enforcement of the per-invocation CPU and memory limits.

use super::{LimitExceeded, Limits};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The time an invocation may take, kept where the guest cannot outrun it: guest execution
/// measured between the store's call hooks, plus the time of host calls that return without
/// the invocation ever yielding to the executor (synchronous host work: `wasi:random`, the
/// progress sink, stream and field operations). Waits that yield (HTTP, sleeps, permits, sign-in)
/// do not count. An absolute deadline for the whole call is checked on every host call's return
/// and every epoch tick, so a loop of host calls cannot pin a worker past the wall clock even
/// where the executor's own timeout cannot run.
pub struct CpuMeter {
    budget: Duration,
    used: Duration,
    running_since: Option<Instant>,
    /// A host call in progress: when it started, and the poll it started in.
    host_call: Option<(Instant, u64)>,
    polls: Arc<AtomicU64>,
    deadline: Option<(Instant, Duration)>,
}

impl CpuMeter {
    /// A meter with `budget`; `polls` counts the polls of the invocation's future (a host call
    /// that returns in the poll it started in did not yield).
    pub fn new(budget: Duration, polls: Arc<AtomicU64>) -> Self {
        Self {
            budget,
            used: Duration::ZERO,
            running_since: None,
            host_call: None,
            polls,
            deadline: None,
        }
    }

    /// The whole call must be over `wall_clock` from now.
    pub fn set_deadline(&mut self, wall_clock: Duration) {
        let now = Instant::now();
        self.deadline = now.checked_add(wall_clock).map(|at| (at, wall_clock));
    }

    /// The guest starts (or resumes) running.
    pub fn enter_guest(&mut self) {
        self.running_since.get_or_insert_with(Instant::now);
    }

    /// The guest stops running (it returns).
    pub fn leave_guest(&mut self) {
        if let Some(since) = self.running_since.take() {
            self.used = self.used.saturating_add(since.elapsed());
        }
    }

    /// The guest calls the host.
    pub fn enter_host(&mut self) {
        self.leave_guest();
        self.host_call = Some((Instant::now(), self.polls.load(Ordering::Relaxed)));
    }

    /// The host call returns to the guest; it is charged if it never yielded.
    pub fn leave_host(&mut self) -> Result<(), LimitExceeded> {
        if let Some((since, poll)) = self.host_call.take()
            && self.polls.load(Ordering::Relaxed) == poll
        {
            self.used = self.used.saturating_add(since.elapsed());
        }
        self.enter_guest();
        self.check()
    }

    /// Fails once the budget is used up (counting the current run) or the deadline has passed.
    pub fn check(&self) -> Result<(), LimitExceeded> {
        if let Some((at, wall_clock)) = self.deadline
            && Instant::now() >= at
        {
            return Err(LimitExceeded::WallClock(wall_clock));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meter(budget_ms: u64) -> (CpuMeter, Arc<AtomicU64>) {
        let polls = Arc::new(AtomicU64::new(0));
        (
            CpuMeter::new(Duration::from_millis(budget_ms), polls.clone()),
            polls,
        )
    }

    #[test]
    fn a_host_call_that_never_yields_is_charged_and_one_that_yields_is_not() {
        let (mut cpu, polls) = meter(30);
        cpu.enter_host();
        std::thread::sleep(Duration::from_millis(20));
        polls.fetch_add(1, Ordering::Relaxed);
        assert!(cpu.leave_host().is_ok(), "a wait that yielded is free");
        cpu.enter_host();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(
            cpu.leave_host(),
            Err(LimitExceeded::Cpu(Duration::from_millis(30)))
        );
    }

    #[test]
    fn the_deadline_holds_whatever_the_budget() {
        let (mut cpu, _) = meter(60_000);
        cpu.set_deadline(Duration::ZERO);
        assert_eq!(cpu.check(), Err(LimitExceeded::WallClock(Duration::ZERO)));
        let (mut far, _) = meter(60_000);
        far.set_deadline(Duration::MAX);
        assert_eq!(
            far.check(),
            Ok(()),
            "a deadline past the end of time is none"
        );
    }
}
