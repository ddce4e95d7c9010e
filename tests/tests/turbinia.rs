//! The Turbinia integration (integrations/turbinia/) run by Turbinia's own
//! package from PyPI, in a cached venv (tests/src/pyvenv.rs): the
//! registered task enumerates the containers of a disk's two real roots
//! as `docker ps -a` saw them, Turbinia's DockerContainer evidence mounts (and, in export
//! mode, unpacks) one through docker-mount equal to `docker export`,
//! postprocessing unmounts (removes) it, and a
//! disk without docker gives no evidence and no error. The evidence hashes
//! the same before and after.
//!
//! The disk is a host tree with real roots bound read-only at
//! `var/lib/docker` and in a rootless user's home, standing in (as a `Directory` evidence with a
//! `mount_path`) for the DiskPartition Turbinia would have mounted: the
//! partition's own losetup/mount is Turbinia's, not ours.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use docker_mount_tests::mounts::{assert_read_only_mount, mount_options, BoundHost};
use docker_mount_tests::pyvenv::{self, Venv};
use docker_mount_tests::{cli, integrity, manifest, real};
use serde_json::Value;

/// Turbinia's last release; dfvfs, which `turbinia.jobs` imports for the
/// partition job (Turbinia's `worker` extra brings it with plaso and
/// others this test does not use); wheel, to pip-install
/// docker-mount-turbinia from source without reaching PyPI.
const REQUIREMENTS: &[&str] = &["turbinia==20240820", "dfvfs==20260924", "wheel"];

/// The container the processor mounts: running at the crash, with a volume.
const MOUNTED: &str = "c-mounts";

fn integration_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../integrations/turbinia")
}

/// The venv and a directory holding docker-mount-turbinia pip-installed
/// from a copy of the source, or `None` when this cannot run here.
fn setup(work: &Path) -> Option<(Venv, PathBuf)> {
    let check = real::driver_available("vfs").and_then(|()| pyvenv::available());
    if !real::require("turbinia", check) {
        return None;
    }
    let venv = pyvenv::cached("turbinia", REQUIREMENTS).unwrap();
    // pip builds in the source tree: build a copy, not the clone.
    let src = work.join("src");
    let copied = std::process::Command::new("cp")
        .args(["-r", "--"])
        .arg(integration_dir())
        .arg(&src)
        .status()
        .unwrap();
    assert!(copied.success(), "cp -r {}", integration_dir().display());
    let site = work.join("site");
    let out = venv
        .command(["-m", "pip", "--disable-pip-version-check", "install"])
        .args(["--quiet", "--no-deps", "--no-build-isolation", "--no-index"])
        .arg("--target")
        .arg(&site)
        .arg(&src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pip install docker-mount-turbinia:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((venv, site))
}

/// `drive_turbinia.py <work> <docker-mount> <command> <argument>`.
fn driver(
    venv: &Venv,
    site: &Path,
    work: &Path,
    command: &str,
    arg: &Path,
) -> std::process::Command {
    let mut cmd = venv.command([integration_dir().join("tests/drive_turbinia.py")]);
    cmd.arg(work)
        .arg(cli::binary())
        .arg(command)
        .arg(arg)
        .env("PYTHONPATH", site)
        // Turbinia 20240820 pulls in libraries that warn about their own future.
        .env("PYTHONWARNINGS", "ignore::FutureWarning");
    cmd
}

/// Runs the registered task on `disk`; its JSON report.
fn enumerate(venv: &Venv, site: &Path, work: &Path, disk: &Path) -> Value {
    let out = driver(venv, site, work, "enumerate", disk)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "enumerate failed:\n{stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("enumerate printed no JSON ({e}):\n{stderr}"))
}

/// Detaches whatever is still mounted on its directory (a failed test).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        while mount_options(&self.0).is_some() {
            if nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
    }
}

/// One evidence item preprocessed and postprocessed by a worker process.
struct Preprocessed<'a> {
    venv: &'a Venv,
    site: &'a Path,
    work: &'a Path,
}

impl Preprocessed<'_> {
    /// Preprocesses the item of `item_file` with DOCKER_MOUNT_MODE `mode`;
    /// checks the directory against `c`'s `docker export`, then that
    /// postprocessing removes it.
    fn check(&self, item_file: &Path, mode: &str, c: &real::RealContainer) {
        let mut child = driver(self.venv, self.site, self.work, "mount", item_file)
            .env("DOCKER_MOUNT_MODE", mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = || -> Value {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("{mode}: no output"))
                .unwrap();
            serde_json::from_str(&line).unwrap()
        };
        let ready = next();
        assert_eq!(ready["type"], "DockerContainer");
        assert_eq!(ready["mounted"], true, "{mode}: {ready:#}");
        let dir = PathBuf::from(ready["mount_path"].as_str().unwrap());
        assert!(dir.starts_with(self.work.join("mounts")), "{dir:?}");
        let _unmount = Unmount(dir.clone());
        match mode {
            "mount" => assert_read_only_mount(&dir),
            _ => assert!(mount_options(&dir).is_none(), "export mode mounted {dir:?}"),
        }
        let diffs = manifest::compare(
            &manifest::from_tar(&c.export_tar),
            &manifest::from_dir(&dir),
            &[],
        );
        assert!(
            diffs.is_empty(),
            "{} as Turbinia's {mode} made it differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
        writeln!(child.stdin.take().unwrap()).unwrap();
        let after = next();
        assert!(child.wait().unwrap().success(), "{mode}: the driver failed");
        assert_eq!(after["mounted"], false, "{mode}: {after:#}");
        assert_eq!(after["exists"], false, "{mode}: postprocess left {dir:?}");
        assert!(
            mount_options(&dir).is_none(),
            "{mode}: postprocess left a mount"
        );
    }
}

fn work_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("dm-turbinia-")
        .tempdir()
        .unwrap()
}

/// The host's files naming alice, whose rootless docker root is the
/// second root of the disk.
fn alice() -> Vec<(&'static str, String)> {
    vec![
        (
            "passwd",
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n".into(),
        ),
        ("subuid", "alice:100000:65536\n".into()),
        ("subgid", "alice:100000:65536\n".into()),
    ]
}

#[test]
fn turbinia_enumerates_mounts_and_unmounts_real_roots() {
    let work = work_dir();
    let Some((venv, site)) = setup(work.path()) else {
        return;
    };
    // Two roots on one disk (docker-mount's `list` alone would ask which):
    // the system's, and a rootless one of alice.
    let system = real::overlay2_root();
    let rootless = real::vfs_root();
    let before = [system, rootless].map(|r| integrity::snapshot(&r.root));
    let disk = BoundHost::new(
        &alice(),
        &[
            ("var/lib/docker", &system.root),
            ("home/alice/.local/share/docker", &rootless.root),
        ],
    );

    let report = enumerate(&venv, &site, work.path(), disk.path());
    assert_eq!(report["successful"], true, "{report:#}");
    assert_eq!(report["task"], "DockerMountContainersEnumerationTask");
    let jobs: Vec<&str> = report["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j.as_str().unwrap())
        .collect();
    assert!(
        jobs.contains(&"dockermountcontainersenumerationjob"),
        "{jobs:?}"
    );
    assert!(
        !jobs.contains(&"dockercontainersenumerationjob"),
        "docker-explorer's job is still registered: {jobs:?}"
    );
    let evidence = report["evidence"].as_array().unwrap();
    let got: BTreeSet<&str> = evidence
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "DockerContainer", "{e:#}");
            assert_eq!(
                e["parent_evidence"]["mount_path"],
                disk.path().to_str().unwrap()
            );
            e["container_id"].as_str().unwrap()
        })
        .collect();
    let want: BTreeSet<&str> = [system, rootless]
        .iter()
        .flat_map(|r| r.ps.iter().map(|p| p["ID"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got, want,
        "containers enumerated vs docker ps -a of both roots"
    );
    assert_eq!(got.len(), system.ps.len() + rootless.ps.len());

    let run = Preprocessed {
        venv: &venv,
        site: &site,
        work: work.path(),
    };
    // Mounted from the rootless root (a kernel mount shows the ids on
    // disk, as the rootful oracle has them); exported from the system's
    // (an export of a rootless root maps the ids).
    for (mode, r) in [("mount", rootless), ("export", system)] {
        let c = r.container(MOUNTED);
        let item = evidence.iter().find(|e| e["container_id"] == c.id).unwrap();
        let item_file = work.path().join(format!("{mode}.json"));
        std::fs::write(&item_file, item.to_string()).unwrap();
        run.check(&item_file, mode, c);
    }
    // Both modes on one root.
    let c = system.container(MOUNTED);
    let item = evidence.iter().find(|e| e["container_id"] == c.id).unwrap();
    let item_file = work.path().join("system-mount.json");
    std::fs::write(&item_file, item.to_string()).unwrap();
    run.check(&item_file, "mount", c);

    drop(disk);
    for (r, before) in [system, rootless].iter().zip(before) {
        before.assert_unchanged(&integrity::snapshot(&r.root));
    }
}

#[test]
fn turbinia_finds_nothing_on_a_disk_without_docker() {
    let work = work_dir();
    let Some((venv, site)) = setup(work.path()) else {
        return;
    };
    let disk = BoundHost::new(
        &[
            ("os-release", "ID=debian\nVERSION_ID=12\n".to_string()),
            ("passwd", "root:x:0:0:root:/root:/bin/sh\n".to_string()),
        ],
        &[],
    );
    let before = integrity::snapshot(disk.path());
    let report = enumerate(&venv, &site, work.path(), disk.path());
    assert_eq!(report["successful"], true, "{report:#}");
    assert_eq!(report["evidence"], Value::Array(Vec::new()), "{report:#}");
    assert_eq!(report["status"], "Found 0 containers: ", "{report:#}");
    before.assert_unchanged(&integrity::snapshot(disk.path()));
}
