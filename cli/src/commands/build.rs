//! `deployer build`: make each image service's image available in the registry — hash, ask the
//! registry, build and push only what it lacks — and build the zips. Idempotent: a second run
//! with no change builds and pushes nothing and says so.

use serde_json::json;

use super::finish;
use crate::args::{BuildArgs, Global};
use crate::exit::Exit;
use crate::output::Printer;
use crate::rollout;
use deployer_engine::{Action, Mode};

pub(crate) async fn run(
    global: &Global,
    args: &BuildArgs,
    printer: &Printer,
) -> anyhow::Result<Exit> {
    let (ctx, tags) =
        super::prepare_images(global, &args.select.services, args.builder.map(Into::into)).await?;
    let mode = Mode::Build {
        dry_run: args.dry_run,
    };
    let reports = rollout::run_all(ctx.clone(), tags, mode).await;
    finish(&ctx, "build", &reports);
    let built = reports
        .iter()
        .filter(|r| r.result.built && r.result.kind.is_image())
        .count();
    let mut text = rollout::summary(&reports);
    if !args.dry_run {
        text.push_str(&format!(
            "\n{built} image(s) built and pushed, {} already in the registry\n",
            reports
                .iter()
                .filter(|r| r.result.action == Action::InRegistry)
                .count()
        ));
    }
    printer.result(
        &text,
        &json!({ "services": reports, "images_built": built }),
    );
    Ok(rollout::exit_of(&reports))
}
