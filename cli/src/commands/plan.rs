//! `deployer plan`: per service, the new tag, the tag recorded in SSM, the live artifact,
//! whether the registry has the image, and the action a deploy would take. Writes nothing.

use serde_json::json;

use super::finish;
use crate::args::{Global, PlanArgs};
use crate::exit::Exit;
use crate::output::Printer;
use crate::rollout::{self, Mode, ServiceReport};

pub(crate) async fn run(
    global: &Global,
    args: &PlanArgs,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let (ctx, tags) = super::prepare(global, &args.select.services, None).await?;
    let reports = rollout::run_all(ctx.clone(), tags, Mode::Plan).await;
    let exit = rollout::exit_of(&reports);
    finish(&ctx, "plan", &reports);
    if args.github_matrix {
        let include: Vec<_> = reports
            .iter()
            .filter(|r| r.pending_change())
            .map(|r| json!({ "service": r.service, "kind": r.kind }))
            .collect();
        printer.line(&json!({ "include": include }).to_string());
    } else {
        let names: Vec<String> = reports.iter().map(|r| r.service.clone()).collect();
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

fn table(reports: &[ServiceReport]) -> String {
    let mut text = format!(
        "{:<24} {:<13} {:<13} {:<25} {:<25} {:<9}\n",
        "SERVICE", "KIND", "ACTION", "TAG", "RECORDED TAG (SSM)", "REGISTRY"
    );
    for r in reports {
        let registry = match r.in_registry {
            Some(true) => "has it",
            Some(false) => "missing",
            None => "-",
        };
        text.push_str(&format!(
            "{:<24} {:<13} {:<13} {:<25} {:<25} {:<9}\n",
            r.service,
            r.kind.as_str(),
            r.action,
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
                r.service, resolved.field, resolved.value, resolved.from
            ));
        }
    }
    if !lines.is_empty() {
        text.push('\n');
        text.push_str(&lines.join("\n"));
        text.push('\n');
    }
    for r in reports {
        match (&r.error, &r.live_summary) {
            (Some(error), _) => text.push_str(&format!("\n{}: {}\n", r.service, error.message)),
            (None, Some(summary)) if r.action != "unchanged" => {
                text.push_str(&format!(
                    "\n{}: live {}\n  wanted {}\n",
                    r.service,
                    summary,
                    r.artifact.as_deref().unwrap_or("(to build)")
                ));
            }
            _ => {}
        }
    }
    text
}
