//! A real dockerd's overlay2 root on an ext4 partition image, where a
//! container created a file in its rw layer and deleted it: the case of
//! `attribute --journal` (issue 20). Built per run (a minute), in a
//! temporary directory the returned [`JournalCase`] owns.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::mounts::mount_options;
use crate::real::{
    import_args, make_base_rootfs, run_ok, stop_dockerd, tar_rootfs, Daemon, Leftovers, BUSYBOX,
};

const LEFTOVERS: Leftovers = Leftovers {
    tag: "dmj.",
    stop: stop_dockerd,
};

/// The container's name, and the file it wrote and deleted.
pub const CONTAINER: &str = "c-deleter";
pub const DELETED: &str = "/root/stolen-data";

pub struct JournalCase {
    /// Holds everything; removed on drop.
    pub dir: tempfile::TempDir,
    /// The ext4 partition image whose root directory is the docker root.
    pub image: PathBuf,
    pub container_id: String,
}

/// Builds the case: mkfs, a loop mount as dockerd's data root, the
/// container's deed, dockerd killed and everything unmounted.
pub fn build() -> JournalCase {
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path();
    let image = dest.join("part.ext4");
    fs::File::create(&image)
        .and_then(|f| f.set_len(1 << 30))
        .unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    run_ok(
        Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image),
        120,
    );
    let root = dest.join("root");
    fs::create_dir_all(&root).expect("mkdir root");
    run_ok(
        Command::new("mount")
            .args(["-t", "ext4", "-o", "loop"])
            .arg(&image)
            .arg(&root),
        60,
    );
    let mut d = Daemon::start(
        &LEFTOVERS,
        None,
        &root,
        dest,
        &["--storage-driver", "overlay2"],
    );
    let rootfs = dest.join("base-rootfs");
    make_base_rootfs(&rootfs, Path::new(BUSYBOX));
    let tar = dest.join("base.tar");
    tar_rootfs(&rootfs, &tar, true);
    d.docker(import_args(&tar, "dm-base:latest"));
    let script = format!(
        "echo secret > {DELETED}; sync; sleep 6; rm {DELETED}; sync; echo done > /root/kept; sync"
    );
    d.docker_timeout(
        [
            "run",
            "--network",
            "none",
            "--name",
            CONTAINER,
            "dm-base:latest",
            "sh",
            "-c",
            &script,
        ]
        .map(OsStr::new),
        120,
    );
    let container_id = d
        .docker(["inspect", "-f", "{{.Id}}", CONTAINER])
        .trim()
        .to_string();
    // Unmounts everything at and under the data root, the partition too.
    d.crash();
    drop(d);
    if mount_options(&root).is_some() {
        run_ok(Command::new("umount").arg(&root), 60);
    }
    JournalCase {
        dir,
        image,
        container_id,
    }
}
