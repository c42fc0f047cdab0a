//! Config services (`kind = "config"`) through the real `deployer` binary against moto's
//! DynamoDB, SSM and S3: the first apply, the no-op apply (zero writes, from the bed's record
//! of every call a run signed with its own access key), changes with and without `prune`, a
//! conflict with an out-of-band write, schema errors with their locations, secrets never in
//! any output, a kill mid-apply and the run that converges, rollback, and an SSM prefix.
//!
//! Each test creates its own table, bucket and project name; the items are written by the
//! test as a repository would hold them (YAML, JSON and TOML, one item per file or
//! `items = [...]`).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use deployer_tests::{
    Deployer, FaultProxy, Faults, FixtureRepo, LiveRun, RunOutput, Testbed, testbed, unique_name,
};
use serde_json::Value;

/// A secret value in the items: no output may carry it.
const SECRET: &str = "s3cr3t-webhook-value-5150";

const SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["pk", "sk", "repository", "default_branch"],
  "properties": {
    "pk": { "type": "string", "pattern": "^repo#" },
    "sk": { "const": "config" },
    "repository": { "type": "string" },
    "default_branch": { "type": "string" },
    "max_turns": { "type": "integer", "minimum": 1 },
    "webhook_secret": { "type": "string", "minLength": 12 }
  }
}"#;

struct Config {
    repo: FixtureRepo,
    project: String,
    table: String,
    bucket: String,
    dynamodb: aws_sdk_dynamodb::Client,
    ssm: aws_sdk_ssm::Client,
}

impl Config {
    /// A table and a bucket of their own, and a repository whose manifest has one config
    /// service `repos` writing to the table (`extra` is added to the service table).
    async fn new(bed: &Testbed, extra: &str) -> Config {
        let project = unique_name("cfg");
        let table = format!("{project}-repositories");
        let bucket = format!("{project}-deployer");
        let sdk = bed.sdk_config().await;
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        let s3 = aws_sdk_s3::Client::new(&sdk);
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .unwrap()
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        dynamodb
            .create_table()
            .table_name(&table)
            .key_schema(key("pk", KeyType::Hash))
            .key_schema(key("sk", KeyType::Range))
            .attribute_definitions(attribute("pk"))
            .attribute_definitions(attribute("sk"))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap();
        s3.create_bucket().bucket(&bucket).send().await.unwrap();
        let repo = FixtureRepo::new();
        repo.write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{project}"
region = "us-east-1"

[services.repos]
kind = "config"
source = "config/repos"
schema = "config/repo.schema.json"
dynamodb = {{ table = "{table}", key = ["pk", "sk"] }}
secret = ["webhook_secret"]
s3_bucket = "{bucket}"
{extra}
"#
            ),
        );
        repo.write("config/repo.schema.json", SCHEMA);
        repo.write(
            "config/repos/web.yaml",
            format!(
                "pk: repo#acme/web\nsk: config\nrepository: acme/web\ndefault_branch: main\nmax_turns: 40\nwebhook_secret: {SECRET}\nstars: 12345678901234567890123\n"
            ),
        );
        repo.write(
            "config/repos/api.json",
            r#"{"pk": "repo#acme/api", "sk": "config", "repository": "acme/api", "default_branch": "trunk", "ratio": 0.10}"#,
        );
        repo.write(
            "config/repos/tools.toml",
            "[[items]]\npk = \"repo#acme/cli\"\nsk = \"config\"\nrepository = \"acme/cli\"\ndefault_branch = \"main\"\n\n[[items]]\npk = \"repo#acme/docs\"\nsk = \"config\"\nrepository = \"acme/docs\"\ndefault_branch = \"main\"\nlabels = [\"docs\", \"site\"]\n",
        );
        repo.commit("config");
        Config {
            repo,
            project,
            table,
            bucket,
            dynamodb,
            ssm: aws_sdk_ssm::Client::new(&sdk),
        }
    }

    /// `deployer <args>`, signing with `key` (the recorder's name for the run).
    fn run(&self, bed: &Testbed, key: &str, args: &[&str]) -> RunOutput {
        Deployer::new()
            .current_dir(self.repo.path())
            .bed(bed)
            .env("AWS_ACCESS_KEY_ID", key)
            .env("DEPLOYER_LOCK_LEASE", "3s")
            .args(args)
            .run()
    }

    /// The table's items by `pk`.
    async fn items(&self) -> BTreeMap<String, HashMap<String, AttributeValue>> {
        let scan = self
            .dynamodb
            .scan()
            .table_name(&self.table)
            .send()
            .await
            .unwrap();
        scan.items()
            .iter()
            .map(|item| (item["pk"].as_s().unwrap().clone(), item.clone()))
            .collect()
    }

    async fn parameter(&self, name: &str) -> Option<String> {
        self.ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .ok()
            .and_then(|o| o.parameter().and_then(|p| p.value().map(str::to_owned)))
    }

    async fn tag(&self) -> Option<String> {
        self.parameter(&format!("/{}/repos/image-tag", self.project))
            .await
    }

    fn edit(&self, path: &str, from: &str, to: &str) {
        let text = self.repo.read(path);
        assert!(text.contains(from), "{path} has no `{from}`");
        self.repo.write(path, text.replace(from, to));
    }
}

fn key(prefix: &str) -> String {
    unique_name(prefix).to_ascii_uppercase().replace('-', "")
}

fn assert_no_secret(out: &RunOutput) {
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(
            !text.contains(SECRET),
            "the secret reached {stream}:\n{text}"
        );
    }
}

fn service(report: &Value) -> &Value {
    &report["services"][0]
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// The calls a run made, as `service:Action`.
fn calls(bed: &Testbed, key: &str) -> Vec<String> {
    bed.moto()
        .recorded_calls(key)
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["service"].as_str().unwrap_or_default(),
                c["action"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

fn writes(calls: &[String]) -> Vec<&String> {
    calls
        .iter()
        .filter(|c| {
            let action = c.split(':').nth(1).unwrap_or_default();
            !["Get", "Describe", "List", "Scan", "Query", "Head"]
                .iter()
                .any(|read| action.starts_with(read))
        })
        .collect()
}

#[tokio::test]
async fn first_apply_writes_every_item_exactly_then_a_noop_writes_nothing() {
    let Some(bed) = testbed!(moto) else {
        return;
    };
    let config = Config::new(bed, "").await;
    let first = config.run(bed, &key("AKIDCFGFIRST"), &["deploy", "--all", "--json"]);
    first.assert_success();
    assert_no_secret(&first);
    let report = first.json();
    assert_eq!(service(&report)["action"], "updated", "{report}");
    let tag = service(&report)["tag"].as_str().unwrap().to_owned();
    assert_eq!(config.tag().await.as_deref(), Some(tag.as_str()));

    let items = config.items().await;
    let names: Vec<&str> = items.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "repo#acme/api",
            "repo#acme/cli",
            "repo#acme/docs",
            "repo#acme/web"
        ]
    );
    let web = &items["repo#acme/web"];
    assert_eq!(
        web["deployer:owner"],
        s(&format!("{}/repos", config.project))
    );
    assert_eq!(web["max_turns"], AttributeValue::N("40".into()));
    // 23 digits: no f64 could carry it
    assert_eq!(
        web["stars"],
        AttributeValue::N("12345678901234567890123".into())
    );
    assert_eq!(web["webhook_secret"], s(SECRET));
    assert_eq!(
        items["repo#acme/api"]["ratio"],
        AttributeValue::N("0.1".into())
    );
    assert_eq!(
        items["repo#acme/docs"]["labels"],
        AttributeValue::L(vec![s("docs"), s("site")])
    );

    // The no-op path: the records and the marker, nothing else.
    let again_key = key("AKIDCFGNOOP");
    let again = config.run(bed, &again_key, &["deploy", "--all", "--json"]);
    again.assert_success();
    assert_eq!(
        service(&again.json())["action"],
        "unchanged",
        "{}",
        again.stdout
    );
    let made = calls(bed, &again_key);
    assert!(writes(&made).is_empty(), "the no-op deploy wrote: {made:?}");
    let mut reads: Vec<&str> = made
        .iter()
        .map(String::as_str)
        .filter(|c| !c.starts_with("sts:"))
        .collect();
    reads.sort_unstable();
    assert_eq!(
        reads,
        ["ssm:GetParameter", "ssm:GetParameters"],
        "the no-op deploy reads the records and the marker only"
    );
}

#[tokio::test]
async fn changes_adds_and_removals_with_and_without_prune() {
    let Some(bed) = testbed!(moto) else {
        return;
    };
    let config = Config::new(bed, "").await;
    config
        .run(bed, &key("AKIDCFGBASE"), &["deploy", "--all"])
        .assert_success();
    config.edit(
        "config/repos/web.yaml",
        "default_branch: main",
        "default_branch: trunk",
    );
    config.repo.write(
        "config/repos/infra.json",
        r#"{"pk": "repo#acme/infra", "sk": "config", "repository": "acme/infra", "default_branch": "main"}"#,
    );
    config.repo.remove("config/repos/api.json");
    config.repo.commit("change");

    let plan_key = key("AKIDCFGPLAN");
    let plan = config.run(bed, &plan_key, &["plan", "--json"]);
    plan.assert_success();
    assert_no_secret(&plan);
    let report = plan.json();
    assert_eq!(service(&report)["action"], "deploy", "{report}");
    let changes: BTreeMap<String, (String, Vec<String>)> = service(&report)["changes"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["item"].as_str().unwrap().to_owned(),
                (
                    i["change"].as_str().unwrap().to_owned(),
                    i["attributes"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|x| x["name"].as_str().unwrap().to_owned())
                                .collect()
                        })
                        .unwrap_or_default(),
                ),
            )
        })
        .collect();
    let change = |pk: &str| changes[&format!("pk=\"repo#acme/{pk}\" sk=\"config\"")].clone();
    assert_eq!(
        change("web"),
        ("changed".into(), vec!["default_branch".into()])
    );
    assert_eq!(change("infra").0, "added");
    assert_eq!(change("api").0, "kept");
    assert_eq!(change("cli").0, "unchanged");
    assert!(
        writes(&calls(bed, &plan_key)).is_empty(),
        "plan writes nothing"
    );
    // The text form names the same.
    let text = config.run(bed, &key("AKIDCFGPLANTEXT"), &["plan"]);
    text.assert_success();
    assert!(
        text.stdout
            .contains("repos: 1 added, 1 changed, 1 kept, 2 unchanged"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("default_branch: \"main\" → \"trunk\""),
        "{}",
        text.stdout
    );

    // Without prune, the dropped item stays (reported).
    let deploy = config.run(bed, &key("AKIDCFGDEPLOY"), &["deploy", "--all", "--json"]);
    deploy.assert_success();
    assert_eq!(
        service(&deploy.json())["ids"]["written"],
        "2",
        "{}",
        deploy.stdout
    );
    let items = config.items().await;
    assert!(items.contains_key("repo#acme/api"));
    assert_eq!(items["repo#acme/web"]["default_branch"], s("trunk"));
    assert!(items.contains_key("repo#acme/infra"));

    // With prune, it goes.
    config.edit("deployer.toml", "s3_bucket =", "prune = true\ns3_bucket =");
    config.repo.commit("prune");
    let pruned = config.run(bed, &key("AKIDCFGPRUNE"), &["deploy", "--all", "--json"]);
    pruned.assert_success();
    assert_eq!(
        service(&pruned.json())["action"],
        "updated",
        "{}",
        pruned.stdout
    );
    let items = config.items().await;
    assert!(!items.contains_key("repo#acme/api"), "{items:?}");
    assert_eq!(items.len(), 4);
    let status = config.run(bed, &key("AKIDCFGSTATUS"), &["status", "--json"]);
    status.assert_success();
    assert_eq!(
        service(&status.json())["in_sync"],
        true,
        "{}",
        status.stdout
    );
}

#[tokio::test]
async fn items_written_by_iac_are_not_touched_unless_adopted() {
    let Some(bed) = testbed!(moto) else {
        return;
    };
    let config = Config::new(bed, "").await;
    // IaC wrote a row the repository now also defines, and one of its own.
    for (pk, branch) in [
        ("repo#acme/web", "iac-branch"),
        ("repo#acme/legacy", "main"),
    ] {
        config
            .dynamodb
            .put_item()
            .table_name(&config.table)
            .item("pk", s(pk))
            .item("sk", s("config"))
            .item("default_branch", s(branch))
            .send()
            .await
            .unwrap();
    }
    let refused = config.run(bed, &key("AKIDCFGIAC"), &["deploy", "--all", "--json"]);
    refused.assert_code(2);
    assert_no_secret(&refused);
    let error = service(&refused.json())["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("repo#acme/web"), "{error}");
    assert!(error.contains("adopt = true"), "{error}");
    assert_eq!(config.items().await.len(), 2, "nothing was written");

    config.edit(
        "deployer.toml",
        "s3_bucket =",
        "adopt = true\nprune = true\ns3_bucket =",
    );
    config.repo.commit("adopt");
    let adopted = config.run(bed, &key("AKIDCFGADOPT"), &["deploy", "--all"]);
    adopted.assert_success();
    let items = config.items().await;
    assert_eq!(items["repo#acme/web"]["default_branch"], s("main"));
    assert_eq!(
        items["repo#acme/web"]["deployer:owner"],
        s(&format!("{}/repos", config.project))
    );
    // The IaC-only row is not deployer's: even with prune it stays, unmarked.
    assert!(!items["repo#acme/legacy"].contains_key("deployer:owner"));
}

#[tokio::test]
async fn an_out_of_band_write_since_the_read_is_not_overwritten() {
    let Some(bed) = testbed!(moto) else {
        return;
    };
    let config = Config::new(bed, "").await;
    config
        .run(bed, &key("AKIDCFGCBASE"), &["deploy", "--all"])
        .assert_success();
    config.edit("config/repos/web.yaml", "max_turns: 40", "max_turns: 50");
    config.edit("config/repos/api.json", "\"trunk\"", "\"develop\"");
    config.repo.commit("change");
    // The write is held back until someone changed the row meanwhile.
    let proxy = FaultProxy::start(
        bed,
        &Faults::new().hold("^TransactWriteItems$", None, 3_000),
    );
    let mut command = deployer_tests::deployer_command(bed);
    command
        .current_dir(config.repo.path())
        .env("AWS_ENDPOINT_URL", proxy.url())
        .args(["deploy", "--all", "--json", "-v"]);
    let run = LiveRun::spawn(command);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while proxy.stats().holding == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the write was never held"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    config
        .dynamodb
        .update_item()
        .table_name(&config.table)
        .key("pk", s("repo#acme/api"))
        .key("sk", s("config"))
        .update_expression("SET default_branch = :b")
        .expression_attribute_values(":b", s("hand-edited"))
        .send()
        .await
        .unwrap();
    let out = run.finish(Duration::from_secs(120));
    out.assert_code(1);
    assert_no_secret(&out);
    let error = service(&out.json())["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(error.contains("pk=\"repo#acme/api\""), "{error}");
    assert!(
        error.contains("changed since this deploy read it"),
        "{error}"
    );
    let items = config.items().await;
    assert_eq!(items["repo#acme/api"]["default_branch"], s("hand-edited"));
    assert_eq!(
        items["repo#acme/web"]["max_turns"],
        AttributeValue::N("40".into()),
        "the whole transaction was cancelled"
    );
    assert_eq!(proxy.stats().held, 1, "nothing was sent after the conflict");
    drop(proxy);

    // The next run plans from what the table holds now and converges.
    let status = config.run(bed, &key("AKIDCFGCSTATUS"), &["status", "--json"]);
    let drift = status.json()["services"][0]["drift"].to_string();
    assert!(
        drift.contains("repo#acme/api") && drift.contains("default_branch"),
        "{drift}"
    );
    let again = config.run(bed, &key("AKIDCFGCAGAIN"), &["deploy", "--all"]);
    again.assert_success();
    let items = config.items().await;
    assert_eq!(items["repo#acme/api"]["default_branch"], s("develop"));
    assert_eq!(
        items["repo#acme/web"]["max_turns"],
        AttributeValue::N("50".into())
    );
}

#[tokio::test]
async fn schema_errors_name_file_line_and_rule_and_nothing_is_called() {
    let Some(bed) = testbed!(moto) else {
        return;
    };
    let config = Config::new(bed, "").await;
    config.edit("config/repos/web.yaml", "max_turns: 40", "max_turns: zero");
    config.edit(
        "config/repos/web.yaml",
        &format!("webhook_secret: {SECRET}"),
        "webhook_secret: short-one",
    );
    config.edit(
        "config/repos/api.json",
        "\"sk\": \"config\"",
        "\"sk\": \"other\"",
    );
    config.repo.commit("broken");
    let run_key = key("AKIDCFGSCHEMA");
    for args in [
        &["deploy", "--all"][..],
        &["plan", "--json"][..],
        &["hash", "--json"][..],
    ] {
        let out = config.run(bed, &run_key, args);
        out.assert_code(2);
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(
            text.contains("config/repos/web.yaml:5: /max_turns:"),
            "{text}"
        );
        assert!(
            text.contains("type at config/repo.schema.json#/properties/max_turns/type"),
            "{text}"
        );
        assert!(text.contains("config/repos/api.json:1: /sk:"), "{text}");
        assert!(text.contains("rule: const"), "{text}");
        assert!(
            text.contains("config/repos/web.yaml:6: /webhook_secret:"),
            "{text}"
        );
        assert!(
            !text.contains("short-one"),
            "a secret's value is never shown: {text}"
        );
        if args.contains(&"--json") {
            let diagnostics = out.json()["error"]["diagnostics"].clone();
            let located: Vec<(String, u64, String)> = diagnostics
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["file"].as_str().unwrap().to_owned(),
                        d["line"].as_u64().unwrap(),
                        d["pointer"].as_str().unwrap().to_owned(),
                    )
                })
                .collect();
            assert_eq!(
                located,
                [
                    ("config/repos/api.json".to_owned(), 1, "/sk".to_owned()),
                    (
                        "config/repos/web.yaml".to_owned(),
                        5,
                        "/max_turns".to_owned()
                    ),
                    (
                        "config/repos/web.yaml".to_owned(),
                        6,
                        "/webhook_secret".to_owned()
                    ),
                ],
                "{diagnostics}"
            );
        }
    }
    assert!(calls(bed, &run_key).is_empty(), "nothing was called");
}

#[tokio::test]
async fn secret_values_never_reach_any_output() {
    let Some(bed) = testbed!(moto) else {
        return;
    };
    let config = Config::new(bed, "").await;
    let rotated = "s3cr3t-webhook-rotated-6262";
    for (args, edit) in [
        (&["plan", "--json", "-v"][..], None),
        (&["deploy", "--all", "-v"][..], None),
        (&["deploy", "--all", "--json", "-v"][..], Some(rotated)),
        (&["plan", "-v"][..], Some("s3cr3t-webhook-third-7373")),
        (&["status", "--json", "-v"][..], None),
        (&["status", "-v"][..], None),
    ] {
        let out = config.run(bed, &key("AKIDCFGSECRET"), args);
        assert_no_secret(&out);
        for text in [&out.stdout, &out.stderr] {
            assert!(
                !text.contains(rotated) && !text.contains("third-7373"),
                "{text}"
            );
        }
        if let Some(next) = edit {
            let text = config.repo.read("config/repos/web.yaml");
            let current = text
                .lines()
                .find_map(|l| l.strip_prefix("webhook_secret: "))
                .unwrap()
                .to_owned();
            config.edit("config/repos/web.yaml", &current, next);
            config.repo.commit("rotate");
        }
    }
}

#[tokio::test]
async fn rollback_reapplies_the_previous_set_from_its_kept_copy() {
    let Some(bed) = testbed!(moto) else {
        return;
    };
    let config = Config::new(bed, "prune = true").await;
    let first = config.run(bed, &key("AKIDCFGRB1"), &["deploy", "--all", "--json"]);
    first.assert_success();
    let first_tag = service(&first.json())["tag"].as_str().unwrap().to_owned();
    let before = config.items().await;
    config.edit(
        "config/repos/web.yaml",
        "default_branch: main",
        "default_branch: release",
    );
    config.repo.remove("config/repos/api.json");
    config.repo.commit("second");
    config
        .run(bed, &key("AKIDCFGRB2"), &["deploy", "--all"])
        .assert_success();
    assert!(!config.items().await.contains_key("repo#acme/api"));

    let back = config.run(
        bed,
        &key("AKIDCFGRB3"),
        &["rollback", "--service", "repos", "--json"],
    );
    back.assert_success();
    assert_no_secret(&back);
    assert_eq!(
        service(&back.json())["action"],
        "rolled_back",
        "{}",
        back.stdout
    );
    assert_eq!(
        config.items().await,
        before,
        "the first set is back, item for item"
    );
    assert_eq!(config.tag().await.as_deref(), Some(first_tag.as_str()));
    let status = config.run(bed, &key("AKIDCFGRB4"), &["status", "--json"]);
    assert_eq!(
        service(&status.json())["in_sync"],
        true,
        "{}",
        status.stdout
    );
    // The copy is content-addressed in the bucket.
    let sdk = bed.sdk_config().await;
    let listed = aws_sdk_s3::Client::new(&sdk)
        .list_objects_v2()
        .bucket(&config.bucket)
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert!(
        keys.iter().all(
            |k| k.starts_with(&format!("deployer/{}/repos/", config.project))
                && k.ends_with(".json")
        ),
        "{keys:?}"
    );
}

#[tokio::test]
#[cfg_attr(
    not(feature = "slow"),
    ignore = "slow: `cargo xtask test` runs it (--features deployer-tests/slow)"
)]
async fn a_kill_mid_apply_leaves_a_state_the_next_run_converges_from() {
    let Some(bed) = testbed!(moto) else {
        return;
    };
    let config = Config::new(bed, "").await;
    // 150 more items: two transactions; the second is held until the process is dead.
    let mut many = String::new();
    for n in 0..150 {
        many.push_str(&format!(
            "[[items]]\npk = \"repo#bulk/{n:03}\"\nsk = \"config\"\nrepository = \"bulk/{n:03}\"\ndefault_branch = \"main\"\n\n"
        ));
    }
    config.repo.write("config/repos/bulk.toml", many);
    config.repo.commit("bulk");
    let proxy = FaultProxy::start(
        bed,
        &Faults::new().hold("^TransactWriteItems$", Some("repo#bulk/149"), 60_000),
    );
    let mut command = deployer_tests::deployer_command(bed);
    command
        .current_dir(config.repo.path())
        .env("AWS_ENDPOINT_URL", proxy.url())
        .env("DEPLOYER_LOCK_LEASE", "3s")
        .args(["deploy", "--all", "-v"]);
    let mut run = LiveRun::spawn(command);
    let first = run.wait_for(Duration::from_secs(60), |line| {
        line.message.starts_with("wrote 100 of 154 items")
    });
    assert!(first.is_some(), "{}", run.stderr_so_far());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while proxy.stats().holding == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second write was never held"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = run.kill();
    assert_no_secret(&killed);
    drop(proxy);
    assert_eq!(
        config.items().await.len(),
        100,
        "the first transaction only"
    );
    assert_eq!(
        config.tag().await,
        None,
        "nothing is recorded for a killed apply"
    );

    let again = config.run(bed, &key("AKIDCFGKILL"), &["deploy", "--all", "--json"]);
    again.assert_success();
    let report = again.json();
    assert_eq!(service(&report)["action"], "updated", "{report}");
    assert_eq!(
        service(&report)["ids"]["written"],
        "54",
        "only what was missing: {report}"
    );
    assert_eq!(config.items().await.len(), 154);
    let status = config.run(bed, &key("AKIDCFGKILLST"), &["status", "--json"]);
    assert_eq!(
        service(&status.json())["in_sync"],
        true,
        "{}",
        status.stdout
    );
}

#[tokio::test]
async fn an_ssm_prefix_gets_one_parameter_per_leaf_and_secure_strings_for_secrets() {
    let Some(bed) = testbed!(moto) else {
        return;
    };
    let project = unique_name("cfgssm");
    let bucket = format!("{project}-deployer");
    let sdk = bed.sdk_config().await;
    aws_sdk_s3::Client::new(&sdk)
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let prefix = format!("/{project}/flags");
    ssm.put_parameter()
        .name(format!("/{project}/flags-prefix"))
        .value(&prefix)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let repo = FixtureRepo::new();
    repo.write(
        "deployer.toml",
        format!(
            "[project]\nname = \"{project}\"\nregion = \"us-east-1\"\n\n[services.flags]\nkind = \"config\"\nsource = \"flags\"\nssm = {{ prefix = {{ ssm = \"/{project}/flags-prefix\" }} }}\nsecret = [\"github.token\"]\nprune = true\ns3_bucket = \"{bucket}\"\n"
        ),
    );
    repo.write(
        "flags/search.yaml",
        format!("enabled: true\nlimit: 25\nregions: [eu, us]\ngithub:\n  token: {SECRET}\n"),
    );
    repo.commit("flags");
    let run = |key: &str, args: &[&str]| {
        Deployer::new()
            .current_dir(repo.path())
            .bed(bed)
            .env("AWS_ACCESS_KEY_ID", key)
            .args(args)
            .run()
    };
    let first = run(&key("AKIDSSMFIRST"), &["deploy", "--all", "--json", "-v"]);
    first.assert_success();
    assert_no_secret(&first);
    let get = |name: String| {
        let ssm = ssm.clone();
        async move {
            let out = ssm
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .unwrap();
            let p = out.parameter().unwrap();
            (
                p.r#type().unwrap().as_str().to_owned(),
                p.value().unwrap().to_owned(),
            )
        }
    };
    assert_eq!(
        get(format!("{prefix}/search/github/token")).await,
        ("SecureString".into(), SECRET.into())
    );
    assert_eq!(
        get(format!("{prefix}/search/limit")).await,
        ("String".into(), "25".into())
    );
    assert_eq!(
        get(format!("{prefix}/search/regions")).await,
        ("StringList".into(), "eu,us".into())
    );
    let noop_key = key("AKIDSSMNOOP");
    let noop = run(&noop_key, &["deploy", "--all", "--json"]);
    assert_eq!(
        noop.json()["services"][0]["action"],
        "unchanged",
        "{}",
        noop.stdout
    );
    assert!(writes(&calls(bed, &noop_key)).is_empty());

    repo.write("flags/search.yaml", "enabled: false\nlimit: 25\n");
    repo.commit("fewer");
    let plan = run(&key("AKIDSSMPLAN"), &["plan"]);
    plan.assert_success();
    assert!(
        plan.stdout
            .contains("flags: 1 changed, 2 removed, 1 unchanged"),
        "{}",
        plan.stdout
    );
    assert_no_secret(&plan);
    run(&key("AKIDSSMDEPLOY"), &["deploy", "--all"]).assert_success();
    assert_eq!(get(format!("{prefix}/search/enabled")).await.1, "false");
    let gone = ssm
        .get_parameter()
        .name(format!("{prefix}/search/github/token"))
        .send()
        .await;
    assert!(gone.is_err(), "pruned");
}
