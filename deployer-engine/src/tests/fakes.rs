//! Test doubles: a virtual clock, a store with scripted faults, a scripted compute target with
//! its world, artifacts and smoke checks. Each records what it saw so that model tests can
//! check the engine's invariants after every step.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deployer_core::manifest::Smoke;
use deployer_core::poll::PollPolicy;
use deployer_core::{
    Applied, Artifact, DeployError, Deployer, ImageArtifact, LiveState, Presence, Progress, Service,
};

use crate::clock::Clock;
use crate::ports::{Artifacts, Built, External, ServiceInput, SmokeChecks, Targets};
use crate::store::{Entry, MemoryStore, Store, StoreError};

/// Checks a write (run, name, value) before it lands.
pub(crate) type WriteCheck = Box<dyn Fn(usize, &str, &str) + Send + Sync>;
/// Chooses the fault of each call (operation, name).
pub(crate) type Faults = Box<dyn FnMut(&str, &str) -> Fault + Send>;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Wall-clock time that follows tokio's (paused, auto-advancing) clock, with a skew.
#[derive(Clone, Debug)]
pub(crate) struct VirtualClock {
    start: tokio::time::Instant,
    skew_ms: i64,
}

/// The wall-clock origin of every virtual clock.
pub(crate) fn base() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

impl VirtualClock {
    pub(crate) fn new(start: tokio::time::Instant, skew_ms: i64) -> Self {
        VirtualClock { start, skew_ms }
    }

    /// The true time (no skew) in milliseconds since the epoch.
    pub(crate) fn true_ms(&self) -> u64 {
        crate::clock::millis(base() + self.start.elapsed())
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> SystemTime {
        let now = base() + self.start.elapsed();
        if self.skew_ms >= 0 {
            now + Duration::from_millis(self.skew_ms.unsigned_abs())
        } else {
            now - Duration::from_millis(self.skew_ms.unsigned_abs())
        }
    }
}

/// What the store does with one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answers normally.
    None,
    /// Fails without effect (the client gave up).
    Error,
    /// Takes effect, but the answer is lost and the client's retry sees the effect: a create
    /// answers "already exists", a delete "not found".
    LostAnswer,
}

/// A call the store saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Call {
    pub(crate) run: usize,
    pub(crate) op: &'static str,
    pub(crate) name: String,
}

/// A [`MemoryStore`] shared by several runs, each reaching it through a [`RunStore`] with its
/// own faults; every write passes `on_write` (the invariant checks) first.
pub(crate) struct SharedStore {
    pub(crate) memory: MemoryStore,
    pub(crate) calls: Mutex<Vec<Call>>,
    pub(crate) on_write: Mutex<Option<WriteCheck>>,
}

impl SharedStore {
    pub(crate) fn new(clock: VirtualClock) -> Arc<Self> {
        Arc::new(SharedStore {
            memory: MemoryStore::with_clock(move || {
                let ms = clock.true_ms();
                UNIX_EPOCH + Duration::from_millis(ms)
            }),
            calls: Mutex::new(Vec::new()),
            on_write: Mutex::new(None),
        })
    }

    fn written(&self, run: usize, name: &str, value: &str) {
        if let Some(check) = lock(&self.on_write).as_ref() {
            check(run, name, value);
        }
    }
}

/// One run's way into the [`SharedStore`]: its faults, its steps (for kills), its delays.
pub(crate) struct RunStore {
    pub(crate) shared: Arc<SharedStore>,
    pub(crate) run: usize,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) steps: Arc<Steps>,
}

/// Counts a run's steps and stops the run (forever pending) once the kill step is reached.
#[derive(Debug, Default)]
pub(crate) struct Steps {
    count: AtomicUsize,
    kill_at: Option<usize>,
    pub(crate) killed: tokio::sync::Notify,
    pub(crate) delays: Mutex<Vec<u64>>,
}

impl Steps {
    pub(crate) fn new(kill_at: Option<usize>, delays: Vec<u64>) -> Arc<Self> {
        Arc::new(Steps {
            count: AtomicUsize::new(0),
            kill_at,
            killed: tokio::sync::Notify::new(),
            delays: Mutex::new(delays),
        })
    }

    /// One step: a delay from the script, then — at the kill step — never returns.
    pub(crate) async fn step(&self) {
        let n = self.count.fetch_add(1, Ordering::SeqCst);
        let delay = {
            let delays = lock(&self.delays);
            if delays.is_empty() {
                0
            } else {
                delays[n % delays.len()]
            }
        };
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.kill_at == Some(n) {
            self.killed.notify_one();
            std::future::pending::<()>().await;
        }
    }
}

impl RunStore {
    async fn fault(&self, op: &'static str, name: &str) -> Fault {
        self.steps.step().await;
        lock(&self.shared.calls).push(Call {
            run: self.run,
            op,
            name: name.to_owned(),
        });
        (lock(&self.faults))(op, name)
    }

    fn error(op: &'static str, name: &str) -> StoreError {
        StoreError {
            operation: op,
            name: name.to_owned(),
            message: "ThrottlingException: Rate exceeded".into(),
        }
    }
}

#[async_trait]
impl Store for RunStore {
    async fn get(&self, name: &str) -> Result<Option<Entry>, StoreError> {
        match self.fault("get", name).await {
            Fault::Error => Err(RunStore::error("GetParameter", name)),
            _ => self.shared.memory.get(name).await,
        }
    }

    async fn get_many(&self, names: &[String]) -> Result<BTreeMap<String, Entry>, StoreError> {
        match self.fault("get_many", &names.join(",")).await {
            Fault::Error => Err(RunStore::error("GetParameters", &names.join(","))),
            _ => self.shared.memory.get_many(names).await,
        }
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        match self.fault("put", name).await {
            Fault::Error => Err(RunStore::error("PutParameter", name)),
            _ => {
                self.shared.written(self.run, name, value);
                self.shared.memory.put(name, value).await
            }
        }
    }

    async fn create(&self, name: &str, value: &str) -> Result<bool, StoreError> {
        match self.fault("create", name).await {
            Fault::Error => Err(RunStore::error("PutParameter", name)),
            Fault::LostAnswer => {
                if self.shared.memory.create(name, value).await? {
                    self.shared.written(self.run, name, value);
                }
                Ok(false)
            }
            Fault::None => {
                let created = self.shared.memory.create(name, value).await?;
                if created {
                    self.shared.written(self.run, name, value);
                }
                Ok(created)
            }
        }
    }

    async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        match self.fault("delete", name).await {
            Fault::Error => Err(RunStore::error("DeleteParameter", name)),
            Fault::LostAnswer => {
                self.shared.memory.delete(name).await?;
                Ok(false)
            }
            Fault::None => self.shared.memory.delete(name).await,
        }
    }
}

/// How a rollout of an artifact ends, in the scripted world.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Completes after a few polls.
    Completes,
    /// Fails; the target rolls back to what ran before (ECS's circuit breaker).
    FailsRolledBack,
    /// Fails and stays on the new artifact, marked failed (circuit breaker without rollback).
    FailsInPlace,
    /// Never finishes.
    Stuck,
}

/// The rollout state of the scripted service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rollout {
    Settled,
    InFlight {
        deployment: usize,
        polls_left: u32,
        ending: Ending,
        previous: Option<String>,
    },
    Failed,
}

/// The live service of the model: what it runs, and everything the invariants need to know.
pub(crate) struct World {
    pub(crate) live: Option<String>,
    pub(crate) rollout: Rollout,
    pub(crate) deployments: usize,
    /// Artifacts (deploy ids) whose smoke check passed while they were live and settled, since
    /// they last became live.
    pub(crate) smoke_passed: BTreeSet<String>,
    /// How each artifact's rollouts end.
    pub(crate) endings: BTreeMap<String, Ending>,
    /// Whether each artifact passes its smoke check.
    pub(crate) healthy: BTreeMap<String, bool>,
    /// Mutating calls: (run, what).
    pub(crate) mutations: Vec<(usize, String)>,
    /// Invariant violations seen.
    pub(crate) violations: Vec<String>,
    /// Checked before every mutating call of the target: I2.
    pub(crate) on_mutation: Option<Box<dyn Fn(usize) -> Option<String> + Send + Sync>>,
    /// `diagnose` calls made.
    pub(crate) diagnoses: usize,
    /// Whether `diagnose` never answers (the engine's limit must end it).
    pub(crate) diagnosis_hangs: bool,
    /// Whether the target returns to a recorded deploy in place (`Deployer::revert`, as
    /// AgentCore endpoints do), and how often it did.
    pub(crate) reverts: bool,
    pub(crate) revert_calls: usize,
}

impl World {
    pub(crate) fn new(live: &str) -> Arc<Mutex<World>> {
        Arc::new(Mutex::new(World {
            live: Some(live.to_owned()),
            rollout: Rollout::Settled,
            deployments: 0,
            smoke_passed: BTreeSet::from([live.to_owned()]),
            endings: BTreeMap::new(),
            healthy: BTreeMap::new(),
            mutations: Vec::new(),
            violations: Vec::new(),
            on_mutation: None,
            diagnoses: 0,
            diagnosis_hangs: false,
            reverts: false,
            revert_calls: 0,
        }))
    }

    pub(crate) fn settled_on(&self, artifact: &str) -> bool {
        self.live.as_deref() == Some(artifact) && self.rollout == Rollout::Settled
    }

    fn mutate(&mut self, run: usize, what: String) {
        if let Some(check) = &self.on_mutation
            && let Some(violation) = check(run)
        {
            self.violations.push(format!(
                "I2: run {run} made `{what}` without a valid claim: {violation}"
            ));
        }
        self.mutations.push((run, what));
    }

    fn start(&mut self, run: usize, artifact: &str) -> usize {
        self.deployments += 1;
        let deployment = self.deployments;
        let ending = self
            .endings
            .get(artifact)
            .copied()
            .unwrap_or(Ending::Completes);
        let previous = self.live.clone();
        if previous.as_deref() != Some(artifact) {
            self.smoke_passed.remove(artifact);
        }
        self.mutate(run, format!("roll to {artifact} (deployment {deployment})"));
        self.live = Some(artifact.to_owned());
        self.rollout = Rollout::InFlight {
            deployment,
            polls_left: 2,
            ending,
            previous,
        };
        deployment
    }

    /// One poll of deployment `deployment`: `Some(Ok)` completed, `Some(Err)` failed, `None`
    /// still rolling.
    fn poll(&mut self, deployment: usize) -> Option<Result<(), String>> {
        let Rollout::InFlight {
            deployment: current,
            polls_left,
            ending,
            previous,
        } = self.rollout.clone()
        else {
            return Some(Err(format!(
                "deployment {deployment} is no longer in flight ({:?})",
                self.rollout
            )));
        };
        if current != deployment {
            return Some(Err(format!(
                "deployment {deployment} was replaced by {current}"
            )));
        }
        if ending == Ending::Stuck {
            return None;
        }
        if polls_left > 0 {
            self.rollout = Rollout::InFlight {
                deployment,
                polls_left: polls_left - 1,
                ending,
                previous,
            };
            return None;
        }
        match ending {
            Ending::Completes => {
                self.rollout = Rollout::Settled;
                Some(Ok(()))
            }
            Ending::FailsRolledBack => {
                if let Some(previous) = &previous
                    && self.live.as_deref() != Some(previous.as_str())
                {
                    self.smoke_passed.remove(previous);
                }
                self.live = previous;
                self.rollout = Rollout::Settled;
                Some(Err("circuit breaker: rolled back".into()))
            }
            Ending::FailsInPlace => {
                self.rollout = Rollout::Failed;
                Some(Err("circuit breaker: failed (no rollback)".into()))
            }
            Ending::Stuck => None,
        }
    }
}

/// A scripted [`Deployer`] over a [`World`], for one run.
pub(crate) struct FakeTarget {
    pub(crate) world: Arc<Mutex<World>>,
    pub(crate) run: usize,
    pub(crate) steps: Arc<Steps>,
}

const ROLLOUT: &str = "rollout";
const DEPLOYMENT: &str = "deployment";

#[async_trait]
impl Deployer for FakeTarget {
    fn target(&self) -> String {
        "fake service".into()
    }

    async fn read_live(&self) -> Result<LiveState, DeployError> {
        self.steps.step().await;
        let world = lock(&self.world);
        let state = match &world.rollout {
            Rollout::Settled => "settled".to_owned(),
            Rollout::InFlight { deployment, .. } => format!("in_flight:{deployment}"),
            Rollout::Failed => "failed".to_owned(),
        };
        Ok(LiveState {
            artifact: world.live.clone(),
            ids: BTreeMap::from([(ROLLOUT.to_owned(), state.clone())]),
            summary: format!("runs {:?} ({state})", world.live),
        })
    }

    fn is_current(&self, live: &LiveState, wanted: &Artifact) -> bool {
        live.artifact.as_deref() == Some(wanted.deploy_id().as_str())
            && live.ids.get(ROLLOUT).map(String::as_str) == Some("settled")
    }

    async fn apply(
        &self,
        live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        self.steps.step().await;
        let wanted_id = wanted.deploy_id();
        // Adopt a rollout of the wanted artifact still in flight.
        if let Some(in_flight) = live
            .ids
            .get(ROLLOUT)
            .and_then(|s| s.strip_prefix("in_flight:"))
            && live.artifact.as_deref() == Some(wanted_id.as_str())
        {
            return Ok(Applied {
                old_artifact: None,
                new_artifact: wanted_id,
                ids: BTreeMap::from([(DEPLOYMENT.to_owned(), in_flight.to_owned())]),
            });
        }
        progress.before_mutation("Update")?;
        let mut world = lock(&self.world);
        let old = world.live.clone();
        let deployment = world.start(self.run, &wanted_id);
        Ok(Applied {
            old_artifact: old,
            new_artifact: wanted_id,
            ids: BTreeMap::from([(DEPLOYMENT.to_owned(), deployment.to_string())]),
        })
    }

    async fn wait(
        &self,
        applied: &Applied,
        policy: &PollPolicy,
        _progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let deployment: usize = applied
            .ids
            .get(DEPLOYMENT)
            .and_then(|d| d.parse().ok())
            .ok_or(DeployError::MissingField {
                operation: "apply",
                field: "deployment",
            })?;
        let deadline = tokio::time::Instant::now() + policy.timeout;
        loop {
            self.steps.step().await;
            let polled = lock(&self.world).poll(deployment);
            match polled {
                Some(Ok(())) => return Ok(applied.clone()),
                Some(Err(reason)) => {
                    return Err(DeployError::RolloutFailed {
                        reason,
                        events: Vec::new(),
                    });
                }
                None => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DeployError::Timeout {
                    what: format!("deployment {deployment}"),
                    after: policy.timeout,
                    last_state: "in flight".into(),
                    events: Vec::new(),
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn diagnose(&self, applied: &Applied) -> deployer_core::Diagnosis {
        let hangs = {
            let mut world = lock(&self.world);
            world.diagnoses += 1;
            world.diagnosis_hangs
        };
        if hangs {
            std::future::pending::<()>().await;
        }
        deployer_core::Diagnosis {
            reasons: vec![format!("{} crashed", applied.new_artifact)],
            ..deployer_core::Diagnosis::default()
        }
    }

    async fn log_sources(
        &self,
        live: &LiveState,
    ) -> Result<Vec<deployer_core::LogSource>, DeployError> {
        let _ = live;
        Ok(vec![deployer_core::LogSource {
            group: "/fake/app".into(),
            region: None,
            stream_prefix: None,
            label: "app".into(),
            redact: Vec::new(),
        }])
    }

    async fn revert(
        &self,
        live: &LiveState,
        previous: &Applied,
        progress: &Progress,
    ) -> Result<Option<Applied>, DeployError> {
        self.steps.step().await;
        if !lock(&self.world).reverts {
            return Ok(None);
        }
        progress.before_mutation("Revert")?;
        let mut world = lock(&self.world);
        world.revert_calls += 1;
        let deployment = world.start(self.run, &previous.new_artifact);
        if let Some(last) = world.mutations.last_mut() {
            last.1 = format!("revert to {}", previous.new_artifact);
        }
        Ok(Some(Applied {
            old_artifact: live.artifact.clone(),
            new_artifact: previous.new_artifact.clone(),
            ids: BTreeMap::from([(DEPLOYMENT.to_owned(), deployment.to_string())]),
        }))
    }

    async fn restart(&self, live: &LiveState, progress: &Progress) -> Result<Applied, DeployError> {
        self.steps.step().await;
        progress.before_mutation("Restart")?;
        let artifact = live.artifact.clone().unwrap_or_default();
        let mut world = lock(&self.world);
        let deployment = world.start(self.run, &artifact);
        Ok(Applied {
            old_artifact: Some(artifact.clone()),
            new_artifact: artifact,
            ids: BTreeMap::from([(DEPLOYMENT.to_owned(), deployment.to_string())]),
        })
    }
}

/// [`Targets`] handing out [`FakeTarget`]s of one run.
pub(crate) struct FakeTargets {
    pub(crate) world: Arc<Mutex<World>>,
    pub(crate) run: usize,
    pub(crate) steps: Arc<Steps>,
    /// Services whose deployer panics when built (a bug in a deployer).
    pub(crate) panics: BTreeSet<String>,
}

impl Targets for FakeTargets {
    fn deployer(&self, service: &Service) -> Result<Box<dyn Deployer>, External> {
        assert!(
            !self.panics.contains(&service.name),
            "the deployer of {} panicked",
            service.name
        );
        Ok(Box::new(FakeTarget {
            world: self.world.clone(),
            run: self.run,
            steps: self.steps.clone(),
        }))
    }
}

/// The image of content tag `tag` in the model's registry.
pub(crate) fn image(tag: &str) -> Artifact {
    Artifact::Image(ImageArtifact {
        repository_uri: "reg/app".into(),
        tag: tag.to_owned(),
        digest: Some(format!("sha256:{tag}")),
    })
}

/// A registry that has every image already, except those whose deploy ids are in `gone`
/// (removed since they were pushed: a lifecycle rule expired them).
#[derive(Default)]
pub(crate) struct FakeArtifacts {
    pub(crate) gone: Arc<Mutex<BTreeSet<String>>>,
}

#[async_trait]
impl Artifacts for FakeArtifacts {
    async fn find(
        &self,
        _service: &Service,
        input: &ServiceInput,
        _progress: &Progress,
    ) -> Result<Option<Artifact>, External> {
        Ok(Some(image(&input.tag)))
    }

    async fn build(
        &self,
        _service: &Service,
        input: &ServiceInput,
        _progress: &Progress,
    ) -> Result<Built, External> {
        Ok(Built {
            artifact: image(&input.tag),
            durations_ms: BTreeMap::new(),
        })
    }

    async fn digest(&self, _repository_uri: &str, tag: &str) -> Result<Option<String>, External> {
        Ok(Some(format!("sha256:{tag}")))
    }

    async fn present(&self, artifact: &Artifact) -> Result<Presence, External> {
        if lock(&self.gone).contains(&artifact.deploy_id()) {
            Ok(Presence::Gone {
                why: "it was removed from the registry".into(),
            })
        } else {
            Ok(Presence::Present)
        }
    }
}

/// Smoke checks that pass exactly for healthy artifacts, against what the world runs now.
pub(crate) struct FakeSmoke {
    pub(crate) world: Arc<Mutex<World>>,
    pub(crate) steps: Arc<Steps>,
}

#[async_trait]
impl SmokeChecks for FakeSmoke {
    async fn run(
        &self,
        _service: &Service,
        _check: &Smoke,
        _ids: &BTreeMap<String, String>,
        _progress: &Progress,
    ) -> Result<String, String> {
        self.steps.step().await;
        let mut world = lock(&self.world);
        let Some(live) = world.live.clone() else {
            return Err("nothing runs".into());
        };
        if world.rollout != Rollout::Settled {
            return Err(format!("{live} is not settled"));
        }
        if world.healthy.get(&live).copied().unwrap_or(true) {
            world.smoke_passed.insert(live.clone());
            Ok(format!("{live} answers"))
        } else {
            Err(format!("smoke check failed: {live} does not answer"))
        }
    }
}
