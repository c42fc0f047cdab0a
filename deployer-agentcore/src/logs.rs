//! What the runtime says when a rollout failed, and where it logs: the
//! [`Deployer::diagnose`](deployer_core::Deployer::diagnose) and
//! [`Deployer::log_sources`](deployer_core::Deployer::log_sources) of AgentCore services.

use deployer_core::{Diagnosis, LogSource};

use crate::{AgentcoreDeployer, Status, classify, failure_reason};

/// The log group AgentCore writes a runtime's container output to, for the endpoint `endpoint`:
/// `/aws/bedrock-agentcore/runtimes/<runtime id>-<endpoint>` (the service's documented default).
pub fn log_group(runtime_id: &str, endpoint: &str) -> String {
    format!("/aws/bedrock-agentcore/runtimes/{runtime_id}-{endpoint}")
}

impl AgentcoreDeployer {
    /// The runtime's `failureReason` (redacted) when it is in a failed state, else its state.
    pub(crate) async fn diagnosis(&self) -> Diagnosis {
        match self.get(None).await {
            Ok(live) => {
                let mut diagnosis = Diagnosis::default();
                if classify(live.status()) == Status::Failed {
                    diagnosis.reasons.push(format!(
                        "{} {}: {}",
                        live.status(),
                        live.agent_runtime_version(),
                        failure_reason(&live)
                    ));
                }
                diagnosis
            }
            Err(failure) => {
                Diagnosis::unavailable(format!("GetAgentRuntime failed: {}", failure.message))
            }
        }
    }

    /// The log groups of the `DEFAULT` endpoint and of each named one (`endpoints`); their
    /// lines hide the runtime's environment values.
    pub(crate) async fn log_source(&self) -> Result<Vec<LogSource>, deployer_core::DeployError> {
        let live = self
            .get(None)
            .await
            .map_err(|failure| self.get_failed(failure))?;
        let redact: Vec<String> = live
            .environment_variables()
            .map(|variables| variables.values().cloned().collect())
            .unwrap_or_default();
        let endpoints =
            std::iter::once("DEFAULT").chain(self.target.endpoints.iter().map(String::as_str));
        Ok(endpoints
            .map(|endpoint| LogSource {
                group: log_group(self.runtime_id(), endpoint),
                region: None,
                stream_prefix: None,
                label: if endpoint == "DEFAULT" {
                    "runtime".into()
                } else {
                    format!("runtime {endpoint}")
                },
                redact: redact.clone(),
            })
            .collect())
    }
}
