//! The flows and the scheduler on scripted parts, one regression per item of the issue that
//! the engine owns: the no-op path, a failed release re-run, the first deploy's rollback to a
//! tag reference, `wait` after a timeout, failures of runs without the lock, a panicking flow.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deployer_core::Manifest;
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

const TAG: &str = "/m/app/image-tag";
const STATE: &str = "/m/app/deploy-state";
const LOCK: &str = "/m/app/lock";

fn id(tag: &str) -> String {
    image(tag).deploy_id()
}

struct Bed {
    _dir: tempfile::TempDir,
    manifest: Arc<Manifest>,
    start: Instant,
    shared: Arc<SharedStore>,
    world: Arc<Mutex<World>>,
    panics: BTreeSet<String>,
    /// Images the registry no longer has (deploy ids).
    gone: Arc<Mutex<BTreeSet<String>>>,
}

impl Bed {
    fn new(live: &str, rollback_on_smoke: bool) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let manifest = super::model::manifest(dir.path(), rollback_on_smoke);
        Bed::with(dir, manifest, live)
    }

    fn with(dir: tempfile::TempDir, manifest: Arc<Manifest>, live: &str) -> Self {
        let start = Instant::now();
        Bed {
            _dir: dir,
            manifest,
            start,
            shared: SharedStore::new(VirtualClock::new(start, 0)),
            world: World::new(live),
            panics: BTreeSet::new(),
            gone: Arc::default(),
        }
    }

    async fn record(&self, tag: &str) {
        let state = format!(
            r#"{{"current":{{"tag":"{tag}","artifact":"{}","ids":{{}},"at":"2026-01-01T00:00:00Z"}}}}"#,
            id(tag)
        );
        self.shared.memory.put(TAG, tag).await.unwrap();
        self.shared.memory.put(STATE, &state).await.unwrap();
    }

    fn engine(&self, run: usize) -> Engine {
        let steps = Steps::new(None, Vec::new());
        let store = Arc::new(RunStore {
            shared: self.shared.clone(),
            run,
            faults: Mutex::new(Box::new(|_, _| Fault::None)),
            steps: steps.clone(),
        });
        let locks = Locks::new(
            store.clone(),
            Arc::new(VirtualClock::new(self.start, 0)),
            Duration::from_secs(6),
            format!("run {run}"),
        );
        Engine::new(
            self.manifest.clone(),
            store,
            locks,
            Arc::new(FakeTargets {
                world: self.world.clone(),
                run,
                steps: steps.clone(),
                panics: self.panics.clone(),
            }),
            Arc::new(FakeArtifacts {
                gone: self.gone.clone(),
            }),
            Arc::new(FakeSmoke {
                world: self.world.clone(),
                steps,
            }),
        )
        .with_lock_wait(Some(Duration::from_secs(2)))
    }

    async fn run(&self, mode: Mode, tag: &str) -> ServiceResult {
        let input = ServiceInput {
            service: "app".into(),
            tag: tag.into(),
            local: None,
            bases: std::collections::BTreeMap::new(),
        };
        let mut results = self
            .engine(1)
            .run(mode, vec![input], std::future::pending())
            .await;
        results.pop().unwrap()
    }

    fn state(&self) -> ServiceState {
        self.shared
            .memory
            .value(STATE)
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    }

    fn calls(&self) -> Vec<(&'static str, String)> {
        lock(&self.shared.calls)
            .iter()
            .map(|c| (c.op, c.name.clone()))
            .collect()
    }
}

/// The no-op path: one batched read of the records, the live read, no lock, no write.
#[tokio::test(start_paused = true)]
async fn a_noop_deploy_reads_once_and_writes_nothing() {
    let bed = Bed::new(&id("t1"), false);
    bed.record("t1").await;
    let result = bed.run(Mode::Deploy { wait: true }, "t1").await;
    assert_eq!(result.action, Action::Unchanged, "{result:#?}");
    assert_eq!(
        bed.calls(),
        [("get_many", format!("{TAG},{STATE}"))],
        "one batched read, nothing else"
    );
    assert!(lock(&bed.world).mutations.is_empty());
}

/// The issue's second reproduction: a failed smoke check, then a re-run of the same release.
/// The re-run checks it again and fails again; nothing is ever recorded for it. Once the
/// release is fixed (here: the check passes), the re-run records it without rolling again.
#[tokio::test(start_paused = true)]
async fn a_rerun_of_a_release_whose_smoke_check_failed_fails_again() {
    let bed = Bed::new(&id("t0"), false);
    bed.record("t0").await;
    lock(&bed.world).healthy.insert(id("t1"), false);
    let first = bed.run(Mode::Deploy { wait: true }, "t1").await;
    assert_eq!(first.action, Action::Failed);
    assert!(
        first
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("smoke check failed"),
        "{first:#?}"
    );
    let second = bed.run(Mode::Deploy { wait: true }, "t1").await;
    assert_eq!(second.action, Action::Failed, "{second:#?}");
    assert_eq!(second.smoke.as_ref().map(|s| s.ok), Some(false));
    assert_eq!(bed.shared.memory.value(TAG).as_deref(), Some("t0"));
    assert_eq!(bed.state().current.unwrap().artifact, id("t0"));
    assert_eq!(
        lock(&bed.world).mutations.len(),
        1,
        "the re-run did not roll again"
    );

    lock(&bed.world).healthy.insert(id("t1"), true);
    let third = bed.run(Mode::Deploy { wait: true }, "t1").await;
    assert_eq!(third.action, Action::Recorded, "{third:#?}");
    assert_eq!(bed.shared.memory.value(TAG).as_deref(), Some("t1"));
    let state = bed.state();
    assert_eq!(state.current.unwrap().artifact, id("t1"));
    assert_eq!(state.previous.unwrap().artifact, id("t0"));
}

/// Item 3: `rollback_on_smoke_failure` on a first deploy (nothing recorded) returns to what
/// ran before — a tag reference that IaC registered — pinned by its digest.
#[tokio::test(start_paused = true)]
async fn a_first_deploy_rolls_back_to_the_tag_reference_that_ran_before() {
    let bed = Bed::new("reg/app:bootstrap", true);
    lock(&bed.world).healthy.insert(id("t1"), false);
    let result = bed.run(Mode::Deploy { wait: true }, "t1").await;
    assert_eq!(result.action, Action::Failed);
    let pinned = "reg/app@sha256:bootstrap";
    assert_eq!(
        result.smoke.as_ref().unwrap().rolled_back_to.as_deref(),
        Some(pinned),
        "{result:#?}"
    );
    assert_eq!(lock(&bed.world).live.as_deref(), Some(pinned));
    assert_eq!(bed.shared.memory.value(TAG), None);
    assert_eq!(bed.state().current, None);
}

/// Item 8: `wait` on a `--no-wait` rollout that times out keeps it pending (it may still
/// finish); a rollout that failed is no longer pending.
#[tokio::test(start_paused = true)]
async fn wait_keeps_a_rollout_pending_after_a_timeout_and_clears_a_failed_one() {
    let bed = Bed::new(&id("t0"), false);
    bed.record("t0").await;
    lock(&bed.world).endings.insert(id("t1"), Ending::Stuck);
    let started = bed.run(Mode::Deploy { wait: false }, "t1").await;
    assert_eq!(started.action, Action::Started, "{started:#?}");
    let pending = bed.state().pending.unwrap();
    let waited = bed.run(Mode::Wait, "").await;
    assert_eq!(waited.action, Action::Failed);
    assert!(waited.error.unwrap().message.contains("timed out"));
    assert_eq!(bed.state().pending, Some(pending), "still pending");
    assert_eq!(bed.shared.memory.value(TAG).as_deref(), Some("t0"));

    lock(&bed.world)
        .endings
        .insert(id("t2"), Ending::FailsRolledBack);
    bed.run(Mode::Deploy { wait: false }, "t2").await;
    let waited = bed.run(Mode::Wait, "").await;
    assert_eq!(waited.action, Action::Failed);
    let state = bed.state();
    assert_eq!(state.pending, None, "a failed rollout is not pending");
    assert!(!state.last.unwrap().ok);
}

/// Item 6: a run that never held the lock writes no deploy state, whatever failed.
#[tokio::test(start_paused = true)]
async fn a_run_that_never_held_the_lock_writes_nothing() {
    let bed = Bed::new(&id("t0"), false);
    bed.record("t0").await;
    let other = r#"{"id":"other","holder":"pid 1 elsewhere","renewed_at":1800000000,"renewed_at_ms":1800000000000,"lease_s":600}"#;
    bed.shared.memory.put(LOCK, other).await.unwrap();
    let before = bed.shared.memory.value(STATE);
    let result = bed.run(Mode::Deploy { wait: true }, "t1").await;
    assert_eq!(result.action, Action::Failed);
    let message = result.error.unwrap().message;
    assert!(
        message.contains("another deploy of `app` is running: pid 1 elsewhere"),
        "{message}"
    );
    assert_eq!(
        bed.shared.memory.value(STATE),
        before,
        "deploy-state untouched"
    );
    assert_eq!(bed.shared.memory.value(LOCK).as_deref(), Some(other));
}

/// Item 7: a flow that panics fails its dependants instead of leaving them waiting forever.
#[tokio::test(start_paused = true)]
async fn a_panicking_flow_fails_its_dependants_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
    let text = r#"[project]
name = "m"
ssm_prefix = "/m"
registry = "reg"

[services.app]
kind = "ecs"
dockerfile = "Dockerfile"
platform = "linux/amd64"
inputs = ["Dockerfile"]
repository = "app"
cluster = "c"
service = "s"

[services.web]
kind = "ecs"
dockerfile = "Dockerfile"
platform = "linux/amd64"
inputs = ["Dockerfile"]
repository = "web"
cluster = "c"
service = "w"
depends_on = ["app"]
"#;
    let manifest =
        Arc::new(Manifest::parse(&dir.path().join("deployer.toml"), text, dir.path()).unwrap());
    let mut bed = Bed::with(dir, manifest, &id("t0"));
    bed.panics.insert("app".into());
    let inputs = ["app", "web"]
        .map(|service| ServiceInput {
            service: service.into(),
            tag: "t1".into(),
            local: None,
            bases: std::collections::BTreeMap::new(),
        })
        .to_vec();
    let results = tokio::time::timeout(
        Duration::from_secs(600),
        bed.engine(1)
            .run(Mode::Deploy { wait: true }, inputs, std::future::pending()),
    )
    .await
    .expect("the dependant must not wait forever");
    assert_eq!(results[0].action, Action::Failed);
    assert!(
        results[0]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("panicked"),
        "{:#?}",
        results[0]
    );
    assert_eq!(results[1].action, Action::Skipped, "{:#?}", results[1]);
}

/// Ctrl-C: the flows in flight stop, are reported cancelled with the phase they were in, and
/// record nothing.
#[tokio::test(start_paused = true)]
async fn cancelling_reports_what_was_in_flight_and_records_nothing() {
    let bed = Bed::new(&id("t0"), false);
    bed.record("t0").await;
    lock(&bed.world).endings.insert(id("t1"), Ending::Stuck);
    let input = ServiceInput {
        service: "app".into(),
        tag: "t1".into(),
        local: None,
        bases: std::collections::BTreeMap::new(),
    };
    let results = bed
        .engine(1)
        .run(
            Mode::Deploy { wait: true },
            vec![input],
            tokio::time::sleep(Duration::from_secs(5)),
        )
        .await;
    assert_eq!(results[0].action, Action::Cancelled);
    let message = &results[0].error.as_ref().unwrap().message;
    assert!(message.contains("interrupted during wait"), "{message}");
    assert_eq!(bed.shared.memory.value(TAG).as_deref(), Some("t0"));
}

/// `base_images = "resolve"`: a deploy records the digests its `FROM` images resolved to, and
/// `plan` names the ones that moved since.
#[tokio::test(start_paused = true)]
async fn the_base_images_a_deploy_resolved_are_recorded_and_plan_names_the_moved_ones() {
    let bed = Bed::new(&id("t0"), false);
    bed.record("t0").await;
    let input = |tag: &str, digest: &str| ServiceInput {
        service: "app".into(),
        tag: tag.into(),
        local: None,
        bases: std::collections::BTreeMap::from([("python:3.12".to_owned(), digest.to_owned())]),
    };
    let deployed = bed
        .engine(1)
        .run(
            Mode::Deploy { wait: true },
            vec![input("t1", "sha256:aa")],
            std::future::pending(),
        )
        .await;
    assert_eq!(deployed[0].action, Action::Updated, "{:#?}", deployed[0]);
    assert_eq!(
        bed.state().current.unwrap().bases["python:3.12"],
        "sha256:aa"
    );
    let planned = bed
        .engine(1)
        .run(
            Mode::Plan,
            vec![input("t2", "sha256:bb")],
            std::future::pending(),
        )
        .await;
    assert_eq!(
        planned[0].moved_bases,
        ["python:3.12: sha256:aa → sha256:bb"],
        "{:#?}",
        planned[0]
    );
    let same = bed
        .engine(1)
        .run(
            Mode::Plan,
            vec![input("t1", "sha256:aa")],
            std::future::pending(),
        )
        .await;
    assert!(same[0].moved_bases.is_empty());
}

/// Issue 17: `deployer rollback` to an image the registry no longer has (a lifecycle rule
/// expired it) fails before anything is changed: no update, the records as they were.
#[tokio::test(start_paused = true)]
async fn a_rollback_to_an_image_the_registry_lost_fails_before_any_change() {
    let bed = Bed::new(&id("t0"), false);
    bed.record("t0").await;
    let deployed = bed.run(Mode::Deploy { wait: true }, "t1").await;
    assert_eq!(deployed.action, Action::Updated, "{deployed:#?}");
    assert_eq!(bed.state().previous.unwrap().artifact, id("t0"));
    lock(&bed.gone).insert(id("t0"));
    let mutations = lock(&bed.world).mutations.len();
    let before = bed.state();

    let result = bed.run(Mode::Rollback, "").await;
    assert_eq!(result.action, Action::Failed, "{result:#?}");
    let error = result.error.unwrap();
    assert_eq!(
        error.message,
        format!(
            "cannot roll back to {}: it was removed from the registry; nothing was changed",
            id("t0")
        )
    );
    assert!(!error.usage, "a failed rollback, exit code 1");
    assert_eq!(
        lock(&bed.world).mutations.len(),
        mutations,
        "no update call"
    );
    assert_eq!(lock(&bed.world).live, Some(id("t1")));
    assert_eq!(bed.shared.memory.value(TAG).as_deref(), Some("t1"));
    let after = bed.state();
    assert_eq!(
        (after.current, after.previous),
        (before.current, before.previous),
        "the records as they were (only `last` says the attempt failed)"
    );
    assert!(!after.last.unwrap().ok);
}

/// Issue 17: a target that can return to the recorded deploy in place (AgentCore endpoints
/// moved back to a runtime version that still exists) is asked first, after the registry
/// check, and no rollover is started; the rollback is recorded as usual.
#[tokio::test(start_paused = true)]
async fn a_rollback_the_target_makes_in_place_starts_no_rollover() {
    let bed = Bed::new(&id("t0"), false);
    bed.record("t0").await;
    let deployed = bed.run(Mode::Deploy { wait: true }, "t1").await;
    assert_eq!(deployed.action, Action::Updated, "{deployed:#?}");
    lock(&bed.world).reverts = true;
    let before = lock(&bed.world).mutations.len();

    let result = bed.run(Mode::Rollback, "").await;
    assert_eq!(result.action, Action::RolledBack, "{result:#?}");
    let world = lock(&bed.world);
    assert_eq!(world.revert_calls, 1);
    let made: Vec<&str> = world.mutations[before..]
        .iter()
        .map(|(_, what)| what.as_str())
        .collect();
    assert_eq!(made, [format!("revert to {}", id("t0"))], "no rollover");
    assert_eq!(world.live, Some(id("t0")));
    drop(world);
    assert_eq!(bed.shared.memory.value(TAG).as_deref(), Some("t0"));
    assert_eq!(bed.state().current.unwrap().artifact, id("t0"));
}

/// The in-place return is asked only after the registry check: a recorded image that is gone
/// fails the rollback before the target is asked.
#[tokio::test(start_paused = true)]
async fn a_rollback_in_place_is_not_asked_for_an_image_the_registry_lost() {
    let bed = Bed::new(&id("t0"), false);
    bed.record("t0").await;
    bed.run(Mode::Deploy { wait: true }, "t1").await;
    lock(&bed.world).reverts = true;
    lock(&bed.gone).insert(id("t0"));
    let result = bed.run(Mode::Rollback, "").await;
    assert_eq!(result.action, Action::Failed, "{result:#?}");
    assert_eq!(lock(&bed.world).revert_calls, 0);
    assert_eq!(lock(&bed.world).live, Some(id("t1")));
}

/// Issue 17: the rollback after a failed smoke check checks its target the same way: the
/// image it would go back to is gone, so the deploy fails without a second rollover.
#[tokio::test(start_paused = true)]
async fn the_rollback_after_a_failed_smoke_check_checks_its_target_first() {
    let bed = Bed::new(&id("t0"), true);
    bed.record("t0").await;
    lock(&bed.world).healthy.insert(id("t1"), false);
    lock(&bed.gone).insert(id("t0"));
    let result = bed.run(Mode::Deploy { wait: true }, "t1").await;
    assert_eq!(result.action, Action::Failed, "{result:#?}");
    let message = result.error.unwrap().message;
    assert!(
        message.contains(&format!(
            "cannot roll back to {}: it was removed from the registry; nothing was changed",
            id("t0")
        )),
        "{message}"
    );
    assert_eq!(
        lock(&bed.world).mutations.len(),
        1,
        "the rollout of t1, and no rollback"
    );
    assert_eq!(bed.shared.memory.value(TAG).as_deref(), Some("t0"));
}

/// Issue 16: a successful rollout asks for no diagnosis; a failed one gets the target's beside
/// its own error; a diagnosis that does not answer within the limit is "unavailable", and the
/// error and exit code stay the rollout's.
#[tokio::test(start_paused = true)]
async fn a_diagnosis_is_asked_for_only_after_a_failure_and_never_replaces_its_error() {
    let bed = Bed::new(&id("t0"), false);
    bed.record("t0").await;
    let ok = bed.run(Mode::Deploy { wait: true }, "t1").await;
    assert_eq!(ok.action, Action::Updated, "{ok:#?}");
    assert_eq!((lock(&bed.world).diagnoses, ok.diagnosis), (0, None));

    lock(&bed.world)
        .endings
        .insert(id("t2"), Ending::FailsRolledBack);
    let failed = bed.run(Mode::Deploy { wait: true }, "t2").await;
    assert_eq!(failed.action, Action::Failed);
    let error = failed.error.unwrap();
    assert!(
        error.message.contains("circuit breaker") && !error.usage,
        "{error:?}"
    );
    assert_eq!(lock(&bed.world).diagnoses, 1);
    assert_eq!(
        failed.diagnosis.unwrap().reasons,
        [format!("{} crashed", id("t2"))]
    );
    // The failure is recorded with what the target said, for `status` the day after.
    let last = bed.state().last.unwrap();
    assert!(!last.ok);
    assert_eq!(
        last.diagnosis.unwrap().reasons,
        [format!("{} crashed", id("t2"))]
    );

    lock(&bed.world).diagnosis_hangs = true;
    lock(&bed.world)
        .endings
        .insert(id("t3"), Ending::FailsRolledBack);
    let started = tokio::time::Instant::now();
    let hung = bed.run(Mode::Deploy { wait: true }, "t3").await;
    assert!(started.elapsed() < crate::flow::DIAGNOSIS_LIMIT * 2);
    assert!(hung.error.unwrap().message.contains("circuit breaker"));
    assert_eq!(
        hung.diagnosis.unwrap().unavailable,
        ["not gathered within 20s"]
    );
    assert!(
        bed.state().current.unwrap().tag == "t1",
        "nothing recorded for t2 or t3"
    );
}

/// Reads the log tail the fake target's log source holds: the lines, or a failure.
struct FakeLogs {
    fail: bool,
    asked: Arc<Mutex<Vec<(String, i64, usize)>>>,
}

#[async_trait::async_trait]
impl crate::LogTails for FakeLogs {
    async fn tail(
        &self,
        sources: &[deployer_core::LogSource],
        since_ms: i64,
        lines: usize,
    ) -> Result<Vec<deployer_core::LogLine>, crate::External> {
        lock(&self.asked).push((sources[0].group.clone(), since_ms, lines));
        if self.fail {
            return Err(crate::External::failure(
                "FilterLogEvents /fake/app: AccessDeniedException",
            ));
        }
        Ok((0..40)
            .map(|i| deployer_core::LogLine {
                timestamp_ms: i,
                source: "app/stream".into(),
                message: format!("line {i} {}", "x".repeat(200)),
            })
            .collect())
    }
}

/// Issue 16: a target whose diagnosis reads no log lines gets its log sources' tail through
/// the engine's reader — only after a failure; a reader that fails is "unavailable"; the
/// recorded failure keeps a diagnosis cut to fit the deploy state.
#[tokio::test(start_paused = true)]
async fn a_failed_rollout_gets_its_log_tail_and_a_failed_read_is_unavailable() {
    let bed = Bed::new(&id("t0"), false);
    bed.record("t0").await;
    let asked = Arc::new(Mutex::new(Vec::new()));
    let engine = |fail: bool| {
        bed.engine(1).with_logs(Arc::new(FakeLogs {
            fail,
            asked: asked.clone(),
        }))
    };
    let input = |tag: &str| ServiceInput {
        service: "app".into(),
        tag: tag.into(),
        local: None,
        bases: std::collections::BTreeMap::new(),
    };
    let ok = engine(false)
        .run(
            Mode::Deploy { wait: true },
            vec![input("t1")],
            std::future::pending(),
        )
        .await
        .pop()
        .unwrap();
    assert_eq!(ok.action, Action::Updated);
    assert!(lock(&asked).is_empty(), "a success reads no logs");

    lock(&bed.world)
        .endings
        .insert(id("t2"), Ending::FailsRolledBack);
    let failed = engine(false)
        .run(
            Mode::Deploy { wait: true },
            vec![input("t2")],
            std::future::pending(),
        )
        .await
        .pop()
        .unwrap();
    let diagnosis = failed.diagnosis.unwrap();
    assert_eq!(diagnosis.logs.len(), 40, "the reader's lines, as given");
    let (group, since, lines) = lock(&asked)[0].clone();
    assert_eq!(
        (group.as_str(), lines),
        ("/fake/app", crate::flow::LOG_TAIL)
    );
    assert!(since > 0, "from about when the run started: {since}");
    let recorded = bed.state().last.unwrap().diagnosis.unwrap();
    assert!(
        serde_json::to_string(&recorded).unwrap().len() <= crate::records::KEPT_DIAGNOSIS,
        "{recorded:?}"
    );
    assert_eq!(
        recorded.reasons, diagnosis.reasons,
        "the reasons survive the cut"
    );
    assert_eq!(
        recorded.logs.last().map(|l| l.timestamp_ms),
        Some(39),
        "the newest lines are kept"
    );

    lock(&bed.world)
        .endings
        .insert(id("t3"), Ending::FailsRolledBack);
    let unreadable = engine(true)
        .run(
            Mode::Deploy { wait: true },
            vec![input("t3")],
            std::future::pending(),
        )
        .await
        .pop()
        .unwrap();
    assert!(
        unreadable
            .error
            .unwrap()
            .message
            .contains("circuit breaker")
    );
    let diagnosis = unreadable.diagnosis.unwrap();
    assert!(diagnosis.logs.is_empty());
    assert_eq!(
        diagnosis.unavailable,
        ["log tail: FilterLogEvents /fake/app: AccessDeniedException"]
    );
}
