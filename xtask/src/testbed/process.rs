//! Processes, process groups, ports and HTTP probes, with the standard library only.
//!
//! Every test-bed process is started as the leader of a process group of its own, so that one
//! signal to the group reaches it and everything it started. Liveness is read from `/proc`
//! (a zombie counts as gone), which needs no `libc` and no `unsafe`; signals are sent with the
//! shell's `kill` builtin (`sh` is always there, the `kill` binary is not).

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A free TCP port on 127.0.0.1 (bound, read, released: the caller retries on a lost race).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// `(state, process group)` of `pid` from `/proc/<pid>/stat`, or `None` if there is no such
/// process.
fn stat(pid: u32) -> Option<(char, u32)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether `pid` is a live process (zombies are not).
pub(crate) fn alive(pid: u32) -> bool {
    matches!(stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// The command line of `pid`, arguments joined by spaces (empty if it is gone).
pub(crate) fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// The live members of process group `pgid`.
pub(crate) fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| matches!(stat(pid), Some((state, group)) if group == pgid && state != 'Z' && state != 'X'))
        .collect()
}

/// Sends `signal` (a name such as `TERM`) to every process of group `pgid`.
pub(crate) fn signal_group(pgid: u32, signal: &str) {
    // Errors (the group is already gone) are expected and ignored.
    let _ = Command::new("sh")
        .args([
            "-c",
            "kill -s \"$1\" -- \"-$2\" 2>/dev/null",
            "sh",
            signal,
            &pgid.to_string(),
        ])
        .stdin(Stdio::null())
        .status();
}

/// Stops process group `pgid`: SIGTERM, up to `grace` for it to empty, then SIGKILL.
///
/// `reap` is polled meanwhile (our own children become zombies until waited for).
/// Fails if something of the group is still alive after SIGKILL.
pub(crate) fn stop_group(pgid: u32, grace: Duration, reap: &mut dyn FnMut()) -> Result<()> {
    if group_members(pgid).is_empty() {
        reap();
        return Ok(());
    }
    signal_group(pgid, "TERM");
    if wait_group_empty(pgid, grace, reap) {
        return Ok(());
    }
    signal_group(pgid, "KILL");
    if wait_group_empty(pgid, Duration::from_secs(5), reap) {
        return Ok(());
    }
    bail!(
        "process group {pgid} survived SIGKILL: {:?}",
        group_members(pgid)
    )
}

fn wait_group_empty(pgid: u32, timeout: Duration, reap: &mut dyn FnMut()) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        reap();
        if group_members(pgid).is_empty() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `command` to completion, killing it after `timeout`; stdout and stderr are captured.
pub(crate) fn output_within(command: &mut Command, timeout: Duration) -> Result<Output> {
    run_within(command, timeout, None)
}

/// [`output_within`], also copying each line the command prints to stderr as it comes, after
/// `prefix`: for long steps whose progress a person watches (pip installing moto).
pub(crate) fn output_within_echoed(
    command: &mut Command,
    timeout: Duration,
    prefix: &'static str,
) -> Result<Output> {
    run_within(command, timeout, Some(prefix))
}

fn run_within(
    command: &mut Command,
    timeout: Duration,
    echo: Option<&'static str>,
) -> Result<Output> {
    let program = format!("{:?}", command.get_program());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {program}"))?;
    let stdout = child.stdout.take().map(|pipe| drain(pipe, echo));
    let stderr = child.stderr.take().map(|pipe| drain(pipe, echo));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{program} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let join = |handle: Option<thread::JoinHandle<Vec<u8>>>| {
        handle.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

/// Reads `pipe` to its end; with `echo`, each line also goes to stderr after that prefix.
fn drain(
    pipe: impl Read + Send + 'static,
    echo: Option<&'static str>,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let Some(prefix) = echo else {
            let mut pipe = pipe;
            let _ = pipe.read_to_end(&mut bytes);
            return bytes;
        };
        let mut reader = std::io::BufReader::new(pipe);
        let mut line = Vec::new();
        while std::io::BufRead::read_until(&mut reader, b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line);
            let _ = writeln!(std::io::stderr(), "{prefix}{}", text.trim_end());
            bytes.append(&mut line);
        }
        bytes
    })
}

/// The status code of `GET http://<addr><path>`, or an error if nothing answers in `timeout`.
pub(crate) fn http_get_status(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // One write: `write!` on an unbuffered stream sends each piece of the format separately,
    // and a server that answers after its first read may close on the rest (EPIPE).
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < 1024 {
        if stream.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP response from {addr}: {line:?}"))
}

/// The last `lines` lines of the log at `path`, indented, for error messages.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let tail = &all[all.len().saturating_sub(lines)..];
    if tail.is_empty() {
        return format!("    ({} is empty)", path.display());
    }
    let mut out = format!("    last lines of {}:", path.display());
    for line in tail {
        out.push_str("\n    | ");
        out.push_str(line);
    }
    out
}

/// Polls `ready` every 100 ms until it returns true, `child` exits or `timeout` passes.
pub(crate) fn wait_ready(
    what: &str,
    child: &mut Child,
    log: &Path,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!(
                "{what} exited ({status}) before it answered\n{}",
                log_tail(log, 30)
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{what} did not answer within {timeout:?}\n{}",
                log_tail(log, 30)
            );
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt;

    use super::*;

    #[test]
    fn stop_group_ends_every_member_of_the_group() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        while group_members(pgid).len() < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(
            group_members(pgid).len() >= 2,
            "sh and its sleeps: {:?}",
            group_members(pgid)
        );
        stop_group(pgid, Duration::from_secs(5), &mut || {
            let _ = child.try_wait();
        })
        .unwrap();
        assert!(group_members(pgid).is_empty());
        assert!(!alive(pgid));
    }

    #[test]
    fn http_get_status_reads_the_status_line() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut chunk = [0u8; 512];
            while !request.ends_with(b"\r\n\r\n") {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "the request ended early: {request:?}");
                request.extend_from_slice(&chunk[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
                .unwrap();
        });
        assert_eq!(
            http_get_status(addr, "/v2/", Duration::from_secs(5)).unwrap(),
            204
        );
        server.join().unwrap();
    }
}
