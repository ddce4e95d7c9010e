//! A userspace reader of device-mapper thin-pool metadata: the kernel's
//! persistent-data format (drivers/md/dm-thin-metadata.c, persistent-data/),
//! read without device-mapper (storage-formats.md section 7).
//!
//! Block 0 holds the superblock; two b-trees hang from it: the device
//! details tree (device id → mapped blocks, transaction, times) and the
//! two-level data mapping tree (device id → root of the device's own tree,
//! virtual block → `(data block << 24) | time`). Every block read is
//! checked: its crc32c with the salt of its type, the block number it
//! claims, its header's bounds, and its keys' order and range. A tree walk
//! refuses to meet a node twice (a cycle, or a node shared inside one
//! tree), to go deeper than [`MAX_DEPTH`], and to follow a block number
//! past the end of the metadata; mapped data blocks must lie inside the
//! pool. Nothing here panics on hostile input.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use crate::crc32c::dm_checksum;

/// Size of a metadata block (`THIN_METADATA_BLOCK_SIZE`).
pub const BLOCK_SIZE: usize = 4096;
/// `THIN_SUPERBLOCK_MAGIC`.
pub const MAGIC: u64 = 27_022_010;
/// Salts of the block checksums, per block type.
pub const SUPERBLOCK_CSUM_XOR: u32 = 160_774;
pub const BTREE_CSUM_XOR: u32 = 121_107;
/// Node flags.
const INTERNAL_NODE: u32 = 1;
const LEAF_NODE: u32 = 2;
/// Size of a b-tree node header.
const NODE_HEADER: usize = 32;
/// Deepest b-tree accepted: a real one of 4 KiB nodes is a handful deep.
pub const MAX_DEPTH: usize = 32;
/// Size of a device details value.
const DETAILS_SIZE: usize = 24;
/// Size of a data mapping value and of a top-level tree value.
const U64_SIZE: usize = 8;
/// Bits of a mapping value that hold the time.
const TIME_BITS: u32 = 24;

/// What is wrong with the metadata, naming the block when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinError {
    pub block: Option<u64>,
    pub message: String,
}

impl ThinError {
    fn at(block: u64, message: impl Into<String>) -> ThinError {
        ThinError {
            block: Some(block),
            message: message.into(),
        }
    }

    fn new(message: impl Into<String>) -> ThinError {
        ThinError {
            block: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ThinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.block {
            Some(b) => write!(f, "metadata block {b}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ThinError {}

pub type Result<T, E = ThinError> = std::result::Result<T, E>;

/// How to read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Read on past bad checksums, recording each in the warnings.
    pub ignore_checksums: bool,
}

/// A space map root (`disk_sm_root`): only the counts matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpaceMapRoot {
    pub nr_blocks: u64,
    pub nr_allocated: u64,
}

/// The pool's superblock (`thin_disk_superblock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    pub flags: u32,
    pub uuid: [u8; 16],
    pub version: u32,
    pub time: u32,
    pub transaction_id: u64,
    /// Root of a metadata snapshot (`held_root`), 0 if none.
    pub metadata_snap: u64,
    pub data_space_map: SpaceMapRoot,
    pub metadata_space_map: SpaceMapRoot,
    pub data_mapping_root: u64,
    pub device_details_root: u64,
    /// In 512-byte sectors.
    pub data_block_size: u32,
    /// In 512-byte sectors (always 8).
    pub metadata_block_size: u32,
    pub metadata_nr_blocks: u64,
    pub compat_flags: u32,
    pub compat_ro_flags: u32,
    pub incompat_flags: u32,
}

impl Superblock {
    /// Bytes per data block.
    pub fn data_block_bytes(&self) -> u64 {
        u64::from(self.data_block_size) * 512
    }
}

/// One thin device's details (`disk_device_details`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceDetails {
    pub dev_id: u64,
    pub mapped_blocks: u64,
    /// The pool transaction that created it.
    pub transaction_id: u64,
    pub creation_time: u32,
    pub snapshotted_time: u32,
}

/// Consecutive virtual blocks mapped to consecutive data blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// First virtual block of the device.
    pub virt: u64,
    /// First data block of the pool.
    pub data: u64,
    /// Blocks.
    pub len: u64,
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn space_map_root(b: &[u8], at: usize) -> SpaceMapRoot {
    SpaceMapRoot {
        nr_blocks: le64(b, at),
        nr_allocated: le64(b, at + 8),
    }
}

type Block = Box<[u8; BLOCK_SIZE]>;

/// A checked b-tree node.
struct Node {
    buf: Block,
    leaf: bool,
    nr_entries: usize,
    max_entries: usize,
    value_size: usize,
}

impl Node {
    fn key(&self, i: usize) -> u64 {
        le64(&self.buf[..], NODE_HEADER + 8 * i)
    }

    fn value(&self, i: usize) -> &[u8] {
        let at = NODE_HEADER + 8 * self.max_entries + self.value_size * i;
        &self.buf[at..at + self.value_size]
    }
}

/// An open thin-pool metadata file (or device).
#[derive(Debug)]
pub struct Pool {
    file: File,
    /// Blocks in the metadata file.
    nr_blocks: u64,
    sb: Superblock,
    opts: Options,
    warnings: RefCell<Vec<String>>,
}

impl Pool {
    /// Opens the metadata in `file`: reads and checks the superblock.
    pub fn open(mut file: File, opts: Options) -> Result<Pool> {
        let len = file
            .seek(SeekFrom::End(0))
            .map_err(|e| ThinError::new(format!("cannot size the metadata: {e}")))?;
        if len < BLOCK_SIZE as u64 {
            return Err(ThinError::new(format!(
                "the metadata is {len} bytes long, shorter than its superblock ({BLOCK_SIZE} bytes): truncated or not thin-pool metadata"
            )));
        }
        let mut pool = Pool {
            file,
            nr_blocks: len / BLOCK_SIZE as u64,
            sb: Superblock {
                flags: 0,
                uuid: [0; 16],
                version: 0,
                time: 0,
                transaction_id: 0,
                metadata_snap: 0,
                data_space_map: SpaceMapRoot::default(),
                metadata_space_map: SpaceMapRoot::default(),
                data_mapping_root: 0,
                device_details_root: 0,
                data_block_size: 0,
                metadata_block_size: 0,
                metadata_nr_blocks: 0,
                compat_flags: 0,
                compat_ro_flags: 0,
                incompat_flags: 0,
            },
            opts,
            warnings: RefCell::new(Vec::new()),
        };
        pool.sb = pool.read_superblock()?;
        Ok(pool)
    }

    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// Blocks in the metadata file.
    pub fn metadata_blocks(&self) -> u64 {
        self.nr_blocks
    }

    /// Problems read past (with `ignore_checksums`), in the order met.
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.borrow().clone()
    }

    fn warn(&self, w: String) {
        let mut ws = self.warnings.borrow_mut();
        // Bounded: a thoroughly broken file must not fill the memory.
        if ws.len() < 1000 && !ws.contains(&w) {
            ws.push(w);
        }
    }

    fn read_block(&self, block: u64) -> Result<Block> {
        if block >= self.nr_blocks {
            return Err(ThinError::at(
                block,
                format!(
                    "lies past the end of the metadata ({} blocks): a bad block number, or a truncated file",
                    self.nr_blocks
                ),
            ));
        }
        let mut buf: Block = Box::new([0u8; BLOCK_SIZE]);
        self.file
            .read_exact_at(&mut buf[..], block * BLOCK_SIZE as u64)
            .map_err(|e| ThinError::at(block, format!("cannot read: {e}")))?;
        Ok(buf)
    }

    fn check_sum(&self, block: u64, buf: &[u8], salt: u32, what: &str) -> Result<()> {
        let stored = le32(buf, 0);
        let computed = dm_checksum(&buf[4..], salt);
        if stored == computed {
            return Ok(());
        }
        let message = format!(
            "bad checksum of the {what} (stored {stored:#010x}, computed {computed:#010x})"
        );
        if self.opts.ignore_checksums {
            self.warn(format!("metadata block {block}: {message}, ignored"));
            Ok(())
        } else {
            Err(ThinError::at(
                block,
                format!("{message}; --ignore-checksums reads on regardless"),
            ))
        }
    }

    fn read_superblock(&self) -> Result<Superblock> {
        let b = self.read_block(0)?;
        let magic = le64(&b[..], 32);
        if magic != MAGIC {
            return Err(ThinError::at(
                0,
                format!("not thin-pool metadata (magic {magic}, expected {MAGIC})"),
            ));
        }
        self.check_sum(0, &b[..], SUPERBLOCK_CSUM_XOR, "superblock")?;
        let blocknr = le64(&b[..], 8);
        if blocknr != 0 {
            return Err(ThinError::at(
                0,
                format!("the superblock says it is block {blocknr}"),
            ));
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[16..32]);
        let sb = Superblock {
            flags: le32(&b[..], 4),
            uuid,
            version: le32(&b[..], 40),
            time: le32(&b[..], 44),
            transaction_id: le64(&b[..], 48),
            metadata_snap: le64(&b[..], 56),
            data_space_map: space_map_root(&b[..], 64),
            metadata_space_map: space_map_root(&b[..], 192),
            data_mapping_root: le64(&b[..], 320),
            device_details_root: le64(&b[..], 328),
            data_block_size: le32(&b[..], 336),
            metadata_block_size: le32(&b[..], 340),
            metadata_nr_blocks: le64(&b[..], 344),
            compat_flags: le32(&b[..], 352),
            compat_ro_flags: le32(&b[..], 356),
            incompat_flags: le32(&b[..], 360),
        };
        if !(1..=2).contains(&sb.version) {
            return Err(ThinError::at(
                0,
                format!(
                    "metadata version {} (this reader knows versions 1 and 2)",
                    sb.version
                ),
            ));
        }
        // The kernel takes 64 KiB to 1 GiB in multiples of 64 KiB; older
        // pools and tools allowed smaller multiples of 4 KiB.
        if sb.data_block_size < 8 || sb.data_block_size & 7 != 0 || sb.data_block_size > 1 << 21 {
            return Err(ThinError::at(
                0,
                format!(
                    "a data block size of {} sectors is not a multiple of 4 KiB up to 1 GiB",
                    sb.data_block_size
                ),
            ));
        }
        if sb.metadata_block_size != 0 && sb.metadata_block_size != 8 {
            return Err(ThinError::at(
                0,
                format!(
                    "a metadata block size of {} sectors (only 8 is defined)",
                    sb.metadata_block_size
                ),
            ));
        }
        Ok(sb)
    }

    /// Reads and checks the node at `block`, a leaf holding values of `value_size` bytes.
    fn read_node(&self, block: u64, value_size: usize, what: &str) -> Result<Node> {
        let buf = self.read_block(block)?;
        self.check_sum(block, &buf[..], BTREE_CSUM_XOR, what)?;
        let flags = le32(&buf[..], 4);
        let blocknr = le64(&buf[..], 8);
        let nr_entries = le32(&buf[..], 16) as usize;
        let max_entries = le32(&buf[..], 20) as usize;
        let stored_value_size = le32(&buf[..], 24) as usize;
        if blocknr != block {
            return Err(ThinError::at(
                block,
                format!("the {what} node says it is block {blocknr}"),
            ));
        }
        let leaf = match flags & (INTERNAL_NODE | LEAF_NODE) {
            INTERNAL_NODE => false,
            LEAF_NODE => true,
            _ => {
                return Err(ThinError::at(
                    block,
                    format!("not a b-tree node of the {what} (flags {flags:#x})"),
                ))
            }
        };
        let want = if leaf { value_size } else { U64_SIZE };
        if stored_value_size != want {
            return Err(ThinError::at(
                block,
                format!(
                    "a {} of the {what} with {stored_value_size}-byte values (expected {want})",
                    if leaf { "leaf" } else { "internal node" }
                ),
            ));
        }
        let fits = max_entries
            .checked_mul(U64_SIZE + want)
            .and_then(|n| n.checked_add(NODE_HEADER))
            .is_some_and(|n| n <= BLOCK_SIZE);
        if !fits || nr_entries > max_entries {
            return Err(ThinError::at(
                block,
                format!(
                    "a node of the {what} claims {nr_entries} of {max_entries} entries, more than a block holds"
                ),
            ));
        }
        Ok(Node {
            buf,
            leaf,
            nr_entries,
            max_entries,
            value_size: want,
        })
    }

    /// Visits every (key, value) of the b-tree at `root` in key order.
    fn walk(
        &self,
        root: u64,
        value_size: usize,
        what: &str,
        visit: &mut dyn FnMut(u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut seen = HashSet::new();
        // (block, depth, lowest key allowed, first key not allowed)
        let mut pending = vec![(root, 0usize, 0u64, None::<u64>)];
        while let Some((block, depth, lo, hi)) = pending.pop() {
            if depth > MAX_DEPTH {
                return Err(ThinError::at(
                    block,
                    format!("the {what} is deeper than {MAX_DEPTH} levels"),
                ));
            }
            if !seen.insert(block) {
                return Err(ThinError::at(
                    block,
                    format!("reached twice while walking the {what}: the tree has a cycle"),
                ));
            }
            let node = self.read_node(block, value_size, what)?;
            let mut prev: Option<u64> = None;
            for i in 0..node.nr_entries {
                let k = node.key(i);
                if prev.is_some_and(|p| k <= p) {
                    return Err(ThinError::at(
                        block,
                        format!("the keys of a {what} node are not in ascending order"),
                    ));
                }
                if k < lo || hi.is_some_and(|h| k >= h) {
                    return Err(ThinError::at(
                        block,
                        format!(
                            "key {k} of a {what} node lies outside the range its parent gives it"
                        ),
                    ));
                }
                prev = Some(k);
            }
            if node.leaf {
                for i in 0..node.nr_entries {
                    visit(node.key(i), node.value(i))?;
                }
            } else {
                for i in (0..node.nr_entries).rev() {
                    let child = le64(node.value(i), 0);
                    let child_hi = if i + 1 < node.nr_entries {
                        Some(node.key(i + 1))
                    } else {
                        hi
                    };
                    pending.push((child, depth + 1, node.key(i), child_hi));
                }
            }
        }
        Ok(())
    }

    /// Every thin device's details, by device id.
    pub fn devices(&self) -> Result<Vec<DeviceDetails>> {
        let mut out = Vec::new();
        self.walk(
            self.sb.device_details_root,
            DETAILS_SIZE,
            "device details tree",
            &mut |k, v| {
                out.push(DeviceDetails {
                    dev_id: k,
                    mapped_blocks: le64(v, 0),
                    transaction_id: le64(v, 8),
                    creation_time: le32(v, 16),
                    snapshotted_time: le32(v, 20),
                });
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// The root of each device's mapping tree, by device id.
    pub fn mapping_roots(&self) -> Result<BTreeMap<u64, u64>> {
        let mut out = BTreeMap::new();
        self.walk(
            self.sb.data_mapping_root,
            U64_SIZE,
            "top level of the data mapping tree",
            &mut |k, v| {
                out.insert(k, le64(v, 0));
                Ok(())
            },
        )?;
        Ok(out)
    }

    /// Visits the mappings of the device whose mapping tree is at `root`,
    /// in virtual block order: (virtual block, data block, time).
    pub fn for_each_mapping(
        &self,
        dev_id: u64,
        root: u64,
        f: &mut dyn FnMut(u64, u64, u32) -> Result<()>,
    ) -> Result<()> {
        let data_blocks = self.sb.data_space_map.nr_blocks;
        let what = format!("data mapping tree of thin device {dev_id}");
        self.walk(root, U64_SIZE, &what, &mut |virt, v| {
            let raw = le64(v, 0);
            let data = raw >> TIME_BITS;
            let time = (raw & ((1 << TIME_BITS) - 1)) as u32;
            if data >= data_blocks {
                return Err(ThinError::new(format!(
                    "thin device {dev_id} maps virtual block {virt} to data block {data}, past the end of the pool's data ({data_blocks} blocks)"
                )));
            }
            f(virt, data, time)
        })
    }

    /// The mappings of device `dev_id` as runs, in virtual block order.
    pub fn runs(&self, dev_id: u64) -> Result<Vec<Run>> {
        let roots = self.mapping_roots()?;
        let root = *roots.get(&dev_id).ok_or_else(|| {
            ThinError::new(format!(
                "thin device {dev_id} is not in the pool (it was deleted, or the metadata is of another pool)"
            ))
        })?;
        self.device_runs(dev_id, root)
    }

    /// The mappings of the device whose tree is at `root`, as runs.
    pub fn device_runs(&self, dev_id: u64, root: u64) -> Result<Vec<Run>> {
        let mut runs: Vec<Run> = Vec::new();
        self.for_each_mapping(dev_id, root, &mut |virt, data, _time| {
            match runs.last_mut() {
                Some(r)
                    if r.virt.checked_add(r.len) == Some(virt)
                        && r.data.checked_add(r.len) == Some(data) =>
                {
                    r.len += 1
                }
                _ => runs.push(Run { virt, data, len: 1 }),
            }
            Ok(())
        })?;
        Ok(runs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_metadata() {
        let f = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
        f.write_all_at(&[0u8; 100], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let e = Pool::open(f, Options::default()).expect_err("too short");
        assert!(e.message.contains("shorter"), "{e}");
        let f = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
        f.write_all_at(&[0u8; 8192], 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let e = Pool::open(f, Options::default()).expect_err("no magic");
        assert!(e.to_string().contains("not thin-pool metadata"), "{e}");
    }
}
