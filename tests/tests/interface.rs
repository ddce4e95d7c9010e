//! The scripting interface: `list` filters and support containers, the
//! `--json` contract (one document on stdout, diagnostics on stderr, an
//! empty list for a disk without docker), exit statuses, and the published
//! schemas (up to date, and the hook that checks every `--json` run).
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;

use docker_mount_tests::fixture::{
    rfc3339, ContainerOpts, ContainerState, ImageOpts, Node, RootBuilder, DEFAULT_MTIME,
};
use docker_mount_tests::{cli, integrity};

/// A root of k8s-like containers, hashed; checked unchanged on drop.
struct K8sRoot {
    dir: tempfile::TempDir,
    before: integrity::Snapshot,
    image_id: String,
}

impl K8sRoot {
    fn new() -> K8sRoot {
        K8sRoot::build(false)
    }

    /// With `damaged`, db's config.v2.json is cut in half.
    fn build(damaged: bool) -> K8sRoot {
        let dir = tempfile::tempdir().unwrap();
        let mut b = RootBuilder::new(dir.path());
        let base = b.layer(&[Node::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")]);
        let small = b.image(&["small:1"], base, ImageOpts::default());
        let pause = b.image(
            &["registry.k8s.io/pause:3.9"],
            base,
            ImageOpts {
                cmd: vec!["/pause".into()],
                ..ImageOpts::default()
            },
        );
        let label = |k: &str, v: &str| (k.to_string(), v.to_string());
        let at = |minutes: i64| DEFAULT_MTIME + minutes * 60;
        let opts = |created: i64, state: ContainerState| ContainerOpts {
            created,
            started: created + 1,
            state,
            ..ContainerOpts::default()
        };
        b.container(
            "web",
            small,
            ContainerOpts {
                labels: vec![label("app", "web")],
                ports: vec![("80/tcp".into(), "8080".into())],
                image_name: Some("small:1".into()),
                ..opts(at(1), ContainerState::Running)
            },
        );
        let db = b.container(
            "db",
            small,
            ContainerOpts {
                labels: vec![label("app", "db,primary")],
                image_name: Some("small:1".into()),
                ..opts(at(2), ContainerState::Exited(1))
            },
        );
        b.container(
            "k8s_POD_web-7d9f_default_1234_0",
            pause,
            ContainerOpts {
                labels: vec![label("io.kubernetes.docker.type", "podsandbox")],
                image_name: Some("registry.k8s.io/pause:3.9".into()),
                ..opts(at(3), ContainerState::Running)
            },
        );
        b.container(
            "k8s_kube-proxy_kube-proxy-x_kube-system_5678_0",
            small,
            ContainerOpts {
                labels: vec![label("io.kubernetes.pod.namespace", "kube-system")],
                image_name: Some("small:1".into()),
                ..opts(at(4), ContainerState::Running)
            },
        );
        b.container(
            "exposer",
            small,
            ContainerOpts {
                expose: vec!["443/tcp".into()],
                image_name: Some("small:1".into()),
                ..opts(at(5), ContainerState::Created)
            },
        );
        let fx = b.finish();
        if damaged {
            fx.truncate_config(db);
        }
        let image_id = fx.image(small).id.clone();
        let before = integrity::snapshot(dir.path());
        K8sRoot {
            dir,
            before,
            image_id,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The names `list --json <args>` prints, in its order.
    fn names(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec!["list", "--json"];
        argv.extend(args);
        cli::run(self.root(), &argv)
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect()
    }
}

impl Drop for K8sRoot {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.before
                .assert_unchanged(&integrity::snapshot(self.dir.path()));
        }
    }
}

const SANDBOX: &str = "k8s_POD_web-7d9f_default_1234_0";
const PROXY: &str = "k8s_kube-proxy_kube-proxy-x_kube-system_5678_0";

#[test]
fn filters_select_like_docker_ps() {
    let n = K8sRoot::new();
    // Running ones, newest first; every state with --all.
    assert_eq!(n.names(&[]), [PROXY, SANDBOX, "web"]);
    assert_eq!(
        n.names(&["--all"]),
        ["exposer", PROXY, SANDBOX, "db", "web"]
    );
    assert_eq!(n.names(&["--filter", "name=web"]), [SANDBOX, "web"]);
    // One key twice: either; two keys: both. status= lists every state.
    assert_eq!(
        n.names(&["-f", "name=db", "-f", "name=exp", "-a"]),
        ["exposer", "db"]
    );
    assert_eq!(n.names(&["--filter", "status=exited"]), ["db"]);
    assert_eq!(
        n.names(&["--filter", "status=created,status=exited"]),
        ["exposer", "db"]
    );
    assert_eq!(n.names(&["--filter", "label=app", "-a"]), ["db", "web"]);
    // A label value holding a comma.
    assert_eq!(n.names(&["--filter", "label=app=db,primary", "-a"]), ["db"]);
    assert_eq!(
        n.names(&["--filter", "label=app=web,name=db", "-a"]),
        Vec::<String>::new()
    );
    assert_eq!(
        n.names(&["--filter", "image=registry.k8s.io/pause", "-a"]),
        [SANDBOX]
    );
    assert_eq!(
        n.names(&["--filter", &format!("image={}", &n.image_id[..12]), "-a"]),
        ["exposer", PROXY, "db", "web"]
    );
    // since: a container, or a time.
    assert_eq!(
        n.names(&["--filter", "since=db", "-a"]),
        ["exposer", PROXY, SANDBOX]
    );
    let t = rfc3339(DEFAULT_MTIME + 4 * 60 - 1, 0);
    assert_eq!(
        n.names(&["--filter", &format!("since={t}"), "-a"]),
        ["exposer", PROXY]
    );
    // --last N: the N newest, every state.
    assert_eq!(n.names(&["--last", "2"]), ["exposer", PROXY]);
}

#[test]
fn ports_and_support_containers() {
    let n = K8sRoot::new();
    // Published (hostconfig) or only exposed (config).
    assert_eq!(n.names(&["--ports", "-a"]), ["exposer", "web"]);
    // Support containers are marked, and left out on request.
    let all = cli::run(n.root(), &["list", "--json", "-a"]).json();
    let support: Vec<(&str, &str)> = all
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?, c["support"].as_str()?)))
        .collect();
    assert_eq!(
        support,
        [
            (PROXY, "Kubernetes kube-system pod"),
            (SANDBOX, "Kubernetes pod sandbox (dockershim)")
        ]
    );
    let run = cli::run(n.root(), &["list", "--json", "-a", "--skip-support"]);
    let rows = run.json();
    let names: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["exposer", "db", "web"]);
    assert!(
        run.stderr
            .contains("2 Kubernetes/system support container(s) left out"),
        "{}",
        run.stderr
    );
    let info = cli::run(n.root(), &["info", "--json", SANDBOX]).json();
    assert_eq!(info["support"], "Kubernetes pod sandbox (dockershim)");
    // --include brings one back, whatever the other options say.
    assert_eq!(
        n.names(&[
            "--skip-support",
            "--include",
            SANDBOX,
            "--filter",
            "name=web"
        ]),
        [SANDBOX, "web"]
    );
    assert_eq!(
        n.names(&["--last", "1", "--include", "db"]),
        ["exposer", "db"]
    );
    // An included container among the newest takes no place of the N.
    assert_eq!(
        n.names(&["--last", "1", "--include", "exposer"]),
        ["exposer", PROXY]
    );
    // A list of one's own replaces the built-in one.
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        list.path(),
        br#"{"rules": [{"why": "the database", "name_prefix": "db", "label": "app"}]}"#,
    )
    .unwrap();
    let list_path = list.path().to_str().unwrap();
    assert_eq!(
        n.names(&["-a", "--skip-support", "--support-list", list_path]),
        ["exposer", PROXY, SANDBOX, "web"]
    );
    std::fs::write(list.path(), br#"{"rules": [{"why": "nothing to match"}]}"#).unwrap();
    let bad = cli::run(n.root(), &["list", "--support-list", list_path]);
    assert_eq!(bad.status, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains(list_path), "{}", bad.stderr);
    assert!(bad.stdout.is_empty());
}

#[test]
fn exit_statuses_and_the_json_contract() {
    let n = K8sRoot::new();
    // A bad filter is a usage error, like a bad flag.
    let bad = cli::run(n.root(), &["list", "--json", "--filter", "colour=red"]);
    assert_eq!(bad.status, 2, "{}", bad.stderr);
    assert!(
        bad.stdout.is_empty() && bad.stderr.contains("unknown key"),
        "{}",
        bad.stderr
    );
    assert_eq!(cli::run(n.root(), &["list", "--no-such-flag"]).status, 2);
    // No such container: an error, nothing on stdout.
    let missing = cli::run(n.root(), &["info", "--json", "nosuch"]);
    assert_eq!(missing.status, 1);
    assert!(missing.stdout.is_empty(), "{}", missing.stdout);
    // A disk without docker: [] and a note, exit 0 (Turbinia's #764).
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("etc")).unwrap();
    for cmd in ["list", "images"] {
        let run = cli::run(empty.path(), &[cmd, "--json", "--all"]);
        assert_eq!(run.status, 0, "{cmd}: {}", run.stderr);
        assert_eq!(run.json(), serde_json::json!([]), "{cmd}");
        assert!(
            run.stderr.starts_with("note: no docker root in"),
            "{cmd}: {}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{cmd}: {}", run.stderr);
    }
    let jsonl = cli::run(empty.path(), &["timeline", "--all", "--format", "jsonl"]);
    assert_eq!(
        (jsonl.status, jsonl.stdout.as_str()),
        (0, ""),
        "{}",
        jsonl.stderr
    );
    // timeline's JSON is JSON lines (checked line by line by the hook).
    let lines = cli::run(n.root(), &["timeline", "web", "--json"]);
    assert!(lines.ok().lines().count() > 3, "{}", lines.stdout);
    assert!(lines.stdout.lines().all(|l| l.starts_with('{')));
    // A path that does not exist is an error, not an empty disk.
    let gone = cli::run(&empty.path().join("nope"), &["list", "--json"]);
    assert_eq!(gone.status, 1);
    assert!(gone.stdout.is_empty());
    // An unreadable container: the others listed, it too (with its error),
    // exit status 3.
    let broken = K8sRoot::build(true);
    let run = cli::run(broken.root(), &["list", "--json", "-a"]);
    assert_eq!(run.status, 3, "{}", run.stderr);
    let rows: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    assert!(rows.last().unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("config.v2.json"));
    assert!(run.stderr.contains("warning: container"), "{}", run.stderr);
    let table = cli::run(broken.root(), &["list", "-a"]);
    assert_eq!(table.status, 3);
}

#[test]
fn published_schemas_are_up_to_date() {
    let out = tempfile::tempdir().unwrap();
    let run = std::process::Command::new(cli::binary())
        .args(["schemas", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let generated = out.path().join("v1");
    let published = cli::schema_dir();
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&generated),
        names(&published),
        "docs/schemas/v1 is stale: run `cargo xtask schemas`"
    );
    for name in names(&generated) {
        assert_eq!(
            std::fs::read_to_string(generated.join(&name)).unwrap(),
            std::fs::read_to_string(published.join(&name)).unwrap(),
            "docs/schemas/v1/{name} is stale: run `cargo xtask schemas`"
        );
    }
}

#[test]
fn the_schema_hook_refuses_what_breaks_the_schema() {
    let n = K8sRoot::new();
    let good = cli::run(n.root(), &["list", "--json", "-a"]).stdout;
    assert!(cli::validate("list.json", good.as_bytes()).is_ok());
    // A field of the wrong type, a field no schema declares, two documents,
    // a half document.
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v[0]["exit_code"] = "one".into();
    let e = cli::validate("list.json", v.to_string().as_bytes()).unwrap_err();
    assert!(e.contains("exit_code"), "{e}");
    let mut v: serde_json::Value = serde_json::from_str(&good).unwrap();
    v[0]["surprise"] = true.into();
    assert!(cli::validate("list.json", v.to_string().as_bytes()).is_err());
    assert!(cli::validate("list.json", b"[] []").is_err());
    assert!(cli::validate("list.json", &good.as_bytes()[..good.len() / 2]).is_err());
    // The hook itself: a --json run's stdout, checked by command.
    let args = ["list", "--json"].map(std::ffi::OsStr::new);
    assert!(cli::check_json(&args, Some(0), b"[{\"id\": 5}]").is_err());
    assert!(cli::check_json(&args, Some(0), b"[]").is_ok());
    assert!(cli::check_json(&args, Some(1), b"").is_ok());
    assert!(cli::check_json(&args, Some(1), b"[").is_err());
    let line = ["timeline", "--all", "--format", "jsonl"].map(std::ffi::OsStr::new);
    assert!(cli::check_json(&line, Some(0), b"{\"message\": 1}\n").is_err());
}
