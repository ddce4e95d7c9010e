//! aufs: a real overlay2 root converted to the aufs layout (no kernel here
//! has aufs, no dockerd can make one); the overlay2 root's `docker export`
//! and `docker diff` are the oracles.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use docker_mount_tests::{cli, convert, integrity, manifest, real};

#[test]
fn aufs_containers_export_and_diff_like_docker() {
    if !real::require_privileged() {
        return;
    }
    let r = convert::aufs_root();
    let before = integrity::snapshot(&r.root);
    let drivers = cli::run(&r.root, &["list", "--all", "--json"]).json();
    assert!(drivers
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["driver"] == "aufs" && c["driver_loaded"] == true));
    let out = tempfile::tempdir().unwrap();
    for c in &r.containers {
        let tar = out.path().join(format!("{}.tar", c.name));
        cli::run(&r.root, &["export", &c.name, "-o", tar.to_str().unwrap()]).ok();
        let exported = manifest::from_tar(&tar);
        let diffs = manifest::compare(&manifest::from_tar(&c.export_tar), &exported, &[]);
        assert!(
            diffs.is_empty(),
            "{}: aufs export differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
        assert!(
            exported
                .entries
                .keys()
                .all(|p| !p.windows(4).any(|w| w == b".wh.")),
            "{}: aufs bookkeeping leaked into the view",
            c.name
        );
        assert_eq!(
            real::diff_lines(cli::run(&r.root, &["diff", &c.name]).ok()),
            real::diff_lines(&c.diff),
            "{}",
            c.name
        );
        let info = cli::run(&r.root, &["info", &c.name, "--json"]).json();
        assert!(
            info["warnings"].as_array().unwrap().is_empty(),
            "{}: {}",
            c.name,
            info["warnings"]
        );
    }
    before.assert_unchanged(&integrity::snapshot(&r.root));
}
