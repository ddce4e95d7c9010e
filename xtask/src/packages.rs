//! Installs the system tools the tests use when they are missing.

use std::process::Command;

use anyhow::{bail, Result};

/// (command that must exist, Debian package providing it)
const NEEDED: &[(&str, &str)] = &[
    ("dockerd", "docker.io"),
    // podman pulls in conmon and an OCI runtime (crun or runc).
    ("podman", "podman"),
    ("conmon", "conmon"),
    // containerd 1.6 and ctr (the containerd image store's real tier); runc runs its containers.
    ("containerd", "containerd"),
    ("ctr", "containerd"),
    ("runc", "runc"),
    // A rootless dockerd (dockerd-rootless.sh, with --net=host: no slirp4netns).
    ("rootlesskit", "rootlesskit"),
    ("newuidmap", "uidmap"),
    ("busybox", "busybox-static"),
    ("mkfs.btrfs", "btrfs-progs"),
    ("thin_dump", "thin-provisioning-tools"),
    ("mkfs.xfs", "xfsprogs"),
    ("fusermount3", "fuse3"),
    ("mactime", "sleuthkit"),
    ("groff", "groff-base"),
    // The trixie tree of today's engines (tests/src/trixie.rs).
    ("debootstrap", "debootstrap"),
    // The zfs VM (tests/src/real_zfs.rs): its disks are made with
    // mkfs.ext4 -d and read back with debugfs; qemu is in ALONE.
    ("debugfs", "e2fsprogs"),
    ("qemu-system-x86_64", "qemu-system-x86"),
    // Turbinia's and Timesketch's PyPI packages (tests/src/pyvenv.rs).
    ("python3", "python3"),
    ("pip3", "python3-pip"),
];

/// (Python module Debian's python3 must import, package providing it):
/// `python3 -m venv` needs ensurepip, which Debian ships apart.
const PYTHON_MODULES: &[(&str, &str)] = &[("ensurepip", "python3-venv"), ("venv", "python3-venv")];

/// Packages installed each in its own apt-get call: qemu-system-x86 in one
/// call with others once made apt answer "held broken packages".
const ALONE: &[&str] = &["qemu-system-x86"];

fn have(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .chain(["/usr/sbin".into(), "/sbin".into()])
                .any(|d| d.join(cmd).is_file())
        })
        .unwrap_or(false)
}

/// Whether Debian's python3 (the tests' `/usr/bin/python3`) imports `module`.
fn python_imports(module: &str) -> bool {
    Command::new("/usr/bin/python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn ensure() -> Result<()> {
    let mut missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(c, _)| !have(c))
        .map(|(_, p)| *p)
        .chain(
            PYTHON_MODULES
                .iter()
                .filter(|(m, _)| !python_imports(m))
                .map(|(_, p)| *p),
        )
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        eprintln!("xtask: not root, cannot install {}; privileged tests will skip (and fail under CI=true)", missing.join(" "));
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    let env = [("DEBIAN_FRONTEND", "noninteractive")];
    let update = Command::new("apt-get")
        .args(["update", "-qq"])
        .envs(env)
        .status()?;
    if !update.success() {
        bail!("apt-get update failed");
    }
    let (alone, together): (Vec<&str>, Vec<&str>) = missing.iter().partition(|p| ALONE.contains(p));
    let calls = std::iter::once(together)
        .chain(alone.into_iter().map(|p| vec![p]))
        .filter(|c| !c.is_empty());
    for packages in calls {
        let install = Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&packages)
            .envs(env)
            .status()?;
        if !install.success() {
            bail!("apt-get could not install {}", packages.join(" "));
        }
    }
    Ok(())
}
