//! `host-harness demo`: the API page's example against an in-process simulator.

use crate::Console;
use crate::connect::load;
use crate::output::print;
use anyhow::{Context, Result};
use defender_host::Tenant;
use defender_host::credentials::{Secret, StaticToken};
use defender_host::outbound::ApiOrigin;
use defender_simulator::Simulator;
use defender_simulator::example::{COMMENT, MACHINE, SHA1};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

const TOKEN: &str = "demo-token";

/// Runs the example and prints the action, and what the simulator received on stderr.
pub async fn run(cache_dir: Option<PathBuf>, console: &mut Console<'_>) -> Result<ExitCode> {
    let simulator = Simulator::start(0, Some(TOKEN))
        .await
        .context("starting the simulator")?;
    let runtime = load(None, cache_dir, console)?;
    let tenant = Tenant::new(
        ApiOrigin::parse(&simulator.base_url())?,
        Arc::new(StaticToken::new(Secret::new(TOKEN))),
    );
    writeln!(
        console.err,
        "demo: the API page's example, against the simulator on {}",
        simulator.base_url()
    )?;
    let outcome = runtime
        .stop_and_quarantine(&tenant, MACHINE, SHA1, COMMENT)
        .await?;
    for request in simulator.requests() {
        let line = format!(
            "demo: the simulator received {} {} {}",
            request.method,
            request.path,
            String::from_utf8_lossy(&request.body)
        );
        crate::output::diagnostic(console, &line)?;
    }
    print(outcome, console)
}
