//! The image pipeline against the running test bed's registry and the real builders on this
//! machine: what a build can see, what a push puts in the registry, how a tag is inspected,
//! how base images resolve.
//!
//! Needs `cargo xtask testbed up` (its registry; `testbed.json` at `DEPLOYER_TESTBED` or
//! `target/testbed/testbed.json`). Without it these tests fail, or are skipped when
//! `DEPLOYER_TESTBED_OPTIONAL=1`, as the `tests` crate's are. Builds run with every builder
//! found here: the bed's own, and docker or buildah besides when usable.

// Test helpers panic on what a test cannot go on without.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deployer_core::Progress;
use deployer_core::manifest::Builder;
use deployer_image::{
    BaseImageResolver, BuildRequest, ContextFile, ContextFileKind, ImageBuilder, ImageError,
    ImageRequest, ManifestKind, Pipeline, Registry, check_accepted,
};
use oci_client::Reference;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

// ---------------------------------------------------------------------------------------------
// The bed

struct Bed {
    /// `127.0.0.1:<port>`.
    registry: String,
    /// `docker` or `buildah`.
    builder: String,
}

fn bed() -> Option<Bed> {
    let file = std::env::var_os("DEPLOYER_TESTBED").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/testbed/testbed.json"),
        PathBuf::from,
    );
    let problem = match std::fs::read_to_string(&file) {
        Err(error) => format!("no test bed file {} ({error})", file.display()),
        Ok(text) => {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap();
            let registry = json["registry"]["host"].as_str().map(str::to_owned);
            let builder = json["builder"]["name"].as_str().map(str::to_owned);
            match (registry, builder) {
                (Some(registry), Some(builder))
                    if TcpStream::connect_timeout(
                        &registry.parse().unwrap(),
                        Duration::from_secs(2),
                    )
                    .is_ok() =>
                {
                    return Some(Bed { registry, builder });
                }
                (Some(registry), Some(_)) => format!("nothing answers on {registry}"),
                _ => format!("{} names no registry or no builder", file.display()),
            }
        }
    };
    if std::env::var("DEPLOYER_TESTBED_OPTIONAL").is_ok_and(|v| v == "1" || v == "true") {
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        let _ = writeln!(std::io::stderr(), "skipped: {problem} [{test}]");
        return None;
    }
    panic!(
        "test bed: {problem}; start it with `cargo xtask testbed up` or set DEPLOYER_TESTBED_OPTIONAL=1"
    );
}

/// The bed's builder, then the other one when it is usable here.
async fn builders(bed: &Bed) -> Vec<ImageBuilder> {
    let own = match bed.builder.as_str() {
        "buildah" => Builder::Buildah,
        _ => Builder::Docker,
    };
    let mut found = vec![ImageBuilder::detect(Some(own)).await.unwrap()];
    for other in [Builder::Docker, Builder::Buildah] {
        if other != own
            && let Ok(builder) = ImageBuilder::detect(Some(other)).await
        {
            found.push(builder);
        }
    }
    found
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{:x}-{:x}", std::process::id(), nanos & 0xff_ffff)
}

/// Removes a local image the test built (best effort).
fn remove_local(builder: &ImageBuilder, image: &str) {
    let _ = std::process::Command::new(&builder.program)
        .args(["rmi", image])
        .output();
}

fn write(root: &Path, path: &str, content: &str, mode: u32) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Reading what was pushed

/// A distribution client for the bed's plain-HTTP registry.
fn oci_client() -> oci_client::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..ClientConfig::default()
    })
}

/// One entry of a layer's tar stream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    mode: u32,
    /// `0`/NUL regular, `2` symlink, `5` directory, …
    kind: u8,
    link: String,
}

/// Every entry of every layer of `repository:tag`, later layers last.
async fn pushed_entries(registry: &str, repository: &str, tag: &str) -> Vec<Entry> {
    let client = oci_client();
    let reference = Reference::with_tag(registry.to_owned(), repository.to_owned(), tag.to_owned());
    let (body, _) = client
        .pull_manifest_raw(
            &reference,
            &RegistryAuth::Anonymous,
            &[
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.oci.image.manifest.v1+json",
            ],
        )
        .await
        .unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut entries = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let digest = layer["digest"].as_str().unwrap();
        let mut blob = Vec::new();
        client
            .pull_blob(&reference, digest, &mut blob)
            .await
            .unwrap();
        let tar = if blob.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&blob[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else {
            blob
        };
        entries.extend(tar_entries(&tar));
    }
    entries
}

/// A small ustar/GNU reader: enough for the layers builders write (GNU long names, PAX
/// headers skipped).
fn tar_entries(tar: &[u8]) -> Vec<Entry> {
    fn field(header: &[u8], range: std::ops::Range<usize>) -> String {
        let raw = &header[range];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        String::from_utf8_lossy(&raw[..end]).into_owned()
    }
    fn octal(header: &[u8], range: std::ops::Range<usize>) -> u64 {
        let text = field(header, range);
        u64::from_str_radix(text.trim().trim_matches('\0'), 8).unwrap_or(0)
    }
    let mut entries = Vec::new();
    let mut offset = 0;
    let mut long_name: Option<String> = None;
    let mut long_link: Option<String> = None;
    while offset + 512 <= tar.len() {
        let header = &tar[offset..offset + 512];
        if header.iter().all(|&b| b == 0) {
            break;
        }
        let size = usize::try_from(octal(header, 124..136)).unwrap();
        let kind = header[156];
        let data = &tar[offset + 512..offset + 512 + size];
        offset += 512 + size.div_ceil(512) * 512;
        match kind {
            b'L' => {
                long_name = Some(field(data, 0..data.len()));
                continue;
            }
            b'K' => {
                long_link = Some(field(data, 0..data.len()));
                continue;
            }
            b'x' | b'g' => continue,
            _ => {}
        }
        let prefix = field(header, 345..500);
        let mut name = long_name.take().unwrap_or_else(|| {
            let name = field(header, 0..100);
            if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            }
        });
        name = name
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_owned();
        entries.push(Entry {
            name: name.trim_end_matches('/').to_owned(),
            mode: u32::try_from(octal(header, 100..108) & 0o7777).unwrap(),
            kind: if kind == 0 { b'0' } else { kind },
            link: long_link.take().unwrap_or_else(|| field(header, 157..257)),
        });
    }
    entries
}

// ---------------------------------------------------------------------------------------------
// Tests

/// A build sees exactly the listed files: an untracked file beside them in the context
/// directory is not in the pushed image, nor is the Dockerfile (passed by path, not listed);
/// the executable bit and the symlink (with its target string) are kept; a `0600` file listed
/// as regular is `0644` in the image (the mode follows what was hashed). The pushed manifest is
/// one Docker v2 schema 2 image for the requested platform, which every target accepts. Run
/// with every builder found here.
#[tokio::test]
async fn a_build_contains_exactly_the_listed_files() {
    let Some(bed) = bed() else { return };
    let context = tempfile::tempdir().unwrap();
    let root = context.path();
    write(root, "Dockerfile", "FROM scratch\nCOPY . /app/\n", 0o644);
    write(root, "hello.txt", "hello\n", 0o644);
    write(root, "bin/run.sh", "#!/bin/sh\necho run\n", 0o755);
    write(root, "private.txt", "listed, 0600 here\n", 0o600);
    write(root, "untracked.txt", "debris that must not ship\n", 0o644);
    write(root, "bin/untracked.sh", "#!/bin/sh\n", 0o755);
    std::os::unix::fs::symlink("hello.txt", root.join("link")).unwrap();
    let files = vec![
        ContextFile::new("hello.txt", ContextFileKind::Regular),
        ContextFile::new("bin/run.sh", ContextFileKind::Executable),
        ContextFile::new("private.txt", ContextFileKind::Regular),
        ContextFile::new("link", ContextFileKind::Symlink),
    ];
    for builder in builders(&bed).await {
        let repository = format!("deployer-image-tests/{}", unique(&builder.program));
        let tag = "ctx1".to_owned();
        let pipeline = Pipeline::with_builder(Registry::oci(&bed.registry), builder.clone());
        let report = pipeline
            .ensure(
                &ImageRequest {
                    service: "api".into(),
                    repository: repository.clone(),
                    tag: tag.clone(),
                    dockerfile: root.join("Dockerfile"),
                    context: root.to_path_buf(),
                    context_files: files.clone(),
                    platform: "linux/arm64".into(),
                    build_args: BTreeMap::new(),
                },
                &Progress::discard("api"),
            )
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", builder.describe()));
        assert!(report.built);
        remove_local(&builder, &format!("{}/{repository}:{tag}", bed.registry));

        let entries = pushed_entries(&bed.registry, &repository, &tag).await;
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        let find = |name: &str| {
            entries
                .iter()
                .rev()
                .find(|e| e.name == name)
                .unwrap_or_else(|| panic!("{}: no {name} in {names:?}", builder.describe()))
        };
        for absent in ["untracked.txt", "bin/untracked.sh", "Dockerfile"] {
            assert!(
                !names.iter().any(|n| n.ends_with(absent)),
                "{}: {absent} reached the image: {names:?}",
                builder.describe()
            );
        }
        let hello = find("app/hello.txt");
        assert_eq!((hello.kind, hello.mode), (b'0', 0o644), "{hello:?}");
        let run = find("app/bin/run.sh");
        assert_eq!((run.kind, run.mode), (b'0', 0o755), "{run:?}");
        let private = find("app/private.txt");
        assert_eq!(private.mode, 0o644, "{private:?}");
        let link = find("app/link");
        assert_eq!(
            (link.kind, link.link.as_str()),
            (b'2', "hello.txt"),
            "{link:?}"
        );

        // What was pushed: one image manifest, for the platform asked for.
        let info = pipeline.inspect(&repository, &tag).await.unwrap().unwrap();
        assert_eq!(
            info.media_type,
            "application/vnd.docker.distribution.manifest.v2+json",
            "{}: {info:?}",
            builder.describe()
        );
        assert_eq!(info.kind, ManifestKind::Image);
        assert!(info.is_single_image());
        assert_eq!(
            Some(info.digest.as_str()),
            report.artifact.digest.as_deref()
        );
        assert_eq!(
            info.platform.as_ref().map(ToString::to_string).as_deref(),
            Some("linux/arm64"),
            "{}",
            builder.describe()
        );
        check_accepted(&info, "linux/arm64", true).unwrap();
        let error = check_accepted(&info, "linux/amd64", true).unwrap_err();
        assert!(
            matches!(error, ImageError::WrongPlatform { .. }),
            "{error:?}"
        );
    }
}

/// Pushes a blob to the bed's registry; returns its digest.
async fn push_blob(client: &oci_client::Client, reference: &Reference, data: &[u8]) -> String {
    let digest = sha256(data);
    client
        .push_blob(reference, data.to_vec(), &digest)
        .await
        .unwrap();
    digest
}

fn sha256(data: &[u8]) -> String {
    let out = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

/// Pushes an image manifest (OCI) for `arch` with one layer; returns (digest, size).
async fn push_image(
    client: &oci_client::Client,
    registry: &str,
    repository: &str,
    tag_or_none: Option<&str>,
    arch: &str,
) -> (String, usize) {
    let by_repo = Reference::with_tag(registry.into(), repository.into(), "x".into());
    let config = format!(
        r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    );
    let config_digest = push_blob(client, &by_repo, config.as_bytes()).await;
    let layer = format!("layer for {arch}");
    let layer_digest = push_blob(client, &by_repo, layer.as_bytes()).await;
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
        config.len(),
        layer.len()
    );
    let digest = sha256(manifest.as_bytes());
    let target = match tag_or_none {
        Some(tag) => Reference::with_tag(registry.into(), repository.into(), tag.into()),
        None => Reference::with_digest(registry.into(), repository.into(), digest.clone()),
    };
    client
        .push_manifest_raw(
            &target,
            manifest.clone().into_bytes(),
            "application/vnd.oci.image.manifest.v1+json"
                .parse()
                .unwrap(),
        )
        .await
        .unwrap();
    (digest, manifest.len())
}

/// What `docker buildx build --push` makes by default (an image plus a provenance attestation
/// in an OCI index) is read as an index and refused for Lambda and AgentCore before any
/// deploy, naming the media type and how to push a single manifest; ECS takes it, for the
/// platform it lists. An image of another architecture under the tag is reported. A missing
/// tag is `None`.
#[tokio::test]
async fn an_index_and_a_foreign_architecture_are_reported() {
    let Some(bed) = bed() else { return };
    let client = oci_client();
    let repository = format!("deployer-image-tests/{}", unique("index"));
    // Authenticate the client for pushes (anonymous on the bed).
    client
        .store_auth_if_needed(&bed.registry, &RegistryAuth::Anonymous)
        .await;
    let (image, image_size) = push_image(&client, &bed.registry, &repository, None, "amd64").await;
    let (attestation, attestation_size) =
        push_image(&client, &bed.registry, &repository, None, "unknown").await;
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
          {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{image}","size":{image_size},"platform":{{"architecture":"amd64","os":"linux"}}}},
          {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{attestation}","size":{attestation_size},
            "annotations":{{"vnd.docker.reference.digest":"{image}","vnd.docker.reference.type":"attestation-manifest"}},
            "platform":{{"architecture":"unknown","os":"unknown"}}}}]}}"#
    );
    client
        .push_manifest_raw(
            &Reference::with_tag(bed.registry.clone(), repository.clone(), "multi".into()),
            index.into_bytes(),
            "application/vnd.oci.image.index.v1+json".parse().unwrap(),
        )
        .await
        .unwrap();

    let registry = Registry::oci(&bed.registry);
    let info = registry
        .manifest(&repository, "multi")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.media_type, "application/vnd.oci.image.index.v1+json");
    let ManifestKind::Index { manifests } = &info.kind else {
        panic!("{info:?}")
    };
    assert_eq!(manifests.len(), 2);
    assert!(!manifests[0].attestation && manifests[1].attestation);
    let error = check_accepted(&info, "linux/amd64", true).unwrap_err();
    assert!(error.is_config());
    let text = error.to_string();
    assert!(
        text.contains("is an image index of linux/amd64 with 1 attestation manifest (application/vnd.oci.image.index.v1+json)"),
        "{text}"
    );
    assert!(text.contains("--provenance=false --sbom=false"), "{text}");
    check_accepted(&info, "linux/amd64", false).unwrap();
    assert!(check_accepted(&info, "linux/arm64", false).is_err());

    // The same tag pushed from an amd64 machine, for an arm64 service.
    push_image(&client, &bed.registry, &repository, Some("single"), "amd64").await;
    let info = registry
        .manifest(&repository, "single")
        .await
        .unwrap()
        .unwrap();
    assert!(info.is_single_image());
    let error = check_accepted(&info, "linux/arm64", true).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "`{}/{repository}:single` in the registry is linux/amd64, the service wants linux/arm64: it was built elsewhere and deployer does not reuse it; delete the tag or fix `platform`",
            bed.registry
        )
    );
    // By digest too.
    let by_digest = registry
        .manifest(&repository, &info.digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_digest.digest, info.digest);

    assert_eq!(
        registry.manifest(&repository, "absent").await.unwrap(),
        None
    );
    assert_eq!(
        registry
            .manifest("deployer-image-tests/never-pushed", "x")
            .await
            .unwrap(),
        None
    );
}

/// A base image pushed to the bed's registry resolves to the digest the registry serves; the
/// same tag pushed again with other content resolves to another digest (in a new run), while
/// one run asks once per reference and keeps its answer. A digest reference needs no request;
/// a tag the registry lacks is `None`.
#[tokio::test]
async fn a_base_image_resolves_to_what_the_registry_serves_now() {
    let Some(bed) = bed() else { return };
    let builder = builders(&bed).await.remove(0);
    let repository = format!("deployer-image-tests/{}/app", unique("base"));
    let image = format!("{}/{repository}:1", bed.registry);
    let context = tempfile::tempdir().unwrap();
    write(
        context.path(),
        "Dockerfile",
        "FROM scratch\nCOPY content.txt /\n",
        0o644,
    );
    let push = |content: &'static str| {
        let builder = builder.clone();
        let image = image.clone();
        let root = context.path().to_path_buf();
        async move {
            write(&root, "content.txt", content, 0o644);
            let request = BuildRequest {
                service: "base".into(),
                image: image.clone(),
                dockerfile: root.join("Dockerfile"),
                context: root.clone(),
                context_files: vec![ContextFile::new("content.txt", ContextFileKind::Regular)],
                platform: "linux/amd64".into(),
                build_args: BTreeMap::new(),
            };
            let progress = Progress::discard("base");
            builder.build(&request, &progress).await.unwrap();
            builder.push(&image, &progress).await.unwrap();
            remove_local(&builder, &image);
        }
    };
    let registry = Registry::oci(&bed.registry);

    push("one\n").await;
    let served = registry.digest(&repository, "1").await.unwrap().unwrap();
    let run = BaseImageResolver::new();
    let first = run.resolve(&image).await.unwrap();
    assert_eq!(first.as_deref(), Some(served.as_str()));

    push("two\n").await;
    let moved = registry.digest(&repository, "1").await.unwrap().unwrap();
    assert_ne!(moved, served);
    let next_run = deployer_image::resolve_base_image(&image).await.unwrap();
    assert_eq!(next_run.as_deref(), Some(moved.as_str()));

    // One request per distinct reference per run: the first run keeps its answer.
    assert_eq!(run.resolve(&image).await.unwrap(), first);
    assert_eq!(run.requests(), 1);

    let pinned = format!("{}/{repository}@{served}", bed.registry);
    assert_eq!(run.resolve(&pinned).await.unwrap(), Some(served.clone()));
    assert_eq!(run.requests(), 1);

    let absent = format!("{}/{repository}:absent", bed.registry);
    assert_eq!(run.resolve(&absent).await.unwrap(), None);
    assert_eq!(run.requests(), 2);
}

// ---------------------------------------------------------------------------------------------
// Remote builders

/// A remote builder standing in for CodeBuild: it lists the directory it is given, and when
/// `push` builds and pushes it with the bed's builder.
struct Remote {
    builder: Option<ImageBuilder>,
    seen: std::sync::Mutex<Vec<String>>,
}

fn listing(root: &Path, dir: &Path, found: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_type().unwrap().is_dir() {
            listing(root, &path, found);
        } else {
            found.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
}

#[async_trait::async_trait]
impl deployer_image::RemoteBuilder for Remote {
    fn describe(&self) -> String {
        "a stand-in remote".into()
    }

    async fn build_and_push(
        &self,
        build: &deployer_image::RemoteBuild<'_>,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        let mut found = Vec::new();
        listing(build.context_dir, build.context_dir, &mut found);
        found.sort();
        *self.seen.lock().unwrap() = found.clone();
        let Some(builder) = &self.builder else {
            return Ok(()); // says it pushed, pushed nothing
        };
        let files = found
            .iter()
            .map(|f| ContextFile::new(f.as_str(), ContextFileKind::Regular))
            .collect();
        builder
            .build(
                &BuildRequest {
                    service: build.service.into(),
                    image: build.image.into(),
                    dockerfile: build.dockerfile.into(),
                    context: build.context_dir.into(),
                    context_files: files,
                    platform: build.platform.into(),
                    build_args: build.build_args.clone(),
                },
                progress,
            )
            .await?;
        builder.push(build.image, progress).await?;
        remove_local(builder, build.image);
        Ok(())
    }
}

#[tokio::test]
async fn a_remote_build_gets_the_staged_context_and_is_confirmed_by_the_registry() {
    let Some(bed) = bed() else { return };
    let context = tempfile::tempdir().unwrap();
    let root = context.path();
    write(root, "Dockerfile", "FROM scratch\nCOPY . /app/\n", 0o644);
    write(root, "app.py", "print(1)\n", 0o644);
    write(root, "lib/util.py", "X = 1\n", 0o644);
    write(root, "untracked.txt", "debris\n", 0o644);
    let request = |repository: &str| ImageRequest {
        service: "api".into(),
        repository: repository.into(),
        tag: "remote1".into(),
        dockerfile: root.join("Dockerfile"),
        context: root.to_path_buf(),
        context_files: vec![
            ContextFile::new("app.py", ContextFileKind::Regular),
            ContextFile::new("lib/util.py", ContextFileKind::Regular),
        ],
        platform: "linux/amd64".into(),
        build_args: BTreeMap::new(),
    };
    let pipeline = Pipeline::new(Registry::oci(&bed.registry), None);

    // A remote that pushes: built, and the digest is the registry's.
    let own = builders(&bed).await.remove(0);
    let remote = Remote {
        builder: Some(own),
        seen: Default::default(),
    };
    let repository = format!("deployer-image-tests/{}", unique("remote"));
    let report = pipeline
        .ensure_on(
            &request(&repository),
            Some(&remote),
            &Progress::discard("api"),
        )
        .await
        .unwrap();
    assert!(report.built);
    assert_eq!(report.builder.as_deref(), Some("a stand-in remote"));
    assert_eq!(
        *remote.seen.lock().unwrap(),
        ["app.py", "lib/util.py"],
        "exactly the listed files"
    );
    let info = pipeline
        .inspect(&repository, "remote1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Some(info.digest.as_str()),
        report.artifact.digest.as_deref()
    );
    // Found under its tag now: no remote build at all.
    let idle = Remote {
        builder: None,
        seen: Default::default(),
    };
    let again = pipeline
        .ensure_on(
            &request(&repository),
            Some(&idle),
            &Progress::discard("api"),
        )
        .await
        .unwrap();
    assert!(!again.built);
    assert!(idle.seen.lock().unwrap().is_empty());

    // A remote that says it pushed but did not: the confirmation catches it.
    let liar = Remote {
        builder: None,
        seen: Default::default(),
    };
    let repository = format!("deployer-image-tests/{}", unique("remote-none"));
    let error = pipeline
        .ensure_on(
            &request(&repository),
            Some(&liar),
            &Progress::discard("api"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ImageError::MissingAfterPush { .. }),
        "{error:?}"
    );
}
