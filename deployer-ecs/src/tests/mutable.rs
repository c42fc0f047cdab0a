//! `force_new_deployment`: a task definition on a mutable tag, resolved and moved through an
//! injected [`MutableTags`] (a fake registry here).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::DeploymentRolloutState as State;
use aws_smithy_mocks::{Rule, mock};
use deployer_core::progress::Fence;
use deployer_core::{Action, DeployError, Deployer, deploy};

use super::flows::{client, describe_old_task_definition, describe_services, update_service};
use super::*;
use crate::{EcsDeployer, MutableTags};

/// A registry's tags: `(repository_uri, tag)` → digest, and every move made, in order.
#[derive(Default)]
struct FakeTags {
    tags: Mutex<BTreeMap<(String, String), String>>,
    moves: Mutex<Vec<String>>,
}

impl FakeTags {
    /// A registry where `REPO:latest` names `digest`.
    fn latest_on(digest: &str) -> Arc<Self> {
        let tags = FakeTags::default();
        tags.tags
            .lock()
            .unwrap()
            .insert((REPO.into(), "latest".into()), digest.into());
        Arc::new(tags)
    }

    /// What `REPO:latest` names now.
    fn latest(&self) -> Option<String> {
        self.tags
            .lock()
            .unwrap()
            .get(&(REPO.to_owned(), "latest".to_owned()))
            .cloned()
    }

    /// The digests `REPO:latest` was moved to, in order.
    fn moves(&self) -> Vec<String> {
        self.moves.lock().unwrap().clone()
    }
}

#[async_trait]
impl MutableTags for FakeTags {
    async fn digest(&self, repository_uri: &str, tag: &str) -> Result<Option<String>, DeployError> {
        Ok(self
            .tags
            .lock()
            .unwrap()
            .get(&(repository_uri.to_owned(), tag.to_owned()))
            .cloned())
    }

    async fn point(
        &self,
        repository_uri: &str,
        tag: &str,
        digest: &str,
    ) -> Result<(), DeployError> {
        assert_eq!((repository_uri, tag), (REPO, "latest"));
        self.tags
            .lock()
            .unwrap()
            .insert((repository_uri.into(), tag.into()), digest.into());
        self.moves.lock().unwrap().push(digest.into());
        Ok(())
    }
}

fn latest() -> String {
    format!("{REPO}:latest")
}

/// DescribeTaskDefinition of the live revision, whose `web` container runs `REPO:latest`.
fn on_latest() -> Rule {
    describe_old_task_definition(vec![container("web", &latest())])
}

fn deployer(rules: &[&Rule], tags: &Arc<FakeTags>) -> EcsDeployer {
    EcsDeployer::new(client(rules), target(None, true)).with_mutable_tags(tags.clone())
}

/// UpdateService --force-new-deployment on the live revision, sent only once `REPO:latest`
/// names `digest` (the tag moves first, so that the new tasks pull the new image).
fn forced_update_after_the_tag_names(digest: &'static str, tags: &Arc<FakeTags>) -> Rule {
    let tags = tags.clone();
    mock!(Client::update_service)
        .match_requests(move |r| {
            r.task_definition() == Some(OLD_TD)
                && r.force_new_deployment() == Some(true)
                && tags.latest().as_deref() == Some(digest)
        })
        .then_output(move || {
            aws_sdk_ecs::operation::update_service::UpdateServiceOutput::builder()
                .service(service(
                    OLD_TD,
                    vec![
                        deployment(NEW_DEPLOYMENT, "PRIMARY", OLD_TD, State::InProgress, 0, 0),
                        deployment(OLD_DEPLOYMENT, "ACTIVE", OLD_TD, State::Completed, 2, 0),
                    ],
                    vec![],
                ))
                .build()
        })
}

/// The forced deployment on the live revision, COMPLETED.
fn forced_completed() -> Rule {
    mock!(Client::describe_services).then_output(|| {
        describe(service(
            OLD_TD,
            vec![deployment(
                NEW_DEPLOYMENT,
                "PRIMARY",
                OLD_TD,
                State::Completed,
                2,
                0,
            )],
            vec![],
        ))
    })
}

/// The forced deployment FAILED; the circuit breaker rolls back (the same task definition).
fn forced_failed() -> Rule {
    mock!(Client::describe_services).then_output(|| {
        let mut failed = deployment(NEW_DEPLOYMENT, "ACTIVE", OLD_TD, State::Failed, 0, 0);
        failed.rollout_state_reason =
            Some("ECS deployment circuit breaker: tasks failed to start.".into());
        describe(service(
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
                failed,
            ],
            vec![],
        ))
    })
}

struct LostLock;

impl Fence for LostLock {
    fn check(&self) -> Result<(), String> {
        Err("this run lost the deploy lock of app-api".into())
    }
}

fn fenced() -> Progress {
    Progress::discard(SERVICE).with_fence(Arc::new(LostLock))
}

#[tokio::test(start_paused = true)]
async fn read_live_reports_the_digest_the_tag_names() {
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let tags = FakeTags::latest_on(OLD_DIGEST);
    let deployer = deployer(&[&read, &live_td], &tags);
    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.artifact, Some(old_image()));
    assert_eq!(live.ids[crate::ids::MUTABLE_TAG], latest());
    assert!(
        live.summary
            .contains(&format!("`web` runs {REPO}:latest → {OLD_DIGEST}")),
        "{}",
        live.summary
    );
    assert!(!deployer.is_current(&live, &wanted()));
    let old = Artifact::Image(ImageArtifact {
        repository_uri: REPO.into(),
        tag: "0ld".into(),
        digest: Some(OLD_DIGEST.into()),
    });
    assert!(deployer.is_current(&live, &old));
}

#[tokio::test(start_paused = true)]
async fn a_tag_absent_from_the_registry_reads_as_the_tag_reference() {
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let tags = Arc::new(FakeTags::default());
    let deployer = deployer(&[&read, &live_td], &tags);
    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.artifact, Some(latest()));
    assert!(
        live.summary.contains("latest (not in the registry)"),
        "{}",
        live.summary
    );
    assert!(!deployer.is_current(&live, &wanted()));
}

/// The tag already names the wanted digest and no rollout is pending: unchanged, whatever the
/// deploy-state records say; nothing is moved or restarted.
#[tokio::test(start_paused = true)]
async fn a_tag_on_the_wanted_digest_is_unchanged() {
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let tags = FakeTags::latest_on(NEW_DIGEST);
    let deployer = deployer(&[&read, &live_td], &tags);
    let outcome = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Unchanged);
    assert_eq!(outcome.new_artifact, Some(new_image()));
    assert!(tags.moves().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_digest_reference_is_refused() {
    let read = describe_services(stable_before());
    let live_td = describe_old_task_definition(vec![container("web", &old_image())]);
    let tags = FakeTags::latest_on(OLD_DIGEST);
    let error = deployer(&[&read, &live_td], &tags)
        .read_live()
        .await
        .unwrap_err();
    assert!(matches!(error, DeployError::Mismatch(_)), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("needs a task definition on a mutable tag")
            && message.contains(&format!("like `{REPO}:latest`")),
        "{message}"
    );
}

#[tokio::test(start_paused = true)]
async fn without_registry_access_it_is_a_mismatch_naming_it() {
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let error = EcsDeployer::new(client(&[&read, &live_td]), target(None, true))
        .read_live()
        .await
        .unwrap_err();
    assert!(matches!(error, DeployError::Mismatch(_)), "{error:?}");
    assert!(error.to_string().contains("with_mutable_tags"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn another_repository_is_refused() {
    let read = describe_services(stable_before());
    let live_td = describe_old_task_definition(vec![container("web", "nginx:latest")]);
    let tags = Arc::new(FakeTags::default());
    let deployer = deployer(&[&read, &live_td], &tags);
    let error = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap_err();
    assert!(matches!(error, DeployError::Mismatch(_)), "{error:?}");
    assert!(error.to_string().contains("nginx:latest"), "{error}");
    assert!(tags.moves().is_empty());
}

/// The tag moves to the wanted digest, then the service restarts on the live revision (no new
/// revision); the Applied says which digest the tag named before.
#[tokio::test(start_paused = true)]
async fn apply_moves_the_tag_then_forces_a_deployment() {
    let tags = FakeTags::latest_on(OLD_DIGEST);
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let update = forced_update_after_the_tag_names(NEW_DIGEST, &tags);
    let polls = forced_completed();
    let deployer = deployer(&[&read, &live_td, &update, &polls], &tags);
    let outcome = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(tags.moves(), [NEW_DIGEST]);
    assert_eq!(update.num_calls(), 1);
    assert_eq!(outcome.old_artifact, Some(old_image()));
    assert_eq!(outcome.new_artifact, Some(new_image()));
    assert_eq!(outcome.ids["task_definition"], OLD_TD);
    assert_eq!(outcome.ids["old_task_definition"], OLD_TD);
    assert_eq!(outcome.ids["deployment"], NEW_DEPLOYMENT);
    assert_eq!(outcome.ids[crate::ids::MUTABLE_TAG], latest());
    assert_eq!(
        outcome.ids[crate::ids::MUTABLE_TAG_PREVIOUS_DIGEST],
        OLD_DIGEST
    );
}

/// The rollout fails: the tag goes back to the digest it named before, and the error says so.
#[tokio::test(start_paused = true)]
async fn a_failed_rollout_moves_the_tag_back() {
    let tags = FakeTags::latest_on(OLD_DIGEST);
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let update = forced_update_after_the_tag_names(NEW_DIGEST, &tags);
    let polls = forced_failed();
    let deployer = deployer(&[&read, &live_td, &update, &polls], &tags);
    let error = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap_err();
    let DeployError::RolloutFailed { reason, .. } = &error else {
        panic!("expected RolloutFailed, got {error:?}");
    };
    assert!(reason.contains("tasks failed to start"), "{reason}");
    assert!(
        reason.contains(&format!("{REPO}:latest was moved back to {OLD_DIGEST}")),
        "{reason}"
    );
    assert_eq!(tags.moves(), [NEW_DIGEST, OLD_DIGEST]);
    assert_eq!(tags.latest().as_deref(), Some(OLD_DIGEST));
}

/// A timeout is not a failure: the deployment may still finish on the new image, so the tag
/// stays where it is.
#[tokio::test(start_paused = true)]
async fn a_timeout_leaves_the_tag_on_the_new_digest() {
    let tags = FakeTags::latest_on(OLD_DIGEST);
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let update = forced_update_after_the_tag_names(NEW_DIGEST, &tags);
    let polls = mock!(Client::describe_services)
        .sequence()
        .output(|| {
            describe(service(
                OLD_TD,
                vec![
                    deployment(NEW_DEPLOYMENT, "PRIMARY", OLD_TD, State::InProgress, 1, 1),
                    deployment(OLD_DEPLOYMENT, "ACTIVE", OLD_TD, State::Completed, 2, 0),
                ],
                vec![],
            ))
        })
        .repeatedly()
        .build();
    let deployer = deployer(&[&read, &live_td, &update, &polls], &tags);
    let short = policy().with_timeout(std::time::Duration::from_secs(60));
    let error = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &short)
        .await
        .unwrap_err();
    assert!(matches!(error, DeployError::Timeout { .. }), "{error:?}");
    assert_eq!(tags.moves(), [NEW_DIGEST]);
}

/// The run lost its lock while it waited: the tag is not moved back, and the error says so.
#[tokio::test(start_paused = true)]
async fn a_fenced_wait_does_not_move_the_tag_back_and_says_so() {
    let tags = FakeTags::latest_on(OLD_DIGEST);
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let update = forced_update_after_the_tag_names(NEW_DIGEST, &tags);
    let polls = forced_failed();
    let deployer = deployer(&[&read, &live_td, &update, &polls], &tags);
    let live = deployer.read_live().await.unwrap();
    let applied = deployer
        .apply(&live, &wanted(), &Progress::discard(SERVICE))
        .await
        .unwrap();
    let error = deployer
        .wait(&applied, &policy(), &fenced())
        .await
        .unwrap_err();
    let DeployError::RolloutFailed { reason, .. } = &error else {
        panic!("expected RolloutFailed, got {error:?}");
    };
    assert!(
        reason.contains(&format!("was not moved back to {OLD_DIGEST}"))
            && reason.contains("lost the deploy lock"),
        "{reason}"
    );
    assert_eq!(tags.moves(), [NEW_DIGEST]);
}

/// A fenced run moves no tag and updates no service.
#[tokio::test(start_paused = true)]
async fn a_fenced_apply_moves_no_tag() {
    let tags = FakeTags::latest_on(OLD_DIGEST);
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let update = update_service(OLD_TD, true);
    let deployer = deployer(&[&read, &live_td, &update], &tags);
    let live = deployer.read_live().await.unwrap();
    let error = deployer
        .apply(&live, &wanted(), &fenced())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Fenced { call, .. } if call == "PutImage"),
        "{error:?}"
    );
    assert!(tags.moves().is_empty());
    assert_eq!(update.num_calls(), 0);
}

/// UpdateService refused after the tag moved: the tag goes back, so that the service's next
/// tasks do not pull an image it was never rolled to, and the error says so.
#[tokio::test(start_paused = true)]
async fn a_refused_update_moves_the_tag_back() {
    let tags = FakeTags::latest_on(OLD_DIGEST);
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let update = mock!(Client::update_service).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(400).unwrap(),
            aws_smithy_types::body::SdkBody::from(
                r#"{"__type":"AccessDeniedException","message":"not allowed"}"#,
            ),
        )
    });
    let deployer = deployer(&[&read, &live_td, &update], &tags);
    let error = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Api { operation, message, .. } if operation == "UpdateService" && message.contains(&format!("moved back to {OLD_DIGEST}"))),
        "{error:?}"
    );
    assert_eq!(tags.moves(), [NEW_DIGEST, OLD_DIGEST]);
}

/// A dependency changed: the service restarts on what the tag names, which does not move.
#[tokio::test(start_paused = true)]
async fn restart_does_not_move_the_tag() {
    let tags = FakeTags::latest_on(OLD_DIGEST);
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let update = update_service(OLD_TD, true);
    let polls = forced_completed();
    let deployer = deployer(&[&read, &live_td, &update, &polls], &tags);
    let progress = Progress::discard(SERVICE);
    let live = deployer.read_live().await.unwrap();
    let applied = deployer.restart(&live, &progress).await.unwrap();
    assert_eq!(applied.new_artifact, old_image());
    assert!(
        !applied
            .ids
            .contains_key(crate::ids::MUTABLE_TAG_PREVIOUS_DIGEST)
    );
    deployer.wait(&applied, &policy(), &progress).await.unwrap();
    assert!(tags.moves().is_empty());
}

/// A rollback to an earlier recorded deploy is an ordinary apply of its artifact: the tag moves
/// back to the recorded digest and the service restarts.
#[tokio::test(start_paused = true)]
async fn a_rollback_to_a_recorded_digest_moves_the_tag_back_and_restarts() {
    let tags = FakeTags::latest_on(NEW_DIGEST);
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let update = forced_update_after_the_tag_names(OLD_DIGEST, &tags);
    let polls = forced_completed();
    let deployer = deployer(&[&read, &live_td, &update, &polls], &tags);
    let recorded = Artifact::Image(ImageArtifact {
        repository_uri: REPO.into(),
        tag: "0ld".into(),
        digest: Some(OLD_DIGEST.into()),
    });
    let outcome = deploy(&deployer, &recorded, &Progress::discard(SERVICE), &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(outcome.old_artifact, Some(new_image()));
    assert_eq!(outcome.new_artifact, Some(old_image()));
    assert_eq!(
        outcome.ids[crate::ids::MUTABLE_TAG_PREVIOUS_DIGEST],
        NEW_DIGEST
    );
    assert_eq!(tags.moves(), [OLD_DIGEST]);
}

/// A run moved the tag, started the deployment and was stopped while it waited: the re-run
/// moves nothing, starts nothing, and waits for that deployment.
#[tokio::test(start_paused = true)]
async fn a_rollout_in_flight_behind_the_moved_tag_is_adopted() {
    let tags = FakeTags::latest_on(NEW_DIGEST);
    let read = describe_services(service(
        OLD_TD,
        vec![
            deployment(NEW_DEPLOYMENT, "PRIMARY", OLD_TD, State::InProgress, 1, 1),
            deployment(OLD_DEPLOYMENT, "ACTIVE", OLD_TD, State::Completed, 2, 0),
        ],
        vec![],
    ));
    let live_td = on_latest();
    let polls = forced_completed();
    // No UpdateService: Sequential mode panics on a call out of order.
    let deployer = deployer(&[&read, &live_td, &polls], &tags);
    let progress = Progress::discard(SERVICE);
    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.ids[crate::ids::IN_FLIGHT], NEW_DEPLOYMENT);
    assert!(!deployer.is_current(&live, &wanted()));
    let applied = deployer.apply(&live, &wanted(), &progress).await.unwrap();
    assert_eq!(applied.ids["deployment"], NEW_DEPLOYMENT);
    assert_eq!(applied.ids[crate::ids::MUTABLE_TAG], latest());
    let settled = deployer.wait(&applied, &policy(), &progress).await.unwrap();
    assert_eq!(settled.new_artifact, new_image());
    assert_eq!(polls.num_calls(), 1);
    assert!(tags.moves().is_empty());
}

/// The forced deployment failed without a rollback, the tag still on the wanted digest (the run
/// was stopped before it could move it back): not current; the re-run starts the rollout again
/// without moving the tag.
#[tokio::test(start_paused = true)]
async fn a_failed_primary_deployment_behind_the_tag_is_rolled_out_again() {
    let tags = FakeTags::latest_on(NEW_DIGEST);
    let read = describe_services({
        let mut failed = deployment("ecs-svc/4444", "PRIMARY", OLD_TD, State::Failed, 0, 0);
        failed.rollout_state_reason = Some("tasks failed to start".into());
        service(OLD_TD, vec![failed], vec![])
    });
    let live_td = on_latest();
    let update = update_service(OLD_TD, true);
    let polls = forced_completed();
    let deployer = deployer(&[&read, &live_td, &update, &polls], &tags);
    let outcome = deploy(&deployer, &wanted(), &Progress::discard(SERVICE), &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(update.num_calls(), 1);
    assert!(tags.moves().is_empty());
    assert!(
        !outcome
            .ids
            .contains_key(crate::ids::MUTABLE_TAG_PREVIOUS_DIGEST)
    );
}

/// A fence that lets the first mutating call through and then says no: the run lost its lock
/// between moving the tag and UpdateService.
#[derive(Default)]
struct LostAfterFirstCall(std::sync::atomic::AtomicUsize);

impl Fence for LostAfterFirstCall {
    fn check(&self) -> Result<(), String> {
        match self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Ok(()),
            _ => Err("this run lost the deploy lock of app-api".into()),
        }
    }
}

/// The lock is lost right after the tag moved: no UpdateService, the tag cannot be moved back
/// either, and the error says the tag is ahead of the service and what to do.
#[tokio::test(start_paused = true)]
async fn a_lock_lost_after_the_tag_moved_says_the_tag_is_ahead() {
    let tags = FakeTags::latest_on(OLD_DIGEST);
    let read = describe_services(stable_before());
    let live_td = on_latest();
    let update = update_service(OLD_TD, true);
    let deployer = deployer(&[&read, &live_td, &update], &tags);
    let live = deployer.read_live().await.unwrap();
    let progress = Progress::discard(SERVICE).with_fence(Arc::new(LostAfterFirstCall::default()));
    let error = deployer
        .apply(&live, &wanted(), &progress)
        .await
        .unwrap_err();
    let DeployError::Fenced { call, reason } = &error else {
        panic!("expected Fenced, got {error:?}");
    };
    assert_eq!(call, "UpdateService");
    assert!(
        reason.contains(&format!("was not moved back to {OLD_DIGEST}"))
            && reason.contains("move it back before the next deploy"),
        "{reason}"
    );
    assert_eq!(update.num_calls(), 0);
    assert_eq!(tags.moves(), [NEW_DIGEST]);
}
