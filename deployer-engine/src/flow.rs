//! One service's state machine. Every command (plan, build, deploy with or without waiting,
//! wait, rollback) is a path through the same transitions, and each transition carries its
//! own checks, so no path can forget one:
//!
//! ```text
//! read ──► decide ──unchanged──────────────────────────────────────────────► done (no lock, no write)
//!            │ needs a change
//!            ▼
//!          lock ──► read again ──► decide again
//!                                   ├─ record ──► smoke ───────────────────► record ──► release
//!                                   ├─ roll ───► wait ──► smoke ──┬────────► record ──► release
//!                                   │                             └─failed─► back out ─► release (failed)
//!                                   └─ restart ► wait ──► smoke ──────────► record ──► release
//! ```
//!
//! - `begin` (roll, restart, restore), `record` and the pending/failure notes each prove the
//!   claim first ([`Claim::verify`]); the deployer's own mutating calls pass its fence.
//! - `record` reads the live service again and writes only when it serves the artifact.
//! - a failure is noted in the deploy state only by a run that holds the lock.

use std::collections::BTreeMap;
use std::sync::Arc;

use deployer_core::manifest::SsmWrite;
use deployer_core::{
    Applied, Artifact, ConfigArtifact, DeployError, Deployer, Diagnosis, ImageArtifact, Kind,
    LiveState, Phase, Presence, Progress, Service, ZipArtifact,
};
use tokio::time::Instant;

use crate::engine::{Mode, Run};
use crate::error::EngineError;
use crate::lock::Claim;
use crate::outcome::{Action, ServiceResult, SmokeResult};
use crate::ports::{Artifacts, LogTails, ServiceInput};
use crate::records::{self, DeployRecord, LastOutcome, Names, PendingRecord, Records};

/// The log lines a diagnosis reads through [`LogTails`] when its target read none.
pub(crate) const LOG_TAIL: usize = 30;

/// How long a failed rollout's diagnosis may take ([`Deployer::diagnose`]): a failed deploy is
/// not kept waiting long for its explanation, and a successful one never waits for it.
pub(crate) const DIAGNOSIS_LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

/// What a deploy must do, given what runs and what is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The service runs the artifact, its rollout completed, and the records name it.
    Unchanged,
    /// The service runs the artifact and its rollout completed, but the records do not name
    /// it. `verified`: the deploy state already names it (it passed its smoke check then);
    /// only the tag parameter differs.
    Record { verified: bool },
    /// The service must be rolled over (or a rollout in flight adopted, or a failed one
    /// started again).
    Roll,
    /// Unchanged, but restarted because a dependency changed.
    Restart,
}

/// The decision, from the target's verdict and the records.
pub(crate) fn decide(
    current: bool,
    records: &Records,
    artifact: &Artifact,
    tag: &str,
    restart: bool,
) -> Decision {
    if !current {
        return Decision::Roll;
    }
    let verified = records.state.names(&artifact.deploy_id());
    if !verified || records.tag.as_deref() != Some(tag) {
        return Decision::Record { verified };
    }
    if restart {
        Decision::Restart
    } else {
        Decision::Unchanged
    }
}

pub(crate) fn ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One service's run through the machine.
pub(crate) struct Flow<'r> {
    run: &'r Run,
    service: &'r Service,
    input: &'r ServiceInput,
    names: Names,
    progress: Progress,
    target: Option<Box<dyn Deployer>>,
    claim: Option<Claim>,
    /// The records as last read or written.
    records: Records,
    /// Whether `records` were read under the lock (only those may be written back).
    fresh: bool,
    /// The pending rollout this flow waited for has ended (a failure then clears it).
    pending_ended: bool,
    result: ServiceResult,
}

impl<'r> Flow<'r> {
    pub(crate) fn new(
        run: &'r Run,
        service: &'r Service,
        input: &'r ServiceInput,
        result: ServiceResult,
        progress: Progress,
    ) -> Self {
        Flow {
            run,
            service,
            input,
            names: run.names(&service.name),
            progress,
            target: None,
            claim: None,
            records: Records::default(),
            fresh: false,
            pending_ended: false,
            result,
        }
    }

    /// Runs `mode`'s path.
    pub(crate) async fn run(&mut self, mode: Mode) -> Result<Action, EngineError> {
        let outcome = match mode {
            Mode::Plan => self.plan().await,
            Mode::Build { dry_run } => self.build(dry_run).await,
            Mode::Deploy { wait } => self.deploy(wait).await,
            Mode::Wait => self.wait_pending().await,
            Mode::Rollback => self.rollback().await,
        };
        if let Err(error) = &outcome {
            self.note_failure(error).await;
        }
        outcome
    }

    /// Releases the lock, if held, and hands back the result.
    pub(crate) async fn finish(mut self) -> ServiceResult {
        if let Some(claim) = self.claim.take() {
            let parameter = claim.parameter().to_owned();
            if let Err(error) = claim.release().await {
                let warning = format!(
                    "could not release the deploy lock {parameter} ({error}); it expires by itself within {}",
                    humantime::format_duration(self.run.engine.locks.lease())
                );
                self.progress.emit(Phase::Done, warning.clone());
                self.result.warnings.push(warning);
            }
        }
        self.result
    }

    // ------------------------------------------------------------------ paths

    async fn plan(&mut self) -> Result<Action, EngineError> {
        let (found, live) = self.first_reads().await?;
        self.result.artifact = found.as_ref().map(Artifact::deploy_id);
        if self.input.local.is_none() {
            self.result.in_registry = Some(found.is_some());
        }
        self.result.moved_bases = self.moved_bases();
        let Some(artifact) = found else {
            return Ok(Action::BuildDeploy);
        };
        let target = self.target()?;
        let decision = decide(
            target.is_current(&live, &artifact),
            &self.records,
            &artifact,
            &self.input.tag,
            false,
        );
        Ok(match decision {
            Decision::Unchanged | Decision::Restart => Action::Unchanged,
            Decision::Record { .. } => Action::Record,
            Decision::Roll => {
                // A target made of items says which ones a deploy would write (read-only).
                self.result.changes = target.changes(&live, &artifact).await?;
                Action::Deploy
            }
        })
    }

    async fn build(&mut self, dry_run: bool) -> Result<Action, EngineError> {
        let found = {
            let _read = self.run.reads.acquire().await;
            self.find().await?
        };
        if dry_run {
            if self.input.local.is_some() {
                return Ok(Action::WouldBuild);
            }
            self.result.in_registry = Some(found.is_some());
            self.result.artifact = found.as_ref().map(Artifact::deploy_id);
            return Ok(if found.is_some() {
                Action::InRegistry
            } else {
                Action::WouldBuild
            });
        }
        let local = self.input.local.is_some();
        let artifact = match found {
            Some(artifact) => artifact,
            None => self.make().await?,
        };
        self.result.built |= local;
        self.result.artifact = Some(artifact.deploy_id());
        if self.after_push(&artifact) {
            let _permit = self.permit().await?;
            self.records = self.run.records(&self.service.name).await?;
            if self.records.tag.as_deref() != Some(self.input.tag.as_str()) {
                self.lock().await?;
                self.write_tag().await?;
            }
        }
        Ok(if self.result.built {
            Action::Built
        } else {
            Action::InRegistry
        })
    }

    async fn deploy(&mut self, wait: bool) -> Result<Action, EngineError> {
        let (found, live) = self.first_reads().await?;
        let artifact = match found {
            Some(artifact) => artifact,
            None => self.make().await?,
        };
        self.result.artifact = Some(artifact.deploy_id());
        let changed = self
            .run
            .dependencies(&self.service.name)
            .await
            .map_err(EngineError::Skipped)?;
        let restart = changed && self.service.restart_on_dependency_change;
        let target = self.target()?;
        let decision = decide(
            target.is_current(&live, &artifact),
            &self.records,
            &artifact,
            &self.input.tag,
            restart,
        );
        if decision == Decision::Unchanged {
            return Ok(self.unchanged(&live, &artifact));
        }
        // A change: under the lock, from a fresh read.
        let _permit = self.permit().await?;
        self.lock().await?;
        self.result
            .timeline
            .insert("rollover_started", self.run.since_start());
        let live = self.read_again().await?;
        if self.after_push(&artifact) {
            self.write_tag().await?;
        }
        let target = self.target()?;
        let decision = decide(
            target.is_current(&live, &artifact),
            &self.records,
            &artifact,
            &self.input.tag,
            restart,
        );
        match decision {
            Decision::Unchanged => Ok(self.unchanged(&live, &artifact)),
            Decision::Record { verified } => {
                let what = self.target()?.target();
                self.progress.emit(
                    Phase::Check,
                    format!("{what} already runs {artifact} but it is not recorded: verifying it"),
                );
                if !verified {
                    self.smoke(&live.ids, &live, true).await?;
                }
                let applied = Applied {
                    old_artifact: live.artifact.clone(),
                    new_artifact: artifact.deploy_id(),
                    ids: live.ids.clone(),
                };
                let (tag, bases) = (self.input.tag.clone(), self.input.bases.clone());
                self.record(&artifact, &tag, bases, applied, Action::Recorded)
                    .await
            }
            Decision::Roll | Decision::Restart => {
                let restarting = decision == Decision::Restart;
                let how = if restarting {
                    Begin::Restart(&artifact)
                } else {
                    Begin::Roll(&artifact)
                };
                let applied = self.begin(&live, how).await?;
                if !wait {
                    return self.mark_pending(applied).await;
                }
                let settled = self.settle(&applied).await?;
                self.smoke(&settled.ids, &live, true).await?;
                let action = if restarting {
                    Action::Restarted
                } else {
                    Action::Updated
                };
                let (tag, bases) = (self.input.tag.clone(), self.input.bases.clone());
                self.record(&artifact, &tag, bases, settled, action).await
            }
        }
    }

    async fn wait_pending(&mut self) -> Result<Action, EngineError> {
        self.ensure_target()?;
        self.records = self.run.records(&self.service.name).await?;
        if self.records.state.pending.is_none() {
            self.result.tag = self.current_tag();
            return Ok(Action::NothingPending);
        }
        let _permit = self.permit().await?;
        self.lock().await?;
        self.read_records().await?;
        let Some(pending) = self.records.state.pending.clone() else {
            self.result.tag = self.current_tag();
            return Ok(Action::NothingPending);
        };
        self.result.tag.clone_from(&pending.tag);
        self.result.old_artifact = pending.applied.old_artifact.clone();
        let artifact = self
            .artifact_of(&pending.applied.new_artifact, &pending.tag)
            .ok_or_else(|| {
                EngineError::Usage(format!(
                    "the pending rollout names {}, which is not an artifact of this service",
                    pending.applied.new_artifact
                ))
            })?;
        self.progress.emit(
            Phase::Wait,
            format!(
                "waiting for the rollout to {}",
                pending.applied.new_artifact
            ),
        );
        let settled = match self.settle(&pending.applied).await {
            Ok(settled) => settled,
            Err(error) => {
                // A timeout leaves it pending: the rollout may still finish.
                self.pending_ended = !error.is_timeout();
                return Err(error);
            }
        };
        self.pending_ended = true;
        let before = LiveState {
            artifact: pending.applied.old_artifact.clone(),
            ..LiveState::default()
        };
        self.smoke(&settled.ids, &before, true).await?;
        self.record(
            &artifact,
            &pending.tag,
            pending.bases,
            settled,
            Action::Updated,
        )
        .await
    }

    async fn rollback(&mut self) -> Result<Action, EngineError> {
        self.ensure_target()?;
        self.records = self.run.records(&self.service.name).await?;
        if self.records.state.previous.is_none() {
            return Err(self.nothing_to_roll_back_to());
        }
        let _permit = self.permit().await?;
        self.lock().await?;
        let live = self.read_again().await?;
        let Some(previous) = self.records.state.previous.clone() else {
            return Err(self.nothing_to_roll_back_to());
        };
        self.result.tag.clone_from(&previous.tag);
        let artifact = self
            .artifact_of(&previous.artifact, &previous.tag)
            .ok_or_else(|| {
                EngineError::Usage(format!(
                    "the recorded deploy names {}, which is not an artifact of this service",
                    previous.artifact
                ))
            })?;
        let target = self.target()?;
        let settled = if target.serves(&live, &artifact) {
            Applied {
                old_artifact: live.artifact.clone(),
                new_artifact: previous.artifact.clone(),
                ids: live.ids.clone(),
            }
        } else {
            self.progress.emit(
                Phase::Apply,
                format!(
                    "rolling back to {} (deployed {})",
                    previous.artifact, previous.at
                ),
            );
            let applied = self.back_to(&live, &previous).await?;
            self.settle(&applied).await?
        };
        // A rollback that does not serve is reported, not rolled back again.
        self.smoke(&settled.ids, &live, false).await?;
        self.record(
            &artifact,
            &previous.tag,
            previous.bases.clone(),
            settled,
            Action::RolledBack,
        )
        .await
    }

    // ------------------------------------------------------------ transitions

    /// Builds the deployer, once, before a path that needs it.
    fn ensure_target(&mut self) -> Result<(), EngineError> {
        if self.target.is_none() {
            self.target = Some(self.run.engine.targets.deployer(self.service)?);
        }
        Ok(())
    }

    /// The deployer ([`Flow::ensure_target`] built it).
    fn target(&self) -> Result<&dyn Deployer, EngineError> {
        self.target
            .as_deref()
            .ok_or_else(|| EngineError::Internal("the deployer was not built".into()))
    }

    /// The first reads, concurrently and outside the build/rollout limit: the artifact (is it
    /// in the registry?), the live state, the records (the run's batched read).
    async fn first_reads(&mut self) -> Result<(Option<Artifact>, LiveState), EngineError> {
        self.ensure_target()?;
        let _read = self.run.reads.acquire().await;
        let start = Instant::now();
        let target = self.target.as_deref();
        let run = self.run;
        let service = self.service;
        let input = self.input;
        let progress = &self.progress;
        let (found, live, records) = tokio::join!(
            async {
                run.engine
                    .artifacts
                    .find(service, input, progress)
                    .await
                    .map_err(EngineError::from)
            },
            async {
                let target = target.ok_or_else(|| EngineError::Internal("no deployer".into()))?;
                progress.emit(Phase::Read, format!("reading {}", target.target()));
                target.read_live().await.map_err(EngineError::from)
            },
            async { run.records(&service.name).await.map_err(EngineError::from) },
        );
        self.result.durations_ms.insert("read", ms(start));
        let (found, live) = (found?, live?);
        self.records = records?;
        self.result.live_tag = self.records.tag.clone();
        self.result.old_artifact = live.artifact.clone();
        self.result.live_summary = Some(live.summary.clone());
        self.result.ids = live.ids.clone();
        Ok((found, live))
    }

    async fn find(&mut self) -> Result<Option<Artifact>, EngineError> {
        Ok(self
            .run
            .engine
            .artifacts
            .find(self.service, self.input, &self.progress)
            .await?)
    }

    /// Builds and pushes the artifact the registry lacks (within the build/rollout limit).
    async fn make(&mut self) -> Result<Artifact, EngineError> {
        let _permit = self.permit().await?;
        let built = self
            .run
            .engine
            .artifacts
            .build(self.service, self.input, &self.progress)
            .await?;
        self.result.durations_ms.extend(built.durations_ms);
        self.result.built = true;
        self.result.in_registry = Some(true);
        Ok(built.artifact)
    }

    async fn permit(&self) -> Result<tokio::sync::SemaphorePermit<'r>, EngineError> {
        self.run
            .permits
            .acquire()
            .await
            .map_err(|_| EngineError::Internal("the run's permits were closed".into()))
    }

    async fn lock(&mut self) -> Result<(), EngineError> {
        let wait = self.run.engine.lock_wait.unwrap_or(self.service.timeout);
        let claim = self
            .run
            .engine
            .locks
            .acquire(&self.names.lock, &self.service.name, wait, &self.progress)
            .await?;
        self.claim = Some(claim);
        Ok(())
    }

    /// Proves the claim before a step that changes something.
    async fn guard(&self) -> Result<(), EngineError> {
        match &self.claim {
            Some(claim) => Ok(claim.verify().await?),
            None => Err(EngineError::Internal(
                "a change was about to be made without the deploy lock".into(),
            )),
        }
    }

    /// The progress reporter whose mutating calls pass the claim's fence.
    fn fenced(&self) -> Progress {
        match &self.claim {
            Some(claim) => self.progress.clone().with_fence(claim.fence()),
            None => self.progress.clone().with_fence(Arc::new(NoClaim)),
        }
    }

    /// Under the lock: the records, read again (only records read under the lock are ever
    /// written back).
    async fn read_records(&mut self) -> Result<(), EngineError> {
        self.records = Records::read(self.run.engine.store.as_ref(), &self.names).await?;
        self.fresh = true;
        Ok(())
    }

    /// Under the lock: the live state and the records, read again.
    async fn read_again(&mut self) -> Result<LiveState, EngineError> {
        let target = self.target()?;
        let (live, records) = tokio::join!(
            target.read_live(),
            Records::read(self.run.engine.store.as_ref(), &self.names)
        );
        self.records = records?;
        self.fresh = true;
        let live = live?;
        self.result.old_artifact = live.artifact.clone();
        self.result.ids = live.ids.clone();
        Ok(live)
    }

    fn unchanged(&mut self, live: &LiveState, artifact: &Artifact) -> Action {
        self.progress
            .emit(Phase::Done, format!("unchanged: already runs {artifact}"));
        self.result.new_artifact = live.artifact.clone();
        self.result.ids = live.ids.clone();
        Action::Unchanged
    }

    /// Starts a rollout — the mutating step of every path — under a proven claim, with the
    /// claim's fence on the deployer's own mutating calls.
    async fn begin(&mut self, live: &LiveState, how: Begin<'_>) -> Result<Applied, EngineError> {
        self.guard().await?;
        let start = Instant::now();
        let fenced = self.fenced();
        let target = self.target()?;
        let applied = match how {
            Begin::Roll(artifact) => {
                self.progress
                    .emit(Phase::Apply, format!("rolling over to {artifact}"));
                target.apply(live, artifact, &fenced).await?
            }
            Begin::Restart(artifact) => {
                self.progress.emit(
                    Phase::Apply,
                    format!("restarting on {artifact} (a dependency changed)"),
                );
                target.restart(live, &fenced).await?
            }
            Begin::Restore(previous) => {
                self.progress.emit(
                    Phase::Apply,
                    format!("restoring {} (its code is not kept)", previous.new_artifact),
                );
                target.rollback(live, previous, &fenced).await?
            }
        };
        self.result.durations_ms.insert("apply", ms(start));
        self.result.new_artifact = Some(applied.new_artifact.clone());
        self.result.ids = applied.ids.clone();
        Ok(applied)
    }

    /// A rollback the target makes without sending the image again ([`Deployer::revert`]:
    /// AgentCore endpoints moved back to a version that still exists), under a proven claim
    /// with the claim's fence; `None` when the target cannot.
    async fn revert(
        &mut self,
        live: &LiveState,
        previous: &Applied,
    ) -> Result<Option<Applied>, EngineError> {
        self.guard().await?;
        let start = Instant::now();
        let fenced = self.fenced();
        let target = self.target()?;
        let Some(applied) = target.revert(live, previous, &fenced).await? else {
            return Ok(None);
        };
        self.result.durations_ms.insert("apply", ms(start));
        self.result.new_artifact = Some(applied.new_artifact.clone());
        self.result.ids = applied.ids.clone();
        Ok(Some(applied))
    }

    /// Back to the recorded deploy `record`: an image is rolled over to again, unless the
    /// target can return to it in place ([`Flow::revert`]); a zip (whose bytes are not kept)
    /// is restored by the target from the record's ids.
    async fn back_to(
        &mut self,
        live: &LiveState,
        record: &DeployRecord,
    ) -> Result<Applied, EngineError> {
        let artifacts = self.run.engine.artifacts.as_ref();
        if let Presence::Gone { why } =
            restorable(self.service, record, self.target()?, artifacts).await?
        {
            return Err(EngineError::Gone {
                artifact: record.artifact.clone(),
                why,
            });
        }
        if self.service.image.is_some() {
            let artifact = self
                .artifact_of(&record.artifact, &record.tag)
                .ok_or_else(|| {
                    EngineError::Usage(format!(
                        "the recorded deploy names {}, which is not an image reference",
                        record.artifact
                    ))
                })?;
            let previous = restored(live.artifact.clone(), record);
            if let Some(applied) = self.revert(live, &previous).await? {
                return Ok(applied);
            }
            return self.begin(live, Begin::Roll(&artifact)).await;
        }
        let previous = restored(live.artifact.clone(), record);
        self.begin(live, Begin::Restore(&previous)).await
    }

    /// Before a rollback changes anything: the image it goes back to must still be in its
    /// registry (by digest), else the rollback fails here, in one line, with nothing changed.
    /// Every rollback path (`rollback`, the one after a failed smoke check) goes through it.
    async fn ensure_present(&self, artifact: &Artifact) -> Result<(), EngineError> {
        match self.run.engine.artifacts.present(artifact).await? {
            Presence::Present => Ok(()),
            Presence::Gone { why } => Err(EngineError::Gone {
                artifact: artifact.deploy_id(),
                why,
            }),
        }
    }

    async fn settle(&mut self, applied: &Applied) -> Result<Applied, EngineError> {
        let start = Instant::now();
        self.progress.emit(Phase::Wait, "waiting for the rollout");
        let policy = self.service.wait_policy();
        let fenced = self.fenced();
        let target = self.target()?;
        let settled = target.wait(applied, &policy, &fenced).await;
        self.result.durations_ms.insert("wait", ms(start));
        if let Err(DeployError::RolloutFailed { .. } | DeployError::Timeout { .. }) = &settled {
            self.diagnose(applied).await;
        }
        let settled = settled?;
        self.result.new_artifact = Some(settled.new_artifact.clone());
        self.result.ids = settled.ids.clone();
        Ok(settled)
    }

    /// Why the rollout `applied` failed, from the target, within [`DIAGNOSIS_LIMIT`]: only
    /// after a failure or timeout, read-only, and never an error of its own.
    async fn diagnose(&mut self, applied: &Applied) {
        let start = Instant::now();
        self.progress
            .emit(Phase::Wait, "the rollout failed; reading why");
        let target = match self.target() {
            Ok(target) => target,
            Err(_) => return,
        };
        let gather = async {
            let mut diagnosis = target.diagnose(applied).await;
            if diagnosis.logs.is_empty()
                && let Some(logs) = &self.run.engine.logs
            {
                self.log_tail(target, logs.as_ref(), &mut diagnosis).await;
            }
            diagnosis
        };
        let diagnosis = tokio::time::timeout(DIAGNOSIS_LIMIT, gather)
            .await
            .unwrap_or_else(|_| {
                Diagnosis::unavailable(format!(
                    "not gathered within {}",
                    humantime::format_duration(DIAGNOSIS_LIMIT)
                ))
            });
        self.result.durations_ms.insert("diagnosis", ms(start));
        if !diagnosis.is_empty() {
            self.result.diagnosis = Some(diagnosis);
        }
    }

    /// The last [`LOG_TAIL`] lines the target's log sources wrote since this run started, for a
    /// diagnosis the target gave no log lines of its own.
    async fn log_tail(
        &self,
        target: &dyn Deployer,
        logs: &dyn LogTails,
        diagnosis: &mut Diagnosis,
    ) {
        let sources = match target.read_live().await {
            Ok(live) => target.log_sources(&live).await,
            Err(error) => Err(error),
        };
        let sources = match sources {
            Ok(sources) if sources.is_empty() => return,
            Ok(sources) => sources,
            Err(error) => {
                diagnosis.unavailable.push(format!(
                    "where its logs are: {}",
                    deployer_core::one_line(&error.to_string())
                ));
                return;
            }
        };
        // From a minute before this run started: the lines of the failed rollout, not older ones.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let since = now - self.run.since_start() as i64 - 60_000;
        match logs.tail(&sources, since, LOG_TAIL).await {
            Ok(lines) => diagnosis.logs = lines,
            Err(error) => diagnosis.unavailable.push(format!("log tail: {error}")),
        }
    }

    /// `--no-wait`: the started rollout is recorded as pending for `deployer wait`.
    async fn mark_pending(&mut self, applied: Applied) -> Result<Action, EngineError> {
        self.guard().await?;
        let before = self.records.state.clone();
        let mut after = before.clone();
        after.pending = Some(PendingRecord {
            tag: self.input.tag.clone(),
            applied,
            at: records::now(),
            bases: self.input.bases.clone(),
        });
        records::write_state(self.run.engine.store.as_ref(), &self.names, &before, &after).await?;
        self.records.state = after;
        self.progress.emit(
            Phase::Done,
            "rollout started; confirm it with `deployer wait`",
        );
        Ok(Action::Started)
    }

    /// The smoke check after a rollout whose ids are `ids`. On failure the service fails, and
    /// with `rollback_on_smoke_failure` (when `may_back_out`) it is first rolled back to the
    /// last successful deploy recorded, or else to what ran before (`before`).
    async fn smoke(
        &mut self,
        ids: &BTreeMap<String, String>,
        before: &LiveState,
        may_back_out: bool,
    ) -> Result<(), EngineError> {
        let Some(check) = &self.service.smoke else {
            return Ok(());
        };
        let start = Instant::now();
        let outcome = self
            .run
            .engine
            .smoke
            .run(self.service, check, ids, &self.progress)
            .await;
        self.result.durations_ms.insert("smoke", ms(start));
        let why = match outcome {
            Ok(output) => {
                self.progress.emit(Phase::Done, "smoke check passed");
                self.result.smoke = Some(SmokeResult {
                    ok: true,
                    output,
                    rolled_back_to: None,
                });
                return Ok(());
            }
            Err(why) => why,
        };
        self.result.smoke = Some(SmokeResult {
            ok: false,
            output: why.clone(),
            rolled_back_to: None,
        });
        let failed = EngineError::Smoke(why);
        if !(may_back_out && self.service.rollback_on_smoke_failure) {
            return Err(failed.context(
                "the rollout succeeded but its smoke check failed; nothing was recorded (deployer status shows the drift)",
            ));
        }
        match self.back_out(before).await {
            Ok(to) => {
                if let Some(smoke) = self.result.smoke.as_mut() {
                    smoke.rolled_back_to = Some(to.clone());
                }
                self.result.new_artifact = Some(to.clone());
                Err(failed.context(format!("rolled back to {to}")))
            }
            Err(error) => Err(error.context(format!(
                "{failed}; the rollback after the failed smoke check failed"
            ))),
        }
    }

    /// Rolls back after a failed smoke check: to the last successful deploy recorded, else to
    /// what ran before this rollout (an image reference such as `repo:bootstrap` that IaC
    /// registered, pinned by digest when the registry has it). Returns what it rolled back to.
    async fn back_out(&mut self, before: &LiveState) -> Result<String, EngineError> {
        self.progress
            .emit(Phase::Apply, "smoke check failed: rolling back");
        let live = self.target()?.read_live().await?;
        if let Some(record) = self.records.state.current.clone() {
            let applied = self.back_to(&live, &record).await?;
            self.settle(&applied).await?;
            return Ok(record.artifact);
        }
        let Some(old) = before.artifact.clone() else {
            return Err(EngineError::Usage(
                "nothing ran before this rollout: no earlier artifact to roll back to".into(),
            ));
        };
        let image = self
            .service
            .image
            .as_ref()
            .and_then(|_| ImageArtifact::from_reference(&old));
        let Some(mut image) = image else {
            return Err(EngineError::Usage(format!(
                "cannot roll back to {old}: no earlier deploy of this service is recorded, and its code is not kept"
            )));
        };
        if image.digest.is_none() {
            image.digest = self
                .run
                .engine
                .artifacts
                .digest(&image.repository_uri, &image.tag)
                .await?;
        }
        let artifact = Artifact::Image(image);
        self.ensure_present(&artifact).await?;
        let applied = self.begin(&live, Begin::Roll(&artifact)).await?;
        self.settle(&applied).await?;
        Ok(artifact.deploy_id())
    }

    /// Records `settled` as the service's live deploy of `tag`: only after reading the live
    /// service again and seeing that it serves `artifact` (I1), under a proven claim (I2).
    async fn record(
        &mut self,
        artifact: &Artifact,
        tag: &str,
        bases: BTreeMap<String, String>,
        settled: Applied,
        action: Action,
    ) -> Result<Action, EngineError> {
        self.guard().await?;
        let start = Instant::now();
        let target = self.target()?;
        let live = target.read_live().await?;
        if !target.serves(&live, artifact) {
            return Err(EngineError::Deploy(DeployError::RolloutFailed {
                reason: format!(
                    "{} does not run {artifact} any more ({}): something else changed it meanwhile; nothing was recorded",
                    target.target(),
                    live.summary
                ),
                events: Vec::new(),
            }));
        }
        let written = records::write_tag(
            self.run.engine.store.as_ref(),
            &self.names,
            self.records.tag.as_deref(),
            tag,
        )
        .await
        .map_err(|error| {
            EngineError::from(error).context(
                "the rollout succeeded but its tag could not be recorded; run the deploy again to record it",
            )
        })?;
        if written {
            self.progress
                .emit(Phase::Record, format!("{} = {tag}", self.names.tag));
            self.records.tag = Some(tag.to_owned());
        }
        self.result.ssm_written |= written;
        let before = self.records.state.clone();
        let mut after = before.clone();
        after.succeed(DeployRecord {
            tag: tag.to_owned(),
            artifact: settled.new_artifact.clone(),
            ids: settled.ids.clone(),
            at: records::now(),
            bases,
        });
        after.last = Some(LastOutcome {
            action: action.as_str().to_owned(),
            tag: tag.to_owned(),
            ok: true,
            error: None,
            at: records::now(),
            diagnosis: None,
        });
        // A rollout that succeeded supersedes (or confirms) one left pending by `--no-wait`.
        after.pending = None;
        records::write_state(self.run.engine.store.as_ref(), &self.names, &before, &after).await?;
        self.records.state = after;
        self.keep_recorded().await;
        self.result.durations_ms.insert("record", ms(start));
        self.result.new_artifact = Some(settled.new_artifact);
        self.result.ids = settled.ids;
        Ok(action)
    }

    /// Marks what the records now name (current and previous) for the registry's retention
    /// rules ([`Artifacts::keep`]); a failure is a warning: the deploy is recorded already.
    async fn keep_recorded(&mut self) {
        let state = &self.records.state;
        let Some(current) = state
            .current
            .as_ref()
            .and_then(|record| self.artifact_of(&record.artifact, &record.tag))
        else {
            return;
        };
        let previous = state
            .previous
            .as_ref()
            .and_then(|record| self.artifact_of(&record.artifact, &record.tag));
        if let Err(error) = self
            .run
            .engine
            .artifacts
            .keep(self.service, &current, previous.as_ref(), &self.progress)
            .await
        {
            let warning = format!(
                "the recorded images could not be marked for the registry's retention rules: {error}"
            );
            self.progress.emit(Phase::Done, warning.clone());
            self.result.warnings.push(warning);
        }
    }

    /// `ssm_write = "after-push"`: the tag right after the push, under the lock.
    async fn write_tag(&mut self) -> Result<(), EngineError> {
        self.guard().await?;
        let tag = self.input.tag.clone();
        let written = records::write_tag(
            self.run.engine.store.as_ref(),
            &self.names,
            self.records.tag.as_deref(),
            &tag,
        )
        .await?;
        if written {
            self.progress
                .emit(Phase::Record, format!("{} = {tag}", self.names.tag));
        }
        self.records.tag = Some(tag);
        self.result.ssm_written |= written;
        Ok(())
    }

    /// Notes a failure as the last outcome — only while this run holds a proven claim: a
    /// read-modify-write by a run without the lock could erase the holder's records.
    async fn note_failure(&mut self, error: &EngineError) {
        let Some(claim) = &self.claim else {
            return;
        };
        if claim.verify().await.is_err() {
            return;
        }
        if !self.fresh && self.read_records().await.is_err() {
            return;
        }
        let before = self.records.state.clone();
        let mut after = before.clone();
        after.last = Some(LastOutcome {
            action: "failed".into(),
            tag: self.result.tag.clone(),
            ok: false,
            error: error.to_string().lines().next().map(str::to_owned),
            at: records::now(),
            diagnosis: self
                .result
                .diagnosis
                .as_ref()
                .map(|diagnosis| diagnosis.bounded(records::KEPT_DIAGNOSIS))
                .filter(|kept| !kept.is_empty()),
        });
        if self.pending_ended {
            after.pending = None;
        }
        match records::write_state(self.run.engine.store.as_ref(), &self.names, &before, &after)
            .await
        {
            Ok(()) => self.records.state = after,
            Err(error) => {
                tracing::warn!("{}: cannot record the failure: {error}", self.service.name);
            }
        }
    }

    // ------------------------------------------------------------------ helpers

    /// The `FROM` images whose digest moved since the deploy recorded: `reference: old → new`.
    fn moved_bases(&self) -> Vec<String> {
        let Some(current) = &self.records.state.current else {
            return Vec::new();
        };
        self.input
            .bases
            .iter()
            .filter_map(|(reference, digest)| {
                let old = current.bases.get(reference)?;
                (old != digest).then(|| format!("{reference}: {old} → {digest}"))
            })
            .collect()
    }

    fn after_push(&self, artifact: &Artifact) -> bool {
        self.run.engine.manifest.project.ssm_write == SsmWrite::AfterPush
            && matches!(artifact, Artifact::Image(_))
    }

    fn current_tag(&self) -> String {
        self.records
            .state
            .current
            .as_ref()
            .map(|c| c.tag.clone())
            .unwrap_or_default()
    }

    fn nothing_to_roll_back_to(&self) -> EngineError {
        EngineError::Usage(format!(
            "no earlier successful deploy of `{}` is recorded (in {}): nothing to roll back to",
            self.service.name, self.names.state
        ))
    }

    /// The artifact a recorded identity names: an image reference (pinned), a config set's
    /// hash (its copy is the target's to fetch), or a zip's CodeSha256 (its bytes are not
    /// kept).
    fn artifact_of(&self, identity: &str, tag: &str) -> Option<Artifact> {
        artifact_of(self.service, identity, tag)
    }
}

/// The artifact a record of `service` names by `identity` (its deploy id) and `tag`.
fn artifact_of(service: &Service, identity: &str, tag: &str) -> Option<Artifact> {
    if service.image.is_some() {
        let mut image = ImageArtifact::from_reference(identity)?;
        tag.clone_into(&mut image.tag);
        return Some(Artifact::Image(image));
    }
    if service.kind == Kind::Config {
        return ConfigArtifact::named(identity, tag).map(Artifact::Config);
    }
    Some(Artifact::Zip(ZipArtifact {
        tag: tag.to_owned(),
        sha256_b64: identity.to_owned(),
        size: 0,
        files: 0,
        bytes: Arc::from(Vec::new()),
    }))
}

/// What a target's own restore of the recorded deploy `record` starts from `old`.
fn restored(old: Option<String>, record: &DeployRecord) -> Applied {
    Applied {
        old_artifact: old,
        new_artifact: record.artifact.clone(),
        ids: record.ids.clone(),
    }
}

/// Whether the recorded deploy `record` of `service` can still be rolled back to: an image
/// must be in its registry by digest ([`Artifacts::present`]), what the target restores itself
/// (a Lambda version) must still exist ([`Deployer::restorable`]). Read-only. Every rollback
/// path asks it before changing anything; `status` asks it of the recorded `previous`.
pub async fn restorable(
    service: &Service,
    record: &DeployRecord,
    target: &dyn Deployer,
    artifacts: &dyn Artifacts,
) -> Result<Presence, EngineError> {
    if service.image.is_some() {
        return match artifact_of(service, &record.artifact, &record.tag) {
            Some(artifact) => Ok(artifacts.present(&artifact).await?),
            // Not an image reference: the rollback refuses it by itself.
            None => Ok(Presence::Present),
        };
    }
    Ok(target.restorable(&restored(None, record)).await?)
}

/// How a rollout starts: over to an artifact, a restart on the one that runs, or the target's
/// own restore of an earlier deploy whose code is not kept (a zip, by its recorded ids).
enum Begin<'a> {
    Roll(&'a Artifact),
    Restart(&'a Artifact),
    Restore(&'a Applied),
}

/// The fence of a flow without a claim: no change may be made.
struct NoClaim;

impl deployer_core::Fence for NoClaim {
    fn check(&self) -> Result<(), String> {
        Err("this run holds no deploy lock".into())
    }
}
