//! The [`ConfigDeployer`]: a config set through the `Deployer` shape.
//!
//! - `read_live`: one `GetParameter` of the service's marker `<ssm_prefix>/<service>/config-applied`
//!   (the set last applied completely, and to which table or prefix). The no-op path reads
//!   nothing else.
//! - `apply`: reads the store, diffs, refuses items it does not own (unless `adopt`), keeps
//!   the set's copy in S3 (`<s3_key_prefix><sha256>.json`, before any write: every set a
//!   record names can be restored), writes only the difference, each write conditional.
//! - `wait`: reads the store again and checks that it now holds the set, then writes the
//!   marker. Only then can the engine record the set.
//! - `rollback`: fetches the recorded set's copy, checks its hash, and applies it like any set.
//! - `changes` (plan) and `drift` (status): the diff against the wanted set, or against the
//!   set the marker names.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use deployer_core::manifest::{ConfigStore, ConfigTarget};
use deployer_core::poll::{Poll, PollError, PollPolicy, poll_until};
use deployer_core::progress::Phase;
use deployer_core::{
    Applied, Artifact, Change, Changes, ConfigArtifact, DeployError, Deployer, LiveState, Progress,
};
use serde::{Deserialize, Serialize};

use crate::aws_error;
use crate::diff::{Diff, LiveItem, diff};
use crate::dynamodb::{Retry, Table, TableRead};
use crate::parameters::Parameters;
use crate::set::{self, ConfigSet};

/// The SDK clients a config service needs.
#[derive(Clone, Debug)]
pub struct Clients {
    /// For `dynamodb` stores (may be absent for an `ssm` store).
    pub dynamodb: Option<aws_sdk_dynamodb::Client>,
    /// The marker, and `ssm` stores.
    pub ssm: aws_sdk_ssm::Client,
    /// The kept copies of the sets.
    pub s3: aws_sdk_s3::Client,
}

/// Where a service's own bookkeeping goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The owner mark of its items: `<project>/<service>`.
    pub owner: String,
    /// The marker parameter: `<ssm_prefix>/<service>/config-applied`.
    pub marker: String,
    /// The key prefix of the kept sets in the bucket (ends with `/`).
    pub key_prefix: String,
}

impl Names {
    /// The names of `service` in `project` with `ssm_prefix`; `key_prefix` defaults to
    /// `deployer/<project>/<service>/`.
    pub fn of(project: &str, ssm_prefix: &str, service: &str, key_prefix: Option<&str>) -> Self {
        let key_prefix = key_prefix.map_or_else(
            || format!("deployer/{project}/{service}/"),
            |prefix| {
                if prefix.is_empty() || prefix.ends_with('/') {
                    prefix.to_owned()
                } else {
                    format!("{prefix}/")
                }
            },
        );
        Names {
            owner: format!("{project}/{service}"),
            marker: format!("{ssm_prefix}/{service}/config-applied"),
            key_prefix,
        }
    }
}

/// The marker's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    /// The set's identity (`sha256:<hex>`).
    set: String,
    /// The store it went to: `dynamodb:<table>` or `ssm:<prefix>`.
    store: String,
    /// How many items it has.
    items: usize,
}

enum Store {
    Table(Table),
    Parameters(Parameters),
}

/// What a store holds.
enum Read {
    Table(TableRead),
    Parameters(BTreeMap<String, LiveItem>),
}

impl Read {
    fn items(&self) -> &BTreeMap<String, LiveItem> {
        match self {
            Read::Table(read) => &read.items,
            Read::Parameters(items) => items,
        }
    }
}

/// Deploys config sets to one table or prefix.
pub struct ConfigDeployer {
    target: ConfigTarget,
    store: Store,
    ssm: aws_sdk_ssm::Client,
    s3: aws_sdk_s3::Client,
    names: Names,
    /// The set last applied or fetched by this deployer, by identity.
    sets: Mutex<BTreeMap<String, Arc<ConfigSet>>>,
}

impl std::fmt::Debug for ConfigDeployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigDeployer")
            .field("store", &self.describe())
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl ConfigDeployer {
    /// The deployer of `target` (its lookups resolved). An error when the store's client is
    /// missing.
    pub fn new(clients: Clients, target: ConfigTarget, names: Names) -> Result<Self, DeployError> {
        let store = match &target.store {
            ConfigStore::Dynamodb { table, key } => {
                let client = clients.dynamodb.clone().ok_or_else(|| {
                    DeployError::Mismatch("a DynamoDB store needs a DynamoDB client".into())
                })?;
                Store::Table(Table::new(client, table.clone(), key.clone()))
            }
            ConfigStore::Ssm { prefix } => {
                Store::Parameters(Parameters::new(clients.ssm.clone(), prefix.clone()))
            }
        };
        Ok(ConfigDeployer {
            target,
            store,
            ssm: clients.ssm,
            s3: clients.s3,
            names,
            sets: Mutex::new(BTreeMap::new()),
        })
    }

    /// With another retry policy for throttled transactions (tests).
    pub fn with_retry(mut self, retry: Retry) -> Self {
        if let Store::Table(table) = self.store {
            self.store = Store::Table(table.with_retry(retry));
        }
        self
    }

    fn describe(&self) -> String {
        match &self.store {
            Store::Table(table) => format!("DynamoDB table {}", table.name()),
            Store::Parameters(parameters) => {
                format!("SSM parameters under {}", parameters.prefix())
            }
        }
    }

    fn store_id(&self) -> String {
        match &self.store {
            Store::Table(table) => format!("dynamodb:{}", table.name()),
            Store::Parameters(parameters) => format!("ssm:{}", parameters.prefix()),
        }
    }

    fn copy_key(&self, set_id: &str) -> String {
        let hex = set_id.strip_prefix("sha256:").unwrap_or(set_id);
        format!("{}{hex}.json", self.names.key_prefix)
    }

    async fn read_store(&self) -> Result<Read, DeployError> {
        Ok(match &self.store {
            Store::Table(table) => Read::Table(table.read().await?),
            Store::Parameters(parameters) => Read::Parameters(parameters.read().await?),
        })
    }

    fn diff(&self, set: &ConfigSet, read: &Read) -> Diff {
        diff(
            set,
            read.items(),
            &self.names.owner,
            set.prune,
            self.target.adopt,
        )
    }

    /// The set of an artifact: its own bytes, else the set this deployer holds, else its kept
    /// copy.
    async fn set_of(&self, artifact: &ConfigArtifact) -> Result<Arc<ConfigSet>, DeployError> {
        if !artifact.bytes.is_empty() {
            let set = ConfigSet::from_bytes(&artifact.bytes).map_err(DeployError::Mismatch)?;
            return Ok(self.remember(artifact.id(), set));
        }
        self.fetch(&artifact.id()).await
    }

    fn remember(&self, id: String, set: ConfigSet) -> Arc<ConfigSet> {
        let set = Arc::new(set);
        if let Ok(mut sets) = self.sets.lock() {
            sets.insert(id, set.clone());
        }
        set
    }

    /// The set `id` names: held, or its copy from S3 (checked against its hash).
    async fn fetch(&self, id: &str) -> Result<Arc<ConfigSet>, DeployError> {
        if let Some(set) = self.sets.lock().ok().and_then(|sets| sets.get(id).cloned()) {
            return Ok(set);
        }
        let bucket = &self.target.s3_bucket;
        let key = self.copy_key(id);
        let object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .map_err(|error| {
                if matches!(
                    error.as_service_error(),
                    Some(aws_sdk_s3::operation::get_object::GetObjectError::NoSuchKey(_))
                ) {
                    DeployError::NotFound {
                        what: format!("the kept copy of config set {id} (s3://{bucket}/{key})"),
                        hint: "it is written before every apply; was it deleted from the bucket?"
                            .into(),
                    }
                } else {
                    aws_error::api("GetObject", &error)
                }
            })?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|error| {
                DeployError::api(
                    "GetObject",
                    None,
                    format!("reading s3://{bucket}/{key}: {error}"),
                )
            })?
            .into_bytes();
        let artifact = set::artifact(bytes.to_vec(), 0);
        if artifact.id() != id {
            return Err(DeployError::Mismatch(format!(
                "s3://{bucket}/{key} does not hold config set {id} (its content hashes to {}): it was changed after it was kept",
                artifact.id()
            )));
        }
        let set = ConfigSet::from_bytes(&bytes).map_err(DeployError::Mismatch)?;
        Ok(self.remember(id.to_owned(), set))
    }

    /// Keeps the set's copy under its hash (content-addressed: an object already there is it).
    async fn keep(
        &self,
        artifact: &ConfigArtifact,
        progress: &Progress,
    ) -> Result<(), DeployError> {
        let bucket = &self.target.s3_bucket;
        let key = self.copy_key(&artifact.id());
        let kept = self.s3.head_object().bucket(bucket).key(&key).send().await;
        if kept.is_ok_and(|head| head.content_length() == i64::try_from(artifact.bytes.len()).ok())
        {
            return Ok(());
        }
        progress.emit(
            Phase::Push,
            format!("keeping the set in s3://{bucket}/{key}"),
        );
        progress.before_mutation("PutObject")?;
        self.s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .content_type("application/json")
            .body(ByteStream::from(artifact.bytes.to_vec()))
            .send()
            .await
            .map_err(|error| aws_error::api("PutObject", &error))?;
        Ok(())
    }

    /// Applies `set` (identity `id`): diff, refuse what is not ours, keep the set's copy
    /// (`keep`: a set not kept yet), write the difference.
    async fn apply_set(
        &self,
        live: &LiveState,
        id: &str,
        set: &ConfigSet,
        keep: Option<&ConfigArtifact>,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let read = self.read_store().await?;
        let diff = self.diff(set, &read);
        let not_owned = diff.not_owned();
        if !not_owned.is_empty() {
            let shown: Vec<&str> = not_owned.iter().take(5).copied().collect();
            return Err(DeployError::Mismatch(format!(
                "{} item(s) of the set exist in {} without this service's owner mark (written by IaC, by hand or by another service), so they are not changed: {}{}; nothing was written. Set `adopt = true` to take over unmarked items, or remove them from the source",
                not_owned.len(),
                self.describe(),
                shown.join(", "),
                if not_owned.len() > shown.len() {
                    ", …"
                } else {
                    ""
                }
            )));
        }
        progress.emit(
            Phase::Apply,
            format!("{}: {}", self.describe(), diff.changes.summary()),
        );
        // Kept before the first write: every set a record can name is restorable.
        if let Some(artifact) = keep {
            self.keep(artifact, progress).await?;
        }
        let mut ids = BTreeMap::from([
            ("store".to_owned(), self.store_id()),
            ("items".to_owned(), set.items.len().to_string()),
        ]);
        let (put, deleted) = match (&self.store, &read) {
            (Store::Table(table), Read::Table(read)) => {
                let written = table
                    .write(&diff.ops, read, &self.names.owner, id, progress)
                    .await?;
                ids.insert("transactions".into(), written.transactions.to_string());
                (written.put, written.deleted)
            }
            (Store::Parameters(parameters), Read::Parameters(_)) => {
                let written = parameters
                    .write(&diff.ops, &self.names.owner, progress)
                    .await?;
                (written.put, written.deleted)
            }
            _ => return Err(DeployError::Mismatch("the store changed its kind".into())),
        };
        ids.insert("written".into(), put.to_string());
        ids.insert("deleted".into(), deleted.to_string());
        let kept = diff.changes.count(Change::Kept);
        if kept > 0 {
            ids.insert("kept".into(), kept.to_string());
            progress.emit(
                Phase::Apply,
                format!("{kept} item(s) deployer wrote earlier are no longer in the source and were kept (`prune = true` deletes them)"),
            );
        }
        Ok(Applied {
            old_artifact: live.artifact.clone(),
            new_artifact: id.to_owned(),
            ids,
        })
    }

    async fn marker(&self) -> Result<Option<Marker>, DeployError> {
        match self
            .ssm
            .get_parameter()
            .name(&self.names.marker)
            .send()
            .await
        {
            Ok(output) => {
                let text = output.parameter().and_then(|p| p.value()).ok_or(
                    DeployError::MissingField {
                        operation: "GetParameter",
                        field: "Parameter.Value",
                    },
                )?;
                // A marker that does not parse names no set: the next deploy rewrites it.
                Ok(serde_json::from_str(text).ok())
            }
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(
                        aws_sdk_ssm::operation::get_parameter::GetParameterError::ParameterNotFound(
                            _
                        )
                    )
                ) =>
            {
                Ok(None)
            }
            Err(error) => Err(aws_error::api("GetParameter", &error)),
        }
    }
}

#[async_trait]
impl Deployer for ConfigDeployer {
    fn target(&self) -> String {
        self.describe()
    }

    /// One read: the marker of the set last applied completely.
    async fn read_live(&self) -> Result<LiveState, DeployError> {
        let marker = self.marker().await?;
        let store = self.store_id();
        let ids = BTreeMap::from([("store".to_owned(), store.clone())]);
        Ok(match marker {
            Some(marker) if marker.store == store => LiveState {
                artifact: Some(marker.set.clone()),
                ids,
                summary: format!(
                    "{}: config set {} ({} items) applied",
                    self.describe(),
                    marker
                        .set
                        .strip_prefix("sha256:")
                        .map_or(&*marker.set, |h| &h[..24.min(h.len())]),
                    marker.items
                ),
            },
            Some(marker) => LiveState {
                artifact: None,
                ids,
                summary: format!(
                    "{}: no set applied here (the last one went to {})",
                    self.describe(),
                    marker.store
                ),
            },
            None => LiveState {
                artifact: None,
                ids,
                summary: format!("{}: no set applied by deployer yet", self.describe()),
            },
        })
    }

    async fn apply(
        &self,
        live: &LiveState,
        wanted: &Artifact,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let Artifact::Config(artifact) = wanted else {
            return Err(DeployError::Mismatch(format!(
                "{} deploys config sets, not {wanted}",
                self.describe()
            )));
        };
        let set = self.set_of(artifact).await?;
        let keep = (!artifact.bytes.is_empty()).then_some(artifact);
        self.apply_set(live, &artifact.id(), &set, keep, progress)
            .await
    }

    /// The writes are done when `apply` returns; this reads the store again, checks that it
    /// holds the set, and only then writes the marker.
    async fn wait(
        &self,
        applied: &Applied,
        policy: &PollPolicy,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let set = self.fetch(&applied.new_artifact).await?;
        // A read back that fails after the SDK's retries (throttling, 5xx, a dropped
        // connection) is tried again until the service's timeout, like any status poll.
        let read = poll_until("the read-back of the set", policy, || async {
            match self.read_store().await {
                Ok(read) => Ok(Poll::Ready(read)),
                Err(error @ DeployError::Api { .. }) => Ok(Poll::Pending(format!(
                    "the store could not be read back: {error}"
                ))),
                Err(error) => Err(error),
            }
        })
        .await
        .map_err(|error| match error {
            PollError::Timeout {
                what,
                after,
                last_state,
            } => DeployError::Timeout {
                what,
                after,
                last_state,
                events: Vec::new(),
            },
            PollError::Failed(error) => error,
        })?;
        let diff = self.diff(&set, &read);
        let behind: Vec<String> = diff
            .changes
            .items
            .iter()
            .filter(|i| i.change.writes() || i.change == Change::NotOwned)
            .map(|i| format!("{} ({})", i.item, i.change))
            .collect();
        if !behind.is_empty() {
            let shown: Vec<&str> = behind.iter().take(5).map(String::as_str).collect();
            return Err(DeployError::RolloutFailed {
                reason: format!(
                    "after the writes, {} still differs from the set in {} item(s): {}{} (changed out of band meanwhile?)",
                    self.describe(),
                    behind.len(),
                    shown.join(", "),
                    if behind.len() > shown.len() {
                        ", …"
                    } else {
                        ""
                    }
                ),
                events: Vec::new(),
            });
        }
        let marker = Marker {
            set: applied.new_artifact.clone(),
            store: self.store_id(),
            items: set.items.len(),
        };
        let text = serde_json::to_string(&marker)
            .map_err(|error| DeployError::Mismatch(format!("cannot write the marker: {error}")))?;
        progress.before_mutation("PutParameter")?;
        self.ssm
            .put_parameter()
            .name(&self.names.marker)
            .value(text)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|error| aws_error::api("PutParameter", &error))?;
        progress.emit(
            Phase::Wait,
            format!(
                "{} holds the set ({} items)",
                self.describe(),
                set.items.len()
            ),
        );
        Ok(applied.clone())
    }

    async fn changes(
        &self,
        _live: &LiveState,
        wanted: &Artifact,
    ) -> Result<Option<Changes>, DeployError> {
        let Artifact::Config(artifact) = wanted else {
            return Ok(None);
        };
        let set = self.set_of(artifact).await?;
        let read = self.read_store().await?;
        Ok(Some(self.diff(&set, &read).changes))
    }

    async fn drift(&self, live: &LiveState) -> Result<Option<Changes>, DeployError> {
        let Some(id) = &live.artifact else {
            return Ok(None);
        };
        let set = self.fetch(id).await?;
        let read = self.read_store().await?;
        let mut changes = self.diff(&set, &read).changes;
        changes
            .items
            .retain(|i| !matches!(i.change, Change::Unchanged | Change::Kept));
        Ok(Some(changes))
    }

    /// Back to an earlier set: its kept copy, applied like any set (the engine then waits and
    /// records as after a deploy).
    async fn rollback(
        &self,
        live: &LiveState,
        previous: &Applied,
        progress: &Progress,
    ) -> Result<Applied, DeployError> {
        let set = self.fetch(&previous.new_artifact).await?;
        progress.emit(
            Phase::Apply,
            format!("re-applying config set {}", previous.new_artifact),
        );
        self.apply_set(live, &previous.new_artifact, &set, None, progress)
            .await
    }
}
