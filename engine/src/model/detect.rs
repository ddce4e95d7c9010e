//! Which storage drivers a root holds: every loaded driver votes, and each
//! container's own `Driver` field decides for that container.

use serde::Serialize;

use crate::model::container::Container;
use crate::model::root::DockerRoot;
use docker_mount_core::driver::Confidence;
use docker_mount_core::error::{Error, Result};
use docker_mount_core::loader::{Drivers, LoadedDriver};

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Vote {
    pub driver: String,
    pub confidence: Option<Confidence>,
    /// Why the driver could not vote.
    pub error: Option<String>,
}

/// Every loaded driver's vote on the root, most confident first.
pub fn votes(root: &DockerRoot, drivers: &Drivers) -> Vec<Vote> {
    let mut votes: Vec<Vote> = drivers
        .loaded
        .iter()
        .map(|d| match d.detect(root.path()) {
            Ok(c) => Vote {
                driver: d.name().to_string(),
                confidence: Some(c),
                error: None,
            },
            Err(e) => Vote {
                driver: d.name().to_string(),
                confidence: None,
                error: Some(e.to_string()),
            },
        })
        .collect();
    votes.sort_by_key(|v| std::cmp::Reverse(v.confidence));
    votes
}

/// The storage driver name a container was created with; an empty `Driver`
/// (very old configs) falls back to the most confident vote.
pub fn container_driver_name(
    root: &DockerRoot,
    drivers: &Drivers,
    c: &Container,
) -> Option<String> {
    if !c.config.driver.is_empty() {
        return Some(c.config.driver.clone());
    }
    votes(root, drivers)
        .into_iter()
        .find(|v| v.confidence.is_some_and(|c| c > Confidence::NONE))
        .map(|v| v.driver)
}

/// The loaded driver for a storage driver name, or a message saying which to install.
pub fn require<'a>(drivers: &'a Drivers, name: &str) -> Result<&'a LoadedDriver> {
    drivers.by_name(name).ok_or_else(|| {
        Error::Usage(format!(
            "this root uses the {name} storage driver; install the {name} driver plugin (libdocker_mount_driver_{name}.so) in the drivers/ directory next to docker-mount, or pass --driver-dir (`docker-mount drivers` lists the loaded ones)"
        ))
    })
}
