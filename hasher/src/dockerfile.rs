//! What a Dockerfile takes from outside: its base images, the build-context files its `COPY`
//! and `ADD` instructions copy, and what it fetches or reads that no hash can cover.
//!
//! Parsing is [`parse_dockerfile`]'s (BuildKit's grammar: parser directives, line
//! continuations, heredocs, JSON and shell forms); this module reads the result:
//!
//! - **Images**: each `FROM` image, in order, except `scratch` and a `FROM` naming a stage;
//!   then, in their place in the file, the images `COPY --from=<image>` and
//!   `RUN --mount=…,from=<image>` read (a `--from` naming a stage, by name or index, is not an
//!   image).
//! - **Copy sources**: each source of a `COPY`/`ADD` without `--from` (those read a stage or an
//!   image, not the context), heredocs and `ADD <url>` left out.
//! - **Not content-addressed** ([`Unhashed`]): `ADD <url>` and `ADD <git url>` without
//!   `--checksum`, `RUN --mount=type=bind` without `from=` (bind is the default type): what they
//!   read at build time is not in the tag.
//!
//! Variables are substituted as BuildKit does, in sources, `--from` values and `FROM` images:
//! `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`, `${VAR+word}`, with quotes
//! and the escape character. A `FROM` sees the `ARG`s declared before the first `FROM`; a stage
//! sees the `ARG`s it declares (a bare `ARG NAME` takes the global default) and its `ENV`s
//! (inherited from a parent stage; `ENV` wins over `ARG`). An `ARG`'s value is the build arg of
//! that name, else its default. BuildPlatform-style automatic args (`TARGETARCH`, …) are
//! whatever `build_args` says ([`crate::Repo::hash`] adds the `TARGET*` ones from the platform).
//! A variable without a value (undeclared, or declared without default nor build arg, or set by
//! the base image's environment, which is unknown here) is an error: Docker would substitute
//! an empty string, and the copy would not be what it looks like.
//!
//! `COPY --exclude` is not applied: the check stays conservative (it may ask `inputs` to cover a
//! file the build leaves out, never the reverse).

use std::collections::{BTreeMap, HashMap};

use parse_dockerfile::{Flag, Instruction, Source};

/// What a Dockerfile takes from outside.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// The images the build pulls, in the order they appear.
    pub froms: Vec<From>,
    /// The build-context paths `COPY`/`ADD` copy, in order.
    pub sources: Vec<CopySource>,
    /// What the build reads that the tag cannot cover, in order.
    pub unhashed: Vec<Unhashed>,
}

/// An image the build pulls: a `FROM` image, or the image of a `COPY --from` or
/// `RUN --mount=…,from=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The reference, variables substituted (`python:3.12-slim`, `ghcr.io/o/i@sha256:…`).
    pub reference: String,
    /// The stage it starts (`FROM … AS <stage>`), as written; `None` for an unnamed stage and
    /// for `COPY --from`/`RUN --mount` images.
    pub stage: Option<String>,
    /// The 1-based line of the instruction.
    pub line: usize,
}

impl From {
    /// Whether the reference names a digest (`…@sha256:…`): its content is fixed already.
    pub fn is_pinned(&self) -> bool {
        self.reference.contains("@sha256:")
    }
}

/// One source of a `COPY` or `ADD` that reads the build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    /// The source as written, variables substituted (a path or a wildcard pattern, relative to
    /// the context root).
    pub pattern: String,
    /// `"COPY"` or `"ADD"`.
    pub instruction: &'static str,
    /// The 1-based line of the instruction.
    pub line: usize,
    /// The instruction's text on one line (continuations joined), for messages.
    pub text: String,
}

/// Something the build reads that is not content-addressed: a change to it does not change the
/// tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhashed {
    /// The 1-based line of the instruction.
    pub line: usize,
    /// What it is and what to do, one sentence (starts with the instruction in backquotes).
    pub what: String,
}

/// Why a Dockerfile cannot be analysed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// It does not parse (Docker would refuse it too).
    #[error("{}", at_line(*line, message))]
    Syntax {
        /// The 1-based line, 0 when the problem is the whole file.
        line: usize,
        /// The parser's complaint.
        message: String,
    },
    /// A copy source holds a variable without a value.
    #[error(
        "line {line}: `{instruction}`: cannot tell what it copies: `${variable}` has no value \
         here (give the ARG a default or a build arg, or list `inputs` explicitly)"
    )]
    UnresolvedSource {
        /// The 1-based line.
        line: usize,
        /// The instruction's text.
        instruction: String,
        /// The variable's name.
        variable: String,
    },
    /// An image reference (`FROM`, `--from`) holds a variable without a value.
    #[error(
        "line {line}: `{instruction}`: cannot tell which image it uses: `${variable}` has no \
         value here (give the ARG a default or a build arg)"
    )]
    UnresolvedImage {
        /// The 1-based line.
        line: usize,
        /// The instruction's text.
        instruction: String,
        /// The variable's name.
        variable: String,
    },
    /// The file is not UTF-8 text.
    #[error("it is not UTF-8 text")]
    NotText,
}

fn at_line(line: usize, message: &str) -> String {
    if line == 0 {
        message.to_owned()
    } else {
        format!("line {line}: {message}")
    }
}

/// Analyses a Dockerfile: its images, copy sources and unhashed reads (see the module doc).
/// `build_args` are the values `--build-arg` gives.
pub fn analyze(text: &str, build_args: &BTreeMap<String, String>) -> Result<Analysis, Error> {
    analyze_with(text, build_args, false)
}

/// [`analyze`]; with `lenient`, a copy source whose variables have no value is reported as
/// [`Unhashed`] instead of failing (for explicit `inputs`, which do not depend on it).
pub(crate) fn analyze_with(
    text: &str,
    build_args: &BTreeMap<String, String>,
    lenient: bool,
) -> Result<Analysis, Error> {
    // The parser drops a byte order mark and counts offsets after it: drop it first.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let parsed = parse_dockerfile::parse(text).map_err(|error| Error::Syntax {
        line: error.line(),
        message: format!("{error:#}"),
    })?;
    let escape = parsed
        .parser_directives
        .escape
        .as_ref()
        .map_or('\\', |directive| directive.value.value);
    let mut walker = Walker {
        text,
        escape,
        lines: Lines::new(text),
        build_args,
        lenient,
        global: HashMap::new(),
        stage: None,
        stage_names: parsed
            .stages()
            .filter_map(|stage| stage.from.as_.as_ref())
            .map(|(_, name)| name.value.to_lowercase())
            .collect(),
        stage_count: parsed.stages().len(),
        stage_envs: HashMap::new(),
        analysis: Analysis::default(),
    };
    for instruction in &parsed.instructions {
        walker.instruction(instruction)?;
    }
    walker.end_stage();
    Ok(walker.analysis)
}

/// Args whose values BuildKit provides without a build arg, visible to `FROM` without an `ARG`.
const AUTOMATIC: &[&str] = &[
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// The variables of one stage.
#[derive(Debug, Default, Clone)]
struct Stage {
    /// Its name (lowercase), if any.
    name: Option<String>,
    /// Declared ARGs and their values (`None`: declared without one).
    args: HashMap<String, Option<String>>,
    env: HashMap<String, String>,
}

struct Walker<'a> {
    text: &'a str,
    escape: char,
    lines: Lines,
    build_args: &'a BTreeMap<String, String>,
    lenient: bool,
    /// ARGs declared before the first FROM.
    global: HashMap<String, Option<String>>,
    /// The current stage (none before the first FROM).
    stage: Option<Stage>,
    /// Every stage name in the file, lowercase.
    stage_names: Vec<String>,
    stage_count: usize,
    /// The environment each named stage ended with, for stages built on it.
    stage_envs: HashMap<String, HashMap<String, String>>,
    analysis: Analysis,
}

impl Walker<'_> {
    fn instruction(&mut self, instruction: &Instruction<'_>) -> Result<(), Error> {
        match instruction {
            Instruction::Arg(arg) => {
                for word in split_words(&arg.arguments.value, self.escape) {
                    let (name, default) = match word.split_once('=') {
                        Some((name, default)) => (name.to_owned(), Some(default.to_owned())),
                        None => (word.clone(), None),
                    };
                    let value = match (self.build_args.get(&name), default) {
                        (Some(value), _) => Some(value.clone()),
                        (None, Some(default)) => self.expand(&default).ok(),
                        (None, None) if self.stage.is_some() => self.global_value(&name),
                        (None, None) => None,
                    };
                    match &mut self.stage {
                        Some(stage) => stage.args.insert(name, value),
                        None => self.global.insert(name, value),
                    };
                }
            }
            Instruction::Env(env) => {
                let pairs = env_pairs(&env.arguments.value, self.escape);
                for (name, raw) in pairs {
                    let value = self.expand(&raw).ok();
                    if let Some(stage) = &mut self.stage {
                        match value {
                            Some(value) => stage.env.insert(name, value),
                            // A value we cannot tell: forget any earlier one.
                            None => stage.env.remove(&name),
                        };
                    }
                }
            }
            Instruction::From(from) => {
                self.end_stage();
                let line = self.lines.line(from.from.span.start);
                let end = from
                    .as_
                    .as_ref()
                    .map_or(from.image.span.end, |(_, name)| name.span.end);
                let text = self.text_of(from.from.span.start, end);
                let image = self.expand_global(&from.image.value).map_err(|variable| {
                    Error::UnresolvedImage {
                        line,
                        instruction: text.clone(),
                        variable,
                    }
                })?;
                let name = from.as_.as_ref().map(|(_, name)| name.value.to_string());
                let lower = image.to_lowercase();
                // A stage named earlier (a stage may share its name with the image it starts
                // from: `FROM node AS node`).
                let parent_env = self.stage_envs.get(&lower).cloned();
                if parent_env.is_none() && lower != "scratch" {
                    self.analysis.froms.push(From {
                        reference: image,
                        stage: name.clone(),
                        line,
                    });
                }
                self.stage = Some(Stage {
                    name: name.map(|n| n.to_lowercase()),
                    args: HashMap::new(),
                    env: parent_env.unwrap_or_default(),
                });
            }
            Instruction::Copy(copy) => {
                let end = copy.dest.span.end;
                self.copy("COPY", copy.copy.span.start, end, &copy.options, &copy.src)?;
            }
            Instruction::Add(add) => {
                let end = add.dest.span.end;
                self.copy("ADD", add.add.span.start, end, &add.options, &add.src)?;
            }
            Instruction::Run(run) => {
                for flag in run.options.iter().filter(|f| f.name.value == "mount") {
                    self.mount(run.run.span.start, flag)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn end_stage(&mut self) {
        if let Some(stage) = self.stage.take()
            && let Some(name) = stage.name
        {
            self.stage_envs.insert(name, stage.env);
        }
    }

    fn copy(
        &mut self,
        instruction: &'static str,
        start: usize,
        end: usize,
        options: &[Flag<'_>],
        sources: &[Source<'_>],
    ) -> Result<(), Error> {
        let line = self.lines.line(start);
        let text = self.text_of(start, end);
        if let Some(from) = flag(options, "from") {
            let from = self
                .expand(&from)
                .map_err(|variable| Error::UnresolvedImage {
                    line,
                    instruction: text.clone(),
                    variable,
                })?;
            self.image_unless_stage(from, line);
            return Ok(());
        }
        let checksum = flag(options, "checksum").is_some();
        for source in sources {
            let Source::Path(path) = source else {
                continue; // a heredoc: its text is in the Dockerfile
            };
            let pattern = match self.expand(&path.value) {
                Ok(pattern) => pattern,
                Err(variable) if self.lenient => {
                    self.analysis.unhashed.push(Unhashed {
                        line,
                        what: format!(
                            "`{text}`: `${variable}` has no value here, so what it copies is \
                             unknown and not checked against `inputs`"
                        ),
                    });
                    continue;
                }
                Err(variable) => {
                    return Err(Error::UnresolvedSource {
                        line,
                        instruction: text,
                        variable,
                    });
                }
            };
            if instruction == "ADD"
                && let Some(kind) = url_kind(&pattern)
            {
                if !checksum {
                    let what = match kind {
                        UrlKind::Git => format!(
                            "`{text}`: the git repository {pattern} is fetched at build time \
                             and is not in the tag (pin a commit with `--checksum=<commit>`)"
                        ),
                        UrlKind::Http => format!(
                            "`{text}`: {pattern} is downloaded at build time and is not in the \
                             tag (pin it with `--checksum=sha256:<digest>`)"
                        ),
                    };
                    self.analysis.unhashed.push(Unhashed { line, what });
                }
                continue;
            }
            self.analysis.sources.push(CopySource {
                pattern,
                instruction,
                line,
                text: text.clone(),
            });
        }
        Ok(())
    }

    /// `RUN --mount=…`: a bind of the context is unhashed; a `from=` image is an image.
    fn mount(&mut self, start: usize, flag: &Flag<'_>) -> Result<(), Error> {
        let line = self.lines.line(start);
        let value = flag.value.as_ref().map_or("", |v| &*v.value);
        let mut kind = "bind";
        let mut from = None;
        for field in value.split(',') {
            let (key, val) = field.split_once('=').unwrap_or((field, ""));
            match key.trim().to_ascii_lowercase().as_str() {
                "type" => kind = val.trim(),
                "from" => from = Some(val.trim()),
                _ => {}
            }
        }
        let text = || {
            let end = flag
                .value
                .as_ref()
                .map_or(flag.name.span.end, |v| v.span.end);
            self.text_of(start, end)
        };
        match from {
            Some(from) => {
                let from = self
                    .expand(from)
                    .map_err(|variable| Error::UnresolvedImage {
                        line,
                        instruction: text(),
                        variable,
                    })?;
                self.image_unless_stage(from, line);
            }
            None if kind.eq_ignore_ascii_case("bind") => {
                let text = text();
                self.analysis.unhashed.push(Unhashed {
                    line,
                    what: format!(
                        "`{text}`: a bind mount of the build context: the files the command \
                         reads are not checked against `inputs`"
                    ),
                });
            }
            None => {}
        }
        Ok(())
    }

    /// Records `reference` as an image unless it names a stage (by name or index) or is
    /// `scratch`.
    fn image_unless_stage(&mut self, reference: String, line: usize) {
        let lower = reference.to_lowercase();
        let index = lower
            .parse::<usize>()
            .is_ok_and(|index| index < self.stage_count.max(1));
        if index || self.stage_names.contains(&lower) || lower == "scratch" {
            return;
        }
        self.analysis.froms.push(From {
            reference,
            stage: None,
            line,
        });
    }

    /// The global value of an ARG (for a bare `ARG NAME` in a stage).
    fn global_value(&self, name: &str) -> Option<String> {
        match self.global.get(name) {
            Some(value) => value.clone(),
            None if AUTOMATIC.contains(&name) => self.build_args.get(name).cloned(),
            None => None,
        }
    }

    /// Expands a word in the current scope: `Err` names a variable without a value.
    fn expand(&self, word: &str) -> Result<String, String> {
        match &self.stage {
            None => self.expand_global(word),
            Some(stage) => expand(word, self.escape, &|name| {
                stage
                    .env
                    .get(name)
                    .cloned()
                    .or_else(|| stage.args.get(name).cloned().flatten())
            }),
        }
    }

    fn expand_global(&self, word: &str) -> Result<String, String> {
        expand(word, self.escape, &|name| self.global_value(name))
    }

    fn text_of(&self, start: usize, end: usize) -> String {
        instruction_text(self.text, start, end, self.escape)
    }
}

/// The value of flag `--name` (the last one given).
fn flag(options: &[Flag<'_>], name: &str) -> Option<String> {
    options
        .iter()
        .rev()
        .find(|f| f.name.value == name)
        .map(|f| {
            f.value
                .as_ref()
                .map_or_else(String::new, |v| v.value.to_string())
        })
}

enum UrlKind {
    Http,
    Git,
}

/// BuildKit's classification of an `ADD` source.
fn url_kind(source: &str) -> Option<UrlKind> {
    let lower = source.to_ascii_lowercase();
    if lower.starts_with("git@") || lower.starts_with("git://") || lower.starts_with("ssh://") {
        return Some(UrlKind::Git);
    }
    if lower.starts_with("http://") || lower.starts_with("https://") {
        let path = lower.split('#').next().unwrap_or(&lower);
        if path.ends_with(".git") {
            return Some(UrlKind::Git);
        }
        return Some(UrlKind::Http);
    }
    None
}

/// Splits `ARG`/`ENV` arguments into words on unquoted whitespace, keeping quotes (the
/// expansion removes them).
fn split_words(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            (c, _) if c == escape => {
                word.push(c);
                if let Some(next) = chars.next() {
                    word.push(next);
                }
            }
            ('"' | '\'', None) => {
                quote = Some(c);
                word.push(c);
            }
            (c, Some(q)) if c == q => {
                quote = None;
                word.push(c);
            }
            (c, None) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (c, _) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// `ENV a=b c=d` or the legacy `ENV a b c` (one variable, the rest of the line its value).
fn env_pairs(text: &str, escape: char) -> Vec<(String, String)> {
    let words = split_words(text, escape);
    match words.first() {
        Some(first) if !first.contains('=') => {
            let rest = text.trim_start()[first.len()..].trim();
            vec![(first.clone(), rest.to_owned())]
        }
        _ => words
            .into_iter()
            .filter_map(|w| w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect(),
    }
}

/// BuildKit's word expansion (the subset of its shell lexer that decides a path): quotes, the
/// escape character, `$VAR`, `${VAR}` and the `:-`, `-`, `:+`, `+` forms. `Err` names the first
/// variable without a value (or with an operator not supported here).
pub(crate) fn expand(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::with_capacity(word.len());
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        match (c, quote) {
            (c, None) if c == escape => {
                // Outside quotes the escape character takes the next one literally.
                match chars.get(i + 1) {
                    Some(&next) => out.push(next),
                    None => out.push(c),
                }
                i += 2;
            }
            (c, Some('"')) if c == escape => {
                match chars.get(i + 1) {
                    Some(&next) if next == '"' || next == '$' || next == escape => out.push(next),
                    Some(&next) => {
                        out.push(c);
                        out.push(next);
                    }
                    None => out.push(c),
                }
                i += 2;
            }
            ('\'', None) | ('"', None) => {
                quote = Some(c);
                i += 1;
            }
            (c, Some(q)) if c == q => {
                quote = None;
                i += 1;
            }
            ('$', None | Some('"')) => {
                i = variable(&chars, i + 1, escape, lookup, &mut out)?;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands the variable after a `$` at `chars[i..]`; returns the index after it.
fn variable(
    chars: &[char],
    i: usize,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
    out: &mut String,
) -> Result<usize, String> {
    match chars.get(i) {
        Some('{') => {
            let start = i + 1;
            let mut end = start;
            while chars.get(end).copied().is_some_and(is_name_char) {
                end += 1;
            }
            let name: String = chars[start..end].iter().collect();
            // The closing brace, allowing nested `${…}` in a default word.
            let mut depth = 1;
            let mut close = end;
            while close < chars.len() {
                match chars[close] {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                close += 1;
            }
            if close >= chars.len() || name.is_empty() {
                // `${` never closed, or no name: BuildKit refuses it; so do we.
                return Err(if name.is_empty() {
                    "{".to_owned()
                } else {
                    name
                });
            }
            let modifier: String = chars[end..close].iter().collect();
            let value = lookup(&name);
            let expanded = match modifier.as_str() {
                "" => Some(value.ok_or_else(|| name.clone())?),
                m if m.starts_with(":-") => match value.filter(|v| !v.is_empty()) {
                    Some(v) => Some(v),
                    None => Some(expand(&m[2..], escape, lookup)?),
                },
                m if m.starts_with('-') => match value {
                    Some(v) => Some(v),
                    None => Some(expand(&m[1..], escape, lookup)?),
                },
                m if m.starts_with(":+") => match value.filter(|v| !v.is_empty()) {
                    Some(_) => Some(expand(&m[2..], escape, lookup)?),
                    None => None,
                },
                m if m.starts_with('+') => match value {
                    Some(_) => Some(expand(&m[1..], escape, lookup)?),
                    None => None,
                },
                _ => return Err(name),
            };
            out.push_str(expanded.as_deref().unwrap_or(""));
            Ok(close + 1)
        }
        Some(&c) if c.is_ascii_alphabetic() || c == '_' => {
            let mut end = i;
            while chars.get(end).copied().is_some_and(is_name_char) {
                end += 1;
            }
            let name: String = chars[i..end].iter().collect();
            out.push_str(&lookup(&name).ok_or(name)?);
            Ok(end)
        }
        _ => {
            out.push('$');
            Ok(i)
        }
    }
}

/// The instruction between byte offsets `start` and `end`, to the end of the line `end` is on,
/// on one line: continuations joined, runs of whitespace made one space, at most 160
/// characters.
fn instruction_text(text: &str, start: usize, end: usize, escape: char) -> String {
    let line_end = text
        .get(end..)
        .and_then(|rest| rest.find('\n'))
        .map_or(text.len(), |at| end + at);
    let raw = text.get(start..line_end).unwrap_or("");
    let mut out = String::with_capacity(raw.len());
    let mut lines = raw.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_end();
        let continued = lines.peek().is_some() && trimmed.ends_with(escape);
        let line = if continued {
            &trimmed[..trimmed.len() - escape.len_utf8()]
        } else {
            line
        };
        if line.trim_start().starts_with('#') && !out.is_empty() {
            continue; // a comment inside a continued instruction
        }
        out.push_str(line);
        out.push(' ');
    }
    let joined = out.split_whitespace().collect::<Vec<_>>().join(" ");
    match joined.char_indices().nth(160) {
        Some((at, _)) => format!("{}…", &joined[..at]),
        None => joined,
    }
}

/// Line numbers from byte offsets.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        Lines { starts }
    }

    /// The 1-based line holding `offset`.
    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }
}

#[cfg(test)]
mod tests;
