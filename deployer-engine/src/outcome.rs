//! What a run did to each service: the typed result the caller renders.

use std::collections::BTreeMap;

use deployer_core::Kind;
use serde::Serialize;

use crate::error::EngineError;

/// What was done to one service (or, for a plan, what a deploy would do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Plan: the image must be built, then deployed.
    #[serde(rename = "build+deploy")]
    BuildDeploy,
    /// Plan: the service is behind; a deploy rolls it over.
    Deploy,
    /// Plan: unchanged itself, restarted because a dependency changes.
    Restart,
    /// Plan: the service runs the artifact, the records do not name it yet; a deploy verifies
    /// it (smoke check) and records it.
    Record,
    /// Build: the artifact was built (or a zip packaged).
    Built,
    /// Build: the registry already has it.
    InRegistry,
    /// Build (dry run): it would be built.
    WouldBuild,
    /// The service runs the wanted artifact and the records name it: nothing was changed.
    Unchanged,
    /// The service was rolled over, the rollout succeeded (and its smoke check), recorded.
    Updated,
    /// The service was restarted on its artifact (a dependency changed), and recorded.
    Restarted,
    /// The service already ran the artifact; its rollout was complete and its smoke check
    /// passed, and it is now recorded.
    Recorded,
    /// `--no-wait`: the rollout was started and recorded as pending.
    Started,
    /// Rolled back to the previous successful deploy.
    RolledBack,
    /// `wait`: no rollout was pending.
    NothingPending,
    /// It failed; see the error.
    Failed,
    /// A service it depends on did not deploy.
    Skipped,
    /// Interrupted (Ctrl-C) before it finished.
    Cancelled,
}

impl Action {
    /// The action as the JSON output spells it (`build+deploy`, `rolled_back`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::BuildDeploy => "build+deploy",
            Action::Deploy => "deploy",
            Action::Restart => "restart",
            Action::Record => "record",
            Action::Built => "built",
            Action::InRegistry => "in_registry",
            Action::WouldBuild => "would_build",
            Action::Unchanged => "unchanged",
            Action::Updated => "updated",
            Action::Restarted => "restarted",
            Action::Recorded => "recorded",
            Action::Started => "started",
            Action::RolledBack => "rolled_back",
            Action::NothingPending => "nothing_pending",
            Action::Failed => "failed",
            Action::Skipped => "skipped",
            Action::Cancelled => "cancelled",
        }
    }

    /// Whether the service changed (its dependants restart on a change).
    pub(crate) fn changed(self) -> bool {
        matches!(
            self,
            Action::Updated | Action::Restarted | Action::Started | Action::RolledBack
        )
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the smoke check said.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SmokeResult {
    /// Whether it passed.
    pub ok: bool,
    /// Its output (or why it failed), secrets redacted.
    pub output: String,
    /// When it failed and `rollback_on_smoke_failure` is set: the artifact rolled back to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back_to: Option<String>,
}

/// A failed service's error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// One line (a cause chain joined by `: `).
    pub message: String,
    /// A usage or configuration problem (exit code 2), not a failed deploy (exit code 1).
    #[serde(skip)]
    pub usage: bool,
}

impl Failure {
    pub(crate) fn of(error: &EngineError) -> Self {
        Failure {
            message: error.to_string(),
            usage: error.is_usage(),
        }
    }
}

/// What happened to one service.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceResult {
    /// The service name.
    pub service: String,
    /// Its kind.
    pub kind: Kind,
    /// What was done.
    pub action: Action,
    /// The content tag deployed (or, for rollback and wait, the recorded one acted on).
    pub tag: String,
    /// Whether an image was built in this run.
    pub built: bool,
    /// The artifact identity to deploy (digest-pinned image URI, or CodeSha256).
    pub artifact: Option<String>,
    /// Whether the registry has the image (image services, plan and deploy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_registry: Option<bool>,
    /// The tag recorded before this run.
    pub live_tag: Option<String>,
    /// The artifact that ran before.
    pub old_artifact: Option<String>,
    /// The artifact that runs now (or was rolled to).
    pub new_artifact: Option<String>,
    /// The live state in one line (plan).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_summary: Option<String>,
    /// The target's identifiers.
    pub ids: BTreeMap<String, String>,
    /// `<ssm_prefix>/<service>/image-tag`.
    pub ssm_parameter: String,
    /// Whether this run wrote the tag parameter.
    pub ssm_written: bool,
    /// Milliseconds per step.
    pub durations_ms: BTreeMap<&'static str, u64>,
    /// Milliseconds since the run started: `rollover_started`, `finished`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub timeline: BTreeMap<&'static str, u64>,
    /// The deploy stage (0 first) given by `depends_on`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
    /// Plan: the `FROM` images whose digest moved since the deploy recorded
    /// (`reference: old → new`; `base_images = "resolve"`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moved_bases: Vec<String>,
    /// Plan: what a deploy would write item by item, for targets made of items (a config
    /// set), secrets redacted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<deployer_core::Changes>,
    /// The smoke check, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smoke: Option<SmokeResult>,
    /// Why the rollout failed or timed out, in the target's words (gathered only then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<deployer_core::Diagnosis>,
    /// What went wrong without failing the service (a deploy lock that could not be released).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
}

impl ServiceResult {
    /// Whether a plan found something to do.
    pub fn pending_change(&self) -> bool {
        self.error.is_none() && self.action != Action::Unchanged
    }
}
