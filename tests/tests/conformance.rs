//! The driver conformance suite, tier 1: every command on synthetic roots,
//! written once and instantiated per driver (only overlay2 has a synthetic
//! builder so far). Every test hashes the evidence before and after.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use docker_mount_tests::mounts::{assert_read_only_mount, require_root, MountPoint};
use docker_mount_tests::scene::{self, Scene, DEEP_LAYERS};
use docker_mount_tests::{cli, integrity, manifest};
use serde_json::Value;

/// A scene in a fresh temp dir, hashed; the hash is checked on drop.
struct Evidence {
    _dir: tempfile::TempDir,
    scene: Scene,
    before: integrity::Snapshot,
}

impl Evidence {
    fn new(root_name: &str) -> Evidence {
        let dir = tempfile::tempdir().expect("temp dir");
        let scene = scene::build(&dir.path().join(root_name));
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
    /// Takes the damage done to the root as the new "before".
    fn damaged(&mut self) {
        self.before = integrity::snapshot(&self.scene.fixture.root);
    }
    fn id(&self, c: docker_mount_tests::fixture::ContainerRef) -> &str {
        &self.scene.fixture.container(c).id
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

fn by_name<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("{name} not in {list}"))
}

macro_rules! conformance {
    ($driver:ident) => {
        mod $driver {
            use super::*;

            #[test]
            fn list_reports_every_state() {
                let ev = Evidence::new("docker");
                let all = cli::run(ev.root(), &["list", "--all", "--json"]).json();
                assert_eq!(all.as_array().unwrap().len(), 5);
                let web = by_name(&all, "web");
                assert_eq!(web["id"], ev.id(ev.scene.web));
                assert_eq!(web["state"], "running");
                assert_eq!(web["running_at_shutdown"], true);
                assert_eq!(web["driver"], stringify!($driver));
                assert_eq!(web["driver_loaded"], true);
                assert_eq!(web["image"], "small:1");
                assert_eq!(web["command"], "/bin/sh -c sleep 1d");
                assert!(web["note"].is_null() && web["error"].is_null());
                let image_id = &ev.scene.fixture.image(ev.scene.small_image).id;
                assert_eq!(
                    format!("sha256:{}", web["image_id"].as_str().unwrap()),
                    *image_id
                );
                let stopped = by_name(&all, "stopped");
                assert_eq!(stopped["state"], "exited");
                assert_eq!(stopped["exit_code"], 137);
                assert_eq!(stopped["running_at_shutdown"], false);
                assert!(stopped["finished_at"].is_string());
                let created = by_name(&all, "created");
                assert_eq!(created["state"], "created");
                assert!(created["started_at"].is_null());
                let running = cli::run(ev.root(), &["list", "--json"]).json();
                let names: Vec<&str> = running
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["name"].as_str().unwrap())
                    .collect();
                assert_eq!(names.len(), 2, "{names:?}");
                assert!(names.contains(&"web") && names.contains(&"deep"));
                let table = cli::run(ev.root(), &["list", "--all"]);
                for name in ["web", "stopped", "created", "admin", "deep"] {
                    assert!(table.ok().contains(name), "table lacks {name}");
                }
            }

            #[test]
            fn images_lists_tags_layers_and_untagged() {
                let ev = Evidence::new("docker");
                let images = cli::run(ev.root(), &["images", "--json"]).json();
                let images = images.as_array().unwrap();
                assert_eq!(images.len(), 3);
                let fx = &ev.scene.fixture;
                let find = |r| {
                    let id = fx.image(r).id.trim_start_matches("sha256:").to_string();
                    images
                        .iter()
                        .find(|i| i["id"] == id.as_str())
                        .unwrap_or_else(|| panic!("{id} missing"))
                        .clone()
                };
                let small = find(ev.scene.small_image);
                let mut tags: Vec<&str> = small["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap())
                    .collect();
                tags.sort();
                assert_eq!(tags, ["small:1", "small:latest"]);
                assert_eq!(small["layers"], 3);
                let want_size: u64 = fx
                    .image(ev.scene.small_image)
                    .layers
                    .iter()
                    .map(|l| fx.layer(*l).size)
                    .sum();
                assert_eq!(small["size"], want_size);
                assert_eq!(find(ev.scene.deep_image)["layers"], DEEP_LAYERS);
                assert!(find(ev.scene.untagged_image)["tags"]
                    .as_array()
                    .unwrap()
                    .is_empty());
                assert!(small["warnings"].as_array().unwrap().is_empty());
            }

            #[test]
            fn info_shows_stack_and_host_settings() {
                let ev = Evidence::new("docker");
                let fx = &ev.scene.fixture;
                let info = cli::run(ev.root(), &["info", "web", "--json"]).json();
                let layers = info["layers"].as_array().unwrap();
                let c = fx.container(ev.scene.web);
                assert_eq!(layers.len(), 2 + 3);
                assert_eq!(layers[0]["role"], "rw");
                assert_eq!(layers[0]["driver_id"], c.mount_id.as_str());
                assert_eq!(layers[1]["role"], "init");
                assert_eq!(layers[1]["driver_id"], c.init_id.as_str());
                // Image layers top first, with layerdb's chain and cache ids.
                let image = fx.image(ev.scene.small_image);
                for (got, want) in layers[2..].iter().zip(image.layers.iter().rev()) {
                    let l = fx.layer(*want);
                    assert_eq!(got["role"], "image");
                    assert_eq!(got["chain_id"], l.chain_id.trim_start_matches("sha256:"));
                    assert_eq!(got["driver_id"], l.cache_id.as_str());
                    assert!(got["path"]
                        .as_str()
                        .unwrap()
                        .ends_with(&format!("{}/diff", l.cache_id)));
                }
                assert!(
                    info["warnings"].as_array().unwrap().is_empty(),
                    "{}",
                    info["warnings"]
                );
                assert_eq!(info["host"]["ports"][0], "80/tcp -> :8080");
                assert_eq!(info["mounts"][0]["destination"], "/data");
                let by_prefix = cli::run(ev.root(), &["info", &c.id[..10], "--json"]).json();
                assert_eq!(by_prefix["name"], "web");
                let admin = cli::run(ev.root(), &["info", "admin", "--json"]).json();
                assert_eq!(admin["host"]["privileged"], true);
                assert_eq!(admin["host"]["pid_mode"], "host");
                assert_eq!(admin["host"]["cap_add"][0], "SYS_ADMIN");
                assert!(admin["host"]["binds"].to_string().contains("docker.sock"));
                let text = cli::run(ev.root(), &["info", "web"]);
                assert!(text.ok().contains("was running when the host went down"));
                let missing = cli::run(ev.root(), &["info", "nosuch"]);
                assert_ne!(missing.status, 0);
                assert!(
                    missing.stderr.contains("no container \"nosuch\""),
                    "{}",
                    missing.stderr
                );
            }

            #[test]
            fn mount_shows_the_merged_view_read_only() {
                if !require_root() {
                    return;
                }
                let ev = Evidence::new("docker");
                for api in ["new", "legacy"] {
                    let mnt = MountPoint::new();
                    let m = mnt.path();
                    cli::run(
                        ev.root(),
                        &["mount", "web", m.to_str().unwrap(), "--mount-api", api],
                    )
                    .ok();
                    assert_read_only_mount(m);
                    // Whiteouts and opaque directories of every layer applied.
                    assert!(!m.join("etc/passwd").exists(), "image whiteout ignored");
                    assert!(!m.join("etc/keep").exists(), "container whiteout ignored");
                    assert!(
                        !m.join("var/d/old").exists() && !m.join("var/d/olddir").exists(),
                        "opaque dir ignored"
                    );
                    assert_eq!(
                        std::fs::read(m.join("var/d/new")).unwrap(),
                        b"changed by the container\n"
                    );
                    assert_eq!(
                        std::fs::read(m.join("root/added")).unwrap(),
                        b"by the container\n"
                    );
                    assert!(m.join(".dockerenv").exists(), "init layer missing");
                    assert!(!m.join("gone").exists() && m.join("opaque/kept").exists());
                    // Awkward entries come through as they are.
                    let latin1 = m.join(std::ffi::OsStr::from_bytes(b"names/latin1-\xe9t\xe9"));
                    assert_eq!(std::fs::read(latin1).unwrap(), b"not utf-8\n");
                    assert_eq!(
                        std::fs::read_link(m.join("links/escape")).unwrap(),
                        Path::new("../../../../etc/shadow")
                    );
                    let setuid = std::fs::symlink_metadata(m.join("bin/setuid")).unwrap();
                    assert_eq!(setuid.mode() & 0o7777, 0o4755);
                    let odd = std::fs::symlink_metadata(m.join("home/odd/owned")).unwrap();
                    assert_eq!((odd.uid(), odd.gid()), (12345, 54321));
                    assert!(std::fs::symlink_metadata(m.join("run/fifo"))
                        .unwrap()
                        .file_type()
                        .is_fifo());
                    let first = std::fs::symlink_metadata(m.join("hardlinks/first")).unwrap();
                    let second = std::fs::symlink_metadata(m.join("hardlinks/second")).unwrap();
                    assert_eq!(first.ino(), second.ino(), "hard links split");
                    // Read-only: nothing can be created.
                    assert!(std::fs::write(m.join("root/new"), b"x").is_err());
                    cli::run(ev.root(), &["umount", m.to_str().unwrap()]).ok();
                    assert!(docker_mount_tests::mounts::mount_options(m).is_none());
                }
            }

            #[test]
            fn deep_image_mounts_at_a_long_path() {
                if !require_root() {
                    return;
                }
                // A root path of 200+ characters: absolute lowerdirs could not fit a page.
                let long = format!("{}/{}/docker", "p".repeat(120), "q".repeat(90));
                let ev = Evidence::new(&long);
                assert!(ev.root().as_os_str().len() > 200);
                for (args, layers) in [
                    (vec!["deep"], DEEP_LAYERS + 2),
                    (vec!["--image", "deep:150"], DEEP_LAYERS),
                ] {
                    for api in ["new", "legacy"] {
                        let mnt = MountPoint::new();
                        let dir = mnt.path().to_str().unwrap();
                        let mut cmd = vec!["mount", "--json", "--mount-api", api];
                        cmd.extend(&args);
                        cmd.push(dir);
                        let report = cli::run(ev.root(), &cmd).json();
                        assert_eq!(report["layers"], layers);
                        assert_read_only_mount(mnt.path());
                        for i in 0..DEEP_LAYERS {
                            let f = mnt.path().join(format!("deep/layer-{i:04}"));
                            assert_eq!(
                                std::fs::read_to_string(&f).unwrap(),
                                format!("layer {i}\n")
                            );
                        }
                        assert_eq!(
                            mnt.path().join("deep/by-container").exists(),
                            args[0] == "deep"
                        );
                        cli::run(ev.root(), &["umount", dir]).ok();
                    }
                }
            }

            #[test]
            fn export_equals_the_kernel_mount() {
                if !require_root() {
                    return;
                }
                let ev = Evidence::new("docker");
                let out = tempfile::tempdir().unwrap();
                for name in ["web", "deep", "admin"] {
                    let tar = out.path().join(format!("{name}.tar"));
                    cli::run(ev.root(), &["export", name, "-o", tar.to_str().unwrap()]).ok();
                    let mnt = MountPoint::new();
                    cli::run(ev.root(), &["mount", name, mnt.path().to_str().unwrap()]).ok();
                    let diffs = manifest::compare(
                        &manifest::from_dir(mnt.path()),
                        &manifest::from_tar(&tar),
                        &[],
                    );
                    assert!(
                        diffs.is_empty(),
                        "{name}: userspace export differs from the kernel's view:\n{}",
                        diffs.join("\n")
                    );
                }
                let image_tar = out.path().join("image.tar");
                cli::run(
                    ev.root(),
                    &[
                        "export",
                        "--image",
                        "small:1",
                        "-o",
                        image_tar.to_str().unwrap(),
                    ],
                )
                .ok();
                let image = manifest::from_tar(&image_tar);
                assert!(image.get(b"var/d/new").is_some() && image.get(b"etc/passwd").is_none());
                assert!(
                    image.get(b".dockerenv").is_none(),
                    "an image has no init layer"
                );
                // Writing the export into the evidence is refused.
                let inside = ev.root().join("x.tar");
                let refused = cli::run(
                    ev.root(),
                    &["export", "web", "-o", inside.to_str().unwrap()],
                );
                assert_ne!(refused.status, 0);
                assert!(!inside.exists());
            }

            #[test]
            fn diff_reports_what_the_container_changed() {
                let ev = Evidence::new("docker");
                let web = cli::run(ev.root(), &["diff", "web"]);
                assert_eq!(
                    web.ok(),
                    "C /etc\nD /etc/keep\nA /root\nA /root/added\nC /var\nC /var/d\nC /var/d/new\n"
                );
                let json = cli::run(ev.root(), &["diff", "deep", "--json"]).json();
                let deep_top = ev
                    .scene
                    .fixture
                    .image(ev.scene.deep_image)
                    .layers
                    .last()
                    .copied()
                    .unwrap();
                assert_eq!(json[0]["kind"], "C");
                assert_eq!(json[0]["path"], "/deep");
                assert_eq!(
                    json[0]["previous_layer"],
                    ev.scene.fixture.layer(deep_top).cache_id.as_str()
                );
                assert_eq!(json[1]["kind"], "A");
                assert!(json[1]["previous_layer"].is_null());
                let created = cli::run(ev.root(), &["diff", "created"]);
                assert_eq!(created.ok(), "", "an untouched container has no changes");
            }

            #[test]
            fn broken_containers_are_reported_and_the_rest_still_list() {
                let mut ev = Evidence::new("docker");
                let fx = &ev.scene.fixture;
                fx.remove_mount_id(ev.scene.stopped);
                fx.truncate_config(ev.scene.created);
                fx.set_mount_id(ev.scene.admin, "../../etc");
                ev.damaged();
                let list = cli::run(ev.root(), &["list", "--all", "--json"]);
                // A partial result: exit status 3.
                let all = list.partial_json();
                assert_eq!(
                    all.as_array().unwrap().len(),
                    5,
                    "every container still listed"
                );
                let broken = all
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["id"] == ev.id(ev.scene.created))
                    .unwrap();
                assert!(
                    broken["error"].as_str().unwrap().contains("config.v2.json"),
                    "{broken}"
                );
                assert!(list.stderr.contains("config.v2.json"), "{}", list.stderr);
                assert_eq!(by_name(&all, "web")["state"], "running");

                let no_mount_id = cli::run(ev.root(), &["info", "stopped", "--json"]).json();
                let err = no_mount_id["layer_error"].as_str().unwrap();
                assert!(
                    err.contains(&format!(
                        "layerdb/mounts/{}/mount-id",
                        ev.id(ev.scene.stopped)
                    )),
                    "{err}"
                );
                let escape = cli::run(ev.root(), &["info", "admin", "--json"]).json();
                let err = escape["layer_error"].as_str().unwrap();
                assert!(
                    err.contains("mount-id") && err.contains("not a safe layer id"),
                    "{err}"
                );
                let truncated = cli::run(ev.root(), &["info", ev.id(ev.scene.created)]);
                assert_ne!(truncated.status, 0);
                assert!(
                    truncated.stderr.contains("config.v2.json"),
                    "{}",
                    truncated.stderr
                );
                let mount = cli::run(ev.root(), &["mount", "admin", "/nonexistent-dm-target"]);
                assert_ne!(mount.status, 0);
                assert!(!mount.stderr.contains("panicked"), "{}", mount.stderr);
            }

            #[test]
            fn crafted_layer_chains_are_errors_not_hangs() {
                let mut ev = Evidence::new("docker");
                let fx = &ev.scene.fixture;
                let small = fx.image(ev.scene.small_image).layers.clone();
                let deep = fx.image(ev.scene.deep_image).layers.clone();
                // A cycle in the deep image's chain, a cache-id escaping overlay2/.
                fx.make_parent_cycle(deep[10], deep[11]);
                let looping =
                    docker_mount_tests::fixture::hex_of(&fx.layer(deep[10]).chain_id).to_string();
                fx.set_cache_id(small[0], "../../etc");
                ev.damaged();
                let cycle = cli::run(ev.root(), &["info", "deep", "--json"]).json();
                assert!(
                    cycle["layer_error"].as_str().unwrap().contains("loops"),
                    "{}",
                    cycle["layer_error"]
                );
                let web = cli::run(ev.root(), &["info", "web", "--json"]).json();
                let err = web["layer_error"].as_str().unwrap();
                assert!(
                    err.contains("cache-id") && err.contains("not a safe layer id"),
                    "{err}"
                );
                // images checks each layer of the config's chain: the
                // parent file of the lower one now names the upper one.
                let images = cli::run(ev.root(), &["images", "--json"]);
                assert!(
                    images
                        .stderr
                        .lines()
                        .any(|l| l.contains("chain id mismatch") && l.contains(&looping)),
                    "{}",
                    images.stderr
                );
                assert_eq!(
                    images.json().as_array().unwrap().len(),
                    3,
                    "broken images still listed"
                );

                // An edited parent: the chain id no longer matches its directory.
                let mut ev = Evidence::new("docker");
                let fx = &ev.scene.fixture;
                let deep = fx.image(ev.scene.deep_image).layers.clone();
                fx.set_layer_parent(deep[100], Some(&fx.layer(deep[50]).chain_id));
                ev.damaged();
                let info = cli::run(ev.root(), &["info", "deep", "--json"]).json();
                let warnings = info["warnings"].to_string();
                assert!(warnings.contains("chain id mismatch"), "{warnings}");
                let images = cli::run(ev.root(), &["images", "--json"]);
                assert!(
                    images.stderr.contains("chain id mismatch"),
                    "{}",
                    images.stderr
                );
            }
        }
    };
}

conformance!(overlay2);
