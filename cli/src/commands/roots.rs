//! `roots`: every docker root in `--root` (a root, a root with userns-remap
//! sub-roots, or a whole host filesystem), and how each was found.

use std::path::Path;

use anyhow::{Context as _, Result};
use docker_mount_core::loader::Drivers;
use docker_mount_core::stat::Time;
use docker_mount_core::time;
use docker_mount_engine::evidence::daemon_config::SourceKind;
use docker_mount_engine::evidence::discover::{self, FoundRoot};
use docker_mount_engine::evidence::host::HostFs;
use docker_mount_engine::evidence::userns::{self, IdMap};
use docker_mount_engine::evidence::zpool;
use docker_mount_engine::model::image::Image;
use docker_mount_engine::model::root::DockerRoot;
use serde::Serialize;

use crate::context;
use crate::{table, Cli};

#[derive(Serialize, schemars::JsonSchema)]
struct RootRow {
    #[serde(flatten)]
    root: FoundRoot,
    /// Container directories (`containers/*`).
    containers: Option<usize>,
    /// Image configs of every image store.
    images: Option<usize>,
    /// Image stores (`image/<driver>`): the storage drivers it has used.
    drivers: Vec<String>,
    /// The `--root` value that selects this root.
    select_with: String,
    /// How its ids on disk map to the containers' (userns-remap, rootless).
    id_map: Option<IdMap>,
}

#[derive(Serialize, schemars::JsonSchema)]
struct ConfigFile {
    kind: SourceKind,
    host_path: String,
    file: String,
    user: Option<String>,
}

/// What `roots --json` prints: the roots of a directory tree, or the
/// docker datasets of ZFS pool devices.
#[derive(Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum RootsOutput {
    Tree(Roots),
    Pools(PoolRoots),
}

#[derive(Serialize, schemars::JsonSchema)]
pub struct Roots {
    given: String,
    host: Option<String>,
    host_guessed: bool,
    roots: Vec<RootRow>,
    /// The daemon configuration files read on the host tree.
    config_files: Vec<ConfigFile>,
    problems: Vec<String>,
}

fn count(path: &Path, drivers: &Drivers) -> (Option<usize>, Option<usize>, Vec<String>) {
    let Ok(root) = DockerRoot::open(path) else {
        return (None, None, Vec::new());
    };
    let counted = count_docker(&root);
    if !counted.2.is_empty() {
        return counted;
    }
    // No image store of docker's own: the containerd image store (docker
    // 24+) keeps images in containerd, which the drivers' catalogs read;
    // the containers name their driver.
    let Ok(root) = DockerRoot::open_with(path, drivers) else {
        return counted;
    };
    let mut used: Vec<String> = root
        .containers()
        .into_iter()
        .flatten()
        .map(|c| c.config.driver)
        .filter(|d| !d.is_empty())
        .collect();
    used.sort();
    used.dedup();
    let images = root.images().iter().filter(|i| i.is_ok()).count();
    (counted.0, Some(images), used)
}

/// An engine's root: what its driver's catalog holds.
fn count_engine(
    path: &Path,
    drivers: &Drivers,
    driver: &str,
) -> (Option<usize>, Option<usize>, Vec<String>) {
    let Ok(root) = DockerRoot::open_with(path, drivers) else {
        return (None, None, Vec::new());
    };
    let containers = root.containers().iter().filter(|c| c.is_ok()).count();
    let images = root.images().iter().filter(|i| i.is_ok()).count();
    (Some(containers), Some(images), vec![driver.to_string()])
}

fn count_docker(root: &DockerRoot) -> (Option<usize>, Option<usize>, Vec<String>) {
    let containers = root
        .dir()
        .list(Path::new("containers"))
        .map(|l| l.len())
        .unwrap_or(0);
    let stores = root.stores();
    let images = stores
        .iter()
        .map(|s| Image::list_ids(root.dir(), s).map_or(0, |l| l.len()))
        .sum();
    (Some(containers), Some(images), stores)
}

/// A dataset of a pool holding a docker root.
#[derive(Serialize, schemars::JsonSchema)]
struct DatasetRow {
    #[serde(flatten)]
    candidate: zpool::Candidate,
    containers: Option<usize>,
    images: Option<usize>,
    drivers: Vec<String>,
    /// The `--dataset` value that selects it.
    select_with: String,
}

#[derive(Serialize, schemars::JsonSchema)]
struct PoolInfo {
    name: String,
    devices: Vec<String>,
    /// The txgs it can be read at (`--txg`), newest first.
    uberblocks: Vec<zpool::Uberblock>,
}

/// `roots` on ZFS pool devices.
#[derive(Serialize, schemars::JsonSchema)]
pub struct PoolRoots {
    given: String,
    pools: Vec<PoolInfo>,
    roots: Vec<DatasetRow>,
    problems: Vec<String>,
}

/// `roots` on ZFS pool devices: the datasets and snapshots holding a
/// docker root. None is no failure: the pools were read, and hold none.
fn run_pools(cli: &Cli) -> Result<()> {
    let loaded = context::load_drivers(cli);
    let scan = zpool::scan(&cli.root, cli.txg);
    if let (Some(t), true) = (cli.txg, scan.uberblocks.is_empty()) {
        anyhow::bail!("--txg {t}: {}", scan.problems.join("; "));
    }
    let mut problems = scan.problems.clone();
    let rows: Vec<DatasetRow> = scan
        .candidates
        .iter()
        .map(|c| {
            let (containers, images, drivers) = match zpool::open(c) {
                Ok((_, served)) => count(&served.path(), &loaded),
                Err(e) => {
                    problems.push(format!("dataset {}: {e}", c.dataset));
                    (None, None, Vec::new())
                }
            };
            DatasetRow {
                candidate: c.clone(),
                containers,
                images,
                drivers,
                select_with: c.dataset.clone(),
            }
        })
        .collect();
    let out = PoolRoots {
        given: cli.root.display().to_string(),
        pools: scan
            .pools
            .iter()
            .map(|(n, d)| PoolInfo {
                name: n.clone(),
                devices: d.iter().map(|p| p.display().to_string()).collect(),
                uberblocks: scan
                    .uberblocks
                    .iter()
                    .find(|(name, _)| name == n)
                    .map(|(_, u)| u.clone())
                    .unwrap_or_default(),
            })
            .collect(),
        roots: rows,
        problems,
    };
    if cli.json {
        return context::print_json(&RootsOutput::Pools(out));
    }
    for p in &out.pools {
        println!("pool {}: {}", p.name, p.devices.join(", "));
        print_uberblocks(&p.uberblocks);
    }
    let n = |v: Option<usize>| v.map_or("-".to_string(), |n| n.to_string());
    let rows: Vec<Vec<String>> = out
        .roots
        .iter()
        .map(|r| {
            vec![
                table::cell(&r.candidate.dataset),
                if r.candidate.snapshot {
                    "snapshot"
                } else {
                    "filesystem"
                }
                .to_string(),
                table::cell(r.candidate.mountpoint.as_deref().unwrap_or("-")),
                n(r.containers),
                n(r.images),
                r.drivers.join(","),
                table::cell(&r.select_with),
            ]
        })
        .collect();
    if rows.is_empty() {
        println!(
            "no docker root in {}: no filesystem or snapshot of its pools holds containers/, image/ or graph/",
            cli.root.display()
        );
    } else {
        table::print(
            &[
                "DATASET",
                "KIND",
                "MOUNTPOINT",
                "CONTAINERS",
                "IMAGES",
                "DRIVERS",
                "--dataset",
            ],
            &rows,
        );
    }
    for p in &out.problems {
        eprintln!("warning: {p}");
    }
    Ok(())
}

/// A pool's uberblocks: the txgs `--txg` can read it at, and when.
fn print_uberblocks(ubs: &[zpool::Uberblock]) {
    let list: Vec<String> = ubs
        .iter()
        .map(|u| {
            let when = time::format_rfc3339(Time {
                sec: i64::try_from(u.written).unwrap_or(i64::MAX),
                nsec: 0,
            });
            let opened = if u.opened { " (read)" } else { "" };
            format!("  txg {} written {when}{opened}", u.txg)
        })
        .collect();
    if !list.is_empty() {
        println!(
            "uberblocks (--txg N reads the pool as of one):\n{}",
            list.join("\n")
        );
    }
}

pub fn run(cli: &Cli) -> Result<()> {
    if context::is_pool(&cli.root) {
        return run_pools(cli);
    }
    context::refuse_pool_options(cli)?;
    let loaded = context::load_drivers(cli);
    let found = discover::discover(&cli.root, &loaded)
        .with_context(|| format!("cannot examine {}", cli.root.display()))?;
    let host = found.host.as_deref().and_then(|h| HostFs::open(h).ok());
    let rows: Vec<RootRow> = found
        .roots
        .iter()
        .map(|r| {
            let (containers, images, drivers) = if let (true, Some(engine)) = (r.present, &r.engine)
            {
                count_engine(&r.path, &loaded, engine)
            } else if r.present {
                count(&r.path, &loaded)
            } else {
                (None, None, Vec::new())
            };
            RootRow {
                root: r.clone(),
                containers,
                images,
                drivers,
                select_with: r.path.display().to_string(),
                id_map: userns::for_root(host.as_ref(), r),
            }
        })
        .collect();
    let out = Roots {
        given: found.given.display().to_string(),
        host: found.host.as_ref().map(|h| h.display().to_string()),
        host_guessed: found.host_guessed,
        roots: rows,
        config_files: found
            .configs
            .iter()
            .map(|c| ConfigFile {
                kind: c.kind,
                host_path: c.host_path.clone(),
                file: c.file.display().to_string(),
                user: c.user.clone(),
            })
            .collect(),
        problems: found.problems.clone(),
    };
    if cli.json {
        return context::print_json(&RootsOutput::Tree(out));
    }
    if let Some(h) = &out.host {
        let how = if out.host_guessed {
            " (guessed from the root's path)"
        } else {
            ""
        };
        println!("host tree: {h}{how}");
    }
    let rows: Vec<Vec<String>> = out
        .roots
        .iter()
        .map(|r| {
            let f = &r.root;
            let mut kind = discover::kind_name(f.kind).to_string();
            if let Some(u) = &f.user {
                kind.push_str(&format!(" ({u})"));
            }
            if let Some(e) = &f.engine {
                kind.push_str(&format!(" ({e})"));
            }
            if let Some(m) = f.remap {
                kind.push_str(&format!(" {}:{}", m.uid, m.gid));
            }
            let n = |v: Option<usize>| v.map_or("-".to_string(), |n| n.to_string());
            let status = if f.present {
                "ok".to_string()
            } else {
                f.problem.clone().unwrap_or_else(|| "absent".into())
            };
            vec![
                table::cell(f.host_path.as_deref().unwrap_or("-")),
                kind,
                n(r.containers),
                n(r.images),
                r.drivers.join(","),
                status,
                table::cell(&f.sources.join("; ")),
                table::cell(&r.select_with),
            ]
        })
        .collect();
    table::print(
        &[
            "HOST PATH",
            "KIND",
            "CONTAINERS",
            "IMAGES",
            "DRIVERS",
            "STATUS",
            "FOUND VIA",
            "--root",
        ],
        &rows,
    );
    for c in &out.config_files {
        println!("config: {} ({})", c.host_path, c.file);
    }
    for p in &out.problems {
        eprintln!("warning: {p}");
    }
    if !out.roots.iter().any(|r| r.root.present) {
        anyhow::bail!(
            "{}",
            found
                .single()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        );
    }
    Ok(())
}
