//! Tier 2: a root made by a real dockerd (overlay2), crashed with kill -9.
//! `docker ps -a` / `docker inspect` (taken before the crash) and
//! `docker export` are the oracles; the root must hash the same after.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use docker_mount_tests::mounts::{assert_read_only_mount, MountPoint};
use docker_mount_tests::{cli, integrity, manifest, real};
use serde_json::Value;

fn inspect_of<'a>(root: &'a real::RealRoot, id: &str) -> &'a Value {
    root.inspect
        .as_array()
        .and_then(|all| all.iter().find(|c| c["Id"] == id))
        .unwrap_or_else(|| panic!("no docker inspect record for {id}"))
}

#[test]
fn list_matches_docker_ps_and_inspect() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let before = integrity::snapshot(&r.root);
    let listed = cli::run(&r.root, &["list", "--all", "--json"]).json();
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(
        listed.len(),
        r.containers.len(),
        "list --all shows every container"
    );
    for c in &r.containers {
        let got = listed
            .iter()
            .find(|l| l["id"] == c.id.as_str())
            .unwrap_or_else(|| panic!("{} not listed", c.name));
        let want = inspect_of(r, &c.id);
        assert_eq!(
            got["name"],
            want["Name"].as_str().unwrap().trim_start_matches('/')
        );
        assert_eq!(got["image"], want["Config"]["Image"]);
        assert_eq!(
            format!("sha256:{}", got["image_id"].as_str().unwrap()),
            want["Image"]
        );
        assert_eq!(got["state"], want["State"]["Status"], "{}", c.name);
        assert_eq!(got["running_at_shutdown"], c.running_at_crash, "{}", c.name);
        assert_eq!(got["created"], want["Created"]);
        assert_eq!(got["driver"], "overlay2");
        assert_eq!(got["exit_code"], want["State"]["ExitCode"]);
        let mut command = vec![want["Path"].as_str().unwrap().to_string()];
        command.extend(
            want["Args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string()),
        );
        assert_eq!(got["command"], command.join(" "));
    }
    // Without --all, only what was running at the crash, like docker ps.
    let running = cli::run(&r.root, &["list", "--json"]).json();
    let want_running = r.containers.iter().filter(|c| c.running_at_crash).count();
    assert!(want_running > 0);
    assert_eq!(running.as_array().unwrap().len(), want_running);
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

#[test]
fn images_match_docker_image_inspect() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let listed = cli::run(&r.root, &["images", "--all", "--json"]).json();
    let listed = listed.as_array().expect("a JSON array");
    let want = r.images.as_array().expect("docker image inspect array");
    assert_eq!(listed.len(), want.len());
    // Without --all, like `docker images`: build steps hidden, tagged images shown.
    let shown = cli::run(&r.root, &["images", "--json"]).json();
    let shown = shown.as_array().unwrap();
    assert!(shown.len() < listed.len());
    for img in want
        .iter()
        .filter(|i| !i["RepoTags"].as_array().unwrap().is_empty())
    {
        let id = img["Id"].as_str().unwrap().trim_start_matches("sha256:");
        assert!(
            shown.iter().any(|s| s["id"] == id),
            "tagged image {id} hidden"
        );
    }
    for img in want {
        let id = img["Id"].as_str().unwrap().trim_start_matches("sha256:");
        let got = listed
            .iter()
            .find(|l| l["id"] == id)
            .unwrap_or_else(|| panic!("image {id} not listed"));
        let mut tags: Vec<&str> = got["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        let mut want_tags: Vec<&str> = img["RepoTags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        tags.sort();
        want_tags.sort();
        assert_eq!(tags, want_tags);
        assert_eq!(
            got["layers"],
            img["RootFS"]["Layers"].as_array().unwrap().len()
        );
        assert_eq!(got["created"], img["Created"]);
    }
}

#[test]
fn every_container_mounts_equal_to_docker_export() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let before = integrity::snapshot(&r.root);
    let mut checked = 0;
    for c in &r.containers {
        for api in ["new", "legacy"] {
            let mnt = MountPoint::new();
            let dir = mnt.path().to_str().unwrap();
            cli::run(&r.root, &["mount", &c.id[..12], dir, "--mount-api", api]).ok();
            assert_read_only_mount(mnt.path());
            let want = manifest::from_tar(&c.export_tar);
            let got = manifest::from_dir(mnt.path());
            let diffs = manifest::compare(&want, &got, &[]);
            assert!(
                diffs.is_empty(),
                "{} ({api} mount API) differs from docker export:\n{}",
                c.name,
                diffs.join("\n")
            );
            cli::run(&r.root, &["umount", dir]).ok();
            assert!(
                docker_mount_tests::mounts::mount_options(mnt.path()).is_none(),
                "umount left a mount"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 2 * 4,
        "expected several containers, checked {checked}"
    );
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

#[test]
fn info_shows_layers_and_host_settings() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    for c in &r.containers {
        let info = cli::run(&r.root, &["info", &c.name, "--json"]).json();
        let want = inspect_of(r, &c.id);
        assert_eq!(info["id"], c.id.as_str());
        assert!(
            info["layer_error"].is_null(),
            "{}: {}",
            c.name,
            info["layer_error"]
        );
        let layers = info["layers"].as_array().unwrap();
        assert_eq!(layers[0]["role"], "rw");
        assert_eq!(layers[0]["path"], want["GraphDriver"]["Data"]["UpperDir"]);
        assert_eq!(layers[1]["role"], "init");
        let image_layers = layers.iter().filter(|l| l["role"] == "image").count();
        let lower = want["GraphDriver"]["Data"]["LowerDir"].as_str().unwrap();
        assert_eq!(image_layers + 1, lower.split(':').count(), "{}", c.name);
        assert_eq!(info["host"]["privileged"], want["HostConfig"]["Privileged"]);
        assert!(
            info["warnings"].as_array().unwrap().is_empty(),
            "{}: {}",
            c.name,
            info["warnings"]
        );
    }
}

#[test]
fn every_container_exports_equal_to_docker_export() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let before = integrity::snapshot(&r.root);
    let out = tempfile::tempdir().unwrap();
    for c in &r.containers {
        let tar = out.path().join(format!("{}.tar", c.name));
        cli::run(&r.root, &["export", &c.name, "-o", tar.to_str().unwrap()]).ok();
        let diffs = manifest::compare(
            &manifest::from_tar(&c.export_tar),
            &manifest::from_tar(&tar),
            &[],
        );
        assert!(
            diffs.is_empty(),
            "{}: export differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
    }
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

#[test]
fn every_diff_equals_docker_diff() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let before = integrity::snapshot(&r.root);
    for c in &r.containers {
        let ours = cli::run(&r.root, &["diff", &c.name]);
        assert_eq!(
            real::diff_lines(ours.ok()),
            real::diff_lines(&c.diff),
            "{}",
            c.name
        );
        let json = cli::run(&r.root, &["diff", &c.name, "--json"]).json();
        assert_eq!(
            json.as_array().unwrap().len(),
            real::diff_lines(&c.diff).len()
        );
    }
    let exited = cli::run(&r.root, &["diff", "c-exited", "--json"]).json();
    let deleted: Vec<&str> = exited
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "D")
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(deleted.contains(&"/awk/deep"), "{deleted:?}");
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

/// An analyst without root, on a copy of the evidence: no trusted xattrs,
/// no O_NOATIME on files not theirs, no mounts.
#[test]
fn export_and_diff_work_without_root() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let copy = tempfile::tempdir().unwrap();
    let root = copy.path().join("docker");
    let source = docker_mount_tests::mounts::noatime_bind(&r.root);
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(source.path())
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a of the root failed");
    let out = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        out.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    // nobody, with read access to everything (CAP_DAC_READ_SEARCH) and nothing else.
    let unprivileged = |args: &[&str]| {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .args([
                "--inh-caps",
                "-all,+dac_read_search",
                "--ambient-caps",
                "+dac_read_search",
                "--bounding-set",
                "-all,+dac_read_search",
            ])
            .arg(cli::binary())
            .arg("--root")
            .arg(&root)
            .args(args);
        let o = cmd.output().expect("setpriv");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    for c in &r.containers {
        let tar = out.path().join(format!("{}.tar", c.name));
        let (ok, _, err) = unprivileged(&["export", &c.name, "-o", tar.to_str().unwrap()]);
        assert!(ok, "{}: {err}", c.name);
        assert!(
            err.contains("not root"),
            "the limits of non-root reading are stated: {err}"
        );
        let diffs = manifest::compare(
            &manifest::from_tar(&c.export_tar),
            &manifest::from_tar(&tar),
            &[],
        );
        assert!(
            diffs.is_empty(),
            "{} (non-root): export differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
        let (ok, stdout, err) = unprivileged(&["diff", &c.name]);
        assert!(ok, "{}: {err}", c.name);
        assert_eq!(
            real::diff_lines(&stdout),
            real::diff_lines(&c.diff),
            "{} (non-root)",
            c.name
        );
    }
}

/// docker export leaves volumes out; `--with-volumes` puts a named volume's
/// data at its mount point, over what the image had there.
#[test]
fn export_with_volumes_includes_named_volume_data() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let before = integrity::snapshot(&r.root);
    let out = tempfile::tempdir().unwrap();
    let tar = out.path().join("with-volumes.tar");
    let run = cli::run(
        &r.root,
        &[
            "export",
            "c-mounts",
            "--with-volumes",
            "-o",
            tar.to_str().unwrap(),
        ],
    );
    run.ok();
    assert!(
        run.stderr.contains("including volume dm-vol at /data"),
        "{}",
        run.stderr
    );
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    let mut content = None;
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        if e.path().unwrap().as_os_str() == "data/in-volume" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            content = Some(s);
        }
    }
    assert_eq!(content.as_deref(), Some("vol\n"));
    // Without the flag, exactly docker export.
    let c = r.container("c-mounts");
    let plain = out.path().join("plain.tar");
    cli::run(
        &r.root,
        &["export", "c-mounts", "-o", plain.to_str().unwrap()],
    )
    .ok();
    assert!(manifest::compare(
        &manifest::from_tar(&c.export_tar),
        &manifest::from_tar(&plain),
        &[]
    )
    .is_empty());
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

#[test]
fn mount_with_volumes_binds_named_volumes_read_only() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let before = integrity::snapshot(&r.root);
    let mnt = MountPoint::new();
    let dir = mnt.path().to_str().unwrap();
    let run = cli::run(&r.root, &["mount", "c-mounts", dir, "--with-volumes"]);
    run.ok();
    assert!(
        run.stderr.contains("mounted volume dm-vol at /data"),
        "{}",
        run.stderr
    );
    assert_eq!(
        std::fs::read_to_string(mnt.path().join("data/in-volume")).unwrap(),
        "vol\n"
    );
    assert_read_only_mount(&mnt.path().join("data"));
    assert!(std::fs::write(mnt.path().join("data/new"), b"x").is_err());
    cli::run(&r.root, &["umount", dir]).ok();
    assert!(docker_mount_tests::mounts::mount_options(mnt.path()).is_none());
    assert!(docker_mount_tests::mounts::mount_options(&mnt.path().join("data")).is_none());
    before.assert_unchanged(&integrity::snapshot(&r.root));
}
