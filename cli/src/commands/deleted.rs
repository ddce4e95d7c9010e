//! `deleted`: every whiteout and opaque directory of a container's (or
//! image's) layers, with what each hid and where to recover it from.

use anyhow::Result;
use docker_mount_engine::analysis::deleted::{deletions, map_ids, Deletion, Hidden};
use docker_mount_engine::evidence::pathfmt;
use docker_mount_engine::union::FileKind;

use crate::context::{self, owner};
use crate::Cli;

fn short(s: &str, n: usize) -> &str {
    s.get(..n).unwrap_or(s)
}

/// A layer id cut to 12 characters, keeping a `-init` style suffix so that
/// the init layer stays distinct from the rw layer it is named after.
fn short_id(id: &str) -> String {
    match id.rfind('-') {
        Some(dash) if dash > 12 => format!("{}{}", short(id, 12), &id[dash..]),
        _ => short(id, 12).to_string(),
    }
}

/// `file 5 1a2b3c4d5e6f 2024-01-02T03:04:05Z 0:0 (layer abcdef012345)`.
fn describe(h: &Hidden) -> String {
    let sha = h.sha256.as_deref().map_or("-", |s| short(s, 12));
    // Whole seconds are enough for a table; --json has the nanoseconds.
    let mtime = match h.mtime.split_once('.') {
        Some((secs, _)) => format!("{secs}Z"),
        None => h.mtime.clone(),
    };
    let kind = match h.kind {
        FileKind::File => "file",
        FileKind::Dir => "dir",
        FileKind::Symlink => "symlink",
        FileKind::Fifo => "fifo",
        FileKind::CharDev => "chardev",
        FileKind::BlockDev => "blockdev",
        FileKind::Socket => "socket",
    };
    format!(
        "{kind} {} {sha} {mtime} {} (layer {})",
        h.size,
        owner(h.uid, h.gid, h.container_ids),
        short_id(&h.layer)
    )
}

fn line(d: &Deletion) -> String {
    let head = format!(
        "{:<12}  {:<5}  {:<8}  {}",
        short_id(&d.layer),
        format!("{:?}", d.layer_role).to_lowercase(),
        d.kind.as_str(),
        pathfmt::escape(&d.path)
    );
    match d.hidden.split_first() {
        None => format!("{head}  -> hid: nothing"),
        Some((first, [])) => format!("{head}  -> hid: {}", describe(first)),
        Some((first, rest)) if first.path == d.path => format!(
            "{head}  -> hid: {} and {} entries beneath",
            describe(first),
            rest.len()
        ),
        Some(_) => format!("{head}  -> hid: {} entries", d.hidden.len()),
    }
}

pub fn run(cli: &Cli, target: &str, image: bool) -> Result<()> {
    let ctx = context::open(cli)?;
    let (_, view) = context::open_view(&ctx, target, image)?;
    let mut found = deletions(&view)?;
    if let Some(map) = context::id_map(cli, &ctx)? {
        map_ids(&mut found, &map);
    }
    if cli.json {
        return context::print_json(&found);
    }
    for d in &found {
        println!("{}", line(d));
    }
    Ok(())
}
