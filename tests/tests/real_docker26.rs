//! Tier 2 for today's docker: roots made by a real dockerd 26.1 (Debian
//! trixie's, in a chroot view of the trixie tree), with `overlay2` and
//! with the containerd image store, crashed with kill -9 (issue 15). The
//! oracles — `docker ps -a`, `images` (with and without `--all`),
//! `inspect`, `export`, `diff`, `logs` — were taken while dockerd was
//! alive; the evidence must hash the same after every command.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use docker_mount_tests::mounts::{assert_read_only_mount, MountPoint};
use docker_mount_tests::real_docker26::{self as d26, Docker26Root, Store};
use docker_mount_tests::{cli, integrity, manifest, real, trixie};
use serde_json::Value;

const STORES: [Store; 2] = [Store::Overlay2, Store::Containerd];

/// The roots, or none when they cannot be built here (a failure in CI).
fn roots() -> Vec<&'static Docker26Root> {
    if !d26::require_docker26() {
        return Vec::new();
    }
    STORES.iter().map(|&s| d26::root(s)).collect()
}

/// Runs `check` on every docker 26 root, with the root's name, and fails
/// if the evidence changed meanwhile.
fn on_every_root(check: impl Fn(&Docker26Root, &str)) {
    for r in roots() {
        let before = integrity::snapshot(&r.real.root);
        check(r, r.store.name());
        before.assert_unchanged(&integrity::snapshot(&r.real.root));
    }
}

fn inspect_of<'a>(r: &'a Docker26Root, id: &str) -> &'a Value {
    r.real
        .inspect
        .as_array()
        .and_then(|all| all.iter().find(|c| c["Id"] == id))
        .unwrap_or_else(|| panic!("no docker inspect record for {id}"))
}

/// Panics if a run printed a warning: the roots are healthy.
fn no_warnings(what: &str, run: &cli::Run) {
    assert!(
        !run.stderr.to_lowercase().contains("warning"),
        "{what}: warnings on a healthy root:\n{}",
        run.stderr
    );
}

/// Go's `%.<digits>g`: `digits` significant digits, trailing zeros dropped.
fn go_g(v: f64, digits: i32) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `bytes` as the docker CLI shows an image's SIZE (go-units `HumanSize`:
/// decimal units, three significant digits).
fn docker_human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(v, 3), units[i])
}

#[test]
fn size_format_follows_docker() {
    assert_eq!(docker_human_size(6_115_485), "6.12MB");
    assert_eq!(docker_human_size(3_177_186), "3.18MB");
    assert_eq!(docker_human_size(2_000_000), "2MB");
    assert_eq!(docker_human_size(999), "999B");
    assert_eq!(docker_human_size(31_100), "31.1kB");
}

#[test]
fn trixie_tree_has_the_engines() {
    if !real::require("privileged", trixie::available()) {
        return;
    }
    let info = trixie::info().unwrap();
    eprintln!(
        "trixie tree: built in {:.0} s, {} MB; {:?}",
        info.build_seconds,
        info.bytes >> 20,
        info.versions
    );
    let c = trixie::Chroot::enter().unwrap();
    let out = c.run_ok(["dockerd", "--version"], 60).unwrap();
    assert!(out.contains("Docker version 26."), "{out}");
    // The view is a mount of its own, with the kernel filesystems.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = c.root().to_str().unwrap().to_string();
    for sub in [
        "",
        "/proc",
        "/dev",
        "/sys",
        "/sys/fs/cgroup",
        "/run",
        "/tmp",
    ] {
        let point = format!("{root}{sub}");
        assert!(
            info.lines()
                .any(|l| l.split(' ').nth(4) == Some(point.as_str())),
            "{point} is not a mount"
        );
    }
    drop(c);
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!info.contains(&root), "the view's mounts outlive it");
}

#[test]
fn list_equals_docker_ps() {
    for r in roots() {
        let what = r.store.name();
        assert!(r.server_version.starts_with("26."), "{}", r.server_version);
        let before = integrity::snapshot(&r.real.root);
        let run = cli::run(&r.real.root, &["list", "--all", "--json"]);
        no_warnings(what, &run);
        let listed = run.json();
        let listed = listed.as_array().expect("a JSON array");
        assert_eq!(
            listed.len(),
            r.real.ps.len(),
            "{what}: list --all shows what docker ps -a showed: {listed:#?}"
        );
        for ps in &r.real.ps {
            let id = ps["ID"].as_str().unwrap();
            let got = listed
                .iter()
                .find(|l| l["id"] == id)
                .unwrap_or_else(|| panic!("{what}: {id} not listed"));
            let want = inspect_of(r, id);
            let name = ps["Names"].as_str().unwrap();
            assert_eq!(got["name"], name, "{what}");
            assert_eq!(got["image"], ps["Image"], "{what}: {name}");
            assert_eq!(
                format!("sha256:{}", got["image_id"].as_str().unwrap()),
                want["Image"],
                "{what}: {name}"
            );
            assert_eq!(got["state"], ps["State"], "{what}: {name}");
            assert_eq!(got["driver"], r.store.driver(), "{what}: {name}");
            assert_eq!(
                got["exit_code"], want["State"]["ExitCode"],
                "{what}: {name}"
            );
            assert_eq!(got["created"], want["Created"], "{what}: {name}");
            let c = r.real.container(name);
            assert_eq!(
                got["running_at_shutdown"], c.running_at_crash,
                "{what}: {name}"
            );
        }
        if r.store == Store::Containerd {
            assert!(
                listed.iter().any(|l| l["name"] == "c-multi"),
                "{what}: the multi-platform image's container"
            );
        }
        let running = cli::run(&r.real.root, &["list", "--json"]).json();
        let want_running = r
            .real
            .containers
            .iter()
            .filter(|c| c.running_at_crash)
            .count();
        assert_eq!(running.as_array().unwrap().len(), want_running, "{what}");
        before.assert_unchanged(&integrity::snapshot(&r.real.root));
    }
}

/// `docker images` row → (REPOSITORY:TAG or none, full id).
fn docker_row(v: &Value) -> (Option<String>, String) {
    let repo = v["Repository"].as_str().unwrap();
    let tag = v["Tag"].as_str().unwrap();
    let name = (repo != "<none>").then(|| format!("{repo}:{tag}"));
    let id = v["ID"].as_str().unwrap();
    (name, id.trim_start_matches("sha256:").to_string())
}

#[test]
fn images_equal_docker_images() {
    on_every_root(|r, what| {
        for (all, oracle) in [(false, &r.images_ls), (true, &r.images_ls_all)] {
            let args: &[&str] = if all {
                &["images", "--all", "--json"]
            } else {
                &["images", "--json"]
            };
            let run = cli::run(&r.real.root, args);
            no_warnings(what, &run);
            let ours = run.json();
            let ours = ours.as_array().unwrap();
            // One row per (image, tag) in docker, one per image in ours.
            let mut want: Vec<(Option<String>, String)> = oracle.iter().map(docker_row).collect();
            want.sort();
            let mut got: Vec<(Option<String>, String)> = ours
                .iter()
                .flat_map(|i| {
                    let id = i["id"].as_str().unwrap().to_string();
                    let tags: Vec<Option<String>> = i["tags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|t| Some(t.as_str().unwrap().to_string()))
                        .collect();
                    let tags = if tags.is_empty() { vec![None] } else { tags };
                    tags.into_iter().map(move |t| (t, id.clone()))
                })
                .collect();
            got.sort();
            assert_eq!(got, want, "{what}: images (--all: {all})");
            for row in oracle {
                let (_, id) = docker_row(row);
                let mine = ours.iter().find(|i| i["id"] == id.as_str()).unwrap();
                let inspect = r
                    .real
                    .images
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|i| i["Id"].as_str().unwrap().ends_with(&id))
                    .unwrap_or_else(|| panic!("{what}: no image inspect of {id}"));
                assert_eq!(
                    mine["layers"],
                    inspect["RootFS"]["Layers"].as_array().unwrap().len(),
                    "{what}: layers of {id}"
                );
                let size = mine["size"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("{what}: no size for {id}"));
                assert_eq!(
                    docker_human_size(size),
                    row["Size"].as_str().unwrap(),
                    "{what}: size of {id} ({size} bytes)"
                );
                assert_eq!(mine["created"], inspect["Created"], "{what}: {id}");
            }
        }
    });
}

#[test]
fn every_export_equals_docker_export() {
    on_every_root(|r, what| {
        let out = tempfile::tempdir().unwrap();
        let mut entries = 0;
        for c in &r.real.containers {
            let tar = out.path().join(format!("{}.tar", c.name));
            let run = cli::run(
                &r.real.root,
                &["export", &c.id, "-o", tar.to_str().unwrap()],
            );
            run.ok();
            no_warnings(what, &run);
            let want = manifest::from_tar(&c.export_tar);
            entries += want.len();
            let diffs = manifest::compare(&want, &manifest::from_tar(&tar), &[]);
            assert!(
                diffs.is_empty(),
                "{what}: {} export differs from docker export:\n{}",
                c.name,
                diffs.join("\n")
            );
        }
        eprintln!(
            "{what}: {} containers, {entries} entries equal to docker export",
            r.real.containers.len()
        );
    });
}

#[test]
fn every_mount_equals_docker_export() {
    on_every_root(|r, what| {
        for c in &r.real.containers {
            for api in ["new", "legacy", "fuse"] {
                let mnt = MountPoint::new();
                let dir = mnt.path().to_str().unwrap();
                let args: Vec<&str> = if api == "fuse" {
                    vec!["mount", "--fuse", &c.id[..12], dir]
                } else {
                    vec!["mount", &c.id[..12], dir, "--mount-api", api]
                };
                cli::run(&r.real.root, &args).ok();
                assert_read_only_mount(mnt.path());
                let diffs = manifest::compare(
                    &manifest::from_tar(&c.export_tar),
                    &manifest::from_dir(mnt.path()),
                    &[],
                );
                assert!(
                    diffs.is_empty(),
                    "{what}: {} ({api} mount) differs from docker export:\n{}",
                    c.name,
                    diffs.join("\n")
                );
                cli::run(&r.real.root, &["umount", dir]).ok();
            }
        }
    });
}

#[test]
fn every_diff_equals_docker_diff() {
    on_every_root(|r, what| {
        for c in &r.real.containers {
            let run = cli::run(&r.real.root, &["diff", &c.id]);
            no_warnings(what, &run);
            assert_eq!(
                real::diff_lines(run.ok()),
                real::diff_lines(&c.diff),
                "{what}: {}",
                c.name
            );
        }
        assert!(
            r.real.containers.iter().any(|c| !c.diff.trim().is_empty()),
            "{what}: some container changed something"
        );
    });
}

#[test]
fn logs_equal_docker_logs() {
    on_every_root(|r, what| {
        for l in &r.logs {
            let run = cli::run(&r.real.root, &["logs", &l.id, "--raw"]);
            assert_eq!(run.status, 0, "{what}: {}: {}", l.name, run.stderr);
            assert_eq!(run.stdout, l.stdout, "{what}: {} stdout", l.name);
            assert_eq!(run.stderr, l.stderr, "{what}: {} stderr", l.name);
        }
        for name in ["c-log-json", "c-log-local"] {
            let l = r.logs.iter().find(|l| l.name == name).unwrap();
            assert!(
                l.stdout.contains("out-last") && l.stderr.contains("err-2"),
                "{what}: {name} logged: {l:?}"
            );
        }
    });
}

/// The directory holding layer `cache_id` of a root of `store`.
fn layer_dir(r: &Docker26Root, cache_id: &str) -> std::path::PathBuf {
    match r.store {
        Store::Overlay2 => r.real.root.join("overlay2").join(cache_id).join("diff"),
        Store::Containerd => r
            .real
            .root
            .join("containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots")
            .join(cache_id)
            .join("fs"),
    }
}

#[test]
fn history_maps_each_step_to_its_layer() {
    use std::os::unix::fs::FileTypeExt;
    on_every_root(|r, what| {
        for row in &r.images_ls {
            let (Some(tag), _) = docker_row(row) else {
                continue;
            };
            let run = cli::run(&r.real.root, &["history", &tag, "--json"]);
            no_warnings(what, &run);
            let h = run.json();
            assert!(
                h["warnings"].as_array().unwrap().is_empty(),
                "{what}: {tag}: {}",
                h["warnings"]
            );
            let layered: Vec<&Value> = h["steps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| !s["layer"].is_null())
                .collect();
            let inspect = r
                .real
                .images
                .as_array()
                .unwrap()
                .iter()
                .find(|i| {
                    i["RepoTags"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|t| t == tag.as_str())
                })
                .unwrap();
            assert_eq!(
                layered.len(),
                inspect["RootFS"]["Layers"].as_array().unwrap().len(),
                "{what}: {tag}"
            );
            assert!(
                layered.iter().all(|s| s["layer"]["present"] == true),
                "{what}: {tag}: {layered:#?}"
            );
        }
        // The step that deleted /awk/doomed-file holds its whiteout; the
        // step before it, the file.
        let h = cli::run(&r.real.root, &["history", "dm-awkward:1", "--json"]).json();
        let layer_of = |needle: &str| {
            let step = h["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["created_by"].as_str().unwrap().contains(needle))
                .unwrap_or_else(|| panic!("{what}: no step {needle:?}"));
            layer_dir(r, step["layer"]["cache_id"].as_str().unwrap())
        };
        let made = layer_of("echo doomed > /awk/doomed-file").join("awk/doomed-file");
        assert!(made.is_file(), "{what}: {}", made.display());
        let gone = layer_of("rm /awk/doomed-file").join("awk/doomed-file");
        let meta = std::fs::symlink_metadata(&gone).unwrap();
        assert!(
            meta.file_type().is_char_device(),
            "{what}: {} is no whiteout",
            gone.display()
        );
    });
}

#[test]
fn info_names_each_containers_layers() {
    for r in roots() {
        let what = r.store.name();
        for c in &r.real.containers {
            let run = cli::run(&r.real.root, &["info", &c.id, "--json"]);
            no_warnings(what, &run);
            let info = run.json();
            assert!(
                info["layer_error"].is_null(),
                "{what}: {}: {}",
                c.name,
                info["layer_error"]
            );
            assert!(
                info["warnings"].as_array().unwrap().is_empty(),
                "{what}: {}: {}",
                c.name,
                info["warnings"]
            );
            let layers = info["layers"].as_array().unwrap();
            assert_eq!(layers[0]["role"], "rw", "{what}: {}", c.name);
            assert_eq!(layers[1]["role"], "init", "{what}: {}", c.name);
            let want = inspect_of(r, &c.id);
            assert_eq!(
                info["host"]["privileged"], want["HostConfig"]["Privileged"],
                "{what}: {}",
                c.name
            );
            // docker 26 records the platform manifest it runs with the
            // containerd store: here the image's own (no index).
            let manifest = r.real.config_v2(&c.name)["ImageManifest"]["digest"].clone();
            match r.store {
                Store::Overlay2 => assert!(info["image_manifest"].is_null(), "{what}"),
                Store::Containerd => {
                    assert_eq!(info["image_manifest"], manifest, "{what}: {}", c.name);
                    if c.name == "c-multi" {
                        // Its image's target is an index: the manifest run
                        // is the amd64 one.
                        assert_eq!(
                            info["image_manifest"].as_str(),
                            r.multi_manifest.as_deref(),
                            "{what}"
                        );
                        assert_ne!(info["image_manifest"], want["Image"], "{what}");
                    } else {
                        assert_eq!(info["image_manifest"], want["Image"], "{what}: {}", c.name);
                    }
                }
            }
        }
    }
}

#[test]
fn roots_counts_images_and_drivers() {
    for r in roots() {
        let what = r.store.name();
        let run = cli::run(&r.real.root, &["roots", "--json"]);
        no_warnings(what, &run);
        let out = run.json();
        let row = &out["roots"][0];
        assert_eq!(row["containers"], r.real.containers.len(), "{what}");
        assert_eq!(row["images"], r.images_ls_all.len(), "{what}");
        assert_eq!(
            row["drivers"],
            serde_json::json!([r.store.driver()]),
            "{what}"
        );
    }
}

#[test]
fn every_layer_has_its_users() {
    for r in roots() {
        let what = r.store.name();
        let run = cli::run(&r.real.root, &["layers", "--json"]);
        no_warnings(what, &run);
        let out = run.json();
        assert_eq!(out["problems"], serde_json::json!([]), "{what}");
        assert_eq!(out["missing"], serde_json::json!([]), "{what}");
        let layers = out["layers"].as_array().unwrap();
        for l in layers {
            let users = |k: &str| l[k].as_array().map_or(0, Vec::len);
            assert!(
                users("containers") + users("images") > 0,
                "{what}: layer {} has no user: {l}",
                l["id"]
            );
        }
        for c in &r.real.containers {
            let rw = layers
                .iter()
                .filter(|l| l["role"] == "container-rw")
                .filter(|l| {
                    l["containers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|n| n == c.name.as_str())
                })
                .count();
            assert_eq!(rw, 1, "{what}: {} has one rw layer", c.name);
        }
    }
}

/// A view left by a process killed with SIGKILL (no Drop ran) is swept
/// by the next `Chroot::enter`.
#[test]
fn a_killed_processs_view_is_swept() {
    use std::io::BufRead;
    const CHILD: &str = "DM_TRIXIE_VIEW_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let c = trixie::Chroot::enter().unwrap();
        println!("view {}", c.root().display());
        std::thread::sleep(std::time::Duration::from_secs(600));
        return;
    }
    if !real::require("privileged", trixie::available()) {
        return;
    }
    trixie::tree().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "a_killed_processs_view_is_swept", "--nocapture"])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let view = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("view ").map(str::to_string))
        .expect("the child entered a view");
    child.kill().unwrap();
    child.wait().unwrap();
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4).is_some_and(|p| p.starts_with(&view)))
    };
    assert!(mounted(), "the killed child's view {view} is mounted");
    drop(trixie::Chroot::enter().unwrap());
    assert!(!mounted(), "{view} was not swept");
    assert!(
        !std::path::Path::new(&view).exists(),
        "{view} was not removed"
    );
}
