//! What one invocation may consume. Every limit has a default that suits the component and can
//! be set per tenant (see the tenants file's `[tenant.limits]`).

use std::time::Duration;

/// Per-invocation limits. Hitting one ends that invocation with an error naming the limit;
/// the host goes on serving the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time the guest may spend executing wasm (waits in the host do not count).
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
        }
    }
}
