//! Builds the test components (`guests/`) the tests load next to the product's own.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let probe = component_build::build(
        &dir.join("guests/probe"),
        "probe",
        &[&dir.join("../wit"), &dir.join("../Cargo.lock")],
    );
    println!("cargo:rustc-env=PROBE_WASM={}", probe.display());
}
