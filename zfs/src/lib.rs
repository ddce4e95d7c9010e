//! A read-only reader of ZFS pools in userspace, straight from the disk
//! images (or block devices) of their vdevs: no kernel module, no libzfs,
//! no write path (no function here takes a device mutably).
//!
//! [`probe`] sniffs a device's vdev label; [`Pool::open`] assembles a pool
//! from its devices (single disks, mirrors, raidz1/2/3, several top-level
//! vdevs), selects the active uberblock (or an older one on request) and
//! lists its datasets, snapshots and clones with their properties
//! ([`Pool::datasets`]); [`Pool::open_fs`] gives the POSIX view of a
//! filesystem or snapshot ([`Fs`]), whose object numbers are inode numbers.
//!
//! Everything read from a device is hostile: every size, count, depth and
//! chain is bounded ([`limits`]), every block is checksum-verified where the
//! algorithm is known (other copies are tried on a mismatch), and errors
//! name the pool, dataset, object and block they concern.
//!
//! Modules follow the on-disk layers: [`dev`] (devices, block cache),
//! [`nvlist`], [`label`] (labels, uberblocks, GPT), [`vdev`], [`bp`] (block
//! pointers), [`spa`] (blocks read and verified), [`compress`],
//! [`checksum`], [`dnode`], [`zap`], [`dsl`], [`zpl`] (system attributes),
//! [`pool`], [`fs`].
#![forbid(unsafe_code)]

pub mod bp;
pub mod checksum;
pub mod compress;
pub mod dev;
pub mod dnode;
pub mod dsl;
mod error;
pub mod fs;
pub mod label;
pub mod limits;
pub mod nvlist;
pub mod pool;
pub mod spa;
pub mod vdev;
pub mod zap;
pub mod zpl;

pub use error::{Error, Result};
pub use fs::{DirEntry, FileKind, Fs, Timespec, ZStat};
pub use label::{probe, LabelInfo};
pub use pool::{DatasetInfo, DatasetKind, Device, DeviceInfo, OpenOptions, Pool, UberblockInfo};
