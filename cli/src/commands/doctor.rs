//! `doctor`: what this machine can do (root, overlay, FUSE, loop devices,
//! `lowerdir+`, the noatime view), which driver plugins loaded, and so how
//! each command will work here: kernel mounts, FUSE, or userspace reads.
//! Touches no evidence: `--root` is not opened.

use anyhow::Result;
use docker_mount_core::loader::PluginFailure;
use docker_mount_engine::mounts::capabilities::{self, Capabilities, Check, Status};
use serde::Serialize;

use crate::context::{self, driver_dirs};
use crate::Cli;

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Driver {
    name: String,
    version: String,
    file: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Drivers {
    searched: Vec<String>,
    loaded: Vec<Driver>,
    failed: Vec<PluginFailure>,
}

/// How a group of commands will work on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Method {
    /// A kernel mount (overlay, bind, loop).
    Kernel,
    /// A FUSE filesystem served by docker-mount.
    Fuse,
    /// Files read by docker-mount itself; nothing is mounted where anyone sees it.
    Userspace,
    /// Not possible here.
    Unavailable,
}

impl Method {
    fn label(self) -> &'static str {
        match self {
            Method::Kernel => "kernel mount",
            Method::Fuse => "FUSE",
            Method::Userspace => "userspace",
            Method::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct Usage {
    /// The commands (and the case) this line is about.
    what: String,
    method: Method,
    detail: String,
    /// The storage drivers the line is about (none: every driver).
    drivers: Vec<String>,
    /// Those of them whose plugin is not loaded.
    not_installed: Vec<String>,
}

impl Usage {
    fn for_drivers(mut self, drivers: &[&str]) -> Usage {
        self.drivers = drivers.iter().map(|d| d.to_string()).collect();
        self
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Report {
    version: String,
    machine: Capabilities,
    drivers: Drivers,
    commands: Vec<Usage>,
}

fn usage(what: &str, method: Method, detail: impl Into<String>) -> Usage {
    Usage {
        what: what.into(),
        method,
        detail: detail.into(),
        drivers: Vec::new(),
        not_installed: Vec::new(),
    }
}

/// How each group of commands will work, given the machine.
fn plan(m: &Capabilities) -> Vec<Usage> {
    let fuse_how = if m.cap_sys_admin {
        "served by a background docker-mount process"
    } else {
        "served by a background docker-mount process, mounted through fusermount3"
    };
    let no_fuse = if m.cap_sys_admin {
        "no FUSE here (see fuse above); use `docker-mount export`"
    } else {
        "needs root, or FUSE with a setuid fusermount3 (Debian: fuse3); use `docker-mount export`"
    };

    let mount_layers = "mount: overlay2, overlay, vfs, btrfs layers";
    let mount = if m.kernel_mounts() {
        let api = if m.lowerdir_plus.is_yes() {
            "overlay through the new mount API (lowerdir+)"
        } else {
            "overlay through mount(2)"
        };
        usage(
            mount_layers,
            Method::Kernel,
            format!("{api}, or a bind mount for a single layer; ro,nosuid,nodev,noexec"),
        )
    } else if m.fuse_mounts() {
        usage(
            mount_layers,
            Method::Fuse,
            format!("kernel mounts need root: {fuse_how}"),
        )
    } else {
        usage(mount_layers, Method::Unavailable, no_fuse)
    };

    let fuse_only = "mount: aufs layers, mount --fuse";
    let fuse = if m.fuse_mounts() {
        usage(
            fuse_only,
            Method::Fuse,
            format!("no kernel has aufs: {fuse_how}"),
        )
    } else {
        usage(fuse_only, Method::Unavailable, no_fuse)
    };

    let block_layers = "devicemapper layers: mount and every command reading their files";
    let block = if m.cap_sys_admin && m.loop_devices.is_yes() && m.fuse.is_yes() {
        usage(
            block_layers,
            Method::Kernel,
            "each device image served read-only by an in-process FUSE file, loop-mounted read-only and detached",
        )
    } else {
        usage(
            block_layers,
            Method::Unavailable,
            "needs root, loop devices and FUSE; `docker-mount extract` still writes a device image without them",
        )
    };

    let pool_layers = "zfs roots (--root a pool's disk images): every command";
    let pools = if m.fuse_mounts() {
        usage(
            pool_layers,
            Method::Fuse,
            "the pool read in userspace (never imported); each dataset served read-only by an in-process FUSE server, detached at once",
        )
    } else {
        usage(pool_layers, Method::Unavailable, no_fuse)
    };

    let readers = "export, diff, deleted, cat, find, timeline, attribute";
    let read = if m.noatime_view.is_yes() {
        usage(
            readers,
            Method::Userspace,
            "layers read by docker-mount through a private read-only noatime view; overlay's opaque markers from their xattrs",
        )
    } else {
        usage(
            readers,
            Method::Userspace,
            "layers read directly (O_NOATIME where allowed); opaque markers of image layers from tar-split, those of container layers named as unknown",
        )
    };

    vec![
        mount.for_drivers(&["overlay2", "overlay", "overlayfs", "vfs", "btrfs"]),
        fuse.for_drivers(&["aufs"]),
        block.for_drivers(&["devicemapper"]),
        pools.for_drivers(&["zfs"]),
        read,
        usage(
            "list, images, info, logs, history, layers, audit, roots, drivers, extract",
            Method::Userspace,
            "docker's metadata files, read-only",
        ),
    ]
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Yes => "yes",
        Status::No => "no",
        Status::Unknown => "?",
    }
}

fn line(name: &str, c: &Check) {
    println!("  {name:<14} {:<4} {}", status(c.status), c.detail);
}

pub fn run(cli: &Cli) -> Result<()> {
    let drivers = context::load_drivers(cli);
    let machine = capabilities::probe();
    let report = Report {
        version: env!("CARGO_PKG_VERSION").to_string(),
        commands: plan(&machine)
            .into_iter()
            .map(|mut u| {
                u.not_installed = u
                    .drivers
                    .iter()
                    .filter(|d| drivers.by_name(d).is_none())
                    .cloned()
                    .collect();
                u
            })
            .collect(),
        machine,
        drivers: Drivers {
            searched: driver_dirs(cli)
                .iter()
                .map(|d| d.display().to_string())
                .collect(),
            loaded: drivers
                .loaded
                .iter()
                .map(|d| Driver {
                    name: d.info.name.clone(),
                    version: d.info.version.clone(),
                    file: d.file.as_ref().map(|f| f.display().to_string()),
                })
                .collect(),
            failed: drivers.failed.clone(),
        },
    };
    if cli.json {
        return context::print_json(&report);
    }
    let m = &report.machine;
    println!("docker-mount {} on Linux {}", report.version, m.kernel);
    println!("\nmachine:");
    let who = match (m.root, m.cap_sys_admin) {
        (true, true) => "yes (uid 0, CAP_SYS_ADMIN)".to_string(),
        (true, false) => "uid 0 without CAP_SYS_ADMIN: no kernel mounts".to_string(),
        (false, true) => format!("no (uid {}), but CAP_SYS_ADMIN", m.euid),
        (false, false) => format!(
            "no (uid {}): no kernel mounts; FUSE through fusermount3, reads in userspace",
            m.euid
        ),
    };
    println!("  {:<14} {who}", "root");
    line("overlay", &m.overlay);
    line("lowerdir+", &m.lowerdir_plus);
    line("noatime view", &m.noatime_view);
    line("fuse", &m.fuse);
    line("fusermount3", &m.fusermount3);
    line("loop devices", &m.loop_devices);
    println!(
        "\ndriver plugins (from {}):",
        report.drivers.searched.join(", ")
    );
    for d in &report.drivers.loaded {
        println!(
            "  {:<14} {:<8} {}",
            d.name,
            d.version,
            d.file.as_deref().unwrap_or("built in")
        );
    }
    if report.drivers.loaded.is_empty() {
        println!("  none: containers list, but no filesystem can be opened; install the plugins of the drivers you need in <exe-dir>/drivers/ or pass --driver-dir");
    }
    for f in &report.drivers.failed {
        println!("  failed: {}: {}", f.file.display(), f.error);
    }
    println!("\nwhat the commands will use here:");
    for u in &report.commands {
        println!("  {}\n      {}: {}", u.what, u.method.label(), u.detail);
        if !u.not_installed.is_empty() {
            println!("      plugin not installed: {}", u.not_installed.join(", "));
        }
    }
    Ok(())
}
