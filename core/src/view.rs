//! Opens the userspace view of a container or image stack.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::beneath::Beneath;
use crate::blockimage::BlockImage;
use crate::blockmount::{self, BlockMounts};
use crate::driver::{LayerSource, WhiteoutStyle};
use crate::error::{Error, Result};
use crate::model::tarsplit::TarSplit;
use crate::pathfmt;
use crate::root::DockerRoot;
use crate::stack::{relative_dir, Role, Stack, StackLayer};
use crate::union::{Raw, Tree, Union};

/// A stack ready to read: the union, the stack layers behind it (same
/// order, top first) and what could not be taken into account.
#[derive(Debug)]
pub struct View {
    pub union: Union,
    pub layers: Vec<StackLayer>,
    pub warnings: Vec<String>,
    /// The mounted filesystems of block image layers, if any: kept until
    /// the view goes (declared last, so the trees go first).
    pub block_mounts: Option<BlockMounts>,
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

/// Opens the layers of `stack` as a [`Union`]. Full trees are opaque
/// everywhere, so the view of a full-tree driver is its top layer, and the
/// layers below still serve to compare against (diff).
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
    // Container layers (no tar-split) whose opaque markers we cannot read.
    let mut pending_unknown = Vec::new();
    let block_mounts = open_block_images(root, base, stack, &mut warnings)?;
    let mut block_roots = block_mounts.iter().flat_map(|m| m.roots.iter());
    for layer in &stack.layers {
        let (style, dir) = match &layer.source {
            LayerSource::Diff { dir, whiteouts, .. } => (Some(*whiteouts), dir),
            LayerSource::Full { dir } => (None, dir),
            LayerSource::BlockImage { .. } => {
                let fs_root = block_roots.next().ok_or_else(|| {
                    Error::Usage(format!(
                        "layer {}: its block image was not mounted",
                        layer.driver_id
                    ))
                })?;
                // The device holds /rootfs (the layer's view), /id and lost+found.
                let tree = Tree::open(fs_root, Path::new(BLOCK_ROOTFS), None, &layer.driver_id)
                    .map_err(|e| {
                        Error::invalid(
                            fs_root.path(),
                            format!("layer {}: the device's filesystem has no /{BLOCK_ROOTFS} directory: {e}", layer.driver_id),
                        )
                    })?;
                trees.push(tree);
                layers.push(layer.clone());
                continue;
            }
        };
        let mut tree = Tree::open(base, relative_dir(root, dir)?, style, &layer.driver_id)?;
        if style == Some(WhiteoutStyle::Overlay) && !trusted {
            match (&layer.role, &layer.chain_id) {
                (Role::Image, Some(chain)) => match tar_split_opaque(root, &stack.driver, chain) {
                    Ok(dirs) => tree.add_opaque_hints(dirs),
                    Err(e) => warnings.push(format!(
                        "layer {}: opaque directories unknown: {e}",
                        layer.driver_id
                    )),
                },
                _ => pending_unknown.push(trees.len()),
            }
        }
        trees.push(tree);
        layers.push(layer.clone());
    }
    let union = Union::new(trees);
    for i in pending_unknown {
        let mut dirs = Vec::new();
        shadowing_dirs(&union, i, Path::new(""), &mut dirs)?;
        if !dirs.is_empty() {
            let shown: Vec<String> = dirs
                .iter()
                .take(20)
                .map(|d| format!("/{}", pathfmt::escape(d)))
                .collect();
            warnings.push(format!(
                "not root: trusted.overlay.opaque cannot be read; {} {} of the {} layer {} also in lower layers and may be opaque (their deleted contents would then show through): {}{}",
                dirs.len(),
                if dirs.len() == 1 { "directory is" } else { "directories are" },
                format!("{:?}", layers[i].role).to_lowercase(),
                layers[i].driver_id,
                shown.join(", "),
                if dirs.len() > shown.len() { ", ..." } else { "" }
            ));
        }
    }
    Ok(View {
        union,
        layers,
        warnings,
        block_mounts,
    })
}

/// The directory of a block image layer's filesystem that holds its view.
pub const BLOCK_ROOTFS: &str = "rootfs";

/// Opens and mounts the block image layers of `stack` (top first), if any.
fn open_block_images(
    root: &DockerRoot,
    base: &Beneath,
    stack: &Stack,
    warnings: &mut Vec<String>,
) -> Result<Option<BlockMounts>> {
    let mut images = Vec::new();
    for layer in &stack.layers {
        if let LayerSource::BlockImage { .. } = &layer.source {
            let image = BlockImage::open(root, base, &layer.driver_id, &layer.source)?;
            warnings.extend(image.warnings.iter().cloned());
            images.push(std::sync::Arc::new(image));
        }
    }
    if images.is_empty() {
        return Ok(None);
    }
    blockmount::mount_images(images).map(Some)
}

/// Directories of layer `i` (below `dir`) that also exist as directories
/// in a lower layer: those an unreadable opaque marker could affect.
fn shadowing_dirs(union: &Union, i: usize, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let tree = &union.trees[i];
    let listing = tree.list(dir).map_err(|cause| Error::Io {
        path: tree.path().join(dir),
        cause,
    })?;
    for (name, raw) in listing.entries {
        let Raw::Entry(st) = raw else { continue };
        if !st.is_dir() {
            continue;
        }
        let rel = dir.join(OsStr::from_bytes(&name));
        let below = if union.trees.len() > i + 1 {
            union.lookup_from(i + 1, &rel)?
        } else {
            None
        };
        if below.is_some_and(|n| n.stat.is_dir()) {
            out.push(rel.clone());
        }
        shadowing_dirs(union, i, &rel, out)?;
    }
    Ok(())
}

/// A named volume's data (`volumes/<name>/_data`) as a one-tree union, for
/// `--with-volumes`.
pub fn open_volume(root: &DockerRoot, name: &str) -> Result<Union> {
    if !crate::beneath::is_safe_component(name) {
        return Err(Error::invalid(
            root.join("volumes"),
            format!("{name:?} is not a valid volume name"),
        ));
    }
    let noatime = root.dir().noatime_clone();
    let base: &Beneath = noatime.as_ref().unwrap_or(root.dir());
    let rel = Path::new("volumes").join(name).join("_data");
    Ok(Union::new(vec![Tree::open(base, &rel, None, name)?]))
}
