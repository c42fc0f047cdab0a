//! `deployer rollback --service S`: back to the last *successful* deploy recorded before the
//! current one (not "revision minus one"), with the same update and wait as a deploy.

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
    let reports = rollout::run_all(ctx.clone(), tags, Mode::Rollback).await;
    let exit = rollout::exit_of(&reports);
    finish(&ctx, "rollback", &reports);
    printer.result(
        &rollout::summary(&reports),
        &json!({ "services": reports, "ok": exit == Exit::Success }),
    );
    Ok(exit)
}
