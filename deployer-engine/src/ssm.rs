//! The [`Store`] in SSM Parameter Store: `String` parameters, create-if-absent with
//! `Overwrite=false` (SSM answers `ParameterAlreadyExists` to all but one creator), reads
//! batched ten names per `GetParameters`.
//!
//! IAM: `ssm:GetParameter`, `ssm:GetParameters`, `ssm:PutParameter`, `ssm:DeleteParameter`
//! on `<ssm_prefix>/<service>/*`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_ssm::config::http::HttpResponse;
use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::delete_parameter::DeleteParameterError;
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use aws_sdk_ssm::operation::put_parameter::PutParameterError;
use aws_sdk_ssm::types::{Parameter, ParameterType};
use tokio::task::JoinSet;

use crate::store::{Entry, Store, StoreError};

/// SSM's limit of names per `GetParameters`.
const BATCH: usize = 10;

/// SSM Parameter Store, through the given client (its retry settings apply).
#[derive(Clone, Debug)]
pub struct SsmStore {
    client: aws_sdk_ssm::Client,
}

impl SsmStore {
    /// The store behind `client`.
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        SsmStore { client }
    }
}

fn entry(parameter: &Parameter) -> Option<Entry> {
    Some(Entry {
        value: parameter.value()?.to_owned(),
        modified: parameter
            .last_modified_date()
            .and_then(|d| SystemTime::try_from(*d).ok()),
    })
}

fn failed<E>(operation: &'static str, name: &str, error: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    StoreError {
        operation,
        name: name.to_owned(),
        message: deployer_aws::error_line(error),
    }
}

#[async_trait]
impl Store for SsmStore {
    async fn get(&self, name: &str) -> Result<Option<Entry>, StoreError> {
        match self.client.get_parameter().name(name).send().await {
            Ok(output) => Ok(output.parameter().and_then(entry)),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(GetParameterError::ParameterNotFound(_))
                ) =>
            {
                Ok(None)
            }
            Err(error) => Err(failed("GetParameter", name, &error)),
        }
    }

    async fn get_many(&self, names: &[String]) -> Result<BTreeMap<String, Entry>, StoreError> {
        let mut calls = JoinSet::new();
        for chunk in names.chunks(BATCH) {
            let client = self.client.clone();
            let chunk = chunk.to_vec();
            calls.spawn(async move {
                let first = chunk.first().cloned().unwrap_or_default();
                client
                    .get_parameters()
                    .set_names(Some(chunk))
                    .send()
                    .await
                    .map_err(|error| failed("GetParameters", &first, &error))
            });
        }
        let mut found = BTreeMap::new();
        while let Some(joined) = calls.join_next().await {
            let output = joined.map_err(|error| StoreError {
                operation: "GetParameters",
                name: String::new(),
                message: error.to_string(),
            })??;
            // Names that do not exist come back in `InvalidParameters`.
            for parameter in output.parameters() {
                if let (Some(name), Some(entry)) = (parameter.name(), entry(parameter)) {
                    found.insert(name.to_owned(), entry);
                }
            }
        }
        Ok(found)
    }

    async fn put(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(|error| failed("PutParameter", name, &error))?;
        Ok(())
    }

    async fn create(&self, name: &str, value: &str) -> Result<bool, StoreError> {
        match self
            .client
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::String)
            .overwrite(false)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(PutParameterError::ParameterAlreadyExists(_))
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(failed("PutParameter", name, &error)),
        }
    }

    async fn delete(&self, name: &str) -> Result<bool, StoreError> {
        match self.client.delete_parameter().name(name).send().await {
            Ok(_) => Ok(true),
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(DeleteParameterError::ParameterNotFound(_))
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(failed("DeleteParameter", name, &error)),
        }
    }
}
