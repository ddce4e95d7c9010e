//! A pool opened from its devices: the vdev tree, the selected uberblock,
//! the MOS, and the datasets of the DSL.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::fs::Fs;

/// One vdev image: a regular file or a block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// How to open a pool.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Open the pool as of this txg (one of [`Pool::uberblocks`]) instead of
    /// the newest uberblock whose MOS verifies.
    pub txg: Option<u64>,
}

/// An uberblock found in the labels' rings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UberblockInfo {
    pub txg: u64,
    /// Seconds since the epoch when it was written.
    pub timestamp: u64,
    pub guid_sum: u64,
    /// Whether the pool was opened at this one.
    pub active: bool,
}

/// What a dataset is, as `zfs list -t all` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DatasetKind {
    Filesystem,
    Snapshot,
    Volume,
}

impl DatasetKind {
    /// `zfs list`'s word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetKind::Filesystem => "filesystem",
            DatasetKind::Snapshot => "snapshot",
            DatasetKind::Volume => "volume",
        }
    }
}

/// A dataset of the pool: what `zfs list -t all -o name,type,origin,guid,
/// createtxg,objsetid,mountpoint,compression,creation` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInfo {
    /// "pool/fs", "pool/fs@snap".
    pub name: String,
    pub kind: DatasetKind,
    /// The origin snapshot of a clone ("pool/fs@snap").
    pub origin: Option<String>,
    pub guid: u64,
    pub createtxg: u64,
    /// The dataset's object number in the MOS.
    pub objsetid: u64,
    /// The effective mountpoint (inherited, "legacy", "none"); `None` for
    /// snapshots and volumes.
    pub mountpoint: Option<String>,
    /// The effective compression property ("lz4", "zstd-19", "on", …);
    /// `None` for snapshots.
    pub compression: Option<String>,
    /// The effective xattr property ("on", "sa", "dir", "off"); `None` for
    /// volumes.
    pub xattr: Option<String>,
    /// Whether the dataset is encrypted (its files cannot be read).
    pub encrypted: bool,
    /// Creation time, seconds since the epoch.
    pub creation: u64,
}

/// A pool opened read-only. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<()>,
    name: String,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool").field("name", &self.name).finish()
    }
}

impl Pool {
    /// Opens the pool whose vdevs are on `devices` (all of one pool; a
    /// missing child of a mirror or raidz is tolerated as far as its
    /// redundancy allows).
    pub fn open(devices: &[PathBuf], opts: &OpenOptions) -> Result<Pool> {
        let _ = (devices, opts);
        Err(Error::unsupported("Pool::open", "not implemented yet"))
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pool's guid.
    pub fn guid(&self) -> u64 {
        let _ = &self.inner;
        0
    }

    /// The txg of the uberblock the pool was opened at.
    pub fn txg(&self) -> u64 {
        0
    }

    /// Every valid uberblock of the labels, newest first (one per txg).
    pub fn uberblocks(&self) -> Vec<UberblockInfo> {
        Vec::new()
    }

    /// Every dataset, snapshot and volume, sorted by name.
    pub fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        Err(Error::unsupported("Pool::datasets", "not implemented yet"))
    }

    /// The filesystem view of the filesystem or snapshot `name`
    /// ("pool/fs", "pool/fs@snap"). An encrypted dataset is
    /// [`Error::Encrypted`].
    pub fn open_fs(&self, name: &str) -> Result<Fs> {
        Err(Error::unsupported(
            format!("dataset {name}"),
            "not implemented yet",
        ))
    }
}
