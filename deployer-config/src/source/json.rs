//! JSON with the line of every value and numbers kept as written (then made canonical):
//! `serde_json` gives neither without a crate-wide feature (`arbitrary_precision`) that would
//! change number handling for every crate of the build.

use std::collections::BTreeMap;

use super::{Parsed, pointer_push};
use crate::value::{Value, canonical_number};

/// Parses `text` as one JSON document.
pub(crate) fn parse(text: &str) -> Result<Parsed, (usize, String)> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        text,
        at: 0,
        line: 1,
        locations: BTreeMap::new(),
    };
    parser.blank();
    let value = parser.value(String::new(), 0)?;
    parser.blank();
    if parser.at < parser.bytes.len() {
        return Err(parser.error("unexpected text after the JSON value"));
    }
    Ok(Parsed {
        value,
        locations: parser.locations,
    })
}

struct Parser<'a> {
    bytes: &'a [u8],
    text: &'a str,
    at: usize,
    line: usize,
    locations: BTreeMap<String, usize>,
}

impl Parser<'_> {
    fn error(&self, message: impl Into<String>) -> (usize, String) {
        (self.line, message.into())
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        if byte == b'\n' {
            self.line += 1;
        }
        Some(byte)
    }

    fn blank(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.bump();
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), (usize, String)> {
        if self.bump() == Some(byte) {
            Ok(())
        } else {
            Err(self.error(format!("expected `{}`", byte as char)))
        }
    }

    fn value(&mut self, pointer: String, depth: usize) -> Result<Value, (usize, String)> {
        if depth > 64 {
            return Err(self.error("nested more than 64 levels deep"));
        }
        self.locations.insert(pointer.clone(), self.line);
        match self.peek() {
            Some(b'{') => {
                self.bump();
                let mut map = BTreeMap::new();
                self.blank();
                if self.peek() == Some(b'}') {
                    self.bump();
                    return Ok(Value::Map(map));
                }
                loop {
                    self.blank();
                    let line = self.line;
                    let key = self.string()?;
                    self.blank();
                    self.expect(b':')?;
                    self.blank();
                    let inner = pointer_push(&pointer, &key);
                    let value = self.value(inner, depth + 1)?;
                    if map.insert(key.clone(), value).is_some() {
                        return Err((line, format!("duplicate key `{key}`")));
                    }
                    self.blank();
                    match self.bump() {
                        Some(b',') => continue,
                        Some(b'}') => return Ok(Value::Map(map)),
                        _ => return Err(self.error("expected `,` or `}` in an object")),
                    }
                }
            }
            Some(b'[') => {
                self.bump();
                let mut items = Vec::new();
                self.blank();
                if self.peek() == Some(b']') {
                    self.bump();
                    return Ok(Value::List(items));
                }
                loop {
                    self.blank();
                    let inner = pointer_push(&pointer, &items.len().to_string());
                    items.push(self.value(inner, depth + 1)?);
                    self.blank();
                    match self.bump() {
                        Some(b',') => continue,
                        Some(b']') => return Ok(Value::List(items)),
                        _ => return Err(self.error("expected `,` or `]` in an array")),
                    }
                }
            }
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.word("true", Value::Bool(true)),
            Some(b'f') => self.word("false", Value::Bool(false)),
            Some(b'n') => self.word("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(other) => Err(self.error(format!("unexpected `{}`", other as char))),
            None => Err(self.error("unexpected end of the file")),
        }
    }

    fn word(&mut self, word: &str, value: Value) -> Result<Value, (usize, String)> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    fn number(&mut self) -> Result<Value, (usize, String)> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.bump();
        }
        let digits = |p: &mut Self| {
            let from = p.at;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.bump();
            }
            p.at - from
        };
        let int_start = self.at;
        let int = digits(self);
        if int == 0 || (int > 1 && self.bytes[int_start] == b'0') {
            return Err(self.error("invalid number"));
        }
        if self.peek() == Some(b'.') {
            self.bump();
            if digits(self) == 0 {
                return Err(self.error("invalid number: no digits after `.`"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.bump();
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.bump();
            }
            if digits(self) == 0 {
                return Err(self.error("invalid number: no digits in the exponent"));
            }
        }
        let text = &self.text[start..self.at];
        canonical_number(text)
            .map(Value::Number)
            .ok_or_else(|| self.error(format!("the number {text} is out of range")))
    }

    fn string(&mut self) -> Result<String, (usize, String)> {
        self.expect(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.at;
            while let Some(byte) = self.peek() {
                if byte == b'"' || byte == b'\\' || byte < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.push_str(&self.text[start..self.at]);
            match self.bump() {
                Some(b'"') => return Ok(out),
                Some(b'\\') => match self.bump() {
                    Some(b'"') => out.push('"'),
                    Some(b'\\') => out.push('\\'),
                    Some(b'/') => out.push('/'),
                    Some(b'b') => out.push('\u{8}'),
                    Some(b'f') => out.push('\u{c}'),
                    Some(b'n') => out.push('\n'),
                    Some(b'r') => out.push('\r'),
                    Some(b't') => out.push('\t'),
                    Some(b'u') => {
                        let first = self.hex4()?;
                        let code = if (0xD800..0xDC00).contains(&first) {
                            if !self.text[self.at..].starts_with("\\u") {
                                return Err(self.error("a lone surrogate in a \\u escape"));
                            }
                            self.at += 2;
                            let second = self.hex4()?;
                            if !(0xDC00..0xE000).contains(&second) {
                                return Err(self.error("a lone surrogate in a \\u escape"));
                            }
                            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                        } else {
                            first
                        };
                        out.push(
                            char::from_u32(code)
                                .ok_or_else(|| self.error("an invalid \\u escape"))?,
                        );
                    }
                    _ => return Err(self.error("an invalid escape in a string")),
                },
                Some(_) => return Err(self.error("a control character in a string")),
                None => return Err(self.error("a string is not closed")),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, (usize, String)> {
        let hex = self
            .text
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.error("an invalid \\u escape"))?;
        let code = u32::from_str_radix(hex, 16).map_err(|_| self.error("an invalid \\u escape"))?;
        self.at += 4;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lines_and_exact_numbers() {
        let text = "{\n  \"a\": 1.50,\n  \"big\": 123456789012345678901234567890,\n  \"l\": [\n    true,\n    \"x\\u00e9\\ud83d\\ude00\"\n  ]\n}";
        let parsed = parse(text).unwrap();
        let Value::Map(map) = &parsed.value else {
            panic!()
        };
        assert_eq!(map["a"], Value::Number("1.5".into()));
        assert_eq!(
            map["big"],
            Value::Number("123456789012345678901234567890".into())
        );
        assert_eq!(
            map["l"],
            Value::List(vec![Value::Bool(true), Value::String("xé😀".into())])
        );
        assert_eq!(parsed.locations["/a"], 2);
        assert_eq!(parsed.locations["/l/1"], 6);
    }

    #[test]
    fn errors_name_their_line() {
        assert_eq!(parse("{\n\"a\": 1,\n\"a\": 2}").unwrap_err().0, 3);
        assert_eq!(parse("{\n\"a\": 01}").unwrap_err().0, 2);
        assert!(parse("[1,]").is_err());
        assert!(parse("{} x").is_err());
        assert!(parse("\"\\ud800\"").is_err());
    }
}
