//! Opens the userspace view of a container or image stack.

use std::path::Path;

use crate::beneath::Beneath;
use crate::driver::{LayerSource, WhiteoutStyle};
use crate::error::{Error, Result};
use crate::model::tarsplit::TarSplit;
use crate::root::DockerRoot;
use crate::stack::{relative_dir, Role, Stack, StackLayer};
use crate::union::{Tree, Union};

/// A stack ready to read: the union, the stack layers behind it (same
/// order, top first) and what could not be taken into account.
#[derive(Debug)]
pub struct View {
    pub union: Union,
    pub layers: Vec<StackLayer>,
    pub warnings: Vec<String>,
}

/// Whether this process can read `trusted.*` xattrs (overlay's opaque marker).
fn can_read_trusted() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Opaque directories of an image layer, from the `.wh..wh..opq` entries
/// its original tar recorded in tar-split.
fn tar_split_opaque(root: &DockerRoot, stack_name: &str, chain_id: &str) -> Result<Vec<Vec<u8>>> {
    let rel = Path::new("image")
        .join(stack_name)
        .join("layerdb/sha256")
        .join(chain_id)
        .join("tar-split.json.gz");
    Ok(TarSplit::read(root.dir(), &rel)?.opaque_dirs())
}

/// Opens the layers of `stack` (down to its first full tree) as a [`Union`].
pub fn open(root: &DockerRoot, stack: &Stack) -> Result<View> {
    // Read through a private noatime mount when we can, the evidence directly otherwise.
    let noatime = root.dir().noatime_clone();
    let base: &Beneath = noatime.as_ref().unwrap_or(root.dir());
    let trusted = can_read_trusted();
    let mut warnings = Vec::new();
    if noatime.is_none() {
        warnings.push(
            "not root: symlink targets are read directly, which may update their atime unless the evidence is mounted read-only or noatime"
                .to_string(),
        );
    }
    let mut trees = Vec::new();
    let mut layers = Vec::new();
    for layer in &stack.layers {
        let (style, dir) = match &layer.source {
            LayerSource::Diff { dir, whiteouts, .. } => (Some(*whiteouts), dir),
            LayerSource::Full { dir } => (None, dir),
            _ => {
                return Err(Error::Usage(format!(
                    "layer {} is a block image, which this version cannot read in userspace",
                    layer.driver_id
                )))
            }
        };
        let mut tree = Tree::open(base, relative_dir(root, dir)?, style, &layer.driver_id)?;
        if style == Some(WhiteoutStyle::Overlay) && !trusted {
            match (&layer.role, &layer.chain_id) {
                (Role::Image, Some(chain)) => match tar_split_opaque(root, &stack.driver, chain) {
                    Ok(dirs) => tree.add_opaque_hints(dirs),
                    Err(e) => warnings.push(format!("layer {}: opaque directories unknown: {e}", layer.driver_id)),
                },
                _ => warnings.push(format!(
                    "not root: opaque directories of the {:?} layer {} (trusted.overlay.opaque) cannot be read; deleted directory contents may show through",
                    layer.role, layer.driver_id
                )),
            }
        }
        trees.push(tree);
        layers.push(layer.clone());
        if style.is_none() {
            break;
        }
    }
    Ok(View {
        union: Union::new(trees),
        layers,
        warnings,
    })
}
