//! The deployer's paths against scripted SDK answers (`aws-smithy-mocks`, in order): the
//! conflict that stops a deploy, retries of throttled transactions, items it does not own,
//! the fence, the one read of the no-op path, and the conditions every write carries.

// Test code: a failed unwrap is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::error::TransactionCanceledException;
use aws_sdk_dynamodb::types::{AttributeValue, CancellationReason};
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_ssm::operation::get_parameter::{GetParameterError, GetParameterOutput};
use aws_sdk_ssm::types::Parameter;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use deployer_core::manifest::{ConfigStore, ConfigTarget};
use deployer_core::{Artifact, DeployError, Deployer, Fence, LiveState, Progress};

use crate::dynamodb::Retry;
use crate::set::{ConfigSet, Item, Layout, OWNER};
use crate::value::Value;
use crate::{Clients, ConfigDeployer, Names, Secrets};

type Dynamo = aws_sdk_dynamodb::Client;
type Ssm = aws_sdk_ssm::Client;
type S3 = aws_sdk_s3::Client;

const OWNED: &str = "acme/repos";

fn target() -> ConfigTarget {
    ConfigTarget {
        source: "config".into(),
        schema: None,
        store: ConfigStore::Dynamodb {
            table: "repos".into(),
            key: vec!["pk".into()],
        },
        secret: vec!["token".into()],
        prune: false,
        adopt: false,
        s3_bucket: "kept".into(),
        s3_key_prefix: None,
    }
}

fn set(count: usize, value: &str) -> ConfigSet {
    let items = (0..count)
        .map(|n| {
            let pk = format!("repo#{n:04}");
            let item = Item {
                id: format!("pk={}", Value::String(pk.clone())),
                attributes: BTreeMap::from([
                    ("pk".into(), Value::String(pk)),
                    ("branch".into(), Value::String(value.into())),
                    ("token".into(), Value::String("s3cr3t-t0ken-value".into())),
                ]),
            };
            (item.id.clone(), item)
        })
        .collect();
    ConfigSet {
        layout: Layout::Dynamodb {
            key: vec!["pk".into()],
        },
        secrets: Secrets::new(&["token".into()]),
        prune: false,
        items,
    }
}

fn row(n: usize, branch: &str, owner: Option<&str>) -> HashMap<String, AttributeValue> {
    let mut row = HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("repo#{n:04}"))),
        ("branch".to_owned(), AttributeValue::S(branch.into())),
        (
            "token".to_owned(),
            AttributeValue::S("s3cr3t-t0ken-value".into()),
        ),
    ]);
    if let Some(owner) = owner {
        row.insert(OWNER.into(), AttributeValue::S(owner.into()));
    }
    row
}

fn scan(rows: Vec<HashMap<String, AttributeValue>>) -> Rule {
    mock!(Dynamo::scan)
        .match_requests(|r| r.table_name() == Some("repos") && r.consistent_read() == Some(true))
        .then_output(move || ScanOutput::builder().set_items(Some(rows.clone())).build())
}

fn cancelled(codes: &'static [&'static str]) -> TransactWriteItemsError {
    let mut error = TransactionCanceledException::builder().message("Transaction cancelled");
    for code in codes {
        error = error.cancellation_reasons(CancellationReason::builder().code(*code).build());
    }
    TransactWriteItemsError::TransactionCanceledException(error.build())
}

fn kept() -> Vec<Rule> {
    vec![
        mock!(S3::head_object).then_error(|| {
            HeadObjectError::NotFound(aws_sdk_s3::types::error::NotFound::builder().build())
        }),
        mock!(S3::put_object)
            .match_requests(|r| {
                r.bucket() == Some("kept")
                    && r.key()
                        .is_some_and(|k| k.starts_with("deployer/acme/repos/"))
            })
            .then_output(|| PutObjectOutput::builder().build()),
    ]
}

fn deployer(dynamo: &[&Rule], ssm: &[&Rule], s3: &[&Rule]) -> ConfigDeployer {
    let clients = Clients {
        dynamodb: Some(mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, dynamo)),
        ssm: mock_client!(aws_sdk_ssm, RuleMode::Sequential, ssm),
        s3: mock_client!(aws_sdk_s3, RuleMode::Sequential, s3),
    };
    ConfigDeployer::new(clients, target(), Names::of("acme", "/acme", "repos", None))
        .unwrap()
        .with_retry(Retry {
            attempts: 3,
            first_delay: Duration::from_millis(1),
        })
}

fn artifact(set: &ConfigSet) -> Artifact {
    Artifact::Config(set.artifact())
}

fn assert_no_secret(text: &str) {
    assert!(!text.contains("s3cr3t"), "a secret leaked into: {text}");
}

#[tokio::test]
async fn a_write_conflict_stops_the_deploy_and_nothing_after_it_is_sent() {
    // 150 new items: two transactions; the first is cancelled because item 5 appeared
    // meanwhile. The second is never sent (Sequential mode fails any call without a rule).
    let wanted = set(150, "main");
    let transact = mock!(Dynamo::transact_write_items)
        .match_requests(|r| r.transact_items().len() == 100)
        .then_error(|| {
            cancelled(&[
                "None",
                "None",
                "None",
                "None",
                "None",
                "ConditionalCheckFailed",
            ])
        });
    let s3 = kept();
    let scan = scan(Vec::new());
    let target = deployer(&[&scan, &transact], &[], &[&s3[0], &s3[1]]);
    let error = target
        .apply(
            &LiveState::default(),
            &artifact(&wanted),
            &Progress::discard("repos"),
        )
        .await
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, DeployError::RolloutFailed { .. }), "{text}");
    assert!(text.contains("pk=\"repo#0005\""), "{text}");
    assert!(
        text.contains("0 of 150 writes were applied before it"),
        "{text}"
    );
    assert_eq!(transact.num_calls(), 1);
    assert_no_secret(&text);
}

#[tokio::test]
async fn throttled_transactions_are_sent_again_with_the_same_token() {
    let wanted = set(3, "main");
    let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
    let transact = mock!(Dynamo::transact_write_items)
        .match_requests({
            let tokens = tokens.clone();
            move |r| {
                tokens
                    .lock()
                    .unwrap()
                    .push(r.client_request_token().unwrap_or_default().to_owned());
                true
            }
        })
        .sequence()
        .error(|| cancelled(&["ThrottlingError", "None", "None"]))
        .error(|| cancelled(&["TransactionConflict", "None", "None"]))
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let s3 = kept();
    let scan = scan(Vec::new());
    let target = deployer(&[&scan, &transact], &[], &[&s3[0], &s3[1]]);
    let applied = target
        .apply(
            &LiveState::default(),
            &artifact(&wanted),
            &Progress::discard("repos"),
        )
        .await
        .unwrap();
    assert_eq!(transact.num_calls(), 3);
    assert_eq!(applied.ids["written"], "3");
    assert_eq!(applied.ids["transactions"], "1");
    let tokens = tokens.lock().unwrap();
    assert!(
        tokens.iter().all(|t| t == &tokens[0] && t.len() == 32),
        "{tokens:?}"
    );
}

#[tokio::test]
async fn a_transaction_throttled_past_its_attempts_fails() {
    let wanted = set(1, "main");
    let transact = mock!(Dynamo::transact_write_items)
        .sequence()
        .error(|| cancelled(&["ThrottlingError"]))
        .times(3)
        .build();
    let s3 = kept();
    let scan = scan(Vec::new());
    let target = deployer(&[&scan, &transact], &[], &[&s3[0], &s3[1]]);
    let error = target
        .apply(
            &LiveState::default(),
            &artifact(&wanted),
            &Progress::discard("repos"),
        )
        .await
        .unwrap_err();
    assert_eq!(transact.num_calls(), 3);
    assert!(
        error
            .to_string()
            .contains("still throttled after 3 attempts"),
        "{error}"
    );
}

#[tokio::test]
async fn items_without_the_owner_mark_are_refused_before_anything_is_written() {
    let wanted = set(2, "main");
    // repo#0001 was written by IaC (no mark): nothing is written, not even the kept copy
    // (Sequential mode fails any call without a rule).
    let scan = scan(vec![row(0, "main", Some(OWNED)), row(1, "trunk", None)]);
    let target = deployer(&[&scan], &[], &[]);
    let error = target
        .apply(
            &LiveState::default(),
            &artifact(&wanted),
            &Progress::discard("repos"),
        )
        .await
        .unwrap_err();
    assert!(error.is_config(), "{error}");
    let text = error.to_string();
    assert!(text.contains("pk=\"repo#0001\""), "{text}");
    assert!(text.contains("adopt = true"), "{text}");
}

#[tokio::test]
async fn a_changed_item_is_updated_only_where_it_differs_and_only_if_unchanged_since_read() {
    let wanted = set(2, "main");
    let transact = mock!(Dynamo::transact_write_items)
        .match_requests(|r| {
            let [write] = r.transact_items() else {
                return false;
            };
            let Some(update) = write.update() else {
                return false;
            };
            let names = update.expression_attribute_names().unwrap();
            let set_names: Vec<&str> = update
                .update_expression()
                .trim_start_matches("SET ")
                .split(", ")
                .filter_map(|clause| names.get(clause.split(" = ").next()?).map(String::as_str))
                .collect();
            let condition = update.condition_expression().unwrap_or_default();
            // only `branch` changes; the condition covers every attribute read, the mark too
            set_names == ["branch"]
                && condition.matches(" = ").count() == 4
                && condition.split(" AND ").count() == 4
        })
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let scan = scan(vec![
        row(0, "main", Some(OWNED)),
        row(1, "trunk", Some(OWNED)),
    ]);
    let s3 = kept();
    let target = deployer(&[&scan, &transact], &[], &[&s3[0], &s3[1]]);
    let applied = target
        .apply(
            &LiveState::default(),
            &artifact(&wanted),
            &Progress::discard("repos"),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            applied.ids["written"].as_str(),
            applied.ids["deleted"].as_str()
        ),
        ("1", "0")
    );
    assert_eq!(transact.num_calls(), 1);
}

#[tokio::test]
async fn plan_lists_each_item_with_secrets_hidden_and_writes_nothing() {
    let wanted = set(3, "main");
    let scan = scan(vec![
        row(0, "main", Some(OWNED)),
        row(1, "trunk", Some(OWNED)),
        row(7, "gone", Some(OWNED)),
    ]);
    let target = deployer(&[&scan], &[], &[]);
    let changes = target
        .changes(&LiveState::default(), &artifact(&wanted))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changes.summary(), "1 added, 1 changed, 1 kept, 1 unchanged");
    let shown = serde_json::to_string(&changes).unwrap();
    assert_no_secret(&shown);
    assert!(shown.contains("\"name\":\"branch\""), "{shown}");
}

struct Lost;

impl Fence for Lost {
    fn check(&self) -> Result<(), String> {
        Err("lost the deploy lock".into())
    }
}

#[tokio::test]
async fn a_run_that_lost_its_lock_writes_nothing() {
    let wanted = set(1, "main");
    let head = mock!(S3::head_object).then_error(|| {
        HeadObjectError::NotFound(aws_sdk_s3::types::error::NotFound::builder().build())
    });
    let scan = scan(Vec::new());
    let target = deployer(&[&scan], &[], &[&head]);
    let fenced = Progress::discard("repos").with_fence(Arc::new(Lost));
    let error = target
        .apply(&LiveState::default(), &artifact(&wanted), &fenced)
        .await
        .unwrap_err();
    assert!(
        matches!(error, DeployError::Fenced { ref call, .. } if call == "PutObject"),
        "{error}"
    );
}

#[tokio::test]
async fn the_live_state_is_one_read_of_the_marker() {
    let wanted = set(2, "main");
    let id = artifact(&wanted).deploy_id();
    let marker = format!(r#"{{"set":"{id}","store":"dynamodb:repos","items":2}}"#);
    let get = mock!(Ssm::get_parameter)
        .match_requests(|r| r.name() == Some("/acme/repos/config-applied"))
        .then_output(move || {
            GetParameterOutput::builder()
                .parameter(Parameter::builder().value(marker.clone()).build())
                .build()
        });
    let elsewhere = mock!(Ssm::get_parameter).then_output(|| {
        GetParameterOutput::builder()
            .parameter(
                Parameter::builder()
                    .value(r#"{"set":"sha256:00","store":"dynamodb:other","items":1}"#)
                    .build(),
            )
            .build()
    });
    let missing = mock!(Ssm::get_parameter).then_error(|| {
        GetParameterError::ParameterNotFound(
            aws_sdk_ssm::types::error::ParameterNotFound::builder().build(),
        )
    });
    let target = deployer(&[], &[&get, &elsewhere, &missing], &[]);
    let live = target.read_live().await.unwrap();
    assert!(target.is_current(&live, &artifact(&wanted)));
    assert_eq!(live.ids["store"], "dynamodb:repos");
    let live = target.read_live().await.unwrap();
    assert_eq!(
        live.artifact, None,
        "a set applied to another table is not this one"
    );
    assert!(live.summary.contains("dynamodb:other"), "{}", live.summary);
    let live = target.read_live().await.unwrap();
    assert_eq!(live.artifact, None);
    assert_eq!(
        get.num_calls() + elsewhere.num_calls() + missing.num_calls(),
        3
    );
}

mod parameters {
    use aws_sdk_ssm::operation::describe_parameters::DescribeParametersOutput;
    use aws_sdk_ssm::operation::get_parameters::GetParametersOutput;
    use aws_sdk_ssm::operation::get_parameters_by_path::GetParametersByPathOutput;
    use aws_sdk_ssm::types::{ParameterMetadata, ParameterType};

    use super::*;
    use crate::diff::diff;
    use crate::parameters::{Parameters, owner_mark};

    fn flag(name: &str, value: &str) -> Item {
        Item {
            id: name.into(),
            attributes: BTreeMap::from([
                ("type".into(), Value::String("String".into())),
                ("value".into(), Value::String(value.into())),
            ]),
        }
    }

    fn parameter(name: &str, value: &str, version: i64) -> Parameter {
        Parameter::builder()
            .name(format!("/acme/flags/{name}"))
            .value(value)
            .r#type(ParameterType::String)
            .version(version)
            .build()
    }

    #[tokio::test]
    async fn a_parameter_changed_since_the_read_stops_the_group_before_any_write() {
        let by_path = mock!(Ssm::get_parameters_by_path).then_output(|| {
            GetParametersByPathOutput::builder()
                .parameters(parameter("search/limit", "10", 3))
                .build()
        });
        let described = mock!(Ssm::describe_parameters).then_output(|| {
            DescribeParametersOutput::builder()
                .parameters(
                    ParameterMetadata::builder()
                        .name("/acme/flags/search/limit")
                        .description(owner_mark(OWNED))
                        .build(),
                )
                .build()
        });
        // Someone wrote version 4 since the read: no PutParameter may follow.
        let recheck = mock!(Ssm::get_parameters).then_output(|| {
            GetParametersOutput::builder()
                .parameters(parameter("search/limit", "99", 4))
                .build()
        });
        let client: Ssm = mock_client!(
            aws_sdk_ssm,
            RuleMode::Sequential,
            &[&by_path, &described, &recheck]
        );
        let store = Parameters::new(client, "/acme/flags".into());
        let live = store.read().await.unwrap();
        assert_eq!(live["search/limit"].owner.as_deref(), Some(OWNED));
        let set = ConfigSet {
            layout: Layout::Ssm,
            secrets: Secrets::default(),
            prune: false,
            items: [flag("search/limit", "25"), flag("search/enabled", "true")]
                .into_iter()
                .map(|i| (i.id.clone(), i))
                .collect(),
        };
        let planned = diff(&set, &live, OWNED, false, false);
        assert_eq!(planned.ops.len(), 2);
        let error = store
            .write(&planned.ops, OWNED, &Progress::discard("flags"))
            .await
            .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("parameter search/limit changed since"),
            "{text}"
        );
        assert!(text.contains("0 of 2 writes"), "{text}");
        assert_eq!(recheck.num_calls(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn a_throttled_read_back_is_tried_again_before_the_marker_is_written() {
    use aws_sdk_dynamodb::operation::scan::ScanError;
    use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
    use deployer_core::poll::PollPolicy;

    let wanted = set(1, "main");
    let first_read = scan(Vec::new());
    let transact = mock!(Dynamo::transact_write_items)
        .then_output(|| TransactWriteItemsOutput::builder().build());
    let read_back = mock!(Dynamo::scan)
        .sequence()
        .error(|| {
            ScanError::ProvisionedThroughputExceededException(
                aws_sdk_dynamodb::types::error::ProvisionedThroughputExceededException::builder()
                    .message("slow down")
                    .build(),
            )
        })
        .output(|| {
            ScanOutput::builder()
                .items(row(0, "main", Some(OWNED)))
                .build()
        })
        .build();
    let marker = mock!(Ssm::put_parameter)
        .match_requests(|r| {
            r.name() == Some("/acme/repos/config-applied")
                && r.value()
                    .is_some_and(|v| v.contains("\"store\":\"dynamodb:repos\""))
        })
        .then_output(|| PutParameterOutput::builder().build());
    let s3 = kept();
    let target = deployer(
        &[&first_read, &transact, &read_back],
        &[&marker],
        &[&s3[0], &s3[1]],
    );
    let progress = Progress::discard("repos");
    let applied = target
        .apply(&LiveState::default(), &artifact(&wanted), &progress)
        .await
        .unwrap();
    let settled = target
        .wait(&applied, &PollPolicy::default(), &progress)
        .await
        .unwrap();
    assert_eq!(settled, applied);
    assert_eq!(read_back.num_calls(), 2);
    assert_eq!(marker.num_calls(), 1);
}
