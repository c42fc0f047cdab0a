//! `.dockerignore`, Docker's rules (moby's `ignorefile.ReadAll` and
//! `PatternMatcher.MatchesOrParentMatches`):
//!
//! - one pattern a line; a line starting with `#` is a comment; surrounding whitespace is
//!   trimmed and blank lines are skipped; a UTF-8 byte order mark is dropped;
//! - a pattern is cleaned (`path.Clean`) and relative to the context root (`/foo` = `foo`);
//! - Go's `filepath.Match` syntax plus `**` (see `pattern.rs`);
//! - a pattern matching a directory excludes everything under it;
//! - `!pattern` brings back what earlier patterns excluded; the last pattern that matches a path
//!   (or one of its parent directories) decides.

use std::collections::HashMap;

use globset::{Candidate, GlobSet, GlobSetBuilder};

use crate::pattern;

/// The compiled patterns of one ignore file.
#[derive(Debug)]
pub(crate) struct Ignore {
    set: GlobSet,
    /// Per pattern: true for a `!` exception.
    exception: Vec<bool>,
}

/// A pattern Docker would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadPattern {
    /// 1-based line in the file.
    pub(crate) line: usize,
    /// The line as written (trimmed).
    pub(crate) pattern: String,
    /// Why.
    pub(crate) reason: String,
}

impl Ignore {
    /// Parses an ignore file.
    pub(crate) fn parse(content: &[u8]) -> Result<Ignore, BadPattern> {
        let text = String::from_utf8_lossy(content);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut set = GlobSetBuilder::new();
        let mut exception = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.starts_with('#') {
                continue;
            }
            let mut line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let bad = |reason: String| BadPattern {
                line: index + 1,
                pattern: line.to_owned(),
                reason,
            };
            let invert = line.starts_with('!');
            if invert {
                line = line[1..].trim();
                if line.is_empty() {
                    return Err(bad("a `!` needs a pattern after it".to_owned()));
                }
            }
            let mut cleaned = pattern::clean(line);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let (_, glob) = pattern::compile(&cleaned).map_err(bad)?;
            set.add(glob);
            exception.push(invert);
        }
        let set = set.build().map_err(|error| BadPattern {
            line: 0,
            pattern: String::new(),
            reason: error.to_string(),
        })?;
        Ok(Ignore { set, exception })
    }

    /// Whether `path` (relative to the context root, `/`-separated) is left out of the context.
    /// `memo` keeps the verdicts on directories between calls (a context's files share them).
    pub(crate) fn excludes(&self, path: &str, memo: &mut Memo) -> bool {
        if self.exception.is_empty() {
            return false;
        }
        let own = self.last_match(path, &mut memo.scratch);
        let inherited = path
            .rfind('/')
            .and_then(|at| self.directory(&path[..at], memo));
        own.max(inherited)
            .is_some_and(|index| !self.exception[index])
    }

    /// The last pattern matching `dir` or one of its parents.
    fn directory(&self, dir: &str, memo: &mut Memo) -> Option<usize> {
        if let Some(&known) = memo.directories.get(dir) {
            return known;
        }
        let inherited = dir
            .rfind('/')
            .and_then(|at| self.directory(&dir[..at], memo));
        let last = inherited.max(self.last_match(dir, &mut memo.scratch));
        memo.directories.insert(dir.into(), last);
        last
    }

    /// The last pattern matching `candidate` itself.
    fn last_match(&self, candidate: &str, scratch: &mut Vec<usize>) -> Option<usize> {
        self.set
            .matches_candidate_into(&Candidate::new(candidate), scratch);
        scratch.iter().max().copied()
    }
}

/// Verdicts on directories, kept between [`Ignore::excludes`] calls.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    directories: HashMap<Box<str>, Option<usize>>,
    scratch: Vec<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(ignore: &str, path: &str) -> bool {
        Ignore::parse(ignore.as_bytes())
            .unwrap()
            .excludes(path, &mut Memo::default())
    }

    /// The examples of Docker's documentation ("Dockerignore files").
    #[test]
    fn docker_documented_examples() {
        let file = "# comment\n*/temp*\n*/*/temp*\ntemp?\n";
        for path in [
            "somedir/temporary.txt",
            "somedir/temp",
            "somedir/subdir/temporary.txt",
            "tempa",
            "tempb",
            "somedir/temp/inside.txt",
        ] {
            assert!(excluded(file, path), "{path}");
        }
        for path in ["temporary.txt", "temp", "a/b/c/temp", "# comment"] {
            assert!(!excluded(file, path), "{path}");
        }

        assert!(excluded("**/*.go", "main.go"));
        assert!(excluded("**/*.go", "a/b/c.go"));
        assert!(!excluded("**/*.go", "a/b/c.gox"));

        let readme = "*.md\n!README.md\n";
        assert!(excluded(readme, "CHANGES.md"));
        assert!(!excluded(readme, "README.md"));
        // `*.md` is root-level only: a markdown file in a subdirectory stays.
        assert!(!excluded(readme, "docs/guide.md"));

        let secret = "*.md\n!README*.md\nREADME-secret.md\n";
        assert!(excluded(secret, "CHANGES.md"));
        assert!(!excluded(secret, "README-public.md"));
        assert!(excluded(secret, "README-secret.md"));

        let all_readmes = "*.md\nREADME-secret.md\n!README*.md\n";
        assert!(!excluded(all_readmes, "README-secret.md"));
        assert!(excluded(all_readmes, "CHANGES.md"));
    }

    #[test]
    fn directories_roots_and_exceptions() {
        // A pattern naming a directory excludes everything under it.
        assert!(excluded("node_modules\n", "node_modules/a/b.js"));
        assert!(excluded("node_modules/\n", "node_modules/a/b.js"));
        assert!(!excluded("node_modules\n", "web/node_modules/a.js"));
        assert!(excluded("**/node_modules\n", "web/node_modules/a.js"));
        // Leading `/` and `./` are the context root.
        assert!(excluded("/secrets\n", "secrets/key"));
        assert!(excluded("./secrets\n", "secrets/key"));
        // `*` excludes everything; an exception brings one directory back.
        let only_app = "*\n!app\n";
        assert!(excluded(only_app, "Dockerfile"));
        assert!(excluded(only_app, "lib/x.py"));
        assert!(!excluded(only_app, "app/x.py"));
        assert!(!excluded(only_app, "app/deep/x.py"));
        // An exception inside an excluded directory.
        let keep = "build\n!build/keep.txt\n";
        assert!(excluded(keep, "build/drop.txt"));
        assert!(!excluded(keep, "build/keep.txt"));
        // The last match wins, whatever came before.
        assert!(excluded("!a.txt\na.txt\n", "a.txt"));
        // Whitespace, CRLF, a byte order mark, comments only at the start of a line.
        assert!(excluded("\u{feff}  a.txt  \r\n", "a.txt"));
        assert!(excluded(" #x\n", "#x"));
        assert!(!excluded("", "a"));
        assert!(!excluded("\n\n# only comments\n", "a"));
    }

    #[test]
    fn bad_patterns_are_refused_with_their_line() {
        let error = Ignore::parse(b"ok\n!\n").unwrap_err();
        assert_eq!(error.line, 2);
        let error = Ignore::parse(b"a\n[b\n").unwrap_err();
        assert_eq!((error.line, error.pattern.as_str()), (2, "[b"));
    }
}
