//! Telling a finished rollout from one still running, one that failed and one that ECS rolled
//! back, from one `DescribeServices` answer.

use std::collections::HashSet;

use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState, Service, ServiceEvent};

use crate::taskdef::short_arn;
use deployer_core::one_line;

/// How many service events an error carries at most.
const MAX_EVENTS: usize = 10;

/// What a rollout is about: the deployment `UpdateService` created and the task definitions
/// before and after.
#[derive(Debug, Clone)]
pub(crate) struct Rollout {
    /// The id of the PRIMARY deployment the update created.
    pub(crate) deployment: String,
    /// The task definition the update rolls to.
    pub(crate) task_definition: String,
    /// The task definition that ran before (equal to `task_definition` for a restart).
    pub(crate) old_task_definition: String,
}

/// The verdict on one observation of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The deployment completed: all its tasks run.
    Completed(Counts),
    /// Still rolling; the line says where it is.
    Rolling(String),
    /// The rollout failed or was rolled back; the line says why.
    Failed(String),
}

/// Task counts of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) running: i32,
    pub(crate) pending: i32,
    pub(crate) desired: i32,
    pub(crate) failed: i32,
}

impl Counts {
    fn of(deployment: &Deployment) -> Self {
        Counts {
            running: deployment.running_count(),
            pending: deployment.pending_count(),
            desired: deployment.desired_count(),
            failed: deployment.failed_tasks(),
        }
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "running {}/{}, pending {}",
            self.running, self.desired, self.pending
        )?;
        if self.failed > 0 {
            write!(f, ", {} failed tasks", self.failed)?;
        }
        Ok(())
    }
}

/// Judges one `DescribeServices` observation of the service against `rollout`.
///
/// - Completed: our deployment is PRIMARY, runs the task definition the rollout rolls to, its
///   `rolloutState` is `COMPLETED` and running equals desired. Services whose deployments carry no `rolloutState` (ECS leaves it out behind a
///   Classic Load Balancer) complete when our deployment is the only one left and running equals
///   desired with nothing pending.
/// - Failed: our deployment runs another task definition than the rollout's (a record that
///   does not match what ECS did: never a success); its `rolloutState` is `FAILED`; or it is no
///   longer PRIMARY (the
///   circuit breaker started a rollback deployment, or someone else deployed); or it is gone
///   from the service (a finished rollback leaves the service "stable" on the old task
///   definition). Each says which task definition the service runs instead.
/// - Rolling otherwise.
pub(crate) fn judge(service: &Service, rollout: &Rollout) -> Verdict {
    let status = service.status().unwrap_or("UNKNOWN");
    if status != "ACTIVE" {
        return Verdict::Failed(format!("the service is {status}"));
    }
    let deployments = service.deployments();
    let primary = deployments.iter().find(|d| d.status() == Some("PRIMARY"));
    let Some(ours) = deployments
        .iter()
        .find(|d| d.id() == Some(rollout.deployment.as_str()))
    else {
        return Verdict::Failed(format!(
            "deployment {} is no longer listed: {}",
            rollout.deployment,
            instead(primary, rollout)
        ));
    };
    let counts = Counts::of(ours);
    if ours.task_definition() != Some(rollout.task_definition.as_str()) {
        return Verdict::Failed(format!(
            "deployment {} runs task definition {}, not {} that this rollout rolls to: {}",
            rollout.deployment,
            ours.task_definition().map_or("(none reported)", short_arn),
            short_arn(&rollout.task_definition),
            instead(primary, rollout)
        ));
    }
    if ours.rollout_state() == Some(&DeploymentRolloutState::Failed) {
        let reason = ours.rollout_state_reason().unwrap_or("no reason given");
        let mut line = format!(
            "deployment {} failed: {} ({counts})",
            rollout.deployment,
            one_line(reason)
        );
        if let Some(primary) = primary.filter(|p| p.id() != ours.id()) {
            line.push_str(&format!("; {}", instead(Some(primary), rollout)));
        }
        return Verdict::Failed(line);
    }
    if ours.status() != Some("PRIMARY") {
        return Verdict::Failed(format!(
            "deployment {} was replaced: {}",
            rollout.deployment,
            instead(primary, rollout)
        ));
    }
    let state = ours
        .rollout_state()
        .map_or("no rollout state", |state| state.as_str());
    match ours.rollout_state() {
        Some(DeploymentRolloutState::Completed) if counts.running == counts.desired => {
            Verdict::Completed(counts)
        }
        None if deployments.len() == 1
            && counts.running == counts.desired
            && counts.pending == 0 =>
        {
            Verdict::Completed(counts)
        }
        None => Verdict::Rolling(format!(
            "{state}, {counts}, {} older deployments draining",
            deployments.len().saturating_sub(1)
        )),
        _ => Verdict::Rolling(format!("{state}, {counts}")),
    }
}

/// A PRIMARY deployment that has not finished rolling out: an earlier run's rollout (stopped
/// while it waited, or killed) or someone else's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InFlight {
    /// The deployment's id.
    pub(crate) deployment: String,
    /// Where it is, in one line.
    pub(crate) state: String,
    /// The task definition of another deployment still listed (the one it replaces), if any.
    pub(crate) replaces: Option<String>,
}

/// The service's PRIMARY deployment when it is still rolling: its `rolloutState` is neither
/// `COMPLETED` nor `FAILED`, or (no rollout state, as behind a Classic Load Balancer) older
/// deployments are still listed or its tasks are not all running. `None` when the service is
/// settled.
pub(crate) fn in_flight(service: &Service) -> Option<InFlight> {
    let deployments = service.deployments();
    let primary = deployments.iter().find(|d| d.status() == Some("PRIMARY"))?;
    let counts = Counts::of(primary);
    let settled = match primary.rollout_state() {
        Some(DeploymentRolloutState::Completed | DeploymentRolloutState::Failed) => true,
        Some(_) => false,
        None => deployments.len() == 1 && counts.running == counts.desired && counts.pending == 0,
    };
    if settled {
        return None;
    }
    Some(InFlight {
        deployment: primary.id()?.to_owned(),
        state: format!("{}, {counts}", rollout_state(primary)),
        replaces: replaces(service),
    })
}

/// A PRIMARY deployment whose rollout ended `FAILED` and that ECS did not roll back (the
/// circuit breaker with `rollback = false`): the service's task definition stays the failed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailedPrimary {
    /// The deployment's id.
    pub(crate) deployment: String,
    /// ECS's `rolloutStateReason`, on one line.
    pub(crate) reason: String,
    /// The task definition of another deployment still listed (the one it replaced), if any.
    pub(crate) replaces: Option<String>,
}

/// The service's PRIMARY deployment when its `rolloutState` is `FAILED`. A circuit-breaker
/// rollback makes a new deployment PRIMARY, so a failed PRIMARY one was not rolled back.
pub(crate) fn failed_primary(service: &Service) -> Option<FailedPrimary> {
    let primary = service
        .deployments()
        .iter()
        .find(|d| d.status() == Some("PRIMARY"))?;
    if primary.rollout_state() != Some(&DeploymentRolloutState::Failed) {
        return None;
    }
    Some(FailedPrimary {
        deployment: primary.id()?.to_owned(),
        reason: one_line(primary.rollout_state_reason().unwrap_or("no reason given")),
        replaces: replaces(service),
    })
}

/// The task definition of the first deployment listed besides the PRIMARY one.
fn replaces(service: &Service) -> Option<String> {
    service
        .deployments()
        .iter()
        .filter(|d| d.status() != Some("PRIMARY"))
        .find_map(Deployment::task_definition)
        .map(str::to_owned)
}

/// What the service runs instead of our deployment.
fn instead(primary: Option<&Deployment>, rollout: &Rollout) -> String {
    let Some(primary) = primary else {
        return "the service has no PRIMARY deployment".into();
    };
    let id = primary.id().unwrap_or("?");
    match primary.task_definition() {
        Some(td) if td == rollout.old_task_definition && td != rollout.task_definition => format!(
            "ECS rolled the service back to the previous task definition {} (deployment {id}, {})",
            short_arn(td),
            rollout_state(primary)
        ),
        Some(td) => format!(
            "the service now runs deployment {id} of task definition {} ({}): a rollback or another deploy",
            short_arn(td),
            rollout_state(primary)
        ),
        None => format!("the service now runs deployment {id}"),
    }
}

fn rollout_state(deployment: &Deployment) -> &str {
    deployment
        .rollout_state()
        .map_or("no rollout state", |state| state.as_str())
}

/// Service events already reported, and those to attach to errors.
#[derive(Debug, Default)]
pub(crate) struct Events {
    seen: HashSet<String>,
    /// Events since the rollout began, oldest first.
    recent: Vec<String>,
    /// The last events of the service, whenever they happened, oldest first (for errors when
    /// nothing happened since the rollout began).
    last: Vec<String>,
}

impl Events {
    /// Takes in the events of one observation (ECS lists them newest first) and returns the ones
    /// not seen before that happened at or after `since` (the deployment's creation), oldest
    /// first.
    pub(crate) fn observe(
        &mut self,
        events: &[ServiceEvent],
        since: Option<&DateTime>,
    ) -> Vec<String> {
        self.last = events.iter().take(MAX_EVENTS).rev().map(describe).collect();
        let mut new = Vec::new();
        for event in events.iter().rev() {
            let id = event
                .id()
                .map(str::to_owned)
                .unwrap_or_else(|| event.message().unwrap_or_default().to_owned());
            if !self.seen.insert(id) {
                continue;
            }
            if happened_since(event, since) {
                new.push(describe(event));
            }
        }
        self.recent.extend(new.iter().cloned());
        if self.recent.len() > MAX_EVENTS {
            self.recent.drain(..self.recent.len() - MAX_EVENTS);
        }
        new
    }

    /// The events to attach to an error, newest last: those since the rollout began, or the last
    /// ones of the service if none happened since.
    pub(crate) fn for_error(&self) -> Vec<String> {
        if self.recent.is_empty() {
            self.last.clone()
        } else {
            self.recent.clone()
        }
    }
}

/// Whether `event` happened at or after `since` (yes when either time is unknown).
pub(crate) fn happened_since(event: &ServiceEvent, since: Option<&DateTime>) -> bool {
    match (since, event.created_at()) {
        (Some(since), Some(at)) => at.as_secs_f64() >= since.as_secs_f64(),
        _ => true,
    }
}

/// The event's message on one line.
pub(crate) fn message(event: &ServiceEvent) -> String {
    one_line(event.message().unwrap_or("(no message)"))
}

/// The event as shown: `<time> <message>`.
pub(crate) fn describe(event: &ServiceEvent) -> String {
    let message = message(event);
    // Whole seconds: `2026-01-01T10:00:00Z`, as the console shows them.
    let at = event.created_at().map(|at| DateTime::from_secs(at.secs()));
    match at.and_then(|at| {
        at.fmt(aws_sdk_ecs::primitives::DateTimeFormat::DateTime)
            .ok()
    }) {
        Some(at) => format!("{at} {message}"),
        None => message,
    }
}

/// The creation time of our deployment, when the observation lists it.
pub(crate) fn created_at<'a>(service: &'a Service, rollout: &Rollout) -> Option<&'a DateTime> {
    service
        .deployments()
        .iter()
        .find(|d| d.id() == Some(rollout.deployment.as_str()))
        .and_then(Deployment::created_at)
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecs::types::DeploymentRolloutState as State;

    use super::*;

    const OLD: &str = "arn:aws:ecs:us-east-1:1:task-definition/app:1";
    const NEW: &str = "arn:aws:ecs:us-east-1:1:task-definition/app:2";
    const OTHER: &str = "arn:aws:ecs:us-east-1:1:task-definition/app:3";

    fn rollout() -> Rollout {
        Rollout {
            deployment: "d2".into(),
            task_definition: NEW.into(),
            old_task_definition: OLD.into(),
        }
    }

    fn deployment(
        id: &str,
        status: &str,
        td: &str,
        state: Option<State>,
        running: i32,
        pending: i32,
    ) -> Deployment {
        Deployment::builder()
            .id(id)
            .status(status)
            .task_definition(td)
            .set_rollout_state(state)
            .desired_count(2)
            .running_count(running)
            .pending_count(pending)
            .build()
    }

    fn service(deployments: Vec<Deployment>) -> Service {
        Service::builder()
            .status("ACTIVE")
            .set_deployments(Some(deployments))
            .build()
    }

    #[test]
    fn completed_needs_running_equal_desired() {
        let done = service(vec![deployment(
            "d2",
            "PRIMARY",
            NEW,
            Some(State::Completed),
            2,
            0,
        )]);
        assert!(matches!(judge(&done, &rollout()), Verdict::Completed(_)));
        let short = service(vec![deployment(
            "d2",
            "PRIMARY",
            NEW,
            Some(State::Completed),
            1,
            0,
        )]);
        assert!(matches!(judge(&short, &rollout()), Verdict::Rolling(_)));
    }

    #[test]
    fn without_rollout_state_the_old_deployments_must_be_gone() {
        let draining = service(vec![
            deployment("d2", "PRIMARY", NEW, None, 2, 0),
            deployment("d1", "ACTIVE", OLD, None, 1, 0),
        ]);
        assert_eq!(
            judge(&draining, &rollout()),
            Verdict::Rolling(
                "no rollout state, running 2/2, pending 0, 1 older deployments draining".into()
            )
        );
        let done = service(vec![deployment("d2", "PRIMARY", NEW, None, 2, 0)]);
        assert!(matches!(judge(&done, &rollout()), Verdict::Completed(_)));
    }

    #[test]
    fn another_deploy_on_top_is_a_failure_naming_it() {
        let superseded = service(vec![
            deployment("d3", "PRIMARY", OTHER, Some(State::InProgress), 0, 2),
            deployment("d2", "ACTIVE", NEW, Some(State::InProgress), 1, 0),
        ]);
        let Verdict::Failed(reason) = judge(&superseded, &rollout()) else {
            panic!("expected a failure");
        };
        assert!(
            reason.contains("d3") && reason.contains("app:3") && reason.contains("another deploy"),
            "{reason}"
        );
    }

    #[test]
    fn our_deployment_completed_on_another_task_definition_is_a_failure() {
        let elsewhere = service(vec![deployment(
            "d2",
            "PRIMARY",
            OTHER,
            Some(State::Completed),
            2,
            0,
        )]);
        let Verdict::Failed(reason) = judge(&elsewhere, &rollout()) else {
            panic!("expected a failure");
        };
        assert!(
            reason.contains("d2") && reason.contains("app:3") && reason.contains("app:2"),
            "{reason}"
        );
        // Without a rollout state (Classic Load Balancer) too.
        let clb = service(vec![deployment("d2", "PRIMARY", OTHER, None, 2, 0)]);
        assert!(matches!(judge(&clb, &rollout()), Verdict::Failed(_)));
    }

    #[test]
    fn a_primary_deployment_still_rolling_is_in_flight() {
        let rolling = service(vec![
            deployment("d2", "PRIMARY", NEW, Some(State::InProgress), 1, 1),
            deployment("d1", "ACTIVE", OLD, Some(State::Completed), 2, 0),
        ]);
        assert_eq!(
            in_flight(&rolling),
            Some(InFlight {
                deployment: "d2".into(),
                state: "IN_PROGRESS, running 1/2, pending 1".into(),
                replaces: Some(OLD.into()),
            })
        );
        let done = service(vec![deployment(
            "d2",
            "PRIMARY",
            NEW,
            Some(State::Completed),
            2,
            0,
        )]);
        assert_eq!(in_flight(&done), None);
        let failed = service(vec![deployment(
            "d2",
            "PRIMARY",
            NEW,
            Some(State::Failed),
            0,
            2,
        )]);
        assert_eq!(in_flight(&failed), None);
        let draining = service(vec![
            deployment("d2", "PRIMARY", NEW, None, 2, 0),
            deployment("d1", "ACTIVE", OLD, None, 1, 0),
        ]);
        assert_eq!(
            in_flight(&draining).map(|f| f.deployment),
            Some("d2".into())
        );
        let clb_done = service(vec![deployment("d2", "PRIMARY", NEW, None, 2, 0)]);
        assert_eq!(in_flight(&clb_done), None);
    }

    #[test]
    fn a_failed_primary_deployment_is_reported_with_its_reason() {
        let mut failed = deployment("d2", "PRIMARY", NEW, Some(State::Failed), 0, 2);
        failed.rollout_state_reason = Some("circuit breaker:\n tasks failed".into());
        let listed = service(vec![
            failed,
            deployment("d1", "ACTIVE", OLD, Some(State::Completed), 2, 0),
        ]);
        assert_eq!(
            failed_primary(&listed),
            Some(FailedPrimary {
                deployment: "d2".into(),
                reason: "circuit breaker: tasks failed".into(),
                replaces: Some(OLD.into()),
            })
        );
        // Rolled back: the failed deployment is no longer PRIMARY.
        let rolled_back = service(vec![
            deployment("d3", "PRIMARY", OLD, Some(State::InProgress), 1, 1),
            deployment("d2", "ACTIVE", NEW, Some(State::Failed), 0, 0),
        ]);
        assert_eq!(failed_primary(&rolled_back), None);
    }

    #[test]
    fn a_deleted_service_is_a_failure() {
        let mut gone = service(vec![]);
        gone.status = Some("DRAINING".into());
        assert_eq!(
            judge(&gone, &rollout()),
            Verdict::Failed("the service is DRAINING".into())
        );
    }

    #[test]
    fn events_are_reported_once_and_only_since_the_rollout() {
        let event = |id: &str, secs: i64| {
            ServiceEvent::builder()
                .id(id)
                .created_at(DateTime::from_secs(secs))
                .message(format!("m{id}"))
                .build()
        };
        let mut events = Events::default();
        let since = DateTime::from_secs(100);
        let first = events.observe(&[event("b", 110), event("a", 50)], Some(&since));
        assert_eq!(first, ["1970-01-01T00:01:50Z mb"]);
        let second = events.observe(
            &[event("c", 120), event("b", 110), event("a", 50)],
            Some(&since),
        );
        assert_eq!(second.len(), 1);
        assert!(second[0].ends_with("mc"));
        let for_error = events.for_error();
        assert!(
            for_error[0].ends_with("mb") && for_error[1].ends_with("mc"),
            "{for_error:?}"
        );
    }
}
