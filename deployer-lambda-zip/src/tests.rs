//! The zip deployer against mocked Lambda and S3 responses (sequential rules: any request
//! beyond the listed ones fails the test).

use std::time::Duration;

use aws_sdk_lambda::Client as Lambda;
use aws_sdk_lambda::operation::get_alias::GetAliasOutput;
use aws_sdk_s3::Client as S3;
use aws_sdk_s3::operation::head_object::{HeadObjectError, HeadObjectOutput};
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use deployer_core::manifest::{LambdaTarget, LambdaZipTarget};
use deployer_core::poll::PollPolicy;
use deployer_core::{Action, Artifact, DeployError, Progress, ZipArtifact, deploy};
use deployer_lambda::ids;
use deployer_lambda::testing::{Fixture, SECRET};

use crate::{LambdaZipDeployer, MAX_DIRECT_UPLOAD, ZipPackage, artifact};

const OLD: &str = "b2xkLWNvZGU=";
const PREFIX: &str = "deployer/acme/render/";

fn zip() -> ZipArtifact {
    artifact(b"PK\x05\x06 pretend this is a zip".to_vec(), 1)
}

fn target(bucket: Option<&str>, alias: Option<&str>) -> LambdaZipTarget {
    LambdaZipTarget {
        lambda: LambdaTarget {
            function: "render".into(),
            publish: alias.is_some(),
            alias: alias.map(Into::into),
        },
        source: "lambdas/render".into(),
        exclude: Vec::new(),
        s3_bucket: bucket.map(Into::into),
        s3_key_prefix: None,
    }
}

fn policy() -> PollPolicy {
    PollPolicy {
        interval: Duration::from_secs(1),
        max_interval: Duration::from_secs(5),
        timeout: Duration::from_secs(120),
        call_timeout: Duration::from_secs(10),
    }
}

fn deployer(lambda: &[&Rule], s3: Option<&[&Rule]>, target: LambdaZipTarget) -> LambdaZipDeployer {
    let client: Lambda = mock_client!(aws_sdk_lambda, RuleMode::Sequential, lambda);
    let s3 = s3.map(|rules| -> S3 { mock_client!(aws_sdk_s3, RuleMode::Sequential, rules) });
    LambdaZipDeployer::new(
        client,
        target.lambda.clone(),
        ZipPackage::new(&target, s3, PREFIX.into()),
    )
    .with_policy(policy())
}

fn get_function(fixture: Fixture) -> Rule {
    mock!(Lambda::get_function).then_output(move || fixture.get_function())
}

fn configuration(fixture: Fixture) -> Rule {
    mock!(Lambda::get_function_configuration).then_output(move || fixture.get_configuration())
}

async fn run(
    deployer: &LambdaZipDeployer,
    zip: &ZipArtifact,
) -> Result<deployer_core::Outcome, DeployError> {
    deploy(
        deployer,
        &Artifact::Zip(zip.clone()),
        &Progress::discard("render"),
        &policy(),
    )
    .await
}

#[tokio::test]
async fn same_code_sha256_is_unchanged_with_no_upload() {
    let zip = zip();
    let read = get_function(Fixture::zip("render", &zip.sha256_b64));
    let deployer = deployer(&[&read], None, target(None, None));
    let outcome = run(&deployer, &zip).await.unwrap();
    assert_eq!(outcome.action, Action::Unchanged);
    assert_eq!(
        outcome.new_artifact.as_deref(),
        Some(zip.sha256_b64.as_str())
    );
    assert_eq!(read.num_calls(), 1);
}

#[tokio::test]
async fn aliased_function_is_unchanged_when_the_alias_holds_the_code() {
    let zip = zip();
    let read = get_function(Fixture::zip("render", &zip.sha256_b64));
    let alias = mock!(Lambda::get_alias).then_output(|| {
        GetAliasOutput::builder()
            .name("live")
            .function_version("7")
            .build()
    });
    let version = configuration(Fixture::zip("render", &zip.sha256_b64).version("7"));
    let deployer = deployer(&[&read, &alias, &version], None, target(None, Some("live")));
    let outcome = run(&deployer, &zip).await.unwrap();
    assert_eq!(outcome.action, Action::Unchanged);
    assert_eq!(outcome.ids[ids::VERSION], "7");
}

#[tokio::test(start_paused = true)]
async fn small_zip_is_uploaded_in_the_request() {
    let zip = zip();
    let old = Fixture::zip("render", OLD);
    let read = get_function(old.clone());
    let ready = configuration(old.clone());
    let update = mock!(Lambda::update_function_code)
        .match_requests({
            let bytes = zip.bytes.clone();
            move |r| {
                r.zip_file().is_some_and(|z| z.as_ref() == &bytes[..])
                    && r.s3_bucket().is_none()
                    && r.image_uri().is_none()
            }
        })
        .then_output({
            let f = old.clone().code(&zip.sha256_b64);
            move || f.update_output()
        });
    let settled = configuration(old.clone().code(&zip.sha256_b64));
    let deployer = deployer(
        &[&read, &ready, &update, &settled],
        None,
        target(None, None),
    );
    let outcome = run(&deployer, &zip).await.unwrap();
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(outcome.old_artifact.as_deref(), Some(OLD));
    assert_eq!(
        outcome.new_artifact.as_deref(),
        Some(zip.sha256_b64.as_str())
    );
    assert_eq!(outcome.ids[ids::OLD_CODE_SHA256], OLD);
    assert_eq!(outcome.ids[ids::CODE_SHA256], zip.sha256_b64);
}

fn big_zip() -> ZipArtifact {
    let size = usize::try_from(MAX_DIRECT_UPLOAD).unwrap() + 1;
    artifact(vec![7; size], 1)
}

#[tokio::test(start_paused = true)]
async fn zip_above_the_limit_goes_through_s3() {
    let zip = big_zip();
    let key = format!("{PREFIX}{}.zip", zip.tag);
    let head = mock!(S3::head_object).then_error(|| {
        HeadObjectError::NotFound(aws_sdk_s3::types::error::NotFound::builder().build())
    });
    let put = mock!(S3::put_object)
        .match_requests({
            let key = key.clone();
            move |r| {
                r.bucket() == Some("artifacts")
                    && r.key() == Some(key.as_str())
                    && r.content_type() == Some("application/zip")
            }
        })
        .then_output(|| PutObjectOutput::builder().build());
    let old = Fixture::zip("render", OLD);
    let read = get_function(old.clone());
    let ready = configuration(old.clone());
    let update = mock!(Lambda::update_function_code)
        .match_requests({
            let key = key.clone();
            move |r| {
                r.s3_bucket() == Some("artifacts")
                    && r.s3_key() == Some(key.as_str())
                    && r.zip_file().is_none()
            }
        })
        .then_output({
            let f = old.clone().code(&zip.sha256_b64);
            move || f.update_output()
        });
    let settled = configuration(old.clone().code(&zip.sha256_b64));
    let deployer = deployer(
        &[&read, &ready, &update, &settled],
        Some(&[&head, &put]),
        target(Some("artifacts"), None),
    );
    let outcome = run(&deployer, &zip).await.unwrap();
    assert_eq!(put.num_calls(), 1);
    assert_eq!(update.num_calls(), 1);
    assert_eq!(outcome.ids[ids::CODE_SHA256], zip.sha256_b64);
}

#[tokio::test(start_paused = true)]
async fn zip_already_in_s3_is_not_uploaded_again() {
    let zip = big_zip();
    let size = i64::try_from(zip.size).unwrap();
    let head = mock!(S3::head_object)
        .then_output(move || HeadObjectOutput::builder().content_length(size).build());
    let old = Fixture::zip("render", OLD);
    let read = get_function(old.clone());
    let ready = configuration(old.clone());
    let update = mock!(Lambda::update_function_code)
        .match_requests(|r| r.s3_bucket() == Some("artifacts"))
        .then_output({
            let f = old.clone().code(&zip.sha256_b64);
            move || f.update_output()
        });
    let settled = configuration(old.clone().code(&zip.sha256_b64));
    let deployer = deployer(
        &[&read, &ready, &update, &settled],
        Some(&[&head]),
        target(Some("artifacts"), None),
    );
    run(&deployer, &zip).await.unwrap();
    assert_eq!(head.num_calls(), 1);
}

#[tokio::test]
async fn zip_above_the_limit_without_a_bucket_names_the_limit() {
    let zip = big_zip();
    let read = get_function(Fixture::zip("render", OLD));
    let deployer = deployer(&[&read], None, target(None, None));
    let error = run(&deployer, &zip).await.unwrap_err();
    let DeployError::Mismatch(message) = &error else {
        panic!("expected a config error, got {error:?}");
    };
    assert!(error.is_config());
    assert!(
        message.contains(&format!("{} bytes", zip.size)),
        "{message}"
    );
    assert!(message.contains("52363264 bytes"), "{message}");
    assert!(message.contains("`s3_bucket`"), "{message}");
}

#[tokio::test]
async fn image_function_is_refused_before_anything_is_sent() {
    let read = get_function(Fixture::image(
        "render",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/render@sha256:1",
        "1",
    ));
    let deployer = deployer(&[&read], None, target(None, None));
    let error = run(&deployer, &zip()).await.unwrap_err();
    let DeployError::Mismatch(message) = &error else {
        panic!("expected a mismatch, got {error:?}");
    };
    assert!(message.contains("PackageType Image"), "{message}");
    assert!(!message.contains(SECRET));
}

#[tokio::test(start_paused = true)]
async fn code_sha256_other_than_the_zip_is_a_failure() {
    let zip = zip();
    let old = Fixture::zip("render", OLD);
    let read = get_function(old.clone());
    let ready = configuration(old.clone());
    let update = mock!(Lambda::update_function_code).then_output({
        let f = old.clone().code("c29tZXRoaW5nLWVsc2U=");
        move || f.update_output()
    });
    let deployer = deployer(&[&read, &ready, &update], None, target(None, None));
    let error = run(&deployer, &zip).await.unwrap_err();
    let DeployError::RolloutFailed { reason, .. } = &error else {
        panic!("expected a failure, got {error:?}");
    };
    assert!(reason.contains(&zip.sha256_b64), "{reason}");
}

/// A fence that says no: the run lost its deploy lock.
struct LockLost;

impl deployer_core::Fence for LockLost {
    fn check(&self) -> Result<(), String> {
        Err("the deploy lock of render was taken over".into())
    }
}

fn fenced() -> Progress {
    Progress::discard("render").with_fence(std::sync::Arc::new(LockLost))
}

/// `$LATEST` already holds this zip but its last update `Failed`: the re-run sends the zip
/// again (before, it sent nothing and the wait failed at once, so the same release could never
/// repair the function).
#[tokio::test(start_paused = true)]
async fn a_failed_update_of_the_same_zip_is_sent_again() {
    let zip = zip();
    let failed = Fixture::zip("render", &zip.sha256_b64).failed(
        "Lambda was unable to decrypt the environment variables because KMS access was denied.",
        aws_sdk_lambda::types::LastUpdateStatusReasonCode::KmsKeyAccessDenied,
    );
    let read = get_function(failed.clone());
    let ready = configuration(failed.clone());
    let update = mock!(Lambda::update_function_code)
        .match_requests({
            let bytes = zip.bytes.clone();
            move |r| r.zip_file().is_some_and(|z| z.as_ref() == &bytes[..])
        })
        .then_output({
            let f = Fixture::zip("render", &zip.sha256_b64);
            move || f.update_output()
        });
    let settled = configuration(Fixture::zip("render", &zip.sha256_b64));
    let deployer = deployer(
        &[&read, &ready, &update, &settled],
        None,
        target(None, None),
    );
    let outcome = run(&deployer, &zip).await.unwrap();
    assert_eq!(update.num_calls(), 1);
    assert_eq!(outcome.action, Action::Updated);
    assert_eq!(outcome.ids[ids::CODE_SHA256], zip.sha256_b64);
}

/// After a rollback pointed the alias back at version 3, the alias serves the earlier zip
/// while `$LATEST` keeps the newer one: `serves` says so, `is_current` does not.
#[tokio::test(start_paused = true)]
async fn after_a_rollback_the_alias_serves_the_earlier_zip() {
    use deployer_core::{Applied, Deployer};

    let new = zip();
    let old = artifact(b"PK\x05\x06 the earlier zip".to_vec(), 1);
    let alias_at = |version: &'static str| {
        mock!(Lambda::get_alias).then_output(move || {
            GetAliasOutput::builder()
                .name("live")
                .function_version(version)
                .build()
        })
    };
    let version = |number: &'static str, code: &str| {
        let fixture = Fixture::zip("render", code).version(number);
        mock!(Lambda::get_function_configuration)
            .match_requests(move |r| r.qualifier() == Some(number))
            .then_output(move || fixture.get_configuration())
    };
    let read = get_function(Fixture::zip("render", &new.sha256_b64));
    let alias = alias_at("4");
    let version_4 = version("4", &new.sha256_b64);
    let point = mock!(Lambda::update_alias)
        .match_requests(|r| r.name() == Some("live") && r.function_version() == Some("3"))
        .then_output(|| {
            aws_sdk_lambda::operation::update_alias::UpdateAliasOutput::builder()
                .function_version("3")
                .build()
        });
    let confirm = alias_at("3");
    let reread = get_function(Fixture::zip("render", &new.sha256_b64));
    let realias = alias_at("3");
    let version_3 = version("3", &old.sha256_b64);
    let deployer = deployer(
        &[
            &read, &alias, &version_4, &point, &confirm, &reread, &realias, &version_3,
        ],
        None,
        target(None, Some("live")),
    );
    let (old, new) = (Artifact::Zip(old), Artifact::Zip(new));
    let live = deployer.read_live().await.unwrap();
    assert!(deployer.serves(&live, &new));
    assert!(!deployer.serves(&live, &old));
    let previous = Applied {
        old_artifact: None,
        new_artifact: old.deploy_id(),
        ids: [(ids::VERSION.to_owned(), "3".to_owned())].into(),
    };
    let progress = Progress::discard("render");
    let restored = deployer
        .rollback(&live, &previous, &progress)
        .await
        .unwrap();
    deployer
        .wait(&restored, &policy(), &progress)
        .await
        .unwrap();
    let live = deployer.read_live().await.unwrap();
    assert!(deployer.serves(&live, &old), "the alias serves version 3");
    assert!(!deployer.serves(&live, &new), "$LATEST is not what serves");
    assert!(!deployer.is_current(&live, &old));
    assert!(!deployer.is_current(&live, &new));
}

/// A run that lost its deploy lock stops before its first mutating call: no
/// `UpdateFunctionCode` for a small zip, no `PutObject` for a large one.
#[tokio::test(start_paused = true)]
async fn a_fenced_run_sends_no_code_and_uploads_nothing() {
    let small = zip();
    let old = Fixture::zip("render", OLD);
    let read = get_function(old.clone());
    let ready = configuration(old.clone());
    let update = mock!(Lambda::update_function_code).then_output({
        let f = old.clone().code(&small.sha256_b64);
        move || f.update_output()
    });
    let direct = deployer(&[&read, &ready, &update], None, target(None, None));
    let error = deploy(&direct, &Artifact::Zip(small), &fenced(), &policy())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Fenced { call, .. } if call == "UpdateFunctionCode"),
        "{error:?}"
    );
    assert_eq!(update.num_calls(), 0);

    let big = big_zip();
    let head = mock!(S3::head_object).then_error(|| {
        HeadObjectError::NotFound(aws_sdk_s3::types::error::NotFound::builder().build())
    });
    let put = mock!(S3::put_object).then_output(|| PutObjectOutput::builder().build());
    let read = get_function(old.clone());
    let through_s3 = deployer(
        &[&read],
        Some(&[&head, &put]),
        target(Some("artifacts"), None),
    );
    let error = deploy(&through_s3, &Artifact::Zip(big), &fenced(), &policy())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, DeployError::Fenced { call, .. } if call == "PutObject"),
        "{error:?}"
    );
    assert_eq!(put.num_calls(), 0);
}
