//! Opens the userspace view of a container or image stack.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::evidence::pathfmt;
use crate::evidence::pool;
use crate::model::root::DockerRoot;
use crate::model::stack::{Role, Stack, StackLayer};
use crate::model::tarsplit::TarSplit;
use crate::mounts::blockimage::BlockImage;
use crate::mounts::blockmount::{self, BlockMounts};
use crate::union::{Lookup, Raw, Tree, Union};
use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver::{LayerSource, WhiteoutStyle};
use docker_mount_core::error::{Error, Result};

/// A stack ready to read: the union, the stack layers behind it (same
/// order, top first) and what could not be taken into account.
#[derive(Debug)]
pub struct View {
    /// The storage driver of the stack (see `Drivers::by_name`).
    pub driver: String,
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

/// The evidence directory all of the stack's layer directories lie in: the
/// root, or one store a driver declared (never a mix).
pub fn stack_base<'r>(root: &'r DockerRoot, stack: &Stack) -> Result<&'r Beneath> {
    let mut base: Option<&Beneath> = None;
    for dir in stack.layers.iter().filter_map(|l| l.source.dir()) {
        let (b, _) = root.locate(dir)?;
        match base {
            Some(first) if first.path() != b.path() => {
                return Err(Error::invalid(
                    dir,
                    format!(
                        "the layers lie in two evidence directories ({} and {})",
                        first.path().display(),
                        b.path().display()
                    ),
                ))
            }
            _ => base = Some(b),
        }
    }
    Ok(base.unwrap_or(root.dir()))
}

/// Opens the layers of `stack` as a [`Union`]. Full trees are opaque
/// everywhere, so the view of a full-tree driver is its top layer, and the
/// layers below still serve to compare against (diff).
pub fn open(root: &DockerRoot, stack: &Stack) -> Result<View> {
    // Read through a private noatime mount when we can, the evidence directly otherwise.
    let evidence = stack_base(root, stack)?;
    let noatime = evidence.noatime_clone();
    let base: &Beneath = noatime.as_ref().unwrap_or(evidence);
    let trusted = can_read_trusted();
    let mut warnings = Vec::new();
    let reads_root = stack.layers.iter().any(|l| l.source.dir().is_some());
    if noatime.is_none() && reads_root {
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
            LayerSource::Dataset { name, .. } => {
                let pool = root.pool().ok_or_else(|| {
                    Error::Usage(format!(
                        "layer {}: the {} driver names dataset {name:?}, but this root was not read from a pool; pass the pool's disk images with --root",
                        layer.driver_id, stack.driver
                    ))
                })?;
                let dir = pool::layer_dir(pool, name).map_err(|e| {
                    Error::Usage(format!("layer {} ({}): {e}", layer.driver_id, pool.describe()))
                })?;
                if let Some(w) = pool::written_after_root(pool, name) {
                    warnings.push(format!("layer {}: {w}", layer.driver_id));
                }
                trees.push(Tree::whole(dir, None, &layer.driver_id));
                layers.push(layer.clone());
                continue;
            }
            other => {
                return Err(Error::Usage(format!(
                    "layer {}: a kind of layer this docker-mount cannot read ({other:?}); update docker-mount",
                    layer.driver_id
                )))
            }
        };
        let (_, rel) = root.locate(dir)?;
        let mut tree = Tree::open(base, rel, style, &layer.driver_id)?;
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
        let dirs = shadowing_dirs(&union, i)?;
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
        driver: stack.driver.clone(),
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

/// Directories of layer `i` that also exist as directories in a lower
/// layer (those an unreadable opaque marker could affect), parents first,
/// names sorted. A loop over a stack of directories still to visit, not
/// recursion: evidence nests directories as deep as a path allows.
fn shadowing_dirs(union: &Union, i: usize) -> Result<Vec<PathBuf>> {
    let tree = &union.trees[i];
    let mut out = Vec::new();
    // Paths come parents first and sorted: one lookup walks them all.
    let mut below: Option<Lookup> = None;
    let mut pending = vec![PathBuf::new()];
    while let Some(dir) = pending.pop() {
        if !dir.as_os_str().is_empty() && union.trees.len() > i + 1 {
            let lookup = match &mut below {
                Some(l) => l,
                None => below.insert(Lookup::new(union, i + 1)?),
            };
            if lookup.get(&dir)?.is_some_and(|n| n.stat.is_dir()) {
                out.push(dir.clone());
            }
        }
        let listing = tree.list(&dir).map_err(|cause| Error::Io {
            path: tree.path().join(&dir),
            cause,
        })?;
        let subdirs = listing
            .entries
            .into_iter()
            .filter_map(|(name, raw)| match raw {
                Raw::Entry(st) if st.is_dir() => Some(dir.join(OsStr::from_bytes(&name))),
                _ => None,
            });
        let at = pending.len();
        pending.extend(subdirs);
        pending[at..].reverse();
    }
    Ok(out)
}

/// A named volume's data (`volumes/<name>/_data`) as a one-tree union, for
/// `--with-volumes`.
pub fn open_volume(root: &DockerRoot, name: &str) -> Result<Union> {
    if !docker_mount_core::beneath::is_safe_component(name) {
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
