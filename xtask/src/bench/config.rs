//! `cargo xtask bench config`: a config service of N DynamoDB rows (default 1,000) applied
//! through the real `deployer` against the test bed's moto, with the wall time and the AWS
//! calls by action (from moto's request recorder) of each step:
//!
//! 1. the first apply (every row added);
//! 2. the no-op apply (goal: zero writes, and no read but the records and the marker);
//! 3. a change of 1% of the rows, 0.5% added, 0.5% removed with `prune`: the plan as it is
//!    printed (its first lines), then the apply (goal: only the difference written);
//! 4. a rollback to the first set (its kept copy).
//!
//! Figures, not assertions: a goal not met is marked, nothing fails. Uses the running test bed
//! (`cargo xtask testbed up`), else starts one of its own and stops it. The deployer is
//! `target/debug/deployer` (built when missing), `target/release/deployer` with `--release`
//! (built), or `$DEPLOYER_BIN`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::testbed::{self, Layout};

const REGION: &str = "us-east-1";

/// Creates the table and the bucket (boto3 in the bed's venv).
const SETUP_PY: &str = r#"
import sys, boto3
table, bucket = sys.argv[1], sys.argv[2]
boto3.client("dynamodb").create_table(
    TableName=table,
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
    BillingMode="PAY_PER_REQUEST",
)
boto3.client("s3").create_bucket(Bucket=bucket)
"#;

struct Options {
    items: usize,
    release: bool,
}

fn parse(args: &[&str]) -> Result<Options> {
    let mut options = Options {
        items: 1000,
        release: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match *arg {
            "--items" => {
                options.items = args
                    .next()
                    .context("--items needs a number")?
                    .parse()
                    .context("--items needs a number")?;
            }
            "--release" => options.release = true,
            other => bail!("bench config: unknown option {other}"),
        }
    }
    if options.items < 200 {
        bail!("bench config: --items is at least 200 (1% of them change)");
    }
    Ok(options)
}

pub(crate) fn run(args: &[&str]) -> Result<()> {
    let options = parse(args)?;
    let root = crate::project_root();
    let layout = Layout::new();
    let target = layout.root.parent().unwrap_or(&layout.root).to_owned();
    let deployer = deployer(&root, &target, options.release)?;
    let work = layout
        .root
        .join(format!("bench-config-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let (bed, own) = bed(&layout, &work)?;
    let result = bench(&options, &deployer, &bed, &work);
    if let Some(own) = own {
        own.down()?;
    }
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// The moto this run talks to: (url, port, python), and the bed it started, if any.
struct Moto {
    url: String,
    port: u16,
    python: PathBuf,
}

fn bed(layout: &Layout, work: &Path) -> Result<(Moto, Option<testbed::Running>)> {
    if let Ok(file) = testbed::read(&layout.root.join("testbed.json"))
        && let Some(moto) = file.moto
        && super::noop::http(moto.port, "GET", "/_deployer/health", b"").is_ok_and(|r| r.0 == 200)
    {
        eprintln!(
            "bench config: using the running test bed (moto {})",
            moto.url
        );
        let python = if moto.python.as_os_str().is_empty() {
            layout.root.join("venv/bin/python")
        } else {
            moto.python
        };
        return Ok((
            Moto {
                url: moto.url,
                port: moto.port,
                python,
            },
            None,
        ));
    }
    eprintln!("bench config: no test bed answers; starting one of this run's own");
    let dir = work.join("bed");
    let running = testbed::up(
        layout,
        &dir.join("testbed.json"),
        &dir,
        Some(std::process::id()),
    )?;
    let moto = running.bed.moto.as_ref().context("the bed has no moto")?;
    let found = Moto {
        url: moto.url.clone(),
        port: moto.port,
        python: running.python.clone(),
    };
    Ok((found, Some(running)))
}

fn deployer(root: &Path, target: &Path, release: bool) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("DEPLOYER_BIN") {
        return Ok(PathBuf::from(path));
    }
    let profile = if release { "release" } else { "debug" };
    let path = target.join(profile).join("deployer");
    if release || !path.is_file() {
        let mut args = vec!["build", "--quiet", "-p", "deployer-cli"];
        if release {
            args.push("--release");
        }
        let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
            .args(&args)
            .current_dir(root)
            .status()
            .context("cannot run cargo")?;
        if !status.success() {
            bail!("cargo {} failed", args.join(" "));
        }
    }
    Ok(path)
}

fn item(n: usize, branch: &str) -> String {
    format!(
        "[[items]]\npk = \"repo#bench/r{n:05}\"\nsk = \"config\"\nrepository = \"bench/r{n:05}\"\ndefault_branch = \"{branch}\"\nmax_turns = {}\nratio = 0.{n:05}\nwebhook_secret = \"bench-secret-{n:05}\"\n\n",
        20 + n % 50
    )
}

/// The rows as one TOML file per 100.
fn write_items(repo: &Path, items: &[(usize, &str)]) -> Result<()> {
    let dir = repo.join("config/repos");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for (chunk, rows) in items.chunks(100).enumerate() {
        let text: String = rows.iter().map(|(n, branch)| item(*n, branch)).collect();
        std::fs::write(dir.join(format!("part-{chunk:03}.toml")), text)?;
    }
    Ok(())
}

struct Step {
    name: String,
    seconds: f64,
    action: String,
    calls: BTreeMap<String, usize>,
}

fn bench(options: &Options, deployer: &Path, moto: &Moto, work: &Path) -> Result<()> {
    let n = options.items;
    let project = format!("benchcfg{}", std::process::id());
    let table = format!("{project}-repos");
    let bucket = format!("{project}-deployer");
    let empty = work.join("aws-empty");
    std::fs::write(&empty, "")?;
    let env = |key: &str| -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", moto.url.as_str()),
            ("AWS_ACCESS_KEY_ID", key),
            ("AWS_SECRET_ACCESS_KEY", "bench"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_CONFIG_FILE", &empty.display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE", &empty.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    let setup = Command::new(&moto.python)
        .args(["-c", SETUP_PY, &table, &bucket])
        .envs(env("benchconfigsetup"))
        .output()
        .context("cannot run the bed's python")?;
    if !setup.status.success() {
        bail!(
            "creating the table: {}",
            String::from_utf8_lossy(&setup.stderr)
        );
    }
    let repo = work.join("repo");
    std::fs::create_dir_all(&repo)?;
    std::fs::write(
        repo.join("deployer.toml"),
        format!(
            "[project]\nname = \"{project}\"\nregion = \"{REGION}\"\n\n[services.repos]\nkind = \"config\"\nsource = \"config/repos\"\ndynamodb = {{ table = \"{table}\", key = [\"pk\", \"sk\"] }}\nsecret = [\"webhook_secret\"]\nprune = true\ns3_bucket = \"{bucket}\"\n"
        ),
    )?;
    let first: Vec<(usize, &str)> = (0..n).map(|i| (i, "main")).collect();
    write_items(&repo, &first)?;
    let mut steps = Vec::new();
    let mut run = |name: &str, args: &[&str]| -> Result<(Value, String)> {
        let key = format!("BENCHCFG{}{}", std::process::id(), steps.len());
        let started = Instant::now();
        let output = Command::new(deployer)
            .current_dir(&repo)
            .args(args)
            .envs(env(&key))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot run {}", deployer.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            bail!(
                "{name}: deployer {} failed: {}{}",
                args.join(" "),
                stdout,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let json: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        let (status, body) = super::noop::http(
            moto.port,
            "GET",
            &format!("/_deployer/calls?access_key={key}"),
            b"",
        )?;
        if status != 200 {
            bail!("the recorder answered {status}");
        }
        let recorded: Value = serde_json::from_slice(&body)?;
        let mut calls = BTreeMap::new();
        for call in recorded["calls"].as_array().into_iter().flatten() {
            *calls
                .entry(format!(
                    "{}:{}",
                    call["service"].as_str().unwrap_or("?"),
                    call["action"].as_str().unwrap_or("?")
                ))
                .or_default() += 1;
        }
        steps.push(Step {
            name: name.to_owned(),
            seconds,
            action: json["services"][0]["action"]
                .as_str()
                .unwrap_or("-")
                .to_owned(),
            calls,
        });
        Ok((json, stdout))
    };
    eprintln!("bench config: {n} rows, {}", deployer.display());
    run("first apply", &["deploy", "--all", "--json"])?;
    run("no-op apply", &["deploy", "--all", "--json"])?;
    let changed = n / 100;
    let moved = n / 200;
    let mut next: Vec<(usize, &str)> = (moved..n).map(|i| (i, "main")).collect();
    for row in next.iter_mut().take(changed) {
        row.1 = "trunk";
    }
    next.extend((n..n + moved).map(|i| (i, "main")));
    write_items(&repo, &next)?;
    let (_, plan) = run("plan (1% changed, 0.5% added, 0.5% removed)", &["plan"])?;
    run("apply of the difference", &["deploy", "--all", "--json"])?;
    run(
        "rollback to the first set",
        &["rollback", "--service", "repos", "--json"],
    )?;

    let mut text = String::new();
    let _ = writeln!(
        text,
        "\nbench config: {n} DynamoDB rows (moto {}, one machine of 2 cores)\n",
        moto.url
    );
    let _ = writeln!(
        text,
        "{:<46} {:>8}  {:<10} calls by action",
        "step", "wall", "action"
    );
    for step in &steps {
        let calls: Vec<String> = step
            .calls
            .iter()
            .map(|(action, count)| format!("{action} {count}"))
            .collect();
        let _ = writeln!(
            text,
            "{:<46} {:>7.2}s  {:<10} {}",
            step.name,
            step.seconds,
            step.action,
            calls.join(", ")
        );
    }
    let noop = &steps[1];
    let noop_writes: usize = noop
        .calls
        .iter()
        .filter(|(a, _)| {
            let action = a.split(':').nth(1).unwrap_or_default();
            !["Get", "Describe", "List", "Scan", "Query", "Head"]
                .iter()
                .any(|p| action.starts_with(p))
        })
        .map(|(_, c)| c)
        .sum();
    let _ = writeln!(
        text,
        "\nno-op apply: {noop_writes} writes (goal 0: {}), {} calls",
        if noop_writes == 0 { "met" } else { "NOT MET" },
        noop.calls.values().sum::<usize>()
    );
    let expected = changed + 2 * moved;
    let _ = writeln!(
        text,
        "apply of the difference: {expected} rows to write ({changed} changed, {moved} added, {moved} removed) in {} transaction(s) (goal: one per 100 rows)",
        steps[3]
            .calls
            .get("dynamodb:TransactWriteItems")
            .copied()
            .unwrap_or(0)
    );
    let lines: Vec<&str> = plan.lines().collect();
    let shown = lines
        .iter()
        .skip_while(|l| !l.starts_with("repos:"))
        .take(16)
        .copied()
        .collect::<Vec<_>>();
    let _ = writeln!(text, "\nthe plan as printed (first lines):\n");
    for line in shown {
        let _ = writeln!(text, "    {line}");
    }
    println!("{text}");
    Ok(())
}
