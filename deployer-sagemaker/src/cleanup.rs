//! After a successful rollover: delete the endpoint configs and models deployer created for
//! this endpoint that are no longer kept (the rule is in the crate doc).

use std::collections::HashSet;

use aws_sdk_sagemaker::primitives::DateTime;
use aws_sdk_sagemaker::types::{EndpointConfigSortKey, ModelSortKey, OrderKey};
use deployer_core::{DeployError, Phase, Progress};

use crate::copy::{self, OWNER_TAG};
use crate::{MAX_PAGES, SagemakerDeployer, names};
use deployer_aws::{Redactor, api_error};

/// A model or endpoint config as a `List*` call reports it.
#[derive(Clone, Debug)]
struct Listed {
    name: String,
    arn: String,
    created: DateTime,
}

impl SagemakerDeployer {
    /// Deletes what is no longer kept. Failures become progress events, never errors, except
    /// [`DeployError::Fenced`]: the run lost its deploy lock and made no further delete.
    pub(crate) async fn cleanup(
        &self,
        new_config: &str,
        old_config: &str,
        progress: &Progress,
    ) -> Result<(), DeployError> {
        match self.try_cleanup(new_config, old_config, progress).await {
            Err(error @ DeployError::Fenced { .. }) => Err(error),
            Err(error) => {
                progress.emit(
                    Phase::Wait,
                    format!("cleanup of earlier models and endpoint configs stopped: {error}"),
                );
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    async fn try_cleanup(
        &self,
        new_config: &str,
        old_config: &str,
        progress: &Progress,
    ) -> Result<(), DeployError> {
        let prefix = names::prefix(self.endpoint());
        let configs = self.list_configs(&prefix).await?;
        let new_created = match configs.iter().find(|c| c.name == new_config) {
            Some(listed) => Some(listed.created),
            None => self
                .describe_existing_config(new_config)
                .await?
                .and_then(|c| c.creation_time),
        };
        let Some(new_created) = new_created else {
            return Ok(());
        };
        // Earlier configs deployer created for this endpoint, newest first.
        let mut earlier: Vec<Listed> = configs
            .into_iter()
            .filter(|c| c.name != new_config && c.name != old_config)
            .filter(|c| {
                c.name.starts_with(&prefix) && c.created.as_nanos() < new_created.as_nanos()
            })
            .collect();
        earlier.sort_by(|a, b| {
            b.created
                .as_nanos()
                .cmp(&a.created.as_nanos())
                .then_with(|| b.name.cmp(&a.name))
        });
        let mut owned = Vec::new();
        for config in earlier {
            if self.owned(&config.arn).await? {
                owned.push(config);
            }
        }
        // `keep` earlier configs in all: the previous one, and the newest others.
        let keep_others = self.target.keep.saturating_sub(1).min(owned.len());
        let (kept, doomed) = owned.split_at(keep_others);
        let mut in_use: HashSet<String> = HashSet::new();
        let kept_names = [new_config, old_config]
            .into_iter()
            .map(str::to_owned)
            .chain(kept.iter().map(|c| c.name.clone()));
        for name in kept_names {
            if let Some(config) = self.describe_existing_config(&name).await? {
                for (_, _, variant) in copy::variants(&config) {
                    if let Some(model) = variant.model_name() {
                        in_use.insert(model.to_owned());
                    }
                }
            }
        }
        for config in doomed {
            progress.before_mutation("DeleteEndpointConfig")?;
            match self
                .client
                .delete_endpoint_config()
                .endpoint_config_name(&config.name)
                .send()
                .await
            {
                Ok(_) => progress.emit(
                    Phase::Wait,
                    format!("deleted earlier endpoint config {}", config.name),
                ),
                Err(error) => progress.emit(
                    Phase::Wait,
                    format!(
                        "could not delete earlier endpoint config {}: {}",
                        config.name,
                        api_error("DeleteEndpointConfig", &error, &Redactor::default())
                    ),
                ),
            }
        }
        for model in self.list_models(&prefix).await? {
            if !model.name.starts_with(&prefix)
                || in_use.contains(&model.name)
                || model.created.as_nanos() >= new_created.as_nanos()
                || !self.owned(&model.arn).await?
            {
                continue;
            }
            progress.before_mutation("DeleteModel")?;
            match self
                .client
                .delete_model()
                .model_name(&model.name)
                .send()
                .await
            {
                Ok(_) => {
                    progress.emit(Phase::Wait, format!("deleted earlier model {}", model.name))
                }
                Err(error) => progress.emit(
                    Phase::Wait,
                    format!(
                        "could not delete earlier model {}: {}",
                        model.name,
                        api_error("DeleteModel", &error, &Redactor::default())
                    ),
                ),
            }
        }
        Ok(())
    }

    /// Whether the resource carries deployer's tag for this endpoint.
    async fn owned(&self, arn: &str) -> Result<bool, DeployError> {
        Ok(self
            .list_tags(arn)
            .await?
            .iter()
            .any(|tag| tag.key() == Some(OWNER_TAG) && tag.value() == Some(self.endpoint())))
    }

    /// Endpoint configs whose name contains `prefix`.
    async fn list_configs(&self, prefix: &str) -> Result<Vec<Listed>, DeployError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let output = self
                .client
                .list_endpoint_configs()
                .name_contains(prefix)
                .sort_by(EndpointConfigSortKey::CreationTime)
                .sort_order(OrderKey::Descending)
                .max_results(100)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|error| api_error("ListEndpointConfigs", &error, &Redactor::default()))?;
            out.extend(output.endpoint_configs().iter().filter_map(|c| {
                Some(Listed {
                    name: c.endpoint_config_name()?.to_owned(),
                    arn: c.endpoint_config_arn()?.to_owned(),
                    created: *c.creation_time()?,
                })
            }));
            match output.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Models whose name contains `prefix`.
    async fn list_models(&self, prefix: &str) -> Result<Vec<Listed>, DeployError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let output = self
                .client
                .list_models()
                .name_contains(prefix)
                .sort_by(ModelSortKey::CreationTime)
                .sort_order(OrderKey::Descending)
                .max_results(100)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|error| api_error("ListModels", &error, &Redactor::default()))?;
            out.extend(output.models().iter().filter_map(|m| {
                Some(Listed {
                    name: m.model_name()?.to_owned(),
                    arn: m.model_arn()?.to_owned(),
                    created: *m.creation_time()?,
                })
            }));
            match output.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(out)
    }
}
