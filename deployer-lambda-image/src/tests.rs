//! The image deployer against mocked Lambda responses (sequential rules: any request beyond
//! the listed ones fails the test).

use std::time::Duration;

use aws_sdk_lambda::Client;
use aws_sdk_lambda::operation::get_function::GetFunctionOutput;
use aws_sdk_lambda::types::{Architecture, FunctionCodeLocation};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use deployer_core::manifest::{LambdaTarget, Platform};
use deployer_core::poll::PollPolicy;
use deployer_core::{
    Action, Artifact, DeployError, Deployer, ImageArtifact, Progress, ZipArtifact, deploy,
};
use deployer_lambda::ids;
use deployer_lambda::testing::{Fixture, SECRET};

use super::LambdaImageDeployer;

const REPO: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/api";

fn wanted() -> Artifact {
    Artifact::Image(ImageArtifact {
        repository_uri: REPO.into(),
        tag: "newtag".into(),
        digest: Some("sha256:2222".into()),
    })
}

fn deployer(rules: &[&Rule], platform: &str) -> LambdaImageDeployer {
    let client: Client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, rules);
    let target = LambdaTarget {
        function: "api".into(),
        publish: false,
        alias: None,
    };
    LambdaImageDeployer::new(client, target, Platform::parse(platform).unwrap())
        .with_policy(policy())
}

fn policy() -> PollPolicy {
    PollPolicy {
        interval: Duration::from_secs(1),
        max_interval: Duration::from_secs(5),
        timeout: Duration::from_secs(120),
        call_timeout: Duration::from_secs(10),
    }
}

fn running(uri: &str) -> Fixture {
    Fixture::image("api", uri, "1111")
}

fn get_function(fixture: Fixture) -> Rule {
    mock!(Client::get_function).then_output(move || fixture.get_function())
}

fn configuration(fixture: Fixture) -> Rule {
    mock!(Client::get_function_configuration).then_output(move || fixture.get_configuration())
}

#[tokio::test(start_paused = true)]
async fn updates_to_the_digest_pinned_image() {
    let old = running(&format!("{REPO}@sha256:1111"));
    let read = get_function(old.clone());
    let ready = configuration(old.clone());
    let update = mock!(Client::update_function_code)
        .match_requests(|r| {
            r.image_uri() == Some(&format!("{REPO}@sha256:2222")) && r.zip_file().is_none()
        })
        .then_output({
            let f = old.clone().code("2222");
            move || f.update_output()
        });
    let settled = configuration(old.clone().code("2222"));
    let deployer = deployer(&[&read, &ready, &update, &settled], "linux/amd64");
    let outcome = deploy(&deployer, &wanted(), &Progress::discard("api"), &policy())
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(outcome.old_artifact, Some(format!("{REPO}@sha256:1111")));
    assert_eq!(outcome.new_artifact, Some(format!("{REPO}@sha256:2222")));
    assert_eq!(outcome.ids[ids::OLD_CODE_SHA256], "1111");
    assert_eq!(outcome.ids[ids::CODE_SHA256], "2222");
    assert_eq!(outcome.ids[ids::FUNCTION], old.arn());
    assert_eq!(outcome.target, "Lambda function api");
}

#[tokio::test]
async fn running_image_is_left_alone() {
    let read = get_function(running(&format!("{REPO}@sha256:2222")));
    let deployer = deployer(&[&read], "linux/amd64");
    let outcome = deploy(&deployer, &wanted(), &Progress::discard("api"), &policy())
        .await
        .unwrap();
    assert_eq!(outcome.action, Action::Unchanged);
    assert_eq!(read.num_calls(), 1);
}

#[tokio::test]
async fn tag_uri_is_compared_by_its_resolved_digest() {
    let by_tag = |digest: &'static str| {
        mock!(Client::get_function).then_output(move || {
            let f = running(&format!("{REPO}:newtag"));
            GetFunctionOutput::builder()
                .configuration(f.configuration())
                .code(
                    FunctionCodeLocation::builder()
                        .image_uri(format!("{REPO}:newtag"))
                        .resolved_image_uri(format!("{REPO}@{digest}"))
                        .build(),
                )
                .build()
        })
    };
    let same = by_tag("sha256:2222");
    let moved = by_tag("sha256:9999");
    let deployer = deployer(&[&same, &moved], "linux/amd64");
    let live = deployer.read_live().await.unwrap();
    assert_eq!(live.artifact, Some(format!("{REPO}:newtag@sha256:2222")));
    assert!(deployer.is_current(&live, &wanted()));
    let live = deployer.read_live().await.unwrap();
    assert!(
        !deployer.is_current(&live, &wanted()),
        "the tag was moved to another image"
    );
}

#[tokio::test]
async fn architecture_mismatch_is_refused_before_anything_is_sent() {
    let read =
        get_function(running(&format!("{REPO}@sha256:1111")).architecture(Architecture::X8664));
    let deployer = deployer(&[&read], "linux/arm64");
    let error = deploy(&deployer, &wanted(), &Progress::discard("api"), &policy())
        .await
        .unwrap_err();
    let DeployError::Mismatch(message) = &error else {
        panic!("expected a mismatch, got {error:?}");
    };
    assert!(message.contains("runs on x86_64"), "{message}");
    assert!(message.contains("built for linux/arm64"), "{message}");
    assert!(!message.contains(SECRET));
}

#[tokio::test]
async fn arm64_function_takes_arm64_images() {
    let read =
        get_function(running(&format!("{REPO}@sha256:2222")).architecture(Architecture::Arm64));
    let deployer = deployer(&[&read], "linux/arm64");
    let live = deployer.read_live().await.unwrap();
    assert!(live.summary.contains("(arm64)"), "{}", live.summary);
}

#[tokio::test]
async fn zip_function_is_refused_before_anything_is_sent() {
    let read = get_function(Fixture::zip("api", "c2hh"));
    let deployer = deployer(&[&read], "linux/amd64");
    let error = deploy(&deployer, &wanted(), &Progress::discard("api"), &policy())
        .await
        .unwrap_err();
    let DeployError::Mismatch(message) = &error else {
        panic!("expected a mismatch, got {error:?}");
    };
    assert!(
        message.contains("is a zip function (PackageType Zip)"),
        "{message}"
    );
    assert!(message.contains("kind = \"lambda-zip\""), "{message}");
}

#[tokio::test]
async fn a_zip_artifact_is_refused() {
    let read = get_function(running(&format!("{REPO}@sha256:1111")));
    let deployer = deployer(&[&read], "linux/amd64");
    let zip = Artifact::Zip(ZipArtifact {
        tag: "t".into(),
        sha256_b64: "c2hh".into(),
        size: 1,
        files: 1,
        bytes: std::sync::Arc::from(&b"z"[..]),
    });
    let error = deploy(&deployer, &zip, &Progress::discard("api"), &policy())
        .await
        .unwrap_err();
    assert!(matches!(error, DeployError::Mismatch(_)), "{error:?}");
}

/// A fence that says no: the run lost its deploy lock.
struct LockLost;

impl deployer_core::Fence for LockLost {
    fn check(&self) -> Result<(), String> {
        Err("the deploy lock of api was taken over".into())
    }
}

fn aliased(rules: &[&Rule]) -> LambdaImageDeployer {
    let client: Client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, rules);
    let target = LambdaTarget {
        function: "api".into(),
        publish: true,
        alias: Some("live".into()),
    };
    LambdaImageDeployer::new(client, target, Platform::parse("linux/amd64").unwrap())
        .with_policy(policy())
}

/// `$LATEST` already names the wanted image but its last update `Failed`: the re-run sends the
/// image again instead of failing at once without a call.
#[tokio::test(start_paused = true)]
async fn a_failed_update_of_the_same_image_is_sent_again() {
    let failed = running(&format!("{REPO}@sha256:2222")).code("2222").failed(
        "The image manifest or layer media type is not supported.",
        aws_sdk_lambda::types::LastUpdateStatusReasonCode::ImageAccessDenied,
    );
    let read = get_function(failed.clone());
    let ready = configuration(failed.clone());
    let update = mock!(Client::update_function_code)
        .match_requests(|r| r.image_uri() == Some(&format!("{REPO}@sha256:2222")))
        .then_output({
            let f = running(&format!("{REPO}@sha256:2222")).code("2222");
            move || f.update_output()
        });
    let settled = configuration(running(&format!("{REPO}@sha256:2222")).code("2222"));
    let deployer = deployer(&[&read, &ready, &update, &settled], "linux/amd64");
    let outcome = deploy(&deployer, &wanted(), &Progress::discard("api"), &policy())
        .await
        .unwrap();
    assert_eq!(update.num_calls(), 1);
    assert_eq!(outcome.action, Action::Updated);
}

/// With an alias, what serves is the aliased version's image (its `CodeSha256` is the image
/// digest), not the image in `$LATEST`.
#[tokio::test]
async fn the_alias_serves_its_version_not_latest() {
    let read = get_function(running(&format!("{REPO}@sha256:2222")).code("2222"));
    let alias = mock!(Client::get_alias).then_output(|| {
        aws_sdk_lambda::operation::get_alias::GetAliasOutput::builder()
            .name("live")
            .function_version("3")
            .build()
    });
    let version_3 = mock!(Client::get_function_configuration)
        .match_requests(|r| r.qualifier() == Some("3"))
        .then_output(|| {
            running(&format!("{REPO}@sha256:1111"))
                .code("1111")
                .version("3")
                .get_configuration()
        });
    let deployer = aliased(&[&read, &alias, &version_3]);
    let live = deployer.read_live().await.unwrap();
    let earlier = Artifact::Image(ImageArtifact {
        repository_uri: REPO.into(),
        tag: "oldtag".into(),
        digest: Some("sha256:1111".into()),
    });
    assert!(deployer.serves(&live, &earlier));
    assert!(!deployer.serves(&live, &wanted()));
}

/// A run that lost its deploy lock sends no `UpdateFunctionCode`.
#[tokio::test(start_paused = true)]
async fn a_fenced_run_sends_no_update() {
    let old = running(&format!("{REPO}@sha256:1111"));
    let read = get_function(old.clone());
    let ready = configuration(old.clone());
    let update = mock!(Client::update_function_code).then_output({
        let f = old.clone().code("2222");
        move || f.update_output()
    });
    let deployer = deployer(&[&read, &ready, &update], "linux/amd64");
    let progress = Progress::discard("api").with_fence(std::sync::Arc::new(LockLost));
    let error = deploy(&deployer, &wanted(), &progress, &policy())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Fenced { call, .. } if call == "UpdateFunctionCode"),
        "{error:?}"
    );
    assert_eq!(update.num_calls(), 0);
}
