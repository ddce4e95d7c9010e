//! Building the binary, the driver plugins and the test plugins.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
}

/// Runs cargo in the workspace, failing on a non-zero exit.
pub fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Crate directory names under `dir` (each holds a Cargo.toml).
pub fn crates_in(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// The driver plugins: for each crate under `drivers/`, its driver name,
/// the package name after `docker-mount-driver-` (the plugin is then
/// `libdocker_mount_driver_<name>.so`, and the driver reports that name).
/// A crate's directory may say more than its name
/// (`drivers/containerd-overlayfs` is the `overlayfs` driver).
pub fn driver_names() -> Result<Vec<String>> {
    let dir = workspace().join("drivers");
    let mut names = Vec::new();
    for d in crates_in(&dir)? {
        let manifest = dir.join(&d).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let name = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("name"))
            .filter_map(|l| l.trim_start().strip_prefix('='))
            .map(|v| v.trim().trim_matches('"'))
            .next()
            .and_then(|n| n.strip_prefix("docker-mount-driver-"))
            .with_context(|| {
                format!(
                    "{}: the package name must be docker-mount-driver-<name>",
                    manifest.display()
                )
            })?;
        names.push(name.to_string());
    }
    names.sort();
    Ok(names)
}

/// Builds `packages` and copies their `lib<name>.so` into `dest`.
fn build_plugins(
    profile_dir: &Path,
    release: bool,
    packages: &[String],
    dest: &Path,
) -> Result<()> {
    let mut args = vec!["build", "--quiet"];
    if release {
        args.push("--release");
    }
    for p in packages {
        args.extend(["-p", p.as_str()]);
    }
    cargo(&args)?;
    std::fs::create_dir_all(dest)?;
    for p in packages {
        let lib = format!("lib{}.so", p.replace('-', "_"));
        let from = profile_dir.join(&lib);
        // Copy then rename: a running docker-mount may have the old file mapped.
        let tmp = dest.join(format!(".{lib}.tmp"));
        std::fs::copy(&from, &tmp).with_context(|| format!("cannot copy {}", from.display()))?;
        std::fs::rename(&tmp, dest.join(&lib))?;
    }
    Ok(())
}

/// Builds the CLI and every driver; returns `target/<profile>`.
pub fn build_drivers(release: bool) -> Result<PathBuf> {
    let profile_dir = target_dir().join(if release { "release" } else { "debug" });
    let mut cli = vec!["build", "--quiet", "-p", "docker-mount"];
    if release {
        cli.push("--release");
    }
    cargo(&cli)?;
    let drivers: Vec<String> = driver_names()?
        .into_iter()
        .map(|d| format!("docker-mount-driver-{d}"))
        .collect();
    let dest = profile_dir.join("drivers");
    // Plugins of drivers that no longer exist must not linger.
    if let Ok(entries) = std::fs::read_dir(&dest) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !drivers
                .iter()
                .any(|d| name == format!("lib{}.so", d.replace('-', "_")))
            {
                std::fs::remove_file(e.path())?;
            }
        }
    }
    build_plugins(&profile_dir, release, &drivers, &dest)?;
    eprintln!("xtask: {} driver(s) in {}", drivers.len(), dest.display());
    Ok(profile_dir)
}

/// Builds the loader's fixture plugins into `target/<profile>/test-plugins/`.
pub fn build_test_plugins(profile_dir: &Path) -> Result<()> {
    let plugins: Vec<String> = crates_in(&workspace().join("tests/plugins"))?
        .into_iter()
        .map(|d| format!("docker-mount-test-plugin-{d}"))
        .collect();
    build_plugins(
        profile_dir,
        false,
        &plugins,
        &profile_dir.join("test-plugins"),
    )
}

/// Crates no driver plugin may depend on: the engine, and what only the
/// engine needs (FUSE, tar, progress bars). Drivers see only core.
const NOT_FOR_DRIVERS: &[&str] = &[
    "docker-mount-engine",
    "docker-mount",
    "fuser",
    "tar",
    "indicatif",
];

/// Fails if any driver crate's normal dependency tree holds a crate of
/// [`NOT_FOR_DRIVERS`] (the invariant "drivers see only core").
pub fn check_driver_deps() -> Result<()> {
    let cargo_bin = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for name in driver_names()? {
        let package = format!("docker-mount-driver-{name}");
        let out = Command::new(&cargo_bin)
            .args(["tree", "--quiet", "-e", "normal", "--prefix", "none"])
            .args(["--format", "{p}", "-p", &package])
            .current_dir(workspace())
            .output()
            .context("cannot run cargo tree")?;
        if !out.status.success() {
            bail!(
                "cargo tree -p {package} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let found: std::collections::BTreeSet<&str> = text
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| NOT_FOR_DRIVERS.contains(c))
            .collect();
        if !found.is_empty() {
            bail!("driver {package} depends on {found:?}: drivers may depend on docker-mount-core, never on the engine");
        }
    }
    eprintln!("xtask: every driver depends on core only (no engine, fuser, tar or indicatif)");
    Ok(())
}
