//! Where a container or image came from when an engine's catalog, not
//! docker's own files, recorded it. Its own module so that containers and
//! images can carry it without depending on the catalog mapping.

use std::collections::BTreeMap;

use docker_mount_core::driver::{CatalogLayer, CatalogLog};

/// Where a catalogued container or image comes from and its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogRecord {
    /// The driver that catalogued it (and holds its layers).
    pub driver: String,
    /// The engine and namespace (`podman`, `containerd/default`).
    pub engine: String,
    /// Top first.
    pub layers: Vec<CatalogLayer>,
    /// The engine's state (containers), as `docker ps` words.
    pub state: &'static str,
    /// Bytes it takes as the engine counts them (images), when known.
    pub size: Option<u64>,
    /// Bytes of its layers as the engine counts them (images), by layer id.
    pub layer_sizes: BTreeMap<String, u64>,
    /// The container's log in the root (containers).
    pub log: Option<CatalogLog>,
}
