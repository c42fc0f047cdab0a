//! YAML (one document, the 1.2 core schema), with the line of every value. Plain scalars
//! are typed as the core schema says (`true`, `null`, `~`, numbers); quoted scalars are
//! strings. Anchors, aliases and tags other than `!!str` are refused: a config item is data,
//! written out.

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::{Parsed, pointer_push};
use crate::value::{Value, canonical_number};

/// Parses `text` as one YAML document.
pub(crate) fn parse(text: &str) -> Result<Parsed, (usize, String)> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|error| (error.marker().line(), error.info().to_owned()))?;
    if let Some(error) = builder.error {
        return Err(error);
    }
    let value = builder.done.unwrap_or(Value::Null);
    builder.locations.entry(String::new()).or_insert(1);
    Ok(Parsed {
        value,
        locations: builder.locations,
    })
}

enum Frame {
    List(String, Vec<Value>),
    /// pointer, map, the key waiting for its value (and its line)
    Map(String, BTreeMap<String, Value>, Option<String>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    done: Option<Value>,
    locations: BTreeMap<String, usize>,
    error: Option<(usize, String)>,
}

impl Builder {
    /// The pointer of the next value, and whether it is a map key.
    fn next_pointer(&self) -> (String, bool) {
        match self.stack.last() {
            None => (String::new(), false),
            Some(Frame::List(pointer, items)) => {
                (pointer_push(pointer, &items.len().to_string()), false)
            }
            Some(Frame::Map(pointer, _, None)) => (pointer.clone(), true),
            Some(Frame::Map(pointer, _, Some(key))) => (pointer_push(pointer, key), false),
        }
    }

    fn fail(&mut self, line: usize, message: String) {
        if self.error.is_none() {
            self.error = Some((line, message));
        }
    }

    fn push(&mut self, value: Value, line: usize) {
        let error = match self.stack.last_mut() {
            None => {
                self.done = Some(value);
                None
            }
            Some(Frame::List(_, items)) => {
                items.push(value);
                None
            }
            Some(Frame::Map(_, map, key)) => match key.take() {
                Some(name) => {
                    let duplicate = map.insert(name.clone(), value).is_some();
                    duplicate.then(|| format!("duplicate key `{name}`"))
                }
                None => match value {
                    Value::String(name) | Value::Number(name) => {
                        *key = Some(name);
                        None
                    }
                    Value::Bool(b) => {
                        *key = Some(b.to_string());
                        None
                    }
                    other => Some(format!(
                        "a map key must be a string, not a {}",
                        other.type_name()
                    )),
                },
            },
        };
        if let Some(message) = error {
            self.fail(line, message);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let (pointer, is_key) = self.next_pointer();
                if anchor != 0 {
                    return self.fail(line, "anchors are not supported in config sources".into());
                }
                let forced_string = match &tag {
                    None => false,
                    Some(tag) if tag.handle == "tag:yaml.org,2002:" && tag.suffix == "str" => true,
                    Some(tag) if tag.handle == "!!" && tag.suffix == "str" => true,
                    Some(tag) => {
                        return self.fail(
                            line,
                            format!("the tag `{}{}` is not supported", tag.handle, tag.suffix),
                        );
                    }
                };
                let value = if forced_string || style != TScalarStyle::Plain {
                    Value::String(text)
                } else {
                    match plain(&text) {
                        Ok(value) => value,
                        Err(message) => return self.fail(line, message),
                    }
                };
                if !is_key {
                    self.locations.insert(pointer, line);
                }
                self.push(value, line);
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) if anchor != 0 => {
                self.fail(line, "anchors are not supported in config sources".into());
            }
            Event::SequenceStart(..) => {
                let (pointer, is_key) = self.next_pointer();
                if is_key {
                    return self.fail(line, "a map key must be a string, not a list".into());
                }
                self.locations.insert(pointer.clone(), line);
                self.stack.push(Frame::List(pointer, Vec::new()));
            }
            Event::MappingStart(..) => {
                let (pointer, is_key) = self.next_pointer();
                if is_key {
                    return self.fail(line, "a map key must be a string, not a map".into());
                }
                self.locations.insert(pointer.clone(), line);
                self.stack.push(Frame::Map(pointer, BTreeMap::new(), None));
            }
            Event::SequenceEnd => {
                if let Some(Frame::List(_, items)) = self.stack.pop() {
                    self.push(Value::List(items), line);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(_, map, _)) = self.stack.pop() {
                    self.push(Value::Map(map), line);
                }
            }
            Event::Alias(_) => {
                self.fail(line, "aliases are not supported in config sources".into())
            }
            _ => {}
        }
    }
}

/// A plain scalar, typed by the YAML 1.2 core schema.
fn plain(text: &str) -> Result<Value, String> {
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "-.inf" | ".nan" | ".NaN" | ".NAN" => {
            return Err(format!(
                "`{text}` is not a finite number (a store cannot hold it)"
            ));
        }
        _ => {
            if let Some(hex) = text.strip_prefix("0x") {
                return i128::from_str_radix(hex, 16)
                    .map(|n| Value::Number(n.to_string()))
                    .map_err(|_| format!("`{text}` is not a number"));
            }
            if let Some(octal) = text.strip_prefix("0o") {
                return i128::from_str_radix(octal, 8)
                    .map(|n| Value::Number(n.to_string()))
                    .map_err(|_| format!("`{text}` is not a number"));
            }
            let numeric = text.starts_with(|c: char| c.is_ascii_digit() || "+-.".contains(c))
                && text
                    .chars()
                    .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
                && text.chars().any(|c| c.is_ascii_digit());
            match canonical_number(text) {
                Some(number) if numeric => Value::Number(number),
                _ => Value::String(text.to_owned()),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_schema_types_plain_scalars() {
        let text = "repo: acme/web\nbranch: 'true'\nenabled: true\nlimit: 0x10\nratio: 1.50\nbig: 123456789012345678901234567890\nnone: ~\nversion: 1.2.3\nlist:\n  - a\n  - 2\n";
        let parsed = parse(text).unwrap();
        let Value::Map(map) = &parsed.value else {
            panic!("{:?}", parsed.value)
        };
        assert_eq!(map["branch"], Value::String("true".into()));
        assert_eq!(map["enabled"], Value::Bool(true));
        assert_eq!(map["limit"], Value::Number("16".into()));
        assert_eq!(map["ratio"], Value::Number("1.5".into()));
        assert_eq!(
            map["big"],
            Value::Number("123456789012345678901234567890".into())
        );
        assert_eq!(map["none"], Value::Null);
        assert_eq!(map["version"], Value::String("1.2.3".into()));
        assert_eq!(
            map["list"],
            Value::List(vec![Value::String("a".into()), Value::Number("2".into())])
        );
        assert_eq!(parsed.locations["/ratio"], 5);
        assert_eq!(parsed.locations["/list/1"], 11);
    }

    #[test]
    fn what_is_not_plain_data_is_refused() {
        assert!(parse("a: &x 1\nb: *x\n").is_err());
        assert_eq!(parse("a: 1\na: 2\n").unwrap_err().0, 2);
        assert!(parse("a: .inf\n").is_err());
        assert!(parse("a: [1\n").is_err());
    }
}
