//! A failed rollout's [`Diagnosis`] as text: under the failed service in the summary, and in
//! the GitHub step summary's collapsible block. Its texts were redacted where they were read.

use deployer_core::Diagnosis;

/// Events shown at most (the latest ones); `--json` has them all.
const EVENTS: usize = 10;

/// The diagnosis as indented lines (each ends with a newline); empty when it says nothing.
pub(crate) fn text(diagnosis: &Diagnosis) -> String {
    let mut text = String::new();
    for reason in &diagnosis.reasons {
        text.push_str(&format!("  reason: {reason}\n"));
    }
    if !diagnosis.stopped_tasks.is_empty() {
        text.push_str("  stopped tasks:\n");
        for task in &diagnosis.stopped_tasks {
            text.push_str(&format!("    {}\n", task.describe()));
        }
    }
    if !diagnosis.events.is_empty() {
        text.push_str("  events since the rollout started:\n");
        let skip = diagnosis.events.len().saturating_sub(EVENTS);
        if skip > 0 {
            text.push_str(&format!("    … {skip} earlier (see --json)\n"));
        }
        for event in &diagnosis.events[skip..] {
            text.push_str(&format!("    {event}\n"));
        }
    }
    if !diagnosis.target_health.is_empty() {
        text.push_str("  load balancer targets not healthy:\n");
        for target in &diagnosis.target_health {
            text.push_str(&format!("    {target}\n"));
        }
    }
    if !diagnosis.logs.is_empty() {
        text.push_str("  last log lines:\n");
        for line in &diagnosis.logs {
            text.push_str(&format!(
                "    {} {} | {}\n",
                timestamp(line.timestamp_ms),
                line.source,
                line.message
            ));
        }
    }
    for why in &diagnosis.unavailable {
        text.push_str(&format!("  diagnosis unavailable: {why}\n"));
    }
    text
}

/// Milliseconds since the epoch as RFC 3339 in UTC, to the millisecond.
pub(crate) fn timestamp(ms: i64) -> String {
    let Ok(ms) = u64::try_from(ms) else {
        return ms.to_string();
    };
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use deployer_core::{ContainerExit, LogLine, StoppedTask};

    use super::*;

    #[test]
    fn every_part_is_shown_under_its_heading() {
        let diagnosis = Diagnosis {
            reasons: vec![],
            stopped_tasks: vec![StoppedTask {
                task: "abc".into(),
                stop_code: Some("EssentialContainerExited".into()),
                stopped_reason: Some("Essential container in task exited".into()),
                containers: vec![ContainerExit {
                    name: "web".into(),
                    exit_code: Some(137),
                    reason: Some("OutOfMemoryError".into()),
                }],
            }],
            events: (0..12).map(|i| format!("event {i}")).collect(),
            logs: vec![LogLine {
                timestamp_ms: 1_000,
                source: "web/abc".into(),
                message: "killed".into(),
            }],
            target_health: vec![
                "target group web: 10.0.1.7:8080 unhealthy: Target.FailedHealthChecks".into(),
            ],
            unavailable: vec!["GetLogEvents failed: boom".into()],
        };
        let text = text(&diagnosis);
        assert!(
            text.contains("  load balancer targets not healthy:\n    target group web: 10.0.1.7:8080 unhealthy: Target.FailedHealthChecks\n  last log lines:\n"),
            "{text}"
        );
        assert!(text.contains(
            "  stopped tasks:\n    abc: EssentialContainerExited: Essential container in task exited; web exit 137: OutOfMemoryError\n"
        ), "{text}");
        assert!(
            text.contains("    … 2 earlier (see --json)\n    event 2\n"),
            "{text}"
        );
        assert!(!text.contains("event 1\n"), "{text}");
        assert!(
            text.contains("    1970-01-01T00:00:01.000Z web/abc | killed\n"),
            "{text}"
        );
        assert!(
            text.ends_with("  diagnosis unavailable: GetLogEvents failed: boom\n"),
            "{text}"
        );
        assert_eq!(super::text(&Diagnosis::default()), "");
    }
}
