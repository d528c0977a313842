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
pub struct Record<'a> {
    /// When the outcome was known, in ms since the Unix epoch.
    pub time_ms: u64,
    /// The job.
    pub job_id: &'a str,
    /// The API key's name.
    pub requested_by: &'a str,
    /// The tenant's name.
    pub tenant: &'a str,
    /// The device.
    pub machine_id: &'a str,
    /// The file's SHA-1.
    pub sha1: &'a str,
    /// The comment sent with the action.
    pub comment: &'a str,
    /// The action's ID, when one exists.
    pub action_id: Option<&'a str>,
    /// The action's last status, or the error's kind.
    pub outcome: &'a str,
    /// The API's correlation ID, when the API answered with an error.
    pub correlation_id: Option<&'a str>,
}

/// Where audit records go.
pub struct AuditLog {
    out: Mutex<Box<dyn Write + Send>>,
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
        Ok(Self {
            out: Mutex::new(out),
        })
    }

    /// Writes `record` as one line; a failure is logged, never fatal to the job.
    pub fn write(&self, record: &Record<'_>) {
        let line = match serde_json::to_string(record) {
            // serde_json escapes every control character: a line stays one line.
            Ok(json) => crate::output::json::safe_json(&json, false) + "\n",
            Err(error) => {
                tracing::error!(%error, "an audit record could not be written as JSON");
                return;
            }
        };
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(error) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
            tracing::error!(%error, "an audit record could not be written");
        }
    }
}
