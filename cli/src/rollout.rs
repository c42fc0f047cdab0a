//! Running a command's mode through the deploy engine, and what the cli shows of it: the
//! per-service report (the engine's result, the lookups, the exit code of an error), the
//! summary table, the exit status.

use std::sync::Arc;

use deployer_engine::{Action, Mode, ServiceInput, ServiceResult};
use serde::Serialize;

use crate::context::Context;
use crate::exit::Exit;
use crate::inputs::ServiceTag;

/// What happened to one service, as printed in the summary and in `--json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServiceReport {
    #[serde(flatten)]
    pub(crate) result: ServiceResult,
    /// Fields looked up at deploy time, with where each value came from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) resolved: Vec<crate::lookups::Resolved>,
    /// `plan` of an AgentCore service: its named endpoints, the version each serves and the
    /// one a deploy moves it to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) endpoints: Vec<crate::endpoints::EndpointView>,
    pub(crate) error: Option<ErrorReport>,
    /// What would go wrong later although this run is fine: the IaC that owns the target
    /// would put another image back (`plan` and `status` only, `crate::iac`).
    pub(crate) warnings: Vec<String>,
}

/// A failed service's error.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ErrorReport {
    pub(crate) message: String,
    pub(crate) exit_code: u8,
}

impl ServiceReport {
    fn new(ctx: &Context, mut result: ServiceResult) -> Self {
        let error = result.error.take().map(|failure| ErrorReport {
            message: failure.message,
            exit_code: if failure.usage {
                Exit::Usage.code()
            } else {
                Exit::Failure.code()
            },
        });
        ServiceReport {
            resolved: ctx.resolved_for(&result.service),
            endpoints: Vec::new(),
            result,
            error,
            warnings: Vec::new(),
        }
    }

    /// Whether a plan found something to do.
    pub(crate) fn pending_change(&self) -> bool {
        self.error.is_none() && self.result.action != Action::Unchanged
    }
}

/// Runs `mode` for the services of `tags` through the engine; Ctrl-C stops it (the services in
/// flight are reported cancelled). Reports come back in the order of `tags`.
pub(crate) async fn run_all(
    ctx: Arc<Context>,
    tags: Vec<ServiceTag>,
    mode: Mode,
) -> Vec<ServiceReport> {
    let engine = ctx.engine(&tags);
    let inputs: Vec<ServiceInput> = tags
        .into_iter()
        .map(|tag| ServiceInput {
            service: tag.service,
            tag: tag.tag,
            local: tag.local,
            bases: tag.bases,
        })
        .collect();
    let interrupted = async {
        // Without a signal handler (it cannot be installed) the run is simply not interruptible.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let results = engine.run(mode, inputs, interrupted).await;
    // An interrupted run dropped its builds' futures; the builds themselves run on CodeBuild.
    ctx.stop_remote_builds().await;
    results
        .into_iter()
        .map(|result| ServiceReport::new(&ctx, result))
        .collect()
}

/// The exit status of a run: 0 when every service succeeded, 1 when a deploy failed, 2 when
/// every failure was a usage or configuration error.
pub(crate) fn exit_of(reports: &[ServiceReport]) -> Exit {
    let codes: Vec<u8> = reports
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| e.exit_code))
        .collect();
    if codes.is_empty() {
        Exit::Success
    } else if codes.iter().all(|c| *c == Exit::Usage.code()) {
        Exit::Usage
    } else {
        Exit::Failure
    }
}

/// The human summary table.
pub(crate) fn summary(reports: &[ServiceReport]) -> String {
    let mut text = format!(
        "{:<24} {:<13} {:<13} {:<26} {:>8}\n",
        "SERVICE", "KIND", "ACTION", "TAG", "TIME"
    );
    for report in reports {
        let result = &report.result;
        let seconds = result.durations_ms.get("total").copied().unwrap_or(0) as f64 / 1000.0;
        text.push_str(&format!(
            "{:<24} {:<13} {:<13} {:<26} {:>7.1}s\n",
            result.service,
            result.kind.as_str(),
            result.action.as_str().replace('_', " "),
            result.tag,
            seconds
        ));
    }
    for report in reports {
        if let Some(error) = &report.error {
            text.push_str(&format!("\n{}: {}\n", report.result.service, error.message));
        }
        if let Some(diagnosis) = &report.result.diagnosis {
            text.push_str(&crate::diagnosis::text(diagnosis));
        }
        for warning in &report.result.warnings {
            text.push_str(&format!(
                "\n{}: warning: {warning}\n",
                report.result.service
            ));
        }
    }
    text
}
