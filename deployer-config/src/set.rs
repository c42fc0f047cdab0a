//! The config set: every item of a service's sources, validated, in a canonical form whose
//! SHA-256 is the service's tag.
//!
//! # The set document (format 1)
//!
//! One JSON object, keys sorted, no whitespace:
//!
//! ```text
//! {"format":"deployer-config-set/1",
//!  "items":[{"attributes":{"pk":{"S":"repo#acme/web"},"sk":{"S":"config"},"stars":{"N":"12"}},"id":"pk=\"repo#acme/web\" sk=\"config\""}, …],
//!  "prune":false,
//!  "secret":["webhook_secret"],
//!  "store":{"dynamodb":{"key":["pk","sk"]}}}
//! ```
//!
//! - `items` in id order; an item's attributes in DynamoDB's typed JSON (`S`, `N`, `BOOL`,
//!   `NULL`, `L`, `M`), numbers in canonical decimal text ([`canonical_number`]): `1.50` and
//!   `15e-1` are the same number and the same set. An SSM item is one parameter: its id is its
//!   name below the prefix (`acme/web/default_branch`), its attributes `type` (`String`,
//!   `StringList`, `SecureString`) and `value`.
//! - `prune`: whether items deployer wrote that the set lacks are deleted (turning it on
//!   changes what the store must hold, so it changes the tag).
//! - `secret`: the names marked secret (they decide `SecureString` and what output hides).
//! - `store`: the kind of store and, for DynamoDB, the key attributes. The table name and the
//!   SSM prefix are not in it (they may be lookups): the same source is the same tag wherever
//!   it is deployed; what the store holds is recorded with the table or prefix it went to.
//! - What is left out: file names, comments, formatting, key order, the source format.
//!
//! The tag is the first 24 hex digits of the SHA-256 of the document; the document itself is
//! what `deployer-config` keeps in S3 under its full hash (the rollback source).
//!
//! [`canonical_number`]: crate::value::canonical_number

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use deployer_core::ConfigArtifact;
use deployer_core::manifest::{ConfigStore, ConfigTarget};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::schema::Schema;
use crate::secret::Secrets;
use crate::source::{self, Diagnostic, SourceError, SourceFile};
use crate::value::{MAX_DIGITS, Value, significant_digits};

/// The format tag of the set document.
pub const FORMAT: &str = "deployer-config-set/1";

/// The attribute (DynamoDB) deployer marks its items with; its value is `<project>/<service>`.
/// SSM parameters carry the mark in their description: `deployer:owner=<project>/<service>`.
pub const OWNER: &str = "deployer:owner";

/// The largest DynamoDB item (400 KB), less room for the owner mark.
const MAX_ITEM_BYTES: usize = 400 * 1024 - 256;

/// How items are laid out in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Table items with these key attributes (partition key, then sort key).
    Dynamodb {
        /// The key attributes.
        key: Vec<String>,
    },
    /// One parameter per leaf.
    Ssm,
}

impl Layout {
    /// The layout of a store.
    pub fn of(store: &ConfigStore) -> Self {
        match store {
            ConfigStore::Dynamodb { key, .. } => Layout::Dynamodb { key: key.clone() },
            ConfigStore::Ssm { .. } => Layout::Ssm,
        }
    }
}

/// One item: a table row, or a parameter (`type` and `value`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// `pk="repo#acme/web" sk="config"`, or the parameter name below the prefix.
    pub id: String,
    /// Its attributes (key attributes included).
    pub attributes: BTreeMap<String, Value>,
}

/// A validated set of items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSet {
    /// How its items are laid out.
    pub layout: Layout,
    /// The names marked secret.
    pub secrets: Secrets,
    /// Whether items deployer wrote earlier that the set lacks are deleted (`prune`): it
    /// changes what the store must hold, so it is part of the set.
    pub prune: bool,
    /// The items by id.
    pub items: BTreeMap<String, Item>,
}

impl ConfigSet {
    /// Reads `target.source` under `root`, validates every item (against `target.schema` when
    /// set) and builds the set. Every problem is reported at once, located.
    pub fn load(root: &Path, target: &ConfigTarget) -> Result<ConfigSet, SourceError> {
        let files = source::read_dir(root, &target.source)?;
        let schema = match &target.schema {
            None => None,
            Some(path) => Some(load_schema(root, path)?),
        };
        let mut set = ConfigSet::from_files(
            &files,
            schema.as_ref(),
            Layout::of(&target.store),
            Secrets::new(&target.secret),
        )?;
        set.prune = target.prune;
        Ok(set)
    }

    /// Builds the set from parsed files.
    pub fn from_files(
        files: &[SourceFile],
        schema: Option<&Schema>,
        layout: Layout,
        secrets: Secrets,
    ) -> Result<ConfigSet, SourceError> {
        let mut problems = Vec::new();
        let mut items: BTreeMap<String, Item> = BTreeMap::new();
        let mut origins: BTreeMap<String, (String, usize)> = BTreeMap::new();
        for file in files {
            let candidates = match &layout {
                Layout::Dynamodb { .. } => rows(file, &mut problems),
                Layout::Ssm => vec![(String::new(), file.parsed.value.clone())],
            };
            for (pointer, value) in candidates {
                if let Some(schema) = schema {
                    let found = schema.check(&file.path, &file.parsed, &pointer, &value, &secrets);
                    if !found.is_empty() {
                        problems.extend(found);
                        continue;
                    }
                }
                let built = match &layout {
                    Layout::Dynamodb { key } => row(file, &pointer, value, key, &mut problems)
                        .into_iter()
                        .collect::<Vec<_>>(),
                    Layout::Ssm => parameters(file, &value, &secrets, &mut problems),
                };
                for (item, at) in built {
                    let line = file.parsed.line(&at);
                    if let Some((other, other_line)) = origins.get(&item.id) {
                        problems.push(Diagnostic {
                            file: file.path.clone(),
                            line,
                            pointer: at,
                            message: format!(
                                "item {} is also defined at {other}:{other_line}",
                                item.id
                            ),
                            rule: Some("one item per key".into()),
                        });
                        continue;
                    }
                    origins.insert(item.id.clone(), (file.path.clone(), line));
                    items.insert(item.id.clone(), item);
                }
            }
        }
        if !problems.is_empty() {
            problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            return Err(SourceError::Invalid(problems));
        }
        Ok(ConfigSet {
            layout,
            secrets,
            prune: false,
            items,
        })
    }

    /// The canonical set document (module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        let store = match &self.layout {
            Layout::Dynamodb { key } => json!({ "dynamodb": { "key": key } }),
            Layout::Ssm => json!({ "ssm": {} }),
        };
        let items: Vec<serde_json::Value> = self
            .items
            .values()
            .map(|item| {
                let attributes: serde_json::Map<String, serde_json::Value> = item
                    .attributes
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_typed()))
                    .collect();
                json!({ "attributes": attributes, "id": item.id })
            })
            .collect();
        let document = json!({
            "format": FORMAT,
            "items": items,
            "prune": self.prune,
            "secret": self.secrets.names(),
            "store": store,
        });
        // serde_json writes a map in key order (sorted: every map here is built sorted).
        serde_json::to_vec(&document).unwrap_or_default()
    }

    /// Reads a set document back (a kept copy), checking its format.
    pub fn from_bytes(bytes: &[u8]) -> Result<ConfigSet, String> {
        let document: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|error| format!("not a set document: {error}"))?;
        if document["format"] != FORMAT {
            return Err(format!(
                "not a set document of format {FORMAT} (format {})",
                document["format"]
            ));
        }
        let layout = if let Some(dynamodb) = document["store"].get("dynamodb") {
            let key = dynamodb["key"]
                .as_array()
                .ok_or("the set document has no dynamodb key")?
                .iter()
                .map(|k| k.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or("the set document's dynamodb key is not a list of names")?;
            Layout::Dynamodb { key }
        } else {
            Layout::Ssm
        };
        let secret: Vec<String> = document["secret"]
            .as_array()
            .map(|names| {
                names
                    .iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut items = BTreeMap::new();
        for item in document["items"]
            .as_array()
            .ok_or("the set document has no items")?
        {
            let id = item["id"]
                .as_str()
                .ok_or("an item of the set document has no id")?;
            let attributes = item["attributes"]
                .as_object()
                .ok_or("an item of the set document has no attributes")?
                .iter()
                .map(|(k, v)| Some((k.clone(), Value::from_typed(v)?)))
                .collect::<Option<BTreeMap<_, _>>>()
                .ok_or_else(|| format!("item {id} of the set document has an unknown value"))?;
            items.insert(
                id.to_owned(),
                Item {
                    id: id.to_owned(),
                    attributes,
                },
            );
        }
        Ok(ConfigSet {
            layout,
            secrets: Secrets::new(&secret),
            prune: document["prune"].as_bool().unwrap_or(false),
            items,
        })
    }

    /// The artifact the engine deploys: the document, its hash and its tag.
    pub fn artifact(&self) -> ConfigArtifact {
        artifact(self.to_bytes(), self.items.len())
    }
}

/// The artifact of a set document's bytes.
pub fn artifact(bytes: Vec<u8>, items: usize) -> ConfigArtifact {
    let digest = Sha256::digest(&bytes);
    let sha256: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    ConfigArtifact {
        tag: sha256[..24].to_owned(),
        sha256,
        items,
        bytes: Arc::from(bytes),
    }
}

fn load_schema(root: &Path, path: &str) -> Result<Schema, SourceError> {
    let text = std::fs::read_to_string(root.join(path)).map_err(|source| SourceError::Read {
        path: root.join(path),
        source,
    })?;
    let parsed = source::parse_json(&text).map_err(|(line, message)| {
        SourceError::Invalid(vec![Diagnostic {
            file: path.to_owned(),
            line,
            pointer: String::new(),
            message,
            rule: None,
        }])
    })?;
    Schema::compile(path, &parsed).map_err(|d| SourceError::Invalid(vec![d]))
}

/// The rows of a DynamoDB source file: the file's table, or each of `items = [...]`.
fn rows(file: &SourceFile, problems: &mut Vec<Diagnostic>) -> Vec<(String, Value)> {
    let problem = |pointer: &str, message: String| Diagnostic {
        file: file.path.clone(),
        line: file.parsed.line(pointer),
        pointer: pointer.to_owned(),
        message,
        rule: None,
    };
    match &file.parsed.value {
        Value::Map(map) if map.len() == 1 && map.contains_key("items") => match &map["items"] {
            Value::List(list) => list
                .iter()
                .enumerate()
                .map(|(index, value)| (format!("/items/{index}"), value.clone()))
                .collect(),
            other => {
                problems.push(problem(
                    "/items",
                    format!("`items` is a list of items, not a {}", other.type_name()),
                ));
                Vec::new()
            }
        },
        Value::Map(_) => vec![(String::new(), file.parsed.value.clone())],
        other => {
            problems.push(problem(
                "",
                format!(
                    "a source file is one item (a table of attributes) or `items = [...]`, not a {}",
                    other.type_name()
                ),
            ));
            Vec::new()
        }
    }
}

/// One DynamoDB row, checked against what a table can hold.
fn row(
    file: &SourceFile,
    pointer: &str,
    value: Value,
    key: &[String],
    problems: &mut Vec<Diagnostic>,
) -> Option<(Item, String)> {
    let mut problem = |at: &str, message: String, rule: &str| {
        problems.push(Diagnostic {
            file: file.path.clone(),
            line: file.parsed.line(at),
            pointer: at.to_owned(),
            message,
            rule: Some(rule.to_owned()),
        });
    };
    let Value::Map(attributes) = value else {
        problem(
            pointer,
            format!(
                "an item is a table of attributes, not a {}",
                value.type_name()
            ),
            "dynamodb item",
        );
        return None;
    };
    let mut ok = true;
    let mut id = Vec::new();
    for name in key {
        let at = source::pointer_push(pointer, name);
        match attributes.get(name) {
            Some(Value::String(s)) if !s.is_empty() => {
                id.push(format!("{name}={}", Value::String(s.clone())))
            }
            Some(Value::Number(n)) => id.push(format!("{name}={n}")),
            Some(other) => {
                problem(
                    &at,
                    format!(
                        "the key attribute `{name}` must be a non-empty string or a number, not {}",
                        if matches!(other, Value::String(_)) {
                            "an empty string"
                        } else {
                            other.type_name()
                        }
                    ),
                    "dynamodb key",
                );
                ok = false;
            }
            None => {
                problem(
                    pointer,
                    format!("the item has no key attribute `{name}`"),
                    "dynamodb key",
                );
                ok = false;
            }
        }
    }
    for (name, inner) in &attributes {
        let at = source::pointer_push(pointer, name);
        if name.is_empty() || name == OWNER {
            problem(
                &at,
                format!(
                    "the attribute name `{name}` is reserved (deployer marks its items with `{OWNER}`)"
                ),
                "dynamodb attribute",
            );
            ok = false;
        }
        let mut numbers_ok = true;
        check_numbers(inner, &mut |n| {
            if significant_digits(n) > MAX_DIGITS {
                numbers_ok = false;
            }
        });
        if !numbers_ok {
            problem(
                &at,
                format!(
                    "a number has more than {MAX_DIGITS} significant digits: DynamoDB cannot keep it exactly"
                ),
                "dynamodb number",
            );
            ok = false;
        }
    }
    let item = Item {
        id: item_id(key, &attributes).unwrap_or_else(|| id.join(" ")),
        attributes,
    };
    let size: usize = item
        .attributes
        .iter()
        .map(|(k, v)| k.len() + v.to_typed().to_string().len())
        .sum();
    if size > MAX_ITEM_BYTES {
        problem(
            pointer,
            format!("the item is about {size} bytes: above DynamoDB's 400 KB item limit"),
            "dynamodb item size",
        );
        ok = false;
    }
    ok.then(|| (item, pointer.to_owned()))
}

/// The id of a row whose key attributes are `key`: `pk="repo#acme/web" sk="config"` (strings
/// quoted, numbers as they are); `None` when a key attribute is missing or is neither a
/// non-empty string nor a number.
pub fn item_id(key: &[String], attributes: &BTreeMap<String, Value>) -> Option<String> {
    key.iter()
        .map(|name| match attributes.get(name)? {
            Value::String(s) if !s.is_empty() => {
                Some(format!("{name}={}", Value::String(s.clone())))
            }
            Value::Number(n) => Some(format!("{name}={n}")),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()
        .map(|parts| parts.join(" "))
}

fn check_numbers(value: &Value, visit: &mut dyn FnMut(&str)) {
    match value {
        Value::Number(n) => visit(n),
        Value::List(items) => items.iter().for_each(|i| check_numbers(i, visit)),
        Value::Map(map) => map.values().for_each(|i| check_numbers(i, visit)),
        _ => {}
    }
}

/// The parameters of an SSM source file: one per leaf, named `<stem>/<key>/<key>`.
fn parameters(
    file: &SourceFile,
    value: &Value,
    secrets: &Secrets,
    problems: &mut Vec<Diagnostic>,
) -> Vec<(Item, String)> {
    let mut out = Vec::new();
    let Value::Map(_) = value else {
        problems.push(Diagnostic {
            file: file.path.clone(),
            line: 1,
            pointer: String::new(),
            message: format!(
                "an SSM source file is a table of parameters, not a {}",
                value.type_name()
            ),
            rule: Some("ssm parameters".into()),
        });
        return out;
    };
    let mut path = Vec::new();
    leaves(file, value, &mut path, secrets, problems, &mut out);
    out
}

fn leaves(
    file: &SourceFile,
    value: &Value,
    path: &mut Vec<String>,
    secrets: &Secrets,
    problems: &mut Vec<Diagnostic>,
    out: &mut Vec<(Item, String)>,
) {
    let pointer: String = path
        .iter()
        .fold(String::new(), |p, k| source::pointer_push(&p, k));
    let problem = |problems: &mut Vec<Diagnostic>, message: String| {
        problems.push(Diagnostic {
            file: file.path.clone(),
            line: file.parsed.line(&pointer),
            pointer: pointer.clone(),
            message,
            rule: Some("ssm parameter".into()),
        });
    };
    let secret = secrets.covers(path);
    let (kind, text) = match value {
        Value::Map(map) => {
            for (key, inner) in map {
                if key.is_empty()
                    || !key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                {
                    problem(
                        problems,
                        format!(
                            "`{key}` cannot be part of a parameter name (letters, digits, `_`, `.`, `-`)"
                        ),
                    );
                    continue;
                }
                path.push(key.clone());
                leaves(file, inner, path, secrets, problems, out);
                path.pop();
            }
            return;
        }
        Value::String(s) if s.is_empty() => {
            return problem(problems, "an SSM parameter cannot be empty".into());
        }
        Value::String(s) => ("String", s.clone()),
        Value::Number(n) => ("String", n.clone()),
        Value::Bool(b) => ("String", b.to_string()),
        Value::List(items) => {
            let mut texts = Vec::new();
            for item in items {
                match item {
                    Value::String(s) if !s.is_empty() && !s.contains(',') => texts.push(s.clone()),
                    Value::Number(n) => texts.push(n.clone()),
                    Value::Bool(b) => texts.push(b.to_string()),
                    _ => {
                        return problem(problems,
                            "a list becomes a StringList parameter: its items are non-empty strings without commas, numbers or booleans".into(),
                        );
                    }
                }
            }
            if texts.is_empty() {
                return problem(problems, "an SSM parameter cannot be an empty list".into());
            }
            if secret {
                return problem(
                    problems,
                    "a secret is a SecureString, which cannot be a list".into(),
                );
            }
            ("StringList", texts.join(","))
        }
        Value::Null | Value::Foreign(_) => {
            return problem(
                problems,
                format!("an SSM parameter cannot be {}", value.type_name()),
            );
        }
    };
    if path.is_empty() {
        return;
    }
    let kind = if secret { "SecureString" } else { kind };
    let name = format!("{}/{}", file.stem, path.join("/"));
    if name.split('/').count() > 14 {
        return problem(
            problems,
            format!("`{name}` is nested deeper than SSM's 15 levels allow"),
        );
    }
    out.push((
        Item {
            id: name,
            attributes: BTreeMap::from([
                ("type".to_owned(), Value::String(kind.to_owned())),
                ("value".to_owned(), Value::String(text)),
            ]),
        },
        pointer.clone(),
    ));
}

#[cfg(test)]
mod tests;
