//! Everything the cli writes: results on stdout (text or one JSON document), errors, and the
//! logging set-up for stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{self, Write};

use deployer_core::manifest::ManifestError;
use serde_json::json;
use tracing_subscriber::EnvFilter;

use crate::args::Global;
use crate::exit::Exit;

/// Writes results to stdout in the chosen format.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Printer {
    json: bool,
}

impl Printer {
    pub(crate) fn new(json: bool) -> Self {
        Printer { json }
    }

    /// Prints the result: `text` in human mode, `value` in JSON mode.
    pub(crate) fn result(&self, text: &str, value: &serde_json::Value) {
        if self.json {
            let rendered = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
            stdout_line(&rendered);
        } else if !text.is_empty() {
            stdout_line(text.trim_end_matches('\n'));
        }
    }

    /// Prints one raw line on stdout (both modes), e.g. a GitHub Actions matrix.
    pub(crate) fn line(&self, line: &str) {
        stdout_line(line);
    }

    /// Reports a command's error: JSON on stdout in JSON mode, else text on stderr.
    pub(crate) fn error(&self, error: &anyhow::Error, exit: Exit) {
        if self.json {
            #[cfg_attr(not(feature = "config"), expect(unused_mut))]
            let mut diagnostics: Vec<serde_json::Value> = error
                .chain()
                .find_map(|cause| cause.downcast_ref::<ManifestError>())
                .map(|manifest| manifest.diagnostics().to_vec())
                .unwrap_or_default()
                .iter()
                .filter_map(|d| serde_json::to_value(d).ok())
                .collect();
            // A config service's sources: file, line, JSON pointer, message, rule.
            #[cfg(feature = "config")]
            if let Some(source) = error
                .chain()
                .find_map(|cause| cause.downcast_ref::<deployer_config::SourceError>())
            {
                diagnostics.extend(
                    source
                        .diagnostics()
                        .iter()
                        .filter_map(|d| serde_json::to_value(d).ok()),
                );
            }
            let value = json!({
                "error": {
                    "message": format!("{error:#}"),
                    "exit_code": exit.code(),
                    "diagnostics": diagnostics,
                }
            });
            self.result("", &value);
        } else {
            eprintln!("error: {error:#}");
        }
    }

    /// A warning on stderr (both modes: stdout stays clean).
    pub(crate) fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// Writes one line to stdout; a closed pipe (`deployer hash | head -1`) ends the process with
/// exit code 0, as ripgrep does.
fn stdout_line(line: &str) {
    let mut out = io::stdout().lock();
    if let Err(error) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        if error.kind() == io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {error}");
    }
}

/// Logs (tracing) go to stderr; `-v` raises the level, `DEPLOYER_LOG` overrides it.
pub(crate) fn init_logging(global: &Global) {
    let level = match global.verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("DEPLOYER_LOG").unwrap_or_else(|_| {
        EnvFilter::new(format!(
            "{level},aws_smithy_runtime=warn,aws_config=warn,hyper=warn"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
        .try_init();
}
