//! `host-harness simulate`: the simulator on 127.0.0.1 until interrupted, with the API page's
//! file seen on a small fleet, printing one JSON line per request it answers.

use crate::Console;
use crate::args::SimulateArgs;
use anyhow::{Context, Result};
use defender_host::escape::escape;
use defender_simulator::example::{FLEET, SHA1};
use defender_simulator::{ClientProof, Progression, RateLimit, Simulator};
use std::process::ExitCode;
use std::time::Duration;

/// The longest `--settle-secs` honoured: a day.
const MAX_SETTLE_SECS: u64 = 86_400;

/// Serves until Ctrl-C.
pub async fn run(args: SimulateArgs, console: &mut Console<'_>) -> Result<ExitCode> {
    let token = std::env::var(&args.token_env)
        .ok()
        .filter(|t| !t.trim().is_empty());
    let accepts = match &token {
        Some(_) => format!("the bearer token in {}", args.token_env),
        None => "any bearer token".to_owned(),
    };
    let app = match args.tenant_id.zip(args.client_id) {
        Some((tenant_id, client_id)) => {
            let secret = std::env::var(&args.client_secret_env)
                .ok()
                .filter(|s| !s.trim().is_empty())
                .with_context(|| {
                    format!(
                        "--client-id needs the client secret in {}",
                        args.client_secret_env
                    )
                })?;
            Some((tenant_id, client_id, secret))
        }
        None => None,
    };
    let simulator = Simulator::start(args.port, token.as_deref())
        .await
        .context("starting the simulator")?;
    simulator.file_seen_on(SHA1, &FLEET);
    match args.per_minute {
        Some(0) => simulator.set_rate_limit(None),
        Some(per_minute) => simulator.set_rate_limit(Some(RateLimit {
            per_minute,
            per_hour: RateLimit::default().per_hour.max(per_minute),
        })),
        None => {}
    }
    if let Some(secs) = args.settle_secs {
        simulator.set_progression(Progression::Settle {
            after: Duration::from_secs(secs.min(MAX_SETTLE_SECS)),
            final_status: "Succeeded".into(),
        });
    }
    if let Some(size) = args.page_size {
        simulator.set_page_size(size);
    }
    if let Some((tenant_id, client_id, secret)) = app {
        simulator.register_client(&tenant_id, &client_id, ClientProof::Secret(secret));
        writeln!(
            console.err,
            "the token endpoint {}/{}/oauth2/v2.0/token issues tokens to the application {} \
             (its secret is in {})",
            simulator.base_url(),
            escape(&tenant_id),
            escape(&client_id),
            args.client_secret_env
        )?;
    }
    writeln!(
        console.err,
        "simulating the Defender for Endpoint API on {} (accepting {accepts}); Ctrl-C stops",
        simulator.base_url()
    )?;
    writeln!(
        console.err,
        "the file {SHA1} has been seen on {}",
        FLEET.join(", ")
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
