//! `completions`: shell completion scripts generated from the clap definitions.

use anyhow::Result;
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::Cli;

/// The name completions are registered for.
const BIN: &str = "docker-mount";

pub fn run(shell: Shell) -> Result<()> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, BIN, &mut std::io::stdout().lock());
    Ok(())
}
