//! The overlay (v1) storage driver (removed in docker 24): an image layer
//! is a complete tree in `overlay/<id>/root` (hard-linked from its parent),
//! a container or init layer is `overlay/<id>/upper` over the image named
//! by `lower-id`.

use std::path::Path;

use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver_kit;
use docker_mount_core::{
    Confidence, Driver, DriverError, DriverInfo, LayerEntry, LayerSource, WhiteoutStyle,
    ABI_VERSION,
};

#[derive(Debug, Default)]
pub struct Overlay;

fn open_store(root: &Path) -> Result<Beneath, DriverError> {
    driver_kit::open_store(root, "overlay")
}

impl Driver for Overlay {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            name: "overlay".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            summary: "overlay v1 (docker < 24): full root/ trees for images, upper/ for containers"
                .into(),
            features: vec!["whiteouts:overlay".into(), "full-trees".into()],
        }
    }

    fn detect(&self, root: &Path) -> Confidence {
        let Ok(store) = open_store(root) else {
            return Confidence::NONE;
        };
        let has_images = driver_kit::has_image_store(root, "overlay");
        if has_images {
            Confidence::CERTAIN
        } else if store.exists(Path::new("l")) {
            // `l/` short links belong to overlay2's layout (podman's
            // `overlay/` store has it); overlay v1 never makes them.
            Confidence::NONE
        } else {
            Confidence(if store.list(Path::new("")).is_ok_and(|l| !l.is_empty()) {
                50
            } else {
                20
            })
        }
    }

    fn layer(&self, root: &Path, id: &str) -> Result<LayerSource, DriverError> {
        driver_kit::check_id(id, "overlay")?;
        let store = open_store(root)?;
        let full = Path::new(id).join("root");
        if store.is_dir(&full) {
            return Ok(LayerSource::Full {
                dir: store.path().join(full),
            });
        }
        let upper = driver_kit::require_dir(
            &store,
            &Path::new(id).join("upper"),
            "layer root/ or upper/",
        )?;
        // `lower-id` names only the image's top layer, while the stack also
        // holds the init layer: leave the cross-check to layerdb.
        Ok(LayerSource::Diff {
            dir: upper,
            whiteouts: WhiteoutStyle::Overlay,
            parent_ids: Vec::new(),
        })
    }

    fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        driver_kit::list_layers(&open_store(root)?, Path::new(""), &[])
    }

    fn layer_paths(&self, root: &Path) -> Result<Vec<docker_mount_core::LayerPath>, DriverError> {
        driver_kit::overlay_layer_paths(&open_store(root)?, false)
    }
}

docker_mount_core::export_driver!(Overlay);
