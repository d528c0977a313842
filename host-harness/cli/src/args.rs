//! The command line's schema: every command and option, as clap reads them.

use crate::connect::Connection;
use clap::{ArgGroup, Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    version,
    about = "Run the Defender for Endpoint stop-and-quarantine component"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Stop a file's processes on devices and quarantine it.
    StopAndQuarantine(QuarantineArgs),
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
    Simulate(SimulateArgs),
    /// Measure the component path against a native client, on an in-process simulator or
    /// on a server at --api-url (e.g. `host-harness simulate` in another process).
    Bench(BenchArgs),
    /// Write the embedded component (the release `.wasm`) to a file, for other hosts.
    Component {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
    },
    /// Serve the host as an HTTP service (see the README's "Serve it"); without --config, one
    /// tenant, `simulator`, on an in-process simulator.
    Serve(ServeArgs),
    /// Write the service's OpenAPI 3.1 document and its Swagger 2.0 form into a directory.
    Openapi {
        /// The directory (the repository keeps them in `openapi/`).
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Run the API page's example against an in-process simulator.
    Demo {
        /// Where precompiled code is kept (default: the user's cache directory).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

#[derive(Args)]
#[command(group(ArgGroup::new("targets").required(true).args(["machine_ids", "machines_file", "everywhere"])))]
#[command(group(ArgGroup::new("hash").required(true).args(["sha1", "file"])))]
pub struct QuarantineArgs {
    /// A device's ID (40 hex characters); repeat for several devices.
    #[arg(long = "machine-id")]
    pub machine_ids: Vec<String>,
    /// A file of device IDs, one per line (blank lines and `#` comments are skipped).
    #[arg(long, conflicts_with = "machine_ids")]
    pub machines_file: Option<PathBuf>,
    /// Every device on which the API has seen the file.
    #[arg(long, conflicts_with_all = ["machine_ids", "machines_file"])]
    pub everywhere: bool,
    /// The file's SHA-1 (40 hex characters).
    #[arg(long)]
    pub sha1: Option<String>,
    /// The file itself: its SHA-1 is computed by the component.
    #[arg(long, conflicts_with = "sha1")]
    pub file: Option<PathBuf>,
    /// The comment attached to the actions.
    #[arg(long)]
    pub comment: String,
    /// Wait for the actions to reach a final status, showing progress on stderr.
    #[arg(long)]
    pub wait: bool,
    /// How long to wait, in seconds.
    #[arg(long, requires = "wait", default_value_t = 300)]
    pub timeout: u64,
    /// Cancel the actions still not final when the wait times out.
    #[arg(long, requires = "wait")]
    pub cancel_on_timeout: bool,
    /// The most devices to act on (default 1000, the Defender portal's limit; the API's is
    /// its page size, 10,000, the most accepted here).
    #[arg(long)]
    pub max_machines: Option<u32>,
    #[command(flatten)]
    pub connection: Connection,
}

#[derive(Args)]
pub struct SimulateArgs {
    /// The port (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Accept only the token in this environment variable, if it is set.
    #[arg(long, default_value = "MDE_TOKEN")]
    pub token_env: String,
    /// Register an application in this directory (tenant) ID with the token endpoint.
    #[arg(long, requires = "client_id")]
    pub tenant_id: Option<String>,
    /// The application's client ID; its secret is in --client-secret-env.
    #[arg(long, requires = "tenant_id")]
    pub client_id: Option<String>,
    /// The environment variable holding the registered application's client secret.
    #[arg(long, default_value = "MDE_CLIENT_SECRET", requires = "client_id")]
    pub client_secret_env: String,
    /// Calls a minute each API allows (default: the API's 100); 0 lifts the limit.
    #[arg(long)]
    pub per_minute: Option<u32>,
    /// Settle each action as succeeded this many seconds after its creation, instead of over
    /// two polls.
    #[arg(long)]
    pub settle_secs: Option<u64>,
    /// The most items a listing page holds (default 10,000, the API's largest page).
    #[arg(long)]
    pub page_size: Option<usize>,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Another measurement than the component path against a native client.
    #[command(subcommand)]
    pub scenario: Option<BenchScenario>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Calls per measurement.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Concurrent callers for the throughput measurement.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// A server answering like the API (never a real tenant: every call creates an action
    /// for a made-up device); without it, a simulator in this process.
    #[arg(long)]
    pub api_url: Option<String>,
    /// The environment variable holding the bearer token the --api-url server accepts.
    #[arg(long, default_value = "MDE_TOKEN", requires = "api_url")]
    pub token_env: String,
    /// For measurement only: ready the runtime from this cache directory, print how long it
    /// took in microseconds, and exit (what `bench` runs in new processes for cold starts).
    #[arg(long, value_name = "CACHE_DIR", conflicts_with_all = ["json", "api_url"])]
    pub ready: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum BenchScenario {
    /// Contain an outbreak at the API's own limit: `stop-and-quarantine --everywhere --wait`,
    /// run by this binary in another process, against an in-process simulator that enforces
    /// --per-minute calls a minute on each API and settles each action --settle seconds after
    /// its creation. Reports wall time, calls per API, 429s, and the ratio to the lower bound
    /// ceil(N/P - 1) minutes + S + one poll interval.
    Outbreak(OutbreakArgs),
    /// What `serve` costs: a one-device quarantine through it against the same call made
    /// directly (the medians' difference), and the memory of a `serve` process holding --jobs
    /// jobs at once.
    Serve(ServeBenchArgs),
    /// Three `serve` processes sharing one tenant's budget through a Redis this command starts,
    /// driven at three times the budget against an in-process simulator that answers 429 past
    /// it; optionally with Redis killed for a while mid-run.
    Fleet(FleetArgs),
}

#[derive(Args)]
pub struct ServeBenchArgs {
    /// Sequential calls of each kind for the overhead.
    #[arg(long, default_value_t = 1000)]
    pub requests: usize,
    /// Jobs held at once for the memory measurement.
    #[arg(long, default_value_t = 1000)]
    pub jobs: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct FleetArgs {
    /// `serve` processes.
    #[arg(long, default_value_t = 3)]
    pub processes: u32,
    /// How long the load lasts, in seconds.
    #[arg(long, default_value_t = 180)]
    pub secs: u64,
    /// Creations a minute the API allows (the budget).
    #[arg(long, default_value_t = 100)]
    pub per_minute: u32,
    /// How many times the budget the load asks for.
    #[arg(long, default_value_t = 3)]
    pub load: u32,
    /// Kill Redis this many seconds into the run.
    #[arg(long)]
    pub kill_redis_at: Option<u64>,
    /// How long Redis stays down.
    #[arg(long, default_value_t = 30)]
    pub redis_down_secs: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct OutbreakArgs {
    /// Devices on which the file was seen (N).
    #[arg(long, default_value_t = 40)]
    pub devices: u32,
    /// Calls a minute the simulator allows on each API, and the host's budget (P).
    #[arg(long, default_value_t = 20)]
    pub per_minute: u32,
    /// Seconds after its creation an action settles as succeeded (S).
    #[arg(long, default_value_t = 10)]
    pub settle: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ServeArgs {
    /// The serve config (TOML): listen address, tenants file, API keys, jobs, audit.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen here instead of the config's address (port 0 picks a free one; the address is
    /// printed on stdout).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Serve callers without an API key; refused unless listening on a loopback address.
    #[arg(long)]
    pub anonymous_loopback: bool,
    /// The log format on stderr (filtered by RUST_LOG, default info).
    #[arg(long, value_enum, default_value = "json")]
    pub log_format: crate::serve::telemetry::LogFormat,
    /// Where precompiled code is kept (default: the user's cache directory).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}
