//! `mount` and `umount`: read-only kernel mounts of a container or image.

use std::path::Path;

use anyhow::{Context as _, Result};
use docker_mount_core::mount::{self, MountApi};

use crate::context;
use crate::Cli;

/// `--mount-api`: how to ask the kernel for an overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// The new mount API when the kernel has it, else mount(2).
    Auto,
    /// fsopen/fsconfig, one lowerdir+ per layer (Linux >= 6.8).
    New,
    /// mount(2) with one option string.
    Legacy,
}

impl From<Api> for MountApi {
    fn from(a: Api) -> MountApi {
        match a {
            Api::Auto => MountApi::Auto,
            Api::New => MountApi::New,
            Api::Legacy => MountApi::Legacy,
        }
    }
}

pub fn run(cli: &Cli, target: &str, dir: &Path, image: bool, api: Api) -> Result<()> {
    let ctx = context::open(cli)?;
    let (what, stack) = context::resolve_stack(&ctx, target, image)?;
    for w in &stack.warnings {
        eprintln!("warning: {w}");
    }
    let report = mount::mount_stack(&ctx.root, &stack, dir, api.into())
        .with_context(|| format!("cannot mount {what} on {}", dir.display()))?;
    if cli.json {
        return context::print_json(&report);
    }
    println!(
        "mounted {what} on {} read-only: {}, {} layers, {}",
        report.target.display(),
        report.method,
        report.layers,
        report.options
    );
    println!("undo with: docker-mount umount {}", dir.display());
    Ok(())
}

pub fn unmount(dir: &Path, lazy: bool) -> Result<()> {
    mount::unmount(dir, lazy)?;
    println!("unmounted {}", dir.display());
    Ok(())
}
