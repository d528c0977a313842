//! What one invocation may consume, how it is enforced, and the error that names the limit an
//! invocation ran into. Every limit has a default that suits the component and can be set per
//! tenant (see the tenants file's `[tenant.limits]`).

mod meter;

pub(crate) use meter::{CpuMeter, MemoryQuota};

use std::time::Duration;
use thiserror::Error;

/// Per-invocation limits. Hitting one ends that invocation with an error naming the limit;
/// the host goes on serving the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time the guest may spend executing wasm and in host calls that return without yielding
    /// (waits for the network, timers, permits and sign-in do not count).
    pub cpu: Duration,
    /// The most linear memory the component may grow to, in bytes.
    pub memory_bytes: usize,
    /// The most elements a table may grow to.
    pub table_elements: usize,
    /// The most core instances (a component is made of a handful).
    pub instances: usize,
    /// The most bytes the guest may pass to the host in one call.
    pub hostcall_bytes: usize,
    /// The most resources (requests, streams, pollables) alive at once.
    pub resources: usize,
    /// The most outbound requests the component may attempt, refused ones included.
    pub max_requests: u32,
    /// The most bytes of one response body handed to the component.
    pub max_response_bytes: u64,
    /// The whole call, waits included. It covers the component's own 90-second retry deadline.
    pub wall_clock: Duration,
    /// The longest the host waits to connect; a component asking for more gets this.
    pub connect_timeout: Duration,
    /// The longest the host waits for a response's first byte, and between its bytes.
    pub io_timeout: Duration,
    /// The longest a 429's `Retry-After` may pause the tenant, whatever it says.
    pub max_retry_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            cpu: Duration::from_secs(2),
            memory_bytes: 16 * 1024 * 1024,
            table_elements: 10_000,
            instances: 16,
            hostcall_bytes: 1024 * 1024,
            resources: 1_000,
            max_requests: 10_000,
            max_response_bytes: 4 * 1024 * 1024,
            wall_clock: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

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
    /// The component is made of more core instances than allowed.
    #[error("instance limit: the component needs more than {0} core instances")]
    Instances(usize),
    /// The component attempted more outbound requests than allowed.
    #[error("request limit: the component attempted more than {0} requests")]
    Requests(u32),
    /// A response body was larger than allowed.
    #[error("response limit: a response body exceeded {0} bytes")]
    ResponseBytes(u64),
}

impl LimitExceeded {
    /// The limit's name, as metrics and logs give it: `cpu`, `memory`, `wall-clock`, ...
    pub fn name(&self) -> &'static str {
        match self {
            LimitExceeded::Cpu(_) => "cpu",
            LimitExceeded::Memory(_) => "memory",
            LimitExceeded::WallClock(_) => "wall-clock",
            LimitExceeded::HostcallBytes(_) => "hostcall-bytes",
            LimitExceeded::Resources(_) => "resources",
            LimitExceeded::TableElements(_) => "table-elements",
            LimitExceeded::Instances(_) => "instances",
            LimitExceeded::Requests(_) => "requests",
            LimitExceeded::ResponseBytes(_) => "response-bytes",
        }
    }
}
