//! The raw shape of `deployer.toml`, as serde reads it, and the parsed document with its spans
//! (for locating a key or a value in a message). Nothing here is checked: `validate.rs` turns
//! it into the model.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The parsed document with spans, for locating keys and values in messages.
pub(super) struct Doc<'a, 'i> {
    pub(super) table: &'a Spanned<DeTable<'i>>,
}

impl<'i> Doc<'_, 'i> {
    /// The value at a key path, with its span.
    pub(super) fn get(&self, path: &[&str]) -> Option<&Spanned<DeValue<'i>>> {
        let (last, parents) = path.split_last()?;
        let mut table = self.table.get_ref();
        for key in parents {
            match table.get(*key)?.get_ref() {
                DeValue::Table(inner) => table = inner,
                _ => return None,
            }
        }
        table.get(*last)
    }

    /// The span of the key at `path` (its name in the file), else of its value.
    pub(super) fn key_span(&self, path: &[&str]) -> std::ops::Range<usize> {
        let Some((last, parents)) = path.split_last() else {
            return 0..0;
        };
        let table = if parents.is_empty() {
            Some(self.table.get_ref())
        } else {
            match self.get(parents).map(Spanned::get_ref) {
                Some(DeValue::Table(table)) => Some(table),
                _ => None,
            }
        };
        table
            .and_then(|table| table.get_key_value(*last))
            .map(|(key, _)| key.span())
            .unwrap_or(0..0)
    }

    /// The span of the value at `path`, else of the nearest existing parent.
    pub(super) fn value_span(&self, path: &[&str]) -> std::ops::Range<usize> {
        for len in (1..=path.len()).rev() {
            if let Some(value) = self.get(&path[..len]) {
                return value.span();
            }
        }
        0..0
    }
}

#[derive(Deserialize)]
pub(super) struct RawManifest {
    pub(super) project: RawProject,
    #[serde(default)]
    pub(super) services: BTreeMap<String, RawService>,
    pub(super) ci: Option<RawCi>,
}

#[derive(Deserialize)]
pub(super) struct RawCi {
    pub(super) install: Option<toml::Value>,
}

#[derive(Deserialize)]
pub(super) struct RawProject {
    pub(super) name: String,
    pub(super) region: Option<String>,
    pub(super) ssm_prefix: Option<String>,
    pub(super) registry: Option<toml::Value>,
    pub(super) builder: Option<String>,
    pub(super) codebuild: Option<toml::Value>,
    pub(super) ssm_write: Option<String>,
    pub(super) base_images: Option<String>,
    pub(super) concurrency: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct RawService {
    pub(super) kind: String,
    pub(super) timeout: Option<String>,
    pub(super) poll_interval: Option<String>,
    // image kinds
    pub(super) dockerfile: Option<String>,
    pub(super) context: Option<String>,
    pub(super) platform: Option<String>,
    pub(super) inputs: Option<Vec<String>>,
    pub(super) repository: Option<toml::Value>,
    #[serde(default)]
    pub(super) build_args: BTreeMap<String, String>,
    pub(super) builder: Option<String>,
    pub(super) codebuild: Option<toml::Value>,
    // every kind
    #[serde(default)]
    pub(super) depends_on: Vec<String>,
    pub(super) smoke: Option<RawSmoke>,
    #[serde(default)]
    pub(super) rollback_on_smoke_failure: bool,
    // image kinds: the IaC revert guard
    pub(super) iac: Option<RawIac>,
    // ecs
    pub(super) cluster: Option<toml::Value>,
    pub(super) service: Option<toml::Value>,
    pub(super) container: Option<String>,
    #[serde(default)]
    pub(super) force_new_deployment: bool,
    #[serde(default)]
    pub(super) restart_on_dependency_change: bool,
    // agentcore
    pub(super) runtime_id: Option<toml::Value>,
    pub(super) endpoints: Option<Vec<String>>,
    // sagemaker
    pub(super) endpoint: Option<toml::Value>,
    pub(super) variant: Option<String>,
    pub(super) blue_green: Option<RawBlueGreen>,
    pub(super) keep: Option<i64>,
    // lambda
    pub(super) function: Option<toml::Value>,
    #[serde(default)]
    pub(super) publish: bool,
    pub(super) alias: Option<String>,
    // lambda-zip
    pub(super) source: Option<String>,
    #[serde(default)]
    pub(super) exclude: Vec<String>,
    pub(super) s3_bucket: Option<toml::Value>,
    pub(super) s3_key_prefix: Option<String>,
    // config
    pub(super) schema: Option<String>,
    pub(super) dynamodb: Option<RawDynamodb>,
    pub(super) ssm: Option<RawSsm>,
    #[serde(default)]
    pub(super) secret: Vec<String>,
    #[serde(default)]
    pub(super) prune: bool,
    #[serde(default)]
    pub(super) adopt: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDynamodb {
    pub(super) table: Option<toml::Value>,
    pub(super) key: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSsm {
    pub(super) prefix: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawIac {
    pub(super) cfn_stack: Option<String>,
    pub(super) tf_state: Option<String>,
    pub(super) address: Option<String>,
    #[serde(default)]
    pub(super) ignores_image: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmoke {
    pub(super) http: Option<String>,
    pub(super) expect_status: Option<i64>,
    pub(super) command: Option<Vec<String>>,
    pub(super) invoke: Option<toml::Value>,
    pub(super) expect: Option<String>,
    pub(super) timeout_s: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBlueGreen {
    pub(super) traffic: Option<String>,
    pub(super) canary_percent: Option<i64>,
    pub(super) linear_percent: Option<i64>,
    pub(super) wait_interval: Option<String>,
    #[serde(default)]
    pub(super) rollback_alarms: Vec<String>,
    pub(super) termination_wait: Option<String>,
    pub(super) max_execution: Option<String>,
}
