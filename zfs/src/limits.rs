//! Every bound the reader puts on what a device says, in one place.

/// Largest logical or physical block (OpenZFS allows 16 MiB).
pub const MAX_BLOCK: u64 = 16 << 20;
/// Most levels of an object's indirect tree (64-bit block ids with 128-byte
/// pointers in 512-byte indirect blocks need fewer than 10).
pub const MAX_LEVELS: u8 = 10;
/// Deepest gang block nesting.
pub const MAX_GANG_DEPTH: u32 = 4;
/// Largest packed nvlist (a label's is 112 KiB; an xattr nvlist a few
/// MiB at most).
pub const MAX_NVLIST: usize = 4 << 20;
/// Deepest nvlist nesting.
pub const MAX_NVLIST_DEPTH: u32 = 16;
/// Most pairs in one nvlist, and elements of one array.
pub const MAX_NVLIST_PAIRS: usize = 65_536;
/// Most blocks of one ZAP object.
pub const MAX_ZAP_BLOCKS: u64 = 1 << 20;
/// Most entries of one ZAP object.
pub const MAX_ZAP_ENTRIES: usize = 4 << 20;
/// Longest chunk chain of a fat-ZAP array (a name or value).
pub const MAX_ZAP_CHAIN: usize = 1 << 16;
/// Most top-level vdevs and children of one vdev.
pub const MAX_VDEV_CHILDREN: usize = 1024;
/// Most datasets (filesystems, snapshots, volumes) of a pool.
pub const MAX_DATASETS: usize = 1 << 20;
/// Deepest dataset nesting ("pool/a/b/…").
pub const MAX_DATASET_DEPTH: usize = 64;
/// Bytes of decompressed blocks the cache of a pool holds.
pub const CACHE_BYTES: usize = 64 << 20;
/// Largest extended attribute value read.
pub const MAX_XATTR: u64 = 64 << 20;
/// Most extended attributes of one object (xattr=dir).
pub const MAX_XATTRS: usize = 65_536;
/// Longest symlink target.
pub const MAX_SYMLINK: u64 = 1 << 20;
/// Most uberblocks listed per pool.
pub const MAX_UBERBLOCKS: usize = 1024;
/// Most objects `Fs::changed_since` lists.
pub const MAX_CHANGED: u64 = 1 << 26;
