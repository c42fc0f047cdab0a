//! The `deployer` binary itself (this test also makes `cargo test --workspace` build the
//! binary that the end-to-end tests in `tests/` run).

use std::process::Command;

fn deployer() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_deployer"));
    command.env("NO_COLOR", "1");
    command
}

#[test]
fn version_lists_the_compiled_deployers() {
    let out = deployer().arg("--version").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (kind, compiled) in [
        ("ecs", cfg!(feature = "ecs")),
        ("agentcore", cfg!(feature = "agentcore")),
        ("lambda-image", cfg!(feature = "lambda-image")),
        ("lambda-zip", cfg!(feature = "lambda-zip")),
        ("sagemaker", cfg!(feature = "sagemaker")),
    ] {
        let listed = stdout
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .any(|word| word == kind);
        assert_eq!(
            listed, compiled,
            "`{kind}` listed: {listed}, compiled: {compiled}; --version said {stdout:?}"
        );
    }
}

#[test]
fn validate_without_a_manifest_is_a_usage_error_naming_deployer_toml() {
    let dir = tempfile::tempdir().unwrap();
    let out = deployer()
        .arg("validate")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("deployer.toml"), "stderr: {stderr}");
}
