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
use aws_sdk_ssm::error::ProvideErrorMetadata;
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
    // Adaptive retry (client-side rate limiting once throttled) unless the environment chose.
    if std::env::var_os("AWS_RETRY_MODE").is_none()
        && std::env::var_os("AWS_MAX_ATTEMPTS").is_none()
    {
        loader = loader.retry_config(RetryConfig::adaptive().with_max_attempts(MAX_ATTEMPTS));
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

/// An SDK error (or a service error of one) in one line: `Code: message` when the service
/// answered, the chain of causes otherwise (a refused connection, a timeout). Never
/// `DisplayErrorContext`, whose tail is the `Debug` form of the error and of the raw response.
pub(crate) fn sdk_message<E>(error: &E) -> String
where
    E: ProvideErrorMetadata + std::error::Error,
{
    match (error.code(), error.message()) {
        (Some(code), Some(message)) => one_line(&format!("{code}: {message}")),
        (Some(code), None) => code.to_owned(),
        _ => chain(error),
    }
}

/// `error: its source: its source's source`, skipping causes already spelled out, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    one_line(&parts.join(": "))
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The retry partition every client of a run shares: one token bucket (the retry budget) and
/// one adaptive rate limiter per region (a run uses one account), so eight services deploying
/// at once back off together instead of each retrying into the throttle.
pub(crate) fn retry_partition(config: &SdkConfig) -> RetryPartition {
    let region = config
        .region()
        .map(|r| r.as_ref().to_owned())
        .unwrap_or_else(|| "default".into());
    RetryPartition::new(format!("deployer-{region}"))
}

/// An SDK client from the run's `SdkConfig`, in the run's shared retry partition:
/// `client!(aws_sdk_ecs, &sdk)`.
macro_rules! client {
    ($sdk:ident, $config:expr) => {{
        let config: &aws_config::SdkConfig = $config;
        $sdk::Client::from_conf(
            $sdk::config::Builder::from(config)
                .retry_partition($crate::aws::retry_partition(config))
                .build(),
        )
    }};
}
pub(crate) use client;
