//! Docs that cannot drift: what the README, the crate docs and the module docs say about the
//! manifest and the compute targets is checked against the code that defines them
//! (`deployer-core`'s `keys.rs` and its `Kind` enum, the cli's features), and the crates that say
//! they can be used alone show it with an example program and a doctest.
//!
//! The README's key table is checked rather than generated: its "meaning" column says more
//! than the one-line docs in `keys.rs`. Each failure names the file, the line and the change.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;

use deployer_core::Kind;
use deployer_core::manifest::keys::{self, Applies};

use super::members;
use crate::project_root;

/// The line the README's key table follows.
const KEY_TABLE_INTRO: &str = "Every key, with the kinds it applies to:";

/// One row of the README's key table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    /// 1-based line in the README.
    line: usize,
    /// The keys of the first cell, as written (`project.name`, `kind`, …).
    keys: Vec<String>,
    /// The "applies to" cell.
    applies: String,
    /// The "meaning" cell.
    meaning: String,
}

/// The cells of a Markdown table row, split on the `|` that are not escaped (`\|`).
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().unwrap().push('|');
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells.iter().map(|c| c.trim().to_owned()).collect()
}

/// The rows of the table that follows [`KEY_TABLE_INTRO`] in `readme`.
fn key_table(readme: &str) -> Result<Vec<Row>, String> {
    let lines: Vec<&str> = readme.lines().collect();
    let intro = lines
        .iter()
        .position(|l| l.trim() == KEY_TABLE_INTRO)
        .ok_or_else(|| format!("README.md has no line `{KEY_TABLE_INTRO}` before its key table"))?;
    let start = (intro + 1..lines.len())
        .find(|&n| !lines[n].trim().is_empty())
        .filter(|&n| lines[n].trim_start().starts_with('|'))
        .ok_or_else(|| {
            format!(
                "README.md:{}: no table follows `{KEY_TABLE_INTRO}`",
                intro + 1
            )
        })?;
    let header = cells(lines[start]);
    if header != ["key", "applies to", "meaning"] {
        return Err(format!(
            "README.md:{}: the key table's header is {header:?}, not `| key | applies to | meaning |`",
            start + 1
        ));
    }
    let mut rows = Vec::new();
    for (n, line) in lines.iter().enumerate().skip(start + 2) {
        if !line.trim_start().starts_with('|') {
            break;
        }
        let row = cells(line);
        let [key, applies, meaning] = row.as_slice() else {
            return Err(format!(
                "README.md:{}: a key table row has {} cells, not 3",
                n + 1,
                row.len()
            ));
        };
        let keys: Vec<String> = key
            .split(',')
            .map(|k| k.trim().trim_matches('`').to_owned())
            .collect();
        rows.push(Row {
            line: n + 1,
            keys,
            applies: applies.clone(),
            meaning: meaning.clone(),
        });
    }
    Ok(rows)
}

/// The "applies to" cell a service key's kinds are written as.
fn applies_cell(applies: Applies) -> String {
    match applies {
        Applies::All => "all".to_owned(),
        Applies::Image => "image kinds".to_owned(),
        Applies::Only(kinds) => kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Whether a "meaning" cell says the key is required: the cell is `required`, or holds
/// `(required)`, or begins with `required:`. "required when …" or "(required with …)" is a
/// condition (`project.registry`, `container`), not a required key.
fn says_required(meaning: &str) -> bool {
    let meaning = meaning.trim().to_lowercase();
    meaning == "required" || meaning.contains("(required)") || meaning.starts_with("required:")
}

/// Every difference between the README's key table and `keys.rs`, one line each, saying what
/// to change.
fn key_table_problems(rows: &[Row]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut listed: BTreeMap<String, &Row> = BTreeMap::new();
    for row in rows {
        for key in &row.keys {
            if listed.insert(key.clone(), row).is_some() {
                problems.push(format!(
                    "README.md:{}: `{key}` is listed twice in the key table: remove one row",
                    row.line
                ));
            }
        }
    }
    let mut expected: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for key in keys::PROJECT {
        expected.insert(
            format!("project.{}", key.name),
            (String::new(), key.required),
        );
    }
    for key in keys::CI {
        expected.insert(format!("ci.{}", key.name), (String::new(), key.required));
    }
    for key in keys::SERVICE {
        expected.insert(
            key.name.to_owned(),
            (applies_cell(key.applies), key.required),
        );
    }
    for (key, (applies, required)) in &expected {
        let Some(row) = listed.get(key) else {
            let cell = if applies.is_empty() { "" } else { applies };
            problems.push(format!(
                "README.md: the key table has no row for `{key}` (deployer-core/src/manifest/keys.rs \
                 has it): add the row | `{key}` | {cell} | … |"
            ));
            continue;
        };
        if row.applies != *applies {
            problems.push(format!(
                "README.md:{}: `{key}` applies to `{applies}` in deployer-core/src/manifest/keys.rs, \
                 the table says `{}`: change the `applies to` cell to `{applies}`{}",
                row.line,
                row.applies,
                if row.keys.len() > 1 {
                    " (or give it a row of its own)"
                } else {
                    ""
                }
            ));
        }
        if *required && !says_required(&row.meaning) {
            problems.push(format!(
                "README.md:{}: `{key}` is required (keys.rs), the table's meaning does not say so: \
                 add `required` to it",
                row.line
            ));
        } else if !*required && says_required(&row.meaning) {
            problems.push(format!(
                "README.md:{}: `{key}` is optional (keys.rs), the table's meaning says `required`: \
                 drop the word or make keys.rs require the key",
                row.line
            ));
        }
    }
    for (key, row) in &listed {
        if !expected.contains_key(key) {
            problems.push(format!(
                "README.md:{}: the key table lists `{key}`, which deployer-core/src/manifest/keys.rs \
                 does not have: remove it from the row, or add the key to keys.rs",
                row.line
            ));
        }
    }
    problems
}

#[test]
fn the_readme_key_table_is_keys_rs() {
    let readme = fs::read_to_string(project_root().join("README.md")).unwrap();
    let rows = key_table(&readme).unwrap_or_else(|problem| panic!("{problem}"));
    let problems = key_table_problems(&rows);
    assert!(
        problems.is_empty(),
        "the README's key table differs from deployer-core/src/manifest/keys.rs:\n{}",
        problems.join("\n")
    );
}

/// A run of kind names in a text: the kinds in the order written, and the 1-based line of the
/// first.
#[derive(Debug, PartialEq, Eq)]
struct KindList {
    line: usize,
    kinds: Vec<Kind>,
}

/// Every run of kind names in `text` separated only by list punctuation (spaces, line breaks,
/// `,`, `|`, backticks, quotes, `or`, `and`, and the `//!`, `///`, `//` that begin a line of a
/// comment). `lambda-zip` is a kind; `deployer-lambda-zip` and `lambda-zip-roll` are not.
fn kind_lists(text: &str) -> Vec<KindList> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let mut lists = Vec::new();
    let mut current: Option<KindList> = None;
    let mut line = 1;
    let mut rest = text;
    while !rest.is_empty() {
        let c = rest.chars().next().unwrap();
        if is_word(c) {
            let end = rest.find(|c: char| !is_word(c)).unwrap_or(rest.len());
            let word = &rest[..end];
            rest = &rest[end..];
            match Kind::parse(word) {
                Some(kind) => match &mut current {
                    Some(list) => list.kinds.push(kind),
                    None => {
                        current = Some(KindList {
                            line,
                            kinds: vec![kind],
                        })
                    }
                },
                None if word == "or" || word == "and" => {}
                None => lists.extend(current.take()),
            }
            continue;
        }
        let separator = if rest.starts_with("//") {
            // A comment marker continues a list only at the start of a line.
            let line_start = text[..text.len() - rest.len()]
                .rsplit('\n')
                .next()
                .is_none_or(|before| before.trim().is_empty());
            let marker = rest.len() - rest.trim_start_matches('/').len();
            let marker = marker + usize::from(rest[marker..].starts_with('!'));
            if line_start {
                rest = &rest[marker..];
                continue;
            }
            false
        } else {
            c.is_whitespace() || matches!(c, ',' | '|' | '`' | '"' | '\'')
        };
        if c == '\n' {
            line += 1;
        }
        if !separator {
            lists.extend(current.take());
        }
        rest = &rest[c.len_utf8()..];
    }
    lists.extend(current);
    lists
}

/// Why a list of kinds is not a whole one, or `None` when it is fine: a list of one or two kinds
/// is a selection (`lambda-image, lambda-zip`); a longer one must be every kind, or every image
/// kind, in the order of `Kind::ALL`.
fn kind_list_problem(list: &KindList) -> Option<String> {
    let mut distinct: Vec<Kind> = Vec::new();
    for kind in &list.kinds {
        if !distinct.contains(kind) {
            distinct.push(*kind);
        }
    }
    if distinct.len() < 3 {
        return None;
    }
    let all: Vec<Kind> = Kind::ALL.to_vec();
    let image: Vec<Kind> = Kind::ALL.into_iter().filter(|k| k.is_image()).collect();
    let names = |kinds: &[Kind]| {
        kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let set: BTreeSet<Kind> = distinct.iter().copied().collect();
    let whole = if set == all.iter().copied().collect() {
        &all
    } else if set == image.iter().copied().collect() {
        &image
    } else {
        let missing: Vec<Kind> = all.iter().copied().filter(|k| !set.contains(k)).collect();
        return Some(format!(
            "the kind list `{}` leaves out {}: list every kind ({})",
            names(&distinct),
            names(&missing),
            names(&all)
        ));
    };
    (distinct != *whole).then(|| {
        format!(
            "the kind list `{}` is not in the order of the Kind enum: write `{}`",
            names(&distinct),
            names(whole)
        )
    })
}

/// The files git tracks with one of `extensions`, relative to the root.
fn tracked(extensions: &[&str]) -> Vec<String> {
    let output = Command::new("git")
        .current_dir(project_root())
        .args(["ls-files", "-z"])
        .output()
        .unwrap();
    assert!(output.status.success(), "git ls-files failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .split('\0')
        .filter(|path| {
            Path::new(path)
                .extension()
                .is_some_and(|e| extensions.iter().any(|x| e == *x))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_kind_list_names_every_kind() {
    let mut problems = Vec::new();
    for path in tracked(&["md", "rs", "toml"]) {
        // This file holds deliberately broken lists in its own tests.
        if path == "xtask/src/tidy/docs.rs" {
            continue;
        }
        let Ok(text) = fs::read_to_string(project_root().join(&path)) else {
            continue;
        };
        for list in kind_lists(&text) {
            if let Some(problem) = kind_list_problem(&list) {
                problems.push(format!("{path}:{}: {problem}", list.line));
            }
        }
    }
    // The service keys' one-line docs are documentation too (`deployer validate` shows them).
    for key in keys::SERVICE
        .iter()
        .map(|k| (k.name, k.doc))
        .chain(keys::PROJECT.iter().map(|k| (k.name, k.doc)))
    {
        for list in kind_lists(key.1) {
            if let Some(problem) = kind_list_problem(&list) {
                problems.push(format!(
                    "deployer-core/src/manifest/keys.rs: the doc of `{}`: {problem}",
                    key.0
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "kind lists that are not the Kind enum (deployer-core/src/manifest/model.rs):\n{}",
        problems.join("\n")
    );
}

/// What the README calls the compute target of a kind.
fn product(kind: Kind) -> &'static str {
    match kind {
        Kind::Ecs => "ECS",
        Kind::Agentcore => "AgentCore",
        Kind::LambdaImage | Kind::LambdaZip => "Lambda",
        Kind::Sagemaker => "SageMaker",
        Kind::Config => "DynamoDB",
    }
}

#[test]
fn the_readme_names_every_compute_target_up_front() {
    let readme = fs::read_to_string(project_root().join("README.md")).unwrap();
    let opening: String = readme
        .lines()
        .skip_while(|l| l.starts_with('#') || l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let missing: Vec<&str> = Kind::ALL
        .into_iter()
        .map(product)
        .filter(|name| !opening.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md's opening paragraph does not name {missing:?}: say what it deploys to, every \
         kind (`{}`)",
        opening
    );
}

/// The cli's `--version` lists the kinds whose feature is compiled in (`cli/src/targets.rs`
/// matches every kind to `cfg!(feature = "<kind>")`): every kind is a feature of the same name,
/// on by default.
#[test]
fn every_kind_is_a_cli_feature_on_by_default() {
    let manifest: toml::Table =
        toml::from_str(&fs::read_to_string(project_root().join("cli/Cargo.toml")).unwrap())
            .unwrap();
    let features = manifest["features"].as_table().unwrap();
    let default: Vec<&str> = features["default"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for kind in Kind::ALL {
        assert!(
            features.contains_key(kind.as_str()),
            "cli/Cargo.toml has no feature `{kind}`: add it (it compiles in the {kind} deployer)"
        );
        assert!(
            default.contains(&kind.as_str()),
            "cli/Cargo.toml: the default features leave out `{kind}`: add it to `default`"
        );
    }
}

/// A crate doc that says "Using it alone" shows it: its examples compile as doctests (no
/// `doctest = false`), and a runnable program under `examples/` is named in the crate doc and
/// in README.md or ARCHITECTURE.md.
#[test]
fn every_crate_that_can_be_used_alone_shows_it() {
    let root = project_root();
    let docs = fs::read_to_string(root.join("README.md")).unwrap()
        + &fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut problems = Vec::new();
    for member in members() {
        let Ok(lib) = fs::read_to_string(member.join("src/lib.rs")) else {
            continue;
        };
        let name = member.file_name().unwrap().to_string_lossy().into_owned();
        let crate_doc: Vec<&str> = lib.lines().take_while(|l| l.starts_with("//!")).collect();
        if !crate_doc.iter().any(|l| l.trim() == "//! # Using it alone") {
            continue;
        }
        let cargo_toml = fs::read_to_string(member.join("Cargo.toml")).unwrap();
        if cargo_toml.contains("doctest = false") {
            problems.push(format!(
                "{name}/Cargo.toml turns doctests off: its crate doc's example must compile (remove \
                 `doctest = false`; give the example `no_run`)"
            ));
        }
        if !crate_doc.iter().any(|l| {
            let fence = l.trim_start_matches("//!").trim();
            fence == "```" || fence == "```no_run" || fence == "```rust"
        }) {
            problems.push(format!(
                "{name}/src/lib.rs: the crate doc has no Rust example (a ``` or ```no_run block)"
            ));
        }
        let doc = crate_doc.join("\n");
        let examples: Vec<String> = fs::read_dir(member.join("examples"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|f| f.ends_with(".rs"))
            .collect();
        let shown: Vec<&String> = examples
            .iter()
            .filter(|f| doc.contains(&format!("examples/{f}")))
            .collect();
        if shown.is_empty() {
            problems.push(format!(
                "{name}: the crate doc says \"Using it alone\" but names no program under \
                 {name}/examples/ (found: {examples:?}): add one and name it (`examples/<name>.rs`)"
            ));
        }
        for file in shown {
            if !docs.contains(&format!("{name}/examples/{file}")) {
                problems.push(format!(
                    "{name}/examples/{file} is not in README.md or ARCHITECTURE.md: add it to \
                     ARCHITECTURE.md's code map"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_lists_are_found_across_comment_lines_and_punctuation() {
        let text = "kind = \"ecs\"   # ecs | agentcore | lambda-image\n\
                    //! features (`ecs`, `agentcore`,\n//! `lambda-image`, `lambda-zip`, `sagemaker` and `config`)\n\
                    deployer-ecs, deployer-agentcore, deployer-lambda-zip-roll\n\
                    | `publish` | lambda-image, lambda-zip |";
        let lists: Vec<(usize, usize)> = kind_lists(text)
            .iter()
            .map(|l| (l.line, l.kinds.len()))
            .collect();
        assert_eq!(lists, [(1, 1), (1, 3), (2, 6), (5, 2)]);
        let problems: Vec<Option<String>> =
            kind_lists(text).iter().map(kind_list_problem).collect();
        assert!(problems[0].is_none() && problems[3].is_none());
        assert_eq!(
            problems[1].as_deref(),
            Some(
                "the kind list `ecs, agentcore, lambda-image` leaves out lambda-zip, sagemaker, \
                 config: list every kind (ecs, agentcore, lambda-image, lambda-zip, sagemaker, \
                 config)"
            )
        );
        assert!(problems[2].is_none());
        let image = kind_lists("ecs, agentcore, lambda-image, sagemaker");
        assert_eq!(
            kind_list_problem(&image[0]),
            None,
            "the image kinds are a whole list"
        );
        let shuffled = kind_lists("agentcore, ecs, lambda-image, lambda-zip, sagemaker, config");
        assert!(
            kind_list_problem(&shuffled[0])
                .unwrap()
                .contains("not in the order")
        );
    }

    #[test]
    fn the_key_table_reader_splits_escaped_pipes_and_several_keys() {
        let readme = "x\n\nEvery key, with the kinds it applies to:\n\n| key | applies to | meaning |\n|---|---|---|\n\
                      | `project.name` | | project name (required) |\n\
                      | `cluster`, `service` | ecs | required |\n\
                      | `blue_green` | sagemaker | `{ traffic = \"a\" \\| \"b\" }` |\n\nafter\n";
        let rows = key_table(readme).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].line, 7);
        assert_eq!(rows[1].keys, ["cluster", "service"]);
        assert_eq!(rows[2].meaning, "`{ traffic = \"a\" | \"b\" }`");
        assert!(says_required("project name (required)"));
        assert!(!says_required(
            "registry; required when a service builds an image"
        ));
        // Against keys.rs: most keys are missing here, and these rows are right.
        let problems = key_table_problems(&rows);
        assert!(
            problems.iter().any(|p| p.contains("no row for `kind`")),
            "{problems:?}"
        );
        assert!(
            !problems
                .iter()
                .any(|p| p.contains("`cluster`") || p.contains("`project.name`")),
            "{problems:?}"
        );
    }
}
