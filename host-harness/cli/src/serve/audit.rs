//! The audit trail: one JSON line per action asked for (who asked, for which tenant, device,
//! file and comment, the action's ID and what became of it), to a file or to stdout. Each line
//! is written whole, under a lock, so lines of concurrent jobs never interleave.

use serde::Serialize;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

/// One audit record.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// When the outcome was known, in ms since the Unix epoch.
    pub time_ms: u64,
    /// The job (empty for a cancellation).
    pub job_id: String,
    /// The API key's name.
    pub requested_by: String,
    /// The tenant's name.
    pub tenant: String,
    /// The device.
    pub machine_id: String,
    /// The file's SHA-1 (empty for a cancellation).
    pub sha1: String,
    /// The comment sent with the action.
    pub comment: String,
    /// The action's ID, when one exists.
    pub action_id: Option<String>,
    /// The action's last status, or the error's kind; `cancel: …` for a cancellation.
    pub outcome: String,
    /// The API's correlation ID, when the API answered with an error.
    pub correlation_id: Option<String>,
}

/// Where audit records go: a thread of its own writes them, so a slow disk or a full pipe
/// never holds the service's workers.
pub struct AuditLog {
    lines: Mutex<std::sync::mpsc::Sender<String>>,
}

impl AuditLog {
    /// Records appended to `path` (created owner-only if missing), or written to stdout.
    pub fn open(path: Option<&Path>) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match path {
            Some(path) => {
                let mut options = std::fs::OpenOptions::new();
                options.create(true).append(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                Box::new(options.open(path)?)
            }
            None => Box::new(std::io::stdout()),
        };
        let (lines, written) = std::sync::mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || write_all(out, &written))?;
        Ok(Self {
            lines: Mutex::new(lines),
        })
    }

    /// Writes `records`, a line each, on the writer's thread; a failure is logged, never fatal
    /// to the job.
    pub fn write(&self, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let mut text = String::new();
        for record in &records {
            match serde_json::to_string(record) {
                // serde_json escapes every control character: a line stays one line.
                Ok(json) => text.push_str(&(crate::output::json::safe_json(&json, false) + "\n")),
                Err(error) => {
                    tracing::error!(%error, "an audit record could not be written as JSON")
                }
            }
        }
        let sent = self
            .lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(text);
        if sent.is_err() {
            tracing::error!("the audit writer has stopped: records are lost");
        }
    }
}

/// Writes each batch of lines as it comes, until the log is dropped.
fn write_all(mut out: Box<dyn Write + Send>, lines: &std::sync::mpsc::Receiver<String>) {
    while let Ok(text) = lines.recv() {
        if let Err(error) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            tracing::error!(%error, "audit records could not be written");
        }
    }
}
