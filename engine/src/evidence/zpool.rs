//! Docker roots inside ZFS pools read from their disk images (or block
//! devices) in userspace with `docker-mount-zfs`: never imported, never
//! written.
//!
//! `--root` names a device or image (its pool's other devices are looked
//! for beside it: files of the same directory whose label names the same
//! pool), or a directory of such images (every pool in it). Each pool is
//! opened read-only at its newest readable uberblock, or at the txg asked
//! for (`--txg`: the pool as it was then, if its blocks survive); every filesystem and snapshot whose top holds
//! docker's directories is a candidate root, selected with `--dataset`
//! when there are several.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::evidence::pool::{self, DatasetProvider};
use crate::model::root::DOCKER_DIRS;
use crate::mounts::datasetfs::{DirEntries, Served, TreeSource, Xattrs};
use docker_mount_core::beneath::Beneath;
use docker_mount_core::error::{Error, Result};
use docker_mount_core::stat::{FileKind, Stat, Time};
use docker_mount_zfs as zfs;

/// The most files of a directory probed for vdev labels.
const MAX_PROBED: usize = 1024;
/// ZFS's smallest vdev (`SPA_MINDEVSIZE`).
const MIN_VDEV: u64 = 64 << 20;
/// The most datasets examined for a docker root.
const MAX_DATASETS: usize = 100_000;

fn zerr(e: zfs::Error) -> std::io::Error {
    let kind = if e.is_not_found() {
        std::io::ErrorKind::NotFound
    } else {
        std::io::ErrorKind::Other
    };
    std::io::Error::new(kind, e.to_string())
}

fn usage(e: zfs::Error) -> Error {
    Error::Usage(e.to_string())
}

/// Whether `path` is a file or block device (not a directory): a
/// candidate vdev.
pub fn is_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() || m.file_type().is_block_device())
}

/// Whether `path` is a file or block device at least as large as the
/// smallest vdev ZFS makes (64 MiB).
fn could_be_vdev(path: &Path) -> bool {
    std::fs::metadata(path)
        .is_ok_and(|m| m.file_type().is_block_device() || (m.is_file() && m.len() >= MIN_VDEV))
}

/// Whether `path` is a vdev of a pool, or a directory holding some.
pub fn holds_pools(path: &Path) -> bool {
    !devices(path).is_empty()
}

/// The pool devices `path` designates, grouped by pool guid: the device
/// itself and its pool's devices beside it, or every device in a directory.
pub fn devices(path: &Path) -> BTreeMap<u64, (String, Vec<PathBuf>)> {
    let mut pools: BTreeMap<u64, (String, Vec<PathBuf>)> = BTreeMap::new();
    let mut add = |p: &Path, only: Option<u64>| {
        if let Ok(Some(label)) = zfs::probe(p) {
            if only.is_none_or(|g| g == label.pool_guid) {
                let e = pools
                    .entry(label.pool_guid)
                    .or_insert_with(|| (label.pool_name.clone(), Vec::new()));
                if !e.1.iter().any(|d| d == p) {
                    e.1.push(p.to_path_buf());
                }
            }
        }
    };
    // Listed with O_NOATIME (a host tree's directory keeps its atime);
    // only files a vdev could be are sniffed.
    let siblings = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = Beneath::open(dir)
            .and_then(|d| d.list(Path::new("")))
            .unwrap_or_default()
            .into_iter()
            .take(MAX_PROBED)
            .map(|n| dir.join(n))
            .filter(|p| could_be_vdev(p))
            .collect();
        v.sort();
        v
    };
    if is_device(path) {
        let Ok(Some(label)) = zfs::probe(path) else {
            return pools;
        };
        add(path, None);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            for p in siblings(dir) {
                add(&p, Some(label.pool_guid));
            }
        }
    } else if path.is_dir() {
        for p in siblings(path) {
            add(&p, None);
        }
    }
    pools
}

/// A dataset of a pool that holds a docker root.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Candidate {
    pub pool: String,
    /// `pool/fs` or `pool/fs@snap`.
    pub dataset: String,
    pub snapshot: bool,
    /// Where it was mounted (`/var/lib/docker`), for filesystems.
    pub mountpoint: Option<String>,
    pub devices: Vec<PathBuf>,
    /// The txg the pool was read at (its newest readable uberblock's, or
    /// the one `--txg` asked for).
    pub txg: u64,
}

/// An uberblock of a pool: a txg it can be opened at.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Uberblock {
    pub txg: u64,
    /// When it was written, seconds since the epoch.
    pub written: u64,
    /// Whether the pool was read at it.
    pub opened: bool,
}

/// What the pools of `--root` hold.
#[derive(Debug, Default, Serialize)]
pub struct PoolScan {
    /// Pools found, with their devices.
    pub pools: Vec<(String, Vec<PathBuf>)>,
    pub candidates: Vec<Candidate>,
    /// Each pool's uberblocks, newest first.
    pub uberblocks: Vec<(String, Vec<Uberblock>)>,
    /// Pools or datasets that could not be read (encrypted ones, say).
    pub problems: Vec<String>,
    /// How many of `problems` are read failures (a damaged pool or
    /// dataset, an unknown txg), not merely encrypted datasets.
    pub failures: usize,
}

fn uberblocks(pool: &zfs::Pool) -> Vec<Uberblock> {
    pool.uberblocks()
        .into_iter()
        .map(|u| Uberblock {
            txg: u.txg,
            written: u.timestamp,
            opened: u.active,
        })
        .collect()
}

/// Why pool `name` on `devs` does not open at `txg`: the txgs it can be
/// opened at, or that not even its newest uberblock reads.
fn not_at(name: &str, devs: &[PathBuf], txg: u64, e: &zfs::Error) -> String {
    match zfs::Pool::open(devs, &zfs::OpenOptions::default()) {
        Ok(p) => {
            let txgs: Vec<String> = p.uberblocks().iter().map(|u| u.txg.to_string()).collect();
            format!(
                "pool {name} cannot be read at txg {txg}: {e} (its labels hold uberblocks of txgs {}; `roots` lists them with their times)",
                txgs.join(", ")
            )
        }
        Err(_) => format!("pool {name}: {e}"),
    }
}

/// Opens every pool of `path` (at `txg` when given: each pool's uberblock
/// of that txg) and finds the datasets holding a docker root.
pub fn scan(path: &Path, txg: Option<u64>) -> PoolScan {
    let mut out = PoolScan::default();
    for (_, (name, devs)) in devices(path) {
        out.pools.push((name.clone(), devs.clone()));
        let pool = match zfs::Pool::open(&devs, &zfs::OpenOptions { txg }) {
            Ok(p) => p,
            Err(e) => {
                out.failures += 1;
                out.problems.push(match txg {
                    Some(t) => not_at(&name, &devs, t, &e),
                    None => format!("pool {name}: {e}"),
                });
                continue;
            }
        };
        out.uberblocks.push((name.clone(), uberblocks(&pool)));
        let datasets = match pool.datasets() {
            Ok(d) => d,
            Err(e) => {
                out.failures += 1;
                out.problems.push(format!("pool {name}: datasets: {e}"));
                continue;
            }
        };
        for ds in datasets.into_iter().take(MAX_DATASETS) {
            if ds.kind == zfs::DatasetKind::Volume {
                continue;
            }
            if ds.encrypted {
                out.problems
                    .push(format!("dataset {} is encrypted: not examined", ds.name));
                continue;
            }
            match holds_docker(&pool, &ds.name) {
                Ok(true) => out.candidates.push(Candidate {
                    pool: name.clone(),
                    snapshot: ds.kind == zfs::DatasetKind::Snapshot,
                    dataset: ds.name,
                    mountpoint: ds.mountpoint,
                    devices: devs.clone(),
                    txg: pool.txg(),
                }),
                Ok(false) => {}
                Err(e) => {
                    out.failures += 1;
                    out.problems.push(format!("dataset {}: {e}", ds.name));
                }
            }
        }
    }
    out
}

/// Whether the top of dataset `name` holds docker's directories.
fn holds_docker(pool: &zfs::Pool, name: &str) -> std::result::Result<bool, zfs::Error> {
    let fs = pool.open_fs(name)?;
    for d in DOCKER_DIRS {
        if fs.lookup(fs.root(), d.as_bytes())?.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

impl PoolScan {
    /// The candidate `dataset` names, or else the single filesystem (its
    /// snapshots are taken only when named), or the single candidate; else
    /// an error listing the choices.
    pub fn select(&self, dataset: Option<&str>, given: &Path) -> Result<&Candidate> {
        let list = || {
            self.candidates
                .iter()
                .map(|c| format!("--dataset {}", c.dataset))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some(want) = dataset {
            return self
                .candidates
                .iter()
                .find(|c| c.dataset == want)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "no docker root in dataset {want} of {}; {}",
                        given.display(),
                        if self.candidates.is_empty() {
                            "the pools hold none".to_string()
                        } else {
                            format!("choose one of: {}", list())
                        }
                    ))
                });
        }
        // The live root is the default; its snapshots are chosen by name.
        let live: Vec<&Candidate> = self.candidates.iter().filter(|c| !c.snapshot).collect();
        if let [one] = live.as_slice() {
            return Ok(one);
        }
        match self.candidates.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::Usage(format!(
                "no docker root in the pools of {} ({}){}",
                given.display(),
                self.pools
                    .iter()
                    .map(|(n, d)| format!("{n}: {} device(s)", d.len()))
                    .collect::<Vec<_>>()
                    .join(", "),
                if self.problems.is_empty() {
                    String::new()
                } else {
                    format!("; {}", self.problems.join("; "))
                }
            ))),
            _ => Err(Error::Usage(format!(
                "{} datasets of {} hold a docker root; choose one with {}",
                self.candidates.len(),
                given.display(),
                list()
            ))),
        }
    }
}

/// The pool a chosen root lies in.
#[derive(Debug)]
pub struct ZfsPool {
    pool: zfs::Pool,
    devices: Vec<PathBuf>,
    /// The filesystem dataset holding the root (without `@snap`).
    base: String,
    /// The dataset (or snapshot) the root was read from.
    dataset: String,
}

impl DatasetProvider for ZfsPool {
    fn base(&self) -> &str {
        &self.base
    }

    fn describe(&self) -> String {
        format!(
            "dataset {} of pool {} ({})",
            self.dataset,
            self.pool.name(),
            self.devices
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn devices(&self) -> Vec<PathBuf> {
        self.devices.clone()
    }

    fn children(&self) -> Result<Vec<String>> {
        let prefix = format!("{}/", self.base);
        Ok(self
            .pool
            .datasets()
            .map_err(usage)?
            .into_iter()
            .filter(|d| d.kind == zfs::DatasetKind::Filesystem)
            .filter_map(|d| d.name.strip_prefix(&prefix).map(str::to_string))
            .collect())
    }

    fn open(&self, name: &str) -> Result<Arc<dyn TreeSource>> {
        let fs = self.pool.open_fs(name).map_err(|e| {
            Error::Usage(if e.is_not_found() {
                format!(
                    "dataset {name} does not exist in pool {} (destroyed since?): {e}",
                    self.pool.name()
                )
            } else {
                e.to_string()
            })
        })?;
        Ok(Arc::new(ZfsTree { fs }))
    }

    fn written_after_root(&self, whole: &str) -> Result<Option<u64>> {
        if !self.dataset.contains('@') {
            return Ok(None);
        }
        let datasets = self.pool.datasets().map_err(usage)?;
        let Some(snapshot) = datasets.iter().find(|d| d.name == self.dataset) else {
            return Ok(None);
        };
        let fs = self.pool.open_fs(whole).map_err(usage)?;
        let changed = fs.changed_since(snapshot.createtxg).map_err(usage)?;
        Ok((!changed.is_empty()).then_some(snapshot.createtxg))
    }

    fn may_differ(&self, clone: &str, origin: &str) -> Result<Option<HashSet<u64>>> {
        let datasets = self.pool.datasets().map_err(usage)?;
        let info = |name: &str| datasets.iter().find(|d| d.name == name);
        let Some(snapshot) = info(clone)
            .and_then(|c| c.origin.as_deref())
            .filter(|o| o.split_once('@').is_some_and(|(fs, _)| fs == origin))
            .and_then(info)
        else {
            return Ok(None);
        };
        let mut set = HashSet::new();
        for name in [clone, origin] {
            let fs = self.pool.open_fs(name).map_err(usage)?;
            let changed = fs.changed_since(snapshot.createtxg).map_err(usage)?;
            set.extend(changed.into_iter().map(|(obj, _)| obj));
        }
        Ok(Some(set))
    }
}

/// Opens the root `candidate` names: its pool, and its top directory served.
pub fn open(candidate: &Candidate) -> Result<(Arc<ZfsPool>, Arc<Served>)> {
    let at = zfs::OpenOptions {
        txg: Some(candidate.txg),
    };
    let pool = zfs::Pool::open(&candidate.devices, &at).map_err(usage)?;
    let base = candidate
        .dataset
        .split_once('@')
        .map_or(candidate.dataset.as_str(), |(fs, _)| fs)
        .to_string();
    let pool = Arc::new(ZfsPool {
        pool,
        devices: candidate.devices.clone(),
        base,
        dataset: candidate.dataset.clone(),
    });
    let served = pool::serve(pool.as_ref(), &candidate.dataset)?;
    Ok((pool, served))
}

/// One dataset as a [`TreeSource`].
struct ZfsTree {
    fs: zfs::Fs,
}

fn kind(k: zfs::FileKind) -> FileKind {
    match k {
        zfs::FileKind::Dir => FileKind::Dir,
        zfs::FileKind::Symlink => FileKind::Symlink,
        zfs::FileKind::CharDev => FileKind::CharDev,
        zfs::FileKind::BlockDev => FileKind::BlockDev,
        zfs::FileKind::Fifo => FileKind::Fifo,
        zfs::FileKind::Socket => FileKind::Socket,
        zfs::FileKind::File | zfs::FileKind::Unknown => FileKind::File,
    }
}

fn time(t: zfs::Timespec) -> Time {
    Time {
        sec: t.secs,
        nsec: i64::from(t.nanos),
    }
}

impl TreeSource for ZfsTree {
    fn root(&self) -> u64 {
        self.fs.root()
    }

    fn read_dir(&self, dir: u64) -> std::io::Result<DirEntries> {
        Ok(self
            .fs
            .read_dir(dir)
            .map_err(zerr)?
            .into_iter()
            .map(|e| (e.name, e.obj, kind(e.kind)))
            .collect())
    }

    fn lookup(&self, dir: u64, name: &[u8]) -> std::io::Result<Option<u64>> {
        self.fs.lookup(dir, name).map_err(zerr)
    }

    fn stat(&self, obj: u64) -> std::io::Result<Stat> {
        let z = self.fs.stat(obj).map_err(zerr)?;
        Ok(Stat {
            kind: match z.kind {
                zfs::FileKind::Unknown => FileKind::from_mode(z.mode),
                k => kind(k),
            },
            mode: z.mode & 0o7777,
            uid: u32::try_from(z.uid).unwrap_or(u32::MAX),
            gid: u32::try_from(z.gid).unwrap_or(u32::MAX),
            size: z.size,
            rdev: libc::makedev(z.rdev_major, z.rdev_minor),
            dev: 0,
            ino: obj,
            nlink: z.nlink,
            atime: time(z.atime),
            mtime: time(z.mtime),
            ctime: time(z.ctime),
            btime: Some(time(z.crtime)),
        })
    }

    fn read_at(&self, obj: u64, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.fs.read_at(obj, offset, buf).map_err(zerr)
    }

    fn read_link(&self, obj: u64) -> std::io::Result<Vec<u8>> {
        self.fs.read_link(obj).map_err(zerr)
    }

    fn xattrs(&self, obj: u64) -> std::io::Result<Xattrs> {
        self.fs.xattrs(obj).map_err(zerr)
    }
}
