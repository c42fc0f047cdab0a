//! A service's content tag: the hasher for image services, the deterministic zip for zip
//! services, the canonical set document for config services.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context as _;
use deployer_core::manifest::BaseImages;
#[cfg(feature = "lambda-zip")]
use deployer_core::manifest::Target;
use deployer_core::{Kind, Manifest, Service};
use serde::Serialize;

/// The tag of one service and what went into it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ServiceTag {
    pub(crate) service: String,
    pub(crate) kind: Kind,
    pub(crate) tag: String,
    /// Files hashed (or zipped).
    pub(crate) files: usize,
    /// Bytes hashed (or the zip's size).
    pub(crate) bytes: u64,
    /// Untracked, non-ignored files under the inputs, left out of the hash.
    pub(crate) untracked: Vec<String>,
    /// The inputs the tag covers: as the manifest lists them, or derived from the Dockerfile.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) inputs: Vec<String>,
    /// Untracked files in the build context: on disk, not in the image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) untracked_in_context: Vec<String>,
    /// What the build reads that the tag does not cover (`ADD <url>`, bind mounts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) unhashed: Vec<String>,
    /// The build context, exactly as hashed: what the builder is given.
    #[serde(skip)]
    #[cfg_attr(not(feature = "image"), allow(dead_code))]
    pub(crate) context: Option<hasher::Context>,
    /// The artifact made while tagging: a zip service's zip, a config service's set (their
    /// SHA-256 is the tag).
    #[serde(skip)]
    pub(crate) local: Option<deployer_core::Artifact>,
    /// The digests the `FROM` images resolved to (`base_images = "resolve"`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) bases: BTreeMap<String, String>,
}

impl ServiceTag {
    /// A service without a computed tag, for commands that act on what is recorded (`wait`,
    /// `rollback`): the tag is filled in from the record.
    pub(crate) fn untagged(service: &Service) -> Self {
        ServiceTag {
            service: service.name.clone(),
            kind: service.kind,
            tag: String::new(),
            files: 0,
            bytes: 0,
            untracked: Vec::new(),
            inputs: Vec::new(),
            untracked_in_context: Vec::new(),
            unhashed: Vec::new(),
            context: None,
            local: None,
            bases: BTreeMap::new(),
        }
    }
}

/// Whether the tags resolve the `FROM` images' digests (`base_images = "resolve"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bases {
    /// As the project says.
    AsConfigured,
    /// As written, whatever the project says (`validate`, `ci`: no network).
    AsWritten,
}

/// Computes the tags of `services`, opening the repository once. With `base_images =
/// "resolve"` (and `bases` as configured), the `FROM` images are resolved first, each distinct
/// reference once. A Dockerfile that copies files `inputs` do not cover, a bad `.dockerignore`
/// or a copy source that matches nothing is a configuration error (exit 2).
pub(crate) async fn tags(
    manifest: &Manifest,
    services: &[&Service],
    bases: Bases,
) -> anyhow::Result<Vec<ServiceTag>> {
    let manifest = Arc::new(manifest.clone());
    let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    let needs_repo = names.iter().any(|n| manifest.services[n].kind.is_image());
    let repo = if needs_repo {
        let root = manifest.root.clone();
        let repo = tokio::task::spawn_blocking(move || hasher::Repo::open(&root))
            .await
            .context("the hashing task panicked")?
            .with_context(|| format!("cannot hash the inputs under {}", manifest.root.display()))?;
        Some(Arc::new(repo))
    } else {
        None
    };
    let resolved = match (&repo, bases, manifest.project.base_images) {
        (Some(repo), Bases::AsConfigured, BaseImages::Resolve) => {
            resolve_bases(&manifest, &names, repo.clone()).await?
        }
        _ => BTreeMap::new(),
    };
    let tags = tokio::task::spawn_blocking(move || {
        names
            .iter()
            .map(|name| {
                let service = &manifest.services[name];
                match (&service.image, &repo) {
                    (Some(image), Some(repo)) => {
                        image_tag(repo, &manifest, service, image, &resolved)
                    }
                    _ if service.kind == Kind::Config => config_tag(&manifest, service),
                    _ => zip_tag(&manifest, service),
                }
            })
            .collect::<anyhow::Result<Vec<ServiceTag>>>()
    })
    .await
    .context("the hashing task panicked")??;
    warn_once(&tags);
    Ok(tags)
}

/// Says once per run what the images leave out: untracked files in the build contexts (not in
/// the build, not in the tag) and what the builds read that no tag covers.
fn warn_once(tags: &[ServiceTag]) {
    let untracked: std::collections::BTreeSet<&str> = tags
        .iter()
        .flat_map(|t| t.untracked_in_context.iter().map(String::as_str))
        .collect();
    if !untracked.is_empty() {
        let shown: Vec<&str> = untracked.iter().take(5).copied().collect();
        tracing::warn!(
            "{} untracked file(s) in the build contexts are not part of any image (`git add` them to build them in): {}{}",
            untracked.len(),
            shown.join(", "),
            if untracked.len() > shown.len() {
                ", …"
            } else {
                ""
            }
        );
    }
    for tag in tags {
        for notice in &tag.unhashed {
            tracing::warn!("{}: not content-addressed: {notice}", tag.service);
        }
    }
}

fn spec<'a>(
    image: &'a deployer_core::manifest::ImageBuild,
    platform: &'a str,
    base_images: &'a BTreeMap<String, String>,
) -> hasher::Spec<'a> {
    hasher::Spec {
        inputs: image.inputs.as_deref(),
        dockerfile: &image.dockerfile,
        context: &image.context,
        platform,
        build_args: &image.build_args,
        base_images,
    }
}

/// The digest every `FROM name:tag` of the selected image services names now, one request per
/// distinct reference (pinned references need none).
#[cfg(feature = "image")]
async fn resolve_bases(
    manifest: &Manifest,
    names: &[String],
    repo: Arc<hasher::Repo>,
) -> anyhow::Result<BTreeMap<String, String>> {
    let manifest_for_analysis = Arc::new(manifest.clone());
    let names = names.to_vec();
    let references = tokio::task::spawn_blocking(move || {
        let mut references = std::collections::BTreeSet::new();
        for name in &names {
            let service = &manifest_for_analysis.services[name];
            let Some(image) = &service.image else {
                continue;
            };
            let platform = image.platform.to_string();
            let empty = BTreeMap::new();
            let analysis = repo
                .analyze(&spec(image, &platform, &empty))
                .map_err(|error| hash_error(error, service))?;
            references.extend(
                analysis
                    .froms
                    .into_iter()
                    .filter(|from| !from.is_pinned())
                    .map(|from| from.reference),
            );
        }
        Ok::<_, anyhow::Error>(references)
    })
    .await
    .context("the hashing task panicked")??;
    let resolver = deployer_image::BaseImageResolver::new();
    let mut resolved = BTreeMap::new();
    for reference in references {
        match resolver.resolve(&reference).await {
            Ok(Some(digest)) => {
                resolved.insert(reference, digest);
            }
            Ok(None) => anyhow::bail!(crate::exit::UsageError(format!(
                "base image `{reference}` is not in its registry: fix the FROM line, or set `base_images = \"as-written\"`"
            ))),
            Err(error) => {
                return Err(anyhow::Error::new(error).context(format!(
                    "cannot resolve the base image `{reference}` (`base_images = \"resolve\"`)"
                )));
            }
        }
    }
    Ok(resolved)
}

#[cfg(not(feature = "image"))]
async fn resolve_bases(
    _: &Manifest,
    _: &[String],
    _: Arc<hasher::Repo>,
) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(BTreeMap::new())
}

/// A hasher error, as a configuration error (exit 2) when the manifest or the Dockerfile is at
/// fault: what the build copies is not covered, a glob or the `.dockerignore` is wrong.
fn hash_error(error: hasher::Error, service: &Service) -> anyhow::Error {
    let usage = matches!(
        error,
        hasher::Error::EmptyInputs
            | hasher::Error::InvalidGlob { .. }
            | hasher::Error::GlobOutsideRoot { .. }
            | hasher::Error::NoMatch { .. }
            | hasher::Error::Dockerfile { .. }
            | hasher::Error::Analyze { .. }
            | hasher::Error::ContextOutsideRoot { .. }
            | hasher::Error::ContextMissing { .. }
            | hasher::Error::Dockerignore { .. }
            | hasher::Error::CopySource { .. }
            | hasher::Error::NotCovered { .. }
    );
    let message = format!(
        "cannot hash the inputs of service `{}`: {}",
        service.name,
        deployer_core::cause_chain(&error)
    );
    if usage {
        crate::exit::UsageError(message).into()
    } else {
        anyhow::anyhow!(message)
    }
}

fn image_tag(
    repo: &hasher::Repo,
    _manifest: &Manifest,
    service: &Service,
    image: &deployer_core::manifest::ImageBuild,
    resolved: &BTreeMap<String, String>,
) -> anyhow::Result<ServiceTag> {
    let platform = image.platform.to_string();
    let hash = repo
        .hash(&spec(image, &platform, resolved))
        .map_err(|error| hash_error(error, service))?;
    let bases: BTreeMap<String, String> = hash
        .froms
        .iter()
        .filter_map(|from| {
            resolved
                .get(&from.reference)
                .map(|digest| (from.reference.clone(), digest.clone()))
        })
        .collect();
    Ok(ServiceTag {
        service: service.name.clone(),
        kind: service.kind,
        tag: hash.tag,
        files: hash.files,
        bytes: hash.bytes,
        untracked: hash.untracked,
        inputs: hash.inputs,
        untracked_in_context: hash
            .context
            .untracked
            .iter()
            .map(|path| join(&hash.context.dir, path))
            .collect(),
        unhashed: hash
            .unhashed
            .iter()
            .map(|u| format!("{} line {}: {}", image.dockerfile, u.line, u.what))
            .collect(),
        context: Some(hash.context),
        local: None,
        bases,
    })
}

/// `dir/path`, or `path` for the root context.
fn join(dir: &str, path: &str) -> String {
    if dir == "." || dir.is_empty() {
        path.to_owned()
    } else {
        format!("{dir}/{path}")
    }
}

#[cfg(feature = "lambda-zip")]
fn zip_tag(manifest: &Manifest, service: &Service) -> anyhow::Result<ServiceTag> {
    let zip = zip_package(manifest, service)?;
    Ok(ServiceTag {
        service: service.name.clone(),
        kind: service.kind,
        tag: zip.tag.clone(),
        files: zip.files,
        bytes: zip.size,
        untracked: Vec::new(),
        inputs: Vec::new(),
        untracked_in_context: Vec::new(),
        unhashed: Vec::new(),
        context: None,
        local: Some(deployer_core::Artifact::Zip(zip)),
        bases: BTreeMap::new(),
    })
}

#[cfg(not(feature = "lambda-zip"))]
fn zip_tag(_manifest: &Manifest, service: &Service) -> anyhow::Result<ServiceTag> {
    Err(crate::targets::require(service)
        .err()
        .map_or_else(|| anyhow::anyhow!("no zip support"), anyhow::Error::new))
}

/// Builds the deterministic zip of a `lambda-zip` service.
#[cfg(feature = "lambda-zip")]
pub(crate) fn zip_package(
    manifest: &Manifest,
    service: &Service,
) -> anyhow::Result<deployer_core::ZipArtifact> {
    let Target::LambdaZip(target) = &service.target else {
        anyhow::bail!("service `{}` is not a lambda-zip service", service.name);
    };
    deployer_lambda_zip::package(&manifest.root.join(&target.source), &target.exclude)
        .with_context(|| format!("cannot build the zip of service `{}`", service.name))
}

/// The set of a `config` service: its sources read and validated (every problem with file,
/// line and rule is a configuration error, exit 2, before anything remote), hashed.
#[cfg(feature = "config")]
fn config_tag(manifest: &Manifest, service: &Service) -> anyhow::Result<ServiceTag> {
    let deployer_core::manifest::Target::Config(target) = &service.target else {
        anyhow::bail!("service `{}` is not a config service", service.name);
    };
    // Located problems keep a line each, like a manifest's (`--json`: `error.diagnostics`).
    let set = deployer_config::ConfigSet::load(&manifest.root, target).map_err(|error| {
        let context = match &error {
            deployer_config::SourceError::Invalid(_) => format!(
                "the config of service `{}` is invalid, nothing was written",
                service.name
            ),
            deployer_config::SourceError::Read { .. } => {
                format!("cannot read the config of service `{}`", service.name)
            }
        };
        anyhow::Error::new(error).context(context)
    })?;
    let artifact = set.artifact();
    Ok(ServiceTag {
        service: service.name.clone(),
        kind: service.kind,
        tag: artifact.tag.clone(),
        files: artifact.items,
        bytes: artifact.bytes.len() as u64,
        untracked: Vec::new(),
        inputs: vec![format!("{}/**", target.source.trim_end_matches('/'))],
        untracked_in_context: Vec::new(),
        unhashed: Vec::new(),
        context: None,
        local: Some(deployer_core::Artifact::Config(artifact)),
        bases: BTreeMap::new(),
    })
}

#[cfg(not(feature = "config"))]
fn config_tag(_manifest: &Manifest, service: &Service) -> anyhow::Result<ServiceTag> {
    Err(crate::targets::require(service)
        .err()
        .map_or_else(|| anyhow::anyhow!("no config support"), anyhow::Error::new))
}
