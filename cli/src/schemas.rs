//! The JSON schemas of what `--json` prints, one per command, generated
//! from the output types; published under `docs/schemas/<VERSION>/` by
//! `cargo xtask schemas` (the hidden `docker-mount schemas --out DIR`),
//! and checked against every `--json` output of the test suite.

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
        ("roots.json", schema_for!(roots::Roots)),
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

/// Closes every object schema with fixed properties (`additionalProperties:
/// false`), so that a field printed but not declared fails validation:
/// the published schemas then cannot drift from the output. Objects
/// combined from alternatives are left open.
fn strict(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(o) => {
            let combined = ["oneOf", "anyOf", "allOf"]
                .iter()
                .any(|k| o.contains_key(*k));
            if o.contains_key("properties") && !o.contains_key("additionalProperties") && !combined
            {
                o.insert("additionalProperties".into(), false.into());
            }
            o.values_mut().for_each(strict);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strict),
        _ => {}
    }
}
