//! `host-harness stop-and-quarantine`: the request from the options, the library's fan-out,
//! progress on stderr while waiting, and the outcomes on stdout.

use crate::args::QuarantineArgs;
use crate::output::json::error_line;
use crate::output::progress::ProgressView;
use crate::output::{
    diagnostic, print_action, print_error, print_host_notes, print_outcome_errors, print_outcomes,
};
use crate::{Console, INVALID};
use anyhow::{Context, Result};
use defender_host::{File, ProgressUpdate, QuarantineRequest, Targets, Wait};
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Progress updates held for stderr at most.
const PROGRESS_BACKLOG: usize = 1024;

/// Carries the request out and prints what became of each device.
pub async fn run(args: QuarantineArgs, console: &mut Console<'_>) -> Result<ExitCode> {
    let single = args.machine_ids.len() == 1;
    let request = match request(&args) {
        Ok(request) => request,
        Err(error) => {
            diagnostic(console, &format!("invalid input: {error:#}"))?;
            return Ok(ExitCode::from(INVALID));
        }
    };
    let Some((runtime, tenant)) = args.connection.open(console)? else {
        return Ok(ExitCode::from(INVALID));
    };
    let (sender, mut updates) = mpsc::channel::<ProgressUpdate>(PROGRESS_BACKLOG);
    let sink = Arc::new(move |update: &ProgressUpdate| {
        // Full (stderr is slower than the updates) or closed (the call is over): the update is
        // dropped; the final outcome is printed anyway.
        let _ = sender.try_send(update.clone());
    });
    let show_progress = request.wait.is_some();
    let mut view = ProgressView::new(console.err_is_terminal);
    let call = runtime.quarantine(&tenant, request, Some(sink));
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
    print_host_notes(&outcome, console)?;
    // The actions exist, but what became of them is not known: not a success.
    let wait_stopped = outcome.wait_stopped.is_some();
    let fan_out = match outcome.result {
        Ok(fan_out) => fan_out,
        Err(error) => return print_error(&error, console),
    };
    if single && let [one] = fan_out.outcomes.as_slice() {
        return match &one.outcome {
            Ok(q) => {
                let code = print_action(&q.action, console)?;
                let failed = print_outcome_errors(one, console)? || wait_stopped;
                Ok(if failed { ExitCode::FAILURE } else { code })
            }
            Err(error) => print_error(error, console),
        };
    }
    let code = print_outcomes(&fan_out.outcomes, console)?;
    match &fan_out.unlisted {
        Some(error) => {
            let line = format!(
                "device listing stopped early; the devices above were listed before it did: {}",
                error_line(error)
            );
            diagnostic(console, &line)?;
            Ok(ExitCode::FAILURE)
        }
        None if wait_stopped => Ok(ExitCode::FAILURE),
        None => Ok(code),
    }
}

/// The request the options describe.
fn request(args: &QuarantineArgs) -> Result<QuarantineRequest> {
    let targets = match (&args.machines_file, args.everywhere) {
        (_, true) => Targets::Everywhere,
        (Some(path), false) => Targets::Machines(read_machines(path)?),
        (None, false) => Targets::Machines(args.machine_ids.clone()),
    };
    let file = match (&args.sha1, &args.file) {
        (Some(sha1), _) => File::Sha1(sha1.clone()),
        (None, Some(path)) => {
            File::Sha1(sha1_of(path).with_context(|| format!("hashing --file {}", path.display()))?)
        }
        (None, None) => anyhow::bail!("give --sha1 or --file"),
    };
    Ok(QuarantineRequest {
        targets,
        file,
        comment: args.comment.clone(),
        wait: args.wait.then_some(Wait {
            timeout_ms: args.timeout.saturating_mul(1000),
            cancel_on_timeout: args.cancel_on_timeout,
        }),
        max_machines: args.max_machines,
    })
}

/// The SHA-1 of a regular file, hashed here as it is read (a file of any size, never held in
/// memory whole; a pipe or a device that never ends is refused).
fn sha1_of(path: &Path) -> Result<String> {
    let mut file = open_input(path)?;
    if !file.metadata()?.is_file() {
        anyhow::bail!("not a regular file");
    }
    let mut hasher = sha1_smol::Sha1::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match file.read(&mut chunk)? {
            0 => break,
            n => hasher.update(chunk.get(..n).unwrap_or_default()),
        }
    }
    Ok(hasher.digest().to_string())
}

/// Opens an input file without blocking, so a named pipe with no writer is refused as not a
/// regular file instead of hanging the command.
fn open_input(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    options.open(path)
}

/// The largest `--machines-file` read: a thousand IDs take 41 KB.
const MAX_MACHINES_FILE_BYTES: u64 = 1024 * 1024;

/// One device ID a line; blank lines and `#` comments skipped.
fn read_machines(path: &Path) -> Result<Vec<String>> {
    let failed = || format!("reading --machines-file {}", path.display());
    let file = open_input(path).with_context(failed)?;
    if !file.metadata().with_context(failed)?.is_file() {
        anyhow::bail!("{}: not a regular file", failed());
    }
    let mut text = String::new();
    file.take(MAX_MACHINES_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(failed)?;
    if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_MACHINES_FILE_BYTES {
        anyhow::bail!("{}: more than {MAX_MACHINES_FILE_BYTES} bytes", failed());
    }
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect())
}
