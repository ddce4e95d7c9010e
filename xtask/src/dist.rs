//! `cargo xtask dist`: a tarball an analyst unpacks anywhere and runs.
//!
//! ```text
//! docker-mount-<version>-<arch>-linux/
//!   docker-mount                 the binary; plugins are found beside it
//!   drivers/libdocker_mount_driver_<name>.so
//!   man/docker-mount.1
//!   completions/docker-mount.bash  _docker-mount (zsh)  docker-mount.fish
//!   README.md  guide.md
//!   schemas/v1/<command>.json    the JSON schemas of every --json output
//!   SHA256SUMS                   every other file, `sha256sum -c` format
//! ```
//!
//! The man page, completions and schemas come from the packaged binary itself, which
//! is also asked to load its plugins before anything is written: a tarball
//! whose drivers do not load is never made.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::build;

const USAGE: &str =
    "usage: cargo xtask dist [--drivers NAME,...] [--target-dir DIR] [--out DIR] [--debug]";

/// What to package.
#[derive(Debug)]
struct Options {
    /// Driver names (as `build::driver_names`); empty: all.
    drivers: Vec<String>,
    target_dir: Option<PathBuf>,
    out: Option<PathBuf>,
    /// Package the debug build (fast to make; for tests) instead of a release build.
    debug: bool,
}

fn value(args: &[String], i: usize, flag: &str) -> Result<String> {
    args.get(i + 1)
        .cloned()
        .with_context(|| format!("{flag} needs a value\n{USAGE}"))
}

fn parse(args: &[String]) -> Result<Options> {
    let mut o = Options {
        drivers: Vec::new(),
        target_dir: None,
        out: None,
        debug: false,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg, None),
        };
        let mut take = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => {
                    let v = value(args, i, flag)?;
                    i += 1;
                    Ok(v)
                }
            }
        };
        match flag {
            "--drivers" => o.drivers.extend(
                take()?
                    .split(',')
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(String::from),
            ),
            "--target-dir" => o.target_dir = Some(take()?.into()),
            "--out" => o.out = Some(take()?.into()),
            "--debug" => o.debug = true,
            "--release" => {}
            _ => bail!("unknown argument {arg:?}\n{USAGE}"),
        }
        i += 1;
    }
    Ok(o)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).with_context(|| format!("bad path {}", p.display()))
}

fn plugin_file(driver: &str) -> String {
    format!("libdocker_mount_driver_{}.so", driver.replace('-', "_"))
}

/// Runs the packaged binary; its stdout.
fn run_bin(bin: &Path, args: &[&str]) -> Result<Vec<u8>> {
    let out = Command::new(bin)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({}): {}",
            bin.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Every file below `dir`, relative, sorted.
fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(base: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for e in std::fs::read_dir(base.join(rel))? {
            let e = e?;
            let rel = rel.join(e.file_name());
            if e.file_type()?.is_dir() {
                walk(base, &rel, out)?;
            } else {
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(hex::encode(h.finalize()))
}

/// The files' time in the tarball: `SOURCE_DATE_EPOCH` when set (for
/// reproducible tarballs), else now.
fn mtime() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
}

/// Writes `dir` as `<name>/...` into a gzipped tarball: sorted, owned by
/// root, modes 0755 (directories, the binary, plugins) or 0644.
fn tarball(dir: &Path, name: &str, out: &Path, level: flate2::Compression) -> Result<()> {
    let tmp = out.with_extension("partial");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), level);
    let mut tar = tar::Builder::new(gz);
    let mtime = mtime();
    let header = |kind: tar::EntryType, mode: u32, size: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        // Names that fit in a GNU header always do here.
        let _ = h.set_username("root");
        let _ = h.set_groupname("root");
        h
    };
    let mut dirs_done = std::collections::BTreeSet::new();
    for rel in files(dir)? {
        let mut parents: Vec<&Path> = rel.ancestors().skip(1).collect();
        parents.reverse();
        for p in parents {
            let p = Path::new(name).join(p);
            if dirs_done.insert(p.clone()) {
                let mut h = header(tar::EntryType::Directory, 0o755, 0);
                tar.append_data(&mut h, &p, std::io::empty())?;
            }
        }
        let path = dir.join(&rel);
        let meta = std::fs::metadata(&path)?;
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let mut h = header(tar::EntryType::Regular, mode, meta.len());
        let f = std::fs::File::open(&path)?;
        tar.append_data(&mut h, Path::new(name).join(&rel), f)?;
    }
    let gz = tar.into_inner()?;
    let mut buf = gz.finish()?;
    buf.flush()?;
    drop(buf);
    std::fs::rename(&tmp, out)?;
    Ok(())
}

pub fn run(args: &[String]) -> Result<()> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "{USAGE}\n\nA release tarball (target/dist/docker-mount-<version>-<arch>-linux.tar.gz): the binary,\n\
             the driver plugins (all unless --drivers), man page, completions, README, guide, SHA256SUMS.\n\
             --out DIR: where the tarball goes; --target-dir DIR: cargo's target directory;\n\
             --debug: package the debug build instead (quick; for tests)."
        );
        return Ok(());
    }
    let started = Instant::now();
    let opts = parse(args)?;
    if let Some(t) = &opts.target_dir {
        // Single-threaded: nothing reads the environment concurrently.
        std::env::set_var("CARGO_TARGET_DIR", absolute(t)?);
    }
    let known = build::driver_names()?;
    let drivers = if opts.drivers.is_empty() {
        known.clone()
    } else {
        let mut chosen = Vec::new();
        for d in &opts.drivers {
            if !known.contains(d) {
                bail!("no driver {d:?}; the drivers are: {}", known.join(", "));
            }
            if !chosen.contains(d) {
                chosen.push(d.clone());
            }
        }
        chosen
    };
    let target = build::target_dir();
    let profile = target.join(if opts.debug { "debug" } else { "release" });
    let out_dir = match &opts.out {
        Some(o) => absolute(o)?,
        None => target.join("dist"),
    };

    let mut cargo_args = vec!["build", "--quiet", "-p", "docker-mount"];
    if !opts.debug {
        cargo_args.push("--release");
    }
    let packages: Vec<String> = drivers
        .iter()
        .map(|d| format!("docker-mount-driver-{d}"))
        .collect();
    for p in &packages {
        cargo_args.extend(["-p", p.as_str()]);
    }
    build::cargo(&cargo_args)?;
    let built = started.elapsed();

    let version = env!("CARGO_PKG_VERSION");
    let arch = std::env::consts::ARCH;
    let suffix = if opts.debug { "-debug" } else { "" };
    let name = format!("docker-mount-{version}-{arch}-linux{suffix}");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let stage_root = out_dir.join(format!(".{name}.staging"));
    if stage_root.exists() {
        std::fs::remove_dir_all(&stage_root)?;
    }
    let stage = stage_root.join(&name);
    let bin = stage.join("docker-mount");
    copy(&profile.join("docker-mount"), &bin)?;
    for d in &drivers {
        let lib = plugin_file(d);
        copy(&profile.join(&lib), &stage.join("drivers").join(&lib))?;
    }

    // The packaged binary must load exactly the packaged plugins.
    let report: serde_json::Value = serde_json::from_slice(&run_bin(&bin, &["drivers", "--json"])?)
        .context("`docker-mount drivers --json` printed no JSON")?;
    let mut loaded: Vec<String> = report["loaded"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d["name"].as_str().map(String::from))
        .collect();
    loaded.sort();
    let mut expected = drivers.clone();
    expected.sort();
    if loaded != expected || report["failed"].as_array().is_some_and(|f| !f.is_empty()) {
        bail!(
            "the packaged binary loads {loaded:?} (failed: {}), expected {expected:?}",
            report["failed"]
        );
    }

    write(&stage.join("man/docker-mount.1"), &run_bin(&bin, &["man"])?)?;
    for (shell, file) in [
        ("bash", "docker-mount.bash"),
        ("zsh", "_docker-mount"),
        ("fish", "docker-mount.fish"),
    ] {
        write(
            &stage.join("completions").join(file),
            &run_bin(&bin, &["completions", shell])?,
        )?;
    }
    let schemas = stage.join("schemas");
    run_bin(&bin, &["schemas", "--out", &schemas.to_string_lossy()])?;
    let ws = build::workspace();
    copy(&ws.join("README.md"), &stage.join("README.md"))?;
    let guide = ws.join("docs/guide.md");
    if guide.is_file() {
        copy(&guide, &stage.join("guide.md"))?;
    }
    let mut sums = String::new();
    for rel in files(&stage)? {
        sums.push_str(&format!(
            "{}  {}\n",
            sha256_file(&stage.join(&rel))?,
            rel.display()
        ));
    }
    write(&stage.join("SHA256SUMS"), sums.as_bytes())?;

    let tar_path = out_dir.join(format!("{name}.tar.gz"));
    let level = if opts.debug {
        flate2::Compression::fast()
    } else {
        flate2::Compression::best()
    };
    tarball(&stage, &name, &tar_path, level)?;
    std::fs::remove_dir_all(&stage_root)?;
    let digest = sha256_file(&tar_path)?;
    write(
        &out_dir.join(format!("{name}.tar.gz.sha256")),
        format!("{digest}  {name}.tar.gz\n").as_bytes(),
    )?;
    let size = std::fs::metadata(&tar_path)?.len();
    eprintln!(
        "xtask: {} ({:.1} MiB, drivers: {}) in {:.0?} (build {:.0?})",
        tar_path.display(),
        size as f64 / (1024.0 * 1024.0),
        drivers.join(", "),
        started.elapsed(),
        built,
    );
    println!("{}", tar_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn parses_flags() {
        let o = parse(&args(&[
            "--drivers",
            "overlay2, aufs",
            "--out=/tmp/x",
            "--debug",
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.drivers, ["overlay2", "aufs"]);
        assert_eq!(o.out.as_deref(), Some(Path::new("/tmp/x")));
        assert!(o.debug);
        assert!(o.target_dir.is_none());
        assert!(parse(&args(&["--drivers"])).is_err());
        assert!(parse(&args(&["--bogus"])).is_err());
    }
}
