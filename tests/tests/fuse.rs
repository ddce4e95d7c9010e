//! `mount --fuse` and `mount --all`: the FUSE view equals the export (and
//! docker's own export for a real root), is read-only, streams large files,
//! unmounts cleanly on `umount` and on Ctrl-C, and leaves the evidence as
//! it was.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::io::{BufRead as _, Read as _};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use docker_mount_tests::fixture::{ContainerOpts, ImageOpts, Node, RootBuilder};
use docker_mount_tests::mounts::{assert_read_only_mount, mount_options, require_root, MountPoint};
use docker_mount_tests::scene::{self, Scene};
use docker_mount_tests::{cli, integrity, manifest, real};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A scene in a fresh temp dir, hashed; the hash is checked on drop.
struct Evidence {
    _dir: tempfile::TempDir,
    scene: Scene,
    before: integrity::Snapshot,
}

impl Evidence {
    fn new() -> Evidence {
        let dir = tempfile::tempdir().unwrap();
        let scene = scene::build(&dir.path().join("docker"));
        // An xattr of the view's own, and one of overlay's that must stay hidden.
        let fx = &scene.fixture;
        let web = fx.container(scene.web);
        let added = fx.overlay2().join(&web.mount_id).join("diff/root/added");
        xattr::set(&added, "user.docker-mount.test", b"kept").unwrap();
        xattr::set(&added, "trusted.overlay.origin", b"hidden").unwrap();
        let before = integrity::snapshot(&scene.fixture.root);
        Evidence {
            _dir: dir,
            scene,
            before,
        }
    }
    fn root(&self) -> &Path {
        &self.scene.fixture.root
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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Whether process `pid` is gone (or a zombie nobody has reaped yet).
fn gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Err(_) => true,
        Ok(st) => st
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z')),
    }
}

fn wait_gone(pid: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(pid) {
        assert!(Instant::now() < deadline, "FUSE server {pid} still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `VmHWM` (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u64) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    st.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `mount --fuse --json`, checked: it returns once the view serves, and
/// gives the server's pid.
fn fuse_mount(root: &Path, args: &[&str], mnt: &Path) -> u64 {
    let mut cmd = vec!["mount", "--fuse", "--json"];
    cmd.extend(args);
    cmd.push(s(mnt));
    let report = cli::run(root, &cmd).json();
    assert_eq!(report["method"], "fuse");
    assert_read_only_mount(mnt);
    let (fs, _) = mount_options(mnt).unwrap();
    assert_eq!(fs, "fuse.docker-mount");
    report["pid"].as_u64().unwrap()
}

fn unmount(root: &Path, mnt: &Path, pid: u64) {
    let out = cli::run(root, &["umount", "--json", s(mnt)]).json();
    assert_eq!(out["unmounted"], serde_json::json!([s(mnt)]));
    assert!(mount_options(mnt).is_none(), "umount left a mount");
    wait_gone(pid);
}

/// Reads every file under `dir` (as `manifest::from_dir` does), timed.
fn timed_manifest(dir: &Path) -> (manifest::Manifest, Duration) {
    let t = Instant::now();
    let m = manifest::from_dir(dir);
    (m, t.elapsed())
}

#[test]
fn fuse_view_equals_the_export() {
    if !require_root() {
        return;
    }
    let ev = Evidence::new();
    let out = tempfile::tempdir().unwrap();
    for (args, name) in [
        (vec!["web"], "web"),
        (vec!["stopped"], "stopped"),
        (vec!["created"], "created"),
        (vec!["admin"], "admin"),
        (vec!["deep"], "deep"),
        (vec!["--image", "small:1"], "image"),
    ] {
        let tar = out.path().join(format!("{name}.tar"));
        let mut export = vec!["export", "-o", s(&tar)];
        export.extend(&args);
        cli::run(ev.root(), &export).ok();
        let mnt = MountPoint::new();
        let pid = fuse_mount(ev.root(), &args, mnt.path());
        let diffs = manifest::compare(
            &manifest::from_tar(&tar),
            &manifest::from_dir(mnt.path()),
            &[],
        );
        assert!(
            diffs.is_empty(),
            "{name}: the FUSE view differs from the export:\n{}",
            diffs.join("\n")
        );
        unmount(ev.root(), mnt.path(), pid);
    }

    // What `ls -l`, `stat`, `getfattr` see.
    let mnt = MountPoint::new();
    let m = mnt.path();
    let pid = fuse_mount(ev.root(), &["web"], m);
    let meta = |p: &str| std::fs::symlink_metadata(m.join(p)).unwrap();
    let first = meta("hardlinks/first");
    for other in ["hardlinks/second", "hardlinks/a-sorts-first"] {
        assert_eq!(first.ino(), meta(other).ino(), "hard links split");
    }
    assert_eq!(first.nlink(), 3);
    assert_ne!(first.ino(), meta("bin/setuid").ino());
    // Inodes are stable for the life of the mount.
    assert_eq!(meta("bin/setuid").ino(), meta("bin/setuid").ino());
    assert_eq!(meta("bin/setuid").mode() & 0o7777, 0o4755);
    assert_eq!(meta("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(
        (meta("home/odd/owned").uid(), meta("home/odd/owned").gid()),
        (12345, 54321)
    );
    assert_eq!(meta("old-mtime").mtime(), 915_148_800);
    let null = meta("dev/null");
    assert!(std::os::unix::fs::FileTypeExt::is_char_device(
        &null.file_type()
    ));
    assert_eq!((libc::major(null.rdev()), libc::minor(null.rdev())), (1, 3));
    let lp = meta("dev/loop9");
    assert_eq!((libc::major(lp.rdev()), libc::minor(lp.rdev())), (7, 9));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(
        &meta("run/fifo").file_type()
    ));
    assert_eq!(
        std::fs::read_link(m.join("links/escape")).unwrap(),
        Path::new("../../../../etc/shadow")
    );
    let latin1 = m.join(std::ffi::OsStr::from_bytes(b"names/latin1-\xe9t\xe9"));
    assert_eq!(std::fs::read(latin1).unwrap(), b"not utf-8\n");
    // Directory listings have . and .., and whiteouts applied.
    let names: Vec<_> = std::fs::read_dir(m.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names.iter().any(|n| n == "passwd" || n == "keep"),
        "whiteouts ignored in /etc: {names:?}"
    );
    assert!(m.join("etc/.").is_dir() && m.join("root/..").is_dir());
    assert!(!m.join("var/d/old").exists() && !m.join("gone").exists());
    // Xattrs of the view, never overlay's own.
    let added = m.join("root/added");
    assert_eq!(
        xattr::get(&added, "user.docker-mount.test").unwrap(),
        Some(b"kept".to_vec())
    );
    let listed: Vec<_> = xattr::list(&added).unwrap().collect();
    assert!(
        listed
            .iter()
            .all(|n| !n.as_bytes().starts_with(b"trusted.overlay.")),
        "{listed:?}"
    );
    assert_eq!(xattr::get(&added, "trusted.overlay.origin").unwrap(), None);
    // Read-only, whatever is tried.
    let erofs = |r: std::io::Result<()>| {
        assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EROFS));
    };
    erofs(std::fs::write(m.join("root/new"), b"x"));
    erofs(std::fs::write(m.join("root/added"), b"x"));
    erofs(std::fs::remove_file(m.join("root/added")));
    erofs(std::fs::create_dir(m.join("root/d")));
    erofs(std::fs::rename(m.join("root/added"), m.join("root/moved")));
    erofs(std::fs::set_permissions(
        m.join("root/added"),
        std::fs::Permissions::from_mode(0o777),
    ));
    erofs(xattr::set(&added, "user.new", b"x"));
    // noexec: the setuid script cannot run.
    let exec = Command::new(m.join("bin/setuid")).output();
    assert!(exec.is_err(), "exec on a noexec mount succeeded");
    // A mount point that is inside the evidence is refused (the old
    // `--background` is still accepted).
    let inside = cli::run(
        ev.root(),
        &[
            "mount",
            "--fuse",
            "--background",
            "web",
            s(&ev.root().join("containers")),
        ],
    );
    assert_ne!(inside.status, 0);
    assert!(
        inside.stderr.contains("inside the evidence"),
        "{}",
        inside.stderr
    );
    unmount(ev.root(), m, pid);
}

/// The foreground server: Ctrl-C and SIGTERM unmount cleanly.
#[test]
fn foreground_mount_unmounts_on_signals() {
    if !require_root() {
        return;
    }
    let ev = Evidence::new();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mnt = MountPoint::new();
        let mut child = Command::new(cli::binary())
            .arg("--root")
            .arg(ev.root())
            .args(["mount", "--fuse", "--foreground", "web"])
            .arg(mnt.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("mounted container web"), "{line:?}");
        assert_read_only_mount(mnt.path());
        assert_eq!(
            std::fs::read(mnt.path().join("root/added")).unwrap(),
            b"by the container\n"
        );
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let status = child.wait().unwrap();
        let mut rest = String::new();
        out.read_to_string(&mut rest).unwrap();
        assert!(status.success(), "signal {sig}: {status}: {rest}");
        assert!(rest.contains("unmounted"), "{rest}");
        assert!(
            mount_options(mnt.path()).is_none(),
            "signal {sig} left a mount"
        );
    }
}

/// A 1 GiB file is streamed: the server's peak RSS stays far below it.
#[test]
fn large_files_are_streamed() {
    if !require_root() {
        return;
    }
    const SIZE: u64 = 1 << 30;
    let dir = tempfile::tempdir().unwrap();
    let mut b = RootBuilder::new(&dir.path().join("docker"));
    let base = b.layer(&[Node::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")]);
    let data = b.layer_on(base, &[Node::file("data/big.bin", b"placeholder\n")]);
    let image = b.image(&["big:1"], data, ImageOpts::default());
    b.container("big", image, ContainerOpts::default());
    let fx = b.finish();
    let big = fx
        .overlay2()
        .join(&fx.layer(data).cache_id)
        .join("diff/data/big.bin");
    // Written streamed, like the bench does: the fixture holds contents in memory.
    let want = {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&big).unwrap();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..(SIZE >> 20) {
            for chunk in buf.chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                chunk.copy_from_slice(&x.to_le_bytes());
            }
            h.update(&buf);
            f.write_all(&buf).unwrap();
        }
        f.sync_all().unwrap();
        hex::encode(h.finalize())
    };
    let before = integrity::snapshot(&fx.root);
    let mnt = MountPoint::new();
    let pid = fuse_mount(&fx.root, &["big"], mnt.path());
    let start_rss = peak_rss_kib(pid);
    let t = Instant::now();
    let mut f = std::fs::File::open(mnt.path().join("data/big.bin")).unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    let took = t.elapsed();
    drop(f);
    let peak = peak_rss_kib(pid);
    eprintln!(
        "1 GiB through FUSE: {:.2} s ({:.0} MiB/s); server peak RSS {} KiB (at mount {} KiB)",
        took.as_secs_f64(),
        SIZE as f64 / 1048576.0 / took.as_secs_f64(),
        peak,
        start_rss
    );
    assert_eq!(total, SIZE);
    assert_eq!(hex::encode(h.finalize()), want, "content differs");
    assert!(
        peak < 128 * 1024,
        "the server's peak RSS is {peak} KiB: the file was buffered, not streamed"
    );
    unmount(&fx.root, mnt.path(), pid);
    before.assert_unchanged(&integrity::snapshot(&fx.root));
}

/// The mounts `mount --all` reported, checked.
fn check_all(report: &Value, base: &Path, want: &[&str], method: Option<&str>) -> Vec<u64> {
    let mut pids = Vec::new();
    let entries = report.as_array().unwrap();
    for name in want {
        let e = entries
            .iter()
            .find(|e| e["name"] == *name)
            .unwrap_or_else(|| panic!("{name} not in {report}"));
        assert!(e["error"].is_null(), "{name}: {}", e["error"]);
        let target = PathBuf::from(e["target"].as_str().unwrap());
        assert_eq!(target, base.join(name));
        assert_read_only_mount(&target);
        if let Some(m) = method {
            assert_eq!(e["method"], m, "{name}");
        }
        if let Some(pid) = e["pid"].as_u64() {
            pids.push(pid);
        }
    }
    pids
}

fn mounts_below(base: &Path) -> Vec<PathBuf> {
    let base = std::fs::canonicalize(base).unwrap();
    docker_mount_engine::mounts::kernel::mountinfo()
        .unwrap()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p.starts_with(&base) && p != &base)
        .collect()
}

#[test]
fn mount_all_and_umount_all() {
    if !require_root() {
        return;
    }
    let mut ev = Evidence::new();
    // One broken container: reported and skipped, not fatal (exit status 3).
    ev.scene.fixture.remove_mount_id(ev.scene.stopped);
    ev.before = integrity::snapshot(ev.root());
    let all = ["web", "created", "admin", "deep"];
    let out = tempfile::tempdir().unwrap();
    for (extra, method) in [(None, None), (Some("--fuse"), Some("fuse"))] {
        let base = out.path().join("all");
        let mut args = vec!["mount", "--json", "--all", s(&base)];
        args.extend(extra);
        let run = cli::run(ev.root(), &args);
        let report = run.partial_json();
        assert!(run.stderr.contains("stopped"), "{}", run.stderr);
        let stopped = report
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "stopped")
            .unwrap();
        assert!(stopped["error"].as_str().unwrap().contains("mount-id"));
        assert!(!base.join("stopped").exists());
        let pids = check_all(&report, &base, &all, method);
        if method.is_some() {
            assert_eq!(pids.len(), all.len());
        }
        assert_eq!(
            std::fs::read(base.join("web/root/added")).unwrap(),
            b"by the container\n"
        );
        let undone = cli::run(ev.root(), &["umount", "--all", s(&base)]);
        undone.ok();
        assert!(mounts_below(&base).is_empty(), "{:?}", mounts_below(&base));
        for name in all {
            assert!(!base.join(name).exists(), "{name} left behind");
        }
        for pid in pids {
            wait_gone(pid);
        }
        std::fs::remove_dir(&base).unwrap();
    }
}

/// Ctrl-C in the middle of `mount --all` leaves nothing mounted.
#[test]
fn interrupted_mount_all_leaves_no_mounts() {
    if !require_root() {
        return;
    }
    let ev = Evidence::new();
    let out = tempfile::tempdir().unwrap();
    let base = out.path().join("all");
    std::fs::create_dir(&base).unwrap();
    let child = Command::new(cli::binary())
        .arg("--root")
        .arg(ev.root())
        .args(["mount", "--fuse", "--all"])
        .arg(&base)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while mounts_below(&base).is_empty() {
        assert!(Instant::now() < deadline, "mount --all mounted nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "not interrupted: {stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(mounts_below(&base).is_empty(), "{:?}", mounts_below(&base));
    assert_eq!(std::fs::read_dir(&base).unwrap().count(), 0);
}

/// Without root, `mount` picks FUSE by itself (through fusermount3) and says so.
#[test]
fn mount_without_root_uses_fuse() {
    if !require_root() {
        return;
    }
    if docker_mount_engine::mounts::fuse::fusermount_path().is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "fusermount3 is missing"
        );
        eprintln!("skipping: no fusermount3");
        return;
    }
    // fusermount3 opens /dev/fuse with the user's own fs uid: Debian makes
    // it world read-writable (0666); some sandboxes keep it 0600.
    let dev_fuse = std::fs::metadata("/dev/fuse").map(|m| m.mode() & 0o006);
    if dev_fuse.ok() != Some(0o006) {
        if std::env::var("CI").as_deref() != Ok("true") {
            eprintln!("skipping: /dev/fuse is not open to other users here");
            return;
        }
        // CI's own machine: give /dev/fuse Debian's default mode rather than skip.
        std::fs::set_permissions("/dev/fuse", std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let ev = Evidence::new();
    let mnt = MountPoint::new();
    std::os::unix::fs::chown(mnt.path(), Some(65534), Some(65534)).unwrap();
    // nobody, reading the evidence by CAP_DAC_READ_SEARCH only.
    let nobody = |args: &[&str]| {
        let o = Command::new("setpriv")
            .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .args(["--inh-caps", "-all,+dac_read_search"])
            .args(["--ambient-caps", "+dac_read_search"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let bin = cli::binary();
    // Without root, reads may move atimes: the evidence is seen through a noatime bind.
    let evidence = docker_mount_tests::mounts::noatime_bind(ev.root());
    let root = evidence.path();
    let (ok, stdout, stderr) = nobody(&[s(&bin), "--root", s(root), "mount", "web", s(mnt.path())]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stderr.contains("FUSE"), "the choice is stated: {stderr}");
    assert!(stdout.contains("fuse"), "{stdout}");
    assert_read_only_mount(mnt.path());
    let (ok, content, err) = nobody(&["cat", s(&mnt.path().join("var/d/new"))]);
    assert!(ok, "{err}");
    assert_eq!(content, "changed by the container\n");
    let (ok, _, err) = nobody(&[s(&bin), "umount", s(mnt.path())]);
    assert!(ok, "{err}");
    assert!(mount_options(mnt.path()).is_none());
    // `--fuse` asked for: the same, the command returns once the view
    // serves; after umount its server is gone.
    let args = [
        s(&bin),
        "--root",
        s(root),
        "mount",
        "--fuse",
        "--json",
        "web",
    ];
    let (ok, stdout, stderr) = nobody(&[&args[..], &[s(mnt.path())]].concat());
    assert!(ok, "{stdout}{stderr}");
    cli::check_json(
        &["mount", "--json"].map(std::ffi::OsStr::new),
        Some(0),
        stdout.as_bytes(),
    )
    .unwrap();
    let pid = serde_json::from_str::<Value>(&stdout).unwrap()["pid"]
        .as_u64()
        .unwrap();
    let (ok, content, err) = nobody(&["cat", s(&mnt.path().join("root/added"))]);
    assert!(ok, "{err}");
    assert_eq!(content, "by the container\n");
    let (ok, _, err) = nobody(&[s(&bin), "umount", s(mnt.path())]);
    assert!(ok, "{err}");
    assert!(mount_options(mnt.path()).is_none());
    wait_gone(pid);
}

/// Every container of a real overlay2 root, through FUSE, equals its
/// `docker export`; reading it all is timed against the kernel's overlay.
#[test]
fn every_real_container_equals_docker_export() {
    if !real::require_privileged() {
        return;
    }
    let r = real::overlay2_root();
    let before = integrity::snapshot(&r.root);
    let (mut fuse_total, mut kernel_total, mut entries) = (Duration::ZERO, Duration::ZERO, 0);
    for c in &r.containers {
        let want = manifest::from_tar(&c.export_tar);
        // Kernel, FUSE, kernel again: both timed with the page cache warm.
        let kernel = MountPoint::new();
        cli::run(&r.root, &["mount", &c.id[..12], s(kernel.path())]).ok();
        timed_manifest(kernel.path());
        let mnt = MountPoint::new();
        let pid = fuse_mount(&r.root, &[&c.id[..12]], mnt.path());
        let (got, f) = timed_manifest(mnt.path());
        let (_, k) = timed_manifest(kernel.path());
        cli::run(&r.root, &["umount", s(kernel.path())]).ok();
        let diffs = manifest::compare(&want, &got, &[]);
        assert!(
            diffs.is_empty(),
            "{} through FUSE differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
        eprintln!(
            "{:<24} {:>6} entries: FUSE {:>7.1} ms, kernel overlay {:>7.1} ms",
            c.name,
            got.len(),
            f.as_secs_f64() * 1e3,
            k.as_secs_f64() * 1e3
        );
        fuse_total += f;
        kernel_total += k;
        entries += got.len();
        unmount(&r.root, mnt.path(), pid);
    }
    eprintln!(
        "all {} containers, {entries} entries, every file read: FUSE {:.2} s, kernel overlay {:.2} s",
        r.containers.len(),
        fuse_total.as_secs_f64(),
        kernel_total.as_secs_f64()
    );
    before.assert_unchanged(&integrity::snapshot(&r.root));
}

/// aufs layers (no aufs in the kernel): `mount` serves them with FUSE by
/// itself, and each container equals its `docker export`; `mount --all`
/// does the same for every container.
#[test]
fn aufs_containers_mount_with_fuse_by_themselves() {
    if !real::require_privileged() {
        return;
    }
    let r = docker_mount_tests::convert::aufs_root();
    let before = integrity::snapshot(&r.root);
    for c in &r.containers {
        let mnt = MountPoint::new();
        let run = cli::run(&r.root, &["mount", "--json", &c.id[..12], s(mnt.path())]);
        let report = run.json();
        assert!(
            run.stderr.contains("aufs"),
            "the choice is stated: {}",
            run.stderr
        );
        assert_eq!(report["method"], "fuse");
        assert_read_only_mount(mnt.path());
        let diffs = manifest::compare(
            &manifest::from_tar(&c.export_tar),
            &manifest::from_dir(mnt.path()),
            &[],
        );
        assert!(
            diffs.is_empty(),
            "{} (aufs, FUSE) differs from docker export:\n{}",
            c.name,
            diffs.join("\n")
        );
        unmount(&r.root, mnt.path(), report["pid"].as_u64().unwrap());
    }
    let out = tempfile::tempdir().unwrap();
    let base = out.path().join("all");
    let report = cli::run(&r.root, &["mount", "--json", "--all", s(&base)]).json();
    let names: Vec<&str> = r.containers.iter().map(|c| c.name.as_str()).collect();
    let pids = check_all(&report, &base, &names, Some("fuse"));
    assert_eq!(pids.len(), names.len());
    cli::run(&r.root, &["umount", "--all", s(&base)]).ok();
    assert!(mounts_below(&base).is_empty());
    for pid in pids {
        wait_gone(pid);
    }
    before.assert_unchanged(&integrity::snapshot(&r.root));
}
