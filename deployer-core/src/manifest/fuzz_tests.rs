//! Hostile and broken manifests: property tests (proptest) on [`Manifest::parse`] and the path
//! checks, field by field.
//!
//! - Arbitrary bytes and strings, and structured near-valid manifests (random keys from the
//!   real key lists and unknown ones, values of every TOML type, paths with `..`, absolute
//!   paths, symlinks leading out of the repository): `parse` never panics; it returns a
//!   manifest or an error whose every diagnostic is located (line and column inside the text)
//!   and says something.
//! - Whatever parses keeps every path inside the repository: `dockerfile`, `context` and
//!   `source` are relative, free of `..`, and resolve (through symlinks) inside the root;
//!   `inputs` and `exclude` globs are relative and free of `..`.
//! - `..`, absolute paths and symlinks out, in each of `inputs`, `context`, `dockerfile` and
//!   `source`: refused, with a diagnostic on that key.
//!
//! The number of cases each property ran is printed (`fuzz: …` on stderr, `--nocapture`).

use std::fs;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::keys::{PROJECT, SERVICE};
use super::*;

/// A repository with the files the manifests name, and symlinks in and out of it.
struct Repo {
    dir: tempfile::TempDir,
    _outside: tempfile::TempDir,
}

fn repo() -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    for file in [
        "backend/Dockerfile",
        "backend/src/app.py",
        "lambda/handler.py",
        "pyproject.toml",
    ] {
        let path = dir.path().join(file);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, "x").unwrap();
    }
    fs::write(outside.path().join("Dockerfile"), "FROM scratch").unwrap();
    let link = |target: &Path, name: &str| {
        std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap();
    };
    // Out of the repository: a directory, a file, /etc/passwd, and a relative climb.
    link(outside.path(), "escape");
    link(&outside.path().join("Dockerfile"), "escape-file");
    link(Path::new("/etc/passwd"), "passwd");
    link(Path::new("../../../../../../etc"), "climb");
    // Inside: harmless.
    link(Path::new("backend"), "inside");
    Repo {
        dir,
        _outside: outside,
    }
}

impl Repo {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn parse(&self, text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("deployer.toml"), text, self.root())
    }
}

/// Every diagnostic is located inside `text` and says what is wrong.
fn assert_located(text: &str, error: &ManifestError) -> Result<(), TestCaseError> {
    let diagnostics = error.diagnostics();
    prop_assert!(
        !diagnostics.is_empty(),
        "an error without diagnostics: {error}"
    );
    let lines = text.split('\n').count().max(1);
    for d in diagnostics {
        prop_assert!(
            d.line >= 1 && d.line <= lines && d.column >= 1,
            "diagnostic outside the text ({} lines): {}:{}: {}",
            lines,
            d.line,
            d.column,
            d.message
        );
        prop_assert!(
            !d.message.trim().is_empty(),
            "an empty message at {}:{}",
            d.line,
            d.column
        );
    }
    let rendered = error.to_string();
    prop_assert!(
        rendered.contains("deployer.toml:"),
        "not located: {rendered}"
    );
    Ok(())
}

/// Whatever parsed keeps its paths inside the repository.
fn assert_paths_inside(repo: &Repo, manifest: &Manifest) -> Result<(), TestCaseError> {
    let root = repo.root().canonicalize().unwrap();
    let plain = |value: &str| {
        let path = Path::new(value);
        !value.is_empty()
            && !path.is_absolute()
            && path
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    };
    let inside = |value: &str| {
        root.join(value)
            .canonicalize()
            .is_ok_and(|full| full.starts_with(&root))
    };
    for service in manifest.services.values() {
        if let Some(image) = &service.image {
            for (key, value) in [
                ("dockerfile", &image.dockerfile),
                ("context", &image.context),
            ] {
                let value = value.as_str();
                prop_assert!(
                    plain(value) || value == ".",
                    "{}: {key} = {value:?} accepted",
                    service.name
                );
                prop_assert!(
                    inside(value),
                    "{}: {key} = {value:?} leads out",
                    service.name
                );
            }
            for glob in image.inputs.iter().flatten() {
                prop_assert!(plain(glob), "{}: input {glob:?} accepted", service.name);
            }
        }
        if let Target::LambdaZip(zip) = &service.target {
            prop_assert!(
                plain(&zip.source) || zip.source == ".",
                "source {:?} accepted",
                zip.source
            );
            prop_assert!(inside(&zip.source), "source {:?} leads out", zip.source);
            for glob in &zip.exclude {
                prop_assert!(plain(glob), "exclude {glob:?} accepted");
            }
        }
    }
    Ok(())
}

fn check(repo: &Repo, text: &str) -> Result<(), TestCaseError> {
    match repo.parse(text) {
        Ok(manifest) => assert_paths_inside(repo, &manifest),
        Err(error) => assert_located(text, &error),
    }
}

/// Counts cases and reports them when dropped (at the end of the property).
struct Counter(&'static str, AtomicUsize, AtomicUsize);

impl Counter {
    const fn new(name: &'static str) -> Self {
        Counter(name, AtomicUsize::new(0), AtomicUsize::new(0))
    }

    fn case(&self, parsed: bool) {
        self.1.fetch_add(1, Ordering::Relaxed);
        if parsed {
            self.2.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn report(&self) {
        eprintln!(
            "fuzz: {}: {} cases, {} parsed, {} refused with located errors",
            self.0,
            self.1.load(Ordering::Relaxed),
            self.2.load(Ordering::Relaxed),
            self.1.load(Ordering::Relaxed) - self.2.load(Ordering::Relaxed)
        );
    }
}

// ------------------------------------------------------------------ generators

/// Path values: plain ones that exist, and every way out of the repository.
fn path_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "backend", "backend/Dockerfile", "lambda", "pyproject.toml", ".", "./backend",
            "backend/src", "inside", "inside/Dockerfile", "backend//src",
        ])
        .prop_map(str::to_owned),
        4 => prop::sample::select(vec![
            "..", "../backend", "backend/../../x", "backend/..", "/etc/passwd", "/", "/tmp",
            "escape", "escape/Dockerfile", "escape-file", "passwd", "climb", "climb/passwd",
            "./../backend", "backend/./../..", "~/x", "\\\\server\\share", "C:\\x", "",
            "backend/\u{0}", "..\\..\\x", "%2e%2e/x", "backend/…/x",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z./~\\\\]{0,16}",
    ]
}

/// Glob values for `inputs` and `exclude`.
fn glob_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec!["backend/**", "backend/src/*.py", "**", "*", "lambda/**"])
            .prop_map(str::to_owned),
        3 => path_value(),
        1 => prop::sample::select(vec!["escape/**", "../**", "/etc/*", "climb/*", "passwd", "[", "{a,", "**/../x"])
            .prop_map(str::to_owned),
    ]
}

/// A TOML string literal (basic string, escaped).
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Values of every TOML type.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        path_value().prop_map(|p| toml_string(&p)),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        prop::sample::select(vec!["1.5", "-0.0", "inf", "nan", "1e300"]).prop_map(str::to_owned),
        Just("1979-05-27T07:32:00Z".to_owned()),
        prop::collection::vec(glob_value(), 0..4).prop_map(|items| format!(
            "[{}]",
            items
                .iter()
                .map(|i| toml_string(i))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Just("{}".to_owned()),
        Just("{ env = \"HOME\" }".to_owned()),
        Just("{ ssm = \"/x/y\" }".to_owned()),
        Just("{ bogus = 1 }".to_owned()),
        Just("[[1], \"a\"]".to_owned()),
        "[ -~]{0,12}".prop_map(|s| toml_string(&s)),
    ]
}

/// The value for `key`: for the path keys mostly paths and globs, else anything.
fn value_for(key: &'static str) -> BoxedStrategy<String> {
    match key {
        "dockerfile" | "context" | "source" => prop_oneof![
            4 => path_value().prop_map(|p| toml_string(&p)),
            1 => any_value(),
        ]
        .boxed(),
        "inputs" | "exclude" => prop_oneof![
            4 => prop::collection::vec(glob_value(), 0..4)
                .prop_map(|items| format!("[{}]", items.iter().map(|i| toml_string(i)).collect::<Vec<_>>().join(", "))),
            1 => any_value(),
        ]
        .boxed(),
        "kind" => prop_oneof![
            4 => prop::sample::select(crate::manifest::Kind::ALL.map(crate::manifest::Kind::as_str).to_vec())
                .prop_map(toml_string),
            1 => any_value(),
        ]
        .boxed(),
        "platform" => prop_oneof![
            3 => prop::sample::select(vec!["linux/amd64", "linux/arm64"]).prop_map(toml_string),
            1 => any_value(),
        ]
        .boxed(),
        _ => any_value().boxed(),
    }
}

/// One `key = value` line of a service: a real key (most of the time) or a made-up one.
fn service_line() -> impl Strategy<Value = String> {
    let known: Vec<&'static str> = SERVICE.iter().map(|k| k.name).collect();
    prop_oneof![
        6 => prop::sample::select(known).prop_flat_map(|key| value_for(key).prop_map(move |v| format!("{key} = {v}"))),
        1 => ("[a-z_]{1,12}", any_value()).prop_map(|(k, v)| format!("{k} = {v}")),
    ]
}

/// A service that is valid for its kind, then mutated: lines replaced, added or removed.
fn service_table() -> impl Strategy<Value = String> {
    let base = prop::sample::select(vec![
        vec![
            "kind = \"ecs\"",
            "dockerfile = \"backend/Dockerfile\"",
            "context = \"backend\"",
            "platform = \"linux/amd64\"",
            "inputs = [\"backend/**\"]",
            "repository = \"acme/api\"",
            "cluster = \"acme\"",
            "service = \"api\"",
        ],
        vec![
            "kind = \"lambda-zip\"",
            "source = \"lambda\"",
            "function = \"acme-render\"",
            "exclude = [\"**/__pycache__\"]",
        ],
        vec![
            "kind = \"lambda-image\"",
            "dockerfile = \"backend/Dockerfile\"",
            "platform = \"linux/arm64\"",
            "inputs = [\"backend/**\"]",
            "repository = \"acme/ingest\"",
            "function = \"acme-ingest\"",
        ],
        vec![
            "kind = \"agentcore\"",
            "dockerfile = \"backend/Dockerfile\"",
            "context = \"backend\"",
            "platform = \"linux/arm64\"",
            "inputs = [\"backend/**\"]",
            "repository = \"acme/agent\"",
            "runtime_id = \"acme_agent-AbCdE12345\"",
        ],
    ]);
    (
        base,
        prop::collection::vec((any::<prop::sample::Index>(), service_line()), 0..3),
        prop::option::weighted(0.15, any::<prop::sample::Index>()),
    )
        .prop_map(|(base, replacements, removal)| {
            let mut lines: Vec<String> = base.iter().map(|l| (*l).to_owned()).collect();
            if let Some(index) = removal
                && !lines.is_empty()
            {
                lines.remove(index.index(lines.len()));
            }
            for (index, line) in replacements {
                let key = line.split(" = ").next().unwrap_or_default().to_owned();
                match lines
                    .iter()
                    .position(|l| l.starts_with(&format!("{key} = ")))
                {
                    Some(at) => lines[at] = line,
                    None => lines.insert(index.index(lines.len() + 1), line),
                }
            }
            lines.join("\n")
        })
}

/// A near-valid manifest: a `[project]` with random extras and one to three mutated services.
fn manifest_text() -> impl Strategy<Value = String> {
    let project_keys: Vec<&'static str> = PROJECT.iter().map(|k| k.name).collect();
    (
        prop::collection::vec(
            prop::sample::select(project_keys)
                .prop_flat_map(|key| any_value().prop_map(move |v| format!("{key} = {v}"))),
            0..2,
        ),
        prop::collection::vec(("[a-z][a-z0-9-]{0,10}", service_table()), 1..3),
        prop::bool::weighted(0.9),
    )
        .prop_map(|(extras, services, registry)| {
            let mut text = String::from("[project]\nname = \"acme\"\n");
            if registry {
                text.push_str("registry = \"127.0.0.1:5000\"\n");
            }
            for extra in extras {
                text.push_str(&extra);
                text.push('\n');
            }
            for (name, body) in services {
                text.push_str(&format!("\n[services.{name}]\n{body}\n"));
            }
            text
        })
}

/// The valid manifest below with its path fields (`dockerfile`, `context`, `inputs`, `source`,
/// `exclude`) replaced by generated paths and globs: most of the ways in and out, in each field.
fn path_mutations() -> impl Strategy<Value = String> {
    (
        path_value(),
        path_value(),
        prop::collection::vec(glob_value(), 1..3),
        path_value(),
        prop::collection::vec(glob_value(), 0..2),
        prop::sample::subsequence(vec![0usize, 1, 2, 3, 4], 1..=5),
    )
        .prop_map(|(dockerfile, context, inputs, source, exclude, fields)| {
            let list = |items: &[String]| {
                items
                    .iter()
                    .map(|i| toml_string(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut text = ECS.to_owned();
            for field in fields {
                let (from, to) = match field {
                    0 => (
                        "dockerfile = \"backend/Dockerfile\"".to_owned(),
                        format!("dockerfile = {}", toml_string(&dockerfile)),
                    ),
                    1 => (
                        "context = \"backend\"".to_owned(),
                        format!("context = {}", toml_string(&context)),
                    ),
                    2 => (
                        "inputs = [\"backend/**\"]".to_owned(),
                        format!("inputs = [{}]", list(&inputs)),
                    ),
                    3 => (
                        "source = \"lambda\"".to_owned(),
                        format!("source = {}", toml_string(&source)),
                    ),
                    _ => (
                        "function = \"acme-render\"".to_owned(),
                        format!("function = \"acme-render\"\nexclude = [{}]", list(&exclude)),
                    ),
                };
                text = text.replace(&from, &to);
            }
            text
        })
}

// ------------------------------------------------------------------ properties

static BYTES: Counter = Counter::new("arbitrary bytes");
static STRINGS: Counter = Counter::new("arbitrary strings");
static TOMLISH: Counter = Counter::new("TOML-alphabet strings");
static STRUCTURED: Counter = Counter::new("structured near-valid manifests");
static PATHS: Counter = Counter::new("path fields of a valid manifest mutated");

fn run(counter: &'static Counter, cases: u32, strategy: impl Strategy<Value = String>) {
    let repo = repo();
    let mut runner = proptest::test_runner::TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |text| {
        let parsed = repo.parse(&text).is_ok();
        counter.case(parsed);
        check(&repo, &text)
    });
    counter.report();
    if let Err(error) = result {
        panic!("{error}");
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    run(
        &BYTES,
        2000,
        prop::collection::vec(any::<u8>(), 0..400)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
    );
}

#[test]
fn arbitrary_strings_never_panic() {
    run(&STRINGS, 2000, ".{0,300}");
}

#[test]
fn toml_alphabet_strings_never_panic() {
    run(&TOMLISH, 3000, "[\\[\\]a-z_.=\"' \n{},#0-9/-]{0,300}");
}

#[test]
fn near_valid_manifests_parse_or_fail_located_and_never_let_a_path_out() {
    run(&STRUCTURED, 4000, manifest_text());
}

#[test]
fn mutated_path_fields_never_let_a_path_out() {
    run(&PATHS, 3000, path_mutations());
}

// ------------------------------------------------------------------ every field, every way out

const ECS: &str = r#"[project]
name = "acme"
registry = "127.0.0.1:5000"

[services.api]
kind = "ecs"
dockerfile = "backend/Dockerfile"
context = "backend"
platform = "linux/amd64"
inputs = ["backend/**"]
repository = "acme/api"
cluster = "acme"
service = "api"

[services.render]
kind = "lambda-zip"
source = "lambda"
function = "acme-render"
"#;

/// `..`, absolute paths and symlinks out of the repository, in each of `dockerfile`,
/// `context`, `source` and `inputs`: each refused with a diagnostic on that key's value.
#[test]
fn every_way_out_is_refused_in_every_path_field() {
    let repo = repo();
    assert!(repo.parse(ECS).is_ok(), "the base manifest is valid");
    let ways_out = [
        ("..", "leaves the repository"),
        ("../backend", "leaves the repository"),
        ("backend/../../x", "leaves the repository"),
        ("/etc", "is absolute"),
        ("/etc/passwd", "is absolute"),
        ("escape", "leads out of the repository"),
        ("escape-file", "leads out of the repository"),
        ("passwd", "leads out of the repository"),
        ("climb", "leads out of the repository"),
    ];
    let fields = [
        (
            "dockerfile",
            "dockerfile = \"backend/Dockerfile\"",
            "dockerfile = {}",
        ),
        ("context", "context = \"backend\"", "context = {}"),
        ("source", "source = \"lambda\"", "source = {}"),
        ("inputs", "inputs = [\"backend/**\"]", "inputs = [{}]"),
    ];
    let mut refused = 0;
    for (field, original, template) in fields {
        for (value, why) in ways_out {
            let line = template.replace("{}", &toml_string(value));
            let text = ECS.replace(original, &line);
            let error = match repo.parse(&text) {
                Ok(_) => panic!("{field} = {value:?} was accepted"),
                Err(error) => error,
            };
            let diagnostics = error.diagnostics();
            let line_no = text.lines().position(|l| l == line).unwrap() + 1;
            let on_the_value = diagnostics.iter().any(|d| d.line == line_no);
            assert!(
                on_the_value,
                "{field} = {value:?}: no diagnostic on line {line_no}:\n{error}"
            );
            // A path that does not exist is refused too, just for that reason; the ways out that
            // exist must be refused for leading out.
            let reason = diagnostics.iter().any(|d| d.message.contains(why));
            let missing = diagnostics
                .iter()
                .any(|d| d.message.contains("does not exist") || d.message.contains("is not a"));
            assert!(
                reason || missing,
                "{field} = {value:?}: refused, but not because it leads out:\n{error}"
            );
            refused += 1;
        }
    }
    eprintln!("fuzz: every way out: {refused} cases refused");
}

/// A glob of `inputs` that names a symlink to a file outside, or climbs through one: refused.
#[test]
fn input_globs_through_symlinks_out_are_refused() {
    let repo = repo();
    for glob in [
        "escape/**",
        "escape-file",
        "passwd",
        "climb/*",
        "climb/passwd",
        "escape/*.txt",
    ] {
        let text = ECS.replace(
            "inputs = [\"backend/**\"]",
            &format!("inputs = [{}]", toml_string(glob)),
        );
        let error = repo
            .parse(&text)
            .err()
            .unwrap_or_else(|| panic!("input {glob:?} was accepted"));
        assert!(
            error.to_string().contains("leads out of the repository"),
            "{glob}: {error}"
        );
    }
    // A symlink that stays inside is fine.
    let text = ECS.replace("inputs = [\"backend/**\"]", "inputs = [\"inside/**\"]");
    assert!(repo.parse(&text).is_ok());
}

#[test]
fn toml_strings_are_escaped() {
    assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000A\"");
}
