//! The CodeBuild flow against mocked S3, CodeBuild and CloudWatch Logs answers (sequential
//! rules: a request beyond the listed ones fails the test): upload once, start, follow the
//! phases and the log lines to each end state, the deadline, an interrupted run's stop.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_cloudwatchlogs::Client as Logs;
use aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput;
use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
use aws_sdk_codebuild::Client as CodeBuildClient;
use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsOutput;
use aws_sdk_codebuild::operation::start_build::{StartBuildError, StartBuildOutput};
use aws_sdk_codebuild::operation::stop_build::StopBuildOutput;
use aws_sdk_codebuild::types::{
    Build, BuildPhase, BuildPhaseType, LogsLocation, PhaseContext, StatusType,
};
use aws_sdk_s3::Client as S3;
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use deployer_core::manifest::CodeBuild;
use deployer_core::progress::Collect;
use deployer_core::{Phase, Progress};
use deployer_image::RemoteBuild;

use crate::{Clients, CodeBuildError, Session, Timing};

const ID: &str = "acme-images:6a1f0c6e-0000-4000-8000-000000000001";

fn timing() -> Timing {
    Timing {
        poll: Duration::from_millis(1),
        max_poll: Duration::from_millis(4),
        build_timeout_minutes: 60,
        deadline: Duration::from_secs(30),
    }
}

fn session(s3: &[&Rule], codebuild: &[&Rule], logs: &[&Rule], timing: Timing) -> Session {
    session_in(RuleMode::Sequential, s3, codebuild, logs, timing)
}

/// `mode` for the CodeBuild client (`MatchAny` where a status repeats until something else
/// is called, as a build that runs until it is stopped).
fn session_in(
    mode: RuleMode,
    s3: &[&Rule],
    codebuild: &[&Rule],
    logs: &[&Rule],
    timing: Timing,
) -> Session {
    let clients = Clients {
        s3: mock_client!(aws_sdk_s3, RuleMode::Sequential, s3),
        codebuild: mock_client!(aws_sdk_codebuild, mode, codebuild),
        logs: mock_client!(aws_sdk_cloudwatchlogs, RuleMode::Sequential, logs),
    };
    Session::new(clients, "acme").with_timing(timing)
}

fn settings(arm: bool) -> CodeBuild {
    CodeBuild {
        project: "acme-images".into(),
        bucket: "acme-contexts".into(),
        compute: "BUILD_GENERAL1_SMALL".into(),
        arm,
    }
}

/// A staged context and a Dockerfile; the directory lives as long as the returned guard.
fn context() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("ctx");
    std::fs::create_dir_all(context.join("src")).unwrap();
    std::fs::write(context.join("src/app.py"), "print(1)\n").unwrap();
    let dockerfile = dir.path().join("Dockerfile");
    std::fs::write(&dockerfile, "FROM scratch\nCOPY src /src\n").unwrap();
    (dir, context, dockerfile)
}

fn head_missing() -> Rule {
    mock!(S3::head_object).then_error(|| {
        HeadObjectError::NotFound(aws_sdk_s3::types::error::NotFound::builder().build())
    })
}

fn head_found() -> Rule {
    mock!(S3::head_object).then_output(|| HeadObjectOutput::builder().build())
}

fn put() -> Rule {
    mock!(S3::put_object)
        .match_requests(|r| {
            r.bucket() == Some("acme-contexts")
                && r.key().is_some_and(|k| {
                    k.starts_with("deployer/acme/contexts/")
                        && k.ends_with(".zip")
                        && k.len() == 23 + 64 + 4
                })
        })
        .then_output(|| PutObjectOutput::builder().build())
}

fn start(arm: bool) -> Rule {
    mock!(CodeBuildClient::start_build)
        .match_requests(move |r| {
            let spec = r.buildspec_override().unwrap_or_default();
            r.project_name() == Some("acme-images")
                && r.source_location_override()
                    .is_some_and(|l| l.starts_with("acme-contexts/deployer/acme/contexts/"))
                && r.privileged_mode_override() == Some(true)
                && r.environment_type_override().map(|e| e.as_str())
                    == Some(if arm {
                        "ARM_CONTAINER"
                    } else {
                        "LINUX_CONTAINER"
                    })
                && spec.contains("docker push ''127.0.0.1:5000/acme/api:abc''")
                && spec.contains(if arm {
                    "''linux/arm64''"
                } else {
                    "''linux/amd64''"
                })
        })
        .then_output(|| {
            StartBuildOutput::builder()
                .build_value(
                    Build::builder()
                        .id(ID)
                        .build_status(StatusType::InProgress)
                        .build(),
                )
                .build()
        })
}

fn phase(
    kind: BuildPhaseType,
    status: Option<StatusType>,
    context: Option<(&str, &str)>,
) -> BuildPhase {
    let mut phase = BuildPhase::builder().phase_type(kind);
    if let Some(status) = status {
        phase = phase.phase_status(status);
    }
    if let Some((code, message)) = context {
        phase = phase.contexts(
            PhaseContext::builder()
                .status_code(code)
                .message(message)
                .build(),
        );
    }
    phase.build()
}

fn build(
    current: &str,
    status: StatusType,
    complete: bool,
    phases: Vec<BuildPhase>,
    logs: bool,
) -> BatchGetBuildsOutput {
    let mut build = Build::builder()
        .id(ID)
        .current_phase(current)
        .build_status(status)
        .build_complete(complete)
        .set_phases(Some(phases));
    if logs {
        build = build.logs(
            LogsLocation::builder()
                .group_name("/aws/codebuild/acme-images")
                .stream_name("6a1f0c6e-0000-4000-8000-000000000001")
                .build(),
        );
    }
    BatchGetBuildsOutput::builder()
        .builds(build.build())
        .build()
}

fn get(output: impl Fn() -> BatchGetBuildsOutput + Send + Sync + 'static) -> Rule {
    mock!(CodeBuildClient::batch_get_builds)
        .match_requests(|r| r.ids() == [ID.to_owned()])
        .then_output(output)
}

fn events(lines: &[&str], token: &str) -> Rule {
    let lines: Vec<String> = lines.iter().map(|s| (*s).to_owned()).collect();
    let token = token.to_owned();
    mock!(Logs::get_log_events)
        .match_requests(|r| {
            r.log_group_name() == Some("/aws/codebuild/acme-images")
                && r.start_from_head() == Some(true)
        })
        .then_output(move || {
            let mut out = GetLogEventsOutput::builder().next_forward_token(token.clone());
            for line in &lines {
                out = out.events(
                    OutputLogEvent::builder()
                        .message(format!("{line}\n"))
                        .timestamp(1)
                        .build(),
                );
            }
            out.build()
        })
}

async fn run(session: &Session, arm: bool) -> (Result<(), CodeBuildError>, Vec<String>) {
    let (_dir, context, dockerfile) = context();
    let sink = Arc::new(Collect::default());
    let progress = Progress::new("api", sink.clone());
    let args = BTreeMap::new();
    let result = session
        .builder(settings(arm))
        .run(
            &RemoteBuild {
                service: "api",
                image: "127.0.0.1:5000/acme/api:abc",
                registry: "127.0.0.1:5000",
                tag: "abc",
                context_dir: &context,
                dockerfile: &dockerfile,
                platform: if arm { "linux/arm64" } else { "linux/amd64" },
                build_args: &args,
            },
            &progress,
        )
        .await;
    let lines = sink
        .events()
        .into_iter()
        .inspect(|e| assert_eq!(e.phase, Phase::Build))
        .map(|e| e.message)
        .collect();
    (result, lines)
}

#[tokio::test]
async fn uploads_the_context_starts_and_follows_the_phases_and_log_lines_to_success() {
    let (head, put) = (head_missing(), put());
    let start = start(true);
    let queued = get(|| build("QUEUED", StatusType::InProgress, false, vec![], false));
    let building = get(|| build("BUILD", StatusType::InProgress, false, vec![], true));
    let done = get(|| {
        build(
            "COMPLETED",
            StatusType::Succeeded,
            true,
            vec![phase(
                BuildPhaseType::Build,
                Some(StatusType::Succeeded),
                None,
            )],
            true,
        )
    });
    let first = events(
        &["Step 1/2 : FROM scratch", "Step 2/2 : COPY src /src"],
        "f/1",
    );
    let none = events(&[], "f/1");
    let last = events(&["pushed"], "f/2");
    let none_again = events(&[], "f/2");
    let after_the_end = events(&[], "f/2");
    let session = session(
        &[&head, &put],
        &[&start, &queued, &building, &done],
        &[&first, &none, &last, &none_again, &after_the_end],
        timing(),
    );
    let (result, lines) = run(&session, true).await;
    result.unwrap();
    for needle in [
        "uploaded the build context to s3://acme-contexts/deployer/acme/contexts/",
        "started (ARM fleet, BUILD_GENERAL1_SMALL)",
        "CodeBuild phase QUEUED",
        "CodeBuild phase BUILD",
        "Step 2/2 : COPY src /src",
        "CodeBuild phase COMPLETED",
        "pushed",
    ] {
        assert!(
            lines.iter().any(|l| l.contains(needle)),
            "{needle} not in {lines:#?}"
        );
    }
    // Each line once, in order.
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("Step")).count(),
        2,
        "{lines:#?}"
    );
    assert!(session.unfinished().is_empty());
    for rule in [
        &head,
        &put,
        &start,
        &queued,
        &building,
        &done,
        &first,
        &none,
        &last,
        &none_again,
        &after_the_end,
    ] {
        assert_eq!(rule.num_calls(), 1);
    }
}

#[tokio::test]
async fn a_context_already_uploaded_is_not_uploaded_again() {
    let head = head_found();
    let start = start(false);
    let done = get(|| build("COMPLETED", StatusType::Succeeded, true, vec![], false));
    let session = session(&[&head], &[&start, &done], &[], timing());
    let (result, lines) = run(&session, false).await;
    result.unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("build context already in s3://acme-contexts/")),
        "{lines:#?}"
    );
    assert_eq!(head.num_calls(), 1);
}

#[tokio::test]
async fn each_end_state_other_than_succeeded_fails_with_the_phase_its_context_and_the_log_tail() {
    for status in [
        StatusType::Failed,
        StatusType::Fault,
        StatusType::TimedOut,
        StatusType::Stopped,
    ] {
        let head = head_found();
        let start = start(false);
        let failed = {
            let status = status.clone();
            get(move || {
                build(
                    "COMPLETED",
                    status.clone(),
                    true,
                    vec![
                        phase(BuildPhaseType::PreBuild, Some(StatusType::Succeeded), None),
                        phase(
                            BuildPhaseType::Build,
                            Some(status.clone()),
                            Some((
                                "COMMAND_EXECUTION_ERROR",
                                "Error while executing command: docker build. Reason: exit status 1",
                            )),
                        ),
                        phase(
                            BuildPhaseType::Finalizing,
                            Some(StatusType::Succeeded),
                            None,
                        ),
                    ],
                    true,
                )
            })
        };
        let tail: Vec<String> = (1..=25).map(|n| format!("line {n}")).collect();
        let tail_refs: Vec<&str> = tail.iter().map(String::as_str).collect();
        let log = events(&tail_refs, "f/1");
        let none = events(&[], "f/1");
        let none_again = events(&[], "f/1");
        let session = session(
            &[&head],
            &[&start, &failed],
            &[&log, &none, &none_again],
            timing(),
        );
        let (result, _) = run(&session, false).await;
        let error = result.unwrap_err();
        assert!(matches!(error, CodeBuildError::Failed { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains(&format!("{ID} {} in phase BUILD", status.as_str())),
            "{message}"
        );
        assert!(
            message
                .contains("COMMAND_EXECUTION_ERROR: Error while executing command: docker build"),
            "{message}"
        );
        assert!(
            message.ends_with("line 25")
                && message.contains("line 6\n")
                && !message.contains("line 5\n"),
            "the last 20 lines: {message}"
        );
        assert!(!error.is_config());
        assert!(
            session.unfinished().is_empty(),
            "an ended build needs no stop"
        );
    }
}

#[tokio::test]
async fn a_build_past_the_deadline_is_stopped() {
    let head = head_found();
    let start = start(false);
    let running = mock!(CodeBuildClient::batch_get_builds)
        .sequence()
        .output(|| build("BUILD", StatusType::InProgress, false, vec![], false))
        .repeatedly()
        .build();
    let stop = mock!(CodeBuildClient::stop_build)
        .match_requests(|r| r.id() == Some(ID))
        .then_output(|| StopBuildOutput::builder().build());
    let mut timing = timing();
    timing.deadline = Duration::from_millis(30);
    let session = session_in(
        RuleMode::MatchAny,
        &[&head],
        &[&start, &running, &stop],
        &[],
        timing,
    );
    let (result, _) = run(&session, false).await;
    let error = result.unwrap_err();
    assert!(
        matches!(error, CodeBuildError::Deadline { ref phase, .. } if phase == "BUILD"),
        "{error:?}"
    );
    assert_eq!(stop.num_calls(), 1);
    assert!(running.num_calls() >= 2);
    assert!(session.unfinished().is_empty());
}

#[tokio::test]
async fn polls_that_fail_are_tried_again_and_only_a_run_of_them_ends_the_wait() {
    let head = head_found();
    let start = start(false);
    let flaky = mock!(CodeBuildClient::batch_get_builds)
        .sequence()
        .http_status(500, None)
        .times(2)
        .output(|| build("COMPLETED", StatusType::Succeeded, true, vec![], false))
        .build();
    let session_ok = session(&[&head], &[&start, &flaky], &[], timing());
    run(&session_ok, false).await.0.unwrap();

    let head = head_found();
    let start = self::start(false);
    let broken = mock!(CodeBuildClient::batch_get_builds)
        .sequence()
        .http_status(500, None)
        .repeatedly()
        .build();
    let session = session(&[&head], &[&start, &broken], &[], timing());
    let error = run(&session, false).await.0.unwrap_err();
    assert!(matches!(error, CodeBuildError::Follow { .. }), "{error:?}");
    assert_eq!(
        session.unfinished(),
        vec![ID.to_owned()],
        "a build we lost track of is still ours to stop"
    );
}

#[tokio::test]
async fn an_interrupted_run_leaves_its_build_to_stop_unfinished() {
    let head = head_found();
    let start = start(false);
    let running = mock!(CodeBuildClient::batch_get_builds)
        .sequence()
        .output(|| build("PROVISIONING", StatusType::InProgress, false, vec![], false))
        .repeatedly()
        .build();
    let stop = mock!(CodeBuildClient::stop_build)
        .match_requests(|r| r.id() == Some(ID))
        .then_output(|| StopBuildOutput::builder().build());
    let session = session_in(
        RuleMode::MatchAny,
        &[&head],
        &[&start, &running, &stop],
        &[],
        timing(),
    );
    // Ctrl-C: the engine drops the service's future while the build runs.
    let interrupted = tokio::time::timeout(Duration::from_millis(50), run(&session, false)).await;
    assert!(interrupted.is_err(), "the build never ends by itself");
    assert_eq!(session.unfinished(), vec![ID.to_owned()]);
    let stopped = session.stop_unfinished().await;
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].build_id, ID);
    assert!(stopped[0].result.is_ok(), "{stopped:?}");
    assert_eq!(stop.num_calls(), 1);
    assert!(session.unfinished().is_empty());
}

#[tokio::test]
async fn a_missing_project_is_a_configuration_error() {
    let head = head_found();
    let refused = mock!(CodeBuildClient::start_build).then_error(|| {
        let message =
            "Project cannot be found: arn:aws:codebuild:us-east-1:123456789012:project/acme-images";
        // As deserialized from an answer: the code and message are in the metadata too.
        StartBuildError::ResourceNotFoundException(
            aws_sdk_codebuild::types::error::ResourceNotFoundException::builder()
                .message(message)
                .meta(
                    aws_sdk_codebuild::error::ErrorMetadata::builder()
                        .code("ResourceNotFoundException")
                        .message(message)
                        .build(),
                )
                .build(),
        )
    });
    let session = session(&[&head], &[&refused], &[], timing());
    let error = run(&session, false).await.0.unwrap_err();
    assert!(error.is_config(), "{error:?}");
    assert!(
        error.to_string().contains("cannot start a build of CodeBuild project `acme-images`: ResourceNotFoundException: Project cannot be found"),
        "{error}"
    );
}

#[test]
fn the_archive_is_the_same_bytes_for_the_same_context_and_holds_exactly_it() {
    let (_dir, context, dockerfile) = context();
    std::os::unix::fs::symlink("app.py", context.join("src/link.py")).unwrap();
    let one = crate::source::archive(&context, &dockerfile).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let two = crate::source::archive(&context, &dockerfile).unwrap();
    assert_eq!(one.sha256, two.sha256);
    assert_eq!(one.files, 3);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(one.bytes)).unwrap();
    let names: Vec<String> = zip
        .file_names()
        .map(|name| name.unwrap().into_owned())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(
        names,
        [
            "context/src/app.py",
            "context/src/link.py",
            "deployer.Dockerfile"
        ]
    );
    assert!(zip.by_name("context/src/link.py").unwrap().is_symlink());
    std::fs::write(context.join("src/app.py"), "print(2)\n").unwrap();
    assert_ne!(
        crate::source::archive(&context, &dockerfile)
            .unwrap()
            .sha256,
        two.sha256
    );
}

#[tokio::test]
async fn a_log_that_cannot_be_read_is_named_in_the_failure() {
    let head = head_found();
    let start = start(false);
    let failed = get(|| {
        build(
            "COMPLETED",
            StatusType::Failed,
            true,
            vec![phase(BuildPhaseType::Build, Some(StatusType::Failed), None)],
            true,
        )
    });
    let denied = || {
        mock!(Logs::get_log_events).then_error(|| {
            aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsError::generic(
                aws_sdk_cloudwatchlogs::error::ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not authorized to perform: logs:GetLogEvents")
                    .build(),
            )
        })
    };
    let (first, second) = (denied(), denied());
    let session = session(&[&head], &[&start, &failed], &[&first, &second], timing());
    let (result, lines) = run(&session, false).await;
    let message = result.unwrap_err().to_string();
    assert!(
        message.ends_with(
            "(no log lines: AccessDeniedException: not authorized to perform: logs:GetLogEvents)"
        ),
        "{message}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("cannot read the build's log"))
            .count(),
        1,
        "reported once: {lines:#?}"
    );
}
