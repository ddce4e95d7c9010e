//! `audit`: how exposed the host's docker was, from the daemon's
//! configuration and every container of every root found.

use anyhow::{Context as _, Result};
use docker_mount_engine::analysis::audit::{self, Severity};
use docker_mount_engine::evidence::discover;

use crate::context;
use crate::{table, Cli};

pub fn run(cli: &Cli) -> Result<()> {
    // Docker's roots: the audit reads daemon and container configuration.
    let found = discover::discover(&cli.root, &Default::default())
        .with_context(|| format!("cannot examine {}", cli.root.display()))?;
    if found.present().next().is_none() && found.configs.is_empty() {
        // Nothing to audit: say why, as other commands would.
        found.single()?;
    }
    let report = audit::audit(&found);
    if cli.json {
        return context::print_json(&report);
    }
    match &report.host {
        Some(h) => println!(
            "host tree: {}{}",
            h.display(),
            if found.host_guessed {
                " (guessed from the root's path)"
            } else {
                ""
            }
        ),
        None => println!(
            "no host tree: the daemon's configuration was not examined (pass the host's mount point as --root)"
        ),
    }
    for r in &report.roots {
        println!("root: {}", r.display());
    }
    let rows: Vec<Vec<String>> = report
        .findings
        .iter()
        .map(|f| {
            vec![
                f.severity.name().to_uppercase(),
                f.check.to_string(),
                f.container
                    .as_deref()
                    .map(table::cell)
                    .unwrap_or_else(|| "-".into()),
                table::cell(&f.title),
                table::cell(&f.host_path.clone().unwrap_or_else(|| {
                    f.file
                        .strip_prefix(&cli.root)
                        .unwrap_or(&f.file)
                        .display()
                        .to_string()
                })),
            ]
        })
        .collect();
    table::print(
        &["SEVERITY", "CHECK", "CONTAINER", "FINDING", "FILE"],
        &rows,
    );
    let count = |s: Severity| report.findings.iter().filter(|f| f.severity == s).count();
    println!(
        "{} critical, {} high, {} medium, {} low, {} info (--json for the details and evidence)",
        count(Severity::Critical),
        count(Severity::High),
        count(Severity::Medium),
        count(Severity::Low),
        count(Severity::Info)
    );
    for p in &report.problems {
        eprintln!("warning: {p}");
    }
    Ok(())
}
