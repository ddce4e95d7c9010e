//! What every command starts from: the drivers and the opened root.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context as _, Result};
use docker_mount_core::loader::Drivers;
use docker_mount_engine::analysis::sink::FdSink;
use docker_mount_engine::evidence::discover::{self, FoundRoot};
use docker_mount_engine::evidence::host::HostFs;
use docker_mount_engine::evidence::userns::{self, ContainerIds, IdMap};
use docker_mount_engine::evidence::zpool;
use docker_mount_engine::model::root::DockerRoot;
use docker_mount_engine::model::stack::{self, Stack};
use docker_mount_engine::union::view::{self, View};

use crate::Cli;

/// Plugin directories: `<exe-dir>/drivers`, then each `--driver-dir`.
/// Never anything inside the evidence.
pub fn driver_dirs(cli: &Cli) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from))
    {
        dirs.push(exe_dir.join("drivers"));
    }
    dirs.extend(cli.driver_dirs.iter().cloned());
    dirs
}

/// Loads the plugins; failures are logged here and listed by `drivers`.
pub fn load_drivers(cli: &Cli) -> Drivers {
    let drivers = Drivers::load_dirs(&driver_dirs(cli));
    for f in &drivers.failed {
        tracing::info!("driver plugin {} not loaded: {}", f.file.display(), f.error);
    }
    drivers
}

pub struct Context {
    pub root: DockerRoot,
    pub drivers: Drivers,
    /// How the root was found, when `--root` was a host tree or held
    /// userns-remap sub-roots rather than being the root itself.
    pub found: Option<FoundRoot>,
    /// The host filesystem tree (given, or guessed from the root's path
    /// on first use: see [`Context::host`]).
    host: Host,
    /// What no output may be written into: the host tree when `--root`
    /// was one, else the docker root.
    pub evidence: PathBuf,
}

/// The host tree around the root: known, or to be guessed from the
/// root's path when a command first asks (most never do, and the guess
/// reads the host's daemon configuration).
struct Host {
    known: std::sync::OnceLock<Option<PathBuf>>,
    guess_from: PathBuf,
}

impl Host {
    fn known(host: Option<PathBuf>) -> Host {
        Host {
            known: std::sync::OnceLock::from(host),
            guess_from: PathBuf::new(),
        }
    }

    fn guessed_from(root: &Path) -> Host {
        Host {
            known: std::sync::OnceLock::new(),
            guess_from: root.to_path_buf(),
        }
    }
}

impl Context {
    /// The host filesystem tree (given, or guessed from the root's path).
    pub fn host(&self) -> Option<&Path> {
        self.host
            .known
            .get_or_init(|| discover::guess_host(&self.host.guess_from))
            .as_deref()
    }
}

/// The docker root `--root` designates, and how it was found.
pub struct Selection {
    pub root: PathBuf,
    pub found: Option<FoundRoot>,
    host: Host,
    /// `--root` was the host tree itself (not guessed from a root's path).
    pub host_given: bool,
}

/// The docker root `--root` designates: itself when it is a plain docker
/// root, else the single root that discovery finds in it (an error lists
/// them when there are several).
pub fn select_root(given: &Path, drivers: &Drivers) -> Result<Selection> {
    if matches!(given.try_exists(), Ok(false)) {
        anyhow::bail!(
            "{} does not exist; pass the docker data root (a copy of /var/lib/docker) or the mount point of the host's filesystem with --root",
            given.display()
        );
    }
    if discover::is_plain_root(given) || engine_root(given, drivers) {
        return Ok(Selection {
            root: given.to_path_buf(),
            found: Some(discover::classify_given(given)),
            host: Host::guessed_from(given),
            host_given: false,
        });
    }
    let found = discover::discover(given, drivers)
        .with_context(|| format!("cannot open docker root {}", given.display()))?;
    let one = match found.single() {
        Err(e) if found.present().next().is_none() => {
            return Err(NoDockerRoot(e.to_string()).into())
        }
        one => one?,
    };
    tracing::info!("using the docker root {}", one.path.display());
    Ok(Selection {
        root: one.path.clone(),
        found: Some(one.clone()),
        host_given: found.host.is_some() && !found.host_guessed,
        host: Host::known(found.host.clone()),
    })
}

/// Whether a driver recognises `path` as an engine's own root (podman's
/// storage, containerd's root) rather than a docker root.
fn engine_root(path: &Path, drivers: &Drivers) -> bool {
    docker_mount_core::beneath::Beneath::open(path).is_ok_and(|d| !discover::is_docker_root(&d))
        && drivers.loaded.iter().any(|d| {
            d.detect(path)
                .is_ok_and(|c| c > docker_mount_core::driver::Confidence::NONE)
        })
}

/// Whether `--root` names ZFS pool devices (an image or device, or a
/// directory of them that is no docker root) rather than a directory tree.
pub fn is_pool(given: &Path) -> bool {
    if zpool::is_device(given) {
        return true;
    }
    given.is_dir() && !discover::is_plain_root(given) && zpool::holds_pools(given)
}

/// Opens the docker root inside the pools of `--root`.
fn open_pool(cli: &Cli, drivers: Drivers) -> Result<Context> {
    let scan = zpool::scan(&cli.root, cli.txg);
    for p in &scan.problems {
        tracing::info!("{p}");
    }
    if let (Some(t), true) = (cli.txg, scan.uberblocks.is_empty()) {
        anyhow::bail!("--txg {t}: {}", scan.problems.join("; "));
    }
    if scan.candidates.is_empty() && cli.dataset.is_none() && scan.failures == 0 {
        // Pools read (encrypted datasets aside), and no docker in them: a
        // disk without docker.
        let e = scan.select(None, &cli.root).err().map(|e| e.to_string());
        return Err(NoDockerRoot(e.unwrap_or_default()).into());
    }
    let chosen = scan.select(cli.dataset.as_deref(), &cli.root)?;
    tracing::info!("using the docker root in dataset {}", chosen.dataset);
    let others: Vec<&str> = scan
        .candidates
        .iter()
        .filter(|c| c.dataset != chosen.dataset)
        .map(|c| c.dataset.as_str())
        .collect();
    if cli.dataset.is_none() && !others.is_empty() {
        eprintln!(
            "note: reading dataset {}; also holding a docker root: {} (choose with --dataset)",
            chosen.dataset,
            others.join(", ")
        );
    }
    let (pool, served) =
        zpool::open(chosen).with_context(|| format!("cannot open dataset {}", chosen.dataset))?;
    let root = DockerRoot::open_with(&served.path(), &drivers)
        .with_context(|| format!("cannot open the docker root in dataset {}", chosen.dataset))?
        .with_pool(pool);
    Ok(Context {
        root,
        drivers,
        found: None,
        host: Host::known(None),
        evidence: cli.root.clone(),
    })
}

/// `--root` exists but holds no docker root at all (a disk without
/// docker): listings print their empty shape rather than fail.
#[derive(Debug)]
pub struct NoDockerRoot(String);

impl std::fmt::Display for NoDockerRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoDockerRoot {}

/// Like [`open`], for listings: `None`, with a one-line note on stderr,
/// when `--root` holds no docker root (exit status 0, empty output).
pub fn open_listing(cli: &Cli) -> Result<Option<Context>> {
    match open(cli) {
        Ok(ctx) => Ok(Some(ctx)),
        Err(e) => match e.downcast_ref::<NoDockerRoot>() {
            Some(none) => {
                eprintln!("note: {none}");
                Ok(None)
            }
            None => Err(e),
        },
    }
}

/// `--dataset` and `--txg` on a root that is no pool: an error.
pub fn refuse_pool_options(cli: &Cli) -> Result<()> {
    let option = match (&cli.dataset, cli.txg) {
        (Some(d), _) => format!("--dataset {d}"),
        (None, Some(t)) => format!("--txg {t}"),
        (None, None) => return Ok(()),
    };
    anyhow::bail!(
        "{option}: {} holds no ZFS pool device; {} selects what to read inside a pool given with --root",
        cli.root.display(),
        option.split(' ').next().unwrap_or_default()
    )
}

pub fn open(cli: &Cli) -> Result<Context> {
    let drivers = load_drivers(cli);
    if is_pool(&cli.root) {
        return open_pool(cli, drivers);
    }
    refuse_pool_options(cli)?;
    let sel = select_root(&cli.root, &drivers)?;
    let root = DockerRoot::open_with(&sel.root, &drivers)
        .with_context(|| format!("cannot open docker root {}", sel.root.display()))?;
    let evidence = if sel.host_given {
        cli.root.clone()
    } else {
        sel.root
    };
    Ok(Context {
        root,
        drivers,
        found: sel.found,
        host: sel.host,
        evidence,
    })
}

/// The layers of a container, or of an image when `image` is set, with
/// a description of which for messages.
pub fn resolve_stack(ctx: &Context, target: &str, image: bool) -> Result<(String, Stack)> {
    if image {
        let img = ctx.root.find_image(target)?;
        let stack = stack::image_stack(&ctx.root, &ctx.drivers, &img)
            .with_context(|| format!("cannot resolve the layers of image {}", img.id))?;
        return Ok((format!("image {}", img.id), stack));
    }
    let c = ctx.root.find_container(target)?;
    let stack = stack::container_stack(&ctx.root, &ctx.drivers, &c)
        .with_context(|| format!("cannot resolve the layers of container {}", c.name()))?;
    Ok((format!("container {} ({})", c.name(), c.id), stack))
}

/// Opens the userspace view of a container or image, printing its warnings.
pub fn open_view(ctx: &Context, target: &str, image: bool) -> Result<(String, View)> {
    let (what, stack) = resolve_stack(ctx, target, image)?;
    for w in &stack.warnings {
        eprintln!("warning: {w}");
    }
    let view = view::open(&ctx.root, &stack)
        .with_context(|| format!("cannot open the layers of {what}"))?;
    for w in &view.warnings {
        eprintln!("warning: {w}");
    }
    Ok((what, view))
}

/// A tar stream's output: standard output for none or `-` (never a
/// terminal), else a new file outside the evidence.
pub fn tar_output(ctx: &Context, output: Option<&Path>) -> Result<FdSink<std::fs::File>> {
    use std::io::IsTerminal;
    use std::os::fd::AsFd;
    let file = match output.filter(|o| *o != Path::new("-")) {
        None if std::io::stdout().is_terminal() => {
            anyhow::bail!("refusing to write a tar stream to a terminal; use -o FILE or a pipe")
        }
        None => std::fs::File::from(std::io::stdout().as_fd().try_clone_to_owned()?),
        Some(path) => {
            check_output(ctx, path)?;
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?
        }
    };
    Ok(FdSink::new(file))
}

/// Refuses an output path inside the evidence.
pub fn check_output(ctx: &Context, out: &Path) -> Result<()> {
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let parent =
        std::fs::canonicalize(parent).with_context(|| format!("cannot write {}", out.display()))?;
    let evidence =
        std::iter::once(ctx.evidence.as_path()).chain(ctx.root.evidence_dirs().map(|d| d.path()));
    for dir in evidence {
        // A served dataset (`/proc/self/fd/<n>/.`) is no place on disk.
        if docker_mount_engine::evidence::pool::is_served_path(dir) {
            continue;
        }
        let dir = std::fs::canonicalize(dir)?;
        if parent.starts_with(&dir) {
            anyhow::bail!(
                "refusing to write {} inside the evidence {}; write it outside the evidence",
                out.display(),
                dir.display()
            );
        }
    }
    Ok(())
}

/// An owner for a table: `uid:gid` on disk, or the container's view with
/// the ids on disk beside it when the root's ids are remapped.
pub fn owner(uid: u32, gid: u32, container: Option<ContainerIds>) -> String {
    match container {
        Some(c) => format!("{}:{} (disk {uid}:{gid})", c.uid, c.gid),
        None => format!("{uid}:{gid}"),
    }
}

/// The id maps of the root (userns-remap or rootless, or `--uid-map` /
/// `--gid-map`): how ids on disk relate to the container's.
pub fn id_map(cli: &Cli, ctx: &Context) -> Result<Option<IdMap>> {
    let host = ctx.host().and_then(|h| HostFs::open(h).ok());
    let map = userns::resolve(
        host.as_ref(),
        ctx.found.as_ref(),
        cli.uid_map.as_deref(),
        cli.gid_map.as_deref(),
    )?;
    if map.is_none() {
        warn_if_unmapped_rootless(ctx);
    }
    Ok(map)
}

/// A root owned by a user, not root, is a rootless daemon's: its ids on
/// disk are shifted by that user's subordinate range, which is unknown
/// without the host tree or `--uid-map`. Say so rather than show disk ids
/// as if the container had them.
fn warn_if_unmapped_rootless(ctx: &Context) {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(ctx.root.path()) else {
        return;
    };
    if meta.uid() != 0 {
        eprintln!(
            "warning: {} is owned by uid {}, like a rootless daemon's root: owners are shown as stored on disk (shifted by the user's subuid range); pass the host tree as --root, or --uid-map/--gid-map, to see the container's ids",
            ctx.root.path().display(),
            meta.uid()
        );
    }
}

/// A bad option value found after parsing (a `--filter` clause): exit
/// status 2, like clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Set once an item could not be read while the others were output.
static PARTIAL: AtomicBool = AtomicBool::new(false);

/// Reports an item that could not be read (naming it) while the command
/// goes on with the others: a warning on stderr, and exit status 3.
pub fn unreadable(what: impl std::fmt::Display) {
    eprintln!("warning: {what}");
    PARTIAL.store(true, Ordering::Relaxed);
}

/// Whether [`unreadable`] was called: the output is partial.
pub fn partial() -> bool {
    PARTIAL.load(Ordering::Relaxed)
}

/// Whether `--json` output is indented: for a terminal. Into a pipe or a
/// file it is compact, one line: programs read it, and `find` of a big
/// glob prints 40% fewer bytes, in less time.
pub fn pretty_json() -> bool {
    std::io::IsTerminal::is_terminal(&std::io::stdout())
}

/// Prints a value as JSON on stdout, indented on a terminal ([`pretty_json`]).
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    use std::io::Write as _;
    // Streamed, not held whole: `find` of a big glob prints hundreds of MB.
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    if pretty_json() {
        serde_json::to_writer_pretty(&mut out, value)?;
    } else {
        serde_json::to_writer(&mut out, value)?;
    }
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}
