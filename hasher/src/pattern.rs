//! Docker's path patterns (Go's `filepath.Match` syntax, plus `**` in `.dockerignore`) turned
//! into globset globs, and the path cleaning both Docker and the hasher apply.
//!
//! Go's syntax: `*` is any run of characters but `/`, `?` one character but `/`, `[a-z]` and
//! `[^a-z]` a class, `\x` the character `x`. `{`, `}` and `,` are plain characters (globset's
//! alternation is escaped away). `**` as a whole path component (`**/x`, `x/**`, `a/**/b`)
//! crosses directories, as in `.dockerignore`; inside a component it is `*`.

use globset::{Glob, GlobBuilder, GlobMatcher};

/// Whether a COPY/ADD source holds wildcards (BuildKit's rule: an unescaped `*`, `?` or `[`).
pub(crate) fn has_wildcards(source: &str) -> bool {
    let mut chars = source.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Translates a Go pattern into globset syntax (to be compiled with [`compile`]); `Err` says why
/// the pattern is malformed.
pub(crate) fn to_glob(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 8);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err("it ends with a lone `\\`".to_owned());
                };
                push_literal(&mut out, next);
                i += 2;
            }
            '*' => {
                let mut end = i;
                while chars.get(end) == Some(&'*') {
                    end += 1;
                }
                let whole =
                    (i == 0 || chars[i - 1] == '/') && (end == chars.len() || chars[end] == '/');
                out.push_str(if end - i >= 2 && whole { "**" } else { "*" });
                i = end;
            }
            '?' => {
                out.push('?');
                i += 1;
            }
            '[' => {
                i = class(&chars, i + 1, &mut out)?;
            }
            c => {
                push_literal(&mut out, c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A character that globset must read literally.
fn push_literal(out: &mut String, c: char) {
    match c {
        '*' | '?' | '[' | ']' | '{' | '}' | '\\' => {
            out.push('[');
            out.push(c);
            out.push(']');
        }
        c => out.push(c),
    }
}

/// Escapes a literal path for globset (like `globset::escape`, and `\` too).
pub(crate) fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        push_literal(&mut out, c);
    }
    out
}

/// One member of a character class: a character or a range.
#[derive(Clone, Copy)]
struct Range(char, char);

/// Parses a Go class starting after its `[` and writes it in globset syntax; returns the index
/// after its `]`.
fn class(chars: &[char], mut i: usize, out: &mut String) -> Result<usize, String> {
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges: Vec<Range> = Vec::new();
    let member = |i: &mut usize| -> Result<char, String> {
        match chars.get(*i) {
            None => Err("a `[` is never closed".to_owned()),
            Some('\\') => {
                let c = *chars
                    .get(*i + 1)
                    .ok_or_else(|| "a `[` is never closed".to_owned())?;
                *i += 2;
                Ok(c)
            }
            Some(&c) => {
                *i += 1;
                Ok(c)
            }
        }
    };
    loop {
        match chars.get(i) {
            None => return Err("a `[` is never closed".to_owned()),
            Some(']') if !ranges.is_empty() => {
                i += 1;
                break;
            }
            _ => {}
        }
        let low = member(&mut i)?;
        let mut high = low;
        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&c| c != ']') {
            i += 1;
            high = member(&mut i)?;
        }
        if high < low {
            return Err(format!("the range `{low}-{high}` is reversed"));
        }
        ranges.push(Range(low, high));
    }
    // globset reads a leading `!` or `^` as negation, a `]` only first as a member, a `-` only
    // first or last as a member: order the members so each means what Go meant.
    let (mut first, mut rest): (Vec<Range>, Vec<Range>) = ranges.iter().partition(|r| r.0 == ']');
    let dashes: Vec<Range> = rest
        .iter()
        .copied()
        .filter(|r| r.0 == '-' && r.1 == '-')
        .collect();
    rest.retain(|r| !(r.0 == '-' && r.1 == '-'));
    if first.is_empty() && !negated {
        if let Some(pos) = rest.iter().position(|r| r.0 != '!' && r.0 != '^') {
            first.push(rest.remove(pos));
        } else if !rest.is_empty() {
            // Only `!`/`^` members: a class cannot start with them, so spell them out.
            if dashes.is_empty() && rest.iter().all(|r| r.0 == r.1) {
                out.push('{');
                for (n, r) in rest.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    out.push(r.0);
                }
                out.push('}');
                return Ok(i);
            }
            return Err("a character class starting with `!` or `^` is not supported".to_owned());
        }
    }
    out.push('[');
    if negated {
        out.push('!');
    }
    for r in first.iter().chain(&rest).chain(&dashes) {
        out.push(r.0);
        if r.1 != r.0 {
            out.push('-');
            out.push(r.1);
        }
    }
    out.push(']');
    Ok(i)
}

/// Compiles a glob the way every glob of the crate is compiled: `*`, `?` and classes stay within
/// a path component, `\` escapes.
pub(crate) fn builder(glob: &str) -> GlobBuilder<'_> {
    let mut builder = GlobBuilder::new(glob);
    builder.literal_separator(true).backslash_escape(true);
    builder
}

/// Translates and compiles a Go pattern.
pub(crate) fn compile(pattern: &str) -> Result<(String, Glob), String> {
    let glob = to_glob(pattern)?;
    let compiled = builder(&glob).build().map_err(|e| e.kind().to_string())?;
    Ok((glob, compiled))
}

/// A compiled Go pattern that matches a path or one of its parent directories (a pattern that
/// names a directory takes everything under it: Docker's rule for COPY wildcards and
/// `.dockerignore`).
pub(crate) fn matches_or_parent(matcher: &GlobMatcher, path: &str) -> Option<Via> {
    if matcher.is_match(path) {
        return Some(Via::Itself);
    }
    ancestors(path)
        .find(|dir| matcher.is_match(dir))
        .map(|_| Via::Directory)
}

/// How a path matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// The path itself.
    Itself,
    /// One of its parent directories.
    Directory,
}

/// The parent directories of a `/`-separated relative path, shortest first: `a/b/c` gives `a`,
/// `a/b`.
pub(crate) fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(at, _)| &path[..at])
}

/// Go's `path.Clean` for `/`-separated paths: no empty, `.` or inner `..` components, no
/// trailing `/`; `""` becomes `"."`.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            part => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str) -> GlobMatcher {
        compile(pattern).unwrap().1.compile_matcher()
    }

    #[test]
    fn go_syntax_means_what_go_means() {
        let cases: &[(&str, &[&str], &[&str])] = &[
            ("*.py", &["a.py", ".py"], &["a/b.py", "a.pyc"]),
            ("a?c", &["abc"], &["a/c", "ac"]),
            ("[a-c]x", &["bx"], &["dx", "/x"]),
            ("[^a-c]x", &["dx"], &["bx"]),
            ("[!a]x", &["!x", "ax"], &["bx"]),
            ("[!]", &["!"], &["a"]),
            ("[]a]", &["]", "a"], &["b"]),
            ("[\\-a]", &["-", "a"], &["b"]),
            ("[a\\-]", &["-", "a"], &["b"]),
            ("{a,b}", &["{a,b}"], &["a", "b"]),
            ("a\\*b", &["a*b"], &["axb"]),
            ("**/x", &["x", "a/x", "a/b/x"], &["ax"]),
            ("x/**", &["x/a", "x/a/b"], &["x", "xa"]),
            ("a/**/b", &["a/b", "a/x/b", "a/x/y/b"], &["ab"]),
            ("a**", &["ab"], &["a/b"]),
        ];
        for (pattern, yes, no) in cases {
            let matcher = glob(pattern);
            for path in *yes {
                assert!(matcher.is_match(path), "{pattern} should match {path}");
            }
            for path in *no {
                assert!(!matcher.is_match(path), "{pattern} should not match {path}");
            }
        }
        for bad in ["a\\", "[a", "[z-a]", "[^"] {
            assert!(to_glob(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards_and_cleaning() {
        assert!(has_wildcards("src/*.py"));
        assert!(has_wildcards("a[0]"));
        assert!(!has_wildcards("src/app"));
        assert!(!has_wildcards("a\\*b"));
        for (path, cleaned) in [
            ("", "."),
            (".", "."),
            ("./a/b/", "a/b"),
            ("a//b/./c/..", "a/b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("/", "/"),
            ("a/../..", ".."),
        ] {
            assert_eq!(clean(path), cleaned, "{path}");
        }
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(escape("a[1]*{x}\\"), "a[[]1[]][*][{]x[}][\\]");
        let escaped = escape("we*rd[1]{x}\\y");
        assert!(
            builder(&escaped)
                .build()
                .unwrap()
                .compile_matcher()
                .is_match("we*rd[1]{x}\\y")
        );
    }
}
