//! What this machine lets docker-mount do: root or not, the kernel's
//! overlay, FUSE and loop devices, the new mount API's `lowerdir+`, the
//! private noatime view. Probes touch only `/proc`, `/dev`, `/sys` and a
//! temporary directory of this process: never evidence, and they create no
//! filesystem and leave no mount.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use docker_mount_core::beneath::Beneath;

/// The answer to one question about the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Yes,
    No,
    /// Could not be told (usually: probing needs root).
    Unknown,
}

/// One capability: the answer and how it was found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Check {
    pub status: Status,
    pub detail: String,
}

impl Check {
    fn yes(detail: impl Into<String>) -> Check {
        Check {
            status: Status::Yes,
            detail: detail.into(),
        }
    }
    fn no(detail: impl Into<String>) -> Check {
        Check {
            status: Status::No,
            detail: detail.into(),
        }
    }
    fn unknown(detail: impl Into<String>) -> Check {
        Check {
            status: Status::Unknown,
            detail: detail.into(),
        }
    }
    pub fn is_yes(&self) -> bool {
        self.status == Status::Yes
    }
}

/// Everything `doctor` reports about the machine.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Capabilities {
    /// The kernel release (`uname -r`).
    pub kernel: String,
    pub euid: u32,
    /// Effective uid 0.
    pub root: bool,
    /// CAP_SYS_ADMIN in the effective set: what kernel mounts need.
    pub cap_sys_admin: bool,
    /// The kernel's overlay filesystem (kernel mounts of layer stacks).
    pub overlay: Check,
    /// `lowerdir+` (new mount API, Linux >= 6.8): any number of layers.
    pub lowerdir_plus: Check,
    /// A private read-only noatime view (`open_tree` + `mount_setattr`),
    /// through which reads never update atimes.
    pub noatime_view: Check,
    /// The kernel's FUSE filesystem and `/dev/fuse`.
    pub fuse: Check,
    /// `fusermount3`, setuid root: FUSE mounts without root.
    pub fusermount3: Check,
    /// `user_allow_other` in /etc/fuse.conf: `--allow-other` without root.
    pub user_allow_other: bool,
    /// Loop devices (`/dev/loop-control`): block image layers.
    pub loop_devices: Check,
}

impl Capabilities {
    /// Kernel mounts (overlay, bind) are possible.
    pub fn kernel_mounts(&self) -> bool {
        self.cap_sys_admin && self.overlay.status != Status::No
    }
    /// FUSE mounts are possible (as root, or through fusermount3).
    pub fn fuse_mounts(&self) -> bool {
        self.fuse.is_yes() && (self.cap_sys_admin || self.fusermount3.is_yes())
    }
}

/// Probes the machine.
pub fn probe() -> Capabilities {
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let euid = nix::unistd::geteuid().as_raw();
    let cap_sys_admin = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| effective_caps(&s))
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0);
    let scratch = tempfile::Builder::new()
        .prefix("docker-mount-doctor-")
        .tempdir();
    let (lowerdir_plus, noatime_view) = match &scratch {
        Ok(dir) => (
            lowerdir_plus(dir.path(), cap_sys_admin),
            noatime_view(dir.path(), cap_sys_admin),
        ),
        Err(e) => {
            let why = format!(
                "cannot make a temporary directory to probe with ({e}); set TMPDIR to a writable directory"
            );
            (Check::unknown(why.clone()), Check::unknown(why))
        }
    };
    Capabilities {
        overlay: filesystem(&filesystems, "overlay", &kernel, "fs/overlayfs/overlay.ko"),
        lowerdir_plus,
        noatime_view,
        fuse: fuse(&filesystems, &kernel),
        fusermount3: fusermount3(),
        user_allow_other: user_allow_other(),
        loop_devices: loop_devices(&kernel),
        kernel,
        euid,
        root: euid == 0,
        cap_sys_admin,
    }
}

const CAP_SYS_ADMIN: u32 = 21;

/// The `CapEff` mask of a `/proc/<pid>/status` text.
fn effective_caps(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// Whether `/proc/filesystems` lists `name`.
fn listed(filesystems: &str, name: &str) -> bool {
    filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some(name))
}

/// A kernel module file of this kernel (`.ko`, possibly compressed).
fn module_present(kernel: &str, rel: &str) -> Option<PathBuf> {
    let base = Path::new("/lib/modules").join(kernel).join("kernel");
    ["", ".xz", ".zst", ".gz"]
        .iter()
        .map(|ext| base.join(format!("{rel}{ext}")))
        .find(|p| p.is_file())
}

fn filesystem(filesystems: &str, name: &str, kernel: &str, module: &str) -> Check {
    if listed(filesystems, name) {
        return Check::yes(format!("{name} is in /proc/filesystems"));
    }
    match module_present(kernel, module) {
        Some(m) => Check::yes(format!(
            "{name} is not loaded yet; its module {} loads on the first mount (as root: modprobe {name})",
            m.display()
        )),
        None => Check::no(format!(
            "{name} is neither in /proc/filesystems nor a module of kernel {kernel}"
        )),
    }
}

fn lowerdir_plus(dir: &Path, cap_sys_admin: bool) -> Check {
    if !cap_sys_admin {
        return Check::unknown("probing needs root (CAP_SYS_ADMIN); run doctor as root to know");
    }
    match crate::mounts::kernel::probe_lowerdir_plus(dir) {
        Ok(()) => Check::yes(
            "overlay takes lowerdir+: mounts of any depth, through the new mount API",
        ),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Check::no(
            "overlay has no lowerdir+ (Linux < 6.8): mount(2) is used, whose one-page option string bounds the depth to hundreds of layers",
        ),
        Err(e) if e.kind() == std::io::ErrorKind::Unsupported => {
            Check::no("no new mount API (Linux < 5.2): mount(2) is used")
        }
        Err(e) => Check::no(format!("probe failed: {e}")),
    }
}

fn noatime_view(dir: &Path, cap_sys_admin: bool) -> Check {
    if !cap_sys_admin {
        return Check::no(
            "needs root (CAP_SYS_ADMIN): evidence is read directly, with O_NOATIME where the files are yours; mount the evidence read-only or noatime",
        );
    }
    match Beneath::open(dir).ok().and_then(|b| b.noatime_clone()) {
        Some(_) => Check::yes("reads go through a private read-only noatime view of the root"),
        None => Check::no(
            "open_tree/mount_setattr failed (Linux < 5.12?): mount the evidence read-only or noatime",
        ),
    }
}

fn char_device(path: &str) -> Option<std::fs::Metadata> {
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.file_type().is_char_device())
}

fn fuse(filesystems: &str, kernel: &str) -> Check {
    let fs = filesystem(filesystems, "fuse", kernel, "fs/fuse/fuse.ko");
    if !fs.is_yes() {
        return fs;
    }
    match char_device("/dev/fuse") {
        Some(m) => Check::yes(format!(
            "fuse is available and /dev/fuse exists (mode {:o})",
            m.mode() & 0o777
        )),
        None => Check::no(
            "/dev/fuse is missing: modprobe fuse, or give the container --device /dev/fuse",
        ),
    }
}

fn fusermount3() -> Check {
    let Some(path) = crate::mounts::fuse::fusermount_path() else {
        return Check::no("fusermount3 is not on PATH: install fuse3 for FUSE mounts without root");
    };
    match std::fs::metadata(&path) {
        Ok(m) if m.uid() == 0 && m.mode() & 0o4000 != 0 => {
            Check::yes(format!("{} (setuid root)", path.display()))
        }
        Ok(_) => Check::no(format!(
            "{} is not setuid root: FUSE mounts without root will fail",
            path.display()
        )),
        Err(e) => Check::no(format!("{}: {e}", path.display())),
    }
}

fn user_allow_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf").is_ok_and(|s| {
        s.lines()
            .any(|l| l.split('#').next().unwrap_or("").trim() == "user_allow_other")
    })
}

fn loop_devices(kernel: &str) -> Check {
    if char_device("/dev/loop-control").is_some() {
        return Check::yes("/dev/loop-control exists");
    }
    if Path::new("/sys/module/loop").exists() {
        return Check::no("the loop driver is loaded but /dev/loop-control is missing");
    }
    match module_present(kernel, "drivers/block/loop.ko") {
        Some(_) => {
            Check::yes("the loop module is not loaded; it loads on first use (modprobe loop)")
        }
        None => Check::no("no loop devices: /dev/loop-control is missing"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_effective_caps() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(effective_caps(status), Some(0x1ff_ffff_ffff));
        assert_eq!(effective_caps("Name: x\n"), None);
    }

    #[test]
    fn lists_filesystems() {
        let fs = "nodev\tsysfs\n\text4\nnodev\toverlay\n";
        assert!(listed(fs, "overlay"));
        assert!(listed(fs, "ext4"));
        assert!(!listed(fs, "fuse"));
    }
}
