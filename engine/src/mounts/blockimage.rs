//! Reading a [`LayerSource::BlockImage`] layer: a filesystem image made of
//! extents of backing files (a thin device in a pool's data file, ...),
//! with zeros wherever no extent maps.
//!
//! Backing files inside the docker root are opened beneath it (read-only,
//! `O_NOATIME`, no symlinks); files outside it are those the analyst named
//! (a direct-lvm pool's devices) and are opened read-only. [`BlockImage::extract`]
//! writes the image as a sparse file (holes where nothing maps) and
//! reports its sha256; [`crate::mounts::blockmount`] serves it to the kernel.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::root::DockerRoot;
use docker_mount_core::beneath::Beneath;
use docker_mount_core::driver::{Extent, LayerSource};
use docker_mount_core::error::{Error, Result};

/// Filesystems a block image may be mounted as, by the kernel driver that
/// mounts them and their read-only, never-replaying options.
pub const KNOWN_FS: [&str; 4] = ["ext4", "ext3", "ext2", "xfs"];

/// Bytes copied per read while extracting.
const CHUNK: usize = 4 << 20;

/// One extent, its backing file open.
#[derive(Debug)]
struct Piece {
    offset: u64,
    len: u64,
    file: Arc<File>,
    file_offset: u64,
    /// Bytes of the backing file from `file_offset` on (what lies beyond reads as zeros).
    available: u64,
}

impl Piece {
    /// Starts reading the extent's backing bytes into the page cache
    /// (at most [`PREFETCH`] of them).
    fn prefetch(&self) {
        let len = self.available.min(PREFETCH);
        if let (Ok(off), Ok(len)) = (
            libc::off_t::try_from(self.file_offset),
            libc::off_t::try_from(len),
        ) {
            // SAFETY: an advisory call on a valid descriptor; no memory is passed.
            unsafe {
                libc::posix_fadvise(self.file.as_raw_fd(), off, len, libc::POSIX_FADV_WILLNEED);
            }
        }
    }
}

/// How much of the next extent [`BlockImage::extract`] asks the kernel to read ahead.
const PREFETCH: u64 = 16 << 20;

/// A block image ready to read.
#[derive(Debug)]
pub struct BlockImage {
    /// The driver's id of the layer, for messages.
    pub id: String,
    /// The filesystem the driver says it holds (may be empty), or the one
    /// found in its superblock.
    pub fs: String,
    pub size: u64,
    /// Extents sorted by offset, none overlapping, all inside `size`.
    pieces: Vec<Piece>,
    /// The backing files, for messages.
    pub files: Vec<PathBuf>,
    /// Identifies the image's content: id, size, filesystem and extents, hashed.
    pub fingerprint: String,
    /// What could not be taken as given (short backing files, ...).
    pub warnings: Vec<String>,
}

/// The size of an open regular file or block device.
fn file_size(file: &File, path: &Path) -> Result<u64> {
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    let ft = meta.file_type();
    if ft.is_file() {
        Ok(meta.len())
    } else if ft.is_block_device() {
        // SAFETY: lseek on a valid descriptor; it does not touch memory.
        let end = unsafe { libc::lseek(file.as_raw_fd(), 0, libc::SEEK_END) };
        if end < 0 {
            Err(Error::io(path, std::io::Error::last_os_error()))
        } else {
            Ok(end as u64)
        }
    } else {
        Err(Error::invalid(
            path,
            "the backing file of a block image is neither a regular file nor a block device",
        ))
    }
}

/// Opens a backing file: beneath the root when it lies inside it (and only
/// a regular file there: a device node in the evidence is never opened),
/// as named otherwise.
fn open_backing(root: &DockerRoot, base: &Beneath, path: &Path) -> Result<File> {
    if let Ok(rel) = path.strip_prefix(root.path()) {
        return base
            .open_regular(rel)
            .map(File::from)
            .map_err(|e| base.io_error(rel, e));
    }
    if !path.is_absolute() {
        return Err(Error::invalid(
            path,
            "the driver named a relative backing file outside the docker root",
        ));
    }
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
    .map_err(|e| Error::io(path, e))
}

/// The filesystem whose superblock the image holds, if a known one.
fn sniff(image: &BlockImage) -> Option<&'static str> {
    let mut head = vec![0u8; 2048];
    let n = image.read_at(&mut head, 0).ok()?;
    head.truncate(n);
    if head.starts_with(b"XFSB") {
        return Some("xfs");
    }
    // ext2/3/4: magic 0xEF53 at 1080; journal (compat 0x4) and extents
    // (incompat 0x40) tell the generations apart.
    if head.get(1080..1082) == Some(&[0x53, 0xef]) {
        let compat = head
            .get(1116..1120)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let incompat = head
            .get(1120..1124)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        return Some(if incompat & 0x40 != 0 || incompat & 0x80 != 0 {
            "ext4"
        } else if compat & 0x4 != 0 {
            "ext3"
        } else {
            "ext2"
        });
    }
    None
}

impl BlockImage {
    /// Opens the extents of a `BlockImage` layer source, reading backing
    /// files inside the root through `base` (the root, or a noatime view of it).
    pub fn open(
        root: &DockerRoot,
        base: &Beneath,
        id: &str,
        source: &LayerSource,
    ) -> Result<BlockImage> {
        let LayerSource::BlockImage { fs, size, extents } = source else {
            return Err(Error::Usage(format!("layer {id} is not a block image")));
        };
        let mut extents: Vec<&Extent> = extents.iter().filter(|e| e.len > 0).collect();
        extents.sort_by_key(|e| e.offset);
        let pieces_src = extents.clone();
        let mut files: HashMap<&Path, (Arc<File>, u64)> = HashMap::new();
        let mut pieces = Vec::with_capacity(extents.len());
        let mut warnings = Vec::new();
        let mut short = 0u64;
        let mut end = 0u64;
        for e in extents {
            let bad = |what: &str| {
                Error::invalid(
                    &e.file,
                    format!(
                        "layer {id}: the extent of {} bytes at offset {} {what}",
                        e.len, e.offset
                    ),
                )
            };
            let e_end = e
                .offset
                .checked_add(e.len)
                .filter(|&x| x <= *size)
                .ok_or_else(|| bad(&format!("ends past the image's {size} bytes")))?;
            if e.offset < end {
                return Err(bad("overlaps the one before it"));
            }
            end = e_end;
            if e.file_offset.checked_add(e.len).is_none() {
                return Err(bad("ends past 2^64 bytes of its file"));
            }
            let (file, file_len) = match files.get(e.file.as_path()) {
                Some(f) => f.clone(),
                None => {
                    let f = open_backing(root, base, &e.file)?;
                    let len = file_size(&f, &e.file)?;
                    let entry = (Arc::new(f), len);
                    files.insert(e.file.as_path(), entry.clone());
                    entry
                }
            };
            let available = file_len.saturating_sub(e.file_offset).min(e.len);
            short += e.len - available;
            pieces.push(Piece {
                offset: e.offset,
                len: e.len,
                file,
                file_offset: e.file_offset,
                available,
            });
        }
        let mut names: Vec<PathBuf> = files.keys().map(|p| p.to_path_buf()).collect();
        names.sort();
        if short > 0 {
            warnings.push(format!(
                "layer {id}: {short} mapped bytes lie past the end of {} (a truncated copy?); they read as zeros",
                names
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let mut h = Sha256::new();
        h.update(format!("{id}\0{fs}\0{size}\0"));
        for e in &pieces_src {
            h.update(e.file.as_os_str().as_encoded_bytes());
            h.update(format!("\0{} {} {}\0", e.offset, e.len, e.file_offset));
        }
        let mut image = BlockImage {
            id: id.to_string(),
            fs: fs.clone(),
            size: *size,
            pieces,
            files: names,
            fingerprint: hex::encode(h.finalize()),
            warnings,
        };
        match (sniff(&image), image.fs.as_str()) {
            (Some(found), "") => image.fs = found.to_string(),
            (Some(found), said) if said != found && !(found.starts_with("ext") && said.starts_with("ext")) => {
                image.warnings.push(format!(
                    "layer {id}: the driver says {said}, but the device holds {found}; reading it as {found}"
                ));
                image.fs = found.to_string();
            }
            (Some(_), _) => {}
            (None, said) => image.warnings.push(format!(
                "layer {id}: no known filesystem superblock at the start of the device (driver says {:?})",
                said
            )),
        }
        Ok(image)
    }

    /// Bytes the extents map.
    pub fn mapped_bytes(&self) -> u64 {
        self.pieces.iter().map(|p| p.len).sum()
    }

    /// Number of extents.
    pub fn extents(&self) -> usize {
        self.pieces.len()
    }

    /// Reads image bytes at `offset` (zeros where nothing maps); short only at the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.size - offset) as usize;
        let buf = &mut buf[..n];
        let end = offset + n as u64;
        // Bytes before `done` (relative to `offset`) are filled.
        let mut done = 0usize;
        let first = self.pieces.partition_point(|p| p.offset + p.len <= offset);
        for p in &self.pieces[first..] {
            if p.offset >= end {
                break;
            }
            let from = p.offset.max(offset);
            let to = (p.offset + p.len).min(end);
            let (from_rel, to_rel) = ((from - offset) as usize, (to - offset) as usize);
            buf[done..from_rel].fill(0);
            // What the backing file holds of it; the rest reads as zeros.
            let have = (p.offset + p.available).min(end).max(from);
            let have_rel = (have - offset) as usize;
            read_full(
                &p.file,
                &mut buf[from_rel..have_rel],
                p.file_offset + (from - p.offset),
            )?;
            buf[have_rel..to_rel].fill(0);
            done = to_rel;
        }
        buf[done..].fill(0);
        Ok(n)
    }

    /// Writes the image to `out` (a new regular file, sparse: only mapped
    /// extents are written; or `-` for standard output, zeros included)
    /// and hashes it.
    pub fn extract(&self, out: &Path) -> Result<ExtractReport> {
        let started = std::time::Instant::now();
        let sink = if out == Path::new("-") {
            Sink::Stream(std::io::stdout().lock())
        } else {
            let f = File::create(out).map_err(|e| Error::io(out, e))?;
            f.set_len(self.size).map_err(|e| Error::io(out, e))?;
            Sink::Sparse(f)
        };
        let sha256 = self.copy(sink, out)?;
        Ok(ExtractReport {
            layer: self.id.clone(),
            output: out.to_path_buf(),
            fs: self.fs.clone(),
            size: self.size,
            mapped_bytes: self.mapped_bytes(),
            extents: self.extents(),
            sha256,
            seconds: started.elapsed().as_secs_f64(),
            sources: self.files.clone(),
            warnings: self.warnings.clone(),
        })
    }

    /// Copies the mapped extents into `sink` in order; a second thread
    /// hashes the whole image (holes as zeros) meanwhile.
    fn copy(&self, mut sink: Sink<'_>, out: &Path) -> Result<String> {
        enum Msg {
            Data(Vec<u8>),
            Zeros(u64),
        }
        let (to_hasher, from_copier) = mpsc::sync_channel::<Msg>(8);
        let (recycle, reuse) = mpsc::channel::<Vec<u8>>();
        let hasher = std::thread::spawn(move || {
            let mut h = Sha256::new();
            let zeros = vec![0u8; CHUNK];
            for msg in from_copier {
                match msg {
                    Msg::Data(buf) => {
                        h.update(&buf);
                        let _ = recycle.send(buf);
                    }
                    Msg::Zeros(mut n) => {
                        while n > 0 {
                            let k = n.min(CHUNK as u64) as usize;
                            h.update(&zeros[..k]);
                            n -= k as u64;
                        }
                    }
                }
            }
            hex::encode(h.finalize())
        });
        let mut result = Ok(());
        let mut pos = 0u64;
        let send = |m: Msg| {
            to_hasher
                .send(m)
                .map_err(|_| Error::io(out, std::io::Error::other("the hashing thread stopped")))
        };
        for (i, p) in self.pieces.iter().enumerate() {
            // Ask for the next extent ahead of time: extents are scattered
            // over the backing file, where readahead cannot follow.
            if let Some(next) = self.pieces.get(i + 1) {
                next.prefetch();
            }
            if p.offset > pos {
                if let Err(e) =
                    send(Msg::Zeros(p.offset - pos)).and_then(|()| sink.zeros(p.offset - pos, out))
                {
                    result = Err(e);
                    break;
                }
            }
            let mut done = 0u64;
            while done < p.len {
                let k = (p.len - done).min(CHUNK as u64) as usize;
                let mut buf = reuse.try_recv().unwrap_or_default();
                buf.resize(k, 0);
                let at = p.offset + done;
                if let Err(e) = self.read_at(&mut buf, at) {
                    result = Err(Error::io(
                        self.files.first().cloned().unwrap_or_default(),
                        e,
                    ));
                    break;
                }
                if let Err(e) = sink
                    .write_at(&buf, at, out)
                    .and_then(|()| send(Msg::Data(buf)))
                {
                    result = Err(e);
                    break;
                }
                done += k as u64;
            }
            if result.is_err() {
                break;
            }
            pos = p.offset + p.len;
        }
        if result.is_ok() && pos < self.size {
            result =
                send(Msg::Zeros(self.size - pos)).and_then(|()| sink.zeros(self.size - pos, out));
        }
        if result.is_ok() {
            result = sink.finish(out);
        }
        drop(to_hasher);
        let digest = hasher
            .join()
            .map_err(|_| Error::Usage("the hashing thread panicked".into()))?;
        result.map(|()| digest)
    }
}

/// Where an extraction goes.
enum Sink<'a> {
    /// A regular file, sized beforehand: holes stay holes.
    Sparse(File),
    /// A stream: holes are written as zeros.
    Stream(std::io::StdoutLock<'a>),
}

impl Sink<'_> {
    fn write_at(&mut self, buf: &[u8], at: u64, out: &Path) -> Result<()> {
        match self {
            Sink::Sparse(f) => f.write_all_at(buf, at),
            Sink::Stream(s) => s.write_all(buf),
        }
        .map_err(|e| Error::io(out, e))
    }

    fn zeros(&mut self, mut n: u64, out: &Path) -> Result<()> {
        if let Sink::Stream(s) = self {
            let zeros = vec![0u8; CHUNK.min(n as usize)];
            while n > 0 {
                let k = n.min(zeros.len() as u64) as usize;
                s.write_all(&zeros[..k]).map_err(|e| Error::io(out, e))?;
                n -= k as u64;
            }
        }
        Ok(())
    }

    /// Flushes a stream; a file is left to the kernel to write back, as
    /// `cp` and `dd` do.
    fn finish(&mut self, out: &Path) -> Result<()> {
        match self {
            Sink::Sparse(_) => Ok(()),
            Sink::Stream(s) => s.flush(),
        }
        .map_err(|e| Error::io(out, e))
    }
}

/// Reads exactly `buf.len()` bytes at `offset`, zeros past the end of the file.
fn read_full(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf[done..].fill(0);
    Ok(())
}

/// What `extract` wrote.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ExtractReport {
    pub layer: String,
    pub output: PathBuf,
    pub fs: String,
    /// Bytes of the image.
    pub size: u64,
    /// Bytes the extents map (the rest is holes: zeros).
    pub mapped_bytes: u64,
    pub extents: usize,
    /// Of the whole image, holes included.
    pub sha256: String,
    pub seconds: f64,
    /// The backing files read.
    pub sources: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(pieces: Vec<Piece>, size: u64) -> BlockImage {
        BlockImage {
            id: "t".into(),
            fs: String::new(),
            size,
            pieces,
            files: Vec::new(),
            fingerprint: String::new(),
            warnings: Vec::new(),
        }
    }

    #[test]
    fn reads_extents_and_holes() {
        let f = tempfile::tempfile().unwrap_or_else(|e| panic!("{e}"));
        f.write_all_at(b"abcdefgh", 0)
            .unwrap_or_else(|e| panic!("{e}"));
        let f = Arc::new(f);
        let img = image(
            vec![
                Piece {
                    offset: 2,
                    len: 3,
                    file: f.clone(),
                    file_offset: 0,
                    available: 3,
                },
                Piece {
                    offset: 8,
                    len: 4,
                    file: f,
                    file_offset: 6,
                    // Only "gh" exists: the rest reads as zeros.
                    available: 2,
                },
            ],
            14,
        );
        let mut buf = vec![0xffu8; 20];
        assert_eq!(img.read_at(&mut buf, 0).unwrap_or(0), 14);
        assert_eq!(&buf[..14], b"\0\0abc\0\0\0gh\0\0\0\0");
        let mut buf = [0xffu8; 3];
        assert_eq!(img.read_at(&mut buf, 3).unwrap_or(0), 3);
        assert_eq!(&buf, b"bc\0");
        assert_eq!(img.read_at(&mut buf, 14).unwrap_or(9), 0);
    }
}
