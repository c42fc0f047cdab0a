//! `cargo xtask bench zip`: the deterministic zip packager against Info-ZIP.
//!
//! 1. Builds `deployer-lambda-zip`'s `zip-bench` binary in release mode, without the crate's
//!    `deploy` feature (the packager alone: no AWS SDK to compile).
//! 2. Generates a tree under `target/bench-zip/` (default 5,000 files / 100 MB) that looks
//!    like a Lambda package: mostly source text and JSON (compressible), native libraries
//!    (partly compressible), a few already-compressed files, nested directories, executables
//!    and symlinks to files inside the tree.
//! 3. Measures, interleaved, `--runs` times each (at least 2; the table shows the median, min
//!    and max wall-clock seconds of the whole process, from this process):
//!    - Info-ZIP `zip -rX -q -6` (its default level; deflate level 6 is also ours),
//!    - the packager (`zip-bench`: walk, read, compress on every core, write, SHA-256).
//! 4. Checks that every run of the packager wrote byte-identical zips (and that `unzip -t`
//!    accepts them), and prints the speedup against the target (at least 2×).
//!
//! Everything runs from the page cache (a warm-up pass reads the tree first). xtask stays
//! light: it shells out to cargo, zip and unzip, and depends on no deployer code.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::machine::{cpu_model, cpus, max, median, min};
use anyhow::{Context as _, Result, bail};

const USAGE: &str = "usage: cargo xtask bench zip [--files N] [--mb M] [--runs R] [--keep]";

/// The target from the issue: at least this many times faster than Info-ZIP.
const MIN_SPEEDUP_VS_INFO_ZIP: f64 = 2.0;

struct Options {
    files: usize,
    mb: u64,
    runs: usize,
    keep: bool,
}

fn parse(args: &[&str]) -> Result<Options> {
    let mut options = Options {
        files: 5_000,
        mb: 100,
        runs: 3,
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
    if options.files < 10 || options.runs < 2 {
        bail!(
            "--files must be at least 10 and --runs at least 2 (determinism needs two runs)\n{USAGE}"
        );
    }
    Ok(options)
}

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let options = parse(args)?;
    let root = crate::project_root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);

    let installed = Command::new("zip")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !installed.is_ok_and(|status| status.success()) {
        bail!("Info-ZIP `zip` is not installed: it is the baseline (`apt-get install zip unzip`)");
    }

    eprintln!("bench zip: building the packager's bench driver (release, no `deploy` feature)…");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--quiet",
            "--release",
            "-p",
            "deployer-lambda-zip",
            "--no-default-features",
            "--bin",
            "zip-bench",
        ])
        .current_dir(&root)
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!(
            "`cargo build --release -p deployer-lambda-zip --no-default-features --bin zip-bench` failed"
        );
    }
    let driver = target.join("release/zip-bench");

    let work = target
        .join("bench-zip")
        .join(format!("run-{}", std::process::id()));
    let _cleanup = Cleanup {
        dir: work.clone(),
        keep: options.keep,
    };
    let dir = work.join("tree");
    let started = Instant::now();
    let tree = generate(&dir, options.files, options.mb * 1_000_000)?;
    eprintln!(
        "bench zip: generated {} files ({:.1} MB) in {:.1} s at {}",
        tree.files,
        tree.bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        dir.display()
    );

    // Warm-up: the page cache and both binaries.
    run_quiet(
        Command::new("sh")
            .args(["-c", "find . -type f -print0 | xargs -0 cat > /dev/null"])
            .current_dir(&dir),
    )?;
    let info_zip_out = work.join("info-zip.zip");
    info_zip(&dir, &info_zip_out)?;
    let first = packager(&driver, &dir, &work.join("ours-warmup.zip"))?;

    let mut info = Vec::new();
    let mut ours = Vec::new();
    for round in 0..options.runs {
        eprintln!("bench zip: round {}/{}", round + 1, options.runs);
        info.push(info_zip(&dir, &info_zip_out)?);
        ours.push(packager(
            &driver,
            &dir,
            &work.join(format!("ours-{round}.zip")),
        )?);
    }

    // Determinism: every run (warm-up included) wrote the same bytes.
    let reference = fs::read(&first.out)?;
    let mut identical = true;
    for run in &ours {
        let bytes = fs::read(&run.out)?;
        if bytes != reference || run.sha256 != first.sha256 {
            identical = false;
            eprintln!(
                "bench zip: {} differs from {} ({} vs {})",
                run.out.display(),
                first.out.display(),
                run.sha256,
                first.sha256
            );
        }
    }
    let status = Command::new("unzip")
        .args(["-tqq"])
        .arg(&first.out)
        .status()
        .context("cannot run unzip")?;
    if !status.success() {
        bail!(
            "`unzip -t` rejects the packager's zip {}",
            first.out.display()
        );
    }
    let info_size = fs::metadata(&info_zip_out)?.len();

    let info_s: Vec<f64> = info.iter().map(|r| r.wall).collect();
    let ours_s: Vec<f64> = ours.iter().map(|r| r.wall).collect();
    let inner_s: Vec<f64> = ours.iter().map(|r| r.inner).collect();
    let speedup = median(&info_s) / median(&ours_s);

    println!();
    println!(
        "bench zip: {} files ({} zipped, {} executables, {} symlinks), {:.1} MB",
        tree.files,
        first.files,
        tree.executables,
        tree.symlinks,
        tree.bytes as f64 / 1e6
    );
    println!(
        "machine: {}, {} cpus; deflate level 6 on both sides",
        cpu_model(),
        cpus()
    );
    println!(
        "{} runs each, interleaved; wall-clock seconds of the whole process",
        options.runs
    );
    println!();
    println!(
        "  {:<40} {:>8} {:>8} {:>8} {:>12}",
        "measurement", "median", "min", "max", "zip size"
    );
    let row = |name: &str, times: &[f64], size: u64| {
        println!(
            "  {name:<40} {:>8.3} {:>8.3} {:>8.3} {:>9.2} MB",
            median(times),
            min(times),
            max(times),
            size as f64 / 1e6
        );
    };
    row("Info-ZIP zip -rX -q -6", &info_s, info_size);
    row("deployer-lambda-zip (zip-bench)", &ours_s, first.size);
    println!(
        "  (inside the driver, package() only: {:.3} s median)",
        median(&inner_s)
    );
    println!();
    println!("  {:<44} {:>9} {:>10}", "target", "figure", "goal");
    let verdict = |met: bool| if met { "met" } else { "NOT MET" };
    println!(
        "  {:<44} {:>8.2}x {:>10}  {}",
        "speedup vs Info-ZIP (median / median)",
        speedup,
        format!(">= {MIN_SPEEDUP_VS_INFO_ZIP}x"),
        verdict(speedup >= MIN_SPEEDUP_VS_INFO_ZIP)
    );
    println!(
        "  {:<44} {:>9} {:>10}  {}",
        format!("{} runs byte-identical", ours.len() + 1),
        if identical { "yes" } else { "no" },
        "yes",
        verdict(identical)
    );
    println!(
        "  {:<44} {:>8.3}x {:>10}",
        "size vs Info-ZIP (ours / theirs)",
        first.size as f64 / info_size as f64,
        "-"
    );
    println!("  sha256 of every run: {}", first.sha256);
    if !identical {
        bail!("the packager wrote different bytes for the same tree");
    }
    Ok(())
}

/// Removes the generated tree and zips when the benchmark ends, even on error.
struct Cleanup {
    dir: PathBuf,
    keep: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.keep {
            eprintln!(
                "bench zip: kept the tree and zips at {}",
                self.dir.display()
            );
        } else if self.dir.exists()
            && let Err(error) = fs::remove_dir_all(&self.dir)
        {
            eprintln!("bench zip: cannot remove {}: {error}", self.dir.display());
        }
    }
}

struct Tree {
    files: usize,
    bytes: u64,
    symlinks: usize,
    executables: usize,
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

/// What a generated file holds.
#[derive(Clone, Copy)]
enum Content {
    /// Source-like text: identifiers, keywords and punctuation from a small vocabulary.
    Text,
    /// A native library: tables of small numbers and zero padding between random stretches.
    Binary,
    /// Already compressed (wheels, images): random bytes.
    Random,
}

const WORDS: &[&str] = &[
    "def",
    "return",
    "self",
    "import",
    "from",
    "class",
    "if",
    "else",
    "for",
    "in",
    "None",
    "True",
    "False",
    "request",
    "response",
    "handler",
    "event",
    "context",
    "json",
    "data",
    "items",
    "value",
    "key",
    "result",
    "client",
    "table",
    "logger",
    "error",
    "status",
    "body",
    "headers",
    "user_id",
    "created_at",
    "=",
    "==",
    "(",
    ")",
    ":",
    ",",
    ".",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "0",
    "1",
    "200",
    "404",
    "\n",
    "\n    ",
    "\n        ",
];

/// Writes `files` entries totalling about `bytes` under `dir`.
fn generate(dir: &Path, files: usize, bytes: u64) -> Result<Tree> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rng = Rng(0x21b_5eed);

    // Heavy-tailed sizes: mostly small files, a few large ones, scaled to the total.
    let symlinks = (files / 500).max(1);
    let regular = files - symlinks;
    let kinds: Vec<(Content, &str, u64)> = (0..regular)
        .map(|_| match rng.below(100) {
            0..72 => {
                let ext =
                    ["py", "py", "py", "js", "json", "txt", "md", "pyi"][rng.below(8) as usize];
                (Content::Text, ext, rng.below(24 << 10))
            }
            72..92 => (Content::Binary, "so", rng.range(16 << 10, 1 << 20)),
            _ => (Content::Random, "whl", rng.range(4 << 10, 512 << 10)),
        })
        .collect();
    let raw_total: u64 = kinds.iter().map(|k| k.2).sum::<u64>().max(1);
    let mut sizes: Vec<u64> = kinds
        .iter()
        .map(|k| (k.2 as f64 * bytes as f64 / raw_total as f64) as u64)
        .collect();
    let shortfall = bytes.saturating_sub(sizes.iter().sum());
    if let Some(last) = sizes.last_mut() {
        *last += shortfall;
    }

    let mut paths = Vec::with_capacity(regular);
    let mut executables = 0;
    let mut buf = Vec::with_capacity(1 << 20);
    for (index, (&size, &(content, ext, _))) in sizes.iter().zip(&kinds).enumerate() {
        let depth = rng.range(1, 5);
        let mut path = PathBuf::from("site-packages");
        for _ in 0..depth {
            path.push(format!("pkg{}", rng.below(12)));
        }
        path.push(format!("m{index:05}.{ext}"));
        let full = dir.join(&path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut file =
            fs::File::create(&full).with_context(|| format!("cannot create {}", full.display()))?;
        let mut left = size;
        while left > 0 {
            let n = left.min(1 << 20) as usize;
            buf.clear();
            fill(&mut rng, content, n, &mut buf);
            file.write_all(&buf)?;
            left -= n as u64;
        }
        drop(file);
        if matches!(content, Content::Binary) || rng.below(50) == 0 {
            fs::set_permissions(&full, fs::Permissions::from_mode(0o755))?;
            executables += 1;
        }
        paths.push(path);
    }
    // Symlinks beside existing files, pointing at them by name (zipped as the file's bytes by
    // both tools: Info-ZIP follows symlinks without -y).
    for index in 0..symlinks {
        let target = &paths[rng.below(paths.len() as u64) as usize];
        let (Some(parent), Some(name)) = (target.parent(), target.file_name()) else {
            continue;
        };
        std::os::unix::fs::symlink(name, dir.join(parent).join(format!("link{index:04}")))?;
    }
    Ok(Tree {
        files,
        bytes: sizes.iter().sum(),
        symlinks,
        executables,
    })
}

/// Appends `n` bytes of `content` to `buf`.
fn fill(rng: &mut Rng, content: Content, n: usize, buf: &mut Vec<u8>) {
    let end = buf.len() + n;
    match content {
        Content::Text => {
            while buf.len() < end {
                let word = WORDS[rng.below(WORDS.len() as u64) as usize];
                buf.extend_from_slice(word.as_bytes());
                if !word.starts_with('\n') {
                    buf.push(b' ');
                }
            }
        }
        Content::Binary => {
            while buf.len() < end {
                let run = rng.range(64, 4096) as usize;
                match rng.below(3) {
                    0 => buf.extend(std::iter::repeat_n(0, run)),
                    1 => {
                        for _ in 0..run / 4 {
                            buf.extend_from_slice(&(rng.below(256) as u32).to_le_bytes());
                        }
                    }
                    _ => {
                        for _ in 0..run / 8 {
                            buf.extend_from_slice(&rng.next().to_le_bytes());
                        }
                    }
                }
            }
        }
        Content::Random => {
            while buf.len() < end {
                buf.extend_from_slice(&rng.next().to_le_bytes());
            }
        }
    }
    buf.truncate(end);
}

/// Zips `dir` into `out` with Info-ZIP (a fresh archive: zip updates an existing one) and
/// returns the wall-clock seconds.
fn info_zip(dir: &Path, out: &Path) -> Result<Run> {
    match fs::remove_file(out) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(error).with_context(|| format!("cannot remove {}", out.display()));
        }
    }
    let wall = run_quiet(
        Command::new("zip")
            .args(["-rX", "-q", "-6"])
            .arg(out)
            .arg(".")
            .current_dir(dir),
    )?;
    Ok(Run { wall })
}

struct Run {
    wall: f64,
}

/// One run of the packager's driver.
struct PackRun {
    sha256: String,
    size: u64,
    files: u64,
    out: PathBuf,
    /// Wall-clock seconds of the process, measured here.
    wall: f64,
    /// Seconds of `package()`, measured by the driver.
    inner: f64,
}

fn packager(driver: &Path, dir: &Path, out: &Path) -> Result<PackRun> {
    let start = Instant::now();
    let output = Command::new(driver)
        .arg(dir)
        .arg("--out")
        .arg(out)
        .output()
        .with_context(|| format!("cannot run {}", driver.display()))?;
    let wall = start.elapsed().as_secs_f64();
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
    Ok(PackRun {
        sha256: field("sha256")?.to_owned(),
        size: field("size")?.parse()?,
        files: field("files")?.parse()?,
        out: out.to_owned(),
        wall,
        inner: field("seconds")?.parse()?,
    })
}

/// Runs `command` with stdout discarded and returns its wall-clock seconds.
fn run_quiet(command: &mut Command) -> Result<f64> {
    let start = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {command:?}"))?;
    let seconds = start.elapsed().as_secs_f64();
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(seconds)
}
