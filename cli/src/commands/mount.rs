//! `mount` and `umount`: read-only mounts of a container or image, by the
//! kernel (overlay, bind) or with FUSE over the union engine; `--all` for
//! every container at once.

use std::collections::HashSet;
use std::io::{BufRead as _, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context as _, Result};
use docker_mount_core::driver::{LayerSource, WhiteoutStyle};
use docker_mount_engine::model::stack::{self, Stack};
use docker_mount_engine::mounts::fuse::{self, FuseOptions, FuseReport, Signals};
use docker_mount_engine::mounts::kernel::{self, MountApi, MOUNT_SOURCE};
use docker_mount_engine::union::view;
use serde::Serialize;

use crate::context::{self, Context};
use crate::Cli;

/// `--mount-api`: how to ask the kernel for an overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Api {
    /// The new mount API when the kernel has it, else mount(2).
    Auto,
    /// fsopen/fsconfig, one lowerdir+ per layer (Linux >= 6.8).
    New,
    /// mount(2) with one option string.
    Legacy,
}

impl From<Api> for MountApi {
    fn from(a: Api) -> MountApi {
        match a {
            Api::Auto => MountApi::Auto,
            Api::New => MountApi::New,
            Api::Legacy => MountApi::Legacy,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// Container name, full id or unique id prefix (or an image with --image).
    #[arg(required_unless_present = "all")]
    pub target: Option<String>,
    /// Where to mount it (an existing directory outside the evidence).
    #[arg(required_unless_present = "all")]
    pub dir: Option<PathBuf>,
    /// Mount an image (name:tag or id) instead of a container.
    #[arg(long)]
    pub image: bool,
    /// How to ask the kernel for the overlay.
    #[arg(long, value_enum, default_value_t = Api::Auto)]
    pub mount_api: Api,
    /// Serve the view with FUSE (userspace) instead of a kernel mount. FUSE
    /// is also used by itself where the kernel cannot mount: aufs layers,
    /// block images, or not root (then fusermount3 is needed). Either way
    /// `mount` returns once the view serves, leaving a process that serves
    /// it until `docker-mount umount`.
    #[arg(long)]
    pub fuse: bool,
    /// With FUSE: serve in the foreground until unmounted or interrupted
    /// (Ctrl-C unmounts) instead of returning once mounted.
    #[arg(long, conflicts_with = "all")]
    pub foreground: bool,
    /// Accepted for compatibility: returning once mounted is the default.
    #[arg(long, hide = true, conflicts_with = "foreground")]
    pub background: bool,
    /// With FUSE: let other users in (file permissions still apply; without
    /// root this needs user_allow_other in /etc/fuse.conf).
    #[arg(long)]
    pub allow_other: bool,
    /// Also bind each named volume's data, read-only, at its mount point
    /// inside the view (kernel mounts only).
    #[arg(long, conflicts_with_all = ["image", "fuse"])]
    pub with_volumes: bool,
    /// Mount every container under DIR/<name> (a kernel mount where
    /// possible, FUSE in the background otherwise; --fuse for FUSE only).
    /// Broken containers are reported and skipped. Undo with `umount --all DIR`.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["target", "dir", "image"])]
    pub all: Option<PathBuf>,
    /// Internal: serve a FUSE mount for a parent `mount` (one JSON line on
    /// stdout once mounted, then stdio let go).
    #[arg(long, hide = true)]
    pub serve_detached: bool,
}

#[derive(Debug, clap::Args)]
pub struct UmountArgs {
    /// The mount point.
    #[arg(required_unless_present = "all")]
    pub dir: Option<PathBuf>,
    /// Detach now and finish when the mount is no longer busy.
    #[arg(long)]
    pub lazy: bool,
    /// Unmount every docker-mount mount below DIR, and remove the (empty)
    /// directories `mount --all DIR` made for them.
    #[arg(long, value_name = "DIR", conflicts_with = "dir")]
    pub all: Option<PathBuf>,
}

/// Why the kernel cannot mount a stack (so FUSE must), if it cannot.
fn kernel_cannot(stack: &Stack) -> Option<&'static str> {
    let aufs = stack.layers.iter().any(|l| {
        matches!(
            l.source,
            LayerSource::Diff {
                whiteouts: WhiteoutStyle::Aufs,
                ..
            }
        )
    });
    let block = stack
        .layers
        .iter()
        .any(|l| matches!(l.source, LayerSource::BlockImage { .. }));
    let dataset = stack
        .layers
        .iter()
        .any(|l| matches!(l.source, LayerSource::Dataset { .. }));
    if aufs {
        Some("the kernel has no aufs")
    } else if block {
        Some("block image layers (devicemapper) are loop-mounted by a serving process")
    } else if dataset {
        Some("dataset layers (zfs) are read from the pool by a serving process")
    } else if !fuse::is_root() {
        Some("kernel mounts need root")
    } else {
        None
    }
}

fn fuse_options(args: &MountArgs) -> FuseOptions {
    FuseOptions {
        allow_other: args.allow_other,
        ..FuseOptions::default()
    }
}

pub fn run(cli: &Cli, args: &MountArgs) -> Result<()> {
    if let Some(base) = &args.all {
        return mount_all(cli, base, args);
    }
    let (Some(target), Some(dir)) = (args.target.as_deref(), args.dir.as_deref()) else {
        bail!("mount needs a container (or image) and a directory, or --all DIR");
    };
    if args.serve_detached {
        // Signals first: the FUSE threads inherit the mask.
        let signals = Signals::block()?;
        let ctx = context::open(cli)?;
        let (what, stack) = context::resolve_stack(&ctx, target, args.image)?;
        return serve(cli, &ctx, &what, &stack, dir, args, signals);
    }
    let signals = Signals::block()?;
    let ctx = context::open(cli)?;
    let (what, stack) = context::resolve_stack(&ctx, target, args.image)?;
    for w in &stack.warnings {
        eprintln!("warning: {w}");
    }
    let why = kernel_cannot(&stack);
    if args.foreground && !args.fuse && why.is_none() {
        eprintln!("note: --foreground applies to FUSE mounts: the kernel mounts {what}");
    }
    if !args.fuse {
        if let Some(why) = why {
            eprintln!("note: {why}: mounting {what} with FUSE instead");
        }
    }
    if !args.fuse && why.is_none() {
        let report = kernel::mount_stack(&ctx.root, &stack, dir, args.mount_api.into())
            .with_context(|| format!("cannot mount {what} on {}", dir.display()))?;
        if args.with_volumes {
            if let Err(e) = mount_volumes(&ctx, target, &report.target) {
                unmount_below(&report.target);
                undo_one(&report.target);
                return Err(e);
            }
        }
        if let Some(sig) = signals.pending() {
            unmount_below(&report.target);
            undo_one(&report.target);
            bail!(
                "interrupted (signal {sig}): unmounted {} again",
                dir.display()
            );
        }
        if cli.json {
            return context::print_json(&report);
        }
        println!(
            "mounted {what} on {} read-only: {}, {} layers, {}",
            report.target.display(),
            report.method,
            report.layers,
            report.options
        );
        println!("undo with: docker-mount umount {}", dir.display());
        return Ok(());
    }
    if args.foreground {
        return serve(cli, &ctx, &what, &stack, dir, args, signals);
    }
    let report = spawn_server(cli, target, args.image, dir, args.allow_other)?;
    if let Some(sig) = signals.pending() {
        undo_one(&report.target);
        bail!(
            "interrupted (signal {sig}): unmounted {} again",
            dir.display()
        );
    }
    if cli.json {
        return context::print_json(&report);
    }
    print_fuse_report(&what, &report);
    println!("undo with: docker-mount umount {}", dir.display());
    Ok(())
}

fn print_fuse_report(what: &str, report: &FuseReport) {
    println!(
        "mounted {what} on {} read-only: fuse, {} layers, {}, served by process {}",
        report.target.display(),
        report.layers,
        report.options,
        report.pid
    );
}

/// Mounts with FUSE and serves until unmounted or interrupted. With
/// `--serve-detached`, tells the parent (one JSON line) and lets go of stdio.
fn serve(
    cli: &Cli,
    ctx: &Context,
    what: &str,
    stack: &Stack,
    dir: &Path,
    args: &MountArgs,
    signals: Signals,
) -> Result<()> {
    if args.serve_detached {
        for w in &stack.warnings {
            eprintln!("warning: {w}");
        }
    }
    let view = view::open(&ctx.root, stack)
        .with_context(|| format!("cannot open the layers of {what}"))?;
    for w in &view.warnings {
        eprintln!("warning: {w}");
    }
    let mounted = fuse::mount(&ctx.root, view.union, dir, &fuse_options(args))
        .with_context(|| format!("cannot mount {what} on {} with FUSE", dir.display()))?;
    let report = mounted.report().clone();
    if args.serve_detached {
        let line = serde_json::to_string(&report)?;
        let mut out = std::io::stdout();
        if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
            // Nobody to tell: the mount must not stay.
            undo_one(&report.target);
            return Err(e).context("cannot report the mount to the parent process");
        }
        fuse::detach_stdio()?;
    } else if cli.json {
        context::print_json(&report)?;
    } else {
        print_fuse_report(what, &report);
        println!(
            "serving it until `docker-mount umount {}` or Ctrl-C",
            dir.display()
        );
    }
    let ended = mounted.serve(&signals)?;
    if !args.serve_detached && !cli.json {
        match ended {
            fuse::Ended::Unmounted => println!("{} was unmounted", report.target.display()),
            fuse::Ended::Signal(_) => println!("unmounted {}", report.target.display()),
            fuse::Ended::Detached(_) => eprintln!(
                "{} was busy: detached it; it goes away when the last process using it leaves",
                report.target.display()
            ),
        }
    }
    Ok(())
}

/// Starts `docker-mount mount --fuse --serve-detached` in a new session and
/// waits until it has mounted (or failed): the mount outlives this process.
fn spawn_server(
    cli: &Cli,
    target: &str,
    image: bool,
    dir: &Path,
    allow_other: bool,
) -> Result<FuseReport> {
    let exe = std::env::current_exe().context("cannot find this program to start a server")?;
    let mut cmd = fuse::detached_command(&exe);
    cmd.arg("--root").arg(&cli.root);
    if let Some(d) = &cli.dataset {
        cmd.arg("--dataset").arg(d);
    }
    for d in &cli.driver_dirs {
        cmd.arg("--driver-dir").arg(d);
    }
    for _ in 0..cli.verbose {
        cmd.arg("-v");
    }
    cmd.args(["mount", "--fuse", "--serve-detached"]);
    if image {
        cmd.arg("--image");
    }
    if allow_other {
        cmd.arg("--allow-other");
    }
    cmd.arg("--").arg(target).arg(dir);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut s) = stderr {
            let _ = s.read_to_string(&mut text);
        }
        text
    });
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufReader::new(out).read_line(&mut line)?;
    }
    let errors = errors.join().unwrap_or_default();
    // The server's warnings are passed on; its error, if it failed, is ours.
    let (warnings, error) = match errors.rfind("docker-mount: ") {
        Some(i) if line.trim().is_empty() => (&errors[..i], Some(&errors[i + 14..])),
        _ => (errors.as_str(), None),
    };
    eprint!("{warnings}");
    if line.trim().is_empty() {
        let status = child.wait()?;
        match error {
            Some(e) => bail!("{}", e.trim()),
            None => bail!("the FUSE server failed ({status}); run the mount again with --fuse in the foreground (and -v) to see why"),
        }
    }
    serde_json::from_str(&line).with_context(|| format!("the FUSE server said {line:?}"))
}

/// Unmounts a mount of ours made a moment ago, however it can.
fn undo_one(target: &Path) {
    if fuse::unmount(target, false).is_err() && fuse::unmount(target, true).is_err() {
        fuse::detach(target);
    }
}

// ---------------------------------------------------------------------------
// --all

/// One container of `mount --all`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AllEntry {
    id: String,
    name: String,
    target: Option<PathBuf>,
    /// `overlay (...)`, `bind` or `fuse`.
    method: Option<String>,
    layers: Option<usize>,
    /// The process serving a FUSE mount.
    pid: Option<u32>,
    error: Option<String>,
    #[serde(skip)]
    created: bool,
}

/// docker's own rule for names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), which also
/// makes them safe single path components.
fn is_plain_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 128
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// The subdirectory name for a container: its name if plain and unused,
/// else its id, else a counter.
fn subdir_name(name: &str, id: &str, n: usize, used: &mut HashSet<String>) -> String {
    let pick = [name, id]
        .into_iter()
        .find(|c| is_plain_name(c) && !used.contains(*c))
        .map(String::from)
        .unwrap_or_else(|| format!("container-{n}"));
    used.insert(pick.clone());
    pick
}

fn undo_all(done: &[AllEntry], base: &Path, created_base: bool) {
    for e in done.iter().rev() {
        if let Some(t) = &e.target {
            if e.method.is_some() {
                undo_one(t);
            }
            if e.created {
                let _ = std::fs::remove_dir(t);
            }
        }
    }
    if created_base {
        let _ = std::fs::remove_dir(base);
    }
}

fn mount_all(cli: &Cli, base: &Path, args: &MountArgs) -> Result<()> {
    let signals = Signals::block()?;
    let ctx = context::open(cli)?;
    // A root served from a pool is no place on disk to mount into.
    let root = if docker_mount_engine::evidence::pool::is_served_path(ctx.root.path()) {
        None
    } else {
        Some(std::fs::canonicalize(ctx.root.path())?)
    };
    let created_base = match std::fs::create_dir(base) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", base.display())),
    };
    let base = match std::fs::canonicalize(base) {
        Ok(b) if !root.as_ref().is_some_and(|r| b.starts_with(r)) => b,
        Ok(_) => {
            if created_base {
                let _ = std::fs::remove_dir(base);
            }
            bail!(
                "refusing to mount into {}: it is inside the evidence",
                base.display()
            );
        }
        Err(e) => return Err(e).with_context(|| format!("cannot use {}", base.display())),
    };
    let mut used = HashSet::new();
    let mut entries: Vec<AllEntry> = Vec::new();
    for (n, item) in ctx.root.containers().into_iter().enumerate() {
        if let Some(sig) = signals.pending() {
            undo_all(&entries, &base, created_base);
            bail!("interrupted (signal {sig}): undid every mount made");
        }
        let c = match item {
            Ok(c) => c,
            Err(e) => {
                context::unreadable(format_args!("skipping container {}: {}", e.name, e.error));
                entries.push(AllEntry {
                    id: e.name.clone(),
                    name: String::new(),
                    target: None,
                    method: None,
                    layers: None,
                    pid: None,
                    error: Some(e.error.to_string()),
                    created: false,
                });
                continue;
            }
        };
        let name = c.name().to_string();
        let sub = base.join(subdir_name(&name, &c.id, n, &mut used));
        let mut entry = AllEntry {
            id: c.id.clone(),
            name: name.clone(),
            target: Some(sub.clone()),
            method: None,
            layers: None,
            pid: None,
            error: None,
            created: false,
        };
        match std::fs::create_dir(&sub) {
            Ok(()) => entry.created = true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let empty = std::fs::read_dir(&sub).is_ok_and(|mut d| d.next().is_none());
                if !empty {
                    entry.error = Some(format!(
                        "{} already exists and is not an empty directory",
                        sub.display()
                    ));
                }
            }
            Err(e) => {
                undo_all(&entries, &base, created_base);
                return Err(e).with_context(|| format!("cannot create {}", sub.display()));
            }
        }
        if entry.error.is_none() {
            if let Err(e) = mount_container(cli, &ctx, &c, &sub, args, &mut entry) {
                entry.error = Some(format!("{e:#}"));
                if entry.created {
                    let _ = std::fs::remove_dir(&sub);
                    entry.created = false;
                }
            }
        }
        if let Some(err) = &entry.error {
            context::unreadable(format_args!("skipping container {name} ({}): {err}", c.id));
            entry.target = None;
        }
        entries.push(entry);
    }
    if let Some(sig) = signals.pending() {
        undo_all(&entries, &base, created_base);
        bail!("interrupted (signal {sig}): undid every mount made");
    }
    if cli.json {
        return context::print_json(&entries);
    }
    let mounted: Vec<&AllEntry> = entries.iter().filter(|e| e.method.is_some()).collect();
    for e in &mounted {
        println!(
            "{:<24} {:<24} {}",
            e.name,
            e.method.as_deref().unwrap_or(""),
            e.target.as_deref().unwrap_or(Path::new("")).display()
        );
    }
    println!(
        "mounted {} of {} containers under {} read-only",
        mounted.len(),
        entries.len(),
        base.display()
    );
    println!("undo with: docker-mount umount --all {}", base.display());
    Ok(())
}

/// Mounts one container of `--all`: by the kernel where it can, else
/// (or if that fails) with a FUSE server in the background.
fn mount_container(
    cli: &Cli,
    ctx: &Context,
    c: &docker_mount_engine::model::container::Container,
    sub: &Path,
    args: &MountArgs,
    entry: &mut AllEntry,
) -> Result<()> {
    let stack = stack::container_stack(&ctx.root, &ctx.drivers, c)
        .with_context(|| format!("cannot resolve the layers of container {}", c.name()))?;
    for w in &stack.warnings {
        eprintln!("warning: {}: {w}", c.name());
    }
    let mut kernel_error = None;
    if !args.fuse && kernel_cannot(&stack).is_none() {
        match kernel::mount_stack(&ctx.root, &stack, sub, args.mount_api.into()) {
            Ok(r) => {
                entry.method = Some(r.method);
                entry.layers = Some(r.layers);
                return Ok(());
            }
            Err(e) => kernel_error = Some(e),
        }
    }
    match spawn_server(cli, &c.id, false, sub, args.allow_other) {
        Ok(r) => {
            if let Some(e) = kernel_error {
                eprintln!(
                    "note: {}: the kernel could not mount it ({e}); mounted with FUSE",
                    c.name()
                );
            }
            entry.method = Some(r.method);
            entry.layers = Some(r.layers);
            entry.pid = Some(r.pid);
            Ok(())
        }
        Err(e) => match kernel_error {
            Some(k) => bail!("kernel mount: {k}; FUSE: {e:#}"),
            None => Err(e),
        },
    }
}

// ---------------------------------------------------------------------------
// umount

/// What `umount --json` prints: the mount points unmounted.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Unmounted {
    pub unmounted: Vec<PathBuf>,
}

pub fn unmount(cli: &Cli, args: &UmountArgs) -> Result<()> {
    if let Some(base) = &args.all {
        return unmount_all(cli, base, args.lazy);
    }
    let Some(dir) = args.dir.as_deref() else {
        bail!("umount needs a directory, or --all DIR");
    };
    // Volumes mounted inside the view (`--with-volumes`) go first.
    for inner in mounts_below(dir)? {
        fuse::unmount(&inner, args.lazy)?;
    }
    fuse::unmount(dir, args.lazy)?;
    if cli.json {
        return context::print_json(&Unmounted {
            unmounted: vec![dir.to_path_buf()],
        });
    }
    println!("unmounted {}", dir.display());
    Ok(())
}

/// A mount docker-mount made: FUSE or overlay with our source, or one of
/// our read-only noatime binds.
fn is_docker_mount(m: &kernel::MountInfo) -> bool {
    fuse::is_read_only_mount(m)
        && (fuse::is_ours(m)
            || m.source == MOUNT_SOURCE
            || m.options.iter().any(|o| o == "noatime"))
}

/// Our mounts strictly below `dir`, deepest first (a path mounted twice
/// appears twice, topmost first).
fn mounts_below(dir: &Path) -> Result<Vec<PathBuf>> {
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("cannot use {}", dir.display()))?;
    let mut below: Vec<PathBuf> = kernel::mountinfo()?
        .into_iter()
        .filter(|m| m.mount_point.starts_with(&dir) && m.mount_point != dir && is_docker_mount(m))
        .map(|m| m.mount_point)
        .collect();
    below.reverse();
    below.sort_by_key(|t| std::cmp::Reverse(t.components().count()));
    Ok(below)
}

/// Best-effort removal of what `--with-volumes` mounted inside `dir`.
fn unmount_below(dir: &Path) {
    for inner in mounts_below(dir).unwrap_or_default() {
        let _ = fuse::unmount(&inner, true);
    }
}

/// Binds each named volume of the container read-only at its mount point
/// inside the mounted view at `top`.
fn mount_volumes(ctx: &Context, target: &str, top: &Path) -> Result<()> {
    let c = ctx.root.find_container(target)?;
    for m in c.config.mount_points.values() {
        if m.kind != "volume" || m.name.is_empty() {
            eprintln!(
                "not mounted: {} mount of {} at {} (outside the docker root)",
                m.kind, m.source, m.destination
            );
            continue;
        }
        if !docker_mount_core::beneath::is_safe_component(&m.name) {
            bail!(
                "volume name {:?} of {} is not a plain name",
                m.name,
                c.config_path.display()
            );
        }
        let at = top.join(m.destination.trim_start_matches('/'));
        // The mount point is resolved inside our own read-only mount, and
        // must be a real directory there (never a symlink leading elsewhere).
        let inside = std::fs::canonicalize(&at)
            .ok()
            .filter(|p| p.starts_with(top) && p.is_dir());
        let Some(at) = inside else {
            eprintln!(
                "not mounted: volume {} at {} (no such directory in the view)",
                m.name, m.destination
            );
            continue;
        };
        let data = ctx
            .root
            .join(Path::new("volumes").join(&m.name).join("_data"));
        let volume = Stack {
            driver: String::new(),
            layers: vec![stack::StackLayer {
                role: stack::Role::Image,
                driver_id: m.name.clone(),
                chain_id: None,
                diff_id: None,
                size: None,
                source: LayerSource::Full { dir: data },
            }],
            warnings: Vec::new(),
        };
        kernel::mount_stack(&ctx.root, &volume, &at, MountApi::Auto)
            .with_context(|| format!("cannot mount volume {} at {}", m.name, m.destination))?;
        eprintln!("mounted volume {} at {} read-only", m.name, m.destination);
    }
    Ok(())
}

fn unmount_all(cli: &Cli, base: &Path, lazy: bool) -> Result<()> {
    let base =
        std::fs::canonicalize(base).with_context(|| format!("cannot use {}", base.display()))?;
    // Deepest first; a path mounted twice is unmounted twice (top first).
    let targets = mounts_below(&base)?;
    let mut errors = Vec::new();
    let mut done = Vec::new();
    for t in &targets {
        match fuse::unmount(t, lazy) {
            Ok(()) => done.push(t.clone()),
            Err(e) => errors.push(format!("{}: {e}", t.display())),
        }
    }
    let unmounted = done.len();
    let mut removed = 0;
    let unique: HashSet<&PathBuf> = targets.iter().collect();
    for t in unique {
        let still = kernel::mountinfo()?.iter().any(|m| &m.mount_point == t);
        if t.parent() == Some(base.as_path()) && !still && std::fs::remove_dir(t).is_ok() {
            removed += 1;
        }
    }
    if !errors.is_empty() {
        bail!(
            "some mounts remain:\n  {}\nclose the files open in them and run `docker-mount umount --all {}` again, or add --lazy",
            errors.join("\n  "),
            base.display()
        );
    }
    if cli.json {
        return context::print_json(&Unmounted { unmounted: done });
    }
    println!(
        "unmounted {unmounted} mount{} below {}, removed {removed} empty director{}",
        if unmounted == 1 { "" } else { "s" },
        base.display(),
        if removed == 1 { "y" } else { "ies" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_become_ids() {
        let mut used = HashSet::new();
        assert_eq!(subdir_name("web", "abc", 0, &mut used), "web");
        assert_eq!(subdir_name("web", "abc", 1, &mut used), "abc");
        assert_eq!(subdir_name("../x", "def", 2, &mut used), "def");
        assert_eq!(subdir_name("a/b", "../..", 3, &mut used), "container-3");
        assert_eq!(subdir_name(".hidden", "", 4, &mut used), "container-4");
        assert_eq!(subdir_name("x\ny", "0f", 5, &mut used), "0f");
        assert!(!is_plain_name(""));
        assert!(!is_plain_name(&"a".repeat(200)));
    }
}
