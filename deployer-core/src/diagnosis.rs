//! Why a rollout failed, in the target's own words: what a deployer gathers after a failed or
//! timed-out wait ([`Deployer::diagnose`](crate::Deployer::diagnose)), for the cli to show under
//! the failed service, in `--json` and in the GitHub step summary.
//!
//! Every text in it came from AWS and has passed through the resource's redaction before it
//! was put here: a diagnosis never holds a secret value.

use serde::{Deserialize, Serialize};

/// What the target says about a failed rollout. Empty when the target has nothing to say
/// ([`Diagnosis::is_empty`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// The target's own failure reasons, one line each (Lambda `LastUpdateStatusReason`, an
    /// AgentCore runtime's `failureReason`, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Tasks of the new deployment that stopped (ECS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped_tasks: Vec<StoppedTask>,
    /// The target's events since the rollout started, oldest first, each message once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// The load balancers' targets that are not healthy, one line each (ECS: state, reason
    /// and description of `DescribeTargetHealth`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_health: Vec<String>,
    /// The last log lines of the failing containers (or function), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<LogLine>,
    /// What could not be gathered, one line each (`DescribeTasks failed: …`): shown as
    /// "diagnosis unavailable: …", never as the deploy's error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unavailable: Vec<String>,
}

/// A stopped task and why it stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoppedTask {
    /// The task id (the last part of its ARN).
    pub task: String,
    /// ECS `stopCode`, e.g. `EssentialContainerExited`, `TaskFailedToStart`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_code: Option<String>,
    /// ECS `stoppedReason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_reason: Option<String>,
    /// Its containers that exited or failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerExit>,
}

/// How one container of a stopped task ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerExit {
    /// The container name.
    pub name: String,
    /// Its exit code, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why it stopped, e.g. `OutOfMemoryError: Container killed due to memory usage` or
    /// `CannotPullContainerError: …`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One log line.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// Where it was written: a container name and task id, a log stream.
    pub source: String,
    /// The line.
    pub message: String,
}

/// Where a live service writes its logs: a CloudWatch Logs group and the part of it that is
/// this service's ([`Deployer::log_sources`](crate::Deployer::log_sources)), for `deployer logs`.
///
/// It carries the values its lines must not show (the resource's environment values): they are
/// never serialised and its `Debug` does not print them.
#[derive(Clone, PartialEq, Eq)]
pub struct LogSource {
    /// The log group.
    pub group: String,
    /// The region of the group when it is not the client's (an `awslogs-region` option).
    pub region: Option<String>,
    /// Only the streams whose name starts with this (`<awslogs-stream-prefix>/<container>/`);
    /// `None` for every stream of the group.
    pub stream_prefix: Option<String>,
    /// How its lines are labelled when several sources interleave: a container name,
    /// `function`, `runtime`.
    pub label: String,
    /// Values replaced by `***` in every line read from it.
    pub redact: Vec<String>,
}

impl std::fmt::Debug for LogSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSource")
            .field("group", &self.group)
            .field("region", &self.region)
            .field("stream_prefix", &self.stream_prefix)
            .field("label", &self.label)
            .field("redact", &format_args!("[{} values]", self.redact.len()))
            .finish()
    }
}

/// The longest text a [`Diagnosis::bounded`] copy keeps of one line, in characters.
const KEPT_LINE: usize = 240;

impl Diagnosis {
    /// A diagnosis that says only why it could not be gathered.
    pub fn unavailable(why: impl Into<String>) -> Self {
        Diagnosis {
            unavailable: vec![why.into()],
            ..Diagnosis::default()
        }
    }

    /// Whether it says nothing at all.
    pub fn is_empty(&self) -> bool {
        self.reasons.is_empty()
            && self.stopped_tasks.is_empty()
            && self.events.is_empty()
            && self.target_health.is_empty()
            && self.logs.is_empty()
            && self.unavailable.is_empty()
    }

    /// A copy whose JSON is at most `max_bytes` long, to keep in a size-limited record (an
    /// SSM parameter holds 4 KB): every text cut to a line, then the oldest events, all but
    /// the first stopped task, the oldest log lines, all but the first reason and unavailable
    /// line dropped until it fits. The headline survives whenever it fits at all.
    pub fn bounded(&self, max_bytes: usize) -> Diagnosis {
        let mut kept = self.clone();
        let mut limit = KEPT_LINE;
        kept.cut(limit);
        loop {
            let size = serde_json::to_string(&kept).map_or(0, |json| json.len());
            if size <= max_bytes {
                return kept;
            }
            if !kept.events.is_empty() {
                kept.events.remove(0);
            } else if kept.target_health.len() > 1 {
                kept.target_health.pop();
            } else if kept.stopped_tasks.len() > 1 {
                kept.stopped_tasks.pop();
            } else if !kept.logs.is_empty() {
                kept.logs.remove(0);
            } else if kept.unavailable.len() > 1 {
                kept.unavailable.pop();
            } else if kept.reasons.len() > 1 {
                kept.reasons.pop();
            } else if kept
                .stopped_tasks
                .first()
                .is_some_and(|t| t.containers.len() > 1)
            {
                kept.stopped_tasks[0].containers.pop();
            } else if limit > 16 {
                limit /= 2;
                kept.cut(limit);
            } else {
                return Diagnosis::default();
            }
        }
    }

    /// Cuts every text to `limit` characters (an ellipsis marks a cut).
    fn cut(&mut self, limit: usize) {
        let cut = |text: &mut String| {
            if text.chars().count() > limit {
                *text = text
                    .chars()
                    .take(limit.saturating_sub(1))
                    .collect::<String>()
                    + "…";
            }
        };
        self.reasons.iter_mut().for_each(cut);
        self.events.iter_mut().for_each(cut);
        self.target_health.iter_mut().for_each(cut);
        self.unavailable.iter_mut().for_each(cut);
        for line in &mut self.logs {
            cut(&mut line.message);
        }
        for task in &mut self.stopped_tasks {
            task.stopped_reason.iter_mut().for_each(cut);
            for container in &mut task.containers {
                container.reason.iter_mut().for_each(cut);
            }
        }
    }

    /// The gist in one line, for an annotation's first line: the first reason, else the first
    /// stopped task's (`task 1a2b: OutOfMemoryError …; web exit 137`), else why it is
    /// unavailable. `None` when there is nothing to say.
    pub fn headline(&self) -> Option<String> {
        if let Some(reason) = self.reasons.first() {
            return Some(reason.clone());
        }
        if let Some(task) = self.stopped_tasks.first() {
            return Some(format!("stopped task {}", task.describe()));
        }
        self.unavailable
            .first()
            .map(|why| format!("diagnosis unavailable: {why}"))
    }
}

impl StoppedTask {
    /// The task in one line: `<id>: <stopCode>: <stoppedReason>; <container> exit <code>: <reason>`.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.task.clone()];
        parts.extend(self.stop_code.clone());
        parts.extend(self.stopped_reason.clone());
        let mut text = parts.join(": ");
        for container in &self.containers {
            text.push_str(&format!("; {}", container.name));
            if let Some(code) = container.exit_code {
                text.push_str(&format!(" exit {code}"));
            }
            if let Some(reason) = &container.reason {
                text.push_str(&format!(": {reason}"));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oom() -> StoppedTask {
        StoppedTask {
            task: "1a2b".into(),
            stop_code: Some("EssentialContainerExited".into()),
            stopped_reason: Some("Essential container in task exited".into()),
            containers: vec![ContainerExit {
                name: "web".into(),
                exit_code: Some(137),
                reason: Some("OutOfMemoryError: Container killed due to memory usage".into()),
            }],
        }
    }

    fn big() -> Diagnosis {
        Diagnosis {
            reasons: vec!["the circuit breaker stopped the rollout".into()],
            stopped_tasks: vec![oom(), oom(), oom()],
            events: (0..40)
                .map(|i| format!("(service web) event {i} {}", "x".repeat(300)))
                .collect(),
            logs: (0..30)
                .map(|i| LogLine {
                    timestamp_ms: i,
                    source: "web/1a2b".into(),
                    message: format!("line {i} {}", "y".repeat(500)),
                })
                .collect(),
            target_health: vec![],
            unavailable: vec![],
        }
    }

    #[test]
    fn a_bounded_copy_fits_and_keeps_the_newest_lines_and_the_headline() {
        let full = big();
        assert!(serde_json::to_string(&full).unwrap().len() > 20_000);
        let kept = full.bounded(1500);
        let json = serde_json::to_string(&kept).unwrap();
        assert!(json.len() <= 1500, "{} bytes", json.len());
        assert_eq!(kept.headline(), full.headline());
        if let Some(last) = kept.logs.last() {
            assert_eq!(last.timestamp_ms, 29, "the newest line is kept");
        }
        assert!(
            kept.logs
                .iter()
                .all(|l| l.message.chars().count() <= KEPT_LINE)
        );
    }

    #[test]
    fn a_small_diagnosis_is_kept_whole() {
        let small = Diagnosis {
            reasons: vec!["InvalidImage: the image is not arm64".into()],
            ..Diagnosis::default()
        };
        assert_eq!(small.bounded(1500), small);
        assert!(
            big().bounded(10).is_empty(),
            "nothing fits in 10 bytes but `{{}}`"
        );
    }

    #[test]
    fn a_log_source_does_not_show_what_it_hides() {
        let source = LogSource {
            group: "/ecs/web".into(),
            region: None,
            stream_prefix: Some("web/web/".into()),
            label: "web".into(),
            redact: vec!["postgres://app:pw@db/app".into()],
        };
        let debug = format!("{source:?}");
        assert!(!debug.contains("pw@db"), "{debug}");
        assert!(debug.contains("[1 values]"), "{debug}");
    }

    #[test]
    fn a_stopped_task_is_one_line_with_its_containers() {
        assert_eq!(
            oom().describe(),
            "1a2b: EssentialContainerExited: Essential container in task exited; web exit 137: \
             OutOfMemoryError: Container killed due to memory usage"
        );
    }

    #[test]
    fn the_headline_prefers_reasons_then_tasks_then_why_it_is_unavailable() {
        let mut diagnosis = Diagnosis::unavailable("DescribeTasks failed: boom");
        assert_eq!(
            diagnosis.headline().as_deref(),
            Some("diagnosis unavailable: DescribeTasks failed: boom")
        );
        diagnosis.stopped_tasks.push(oom());
        assert!(
            diagnosis
                .headline()
                .unwrap()
                .starts_with("stopped task 1a2b")
        );
        diagnosis.reasons.push("EniLimitExceeded: no ENI".into());
        assert_eq!(
            diagnosis.headline().as_deref(),
            Some("EniLimitExceeded: no ENI")
        );
        assert_eq!(Diagnosis::default().headline(), None);
    }

    #[test]
    fn an_empty_diagnosis_serializes_to_an_empty_object() {
        assert_eq!(serde_json::to_string(&Diagnosis::default()).unwrap(), "{}");
        assert!(Diagnosis::default().is_empty());
    }
}
