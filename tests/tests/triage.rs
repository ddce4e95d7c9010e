//! Triage of a whole host: root discovery, audit and logs on a synthetic
//! host tree (`docker_mount_tests::host`). Every test hashes the whole
//! tree before and after.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::Write;
use std::path::{Path, PathBuf};

use docker_mount_tests::host::{self, HostTree};
use docker_mount_tests::{cli, integrity};
use serde_json::Value;

/// A host tree in a fresh temp dir, hashed; checked unchanged on drop.
struct Host {
    dir: tempfile::TempDir,
    tree: HostTree,
    before: Option<integrity::Snapshot>,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let tree = host::build(dir.path());
        Host {
            dir,
            tree,
            before: None,
        }
    }
    /// Hashes the tree: call after the test's own changes to it.
    fn seal(mut self) -> Host {
        self.before = Some(integrity::snapshot(self.dir.path()));
        self
    }
    fn host(&self) -> &Path {
        &self.tree.host
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(before) = &self.before {
            if !std::thread::panicking() {
                before.assert_unchanged(&integrity::snapshot(self.dir.path()));
            }
        }
    }
}

fn find_root<'a>(roots: &'a Value, path: &Path) -> &'a Value {
    roots["roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == path.display().to_string())
        .unwrap_or_else(|| panic!("{} not in {roots:#}", path.display()))
}

#[test]
fn roots_finds_every_root_of_a_host() {
    let h = Host::new().seal();
    let t = &h.tree;
    let out = cli::run(h.host(), &["roots", "--json"]).json();
    assert_eq!(out["host"], h.host().display().to_string());
    let system = find_root(&out, t.system_root());
    assert_eq!(system["present"], true);
    assert_eq!(system["host_path"], "/srv/docker");
    assert_eq!(system["kind"], "configured");
    assert_eq!(system["containers"], 5);
    let sources = system["sources"].to_string();
    assert!(sources.contains("default data root"), "{sources}");
    assert!(
        sources.contains("/var/lib/docker -> /srv/docker"),
        "{sources}"
    );
    assert!(sources.contains("/etc/docker/daemon.json"), "{sources}");
    let remap = find_root(&out, &t.remap.root);
    assert_eq!(remap["kind"], "userns-remap");
    assert_eq!(remap["remap"]["uid"], 100_000);
    assert_eq!(remap["host_path"], "/srv/docker/100000.100000");
    assert_eq!(remap["containers"], 1);
    let rootless = find_root(&out, &t.rootless.root);
    assert_eq!(rootless["kind"], "rootless");
    assert_eq!(rootless["user"], "alice");
    // Configured but not in the image: listed, absent.
    let elsewhere = out["roots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["host_path"] == "/mnt/elsewhere/docker")
        .unwrap_or_else(|| panic!("/mnt/elsewhere/docker not listed: {out:#}"));
    assert_eq!(elsewhere["present"], false);
    assert!(elsewhere["sources"]
        .to_string()
        .contains("/etc/sysconfig/docker"));
    // Nothing outside the host tree, whatever the symlinks say.
    let present: Vec<&Value> = out["roots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["present"] == true)
        .collect();
    assert_eq!(present.len(), 3, "{out:#}");
    for r in &present {
        let p = PathBuf::from(r["path"].as_str().unwrap());
        assert!(p.starts_with(h.host()), "{} escapes the host", p.display());
    }
    assert!(!out.to_string().contains(&t.outside.display().to_string()));
    // mallory's data-root climbs out with `..`: it stays a host path.
    for r in out["roots"].as_array().unwrap() {
        let p = r["path"].as_str().unwrap();
        assert!(!p.contains("/.."), "{p}");
    }
    assert!(out["roots"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["host_path"] == "/outside" && r["present"] == false));
    // The table names each.
    let table = cli::run(h.host(), &["roots"]);
    for p in [
        "/srv/docker",
        "/srv/docker/100000.100000",
        "userns-remap",
        "rootless (alice)",
    ] {
        assert!(table.ok().contains(p), "{p} missing:\n{}", table.stdout);
    }
}

#[test]
fn commands_ask_which_root_and_take_the_one_given() {
    let h = Host::new().seal();
    let t = &h.tree;
    let list = cli::run(h.host(), &["list", "--all"]);
    assert_ne!(list.status, 0);
    assert!(
        list.stderr.contains("holds 3 docker roots"),
        "{}",
        list.stderr
    );
    for r in [t.system_root(), &t.remap.root, &t.rootless.root] {
        let hint = format!("--root {}", r.display());
        assert!(list.stderr.contains(&hint), "no {hint} in {}", list.stderr);
    }
    // The system root has a userns-remap sub-root: asking again.
    let again = cli::run(t.system_root(), &["list", "--all"]);
    assert_ne!(again.status, 0);
    assert!(
        again.stderr.contains("holds 2 docker roots"),
        "{}",
        again.stderr
    );
    let remapped = cli::run(&t.remap.root, &["list", "--all", "--json"]).json();
    assert_eq!(remapped[0]["name"], "remapped");
    let rootless = cli::run(&t.rootless.root, &["list", "--json"]).json();
    assert_eq!(rootless[0]["name"], "alice-tool");
}

#[test]
fn a_host_with_one_root_needs_no_choice() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    for d in ["etc", "usr", "home"] {
        std::fs::create_dir_all(host.join(d)).unwrap();
    }
    docker_mount_tests::scene::build(&host.join("var/lib/docker"));
    let before = integrity::snapshot(dir.path());
    let list = cli::run(&host, &["list", "--all", "--json"]).json();
    assert_eq!(list.as_array().unwrap().len(), 5);
    let info = cli::run(&host, &["info", "web", "--json"]).json();
    assert_eq!(info["name"], "web");
    // The named volume's data, and binds found in the host tree.
    assert_eq!(
        info["mounts"][0]["local_path"],
        host.join("var/lib/docker/volumes/data/_data")
            .display()
            .to_string()
    );
    let admin = cli::run(&host, &["info", "admin", "--json"]).json();
    let mounts = admin["mounts"].as_array().unwrap();
    let by_dest = |d: &str| mounts.iter().find(|m| m["destination"] == d).unwrap();
    assert_eq!(by_dest("/host")["local_path"], host.display().to_string());
    assert!(by_dest("/var/run/docker.sock")["local_path"].is_null());
    assert_eq!(
        by_dest("/var/run/docker.sock")["note"],
        "not in the host image"
    );
    let empty = tempfile::tempdir().unwrap();
    // A disk without docker: nothing listed, a note, success (issue 18).
    let none = cli::run(empty.path(), &["list"]);
    assert_eq!((none.status, none.stdout.as_str()), (0, ""));
    assert!(none.stderr.contains("no docker root"), "{}", none.stderr);
    before.assert_unchanged(&integrity::snapshot(dir.path()));
}

fn findings<'a>(audit: &'a Value, check: &str) -> Vec<&'a Value> {
    audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

#[test]
fn audit_reports_each_exposure_with_its_file() {
    let h = Host::new().seal();
    let t = &h.tree;
    let audit = cli::run(h.host(), &["audit", "--json"]).json();
    let tcp = findings(&audit, "daemon-tcp-no-tls");
    let by_file = |host_path: &str, addr: &str| {
        tcp.iter()
            .find(|f| f["host_path"] == host_path && f["title"].as_str().unwrap().contains(addr))
            .unwrap_or_else(|| panic!("no tcp finding for {host_path} {addr}: {tcp:#?}"))
    };
    let json = by_file("/etc/docker/daemon.json", "0.0.0.0:2375");
    assert_eq!(json["severity"], "critical");
    assert_eq!(
        json["file"],
        h.host()
            .join("etc/docker/daemon.json")
            .display()
            .to_string()
    );
    let opts = by_file("/etc/default/docker", "0.0.0.0:4243");
    assert!(opts["title"]
        .as_str()
        .unwrap()
        .contains("the systemd unit passes $DOCKER_OPTS"));
    assert!(opts["evidence"].as_str().unwrap().contains("DOCKER_OPTS="));
    let drop_in = by_file(
        "/etc/systemd/system/docker.service.d/override.conf",
        "0.0.0.0:2376",
    );
    assert!(drop_in["evidence"].as_str().unwrap().contains("ExecStart="));
    assert_eq!(tcp.len(), 3, "{tcp:#?}");
    // The unit itself only says fd:// and $DOCKER_OPTS.
    assert!(!audit
        .to_string()
        .contains("lib/systemd/system/docker.service\",\"title"));
    let registry = findings(&audit, "insecure-registry");
    assert_eq!(registry[0]["host_path"], "/etc/default/docker");

    let admin_id = &t.scene.fixture.container(t.scene.admin).id;
    let hostconfig = t
        .system_root()
        .join("containers")
        .join(admin_id)
        .join("hostconfig.json");
    let privileged = findings(&audit, "privileged");
    assert_eq!(privileged.len(), 1);
    assert_eq!(privileged[0]["container"], "admin");
    assert_eq!(privileged[0]["severity"], "critical");
    assert_eq!(privileged[0]["file"], hostconfig.display().to_string());
    let sock = findings(&audit, "bind-docker-socket");
    assert_eq!(sock.len(), 1, "{sock:#?}");
    assert_eq!(sock[0]["container"], "admin");
    assert!(sock[0]["file"]
        .as_str()
        .unwrap()
        .starts_with(&t.system_root().join("containers").display().to_string()));
    assert_eq!(findings(&audit, "bind-host-root")[0]["container"], "admin");
    assert_eq!(findings(&audit, "host-pid")[0]["container"], "admin");
    assert_eq!(findings(&audit, "host-network")[0]["container"], "admin");
    let cap = findings(&audit, "cap-add");
    assert!(cap[0]["title"].as_str().unwrap().contains("CAP_SYS_ADMIN"));
    assert_eq!(cap[0]["severity"], "high");
    // userns-remap: the sub-root says it was on; its container ran as 1000.
    let remap_root = findings(&audit, "userns-remap-root");
    assert_eq!(remap_root.len(), 1);
    assert!(remap_root[0]["title"]
        .as_str()
        .unwrap()
        .contains("100000:100000"));
    let as_root = findings(&audit, "runs-as-root");
    assert!(!as_root.iter().any(|f| f["container"] == "remapped"));
    let alice = as_root
        .iter()
        .find(|f| f["container"] == "alice-tool")
        .unwrap();
    assert_eq!(alice["severity"], "info");
    let web = as_root.iter().find(|f| f["container"] == "web").unwrap();
    assert_eq!(web["severity"], "low");
    assert_eq!(findings(&audit, "rootless-root").len(), 1);
    // Sorted, most severe first.
    let order = ["critical", "high", "medium", "low", "info"];
    let ranks: Vec<usize> = audit["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| order.iter().position(|o| *o == f["severity"]).unwrap())
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");
    let table = cli::run(h.host(), &["audit"]);
    assert!(table.ok().contains("CRITICAL"));
    assert!(table.stdout.contains("/etc/default/docker"));
}

#[test]
fn audit_of_a_root_alone_still_reports_containers() {
    let dir = tempfile::tempdir().unwrap();
    let scene = docker_mount_tests::scene::build(&dir.path().join("docker"));
    let before = integrity::snapshot(dir.path());
    let audit = cli::run(&scene.fixture.root, &["audit", "--json"]).json();
    assert!(audit["host"].is_null());
    assert_eq!(findings(&audit, "privileged").len(), 1);
    assert_eq!(findings(&audit, "userns-remap-off").len(), 1);
    before.assert_unchanged(&integrity::snapshot(dir.path()));
}

/// A json-file line as docker writes it.
fn json_line(log: &str, stream: &str, time: &str) -> String {
    serde_json::json!({"log": log, "stream": stream, "time": time}).to_string() + "\n"
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A `local` driver record, encoded by hand: u32 BE length, the protobuf
/// `LogEntry` (source=1, time_nano=2, line=3, partial=4), the length again.
fn local_record(source: &str, time_nano: u64, line: &[u8], partial: bool) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut msg = vec![0x0a];
    varint(&mut msg, source.len() as u64);
    msg.extend_from_slice(source.as_bytes());
    msg.push(0x10);
    varint(&mut msg, time_nano);
    msg.push(0x1a);
    varint(&mut msg, line.len() as u64);
    msg.extend_from_slice(line);
    if partial {
        msg.extend_from_slice(&[0x20, 0x01]);
    }
    let len = (msg.len() as u32).to_be_bytes();
    [&len[..], &msg, &len].concat()
}

/// A sample root alone, for the log tests.
struct Root {
    dir: tempfile::TempDir,
    scene: docker_mount_tests::scene::Scene,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        let scene = docker_mount_tests::scene::build(&dir.path().join("docker"));
        Root { dir, scene }
    }
    fn path(&self) -> &Path {
        &self.scene.fixture.root
    }
    fn container_dir(&self, c: docker_mount_tests::fixture::ContainerRef) -> PathBuf {
        self.scene.fixture.container_dir(c)
    }
}

fn lines(v: &Value) -> Vec<(String, String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["time"].as_str().unwrap().to_string(),
                r["stream"].as_str().unwrap().to_string(),
                r["line"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn logs_read_rotated_and_compressed_json_files() {
    let r = Root::new();
    let web = r.scene.fixture.container(r.scene.web);
    let dir = r.container_dir(r.scene.web);
    let base = dir.join(format!("{}-json.log", web.id));
    std::fs::write(
        dir.join(format!("{}-json.log.2.gz", web.id)),
        gzip(
            (json_line("oldest\n", "stdout", "2021-03-04T05:00:00.000000001Z")
                + &json_line("err in gz\n", "stderr", "2021-03-04T05:00:01Z"))
                .as_bytes(),
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{}-json.log.1", web.id)),
        json_line("middle ", "stdout", "2021-03-04T05:03:00Z")
            + &json_line("part\n", "stdout", "2021-03-04T05:03:00.5Z"),
    )
    .unwrap();
    // The live file ends in a record torn by the crash.
    let mut live = std::fs::read(&base).unwrap();
    live.extend_from_slice(br#"{"log":"torn"#);
    std::fs::write(&base, live).unwrap();
    let before = integrity::snapshot(r.dir.path());

    let all = cli::run(r.path(), &["logs", "web", "--json"]);
    let got = lines(&all.json());
    let want = [
        ("2021-03-04T05:00:00.000000001Z", "stdout", "oldest\n"),
        ("2021-03-04T05:00:01.000000000Z", "stderr", "err in gz\n"),
        ("2021-03-04T05:03:00.000000000Z", "stdout", "middle "),
        ("2021-03-04T05:03:00.500000000Z", "stdout", "part\n"),
        (
            "2021-03-04T05:07:08.123456789Z",
            "stdout",
            "fixture container starting\n",
        ),
        ("2021-03-04T05:07:08.123456790Z", "stdout", "ready\n"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(
        all.stderr.contains("truncated last record"),
        "{}",
        all.stderr
    );
    assert!(all.stderr.contains(&format!("{}-json.log", web.id)));
    let parsed = all.json();
    assert_eq!(parsed[2]["partial"], true);
    assert!(parsed[0]["file"].as_str().unwrap().ends_with(".2.gz"));

    // docker logs' own bytes: stdout and stderr records apart.
    let raw = cli::run(r.path(), &["logs", "web", "--raw"]);
    assert_eq!(
        raw.ok(),
        "oldest\nmiddle part\nfixture container starting\nready\n"
    );
    assert!(raw.stderr.starts_with("err in gz\n"), "{}", raw.stderr);
    let stamped = cli::run(r.path(), &["logs", "web", "--raw", "-t"]);
    assert!(stamped
        .ok()
        .starts_with("2021-03-04T05:00:00.000000001Z oldest\n"));

    // --since and --until are inclusive, in any accepted spelling.
    let since = cli::run(
        r.path(),
        &["logs", "web", "--json", "--since", "2021-03-04T05:03:00Z"],
    );
    assert_eq!(lines(&since.json()).len(), 4);
    let until = cli::run(
        r.path(),
        &[
            "logs",
            "web",
            "--json",
            "--until",
            "2021-03-04T06:03:00.5+01:00",
        ],
    );
    assert_eq!(lines(&until.json()).len(), 4);
    let window = cli::run(
        r.path(),
        &[
            "logs",
            "web",
            "--json",
            "--since",
            "1614834001",
            "--until",
            "1614834180",
        ],
    );
    let w = lines(&window.json());
    assert_eq!(w.len(), 2, "{w:?}");
    assert_eq!(w[0].2, "err in gz\n");
    let bad = cli::run(r.path(), &["logs", "web", "--since", "last tuesday"]);
    assert_ne!(bad.status, 0);
    let text = cli::run(r.path(), &["logs", "web"]);
    assert!(text
        .ok()
        .contains("2021-03-04T05:00:01.000000000Z stderr err in gz\n"));
    let files = cli::run(r.path(), &["logs", "web", "--files", "--json"]).json();
    assert_eq!(files.as_array().unwrap().len(), 3);
    assert_eq!(files[0]["compressed"], true);
    before.assert_unchanged(&integrity::snapshot(r.dir.path()));
}

#[test]
fn logs_read_the_local_driver_and_its_damage() {
    let r = Root::new();
    let dir = r.container_dir(r.scene.stopped).join("local-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let t0: u64 = 1_614_834_000_000_000_000;
    let rotated = [
        local_record("stdout", t0, b"first", false),
        local_record("stderr", t0 + 1, b"warning: x", false),
    ]
    .concat();
    std::fs::write(dir.join("container.log.1.gz"), gzip(&rotated)).unwrap();
    let mut live = [
        local_record("stdout", t0 + 2_000_000_000, b"long line, piece one|", true),
        local_record("stdout", t0 + 2_000_000_001, b"piece two", false),
        local_record("stdout", t0 + 3_000_000_000, b"bytes \xff\xfe", false),
    ]
    .concat();
    // The crash tore the last record.
    let torn = local_record("stdout", t0 + 4_000_000_000, b"never finished", false);
    live.extend_from_slice(&torn[..torn.len() - 6]);
    std::fs::write(dir.join("container.log"), live).unwrap();
    // The json-file log of this container is gone: only local-logs.
    let stopped = r.scene.fixture.container(r.scene.stopped);
    std::fs::remove_file(
        r.container_dir(r.scene.stopped)
            .join(format!("{}-json.log", stopped.id)),
    )
    .unwrap();
    let before = integrity::snapshot(r.dir.path());

    let out = cli::run(r.path(), &["logs", "stopped", "--json"]);
    let v = out.json();
    let got = lines(&v);
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(
        got[0],
        (
            "2021-03-04T05:00:00.000000000Z".into(),
            "stdout".into(),
            "first\n".into()
        )
    );
    assert_eq!(got[1].1, "stderr");
    assert_eq!(got[1].0, "2021-03-04T05:00:00.000000001Z");
    // A partial piece has no newline; the last piece has one.
    assert_eq!(got[2].2, "long line, piece one|");
    assert_eq!(v[2]["partial"], true);
    assert_eq!(got[3].2, "piece two\n");
    assert_eq!(v[4]["line_hex"], "627974657320fffe0a");
    assert!(out.stderr.contains("truncated record"), "{}", out.stderr);
    let raw = cli::run(r.path(), &["logs", "stopped", "--raw"]);
    assert_eq!(
        raw.ok(),
        "first\nlong line, piece one|piece two\nbytes \u{fffd}\u{fffd}\n"
    );
    let text = cli::run(r.path(), &["logs", "stopped"]);
    assert!(
        text.ok().contains("stdout bytes \\xff\\xfe\n"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("stdout (partial) long line"));

    // A record whose trailer disagrees stops the file with a warning.
    drop(before);
    let mut bad = local_record("stdout", t0, b"ok", false);
    let mut broken = local_record("stdout", t0 + 1, b"bad trailer", false);
    let n = broken.len();
    broken[n - 1] ^= 0xff;
    bad.extend_from_slice(&broken);
    bad.extend_from_slice(&local_record("stdout", t0 + 2, b"after", false));
    std::fs::remove_file(dir.join("container.log.1.gz")).unwrap();
    std::fs::write(dir.join("container.log"), bad).unwrap();
    let before = integrity::snapshot(r.dir.path());
    let out = cli::run(r.path(), &["logs", "stopped", "--json"]);
    assert_eq!(lines(&out.json()).len(), 1);
    assert!(out.stderr.contains("differ"), "{}", out.stderr);
    before.assert_unchanged(&integrity::snapshot(r.dir.path()));
}

#[test]
fn logs_of_a_container_without_log_files() {
    let r = Root::new();
    let before = integrity::snapshot(r.dir.path());
    let out = cli::run(r.path(), &["logs", "created", "--json"]);
    assert_eq!(out.json(), serde_json::json!([]));
    assert!(out.stderr.contains("no log files"), "{}", out.stderr);
    before.assert_unchanged(&integrity::snapshot(r.dir.path()));
}

/// A log that is a FIFO (or a symlink) is named, never read: an error
/// when it is the only file, a warning beside the files that can be read.
#[test]
fn logs_name_a_log_that_is_not_a_regular_file() {
    let r = Root::new();
    let web = r.scene.fixture.container(r.scene.web);
    let dir = r.container_dir(r.scene.web);
    let live = dir.join(format!("{}-json.log", web.id));
    std::fs::remove_file(&live).unwrap();
    nix::unistd::mkfifo(&live, nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
    let before = integrity::snapshot(r.dir.path());

    let only = cli::run(r.path(), &["logs", "web", "--json"]);
    assert_ne!(only.status, 0);
    assert!(
        only.stderr.contains(&*live.to_string_lossy())
            && only.stderr.contains("is a FIFO, not a regular file"),
        "{}",
        only.stderr
    );
    assert_eq!(only.stdout, "", "no half JSON array");
    let files = cli::run(r.path(), &["logs", "web", "--files", "--json"]).json();
    assert_eq!(files.as_array().unwrap().len(), 1, "{files}");
    before.assert_unchanged(&integrity::snapshot(r.dir.path()));

    std::fs::write(
        dir.join(format!("{}-json.log.1", web.id)),
        json_line("kept\n", "stdout", "2021-03-04T05:00:00Z"),
    )
    .unwrap();
    let before = integrity::snapshot(r.dir.path());
    let both = cli::run(r.path(), &["logs", "web", "--json"]);
    assert_eq!(lines(&both.json()).len(), 1);
    assert!(
        both.stderr.contains(&*live.to_string_lossy())
            && both.stderr.contains("not a regular file; skipped"),
        "{}",
        both.stderr
    );
    before.assert_unchanged(&integrity::snapshot(r.dir.path()));
}

#[test]
fn userns_ids_map_from_the_host_subuid() {
    let h = Host::new().seal();
    let t = &h.tree;
    let info = cli::run(&t.remap.root, &["info", "remapped", "--json"]).json();
    let m = &info["id_map"];
    assert_eq!(m["uid"][0]["container"], 0);
    assert_eq!(m["uid"][0]["host"], host::REMAP_BASE);
    assert_eq!(m["uid"][0]["count"], 65536);
    assert!(m["source"].as_str().unwrap().contains("dockremap"), "{m}");
    assert_eq!(info["user"], "1000:1000");
    assert_eq!(info["user_on_disk"], "101000:101000");
    let text = cli::run(&t.remap.root, &["info", "remapped"]);
    assert!(text.ok().contains("User on disk"), "{}", text.stdout);

    let alice = cli::run(&t.rootless.root, &["info", "alice-tool", "--json"]).json();
    let u = &alice["id_map"]["uid"];
    assert_eq!(u[0]["host"], host::ALICE_UID);
    assert_eq!(u[0]["count"], 1);
    assert_eq!(u[1]["container"], 1);
    assert_eq!(u[1]["host"], host::ALICE_SUB_BASE);

    let over = cli::run(
        &t.remap.root,
        &["--uid-map", "0:200000:10", "info", "remapped", "--json"],
    )
    .json();
    assert_eq!(over["id_map"]["uid"][0]["host"], 200_000);
    assert_eq!(over["id_map"]["source"], "--uid-map / --gid-map");
    let bad = cli::run(&t.remap.root, &["--uid-map", "0:x", "info", "remapped"]);
    assert_ne!(bad.status, 0);

    // A plain root has no map.
    let web = cli::run(
        &h.tree.scene.fixture.root.join("100000.100000"),
        &["info", "remapped", "--json"],
    )
    .json();
    assert!(!web["id_map"].is_null());
    let roots = cli::run(h.host(), &["roots", "--json"]).json();
    let remap = find_root(&roots, &t.remap.root);
    assert_eq!(remap["id_map"]["gid"][0]["host"], host::REMAP_BASE);
    assert!(find_root(&roots, t.system_root())["id_map"].is_null());
}

#[test]
fn history_joins_steps_with_layers_on_disk() {
    let r = Root::new();
    let fx = &r.scene.fixture;
    // One layer of the small image lost its directory.
    let small = fx.image(r.scene.small_image);
    let lost = fx.layer(small.layers[1]).cache_id.clone();
    std::fs::rename(fx.overlay2().join(&lost), r.dir.path().join("moved-away")).unwrap();
    let before = integrity::snapshot(r.dir.path());
    let h = cli::run(r.path(), &["history", "small:1", "--json", "--disk-usage"]).json();
    let steps = h["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    // Newest first, each with its layer.
    for (step, layer) in steps.iter().zip(small.layers.iter().rev()) {
        let l = fx.layer(*layer);
        assert_eq!(step["layer"]["cache_id"], l.cache_id.as_str());
        assert_eq!(
            step["layer"]["chain_id"],
            l.chain_id.trim_start_matches("sha256:")
        );
        assert_eq!(step["layer"]["size"], l.size);
    }
    assert!(steps[0]["created_by"]
        .as_str()
        .unwrap()
        .contains("fixture-layer-2"));
    assert_eq!(steps[0]["layer"]["present"], true);
    assert!(steps[0]["layer"]["disk"]["files"].as_u64().unwrap() > 0);
    assert_eq!(steps[1]["layer"]["present"], false);
    assert!(steps[1]["layer"]["problem"]
        .as_str()
        .unwrap()
        .contains("missing"));
    let total: u64 = small.layers.iter().map(|l| fx.layer(*l).size).sum();
    assert_eq!(h["size"], total);
    let text = cli::run(r.path(), &["history", "small:1"]);
    assert!(text.ok().contains("fixture-layer-0"));
    assert!(text.stdout.contains("missing"));
    let deep = cli::run(r.path(), &["history", "deep:150", "--json"]).json();
    assert_eq!(
        deep["steps"].as_array().unwrap().len(),
        docker_mount_tests::scene::DEEP_LAYERS
    );
    before.assert_unchanged(&integrity::snapshot(r.dir.path()));
}

#[test]
fn layers_lists_users_and_orphans() {
    let r = Root::new();
    let fx = &r.scene.fixture;
    // `stopped` is removed the way a crash mid-`docker rm` leaves it: its
    // config and layerdb mount gone, its layer directories left.
    let stopped = fx.container(r.scene.stopped).clone();
    std::fs::remove_dir_all(fx.container_dir(r.scene.stopped)).unwrap();
    std::fs::remove_dir_all(fx.mounts_dir(r.scene.stopped)).unwrap();
    // A layer directory nothing names, as an interrupted pull leaves it.
    let stray = "f".repeat(64);
    std::fs::create_dir_all(fx.overlay2().join(&stray).join("diff/tmp")).unwrap();
    std::fs::write(
        fx.overlay2().join(&stray).join("diff/tmp/payload"),
        b"0123456789",
    )
    .unwrap();
    // A layerdb record whose directory is gone.
    let deep_first = fx
        .layer(fx.image(r.scene.deep_image).layers[0])
        .cache_id
        .clone();
    std::fs::rename(fx.overlay2().join(&deep_first), r.dir.path().join("gone")).unwrap();
    let before = integrity::snapshot(r.dir.path());

    let inv = cli::run(r.path(), &["layers", "--json"]).json();
    let layers = inv["layers"].as_array().unwrap();
    let by_id = |id: &str| {
        layers
            .iter()
            .find(|l| l["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed"))
    };
    let web = fx.container(r.scene.web);
    assert_eq!(by_id(&web.mount_id)["role"], "container-rw");
    assert_eq!(by_id(&web.mount_id)["containers"][0], "web");
    assert_eq!(by_id(&web.init_id)["role"], "container-init");
    let small = fx.image(r.scene.small_image);
    let top = by_id(&fx.layer(small.layers[2]).cache_id);
    assert_eq!(top["role"], "image");
    assert!(top["images"].to_string().contains("small:1"));
    let users = top["containers"].to_string();
    assert!(users.contains("web") && users.contains("admin") && !users.contains("stopped"));
    assert!(top["usage"].is_null());
    // Orphans: the removed container's two layers and the stray one.
    let orphans: Vec<&Value> = layers.iter().filter(|l| l["role"] == "orphan").collect();
    let ids: Vec<&str> = orphans.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(orphans.len(), 3, "{ids:?}");
    let rw = by_id(&stopped.mount_id);
    assert_eq!(rw["role"], "orphan");
    assert!(rw["hint"]
        .as_str()
        .unwrap()
        .contains("rw layer of a removed container"));
    assert!(rw["parents"][0]
        .as_str()
        .unwrap()
        .contains(&stopped.init_id));
    assert!(
        rw["parents"][1].as_str().unwrap().contains("small:1"),
        "{}",
        rw["parents"]
    );
    assert!(by_id(&stopped.init_id)["hint"]
        .as_str()
        .unwrap()
        .contains("init layer"));
    let s = by_id(&stray);
    assert_eq!(s["usage"]["bytes"], 10);
    assert_eq!(s["usage"]["files"], 1);
    assert!(s["usage"]["newest_mtime"].is_string());
    assert!(s["hint"].as_str().unwrap().contains("interrupted pull"));
    let missing = inv["missing"].as_array().unwrap();
    assert_eq!(missing.len(), 1, "{missing:?}");
    assert_eq!(missing[0]["id"], deep_first.as_str());
    let only = cli::run(r.path(), &["layers", "--orphans", "--json"]).json();
    assert_eq!(only["layers"].as_array().unwrap().len(), 3);
    let table = cli::run(r.path(), &["layers", "--orphans"]);
    assert!(table.ok().contains("ORPHAN"));
    assert!(table.stdout.contains("3 orphans"));
    assert!(table.stderr.contains("missing from disk"));
    // An orphan, exported raw by a prefix of its id.
    let out = tempfile::tempdir().unwrap();
    let tar_path = out.path().join("stray.tar");
    cli::run(
        r.path(),
        &[
            "layers",
            "--export",
            &stray[..16],
            "-o",
            tar_path.to_str().unwrap(),
        ],
    )
    .ok();
    let mut archive = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["tmp", "tmp/payload"]);
    // find searches the orphans too: the stray payload is found in its
    // layer, marked orphan, and seen by no container or image.
    let found = cli::run(r.path(), &["find", "/tmp/payload", "--json"]).json();
    let versions = found["paths"][0]["layers"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{found:#}");
    assert_eq!(versions[0]["driver_id"], stray.as_str());
    assert_eq!(versions[0]["orphan"], true);
    assert_eq!(versions[0]["state"], "present");
    assert_eq!(versions[0]["size"], 10);
    assert!(found["paths"][0]["containers"]
        .as_array()
        .unwrap()
        .is_empty());
    let table = cli::run(r.path(), &["find", "/tmp/payload"]);
    assert!(table.ok().contains("orphan"), "{}", table.stdout);
    // And a glob reaches into them.
    let globbed = cli::run(r.path(), &["find", "/tmp/*", "--json"]).json();
    assert!(globbed.to_string().contains("/tmp/payload"), "{globbed:#}");
    let nosuch = cli::run(r.path(), &["layers", "--export", "0000nosuch"]);
    assert!(
        nosuch.stderr.contains("no layer directory"),
        "{}",
        nosuch.stderr
    );
    before.assert_unchanged(&integrity::snapshot(r.dir.path()));
}

#[test]
fn hostile_configs_and_logs_are_bounded_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().join("host");
    for d in [
        "etc/docker",
        "etc/default",
        "usr",
        "home",
        "etc/systemd/system",
    ] {
        std::fs::create_dir_all(host.join(d)).unwrap();
    }
    let scene = docker_mount_tests::scene::build(&host.join("var/lib/docker"));
    // A 2 MB daemon.json, a DOCKER_OPTS file that is an absolute symlink
    // (to the analyst's /etc/passwd if followed outside), a drop-in
    // directory that is a symlink loop.
    let big = format!(
        "{{\"hosts\": [\"tcp://0.0.0.0:2375\"], \"pad\": \"{}\"}}",
        "x".repeat(2 << 20)
    );
    std::fs::write(host.join("etc/docker/daemon.json"), big).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", host.join("etc/default/docker")).unwrap();
    std::os::unix::fs::symlink(
        "docker.service.d",
        host.join("etc/systemd/system/docker.service.d"),
    )
    .unwrap();
    // Logs: a 2 MB json-file line between good ones; the local log's
    // length prefix claims 4 GB; local-logs of another container is a
    // symlink out of the root.
    let fx = &scene.fixture;
    let web = fx.container(scene.web);
    let log = fx
        .container_dir(scene.web)
        .join(format!("{}-json.log", web.id));
    let mut text = std::fs::read(&log).unwrap();
    text.extend_from_slice(
        json_line(&"y".repeat(2 << 20), "stdout", "2021-03-04T06:00:00Z").as_bytes(),
    );
    text.extend_from_slice(json_line("after\n", "stdout", "2021-03-04T06:00:01Z").as_bytes());
    std::fs::write(&log, text).unwrap();
    let local = fx.container_dir(scene.stopped).join("local-logs");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(
        local.join("container.log"),
        [0xff, 0xff, 0xff, 0xff, 1, 2, 3],
    )
    .unwrap();
    std::fs::remove_file(
        fx.container_dir(scene.admin)
            .join(format!("{}-json.log", fx.container(scene.admin).id)),
    )
    .ok();
    std::os::unix::fs::symlink("/etc", fx.container_dir(scene.admin).join("local-logs")).unwrap();
    let before = integrity::snapshot(dir.path());

    let roots = cli::run(&host, &["roots", "--json"]).json();
    assert_eq!(roots["roots"].as_array().unwrap().len(), 1, "{roots:#}");
    let problems = roots["problems"].to_string();
    assert!(
        problems.contains("daemon.json") && problems.contains("limit"),
        "{problems}"
    );
    let audit = cli::run(&host, &["audit", "--json"]).json();
    let unreadable = findings(&audit, "config-unreadable");
    assert!(!unreadable.is_empty(), "{audit:#}");
    // Nothing from the analyst's /etc/passwd.
    assert!(!audit.to_string().contains("root:x:0:0"));
    assert!(findings(&audit, "daemon-tcp-no-tls").is_empty());

    let logs = cli::run(&host, &["logs", "web", "--json"]);
    let got = lines(&logs.json());
    assert_eq!(got.last().unwrap().2, "after\n");
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(logs.stderr.contains("longer than"), "{}", logs.stderr);
    let bad = cli::run(&host, &["logs", "stopped", "--json"]);
    assert!(bad.stderr.contains("larger than"), "{}", bad.stderr);
    let admin = cli::run(&host, &["logs", "admin", "--json"]);
    assert_eq!(admin.json(), serde_json::json!([]));
    before.assert_unchanged(&integrity::snapshot(dir.path()));
}
