//! A wasmtime host for the Defender for Endpoint stop-and-quarantine component.
//!
//! [`Runtime`] compiles the component once and runs each call in a fresh, limited store for a
//! [`Tenant`]: the host holds the tenant's token ([`credentials`]), its shared rate budget
//! ([`rate_limit`]) and the outbound policy ([`outbound`]); the component only decides.
//! [`simulator`] serves a faithful stand-in for the API on 127.0.0.1.

mod bindings;
mod builder;
pub mod cache;
pub mod certificate;
pub mod cli;
pub mod cloud;
pub mod credentials;
mod invocation;
pub mod limits;
mod meter;
pub mod oauth;
pub mod origin;
pub mod outbound;
mod pool;
pub mod rate_limit;
pub mod report;
mod runtime;
pub mod secret;
pub mod simulator;
pub mod tenant;
pub mod tenants;

pub use bindings::defender::endpoint::progress::Update as ProgressUpdate;
pub use bindings::defender::endpoint::types::{
    ActionError, ActionStatus, ApiError, ForbiddenError, InvalidInput, MachineAction,
    RateLimitedError, RelatedFile,
};
pub use bindings::exports::defender::endpoint::actions::{
    File, MachineOutcome, Prepared, QuarantineRequest, Quarantined, Targets, Wait,
};
pub use builder::RuntimeBuilder;
pub use invocation::ProgressSink;
pub use meter::LimitExceeded;
pub use runtime::{Outcome, Runtime, RuntimeError};
pub use tenant::Tenant;

/// The release build of the component, built and embedded by this crate's build script.
pub const COMPONENT: &[u8] = include_bytes!(env!("COMPONENT_WASM"));
