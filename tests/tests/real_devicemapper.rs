//! devicemapper: a real overlay2 root converted to the devicemapper
//! layout (ext4 devices in a thin pool written by `thin_restore`; no kernel
//! here has device-mapper, no dockerd can make one). Oracles: the overlay2
//! root's `docker export`, `thin_dump` of the pool, and the device images
//! the converter packed.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use docker_mount_driver_devicemapper::crc32c::dm_checksum;
use docker_mount_driver_devicemapper::thin::{self, Options, Pool};
use docker_mount_tests::convert_dm::{self, DmRoot};
use docker_mount_tests::mounts::{assert_read_only_mount, MountPoint};
use docker_mount_tests::{cli, integrity, manifest, real};

/// Whether the tests can run here: root, dockerd (for the source root),
/// thin-provisioning-tools. Fails under CI=true instead of skipping.
fn require() -> bool {
    real::require_privileged()
        && docker_mount_tests::mounts::require_tools(&[
            "/usr/sbin/thin_restore",
            "/usr/sbin/thin_dump",
            "/usr/sbin/mkfs.ext4",
        ])
}

/// A container's mount id (its own device).
fn mount_id(r: &DmRoot, container_id: &str) -> String {
    let p = r
        .real
        .root
        .join("image/devicemapper/layerdb/mounts")
        .join(container_id)
        .join("mount-id");
    String::from_utf8(integrity::read_noatime(&p).unwrap())
        .unwrap()
        .trim()
        .to_string()
}

fn sha256_file(p: &Path) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut f = File::open(p).unwrap();
    std::io::copy(&mut f, &mut h).unwrap();
    hex::encode(h.finalize())
}

#[test]
fn devicemapper_pool_reads_like_thin_dump() {
    if !require() {
        return;
    }
    let r = convert_dm::devicemapper_root();
    let before = integrity::snapshot(&r.real.root);
    let meta = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(r.pool_metadata())
            .unwrap()
    };
    let pool = Pool::open(meta, Options::default()).unwrap();
    let sb = pool.superblock().clone();
    assert_eq!(sb.data_block_size as u64, convert_dm::DATA_BLOCK_SECTORS);
    assert_eq!(sb.data_space_map.nr_blocks, r.nr_data_blocks);
    assert_eq!(sb.transaction_id, r.transaction_id);
    assert_eq!(sb.time, r.time);
    // thin_dump reads a copy: it would update the evidence's atime.
    let scratch = tempfile::tempdir().unwrap();
    let copy = scratch.path().join("metadata");
    std::fs::write(&copy, integrity::read_noatime(&r.pool_metadata()).unwrap()).unwrap();
    let dump = convert_dm::thin_dump(&copy);
    let devices = pool.devices().unwrap();
    assert_eq!(devices.len(), r.devices.len());
    assert_eq!(dump.len(), r.devices.len());
    let roots = pool.mapping_roots().unwrap();
    for d in &devices {
        let mut got = Vec::new();
        pool.for_each_mapping(d.dev_id, roots[&d.dev_id], &mut |v, data, _| {
            got.push((v, data));
            Ok(())
        })
        .unwrap();
        let (dump_mapped, dump_maps) = &dump[&d.dev_id];
        assert_eq!(&got, dump_maps, "device {}: reader vs thin_dump", d.dev_id);
        assert_eq!(d.mapped_blocks, *dump_mapped);
        let known = r.devices.iter().find(|k| k.dev_id == d.dev_id).unwrap();
        assert_eq!(got, known.mappings, "device {} ({})", d.dev_id, known.id);
    }
    // Blocks are shared between devices: the pool holds fewer than they map.
    let mapped: u64 = devices.iter().map(|d| d.mapped_blocks).sum();
    let distinct: std::collections::BTreeSet<u64> = r
        .devices
        .iter()
        .flat_map(|d| d.mappings.iter().map(|m| m.1))
        .collect();
    assert!(
        (distinct.len() as u64) < mapped / 2,
        "{} distinct blocks for {mapped} mappings",
        distinct.len()
    );
    before.assert_unchanged(&integrity::snapshot(&r.real.root));
}

/// Every container's export, extraction and mount, against `docker export`.
fn containers_like_docker(r: &DmRoot) {
    let before = integrity::snapshot(&r.real.root);
    let listed = cli::run(&r.real.root, &["list", "--all", "--json"]).json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["driver"] == "devicemapper" && c["driver_loaded"] == true),
        "{listed}"
    );
    let out = tempfile::tempdir().unwrap();
    for c in &r.real.containers {
        let want = manifest::from_tar(&c.export_tar);
        let tar = out.path().join(format!("{}.tar", c.name));
        cli::run(
            &r.real.root,
            &["export", &c.name, "-o", tar.to_str().unwrap()],
        )
        .ok();
        let diffs = manifest::compare(&want, &manifest::from_tar(&tar), &[]);
        assert!(
            diffs.is_empty(),
            "{}: devicemapper export differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
        // The container's own device, extracted: the image that was packed.
        let img = out.path().join(format!("{}.img", c.name));
        let report = cli::run(
            &r.real.root,
            &["extract", &c.name, "-o", img.to_str().unwrap(), "--json"],
        )
        .json();
        let dev = r.device(&mount_id(r, &c.id));
        assert_eq!(
            report["sha256"],
            dev.sha256.as_str(),
            "{}: {report}",
            c.name
        );
        assert_eq!(report["size"], dev.size, "{}", c.name);
        assert_eq!(report["fs"], r.fs.name(), "{}", c.name);
        assert_eq!(
            report["mapped_bytes"],
            dev.mapped_blocks * convert_dm::DATA_BLOCK_SECTORS * 512,
            "{}",
            c.name
        );
        assert_eq!(
            sha256_file(&img),
            dev.sha256,
            "{}: the written image",
            c.name
        );
        let written = std::fs::metadata(&img).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert!(
            written.blocks() * 512 <= dev.mapped_blocks * 65536 + 65536,
            "{}: the image is not sparse ({} bytes allocated)",
            c.name,
            written.blocks() * 512
        );
        std::fs::remove_file(&img).unwrap();
        let mnt = MountPoint::new();
        cli::run(
            &r.real.root,
            &["mount", &c.name, mnt.path().to_str().unwrap()],
        )
        .ok();
        assert_read_only_mount(mnt.path());
        let diffs = manifest::compare(&want, &manifest::from_dir(mnt.path()), &[]);
        cli::run(&r.real.root, &["umount", mnt.path().to_str().unwrap()]).ok();
        assert!(
            diffs.is_empty(),
            "{}: devicemapper mount differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
    }
    before.assert_unchanged(&integrity::snapshot(&r.real.root));
}

#[test]
fn devicemapper_containers_export_extract_and_mount_like_docker() {
    if !require() {
        return;
    }
    containers_like_docker(convert_dm::devicemapper_root());
}

#[test]
fn devicemapper_xfs_containers_export_extract_and_mount_like_docker() {
    if !require() {
        return;
    }
    containers_like_docker(convert_dm::devicemapper_xfs_root());
}

#[test]
fn devicemapper_diff_is_docker_diff() {
    if !require() {
        return;
    }
    let r = convert_dm::devicemapper_root();
    let sorted = |s: &str| {
        let mut v: Vec<String> = s
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    for c in &r.real.containers {
        assert_eq!(
            sorted(cli::run(&r.real.root, &["diff", &c.name]).ok()),
            sorted(&c.diff),
            "{}",
            c.name
        );
    }
}

#[test]
fn devicemapper_deleted_devices_are_recoverable() {
    if !require() {
        return;
    }
    let r = convert_dm::devicemapper_root();
    let before = integrity::snapshot(&r.real.root);
    // `layers --orphans` names both: the device without metadata by its
    // pool id, the one marked deleted by its layer id.
    let listed = cli::run(&r.real.root, &["layers", "--orphans", "--json"]).json();
    let text = listed.to_string();
    for orphan in r.devices.iter().filter(|d| d.orphan) {
        let id = if orphan.id == convert_dm::DELETED_ID {
            orphan.id.clone()
        } else {
            format!("device-{}", orphan.dev_id)
        };
        assert!(text.contains(&format!("\"{id}\"")), "{id} not in {listed}");
    }
    let out = tempfile::tempdir().unwrap();
    for orphan in r.devices.iter().filter(|d| d.orphan) {
        let img = out.path().join(format!("{}.img", orphan.dev_id));
        let n = orphan.dev_id.to_string();
        let report = cli::run(
            &r.real.root,
            &[
                "extract",
                "--device",
                &n,
                "-o",
                img.to_str().unwrap(),
                "--json",
            ],
        )
        .json();
        assert_eq!(report["sha256"], orphan.sha256.as_str(), "{report}");
        assert_eq!(sha256_file(&img), orphan.sha256);
    }
    before.assert_unchanged(&integrity::snapshot(&r.real.root));
}

/// Overwrites `bytes` at `at` of metadata block `block`, fixing its
/// checksum when asked (so that only the structure is wrong).
fn patch(meta: &Path, block: u64, at: usize, bytes: &[u8], fix_csum: bool) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(meta)
        .unwrap();
    let mut buf = vec![0u8; thin::BLOCK_SIZE];
    f.read_exact_at(&mut buf, block * thin::BLOCK_SIZE as u64)
        .unwrap();
    buf[at..at + bytes.len()].copy_from_slice(bytes);
    if fix_csum {
        let salt = if block == 0 {
            thin::SUPERBLOCK_CSUM_XOR
        } else {
            thin::BTREE_CSUM_XOR
        };
        let c = dm_checksum(&buf[4..], salt);
        buf[0..4].copy_from_slice(&c.to_le_bytes());
    }
    f.write_all_at(&buf, block * thin::BLOCK_SIZE as u64)
        .unwrap();
}

fn le(buf: &[u8], at: usize, n: usize) -> u64 {
    let mut a = [0u8; 8];
    a[..n].copy_from_slice(&buf[at..at + n]);
    u64::from_le_bytes(a)
}

fn read_block(meta: &Path, b: u64) -> Vec<u8> {
    let mut buf = vec![0u8; thin::BLOCK_SIZE];
    File::open(meta)
        .unwrap()
        .read_exact_at(&mut buf, b * thin::BLOCK_SIZE as u64)
        .unwrap();
    buf
}

#[test]
fn devicemapper_hostile_metadata_gives_clear_errors() {
    if !require() {
        return;
    }
    let r = convert_dm::devicemapper_root();
    let c = r.real.container("c-exited");
    let scratch = tempfile::tempdir().unwrap();
    let root = convert_dm::scratch_copy(&r.real.root, scratch.path());
    let meta = root.join("devicemapper/devicemapper/metadata");
    let good = scratch.path().join("metadata.good");
    std::fs::copy(&meta, &good).unwrap();
    let restore = || std::fs::copy(&good, &meta).unwrap();
    let tar = scratch.path().join("x.tar");
    let export = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["export", &c.name, "-o", tar.to_str().unwrap()]);
        cli::run(&root, &args)
    };
    export(&[]).ok();

    // The superblock's checksum.
    patch(&meta, 0, 200, &[0xa5], false);
    let run = export(&[]);
    assert_ne!(run.status, 0);
    assert!(
        run.stderr
            .contains("metadata block 0: bad checksum of the superblock")
            && run.stderr.contains("--ignore-checksums"),
        "{}",
        run.stderr
    );
    // --ignore-checksums reads on, and says what it read past.
    let run = export(&["--ignore-checksums"]);
    run.ok();
    assert!(run.stderr.contains("bad checksum"), "{}", run.stderr);
    let diffs = manifest::compare(
        &manifest::from_tar(&c.export_tar),
        &manifest::from_tar(&tar),
        &[],
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    restore();

    // The container's mapping tree root: find it through the top-level tree.
    let sb = read_block(&meta, 0);
    let top = le(&sb, 320, 8);
    let dev = r.device(&mount_id(r, &c.id)).dev_id;
    let mut node = read_block(&meta, top);
    let dev_root = loop {
        let (flags, nr, max) = (le(&node, 4, 4), le(&node, 16, 4), le(&node, 20, 4) as usize);
        let keys: Vec<u64> = (0..nr as usize).map(|i| le(&node, 32 + 8 * i, 8)).collect();
        let i = keys.iter().rposition(|&k| k <= dev).unwrap();
        let v = le(&node, 32 + 8 * max + 8 * i, 8);
        if flags & 2 != 0 {
            assert_eq!(keys[i], dev);
            break v;
        }
        node = read_block(&meta, v);
    };
    let root_node = read_block(&meta, dev_root);
    let max = le(&root_node, 20, 4) as usize;
    let first_value = 32 + 8 * max;

    // A node's checksum.
    patch(&meta, dev_root, 4000, &[0x5a], false);
    let run = export(&[]);
    assert_ne!(run.status, 0);
    assert!(
        run.stderr
            .contains(&format!("metadata block {dev_root}: bad checksum")),
        "{}",
        run.stderr
    );
    restore();

    // A block number past the end of the metadata.
    let is_leaf = le(&root_node, 4, 4) & 2 != 0;
    if is_leaf {
        // A mapping past the end of the pool's data.
        patch(
            &meta,
            dev_root,
            first_value,
            &((r.nr_data_blocks + 9) << 24).to_le_bytes(),
            true,
        );
        let run = export(&[]);
        assert!(
            run.stderr.contains("past the end of the pool's data"),
            "{}",
            run.stderr
        );
    } else {
        patch(
            &meta,
            dev_root,
            first_value,
            &(1u64 << 40).to_le_bytes(),
            true,
        );
        let run = export(&[]);
        assert!(
            run.stderr.contains("lies past the end of the metadata"),
            "{}",
            run.stderr
        );
        restore();
        // A cycle: the node as its own child.
        patch(&meta, dev_root, first_value, &dev_root.to_le_bytes(), true);
        let run = export(&[]);
        assert!(run.stderr.contains("cycle"), "{}", run.stderr);
    }
    restore();

    // A truncated metadata file.
    let len = std::fs::metadata(&meta).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&meta)
        .unwrap()
        .set_len(dev_root * 4096)
        .unwrap();
    let run = export(&[]);
    assert_ne!(run.status, 0);
    assert!(
        run.stderr.contains("past the end of the metadata") && !run.stderr.contains("panick"),
        "{}",
        run.stderr
    );
    OpenOptions::new()
        .write(true)
        .open(&meta)
        .unwrap()
        .set_len(2000)
        .unwrap();
    let run = export(&[]);
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);
    OpenOptions::new()
        .write(true)
        .open(&meta)
        .unwrap()
        .set_len(len)
        .unwrap();
    restore();

    // A truncated data file: the missing blocks read as zeros, with a warning.
    let data = root.join("devicemapper/devicemapper/data");
    let data_len = std::fs::metadata(&data).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&data)
        .unwrap()
        .set_len(data_len / 2)
        .unwrap();
    let img = scratch.path().join("x.img");
    let run = cli::run(&root, &["extract", &c.name, "-o", img.to_str().unwrap()]);
    run.ok();
    assert!(run.stderr.contains("read as zeros"), "{}", run.stderr);
}

#[test]
fn devicemapper_direct_lvm_pool_given_on_the_command_line() {
    if !require() {
        return;
    }
    let r = convert_dm::devicemapper_root();
    let c = r.real.container("c-running");
    let scratch = tempfile::tempdir().unwrap();
    // direct-lvm: the pool is not under the root; its data and metadata
    // devices (here images of them) are named on the command line.
    let root = convert_dm::scratch_copy(&r.real.root, scratch.path());
    let pool = scratch.path().join("pool");
    std::fs::rename(root.join("devicemapper/devicemapper"), &pool).unwrap();
    let tar = scratch.path().join("c.tar");
    let run = cli::run(&root, &["export", &c.name, "-o", tar.to_str().unwrap()]);
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("--dm-pool-metadata"), "{}", run.stderr);
    let (data, meta) = (pool.join("data"), pool.join("metadata"));
    let before = integrity::snapshot(&pool);
    cli::run(
        &root,
        &[
            "--dm-pool-data",
            data.to_str().unwrap(),
            "--dm-pool-metadata",
            meta.to_str().unwrap(),
            "export",
            &c.name,
            "-o",
            tar.to_str().unwrap(),
        ],
    )
    .ok();
    let diffs = manifest::compare(
        &manifest::from_tar(&c.export_tar),
        &manifest::from_tar(&tar),
        &[],
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    // The same through --driver-opt, and mounted.
    let mnt = MountPoint::new();
    cli::run(
        &root,
        &[
            "--driver-opt",
            &format!("dm.pool_data={}", data.display()),
            "--driver-opt",
            &format!("dm.pool_metadata={}", meta.display()),
            "mount",
            &c.name,
            mnt.path().to_str().unwrap(),
        ],
    )
    .ok();
    let diffs = manifest::compare(
        &manifest::from_tar(&c.export_tar),
        &manifest::from_dir(mnt.path()),
        &[],
    );
    cli::run(&root, &["umount", mnt.path().to_str().unwrap()]).ok();
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    before.assert_unchanged(&integrity::snapshot(&pool));
}
