//! `cat`: one file's content from the view, or from a single layer (even
//! where a higher layer deleted it), with no mount.

use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, Result};
use docker_mount_engine::analysis::deleted::{find_layer, open_file};

use crate::context;
use crate::Cli;

/// Copies everything, a closed pipe (`| head`) ending the copy quietly.
fn copy(mut from: std::fs::File, to: &mut dyn Write) -> Result<()> {
    match std::io::copy(&mut from, to).and_then(|_| to.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn run(
    cli: &Cli,
    target: &str,
    path: &Path,
    layer: Option<&str>,
    output: Option<&Path>,
    image: bool,
) -> Result<()> {
    let ctx = context::open(cli)?;
    let out_file = output.filter(|o| *o != Path::new("-"));
    if let Some(o) = out_file {
        context::check_output(&ctx, o)?;
    }
    let (what, view) = context::open_view(&ctx, target, image)?;
    let layer = layer
        .map(|id| find_layer(&view, id).with_context(|| format!("in {what}")))
        .transpose()?;
    let (_, file) = open_file(&view, path, layer).with_context(|| format!("in {what}"))?;
    match out_file {
        Some(o) => {
            let f = std::fs::File::create(o)
                .with_context(|| format!("cannot create {}", o.display()))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
            copy(file, &mut w)
        }
        None => copy(file, &mut std::io::stdout().lock()),
    }
}
