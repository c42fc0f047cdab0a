//! Why a rollout failed: the stopped tasks of the new deployment, the service's events since it
//! started, the targets of its load balancers that are not healthy, and the last lines its
//! failing containers wrote through the `awslogs` driver.
//!
//! Everything read is redacted with the task definition's environment values before it goes
//! into the [`Diagnosis`]. A call that fails adds a line to [`Diagnosis::unavailable`] and the
//! rest is still gathered.

use std::collections::{HashMap, HashSet};

use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{
    ContainerDefinition, DesiredStatus, LogDriver, Service, Task, TaskDefinition,
};
use aws_sdk_elasticloadbalancingv2::types::{TargetHealthDescription, TargetHealthStateEnum};
use deployer_aws::{Failure, Redactor};
use deployer_core::{ContainerExit, Diagnosis, LogLine, LogSource, StoppedTask, one_line};

use crate::rollout;
use crate::taskdef;

/// The log lines shown by default: the last ones of the failing containers.
pub const LOG_LINES: i32 = 30;

/// Stopped tasks described at most (the most recent ones).
const TASKS: usize = 5;

/// Where a container's `awslogs` driver writes (its `logConfiguration` options).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsLogs {
    /// `awslogs-group`.
    pub group: String,
    /// `awslogs-region`, when set.
    pub region: Option<String>,
    /// `awslogs-stream-prefix`, when set: without it the stream is named after the Docker
    /// container id, which ECS does not report.
    pub prefix: Option<String>,
}

impl AwsLogs {
    /// The `awslogs` configuration of `container`, if it logs through that driver with a group.
    pub fn of(container: &ContainerDefinition) -> Option<AwsLogs> {
        let configuration = container.log_configuration()?;
        if *configuration.log_driver() != LogDriver::Awslogs {
            return None;
        }
        let options: &HashMap<String, String> = configuration.options()?;
        let option = |key: &str| {
            options
                .get(key)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        Some(AwsLogs {
            group: option("awslogs-group")?,
            region: option("awslogs-region"),
            prefix: option("awslogs-stream-prefix"),
        })
    }

    /// The stream a task's container writes to: `prefix/container/task-id`.
    pub fn stream(&self, container: &str, task_id: &str) -> Option<String> {
        self.prefix
            .as_ref()
            .map(|prefix| format!("{prefix}/{container}/{task_id}"))
    }
}

/// A stopped task as the diagnosis shows it: its id, `stopCode`, `stoppedReason`, and each
/// container that exited non-zero or has a reason. Texts are redacted.
pub(crate) fn stopped_task(task: &Task, redactor: &Redactor) -> StoppedTask {
    StoppedTask {
        task: task_id(task.task_arn().unwrap_or_default()).to_owned(),
        stop_code: task.stop_code().map(|code| code.as_str().to_owned()),
        stopped_reason: task.stopped_reason().map(|r| redactor.apply(r)),
        containers: task
            .containers()
            .iter()
            .filter(|c| c.exit_code().is_some_and(|code| code != 0) || c.reason().is_some())
            .map(|c| ContainerExit {
                name: c.name().unwrap_or("?").to_owned(),
                exit_code: c.exit_code(),
                reason: c.reason().map(|r| redactor.apply(r)),
            })
            .collect(),
    }
}

/// The last part of a task ARN (`arn:…:task/cluster/<id>` or `arn:…:task/<id>`).
pub(crate) fn task_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The events of `service` since the rollout of `deployment` began (its creation, else `since`
/// as the wait saw it: a rolled-back deployment is no longer listed), oldest first, each
/// message once, redacted.
pub(crate) fn events_since(
    service: &Service,
    deployment: &str,
    since: Option<&DateTime>,
    redactor: &Redactor,
    diagnosis: &mut Diagnosis,
) {
    let created = service
        .deployments()
        .iter()
        .find(|d| d.id() == Some(deployment))
        .and_then(|d| d.created_at());
    let since = created.or(since);
    let mut seen = HashSet::new();
    // ECS lists events newest first and repeats a message every few minutes: each once, at its
    // first time.
    for event in service.events().iter().rev() {
        if rollout::happened_since(event, since) && seen.insert(rollout::message(event)) {
            diagnosis
                .events
                .push(redactor.apply(&rollout::describe(event)));
        }
    }
}

/// Where the containers of `definition` log through `awslogs` with a stream prefix (the
/// streams `prefix/container/<task id>` of every task), for `deployer logs`. A container
/// without a prefix is left out: its streams are named after Docker container ids, which
/// ECS does not report.
pub(crate) fn log_sources(definition: &TaskDefinition) -> Vec<LogSource> {
    let hide = taskdef::environment_values(definition);
    definition
        .container_definitions()
        .iter()
        .filter_map(|container| {
            let name = container.name()?;
            let awslogs = AwsLogs::of(container)?;
            Some(LogSource {
                stream_prefix: Some(format!("{}/{name}/", awslogs.prefix?)),
                group: awslogs.group,
                region: awslogs.region,
                label: name.to_owned(),
                redact: hide.clone(),
            })
        })
        .collect()
}

/// A target that is not healthy, in one line; `None` for a healthy one.
pub(crate) fn unhealthy(group: &str, description: &TargetHealthDescription) -> Option<String> {
    let health = description.target_health()?;
    let state = health.state().map_or("unknown", |state| state.as_str());
    if health.state() == Some(&TargetHealthStateEnum::Healthy) {
        return None;
    }
    let target = description.target().map_or_else(String::new, |target| {
        let id = target.id().unwrap_or("?");
        match target.port() {
            Some(port) => format!("{id}:{port}"),
            None => id.to_owned(),
        }
    });
    let mut line = format!("target group {group}: {target} {state}");
    if let Some(reason) = health.reason() {
        line.push_str(&format!(": {}", reason.as_str()));
    }
    if let Some(text) = health.description().filter(|text| !text.is_empty()) {
        line.push_str(&format!(": {}", one_line(text)));
    }
    Some(line)
}

/// The containers whose logs explain `task`: those that failed, else the essential ones.
fn failing_containers<'a>(
    task: &StoppedTask,
    task_definition: &'a TaskDefinition,
) -> Vec<&'a ContainerDefinition> {
    let all = task_definition.container_definitions();
    let failed: Vec<_> = all
        .iter()
        .filter(|d| {
            task.containers
                .iter()
                .any(|c| Some(c.name.as_str()) == d.name())
        })
        .collect();
    if failed.is_empty() {
        all.iter()
            .filter(|d| d.essential() != Some(false))
            .collect()
    } else {
        failed
    }
}

impl crate::EcsDeployer {
    /// The diagnosis of the rollout of `deployment` on `task_definition` ([`Deployer::diagnose`]).
    ///
    /// [`Deployer::diagnose`]: deployer_core::Deployer::diagnose
    pub(crate) async fn diagnosis(&self, deployment: &str, task_definition: &str) -> Diagnosis {
        let mut diagnosis = Diagnosis::default();
        let definition = match self.task_definition(task_definition).await {
            Ok(live) => Some(live.task_definition),
            Err(error) => {
                diagnosis.unavailable.push(error.to_string());
                None
            }
        };
        let redactor = definition
            .as_ref()
            .map(taskdef::redactor)
            .unwrap_or_default();
        let since = self
            .rollout_since
            .lock()
            .ok()
            .and_then(|seen| seen.clone())
            .filter(|(id, _)| id == deployment)
            .map(|(_, at)| at);
        match self.describe_service().await {
            Ok(service) => {
                events_since(
                    &service,
                    deployment,
                    since.as_ref(),
                    &redactor,
                    &mut diagnosis,
                );
                self.target_health(&service, &redactor, &mut diagnosis)
                    .await;
            }
            Err(error) => diagnosis.unavailable.push(error.to_string()),
        }
        let tasks = self
            .stopped_tasks(deployment, &redactor, &mut diagnosis)
            .await;
        diagnosis.stopped_tasks = tasks;
        if let (Some(definition), Some(first)) = (&definition, diagnosis.stopped_tasks.first()) {
            let first = first.clone();
            for container in failing_containers(&first, definition) {
                self.log_tail(container, &first.task, &redactor, &mut diagnosis)
                    .await;
            }
            diagnosis.logs.sort_by_key(|line| line.timestamp_ms);
            let extra = diagnosis.logs.len().saturating_sub(LOG_LINES as usize);
            diagnosis.logs.drain(..extra);
        }
        diagnosis
    }

    /// The targets of the service's load balancers that are not healthy, one line each:
    /// `target group <name>: <id>:<port> unhealthy: Target.FailedHealthChecks: <description>`.
    async fn target_health(
        &self,
        service: &Service,
        redactor: &Redactor,
        diagnosis: &mut Diagnosis,
    ) {
        let Some(elbv2) = self.elbv2.as_ref() else {
            return;
        };
        let mut groups: Vec<&str> = service
            .load_balancers()
            .iter()
            .filter_map(|lb| lb.target_group_arn())
            .collect();
        groups.dedup();
        for group in groups {
            // `arn:…:targetgroup/<name>/<id>`
            let name = group.rsplit('/').nth(1).unwrap_or(group);
            match elbv2
                .describe_target_health()
                .target_group_arn(group)
                .send()
                .await
            {
                Ok(output) => diagnosis.target_health.extend(
                    output
                        .target_health_descriptions()
                        .iter()
                        .filter_map(|description| unhealthy(name, description))
                        .map(|line| redactor.apply(&line)),
                ),
                Err(error) => diagnosis.unavailable.push(format!(
                    "DescribeTargetHealth {name} failed: {}",
                    Failure::new(&error, redactor).message
                )),
            }
        }
    }

    /// The most recent stopped tasks the deployment started (`ListTasks` by `startedBy`, then
    /// `DescribeTasks`).
    async fn stopped_tasks(
        &self,
        deployment: &str,
        redactor: &Redactor,
        diagnosis: &mut Diagnosis,
    ) -> Vec<StoppedTask> {
        let listed = self
            .client
            .list_tasks()
            .cluster(&self.target.cluster)
            .started_by(deployment)
            .desired_status(DesiredStatus::Stopped)
            .send()
            .await;
        let arns = match listed {
            Ok(output) => output.task_arns.unwrap_or_default(),
            Err(error) => {
                let failure = Failure::new(&error, redactor);
                diagnosis
                    .unavailable
                    .push(format!("ListTasks failed: {}", failure.message));
                return Vec::new();
            }
        };
        if arns.is_empty() {
            return Vec::new();
        }
        let described = self
            .client
            .describe_tasks()
            .cluster(&self.target.cluster)
            .set_tasks(Some(arns.into_iter().take(100).collect()))
            .send()
            .await;
        let mut tasks = match described {
            Ok(output) => output.tasks.unwrap_or_default(),
            Err(error) => {
                let failure = Failure::new(&error, redactor);
                diagnosis
                    .unavailable
                    .push(format!("DescribeTasks failed: {}", failure.message));
                return Vec::new();
            }
        };
        // Only the deployment's own tasks (a filter the API may have ignored), newest first.
        tasks.retain(|task| task.started_by() == Some(deployment));
        tasks.sort_by_key(|task| {
            std::cmp::Reverse(task.stopped_at().map(|at| (at.secs(), at.subsec_nanos())))
        });
        tasks
            .iter()
            .take(TASKS)
            .map(|task| stopped_task(task, redactor))
            .collect()
    }

    /// The last [`LOG_LINES`] lines `container` of task `task` wrote through `awslogs`.
    async fn log_tail(
        &self,
        container: &ContainerDefinition,
        task: &str,
        redactor: &Redactor,
        diagnosis: &mut Diagnosis,
    ) {
        let name = container.name().unwrap_or_default();
        let Some(awslogs) = AwsLogs::of(container) else {
            return;
        };
        let Some(stream) = awslogs.stream(name, task) else {
            diagnosis.unavailable.push(format!(
                "logs of `{name}`: its awslogs configuration has no awslogs-stream-prefix, so its stream cannot be named"
            ));
            return;
        };
        let Some(logs) = self.logs.as_ref() else {
            return;
        };
        let logs = match &awslogs.region {
            Some(region) if logs.config().region().map(|r| r.as_ref()) != Some(region) => {
                let config = logs
                    .config()
                    .to_builder()
                    .region(aws_sdk_cloudwatchlogs::config::Region::new(region.clone()))
                    .build();
                aws_sdk_cloudwatchlogs::Client::from_conf(config)
            }
            _ => logs.clone(),
        };
        let read = logs
            .get_log_events()
            .log_group_name(&awslogs.group)
            .log_stream_name(&stream)
            .limit(LOG_LINES)
            .start_from_head(false)
            .send()
            .await;
        match read {
            Ok(output) => diagnosis
                .logs
                .extend(output.events().iter().map(|event| LogLine {
                    timestamp_ms: event.timestamp().unwrap_or_default(),
                    source: format!("{name}/{task}"),
                    message: redactor.apply(event.message().unwrap_or_default().trim_end()),
                })),
            Err(error) => {
                let failure = Failure::new(&error, redactor);
                diagnosis.unavailable.push(format!(
                    "GetLogEvents {}:{stream} failed: {}",
                    awslogs.group, failure.message
                ));
            }
        }
    }
}
