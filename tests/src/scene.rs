//! A ready-made synthetic root that exercises every command: the demo root
//! of `cargo xtask demo` and the base of the conformance suite.

use std::path::Path;

use crate::fixture::{
    awkward_layer, ContainerOpts, ContainerRef, ContainerState, Fixture, ImageOpts, ImageRef, Node,
    RootBuilder, Volume,
};

/// The sample root and the handles tests need.
pub struct Scene {
    pub fixture: Fixture,
    /// Running at shutdown; changed files, deleted `/etc/keep`.
    pub web: ContainerRef,
    /// Exited with 137.
    pub stopped: ContainerRef,
    /// Created, never started.
    pub created: ContainerRef,
    /// Privileged, host namespaces, the docker socket bound in: a bad sign.
    pub admin: ContainerRef,
    /// On the 150-layer image.
    pub deep: ContainerRef,
    pub small_image: ImageRef,
    pub deep_image: ImageRef,
    /// Built but never tagged.
    pub untagged_image: ImageRef,
}

/// Layers of the deep image: more than docker's own 125, and enough to
/// overflow a one-page mount option string with absolute paths.
pub const DEEP_LAYERS: usize = 150;

/// Builds the scene at `dir` (which may be a long path).
pub fn build(dir: &Path) -> Scene {
    let mut b = RootBuilder::new(dir);
    let base = b.layer(&[
        Node::file("bin/sh", b"#!fake shell\n").mode(0o755),
        Node::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
        Node::file("etc/keep", b"base\n"),
        Node::file("var/d/old", b"old\n"),
        Node::dir("var/d/olddir"),
    ]);
    let second = b.layer_on(
        base,
        &[
            Node::whiteout("etc/passwd"),
            Node::opaque("var/d"),
            Node::file("var/d/new", b"new\n"),
        ],
    );
    let third = b.layer_on(second, &awkward_layer());
    let small_image = b.image(&["small:1", "small:latest"], third, ImageOpts::default());
    let untagged_image = b.image(&[], second, ImageOpts::default());
    let deep_image = b.deep_image(&["deep:150"], DEEP_LAYERS);
    let web = b.container(
        "web",
        small_image,
        ContainerOpts {
            rw: vec![
                Node::file("root/added", b"by the container\n"),
                Node::file("var/d/new", b"changed by the container\n"),
                Node::whiteout("etc/keep"),
            ],
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), "sleep 1d".into()]),
            volumes: vec![Volume {
                name: "data".into(),
                destination: "/data".into(),
                files: vec![Node::file("db", b"x")],
            }],
            ports: vec![("80/tcp".into(), "8080".into())],
            ..ContainerOpts::default()
        },
    );
    let stopped = b.container(
        "stopped",
        small_image,
        ContainerOpts {
            state: ContainerState::Exited(137),
            ..ContainerOpts::default()
        },
    );
    let created = b.container(
        "created",
        small_image,
        ContainerOpts {
            state: ContainerState::Created,
            ..ContainerOpts::default()
        },
    );
    let admin = b.container(
        "admin",
        small_image,
        ContainerOpts {
            state: ContainerState::Exited(0),
            privileged: true,
            cap_add: vec!["SYS_ADMIN".into()],
            pid_mode: "host".into(),
            network_mode: "host".into(),
            binds: vec![
                "/var/run/docker.sock:/var/run/docker.sock".into(),
                "/:/host:ro".into(),
            ],
            ..ContainerOpts::default()
        },
    );
    let deep = b.container(
        "deep",
        deep_image,
        ContainerOpts {
            rw: vec![Node::file("deep/by-container", b"top\n")],
            ..ContainerOpts::default()
        },
    );
    Scene {
        fixture: b.finish(),
        web,
        stopped,
        created,
        admin,
        deep,
        small_image,
        deep_image,
        untagged_image,
    }
}
