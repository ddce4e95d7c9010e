//! Real ZFS pools made by OpenZFS 2.3 and dockerd 26 in a VM (issue 16):
//! the cached pool disks and their oracle are well formed. The driver's
//! tests against them come with the reader.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};

use docker_mount_tests::real::require;
use docker_mount_tests::real_zfs::{self, Pools};

fn pools() -> Option<&'static Pools> {
    if !require("zfs VM", real_zfs::available()) {
        return None;
    }
    Some(real_zfs::pools().unwrap())
}

/// Bytes `[off, off + len)` of the file at `p`.
fn bytes_at(p: &std::path::Path, off: u64, len: usize) -> Vec<u8> {
    let mut f = File::open(p).unwrap();
    f.seek(SeekFrom::Start(off)).unwrap();
    let mut b = vec![0; len];
    f.read_exact(&mut b).unwrap();
    b
}

/// Whether `hay` contains `needle`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn vm_disk_has_the_kernel_and_zfs() {
    if !require("zfs VM", real_zfs::available()) {
        return;
    }
    let vm = real_zfs::vm().unwrap();
    eprintln!("{:#?}", vm.info);
    assert!(vm.kernel.is_file() && vm.initrd.is_file() && vm.root_img.is_file());
    assert!(vm.info.kernel.starts_with("6.12"), "{}", vm.info.kernel);
    let version = |p: &str| {
        vm.info
            .versions
            .iter()
            .find(|(n, _)| n == p)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    assert!(
        version("zfs-dkms").starts_with("2.3"),
        "{:?}",
        vm.info.versions
    );
}

#[test]
fn pool_disks_hold_vdev_labels_and_keep_their_hash() {
    let Some(p) = pools() else { return };
    eprintln!("{:#?}", p.info);
    for d in &p.info.disks {
        let path = p.disk(&d.name);
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), d.bytes, "{}", d.name);
        assert!(meta.permissions().readonly(), "{} is writable", d.name);
        assert_eq!(
            real_zfs::sha256_file(&path).unwrap(),
            d.sha256,
            "{} changed",
            d.name
        );
        // zpool partitions whole disks: GPT, the vdev in partition 1 at
        // 1 MiB. Label 0's nvlist is at 16 KiB into the vdev, its uberblock
        // ring at 128 KiB.
        assert_eq!(&bytes_at(&path, 512, 8), b"EFI PART", "{}", d.name);
        let vdev = 1 << 20;
        let nvlist = bytes_at(&path, vdev + (16 << 10), 112 << 10);
        let pool = d.name.split(['.', '-']).next().unwrap();
        assert!(
            contains(&nvlist, pool.as_bytes()),
            "{}: no pool name",
            d.name
        );
        assert!(contains(&nvlist, b"pool_guid"), "{}", d.name);
        let ring = bytes_at(&path, vdev + (128 << 10), 128 << 10);
        let magic = 0x00ba_b10c_u64.to_le_bytes();
        assert!(
            ring.chunks(4096).any(|ub| ub[..8] == magic),
            "{}: no uberblock",
            d.name
        );
    }
    assert_eq!(p.pool_disks("dmmirror").len(), 2);
    assert_eq!(p.pool_disks("dmraidz").len(), 3);
    assert_eq!(p.pool_disks("dmpool"), vec![p.docker_disk()]);
}

#[test]
fn oracle_is_well_formed() {
    let Some(p) = pools() else { return };
    let steps = fs::read_to_string(p.oracle_file("steps.txt")).unwrap();
    assert!(steps.lines().last().unwrap().starts_with("DONE"), "{steps}");

    // The containers, in their states.
    let ps = p.ps().unwrap();
    let state = |name: &str| {
        ps.iter()
            .find(|c| c["Names"] == name)
            .unwrap_or_else(|| panic!("no container {name} in {ps:?}"))["State"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(state("running"), "running");
    assert_eq!(state("exited"), "exited");
    assert_eq!(state("created"), "created");
    assert_eq!(state("deep"), "exited");
    assert_eq!(ps.len(), 4, "{ps:?}");
    let inspect = p.inspect().unwrap();
    assert_eq!(inspect.as_array().unwrap().len(), 4);
    for c in inspect.as_array().unwrap() {
        assert_eq!(c["Driver"], "zfs", "{c}");
        let ds = c["GraphDriver"]["Data"]["Dataset"].as_str().unwrap();
        assert!(ds.starts_with("dmpool/docker/"), "{ds}");
    }

    // Exports are tars of whole trees; diffs name the changes.
    let export_paths = |name: &str| -> BTreeSet<String> {
        let mut a = tar::Archive::new(File::open(p.export_tar(name)).unwrap());
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    for name in ["running", "exited", "created"] {
        let paths = export_paths(name);
        assert!(paths.contains("bin/busybox"), "{name}: {paths:?}");
        assert!(
            paths.contains("data/fifo") && paths.contains("data/symlink"),
            "{name}"
        );
    }
    // The deep image's 110 COPY layers, f1 removed by its container.
    let deep = export_paths("deep");
    assert!(deep.contains("bin/busybox") && deep.contains("deep/changed"));
    assert!(!deep.contains("deep/f1"), "{deep:?}");
    assert!((2..=110).all(|i| deep.contains(&format!("deep/f{i}"))));
    let diff = p.diff("deep").unwrap();
    assert!(diff.contains("A /deep/changed"), "{diff}");
    assert!(diff.lines().any(|l| l == "D /deep/f1"), "{diff}");
    let running = p.diff("running").unwrap();
    assert!(running.contains("C /data/keep/renamed.txt"), "{running}");
    assert!(running.contains("D /data/seq.txt"), "{running}");
    assert!(running.contains("A /new-dir/f"), "{running}");
    assert!(p.diff("exited").unwrap().contains("D /data/many"));

    // Datasets: the docker root, its layers as clones of (deferred
    // destroyed) snapshots, the administrator's snapshot, the other pools.
    let list = p.zfs_list().unwrap();
    let names: BTreeSet<&str> = list.iter().map(|e| e.name.as_str()).collect();
    for n in [
        "dmpool/docker",
        "dmpool/docker@admin-before-cleanup",
        "dmpool/zstd",
        "dmpool/lzjb",
        "dmpool/zle",
        "dmraidz/lz4",
        "dmraidz/zstd19",
    ] {
        assert!(names.contains(n), "{n} not in {names:?}");
    }
    let layers: Vec<_> = list
        .iter()
        .filter(|e| e.name.starts_with("dmpool/docker/") && e.kind == "filesystem")
        .collect();
    // dm-base, three RUN layers of dm-app, 110 COPY layers of dm-deep, and
    // -init + container layers of four containers.
    assert!(layers.len() >= 1 + 3 + 110 + 4 * 2, "{}", layers.len());
    assert!(layers
        .iter()
        .all(|l| l.mountpoint.as_deref() == Some("legacy")));
    let clones = layers.iter().filter(|l| l.origin.is_some()).count();
    assert_eq!(
        clones,
        layers.len() - 1,
        "every layer but the base is a clone"
    );
    let docker = list.iter().find(|e| e.name == "dmpool/docker").unwrap();
    assert_eq!(docker.compression, "lz4");
    // OpenZFS 2.3 shows xattr=sa as "on" (SA-based is what "on" means
    // now); xattr=dir stays "dir".
    assert_eq!(docker.xattr, "on");
    let zstd = list.iter().find(|e| e.name == "dmpool/zstd").unwrap();
    assert_eq!(zstd.xattr, "dir");
    // Every unmounted layer's tree was taken.
    for l in layers.iter().filter(|l| l.mounted == Some(false)) {
        assert!(p.dataset_tar(&l.name).is_file(), "{}", l.name);
    }
    // What the administrator's snapshot holds and the live root no longer.
    let at_snap = fs::read_to_string(p.oracle_file("at-snapshot/ps.jsonl")).unwrap();
    assert!(at_snap.contains("removed-later"));
}
