//! Precompiled component code on disk, so a new process starts in milliseconds instead of
//! compiling for hundreds, without letting whoever can write a directory choose the native code
//! this process runs.
//!
//! An entry is named by the SHA-256 of the component and a hash of the engine's configuration,
//! and carries an HMAC-SHA256 over the component's SHA-256, the engine's compatibility hash and
//! the code, keyed by a secret in a file outside the cache directory (`{dir}.key` unless the
//! builder names another), created readable by this user alone. The directory (and those above
//! it, up to the user's home) must be this user's (or the system's, above it) and writable by
//! no one else; entries are opened without following links, must be this user's and writable by
//! no one else, and are written 0600 and renamed into place. An entry that fails any check, or
//! whose MAC does not match (corrupt, truncated, from another engine, or another component's
//! copied under this one's name), is never loaded: the component is compiled afresh and the
//! runtime says why ([`crate::Runtime::cache_warning`]).

mod guarded;

use crate::hex::hex;
use ring::digest::{SHA256, digest};
use ring::hmac;
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// What the MAC covers first: the format, so no other use of the key can forge an entry.
const MAC_LABEL: &[u8] = b"defender-host code cache v1";
/// The largest entry read: the component's code is a few megabytes.
const MAX_ENTRY_BYTES: u64 = 256 * 1024 * 1024;
/// The key's length.
const KEY_BYTES: usize = 32;

/// How a component was made ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Loaded from an authenticated cache entry.
    Cache,
    /// Compiled (and stored, if the cache could be used).
    Compiled,
}

/// A component made ready through the cache, and why the cache was not used when it was not.
pub(crate) struct Loaded {
    pub component: Component,
    pub source: Source,
    pub warning: Option<String>,
}

/// Where the key of the cache in `dir` is kept unless the builder says otherwise.
pub(crate) fn default_key_file(dir: &Path) -> PathBuf {
    let mut name = OsString::from(dir.as_os_str());
    name.push(".key");
    PathBuf::from(name)
}

/// Loads `bytes` as a component for `engine` through the cache in `dir`, authenticated with
/// the key in `key_file`.
pub(crate) fn load(
    engine: &Engine,
    bytes: &[u8],
    dir: &Path,
    key_file: &Path,
) -> wasmtime::Result<Loaded> {
    let component_digest = digest(&SHA256, bytes);
    let compatibility = compatibility(engine);
    let key = match guarded::directory(dir).and_then(|()| key(key_file)) {
        Ok(key) => key,
        Err(why) => {
            return Ok(Loaded {
                component: Component::new(engine, bytes)?,
                source: Source::Compiled,
                warning: Some(format!("the code cache is not used: {why}")),
            });
        }
    };
    let mac_of = |payload: &[u8]| {
        let mut context = hmac::Context::with_key(&key);
        context.update(MAC_LABEL);
        context.update(component_digest.as_ref());
        context.update(&compatibility.to_le_bytes());
        context.update(payload);
        context.sign()
    };
    let path = dir.join(format!(
        "{}-{compatibility:016x}.cwasm",
        hex(component_digest.as_ref())
    ));
    let mut warning = None;
    match guarded::read(&path, MAX_ENTRY_BYTES) {
        Ok(Some(entry)) => {
            let (mac, payload) = entry.split_at(entry.len().min(KEY_BYTES));
            let authentic = equal_in_constant_time(mac_of(payload).as_ref(), mac);
            if authentic {
                // SAFETY: the MAC proves this host wrote these bytes for this component and
                // this engine configuration, after this engine produced them; wasmtime checks
                // the engine's compatibility again.
                match unsafe { Component::deserialize(engine, payload) } {
                    Ok(component) => {
                        return Ok(Loaded {
                            component,
                            source: Source::Cache,
                            warning: None,
                        });
                    }
                    Err(error) => {
                        warning = Some(format!(
                            "the cache entry {} is not code this engine accepts ({error}); \
                             compiled afresh",
                            path.display()
                        ));
                    }
                }
            } else {
                warning = Some(format!(
                    "the cache entry {} is not authenticated by this host's key; compiled \
                     afresh",
                    path.display()
                ));
            }
        }
        Ok(None) => {}
        Err(why) => warning = Some(format!("a cache entry is not used: {why}; compiled afresh")),
    }
    let compiled = engine.precompile_component(bytes)?;
    let mut entry = mac_of(&compiled).as_ref().to_vec();
    entry.extend_from_slice(&compiled);
    // A cache that cannot be written only costs the next start its compile time.
    let _ = write(&path, &entry);
    // SAFETY: these bytes were produced by this engine just now.
    let component = unsafe { Component::deserialize(engine, &compiled)? };
    Ok(Loaded {
        component,
        source: Source::Compiled,
        warning: warning.map(|w| crate::escape::escape(&w)),
    })
}

/// Whether two MACs are equal, in time that does not depend on where they differ.
fn equal_in_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The engine's compatibility hash, as a number.
fn compatibility(engine: &Engine) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.finish()
}

/// The key in `path`, made (32 random bytes, mode 0600) if the file does not exist yet. A key
/// file other users can read or write, or of the wrong size, is refused.
fn key(path: &Path) -> Result<hmac::Key, String> {
    let existing = guarded::read(path, 1024)?;
    let bytes = match existing {
        Some(bytes) => {
            if guarded::readable_by_others(path) {
                return Err(format!(
                    "other users can read the cache key {}",
                    path.display()
                ));
            }
            bytes
        }
        None => {
            let mut fresh = vec![0u8; KEY_BYTES];
            getrandom::fill(&mut fresh).map_err(|e| format!("no randomness for a key: {e}"))?;
            match guarded::create(path, &fresh) {
                Ok(()) => fresh,
                // Another process made it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    guarded::read(path, 1024)?
                        .ok_or_else(|| format!("the cache key {} vanished", path.display()))?
                }
                Err(e) => return Err(format!("creating the cache key {}: {e}", path.display())),
            }
        }
    };
    if bytes.len() != KEY_BYTES {
        return Err(format!(
            "the cache key {} is not {KEY_BYTES} bytes",
            path.display()
        ));
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, &bytes))
}

/// Writes the entry under a fresh name beside its final one (0600, links not followed), then
/// renames it into place.
fn write(path: &Path, entry: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
    let temporary = dir.join(format!(".{}.tmp", hex(&nonce)));
    guarded::create(&temporary, entry)?;
    std::fs::rename(&temporary, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temporary);
    })
}
