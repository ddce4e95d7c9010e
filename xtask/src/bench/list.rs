//! Listing benches: `list` and `images` against reading the configs they
//! need (the physical floor of a listing), and `list` against
//! docker-explorer.

use super::*;

/// Listing benches.
pub const BENCHES: &[MakeBench] = &[
    || Box::new(List::new(5_000, ListBaseline::Cat)),
    || Box::new(List::new(5_000, ListBaseline::DockerExplorer)),
    || Box::new(List::new(50_000, ListBaseline::Cat)),
    || Box::new(Images { images: 2_000 }),
];

/// What `list` is measured against.
#[derive(Clone, Copy, PartialEq)]
enum ListBaseline {
    /// `cat` of every container's config.v2.json (file names given by
    /// `xargs` from a list made in setup, so no directory walk is timed).
    Cat,
    /// docker-explorer's `de.py list all_containers`, from PyPI in a venv.
    DockerExplorer,
}

/// `list --all --json` on a root of `containers` containers.
struct List {
    containers: usize,
    baseline: ListBaseline,
}

impl List {
    fn new(containers: usize, baseline: ListBaseline) -> Self {
        List {
            containers,
            baseline,
        }
    }
    fn dir(&self, ctx: &Ctx) -> PathBuf {
        ctx.dir.join(format!("list-{}", self.containers))
    }
    fn root(&self, ctx: &Ctx) -> PathBuf {
        self.dir(ctx).join("root")
    }
}

impl Bench for List {
    fn name(&self) -> &'static str {
        match (self.containers, self.baseline) {
            (5_000, ListBaseline::Cat) => "list-5000",
            (5_000, ListBaseline::DockerExplorer) => "list-5000-vs-de",
            (50_000, _) => "list-50000",
            _ => "list",
        }
    }
    fn description(&self) -> &'static str {
        match (self.containers, self.baseline) {
            (5_000, ListBaseline::Cat) => {
                "list --all --json, 5,000 containers vs cat of each config.v2.json"
            }
            (_, ListBaseline::DockerExplorer) => {
                "list --all --json, 5,000 containers vs docker-explorer's de.py list all_containers"
            }
            _ => "list --all --json, 50,000 containers vs cat of each config.v2.json",
        }
    }
    fn unavailable(&self) -> Option<String> {
        (self.baseline == ListBaseline::DockerExplorer && find_tool("python3").is_none())
            .then(|| "needs python3 for docker-explorer".to_string())
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        let containers = self.containers;
        cached_root(
            &self.dir(ctx),
            &format!("containers={containers} v1"),
            |root| {
                let mut b = RootBuilder::new(root);
                let layer = b.layer(&[
                    Node::file("bin/sh", b"#!fake shell\n").mode(0o755),
                    Node::file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
                ]);
                let image = b.image(&["bench:1"], layer, ImageOpts::default());
                for i in 0..containers {
                    let state = match i % 5 {
                        0 | 1 => ContainerState::Running,
                        2 => ContainerState::Exited(0),
                        3 => ContainerState::Exited(137),
                        _ => ContainerState::Created,
                    };
                    b.container(
                        &format!("bench-{i:05}"),
                        image,
                        ContainerOpts {
                            state,
                            ..ContainerOpts::default()
                        },
                    );
                }
                b.finish();
                Ok(())
            },
        )?;
        match self.baseline {
            ListBaseline::Cat => write_file_list(
                &self.root(ctx).join("containers"),
                "config.v2.json",
                &self.dir(ctx).join("configs.txt"),
            ),
            ListBaseline::DockerExplorer => docker_explorer(ctx).map(drop),
        }
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        ctx.ours(&self.root(ctx), &["list", "--all", "--json"])
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        match self.baseline {
            ListBaseline::Cat => cat_listed(&self.dir(ctx).join("configs.txt")),
            ListBaseline::DockerExplorer => {
                let mut cmd = Command::new(docker_explorer_bin(ctx));
                cmd.arg("-r")
                    .arg(self.root(ctx))
                    .args(["list", "all_containers"]);
                cmd
            }
        }
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(stdout).context("list --json printed no JSON array")?;
        ensure!(
            rows.len() == self.containers,
            "list printed {} containers, expected {}",
            rows.len(),
            self.containers
        );
        let broken = rows.iter().filter(|r| !r["error"].is_null()).count();
        ensure!(broken == 0, "list reported {broken} unreadable containers");
        Ok(())
    }
}

/// `images --all --json` on a root of `images` images (one layer each),
/// against `cat` of every image config in imagedb.
struct Images {
    images: usize,
}

impl Images {
    fn dir(ctx: &Ctx) -> PathBuf {
        ctx.dir.join("images-2000")
    }
}

impl Bench for Images {
    fn name(&self) -> &'static str {
        "images-2000"
    }
    fn description(&self) -> &'static str {
        "images --all --json, 2,000 images vs cat of each image config"
    }
    fn setup(&mut self, ctx: &Ctx) -> Result<()> {
        let images = self.images;
        let dir = Self::dir(ctx);
        cached_root(&dir, &format!("images={images} v1"), |root| {
            let mut b = RootBuilder::new(root);
            for i in 0..images {
                let layer = b.layer(&[Node::file(
                    format!("srv/app-{i}"),
                    format!("app {i}\n").as_bytes(),
                )]);
                b.image(&[&format!("bench-{i:04}:1")], layer, ImageOpts::default());
            }
            b.finish();
            Ok(())
        })?;
        write_file_list(
            &dir.join("root/image/overlay2/imagedb/content/sha256"),
            "",
            &dir.join("configs.txt"),
        )
    }
    fn ours(&self, ctx: &Ctx) -> Command {
        ctx.ours(&Self::dir(ctx).join("root"), &["images", "--all", "--json"])
    }
    fn baseline(&self, ctx: &Ctx) -> Command {
        cat_listed(&Self::dir(ctx).join("configs.txt"))
    }
    fn check_ours(&self, stdout: &[u8]) -> Result<()> {
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(stdout).context("images --json printed no JSON array")?;
        ensure!(
            rows.len() == self.images,
            "images printed {} images, expected {}",
            rows.len(),
            self.images
        );
        Ok(())
    }
}

/// Writes to `out` the path of every `name` file one level below the
/// directories of `dir` (or, with an empty `name`, of every file in `dir`),
/// one per line.
fn write_file_list(dir: &Path, name: &str, out: &Path) -> Result<()> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        paths.push(if name.is_empty() {
            path
        } else {
            path.join(name)
        });
    }
    paths.sort();
    let text: String = paths.iter().map(|p| format!("{}\n", p.display())).collect();
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))
}

/// `xargs -d '\n' -a <list> cat`: every listed file read once.
fn cat_listed(list: &Path) -> Command {
    let mut cmd = Command::new("xargs");
    cmd.args(["-d", "\\n", "-a"]).arg(list).arg("cat");
    cmd
}

fn docker_explorer_venv(ctx: &Ctx) -> PathBuf {
    ctx.dir.join("docker-explorer-venv")
}

fn docker_explorer_bin(ctx: &Ctx) -> PathBuf {
    docker_explorer_venv(ctx).join("bin/de.py")
}

/// docker-explorer from PyPI in a venv under `target/bench` (made once).
fn docker_explorer(ctx: &Ctx) -> Result<PathBuf> {
    let bin = docker_explorer_bin(ctx);
    if bin.exists() {
        return Ok(bin);
    }
    let venv = docker_explorer_venv(ctx);
    let mut make = Command::new("python3");
    make.args(["-m", "venv"]).arg(&venv);
    run_checked(make)?;
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "--quiet", "docker-explorer"]);
    run_checked(pip).context("cannot install docker-explorer from PyPI")?;
    ensure!(
        bin.exists(),
        "docker-explorer installed no {}",
        bin.display()
    );
    Ok(bin)
}
