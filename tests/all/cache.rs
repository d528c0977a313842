//! The precompiled-code cache: a second runtime loads what the first compiled; a corrupt or
//! foreign entry is recompiled and replaced, never trusted.

use defender_host::code_cache::Source;
use defender_host::{COMPONENT, Runtime};
use integration_tests::{COMMENT, MACHINE, PROBE, SHA1, simulator, tenant};
use std::path::{Path, PathBuf};

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("host-harness-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
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

#[tokio::test]
async fn the_second_runtime_loads_from_the_cache_and_works() {
    let dir = temp_dir("reuse");
    assert_eq!(build(&dir, COMPONENT).source(), Source::Compiled);
    let cached = build(&dir, COMPONENT);
    assert_eq!(cached.source(), Source::Cache);
    assert_eq!(entries(&dir).len(), 1);
    assert!(entries(&dir)[0].extension().is_some_and(|e| e == "cwasm"));

    let simulator = simulator().await;
    let outcome = cached
        .stop_and_quarantine(&tenant(&simulator), MACHINE, SHA1, COMMENT)
        .await
        .unwrap();
    assert!(outcome.result.is_ok());

    // Another component gets an entry of its own.
    assert_eq!(build(&dir, PROBE).source(), Source::Compiled);
    assert_eq!(entries(&dir).len(), 2);
    std::fs::remove_dir_all(&dir).unwrap();
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
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_foreign_entry_with_a_valid_digest_is_not_trusted() {
    let dir = temp_dir("foreign");
    build(&dir, COMPONENT);
    let entry = entries(&dir).remove(0);
    // Not code this engine produced, but framed with a correct digest.
    let payload = b"\\0asm not precompiled code at all";
    let digest = sha256(payload);
    std::fs::write(&entry, [digest.as_slice(), payload].concat()).unwrap();
    assert_eq!(build(&dir, COMPONENT).source(), Source::Compiled);
    std::fs::remove_dir_all(&dir).unwrap();
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
