//! JSON Schema validation of config items (drafts 4 to 2020-12, as `jsonschema` supports
//! them). A schema is one self-contained document: `$ref`s to other files or URLs are not
//! fetched (the crate's network and file resolvers are compiled out), so validation reads
//! nothing but the schema and the items.

use crate::secret::Secrets;
use crate::source::{Diagnostic, Parsed};
use crate::value::Value;

/// A compiled schema.
pub struct Schema {
    path: String,
    validator: jsonschema::Validator,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schema")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Schema {
    /// Compiles the schema `parsed` read from `path` (relative to the root).
    pub fn compile(path: &str, parsed: &Parsed) -> Result<Schema, Diagnostic> {
        let json = parsed.value.to_json();
        jsonschema::validator_for(&json)
            .map(|validator| Schema {
                path: path.to_owned(),
                validator,
            })
            .map_err(|error| Diagnostic {
                file: path.to_owned(),
                line: parsed.line(&error.schema_path().to_string()),
                pointer: error.schema_path().to_string(),
                message: format!("not a usable JSON Schema: {error}"),
                rule: None,
            })
    }

    /// Every rule `value` (the item at `pointer` of `file`) breaks, located in the file. The
    /// message of a value under a secret key does not show the value.
    pub fn check(
        &self,
        file: &str,
        parsed: &Parsed,
        pointer: &str,
        value: &Value,
        secrets: &Secrets,
    ) -> Vec<Diagnostic> {
        let instance = value.to_json();
        self.validator
            .iter_errors(&instance)
            .map(|error| {
                let inner = error.instance_path().to_string();
                let at = format!("{pointer}{inner}");
                let path: Vec<String> = inner
                    .split('/')
                    .skip(1)
                    .map(|t| t.replace("~1", "/").replace("~0", "~"))
                    .collect();
                let inner_value = value.at(&path);
                let hidden = secrets.covers(&path)
                    || inner_value.is_some_and(|v| secrets.contains_secret(v, &path));
                let message = if hidden {
                    error.masked_with("(secret)").to_string()
                } else {
                    error.to_string()
                };
                // An unexpected key is located where it is written, not at its object.
                let line = match error.kind() {
                    jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                        unexpected.first().map_or_else(
                            || parsed.line(&at),
                            |key| parsed.line(&crate::source::pointer_push(&at, key)),
                        )
                    }
                    _ => parsed.line(&at),
                };
                Diagnostic {
                    file: file.to_owned(),
                    line,
                    pointer: at,
                    message,
                    rule: Some(format!(
                        "{} at {}#{}",
                        error.kind().keyword(),
                        self.path,
                        error.schema_path()
                    )),
                }
            })
            .collect()
    }
}
