//! A root made by a real rootless dockerd (overlay2 in rootlesskit's user
//! namespace): `user.overlay.*` xattrs, whiteouts made by an unprivileged
//! kernel overlay, ids shifted by the user's subuid / subgid ranges.
//! `docker export` and `docker diff` taken from the rootless daemon are the
//! oracles; the evidence is hashed before and after every test.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::path::PathBuf;

use docker_mount_tests::mounts::{assert_read_only_mount, mount_options, BoundHost, MountPoint};
use docker_mount_tests::real_rootless::{
    layers_text, require_rootless, rootless_root, xattr_names, RootlessRoot, USER,
};
use docker_mount_tests::{cli, integrity, manifest, real};
use serde_json::Value;

fn root() -> Option<&'static RootlessRoot> {
    require_rootless().then(rootless_root)
}

/// `want` with container ids replaced by the ids stored on disk.
fn on_disk(r: &RootlessRoot, want: &manifest::Manifest) -> manifest::Manifest {
    let mut m = want.clone();
    for e in m.entries.values_mut() {
        e.uid = r.host_uid(e.uid).unwrap();
        e.gid = r.host_gid(e.gid).unwrap();
    }
    m
}

fn assert_same(want: &manifest::Manifest, got: &manifest::Manifest, what: &str) {
    let diffs = manifest::compare(want, got, &[]);
    assert!(
        diffs.is_empty(),
        "{what} differs from docker export:\n{}",
        diffs.join("\n")
    );
}

#[test]
fn rootless_layers_carry_user_overlay_xattrs_and_char_device_whiteouts() {
    let Some(r) = root() else { return };
    eprintln!(
        "rootless root of {} (uid {}, gid {}, subuid {:?}, subgid {:?}), built in {:.1} s; layers:\n{}",
        r.user,
        r.uid,
        r.gid,
        r.subuid,
        r.subgid,
        r.build_seconds,
        layers_text(&r.layers)
    );
    eprintln!("xattr names over all layers: {:?}", xattr_names(&r.layers));
    assert_eq!(
        r.mounts_left, 0,
        "the rootless daemon left mounts on the host"
    );
    let names = xattr_names(&r.layers);
    assert!(
        names.keys().all(|n| !n.starts_with("trusted.")),
        "a rootless daemon cannot write trusted.* xattrs: {names:?}"
    );
    assert!(names.contains_key("user.overlay.opaque"), "{names:?}");
    // Deletions are 0/0 character devices (never .wh. files), owned by
    // the user (container root).
    let mut whiteouts = 0;
    for l in &r.layers {
        assert!(l.wh_files.is_empty(), "{}: {:?}", l.id, l.wh_files);
        whiteouts += l.whiteouts.len();
        for &(uid, gid) in &l.owners {
            let in_map = |id: u32, own: u32, (first, count): (u32, u32)| {
                id == own || (first..first + count).contains(&id)
            };
            assert!(
                in_map(uid, r.uid, r.subuid) && in_map(gid, r.gid, r.subgid),
                "{}: owner {uid}:{gid} outside the rootless map",
                l.id
            );
        }
    }
    assert!(whiteouts >= 8, "{whiteouts} whiteouts");
    // The containers' own opaque directories.
    for (name, dir) in [("c-replace", "replace-me"), ("c-loaded", "loaded-keep")] {
        let rw = r.layer(&r.container(name).rw_layer);
        assert!(
            rw.xattrs
                .iter()
                .any(|x| x.path == dir && x.name == "user.overlay.opaque" && x.value == "\"y\""),
            "{name}: /{dir} is not opaque in its rw layer:\n{}",
            layers_text(std::slice::from_ref(rw))
        );
    }
    // The rw layer of a container that ran holds container uid 1000 as
    // subuid + 999.
    let rw = r.layer(&r.container("c-replace").rw_layer);
    assert!(
        rw.owners.contains(&(r.subuid.0 + 999, r.subgid.0 + 999)),
        "{:?}",
        rw.owners
    );
}

#[test]
fn export_writes_container_ids_equal_to_docker_export() {
    let Some(r) = root() else { return };
    let before = integrity::snapshot(&r.root);
    let out = tempfile::tempdir().unwrap();
    let (uid_map, gid_map) = (r.uid_map(), r.gid_map());
    let mut entries = 0;
    for c in &r.containers {
        let want = manifest::from_tar(&c.export_tar);
        entries += want.len();
        // The analyst gives the maps: container ids, as docker export wrote them.
        let tar = out.path().join(format!("{}.tar", c.name));
        let run = cli::run(
            &r.root,
            &[
                "--uid-map",
                &uid_map,
                "--gid-map",
                &gid_map,
                "export",
                &c.name,
                "-o",
                tar.to_str().unwrap(),
            ],
        );
        run.ok();
        assert!(
            run.stderr.contains("as the container saw them"),
            "{}",
            run.stderr
        );
        assert_same(
            &want,
            &manifest::from_tar(&tar),
            &format!("{} export", c.name),
        );
        // Without a map (a bare root says nothing of its owner's ranges):
        // the ids on disk, which are docker's shifted by the map.
        let disk = out.path().join(format!("{}-disk.tar", c.name));
        let plain = cli::run(&r.root, &["export", &c.name, "-o", disk.to_str().unwrap()]);
        plain.ok();
        // ... and says so: the root's owner gives the rootless daemon away.
        assert!(
            plain.stderr.contains("like a rootless daemon's root"),
            "{}",
            plain.stderr
        );
        assert_same(
            &on_disk(r, &want),
            &manifest::from_tar(&disk),
            &format!("{} export without a map (ids on disk)", c.name),
        );
    }
    // Files the containers and images chowned come out as they set them.
    let replace = manifest::from_tar(&out.path().join("c-replace.tar"));
    let owner = |m: &manifest::Manifest, p: &str| {
        let e = m.get(p.as_bytes()).unwrap_or_else(|| panic!("no {p}"));
        (e.uid, e.gid)
    };
    assert_eq!(owner(&replace, "added"), (1000, 1000));
    assert_eq!(owner(&replace, "owned"), (1234, 4321));
    assert_eq!(owner(&replace, "ctr-dir/sub"), (4242, 4343));
    assert_eq!(owner(&replace, "owned-65534"), (65534, 65534));
    assert_eq!(owner(&replace, "bin/busybox"), (0, 0));
    let loaded = manifest::from_tar(&out.path().join("c-loaded.tar"));
    assert_eq!(owner(&loaded, "loaded-file"), (3000, 3001));
    let after = integrity::snapshot(&r.root);
    eprintln!(
        "rootless: {} containers, {entries} export entries compared twice; evidence {} entries",
        r.containers.len(),
        after.entries()
    );
    before.assert_unchanged(&after);
}

#[test]
fn diff_and_deleted_match_the_rootless_daemon() {
    let Some(r) = root() else { return };
    let before = integrity::snapshot(&r.root);
    for c in &r.containers {
        let ours = cli::run(&r.root, &["diff", &c.id[..12]]);
        assert_eq!(
            real::diff_lines(ours.ok()),
            real::diff_lines(&c.diff),
            "{}: diff",
            c.name
        );
    }
    // Every whiteout and opaque directory of every layer is reported as
    // deleted by the layer that holds it, and the containers' own.
    for c in &r.containers {
        let found = cli::run(&r.root, &["deleted", &c.name, "--json"]).json();
        let found: BTreeSet<(String, String, String)> = found
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["layer"].as_str().unwrap().to_string(),
                    d["kind"].as_str().unwrap().to_string(),
                    d["path"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let info = cli::run(&r.root, &["info", &c.name, "--json"]).json();
        let mut want = BTreeSet::new();
        for l in info["layers"].as_array().unwrap() {
            let id = l["driver_id"].as_str().unwrap();
            let rep = r.layer(id);
            for (p, _) in &rep.whiteouts {
                want.insert((id.to_string(), "whiteout".to_string(), format!("/{p}")));
            }
            for x in rep
                .xattrs
                .iter()
                .filter(|x| x.name == "user.overlay.opaque")
            {
                want.insert((id.to_string(), "opaque".to_string(), format!("/{}", x.path)));
            }
        }
        assert_eq!(found, want, "{}: deleted", c.name);
    }
    let rw = |name: &str| r.container(name).rw_layer.clone();
    let replace = cli::run(&r.root, &["deleted", "c-replace", "--json"]).json();
    let of_rw: BTreeSet<(String, String)> = replace
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["layer"] == rw("c-replace").as_str())
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("whiteout", "/hl-b"),
        ("whiteout", "/abs-link"),
        ("whiteout", "/move-me"),
        ("opaque", "/replace-me"),
    ] {
        assert!(
            of_rw.contains(&(want.0.to_string(), want.1.to_string())),
            "c-replace: {want:?} not in {of_rw:?}"
        );
    }
    let opaque = replace
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == "/replace-me")
        .unwrap();
    let hid: BTreeSet<&str> = opaque["hidden"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        hid,
        BTreeSet::from([
            "/replace-me/old1",
            "/replace-me/deep",
            "/replace-me/deep/old2"
        ]),
        "{opaque:#}"
    );
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

#[test]
fn kernel_mount_equals_docker_export() {
    let Some(r) = root() else { return };
    let before = integrity::snapshot(&r.root);
    for c in &r.containers {
        // The kernel shows the ids on disk.
        let want = on_disk(r, &manifest::from_tar(&c.export_tar));
        let mnt = MountPoint::new();
        let dir = mnt.path().to_str().unwrap();
        cli::run(&r.root, &["mount", &c.name, dir]).ok();
        assert_read_only_mount(mnt.path());
        let (fs, opts) = mount_options(mnt.path()).unwrap();
        assert_eq!(fs, "overlay", "{}", c.name);
        // Without it the kernel ignores user.overlay.opaque.
        assert!(
            opts.iter().any(|o| o == "userxattr"),
            "{}: {opts:?}",
            c.name
        );
        assert_same(
            &want,
            &manifest::from_dir(mnt.path()),
            &format!("{} kernel mount", c.name),
        );
        // overlay's own xattrs are bookkeeping, never part of the view.
        for p in ["", "replace-me", "loaded-keep", "keep", "etc"] {
            let at = mnt.path().join(p);
            if let Ok(names) = xattr::list(&at) {
                let leaked: Vec<String> = names
                    .map(|n| n.to_string_lossy().into_owned())
                    .filter(|n| n.contains(".overlay."))
                    .collect();
                assert!(leaked.is_empty(), "{}: /{p} shows {leaked:?}", c.name);
            }
        }
        cli::run(&r.root, &["umount", dir]).ok();
        assert!(mount_options(mnt.path()).is_none(), "umount left a mount");
    }
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

/// A host tree for discovery: the user's passwd, group, subuid and subgid
/// lines, and `home/<user>/.local/share/docker` a read-only, noatime bind
/// of the data root.
fn fake_host(r: &RootlessRoot) -> (BoundHost, PathBuf) {
    let etc = [
        (
            "passwd",
            format!(
                "root:x:0:0:root:/root:/bin/bash\n{USER}:x:{}:{}::/home/{USER}:/bin/sh\n",
                r.uid, r.gid
            ),
        ),
        ("group", format!("root:x:0:\n{USER}:x:{}:\n", r.gid)),
        (
            "subuid",
            format!(
                "dockremap:100000:65536\n{USER}:{}:{}\n",
                r.subuid.0, r.subuid.1
            ),
        ),
        (
            "subgid",
            format!(
                "dockremap:100000:65536\n{USER}:{}:{}\n",
                r.subgid.0, r.subgid.1
            ),
        ),
    ];
    let rel = format!("home/{USER}/.local/share/docker");
    let host = BoundHost::new(&etc, &[(&rel, &r.root)]);
    let point = host.path().join(rel);
    (host, point)
}

fn range(v: &Value) -> (u64, u64, u64) {
    (
        v["container"].as_u64().unwrap(),
        v["host"].as_u64().unwrap(),
        v["count"].as_u64().unwrap(),
    )
}

#[test]
fn a_host_tree_with_the_root_in_a_home_is_discovered_as_rootless() {
    let Some(r) = root() else { return };
    let before = integrity::snapshot(&r.root);
    let (host, point) = fake_host(r);
    let found = host.only_root();
    let f = &found;
    assert_eq!(f["kind"], "rootless", "{f:#}");
    assert_eq!(f["user"], USER);
    assert_eq!(f["path"], point.display().to_string());
    assert_eq!(f["containers"], 3);
    let (u, g) = (&f["id_map"]["uid"], &f["id_map"]["gid"]);
    let (uid, gid) = (u64::from(r.uid), u64::from(r.gid));
    assert_eq!(range(&u[0]), (0, uid, 1), "{f:#}");
    assert_eq!(range(&u[1]), (1, r.subuid.0.into(), r.subuid.1.into()));
    assert_eq!(range(&g[0]), (0, gid, 1));
    assert_eq!(range(&g[1]), (1, r.subgid.0.into(), r.subgid.1.into()));
    // The host tree given: commands use its one root, with its maps, and
    // export writes container ids without being told the map.
    let list = cli::run(host.path(), &["list", "--all", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 3, "{list:#}");
    let out = tempfile::tempdir().unwrap();
    for c in &r.containers {
        let tar = out.path().join(format!("{}.tar", c.name));
        let run = cli::run(
            host.path(),
            &["export", &c.name, "-o", tar.to_str().unwrap()],
        );
        run.ok();
        assert!(run.stderr.contains("rootless root of"), "{}", run.stderr);
        assert_same(
            &manifest::from_tar(&c.export_tar),
            &manifest::from_tar(&tar),
            &format!("{} export through the host tree", c.name),
        );
    }
    // The root named by its home path: the host is guessed from it.
    let info = cli::run(&point, &["info", "c-replace", "--json"]).json();
    assert_eq!(range(&info["id_map"]["uid"][1]).1, u64::from(r.subuid.0));
    let audit = cli::run(host.path(), &["audit", "--json"]).json();
    assert!(
        audit["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["check"] == "rootless-root"),
        "{audit:#}"
    );
    drop(host);
    before.assert_unchanged(&integrity::snapshot(&r.root));
}
