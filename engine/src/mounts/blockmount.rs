//! Block image layers as directories, without copying them.
//!
//! The images are served as read-only files by a tiny FUSE filesystem of
//! this process ([`ImageFs`]: one file per image, read from its extents).
//! Each file is attached to a loop device set read-only
//! (`LO_FLAGS_READ_ONLY`, `LO_FLAGS_AUTOCLEAR`) and mounted
//! `ro,nosuid,nodev,noexec,noatime` with the filesystem's never-replaying
//! options (`noload` for ext4, `norecovery,nouuid` for xfs) in a private
//! temporary directory. Each mount is opened and at once detached
//! (`MNT_DETACH`), and so is the FUSE mount: nothing stays visible in the
//! mount table, and everything unwinds by itself when the last descriptor
//! goes, even if this process is killed: the directory descriptors hold
//! the filesystems, the filesystems their loop devices, the loop devices
//! their FUSE files, the FUSE files the FUSE server.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    LockOwner, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen,
    Request, Session, SessionACL,
};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::mounts::blockimage::BlockImage;
use crate::mounts::fuse::mount_fuse_as_root;
use docker_mount_core::beneath::Beneath;
use docker_mount_core::error::{Error, Result};

/// What mountinfo would call our image server, were it still attached.
const FUSE_SOURCE: &str = "docker-mount-image";
/// The kernel may cache attributes this long: images do not change.
const TTL: Duration = Duration::from_secs(3600);

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

fn os_err(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

// ---------------------------------------------------------------------------
// The image server.

/// Block images as read-only files `0`, `1`, ... of a FUSE filesystem.
struct ImageFs {
    images: Vec<Arc<BlockImage>>,
    /// Owner of the files (the process's own ids).
    uid: u32,
    gid: u32,
}

const ROOT_INO: u64 = 1;

impl ImageFs {
    fn image(&self, ino: u64) -> Option<&Arc<BlockImage>> {
        ino.checked_sub(ROOT_INO + 1)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.images.get(i))
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (kind, perm, size) = if ino == ROOT_INO {
            (FileType::Directory, 0o500, 0)
        } else {
            (FileType::RegularFile, 0o400, self.image(ino)?.size)
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: SystemTime::UNIX_EPOCH,
            mtime: SystemTime::UNIX_EPOCH,
            ctime: SystemTime::UNIX_EPOCH,
            crtime: SystemTime::UNIX_EPOCH,
            kind,
            perm,
            nlink: if ino == ROOT_INO { 2 } else { 1 },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

impl Filesystem for ImageFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let ino = (parent.0 == ROOT_INO)
            .then(|| {
                std::str::from_utf8(name.as_bytes())
                    .ok()?
                    .parse::<u64>()
                    .ok()
            })
            .flatten()
            .and_then(|i| i.checked_add(ROOT_INO + 1));
        match ino.and_then(|i| self.attr(i)) {
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.0 & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        match self.image(ino.0) {
            Some(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(image) = self.image(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let mut buf = vec![0u8; size as usize];
        match image.read_at(&mut buf, offset) {
            Ok(n) => reply.data(&buf[..n]),
            Err(e) => {
                tracing::warn!("block image {}: {e}", image.id);
                reply.error(Errno::EIO)
            }
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Nothing is ever written.
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != ROOT_INO {
            return reply.error(Errno::ENOTDIR);
        }
        let mut entries = vec![
            (ROOT_INO, FileType::Directory, ".".to_string()),
            (ROOT_INO, FileType::Directory, "..".to_string()),
        ];
        entries.extend((0..self.images.len()).map(|i| {
            (
                ROOT_INO + 1 + i as u64,
                FileType::RegularFile,
                i.to_string(),
            )
        }));
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// Mounts an [`ImageFs`] on `dir` (as root, with our own `mount(2)`, so
/// that we decide when it is detached) and serves it from a thread.
fn serve_images(images: Vec<Arc<BlockImage>>, dir: &Path) -> Result<JoinHandle<()>> {
    let fd = mount_fuse_as_root(
        dir,
        FUSE_SOURCE,
        "allow_other,default_permissions,max_read=1048576",
        "the block images",
    )?;
    let fs = ImageFs {
        images,
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
    };
    let mut config = Config::default();
    config.acl = SessionACL::All;
    config.n_threads = Some(2);
    let session = match Session::from_fd(fs, fd, SessionACL::All, config) {
        Ok(s) => s,
        Err(e) => {
            let _ = umount2(dir, MntFlags::MNT_DETACH);
            return Err(Error::io(dir, e));
        }
    };
    std::thread::Builder::new()
        .name("block-images".into())
        .spawn(move || {
            if let Err(e) = session.run() {
                tracing::warn!("block image server: {e}");
            }
        })
        .map_err(|e| {
            let _ = umount2(dir, MntFlags::MNT_DETACH);
            Error::io(dir, e)
        })
}

// ---------------------------------------------------------------------------
// Loop devices.

/// A loop device we configured; closing it lets `LO_FLAGS_AUTOCLEAR` free
/// the device once nothing else holds it.
struct Loop {
    dev: OwnedFd,
    path: PathBuf,
}

/// The device node of loop device `n`: `/dev/loop<n>`, or one made in
/// `scratch` from sysfs's numbers when /dev lacks it (no devtmpfs).
fn loop_node(n: i32, scratch: &Path) -> std::io::Result<PathBuf> {
    let dev = PathBuf::from(format!("/dev/loop{n}"));
    if dev.exists() {
        return Ok(dev);
    }
    let numbers = std::fs::read_to_string(format!("/sys/block/loop{n}/dev"))?;
    let (major, minor) = numbers
        .trim()
        .split_once(':')
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .ok_or_else(|| std::io::Error::other(format!("/sys/block/loop{n}/dev: {numbers:?}")))?;
    let node = scratch.join(format!("loop{n}"));
    nix::sys::stat::mknod(
        &node,
        nix::sys::stat::SFlag::S_IFBLK,
        nix::sys::stat::Mode::from_bits_truncate(0o400),
        nix::sys::stat::makedev(major, minor),
    )?;
    Ok(node)
}

/// Attaches `file` (`size` bytes) to a free loop device, read-only.
fn attach_loop(file: &File, size: u64, label: &str, scratch: &Path) -> Result<Loop> {
    let control = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags_cloexec()
        .open("/dev/loop-control")
        .map_err(|e| Error::io(Path::new("/dev/loop-control"), e))?;
    let mut last = None;
    for _ in 0..32 {
        // SAFETY: an ioctl without arguments on a valid descriptor.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(Error::io(
                Path::new("/dev/loop-control"),
                os_err("LOOP_CTL_GET_FREE"),
            ));
        }
        let path =
            loop_node(n, scratch).map_err(|e| Error::io(Path::new("/dev/loop-control"), e))?;
        let dev = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags_cloexec()
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut name = [0u8; LO_NAME_SIZE];
        for (d, s) in name.iter_mut().zip(label.bytes().take(LO_NAME_SIZE - 1)) {
            *d = s;
        }
        let config = LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: size,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                lo_file_name: name,
                lo_crypt_name: [0; LO_NAME_SIZE],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: a valid descriptor and a loop_config that outlives the call.
        let rc = unsafe {
            libc::ioctl(
                dev.as_raw_fd(),
                LOOP_CONFIGURE as _,
                &config as *const LoopConfig,
            )
        };
        if rc == 0 {
            return Ok(Loop {
                dev: OwnedFd::from(dev),
                path,
            });
        }
        let raw = std::io::Error::last_os_error();
        let e = std::io::Error::new(raw.kind(), format!("LOOP_CONFIGURE: {raw}"));
        if raw.raw_os_error() != Some(libc::EBUSY) {
            return Err(Error::io(&path, e));
        }
        // Another process took it first: ask again.
        last = Some(e);
    }
    Err(Error::io(
        Path::new("/dev/loop-control"),
        last.unwrap_or_else(|| std::io::Error::other("no free loop device")),
    ))
}

trait CloexecOpen {
    fn custom_flags_cloexec(&mut self) -> &mut Self;
}

impl CloexecOpen for std::fs::OpenOptions {
    fn custom_flags_cloexec(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_CLOEXEC)
    }
}

// ---------------------------------------------------------------------------
// Mounting.

/// The kernel filesystem type and data options a filesystem is mounted with.
pub fn mount_options(fs: &str) -> Option<(&'static str, &'static str)> {
    match fs {
        // ext2 and ext3 are mounted by the ext4 driver; noload replays no journal.
        "ext4" | "ext3" | "ext2" => Some(("ext4", "noload")),
        // All of docker's devices share their base's UUID.
        "xfs" => Some(("xfs", "norecovery,nouuid")),
        _ => None,
    }
}

/// The mounted block images of a view, each a directory descriptor of its
/// filesystem's root. Everything is detached already: the filesystems go
/// when the last descriptor does (at the latest when the process exits).
#[derive(Debug)]
pub struct BlockMounts {
    /// The roots of the mounted filesystems, in the order of the images.
    pub roots: Vec<Arc<Beneath>>,
}

/// Filesystems mounted by this process, by image fingerprint: a device
/// shared by many views (a base layer under every image, in `find`) is
/// mounted once. Entries live as long as the process.
static MOUNTED: Mutex<Vec<(String, Arc<Beneath>)>> = Mutex::new(Vec::new());

/// Detaches a mount point on drop unless told it is gone.
struct Attached<'a>(Option<&'a Path>);

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            let _ = umount2(p, MntFlags::MNT_DETACH);
        }
    }
}

impl Attached<'_> {
    fn detach(mut self) -> std::io::Result<()> {
        match self.0.take() {
            Some(p) => umount2(p, MntFlags::MNT_DETACH).map_err(std::io::Error::from),
            None => Ok(()),
        }
    }
}

/// Mounts `images` read-only, each through the FUSE image server and a
/// read-only loop device (those this process mounted before are reused).
/// Needs root.
pub fn mount_images(images: Vec<Arc<BlockImage>>) -> Result<BlockMounts> {
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::Usage(
            "reading a block image layer (devicemapper) needs root, to loop-mount its filesystem; without root, `docker-mount extract` writes the device image for other tools".into(),
        ));
    }
    let mut cache = MOUNTED.lock().unwrap_or_else(|p| p.into_inner());
    let cached = |cache: &Vec<(String, Arc<Beneath>)>, img: &BlockImage| {
        cache
            .iter()
            .find(|(k, _)| *k == img.fingerprint)
            .map(|(_, r)| r.clone())
    };
    let mut missing: Vec<Arc<BlockImage>> = Vec::new();
    for img in &images {
        if cached(&cache, img).is_none()
            && !missing.iter().any(|m| m.fingerprint == img.fingerprint)
        {
            missing.push(img.clone());
        }
    }
    if !missing.is_empty() {
        let fingerprints: Vec<String> = missing.iter().map(|m| m.fingerprint.clone()).collect();
        let roots = mount_new(missing)?;
        cache.extend(
            fingerprints
                .into_iter()
                .zip(roots.into_iter().map(Arc::new)),
        );
    }
    let roots = images
        .iter()
        .map(|img| {
            cached(&cache, img).ok_or_else(|| {
                Error::Usage(format!("layer {}: its device was not mounted", img.id))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(BlockMounts { roots })
}

/// Mounts `images` (one image server for them all); the roots, in order.
fn mount_new(images: Vec<Arc<BlockImage>>) -> Result<Vec<Beneath>> {
    let mut plan = Vec::with_capacity(images.len());
    for img in &images {
        let (fstype, data) = mount_options(&img.fs).ok_or_else(|| {
            Error::Usage(format!(
                "layer {}: cannot mount a {:?} filesystem (known: ext2, ext3, ext4, xfs); `docker-mount extract` writes the device image",
                img.id, img.fs
            ))
        })?;
        plan.push((fstype, data, img.size, img.id.clone()));
    }
    let scratch = tempfile::Builder::new()
        .prefix("docker-mount-dev-")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let fuse_dir = scratch.path().join("images");
    std::fs::create_dir(&fuse_dir).map_err(|e| Error::io(&fuse_dir, e))?;
    // The server thread ends by itself once the kernel lets go of the files.
    let _server = serve_images(images, &fuse_dir)?;
    let fuse_mounted = Attached(Some(&fuse_dir));
    let mut roots = Vec::with_capacity(plan.len());
    for (i, (fstype, data, size, id)) in plan.into_iter().enumerate() {
        let image_path = fuse_dir.join(i.to_string());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags_cloexec()
            .open(&image_path)
            .map_err(|e| Error::io(&image_path, e))?;
        let label = format!("docker-mount:{id}");
        let lo = attach_loop(&file, size, &label, scratch.path())?;
        drop(file);
        let mnt = scratch.path().join(format!("m{i}"));
        std::fs::create_dir(&mnt).map_err(|e| Error::io(&mnt, e))?;
        let flags = MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC
            | MsFlags::MS_NOATIME;
        mount(Some(&lo.path), &mnt, Some(fstype), flags, Some(data)).map_err(|e| {
            Error::io(
                &lo.path,
                std::io::Error::other(format!(
                    "cannot mount layer {id} ({fstype}, ro,{data}): {e}"
                )),
            )
        })?;
        let attached = Attached(Some(&mnt));
        // Hold the filesystem by a descriptor, then let go of the mount point.
        let root = Beneath::open(&mnt)?;
        attached.detach().map_err(|e| Error::io(&mnt, e))?;
        drop(lo.dev);
        roots.push(root);
    }
    fuse_mounted.detach().map_err(|e| Error::io(&fuse_dir, e))?;
    drop(scratch);
    Ok(roots)
}

/// Whether `/dev/fuse` and the loop devices can be used (for messages).
pub fn available() -> bool {
    Path::new("/dev/fuse").exists() && Path::new("/dev/loop-control").exists()
}
