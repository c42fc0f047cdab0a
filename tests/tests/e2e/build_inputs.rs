//! The tag covers exactly what the image is built from (issue 14), through the real binary
//! against the test bed:
//!
//! - a Dockerfile that copies a directory wider than `inputs` is a configuration error (exit 2)
//!   in `validate`, `hash`, `plan`, `build` and `deploy`, naming the file, the Dockerfile line
//!   and the glob that covers it, before any AWS call; the suggested glob fixes it;
//! - `inputs` left out are derived from the Dockerfile;
//! - an untracked file in the build context is not in the pushed image and does not move the
//!   tag, and the run says so once;
//! - the ignore file and the context directory are part of the tag;
//! - a base image re-pushed under its tag moves the tag only with `base_images = "resolve"`,
//!   and `plan` names the moved `FROM`;
//! - an image Lambda cannot run (an index, another architecture) stops the deploy with exit 2
//!   before `UpdateFunctionCode`.

use std::process::Command;

use aws_sdk_lambda::types::{Architecture, FunctionCode, PackageType};
use deployer_tests::{Deployer, FixtureRepo, RunOutput, Testbed, testbed, unique_name};
use serde_json::Value;

/// `COPY src ./src`: the whole source tree, wider than the app's own directory.
const APP_DOCKERFILE: &str = "FROM scratch\nCOPY pyproject.toml /app/\nCOPY src ./src\n";

/// The inputs written the way a CI path filter would be: the app's directory only.
const NARROW: &str = r#"["backend/src/apis/app_api/**", "backend/pyproject.toml"]"#;

/// A monorepo shaped like the users' (an API whose image copies the whole source tree) with
/// one ECS service `app-api`; `inputs` is the TOML array given, or left out.
fn monorepo(bed: &Testbed, inputs: Option<&str>) -> (FixtureRepo, String) {
    let name = unique_name("inputs");
    let repo = FixtureRepo::new();
    let inputs = inputs
        .map(|inputs| format!("inputs = {inputs}\n"))
        .unwrap_or_default();
    repo.write("backend/Dockerfile.app-api", APP_DOCKERFILE)
        .write("backend/pyproject.toml", "[project]\nname = \"app\"\n")
        .write("backend/src/apis/app_api/main.py", "print('app')\n")
        .write("backend/src/apis/shared/db.py", "DB = 1\n")
        .write("backend/src/agents/agent.py", "AGENT = 1\n")
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{name}"
ssm_prefix = "/{name}"
registry = "{registry}"

[services.app-api]
kind = "ecs"
dockerfile = "backend/Dockerfile.app-api"
context = "backend"
platform = "linux/amd64"
{inputs}repository = "{name}/app-api"
cluster = "{name}"
service = "app-api"
"#,
                registry = bed.registry().host,
            ),
        );
    repo.commit("monorepo");
    (repo, name)
}

/// `deployer <args>` in `repo` against the bed, with the bed's builder, signing with `key`.
fn run(bed: &Testbed, repo: &FixtureRepo, key: &str, args: &[&str]) -> RunOutput {
    let mut deployer = Deployer::new()
        .current_dir(repo.path())
        .bed(bed)
        .env("AWS_ACCESS_KEY_ID", key)
        .args(args);
    for (name, value) in &bed.builder().env {
        deployer = deployer.env(name, value);
    }
    deployer.run()
}

/// The tag `deployer hash --json` gives `service`, and its report.
fn hash(bed: &Testbed, repo: &FixtureRepo, service: &str) -> (String, Value) {
    let out = run(bed, repo, "test", &["hash", "--json", "--service", service]);
    out.assert_success();
    let report = out.json()["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == service)
        .unwrap_or_else(|| panic!("no {service} in {}", out.stdout))
        .clone();
    (report["tag"].as_str().unwrap().to_owned(), report)
}

#[test]
fn inputs_narrower_than_what_the_dockerfile_copies_stop_every_command_until_covered() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let (repo, _) = monorepo(bed, Some(NARROW));
    let key = unique_name("akid-inputs");
    let builder = bed.builder().name.clone();
    let commands: [&[&str]; 5] = [
        &["validate"],
        &["hash"],
        &["plan"],
        &["build", "--builder", &builder],
        &["deploy", "--service", "app-api", "--builder", &builder],
    ];
    for args in commands {
        let out = run(bed, &repo, &key, args);
        out.assert_code(2);
        // One line naming the file the image would take, the line that copies it and the glob.
        let error = out
            .stderr
            .lines()
            .find(|line| line.starts_with("error:"))
            .unwrap_or_else(|| panic!("{args:?}: no error line in {}", out.stderr));
        for needle in [
            "backend/src/apis/shared/db.py",
            "backend/src/agents/agent.py",
            "line 3 `COPY src ./src`",
            "cover with `backend/src/**`",
            "backend/Dockerfile.app-api",
        ] {
            assert!(error.contains(needle), "{args:?}: {needle} not in {error}");
        }
        // JSON mode: the same error, as JSON on stdout.
        let mut json_args = args.to_vec();
        json_args.push("--json");
        let out = run(bed, &repo, &key, &json_args);
        out.assert_code(2);
        let message = out.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("backend/src/apis/shared/db.py"),
            "{message}"
        );
    }
    // Found before anything remote: no AWS call, no image pushed.
    assert_eq!(bed.moto().recorded_calls(&key), Vec::<Value>::new());

    // The glob it suggests fixes it.
    repo.write(
        "deployer.toml",
        repo.read("deployer.toml")
            .replace(NARROW, r#"["backend/src/**", "backend/pyproject.toml"]"#),
    );
    repo.commit("inputs cover what the image copies");
    run(bed, &repo, &key, &["validate"]).assert_success();
    let (tag, report) = hash(bed, &repo, "app-api");
    assert_eq!(report["files"], 4, "{report}");
    // A change to the shared code now moves the tag.
    repo.write("backend/src/apis/shared/db.py", "DB = 2\n");
    repo.commit("shared code");
    assert_ne!(hash(bed, &repo, "app-api").0, tag);
}

#[test]
fn inputs_left_out_are_derived_from_the_dockerfile() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let (repo, _) = monorepo(bed, None);
    run(bed, &repo, "test", &["validate"]).assert_success();
    let (derived_tag, report) = hash(bed, &repo, "app-api");
    assert_eq!(
        report["inputs"],
        serde_json::json!(["backend/pyproject.toml", "backend/src/**"]),
        "{report}"
    );
    assert_eq!(report["files"], 4, "{report}");
    // Written out, the derived inputs give the same tag.
    repo.write(
        "deployer.toml",
        repo.read("deployer.toml").replace(
            "repository = ",
            "inputs = [\"backend/pyproject.toml\", \"backend/src/**\"]\nrepository = ",
        ),
    );
    repo.commit("inputs written out");
    assert_eq!(hash(bed, &repo, "app-api").0, derived_tag);
    // The generated workflow's path filter follows the derived inputs.
    repo.write(
        "deployer.toml",
        format!(
            "{}\n[ci]\ninstall = {{ git = \"https://github.com/acme/deployer\", rev = \"{}\" }}\n",
            repo.read("deployer.toml"),
            "0".repeat(40)
        ),
    );
    repo.commit("ci install");
    let out = run(bed, &repo, "test", &["ci", "github"]);
    out.assert_success();
    assert!(out.stdout.contains("backend/src/**"), "{}", out.stdout);
}

/// The file names in the layers of `repository:tag` as pushed (each layer listed by `tar`).
fn pushed_files(bed: &Testbed, repository: &str, tag: &str) -> Vec<String> {
    let manifest = bed
        .registry()
        .get(&format!("/v2/{repository}/manifests/{tag}"));
    assert_eq!(manifest.status, 200, "{}", manifest.text());
    let manifest = manifest.json().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let blob = bed
            .registry()
            .get(&format!("/v2/{repository}/blobs/{digest}"));
        assert_eq!(blob.status, 200, "layer {digest}");
        let path = dir.path().join("layer");
        std::fs::write(&path, &blob.body).unwrap();
        // GNU tar detects gzip by itself.
        let listing = Command::new("tar").arg("-tf").arg(&path).output().unwrap();
        assert!(listing.status.success(), "tar -tf {digest}");
        files.extend(
            String::from_utf8_lossy(&listing.stdout)
                .lines()
                .map(|line| line.trim_start_matches("./").to_owned()),
        );
    }
    files
}

#[test]
fn an_untracked_file_in_the_context_is_not_built_and_does_not_move_the_tag() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let (repo, name) = monorepo(bed, None);
    let (clean_tag, _) = hash(bed, &repo, "app-api");
    // A developer's debris inside the context, untracked and not ignored.
    repo.write("backend/src/apis/shared/debug_dump.txt", "local secrets\n");
    repo.write("backend/notes.txt", "todo\n");
    let (tag, report) = hash(bed, &repo, "app-api");
    assert_eq!(tag, clean_tag, "untracked files do not move the tag");
    assert_eq!(
        report["untracked_in_context"],
        serde_json::json!([
            "backend/notes.txt",
            "backend/src/apis/shared/debug_dump.txt"
        ]),
        "{report}"
    );

    let builder = bed.builder().name.clone();
    let out = run(
        bed,
        &repo,
        "test",
        &["build", "--json", "--builder", &builder],
    );
    out.assert_success();
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|line| line.contains("untracked file(s) in the build contexts"))
        .collect();
    assert_eq!(warnings.len(), 1, "said once:\n{}", out.stderr);
    assert!(warnings[0].contains("backend/notes.txt"), "{}", warnings[0]);

    let files = pushed_files(bed, &format!("{name}/app-api"), &tag);
    for wanted in [
        "app/pyproject.toml",
        "src/apis/app_api/main.py",
        "src/apis/shared/db.py",
        "src/agents/agent.py",
    ] {
        assert!(files.iter().any(|f| f == wanted), "{wanted} in {files:?}");
    }
    for debris in ["debug_dump.txt", "notes.txt"] {
        assert!(
            !files.iter().any(|f| f.ends_with(debris)),
            "{debris} was built in: {files:?}"
        );
    }
}

#[test]
fn the_ignore_file_and_the_context_are_part_of_the_tag() {
    let Some(bed) = testbed!(moto, registry) else {
        return;
    };
    let name = unique_name("ctx");
    let repo = FixtureRepo::new();
    // Two contexts with the same content; the inputs name both files (and not the ignore
    // files, so that those count only as the ignore file in effect): only `context` differs.
    repo.write("Dockerfile", "FROM scratch\nCOPY app.txt /app.txt\n")
        .write("a/app.txt", "same\n")
        .write("b/app.txt", "same\n")
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{name}"
registry = "{registry}"

[services.api]
kind = "lambda-image"
dockerfile = "Dockerfile"
context = "a"
platform = "linux/amd64"
inputs = ["a/app.txt", "b/app.txt"]
repository = "{name}/api"
function = "{name}"
"#,
                registry = bed.registry().host,
            ),
        );
    repo.commit("fixture");
    let (first, _) = hash(bed, &repo, "api");

    repo.write(
        "deployer.toml",
        repo.read("deployer.toml")
            .replace("context = \"a\"", "context = \"b\""),
    );
    repo.commit("context b");
    let (other_context, _) = hash(bed, &repo, "api");
    assert_ne!(other_context, first, "the context directory is in the tag");

    repo.write("b/.dockerignore", "*.md\n");
    repo.commit("an ignore file");
    let (ignored, _) = hash(bed, &repo, "api");
    assert_ne!(ignored, other_context, "an ignore file moves the tag");

    repo.write("b/.dockerignore", "*.md\nnotes/\n");
    repo.commit("another ignore rule");
    let (changed, _) = hash(bed, &repo, "api");
    assert_ne!(changed, ignored, "its content is in the tag");

    // BuildKit's rule: `<dockerfile>.dockerignore` wins over the context's.
    repo.write("Dockerfile.dockerignore", "*.md\n");
    repo.commit("a Dockerfile-specific ignore file");
    let (specific, _) = hash(bed, &repo, "api");
    assert_eq!(
        specific, ignored,
        "the same rules, from the file that is in effect"
    );
}

/// Builds a `FROM scratch` image holding `base.txt` = `content` and pushes it as `image`.
fn push_base(bed: &Testbed, image: &str, content: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY base.txt /base.txt\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("base.txt"), content).unwrap();
    bed.builder().build(dir.path(), image, "linux/amd64");
    bed.builder().push(image);
    bed.builder().remove(image);
}

async fn lambda_client(bed: &Testbed) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(&bed.sdk_config().await)
}

/// An image function in moto named `name`, running `image`, for `architecture`.
async fn image_function(bed: &Testbed, name: &str, image: &str, architecture: Architecture) {
    lambda_client(bed)
        .await
        .create_function()
        .function_name(name)
        .package_type(PackageType::Image)
        .architectures(architecture)
        .role(crate::lambda::role(bed))
        .code(FunctionCode::builder().image_uri(image).build())
        .send()
        .await
        .unwrap();
}

/// A repository with one image-Lambda service `api` (`Dockerfile` given) for `function`.
fn lambda_repo(bed: &Testbed, name: &str, dockerfile: &str, project_extra: &str) -> FixtureRepo {
    let repo = FixtureRepo::new();
    repo.write("api/Dockerfile", dockerfile)
        .write("api/app.txt", "api v1\n")
        .write(
            "deployer.toml",
            format!(
                r#"[project]
name = "{name}"
ssm_prefix = "/{name}"
registry = "{registry}"
{project_extra}
[services.api]
kind = "lambda-image"
dockerfile = "api/Dockerfile"
context = "api"
platform = "linux/amd64"
repository = "{name}/api"
function = "{name}"
timeout = "2m"
poll_interval = "1s"
"#,
                registry = bed.registry().host,
            ),
        );
    repo.commit("fixture");
    repo
}

fn report<'a>(json: &'a Value, service: &str) -> &'a Value {
    json["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == service)
        .unwrap_or_else(|| panic!("no {service} in {json}"))
}

#[tokio::test]
async fn a_re_pushed_base_image_moves_the_tag_only_when_resolved() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let name = unique_name("base");
    let base = bed.registry().image(&format!("{name}/base"), "1");
    push_base(bed, &base, "base v1\n");
    let dockerfile = format!("FROM {base}\nCOPY app.txt /app.txt\n");
    let as_written = lambda_repo(bed, &name, &dockerfile, "");
    let resolved = lambda_repo(bed, &name, &dockerfile, "base_images = \"resolve\"\n");
    let (written_1, _) = hash(bed, &as_written, "api");
    let (resolved_1, _) = hash(bed, &resolved, "api");
    assert_ne!(
        written_1, resolved_1,
        "a resolved digest is part of the tag"
    );

    image_function(
        bed,
        &name,
        &bed.registry().image(&format!("{name}/api"), "initial"),
        Architecture::X8664,
    )
    .await;
    let builder = bed.builder().name.clone();
    let deploy = |repo: &FixtureRepo| {
        run(
            bed,
            repo,
            "test",
            &[
                "deploy",
                "--json",
                "--service",
                "api",
                "--builder",
                &builder,
            ],
        )
    };
    let out = deploy(&resolved);
    out.assert_success();
    assert_eq!(report(&out.json(), "api")["action"], "updated");

    // The base is patched and pushed again under the same tag.
    push_base(bed, &base, "base v2 (patched)\n");
    assert_eq!(
        hash(bed, &as_written, "api").0,
        written_1,
        "as written, a re-pushed base does not move the tag"
    );
    let (resolved_2, _) = hash(bed, &resolved, "api");
    assert_ne!(resolved_2, resolved_1, "resolved, it does");

    // `plan` says which FROM moved, and that the image is rebuilt.
    let out = run(bed, &resolved, "test", &["plan", "--json"]);
    out.assert_success();
    let json = out.json();
    let api = report(&json, "api");
    assert_eq!(api["action"], "build+deploy", "{api}");
    let moved = api["moved_bases"].as_array().unwrap();
    assert_eq!(moved.len(), 1, "{api}");
    assert!(
        moved[0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{base}: sha256:"))
    );
    let text = run(bed, &resolved, "test", &["plan"]);
    text.assert_success();
    assert!(
        text.stdout
            .contains(&format!("api: base image moved: {base}: sha256:")),
        "{}",
        text.stdout
    );
    // And the deploy rebuilds on the patched base.
    let out = deploy(&resolved);
    out.assert_success();
    let api = report(&out.json(), "api").clone();
    assert_eq!(api["action"], "updated", "{api}");
    assert_eq!(api["tag"], resolved_2.as_str());
}

/// Pushes an OCI index under `repository:tag` listing an amd64 image and an attestation
/// manifest, what `docker buildx build --push` makes by default.
fn push_index(bed: &Testbed, repository: &str, tag: &str) {
    let registry = bed.registry();
    let (image, image_size) = registry.push_image(repository, "image", "amd64", b"image layer");
    let (attestation, attestation_size) =
        registry.push_image(repository, "attestation", "unknown", b"in-toto");
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image}","size":{image_size},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{attestation}","size":{attestation_size},"platform":{{"architecture":"unknown","os":"unknown"}},"annotations":{{"vnd.docker.reference.digest":"{image}","vnd.docker.reference.type":"attestation-manifest"}}}}]}}"#
    );
    registry.push_manifest(
        repository,
        tag,
        "application/vnd.oci.image.index.v1+json",
        index.as_bytes(),
    );
}

fn updates_of_the_code(bed: &Testbed, key: &str) -> Vec<String> {
    bed.moto()
        .recorded_calls(key)
        .iter()
        .filter_map(|call| call["action"].as_str())
        .filter(|action| *action == "UpdateFunctionCode")
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn an_image_lambda_cannot_run_stops_the_deploy_before_update_function_code() {
    let Some(bed) = testbed!(moto, registry, builder) else {
        return;
    };
    let name = unique_name("index");
    let repository = format!("{name}/api");
    let repo = lambda_repo(bed, &name, "FROM scratch\nCOPY app.txt /app.txt\n", "");
    image_function(
        bed,
        &name,
        &bed.registry().image(&repository, "initial"),
        Architecture::X8664,
    )
    .await;
    let (tag, _) = hash(bed, &repo, "api");
    let builder = bed.builder().name.clone();
    let deploy = |key: &str| {
        run(
            bed,
            &repo,
            key,
            &[
                "deploy",
                "--json",
                "--service",
                "api",
                "--builder",
                &builder,
            ],
        )
    };

    // Under the content tag, something built elsewhere as an index with an attestation.
    push_index(bed, &repository, &tag);
    let key = unique_name("akid-index");
    let out = deploy(&key);
    out.assert_code(2);
    let message = report(&out.json(), "api")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("application/vnd.oci.image.index.v1+json"),
        "names the media type: {message}"
    );
    assert!(message.contains(&tag), "names the image: {message}");
    assert_eq!(updates_of_the_code(bed, &key), Vec::<String>::new());

    // An image of another architecture under the tag is reported, not reused.
    bed.registry()
        .push_image(&repository, &tag, "arm64", b"an arm64 layer");
    let key = unique_name("akid-arch");
    let out = deploy(&key);
    out.assert_code(2);
    let message = report(&out.json(), "api")["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("arm64") && message.contains("linux/amd64"),
        "names both platforms: {message}"
    );
    assert_eq!(updates_of_the_code(bed, &key), Vec::<String>::new());
    let live = lambda_client(bed)
        .await
        .get_function()
        .function_name(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        live.code().and_then(|c| c.image_uri()),
        Some(bed.registry().image(&repository, "initial").as_str()),
        "the function is untouched"
    );
}
