//! Docker roots made by a real dockerd 26.1 (Debian trixie's docker.io),
//! run in a chroot view of the trixie tree ([`trixie`](crate::trixie)):
//! one with the `overlay2` storage driver, one with the containerd image
//! store (`"features": {"containerd-snapshotter": true}`: dockerd starts
//! its own containerd, whose root is `<data-root>/containerd/daemon`, and
//! keeps layers as overlayfs snapshots in namespace `moby`).
//!
//! The scenario is the 20.10 tier's ([`real::scenario`]: awkward image
//! built with RUN steps by the classic builder, a deep image, containers
//! exited, created, stopped, running and crashed), plus a renamed
//! container and containers logging to `json-file` and `local`. The
//! oracles of [`real::oracles`] and `docker images` (with and without
//! `--all`) and `docker logs` are taken while dockerd is alive; then it is
//! killed with SIGKILL.
//!
//! The data root lies in the cache dir,
//! `/var/cache/docker-mount-tests/docker26-<variant>-<hash>/`, which the
//! view shows at the same path: it has one path inside and outside. The
//! hash covers this file, `real.rs` (the scenario) and the tree's recipe.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::real::{
    cached_root_in, from_meta, long_data_root, oracles, read_json_value, require, scenario,
    stop_dockerd, write, Daemon, Leftovers, Meta, Oracles, RealRoot,
};
use crate::trixie::{self, Chroot};

/// Layers of `dm-deep:1` here: as deep as dockerd allows (the containerd
/// store's chain doubles it: each COPY step commits onto an init layer).
pub const DEEP_LAYERS: usize = crate::real::DEEP_LAYERS;

/// The two kinds of docker 26 root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// `--storage-driver overlay2`: docker's own layer store.
    Overlay2,
    /// The containerd image store (overlayfs snapshotter).
    Containerd,
}

impl Store {
    /// The cache key's prefix and the name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Store::Overlay2 => "docker26-overlay2",
            Store::Containerd => "docker26-containerd",
        }
    }

    /// The storage driver docker writes into config.v2.json.
    pub fn driver(self) -> &'static str {
        match self {
            Store::Overlay2 => "overlay2",
            Store::Containerd => "overlayfs",
        }
    }
}

/// `docker logs` of one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogOracle {
    pub name: String,
    pub id: String,
    pub stdout: String,
    pub stderr: String,
}

/// A crashed docker 26 root with its oracles.
#[derive(Debug, Clone)]
pub struct Docker26Root {
    pub store: Store,
    /// What the 20.10 tier records (containers, exports, diffs, ps,
    /// inspect, image inspect).
    pub real: RealRoot,
    /// `docker images --no-trunc --format '{{json .}}'`.
    pub images_ls: Vec<Value>,
    /// The same with `--all`.
    pub images_ls_all: Vec<Value>,
    /// `docker logs` of every container.
    pub logs: Vec<LogOracle>,
    /// `docker version`'s server version.
    pub server_version: String,
    /// The amd64 manifest of `dm-multi:1`, whose target is an index
    /// (containerd store only).
    pub multi_manifest: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Meta26 {
    base: Meta,
    images_ls: Vec<Value>,
    images_ls_all: Vec<Value>,
    logs: Vec<LogOracle>,
    server_version: String,
    multi_manifest: Option<String>,
}

/// Whether docker 26 roots can be built or used here.
pub fn available() -> Result<(), String> {
    trixie::available()
}

/// True if the docker 26 tests can run; otherwise panics under `CI=true`,
/// or prints why and returns false.
pub fn require_docker26() -> bool {
    require("privileged", available())
}

/// The overlay2 root, built once per machine (cached) and process.
pub fn overlay2_root() -> &'static Docker26Root {
    static ROOT: OnceLock<Docker26Root> = OnceLock::new();
    ROOT.get_or_init(|| cached(Store::Overlay2))
}

/// The containerd image store root, built once per machine and process.
pub fn containerd_root() -> &'static Docker26Root {
    static ROOT: OnceLock<Docker26Root> = OnceLock::new();
    ROOT.get_or_init(|| cached(Store::Containerd))
}

/// The root of `store`.
pub fn root(store: Store) -> &'static Docker26Root {
    match store {
        Store::Overlay2 => overlay2_root(),
        Store::Containerd => containerd_root(),
    }
}

const LEFTOVERS: Leftovers = Leftovers {
    tag: "dm26.",
    stop: stop_dockerd,
};

fn cached(store: Store) -> Docker26Root {
    let source = format!(
        "{}{}{}",
        include_str!("real.rs"),
        include_str!("real_docker26.rs"),
        trixie::recipe()
    );
    let (dir, meta): (PathBuf, Meta26) = cached_root_in(
        Path::new(trixie::CACHE),
        store.name(),
        &source,
        available(),
        &LEFTOVERS,
        |dest| build(store, dest),
    );
    Docker26Root {
        store,
        real: from_meta(&dir, meta.base),
        images_ls: meta.images_ls,
        images_ls_all: meta.images_ls_all,
        logs: meta.logs,
        server_version: meta.server_version,
        multi_manifest: meta.multi_manifest,
    }
}

/// One JSON value per non-empty line.
fn json_lines(out: &str, what: &str) -> Vec<Value> {
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what} line {l:?}: {e}")))
        .collect()
}

fn build(store: Store, dest: &Path) -> Meta26 {
    let t0 = Instant::now();
    let tree = trixie::tree().unwrap_or_else(|e| panic!("{e}"));
    let view = Chroot::enter().unwrap_or_else(|e| panic!("{e}"));
    let root = long_data_root(dest);
    fs::create_dir_all(&root).unwrap_or_else(|e| panic!("mkdir {}: {e}", root.display()));
    let config = dest.join("daemon.json");
    let args: Vec<String> = match store {
        Store::Overlay2 => {
            write(&config, "{}\n");
            vec!["--storage-driver".into(), "overlay2".into()]
        }
        Store::Containerd => {
            write(
                &config,
                "{\"features\": {\"containerd-snapshotter\": true}}\n",
            );
            Vec::new()
        }
    };
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    let config_arg = config.to_str().expect("UTF-8 cache path").to_string();
    args.extend(["--config-file", &config_arg]);
    let mut d = Daemon::start(&LEFTOVERS, Some(&view), &root, dest, &args);
    let server_version = d
        .docker(["version", "--format", "{{.Server.Version}}"])
        .trim()
        .to_string();
    let busybox = tree.join("bin/busybox");
    scenario(&d, dest, &busybox, DEEP_LAYERS);

    // A renamed container, and containers logging with both drivers.
    let none = ["--network", "none"];
    d.docker(
        ["create", "--name", "c-before-rename"]
            .iter()
            .chain(&none)
            .chain(&["dm-awkward:1", "sh"]),
    );
    d.docker(["rename", "c-before-rename", "c-renamed"]);
    let chatter = "echo out-1; echo err-1 >&2; printf 'no newline'; echo; \
        printf 'tab\\there\\n'; echo err-2 >&2; echo out-last";
    for (name, driver) in [("c-log-json", "json-file"), ("c-log-local", "local")] {
        d.docker(
            ["run", "--name", name, "--log-driver", driver]
                .iter()
                .chain(&none)
                .chain(&["dm-base:latest", "sh", "-c", chatter]),
        );
    }

    let multi_manifest = (store == Store::Containerd).then(|| multi_platform_image(&d, dest));

    let Oracles {
        ps,
        inspect,
        images,
        containers,
    } = oracles(&d, dest);
    let images_ls = json_lines(
        &d.docker(["images", "--no-trunc", "--format", "{{json .}}"]),
        "docker images",
    );
    let images_ls_all = json_lines(
        &d.docker(["images", "--all", "--no-trunc", "--format", "{{json .}}"]),
        "docker images --all",
    );
    let logs = containers
        .iter()
        .map(|c| {
            let (code, stdout, stderr) = d.docker_status(["logs", c.id.as_str()], 60);
            assert_eq!(code, 0, "docker logs {}: {stderr}", c.name);
            LogOracle {
                name: c.name.clone(),
                id: c.id.clone(),
                stdout,
                stderr,
            }
        })
        .collect();

    d.crash();
    drop(view);
    for c in &containers {
        let cfg = read_json_value(&root.join("containers").join(&c.id).join("config.v2.json"));
        assert_eq!(
            cfg["State"]["Running"].as_bool().unwrap_or(false),
            c.running_at_crash,
            "{}: State.Running on disk after the crash differs from before it",
            c.name
        );
    }
    assert!(
        containers.iter().filter(|c| c.running_at_crash).count() >= 3,
        "expected c-running, c-deep and c-mounts running at the crash"
    );
    let build_seconds = t0.elapsed().as_secs_f64();
    eprintln!(
        "built the {} root (dockerd {server_version}) in {build_seconds:.1} s at {}",
        store.name(),
        root.display()
    );
    Meta26 {
        base: Meta {
            driver: store.driver().to_string(),
            root: root
                .strip_prefix(dest)
                .expect("data root under dest")
                .to_path_buf(),
            containers,
            inspect,
            ps,
            images,
            build_seconds,
            deep_layers: DEEP_LAYERS,
            image: None,
            image_sha256: None,
        },
        images_ls,
        images_ls_all,
        logs,
        server_version,
        multi_manifest,
    }
}

/// `dm-multi:1`, an image whose target is an index of two platforms, as
/// pulled images are: `docker load` of an OCI layout whose index lists an
/// arm64 manifest that is not there and `dm-base`'s manifest as amd64
/// (what a host keeps of a multi-platform image it pulled); then
/// `c-multi` runs it. Returns the amd64 manifest's digest.
fn multi_platform_image(d: &Daemon, dest: &Path) -> String {
    use sha2::{Digest, Sha256};
    let b = dest.join("build");
    let saved = b.join("save.tar");
    d.docker([
        "save".as_ref(),
        "dm-base:latest".as_ref(),
        "-o".as_ref(),
        saved.as_os_str(),
    ]);
    let layout = b.join("multi");
    fs::create_dir_all(&layout).unwrap_or_else(|e| panic!("mkdir {}: {e}", layout.display()));
    crate::real::run_ok(
        std::process::Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-xf")
            .arg(&saved),
        120,
    );
    let index = read_json_value(&layout.join("index.json"));
    let amd64 = index["manifests"][0].clone();
    let manifest = amd64["digest"]
        .as_str()
        .expect("saved manifest digest")
        .to_string();
    let absent = format!("sha256:{}", hex::encode(Sha256::digest(b"no arm64 here")));
    let inner = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": absent,
             "size": amd64["size"], "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest,
             "size": amd64["size"], "platform": {"architecture": "amd64", "os": "linux"}},
        ],
    });
    let inner = serde_json::to_vec(&inner).expect("index json");
    let inner_digest = hex::encode(Sha256::digest(&inner));
    write(&layout.join("blobs/sha256").join(&inner_digest), &inner);
    let top = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{inner_digest}"),
            "size": inner.len(),
            "annotations": {
                "io.containerd.image.name": "docker.io/library/dm-multi:1",
                "org.opencontainers.image.ref.name": "1",
            },
        }],
    });
    write(
        &layout.join("index.json"),
        serde_json::to_vec(&top).expect("json"),
    );
    let _ = fs::remove_file(layout.join("manifest.json"));
    let tar = b.join("multi.tar");
    crate::real::run_ok(
        std::process::Command::new("tar")
            .arg("-C")
            .arg(&layout)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
        120,
    );
    d.docker(["load".as_ref(), "-i".as_ref(), tar.as_os_str()]);
    d.docker([
        "run",
        "--name",
        "c-multi",
        "--network",
        "none",
        "dm-multi:1",
        "sh",
        "-c",
        "echo multi > /multi-file",
    ]);
    manifest
}
