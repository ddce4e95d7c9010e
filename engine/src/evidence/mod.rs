//! The host around a docker root, read as evidence.
//!
//! - [`discover`]: the docker (and other engines') roots in what `--root` names;
//! - [`host`]: a whole host tree, its paths resolved inside it;
//! - [`daemon_config`]: what the daemon was told (daemon.json, units, options);
//! - [`userns`]: id maps between disk and container;
//! - [`volumes`]: where a container's mounts lie on disk;
//! - [`pool`]: a root inside a storage pool read in userspace (zfs datasets);
//! - [`zpool`]: docker roots in ZFS pools read from their disk images;
//! - [`pathfmt`]: evidence paths as unambiguous text.

pub mod daemon_config;
pub mod discover;
pub mod host;
pub mod pathfmt;
pub mod pool;
pub mod userns;
pub mod volumes;
pub mod zpool;
