//! Builds the component (`plugin/`) and embeds it in the harness.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let wasm = component_build::build(
        &root.join("plugin"),
        "stop_and_quarantine",
        &[&root.join("wit"), &root.join("Cargo.lock")],
    );
    println!("cargo:rustc-env=COMPONENT_WASM={}", wasm.display());
}
