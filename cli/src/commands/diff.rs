//! `diff`: what a container changed against its image, like `docker diff`.

use anyhow::Result;
use docker_mount_core::diff::changes;
use docker_mount_core::pathfmt;

use crate::context;
use crate::Cli;

pub fn run(cli: &Cli, target: &str, layers: bool) -> Result<()> {
    let ctx = context::open(cli)?;
    let (_, view) = context::open_view(&ctx, target, false)?;
    let changes = changes(&view.union)?;
    if cli.json {
        return context::print_json(&changes);
    }
    for c in &changes {
        let path = pathfmt::escape(&c.path);
        match (&c.previous_layer, layers) {
            (Some(layer), true) => println!("{} {path}\t(was in layer {layer})", c.kind.letter()),
            _ => println!("{} {path}", c.kind.letter()),
        }
    }
    Ok(())
}
