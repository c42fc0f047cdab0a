//! Base images: the digest a registry serves now for a Dockerfile's `FROM name:tag`.
//!
//! With `base_images = "resolve"`, a service's content tag includes these digests, so a base
//! image patched under the same tag gives a new tag and a rebuild. One `HEAD` per distinct
//! reference per run ([`BaseImageResolver`] caches), independent of the project's registry.
//!
//! - References are read the way Docker reads them: `alpine:3.20` is
//!   `docker.io/library/alpine:3.20` (asked at `index.docker.io`), no tag means `latest`.
//! - `name@sha256:…` is content already: its digest is returned without a request. `scratch`
//!   is no image: `None`, without a request.
//! - Credentials are the ones the builder would use: the Docker config
//!   (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, with its credential helpers),
//!   then podman's and buildah's `auth.json`; else anonymous (Docker Hub hands out anonymous
//!   pull tokens). The project registry's `DEPLOYER_REGISTRY_*` variables are deliberately not
//!   used: they are meant for one registry, and a base image may come from any other.
//! - Loopback registries (`localhost`, `127.*`) are spoken to over plain HTTP, as the builders
//!   do; every other one over HTTPS.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use deployer_core::one_line;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tokio::sync::OnceCell;

use crate::ImageError;
use crate::builder::is_loopback;
use crate::registry::{install_crypto, is_not_found};

/// Resolves base image references to the digests their registries serve now, asking each
/// registry once per distinct reference for the resolver's lifetime (one run).
#[derive(Default)]
pub struct BaseImageResolver {
    digests: Mutex<HashMap<String, Arc<OnceCell<Option<String>>>>>,
    clients: Mutex<HashMap<String, Arc<(Client, RegistryAuth)>>>,
    requests: AtomicUsize,
}

impl std::fmt::Debug for BaseImageResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseImageResolver")
            .field("requests", &self.requests())
            .finish_non_exhaustive()
    }
}

impl BaseImageResolver {
    /// A resolver with nothing cached.
    pub fn new() -> Self {
        BaseImageResolver::default()
    }

    /// The digest (`sha256:…`) the registry serves now for `reference` (`name[:tag]`,
    /// `host[:port]/name[:tag]`, or `name@sha256:…`); `None` when the registry has no such
    /// tag, and for `scratch`. Concurrent and repeated calls for one reference (as written or
    /// in its full form) share one request; a failed request is not remembered.
    pub async fn resolve(&self, reference: &str) -> Result<Option<String>, ImageError> {
        let reference = reference.trim();
        if reference == "scratch" {
            return Ok(None);
        }
        let parsed = parse(reference)?;
        if let Some(digest) = parsed.digest() {
            return Ok(Some(digest.to_owned()));
        }
        let cell = {
            let mut digests = self.digests.lock().unwrap_or_else(PoisonError::into_inner);
            digests.entry(parsed.whole()).or_default().clone()
        };
        cell.get_or_try_init(|| self.head(reference, &parsed))
            .await
            .cloned()
    }

    /// How many registry requests this resolver has made (one per distinct reference).
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    async fn head(
        &self,
        written: &str,
        reference: &Reference,
    ) -> Result<Option<String>, ImageError> {
        let registry = reference.resolve_registry().to_owned();
        let client = self.client(&registry).await?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (client, auth) = &*client;
        match client.fetch_manifest_digest(reference, auth).await {
            Ok(digest) => Ok(Some(digest)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(ImageError::Registry {
                registry,
                reference: written.to_owned(),
                message: one_line(&error.to_string()),
            }),
        }
    }

    /// One distribution client (and its credentials) per registry host.
    async fn client(&self, registry: &str) -> Result<Arc<(Client, RegistryAuth)>, ImageError> {
        if let Some(client) = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(registry)
        {
            return Ok(client.clone());
        }
        // Credential helpers are programs: ask them off the async threads.
        let host = registry.to_owned();
        let auth = tokio::task::spawn_blocking(move || builder_auth(&host))
            .await
            .unwrap_or(RegistryAuth::Anonymous);
        install_crypto();
        let protocol = if is_loopback(registry) {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        };
        let client = Arc::new((
            Client::new(ClientConfig {
                protocol,
                ..ClientConfig::default()
            }),
            auth,
        ));
        Ok(self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(registry.to_owned())
            .or_insert(client)
            .clone())
    }
}

/// The digest a registry serves now for the image `reference` (see [`BaseImageResolver`],
/// which also caches; this asks every time).
pub async fn resolve_base_image(reference: &str) -> Result<Option<String>, ImageError> {
    BaseImageResolver::new().resolve(reference).await
}

/// Parses a reference with Docker's defaults (`docker.io`, `library/`, `latest`).
fn parse(reference: &str) -> Result<Reference, ImageError> {
    Reference::from_str(reference).map_err(|error| ImageError::InvalidReference {
        reference: reference.to_owned(),
        message: one_line(&error.to_string()),
    })
}

/// The credentials the builder would use for `registry` (a resolved host: `index.docker.io`
/// for Docker Hub): the Docker config, then podman's `auth.json`; else anonymous.
fn builder_auth(registry: &str) -> RegistryAuth {
    // Docker keeps Docker Hub's credentials under its v1 index URL.
    let key = if registry == "index.docker.io" {
        "https://index.docker.io/v1/"
    } else {
        registry
    };
    let found = docker_credential::get_credential(key)
        .or_else(|_| docker_credential::get_podman_credential(registry));
    match found {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => {
            RegistryAuth::Basic(user, password)
        }
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => {
            RegistryAuth::Bearer(token)
        }
        Err(_) => RegistryAuth::Anonymous,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker's defaults: Docker Hub, `library/`, `latest`.
    #[test]
    fn references_read_as_docker_reads_them() {
        let alpine = parse("alpine:3.20").unwrap();
        assert_eq!(alpine.resolve_registry(), "index.docker.io");
        assert_eq!(alpine.repository(), "library/alpine");
        assert_eq!(alpine.tag(), Some("3.20"));
        let latest = parse("python").unwrap();
        assert_eq!(latest.repository(), "library/python");
        assert_eq!(latest.tag(), Some("latest"));
        let local = parse("127.0.0.1:5000/base/app:1").unwrap();
        assert_eq!(local.resolve_registry(), "127.0.0.1:5000");
        assert_eq!(local.repository(), "base/app");
        assert!(is_loopback(local.resolve_registry()));
        let ecr = parse("123456789012.dkr.ecr.eu-west-1.amazonaws.com/base:2").unwrap();
        assert_eq!(
            ecr.resolve_registry(),
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        );
        // `alpine:3.20` and its full form share one cache entry.
        assert_eq!(
            alpine.whole(),
            parse("docker.io/library/alpine:3.20").unwrap().whole()
        );
    }

    /// A digest reference is content already; `scratch` is no image: no request either way
    /// (the host does not even listen).
    #[tokio::test]
    async fn digests_and_scratch_need_no_request() {
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let resolver = BaseImageResolver::new();
        assert_eq!(
            resolver
                .resolve(&format!("127.0.0.1:1/base/app@{digest}"))
                .await
                .unwrap()
                .as_deref(),
            Some(digest)
        );
        assert_eq!(
            resolver
                .resolve(&format!("127.0.0.1:1/base/app:1@{digest}"))
                .await
                .unwrap()
                .as_deref(),
            Some(digest)
        );
        assert_eq!(resolver.resolve("scratch").await.unwrap(), None);
        assert_eq!(resolver.requests(), 0);
    }

    #[tokio::test]
    async fn a_bad_reference_is_a_config_error() {
        let error = resolve_base_image("Not A Reference!").await.unwrap_err();
        assert!(error.is_config(), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("`Not A Reference!` is not an image reference")
        );
    }

    /// A registry that does not answer is an error naming it, and the failure is not cached.
    #[tokio::test]
    async fn an_unreachable_registry_is_an_error_each_time() {
        let resolver = BaseImageResolver::new();
        for _ in 0..2 {
            let error = resolver
                .resolve("127.0.0.1:1/base/app:1")
                .await
                .unwrap_err();
            assert!(!error.is_config());
            assert!(
                error
                    .to_string()
                    .starts_with("cannot ask 127.0.0.1:1 about `127.0.0.1:1/base/app:1`"),
                "{error}"
            );
        }
        assert_eq!(resolver.requests(), 2);
    }
}
