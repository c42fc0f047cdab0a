//! The value of a config item, as read from any source format: JSON's types, with numbers
//! kept as exact decimal text (never through `f64`).

use std::collections::BTreeMap;
use std::fmt;

/// A config value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number in canonical decimal form ([`canonical_number`]): equal numbers have equal
    /// text, whatever the source wrote (`1.50`, `1.5`, `15e-1`).
    Number(String),
    /// A string.
    String(String),
    /// A list.
    List(Vec<Value>),
    /// A map, by key.
    Map(BTreeMap<String, Value>),
    /// What a store holds that no source can write (a DynamoDB set or binary), in one line:
    /// it never equals a source value.
    Foreign(String),
}

impl Value {
    /// The JSON type name, for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Foreign(_) => "foreign value",
        }
    }

    /// The value at `path` (map keys and list indices), if there is one.
    pub fn at<S: AsRef<str>>(&self, path: &[S]) -> Option<&Value> {
        let mut value = self;
        for token in path {
            value = match value {
                Value::Map(map) => map.get(token.as_ref())?,
                Value::List(items) => items.get(token.as_ref().parse::<usize>().ok()?)?,
                _ => return None,
            };
        }
        Some(value)
    }

    /// The value for a JSON Schema validator. Numbers go through `serde_json`'s own number
    /// (what the schema's `minimum` and `multipleOf` compare); the value written stays this one.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(text) => serde_json::from_str::<serde_json::Number>(text)
                .map(serde_json::Value::Number)
                .unwrap_or_else(|_| serde_json::Value::String(text.clone())),
            Value::String(s) | Value::Foreign(s) => serde_json::Value::String(s.clone()),
            Value::List(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Map(map) => serde_json::Value::Object(
                map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
            ),
        }
    }

    /// The value in the canonical typed form of the set document (DynamoDB's JSON shape:
    /// `{"S": …}`, `{"N": "…"}`, `{"BOOL": …}`, `{"NULL": true}`, `{"L": […]}`, `{"M": {…}}`).
    pub(crate) fn to_typed(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Value::Null => json!({ "NULL": true }),
            Value::Bool(b) => json!({ "BOOL": b }),
            Value::Number(n) => json!({ "N": n }),
            Value::String(s) => json!({ "S": s }),
            Value::List(items) => {
                json!({ "L": items.iter().map(Value::to_typed).collect::<Vec<_>>() })
            }
            Value::Map(map) => json!({
                "M": map.iter().map(|(k, v)| (k.clone(), v.to_typed())).collect::<serde_json::Map<_, _>>()
            }),
            Value::Foreign(s) => json!({ "FOREIGN": s }),
        }
    }

    /// The inverse of [`Value::to_typed`].
    pub(crate) fn from_typed(typed: &serde_json::Value) -> Option<Value> {
        let object = typed.as_object()?;
        let (tag, inner) = object.iter().next()?;
        Some(match tag.as_str() {
            "NULL" => Value::Null,
            "BOOL" => Value::Bool(inner.as_bool()?),
            "N" => Value::Number(canonical_number(inner.as_str()?)?),
            "S" => Value::String(inner.as_str()?.to_owned()),
            "L" => Value::List(
                inner
                    .as_array()?
                    .iter()
                    .map(Value::from_typed)
                    .collect::<Option<_>>()?,
            ),
            "M" => Value::Map(
                inner
                    .as_object()?
                    .iter()
                    .map(|(k, v)| Some((k.clone(), Value::from_typed(v)?)))
                    .collect::<Option<_>>()?,
            ),
            "FOREIGN" => Value::Foreign(inner.as_str()?.to_owned()),
            _ => return None,
        })
    }
}

impl fmt::Display for Value {
    /// One line: strings quoted, maps and lists in JSON-like form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Number(n) => f.write_str(n),
            Value::String(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            Value::Foreign(s) => f.write_str(s),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
            Value::Map(map) => {
                f.write_str("{")?;
                for (i, (k, v)) in map.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

/// The most significant digits DynamoDB keeps exactly.
pub const MAX_DIGITS: usize = 38;

/// A decimal number's canonical text: no sign for zero, no leading or trailing zeros, no
/// exponent (`-0012.500e1` → `-125`, `0.0` → `0`, `1e-3` → `0.001`). `None` when `text` is not
/// a decimal number (hex, `inf`, `nan`, digits separated by `_` are the caller's to convert).
pub fn canonical_number(text: &str) -> Option<String> {
    let (negative, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (mantissa, ""),
    };
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // digits × 10^(point - digits.len())
    let digits: String = format!("{int}{frac}");
    let point = i64::try_from(int.len()).ok()?.checked_add(exponent)?;
    let leading = digits.bytes().take_while(|b| *b == b'0').count();
    let digits = &digits[leading..];
    let point = point - i64::try_from(leading).ok()?;
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        return Some("0".to_owned());
    }
    if !(-200..=200).contains(&point) {
        return None;
    }
    let len = i64::try_from(digits.len()).ok()?;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(usize::try_from(-point).ok()?))
    } else if point >= len {
        format!("{digits}{}", "0".repeat(usize::try_from(point - len).ok()?))
    } else {
        let at = usize::try_from(point).ok()?;
        format!("{}.{}", &digits[..at], &digits[at..])
    };
    Some(if negative { format!("-{body}") } else { body })
}

/// The significant digits of a canonical number (`-0.00120` → 2).
pub fn significant_digits(canonical: &str) -> usize {
    let digits: String = canonical.chars().filter(char::is_ascii_digit).collect();
    digits.trim_start_matches('0').trim_end_matches('0').len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_one_canonical_text() {
        for (text, canonical) in [
            ("0", "0"),
            ("-0", "0"),
            ("0.000", "0"),
            ("1.50", "1.5"),
            ("15e-1", "1.5"),
            ("+001.500E+1", "15"),
            ("-12.5e1", "-125"),
            ("1e-3", "0.001"),
            ("1e3", "1000"),
            (".5", "0.5"),
            ("5.", "5"),
            (
                "123456789012345678901234567890123456789",
                "123456789012345678901234567890123456789",
            ),
            ("9007199254740993", "9007199254740993"),
        ] {
            assert_eq!(canonical_number(text).as_deref(), Some(canonical), "{text}");
        }
        for bad in [
            "", "-", ".", "1e", "0x10", "1_000", "inf", "nan", "1.2.3", "e5",
        ] {
            assert_eq!(canonical_number(bad), None, "{bad}");
        }
        assert_eq!(significant_digits("-0.00120"), 2);
        assert_eq!(significant_digits("1000"), 1);
    }

    #[test]
    fn typed_form_round_trips() {
        let value = Value::Map(BTreeMap::from([
            ("n".into(), Value::Number("9007199254740993".into())),
            (
                "l".into(),
                Value::List(vec![
                    Value::Null,
                    Value::Bool(true),
                    Value::String("x".into()),
                ]),
            ),
        ]));
        assert_eq!(Value::from_typed(&value.to_typed()), Some(value));
    }
}
