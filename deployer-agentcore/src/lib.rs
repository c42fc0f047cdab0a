//! Deploys a new container image to a Bedrock AgentCore Runtime (`kind = "agentcore"`): reads
//! the runtime with `GetAgentRuntime`, sends `UpdateAgentRuntime` with the new container URI,
//! and polls until the runtime is `READY` again.
//!
//! # Using it alone
//!
//! [`AgentcoreDeployer`] implements [`deployer_core::Deployer`]; give it an injected SDK client
//! (configured once by the caller: region, credentials, endpoint, retries) and the service's
//! target, and run it through [`deployer_core::deploy()`]:
//!
//! ```no_run
//! # async fn demo(sdk: &aws_config::SdkConfig, wanted: deployer_core::Artifact)
//! # -> Result<(), deployer_core::DeployError> {
//! use deployer_agentcore::AgentcoreDeployer;
//! use deployer_core::manifest::AgentcoreTarget;
//! use deployer_core::{Progress, deploy, poll::PollPolicy};
//!
//! let deployer = AgentcoreDeployer::new(
//!     aws_sdk_bedrockagentcorecontrol::Client::new(sdk),
//!     AgentcoreTarget { runtime_id: "acme_agent-a1b2c3d4e5".into(), endpoints: vec!["prod".into()] },
//! );
//! let outcome = deploy(&deployer, &wanted, &Progress::discard("agent"), &PollPolicy::default()).await?;
//! // outcome.ids: runtime_id, old_version, version, arn
//! # Ok(()) }
//! ```
//!
//! `examples/agentcore-roll.rs` is a complete program that rolls one runtime over (the AWS
//! configuration from the standard environment, progress on stderr, the outcome on stdout, a
//! non-zero exit code on failure): `cargo run -p deployer-agentcore --example agentcore-roll --
//! --runtime-id ID <image@digest>`.
//!
//! # Full replacement: nothing is dropped
//!
//! `UpdateAgentRuntime` replaces the runtime's whole configuration: an optional field that is
//! not sent is reset, not kept. Redeploys that silently wiped environment variables and
//! lifecycle settings are a known failure of deploy scripts. So [`Deployer::apply`] reads the
//! runtime again right before the update and sends back every field the update accepts, as
//! read, with only the container URI replaced. The fields carried over are:
//!
//! - `agentRuntimeArtifact` (a copy of the live `containerConfiguration` with the new
//!   `containerUri`)
//! - `roleArn`
//! - `networkConfiguration`
//! - `description`
//! - `authorizerConfiguration`
//! - `requestHeaderConfiguration`
//! - `protocolConfiguration`
//! - `lifecycleConfiguration`
//! - `metadataConfiguration`
//! - `environmentVariables`
//! - `filesystemConfigurations`
//! - `capacityProviderConfiguration`
//! - `platformVersion`
//! - `allowedPorts`
//!
//! Not carried: `agentRuntimeId` names the runtime (the manifest's `runtime_id`), and
//! `clientToken` is the SDK-generated idempotency token of the one call. The response fields
//! `agentRuntimeArn`, `agentRuntimeName`, `agentRuntimeId`, `agentRuntimeVersion`, `createdAt`,
//! `lastUpdatedAt`, `status`, `failureReason` and `workloadIdentityDetails` are read-only.
//!
//! Three guards keep it that way:
//!
//! - the tests hold the field tables against the SDK: every field of `UpdateAgentRuntimeInput`
//!   and of `GetAgentRuntimeOutput` must be listed as carried over, not carried (with a reason)
//!   or read-only, so an SDK upgrade that adds a field fails a test until it is handled;
//! - a fixture `GetAgentRuntime` response with every field set is replayed and the exact
//!   `UpdateAgentRuntime` body is compared with it;
//! - at run time, the raw JSON of the `GetAgentRuntime` the update is built from is kept, and
//!   the update is checked against it before anything is sent. A top-level member this build's
//!   SDK does not model (AWS added a field since the SDK was generated) stops the deploy; so does
//!   any carried-over member, at any depth, that the serialized update would not send back
//!   exactly as read (a nested member the SDK skipped, e.g. a new member of
//!   `customJWTAuthorizer`). Either way the runtime is left as it was and the error
//!   ([`DeployError::Mismatch`]) names the members and asks for an upgrade. (A union variant the
//!   SDK does not know cannot be serialized at all, so the SDK refuses such an update itself.)
//!
//! # Runtime states
//!
//! [`Deployer::read_live`] waits first when the runtime is `CREATING` or `UPDATING` (another
//! deploy may be in flight), using the policy of [`AgentcoreDeployer::with_poll_policy`] (the
//! default: 15 minutes); [`Deployer::apply`] reads the runtime again and does the same, so the
//! configuration it sends back is the settled one. A runtime in `UPDATE_FAILED` is updated (a
//! failed deploy is retried, never reported unchanged); `CREATE_FAILED`, `DELETING`,
//! `DELETE_FAILED` and unknown states are refused. [`Deployer::wait`] polls until `READY` at
//! the new version (or a later one) on the new container URI; `READY` at such a version on
//! another image means another deploy replaced this one and is a failure naming what runs,
//! and any `*_FAILED` state fails with the runtime's `failureReason`. Transient
//! errors while waiting (throttling, server errors, timeouts) are retried by the SDK and then by
//! the poll loop.
//!
//! # The deploy lock
//!
//! Each `UpdateAgentRuntime` (each retry after a conflict too) is preceded by
//! `Progress::before_mutation`: a run that lost its deploy lock gets `DeployError::Fenced`
//! back and sends nothing.
//!
//! # Secrets
//!
//! Environment variable values are secrets. Summaries, progress events and errors name the
//! variables but never show values; text that comes from AWS (error messages, failure reasons)
//! has the values replaced by `***` before it is returned. Nothing in this crate holds the
//! values beyond one call, and nothing it defines prints them in its `Debug` output.
#![warn(missing_docs)]

mod endpoints;
mod fields;
mod logs;
mod raw;
mod request;
#[cfg(test)]
mod tests;

pub use logs::log_group;

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_bedrockagentcorecontrol::Client;
use aws_sdk_bedrockagentcorecontrol::operation::get_agent_runtime::GetAgentRuntimeOutput;
use aws_sdk_bedrockagentcorecontrol::types::AgentRuntimeStatus;
use deployer_aws::{ErrorClass, Failure, Redactor, ResponseRecorder};
use deployer_core::manifest::AgentcoreTarget;
use deployer_core::poll::{Poll, PollPolicy, StateLog, poll_until};
use deployer_core::{
    Applied, Artifact, DeployError, Deployer, LiveState, Phase, Progress, one_line,
};
use std::time::Instant;

const GET: &str = "GetAgentRuntime";
const UPDATE: &str = "UpdateAgentRuntime";

/// How many times [`Deployer::apply`] reads and updates again when the update collides with
/// another update that started in between (`ConflictException`).
const CONFLICT_ATTEMPTS: usize = 3;

/// The keys of [`LiveState::ids`] and [`Applied::ids`] for AgentCore runtimes: the record
/// format of `deploy-state` and of the cli's `--json` output.
///
/// Live state: [`RUNTIME_ID`](ids::RUNTIME_ID), [`VERSION`](ids::VERSION),
/// [`STATUS`](ids::STATUS) and, when AgentCore reports it, [`ARN`](ids::ARN). Applied:
/// `RUNTIME_ID`, [`OLD_VERSION`](ids::OLD_VERSION), `VERSION` (the version the update made,
/// the one it settled at after the wait) and `ARN`.
pub mod ids {
    use std::collections::BTreeMap;

    /// The runtime id (the manifest's `runtime_id`).
    pub const RUNTIME_ID: &str = "runtime_id";
    /// `agentRuntimeVersion`: the live one, or the one the update made.
    pub const VERSION: &str = "version";
    /// Applied: the version the update replaced.
    pub const OLD_VERSION: &str = "old_version";
    /// Live: the runtime's status (`READY`, `UPDATING`, `UPDATE_FAILED`, …).
    pub const STATUS: &str = "status";
    /// `agentRuntimeArn`.
    pub const ARN: &str = "arn";
    /// Applied: the rollout moves only the named endpoints (a rollback to a version that still
    /// exists); the runtime was not updated. Never recorded: `wait` drops it.
    pub const ENDPOINTS_ONLY: &str = "endpoints_only";
    /// Live, per named endpoint `<name>` (`endpoint.<name>.status`, see [`endpoint_key`]):
    /// the endpoint's status (`READY`, `UPDATING`, `UPDATE_FAILED`, …).
    pub const ENDPOINT_STATUS: &str = "status";
    /// Live, per named endpoint: `liveVersion`, the version serving requests.
    pub const ENDPOINT_LIVE_VERSION: &str = "live_version";
    /// Live, per named endpoint: `targetVersion`, the version it is being moved to (the live
    /// one once settled).
    pub const ENDPOINT_TARGET_VERSION: &str = "target_version";
    /// Live, per named endpoint: the container URI its live version runs.
    pub const ENDPOINT_IMAGE: &str = "image";
    /// The prefix of the per-endpoint keys.
    const ENDPOINT_PREFIX: &str = "endpoint.";

    /// The key of `field` of the named endpoint `name`: `endpoint.<name>.<field>`.
    pub fn endpoint_key(name: &str, field: &str) -> String {
        format!("{ENDPOINT_PREFIX}{name}.{field}")
    }

    /// One named endpoint as the live state reports it.
    #[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
    pub struct Endpoint {
        /// The endpoint's name.
        pub name: String,
        /// Its status.
        pub status: Option<String>,
        /// The version serving requests.
        pub live_version: Option<String>,
        /// The version it is being moved to (the live one once settled).
        pub target_version: Option<String>,
        /// The container URI its live version runs.
        pub image: Option<String>,
    }

    /// The named endpoints the live state `ids` reports, by name.
    pub fn endpoints(ids: &BTreeMap<String, String>) -> Vec<Endpoint> {
        let mut endpoints: BTreeMap<&str, Endpoint> = BTreeMap::new();
        for (key, value) in ids {
            let Some((name, field)) = key
                .strip_prefix(ENDPOINT_PREFIX)
                .and_then(|rest| rest.rsplit_once('.'))
            else {
                continue;
            };
            let endpoint = endpoints.entry(name).or_insert_with(|| Endpoint {
                name: name.to_owned(),
                ..Endpoint::default()
            });
            let slot = match field {
                ENDPOINT_STATUS => &mut endpoint.status,
                ENDPOINT_LIVE_VERSION => &mut endpoint.live_version,
                ENDPOINT_TARGET_VERSION => &mut endpoint.target_version,
                ENDPOINT_IMAGE => &mut endpoint.image,
                _ => continue,
            };
            *slot = Some(value.clone());
        }
        endpoints.into_values().collect()
    }

    /// The ARN to invoke the runtime by: [`ARN`] without a `:version…` qualifier. `None` when
    /// the ids carry no ARN.
    pub fn runtime_arn(ids: &BTreeMap<String, String>) -> Option<&str> {
        let arn = ids.get(ARN)?;
        arn.split(":version").next()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_runtime_arn_has_no_version_qualifier() {
            let arn = "arn:aws:bedrock-agentcore:us-east-1:1:runtime/a-1";
            for recorded in [arn.to_owned(), format!("{arn}:version/8")] {
                let ids = BTreeMap::from([(ARN.to_owned(), recorded)]);
                assert_eq!(runtime_arn(&ids), Some(arn));
            }
            assert_eq!(runtime_arn(&BTreeMap::new()), None);
        }

        #[test]
        fn endpoints_are_read_back_by_name() {
            let ids = BTreeMap::from([
                (VERSION.to_owned(), "3".to_owned()),
                (endpoint_key("prod", ENDPOINT_STATUS), "READY".to_owned()),
                (endpoint_key("prod", ENDPOINT_LIVE_VERSION), "2".to_owned()),
                (
                    endpoint_key("prod", ENDPOINT_TARGET_VERSION),
                    "3".to_owned(),
                ),
                (
                    endpoint_key("beta_1", ENDPOINT_LIVE_VERSION),
                    "3".to_owned(),
                ),
            ]);
            assert_eq!(
                endpoints(&ids),
                [
                    Endpoint {
                        name: "beta_1".into(),
                        live_version: Some("3".into()),
                        ..Endpoint::default()
                    },
                    Endpoint {
                        name: "prod".into(),
                        status: Some("READY".into()),
                        live_version: Some("2".into()),
                        target_version: Some("3".into()),
                        image: None,
                    },
                ]
            );
        }
    }
}

/// Deploys container images to one AgentCore runtime.
#[derive(Clone)]
pub struct AgentcoreDeployer {
    client: Client,
    target: AgentcoreTarget,
    in_flight_policy: PollPolicy,
}

/// The target and policy only: the client's configuration is the caller's business.
impl std::fmt::Debug for AgentcoreDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentcoreDeployer")
            .field("target", &self.target)
            .field("in_flight_policy", &self.in_flight_policy)
            .finish_non_exhaustive()
    }
}

impl AgentcoreDeployer {
    /// A deployer for the runtime `target.runtime_id`, calling AgentCore through `client`.
    pub fn new(client: Client, target: AgentcoreTarget) -> Self {
        AgentcoreDeployer {
            client,
            target,
            in_flight_policy: PollPolicy::default(),
        }
    }

    /// How long and how often [`Deployer::read_live`] and [`Deployer::apply`] wait for an
    /// update that is already in flight (`CREATING`, `UPDATING`) before they go on; default
    /// [`PollPolicy::default`] (15 minutes). The rollout's own wait uses the policy given to
    /// [`Deployer::wait`].
    pub fn with_poll_policy(mut self, policy: PollPolicy) -> Self {
        self.in_flight_policy = policy;
        self
    }

    fn runtime_id(&self) -> &str {
        &self.target.runtime_id
    }

    /// One `GetAgentRuntime`; `recorder` keeps the raw response.
    async fn get(
        &self,
        recorder: Option<&ResponseRecorder>,
    ) -> Result<GetAgentRuntimeOutput, Failure> {
        let mut call = self
            .client
            .get_agent_runtime()
            .agent_runtime_id(self.runtime_id())
            .customize();
        if let Some(recorder) = recorder {
            call = call.interceptor(recorder.clone());
        }
        call.send()
            .await
            .map_err(|error| Failure::new(&error, &Redactor::default()))
    }

    /// The error of a failed `GetAgentRuntime`: a missing runtime is [`DeployError::NotFound`].
    fn get_failed(&self, failure: Failure) -> DeployError {
        if failure.class == ErrorClass::NotFound {
            return DeployError::NotFound {
                what: self.target(),
                hint: "check `runtime_id` in deployer.toml, and the account and region \
                       (AWS_PROFILE, AWS_REGION)"
                    .into(),
            };
        }
        failure.into_error(GET)
    }

    /// Reads the runtime; when an update is in flight, waits until it settled (in any state).
    async fn read_settled(
        &self,
        progress: Option<&Progress>,
        recorder: Option<&ResponseRecorder>,
    ) -> Result<GetAgentRuntimeOutput, DeployError> {
        // The first read fails at once on any error: a wrong endpoint or missing permission
        // should not be waited out.
        let first = self
            .get(recorder)
            .await
            .map_err(|failure| self.get_failed(failure))?;
        if classify(first.status()) != Status::InFlight {
            return Ok(first);
        }
        let what = format!("the update in flight on {} to settle", self.target());
        if let Some(progress) = progress {
            progress.emit(
                Phase::Wait,
                format!("waiting for an update in flight: {}", state_line(&first)),
            );
        }
        self.poll(
            &what,
            &self.in_flight_policy,
            progress,
            recorder,
            |live, state| {
                Ok(match classify(live.status()) {
                    Status::InFlight => Verdict::Pending(state.to_owned()),
                    _ => Verdict::Done,
                })
            },
        )
        .await
    }

    /// Polls `GetAgentRuntime` until `decide` says done, fails, or `policy` runs out.
    /// Transient errors count as a pending state; state changes are reported as progress.
    async fn poll<F>(
        &self,
        what: &str,
        policy: &PollPolicy,
        progress: Option<&Progress>,
        recorder: Option<&ResponseRecorder>,
        decide: F,
    ) -> Result<GetAgentRuntimeOutput, DeployError>
    where
        F: Fn(&GetAgentRuntimeOutput, &str) -> Result<Verdict, DeployError> + Sync,
    {
        let log = StateLog::default();
        let (log, decide) = (&log, &decide);
        poll_until(what, policy, || async move {
            let live = match self.get(recorder).await {
                Ok(live) => live,
                Err(failure) if failure.is_retryable() => {
                    let error = failure.into_error(GET);
                    return Ok(Poll::Pending(format!("{error} (retrying)")));
                }
                Err(failure) => return Err(self.get_failed(failure)),
            };
            let state = state_line(&live);
            if log.note(&state)
                && let Some(progress) = progress
            {
                progress.emit(Phase::Wait, state.as_str());
            }
            Ok(match decide(&live, &state)? {
                Verdict::Done => Poll::Ready(live),
                Verdict::Pending(state) => Poll::Pending(state),
            })
        })
        .await
        .map_err(|error| error.into_deploy_error(log.states()))
    }

    /// Refuses runtimes an update cannot sensibly be sent to.
    fn check_updatable(&self, live: &GetAgentRuntimeOutput) -> Result<(), DeployError> {
        let status = live.status();
        if status.as_str().is_empty() || status.as_str() == SDK_MISSING_ENUM {
            return Err(DeployError::MissingField {
                operation: GET,
                field: "status",
            });
        }
        match classify(status) {
            Status::Ready | Status::InFlight => Ok(()),
            Status::Failed if *status == AgentRuntimeStatus::UpdateFailed => Ok(()),
            Status::Failed => {
                let reason = failure_reason(live);
                Err(DeployError::Mismatch(format!(
                    "{} is {status}: {reason}; it cannot be updated (recreate it)",
                    self.target()
                )))
            }
            Status::Deleting => Err(DeployError::Mismatch(format!(
                "{} is being deleted ({status})",
                self.target()
            ))),
            Status::Unknown => Err(DeployError::Mismatch(format!(
                "{} is in state {status}, which this build of deployer does not know; upgrade deployer",
                self.target()
            ))),
        }
    }

    /// Refuses to update when the raw response had members the SDK does not model.
    fn check_members(&self, recorder: &ResponseRecorder) -> Result<(), DeployError> {
        let Some(raw) = recorder.recorded() else {
            return Ok(());
        };
        let unknown: Vec<String> = raw
            .members()
            .into_iter()
            .filter(|member| !fields::is_known_response_member(member))
            .map(|member| format!("`{member}`"))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(DeployError::Mismatch(format!(
            "{GET} returned fields this build of deployer does not know ({}); {UPDATE} replaces the whole \
             configuration and would reset them, so {} was not updated: upgrade deployer",
            unknown.join(", "),
            self.target()
        )))
    }

    /// The update would not have sent back what was read at `paths`.
    fn dropped(&self, paths: &[String]) -> DeployError {
        DeployError::Mismatch(format!(
            "{UPDATE} would not send back what {GET} returned at {}: this build of deployer (its AWS \
             SDK) does not know these fields and the update would reset them, so {} was not updated: \
             upgrade deployer",
            paths
                .iter()
                .map(|path| format!("`{path}`"))
                .collect::<Vec<_>>()
                .join(", "),
            self.target()
        ))
    }

    fn live_state(&self, live: &GetAgentRuntimeOutput) -> Result<LiveState, DeployError> {
        let uri = request::container_uri(live, self.runtime_id())?;
        if live.agent_runtime_version().is_empty() {
            return Err(DeployError::MissingField {
                operation: GET,
                field: "agentRuntimeVersion",
            });
        }
        let mut ids = BTreeMap::new();
        let runtime_id = if live.agent_runtime_id().is_empty() {
            self.runtime_id()
        } else {
            live.agent_runtime_id()
        };
        ids.insert(ids::RUNTIME_ID.to_owned(), runtime_id.to_owned());
        ids.insert(
            ids::VERSION.to_owned(),
            live.agent_runtime_version().to_owned(),
        );
        ids.insert(ids::STATUS.to_owned(), live.status().as_str().to_owned());
        if !live.agent_runtime_arn().is_empty() {
            ids.insert(ids::ARN.to_owned(), live.agent_runtime_arn().to_owned());
        }
        Ok(LiveState {
            artifact: Some(uri.to_owned()),
            ids,
            summary: format!("{}, {uri}, {}", state_line(live), environment_names(live)),
        })
    }
}

#[async_trait]
impl Deployer for AgentcoreDeployer {
    fn target(&self) -> String {
        format!("AgentCore runtime {}", self.runtime_id())
    }

    /// The runtime's `failureReason` when it failed ([`logs`]).
    async fn diagnose(&self, applied: &Applied) -> deployer_core::Diagnosis {
        let _ = applied;
        self.diagnosis().await
    }

    /// The runtime's log group ([`log_group`]).
    async fn log_sources(
        &self,
        live: &LiveState,
    ) -> Result<Vec<deployer_core::LogSource>, DeployError> {
        let _ = live;
        self.log_source().await
    }

    /// `GetAgentRuntime`, after waiting out an update in flight. `ids`: `runtime_id`,
    /// `version`, `status` and `arn`.
    async fn read_live(&self) -> Result<LiveState, DeployError> {
        let live = self.read_settled(None, None).await?;
        self.check_updatable(&live)?;
        let mut state = self.live_state(&live)?;
        self.add_endpoints(&live, &mut state).await?;
        Ok(state)
    }

    /// The runtime's `aws:cloudformation:stack-name` tag: `GetAgentRuntime` for its ARN, then
    /// `ListTagsForResource`.
    async fn owning_stack(&self) -> Result<Option<String>, DeployError> {
        let live = self
            .get(None)
            .await
            .map_err(|failure| self.get_failed(failure))?;
        let tags = self
            .client
            .list_tags_for_resource()
            .resource_arn(live.agent_runtime_arn())
            .send()
            .await
            .map_err(|error| {
                Failure::new(&error, &Redactor::default()).into_error("ListTagsForResource")
            })?;
        Ok(tags
            .tags()
            .and_then(|tags| tags.get(deployer_core::STACK_NAME_TAG))
            .cloned())
    }

    /// Current only when the runtime is `READY` on the wanted image (after `UPDATE_FAILED`
    /// the runtime may report the image it failed to roll to) and every named endpoint is
    /// `READY` on the runtime's version.
    fn is_current(&self, live: &LiveState, wanted: &Artifact) -> bool {
        live.ids
            .get(ids::STATUS)
            .is_some_and(|status| status == AgentRuntimeStatus::Ready.as_str())
            && live.runs(wanted)
            && self.endpoints_current(live)
    }

    /// With named endpoints, what they serve: each `READY` on a version that runs
    /// `artifact` (a rollback moves them back without updating the runtime).
    fn serves(&self, live: &LiveState, artifact: &Artifact) -> bool {
        if self.target.endpoints.is_empty() {
            return self.is_current(live, artifact);
        }
        self.endpoints_serve(live, artifact)
    }

    /// With named endpoints, a rollback to a recorded version that still exists and still
    /// runs the recorded image moves the endpoints back to it and leaves the runtime alone.
    async fn revert(
        &self,
        live: &LiveState,
        previous: &Applied,
        progress: &Progress,
    ) -> Result<Option<Applied>, DeployError> {
        self.revert_endpoints(live, previous, progress).await
    }

    /// Reads the runtime again (waiting out an update in flight) and sends it back whole with
    /// the new container URI, after `Progress::before_mutation`. `ids`: `runtime_id`,
    /// `old_version`, `version`, `arn`.
    async fn apply(
        &self,
        _live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let new_uri = wanted.deploy_id();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let recorder = ResponseRecorder::default();
            let current = self.read_settled(Some(progress), Some(&recorder)).await?;
            self.check_updatable(&current)?;
            self.check_members(&recorder)?;
            let old_uri = request::container_uri(&current, self.runtime_id())?.to_owned();
            let old_version = current.agent_runtime_version().to_owned();
            if !self.target.endpoints.is_empty()
                && *current.status() == AgentRuntimeStatus::Ready
                && wanted.matches_live(&old_uri)
            {
                // Only the endpoints are behind: `wait` moves them.
                progress.emit(
                    Phase::Apply,
                    format!(
                        "{} is READY on {old_uri} at version {old_version}: not updated; moving its endpoints",
                        self.target()
                    ),
                );
                let mut ids = BTreeMap::new();
                ids.insert(ids::RUNTIME_ID.to_owned(), self.runtime_id().to_owned());
                ids.insert(ids::OLD_VERSION.to_owned(), old_version.clone());
                ids.insert(ids::VERSION.to_owned(), old_version);
                if !current.agent_runtime_arn().is_empty() {
                    ids.insert(ids::ARN.to_owned(), current.agent_runtime_arn().to_owned());
                }
                return Ok(Applied {
                    old_artifact: Some(old_uri),
                    new_artifact: new_uri,
                    ids,
                });
            }
            let update =
                request::update_request(&self.client, self.runtime_id(), &current, &new_uri)?;
            progress.emit(
                Phase::Apply,
                format!(
                    "{UPDATE} {} from version {old_version}: {old_uri} -> {new_uri}; carrying over {}",
                    self.runtime_id(),
                    carried_summary(&current)
                ),
            );
            let redactor = redactor(&current);
            drop(current);
            let check = recorder
                .recorded()
                .map(|raw| raw::body_check(&raw, &new_uri));
            let mut update = update.customize();
            if let Some(check) = &check {
                update = update.interceptor(check.clone());
            }
            progress.before_mutation(UPDATE)?;
            let output = match update.send().await {
                Ok(output) => output,
                Err(error) => {
                    if let Some(paths) = check.as_ref().and_then(deployer_aws::BodyCheck::problem) {
                        return Err(self.dropped(&paths));
                    }
                    let error = Failure::new(&error, &redactor).into_error(UPDATE);
                    let conflict = matches!(&error, DeployError::Api { code: Some(code), .. } if code == "ConflictException");
                    if conflict && attempt < CONFLICT_ATTEMPTS {
                        progress.emit(
                            Phase::Apply,
                            format!("{error} (another update started; reading again)"),
                        );
                        continue;
                    }
                    return Err(error);
                }
            };
            let mut ids = BTreeMap::new();
            ids.insert(ids::RUNTIME_ID.to_owned(), self.runtime_id().to_owned());
            ids.insert(ids::OLD_VERSION.to_owned(), old_version);
            if !output.agent_runtime_version().is_empty() {
                ids.insert(
                    ids::VERSION.to_owned(),
                    output.agent_runtime_version().to_owned(),
                );
            }
            if !output.agent_runtime_arn().is_empty() {
                ids.insert(ids::ARN.to_owned(), output.agent_runtime_arn().to_owned());
            }
            progress.emit(
                Phase::Apply,
                format!(
                    "{UPDATE} accepted: {} (version {})",
                    output.status(),
                    output.agent_runtime_version()
                ),
            );
            return Ok(Applied {
                old_artifact: Some(old_uri),
                new_artifact: new_uri,
                ids,
            });
        }
    }

    /// Polls `GetAgentRuntime` until `READY` at the updated version (or a later one) on the
    /// new container URI. `READY` at that version or a later one on another image is a
    /// [`DeployError::RolloutFailed`]: another deploy replaced this one. Then every named
    /// endpoint is moved to that version and polled until it serves it, within the same
    /// `policy.timeout` (a rollback through the endpoints alone skips the runtime's wait).
    async fn wait(
        &self,
        applied: &Applied,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let started = Instant::now();
        if applied.ids.contains_key(ids::ENDPOINTS_ONLY) {
            let version = applied.ids.get(ids::VERSION).ok_or_else(|| {
                DeployError::Mismatch("the rollback names no runtime version".into())
            })?;
            self.roll_endpoints(version, policy, started, progress, &Redactor::default())
                .await?;
            let mut applied = applied.clone();
            applied.ids.remove(ids::ENDPOINTS_ONLY);
            return Ok(applied);
        }
        let expected = applied
            .ids
            .get(ids::VERSION)
            .filter(|version| !version.is_empty());
        let what = match expected {
            Some(version) => format!("{} to be READY at version {version}", self.target()),
            None => format!("{} to be READY on {}", self.target(), applied.new_artifact),
        };
        let live = self
            .poll(
                &what,
                policy,
                Some(progress),
                None,
                |live, state| match classify(live.status()) {
                    Status::Ready => {
                        match reached(live, expected.map(String::as_str), &applied.new_artifact) {
                            Reached::Yes => Ok(Verdict::Done),
                            Reached::NotYet => Ok(Verdict::Pending(format!(
                                "{state}, the update is not visible yet"
                            ))),
                            Reached::Replaced(running) => Err(DeployError::RolloutFailed {
                                reason: format!(
                                    "{} is READY at version {} on {running}, not on {}{}: another deploy replaced this one; deploy again if this image should run",
                                    self.target(),
                                    live.agent_runtime_version(),
                                    applied.new_artifact,
                                    expected
                                        .map(|v| format!(" (this deploy made version {v})"))
                                        .unwrap_or_default(),
                                ),
                                events: Vec::new(),
                            }),
                        }
                    }
                    Status::Failed => Err(DeployError::RolloutFailed {
                        reason: format!(
                            "{} is {}: {}",
                            self.target(),
                            live.status(),
                            failure_reason(live)
                        ),
                        events: Vec::new(),
                    }),
                    Status::Deleting => Err(DeployError::RolloutFailed {
                        reason: format!("{} is being deleted ({})", self.target(), live.status()),
                        events: Vec::new(),
                    }),
                    Status::InFlight | Status::Unknown => Ok(Verdict::Pending(state.to_owned())),
                },
            )
            .await?;
        if !self.target.endpoints.is_empty() {
            let version = live.agent_runtime_version();
            if version.is_empty() {
                return Err(DeployError::MissingField {
                    operation: GET,
                    field: "agentRuntimeVersion",
                });
            }
            self.roll_endpoints(version, policy, started, progress, &redactor(&live))
                .await?;
        }
        let mut applied = applied.clone();
        if !live.agent_runtime_version().is_empty() {
            applied.ids.insert(
                ids::VERSION.to_owned(),
                live.agent_runtime_version().to_owned(),
            );
        }
        if !live.agent_runtime_arn().is_empty() {
            applied
                .ids
                .insert(ids::ARN.to_owned(), live.agent_runtime_arn().to_owned());
        }
        Ok(applied)
    }
}

/// What the SDK puts in a required enum the response left out.
const SDK_MISSING_ENUM: &str = "no value was set";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// `CREATING`, `UPDATING`.
    InFlight,
    /// `READY`.
    Ready,
    /// `CREATE_FAILED`, `UPDATE_FAILED`, `DELETE_FAILED` and any other `*_FAILED`.
    Failed,
    /// `DELETING`.
    Deleting,
    /// A state this build does not know.
    Unknown,
}

fn classify(status: &AgentRuntimeStatus) -> Status {
    match status {
        AgentRuntimeStatus::Creating | AgentRuntimeStatus::Updating => Status::InFlight,
        AgentRuntimeStatus::Ready => Status::Ready,
        AgentRuntimeStatus::Deleting => Status::Deleting,
        AgentRuntimeStatus::CreateFailed
        | AgentRuntimeStatus::UpdateFailed
        | AgentRuntimeStatus::DeleteFailed => Status::Failed,
        other if other.as_str().ends_with("_FAILED") => Status::Failed,
        _ => Status::Unknown,
    }
}

/// What one poll decided.
enum Verdict {
    Done,
    Pending(String),
}

/// `UPDATING (version 8)`.
fn state_line(live: &GetAgentRuntimeOutput) -> String {
    format!(
        "{} (version {})",
        live.status(),
        live.agent_runtime_version()
    )
}

/// The runtime's failure reason with secret values redacted, in one line.
fn failure_reason(live: &GetAgentRuntimeOutput) -> String {
    match live
        .failure_reason()
        .map(str::trim)
        .filter(|reason| !reason.is_empty())
    {
        Some(reason) => redactor(live).apply(&one_line(reason)),
        None => "AgentCore gave no failure reason".to_owned(),
    }
}

/// The redactor for the runtime's environment variable values.
fn redactor(live: &GetAgentRuntimeOutput) -> Redactor {
    Redactor::new(
        live.environment_variables()
            .into_iter()
            .flat_map(HashMap::values),
    )
}

/// What a `READY` runtime says about the update.
#[derive(Debug, PartialEq, Eq)]
enum Reached {
    /// It runs the new container URI at the expected version or a later one.
    Yes,
    /// It does not show the update yet (an earlier version).
    NotYet,
    /// At the expected version or a later one it runs something else (named here): another
    /// deploy replaced this one.
    Replaced(String),
}

/// Whether a `READY` runtime shows the update: the new container URI at the expected version
/// or a later one. When the update reported no version, only the URI tells, and another URI
/// is "not yet".
fn reached(live: &GetAgentRuntimeOutput, expected: Option<&str>, new_uri: &str) -> Reached {
    let uri = request::container_uri(live, "").ok();
    let runs_new = uri == Some(new_uri);
    let Some(expected) = expected else {
        return if runs_new {
            Reached::Yes
        } else {
            Reached::NotYet
        };
    };
    let version = live.agent_runtime_version();
    let at_or_after = version == expected
        || matches!(
            (version.parse::<u64>(), expected.parse::<u64>()),
            (Ok(version), Ok(expected)) if version > expected
        );
    match (at_or_after, runs_new) {
        (false, _) => Reached::NotYet,
        (true, true) => Reached::Yes,
        (true, false) => {
            Reached::Replaced(uri.map_or_else(|| "no container image".to_owned(), str::to_owned))
        }
    }
}

/// `environment variables A, B (values hidden)`, names only.
fn environment_names(live: &GetAgentRuntimeOutput) -> String {
    let mut names: Vec<&str> = live
        .environment_variables()
        .into_iter()
        .flat_map(|env| env.keys().map(String::as_str))
        .collect();
    if names.is_empty() {
        return "no environment variables".to_owned();
    }
    names.sort_unstable();
    format!("environment variables {} (values hidden)", names.join(", "))
}

/// The carried-over fields the runtime has set, by wire name (environment variables by name).
fn carried_summary(live: &GetAgentRuntimeOutput) -> String {
    let mut set: Vec<String> = Vec::new();
    let mut push = |present: bool, name: &str| {
        if present {
            set.push(name.to_owned());
        }
    };
    push(!live.role_arn().is_empty(), "roleArn");
    push(
        live.network_configuration().is_some(),
        "networkConfiguration",
    );
    push(live.description().is_some(), "description");
    push(
        live.authorizer_configuration().is_some(),
        "authorizerConfiguration",
    );
    push(
        live.request_header_configuration().is_some(),
        "requestHeaderConfiguration",
    );
    push(
        live.protocol_configuration().is_some(),
        "protocolConfiguration",
    );
    push(
        live.lifecycle_configuration().is_some(),
        "lifecycleConfiguration",
    );
    push(
        live.metadata_configuration().is_some(),
        "metadataConfiguration",
    );
    push(
        live.filesystem_configurations.is_some(),
        "filesystemConfigurations",
    );
    push(
        live.capacity_provider_configuration().is_some(),
        "capacityProviderConfiguration",
    );
    push(live.platform_version().is_some(), "platformVersion");
    push(live.allowed_ports.is_some(), "allowedPorts");
    let mut text = set.join(", ");
    if live.environment_variables().is_some() {
        text.push_str(if text.is_empty() { "" } else { ", " });
        text.push_str(&environment_names(live));
    }
    if text.is_empty() {
        "no optional fields".to_owned()
    } else {
        text
    }
}
