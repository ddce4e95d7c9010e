//! The plugin loader against bad plugins: a wrong ABI version, a root
//! module of an older ABI, files that are not plugins, and a plugin whose functions panic. Each is reported and
//! the good drivers keep working.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;

use docker_mount_tests::scene;
use docker_mount_tests::{cli, integrity};
use serde_json::Value;

/// A plugin directory with the fixture plugins and two non-plugins.
fn bad_plugins(dir: &Path) {
    let built = cli::test_plugins_dir();
    for name in [
        "libdocker_mount_test_plugin_wrong_abi.so",
        "libdocker_mount_test_plugin_panicking.so",
        "libdocker_mount_test_plugin_old_layout.so",
    ] {
        std::fs::copy(built.join(name), dir.join(name)).unwrap_or_else(|e| {
            panic!(
                "{name} missing from {} ({e}): run `cargo xtask test-drivers`",
                built.display()
            )
        });
    }
    std::fs::write(dir.join("libjunk.so"), b"not an ELF file").unwrap();
    // A real shared library that is not a docker-mount plugin.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
    .expect("libm.so.6");
    std::fs::copy(libm, dir.join("libm.so")).unwrap();
}

fn set_driver(config: &Path, driver: &str) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(config).unwrap()).unwrap();
    v["Driver"] = Value::from(driver);
    std::fs::write(config, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn bad_plugins_are_reported_and_good_drivers_keep_working() {
    let tmp = tempfile::tempdir().unwrap();
    let plugins = tmp.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    bad_plugins(&plugins);
    let scene = scene::build(&tmp.path().join("docker"));
    let fx = &scene.fixture;
    let containers = fx.root.join("containers");
    let stopped = &fx.container(scene.stopped).id;
    set_driver(
        &containers.join(stopped).join("config.v2.json"),
        "panicking",
    );
    // Its layer records move to the panicking driver's image store too.
    let mounts = fx.root.join("image/panicking/layerdb/mounts").join(stopped);
    std::fs::create_dir_all(&mounts).unwrap();
    for f in ["mount-id", "init-id", "parent"] {
        std::fs::copy(fx.mounts_dir(scene.stopped).join(f), mounts.join(f)).unwrap();
    }
    set_driver(
        &containers
            .join(&fx.container(scene.created).id)
            .join("config.v2.json"),
        "windowsfilter",
    );
    let before = integrity::snapshot(&fx.root);

    let report = cli::run_with(&fx.root, &["drivers", "--json"], &[&plugins]).json();
    let loaded: Vec<&str> = report["loaded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        loaded.contains(&"overlay2") && loaded.contains(&"panicking"),
        "{loaded:?}"
    );
    assert!(!loaded.contains(&"wrong-abi"), "{loaded:?}");
    let failed = report["failed"].as_array().unwrap();
    let why = |file: &str| -> String {
        failed
            .iter()
            .find(|f| f["file"].as_str().unwrap().ends_with(file))
            .unwrap_or_else(|| panic!("{file} not reported: {report}"))["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let wrong = format!("driver ABI {}", docker_mount_core::ABI_VERSION + 1000);
    assert!(
        why("wrong_abi.so").contains(&wrong),
        "{}",
        why("wrong_abi.so")
    );
    assert!(why("libjunk.so").contains("not a docker-mount driver plugin"));
    // A plugin of an older driver ABI: one line saying to rebuild it.
    let old = why("old_layout.so");
    assert!(
        old.contains("built for another driver ABI") && !old.contains('\n') && old.len() < 200,
        "{old}"
    );
    assert!(why("libm.so").contains("not a docker-mount driver plugin"));
    assert_eq!(failed.len(), 4);
    let table = cli::run_with(&fx.root, &["drivers"], &[&plugins]);
    assert!(table.ok().contains("failed:") && table.stdout.contains("panicking"));

    // Every container still lists; the one needing a missing driver says so.
    let list = cli::run_with(&fx.root, &["list", "--all", "--json"], &[&plugins]).json();
    assert_eq!(list.as_array().unwrap().len(), 5);
    let missing = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "created")
        .unwrap();
    assert_eq!(missing["driver_loaded"], false);
    assert!(
        missing["note"]
            .as_str()
            .unwrap()
            .contains("needs driver windowsfilter"),
        "{missing}"
    );

    // The panicking driver's panic becomes an error; others still work.
    let info = cli::run_with(&fx.root, &["info", "stopped", "--json"], &[&plugins]).json();
    assert!(
        info["layer_error"]
            .as_str()
            .unwrap()
            .contains("driver panicked"),
        "{}",
        info["layer_error"]
    );
    let missing_info = cli::run_with(&fx.root, &["info", "created", "--json"], &[&plugins]).json();
    assert!(missing_info["layer_error"]
        .as_str()
        .unwrap()
        .contains("install the windowsfilter driver plugin"));
    let web = cli::run_with(&fx.root, &["info", "web", "--json"], &[&plugins]).json();
    assert!(web["layer_error"].is_null(), "{}", web["layer_error"]);

    before.assert_unchanged(&integrity::snapshot(&fx.root));
}

#[test]
fn no_plugins_means_a_clear_message() {
    let tmp = tempfile::tempdir().unwrap();
    let scene = scene::build(&tmp.path().join("docker"));
    // Run a copy of the binary that has no drivers/ beside it.
    let bin_dir = tmp.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    std::fs::copy(cli::binary(), bin_dir.join("docker-mount")).unwrap();
    let out = std::process::Command::new(bin_dir.join("docker-mount"))
        .arg("--root")
        .arg(&scene.fixture.root)
        .args(["mount", "web", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("install the overlay2 driver plugin"), "{err}");
}
