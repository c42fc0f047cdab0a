//! GitHub Actions: a markdown summary of the run appended to `$GITHUB_STEP_SUMMARY`.

use std::io::Write as _;

use crate::rollout::ServiceReport;

/// Appends a table of `reports` to `$GITHUB_STEP_SUMMARY` when it is set (GitHub Actions).
pub(crate) fn step_summary(command: &str, reports: &[ServiceReport]) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return;
    };
    let mut text = format!(
        "### deployer {command}\n\n| service | kind | action | tag | time |\n|---|---|---|---|---|\n"
    );
    for report in reports {
        let seconds = report.durations_ms.get("total").copied().unwrap_or(0) as f64 / 1000.0;
        let action = if report.error.is_some() {
            format!("❌ {}", report.action)
        } else {
            report.action.clone()
        };
        text.push_str(&format!(
            "| {} | {} | {} | `{}` | {seconds:.1}s |\n",
            report.service,
            report.kind.as_str(),
            action,
            report.tag
        ));
    }
    for report in reports {
        if let Some(error) = &report.error {
            text.push_str(&format!(
                "\n**{}**:\n```\n{}\n```\n",
                report.service, error.message
            ));
        }
    }
    text.push('\n');
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()));
    if let Err(error) = written {
        tracing::warn!(
            "cannot append to $GITHUB_STEP_SUMMARY ({}): {error}",
            path.to_string_lossy()
        );
    }
}
