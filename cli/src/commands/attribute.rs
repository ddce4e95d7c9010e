//! `attribute`: host paths (arguments, standard input, or a TSK/mactime
//! bodyfile) → the container, image, layer and in-container path each
//! belongs to. The JSON form is documented in
//! `docker_mount_engine::analysis::attribute`.
//!
//! A bodyfile comes back line by line: each record unchanged, followed by
//! six more `|`-separated fields (`|` inside them written `\x7c`):
//! `kind|driver|layer|role|containers|images`, with the `--json` names
//! (`layer-file`, `container-rw`, `visible`, ...), where `containers` is
//! `name:path:seen` items joined by `,`. mactime reads the first eleven
//! fields and ignores the rest. With `--json`, one JSON object a line:
//! `{"line": ..., "attribution": ...}` (`attribution` null for lines that
//! are no bodyfile record, which are kept as they are).

use std::ffi::OsStr;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use docker_mount_engine::analysis::attribute::{self, Attribution, Attributor, Kind, Seen};
use docker_mount_engine::evidence::pathfmt;
use docker_mount_engine::model::ids;

use crate::commands::layers::role_name;
use crate::context;
use crate::{table, Cli};

pub fn run(cli: &Cli, paths: &[OsString], bodyfile: Option<&Path>) -> Result<()> {
    let ctx = context::open(cli)?;
    let mut attributor = Attributor::new(&ctx.root, &ctx.drivers);
    for p in &attributor.problems {
        eprintln!("warning: {p}");
    }
    if let Some(file) = bodyfile {
        return annotate(cli, &mut attributor, file);
    }
    let mut list: Vec<PathBuf> = Vec::new();
    for p in paths {
        if p == "-" {
            let stdin = std::io::stdin();
            for line in stdin.lock().split(b'\n') {
                let mut line = line.context("cannot read paths from standard input")?;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if !line.is_empty() {
                    list.push(PathBuf::from(OsString::from_vec(line)));
                }
            }
        } else {
            list.push(PathBuf::from(p));
        }
    }
    if list.is_empty() {
        anyhow::bail!(
            "no paths: give host paths, `-` to read them from standard input, or --bodyfile FILE"
        );
    }
    let out: Vec<Attribution> = list.iter().map(|p| attributor.attribute(p)).collect();
    if cli.json {
        return context::print_json(&out);
    }
    let rows: Vec<Vec<String>> = out
        .iter()
        .map(|a| {
            vec![
                table::cell(&pathfmt::escape(&a.path)),
                kind(a.kind).to_string(),
                a.layer
                    .as_deref()
                    .map(|l| format!("{} {}", a.driver.as_deref().unwrap_or("?"), ids::short(l)))
                    .unwrap_or_else(|| "-".into()),
                a.role.map(role_name).unwrap_or("-").to_string(),
                table::cell(&containers(a, ", ")),
                table::cell(&note(a)),
            ]
        })
        .collect();
    table::print(
        &[
            "HOST PATH",
            "KIND",
            "LAYER",
            "ROLE",
            "CONTAINER:PATH (SEEN)",
            "IMAGES / NOTE",
        ],
        &rows,
    );
    let none = out.iter().filter(|a| a.kind == Kind::None).count();
    println!(
        "{} paths, {} attributed, {none} naming nothing in the root",
        out.len(),
        out.len() - none
    );
    Ok(())
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::LayerFile => "layer",
        Kind::ViewFile => "view",
        Kind::LayerMetadata => "layer-meta",
        Kind::ContainerFile => "container",
        Kind::Layerdb => "layerdb",
        Kind::VolumeFile => "volume",
        Kind::None => "NONE",
    }
}

fn seen(s: Seen) -> &'static str {
    match s {
        Seen::Visible => "visible",
        Seen::Hidden => "hidden",
        Seen::Deleted => "deleted",
        Seen::Absent => "absent",
        Seen::Copied => "copied",
        Seen::Unknown => "unknown",
    }
}

/// `name:path (seen)` items.
fn containers(a: &Attribution, sep: &str) -> String {
    a.containers
        .iter()
        .map(|c| {
            let mut s = c.name.clone();
            if let Some(p) = &c.path {
                s.push(':');
                s.push_str(p);
            }
            if let Some(v) = c.seen {
                s.push_str(&format!(" ({})", seen(v)));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(sep)
}

fn note(a: &Attribution) -> String {
    // Tagged images by name, intermediate build images counted.
    let (tagged, untagged): (Vec<&String>, Vec<&String>) =
        a.images.iter().partition(|i| !i.starts_with("sha256:"));
    let mut parts: Vec<String> = tagged.into_iter().cloned().collect();
    if !untagged.is_empty() {
        parts.push(format!("{} untagged images", untagged.len()));
    }
    if let Some(c) = &a.chain_id {
        parts.push(format!("chain {}", ids::short(c)));
    }
    if let Some(n) = &a.note {
        parts.push(n.clone());
    }
    parts.join("; ")
}

/// An enum's `--json` name, so bodyfile fields read as the JSON does.
fn json_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A value as one bodyfile field.
fn field(s: &str) -> String {
    s.replace('|', "\\x7c").replace('\n', "\\n")
}

fn annotate(cli: &Cli, attributor: &mut Attributor<'_>, file: &Path) -> Result<()> {
    // `-`: standard input (`fls ... | docker-mount attribute --bodyfile -`).
    let input: Box<dyn std::io::Read> = if file == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(
            std::fs::File::open(file)
                .with_context(|| format!("cannot open bodyfile {}", file.display()))?,
        )
    };
    let reader = std::io::BufReader::new(input);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut records, mut attributed, mut other) = (0usize, 0usize, 0usize);
    for (n, line) in reader.split(b'\n').enumerate() {
        let line =
            line.with_context(|| format!("cannot read {} line {}", file.display(), n + 1))?;
        let a = attribute::bodyfile_name(&line).map(|p| attributor.attribute(&p));
        match &a {
            Some(a) => {
                records += 1;
                if a.kind != Kind::None {
                    attributed += 1;
                }
            }
            None => other += 1,
        }
        if cli.json {
            let v = BodyfileLine {
                line: pathfmt::escape(Path::new(OsStr::from_bytes(&line))),
                attribution: a,
            };
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
            continue;
        }
        out.write_all(&line)?;
        if let Some(a) = &a {
            write!(
                out,
                "|{}|{}|{}|{}|{}|{}",
                json_name(&a.kind),
                field(a.driver.as_deref().unwrap_or("")),
                field(a.layer.as_deref().unwrap_or("")),
                a.role.as_ref().map(json_name).unwrap_or_default(),
                field(
                    &a.containers
                        .iter()
                        .map(|c| format!(
                            "{}:{}:{}",
                            c.name,
                            c.path.as_deref().unwrap_or(""),
                            c.seen.as_ref().map(json_name).unwrap_or_default()
                        ))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                field(&a.images.join(",")),
            )?;
        }
        out.write_all(b"\n")?;
    }
    out.flush()?;
    eprintln!(
        "{records} bodyfile records, {attributed} attributed; {other} other lines kept as they were"
    );
    Ok(())
}

/// `attribute --journal IMAGE`: names deleted in rw layers, from the journal.
pub fn journal(cli: &Cli, image: &Path, offset: Option<u64>, partition_root: &Path) -> Result<()> {
    use docker_mount_engine::analysis::journal::{self, Partition};
    let ctx = context::open(cli)?;
    let mut attributor = Attributor::new(&ctx.root, &ctx.drivers);
    for p in &attributor.problems {
        eprintln!("warning: {p}");
    }
    let report = journal::recover(
        &mut attributor,
        &Partition {
            image,
            offset,
            docker_root: partition_root,
        },
    );
    if cli.json {
        return context::print_json(&report);
    }
    let rows: Vec<Vec<String>> = report
        .recovered
        .iter()
        .map(|r| {
            let a = &r.attribution;
            vec![
                table::cell(&containers(a, ", ")),
                r.inode.to_string(),
                a.layer
                    .as_deref()
                    .map(|l| ids::short(l).to_string())
                    .unwrap_or_else(|| "-".into()),
                r.journal_block.to_string(),
                table::cell(&pathfmt::escape(&a.path)),
            ]
        })
        .collect();
    table::print(
        &[
            "CONTAINER:PATH (SEEN NOW)",
            "INODE",
            "LAYER",
            "JOURNAL BLOCK",
            "HOST PATH",
        ],
        &rows,
    );
    println!(
        "{} deleted names recovered from {} journal copies of {} rw-layer directories",
        report.recovered.len(),
        report.logged_copies,
        report.directories
    );
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    Ok(())
}

/// One line of `attribute --bodyfile --json` (JSON lines): the bodyfile
/// line, and its attribution when it is a bodyfile record.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct BodyfileLine {
    pub line: String,
    pub attribution: Option<Attribution>,
}
