//! A pool opened from its devices: the vdev tree, the selected uberblock,
//! the MOS, and the datasets of the DSL.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::dev::{BlockDev, Cache, FileDev};
use crate::dnode::Objset;
use crate::dsl;
use crate::error::{Error, Result, ResultExt};
use crate::fs::Fs;
use crate::label::{self, Uberblock, VdevLabels};
use crate::limits::{CACHE_BYTES, MAX_VDEV_CHILDREN};
pub use crate::spa::Spa;
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

/// A device of the pool and what its labels say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    pub device: Device,
    pub label: crate::label::LabelInfo,
    /// Which of its four labels verified (a divergence is a finding).
    pub labels_valid: [bool; 4],
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
    /// Bytes referenced (`zfs get referenced`).
    pub referenced: u64,
    /// Bytes used (`zfs get used`): a filesystem's with its descendants
    /// and snapshots, a snapshot's unique bytes.
    pub used: u64,
}

pub(crate) struct PoolInner {
    pub spa: Spa,
    pub features: Vec<String>,
    pub devices: Vec<DeviceInfo>,
    pub guid: u64,
    pub txg: u64,
    pub uberblocks: Vec<UberblockInfo>,
    pub mos: Objset,
    /// The datasets, walked once (the pool is read at one txg).
    pub datasets: std::sync::OnceLock<Vec<DatasetInfo>>,
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
            unverified: AtomicU64::new(0),
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
        let devices = vdevs
            .iter()
            .map(|v| DeviceInfo {
                device: Device {
                    path: PathBuf::from(&v.device.0),
                    bytes: v.device.1,
                },
                label: v.info.clone(),
                labels_valid: v.valid,
            })
            .collect();
        let features = vdevs
            .iter()
            .max_by_key(|v| v.info.txg)
            .and_then(|v| v.config.list("features_for_read"))
            .map(|l| {
                l.pairs
                    .iter()
                    .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Pool {
            inner: Arc::new(PoolInner {
                spa,
                features,
                devices,
                guid,
                txg,
                uberblocks,
                mos,
                datasets: std::sync::OnceLock::new(),
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

    /// The devices the pool was opened from, with their labels.
    pub fn devices(&self) -> &[DeviceInfo] {
        &self.inner.devices
    }

    /// How many blocks were read without checksum verification so far
    /// (checksum off, or sha512/skein/edonr/blake3, not computed here).
    pub fn unverified_blocks(&self) -> u64 {
        self.inner.spa.unverified.load(Ordering::Relaxed)
    }

    /// The features a reader must support (`features_for_read` of the
    /// labels), e.g. "com.delphix:embedded_data".
    pub fn features_for_read(&self) -> Vec<String> {
        self.inner.features.clone()
    }

    /// Guids of leaf vdevs whose device was not given.
    pub fn missing_devices(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for t in self.inner.spa.tops.iter().flatten() {
            t.missing(&mut out);
        }
        out
    }

    /// Every dataset, snapshot and volume, sorted by name (walked once).
    pub fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        if let Some(d) = self.inner.datasets.get() {
            return Ok(d.clone());
        }
        let d = dsl::datasets(&self.inner).ctx(|| format!("pool {}", self.name()))?;
        Ok(self.inner.datasets.get_or_init(|| d).clone())
    }

    /// The filesystem view of the filesystem or snapshot `name`
    /// ("pool/fs", "pool/fs@snap"). An encrypted dataset is
    /// [`Error::Encrypted`].
    pub fn open_fs(&self, name: &str) -> Result<Fs> {
        let ds = self
            .datasets()?
            .into_iter()
            .find(|d| d.name == name)
            .ok_or_else(|| Error::not_found(format!("pool {}: dataset {name}", self.name())))?;
        Fs::open(self.clone(), ds)
    }
}
