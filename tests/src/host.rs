//! A synthetic host filesystem tree, as an analyst finds it on a seized
//! disk image: docker's configuration exposing the API on tcp without TLS in
//! three places (daemon.json, `/etc/default/docker`, a systemd drop-in),
//! the system root (the sample [`scene`](crate::scene), with its privileged
//! `admin` container binding the docker socket) at `/srv/docker` and reached
//! from `/var/lib/docker` through an absolute symlink, a userns-remap
//! sub-root `100000.100000` in it, a rootless root in alice's home, a
//! configured root that is not in the image, and a symlink that would
//! lead out of the host tree if followed on the analyst's system.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use crate::fixture::{ContainerOpts, ContainerState, Fixture, ImageOpts, Node, RootBuilder};
use crate::scene::{self, Scene};

/// First host id of the userns-remap range (`dockremap:100000:65536`).
pub const REMAP_BASE: u32 = 100_000;
/// alice's uid on the host, and the first id of her subordinate range.
pub const ALICE_UID: u32 = 1000;
pub const ALICE_SUB_BASE: u32 = 165_536;

/// The host tree and what is in it.
pub struct HostTree {
    /// The mount point of the host's `/`.
    pub host: PathBuf,
    /// `<host>/srv/docker`, the system daemon's root.
    pub scene: Scene,
    /// `<host>/srv/docker/100000.100000`.
    pub remap: Fixture,
    /// `<host>/home/alice/.local/share/docker`.
    pub rootless: Fixture,
    /// A docker root outside the host tree that a hostile symlink points at.
    pub outside: PathBuf,
}

impl HostTree {
    pub fn system_root(&self) -> &Path {
        &self.scene.fixture.root
    }
}

fn write(p: &Path, content: &str) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    fs::write(p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn link(target: &str, at: &Path) {
    if let Some(d) = at.parent() {
        fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    symlink(target, at).unwrap_or_else(|e| panic!("symlink {}: {e}", at.display()));
}

/// The daemon.json of the seized host.
pub const DAEMON_JSON: &str = r#"{
  "data-root": "/srv/docker",
  "hosts": ["fd://", "tcp://0.0.0.0:2375"],
  "storage-driver": "overlay2",
  "log-driver": "json-file"
}
"#;

/// `/etc/default/docker`.
pub const DEFAULT_DOCKER: &str = "# Docker Upstart and SysVinit configuration file\n\
# DOCKER_OPTS=\"--dns 8.8.8.8\"\n\
DOCKER_OPTS=\"-H tcp://0.0.0.0:4243 --insecure-registry 10.0.0.5:5000\"\n";

/// Debian's unit, which passes `$DOCKER_OPTS`.
pub const UNIT: &str = "[Unit]\nDescription=Docker Application Container Engine\n\n[Service]\n\
Type=notify\nEnvironmentFile=-/etc/default/docker\n\
ExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS\nExecReload=/bin/kill -s HUP $MAINPID\n\n\
[Install]\nWantedBy=multi-user.target\n";

/// An operator's drop-in exposing the API.
pub const DROP_IN: &str = "[Service]\nExecStart=\n\
ExecStart=/usr/bin/dockerd -H fd:// \\\n    -H tcp://0.0.0.0:2376 --containerd=/run/containerd/containerd.sock\n";

/// Builds the host tree at `dir/host` (and the outside root at `dir/outside`).
pub fn build(dir: &Path) -> HostTree {
    let host = dir.join("host");
    for d in ["usr/bin", "var/log", "tmp", "root"] {
        fs::create_dir_all(host.join(d)).expect("mkdir host skeleton");
    }
    write(&host.join("etc/docker/daemon.json"), DAEMON_JSON);
    write(&host.join("etc/default/docker"), DEFAULT_DOCKER);
    write(&host.join("lib/systemd/system/docker.service"), UNIT);
    write(
        &host.join("etc/systemd/system/docker.service.d/override.conf"),
        DROP_IN,
    );
    // A data root named by a config but on a filesystem not in the image.
    write(
        &host.join("etc/sysconfig/docker"),
        "OPTIONS='--data-root /mnt/elsewhere/docker'\n",
    );
    write(
        &host.join("etc/passwd"),
        &format!(
            "root:x:0:0:root:/root:/bin/bash\ndockremap:x:999:999::/home/dockremap:/bin/false\n\
             alice:x:{ALICE_UID}:{ALICE_UID}::/home/alice:/bin/bash\n"
        ),
    );
    let sub = format!("dockremap:{REMAP_BASE}:65536\nalice:{ALICE_SUB_BASE}:65536\n");
    write(&host.join("etc/subuid"), &sub);
    write(&host.join("etc/subgid"), &sub);

    let scene = scene::build(&host.join("srv/docker"));
    link("/srv/docker", &host.join("var/lib/docker"));

    // userns-remap: every id on disk is the container's plus 100000.
    let r = REMAP_BASE;
    let mut b = RootBuilder::new(&host.join("srv/docker/100000.100000"));
    let base = b.layer(&[
        Node::dir("etc").owner(r, r),
        Node::file(
            "etc/passwd",
            b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n",
        )
        .owner(r, r),
        Node::dir("app").owner(r + 1000, r + 1000),
        Node::file("app/run.sh", b"#!/bin/sh\n")
            .mode(0o755)
            .owner(r + 1000, r + 1000),
    ]);
    let img = b.image(&["remapped:1"], base, ImageOpts::default());
    b.container(
        "remapped",
        img,
        ContainerOpts {
            state: ContainerState::Exited(0),
            rw: vec![
                Node::file("app/out.log", b"written by uid 1000\n").owner(r + 1000, r + 1000),
                Node::file("root/.ash_history", b"id\n").owner(r, r),
            ],
            user: "1000:1000".into(),
            ..ContainerOpts::default()
        },
    );
    let remap = b.finish();

    // Rootless: container root is alice, the rest her subordinate range.
    let mut b = RootBuilder::new(&host.join("home/alice/.local/share/docker"));
    let base = b.layer(&[Node::file("hello", b"from alice\n").owner(ALICE_UID, ALICE_UID)]);
    let img = b.image(&["alice/tool:1"], base, ImageOpts::default());
    b.container(
        "alice-tool",
        img,
        ContainerOpts {
            rw: vec![Node::file("made-by-1", b"x").owner(ALICE_SUB_BASE, ALICE_SUB_BASE)],
            ..ContainerOpts::default()
        },
    );
    let rootless = b.finish();

    // A docker root outside the host tree, and a home whose rootless root
    // points at it relatively (escaping the tree) or absolutely.
    let outside = dir.join("outside");
    fs::create_dir_all(outside.join("containers")).expect("mkdir outside root");
    link(
        "../../../../../outside",
        &host.join("home/mallory/.local/share/docker"),
    );
    write(
        &host.join("home/mallory/.config/docker/daemon.json"),
        r#"{"data-root": "/../../outside"}"#,
    );

    HostTree {
        host,
        scene,
        remap,
        rootless,
        outside,
    }
}
