//! `timeline`: the bodyfile (checked with `mactime`) and JSON lines of the
//! synthetic scene, and of a root made by a real dockerd. Every test hashes
//! the evidence before and after.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use docker_mount_engine::analysis::timeline::bodyfile_escape;
use docker_mount_tests::fixture::DEFAULT_MTIME;
use docker_mount_tests::scene::{self, Scene};
use docker_mount_tests::{cli, integrity, manifest, real};
use serde_json::Value;

/// A scene in a fresh temp dir, hashed; the hash is checked on drop.
struct Evidence {
    dir: tempfile::TempDir,
    scene: Scene,
    before: integrity::Snapshot,
}

impl Evidence {
    fn new() -> Evidence {
        let dir = tempfile::tempdir().unwrap();
        let scene = scene::build(&dir.path().join("docker"));
        let before = integrity::snapshot(&scene.fixture.root);
        Evidence { dir, scene, before }
    }
    fn root(&self) -> &Path {
        &self.scene.fixture.root
    }
    /// A path outside the evidence root for outputs.
    fn out(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
    fn short(id: &str) -> &str {
        &id.trim_start_matches("sha256:")[..12]
    }
}

impl Drop for Evidence {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.before
                .assert_unchanged(&integrity::snapshot(&self.scene.fixture.root));
        }
    }
}

/// One bodyfile line, split into its 11 fields.
struct BodyLine {
    name: String,
    inode: String,
    mode: String,
    atime: i64,
    mtime: i64,
    ctime: i64,
    crtime: i64,
}

fn parse_bodyfile(text: &str) -> Vec<BodyLine> {
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            assert_eq!(f.len(), 11, "not 11 fields: {line:?}");
            assert_eq!(f[0], "0", "{line}");
            let n = |i: usize| -> i64 { f[i].parse().unwrap_or_else(|_| panic!("{line}")) };
            n(4);
            n(5);
            n(6);
            BodyLine {
                name: f[1].to_string(),
                inode: f[2].to_string(),
                mode: f[3].to_string(),
                atime: n(7),
                mtime: n(8),
                ctime: n(9),
                crtime: n(10),
            }
        })
        .collect()
}

/// The escaped path of a file line of `prefix` (`web:`), without the
/// symlink target and layer mark; and the layer mark.
fn split_name<'a>(line: &'a BodyLine, prefix: &str) -> Option<(&'a str, &'a str)> {
    let rest = line.name.strip_prefix(prefix)?;
    let at = rest.rfind(" (layer ")?;
    let (mut path, mark) = rest.split_at(at);
    if line.mode.starts_with('l') {
        path = &path[..path.find(" -> ").unwrap()];
    }
    Some((path, mark))
}

/// Runs `mactime -b FILE -d -z UTC`; `None` if mactime is not installed
/// (a failure under `CI=true`: `cargo xtask test-drivers` installs it).
fn mactime(body: &Path) -> Option<String> {
    match Command::new("mactime")
        .arg("-b")
        .arg(body)
        .args(["-d", "-z", "UTC"])
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "mactime failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("mactime (Debian package sleuthkit) is missing in CI");
            }
            eprintln!(
                "skipping the mactime check: mactime is not installed (apt-get install sleuthkit)"
            );
            None
        }
        Err(e) => panic!("cannot run mactime: {e}"),
    }
}

fn jsonl(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn assert_sorted(records: &[Value]) {
    for pair in records.windows(2) {
        let (a, b) = (&pair[0]["timestamp"], &pair[1]["timestamp"]);
        assert!(
            a.as_i64().unwrap() <= b.as_i64().unwrap(),
            "not sorted: {} then {}",
            pair[0],
            pair[1]
        );
    }
}

/// `2021-03-04T05:06:07Z` → `2021-03-04T05:06:07.000000000Z`, as the
/// timeline writes times (docker drops trailing zeros of the fraction).
fn nanos_form(t: &str) -> String {
    let t = t.strip_suffix('Z').unwrap();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    format!("{whole}.{frac:0<9}Z")
}

#[test]
fn bodyfile_has_every_entry_once_with_times_layers_and_events() {
    let ev = Evidence::new();
    let fx = &ev.scene.fixture;
    let web = fx.container(ev.scene.web);
    let body_path = ev.out("web.body");
    cli::run(
        ev.root(),
        &["timeline", "web", "-o", body_path.to_str().unwrap()],
    )
    .ok();
    let text = std::fs::read_to_string(&body_path).unwrap();
    let lines = parse_bodyfile(&text);

    // Files: exactly the entries of the view, as `docker-mount export` writes them.
    let tar = ev.out("web.tar");
    cli::run(ev.root(), &["export", "web", "-o", tar.to_str().unwrap()]).ok();
    let view = manifest::from_tar(&tar);
    let mut files: BTreeMap<String, &BodyLine> = BTreeMap::new();
    for line in &lines {
        if line.name.starts_with('[') {
            continue;
        }
        let (path, _) = split_name(line, "web:").unwrap_or_else(|| panic!("{}", line.name));
        assert!(
            files.insert(path.to_string(), line).is_none(),
            "{path} listed twice"
        );
        assert_eq!(line.crtime, 0);
        assert!(line.atime > 0 && line.ctime > 0, "{}", line.name);
        assert!(line.inode.parse::<u64>().unwrap() > 0);
    }
    let mut want: BTreeSet<String> = view
        .entries
        .keys()
        .map(|p| bodyfile_escape(&[b"/", p.as_slice()].concat()))
        .collect();
    want.insert("/".into());
    let got: BTreeSet<String> = files.keys().cloned().collect();
    assert_eq!(got, want);
    for (path, entry) in &view.entries {
        let line = files[&bodyfile_escape(&[b"/", path.as_slice()].concat())];
        assert_eq!(line.mtime, entry.mtime, "mtime of {}", line.name);
    }

    // Times, modes, names and layer marks.
    let image = fx.image(ev.scene.small_image);
    let third = Evidence::short(&fx.layer(image.layers[2]).cache_id);
    let base = Evidence::short(&fx.layer(image.layers[0]).cache_id);
    let rw = Evidence::short(&web.mount_id);
    let old = files["/old-mtime"];
    assert_eq!(old.mtime, 915_148_800);
    assert_eq!(old.mode, "-rw-r--r--");
    assert_eq!(old.name, format!("web:/old-mtime (layer {third})"));
    assert_eq!(files["/bin/sh"].mtime, DEFAULT_MTIME);
    assert!(files["/bin/sh"].name.ends_with(&format!("(layer {base})")));
    assert_eq!(
        files["/root/added"].name,
        format!("web:/root/added (layer {rw} rw)")
    );
    assert!(files["/var/d/new"].name.ends_with(" rw)"));
    assert!(files["/.dockerenv"].name.ends_with(" init)"));
    assert_eq!(files["/bin/setuid"].mode, "-rwsr-xr-x");
    assert_eq!(files["/bin/setgid"].mode, "-rwxr-sr-x");
    assert_eq!(files["/tmp"].mode, "drwxrwxrwt");
    assert_eq!(files["/links/absolute"].mode, "lrwxrwxrwx");
    assert_eq!(
        files["/links/absolute"].name,
        format!("web:/links/absolute -> /etc/shadow (layer {third})")
    );
    assert!(files.contains_key("/names/latin1-\\xe9t\\xe9"));
    assert!(files.contains_key("/names/new\\x0aline"));
    assert!(files.contains_key("/names/back\\\\slash"));
    assert!(files.contains_key("/links/non-utf8-\\xff"));
    assert!(!files.contains_key("/etc/keep") && !files.contains_key("/etc/passwd"));

    // Events: the container's and its image's, time in mtime.
    let event = |name: &str| {
        lines
            .iter()
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("no event {name:?} in\n{text}"))
    };
    assert_eq!(event("[container web] created").mtime, DEFAULT_MTIME + 60);
    assert_eq!(event("[container web] started").mtime, DEFAULT_MTIME + 61);
    assert!(!lines
        .iter()
        .any(|l| l.name.starts_with("[container web] finished")));
    assert_eq!(event("[image small:1] created").mtime, DEFAULT_MTIME);
    assert_eq!(
        event("[image small:1] history: /bin/sh -c #(nop) ADD fixture-layer-2 in /").mtime,
        DEFAULT_MTIME
    );

    // mactime reads it.
    if let Some(out) = mactime(&body_path) {
        let rows: Vec<&str> = out.lines().skip(1).collect();
        assert!(rows.len() >= lines.len(), "mactime output:\n{out}");
        assert!(
            rows.iter()
                .any(|r| r.starts_with("Fri Jan 01 1999 00:00:00")
                    && r.contains("m...")
                    && r.contains("web:/old-mtime")),
            "mactime output:\n{out}"
        );
        assert!(
            rows.iter()
                .any(|r| r.starts_with("Thu Mar 04 2021 05:07:08")
                    && r.contains("[container web] started")),
            "mactime output:\n{out}"
        );
    }

    // Never inside the evidence.
    let inside = ev.root().join("web.body");
    let refused = cli::run(
        ev.root(),
        &["timeline", "web", "-o", inside.to_str().unwrap()],
    );
    assert_ne!(refused.status, 0);
    assert!(
        refused.stderr.contains("inside the evidence"),
        "{}",
        refused.stderr
    );
    assert!(!inside.exists());
}

#[test]
fn jsonl_is_sorted_json_with_escaped_names() {
    let ev = Evidence::new();
    let fx = &ev.scene.fixture;
    let web = fx.container(ev.scene.web);
    let out = cli::run(ev.root(), &["timeline", "web", "--format", "jsonl"]);
    let records = jsonl(out.ok());
    assert_sorted(&records);
    for r in &records {
        for key in ["message", "datetime", "timestamp_desc", "source_file"] {
            assert!(r[key].is_string(), "{key} in {r}");
        }
        assert!(r["timestamp"].is_i64(), "{r}");
    }
    let files: Vec<&Value> = records.iter().filter(|r| r["kind"] != "event").collect();
    let old: Vec<&Value> = files
        .iter()
        .copied()
        .filter(|r| r["path"] == "/old-mtime")
        .collect();
    assert_eq!(old.len(), 3, "one record per time kind: {old:?}");
    let descs: BTreeSet<&str> = old
        .iter()
        .map(|r| r["timestamp_desc"].as_str().unwrap())
        .collect();
    assert_eq!(
        descs,
        BTreeSet::from(["Access Time", "Metadata Change Time", "Modification Time"])
    );
    let m = old
        .iter()
        .find(|r| r["timestamp_desc"] == "Modification Time")
        .unwrap();
    assert_eq!(m["datetime"], "1999-01-01T00:00:00.000000000Z");
    assert_eq!(m["timestamp"], 915_148_800_000_000i64);
    assert_eq!(m["container"], "web");
    assert_eq!(m["container_id"], web.id.as_str());
    assert_eq!(m["layer_role"], "image");
    assert_eq!(m["mode"], "-rw-r--r--");
    assert_eq!(m["size"], 5);
    let third = &fx.layer(fx.image(ev.scene.small_image).layers[2]).cache_id;
    assert_eq!(m["layer"], third.as_str());
    let src = m["source_file"].as_str().unwrap();
    assert!(src.starts_with(ev.root().to_str().unwrap()), "{src}");
    assert!(src.ends_with(&format!("{third}/diff/old-mtime")), "{src}");

    let added = files.iter().find(|r| r["path"] == "/root/added").unwrap();
    assert_eq!(added["layer"], web.mount_id.as_str());
    assert_eq!(added["layer_role"], "rw");
    // The non-UTF-8 name, escaped (JSON itself escapes the backslash).
    let latin1: Vec<&&Value> = files
        .iter()
        .filter(|r| r["path"] == "/names/latin1-\\xe9t\\xe9")
        .collect();
    assert_eq!(latin1.len(), 3);
    assert!(out.ok().contains(r#""path":"/names/latin1-\\xe9t\\xe9""#));
    assert!(files.iter().any(|r| r["path"] == "/names/new\nline"));
    let link = files
        .iter()
        .find(|r| r["path"] == "/links/non-utf8-\\xff")
        .unwrap();
    assert_eq!(link["kind"], "symlink");
    assert_eq!(link["symlink_target"], "target-\\xfe");

    let event = |desc: &str| -> &Value {
        records
            .iter()
            .find(|r| r["timestamp_desc"] == desc)
            .unwrap_or_else(|| panic!("no {desc} record"))
    };
    let started = event("Container Started");
    assert_eq!(started["datetime"], "2021-03-04T05:07:08.000000000Z");
    assert_eq!(started["message"], "[container web] started");
    assert_eq!(started["container"], "web");
    assert!(started["source_file"]
        .as_str()
        .unwrap()
        .ends_with(&format!("containers/{}/config.v2.json", web.id)));
    assert_eq!(
        event("Container Created")["timestamp"],
        (DEFAULT_MTIME + 60) * 1_000_000
    );
    assert!(!records
        .iter()
        .any(|r| r["timestamp_desc"] == "Container Finished"));
    let image_created = event("Image Created");
    assert!(image_created["container"].is_null());
    assert_eq!(image_created["image"], "small:1");
    assert_eq!(
        records
            .iter()
            .filter(|r| r["timestamp_desc"] == "Image History")
            .count(),
        3
    );
}

#[test]
fn all_and_image_timelines() {
    let mut ev = Evidence::new();
    let fx = ev.scene.fixture.clone();
    // A container whose layers cannot be resolved: its events stay, its files are skipped.
    fx.remove_mount_id(ev.scene.admin);
    ev.before = integrity::snapshot(ev.root());

    let out = cli::run(ev.root(), &["timeline", "--all", "--format", "jsonl"]);
    let records = jsonl(out.ok());
    assert_sorted(&records);
    assert!(out.stderr.contains("admin"), "{}", out.stderr);
    let with_files: BTreeSet<&str> = records
        .iter()
        .filter(|r| r["kind"] != "event")
        .filter_map(|r| r["container"].as_str())
        .collect();
    assert_eq!(
        with_files,
        BTreeSet::from(["created", "deep", "stopped", "web"])
    );
    let events = |name: &str| -> Vec<&str> {
        records
            .iter()
            .filter(|r| r["kind"] == "event" && r["container"] == name)
            .map(|r| r["timestamp_desc"].as_str().unwrap())
            .collect()
    };
    assert_eq!(
        events("stopped"),
        [
            "Container Created",
            "Container Started",
            "Container Finished"
        ]
    );
    assert_eq!(events("created"), ["Container Created"]);
    assert_eq!(
        events("admin"),
        [
            "Container Created",
            "Container Started",
            "Container Finished"
        ]
    );
    let finished = records
        .iter()
        .find(|r| r["timestamp_desc"] == "Container Finished" && r["container"] == "stopped")
        .unwrap();
    assert_eq!(finished["timestamp"], (DEFAULT_MTIME + 3661) * 1_000_000);
    assert_eq!(
        finished["message"],
        "[container stopped] finished (exit code 137)"
    );
    // Every image once, with its history.
    let created: Vec<&str> = records
        .iter()
        .filter(|r| r["timestamp_desc"] == "Image Created")
        .map(|r| r["image_id"].as_str().unwrap())
        .collect();
    assert_eq!(created.len(), 3, "{created:?}");
    for image in [
        ev.scene.small_image,
        ev.scene.deep_image,
        ev.scene.untagged_image,
    ] {
        assert!(created.contains(&fx.image(image).id.trim_start_matches("sha256:")));
    }

    // The same as a bodyfile, which mactime reads.
    let body_path = ev.out("all.body");
    cli::run(
        ev.root(),
        &["timeline", "--all", "-o", body_path.to_str().unwrap()],
    )
    .ok();
    let lines = parse_bodyfile(&std::fs::read_to_string(&body_path).unwrap());
    let file_lines = lines.iter().filter(|l| !l.name.starts_with('[')).count();
    assert_eq!(
        file_lines * 3,
        records.iter().filter(|r| r["kind"] != "event").count()
    );
    assert!(lines.iter().any(|l| l.name == "[container admin] created"));
    assert!(lines.iter().any(|l| l.name.starts_with("deep:/")));
    if let Some(out) = mactime(&body_path) {
        assert!(out.contains("stopped:/old-mtime"), "{out}");
    }

    // An image's own view.
    let out = cli::run(ev.root(), &["timeline", "--image", "small:1"]);
    let lines = parse_bodyfile(out.ok());
    let third = Evidence::short(&fx.layer(fx.image(ev.scene.small_image).layers[2]).cache_id);
    let old = lines
        .iter()
        .find(|l| l.name.starts_with("small:1:/old-mtime"))
        .unwrap();
    assert_eq!(old.name, format!("small:1:/old-mtime (layer {third})"));
    assert_eq!(old.mtime, 915_148_800);
    assert!(lines.iter().any(|l| l.name == "[image small:1] created"));
    assert!(!lines.iter().any(|l| l.name.starts_with("[container")));
    assert!(!lines.iter().any(|l| l.name.contains(":/root/added")));

    // Exactly one of <container>, --all, --image.
    assert_ne!(cli::run(ev.root(), &["timeline"]).status, 0);
    assert_ne!(cli::run(ev.root(), &["timeline", "web", "--all"]).status, 0);
}

#[test]
fn real_root_jsonl_has_docker_start_times_and_rw_files() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let before = integrity::snapshot(&r.root);
    let out = cli::run(&r.root, &["timeline", "--all", "--format", "jsonl"]);
    let records = jsonl(out.ok());
    assert_sorted(&records);
    let c = r.container("c-running");
    let inspect = r
        .inspect
        .as_array()
        .and_then(|all| all.iter().find(|i| i["Id"] == c.id.as_str()))
        .unwrap_or_else(|| panic!("no docker inspect record for c-running"));
    let started_at = inspect["State"]["StartedAt"].as_str().unwrap();
    let started: Vec<&Value> = records
        .iter()
        .filter(|x| {
            x["timestamp_desc"] == "Container Started" && x["container_id"] == c.id.as_str()
        })
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(started[0]["datetime"], nanos_form(started_at));
    assert_eq!(started[0]["container"], "c-running");

    let mount_id = integrity::read_noatime(
        &r.root
            .join("image/overlay2/layerdb/mounts")
            .join(&c.id)
            .join("mount-id"),
    )
    .unwrap();
    let mount_id = String::from_utf8(mount_id).unwrap();
    let new_file: Vec<&Value> = records
        .iter()
        .filter(|x| x["container_id"] == c.id.as_str() && x["path"] == "/new-file")
        .collect();
    assert_eq!(new_file.len(), 3, "{new_file:?}");
    for x in &new_file {
        assert_eq!(x["layer_role"], "rw");
        assert_eq!(x["layer"], mount_id.trim());
        assert_eq!(x["kind"], "file");
        assert_eq!(x["size"], 3);
    }
    // Every container has its created event.
    for rc in &r.containers {
        assert!(
            records
                .iter()
                .any(|x| x["timestamp_desc"] == "Container Created"
                    && x["container_id"] == rc.id.as_str()),
            "{} has no Container Created record",
            rc.name
        );
    }
    before.assert_unchanged(&integrity::snapshot(&r.root));
}
