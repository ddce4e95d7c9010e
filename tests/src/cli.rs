//! Running the `docker-mount` binary as a user would.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

/// `target/<profile>`, found from this test binary (`target/<profile>/deps/x`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    exe.ancestors()
        .find(|a| {
            a.join("docker-mount").is_file()
                || a.file_name()
                    .is_some_and(|n| n == "debug" || n == "release")
        })
        .expect("test binary lives under target/<profile>")
        .to_path_buf()
}

/// The CLI binary built by `cargo xtask build-drivers`.
pub fn binary() -> PathBuf {
    let bin = profile_dir().join("docker-mount");
    assert!(
        bin.is_file(),
        "{} is missing: run the tests through `cargo xtask test-drivers`",
        bin.display()
    );
    bin
}

/// The loader's fixture plugins, built by `cargo xtask test-drivers`.
pub fn test_plugins_dir() -> PathBuf {
    profile_dir().join("test-plugins")
}

/// The result of one run.
#[derive(Debug)]
pub struct Run {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The run's result; what it printed as JSON is checked against the
    /// published schema (a panic: the failure report of the test).
    fn from(args: &[&str], out: Output) -> Run {
        let status = out.status.code();
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        if let Err(e) = check_json(&args, status, &out.stdout) {
            panic!(
                "docker-mount {}: {e}\nstderr: {}",
                args.iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Run {
            status: status.unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.status, 0,
            "docker-mount failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts a partial success (exit status 3: some items unreadable,
    /// each named on stderr) and parses stdout as JSON.
    pub fn partial_json(&self) -> serde_json::Value {
        assert_eq!(
            self.status, 3,
            "docker-mount did not report a partial result:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// Asserts success and parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `docker-mount --root <root> <args>`.
pub fn run(root: &Path, args: &[&str]) -> Run {
    run_with(root, args, &[])
}

/// Like [`run`], with extra `--driver-dir`s.
pub fn run_with(root: &Path, args: &[&str], driver_dirs: &[&Path]) -> Run {
    let mut cmd = Command::new(binary());
    cmd.arg("--root").arg(root);
    for d in driver_dirs {
        cmd.arg("--driver-dir").arg(d);
    }
    cmd.args(args);
    Run::from(args, cmd.output().expect("cannot start docker-mount"))
}

/// The published schemas: `docs/schemas/<version>` of this checkout.
pub fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas/v1")
}

/// The commands whose `--json` output has a schema.
const COMMANDS: [&str; 18] = [
    "attribute",
    "audit",
    "deleted",
    "diff",
    "doctor",
    "drivers",
    "extract",
    "find",
    "history",
    "images",
    "info",
    "layers",
    "list",
    "logs",
    "mount",
    "roots",
    "timeline",
    "umount",
];

/// The compiled schemas, by file name.
fn validator(file: &str) -> Result<std::sync::Arc<jsonschema::Validator>, String> {
    static CACHE: OnceLock<Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(v) = cache.get(file) {
        return Ok(v.clone());
    }
    let path = schema_dir().join(file);
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let schema: Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let v = jsonschema::validator_for(&schema)
        .map_err(|e| format!("{} is no schema: {e}", path.display()))?;
    let v = std::sync::Arc::new(v);
    cache.insert(file.to_string(), v.clone());
    Ok(v)
}

/// Checks one JSON text against a schema file, naming the errors.
pub fn validate(file: &str, text: &[u8]) -> Result<(), String> {
    let value: Value = serde_json::from_slice(text).map_err(|e| {
        format!(
            "stdout is not one JSON document ({e}): {}",
            String::from_utf8_lossy(&text[..text.len().min(2000)])
        )
    })?;
    let v = validator(file)?;
    let errors: Vec<String> = v
        .iter_errors(&value)
        .take(10)
        .map(|e| format!("at {}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "stdout does not follow docs/schemas/v1/{file}:\n  {}",
            errors.join("\n  ")
        ))
    }
}

/// The hook every run of the binary goes through: with `--json` (or
/// `timeline --format jsonl` to stdout), stdout must follow the command's
/// published schema: one document for exit statuses 0 and 3, one a line
/// for JSON lines outputs; after a failure, nothing or a valid document.
pub fn check_json(args: &[&OsStr], status: Option<i32>, stdout: &[u8]) -> Result<(), String> {
    let has = |flag: &str| args.iter().any(|a| *a == flag);
    let Some(command) = args
        .iter()
        .find_map(|a| COMMANDS.iter().find(|c| OsStr::new(c) == *a))
    else {
        return Ok(());
    };
    let format = args
        .windows(2)
        .find(|w| w[0] == "--format")
        .map(|w| w[1])
        .or_else(|| {
            args.iter()
                .find_map(|a| a.to_str()?.strip_prefix("--format="))
                .map(OsStr::new)
        });
    // timeline's JSON is JSON lines: `--format jsonl`, or `--json` alone.
    let jsonl = *command == "timeline"
        && (format == Some(OsStr::new("jsonl")) || (format.is_none() && has("--json")));
    let to_stdout = !args
        .windows(2)
        .any(|w| (w[0] == "-o" || w[0] == "--output") && w[1] != "-");
    let lines = if jsonl && to_stdout {
        Some("timeline.line.json")
    } else if *command == "attribute" && has("--json") && has("--bodyfile") {
        Some("attribute.line.json")
    } else {
        None
    };
    if let Some(file) = lines {
        for line in stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            validate(file, line)?;
        }
        return Ok(());
    }
    if !has("--json") || *command == "timeline" {
        return Ok(());
    }
    let file = format!("{command}.json");
    match status {
        Some(0 | 3) => validate(&file, stdout),
        _ if stdout.iter().all(u8::is_ascii_whitespace) => Ok(()),
        _ => validate(&file, stdout),
    }
}

/// `diff -v`'s counts in its log: (contents compared, files proved
/// unchanged without reading).
pub fn diff_counts(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("contents compared"))
        .unwrap_or_else(|| panic!("no counts in {stderr}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let n = numbers.len();
    assert!(n >= 2, "{line}");
    (numbers[n - 2], numbers[n - 1])
}
