//! `host-harness bench serve`: what `serve` costs. First the same one-device quarantine,
//! sequentially, as a direct library call (`Runtime::quarantine`) and as an HTTP request to a
//! service in this process (`POST …/quarantine?wait=true`), both against one in-process
//! simulator: the difference of the medians is the service's overhead. Then a `serve` process
//! of its own holding `--jobs` jobs at once (each waiting on an action that stays pending): its
//! resident memory.

use super::child::ServeProcess;
use super::http::Client;
use super::native::Machines;
use super::scratch::{scratch_dir, write_private};
use super::{percentiles, print_report};
use crate::Console;
use crate::args::ServeBenchArgs;
use crate::serve::Service;
use crate::serve::config::{ApiKey, ServeConfig};
use anyhow::{Context, Result, ensure};
use defender_host::credentials::{Secret, StaticToken};
use defender_host::outbound::ApiOrigin;
use defender_host::rate_limit::Budget;
use defender_host::{COMPONENT, QuarantineRequest, Runtime, Targets, Tenant};
use defender_simulator::example::SHA1;
use defender_simulator::{Progression, Simulator};
use serde::Serialize;
use serde_json::json;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "serve-bench-token";
const TOKEN_ENV: &str = "HOST_HARNESS_SERVE_BENCH_TOKEN";
const KEY: &str = "serve-bench-key";
/// The most jobs `--jobs` may ask for.
const MAX_JOBS: usize = 100_000;

/// What `bench serve` measures.
#[derive(Debug, Serialize)]
struct Report {
    requests: usize,
    direct_median_us: f64,
    direct_p99_us: f64,
    serve_median_us: f64,
    serve_p99_us: f64,
    overhead_median_us: f64,
    prepare_median_us: f64,
    http_floor_median_us: f64,
    jobs: usize,
    jobs_accepted: usize,
    jobs_running: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
}

/// Runs both measurements and prints the report.
pub async fn run(args: ServeBenchArgs, console: &mut Console<'_>) -> Result<ExitCode> {
    ensure!(args.requests >= 1, "--requests must be at least 1");
    ensure!(
        (1..=MAX_JOBS).contains(&args.jobs),
        "--jobs must be from 1 to {MAX_JOBS}"
    );
    let simulator = Simulator::start(0, Some(TOKEN)).await?;
    simulator.set_rate_limit(None);
    let measured = overhead(&simulator, args.requests).await?;
    let (direct_median_us, direct_p99_us) = percentiles(measured.direct);
    let (serve_median_us, serve_p99_us) = percentiles(measured.served);
    let (prepare_median_us, _) = percentiles(measured.prepare);
    let (http_floor_median_us, _) = percentiles(measured.healthz);
    simulator.set_progression(Progression::StayPending);
    let held = memory(&simulator, args.jobs).await?;
    let report = Report {
        requests: args.requests,
        direct_median_us,
        direct_p99_us,
        serve_median_us,
        serve_p99_us,
        overhead_median_us: serve_median_us - direct_median_us,
        prepare_median_us,
        http_floor_median_us,
        jobs: args.jobs,
        jobs_accepted: held.accepted,
        jobs_running: held.running,
        rss_mib: held.rss_mib,
        peak_rss_mib: held.peak_rss_mib,
    };
    print_report(&report, args.json, table, console)
}

/// Latencies, `requests` of each.
struct Overhead {
    /// The one-device quarantine, called directly.
    direct: Vec<Duration>,
    /// The same through `serve`.
    served: Vec<Duration>,
    /// `Runtime::prepare` of the same request, which `serve` runs first.
    prepare: Vec<Duration>,
    /// `GET /healthz`: the HTTP round trip alone.
    healthz: Vec<Duration>,
}

/// The one-device quarantine's latencies, direct and through `serve`, and the parts of the
/// difference that can be measured alone.
async fn overhead(simulator: &Simulator, requests: usize) -> Result<Overhead> {
    let runtime = Runtime::builder().build(COMPONENT)?;
    let tenant = Tenant::new(
        ApiOrigin::parse(&simulator.base_url())?,
        Arc::new(StaticToken::new(Secret::new(TOKEN))),
    )
    .with_name("bench")
    .with_budget(Budget::new(1_000_000, 1_000_000));
    let dir = scratch_dir("serve-bench")?;
    let config = ServeConfig {
        keys: vec![bench_key()],
        audit_file: Some(dir.join("audit.jsonl")),
        ..ServeConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let url = format!("{base}/v1/tenants/bench/quarantine?wait=true");
    let service = Service::new(
        config,
        runtime.clone(),
        vec![("bench".to_owned(), tenant.clone())],
    )?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(service.run(listener, async move {
        let _ = stopped.await;
    }));
    let machines = Machines::new()?;
    let client = Client::new(KEY);
    let direct_call = || {
        let request = QuarantineRequest {
            targets: Targets::Machines(vec![machines.next()]),
            file: defender_host::File::Sha1(SHA1.to_owned()),
            comment: "serve benchmark".to_owned(),
            wait: None,
            max_machines: None,
        };
        let (runtime, tenant) = (&runtime, &tenant);
        async move {
            let outcome = runtime.quarantine(tenant, request, None).await?;
            ensure!(
                outcome
                    .result
                    .is_ok_and(|f| f.outcomes.iter().all(|o| o.outcome.is_ok())),
                "a direct call failed"
            );
            Ok(())
        }
    };
    let serve_call = || {
        let body =
            json!({"machineIds": [machines.next()], "sha1": SHA1, "comment": "serve benchmark"})
                .to_string();
        let (client, url) = (&client, &url);
        async move {
            let (status, job) = client.call("POST", url, &[], &body).await?;
            ensure!(
                status == 200 && job["status"] == "succeeded",
                "a served call failed: {status} {job}"
            );
            Ok(())
        }
    };
    // Warm both paths (connections, caches, the pool's slots) before measuring.
    for _ in 0..50 {
        direct_call().await?;
        serve_call().await?;
    }
    // Interleaved, so both see the same machine and the same simulator state.
    let mut measured = Overhead {
        direct: Vec::with_capacity(requests),
        served: Vec::with_capacity(requests),
        prepare: Vec::with_capacity(requests),
        healthz: Vec::with_capacity(requests),
    };
    let healthz = format!("{base}/healthz");
    for _ in 0..requests {
        let started = Instant::now();
        direct_call().await?;
        measured.direct.push(started.elapsed());
        let started = Instant::now();
        serve_call().await?;
        measured.served.push(started.elapsed());
        let request = QuarantineRequest {
            targets: Targets::Machines(vec![machines.next()]),
            file: defender_host::File::Sha1(SHA1.to_owned()),
            comment: "serve benchmark".to_owned(),
            wait: None,
            max_machines: None,
        };
        let started = Instant::now();
        runtime
            .prepare(&tenant, request)
            .await?
            .result
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        measured.prepare.push(started.elapsed());
        let started = Instant::now();
        client.text(&healthz).await?;
        measured.healthz.push(started.elapsed());
    }
    let _ = stop.send(());
    serving.await??;
    Ok(measured)
}

/// What a `serve` process holding many jobs measured.
struct Held {
    accepted: usize,
    running: f64,
    rss_mib: f64,
    peak_rss_mib: f64,
}

/// Starts `serve` in a process of its own, gives it `jobs` jobs that each wait on an action
/// that stays pending, and reads its memory once every job is accepted and running.
async fn memory(simulator: &Simulator, jobs: usize) -> Result<Held> {
    let dir = scratch_dir("serve-bench-memory")?;
    let tenants = dir.join("tenants.toml");
    write_private(
        &tenants,
        &format!(
            "[[tenant]]\nname = \"bench\"\ncloud = \"custom\"\napi-url = \"{}\"\n\
             max-concurrent-invocations = 10000\n\
             [tenant.credential]\nkind = \"token\"\ntoken-env = \"{TOKEN_ENV}\"\n\
             [tenant.budget]\nper-minute = 1000000\nper-hour = 1000000\n",
            simulator.base_url()
        ),
    )?;
    let config = dir.join("serve.toml");
    write_private(
        &config,
        &format!(
            "listen = \"127.0.0.1:0\"\ntenants-file = \"tenants.toml\"\n\
             [jobs]\nshutdown-grace-secs = 0\n[audit]\nfile = \"audit.jsonl\"\n\
             [[key]]\nname = \"bench\"\nsha256 = \"{}\"\ntenants = [\"bench\"]\nmetrics = true\n",
            hex(&bench_key().sha256)
        ),
    )?;
    let process = ServeProcess::start(
        &config,
        &[(TOKEN_ENV, TOKEN)],
        &dir.join("serve.log"),
        &dir.join("cache"),
    )?;
    let url = format!("{}/v1/tenants/bench/quarantine", process.url);
    let machines = Arc::new(Machines::new()?);
    let client = Client::new(KEY);
    let mut posts = tokio::task::JoinSet::new();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..32 {
        let (client, url, machines, accepted, next) = (
            client.clone(),
            url.clone(),
            machines.clone(),
            accepted.clone(),
            next.clone(),
        );
        posts.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < jobs {
                let body = json!({"machineIds": [machines.next()], "sha1": SHA1, "comment": "memory benchmark",
                    "wait": {"timeoutSeconds": 3600}})
                .to_string();
                let (status, _) = client.call("POST", &url, &[], &body).await?;
                if status == 202 {
                    accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        });
    }
    for posted in posts.join_all().await {
        posted?;
    }
    // Let every invocation that has a slot create its action and start polling.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let text = client.text(&format!("{}/metrics", process.url)).await?;
    let running = text
        .lines()
        .find_map(|line| line.strip_prefix("defender_serve_jobs_running "))
        .and_then(|v| v.trim().parse().ok())
        .context("no defender_serve_jobs_running in /metrics")?;
    let (rss_mib, peak_rss_mib) = process.memory_mib()?;
    process.terminate()?;
    Ok(Held {
        accepted: accepted.load(std::sync::atomic::Ordering::Relaxed),
        running,
        rss_mib,
        peak_rss_mib,
    })
}

fn bench_key() -> ApiKey {
    ApiKey::for_secret("bench", KEY, &["*"], true)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn table(report: &Report) -> String {
    let r = report;
    format!(
        "one-device quarantine, {} sequential calls of each, against an in-process simulator\n\
         {:<34}{:>12}{:>12}\n\
         {:<34}{:>12.1}{:>12.1}\n\
         {:<34}{:>12.1}{:>12.1}\n\
         {:<34}{:>12.1}\n\
         {:<34}{:>12.1}\n\
         {:<34}{:>12.1}\n\
         serve holding {} jobs ({} accepted, {} running): RSS {:.1} MiB, peak {:.1} MiB\n",
        r.requests,
        "",
        "median µs",
        "p99 µs",
        "direct (Runtime::quarantine)",
        r.direct_median_us,
        r.direct_p99_us,
        "through serve (POST ?wait=true)",
        r.serve_median_us,
        r.serve_p99_us,
        "serve's overhead (median)",
        r.overhead_median_us,
        "  of which prepare (median)",
        r.prepare_median_us,
        "  HTTP round trip alone (median)",
        r.http_floor_median_us,
        r.jobs,
        r.jobs_accepted,
        r.jobs_running,
        r.rss_mib,
        r.peak_rss_mib,
    )
}
