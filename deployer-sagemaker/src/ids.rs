//! The keys of `LiveState::ids` and `Applied::ids` for SageMaker endpoints, and the two typed
//! forms of them: [`Live`] (what `read_live` reports) and [`Rollover`] (what `apply` started,
//! recorded as `pending.applied.ids` and read back by `wait`).
//!
//! The record format (the `deploy-state` parameter, the cli's `--json` output) is a map of
//! strings, as for every target: names lists (`models`, `variants`) are joined with `,`
//! (SageMaker names hold only letters, digits and `-`, variant names no `,`).
//! [`Rollover::from_ids`] reads records written by every earlier version, and
//! [`Rollover::to_ids`] writes the same format.

use std::collections::BTreeMap;

use deployer_core::DeployError;

/// The endpoint name.
pub const ENDPOINT: &str = "endpoint";
/// The endpoint config the endpoint runs (live), or the one the rollover created (applied).
pub const ENDPOINT_CONFIG: &str = "endpoint_config";
/// Applied: the endpoint config the rollover replaced (the rollback target).
pub const OLD_ENDPOINT_CONFIG: &str = "old_endpoint_config";
/// The targeted variants' models, `,`-joined: the live ones, or the new ones (applied).
pub const MODELS: &str = "models";
/// Applied: the models the rollover replaced, `,`-joined.
pub const OLD_MODELS: &str = "old_models";
/// The targeted variants, `,`-joined.
pub const VARIANTS: &str = "variants";
/// Live: the endpoint status (`InService`, `Updating`, …).
pub const STATUS: &str = "status";

/// The ids of `read_live`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    /// [`ENDPOINT`].
    pub endpoint: String,
    /// [`ENDPOINT_CONFIG`].
    pub endpoint_config: String,
    /// [`MODELS`], in variant order, each once.
    pub models: Vec<String>,
    /// [`VARIANTS`].
    pub variants: Vec<String>,
    /// [`STATUS`].
    pub status: String,
}

impl Live {
    /// The record format.
    pub fn to_ids(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (ENDPOINT.to_owned(), self.endpoint.clone()),
            (ENDPOINT_CONFIG.to_owned(), self.endpoint_config.clone()),
            (MODELS.to_owned(), self.models.join(",")),
            (VARIANTS.to_owned(), self.variants.join(",")),
            (STATUS.to_owned(), self.status.clone()),
        ])
    }
}

/// The ids of `apply`: what `wait` waits for and cleans up after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollover {
    /// [`ENDPOINT`].
    pub endpoint: String,
    /// [`OLD_ENDPOINT_CONFIG`].
    pub old_endpoint_config: String,
    /// [`ENDPOINT_CONFIG`].
    pub endpoint_config: String,
    /// [`OLD_MODELS`].
    pub old_models: Vec<String>,
    /// [`MODELS`].
    pub models: Vec<String>,
    /// [`VARIANTS`].
    pub variants: Vec<String>,
}

impl Rollover {
    /// The record format.
    pub fn to_ids(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (ENDPOINT.to_owned(), self.endpoint.clone()),
            (
                OLD_ENDPOINT_CONFIG.to_owned(),
                self.old_endpoint_config.clone(),
            ),
            (ENDPOINT_CONFIG.to_owned(), self.endpoint_config.clone()),
            (OLD_MODELS.to_owned(), self.old_models.join(",")),
            (MODELS.to_owned(), self.models.join(",")),
            (VARIANTS.to_owned(), self.variants.join(",")),
        ])
    }

    /// Reads the record format: the endpoint and both configs are required (a
    /// [`DeployError::MissingField`] naming the key), the name lists may be absent or empty.
    pub fn from_ids(ids: &BTreeMap<String, String>) -> Result<Self, DeployError> {
        let required = |key: &'static str| {
            ids.get(key).cloned().ok_or(DeployError::MissingField {
                operation: "apply",
                field: key,
            })
        };
        let list = |key: &str| names(ids.get(key).map_or("", String::as_str));
        Ok(Rollover {
            endpoint: required(ENDPOINT)?,
            old_endpoint_config: required(OLD_ENDPOINT_CONFIG)?,
            endpoint_config: required(ENDPOINT_CONFIG)?,
            old_models: list(OLD_MODELS),
            models: list(MODELS),
            variants: list(VARIANTS),
        })
    }
}

/// A `,`-joined list of names.
fn names(joined: &str) -> Vec<String> {
    joined
        .split(',')
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use deployer_core::Applied;

    use super::*;

    /// `pending.applied` of a `deploy-state` record as deployer writes it today (two
    /// targeted models): it reads back typed, and writes back to the same map.
    #[test]
    fn a_record_in_today_s_format_reads_back_typed() {
        let record = r#"{"old_artifact":"r/inference@sha256:1","new_artifact":"r/inference@sha256:2","ids":{"endpoint":"acme-inference","endpoint_config":"acme-inference-c2","models":"acme-inference-A-c2,acme-inference-B-c2","old_endpoint_config":"acme-inference-c1","old_models":"acme-inference-A-c1,acme-inference-B-c1","variants":"A,B"}}"#;
        let applied: Applied = serde_json::from_str(record).unwrap();
        let rollover = Rollover::from_ids(&applied.ids).unwrap();
        assert_eq!(
            rollover,
            Rollover {
                endpoint: "acme-inference".into(),
                old_endpoint_config: "acme-inference-c1".into(),
                endpoint_config: "acme-inference-c2".into(),
                old_models: vec!["acme-inference-A-c1".into(), "acme-inference-B-c1".into()],
                models: vec!["acme-inference-A-c2".into(), "acme-inference-B-c2".into()],
                variants: vec!["A".into(), "B".into()],
            }
        );
        assert_eq!(rollover.to_ids(), applied.ids);
    }

    #[test]
    fn the_configs_are_required_the_lists_are_not() {
        let mut ids = BTreeMap::from([
            (ENDPOINT.to_owned(), "e".to_owned()),
            (ENDPOINT_CONFIG.to_owned(), "e-c2".to_owned()),
            (OLD_ENDPOINT_CONFIG.to_owned(), "e-c1".to_owned()),
        ]);
        let rollover = Rollover::from_ids(&ids).unwrap();
        assert!(rollover.models.is_empty() && rollover.variants.is_empty());
        ids.remove(OLD_ENDPOINT_CONFIG);
        assert!(matches!(
            Rollover::from_ids(&ids),
            Err(DeployError::MissingField {
                field: OLD_ENDPOINT_CONFIG,
                ..
            })
        ));
    }

    #[test]
    fn live_ids_are_the_record_format() {
        let live = Live {
            endpoint: "e".into(),
            endpoint_config: "e-c1".into(),
            models: vec!["m-a".into(), "m-b".into()],
            variants: vec!["AllTraffic".into()],
            status: "InService".into(),
        };
        assert_eq!(
            serde_json::to_string(&live.to_ids()).unwrap(),
            r#"{"endpoint":"e","endpoint_config":"e-c1","models":"m-a,m-b","status":"InService","variants":"AllTraffic"}"#
        );
    }
}
