//! What the command line prints, and the exit code that goes with it. Every line on stderr
//! goes through [`diagnostic`]: text from outside (the API's error fields, Entra's
//! descriptions, device IDs a listing returned, paths) cannot move the terminal's cursor, set
//! its title or forge a line.

pub mod json;
pub mod progress;

use crate::{Console, INVALID};
use anyhow::Result;
use defender_host::escape::escape;
use defender_host::{ActionError, MachineAction, MachineOutcome, Outcome};
use std::process::ExitCode;

/// Writes one line of diagnostics on stderr, its control characters escaped.
pub fn diagnostic(console: &mut Console<'_>, text: &str) -> std::io::Result<()> {
    writeln!(console.err, "{}", escape(text))
}

/// What the host saw that the component could not say: requests it refused, and why requests
/// it let through got no answer.
pub fn print_host_notes<T>(outcome: &Outcome<T>, console: &mut Console<'_>) -> Result<()> {
    for denial in &outcome.denials {
        diagnostic(console, &format!("host: refused a request: {denial}"))?;
    }
    for failure in &outcome.connection_errors {
        diagnostic(console, &format!("host: no answer: {failure}"))?;
    }
    if let Some(why) = &outcome.wait_stopped {
        diagnostic(
            console,
            &format!("host: stopped waiting, the last status seen is shown: {why}"),
        )?;
    }
    Ok(())
}

/// Prints one action on stdout, or the error on stderr, and picks the exit code.
pub fn print(outcome: Outcome<MachineAction>, console: &mut Console<'_>) -> Result<ExitCode> {
    print_host_notes(&outcome, console)?;
    match &outcome.result {
        Ok(action) => print_action(action, console),
        Err(error) => print_error(error, console),
    }
}

/// Prints one action as the API sent it on stdout; exit 0.
pub fn print_action(action: &MachineAction, console: &mut Console<'_>) -> Result<ExitCode> {
    writeln!(console.out, "{}", json::action_raw(action)?.get())?;
    Ok(ExitCode::SUCCESS)
}

/// Prints an error as one line on stderr; exit 2 for invalid input (nothing was sent), else 1.
pub fn print_error(error: &ActionError, console: &mut Console<'_>) -> Result<ExitCode> {
    diagnostic(console, &format!("error: {}", json::error_line(error)))?;
    Ok(match error {
        ActionError::InvalidInput(_) => ExitCode::from(INVALID),
        _ => ExitCode::FAILURE,
    })
}

/// The fan-out's array; exit 1 when any device failed, after reporting every device.
pub fn print_outcomes(outcomes: &[MachineOutcome], console: &mut Console<'_>) -> Result<ExitCode> {
    let entries = json::outcomes_json(outcomes)?;
    let text = serde_json::to_string_pretty(&entries)?;
    writeln!(console.out, "{}", json::safe_json(&text, true))?;
    let failed: Vec<&MachineOutcome> = outcomes.iter().filter(|o| o.outcome.is_err()).collect();
    for outcome in &failed {
        if let Err(error) = &outcome.outcome {
            let line = format!(
                "machine {}: {}",
                outcome.machine_id,
                json::error_line(error)
            );
            diagnostic(console, &line)?;
        }
    }
    Ok(if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
