//! Reading a file named in the configuration (a tenants file, a CA bundle, a secret, a key, a
//! federated token): a regular file only (never a pipe or a device that never ends), bounded in
//! size, refused when another user could have written it (whoever can write it decides what the
//! host trusts or sends), and wiped from memory when dropped.

use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// Opens `path` for reading without blocking: opening a named pipe with no writer would wait
/// for ever, before the regular-file check could refuse it.
pub fn open_without_waiting(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    options.open(path)
}

/// The file's bytes, at most `max_bytes` of them. The error names the file and says why; it
/// never holds the file's content.
pub fn read(path: &Path, max_bytes: u64) -> Result<Zeroizing<Vec<u8>>, String> {
    let shown = crate::escape::escape(&path.display().to_string());
    let failed = |why: String| format!("reading {shown}: {why}");
    let mut file = open_without_waiting(path).map_err(|e| failed(e.to_string()))?;
    let metadata = file.metadata().map_err(|e| failed(e.to_string()))?;
    if !metadata.is_file() {
        return Err(failed("not a regular file".into()));
    }
    writable_by_others(&metadata).map_err(failed)?;
    if metadata.len() > max_bytes {
        return Err(failed(format!(
            "it has {} bytes, more than the {max_bytes} it may have",
            metadata.len()
        )));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.by_ref()
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.to_string()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max_bytes {
        return Err(failed("it grew while being read".into()));
    }
    Ok(bytes)
}

#[cfg(unix)]
fn writable_by_others(metadata: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "other users can write it (mode {:o}); make it writable by its owner only \
             (chmod go-w)",
            mode & 0o777
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn writable_by_others(_metadata: &std::fs::Metadata) -> Result<(), String> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const MAX: u64 = 64 * 1024;

    fn file_with(name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("config-file-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_or_readable_file_is_read() {
        let path = file_with("private", "s3cret\n", 0o600);
        assert_eq!(read(&path, MAX).unwrap().as_slice(), b"s3cret\n");
        let readable = file_with("readable", "s3cret", 0o644);
        assert!(read(&readable, MAX).is_ok());
    }

    #[test]
    fn a_file_others_can_write_is_refused_without_showing_it() {
        for (name, mode) in [("world", 0o666), ("group", 0o620)] {
            let path = file_with(name, "s3cret", mode);
            let error = read(&path, MAX).expect_err("writable by others");
            assert!(error.contains("other users can write it"), "{error}");
            assert!(error.contains(&path.display().to_string()), "{error}");
            assert!(!error.contains("s3cret"));
        }
    }

    #[test]
    fn a_missing_huge_or_endless_file_is_refused() {
        let missing = std::env::temp_dir().join("config-file-that-does-not-exist");
        assert!(read(&missing, MAX).is_err());
        let huge = file_with("huge", &"x".repeat(70 * 1024), 0o600);
        assert!(read(&huge, MAX).expect_err("too big").contains("more than"));
        let endless = read(Path::new("/dev/zero"), MAX).expect_err("a device");
        assert!(endless.contains("not a regular file"), "{endless}");
    }
}
