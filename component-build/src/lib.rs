//! Used from build scripts: builds a crate of this workspace as a `wasm32-wasip2` component, so
//! `cargo build` or `cargo test` at the root is the only step. Installs the target with rustup
//! when it is missing (a toolchain file alone does not, with `RUSTUP_AUTO_INSTALL=0`).
//!
//! Build scripts report failure by panicking, so this crate does too, with a message that says
//! what to do.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

/// Builds the library crate at `crate_dir` as a component with the workspace's `component`
/// profile, copies it to `$OUT_DIR/{name}.wasm`, tells cargo when to rebuild it, and returns the
/// path. `watch` lists further paths (e.g. the WIT folder) whose change requires a rebuild; the
/// workspace's manifest (where the `component` profile lives) and lock file are always watched.
pub fn build(crate_dir: &Path, name: &str, watch: &[&Path]) -> PathBuf {
    let mut watched = vec![crate_dir.join("src"), crate_dir.join("Cargo.toml")];
    if let Some(root) = workspace_root(crate_dir) {
        watched.extend([root.join("Cargo.toml"), root.join("Cargo.lock")]);
    }
    for path in watched
        .iter()
        .map(PathBuf::as_path)
        .chain(watch.iter().copied())
    {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    ensure_target();

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = out_dir.join("component-target");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "rustc",
            "--lib",
            "--crate-type",
            "cdylib",
            "--profile",
            "component",
        ])
        .args(["--target", TARGET, "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        // The outer build's flags and wrappers (clippy's, coverage's) are for the host.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .expect("cargo can be run from a build script");
    assert!(
        status.success(),
        "building the component {} failed",
        crate_dir.display()
    );

    let package = crate_dir
        .file_name()
        .and_then(|n| n.to_str())
        .expect("the crate folder has a UTF-8 name")
        .replace('-', "_");
    let built = target_dir
        .join(TARGET)
        .join("component")
        .join(format!("{package}.wasm"));
    let copied = out_dir.join(format!("{name}.wasm"));
    std::fs::copy(&built, &copied).unwrap_or_else(|e| panic!("copying {}: {e}", built.display()));
    copied
}

fn ensure_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .expect("rustc can be run from a build script");
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if output.status.success() && Path::new(&libdir).is_dir() {
        return;
    }
    println!("cargo:warning=installing the {TARGET} target with rustup");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .expect("rustup can be run: without it, install the wasm32-wasip2 target by hand");
    assert!(status.success(), "`rustup target add {TARGET}` failed");
}

/// The nearest folder above `crate_dir` whose manifest declares the workspace.
fn workspace_root(crate_dir: &Path) -> Option<&Path> {
    crate_dir.ancestors().skip(1).find(|dir| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|manifest| manifest.lines().any(|l| l.trim() == "[workspace]"))
    })
}
