//! The `host-harness` command line: run the stop-and-quarantine component locally, against the
//! real API or the built-in simulator. Exit codes: 0 done, 1 failed (for a fan-out: any device
//! failed), 2 invalid input (nothing was sent). It lives in the library, writing to given
//! streams, so tests run it in-process.

mod bench;
mod fanout;
mod output;
mod progress;

use crate::credentials::{Secret, StaticToken, StoredToken, TokenSource};
use crate::limits::Limits;
use crate::origin::ApiOrigin;
use crate::simulator::{ClientProof, Simulator};
use crate::tenants::Tenants;
use crate::{COMPONENT, File, ProgressUpdate, QuarantineRequest, Runtime, Targets, Tenant, Wait};
use anyhow::{Context, Result};
use clap::{ArgGroup, Parser, Subcommand};
use fanout::fan_out;
use output::{print, print_action, print_error, print_outcomes, report_denials};
use progress::ProgressView;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::mpsc;

const DEFAULT_API_URL: &str = "https://api.security.microsoft.com";
const INVALID: u8 = 2;

/// The API page's example: the file, its device, and the comment.
const EXAMPLE_SHA1: &str = "87662bc3d60e4200ceaf7aae249d1c343f4b83c9";
const EXAMPLE_COMMENT: &str =
    "Stop and quarantine file on machine due to alert 441688558380765161_2136280442";
/// The devices `simulate` says have seen the example file: the page's device and two more.
const EXAMPLE_FLEET: [&str; 3] = [
    "1e5bc9d7e413ddd7902c2932e418702b84d0cc07",
    "7f1c0a3e5b2d4c6e8f9a0b1c2d3e4f5a6b7c8d9e",
    "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9",
];

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
    /// Stop a file's processes on devices and quarantine it.
    #[command(group(ArgGroup::new("targets").required(true).args(["machine_ids", "machines_file", "everywhere"])))]
    #[command(group(ArgGroup::new("hash").required(true).args(["sha1", "file"])))]
    StopAndQuarantine {
        /// A device's ID (40 hex characters); repeat for several devices.
        #[arg(long = "machine-id")]
        machine_ids: Vec<String>,
        /// A file of device IDs, one per line (blank lines and `#` comments are skipped).
        #[arg(long, conflicts_with = "machine_ids")]
        machines_file: Option<PathBuf>,
        /// Every device on which the API has seen the file.
        #[arg(long, conflicts_with_all = ["machine_ids", "machines_file"])]
        everywhere: bool,
        /// The file's SHA-1 (40 hex characters).
        #[arg(long)]
        sha1: Option<String>,
        /// The file itself: its SHA-1 is computed by the component.
        #[arg(long, conflicts_with = "sha1")]
        file: Option<PathBuf>,
        /// The comment attached to the actions.
        #[arg(long)]
        comment: String,
        /// Wait for the actions to reach a final status, showing progress on stderr.
        #[arg(long)]
        wait: bool,
        /// How long to wait, in seconds.
        #[arg(long, requires = "wait", default_value_t = 300)]
        timeout: u64,
        /// Cancel the actions still not final when the wait times out.
        #[arg(long, requires = "wait")]
        cancel_on_timeout: bool,
        #[command(flatten)]
        connection: Connection,
    },
    /// Show an action.
    Status {
        /// The action's ID.
        action_id: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Cancel an action that is not final yet.
    Cancel {
        /// The action's ID.
        action_id: String,
        /// Why it is cancelled.
        #[arg(long)]
        comment: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Serve the API simulator on 127.0.0.1 until interrupted. Prints its base URL, then one
    /// JSON line per request received (method, path, version, host, headers and body with
    /// credentials redacted, content type, whether the token was accepted, answer status).
    Simulate {
        /// The port (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Accept only the token in this environment variable, if it is set.
        #[arg(long, default_value = "MDE_TOKEN")]
        token_env: String,
        /// Register an application in this directory (tenant) ID with the token endpoint.
        #[arg(long, requires = "client_id")]
        tenant_id: Option<String>,
        /// The application's client ID; its secret is in --client-secret-env.
        #[arg(long, requires = "tenant_id")]
        client_id: Option<String>,
        /// The environment variable holding the registered application's client secret.
        #[arg(long, default_value = "MDE_CLIENT_SECRET", requires = "client_id")]
        client_secret_env: String,
    },
    /// Measure the component path against a native client, on an in-process simulator or
    /// on a server at --api-url (e.g. `host-harness simulate` in another process).
    Bench {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Calls per measurement.
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        /// Concurrent callers for the throughput measurement.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// A server answering like the API (never a real tenant: every call creates an action
        /// for a made-up device); without it, a simulator in this process.
        #[arg(long)]
        api_url: Option<String>,
        /// The environment variable holding the bearer token the --api-url server accepts.
        #[arg(long, default_value = "MDE_TOKEN", requires = "api_url")]
        token_env: String,
    },
    /// Write the embedded component (the release `.wasm`) to a file, for other hosts.
    Component {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
    /// Ready the runtime from a cache and print how long it took, in microseconds (used by
    /// `bench` to measure cold starts in a new process).
    #[command(hide = true)]
    Ready {
        /// The cache to load from (and store to).
        #[arg(long)]
        cache_dir: PathBuf,
    },
    /// Run the API page's example against an in-process simulator.
    Demo {
        /// Where precompiled code is kept (default: the user's cache directory).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct Connection {
    /// The tenant's API base URL; http is accepted only for 127.0.0.1, [::1] and localhost.
    #[arg(long, default_value = DEFAULT_API_URL)]
    api_url: String,
    /// The environment variable that holds the bearer token.
    #[arg(long, default_value = "MDE_TOKEN")]
    token_env: String,
    /// A tenants file (TOML): the tenant's cloud, credential, budget and limits come from it.
    #[arg(long, requires = "tenant", conflicts_with_all = ["api_url", "token_env"])]
    tenants: Option<PathBuf>,
    /// The tenant to act for, by its name in the tenants file.
    #[arg(long, requires = "tenants")]
    tenant: Option<String>,
    /// Run this component instead of the embedded one.
    #[arg(long)]
    component: Option<PathBuf>,
    /// Where precompiled code is kept (default: the user's cache directory).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// Where the command writes: its standard output and standard error.
pub struct Console<'a> {
    /// Results: the MachineAction's JSON, the simulator's URL.
    pub out: &'a mut dyn Write,
    /// Diagnostics: errors, refusals, progress.
    pub err: &'a mut dyn Write,
    /// Whether `err` is a terminal, where progress is drawn as a bar.
    pub err_is_terminal: bool,
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
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(INVALID));
        }
    };
    let result = match cli.command {
        Command::StopAndQuarantine {
            machine_ids,
            machines_file,
            everywhere,
            sha1,
            file,
            comment,
            wait,
            timeout,
            cancel_on_timeout,
            connection,
        } => {
            let single = machine_ids.len() == 1;
            let targets = match (machines_file, everywhere) {
                (_, true) => Ok(Targets::Everywhere),
                (Some(path), false) => read_machines(&path).map(Targets::Machines),
                (None, false) => Ok(Targets::Machines(machine_ids)),
            };
            let file = match (sha1, file) {
                (Some(sha1), _) => Ok(File::Sha1(sha1)),
                (None, Some(path)) => std::fs::read(&path)
                    .map(File::Content)
                    .with_context(|| format!("reading --file {}", path.display())),
                (None, None) => Err(anyhow::anyhow!("give --sha1 or --file")),
            };
            match (targets, file) {
                (Ok(targets), Ok(file)) => {
                    let request = QuarantineRequest {
                        targets,
                        file,
                        comment,
                        wait: wait.then_some(Wait {
                            timeout_ms: timeout.saturating_mul(1000),
                            cancel_on_timeout,
                        }),
                    };
                    quarantine(request, single, connection, console).await
                }
                (Err(error), _) | (_, Err(error)) => {
                    let _ = writeln!(console.err, "invalid input: {error:#}");
                    return ExitCode::from(INVALID);
                }
            }
        }
        Command::Status {
            action_id,
            connection,
        } => status(&action_id, connection, console).await,
        Command::Cancel {
            action_id,
            comment,
            connection,
        } => cancel(&action_id, &comment, connection, console).await,
        Command::Simulate {
            port,
            token_env,
            tenant_id,
            client_id,
            client_secret_env,
        } => {
            let app = tenant_id.zip(client_id).map(|(tenant_id, client_id)| App {
                tenant_id,
                client_id,
                secret_env: client_secret_env,
            });
            simulate(port, &token_env, app, console).await
        }
        Command::Demo { cache_dir } => demo(cache_dir, console).await,
        Command::Bench {
            json,
            requests,
            concurrency,
            api_url,
            token_env,
        } => bench::run(
            bench_server(api_url, &token_env),
            requests.max(1),
            concurrency.max(1),
        )
        .await
        .and_then(|report| {
            let text = if json {
                serde_json::to_string(&report)?
            } else {
                bench::table(&report)
            };
            writeln!(console.out, "{}", text.trim_end())?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Component { out } => std::fs::write(&out, COMPONENT)
            .with_context(|| format!("writing {}", out.display()))
            .map(|()| ExitCode::SUCCESS),
        Command::Ready { cache_dir } => bench::ready(&cache_dir).and_then(|micros| {
            writeln!(console.out, "{micros}")?;
            Ok(ExitCode::SUCCESS)
        }),
    };
    result.unwrap_or_else(|error| {
        let _ = writeln!(console.err, "error: {error:#}");
        ExitCode::FAILURE
    })
}

/// The server `bench` calls: the one at `api_url` with the token in `token_env` (a simulator
/// started without a token accepts any), or an in-process simulator.
fn bench_server(api_url: Option<String>, token_env: &str) -> bench::Server {
    match api_url {
        Some(api_url) => {
            let token = std::env::var(token_env)
                .ok()
                .filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| "bench-token".to_owned());
            bench::Server::External {
                api_url,
                token: Secret::new(token),
            }
        }
        None => bench::Server::InProcess,
    }
}

/// One device ID a line; blank lines and `#` comments skipped.
fn read_machines(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --machines-file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

/// The runtime and tenant a connection describes; `None` after reporting a bad `--api-url` or
/// tenants file.
fn connect(connection: Connection, console: &mut Console<'_>) -> Result<Option<(Runtime, Tenant)>> {
    let tenant = match (&connection.tenants, &connection.tenant) {
        (Some(path), Some(name)) => Tenants::load(path)
            .and_then(|t| t.get(name).cloned())
            .map_err(|error| format!("invalid --tenants: {error}")),
        _ => ApiOrigin::parse(&connection.api_url)
            .map(|origin| tenant(origin, Arc::new(StoredToken::env(&connection.token_env))))
            .map_err(|error| format!("invalid --api-url: {error}")),
    };
    let tenant = match tenant {
        Ok(tenant) => tenant,
        Err(message) => {
            writeln!(console.err, "{message}")?;
            return Ok(None);
        }
    };
    let runtime = load(connection.component.as_deref(), connection.cache_dir)?;
    Ok(Some((runtime, tenant)))
}

async fn quarantine(
    request: QuarantineRequest,
    single: bool,
    connection: Connection,
    console: &mut Console<'_>,
) -> Result<ExitCode> {
    let Some((runtime, tenant)) = connect(connection, console)? else {
        return Ok(ExitCode::from(INVALID));
    };
    let (sender, mut updates) = mpsc::unbounded_channel::<ProgressUpdate>();
    let sink = Arc::new(move |update: &ProgressUpdate| {
        // The receiver only goes away once the call is over.
        let _ = sender.send(update.clone());
    });
    let show_progress = request.wait.is_some();
    let mut view = ProgressView::new(console.err_is_terminal);
    let call = fan_out(Arc::new(runtime), tenant, request, sink);
    let err = &mut *console.err;
    let drain = async {
        while let Some(update) = updates.recv().await {
            if show_progress {
                view.show(err, &update)?;
            }
        }
        view.finish(err)
    };
    let (outcome, drained) = tokio::join!(call, drain);
    drained?;
    let outcome = outcome?;
    report_denials(&outcome, console)?;
    let outcomes = match outcome.result {
        Ok(outcomes) => outcomes,
        Err(error) => return print_error(&error, console),
    };
    if single && let [one] = outcomes.as_slice() {
        return match &one.outcome {
            Ok(q) => print_action(&q.action, console),
            Err(error) => print_error(error, console),
        };
    }
    print_outcomes(&outcomes, console)
}

async fn status(
    action_id: &str,
    connection: Connection,
    console: &mut Console<'_>,
) -> Result<ExitCode> {
    let Some((runtime, tenant)) = connect(connection, console)? else {
        return Ok(ExitCode::from(INVALID));
    };
    let outcome = runtime.get_action(&tenant, action_id).await?;
    print(outcome, console)
}

async fn cancel(
    action_id: &str,
    comment: &str,
    connection: Connection,
    console: &mut Console<'_>,
) -> Result<ExitCode> {
    let Some((runtime, tenant)) = connect(connection, console)? else {
        return Ok(ExitCode::from(INVALID));
    };
    let outcome = runtime.cancel_action(&tenant, action_id, comment).await?;
    print(outcome, console)
}

/// An application `simulate` registers with its token endpoint.
struct App {
    tenant_id: String,
    client_id: String,
    secret_env: String,
}

async fn simulate(
    port: u16,
    token_env: &str,
    app: Option<App>,
    console: &mut Console<'_>,
) -> Result<ExitCode> {
    let token = std::env::var(token_env)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let accepts = if token.is_some() {
        format!("the bearer token in {token_env}")
    } else {
        "any bearer token".to_owned()
    };
    let secret = match &app {
        Some(app) => Some(
            std::env::var(&app.secret_env)
                .ok()
                .filter(|s| !s.trim().is_empty())
                .with_context(|| {
                    format!("--client-id needs the client secret in {}", app.secret_env)
                })?,
        ),
        None => None,
    };
    let simulator = Simulator::start(port, token.map(Secret::new))
        .await
        .context("starting the simulator")?;
    simulator.file_seen_on(EXAMPLE_SHA1, &EXAMPLE_FLEET);
    if let (Some(app), Some(secret)) = (&app, secret) {
        simulator.register_client(&app.tenant_id, &app.client_id, ClientProof::Secret(secret));
        writeln!(
            console.err,
            "the token endpoint {}/{}/oauth2/v2.0/token issues tokens to the application {} \
             (its secret is in {})",
            simulator.base_url(),
            crate::escape::escape(&app.tenant_id),
            crate::escape::escape(&app.client_id),
            app.secret_env
        )?;
    }
    writeln!(
        console.err,
        "simulating the Defender for Endpoint API on {} (accepting {accepts}); Ctrl-C stops",
        simulator.base_url()
    )?;
    writeln!(
        console.err,
        "the file {EXAMPLE_SHA1} has been seen on {}",
        EXAMPLE_FLEET.join(", ")
    )?;
    writeln!(console.out, "{}", simulator.base_url())?;
    console.out.flush()?;
    let mut exchanges = simulator.watch();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            stopped = &mut stop => {
                stopped.context("waiting for Ctrl-C")?;
                return Ok(ExitCode::SUCCESS);
            }
            Some(exchange) = exchanges.recv() => {
                writeln!(console.out, "{}", serde_json::to_string(&exchange)?)?;
                console.out.flush()?;
            }
        }
    }
}

async fn demo(cache_dir: Option<PathBuf>, console: &mut Console<'_>) -> Result<ExitCode> {
    let token = Secret::new("demo-token");
    let simulator = Simulator::start(0, Some(token.clone()))
        .await
        .context("starting the simulator")?;
    let origin = ApiOrigin::parse(&simulator.base_url())?;
    let runtime = load(None, cache_dir)?;
    let tenant = tenant(origin, Arc::new(StaticToken::new(token)));
    writeln!(
        console.err,
        "demo: the API page's example, against the simulator on {}",
        simulator.base_url()
    )?;
    let outcome = runtime
        .stop_and_quarantine(&tenant, EXAMPLE_FLEET[0], EXAMPLE_SHA1, EXAMPLE_COMMENT)
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

/// The runtime for the embedded component or the one at `component`, with precompiled code
/// kept in `cache_dir` (or the user's cache directory).
fn load(component: Option<&Path>, cache_dir: Option<PathBuf>) -> Result<Runtime> {
    let bytes = match component {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("reading the component {}", path.display()))?,
        None => COMPONENT.to_vec(),
    };
    let mut builder = Runtime::builder().limits(Limits::default());
    if let Some(dir) = cache_dir.or_else(crate::cache::default_dir) {
        builder = builder.cache_dir(dir);
    }
    Ok(builder.build(&bytes)?)
}

fn tenant(origin: ApiOrigin, tokens: Arc<dyn TokenSource>) -> Tenant {
    Tenant::new(origin, tokens)
}
