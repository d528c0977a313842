//! `--wait` progress on stderr: a one-line bar redrawn in place on a terminal, plain lines
//! otherwise (logs, CI, pipes).

use super::json::error_line;
use defender_host::ProgressUpdate;
use defender_host::escape::escape;
use std::collections::BTreeMap;
use std::io::{self, Write};

/// Whether each device's action is final, as last seen.
pub struct ProgressView {
    terminal: bool,
    statuses: BTreeMap<String, bool>,
}

const BAR_WIDTH: usize = 30;
/// The most devices the bar counts: the API's limit for one call. Updates naming others (a
/// component gone astray) are not counted, so the view's memory stays bounded.
const MAX_DEVICES: usize = 1000;

impl ProgressView {
    /// A view drawing a bar when `terminal`, lines otherwise.
    pub fn new(terminal: bool) -> Self {
        Self {
            terminal,
            statuses: BTreeMap::new(),
        }
    }

    /// Shows one update.
    pub fn show(&mut self, out: &mut dyn Write, update: &ProgressUpdate) -> io::Result<()> {
        if !self.terminal {
            let mut line = format!(
                "progress: machine {} action {} {}",
                update.machine_id,
                update.action_id,
                update.status.as_api_str()
            );
            if let Some(error) = &update.error {
                line.push_str(&format!(" (this look failed: {})", error_line(error)));
            }
            return writeln!(out, "{}", escape(&line));
        }
        if self.statuses.len() < MAX_DEVICES || self.statuses.contains_key(&update.machine_id) {
            self.statuses
                .insert(update.machine_id.clone(), update.is_final);
        }
        let total = self.statuses.len();
        let done = self.statuses.values().filter(|&&is_final| is_final).count();
        let filled = BAR_WIDTH * done / total.max(1);
        write!(
            out,
            "\r[{}{}] {done}/{total} final",
            "#".repeat(filled),
            ".".repeat(BAR_WIDTH - filled)
        )?;
        out.flush()
    }

    /// Ends the bar's line, if one was drawn.
    pub fn finish(&self, out: &mut dyn Write) -> io::Result<()> {
        if self.terminal && !self.statuses.is_empty() {
            writeln!(out)?;
        }
        Ok(())
    }
}
