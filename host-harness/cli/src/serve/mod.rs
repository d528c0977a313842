//! `host-harness serve`: the host as an HTTP service, for engines that call HTTP rather than
//! load a component. Callers present API keys ([`auth`]); a quarantine request becomes a job
//! ([`runner`], kept by a [`jobs::JobStore`]), every error a problem ([`problem`]); the OpenAPI
//! document is generated from the handlers ([`openapi`]); logs, metrics and the audit trail
//! are in [`telemetry`] and [`audit`].

pub mod audit;
pub mod auth;
pub mod config;
pub mod jobs;
pub mod openapi;
pub mod problem;
pub mod routes;
pub mod runner;
pub mod telemetry;
pub mod tls;

use anyhow::{Context, Result, bail};
use auth::Gate;
use axum::Router;
use axum::extract::MatchedPath;
use axum::routing::{get, post};
use config::{JobsBackend, ServeConfig};
use defender_host::{Runtime, Tenant};
use jobs::{JobStatus, JobStore, now_ms};
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use config::ApiKey;

/// What every request of one service shares.
pub struct State {
    runtime: Runtime,
    tenants: HashMap<String, Tenant>,
    gate: Gate,
    store: Arc<dyn JobStore>,
    /// This process's ID: the owner of the jobs it runs.
    instance: String,
    config: ServeConfig,
    audit: audit::AuditLog,
    metrics: PrometheusHandle,
    running: Mutex<HashMap<String, runner::Running>>,
    shutting_down: AtomicBool,
}

/// A service ready to listen.
pub struct Service {
    state: Arc<State>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Service {
    /// A service for `tenants` on `runtime`, as `config` says.
    pub fn new(
        config: ServeConfig,
        runtime: Runtime,
        tenants: Vec<(String, Tenant)>,
    ) -> Result<Self> {
        let instance = {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).context("OS randomness for the process's ID")?;
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let mut heartbeat = None;
        let store: Arc<dyn JobStore> = match &config.jobs {
            JobsBackend::Memory => Arc::new(jobs::memory::MemoryJobs::new(
                config.max_jobs,
                config.job_ttl,
            )),
            JobsBackend::Redis(url) => {
                let store = Arc::new(jobs::redis::RedisJobs::new(
                    url,
                    config.job_ttl,
                    instance.clone(),
                )?);
                heartbeat = Some(store.beat());
                store
            }
        };
        let audit = audit::AuditLog::open(config.audit_file.as_deref())
            .context("opening the audit file")?;
        let state = State {
            runtime,
            tenants: tenants.into_iter().collect(),
            gate: Gate::new(config.keys.clone(), config.anonymous_loopback),
            store,
            instance,
            config,
            audit,
            metrics: telemetry::recorder(),
            running: Mutex::default(),
            shutting_down: AtomicBool::new(false),
        };
        Ok(Self {
            state: Arc::new(state),
            heartbeat,
        })
    }

    /// The service's routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/tenants/{tenant}/quarantine", post(routes::quarantine))
            .route("/v1/jobs/{id}", get(routes::get_job))
            .route(
                "/v1/tenants/{tenant}/actions/{action_id}",
                get(routes::get_action),
            )
            .route(
                "/v1/tenants/{tenant}/actions/{action_id}/cancel",
                post(routes::cancel_action),
            )
            .route("/healthz", get(routes::healthz))
            .route("/readyz", get(routes::readyz))
            .route("/metrics", get(routes::metrics))
            .route(
                "/openapi.json",
                get(|| async { json(openapi::openapi_json()) }),
            )
            .route(
                "/openapi-v2.json",
                get(|| async { json(openapi::swagger2_json()) }),
            )
            .fallback(|| async { problem::Problem::not_found("route") })
            .layer(axum::middleware::from_fn(counted))
            .with_state(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` ends; then takes no new requests, waits for the
    /// jobs in flight up to the grace period, and records those still running as interrupted.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let address = listener.local_addr()?;
        if self.state.config.anonymous_loopback && !address.ip().is_loopback() {
            bail!("--anonymous-loopback is allowed only on a loopback address, not {address}");
        }
        if self.state.config.keys.is_empty() && !self.state.config.anonymous_loopback {
            tracing::warn!("no API keys are configured: every request will be refused (401)");
        }
        tracing::info!(%address, tenants = self.state.tenants.len(), "serving");
        let state = self.state.clone();
        let signalled = async move {
            shutdown.await;
            state.shutting_down.store(true, Ordering::Relaxed);
            tracing::info!("shutting down: no new requests");
        };
        let router = self.router();
        match &self.state.config.tls {
            Some(files) => {
                let listener = tls::TlsListener::new(listener, files.acceptor()?)?;
                axum::serve(listener, router)
                    .with_graceful_shutdown(signalled)
                    .await
            }
            None => {
                axum::serve(listener, router)
                    .with_graceful_shutdown(signalled)
                    .await
            }
        }
        .context("serving")?;
        self.finish().await;
        if let Some(heartbeat) = self.heartbeat {
            heartbeat.abort();
        }
        Ok(())
    }

    /// Waits for the jobs in flight, up to the grace period; records the rest as interrupted.
    async fn finish(&self) {
        let state = &self.state;
        let deadline = tokio::time::Instant::now() + state.config.shutdown_grace;
        while !running_jobs(state).is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for snapshot in running_jobs(state) {
            let job = {
                let mut job = snapshot.lock().unwrap_or_else(PoisonError::into_inner);
                job.status = JobStatus::Interrupted;
                job.finished_at_ms = Some(now_ms());
                job.clone()
            };
            tracing::warn!(job = %job.id, tenant = %job.tenant, "job interrupted by the shutdown");
            if let Err(error) = state.store.update(&job).await {
                tracing::error!(job = %job.id, %error, "could not record the interrupted job");
            }
        }
    }
}

/// The jobs still running.
fn running_jobs(state: &State) -> Vec<Arc<Mutex<jobs::Job>>> {
    state
        .running
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .map(|r| r.snapshot.clone())
        .collect()
}

/// A JSON document as an answer.
fn json(text: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        text,
    )
        .into_response()
}

/// Counts each request by route and status.
async fn counted(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("defender_serve_requests_total", "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("defender_serve_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
