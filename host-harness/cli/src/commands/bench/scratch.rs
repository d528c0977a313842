//! Files a benchmark run writes for the processes it starts: in a directory of its own,
//! readable by this user only (they name tokens' variables and hold keys' hashes).

use anyhow::Result;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// A new directory for the run `name`, readable by this user only.
pub fn scratch_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("host-harness-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir)?;
    Ok(dir)
}

/// Writes `text` to a new file at `path`, readable by this user only.
pub fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(text.as_bytes())?;
    Ok(())
}
