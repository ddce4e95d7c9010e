//! The triage commands on a root made by a real dockerd run with
//! `--userns-remap default`: logs equal `docker logs` (json-file rotated and
//! compressed, and local), ids map through the remap range, a removed
//! container's layers, named volumes. The evidence is hashed before and after.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use docker_mount_tests::real::require_privileged;
use docker_mount_tests::real_triage::{triage_root, TriageRoot};
use docker_mount_tests::{cli, integrity};

fn root() -> Option<&'static TriageRoot> {
    require_privileged().then(triage_root)
}

/// Asserts equal text, showing only where it differs.
fn same(got: &str, want: &str, what: &str) {
    if got == want {
        return;
    }
    let at = got
        .bytes()
        .zip(want.bytes())
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    let ctx = |s: &str| {
        let from = at.saturating_sub(40);
        String::from_utf8_lossy(&s.as_bytes()[from..(at + 40).min(s.len())]).into_owned()
    };
    panic!(
        "{what}: differs at byte {at} (lengths {} and {}):\n got: {:?}\nwant: {:?}",
        got.len(),
        want.len(),
        ctx(got),
        ctx(want)
    );
}

/// docker 20.10's `local` reader ends a split line's last piece without
/// its newline (newer engines restore it, as docker-mount does).
fn as_docker_20_10(name: &str, ours: &str) -> String {
    if name == "c-local" {
        ours.replace("x\n", "x")
    } else {
        ours.to_string()
    }
}

#[test]
fn logs_equal_docker_logs() {
    let Some(t) = root() else { return };
    let before = integrity::snapshot(&t.data_root);
    for (name, oracle) in &t.logs {
        let raw = cli::run(&t.root, &["logs", name, "--raw"]);
        assert_eq!(raw.status, 0, "{}", raw.stderr);
        same(
            &as_docker_20_10(name, &raw.stdout),
            &String::from_utf8_lossy(&oracle.stdout),
            &format!("{name} stdout"),
        );
        same(
            &raw.stderr,
            &String::from_utf8_lossy(&oracle.stderr),
            &format!("{name} stderr"),
        );
        let stamped = cli::run(&t.root, &["logs", name, "--raw", "-t"]);
        same(
            &as_docker_20_10(name, &stamped.stdout),
            &String::from_utf8_lossy(&oracle.stdout_t),
            &format!("{name} -t stdout"),
        );
        same(
            &stamped.stderr,
            &String::from_utf8_lossy(&oracle.stderr_t),
            &format!("{name} -t stderr"),
        );
        let files = cli::run(&t.root, &["logs", name, "--files", "--json"]).json();
        let files = files.as_array().unwrap();
        assert!(files.len() >= 2, "{name}: no rotation happened: {files:?}");
        assert!(
            files.iter().any(|f| f["compressed"] == true),
            "{name}: no .gz: {files:?}"
        );
        // --since keeps the records at or after a record's own time.
        let all = cli::run(&t.root, &["logs", name, "--json"]).json();
        let all = all.as_array().unwrap();
        let mid = &all[all.len() / 2];
        let since = cli::run(
            &t.root,
            &[
                "logs",
                name,
                "--json",
                "--since",
                mid["time"].as_str().unwrap(),
            ],
        )
        .json();
        let n = since.as_array().unwrap().len();
        // Records are not strictly in time order across streams and rotated
        // files: count those at or after the chosen time (fixed-width RFC 3339).
        let cut = mid["time"].as_str().unwrap();
        let want = all
            .iter()
            .filter(|r| r["time"].as_str().unwrap() >= cut)
            .count();
        assert!(
            n == want && n < all.len(),
            "{name}: {n} of {}, want {want}",
            all.len()
        );
    }
    // The local driver's records carry partial pieces of the long line.
    let local = cli::run(&t.root, &["logs", "c-local", "--json"]).json();
    assert!(local
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["partial"] == true));
    before.assert_unchanged(&integrity::snapshot(&t.data_root));
}

#[test]
fn userns_remap_root_is_found_and_its_ids_mapped() {
    let Some(t) = root() else { return };
    let before = integrity::snapshot(&t.data_root);
    let roots = cli::run(&t.data_root, &["roots", "--json"]).json();
    let found: Vec<&serde_json::Value> = roots["roots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "userns-remap")
        .collect();
    assert_eq!(found.len(), 1, "{roots:#}");
    assert_eq!(found[0]["remap"]["uid"], t.remap_uid);
    assert_eq!(found[0]["path"], t.root.display().to_string());
    // The data root itself holds no containers: commands use the sub-root.
    let list = cli::run(&t.data_root, &["list", "--all", "--json"]).json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"c-remap") && !names.contains(&"c-removed"),
        "{names:?}"
    );
    let info = cli::run(&t.root, &["info", "c-remap", "--json"]).json();
    assert_eq!(info["id_map"]["uid"][0]["host"], t.remap_uid);
    assert_eq!(info["id_map"]["gid"][0]["host"], t.remap_gid);
    let map = format!("0:{}:{}", t.remap_uid, t.remap_count);
    let explicit = cli::run(&t.root, &["--uid-map", &map, "info", "c-remap", "--json"]).json();
    assert_eq!(explicit["id_map"]["uid"][0]["count"], t.remap_count);
    // On disk, the file the container chowned to 1000 is remap base + 1000.
    let c = t.id("c-remap");
    let rw = info["layers"][0]["path"].as_str().unwrap();
    let owned = std::fs::symlink_metadata(std::path::Path::new(rw).join("owned")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(owned.uid(), t.remap_uid + 1000, "{c}");
    // find, deleted and timeline show the container's view beside the disk's.
    let found = cli::run(&t.root, &["find", "/owned", "--json"]).json();
    let v = &found["paths"][0]["layers"][0];
    assert_eq!(v["uid"], t.remap_uid + 1000, "{found:#}");
    assert_eq!(v["container_ids"]["uid"], 1000, "{found:#}");
    assert_eq!(v["container_ids"]["gid"], 1000, "{found:#}");
    let body = cli::run(&t.root, &["timeline", "c-remap"]);
    let line = body.ok().lines().find(|l| l.contains(":/owned (layer"));
    let fields: Vec<&str> = line.expect("/owned in the bodyfile").split('|').collect();
    assert_eq!((fields[4], fields[5]), ("1000", "1000"), "{fields:?}");
    let jsonl = cli::run(&t.root, &["timeline", "c-remap", "--format", "jsonl"]);
    let rec: serde_json::Value = jsonl
        .ok()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|r| r["path"] == "/owned")
        .expect("/owned in the JSON lines");
    assert_eq!(rec["uid"], t.remap_uid + 1000);
    assert_eq!(rec["container_ids"]["uid"], 1000);
    // The named volume: its data in the root, written by container uid 1000.
    let vol = &info["mounts"][0];
    assert_eq!(vol["name"], "dm-tvol");
    let data = std::path::PathBuf::from(vol["local_path"].as_str().unwrap());
    assert_eq!(data, t.root.join("volumes/dm-tvol/_data"));
    assert!(t.volume_mountpoint.ends_with("volumes/dm-tvol/_data"));
    let in_volume = std::fs::symlink_metadata(data.join("in-volume")).unwrap();
    assert_eq!(in_volume.uid(), t.remap_uid + 1000);
    let audit = cli::run(&t.data_root, &["audit", "--json"]).json();
    assert!(audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["check"] == "userns-remap-root"));
    before.assert_unchanged(&integrity::snapshot(&t.data_root));
}

#[test]
fn a_removed_container_leaves_an_orphan_only_if_docker_left_its_layer() {
    let Some(t) = root() else { return };
    let before = integrity::snapshot(&t.data_root);
    let inv = cli::run(&t.root, &["layers", "--json"]).json();
    let layers = inv["layers"].as_array().unwrap();
    let on_disk = t.root.join("overlay2").join(&t.removed_layer).exists();
    let listed = layers.iter().find(|l| l["id"] == t.removed_layer.as_str());
    if on_disk {
        assert_eq!(listed.unwrap()["role"], "orphan");
    } else {
        // docker rm removed its layers: nothing to find, and nothing invented.
        assert!(listed.is_none());
        eprintln!(
            "docker rm removed the layers of {} ({}): no orphan to find",
            t.removed_id, t.removed_layer
        );
    }
    // Every other layer is used by an image or a container.
    for l in layers {
        if l["id"] != t.removed_layer.as_str() {
            assert_ne!(l["role"], "orphan", "{l}");
        }
    }
    assert!(inv["missing"].as_array().unwrap().is_empty(), "{inv:#}");
    let h = cli::run(&t.root, &["history", "dm-tbase:1", "--json"]).json();
    assert_eq!(h["steps"][0]["layer"]["present"], true);
    before.assert_unchanged(&integrity::snapshot(&t.data_root));
}

#[test]
fn export_of_a_remapped_container_writes_container_ids() {
    let Some(t) = root() else { return };
    let before = integrity::snapshot(&t.data_root);
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("c-remap.tar");
    let run = cli::run(&t.root, &["export", "c-remap", "-o", tar.to_str().unwrap()]);
    run.ok();
    assert!(
        run.stderr
            .contains("owners written as the container saw them"),
        "{}",
        run.stderr
    );
    let want = docker_mount_tests::manifest::from_tar(&t.export_tar);
    let got = docker_mount_tests::manifest::from_tar(&tar);
    // docker export skips entries whose owner is outside the map (its
    // archiver cannot map them): the init layer's /etc/mtab symlink, which
    // dockerd creates without chowning it. docker-mount keeps it, owned by
    // the overflow id the container saw.
    let diffs = docker_mount_tests::manifest::compare(&want, &got, &["etc/mtab"]);
    let mtab = got.get(b"etc/mtab").unwrap();
    assert_eq!((mtab.uid, mtab.gid), (65534, 65534));
    assert!(
        diffs.is_empty(),
        "export differs from docker export:\n{}",
        diffs.join("\n")
    );
    let owned = got.get(b"owned").unwrap();
    assert_eq!((owned.uid, owned.gid), (1000, 1000));
    // --disk-ids keeps the host ids.
    let disk = out.path().join("disk.tar");
    cli::run(
        &t.root,
        &[
            "export",
            "c-remap",
            "--disk-ids",
            "-o",
            disk.to_str().unwrap(),
        ],
    )
    .ok();
    let disk = docker_mount_tests::manifest::from_tar(&disk);
    assert_eq!(
        disk.get(b"owned").unwrap().uid,
        u64::from(t.remap_uid) + 1000
    );
    before.assert_unchanged(&integrity::snapshot(&t.data_root));
}
