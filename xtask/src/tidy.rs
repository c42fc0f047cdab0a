//! Repository rules, checked by `cargo test -p xtask` (and so by `cargo xtask test`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::project_root;

mod docs;

/// Workspace members, from the root manifest.
fn members() -> Vec<PathBuf> {
    let root = project_root();
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let start = manifest.find("members = [").unwrap();
    let end = start + manifest[start..].find(']').unwrap();
    manifest[start..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|member| root.join(member))
        .collect()
}

fn crate_root(member: &Path) -> Option<PathBuf> {
    ["src/lib.rs", "src/main.rs"]
        .iter()
        .map(|f| member.join(f))
        .find(|p| p.is_file())
}

#[test]
fn every_crate_starts_with_a_crate_doc() {
    for member in members() {
        let root = crate_root(&member)
            .unwrap_or_else(|| panic!("{} has no src/lib.rs or src/main.rs", member.display()));
        let text = fs::read_to_string(&root).unwrap();
        assert!(
            text.starts_with("//!"),
            "{} must start with a crate doc (`//! what it is for and how to use it alone`)",
            root.display()
        );
        let doc_lines = text.lines().take_while(|l| l.starts_with("//!")).count();
        assert!(
            doc_lines >= 3,
            "{}: the crate doc is too short to say what the crate is for and how to use it",
            root.display()
        );
    }
}

#[test]
fn every_crate_uses_the_workspace_lints_and_dependencies() {
    for member in members() {
        let manifest_path = member.join("Cargo.toml");
        let manifest = fs::read_to_string(&manifest_path).unwrap();
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{} must opt in to the workspace lints",
            manifest_path.display()
        );
        for section in [
            "[dependencies]",
            "[dev-dependencies]",
            "[build-dependencies]",
        ] {
            let Some(start) = manifest.find(section) else {
                continue;
            };
            let body = &manifest[start + section.len()..];
            let body = &body[..body.find("\n[").unwrap_or(body.len())];
            for line in body
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            {
                assert!(
                    line.contains(".workspace = true") || line.contains("workspace = true"),
                    "{}: `{line}` must come from [workspace.dependencies] (`name.workspace = true`)",
                    manifest_path.display()
                );
            }
        }
    }
}

#[test]
fn library_crates_document_every_public_item() {
    for member in members() {
        let lib = member.join("src/lib.rs");
        let name = member.file_name().unwrap().to_string_lossy().into_owned();
        if !lib.is_file() || name == "cli" {
            continue;
        }
        let text = fs::read_to_string(&lib).unwrap();
        assert!(
            text.contains("#![warn(missing_docs)]"),
            "{} must have #![warn(missing_docs)]",
            lib.display()
        );
    }
}

/// `cargo tree` of one package with the given feature flags, normal edges only.
fn tree(package: &str, features: &[&str]) -> String {
    let output = Command::new(env!("CARGO"))
        .current_dir(project_root())
        .args([
            "tree", "--quiet", "-e", "normal", "--prefix", "none", "--format", "{p}", "-p", package,
        ])
        .args(features)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn crate_names(tree: &str) -> Vec<&str> {
    let mut names: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Crates that build, push or inspect images, or talk to ECS/ECR/AgentCore.
const IMAGE_SIDE: &[&str] = &[
    "aws-sdk-ecs",
    "aws-sdk-elasticloadbalancingv2",
    "aws-sdk-ecr",
    "aws-sdk-bedrockagentcorecontrol",
    "aws-sdk-sagemaker",
    "deployer-image",
    "deployer-ecs",
    "deployer-agentcore",
    "deployer-lambda-image",
    "deployer-sagemaker",
    "deployer-codebuild",
    "aws-sdk-codebuild",
    "oci-client",
    "oci-spec",
    "bollard",
];

#[test]
fn zip_only_cli_has_no_image_code() {
    let slim = tree(
        "deployer-cli",
        &["--no-default-features", "--features", "lambda-zip"],
    );
    let names = crate_names(&slim);
    let found: Vec<&&str> = IMAGE_SIDE.iter().filter(|c| names.contains(c)).collect();
    assert!(
        found.is_empty(),
        "the zip-only cli build pulls in {found:?}"
    );
    assert!(
        names.contains(&"deployer-lambda-zip"),
        "the zip-only build lost the zip deployer:\n{slim}"
    );
    assert!(names.contains(&"aws-sdk-lambda"));
    // `deployer logs` and a failed update's log tail: a zip function's logs are read too.
    assert!(
        names.contains(&"deployer-logs"),
        "the zip-only build lost `deployer logs`:\n{slim}"
    );
    // The same check on the default build must find the image side, or the names above are stale.
    let full = tree("deployer-cli", &[]);
    assert!(
        crate_names(&full).contains(&"aws-sdk-ecs"),
        "the default cli build should carry aws-sdk-ecs:\n{full}"
    );
}

/// A config-only build (`--features config`) is as slim as the zip-only one: no image side,
/// and no Lambda either — DynamoDB, SSM and S3 only.
#[test]
fn config_only_cli_has_no_image_code() {
    let slim = tree(
        "deployer-cli",
        &["--no-default-features", "--features", "config"],
    );
    let names = crate_names(&slim);
    let found: Vec<&&str> = IMAGE_SIDE
        .iter()
        .chain(&[
            "aws-sdk-lambda",
            "deployer-lambda",
            "zip",
            // a config set writes no logs of its own
            "deployer-logs",
            "aws-sdk-cloudwatchlogs",
        ])
        .filter(|c| names.contains(c))
        .collect();
    assert!(
        found.is_empty(),
        "the config-only cli build pulls in {found:?}"
    );
    for wanted in [
        "deployer-config",
        "aws-sdk-dynamodb",
        "aws-sdk-ssm",
        "aws-sdk-s3",
    ] {
        assert!(
            names.contains(&wanted),
            "the config-only build lost {wanted}:\n{slim}"
        );
    }
    let zip_only = tree(
        "deployer-cli",
        &["--no-default-features", "--features", "lambda-zip"],
    );
    assert!(
        !crate_names(&zip_only).contains(&"aws-sdk-dynamodb"),
        "the zip-only build should not carry the config deployer:\n{zip_only}"
    );
}

#[test]
fn config_deployer_has_no_image_code() {
    let names = tree("deployer-config", &[]);
    let names = crate_names(&names);
    let found: Vec<&&str> = IMAGE_SIDE
        .iter()
        .chain(&["aws-sdk-lambda", "reqwest", "hyper-rustls"])
        .filter(|c| names.contains(c))
        .collect();
    assert!(found.is_empty(), "deployer-config depends on {found:?}");
}

#[test]
fn zip_deployer_has_no_image_code() {
    let names = tree("deployer-lambda-zip", &[]);
    let names = crate_names(&names);
    let found: Vec<&&str> = IMAGE_SIDE.iter().filter(|c| names.contains(c)).collect();
    assert!(found.is_empty(), "deployer-lambda-zip depends on {found:?}");
}

#[test]
fn core_and_hasher_know_no_aws_and_no_docker() {
    for package in ["deployer-core", "hasher"] {
        let tree = tree(package, &[]);
        let names = crate_names(&tree);
        let found: Vec<&&str> = names
            .iter()
            .filter(|n| n.starts_with("aws-") || IMAGE_SIDE.contains(n))
            .collect();
        assert!(found.is_empty(), "{package} depends on {found:?}");
    }
    for package in ["hasher"] {
        let names = tree(package, &[]);
        for network in ["hyper", "reqwest", "ureq", "tokio"] {
            assert!(
                !crate_names(&names).contains(&network),
                "{package} must do no network I/O but depends on {network}"
            );
        }
    }
}

/// deployer-aws is the plumbing every deployer shares, built on the smithy runtime types only:
/// it must work with any service's client and add no service SDK to a build (the zip-only cli
/// keeps its tree), and it knows no image tooling.
#[test]
fn the_shared_aws_plumbing_depends_on_no_service_sdk() {
    let names = tree("deployer-aws", &[]);
    let names = crate_names(&names);
    let found: Vec<&&str> = names
        .iter()
        .filter(|n| {
            n.starts_with("aws-sdk-")
                || IMAGE_SIDE.contains(n)
                || n.starts_with("deployer-") && !["deployer-core", "deployer-aws"].contains(n)
        })
        .collect();
    assert!(found.is_empty(), "deployer-aws depends on {found:?}");
    assert!(
        names.contains(&"aws-smithy-runtime-api"),
        "deployer-aws should be built on aws-smithy-runtime-api:\n{names:?}"
    );
}

/// deployer-engine drives any `Deployer`: it knows no compute target and no image tooling —
/// only the store it keeps its records and lock in (SSM by default, whose errors it shows
/// through deployer-aws).
#[test]
fn the_engine_knows_no_compute_target_and_no_docker() {
    let names = tree("deployer-engine", &[]);
    let names = crate_names(&names);
    let found: Vec<&&str> = names
        .iter()
        .filter(|n| {
            (n.starts_with("aws-sdk-") && **n != "aws-sdk-ssm")
                || IMAGE_SIDE.contains(n)
                || n.starts_with("deployer-")
                    && !["deployer-core", "deployer-engine", "deployer-aws"].contains(n)
        })
        .collect();
    assert!(found.is_empty(), "deployer-engine depends on {found:?}");
    let bare = tree("deployer-engine", &["--no-default-features"]);
    assert!(
        !crate_names(&bare)
            .iter()
            .any(|n| n.starts_with("aws-") || *n == "deployer-aws"),
        "deployer-engine without its `ssm` feature must need no AWS crate:\n{bare}"
    );
}

/// One path per behaviour: the flows that change a service (apply, restart, rollback, wait)
/// are driven by deployer-engine only; the cli and xtask never call those trait methods by
/// hand (each hand-written flow forgot a different check).
#[test]
fn only_the_engine_drives_the_deploy_flows() {
    for dir in ["cli/src", "xtask/src"] {
        for entry in walk(&project_root().join(dir)) {
            if entry.ends_with("tidy.rs") {
                continue;
            }
            let text = fs::read_to_string(&entry).unwrap();
            for (number, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for call in [
                    ".apply(&",
                    ".restart(&",
                    ".rollback(&",
                    ".wait(&",
                    "deploy_with(",
                ] {
                    assert!(
                        !code.contains(call),
                        "{}:{}: `{call}` drives a deploy flow by hand; go through deployer-engine",
                        entry.display(),
                        number + 1
                    );
                }
            }
        }
    }
}

#[test]
fn only_cli_and_xtask_print() {
    // The lint `clippy::print_stdout`/`print_stderr` catches println!; this also catches
    // direct writes to the process's standard streams in library crates.
    for member in members() {
        let name = member.file_name().unwrap().to_string_lossy().into_owned();
        if ["cli", "xtask", "tests"].contains(&name.as_str()) {
            continue;
        }
        for entry in walk(&member.join("src")) {
            let text = fs::read_to_string(&entry).unwrap();
            for needle in [
                "std::io::stdout()",
                "std::io::stderr()",
                "io::stdout()",
                "io::stderr()",
            ] {
                assert!(
                    !text.contains(needle),
                    "{} writes to a standard stream ({needle}); only cli prints",
                    entry.display()
                );
            }
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Every `.rs` file of the workspace, skipping build output (`target/`) and hidden directories
/// (`.git`, `.cargo`).
fn workspace_sources() -> Vec<PathBuf> {
    fn visit(dir: &Path, files: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    visit(&path, files);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    visit(&project_root(), &mut files);
    files
}

#[test]
fn no_sdk_error_is_shown_through_display_error_context() {
    // `DisplayErrorContext` ends with the `Debug` form of the error and of the raw HTTP
    // response, whose body may carry secrets (a Lambda `GetFunction` answer holds the
    // function's environment values). SDK errors are shown as `Code: message` or their chain of
    // causes, one line (see `deployer_aws::error_line`). Comments may name it.
    let needle = "DisplayErrorContext";
    let this_file = project_root().join("xtask/src/tidy.rs");
    let mut found = Vec::new();
    for path in workspace_sources() {
        if path == this_file {
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        for (number, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with("//") && line.contains(needle) {
                found.push(format!(
                    "{}:{}: {}",
                    path.display(),
                    number + 1,
                    line.trim()
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "{needle} shows the raw response (secrets included); write the error as `Code: message` or its chain of causes instead:\n{}",
        found.join("\n")
    );
}

/// Whether `path` is test code: a `tests` directory or module file, or test fixtures.
fn is_test_source(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str() == "tests")
        || path
            .file_name()
            .is_some_and(|name| name == "tests.rs" || name == "testing.rs")
}

/// One classification and one line for SDK errors (`deployer_aws::classify`, `error_line`):
/// outside deployer-aws no library or cli code reads an SDK error's code or message, or keeps
/// its own list of throttling codes, so "retryable" and "not found" mean the same everywhere
/// and no report shows more of an answer than `Code: message`. Test code may.
#[test]
fn sdk_errors_are_classified_and_shown_by_deployer_aws_only() {
    let allowed = project_root().join("deployer-aws");
    let this_file = project_root().join("xtask/src/tidy.rs");
    let mut found = Vec::new();
    for path in workspace_sources() {
        if path.starts_with(&allowed)
            || path == this_file
            || is_test_source(&path)
            || path.starts_with(project_root().join("xtask"))
        {
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let reads_sdk_errors = text.contains("ProvideErrorMetadata") || text.contains("SdkError");
        let code = text
            .find("#[cfg(test)]\nmod tests")
            .map_or(text.as_str(), |end| &text[..end]);
        for (number, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            let metadata =
                reads_sdk_errors && (line.contains(".code()") || line.contains(".message()"));
            let codes = [
                "\"ThrottlingException\"",
                "\"TooManyRequestsException\"",
                "\"ServiceUnavailableException\"",
            ]
            .iter()
            .any(|needle| line.contains(needle));
            if metadata || codes {
                found.push(format!("{}:{}: {line}", path.display(), number + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "SDK errors are classified and shown by deployer_aws (classify, error_line, Failure) only:\n{}",
        found.join("\n")
    );
}
