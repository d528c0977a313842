//! The embeddable host for the Defender for Endpoint stop-and-quarantine component.
//!
//! [`Runtime`] compiles the component once and runs each call in a fresh, limited store for a
//! [`Tenant`]: the host holds the tenant's token ([`credentials`]), its shared rate budgets, one
//! per API ([`rate_limit`]) and the outbound policy ([`outbound`]); the component only decides. One
//! HTTP client ([`transport`]) carries both the component's requests and the host's sign-in.
//! [`tenants`] reads a tenants file; [`limits`] bounds each invocation.
#![deny(missing_docs)]

mod bindings;
pub mod credentials;
pub mod escape;
mod hex;
pub mod limits;
pub mod outbound;
mod private_file;
pub mod rate_limit;
mod runtime;
pub mod telemetry;
pub mod tenants;
pub mod transport;
mod wit_types;

pub use bindings::defender::endpoint::progress::Update as ProgressUpdate;
pub use bindings::defender::endpoint::types::{
    ActionError, ActionStatus, ApiError, ForbiddenError, InvalidInput, MachineAction,
    RateLimitedError, RelatedFile,
};
pub use bindings::exports::defender::endpoint::actions::{
    FanOut, File, MachineOutcome, Prepared, QuarantineRequest, Quarantined, Targets, Wait,
};
pub use limits::{LimitExceeded, Limits};
pub use runtime::{
    DEFAULT_MAX_IN_FLIGHT, MAX_IN_FLIGHT, Outcome, ProgressSink, Runtime, RuntimeBuilder,
    RuntimeError, code_cache,
};
pub use tenants::Tenant;

/// The release build of the component, built and embedded by this crate's build script.
pub const COMPONENT: &[u8] = include_bytes!(env!("COMPONENT_WASM"));

/// README.md's Rust examples, compiled (and run) as doc tests, so the embedding example stays
/// true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeExamples;
