//! The deploy lock as a promise (issue 13, the first reproduction and items 1 and 10) and the
//! no-op path: through the real binary, on the example's `artifact-render` (a Lambda zip
//! function with `publish` and an alias), against the test bed, with a fault proxy
//! (`xtask/testbed/faultproxy.py`, its `rules`) where an answer must be lost or a call denied.
//!
//! What the lock promises (`<ssm_prefix>/<service>/lock`, README "When things go wrong"):
//! - every wait ends by `--lock-wait`, a take-over token left by a dead taker included (it goes
//!   stale after a lease);
//! - a run recognises its own claim and its own take-over token by their id, when the answer to
//!   their create was lost and the SDK's retry was told "already exists";
//! - the holder keeps its claim valid while it works (renewals retried, one failed read is not
//!   the end), or stops before its next mutating call with "lost the deploy lock";
//! - a release that failed is reported (a `warnings` entry mentioning the deploy lock);
//! - errors in `--json` are one readable line.
//!
//! And a deploy of an unchanged service writes nothing, not even the lock.
//!
//! How the tests see it, black box: exit codes and `--json`; the lock parameter read straight
//! from moto (never through the proxy) every 200 ms by a [`Watcher`]; the calls each run made,
//! from the test bed's request recorder (`GET /_deployer/calls?access_key=K`, each run signing
//! with a key of its own). Every run is bounded ([`run_bounded`]): a hang fails the test with a
//! message instead of hanging CI. Leases are shortened with `DEPLOYER_LOCK_LEASE`.
//!
//! Why `artifact-render` for the rollouts that must last several leases: no image to build, and
//! the test bed's Lambda patch counts reads, not time (an update reads `InProgress` twice, then
//! `Successful`), so `poll_interval = "4s"` makes the wait after `UpdateFunctionCode` last
//! 4 + 6 = 10 s (the poll delay grows by half each time): three leases of 3 s, deterministic.
//!
//! The proxy's counts and each run's calls by API are printed on stderr (`--nocapture`).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::types::ParameterType;
use deployer_tests::faultproxy::{Rule, RuleAction};
use deployer_tests::{
    ExampleRepo, FaultProxy, Faults, LiveRun, RunOutput, Testbed, testbed, unique_name,
};
use serde_json::Value;

/// The service every test here deploys.
const SERVICE: &str = "artifact-render";

/// The expired claim of the issue's reproduction, and its take-over token's suffix.
const EXPIRED_CLAIM: &str = r#"{"id":"x","holder":"h","renewed_at":0,"lease_s":0}"#;

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn lock_parameter(example: &ExampleRepo) -> String {
    format!("/{}/{SERVICE}/lock", example.project)
}

/// A fresh access key: the recorder files every call of the run that signs with it.
fn access_key() -> String {
    unique_name("akid-lock")
}

/// `deploy --service artifact-render --json <extra>` with the bed's environment, through
/// `endpoint` (a proxy) when given, signing with `key` when given.
fn deploy(
    bed: &Testbed,
    example: &ExampleRepo,
    endpoint: Option<&str>,
    key: Option<&str>,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Command {
    let mut command = example.command(bed, endpoint);
    if let Some(key) = key {
        command.env("AWS_ACCESS_KEY_ID", key);
    }
    command
        .envs(env.iter().copied())
        .args(["deploy", "--service", SERVICE, "--json"])
        .args(extra);
    command
}

/// Runs `command` for at most `limit` and returns its output and how long it took; `Err` when
/// it had to be killed (SIGKILL), with what it printed last, so that a test reports a hang as
/// its own failure instead of hanging. (A [`LiveRun`] rather than [`deployer_tests::Deployer`]:
/// a killed run's output says where it was stuck.)
fn run_bounded(command: Command, limit: Duration) -> Result<(RunOutput, Duration), String> {
    let started = Instant::now();
    let mut run = LiveRun::spawn(command);
    // Reads stderr until it closes (the process ended) or the time is up.
    run.wait_for(limit, |_| false);
    if started.elapsed() < limit {
        return Ok((run.finish(Duration::from_secs(30)), started.elapsed()));
    }
    let out = run.kill();
    let lines: Vec<&str> = out.stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n    ");
    Err(format!(
        "killed after {limit:?}; the last lines it printed (of {}):\n    {tail}",
        lines.len()
    ))
}

fn service_report(out: &RunOutput) -> Option<Value> {
    let json: Value = serde_json::from_str(&out.stdout).ok()?;
    json["services"]
        .as_array()?
        .iter()
        .find(|s| s["service"] == SERVICE)
        .cloned()
}

fn action(out: &RunOutput) -> String {
    service_report(out)
        .and_then(|s| s["action"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "(no report)".to_owned())
}

/// Every error message of a `--json` document (the command's and each service's).
fn error_messages(out: &RunOutput) -> Vec<String> {
    fn walk(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    if key == "error"
                        && let Some(message) = child.get("message").and_then(Value::as_str)
                    {
                        found.push(message.to_owned());
                    }
                    walk(child, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    if let Ok(json) = serde_json::from_str::<Value>(&out.stdout) {
        walk(&json, &mut found);
    }
    found
}

fn error_message(out: &RunOutput) -> String {
    error_messages(out).join(" | ")
}

/// Errors are one readable line: no newline, no SDK debug dump (item 10, last point).
fn unreadable_errors(out: &RunOutput, context: &str) -> Vec<String> {
    error_messages(out)
        .into_iter()
        .filter(|message| {
            message.contains('\n')
                || message.contains("unhandled error")
                || message.contains("Error {")
                || message.contains("aws_request_id")
        })
        .map(|message| format!("{context}: an error is not one readable line: {message:?}"))
        .collect()
}

/// Whether the service's `--json` report carries a warning about the deploy lock.
fn warns_about_the_lock(out: &RunOutput) -> bool {
    service_report(out).is_some_and(|s| {
        s.get("warnings")
            .is_some_and(|w| w.to_string().to_lowercase().contains("deploy lock"))
    })
}

fn show(out: &RunOutput) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.code, out.stdout, out.stderr
    )
}

async fn put(bed: &Testbed, name: &str, value: &str) {
    let ssm = aws_sdk_ssm::Client::new(&bed.sdk_config().await);
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

/// A parameter's value and last-modified time (seconds since the epoch), straight from moto.
async fn get(bed: &Testbed, name: &str) -> Option<(String, f64)> {
    let ssm = aws_sdk_ssm::Client::new(&bed.sdk_config().await);
    match ssm.get_parameter().name(name).send().await {
        Ok(output) => {
            let parameter = output.parameter()?;
            Some((
                parameter.value().unwrap_or_default().to_owned(),
                parameter
                    .last_modified_date()
                    .map_or(0.0, |d| d.as_secs_f64()),
            ))
        }
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetParameterError::ParameterNotFound(_))
            ) =>
        {
            None
        }
        Err(e) => panic!("GetParameter {name}: {e:?}"),
    }
}

/// Gives artifact-render a rollout of about 10 s (module doc) and commits.
fn slow_rollout(example: &ExampleRepo) {
    example.edit_manifest(|manifest| {
        manifest.replacen(
            "[services.artifact-render]\n",
            "[services.artifact-render]\npoll_interval = \"4s\"\n",
            1,
        )
    });
}

/// A new version of artifact-render's code (a new zip, so a deploy has to roll it out).
fn change_code(example: &ExampleRepo, mark: &str) {
    let file = "backend/src/lambdas/artifact_render/handler.py";
    example
        .repo
        .write(file, format!("{}\n# {mark}\n", example.repo.read(file)));
    example.repo.commit(&format!("artifact-render: {mark}"));
}

/// The calls a run signing with `key` made, from the test bed's recorder.
fn recorded(bed: &Testbed, key: &str) -> Vec<Value> {
    bed.moto().recorded_calls(key)
}

fn call_action(call: &Value) -> String {
    call["action"].as_str().unwrap_or("(unknown)").to_owned()
}

/// Reads: they change nothing in AWS.
fn is_read(action: &str) -> bool {
    ["Get", "Describe", "List", "BatchGet", "Head"]
        .iter()
        .any(|prefix| action.starts_with(prefix))
}

/// A call on the lock itself (the claim or a take-over token): the lock protocol, not the
/// deploy.
fn is_lock_call(call: &Value) -> bool {
    call["params"]["Name"]
        .as_str()
        .is_some_and(|name| name.ends_with("/lock") || name.contains("/lock-takeover-"))
}

/// A deploy mutation: not a read, not the smoke check's `Invoke`, not the lock protocol.
fn is_deploy_mutation(call: &Value) -> bool {
    let action = call_action(call);
    !is_read(&action) && action != "Invoke" && !is_lock_call(call)
}

fn describe_call(call: &Value) -> String {
    let target = call["params"]["Name"]
        .as_str()
        .or_else(|| call["params"]["FunctionName"].as_str())
        .unwrap_or("");
    format!(
        "{} {target} at {:.1}",
        call_action(call),
        call["time"].as_f64().unwrap_or(0.0)
    )
}

#[allow(clippy::print_stderr)] // the figures for the report
fn print_calls(what: &str, calls: &[Value]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for call in calls {
        *counts.entry(call_action(call)).or_insert(0) += 1;
    }
    eprintln!("lock_trust: {what}: {} calls: {counts:?}", calls.len());
    counts
}

// ------------------------------------------------------------------------------------------
// The watcher: the lock parameter read straight from moto every 200 ms
// ------------------------------------------------------------------------------------------

/// A claim as the lock parameter holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Claim {
    id: String,
    renewed_at: u64,
    lease_s: u64,
}

impl Claim {
    fn parse(value: &str) -> Claim {
        let json: Value = serde_json::from_str(value).unwrap_or(Value::Null);
        Claim {
            id: json["id"]
                .as_str()
                .map_or_else(|| format!("(unreadable: {value})"), str::to_owned),
            renewed_at: json["renewed_at"].as_u64().unwrap_or(0),
            lease_s: json["lease_s"].as_u64().unwrap_or(0),
        }
    }

    /// The first second in which a taker sees it expired (`now > renewed_at + lease_s` in
    /// whole seconds, the protocol's rule).
    fn lapses_at(&self) -> f64 {
        (self.renewed_at + self.lease_s + 1) as f64
    }
}

/// One read of the lock: when it was sent, what it found (`None`: no lock).
#[derive(Clone, Debug)]
struct Observation {
    at: f64,
    claim: Option<Claim>,
}

struct Watcher {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Observation>>>,
    handle: Option<JoinHandle<()>>,
}

impl Watcher {
    fn start(bed: &'static Testbed, parameter: String) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handle = std::thread::spawn({
            let stop = stop.clone();
            let seen = seen.clone();
            move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                let ssm = aws_sdk_ssm::Client::new(&runtime.block_on(bed.sdk_config()));
                while !stop.load(Ordering::SeqCst) {
                    // The time before the read: a claim found expired at this second was
                    // expired when moto answered.
                    let at = now_f64();
                    let read = runtime.block_on(ssm.get_parameter().name(&parameter).send());
                    let claim = match read {
                        Ok(output) => Some(Claim::parse(
                            output
                                .parameter()
                                .and_then(|p| p.value())
                                .unwrap_or_default(),
                        )),
                        Err(e)
                            if matches!(
                                e.as_service_error(),
                                Some(GetParameterError::ParameterNotFound(_))
                            ) =>
                        {
                            None
                        }
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(200));
                            continue;
                        }
                    };
                    seen.lock().unwrap().push(Observation { at, claim });
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        });
        let watcher = Watcher {
            stop,
            seen,
            handle: Some(handle),
        };
        // A first read before the run starts: a claim already there is not the run's.
        let deadline = Instant::now() + Duration::from_secs(30);
        while watcher.latest().is_none() {
            assert!(
                Instant::now() < deadline,
                "the watcher could not read the lock within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        watcher
    }

    /// The last observation so far.
    fn latest(&self) -> Option<Observation> {
        self.seen.lock().unwrap().last().cloned()
    }

    /// Waits until a claim is seen (a run holds the lock); panics after `timeout`.
    fn wait_for_claim(&self, timeout: Duration) -> Claim {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(Observation {
                claim: Some(claim), ..
            }) = self.latest()
            {
                return claim;
            }
            assert!(
                Instant::now() < deadline,
                "no run took the lock within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(mut self) -> Vec<Observation> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// The lapses of the claims with an id in `own` seen between `from` and `until`, one per claim
/// and renewal: (the moment the claim expired, what was seen). A claim lapsed when a read found
/// it expired, or when it was renewed only after it had expired (`renewed_at` jumped past the
/// old `renewed_at + lease_s`).
fn lapses(seen: &[Observation], own: &[String], from: f64, until: f64) -> Vec<(f64, String)> {
    // (id, renewed_at) -> (expired at, first and last read that found it expired, reads)
    let mut expired: BTreeMap<(String, u64), (f64, f64, f64, usize)> = BTreeMap::new();
    let mut late = Vec::new();
    let mut previous: Option<&Claim> = None;
    for observation in seen.iter().filter(|o| o.at >= from && o.at <= until) {
        let Some(claim) = observation.claim.as_ref().filter(|c| own.contains(&c.id)) else {
            previous = None;
            continue;
        };
        if observation.at.floor() > (claim.renewed_at + claim.lease_s) as f64 {
            let entry = expired
                .entry((claim.id.clone(), claim.renewed_at))
                .or_insert((claim.lapses_at(), observation.at, observation.at, 0));
            entry.2 = observation.at;
            entry.3 += 1;
        }
        if let Some(before) = previous
            && before.id == claim.id
            && claim.renewed_at > before.renewed_at + before.lease_s
        {
            late.push((
                before.lapses_at(),
                format!(
                    "claim {} renewed at {} only after it had expired at {:.0} (renewed at {} before, lease {} s)",
                    claim.id,
                    claim.renewed_at,
                    before.lapses_at(),
                    before.renewed_at,
                    before.lease_s
                ),
            ));
        }
        previous = Some(claim);
    }
    let mut found: Vec<(f64, String)> = expired
        .into_iter()
        .map(|((id, renewed_at), (at, first, last, reads))| {
            (
                at,
                format!(
                    "claim {id} renewed at {renewed_at} expired at {at:.0} and was still there unrenewed \
                     from {first:.1} to {last:.1} ({reads} reads, {:.1} s after it expired)",
                    last - at
                ),
            )
        })
        .collect();
    found.extend(late);
    found.sort_by(|a, b| a.0.total_cmp(&b.0));
    found
}

/// The ids of the claims a run made: seen between `from` and `until`, not there before `from`.
fn own_claims(seen: &[Observation], from: f64, until: f64) -> Vec<String> {
    let before: Vec<&String> = seen
        .iter()
        .filter(|o| o.at < from)
        .filter_map(|o| o.claim.as_ref().map(|c| &c.id))
        .collect();
    claim_ids(seen, from, until)
        .into_iter()
        .filter(|id| !before.contains(&id))
        .collect()
}

/// What the lock parameter went through, one entry per change: `<time> <id>@<renewed_at>` or
/// `<time> none`.
fn history(seen: &[Observation], from: f64, until: f64) -> String {
    let mut entries = Vec::new();
    let mut last: Option<Option<(String, u64)>> = None;
    for observation in seen.iter().filter(|o| o.at >= from && o.at <= until) {
        let state = observation
            .claim
            .as_ref()
            .map(|c| (c.id.clone(), c.renewed_at));
        if last.as_ref() != Some(&state) {
            entries.push(match &state {
                Some((id, renewed_at)) => format!("{:.1} {id}@{renewed_at}", observation.at),
                None => format!("{:.1} none", observation.at),
            });
            last = Some(state);
        }
    }
    entries.join(", ")
}

fn join_lapses(lapsed: &[(f64, String)]) -> String {
    lapsed
        .iter()
        .map(|(_, what)| what.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The distinct claim ids seen between `from` and `until`, in order.
fn claim_ids(seen: &[Observation], from: f64, until: f64) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for observation in seen.iter().filter(|o| o.at >= from && o.at <= until) {
        if let Some(claim) = &observation.claim
            && ids.last() != Some(&claim.id)
        {
            ids.push(claim.id.clone());
        }
    }
    ids
}

#[allow(clippy::print_stderr)]
fn report_proxy(what: &str, proxy: &FaultProxy) {
    eprintln!("lock_trust: {what}: proxy: {}", proxy.stats());
}

// ------------------------------------------------------------------------------------------
// 1. The first reproduction: a stale take-over token and --lock-wait
// ------------------------------------------------------------------------------------------

/// An expired claim and the take-over token a taker killed between creating the token and
/// deleting the claim leaves behind: `--lock-wait 5s` is honoured (exit 1 naming the lock within
/// ~25 s, not a run that never ends), and once the token is older than a lease it is stale:
/// removed, and the take-over proceeds; nothing of the lock is left behind.
#[tokio::test]
async fn a_stale_takeover_token_does_not_outlast_lock_wait() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let lock = lock_parameter(&example);
    let token = format!("{lock}-takeover-x");
    put(bed, &lock, EXPIRED_CLAIM).await;
    put(bed, &token, "pid 4242 on a runner that was killed").await;
    let mut problems = Vec::new();

    // The token is fresh (the default lease is a minute): the run may wait for it, but no
    // longer than --lock-wait.
    match run_bounded(
        deploy(bed, &example, None, None, &[], &["--lock-wait", "5s", "-v"]),
        Duration::from_secs(60),
    ) {
        Err(killed) => problems.push(format!(
            "with an expired claim and a take-over token left behind, `deploy --lock-wait 5s` \
             did not end within 60 s ({killed}): the take-over loop ignores --lock-wait"
        )),
        Ok((out, took)) => {
            if out.code != Some(1) || !error_message(&out).contains("lock") {
                problems.push(format!(
                    "with a stale take-over token, `deploy --lock-wait 5s` should fail with exit 1 \
                     and a message about the lock; got {}",
                    show(&out)
                ));
            }
            if took > Duration::from_secs(25) {
                problems.push(format!(
                    "`deploy --lock-wait 5s` took {took:?} to give up (more than 25 s)"
                ));
            }
            problems.extend(unreadable_errors(&out, "the run waiting on the token"));
        }
    }

    // Once the token is older than the run's lease (3 s), it is stale: removed, and the
    // expired claim is taken over.
    let (_, modified) = get(bed, &token)
        .await
        .expect("the take-over token is still there (nobody may remove a fresh one)");
    let stale_from = modified + 3.0 + 1.0;
    if now_f64() < stale_from {
        std::thread::sleep(Duration::from_secs_f64(stale_from - now_f64()));
    }
    match run_bounded(
        deploy(
            bed,
            &example,
            None,
            None,
            &[("DEPLOYER_LOCK_LEASE", "3s")],
            &["--lock-wait", "5s", "-v"],
        ),
        Duration::from_secs(60),
    ) {
        Err(killed) => problems.push(format!(
            "with a take-over token older than the lease (3 s), `deploy --lock-wait 5s` did not \
             end within 60 s ({killed}): a token is never considered stale"
        )),
        Ok((out, _)) => {
            if out.code != Some(0) || action(&out) != "updated" {
                problems.push(format!(
                    "with a stale take-over token (older than the 3 s lease), the deploy should \
                     take the lock over and update; got {}",
                    show(&out)
                ));
            }
            problems.extend(unreadable_errors(
                &out,
                "the run after the token went stale",
            ));
        }
    }
    for (what, name) in [("the lock", &lock), ("the take-over token", &token)] {
        if let Some((value, _)) = get(bed, name).await {
            problems.push(format!("{what} {name} is left behind: {value}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------------------------------------
// 2a. Lost answer to the lock's create
// ------------------------------------------------------------------------------------------

/// The answer to the lock's create is lost (moto created the claim; the SDK's retry is told
/// `ParameterAlreadyExists`): the claim is the run's own (same id), so the run proceeds at once
/// instead of waiting for "another deploy" that is itself.
#[tokio::test]
async fn a_lost_answer_to_the_lock_create_is_still_our_claim() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let lock = lock_parameter(&example);
    let rule = Rule::new("^PutParameter$", RuleAction::LoseAnswer)
        .service("ssm")
        .body(&format!("{lock}\""));
    let proxy = FaultProxy::start(bed, &Faults::new().rule(rule));
    let result = run_bounded(
        deploy(
            bed,
            &example,
            Some(proxy.url()),
            None,
            &[],
            &["--lock-wait", "2s", "-v"],
        ),
        Duration::from_secs(60),
    );
    report_proxy("lost answer to the lock's create", &proxy);
    let stats = proxy.stop();
    assert_eq!(
        stats.rules[0].fired, 1,
        "the rule never lost an answer, nothing was tested: {stats}"
    );
    let (out, took) = result.unwrap_or_else(|killed| {
        panic!("after a lost answer to the lock's create, the deploy did not end: {killed}")
    });
    let mut problems = unreadable_errors(&out, "the run");
    if out.code != Some(0) || action(&out) != "updated" {
        problems.push(format!(
            "after a lost answer to the lock's create (the claim is its own), the deploy with \
             --lock-wait 2s should succeed and update (took {took:?}); it failed: {}\n{}",
            error_message(&out),
            show(&out)
        ));
    }
    if out.stderr.contains("waiting for another deploy") {
        problems.push(format!(
            "the run waited for \"another deploy\", its own claim: {}",
            out.stderr
                .lines()
                .find(|l| l.contains("waiting for another deploy"))
                .unwrap_or_default()
        ));
    }
    if let Some((value, _)) = get(bed, &lock).await {
        problems.push(format!("the lock {lock} is left behind: {value}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------------------------------------
// 2b. Lost answer to the take-over token's create
// ------------------------------------------------------------------------------------------

/// An expired claim, and the answer to the take-over token's create is lost (moto created the
/// token; the retry is told `ParameterAlreadyExists`): the token is the run's own, so the
/// take-over goes on. The default lease (60 s) is kept on purpose: waiting for the token to go
/// stale would outlast `--lock-wait 5s`, so only recognising it succeeds in time.
#[tokio::test]
async fn a_lost_answer_to_the_takeover_token_create_is_still_our_token() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let lock = lock_parameter(&example);
    let token = format!("{lock}-takeover-x");
    put(bed, &lock, EXPIRED_CLAIM).await;
    let rule = Rule::new("^PutParameter$", RuleAction::LoseAnswer)
        .service("ssm")
        .body(&format!("{token}\""));
    let proxy = FaultProxy::start(bed, &Faults::new().rule(rule));
    let result = run_bounded(
        deploy(
            bed,
            &example,
            Some(proxy.url()),
            None,
            &[],
            &["--lock-wait", "5s", "-v"],
        ),
        Duration::from_secs(45),
    );
    report_proxy("lost answer to the take-over token's create", &proxy);
    let stats = proxy.stop();
    assert_eq!(
        stats.rules[0].fired, 1,
        "the rule never lost an answer, nothing was tested: {stats}"
    );
    let (out, took) = result.unwrap_or_else(|killed| {
        panic!(
            "after a lost answer to the take-over token's create, `deploy --lock-wait 5s` did not \
             end within 45 s ({killed}): it loops on \"already exists\" past --lock-wait"
        )
    });
    let mut problems = unreadable_errors(&out, "the run");
    if out.code != Some(0) || action(&out) != "updated" {
        problems.push(format!(
            "after a lost answer to the take-over token's create (the token is its own), the \
             deploy should take the expired claim over and update; {}",
            show(&out)
        ));
    }
    if took > Duration::from_secs(20) {
        problems.push(format!("the take-over took {took:?} (more than 20 s)"));
    }
    for (what, name) in [("the lock", &lock), ("the take-over token", &token)] {
        if let Some((value, _)) = get(bed, name).await {
            problems.push(format!("{what} {name} is left behind: {value}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------------------------------------
// 2c. 50% throttling of SSM: no lapse while a run works, no silent lock left behind
// ------------------------------------------------------------------------------------------

/// Three deploys of artifact-render, each rolling out for about three leases (3 s), with half
/// of the SSM requests throttled. For every run:
/// - exit 0: its claim never lapsed while it ran (read straight from moto every 200 ms), and
///   afterwards the lock is gone or the run's JSON warns about the deploy lock;
/// - any exit: no deploy mutation (recorded under the run's own access key) after a lapse
///   (a run that lost its lock stops before its next mutating call, exit 1, "lost the deploy
///   lock");
/// - every `--json` error is one readable line.
///
/// At least one run must succeed, or nothing was tested.
#[tokio::test]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow: `cargo xtask test` runs it (--features deployer-tests/slow)"
)]
#[allow(clippy::print_stderr)]
async fn under_ssm_throttling_a_claim_never_lapses_mid_deploy_and_a_failed_release_is_reported() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    slow_rollout(&example);
    let lock = lock_parameter(&example);
    let proxy = FaultProxy::start(bed, &Faults::new());
    let mut problems = Vec::new();
    let mut succeeded = 0;
    for round in 1..=3u64 {
        change_code(&example, &format!("throttled round {round}"));
        proxy.configure(&Faults::new().seed(40 + round).throttle(0.5).only(&["ssm"]));
        proxy.reset();
        let key = access_key();
        let watcher = Watcher::start(bed, lock.clone());
        let started = now_f64();
        let result = run_bounded(
            deploy(
                bed,
                &example,
                Some(proxy.url()),
                Some(&key),
                &[("DEPLOYER_LOCK_LEASE", "3s")],
                &["-v"],
            ),
            Duration::from_secs(240),
        );
        let ended = now_f64();
        let seen = watcher.stop();
        report_proxy(&format!("50% SSM throttling, round {round}"), &proxy);
        let context = format!("round {round}");
        let (out, took) = match result {
            Ok(done) => done,
            Err(killed) => {
                problems.push(format!("{context}: {killed}"));
                continue;
            }
        };
        eprintln!(
            "lock_trust: {context}: exit {:?}, action {}, {took:?}, claims seen {:?} (its own: {:?}); error: {}",
            out.code,
            action(&out),
            claim_ids(&seen, started, ended),
            own_claims(&seen, started, ended),
            error_message(&out)
        );
        eprintln!(
            "lock_trust: {context}: the lock from {started:.1} to {ended:.1}: {}",
            history(&seen, started - 1.0, ended + 1.0)
        );
        for line in out.stderr.lines().filter(|l| {
            l.contains("unhandled error") || l.contains("Error {") || l.contains("aws_request_id")
        }) {
            eprintln!("lock_trust: {context}: SDK debug text on stderr: {line}");
        }
        problems.extend(unreadable_errors(&out, &context));
        let calls = recorded(bed, &key);
        print_calls(&context, &calls);
        // Reads straight after the run's end could see a claim left behind expire: only the
        // reads sent while the run surely still ran count.
        let own = own_claims(&seen, started, ended);
        let lapsed = lapses(&seen, &own, started, ended - 0.3);
        let last_mutation = calls
            .iter()
            .filter(|c| is_deploy_mutation(c))
            .filter_map(|c| c["time"].as_f64())
            .fold(0.0_f64, f64::max);
        if let Some((lapsed_at, _)) = lapsed.first() {
            let after: Vec<String> = calls
                .iter()
                .filter(|c| is_deploy_mutation(c))
                .filter(|c| c["time"].as_f64().unwrap_or(0.0) >= *lapsed_at)
                .map(describe_call)
                .collect();
            if !after.is_empty() {
                problems.push(format!(
                    "{context}: its claim lapsed at {lapsed_at:.0} ({}) and it still made deploy \
                     mutations: {}",
                    lapsed[0].1,
                    after.join(", ")
                ));
            }
        }
        match out.code {
            Some(0) => {
                succeeded += 1;
                if !lapsed.is_empty() {
                    let during = if lapsed[0].0 <= last_mutation {
                        "before its last deploy mutation"
                    } else {
                        "after its last deploy mutation, while it was releasing"
                    };
                    problems.push(format!(
                        "{context}: exited 0 but its claim lapsed while it ran ({during}): {}",
                        join_lapses(&lapsed)
                    ));
                }
                if let Some((value, _)) = get(bed, &lock).await
                    && !warns_about_the_lock(&out)
                {
                    problems.push(format!(
                        "{context}: exited 0 and left the lock behind ({value}) without a warning \
                         about the deploy lock in its report: {}",
                        service_report(&out).unwrap_or_default()
                    ));
                }
            }
            Some(1) if error_message(&out).contains("lost the deploy lock") => {}
            _ => eprintln!(
                "lock_trust: {context}: failed for another reason: {}",
                error_message(&out)
            ),
        }
    }
    if succeeded == 0 {
        problems.push("no run succeeded under 50% SSM throttling: nothing was tested".to_owned());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------------------------------------
// 2d. Item 1: one failed renewal read is not the end of the lock
// ------------------------------------------------------------------------------------------

/// A deploy with a 3 s lease rolls out for about 10 s. Once it holds the lock, the next read
/// (or write) of the lock it sends — a renewal — is denied once with a non-retryable
/// `AccessDeniedException`. The holder retries its renewal and keeps the lock: a second deploy
/// of a newer commit, started more than a lease after the denied renewal with `--lock-wait 0s`,
/// fails with exit 1 naming the holder, and the first one finishes its rollout under one
/// claim that never lapsed.
///
/// The rule is armed only once the claim exists (seen in moto), so it cannot hit the acquire,
/// however many reads that makes; it matches `GetParameter(s)` and `PutParameter` of the lock,
/// so it hits the renewal whatever call the renewal starts with (today: a `GetParameter`).
#[tokio::test]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow: `cargo xtask test` runs it (--features deployer-tests/slow)"
)]
#[allow(clippy::print_stderr)]
async fn a_failed_renewal_read_does_not_hand_the_lock_to_a_second_deploy() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    slow_rollout(&example);
    change_code(&example, "first deploy");
    let lock = lock_parameter(&example);
    let proxy = FaultProxy::start(bed, &Faults::new());
    let lease = [("DEPLOYER_LOCK_LEASE", "3s")];
    let watcher = Watcher::start(bed, lock.clone());
    let first_key = access_key();
    let first = deploy(
        bed,
        &example,
        Some(proxy.url()),
        Some(&first_key),
        &lease,
        &["-v"],
    );
    let started = now_f64();
    let first = std::thread::spawn(move || run_bounded(first, Duration::from_secs(120)));

    let claim = watcher.wait_for_claim(Duration::from_secs(60));
    proxy.configure(
        &Faults::new().rule(
            Rule::new("^(GetParameters?|PutParameter)$", RuleAction::Deny)
                .service("ssm")
                .body(&format!("{lock}\"")),
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxy.stats().rules[0].fired == 0 {
        assert!(
            Instant::now() < deadline,
            "no renewal of the lock within 20 s of taking it, nothing was tested: {}",
            proxy.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let denied_at = now_f64();
    report_proxy("one renewal denied", &proxy);

    // More than a lease (3 s, whole seconds) after the denied renewal.
    std::thread::sleep(Duration::from_millis(4500));
    assert!(
        !first.is_finished(),
        "the first deploy ended before the second started: its rollout is too short to test anything"
    );
    change_code(&example, "second deploy");
    let second_key = access_key();
    let second = run_bounded(
        deploy(
            bed,
            &example,
            None,
            Some(&second_key),
            &lease,
            &["--lock-wait", "0s", "-v"],
        ),
        Duration::from_secs(60),
    );
    let first = first.join().unwrap();
    let ended = now_f64();
    let seen = watcher.stop();
    eprintln!(
        "lock_trust: one renewal denied at {denied_at:.1}: the lock from {started:.1} to {ended:.1}: {}",
        history(&seen, started, ended)
    );
    let second_calls = recorded(bed, &second_key);
    print_calls("the second deploy", &second_calls);

    let mut problems = Vec::new();
    match &second {
        Err(killed) => problems.push(format!("the second deploy: {killed}")),
        Ok((out, _)) => {
            let message = error_message(out);
            if out.code != Some(1)
                || !message.contains(&format!("another deploy of `{SERVICE}` is running"))
            {
                problems.push(format!(
                    "a second deploy started {:.1} s after the holder's renewal was denied once \
                     (lease 3 s), with --lock-wait 0s, while the first still rolled out, should \
                     fail with exit 1 naming the holder; it got exit {:?}, action {}, error {message:?}; \
                     its deploy mutations: {}",
                    now_f64() - denied_at,
                    out.code,
                    action(out),
                    second_calls
                        .iter()
                        .filter(|c| is_deploy_mutation(c))
                        .map(describe_call)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            problems.extend(unreadable_errors(out, "the second deploy"));
        }
    }
    match &first {
        Err(killed) => problems.push(format!("the first deploy: {killed}")),
        Ok((out, _)) => {
            if out.code != Some(0) || action(out) != "updated" {
                problems.push(format!(
                    "the first deploy (its renewal denied once) should finish its rollout: exit \
                     {:?}, action {}, error {:?}",
                    out.code,
                    action(out),
                    error_message(out)
                ));
            }
            problems.extend(unreadable_errors(out, "the first deploy"));
        }
    }
    let ids = claim_ids(&seen, started, ended);
    if ids != [claim.id.clone()] {
        problems.push(format!(
            "the lock changed hands while the first deploy ran: claims seen {ids:?}, the first's {}",
            claim.id
        ));
    }
    let first_end = first
        .as_ref()
        .map_or(ended, |(_, took)| started + took.as_secs_f64());
    let lapsed = lapses(
        &seen,
        std::slice::from_ref(&claim.id),
        started,
        first_end - 0.3,
    );
    if !lapsed.is_empty() {
        problems.push(format!(
            "the first deploy's claim lapsed while it ran (its renewal stopped after one denied \
             read): {}",
            join_lapses(&lapsed)
        ));
    }
    if let Some((value, _)) = get(bed, &lock).await {
        problems.push(format!("the lock {lock} is left behind: {value}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ------------------------------------------------------------------------------------------
// 3. The no-op path writes nothing
// ------------------------------------------------------------------------------------------

/// A deploy of an unchanged service (live runs the wanted artifact, the records name it):
/// exit 0, action `unchanged`, and not one write — no `PutParameter`, no `DeleteParameter` (the
/// lock is not taken), no other mutating call; reads only. The reads are counted by API and
/// printed (`lock_trust: no-op deploy: …`).
#[tokio::test]
async fn a_noop_deploy_writes_nothing() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let example = ExampleRepo::create(bed);
    let (first, _) = run_bounded(
        deploy(bed, &example, None, None, &[], &[]),
        Duration::from_secs(120),
    )
    .unwrap();
    first.assert_success();
    assert_eq!(action(&first), "updated", "{}", show(&first));

    let key = access_key();
    let (again, _) = run_bounded(
        deploy(bed, &example, None, Some(&key), &[], &[]),
        Duration::from_secs(120),
    )
    .unwrap();
    let calls = recorded(bed, &key);
    let counts = print_calls("no-op deploy", &calls);
    again.assert_success();
    assert_eq!(action(&again), "unchanged", "{}", show(&again));
    let writes: BTreeMap<&String, &usize> = counts
        .iter()
        .filter(|(action, _)| !is_read(action))
        .collect();
    let reads: BTreeMap<&String, &usize> = counts
        .iter()
        .filter(|(action, _)| is_read(action))
        .collect();
    assert!(
        writes.is_empty(),
        "a no-op deploy of an unchanged service must write nothing (no lock taken); it made {writes:?} \
         (on {}), besides the reads {reads:?}",
        calls
            .iter()
            .filter(|c| !is_read(&call_action(c)))
            .map(describe_call)
            .collect::<Vec<_>>()
            .join(", ")
    );
}

// ------------------------------------------------------------------------------------------
// The proxy's rules themselves
// ------------------------------------------------------------------------------------------

/// `faultproxy.py`'s rules: `after` lets matching requests through first, `times` bounds how
/// many get the action, `deny` answers a non-retryable `AccessDeniedException`, `lose_answer`
/// forwards (the parameter exists in moto) and answers nothing, and the counts say so. With the
/// SDK's retries off, so that each call is one request.
#[tokio::test]
async fn fault_proxy_rules_skip_fire_and_count() {
    let Some(bed) = testbed!(moto) else { return };
    let name = format!("/{}", unique_name("rules"));
    let denied = format!("{name}/denied");
    let lost = format!("{name}/lost");
    put(bed, &denied, "v").await;
    let proxy = FaultProxy::start(
        bed,
        &Faults::new()
            .rule(
                Rule::new("^GetParameter$", RuleAction::Deny)
                    .body(&format!("{denied}\""))
                    .after(1),
            )
            .rule(
                Rule::new("^PutParameter$", RuleAction::LoseAnswer)
                    .service("ssm")
                    .body(&format!("{lost}\"")),
            ),
    );
    let sdk = bed.sdk_config().await;
    let ssm = aws_sdk_ssm::Client::from_conf(
        aws_sdk_ssm::config::Builder::from(&sdk)
            .endpoint_url(proxy.url())
            .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
            .build(),
    );
    let read = || ssm.get_parameter().name(&denied).send();
    assert!(
        read().await.is_ok(),
        "after = 1: the first read goes through"
    );
    let error = read().await.expect_err("the second read is denied");
    assert_eq!(error.code(), Some("AccessDeniedException"), "{error:?}");
    assert!(
        read().await.is_ok(),
        "times = 1: the third read goes through"
    );

    let create = || {
        ssm.put_parameter()
            .name(&lost)
            .value("created")
            .r#type(ParameterType::String)
            .overwrite(false)
            .send()
    };
    let error = create().await.expect_err("the create's answer is lost");
    assert!(
        error.as_service_error().is_none(),
        "a lost answer is no service error: {error:?}"
    );
    assert_eq!(
        get(bed, &lost).await.map(|(value, _)| value).as_deref(),
        Some("created"),
        "the create whose answer was lost reached moto"
    );
    let again = create().await.expect_err("the parameter exists");
    assert_eq!(again.code(), Some("ParameterAlreadyExists"), "{again:?}");

    let stats = proxy.stop();
    assert_eq!(
        (stats.rules[0].matched, stats.rules[0].fired),
        (3, 1),
        "{stats}"
    );
    assert_eq!(
        (stats.rules[1].matched, stats.rules[1].fired),
        (2, 1),
        "{stats}"
    );
    assert_eq!(
        (stats.faulted.deny, stats.faulted.lose_answer),
        (1, 1),
        "{stats}"
    );
}
