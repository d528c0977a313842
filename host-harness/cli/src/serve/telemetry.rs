//! `serve`'s logs (through `tracing`, filtered by `RUST_LOG`, as JSON lines or text) and its
//! Prometheus recorder, which the host library's metrics and the service's own reach.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Buckets for every `*_seconds` histogram: API calls take tens of ms, jobs minutes.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// How `serve` writes its logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object a line, for a log pipeline.
    Json,
    /// Lines for a person.
    Text,
}

/// Sends `tracing`'s events to stderr in `format`, filtered by `RUST_LOG` (default `info`).
/// Only the first call of a process takes effect.
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Another subscriber already set (a test process) keeps its own.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}

/// The process's Prometheus recorder: installed by the first call, shared by every service
/// of the process.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            };
            match builder().and_then(|b| b.install_recorder()) {
                Ok(handle) => handle,
                Err(error) => {
                    tracing::warn!(%error, "another metrics recorder is installed: /metrics shows only this service's own");
                    builder().map(|b| b.build_recorder().handle()).unwrap_or_else(|_| {
                        PrometheusBuilder::new().build_recorder().handle()
                    })
                }
            }
        })
        .clone()
}
