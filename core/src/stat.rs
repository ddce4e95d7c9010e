//! File metadata as the view reports it.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    CharDev,
    BlockDev,
    Socket,
}

impl FileKind {
    pub fn from_mode(mode: u32) -> FileKind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFCHR => FileKind::CharDev,
            libc::S_IFBLK => FileKind::BlockDev,
            libc::S_IFSOCK => FileKind::Socket,
            _ => FileKind::File,
        }
    }

    /// The letter `docker diff`, `ls -l` and bodyfiles use.
    pub fn letter(self) -> char {
        match self {
            FileKind::File => '-',
            FileKind::Dir => 'd',
            FileKind::Symlink => 'l',
            FileKind::Fifo => 'p',
            FileKind::CharDev => 'c',
            FileKind::BlockDev => 'b',
            FileKind::Socket => 's',
        }
    }
}

/// Seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Time {
    pub sec: i64,
    pub nsec: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Stat {
    pub kind: FileKind,
    /// Permission bits with setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub rdev: u64,
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    pub atime: Time,
    pub mtime: Time,
    pub ctime: Time,
    /// Birth time, where the filesystem records one (statx `STATX_BTIME`).
    pub btime: Option<Time>,
}

impl Stat {
    pub fn from_libc(st: &libc::stat) -> Stat {
        Stat {
            kind: FileKind::from_mode(st.st_mode),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            rdev: st.st_rdev,
            dev: st.st_dev,
            ino: st.st_ino,
            nlink: st.st_nlink,
            atime: Time {
                sec: st.st_atime,
                nsec: st.st_atime_nsec,
            },
            mtime: Time {
                sec: st.st_mtime,
                nsec: st.st_mtime_nsec,
            },
            ctime: Time {
                sec: st.st_ctime,
                nsec: st.st_ctime_nsec,
            },
            btime: None,
        }
    }

    pub fn from_statx(st: &libc::statx) -> Stat {
        let time = |t: &libc::statx_timestamp| Time {
            sec: t.tv_sec,
            nsec: i64::from(t.tv_nsec),
        };
        let mode = u32::from(st.stx_mode);
        Stat {
            kind: FileKind::from_mode(mode),
            mode: mode & 0o7777,
            uid: st.stx_uid,
            gid: st.stx_gid,
            size: st.stx_size,
            rdev: libc::makedev(st.stx_rdev_major, st.stx_rdev_minor),
            dev: libc::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            nlink: u64::from(st.stx_nlink),
            atime: time(&st.stx_atime),
            mtime: time(&st.stx_mtime),
            ctime: time(&st.stx_ctime),
            btime: (st.stx_mask & libc::STATX_BTIME != 0).then(|| time(&st.stx_btime)),
        }
    }

    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// Device major and minor numbers (for device nodes).
    pub fn rdev_parts(&self) -> (u64, u64) {
        (libc::major(self.rdev) as u64, libc::minor(self.rdev) as u64)
    }
}
