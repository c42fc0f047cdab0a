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
            && self.logs.is_empty()
            && self.unavailable.is_empty()
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
