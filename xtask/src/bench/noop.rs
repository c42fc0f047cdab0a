//! `cargo xtask bench noop`: what a deploy of unchanged services costs (the run every CI push
//! pays), against a plain parallel SDK loop making the same live reads; and what injected
//! throttling costs a first deploy under each retry policy.
//!
//! In one run, against the test bed's moto (the free-standing bed of `cargo xtask testbed up`
//! when it answers, else a bed of this run's own, stopped at the end):
//!
//! 1. For each N of `--services` (default 5, 50, 200): N Lambda zip functions are created in
//!    moto with boto3 (the venv's Python; xtask carries no AWS SDK), and a fixture git
//!    repository whose `deployer.toml` has N `kind = "lambda-zip"` services
//!    (`project.concurrency = --concurrency`, default 16). One `deployer deploy --all --json`
//!    rolls them out (timed apart, not part of the figures). Then, `--runs` times, interleaved:
//!    - the no-op `deployer deploy --all --json` (every service must come back `unchanged`);
//!    - the baseline: `noop_baseline` (the `deployer-tests` binary, `tests/src/bin/`) makes
//!      the reads a no-op needs — one `GetFunction` per function, and `GetParameters` of each
//!      service's `image-tag` and `deploy-state`, 10 names a call — all at once, with the
//!      deployer's own `SdkConfig`.
//!
//!    Each run has an `AWS_ACCESS_KEY_ID` of its own, so moto's request recorder
//!    (`xtask/testbed/patches/zz_recorder.py`) gives exactly its calls: they are counted by API
//!    action, and every action that is not `Get*`, `Describe*`, `List*` or `Head*` is a write.
//!    Goals: no-op / baseline ≤ 1.5 (median wall clock of the whole process) and zero writes.
//! 2. Retry cost: the first deploy of 5 lambda-zip services (fresh functions each time) through
//!    the fault proxy (`xtask/testbed/faultproxy.py`) with 25% of the requests throttled,
//!    with the deployer's default retry settings, with `AWS_RETRY_MODE=adaptive` and with
//!    `AWS_RETRY_MODE=standard` (each with `AWS_MAX_ATTEMPTS=8`), and without faults; the
//!    time and the proxy's counts (faulted, SDK retries, calls out of attempts) of each.
//!
//! The deployer is `target/debug/deployer` (built with `cargo build -p deployer-cli` only when
//! missing: the bench measures what is built, it never rebuilds the workspace); `--release`
//! builds and uses `target/release/deployer`; `DEPLOYER_BIN` overrides both. Benchmarks are
//! not tests: a figure off its goal is printed "NOT MET" and fails nothing. On a shared bed the
//! functions and parameters made here are deleted at the end (unless `--keep`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::machine::{children_cpu, cpu_model, cpus, load_average, median, min};
use crate::testbed::{self, Layout, process};

const USAGE: &str = "usage: cargo xtask bench noop [--services 5,50,200] [--runs R] \
                     [--concurrency 16] [--release] [--no-retry] [--retry-timeout S] [--keep]";

/// The goals from the issue.
const MAX_RATIO_VS_BASELINE: f64 = 1.5;
const MAX_WRITES: u64 = 0;

/// The retry section: services, throttled share, attempts for the explicit modes.
const RETRY_SERVICES: usize = 5;
const RETRY_THROTTLE: f64 = 0.25;
const RETRY_MAX_ATTEMPTS: &str = "8";
/// The proxy's dice are seeded: the same request order gets the same faults.
const RETRY_SEED: u64 = 1;

/// Deadline of one setup (first) deploy or no-op run.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

const REGION: &str = "us-east-1";

struct Options {
    services: Vec<usize>,
    runs: usize,
    concurrency: usize,
    release: bool,
    retry: bool,
    retry_timeout: Duration,
    keep: bool,
}

fn parse(args: &[&str]) -> Result<Options> {
    let mut options = Options {
        services: vec![5, 50, 200],
        runs: 3,
        concurrency: 16,
        release: false,
        retry: true,
        retry_timeout: Duration::from_secs(240),
        keep: false,
    };
    let mut args = args.iter();
    while let Some(&arg) = args.next() {
        let mut value = |name: &str| -> Result<&str> {
            args.next()
                .copied()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        let number = |name: &str, text: &str| -> Result<usize> {
            text.trim()
                .parse()
                .with_context(|| format!("{name} needs a number, not `{text}`\n{USAGE}"))
        };
        match arg {
            "--services" => {
                let list = value("--services")?;
                options.services = list
                    .split(',')
                    .map(|n| number("--services", n))
                    .collect::<Result<_>>()?;
            }
            "--runs" => options.runs = number("--runs", value("--runs")?)?,
            "--concurrency" => {
                options.concurrency = number("--concurrency", value("--concurrency")?)?;
            }
            "--retry-timeout" => {
                let seconds = number("--retry-timeout", value("--retry-timeout")?)?;
                options.retry_timeout = Duration::from_secs(seconds as u64);
            }
            "--release" => options.release = true,
            "--no-retry" => options.retry = false,
            "--keep" => options.keep = true,
            _ => bail!("unexpected argument `{arg}`\n{USAGE}"),
        }
    }
    if options.services.is_empty()
        || options.services.contains(&0)
        || options.services.iter().any(|&n| n > 999)
        || options.runs == 0
        || options.concurrency == 0
    {
        bail!("--services takes 1 to 999 each, --runs and --concurrency at least 1\n{USAGE}");
    }
    Ok(options)
}

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let options = parse(args)?;
    let started = Instant::now();
    let root = crate::project_root();
    let layout = Layout::new();
    let target = layout.root.parent().unwrap_or(&layout.root).to_owned();

    let binaries = binaries(&root, &target, options.release)?;
    let id = format!("{:x}", std::process::id());
    let work = target.join("bench-noop").join(format!("run-{id}"));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    fs::write(work.join("setup.py"), SETUP_PY)?;
    fs::write(work.join("aws-empty"), "")?;

    let bed = Bed::get(&layout, &work)?;
    let result = bench(&options, &binaries, &bed, &work, &id, started);
    let cleanup = bed.finish(options.keep);
    if options.keep {
        eprintln!("bench noop: kept {}", work.display());
    } else {
        let _ = fs::remove_dir_all(&work);
    }
    result?;
    cleanup
}

/// The deployer under test and the baseline binary.
struct Binaries {
    deployer: PathBuf,
    deployer_note: String,
    baseline: PathBuf,
}

fn cargo(root: &Path, args: &[&str]) -> Result<bool> {
    eprintln!("bench noop: cargo {}", args.join(" "));
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(args)
        .current_dir(root)
        .status()
        .context("cannot run cargo")?;
    Ok(status.success())
}

fn binaries(root: &Path, target: &Path, release: bool) -> Result<Binaries> {
    let profile = if release { "release" } else { "debug" };
    let release_flag: &[&str] = if release { &["--release"] } else { &[] };
    let (deployer, deployer_note) = if let Some(path) = std::env::var_os("DEPLOYER_BIN") {
        let path = PathBuf::from(path);
        let note = format!("{} (DEPLOYER_BIN)", path.display());
        (path, note)
    } else {
        let path = target.join(profile).join("deployer");
        if release || !path.is_file() {
            let args = [&["build", "--quiet"], release_flag, &["-p", "deployer-cli"]].concat();
            if !cargo(root, &args)? {
                bail!("`cargo {}` failed", args.join(" "));
            }
        }
        let note = format!("{} ({profile} build)", path.display());
        (path, note)
    };
    if !deployer.is_file() {
        bail!("the deployer binary {} does not exist", deployer.display());
    }
    let deployer_note = match fs::metadata(&deployer).and_then(|m| m.modified()) {
        Ok(modified) => {
            let age = modified.elapsed().unwrap_or_default().as_secs();
            format!("{deployer_note}, built {} min ago", age / 60)
        }
        Err(_) => deployer_note,
    };
    // The baseline is ours: always brought up to date (cheap when it is), so that it never
    // runs with another interface than this file expects.
    let baseline = target.join(profile).join("noop_baseline");
    let args = [
        &["build", "--quiet"],
        release_flag,
        &["-p", "deployer-tests", "--bin", "noop_baseline"],
    ]
    .concat();
    if !cargo(root, &args)? {
        if baseline.is_file() {
            eprintln!(
                "bench noop: warning: `cargo {}` failed; using the existing {}",
                args.join(" "),
                baseline.display()
            );
        } else {
            bail!("`cargo {}` failed", args.join(" "));
        }
    }
    Ok(Binaries {
        deployer,
        deployer_note,
        baseline,
    })
}

/// The test bed this run uses: the free-standing one, or one of its own.
struct Bed {
    /// The setup script (`SETUP_PY`) and an empty file for `AWS_CONFIG_FILE`.
    setup_py: PathBuf,
    empty: PathBuf,
    moto_url: String,
    moto_port: u16,
    python: PathBuf,
    /// The bed this run started (stopped by [`Bed::finish`]); `None` when it is shared.
    own: Option<testbed::Running>,
    /// What was created on a shared bed, deleted at the end: setup specs.
    created: std::cell::RefCell<Vec<PathBuf>>,
}

impl Bed {
    fn get(layout: &Layout, work: &Path) -> Result<Bed> {
        let shared = layout.root.join("testbed.json");
        if let Ok(bed) = testbed::read(&shared)
            && let Some(moto) = &bed.moto
            && bed.owner_pid.is_none_or(process::alive)
            && matches!(
                process::http_get_status(
                    SocketAddr::from(([127, 0, 0, 1], moto.port)),
                    "/_deployer/health",
                    Duration::from_secs(2)
                ),
                Ok(200)
            )
        {
            eprintln!(
                "bench noop: using the test bed of {} (moto {})",
                shared.display(),
                moto.url
            );
            let python = if moto.python.as_os_str().is_empty() {
                layout.root.join("venv/bin/python")
            } else {
                moto.python.clone()
            };
            return Ok(Bed {
                setup_py: work.join("setup.py"),
                empty: work.join("aws-empty"),
                moto_url: moto.url.clone(),
                moto_port: moto.port,
                python,
                own: None,
                created: Default::default(),
            });
        }
        eprintln!("bench noop: no test bed answers; starting one of this run's own");
        let dir = work.join("bed");
        let running = testbed::up(
            layout,
            &dir.join("testbed.json"),
            &dir,
            Some(std::process::id()),
        )?;
        let moto = running
            .bed
            .moto
            .as_ref()
            .context("the test bed started without moto")?;
        Ok(Bed {
            setup_py: work.join("setup.py"),
            empty: work.join("aws-empty"),
            moto_url: moto.url.clone(),
            moto_port: moto.port,
            python: running.python.clone(),
            created: Default::default(),
            own: Some(running),
        })
    }

    /// The AWS environment of a child pointed at `endpoint` and signing with `access_key`.
    fn aws_env(&self, endpoint: &str, access_key: &str) -> Vec<(String, String)> {
        let empty = self.empty.display().to_string();
        [
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", access_key),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", empty.as_str()),
            ("AWS_SHARED_CREDENTIALS_FILE", empty.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    fn describe(&self) -> String {
        format!(
            "{} ({})",
            self.moto_url,
            if self.own.is_some() {
                "a test bed of this run's own"
            } else {
                "the shared test bed"
            }
        )
    }

    /// Stops an own bed; on a shared bed deletes what this run created (unless `keep`).
    fn finish(self, keep: bool) -> Result<()> {
        if let Some(running) = self.own {
            eprintln!("bench noop: stopping the test bed this run started");
            return running.down();
        }
        if keep {
            return Ok(());
        }
        let specs = self.created.borrow().clone();
        if !specs.is_empty() {
            eprintln!("bench noop: deleting the functions and parameters made on the shared bed");
        }
        for spec in specs {
            let output = Command::new(&self.python)
                .arg(&self.setup_py)
                .arg("delete")
                .arg(&spec)
                .env_clear_aws()
                .envs(self.aws_env(&self.moto_url, "bench-noop-cleanup"))
                .stdin(Stdio::null())
                .output()
                .context("cannot run setup.py delete")?;
            if !output.status.success() {
                eprintln!(
                    "bench noop: warning: could not delete what {} created: {}",
                    spec.display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
        }
        Ok(())
    }

    /// Creates `functions` (zip, python3.12, a tiny handler) and their role in moto.
    fn create_functions(
        &self,
        dir: &Path,
        name: &str,
        prefix: &str,
        functions: &[String],
    ) -> Result<f64> {
        let spec = dir.join("setup.json");
        fs::write(
            &spec,
            json!({ "role": format!("{name}-role"), "prefix": prefix, "functions": functions })
                .to_string(),
        )?;
        let started = Instant::now();
        let output = Command::new(&self.python)
            .arg(&self.setup_py)
            .arg("create")
            .arg(&spec)
            .env_clear_aws()
            .envs(self.aws_env(&self.moto_url, "bench-noop-setup"))
            .stdin(Stdio::null())
            .output()
            .context("cannot run setup.py")?;
        let seconds = started.elapsed().as_secs_f64();
        self.created.borrow_mut().push(spec);
        if !output.status.success() {
            bail!(
                "creating {} functions in moto failed: {}",
                functions.len(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(seconds)
    }

    /// The calls moto recorded under `access_key`, by action: (calls, answered with an error).
    fn calls(&self, access_key: &str) -> Result<Calls> {
        let (status, body) = http(
            self.moto_port,
            "GET",
            &format!("/_deployer/calls?access_key={access_key}"),
            b"",
        )?;
        if status != 200 {
            bail!("GET /_deployer/calls answered {status}");
        }
        let document: Value =
            serde_json::from_slice(&body).context("the recorder answered no JSON")?;
        let mut calls = Calls::default();
        for call in document["calls"].as_array().into_iter().flatten() {
            let action = call["action"].as_str().unwrap_or("(unknown)").to_owned();
            let entry = calls.by_action.entry(action).or_default();
            entry.0 += 1;
            if call["status"].as_u64().is_none_or(|s| s >= 400) {
                entry.1 += 1;
            }
        }
        Ok(calls)
    }
}

/// `Command::env_remove` of every inherited `AWS_*` variable: nothing of this shell's AWS
/// setup reaches the emulator runs.
trait ClearAws {
    fn env_clear_aws(&mut self) -> &mut Self;
}

impl ClearAws for Command {
    fn env_clear_aws(&mut self) -> &mut Self {
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AWS_") {
                self.env_remove(key);
            }
        }
        self
    }
}

/// Recorded calls by API action: (calls, of which answered with an error).
#[derive(Default, Clone, PartialEq, Eq)]
struct Calls {
    by_action: BTreeMap<String, (u64, u64)>,
}

impl Calls {
    fn total(&self) -> u64 {
        self.by_action.values().map(|(n, _)| n).sum()
    }

    fn writes(&self) -> u64 {
        self.by_action
            .iter()
            .filter(|(action, _)| !is_read(action))
            .map(|(_, (n, _))| n)
            .sum()
    }

    fn show(&self) -> String {
        let mut text = String::new();
        for (action, (n, errors)) in &self.by_action {
            if !text.is_empty() {
                text.push_str(", ");
            }
            let _ = write!(text, "{action} {n}");
            if *errors > 0 {
                let _ = write!(text, " ({errors} answered an error)");
            }
            if !is_read(action) {
                text.push_str(" [write]");
            }
        }
        text
    }
}

fn is_read(action: &str) -> bool {
    ["Get", "Describe", "List", "Head"]
        .iter()
        .any(|prefix| action.starts_with(prefix))
}

/// One process run: exit code, output, wall-clock and cpu seconds.
struct Run {
    code: Option<i32>,
    timed_out: bool,
    stdout: String,
    stderr: String,
    timing: Timing,
}

#[derive(Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

impl Run {
    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.stdout).with_context(|| {
            format!(
                "the output is not JSON (exit {:?}): {}\n--- stderr (tail)\n{}",
                self.code,
                self.stdout.trim(),
                tail(&self.stderr, 20)
            )
        })
    }

    /// `updated: 5` etc. from `deploy --json`.
    /// The first line of each failed service's error, de-duplicated.
    fn errors(&self) -> Vec<String> {
        let Ok(json) = self.json() else {
            return Vec::new();
        };
        let mut errors: Vec<String> = json["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["error"]["message"].as_str())
            .map(|m| m.lines().next().unwrap_or_default().to_owned())
            .collect();
        errors.sort();
        errors.dedup();
        errors
    }

    fn actions(&self) -> Result<BTreeMap<String, usize>> {
        let json = self.json()?;
        let mut actions = BTreeMap::new();
        for service in json["services"].as_array().into_iter().flatten() {
            let action = service["action"].as_str().unwrap_or("?").to_owned();
            *actions.entry(action).or_default() += 1;
        }
        Ok(actions)
    }
}

fn show_actions(actions: &BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = actions.iter().map(|(a, n)| format!("{n} {a}")).collect();
    if parts.is_empty() {
        "no services".to_owned()
    } else {
        parts.join(", ")
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Runs `command` (stdout and stderr to files in `dir` named after `name`), timed, killed
/// after `timeout`.
fn run_timed(mut command: Command, dir: &Path, name: &str, timeout: Duration) -> Result<Run> {
    let out_path = dir.join(format!("{name}.stdout"));
    let err_path = dir.join(format!("{name}.stderr"));
    command
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&err_path)?);
    let cpu_before = children_cpu();
    let start = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let wall = start.elapsed().as_secs_f64();
    Ok(Run {
        code: status.and_then(|s| s.code()),
        timed_out,
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        timing: Timing {
            wall,
            cpu: children_cpu() - cpu_before,
        },
    })
}

/// A fixture: N functions, their repository, their manifest.
struct Fixture {
    dir: PathBuf,
    repo: PathBuf,
    services: Vec<(String, String)>,
    prefix: String,
}

impl Fixture {
    /// Creates the functions in moto and writes and commits the repository.
    fn create(
        bed: &Bed,
        work: &Path,
        name: &str,
        count: usize,
        concurrency: usize,
    ) -> Result<(Fixture, f64)> {
        let dir = work.join(name);
        let repo = dir.join("repo");
        fs::create_dir_all(&repo)?;
        let prefix = format!("/{name}");
        let services: Vec<(String, String)> = (0..count)
            .map(|i| (format!("s{i:03}"), format!("{name}-s{i:03}")))
            .collect();
        let functions: Vec<String> = services.iter().map(|(_, f)| f.clone()).collect();
        let create_seconds = bed.create_functions(&dir, name, &prefix, &functions)?;

        let mut manifest = format!(
            "[project]\nname = \"{name}\"\nregion = \"{REGION}\"\nssm_prefix = \"{prefix}\"\n\
             concurrency = {concurrency}\n"
        );
        for (service, function) in &services {
            let _ = write!(
                manifest,
                "\n[services.{service}]\nkind = \"lambda-zip\"\nfunction = \"{function}\"\n\
                 source = \"lambdas/{service}\"\ntimeout = \"5m\"\npoll_interval = \"200ms\"\n"
            );
            let source = repo.join("lambdas").join(service);
            fs::create_dir_all(&source)?;
            fs::write(
                source.join("handler.py"),
                format!(
                    "def handler(event, context):\n    return {{\"service\": \"{service}\"}}\n"
                ),
            )?;
        }
        fs::write(repo.join("deployer.toml"), manifest)?;
        git(&repo, &["init", "-q", "-b", "main"])?;
        git(&repo, &["add", "-A"])?;
        git(
            &repo,
            &[
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.invalid",
                "-c",
                "commit.gpgsign=false",
                "commit",
                "-q",
                "-m",
                "fixture",
            ],
        )?;
        Ok((
            Fixture {
                dir,
                repo,
                services,
                prefix,
            },
            create_seconds,
        ))
    }

    /// `deployer deploy --all --json` in the repository with `access_key`, through `endpoint`.
    fn deploy(
        &self,
        bed: &Bed,
        deployer: &Path,
        endpoint: &str,
        access_key: &str,
        extra_env: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Run> {
        let mut command = Command::new(deployer);
        command
            .current_dir(&self.repo)
            .args(["deploy", "--all", "--json"])
            .env_clear_aws()
            .envs(bed.aws_env(endpoint, access_key))
            .envs(extra_env.iter().copied());
        run_timed(command, &self.dir, access_key, timeout)
    }

    /// The baseline's spec: the functions and the two records of each service.
    fn baseline_spec(&self) -> Result<PathBuf> {
        let path = self.dir.join("baseline.json");
        let parameters: Vec<String> = self
            .services
            .iter()
            .flat_map(|(service, _)| {
                [
                    format!("{}/{service}/image-tag", self.prefix),
                    format!("{}/{service}/deploy-state", self.prefix),
                ]
            })
            .collect();
        let functions: Vec<&String> = self.services.iter().map(|(_, f)| f).collect();
        fs::write(
            &path,
            json!({ "region": REGION, "functions": functions, "parameters": parameters })
                .to_string(),
        )?;
        Ok(path)
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .context("cannot run git")?;
    if !status.success() {
        bail!("`git {}` failed in {}", args.join(" "), dir.display());
    }
    Ok(())
}

/// The figures of one N.
struct Size {
    services: usize,
    create_seconds: f64,
    first_deploy: f64,
    noop: Vec<Timing>,
    baseline: Vec<Timing>,
    /// The baseline's own time for its reads (without process start and config load).
    baseline_reads: Vec<f64>,
    noop_calls: Vec<Calls>,
    /// The deployer's own `durations_ms` of every service in every no-op run, by phase.
    phases: BTreeMap<String, Vec<f64>>,
    baseline_calls: Calls,
    baseline_found: String,
}

/// A retry setting: its label, its environment, the throttled share.
type RetrySetting = (&'static str, &'static [(&'static str, &'static str)], f64);

/// One case of the retry section.
struct RetryCase {
    label: &'static str,
    faults: String,
    run: Run,
    actions: String,
    stats: Value,
}

fn bench(
    options: &Options,
    binaries: &Binaries,
    bed: &Bed,
    work: &Path,
    id: &str,
    started: Instant,
) -> Result<()> {
    let load_before = load_average();
    let mut sizes = Vec::new();
    for &n in &options.services {
        sizes.push(size(options, binaries, bed, work, id, n)?);
    }
    let load_after = load_average();

    println!();
    println!(
        "bench noop: the no-op `deployer deploy --all --json` (every service unchanged) of N \
         lambda-zip services, concurrency {}, against moto at {}",
        options.concurrency,
        bed.describe()
    );
    println!("deployer: {}", binaries.deployer_note);
    println!(
        "baseline: {}: one GetFunction per function + GetParameters of each service's image-tag \
         and deploy-state (10 names a call), all at once, with the deployer's SdkConfig",
        binaries.baseline.display()
    );
    println!("machine: {}, {} cpus", cpu_model(), cpus());
    println!(
        "{} runs each, interleaved; seconds of the whole process (wall clock; cpu = user + sys)",
        options.runs
    );
    println!(
        "load average (1 min): {load_before:.2} before the bench, {load_after:.2} after the \
         no-op runs (their own load included: moto, the deployer and the baseline share the cpus)"
    );
    if load_before > 1.0 {
        println!(
            "warning: the machine was busy with other work before the bench started: wall-clock \
             figures are skewed"
        );
    }
    println!();
    println!(
        "  {:>5} {:>8} {:>8} | {:>8} {:>8} {:>8} | {:>8} {:>8} {:>8} {:>8} | {:>7}",
        "N", "create", "1st dep", "no-op", "min", "cpu", "baseline", "min", "cpu", "reads", "ratio"
    );
    for size in &sizes {
        let noop = walls(&size.noop);
        let base = walls(&size.baseline);
        println!(
            "  {:>5} {:>7.1}s {:>7.1}s | {:>8.3} {:>8.3} {:>8.3} | {:>8.3} {:>8.3} {:>8.3} {:>8.3} | {:>6.2}x",
            size.services,
            size.create_seconds,
            size.first_deploy,
            median(&noop),
            min(&noop),
            median(&cpus_of(&size.noop)),
            median(&base),
            min(&base),
            median(&cpus_of(&size.baseline)),
            median(&size.baseline_reads),
            median(&noop) / median(&base)
        );
    }
    println!(
        "  (create: the N functions made in moto with boto3; 1st dep: the deploy that rolls them \
         out, not a figure; reads: the baseline's own time for its calls, without process start \
         and config load)"
    );
    println!();
    println!(
        "calls of one run, by API action (moto's recorder, the run's own access key; [write]: \
         not Get*/Describe*/List*/Head*):"
    );
    for size in &sizes {
        let first = &size.noop_calls[0];
        let per_service = first.total() as f64 / size.services as f64;
        println!(
            "  N={:<4} no-op:    {}; total {} ({per_service:.1} a service), writes {}",
            size.services,
            first.show(),
            first.total(),
            first.writes()
        );
        if size.noop_calls.iter().any(|c| c != first) {
            let totals: Vec<String> = size
                .noop_calls
                .iter()
                .map(|c| format!("{}/{}", c.total(), c.writes()))
                .collect();
            println!(
                "         (the runs differed: calls/writes per run {})",
                totals.join(", ")
            );
        }
        let phases: Vec<String> = ["total", "read", "record"]
            .iter()
            .filter_map(|phase| {
                let values = size.phases.get(*phase)?;
                let max = values.iter().copied().fold(0.0, f64::max);
                Some(format!("{phase} {:.0}/{max:.0}", median(values)))
            })
            .collect();
        if !phases.is_empty() {
            println!(
                "         per service, the deployer's durations_ms (median/max): {}",
                phases.join(", ")
            );
        }
        println!(
            "  N={:<4} baseline: {}; total {} ({})",
            size.services,
            size.baseline_calls.show(),
            size.baseline_calls.total(),
            size.baseline_found
        );
    }
    println!();
    println!(
        "  {:<44} {:>9} {:>9}  verdict",
        "target (median wall clock)", "value", "goal"
    );
    let verdict = |met: bool| if met { "met" } else { "NOT MET" };
    for size in &sizes {
        let ratio = median(&walls(&size.noop)) / median(&walls(&size.baseline));
        println!(
            "  {:<44} {:>8.2}x {:>9}  {}",
            format!("N={}: no-op / baseline", size.services),
            ratio,
            format!("<= {MAX_RATIO_VS_BASELINE}x"),
            verdict(ratio <= MAX_RATIO_VS_BASELINE)
        );
    }
    for size in &sizes {
        let writes = size.noop_calls.iter().map(Calls::writes).max().unwrap_or(0);
        println!(
            "  {:<44} {:>9} {:>9}  {}",
            format!("N={}: writes of a no-op run", size.services),
            writes,
            MAX_WRITES,
            verdict(writes == MAX_WRITES)
        );
    }

    if options.retry {
        let cases = retry_cost(options, binaries, bed, work, id)?;
        println!();
        println!(
            "retry cost: the first deploy of {RETRY_SERVICES} lambda-zip services (fresh \
             functions each case, concurrency {}) through the fault proxy (seed {RETRY_SEED}), \
             one run each",
            options.concurrency
        );
        println!(
            "  {:<44} {:<13} {:>8} {:>5} {:<12} {:>8} {:>8} {:>8} {:>9} {:>7}",
            "retry settings",
            "faults",
            "time",
            "exit",
            "actions",
            "requests",
            "faulted",
            "retries",
            "exhausted",
            "max att"
        );
        let clean = cases
            .iter()
            .find(|c| c.faults == "none")
            .map(|c| c.run.timing.wall);
        for case in &cases {
            let stat = |key: &str| {
                case.stats[key]
                    .as_u64()
                    .map_or("?".to_owned(), |v| v.to_string())
            };
            let faulted: u64 = case.stats["faulted"]
                .as_object()
                .map_or(0, |kinds| kinds.values().filter_map(Value::as_u64).sum());
            let time = if case.run.timed_out {
                format!(">{:.0}s", case.run.timing.wall)
            } else {
                format!("{:.1}s", case.run.timing.wall)
            };
            let exit = case
                .run
                .code
                .map_or_else(|| "kill".to_owned(), |c| c.to_string());
            println!(
                "  {:<44} {:<13} {:>8} {:>5} {:<12} {:>8} {:>8} {:>8} {:>9} {:>7}",
                case.label,
                case.faults,
                time,
                exit,
                case.actions,
                stat("requests"),
                faulted,
                stat("retries"),
                stat("exhausted"),
                stat("max_attempt")
            );
            for error in case.run.errors() {
                println!("      failed: {error}");
            }
        }
        if let Some(clean) = clean {
            let slowdowns: Vec<String> = cases
                .iter()
                .filter(|c| c.faults != "none")
                .map(|c| format!("{} {:.1}x", short_label(c.label), c.run.timing.wall / clean))
                .collect();
            println!("  time against no faults: {}", slowdowns.join(", "));
        }
        println!(
            "  (requests: AWS requests the proxy saw; retries: those with attempt > 1; exhausted: \
             faults injected into a call's last attempt, which the deployer then got; a case \
             over --retry-timeout is killed)"
        );
    }
    println!();
    println!("bench noop: {:.0}s in all", started.elapsed().as_secs_f64());
    Ok(())
}

fn short_label(label: &str) -> &str {
    if label.contains("adaptive") {
        "adaptive"
    } else if label.contains("standard") {
        "standard"
    } else {
        "default"
    }
}

/// Setup, first deploy, and the interleaved no-op and baseline runs of one N.
fn size(
    options: &Options,
    binaries: &Binaries,
    bed: &Bed,
    work: &Path,
    id: &str,
    n: usize,
) -> Result<Size> {
    let name = format!("bnoop-{id}-n{n}");
    eprintln!("bench noop: N={n}: creating {n} functions in moto");
    let (fixture, create_seconds) = Fixture::create(bed, work, &name, n, options.concurrency)?;
    eprintln!("bench noop: N={n}: first deploy (not timed as a figure)");
    let first = fixture.deploy(
        bed,
        &binaries.deployer,
        &bed.moto_url,
        &format!("{name}-first"),
        &[],
        RUN_TIMEOUT,
    )?;
    let actions = first.actions()?;
    if first.code != Some(0) || actions.get("updated") != Some(&n) {
        bail!(
            "N={n}: the first deploy did not roll out every service (exit {:?}, {}): {}",
            first.code,
            show_actions(&actions),
            tail(&first.stderr, 20)
        );
    }
    let spec = fixture.baseline_spec()?;
    let baseline = |key: &str| -> Result<(Run, Value)> {
        let mut command = Command::new(&binaries.baseline);
        command
            .arg(&spec)
            .env_clear_aws()
            .envs(bed.aws_env(&bed.moto_url, key));
        let run = run_timed(command, &fixture.dir, key, RUN_TIMEOUT)?;
        let json = run.json()?;
        if run.code != Some(0) {
            bail!("N={n}: the baseline failed: {json}");
        }
        Ok((run, json))
    };
    // Warm-up: the baseline's binary into the page cache (the deployer's is, by the first
    // deploy).
    baseline(&format!("{name}-warm"))?;

    let mut size = Size {
        services: n,
        create_seconds,
        first_deploy: first.timing.wall,
        noop: Vec::new(),
        baseline: Vec::new(),
        baseline_reads: Vec::new(),
        noop_calls: Vec::new(),
        phases: BTreeMap::new(),
        baseline_calls: Calls::default(),
        baseline_found: String::new(),
    };
    for round in 0..options.runs {
        eprintln!("bench noop: N={n}: round {}/{}", round + 1, options.runs);
        let key = format!("{name}-noop-{round}");
        let run = fixture.deploy(
            bed,
            &binaries.deployer,
            &bed.moto_url,
            &key,
            &[],
            RUN_TIMEOUT,
        )?;
        let actions = run.actions()?;
        if run.code != Some(0) || actions.get("unchanged") != Some(&n) {
            bail!(
                "N={n}: the no-op run was not a no-op (exit {:?}, {}): {}",
                run.code,
                show_actions(&actions),
                tail(&run.stderr, 20)
            );
        }
        size.noop.push(run.timing);
        size.noop_calls.push(bed.calls(&key)?);
        for service in run.json()?["services"].as_array().into_iter().flatten() {
            for (phase, ms) in service["durations_ms"].as_object().into_iter().flatten() {
                if let Some(ms) = ms.as_f64() {
                    size.phases.entry(phase.clone()).or_default().push(ms);
                }
            }
        }

        let key = format!("{name}-base-{round}");
        let (run, json) = baseline(&key)?;
        size.baseline.push(run.timing);
        size.baseline_reads
            .push(json["seconds"].as_f64().unwrap_or(f64::NAN));
        if round == 0 {
            size.baseline_calls = bed.calls(&key)?;
            size.baseline_found = format!(
                "found {} functions, {} parameters, {} missing",
                json["functions_found"], json["parameters_found"], json["parameters_missing"]
            );
        }
    }
    if !options.keep {
        let _ = fs::remove_dir_all(fixture.repo.join("lambdas"));
    }
    Ok(size)
}

/// The fault proxy of the retry section, stopped when dropped.
struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    fn start(bed: &Bed, work: &Path) -> Result<Proxy> {
        let port_file = work.join("faultproxy.port");
        let log = fs::File::create(work.join("faultproxy.log"))?;
        let child = Command::new(&bed.python)
            .arg(crate::project_root().join("xtask/testbed/faultproxy.py"))
            .args(["--target", &bed.moto_url, "--port-file"])
            .arg(&port_file)
            .env(testbed::OWNER_ENV, std::process::id().to_string())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start the fault proxy")?;
        let mut proxy = Proxy { child, port: 0 };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(port) = fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                proxy.port = port;
                return Ok(proxy);
            }
            if let Some(status) = proxy.child.try_wait()? {
                bail!(
                    "the fault proxy exited ({status}): {}",
                    fs::read_to_string(work.join("faultproxy.log")).unwrap_or_default()
                );
            }
            if Instant::now() > deadline {
                bail!("the fault proxy did not listen within 20 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn control(&self, method: &str, path: &str, body: &str) -> Result<Value> {
        let (status, answer) = http(self.port, method, path, body.as_bytes())?;
        if status != 200 {
            bail!(
                "{method} {path} answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
        }
        serde_json::from_slice(&answer).with_context(|| format!("{method} {path}: no JSON"))
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn retry_cost(
    options: &Options,
    binaries: &Binaries,
    bed: &Bed,
    work: &Path,
    id: &str,
) -> Result<Vec<RetryCase>> {
    let dir = work.join("retry");
    fs::create_dir_all(&dir)?;
    let proxy = Proxy::start(bed, &dir)?;
    let throttled = format!("{:.0}% throttle", RETRY_THROTTLE * 100.0);
    let cases: [RetrySetting; 4] = [
        ("deployer default (no AWS_RETRY_MODE)", &[], RETRY_THROTTLE),
        (
            "AWS_RETRY_MODE=adaptive AWS_MAX_ATTEMPTS=8",
            &[
                ("AWS_RETRY_MODE", "adaptive"),
                ("AWS_MAX_ATTEMPTS", RETRY_MAX_ATTEMPTS),
            ],
            RETRY_THROTTLE,
        ),
        (
            "AWS_RETRY_MODE=standard AWS_MAX_ATTEMPTS=8",
            &[
                ("AWS_RETRY_MODE", "standard"),
                ("AWS_MAX_ATTEMPTS", RETRY_MAX_ATTEMPTS),
            ],
            RETRY_THROTTLE,
        ),
        ("deployer default (no AWS_RETRY_MODE)", &[], 0.0),
    ];
    let mut results = Vec::new();
    for (index, (label, env, throttle)) in cases.into_iter().enumerate() {
        let name = format!("bnoop-{id}-retry{index}");
        eprintln!(
            "bench noop: retry cost: {label}, {}",
            if throttle > 0.0 {
                throttled.as_str()
            } else {
                "no faults"
            }
        );
        let (fixture, _) = Fixture::create(bed, &dir, &name, RETRY_SERVICES, options.concurrency)?;
        proxy.control(
            "PUT",
            "/_faultproxy/config",
            &json!({ "seed": RETRY_SEED, "throttle": throttle }).to_string(),
        )?;
        proxy.control("POST", "/_faultproxy/reset", "")?;
        let run = fixture.deploy(
            bed,
            &binaries.deployer,
            &proxy.url(),
            &format!("{name}-deploy"),
            env,
            options.retry_timeout,
        )?;
        let stats = proxy.control("GET", "/_faultproxy/stats", "")?;
        let actions = match run.actions() {
            Ok(actions) => show_actions(&actions),
            Err(_) if run.timed_out => "(killed)".to_owned(),
            Err(_) => "(no JSON)".to_owned(),
        };
        results.push(RetryCase {
            label,
            faults: if throttle > 0.0 {
                throttled.clone()
            } else {
                "none".to_owned()
            },
            run,
            actions,
            stats,
        });
    }
    Ok(results)
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (`Connection: close`): status and body. Shared
/// with `bench config`.
pub(super) fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    // One write: a server that answers after its first read may close on the rest.
    stream.write_all(&bytes)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("{method} {path}: no HTTP response"))?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("{method} {path}: no status in {head:?}"))?;
    let mut body = response[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..end])
            .ok()
            .and_then(|line| usize::from_str_radix(line.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 || data.len() < end + 2 + size {
            break;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[(end + 4 + size).min(data.len())..];
    }
    out
}

fn walls(times: &[Timing]) -> Vec<f64> {
    times.iter().map(|t| t.wall).collect()
}

fn cpus_of(times: &[Timing]) -> Vec<f64> {
    times.iter().map(|t| t.cpu).collect()
}

/// Creates (`create`) or deletes (`delete`) the bench's functions, their role, and the SSM
/// parameters under the fixture's prefix, in moto, with boto3 from the test bed's venv.
const SETUP_PY: &str = r#"import io, json, sys, zipfile
from concurrent.futures import ThreadPoolExecutor

import boto3

POLICY = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
          "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
HANDLER = "def handler(event, context):\n    return {}\n"

mode, path = sys.argv[1], sys.argv[2]
spec = json.load(open(path))
iam, lam, ssm = boto3.client("iam"), boto3.client("lambda"), boto3.client("ssm")
if mode == "create":
    role = iam.create_role(RoleName=spec["role"],
                           AssumeRolePolicyDocument=json.dumps(POLICY))["Role"]["Arn"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("handler.py", HANDLER)
    code = buffer.getvalue()

    def create(name):
        lam.create_function(FunctionName=name, Runtime="python3.12", Role=role,
                            Handler="handler.handler", Code={"ZipFile": code})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, spec["functions"]))
else:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: lam.delete_function(FunctionName=name), spec["functions"]))
    names = [p["Name"]
             for page in ssm.get_paginator("get_parameters_by_path").paginate(
                 Path=spec["prefix"], Recursive=True)
             for p in page["Parameters"]]
    for start in range(0, len(names), 10):
        ssm.delete_parameters(Names=names[start:start + 10])
    iam.delete_role(RoleName=spec["role"])
"#;
