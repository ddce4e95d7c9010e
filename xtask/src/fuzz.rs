//! `cargo xtask fuzz [--time N] [TARGET...]`: every fuzz target of
//! `fuzz/libfuzzer/` (cargo fuzz, libFuzzer) for N seconds each (default 60), from
//! the seeds in `fuzz/seeds/<target>/` plus the corpus grown by earlier
//! runs (`target/fuzz-corpus/<target>/`, not committed).
//!
//! The toolchain is stable: cargo fuzz's nightly flags are allowed by
//! `RUSTC_BOOTSTRAP=1`. cargo-fuzz is installed from crates.io if missing.
//! A crash or a hang stops nothing else: each is reported with its
//! artifact (`fuzz/libfuzzer/artifacts/<target>/`), and the task fails. Copy the
//! artifact into `fuzz/regressions/<target>/` once fixed: `cargo test`
//! replays those on stable.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::build::{target_dir, workspace};

/// What one target's run gave.
struct Outcome {
    target: String,
    execs: u64,
    per_sec: u64,
    corpus: u64,
    new_units: u64,
    seconds: f64,
    problem: Option<String>,
}

fn fuzz_dir() -> PathBuf {
    workspace().join("fuzz")
}

/// The targets: `fuzz/libfuzzer/fuzz_targets/<name>.rs`.
fn targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("libfuzzer/fuzz_targets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".rs"))
                .map(String::from)
        })
        .collect();
    names.sort();
    Ok(names)
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// cargo fuzz, run from the workspace with the nightly gate open.
fn cargo_fuzz(args: &[&str]) -> Command {
    let mut cmd = Command::new(cargo());
    let (sub, rest) = args.split_first().expect("a cargo fuzz subcommand");
    cmd.args(["fuzz", sub, "--fuzz-dir", "fuzz/libfuzzer"])
        .args(rest)
        .current_dir(workspace())
        .env("RUSTC_BOOTSTRAP", "1");
    cmd
}

fn ensure_cargo_fuzz() -> Result<()> {
    let have = Command::new(cargo())
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if have {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz from crates.io");
    let status = Command::new(cargo())
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("cannot run cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(())
}

/// The value of libFuzzer's final `stat::<name>:` line.
fn stat(log: &str, name: &str) -> u64 {
    let key = format!("stat::{name}:");
    log.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Corpus size from libFuzzer's last status line (`... corp: N/...`).
fn corpus_size(log: &str) -> u64 {
    log.lines()
        .rev()
        .find_map(|l| l.split("corp: ").nth(1))
        .and_then(|v| v.split('/').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn run_one(target: &str, seconds: u64) -> Result<Outcome> {
    let corpus = target_dir().join("fuzz-corpus").join(target);
    std::fs::create_dir_all(&corpus)
        .with_context(|| format!("cannot create {}", corpus.display()))?;
    let seeds = fuzz_dir().join("seeds").join(target);
    let regressions = fuzz_dir().join("regressions").join(target);
    let artifacts = fuzz_dir().join("libfuzzer/artifacts").join(target);
    std::fs::create_dir_all(&artifacts)?;
    let mut dirs: Vec<&Path> = vec![&corpus, &seeds];
    if regressions.is_dir() {
        dirs.push(&regressions);
    }
    let mut args: Vec<String> = vec!["run".into(), target.into()];
    args.extend(dirs.iter().map(|d| d.display().to_string()));
    args.extend([
        "--".into(),
        format!("-max_total_time={seconds}"),
        // One input taking this long is a hang.
        "-timeout=10".into(),
        "-rss_limit_mb=2048".into(),
        "-print_final_stats=1".into(),
        format!("-artifact_prefix={}/", artifacts.display()),
    ]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    eprintln!("xtask: fuzzing {target} for {seconds} s");
    let start = Instant::now();
    let out = cargo_fuzz(&argv)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run cargo fuzz")?;
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let log_file = target_dir()
        .join("fuzz-corpus")
        .join(format!("{target}.log"));
    std::fs::write(&log_file, &log)?;
    let problem = (!out.status.success()).then(|| {
        let artifact = log
            .lines()
            .find_map(|l| l.split("Test unit written to ").nth(1))
            .map(str::trim)
            .unwrap_or("(no artifact)");
        let what = log
            .lines()
            .find(|l| l.contains("ERROR: libFuzzer") || l.contains("panicked at"))
            .unwrap_or("failed")
            .trim()
            .to_string();
        format!("{what}; input {artifact}; log {}", log_file.display())
    });
    Ok(Outcome {
        target: target.into(),
        execs: stat(&log, "number_of_executed_units"),
        per_sec: stat(&log, "average_exec_per_sec"),
        corpus: corpus_size(&log),
        new_units: stat(&log, "new_units_added"),
        seconds: start.elapsed().as_secs_f64(),
        problem,
    })
}

pub fn run(args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut wanted = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" => {
                seconds = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .context("--time takes a number of seconds")?;
            }
            other => wanted.push(other.to_string()),
        }
    }
    let all = targets()?;
    for w in &wanted {
        if !all.contains(w) {
            bail!("no fuzz target {w}; targets: {}", all.join(" "));
        }
    }
    let chosen = if wanted.is_empty() { all } else { wanted };
    ensure_cargo_fuzz()?;
    eprintln!("xtask: building the fuzz targets (cargo fuzz build)");
    let status = cargo_fuzz(&["build"]).status()?;
    if !status.success() {
        bail!("cargo fuzz build failed ({status})");
    }
    let mut outcomes = Vec::new();
    for t in &chosen {
        outcomes.push(run_one(t, seconds)?);
    }
    println!(
        "{:<16} {:>10} {:>9} {:>8} {:>6} {:>7}  result",
        "target", "execs", "execs/s", "corpus", "new", "secs"
    );
    let mut failed = Vec::new();
    for o in &outcomes {
        println!(
            "{:<16} {:>10} {:>9} {:>8} {:>6} {:>7.1}  {}",
            o.target,
            o.execs,
            o.per_sec,
            o.corpus,
            o.new_units,
            o.seconds,
            o.problem.as_deref().unwrap_or("ok")
        );
        if o.problem.is_some() {
            failed.push(o.target.clone());
        }
    }
    let total: u64 = outcomes.iter().map(|o| o.execs).sum();
    println!(
        "{} targets, {total} executions, {} failed",
        outcomes.len(),
        failed.len()
    );
    if !failed.is_empty() {
        bail!("fuzzing found problems in: {}", failed.join(" "));
    }
    Ok(())
}
