//! `deployer wait`: wait for the rollouts `deploy --no-wait` started, then record them.

use serde_json::json;

use super::finish;
use crate::args::Global;
use crate::exit::Exit;
use crate::inputs::ServiceTag;
use crate::output::Printer;
use crate::rollout;
use deployer_engine::Mode;

pub(crate) async fn run(
    global: &Global,
    names: &[String],
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let (ctx, selected) = super::prepare_untagged(global, names, None).await?;
    let tags: Vec<ServiceTag> = selected
        .iter()
        .map(|name| ServiceTag::untagged(&ctx.manifest.services[name]))
        .collect();
    let reports = rollout::run_all(ctx.clone(), tags, Mode::Wait).await;
    let exit = rollout::exit_of(&reports);
    finish(&ctx, "wait", &reports);
    printer.result(
        &rollout::summary(&reports),
        &json!({ "services": reports, "ok": exit == Exit::Success }),
    );
    Ok(exit)
}
