//! A view as a tar stream, like `docker export`: PAX records for
//! sub-second mtimes, large ids and xattrs; hard links kept as links;
//! device nodes, fifos and non-UTF-8 names as they are.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tar::{EntryType, Header};

use crate::analysis::sink::Sink;
use crate::union::tree::fd_xattrs;
use crate::union::{FileKind, Node, Union};
use docker_mount_core::error::{Error, Result};

/// Read size for file contents: few system calls, yet small enough to stay
/// in the CPU cache between the read and the write.
const COPY_BUFFER: usize = 64 << 10;

/// Files from this size on are moved by the kernel into an output that
/// takes it ([`Sink::direct`]): smaller ones stay in the output's buffer
/// (moving one means writing out the buffer first).
const MOVE_MIN: u64 = 256 << 10;

/// The largest id an octal ustar field holds; larger ones also get PAX records.
const MAX_OCTAL_ID: u32 = 0o7777777;

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct ExportStats {
    pub entries: u64,
    pub files: u64,
    /// Bytes of file content (not of the tar stream).
    pub bytes: u64,
}

fn pax_records(node: &Node, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let st = &node.stat;
    let mut records = Vec::new();
    // The ustar header holds whole seconds; PAX carries the rest when there is any.
    if st.mtime.nsec != 0 {
        records.push((
            "mtime".to_string(),
            format!("{}.{:09}", st.mtime.sec, st.mtime.nsec).into_bytes(),
        ));
    }
    if st.uid > MAX_OCTAL_ID {
        records.push(("uid".into(), st.uid.to_string().into_bytes()));
    }
    if st.gid > MAX_OCTAL_ID {
        records.push(("gid".into(), st.gid.to_string().into_bytes()));
    }
    for (name, value) in xattrs {
        records.push((
            format!("SCHILY.xattr.{}", String::from_utf8_lossy(name)),
            value.clone(),
        ));
    }
    records
}

fn header_for(node: &Node) -> Header {
    let st = &node.stat;
    let mut h = Header::new_gnu();
    h.set_entry_type(match st.kind {
        FileKind::File => EntryType::Regular,
        FileKind::Dir => EntryType::Directory,
        FileKind::Symlink => EntryType::Symlink,
        FileKind::Fifo => EntryType::Fifo,
        FileKind::CharDev => EntryType::Char,
        FileKind::BlockDev => EntryType::Block,
        FileKind::Socket => EntryType::Regular,
    });
    // Like Go's archive/tar (and so docker export): the type bits in the mode field too.
    let type_bits = match st.kind {
        FileKind::File | FileKind::Socket => libc::S_IFREG,
        FileKind::Dir => libc::S_IFDIR,
        FileKind::Symlink => libc::S_IFLNK,
        FileKind::Fifo => libc::S_IFIFO,
        FileKind::CharDev => libc::S_IFCHR,
        FileKind::BlockDev => libc::S_IFBLK,
    };
    h.set_mode(st.mode | type_bits);
    h.set_uid(st.uid.into());
    h.set_gid(st.gid.into());
    h.set_mtime(st.mtime.sec.max(0) as u64);
    h.set_size(0);
    if matches!(st.kind, FileKind::CharDev | FileKind::BlockDev) {
        let (major, minor) = st.rdev_parts();
        // Device numbers beyond the header's range are left at zero.
        let _ = h.set_device_major(major as u32);
        let _ = h.set_device_minor(minor as u32);
    }
    h
}

/// Writes the whole view as a tar stream to `out`; `progress` is called
/// after each entry.
pub fn export(
    union: &Union,
    out: impl Sink,
    progress: &mut dyn FnMut(&ExportStats),
) -> Result<ExportStats> {
    export_with_ids(union, out, progress, None)
}

/// Maps an entry's `(uid, gid)` as stored on disk to those written.
pub type IdMapper<'a> = &'a dyn Fn(u32, u32) -> (u32, u32);

/// Like [`export`], with owners rewritten by `ids` (a userns-remapped
/// root's host ids back to the container's, as `docker export` does).
pub fn export_with_ids(
    union: &Union,
    out: impl Sink,
    progress: &mut dyn FnMut(&ExportStats),
    ids: Option<IdMapper<'_>>,
) -> Result<ExportStats> {
    export_sources(
        &[Source {
            union,
            at: PathBuf::new(),
        }],
        out,
        progress,
        ids,
    )
}

/// One tree to export and where it goes in the stream: the container's view
/// at the top, a volume's `_data` at its mount point.
#[derive(Debug)]
pub struct Source<'a> {
    pub union: &'a Union,
    /// Where its root goes, relative (`""` for the top).
    pub at: PathBuf,
}

/// Exports several trees as one stream. What a later source mounts over
/// (its `at` directory's contents in earlier sources) is left out, as a
/// mount would hide it.
pub fn export_sources(
    sources: &[Source<'_>],
    out: impl Sink,
    progress: &mut dyn FnMut(&ExportStats),
    ids: Option<IdMapper<'_>>,
) -> Result<ExportStats> {
    let mut builder = tar::Builder::new(out);
    let mut stats = ExportStats::default();
    // (dev, ino) of multiply-linked files → the name written first.
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for (i, source) in sources.iter().enumerate() {
        let covered = |name: &Path| {
            sources[i + 1..]
                .iter()
                .any(|later| name != later.at && name.starts_with(&later.at))
        };
        // A mount point the view already has keeps the view's entry.
        let mut skip_root = i == 0;
        for earlier in &sources[..i] {
            if let Ok(rel) = source.at.strip_prefix(&earlier.at) {
                skip_root |= earlier.union.lookup(rel)?.is_some();
            }
        }
        source.union.walk(&mut |node| {
            let name = source.at.join(&node.path);
            // docker export has no entry for the root, and tar none for sockets.
            let is_root = node.path.as_os_str().is_empty();
            if (is_root && skip_root) || node.stat.kind == FileKind::Socket || covered(&name) {
                return Ok(());
            }
            let mut node = node.clone();
            if let Some(map) = ids {
                (node.stat.uid, node.stat.gid) = map(node.stat.uid, node.stat.gid);
            }
            write_entry(
                source.union,
                &mut builder,
                &node,
                &name,
                &mut links,
                &mut stats,
            )?;
            stats.entries += 1;
            progress(&stats);
            Ok(())
        })?;
    }
    builder.into_inner().map_err(output_error)?;
    Ok(stats)
}

fn output_error(cause: std::io::Error) -> Error {
    Error::Io {
        path: PathBuf::from("<output>"),
        cause,
    }
}

/// Writes `node` (read from its layer) under `name` in the stream.
fn write_entry<W: Sink>(
    union: &Union,
    builder: &mut tar::Builder<W>,
    node: &Node,
    name: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    stats: &mut ExportStats,
) -> Result<()> {
    let tree = union.tree(node);
    let evidence = || tree.path().join(&node.path);
    let io = |cause: std::io::Error| Error::Io {
        path: evidence(),
        cause,
    };
    let out = output_error;
    let st = &node.stat;
    let mut header = header_for(node);
    if st.kind == FileKind::File && st.nlink > 1 {
        if let Some(first) = links.get(&(st.dev, st.ino)) {
            header.set_entry_type(EntryType::Link);
            return builder.append_link(&mut header, name, first).map_err(out);
        }
        links.insert((st.dev, st.ino), name.to_path_buf());
    }
    // A regular file is opened once, for its xattrs and its content.
    let file = match st.kind {
        FileKind::File => Some(tree.open_listed(&node.path, st).map_err(io)?),
        _ => None,
    };
    let xattrs = match &file {
        Some(f) => fd_xattrs(f.as_raw_fd()).map_err(io)?,
        None => tree.xattrs(&node.path, st.kind).map_err(io)?,
    };
    let records = pax_records(node, &xattrs);
    if !records.is_empty() {
        builder
            .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(out)?;
    }
    match (st.kind, file) {
        (FileKind::Symlink, _) => {
            let target = tree.readlink(&node.path).map_err(io)?;
            builder
                .append_link(&mut header, name, OsStr::from_bytes(&target))
                .map_err(out)
        }
        (FileKind::File, Some(file)) => {
            header.set_size(st.size);
            stats.files += 1;
            // The header first (with the size), then the content streamed
            // straight to the output in large reads, then the padding.
            builder
                .append_data(&mut header, name, std::io::empty())
                .map_err(out)?;
            copy_content(file, st.size, builder.get_mut(), stats).map_err(io)
        }
        _ => builder
            .append_data(&mut header, name, std::io::empty())
            .map_err(out),
    }
}

/// Copies exactly `size` bytes of `file` and the tar padding after them. A
/// file that shrank since it was listed is an error (the stream would lie).
fn copy_content(
    mut file: std::fs::File,
    size: u64,
    out: &mut impl Sink,
    stats: &mut ExportStats,
) -> std::io::Result<()> {
    if size > COPY_BUFFER as u64 {
        // Read once, front to back: a wider read-ahead (a hint on this
        // descriptor only; nothing of the file changes).
        // SAFETY: plain fadvise on a valid descriptor.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_SEQUENTIAL) };
    }
    let mut left = size;
    if size >= MOVE_MIN {
        if let Some(direct) = out.direct()? {
            let moved = direct.move_from(&file, size)?;
            stats.bytes += moved;
            left -= moved;
        }
    }
    let mut buf = vec![0u8; COPY_BUFFER.min(left.max(1) as usize)];
    while left > 0 {
        let want = buf.len().min(left as usize);
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("file shrank while being read: {left} of {size} bytes missing"),
            ));
        }
        out.write_all(&buf[..n])?;
        stats.bytes += n as u64;
        left -= n as u64;
    }
    let pad = (512 - size % 512) % 512;
    out.write_all(&[0u8; 512][..pad as usize])
}
