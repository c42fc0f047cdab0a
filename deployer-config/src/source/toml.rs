//! TOML, with the line of every value (from the parser's spans) and numbers as written.

use std::collections::BTreeMap;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Parsed, pointer_push};
use crate::value::{Value, canonical_number};

/// Parses `text` as a TOML document (a table).
pub(crate) fn parse(text: &str) -> Result<Parsed, (usize, String)> {
    let table = DeTable::parse(text).map_err(|error| {
        let line = error.span().map_or(1, |span| line_of(text, span.start));
        (line, error.message().trim_end().to_owned())
    })?;
    let mut locations = BTreeMap::new();
    locations.insert(String::new(), 1);
    let value = from_table(text, table.get_ref(), "", &mut locations)?;
    Ok(Parsed { value, locations })
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn from_table(
    text: &str,
    table: &DeTable<'_>,
    pointer: &str,
    locations: &mut BTreeMap<String, usize>,
) -> Result<Value, (usize, String)> {
    let mut map = BTreeMap::new();
    for (key, value) in table.iter() {
        let inner = pointer_push(pointer, key.get_ref());
        map.insert(
            key.get_ref().to_string(),
            from_value(text, value, inner, locations)?,
        );
    }
    Ok(Value::Map(map))
}

fn from_value(
    text: &str,
    value: &Spanned<DeValue<'_>>,
    pointer: String,
    locations: &mut BTreeMap<String, usize>,
) -> Result<Value, (usize, String)> {
    let line = line_of(text, value.span().start);
    locations.insert(pointer.clone(), line);
    Ok(match value.get_ref() {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Integer(integer) => {
            let decimal = if integer.radix() == 10 {
                canonical_number(integer.as_str())
            } else {
                i128::from_str_radix(integer.as_str(), integer.radix())
                    .ok()
                    .map(|n| n.to_string())
            };
            Value::Number(decimal.ok_or((line, format!("`{}` is not a number", integer.as_str())))?)
        }
        DeValue::Float(float) => Value::Number(canonical_number(float.as_str()).ok_or((
            line,
            format!(
                "`{}` is not a finite number (a store cannot hold it)",
                float.as_str()
            ),
        ))?),
        DeValue::Datetime(datetime) => Value::String(datetime.to_string()),
        DeValue::Array(items) => Value::List(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    from_value(
                        text,
                        item,
                        pointer_push(&pointer, &index.to_string()),
                        locations,
                    )
                })
                .collect::<Result<_, _>>()?,
        ),
        DeValue::Table(table) => from_table(text, table, &pointer, locations)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_stay_exact_and_lines_are_known() {
        let text = "name = \"web\"\nbig = 9007199254740993\nhex = 0x10\nratio = 1.50\n\n[nested]\nwhen = 2026-01-02T03:04:05Z\n";
        let parsed = parse(text).unwrap();
        let Value::Map(map) = &parsed.value else {
            panic!()
        };
        assert_eq!(map["big"], Value::Number("9007199254740993".into()));
        assert_eq!(map["hex"], Value::Number("16".into()));
        assert_eq!(map["ratio"], Value::Number("1.5".into()));
        assert_eq!(parsed.locations["/ratio"], 4);
        assert_eq!(parsed.locations["/nested/when"], 7);
        assert!(parse("x = inf").is_err());
        assert_eq!(parse("a = 1\nb = \n").unwrap_err().0, 2);
    }
}
