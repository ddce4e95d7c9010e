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
    /// Mount a container's (or an image's) filesystem read-only.
    #[command(after_help = "Example: docker-mount --root ./docker mount web /mnt/web")]
    Mount {
        /// Container name, full id or unique id prefix (or an image with --image).
        target: String,
        /// Where to mount it (an existing directory outside the evidence).
        dir: PathBuf,
        /// Mount an image (name:tag or id) instead of a container.
        #[arg(long)]
        image: bool,
        /// How to ask the kernel for the overlay.
        #[arg(long, value_enum, default_value_t = commands::mount::Api::Auto)]
        mount_api: commands::mount::Api,
    },
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
    /// Unmount what `docker-mount mount` mounted.
    #[command(after_help = "Example: docker-mount umount /mnt/web")]
    Umount {
        dir: PathBuf,
        /// Detach now and finish when the mount is no longer busy.
        #[arg(long)]
        lazy: bool,
    },
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
