//! The one place an AWS `SdkConfig` is built.
//!
//! It honours the standard AWS environment exactly as the AWS CLI does (`AWS_PROFILE`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`, web identity in CI, SSO
//! profiles), which is also how tests point deployer at the local emulator. The HTTPS client is
//! rustls with the ring provider (the SDK's default pulls aws-lc, a heavy C build).

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_ssm::config::retry::RetryPartition;
use aws_smithy_http_client::tls;

use crate::exit::UsageError;

/// Attempts per call unless `AWS_MAX_ATTEMPTS` says otherwise: a deploy is a few dozen calls,
/// and one that fails on a throttle after the SDK's default three attempts fails a whole
/// rollout that would have converged.
const MAX_ATTEMPTS: u32 = 8;

/// Loads the AWS configuration; `region` (from the manifest) overrides the config chain.
pub async fn sdk_config(region: Option<&str>) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http);
    if let Some(region) = region {
        loader = loader.region(Region::new(region.to_owned()));
    }
    // Standard retry (exponential backoff with full jitter, a retry quota per partition)
    // unless the environment chose: measured under injected throttling (`cargo xtask bench
    // noop`), the adaptive mode's client-side rate limiter slows every call of the partition
    // to about one request a second after the first throttle, and a run's calls are few and
    // bursty — backing off per call is what converges fastest.
    if std::env::var_os("AWS_RETRY_MODE").is_none()
        && std::env::var_os("AWS_MAX_ATTEMPTS").is_none()
    {
        loader = loader.retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
    }
    loader.load().await
}

/// Checks, before the first call, that requests can be signed: a region is known and the
/// credential chain yields credentials. Either missing is a configuration error (exit 2) in one
/// line that says how to provide it, instead of the SDK's dispatch failure at the first call.
pub(crate) async fn preflight(config: &SdkConfig) -> Result<(), UsageError> {
    if config.region().is_none() {
        return Err(UsageError(
            "no AWS region: set `region` under [project] in deployer.toml, or AWS_REGION, or a \
             region in the AWS profile (AWS_PROFILE)"
                .into(),
        ));
    }
    let advice = "set AWS_PROFILE (a profile of ~/.aws/config; `aws sso login` for SSO), or \
                  AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; in CI assume a role (AWS_ROLE_ARN \
                  with AWS_WEB_IDENTITY_TOKEN_FILE, as aws-actions/configure-aws-credentials does)";
    let Some(provider) = config.credentials_provider() else {
        return Err(UsageError(format!("no AWS credentials: {advice}")));
    };
    match provider.provide_credentials().await {
        Ok(_) => Ok(()),
        Err(error) => Err(UsageError(format!(
            "no AWS credentials ({}): {advice}",
            chain(&error)
        ))),
    }
}

/// `error: its source: its source's source`, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    deployer_core::cause_chain(error)
}

/// The retry partition of one API (`ssm`, `ecs`, `lambda`, …, and `lock` for the deploy
/// lock's own client) in the run's region: one retry quota per API, shared by the services
/// of the run. A burst of throttling on one API (SSM's shared 40 TPS) then spends that API's
/// quota, not the budget of the calls that roll services over; the lock's renewals and
/// releases have a quota of their own.
pub(crate) fn retry_partition(config: &SdkConfig, api: &str) -> RetryPartition {
    let region = config
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_else(|| "default".into());
    RetryPartition::new(format!("deployer-{api}-{region}"))
}

/// An SDK client from the run's `SdkConfig`, in its API's retry partition:
/// `client!(aws_sdk_ecs, &sdk)`.
macro_rules! client {
    ($sdk:ident, $config:expr) => {{
        let config: &aws_config::SdkConfig = $config;
        $sdk::Client::from_conf(
            $sdk::config::Builder::from(config)
                .retry_partition($crate::aws::retry_partition(config, stringify!($sdk)))
                .build(),
        )
    }};
}
pub(crate) use client;
