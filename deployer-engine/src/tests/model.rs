//! The model test: two deploys of one service racing (and a third one afterwards), against an
//! in-memory store with scripted faults and delays, a scripted target whose rollouts complete,
//! fail (rolled back or in place) or never finish, smoke checks that pass only for healthy
//! artifacts, kills at any step and clocks skewed within the documented bound. The invariants
//! are checked at every write and every mutating call, and at the end:
//!
//! - I1: image-tag and deploy-state.current are only ever set to an artifact that the service
//!   runs, settled, and that passed its smoke check;
//! - I2: every mutating call and record write is made while the run's claim is the lock's
//!   claim and has not expired (by the true clock);
//! - I3: every run ends within its bound (lock wait, rollout timeouts, release budget);
//! - I4: a third, clean run afterwards converges (or fails the same way for a bad release),
//!   and leaves no lock behind.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deployer_core::Manifest;
use proptest::prelude::*;
use tokio::time::Instant;

use super::fakes::{
    Ending, FakeArtifacts, FakeSmoke, FakeTargets, Fault, RunStore, SharedStore, Steps,
    VirtualClock, World, image, lock,
};
use crate::engine::{Engine, Mode};
use crate::lock::Locks;
use crate::outcome::{Action, ServiceResult};
use crate::ports::ServiceInput;
use crate::records::ServiceState;
use crate::store::Store;

const LEASE: Duration = Duration::from_secs(6);
const TAG: &str = "/m/app/image-tag";
const STATE: &str = "/m/app/deploy-state";
const LOCK: &str = "/m/app/lock";
const TAGS: [&str; 3] = ["t0", "t1", "t2"];
const INITIAL: &str = "t9";

pub(crate) fn manifest(dir: &std::path::Path, rollback_on_smoke: bool) -> Arc<Manifest> {
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    let text = format!(
        r#"[project]
name = "m"
ssm_prefix = "/m"
registry = "reg"
concurrency = 2

[services.app]
kind = "ecs"
dockerfile = "Dockerfile"
platform = "linux/amd64"
inputs = ["Dockerfile"]
repository = "app"
cluster = "c"
service = "s"
timeout = "20s"
poll_interval = "1s"
smoke = {{ command = ["true"], timeout_s = 10 }}
rollback_on_smoke_failure = {rollback_on_smoke}
"#
    );
    Arc::new(Manifest::parse(&dir.join("deployer.toml"), &text, dir).unwrap())
}

fn id(tag: &str) -> String {
    image(tag).deploy_id()
}

#[derive(Clone, Debug)]
struct RunPlan {
    tag: usize,
    wait: bool,
    faults: Vec<u8>,
    delays: Vec<u64>,
    kill_at: Option<usize>,
    skew_ms: i64,
    lock_wait_s: u64,
}

#[derive(Clone, Debug)]
struct Scenario {
    rollback_on_smoke: bool,
    recorded: bool,
    endings: Vec<u8>,
    healthy: Vec<bool>,
    a: RunPlan,
    b: RunPlan,
    b_starts_ms: u64,
}

fn run_plan() -> impl Strategy<Value = RunPlan> {
    (
        0..3usize,
        prop::bool::weighted(0.8),
        prop::collection::vec(0..20u8, 0..30),
        prop::collection::vec(prop_oneof![3 => Just(0u64), 1 => 0..=1000u64], 0..8),
        prop::option::weighted(0.5, 0..40usize),
        -1000..=1000i64,
        0..40u64,
    )
        .prop_map(
            |(tag, wait, faults, delays, kill_at, skew_ms, lock_wait_s)| RunPlan {
                tag,
                wait,
                faults,
                delays,
                kill_at,
                skew_ms,
                lock_wait_s,
            },
        )
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<bool>(),
        prop::bool::weighted(0.7),
        prop::collection::vec(0..8u8, 3),
        prop::collection::vec(prop::bool::weighted(0.75), 3),
        run_plan(),
        run_plan(),
        0..30_000u64,
    )
        .prop_map(
            |(rollback_on_smoke, recorded, endings, healthy, a, b, b_starts_ms)| Scenario {
                rollback_on_smoke,
                recorded,
                endings,
                healthy,
                a,
                b,
                b_starts_ms,
            },
        )
}

fn ending(code: u8) -> Ending {
    match code {
        0 => Ending::FailsRolledBack,
        1 => Ending::FailsInPlace,
        2 => Ending::Stuck,
        _ => Ending::Completes,
    }
}

/// Per run: the claim ids it wrote, and its clock's skew.
type Claims = Arc<Mutex<BTreeMap<usize, (BTreeSet<String>, i64)>>>;

/// What every run of a scenario shares.
struct Model {
    dir: tempfile::TempDir,
    manifest: Arc<Manifest>,
    start: Instant,
    shared: Arc<SharedStore>,
    world: Arc<Mutex<World>>,
    /// Claim ids each run wrote, and its clock skew.
    claims: Claims,
    violations: Arc<Mutex<Vec<String>>>,
}

impl Model {
    fn new(scenario: &Scenario) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest(dir.path(), scenario.rollback_on_smoke);
        let start = Instant::now();
        let shared = SharedStore::new(VirtualClock::new(start, 0));
        let world = World::new(&id(INITIAL));
        {
            let mut world = lock(&world);
            for (index, tag) in TAGS.iter().enumerate() {
                world
                    .endings
                    .insert(id(tag), ending(scenario.endings[index]));
                world.healthy.insert(id(tag), scenario.healthy[index]);
            }
        }
        let model = Model {
            dir,
            manifest,
            start,
            shared,
            world,
            claims: Arc::new(Mutex::new(BTreeMap::new())),
            violations: Arc::new(Mutex::new(Vec::new())),
        };
        model.install_checks();
        model
    }

    /// I2 for the world's mutating calls and the record writes; I1 for the record writes.
    fn install_checks(&self) {
        let valid = {
            let shared = self.shared.clone();
            let claims = self.claims.clone();
            let start = self.start;
            move |run: usize| -> Option<String> {
                let value = shared.memory.value(LOCK)?;
                let claim: serde_json::Value = serde_json::from_str(&value).ok()?;
                let id = claim["id"].as_str().unwrap_or_default().to_owned();
                let claims = lock(&claims);
                let Some((ids, skew)) = claims.get(&run) else {
                    return Some(format!("run {run} never claimed the lock"));
                };
                if !ids.contains(&id) {
                    return Some(format!("the lock holds {id}, not a claim of run {run}"));
                }
                let renewed = claim["renewed_at_ms"].as_u64().unwrap_or(0);
                let renewed_true = i128::from(renewed) - i128::from(*skew);
                let now = i128::from(VirtualClock::new(start, 0).true_ms());
                let lease = i128::from(claim["lease_s"].as_u64().unwrap_or(0)) * 1000;
                (now > renewed_true + lease).then(|| {
                    format!(
                        "run {run}'s claim expired {} ms ago",
                        now - renewed_true - lease
                    )
                })
            }
        };
        let valid = Arc::new(valid);
        {
            let valid = valid.clone();
            lock(&self.world).on_mutation = Some(Box::new(move |run| {
                (run != 0).then(|| valid(run)).flatten()
            }));
        }
        let claims = self.claims.clone();
        let world = self.world.clone();
        let violations = self.violations.clone();
        let shared = Arc::downgrade(&self.shared);
        *lock(&self.shared.on_write) = Some(Box::new(move |run, name, value| {
            if name == LOCK {
                if let Ok(claim) = serde_json::from_str::<serde_json::Value>(value)
                    && let Some(id) = claim["id"].as_str()
                {
                    let skew = {
                        let claims = lock(&claims);
                        claims.get(&run).map_or(0, |(_, skew)| *skew)
                    };
                    lock(&claims)
                        .entry(run)
                        .or_insert_with(|| (BTreeSet::new(), skew))
                        .0
                        .insert(id.to_owned());
                }
                return;
            }
            if name != TAG && name != STATE {
                return;
            }
            if run != 0
                && let Some(problem) = valid(run)
            {
                lock(&violations).push(format!(
                    "I2: run {run} wrote {name} without a valid claim: {problem}"
                ));
            }
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let before = shared.memory.value(name);
            let world = lock(&world);
            let named = if name == TAG {
                (before.as_deref() != Some(value)).then(|| id(value))
            } else {
                let current = |text: Option<&str>| {
                    text.and_then(|t| serde_json::from_str::<ServiceState>(t).ok())
                        .and_then(|s| s.current)
                        .map(|c| c.artifact)
                };
                let after = current(Some(value));
                (after != current(before.as_deref()))
                    .then_some(after)
                    .flatten()
            };
            if let Some(artifact) = named
                && !(world.settled_on(&artifact) && world.smoke_passed.contains(&artifact))
            {
                lock(&violations).push(format!(
                    "I1: run {run} recorded {artifact} in {name}, but the service runs {:?} ({:?}), smoke passed for {:?}",
                    world.live, world.rollout, world.smoke_passed
                ));
            }
        }));
    }

    fn engine(&self, run: usize, plan: &RunPlan, steps: &Arc<Steps>) -> Engine {
        lock(&self.claims)
            .entry(run)
            .or_insert_with(|| (BTreeSet::new(), plan.skew_ms));
        let faults = plan.faults.clone();
        let mut n = 0usize;
        let store = Arc::new(RunStore {
            shared: self.shared.clone(),
            run,
            faults: Mutex::new(Box::new(move |_, _| {
                let code = faults.get(n).copied().unwrap_or(0);
                n += 1;
                match code {
                    1 | 2 => Fault::Error,
                    3 | 4 => Fault::LostAnswer,
                    _ => Fault::None,
                }
            })),
            steps: steps.clone(),
        });
        let clock = Arc::new(VirtualClock::new(self.start, plan.skew_ms));
        let locks = Locks::new(store.clone(), clock, LEASE, format!("run {run}"));
        Engine::new(
            self.manifest.clone(),
            store,
            locks,
            Arc::new(FakeTargets {
                world: self.world.clone(),
                run,
                steps: steps.clone(),
                panics: BTreeSet::new(),
            }),
            Arc::new(FakeArtifacts::default()),
            Arc::new(FakeSmoke {
                world: self.world.clone(),
                steps: steps.clone(),
            }),
        )
        .with_lock_wait(Some(Duration::from_secs(plan.lock_wait_s)))
    }

    /// Runs `plan` as run `run`: `None` when it was killed.
    async fn run(&self, run: usize, plan: &RunPlan) -> Option<ServiceResult> {
        let steps = Steps::new(plan.kill_at, plan.delays.clone());
        let engine = self.engine(run, plan, &steps);
        let input = ServiceInput {
            service: "app".into(),
            tag: TAGS[plan.tag].into(),
            local: None,
            bases: std::collections::BTreeMap::new(),
        };
        let delays: u64 = plan.delays.iter().sum::<u64>() * 40;
        // lock wait + two rollouts (and a back-out) + release budget + the scripted delays
        let bound = Duration::from_secs(plan.lock_wait_s + 3 * 20 + 30 + 60)
            + Duration::from_millis(delays);
        let mode = Mode::Deploy { wait: plan.wait };
        let work = engine.run(mode, vec![input], std::future::pending());
        let started = Instant::now();
        tokio::select! {
            results = tokio::time::timeout(bound, work) => match results {
                Ok(mut results) => results.pop(),
                Err(_) => {
                    lock(&self.violations).push(format!(
                        "I3: run {run} did not end within {bound:?} (ran {:?})",
                        started.elapsed()
                    ));
                    None
                }
            },
            () = steps.killed.notified() => None,
        }
    }

    fn violations(&self) -> Vec<String> {
        let mut all = lock(&self.violations).clone();
        all.extend(lock(&self.world).violations.clone());
        all
    }
}

async fn play(scenario: Scenario) -> Result<(), TestCaseError> {
    let model = Model::new(&scenario);
    if scenario.recorded {
        let state = format!(
            r#"{{"current":{{"tag":"{INITIAL}","artifact":"{}","ids":{{}},"at":"2026-01-01T00:00:00Z"}}}}"#,
            id(INITIAL)
        );
        model.shared.memory.put(TAG, INITIAL).await.unwrap();
        model.shared.memory.put(STATE, &state).await.unwrap();
    }
    let b_plan = scenario.b.clone();
    let b_start = Duration::from_millis(scenario.b_starts_ms);
    let (a, b) = tokio::join!(model.run(1, &scenario.a), async {
        tokio::time::sleep(b_start).await;
        model.run(2, &b_plan).await
    });
    // A run may leave its claim behind only when it was killed or said it could not release
    // it; the clean run clears such a claim only when it has something to do.
    let mut may_leave: BTreeSet<String> = BTreeSet::new();
    for (run, result) in [(1usize, &a), (2, &b)] {
        if result
            .as_ref()
            .is_none_or(|r| r.warnings.iter().any(|w| w.contains("deploy lock")))
        {
            may_leave.insert(format!("run {run}"));
        }
    }
    // I4: a clean run afterwards, deploying what B deployed.
    let clean = RunPlan {
        tag: scenario.b.tag,
        wait: true,
        faults: Vec::new(),
        delays: Vec::new(),
        kill_at: None,
        skew_ms: 0,
        lock_wait_s: 60,
    };
    let result = model.run(3, &clean).await;
    let violations = model.violations();
    prop_assert!(violations.is_empty(), "{violations:#?}");
    let Some(result) = result else {
        return Err(TestCaseError::fail("the clean run did not finish"));
    };
    let wanted = id(TAGS[clean.tag]);
    let good = {
        let world = lock(&model.world);
        world.endings.get(&wanted) == Some(&Ending::Completes)
            && world.healthy.get(&wanted) == Some(&true)
    };
    let state: ServiceState = model
        .shared
        .memory
        .value(STATE)
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    if good {
        prop_assert!(
            result.error.is_none()
                && matches!(
                    result.action,
                    Action::Updated | Action::Unchanged | Action::Recorded
                ),
            "the clean run of a good release did not converge: {result:#?}"
        );
        prop_assert_eq!(
            model.shared.memory.value(TAG),
            Some(TAGS[clean.tag].to_owned())
        );
        prop_assert_eq!(state.current.map(|c| c.artifact), Some(wanted.clone()));
        prop_assert!(lock(&model.world).settled_on(&wanted));
    } else {
        prop_assert!(
            result.error.is_some(),
            "the clean run recorded a bad release: {result:#?}"
        );
        prop_assert_ne!(state.current.map(|c| c.artifact), Some(wanted));
    }
    if let Some(left) = model.shared.memory.value(LOCK) {
        let holder = serde_json::from_str::<serde_json::Value>(&left).unwrap()["holder"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        prop_assert!(
            may_leave.contains(&holder),
            "{holder} left its lock behind without saying so: {left}\nA: {a:#?}\nB: {b:#?}"
        );
    }
    drop(model.dir);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn racing_killed_and_faulty_deploys_keep_the_invariants(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(play(scenario))?;
    }
}
