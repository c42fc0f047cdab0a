use std::path::Path;

use deployer_core::manifest::{ConfigStore, ConfigTarget};

use super::*;

fn target(store: ConfigStore, schema: Option<&str>, secret: &[&str]) -> ConfigTarget {
    ConfigTarget {
        source: "config".into(),
        schema: schema.map(str::to_owned),
        store,
        secret: secret.iter().map(|s| (*s).to_owned()).collect(),
        prune: false,
        adopt: false,
        s3_bucket: "b".into(),
        s3_key_prefix: None,
    }
}

fn table() -> ConfigStore {
    ConfigStore::Dynamodb {
        table: "t".into(),
        key: vec!["pk".into(), "sk".into()],
    }
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["pk", "sk", "default_branch"],
  "properties": {
    "default_branch": { "type": "string" },
    "stars": { "type": "integer", "minimum": 0 },
    "webhook_secret": { "type": "string", "minLength": 20 }
  }
}"#;

#[test]
fn the_same_items_in_any_format_are_the_same_set() {
    let json = tempfile::tempdir().unwrap();
    write(
        json.path(),
        &[(
            "config/web.json",
            r#"{"pk": "repo#acme/web", "sk": "config", "stars": 1.50e1, "big": 9007199254740993, "tags": ["a", "b"], "nested": {"x": null, "y": true}}"#,
        )],
    );
    let yaml = tempfile::tempdir().unwrap();
    write(
        yaml.path(),
        &[(
            "config/repos.yaml",
            "items:\n  - pk: repo#acme/web\n    sk: config\n    stars: 15\n    big: 9007199254740993\n    tags: [a, b]\n    nested:\n      y: true\n      x: ~\n",
        )],
    );
    let toml = tempfile::tempdir().unwrap();
    write(
        toml.path(),
        &[(
            "config/web.toml",
            "pk = \"repo#acme/web\"\nsk = \"config\"\nstars = 15\nbig = 9007199254740993\ntags = [\"a\", \"b\"]\n[nested]\ny = true\n",
        )],
    );
    let target = target(table(), None, &[]);
    let a = ConfigSet::load(json.path(), &target).unwrap();
    let b = ConfigSet::load(yaml.path(), &target).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.artifact().tag, b.artifact().tag);
    let item = &a.items["pk=\"repo#acme/web\" sk=\"config\""];
    assert_eq!(
        item.attributes["big"],
        Value::Number("9007199254740993".into())
    );
    // TOML has no null: the same item without `x` is another set.
    let c = ConfigSet::load(toml.path(), &target).unwrap();
    assert_ne!(a.artifact().tag, c.artifact().tag);
    // The document reads back as the same set.
    assert_eq!(ConfigSet::from_bytes(&a.to_bytes()).unwrap(), a);
    assert_eq!(a.artifact().tag.len(), 24);
}

#[test]
fn schema_errors_name_file_line_and_rule_and_hide_secrets() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("config/repo.schema.json", SCHEMA),
            (
                "config/repos/web.yaml",
                "pk: repo#acme/web\nsk: config\ndefault_branch: 5\nwebhook_secret: hunter2\n",
            ),
            (
                "config/repos/api.json",
                "{\n  \"pk\": \"repo#acme/api\",\n  \"sk\": \"config\",\n  \"stars\": -1\n}",
            ),
        ],
    );
    let mut target = target(
        table(),
        Some("config/repo.schema.json"),
        &["webhook_secret"],
    );
    target.source = "config/repos".into();
    let error = ConfigSet::load(dir.path(), &target).unwrap_err();
    let diagnostics = error.diagnostics();
    let text = error.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    let found: Vec<(&str, usize, &str)> = diagnostics
        .iter()
        .map(|d| (d.file.as_str(), d.line, d.pointer.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            ("config/repos/api.json", 1, ""),
            ("config/repos/api.json", 4, "/stars"),
            ("config/repos/web.yaml", 3, "/default_branch"),
            ("config/repos/web.yaml", 4, "/webhook_secret"),
        ],
        "{text}"
    );
    assert!(diagnostics[0].message.contains("default_branch"), "{text}");
    assert_eq!(
        diagnostics[0].rule.as_deref(),
        Some("required at config/repo.schema.json#/required")
    );
    assert_eq!(
        diagnostics[1].rule.as_deref(),
        Some("minimum at config/repo.schema.json#/properties/stars/minimum")
    );
    assert!(diagnostics[2].message.contains("5"), "{text}");
    assert!(
        text.contains("config/repos/web.yaml:3: /default_branch: "),
        "{text}"
    );
}

#[test]
fn table_rules_are_checked_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("config/a.json", r#"{"pk": "x", "sk": "y"}"#),
            (
                "config/b.json",
                "{\"items\": [\n{\"pk\": \"x\", \"sk\": \"y\"},\n{\"pk\": \"\", \"sk\": \"z\"},\n{\"sk\": \"z\"},\n{\"pk\": \"p\", \"sk\": \"q\", \"deployer:owner\": \"me\"},\n{\"pk\": \"n\", \"sk\": \"q\", \"n\": 123456789012345678901234567890123456789}\n]}",
            ),
        ],
    );
    let error = ConfigSet::load(dir.path(), &target(table(), None, &[])).unwrap_err();
    let found: Vec<(usize, &str)> = error
        .diagnostics()
        .iter()
        .map(|d| (d.line, d.rule.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        found,
        [
            (2, "one item per key"),
            (3, "dynamodb key"),
            (4, "dynamodb key"),
            (5, "dynamodb attribute"),
            (6, "dynamodb number"),
        ],
        "{error}"
    );
}

#[test]
fn ssm_sources_are_one_parameter_per_leaf() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "config/flags/search.toml",
                "enabled = true\nlimit = 10\nregions = [\"eu\", \"us\"]\n[github]\ntoken = \"ghp_secret_value\"\n",
            ),
            ("config/flags/bad.yaml", "empty: ''\nnested:\n  - {a: 1}\n"),
        ],
    );
    let target = target(
        ConfigStore::Ssm {
            prefix: "/acme".into(),
        },
        None,
        &["github.token"],
    );
    let error = ConfigSet::load(dir.path(), &target).unwrap_err();
    assert_eq!(error.diagnostics().len(), 2, "{error}");
    std::fs::remove_file(dir.path().join("config/flags/bad.yaml")).unwrap();
    let set = ConfigSet::load(dir.path(), &target).unwrap();
    let names: Vec<&str> = set.items.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "flags/search/enabled",
            "flags/search/github/token",
            "flags/search/limit",
            "flags/search/regions"
        ]
    );
    let kind = |name: &str| set.items[name].attributes["type"].clone();
    assert_eq!(
        kind("flags/search/github/token"),
        Value::String("SecureString".into())
    );
    assert_eq!(
        kind("flags/search/regions"),
        Value::String("StringList".into())
    );
    assert_eq!(
        set.items["flags/search/regions"].attributes["value"],
        Value::String("eu,us".into())
    );
    assert_eq!(
        set.items["flags/search/enabled"].attributes["value"],
        Value::String("true".into())
    );
}

#[test]
fn a_schema_that_refers_to_another_document_is_refused_without_fetching_it() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            (
                "config/repo.schema.json",
                r#"{"$ref": "https://schemas.example.invalid/repo.json"}"#,
            ),
            ("config/repos/a.json", r#"{"pk": "x", "sk": "y"}"#),
        ],
    );
    let mut target = target(table(), Some("config/repo.schema.json"), &[]);
    target.source = "config/repos".into();
    // The resolvers that fetch are compiled out: compiling the schema fails, it never waits.
    let error = ConfigSet::load(dir.path(), &target).unwrap_err();
    let diagnostic = &error.diagnostics()[0];
    assert_eq!(diagnostic.file, "config/repo.schema.json");
    assert!(
        diagnostic.message.contains("not a usable JSON Schema"),
        "{error}"
    );
}
