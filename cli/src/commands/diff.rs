//! `diff`: what a container changed against its image, like `docker diff`.

use anyhow::Result;
use docker_mount_engine::analysis::dataset_shortcut::DatasetShortcut;
use docker_mount_engine::analysis::diff::{self, Content, Options};
use docker_mount_engine::evidence::pathfmt;

use crate::context;
use crate::Cli;

/// `--content`: which entries with equal metadata have their content compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ContentArg {
    /// Compare them all, except files a snapshot driver (btrfs) proves
    /// unchanged by inode number, ctime and birth time, and files of a zfs
    /// clone whose dnode its origin snapshot still shares.
    Auto,
    /// Compare them all, trusting no inode (a forged ctime cannot hide a change).
    Full,
    /// Compare none: metadata only, exactly what docker diff reports (faster).
    Off,
}

pub fn run(cli: &Cli, target: &str, layers: bool, content: ContentArg) -> Result<()> {
    let ctx = context::open(cli)?;
    let (_, view) = context::open_view(&ctx, target, false)?;
    let content = match content {
        ContentArg::Auto => Content::Auto,
        ContentArg::Full => Content::Full,
        ContentArg::Off => Content::Off,
    };
    let options = Options::for_driver(content, ctx.drivers.by_name(&view.driver));
    let mut warnings = Vec::new();
    let proof = DatasetShortcut::for_view(&ctx.root, &view, content, &mut warnings);
    let diff = diff::changes_proven(&view.union, &options, proof.as_ref().map(|p| p as _))?;
    for w in warnings.iter().chain(&diff.warnings) {
        eprintln!("warning: {w}");
    }
    tracing::info!(
        "diff: {} contents compared, {} files proved unchanged by their snapshot inode or dnode",
        diff.stats.contents_compared,
        diff.stats.proven_by_inode
    );
    if cli.json {
        return context::print_json(&diff.changes);
    }
    for c in &diff.changes {
        let path = pathfmt::escape(&c.path);
        let mut notes = Vec::new();
        if c.content_only {
            notes.push("content only: metadata and mtime equal".to_string());
        }
        if let (Some(layer), true) = (&c.previous_layer, layers) {
            notes.push(format!("was in layer {layer}"));
        }
        if notes.is_empty() {
            println!("{} {path}", c.kind.letter());
        } else {
            println!("{} {path}\t({})", c.kind.letter(), notes.join("; "));
        }
    }
    Ok(())
}
