//! Renders progress events on stderr, in one of three ways:
//!
//! - a live view (indicatif) with one line per service — phase, elapsed time, last step — when
//!   stderr is a terminal;
//! - plain timestamped lines otherwise (CI logs); in GitHub Actions each service's lines are
//!   gathered into a `::group::` when it finishes, and failures become `::error::` annotations;
//! - nothing in `--json` mode, unless `-v`.
//!
//! Details (builder output, poll states) show only with `-v`.
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use deployer_core::{Phase, ProgressEvent, ProgressSink};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
pub(crate) enum Renderer {
    Quiet,
    Lines {
        details: bool,
        github: Option<Mutex<BTreeMap<String, Vec<String>>>>,
    },
    Bars {
        multi: MultiProgress,
        bars: Mutex<BTreeMap<String, ProgressBar>>,
        details: bool,
    },
}

/// Whether we run in GitHub Actions.
pub(crate) fn github_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

impl Renderer {
    pub(crate) fn new(json: bool, verbose: u8) -> Self {
        let details = verbose > 0;
        if json && !details {
            return Renderer::Quiet;
        }
        if std::io::stderr().is_terminal()
            && !github_actions()
            && std::env::var_os("DEPLOYER_PLAIN_PROGRESS").is_none()
        {
            return Renderer::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
                bars: Mutex::new(BTreeMap::new()),
                details,
            };
        }
        Renderer::Lines {
            details,
            github: github_actions().then(|| Mutex::new(BTreeMap::new())),
        }
    }

    /// Ends the live view (before the summary is printed).
    pub(crate) fn finish(&self) {
        if let Renderer::Bars { bars, .. } = self
            && let Ok(bars) = bars.lock()
        {
            for bar in bars.values() {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }

    fn bar(
        multi: &MultiProgress,
        bars: &Mutex<BTreeMap<String, ProgressBar>>,
        service: &str,
    ) -> Option<ProgressBar> {
        let mut bars = bars.lock().ok()?;
        if let Some(bar) = bars.get(service) {
            return Some(bar.clone());
        }
        let style = ProgressStyle::with_template(
            "{spinner:.cyan} {prefix:<24.bold} {elapsed:>4} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏✓");
        let bar = multi.add(
            ProgressBar::new_spinner()
                .with_style(style)
                .with_prefix(service.to_owned()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bars.insert(service.to_owned(), bar.clone());
        Some(bar)
    }
}

impl ProgressSink for Renderer {
    fn event(&self, event: ProgressEvent) {
        match self {
            Renderer::Quiet => {}
            Renderer::Lines { details, github } => {
                if event.detail && !details {
                    return;
                }
                let at = humantime::format_rfc3339_seconds(event.at);
                let line = format!(
                    "{at} {:<20} {:<6} {}",
                    event.service, event.phase, event.message
                );
                let Some(groups) = github else {
                    eprintln!("{line}");
                    return;
                };
                // GitHub Actions: one collapsible group per service, written when it is done.
                let Ok(mut groups) = groups.lock() else {
                    return;
                };
                groups
                    .entry(event.service.to_string())
                    .or_default()
                    .push(line);
                if event.phase == Phase::Done {
                    let lines = groups.remove(event.service.as_ref()).unwrap_or_default();
                    eprintln!(
                        "::group::{} — {}",
                        event.service,
                        event.message.lines().next().unwrap_or_default()
                    );
                    for line in lines {
                        eprintln!("{line}");
                    }
                    eprintln!("::endgroup::");
                    if let Some(error) = event.message.strip_prefix("failed: ") {
                        eprintln!(
                            "::error title=deployer {}::{}",
                            event.service,
                            escape(error)
                        );
                    }
                }
            }
            Renderer::Bars {
                multi,
                bars,
                details,
            } => {
                let Some(bar) = Self::bar(multi, bars, &event.service) else {
                    return;
                };
                if event.detail {
                    if *details {
                        let _ = multi.println(format!("  {} | {}", event.service, event.message));
                    }
                    return;
                }
                let message = format!(
                    "{:<7} {}",
                    event.phase.to_string(),
                    event.message.lines().next().unwrap_or_default()
                );
                if event.phase == Phase::Done {
                    bar.finish_with_message(message);
                } else {
                    bar.set_message(message);
                }
            }
        }
    }
}

/// Escapes a workflow-command value (`%`, CR, LF).
pub(crate) fn escape(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_command_values_are_escaped() {
        assert_eq!(escape("50% done\nnext"), "50%25 done%0Anext");
    }
}
