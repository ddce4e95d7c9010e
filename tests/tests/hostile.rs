//! Issue 9: every command on every hostile root (tests/src/hostile.rs), on
//! every storage driver the case applies to: no panic, a bounded time,
//! nothing read outside the root (a canary's content never printed, its
//! atime never moved), nothing written anywhere (the root and the outside
//! hashed around every run),
//! and a failure is a clear error naming the file at fault. Then mount
//! safety: every mount is ro,nosuid,nodev,noexec, and two concurrent
//! mounts of one container both work.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use docker_mount_tests::hostile::{self, contains, run_bounded, Case, Hostile, CANARY};
use docker_mount_tests::integrity;
use docker_mount_tests::mounts::{assert_read_only_mount, mount_options, MountPoint};

/// Longest any one command may take on these small roots.
const LIMIT: Duration = Duration::from_secs(20);

/// What a run writes (`-o`) or mounts on, fresh per command.
enum Slot {
    None,
    OutFile,
    MountDir,
    MountAll,
}

/// Every command of `docker-mount --help` that reads a root, with the
/// arguments that reach its parsers and its view.
fn commands() -> Vec<(Vec<&'static str>, Slot)> {
    use Slot::*;
    vec![
        (vec!["list", "--all"], None),
        (vec!["list", "--all", "--json"], None),
        (
            vec![
                "list",
                "--json",
                "--ports",
                "--skip-support",
                "--last",
                "3",
                "--filter",
                "since=2000-01-01,label=a",
                "--include",
                "web",
            ],
            None,
        ),
        (vec!["images", "--all"], None),
        (vec!["images", "--json"], None),
        (vec!["info", "web"], None),
        (vec!["info", "web", "--json"], None),
        (vec!["info", "broken", "--json"], None),
        (vec!["export", "web", "-o"], OutFile),
        (vec!["export", "--image", "base:1", "-o"], OutFile),
        (vec!["export", "--image", "other:1", "-o"], OutFile),
        (vec!["diff", "web", "--layers"], None),
        (vec!["deleted", "web", "--json"], None),
        (vec!["deleted", "--image", "base:1"], None),
        (vec!["cat", "web", "/etc/passwd"], None),
        (vec!["cat", "web", "/etc/shadow"], None),
        (vec!["cat", "web", "/up/etc/shadow"], None),
        (vec!["cat", "web", "/etc/ssl/secret"], None),
        (vec!["cat", "web", "/var/d/secret"], None),
        (vec!["cat", "web", "/etc/base-only"], None),
        (vec!["find", "/etc/passwd"], None),
        (
            vec![
                "attribute",
                "--json",
                "/var/lib/docker/overlay2/../../etc/passwd",
                "/var/lib/docker/containers/../../etc/shadow",
                "/var/lib/docker/overlay2/l/../../../etc/shadow",
                "/var/lib/docker/image/overlay2/layerdb/sha256/x/diff",
                "/var/lib/docker/volumes/../../../etc/shadow",
                "/etc/passwd",
            ],
            None,
        ),
        // 1,000 paths down the 2,040-deep tree: within the time limit only
        // if each path costs its own new names (it took 35 s when every
        // lookup started again from the top).
        (
            vec!["find", "/**", "--json", "--hash", "--limit", "1000"],
            None,
        ),
        (vec!["timeline", "web"], None),
        (vec!["timeline", "--all", "--format", "jsonl"], None),
        (vec!["logs", "web"], None),
        (vec!["logs", "web", "--files"], None),
        (vec!["history", "base:1"], None),
        (vec!["history", "other:1", "--disk-usage"], None),
        (vec!["layers", "--orphans", "--json"], None),
        (vec!["layers", "--sizes"], None),
        (vec!["audit", "--json"], None),
        (vec!["roots"], None),
        (vec!["extract", "web", "-o"], OutFile),
        (vec!["mount", "web"], MountDir),
        (vec!["mount", "--image", "base:1"], MountDir),
        (vec!["mount", "--all"], MountAll),
    ]
}

/// The first line of the host's /etc/shadow: no output may hold it.
fn shadow_line() -> Option<Vec<u8>> {
    let text = std::fs::read("/etc/shadow").ok()?;
    let line = text.split(|&b| b == b'\n').next()?.to_vec();
    (line.len() > 8).then_some(line)
}

/// Whether a failure's message says what is wrong and where.
fn names_a_file(h: &Hostile, stderr: &str) -> bool {
    let usage = [
        "no container",
        "no image",
        "not a regular file",
        "no such file",
        "does not hold",
        "is a symlink",
        "is a directory",
        "is a FIFO",
        "devicemapper",
        "block",
    ];
    stderr.contains(&*h.root.to_string_lossy()) || usage.iter().any(|u| stderr.contains(u))
}

fn unmount_all(root: &Path, dir: &Path) {
    let _ = run_bounded(
        root,
        &[OsStr::new("umount"), OsStr::new("--all"), dir.as_os_str()],
        LIMIT,
    );
    while let Some(m) = docker_mount_engine::mounts::kernel::mountinfo()
        .unwrap()
        .into_iter()
        .rev()
        .find(|m| m.mount_point.starts_with(dir))
    {
        if nix::mount::umount2(&m.mount_point, nix::mount::MntFlags::MNT_DETACH).is_err() {
            break;
        }
    }
}

/// Runs every command on the hostile root of `case` and `driver`.
fn check(case: Case, driver: &'static str) {
    if driver != "overlay2" && !can_convert(driver) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let h = hostile::build(case, driver, dir.path());
    if std::env::var_os("DM_HOSTILE_KEEP").is_some() {
        // For a closer look: the root stays, and its path is printed.
        eprintln!("{driver}/{}: kept {}", case.name(), h.root.display());
        let _ = dir.keep();
        return;
    }
    let shadow = shadow_line();
    let mut needles = vec![CANARY.as_bytes().to_vec()];
    needles.extend(shadow.clone());
    let root = docker_mount_tests::mounts::require_root();
    let mut problems = Vec::new();
    let mut ran = 0;
    let mut succeeded = 0;
    let mut infos = Vec::new();
    for (args, slot) in commands() {
        let scratch = tempfile::tempdir().unwrap();
        let out = scratch.path().join("out");
        let mnt = MountPoint::new();
        let mut argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        match slot {
            Slot::None => {}
            Slot::OutFile => argv.push(out.clone().into()),
            Slot::MountDir | Slot::MountAll if !root => continue,
            Slot::MountDir => argv.push(mnt.path().into()),
            Slot::MountAll => argv.push(scratch.path().join("all").into()),
        }
        let shown = format!("{driver}/{}: {}", case.name(), args.join(" "));
        let before = integrity::snapshot(&h.root);
        let outside_before = integrity::snapshot(&h.outside);
        let argv_ref: Vec<&OsStr> = argv.iter().map(OsString::as_os_str).collect();
        let run = run_bounded(&h.root, &argv_ref, LIMIT);
        ran += 1;
        if run.status == Some(0) {
            succeeded += 1;
        }
        if std::env::var_os("DM_HOSTILE_VERBOSE").is_some() {
            eprintln!(
                "{shown}: {:?} in {:?}: {}",
                run.status,
                run.elapsed,
                run.stderr.lines().next().unwrap_or("")
            );
        }
        if run.timed_out {
            problems.push(format!("{shown}: still running after {LIMIT:?}"));
        }
        if let Some(p) = &run.schema_problem {
            problems.push(format!("{shown}: {p}"));
        }
        if run.stderr.contains("panicked") || run.status == Some(101) {
            problems.push(format!("{shown}: panicked: {}", run.stderr));
        }
        if run.status.is_none() && !run.timed_out {
            problems.push(format!("{shown}: killed by a signal: {}", run.stderr));
        }
        let mut outputs = vec![run.stdout.clone(), run.stderr.clone().into_bytes()];
        outputs.extend(std::fs::read(&out).ok());
        for n in &needles {
            if outputs.iter().any(|o| contains(o, n)) {
                problems.push(format!(
                    "{shown}: printed what lies outside the root: {}",
                    String::from_utf8_lossy(n)
                ));
            }
        }
        if run.status.is_some_and(|s| s != 0) && !names_a_file(&h, &run.stderr) {
            problems.push(format!("{shown}: an error naming no file: {}", run.stderr));
        }
        match slot {
            Slot::MountDir if run.status == Some(0) => {
                assert_read_only_mount(mnt.path());
                let leaks = hostile::tree_leaks(mnt.path(), &needles);
                if !leaks.is_empty() {
                    problems.push(format!("{shown}: the mount shows outside files: {leaks:?}"));
                }
                let um = run_bounded(
                    &h.root,
                    &[OsStr::new("umount"), mnt.path().as_os_str()],
                    LIMIT,
                );
                if um.status != Some(0) {
                    problems.push(format!("{shown}: umount failed: {}", um.stderr));
                }
            }
            Slot::MountAll => {
                let all = scratch.path().join("all");
                for m in docker_mount_engine::mounts::kernel::mountinfo().unwrap() {
                    if m.mount_point.starts_with(&all) {
                        assert_read_only_mount(&m.mount_point);
                        let leaks = hostile::tree_leaks(&m.mount_point, &needles);
                        if !leaks.is_empty() {
                            problems
                                .push(format!("{shown}: a mount shows outside files: {leaks:?}"));
                        }
                    }
                }
                unmount_all(&h.root, &all);
            }
            _ => {}
        }
        drop(mnt);
        let changed = before.diff(&integrity::snapshot(&h.root));
        if !changed.is_empty() {
            problems.push(format!("{shown}: changed the evidence: {changed:?}"));
        }
        let touched = outside_before.diff(&integrity::snapshot(&h.outside));
        if !touched.is_empty() {
            problems.push(format!(
                "{shown}: read or wrote outside the root: {touched:?}"
            ));
        }
        if args == ["info", "web", "--json"] {
            // A broken stack is reported in the info, naming the file.
            let layer_error = serde_json::from_slice::<serde_json::Value>(&run.stdout)
                .ok()
                .and_then(|v| v["layer_error"].as_str().map(String::from));
            match (&h.info_error, &layer_error) {
                (Some(want), Some(e)) if e.contains(want.as_str()) => {}
                (None, None) if run.status == Some(0) => {}
                (want, got) => problems.push(format!(
                    "{shown}: layer_error {got:?}, want one naming {want:?} (stderr: {})",
                    run.stderr
                )),
            }
            infos.push(layer_error.unwrap_or_default());
        }
        if case == Case::LongNames && args.starts_with(&["export", "web"]) {
            // The 4,096-byte path and the 255-byte names made it into the tar.
            let longest = std::fs::read(&out).ok().map_or(0, |tar| {
                let mut a = tar::Archive::new(&tar[..]);
                a.entries()
                    .unwrap()
                    .filter_map(|e| e.ok())
                    .map(|e| e.path_bytes().len())
                    .max()
                    .unwrap_or(0)
            });
            if longest < 4000 {
                problems.push(format!(
                    "{shown}: the longest path exported is {longest} bytes"
                ));
            }
        }
        if args.starts_with(&["export", "web"]) {
            match (&h.info_error, run.status) {
                (Some(want), Some(s)) if s != 0 && run.stderr.contains(want.as_str()) => {}
                (Some(want), _) => problems.push(format!(
                    "{shown}: should fail naming {want}: {}",
                    run.stderr
                )),
                (None, _) => {}
            }
        }
    }
    eprintln!(
        "{driver}/{}: {ran} commands, {succeeded} succeeded; layer error: {infos:?}",
        case.name()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

macro_rules! hostile_roots {
    ($($case:ident: $value:expr => [$($driver:ident),* $(,)?],)*) => {
        $(
            mod $case {
                use super::*;
                $(
                    #[test]
                    fn $driver() {
                        check($value, stringify!($driver));
                    }
                )*
            }
        )*

        #[test]
        fn every_case_is_checked_on_every_driver_it_applies_to() {
            let checked: &[(Case, &[&str])] = &[$(($value, &[$(stringify!($driver)),*])),*];
            for c in Case::ALL {
                for d in hostile::DRIVERS {
                    let listed = checked.iter().any(|(k, ds)| *k == c && ds.contains(&d));
                    assert_eq!(listed, c.applies_to(d), "{c:?} on {d}");
                }
            }
        }
    };
}

/// Roots of other drivers are converted from overlay2 ones through
/// read-only bind mounts, kernel overlays (overlay, devicemapper) and
/// thin-provisioning-tools (devicemapper): root only.
fn can_convert(driver: &str) -> bool {
    let tools: &[&str] = match driver {
        "devicemapper" => &["/usr/sbin/thin_restore", "/usr/sbin/mkfs.ext4"],
        _ => &[],
    };
    docker_mount_tests::mounts::require_root() && docker_mount_tests::mounts::require_tools(tools)
}

hostile_roots! {
    symlinks: Case::Symlinks => [overlay2, aufs, overlay, vfs, btrfs, devicemapper],
    links_outside: Case::LinksOutside => [overlay2, aufs, overlay, devicemapper],
    mount_id_escape: Case::MountIdEscape => [overlay2, aufs, overlay, vfs, btrfs, devicemapper],
    cache_id_escape: Case::CacheIdEscape => [overlay2, aufs, overlay, vfs, btrfs, devicemapper],
    huge_lower: Case::HugeLower => [overlay2, aufs],
    whiteout_dir: Case::WhiteoutDir => [overlay2, aufs, overlay, vfs, btrfs, devicemapper],
    long_names: Case::LongNames => [overlay2, aufs, overlay, vfs, btrfs, devicemapper],
    fifos: Case::Fifos => [overlay2, aufs, overlay, vfs, btrfs, devicemapper],
    layer_symlink: Case::LayerSymlink => [overlay2, aufs, overlay, vfs, btrfs, devicemapper],
    config_paths: Case::ConfigPaths => [overlay2, aufs, overlay, vfs, btrfs, devicemapper],
    dm_pool_fifo: Case::DmPoolFifo => [devicemapper],
    dm_pool_symlink: Case::DmPoolSymlink => [devicemapper],
    dm_devices: Case::DmDevices => [devicemapper],
    dm_device_set: Case::DmDeviceSet => [devicemapper],
}

/// A mount of the plain (not hostile) scene, by each mount API: the
/// options the kernel shows are ro, nosuid, nodev, noexec, and two
/// `mount`s of one container at once both work and show the same files.
#[test]
fn concurrent_mounts_of_one_container_are_read_only() {
    if !docker_mount_tests::mounts::require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scene = docker_mount_tests::scene::build(&dir.path().join("docker"));
    let root = scene.fixture.root.clone();
    let before = integrity::snapshot(&root);
    for api in ["new", "legacy"] {
        let (a, b) = (MountPoint::new(), MountPoint::new());
        let spawn = |m: &Path| {
            let root = root.clone();
            let m: PathBuf = m.to_path_buf();
            std::thread::spawn(move || {
                run_bounded(
                    &root,
                    &[
                        OsStr::new("mount"),
                        OsStr::new("web"),
                        m.as_os_str(),
                        OsStr::new("--mount-api"),
                        OsStr::new(api),
                    ],
                    LIMIT,
                )
            })
        };
        let (ta, tb) = (spawn(a.path()), spawn(b.path()));
        for (m, t) in [(a.path(), ta), (b.path(), tb)] {
            let run = t.join().unwrap();
            assert_eq!(
                run.status,
                Some(0),
                "{api}: mount {}: {}",
                m.display(),
                run.stderr
            );
            assert_read_only_mount(m);
        }
        let list = |m: &Path| {
            let mut v: Vec<_> = walk(m);
            v.sort();
            v
        };
        assert_eq!(
            list(a.path()),
            list(b.path()),
            "{api}: the two mounts differ"
        );
        assert_eq!(
            std::fs::read(a.path().join("root/added")).unwrap(),
            b"by the container\n"
        );
        for m in [a.path(), b.path()] {
            let um = run_bounded(&root, &[OsStr::new("umount"), m.as_os_str()], LIMIT);
            assert_eq!(um.status, Some(0), "umount: {}", um.stderr);
            assert!(mount_options(m).is_none(), "{} still mounted", m.display());
        }
    }
    before.assert_unchanged(&integrity::snapshot(&root));
}

/// Paths below `dir`, symlinks not followed.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                pending.push(p.clone());
            }
            out.push(p.strip_prefix(dir).unwrap().to_path_buf());
        }
    }
    out
}
