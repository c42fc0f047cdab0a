//! GitHub Actions: a markdown summary of the run appended to `$GITHUB_STEP_SUMMARY`, and
//! `::warning::` annotations.

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
        let result = &report.result;
        let seconds = result.durations_ms.get("total").copied().unwrap_or(0) as f64 / 1000.0;
        let action = if report.error.is_some() {
            format!("❌ {}", result.action)
        } else {
            result.action.to_string()
        };
        text.push_str(&format!(
            "| {} | {} | {} | `{}` | {seconds:.1}s |\n",
            result.service,
            result.kind.as_str(),
            action,
            result.tag
        ));
    }
    for report in reports {
        if let Some(error) = &report.error {
            text.push_str(&format!(
                "\n**{}**:\n```\n{}\n```\n",
                report.result.service, error.message
            ));
        }
        if let Some(diagnosis) = &report.result.diagnosis {
            // A collapsible block per failed service (fences longer than any in the text).
            let gist = diagnosis.headline().unwrap_or_default();
            text.push_str(&format!(
                "\n<details><summary>Why <b>{}</b> failed: {}</summary>\n\n````text\n{}````\n\n</details>\n",
                report.result.service,
                html_escape(&gist),
                crate::diagnosis::text(diagnosis)
            ));
        }
        for warning in &report.result.warnings {
            text.push_str(&format!(
                "\n**{}**: warning: {warning}\n",
                report.result.service
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

/// A `::warning::` annotation of `service` on stderr when running in GitHub Actions (where the
/// runner turns it into an annotation of the run); nothing elsewhere. Like the progress
/// renderer's `::error::`, it goes to stderr: stdout carries the result only.
#[allow(clippy::print_stderr)]
pub(crate) fn warning(service: &str, message: &str) {
    if crate::progress::github_actions() {
        eprintln!(
            "::warning title=deployer {service}::{}",
            crate::progress::escape(message)
        );
    }
}

/// `text` safe inside an HTML element of the summary.
fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
