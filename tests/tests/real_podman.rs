//! Tier 2 for podman: storage roots made by a real podman 4.3 (bolt
//! state) and 5.4 (SQLite state, in the trixie tree), overlay, their
//! running container killed with SIGKILL. `podman export`, `podman diff`,
//! `podman logs`, `podman history`, `podman ps -a` and `podman images`
//! (taken before the crash) are the oracles; the storage root must hash
//! the same after every command. Every test runs on both roots.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;

use docker_mount_tests::mounts::{assert_read_only_mount, mount_options, BoundHost, MountPoint};
use docker_mount_tests::real_podman::{
    podman5_root, podman5_rootless_root, podman_root, require_podman, require_podman5, Generation,
    PodmanRoot, BUILT_IMAGE,
};
use docker_mount_tests::{cli, fixture, integrity, manifest, real};
use serde_json::Value;

/// The mount points podman creates in a container's rw layer when it
/// starts (its bind mounts' stubs), which `podman diff` leaves out
/// (libpod's `initInodes`). Ours lists them: they are in the layer.
const PODMAN_INIT_PATHS: [&str; 11] = [
    "/dev",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/proc",
    "/run",
    "/run/notify",
    "/run/.containerenv",
    "/run/secrets",
    "/sys",
    "/etc/mtab",
];

/// `docker-mount ARGS` on the root, with the id maps of a rootless one.
fn dm(r: &PodmanRoot, args: &[&str]) -> cli::Run {
    let maps = r.id_maps();
    let mut all: Vec<&str> = Vec::new();
    if let Some(m) = &maps {
        all.extend(["--uid-map", m, "--gid-map", m]);
    }
    all.extend(args);
    cli::run(&r.root, &all)
}

fn ps_of<'a>(r: &'a PodmanRoot, id: &str) -> &'a Value {
    r.ps.as_array()
        .and_then(|a| a.iter().find(|c| c["Id"] == id))
        .unwrap_or_else(|| panic!("no podman ps record for {id}"))
}

fn list_matches_podman_ps(r: &PodmanRoot) {
    let before = integrity::snapshot(&r.root);
    let listed = dm(r, &["list", "--all", "--json"]).json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), r.containers.len(), "{listed:#?}");
    for c in &r.containers {
        let got = listed
            .iter()
            .find(|l| l["id"] == c.id.as_str())
            .unwrap_or_else(|| panic!("{} not listed", c.name));
        let want = ps_of(r, &c.id);
        assert_eq!(got["name"], want["Names"][0], "{}", c.name);
        assert_eq!(got["image"], want["Image"], "{}", c.name);
        assert_eq!(got["image_id"], want["ImageID"], "{}", c.name);
        assert_eq!(got["driver"], "podman");
        assert_eq!(got["engine"], "podman");
        assert_eq!(got["driver_loaded"], true);
        assert_eq!(got["running_at_shutdown"], c.running_at_crash, "{}", c.name);
        assert_eq!(got["state"], want["State"], "{}", c.name);
        let command: Vec<&str> = want["Command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(got["command"], command.join(" "), "{}", c.name);
        if want["Exited"] == true {
            assert_eq!(got["exit_code"], want["ExitCode"], "{}", c.name);
        }
        // Start and finish times to the second (podman ps has no more),
        // where podman knows them (Go's zero time when it does not).
        for (ours, theirs) in [("started_at", "StartedAt"), ("finished_at", "ExitedAt")] {
            let secs = want[theirs].as_i64().unwrap();
            let want_time = (secs > 0).then(|| fixture::rfc3339(secs, 0));
            let got_time = got[ours].as_str().map(|t| format!("{}Z", &t[..19]));
            assert_eq!(got_time, want_time, "{}: {ours}", c.name);
        }
        if c.running_at_crash {
            let info = dm(r, &["info", &c.id, "--json"]).json();
            assert_eq!(info["pid"], want["Pid"], "{}: pid", c.name);
        }
    }
    let running = dm(r, &["list", "--json"]).json();
    let want: BTreeSet<&str> = r
        .containers
        .iter()
        .filter(|c| c.running_at_crash)
        .map(|c| c.id.as_str())
        .collect();
    let got: BTreeSet<&str> = running
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(got, want);
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

fn images_match_podman_images(r: &PodmanRoot) {
    let before = integrity::snapshot(&r.root);
    let listed = dm(r, &["images", "--all", "--json"]).json();
    let listed = listed.as_array().unwrap();
    let want = r.images.as_array().unwrap();
    assert_eq!(listed.len(), want.len(), "{listed:#?}");
    for img in want {
        let id = img["Id"].as_str().unwrap();
        let got = listed
            .iter()
            .find(|l| l["id"] == id)
            .unwrap_or_else(|| panic!("image {id} not listed"));
        let mut names: Vec<&str> = img["Names"]
            .as_array()
            .map(|a| a.iter().map(|n| n.as_str().unwrap()).collect())
            .unwrap_or_default();
        let mut tags: Vec<&str> = got["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        names.sort();
        tags.sort();
        assert_eq!(tags, names, "{id}");
        assert_eq!(got["size"], img["Size"], "{id}: size as podman counts it");
        assert!(got["warnings"].as_array().unwrap().is_empty(), "{got}");
    }
    let awkward = listed
        .iter()
        .find(|l| l["tags"][0] == "localhost/pm-awkward:1")
        .unwrap();
    assert_eq!(awkward["layers"], 2, "imported base + committed layer");
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

fn every_container_exports_diffs_and_mounts_like_podman(r: &PodmanRoot) {
    let before = integrity::snapshot(&r.root);
    let out = tempfile::tempdir().unwrap();
    let mut entries = 0;
    for c in &r.containers {
        let want = manifest::from_tar(&c.export_tar);
        entries += want.len();
        let tar = out.path().join(format!("{}.tar", c.name));
        dm(r, &["export", &c.name, "-o", tar.to_str().unwrap()]).ok();
        let diffs = manifest::compare(&want, &manifest::from_tar(&tar), &[]);
        assert!(
            diffs.is_empty(),
            "{}: export differs from podman export:\n{}",
            c.name,
            diffs.join("\n")
        );
        let ours = dm(r, &["diff", &c.id[..12]]);
        let ours: Vec<String> = real::diff_lines(ours.ok())
            .into_iter()
            .filter(|l| !PODMAN_INIT_PATHS.contains(&&l[2..]))
            .collect();
        assert_eq!(ours, real::diff_lines(&c.diff), "{}: diff", c.name);
        let mnt = MountPoint::new();
        let dir = mnt.path().to_str().unwrap();
        dm(r, &["mount", &c.name, dir]).ok();
        assert_read_only_mount(mnt.path());
        assert_eq!(
            mount_options(mnt.path()).unwrap().0,
            "overlay",
            "{}",
            c.name
        );
        // The kernel's view shows the owners on disk.
        let mut on_disk = want.clone();
        for e in on_disk.entries.values_mut() {
            e.uid = r.host_id(e.uid).unwrap();
            e.gid = r.host_id(e.gid).unwrap();
        }
        let diffs = manifest::compare(&on_disk, &manifest::from_dir(mnt.path()), &[]);
        assert!(
            diffs.is_empty(),
            "{}: mount differs from podman export:\n{}",
            c.name,
            diffs.join("\n")
        );
        dm(r, &["umount", dir]).ok();
        assert!(mount_options(mnt.path()).is_none(), "umount left a mount");
    }
    assert!(r.containers.len() >= 4, "{} containers", r.containers.len());
    let after = integrity::snapshot(&r.root);
    eprintln!(
        "podman: {} containers, {entries} export entries compared; evidence {} entries",
        r.containers.len(),
        after.entries()
    );
    before.assert_unchanged(&after);
}

fn forensic_commands_see_what_the_container_did(r: &PodmanRoot) {
    let before = integrity::snapshot(&r.root);
    let exited = r.container("c-exited");
    let info = dm(r, &["info", "c-exited", "--json"]).json();
    assert_eq!(info["id"], exited.id.as_str());
    assert!(info["layer_error"].is_null(), "{}", info["layer_error"]);
    let roles: Vec<&str> = info["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["rw", "image", "image"]);
    assert!(info["warnings"].as_array().unwrap().is_empty(), "{info}");

    // Deleted in the rw layer: exactly podman diff's D lines.
    let deleted = dm(r, &["deleted", "c-exited", "--json"]).json();
    let ours: BTreeSet<&str> = deleted
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["layer_role"] == "rw")
        .filter_map(|d| d["path"].as_str())
        .collect();
    let podman: BTreeSet<&str> = exited
        .diff
        .lines()
        .filter_map(|l| l.strip_prefix("D "))
        .collect();
    assert_eq!(ours, podman);
    // The image layers' own deletions (the commit step) are there too.
    let image_deleted: BTreeSet<&str> = deleted
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["layer_role"] == "image")
        .filter_map(|d| d["path"].as_str())
        .collect();
    for p in ["/doomed-dir", "/data/gone", "/opq"] {
        assert!(image_deleted.contains(p), "{p} not in {image_deleted:?}");
    }

    // cat: the view, and a deleted file from the layer that still holds it.
    assert_eq!(dm(r, &["cat", "c-exited", "/added-file"]).ok(), "added\n");
    let passwd = dm(r, &["cat", "c-exited", "/etc/passwd"]);
    assert!(passwd.ok().ends_with("tampered\n"), "{}", passwd.stdout);
    let find = dm(r, &["find", "/added-file", "--json"]).json();
    assert!(find.to_string().contains(&exited.id), "{find}");

    let timeline = dm(r, &["timeline", "c-exited", "--json"]);
    assert!(timeline.ok().contains("/added-file"), "{}", timeline.stdout);
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

fn a_host_tree_holding_podman_storage_is_discovered(r: &PodmanRoot) {
    let before = integrity::snapshot(&r.root);
    let rel = "var/lib/containers/storage";
    let host = BoundHost::new(&[("hostname", "seized\n".into())], &[(rel, &r.root)]);
    let found = host.only_root();
    assert_eq!(found["kind"], "engine", "{found:#}");
    assert_eq!(found["engine"], "podman");
    assert_eq!(found["host_path"], format!("/{rel}"));
    assert_eq!(found["containers"], r.containers.len());
    // The one root is used by the other commands.
    let listed = cli::run(host.path(), &["list", "--all", "--json"]).json();
    let mut ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut want: Vec<&str> = r.containers.iter().map(|c| c.id.as_str()).collect();
    want.sort_unstable();
    assert_eq!(ids, want);
    drop(host);
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

/// `logs --raw` prints what `podman logs` printed, stream for stream, for
/// every container (the ones that printed nothing included), from
/// `k8s-file` logs.
fn logs_match_podman_logs(r: &PodmanRoot) {
    let before = integrity::snapshot(&r.root);
    let mut lines = 0;
    for c in &r.containers {
        let ours = dm(r, &["logs", "--raw", &c.id]);
        assert_eq!(ours.status, 0, "{}: {}", c.name, ours.stderr);
        assert_eq!(ours.stdout, c.logs_stdout, "{}: stdout", c.name);
        lines += c.logs_stdout.lines().count() + c.logs_stderr.lines().count();
        let files = dm(r, &["logs", "--files", "--json", &c.id]).json();
        if c.name == "c-created" {
            // Never started: no log, and nothing podman could print.
            assert!(ours.stderr.contains("no log files"), "{}", ours.stderr);
            assert_eq!(files, serde_json::json!([]));
            assert_eq!((c.logs_stdout.as_str(), c.logs_stderr.as_str()), ("", ""));
            continue;
        }
        assert_eq!(ours.stderr, c.logs_stderr, "{}: stderr", c.name);
        assert_eq!(files.as_array().unwrap().len(), 1, "{}: {files}", c.name);
        assert!(
            files[0]["path"]
                .as_str()
                .unwrap()
                .ends_with("/userdata/ctr.log"),
            "{files}"
        );
    }
    let logs = r.container("c-logs");
    assert!(logs.logs_stderr.contains("err-2"), "{}", logs.logs_stderr);
    // The line without its newline is a partial record (`P`).
    let json = dm(r, &["logs", "--json", "c-logs"]).json();
    let piece = json
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["line"] == "no-newline")
        .unwrap_or_else(|| panic!("{json:#}"));
    assert_eq!(piece["partial"], true, "{piece}");
    eprintln!(
        "{:?}: {} containers' logs, {lines} lines compared",
        r.generation,
        r.containers.len()
    );
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

/// `history` of the image built with RUN steps: podman's steps, newest
/// first, and a layer present on disk for each step that made one.
fn history_matches_podman_history(r: &PodmanRoot) {
    let before = integrity::snapshot(&r.root);
    let ours = dm(r, &["history", BUILT_IMAGE, "--json"]);
    let h = ours.json();
    assert!(h["warnings"].as_array().unwrap().is_empty(), "{h:#}");
    let steps = h["steps"].as_array().unwrap();
    let want = r.history.as_array().unwrap();
    assert_eq!(steps.len(), want.len(), "{h:#}\n{want:#?}");
    let mut layers = 0;
    for (got, want) in steps.iter().zip(want) {
        assert_eq!(got["created_by"], want["CreatedBy"], "{got:#}\n{want:#}");
        let comment = want["comment"].as_str().unwrap_or_default();
        assert_eq!(got["comment"], comment, "{got:#}\n{want:#}");
        if !got["empty_layer"].as_bool().unwrap() {
            let l = &got["layer"];
            assert_eq!(l["present"], true, "{got:#}");
            assert!(l["problem"].is_null(), "{got:#}");
            assert_eq!(l["size"], want["size"], "{got:#}\n{want:#}");
            layers += 1;
        }
    }
    assert!(layers >= 4, "base, commit and two RUN layers: {h:#}");
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

/// list, images, info and every container's export: nothing on stderr.
fn a_healthy_root_gives_no_warning(r: &PodmanRoot) {
    let before = integrity::snapshot(&r.root);
    for args in [&["list", "--all"][..], &["images", "--all"], &["layers"]] {
        let out = cli::run(&r.root, args);
        assert_eq!(out.status, 0, "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr, "", "{args:?}");
    }
    for c in &r.containers {
        let info = dm(r, &["info", &c.id]);
        assert_eq!(info.stderr, "", "{}", c.name);
    }
    if r.generation != Generation::Podman4 {
        assert!(
            r.root.join("db.sql").is_file(),
            "podman 5 keeps its state in SQLite"
        );
        assert!(!r.root.join("libpod/bolt_state.db").exists());
    }
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

/// The tests above, on the root of each podman.
macro_rules! tier {
    ($name:ident, $require:ident, $root:ident) => {
        mod $name {
            #[test]
            fn list_matches_podman_ps() {
                if super::$require() {
                    super::list_matches_podman_ps(super::$root());
                }
            }
            #[test]
            fn images_match_podman_images() {
                if super::$require() {
                    super::images_match_podman_images(super::$root());
                }
            }
            #[test]
            fn every_container_exports_diffs_and_mounts_like_podman() {
                if super::$require() {
                    super::every_container_exports_diffs_and_mounts_like_podman(super::$root());
                }
            }
            #[test]
            fn forensic_commands_see_what_the_container_did() {
                if super::$require() {
                    super::forensic_commands_see_what_the_container_did(super::$root());
                }
            }
            #[test]
            fn a_host_tree_holding_podman_storage_is_discovered() {
                if super::$require() {
                    super::a_host_tree_holding_podman_storage_is_discovered(super::$root());
                }
            }
            #[test]
            fn logs_match_podman_logs() {
                if super::$require() {
                    super::logs_match_podman_logs(super::$root());
                }
            }
            #[test]
            fn history_matches_podman_history() {
                if super::$require() {
                    super::history_matches_podman_history(super::$root());
                }
            }
            #[test]
            fn a_healthy_root_gives_no_warning() {
                if super::$require() {
                    super::a_healthy_root_gives_no_warning(super::$root());
                }
            }
        }
    };
}

tier!(podman4, require_podman, podman_root);
tier!(podman5, require_podman5, podman5_root);
tier!(podman5_rootless, require_podman5, podman5_rootless_root);
