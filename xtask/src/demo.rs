//! `cargo xtask demo`: builds the tool, writes the sample root (the test
//! scene) under `target/demo-root/`, and runs the main commands on it:
//! triage, what changed, provenance, and (as root) a read-only mount.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::build;

fn show(bin: &Path, root: &Path, args: &[&str]) -> Result<()> {
    println!(
        "\n$ docker-mount --root {} {}",
        root.display(),
        args.join(" ")
    );
    let status = Command::new(bin)
        .arg("--root")
        .arg(root)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !status.success() {
        bail!("docker-mount {} failed ({status})", args.join(" "));
    }
    Ok(())
}

pub fn run() -> Result<()> {
    let profile = build::build_drivers(false)?;
    let bin = profile.join("docker-mount");
    let demo = build::target_dir().join("demo-root");
    if demo.exists() {
        std::fs::remove_dir_all(&demo)
            .with_context(|| format!("cannot clear {}", demo.display()))?;
    }
    let root = demo.join("docker");
    docker_mount_tests::scene::build(&root);
    println!("sample docker root written to {}", root.display());
    show(&bin, &root, &["drivers"])?;
    show(&bin, &root, &["list", "--all"])?;
    show(&bin, &root, &["images"])?;
    show(&bin, &root, &["info", "web"])?;
    show(&bin, &root, &["diff", "web"])?;
    show(&bin, &root, &["deleted", "web"])?;
    show(&bin, &root, &["find", "/etc/passwd"])?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        println!("\n(not root: skipping `mount`; it needs CAP_SYS_ADMIN)");
        return Ok(());
    }
    let mnt = demo.join("mnt");
    std::fs::create_dir_all(&mnt)?;
    let mnt_arg = mnt.to_str().context("mount point path is not UTF-8")?;
    show(&bin, &root, &["mount", "web", mnt_arg])?;
    let listed = std::fs::read_dir(&mnt).map(|d| {
        let mut names: Vec<String> = d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    });
    println!(
        "\n$ ls {}\n{}",
        mnt.display(),
        listed.unwrap_or_default().join("  ")
    );
    show(&bin, &root, &["umount", mnt_arg])
}
