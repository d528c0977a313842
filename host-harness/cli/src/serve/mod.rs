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
    /// Becomes `true` when the service stops taking requests: requests waiting for a job
    /// answer at once.
    stopping: tokio::sync::watch::Sender<bool>,
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
                let redis = Arc::new(jobs::redis::RedisJobs::new(
                    url,
                    config.job_ttl,
                    instance.clone(),
                )?);
                heartbeat = Some(redis.beat());
                let local = jobs::memory::MemoryJobs::new(config.max_jobs, config.job_ttl);
                Arc::new(jobs::resilient::ResilientJobs::new(redis, local))
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
            stopping: tokio::sync::watch::Sender::new(false),
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
            .method_not_allowed_fallback(|| async {
                problem::Problem::new(
                    axum::http::StatusCode::METHOD_NOT_ALLOWED,
                    "invalid-input",
                    "this endpoint does not take this method",
                )
            })
            .layer(axum::middleware::from_fn(counted))
            .with_state(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` ends; then takes no new requests, answers those
    /// waiting for a job at once, gives open connections the grace period to finish, waits for
    /// the jobs in flight up to the grace period, and records those still running as
    /// interrupted.
    pub async fn run(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let address = listener.local_addr()?;
        let config = &self.state.config;
        if config.anonymous_loopback && !address.ip().is_loopback() {
            bail!("--anonymous-loopback is allowed only on a loopback address, not {address}");
        }
        if config.keys.is_empty() && !config.anonymous_loopback {
            tracing::warn!("no API keys are configured: every request will be refused (401)");
        }
        let acceptor = match &config.tls {
            Some(files) => Some(files.acceptor()?),
            None => None,
        };
        tracing::info!(%address, tenants = self.state.tenants.len(), tls = acceptor.is_some(), "serving");
        let router = self.router();
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(turn) = connections.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "{MAX_CONNECTIONS} connections are open: this one is closed");
                continue;
            };
            let connection = Connection {
                service: hyper_util::service::TowerToHyperService::new(router.clone()),
                watcher: graceful.watcher(),
                acceptor: acceptor.clone(),
            };
            tokio::spawn(async move {
                let _turn = turn;
                connection.serve(stream, peer).await;
            });
        }
        self.state.shutting_down.store(true, Ordering::Relaxed);
        let _ = self.state.stopping.send(true);
        tracing::info!("shutting down: no new connections");
        let grace = self.state.config.shutdown_grace;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the grace period are dropped");
        }
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

/// Connections open at once; past it, new ones are closed at once.
const MAX_CONNECTIONS: usize = 4096;
/// The longest a client may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One accepted connection: TLS first if configured, then HTTP/1.1 with a bounded head, until
/// it closes or the service shuts down.
struct Connection {
    service: hyper_util::service::TowerToHyperService<Router>,
    watcher: hyper_util::server::graceful::Watcher,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
}

impl Connection {
    async fn serve(self, stream: tokio::net::TcpStream, peer: std::net::SocketAddr) {
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT);
        let served = match self.acceptor {
            Some(acceptor) => {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(error)) => {
                        tracing::info!(%peer, error = %defender_host::escape::escape(&error.to_string()), "TLS handshake refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let io = hyper_util::rt::TokioIo::new(tls);
                self.watcher
                    .watch(http.serve_connection(io, self.service))
                    .await
            }
            None => {
                let io = hyper_util::rt::TokioIo::new(stream);
                self.watcher
                    .watch(http.serve_connection(io, self.service))
                    .await
            }
        };
        if let Err(error) = served {
            tracing::debug!(%peer, error = %defender_host::escape::escape(&error.to_string()), "connection ended");
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
