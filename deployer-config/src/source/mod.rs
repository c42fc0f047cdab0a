//! Reading a config source: a directory of JSON, TOML and YAML files, every value with the
//! line it was written on, so that each problem — a syntax error, a schema rule, a missing
//! key — names its file and line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::value::Value;

mod json;
mod toml;
mod yaml;

/// A parsed file: its value, and the line of each value by JSON pointer (`""` the root,
/// `/items/0/name`).
#[derive(Clone, Debug)]
pub struct Parsed {
    /// The document.
    pub value: Value,
    /// The line (1-based) of every value, by JSON pointer.
    pub locations: BTreeMap<String, usize>,
}

impl Parsed {
    /// The line of the value at `pointer`, else of its nearest parent that has one.
    pub fn line(&self, pointer: &str) -> usize {
        let mut pointer = pointer;
        loop {
            if let Some(line) = self.locations.get(pointer) {
                return *line;
            }
            match pointer.rfind('/') {
                Some(at) => pointer = &pointer[..at],
                None => return 1,
            }
        }
    }
}

/// `pointer` with one more reference token (RFC 6901 escaping).
pub(crate) fn pointer_push(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", token.replace('~', "~0").replace('/', "~1"))
}

/// One source file, read and parsed.
#[derive(Clone, Debug)]
pub struct SourceFile {
    /// The path relative to the repository root, with `/` separators.
    pub path: String,
    /// The path relative to the source directory, without its extension (`acme/web` for
    /// `config/repos/acme/web.yaml`): the parameter path of an SSM source.
    pub stem: String,
    /// Its content.
    pub parsed: Parsed,
}

/// One problem in the sources, located.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// The file, relative to the repository root.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The JSON pointer of the value within the file (`""` when the file as a whole).
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// The rule that failed: a JSON Schema keyword and where it sits in the schema
    /// (`required at /required`), or the store's own rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if !self.pointer.is_empty() {
            write!(f, "{}: ", self.pointer)?;
        }
        f.write_str(&self.message)?;
        if let Some(rule) = &self.rule {
            write!(f, " (rule: {rule})")?;
        }
        Ok(())
    }
}

/// Why a config source cannot be used. Nothing is written when there is one.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file or directory could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The sources are invalid; every problem found is listed.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

impl SourceError {
    /// The located problems (empty for a read error).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            SourceError::Invalid(diagnostics) => diagnostics,
            SourceError::Read { .. } => &[],
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
    let count = diagnostics.len();
    if count == 1 {
        lines.join("")
    } else {
        format!(
            "{count} problems in the config sources:\n  {}",
            lines.join("\n  ")
        )
    }
}

/// Reads every JSON (`.json`), TOML (`.toml`) and YAML (`.yaml`, `.yml`) file under `dir`
/// (relative to `root`), in path order. Dot files and `*.md` are skipped; any other file is
/// an error (a typo in an extension must not drop an item silently), and so is a symlink that
/// leads out of the repository.
pub fn read_dir(root: &Path, dir: &str) -> Result<Vec<SourceFile>, SourceError> {
    let base = root.join(dir);
    let canonical_root = root.canonicalize().map_err(|source| SourceError::Read {
        path: root.to_owned(),
        source,
    })?;
    let mut paths = Vec::new();
    collect(&base, &mut paths)?;
    paths.sort();
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let in_source = path
            .strip_prefix(&base)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let problem = |line: usize, message: String| Diagnostic {
            file: relative.clone(),
            line,
            pointer: String::new(),
            message,
            rule: None,
        };
        let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let parser: fn(&str) -> Result<Parsed, (usize, String)> = match extension {
            "json" => json::parse,
            "toml" => toml::parse,
            "yaml" | "yml" => yaml::parse,
            "md" => continue,
            _ => {
                problems.push(problem(
                    1,
                    "not a JSON, TOML or YAML file (.json, .toml, .yaml, .yml): move it out of the source directory or rename it".into(),
                ));
                continue;
            }
        };
        match path.canonicalize() {
            Ok(real) if real.starts_with(&canonical_root) => {}
            _ => {
                problems.push(problem(
                    1,
                    "leads out of the repository through a symlink".into(),
                ));
                continue;
            }
        }
        let text = std::fs::read_to_string(&path).map_err(|source| SourceError::Read {
            path: path.clone(),
            source,
        })?;
        match parser(&text) {
            Ok(parsed) => files.push(SourceFile {
                path: relative,
                stem: in_source
                    .strip_suffix(&format!(".{extension}"))
                    .unwrap_or(&in_source)
                    .to_owned(),
                parsed,
            }),
            Err((line, message)) => problems.push(problem(line, message)),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(SourceError::Invalid(problems))
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Read {
        path: dir.to_owned(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| SourceError::Read {
            path: dir.to_owned(),
            source,
        })?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses JSON text (a schema, a set).
pub(crate) fn parse_json(text: &str) -> Result<Parsed, (usize, String)> {
    json::parse(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_reads_and_problems_are_all_reported() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("config");
        std::fs::create_dir_all(source.join("nested")).unwrap();
        std::fs::write(source.join("a.json"), "{\"x\": 1}").unwrap();
        std::fs::write(source.join("nested/b.yaml"), "x: 2\n").unwrap();
        std::fs::write(source.join("c.toml"), "x = 3\n").unwrap();
        std::fs::write(source.join("README.md"), "notes").unwrap();
        std::fs::write(source.join(".hidden"), "").unwrap();
        let files = read_dir(dir.path(), "config").unwrap();
        let stems: Vec<&str> = files.iter().map(|f| f.stem.as_str()).collect();
        assert_eq!(stems, ["a", "c", "nested/b"]);
        assert_eq!(files[2].path, "config/nested/b.yaml");

        std::fs::write(source.join("d.jsn"), "{}").unwrap();
        std::fs::write(source.join("e.json"), "{\n\"x\": }").unwrap();
        let error = read_dir(dir.path(), "config").unwrap_err();
        let diagnostics = error.diagnostics();
        assert_eq!(diagnostics.len(), 2, "{error}");
        assert_eq!(diagnostics[0].file, "config/d.jsn");
        assert_eq!(
            (diagnostics[1].file.as_str(), diagnostics[1].line),
            ("config/e.json", 2)
        );
    }
}
