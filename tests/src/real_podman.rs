//! A podman storage root made by a real podman with the overlay storage
//! driver — Debian bookworm's 4.3 (libpod state in bolt) or, run in the
//! trixie tree ([`trixie`](crate::trixie)), 5.4 (libpod state in SQLite):
//! a base image imported from a busybox rootfs tar, a second image
//! committed from a container that deleted, replaced and added files, a
//! third built from a Containerfile with RUN steps, and containers that
//! exited, were never started, were stopped, logged to stdout and stderr
//! (`k8s-file`), and were running when the "host went down" (conmon and
//! the container killed with SIGKILL, so libpod's state still says
//! running). `podman export`, `podman diff`, `podman logs`, `podman ps
//! -a`, `podman images`, `podman history` and `podman inspect` are
//! recorded before that.
//!
//! Kept apart from [`real`](crate::real) with its own cache key: podman
//! 4's in `/var/cache/docker-mount-tests/real-roots/podman-<hash of this file>/`, podman 5's in
//! `/var/cache/docker-mount-tests/podman5-<hash of this file and the
//! tree's recipe>/` (the path it has in the tree too). Podman is
//! daemonless, but conmon daemonizes: while building, this process is the
//! child subreaper, so conmon and the containers are its children, killed
//! and reaped by pid. Everything podman mounts (its bind of `overlay/` on
//! itself, `merged/`, `shm`) is unmounted afterwards.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::real::{
    alive, cached_root, cached_root_in, cmdline, container_named, import_args, kill_all,
    mentioning, os_args, programs_available, require, root_available, run_capture_bytes,
    tar_rootfs, tree, unmount_under, write, Leftovers, BUSYBOX,
};
use crate::trixie::{self, Chroot};

/// Debian's podman.
pub const PODMAN: &str = "/usr/bin/podman";
/// Its container monitor.
pub const CONMON: &str = "/usr/bin/conmon";

/// Which podman makes a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Generation {
    /// Debian bookworm's podman 4.3, on the host: libpod state in bolt.
    Podman4,
    /// Debian trixie's podman 5.4, in the trixie tree: libpod state in SQLite.
    Podman5,
    /// The same, rootless: run by uid [`ROOTLESS_ID`] with subordinate ids
    /// [`SUBIDS`], its storage's owners shifted on disk.
    Podman5Rootless,
}

/// The uid and gid of the rootless podman's user (`dmpodman`, known only
/// to the tree's view: its passwd, group, subuid and subgid are bound over
/// the tree's).
pub const ROOTLESS_ID: u32 = 4711;
/// Its subordinate uids and gids: (first, count).
pub const SUBIDS: (u32, u32) = (200_000, 65_536);

/// Runs `$3...` in the view `$1` as uid and gid `$2`: in a mount namespace
/// of its own whose root the view is (`pivot_root`, not `chroot`: the
/// kernel refuses a chrooted process a user namespace, and rootless podman
/// needs one), through the tree's `setpriv`.
const ROOTLESS_LAUNCH: &str =
    "cd \"$1\" && pivot_root . mnt && cd / && umount -l /mnt && id=$2 && \
    shift 2 && exec /usr/bin/setpriv --reuid \"$id\" --regid \"$id\" --clear-groups \"$@\"";

impl Generation {
    /// The OCI runtime, for every command (`build` too): bookworm's crun
    /// refuses the host's hybrid cgroups ("cgroups in hybrid mode not
    /// supported"), runc takes them; in the tree crun runs without cgroups.
    fn runtime(self) -> &'static str {
        match self {
            Generation::Podman4 => "runc",
            Generation::Podman5 | Generation::Podman5Rootless => "crun",
        }
    }

    /// Options `run` and `create` need on this machine beyond [`RUN_OPTS`]:
    /// podman 5 cannot use the tree's bare cgroup2 (the host's hybrid
    /// cgroups keep every controller in v1).
    fn runtime_opts(self) -> &'static [&'static str] {
        match self {
            Generation::Podman4 => &[],
            Generation::Podman5 | Generation::Podman5Rootless => &["--cgroups=disabled"],
        }
    }

    fn available(self) -> Result<(), String> {
        match self {
            Generation::Podman4 => podman_available(),
            Generation::Podman5 | Generation::Podman5Rootless => {
                root_available()?;
                programs_available(&[BUSYBOX], "busybox-static")?;
                trixie::available()
            }
        }
    }
}

/// The built root and its oracles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodmanRoot {
    pub generation: Generation,
    /// The cache directory.
    pub dir: PathBuf,
    /// The storage root (`--root`): the evidence.
    pub root: PathBuf,
    pub containers: Vec<PodmanContainer>,
    /// `podman ps -a --format json`, before the crash.
    pub ps: Value,
    /// `podman images -a --format json`.
    pub images: Value,
    /// `podman history --format json` of the image built with RUN steps.
    pub history: Value,
    pub build_seconds: f64,
}

impl PodmanRoot {
    /// `--uid-map` and `--gid-map` for a rootless root: container ids as
    /// podman showed them.
    pub fn id_maps(&self) -> Option<String> {
        (self.generation == Generation::Podman5Rootless).then(|| {
            let (first, count) = SUBIDS;
            format!("0:{ROOTLESS_ID}:1,1:{first}:{count}")
        })
    }

    /// The id on disk of container uid or gid `c` (`c` itself when rootful).
    pub fn host_id(&self, c: u64) -> Option<u64> {
        match self.generation {
            Generation::Podman5Rootless => crate::real_rootless::host_id(c, ROOTLESS_ID, SUBIDS),
            _ => Some(c),
        }
    }
}

/// The image built from a Containerfile with RUN steps.
pub const BUILT_IMAGE: &str = "localhost/pm-built:1";

/// One container of a [`PodmanRoot`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PodmanContainer {
    pub id: String,
    pub name: String,
    /// `podman export`, taken while podman could still see it.
    pub export_tar: PathBuf,
    /// `podman diff`.
    pub diff: String,
    /// `State.Running` of `podman inspect` before the crash.
    pub running_at_crash: bool,
    /// `podman logs`: what it printed on stdout and on stderr.
    pub logs_stdout: String,
    pub logs_stderr: String,
}

impl PodmanRoot {
    /// The container named `name`; panics if there is none.
    pub fn container(&self, name: &str) -> &PodmanContainer {
        container_named(&self.containers, name, |c| &c.name, "podman root")
    }
}

/// Whether a podman root can be built here.
pub fn podman_available() -> Result<(), String> {
    root_available()?;
    programs_available(&[PODMAN, CONMON, BUSYBOX], "podman busybox-static")
}

/// True if the podman tests can run; otherwise panics under `CI=true`
/// (a privileged test must fail there, not skip), else says why and
/// returns false.
pub fn require_podman() -> bool {
    require("privileged", podman_available())
}

/// True if the podman 5 tests can run (as [`require_podman`]).
pub fn require_podman5() -> bool {
    require("privileged", Generation::Podman5.available())
}

/// The podman 4 root, built once per process and cached on disk.
pub fn podman_root() -> &'static PodmanRoot {
    static ROOT: OnceLock<PodmanRoot> = OnceLock::new();
    ROOT.get_or_init(|| cached(Generation::Podman4))
}

/// The podman 5 root, built once per process and cached on disk.
pub fn podman5_root() -> &'static PodmanRoot {
    static ROOT: OnceLock<PodmanRoot> = OnceLock::new();
    ROOT.get_or_init(|| cached(Generation::Podman5))
}

/// The rootless podman 5 root, built once per process and cached on disk.
pub fn podman5_rootless_root() -> &'static PodmanRoot {
    static ROOT: OnceLock<PodmanRoot> = OnceLock::new();
    ROOT.get_or_init(|| cached(Generation::Podman5Rootless))
}

fn cached(generation: Generation) -> PodmanRoot {
    let source = include_str!("real_podman.rs");
    let build = |dest: &Path| build(generation, dest);
    let (dir, mut r): (_, PodmanRoot) = match generation {
        Generation::Podman4 => {
            cached_root("podman", source, generation.available(), &LEFTOVERS, build)
        }
        Generation::Podman5 | Generation::Podman5Rootless => cached_root_in(
            Path::new(trixie::CACHE),
            if generation == Generation::Podman5 {
                "podman5"
            } else {
                "podman5-rootless"
            },
            &format!("{source}{}", trixie::recipe()),
            generation.available(),
            &LEFTOVERS,
            build,
        ),
    };
    r.root = dir.join(&r.root);
    for c in &mut r.containers {
        c.export_tar = dir.join(&c.export_tar);
    }
    r.dir = dir;
    r
}

/// A private podman: its own storage root, run root and tmp dir, and a
/// storage.conf of its own (the host's may name a mount program).
struct Podman {
    generation: Generation,
    /// The trixie tree podman 5 runs in (with the run dir bound in).
    chroot: Option<Chroot>,
    root: PathBuf,
    /// `/tmp/dmp.<pid>.<n>`: run root, tmp dir (short: conmon's socket paths).
    run: PathBuf,
    storage_conf: PathBuf,
    scratch: PathBuf,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut c = match (&self.chroot, self.generation) {
            (Some(t), Generation::Podman5Rootless) => {
                let mut c = Command::new("unshare");
                c.args([
                    "-m",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    ROOTLESS_LAUNCH,
                    "sh",
                ])
                .arg(t.root())
                .arg(ROOTLESS_ID.to_string())
                .arg("podman")
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .env("HOME", self.run.join("home"))
                .env("XDG_RUNTIME_DIR", self.run.join("xdg"))
                .env("LANG", "C.UTF-8");
                c
            }
            (Some(t), _) => t.command("podman"),
            (None, _) => Command::new(PODMAN),
        };
        c.env("CONTAINERS_STORAGE_CONF", &self.storage_conf)
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(self.run.join("run"))
            .arg("--tmpdir")
            .arg(self.run.join("tmp"))
            .args(["--storage-driver", "overlay"])
            .args(["--cgroup-manager", "cgroupfs", "--events-backend", "file"])
            .args(["--runtime", self.generation.runtime()]);
        c
    }

    fn status<I, S>(&self, args: I, timeout: u64) -> (i32, String, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.cmd();
        c.args(args);
        let (code, out, err) = run_capture_bytes(&mut c, timeout, &self.scratch);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = os_args(args);
        let (code, out, err) = self.status(&args, 300);
        assert_eq!(code, 0, "podman {args:?} failed:\n{out}\n{err}");
        out
    }
}

/// Options every `podman run` / `create` / `build` needs here: no
/// network, and limits this machine can grant.
const RUN_OPTS: [&str; 6] = [
    "--network",
    "none",
    "--ulimit",
    "nofile=20000:20000",
    "--ulimit",
    "nproc=4096:4096",
];
/// Every container logs to `userdata/ctr.log`, whatever the default.
const LOG_OPTS: [&str; 2] = ["--log-driver", "k8s-file"];

fn base_rootfs(r: &Path) {
    for d in [
        "bin",
        "etc",
        "tmp",
        "root",
        "var/log",
        "doomed-dir/sub",
        "opq",
        "data",
    ] {
        fs::create_dir_all(r.join(d)).unwrap_or_else(|e| panic!("mkdir {d}: {e}"));
    }
    fs::copy(BUSYBOX, r.join("bin/busybox")).expect("copy busybox");
    fs::hard_link(r.join("bin/busybox"), r.join("bin/sh")).expect("link sh");
    for a in [
        "ls", "mkdir", "rm", "rmdir", "ln", "mkfifo", "chmod", "chown", "touch", "echo", "cat",
        "sleep", "cp", "mv", "true", "date",
    ] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).expect("applet symlink");
    }
    write(&r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    write(&r.join("etc/group"), "root:x:0:\n");
    write(&r.join("etc/motd"), "base motd\n");
    write(&r.join("doomed-dir/sub/x"), "doomed\n");
    write(&r.join("opq/old"), "old\n");
    write(&r.join("data/keep"), "keep\n");
    write(&r.join("data/gone"), "gone\n");
    write(&r.join("var/log/app.log"), "started\n");
}

/// The commit step: image-layer whiteouts, an opaque directory, copy-ups.
const COMMIT_SCRIPT: &str = "set -e; rm -rf /doomed-dir; rm /data/gone; \
    rm -rf /opq; mkdir /opq; echo new > /opq/new; \
    echo appended >> /etc/motd; mkdir -p /app/sub; echo v1 > /app/config; \
    ln -s /app/config /app/link; ln /app/config /app/hardlink; \
    mkdir /app/empty; chmod 0750 /app/sub; cp /bin/busybox /app/suid; chmod 4755 /app/suid";

/// The exited container: everything a suspect might do.
const EXITED_SCRIPT: &str = "set -e; echo added > /added-file; echo changed >> /app/config; \
    rm /data/keep; rm -rf /app/sub; ln -s /etc/passwd /evil-link; mkfifo /ctr-fifo; \
    touch -r /etc/passwd /tmp/ref; echo tampered >> /etc/passwd; touch -r /tmp/ref /etc/passwd; rm /tmp/ref; \
    rm -rf /var/log; mkdir -p /var/log; echo fresh > /var/log/new.log; \
    mv /etc/motd /etc/motd.renamed; echo in-volume > /vol/file; \
    chown 1234:5678 /added-file; exit 3";

/// The logging container: lines on both streams, an empty line, a line
/// without its newline.
const LOGS_SCRIPT: &str =
    "echo out-1; echo err-1 >&2; echo; echo 'out 2  spaced'; echo err-2 >&2; printf no-newline";

/// The Containerfile of [`BUILT_IMAGE`]: RUN steps that add, delete (a
/// whiteout of an image file) and make an opaque directory.
const CONTAINERFILE: &str = "FROM localhost/pm-awkward:1\n\
    RUN echo built > /built-file && rm /etc/motd && mkdir -p /built/dir && echo x > /built/dir/x\n\
    ENV BUILT=1\n\
    RUN rm -rf /opq && mkdir /opq && echo rebuilt > /opq/rebuilt && ln /built-file /built-hardlink\n";

const RUNNING_SCRIPT: &str =
    "echo hi > /run-file; rm /etc/group; mkdir -p /var/tmp/x; sleep 100000";

fn build(generation: Generation, dest: &Path) -> PodmanRoot {
    let t0 = Instant::now();
    let run = LEFTOVERS.run_dir(dest);
    let root = dest.join("storage");
    let chroot = match generation {
        Generation::Podman4 => None,
        Generation::Podman5 | Generation::Podman5Rootless => {
            let c = Chroot::enter().unwrap_or_else(|e| panic!("{e}"));
            c.bind_same(&run).unwrap_or_else(|e| panic!("{e}"));
            if generation == Generation::Podman5Rootless {
                rootless_user(&c, dest, &run, &root);
            }
            Some(c)
        }
    };
    let mut p = Podman {
        generation,
        chroot,
        root: root.clone(),
        run: run.clone(),
        storage_conf: dest.join("storage.conf"),
        scratch: dest.join("scratch"),
    };
    write(
        &p.storage_conf,
        format!(
            "[storage]\ndriver = \"overlay\"\nrunroot = \"{}\"\ngraphroot = \"{}\"\n[storage.options.overlay]\n",
            run.join("run").display(),
            root.display()
        ),
    );
    fs::create_dir_all(&p.scratch).expect("mkdir scratch");
    // conmon daemonizes: make it (and the containers it leaves) ours.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| build_in(&p, dest)));
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
    let pids = crash(&p);
    let survivors = stop(&run, &root, &pids);
    // The tree's view goes first: podman 5's mounts are in it.
    drop(p.chroot.take());
    let unmounted = unmount_under(&[dest, &run]);
    remove_cgroups(&pids.ids);
    let _ = fs::remove_dir_all(&run);
    let (containers, ps, images, history) = match outcome {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e),
    };
    assert!(
        survivors.is_empty(),
        "processes {survivors:?} survived SIGKILL"
    );
    unmounted.unwrap_or_else(|e| panic!("{e}"));
    let meta = PodmanRoot {
        generation,
        dir: PathBuf::new(),
        root: PathBuf::from("storage"),
        containers,
        ps,
        images,
        history,
        build_seconds: t0.elapsed().as_secs_f64(),
    };
    eprintln!(
        "built real {generation:?} root in {:.1} s at {}",
        meta.build_seconds,
        root.display()
    );
    meta
}

/// Makes `dmpodman` ([`ROOTLESS_ID`], [`SUBIDS`]) known in the view `c`
/// (its passwd, group, subuid and subgid, written in `dest/etc`, bound over
/// the tree's), and gives it what it writes: its home, runtime dir and run
/// root in `run`, the storage `root`, the exports.
fn rootless_user(c: &Chroot, dest: &Path, run: &Path, root: &Path) {
    let id = ROOTLESS_ID;
    let (first, count) = SUBIDS;
    for (name, line) in [
        (
            "passwd",
            format!("dmpodman:x:{id}:{id}::/nonexistent:/bin/sh\n"),
        ),
        ("group", format!("dmpodman:x:{id}:\n")),
        ("subuid", format!("dmpodman:{first}:{count}\n")),
        ("subgid", format!("dmpodman:{first}:{count}\n")),
    ] {
        let tree_file = c.root().join("etc").join(name);
        let mut text = fs::read_to_string(&tree_file)
            .unwrap_or_else(|e| panic!("{}: {e}", tree_file.display()));
        text.push_str(&line);
        let ours = dest.join("etc").join(name);
        write(&ours, text);
        nix::mount::mount(
            Some(&ours),
            &tree_file,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap_or_else(|e| {
            panic!(
                "mount --bind {} {}: {e}",
                ours.display(),
                tree_file.display()
            )
        });
    }
    let own = |p: &Path, mode: u32| {
        fs::create_dir_all(p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        std::os::unix::fs::chown(p, Some(id), Some(id))
            .unwrap_or_else(|e| panic!("chown {}: {e}", p.display()));
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
    };
    own(run, 0o755);
    own(&run.join("home"), 0o700);
    own(&run.join("xdg"), 0o700);
    own(root, 0o700);
    own(&dest.join("exports"), 0o755);
}

type Oracles = (Vec<PodmanContainer>, Value, Value, Value);

fn build_in(p: &Podman, dest: &Path) -> Oracles {
    let rootfs = dest.join("build/rootfs");
    base_rootfs(&rootfs);
    let tar = dest.join("build/base.tar");
    tar_rootfs(&rootfs, &tar, false);
    p.ok(import_args(&tar, "pm-base:latest"));
    let with_opts = |verb: &'static str, args: &[&str]| -> Vec<String> {
        let mut a = vec![verb];
        a.extend(RUN_OPTS);
        a.extend(LOG_OPTS);
        a.extend(p.generation.runtime_opts());
        a.extend(args);
        a.into_iter().map(String::from).collect()
    };
    let run = |args: &[&str]| p.status(with_opts("run", args), 120);
    let (code, out, err) = run(&[
        "--name",
        "pm-builder",
        "pm-base:latest",
        "sh",
        "-c",
        COMMIT_SCRIPT,
    ]);
    assert_eq!(code, 0, "builder: {out}{err}");
    p.ok(["commit", "pm-builder", "pm-awkward:1"]);
    p.ok(["rm", "pm-builder"]);

    let ctx = dest.join("build/context");
    write(&ctx.join("Containerfile"), CONTAINERFILE);
    let mut build = vec![
        "build",
        "--network",
        "none",
        "--ulimit",
        "nofile=20000:20000",
    ];
    build.extend(["--ulimit", "nproc=4096:4096", "-t", BUILT_IMAGE]);
    let mut build = os_args(build);
    build.push(ctx.into_os_string());
    let (code, out, err) = p.status(&build, 300);
    assert_eq!(code, 0, "podman build: {out}{err}");
    let (code, _, err) = run(&[
        "--name",
        "c-built",
        BUILT_IMAGE,
        "sh",
        "-c",
        "echo more >> /built-file",
    ]);
    assert_eq!(code, 0, "c-built: {err}");
    let (code, _, err) = run(&[
        "--name",
        "c-logs",
        "pm-base:latest",
        "sh",
        "-c",
        LOGS_SCRIPT,
    ]);
    assert_eq!(code, 0, "c-logs: {err}");

    let (code, _, err) = run(&[
        "--name",
        "c-exited",
        "-v",
        "pm-vol:/vol",
        "pm-awkward:1",
        "sh",
        "-c",
        EXITED_SCRIPT,
    ]);
    assert_eq!(code, 3, "c-exited should exit 3: {err}");
    p.ok(with_opts(
        "create",
        &["--name", "c-created", "pm-awkward:1", "sh"],
    ));
    let (code, out, err) = run(&[
        "-d",
        "--name",
        "c-running",
        "pm-awkward:1",
        "sh",
        "-c",
        RUNNING_SCRIPT,
    ]);
    assert_eq!(code, 0, "c-running: {out}{err}");
    let (code, out, err) = run(&[
        "-d",
        "--name",
        "c-stopped",
        "pm-base:latest",
        "sleep",
        "100000",
    ]);
    assert_eq!(code, 0, "c-stopped: {out}{err}");
    p.ok(["stop", "-t", "1", "c-stopped"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !p
        .ok(["diff", "c-running"])
        .lines()
        .any(|l| l == "A /var/tmp/x")
    {
        assert!(Instant::now() < deadline, "c-running never made /var/tmp/x");
        std::thread::sleep(Duration::from_millis(100));
    }

    let json = |args: &[&str]| -> Value {
        let out = p.ok(args);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("podman {args:?}: {e}:\n{out}"))
    };
    let ps = json(&["ps", "-a", "--no-trunc", "--format", "json"]);
    let images = json(&["images", "-a", "--no-trunc", "--format", "json"]);
    let history = json(&["history", "--no-trunc", "--format", "json", BUILT_IMAGE]);
    let mut containers = Vec::new();
    fs::create_dir_all(dest.join("exports")).expect("mkdir exports");
    for c in ps.as_array().expect("podman ps array") {
        let id = c["Id"].as_str().expect("ps Id").to_string();
        let name = c["Names"][0].as_str().expect("ps Names").to_string();
        let inspect = json(&["inspect", &id]);
        let export_rel = PathBuf::from("exports").join(format!("{name}.tar"));
        p.ok([
            OsStr::new("export"),
            OsStr::new("-o"),
            dest.join(&export_rel).as_os_str(),
            OsStr::new(&id),
        ]);
        let diff = p.ok(["diff", &id]);
        write(&dest.join("diffs").join(format!("{name}.txt")), &diff);
        let (code, logs_stdout, logs_stderr) = p.status(["logs", &id], 60);
        assert_eq!(code, 0, "podman logs {name}: {logs_stderr}");
        containers.push(PodmanContainer {
            id,
            name,
            export_tar: export_rel,
            diff,
            running_at_crash: inspect[0]["State"]["Running"].as_bool().unwrap_or(false),
            logs_stdout,
            logs_stderr,
        });
    }
    assert!(
        containers
            .iter()
            .any(|c| c.name == "c-running" && c.running_at_crash),
        "c-running should be running at the crash"
    );
    (containers, ps, images, history)
}

/// The processes the crash kills, and the containers they served.
#[derive(Default)]
struct Crash {
    pids: Vec<i32>,
    ids: Vec<String>,
}

/// SIGKILLs every running container's conmon, then its init (so no exit
/// command records the death), leaving libpod's state at "running".
fn crash(p: &Podman) -> Crash {
    let mut out = Crash::default();

    let (code, ps, _) = p.status(["ps", "-q", "--no-trunc"], 60);
    if code != 0 {
        return out;
    }
    for id in ps.split_whitespace() {
        out.ids.push(id.to_string());
        let (_, pids, _) = p.status(
            [
                "inspect",
                "--format",
                "{{.State.ConmonPid}} {{.State.Pid}}",
                id,
            ],
            60,
        );
        for pid in pids
            .split_whitespace()
            .filter_map(|s| s.parse::<i32>().ok())
        {
            if pid > 1 {
                // SAFETY: kill(2) of one positive pid.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                out.pids.push(pid);
            }
        }
    }
    // A rootless podman's pause process, keeper of its user namespace,
    // last (the commands above need it), and whatever else runs as its
    // user or subordinate ids.
    if p.generation == Generation::Podman5Rootless {
        for pid in rootless_processes() {
            // SAFETY: kill(2) of one positive pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            out.pids.push(pid);
        }
    }
    out
}

/// The live processes of the rootless user and of its subordinate ids
/// (podman's pause process, conmons, containers): no one else on this
/// machine uses those ids.
fn rootless_processes() -> Vec<i32> {
    let (first, count) = SUBIDS;
    let ours = |uid: u32| uid == ROOTLESS_ID || (first..first + count).contains(&uid);
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let status = fs::read_to_string(e.path().join("status")).ok()?;
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.split_whitespace().next())
                    .map(str::to_string)
            };
            let uid: u32 = field("Uid:")?.parse().ok()?;
            (ours(uid) && field("State:")? != "Z").then_some(pid)
        })
        .collect()
}

/// Reaps the killed processes (ours: this process was their subreaper) and
/// returns those of `pids`, or any other process naming `run` or `root`,
/// still alive after 20 s.
fn stop(run: &Path, root: &Path, crash: &Crash) -> Vec<i32> {
    reap_conmons();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut left: Vec<i32> = crash.pids.clone();
    while !left.is_empty() && Instant::now() < deadline {
        left.retain(|&pid| {
            // SAFETY: waitpid on one pid, no status wanted.
            let r = unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
            r == 0 || (r < 0 && alive(pid))
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    reap_conmons();
    left.extend(mentioning(&[run, root]));
    left
}

/// Reaps the conmons that exited as children of this process (its
/// subreaper while building): each waited for by pid, named `conmon` and
/// ours, so no other thread's child is taken.
fn reap_conmons() {
    let me = std::process::id().to_string();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some((comm, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
        else {
            continue;
        };
        if comm == "conmon" && rest.split_whitespace().nth(1) == Some(me.as_str()) {
            // SAFETY: waitpid on one pid, no status wanted.
            unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) };
        }
    }
}

/// Removes the (now empty) cgroups `libpod_parent/libpod-<id>` that
/// podman's cgroupfs manager made for the killed containers `ids`, in
/// every hierarchy (podman's own cleanup never ran for them).
fn remove_cgroups(ids: &[String]) {
    let mut bases = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(hier) = fs::read_dir("/sys/fs/cgroup") {
        bases.extend(hier.flatten().map(|e| e.path()));
    }
    for base in bases {
        for id in ids {
            let _ = fs::remove_dir(base.join("libpod_parent").join(format!("libpod-{id}")));
        }
    }
}

/// The leftovers of a build: podman's run root and tmp dir, and the
/// conmons and containers that name it or the storage root.
const LEFTOVERS: Leftovers = Leftovers {
    tag: "dmp.",
    stop: stop_stale,
};

/// Kills what an interrupted build in `dir` with run dir `run` left: the
/// processes that name the run dir or the storage root, and their
/// descendants (a conmon's container names neither); then the cgroups of
/// the containers those conmons ran.
fn stop_stale(dir: &Path, run: &Path) {
    let named = stop(run, &dir.join("storage"), &Crash::default());
    let ids: Vec<String> = named.iter().filter_map(|&p| conmon_container(p)).collect();
    let survivors = kill_all(&named.into_iter().flat_map(tree).collect::<Vec<_>>());
    assert!(
        survivors.is_empty(),
        "stale podman processes {survivors:?} survived SIGKILL"
    );
    remove_cgroups(&ids);
}

/// The container id (`-c <id>`) a conmon `pid` monitors.
fn conmon_container(pid: i32) -> Option<String> {
    let args = cmdline(pid);
    if !args.first()?.ends_with(b"conmon") {
        return None;
    }
    let id = args.windows(2).find(|w| w[0] == b"-c")?[1].clone();
    String::from_utf8(id).ok()
}
