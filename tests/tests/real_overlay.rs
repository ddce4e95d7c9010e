//! Tier 2 for the overlay (v1) driver: a root made by a real dockerd with
//! `--storage-driver overlay`; `docker export` and `docker diff` are the oracles.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use docker_mount_tests::mounts::{assert_read_only_mount, MountPoint};
use docker_mount_tests::{cli, integrity, manifest, real};

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s
        .lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    v.sort();
    v
}

#[test]
fn overlay_containers_list_export_diff_and_mount_like_docker() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay_root();
    let before = integrity::snapshot(&r.root);
    let listed = cli::run(&r.root, &["list", "--all", "--json"]).json();
    assert_eq!(listed.as_array().unwrap().len(), r.containers.len());
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["driver"] == "overlay" && c["driver_loaded"] == true));
    let out = tempfile::tempdir().unwrap();
    for c in &r.containers {
        let want = manifest::from_tar(&c.export_tar);
        let tar = out.path().join(format!("{}.tar", c.name));
        cli::run(&r.root, &["export", &c.name, "-o", tar.to_str().unwrap()]).ok();
        let diffs = manifest::compare(&want, &manifest::from_tar(&tar), &[]);
        assert!(
            diffs.is_empty(),
            "{}: export differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
        let ours = cli::run(&r.root, &["diff", &c.name]);
        assert_eq!(
            sorted_lines(ours.ok()),
            sorted_lines(&c.diff),
            "{}: diff",
            c.name
        );
        let mnt = MountPoint::new();
        cli::run(&r.root, &["mount", &c.name, mnt.path().to_str().unwrap()]).ok();
        assert_read_only_mount(mnt.path());
        let diffs = manifest::compare(&want, &manifest::from_dir(mnt.path()), &[]);
        assert!(
            diffs.is_empty(),
            "{}: mount differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
        cli::run(&r.root, &["umount", mnt.path().to_str().unwrap()]).ok();
    }
    before.assert_unchanged(&integrity::snapshot(&r.root));
}
