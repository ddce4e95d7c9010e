//! The aufs storage driver (Ubuntu's default before 2017, removed in
//! docker 24): `aufs/diff/<id>` holds each layer's own files with `.wh.`
//! whiteouts, `aufs/layers/<id>` lists its parents nearest first.
//!
//! No kernel here has aufs: core reads these layers in userspace.

use std::path::Path;

use docker_mount_core::beneath::{is_safe_component, Beneath};
use docker_mount_core::driver_kit::{self, io_err};
use docker_mount_core::{
    Confidence, Driver, DriverError, DriverInfo, ErrorKind, LayerEntry, LayerSource, WhiteoutStyle,
    ABI_VERSION,
};

/// The most parents a `layers` file may name (aufs allowed 127 branches).
const MAX_PARENTS: usize = 4096;

#[derive(Debug, Default)]
pub struct Aufs;

fn open_store(root: &Path) -> Result<Beneath, DriverError> {
    driver_kit::open_store(root, "aufs")
}

/// The parents listed in `aufs/layers/<id>`, nearest first.
fn parents(store: &Beneath, id: &str) -> Result<Vec<String>, DriverError> {
    let rel = Path::new("layers").join(id);
    if !store.exists(&rel) {
        return Ok(Vec::new());
    }
    let file = store.path().join(&rel);
    let text = store
        .read_small_text(&rel, "aufs layers file")
        .map_err(|e| io_err(&file, e))?;
    let ids: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if ids.len() > MAX_PARENTS {
        return Err(DriverError::new(
            ErrorKind::Invalid,
            format!(
                "names {} parents, more than the {MAX_PARENTS} allowed",
                ids.len()
            ),
            Some(&file),
        ));
    }
    if let Some(bad) = ids.iter().find(|i| !is_safe_component(i)) {
        return Err(DriverError::new(
            ErrorKind::Invalid,
            format!("parent {bad:?} is not a valid layer id"),
            Some(&file),
        ));
    }
    Ok(ids)
}

impl Driver for Aufs {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            name: "aufs".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            summary: "aufs (docker < 24): diff/ layers with .wh. whiteouts, read in userspace"
                .into(),
            features: vec!["whiteouts:aufs".into()],
        }
    }

    fn detect(&self, root: &Path) -> Confidence {
        let Ok(store) = open_store(root) else {
            return Confidence::NONE;
        };
        match (
            store.is_dir(Path::new("diff")),
            store.is_dir(Path::new("layers")),
        ) {
            (true, true) => Confidence::CERTAIN,
            (true, false) | (false, true) => Confidence(60),
            (false, false) => Confidence(20),
        }
    }

    fn layer(&self, root: &Path, id: &str) -> Result<LayerSource, DriverError> {
        driver_kit::check_id(id, "aufs")?;
        let store = open_store(root)?;
        Ok(LayerSource::Diff {
            dir: driver_kit::require_dir(
                &store,
                &Path::new("diff").join(id),
                "layer diff directory",
            )?,
            whiteouts: WhiteoutStyle::Aufs,
            parent_ids: parents(&store, id)?,
        })
    }

    fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        driver_kit::list_layers(&open_store(root)?, Path::new("diff"), &[])
    }

    /// `mnt/<id>`: where docker mounted the stack a layer tops.
    fn layer_paths(&self, root: &Path) -> Result<Vec<docker_mount_core::LayerPath>, DriverError> {
        let store = open_store(root)?;
        Ok(driver_kit::list_layers(&store, Path::new("diff"), &[])?
            .into_iter()
            .map(|l| docker_mount_core::LayerPath {
                path: store.path().join("mnt").join(&l.id),
                id: l.id,
                kind: docker_mount_core::LayerPathKind::View,
            })
            .collect())
    }
}

docker_mount_core::export_driver!(Aufs);
