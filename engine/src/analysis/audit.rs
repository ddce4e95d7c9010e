//! Triage of how exposed a host's docker was: the daemon's listeners (tcp
//! without TLS client verification in daemon.json, `DOCKER_OPTS`, systemd
//! units and drop-ins), userns-remap and rootless state, and every
//! container that was privileged, shared the host's namespaces, mounted
//! `/`, the docker socket or other sensitive host paths, added
//! capabilities, ran unconfined or as root. Each finding has a severity
//! and names the file it comes from.

use std::path::PathBuf;

use serde::Serialize;

use crate::evidence::daemon_config::{ConfigSource, SourceKind};
use crate::evidence::discover::{Discovery, FoundRoot, RootKind};
use crate::model::container::Container;
use crate::model::root::DockerRoot;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One thing worth an analyst's attention.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub severity: Severity,
    /// A stable key: `daemon-tcp`, `privileged`, `host-pid`, `bind-docker-socket`, ...
    pub check: &'static str,
    pub title: String,
    pub detail: String,
    /// The file the finding comes from, on the analyst's system.
    pub file: PathBuf,
    /// The same file as the host named it, for daemon settings.
    pub host_path: Option<String>,
    /// The setting or value as found.
    pub evidence: Option<String>,
    /// The docker root it concerns.
    pub root: Option<PathBuf>,
    pub container: Option<String>,
    pub container_id: Option<String>,
}

impl Finding {
    fn new(severity: Severity, check: &'static str, title: String, file: PathBuf) -> Finding {
        Finding {
            severity,
            check,
            title,
            detail: String::new(),
            file,
            host_path: None,
            evidence: None,
            root: None,
            container: None,
            container_id: None,
        }
    }
    fn detail(mut self, d: impl Into<String>) -> Finding {
        self.detail = d.into();
        self
    }
    fn evidence(mut self, e: impl Into<String>) -> Finding {
        self.evidence = Some(e.into());
        self
    }
}

/// The whole audit.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Audit {
    pub host: Option<PathBuf>,
    pub roots: Vec<PathBuf>,
    /// Configuration files read.
    pub config_files: Vec<PathBuf>,
    /// Most severe first.
    pub findings: Vec<Finding>,
    /// What could not be examined.
    pub problems: Vec<String>,
}

/// Where a `-H` address listens.
#[derive(Debug, PartialEq, Eq)]
enum Listen {
    /// tcp on every interface (or an address that is not loopback).
    Network(String),
    Loopback(String),
    /// unix socket, fd://, ...
    Local,
}

fn classify_host(h: &str) -> Listen {
    let h = h.trim();
    let addr = if let Some(rest) = h.strip_prefix("tcp://") {
        rest
    } else if h.contains("://") || h.starts_with('/') || h.is_empty() {
        return Listen::Local;
    } else {
        // `0.0.0.0:2375`, `:2375`: docker takes a bare address as tcp.
        h
    };
    let hostpart = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    if hostpart == "localhost" || hostpart.starts_with("127.") || hostpart == "::1" {
        Listen::Loopback(addr.to_string())
    } else {
        Listen::Network(addr.to_string())
    }
}

fn is_system(c: &ConfigSource) -> bool {
    !matches!(
        c.kind,
        SourceKind::RootlessDaemonJson | SourceKind::RootlessUnit
    )
}

fn config_finding(
    c: &ConfigSource,
    severity: Severity,
    check: &'static str,
    title: String,
) -> Finding {
    let mut f = Finding::new(severity, check, title, c.file.clone());
    f.host_path = Some(c.host_path.clone());
    f
}

/// Findings about the daemons' own settings.
pub fn daemon_findings(configs: &[ConfigSource], roots: &[FoundRoot]) -> Vec<Finding> {
    let mut out = Vec::new();
    // TLS settings apply to the whole daemon, wherever they are given.
    let tlsverify = |system: bool| {
        configs
            .iter()
            .filter(|c| is_system(c) == system)
            .find(|c| c.flags.tlsverify == Some(true) || c.flags.env_tls_verify)
    };
    let tls = |system: bool| {
        configs
            .iter()
            .filter(|c| is_system(c) == system)
            .find(|c| c.flags.tls == Some(true))
    };
    let units_read_default = configs.iter().any(|c| c.uses_default_docker);
    let has_units = configs
        .iter()
        .any(|c| matches!(c.kind, SourceKind::SystemdUnit | SourceKind::SystemdDropIn));
    for c in configs {
        for p in &c.problems {
            out.push(
                config_finding(
                    c,
                    Severity::Low,
                    "config-unreadable",
                    format!("{} could not be read", c.host_path),
                )
                .detail(p.clone()),
            );
        }
        let system = is_system(c);
        for h in &c.flags.hosts {
            let listen = classify_host(h);
            let (addr, network) = match &listen {
                Listen::Local => continue,
                Listen::Network(a) => (a, true),
                Listen::Loopback(a) => (a, false),
            };
            let mut note = String::new();
            if c.kind == SourceKind::DefaultDocker {
                note = if units_read_default {
                    " (the systemd unit passes $DOCKER_OPTS from this file)".into()
                } else if has_units {
                    " (read by the sysvinit/upstart script; no systemd unit found passes $DOCKER_OPTS)"
                        .into()
                } else {
                    " (read by the init script)".into()
                };
            }
            let f = if let Some(v) = tlsverify(system) {
                config_finding(
                    c,
                    Severity::Info,
                    "daemon-tcp-tlsverify",
                    format!("docker API on tcp://{addr} with TLS client verification{note}"),
                )
                .detail(format!("tlsverify set in {}", v.host_path))
            } else if let Some(t) = tls(system) {
                config_finding(
                    c,
                    if network { Severity::High } else { Severity::Medium },
                    "daemon-tcp-tls-no-verify",
                    format!("docker API on tcp://{addr} with TLS but no client verification: anyone who can connect controls the daemon{note}"),
                )
                .detail(format!("tls set in {} but tlsverify nowhere", t.host_path))
            } else if network {
                config_finding(
                    c,
                    Severity::Critical,
                    "daemon-tcp-no-tls",
                    format!("docker API exposed on tcp://{addr} without TLS: unauthenticated root on the host for anyone who can reach it{note}"),
                )
                .detail("no tlsverify in daemon.json, DOCKER_OPTS or the systemd unit")
            } else {
                config_finding(
                    c,
                    Severity::Medium,
                    "daemon-tcp-loopback-no-tls",
                    format!("docker API on loopback tcp://{addr} without TLS: any local process (or SSRF) gets root{note}"),
                )
            };
            let mut f = f.evidence(
                c.lines
                    .iter()
                    .find(|l| l.contains(addr.as_str()))
                    .cloned()
                    .unwrap_or_else(|| h.clone()),
            );
            if !system {
                f.detail = format!(
                    "rootless daemon of {}; {}",
                    c.user.as_deref().unwrap_or("?"),
                    f.detail
                );
            }
            out.push(f);
        }
        for r in &c.flags.insecure_registries {
            out.push(
                config_finding(
                    c,
                    Severity::Low,
                    "insecure-registry",
                    format!(
                        "insecure registry {r}: images pulled over plain http or unverified TLS"
                    ),
                )
                .evidence(r.clone()),
            );
        }
        if let Some(u) = &c.flags.userns_remap {
            out.push(
                config_finding(
                    c,
                    Severity::Info,
                    "userns-remap",
                    format!(
                        "userns-remap is set to {u:?}: container root is an unprivileged host id"
                    ),
                )
                .evidence(format!("userns-remap {u}")),
            );
        }
    }
    let system_configs: Vec<&ConfigSource> = configs.iter().filter(|c| is_system(c)).collect();
    let remapped = system_configs.iter().any(|c| {
        c.flags
            .userns_remap
            .as_deref()
            .is_some_and(|u| !u.is_empty())
    });
    let has_system_root = roots
        .iter()
        .any(|r| r.present && !matches!(r.kind, RootKind::Rootless));
    if !remapped && has_system_root {
        let daemon_json = system_configs
            .iter()
            .find(|c| c.kind == SourceKind::DaemonJson);
        let (file, host_path) = match daemon_json {
            Some(c) => (c.file.clone(), Some(c.host_path.clone())),
            None => (
                roots
                    .iter()
                    .find(|r| r.present)
                    .map(|r| r.path.clone())
                    .unwrap_or_default(),
                None,
            ),
        };
        let mut f = Finding::new(
            Severity::Low,
            "userns-remap-off",
            "userns-remap is not configured: root in a container is root on the host".into(),
            file,
        );
        f.host_path = host_path;
        f.detail = if configs.is_empty() {
            "no daemon configuration examined (no host tree): judged from the roots, which have no <uid>.<gid> sub-root"
                .into()
        } else {
            "no userns-remap in daemon.json, DOCKER_OPTS or the systemd unit".into()
        };
        if !roots.iter().any(|r| r.kind == RootKind::UsernsRemap) {
            out.push(f);
        }
    }
    for r in roots.iter().filter(|r| r.present) {
        match r.kind {
            RootKind::UsernsRemap => {
                let ids = r
                    .remap
                    .map(|m| format!("{}:{}", m.uid, m.gid))
                    .unwrap_or_default();
                let mut f = Finding::new(
                    Severity::Info,
                    "userns-remap-root",
                    format!("userns-remapped root: container root was host id {ids}"),
                    r.path.clone(),
                );
                f.root = Some(r.path.clone());
                out.push(f);
            }
            RootKind::Rootless => {
                let mut f = Finding::new(
                    Severity::Info,
                    "rootless-root",
                    format!(
                        "rootless docker root of {}: its containers ran with the privileges of that user",
                        r.user.as_deref().unwrap_or("a user")
                    ),
                    r.path.clone(),
                );
                f.root = Some(r.path.clone());
                out.push(f);
            }
            _ => {}
        }
    }
    out
}

/// Capabilities that give a container a way out, or near it.
const DANGEROUS_CAPS: [&str; 16] = [
    "SYS_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_BOOT",
    "SYS_TIME",
    "DAC_READ_SEARCH",
    "DAC_OVERRIDE",
    "NET_ADMIN",
    "BPF",
    "PERFMON",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "SETFCAP",
    "SYSLOG",
    "LINUX_IMMUTABLE",
];

/// Host paths whose bind mount hands a container part of the host.
const SENSITIVE: [&str; 19] = [
    "/etc",
    "/root",
    "/home",
    "/boot",
    "/proc",
    "/sys",
    "/dev",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/kubelet",
    "/var/run",
    "/run",
    "/var/log",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/opt",
];

/// A normalised host path: no trailing or doubled slashes, no `.`.
fn normalize(p: &str) -> String {
    let parts: Vec<&str> = p
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn under(path: &str, prefix: &str) -> bool {
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

/// A bind of `src` (normalised): (severity, check, what it is).
fn classify_bind(src: &str, rw: bool) -> Option<(Severity, &'static str, String)> {
    let name = src.rsplit('/').next().unwrap_or("");
    if src == "/" {
        return Some((
            Severity::Critical,
            "bind-host-root",
            "the whole host filesystem".into(),
        ));
    }
    if name == "docker.sock"
        || name == "containerd.sock"
        || name == "dockershim.sock"
        || name == "crio.sock"
    {
        return Some((
            Severity::Critical,
            "bind-docker-socket",
            "the container runtime socket: full control of the daemon, hence root on the host"
                .into(),
        ));
    }
    if under(src, "/var/run/docker") || under(src, "/run/docker") || under(src, "/run/containerd") {
        return Some((
            Severity::High,
            "bind-runtime-dir",
            "the runtime state directory".into(),
        ));
    }
    let hit = SENSITIVE.iter().find(|p| under(src, p))?;
    let sev = if rw { Severity::High } else { Severity::Medium };
    Some((
        sev,
        "bind-sensitive-path",
        format!(
            "a sensitive host path (under {hit}), {}",
            if rw { "writable" } else { "read-only" }
        ),
    ))
}

/// Findings about one container.
pub fn container_findings(
    root: &DockerRoot,
    found: Option<&FoundRoot>,
    c: &Container,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let host_file = root.join("containers").join(&c.id).join("hostconfig.json");
    let state = c.state();
    let who = |mut f: Finding| {
        f.root = Some(root.path().to_path_buf());
        f.container = Some(c.name().to_string());
        f.container_id = Some(c.id.clone());
        if f.detail.is_empty() {
            f.detail = format!("container state: {state}");
        } else {
            f.detail = format!("{}; container state: {state}", f.detail);
        }
        f
    };
    let Some(h) = &c.host else {
        out.push(who(Finding::new(
            Severity::Low,
            "hostconfig-unreadable",
            "hostconfig.json unreadable: privileges, namespaces and binds unknown".into(),
            host_file,
        )
        .detail(c.warnings.join("; "))));
        return out;
    };
    let name = c.name();
    if h.privileged {
        out.push(who(Finding::new(
            Severity::Critical,
            "privileged",
            format!("{name} is privileged: all capabilities, all devices, no seccomp or AppArmor"),
            host_file.clone(),
        )
        .evidence("\"Privileged\": true")));
    }
    for (mode, check, sev, what) in [
        (
            &h.pid_mode,
            "host-pid",
            Severity::High,
            "the host PID namespace: sees, signals and can ptrace host processes",
        ),
        (
            &h.network_mode,
            "host-network",
            Severity::Medium,
            "the host network namespace: host interfaces and local services, no isolation",
        ),
        (
            &h.ipc_mode,
            "host-ipc",
            Severity::Medium,
            "the host IPC namespace: host shared memory",
        ),
        (
            &h.uts_mode,
            "host-uts",
            Severity::Low,
            "the host UTS namespace: can change the host name",
        ),
        (
            &h.userns_mode,
            "host-userns",
            Severity::Medium,
            "the host user namespace (opted out of userns-remap)",
        ),
    ] {
        if mode == "host" {
            let key = match check {
                "host-pid" => "PidMode",
                "host-network" => "NetworkMode",
                "host-ipc" => "IpcMode",
                "host-uts" => "UTSMode",
                _ => "UsernsMode",
            };
            out.push(who(Finding::new(
                sev,
                check,
                format!("{name} shares {what}"),
                host_file.clone(),
            )
            .evidence(format!("\"{key}\": \"host\""))));
        }
    }
    // Binds: MountPoints (config.v2.json) say what docker mounted; Binds
    // (hostconfig.json) what was asked, for containers never started.
    let mut seen = std::collections::BTreeSet::new();
    for m in c.config.mount_points.values() {
        if m.kind != "bind" && !(m.kind.is_empty() && m.name.is_empty()) {
            continue;
        }
        let src = normalize(&m.source);
        if !seen.insert(src.clone()) {
            continue;
        }
        if let Some((sev, check, what)) = classify_bind(&src, m.rw) {
            out.push(who(Finding::new(
                sev,
                check,
                format!("{name} mounts {src} at {}: {what}", m.destination),
                c.config_path.clone(),
            )
            .evidence(format!(
                "{}:{}{}",
                m.source,
                m.destination,
                if m.rw { "" } else { ":ro" }
            ))));
        }
    }
    for b in h.binds.iter().flatten() {
        let mut parts = b.splitn(3, ':');
        let (src, dst, opts) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        if !src.starts_with('/') {
            continue; // a named volume
        }
        let norm = normalize(src);
        if !seen.insert(norm.clone()) {
            continue;
        }
        let rw = !opts.split(',').any(|o| o == "ro");
        if let Some((sev, check, what)) = classify_bind(&norm, rw) {
            out.push(who(Finding::new(
                sev,
                check,
                format!("{name} mounts {norm} at {dst}: {what}"),
                host_file.clone(),
            )
            .evidence(b.clone())));
        }
    }
    for cap in h.cap_add.iter().flatten() {
        let norm = cap.to_ascii_uppercase();
        let norm = norm.trim_start_matches("CAP_");
        let (sev, why) = if norm == "ALL" {
            (Severity::Critical, "every capability")
        } else if DANGEROUS_CAPS.contains(&norm) {
            (
                Severity::High,
                "a capability that can break out of or reach past the container",
            )
        } else {
            (Severity::Low, "a capability beyond docker's default set")
        };
        out.push(who(Finding::new(
            sev,
            "cap-add",
            format!("{name} adds CAP_{norm}: {why}"),
            host_file.clone(),
        )
        .evidence(format!("CapAdd {cap}"))));
    }
    for opt in h.security_opt.iter().flatten() {
        let o = opt.replace(':', "=");
        let (sev, check, what) = match o.as_str() {
            "seccomp=unconfined" => (
                Severity::High,
                "seccomp-unconfined",
                "runs without a seccomp filter",
            ),
            "apparmor=unconfined" => (
                Severity::High,
                "apparmor-unconfined",
                "runs without an AppArmor profile",
            ),
            "label=disable" => (
                Severity::Medium,
                "selinux-disabled",
                "runs without SELinux labels",
            ),
            "systempaths=unconfined" => (
                Severity::High,
                "systempaths-unconfined",
                "sees /proc and /sys unmasked",
            ),
            _ => continue,
        };
        out.push(who(Finding::new(
            sev,
            check,
            format!("{name} {what}"),
            host_file.clone(),
        )
        .evidence(format!("SecurityOpt {opt}"))));
    }
    let user = c.config.config.user.trim();
    let uid_part = user.split(':').next().unwrap_or("");
    if uid_part.is_empty() || uid_part == "0" || uid_part == "root" {
        let remap = found.and_then(|f| f.remap);
        let (sev, detail) = match (remap, found.map(|f| f.kind)) {
            (Some(m), _) => (
                Severity::Info,
                format!(
                    "userns-remapped root: container root was host uid {}",
                    m.uid
                ),
            ),
            (None, Some(RootKind::Rootless)) => (
                Severity::Info,
                "rootless docker: container root was the owning user".to_string(),
            ),
            _ => (
                Severity::Low,
                "not userns-remapped: container root is host root".to_string(),
            ),
        };
        out.push(who(Finding::new(
            sev,
            "runs-as-root",
            format!("{name} runs as root"),
            c.config_path.clone(),
        )
        .detail(detail)
        .evidence(if user.is_empty() {
            "\"User\": \"\" (the image default, root)".to_string()
        } else {
            format!("\"User\": {user:?}")
        })));
    }
    out
}

/// Audits every root discovery found, and the host's daemon configuration.
pub fn audit(d: &Discovery) -> Audit {
    let mut findings = daemon_findings(&d.configs, &d.roots);
    let mut problems = d.problems.clone();
    let mut roots = Vec::new();
    for r in d.present() {
        roots.push(r.path.clone());
        let root = match DockerRoot::open(&r.path) {
            Ok(root) => root,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        for c in root.containers() {
            match c {
                Ok(mut c) => {
                    c.load_host_config(root.dir());
                    findings.extend(container_findings(&root, Some(r), &c))
                }
                Err(e) => problems.push(format!("container {}: {}", e.name, e.error)),
            }
        }
    }
    // Most severe first; the order found otherwise.
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Audit {
        host: d.host.clone(),
        roots,
        config_files: d.configs.iter().map(|c| c.file.clone()).collect(),
        findings,
        problems,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners() {
        assert!(matches!(
            classify_host("tcp://0.0.0.0:2375"),
            Listen::Network(_)
        ));
        assert!(matches!(classify_host(":2375"), Listen::Network(_)));
        assert!(matches!(
            classify_host("tcp://[::]:2375"),
            Listen::Network(_)
        ));
        assert!(matches!(
            classify_host("tcp://127.0.0.1:2375"),
            Listen::Loopback(_)
        ));
        assert!(matches!(
            classify_host("tcp://localhost:2375"),
            Listen::Loopback(_)
        ));
        assert_eq!(classify_host("fd://"), Listen::Local);
        assert_eq!(classify_host("unix:///var/run/docker.sock"), Listen::Local);
    }

    #[test]
    fn binds() {
        let sock = classify_bind(&normalize("/var/run//docker.sock"), true).unwrap();
        assert_eq!((sock.0, sock.1), (Severity::Critical, "bind-docker-socket"));
        assert_eq!(classify_bind("/", false).unwrap().1, "bind-host-root");
        assert_eq!(
            classify_bind("/etc/ssl", false).unwrap().0,
            Severity::Medium
        );
        assert_eq!(classify_bind("/etc", true).unwrap().0, Severity::High);
        assert!(classify_bind("/srv/data", true).is_none());
        assert!(classify_bind("/etcetera", true).is_none());
    }
}
