//! `host-harness status` and `host-harness cancel`: one action, by its ID.

use crate::connect::Connection;
use crate::output::print;
use crate::{Console, INVALID};
use anyhow::Result;
use std::process::ExitCode;

/// Shows an action.
pub async fn status(
    action_id: &str,
    connection: Connection,
    console: &mut Console<'_>,
) -> Result<ExitCode> {
    let Some((runtime, tenant)) = connection.open(console)? else {
        return Ok(ExitCode::from(INVALID));
    };
    let outcome = runtime.get_action(&tenant, action_id).await?;
    print(outcome, console)
}

/// Cancels an action that is not final yet.
pub async fn cancel(
    action_id: &str,
    comment: &str,
    connection: Connection,
    console: &mut Console<'_>,
) -> Result<ExitCode> {
    let Some((runtime, tenant)) = connection.open(console)? else {
        return Ok(ExitCode::from(INVALID));
    };
    let outcome = runtime.cancel_action(&tenant, action_id, comment).await?;
    print(outcome, console)
}
