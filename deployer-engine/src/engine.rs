//! The scheduler: every selected service's flow concurrently, each independently of the
//! others; builds and rollouts at most `project.concurrency` at once, the read-only phase
//! beside them; `depends_on` gates; cancellation.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deployer_core::{Manifest, Phase, Progress, ProgressEvent, ProgressSink};
use tokio::sync::{OnceCell, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::flow::Flow;
use crate::lock::Locks;
use crate::outcome::{Action, Failure, ServiceResult};
use crate::ports::{Artifacts, LogTails, ServiceInput, SmokeChecks, Targets};
use crate::records::{Names, Records};
use crate::store::{Store, StoreError};

/// How many services read their live state at once (the read phase is not held behind
/// `project.concurrency`, which limits builds and rollouts).
const READ_CONCURRENCY: usize = 64;

/// What to do with each service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Read only: the action a deploy would take.
    Plan,
    /// Make the artifact available (`dry_run`: only ask the registry).
    Build {
        /// Only ask whether the registry has it.
        dry_run: bool,
    },
    /// Artifact, rollover, wait (unless `wait` is false), smoke check, record.
    Deploy {
        /// Wait for the rollout; without, it is recorded as pending for [`Mode::Wait`].
        wait: bool,
    },
    /// Wait for a rollout started without waiting, smoke-check and record it.
    Wait,
    /// Back to the previous successful deploy recorded.
    Rollback,
}

/// The deploy engine: runs a [`Mode`] for the services of a manifest. See the crate
/// documentation for the flows and their invariants.
#[derive(Clone)]
pub struct Engine {
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) locks: Locks,
    pub(crate) targets: Arc<dyn Targets>,
    pub(crate) artifacts: Arc<dyn Artifacts>,
    pub(crate) smoke: Arc<dyn SmokeChecks>,
    pub(crate) logs: Option<Arc<dyn LogTails>>,
    sink: Arc<dyn ProgressSink>,
    pub(crate) lock_wait: Option<Duration>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("project", &self.manifest.project.name)
            .field("locks", &self.locks)
            .field("lock_wait", &self.lock_wait)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine for `manifest`'s services: records in `store`, locks from `locks`, deployers
    /// from `targets`, artifacts from `artifacts`, smoke checks by `smoke`. Progress is
    /// discarded until [`Engine::with_progress`].
    pub fn new(
        manifest: Arc<Manifest>,
        store: Arc<dyn Store>,
        locks: Locks,
        targets: Arc<dyn Targets>,
        artifacts: Arc<dyn Artifacts>,
        smoke: Arc<dyn SmokeChecks>,
    ) -> Self {
        Engine {
            manifest,
            store,
            locks,
            targets,
            artifacts,
            smoke,
            logs: None,
            sink: Arc::new(deployer_core::progress::Discard),
            lock_wait: None,
        }
    }

    /// Progress events go to `sink`.
    #[must_use]
    pub fn with_progress(mut self, sink: Arc<dyn ProgressSink>) -> Self {
        self.sink = sink;
        self
    }

    /// A failed rollout's diagnosis reads the target's log tail with `logs` when the target
    /// did not read one itself.
    #[must_use]
    pub fn with_logs(mut self, logs: Arc<dyn LogTails>) -> Self {
        self.logs = Some(logs);
        self
    }

    /// How long to wait for another deploy's lock (default: the service's rollout timeout).
    #[must_use]
    pub fn with_lock_wait(mut self, wait: Option<Duration>) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Runs `mode` for every service of `inputs`, concurrently and independently: one
    /// service's failure does not stop the others. When `cancel` completes (Ctrl-C), nothing
    /// new starts and the services in flight are stopped and reported as cancelled, with
    /// nothing recorded for them. Results come back in the order of `inputs`.
    pub async fn run(
        &self,
        mode: Mode,
        inputs: Vec<ServiceInput>,
        cancel: impl Future<Output = ()>,
    ) -> Vec<ServiceResult> {
        let names: Vec<String> = inputs.iter().map(|i| i.service.clone()).collect();
        let stages = self.manifest.stages(&names);
        let stage_of: BTreeMap<String, usize> = stages
            .iter()
            .enumerate()
            .flat_map(|(stage, services)| services.iter().map(move |name| (name.clone(), stage)))
            .collect();
        let tracker = Arc::new(Tracker {
            inner: self.sink.clone(),
            phases: Mutex::new(BTreeMap::new()),
        });
        let run = Arc::new(Run {
            engine: self.clone(),
            permits: Semaphore::new(self.manifest.project.concurrency.max(1)),
            reads: Semaphore::new(READ_CONCURRENCY),
            gates: names
                .iter()
                .map(|name| (name.clone(), watch::channel(None).0))
                .collect(),
            selected: names.iter().cloned().collect(),
            names: names
                .iter()
                .map(|name| (name.clone(), Names::of(&self.manifest.project, name)))
                .collect(),
            records: OnceCell::new(),
            started: Instant::now(),
            tracker: tracker.clone(),
        });
        let mut tasks = JoinSet::new();
        let mut ids = BTreeMap::new();
        // Earlier stages first, so that they get the first permits.
        let mut order: Vec<(usize, ServiceInput)> = inputs.into_iter().enumerate().collect();
        order.sort_by_key(|(index, input)| {
            (stage_of.get(&input.service).copied().unwrap_or(0), *index)
        });
        let mut results: BTreeMap<usize, ServiceResult> = BTreeMap::new();
        let mut pending: BTreeMap<usize, ServiceInput> = BTreeMap::new();
        for (index, input) in order {
            let stage = stage_of.get(&input.service).copied();
            pending.insert(index, input.clone());
            let run = run.clone();
            let handle = tasks.spawn(async move {
                let mut result = run_service(&run, &input, mode).await;
                result.stage = stage;
                result
            });
            ids.insert(handle.id(), index);
        }
        tokio::pin!(cancel);
        let mut cancelled = false;
        loop {
            tokio::select! {
                joined = tasks.join_next_with_id() => match joined {
                    Some(Ok((id, result))) => {
                        if let Some(index) = ids.get(&id) {
                            results.insert(*index, result);
                        }
                    }
                    Some(Err(error)) if error.is_panic() => {
                        // The task's gate guard opened its gate (as failed) while unwinding.
                        if let Some(index) = ids.get(&error.id()) {
                            let message = panic_message(error);
                            let input = &pending[index];
                            let mut result = blank(&run, input, mode);
                            result.stage = stage_of.get(&input.service).copied();
                            fail(&mut result, &crate::error::EngineError::Internal(format!(
                                "the flow of `{}` panicked: {message}",
                                input.service
                            )));
                            results.insert(*index, result);
                        }
                    }
                    Some(Err(_)) => {}
                    None => break,
                },
                () = &mut cancel, if !cancelled => {
                    cancelled = true;
                    tracing::warn!("interrupted: starting nothing new, stopping what is in flight");
                    tasks.abort_all();
                }
            }
        }
        for (index, input) in &pending {
            if results.contains_key(index) {
                continue;
            }
            let mut result = blank(&run, input, mode);
            result.stage = stage_of.get(&input.service).copied();
            let phase = tracker.last_phase(&input.service);
            result.action = Action::Cancelled;
            result.error = Some(Failure {
                message: format!(
                    "interrupted{}: nothing was recorded for it; if a rollout had started it may still be running — check with `deployer status`",
                    phase.map(|p| format!(" during {p}")).unwrap_or_default()
                ),
                usage: false,
            });
            results.insert(*index, result);
        }
        let mut results: Vec<ServiceResult> = results.into_values().collect();
        if mode == Mode::Plan {
            mark_restarts(&self.manifest, &mut results);
        }
        results
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// What the services of one run share.
pub(crate) struct Run {
    pub(crate) engine: Engine,
    /// Builds and rollouts: `project.concurrency`.
    pub(crate) permits: Semaphore,
    /// The read-only phase.
    pub(crate) reads: Semaphore,
    gates: BTreeMap<String, watch::Sender<Option<Gate>>>,
    selected: BTreeSet<String>,
    names: BTreeMap<String, Names>,
    /// The records of every selected service, read once in batches.
    records: OnceCell<Result<BTreeMap<String, Records>, StoreError>>,
    pub(crate) started: Instant,
    tracker: Arc<Tracker>,
}

/// How a service's flow ended, for the services that depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// It succeeded; `changed`: it was rolled over (or restarted), not unchanged.
    Succeeded { changed: bool },
    /// It failed, was skipped, cancelled, or its task panicked.
    Failed,
}

impl Run {
    pub(crate) fn progress(&self, service: &str) -> Progress {
        Progress::new(service, self.tracker.clone())
    }

    pub(crate) fn names(&self, service: &str) -> Names {
        self.names
            .get(service)
            .cloned()
            .unwrap_or_else(|| Names::of(&self.engine.manifest.project, service))
    }

    pub(crate) fn since_start(&self) -> u64 {
        crate::flow::ms(self.started)
    }

    /// The records of `service`, from the run's batched read (made once, by whichever service
    /// asks first).
    pub(crate) async fn records(&self, service: &str) -> Result<Records, StoreError> {
        let all = self
            .records
            .get_or_init(|| async {
                let services: Vec<&String> = self.selected.iter().collect();
                let names: Vec<Names> = services.iter().map(|s| self.names(s)).collect();
                let read = Records::read_many(self.engine.store.as_ref(), &names).await?;
                Ok(services.into_iter().cloned().zip(read).collect())
            })
            .await;
        match all {
            Ok(all) => Ok(all.get(service).cloned().unwrap_or_default()),
            Err(error) => Err(error.clone()),
        }
    }

    fn open(&self, service: &str, gate: Gate) {
        if let Some(sender) = self.gates.get(service) {
            sender.send_replace(Some(gate));
        }
    }

    /// Waits for every selected service `service` depends on (directly or not). `Err` names
    /// a dependency that did not succeed; `Ok(true)` when one of them changed.
    pub(crate) async fn dependencies(&self, service: &str) -> Result<bool, String> {
        let mut changed = false;
        for dependency in self.engine.manifest.dependencies_of(service) {
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
}

/// Opens its service's gate as failed when dropped unopened: a flow that panicked or was
/// aborted never leaves its dependants waiting.
struct GateGuard<'r> {
    run: &'r Run,
    service: &'r str,
    opened: bool,
}

impl GateGuard<'_> {
    fn open(mut self, gate: Gate) {
        self.run.open(self.service, gate);
        self.opened = true;
    }
}

impl Drop for GateGuard<'_> {
    fn drop(&mut self) {
        if !self.opened {
            self.run.open(self.service, Gate::Failed);
        }
    }
}

/// One service's flow, start to end.
async fn run_service(run: &Run, input: &ServiceInput, mode: Mode) -> ServiceResult {
    let guard = GateGuard {
        run,
        service: &input.service,
        opened: false,
    };
    let mut result = blank(run, input, mode);
    let Some(service) = run.engine.manifest.services.get(&input.service) else {
        fail(
            &mut result,
            &crate::error::EngineError::Usage(format!(
                "no service `{}` in the manifest",
                input.service
            )),
        );
        return result;
    };
    let progress = run.progress(&service.name);
    let start = Instant::now();
    let mut flow = Flow::new(run, service, input, result, progress.clone());
    let outcome = flow.run(mode).await;
    let mut result = flow.finish().await;
    result.durations_ms.insert("total", crate::flow::ms(start));
    result.timeline.insert("finished", run.since_start());
    match outcome {
        Ok(action) => {
            result.action = action;
            progress.emit(Phase::Done, action.as_str().replace('_', " "));
            guard.open(Gate::Succeeded {
                changed: action.changed(),
            });
        }
        Err(error) => {
            let skipped = matches!(error, crate::error::EngineError::Skipped(_));
            // The diagnosis's gist on a second line: the GitHub annotation carries it.
            let why = result
                .diagnosis
                .as_ref()
                .and_then(deployer_core::Diagnosis::headline)
                .map(|line| format!("\n{line}"))
                .unwrap_or_default();
            progress.emit(
                Phase::Done,
                format!("{}{error}{why}", if skipped { "" } else { "failed: " }),
            );
            fail(&mut result, &error);
            if skipped {
                result.action = Action::Skipped;
            }
            guard.open(Gate::Failed);
        }
    }
    result
}

fn fail(result: &mut ServiceResult, error: &crate::error::EngineError) {
    result.action = Action::Failed;
    result.error = Some(Failure::of(error));
}

/// A result with nothing done yet.
pub(crate) fn blank(run: &Run, input: &ServiceInput, mode: Mode) -> ServiceResult {
    let kind = run
        .engine
        .manifest
        .services
        .get(&input.service)
        .map_or(deployer_core::Kind::Ecs, |s| s.kind);
    let _ = mode;
    ServiceResult {
        service: input.service.clone(),
        kind,
        action: Action::Failed,
        tag: input.tag.clone(),
        built: false,
        artifact: None,
        in_registry: None,
        live_tag: None,
        old_artifact: None,
        new_artifact: None,
        live_summary: None,
        ids: BTreeMap::new(),
        ssm_parameter: run.names(&input.service).tag,
        ssm_written: false,
        durations_ms: BTreeMap::new(),
        timeline: BTreeMap::new(),
        stage: None,
        moved_bases: Vec::new(),
        changes: None,
        smoke: None,
        diagnosis: None,
        warnings: Vec::new(),
        error: None,
    }
}

/// `plan`: a service that is unchanged itself but restarts when a dependency changes shows
/// `restart` when one of its dependencies has a change pending.
fn mark_restarts(manifest: &Manifest, results: &mut [ServiceResult]) {
    let changing: BTreeSet<String> = results
        .iter()
        .filter(|r| r.pending_change())
        .map(|r| r.service.clone())
        .collect();
    for result in results.iter_mut() {
        let Some(service) = manifest.services.get(&result.service) else {
            continue;
        };
        if result.action == Action::Unchanged
            && service.restart_on_dependency_change
            && manifest
                .dependencies_of(&service.name)
                .iter()
                .any(|d| changing.contains(d))
        {
            result.action = Action::Restart;
        }
    }
}

/// Forwards progress and remembers each service's last phase (to say what was in flight when
/// a run is interrupted).
struct Tracker {
    inner: Arc<dyn ProgressSink>,
    phases: Mutex<BTreeMap<String, Phase>>,
}

impl Tracker {
    fn last_phase(&self, service: &str) -> Option<Phase> {
        self.phases
            .lock()
            .ok()
            .and_then(|phases| phases.get(service).copied())
    }
}

impl ProgressSink for Tracker {
    fn event(&self, event: ProgressEvent) {
        if let Ok(mut phases) = self.phases.lock() {
            phases.insert(event.service.to_string(), event.phase);
        }
        self.inner.event(event);
    }
}
