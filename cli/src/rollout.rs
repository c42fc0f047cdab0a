//! One service's way through a run — plan, build, deploy, wait or roll back — and the loop that
//! runs every selected service concurrently (at most `project.concurrency` at once), each
//! independently of the others, and stops starting new work on Ctrl-C.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use deployer_core::manifest::SsmWrite;
use deployer_core::{
    Action, Applied, Artifact, Deployer, ImageArtifact, LiveState, Phase, Progress, Service,
};
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::context::Context;
use crate::exit::{Exit, UsageError, classify};
use crate::inputs::ServiceTag;
use crate::state::{self, DeployRecord, LastOutcome, PendingRecord};
use crate::targets;

/// What happened to one service, as printed in the summary and in `--json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServiceReport {
    pub(crate) service: String,
    pub(crate) kind: deployer_core::Kind,
    /// `updated`, `unchanged`, `started`, `rolled_back`, `built`, `in_registry`, `would_build`,
    /// `build+deploy`, `deploy`, `failed`, `cancelled`.
    pub(crate) action: String,
    pub(crate) tag: String,
    /// Whether an image was built (or a zip packaged) in this run.
    pub(crate) built: bool,
    /// The artifact identity deployed or to deploy (digest-pinned image URI, or CodeSha256).
    pub(crate) artifact: Option<String>,
    /// Whether the registry has the image (image services, plan and deploy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) in_registry: Option<bool>,
    /// The tag recorded in SSM before this run.
    pub(crate) live_tag: Option<String>,
    pub(crate) old_artifact: Option<String>,
    pub(crate) new_artifact: Option<String>,
    /// The live state in one line (plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) live_summary: Option<String>,
    pub(crate) ids: BTreeMap<String, String>,
    /// Fields looked up at deploy time, with where each value came from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) resolved: Vec<crate::lookups::Resolved>,
    pub(crate) ssm_parameter: String,
    /// Whether this run wrote the tag parameter.
    pub(crate) ssm_written: bool,
    pub(crate) durations_ms: BTreeMap<&'static str, u64>,
    /// Milliseconds since the run started: `rollover_started`, `finished` (deploys).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) timeline: BTreeMap<&'static str, u64>,
    /// The deploy stage (0 first) given by `depends_on`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) stage: Option<usize>,
    /// The smoke check after the rollout, when the service has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) smoke: Option<SmokeReport>,
    pub(crate) error: Option<ErrorReport>,
}

/// What the smoke check said.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SmokeReport {
    pub(crate) ok: bool,
    /// Its output, secrets redacted.
    pub(crate) output: String,
    /// When it failed and `rollback_on_smoke_failure` is set: the artifact rolled back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rolled_back_to: Option<String>,
}

/// A failed service's error.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ErrorReport {
    pub(crate) message: String,
    pub(crate) exit_code: u8,
}

impl ServiceReport {
    fn new(ctx: &Context, service: &Service, tag: &ServiceTag) -> Self {
        ServiceReport {
            service: service.name.clone(),
            kind: service.kind,
            action: String::new(),
            tag: tag.tag.clone(),
            built: false,
            artifact: None,
            in_registry: None,
            live_tag: None,
            old_artifact: None,
            new_artifact: None,
            live_summary: None,
            ids: BTreeMap::new(),
            resolved: ctx.resolved_for(&service.name),
            ssm_parameter: service.tag_parameter(&ctx.manifest.project),
            ssm_written: false,
            durations_ms: BTreeMap::new(),
            timeline: BTreeMap::new(),
            stage: None,
            smoke: None,
            error: None,
        }
    }

    fn fail(&mut self, error: &anyhow::Error) {
        self.action = "failed".into();
        self.error = Some(ErrorReport {
            message: format!("{error:#}"),
            exit_code: classify(error).code(),
        });
    }

    /// Whether a plan found something to do.
    pub(crate) fn pending_change(&self) -> bool {
        self.error.is_none() && self.action != "unchanged"
    }
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

/// What to do with each service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Read only: tag, SSM, registry, live state → the action a deploy would take.
    Plan,
    /// Make the artifact available only (`deployer build`).
    Build,
    /// Only ask the registry (`deployer build --dry-run`).
    BuildDryRun,
    /// Artifact, rollover, wait (unless `wait` is false), record.
    Deploy {
        /// Wait for the rollout; without, the rollout is recorded as pending for `deployer wait`.
        wait: bool,
    },
    /// Wait for a rollout started with `--no-wait`, then record it.
    Wait,
    /// Roll back to the previous successful deploy recorded.
    Rollback,
}

/// Runs `mode` for every service, at most `project.concurrency` at once; one service's failure
/// does not stop the others. On Ctrl-C no new service starts and the ones in flight are stopped
/// and reported as cancelled (nothing is recorded for them). Reports come back in the order of
/// `tags`.
pub(crate) async fn run_all(
    ctx: Arc<Context>,
    tags: Vec<ServiceTag>,
    mode: Mode,
) -> Vec<ServiceReport> {
    let names: Vec<String> = tags.iter().map(|t| t.service.clone()).collect();
    let stages = ctx.manifest.stages(&names);
    let stage_of: BTreeMap<String, usize> = stages
        .iter()
        .enumerate()
        .flat_map(|(stage, services)| services.iter().map(move |name| (name.clone(), stage)))
        .collect();
    let run = Arc::new(Run {
        permits: Semaphore::new(ctx.manifest.project.concurrency),
        stopping: AtomicBool::new(false),
        gates: names
            .iter()
            .map(|name| (name.clone(), watch::channel(None).0))
            .collect(),
        selected: names.iter().cloned().collect(),
        started: Instant::now(),
    });
    let mut tasks = JoinSet::new();
    let mut pending: BTreeMap<usize, ServiceReport> = BTreeMap::new();
    // Earlier stages first, so that they get the first permits.
    let mut order: Vec<(usize, ServiceTag)> = tags.into_iter().enumerate().collect();
    order.sort_by_key(|(index, tag)| (stage_of.get(&tag.service).copied().unwrap_or(0), *index));
    for (index, tag) in order {
        let service = &ctx.manifest.services[&tag.service];
        let mut cancelled = ServiceReport::new(&ctx, service, &tag);
        cancelled.action = "cancelled".into();
        cancelled.stage = stage_of.get(&tag.service).copied();
        pending.insert(index, cancelled);
        let (ctx, run) = (ctx.clone(), run.clone());
        let stage = stage_of.get(&tag.service).copied();
        tasks.spawn(async move {
            let mut report = run_one(&ctx, &run, &tag, mode).await;
            if let Some(report) = report.as_mut() {
                report.stage = stage;
            }
            (index, report)
        });
    }
    let mut reports: BTreeMap<usize, ServiceReport> = BTreeMap::new();
    let interrupt = tokio::signal::ctrl_c();
    tokio::pin!(interrupt);
    let mut interrupted = false;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok((index, Some(report)))) => { reports.insert(index, report); }
                Some(Ok((_, None))) => {}
                Some(Err(error)) if error.is_cancelled() => {}
                Some(Err(error)) => tracing::error!("a service task panicked: {error}"),
                None => break,
            },
            _ = &mut interrupt, if !interrupted => {
                interrupted = true;
                run.stopping.store(true, Ordering::SeqCst);
                tracing::warn!("interrupted: starting nothing new, stopping what is in flight");
                tasks.abort_all();
            }
        }
    }
    for (index, mut cancelled) in pending {
        if let Some(report) = reports.remove(&index) {
            reports.insert(index, report);
            continue;
        }
        let phase = ctx.last_phase(&cancelled.service);
        let error = anyhow!(
            "interrupted{}: nothing was recorded for it; if a rollout had started it may still be running — check with `deployer status`",
            phase.map(|p| format!(" during {p}")).unwrap_or_default()
        );
        cancelled.fail(&error);
        cancelled.action = "cancelled".into();
        cancelled.error = cancelled.error.map(|mut e| {
            e.exit_code = Exit::Failure.code();
            e
        });
        reports.insert(index, cancelled);
    }
    let mut reports: Vec<ServiceReport> = reports.into_values().collect();
    if mode == Mode::Plan {
        mark_restarts(&ctx, &mut reports);
    }
    reports
}

/// What the services of one run share: the concurrency permits, the Ctrl-C flag, and one gate
/// per service that its dependants wait on.
struct Run {
    permits: Semaphore,
    stopping: AtomicBool,
    gates: BTreeMap<String, watch::Sender<Option<Gate>>>,
    selected: BTreeSet<String>,
    started: Instant,
}

/// How a service's rollover ended, for the services that depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    /// It succeeded; `changed`: it was rolled over (or restarted), not unchanged.
    Succeeded { changed: bool },
    /// It failed, was skipped or cancelled.
    Failed,
}

impl Run {
    /// Opens `service`'s gate for its dependants.
    fn open(&self, service: &str, gate: Gate) {
        if let Some(sender) = self.gates.get(service) {
            sender.send_replace(Some(gate));
        }
    }

    /// Waits for every selected service `service` depends on (directly or not). `Err` names a
    /// dependency that did not succeed; `Ok(true)` when one of them changed.
    async fn dependencies(&self, ctx: &Context, service: &Service) -> Result<bool, String> {
        let mut changed = false;
        for dependency in ctx.manifest.dependencies_of(&service.name) {
            if !self.selected.contains(&dependency) {
                continue;
            }
            let Some(sender) = self.gates.get(&dependency) else {
                continue;
            };
            let mut receiver = sender.subscribe();
            let gate = match receiver.wait_for(Option::is_some).await {
                Ok(gate) => *gate,
                Err(_) => Some(Gate::Failed),
            };
            match gate {
                Some(Gate::Succeeded { changed: true }) => changed = true,
                Some(Gate::Succeeded { changed: false }) => {}
                _ => return Err(dependency),
            }
        }
        Ok(changed)
    }

    fn since_start(&self) -> u64 {
        ms(self.started)
    }
}

/// Runs `mode` for one service. For a deploy: the artifact is made available at once; the
/// rollover waits until the services it depends on succeeded (without holding a concurrency
/// permit meanwhile), and is skipped when one of them failed.
async fn run_one(ctx: &Context, run: &Run, tag: &ServiceTag, mode: Mode) -> Option<ServiceReport> {
    let service = &ctx.manifest.services[&tag.service];
    let progress = ctx.progress(&service.name);
    let mut report = ServiceReport::new(ctx, service, tag);
    let start = Instant::now();
    let permit = run.permits.acquire().await.ok()?;
    if run.stopping.load(Ordering::SeqCst) {
        return None;
    }
    let result = match mode {
        Mode::Plan => plan(ctx, service, tag, &progress, &mut report).await,
        Mode::Build | Mode::BuildDryRun => {
            build(
                ctx,
                service,
                tag,
                &progress,
                &mut report,
                mode == Mode::BuildDryRun,
            )
            .await
        }
        Mode::Deploy { wait } => {
            let artifact = prepare_for_deploy(ctx, service, tag, &progress, &mut report).await;
            drop(permit);
            match artifact {
                Err(error) => Err(error),
                Ok(prepared) => match run.dependencies(ctx, service).await {
                    Err(dependency) => {
                        report.action = "skipped".into();
                        Err(anyhow!(
                            "skipped: the service it depends on, `{dependency}`, did not deploy"
                        ))
                    }
                    Ok(dependency_changed) => {
                        let _permit = run.permits.acquire().await.ok()?;
                        if run.stopping.load(Ordering::SeqCst) {
                            return None;
                        }
                        let restart = dependency_changed && service.restart_on_dependency_change;
                        match ctx.lock(service, &progress).await {
                            Err(error) => Err(error.into()),
                            Ok(lock) => {
                                report
                                    .timeline
                                    .insert("rollover_started", run.since_start());
                                let result = rollover(
                                    ctx,
                                    service,
                                    tag,
                                    prepared,
                                    &progress,
                                    &mut report,
                                    wait,
                                    restart,
                                )
                                .await;
                                report.timeline.insert("finished", run.since_start());
                                lock.release().await;
                                result
                            }
                        }
                    }
                },
            }
        }
        Mode::Wait | Mode::Rollback => match ctx.lock(service, &progress).await {
            Err(error) => Err(error.into()),
            Ok(lock) => {
                let result = if mode == Mode::Wait {
                    wait_pending(ctx, service, &progress, &mut report).await
                } else {
                    rollback(ctx, service, &progress, &mut report).await
                };
                lock.release().await;
                result
            }
        },
    };
    report.durations_ms.insert("total", ms(start));
    match result {
        Err(error) => {
            let skipped = report.action == "skipped";
            progress.emit(
                Phase::Done,
                format!("{}{error:#}", if skipped { "" } else { "failed: " }),
            );
            report.fail(&error);
            if skipped {
                report.action = "skipped".into();
            }
            if matches!(mode, Mode::Deploy { .. } | Mode::Wait | Mode::Rollback) && !skipped {
                note_failure(ctx, service, &report).await;
            }
            run.open(&service.name, Gate::Failed);
        }
        Ok(()) => {
            progress.emit(Phase::Done, report.action.replace('_', " "));
            let changed = !matches!(report.action.as_str(), "unchanged" | "nothing_pending");
            run.open(&service.name, Gate::Succeeded { changed });
        }
    }
    Some(report)
}

/// `plan`: a service that is unchanged itself but restarts when a dependency changes shows
/// `restart` when one of its dependencies has a change pending.
fn mark_restarts(ctx: &Context, reports: &mut [ServiceReport]) {
    let changing: BTreeSet<String> = reports
        .iter()
        .filter(|r| r.pending_change())
        .map(|r| r.service.clone())
        .collect();
    for report in reports.iter_mut() {
        let service = &ctx.manifest.services[&report.service];
        if report.action == "unchanged"
            && service.restart_on_dependency_change
            && ctx
                .manifest
                .dependencies_of(&service.name)
                .iter()
                .any(|d| changing.contains(d))
        {
            report.action = "restart".into();
        }
    }
}

/// The artifact of a service, available for deploying.
struct Prepared {
    artifact: Artifact,
    built: bool,
}

async fn prepare(
    ctx: &Context,
    service: &Service,
    tag: &ServiceTag,
    progress: &Progress,
    report: &mut ServiceReport,
) -> anyhow::Result<Prepared> {
    if let Some(zip) = &tag.zip {
        return Ok(Prepared {
            artifact: Artifact::Zip(zip.clone()),
            built: false,
        });
    }
    image(ctx, service, tag, progress, report).await
}

#[cfg(feature = "image")]
fn image_request(
    ctx: &Context,
    service: &Service,
    tag: &ServiceTag,
) -> anyhow::Result<deployer_image::ImageRequest> {
    let build = service
        .image
        .as_ref()
        .context("an image service without image settings")?;
    let root = &ctx.manifest.root;
    Ok(deployer_image::ImageRequest {
        service: service.name.clone(),
        repository: build.repository.clone(),
        tag: tag.tag.clone(),
        dockerfile: root.join(&build.dockerfile),
        context: root.join(&build.context),
        platform: build.platform.to_string(),
        build_args: build.build_args.clone(),
    })
}

#[cfg(feature = "image")]
async fn image(
    ctx: &Context,
    service: &Service,
    tag: &ServiceTag,
    progress: &Progress,
    report: &mut ServiceReport,
) -> anyhow::Result<Prepared> {
    let pipeline = ctx.images.as_ref().context("no registry in [project]")?;
    let image = pipeline
        .ensure(&image_request(ctx, service, tag)?, progress)
        .await?;
    report.durations_ms.insert("check", image.check_ms);
    report.in_registry = Some(true);
    if image.built {
        report.durations_ms.insert("build", image.build_ms);
        report.durations_ms.insert("push", image.push_ms);
    }
    Ok(Prepared {
        artifact: Artifact::Image(image.artifact),
        built: image.built,
    })
}

#[cfg(not(feature = "image"))]
async fn image(
    _: &Context,
    service: &Service,
    _: &ServiceTag,
    _: &Progress,
    _: &mut ServiceReport,
) -> anyhow::Result<Prepared> {
    Err(no_image_support(service))
}

#[cfg(not(feature = "image"))]
fn no_image_support(service: &Service) -> anyhow::Error {
    targets::require(service).err().map_or_else(
        || anyhow!("no image support in this build"),
        anyhow::Error::new,
    )
}

/// The image in the registry, without building: `(repository_uri, digest)`.
#[cfg(feature = "image")]
async fn registry_image(
    ctx: &Context,
    service: &Service,
    tag: &str,
) -> anyhow::Result<(String, Option<String>)> {
    let build = service
        .image
        .as_ref()
        .context("an image service without image settings")?;
    let pipeline = ctx.images.as_ref().context("no registry in [project]")?;
    let digest = pipeline.check(&build.repository, tag).await?;
    Ok((pipeline.repository_uri(&build.repository), digest))
}

#[cfg(not(feature = "image"))]
async fn registry_image(
    _: &Context,
    service: &Service,
    _: &str,
) -> anyhow::Result<(String, Option<String>)> {
    Err(no_image_support(service))
}

async fn plan(
    ctx: &Context,
    service: &Service,
    tag: &ServiceTag,
    progress: &Progress,
    report: &mut ServiceReport,
) -> anyhow::Result<()> {
    let target = targets::deployer(ctx, service)?;
    let start = Instant::now();
    let (live_tag, live, wanted) = tokio::try_join!(
        async {
            ctx.state
                .get(&report.ssm_parameter)
                .await
                .map_err(anyhow::Error::new)
        },
        async {
            progress.emit(Phase::Read, format!("reading {}", target.target()));
            target.read_live().await.map_err(anyhow::Error::new)
        },
        async {
            match &tag.zip {
                Some(zip) => Ok(Some(Artifact::Zip(zip.clone()))),
                None => {
                    let (repository_uri, digest) = registry_image(ctx, service, &tag.tag).await?;
                    Ok::<_, anyhow::Error>(digest.map(|digest| {
                        Artifact::Image(ImageArtifact {
                            repository_uri,
                            tag: tag.tag.clone(),
                            digest: Some(digest),
                        })
                    }))
                }
            }
        },
    )?;
    report.durations_ms.insert("read", ms(start));
    report.live_tag = live_tag;
    report.old_artifact = live.artifact.clone();
    report.live_summary = Some(live.summary.clone());
    report.ids = live.ids.clone();
    if tag.zip.is_none() {
        report.in_registry = Some(wanted.is_some());
    }
    report.artifact = wanted.as_ref().map(Artifact::deploy_id);
    report.action = match &wanted {
        Some(artifact) if target.is_current(&live, artifact) => "unchanged",
        Some(_) => "deploy",
        None => "build+deploy",
    }
    .into();
    Ok(())
}

async fn build(
    ctx: &Context,
    service: &Service,
    tag: &ServiceTag,
    progress: &Progress,
    report: &mut ServiceReport,
    dry_run: bool,
) -> anyhow::Result<()> {
    if dry_run {
        if tag.zip.is_some() {
            report.action = "would_build".into();
            return Ok(());
        }
        let (repository_uri, digest) = registry_image(ctx, service, &tag.tag).await?;
        report.in_registry = Some(digest.is_some());
        report.action = if digest.is_some() {
            "in_registry"
        } else {
            "would_build"
        }
        .into();
        report.artifact = digest.map(|d| format!("{repository_uri}@{d}"));
        return Ok(());
    }
    let prepared = prepare(ctx, service, tag, progress, report).await?;
    report.built = prepared.built || tag.zip.is_some();
    report.artifact = Some(prepared.artifact.deploy_id());
    report.action = if report.built { "built" } else { "in_registry" }.into();
    if ctx.manifest.project.ssm_write == SsmWrite::AfterPush
        && matches!(prepared.artifact, Artifact::Image(_))
    {
        record_tag(ctx, &tag.tag, progress, report).await?;
    }
    Ok(())
}

/// The artifact for a deploy, recorded right away in `after-push` mode.
async fn prepare_for_deploy(
    ctx: &Context,
    service: &Service,
    tag: &ServiceTag,
    progress: &Progress,
    report: &mut ServiceReport,
) -> anyhow::Result<Prepared> {
    let prepared = prepare(ctx, service, tag, progress, report).await?;
    report.built = prepared.built;
    report.artifact = Some(prepared.artifact.deploy_id());
    if ctx.manifest.project.ssm_write == SsmWrite::AfterPush
        && matches!(prepared.artifact, Artifact::Image(_))
    {
        record_tag(ctx, &tag.tag, progress, report).await?;
    }
    Ok(prepared)
}

/// Rolls the live service over to the prepared artifact (or restarts it on the artifact it
/// runs, when `restart`), waits, smoke-checks, and records.
#[allow(clippy::too_many_arguments)]
async fn rollover(
    ctx: &Context,
    service: &Service,
    tag: &ServiceTag,
    prepared: Prepared,
    progress: &Progress,
    report: &mut ServiceReport,
    wait: bool,
    restart: bool,
) -> anyhow::Result<()> {
    let target = targets::deployer(ctx, service)?;
    if !wait {
        return start_only(
            ctx,
            service,
            target.as_ref(),
            &prepared.artifact,
            &tag.tag,
            progress,
            report,
        )
        .await;
    }
    if let Some(done) = mutable_tag_unchanged(
        ctx,
        service,
        tag,
        &prepared,
        target.as_ref(),
        progress,
        report,
        restart,
    )
    .await?
    {
        return done;
    }
    let outcome = deployer_core::deploy_with(
        target.as_ref(),
        &prepared.artifact,
        progress,
        &service.wait_policy(),
        restart,
    )
    .await?;
    report.durations_ms.insert("read", outcome.read_ms);
    report.durations_ms.insert("apply", outcome.apply_ms);
    report.durations_ms.insert("wait", outcome.wait_ms);
    report.old_artifact = outcome.old_artifact.clone();
    report.new_artifact = outcome.new_artifact.clone();
    report.ids = outcome.ids.clone();
    report.action = match outcome.action {
        Action::Updated => "updated",
        Action::Unchanged => "unchanged",
        Action::Restarted => "restarted",
    }
    .into();
    if outcome.action == Action::Updated
        && let Some(smoke) = &service.smoke
    {
        smoke_check(
            ctx,
            service,
            smoke,
            target.as_ref(),
            &outcome,
            progress,
            report,
        )
        .await?;
    }
    // The rollout succeeded (or the service already ran this artifact): only now may IaC see it.
    let record = DeployRecord {
        tag: tag.tag.clone(),
        artifact: outcome
            .new_artifact
            .unwrap_or_else(|| prepared.artifact.deploy_id()),
        ids: outcome.ids,
        at: state::now(),
    };
    let action = report.action.clone();
    record_success(ctx, service, record, &action, progress, report).await
}

/// ECS `force_new_deployment`: the task definition runs a mutable tag (`repo:latest`), so the
/// live image names no content. Unchanged is decided by the last deploy recorded; otherwise the
/// mutable tag is pointed at the new image's digest in the registry before the forced
/// deployment pulls it. Returns `Some` when the service is unchanged (and so done).
#[allow(clippy::too_many_arguments)]
async fn mutable_tag_unchanged(
    ctx: &Context,
    service: &Service,
    tag: &ServiceTag,
    prepared: &Prepared,
    target: &dyn Deployer,
    progress: &Progress,
    report: &mut ServiceReport,
    restart: bool,
) -> anyhow::Result<Option<anyhow::Result<()>>> {
    let deployer_core::manifest::Target::Ecs(ecs) = &service.target else {
        return Ok(None);
    };
    let Artifact::Image(image) = &prepared.artifact else {
        return Ok(None);
    };
    if !ecs.force_new_deployment {
        return Ok(None);
    }
    let live = target.read_live().await?;
    let live_image = live.artifact.clone().unwrap_or_default();
    let (live_repository, mutable) = match live_image.rsplit_once(':') {
        Some((repository, tag)) if !tag.contains('/') && !live_image.contains('@') => {
            (repository.to_owned(), tag.to_owned())
        }
        _ => {
            return Err(UsageError(format!(
                "`force_new_deployment` needs the task definition to run a mutable tag (like `{}:latest`), but it runs {live_image}",
                image.repository_uri
            ))
            .into());
        }
    };
    if live_repository != image.repository_uri {
        return Err(UsageError(format!(
            "`force_new_deployment`: the service runs {live_image}, not an image of {}",
            image.repository_uri
        ))
        .into());
    }
    let name = state::state_parameter(&ctx.manifest.project, service);
    let recorded = ctx.state.service_state(&name).await?.current;
    if !restart && recorded.as_ref().is_some_and(|r| r.tag == tag.tag) {
        report.action = "unchanged".into();
        report.old_artifact = live.artifact.clone();
        report.new_artifact = live.artifact.clone();
        report.ids = live.ids.clone();
        progress.emit(
            Phase::Done,
            format!("unchanged: {live_image} was last deployed as {}", tag.tag),
        );
        return Ok(Some(record_tag(ctx, &tag.tag, progress, report).await));
    }
    let digest = image
        .digest
        .clone()
        .context("the image has no digest to tag")?;
    let repository = service
        .image
        .as_ref()
        .map(|i| i.repository.clone())
        .unwrap_or_default();
    image_retag(ctx, &repository, &digest, &mutable, progress).await?;
    Ok(None)
}

#[cfg(feature = "image")]
async fn image_retag(
    ctx: &Context,
    repository: &str,
    digest: &str,
    tag: &str,
    progress: &Progress,
) -> anyhow::Result<()> {
    let pipeline = ctx.images.as_ref().context("no registry in [project]")?;
    Ok(pipeline.retag(repository, digest, tag, progress).await?)
}

#[cfg(not(feature = "image"))]
async fn image_retag(_: &Context, _: &str, _: &str, _: &str, _: &Progress) -> anyhow::Result<()> {
    anyhow::bail!("no image support in this build")
}

/// Runs the smoke check after a rollout. On failure the service fails; with
/// `rollback_on_smoke_failure` it is first rolled back to the previous successful deploy (and
/// that rollout waited for). Nothing is recorded for the failed artifact either way.
async fn smoke_check(
    ctx: &Context,
    service: &Service,
    smoke: &deployer_core::manifest::Smoke,
    target: &dyn Deployer,
    outcome: &deployer_core::Outcome,
    progress: &Progress,
    report: &mut ServiceReport,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let result = crate::smoke::run(ctx, service, smoke, &outcome.ids, progress).await;
    report.durations_ms.insert("smoke", ms(start));
    let error = match result {
        Ok(output) => {
            progress.emit(Phase::Done, "smoke check passed");
            report.smoke = Some(SmokeReport {
                ok: true,
                output,
                rolled_back_to: None,
            });
            return Ok(());
        }
        Err(error) => error,
    };
    report.smoke = Some(SmokeReport {
        ok: false,
        output: format!("{error:#}"),
        rolled_back_to: None,
    });
    if !service.rollback_on_smoke_failure {
        return Err(error.context("the rollout succeeded but its smoke check failed; nothing was recorded (deployer status shows the drift)"));
    }
    // Back to the last successful deploy recorded, else to what ran before this rollout.
    let name = state::state_parameter(&ctx.manifest.project, service);
    let recorded = ctx.state.service_state(&name).await?.current;
    let previous = match recorded {
        Some(record) => record,
        None => DeployRecord {
            tag: String::new(),
            artifact: outcome
                .old_artifact
                .clone()
                .context("no earlier artifact to roll back to")?,
            ids: BTreeMap::new(),
            at: String::new(),
        },
    };
    progress.emit(
        Phase::Apply,
        format!("smoke check failed: rolling back to {}", previous.artifact),
    );
    let live = target.read_live().await?;
    let applied = match recorded_artifact(&previous) {
        Some(artifact) => target.apply(&live, &artifact, progress).await?,
        None => {
            let applied = Applied {
                old_artifact: live.artifact.clone(),
                new_artifact: previous.artifact.clone(),
                ids: previous.ids.clone(),
            };
            target.rollback(&live, &applied, progress).await?
        }
    };
    target
        .wait(&applied, &service.wait_policy(), progress)
        .await
        .context("the rollback after the failed smoke check failed")?;
    if let Some(smoke) = report.smoke.as_mut() {
        smoke.rolled_back_to = Some(previous.artifact.clone());
    }
    report.new_artifact = Some(previous.artifact.clone());
    Err(error.context(format!("rolled back to {}", previous.artifact)))
}

/// `--no-wait`: read, decide, apply, and record the started rollout for `deployer wait`.
async fn start_only(
    ctx: &Context,
    service: &Service,
    target: &dyn Deployer,
    wanted: &Artifact,
    tag: &str,
    progress: &Progress,
    report: &mut ServiceReport,
) -> anyhow::Result<()> {
    let live = target.read_live().await?;
    report.old_artifact = live.artifact.clone();
    if target.is_current(&live, wanted) {
        report.action = "unchanged".into();
        report.new_artifact = live.artifact.clone();
        let record = DeployRecord {
            tag: tag.to_owned(),
            artifact: wanted.deploy_id(),
            ids: live.ids,
            at: state::now(),
        };
        return record_success(ctx, service, record, "unchanged", progress, report).await;
    }
    progress.emit(Phase::Apply, format!("rolling over to {wanted}"));
    let applied = target.apply(&live, wanted, progress).await?;
    report.new_artifact = Some(applied.new_artifact.clone());
    report.ids = applied.ids.clone();
    report.action = "started".into();
    let name = state::state_parameter(&ctx.manifest.project, service);
    let before = ctx.state.service_state(&name).await?;
    let mut after = before.clone();
    after.pending = Some(PendingRecord {
        tag: tag.to_owned(),
        applied,
        at: state::now(),
    });
    ctx.state.save_service_state(&name, &before, &after).await?;
    progress.emit(
        Phase::Done,
        "rollout started; confirm it with `deployer wait`",
    );
    Ok(())
}

/// `deployer wait`: wait for the rollout recorded by `deploy --no-wait`, then record it.
async fn wait_pending(
    ctx: &Context,
    service: &Service,
    progress: &Progress,
    report: &mut ServiceReport,
) -> anyhow::Result<()> {
    let name = state::state_parameter(&ctx.manifest.project, service);
    let state = ctx.state.service_state(&name).await?;
    let Some(pending) = state.pending.clone() else {
        report.action = "nothing_pending".into();
        report.tag = state.current.map(|c| c.tag).unwrap_or_default();
        return Ok(());
    };
    report.tag = pending.tag.clone();
    report.old_artifact = pending.applied.old_artifact.clone();
    let target = targets::deployer(ctx, service)?;
    progress.emit(
        Phase::Wait,
        format!(
            "waiting for the rollout to {}",
            pending.applied.new_artifact
        ),
    );
    let start = Instant::now();
    let settled = match target
        .wait(&pending.applied, &service.wait_policy(), progress)
        .await
    {
        Ok(settled) => settled,
        Err(error) => {
            // The rollout failed: it is no longer pending.
            let mut after = state.clone();
            after.pending = None;
            ctx.state.save_service_state(&name, &state, &after).await?;
            return Err(error.into());
        }
    };
    report.durations_ms.insert("wait", ms(start));
    report.new_artifact = Some(settled.new_artifact.clone());
    report.ids = settled.ids.clone();
    report.action = "updated".into();
    let record = DeployRecord {
        tag: pending.tag,
        artifact: settled.new_artifact,
        ids: settled.ids,
        at: state::now(),
    };
    record_success(ctx, service, record, "updated", progress, report).await
}

/// `deployer rollback`: back to the previous successful deploy recorded, through the same
/// update and wait as a deploy.
async fn rollback(
    ctx: &Context,
    service: &Service,
    progress: &Progress,
    report: &mut ServiceReport,
) -> anyhow::Result<()> {
    let name = state::state_parameter(&ctx.manifest.project, service);
    let state = ctx.state.service_state(&name).await?;
    let previous = state.previous.clone().ok_or_else(|| {
        UsageError(format!(
            "no earlier successful deploy of `{}` is recorded (in {name}): nothing to roll back to",
            service.name
        ))
    })?;
    report.tag = previous.tag.clone();
    let target = targets::deployer(ctx, service)?;
    let policy = service.wait_policy();
    progress.emit(Phase::Read, format!("reading {}", target.target()));
    let live = target.read_live().await?;
    report.old_artifact = live.artifact.clone();
    let settled = match recorded_artifact(&previous) {
        Some(artifact) => {
            if target.is_current(&live, &artifact) {
                report.action = "unchanged".into();
                report.new_artifact = live.artifact.clone();
                return record_success(ctx, service, previous, "rolled_back", progress, report)
                    .await;
            }
            progress.emit(
                Phase::Apply,
                format!("rolling back to {artifact} (deployed {})", previous.at),
            );
            let applied = target.apply(&live, &artifact, progress).await?;
            target.wait(&applied, &policy, progress).await?
        }
        None => {
            // A zip's bytes are not kept: the target restores it by its recorded ids.
            let applied = Applied {
                old_artifact: None,
                new_artifact: previous.artifact.clone(),
                ids: previous.ids.clone(),
            };
            let started = target.rollback(&live, &applied, progress).await?;
            target.wait(&started, &policy, progress).await?
        }
    };
    report.action = "rolled_back".into();
    report.new_artifact = Some(settled.new_artifact.clone());
    report.ids = settled.ids.clone();
    let record = DeployRecord {
        tag: previous.tag,
        artifact: settled.new_artifact,
        ids: settled.ids,
        at: state::now(),
    };
    record_success(ctx, service, record, "rolled_back", progress, report).await
}

/// The artifact of a recorded image deploy (`repo@sha256:…`), or `None` for a zip.
fn recorded_artifact(record: &DeployRecord) -> Option<Artifact> {
    let (repository_uri, digest) = record.artifact.split_once('@')?;
    Some(Artifact::Image(ImageArtifact {
        repository_uri: repository_uri.to_owned(),
        tag: record.tag.clone(),
        digest: Some(digest.to_owned()),
    }))
}

/// After a successful rollout: the tag parameter (what IaC reads), then the deploy state.
async fn record_success(
    ctx: &Context,
    service: &Service,
    record: DeployRecord,
    action: &str,
    progress: &Progress,
    report: &mut ServiceReport,
) -> anyhow::Result<()> {
    let tag = record.tag.clone();
    record_tag(ctx, &tag, progress, report)
        .await
        .context("the rollout succeeded but its tag could not be recorded; run the deploy again to record it")?;
    let name = state::state_parameter(&ctx.manifest.project, service);
    let before = ctx.state.service_state(&name).await?;
    let mut after = before.clone();
    let unchanged_and_recorded = action == "unchanged"
        && before
            .current
            .as_ref()
            .is_some_and(|c| c.artifact == record.artifact);
    if !unchanged_and_recorded {
        after.succeed(record);
        after.last = Some(LastOutcome {
            action: action.to_owned(),
            tag,
            ok: true,
            error: None,
            at: state::now(),
        });
    }
    // A rollout that succeeded supersedes (or confirms) one left pending by `--no-wait`.
    after.pending = None;
    ctx.state.save_service_state(&name, &before, &after).await?;
    Ok(())
}

/// Records a failed deploy, wait or rollback as the last outcome (best effort: the failure
/// itself is what the user must see).
async fn note_failure(ctx: &Context, service: &Service, report: &ServiceReport) {
    let name = state::state_parameter(&ctx.manifest.project, service);
    let Ok(before) = ctx.state.service_state(&name).await else {
        return;
    };
    let mut after = before.clone();
    after.last = Some(LastOutcome {
        action: "failed".into(),
        tag: report.tag.clone(),
        ok: false,
        error: report
            .error
            .as_ref()
            .map(|e| e.message.lines().next().unwrap_or_default().to_owned()),
        at: state::now(),
    });
    if let Err(error) = ctx.state.save_service_state(&name, &before, &after).await {
        tracing::warn!("{}: cannot record the failure: {error}", service.name);
    }
}

async fn record_tag(
    ctx: &Context,
    tag: &str,
    progress: &Progress,
    report: &mut ServiceReport,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let written = ctx.state.put_if_changed(&report.ssm_parameter, tag).await?;
    if written {
        progress.emit(Phase::Record, format!("{} = {tag}", report.ssm_parameter));
    }
    report.ssm_written |= written;
    report.durations_ms.insert("record", ms(start));
    Ok(())
}

fn ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Reads the live state of a service (for `status`).
pub(crate) async fn live_state(ctx: &Context, service: &Service) -> anyhow::Result<LiveState> {
    let target = targets::deployer(ctx, service)?;
    Ok(target.read_live().await?)
}

/// The human summary table.
pub(crate) fn summary(reports: &[ServiceReport]) -> String {
    let mut text = format!(
        "{:<24} {:<13} {:<13} {:<26} {:>8}\n",
        "SERVICE", "KIND", "ACTION", "TAG", "TIME"
    );
    for report in reports {
        let seconds = report.durations_ms.get("total").copied().unwrap_or(0) as f64 / 1000.0;
        text.push_str(&format!(
            "{:<24} {:<13} {:<13} {:<26} {:>7.1}s\n",
            report.service,
            report.kind.as_str(),
            report.action.replace('_', " "),
            report.tag,
            seconds
        ));
    }
    for report in reports {
        if let Some(error) = &report.error {
            text.push_str(&format!("\n{}: {}\n", report.service, error.message));
        }
    }
    text
}
