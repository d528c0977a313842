//! Precompiled component code on disk, so a new process starts in milliseconds instead of
//! compiling for hundreds.
//!
//! An entry is named by the SHA-256 of the component and a hash of the engine's configuration,
//! written atomically (a temporary file renamed into place), and carries the SHA-256 of its own
//! payload: an entry that is corrupt, truncated or from another engine is recompiled and
//! replaced, never trusted. The directory must be writable only by the host's user, as with any
//! code cache.

use crate::hex::hex;
use ring::digest::{SHA256, digest};
use std::hash::{Hash, Hasher};
use std::path::Path;
use wasmtime::Engine;
use wasmtime::component::Component;

const DIGEST_LEN: usize = 32;

/// How a component was made ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Loaded from a valid cache entry.
    Cache,
    /// Compiled (and stored, if the cache could be written).
    Compiled,
}

/// Loads `bytes` as a component for `engine` through the cache in `dir`.
pub(crate) fn load(
    engine: &Engine,
    bytes: &[u8],
    dir: &Path,
) -> wasmtime::Result<(Component, Source)> {
    let path = dir.join(entry_name(engine, bytes));
    if let Some(component) = read(engine, &path) {
        return Ok((component, Source::Cache));
    }
    let compiled = engine.precompile_component(bytes)?;
    // A cache that cannot be written only costs the next start its compile time.
    let _ = write(&path, &compiled);
    // SAFETY: these bytes were produced by this engine just now.
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    Ok((component, Source::Compiled))
}

fn entry_name(engine: &Engine, bytes: &[u8]) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    format!(
        "{}-{:016x}.cwasm",
        hex(digest(&SHA256, bytes).as_ref()),
        hasher.finish()
    )
}

/// The entry, if it is intact and this engine accepts it.
fn read(engine: &Engine, path: &Path) -> Option<Component> {
    let entry = std::fs::read(path).ok()?;
    if entry.len() < DIGEST_LEN {
        return None;
    }
    let (expected, payload) = entry.split_at(DIGEST_LEN);
    if digest(&SHA256, payload).as_ref() != expected {
        return None;
    }
    // SAFETY: the payload is exactly what `write` stored after this host's engine produced it
    // (its digest matches), and wasmtime itself refuses code from an incompatible engine.
    unsafe { Component::deserialize(engine, payload).ok() }
}

/// Writes the entry next to its final name, then renames it into place.
fn write(path: &Path, payload: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
    let temporary = dir.join(format!(".{}.tmp", hex(&nonce)));
    let mut entry = digest(&SHA256, payload).as_ref().to_vec();
    entry.extend_from_slice(payload);
    std::fs::write(&temporary, &entry)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}
