//! The JSON schemas of what `--json` prints, one per command, generated
//! from the output types; published under `docs/schemas/<VERSION>/` by
//! `cargo xtask schemas` (the hidden `docker-mount schemas --out DIR`),
//! and checked against every `--json` output of the test suite.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context as _, Result};
use docker_mount_engine::analysis::{
    attribute::Attribution, audit::Audit, deleted::Deletion, diff::Change, history::History,
    journal::JournalReport, logs::LogFile, orphans::Inventory, provenance, timeline,
};
use docker_mount_engine::mounts::{
    blockimage::ExtractReport, fuse::FuseReport, kernel::MountReport,
};
use schemars::{schema_for, JsonSchema, Schema};

use crate::commands::{attribute, doctor, drivers, images, info, list, logs, mount, roots};

/// The version of the published schemas: a field removed or changed in
/// meaning makes a new one; fields added keep it.
pub const VERSION: &str = "v1";

/// `mount --json`: a kernel mount, a FUSE mount, or `--all`'s list.
#[allow(dead_code)] // only its schema is used
#[derive(JsonSchema)]
#[serde(untagged)]
enum MountOutput {
    Kernel(MountReport),
    Fuse(FuseReport),
    All(Vec<mount::AllEntry>),
}

/// `logs --json`: the records, or with `--files` the log files.
#[allow(dead_code)] // only its schema is used
#[derive(JsonSchema)]
#[serde(untagged)]
enum LogsOutput {
    Records(Vec<logs::LogLine>),
    Files(Vec<LogFile>),
}

/// `attribute --json`: the paths' attributions, or with `--journal` the
/// names recovered.
#[allow(dead_code)] // only its schema is used
#[derive(JsonSchema)]
#[serde(untagged)]
enum AttributeOutput {
    Paths(Vec<Attribution>),
    Journal(JournalReport),
}

/// Every schema, by file name: `<command>.json` for a command's document,
/// `<command>.line.json` for one line of its JSON lines output.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("attribute.json", schema_for!(AttributeOutput)),
        ("attribute.line.json", schema_for!(attribute::BodyfileLine)),
        ("audit.json", schema_for!(Audit)),
        ("deleted.json", schema_for!(Vec<Deletion>)),
        ("diff.json", schema_for!(Vec<Change>)),
        ("doctor.json", schema_for!(doctor::Report)),
        ("drivers.json", schema_for!(drivers::Report)),
        ("extract.json", schema_for!(ExtractReport)),
        ("find.json", schema_for!(provenance::Report)),
        ("history.json", schema_for!(History)),
        ("images.json", schema_for!(Vec<images::ImageSummary>)),
        ("info.json", schema_for!(info::Info)),
        ("layers.json", schema_for!(Inventory)),
        ("list.json", schema_for!(Vec<list::ContainerSummary>)),
        ("logs.json", schema_for!(LogsOutput)),
        ("mount.json", schema_for!(MountOutput)),
        ("roots.json", schema_for!(roots::RootsOutput)),
        ("timeline.line.json", timeline::jsonl_schema()),
        ("umount.json", schema_for!(mount::Unmounted)),
    ]
}

/// Writes every schema into `base/<VERSION>` (`docs/schemas/v1`).
pub fn write(base: &Path) -> Result<()> {
    let dir = base.join(VERSION);
    let dir = dir.as_path();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, schema) in all() {
        let mut value = schema.to_value();
        strict(&mut value);
        let path = dir.join(name);
        let text = serde_json::to_string_pretty(&value)? + "\n";
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The alternatives (`oneOf`...) of a schema object.
const ALTERNATIVES: [&str; 3] = ["oneOf", "anyOf", "allOf"];

/// Closes every object schema with fixed properties (`additionalProperties:
/// false`), so that a field printed but not declared fails validation:
/// the published schemas then cannot drift from the output. An object with
/// properties of its own and alternatives (a flattened enum) is closed with
/// `unevaluatedProperties: false` instead, which counts the properties of
/// the alternative that holds; its alternatives, and the definitions they
/// refer to, stay open.
fn strict(schema: &mut serde_json::Value) {
    let mut parts = HashSet::new();
    collect_parts(schema, &mut parts);
    close(schema, true, &parts);
}

/// The definitions an alternative of a flattened enum refers to.
fn collect_parts(v: &serde_json::Value, parts: &mut HashSet<String>) {
    match v {
        serde_json::Value::Object(o) => {
            if o.contains_key("properties") {
                let refs = ALTERNATIVES
                    .iter()
                    .filter_map(|k| o.get(*k)?.as_array())
                    .flatten()
                    .filter_map(|alt| alt.get("$ref")?.as_str());
                parts.extend(refs.filter_map(|r| Some(r.strip_prefix("#/$defs/")?.to_string())));
            }
            o.values().for_each(|c| collect_parts(c, parts));
        }
        serde_json::Value::Array(a) => a.iter().for_each(|c| collect_parts(c, parts)),
        _ => {}
    }
}

fn close(v: &mut serde_json::Value, closing: bool, parts: &HashSet<String>) {
    match v {
        serde_json::Value::Object(o) => {
            let combined = ALTERNATIVES.iter().any(|k| o.contains_key(*k));
            let own = o.contains_key("properties");
            if closing && own && !o.contains_key("additionalProperties") {
                let key = if combined {
                    "unevaluatedProperties"
                } else {
                    "additionalProperties"
                };
                o.insert(key.into(), false.into());
            }
            for (k, child) in o.iter_mut() {
                if k == "$defs" {
                    if let Some(defs) = child.as_object_mut() {
                        for (name, def) in defs.iter_mut() {
                            close(def, !parts.contains(name), parts);
                        }
                    }
                    continue;
                }
                close(child, !(own && ALTERNATIVES.contains(&k.as_str())), parts);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| close(x, closing, parts)),
        _ => {}
    }
}
