//! `deployer plan`: per service, the new tag, the tag recorded in SSM, the live artifact,
//! whether the registry has the image, and the action a deploy would take. Writes nothing.

use std::sync::Arc;

use serde_json::json;
use tokio::task::JoinSet;

use super::finish;
use crate::args::{Global, PlanArgs};
use crate::context::Context;
use crate::exit::Exit;
use crate::output::Printer;
use crate::rollout::{self, ServiceReport};
use crate::targets::CliTargets;
use deployer_engine::Mode;
use deployer_engine::Targets as _;

pub(crate) async fn run(
    global: &Global,
    args: &PlanArgs,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let (ctx, tags) = super::prepare(global, &args.select.services, None).await?;
    let mut reports = rollout::run_all(ctx.clone(), tags, Mode::Plan).await;
    iac_warnings(&ctx, &mut reports).await?;
    for report in &mut reports {
        let Some(service) = ctx.manifest.services.get(&report.result.service) else {
            continue;
        };
        // A deploy moves each endpoint to the runtime's version when the runtime already
        // runs the wanted image, else to the version its update makes.
        let r = &report.result;
        let runtime_runs_it = r.artifact.is_some() && r.artifact == r.old_artifact;
        let version = crate::endpoints::runtime_version(&r.ids);
        report.endpoints = crate::endpoints::views(service, &r.ids, |_| {
            version.clone().filter(|_| runtime_runs_it)
        });
    }
    for report in &reports {
        for warning in &report.warnings {
            crate::github::warning(&report.result.service, warning);
        }
    }
    let exit = rollout::exit_of(&reports);
    finish(&ctx, "plan", &reports);
    if args.github_matrix {
        let include: Vec<_> = reports
            .iter()
            .filter(|r| r.pending_change())
            .map(|r| json!({ "service": r.result.service, "kind": r.result.kind }))
            .collect();
        printer.line(&json!({ "include": include }).to_string());
    } else {
        let names: Vec<String> = reports.iter().map(|r| r.result.service.clone()).collect();
        let stages = ctx.manifest.stages(&names);
        let mut text = table(&reports);
        if stages.len() > 1 {
            text.push_str("\ndeploy order (depends_on): builds run at once; each stage rolls over after the one before succeeded\n");
            for (number, stage) in stages.iter().enumerate() {
                text.push_str(&format!("  {}. {}\n", number + 1, stage.join(", ")));
            }
        }
        printer.result(&text, &json!({ "services": reports, "stages": stages }));
    }
    let pending = reports.iter().any(ServiceReport::pending_change);
    Ok(match exit {
        Exit::Success if args.detailed_exitcode && pending => Exit::Changes,
        other => other,
    })
}

/// The IaC revert guard's warnings of each service that was read (`crate::iac`), at once.
async fn iac_warnings(ctx: &Arc<Context>, reports: &mut [ServiceReport]) -> anyhow::Result<()> {
    let mut tasks = JoinSet::new();
    for (index, report) in reports.iter().enumerate() {
        if report.error.is_some() {
            continue;
        }
        let Some(service) = ctx.manifest.services.get(&report.result.service).cloned() else {
            continue;
        };
        let live = report.result.old_artifact.clone();
        let recorded_tag = report.result.live_tag.clone();
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let warnings = match CliTargets::new(&ctx).deployer(&service) {
                Ok(deployer) => {
                    crate::iac::warnings(
                        &ctx,
                        &service,
                        deployer.as_ref(),
                        live.as_deref(),
                        recorded_tag.as_deref(),
                    )
                    .await
                }
                Err(_) => Vec::new(),
            };
            (index, warnings)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let (index, warnings) = joined?;
        reports[index].warnings = warnings;
    }
    Ok(())
}

fn table(reports: &[ServiceReport]) -> String {
    let mut text = format!(
        "{:<24} {:<13} {:<13} {:<25} {:<25} {:<9}\n",
        "SERVICE", "KIND", "ACTION", "TAG", "RECORDED TAG (SSM)", "REGISTRY"
    );
    for report in reports {
        let r = &report.result;
        let registry = match r.in_registry {
            Some(true) => "has it",
            Some(false) => "missing",
            None => "-",
        };
        text.push_str(&format!(
            "{:<24} {:<13} {:<13} {:<25} {:<25} {:<9}\n",
            r.service,
            r.kind.as_str(),
            r.action.as_str(),
            r.tag,
            r.live_tag.as_deref().unwrap_or("-"),
            registry
        ));
    }
    // Lookups: the project's once, then each service's own.
    let mut lines = Vec::new();
    if let Some(first) = reports.first() {
        for resolved in first.resolved.iter().filter(|r| r.service.is_none()) {
            lines.push(format!(
                "[project] {} = {}  (from {})",
                resolved.field, resolved.value, resolved.from
            ));
        }
    }
    for r in reports {
        for resolved in r.resolved.iter().filter(|r| r.service.is_some()) {
            lines.push(format!(
                "{}: {} = {}  (from {})",
                r.result.service, resolved.field, resolved.value, resolved.from
            ));
        }
    }
    if !lines.is_empty() {
        text.push('\n');
        text.push_str(&lines.join("\n"));
        text.push('\n');
    }
    for report in reports {
        let r = &report.result;
        match (&report.error, &r.live_summary) {
            (Some(error), _) => text.push_str(&format!("\n{}: {}\n", r.service, error.message)),
            (None, Some(summary)) if r.action != deployer_engine::Action::Unchanged => {
                text.push_str(&format!(
                    "\n{}: live {}\n  wanted {}\n",
                    r.service,
                    summary,
                    r.artifact.as_deref().unwrap_or("(to build)")
                ));
            }
            _ => {}
        }
        for endpoint in &report.endpoints {
            text.push_str(&format!("{}: {}\n", r.service, endpoint.line()));
        }
        for moved in &r.moved_bases {
            text.push_str(&format!("{}: base image moved: {moved}\n", r.service));
        }
        if let Some(changes) = &r.changes {
            text.push_str(&changes_text(&r.service, changes));
        }
    }
    // The IaC revert guard: what the next IaC deploy would do to the image.
    let warnings: Vec<String> = reports
        .iter()
        .flat_map(|report| {
            let service = &report.result.service;
            report
                .warnings
                .iter()
                .map(move |warning| format!("{service}: warning: {warning}\n"))
        })
        .collect();
    if !warnings.is_empty() {
        text.push('\n');
        text.push_str(&warnings.concat());
    }
    text
}

/// A config service's items as a deploy would change them: one line per item written,
/// deleted, kept or not owned, the attributes that change (secret values hidden), then the
/// count of unchanged items (`--json` lists every item).
pub(crate) fn changes_text(service: &str, changes: &deployer_core::Changes) -> String {
    use deployer_core::Change;
    let mut text = format!("{service}: {}\n", changes.summary());
    for item in &changes.items {
        let (mark, note) = match item.change {
            Change::Added => ("+", ""),
            Change::Changed => ("~", ""),
            Change::Adopted => ("~", "  (adopted: it has no owner mark; `adopt = true`)"),
            Change::Removed => ("-", ""),
            Change::Kept => (
                "=",
                "  (kept: no longer in the source; `prune = true` deletes it)",
            ),
            Change::NotOwned => (
                "!",
                "  (not owned: written by IaC, by hand or by another service; not changed)",
            ),
            Change::Unchanged => continue,
        };
        text.push_str(&format!("  {mark} {}{note}\n", item.item));
        for attribute in &item.attributes {
            text.push_str(&format!(
                "      {}: {} → {}\n",
                attribute.name,
                attribute.old.as_deref().unwrap_or("(none)"),
                attribute.new.as_deref().unwrap_or("(none)")
            ));
        }
    }
    let unchanged = changes.count(Change::Unchanged);
    if unchanged > 0 {
        text.push_str(&format!("  = {unchanged} unchanged\n"));
    }
    text
}
