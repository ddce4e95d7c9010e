//! `export`: a container's (or image's) filesystem as a tar stream, with no
//! root and no mount.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use docker_mount_engine::analysis::export::{export_sources, ExportStats, IdMapper, Source};
use docker_mount_engine::union::view;
use docker_mount_engine::union::Union;
use indicatif::{ProgressBar, ProgressStyle};

use crate::context;
use crate::Cli;

fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {msg} [{elapsed}]").ok()?);
    Some(bar)
}

pub fn run(
    cli: &Cli,
    target: &str,
    output: Option<&Path>,
    image: bool,
    disk_ids: bool,
    with_volumes: bool,
) -> Result<()> {
    let ctx = context::open(cli)?;
    // A userns-remapped (or rootless) root stores host ids: write the container's.
    let id_map = if disk_ids {
        None
    } else {
        context::id_map(cli, &ctx)?
    };
    if let Some(m) = &id_map {
        eprintln!(
            "owners written as the container saw them ({}); --disk-ids keeps the ids on disk",
            m.source
        );
    }
    let mapper = |uid: u32, gid: u32| match &id_map {
        Some(m) => m.to_container(uid, gid),
        None => (uid, gid),
    };
    let ids: Option<IdMapper<'_>> = id_map.as_ref().map(|_| &mapper as IdMapper<'_>);
    let (what, view) = context::open_view(&ctx, target, image)?;
    let volumes = if with_volumes && !image {
        volume_unions(&ctx, target)?
    } else {
        Vec::new()
    };
    let mut sources = vec![Source {
        union: &view.union,
        at: PathBuf::new(),
    }];
    sources.extend(volumes.iter().map(|(at, union)| Source {
        union,
        at: at.clone(),
    }));
    let bar = progress_bar();
    let mut tick = |s: &ExportStats| {
        if let Some(bar) = &bar {
            if s.entries.is_multiple_of(256) {
                bar.set_message(format!(
                    "{} entries, {} files, {} bytes",
                    s.entries, s.files, s.bytes
                ));
                bar.tick();
            }
        }
    };
    let mut out = context::tar_output(&ctx, output)?;
    let stats = export_sources(&sources, &mut out, &mut tick, ids)?;
    out.flush()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    eprintln!(
        "exported {what}: {} entries, {} files, {} bytes",
        stats.entries, stats.files, stats.bytes
    );
    Ok(())
}

/// The named volumes of a container, each with its mount point (relative).
/// Bind mounts point outside the docker root and are only named.
fn volume_unions(ctx: &context::Context, target: &str) -> Result<Vec<(PathBuf, Union)>> {
    let c = ctx.root.find_container(target)?;
    let mut out = Vec::new();
    for m in c.config.mount_points.values() {
        let at = PathBuf::from(m.destination.trim_start_matches('/'));
        if m.kind == "volume" && !m.name.is_empty() {
            let union = view::open_volume(&ctx.root, &m.name)
                .with_context(|| format!("volume {} (mounted at {})", m.name, m.destination))?;
            eprintln!("including volume {} at {}", m.name, m.destination);
            out.push((at, union));
        } else {
            eprintln!(
                "not included: {} mount of {} at {} (outside the docker root)",
                m.kind, m.source, m.destination
            );
        }
    }
    // Outer mount points first, so inner ones cover them.
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}
