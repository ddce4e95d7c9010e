//! The overlay2 storage driver: `overlay2/<cache-id>/diff` holds each
//! layer's own files, `lower` names its parents through `l/` short links.
//!
//! Like every driver it only describes the layout; core reads and mounts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use docker_mount_core::beneath::{is_safe_component, Beneath};
use docker_mount_core::driver_kit::{self, io_err};
use docker_mount_core::{
    Confidence, Driver, DriverError, DriverInfo, ErrorKind, LayerEntry, LayerSource, WhiteoutStyle,
    ABI_VERSION,
};

/// The most parents a `lower` file may name (docker stops at 128).
const MAX_LOWER: usize = 4096;

#[derive(Debug, Default)]
pub struct Overlay2;

fn open_store(root: &Path) -> Result<Beneath, DriverError> {
    driver_kit::open_store(root, "overlay2")
}

/// Short link name → cache id.
type LinkMap = HashMap<String, String>;

/// The [`LinkMap`] of a root, from every layer's `link` file.
///
/// The `l/` symlinks say the same, but reading a symlink updates its atime
/// and cannot be asked not to; `link` files are read with `O_NOATIME`. The
/// map is built once per root and process.
fn link_map(store: &Beneath) -> Result<Arc<LinkMap>, DriverError> {
    static MAPS: Mutex<Vec<(PathBuf, Arc<LinkMap>)>> = Mutex::new(Vec::new());
    let mut maps = MAPS.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, map)) = maps.iter().find(|(root, _)| root == store.path()) {
        return Ok(map.clone());
    }
    let mut map = HashMap::new();
    for id in layer_ids(store)? {
        let rel = Path::new(&id).join("link");
        if let Ok(short) = store.read_small_text(&rel, "overlay2 link file") {
            map.insert(short, id);
        }
    }
    let map = Arc::new(map);
    maps.push((store.path().to_path_buf(), map.clone()));
    Ok(map)
}

/// Resolves one `l/<short>` entry of a `lower` file to its cache id.
fn resolve_link(
    links: &HashMap<String, String>,
    entry: &str,
    lower_file: &Path,
) -> Result<String, DriverError> {
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

fn layer_ids(store: &Beneath) -> Result<Vec<String>, DriverError> {
    Ok(driver_kit::list_layers(store, Path::new(""), &["l"])?
        .into_iter()
        .map(|l| l.id)
        .collect())
}

fn parent_ids(store: &Beneath, id: &str) -> Result<Vec<String>, DriverError> {
    let rel = Path::new(id).join("lower");
    if !store.exists(&rel) {
        return Ok(Vec::new());
    }
    let file = store.path().join(&rel);
    let text = store
        .read_small_text(&rel, "overlay2 lower file")
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

impl Driver for Overlay2 {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            name: "overlay2".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            summary: "overlay2 (docker >= 1.12): diff/ layers joined by lower and l/ links".into(),
            features: vec!["whiteouts:overlay".into()],
        }
    }

    fn detect(&self, root: &Path) -> Confidence {
        let Ok(store) = open_store(root) else {
            return Confidence::NONE;
        };
        let has_links = store.exists(Path::new("l"));
        let has_images = driver_kit::has_image_store(root, "overlay2");
        match (has_links, has_images) {
            (true, true) => Confidence::CERTAIN,
            (true, false) | (false, true) => Confidence(70),
            (false, false) => Confidence(20),
        }
    }

    fn layer(&self, root: &Path, id: &str) -> Result<LayerSource, DriverError> {
        driver_kit::check_id(id, "overlay2")?;
        if id == "l" {
            return Err(DriverError::new(
                ErrorKind::Invalid,
                "\"l\" holds links, not a layer",
                None,
            ));
        }
        let store = open_store(root)?;
        Ok(LayerSource::Diff {
            dir: driver_kit::require_dir(
                &store,
                &Path::new(id).join("diff"),
                "layer diff directory",
            )?,
            whiteouts: WhiteoutStyle::Overlay,
            parent_ids: parent_ids(&store, id)?,
        })
    }

    fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        driver_kit::list_layers(&open_store(root)?, Path::new(""), &["l"])
    }
}

docker_mount_core::export_driver!(Overlay2);
