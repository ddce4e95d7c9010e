//! Mounting a stack for the analyst's own tools, always read-only.
//!
//! - [`kernel`]: overlay and bind mounts through the noatime shield;
//! - [`fuse`]: a read-only FUSE filesystem over the union engine;
//! - [`blockimage`]: reading a layer pieced from a backing file's extents;
//! - [`blockmount`]: such layers as mounted directories (loop, ro);
//! - [`datasetfs`]: datasets read in userspace (zfs) served as directories;
//! - [`capabilities`]: what this machine can mount.

pub mod blockimage;
pub mod blockmount;
pub mod capabilities;
pub mod datasetfs;
pub mod fuse;
pub mod kernel;
