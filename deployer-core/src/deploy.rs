//! The [`Deployer`] trait: one shape for every compute target.

use std::collections::BTreeMap;
use std::time::Instant;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::poll::PollPolicy;
use crate::progress::{Phase, Progress};
use crate::{Artifact, Changes, DeployError, Diagnosis, LogSource};

/// What runs now, as the target reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveState {
    /// The live artifact identity in the target's own terms: an image URI (`repo:tag` or
    /// `repo@sha256:…`) or a zip's `CodeSha256`. `None` when the target runs nothing the
    /// deployer recognises.
    pub artifact: Option<String>,
    /// Identifiers of the live state, e.g. `task_definition` → ARN, `version` → `"7"`.
    pub ids: BTreeMap<String, String>,
    /// One line describing the live state for plans and logs. Never contains secrets.
    pub summary: String,
}

impl LiveState {
    /// Whether the live artifact identity is `wanted` ([`Artifact::matches_live`]); `false`
    /// when the target runs nothing the deployer recognises.
    pub fn runs(&self, wanted: &Artifact) -> bool {
        self.artifact
            .as_deref()
            .is_some_and(|artifact| wanted.matches_live(artifact))
    }
}

/// What an update call started: enough to wait for it later (`deployer wait`) or to roll it
/// back. Serializable so it can be recorded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The artifact that ran before the update.
    pub old_artifact: Option<String>,
    /// The artifact the update rolls to.
    pub new_artifact: String,
    /// Identifiers of the update: e.g. `old_task_definition`, `task_definition`, `deployment`,
    /// `old_version`, `version`.
    pub ids: BTreeMap<String, String>,
}

/// A compute target that can be rolled over to a new artifact.
///
/// One value is built per service (it holds the service's target configuration and the SDK
/// clients it needs). The shape is always: [`read_live`](Deployer::read_live) →
/// [`is_current`](Deployer::is_current) → [`apply`](Deployer::apply) →
/// [`wait`](Deployer::wait); [`deploy()`] runs it. Implementations report progress through the
/// given [`Progress`] and never print.
#[async_trait]
pub trait Deployer: Send + Sync {
    /// What this deployer rolls, for messages: e.g. `ECS service acme/app-api`.
    fn target(&self) -> String;

    /// Reads the live state. Read-only: never changes anything.
    async fn read_live(&self) -> Result<LiveState, DeployError>;

    /// Whether the live state already runs `wanted` **and its rollout completed successfully**:
    /// a rollout still in flight, or one that ended failed without a rollback (an ECS deployment
    /// `FAILED` with the circuit breaker's rollback off, a Lambda update `Failed`), is not
    /// current even though the live resource names `wanted`. [`apply`](Deployer::apply) is then
    /// called and must adopt the rollout in flight, or start it again. The default compares the
    /// live artifact identity with [`Artifact::matches_live`] (targets that report no rollout
    /// state).
    fn is_current(&self, live: &LiveState, wanted: &Artifact) -> bool {
        live.runs(wanted)
    }

    /// Whether traffic reaches `artifact` in the live state: what a record of `artifact` may
    /// claim. The same as [`is_current`](Deployer::is_current) unless the target serves
    /// through an indirection that [`rollback`](Deployer::rollback) moves on its own (a
    /// Lambda alias pointed back at an earlier version while `$LATEST` keeps the newer code).
    fn serves(&self, live: &LiveState, artifact: &Artifact) -> bool {
        self.is_current(live, artifact)
    }

    /// Starts the rollover from `live` to `wanted`. Returns once the update call was accepted.
    /// Each mutating call is preceded by [`Progress::before_mutation`].
    async fn apply(
        &self,
        live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError>;

    /// Waits until the rollover started by `applied` really succeeded, or fails when it failed,
    /// was rolled back, or `policy.timeout` ran out. Returns `applied` with any identifiers only
    /// known once settled (e.g. a published version).
    async fn wait(
        &self,
        applied: &Applied,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<Applied, DeployError>;

    /// Restarts the live service on the artifact it already runs (ECS `--force-new-deployment`:
    /// mutable tags, or a dependency changed) and returns what to [`wait`](Deployer::wait) for.
    /// Targets without such a notion return [`DeployError::Mismatch`].
    async fn restart(&self, live: &LiveState, progress: &Progress) -> Result<Applied, DeployError> {
        let _ = (live, progress);
        Err(DeployError::Mismatch(format!(
            "{} cannot be restarted in place",
            self.target()
        )))
    }

    /// What a rollover from `live` to `wanted` would change item by item, for targets made of
    /// many items (a config set: rows or parameters): `plan` shows it. Read-only. The default,
    /// for targets whose artifact is one thing (an image, a zip), is `None`.
    async fn changes(
        &self,
        live: &LiveState,
        wanted: &Artifact,
    ) -> Result<Option<Changes>, DeployError> {
        let _ = (live, wanted);
        Ok(None)
    }

    /// What in the live target differs from what it says it runs (`live.artifact`), item by
    /// item: changes made out of band since the last deploy, for `status`. Read-only. The
    /// default, for targets whose live artifact is all there is to compare, is `None`.
    async fn drift(&self, live: &LiveState) -> Result<Option<Changes>, DeployError> {
        let _ = live;
        Ok(None)
    }

    /// The CloudFormation stack that owns the target: the value of its
    /// [`STACK_NAME_TAG`] tag (CloudFormation and so CDK tag what they create), for the IaC
    /// revert guard of `status` and `plan`. Read-only. The default, for targets whose tags are
    /// not read, is `None`.
    async fn owning_stack(&self) -> Result<Option<String>, DeployError> {
        Ok(None)
    }

    /// Why the rollover `applied` failed or has not finished, in the target's own words (stopped
    /// tasks, events, failure reasons, the last log lines), every text redacted. Called only
    /// after [`wait`](Deployer::wait) failed or timed out, under a short time limit of the
    /// caller's; read-only. What cannot be read goes into [`Diagnosis::unavailable`]: a
    /// diagnosis never fails. The default, for targets that have nothing to add to their
    /// error, is empty.
    async fn diagnose(&self, applied: &Applied) -> Diagnosis {
        let _ = applied;
        Diagnosis::default()
    }

    /// Where the live service writes its logs, for `deployer logs`: the CloudWatch Logs groups
    /// (and the stream prefix within each) of what runs now — an ECS task definition's
    /// `awslogs` containers, a function's log group, a runtime's. Read-only. The default, for
    /// targets that write no logs of their own (a config set), is none.
    async fn log_sources(&self, live: &LiveState) -> Result<Vec<LogSource>, DeployError> {
        let _ = live;
        Ok(Vec::new())
    }

    /// Returns the service to an earlier successful deploy whose artifact cannot be sent again
    /// (a zip, whose bytes are not kept), identified by that deploy's recorded `previous` ids —
    /// e.g. a Lambda alias pointed back at the recorded version. Returns what to
    /// [`wait`](Deployer::wait) for. Image targets need not implement it: an image rollback is
    /// an ordinary rollover to the recorded digest. The default says it is not possible.
    async fn rollback(
        &self,
        live: &LiveState,
        previous: &Applied,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let _ = (live, progress);
        Err(DeployError::not_kept(&self.target(), previous))
    }

    /// Whether what [`rollback`](Deployer::rollback) would restore from `previous` still
    /// exists (a Lambda version that was deleted cannot be pointed at again). Read-only; asked
    /// before any rollback changes anything. The default, for targets that restore nothing of
    /// their own (image targets roll over to a recorded digest, which the registry is asked
    /// about), is [`Presence::Present`].
    async fn restorable(&self, previous: &Applied) -> Result<Presence, DeployError> {
        let _ = previous;
        Ok(Presence::Present)
    }

    /// Returns an image target to the earlier successful deploy `previous` (its recorded ids)
    /// without sending its image again, when the target still holds it: an AgentCore runtime
    /// whose recorded version still exists has its named endpoints moved back to that version,
    /// the runtime left alone. Returns what to [`wait`](Deployer::wait) for, or `None` when the
    /// target cannot (then the rollback is an ordinary rollover to the recorded digest). Asked
    /// only after the registry confirmed the recorded image; each mutating call is preceded by
    /// [`Progress::before_mutation`]. The default is `None`.
    async fn revert(
        &self,
        live: &LiveState,
        previous: &Applied,
        progress: &Progress,
    ) -> Result<Option<Applied>, DeployError> {
        let _ = (live, previous, progress);
        Ok(None)
    }
}

/// The tag CloudFormation puts on the resources of a stack, naming the stack.
pub const STACK_NAME_TAG: &str = "aws:cloudformation:stack-name";

/// Whether a rollback target (an image by digest, a published version) still exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// It exists (or cannot be asked about: an image of another registry).
    Present,
    /// It is gone.
    Gone {
        /// What removed it, as far as the registry or service says, in one line: e.g.
        /// `it was removed from the registry (ECR: Requested image not found)`.
        why: String,
    },
}

/// What a deploy did to one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The live artifact already was the wanted one: nothing was called.
    Unchanged,
    /// The service was rolled over and the rollout succeeded.
    Updated,
}

/// The result of [`deploy()`] for one service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The service name from the manifest.
    pub service: String,
    /// The target, as [`Deployer::target`] describes it.
    pub target: String,
    /// What was done.
    pub action: Action,
    /// The artifact that ran before.
    pub old_artifact: Option<String>,
    /// The artifact that runs now.
    pub new_artifact: Option<String>,
    /// AWS identifiers: the live ones when unchanged, the update's when updated.
    pub ids: BTreeMap<String, String>,
    /// Milliseconds spent reading the live state.
    pub read_ms: u64,
    /// Milliseconds spent in the update call.
    pub apply_ms: u64,
    /// Milliseconds spent waiting for the rollout.
    pub wait_ms: u64,
}

/// Drives one target once through read → decide → apply → wait: the trait's shape, for tests
/// and tools that hold their own lock. It takes no lock, runs no smoke check and records
/// nothing; the deploy flow with those is `deployer-engine`'s.
pub async fn deploy(
    target: &dyn Deployer,
    wanted: &Artifact,
    progress: &Progress,
    policy: &PollPolicy,
) -> Result<Outcome, DeployError> {
    let start = Instant::now();
    progress.emit(Phase::Read, format!("reading {}", target.target()));
    let live = target.read_live().await?;
    let read_ms = elapsed_ms(start);
    let mut outcome = Outcome {
        service: progress.service().to_owned(),
        target: target.target(),
        action: Action::Unchanged,
        old_artifact: live.artifact.clone(),
        new_artifact: live.artifact.clone(),
        ids: live.ids.clone(),
        read_ms,
        apply_ms: 0,
        wait_ms: 0,
    };
    if target.is_current(&live, wanted) {
        progress.emit(Phase::Done, format!("unchanged: already runs {wanted}"));
        return Ok(outcome);
    }
    let start = Instant::now();
    progress.emit(Phase::Apply, format!("rolling over to {wanted}"));
    let applied = target.apply(&live, wanted, progress).await?;
    outcome.apply_ms = elapsed_ms(start);
    let start = Instant::now();
    progress.emit(Phase::Wait, "waiting for the rollout");
    let applied = target.wait(&applied, policy, progress).await?;
    outcome.wait_ms = elapsed_ms(start);
    outcome.action = Action::Updated;
    outcome.new_artifact = Some(applied.new_artifact);
    outcome.ids = applied.ids;
    Ok(outcome)
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::ImageArtifact;

    struct Fake {
        live: Mutex<Option<String>>,
        applies: AtomicUsize,
        fail_wait: bool,
    }

    #[async_trait]
    impl Deployer for Fake {
        fn target(&self) -> String {
            "fake".into()
        }
        async fn read_live(&self) -> Result<LiveState, DeployError> {
            Ok(LiveState {
                artifact: self.live.lock().unwrap().clone(),
                ..LiveState::default()
            })
        }
        async fn apply(
            &self,
            live: &LiveState,
            wanted: &Artifact,
            _: &Progress,
        ) -> Result<Applied, DeployError> {
            self.applies.fetch_add(1, Ordering::SeqCst);
            *self.live.lock().unwrap() = Some(wanted.deploy_id());
            Ok(Applied {
                old_artifact: live.artifact.clone(),
                new_artifact: wanted.deploy_id(),
                ids: BTreeMap::from([("revision".into(), "2".into())]),
            })
        }
        async fn wait(
            &self,
            applied: &Applied,
            _: &PollPolicy,
            _: &Progress,
        ) -> Result<Applied, DeployError> {
            if self.fail_wait {
                return Err(DeployError::RolloutFailed {
                    reason: "circuit breaker".into(),
                    events: vec![],
                });
            }
            Ok(applied.clone())
        }
    }

    fn wanted() -> Artifact {
        Artifact::Image(ImageArtifact {
            repository_uri: "r/app".into(),
            tag: "t2".into(),
            digest: Some("sha256:2".into()),
        })
    }

    fn fake(live: &str, fail_wait: bool) -> Fake {
        Fake {
            live: Mutex::new(Some(live.into())),
            applies: AtomicUsize::new(0),
            fail_wait,
        }
    }

    #[tokio::test]
    async fn updates_then_unchanged() {
        let target = fake("r/app@sha256:1", false);
        let progress = Progress::discard("app");
        let first = deploy(&target, &wanted(), &progress, &PollPolicy::default())
            .await
            .unwrap();
        assert_eq!(first.action, Action::Updated);
        assert_eq!(first.old_artifact.as_deref(), Some("r/app@sha256:1"));
        assert_eq!(first.new_artifact.as_deref(), Some("r/app@sha256:2"));
        assert_eq!(first.ids["revision"], "2");
        let second = deploy(&target, &wanted(), &progress, &PollPolicy::default())
            .await
            .unwrap();
        assert_eq!(second.action, Action::Unchanged);
        assert_eq!(target.applies.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn failed_wait_is_an_error() {
        let target = fake("r/app@sha256:1", true);
        let error = deploy(
            &target,
            &wanted(),
            &Progress::discard("app"),
            &PollPolicy::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(error, DeployError::RolloutFailed { .. }));
    }
}
