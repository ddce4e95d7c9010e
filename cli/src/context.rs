//! What every command starts from: the drivers and the opened root.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use docker_mount_core::loader::Drivers;
use docker_mount_core::root::DockerRoot;

use crate::Cli;

/// Plugin directories: `<exe-dir>/drivers`, then each `--driver-dir`.
/// Never anything inside the evidence.
pub fn driver_dirs(cli: &Cli) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
    {
        dirs.push(exe_dir.join("drivers"));
    }
    dirs.extend(cli.driver_dirs.iter().cloned());
    dirs
}

/// Loads the plugins; failures are logged here and listed by `drivers`.
pub fn load_drivers(cli: &Cli) -> Drivers {
    let drivers = Drivers::load_dirs(&driver_dirs(cli));
    for f in &drivers.failed {
        tracing::info!("driver plugin {} not loaded: {}", f.file.display(), f.error);
    }
    drivers
}

pub struct Context {
    pub root: DockerRoot,
    pub drivers: Drivers,
}

pub fn open(cli: &Cli) -> Result<Context> {
    let drivers = load_drivers(cli);
    let root = DockerRoot::open(&cli.root)
        .with_context(|| format!("cannot open docker root {}", cli.root.display()))?;
    Ok(Context { root, drivers })
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
