//! A view as a tar stream, like `docker export`: PAX records for
//! sub-second mtimes, large ids and xattrs; hard links kept as links;
//! device nodes, fifos and non-UTF-8 names as they are.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use serde::Serialize;
use tar::{EntryType, Header};

use crate::error::{Error, Result};
use crate::union::{FileKind, Node, Union};

/// The largest id an octal ustar field holds; larger ones also get PAX records.
const MAX_OCTAL_ID: u32 = 0o7777777;

/// What an export wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExportStats {
    pub entries: u64,
    pub files: u64,
    /// Bytes of file content (not of the tar stream).
    pub bytes: u64,
}

/// Wraps a reader so the bytes read are counted as they stream.
struct Counting<'a, R> {
    inner: R,
    stats: &'a mut ExportStats,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.stats.bytes += n as u64;
        Ok(n)
    }
}

fn pax_records(node: &Node, xattrs: &[(Vec<u8>, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let st = &node.stat;
    let mut records = vec![(
        "mtime".to_string(),
        format!("{}.{:09}", st.mtime.sec, st.mtime.nsec).into_bytes(),
    )];
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
    out: impl Write,
    progress: &mut dyn FnMut(&ExportStats),
) -> Result<ExportStats> {
    let mut builder = tar::Builder::new(out);
    let mut stats = ExportStats::default();
    // (dev, ino) of multiply-linked files → the path written first.
    let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
    union.walk(&mut |node| {
        // docker export has no entry for the root, and tar none for sockets.
        if node.path.as_os_str().is_empty() || node.stat.kind == FileKind::Socket {
            return Ok(());
        }
        write_entry(union, &mut builder, node, &mut links, &mut stats)?;
        stats.entries += 1;
        progress(&stats);
        Ok(())
    })?;
    builder.into_inner().map_err(output_error)?;
    Ok(stats)
}

fn output_error(cause: std::io::Error) -> Error {
    Error::Io {
        path: PathBuf::from("<output>"),
        cause,
    }
}

fn write_entry<W: Write>(
    union: &Union,
    builder: &mut tar::Builder<W>,
    node: &Node,
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
            return builder
                .append_link(&mut header, &node.path, first)
                .map_err(out);
        }
        links.insert((st.dev, st.ino), node.path.clone());
    }
    let xattrs = tree.xattrs(&node.path, st.kind).map_err(io)?;
    builder
        .append_pax_extensions(
            pax_records(node, &xattrs)
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice())),
        )
        .map_err(out)?;
    match st.kind {
        FileKind::Symlink => {
            let target = tree.readlink(&node.path).map_err(io)?;
            builder
                .append_link(&mut header, &node.path, OsStr::from_bytes(&target))
                .map_err(out)
        }
        FileKind::File => {
            let file = tree.open_file(&node.path).map_err(io)?;
            header.set_size(st.size);
            stats.files += 1;
            // A file that changed size under us would corrupt the stream: read exactly `size`.
            let mut reader = Counting {
                inner: file.take(st.size),
                stats,
            };
            builder
                .append_data(&mut header, &node.path, &mut reader)
                .map_err(io)
        }
        _ => builder
            .append_data(&mut header, &node.path, std::io::empty())
            .map_err(out),
    }
}
