//! Carrying a job out: checked first by the component's `prepare` (bad input ends there, with
//! nothing sent), stored, then run in the background; its progress is kept as it comes, its
//! outcomes when done, and one audit record is written per device.

use super::State;
use super::auth::Caller;
use super::jobs::{Created, DeviceProgress, HostNotes, Idempotency, Job, JobStatus, now_ms};
use super::problem::Problem;
use crate::output::json::{error_json, outcomes_json};
use axum::http::StatusCode;
use defender_host::escape::escape;
use defender_host::{FanOut, ProgressUpdate, QuarantineRequest, Tenant};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::watch;

/// The most devices whose progress a job keeps (the component's own cap).
const MAX_PROGRESS_DEVICES: usize = 10_000;
/// How often a running job's progress is written to the store.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// A job this process is carrying out.
pub struct Running {
    /// Becomes `true` when the job ends.
    pub done: watch::Receiver<bool>,
    /// The job as it stands.
    pub snapshot: Arc<Mutex<Job>>,
}

/// What a submission gave.
pub enum Submitted {
    /// A job was started.
    Started(Job),
    /// The idempotency key named this job.
    Existing(Job),
}

/// Checks `request`, stores its job and starts it.
pub async fn submit(
    state: &Arc<State>,
    caller: &Caller,
    tenant_name: &str,
    tenant: &Tenant,
    request: QuarantineRequest,
    idempotency: Option<Idempotency>,
) -> Result<Submitted, Problem> {
    let running = state
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    if running >= state.config.max_running {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("this process runs as many jobs as it may ({running}); try again later"),
        ));
    }
    let prepared = state
        .runtime
        .prepare(tenant, request.clone())
        .await
        .map_err(|e| Problem::from_runtime(&e))?;
    if let Err(error) = &prepared.result {
        return Err(Problem::from_action(error));
    }
    let sha1 = match &request.file {
        defender_host::File::Sha1(sha1) => sha1.to_ascii_lowercase(),
        defender_host::File::Content(_) => String::new(),
    };
    let job = Job {
        id: new_id(),
        tenant: tenant_name.to_owned(),
        requested_by: caller.name.clone(),
        status: JobStatus::Running,
        created_at_ms: now_ms(),
        finished_at_ms: None,
        sha1,
        owner: state.instance.clone(),
        outcomes: None,
        error: None,
        unlisted: None,
        progress: Vec::new(),
        notes: HostNotes::default(),
    };
    let created = state
        .store
        .create(&job, idempotency.as_ref())
        .await
        .map_err(|e| {
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            )
        })?;
    match created {
        Created::New => {}
        Created::Existing(existing) => return Ok(Submitted::Existing(reconcile(state, *existing))),
        Created::Conflict => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                "this Idempotency-Key was used with another request while its job is kept",
            ));
        }
        Created::Forgotten => {
            return Err(Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                "this Idempotency-Key's job is no longer kept; a new key starts a new job",
            ));
        }
    }
    let (finished, done) = watch::channel(false);
    let snapshot = Arc::new(Mutex::new(job.clone()));
    state
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(
            job.id.clone(),
            Running {
                done,
                snapshot: snapshot.clone(),
            },
        );
    tracing::info!(job = %job.id, tenant = tenant_name, requested_by = %caller.name, "job started");
    metrics::gauge!("defender_serve_jobs_running").increment(1.0);
    let supervisor = state.clone();
    let task = run(
        state.clone(),
        tenant.clone(),
        request,
        snapshot.clone(),
        finished,
    );
    tokio::spawn(async move {
        // A job whose task panicked never recorded its end: record it failed, with what it saw.
        if Caught(Box::pin(task)).await.is_err() {
            let job = {
                let mut job = snapshot.lock().unwrap_or_else(PoisonError::into_inner);
                job.status = JobStatus::Failed;
                job.finished_at_ms = Some(now_ms());
                let problem = Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "host",
                    "the job's task failed",
                );
                job.error = serde_json::to_value(&problem).ok();
                job.clone()
            };
            tracing::error!(job = %job.id, "a job's task panicked");
            metrics::gauge!("defender_serve_jobs_running").decrement(1.0);
            audit(&supervisor, &job, "");
            let _ = supervisor.store.update(&job).await;
            supervisor
                .running
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&job.id);
        }
    });
    Ok(Submitted::Started(job))
}

/// Runs the job to its end and records it.
async fn run(
    state: Arc<State>,
    tenant: Tenant,
    request: QuarantineRequest,
    snapshot: Arc<Mutex<Job>>,
    finished: watch::Sender<bool>,
) {
    let comment = request.comment.clone();
    let seen = snapshot.clone();
    let sink = Arc::new(move |update: &ProgressUpdate| {
        let mut job = seen.lock().unwrap_or_else(PoisonError::into_inner);
        record(&mut job.progress, update);
    });
    let call = state.runtime.quarantine(&tenant, request, Some(sink));
    tokio::pin!(call);
    let outcome = loop {
        tokio::select! {
            outcome = &mut call => break outcome,
            () = tokio::time::sleep(PROGRESS_EVERY) => {
                let current = snapshot.lock().unwrap_or_else(PoisonError::into_inner).clone();
                if let Err(error) = state.store.update(&current).await {
                    tracing::warn!(job = %current.id, error = %escape(&error.to_string()), "could not store the job's progress");
                }
            }
        }
    };
    let job = {
        let mut job = snapshot.lock().unwrap_or_else(PoisonError::into_inner);
        match outcome {
            Ok(outcome) => {
                job.notes = HostNotes {
                    denials: outcome.denials.clone(),
                    connection_errors: outcome.connection_errors.clone(),
                };
                if let Some(why) = &outcome.wait_stopped {
                    job.notes
                        .connection_errors
                        .push(format!("the wait was stopped: {why}"));
                }
                match &outcome.result {
                    Ok(fan_out) => settle(&mut job, fan_out, outcome.wait_stopped.is_some()),
                    Err(error) => fail(&mut job, &Problem::from_action(error)),
                }
            }
            Err(error) => fail(&mut job, &Problem::from_runtime(&error)),
        }
        job.finished_at_ms = Some(now_ms());
        job.clone()
    };
    audit(&state, &job, &comment);
    if let Err(error) = state.store.update(&job).await {
        tracing::error!(job = %job.id, error = %escape(&error.to_string()), "could not store the job's outcome");
    }
    tracing::info!(job = %job.id, tenant = %job.tenant, status = ?job.status, "job ended");
    metrics::gauge!("defender_serve_jobs_running").decrement(1.0);
    let status = serde_json::to_value(job.status).ok();
    let status = status
        .as_ref()
        .and_then(|s| s.as_str())
        .unwrap_or("unknown")
        .to_owned();
    metrics::counter!("defender_serve_jobs_total", "status" => status).increment(1);
    state
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&job.id);
    let _ = finished.send(true);
}

/// The last thing seen of a device, in the job's progress.
fn record(progress: &mut Vec<DeviceProgress>, update: &ProgressUpdate) {
    let seen = DeviceProgress {
        machine_id: update.machine_id.clone(),
        action_id: Some(update.action_id.clone()).filter(|id| !id.is_empty()),
        status: update.status.as_api_str().to_owned(),
    };
    if let Some(device) = progress
        .iter_mut()
        .find(|d| d.machine_id == seen.machine_id)
    {
        *device = seen;
    } else if progress.len() < MAX_PROGRESS_DEVICES {
        progress.push(seen);
    }
}

/// A fan-out's outcomes into the job.
fn settle(job: &mut Job, fan_out: &FanOut, wait_stopped: bool) {
    let failed = fan_out.outcomes.iter().any(|o| match &o.outcome {
        Ok(q) => q.poll_error.is_some() || q.cancel_error.is_some(),
        Err(_) => true,
    });
    job.outcomes = outcomes_json(&fan_out.outcomes)
        .ok()
        .and_then(|entries| serde_json::to_value(entries).ok());
    job.unlisted = fan_out.unlisted.as_ref().map(error_json);
    job.status = if failed || wait_stopped || job.unlisted.is_some() || job.outcomes.is_none() {
        JobStatus::Failed
    } else {
        JobStatus::Succeeded
    };
}

fn fail(job: &mut Job, problem: &Problem) {
    job.status = JobStatus::Failed;
    job.error = serde_json::to_value(problem).ok();
}

/// One audit record per device of a finished job: from its outcomes, or, when it has none
/// (the call failed, was interrupted or lost), from what its progress saw.
pub fn audit(state: &State, job: &Job, comment: &str) {
    let now = now_ms();
    let record = |machine_id: String,
                  action_id: Option<String>,
                  outcome: String,
                  correlation_id: Option<String>| {
        super::audit::Record {
            time_ms: now,
            job_id: job.id.clone(),
            requested_by: job.requested_by.clone(),
            tenant: job.tenant.clone(),
            machine_id,
            sha1: job.sha1.clone(),
            comment: comment.to_owned(),
            action_id,
            outcome,
            correlation_id,
        }
    };
    let records: Vec<_> = match job.outcomes.as_ref().and_then(|o| o.as_array()) {
        Some(entries) => entries
            .iter()
            .map(|entry| {
                let text = |pointer: &str| {
                    entry
                        .pointer(pointer)
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                };
                let outcome = text("/error/kind")
                    .or(text("/action/status"))
                    .unwrap_or_else(|| "unknown".into());
                record(
                    text("/machineId").unwrap_or_default(),
                    text("/action/id"),
                    outcome,
                    text("/error/target"),
                )
            })
            .collect(),
        None => job
            .progress
            .iter()
            .map(|device| {
                let status = serde_json::to_value(job.status).ok();
                let status = status
                    .as_ref()
                    .and_then(|s| s.as_str())
                    .unwrap_or("unknown");
                let outcome = format!("{} (job {status})", device.status);
                record(
                    device.machine_id.clone(),
                    device.action_id.clone(),
                    outcome,
                    None,
                )
            })
            .collect(),
    };
    state.audit.write(records);
}

/// An audit record for a cancellation asked for through the service.
pub fn audit_cancel(
    state: &State,
    caller: &Caller,
    tenant: &str,
    action_id: &str,
    comment: &str,
    outcome: &Result<
        defender_host::Outcome<defender_host::MachineAction>,
        defender_host::RuntimeError,
    >,
) {
    let (machine_id, status, correlation_id) = match outcome {
        Ok(outcome) => match &outcome.result {
            Ok(action) => (
                action.machine_id.clone().unwrap_or_default(),
                action.status.as_api_str().to_owned(),
                None,
            ),
            Err(error) => (
                String::new(),
                error.kind().to_owned(),
                error.api().and_then(|a| a.target.clone()),
            ),
        },
        Err(_) => (String::new(), "host".to_owned(), None),
    };
    state.audit.write(vec![super::audit::Record {
        time_ms: now_ms(),
        job_id: String::new(),
        requested_by: caller.name.clone(),
        tenant: tenant.to_owned(),
        machine_id,
        sha1: String::new(),
        comment: comment.to_owned(),
        action_id: Some(action_id.to_owned()),
        outcome: format!("cancel: {status}"),
        correlation_id,
    }]);
}

/// `job` as this process knows it: a job it owns that shows `running` but that it does not
/// run (its start failed after it was stored) is `lost`.
pub fn reconcile(state: &State, mut job: Job) -> Job {
    if job.status == JobStatus::Running && job.owner == state.instance {
        let runs = state
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(&job.id);
        if !runs {
            job.status = JobStatus::Lost;
        }
    }
    job
}

/// A job ID: 128 random bits in hex.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    // Without OS randomness, the clock and a counter keep IDs unique in this process.
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&now_ms().to_le_bytes());
        bytes[8..].copy_from_slice(&n.to_le_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A future whose panic is caught and given as `Err`, so a job's own task records it.
struct Caught<F>(std::pin::Pin<Box<F>>);

impl<F: std::future::Future> std::future::Future for Caught<F> {
    type Output = Result<F::Output, ()>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Ready(value)) => std::task::Poll::Ready(Ok(value)),
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Err(_) => std::task::Poll::Ready(Err(())),
        }
    }
}
