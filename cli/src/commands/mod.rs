//! One module per subcommand.

pub mod diff;
pub mod drivers;
pub mod export;
pub mod images;
pub mod info;
pub mod list;
pub mod mount;

use anyhow::Result;

use crate::{Cli, Command};

pub fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::List { all } => list::run(cli, *all),
        Command::Images { all } => images::run(cli, *all),
        Command::Info { container } => info::run(cli, container),
        Command::Mount {
            target,
            dir,
            image,
            mount_api,
        } => mount::run(cli, target, dir, *image, *mount_api),
        Command::Export {
            target,
            output,
            image,
        } => export::run(cli, target, output.as_deref(), *image),
        Command::Diff { container, layers } => diff::run(cli, container, *layers),
        Command::Umount { dir, lazy } => mount::unmount(dir, *lazy),
        Command::Drivers => drivers::run(cli),
    }
}
