//! "Does this repository have this tag?", answered without pulling: through the ECR API for
//! ECR registries, through the OCI distribution API (`HEAD /v2/<repo>/manifests/<tag>`) for any
//! other registry. "What is it?" ([`Registry::manifest`]): the manifest and the image's config
//! blob, read the same two ways.

use std::fmt;

use aws_sdk_ecr::operation::batch_get_image::BatchGetImageError;
use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::types::{ImageIdentifier, ImageStatus};
use base64::Engine as _;
// A failed ECR call is one line (`Code: message`), never the SDK's `DisplayErrorContext`: the
// raw response may be a `GetAuthorizationToken` answer (the registry password).
use deployer_aws::error_line;
use deployer_core::{DeployError, Presence, Progress};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, client::ClientConfig, client::ClientProtocol};

use crate::ImageError;
use crate::builder::is_loopback;
use crate::manifest::{self, ManifestInfo, ManifestKind};
use deployer_core::{cause_chain as chain, one_line};

/// An ECR registry host split into its parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcrHost {
    /// The registry (account) id.
    pub account: String,
    /// The region.
    pub region: String,
}

impl EcrHost {
    /// Parses `<account>.dkr.ecr.<region>.amazonaws.com[.cn]`; `None` for other hosts.
    pub fn parse(host: &str) -> Option<EcrHost> {
        let mut parts = host.split('.');
        let account = parts.next()?;
        let (dkr, ecr, region) = (parts.next()?, parts.next()?, parts.next()?);
        let rest: Vec<&str> = parts.collect();
        let valid = account.len() == 12
            && account.chars().all(|c| c.is_ascii_digit())
            && dkr == "dkr"
            && (ecr == "ecr" || ecr == "ecr-fips")
            && !region.is_empty()
            && (rest == ["amazonaws", "com"] || rest == ["amazonaws", "com", "cn"]);
        valid.then(|| EcrHost {
            account: account.to_owned(),
            region: region.to_owned(),
        })
    }
}

/// A registry the pipeline checks and pushes to.
pub enum Registry {
    /// Amazon ECR, asked through its API.
    Ecr {
        /// `<account>.dkr.ecr.<region>.amazonaws.com`.
        host: String,
        /// The parsed host.
        ecr: EcrHost,
        /// An ECR client for the registry's region.
        client: aws_sdk_ecr::Client,
    },
    /// Any OCI distribution registry.
    Oci {
        /// `host[:port]`.
        host: String,
        /// The distribution API client.
        client: Box<oci_client::Client>,
        /// How to authenticate.
        auth: RegistryAuth,
    },
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Registry::Ecr { host, .. } => f
                .debug_struct("Registry::Ecr")
                .field("host", host)
                .finish_non_exhaustive(),
            Registry::Oci { host, .. } => f
                .debug_struct("Registry::Oci")
                .field("host", host)
                .finish_non_exhaustive(),
        }
    }
}

impl Registry {
    /// An ECR registry; `client` must be configured for `ecr.region`.
    pub fn ecr(host: &str, ecr: EcrHost, client: aws_sdk_ecr::Client) -> Self {
        Registry::Ecr {
            host: host.to_owned(),
            ecr,
            client,
        }
    }

    /// Any other OCI registry. Loopback hosts are spoken to over plain HTTP, others over HTTPS.
    /// Credentials: `DEPLOYER_REGISTRY_TOKEN` (bearer), else `DEPLOYER_REGISTRY_USERNAME` +
    /// `DEPLOYER_REGISTRY_PASSWORD`, else the Docker config (`~/.docker/config.json` and its
    /// credential helpers), else anonymous.
    pub fn oci(host: &str) -> Self {
        install_crypto();
        let protocol = if is_loopback(host) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let client = oci_client::Client::new(ClientConfig {
            protocol,
            ..ClientConfig::default()
        });
        Registry::Oci {
            host: host.to_owned(),
            client: Box::new(client),
            auth: oci_auth(host),
        }
    }

    /// The registry host.
    pub fn host(&self) -> &str {
        match self {
            Registry::Ecr { host, .. } | Registry::Oci { host, .. } => host,
        }
    }

    /// The manifest digest of `repository:tag`, or `None` when the registry does not have it.
    ///
    /// For ECR, a missing repository is an error ([`ImageError::RepositoryNotFound`]): deployer
    /// does not create infrastructure. A distribution registry creates repositories on push, so
    /// there an unknown repository is a clean "no".
    pub async fn digest(&self, repository: &str, tag: &str) -> Result<Option<String>, ImageError> {
        match self {
            Registry::Ecr { host, ecr, client } => {
                let result = client
                    .describe_images()
                    .registry_id(&ecr.account)
                    .repository_name(repository)
                    .image_ids(ImageIdentifier::builder().image_tag(tag).build())
                    .send()
                    .await;
                match result {
                    Ok(output) => Ok(output
                        .image_details()
                        .first()
                        .and_then(|d| d.image_digest())
                        .map(str::to_owned)),
                    Err(error) => match error.as_service_error() {
                        Some(DescribeImagesError::ImageNotFoundException(_)) => Ok(None),
                        Some(DescribeImagesError::RepositoryNotFoundException(_)) => {
                            Err(ImageError::RepositoryNotFound {
                                repository: repository.to_owned(),
                                registry: host.clone(),
                            })
                        }
                        _ => Err(ImageError::Ecr {
                            operation: "DescribeImages",
                            message: error_line(&error),
                        }),
                    },
                }
            }
            Registry::Oci { host, client, auth } => {
                let reference =
                    Reference::with_tag(host.clone(), repository.to_owned(), tag.to_owned());
                match client.fetch_manifest_digest(&reference, auth).await {
                    Ok(digest) => Ok(Some(digest)),
                    Err(error) if is_not_found(&error) => Ok(None),
                    Err(error) => Err(ImageError::Registry {
                        registry: host.clone(),
                        reference: format!("{repository}:{tag}"),
                        message: one_line(&error.to_string()),
                    }),
                }
            }
        }
    }

    /// Whether the registry still holds the image `repository@digest` (a rollback target):
    /// asked without pulling — ECR `BatchGetImage` by digest (and, when ECR has no such image
    /// to serve, `DescribeImages` to tell an archived image from an expired or deleted one),
    /// the OCI distribution API `HEAD /v2/<repository>/manifests/<digest>`. A missing
    /// repository is gone too: nothing of it can be rolled back to.
    pub async fn presence(&self, repository: &str, digest: &str) -> Result<Presence, ImageError> {
        match self {
            Registry::Ecr { host, ecr, client } => {
                let id = ImageIdentifier::builder().image_digest(digest).build();
                let result = batch_get_image(client, ecr, repository, id).await;
                let output = match result {
                    Ok(output) => output,
                    Err(error) => {
                        return match error.as_service_error() {
                            Some(BatchGetImageError::RepositoryNotFoundException(_)) => {
                                Ok(Presence::Gone {
                                    why: format!(
                                        "its repository `{repository}` no longer exists in {host}"
                                    ),
                                })
                            }
                            _ => Err(ImageError::Ecr {
                                operation: "BatchGetImage",
                                message: error_line(&error),
                            }),
                        };
                    }
                };
                if !output.images().is_empty() {
                    return Ok(Presence::Present);
                }
                let Some(failure) = output.failures().first() else {
                    return Err(ImageError::Ecr {
                        operation: "BatchGetImage",
                        message: "the response has neither images nor failures".into(),
                    });
                };
                let code = failure.failure_code().map_or("failure", |c| c.as_str());
                let reason = failure.failure_reason().unwrap_or("no reason given");
                if code != "ImageNotFound" {
                    return Err(ImageError::Ecr {
                        operation: "BatchGetImage",
                        message: one_line(&format!("{code}: {reason}")),
                    });
                }
                Ok(Presence::Gone {
                    why: self.ecr_gone(repository, digest, reason).await,
                })
            }
            Registry::Oci { host, client, auth } => {
                let reference =
                    Reference::with_digest(host.clone(), repository.to_owned(), digest.to_owned());
                match client.fetch_manifest_digest(&reference, auth).await {
                    Ok(_) => Ok(Presence::Present),
                    Err(error) if is_not_found(&error) => Ok(Presence::Gone {
                        why: format!(
                            "it was removed from the registry ({host} has no manifest {digest} in `{repository}`)"
                        ),
                    }),
                    Err(error) => Err(ImageError::Registry {
                        registry: host.clone(),
                        reference: format!("{repository}@{digest}"),
                        message: one_line(&error.to_string()),
                    }),
                }
            }
        }
    }

    /// Why ECR serves no image `repository@digest` (`reason`: what `BatchGetImage` said): an
    /// image a lifecycle rule moved to archive storage is still listed (`imageStatus`
    /// `ARCHIVED`) and can be restored; one that is not listed was expired by a lifecycle
    /// rule or deleted.
    async fn ecr_gone(&self, repository: &str, digest: &str, reason: &str) -> String {
        let Registry::Ecr { ecr, client, .. } = self else {
            return format!("it was removed from the registry ({reason})");
        };
        let described = client
            .describe_images()
            .registry_id(&ecr.account)
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_digest(digest).build())
            .send()
            .await;
        let archived = described.ok().is_some_and(|output| {
            output
                .image_details()
                .iter()
                .any(|d| d.image_status() == Some(&ImageStatus::Archived))
        });
        if archived {
            format!(
                "ECR archived it (a lifecycle rule with action `transition` to archive storage; \
                 restore it with `aws ecr update-image-storage-class --repository-name {repository} \
                 --image-id imageDigest={digest} --target-storage-class STANDARD`)"
            )
        } else {
            format!(
                "it was removed from the registry (ECR: {reason}; an ECR lifecycle rule expires \
                 images, or it was deleted)"
            )
        }
    }

    /// What the registry holds under `repository:reference` (a tag, or a `sha256:…` digest):
    /// the manifest's digest and media type, whether it is an index (and of what), and for an
    /// image manifest the platform its config blob names. `None` when there is no such tag.
    ///
    /// - OCI distribution API: `GET /v2/<repository>/manifests/<reference>` accepting the OCI
    ///   and Docker image and index types, then the config blob (`GET /v2/…/blobs/<digest>`,
    ///   checked against its digest).
    /// - ECR: `BatchGetImage` with the same `acceptedMediaTypes` (without them ECR converts or
    ///   refuses), then the config blob through `GetDownloadUrlForLayer` and a `GET` of the
    ///   URL it returns (checked against its digest). Both need the caller's pull permissions
    ///   (`ecr:BatchGetImage`, `ecr:GetDownloadUrlForLayer`).
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<ManifestInfo>, ImageError> {
        let is_digest = reference.starts_with("sha256:");
        let shown = if is_digest {
            format!("{}/{repository}@{reference}", self.host())
        } else {
            format!("{}/{repository}:{reference}", self.host())
        };
        let failed = |message: String| ImageError::Registry {
            registry: self.host().to_owned(),
            reference: shown.clone(),
            message: one_line(&message),
        };
        match self {
            Registry::Ecr { host, ecr, client } => {
                let id = if is_digest {
                    ImageIdentifier::builder().image_digest(reference).build()
                } else {
                    ImageIdentifier::builder().image_tag(reference).build()
                };
                let result = batch_get_image(client, ecr, repository, id).await;
                let output = match result {
                    Ok(output) => output,
                    Err(error) => {
                        return Err(match error.as_service_error() {
                            Some(BatchGetImageError::RepositoryNotFoundException(_)) => {
                                ImageError::RepositoryNotFound {
                                    repository: repository.to_owned(),
                                    registry: host.clone(),
                                }
                            }
                            _ => ImageError::Ecr {
                                operation: "BatchGetImage",
                                message: error_line(&error),
                            },
                        });
                    }
                };
                let Some(image) = output.images().first() else {
                    // ECR answers a missing tag with a failure, not an error.
                    return match output.failures().first() {
                        Some(failure)
                            if !matches!(
                                failure.failure_code().map(|c| c.as_str()),
                                Some("ImageNotFound" | "ImageTagDoesNotMatchDigest")
                            ) =>
                        {
                            Err(ImageError::Ecr {
                                operation: "BatchGetImage",
                                message: one_line(&format!(
                                    "{}: {}",
                                    failure.failure_code().map_or("failure", |c| c.as_str()),
                                    failure.failure_reason().unwrap_or("no reason given")
                                )),
                            })
                        }
                        _ => Ok(None),
                    };
                };
                let body = image.image_manifest().ok_or(ImageError::Ecr {
                    operation: "BatchGetImage",
                    message: "the response has no images[0].imageManifest".into(),
                })?;
                let parsed = manifest::parse(body.as_bytes(), image.image_manifest_media_type())
                    .map_err(failed)?;
                let digest = image
                    .image_id()
                    .and_then(|id| id.image_digest())
                    .map_or_else(|| sha256_digest(body.as_bytes()), str::to_owned);
                // The platform is in the config blob, which ECR serves through a download URL.
                // When that is refused (a role without `ecr:GetDownloadUrlForLayer`, an emulator
                // without blobs), the media type is still checked and the platform is said to be
                // unread.
                let (platform, unread) = match &parsed.config {
                    Some(config) => match self.ecr_blob(repository, config).await {
                        Ok(blob) => (manifest::config_platform(&blob).map_err(failed)?, None),
                        Err(
                            error @ ImageError::Ecr {
                                operation: "GetDownloadUrlForLayer",
                                ..
                            },
                        ) => (None, Some(error.to_string())),
                        Err(error) => return Err(error),
                    },
                    None => (None, None),
                };
                let mut found = info(shown.clone(), digest, parsed, platform);
                found.platform_unread = unread;
                Ok(Some(found))
            }
            Registry::Oci { client, auth, host } => {
                let target = if is_digest {
                    Reference::with_digest(
                        host.clone(),
                        repository.to_owned(),
                        reference.to_owned(),
                    )
                } else {
                    Reference::with_tag(host.clone(), repository.to_owned(), reference.to_owned())
                };
                let (body, digest) = match client
                    .pull_manifest_raw(&target, auth, &manifest::ACCEPTED)
                    .await
                {
                    Ok(found) => found,
                    Err(error) if is_not_found(&error) => return Ok(None),
                    Err(error) => return Err(failed(error.to_string())),
                };
                let parsed = manifest::parse(&body, None).map_err(failed)?;
                let platform = match &parsed.config {
                    Some(config) => {
                        let mut blob = Vec::new();
                        client
                            .pull_blob(&target, config.as_str(), &mut blob)
                            .await
                            .map_err(|e| failed(format!("config blob {config}: {e}")))?;
                        manifest::config_platform(&blob).map_err(failed)?
                    }
                    None => None,
                };
                Ok(Some(info(shown.clone(), digest, parsed, platform)))
            }
        }
    }

    /// An ECR blob (an image config): `GetDownloadUrlForLayer`, then a `GET` of that URL,
    /// checked against `digest`.
    async fn ecr_blob(&self, repository: &str, digest: &str) -> Result<Vec<u8>, ImageError> {
        let Registry::Ecr { host, ecr, client } = self else {
            return Ok(Vec::new());
        };
        let output = client
            .get_download_url_for_layer()
            .registry_id(&ecr.account)
            .repository_name(repository)
            .layer_digest(digest)
            .send()
            .await
            .map_err(|error| ImageError::Ecr {
                operation: "GetDownloadUrlForLayer",
                message: error_line(&error),
            })?;
        let url = output.download_url().ok_or(ImageError::Ecr {
            operation: "GetDownloadUrlForLayer",
            message: "the response has no downloadUrl".into(),
        })?;
        let failed = |message: String| ImageError::Registry {
            registry: host.clone(),
            reference: format!("{repository}@{digest}"),
            message: one_line(&message),
        };
        install_crypto();
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| failed(chain(&e)))?;
        // The URL is presigned: its query string is a credential, so errors name the blob,
        // not the URL.
        let response = http.get(url).send().await.map_err(|e| {
            failed(format!(
                "cannot download the blob: {}",
                chain(&e.without_url())
            ))
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(failed(format!(
                "downloading the blob answered HTTP {status}"
            )));
        }
        let body = response.bytes().await.map_err(|e| {
            failed(format!(
                "cannot download the blob: {}",
                chain(&e.without_url())
            ))
        })?;
        let actual = sha256_digest(&body);
        if actual != digest {
            return Err(failed(format!("the blob downloaded has digest {actual}")));
        }
        Ok(body.to_vec())
    }

    /// Points `repository:tag` at the image `digest` already in the registry (a mutable tag such
    /// as `latest`, for services that run by tag), without pulling or pushing any layer.
    ///
    /// Moving a tag changes what a service that runs by tag starts next, so the write
    /// (`PutImage`, or the manifest `PUT`) is preceded by [`Progress::before_mutation`]: a run
    /// that lost its deploy lock gets [`ImageError::Fenced`] and the tag is not moved.
    pub async fn retag(
        &self,
        repository: &str,
        digest: &str,
        tag: &str,
        progress: &Progress,
    ) -> Result<(), ImageError> {
        match self {
            Registry::Ecr { host, ecr, client } => {
                let found = client
                    .batch_get_image()
                    .registry_id(&ecr.account)
                    .repository_name(repository)
                    .image_ids(ImageIdentifier::builder().image_digest(digest).build())
                    .send()
                    .await
                    .map_err(|error| ImageError::Ecr {
                        operation: "BatchGetImage",
                        message: error_line(&error),
                    })?;
                let image = found.images().first().ok_or_else(|| ImageError::Registry {
                    registry: host.clone(),
                    reference: format!("{repository}@{digest}"),
                    message: "the image is not in the repository".into(),
                })?;
                let manifest = image.image_manifest().unwrap_or_default();
                let mut put = client
                    .put_image()
                    .registry_id(&ecr.account)
                    .repository_name(repository)
                    .image_manifest(manifest)
                    .image_tag(tag);
                if let Some(media_type) = image.image_manifest_media_type() {
                    put = put.image_manifest_media_type(media_type);
                }
                before_mutation(progress, "PutImage")?;
                match put.send().await {
                    Ok(_) => Ok(()),
                    // The tag already names this very manifest.
                    Err(error) if matches!(error.as_service_error(), Some(aws_sdk_ecr::operation::put_image::PutImageError::ImageAlreadyExistsException(_))) => Ok(()),
                    Err(error) => Err(ImageError::Ecr {
                        operation: "PutImage",
                        message: error_line(&error),
                    }),
                }
            }
            Registry::Oci { host, client, auth } => {
                let failed = |message: String| ImageError::Registry {
                    registry: host.clone(),
                    reference: format!("{repository}:{tag}"),
                    message,
                };
                let source =
                    Reference::with_digest(host.clone(), repository.to_owned(), digest.to_owned());
                let accepted = [
                    oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                    oci_client::manifest::IMAGE_MANIFEST_MEDIA_TYPE,
                    oci_client::manifest::OCI_IMAGE_INDEX_MEDIA_TYPE,
                    oci_client::manifest::IMAGE_MANIFEST_LIST_MEDIA_TYPE,
                ];
                let (body, _) = client
                    .pull_manifest_raw(&source, auth, &accepted)
                    .await
                    .map_err(|e| failed(one_line(&e.to_string())))?;
                let media_type = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|manifest| {
                        manifest
                            .get("mediaType")
                            .and_then(|m| m.as_str())
                            .map(str::to_owned)
                    })
                    .unwrap_or_else(|| oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_owned());
                let content_type = reqwest::header::HeaderValue::from_str(&media_type)
                    .map_err(|e| failed(e.to_string()))?;
                let target =
                    Reference::with_tag(host.clone(), repository.to_owned(), tag.to_owned());
                before_mutation(progress, &format!("PUT /v2/{repository}/manifests/{tag}"))?;
                client
                    .push_manifest_raw(&target, body, content_type)
                    .await
                    .map_err(|e| failed(one_line(&e.to_string())))?;
                Ok(())
            }
        }
    }

    /// Credentials to log the builder in with, when the registry issues them (ECR's
    /// `GetAuthorizationToken`); `None` for other registries (the builder's own login is used).
    pub async fn login_credentials(&self) -> Result<Option<(String, String)>, ImageError> {
        let Registry::Ecr { client, .. } = self else {
            return Ok(None);
        };
        let output = client
            .get_authorization_token()
            .send()
            .await
            .map_err(|error| ImageError::Ecr {
                operation: "GetAuthorizationToken",
                message: error_line(&error),
            })?;
        let token = output
            .authorization_data()
            .first()
            .and_then(|data| data.authorization_token())
            .ok_or(ImageError::Ecr {
                operation: "GetAuthorizationToken",
                message: "the response has no authorizationData[0].authorizationToken".into(),
            })?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(ImageError::Ecr {
                operation: "GetAuthorizationToken",
                message: "the authorization token is not base64 of `user:password`".into(),
            })?;
        let (user, password) = decoded.split_once(':').ok_or(ImageError::Ecr {
            operation: "GetAuthorizationToken",
            message: "the authorization token is not base64 of `user:password`".into(),
        })?;
        Ok(Some((user.to_owned(), password.to_owned())))
    }
}

/// reqwest is built without a default crypto provider: use ring, as the AWS client does.
pub(crate) fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn info(
    reference: String,
    digest: String,
    parsed: manifest::Parsed,
    platform: Option<deployer_core::manifest::Platform>,
) -> ManifestInfo {
    ManifestInfo {
        reference,
        digest,
        media_type: parsed.media_type,
        platform: match parsed.kind {
            ManifestKind::Image => platform,
            ManifestKind::Index { .. } => None,
        },
        kind: parsed.kind,
        platform_unread: None,
    }
}

/// `sha256:<hex>` of `bytes`.
fn sha256_digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(bytes);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in hash.iter() {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

fn oci_auth(host: &str) -> RegistryAuth {
    if let Ok(token) = std::env::var("DEPLOYER_REGISTRY_TOKEN") {
        return RegistryAuth::Bearer(token);
    }
    if let (Ok(user), Ok(password)) = (
        std::env::var("DEPLOYER_REGISTRY_USERNAME"),
        std::env::var("DEPLOYER_REGISTRY_PASSWORD"),
    ) {
        return RegistryAuth::Basic(user, password);
    }
    match docker_credential::get_credential(host) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            RegistryAuth::Bearer(token)
        }
        Err(_) => RegistryAuth::Anonymous,
    }
}

/// ECR `BatchGetImage` of one image of `repository`, accepting the OCI and Docker image and
/// index types (without them ECR converts or refuses).
async fn batch_get_image(
    client: &aws_sdk_ecr::Client,
    ecr: &EcrHost,
    repository: &str,
    id: ImageIdentifier,
) -> Result<
    aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput,
    aws_sdk_ecr::error::SdkError<BatchGetImageError, aws_sdk_ecr::config::http::HttpResponse>,
> {
    client
        .batch_get_image()
        .registry_id(&ecr.account)
        .repository_name(repository)
        .image_ids(id)
        .set_accepted_media_types(Some(
            manifest::ACCEPTED.iter().map(|t| (*t).to_owned()).collect(),
        ))
        .send()
        .await
}

pub(crate) fn is_not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
            )
        }),
        _ => false,
    }
}

/// [`Progress::before_mutation`] for a registry write, as an [`ImageError`].
fn before_mutation(progress: &Progress, call: &str) -> Result<(), ImageError> {
    progress.before_mutation(call).map_err(|error| match error {
        DeployError::Fenced { call, reason } => ImageError::Fenced { call, reason },
        other => ImageError::Fenced {
            call: call.to_owned(),
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecr::operation::describe_images::DescribeImagesOutput;
    use aws_sdk_ecr::operation::get_authorization_token::GetAuthorizationTokenOutput;
    use aws_sdk_ecr::types::error::{ImageNotFoundException, RepositoryNotFoundException};
    use aws_sdk_ecr::types::{AuthorizationData, ImageDetail};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    const HOST: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

    fn registry(client: aws_sdk_ecr::Client) -> Registry {
        Registry::ecr(HOST, EcrHost::parse(HOST).unwrap(), client)
    }

    #[test]
    fn parses_ecr_hosts() {
        assert_eq!(
            EcrHost::parse(HOST),
            Some(EcrHost {
                account: "123456789012".into(),
                region: "eu-west-1".into()
            })
        );
        assert!(EcrHost::parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn").is_some());
        assert!(EcrHost::parse("127.0.0.1:5000").is_none());
        assert!(EcrHost::parse("ghcr.io").is_none());
        assert!(EcrHost::parse("12345.dkr.ecr.us-east-1.amazonaws.com").is_none());
    }

    #[tokio::test]
    async fn ecr_present_absent_and_missing_repository() {
        let present = mock!(aws_sdk_ecr::Client::describe_images)
            .match_requests(|r| {
                r.repository_name() == Some("acme/api") && r.registry_id() == Some("123456789012")
            })
            .then_output(|| {
                DescribeImagesOutput::builder()
                    .image_details(ImageDetail::builder().image_digest("sha256:abc").build())
                    .build()
            });
        let absent = mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
            DescribeImagesError::ImageNotFoundException(
                ImageNotFoundException::builder().message("no").build(),
            )
        });
        let missing = mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
            DescribeImagesError::RepositoryNotFoundException(
                RepositoryNotFoundException::builder()
                    .message("no repo")
                    .build(),
            )
        });
        let client = mock_client!(
            aws_sdk_ecr,
            RuleMode::Sequential,
            [&present, &absent, &missing]
        );
        let registry = registry(client);
        assert_eq!(
            registry.digest("acme/api", "t1").await.unwrap().as_deref(),
            Some("sha256:abc")
        );
        assert_eq!(registry.digest("acme/api", "t2").await.unwrap(), None);
        let error = registry.digest("acme/nope", "t3").await.unwrap_err();
        assert!(
            matches!(error, ImageError::RepositoryNotFound { .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("`acme/nope` does not exist"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn ecr_login_credentials_decode_the_token() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:s3cret-password");
        let rule = mock!(aws_sdk_ecr::Client::get_authorization_token).then_output(move || {
            GetAuthorizationTokenOutput::builder()
                .authorization_data(
                    AuthorizationData::builder()
                        .authorization_token(token.clone())
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_ecr, [&rule]);
        let (user, password) = registry(client).login_credentials().await.unwrap().unwrap();
        assert_eq!(
            (user.as_str(), password.as_str()),
            ("AWS", "s3cret-password")
        );
    }

    /// A fence that says no: the run lost its deploy lock.
    struct LockLost;

    impl deployer_core::Fence for LockLost {
        fn check(&self) -> Result<(), String> {
            Err("the deploy lock of api was taken over".into())
        }
    }

    /// Moving a tag is a mutation: a run that lost its deploy lock reads the image but does
    /// not move the tag.
    #[tokio::test]
    async fn a_fenced_retag_moves_no_tag() {
        let get = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(|| {
            aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput::builder()
                .images(
                    aws_sdk_ecr::types::Image::builder()
                        .image_manifest("{}")
                        .image_manifest_media_type(
                            "application/vnd.docker.distribution.manifest.v2+json",
                        )
                        .build(),
                )
                .build()
        });
        let put = mock!(aws_sdk_ecr::Client::put_image)
            .then_output(|| aws_sdk_ecr::operation::put_image::PutImageOutput::builder().build());
        let client = mock_client!(aws_sdk_ecr, RuleMode::Sequential, [&get, &put]);
        let pipeline = crate::Pipeline::new(registry(client), None);
        let progress =
            deployer_core::Progress::discard("api").with_fence(std::sync::Arc::new(LockLost));
        let error = pipeline
            .retag("acme/api", "sha256:abc", "latest", &progress)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, ImageError::Fenced { call, .. } if call == "PutImage"),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "stopped before PutImage: the deploy lock of api was taken over"
        );
        assert_eq!(put.num_calls(), 0);
    }

    /// An ECR answer that does not parse is shown in one line without its body: the body of a
    /// `GetAuthorizationToken` answer is the registry password.
    #[tokio::test]
    async fn an_unparsable_answer_shows_no_body() {
        let token = base64::engine::general_purpose::STANDARD.encode("AWS:s3cret-password");
        let body = format!(r#"{{"authorizationData":[{{"authorizationToken":"{token}""#);
        let rule =
            mock!(aws_sdk_ecr::Client::get_authorization_token).then_http_response(move || {
                aws_sdk_ecr::config::http::HttpResponse::new(
                    200u16.try_into().unwrap(),
                    body.clone().into(),
                )
            });
        let client = mock_client!(aws_sdk_ecr, [&rule]);
        let error = registry(client).login_credentials().await.unwrap_err();
        let text = error.to_string();
        assert!(!text.contains(&token), "the token leaked: {text}");
        assert!(!text.contains('\n'), "{text}");
        assert!(
            text.starts_with("ECR GetAuthorizationToken failed: "),
            "{text}"
        );
    }

    /// Serves `body` to every request (HTTP/1.1, one response per connection) and returns a
    /// URL shaped like an S3 presigned one, whose query string is a credential.
    async fn serve(body: Vec<u8>) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut request = vec![0u8; 8192];
                    let _ = socket.read(&mut request).await;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                });
            }
        });
        format!("http://{address}/blob?X-Amz-Signature=presigned-secret")
    }

    const CONFIG: &str =
        r#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;

    fn docker_manifest(config_digest: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{config_digest}","size":1}},"layers":[]}}"#
        )
    }

    fn ecr_image(manifest: String, media_type: &str) -> aws_sdk_ecr::types::Image {
        aws_sdk_ecr::types::Image::builder()
            .image_id(
                ImageIdentifier::builder()
                    .image_digest("sha256:abc")
                    .build(),
            )
            .image_manifest(manifest)
            .image_manifest_media_type(media_type)
            .build()
    }

    /// ECR: `BatchGetImage` asks for every image and index type (else ECR converts or
    /// refuses), and the platform comes from the config blob, fetched through the URL
    /// `GetDownloadUrlForLayer` gives and checked against its digest.
    #[tokio::test]
    async fn ecr_manifest_reads_the_image_and_its_config() {
        let config_digest = sha256_digest(CONFIG.as_bytes());
        let url = serve(CONFIG.as_bytes().to_vec()).await;
        let manifest = docker_manifest(&config_digest);
        let get = mock!(aws_sdk_ecr::Client::batch_get_image)
            .match_requests(|r| {
                let accepted = r.accepted_media_types();
                r.repository_name() == Some("acme/api")
                    && r.image_ids().first().and_then(|id| id.image_tag()) == Some("3f2a")
                    && manifest::ACCEPTED
                        .iter()
                        .all(|t| accepted.iter().any(|a| a == t))
            })
            .then_output(move || {
                aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput::builder()
                    .images(ecr_image(manifest.clone(), manifest::DOCKER_MANIFEST))
                    .build()
            });
        let wanted = config_digest.clone();
        let download = mock!(aws_sdk_ecr::Client::get_download_url_for_layer)
            .match_requests(move |r| r.layer_digest() == Some(wanted.as_str()))
            .then_output(move || {
                aws_sdk_ecr::operation::get_download_url_for_layer::GetDownloadUrlForLayerOutput::builder()
                    .download_url(url.clone())
                    .layer_digest(config_digest.clone())
                    .build()
            });
        let client = mock_client!(aws_sdk_ecr, RuleMode::Sequential, [&get, &download]);
        let info = registry(client)
            .manifest("acme/api", "3f2a")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.reference, format!("{HOST}/acme/api:3f2a"));
        assert_eq!(info.digest, "sha256:abc");
        assert_eq!(info.media_type, manifest::DOCKER_MANIFEST);
        assert_eq!(info.kind, ManifestKind::Image);
        assert_eq!(
            info.platform.map(|p| p.to_string()).as_deref(),
            Some("linux/arm64")
        );
    }

    /// A rollback target asked by digest (issue 17): there; expired (ECR no longer lists it);
    /// archived by a lifecycle rule (listed as `ARCHIVED`, with the command restoring it); its
    /// repository deleted.
    #[tokio::test]
    async fn ecr_presence_by_digest_tells_expired_from_archived() {
        use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
        use aws_sdk_ecr::types::{ImageFailure, ImageFailureCode};
        let not_found = || {
            BatchGetImageOutput::builder()
                .failures(
                    ImageFailure::builder()
                        .failure_code(ImageFailureCode::ImageNotFound)
                        .failure_reason("Requested image not found")
                        .build(),
                )
                .build()
        };
        let there = mock!(aws_sdk_ecr::Client::batch_get_image)
            .match_requests(|r| {
                r.image_ids()[0].image_digest() == Some("sha256:aa")
                    && r.image_ids()[0].image_tag().is_none()
            })
            .then_output(|| {
                BatchGetImageOutput::builder()
                    .images(ecr_image("{}".to_owned(), manifest::OCI_MANIFEST))
                    .build()
            });
        let expired = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(not_found);
        let unlisted = mock!(aws_sdk_ecr::Client::describe_images).then_error(|| {
            DescribeImagesError::ImageNotFoundException(
                ImageNotFoundException::builder().message("no").build(),
            )
        });
        let archived = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(not_found);
        let listed = mock!(aws_sdk_ecr::Client::describe_images).then_output(|| {
            DescribeImagesOutput::builder()
                .image_details(
                    ImageDetail::builder()
                        .image_digest("sha256:cc")
                        .image_status(ImageStatus::Archived)
                        .build(),
                )
                .build()
        });
        let no_repository = mock!(aws_sdk_ecr::Client::batch_get_image).then_error(|| {
            BatchGetImageError::RepositoryNotFoundException(
                RepositoryNotFoundException::builder().message("no").build(),
            )
        });
        let client = mock_client!(
            aws_sdk_ecr,
            RuleMode::Sequential,
            [
                &there,
                &expired,
                &unlisted,
                &archived,
                &listed,
                &no_repository
            ]
        );
        let registry = registry(client);
        assert_eq!(
            registry.presence("acme/api", "sha256:aa").await.unwrap(),
            Presence::Present
        );
        let Presence::Gone { why } = registry.presence("acme/api", "sha256:bb").await.unwrap()
        else {
            panic!("an expired image is gone");
        };
        assert_eq!(
            why,
            "it was removed from the registry (ECR: Requested image not found; an ECR lifecycle \
             rule expires images, or it was deleted)"
        );
        let Presence::Gone { why } = registry.presence("acme/api", "sha256:cc").await.unwrap()
        else {
            panic!("an archived image cannot be pulled");
        };
        assert!(
            why.starts_with("ECR archived it (a lifecycle rule")
                && why.contains("--image-id imageDigest=sha256:cc --target-storage-class STANDARD"),
            "{why}"
        );
        let Presence::Gone { why } = registry.presence("acme/old", "sha256:dd").await.unwrap()
        else {
            panic!("a deleted repository holds nothing");
        };
        assert!(why.contains("`acme/old` no longer exists"), "{why}");
    }

    /// An index needs no config blob; a missing tag is a clean `None`.
    #[tokio::test]
    async fn ecr_manifest_of_an_index_and_of_a_missing_tag() {
        let index = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:11","size":1,"platform":{"architecture":"amd64","os":"linux"}}]}"#;
        let get_index = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(move || {
            aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput::builder()
                .images(ecr_image(index.to_owned(), manifest::OCI_INDEX))
                .build()
        });
        let missing = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(|| {
            aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput::builder()
                .failures(
                    aws_sdk_ecr::types::ImageFailure::builder()
                        .failure_code(aws_sdk_ecr::types::ImageFailureCode::ImageNotFound)
                        .failure_reason("Requested image not found")
                        .build(),
                )
                .build()
        });
        let client = mock_client!(aws_sdk_ecr, RuleMode::Sequential, [&get_index, &missing]);
        let registry = registry(client);
        let info = registry.manifest("acme/api", "t1").await.unwrap().unwrap();
        assert!(
            matches!(&info.kind, ManifestKind::Index { manifests } if manifests.len() == 1),
            "{info:?}"
        );
        assert_eq!(info.platform, None);
        assert_eq!(registry.manifest("acme/api", "t2").await.unwrap(), None);
    }

    /// A config blob whose bytes do not match its digest is an error, and the error does not
    /// carry the presigned URL (its query string is a credential).
    #[tokio::test]
    async fn ecr_config_with_the_wrong_digest_is_an_error_without_the_url() {
        let config_digest = sha256_digest(b"something else");
        let url = serve(CONFIG.as_bytes().to_vec()).await;
        let manifest = docker_manifest(&config_digest);
        let get = mock!(aws_sdk_ecr::Client::batch_get_image).then_output(move || {
            aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput::builder()
                .images(ecr_image(manifest.clone(), manifest::DOCKER_MANIFEST))
                .build()
        });
        let download = mock!(aws_sdk_ecr::Client::get_download_url_for_layer).then_output(
            move || {
                aws_sdk_ecr::operation::get_download_url_for_layer::GetDownloadUrlForLayerOutput::builder()
                    .download_url(url.clone())
                    .build()
            },
        );
        let client = mock_client!(aws_sdk_ecr, RuleMode::Sequential, [&get, &download]);
        let error = registry(client)
            .manifest("acme/api", "3f2a")
            .await
            .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("the blob downloaded has digest"), "{text}");
        assert!(!text.contains("presigned-secret"), "{text}");
    }

    #[tokio::test]
    async fn ecr_manifest_of_a_missing_repository_is_a_config_error() {
        let missing = mock!(aws_sdk_ecr::Client::batch_get_image).then_error(|| {
            BatchGetImageError::RepositoryNotFoundException(
                RepositoryNotFoundException::builder().message("no").build(),
            )
        });
        let client = mock_client!(aws_sdk_ecr, [&missing]);
        let error = registry(client)
            .manifest("acme/nope", "t")
            .await
            .unwrap_err();
        assert!(error.is_config(), "{error:?}");
    }

    #[test]
    fn sha256_digests_are_lowercase_hex() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[tokio::test]
    async fn oci_registries_need_no_login() {
        assert!(
            Registry::oci("127.0.0.1:1")
                .login_credentials()
                .await
                .unwrap()
                .is_none()
        );
    }
}
