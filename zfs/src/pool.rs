//! A pool opened from its devices: the vdev tree, the selected uberblock,
//! the MOS, and the datasets of the DSL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::bp::{BlockPtr, Dva};
use crate::checksum;
use crate::compress;
use crate::dev::{BlockDev, Cache, FileDev};
use crate::dnode::{Objset, OT_DNODE, OT_OBJSET};
use crate::dsl;
use crate::error::{Error, Result, ResultExt};
use crate::fs::Fs;
use crate::label::{self, Uberblock, VdevLabels};
use crate::limits::{CACHE_BYTES, MAX_BLOCK, MAX_GANG_DEPTH, MAX_VDEV_CHILDREN};
use crate::vdev::Vdev;

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

/// The block layer of an open pool: its top-level vdevs and block cache.
pub struct Spa {
    pub name: String,
    tops: Vec<Option<Vdev>>,
    cache: Cache,
}

impl Spa {
    /// The logical bytes of the block `bp` points at: holes as zeros,
    /// embedded payloads, gang blocks, each copy tried until its checksum
    /// verifies; decompressed to the logical size.
    pub fn read_bp(&self, bp: &BlockPtr) -> Result<Arc<[u8]>> {
        if bp.lsize > MAX_BLOCK || bp.psize > MAX_BLOCK {
            return Err(Error::limit(bp.describe(), MAX_BLOCK));
        }
        if bp.is_hole() {
            return Ok(vec![0u8; bp.lsize as usize].into());
        }
        if bp.embedded {
            let p = bp.embedded_payload()?;
            return compress::decompress(bp.compress, &p, bp.lsize as usize)
                .map(Into::into)
                .ctx(|| bp.describe());
        }
        if bp.encrypted && bp.level == 0 && bp.typ != OT_DNODE && bp.typ != OT_OBJSET {
            return Err(Error::Encrypted {
                what: bp.describe(),
            });
        }
        let key = (bp.dva[0].vdev, bp.dva[0].offset, bp.birth);
        if let Some(b) = self.cache.get(&key) {
            return Ok(b);
        }
        let raw = self.read_raw(bp, 0)?;
        let data: Arc<[u8]> = compress::decompress(bp.compress, &raw, bp.lsize as usize)
            .ctx(|| bp.describe())?
            .into();
        self.cache.put(key, data.clone());
        Ok(data)
    }

    /// The verified physical bytes of `bp` (any of its copies).
    fn read_raw(&self, bp: &BlockPtr, depth: u32) -> Result<Vec<u8>> {
        let mut verify = |d: &[u8]| checksum_ok(bp, d);
        let mut err = None;
        let mut tried = 0;
        for dva in bp.copies() {
            tried += 1;
            match self.read_dva(dva, bp, depth, &mut verify) {
                Ok(Some(b)) => return Ok(b),
                Ok(None) => {}
                Err(e) => err = Some(e),
            }
        }
        match err {
            Some(e) if tried == 1 => Err(e.context(bp.describe())),
            _ => Err(Error::Checksum {
                what: bp.describe(),
                copies: tried,
            }),
        }
    }

    fn read_dva(
        &self,
        dva: &Dva,
        bp: &BlockPtr,
        depth: u32,
        verify: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Result<Option<Vec<u8>>> {
        let top = self
            .tops
            .get(dva.vdev as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                Error::corrupt(bp.describe(), format!("no top-level vdev {}", dva.vdev))
            })?;
        if !dva.gang {
            return top.read(dva.offset, bp.psize, verify);
        }
        if depth >= MAX_GANG_DEPTH {
            return Err(Error::limit(
                format!("{}: gang block nesting", bp.describe()),
                MAX_GANG_DEPTH as u64,
            ));
        }
        // A gang header: three block pointers whose data, concatenated,
        // is the block's physical bytes.
        let verifier = [dva.vdev, dva.offset, bp.birth, 0];
        let Some(hdr) = top.read(dva.offset, 512, &mut |h| {
            checksum::verify_embedded(h, verifier)
        })?
        else {
            return Ok(None);
        };
        let mut data = Vec::with_capacity(bp.psize as usize);
        for i in 0..3 {
            let child = BlockPtr::parse(&hdr[i * 128..])?;
            if child.is_hole() || data.len() as u64 >= bp.psize {
                continue;
            }
            data.extend(self.read_raw(&child, depth + 1)?);
        }
        data.truncate(bp.psize as usize);
        Ok(verify(&data).then_some(data))
    }
}

/// Whether `data` matches the checksum of `bp` (true when the algorithm
/// is one this reader does not compute).
fn checksum_ok(bp: &BlockPtr, data: &[u8]) -> bool {
    match checksum::compute(bp.checksum, data) {
        // Encrypted blocks keep a MAC in the last two words.
        Some(c) if bp.encrypted => c[..2] == bp.cksum[..2],
        Some(c) => c == bp.cksum,
        None => true,
    }
}

pub(crate) struct PoolInner {
    pub spa: Spa,
    pub guid: u64,
    pub txg: u64,
    pub uberblocks: Vec<UberblockInfo>,
    pub mos: Objset,
}

/// A pool opened read-only. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Pool {
    pub(crate) inner: Arc<PoolInner>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.spa.name)
            .field("txg", &self.inner.txg)
            .finish()
    }
}

impl Pool {
    /// Opens the pool whose vdevs are on `devices` (all of one pool; a
    /// missing child of a mirror or raidz is tolerated as far as its
    /// redundancy allows).
    pub fn open(devices: &[PathBuf], opts: &OpenOptions) -> Result<Pool> {
        let mut vdevs: Vec<VdevLabels> = Vec::new();
        for p in devices {
            let dev: Arc<dyn BlockDev> = Arc::new(FileDev::open(p)?);
            let v = label::read(dev)?.ok_or_else(|| Error::NotZfs {
                what: p.display().to_string(),
                reason: "no vdev label verifies (at its start or in a GPT partition)".into(),
            })?;
            vdevs.push(v);
        }
        Pool::assemble(vdevs, opts)
    }

    /// Opens a pool from vdevs already read (devices in memory: tests,
    /// fuzzing).
    pub fn assemble(vdevs: Vec<VdevLabels>, opts: &OpenOptions) -> Result<Pool> {
        let first = vdevs
            .first()
            .ok_or_else(|| Error::not_found("pool: no devices"))?;
        let (name, guid) = (first.info.pool_name.clone(), first.info.pool_guid);
        if let Some(o) = vdevs.iter().find(|v| v.info.pool_guid != guid) {
            return Err(Error::corrupt(
                format!("pool {name}"),
                format!(
                    "devices of two pools given ({name} {guid:#x} and {} {:#x})",
                    o.info.pool_name, o.info.pool_guid
                ),
            ));
        }
        // Each top-level vdev as the newest label describing it says.
        let mut trees: BTreeMap<u64, (u64, crate::nvlist::NvList)> = BTreeMap::new();
        let mut children = 1;
        for v in &vdevs {
            children = children.max(v.info.vdev_children);
            if let Some(t) = v.config.list("vdev_tree") {
                let id = t.u64("id").unwrap_or(0);
                if trees.get(&id).is_none_or(|(txg, _)| v.info.txg > *txg) {
                    trees.insert(id, (v.info.txg, t.clone()));
                }
            }
        }
        if children as usize > MAX_VDEV_CHILDREN {
            return Err(Error::limit(
                format!("pool {name}: top-level vdevs"),
                MAX_VDEV_CHILDREN as u64,
            ));
        }
        let find = |g: u64| {
            vdevs
                .iter()
                .find(|v| v.info.vdev_guid == g)
                .map(|v| v.dev.clone())
        };
        let mut tops = Vec::new();
        for id in 0..children {
            tops.push(match trees.get(&id) {
                Some((_, t)) => Some(Vdev::build(t, &find, 0).ctx(|| format!("pool {name}"))?),
                None => None,
            });
        }
        let mut ubs: Vec<Uberblock> = vdevs.iter().flat_map(|v| v.uberblocks.clone()).collect();
        ubs.sort_by(|a, b| b.txg.cmp(&a.txg).then(b.timestamp.cmp(&a.timestamp)));
        ubs.dedup_by(|a, b| a.txg == b.txg);
        let spa = Spa {
            name: name.clone(),
            tops,
            cache: Cache::new(CACHE_BYTES),
        };
        // The newest uberblock whose MOS reads (or the one asked for).
        let mut chosen = None;
        let mut last_err = None;
        for ub in &ubs {
            if opts.txg.is_some_and(|t| t != ub.txg) {
                continue;
            }
            match Objset::read(&spa, &ub.rootbp) {
                Ok(mos) => {
                    chosen = Some((ub.txg, mos));
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let (txg, mos) = match (chosen, last_err) {
            (Some(c), _) => c,
            (None, Some(e)) => return Err(e.context(format!("pool {name}: MOS"))),
            (None, None) => {
                return Err(Error::not_found(match opts.txg {
                    Some(t) => format!("pool {name}: uberblock of txg {t}"),
                    None => format!("pool {name}: uberblock"),
                }))
            }
        };
        let uberblocks = ubs
            .iter()
            .map(|u| UberblockInfo {
                txg: u.txg,
                timestamp: u.timestamp,
                guid_sum: u.guid_sum,
                active: u.txg == txg,
            })
            .collect();
        Ok(Pool {
            inner: Arc::new(PoolInner {
                spa,
                guid,
                txg,
                uberblocks,
                mos,
            }),
        })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.spa.name
    }

    /// The pool's guid.
    pub fn guid(&self) -> u64 {
        self.inner.guid
    }

    /// The txg of the uberblock the pool was opened at.
    pub fn txg(&self) -> u64 {
        self.inner.txg
    }

    /// Every valid uberblock of the labels, newest first (one per txg).
    pub fn uberblocks(&self) -> Vec<UberblockInfo> {
        self.inner.uberblocks.clone()
    }

    /// Guids of leaf vdevs whose device was not given.
    pub fn missing_devices(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for t in self.inner.spa.tops.iter().flatten() {
            t.missing(&mut out);
        }
        out
    }

    /// Every dataset, snapshot and volume, sorted by name.
    pub fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        dsl::datasets(&self.inner).ctx(|| format!("pool {}", self.name()))
    }

    /// The filesystem view of the filesystem or snapshot `name`
    /// ("pool/fs", "pool/fs@snap"). An encrypted dataset is
    /// [`Error::Encrypted`].
    pub fn open_fs(&self, name: &str) -> Result<Fs> {
        let ds = self
            .datasets()?
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| Error::not_found(format!("dataset {name}")))?;
        Fs::open(self.clone(), ds)
    }
}
