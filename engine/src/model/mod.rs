//! The docker metadata model: what docker (or another engine's catalog)
//! wrote about containers, images, layers and volumes. Read-only, bounded,
//! and every item carries its file.
//!
//! - [`root`]: a docker root opened for reading — containers, images, stores;
//! - [`container`]: `config.v2.json`, `hostconfig.json` and docker's state rules;
//! - [`image`]: imagedb configs (sha256-checked) and `repositories.json`;
//! - [`layerdb`]: the layer chain, checked, bounded and cycle-free;
//! - [`tarsplit`]: a layer's `tar-split.json.gz`;
//! - [`legacy`]: roots of docker < 1.10;
//! - [`volume`]: named volumes;
//! - [`ids`]: docker ids, validated;
//! - [`catalog`]: an engine's catalog (podman, containerd) as this model;
//! - [`record`]: where a catalogued container or image came from;
//! - [`detect`]: which driver holds a root and each container;
//! - [`filter`]: which containers a listing keeps (`--filter`, ports,
//!   Kubernetes support containers);
//! - [`stack`]: a container or image as its ordered layers;
//! - [`parallel`]: many small evidence files read on every core.

pub mod catalog;
pub mod container;
pub mod detect;
pub mod filter;
pub mod ids;
pub mod image;
pub mod layerdb;
pub mod legacy;
pub mod parallel;
pub mod record;
pub mod root;
pub mod stack;
pub mod tarsplit;
pub mod volume;
