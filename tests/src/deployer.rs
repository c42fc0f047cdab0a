//! Running the already built `deployer` binary.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::Testbed;
use crate::bed::clear_aws_env;

/// The `deployer` binary that cargo built beside this test: `<target>/<profile>/deployer`,
/// found from the test executable (`<target>/<profile>/deps/e2e-<hash>`); `$DEPLOYER_BIN`
/// overrides it.
///
/// `cargo test --workspace` builds it because the `cli` package has an integration test
/// (cargo builds a package's binaries for its integration tests). Tests never build it.
pub fn deployer_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("DEPLOYER_BIN") {
        return PathBuf::from(path);
    }
    let bin = profile_dir().join(format!("deployer{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the deployer binary {} does not exist: run the tests with `cargo test --workspace` or \
         `cargo xtask test` (they build it), or `cargo build -p deployer-cli` first",
        bin.display()
    );
    bin
}

/// The example program `name` of workspace package `package` that cargo built beside this
/// test: `<target>/<profile>/examples/<name>`.
///
/// `cargo test --workspace` builds the examples of every package (cargo test compiles examples
/// to check that they build), so `cargo xtask test` has them. Tests never build them.
pub fn example_bin(package: &str, name: &str) -> PathBuf {
    let bin = profile_dir()
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "the example {} does not exist: run the tests with `cargo test --workspace` or \
         `cargo xtask test` (they build every example), or `cargo build -p {package} --example \
         {name}` first",
        bin.display()
    );
    bin
}

/// `<target>/<profile>`, the directory of the test executable's `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    exe.parent()
        .filter(|deps| deps.file_name() == Some(OsStr::new("deps")))
        .and_then(Path::parent)
        .unwrap_or_else(|| {
            panic!(
                "the test executable {} is not in <target>/<profile>/deps",
                exe.display()
            )
        })
        .to_owned()
}

/// What a `deployer` run returned.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl RunOutput {
    /// Panics, showing both streams, unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "deployer exited with {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the run succeeded (exit code 0).
    pub fn assert_success(&self) -> &Self {
        self.assert_code(0)
    }

    /// stdout parsed as JSON (for `--json`); panics, showing the output, if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A `deployer` invocation: the binary with arguments, a working directory and an environment
/// from which every inherited `AWS_*` variable is removed (so that only what the test sets, e.g.
/// [`Deployer::bed`], can reach an AWS endpoint).
///
/// ```ignore
/// let out = Deployer::new().current_dir(repo.path()).bed(bed).args(["deploy", "--json"]).run();
/// out.assert_success();
/// ```
#[derive(Debug)]
pub struct Deployer {
    command: Command,
    timeout: Duration,
}

impl Default for Deployer {
    fn default() -> Self {
        Self::new()
    }
}

impl Deployer {
    /// `deployer` with no arguments, colours and progress off, a 5-minute timeout.
    pub fn new() -> Self {
        Self::program(deployer_bin())
    }

    /// Another program run the same way (an [`example_bin`], say).
    pub fn program(path: impl AsRef<OsStr>) -> Self {
        let mut command = Command::new(path);
        clear_aws_env(&mut command);
        command
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        Deployer {
            command,
            timeout: Duration::from_secs(300),
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Runs in `dir`.
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Points the run at the test bed's moto ([`Testbed::env`]).
    pub fn bed(mut self, bed: &Testbed) -> Self {
        bed.apply_env(&mut self.command);
        self
    }

    /// Kills the run after `timeout` (the test then fails).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs to completion and returns the exit code and output.
    pub fn run(mut self) -> RunOutput {
        let description = format!("{:?}", self.command);
        let mut child = self
            .command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{description} did not finish within {:?}", self.timeout);
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("waiting for {description}: {e}"),
            }
        };
        RunOutput {
            code: status.code(),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        }
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
