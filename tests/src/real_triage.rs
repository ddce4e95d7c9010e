//! A real dockerd root for the triage commands: a daemon run with
//! `--userns-remap default` (so the root is `<data-root>/<uid>.<gid>`),
//! containers logging with `json-file` (small `max-size`, rotated and
//! compressed) and with `local`, a container that wrote files owned by a
//! non-root container user into a named volume and its rw layer, and a
//! container removed with `docker rm`. `docker logs` (stdout and stderr
//! apart, and with `-t`), `docker inspect`, `docker export` and the remap
//! range are recorded before the daemon stops.
//!
//! Kept apart from [`real`](crate::real) so that it has its own cache key
//! (`/var/cache/docker-mount-tests/real-roots/triage-<hash of this file>/`): changing it does
//! not rebuild the other real roots. Needs root, dockerd, docker and
//! busybox; dockerd creates the `dockremap` user and its `/etc/subuid` and
//! `/etc/subgid` ranges on first use (as it would on any host).

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::real::{
    cached_root, docker_cli, import_args, log_tail, os_args, privileged_available,
    run_capture_bytes as run, stop_dockerd, tar_rootfs, unmount_under, write, Leftovers, BUSYBOX,
    DOCKERD,
};

/// What a container printed, as `docker logs` gave it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogOracle {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// `docker logs -t`, stdout and stderr.
    pub stdout_t: Vec<u8>,
    pub stderr_t: Vec<u8>,
}

/// The built root and its oracles.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TriageRoot {
    /// The cache directory.
    pub dir: PathBuf,
    /// `--data-root` as given to dockerd.
    pub data_root: PathBuf,
    /// The userns-remap root dockerd made in it (`<uid>.<gid>`).
    pub root: PathBuf,
    /// dockremap's first subordinate uid and gid, and the range sizes.
    pub remap_uid: u32,
    pub remap_gid: u32,
    pub remap_count: u32,
    /// `docker inspect` of the containers left (a JSON array).
    pub inspect: Value,
    /// Container name → its logs.
    pub logs: std::collections::BTreeMap<String, LogOracle>,
    /// `docker export` of `c-remap` (container ids, as docker writes them).
    pub export_tar: PathBuf,
    /// `docker volume inspect dm-tvol`'s Mountpoint.
    pub volume_mountpoint: String,
    /// The removed container: its id and rw layer directory (overlay2 id).
    pub removed_id: String,
    pub removed_layer: String,
    pub build_seconds: f64,
}

impl TriageRoot {
    /// A container's id by name.
    pub fn id(&self, name: &str) -> String {
        self.inspect
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|c| c["Name"].as_str() == Some(&format!("/{name}")))
            })
            .and_then(|c| c["Id"].as_str())
            .unwrap_or_else(|| panic!("no container {name}"))
            .to_string()
    }
}

/// The root, built once per process and cached on disk.
pub fn triage_root() -> &'static TriageRoot {
    static ROOT: OnceLock<TriageRoot> = OnceLock::new();
    ROOT.get_or_init(|| {
        let (_, root) = cached_root(
            "triage",
            include_str!("real_triage.rs"),
            privileged_available(),
            &LEFTOVERS,
            build,
        );
        root
    })
}

/// The leftovers of a build: a dockerd's run dir, as [`real`](crate::real)'s.
const LEFTOVERS: Leftovers = Leftovers {
    tag: "dmt.",
    stop: stop_dockerd,
};

struct Daemon {
    child: Option<Child>,
    run: PathBuf,
    data_root: PathBuf,
    sock: String,
    log: PathBuf,
    config: PathBuf,
    scratch: PathBuf,
}

impl Daemon {
    fn start(dest: &Path, data_root: &Path) -> Daemon {
        let run = LEFTOVERS.run_dir(dest);
        let log = dest.join("dockerd.log");
        let logf = File::create(&log).expect("dockerd log");
        let sock = format!("unix://{}/s", run.display());
        let config = dest.join("docker-config");
        let scratch = dest.join("scratch");
        fs::create_dir_all(&config).expect("mkdir docker-config");
        fs::create_dir_all(&scratch).expect("mkdir scratch");
        let child = Command::new(DOCKERD)
            .arg("--data-root")
            .arg(data_root)
            .arg("--exec-root")
            .arg(run.join("x"))
            .arg("--host")
            .arg(&sock)
            .arg("--pidfile")
            .arg(run.join("pid"))
            .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
            .args(["--storage-driver", "overlay2", "--userns-remap", "default"])
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("dup"))
            .stderr(logf)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {DOCKERD}: {e}"));
        let mut d = Daemon {
            child: Some(child),
            run,
            data_root: data_root.to_path_buf(),
            sock,
            log,
            config,
            scratch,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if d.docker_status(["version"]).0 == 0 {
                break;
            }
            let exited = d.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || Instant::now() > deadline {
                panic!("dockerd did not come up:\n{}", log_tail(&d.log));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn docker_status<I, S>(&self, args: I) -> (i32, Vec<u8>, Vec<u8>)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(
            docker_cli(&self.sock, &self.config).args(args),
            300,
            &self.scratch,
        )
    }

    fn docker<I, S>(&self, args: I) -> Vec<u8>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args = os_args(args);
        let (code, out, err) = self.docker_status(&args);
        assert_eq!(
            code,
            0,
            "docker {args:?} failed:\n{}\n{}\n--- dockerd ---\n{}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err),
            log_tail(&self.log)
        );
        out
    }

    fn text<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        String::from_utf8_lossy(&self.docker(args)).into_owned()
    }

    /// Stops dockerd (SIGTERM, then SIGKILL), then whatever it left mounted.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: signalling our own child process.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(60);
            while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Its own containerd, if it outlived it.
        if let Some(pid) = fs::read_to_string(self.run.join("x/containerd/containerd.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if cmdline
                .windows(self.run.as_os_str().len())
                .any(|w| w == self.run.as_os_str().as_encoded_bytes())
            {
                // SAFETY: a process whose command line names our run dir.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        let _ = unmount_under(&[&self.data_root, &self.run]);
        let _ = fs::remove_dir_all(&self.run);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

fn base_rootfs(r: &Path) {
    for d in ["bin", "etc", "tmp", "root", "data"] {
        fs::create_dir_all(r.join(d)).expect("mkdir rootfs");
    }
    fs::copy(BUSYBOX, r.join("bin/busybox")).expect("copy busybox");
    for a in [
        "sh", "echo", "cat", "chown", "mkdir", "sleep", "dd", "tr", "printf", "[", "test", "ls",
    ] {
        std::os::unix::fs::symlink("busybox", r.join("bin").join(a)).expect("applet");
    }
    write(
        &r.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n",
    );
    write(&r.join("etc/group"), "root:x:0:\napp:x:1000:\n");
    fs::set_permissions(r.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod");
}

/// What the logging containers print: interleaved stdout and stderr
/// lines, a 20000-byte line (docker splits it into 16 KiB pieces), and a
/// last line without a newline.
const LOG_SCRIPT: &str = "i=0; while [ $i -lt 60 ]; do echo \"out line $i\"; echo \"err line $i\" >&2; i=$((i+1)); done; \
    dd if=/dev/zero bs=20000 count=1 2>/dev/null | tr '\\0' x; echo; echo 'after the long line'; printf 'no newline at the end'";

fn build(dest: &Path) -> TriageRoot {
    let t0 = Instant::now();
    fs::create_dir_all(dest).expect("mkdir dest");
    let data_root = dest.join("data-root");
    fs::create_dir_all(&data_root).expect("mkdir data root");
    // The remapped root must be able to traverse the path.
    for a in data_root.ancestors() {
        if let Ok(m) = fs::metadata(a) {
            let mode = m.permissions().mode();
            if mode & 0o001 == 0 {
                let _ = fs::set_permissions(a, fs::Permissions::from_mode(mode | 0o001));
            }
        }
    }
    let mut d = Daemon::start(dest, &data_root);
    let rootfs = dest.join("build/rootfs");
    base_rootfs(&rootfs);
    let tar = dest.join("build/base.tar");
    tar_rootfs(&rootfs, &tar, false);
    d.docker(import_args(&tar, "dm-tbase:1"));
    let none = ["--network", "none"];
    let small = ["--log-opt", "max-size=2k", "--log-opt", "max-file=3"];
    let json_args: Vec<&str> = ["run", "--name", "c-json"]
        .into_iter()
        .chain(none)
        .chain(small)
        .chain([
            "--log-opt",
            "compress=true",
            "dm-tbase:1",
            "sh",
            "-c",
            LOG_SCRIPT,
        ])
        .collect();
    d.docker(&json_args);
    let local_args: Vec<&str> = ["run", "--name", "c-local", "--log-driver", "local"]
        .into_iter()
        .chain(none)
        .chain(small)
        .chain(["dm-tbase:1", "sh", "-c", LOG_SCRIPT])
        .collect();
    d.docker(&local_args);
    let remap_script = "echo owned > /owned; chown 1000:1000 /owned; mkdir /appdir; chown 1000:1000 /appdir; \
        echo in-volume > /data/in-volume; chown 1000:1000 /data/in-volume; echo root > /root/by-root";
    d.docker(
        ["run", "--name", "c-remap", "-v", "dm-tvol:/data"]
            .into_iter()
            .chain(none)
            .chain(["dm-tbase:1", "sh", "-c", remap_script]),
    );
    d.docker(
        ["run", "--name", "c-removed"]
            .into_iter()
            .chain(none)
            .chain(["dm-tbase:1", "sh", "-c", "echo secret > /secret"]),
    );
    let removed: Value =
        serde_json::from_slice(&d.docker(["inspect", "c-removed"])).expect("inspect c-removed");
    let removed_id = removed[0]["Id"].as_str().expect("Id").to_string();
    let upper = removed[0]["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .expect("UpperDir")
        .to_string();
    let removed_layer = Path::new(&upper)
        .parent()
        .and_then(|p| p.file_name())
        .expect("overlay2 id")
        .to_string_lossy()
        .into_owned();
    d.docker(["rm", "c-removed"]);
    // Let rotated logs finish compressing.
    std::thread::sleep(Duration::from_secs(2));

    let mut logs = std::collections::BTreeMap::new();
    for name in ["c-json", "c-local"] {
        let (c1, stdout, stderr) = d.docker_status(["logs", name]);
        let (c2, stdout_t, stderr_t) = d.docker_status(["logs", "-t", name]);
        assert!(c1 == 0 && c2 == 0, "docker logs {name} failed");
        logs.insert(
            name.to_string(),
            LogOracle {
                stdout,
                stderr,
                stdout_t,
                stderr_t,
            },
        );
    }
    let ids = d.text(["ps", "-a", "-q", "--no-trunc"]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    let inspect: Value =
        serde_json::from_slice(&d.docker(std::iter::once("inspect").chain(ids.iter().copied())))
            .expect("inspect");
    let export_tar = dest.join("c-remap.tar");
    d.docker([
        OsStr::new("export"),
        OsStr::new("-o"),
        export_tar.as_os_str(),
        OsStr::new("c-remap"),
    ]);
    let vol: Value = serde_json::from_slice(&d.docker(["volume", "inspect", "dm-tvol"]))
        .expect("volume inspect");
    let volume_mountpoint = vol[0]["Mountpoint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    d.stop();

    // The remap range dockerd set up for dockremap.
    let range = |file: &str| -> (u32, u32) {
        let text = fs::read_to_string(file).unwrap_or_default();
        text.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() == 3 && f[0] == "dockremap")
                    .then(|| Some((f[1].parse().ok()?, f[2].parse().ok()?)))?
            })
            .unwrap_or_else(|| panic!("no dockremap range in {file}"))
    };
    let (remap_uid, remap_count) = range("/etc/subuid");
    let (remap_gid, _) = range("/etc/subgid");
    let root = data_root.join(format!("{remap_uid}.{remap_gid}"));
    assert!(
        root.join("containers").is_dir(),
        "no remapped root at {}",
        root.display()
    );
    let meta = TriageRoot {
        dir: dest.to_path_buf(),
        data_root,
        root,
        remap_uid,
        remap_gid,
        remap_count,
        inspect,
        logs,
        export_tar,
        volume_mountpoint,
        removed_id,
        removed_layer,
        build_seconds: t0.elapsed().as_secs_f64(),
    };
    eprintln!("built the real triage root in {:.1} s", meta.build_seconds);
    meta
}
