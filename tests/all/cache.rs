//! The precompiled-code cache: a second runtime loads what the first compiled; a corrupt,
//! foreign or unauthenticated entry, or a directory or key others could have written, is never
//! trusted: the code is compiled afresh and the runtime says why.

use defender_host::code_cache::Source;
use defender_host::{COMPONENT, Runtime};
use integration_tests::{COMMENT, MACHINE, PROBE, SHA1, simulator, tenant};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("host-harness-cache-{name}-{}", std::process::id()));
    clean(&dir);
    dir
}

fn build(dir: &Path, component: &[u8]) -> Runtime {
    Runtime::builder()
        .cache_dir(dir)
        .build(component)
        .expect("the component loads")
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    entries
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn key_of(dir: &Path) -> PathBuf {
    PathBuf::from(format!("{}.key", dir.display()))
}

fn clean(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_file(key_of(dir));
}

#[tokio::test]
async fn the_second_runtime_loads_from_the_cache_and_works() {
    let dir = temp_dir("reuse");
    let first = build(&dir, COMPONENT);
    assert_eq!(
        (first.source(), first.cache_warning()),
        (Source::Compiled, None)
    );
    let cached = build(&dir, COMPONENT);
    assert_eq!(
        (cached.source(), cached.cache_warning()),
        (Source::Cache, None)
    );
    assert_eq!(entries(&dir).len(), 1);
    assert!(entries(&dir)[0].extension().is_some_and(|e| e == "cwasm"));
    // Made private: the directory 0700, the entry and the key 0600.
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&entries(&dir)[0]), 0o600);
    assert_eq!(mode(&key_of(&dir)), 0o600);

    let simulator = simulator().await;
    let outcome = cached
        .stop_and_quarantine(&tenant(&simulator), MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    assert!(outcome.result.is_ok());

    // Another component gets an entry of its own.
    assert_eq!(build(&dir, PROBE).source(), Source::Compiled);
    assert_eq!(entries(&dir).len(), 2);
    clean(&dir);
}

#[tokio::test]
async fn a_corrupt_entry_is_recompiled_and_replaced() {
    let dir = temp_dir("corrupt");
    build(&dir, COMPONENT);
    let entry = entries(&dir).remove(0);
    let mut bytes = std::fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&entry, &bytes).unwrap();
    assert_eq!(build(&dir, COMPONENT).source(), Source::Compiled);
    assert_eq!(build(&dir, COMPONENT).source(), Source::Cache);

    std::fs::write(&entry, b"short").unwrap();
    assert_eq!(build(&dir, COMPONENT).source(), Source::Compiled);
    clean(&dir);
}

#[tokio::test]
async fn a_foreign_entry_with_a_valid_digest_is_not_trusted() {
    let dir = temp_dir("foreign");
    build(&dir, COMPONENT);
    let entry = entries(&dir).remove(0);
    // Not code this engine produced, framed as the old format did: an unkeyed digest.
    let payload = b"\\0asm not precompiled code at all";
    let digest = sha256(payload);
    std::fs::write(&entry, [digest.as_slice(), payload].concat()).unwrap();
    let rebuilt = build(&dir, COMPONENT);
    assert_eq!(rebuilt.source(), Source::Compiled);
    assert!(
        rebuilt
            .cache_warning()
            .is_some_and(|w| w.contains("not authenticated")),
        "{:?}",
        rebuilt.cache_warning()
    );
    clean(&dir);
}

#[tokio::test]
async fn another_components_entry_under_this_ones_name_is_refused() {
    let dir = temp_dir("swapped");
    build(&dir, COMPONENT);
    let real = entries(&dir).remove(0);
    build(&dir, PROBE);
    let probe = entries(&dir)
        .into_iter()
        .find(|e| *e != real)
        .expect("the probe's entry");
    // Valid code with a valid MAC, for another component: copied over the real one's entry.
    std::fs::copy(&probe, &real).unwrap();
    let runtime = build(&dir, COMPONENT);
    assert_eq!(runtime.source(), Source::Compiled);
    assert!(
        runtime
            .cache_warning()
            .is_some_and(|w| w.contains("not authenticated")),
        "{:?}",
        runtime.cache_warning()
    );
    let simulator = simulator().await;
    let outcome = runtime
        .stop_and_quarantine(&tenant(&simulator), MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    assert!(
        outcome.result.is_ok(),
        "the real component ran: {:?}",
        outcome.result
    );
    clean(&dir);
}

#[tokio::test]
async fn a_directory_or_key_others_could_write_is_not_used() {
    let shared = temp_dir("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let runtime = build(&shared, COMPONENT);
    compiled_because(&runtime, "other users can write");
    assert!(entries(&shared).is_empty(), "nothing was stored there");
    clean(&shared);

    let open_key = temp_dir("open-key");
    build(&open_key, COMPONENT);
    std::fs::set_permissions(key_of(&open_key), std::fs::Permissions::from_mode(0o644)).unwrap();
    let runtime = build(&open_key, COMPONENT);
    compiled_because(&runtime, "can read the cache key");
    clean(&open_key);

    let open_entry = temp_dir("open-entry");
    build(&open_entry, COMPONENT);
    let entry = entries(&open_entry).remove(0);
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
    let runtime = build(&open_entry, COMPONENT);
    compiled_because(&runtime, "other users can write");
    clean(&open_entry);
}

#[tokio::test]
async fn a_link_above_the_cache_is_judged_by_where_it_leads() {
    // A private directory reached through a link (macOS's /tmp is one): the link's own mode
    // says nothing, the directory it leads to is this user's alone.
    let real = temp_dir("linked-real");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
    let link = temp_dir("linked-link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let dir = link.join("cache");
    build(&dir, COMPONENT);
    let second = build(&dir, COMPONENT);
    assert_eq!(
        (second.source(), second.cache_warning()),
        (Source::Cache, None)
    );
    std::fs::remove_file(&link).unwrap();
    clean(&real);
}

/// The runtime compiled afresh, and its warning says `why`.
fn compiled_because(runtime: &Runtime, why: &str) {
    assert_eq!(runtime.source(), Source::Compiled);
    assert!(
        runtime.cache_warning().is_some_and(|w| w.contains(why)),
        "{:?}",
        runtime.cache_warning()
    );
}

/// SHA-256, computed with the system's `sha256sum` so the test does not share the code under test.
fn sha256(payload: &[u8]) -> Vec<u8> {
    let path =
        std::env::temp_dir().join(format!("host-harness-cache-payload-{}", std::process::id()));
    std::fs::write(&path, payload).unwrap();
    let out = std::process::Command::new("sha256sum")
        .arg(&path)
        .output()
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    let hex = String::from_utf8(out.stdout).unwrap();
    (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}
