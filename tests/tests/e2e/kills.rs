//! SIGKILL at every phase boundary, then a re-run: nothing half-written survives a kill, and the
//! re-run converges without piling up task-definition revisions or function versions.
//!
//! Black box: the test reads the progress lines `deployer deploy --all -v` prints on stderr
//! (`<time> <service> <phase> <message>`) and kills the process the moment the line that marks
//! a boundary appears. For the two boundaries between two AWS calls (after RegisterTaskDefinition
//! and before UpdateService; after the rollout and before the SSM write) a fault proxy holds the
//! second call back until the process is dead, so the kill lands exactly there: the held call
//! never reaches moto.
//!
//! Each round first changes an input of every service (five new tags). Checked after each kill:
//! every SSM tag names an image in the registry and is the previous round's tag or, only for a
//! service whose rollout finished, this round's. After each re-run: every service runs its
//! wanted artifact (read from moto through the SDK), SSM holds its tag, `deployer status` says
//! in sync, and no two task-definition revisions or published versions carry the same artifact.
//! The closing `kills:` lines on stderr list the kills survived per boundary.
//!
//! A killed deploy leaves its per-service lock behind; the re-run takes it over once its lease
//! has expired. The lease is shortened to [`LEASE`] here (`DEPLOYER_LOCK_LEASE`), or each round
//! would wait out the default minute.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use deployer_tests::example::SERVICES;
use deployer_tests::{ExampleRepo, FaultProxy, Faults, LiveRun, ProgressLine, Testbed, testbed};

/// The lock lease of every run here.
const LEASE: &str = "3s";

/// Where to kill.
struct Boundary {
    name: &'static str,
    /// The line that marks it.
    marker: fn(&ProgressLine) -> bool,
    /// What the proxy holds back in this round, and how many held requests to wait for before
    /// killing.
    hold: Option<(Faults, u64)>,
}

fn boundaries() -> Vec<Boundary> {
    let hold = |operation: &str, body: Option<&str>, count: u64| {
        Some((Faults::new().hold(operation, body, 60_000), count))
    };
    vec![
        Boundary {
            name: "after hash (first progress line)",
            marker: |_| true,
            hold: None,
        },
        Boundary {
            name: "mid build (app-api's build started)",
            marker: |l| l.service == "app-api" && l.phase == "build",
            hold: None,
        },
        Boundary {
            name: "after push (app-api's image confirmed in the registry)",
            marker: |l| {
                l.service == "app-api" && l.phase == "push" && l.message.starts_with("pushed ")
            },
            hold: None,
        },
        Boundary {
            name: "after RegisterTaskDefinition, before UpdateService (app-api)",
            marker: |l| {
                l.service == "app-api" && l.phase == "apply" && l.message.starts_with("registered ")
            },
            hold: hold("^UpdateService$", None, 1),
        },
        Boundary {
            name: "after UpdateService (app-api)",
            marker: |l| l.service == "app-api" && l.message.starts_with("started deployment"),
            hold: None,
        },
        Boundary {
            name: "after UpdateAgentRuntime (inference-api)",
            marker: |l| {
                l.service == "inference-api" && l.message.starts_with("UpdateAgentRuntime accepted")
            },
            hold: None,
        },
        Boundary {
            name: "after UpdateFunctionCode (rag-ingestion, image)",
            marker: |l| l.service == "rag-ingestion" && l.phase == "wait",
            hold: None,
        },
        Boundary {
            name: "after UpdateFunctionCode (artifact-render, zip)",
            marker: |l| l.service == "artifact-render" && l.phase == "wait",
            hold: None,
        },
        Boundary {
            name: "after CreateEndpointConfig, before UpdateEndpoint (embeddings)",
            marker: |l| {
                l.service == "embeddings"
                    && l.phase == "apply"
                    && l.message.starts_with("created endpoint config ")
            },
            hold: hold("^UpdateEndpoint$", None, 1),
        },
        Boundary {
            name: "mid wait (embeddings: Updating)",
            marker: |l| {
                l.service == "embeddings" && l.phase == "wait" && l.message.starts_with("Updating")
            },
            hold: None,
        },
        Boundary {
            name: "mid wait (app-api: deployment IN_PROGRESS)",
            marker: |l| {
                l.service == "app-api" && l.phase == "wait" && l.message.contains("IN_PROGRESS")
            },
            hold: None,
        },
        Boundary {
            name: "mid wait (inference-api: UPDATING)",
            marker: |l| {
                l.service == "inference-api"
                    && l.phase == "wait"
                    && l.message.starts_with("UPDATING")
            },
            hold: None,
        },
        Boundary {
            name: "mid wait (rag-ingestion: LastUpdateStatus InProgress)",
            marker: |l| {
                l.service == "rag-ingestion"
                    && l.phase == "wait"
                    && l.message.contains("InProgress")
            },
            hold: None,
        },
        Boundary {
            // The four services of the first stage; app-api waits for embeddings, whose record is
            // held, so it never starts.
            name: "before the SSM write (the first stage's four rolled out, their tag writes held)",
            marker: |l| l.phase == "wait",
            hold: hold("^PutParameter$", Some("/image-tag"), 4),
        },
    ]
}

/// After a kill: each SSM tag is the one before this round, or this round's for a service that
/// already runs this round's artifact; image tags name images in the registry.
async fn check_after_kill(
    bed: &Testbed,
    example: &ExampleRepo,
    before: &BTreeMap<String, String>,
    now: &BTreeMap<String, String>,
    wanted: &BTreeMap<String, Option<String>>,
    context: &str,
) {
    let observed = example.observe(bed, &bed.sdk_config().await).await;
    let mut problems = observed.tag_problems();
    for service in SERVICES {
        let tag = observed.ssm_tags.get(service);
        let rolled = observed.live.get(service) == wanted.get(service).and_then(Option::as_ref);
        let ok = tag == before.get(service) || (tag == now.get(service) && rolled);
        if !ok {
            problems.push(format!(
                "{service}: SSM tag {tag:?}; before this round {:?}, this round {:?} (rolled out: {rolled})",
                before.get(service),
                now.get(service)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{context}: after the kill:\n  {}\n{observed:#?}",
        problems.join("\n  ")
    );
}

/// After the re-run: converged.
async fn check_converged(
    bed: &Testbed,
    example: &ExampleRepo,
    tags: &BTreeMap<String, String>,
    context: &str,
) {
    let wanted = example.wanted(bed);
    let observed = example.observe(bed, &bed.sdk_config().await).await;
    let mut problems = observed.mismatches(&wanted);
    problems.extend(observed.tag_problems());
    problems.extend(observed.pile_ups());
    for (service, tag) in tags {
        if observed.ssm_tags.get(service) != Some(tag) {
            problems.push(format!(
                "{service}: SSM has {:?}, wanted {tag}",
                observed.ssm_tags.get(service)
            ));
        }
    }
    problems.extend(example.out_of_sync(bed));
    assert!(
        problems.is_empty(),
        "{context}: the re-run did not converge:\n  {}\n{observed:#?}",
        problems.join("\n  ")
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow (2-3 min): `cargo xtask test` runs it (--features deployer-tests/slow)"
)]
async fn sigkill_at_every_phase_boundary_then_a_rerun_converges() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let builder = bed.builder().name.clone();
    let proxy = FaultProxy::start(bed, &Faults::new());
    // A first deploy, so that every round starts from a recorded state.
    example
        .deployer(bed, Some(proxy.url()))
        .env("DEPLOYER_LOCK_LEASE", LEASE)
        .args(["deploy", "--all", "--json", "--builder", &builder])
        .run()
        .assert_success();
    let mut before = example.tags(bed);
    check_converged(bed, &example, &before, "first deploy").await;
    let started = Instant::now();
    let mut survived: Vec<(String, String, f64)> = Vec::new();
    for (round, boundary) in boundaries().into_iter().enumerate() {
        let t0 = Instant::now();
        example.change_all(&format!("kill round {round}"));
        let now = example.tags(bed);
        let (faults, holding) = boundary.hold.clone().unwrap_or((Faults::new(), 0));
        proxy.configure(&faults);
        let mut run = LiveRun::spawn({
            let mut command = example.command(bed, Some(proxy.url()));
            command.env("DEPLOYER_LOCK_LEASE", LEASE).args([
                "deploy",
                "--all",
                "-v",
                "--builder",
                &builder,
            ]);
            command
        });
        let hit = run.wait_for(Duration::from_secs(300), boundary.marker);
        let Some(hit) = hit else {
            let out = run.kill();
            panic!(
                "{}: the marker never appeared (exit {:?})\n--- stdout\n{}\n--- stderr\n{}",
                boundary.name, out.code, out.stdout, out.stderr
            );
        };
        if holding > 0 {
            proxy.wait_holding(holding, Duration::from_secs(120));
        }
        let killed = run.kill();
        assert_eq!(
            killed.code, None,
            "{}: deployer ended before the kill (exit {:?}):\n{}",
            boundary.name, killed.code, killed.stderr
        );
        proxy.configure(&Faults::new());
        if holding > 0 {
            // The held calls see their client gone and are dropped, never forwarded.
            let deadline = Instant::now() + Duration::from_secs(90);
            while proxy.stats().holding > 0 {
                assert!(Instant::now() < deadline, "held requests never released");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let wanted_now = example.wanted(bed);
        check_after_kill(bed, &example, &before, &now, &wanted_now, boundary.name).await;
        let rerun = example
            .deployer(bed, Some(proxy.url()))
            .env("DEPLOYER_LOCK_LEASE", LEASE)
            .args(["deploy", "--all", "--json", "--builder", &builder])
            .run();
        assert_eq!(
            rerun.code,
            Some(0),
            "{}: the re-run failed\n--- stdout\n{}\n--- stderr\n{}\n--- the killed run's stderr\n{}",
            boundary.name,
            rerun.stdout,
            rerun.stderr,
            killed.stderr
        );
        check_converged(bed, &example, &now, boundary.name).await;
        survived.push((
            boundary.name.to_owned(),
            hit.raw.clone(),
            t0.elapsed().as_secs_f64(),
        ));
        before = now;
    }
    let stats = proxy.stop();
    for (name, line, seconds) in &survived {
        eprintln!("kills: survived: {name} ({seconds:.1}s) — killed at: {line}");
    }
    eprintln!(
        "kills: {} kills survived in {:.0}s; the proxy abandoned {} held calls ({} held); {}",
        survived.len(),
        started.elapsed().as_secs_f64(),
        stats.abandoned,
        stats.held,
        stats
    );
    assert!(
        stats.abandoned >= 6,
        "the held calls were forwarded after the kill: {stats}"
    );
}
