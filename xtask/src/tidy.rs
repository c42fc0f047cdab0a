//! Repository rules, checked by `cargo test -p xtask` (and so by `cargo xtask test`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::project_root;

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
    "aws-sdk-ecr",
    "aws-sdk-bedrockagentcorecontrol",
    "aws-sdk-sagemaker",
    "deployer-image",
    "deployer-ecs",
    "deployer-agentcore",
    "deployer-lambda-image",
    "deployer-sagemaker",
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
    // The same check on the default build must find the image side, or the names above are stale.
    let full = tree("deployer-cli", &[]);
    assert!(
        crate_names(&full).contains(&"aws-sdk-ecs"),
        "the default cli build should carry aws-sdk-ecs:\n{full}"
    );
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
