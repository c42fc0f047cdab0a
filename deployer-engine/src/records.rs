//! What the engine records per service, in the [`Store`]:
//!
//! - `<ssm_prefix>/<service>/image-tag`: the live tag, read back by IaC so that an
//!   infrastructure deploy keeps the image the application pipeline rolled out.
//! - `<ssm_prefix>/<service>/deploy-state`: a small JSON document ([`ServiceState`]): the last
//!   successful deploy and the one before it (the rollback target), a rollout started with
//!   `--no-wait` and not yet confirmed, and the last outcome.
//! - `<ssm_prefix>/<service>/lock`: the deploy lock ([`crate::lock`]).
//!
//! The JSON format is stable: records written by earlier versions read back unchanged.

use std::collections::BTreeMap;
use std::time::SystemTime;

use deployer_core::manifest::Project;
use deployer_core::{Applied, Diagnosis};
use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

/// The parameters of one service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// `<ssm_prefix>/<service>/image-tag`.
    pub tag: String,
    /// `<ssm_prefix>/<service>/deploy-state`.
    pub state: String,
    /// `<ssm_prefix>/<service>/lock`.
    pub lock: String,
}

impl Names {
    /// The parameters of `service` under `project`'s prefix.
    pub fn of(project: &Project, service: &str) -> Self {
        let base = format!("{}/{service}", project.ssm_prefix);
        Names {
            tag: format!("{base}/image-tag"),
            state: format!("{base}/deploy-state"),
            lock: format!("{base}/lock"),
        }
    }
}

/// One successful deploy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    /// The content tag.
    pub tag: String,
    /// The artifact identity written to the service (digest-pinned image URI, or CodeSha256).
    pub artifact: String,
    /// The target's identifiers after the deploy (task definition, version, …).
    #[serde(default)]
    pub ids: BTreeMap<String, String>,
    /// When, RFC 3339.
    pub at: String,
    /// The digests its `FROM` images resolved to (`base_images = "resolve"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bases: BTreeMap<String, String>,
}

/// A rollout started with `--no-wait`, not yet confirmed by `deployer wait`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecord {
    /// The content tag rolled to.
    pub tag: String,
    /// What the update call started.
    pub applied: Applied,
    /// When, RFC 3339.
    pub at: String,
    /// The digests its `FROM` images resolved to (`base_images = "resolve"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bases: BTreeMap<String, String>,
}

/// The last thing a deploy, wait or rollback did to the service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastOutcome {
    /// What was done (`updated`, `failed`, …).
    pub action: String,
    /// The tag it was about.
    pub tag: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The first line of the error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When, RFC 3339.
    pub at: String,
    /// Why the rollout failed, as the target told it then ([`Diagnosis::bounded`] to
    /// [`KEPT_DIAGNOSIS`] bytes): what `status` shows the day after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnosis: Option<Diagnosis>,
}

/// The most JSON a failure's diagnosis may take in the deploy state: the whole state is one
/// standard SSM parameter (4 KB), which also holds the current, previous and pending records.
pub const KEPT_DIAGNOSIS: usize = 1500;

/// `<ssm_prefix>/<service>/deploy-state`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The last successful deploy.
    #[serde(default)]
    pub current: Option<DeployRecord>,
    /// The successful deploy before it: the rollback target.
    #[serde(default)]
    pub previous: Option<DeployRecord>,
    /// A rollout started with `--no-wait`.
    #[serde(default)]
    pub pending: Option<PendingRecord>,
    /// The last outcome.
    #[serde(default)]
    pub last: Option<LastOutcome>,
}

impl ServiceState {
    /// Makes `record` the current deploy; the former current one becomes the rollback target
    /// unless it was the same artifact.
    pub fn succeed(&mut self, record: DeployRecord) {
        if let Some(current) = self.current.take()
            && current.artifact != record.artifact
        {
            self.previous = Some(current);
        }
        self.current = Some(record);
    }

    /// Whether the last successful deploy recorded is `artifact`.
    pub fn names(&self, artifact: &str) -> bool {
        self.current
            .as_ref()
            .is_some_and(|c| c.artifact == artifact)
    }
}

/// The records of one service as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    /// The value of the tag parameter.
    pub tag: Option<String>,
    /// The deploy state (empty when never recorded, or unreadable as JSON: a damaged record
    /// must not block deploys, it is rewritten on the next success).
    pub state: ServiceState,
}

impl Records {
    /// Reads the records of every service in `names`, batched by the store.
    pub async fn read_many(store: &dyn Store, names: &[Names]) -> Result<Vec<Records>, StoreError> {
        let wanted: Vec<String> = names
            .iter()
            .flat_map(|n| [n.tag.clone(), n.state.clone()])
            .collect();
        let found = store.get_many(&wanted).await?;
        Ok(names
            .iter()
            .map(|n| Records {
                tag: found.get(&n.tag).map(|e| e.value.clone()),
                state: found
                    .get(&n.state)
                    .and_then(|e| serde_json::from_str(&e.value).ok())
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// Reads one service's records.
    pub async fn read(store: &dyn Store, names: &Names) -> Result<Records, StoreError> {
        let mut all = Records::read_many(store, std::slice::from_ref(names)).await?;
        Ok(all.pop().unwrap_or_default())
    }
}

/// Writes `tag` unless `before` already is it; returns whether it wrote.
pub(crate) async fn write_tag(
    store: &dyn Store,
    names: &Names,
    before: Option<&str>,
    tag: &str,
) -> Result<bool, StoreError> {
    if before == Some(tag) {
        return Ok(false);
    }
    store.put(&names.tag, tag).await?;
    Ok(true)
}

/// Writes the deploy state when it differs from `before`.
pub(crate) async fn write_state(
    store: &dyn Store,
    names: &Names,
    before: &ServiceState,
    after: &ServiceState,
) -> Result<(), StoreError> {
    if before == after {
        return Ok(());
    }
    let json = serde_json::to_string(after).map_err(|error| StoreError {
        operation: "PutParameter",
        name: names.state.clone(),
        message: error.to_string(),
    })?;
    store.put(&names.state, &json).await
}

/// Now, RFC 3339 in UTC to the second.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tag: &str) -> DeployRecord {
        DeployRecord {
            tag: tag.into(),
            artifact: format!("r/app@sha256:{tag}"),
            ids: BTreeMap::new(),
            at: "2026-01-01T00:00:00Z".into(),
            bases: BTreeMap::new(),
        }
    }

    #[test]
    fn success_keeps_the_one_before_as_rollback_target() {
        let mut state = ServiceState::default();
        state.succeed(record("a"));
        assert_eq!(state.previous, None);
        state.succeed(record("b"));
        assert_eq!(state.previous.as_ref().map(|r| r.tag.as_str()), Some("a"));
        // the same artifact again (a re-record) does not lose the rollback target
        state.succeed(record("b"));
        assert_eq!(state.previous.as_ref().map(|r| r.tag.as_str()), Some("a"));
        assert_eq!(state.current.as_ref().map(|r| r.tag.as_str()), Some("b"));
    }

    /// A deploy-state written by the cli before the engine existed reads back unchanged.
    #[test]
    fn records_of_earlier_versions_stay_readable() {
        let earlier = r#"{"current":{"tag":"c1","artifact":"h/r@sha256:1","ids":{"task_definition":"arn:td:2"},"at":"2026-01-02T00:00:00Z"},"previous":{"tag":"c0","artifact":"h/r@sha256:0","ids":{},"at":"2026-01-01T00:00:00Z"},"pending":{"tag":"c2","applied":{"old_artifact":"h/r@sha256:1","new_artifact":"h/r@sha256:2","ids":{"deployment":"d"}},"at":"2026-01-03T00:00:00Z"},"last":{"action":"failed","tag":"c2","ok":false,"error":"boom","at":"2026-01-03T00:00:00Z"}}"#;
        let state: ServiceState = serde_json::from_str(earlier).unwrap();
        assert_eq!(
            state.current.as_ref().unwrap().ids["task_definition"],
            "arn:td:2"
        );
        assert_eq!(state.previous.as_ref().unwrap().tag, "c0");
        assert_eq!(
            state.pending.as_ref().unwrap().applied.ids["deployment"],
            "d"
        );
        assert_eq!(state.last.as_ref().unwrap().error.as_deref(), Some("boom"));
        let again: ServiceState =
            serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
        assert_eq!(again, state);
        assert_eq!(
            serde_json::from_str::<ServiceState>("{}").unwrap(),
            ServiceState::default()
        );
    }
}
