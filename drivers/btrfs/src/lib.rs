//! The btrfs storage driver (SUSE, some RHEL hosts): every layer is a
//! subvolume in `btrfs/subvolumes/<id>`, a snapshot of its parent plus its
//! own changes: a complete tree. No whiteouts: deletions are found by
//! comparing a layer with its parent.

use std::path::Path;

use docker_mount_core::driver_kit::{FullTreeStore, SNAPSHOT_INODES};
use docker_mount_core::{
    Confidence, Driver, DriverError, DriverInfo, LayerEntry, LayerSource, ABI_VERSION,
};

const STORE: FullTreeStore = FullTreeStore {
    name: "btrfs",
    store: "btrfs/subvolumes",
};

#[derive(Debug, Default)]
pub struct Btrfs;

impl Driver for Btrfs {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            name: STORE.name.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            summary:
                "btrfs: every layer a subvolume (a snapshot of its parent) in btrfs/subvolumes/<id>"
                    .into(),
            features: vec!["full-trees".into(), SNAPSHOT_INODES.into()],
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

docker_mount_core::export_driver!(Btrfs);
