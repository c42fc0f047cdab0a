//! SSM parameters under a prefix: one per leaf of the source, `SecureString` for the leaves
//! marked secret, deployer's owner mark in the description.
//!
//! SSM has no compare-and-set for an overwrite (a `PutParameter` cannot be made conditional
//! on a version), so "conditional on what the plan read" is as close as SSM allows: a new
//! parameter is created with `Overwrite=false` (a real condition: it fails when one appeared
//! meanwhile); before each group of up to ten overwrites or deletes, the versions are read
//! again (`GetParameters`) and a parameter whose version moved since the plan read stops the
//! deploy before that group is written. The window that remains is one call long. Writes go
//! one at a time, in order, so that nothing is written after a conflict.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_ssm::types::{ParameterStringFilter, ParameterType};
use deployer_core::{DeployError, Progress, progress::Phase};

use crate::aws_error;
use crate::diff::{LiveItem, Op};
use crate::value::Value;

/// The description of a parameter deployer wrote for `owner`.
pub fn owner_mark(owner: &str) -> String {
    format!("deployer:owner={owner}")
}

/// One prefix of parameters.
#[derive(Clone, Debug)]
pub struct Parameters {
    client: aws_sdk_ssm::Client,
    prefix: String,
}

/// What writing a diff did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Parameters written.
    pub put: usize,
    /// Parameters deleted.
    pub deleted: usize,
}

impl Parameters {
    /// The parameters under `prefix` (starting with `/`, no trailing `/`).
    pub fn new(client: aws_sdk_ssm::Client, prefix: String) -> Self {
        Parameters { client, prefix }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn full(&self, id: &str) -> String {
        format!("{}/{id}", self.prefix)
    }

    /// Every parameter under the prefix (values decrypted, to compare), by name below it.
    pub async fn read(&self) -> Result<BTreeMap<String, LiveItem>, DeployError> {
        let mut items = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_parameters_by_path()
                .path(&self.prefix)
                .recursive(true)
                .with_decryption(true)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|error| aws_error::api("GetParametersByPath", &error))?;
            for parameter in page.parameters() {
                let Some(name) = parameter.name() else {
                    continue;
                };
                let Some(id) = name
                    .strip_prefix(&self.prefix)
                    .and_then(|rest| rest.strip_prefix('/'))
                else {
                    continue;
                };
                let kind = parameter
                    .r#type()
                    .map_or("String", |t| t.as_str())
                    .to_owned();
                items.insert(
                    id.to_owned(),
                    LiveItem {
                        id: id.to_owned(),
                        attributes: BTreeMap::from([
                            ("type".to_owned(), Value::String(kind)),
                            (
                                "value".to_owned(),
                                Value::String(parameter.value().unwrap_or_default().to_owned()),
                            ),
                        ]),
                        owner: None,
                        version: Some(parameter.version()),
                    },
                );
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        // The owner marks are in the descriptions, which only DescribeParameters returns.
        let filter = ParameterStringFilter::builder()
            .key("Path")
            .option("Recursive")
            .values(&self.prefix)
            .build()
            .map_err(|error| DeployError::Mismatch(format!("cannot build a filter: {error}")))?;
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .describe_parameters()
                .parameter_filters(filter.clone())
                .max_results(50)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|error| aws_error::api("DescribeParameters", &error))?;
            for metadata in page.parameters() {
                let id = metadata
                    .name()
                    .and_then(|name| name.strip_prefix(&self.prefix))
                    .and_then(|rest| rest.strip_prefix('/'));
                if let (Some(id), Some(description)) = (id, metadata.description())
                    && let Some(item) = items.get_mut(id)
                {
                    item.owner = description
                        .strip_prefix("deployer:owner=")
                        .map(str::to_owned);
                }
            }
            match page.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(items)
    }

    /// Writes `ops` marked with `owner`, in order, groups of up to ten checked first.
    pub async fn write(
        &self,
        ops: &[Op],
        owner: &str,
        progress: &Progress,
    ) -> Result<Written, DeployError> {
        let mut written = Written::default();
        let total = ops.len();
        for group in ops.chunks(10) {
            self.check_versions(group, written.put + written.deleted, total)
                .await?;
            let mut deletes = Vec::new();
            for op in group {
                match op {
                    Op::Put { item, expected } => {
                        let kind = match &item.attributes.get("type") {
                            Some(Value::String(kind)) => ParameterType::from(kind.as_str()),
                            _ => ParameterType::String,
                        };
                        let value = match item.attributes.get("value") {
                            Some(Value::String(value)) => value.clone(),
                            _ => {
                                return Err(DeployError::Mismatch(format!(
                                    "parameter {} has no value",
                                    item.id
                                )));
                            }
                        };
                        self.put(&item.id, kind, value, owner, expected.is_some(), progress)
                            .await
                            .map_err(|error| {
                                conflict_if(error, &item.id, written.put + written.deleted, total)
                            })?;
                        written.put += 1;
                    }
                    Op::Delete { expected } => deletes.push(self.full(&expected.id)),
                }
            }
            if !deletes.is_empty() {
                progress.before_mutation("DeleteParameters")?;
                self.client
                    .delete_parameters()
                    .set_names(Some(deletes.clone()))
                    .send()
                    .await
                    .map_err(|error| aws_error::api("DeleteParameters", &error))?;
                written.deleted += deletes.len();
            }
            progress.emit(
                Phase::Apply,
                format!(
                    "wrote {} of {total} parameters under {}",
                    written.put + written.deleted,
                    self.prefix
                ),
            );
        }
        Ok(written)
    }

    async fn put(
        &self,
        id: &str,
        kind: ParameterType,
        value: String,
        owner: &str,
        overwrite: bool,
        progress: &Progress,
    ) -> Result<(), DeployError> {
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=6 {
            progress.before_mutation("PutParameter")?;
            let sent = self
                .client
                .put_parameter()
                .name(self.full(id))
                .value(value.clone())
                .r#type(kind.clone())
                .description(owner_mark(owner))
                .overwrite(overwrite)
                .send()
                .await;
            match sent {
                Ok(_) => return Ok(()),
                Err(error)
                    if aws_error::code(&error).as_deref() == Some("TooManyUpdates")
                        && attempt < 6 =>
                {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(error) => {
                    let secret: &[&str] = if kind == ParameterType::SecureString {
                        &[value.as_str()]
                    } else {
                        &[]
                    };
                    return Err(aws_error::api_redacted("PutParameter", &error, secret));
                }
            }
        }
        Err(DeployError::api(
            "PutParameter",
            None,
            "no attempt was made",
        ))
    }

    /// Reads the versions of the group's existing parameters again: each must be the one the
    /// plan read.
    async fn check_versions(
        &self,
        group: &[Op],
        done: usize,
        total: usize,
    ) -> Result<(), DeployError> {
        let expected: BTreeMap<String, (&str, i64)> = group
            .iter()
            .filter_map(|op| {
                let held = match op {
                    Op::Put {
                        expected: Some(held),
                        ..
                    }
                    | Op::Delete { expected: held } => held,
                    Op::Put { expected: None, .. } => return None,
                };
                Some((self.full(&held.id), (held.id.as_str(), held.version?)))
            })
            .collect();
        if expected.is_empty() {
            return Ok(());
        }
        let now = self
            .client
            .get_parameters()
            .set_names(Some(expected.keys().cloned().collect()))
            .send()
            .await
            .map_err(|error| aws_error::api("GetParameters", &error))?;
        let versions: BTreeMap<&str, i64> = now
            .parameters()
            .iter()
            .filter_map(|p| Some((p.name()?, p.version())))
            .collect();
        for (name, (id, version)) in &expected {
            if versions.get(name.as_str()) != Some(version) {
                return Err(conflict(id, done, total));
            }
        }
        Ok(())
    }
}

fn conflict(id: &str, done: usize, total: usize) -> DeployError {
    DeployError::RolloutFailed {
        reason: format!(
            "parameter {id} changed since this deploy read it (an out-of-band write): it was not overwritten, and nothing after it was written ({done} of {total} writes were applied before it); run the deploy again to plan from what SSM holds now"
        ),
        events: Vec::new(),
    }
}

/// A create that met an existing parameter is a conflict too.
fn conflict_if(error: DeployError, id: &str, done: usize, total: usize) -> DeployError {
    match &error {
        DeployError::Api {
            code: Some(code), ..
        } if code == "ParameterAlreadyExists" => conflict(id, done, total),
        _ => error,
    }
}
