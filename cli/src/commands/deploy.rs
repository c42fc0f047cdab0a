//! `deployer deploy`: for each selected service, make its artifact available, roll the live
//! service over when it runs something else, wait until the rollout really succeeded, and
//! record the live tag in SSM.

use serde_json::json;

use deployer_engine::Mode;

use super::finish;
use crate::args::{DeployArgs, Global};
use crate::exit::{Exit, UsageError};
use crate::output::Printer;
use crate::rollout;

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
    // `--changed` deploys what is behind: every selected service goes through the same flow,
    // and the ones that are not behind cost only their reads (no lock, no write).
    let mode = Mode::Deploy {
        wait: !args.no_wait,
    };
    let reports = rollout::run_all(ctx.clone(), tags, mode).await;
    let exit = rollout::exit_of(&reports);
    finish(&ctx, "deploy", &reports);
    printer.result(
        &rollout::summary(&reports),
        &json!({ "services": reports, "ok": exit == Exit::Success }),
    );
    Ok(exit)
}
