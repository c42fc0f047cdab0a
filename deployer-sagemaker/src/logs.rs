//! What the endpoint says when a rollout failed, and where it logs: the
//! [`Deployer::diagnose`](deployer_core::Deployer::diagnose) and
//! [`Deployer::log_sources`](deployer_core::Deployer::log_sources) of SageMaker services.

use deployer_aws::Redactor;
use deployer_core::{DeployError, Diagnosis, LogSource};

use crate::{SagemakerDeployer, copy, failure_reason};

/// The log group SageMaker writes an endpoint's container output to:
/// `/aws/sagemaker/Endpoints/<endpoint>` (streams `<variant>/<instance id>`).
pub fn log_group(endpoint: &str) -> String {
    format!("/aws/sagemaker/Endpoints/{endpoint}")
}

impl SagemakerDeployer {
    /// The environment values of the models last read (what the endpoint's texts must hide).
    fn hidden_values(&self) -> Vec<String> {
        self.snapshot
            .lock()
            .ok()
            .and_then(|snapshot| {
                snapshot
                    .as_ref()
                    .map(|snapshot| copy::environment_values(&snapshot.models))
            })
            .unwrap_or_default()
    }

    /// The endpoint's `FailureReason` (redacted), when it gives one.
    pub(crate) async fn diagnosis(&self) -> Diagnosis {
        match self.describe_endpoint().await {
            Ok(endpoint) => {
                let mut diagnosis = Diagnosis::default();
                if endpoint
                    .failure_reason()
                    .is_some_and(|reason| !reason.trim().is_empty())
                {
                    let redactor = Redactor::new(self.hidden_values());
                    diagnosis.reasons.push(format!(
                        "{}: {}",
                        endpoint
                            .endpoint_status()
                            .map_or("no status", |status| status.as_str()),
                        failure_reason(&endpoint, &redactor)
                    ));
                }
                diagnosis
            }
            Err(failure) => {
                Diagnosis::unavailable(format!("DescribeEndpoint failed: {}", failure.message))
            }
        }
    }

    /// The endpoint's log group, every stream.
    pub(crate) fn log_source(&self) -> Result<Vec<LogSource>, DeployError> {
        Ok(vec![LogSource {
            group: log_group(self.endpoint()),
            region: None,
            stream_prefix: None,
            label: "endpoint".into(),
            redact: self.hidden_values(),
        }])
    }
}
