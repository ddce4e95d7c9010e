//! Smoke test of the real-root builder, the manifest oracle and the
//! integrity harness on a root made by a real dockerd.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use docker_mount_tests::{integrity, manifest, real};

#[test]
fn overlay2_real_root() {
    if !real::require_privileged() {
        return;
    }
    let t0 = std::time::Instant::now();
    let r = real::overlay2_root();
    eprintln!(
        "real root ready in {:.1} s (cold build took {:.1} s); data root is {} bytes",
        t0.elapsed().as_secs_f64(),
        r.build_seconds,
        r.root.as_os_str().len()
    );
    assert!(r.root.as_os_str().len() >= real::DATA_ROOT_MIN_LEN);

    let names = [
        "c-exited",
        "c-created",
        "c-running",
        "c-deep",
        "c-stopped",
        "c-mounts",
        "c-privileged",
    ];
    for name in names {
        let c = r.container(name);
        assert!(
            r.root.join("containers").join(&c.id).is_dir(),
            "{name}: no containers/{}",
            c.id
        );
        let m = manifest::from_tar(&c.export_tar);
        assert!(!m.is_empty(), "{name}: empty export");
        assert!(m.get(b".dockerenv").is_some(), "{name}: no .dockerenv");
    }
    assert_eq!(r.ps.len(), names.len());
    assert_eq!(r.inspect.as_array().map(Vec::len), Some(names.len()));

    // The awkward names survive docker export.
    let m = manifest::from_tar(&r.container("c-running").export_tar);
    for p in [
        &b"awk/name with spaces"[..],
        b"awk/new\nline",
        b"awk/back\\slash",
        b"awk/non-utf8-\xff\xfe",
        b"awk/dir-\xe9/f",
    ] {
        assert!(m.get(p).is_some(), "missing {}", integrity::show(p));
    }
    let long = format!("awk/{}", real::name_255());
    assert!(
        m.get(long.as_bytes()).is_some(),
        "missing the 255-byte name"
    );
    let e = m.get(b"awk/setuid").expect("setuid file");
    assert_eq!(e.mode, 0o4755);
    let e = m.get(b"awk/odd-owner").expect("odd owner");
    assert_eq!((e.uid, e.gid), (12345, 54321));
    let e = m.get(b"awk/big-ids").expect("big ids");
    assert_eq!((e.uid, e.gid), (2_000_000_000, 2_000_000_001));
    let e = m.get(b"awk/escape-rel").expect("escaping symlink");
    assert_eq!(
        e.link_target.as_deref(),
        Some(&b"../../../../etc/shadow"[..])
    );
    let e = m.get(b"awk/block-dev").expect("block device");
    assert_eq!(e.rdev, Some((7, 200)));
    let (a, b) = (m.get(b"awk/hardlink-a"), m.get(b"awk/hardlink-b"));
    assert_eq!(a.map(|e| &e.sha256), b.map(|e| &e.sha256));
    // Deleted in a later image layer / by the container.
    for p in [
        &b"awk/doomed-file"[..],
        b"awk/doomed-dir",
        b"awk/opaque/old1",
        b"etc/group",
        b"bin/head",
    ] {
        assert!(m.get(p).is_none(), "{} should be gone", integrity::show(p));
    }
    assert!(m.get(b"awk/opaque/new").is_some());
    assert!(m.get(b"new-file").is_some());

    let deep = manifest::from_tar(&r.container("c-deep").export_tar);
    assert!(deep.get(b"deep/2").is_none());
    let last = format!("deep/{}", real::DEEP_LAYERS - 1);
    assert!(deep.get(last.as_bytes()).is_some(), "missing {last}");

    // The crash left running containers marked running.
    for name in ["c-running", "c-deep", "c-mounts"] {
        assert!(r.container(name).running_at_crash);
        assert_eq!(
            r.config_v2(name)["State"]["Running"].as_bool(),
            Some(true),
            "{name}"
        );
    }
    for name in ["c-exited", "c-created", "c-stopped", "c-privileged"] {
        assert_eq!(r.config_v2(name)["State"]["Running"].as_bool(), Some(false));
    }
    assert_eq!(
        r.config_v2("c-exited")["State"]["ExitCode"].as_i64(),
        Some(3)
    );

    // Nothing is mounted under the root any more, and reading it twice
    // changes nothing.
    // Mount points, not sources: a test running beside this one may have a
    // view of the root mounted elsewhere, its sources naming the root.
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let root = r.root.to_string_lossy().into_owned();
    let under_root: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|point| point.starts_with(&root))
        .collect();
    assert!(
        under_root.is_empty(),
        "still mounted under the root: {under_root:?}"
    );
    let before = integrity::snapshot(&r.root);
    let after = integrity::snapshot(&r.root);
    assert!(before.entries() > 1000, "{} entries", before.entries());
    before.assert_unchanged(&after);
}

/// A lowerdir-only, read-only kernel overlay of a container equals its
/// `docker export`, and mounting it leaves the evidence untouched.
#[test]
fn kernel_overlay_view_matches_export() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let before = integrity::snapshot(&r.root);
    for name in ["c-running", "c-exited", "c-created"] {
        let c = r.container(name);
        let read = |p: &std::path::Path| {
            let b = integrity::read_noatime(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            String::from_utf8(b).expect("utf-8")
        };
        let mount_id = read(
            &r.root
                .join("image/overlay2/layerdb/mounts")
                .join(&c.id)
                .join("mount-id"),
        );
        let ov = r.root.join("overlay2");
        let lower = read(&ov.join(&mount_id).join("lower"));
        let mut dirs = vec![ov.join(&mount_id).join("diff")];
        dirs.extend(lower.trim().split(':').map(|l| ov.join(l)));
        let opt = format!(
            "lowerdir={}",
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":")
        );
        let mnt = tempfile::tempdir().expect("tempdir");
        nix::mount::mount(
            Some("overlay"),
            mnt.path(),
            Some("overlay"),
            nix::mount::MsFlags::MS_RDONLY,
            Some(opt.as_str()),
        )
        .unwrap_or_else(|e| panic!("mount overlay for {name}: {e}"));
        let actual = manifest::from_dir(mnt.path());
        real::unmount_under(&[mnt.path()]).expect("umount");
        let expected = manifest::from_tar(&c.export_tar);
        let diff = manifest::compare(&expected, &actual, &[]);
        assert!(diff.is_empty(), "{name}: {diff:#?}");
    }
    before.assert_unchanged(&integrity::snapshot(&r.root));
}
