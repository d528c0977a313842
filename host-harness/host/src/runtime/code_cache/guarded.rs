//! The file-system rules for anything that decides what code runs: a directory, and the
//! directories above it up to the user's home or the root, owned by this user (or the system)
//! and writable by no one else; files opened without following links, owned by this user,
//! writable by no one else, and created readable by this user alone.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Why a path cannot be trusted.
pub type Refusal = String;

/// Makes `dir` (mode 0700) if it is missing, and checks it and its parents (a relative `dir`
/// from the current directory's, so those are checked too).
pub fn directory(dir: &Path) -> Result<(), Refusal> {
    let absolute = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let dir = absolute.as_path();
    if !dir.exists() {
        create_private_dir(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut current = Some(dir);
    let mut first = true;
    while let Some(path) = current {
        check_directory(path, first)?;
        if home.as_deref() == Some(path) {
            break;
        }
        first = false;
        current = path.parent().filter(|p| !p.as_os_str().is_empty());
    }
    Ok(())
}

/// The whole of a file that passes the rules, at most `max` bytes; `Ok(None)` when it does
/// not exist.
pub fn read(path: &Path, max: u64) -> Result<Option<Vec<u8>>, Refusal> {
    let file = match open_no_follow(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("opening {}: {e}", path.display())),
    };
    check_file(&file, path)?;
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max {
        return Err(format!("{} is larger than {max} bytes", path.display()));
    }
    Ok(Some(bytes))
}

/// Writes a new file (mode 0600) that must not exist yet, not following links.
pub fn create(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    restrict(&mut options);
    options.open(path)?.write_all(contents)
}

#[cfg(unix)]
fn restrict(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
}

#[cfg(not(unix))]
fn restrict(_options: &mut OpenOptions) {}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// This user's ID.
#[cfg(unix)]
fn me() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The cache directory itself must be this user's and writable by no one else; a directory
/// above it may also be the system's, and may be writable by others only if its sticky bit
/// keeps them from renaming what is not theirs (as `/tmp`'s does).
#[cfg(unix)]
fn check_directory(path: &Path, is_the_cache: bool) -> Result<(), Refusal> {
    use std::os::unix::fs::MetadataExt;
    let mut metadata =
        std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if is_the_cache && !metadata.is_dir() {
        return Err(format!("{} is not a directory", path.display()));
    }
    if metadata.is_symlink() {
        // Above the cache, a link's own mode means nothing (who may change it is decided by
        // the directory holding it, checked next): judge the directory it leads to.
        metadata = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let owner = metadata.uid();
    let mode = metadata.mode();
    if is_the_cache && owner != me() {
        return Err(format!(
            "{} belongs to user {owner}, not to this user ({})",
            path.display(),
            me()
        ));
    }
    if !is_the_cache && owner != me() && owner != 0 {
        return Err(format!(
            "{} (above the cache) belongs to user {owner}",
            path.display()
        ));
    }
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && (is_the_cache || !sticky) {
        return Err(format!(
            "other users can write {} (mode {:o})",
            path.display(),
            mode & 0o7777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_directory(_path: &Path, _is_the_cache: bool) -> Result<(), Refusal> {
    Ok(())
}

#[cfg(unix)]
fn check_file(file: &File, path: &Path) -> Result<(), Refusal> {
    use std::os::unix::fs::MetadataExt;
    let metadata = file
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if metadata.uid() != me() {
        return Err(format!(
            "{} belongs to user {}, not to this user",
            path.display(),
            metadata.uid()
        ));
    }
    if metadata.mode() & 0o022 != 0 {
        return Err(format!(
            "other users can write {} (mode {:o})",
            path.display(),
            metadata.mode() & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_file(_file: &File, _path: &Path) -> Result<(), Refusal> {
    Ok(())
}

/// Whether others can read `file` (for a key, which must stay this user's).
#[cfg(unix)]
pub fn readable_by_others(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.mode() & 0o044 != 0)
}

#[cfg(not(unix))]
pub fn readable_by_others(_path: &Path) -> bool {
    false
}
