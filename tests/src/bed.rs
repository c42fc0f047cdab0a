//! The test bed as the tests see it: `testbed.json`, written by `cargo xtask testbed up`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use serde::Deserialize;

use crate::http;

/// The layout version of testbed.json this crate reads.
const SCHEMA: u32 = 1;
/// The region every test uses.
pub const REGION: &str = "us-east-1";

/// A part of the test bed a test can require.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The moto server (every AWS API on one port).
    Moto,
    /// The distribution registry.
    Registry,
    /// An image builder that can build `FROM scratch` images (Docker or buildah).
    Builder,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Moto => "moto",
            Part::Registry => "registry",
            Part::Builder => "builder",
        }
    }
}

/// The running test bed (see the crate docs); get it with [`testbed!`](crate::testbed).
#[derive(Debug, Deserialize)]
pub struct Testbed {
    schema: u32,
    #[serde(default)]
    moto: Option<Moto>,
    #[serde(default)]
    registry: Option<Registry>,
    #[serde(default)]
    builder: Option<Builder>,
    #[serde(default)]
    absent: BTreeMap<String, String>,
    #[serde(skip)]
    file: PathBuf,
}

/// The moto server.
#[derive(Debug, Deserialize)]
pub struct Moto {
    /// `http://127.0.0.1:<port>`, the endpoint URL for every AWS service.
    pub url: String,
    /// Its port.
    pub port: u16,
    /// The moto version.
    pub version: String,
    /// Its log file.
    pub log: PathBuf,
    /// The venv's Python, with boto3 (for scripts that set up fixtures in moto).
    pub python: PathBuf,
}

/// The image registry (plain HTTP, no auth, deletes enabled).
#[derive(Debug, Deserialize)]
pub struct Registry {
    /// `127.0.0.1:<port>`, the registry part of an image reference.
    pub host: String,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// Its port.
    pub port: u16,
    /// Its log file.
    pub log: PathBuf,
}

/// The image builder the bed found usable, as an argument vector.
#[derive(Debug, Clone, Deserialize)]
pub struct Builder {
    /// `docker` or `buildah`.
    pub name: String,
    /// The program to run.
    pub program: String,
    /// Arguments before the subcommand (buildah: storage driver and root).
    pub global_args: Vec<String>,
    /// Arguments right after `build`.
    pub build_args: Vec<String>,
    /// Arguments right after `push`.
    pub push_args: Vec<String>,
    /// Environment for every invocation (docker without buildx: `DOCKER_BUILDKIT=0`).
    pub env: BTreeMap<String, String>,
    /// How the bed detected and configured it.
    pub note: String,
}

/// The path of the bed file: `$DEPLOYER_TESTBED`, else `<target dir>/testbed/testbed.json`
/// (the target dir found from the test executable, `<target>/<profile>/deps/<test>`).
pub fn file_path() -> PathBuf {
    if let Some(path) = std::env::var_os("DEPLOYER_TESTBED") {
        return PathBuf::from(path);
    }
    let target = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        (deps.file_name()? == "deps").then(|| deps.parent()?.parent().map(Path::to_owned))?
    });
    let target = target.unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
    });
    target.join("testbed").join("testbed.json")
}

fn optional() -> bool {
    std::env::var("DEPLOYER_TESTBED_OPTIONAL").is_ok_and(|v| v == "1" || v == "true")
}

const HOW_TO_START: &str = "start the test bed with `cargo xtask testbed up` (or run every test \
     with `cargo xtask test`); set DEPLOYER_TESTBED_OPTIONAL=1 to skip tests whose parts are absent";

/// Loads the bed file once per test process.
fn load() -> &'static Result<Testbed, String> {
    static BED: OnceLock<Result<Testbed, String>> = OnceLock::new();
    BED.get_or_init(|| {
        let file = file_path();
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("no test bed file {} ({e})", file.display()))?;
        let mut bed: Testbed = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a test bed file: {e}", file.display()))?;
        if bed.schema != SCHEMA {
            return Err(format!(
                "{} has schema {}, these tests read schema {SCHEMA}: restart the bed with this checkout's xtask",
                file.display(),
                bed.schema
            ));
        }
        bed.file = file;
        Ok(bed)
    })
}

/// Whether `port` on 127.0.0.1 accepts connections, checked once per part and process.
fn answers(part: Part, port: u16) -> bool {
    static CHECKED: OnceLock<std::sync::Mutex<BTreeMap<&'static str, bool>>> = OnceLock::new();
    let checked = CHECKED.get_or_init(Default::default);
    let mut checked = checked
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    *checked.entry(part.name()).or_insert_with(|| {
        TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(2),
        )
        .is_ok()
    })
}

impl Testbed {
    /// The bed with every part of `parts` present and answering; see [`testbed!`](crate::testbed).
    ///
    /// # Panics
    /// When a part is absent and `DEPLOYER_TESTBED_OPTIONAL=1` is not set.
    pub fn get(parts: &[Part]) -> Option<&'static Testbed> {
        let problem = match load() {
            Err(error) => Some(format!("{} absent: {error}", names(parts))),
            Ok(bed) => parts.iter().find_map(|&part| bed.problem(part)),
        };
        match problem {
            None => load().as_ref().ok(),
            Some(problem) if optional() => {
                // Straight to stderr: the test harness captures print macros, not this.
                let test = std::thread::current().name().unwrap_or("a test").to_owned();
                let _ = writeln!(std::io::stderr(), "skipped: {problem} [{test}]");
                None
            }
            Some(problem) => panic!("test bed: {problem}\n{HOW_TO_START}"),
        }
    }

    fn problem(&self, part: Part) -> Option<String> {
        let port = match part {
            Part::Moto => self.moto.as_ref().map(|m| m.port),
            Part::Registry => self.registry.as_ref().map(|r| r.port),
            Part::Builder => return self.builder.is_none().then(|| self.absent_reason(part)),
        };
        match port {
            None => Some(self.absent_reason(part)),
            Some(port) if !answers(part, port) => Some(format!(
                "{} absent: nothing answers on 127.0.0.1:{port} (the bed in {} is down or stale; `cargo xtask testbed status`)",
                part.name(),
                self.file.display()
            )),
            Some(_) => None,
        }
    }

    fn absent_reason(&self, part: Part) -> String {
        let reason = self
            .absent
            .get(part.name())
            .map_or("not started", String::as_str);
        format!(
            "{} absent: {reason} (bed file {})",
            part.name(),
            self.file.display()
        )
    }

    /// The bed file this was read from.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The moto server. Panics if the test did not ask for `moto`.
    pub fn moto(&self) -> &Moto {
        self.moto
            .as_ref()
            .unwrap_or_else(|| panic!("{}", self.absent_reason(Part::Moto)))
    }

    /// The registry. Panics if the test did not ask for `registry`.
    pub fn registry(&self) -> &Registry {
        self.registry
            .as_ref()
            .unwrap_or_else(|| panic!("{}", self.absent_reason(Part::Registry)))
    }

    /// The image builder. Panics if the test did not ask for `builder`.
    pub fn builder(&self) -> &Builder {
        self.builder
            .as_ref()
            .unwrap_or_else(|| panic!("{}", self.absent_reason(Part::Builder)))
    }

    /// An `SdkConfig` for moto, built the way the `deployer` binary builds its own
    /// (`deployer_cli::aws::sdk_config`), then pointed at moto with dummy credentials and
    /// region us-east-1.
    pub async fn sdk_config(&self) -> SdkConfig {
        let credentials = Credentials::new("test", "test", None, None, "deployer-testbed");
        deployer_cli::aws::sdk_config(Some(REGION))
            .await
            .into_builder()
            .endpoint_url(&self.moto().url)
            .region(Region::new(REGION))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .build()
    }

    /// The environment that points a child `deployer` (or any AWS tool) at moto: endpoint,
    /// dummy credentials, region, and no profile files or instance metadata. Apply it with
    /// [`Testbed::apply_env`], which also drops every inherited `AWS_*` variable.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.moto().url.clone()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
            ("AWS_CONFIG_FILE", empty_aws_file()),
            ("AWS_SHARED_CREDENTIALS_FILE", empty_aws_file()),
        ]
    }

    /// Removes every inherited `AWS_*` variable from `command` and sets [`Testbed::env`].
    pub fn apply_env<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        clear_aws_env(command);
        command.envs(self.env())
    }
}

/// An empty file for `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE`: no profile of this
/// machine can reach a test, and (unlike a path that does not exist) the SDK has nothing to warn
/// about.
fn empty_aws_file() -> String {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("deployer-testbed-empty-aws-{}", std::process::id()));
        std::fs::write(&path, "").expect("cannot write an empty AWS config file");
        path
    })
    .display()
    .to_string()
}

/// Removes every inherited `AWS_*` variable from `command`.
pub(crate) fn clear_aws_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AWS_") {
            command.env_remove(key);
        }
    }
}

fn names(parts: &[Part]) -> String {
    let names: Vec<&str> = parts.iter().map(|p| p.name()).collect();
    if names.is_empty() {
        "the test bed".to_owned()
    } else {
        names.join(", ")
    }
}

/// Accept header for a manifest lookup: OCI and Docker manifests and indexes.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

impl Moto {
    /// The AWS calls the test bed's recorder (`xtask/testbed/patches/zz_recorder.py`) filed
    /// for runs signing with `access_key`, oldest first: `action`, `service`, `params`, `time`.
    pub fn recorded_calls(&self, access_key: &str) -> Vec<serde_json::Value> {
        let url = format!("{}/_deployer/calls?access_key={access_key}", self.url);
        let response =
            http::request("GET", &url, &[], &[]).unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert_eq!(
            response.status,
            200,
            "{url}: {} (is the recorder patch loaded? restart the test bed)",
            response.text()
        );
        response
            .json()
            .unwrap_or_else(|e| panic!("{url}: not JSON: {e}"))["calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Registry {
    /// `127.0.0.1:<port>/<repository>:<tag>`.
    pub fn image(&self, repository: &str, tag: &str) -> String {
        format!("{}/{repository}:{tag}", self.host)
    }

    /// `HEAD /v2/<repository>/manifests/<reference>` with the manifest Accept headers.
    pub fn head_manifest(&self, repository: &str, reference: &str) -> http::Response {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.url);
        http::request("HEAD", &url, &[("Accept", MANIFEST_ACCEPT)], &[])
            .unwrap_or_else(|e| panic!("HEAD {url}: {e}"))
    }

    /// Uploads `data` as a blob of `repository` (monolithic: `POST` then `PUT ?digest=`);
    /// returns its digest. Panics on failure.
    pub fn push_blob(&self, repository: &str, data: &[u8]) -> String {
        let digest = sha256_digest(data);
        let url = format!("{}/v2/{repository}/blobs/uploads/", self.url);
        let started =
            http::request("POST", &url, &[], &[]).unwrap_or_else(|e| panic!("POST {url}: {e}"));
        assert_eq!(started.status, 202, "POST {url}: {}", started.text());
        let location = started
            .header("location")
            .unwrap_or_else(|| panic!("POST {url}: no Location"));
        let location = if location.starts_with("http://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.url)
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put = format!("{location}{separator}digest={digest}");
        let done = http::request(
            "PUT",
            &put,
            &[("Content-Type", "application/octet-stream")],
            data,
        )
        .unwrap_or_else(|e| panic!("PUT {put}: {e}"));
        assert_eq!(done.status, 201, "PUT {put}: {}", done.text());
        digest
    }

    /// Puts `manifest` (of `media_type`) at `repository:reference`; returns its digest.
    pub fn push_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> String {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.url);
        let response = http::request("PUT", &url, &[("Content-Type", media_type)], manifest)
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        assert_eq!(response.status, 201, "PUT {url}: {}", response.text());
        sha256_digest(manifest)
    }

    /// Pushes a one-layer OCI image for `os/arch` (the layer is `layer`, as given) under
    /// `repository:reference`; returns (digest, size) of its manifest.
    pub fn push_image(
        &self,
        repository: &str,
        reference: &str,
        arch: &str,
        layer: &[u8],
    ) -> (String, usize) {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
            sha256_digest(layer)
        );
        let config_digest = self.push_blob(repository, config.as_bytes());
        let layer_digest = self.push_blob(repository, layer);
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config_digest}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer_digest}","size":{}}}]}}"#,
            config.len(),
            layer.len()
        );
        let digest = self.push_manifest(
            repository,
            reference,
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes(),
        );
        (digest, manifest.len())
    }

    /// `GET` of a registry path (`/v2/...`) with the manifest Accept headers.
    pub fn get(&self, path: &str) -> http::Response {
        let url = format!("{}{path}", self.url);
        http::request("GET", &url, &[("Accept", MANIFEST_ACCEPT)], &[])
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }
}

/// What a builder command printed.
#[derive(Debug)]
pub struct BuilderOutput {
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
}

impl Builder {
    /// `program global_args…` with the builder's environment, ready for a subcommand.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.global_args)
            .envs(&self.env)
            .stdin(Stdio::null());
        command
    }

    /// Builds `context/Dockerfile` for `platform` and tags it `image`. Panics on failure.
    pub fn build(&self, context: &Path, image: &str, platform: &str) -> BuilderOutput {
        let mut command = self.command();
        command
            .arg("build")
            .args(&self.build_args)
            .args(["--platform", platform, "-t", image, "-f"])
            .arg(context.join("Dockerfile"))
            .arg(context);
        run(command, "build")
    }

    /// Pushes `image` to its registry. Panics on failure.
    pub fn push(&self, image: &str) -> BuilderOutput {
        let mut command = self.command();
        command.arg("push").args(&self.push_args).arg(image);
        run(command, "push")
    }

    /// Removes the local image `image` (best effort).
    pub fn remove(&self, image: &str) {
        let mut command = self.command();
        command
            .args(["rmi", image])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = command.status();
    }
}

fn run(mut command: Command, what: &str) -> BuilderOutput {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let output = BuilderOutput {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        out.status.success(),
        "{what} failed ({}): {command:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        output.stdout,
        output.stderr
    );
    output
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(data);
    let mut text = String::from("sha256:");
    for byte in hash.iter() {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}
