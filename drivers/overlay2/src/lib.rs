//! The overlay2 storage driver: `overlay2/<cache-id>/diff` holds each
//! layer's own files, `lower` names its parents through `l/` short links.
//!
//! Like every driver it only describes the layout; core reads and mounts.

use std::path::Path;

use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver_kit;
use docker_mount_core::{
    Confidence, Driver, DriverError, DriverInfo, LayerEntry, LayerSource, WhiteoutStyle,
    ABI_VERSION,
};

#[derive(Debug, Default)]
pub struct Overlay2;

fn open_store(root: &Path) -> Result<Beneath, DriverError> {
    driver_kit::open_store(root, "overlay2")
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
        driver_kit::overlay_layer(&open_store(root)?, id, "overlay2", WhiteoutStyle::Overlay)
    }

    fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        driver_kit::list_layers(&open_store(root)?, Path::new(""), &["l"])
    }

    fn layer_paths(&self, root: &Path) -> Result<Vec<docker_mount_core::LayerPath>, DriverError> {
        driver_kit::overlay_layer_paths(&open_store(root)?, true)
    }
}

docker_mount_core::export_driver!(Overlay2);
