//! Devices: the [`BlockDev`] trait over a file or block device opened
//! read-only (`O_NOATIME` when allowed) or over a byte slice, and the
//! bounded LRU cache of decoded blocks above them.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// A device read at byte offsets; never written.
pub trait BlockDev: Send + Sync {
    /// Its size in bytes.
    fn len(&self) -> u64;
    /// Whether it is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fills `buf` from `off`; reading past the end is an error.
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<()>;
    /// What to call it in errors.
    fn name(&self) -> String;
}

/// A regular file or block device opened `O_RDONLY | O_NOATIME`.
#[derive(Debug)]
pub struct FileDev {
    file: File,
    path: PathBuf,
    len: u64,
}

impl FileDev {
    /// Opens `path` read-only; `O_NOATIME` is dropped only where the kernel
    /// refuses it (not the file's owner).
    pub fn open(path: &Path) -> Result<FileDev> {
        let io = |source| Error::Io {
            what: path.display().to_string(),
            path: path.to_path_buf(),
            offset: 0,
            source,
        };
        let mut o = std::fs::OpenOptions::new();
        o.read(true).custom_flags(libc::O_NOATIME);
        let file = match o.open(path) {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => File::open(path).map_err(io)?,
            r => r.map_err(io)?,
        };
        let meta = file.metadata().map_err(io)?;
        let len = if meta.is_file() {
            meta.len()
        } else {
            // A block device: its size is where seeking to the end lands.
            use std::io::Seek;
            (&file).seek(std::io::SeekFrom::End(0)).map_err(io)?
        };
        Ok(FileDev {
            file,
            path: path.to_path_buf(),
            len,
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl BlockDev for FileDev {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let io = |source| Error::Io {
            what: self.path.display().to_string(),
            path: self.path.clone(),
            offset: off,
            source,
        };
        if off
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} bytes past the end ({} bytes)", buf.len(), self.len),
            )));
        }
        self.file.read_exact_at(buf, off).map_err(io)
    }
    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// A device in memory (tests, fuzzing).
#[derive(Debug, Clone)]
pub struct SliceDev {
    data: Arc<[u8]>,
    name: String,
}

impl SliceDev {
    pub fn new(name: &str, data: impl Into<Arc<[u8]>>) -> SliceDev {
        SliceDev {
            data: data.into(),
            name: name.to_string(),
        }
    }
}

impl BlockDev for SliceDev {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        let src = usize::try_from(off)
            .ok()
            .and_then(|o| self.data.get(o..o.checked_add(buf.len())?))
            .ok_or_else(|| Error::Io {
                what: self.name.clone(),
                path: PathBuf::from(&self.name),
                offset: off,
                source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "past the end"),
            })?;
        buf.copy_from_slice(src);
        Ok(())
    }
    fn name(&self) -> String {
        self.name.clone()
    }
}

/// A window of a device: a vdev inside a partition.
pub struct Window {
    pub dev: Arc<dyn BlockDev>,
    pub start: u64,
    pub len: u64,
}

impl BlockDev for Window {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<()> {
        if off
            .checked_add(buf.len() as u64)
            .is_none_or(|e| e > self.len)
        {
            return Err(Error::corrupt(
                self.name(),
                format!("read of {} bytes at {off} past the vdev's end", buf.len()),
            ));
        }
        self.dev.read_at(self.start + off, buf)
    }
    fn name(&self) -> String {
        format!("{} (vdev at {})", self.dev.name(), self.start)
    }
}

/// A cache key: what identifies a decoded block (vdev, offset, birth txg).
pub type Key = (u64, u64, u64);

/// A bounded LRU cache of decoded blocks, by bytes.
pub struct Cache {
    inner: Mutex<CacheInner>,
    limit: usize,
}

#[derive(Default)]
struct CacheInner {
    map: HashMap<Key, (Arc<[u8]>, u64)>,
    order: BTreeMap<u64, Key>,
    tick: u64,
    bytes: usize,
}

impl Cache {
    pub fn new(limit: usize) -> Cache {
        Cache {
            inner: Mutex::new(CacheInner::default()),
            limit,
        }
    }

    /// The block under `k`, if cached (it becomes the most recent).
    pub fn get(&self, k: &Key) -> Option<Arc<[u8]>> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let c = &mut *g;
        c.tick += 1;
        let tick = c.tick;
        let (data, t) = c.map.get_mut(k)?;
        c.order.remove(t);
        *t = tick;
        c.order.insert(tick, *k);
        Some(data.clone())
    }

    /// Caches `data` under `k`, evicting the least recent blocks over the
    /// limit.
    pub fn put(&self, k: Key, data: Arc<[u8]>) {
        if data.len() > self.limit / 4 {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let c = &mut *g;
        c.tick += 1;
        let tick = c.tick;
        c.bytes += data.len();
        if let Some((old, t)) = c.map.insert(k, (data, tick)) {
            c.bytes -= old.len();
            c.order.remove(&t);
        }
        c.order.insert(tick, k);
        while c.bytes > self.limit {
            let Some((_, k)) = c.order.pop_first() else {
                break;
            };
            if let Some((d, _)) = c.map.remove(&k) {
                c.bytes -= d.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_evicts_least_recent_by_bytes() {
        let c = Cache::new(100);
        c.put((0, 0, 0), vec![0u8; 20].into());
        c.put((0, 1, 0), vec![1u8; 20].into());
        assert!(c.get(&(0, 0, 0)).is_some());
        for i in 2..6 {
            c.put((0, i, 0), vec![2u8; 20].into());
        }
        assert!(c.get(&(0, 0, 0)).is_some(), "recently used stays");
        assert!(c.get(&(0, 1, 0)).is_none(), "least recent went");
    }

    #[test]
    fn slice_dev_refuses_reads_past_its_end() {
        let d = SliceDev::new("t", vec![1u8; 10]);
        let mut b = [0u8; 4];
        assert!(d.read_at(6, &mut b).is_ok());
        assert!(d.read_at(7, &mut b).is_err());
        assert!(d.read_at(u64::MAX, &mut b).is_err());
    }
}
