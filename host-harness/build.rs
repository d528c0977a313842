//! Builds the component (`plugin/`) for `wasm32-wasip2` and embeds it in the harness, so
//! `cargo build` or `cargo test` at the root is the only step. Installs the target with rustup
//! when it is missing (a toolchain file alone does not, with `RUSTUP_AUTO_INSTALL=0`).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir.parent().expect("host-harness sits in the workspace");
    for watched in ["plugin/src", "plugin/Cargo.toml", "wit", "Cargo.lock", "Cargo.toml"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    ensure_target();

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let target_dir = out_dir.join("component-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["rustc", "--lib", "--crate-type", "cdylib", "--profile", "component"])
        .args(["--target", TARGET, "--manifest-path"])
        .arg(root.join("plugin/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        // The outer build's flags and wrappers (clippy's, coverage's) are for the host, not
        // for the component.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the component failed");

    let built = target_dir.join(TARGET).join("component").join("plugin.wasm");
    let embedded = out_dir.join("stop_and_quarantine.wasm");
    copy(&built, &embedded);
    println!("cargo:rustc-env=COMPONENT_WASM={}", embedded.display());
}

fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .expect("rustc runs");
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && Path::new(&libdir).is_dir() {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .expect("rustup runs: install the wasm32-wasip2 target by hand without it");
    assert!(status.success(), "`rustup target add {TARGET}` failed");
}

fn copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
}
