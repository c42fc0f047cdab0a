//! `deployer deploy`: for each selected service, make its artifact available, roll the live
//! service over when it runs something else, wait until the rollout really succeeded, and
//! record the live tag in SSM.

use serde_json::json;

use super::finish;
use crate::args::{DeployArgs, Global};
use crate::exit::{Exit, UsageError};
use crate::output::Printer;
use crate::rollout::{self, Mode, ServiceReport};

pub(crate) async fn run(
    global: &Global,
    args: &DeployArgs,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    if args.select.services.is_empty() && !args.all && !args.changed {
        return Err(UsageError(
            "say which services to deploy: --service <name> (repeatable), --all, or --changed"
                .into(),
        )
        .into());
    }
    let (ctx, tags) =
        super::prepare(global, &args.select.services, args.builder.map(Into::into)).await?;
    if args.dry_run {
        let reports = rollout::run_all(ctx.clone(), tags, Mode::Plan).await;
        let exit = rollout::exit_of(&reports);
        finish(&ctx, "deploy", &reports);
        printer.result(
            &rollout::summary(&reports),
            &json!({ "services": reports, "dry_run": true, "ok": exit == Exit::Success }),
        );
        return Ok(exit);
    }
    let mode = Mode::Deploy {
        wait: !args.no_wait,
    };
    let reports = if args.changed {
        // Plan first; deploy only what is behind. The unchanged ones are reported as such.
        let planned = rollout::run_all(ctx.clone(), tags.clone(), Mode::Plan).await;
        let behind: Vec<_> = tags
            .into_iter()
            .zip(&planned)
            .filter(|(_, plan)| plan.error.is_some() || plan.action != "unchanged")
            .map(|(tag, _)| tag)
            .collect();
        let mut deployed = rollout::run_all(ctx.clone(), behind, mode)
            .await
            .into_iter();
        planned
            .into_iter()
            .map(|plan| {
                if plan.action == "unchanged" && plan.error.is_none() {
                    plan
                } else {
                    deployed.next().unwrap_or(plan)
                }
            })
            .collect::<Vec<ServiceReport>>()
    } else {
        rollout::run_all(ctx.clone(), tags, mode).await
    };
    let exit = rollout::exit_of(&reports);
    finish(&ctx, "deploy", &reports);
    printer.result(
        &rollout::summary(&reports),
        &json!({ "services": reports, "ok": exit == Exit::Success }),
    );
    Ok(exit)
}
