//! Reading a file that holds a credential (a secret, a private key, a federated token): bounded
//! in size, refused when another user could have written it, wiped from memory when dropped.

use super::{CredentialError, Secret};
use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// The largest credential file read: a PEM bundle with a 4096-bit key is a few kilobytes.
const MAX_CREDENTIAL_FILE_BYTES: u64 = 64 * 1024;

/// The file's bytes, after checking that no other user can write it.
pub fn read_private(path: &Path) -> Result<Zeroizing<Vec<u8>>, CredentialError> {
    let failed = |why: String| CredentialError(format!("reading {}: {why}", path.display()));
    let mut file = std::fs::File::open(path).map_err(|e| failed(e.to_string()))?;
    let metadata = file.metadata().map_err(|e| failed(e.to_string()))?;
    if !metadata.is_file() {
        return Err(failed("not a regular file".into()));
    }
    writable_by_others(&metadata).map_err(failed)?;
    if metadata.len() > MAX_CREDENTIAL_FILE_BYTES {
        return Err(failed(format!(
            "it has {} bytes, more than the {MAX_CREDENTIAL_FILE_BYTES} a credential file may have",
            metadata.len()
        )));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.by_ref()
        .take(MAX_CREDENTIAL_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| failed(e.to_string()))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_CREDENTIAL_FILE_BYTES {
        return Err(failed("it grew while being read".into()));
    }
    Ok(bytes)
}

/// The file's text, for a secret or a token.
pub fn read_secret_text(path: &Path) -> Result<Secret, CredentialError> {
    let bytes = read_private(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CredentialError(format!("reading {}: not UTF-8 text", path.display())))?;
    Ok(Secret::new(text))
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

    fn file_with(name: &str, text: &str, mode: u32) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("credential-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_private_file_is_read() {
        let path = file_with("private", "s3cret\n", 0o600);
        assert_eq!(read_secret_text(&path).unwrap().expose(), "s3cret\n");
        let readable = file_with("readable", "s3cret", 0o644);
        assert!(read_private(&readable).is_ok());
    }

    #[test]
    fn a_file_others_can_write_is_refused_without_showing_it() {
        for (name, mode) in [("world", 0o666), ("group", 0o620)] {
            let path = file_with(name, "s3cret", mode);
            let error = read_private(&path).expect_err("writable by others");
            assert!(error.0.contains("other users can write it"), "{error}");
            assert!(error.0.contains(&path.display().to_string()), "{error}");
            assert!(!error.0.contains("s3cret"));
        }
    }

    #[test]
    fn a_missing_or_huge_file_is_refused() {
        let missing = std::env::temp_dir().join("credential-that-does-not-exist");
        assert!(read_private(&missing).is_err());
        let huge = file_with("huge", &"x".repeat(70 * 1024), 0o600);
        let error = read_private(&huge).expect_err("too big");
        assert!(error.0.contains("more than"), "{error}");
    }
}
