//! `drivers`: which plugins loaded, which failed and why.

use anyhow::Result;
use serde::Serialize;

use crate::context::{self, driver_dirs};
use crate::{table, Cli};

#[derive(Serialize, schemars::JsonSchema)]
struct Loaded {
    name: String,
    version: String,
    abi_version: u32,
    summary: String,
    file: Option<String>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Report {
    searched: Vec<String>,
    loaded: Vec<Loaded>,
    failed: Vec<docker_mount_core::loader::PluginFailure>,
}

pub fn run(cli: &Cli) -> Result<()> {
    let drivers = context::load_drivers(cli);
    let report = Report {
        searched: driver_dirs(cli)
            .iter()
            .map(|d| d.display().to_string())
            .collect(),
        loaded: drivers
            .loaded
            .iter()
            .map(|d| Loaded {
                name: d.info.name.clone(),
                version: d.info.version.clone(),
                abi_version: d.info.abi_version,
                summary: d.info.summary.clone(),
                file: d.file.as_ref().map(|f| f.display().to_string()),
            })
            .collect(),
        failed: drivers.failed.clone(),
    };
    if cli.json {
        return context::print_json(&report);
    }
    let rows: Vec<Vec<String>> = report
        .loaded
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.version.clone(),
                d.file.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table::print(&["DRIVER", "VERSION", "FILE"], &rows);
    if report.loaded.is_empty() {
        println!("no driver plugins found in: {}", report.searched.join(", "));
    }
    for f in &report.failed {
        println!("failed: {}: {}", f.file.display(), f.error);
    }
    Ok(())
}
