//! A service's content tag: the hasher for image services, the deterministic zip for zip
//! services.

use std::sync::Arc;

use anyhow::Context as _;
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
    /// The zip itself, for zip services (built while hashing: its SHA-256 is the tag).
    #[serde(skip)]
    pub(crate) zip: Option<deployer_core::ZipArtifact>,
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
            zip: None,
        }
    }
}

/// Computes the tags of `services`, opening the repository once.
pub(crate) async fn tags(
    manifest: &Manifest,
    services: &[&Service],
) -> anyhow::Result<Vec<ServiceTag>> {
    let manifest = Arc::new(manifest.clone());
    let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    tokio::task::spawn_blocking(move || {
        let needs_repo = names.iter().any(|n| manifest.services[n].kind.is_image());
        let repo = if needs_repo {
            Some(hasher::Repo::open(&manifest.root).with_context(|| {
                format!("cannot hash the inputs under {}", manifest.root.display())
            })?)
        } else {
            None
        };
        names
            .iter()
            .map(|name| {
                let service = &manifest.services[name];
                match (&service.image, &repo) {
                    (Some(image), Some(repo)) => image_tag(repo, service, image),
                    _ => zip_tag(&manifest, service),
                }
            })
            .collect()
    })
    .await
    .context("the hashing task panicked")?
}

fn image_tag(
    repo: &hasher::Repo,
    service: &Service,
    image: &deployer_core::manifest::ImageBuild,
) -> anyhow::Result<ServiceTag> {
    let platform = image.platform.to_string();
    let hash = repo
        .hash(&hasher::Spec {
            inputs: &image.inputs,
            dockerfile: &image.dockerfile,
            platform: &platform,
            build_args: &image.build_args,
        })
        .with_context(|| format!("cannot hash the inputs of service `{}`", service.name))?;
    Ok(ServiceTag {
        service: service.name.clone(),
        kind: service.kind,
        tag: hash.tag,
        files: hash.files,
        bytes: hash.bytes,
        untracked: hash.untracked,
        zip: None,
    })
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
        zip: Some(zip),
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
