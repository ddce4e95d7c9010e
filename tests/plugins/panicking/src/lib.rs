//! A fixture plugin whose functions panic (but `info`): the host must turn
//! each panic into an error and keep working with the other drivers.

use std::path::Path;

use docker_mount_core::{
    Confidence, Driver, DriverError, DriverInfo, LayerEntry, LayerSource, ABI_VERSION,
};

#[derive(Default)]
pub struct Panicking;

impl Driver for Panicking {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            name: "panicking".into(),
            version: "0.0.0".into(),
            abi_version: ABI_VERSION,
            summary: "test fixture: panics in every call".into(),
            features: vec![],
        }
    }
    fn detect(&self, _root: &Path) -> Confidence {
        panic!("detect exploded")
    }
    fn layer(&self, _root: &Path, _id: &str) -> Result<LayerSource, DriverError> {
        panic!("layer exploded")
    }
    fn layers(&self, _root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        panic!("layers exploded")
    }
}

docker_mount_core::export_driver!(Panicking);
