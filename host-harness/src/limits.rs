//! What one invocation may consume.

use std::time::Duration;

/// Per-invocation limits. Hitting one ends that invocation with an error naming the limit;
/// the host goes on serving the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time the guest may spend executing wasm (waits in the host do not count).
    pub cpu: Duration,
    /// The most linear memory the component may grow to, in bytes.
    pub memory_bytes: usize,
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
            wall_clock: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
        }
    }
}
