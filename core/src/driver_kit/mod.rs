//! Helpers drivers share: opening their store beneath the root, checking
//! ids, listing layer directories, reading engines' bolt databases
//! ([`bolt`]). Plain functions over the driver's own directory and file
//! names, so core still names no driver.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::beneath::{is_safe_component, Beneath};
use crate::driver::{
    Confidence, DriverError, ErrorKind, LayerEntry, LayerPath, LayerPathKind, LayerSource,
    WhiteoutStyle,
};

pub mod bolt;

/// Standard base64 with padding (Go's `encoding/base64.StdEncoding`): how
/// containers/storage names big-data files, how Go's JSON writes `[]byte`.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An I/O error naming its file.
pub fn io_err(path: &Path, e: impl std::fmt::Display) -> DriverError {
    DriverError::new(ErrorKind::Io, format!("cannot read: {e}"), Some(path))
}

/// Opens the driver's directory `store` (e.g. `overlay2`, `vfs/dir`) beneath the root.
pub fn open_store(root: &Path, store: &str) -> Result<Beneath, DriverError> {
    let root_dir = Beneath::open(root).map_err(|e| io_err(root, e))?;
    root_dir
        .subdir(Path::new(store))
        .map_err(|e| io_err(&root.join(store), e))
}

/// Refuses a layer id that is not one plain path component.
pub fn check_id(id: &str, driver: &str) -> Result<(), DriverError> {
    if is_safe_component(id) {
        Ok(())
    } else {
        Err(DriverError::new(
            ErrorKind::Invalid,
            format!("{id:?} is not a valid {driver} layer id"),
            None,
        ))
    }
}

/// `rel` beneath `store` as a path, if it is a real directory; else an
/// error saying what it is instead.
pub fn require_dir(store: &Beneath, rel: &Path, what: &str) -> Result<PathBuf, DriverError> {
    let instead = match store.lstat(rel).map(|st| st.st_mode & libc::S_IFMT) {
        Ok(libc::S_IFDIR) => return Ok(store.path().join(rel)),
        Ok(libc::S_IFLNK) => "is a symlink (never followed), not a directory",
        Ok(_) => "is not a directory",
        Err(_) => "is missing",
    };
    Err(DriverError::new(
        ErrorKind::NotFound,
        format!("{what} {instead}"),
        Some(&store.path().join(rel)),
    ))
}

/// Layers named by the entries of `dir` beneath `store` (all but `skip`).
pub fn list_layers(
    store: &Beneath,
    dir: &Path,
    skip: &[&str],
) -> Result<Vec<LayerEntry>, DriverError> {
    let names = store
        .list(dir)
        .map_err(|e| io_err(&store.path().join(dir), e))?;
    Ok(names
        .into_iter()
        .filter_map(|n| n.into_string().ok())
        .filter(|n| is_safe_component(n) && !skip.contains(&n.as_str()))
        .map(|id| LayerEntry {
            path: store.path().join(dir).join(&id),
            id,
        })
        .collect())
}

/// The most parents an overlay `lower` file may name (docker stops at 128,
/// containers/storage at 500).
const MAX_LOWER: usize = 4096;

/// Short link name (`l/<name>`) → layer id, for one overlay store.
type LinkMap = HashMap<String, String>;

/// The [`LinkMap`] of an overlay store (overlay2's, podman's), from every
/// layer's `link` file.
///
/// The `l/` symlinks say the same, but reading a symlink updates its atime
/// and cannot be asked not to; `link` files are read with `O_NOATIME`. The
/// map is built once per store and process.
fn link_map(store: &Beneath) -> Result<Arc<LinkMap>, DriverError> {
    static MAPS: Mutex<Vec<(PathBuf, Arc<LinkMap>)>> = Mutex::new(Vec::new());
    let mut maps = MAPS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, map)) = maps.iter().find(|(root, _)| root == store.path()) {
        return Ok(map.clone());
    }
    let mut map = HashMap::new();
    for layer in list_layers(store, Path::new(""), &["l"])? {
        let rel = Path::new(&layer.id).join("link");
        if let Ok(short) = store.read_small_text(&rel, "overlay link file") {
            map.insert(short, layer.id);
        }
    }
    let map = Arc::new(map);
    maps.push((store.path().to_path_buf(), map.clone()));
    Ok(map)
}

/// Resolves one `l/<short>` entry of a `lower` file to its layer id.
fn resolve_link(links: &LinkMap, entry: &str, lower_file: &Path) -> Result<String, DriverError> {
    let invalid = |why: String| DriverError::new(ErrorKind::Invalid, why, Some(lower_file));
    let short = entry
        .strip_prefix("l/")
        .filter(|s| is_safe_component(s))
        .ok_or_else(|| invalid(format!("lower entry {entry:?} is not l/<name>")))?;
    links.get(short).cloned().ok_or_else(|| {
        invalid(format!(
            "lower entry {entry:?} matches no layer's link file"
        ))
    })
}

/// The other names an overlay store (overlay2's, podman's, overlay v1's)
/// gives its layers: `<id>/merged`, where a stack topped by the layer was
/// mounted, and with `links`, `l/<short>` from each layer's `link` file.
pub fn overlay_layer_paths(store: &Beneath, links: bool) -> Result<Vec<LayerPath>, DriverError> {
    let mut out = Vec::new();
    for layer in list_layers(store, Path::new(""), &["l"])? {
        out.push(LayerPath {
            path: layer.path.join("merged"),
            id: layer.id,
            kind: LayerPathKind::View,
        });
    }
    if links {
        for (short, id) in link_map(store)?.iter() {
            if is_safe_component(short) {
                out.push(LayerPath {
                    id: id.clone(),
                    path: store.path().join("l").join(short),
                    kind: LayerPathKind::Own,
                });
            }
        }
    }
    Ok(out)
}

/// The parents, nearest first, that layer `id` of an overlay store
/// (`<store>/<id>/lower`, `l/<short>` entries joined by `:`) names; none
/// when it has no `lower` file.
pub fn overlay_lower_ids(store: &Beneath, id: &str) -> Result<Vec<String>, DriverError> {
    let rel = Path::new(id).join("lower");
    if !store.exists(&rel) {
        return Ok(Vec::new());
    }
    let file = store.path().join(&rel);
    let text = store
        .read_small_text(&rel, "overlay lower file")
        .map_err(|e| io_err(&file, e))?;
    let entries: Vec<&str> = text.split(':').filter(|s| !s.is_empty()).collect();
    if entries.len() > MAX_LOWER {
        return Err(DriverError::new(
            ErrorKind::Invalid,
            format!(
                "names {} parents, more than the {MAX_LOWER} allowed",
                entries.len()
            ),
            Some(&file),
        ));
    }
    let links = link_map(store)?;
    entries
        .iter()
        .map(|e| resolve_link(&links, e, &file))
        .collect()
}

/// Layer `id` of an overlay store (overlay2's, podman's): its
/// `<store>/<id>/diff` with the parents its `lower` file names.
pub fn overlay_layer(
    store: &Beneath,
    id: &str,
    driver: &str,
    whiteouts: WhiteoutStyle,
) -> Result<LayerSource, DriverError> {
    check_id(id, driver)?;
    if id == "l" {
        return Err(DriverError::new(
            ErrorKind::Invalid,
            "\"l\" holds links, not a layer",
            None,
        ));
    }
    Ok(LayerSource::Diff {
        dir: require_dir(store, &Path::new(id).join("diff"), "layer diff directory")?,
        whiteouts,
        parent_ids: overlay_lower_ids(store, id)?,
    })
}

/// Whether the root has an image store `image/<name>`.
pub fn has_image_store(root: &Path, name: &str) -> bool {
    Beneath::open(root).is_ok_and(|r| r.exists(&Path::new("image").join(name)))
}

/// Feature (in [`DriverInfo::features`](crate::DriverInfo)) of a driver
/// whose full-tree layers are snapshots of their parent (btrfs): a regular
/// file with the same inode number, ctime and birth time in a layer and its
/// parent is the same file, so `diff` need not read it. Plain copies (vfs)
/// must not declare it.
pub const SNAPSHOT_INODES: &str = "snapshot-inodes";

/// A driver whose layers are datasets of the pool the root lies in (zfs):
/// on such a root, its layers on disk are those of the pool's datasets
/// below the root's that [`Driver::dataset_layers`](crate::Driver::dataset_layers) claims.
pub const DATASET_LAYERS: &str = "datasets";

/// Feature of a driver whose engine diffs a container with its native
/// overlay differ (containers/storage's `OverlayChanges`, podman with the
/// kernel's overlay): `diff` then reports what the rw layer holds as that
/// differ does, not as docker's naive differ compares the two views.
pub const OVERLAY_NATIVE_DIFF: &str = "diff:overlay-native";

/// A driver that keeps each layer as a complete tree in `<store>/<id>`
/// (vfs, btrfs): its detection, layers and layer description.
#[derive(Debug, Clone, Copy)]
pub struct FullTreeStore {
    /// The storage driver name (and image store name).
    pub name: &'static str,
    /// The directory holding one subdirectory per layer.
    pub store: &'static str,
}

impl FullTreeStore {
    pub fn detect(&self, root: &Path) -> Confidence {
        let Ok(store) = open_store(root, self.store) else {
            return Confidence::NONE;
        };
        if has_image_store(root, self.name) {
            Confidence::CERTAIN
        } else if store.list(Path::new("")).is_ok_and(|l| !l.is_empty()) {
            Confidence(60)
        } else {
            Confidence(20)
        }
    }

    pub fn layer(&self, root: &Path, id: &str) -> Result<LayerSource, DriverError> {
        check_id(id, self.name)?;
        let store = open_store(root, self.store)?;
        Ok(LayerSource::Full {
            dir: require_dir(&store, Path::new(id), "layer directory")?,
        })
    }

    pub fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        list_layers(&open_store(root, self.store)?, Path::new(""), &[])
    }
}

/// The environment variable carrying driver option `key` to plugins:
/// `DOCKER_MOUNT_OPT_<KEY>`, upper case, `.` and `-` as `_`. Options
/// (`--driver-opt key=value` and the CLI's named flags) travel this way
/// because the plugin boundary is data only and versioned; a child
/// process (a FUSE server) inherits them.
pub fn option_var(key: &str) -> String {
    let key: String = key
        .chars()
        .map(|c| match c {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("DOCKER_MOUNT_OPT_{key}")
}

/// The value of driver option `key`, if set and not empty.
pub fn option(key: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(option_var(key)).filter(|v| !v.is_empty())
}

/// Whether boolean driver option `key` is set (to anything but `0` or `false`).
pub fn flag(key: &str) -> bool {
    option(key).is_some_and(|v| v != "0" && v != "false")
}
