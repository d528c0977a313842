//! A wasmtime host for the Defender for Endpoint stop-and-quarantine component.
//!
//! [`Runtime`] compiles the component once and runs each call in a fresh, limited store for a
//! [`Tenant`]: the host holds the tenant's token ([`credentials`]), its shared rate budget
//! ([`rate_limit`]) and the outbound policy ([`outbound`]); the component only decides. One
//! HTTP client ([`transport`]) carries both the component's requests and the host's sign-in.
//! [`simulator`] serves a faithful stand-in for the API on 127.0.0.1.

mod bindings;
mod builder;
pub mod cache;
pub mod cli;
pub mod cloud;
mod config_file;
pub mod credentials;
pub mod escape;
mod invocation;
pub mod limits;
mod meter;
pub mod origin;
pub mod outbound;
pub mod rate_limit;
pub mod report;
mod runtime;
pub mod simulator;
pub mod tenant;
pub mod tenants;
pub mod transport;

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
