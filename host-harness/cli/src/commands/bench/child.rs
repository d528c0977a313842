//! A `host-harness serve` in a process of its own, as an operator runs it: started from this
//! binary with a config, its URL read from its first line on stdout, its logs in a file, its
//! memory read from `/proc`.

use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running `serve` process; killed when dropped.
pub struct ServeProcess {
    child: Child,
    /// Its base URL.
    pub url: String,
}

impl ServeProcess {
    /// Starts `serve --config config` with `env`, its stderr (logs) into `log`, its compiled
    /// code cached in `cache`.
    pub fn start(config: &Path, env: &[(&str, &str)], log: &Path, cache: &Path) -> Result<Self> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args(["serve", "--log-format", "json", "--config"])
            .arg(config)
            .arg("--cache-dir")
            .arg(cache)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().context("starting serve")?;
        let stdout = child.stdout.take().context("serve's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let url = match lines.next() {
            Some(Ok(line)) if line.starts_with("http") => line,
            _ => {
                let _ = child.kill();
                bail!("serve did not print its URL; its log is {}", log.display());
            }
        };
        // The rest of stdout (audit records, if any) is drained so the process never blocks.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Self { child, url })
    }

    /// The process's ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory now and at its peak, in MiB (`VmRSS`, `VmHWM`).
    pub fn memory_mib(&self) -> Result<(f64, f64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let read = |field: &str| -> Result<f64> {
            let kib: f64 = status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("no {field} for process {}", self.pid()))?;
            Ok(kib / 1024.0)
        };
        Ok((read("VmRSS:")?, read("VmHWM:")?))
    }

    /// Sends SIGTERM (a graceful shutdown) and waits for the process to end.
    pub fn terminate(mut self) -> Result<Option<i32>> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .context("running kill -TERM")?;
        if !sent.success() {
            bail!("kill -TERM {} failed", self.child.id());
        }
        Ok(self.child.wait()?.code())
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
