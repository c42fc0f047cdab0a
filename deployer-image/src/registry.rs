//! "Does this repository have this tag?", answered without pulling: through the ECR API for
//! ECR registries, through the OCI distribution API (`HEAD /v2/<repo>/manifests/<tag>`) for any
//! other registry.

use std::fmt;

use aws_sdk_ecr::error::DisplayErrorContext;
use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
use aws_sdk_ecr::types::ImageIdentifier;
use base64::Engine as _;
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, client::ClientConfig, client::ClientProtocol};

use crate::ImageError;
use crate::builder::is_loopback;

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
        // reqwest is built without a default crypto provider: use ring, as the AWS client does.
        let _ = rustls::crypto::ring::default_provider().install_default();
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
                            message: DisplayErrorContext(&error).to_string(),
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

    /// Points `repository:tag` at the image `digest` already in the registry (a mutable tag such
    /// as `latest`, for services that run by tag), without pulling or pushing any layer.
    pub async fn retag(&self, repository: &str, digest: &str, tag: &str) -> Result<(), ImageError> {
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
                        message: DisplayErrorContext(&error).to_string(),
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
                match put.send().await {
                    Ok(_) => Ok(()),
                    // The tag already names this very manifest.
                    Err(error) if matches!(error.as_service_error(), Some(aws_sdk_ecr::operation::put_image::PutImageError::ImageAlreadyExistsException(_))) => Ok(()),
                    Err(error) => Err(ImageError::Ecr {
                        operation: "PutImage",
                        message: DisplayErrorContext(&error).to_string(),
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
                message: DisplayErrorContext(&error).to_string(),
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

fn is_not_found(error: &OciDistributionError) -> bool {
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

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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
