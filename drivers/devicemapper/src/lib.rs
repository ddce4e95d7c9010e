//! The devicemapper storage driver, read without device-mapper.
//!
//! Every layer is a thin device of one thin pool, holding a complete
//! filesystem (xfs or ext4) whose `/rootfs` is the layer's merged view.
//! `devicemapper/metadata/<cache-id>` names the device (`device_id`, `size`);
//! the pool is `devicemapper/devicemapper/{data,metadata}` (loop-lvm), or
//! the data and metadata devices or images given as driver options
//! `dm.pool_data` and `dm.pool_metadata` (direct-lvm). The driver reads the
//! pool's metadata itself ([`thin`]) and describes each layer as a
//! [`LayerSource::BlockImage`]: the device's mapped extents in the pool's
//! data. Thin devices of the pool that no metadata file names (deleted
//! containers and layers) are listed as layers `device-<id>`.

pub mod crc32c;
pub mod thin;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver::Extent;
use docker_mount_core::driver_kit::{self, io_err};
use docker_mount_core::{
    Confidence, Driver, DriverError, DriverInfo, ErrorKind, LayerEntry, LayerSource, ABI_VERSION,
};
use serde::Deserialize;

/// The driver's directory under the root.
pub const STORE: &str = "devicemapper";
/// Docker's per-device metadata files, relative to the store.
pub const METADATA_DIR: &str = "metadata";
/// The loop-lvm pool files, relative to the store.
pub const POOL_DATA: &str = "devicemapper/data";
pub const POOL_METADATA: &str = "devicemapper/metadata";
/// Files of `metadata/` that are no layer.
const NOT_LAYERS: [&str; 3] = ["base", "deviceset-metadata", "transaction-metadata"];
/// Prefix of the ids of pool devices that no metadata file names.
pub const DEVICE_PREFIX: &str = "device-";
/// Driver options.
pub const OPT_POOL_DATA: &str = "dm.pool_data";
pub const OPT_POOL_METADATA: &str = "dm.pool_metadata";
pub const OPT_IGNORE_CHECKSUMS: &str = "ignore_checksums";
/// Largest metadata JSON file read.
const JSON_LIMIT: u64 = 64 * 1024;

#[derive(Debug, Default)]
pub struct Devicemapper;

/// `devicemapper/metadata/<id>`: docker's record of one thin device.
#[derive(Debug, Clone, Deserialize)]
pub struct DevInfo {
    pub device_id: u64,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub transaction_id: u64,
    #[serde(default)]
    pub initialized: bool,
    #[serde(default)]
    pub deleted: bool,
}

/// `devicemapper/metadata/deviceset-metadata`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeviceSet {
    #[serde(default)]
    pub next_device_id: Option<u64>,
    #[serde(
        default,
        rename = "BaseDeviceFilesystem",
        alias = "base_device_filesystem"
    )]
    pub base_fs: Option<String>,
    #[serde(default, rename = "BaseDeviceUUID", alias = "base_device_uuid")]
    pub base_uuid: Option<String>,
}

fn invalid(message: impl Into<String>, path: &Path) -> DriverError {
    DriverError::new(ErrorKind::Invalid, message, Some(path))
}

fn core_err(e: docker_mount_core::Error) -> DriverError {
    match e {
        docker_mount_core::Error::Io { path, cause } => io_err(&path, cause),
        docker_mount_core::Error::Driver(d) => d,
        other => DriverError::new(ErrorKind::Invalid, other.to_string(), None),
    }
}

/// Where the pool's metadata and data are.
#[derive(Debug, Clone)]
pub struct PoolLocation {
    /// For messages.
    pub metadata_path: PathBuf,
    /// The data file or device, as extents name it.
    pub data_path: PathBuf,
    /// `Some` when the metadata is outside the root (an option).
    metadata_outside: Option<PathBuf>,
}

/// Opens a file the analyst named (outside the evidence root), read-only
/// and, where allowed, without updating its atime.
fn open_outside(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |flags| {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
    };
    match open(libc::O_NOATIME | libc::O_CLOEXEC) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(libc::O_CLOEXEC),
        r => r,
    }
}

fn absolute(p: OsString) -> PathBuf {
    let p = PathBuf::from(p);
    std::path::absolute(&p).unwrap_or(p)
}

impl PoolLocation {
    /// The loop-lvm files under the root, or the options' paths.
    pub fn find(store: &Beneath) -> PoolLocation {
        let data = driver_kit::option(OPT_POOL_DATA).map(absolute);
        let meta = driver_kit::option(OPT_POOL_METADATA).map(absolute);
        PoolLocation {
            metadata_path: meta
                .clone()
                .unwrap_or_else(|| store.path().join(POOL_METADATA)),
            data_path: data.unwrap_or_else(|| store.path().join(POOL_DATA)),
            metadata_outside: meta,
        }
    }

    /// Opens and checks the pool metadata.
    pub fn open(&self, store: &Beneath) -> Result<thin::Pool, DriverError> {
        let file = self.open_file(store)?;
        let opts = thin::Options {
            ignore_checksums: driver_kit::flag(OPT_IGNORE_CHECKSUMS),
        };
        thin::Pool::open(file, opts).map_err(|e| self.thin_err(e))
    }

    fn open_file(&self, store: &Beneath) -> Result<File, DriverError> {
        Ok(match &self.metadata_outside {
            Some(p) => open_outside(p).map_err(|e| io_err(p, e))?,
            None => store
                .open_regular(Path::new(POOL_METADATA))
                .map(File::from)
                .map_err(|e| {
                    let hint = if e.raw_os_error() == Some(libc::ENOENT) {
                        " (a direct-lvm pool lives outside the root: give --dm-pool-metadata and --dm-pool-data)"
                    } else {
                        ""
                    };
                    io_err(&self.metadata_path, format!("{e}{hint}"))
                })?,
        })
    }

    /// Runs `f` on the pool, opened once per process and metadata file
    /// (identified by device, inode, size and times: evidence does not
    /// change, but a file that did is read again), with its device roots.
    pub fn with_pool<T>(
        &self,
        store: &Beneath,
        f: impl FnOnce(&thin::Pool, &BTreeMap<u64, u64>) -> Result<T, DriverError>,
    ) -> Result<T, DriverError> {
        use std::os::unix::fs::MetadataExt;
        let file = self.open_file(store)?;
        let m = file
            .metadata()
            .map_err(|e| io_err(&self.metadata_path, e))?;
        let ignore = driver_kit::flag(OPT_IGNORE_CHECKSUMS);
        let key = (
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime_nsec(),
            ignore,
        );
        let mut pools = POOLS.lock().unwrap_or_else(|p| p.into_inner());
        let i = match pools.iter().position(|c| c.key == key) {
            Some(i) => i,
            None => {
                let pool = thin::Pool::open(
                    file,
                    thin::Options {
                        ignore_checksums: ignore,
                    },
                )
                .map_err(|e| self.thin_err(e))?;
                let roots = pool.mapping_roots();
                let roots = match roots {
                    Ok(r) => r,
                    Err(e) => {
                        report_warnings(&pool, self, 0);
                        return Err(self.thin_err(e));
                    }
                };
                if pools.len() >= 4 {
                    pools.remove(0);
                }
                pools.push(CachedPool {
                    key,
                    pool,
                    roots,
                    reported: 0,
                });
                pools.len() - 1
            }
        };
        let c = &mut pools[i];
        let result = f(&c.pool, &c.roots);
        c.reported = report_warnings(&c.pool, self, c.reported);
        result
    }

    pub fn thin_err(&self, e: thin::ThinError) -> DriverError {
        invalid(format!("thin-pool metadata: {e}"), &self.metadata_path)
    }
}

/// Identity of a metadata file: device, inode, size, mtime, ctime, and
/// whether checksums were ignored when reading it.
type FileKey = (u64, u64, u64, i64, i64, i64, bool);

/// A pool read by this process.
#[derive(Debug)]
struct CachedPool {
    key: FileKey,
    pool: thin::Pool,
    roots: BTreeMap<u64, u64>,
    /// Warnings already reported.
    reported: usize,
}

static POOLS: std::sync::Mutex<Vec<CachedPool>> = std::sync::Mutex::new(Vec::new());

/// Reports what `--ignore-checksums` read past, from the `from`th warning
/// on (plugins have no other channel); returns how many there are.
fn report_warnings(pool: &thin::Pool, loc: &PoolLocation, from: usize) -> usize {
    let ws = pool.warnings();
    for w in ws.iter().skip(from) {
        eprintln!(
            "warning: devicemapper: {}: {w}",
            loc.metadata_path.display()
        );
    }
    ws.len()
}

fn open_store(root: &Path) -> Result<Beneath, DriverError> {
    driver_kit::open_store(root, STORE)
}

/// The device set's own metadata (missing or unreadable: defaults).
pub fn device_set(store: &Beneath) -> DeviceSet {
    store
        .read_json(
            &Path::new(METADATA_DIR).join("deviceset-metadata"),
            JSON_LIMIT,
            "devicemapper deviceset-metadata",
        )
        .unwrap_or_default()
}

/// docker's record of device `id` (a cache id, `base`, ...).
pub fn dev_info(store: &Beneath, id: &str) -> Result<DevInfo, DriverError> {
    store
        .read_json(
            &Path::new(METADATA_DIR).join(id),
            JSON_LIMIT,
            "devicemapper device metadata",
        )
        .map_err(core_err)
}

/// The ids docker keeps a metadata file for (layers, and `base`).
fn metadata_ids(store: &Beneath) -> Result<Vec<String>, DriverError> {
    Ok(
        driver_kit::list_layers(store, Path::new(METADATA_DIR), &[])?
            .into_iter()
            .map(|l| l.id)
            .filter(|id| !id.starts_with('.'))
            .collect(),
    )
}

/// The thin device id of a `device-<n>` layer id.
pub fn parse_device_id(id: &str) -> Option<u64> {
    let n = id.strip_prefix(DEVICE_PREFIX)?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 19 {
        return None;
    }
    n.parse().ok()
}

/// A thin device as a block image: its mapped runs as extents of the data.
pub fn block_image(
    pool: &thin::Pool,
    roots: &BTreeMap<u64, u64>,
    loc: &PoolLocation,
    dev_id: u64,
    size: u64,
    fs: &str,
) -> Result<LayerSource, DriverError> {
    let root = roots.get(&dev_id).ok_or_else(|| {
        invalid(
            format!("thin device {dev_id} is not in the pool (it was deleted, or the metadata is of another pool)"),
            &loc.metadata_path,
        )
    })?;
    let runs = pool
        .device_runs(dev_id, *root)
        .map_err(|e| loc.thin_err(e))?;
    let bs = pool.superblock().data_block_bytes();
    let overflow = || {
        invalid(
            format!("thin device {dev_id} maps blocks beyond 2^64 bytes"),
            &loc.metadata_path,
        )
    };
    let mut extents = Vec::with_capacity(runs.len());
    let mut end = 0u64;
    for r in runs {
        let offset = r.virt.checked_mul(bs).ok_or_else(overflow)?;
        let len = r.len.checked_mul(bs).ok_or_else(overflow)?;
        let file_offset = r.data.checked_mul(bs).ok_or_else(overflow)?;
        end = offset.checked_add(len).ok_or_else(overflow)?;
        file_offset.checked_add(len).ok_or_else(overflow)?;
        extents.push(Extent {
            offset,
            len,
            file: loc.data_path.clone(),
            file_offset,
        });
    }
    // The kernel maps nothing past a thin device's size: mappings beyond
    // docker's record of it are corrupt (and would make a huge image).
    if size > 0 && end > size {
        return Err(invalid(
            format!(
                "thin device {dev_id} maps blocks up to byte {end}, past its size of {size} bytes in docker's metadata"
            ),
            &loc.metadata_path,
        ));
    }
    Ok(LayerSource::BlockImage {
        fs: fs.to_string(),
        // A device docker recorded no size for ends with its last mapping.
        size: if size > 0 { size } else { end },
        extents,
    })
}

impl Driver for Devicemapper {
    fn info(&self) -> DriverInfo {
        DriverInfo {
            name: STORE.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: ABI_VERSION,
            summary: "devicemapper: thin devices of a thin pool, read in userspace".into(),
            features: vec![
                "block-images".into(),
                "thin-pool-reader".into(),
                format!("option:{OPT_POOL_DATA}"),
                format!("option:{OPT_POOL_METADATA}"),
                format!("option:{OPT_IGNORE_CHECKSUMS}"),
            ],
        }
    }

    fn detect(&self, root: &Path) -> Confidence {
        let Ok(store) = open_store(root) else {
            return Confidence::NONE;
        };
        if driver_kit::has_image_store(root, STORE) {
            Confidence::CERTAIN
        } else if store.exists(&Path::new(METADATA_DIR).join("deviceset-metadata")) {
            Confidence(80)
        } else {
            Confidence(20)
        }
    }

    fn layer(&self, root: &Path, id: &str) -> Result<LayerSource, DriverError> {
        driver_kit::check_id(id, STORE)?;
        let store = open_store(root)?;
        let set = device_set(&store);
        let fs = set.base_fs.clone().unwrap_or_default();
        let rel = Path::new(METADATA_DIR).join(id);
        let (dev_id, size) = if store.exists(&rel) {
            let info = dev_info(&store, id)?;
            (info.device_id, info.size)
        } else if let Some(n) = parse_device_id(id) {
            // A device no metadata file names: docker gives all its
            // devices the base device's size.
            let size = dev_info(&store, "base").map(|b| b.size).unwrap_or(0);
            (n, size)
        } else {
            return Err(DriverError::new(
                ErrorKind::NotFound,
                format!("devicemapper has no metadata for layer {id}"),
                Some(&store.path().join(&rel)),
            ));
        };
        let loc = PoolLocation::find(&store);
        loc.with_pool(&store, |pool, roots| {
            block_image(pool, roots, &loc, dev_id, size, &fs)
        })
    }

    /// `mnt/<id>/rootfs`: where docker mounted a layer's device (its
    /// `/rootfs` is the container's or image's whole tree).
    fn layer_paths(&self, root: &Path) -> Result<Vec<docker_mount_core::LayerPath>, DriverError> {
        let store = open_store(root)?;
        Ok(metadata_ids(&store)?
            .into_iter()
            .filter(|id| !NOT_LAYERS.contains(&id.as_str()))
            .map(|id| docker_mount_core::LayerPath {
                path: store.path().join("mnt").join(&id).join("rootfs"),
                id,
                kind: docker_mount_core::LayerPathKind::View,
            })
            .collect())
    }

    fn layers(&self, root: &Path) -> Result<Vec<LayerEntry>, DriverError> {
        let store = open_store(root)?;
        let ids = metadata_ids(&store)?;
        let mut named = BTreeSet::new();
        let mut out = Vec::new();
        for id in ids {
            if let Ok(info) = dev_info(&store, &id) {
                named.insert(info.device_id);
            }
            if NOT_LAYERS.contains(&id.as_str()) {
                continue;
            }
            out.push(LayerEntry {
                path: store.path().join(METADATA_DIR).join(&id),
                id,
            });
        }
        // Devices of the pool no metadata file names any more.
        let loc = PoolLocation::find(&store);
        let devices = loc.with_pool(&store, |pool, _| {
            pool.devices().map_err(|e| loc.thin_err(e))
        });
        for d in devices
            .iter()
            .flatten()
            .filter(|d| !named.contains(&d.dev_id))
        {
            out.push(LayerEntry {
                id: format!("{DEVICE_PREFIX}{}", d.dev_id),
                path: loc.metadata_path.clone(),
            });
        }
        Ok(out)
    }
}

/// A UUID as text (for listings).
pub fn uuid_text(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

docker_mount_core::export_driver!(Devicemapper);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids() {
        assert_eq!(parse_device_id("device-7"), Some(7));
        assert_eq!(parse_device_id("device-"), None);
        assert_eq!(parse_device_id("device-7a"), None);
        assert_eq!(parse_device_id("device--7"), None);
        assert_eq!(parse_device_id("abc"), None);
    }

    #[test]
    fn option_names() {
        assert_eq!(
            driver_kit::option_var(OPT_POOL_DATA),
            "DOCKER_MOUNT_OPT_DM_POOL_DATA"
        );
    }
}
