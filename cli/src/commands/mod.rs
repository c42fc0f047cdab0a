//! One module per command; [`dispatch`] picks it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use deployer_core::Service;
use deployer_core::manifest::{self, Manifest};

use crate::args::{Cli, Command, Global};
use crate::exit::{Exit, UsageError};
use crate::output::Printer;
use crate::targets;

mod build;
mod ci;
mod deploy;
mod hash;
mod iam_policy;
mod logs;
mod plan;
mod rollback;
mod status;
mod validate;
mod wait;

pub(crate) async fn dispatch(cli: Cli, printer: &Printer) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Validate(select) => validate::run(&cli.global, &select.services, printer).await,
        Command::Hash(select) => hash::run(&cli.global, &select.services, printer).await,
        Command::Plan(args) => plan::run(&cli.global, &args, printer).await,
        Command::Build(args) => build::run(&cli.global, &args, printer).await,
        Command::Deploy(args) => deploy::run(&cli.global, &args, printer).await,
        Command::Wait(select) => wait::run(&cli.global, &select.services, printer).await,
        Command::Status(select) => status::run(&cli.global, &select.services, printer).await,
        Command::Logs(args) => logs::run(&cli.global, &args, printer).await,
        Command::Rollback(args) => rollback::run(&cli.global, &args.services, printer).await,
        Command::Ci(args) => ci::run(&cli.global, &args, printer).await,
        Command::IamPolicy(select) => iam_policy::run(&cli.global, &select.services, printer).await,
    }
}

/// Loads the manifest named by `--manifest`, else `deployer.toml` in the current directory
/// or its nearest parent.
pub(crate) fn load_manifest(global: &Global) -> anyhow::Result<Manifest> {
    let path = match &global.manifest {
        Some(path) => path.clone(),
        None => {
            find_manifest(&std::env::current_dir().context("cannot read the current directory")?)?
        }
    };
    Ok(Manifest::load(&path)?)
}

fn find_manifest(start: &Path) -> Result<PathBuf, UsageError> {
    let found = start
        .ancestors()
        .map(|dir| dir.join(manifest::FILE_NAME))
        .find(|candidate| candidate.is_file());
    // In the current directory, name it as the user would: `deployer.toml`.
    found
        .map(|path| {
            if path.parent() == Some(start) {
                PathBuf::from(manifest::FILE_NAME)
            } else {
                path
            }
        })
        .ok_or_else(|| {
            UsageError(format!(
                "no {} in {} or any parent directory; pass --manifest <path>",
                manifest::FILE_NAME,
                start.display()
            ))
        })
}

/// The start of every command that plans, builds or deploys: load the manifest, select
/// services, resolve their lookups (before anything is built), and compute their tags (the
/// repository is listed once).
pub(crate) async fn prepare(
    global: &Global,
    names: &[String],
    builder: Option<deployer_core::manifest::Builder>,
) -> anyhow::Result<(
    std::sync::Arc<crate::context::Context>,
    Vec<crate::inputs::ServiceTag>,
)> {
    prepare_scoped(global, names, builder, false).await
}

/// [`prepare`] for `deployer build`: only the lookups building needs are resolved.
pub(crate) async fn prepare_images(
    global: &Global,
    names: &[String],
    builder: Option<deployer_core::manifest::Builder>,
) -> anyhow::Result<(
    std::sync::Arc<crate::context::Context>,
    Vec<crate::inputs::ServiceTag>,
)> {
    prepare_scoped(global, names, builder, true).await
}

async fn prepare_scoped(
    global: &Global,
    names: &[String],
    builder: Option<deployer_core::manifest::Builder>,
    images_only: bool,
) -> anyhow::Result<(
    std::sync::Arc<crate::context::Context>,
    Vec<crate::inputs::ServiceTag>,
)> {
    let manifest = load_manifest(global)?;
    let selected = selected_names(&manifest, names)?;
    // The tags come first: they are local, so a Dockerfile that copies what `inputs` leave out
    // is reported (exit 2) before any AWS call, lookup or builder probe.
    let services: Vec<&Service> = selected
        .iter()
        .map(|name| &manifest.services[name])
        .collect();
    let tags =
        crate::inputs::tags(&manifest, &services, crate::inputs::Bases::AsConfigured).await?;
    let ctx =
        crate::context::Context::new(global, manifest, &selected, builder, images_only).await?;
    Ok((std::sync::Arc::new(ctx), tags))
}

/// Like [`prepare`] without tags, for commands that act on what is recorded.
pub(crate) async fn prepare_untagged(
    global: &Global,
    names: &[String],
    builder: Option<deployer_core::manifest::Builder>,
) -> anyhow::Result<(std::sync::Arc<crate::context::Context>, Vec<String>)> {
    context(global, names, builder, false).await
}

async fn context(
    global: &Global,
    names: &[String],
    builder: Option<deployer_core::manifest::Builder>,
    images_only: bool,
) -> anyhow::Result<(std::sync::Arc<crate::context::Context>, Vec<String>)> {
    let manifest = load_manifest(global)?;
    let selected = selected_names(&manifest, names)?;
    let ctx =
        crate::context::Context::new(global, manifest, &selected, builder, images_only).await?;
    Ok((std::sync::Arc::new(ctx), selected))
}

fn selected_names(manifest: &Manifest, names: &[String]) -> anyhow::Result<Vec<String>> {
    Ok(select(manifest, names)?
        .iter()
        .map(|s| s.name.clone())
        .collect())
}

/// The services selected by `--service` (all when none), each compiled into this build.
pub(crate) fn select<'m>(
    manifest: &'m Manifest,
    names: &[String],
) -> anyhow::Result<Vec<&'m Service>> {
    let services = manifest.select(names).map_err(UsageError)?;
    for service in &services {
        targets::require(service)?;
    }
    Ok(services)
}

/// After a run: end the live progress view, and in GitHub Actions add the step summary.
pub(crate) fn finish(
    ctx: &crate::context::Context,
    command: &str,
    reports: &[crate::rollout::ServiceReport],
) {
    ctx.finish_progress();
    crate::github::step_summary(command, reports);
}
