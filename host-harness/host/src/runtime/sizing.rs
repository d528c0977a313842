//! What one invocation is sized for beyond the tenant's per-call limits: the API it begins with
//! (whose budget it waits for before taking a slot), the time it may wait for actions, and the
//! devices it may act on. Each device adds wall clock, CPU, memory, bytes handed back,
//! requests and live resources, so an outbreak of thousands of devices is not cut off by limits meant for one,
//! while every limit stays bounded.

use crate::limits::Limits;
use crate::rate_limit::Api;
use std::time::Duration;

/// Wall-clock time a call gets per device it may act on, so a long fan-out is not cut off while
/// it is still reporting outcomes.
const WALL_CLOCK_PER_DEVICE: Duration = Duration::from_secs(2);
/// CPU a device may cost: its answers parsed, and its share of each poll round's listing.
const CPU_PER_DEVICE: Duration = Duration::from_millis(5);
/// Requests a device may cost: a create sent at most three times with a lookup after each, a
/// cancel, and its share of the listings.
const REQUESTS_PER_DEVICE: u32 = 8;
/// Live resources a device may hold: what its requests leave alive until the call ends.
const RESOURCES_PER_DEVICE: usize = 8;
/// What a device's outcome may take besides its comment: the action's JSON as sent and as
/// typed, and the errors of its last poll and its cancellation (the component cuts their
/// messages to 512 characters).
const BYTES_PER_DEVICE: usize = 16 * 1024;
/// The most memory any invocation may grow to, however many devices: also the size of each of
/// the pool's memory slots (address space only; pages are taken as a guest touches them).
pub(crate) const MOST_MEMORY: usize = 1024 * 1024 * 1024;

/// What one invocation is sized for.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sizing {
    /// The API the call begins with.
    pub first: Option<Api>,
    /// How long the call may wait for actions to be final.
    pub wait: Duration,
    /// The devices the call may act on.
    pub devices: u32,
    /// The comment's length: each device's outcome holds it twice (typed and in `raw`).
    pub comment_bytes: usize,
    /// A call that only checks (`prepare`): it takes a slot of its own, not the tenant's turn.
    pub checks_only: bool,
}

impl Sizing {
    /// A call that only checks its input.
    pub fn checks() -> Self {
        Self {
            checks_only: true,
            ..Self::default()
        }
    }

    /// A call for one action that begins with `api`.
    pub fn starting_with(api: Api) -> Self {
        Self {
            first: Some(api),
            ..Self::default()
        }
    }

    /// `limits` grown for this call: every addition saturates, memory stays within
    /// [`MOST_MEMORY`].
    pub fn grow(&self, limits: Limits) -> Limits {
        let devices = self.devices;
        let count = usize::try_from(devices).unwrap_or(usize::MAX);
        let per_device = self
            .comment_bytes
            .saturating_mul(2)
            .saturating_add(BYTES_PER_DEVICE);
        let bytes = count.saturating_mul(per_device);
        Limits {
            wall_clock: limits
                .wall_clock
                .saturating_add(self.wait)
                .saturating_add(WALL_CLOCK_PER_DEVICE.saturating_mul(devices)),
            cpu: limits
                .cpu
                .saturating_add(CPU_PER_DEVICE.saturating_mul(devices)),
            // The outcomes live in the guest as records and again as they are handed back.
            memory_bytes: limits
                .memory_bytes
                .saturating_add(bytes.saturating_mul(2))
                .min(MOST_MEMORY.max(limits.memory_bytes)),
            hostcall_bytes: limits.hostcall_bytes.saturating_add(bytes),
            max_requests: limits
                .max_requests
                .saturating_add(REQUESTS_PER_DEVICE.saturating_mul(devices)),
            resources: limits
                .resources
                .saturating_add(RESOURCES_PER_DEVICE.saturating_mul(count)),
            ..limits
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_action_keeps_the_tenants_limits() {
        let limits = Limits::default();
        let grown = Sizing::starting_with(Api::GetAction).grow(limits);
        assert_eq!(grown, limits);
    }

    #[test]
    fn each_device_and_the_wait_add_to_the_limits() {
        let limits = Limits::default();
        let sizing = Sizing {
            first: Some(Api::FileMachines),
            wait: Duration::from_secs(300),
            devices: 1000,
            comment_bytes: 100,
            checks_only: false,
        };
        let grown = sizing.grow(limits);
        assert_eq!(
            grown.wall_clock,
            limits.wall_clock + Duration::from_secs(300 + 2000)
        );
        assert_eq!(grown.cpu, limits.cpu + Duration::from_secs(5));
        assert_eq!(grown.max_requests, limits.max_requests + 8000);
        assert_eq!(grown.resources, limits.resources + 8000);
        assert_eq!(
            grown.hostcall_bytes,
            limits.hostcall_bytes + 1000 * (16 * 1024 + 200)
        );
        assert_eq!(
            grown.memory_bytes,
            limits.memory_bytes + 2 * 1000 * (16 * 1024 + 200)
        );
    }

    #[test]
    fn no_sizing_overflows_or_passes_the_memory_ceiling() {
        let sizing = Sizing {
            first: None,
            wait: Duration::MAX,
            devices: u32::MAX,
            comment_bytes: usize::MAX,
            checks_only: false,
        };
        let grown = sizing.grow(Limits::default());
        assert_eq!(grown.wall_clock, Duration::MAX);
        assert_eq!(grown.memory_bytes, MOST_MEMORY);
        assert_eq!(grown.max_requests, u32::MAX);
        assert_eq!(grown.hostcall_bytes, usize::MAX);
    }
}
