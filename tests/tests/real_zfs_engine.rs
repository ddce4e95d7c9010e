//! Every command on docker roots inside real ZFS pools (issue 16), read
//! from the pools' disk images with `--root`: the pools made by OpenZFS
//! 2.3 and dockerd 26 (`--storage-driver zfs`) in a VM, and the oracle
//! docker wrote there (`tests/src/real_zfs.rs`). The pool images must hash
//! the same after every test.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use docker_mount_tests::mounts::{assert_read_only_mount, MountPoint};
use docker_mount_tests::real::{self, require};
use docker_mount_tests::real_zfs::{self, Pools};
use docker_mount_tests::{cli, manifest};
use serde_json::Value;

const SNAPSHOT: &str = "dmpool/docker@admin-before-cleanup";

fn pools() -> Option<&'static Pools> {
    if !require("zfs VM", real_zfs::available()) {
        return None;
    }
    Some(real_zfs::pools().unwrap())
}

/// Runs `check` on the pools and fails if any disk image changed meanwhile.
fn with_pools(check: impl FnOnce(&Pools)) {
    let Some(p) = pools() else { return };
    let disks: Vec<PathBuf> = p.info.disks.iter().map(|d| p.disk(&d.name)).collect();
    let hash = |d: &Path| real_zfs::sha256_file(d).unwrap();
    let before: Vec<String> = disks.iter().map(|d| hash(d)).collect();
    for (d, info) in before.iter().zip(&p.info.disks) {
        assert_eq!(*d, info.sha256, "{} changed before this test", info.name);
    }
    check(p);
    let after: Vec<String> = disks.iter().map(|d| hash(d)).collect();
    assert_eq!(before, after, "the pool images changed");
}

fn json_lines(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Panics if a run printed a warning: the pool is healthy.
fn no_warnings(what: &str, run: &cli::Run) {
    assert!(
        !run.stderr.to_lowercase().contains("warning"),
        "{what}: warnings on a healthy root:\n{}",
        run.stderr
    );
}

/// `list --all --json` against `docker ps -a` (`ps`): the same containers,
/// names, images, states.
fn assert_list_equals(what: &str, listed: &Value, ps: &[Value]) {
    let listed = listed.as_array().expect("a JSON array");
    assert_eq!(listed.len(), ps.len(), "{what}: {listed:#?}");
    for want in ps {
        let id = want["ID"].as_str().unwrap();
        let got = listed
            .iter()
            .find(|l| l["id"] == id)
            .unwrap_or_else(|| panic!("{what}: {id} not listed"));
        assert_eq!(got["name"], want["Names"], "{what}");
        assert_eq!(got["image"], want["Image"], "{what}: {id}");
        assert_eq!(got["state"], want["State"], "{what}: {id}");
        assert_eq!(got["driver"], "zfs", "{what}: {id}");
    }
}

#[test]
fn roots_lists_the_docker_dataset_and_its_snapshot() {
    with_pools(|p| {
        let run = cli::run(&p.docker_disk(), &["roots", "--json"]);
        let out = run.json();
        let roots: BTreeMap<String, &Value> = out["roots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["dataset"].as_str().unwrap().to_string(), r))
            .collect();
        let names: Vec<&str> = roots.keys().map(String::as_str).collect();
        assert_eq!(names, ["dmpool/docker", SNAPSHOT], "{out:#}");
        let live = roots["dmpool/docker"];
        assert_eq!(live["mountpoint"], "/var/lib/docker");
        assert_eq!(live["snapshot"], false);
        assert_eq!(live["select_with"], "dmpool/docker");
        assert_eq!(live["containers"], p.ps().unwrap().len());
        assert_eq!(roots[SNAPSHOT]["snapshot"], true);
        let table = cli::run(&p.docker_disk(), &["roots"]);
        assert!(table.ok().contains(SNAPSHOT), "{}", table.stdout);
    });
}

#[test]
fn roots_on_pools_without_docker_says_so_and_succeeds() {
    with_pools(|p| {
        for pool in ["dmmirror", "dmraidz"] {
            let disks = p.pool_disks(pool);
            let run = cli::run(&disks[0], &["roots"]);
            let out = run.ok();
            assert!(out.contains(&format!("pool {pool}")), "{pool}: {out}");
            assert!(out.contains("no docker root"), "{pool}: {out}");
            let json = cli::run(&disks[0], &["roots", "--json"]).json();
            assert_eq!(json["roots"].as_array().unwrap().len(), 0, "{pool}");
            // The pool's other disks were found beside the one given.
            let devices = json["pools"][0]["devices"].as_array().unwrap().len();
            assert_eq!(devices, disks.len(), "{pool}: {json:#}");
            // A disk without docker is no error (Turbinia's #764): an
            // empty list, a note on stderr, status 0.
            let list = cli::run(&disks[0], &["list", "--all", "--json"]);
            assert_eq!(list.status, 0, "{pool}: {}", list.stderr);
            assert_eq!(list.json(), serde_json::json!([]), "{pool}");
            assert!(list.stderr.contains("no docker root"), "{}", list.stderr);
            // A command about one container still fails, naming why.
            let info = cli::run(&disks[0], &["info", "x"]);
            assert_eq!(info.status, 1, "{pool}: {}", info.stderr);
            assert!(info.stderr.contains("no docker root"), "{}", info.stderr);
        }
    });
}

#[test]
fn list_equals_docker_ps() {
    with_pools(|p| {
        let run = cli::run(&p.docker_disk(), &["list", "--all", "--json"]);
        no_warnings("dmpool", &run);
        assert_list_equals("dmpool", &run.json(), &p.ps().unwrap());
        // A directory of pool images works the same.
        let dir = p.docker_disk().parent().unwrap().to_path_buf();
        let run = cli::run(&dir, &["list", "--all", "--json"]);
        assert_list_equals("disks/", &run.json(), &p.ps().unwrap());
    });
}

#[test]
fn images_equal_docker_images() {
    with_pools(|p| {
        let run = cli::run(&p.docker_disk(), &["images", "--all", "--json"]);
        no_warnings("dmpool", &run);
        let got: BTreeSet<(String, Vec<String>)> = run
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let tags = i["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect();
                (i["id"].as_str().unwrap().to_string(), tags)
            })
            .collect();
        let want: BTreeSet<(String, Vec<String>)> = json_lines(&p.oracle_file("images.jsonl"))
            .iter()
            .map(|v| {
                let id = v["ID"].as_str().unwrap().trim_start_matches("sha256:");
                let repo = v["Repository"].as_str().unwrap();
                let tags = if repo == "<none>" {
                    vec![]
                } else {
                    vec![format!("{repo}:{}", v["Tag"].as_str().unwrap())]
                };
                (id.to_string(), tags)
            })
            .collect();
        assert_eq!(got, want);
    });
}

/// The containers of the oracle's `docker ps -a`, by name.
fn container_names(p: &Pools) -> Vec<String> {
    p.ps()
        .unwrap()
        .iter()
        .map(|c| c["Names"].as_str().unwrap().to_string())
        .collect()
}

fn assert_export_equals(what: &str, want_tar: &Path, got_tar: &Path) -> usize {
    let want = manifest::from_tar(want_tar);
    let diffs = manifest::compare(&want, &manifest::from_tar(got_tar), &[]);
    assert!(
        diffs.is_empty(),
        "{what}: export differs from docker export:\n{}",
        diffs.join("\n")
    );
    want.len()
}

#[test]
fn every_export_and_diff_equal_docker() {
    with_pools(|p| {
        let out = tempfile::tempdir().unwrap();
        let mut entries = 0;
        for name in container_names(p) {
            let tar = out.path().join(format!("{name}.tar"));
            let run = cli::run(
                &p.docker_disk(),
                &["export", &name, "-o", tar.to_str().unwrap()],
            );
            run.ok();
            no_warnings(&name, &run);
            entries += assert_export_equals(&name, &p.export_tar(&name), &tar);
            let run = cli::run(&p.docker_disk(), &["diff", &name]);
            no_warnings(&name, &run);
            assert_eq!(
                real::diff_lines(run.ok()),
                real::diff_lines(&p.diff(&name).unwrap()),
                "{name}: diff"
            );
        }
        eprintln!("dmpool: {entries} entries equal to docker export");
    });
}

#[test]
fn every_fuse_mount_equals_docker_export() {
    with_pools(|p| {
        for name in container_names(p) {
            let mnt = MountPoint::new();
            let dir = mnt.path().to_str().unwrap();
            cli::run(&p.docker_disk(), &["mount", "--background", &name, dir]).ok();
            assert_read_only_mount(mnt.path());
            let diffs = manifest::compare(
                &manifest::from_tar(&p.export_tar(&name)),
                &manifest::from_dir(mnt.path()),
                &[],
            );
            cli::run(&p.docker_disk(), &["umount", dir]).ok();
            assert!(
                diffs.is_empty(),
                "{name}: FUSE mount differs from docker export:\n{}",
                diffs.join("\n")
            );
        }
    });
}

/// `nobody`, with no capability: the pool images are world-readable
/// (0444), the datasets are served to this user alone through the setuid
/// `fusermount3`.
fn unprivileged(root: &Path, args: &[&str]) -> (bool, String, String) {
    let o = std::process::Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .args(["--inh-caps", "-all"])
        .arg(cli::binary())
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("setpriv");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Diff's birth-txg shortcut: a container's dataset is a clone of its
/// `-init` layer's snapshot, and the files whose dnode the clone and the
/// init layer still share with it are not read. The output is docker's,
/// and the files read plus those proved are what `--content full` reads.
#[test]
fn diff_skips_what_the_origin_snapshot_proves_unchanged() {
    with_pools(|p| {
        let mut proved_all = 0;
        for name in container_names(p) {
            let auto = cli::run(&p.docker_disk(), &["-v", "diff", &name]);
            let full = cli::run(
                &p.docker_disk(),
                &["-v", "diff", &name, "--content", "full"],
            );
            let want = real::diff_lines(&p.diff(&name).unwrap());
            assert_eq!(real::diff_lines(auto.ok()), want, "{name}");
            assert_eq!(real::diff_lines(full.ok()), want, "{name} --content full");
            let (compared, proved) = cli::diff_counts(&auto.stderr);
            let (full_compared, none) = cli::diff_counts(&full.stderr);
            assert_eq!((compared + proved, none), (full_compared, 0), "{name}");
            eprintln!("{name}: {compared} contents compared, {proved} proved unchanged");
            proved_all += proved;
        }
        assert!(proved_all > 0, "no file proved unchanged");
    });
}

/// What the shortcut trusts: every regular file docker diff lists as added
/// or changed in `running` is an object the pool says may differ.
#[test]
fn objects_the_container_rewrote_are_never_proven_unchanged() {
    use docker_mount_engine::evidence::pool::DatasetProvider;
    use docker_mount_engine::evidence::zpool;
    with_pools(|p| {
        let disk = p.docker_disk();
        let scan = zpool::scan(&disk, None);
        let (pool, _) = zpool::open(scan.select(None, &disk).unwrap()).unwrap();
        let clone = &container_dataset(p, "running");
        let origin = format!("{clone}-init");
        let may_differ = pool.may_differ(clone, &origin).unwrap().unwrap();
        assert!(
            pool.may_differ(&origin, clone).unwrap().is_none(),
            "not a clone of it"
        );
        let zpool =
            docker_mount_zfs::Pool::open(std::slice::from_ref(&disk), &Default::default()).unwrap();
        let fs = zpool.open_fs(clone).unwrap();
        let mut checked = 0;
        for line in real::diff_lines(&p.diff("running").unwrap()) {
            let (kind, path) = line.split_once(' ').unwrap();
            let Some(obj) = fs.resolve(path.trim_start_matches('/').as_bytes()).unwrap() else {
                continue;
            };
            if kind != "D" && fs.stat(obj).unwrap().kind == docker_mount_zfs::FileKind::File {
                assert!(
                    may_differ.contains(&obj),
                    "{path} (object {obj}) proven unchanged"
                );
                checked += 1;
            }
        }
        assert!(checked >= 2, "{checked} rewritten files checked");
    });
}

#[test]
fn export_and_diff_work_without_root() {
    if !real::require_privileged() {
        return;
    }
    with_pools(|p| {
        let out = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            out.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        for name in container_names(p) {
            let tar = out.path().join(format!("{name}.tar"));
            let (ok, _, err) = unprivileged(
                &p.docker_disk(),
                &["export", &name, "-o", tar.to_str().unwrap()],
            );
            assert!(ok, "{name} (non-root): {err}");
            assert_export_equals(&format!("{name} (non-root)"), &p.export_tar(&name), &tar);
            let (ok, stdout, err) = unprivileged(&p.docker_disk(), &["diff", &name]);
            assert!(ok, "{name} (non-root): {err}");
            assert_eq!(
                real::diff_lines(&stdout),
                real::diff_lines(&p.diff(&name).unwrap()),
                "{name} (non-root)"
            );
        }
    });
}

/// The layer datasets no container descends from, by the pool's own
/// origins (`zfs list`) and docker's own record of the containers'
/// datasets: what `layers --orphans` must name.
fn expected_orphans(p: &Pools) -> BTreeSet<String> {
    let list = p.zfs_list().unwrap();
    let prefix = "dmpool/docker/";
    let origin: BTreeMap<&str, &str> = list
        .iter()
        .filter_map(|e| {
            let o = e.origin.as_deref()?;
            Some((e.name.as_str(), o.split_once('@').map_or(o, |(fs, _)| fs)))
        })
        .collect();
    let text = std::fs::read_to_string(p.oracle_file("container-datasets.txt")).unwrap();
    let mut used = BTreeSet::new();
    for line in text.lines() {
        let mut at = line.split_whitespace().nth(2).unwrap();
        while used.insert(at.to_string()) {
            match origin.get(at) {
                Some(o) => at = o,
                None => break,
            }
        }
    }
    list.iter()
        .filter(|e| e.kind == "filesystem")
        .filter_map(|e| e.name.strip_prefix(prefix).map(|id| (id, &e.name)))
        .filter(|(_, name)| !used.contains(*name))
        .map(|(id, _)| id.to_string())
        .collect()
}

#[test]
fn layers_orphans_names_the_leftover_datasets() {
    with_pools(|p| {
        let want = expected_orphans(p);
        assert!(
            !want.is_empty(),
            "the pool has leftovers (docs/zfs-design.md §1)"
        );
        let run = cli::run(&p.docker_disk(), &["layers", "--orphans", "--json"]);
        let json = run.json();
        let layers = json["layers"].as_array().unwrap();
        let got: BTreeSet<String> = layers
            .iter()
            .map(|l| l["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, want);
        for l in layers {
            // Each is measured through its served dataset: a whole tree.
            assert!(l["usage"]["files"].as_u64().unwrap() > 0, "{l:#}");
            assert_eq!(l["usage"]["incomplete"], false, "{l:#}");
        }
        let all = cli::run(&p.docker_disk(), &["layers", "--json"]).json();
        assert!(
            all["missing"].as_array().unwrap().is_empty(),
            "no layer docker names is missing: {all:#}"
        );
    });
}

#[test]
fn the_administrators_snapshot_is_the_root_before_cleanup() {
    with_pools(|p| {
        let snap = p.oracle().join("at-snapshot");
        let run = cli::run(
            &p.docker_disk(),
            &["--dataset", SNAPSHOT, "list", "--all", "--json"],
        );
        assert_list_equals(SNAPSHOT, &run.json(), &json_lines(&snap.join("ps.jsonl")));
        // removed-later's datasets are still in the pool (docker's own
        // leftovers): its export reads them.
        let out = tempfile::tempdir().unwrap();
        let tar = out.path().join("removed-later.tar");
        let run = cli::run(
            &p.docker_disk(),
            &[
                "--dataset",
                SNAPSHOT,
                "export",
                "removed-later",
                "-o",
                tar.to_str().unwrap(),
            ],
        );
        run.ok();
        assert_export_equals(
            "removed-later at the snapshot",
            &snap.join("export-removed-later.tar"),
            &tar,
        );
        let run = cli::run(
            &p.docker_disk(),
            &["--dataset", SNAPSHOT, "diff", "removed-later"],
        );
        let want = std::fs::read_to_string(snap.join("diff-removed-later.txt")).unwrap();
        assert_eq!(real::diff_lines(run.ok()), real::diff_lines(&want));
        no_warnings("removed-later at the snapshot", &run);
        // The layers are live datasets, not the snapshot's: `running`'s was
        // written after the snapshot, and that is said.
        let run = cli::run(
            &p.docker_disk(),
            &["--dataset", SNAPSHOT, "diff", "running"],
        );
        run.ok();
        let written = format!(
            "dataset {} was written after the root's snapshot",
            container_dataset(p, "running")
        );
        assert!(run.stderr.contains(&written), "{}", run.stderr);
        // A dataset that holds no root is refused, naming the choices.
        let bad = cli::run(&p.docker_disk(), &["--dataset", "dmpool/zstd", "list"]);
        assert_ne!(bad.status, 0);
        assert!(
            bad.stderr.contains("--dataset dmpool/docker"),
            "{}",
            bad.stderr
        );
    });
}

/// `--txg`: `roots` lists the uberblocks; the oldest one the ring still
/// holds reads the live root as it was then; a txg no uberblock has, or
/// `--txg` on a root that is no pool, is refused. The ring (32 uberblocks
/// at ashift 12) no longer reaches back to the administrator's snapshot:
/// the scenario's mounts and unmounts after it (the oracle's exports, the
/// dataset tars of dm-deep's 110 layers) each sync a txg. So the old txg
/// shows the root after the cleanup, as the final oracle does.
#[test]
fn an_older_txg_reads_the_pool_as_it_was() {
    with_pools(|p| {
        let disk = p.docker_disk();
        let roots = cli::run(&disk, &["roots", "--json"]).json();
        let ubs = roots["pools"][0]["uberblocks"].as_array().unwrap().clone();
        assert!(ubs.len() > 1, "{ubs:?}");
        assert_eq!(ubs.iter().filter(|u| u["opened"] == true).count(), 1);
        assert!(roots["roots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["txg"] == ubs[0]["txg"]));
        let txgs: Vec<u64> = ubs.iter().map(|u| u["txg"].as_u64().unwrap()).collect();
        let oldest = *txgs.iter().min().unwrap();
        assert!(oldest < txgs[0], "{txgs:?}");
        let txg = oldest.to_string();
        // The old txg is the one opened, not the newest.
        let old_roots = cli::run(&disk, &["--txg", &txg, "roots", "--json"]).json();
        let opened: Vec<&Value> = old_roots["pools"][0]["uberblocks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|u| u["opened"] == true)
            .map(|u| &u["txg"])
            .collect();
        assert_eq!(opened, [oldest], "{old_roots:#}");
        assert!(old_roots["roots"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["txg"] == oldest));
        let run = cli::run(&disk, &["--txg", &txg, "list", "--all", "--json"]);
        let what = format!("txg {txg}");
        no_warnings(&what, &run);
        assert_list_equals(&what, &run.json(), &p.ps().unwrap());
        let out = tempfile::tempdir().unwrap();
        let tar = out.path().join("deep.tar");
        let args = ["--txg", &txg, "export", "deep", "-o", tar.to_str().unwrap()];
        cli::run(&disk, &args).ok();
        assert_export_equals(&what, &p.export_tar("deep"), &tar);

        let bad = cli::run(&disk, &["--txg", "5", "list"]);
        assert_ne!(bad.status, 0);
        assert!(
            bad.stderr.contains("txg 5") && bad.stderr.contains(&txg),
            "{}",
            bad.stderr
        );
        let bad = cli::run(&disk, &["--txg", "5", "roots"]);
        assert_ne!(bad.status, 0);
        assert!(bad.stderr.contains("txg 5"), "{}", bad.stderr);
        let plain = tempfile::tempdir().unwrap();
        let bad = cli::run(plain.path(), &["--txg", &txg, "list"]);
        assert_ne!(bad.status, 0);
        assert!(bad.stderr.contains("no ZFS pool"), "{}", bad.stderr);
    });
}

/// The container dataset of `name`, from the oracle's list.
fn container_dataset(p: &Pools, name: &str) -> String {
    let datasets = std::fs::read_to_string(p.oracle_file("container-datasets.txt")).unwrap();
    datasets
        .lines()
        .find(|l| l.contains(&format!(" /{name} ")))
        .and_then(|l| l.split(' ').nth(2))
        .unwrap()
        .to_string()
}

/// Hostile pool through the CLI: a copy of dmpool.img whose `running`
/// container dataset has its object set block damaged in every copy.
/// The other containers still list, export and diff as docker did; the
/// broken one fails with exit status 1 naming its dataset and the
/// checksum, and nothing panics.
#[test]
fn a_damaged_container_dataset_fails_alone_and_named() {
    use docker_mount_zfs::dev::{BlockDev, FileDev};
    use docker_mount_zfs::dnode::Objset;
    use docker_mount_zfs::label::{self, VDEV_START};
    use docker_mount_zfs::spa::Spa;
    use std::os::unix::fs::FileExt;
    let Some(p) = pools() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("dmpool.img");
    let st = std::process::Command::new("cp")
        .arg("--sparse=always")
        .arg(p.docker_disk())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let broken = container_dataset(p, "running");
    let objsetid = docker_mount_zfs::Pool::open(std::slice::from_ref(&copy), &Default::default())
        .unwrap()
        .datasets()
        .unwrap()
        .into_iter()
        .find(|d| d.name == broken)
        .unwrap()
        .objsetid;
    let dev: std::sync::Arc<dyn BlockDev> = std::sync::Arc::new(FileDev::open(&copy).unwrap());
    let v = label::read(dev).unwrap().unwrap();
    let base = v.info.vdev_offset + VDEV_START;
    // The pool's partition of the disk (`v.dev`) holds the blocks.
    let spa = Spa::single_disk(v.dev.clone());
    let mos = Objset::read(&spa, &v.uberblocks[0].rootbp).unwrap();
    let ds = docker_mount_zfs::dsl::dataset(&spa, &mos, objsetid).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&copy)
        .unwrap();
    for d in ds.bp.copies() {
        let mut b = [0u8];
        f.read_exact_at(&mut b, base + d.offset + 64).unwrap();
        f.write_all_at(&[!b[0]], base + d.offset + 64).unwrap();
    }
    drop((f, spa, mos, v));

    let listed = cli::run(&copy, &["list", "--all", "--json"]);
    assert_list_equals("damaged pool", &listed.json(), &p.ps().unwrap());
    for name in container_names(p) {
        let tar = tmp.path().join(format!("{name}.tar"));
        let export = cli::run(&copy, &["export", &name, "-o", tar.to_str().unwrap()]);
        let diff = cli::run(&copy, &["diff", &name]);
        for run in [&export, &diff] {
            assert!(!run.stderr.contains("panicked"), "{name}: {}", run.stderr);
        }
        if name == "running" {
            for run in [&export, &diff] {
                assert_eq!(run.status, 1, "{name}: {}", run.stderr);
                assert!(
                    run.stderr.contains(&broken) && run.stderr.contains("checksum"),
                    "{name}: {}",
                    run.stderr
                );
            }
        } else {
            export.ok();
            assert_export_equals(&name, &p.export_tar(&name), &tar);
            assert_eq!(
                real::diff_lines(diff.ok()),
                real::diff_lines(&p.diff(&name).unwrap()),
                "{name}: diff"
            );
        }
    }
}

#[test]
fn find_timeline_cat_history_info_deleted_logs_work() {
    with_pools(|p| {
        let root = p.docker_disk();
        let ok = |args: &[&str]| {
            let run = cli::run(&root, args);
            no_warnings(&args.join(" "), &run);
            run.ok().to_string()
        };
        // `running` wrote /data/keep/renamed.txt: cat reads it from its rw dataset.
        assert_eq!(
            ok(&["cat", "running", "/data/keep/renamed.txt"]),
            "changed\n"
        );
        let info = ok(&["info", "running", "--json"]);
        assert!(info.contains("\"zfs\""), "{info}");
        let found = ok(&["find", "/data/keep/renamed.txt", "--json"]);
        assert!(found.contains("running"), "{found}");
        let deleted = ok(&["deleted", "exited", "--json"]);
        assert!(deleted.contains("/bin/ls"), "{deleted}");
        let timeline = ok(&["timeline", "running", "--format", "jsonl"]);
        assert!(timeline.contains("/new-dir/f"), "{timeline}");
        ok(&["history", "dm-app:1"]);
        ok(&["logs", "running"]);
    });
}

/// The deep image (`dm-deep:1`, 110 COPY layers on dm-base: the zfs
/// driver has no 100-layer limit): `images`, `history` and `info` show
/// every layer docker's `image inspect` names.
#[test]
fn the_deep_image_shows_all_its_layers() {
    with_pools(|p| {
        let inspect: Value =
            serde_json::from_slice(&std::fs::read(p.oracle_file("image-inspect.json")).unwrap())
                .unwrap();
        let want = inspect
            .as_array()
            .unwrap()
            .iter()
            .find(|i| {
                i["RepoTags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t == "dm-deep:1")
            })
            .expect("dm-deep:1 in docker image inspect")["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .len();
        assert!(want > 100, "{want} layers");
        let run = cli::run(&p.docker_disk(), &["images", "--json"]);
        no_warnings("images", &run);
        let images = run.json();
        let deep = images
            .as_array()
            .unwrap()
            .iter()
            .find(|i| {
                i["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t == "dm-deep:1")
            })
            .expect("dm-deep:1 in images");
        assert_eq!(deep["layers"], want, "{deep:#}");
        let run = cli::run(&p.docker_disk(), &["history", "dm-deep:1", "--json"]);
        no_warnings("history", &run);
        let history = run.json();
        assert!(
            history["warnings"].as_array().unwrap().is_empty(),
            "{history:#}"
        );
        let layered = history["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| !s["layer"].is_null())
            .count();
        assert_eq!(layered, want, "history steps with a layer");
        // The container: the image's layers, its -init layer, its own.
        let run = cli::run(&p.docker_disk(), &["info", "deep", "--json"]);
        no_warnings("info deep", &run);
        let info = run.json();
        assert_eq!(
            info["layers"].as_array().unwrap().len(),
            want + 2,
            "{info:#}"
        );
    });
}

#[test]
fn mount_all_mounts_every_container_with_fuse() {
    with_pools(|p| {
        let base = MountPoint::new();
        let all = base.path().join("all");
        let run = cli::run(&p.docker_disk(), &["mount", "--all", all.to_str().unwrap()]);
        run.ok();
        let mut diffs = Vec::new();
        for name in container_names(p) {
            let dir = all.join(&name);
            assert_read_only_mount(&dir);
            diffs.extend(
                manifest::compare(
                    &manifest::from_tar(&p.export_tar(&name)),
                    &manifest::from_dir(&dir),
                    &[],
                )
                .into_iter()
                .map(|d| format!("{name}: {d}")),
            );
        }
        cli::run(
            &p.docker_disk(),
            &["umount", "--all", all.to_str().unwrap()],
        )
        .ok();
        assert!(
            diffs.is_empty(),
            "mount --all differs:\n{}",
            diffs.join("\n")
        );
    });
}
