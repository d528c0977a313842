//! `host-harness bench outbreak`: an outbreak contained at the API's own limit. The simulator
//! enforces `--per-minute` calls a minute on each API (429 with `Retry-After` past it) and
//! settles each action `--settle` seconds after its creation; this command's own binary runs
//! `stop-and-quarantine --everywhere --wait` against it, in a process of its own, through a
//! tenants file that gives the host the same budget. Reported: the wall time, the calls each API
//! answered, the 429s, and the ratio to what the API's limit allows at best.

use super::scratch::{scratch_dir, write_private};
use crate::Console;
use crate::args::OutbreakArgs;
use anyhow::{Context, Result, ensure};
use defender_simulator::example::SHA1;
use defender_simulator::{Progression, RateLimit, Simulator};
use serde::Serialize;
use std::collections::BTreeMap;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The token the simulator accepts, handed to the child process in this variable.
const TOKEN: &str = "outbreak-bench-token";
const TOKEN_ENV: &str = "HOST_HARNESS_OUTBREAK_TOKEN";
/// The component's first wait between polls.
const FIRST_POLL: Duration = Duration::from_secs(2);
/// The most devices an outbreak may have: the largest cap a request may ask for.
const MAX_DEVICES: u32 = 10_000;

/// What `bench outbreak` measures.
#[derive(Debug, Serialize)]
struct Report {
    devices: u32,
    per_minute: u32,
    settle_secs: u64,
    wall_secs: f64,
    lower_bound_secs: f64,
    ratio: f64,
    calls: BTreeMap<&'static str, u64>,
    throttled_429: u64,
    succeeded: usize,
    exit_code: Option<i32>,
}

/// Runs the outbreak and prints the report.
pub async fn run(args: OutbreakArgs, console: &mut Console<'_>) -> Result<ExitCode> {
    ensure!(
        (1..=MAX_DEVICES).contains(&args.devices),
        "--devices must be from 1 to {MAX_DEVICES}"
    );
    ensure!(args.per_minute >= 1, "--per-minute must be at least 1");
    ensure!(args.settle <= 3600, "--settle must be at most 3600 seconds");
    let simulator = Simulator::start(0, Some(TOKEN)).await?;
    simulator.set_rate_limit(Some(RateLimit {
        per_minute: args.per_minute,
        per_hour: RateLimit::default().per_hour.max(args.per_minute),
    }));
    simulator.set_progression(Progression::Settle {
        after: Duration::from_secs(args.settle),
        final_status: "Succeeded".into(),
    });
    let devices: Vec<String> = (0..args.devices)
        .map(|n| format!("{:08x}{:032x}", 0x0bad_f11e_u32, n))
        .collect();
    let named: Vec<&str> = devices.iter().map(String::as_str).collect();
    simulator.file_seen_on(SHA1, &named);

    let lower_bound = lower_bound(args.devices, args.per_minute, args.settle);
    let dir = scratch_dir("outbreak")?;
    let tenants = dir.join("tenants.toml");
    write_private(&tenants, &tenants_file(&simulator.base_url(), &args))?;
    let timeout = lower_bound.as_secs().saturating_mul(3).saturating_add(120);
    let mut command = Command::new(std::env::current_exe()?);
    command
        .args(["stop-and-quarantine", "--everywhere", "--sha1", SHA1])
        .args(["--comment", "outbreak benchmark", "--wait"])
        .args(["--timeout", &timeout.to_string()])
        .args(["--max-machines", &args.devices.to_string()])
        .arg("--tenants")
        .arg(&tenants)
        .args(["--tenant", "outbreak", "--cache-dir"])
        .arg(dir.join("cache"))
        .env(TOKEN_ENV, TOKEN)
        .stdin(Stdio::null());
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .context("running stop-and-quarantine")?;
    let wall = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);

    let outcomes: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("reading the fan-out's outcomes")?;
    let succeeded = outcomes.as_array().map_or(0, |all| {
        all.iter()
            .filter(|o| o["action"]["status"] == "Succeeded")
            .count()
    });
    let calls = simulator.api_calls();
    let report = Report {
        devices: args.devices,
        per_minute: args.per_minute,
        settle_secs: args.settle,
        wall_secs: wall.as_secs_f64(),
        lower_bound_secs: lower_bound.as_secs_f64(),
        ratio: wall.as_secs_f64() / lower_bound.as_secs_f64().max(f64::MIN_POSITIVE),
        calls: calls.iter().map(|c| (c.api, c.answered)).collect(),
        throttled_429: calls.iter().map(|c| c.throttled).sum(),
        succeeded,
        exit_code: output.status.code(),
    };
    super::print_report(&report, args.json, table, console)
}

/// What the API's limit allows at best: `ceil(N/P - 1)` minutes of waiting for the create
/// budget, then the settle time, then one poll interval.
fn lower_bound(devices: u32, per_minute: u32, settle_secs: u64) -> Duration {
    let minutes = devices.saturating_sub(1) / per_minute.max(1);
    Duration::from_secs(u64::from(minutes) * 60 + settle_secs) + FIRST_POLL
}

/// A tenants file for the simulator, with the run's budget for each API.
fn tenants_file(base_url: &str, args: &OutbreakArgs) -> String {
    format!(
        "[[tenant]]\nname = \"outbreak\"\ncloud = \"custom\"\napi-url = \"{base_url}\"\n\
         [tenant.credential]\nkind = \"token\"\ntoken-env = \"{TOKEN_ENV}\"\n\
         [tenant.budget]\nper-minute = {}\n",
        args.per_minute
    )
}

fn table(report: &Report) -> String {
    let r = report;
    let calls: Vec<String> = r
        .calls
        .iter()
        .map(|(api, n)| format!("{api} {n}"))
        .collect();
    format!(
        "outbreak: {} devices, {} calls a minute per API, settled {} s after creation\n\
         wall time {:.1} s, lower bound {:.1} s, ratio {:.3}\n\
         calls answered: {}\n\
         429s received: {}; actions succeeded: {} of {}; exit code {}\n",
        r.devices,
        r.per_minute,
        r.settle_secs,
        r.wall_secs,
        r.lower_bound_secs,
        r.ratio,
        calls.join(", "),
        r.throttled_429,
        r.succeeded,
        r.devices,
        r.exit_code.map_or("none".into(), |c| c.to_string()),
    )
}
