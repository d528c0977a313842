//! Jobs: one quarantine request carried out in the background, and what became of it. Kept in
//! this process ([`memory`]) or in Redis ([`redis`]), where every `serve` process behind one
//! load balancer finds every job, and a job whose process died is reported `lost`; while Redis
//! does not answer, new jobs are kept in the process ([`resilient`]).

pub mod memory;
pub mod redis;
pub mod resilient;

use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use utoipa::ToSchema;

/// What a store's calls return.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    /// Being carried out.
    Running,
    /// Done: every device has an action.
    Succeeded,
    /// Done: the call, or at least one device, failed; see `error` and `outcomes`.
    Failed,
    /// Stopped by the process's shutdown before it was done; `progress` holds what was seen.
    Interrupted,
    /// The process carrying it out stopped answering; `progress` holds what was seen.
    Lost,
}

/// The last thing seen of one device while a job runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeviceProgress {
    /// The device.
    pub machine_id: String,
    /// Its action, once created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action_id: Option<String>,
    /// The action's last status, or `created`.
    pub status: String,
}

/// What the host noted beside the outcomes: requests it refused, connections that failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostNotes {
    /// Requests of the component the host refused, and why.
    pub denials: Vec<String>,
    /// Requests that got no answer, and why.
    pub connection_errors: Vec<String>,
}

/// A job, as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The job's ID (32 hex characters).
    pub id: String,
    /// The tenant it acts for.
    pub tenant: String,
    /// The name of the API key that asked for it.
    pub requested_by: String,
    /// Where it is.
    pub status: JobStatus,
    /// When it was created, in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// When it ended, in ms since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    /// The file's SHA-1.
    pub sha1: String,
    /// The `serve` process carrying it out.
    pub owner: String,
    /// Each device's outcome as the command line prints them: `{"machineId", "action"}` with
    /// the API's MachineAction whole, or `{"machineId", "error"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub outcomes: Option<serde_json::Value>,
    /// Why the whole call failed (a problem), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<serde_json::Value>,
    /// Why the device listing of `everywhere` stopped early, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub unlisted: Option<serde_json::Value>,
    /// The last thing seen of each device while it ran.
    pub progress: Vec<DeviceProgress>,
    /// What the host noted.
    pub notes: HostNotes,
}

/// An `Idempotency-Key` and the request it came with.
#[derive(Debug, Clone)]
pub struct Idempotency {
    /// Whose key it is (the API key's name): two callers' keys never collide.
    pub caller: String,
    /// The header's value.
    pub key: String,
    /// SHA-256 of the request's tenant and body, in hex.
    pub request_sha256: String,
}

/// What creating a job did.
#[derive(Debug)]
pub enum Created {
    /// The job is new: carry it out.
    New,
    /// The idempotency key was used for the same request: this is its job.
    Existing(Box<Job>),
    /// The idempotency key was used for another request.
    Conflict,
    /// The idempotency key's job is no longer kept: starting anew could act twice.
    Forgotten,
}

/// Why a store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store holds as many running jobs as it may.
    #[error("the service holds as many jobs as it may ({0}); try again later")]
    Full(usize),
    /// Redis did not answer as it should.
    #[error("the job store did not answer: {0}")]
    Unavailable(String),
}

/// Where jobs are kept.
pub trait JobStore: Send + Sync {
    /// Stores a new job, unless `idempotency`'s key already names one.
    fn create<'a>(
        &'a self,
        job: &'a Job,
        idempotency: Option<&'a Idempotency>,
    ) -> StoreFuture<'a, Created>;

    /// The job `id`, if it exists (and has not expired).
    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Job>>;

    /// Replaces a job with a newer state of it.
    fn update<'a>(&'a self, job: &'a Job) -> StoreFuture<'a, ()>;

    /// Whether the store answers (for `/readyz`).
    fn ready(&self) -> StoreFuture<'_, ()>;
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
