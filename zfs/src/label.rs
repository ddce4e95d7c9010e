//! Vdev labels (four per vdev: two at its start, two at its end; the vdev
//! is the whole device or a GPT partition of it), their nvlists, and the
//! uberblock rings.

use std::path::Path;
use std::sync::Arc;

use crate::bp::BlockPtr;
use crate::checksum::verify_embedded;
use crate::dev::{BlockDev, FileDev, Window};
use crate::error::{Error, Result};
use crate::limits::MAX_UBERBLOCKS;
use crate::nvlist::{self, NvList};

/// Size of one label.
pub const LABEL_SIZE: u64 = 256 << 10;
/// Where a vdev's allocatable space starts (two labels and the boot area).
pub const VDEV_START: u64 = 4 << 20;
const NVLIST_OFF: u64 = 16 << 10;
const NVLIST_SIZE: usize = 112 << 10;
const RING_OFF: u64 = 128 << 10;
const RING_SIZE: u64 = 128 << 10;
const UB_MAGIC: u64 = 0x00ba_b10c;

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

/// An uberblock of a ring.
#[derive(Debug, Clone)]
pub struct Uberblock {
    pub txg: u64,
    pub guid_sum: u64,
    pub timestamp: u64,
    pub rootbp: BlockPtr,
}

/// A device's vdev: where it lies, its newest label's nvlist, its
/// uberblocks.
pub struct VdevLabels {
    pub info: LabelInfo,
    pub config: NvList,
    /// The vdev's bytes (a window of the device).
    pub dev: Arc<dyn BlockDev>,
    /// The device holding it: its name (path) and size.
    pub device: (String, u64),
    pub uberblocks: Vec<Uberblock>,
    /// Which of the four labels verified.
    pub valid: [bool; 4],
}

/// Sniffs `path` for a ZFS vdev label (at its start or in a GPT
/// partition): `Ok(None)` when there is none.
pub fn probe(path: &Path) -> Result<Option<LabelInfo>> {
    let dev: Arc<dyn BlockDev> = Arc::new(FileDev::open(path)?);
    Ok(read(dev)?.map(|v| v.info))
}

/// The vdev on `dev` (whole device first, then each GPT partition), if
/// any label of it verifies.
pub fn read(dev: Arc<dyn BlockDev>) -> Result<Option<VdevLabels>> {
    let mut spans = vec![(0, dev.len())];
    spans.extend(gpt_partitions(dev.as_ref()));
    for (start, len) in spans {
        let win: Arc<dyn BlockDev> = Arc::new(Window {
            dev: dev.clone(),
            start,
            len,
        });
        if let Some(mut v) = read_vdev(win, start)? {
            v.device = (dev.name(), dev.len());
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Partitions (start, length in bytes) of a GPT with 512- or 4096-byte
/// sectors; empty when there is none.
pub fn gpt_partitions(dev: &dyn BlockDev) -> Vec<(u64, u64)> {
    for sector in [512u64, 4096] {
        let mut h = [0u8; 92];
        if dev.read_at(sector, &mut h).is_err() || &h[..8] != b"EFI PART" {
            continue;
        }
        let le64 = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap_or([0; 8]));
        let le32 = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().unwrap_or([0; 4]));
        let (table, n, size) = (le64(72), le32(80).min(256), le32(84) as u64);
        if !(128..=4096).contains(&size) {
            continue;
        }
        let mut parts = Vec::new();
        for i in 0..n as u64 {
            let mut e = [0u8; 48];
            let Some(off) = table
                .checked_mul(sector)
                .and_then(|t| t.checked_add(i * size))
            else {
                break;
            };
            if dev.read_at(off, &mut e).is_err() {
                break;
            }
            if e[..16].iter().all(|&b| b == 0) {
                continue;
            }
            let first = u64::from_le_bytes(e[32..40].try_into().unwrap_or([0; 8]));
            let last = u64::from_le_bytes(e[40..48].try_into().unwrap_or([0; 8]));
            let (Some(s), Some(end)) = (
                first.checked_mul(sector),
                last.checked_add(1).and_then(|l| l.checked_mul(sector)),
            ) else {
                continue;
            };
            // A partition running past the end (a truncated image) is
            // read as far as the image goes.
            let end = end.min(dev.len());
            if s < end {
                parts.push((s, end - s));
            }
        }
        return parts;
    }
    Vec::new()
}

/// Offsets of the four labels in a vdev of `len` bytes.
pub fn label_offsets(len: u64) -> [u64; 4] {
    let end = len / LABEL_SIZE * LABEL_SIZE;
    [
        0,
        LABEL_SIZE,
        end.saturating_sub(2 * LABEL_SIZE),
        end.saturating_sub(LABEL_SIZE),
    ]
}

fn read_vdev(dev: Arc<dyn BlockDev>, start: u64) -> Result<Option<VdevLabels>> {
    if dev.len() < 4 * LABEL_SIZE + VDEV_START {
        return Ok(None);
    }
    let mut best: Option<(NvList, u64)> = None;
    let mut valid = [false; 4];
    let mut ubs: Vec<Uberblock> = Vec::new();
    let offsets = label_offsets(dev.len());
    let mut nvs = Vec::new();
    for (i, &lo) in offsets.iter().enumerate() {
        let mut buf = vec![0u8; NVLIST_SIZE];
        if dev.read_at(lo + NVLIST_OFF, &mut buf).is_err() {
            continue;
        }
        if !verify_embedded(&buf, [lo + NVLIST_OFF, 0, 0, 0]) {
            continue;
        }
        let Ok(nv) = nvlist::unpack(&buf[..NVLIST_SIZE - 40]) else {
            continue;
        };
        if nv.u64("pool_guid").is_none() {
            continue;
        }
        valid[i] = true;
        let txg = nv.u64("txg").unwrap_or(0);
        if best.as_ref().is_none_or(|(_, t)| txg > *t) {
            best = Some((nv.clone(), txg));
        }
        nvs.push((lo, nv));
    }
    let Some((config, txg)) = best else {
        return Ok(None);
    };
    let ashift = config
        .list("vdev_tree")
        .and_then(|t| t.u64("ashift"))
        .unwrap_or(9);
    let slot_shift = ashift.clamp(10, 13);
    for (i, &lo) in offsets.iter().enumerate() {
        if !valid[i] {
            continue;
        }
        ubs.extend(read_ring(dev.as_ref(), lo, slot_shift));
    }
    ubs.sort_by(|a, b| b.txg.cmp(&a.txg).then(b.timestamp.cmp(&a.timestamp)));
    ubs.dedup_by(|a, b| a.txg == b.txg && a.rootbp == b.rootbp);
    ubs.truncate(MAX_UBERBLOCKS);
    let tree = config.list("vdev_tree");
    let info = LabelInfo {
        pool_name: config.str("name").unwrap_or_default(),
        pool_guid: config.u64("pool_guid").unwrap_or(0),
        vdev_guid: config.u64("guid").unwrap_or(0),
        top_guid: config.u64("top_guid").unwrap_or(0),
        txg,
        state: config.u64("state").unwrap_or(0),
        vdev_children: config.u64("vdev_children").unwrap_or(1),
        vdev_offset: start,
        vdev_size: dev.len(),
        top_type: tree.and_then(|t| t.str("type")).unwrap_or_default(),
    };
    Ok(Some(VdevLabels {
        info,
        config,
        device: (dev.name(), dev.len()),
        dev,
        uberblocks: ubs,
        valid,
    }))
}

/// The verified uberblocks of the ring of the label at `lo`.
fn read_ring(dev: &dyn BlockDev, lo: u64, slot_shift: u64) -> Vec<Uberblock> {
    let mut ring = vec![0u8; RING_SIZE as usize];
    if dev.read_at(lo + RING_OFF, &mut ring).is_err() {
        return Vec::new();
    }
    let slot = 1usize << slot_shift;
    ring.chunks_exact(slot)
        .enumerate()
        .filter_map(|(n, s)| {
            let off = lo + RING_OFF + (n * slot) as u64;
            if !verify_embedded(s, [off, 0, 0, 0]) {
                return None;
            }
            parse_uberblock(s).ok()
        })
        .collect()
}

/// Decodes one uberblock slot (little-endian pools).
pub fn parse_uberblock(s: &[u8]) -> Result<Uberblock> {
    let w = |i: usize| {
        s.get(i * 8..i * 8 + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .unwrap_or(0)
    };
    if w(0) != UB_MAGIC {
        if w(0) == UB_MAGIC.swap_bytes() {
            return Err(Error::unsupported("uberblock", "big-endian pool"));
        }
        return Err(Error::corrupt("uberblock", "no magic"));
    }
    Ok(Uberblock {
        txg: w(2),
        guid_sum: w(3),
        timestamp: w(4),
        rootbp: BlockPtr::parse(s.get(40..168).unwrap_or(&[]))?,
    })
}
