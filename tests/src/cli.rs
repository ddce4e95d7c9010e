//! Running the `docker-mount` binary as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    fn from(out: Output) -> Run {
        Run {
            status: out.status.code().unwrap_or(-1),
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
    Run::from(cmd.output().expect("cannot start docker-mount"))
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
