//! Developer and CI tasks: `cargo xtask <task>`.
//!
//! - `build-drivers [--release]`: the CLI plus every `drivers/*` plugin, the
//!   `.so` files placed in `target/<profile>/drivers/` beside the binary;
//! - `test-drivers`: installs what the tests need (as root), checks format,
//!   lints and that drivers depend on core only, builds, and runs every test (both tiers);
//! - `dist [--drivers NAME,...] [--target-dir DIR] [--out DIR] [--debug]`:
//!   a release tarball with the binary, the chosen driver plugins, the man
//!   page, completions, README, guide and SHA256SUMS (`target/dist/`);
//! - `demo`: builds a sample docker root and runs the tool on it;
//! - `bench [--runs N] [NAME...]`: times the release binary against baseline
//!   tools side by side and prints ratios (`target/bench/results.json`);
//! - `fuzz [--time N] [TARGET...]`: every cargo fuzz target N seconds (fuzz.rs);
//! - `schemas`: writes the JSON schemas of every `--json` output into
//!   `docs/schemas/<version>/` (a test checks they are up to date).

mod bench;
mod build;
mod demo;
mod dist;
mod fuzz;
mod packages;

use anyhow::{bail, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let release = args.iter().any(|a| a == "--release");
    match args.first().map(String::as_str) {
        Some("build-drivers") => build::build_drivers(release).map(drop),
        Some("test-drivers") => test_drivers(),
        Some("demo") => demo::run(),
        Some("dist") => dist::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("schemas") => schemas(),
        _ => bail!(
            "usage: cargo xtask <build-drivers [--release] | test-drivers | demo | dist [--drivers NAME,...] [--target-dir DIR] [--out DIR] [--debug] | bench [--runs N] [NAME...] | fuzz [--time N] [TARGET...] | schemas>"
        ),
    }
}

/// Regenerates `docs/schemas/<version>/` from the output types, through
/// the CLI's hidden `schemas` command.
fn schemas() -> Result<()> {
    build::cargo(&["build", "--quiet", "-p", "docker-mount"])?;
    let bin = build::target_dir().join("debug").join("docker-mount");
    let out = build::workspace().join("docs").join("schemas");
    let status = std::process::Command::new(&bin)
        .arg("schemas")
        .arg("--out")
        .arg(&out)
        .status()?;
    if !status.success() {
        bail!("{} schemas failed: {status}", bin.display());
    }
    eprintln!("xtask: schemas written to {}", out.display());
    Ok(())
}

fn test_drivers() -> Result<()> {
    packages::ensure()?;
    build::cargo(&["fmt", "--all", "--check"])?;
    build::check_driver_deps()?;
    build::cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--quiet",
        "--",
        "-D",
        "warnings",
    ])?;
    let profile = build::build_drivers(false)?;
    build::build_test_plugins(&profile)?;
    build::cargo(&["test", "--workspace", "--no-fail-fast"])?;
    Ok(())
}
