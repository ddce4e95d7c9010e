//! Driver options from the command line, handed to the plugins (and to the
//! FUSE servers this program starts) through the environment.

use anyhow::{bail, Result};
use docker_mount_core::driver_kit::option_var;

use crate::Cli;

/// Sets the environment variables of `--driver-opt` and the named driver
/// flags. Runs first thing in `main`, before any thread starts.
pub fn apply(cli: &Cli) -> Result<()> {
    let mut opts: Vec<(String, std::ffi::OsString)> = Vec::new();
    for o in &cli.driver_opts {
        let Some((k, v)) = o.split_once('=') else {
            bail!("--driver-opt {o:?} is not KEY=VALUE");
        };
        if k.is_empty() {
            bail!("--driver-opt {o:?} has no key");
        }
        opts.push((k.to_string(), v.into()));
    }
    if let Some(p) = &cli.dm_pool_data {
        opts.push(("dm.pool_data".into(), absolute(p)?.into_os_string()));
    }
    if let Some(p) = &cli.dm_pool_metadata {
        opts.push(("dm.pool_metadata".into(), absolute(p)?.into_os_string()));
    }
    if let Some(p) = &cli.containerd_root {
        opts.push(("containerd_root".into(), absolute(p)?.into_os_string()));
    }
    if cli.ignore_checksums {
        opts.push(("ignore_checksums".into(), "1".into()));
    }
    for (k, v) in opts {
        // Single-threaded still: nothing reads the environment concurrently.
        std::env::set_var(option_var(&k), v);
    }
    Ok(())
}

fn absolute(p: &std::path::Path) -> Result<std::path::PathBuf> {
    Ok(std::path::absolute(p)?)
}
