//! `host-harness serve` and `host-harness openapi`.

use crate::Console;
use crate::args::ServeArgs;
use crate::connect::load;
use crate::serve::config::ServeConfig;
use crate::serve::{Service, openapi, telemetry};
use anyhow::{Context, Result};
use defender_host::Tenant;
use defender_host::credentials::{Secret, StaticToken};
use defender_host::outbound::ApiOrigin;
use defender_host::tenants::TenantsFile;
use defender_simulator::Simulator;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// The token the in-process simulator accepts when no tenants file is given.
const SIMULATOR_TOKEN: &str = "serve-simulator-token";

/// Loads the config, tenants and component, listens, and serves until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs, console: &mut Console<'_>) -> Result<ExitCode> {
    telemetry::init_logs(args.log_format);
    let mut config = match &args.config {
        Some(path) => ServeConfig::load(path)?,
        None => ServeConfig::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.anonymous_loopback |= args.anonymous_loopback;
    // Kept alive as long as the service, when there is no tenants file.
    let mut simulator = None;
    let tenants: Vec<(String, Tenant)> = match &config.tenants_file {
        Some(path) => {
            let file = TenantsFile::load(path)
                .map_err(|e| anyhow::anyhow!("invalid tenants file: {e}"))?;
            file.iter()
                .map(|(name, tenant)| (name.to_owned(), tenant.clone()))
                .collect()
        }
        None => {
            let started = Simulator::start(0, Some(SIMULATOR_TOKEN))
                .await
                .context("starting the simulator")?;
            let tenant = Tenant::new(
                ApiOrigin::parse(&started.base_url())?,
                Arc::new(StaticToken::new(Secret::new(SIMULATOR_TOKEN))),
            )
            .with_name("simulator");
            simulator = Some(started);
            vec![("simulator".to_owned(), tenant)]
        }
    };
    let runtime = load(None, args.cache_dir, console)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    writeln!(console.out, "{scheme}://{}", listener.local_addr()?)?;
    console.out.flush()?;
    let service = Service::new(config, runtime, tenants)?;
    service.run(listener, stop_signal()).await?;
    drop(simulator);
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Writes `openapi.json` (3.1) and `swagger-2.0.json` into `dir`.
pub fn write_openapi(dir: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("openapi.json"), openapi::openapi_json())?;
    std::fs::write(dir.join("swagger-2.0.json"), openapi::swagger2_json())?;
    Ok(ExitCode::SUCCESS)
}
