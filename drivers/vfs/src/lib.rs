//! The vfs storage driver: every layer is a complete copy of its parent
//! plus its own changes, in `vfs/dir/<id>`. No whiteouts: what a layer
//! deleted is found by comparing it with its parent.

use std::path::Path;

use docker_mount_core::driver_kit::FullTreeStore;
use docker_mount_core::{
    Confidence, Driver, DriverError, DriverInfo, LayerEntry, LayerSource, ABI_VERSION,
};

const STORE: FullTreeStore = FullTreeStore {
    name: "vfs",
    store: "vfs/dir",
};

#[derive(Debug, Default)]
pub struct Vfs;

impl Driver for Vfs {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            name: STORE.name.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            summary: "vfs: every layer a full copy in vfs/dir/<id>".into(),
            features: vec!["full-trees".into()],
        }
    }
    fn detect(&self, root: &Path) -> Confidence {
        STORE.detect(root)
    }
    fn layer(&self, root: &Path, id: &str) -> Result<LayerSource, DriverError> {
        STORE.layer(root, id)
    }
    fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        STORE.layers(root)
    }
}

docker_mount_core::export_driver!(Vfs);
