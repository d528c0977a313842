//! `host-harness bench fleet`: several `serve` processes sharing one tenant's budget through a
//! Redis this command starts (with an append-only file, as a production Redis keeps its data),
//! driven at `--load` times the budget against an in-process simulator that enforces
//! `--per-minute` calls a minute on each API with 429s. Each request is one device, sent to the
//! processes in turn with an `Idempotency-Key`. Measured: the 429s the API sent (the target is
//! none), the creations it answered within the load's duration against what the budget allows
//! in it, the fallbacks counted while Redis was killed, and a job and its idempotency key
//! crossing processes.

use super::child::ServeProcess;
use super::http::Client;
use super::native::Machines;
use super::print_report;
use super::scratch::{scratch_dir, write_private};
use crate::Console;
use crate::args::FleetArgs;
use anyhow::{Context, Result, ensure};
use defender_simulator::example::SHA1;
use defender_simulator::{RateLimit, Simulator};
use local_redis::RedisServer;
use serde::Serialize;
use serde_json::json;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

const TOKEN: &str = "fleet-bench-token";
const TOKEN_ENV: &str = "HOST_HARNESS_FLEET_BENCH_TOKEN";
const KEY: &str = "fleet-bench-key";
/// How long the jobs still waiting for a permit when the load ends may take: the component's
/// deadline, and a margin.
const DRAIN: Duration = Duration::from_secs(150);

/// What `bench fleet` measures.
#[derive(Debug, Serialize)]
struct Report {
    processes: u32,
    secs: u64,
    per_minute: u32,
    requests_sent: usize,
    requests_accepted: usize,
    requests_failed: usize,
    created_in_window: u64,
    budget_in_window: u64,
    granted_ratio: f64,
    created_total: u64,
    api_429s: u64,
    api_429s_at_secs: Vec<f64>,
    jobs_succeeded: f64,
    jobs_failed: f64,
    redis_killed_at_secs: Option<u64>,
    redis_down_secs: Option<u64>,
    fallbacks: f64,
    processes_healthy_after: usize,
    job_read_through_another_process: bool,
    idempotency_key_honoured_by_another_process: bool,
}

/// Runs the fleet and prints the report.
pub async fn run(args: FleetArgs, console: &mut Console<'_>) -> Result<ExitCode> {
    ensure!(
        (1..=16).contains(&args.processes),
        "--processes must be from 1 to 16"
    );
    ensure!(
        (10..=3600).contains(&args.secs),
        "--secs must be from 10 to 3600"
    );
    ensure!(
        (1..=6000).contains(&args.per_minute),
        "--per-minute must be from 1 to 6000"
    );
    ensure!((1..=10).contains(&args.load), "--load must be from 1 to 10");
    ensure!(
        args.redis_down_secs <= args.secs,
        "--redis-down-secs must be at most --secs"
    );
    let mut redis = RedisServer::try_start(true)
        .context("this benchmark starts redis-server, which must be on the PATH")?;
    let simulator = Simulator::start(0, Some(TOKEN)).await?;
    let per_hour = RateLimit::default().per_hour.max(args.per_minute);
    simulator.set_rate_limit(Some(RateLimit {
        per_minute: args.per_minute,
        per_hour,
    }));
    let creations = record_creations(&simulator);
    let dir = scratch_dir("fleet-bench")?;
    write_private(
        &dir.join("tenants.toml"),
        &tenants_file(&simulator, &redis, &args, per_hour),
    )?;
    write_private(
        &dir.join("serve.toml"),
        &format!(
            "listen = \"127.0.0.1:0\"\ntenants-file = \"tenants.toml\"\n\
             [jobs]\nbackend = \"redis\"\nredis-url = \"{}\"\n[audit]\nfile = \"audit.jsonl\"\n\
             [[key]]\nname = \"fleet\"\nsha256 = \"{}\"\ntenants = [\"fleet\"]\nmetrics = true\n",
            redis.url(),
            sha256_hex(KEY)
        ),
    )?;
    let mut processes = Vec::new();
    for n in 0..args.processes {
        let log = dir.join(format!("serve-{n}.log"));
        let cache = dir.join(format!("cache-{n}"));
        processes.push(ServeProcess::start(
            &dir.join("serve.toml"),
            &[(TOKEN_ENV, TOKEN)],
            &log,
            &cache,
        )?);
    }
    let client = Client::new(KEY);
    let machines = Arc::new(Machines::new()?);
    let total =
        usize::try_from(u64::from(args.per_minute) * u64::from(args.load) * args.secs / 60)?;
    let interval = Duration::from_secs(args.secs).div_f64(total.max(1) as f64);
    let started = Instant::now();
    let statuses = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let mut posts = tokio::task::JoinSet::new();
    let kill_at = args.kill_redis_at.map(Duration::from_secs);
    let resume_at = kill_at.map(|at| at + Duration::from_secs(args.redis_down_secs));
    let (mut killed, mut resumed) = (false, false);
    for i in 0..total {
        let due = interval.mul_f64(i as f64);
        tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
        if kill_at.is_some_and(|at| !killed && started.elapsed() >= at) {
            redis.kill();
            killed = true;
        }
        if resume_at.is_some_and(|at| killed && !resumed && started.elapsed() >= at) {
            redis.try_resume()?;
            resumed = true;
        }
        let url = format!(
            "{}/v1/tenants/fleet/quarantine",
            processes[i % processes.len()].url
        );
        let body =
            json!({"machineIds": [machines.next()], "sha1": SHA1, "comment": "fleet benchmark"})
                .to_string();
        let (client, statuses) = (client.clone(), statuses.clone());
        posts.spawn(async move {
            let key = format!("fleet-{i}");
            let status = client
                .call("POST", &url, &[("idempotency-key", &key)], &body)
                .await
                .map_or(0, |(status, _)| status);
            statuses
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(status);
        });
    }
    if killed && !resumed {
        redis.try_resume()?;
    }
    let window = started.elapsed();
    posts.join_all().await;
    drain(&client, &processes).await?;
    let statuses = statuses
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let (job_read, key_honoured) = across(&client, &processes, &machines).await?;
    let mut totals = Totals::default();
    let mut healthy = 0;
    for process in &processes {
        let text = client.text(&format!("{}/metrics", process.url)).await?;
        totals.add(&text);
        let (status, _) = client
            .call("GET", &format!("{}/healthz", process.url), &[], "")
            .await?;
        healthy += usize::from(status == 200);
    }
    let created = creations
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let created_in_window = created
        .iter()
        .filter(|(at, status)| *status == 201 && *at <= window)
        .count() as u64;
    let created_total = created.iter().filter(|(_, status)| *status == 201).count() as u64;
    let api_429s = simulator.api_calls().iter().map(|c| c.throttled).sum();
    // What the API allows in the window: a full budget at its start, then one more a minute
    // (and its margin) later, and so on.
    let refills = (window.as_secs_f64() / 61.0).floor() as u64 + 1;
    let budget_in_window = u64::from(args.per_minute) * refills;
    let report = Report {
        processes: args.processes,
        secs: args.secs,
        per_minute: args.per_minute,
        requests_sent: statuses.len(),
        requests_accepted: statuses.iter().filter(|s| matches!(s, 200 | 202)).count(),
        requests_failed: statuses.iter().filter(|s| !matches!(s, 200 | 202)).count(),
        created_in_window,
        budget_in_window,
        granted_ratio: created_in_window as f64 / budget_in_window as f64,
        created_total,
        api_429s,
        api_429s_at_secs: created
            .iter()
            .filter(|(_, status)| *status == 429)
            .map(|(at, _)| (at.as_secs_f64() * 10.0).round() / 10.0)
            .collect(),
        jobs_succeeded: totals.succeeded,
        jobs_failed: totals.failed,
        redis_killed_at_secs: args.kill_redis_at,
        redis_down_secs: args.kill_redis_at.map(|_| args.redis_down_secs),
        fallbacks: totals.fallbacks,
        processes_healthy_after: healthy,
        job_read_through_another_process: job_read,
        idempotency_key_honoured_by_another_process: key_honoured,
    };
    for process in processes {
        process.terminate()?;
    }
    print_report(&report, args.json, table, console)
}

/// Every creation the simulator answers, with when (from now) and its status.
fn record_creations(simulator: &Simulator) -> Arc<Mutex<Vec<(Duration, u16)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut exchanges = simulator.watch();
    let (record, since) = (seen.clone(), Instant::now());
    tokio::spawn(async move {
        while let Some(exchange) = exchanges.recv().await {
            if exchange.method == "POST" && exchange.path.ends_with("/StopAndQuarantineFile") {
                let entry = (since.elapsed(), exchange.status.unwrap_or(0));
                record
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(entry);
            }
        }
    });
    seen
}

/// Waits until no process has a job running, up to [`DRAIN`].
async fn drain(client: &Client, processes: &[ServeProcess]) -> Result<()> {
    let since = Instant::now();
    while since.elapsed() < DRAIN {
        let mut running = 0.0;
        for process in processes {
            let text = client.text(&format!("{}/metrics", process.url)).await?;
            running += gauge(&text, "defender_serve_jobs_running").unwrap_or(0.0);
        }
        if running == 0.0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    anyhow::bail!("jobs were still running {DRAIN:?} after the load ended")
}

/// A job created through the first process, read through the second, and its idempotency key
/// sent again through the last: whether the second saw it and the last gave the same job.
async fn across(
    client: &Client,
    processes: &[ServeProcess],
    machines: &Machines,
) -> Result<(bool, bool)> {
    let (first, second, last) = (
        &processes[0],
        &processes[1 % processes.len()],
        &processes[processes.len() - 1],
    );
    let body =
        json!({"machineIds": [machines.next()], "sha1": SHA1, "comment": "across"}).to_string();
    let headers = [("idempotency-key", "fleet-across")];
    let (_, created) = client
        .call(
            "POST",
            &format!("{}/v1/tenants/fleet/quarantine", first.url),
            &headers,
            &body,
        )
        .await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let (status, read) = client
        .call("GET", &format!("{}/v1/jobs/{id}", second.url), &[], "")
        .await?;
    let (_, again) = client
        .call(
            "POST",
            &format!("{}/v1/tenants/fleet/quarantine", last.url),
            &headers,
            &body,
        )
        .await?;
    Ok((
        status == 200 && read["id"] == id.as_str(),
        !id.is_empty() && again["id"] == id.as_str(),
    ))
}

/// Sums of the processes' counters.
#[derive(Default)]
struct Totals {
    succeeded: f64,
    failed: f64,
    fallbacks: f64,
}

impl Totals {
    fn add(&mut self, metrics: &str) {
        self.succeeded +=
            gauge(metrics, "defender_serve_jobs_total{status=\"succeeded\"}").unwrap_or(0.0);
        self.failed +=
            gauge(metrics, "defender_serve_jobs_total{status=\"failed\"}").unwrap_or(0.0);
        self.fallbacks += metrics
            .lines()
            .filter(|line| line.starts_with("defender_budget_fallbacks_total"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
}

/// The value of the sample `name` (with its labels) in Prometheus text.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

fn tenants_file(
    simulator: &Simulator,
    redis: &RedisServer,
    args: &FleetArgs,
    per_hour: u32,
) -> String {
    format!(
        "[[tenant]]\nname = \"fleet\"\ncloud = \"custom\"\napi-url = \"{}\"\n\
         max-concurrent-invocations = 1000\n\
         [tenant.credential]\nkind = \"token\"\ntoken-env = \"{TOKEN_ENV}\"\n\
         [tenant.budget]\nper-minute = {}\nper-hour = {per_hour}\nbackend = \"redis\"\n\
         redis-url = \"{}\"\nfleet-size = {}\n",
        simulator.base_url(),
        args.per_minute,
        redis.url(),
        args.processes
    )
}

fn sha256_hex(key: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn table(report: &Report) -> String {
    let r = report;
    let kill = match (r.redis_killed_at_secs, r.redis_down_secs) {
        (Some(at), Some(down)) => format!("Redis killed at {at} s for {down} s; "),
        _ => String::new(),
    };
    let kill = format!(
        "{kill}decisions made alone (fallbacks): {}; creations answered 429 at {:?} s\n",
        r.fallbacks, r.api_429s_at_secs
    );
    format!(
        "fleet: {} serve processes, {} s of load at {} creations a minute ({} requests, {} accepted, {} failed)\n\
         created within the load: {} of the {} the budget allows ({:.1} %); {} in all\n\
         429s from the API: {}; jobs succeeded {}, failed {}\n\
         {kill}\
         processes healthy after: {}; a job read through another process: {}; its idempotency key honoured by another: {}\n",
        r.processes,
        r.secs,
        r.per_minute,
        r.requests_sent,
        r.requests_accepted,
        r.requests_failed,
        r.created_in_window,
        r.budget_in_window,
        r.granted_ratio * 100.0,
        r.created_total,
        r.api_429s,
        r.jobs_succeeded,
        r.jobs_failed,
        r.processes_healthy_after,
        r.job_read_through_another_process,
        r.idempotency_key_honoured_by_another_process,
    )
}
