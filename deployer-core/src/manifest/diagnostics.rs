//! Manifest errors located by file, line and column.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One problem in the manifest, located in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The manifest file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The offending source line.
    #[serde(skip)]
    pub source_line: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.message
        )?;
        if !self.source_line.is_empty() {
            let gutter = self.line.to_string().len();
            write!(
                f,
                "\n{:gutter$} |\n{} | {}\n{:gutter$} | {:>col$}",
                "",
                self.line,
                self.source_line,
                "",
                "^",
                col = self.column
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {help}")?;
        }
        Ok(())
    }
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The manifest is invalid; every problem found is listed.
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ManifestError {
    /// The located problems (empty for a read error).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ManifestError::Invalid(diagnostics) => diagnostics,
            ManifestError::Read { .. } => &[],
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    let count = diagnostics.len();
    for (i, diagnostic) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        out.push_str(&diagnostic.to_string());
    }
    if count > 1 {
        out.push_str(&format!("\n\n{count} problems in the manifest"));
    }
    out
}

/// Collects diagnostics while the manifest is checked.
pub(crate) struct Diagnostics {
    file: PathBuf,
    source: String,
    found: Vec<Diagnostic>,
}

impl Diagnostics {
    pub(crate) fn new(file: &Path, source: &str) -> Self {
        Diagnostics {
            file: file.to_owned(),
            source: source.to_owned(),
            found: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, span: Range<usize>, message: String, help: Option<String>) {
        let (line, column, source_line) = locate(&self.source, span.start);
        let diagnostic = Diagnostic {
            file: self.file.clone(),
            line,
            column,
            message,
            help,
            source_line,
        };
        if !self.found.contains(&diagnostic) {
            self.found.push(diagnostic);
        }
    }

    pub(crate) fn has_errors(&self) -> bool {
        !self.found.is_empty()
    }

    pub(crate) fn into_error(mut self) -> ManifestError {
        self.found.sort_by_key(|d| (d.line, d.column));
        ManifestError::Invalid(self.found)
    }
}

/// 1-based line and column of byte `offset`, and the text of that line.
fn locate(source: &str, offset: usize) -> (usize, usize, String) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line_end = source[line_start..]
        .find('\n')
        .map_or(source.len(), |i| line_start + i);
    (
        line,
        column,
        source[line_start..line_end]
            .trim_end_matches('\r')
            .to_owned(),
    )
}
