//! Vdev labels (four per device, also inside a GPT partition), their
//! nvlists, and the uberblock rings.

use std::path::Path;

use crate::error::Result;

/// What a device's vdev label says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelInfo {
    pub pool_name: String,
    pub pool_guid: u64,
    /// This leaf vdev's guid.
    pub vdev_guid: u64,
    /// Its top-level vdev's guid.
    pub top_guid: u64,
    /// The label's txg.
    pub txg: u64,
    /// Pool state: 0 active, 1 exported, 2 destroyed, …
    pub state: u64,
    /// Number of top-level vdevs of the pool.
    pub vdev_children: u64,
    /// Byte offset of the vdev in the device (1 MiB for a whole-disk pool's
    /// GPT partition 1).
    pub vdev_offset: u64,
    /// Size of the vdev in bytes.
    pub vdev_size: u64,
    /// Type of its top-level vdev ("disk", "mirror", "raidz", …).
    pub top_type: String,
}

/// Sniffs `path` for a ZFS vdev label (at its start or in a GPT
/// partition): `Ok(None)` when there is none.
pub fn probe(path: &Path) -> Result<Option<LabelInfo>> {
    let _ = path;
    Ok(None)
}
