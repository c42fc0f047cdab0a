//! Which values are secret: the names a service marks (`secret = ["webhook_secret",
//! "github.token"]`), and how a secret value is shown (never).

use std::collections::BTreeMap;

use deployer_core::changes::REDACTED;

use crate::value::Value;

/// The names marked secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    /// A bare name matches a key at any depth; a dotted path the key at that path.
    names: Vec<String>,
}

impl Secrets {
    /// The secrets of a service.
    pub fn new(names: &[String]) -> Self {
        Secrets {
            names: names.to_vec(),
        }
    }

    /// The names, as the manifest lists them.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether the value at `path` (keys from the item's root; list indices are skipped) is
    /// secret, or lies under a secret key.
    pub fn covers<S: AsRef<str>>(&self, path: &[S]) -> bool {
        let keys: Vec<&str> = path
            .iter()
            .map(AsRef::as_ref)
            .filter(|k| k.parse::<usize>().is_err())
            .collect();
        (1..=keys.len()).any(|len| {
            let prefix = &keys[..len];
            self.names.iter().any(|name| {
                if name.contains('.') {
                    name == &prefix.join(".")
                } else {
                    prefix.last() == Some(&name.as_str())
                }
            })
        })
    }

    /// Whether a secret lies anywhere in the value at `path` (itself or below).
    pub fn contains_secret(&self, value: &Value, path: &[String]) -> bool {
        let mut path = path.to_vec();
        let mut found = false;
        walk(value, &mut path, &mut |p| found |= self.covers(p));
        found
    }

    /// `value` at `path` in one line, every secret value in it replaced by [`REDACTED`].
    pub fn render(&self, path: &[String], value: &Value) -> String {
        if self.covers(path) {
            return REDACTED.to_owned();
        }
        match value {
            Value::Map(map) => {
                let shown: BTreeMap<String, Value> = map
                    .iter()
                    .map(|(key, inner)| {
                        let mut inner_path = path.to_vec();
                        inner_path.push(key.clone());
                        let rendered = if self.covers(&inner_path) {
                            Value::Foreign(REDACTED.to_owned())
                        } else if self.contains_secret(inner, &inner_path) {
                            Value::Foreign(self.render(&inner_path, inner))
                        } else {
                            inner.clone()
                        };
                        (key.clone(), rendered)
                    })
                    .collect();
                Value::Map(shown).to_string()
            }
            Value::List(items) if self.contains_secret(value, path) => {
                let shown: Vec<Value> = items
                    .iter()
                    .map(|item| Value::Foreign(self.render(path, item)))
                    .collect();
                Value::List(shown).to_string()
            }
            other => other.to_string(),
        }
    }
}

fn walk(value: &Value, path: &mut Vec<String>, visit: &mut dyn FnMut(&[String])) {
    visit(path);
    match value {
        Value::Map(map) => {
            for (key, inner) in map {
                path.push(key.clone());
                walk(inner, path, visit);
                path.pop();
            }
        }
        Value::List(items) => {
            for inner in items {
                walk(inner, path, visit);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> Vec<String> {
        text.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn names_match_at_any_depth_and_paths_exactly() {
        let secrets = Secrets::new(&["token".into(), "github.app_key".into()]);
        assert!(secrets.covers(&path("token")));
        assert!(secrets.covers(&path("a.token")));
        assert!(secrets.covers(&path("token.inner")));
        assert!(secrets.covers(&path("github.app_key")));
        assert!(!secrets.covers(&path("other.app_key")));
        assert!(!secrets.covers(&path("tokens")));
    }

    #[test]
    fn rendering_never_shows_a_secret() {
        let secrets = Secrets::new(&["token".into()]);
        let value = Value::Map(BTreeMap::from([
            ("name".into(), Value::String("web".into())),
            ("token".into(), Value::String("hunter2-very-secret".into())),
        ]));
        let shown = secrets.render(&path("github"), &value);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("web"), "{shown}");
        assert_eq!(
            secrets.render(&path("token"), &Value::String("hunter2".into())),
            REDACTED
        );
    }
}
