//! Lambda through the real `deployer` binary against moto.
//!
//! Functions are created here through the SDK (deployer creates nothing). moto insists that a
//! function's role exists in its IAM: the tests crate carries no IAM SDK, so [`role`] creates
//! one with a single IAM Query call over the tiny HTTP client (moto reads the service from the
//! credential scope and checks no signature).
//!
//! The test bed's Lambda patch (`xtask/testbed/patches/awslambda.py`, see its docstring) makes
//! `UpdateFunctionCode` take two reads `InProgress` before `Successful` (so the deployer's
//! wait is exercised), move `LastModified`, fail the updates of a function tagged
//! `deployer-testbed:update = fail`, and take an image's digest as its `CodeSha256`.

use aws_sdk_lambda::Client;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Architecture, FunctionCode, PackageType, Runtime};
use deployer_tests::{Deployer, FixtureRepo, RunOutput, Testbed, http, testbed, unique_name};
use serde_json::Value;

/// An empty zip (just the end-of-central-directory record): the code a function starts with.
const EMPTY_ZIP: &[u8] = b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";

/// Creates an IAM role Lambda can "assume" in moto and returns its ARN.
pub(crate) fn role(bed: &Testbed) -> String {
    let name = unique_name("lambda-role");
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let body = format!(
        "Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument={}",
        form_encode(policy)
    );
    let authorization = "AWS4-HMAC-SHA256 Credential=test/20250101/us-east-1/iam/aws4_request, \
                         SignedHeaders=host, Signature=0";
    let response = http::request(
        "POST",
        &format!("{}/", bed.moto().url),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Authorization", authorization),
        ],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(response.status, 200, "IAM CreateRole: {}", response.text());
    format!("arn:aws:iam::123456789012:role/{name}")
}

fn form_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub(crate) async fn lambda(bed: &Testbed) -> Client {
    Client::new(&bed.sdk_config().await)
}

/// A zip function holding [`EMPTY_ZIP`], with a secret in its environment.
pub(crate) async fn zip_function(
    bed: &Testbed,
    client: &Client,
    name: &str,
    tags: &[(&str, &str)],
) {
    let mut create = client
        .create_function()
        .function_name(name)
        .runtime(Runtime::Python312)
        .handler("handler.handler")
        .role(role(bed))
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(EMPTY_ZIP))
                .build(),
        )
        .environment(
            aws_sdk_lambda::types::Environment::builder()
                .variables("DB_PASSWORD", SECRET)
                .build(),
        );
    for (key, value) in tags {
        create = create.tags(*key, *value);
    }
    create.send().await.unwrap();
}

const SECRET: &str = "e2e-secret-never-printed";

/// A repository with one `lambda-zip` service `render` deploying `name`.
pub(crate) fn zip_repo(name: &str, extra: &str) -> FixtureRepo {
    let repo = FixtureRepo::new();
    repo.write(
        "deployer.toml",
        format!(
            r#"[project]
name = "{name}"
ssm_prefix = "/{name}"

[services.render]
kind = "lambda-zip"
function = "{name}"
source = "lambdas/render"
exclude = ["**/__pycache__"]
timeout = "2m"
poll_interval = "1s"
{extra}"#
        ),
    )
    .write(
        "lambdas/render/handler.py",
        "def handler(event, context):\n    return {\"ok\": True}\n",
    )
    .write("lambdas/render/lib/util.py", "X = 1\n")
    .write(
        "lambdas/render/lib/__pycache__/util.cpython-312.pyc",
        "junk",
    )
    .write_mode(
        "lambdas/render/bin/run",
        "#!/bin/sh\nexec python3 handler.py\n",
        0o755,
    );
    repo.commit("fixture");
    repo
}

fn deploy(bed: &Testbed, repo: &FixtureRepo, service: &str) -> RunOutput {
    Deployer::new()
        .current_dir(repo.path())
        .bed(bed)
        .args(["deploy", "--json", "--service", service])
        .run()
}

fn report<'a>(out: &'a RunOutput, json: &'a Value) -> &'a Value {
    let services = json["services"]
        .as_array()
        .unwrap_or_else(|| panic!("no services in {json}\n--- stderr\n{}", out.stderr));
    assert_eq!(services.len(), 1, "{json}");
    &services[0]
}

/// The service's tag and zip size as `deployer hash --json` reports them.
fn hash(repo: &FixtureRepo) -> (String, u64) {
    let out = Deployer::new()
        .current_dir(repo.path())
        .args(["hash", "--json", "--service", "render"])
        .run();
    out.assert_success();
    let json = out.json();
    let service = &json["services"][0];
    (
        service["tag"].as_str().unwrap().to_owned(),
        service["bytes"].as_u64().unwrap(),
    )
}

/// `CodeSha256` (base64) as hex, to compare with a tag (the first 24 hex digits of the zip's
/// SHA-256).
fn base64_to_hex(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut hex = String::new();
    for c in text.bytes().filter(|&c| c != b'=') {
        let value = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            hex.push_str(&format!("{:02x}", (bits >> count) & 0xff));
        }
    }
    hex
}

struct Live {
    code_sha256: String,
    code_size: i64,
    last_modified: String,
    image_uri: Option<String>,
}

async fn live(client: &Client, name: &str) -> Live {
    let output = client
        .get_function()
        .function_name(name)
        .send()
        .await
        .unwrap();
    let config = output.configuration().unwrap();
    Live {
        code_sha256: config.code_sha256().unwrap().to_owned(),
        code_size: config.code_size(),
        last_modified: config.last_modified().unwrap().to_owned(),
        image_uri: output.code().and_then(|c| c.image_uri()).map(str::to_owned),
    }
}

fn assert_no_secret(out: &RunOutput) {
    assert!(
        !out.stdout.contains(SECRET),
        "stdout shows a secret:\n{}",
        out.stdout
    );
    assert!(
        !out.stderr.contains(SECRET),
        "stderr shows a secret:\n{}",
        out.stderr
    );
}

#[tokio::test]
async fn zip_function_gets_the_local_zip_and_a_second_deploy_sends_nothing() {
    let Some(bed) = testbed!(moto) else { return };
    let client = lambda(bed).await;
    let name = unique_name("zip");
    zip_function(bed, &client, &name, &[]).await;
    let repo = zip_repo(&name, "");
    let (tag, bytes) = hash(&repo);
    let before = live(&client, &name).await;

    let out = deploy(bed, &repo, "render");
    out.assert_success();
    assert_no_secret(&out);
    let json = out.json();
    let first = report(&out, &json);
    assert_eq!(first["action"], "updated", "{first}");
    assert_eq!(first["kind"], "lambda-zip");
    assert_eq!(first["tag"], tag.as_str());
    let after = live(&client, &name).await;
    // What Lambda holds is the zip `deployer hash` computes: same SHA-256, same size.
    assert_eq!(&base64_to_hex(&after.code_sha256)[..tag.len()], tag);
    assert_eq!(u64::try_from(after.code_size).unwrap(), bytes);
    assert_eq!(first["new_artifact"], after.code_sha256.as_str());
    assert_eq!(first["old_artifact"], before.code_sha256.as_str());
    assert_eq!(first["ids"]["code_sha256"], after.code_sha256.as_str());
    assert_eq!(first["ids"]["old_code_sha256"], before.code_sha256.as_str());
    assert!(
        first["ids"]["function"]
            .as_str()
            .is_some_and(|arn| arn.ends_with(&format!(":function:{name}"))),
        "{first}"
    );
    assert_ne!(after.last_modified, before.last_modified);

    // Nothing changed: no UpdateFunctionCode (LastModified would move), `unchanged`.
    let out = deploy(bed, &repo, "render");
    out.assert_success();
    let json = out.json();
    let second = report(&out, &json);
    assert_eq!(second["action"], "unchanged", "{second}");
    assert_eq!(second["new_artifact"], after.code_sha256.as_str());
    let again = live(&client, &name).await;
    assert_eq!(again.code_sha256, after.code_sha256);
    assert_eq!(again.last_modified, after.last_modified);

    // An mtime-only change is no change either.
    repo.write(
        "lambdas/render/handler.py",
        repo.read("lambdas/render/handler.py"),
    );
    let out = deploy(bed, &repo, "render");
    out.assert_success();
    let json = out.json();
    assert_eq!(report(&out, &json)["action"], "unchanged");
}

#[tokio::test]
async fn publish_and_alias_move_with_each_code_change() {
    let Some(bed) = testbed!(moto) else { return };
    let client = lambda(bed).await;
    let name = unique_name("zip-alias");
    zip_function(bed, &client, &name, &[]).await;
    let repo = zip_repo(&name, "publish = true\nalias = \"live\"\n");

    let out = deploy(bed, &repo, "render");
    out.assert_success();
    let json = out.json();
    let first = report(&out, &json);
    assert_eq!(first["action"], "updated", "{first}");
    assert_eq!(first["ids"]["alias"], "live");
    let version = first["ids"]["version"].as_str().unwrap().to_owned();
    assert!(first["ids"].get("old_version").is_none(), "{first}");
    let alias = client
        .get_alias()
        .function_name(&name)
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(alias.function_version(), Some(version.as_str()));
    let published = client
        .get_function_configuration()
        .function_name(&name)
        .qualifier(&version)
        .send()
        .await
        .unwrap();
    assert_eq!(published.code_sha256(), first["new_artifact"].as_str());

    let out = deploy(bed, &repo, "render");
    out.assert_success();
    let json = out.json();
    let second = report(&out, &json);
    assert_eq!(second["action"], "unchanged", "{second}");
    assert_eq!(second["ids"]["version"], version.as_str());

    repo.write("lambdas/render/lib/util.py", "X = 2\n")
        .commit("edit");
    let out = deploy(bed, &repo, "render");
    out.assert_success();
    let json = out.json();
    let third = report(&out, &json);
    assert_eq!(third["action"], "updated", "{third}");
    assert_eq!(third["ids"]["old_version"], version.as_str());
    let new_version = third["ids"]["version"].as_str().unwrap();
    assert_ne!(new_version, version);
    let alias = client
        .get_alias()
        .function_name(&name)
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(alias.function_version(), Some(new_version));
}

#[tokio::test]
async fn failed_update_is_reported_with_lambdas_reason() {
    let Some(bed) = testbed!(moto) else { return };
    let client = lambda(bed).await;
    let name = unique_name("zip-fail");
    zip_function(bed, &client, &name, &[("deployer-testbed:update", "fail")]).await;
    let repo = zip_repo(&name, "");

    let out = deploy(bed, &repo, "render");
    out.assert_code(1);
    assert_no_secret(&out);
    let json = out.json();
    let failed = report(&out, &json);
    let message = failed["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {failed}"));
    assert!(
        message.contains("LastUpdateStatus") || message.contains("failed"),
        "{message}"
    );
    assert!(
        message.contains("updates of this function fail"),
        "{message}"
    );
    assert!(message.contains("InvalidImage"), "{message}");
}

/// Issue 13, item 5: `$LATEST` already names the wanted code, but its update `Failed`. Once the
/// cause is gone, re-running the same release must repair the function: the code is sent again
/// (before the fix nothing was sent and the wait failed at once, forever).
#[tokio::test]
async fn a_rerun_of_the_same_release_repairs_a_function_whose_update_failed() {
    let Some(bed) = testbed!(moto) else { return };
    let client = lambda(bed).await;
    let name = unique_name("zip-repair");
    zip_function(bed, &client, &name, &[("deployer-testbed:update", "fail")]).await;
    let repo = zip_repo(&name, "");

    let failed = deploy(bed, &repo, "render");
    failed.assert_code(1);
    let configuration = client
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap()
        .configuration
        .unwrap();
    assert_eq!(
        configuration.last_update_status().map(|s| s.as_str()),
        Some("Failed")
    );
    // The cause is fixed (here: the test bed stops failing this function's updates).
    client
        .untag_resource()
        .resource(configuration.function_arn().unwrap())
        .tag_keys("deployer-testbed:update")
        .send()
        .await
        .unwrap();

    let repaired = deploy(bed, &repo, "render");
    repaired.assert_success();
    let json = repaired.json();
    assert_eq!(report(&repaired, &json)["action"], "updated", "{json}");
    let configuration = client
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap()
        .configuration
        .unwrap();
    assert_eq!(
        configuration.last_update_status().map(|s| s.as_str()),
        Some("Successful")
    );
}

#[tokio::test]
async fn zip_service_refuses_an_image_function() {
    let Some(bed) = testbed!(moto) else { return };
    let client = lambda(bed).await;
    let name = unique_name("zip-vs-image");
    client
        .create_function()
        .function_name(&name)
        .package_type(PackageType::Image)
        .role(role(bed))
        .code(
            FunctionCode::builder()
                .image_uri("127.0.0.1:1/deployer-e2e/initial:v1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let before = live(&client, &name).await;
    let repo = zip_repo(&name, "");

    let out = deploy(bed, &repo, "render");
    out.assert_code(2);
    let json = out.json();
    let message = report(&out, &json)["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("is an image function (PackageType Image)"),
        "{message}"
    );
    let after = live(&client, &name).await;
    assert_eq!(after.image_uri, before.image_uri);
    assert_eq!(after.last_modified, before.last_modified);
}

#[tokio::test]
async fn image_function_points_at_the_pushed_image() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let client = lambda(bed).await;
    let name = unique_name("img");
    let repository = format!("{name}/api");
    client
        .create_function()
        .function_name(&name)
        .package_type(PackageType::Image)
        .architectures(Architecture::X8664)
        .role(role(bed))
        .code(
            FunctionCode::builder()
                .image_uri(bed.registry().image(&repository, "initial"))
                .build(),
        )
        .send()
        .await
        .unwrap();

    let repo = FixtureRepo::new();
    repo.write("api/Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n")
        .write("api/app.txt", "api v1\n")
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{name}"
ssm_prefix = "/{name}"
registry = "{registry}"

[services.api]
kind = "lambda-image"
dockerfile = "api/Dockerfile"
context = "api"
platform = "linux/amd64"
inputs = ["api/**"]
repository = "{repository}"
function = "{name}"
timeout = "2m"
poll_interval = "1s"
"#,
                registry = bed.registry().host,
            ),
        );
    repo.commit("fixture");
    let run = || {
        let mut deployer = Deployer::new().current_dir(repo.path()).bed(bed).args([
            "deploy",
            "--json",
            "--service",
            "api",
            "--builder",
            &bed.builder().name,
        ]);
        for (key, value) in &bed.builder().env {
            deployer = deployer.env(key, value);
        }
        deployer.run()
    };

    let out = run();
    out.assert_success();
    let json = out.json();
    let first = report(&out, &json);
    assert_eq!(first["action"], "updated", "{first}");
    let uri = first["new_artifact"].as_str().unwrap().to_owned();
    let tag = first["tag"].as_str().unwrap();
    // The digest-pinned URI of the image just pushed under the content tag.
    let manifest = bed.registry().head_manifest(&repository, tag);
    let digest = manifest.header("Docker-Content-Digest").unwrap();
    assert_eq!(
        uri,
        format!("{}/{repository}@{digest}", bed.registry().host)
    );
    let after = live(&client, &name).await;
    assert_eq!(after.image_uri.as_deref(), Some(uri.as_str()));
    assert_eq!(
        Some(after.code_sha256.as_str()),
        digest.strip_prefix("sha256:")
    );

    let out = run();
    out.assert_success();
    let json = out.json();
    assert_eq!(report(&out, &json)["action"], "unchanged");
    assert_eq!(
        live(&client, &name).await.last_modified,
        after.last_modified
    );
}
