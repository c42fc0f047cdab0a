//! `cargo xtask testbed up|down|status`: the local AWS test bed on 127.0.0.1.
//!
//! Parts, each on a free loopback port:
//!
//! - **moto**: `xtask/testbed/moto_launcher.py` (moto plus our patches, one port for every AWS
//!   service) run by the Python of a venv with the pinned `moto[server]` (`target/testbed/venv`,
//!   created once, see [`venv`]; it also holds the pinned zizmor, `venv/bin/zizmor`, which the
//!   generated-workflow test runs). The launcher binds port 0 and reports the port in a file.
//! - **registry**: Debian's `docker-registry` (distribution 2.8) with a config written here
//!   (`xtask/testbed/registry.yml.in`) and a fresh storage dir, run under
//!   `xtask/testbed/supervise.py`, which removes the storage when the registry stops.
//! - **builder**: not a process; the image builder the tests use, proven by a probe build
//!   (see [`builder`]).
//!
//! `up` waits until moto answers `GET /moto-api/` and `GET /_deployer/health` and the registry
//! answers `GET /v2/` with 200 (else it fails with the log's tail and stops what it started),
//! then writes the endpoints to `target/testbed/testbed.json` (the schema is [`BedFile`]) and
//! prints a summary. `down` stops every process group it started (SIGTERM, then SIGKILL after
//! 10 s), removes the storage and the file; `status` tells what runs and whether it answers.
//!
//! Nothing outlives its owner: every process leads a process group of its own (one signal
//! reaches all it started). A free-standing bed (`testbed up`) lives until `testbed down`.
//! Under `cargo xtask test` the bed belongs to the xtask process: its pid goes to the children
//! in `DEPLOYER_TESTBED_OWNER_PID`, and they end themselves when it dies, even by SIGKILL (parent
//! death signal plus a watchdog, `xtask/testbed/owner.py`). Python is required for that reason,
//! and for moto.
//!
//! Environment: `DEPLOYER_TESTBED_PYTHON` (the Python that creates the venv, default `python3`),
//! `DEPLOYER_TESTBED_REGISTRY` (default `docker-registry`), `DEPLOYER_TESTBED_BUILDER`
//! (`docker|buildah|none|auto`), `PIP_*` for pip.

/// `println!` that ignores a closed stdout (`cargo xtask testbed up | head` must not panic
/// with a bed half reported).
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
pub(crate) use say;

mod builder;
pub(crate) mod process;
mod venv;

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// Version of the testbed.json layout; the tests crate checks it.
const SCHEMA: u32 = 1;
/// The variable that hands the owner's pid to the bed's processes (see owner.py).
pub(crate) const OWNER_ENV: &str = "DEPLOYER_TESTBED_OWNER_PID";
/// How long a stopped process group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

const USAGE: &str = "usage: cargo xtask testbed up|down|status

  up       start moto and the image registry on free 127.0.0.1 ports, detect the image builder,
           and write target/testbed/testbed.json for the tests (cargo test reads it)
  down     stop everything `up` started and remove its storage
  status   show what runs and whether it answers";

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let layout = Layout::new();
    let file = layout.root.join("testbed.json");
    match args {
        ["up"] => {
            let running = up(&layout, &file, &layout.root.join("bed"), None)?;
            running.into_detached();
            Ok(())
        }
        ["down"] => down_file(&file),
        ["status"] => status(&file),
        _ => bail!("{USAGE}"),
    }
}

/// Where the test bed keeps its things: `<target dir>/testbed`.
pub(crate) struct Layout {
    /// `target/testbed`: the venv, the free-standing bed, the runs of `cargo xtask test`.
    pub(crate) root: PathBuf,
    /// The venv with the pinned moto.
    venv: PathBuf,
    /// `xtask/testbed`: the launcher, the supervisor, the patches, the registry template.
    scripts: PathBuf,
}

impl Layout {
    pub(crate) fn new() -> Self {
        let project = crate::project_root();
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => project.join(dir),
            None => project.join("target"),
        };
        let root = target.join("testbed");
        Layout {
            venv: root.join("venv"),
            root,
            scripts: project.join("xtask").join("testbed"),
        }
    }

    pub(crate) fn supervisor(&self) -> PathBuf {
        self.scripts.join("supervise.py")
    }
}

/// `testbed.json`: what the tests read (the tests crate mirrors this schema).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BedFile {
    /// Layout version, currently 1.
    pub(crate) schema: u32,
    /// The bed's own directory: logs, registry config and storage, buildah storage.
    pub(crate) dir: PathBuf,
    /// The process the bed dies with (`cargo xtask test`), or none for `testbed up`.
    pub(crate) owner_pid: Option<u32>,
    /// When `up` finished, in seconds since the Unix epoch.
    pub(crate) started_unix: u64,
    pub(crate) moto: Option<MotoInfo>,
    pub(crate) registry: Option<RegistryInfo>,
    pub(crate) builder: Option<BuilderInfo>,
    /// Why a part is absent (`"registry"`, `"builder"` → the reason and how to fix it).
    pub(crate) absent: BTreeMap<String, String>,
}

/// The moto server.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MotoInfo {
    /// `http://127.0.0.1:<port>`: the value for `AWS_ENDPOINT_URL`.
    pub(crate) url: String,
    pub(crate) port: u16,
    /// The launcher's pid, also its process group.
    pub(crate) pid: u32,
    pub(crate) log: PathBuf,
    pub(crate) version: String,
    /// The venv's Python (it has boto3, which scripts such as the example's stand-in
    /// infrastructure use against moto).
    #[serde(default)]
    pub(crate) python: PathBuf,
}

/// The image registry.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RegistryInfo {
    /// `127.0.0.1:<port>`: the registry part of an image reference.
    pub(crate) host: String,
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    pub(crate) port: u16,
    /// The supervisor's pid, also the process group of it and the registry.
    pub(crate) pid: u32,
    pub(crate) log: PathBuf,
    pub(crate) config: PathBuf,
    /// The temporary storage (removed when the registry stops).
    pub(crate) storage_dir: PathBuf,
    /// What `docker-registry --version` printed.
    pub(crate) version: String,
}

/// The image builder, as an argument vector: `program global_args… build build_args… <own
/// args>` and `program global_args… push push_args… <ref>`, with `env` set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BuilderInfo {
    /// `docker` or `buildah`.
    pub(crate) name: String,
    pub(crate) program: String,
    pub(crate) global_args: Vec<String>,
    pub(crate) build_args: Vec<String>,
    pub(crate) push_args: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) version: String,
    /// buildah's storage root inside the bed's directory (removed by `down`).
    pub(crate) storage_dir: Option<PathBuf>,
    /// How it was detected and configured, for people.
    pub(crate) note: String,
}

impl BuilderInfo {
    /// `program global_args…` with `env`, ready for a subcommand.
    pub(crate) fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.global_args).envs(&self.env);
        command
    }
}

/// A bed this process started, with its child handles (to reap them).
pub(crate) struct Running {
    pub(crate) file: PathBuf,
    pub(crate) bed: BedFile,
    pub(crate) python: PathBuf,
    children: Vec<Child>,
}

impl Running {
    /// Leaves the processes running after this process exits (`testbed up`).
    fn into_detached(self) {
        // Dropping a `Child` neither waits for nor kills it.
        drop(self.children);
    }

    /// Stops everything and removes the bed's storage and file.
    pub(crate) fn down(mut self) -> Result<()> {
        let children = &mut self.children;
        let mut reap = || {
            for child in children.iter_mut() {
                let _ = child.try_wait();
            }
        };
        let result = stop_parts(&self.bed, &mut reap);
        let _ = fs::remove_file(&self.file);
        result
    }
}

fn elapsed(since: Instant) -> String {
    format!("{:.1}s", since.elapsed().as_secs_f64())
}

/// Starts a bed in `dir` and writes `file`; with `owner`, the bed dies with that process.
pub(crate) fn up(layout: &Layout, file: &Path, dir: &Path, owner: Option<u32>) -> Result<Running> {
    if owner.is_none() && file.exists() {
        if let Ok(existing) = read(file) {
            if owner_alive(&existing) && health(&existing).iter().all(|(_, ok, _)| *ok) {
                say!("testbed: already up ({})", file.display());
                print_summary(&existing, file);
                return Ok(Running {
                    file: file.to_owned(),
                    bed: existing,
                    python: layout.venv.join("bin/python"),
                    children: Vec::new(),
                });
            }
            eprintln!(
                "testbed: replacing the stale bed described by {}",
                file.display()
            );
            let _ = stop_parts(&existing, &mut || {});
        }
        let _ = fs::remove_file(file);
    }
    let started = Instant::now();
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    if let Err(reason) = venv::python_available() {
        bail!("the test bed needs Python 3: {reason}");
    }
    let step = Instant::now();
    let venv = venv::ensure(&layout.venv)?;
    say!(
        "testbed: venv {} ({MOTO}) in {}",
        if venv.created { "created" } else { "reused" },
        elapsed(step),
        MOTO = venv::MOTO_REQUIREMENT
    );
    let mut running = Running {
        file: file.to_owned(),
        bed: BedFile {
            schema: SCHEMA,
            dir: dir.clone(),
            owner_pid: owner,
            started_unix: 0,
            moto: None,
            registry: None,
            builder: None,
            absent: BTreeMap::new(),
        },
        python: venv.python,
        children: Vec::new(),
    };
    match start_parts(layout, &mut running) {
        Ok(()) => {}
        Err(error) => {
            if let Err(stop_error) = running.down() {
                eprintln!("testbed: while stopping after the failure: {stop_error:#}");
            }
            return Err(error);
        }
    }
    running.bed.started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let json = serde_json::to_string_pretty(&running.bed)?;
    let partial = file.with_extension("json.partial");
    fs::write(&partial, json + "\n")?;
    fs::rename(&partial, file)?;
    say!("testbed: up in {}", elapsed(started));
    print_summary(&running.bed, file);
    Ok(running)
}

fn start_parts(layout: &Layout, running: &mut Running) -> Result<()> {
    let dir = running.bed.dir.clone();
    let owner = running.bed.owner_pid;

    // moto: spawned first, it takes the longest to import.
    let step = Instant::now();
    let moto_log = dir.join("moto.log");
    let port_file = dir.join("moto.port");
    let _ = fs::remove_file(&port_file);
    let mut moto = Command::new(&running.python);
    moto.arg("-u")
        .arg(layout.scripts.join("moto_launcher.py"))
        .args(["--host", "127.0.0.1", "--port", "0", "--port-file"])
        .arg(&port_file);
    let moto_child = spawn(moto, &moto_log, owner)?;
    let moto_pid = moto_child.id();
    running.children.push(moto_child);

    // The registry, then the builder probe while moto imports.
    start_registry(layout, running)?;
    let registry_time = elapsed(step);

    let builder_step = Instant::now();
    match builder::detect(&dir)? {
        builder::Detection::Found(info) => running.bed.builder = Some(info),
        builder::Detection::Absent(reason) => {
            running.bed.absent.insert("builder".to_owned(), reason);
        }
    }
    let builder_time = elapsed(builder_step);

    let mut port = None;
    let moto_child = running
        .children
        .iter_mut()
        .find(|c| c.id() == moto_pid)
        .context("moto's child handle is lost")?;
    process::wait_ready(
        "moto",
        moto_child,
        &moto_log,
        Duration::from_secs(120),
        || {
            let Some(p) = port.or_else(|| {
                fs::read_to_string(&port_file)
                    .ok()?
                    .trim()
                    .parse::<u16>()
                    .ok()
            }) else {
                return false;
            };
            port = Some(p);
            let addr = SocketAddr::from(([127, 0, 0, 1], p));
            let ok = |path| {
                matches!(
                    process::http_get_status(addr, path, Duration::from_secs(2)),
                    Ok(200)
                )
            };
            ok("/_deployer/health") && ok("/moto-api/")
        },
    )?;
    let port = port.context("moto's port is unknown")?;
    running.bed.moto = Some(MotoInfo {
        url: format!("http://127.0.0.1:{port}"),
        port,
        pid: moto_pid,
        log: moto_log,
        version: venv::MOTO_VERSION.to_owned(),
        python: running.python.clone(),
    });
    say!(
        "testbed: moto answers after {}, registry after {registry_time}, builder probed in {builder_time}",
        elapsed(step)
    );
    Ok(())
}

fn start_registry(layout: &Layout, running: &mut Running) -> Result<()> {
    let dir = running.bed.dir.clone();
    let program =
        std::env::var("DEPLOYER_TESTBED_REGISTRY").unwrap_or_else(|_| "docker-registry".to_owned());
    let found = process::output_within(
        Command::new(&program).arg("--version"),
        Duration::from_secs(30),
    );
    let version = match found {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => {
            running.bed.absent.insert(
                "registry".to_owned(),
                format!("`{program}` cannot be run: install Debian's docker-registry package (apt-get install docker-registry) or set DEPLOYER_TESTBED_REGISTRY"),
            );
            return Ok(());
        }
    };
    let template = fs::read_to_string(layout.scripts.join("registry.yml.in"))
        .context("cannot read the registry config template")?;
    let storage = dir.join("registry-storage");
    let config = dir.join("registry.yml");
    let log = dir.join("registry.log");
    let mut last_error = None;
    for _attempt in 0..3 {
        let _ = fs::remove_dir_all(&storage);
        fs::create_dir_all(&storage)?;
        let port = process::free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let text = template
            .replace("@ADDR@", &addr.to_string())
            .replace("@ROOT@", &storage.to_string_lossy());
        fs::write(&config, text)?;
        let mut command = Command::new(&running.python);
        command
            .arg("-u")
            .arg(layout.supervisor())
            .arg("--cleanup")
            .arg(&storage)
            .arg("--")
            .arg(&program)
            .arg("serve")
            .arg(&config);
        let mut child = spawn(command, &log, running.bed.owner_pid)?;
        let ready = process::wait_ready(
            "the registry",
            &mut child,
            &log,
            Duration::from_secs(30),
            || {
                matches!(
                    process::http_get_status(addr, "/v2/", Duration::from_secs(2)),
                    Ok(200)
                )
            },
        );
        let pid = child.id();
        running.children.push(child);
        match ready {
            Ok(()) => {
                running.bed.registry = Some(RegistryInfo {
                    host: addr.to_string(),
                    url: format!("http://{addr}"),
                    port,
                    pid,
                    log,
                    config,
                    storage_dir: storage,
                    version,
                });
                return Ok(());
            }
            Err(error)
                if fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("address already in use") =>
            {
                // Another process took the port between our probe and the registry's bind.
                let _ = process::stop_group(pid, GRACE, &mut || {});
                last_error = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("the registry did not start")))
}

/// Spawns `command` as the leader of a new process group, output appended to `log`.
fn spawn(mut command: Command, log: &Path, owner: Option<u32>) -> Result<Child> {
    use std::os::unix::process::CommandExt;

    let out = fs::File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .env_remove(OWNER_ENV)
        .process_group(0);
    if let Some(pid) = owner {
        command.env(OWNER_ENV, pid.to_string());
    }
    command
        .spawn()
        .with_context(|| format!("cannot start {:?}", command.get_program()))
}

/// Stops the bed's processes (checking that each pid still is ours) and removes its storage.
fn stop_parts(bed: &BedFile, reap: &mut dyn FnMut()) -> Result<()> {
    let mut errors = Vec::new();
    let parts = [
        ("moto", bed.moto.as_ref().map(|m| m.pid), "moto_launcher.py"),
        (
            "registry",
            bed.registry.as_ref().map(|r| r.pid),
            "supervise.py",
        ),
    ];
    let mut ours = Vec::new();
    for (name, pid, marker) in parts {
        let Some(pid) = pid else { continue };
        if process::alive(pid) && !process::cmdline(pid).contains(marker) {
            eprintln!("testbed: pid {pid} ({name}) is no longer ours; left alone");
            continue;
        }
        // Signal every group first so that they shut down in parallel.
        process::signal_group(pid, "TERM");
        ours.push((name, pid));
    }
    for (name, pid) in ours {
        if let Err(error) = process::stop_group(pid, GRACE, reap) {
            errors.push(format!("{name}: {error:#}"));
        }
    }
    if let Some(registry) = &bed.registry {
        let _ = fs::remove_dir_all(&registry.storage_dir);
        if let Some(builder) = &bed.builder {
            remove_pushed_images(builder, &registry.host);
        }
    }
    if let Some(storage) = bed.builder.as_ref().and_then(|b| b.storage_dir.as_ref()) {
        let _ = fs::remove_dir_all(storage);
    }
    let _ = fs::remove_file(bed.dir.join("moto.port"));
    let _ = fs::remove_file(bed.dir.join("registry.yml"));
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("could not stop: {}", errors.join("; "))
    }
}

/// Removes the images the tests built for this bed's registry from the Docker engine.
fn remove_pushed_images(builder: &BuilderInfo, registry_host: &str) {
    if builder.name != "docker" {
        return; // buildah's storage lives in the bed's directory and goes with it
    }
    let mut list = builder.command();
    list.args(["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"]);
    let Ok(out) = process::output_within(&mut list, Duration::from_secs(60)) else {
        return;
    };
    let prefix = format!("{registry_host}/");
    let refs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|r| r.starts_with(&prefix) && !r.ends_with(":<none>"))
        .map(str::to_owned)
        .collect();
    if !refs.is_empty() {
        let mut remove = builder.command();
        remove.args(["rmi", "--force"]).args(&refs);
        let _ = process::output_within(&mut remove, Duration::from_secs(120));
    }
}

pub(crate) fn read(file: &Path) -> Result<BedFile> {
    let text =
        fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let bed: BedFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a test-bed file", file.display()))?;
    if bed.schema != SCHEMA {
        bail!(
            "{} has schema {} (expected {SCHEMA})",
            file.display(),
            bed.schema
        );
    }
    Ok(bed)
}

fn owner_alive(bed: &BedFile) -> bool {
    bed.owner_pid.is_none_or(process::alive)
}

/// `testbed down` for the bed described by `file`.
fn down_file(file: &Path) -> Result<()> {
    if !file.exists() {
        say!("testbed: not up (no {})", file.display());
        return Ok(());
    }
    let started = Instant::now();
    let bed = read(file)?;
    let result = stop_parts(&bed, &mut || {});
    let _ = fs::remove_file(file);
    result?;
    say!("testbed: down in {}", elapsed(started));
    Ok(())
}

/// `(part, answers, details)` for each part of `bed`.
fn health(bed: &BedFile) -> Vec<(&'static str, bool, String)> {
    let answers = |port: u16, path: &str| {
        process::http_get_status(
            SocketAddr::from(([127, 0, 0, 1], port)),
            path,
            Duration::from_secs(2),
        )
        .map_or_else(
            |e| format!("no answer ({e})"),
            |code| format!("HTTP {code}"),
        )
    };
    let mut parts = Vec::new();
    if let Some(moto) = &bed.moto {
        let reply = answers(moto.port, "/_deployer/health");
        parts.push((
            "moto",
            process::alive(moto.pid) && reply == "HTTP 200",
            format!("pid {}, {reply}", moto.pid),
        ));
    }
    if let Some(registry) = &bed.registry {
        let reply = answers(registry.port, "/v2/");
        parts.push((
            "registry",
            process::alive(registry.pid) && reply == "HTTP 200",
            format!("pid {}, {reply}", registry.pid),
        ));
    }
    parts
}

fn status(file: &Path) -> Result<()> {
    if !file.exists() {
        bail!(
            "testbed: not up (no {}); start it with `cargo xtask testbed up`",
            file.display()
        );
    }
    let bed = read(file)?;
    print_summary(&bed, file);
    let mut down = Vec::new();
    for (part, ok, details) in health(&bed) {
        say!(
            "  {part:<9} {}: {details}",
            if ok { "answers" } else { "DOWN" }
        );
        if !ok {
            down.push(part);
        }
    }
    if !down.is_empty() {
        bail!(
            "not answering: {}; restart with `cargo xtask testbed down && cargo xtask testbed up`",
            down.join(", ")
        );
    }
    Ok(())
}

fn print_summary(bed: &BedFile, file: &Path) {
    match &bed.moto {
        Some(moto) => say!(
            "  moto      {}  (moto {}, pid {}, log {})",
            moto.url,
            moto.version,
            moto.pid,
            moto.log.display()
        ),
        None => say!("  moto      absent"),
    }
    match &bed.registry {
        Some(reg) => say!(
            "  registry  {}  (pid {}, log {})",
            reg.host,
            reg.pid,
            reg.log.display()
        ),
        None => say!(
            "  registry  absent: {}",
            bed.absent.get("registry").map_or("", String::as_str)
        ),
    }
    match &bed.builder {
        Some(builder) => say!("  builder   {}  ({})", builder.name, builder.note),
        None => say!(
            "  builder   absent: {}",
            bed.absent.get("builder").map_or("", String::as_str)
        ),
    }
    say!(
        "  file      {}  (tests read it; DEPLOYER_TESTBED overrides the path)",
        file.display()
    );
}

/// Stops the beds of `cargo xtask test` runs that died without cleaning up, and removes them.
pub(crate) fn sweep_stale_runs(layout: &Layout) {
    let Ok(entries) = fs::read_dir(&layout.root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("run-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if process::alive(pid) && process::cmdline(pid).contains("xtask") {
            continue; // a run in progress
        }
        if let Ok(bed) = read(&entry.path().join("testbed.json")) {
            let _ = stop_parts(&bed, &mut || {});
        }
        let _ = fs::remove_dir_all(entry.path());
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// The guarantee `cargo xtask test` rests on: when the owner dies (here a shell that exits,
    /// standing for an xtask killed by SIGKILL), the supervisor and what it runs stop, and the
    /// supervisor removes its `--cleanup` paths.
    #[test]
    fn supervised_processes_die_with_their_owner() {
        let dir = std::env::temp_dir().join(format!("deployer-owner-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("storage")).unwrap();
        let script = format!(
            "{OWNER_ENV}=$$ python3 \"$1\" --cleanup \"$2/storage\" -- sh -c 'echo $$ > \"$0/child.pid\"; exec sleep 60' \"$2\" & \
             echo $! > \"$2/supervisor.pid\"; \
             while [ ! -s \"$2/child.pid\" ]; do sleep 0.05; done"
        );
        let status = Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(Layout::new().supervisor())
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success());
        let pid = |name: &str| {
            fs::read_to_string(dir.join(name))
                .unwrap()
                .trim()
                .parse::<u32>()
                .unwrap()
        };
        let (supervisor, child) = (pid("supervisor.pid"), pid("child.pid"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while (process::alive(supervisor) || process::alive(child)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            !process::alive(supervisor),
            "the supervisor outlived its owner"
        );
        assert!(
            !process::alive(child),
            "the supervised command outlived its owner"
        );
        assert!(
            !dir.join("storage").exists(),
            "the --cleanup path was not removed"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
