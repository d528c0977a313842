//! The `host-harness` command line: run the stop-and-quarantine component locally, against the
//! real API or the built-in simulator; serve the simulator; measure. Exit codes: 0 done, 1
//! failed (for a fan-out: any device failed), 2 invalid input (nothing was sent). It lives in a
//! library, writing to given streams, so tests run it in-process.
#![deny(missing_docs)]

mod args;
mod commands;
mod connect;
mod output;
pub mod serve;

use args::{Cli, Command};
use clap::Parser;
use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

/// The exit code for invalid input: nothing was sent.
const INVALID: u8 = 2;

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
        Command::StopAndQuarantine(args) => commands::quarantine::run(args, console).await,
        Command::Status {
            action_id,
            connection,
        } => commands::status::status(&action_id, connection, console).await,
        Command::Cancel {
            action_id,
            comment,
            connection,
        } => commands::status::cancel(&action_id, &comment, connection, console).await,
        Command::Simulate(args) => commands::simulate::run(args, console).await,
        Command::Serve(args) => commands::serve::run(args, console).await,
        Command::Openapi { out_dir } => commands::serve::write_openapi(&out_dir),
        Command::Demo { cache_dir } => commands::demo::run(cache_dir, console).await,
        Command::Bench(args) => commands::bench::run(args, console).await,
        Command::Component { out } => commands::component::run(&out),
    };
    result.unwrap_or_else(|error| {
        let shown = defender_host::escape::escape(&format!("{error:#}"));
        let _ = writeln!(console.err, "error: {shown}");
        ExitCode::FAILURE
    })
}
