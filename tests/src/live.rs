//! A `deployer` run watched while it runs: its progress lines on stderr arrive one by one, so a
//! test can act at a given phase boundary (kill it with SIGKILL right then, for instance).
//!
//! When stderr is not a terminal, `deployer` prints plain progress lines,
//! `<time> <service> <phase> <message>` (`-v` adds builder output and poll details in the same
//! form). [`ProgressLine::parse`] splits them.
//!
//! ```ignore
//! let mut run = LiveRun::spawn(command);
//! let line = run.wait_for(Duration::from_secs(120), |l| l.service == "app-api" && l.message.starts_with("registered "));
//! let out = run.kill();
//! ```

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::{RunOutput, Testbed, deployer_bin};

/// One progress line: `<time> <service> <phase> <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressLine {
    /// The service.
    pub service: String,
    /// The phase (`check`, `build`, `push`, `read`, `apply`, `wait`, `record`, `done`, …).
    pub phase: String,
    /// The rest of the line.
    pub message: String,
    /// The whole line.
    pub raw: String,
}

impl ProgressLine {
    /// Splits a progress line; `None` for other lines (logs, the summary). The time must look
    /// like RFC 3339 (`2026-01-01T00:00:00Z`).
    pub fn parse(line: &str) -> Option<ProgressLine> {
        let mut words = line.splitn(2, ' ');
        let time = words.next()?;
        if !(time.len() >= 20 && time.as_bytes().get(10) == Some(&b'T') && time.ends_with('Z')) {
            return None;
        }
        let rest = words.next()?.trim_start();
        let (service, rest) = rest.split_once(' ')?;
        let rest = rest.trim_start();
        let (phase, message) = rest.split_once(' ').unwrap_or((rest, ""));
        Some(ProgressLine {
            service: service.to_owned(),
            phase: phase.to_owned(),
            message: message.trim().to_owned(),
            raw: line.to_owned(),
        })
    }
}

/// `deployer` with the bed's environment (every inherited `AWS_*` variable removed, then
/// [`Testbed::env`]), colours off, stdin closed: the command [`LiveRun::spawn`] takes.
pub fn deployer_command(bed: &Testbed) -> Command {
    let mut command = Command::new(deployer_bin());
    bed.apply_env(&mut command);
    command
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("DEPLOYER_LOG")
        .env_remove("GITHUB_ACTIONS")
        .stdin(Stdio::null());
    command
}

/// A running `deployer` whose stderr is read line by line.
#[derive(Debug)]
pub struct LiveRun {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<()>>,
}

impl LiveRun {
    /// Starts `command` with stdout and stderr piped.
    pub fn spawn(mut command: Command) -> LiveRun {
        let description = format!("{command:?}");
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {description}: {e}"));
        let stdout = child.stdout.take().map(|mut pipe| {
            thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                String::from_utf8_lossy(&bytes).into_owned()
            })
        });
        let (sender, lines) = channel();
        let stderr = child.stderr.take().map(|pipe| {
            thread::spawn(move || {
                let mut reader = BufReader::new(pipe);
                let mut buffer = Vec::new();
                loop {
                    buffer.clear();
                    match reader.read_until(b'\n', &mut buffer) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let line = String::from_utf8_lossy(&buffer).trim_end().to_owned();
                            if sender.send(line).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
        });
        LiveRun {
            child,
            lines,
            seen: Vec::new(),
            stdout,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every stderr line received so far.
    pub fn stderr_so_far(&self) -> String {
        self.seen.join("\n")
    }

    /// Reads stderr until a progress line satisfies `matches` and returns it; `None` when the
    /// process closed stderr (ended) first or `timeout` ran out.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut matches: impl FnMut(&ProgressLine) -> bool,
    ) -> Option<ProgressLine> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let parsed = ProgressLine::parse(&line);
                    self.seen.push(line);
                    if let Some(parsed) = parsed
                        && matches(&parsed)
                    {
                        return Some(parsed);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// SIGKILL, then the exit status and all output.
    pub fn kill(mut self) -> RunOutput {
        let _ = self.child.kill();
        self.collect()
    }

    /// Waits until the process ends (killing it after `timeout`, which fails the test) and
    /// returns its output.
    pub fn finish(mut self, timeout: Duration) -> RunOutput {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => return self.collect(),
                Ok(None) if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    let out = self.collect();
                    panic!(
                        "deployer did not finish within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                        out.stdout, out.stderr
                    );
                }
                Ok(None) => thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("waiting for deployer: {e}"),
            }
        }
    }

    fn collect(&mut self) -> RunOutput {
        let status = self.child.wait().expect("cannot wait for deployer");
        if let Some(stderr) = self.stderr.take() {
            let _ = stderr.join();
        }
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        let stdout = self
            .stdout
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        RunOutput {
            code: status.code(),
            stdout,
            stderr: self.seen.join("\n"),
        }
    }
}

impl Drop for LiveRun {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_split_into_service_phase_and_message() {
        let line = ProgressLine::parse(
            "2026-11-24T03:22:46Z app-api              apply  registered m1-app-api:2; UpdateService",
        )
        .unwrap();
        assert_eq!(
            (
                line.service.as_str(),
                line.phase.as_str(),
                line.message.as_str()
            ),
            ("app-api", "apply", "registered m1-app-api:2; UpdateService")
        );
        assert_eq!(ProgressLine::parse("SERVICE   KIND   ACTION"), None);
        assert_eq!(ProgressLine::parse("error: no deployer.toml"), None);
    }
}
