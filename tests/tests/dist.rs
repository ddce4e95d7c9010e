//! The distribution tarball (`cargo xtask dist`): with only the overlay2 driver, unpacked in a temporary directory and run from another, it reads an overlay2 root, names the missing driver on a devicemapper root, loads exactly overlay2, and ships completions that parse and a man page that renders.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use docker_mount_tests::{cli, scene};
use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn check(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `cargo xtask dist --drivers overlay2 --debug --out <out>`; the tarball.
///
/// `--debug` packages the debug build the test run already made: the
/// packaging is the same as a release's, and a release build of the
/// workspace would add minutes to the suite (see `xtask/src/dist.rs`).
fn build_tarball(out: &Path) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = Command::new(cargo)
        .current_dir(workspace())
        .args(["xtask", "dist", "--drivers", "overlay2", "--debug", "--out"])
        .arg(out)
        .output()
        .unwrap();
    let stdout = check("cargo xtask dist", &run);
    let tarball = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(tarball.is_file(), "no tarball at {}", tarball.display());
    assert!(tarball.starts_with(out));
    let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("docker-mount-{}-", env!("CARGO_PKG_VERSION")))
            && name.ends_with("-linux-debug.tar.gz"),
        "{name}"
    );
    let sum = std::fs::read_to_string(format!("{}.sha256", tarball.display())).unwrap();
    assert!(sum.ends_with(&format!("  {name}\n")), "{sum}");
    tarball
}

/// Unpacks `tarball` into `dir` with tar(1); the package directory.
fn unpack(tarball: &Path, dir: &Path) -> PathBuf {
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    check("tar -xzf", &out);
    let entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "one top directory: {entries:?}");
    entries.into_iter().next().unwrap()
}

/// Every file of the package, relative, sorted.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Runs the unpacked binary from `cwd` (not its own directory).
fn run(pkg: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(pkg.join("docker-mount"))
        .current_dir(cwd)
        .args(args)
        .output()
        .unwrap()
}

/// A copy of the scene whose containers say they were made by devicemapper.
fn devicemapper_root(dir: &Path) -> PathBuf {
    let root = dir.join("docker");
    scene::build(&root);
    for e in std::fs::read_dir(root.join("containers")).unwrap() {
        let config = e.unwrap().path().join("config.v2.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        v["Driver"] = "devicemapper".into();
        std::fs::write(&config, serde_json::to_vec(&v).unwrap()).unwrap();
    }
    std::fs::create_dir_all(root.join("devicemapper/metadata")).unwrap();
    root
}

/// Runs `tool args` when the tool exists; `None` (a skip, or a failure
/// under CI=true) when it does not.
fn optional_tool(tool: &str, package: &str, args: &[&str], file: &Path) -> Option<Output> {
    match Command::new(tool).args(args).arg(file).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                !in_ci(),
                "{tool} (Debian package {package}) is missing in CI"
            );
            eprintln!("skipping the {tool} check: apt-get install {package}");
            None
        }
        Err(e) => panic!("cannot run {tool}: {e}"),
    }
}

#[test]
fn overlay2_only_tarball() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let unpacked = tmp.path().join("unpacked");
    let elsewhere = tmp.path().join("elsewhere");
    for d in [&out, &unpacked, &elsewhere] {
        std::fs::create_dir(d).unwrap();
    }
    let tarball = build_tarball(&out);
    let pkg = unpack(&tarball, &unpacked);

    // The schemas, as published in the checkout.
    let (schemas, files): (Vec<String>, Vec<String>) = listing(&pkg)
        .into_iter()
        .partition(|f| f.starts_with("schemas/"));
    let published: Vec<String> = listing(&cli::schema_dir())
        .into_iter()
        .map(|f| format!("schemas/v1/{f}"))
        .collect();
    assert_eq!(schemas, published);
    for f in &schemas {
        assert_eq!(
            std::fs::read(pkg.join(f)).unwrap(),
            std::fs::read(cli::schema_dir().join(&f["schemas/v1/".len()..])).unwrap(),
            "{f}"
        );
    }
    assert_eq!(
        files,
        [
            "README.md",
            "SHA256SUMS",
            "completions/_docker-mount",
            "completions/docker-mount.bash",
            "completions/docker-mount.fish",
            "docker-mount",
            "drivers/libdocker_mount_driver_overlay2.so",
            "guide.md",
            "man/docker-mount.1",
        ]
    );
    let sums = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&pkg)
        .output()
        .unwrap();
    check("sha256sum --check", &sums);

    // Exactly the packaged driver, found next to the binary.
    let drivers: Value = serde_json::from_str(&check(
        "drivers",
        &run(&pkg, &elsewhere, &["drivers", "--json"]),
    ))
    .unwrap();
    let names: Vec<&str> = drivers["loaded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["overlay2"], "{drivers}");
    assert_eq!(drivers["failed"], Value::Array(vec![]), "{drivers}");
    assert!(drivers["loaded"][0]["file"]
        .as_str()
        .unwrap()
        .starts_with(&pkg.join("drivers").display().to_string()));

    // An overlay2 root: listed, and its filesystems open.
    let overlay2 = tmp.path().join("overlay2");
    std::fs::create_dir(&overlay2).unwrap();
    let root = overlay2.join("docker");
    scene::build(&root);
    let root_arg = root.to_str().unwrap();
    let list: Value = serde_json::from_str(&check(
        "list",
        &run(
            &pkg,
            &elsewhere,
            &["--root", root_arg, "list", "--all", "--json"],
        ),
    ))
    .unwrap();
    let rows = list.as_array().unwrap();
    assert!(rows.iter().any(|r| r["name"] == "web"), "{list}");
    assert!(
        rows.iter()
            .all(|r| r["driver"] == "overlay2" && r["driver_loaded"] == true),
        "{list}"
    );
    let diff = check(
        "diff",
        &run(&pkg, &elsewhere, &["--root", root_arg, "diff", "web"]),
    );
    assert!(diff.lines().any(|l| l == "A /root/added"), "{diff}");

    // A devicemapper root: still listed, each container naming the
    // plugin to install, and reading a filesystem says the same.
    let dm = tmp.path().join("dm");
    std::fs::create_dir(&dm).unwrap();
    let dm_root = devicemapper_root(&dm);
    let dm_arg = dm_root.to_str().unwrap();
    let table = check(
        "list (devicemapper)",
        &run(&pkg, &elsewhere, &["--root", dm_arg, "list", "--all"]),
    );
    assert!(
        table.contains("install the devicemapper driver plugin"),
        "{table}"
    );
    let list: Value = serde_json::from_str(&check(
        "list --json (devicemapper)",
        &run(
            &pkg,
            &elsewhere,
            &["--root", dm_arg, "list", "--all", "--json"],
        ),
    ))
    .unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|r| r["driver"] == "devicemapper"
                && r["driver_loaded"] == false
                && r["note"]
                    .as_str()
                    .is_some_and(|n| n.contains("install the devicemapper driver plugin"))),
        "{list}"
    );
    let diff = run(&pkg, &elsewhere, &["--root", dm_arg, "diff", "web"]);
    assert!(!diff.status.success());
    let stderr = String::from_utf8_lossy(&diff.stderr);
    assert!(
        stderr.contains("install the devicemapper driver plugin"),
        "{stderr}"
    );

    // doctor sees the same plugin and no failures.
    let doctor: Value = serde_json::from_str(&check(
        "doctor",
        &run(&pkg, &elsewhere, &["doctor", "--json"]),
    ))
    .unwrap();
    assert_eq!(
        doctor["drivers"]["loaded"][0]["name"], "overlay2",
        "{doctor}"
    );
    assert!(doctor["commands"].as_array().is_some_and(|c| !c.is_empty()));

    // Completions parse; the man page renders without warnings.
    let bash = pkg.join("completions/docker-mount.bash");
    if let Some(out) = optional_tool("bash", "bash", &["-n"], &bash) {
        check("bash -n", &out);
    }
    let bash_text = std::fs::read_to_string(&bash).unwrap();
    assert!(bash_text.contains("complete -F"), "{bash_text}");
    for (shell, file) in [("zsh", "_docker-mount"), ("fish", "docker-mount.fish")] {
        let path = pkg.join("completions").join(file);
        assert!(std::fs::read_to_string(&path).unwrap().contains("doctor"));
        // Optional shells: checked where installed, never required.
        if let Ok(out) = Command::new(shell).arg("-n").arg(&path).output() {
            check(&format!("{shell} -n"), &out);
        }
    }
    let man = pkg.join("man/docker-mount.1");
    if let Some(out) = optional_tool(
        "groff",
        "groff-base",
        &["-man", "-Tutf8", "-ww", "-P-cbou"],
        &man,
    ) {
        let text = check("groff", &out);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.trim().is_empty(), "groff warns: {stderr}");
        for heading in [
            "NAME",
            "SYNOPSIS",
            "COMMANDS",
            "DRIVER PLUGINS",
            "EXIT STATUS",
        ] {
            assert!(text.contains(heading), "no {heading} in the page");
        }
    }
}
