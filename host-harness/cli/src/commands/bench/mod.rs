//! `host-harness bench`: the component path against a native client, over the same requests to
//! the same simulator, in one run; plus instantiation, cold start, size and memory. Every number
//! is measured here, none estimated.

mod child;
mod fleet;
mod http;
mod native;
mod outbreak;
mod scratch;
mod serve;

use crate::Console;
use crate::args::{BenchArgs, BenchScenario};
use anyhow::{Context, Result};
use defender_host::credentials::Secret;
use defender_host::{COMPONENT, Runtime, Tenant};
use defender_simulator::example::SHA1;
use defender_simulator::{Reply, Simulator};
use native::{Machines, Native, bench_tenant, component_call};
use serde::Serialize;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-token";
const COMMENT: &str = "benchmark";
/// Invocations held in flight at once for the memory measurement.
const IN_FLIGHT: usize = 1000;

/// What `bench` measures.
#[derive(Debug, Serialize)]
struct Report {
    requests: usize,
    concurrency: usize,
    native_median_us: f64,
    native_p99_us: f64,
    component_median_us: f64,
    component_p99_us: f64,
    latency_ratio: f64,
    native_per_sec: f64,
    component_per_sec: f64,
    throughput_ratio: f64,
    instantiate_median_us: f64,
    call_without_io_median_us: f64,
    cold_start_cached_ms: f64,
    cold_start_uncached_ms: f64,
    component_bytes: usize,
    in_flight: usize,
    in_flight_peak_rss_mib: f64,
}

/// Runs `bench` as its options say: the measurements, or (for measurement only) readying the
/// runtime from a cache in this new process.
pub async fn run(args: BenchArgs, console: &mut Console<'_>) -> Result<ExitCode> {
    match args.scenario {
        Some(BenchScenario::Outbreak(outbreak)) => return outbreak::run(outbreak, console).await,
        Some(BenchScenario::Serve(serve)) => return serve::run(serve, console).await,
        Some(BenchScenario::Fleet(fleet)) => return fleet::run(fleet, console).await,
        None => {}
    }
    if let Some(cache_dir) = &args.ready {
        writeln!(console.out, "{}", ready(cache_dir)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let server = match args.api_url {
        Some(api_url) => {
            let token = std::env::var(&args.token_env)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| TOKEN.to_owned());
            Server::External {
                api_url,
                token: Secret::new(token),
            }
        }
        None => Server::InProcess,
    };
    let report = measure(server, args.requests.max(1), args.concurrency.max(1)).await?;
    print_report(&report, args.json, table, console)
}

/// Prints a report as one JSON object or as the table `table` writes; exit 0.
fn print_report<R: Serialize>(
    report: &R,
    json: bool,
    table: impl FnOnce(&R) -> String,
    console: &mut Console<'_>,
) -> Result<ExitCode> {
    let text = if json {
        serde_json::to_string(report)?
    } else {
        table(report)
    };
    writeln!(console.out, "{}", text.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

/// Where the calls go.
enum Server {
    /// A simulator in this process, started for the run.
    InProcess,
    /// A server already running elsewhere (e.g. `host-harness simulate` in another process),
    /// with the bearer token it accepts.
    External { api_url: String, token: Secret },
}

/// Runs the benchmark. The memory measurement always uses an in-process simulator: it needs
/// answers held back, which only that simulator can be told to do.
async fn measure(server: Server, requests: usize, concurrency: usize) -> Result<Report> {
    let simulator = Simulator::start(0, Some(TOKEN)).await?;
    // Thousands of calls a second: the API's limits would only measure the 429s.
    simulator.set_rate_limit(None);
    let (base, token) = match server {
        Server::InProcess => (simulator.base_url(), Secret::new(TOKEN)),
        Server::External { api_url, token } => (api_url.trim_end_matches('/').to_owned(), token),
    };
    let runtime = Runtime::builder()
        .max_in_flight(IN_FLIGHT)
        .max_requests_per_host(IN_FLIGHT)
        .build(COMPONENT)?;
    let tenant = bench_tenant(&base, token.clone())?;
    let machines = Arc::new(Machines::new()?);
    let native = Native::new(&runtime, &tenant, &base, &token)?;

    // Warm both paths (connections, caches) before measuring.
    for _ in 0..50 {
        native.call(&machines).await?;
        component_call(&runtime, &tenant, &machines).await?;
    }
    let native_latencies = sequential(requests, || native.call(&machines)).await?;
    let component_latencies =
        sequential(requests, || component_call(&runtime, &tenant, &machines)).await?;
    let native_per_sec = {
        let native = native.clone();
        let machines = machines.clone();
        throughput(requests, concurrency, move || {
            let (native, machines) = (native.clone(), machines.clone());
            async move { native.call(&machines).await }
        })
        .await?
    };
    let component_per_sec = {
        let (runtime, tenant, machines) = (runtime.clone(), tenant.clone(), machines.clone());
        throughput(requests, concurrency, move || {
            let (runtime, tenant, machines) = (runtime.clone(), tenant.clone(), machines.clone());
            async move { component_call(&runtime, &tenant, &machines).await }
        })
        .await?
    };
    let mut instantiations = Vec::with_capacity(requests);
    for _ in 0..requests {
        instantiations.push(runtime.measure_instantiation(&tenant).await?);
    }
    // A whole call that stops at validation: store, instance, export call, no host I/O.
    let without_io = sequential(requests, || async {
        let outcome = runtime
            .stop_and_quarantine(&tenant, "not-a-device", SHA1, COMMENT)
            .await?;
        anyhow::ensure!(outcome.result.is_err(), "an invalid ID was accepted");
        Ok(())
    })
    .await?;
    let (cold_start_uncached_ms, cold_start_cached_ms) = cold_starts()?;
    let local = bench_tenant(&simulator.base_url(), Secret::new(TOKEN))?;
    let in_flight_peak_rss_mib = in_flight_memory(&runtime, &local, &simulator, &machines).await?;

    let (native_median, native_p99) = percentiles(native_latencies);
    let (component_median, component_p99) = percentiles(component_latencies);
    Ok(Report {
        requests,
        concurrency,
        native_median_us: native_median,
        native_p99_us: native_p99,
        component_median_us: component_median,
        component_p99_us: component_p99,
        latency_ratio: component_median / native_median,
        native_per_sec,
        component_per_sec,
        throughput_ratio: component_per_sec / native_per_sec,
        instantiate_median_us: percentiles(instantiations).0,
        call_without_io_median_us: percentiles(without_io).0,
        cold_start_cached_ms,
        cold_start_uncached_ms,
        component_bytes: COMPONENT.len(),
        in_flight: IN_FLIGHT,
        in_flight_peak_rss_mib,
    })
}

async fn sequential<F, Fut>(requests: usize, call: F) -> Result<Vec<Duration>>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let mut latencies = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        call().await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

/// Calls per second with `concurrency` workers sharing `requests` calls.
async fn throughput<F, Fut>(requests: usize, concurrency: usize, call: F) -> Result<f64>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send,
{
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..concurrency {
        let call = call.clone();
        let share = requests / concurrency + usize::from(worker < requests % concurrency);
        workers.spawn(async move {
            for _ in 0..share {
                call().await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done??;
    }
    Ok(requests as f64 / started.elapsed().as_secs_f64())
}

/// Median and 99th percentile, in microseconds.
fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    (at(0.5), at(0.99))
}

/// A new process readying the component: first with an empty cache (compile and store), then
/// with the entry it stored. Each figure is the median of five processes, as the process
/// itself measured it from its start to the runtime being ready.
fn cold_starts() -> Result<(f64, f64)> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let dir = std::env::temp_dir().join(format!("host-harness-bench-{}", std::process::id()));
    let mut uncached = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..5 {
        let _ = std::fs::remove_dir_all(&dir);
        uncached.push(cold_start(&exe, &dir)?);
        cached.push(cold_start(&exe, &dir)?);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((percentiles(uncached).0 / 1e3, percentiles(cached).0 / 1e3))
}

fn cold_start(exe: &Path, dir: &Path) -> Result<Duration> {
    let output = Command::new(exe)
        .args(["bench", "--ready"])
        .arg(dir)
        .output()
        .context("starting a new process")?;
    let micros: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .context("reading the new process's start-up time")?;
    Ok(Duration::from_micros(micros))
}

/// `bench --ready DIR`: make the runtime, return how long it took in microseconds.
fn ready(cache_dir: &Path) -> Result<u64> {
    let started = Instant::now();
    Runtime::builder().cache_dir(cache_dir).build(COMPONENT)?;
    Ok(u64::try_from(started.elapsed().as_micros())?)
}

/// Holds `IN_FLIGHT` invocations in flight at once (the simulator delays every answer), and
/// returns the process's peak resident memory.
async fn in_flight_memory(
    runtime: &Runtime,
    tenant: &Tenant,
    simulator: &Simulator,
    machines: &Arc<Machines>,
) -> Result<f64> {
    simulator.script(
        (0..IN_FLIGHT).map(|_| Reply::Delayed(Duration::from_millis(500), Box::new(Reply::Create))),
    );
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (runtime, tenant, machines) = (runtime.clone(), tenant.clone(), machines.clone());
        calls.spawn(async move { component_call(&runtime, &tenant, &machines).await });
    }
    while let Some(done) = calls.join_next().await {
        done??;
    }
    peak_rss_mib()
}

/// `VmHWM` from `/proc/self/status`.
fn peak_rss_mib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")?;
    Ok(kib / 1024.0)
}

/// The report as a table.
fn table(report: &Report) -> String {
    let r = report;
    format!(
        "requests {} (sequential), concurrency {}\n\
         {:<34}{:>12}{:>12}{:>10}\n\
         {:<34}{:>12.1}{:>12.1}{:>10.2}\n\
         {:<34}{:>12.1}{:>12.1}{:>10.2}\n\
         {:<34}{:>12.0}{:>12.0}{:>10.2}\n\
         {:<34}{:>12.1}\n\
         {:<34}{:>12.1}\n\
         {:<34}{:>12.2}\n\
         {:<34}{:>12.2}\n\
         {:<34}{:>12}\n\
         {:<34}{:>12.1}\n",
        r.requests,
        r.concurrency,
        "",
        "native",
        "component",
        "ratio",
        "median latency (µs)",
        r.native_median_us,
        r.component_median_us,
        r.latency_ratio,
        "p99 latency (µs)",
        r.native_p99_us,
        r.component_p99_us,
        r.component_p99_us / r.native_p99_us,
        "throughput (calls/s)",
        r.native_per_sec,
        r.component_per_sec,
        r.throughput_ratio,
        "instantiate, median (µs)",
        r.instantiate_median_us,
        "call without I/O, median (µs)",
        r.call_without_io_median_us,
        "cold start with cache (ms)",
        r.cold_start_cached_ms,
        "cold start without cache (ms)",
        r.cold_start_uncached_ms,
        "component size (bytes)",
        r.component_bytes,
        format!("peak RSS, {} in flight (MiB)", r.in_flight),
        r.in_flight_peak_rss_mib,
    )
}
