//! docker-mount: read, mount and export the containers of an offline docker
//! root without ever writing to it. This binary only parses, dispatches and
//! prints; the work happens in docker-mount-core and the driver plugins.

mod commands;
mod context;
mod driver_opts;
mod schemas;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit statuses: the same for every command.
const EXIT_ERROR: u8 = 1;
/// Bad arguments: clap's own status for them, used for ours too.
const EXIT_USAGE: u8 = 2;
/// Some items (containers, images) could not be read: each was named on
/// stderr, and the output holds the others.
const EXIT_PARTIAL: u8 = 3;

const EXIT_HELP: &str =
    "With --json, standard output is one JSON document (an empty list or object when
nothing is found, also when --root holds no docker root), indented on a terminal and
on one line otherwise, and every diagnostic goes to standard error. `timeline --format jsonl` (also chosen by --json) and
`attribute --bodyfile --json` print one JSON object a line. Commands writing data
(export, cat, a timeline bodyfile) write it. Schemas: docs/schemas/v1/.

Exit status:
  0  success (also: nothing found, or no docker root under --root for list, images,
     timeline --all: a note on stderr)
  1  error: nothing useful was output (message on stderr)
  2  usage error (bad arguments)
  3  partial: some containers or images could not be read (each named on stderr);
     the output holds the others

Example: docker-mount --root /mnt/evidence/var/lib/docker list --all";

#[derive(Parser)]
#[command(
    name = "docker-mount",
    version,
    about = "Read, mount and export the containers of an offline docker root, read-only"
)]
#[command(after_help = EXIT_HELP)]
pub struct Cli {
    /// The docker data root to examine, the mount point of a host filesystem holding it, or
    /// a ZFS pool's disk image or block device (its pool's other disks are found beside it) or
    /// a directory of such images.
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/docker",
        value_name = "PATH"
    )]
    pub root: PathBuf,
    /// In a ZFS pool: the dataset (or snapshot) holding the docker root, when several do
    /// (`roots` lists them), e.g. pool/docker@before-cleanup.
    #[arg(long, global = true, value_name = "NAME")]
    pub dataset: Option<String>,
    /// In a ZFS pool: read the pool as of this older txg (one of the uberblocks `roots`
    /// lists) instead of its newest; fails naming what was overwritten since.
    #[arg(long, global = true, value_name = "N")]
    pub txg: Option<u64>,
    /// Another directory of driver plugins (besides <exe-dir>/drivers).
    #[arg(long = "driver-dir", global = true, value_name = "DIR")]
    pub driver_dirs: Vec<PathBuf>,
    /// A storage driver option KEY=VALUE (repeatable), passed to the plugins.
    #[arg(long = "driver-opt", global = true, value_name = "KEY=VALUE")]
    pub driver_opts: Vec<String>,
    /// devicemapper direct-lvm: the thin pool's data device or image (driver option dm.pool_data).
    #[arg(long, global = true, value_name = "PATH")]
    pub dm_pool_data: Option<PathBuf>,
    /// devicemapper direct-lvm: the thin pool's metadata device or image (dm.pool_metadata).
    #[arg(long, global = true, value_name = "PATH")]
    pub dm_pool_metadata: Option<PathBuf>,
    /// Read on past bad metadata checksums (thin-pool metadata), warning about each.
    #[arg(long, global = true)]
    pub ignore_checksums: bool,
    /// containerd image store: containerd's root holding the layers of a docker root's
    /// overlayfs containers (driver option containerd_root; default: <root>/containerd/daemon,
    /// else the sibling <root>/../containerd).
    #[arg(long, global = true, value_name = "DIR")]
    pub containerd_root: Option<PathBuf>,
    /// Print JSON instead of a table: one document on stdout, diagnostics on stderr
    /// (schemas: docs/schemas/v1; exit statuses: docker-mount --help).
    #[arg(long, global = true)]
    pub json: bool,
    /// User ids as the containers saw them: CONTAINER:HOST:COUNT[,...] (default: from the
    /// userns-remap or rootless root and the host's etc/subuid).
    #[arg(long = "uid-map", global = true, value_name = "MAP")]
    pub uid_map: Option<String>,
    /// Group ids likewise (default: etc/subgid, else the uid map).
    #[arg(long = "gid-map", global = true, value_name = "MAP")]
    pub gid_map: Option<String>,
    /// More logging (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// List containers (running ones only, unless --all).
    #[command(
        after_help = "Unreadable containers are always listed (with their error; exit status 3).\n\nExamples:\n  docker-mount --root ./docker list --all --json\n  docker-mount --root ./docker list --filter label=app=web,status=exited --last 5\n  docker-mount --root /mnt/node list --all --skip-support --ports"
    )]
    List(commands::list::ListArgs),
    /// List images with their tags, digests and layers (dangling ones too).
    #[command(after_help = "Example: docker-mount --root ./docker images --all")]
    Images {
        /// Also show intermediate build images (untagged parents of other images).
        #[arg(short, long)]
        all: bool,
    },
    /// Everything known about one container: config, state, layers, mounts, privileges.
    #[command(after_help = "Example: docker-mount --root ./docker info web")]
    Info {
        /// Container name, full id or unique id prefix.
        container: String,
    },
    /// Mount a container's (or an image's) filesystem read-only (kernel or FUSE).
    #[command(
        after_help = "Examples:\n  docker-mount --root ./docker mount web /mnt/web\n  docker-mount --root ./docker mount --fuse web /mnt/web\n  docker-mount --root ./docker mount --fuse --foreground web /mnt/web\n  docker-mount --root ./docker mount --all /mnt/all"
    )]
    Mount(commands::mount::MountArgs),
    /// Write a container's (or image's) filesystem as a tar stream; needs no root.
    #[command(after_help = "Example: docker-mount --root ./docker export web -o web.tar")]
    Export {
        /// Container name, full id or unique id prefix (or an image with --image).
        target: String,
        /// Output file, `-` for standard output (the default when it is not a terminal).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Export an image (name:tag or id) instead of a container.
        #[arg(long)]
        image: bool,
        /// Keep owners as stored on disk; by default a userns-remapped or rootless
        /// root's ids are written as the container saw them, like `docker export`.
        #[arg(long)]
        disk_ids: bool,
        /// Include the contents of named volumes at their mount points
        /// (docker export leaves them out).
        #[arg(long)]
        with_volumes: bool,
    },
    /// What a container changed against its image (A added, C changed, D deleted).
    #[command(
        after_help = "Like docker diff, plus the entries whose type, mode, owner, size and mtime
are all equal but whose content (or symlink target) is not: a write whose
mtime was put back (touch -r). These are marked \"content only\".

Example: docker-mount --root ./docker diff web --layers"
    )]
    Diff {
        /// Container name, full id or unique id prefix.
        container: String,
        /// Name the layer that held each changed or deleted path before.
        #[arg(long)]
        layers: bool,
        /// Which entries with equal metadata have their content compared.
        #[arg(long, value_enum, default_value_t = commands::diff::ContentArg::Auto)]
        content: commands::diff::ContentArg,
    },
    /// Every whiteout and opaque directory of a container's (or image's) layers, and what each hid.
    #[command(
        after_help = "Each hidden entry names the layer that holds it; recover it with\n`docker-mount cat --layer <layer> <container> <path>`. --json lists every hidden entry.\n\nExample: docker-mount --root ./docker deleted web --json"
    )]
    Deleted {
        /// Container name, full id or unique id prefix (or an image with --image).
        target: String,
        /// Read an image (name:tag or id) instead of a container.
        #[arg(long)]
        image: bool,
    },
    /// Write one file's content from the view, or from a single layer (even if deleted above it).
    #[command(
        after_help = "Example: docker-mount --root ./docker cat --layer 3f2a9c web /etc/shadow > shadow"
    )]
    Cat {
        /// Container name, full id or unique id prefix (or an image with --image).
        target: String,
        /// The file's path inside the container, e.g. /etc/passwd.
        path: PathBuf,
        /// Read from this layer only: driver (cache) id, chain id, or a unique prefix of either.
        #[arg(long, value_name = "ID")]
        layer: Option<String>,
        /// Output file instead of standard output (`-` for standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Read an image (name:tag or id) instead of a container.
        #[arg(long)]
        image: bool,
    },
    /// File times of a container's (or image's) view, marked with their layer, and docker's events.
    #[command(
        after_help = "Bodyfile names read `<container>:/path (layer <short id>)`; events `[container web] started`.\n\nExamples:\n  docker-mount --root ./docker timeline web -o web.body && mactime -b web.body -d\n  docker-mount --root ./docker timeline --all --format jsonl -o all.jsonl"
    )]
    #[command(group(clap::ArgGroup::new("what").required(true).args(["container", "all", "image"])))]
    Timeline {
        /// Container name, full id or unique id prefix.
        container: Option<String>,
        /// Every container (broken ones are skipped with a warning) and every image's events.
        #[arg(long)]
        all: bool,
        /// An image's view and events (name:tag or id) instead of a container.
        #[arg(long, value_name = "REF")]
        image: Option<String>,
        /// Output format (default: bodyfile; jsonl with --json).
        #[arg(long, value_enum)]
        format: Option<commands::timeline::Format>,
        /// Output file instead of standard output (`-` for standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Which layers hold a path (or a glob's paths), the images on them, the version each container and image sees, and where it was deleted.
    #[command(
        after_help = "Reports metadata (type, size, mode, owners, mtime, link target, device), like\n`find -printf`; --hash adds the sha256 of regular files, reading their content.\nGlobs: `*` within a name, `**` across names, `?`, `[a-z]`; quote them. Non-UTF-8 bytes as `\\xNN`.\n\nExamples:\n  docker-mount --root ./docker find /etc/passwd\n  docker-mount --root ./docker find '/root/**/*.sh' --json\n  docker-mount --root ./docker find '/usr/bin/*' --hash --json > bin-hashes.json"
    )]
    Find {
        /// An absolute path as containers see it (/etc/passwd) or a glob ('/etc/*.conf').
        query: std::ffi::OsString,
        /// Report at most this many paths (a glob may match many).
        #[arg(long, value_name = "N", default_value_t = docker_mount_engine::analysis::provenance::DEFAULT_LIMIT)]
        limit: usize,
        /// Also read every reported regular file and give its sha256 (metadata only without it).
        #[arg(long)]
        hash: bool,
    },
    /// Unmount what `docker-mount mount` mounted.
    #[command(
        after_help = "Examples:\n  docker-mount umount /mnt/web\n  docker-mount umount --all /mnt/all"
    )]
    Umount(commands::mount::UmountArgs),
    /// A container's logs from docker's files: json-file (rotated, .gz), local, the dual-logging cache.
    #[command(
        after_help = "Default output: TIME STREAM LINE, control characters escaped. --raw prints what\n`docker logs` would (stderr records on stderr), -t adds docker's timestamps.\n\nExamples:\n  docker-mount --root /mnt/host logs web --since 2024-01-02T03:00:00Z\n  docker-mount --root ./docker logs web --raw -t > web.log 2>&1"
    )]
    Logs {
        /// Container name, full id or unique id prefix.
        container: String,
        /// Only records at or after this time (RFC 3339, a date, or unix seconds).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only records at or before this time.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// The bytes `docker logs` would print (stdout and stderr records on stdout and stderr).
        #[arg(long)]
        raw: bool,
        /// With --raw: prefix each record with its time, as `docker logs -t`.
        #[arg(short = 't', long)]
        timestamps: bool,
        /// List the log files found instead of reading them.
        #[arg(long)]
        files: bool,
    },
    /// An image's build history (created by, created, empty layers) joined with its layers on disk.
    #[command(after_help = "Example: docker-mount --root ./docker history small:1 --disk-usage")]
    History {
        /// Image name:tag, id or unique id prefix.
        image: String,
        /// Do not shorten commands and layer ids.
        #[arg(long)]
        no_trunc: bool,
        /// Also measure each layer directory (files and bytes on disk).
        #[arg(long)]
        disk_usage: bool,
    },
    /// Every layer directory on disk with the images and containers using it; orphans too.
    #[command(
        after_help = "Orphans are layer directories no image or container records: remnants of\nremoved containers and images, or of interrupted pulls and builds. They are\nlisted with their size, times and what they sat on.\n\nExample: docker-mount --root ./docker layers --orphans --json"
    )]
    Layers {
        /// Only the orphans.
        #[arg(long)]
        orphans: bool,
        /// Measure every layer, not only orphans.
        #[arg(long)]
        sizes: bool,
        /// Write one layer directory (an orphan, say) as a tar stream, raw:
        /// whiteouts and opaque markers as they are on disk.
        #[arg(long, value_name = "ID")]
        export: Option<String>,
        /// With --export: output file instead of standard output.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Which container, image and layer host paths belong to, and each path inside the container.
    #[command(
        after_help = "Host paths are text from a listing (fls, find, an EDR alert), never opened: any prefix\nworks (/var/lib/docker, the --root path, a mount point of the host image). Layer files\n(overlay2 diff/ and l/<short>, aufs diff/, vfs, btrfs, containerd snapshots), mounted views\n(merged/, aufs mnt/, devicemapper mnt/<id>/rootfs), containers/<id>/ files, layerdb and volumes.\n\n--bodyfile keeps each line and appends |kind|driver|layer|role|containers|images\n(containers: name:path:seen items joined by ','; mactime ignores the extra fields);\nwith --json, one {\"line\", \"attribution\"} object a line.\n\n--journal IMAGE lists the names deleted in the rw layers that the ext4 partition's journal\nstill holds (The Sleuth Kit's ifind, fls, istat, icat read the image), each attributed, with\nits inode for icat.\n\nExamples:\n  docker-mount --root /mnt/host/var/lib/docker attribute /var/lib/docker/overlay2/<id>/diff/tmp/x\n  fls -r -m /var/lib/docker -o 2048 host.img | docker-mount --root ./docker attribute --bodyfile -\n  docker-mount --root /mnt/host/var/lib/docker attribute --journal host.img --offset 2048 --partition-root /var/lib/docker"
    )]
    Attribute {
        /// Host paths; `-` reads more, one a line, from standard input.
        #[arg(required_unless_present_any = ["bodyfile", "journal"])]
        paths: Vec<std::ffi::OsString>,
        /// Annotate a TSK/mactime bodyfile (MD5|name|inode|mode|UID|GID|size|atime|mtime|ctime|crtime) line by line (`-`: standard input).
        #[arg(long, value_name = "FILE", conflicts_with = "paths")]
        bodyfile: Option<PathBuf>,
        /// An ext4 partition (or disk) image holding the root: list the names deleted in each
        /// container's rw layer that its jbd2 journal still holds, attributed, with their inodes.
        #[arg(long, value_name = "IMAGE", conflicts_with_all = ["paths", "bodyfile"])]
        journal: Option<PathBuf>,
        /// With --journal on a disk image: the partition's start, in sectors (TSK's -o).
        #[arg(long, value_name = "SECTORS", requires = "journal")]
        offset: Option<u64>,
        /// With --journal: where the docker root lies inside the partition
        /// (`/` when it is the root's own partition).
        #[arg(
            long,
            value_name = "PATH",
            default_value = "/var/lib/docker",
            requires = "journal"
        )]
        partition_root: PathBuf,
    },
    /// Daemon exposure and risky containers: tcp without TLS, privileged, host namespaces, sensitive binds, capabilities, unconfined, root, userns-remap.
    #[command(
        after_help = "Reads the daemon's configuration from the host tree (etc/docker/daemon.json,\netc/default/docker, systemd units and drop-ins) and every container of every root found.\nEach finding has a severity and the file it comes from.\n\nExample: docker-mount --root /mnt/host audit --json"
    )]
    Audit,
    /// Every docker root in --root: the root itself, its userns-remap sub-roots, or all the roots of a host filesystem.
    #[command(
        after_help = "--root may be the mount point of a whole host filesystem: roots come from\n/var/lib/docker, data-root in etc/docker/daemon.json, DOCKER_OPTS in etc/default/docker,\n-g/--data-root in systemd units and drop-ins, userns-remap sub-roots <root>/<uid>.<gid>,\nand rootless roots in home/*/.local/share/docker. Other commands use the single root\nfound, or list the choices.\n\nExample: docker-mount --root /mnt/host roots"
    )]
    Roots,
    /// Write a layer's block device (a devicemapper thin device) as a sparse raw image, with its sha256.
    #[command(
        after_help = "Examples:\n  docker-mount --root ./docker extract web -o web.img\n  docker-mount --root ./docker extract --device 12 -o dev12.img\n  docker-mount --root /mnt/e --dm-pool-data pool_tdata.img --dm-pool-metadata pool_tmeta.img extract web -o web.img"
    )]
    Extract(commands::extract::ExtractArgs),
    /// List the driver plugins loaded, and those that failed to load.
    #[command(after_help = "Example: docker-mount drivers --json")]
    Drivers,
    /// What this machine can do (root, overlay, FUSE, loop, lowerdir+), the drivers loaded, and what each command will use.
    #[command(
        after_help = "Reads no evidence: run it first on a new workstation.\n\nExample: docker-mount doctor --json"
    )]
    Doctor,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Examples:\n  docker-mount completions bash > /etc/bash_completion.d/docker-mount\n  docker-mount completions zsh > ~/.zfunc/_docker-mount\n  docker-mount completions fish > ~/.config/fish/completions/docker-mount.fish"
    )]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Write the JSON schemas of every --json output into DIR/<version> (DIR: docs/schemas).
    #[command(hide = true)]
    Schemas {
        /// Where to write them.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Print the manual page, docker-mount(1), in roff.
    #[command(after_help = "Example: docker-mount man > docker-mount.1 && man -l docker-mount.1")]
    Man,
}

fn init_tracing(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Threads that allocate what other threads free (a walk and its writer,
/// parallel reads and the report) contend on the system allocator's locks;
/// mimalloc frees across threads without them. Its heaps ask for huge
/// pages, whose zeroing costs a short run more than it saves: `main` turns
/// them off for the process.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader goes away (`| head`).
    // SAFETY: setting a signal disposition to its default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // SAFETY: PR_SET_THP_DISABLE only changes how this process's memory is
    // backed; a refusal changes nothing.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    if let Err(e) = driver_opts::apply(&cli) {
        eprintln!("docker-mount: {e:#}");
        return ExitCode::from(EXIT_ERROR);
    }
    match commands::run(&cli) {
        Ok(()) if context::partial() => ExitCode::from(EXIT_PARTIAL),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("docker-mount: {e:#}");
            if e.downcast_ref::<context::UsageError>().is_some() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_ERROR)
            }
        }
    }
}
