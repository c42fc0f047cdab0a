//! The shared flow against mocked Lambda responses (aws-smithy-mocks, sequential rules: a
//! request out of the expected order fails the test), on a paused clock.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::ErrorMetadata;
use aws_sdk_lambda::operation::create_alias::CreateAliasOutput;
use aws_sdk_lambda::operation::get_alias::{GetAliasError, GetAliasOutput};
use aws_sdk_lambda::operation::get_function::GetFunctionError;
use aws_sdk_lambda::operation::list_versions_by_function::ListVersionsByFunctionOutput;
use aws_sdk_lambda::operation::publish_version::PublishVersionOutput;
use aws_sdk_lambda::operation::update_alias::{UpdateAliasError, UpdateAliasOutput};
use aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeError;
use aws_sdk_lambda::types::error::{ResourceConflictException, ResourceNotFoundException};
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, LastUpdateStatus, LastUpdateStatusReasonCode, PackageType, State,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use deployer_core::manifest::LambdaTarget;
use deployer_core::poll::PollPolicy;
use deployer_core::progress::{Collect, Progress};
use deployer_core::{Applied, Artifact, DeployError, LiveState, Presence, ZipArtifact};
use tokio::time::Instant;

use crate::testing::{Fixture, SECRET};
use crate::{Code, Function, PackageKind, ids};

const OLD: &str = "b2xkLWNvZGU=";
const NEW: &str = "bmV3LWNvZGU=";

fn target(publish: bool, alias: Option<&str>) -> LambdaTarget {
    LambdaTarget {
        function: "render".into(),
        publish,
        alias: alias.map(Into::into),
    }
}

fn policy() -> PollPolicy {
    PollPolicy {
        interval: Duration::from_secs(2),
        max_interval: Duration::from_secs(10),
        timeout: Duration::from_secs(300),
        call_timeout: Duration::from_secs(30),
    }
}

fn function(rules: &[&Rule], target: LambdaTarget) -> Function {
    let client: Client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, rules);
    Function::new(client, target, PackageKind::Zip).with_policy(policy())
}

fn wanted(sha: &str) -> Artifact {
    Artifact::Zip(ZipArtifact {
        tag: "t".into(),
        sha256_b64: sha.into(),
        size: 4,
        files: 1,
        bytes: Arc::from(&b"code"[..]),
    })
}

fn live(artifact: &str, extra: &[(&str, &str)]) -> LiveState {
    let mut live = LiveState {
        artifact: Some(artifact.into()),
        ..LiveState::default()
    };
    live.ids
        .insert(ids::FUNCTION.into(), Fixture::zip("render", "").arn());
    live.ids.insert(ids::CODE_SHA256.into(), artifact.into());
    for (key, value) in extra {
        live.ids.insert((*key).into(), (*value).into());
    }
    live
}

fn configuration(fixture: Fixture) -> Rule {
    mock!(Client::get_function_configuration)
        .match_requests(|r| r.qualifier().is_none())
        .then_output(move || fixture.get_configuration())
}

fn collect() -> (Arc<Collect>, Progress) {
    let sink = Arc::new(Collect::default());
    (sink.clone(), Progress::new("render", sink))
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains(SECRET), "a secret leaked into: {text}");
}

#[tokio::test(start_paused = true)]
async fn waits_for_an_update_in_progress_before_sending_its_own() {
    let settled = Fixture::zip("render", OLD);
    let busy = mock!(Client::get_function_configuration)
        .sequence()
        .output({
            let f = settled.clone().status(LastUpdateStatus::InProgress);
            move || f.get_configuration()
        })
        .times(2)
        .output({
            let f = settled.clone();
            move || f.get_configuration()
        })
        .build();
    let update = mock!(Client::update_function_code)
        .match_requests(|r| r.zip_file().is_some_and(|z| z.as_ref() == b"code"))
        .then_output({
            let f = settled.clone().code(NEW);
            move || f.update_output()
        });
    let done = configuration(settled.clone().code(NEW));
    let function = function(&[&busy, &update, &done], target(false, None));
    let (sink, progress) = collect();
    let start = Instant::now();
    let applied = function
        .apply(
            &live(OLD, &[]),
            Some(Code::ZipFile(Arc::from(&b"code"[..]))),
            Some(NEW),
            NEW.into(),
            &progress,
        )
        .await
        .unwrap();
    assert_eq!(
        busy.num_calls(),
        3,
        "polled until the running update settled"
    );
    assert_eq!(update.num_calls(), 1);
    assert!(
        Instant::now() - start >= Duration::from_secs(5),
        "waited between polls"
    );
    let applied = function.wait(&applied, &policy(), &progress).await.unwrap();
    assert_eq!(done.num_calls(), 1);
    assert_eq!(applied.ids[ids::OLD_CODE_SHA256], OLD);
    assert_eq!(applied.ids[ids::CODE_SHA256], NEW);
    assert_eq!(applied.old_artifact.as_deref(), Some(OLD));
    let events = sink.events();
    assert!(
        events.iter().any(|e| e.message.contains("InProgress")),
        "{events:?}"
    );
    for event in events {
        assert_no_secret(&event.message);
    }
}

#[tokio::test(start_paused = true)]
async fn conflicting_update_is_retried() {
    let settled = Fixture::zip("render", OLD);
    let ready = configuration(settled.clone());
    let update = mock!(Client::update_function_code)
        .sequence()
        .error(|| {
            UpdateFunctionCodeError::ResourceConflictException(
                ResourceConflictException::builder()
                    .message("The operation cannot be performed at this time. An update is in progress for resource")
                    .build(),
            )
        })
        .times(2)
        .output({
            let f = settled.clone().code(NEW);
            move || f.update_output()
        })
        .build();
    let function = function(&[&ready, &update], target(false, None));
    let (sink, progress) = collect();
    let applied = function
        .apply(
            &live(OLD, &[]),
            Some(Code::S3 {
                bucket: "b".into(),
                key: "k.zip".into(),
            }),
            Some(NEW),
            NEW.into(),
            &progress,
        )
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 3);
    assert_eq!(applied.ids[ids::CODE_SHA256], NEW);
    assert_eq!(
        sink.events()
            .iter()
            .filter(|e| e.message.contains("retrying"))
            .count(),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn failed_update_is_an_error_at_once_with_the_reason() {
    let settled = Fixture::zip("render", NEW);
    let polls = mock!(Client::get_function_configuration)
        .sequence()
        .output({
            let f = settled.clone().status(LastUpdateStatus::InProgress);
            move || f.get_configuration()
        })
        .output({
            let f = settled.clone().failed(
                "Lambda was unable to decrypt the environment variables because KMS access was denied.",
                LastUpdateStatusReasonCode::KmsKeyAccessDenied,
            );
            move || f.get_configuration()
        })
        .build();
    let function = function(&[&polls], target(true, Some("live")));
    let applied = Applied {
        old_artifact: Some(OLD.into()),
        new_artifact: NEW.into(),
        ids: [(ids::CODE_SHA256.to_owned(), NEW.to_owned())].into(),
    };
    let start = Instant::now();
    let error = function
        .wait(&applied, &policy(), &Progress::discard("render"))
        .await
        .unwrap_err();
    // Two polls, the second saw Failed: no third poll, no publish, no timeout.
    assert_eq!(polls.num_calls(), 2);
    assert!(Instant::now() - start < Duration::from_secs(3));
    match &error {
        DeployError::RolloutFailed { reason, .. } => {
            assert!(reason.contains("KMS access was denied"), "{reason}");
            assert!(reason.contains("KMSKeyAccessDenied"), "{reason}");
        }
        other => panic!("expected RolloutFailed, got {other:?}"),
    }
    assert_no_secret(&error.to_string());
}

#[tokio::test(start_paused = true)]
async fn wait_before_update_times_out_naming_the_state() {
    let busy = mock!(Client::get_function_configuration)
        .sequence()
        .output(|| {
            Fixture::zip("render", OLD)
                .status(LastUpdateStatus::InProgress)
                .get_configuration()
        })
        .repeatedly()
        .build();
    let function = function(&[&busy], target(false, None));
    let error = function
        .apply(
            &live(OLD, &[]),
            Some(Code::ZipFile(Arc::from(&b"code"[..]))),
            Some(NEW),
            NEW.into(),
            &Progress::discard("render"),
        )
        .await
        .unwrap_err();
    match error {
        DeployError::Timeout {
            last_state, after, ..
        } => {
            assert_eq!(last_state, "State Active, LastUpdateStatus InProgress");
            assert_eq!(after, Duration::from_secs(300));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn publishes_and_points_the_alias_recording_the_previous_version() {
    let old = Fixture::zip("render", OLD);
    let read = mock!(Client::get_function).then_output({
        let f = old.clone();
        move || f.get_function()
    });
    let alias = mock!(Client::get_alias)
        .match_requests(|r| r.name() == Some("live"))
        .then_output(|| {
            GetAliasOutput::builder()
                .name("live")
                .function_version("3")
                .build()
        });
    let version_3 = mock!(Client::get_function_configuration)
        .match_requests(|r| r.qualifier() == Some("3"))
        .then_output({
            let f = old.clone().version("3");
            move || f.get_configuration()
        });
    let ready = configuration(old.clone());
    let update = mock!(Client::update_function_code).then_output({
        let f = old.clone().code(NEW).revision("rev-2");
        move || f.update_output()
    });
    let settled = configuration(old.clone().code(NEW).revision("rev-2"));
    let publish = mock!(Client::publish_version)
        .match_requests(|r| r.code_sha256() == Some(NEW) && r.revision_id() == Some("rev-2"))
        .then_output(|| PublishVersionOutput::builder().version("4").build());
    let version_4 = mock!(Client::get_function_configuration)
        .match_requests(|r| r.qualifier() == Some("4"))
        .then_output({
            let f = old.clone().code(NEW).version("4").state(State::Active);
            move || f.get_configuration()
        });
    let point = mock!(Client::update_alias)
        .match_requests(|r| {
            r.name() == Some("live")
                && r.function_version() == Some("4")
                && r.routing_config()
                    .and_then(AliasRoutingConfiguration::additional_version_weights)
                    .is_some_and(|w| w.is_empty())
        })
        .then_output(|| UpdateAliasOutput::builder().function_version("4").build());
    let function = function(
        &[
            &read, &alias, &version_3, &ready, &update, &settled, &publish, &version_4, &point,
        ],
        target(true, Some("live")),
    );
    let progress = Progress::discard("render");
    let live = function.read_live().await.unwrap();
    assert_eq!(live.ids[ids::VERSION], "3");
    assert_eq!(live.ids[ids::VERSION_CODE_SHA256], OLD);
    assert!(!function.is_current(&live, &wanted(NEW)));
    let applied = function
        .apply(
            &live,
            Some(Code::ZipFile(Arc::from(&b"code"[..]))),
            Some(NEW),
            NEW.into(),
            &progress,
        )
        .await
        .unwrap();
    let applied = function.wait(&applied, &policy(), &progress).await.unwrap();
    assert_eq!(point.num_calls(), 1);
    assert_eq!(applied.ids[ids::OLD_VERSION], "3");
    assert_eq!(applied.ids[ids::VERSION], "4");
    assert_eq!(applied.ids[ids::ALIAS], "live");
    assert_eq!(applied.ids[ids::OLD_CODE_SHA256], OLD);
    assert_eq!(applied.ids[ids::CODE_SHA256], NEW);
}

#[tokio::test(start_paused = true)]
async fn lagging_alias_is_repaired_without_a_code_update() {
    // A deploy stopped after the code update: $LATEST holds the code, the alias the old one.
    let new = Fixture::zip("render", NEW);
    let ready = configuration(new.clone());
    let settled = configuration(new.clone());
    let publish = mock!(Client::publish_version)
        .then_output(|| PublishVersionOutput::builder().version("5").build());
    let version_5 = mock!(Client::get_function_configuration)
        .match_requests(|r| r.qualifier() == Some("5"))
        .then_output({
            let f = new.clone().version("5");
            move || f.get_configuration()
        });
    let missing = mock!(Client::update_alias)
        .then_error(|| UpdateAliasError::ResourceNotFoundException(not_found(None)));
    let create = mock!(Client::create_alias)
        .match_requests(|r| r.name() == Some("live") && r.function_version() == Some("5"))
        .then_output(|| CreateAliasOutput::builder().function_version("5").build());
    let function = function(
        &[&ready, &settled, &publish, &version_5, &missing, &create],
        target(true, Some("live")),
    );
    let live = live(NEW, &[]);
    assert!(!function.is_current(&live, &wanted(NEW)), "no alias yet");
    let progress = Progress::discard("render");
    let applied = function
        .apply(&live, None, Some(NEW), NEW.into(), &progress)
        .await
        .unwrap();
    let applied = function.wait(&applied, &policy(), &progress).await.unwrap();
    assert_eq!(create.num_calls(), 1);
    assert_eq!(applied.ids[ids::VERSION], "5");
    assert!(!applied.ids.contains_key(ids::OLD_VERSION));
}

#[test]
fn current_means_code_and_version_agree() {
    let client: Client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, &[]);
    let plain = Function::new(client.clone(), target(false, None), PackageKind::Zip);
    let aliased = Function::new(client.clone(), target(true, Some("live")), PackageKind::Zip);
    let published = Function::new(client, target(true, None), PackageKind::Zip);
    let at = |version: &str, code: &str| {
        live(
            NEW,
            &[
                (ids::ALIAS, "live"),
                (ids::VERSION, version),
                (ids::VERSION_CODE_SHA256, code),
            ],
        )
    };
    assert!(plain.is_current(&live(NEW, &[]), &wanted(NEW)));
    assert!(!plain.is_current(&live(OLD, &[]), &wanted(NEW)));
    assert!(aliased.is_current(&at("7", NEW), &wanted(NEW)));
    assert!(
        !aliased.is_current(&at("6", OLD), &wanted(NEW)),
        "alias lags"
    );
    assert!(
        !aliased.is_current(&at("$LATEST", NEW), &wanted(NEW)),
        "alias on $LATEST"
    );
    assert!(
        !aliased.is_current(&live(NEW, &[]), &wanted(NEW)),
        "no alias"
    );
    assert!(
        !aliased.is_current(&at("7", NEW), &wanted(OLD)),
        "code differs"
    );
    let mut weighted = at("7", NEW);
    weighted
        .ids
        .insert(ids::ALIAS_ROUTING.into(), "6=0.1".into());
    assert!(
        !aliased.is_current(&weighted, &wanted(NEW)),
        "canary weights"
    );
    let newest = |code: &str| {
        live(
            NEW,
            &[(ids::VERSION, "2"), (ids::VERSION_CODE_SHA256, code)],
        )
    };
    assert!(published.is_current(&newest(NEW), &wanted(NEW)));
    assert!(!published.is_current(&newest(OLD), &wanted(NEW)));
    assert!(
        !published.is_current(&live(NEW, &[]), &wanted(NEW)),
        "nothing published"
    );
    // An update of the wanted code that has not (or not successfully) finished is not current:
    // a run stopped while it waited must not make the next one record it unseen.
    for (status, current) in [
        ("Successful", true),
        ("InProgress", false),
        ("Failed", false),
    ] {
        assert_eq!(
            plain.is_current(
                &live(NEW, &[(ids::LAST_UPDATE_STATUS, status)]),
                &wanted(NEW)
            ),
            current,
            "LastUpdateStatus {status}"
        );
    }
}

/// A run updated the code and was stopped while it waited: the re-run finds `$LATEST` on the
/// wanted code with the update still `InProgress`. Not current; nothing is sent again; the wait
/// waits for that update.
#[tokio::test(start_paused = true)]
async fn an_update_in_progress_of_the_wanted_code_is_waited_for_not_taken_as_done() {
    let fixture = Fixture::zip("render", NEW).status(LastUpdateStatus::InProgress);
    let read = mock!(Client::get_function).then_output({
        let f = fixture.clone();
        move || f.get_function()
    });
    let polls = mock!(Client::get_function_configuration)
        .sequence()
        .output({
            let f = fixture.clone();
            move || f.get_configuration()
        })
        .times(3)
        .output({
            let f = Fixture::zip("render", NEW);
            move || f.get_configuration()
        })
        .times(2)
        .build();
    let function = function(&[&read, &polls], target(false, None));
    let (_, progress) = collect();
    let live = function.read_live().await.unwrap();
    assert_eq!(live.ids[ids::LAST_UPDATE_STATUS], "InProgress");
    assert!(!function.is_current(&live, &wanted(NEW)));
    // `$LATEST` holds the code: no UpdateFunctionCode (Sequential mode would panic on it).
    let applied = function
        .apply(&live, None, Some(NEW), NEW.into(), &progress)
        .await
        .unwrap();
    let settled = function.wait(&applied, &policy(), &progress).await.unwrap();
    assert_eq!(settled.ids[ids::CODE_SHA256], NEW);
}

/// Throttling that outlasts the SDK's retries inside a wait is a pending poll, not a failed
/// deploy: the wait goes on and sees the update succeed.
#[tokio::test(start_paused = true)]
async fn throttling_inside_the_wait_is_a_pending_poll() {
    const THROTTLED: &str = r#"{"__type":"TooManyRequestsException","message":"Rate exceeded","Reason":"CallerRateLimitExceeded","Type":"User"}"#;
    let polls = mock!(Client::get_function_configuration)
        .sequence()
        .http_status(429, Some(THROTTLED.into()))
        .times(7)
        .output({
            let f = Fixture::zip("render", NEW);
            move || f.get_configuration()
        })
        .build();
    let client: Client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, [&polls], |config| {
        config.retry_config(
            aws_sdk_lambda::config::retry::RetryConfig::standard().with_max_attempts(3),
        )
    });
    let function =
        Function::new(client, target(false, None), PackageKind::Zip).with_policy(policy());
    let (sink, progress) = collect();
    let applied = Applied {
        old_artifact: Some(OLD.into()),
        new_artifact: NEW.into(),
        ids: [(ids::CODE_SHA256.to_owned(), NEW.to_owned())].into(),
    };
    let settled = function.wait(&applied, &policy(), &progress).await.unwrap();
    assert_eq!(settled.ids[ids::CODE_SHA256], NEW);
    assert_eq!(polls.num_calls(), 8);
    let details: Vec<String> = sink.events().into_iter().map(|e| e.message).collect();
    assert!(
        details
            .iter()
            .any(|m| m.contains("TooManyRequestsException") && m.contains("retrying")),
        "{details:#?}"
    );
}

/// Access denied inside a wait is no passing condition: the wait fails at once.
#[tokio::test(start_paused = true)]
async fn access_denied_inside_the_wait_fails_at_once() {
    let denied = mock!(Client::get_function_configuration)
        .sequence()
        .http_status(
            403,
            Some(r#"{"__type":"AccessDeniedException","message":"not allowed"}"#.into()),
        )
        .build();
    let function = function(&[&denied], target(false, None));
    let applied = Applied {
        old_artifact: Some(OLD.into()),
        new_artifact: NEW.into(),
        ids: [(ids::CODE_SHA256.to_owned(), NEW.to_owned())].into(),
    };
    let error = function
        .wait(&applied, &policy(), &Progress::discard("render"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Api { code: Some(code), .. } if code == "AccessDeniedException"),
        "{error:?}"
    );
    assert_eq!(denied.num_calls(), 1);
}

#[tokio::test]
async fn newest_published_version_is_read_across_pages() {
    let read =
        mock!(Client::get_function).then_output(|| Fixture::zip("render", NEW).get_function());
    let pages = mock!(Client::list_versions_by_function)
        .sequence()
        .output(|| {
            ListVersionsByFunctionOutput::builder()
                .versions(Fixture::zip("render", NEW).configuration())
                .versions(Fixture::zip("render", OLD).version("9").configuration())
                .versions(Fixture::zip("render", OLD).version("10").configuration())
                .next_marker("page-2")
                .build()
        })
        .output(|| {
            ListVersionsByFunctionOutput::builder()
                .versions(Fixture::zip("render", NEW).version("11").configuration())
                .versions(Fixture::zip("render", OLD).version("2").configuration())
                .build()
        })
        .build();
    let function = function(&[&read, &pages], target(true, None));
    let live = function.read_live().await.unwrap();
    assert_eq!(pages.num_calls(), 2);
    assert_eq!(live.ids[ids::VERSION], "11");
    assert_eq!(live.ids[ids::VERSION_CODE_SHA256], NEW);
    assert!(function.is_current(&live, &wanted(NEW)));
}

/// A `ResourceNotFoundException` as the SDK reads it from Lambda's answer: with its code.
fn not_found(message: Option<&str>) -> ResourceNotFoundException {
    let mut meta = ErrorMetadata::builder().code("ResourceNotFoundException");
    if let Some(message) = message {
        meta = meta.message(message);
    }
    ResourceNotFoundException::builder()
        .set_message(message.map(str::to_owned))
        .meta(meta.build())
        .build()
}

#[tokio::test]
async fn missing_alias_is_not_an_error() {
    let read =
        mock!(Client::get_function).then_output(|| Fixture::zip("render", NEW).get_function());
    let alias = mock!(Client::get_alias)
        .then_error(|| GetAliasError::ResourceNotFoundException(not_found(None)));
    let function = function(&[&read, &alias], target(true, Some("live")));
    let live = function.read_live().await.unwrap();
    assert!(!live.ids.contains_key(ids::VERSION));
    assert!(
        live.summary.contains("no alias live yet"),
        "{}",
        live.summary
    );
}

#[tokio::test]
async fn missing_function_is_not_found() {
    let read = mock!(Client::get_function).then_error(|| {
        GetFunctionError::ResourceNotFoundException(not_found(Some(
            "Function not found: arn:aws:lambda:us-east-1:123456789012:function:render",
        )))
    });
    let function = function(&[&read], target(false, None));
    let error = function.read_live().await.unwrap_err();
    assert!(matches!(error, DeployError::NotFound { .. }), "{error:?}");
    assert!(error.is_config());
    assert!(
        error.to_string().contains("Lambda function render"),
        "{error}"
    );
}

#[tokio::test]
async fn api_errors_are_one_line_with_operation_and_code() {
    let read = mock!(Client::get_function).then_error(|| {
        GetFunctionError::generic(
            ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("User: arn:aws:iam::1:user/ci is not authorized\nto perform: lambda:GetFunction")
                .build(),
        )
    });
    let function = function(&[&read], target(false, None));
    match function.read_live().await.unwrap_err() {
        DeployError::Api {
            operation,
            code,
            message,
        } => {
            assert_eq!(operation, "GetFunction");
            assert_eq!(code.as_deref(), Some("AccessDeniedException"));
            assert!(!message.contains('\n'), "{message}");
            assert!(
                message.starts_with("AccessDeniedException: User:"),
                "{message}"
            );
        }
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn image_function_is_refused_by_a_zip_deployer_before_anything_is_sent() {
    let read = mock!(Client::get_function).then_output(|| {
        Fixture::image(
            "render",
            "1.dkr.ecr.us-east-1.amazonaws.com/r@sha256:1",
            "x",
        )
        .get_function()
    });
    let function = function(&[&read], target(false, None));
    let error = function.read_live().await.unwrap_err();
    let DeployError::Mismatch(message) = &error else {
        panic!("expected a mismatch, got {error:?}");
    };
    assert!(
        message.contains("is an image function (PackageType Image)"),
        "{message}"
    );
    assert!(message.contains("kind = \"lambda-image\""), "{message}");
}

#[tokio::test]
async fn live_state_never_carries_environment_values() {
    let read =
        mock!(Client::get_function).then_output(|| Fixture::zip("render", NEW).get_function());
    let function = function(&[&read], target(false, None));
    let live = function.read_live().await.unwrap();
    assert_no_secret(&live.summary);
    assert_no_secret(&format!("{live:?}"));
    assert_eq!(live.artifact.as_deref(), Some(NEW));
    assert_eq!(live.ids[ids::FUNCTION], Fixture::zip("render", NEW).arn());
    assert!(
        live.summary
            .starts_with("zip function render (x86_64) runs"),
        "{}",
        live.summary
    );
    // The package type is read from the configuration (here: Zip, Lambda's default).
    assert_eq!(
        Fixture::zip("render", NEW).configuration().package_type(),
        Some(&PackageType::Zip)
    );
}

/// A fence that lets the first `allowed` mutating calls through and refuses every later one,
/// as a run does once it lost its deploy lock.
struct LockLost {
    allowed: usize,
    asked: std::sync::atomic::AtomicUsize,
}

impl LockLost {
    fn after(allowed: usize) -> Arc<Self> {
        Arc::new(LockLost {
            allowed,
            asked: std::sync::atomic::AtomicUsize::new(0),
        })
    }
}

impl deployer_core::Fence for LockLost {
    fn check(&self) -> Result<(), String> {
        let asked = self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if asked < self.allowed {
            Ok(())
        } else {
            Err("the deploy lock of render was taken over".into())
        }
    }
}

/// `$LATEST` names the wanted code but its last update `Failed` (e.g. the KMS key was not
/// usable): the code is not live, so both deployers send it again — the only way a re-run of
/// the same release repairs the function once the cause is fixed.
#[test]
fn code_of_a_failed_update_is_not_live() {
    for (status, live_code) in [
        ("Successful", true),
        ("InProgress", true),
        ("Failed", false),
    ] {
        assert_eq!(
            crate::code_is_live(
                &live(NEW, &[(ids::LAST_UPDATE_STATUS, status)]),
                &wanted(NEW)
            ),
            live_code,
            "LastUpdateStatus {status}"
        );
    }
    assert!(crate::code_is_live(&live(NEW, &[]), &wanted(NEW)));
    assert!(!crate::code_is_live(&live(OLD, &[]), &wanted(NEW)));
}

/// With an alias, what serves traffic is the version the alias points at, not `$LATEST`: after
/// a rollback pointed the alias back at version 3, the older code is served although `$LATEST`
/// keeps the newer one.
#[test]
fn serves_follows_the_alias_not_latest() {
    let client: Client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, &[]);
    let aliased = Function::new(client.clone(), target(true, Some("live")), PackageKind::Zip);
    let plain = Function::new(client.clone(), target(false, None), PackageKind::Zip);
    let published = Function::new(client.clone(), target(true, None), PackageKind::Zip);
    let rolled_back = live(
        NEW,
        &[
            (ids::ALIAS, "live"),
            (ids::VERSION, "3"),
            (ids::VERSION_CODE_SHA256, OLD),
        ],
    );
    assert!(aliased.serves(&rolled_back, &wanted(OLD)));
    assert!(!aliased.serves(&rolled_back, &wanted(NEW)));
    assert!(!aliased.is_current(&rolled_back, &wanted(OLD)));
    // The alias's version serves even while an update of `$LATEST` failed.
    let mut failed_latest = rolled_back.clone();
    failed_latest
        .ids
        .insert(ids::LAST_UPDATE_STATUS.into(), "Failed".into());
    assert!(aliased.serves(&failed_latest, &wanted(OLD)));
    // A deploy that completed: alias and `$LATEST` agree.
    let deployed = live(
        NEW,
        &[
            (ids::ALIAS, "live"),
            (ids::VERSION, "4"),
            (ids::VERSION_CODE_SHA256, NEW),
        ],
    );
    assert!(aliased.serves(&deployed, &wanted(NEW)));
    assert!(!aliased.serves(&deployed, &wanted(OLD)));
    // No alias yet, or weighted between two versions: no single artifact is served.
    assert!(!aliased.serves(&live(NEW, &[]), &wanted(NEW)));
    let mut weighted = deployed.clone();
    weighted
        .ids
        .insert(ids::ALIAS_ROUTING.into(), "3=0.5".into());
    assert!(!aliased.serves(&weighted, &wanted(NEW)));
    // An alias on `$LATEST` serves `$LATEST`, once its update succeeded.
    let on_latest = |status: &str| {
        live(
            NEW,
            &[
                (ids::ALIAS, "live"),
                (ids::VERSION, "$LATEST"),
                (ids::VERSION_CODE_SHA256, NEW),
                (ids::LAST_UPDATE_STATUS, status),
            ],
        )
    };
    assert!(aliased.serves(&on_latest("Successful"), &wanted(NEW)));
    assert!(!aliased.serves(&on_latest("Failed"), &wanted(NEW)));
    // Without an alias, the same as is_current.
    assert!(plain.serves(&live(NEW, &[]), &wanted(NEW)));
    assert!(!plain.serves(&rolled_back, &wanted(OLD)));
    assert!(!plain.serves(
        &live(NEW, &[(ids::LAST_UPDATE_STATUS, "Failed")]),
        &wanted(NEW)
    ));
    let newest = live(NEW, &[(ids::VERSION, "2"), (ids::VERSION_CODE_SHA256, OLD)]);
    assert_eq!(
        published.serves(&newest, &wanted(NEW)),
        published.is_current(&newest, &wanted(NEW))
    );
}

/// Image functions: a published version's `CodeSha256` is the image's manifest digest (hex), so
/// the image an alias serves is known even when `$LATEST` runs another one.
#[test]
fn serves_compares_an_image_by_digest_with_the_aliased_version() {
    let client: Client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, &[]);
    let aliased = Function::new(client, target(true, Some("live")), PackageKind::Image);
    let image = |digest: &str| {
        Artifact::Image(deployer_core::ImageArtifact {
            repository_uri: "1.dkr.ecr.us-east-1.amazonaws.com/api".into(),
            tag: "t".into(),
            digest: Some(format!("sha256:{digest}")),
        })
    };
    let mut rolled_back = live(
        "1.dkr.ecr.us-east-1.amazonaws.com/api@sha256:2222",
        &[
            (ids::ALIAS, "live"),
            (ids::VERSION, "3"),
            (ids::VERSION_CODE_SHA256, "1111"),
        ],
    );
    rolled_back
        .ids
        .insert(ids::CODE_SHA256.into(), "2222".into());
    assert!(aliased.serves(&rolled_back, &image("1111")));
    assert!(!aliased.serves(&rolled_back, &image("2222")));
}

/// A run that lost its lock after its code update stops before `PublishVersion`: no version is
/// published, no alias moved.
#[tokio::test(start_paused = true)]
async fn a_fenced_run_publishes_nothing() {
    let old = Fixture::zip("render", OLD);
    let ready = configuration(old.clone());
    let update = mock!(Client::update_function_code).then_output({
        let f = old.clone().code(NEW);
        move || f.update_output()
    });
    let settled = configuration(old.clone().code(NEW));
    let publish = mock!(Client::publish_version)
        .then_output(|| PublishVersionOutput::builder().version("4").build());
    let point = mock!(Client::update_alias)
        .then_output(|| UpdateAliasOutput::builder().function_version("4").build());
    let function = function(
        &[&ready, &update, &settled, &publish, &point],
        target(true, Some("live")),
    );
    let fence = LockLost::after(1);
    let progress = Progress::discard("render").with_fence(fence.clone());
    let applied = function
        .apply(
            &live(OLD, &[]),
            Some(Code::ZipFile(Arc::from(&b"code"[..]))),
            Some(NEW),
            NEW.into(),
            &progress,
        )
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
    let error = function
        .wait(&applied, &policy(), &progress)
        .await
        .unwrap_err();
    match &error {
        DeployError::Fenced { call, reason } => {
            assert_eq!(call, "PublishVersion");
            assert!(reason.contains("taken over"), "{reason}");
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert_eq!(publish.num_calls(), 0);
    assert_eq!(point.num_calls(), 0);
}

/// A rollback by alias is a mutation too: fenced, the alias is not moved.
#[tokio::test(start_paused = true)]
async fn a_fenced_rollback_moves_no_alias() {
    let point = mock!(Client::update_alias)
        .then_output(|| UpdateAliasOutput::builder().function_version("3").build());
    let create = mock!(Client::create_alias)
        .then_output(|| CreateAliasOutput::builder().function_version("3").build());
    let function = function(&[&point, &create], target(true, Some("live")));
    let previous = Applied {
        old_artifact: None,
        new_artifact: OLD.into(),
        ids: [(ids::VERSION.to_owned(), "3".to_owned())].into(),
    };
    let progress = Progress::discard("render").with_fence(LockLost::after(0));
    let error = function
        .restore(&live(NEW, &[]), &previous, &policy(), &progress)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Fenced { call, .. } if call == "UpdateAlias"),
        "{error:?}"
    );
    assert_eq!(point.num_calls() + create.num_calls(), 0);
}

/// A response that could not be read is shown by its chain of causes: never the raw response,
/// whose body (a `GetFunction` answer) carries the function's environment values.
#[test]
fn an_unreadable_response_shows_no_body() {
    use aws_sdk_lambda::config::http::HttpResponse;
    use aws_sdk_lambda::error::SdkError;
    use aws_sdk_lambda::operation::get_function::GetFunctionError;
    use aws_sdk_lambda::primitives::SdkBody;

    let body = format!(
        r#"{{"Configuration":{{"Environment":{{"Variables":{{"DB_PASSWORD":"{SECRET}"}}}}"#
    );
    let raw = HttpResponse::new(200u16.try_into().unwrap(), SdkBody::from(body.clone()));
    let error: SdkError<GetFunctionError, HttpResponse> =
        SdkError::response_error("the response body ended early", raw);
    let api = crate::error::api_error("GetFunction", &error);
    let text = api.to_string();
    assert_no_secret(&text);
    assert!(!text.contains('\n'), "{text}");
    assert!(text.contains("the response body ended early"), "{text}");
    // A service error is `Code: message`, whatever the raw response holds.
    let raw = HttpResponse::new(500u16.try_into().unwrap(), SdkBody::from(body));
    let error: SdkError<GetFunctionError, HttpResponse> = SdkError::service_error(
        GetFunctionError::generic(
            ErrorMetadata::builder()
                .code("ServiceException")
                .message("internal error")
                .build(),
        ),
        raw,
    );
    assert_eq!(
        crate::error::api_error("GetFunction", &error).to_string(),
        "GetFunction failed: ServiceException: internal error"
    );
}

/// Issue 17: a rollback by alias first asks whether the recorded version still exists: a
/// deleted one is gone (nothing is pointed at it), an existing one present.
#[tokio::test(start_paused = true)]
async fn a_deleted_version_is_not_restorable() {
    use aws_sdk_lambda::operation::get_function_configuration::{
        GetFunctionConfigurationError, GetFunctionConfigurationOutput,
    };
    let there = mock!(Client::get_function_configuration)
        .match_requests(|r| r.qualifier() == Some("3"))
        .then_output(|| {
            GetFunctionConfigurationOutput::builder()
                .version("3")
                .build()
        });
    let deleted = mock!(Client::get_function_configuration)
        .match_requests(|r| r.qualifier() == Some("2"))
        .then_error(|| {
            GetFunctionConfigurationError::ResourceNotFoundException(not_found(Some(
                "Function not found: arn:aws:lambda:eu-west-1:1:function:render:2",
            )))
        });
    let function = function(&[&there, &deleted], target(true, Some("live")));
    let record = |version: &str| Applied {
        old_artifact: None,
        new_artifact: OLD.into(),
        ids: [(ids::VERSION.to_owned(), version.to_owned())].into(),
    };
    assert_eq!(
        function.restorable(&record("3")).await.unwrap(),
        Presence::Present
    );
    let Presence::Gone { why } = function.restorable(&record("2")).await.unwrap() else {
        panic!("version 2 was deleted");
    };
    assert!(
        why.starts_with("version 2 of ") && why.ends_with("no longer exists (it was deleted)"),
        "{why}"
    );
}
