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

/// The fan-out's array; exit 1 when any device failed, or its action's last poll or its
/// cancellation failed (what became of it is not known), after reporting every device.
pub fn print_outcomes(outcomes: &[MachineOutcome], console: &mut Console<'_>) -> Result<ExitCode> {
    let entries = json::outcomes_json(outcomes)?;
    let text = serde_json::to_string_pretty(&entries)?;
    writeln!(console.out, "{}", json::safe_json(&text, true))?;
    let mut failed = false;
    for outcome in outcomes {
        failed |= print_outcome_errors(outcome, console)?;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes one line on stderr for each error of a device's outcome: why there is no action, or
/// why its last poll or its cancellation failed. Whether there was any.
pub fn print_outcome_errors(outcome: &MachineOutcome, console: &mut Console<'_>) -> Result<bool> {
    let machine = &outcome.machine_id;
    let lines = match &outcome.outcome {
        Err(error) => vec![format!("machine {machine}: {}", json::error_line(error))],
        Ok(q) => [
            (
                &q.poll_error,
                "its last poll failed, the last status seen is shown",
            ),
            (&q.cancel_error, "cancelling it failed, it may still run"),
        ]
        .into_iter()
        .filter_map(|(error, what)| {
            let error = error.as_ref()?;
            let action = &q.action.id;
            Some(format!(
                "machine {machine}: action {action}: {what}: {}",
                json::error_line(error)
            ))
        })
        .collect(),
    };
    for line in &lines {
        diagnostic(console, line)?;
    }
    Ok(!lines.is_empty())
}
