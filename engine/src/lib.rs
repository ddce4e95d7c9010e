//! docker-mount-engine: everything docker-mount does with a docker root
//! once the drivers have described its layers. The folders are the
//! architecture (see ARCHITECTURE.md):
//!
//! - [`evidence`]: the host around a root — discovery of roots, the
//!   daemon's configuration, id maps, volumes, paths as text;
//! - [`model`]: what docker (or an engine's catalog) wrote — the opened
//!   root, containers, images, layerdb, driver detection and layer stacks;
//! - [`union`]: the userspace view of a stack, merged with whiteout rules;
//! - [`mounts`]: kernel, FUSE and block-image mounts, and what the machine
//!   can mount;
//! - [`analysis`]: the forensic commands over views and the model.
//!
//! Drivers never depend on this crate: they see only `docker-mount-core`.

pub mod analysis;
pub mod evidence;
pub mod model;
pub mod mounts;
pub mod union;

pub use docker_mount_core::error::{Error, Result};
