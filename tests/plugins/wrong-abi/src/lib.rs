//! A fixture plugin that claims a driver ABI version nobody speaks: the
//! loader must refuse it and say why.

use std::path::Path;

use docker_mount_core::{
    Confidence, Driver, DriverError, DriverInfo, ErrorKind, LayerEntry, LayerSource,
};

#[derive(Default)]
pub struct WrongAbi;

impl Driver for WrongAbi {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            name: "wrong-abi".into(),
            version: "0.0.0".into(),
            abi_version: docker_mount_core::ABI_VERSION + 1000,
            summary: "test fixture: wrong ABI version".into(),
            features: vec![],
        }
    }
    fn detect(&self, _root: &Path) -> Confidence {
        Confidence::CERTAIN
    }
    fn layer(&self, _root: &Path, _id: &str) -> Result<LayerSource, DriverError> {
        Err(DriverError::new(ErrorKind::Unsupported, "fixture", None))
    }
    fn layers(&self, _root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        Ok(vec![])
    }
}

docker_mount_core::export_driver!(WrongAbi);
