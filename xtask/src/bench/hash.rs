//! `cargo xtask bench hash`: the hasher against the baselines the foundation issue names.
//!
//! 1. Builds the hasher's `hash-bench` example in release mode (`cargo build --release`).
//! 2. Generates a git repository under `target/bench-hash/` (default 20,000 files / 500 MB:
//!    sizes from empty to a few MB, nested directories, executables, symlinks, untracked and
//!    ignored files) and commits it.
//! 3. Measures, interleaved, `--runs` times each (the table shows the median, min and max of the
//!    wall-clock time of the whole process, from this process):
//!    - `git ls-files -z | xargs -0 sha256sum | sha256sum` (the naive way),
//!    - `git ls-files -z | xargs -0 cat > /dev/null` (reading the bytes once),
//!    - `git status`,
//!    - the hasher cold (its stat cache deleted first) and warm (cache present, tree unchanged),
//!      each a fresh process printing its own peak RSS (`VmHWM`).
//! 4. Prints the ratios the issue sets as targets, each marked met or not met on the wall
//!    clock. Beside it, the cpu time (user + sys of the process and its children, from
//!    /proc/self/stat): on a machine busy with other work (the load average is printed, with a
//!    warning above 1) the wall clock of parallel work says little, the cpu time stays steady.
//!
//! Everything runs from the page cache (a warm-up pass reads the tree first): "cold" means no
//! stat cache, not an empty page cache, which would need root and measures the disk.
//! xtask stays light: it shells out to cargo, git and sh, and depends on no hasher code.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::machine::{children_cpu, cpu_model, cpus, load_average, max, median, min};
use anyhow::{Context as _, Result, bail};

const USAGE: &str = "usage: cargo xtask bench hash [--files N] [--mb M] [--runs R] [--keep]";

/// The targets from the issue.
const MIN_SPEEDUP_VS_SHA256: f64 = 5.0;
const MAX_RATIO_VS_CAT: f64 = 1.3;
const MAX_RATIO_VS_GIT_STATUS: f64 = 2.0;
const MAX_PEAK_MB: f64 = 64.0;

/// Where the hasher keeps its stat cache (documented in the hasher's crate doc).
const CACHE_FILE: &str = ".git/deployer/hash-cache-v1";

struct Options {
    files: usize,
    mb: u64,
    runs: usize,
    keep: bool,
}

fn parse(args: &[&str]) -> Result<Options> {
    let mut options = Options {
        files: 20_000,
        mb: 500,
        runs: 5,
        keep: false,
    };
    let mut args = args.iter();
    while let Some(&arg) = args.next() {
        let mut value = |name: &str| -> Result<u64> {
            let value = args
                .next()
                .with_context(|| format!("{name} needs a number\n{USAGE}"))?;
            value
                .parse()
                .with_context(|| format!("{name} needs a number, not `{value}`\n{USAGE}"))
        };
        match arg {
            "--files" => options.files = usize::try_from(value("--files")?)?,
            "--mb" => options.mb = value("--mb")?,
            "--runs" => options.runs = usize::try_from(value("--runs")?)?,
            "--keep" => options.keep = true,
            _ => bail!("unexpected argument `{arg}`\n{USAGE}"),
        }
    }
    if options.files < 10 || options.runs == 0 {
        bail!("--files must be at least 10 and --runs at least 1\n{USAGE}");
    }
    Ok(options)
}

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let options = parse(args)?;
    let root = crate::project_root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);

    eprintln!("bench hash: building the hasher's bench driver (release)…");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "hasher",
            "--example",
            "hash-bench",
        ])
        .current_dir(&root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("`cargo build --release -p hasher --example hash-bench` failed");
    }
    let driver = target.join("release/examples/hash-bench");

    let dir = target
        .join("bench-hash")
        .join(format!("tree-{}", std::process::id()));
    let _cleanup = Cleanup {
        dir: dir.clone(),
        keep: options.keep,
    };
    let started = Instant::now();
    let tree = generate(&dir, options.files, options.mb * 1_000_000)?;
    eprintln!(
        "bench hash: generated and committed {} files ({:.1} MB) in {:.1} s at {}",
        tree.tracked,
        tree.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        dir.display()
    );

    // Files younger than 2 s are not trusted by the stat cache (racy-git rule): let the tree
    // age past that so the warm runs measure the cache, not the window.
    std::thread::sleep(Duration::from_millis(2500).saturating_sub(tree.written.elapsed()));

    // Warm-up: the page cache, git's index refresh, the driver binary.
    sh(&dir, CAT)?;
    run_quiet(Command::new("git").arg("status").current_dir(&dir))?;
    let first = hasher(&driver, &dir, true)?;

    let load_before = load_average();
    let mut sha256 = Vec::new();
    let mut cat = Vec::new();
    let mut status = Vec::new();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for round in 0..options.runs {
        eprintln!("bench hash: round {}/{}", round + 1, options.runs);
        sha256.push(sh(&dir, SHA256)?);
        cat.push(sh(&dir, CAT)?);
        status.push(run_quiet(
            Command::new("git").arg("status").current_dir(&dir),
        )?);
        cold.push(hasher(&driver, &dir, true)?);
        warm.push(hasher(&driver, &dir, false)?);
    }
    let load_after = load_average();
    for run in cold.iter().chain(&warm) {
        if run.tag != first.tag {
            bail!(
                "the hasher gave {} then {} for the same tree",
                first.tag,
                run.tag
            );
        }
    }
    let cold_peak = cold.iter().map(|r| r.peak_mb).fold(0.0, f64::max);
    let warm_peak = warm.iter().map(|r| r.peak_mb).fold(0.0, f64::max);
    let cold_inner = median(&cold.iter().map(|r| r.inner).collect::<Vec<_>>());
    let warm_inner = median(&warm.iter().map(|r| r.inner).collect::<Vec<_>>());
    let cold: Vec<Timing> = cold.iter().map(|r| r.timing).collect();
    let warm: Vec<Timing> = warm.iter().map(|r| r.timing).collect();

    println!();
    println!(
        "bench hash: {} tracked files ({} hashed, {} symlinks, {} executables), {:.1} MB, {} untracked",
        tree.tracked,
        first.files,
        tree.symlinks,
        tree.executables,
        first.bytes as f64 / 1e6,
        first.untracked
    );
    println!(
        "machine: {}, {} cpus; tag {}",
        cpu_model(),
        cpus(),
        first.tag
    );
    println!(
        "{} runs each, interleaved; seconds of the whole process: wall clock, and cpu (user + sys \
         of it and its children)",
        options.runs
    );
    println!("load average (1 min): {load_before:.2} before the runs, {load_after:.2} after");
    if load_before.max(load_after) > 1.0 {
        println!(
            "warning: the machine was busy with other work: wall-clock figures and ratios are \
             skewed (parallel work gains nothing on busy cores); the cpu column is steadier"
        );
    }
    println!();
    println!(
        "  {:<62} {:>7} {:>7} {:>7} {:>7} {:>9}",
        "measurement", "wall", "min", "max", "cpu", "peak RSS"
    );
    let row = |name: &str, times: &[Timing], peak: Option<f64>| {
        let wall: Vec<f64> = times.iter().map(|t| t.wall).collect();
        let peak = peak.map_or_else(String::new, |mb| format!("{mb:.1} MB"));
        println!(
            "  {name:<62} {:>7.3} {:>7.3} {:>7.3} {:>7.3} {peak:>9}",
            median(&wall),
            min(&wall),
            max(&wall),
            median_cpu(times)
        );
    };
    row(SHA256, &sha256, None);
    row(CAT, &cat, None);
    row("git status", &status, None);
    row("hasher cold (no stat cache)", &cold, Some(cold_peak));
    row(
        "hasher warm (stat cache, unchanged tree)",
        &warm,
        Some(warm_peak),
    );
    println!(
        "  (inside the driver, open + hash only: cold {cold_inner:.3} s, warm {warm_inner:.3} s)"
    );
    println!();
    println!(
        "  {:<40} {:>8} {:>8} {:>9}",
        "target (verdict on wall clock)", "wall", "cpu", "goal"
    );
    let verdict = |met: bool| if met { "met" } else { "NOT MET" };
    let ratio = |a: &[Timing], b: &[Timing]| {
        (
            median_wall(a) / median_wall(b),
            median_cpu(a) / median_cpu(b),
        )
    };
    let (wall, cpu) = ratio(&sha256, &cold);
    println!(
        "  {:<40} {:>7.1}x {:>7.1}x {:>9}  {}",
        "cold vs sha256sum pipeline (speedup)",
        wall,
        cpu,
        format!(">= {MIN_SPEEDUP_VS_SHA256}x"),
        verdict(wall >= MIN_SPEEDUP_VS_SHA256)
    );
    let (wall, cpu) = ratio(&cold, &cat);
    println!(
        "  {:<40} {:>7.2}x {:>7.2}x {:>9}  {}",
        "cold vs cat pipeline (ratio)",
        wall,
        cpu,
        format!("<= {MAX_RATIO_VS_CAT}x"),
        verdict(wall <= MAX_RATIO_VS_CAT)
    );
    let (wall, cpu) = ratio(&warm, &status);
    println!(
        "  {:<40} {:>7.2}x {:>7.2}x {:>9}  {}",
        "warm vs git status (ratio)",
        wall,
        cpu,
        format!("<= {MAX_RATIO_VS_GIT_STATUS}x"),
        verdict(wall <= MAX_RATIO_VS_GIT_STATUS)
    );
    let peak = cold_peak.max(warm_peak);
    println!(
        "  {:<40} {:>5.1} MB {:>8} {:>9}  {}",
        "peak memory (max over all runs)",
        peak,
        "",
        format!("< {MAX_PEAK_MB} MB"),
        verdict(peak < MAX_PEAK_MB)
    );
    Ok(())
}

const SHA256: &str = "git ls-files -z | xargs -0 sha256sum | sha256sum > /dev/null";
const CAT: &str = "git ls-files -z | xargs -0 cat > /dev/null";

/// Removes the generated tree when the benchmark ends, even on error.
struct Cleanup {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("bench hash: kept the tree at {}", self.dir.display());
        } else if self.dir.exists()
            && let Err(error) = fs::remove_dir_all(&self.dir)
        {
            eprintln!("bench hash: cannot remove {}: {error}", self.dir.display());
        }
    }
}

struct Tree {
    tracked: usize,
    bytes: u64,
    symlinks: usize,
    executables: usize,
    /// When the last file was written.
    written: Instant,
}

/// splitmix64: a small, fast, deterministic generator (the tree is the same on every run).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low)
    }
}

/// Writes `files` entries totalling about `bytes`, plus a Dockerfile, a .gitignore, untracked
/// and ignored files, and commits the tracked ones.
fn generate(dir: &Path, files: usize, bytes: u64) -> Result<Tree> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rng = Rng(0x5eed);

    // Heavy-tailed sizes: mostly small files, a few large ones, scaled to the total.
    let symlinks = (files / 500).max(1);
    let regular = files - symlinks;
    let raw: Vec<u64> = (0..regular)
        .map(|_| match rng.below(1000) {
            0..700 => rng.below(8 << 10),
            700..950 => rng.range(8 << 10, 128 << 10),
            950..995 => rng.range(128 << 10, 1 << 20),
            _ => rng.range(1 << 20, 16 << 20),
        })
        .collect();
    let raw_total: u64 = raw.iter().sum::<u64>().max(1);
    let mut sizes: Vec<u64> = raw
        .iter()
        .map(|&s| (s as f64 * bytes as f64 / raw_total as f64) as u64)
        .collect();
    let shortfall = bytes.saturating_sub(sizes.iter().sum());
    if let Some(last) = sizes.last_mut() {
        *last += shortfall;
    }

    let extensions = ["py", "rs", "json", "txt", "bin", "csv", "md", "so"];
    let mut paths = Vec::with_capacity(regular);
    let mut executables = 0;
    let mut buf = vec![0u8; 1 << 20];
    for (index, &size) in sizes.iter().enumerate() {
        let depth = rng.range(1, 5);
        let mut path = PathBuf::new();
        for _ in 0..depth {
            path.push(format!("d{}", rng.below(8)));
        }
        let ext = extensions[rng.below(extensions.len() as u64) as usize];
        path.push(format!("f{index:05}.{ext}"));
        let full = dir.join(&path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut file =
            fs::File::create(&full).with_context(|| format!("cannot create {}", full.display()))?;
        let mut left = size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            for chunk in buf[..n].chunks_mut(8) {
                let word = rng.next().to_le_bytes();
                chunk.copy_from_slice(&word[..chunk.len()]);
            }
            file.write_all(&buf[..n])?;
            left -= n as u64;
        }
        drop(file);
        if rng.below(20) == 0 {
            fs::set_permissions(&full, fs::Permissions::from_mode(0o755))?;
            executables += 1;
        }
        paths.push(path);
    }
    // Symlinks beside existing files, pointing at them by name.
    for index in 0..symlinks {
        let target = &paths[rng.below(paths.len() as u64) as usize];
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            continue;
        };
        std::os::unix::fs::symlink(name, dir.join(parent).join(format!("link{index:04}")))?;
    }
    fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY . /\n")?;
    fs::write(dir.join(".gitignore"), "*.log\n")?;

    git(dir, &["init", "-q", "-b", "main"])?;
    // No `git gc --auto` / maintenance detaching into the background after the commit: packing
    // 500 MB would compete with every measurement (and with removing the tree).
    git(dir, &["config", "gc.auto", "0"])?;
    git(dir, &["config", "maintenance.auto", "false"])?;
    git(
        dir,
        &[
            "-c",
            "core.compression=0",
            "-c",
            "core.looseCompression=0",
            "add",
            "-A",
        ],
    )?;
    let identity = [
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@example.com",
        "-c",
        "commit.gpgsign=false",
    ];
    git(
        dir,
        &[&identity[..], &["commit", "-q", "-m", "tree"]].concat(),
    )?;
    // After the commit: untracked and ignored files the hasher must skip (and report).
    for index in 0..10 {
        fs::write(
            dir.join(format!("d{}/untracked{index}.py", index % 8)),
            "untracked\n",
        )?;
        fs::write(
            dir.join(format!("d{}/debug{index}.log", index % 8)),
            "ignored\n",
        )?;
    }
    let written = Instant::now();
    Ok(Tree {
        tracked: files + 2,
        bytes: sizes.iter().sum(),
        symlinks,
        executables,
        written,
    })
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

/// Seconds of one run: wall clock, and the cpu time (user + sys) of the process and its
/// children.
#[derive(Debug, Clone, Copy)]
struct Timing {
    wall: f64,
    cpu: f64,
}

/// Runs `script` with `sh -c` in `dir`.
fn sh(dir: &Path, script: &str) -> Result<Timing> {
    run_quiet(Command::new("sh").args(["-c", script]).current_dir(dir))
        .with_context(|| format!("`{script}` failed"))
}

/// Runs `command` with stdout discarded.
fn run_quiet(command: &mut Command) -> Result<Timing> {
    let (status, timing) = timed(|| command.stdout(Stdio::null()).status())
        .with_context(|| format!("cannot run {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(timing)
}

/// Runs `spawn_and_wait` (which must wait for its child) and times it.
fn timed<T>(spawn_and_wait: impl FnOnce() -> std::io::Result<T>) -> std::io::Result<(T, Timing)> {
    let cpu_before = children_cpu();
    let start = Instant::now();
    let value = spawn_and_wait()?;
    let wall = start.elapsed().as_secs_f64();
    Ok((
        value,
        Timing {
            wall,
            cpu: children_cpu() - cpu_before,
        },
    ))
}

/// One run of the hasher's driver.
struct HashRun {
    tag: String,
    files: u64,
    bytes: u64,
    untracked: u64,
    /// Measured here, around the whole process.
    timing: Timing,
    /// Seconds of `Repo::open` + `Repo::hash`, measured by the driver.
    inner: f64,
    peak_mb: f64,
}

fn hasher(driver: &Path, dir: &Path, cold: bool) -> Result<HashRun> {
    if cold {
        match fs::remove_file(dir.join(CACHE_FILE)) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error).context("cannot delete the stat cache"),
        }
    }
    let (output, timing) = timed(|| Command::new(driver).arg(dir).output())
        .with_context(|| format!("cannot run {}", driver.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            driver.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> Result<&str> {
        stdout
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no `{name}` in the driver's output `{}`", stdout.trim()))
    };
    Ok(HashRun {
        tag: field("tag")?.to_owned(),
        files: field("files")?.parse()?,
        bytes: field("bytes")?.parse()?,
        untracked: field("untracked")?.parse()?,
        timing,
        inner: field("seconds")?.parse()?,
        // VmHWM is in KiB; MB here are 10^6 bytes.
        peak_mb: field("peak_rss_kb")?.parse::<f64>()? * 1024.0 / 1e6,
    })
}

fn median_wall(times: &[Timing]) -> f64 {
    median(&times.iter().map(|t| t.wall).collect::<Vec<_>>())
}

fn median_cpu(times: &[Timing]) -> f64 {
    median(&times.iter().map(|t| t.cpu).collect::<Vec<_>>())
}
