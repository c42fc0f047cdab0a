//! The diagnosis of a failed rollout: the `awslogs` options, the shapes of stopped tasks, and
//! the calls in order against aws-smithy-mocks (a failing call is "unavailable", the rest is
//! still read).

use std::collections::HashMap;

use aws_sdk_cloudwatchlogs::operation::get_log_events::GetLogEventsOutput;
use aws_sdk_cloudwatchlogs::types::OutputLogEvent;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
use aws_sdk_ecs::operation::list_tasks::{ListTasksError, ListTasksOutput};
use aws_sdk_ecs::types::{
    Container, DeploymentRolloutState as State, DesiredStatus, KeyValuePair, LogConfiguration,
    LogDriver, Task, TaskStopCode,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use deployer_aws::Redactor;
use deployer_core::{Applied, ContainerExit, Deployer};

use super::flows::{client, describe_services};
use super::*;
use crate::diagnose::stopped_task;
use crate::{AwsLogs, EcsDeployer, ids};

const TASK: &str = "arn:aws:ecs:us-east-1:123456789012:task/acme/5f0c1a2b";
const SECRET: &str = "postgres://app:pw@db/app";

fn logged(name: &str, options: &[(&str, &str)], driver: LogDriver) -> ContainerDefinition {
    let options: HashMap<String, String> = options
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    ContainerDefinition::builder()
        .name(name)
        .image(new_image())
        .essential(true)
        .environment(
            KeyValuePair::builder()
                .name("DATABASE_URL")
                .value(SECRET)
                .build(),
        )
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(driver)
                .set_options(Some(options))
                .build()
                .unwrap(),
        )
        .build()
}

const AWSLOGS: &[(&str, &str)] = &[
    ("awslogs-group", "/ecs/app-api"),
    ("awslogs-region", "us-east-1"),
    ("awslogs-stream-prefix", "app"),
];

#[test]
fn awslogs_options_name_the_group_region_and_stream() {
    let web = logged("web", AWSLOGS, LogDriver::Awslogs);
    let logs = AwsLogs::of(&web).unwrap();
    assert_eq!(
        logs,
        AwsLogs {
            group: "/ecs/app-api".into(),
            region: Some("us-east-1".into()),
            prefix: Some("app".into()),
        }
    );
    assert_eq!(
        logs.stream("web", "5f0c1a2b").as_deref(),
        Some("app/web/5f0c1a2b")
    );

    // No prefix: the stream is named after a Docker id ECS does not report.
    let bare = logged(
        "web",
        &[("awslogs-group", "/ecs/app-api")],
        LogDriver::Awslogs,
    );
    let bare = AwsLogs::of(&bare).unwrap();
    assert_eq!(
        (bare.region.as_deref(), bare.stream("web", "t")),
        (None, None)
    );

    // Another driver, no group, a blank group, no log configuration: no awslogs.
    assert_eq!(
        AwsLogs::of(&logged("web", AWSLOGS, LogDriver::Fluentd)),
        None
    );
    assert_eq!(
        AwsLogs::of(&logged(
            "web",
            &[("awslogs-region", "us-east-1")],
            LogDriver::Awslogs
        )),
        None
    );
    assert_eq!(
        AwsLogs::of(&logged(
            "web",
            &[("awslogs-group", " ")],
            LogDriver::Awslogs
        )),
        None
    );
    assert_eq!(AwsLogs::of(&container("web", &new_image())), None);
}

#[test]
fn log_sources_are_the_awslogs_containers_with_a_prefix() {
    let definition = TaskDefinition::builder()
        .container_definitions(logged("web", AWSLOGS, LogDriver::Awslogs))
        .container_definitions(logged(
            "sidecar",
            &[("awslogs-group", "/ecs/app-api")],
            LogDriver::Awslogs,
        ))
        .container_definitions(logged("proxy", AWSLOGS, LogDriver::Fluentd))
        .build();
    let sources = crate::diagnose::log_sources(&definition);
    assert_eq!(sources.len(), 1, "{sources:?}");
    let web = &sources[0];
    assert_eq!(
        (
            web.group.as_str(),
            web.region.as_deref(),
            web.stream_prefix.as_deref(),
            web.label.as_str()
        ),
        ("/ecs/app-api", Some("us-east-1"), Some("app/web/"), "web")
    );
    assert_eq!(
        web.redact,
        [SECRET],
        "its lines hide the environment values"
    );
}

fn exited(name: &str, code: Option<i32>, reason: Option<&str>) -> Container {
    Container::builder()
        .name(name)
        .set_exit_code(code)
        .set_reason(reason.map(Into::into))
        .build()
}

fn stopped(code: TaskStopCode, reason: &str, containers: Vec<Container>, at_s: i64) -> Task {
    Task::builder()
        .task_arn(TASK)
        .started_by(NEW_DEPLOYMENT)
        .last_status("STOPPED")
        .stop_code(code)
        .stopped_reason(reason)
        .stopped_at(at(at_s))
        .set_containers(Some(containers))
        .build()
}

#[test]
fn stopped_tasks_keep_only_the_containers_that_failed_redacted() {
    let redactor = Redactor::new([SECRET]);
    // OOM: the web container exited 137 with a reason; the sidecar exited 0 and is left out.
    let oom = stopped(
        TaskStopCode::EssentialContainerExited,
        "Essential container in task exited",
        vec![
            exited(
                "web",
                Some(137),
                Some("OutOfMemoryError: Container killed due to memory usage"),
            ),
            exited("log-router", Some(0), None),
        ],
        1010,
    );
    let task = stopped_task(&oom, &redactor);
    assert_eq!(task.task, "5f0c1a2b");
    assert_eq!(task.stop_code.as_deref(), Some("EssentialContainerExited"));
    assert_eq!(
        task.containers,
        [ContainerExit {
            name: "web".into(),
            exit_code: Some(137),
            reason: Some("OutOfMemoryError: Container killed due to memory usage".into()),
        }]
    );

    // A pull failure: the task never started, no exit code, the reason on the task; a secret
    // echoed in a reason is redacted.
    let pull = stopped(
        TaskStopCode::TaskFailedToStart,
        &format!("CannotPullContainerError: pull access denied (env {SECRET})"),
        vec![exited(
            "web",
            None,
            Some("CannotPullContainerError: not found"),
        )],
        1010,
    );
    let task = stopped_task(&pull, &redactor);
    assert_eq!(task.stop_code.as_deref(), Some("TaskFailedToStart"));
    assert_eq!(
        task.stopped_reason.as_deref(),
        Some("CannotPullContainerError: pull access denied (env ***)")
    );
    assert_eq!(task.containers[0].exit_code, None);

    // A crash (exit 1, no reason) is kept; an ARN without a cluster part still gives the id.
    let crash = Task::builder()
        .task_arn("arn:aws:ecs:us-east-1:123456789012:task/abc")
        .set_containers(Some(vec![exited("web", Some(1), None)]))
        .build();
    let task = stopped_task(&crash, &redactor);
    assert_eq!((task.task.as_str(), task.stop_code), ("abc", None));
    assert_eq!(task.containers[0].exit_code, Some(1));
}

fn failed_service() -> Service {
    service(
        OLD_TD,
        vec![
            deployment(
                ROLLBACK_DEPLOYMENT,
                "PRIMARY",
                OLD_TD,
                State::InProgress,
                0,
                2,
            ),
            deployment(NEW_DEPLOYMENT, "ACTIVE", NEW_TD, State::Failed, 0, 0),
        ],
        vec![
            event(
                "e4",
                1012,
                "(service app-api) rolling back to deployment ecs-svc/3333.",
            ),
            event(
                "e3",
                1011,
                &format!("(service app-api) (task 5f0c1a2b) failed: {SECRET}"),
            ),
            event(
                "e2",
                1011,
                "(service app-api) (task 5f0c1a2b) failed: {SECRET}",
            ),
            event(
                "e1",
                1010,
                "(service app-api) (task 5f0c1a2b) failed: {SECRET}",
            ),
            event("e0", 10, "(service app-api) has reached a steady state."),
        ],
    )
}

fn applied() -> Applied {
    Applied {
        old_artifact: Some(old_image()),
        new_artifact: new_image(),
        ids: [
            (ids::DEPLOYMENT.to_owned(), NEW_DEPLOYMENT.to_owned()),
            (ids::TASK_DEFINITION.to_owned(), NEW_TD.to_owned()),
        ]
        .into(),
    }
}

fn new_task_definition() -> aws_smithy_mocks::Rule {
    mock!(Client::describe_task_definition)
        .match_requests(|r| r.task_definition() == Some(NEW_TD))
        .then_output(|| {
            DescribeTaskDefinitionOutput::builder()
                .task_definition(task_definition(
                    NEW_TD,
                    8,
                    vec![logged("web", AWSLOGS, LogDriver::Awslogs)],
                ))
                .build()
        })
}

#[tokio::test]
async fn the_diagnosis_reads_stopped_tasks_events_and_the_log_tail_redacted() {
    let td = new_task_definition();
    let read = describe_services(failed_service());
    let list = mock!(Client::list_tasks)
        .match_requests(|r| {
            r.cluster() == Some(CLUSTER)
                && r.started_by() == Some(NEW_DEPLOYMENT)
                && r.desired_status() == Some(&DesiredStatus::Stopped)
        })
        .then_output(|| {
            ListTasksOutput::builder()
                .task_arns(TASK)
                .task_arns("other")
                .build()
        });
    let describe = mock!(Client::describe_tasks).then_output(|| {
        let oom = stopped(
            TaskStopCode::EssentialContainerExited,
            "Essential container in task exited",
            vec![exited("web", Some(137), Some("OutOfMemoryError"))],
            1010,
        );
        // A task some other deployment started: not this rollout's.
        let other = Task::builder()
            .task_arn("arn:aws:ecs:us-east-1:123456789012:task/acme/other")
            .started_by(OLD_DEPLOYMENT)
            .build();
        DescribeTasksOutput::builder()
            .tasks(oom)
            .tasks(other)
            .build()
    });
    let tail = mock!(aws_sdk_cloudwatchlogs::Client::get_log_events)
        .match_requests(|r| {
            r.log_group_name() == Some("/ecs/app-api")
                && r.log_stream_name() == Some("app/web/5f0c1a2b")
                && r.limit() == Some(crate::LOG_LINES)
                && r.start_from_head() == Some(false)
        })
        .then_output(|| {
            GetLogEventsOutput::builder()
                .events(
                    OutputLogEvent::builder()
                        .timestamp(2)
                        .message("connecting to postgres://app:pw@db/app\n")
                        .build(),
                )
                .events(
                    OutputLogEvent::builder()
                        .timestamp(1)
                        .message("listening")
                        .build(),
                )
                .build()
        });
    let logs = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::Sequential, &[&tail]);
    let ecs = client(&[&td, &read, &list, &describe]);
    let deployer = EcsDeployer::new(ecs, target(None, false)).with_logs(logs);

    let diagnosis = deployer.diagnose(&applied()).await;
    assert_eq!(diagnosis.unavailable, Vec::<String>::new());
    assert_eq!(diagnosis.stopped_tasks.len(), 1, "{diagnosis:?}");
    assert_eq!(
        diagnosis.stopped_tasks[0].containers[0].exit_code,
        Some(137)
    );
    // Since the deployment's creation (1000), oldest first, a repeated message once, redacted.
    let events: Vec<&str> = diagnosis
        .events
        .iter()
        .map(|e| e.split_once(' ').unwrap().1)
        .collect();
    assert_eq!(
        events,
        [
            "(service app-api) (task 5f0c1a2b) failed: {SECRET}",
            "(service app-api) (task 5f0c1a2b) failed: ***",
            "(service app-api) rolling back to deployment ecs-svc/3333.",
        ]
    );
    let lines: Vec<(&str, &str)> = diagnosis
        .logs
        .iter()
        .map(|l| (l.source.as_str(), l.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [
            ("web/5f0c1a2b", "listening"),
            ("web/5f0c1a2b", "connecting to ***")
        ]
    );
}

#[tokio::test]
async fn a_failing_call_is_unavailable_and_the_rest_is_still_read() {
    let td = new_task_definition();
    let read = describe_services(failed_service());
    let list = mock!(Client::list_tasks).then_error(|| {
        ListTasksError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("AccessDeniedException")
                .message("not allowed to ecs:ListTasks")
                .build(),
        )
    });
    let ecs = client(&[&td, &read, &list]);
    let deployer = EcsDeployer::new(ecs, target(None, false));

    let diagnosis = deployer.diagnose(&applied()).await;
    assert_eq!(
        diagnosis.unavailable,
        ["ListTasks failed: AccessDeniedException: not allowed to ecs:ListTasks"]
    );
    assert!(diagnosis.stopped_tasks.is_empty() && diagnosis.logs.is_empty());
    assert_eq!(diagnosis.events.len(), 3, "{diagnosis:?}");
}

#[test]
fn a_target_that_is_not_healthy_is_one_line_and_a_healthy_one_none() {
    use aws_sdk_elasticloadbalancingv2::types::{
        TargetDescription, TargetHealth, TargetHealthDescription, TargetHealthReasonEnum,
        TargetHealthStateEnum,
    };
    let target = |state, reason: Option<TargetHealthReasonEnum>, text: Option<&str>| {
        TargetHealthDescription::builder()
            .target(
                TargetDescription::builder()
                    .id("10.0.1.7")
                    .port(8080)
                    .build(),
            )
            .target_health(
                TargetHealth::builder()
                    .state(state)
                    .set_reason(reason)
                    .set_description(text.map(str::to_owned))
                    .build(),
            )
            .build()
    };
    assert_eq!(
        crate::diagnose::unhealthy(
            "acme-web",
            &target(
                TargetHealthStateEnum::Unhealthy,
                Some(TargetHealthReasonEnum::FailedHealthChecks),
                Some("Health checks failed with these codes: [502]\n")
            )
        )
        .as_deref(),
        Some(
            "target group acme-web: 10.0.1.7:8080 unhealthy: Target.FailedHealthChecks: Health checks failed with these codes: [502]"
        )
    );
    assert_eq!(
        crate::diagnose::unhealthy(
            "acme-web",
            &target(TargetHealthStateEnum::Draining, None, None)
        )
        .as_deref(),
        Some("target group acme-web: 10.0.1.7:8080 draining")
    );
    assert_eq!(
        crate::diagnose::unhealthy(
            "acme-web",
            &target(TargetHealthStateEnum::Healthy, None, None)
        ),
        None
    );
}
