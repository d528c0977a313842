//! The `host-harness` command line: run the stop-and-quarantine component locally, against the
//! real API or the built-in simulator. Exit codes: 0 done, 1 failed, 2 invalid input (nothing
//! was sent). It lives in the library, writing to given streams, so tests run it in-process.

use crate::credentials::{EnvToken, StaticToken, TokenSource};
use crate::limits::Limits;
use crate::origin::ApiOrigin;
use crate::rate_limit::{Budget, RateLimiter};
use crate::secret::Secret;
use crate::simulator::Simulator;
use crate::{ActionError, COMPONENT, Outcome, Runtime, Tenant, report};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const DEFAULT_API_URL: &str = "https://api.security.microsoft.com";

#[derive(Parser)]
#[command(
    version,
    about = "Run the Defender for Endpoint stop-and-quarantine component"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stop a file's processes on a device and quarantine it.
    StopAndQuarantine {
        /// The device's ID (40 hex characters).
        #[arg(long)]
        machine_id: String,
        /// The file's SHA-1 (40 hex characters).
        #[arg(long)]
        sha1: String,
        /// The comment attached to the action.
        #[arg(long)]
        comment: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Serve the API simulator on 127.0.0.1 until interrupted.
    Simulate {
        /// The port (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Accept only the token in this environment variable, if it is set.
        #[arg(long, default_value = "MDE_TOKEN")]
        token_env: String,
    },
    /// Run the API page's example against an in-process simulator.
    Demo,
}

#[derive(clap::Args)]
struct Connection {
    /// The tenant's API base URL; http is accepted only for 127.0.0.1, [::1] and localhost.
    #[arg(long, default_value = DEFAULT_API_URL)]
    api_url: String,
    /// The environment variable that holds the bearer token.
    #[arg(long, default_value = "MDE_TOKEN")]
    token_env: String,
    /// Run this component instead of the embedded one.
    #[arg(long)]
    component: Option<PathBuf>,
}

/// Where the command writes: its standard output and standard error.
pub struct Console<'a> {
    /// Results: the MachineAction's JSON, the simulator's URL.
    pub out: &'a mut dyn Write,
    /// Diagnostics: errors, refusals, progress.
    pub err: &'a mut dyn Write,
}

/// Runs the command line `args` (program name first) and returns the exit code.
pub async fn run(args: impl IntoIterator<Item = OsString>, console: &mut Console<'_>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let target = if error.use_stderr() {
                &mut console.err
            } else {
                &mut console.out
            };
            // Nothing more can be said if the console itself is gone.
            let _ = write!(target, "{}", error.render());
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2));
        }
    };
    let result = match cli.command {
        Command::StopAndQuarantine {
            machine_id,
            sha1,
            comment,
            connection,
        } => stop_and_quarantine(&machine_id, &sha1, &comment, connection, console).await,
        Command::Simulate { port, token_env } => simulate(port, &token_env, console).await,
        Command::Demo => demo(console).await,
    };
    result.unwrap_or_else(|error| {
        let _ = writeln!(console.err, "error: {error:#}");
        ExitCode::FAILURE
    })
}

async fn stop_and_quarantine(
    machine_id: &str,
    sha1: &str,
    comment: &str,
    connection: Connection,
    console: &mut Console<'_>,
) -> Result<ExitCode> {
    let origin = match ApiOrigin::parse(&connection.api_url) {
        Ok(origin) => origin,
        Err(error) => {
            writeln!(console.err, "invalid --api-url: {error}")?;
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = load(connection.component.as_deref())?;
    let tenant = tenant(origin, Arc::new(EnvToken::new(connection.token_env)));
    let outcome = runtime
        .stop_and_quarantine(&tenant, machine_id, sha1, comment)
        .await?;
    print(outcome, console)
}

async fn simulate(port: u16, token_env: &str, console: &mut Console<'_>) -> Result<ExitCode> {
    let token = std::env::var(token_env)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let accepts = if token.is_some() {
        format!("the bearer token in {token_env}")
    } else {
        "any bearer token".to_owned()
    };
    let simulator = Simulator::start(port, token.map(Secret::new))
        .await
        .context("starting the simulator")?;
    writeln!(
        console.err,
        "simulating the Defender for Endpoint API on {} (accepting {accepts}); Ctrl-C stops",
        simulator.base_url()
    )?;
    writeln!(console.out, "{}", simulator.base_url())?;
    console.out.flush()?;
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(ExitCode::SUCCESS)
}

async fn demo(console: &mut Console<'_>) -> Result<ExitCode> {
    let token = Secret::new("demo-token");
    let simulator = Simulator::start(0, Some(token.clone()))
        .await
        .context("starting the simulator")?;
    let origin = ApiOrigin::parse(&simulator.base_url())?;
    let runtime = load(None)?;
    let tenant = tenant(origin, Arc::new(StaticToken::new(token)));
    writeln!(
        console.err,
        "demo: the API page's example, against the simulator on {}",
        simulator.base_url()
    )?;
    let outcome = runtime
        .stop_and_quarantine(
            &tenant,
            "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
            "87662bc3d60e4200ceaf7aae249d1c343f4b83c9",
            "Stop and quarantine file on machine due to alert 441688558380765161_2136280442",
        )
        .await?;
    for request in simulator.requests() {
        writeln!(
            console.err,
            "demo: the simulator received {} {} {}",
            request.method,
            request.path,
            String::from_utf8_lossy(&request.body)
        )?;
    }
    print(outcome, console)
}

fn load(component: Option<&std::path::Path>) -> Result<Runtime> {
    let bytes = match component {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("reading the component {}", path.display()))?,
        None => COMPONENT.to_vec(),
    };
    Ok(Runtime::new(&bytes, Limits::default())?)
}

fn tenant(origin: ApiOrigin, tokens: Arc<dyn TokenSource>) -> Tenant {
    Tenant {
        origin,
        tokens,
        limiter: Arc::new(RateLimiter::new(Budget::default())),
    }
}

/// Prints the action on stdout, or the error on stderr, and picks the exit code.
fn print(outcome: Outcome, console: &mut Console<'_>) -> Result<ExitCode> {
    for denial in &outcome.denials {
        writeln!(console.err, "host: refused a request: {denial}")?;
    }
    Ok(match outcome.result {
        Ok(action) => {
            let json = report::action_json(&action);
            writeln!(console.out, "{}", serde_json::to_string_pretty(&json)?)?;
            ExitCode::SUCCESS
        }
        Err(error) => {
            writeln!(console.err, "error: {}", report::error_line(&error))?;
            match error {
                ActionError::InvalidInput(_) => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    })
}
