//! `host-harness component --out FILE`: the embedded release component, for other hosts.

use anyhow::{Context, Result};
use defender_host::COMPONENT;
use std::path::Path;
use std::process::ExitCode;

/// Writes the component to `out`.
pub fn run(out: &Path) -> Result<ExitCode> {
    std::fs::write(out, COMPONENT).with_context(|| format!("writing {}", out.display()))?;
    Ok(ExitCode::SUCCESS)
}
