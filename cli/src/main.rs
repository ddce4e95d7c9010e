//! docker-mount: read, mount and export the containers of an offline docker
//! root without ever writing to it. This binary only parses, dispatches and
//! prints; the work happens in docker-mount-core and the driver plugins.

mod commands;
mod context;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "docker-mount",
    version,
    about = "Read, mount and export the containers of an offline docker root, read-only"
)]
#[command(after_help = "Example: docker-mount --root /mnt/evidence/var/lib/docker list --all")]
pub struct Cli {
    /// The docker data root to examine.
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/docker",
        value_name = "PATH"
    )]
    pub root: PathBuf,
    /// Another directory of driver plugins (besides <exe-dir>/drivers).
    #[arg(long = "driver-dir", global = true, value_name = "DIR")]
    pub driver_dirs: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// More logging (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// List containers (running ones only, unless --all).
    #[command(after_help = "Example: docker-mount --root ./docker list --all --json")]
    List {
        /// Show every container, not only those running at shutdown.
        #[arg(short, long)]
        all: bool,
    },
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
        after_help = "Examples:\n  docker-mount --root ./docker mount web /mnt/web\n  docker-mount --root ./docker mount --fuse --background web /mnt/web\n  docker-mount --root ./docker mount --all /mnt/all"
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
    },
    /// What a container changed against its image (A added, C changed, D deleted).
    #[command(after_help = "Example: docker-mount --root ./docker diff web --layers")]
    Diff {
        /// Container name, full id or unique id prefix.
        container: String,
        /// Name the layer that held each changed or deleted path before.
        #[arg(long)]
        layers: bool,
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
        /// Output format.
        #[arg(long, value_enum, default_value_t = commands::timeline::Format::Bodyfile)]
        format: commands::timeline::Format,
        /// Output file instead of standard output (`-` for standard output).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Which layers hold a path (or a glob's paths), the images on them, the version each container and image sees, and where it was deleted.
    #[command(
        after_help = "Globs: `*` within a name, `**` across names, `?`, `[a-z]`; quote them. Non-UTF-8 bytes as `\\xNN`.\n\nExamples:\n  docker-mount --root ./docker find /etc/passwd\n  docker-mount --root ./docker find '/root/**/*.sh' --json"
    )]
    Find {
        /// An absolute path as containers see it (/etc/passwd) or a glob ('/etc/*.conf').
        query: std::ffi::OsString,
        /// Report at most this many paths (a glob may match many).
        #[arg(long, value_name = "N", default_value_t = docker_mount_core::provenance::DEFAULT_LIMIT)]
        limit: usize,
    },
    /// Unmount what `docker-mount mount` mounted.
    #[command(
        after_help = "Examples:\n  docker-mount umount /mnt/web\n  docker-mount umount --all /mnt/all"
    )]
    Umount(commands::mount::UmountArgs),
    /// List the driver plugins loaded, and those that failed to load.
    #[command(after_help = "Example: docker-mount drivers --json")]
    Drivers,
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

fn main() -> ExitCode {
    // Like other Unix tools, stop quietly when the reader goes away (`| head`).
    // SAFETY: setting a signal disposition to its default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("docker-mount: {e:#}");
            ExitCode::FAILURE
        }
    }
}
