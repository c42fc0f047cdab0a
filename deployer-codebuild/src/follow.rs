//! Following one build to its end: `BatchGetBuilds` on a growing interval, each new phase to
//! progress, the log lines as they arrive (`GetLogEvents` from the head, then by forward
//! token), and the verdict: `SUCCEEDED` is done; `FAILED`, `FAULT`, `TIMED_OUT` and `STOPPED`
//! name the failing phase (the first whose status is not `SUCCEEDED`, with its contexts) and
//! the last log lines. Past the deadline the build is stopped. A status poll that fails is
//! tried again on the next tick; only [`MAX_POLL_FAILURES`] failures in a row end the wait.

use std::collections::VecDeque;
use std::time::Instant;

use aws_sdk_codebuild::types::{Build, StatusType};
use deployer_core::{Phase, Progress};

use crate::{CodeBuildError, Session, sdk};

/// Log lines kept for the failure message.
pub(crate) const TAIL_LINES: usize = 20;
/// Failed `BatchGetBuilds` in a row after which the build counts as lost.
pub(crate) const MAX_POLL_FAILURES: u32 = 5;

/// What has been seen of the build so far.
struct Seen {
    phase: Option<String>,
    /// `(group, stream)` once the build has a log stream.
    logs: Option<(String, String)>,
    /// The forward token of the last `GetLogEvents`.
    token: Option<String>,
    tail: VecDeque<String>,
    /// Why the log cannot be read, once it was reported (access denied, say).
    log_error: Option<String>,
}

impl Seen {
    fn tail(&self) -> String {
        if self.tail.is_empty() {
            match &self.log_error {
                Some(error) => format!("(no log lines: {error})"),
                None => "(no log lines)".to_owned(),
            }
        } else {
            self.tail.iter().cloned().collect::<Vec<_>>().join("\n")
        }
    }

    fn phase(&self) -> String {
        self.phase.clone().unwrap_or_else(|| "SUBMITTED".to_owned())
    }
}

/// Follows `build_id` until it ends or the session's deadline passes.
pub(crate) async fn follow(
    session: &Session,
    build_id: &str,
    progress: &Progress,
) -> Result<(), CodeBuildError> {
    let timing = session.inner.timing;
    let started = Instant::now();
    let mut interval = timing.poll;
    let mut seen = Seen {
        phase: None,
        logs: None,
        token: None,
        tail: VecDeque::with_capacity(TAIL_LINES),
        log_error: None,
    };
    let mut failures = 0;
    loop {
        let build = match get(session, build_id).await {
            Ok(build) => {
                failures = 0;
                Some(build)
            }
            Err(error) => {
                failures += 1;
                if failures >= MAX_POLL_FAILURES {
                    return Err(error);
                }
                progress.detail(Phase::Build, format!("{error}; trying again"));
                None
            }
        };
        if let Some(build) = build {
            if let Some(phase) = build.current_phase()
                && seen.phase.as_deref() != Some(phase)
            {
                progress.emit(Phase::Build, format!("CodeBuild phase {phase}"));
                seen.phase = Some(phase.to_owned());
            }
            if seen.logs.is_none()
                && let Some(logs) = build.logs()
                && let (Some(group), Some(stream)) = (logs.group_name(), logs.stream_name())
            {
                seen.logs = Some((group.to_owned(), stream.to_owned()));
            }
            read_logs(session, &mut seen, progress).await;
            let status = build
                .build_status()
                .cloned()
                .unwrap_or(StatusType::InProgress);
            if build.build_complete() || status != StatusType::InProgress {
                // The last lines may land after the status: read once more.
                read_logs(session, &mut seen, progress).await;
                return verdict(build_id, &build, &status, &seen);
            }
        }
        if started.elapsed() >= timing.deadline {
            let _ = session
                .stop(build_id, std::time::Duration::from_secs(10))
                .await;
            return Err(CodeBuildError::Deadline {
                build_id: build_id.to_owned(),
                waited: humantime::format_duration(timing.deadline).to_string(),
                phase: seen.phase(),
                tail: seen.tail(),
            });
        }
        let left = timing.deadline.saturating_sub(started.elapsed());
        tokio::time::sleep(interval.min(left)).await;
        interval = (interval * 2).min(timing.max_poll);
    }
}

async fn get(session: &Session, build_id: &str) -> Result<Build, CodeBuildError> {
    let answer = session
        .inner
        .clients
        .codebuild
        .batch_get_builds()
        .ids(build_id)
        .send()
        .await
        .map_err(|error| CodeBuildError::Follow {
            build_id: build_id.to_owned(),
            message: sdk::describe(&error).0,
        })?;
    answer
        .builds()
        .iter()
        .find(|b| b.id() == Some(build_id))
        .cloned()
        .ok_or_else(|| CodeBuildError::Follow {
            build_id: build_id.to_owned(),
            message: format!(
                "BatchGetBuilds does not know it{}",
                if answer.builds_not_found().is_empty() {
                    String::new()
                } else {
                    " (builds not found)".to_owned()
                }
            ),
        })
}

/// Reads the log lines that arrived since the last read; a stream not there yet, or a failed
/// read, is tried again at the next tick (a failure other than a missing stream is reported
/// once, and named in the failure message when no line could be read).
async fn read_logs(session: &Session, seen: &mut Seen, progress: &Progress) {
    let Some((group, stream)) = seen.logs.clone() else {
        return;
    };
    // A bounded number of pages per tick; the rest comes at the next one.
    for _ in 0..10 {
        let mut request = session
            .inner
            .clients
            .logs
            .get_log_events()
            .log_group_name(&group)
            .log_stream_name(&stream)
            .start_from_head(true);
        if let Some(token) = &seen.token {
            request = request.next_token(token);
        }
        let page = match request.send().await {
            Ok(page) => page,
            Err(error) => {
                let (message, class) = sdk::describe(&error);
                if class != sdk::Class::NotFound && seen.log_error.is_none() {
                    progress.detail(
                        Phase::Build,
                        format!("cannot read the build's log {group}/{stream}: {message}"),
                    );
                    seen.log_error = Some(message);
                }
                return;
            }
        };
        for event in page.events() {
            for line in event.message().unwrap_or_default().lines() {
                let line = line.trim_end();
                if line.is_empty() {
                    continue;
                }
                progress.detail(Phase::Build, line.to_owned());
                if seen.tail.len() == TAIL_LINES {
                    seen.tail.pop_front();
                }
                seen.tail.push_back(line.to_owned());
            }
        }
        let next = page.next_forward_token().map(str::to_owned);
        let done = next.is_none() || next == seen.token || page.events().is_empty();
        if next.is_some() {
            seen.token = next;
        }
        if done {
            return;
        }
    }
}

fn verdict(
    build_id: &str,
    build: &Build,
    status: &StatusType,
    seen: &Seen,
) -> Result<(), CodeBuildError> {
    if *status == StatusType::Succeeded {
        return Ok(());
    }
    let failed = build.phases().iter().find(|phase| {
        phase
            .phase_status()
            .is_some_and(|s| *s != StatusType::Succeeded && *s != StatusType::InProgress)
    });
    let phase = failed
        .and_then(|p| p.phase_type())
        .map(|t| t.as_str().to_owned())
        .unwrap_or_else(|| seen.phase());
    let context: Vec<String> = failed
        .map(|p| {
            p.contexts()
                .iter()
                .filter_map(|c| match (c.status_code(), c.message()) {
                    (Some(code), Some(message)) if !message.is_empty() => {
                        Some(format!("{code}: {message}"))
                    }
                    (Some(code), _) if !code.is_empty() => Some(code.to_owned()),
                    (None, Some(message)) if !message.is_empty() => Some(message.to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let status = if *status == StatusType::InProgress {
        "ended".to_owned()
    } else {
        status.as_str().to_owned()
    };
    Err(CodeBuildError::Failed {
        build_id: build_id.to_owned(),
        status,
        phase,
        context: if context.is_empty() {
            String::new()
        } else {
            format!(" ({})", deployer_core::one_line(&context.join("; ")))
        },
        tail: seen.tail(),
    })
}
