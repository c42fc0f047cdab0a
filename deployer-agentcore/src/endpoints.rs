//! Named runtime endpoints (`endpoints = ["prod", …]`): read with the live state, moved to the
//! new version once the runtime is `READY` on it, waited on until they serve it, and moved back
//! by a rollback while the recorded version still exists.
//!
//! A runtime is invoked through endpoints. `DEFAULT` follows the latest version by itself; a
//! named endpoint stays on the version it was pointed at until `UpdateAgentRuntimeEndpoint`
//! moves it. So a deploy is complete only when every named endpoint serves the new version:
//!
//! - [`AgentcoreDeployer::read_endpoints`] (with `read_live`): `GetAgentRuntimeEndpoint` for
//!   each; a missing one is an error naming it before anything is built or changed (deployer
//!   moves endpoints, it does not create them: that is the IaC's job). An endpoint whose live
//!   version is not the runtime's latest is asked what it serves (`GetAgentRuntime` with that
//!   `agentRuntimeVersion`), so a rollback that moved only the endpoints is seen as served.
//! - [`AgentcoreDeployer::roll_endpoints`] (in `wait`, after the runtime is `READY`): for each
//!   endpoint, an update in flight is waited out, then `UpdateAgentRuntimeEndpoint` with
//!   `agentRuntimeVersion` = the new version (its `description` sent back as read), each after
//!   `Progress::before_mutation`; then each is polled until `READY` with `liveVersion` = the new
//!   version. `UPDATE_FAILED` is a [`DeployError::RolloutFailed`] with the endpoint's
//!   `failureReason`; the rollout's deadline covers the runtime's wait and the endpoints'.
//! - [`AgentcoreDeployer::revert_endpoints`] (`Deployer::revert`): a rollback to a recorded
//!   version that still exists and still runs the recorded image moves the endpoints back to
//!   it, and leaves the runtime alone.

use std::collections::BTreeMap;
use std::time::Instant;

use aws_sdk_bedrockagentcorecontrol::operation::get_agent_runtime::GetAgentRuntimeOutput;
use aws_sdk_bedrockagentcorecontrol::operation::get_agent_runtime_endpoint::GetAgentRuntimeEndpointOutput;
use aws_sdk_bedrockagentcorecontrol::types::AgentRuntimeEndpointStatus;
use deployer_aws::{ErrorClass, Failure, Redactor};
use deployer_core::poll::{Poll, PollPolicy, StateLog, poll_until};
use deployer_core::{Applied, Artifact, DeployError, LiveState, Phase, Progress, one_line};

use crate::{AgentcoreDeployer, ids, request};

const GET_ENDPOINT: &str = "GetAgentRuntimeEndpoint";
const UPDATE_ENDPOINT: &str = "UpdateAgentRuntimeEndpoint";
const GET_VERSION: &str = "GetAgentRuntime";

/// How an endpoint's status reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndpointStatus {
    /// `CREATING`, `UPDATING`.
    InFlight,
    /// `READY`.
    Ready,
    /// `CREATE_FAILED`, `UPDATE_FAILED`, any other `*_FAILED`.
    Failed,
    /// `DELETING`.
    Deleting,
    /// A state this build does not know.
    Unknown,
}

fn classify(status: &AgentRuntimeEndpointStatus) -> EndpointStatus {
    match status {
        AgentRuntimeEndpointStatus::Creating | AgentRuntimeEndpointStatus::Updating => {
            EndpointStatus::InFlight
        }
        AgentRuntimeEndpointStatus::Ready => EndpointStatus::Ready,
        AgentRuntimeEndpointStatus::Deleting => EndpointStatus::Deleting,
        AgentRuntimeEndpointStatus::CreateFailed
        | AgentRuntimeEndpointStatus::UpdateFailed
        | AgentRuntimeEndpointStatus::DeleteFailed => EndpointStatus::Failed,
        other if other.as_str().ends_with("_FAILED") => EndpointStatus::Failed,
        _ => EndpointStatus::Unknown,
    }
}

/// `READY (live version 3, target version 3)`.
fn endpoint_state(endpoint: &GetAgentRuntimeEndpointOutput) -> String {
    format!(
        "{} (live version {}, target version {})",
        endpoint.status(),
        endpoint.live_version().unwrap_or("none"),
        endpoint.target_version().unwrap_or("none")
    )
}

/// What one poll of an endpoint decided.
enum Verdict {
    Done,
    Pending(String),
}

impl AgentcoreDeployer {
    /// `AgentCore endpoint prod of runtime acme_agent-…`.
    pub(crate) fn endpoint_target(&self, name: &str) -> String {
        format!(
            "AgentCore endpoint {name} of runtime {}",
            self.target.runtime_id
        )
    }

    /// One `GetAgentRuntimeEndpoint`.
    async fn get_endpoint(&self, name: &str) -> Result<GetAgentRuntimeEndpointOutput, Failure> {
        self.client
            .get_agent_runtime_endpoint()
            .agent_runtime_id(&self.target.runtime_id)
            .endpoint_name(name)
            .send()
            .await
            .map_err(|error| Failure::new(&error, &Redactor::default()))
    }

    /// The error of a failed `GetAgentRuntimeEndpoint`: a missing endpoint names itself and
    /// says who creates endpoints.
    fn get_endpoint_failed(&self, name: &str, failure: Failure) -> DeployError {
        if failure.class == ErrorClass::NotFound {
            return DeployError::NotFound {
                what: self.endpoint_target(name),
                hint: "deployer moves named endpoints to each new version but does not create \
                       them: creating an endpoint is the IaC's job (CreateAgentRuntimeEndpoint; \
                       `AWS::BedrockAgentCore::RuntimeEndpoint` in CloudFormation/CDK, \
                       `aws_bedrockagentcore_agent_runtime_endpoint` in Terraform), or remove it \
                       from `endpoints` in deployer.toml"
                    .into(),
            };
        }
        failure.into_error(GET_ENDPOINT)
    }

    /// Every named endpoint, in manifest order; a missing one is an error naming it.
    pub(crate) async fn read_endpoints(
        &self,
    ) -> Result<Vec<GetAgentRuntimeEndpointOutput>, DeployError> {
        let mut endpoints = Vec::with_capacity(self.target.endpoints.len());
        for name in &self.target.endpoints {
            let endpoint = self
                .get_endpoint(name)
                .await
                .map_err(|failure| self.get_endpoint_failed(name, failure))?;
            endpoints.push(endpoint);
        }
        Ok(endpoints)
    }

    /// The container URI of runtime version `version`; `None` when that version is gone.
    pub(crate) async fn version_uri(&self, version: &str) -> Result<Option<String>, DeployError> {
        let read = self
            .client
            .get_agent_runtime()
            .agent_runtime_id(&self.target.runtime_id)
            .agent_runtime_version(version)
            .send()
            .await;
        match read {
            Ok(live) => Ok(request::container_uri(&live, &self.target.runtime_id)
                .ok()
                .map(str::to_owned)),
            Err(error) => {
                let failure = Failure::new(&error, &Redactor::default());
                if failure.class == ErrorClass::NotFound {
                    return Ok(None);
                }
                Err(failure.into_error(format!("{GET_VERSION} (version {version})")))
            }
        }
    }

    /// Adds the named endpoints to the live state: `endpoint.<name>.status`, `.live_version`,
    /// `.target_version` and `.image` (what its live version runs), and one clause per
    /// endpoint to the summary.
    pub(crate) async fn add_endpoints(
        &self,
        runtime: &GetAgentRuntimeOutput,
        state: &mut LiveState,
    ) -> Result<(), DeployError> {
        if self.target.endpoints.is_empty() {
            return Ok(());
        }
        let endpoints = self.read_endpoints().await?;
        let runtime_version = runtime.agent_runtime_version();
        let runtime_uri = request::container_uri(runtime, &self.target.runtime_id)
            .ok()
            .map(str::to_owned);
        let mut images: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut clauses = Vec::new();
        for endpoint in &endpoints {
            let name = endpoint_name(endpoint, &self.target.endpoints, clauses.len());
            let key = |field: &str| ids::endpoint_key(&name, field);
            state.ids.insert(
                key(ids::ENDPOINT_STATUS),
                endpoint.status().as_str().to_owned(),
            );
            if let Some(live) = endpoint.live_version() {
                state
                    .ids
                    .insert(key(ids::ENDPOINT_LIVE_VERSION), live.to_owned());
                let image = if live == runtime_version {
                    runtime_uri.clone()
                } else if let Some(image) = images.get(live) {
                    image.clone()
                } else {
                    let image = self.version_uri(live).await?;
                    images.insert(live.to_owned(), image.clone());
                    image
                };
                if let Some(image) = image {
                    state.ids.insert(key(ids::ENDPOINT_IMAGE), image);
                }
            }
            if let Some(target) = endpoint.target_version() {
                state
                    .ids
                    .insert(key(ids::ENDPOINT_TARGET_VERSION), target.to_owned());
            }
            clauses.push(format!("endpoint {name} {}", endpoint_state(endpoint)));
        }
        state.summary = format!("{}; {}", state.summary, clauses.join("; "));
        Ok(())
    }

    /// Whether every named endpoint is `READY` on the runtime's live version (`live.ids`).
    pub(crate) fn endpoints_current(&self, live: &LiveState) -> bool {
        let Some(version) = live.ids.get(ids::VERSION) else {
            return self.target.endpoints.is_empty();
        };
        self.target.endpoints.iter().all(|name| {
            let get = |field: &str| live.ids.get(&ids::endpoint_key(name, field));
            get(ids::ENDPOINT_STATUS)
                .is_some_and(|status| status == AgentRuntimeEndpointStatus::Ready.as_str())
                && get(ids::ENDPOINT_LIVE_VERSION) == Some(version)
        })
    }

    /// Whether every named endpoint is `READY` on a version that runs `artifact`.
    pub(crate) fn endpoints_serve(&self, live: &LiveState, artifact: &Artifact) -> bool {
        self.target.endpoints.iter().all(|name| {
            let get = |field: &str| live.ids.get(&ids::endpoint_key(name, field));
            get(ids::ENDPOINT_STATUS)
                .is_some_and(|status| status == AgentRuntimeEndpointStatus::Ready.as_str())
                && get(ids::ENDPOINT_IMAGE).is_some_and(|image| artifact.matches_live(image))
        })
    }

    /// Moves every named endpoint to `version` and waits until each serves it, within what is
    /// left of `policy.timeout` since `started`.
    pub(crate) async fn roll_endpoints(
        &self,
        version: &str,
        policy: &PollPolicy,
        started: Instant,
        progress: &Progress,
        redactor: &Redactor,
    ) -> Result<(), DeployError> {
        let remaining = || PollPolicy {
            timeout: policy.timeout.saturating_sub(started.elapsed()),
            ..policy.clone()
        };
        for name in &self.target.endpoints {
            let current = self.settled_endpoint(name, &remaining(), progress).await?;
            let at_version = current.live_version() == Some(version)
                && classify(current.status()) == EndpointStatus::Ready;
            let moving = current.target_version() == Some(version)
                && classify(current.status()) == EndpointStatus::InFlight;
            if at_version || moving {
                progress.emit(
                    Phase::Wait,
                    format!("endpoint {name} already serves version {version}"),
                );
                continue;
            }
            self.update_endpoint(&current, name, version, progress, redactor)
                .await?;
        }
        for name in &self.target.endpoints {
            self.wait_endpoint(name, version, &remaining(), progress, redactor)
                .await?;
        }
        Ok(())
    }

    /// `UpdateAgentRuntimeEndpoint` of `name` to `version`, its description sent back as read,
    /// after `Progress::before_mutation`.
    async fn update_endpoint(
        &self,
        current: &GetAgentRuntimeEndpointOutput,
        name: &str,
        version: &str,
        progress: &Progress,
        redactor: &Redactor,
    ) -> Result<(), DeployError> {
        progress.emit(
            Phase::Apply,
            format!(
                "{UPDATE_ENDPOINT} {name}: version {} -> {version}",
                current.live_version().unwrap_or("none")
            ),
        );
        progress.before_mutation(UPDATE_ENDPOINT)?;
        self.client
            .update_agent_runtime_endpoint()
            .agent_runtime_id(&self.target.runtime_id)
            .endpoint_name(name)
            .agent_runtime_version(version)
            .set_description(current.description().map(str::to_owned))
            .send()
            .await
            .map_err(|error| {
                Failure::new(&error, redactor).into_error(format!("{UPDATE_ENDPOINT} ({name})"))
            })?;
        Ok(())
    }

    /// Reads `name`; when an update of it is in flight, waits until it settled (any state).
    async fn settled_endpoint(
        &self,
        name: &str,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<GetAgentRuntimeEndpointOutput, DeployError> {
        let first = self
            .get_endpoint(name)
            .await
            .map_err(|failure| self.get_endpoint_failed(name, failure))?;
        if classify(first.status()) != EndpointStatus::InFlight {
            return Ok(first);
        }
        let what = format!(
            "the update in flight on {} to settle",
            self.endpoint_target(name)
        );
        self.poll_endpoint(name, &what, policy, progress, |endpoint, state| {
            Ok(match classify(endpoint.status()) {
                EndpointStatus::InFlight => Verdict::Pending(state.to_owned()),
                _ => Verdict::Done,
            })
        })
        .await
    }

    /// Polls `name` until it is `READY` with `liveVersion` = `version`.
    async fn wait_endpoint(
        &self,
        name: &str,
        version: &str,
        policy: &PollPolicy,
        progress: &Progress,
        redactor: &Redactor,
    ) -> Result<(), DeployError> {
        let what = format!("{} to serve version {version}", self.endpoint_target(name));
        self.poll_endpoint(name, &what, policy, progress, |endpoint, state| {
            decide(
                endpoint,
                state,
                version,
                &self.endpoint_target(name),
                redactor,
            )
        })
        .await
        .map(drop)
    }

    /// Polls `GetAgentRuntimeEndpoint` of `name` until `decide` says done, fails, or `policy`
    /// runs out. Transient errors count as pending; each new state is reported once.
    async fn poll_endpoint<F>(
        &self,
        name: &str,
        what: &str,
        policy: &PollPolicy,
        progress: &Progress,
        decide: F,
    ) -> Result<GetAgentRuntimeEndpointOutput, DeployError>
    where
        F: Fn(&GetAgentRuntimeEndpointOutput, &str) -> Result<Verdict, DeployError> + Sync,
    {
        let log = StateLog::default();
        let (log, decide) = (&log, &decide);
        poll_until(what, policy, || async move {
            let endpoint = match self.get_endpoint(name).await {
                Ok(endpoint) => endpoint,
                Err(failure) if failure.is_retryable() => {
                    let error = failure.into_error(GET_ENDPOINT);
                    return Ok(Poll::Pending(format!("{error} (retrying)")));
                }
                Err(failure) => return Err(self.get_endpoint_failed(name, failure)),
            };
            let state = format!("endpoint {name}: {}", endpoint_state(&endpoint));
            if log.note(&state) {
                progress.emit(Phase::Wait, state.as_str());
            }
            Ok(match decide(&endpoint, &state)? {
                Verdict::Done => Poll::Ready(endpoint),
                Verdict::Pending(state) => Poll::Pending(state),
            })
        })
        .await
        .map_err(|error| error.into_deploy_error(log.states()))
    }

    /// A rollback to `previous` (a recorded deploy of this runtime) through the endpoints
    /// alone: when its recorded version still exists and runs the recorded image, every named
    /// endpoint is moved back to it (after `Progress::before_mutation`) and the runtime is not
    /// touched. `None` when there are no named endpoints, the record names no version, or the
    /// version is gone or runs something else: the rollback is then a rollover as usual.
    pub(crate) async fn revert_endpoints(
        &self,
        live: &LiveState,
        previous: &Applied,
        progress: &Progress,
    ) -> Result<Option<Applied>, DeployError> {
        if self.target.endpoints.is_empty() {
            return Ok(None);
        }
        let Some(version) = previous.ids.get(ids::VERSION).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let runs = match self.version_uri(version).await? {
            Some(uri) => uri == previous.new_artifact,
            None => false,
        };
        if !runs {
            progress.emit(
                Phase::Apply,
                format!(
                    "runtime version {version} no longer exists or runs another image: rolling the runtime over to {}",
                    previous.new_artifact
                ),
            );
            return Ok(None);
        }
        progress.emit(
            Phase::Apply,
            format!(
                "runtime version {version} still runs {}: moving endpoint{} {} back to it; the runtime is not updated",
                previous.new_artifact,
                if self.target.endpoints.len() == 1 { "" } else { "s" },
                self.target.endpoints.join(", ")
            ),
        );
        for name in &self.target.endpoints {
            let current = self
                .get_endpoint(name)
                .await
                .map_err(|failure| self.get_endpoint_failed(name, failure))?;
            if current.live_version() == Some(version.as_str())
                && classify(current.status()) == EndpointStatus::Ready
            {
                continue;
            }
            if classify(current.status()) == EndpointStatus::InFlight {
                // Moved in `wait` once it settled.
                continue;
            }
            self.update_endpoint(&current, name, version, progress, &Redactor::default())
                .await?;
        }
        let mut ids = BTreeMap::new();
        ids.insert(
            ids::RUNTIME_ID.to_owned(),
            self.target.runtime_id.to_owned(),
        );
        if let Some(old) = live.ids.get(ids::VERSION) {
            ids.insert(ids::OLD_VERSION.to_owned(), old.clone());
        }
        ids.insert(ids::VERSION.to_owned(), version.clone());
        if let Some(arn) = live
            .ids
            .get(ids::ARN)
            .or_else(|| previous.ids.get(ids::ARN))
        {
            ids.insert(ids::ARN.to_owned(), arn.clone());
        }
        ids.insert(ids::ENDPOINTS_ONLY.to_owned(), "true".to_owned());
        Ok(Some(Applied {
            old_artifact: live.artifact.clone(),
            new_artifact: previous.new_artifact.clone(),
            ids,
        }))
    }
}

/// The endpoint's name as AgentCore reports it, else the manifest's `index`th.
fn endpoint_name(
    endpoint: &GetAgentRuntimeEndpointOutput,
    names: &[String],
    index: usize,
) -> String {
    if endpoint.name().is_empty() {
        names.get(index).cloned().unwrap_or_default()
    } else {
        endpoint.name().to_owned()
    }
}

/// Whether an endpoint polled after its update serves `version`.
fn decide(
    endpoint: &GetAgentRuntimeEndpointOutput,
    state: &str,
    version: &str,
    what: &str,
    redactor: &Redactor,
) -> Result<Verdict, DeployError> {
    let live = endpoint.live_version();
    match classify(endpoint.status()) {
        EndpointStatus::Ready if live == Some(version) => Ok(Verdict::Done),
        EndpointStatus::Ready => {
            let later = matches!(
                (live.map(str::parse::<u64>), version.parse::<u64>()),
                (Some(Ok(live)), Ok(version)) if live > version
            );
            if later && endpoint.target_version() != Some(version) {
                return Err(DeployError::RolloutFailed {
                    reason: format!(
                        "{what} is READY on version {}, not {version}: another deploy moved it; deploy again if this version should serve",
                        live.unwrap_or("none")
                    ),
                    events: Vec::new(),
                });
            }
            Ok(Verdict::Pending(format!(
                "{state}: still on version {}",
                live.unwrap_or("none")
            )))
        }
        EndpointStatus::Failed => Err(DeployError::RolloutFailed {
            reason: format!(
                "{what} is {}: {}; it still serves version {}",
                endpoint.status(),
                endpoint
                    .failure_reason()
                    .map(str::trim)
                    .filter(|reason| !reason.is_empty())
                    .map_or_else(
                        || "AgentCore gave no failure reason".to_owned(),
                        |reason| redactor.apply(&one_line(reason))
                    ),
                live.unwrap_or("none")
            ),
            events: Vec::new(),
        }),
        EndpointStatus::Deleting => Err(DeployError::RolloutFailed {
            reason: format!("{what} is being deleted ({})", endpoint.status()),
            events: Vec::new(),
        }),
        EndpointStatus::InFlight | EndpointStatus::Unknown => {
            Ok(Verdict::Pending(state.to_owned()))
        }
    }
}
