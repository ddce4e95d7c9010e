//! Helpers drivers share: opening their store beneath the root, checking
//! ids, listing layer directories. Plain functions over the driver's own
//! directory names, so core still names no driver.

use std::path::{Path, PathBuf};

use crate::beneath::{is_safe_component, Beneath};
use crate::driver::{Confidence, DriverError, ErrorKind, LayerEntry, LayerSource};

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

/// `rel` beneath `store` as a path, if it is a real directory.
pub fn require_dir(store: &Beneath, rel: &Path, what: &str) -> Result<PathBuf, DriverError> {
    if store.is_dir(rel) {
        Ok(store.path().join(rel))
    } else {
        Err(DriverError::new(
            ErrorKind::NotFound,
            format!("{what} is missing (or not a directory)"),
            Some(&store.path().join(rel)),
        ))
    }
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

/// Whether the root has an image store `image/<name>`.
pub fn has_image_store(root: &Path, name: &str) -> bool {
    Beneath::open(root).is_ok_and(|r| r.exists(&Path::new("image").join(name)))
}

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
