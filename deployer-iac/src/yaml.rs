//! CloudFormation YAML as the JSON CloudFormation itself reads: every short-form tag becomes
//! its long form (`!Ref X` → `{"Ref": "X"}`, `!GetAtt A.B` → `{"Fn::GetAtt": ["A", "B"]}`,
//! `!Condition C` → `{"Condition": "C"}`, `!Sub …`/`!Join …`/any other `!Name …` →
//! `{"Fn::Name": …}`). Plain scalars are typed (booleans, null, numbers); quoted ones are
//! strings; anchors and aliases are followed.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::IacError;

/// Parses one YAML document of a template.
pub(crate) fn parse(text: &str) -> Result<Value, IacError> {
    let mut builder = Builder::default();
    Parser::new_from_str(text)
        .load(&mut builder, false)
        .map_err(|error| IacError::Template {
            line: error.marker().line(),
            message: error.info().to_owned(),
        })?;
    if let Some((line, message)) = builder.error {
        return Err(IacError::Template { line, message });
    }
    Ok(builder.done.unwrap_or(Value::Null))
}

enum Frame {
    /// The items, the tag and the anchor of the sequence.
    List(Vec<Value>, Option<Tag>, usize),
    /// The map, the key waiting for its value, the tag and the anchor.
    Map(Map<String, Value>, Option<String>, Option<Tag>, usize),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    done: Option<Value>,
    anchors: HashMap<usize, Value>,
    error: Option<(usize, String)>,
}

impl Builder {
    fn fail(&mut self, line: usize, message: String) {
        if self.error.is_none() {
            self.error = Some((line, message));
        }
    }

    fn push(&mut self, value: Value, line: usize) {
        let bad_key = match self.stack.last_mut() {
            None => {
                self.done = Some(value);
                false
            }
            Some(Frame::List(items, ..)) => {
                items.push(value);
                false
            }
            Some(Frame::Map(map, key, ..)) => match key.take() {
                Some(name) => {
                    map.insert(name, value);
                    false
                }
                None => match value {
                    Value::String(name) => {
                        *key = Some(name);
                        false
                    }
                    Value::Number(n) => {
                        *key = Some(n.to_string());
                        false
                    }
                    Value::Bool(b) => {
                        *key = Some(b.to_string());
                        false
                    }
                    _ => true,
                },
            },
        };
        if bad_key {
            self.fail(line, "a map key is not a scalar".into());
        }
    }

    fn finish(&mut self, value: Value, tag: Option<Tag>, anchor: usize, line: usize) {
        let value = long_form(tag, value);
        if anchor > 0 {
            self.anchors.insert(anchor, value.clone());
        }
        self.push(value, line);
    }
}

/// The long form of a value written with a short-form tag.
fn long_form(tag: Option<Tag>, value: Value) -> Value {
    let Some(tag) = tag.filter(|t| t.handle == "!") else {
        return value;
    };
    let (key, value) = match tag.suffix.as_str() {
        "Ref" => ("Ref".to_owned(), value),
        "Condition" => ("Condition".to_owned(), value),
        "GetAtt" => {
            let value = match value {
                Value::String(text) => match text.split_once('.') {
                    Some((resource, attribute)) => Value::Array(vec![
                        Value::String(resource.to_owned()),
                        Value::String(attribute.to_owned()),
                    ]),
                    None => Value::String(text),
                },
                other => other,
            };
            ("Fn::GetAtt".to_owned(), value)
        }
        name => (format!("Fn::{name}"), value),
    };
    Value::Object(Map::from_iter([(key, value)]))
}

/// A plain scalar as the YAML core schema types it; quoted scalars stay strings.
fn scalar(text: String, style: TScalarStyle, tag: Option<&Tag>) -> Value {
    if !matches!(style, TScalarStyle::Plain)
        || tag.is_some_and(|t| t.handle == "!" || t.suffix == "str")
    {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = text.parse::<i64>() {
        return Value::Number(n.into());
    }
    if text.chars().any(|c| c.is_ascii_digit())
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Value::Number(n);
    }
    Value::String(text)
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let line = mark.line();
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let value = scalar(text, style, tag.as_ref());
                // `!Ref ""`-style tags on an empty plain scalar keep the empty string.
                let value = match (&tag, value) {
                    (Some(t), Value::Null) if t.handle == "!" => Value::String(String::new()),
                    (_, value) => value,
                };
                self.finish(value, tag, anchor, line);
            }
            Event::SequenceStart(anchor, tag) => {
                self.stack.push(Frame::List(Vec::new(), tag, anchor));
            }
            Event::MappingStart(anchor, tag) => {
                self.stack.push(Frame::Map(Map::new(), None, tag, anchor));
            }
            Event::SequenceEnd => {
                if let Some(Frame::List(items, tag, anchor)) = self.stack.pop() {
                    self.finish(Value::Array(items), tag, anchor, line);
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(map, _, tag, anchor)) = self.stack.pop() {
                    self.finish(Value::Object(map), tag, anchor, line);
                }
            }
            Event::Alias(anchor) => match self.anchors.get(&anchor).cloned() {
                Some(value) => self.push(value, line),
                None => self.fail(line, "an alias of an unknown anchor".into()),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}
