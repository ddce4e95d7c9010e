//! `layers`: every layer directory of every loaded driver, with the images
//! and containers using it; `--orphans` for those nobody uses.

use anyhow::Result;
use docker_mount_engine::analysis::orphans::{self, LayerRole};
use docker_mount_engine::model::ids;

use crate::commands::history::human;
use crate::context;
use crate::{table, Cli};

pub fn run(cli: &Cli, only_orphans: bool, sizes: bool) -> Result<()> {
    let ctx = context::open(cli)?;
    let mut inv = orphans::inventory(&ctx.root, &ctx.drivers, sizes);
    if only_orphans {
        inv.layers.retain(|l| l.role == LayerRole::Orphan);
    }
    if cli.json {
        return context::print_json(&inv);
    }
    let rows: Vec<Vec<String>> = inv
        .layers
        .iter()
        .map(|l| {
            let role = role_name(l.role);
            let size = match (&l.usage, l.layerdb_size) {
                (Some(u), _) => format!("{} ({} files)", human(u.bytes), u.files),
                (None, Some(s)) => human(s),
                (None, None) => "-".into(),
            };
            let users: Vec<String> = l
                .images
                .iter()
                .cloned()
                .chain(l.containers.iter().map(|c| format!("container {c}")))
                .collect();
            let mut rest = if users.is_empty() {
                l.hint.clone().unwrap_or_default()
            } else {
                users.join(", ")
            };
            if let Some(t) = l.usage.as_ref().and_then(|u| u.newest_mtime.as_ref()) {
                if l.role == LayerRole::Orphan {
                    rest = format!("newest mtime {t}; {rest}");
                }
            }
            vec![
                l.driver.clone(),
                table::cell(&l.id),
                role.to_string(),
                l.chain_id
                    .as_deref()
                    .map(|c| ids::short(c).to_string())
                    .unwrap_or_else(|| "-".into()),
                size,
                table::cell(&rest),
            ]
        })
        .collect();
    table::print(
        &["DRIVER", "LAYER", "ROLE", "CHAIN", "SIZE", "USED BY / NOTE"],
        &rows,
    );
    let orphans = inv
        .layers
        .iter()
        .filter(|l| l.role == LayerRole::Orphan)
        .count();
    println!("{} layers, {orphans} orphans", inv.layers.len());
    for m in &inv.missing {
        eprintln!(
            "warning: {} layer {} is missing from disk (named by {})",
            m.driver, m.id, m.named_by
        );
    }
    for p in &inv.problems {
        eprintln!("warning: {p}");
    }
    Ok(())
}

/// A layer's role as tables show it.
pub fn role_name(role: LayerRole) -> &'static str {
    match role {
        LayerRole::Image => "image",
        LayerRole::ContainerRw => "rw",
        LayerRole::ContainerInit => "init",
        LayerRole::Orphan => "ORPHAN",
    }
}

/// `layers --export ID`: one layer directory as a raw tar stream.
pub fn export(cli: &Cli, id: &str, output: Option<&std::path::Path>) -> Result<()> {
    use std::io::Write;
    let ctx = context::open(cli)?;
    let (driver, dir, union) = orphans::raw_layer(&ctx.root, &ctx.drivers, id)?;
    let mut none = |_: &docker_mount_engine::analysis::export::ExportStats| {};
    let mut out = context::tar_output(&ctx, output)?;
    let stats = docker_mount_engine::analysis::export::export(&union, &mut out, &mut none)?;
    out.flush()?;
    eprintln!(
        "exported {driver} layer {dir} raw: {} entries, {} files, {} bytes",
        stats.entries, stats.files, stats.bytes
    );
    Ok(())
}
