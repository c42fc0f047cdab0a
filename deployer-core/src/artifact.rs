//! What a service should run: an image in a registry, a zip built in process, or a set of
//! configuration items read from the repository.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::DeployError;

/// The artifact a deploy rolls a service over to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Artifact {
    /// A container image in a registry.
    Image(ImageArtifact),
    /// A Lambda deployment package built in process.
    Zip(ZipArtifact),
    /// A set of configuration items, read and validated in process.
    Config(ConfigArtifact),
}

impl Artifact {
    /// The content tag (the hash of the service's inputs).
    pub fn tag(&self) -> &str {
        match self {
            Artifact::Image(image) => &image.tag,
            Artifact::Zip(zip) => &zip.tag,
            Artifact::Config(config) => &config.tag,
        }
    }

    /// The identity a deployer writes into the live service: the digest-pinned image URI when
    /// the digest is known (else the tag URI), the zip's base64 SHA-256, or the config set's
    /// `sha256:<hex>`.
    pub fn deploy_id(&self) -> String {
        match self {
            Artifact::Image(image) => image.deploy_uri(),
            Artifact::Zip(zip) => zip.sha256_b64.clone(),
            Artifact::Config(config) => config.id(),
        }
    }

    /// Whether the live artifact identity (as the service reports it) is this artifact.
    pub fn matches_live(&self, live: &str) -> bool {
        match self {
            Artifact::Image(image) => image.matches(live),
            Artifact::Zip(zip) => zip.sha256_b64 == live,
            Artifact::Config(config) => config.id() == live,
        }
    }

    /// The image, for a deployer of image targets; for a zip or a config set, the
    /// [`DeployError::Mismatch`] that says `target` deploys images.
    pub fn expect_image(&self, target: &str) -> Result<&ImageArtifact, DeployError> {
        match self {
            Artifact::Image(image) => Ok(image),
            Artifact::Zip(_) | Artifact::Config(_) => Err(DeployError::Mismatch(format!(
                "{target} deploys images, not {self}"
            ))),
        }
    }

    /// The zip, for a deployer of zip functions; for an image or a config set, the
    /// [`DeployError::Mismatch`] that says `target` deploys zips.
    pub fn expect_zip(&self, target: &str) -> Result<&ZipArtifact, DeployError> {
        match self {
            Artifact::Zip(zip) => Ok(zip),
            Artifact::Image(_) | Artifact::Config(_) => Err(DeployError::Mismatch(format!(
                "{target} deploys zips, not {self}"
            ))),
        }
    }
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Artifact::Image(image) => f.write_str(&image.deploy_uri()),
            Artifact::Zip(zip) => write!(f, "zip {} (sha256 {})", zip.tag, zip.sha256_b64),
            Artifact::Config(config) if config.bytes.is_empty() => {
                write!(f, "config set {}", config.tag)
            }
            Artifact::Config(config) => {
                write!(f, "config set {} ({} items)", config.tag, config.items)
            }
        }
    }
}

/// An image identified by repository, content tag and (once pushed) digest.
///
/// Deployers roll services over to the digest form `registry/repo@sha256:…` whenever the digest
/// is known: a tag can be moved, a digest cannot, so a rollback to a recorded digest brings back
/// exactly the bytes that ran before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageArtifact {
    /// `registry/repository` without tag or digest, e.g.
    /// `123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/app-api`.
    pub repository_uri: String,
    /// The content tag computed by the hasher.
    pub tag: String,
    /// `sha256:…` manifest digest, once the image is known to be in the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl ImageArtifact {
    /// The image a reference names: `repo@sha256:…`, `repo:tag@sha256:…` or `repo:tag` (then
    /// without a digest). `None` for a reference with neither a tag nor a digest.
    pub fn from_reference(reference: &str) -> Option<ImageArtifact> {
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name, Some(digest.to_owned())),
            None => (reference, None),
        };
        let (repository, tag) = split_tag(name);
        if repository.is_empty() || (tag.is_none() && digest.is_none()) {
            return None;
        }
        Some(ImageArtifact {
            repository_uri: repository.to_owned(),
            tag: tag.unwrap_or_default().to_owned(),
            digest,
        })
    }

    /// `repository_uri:tag`.
    pub fn tag_uri(&self) -> String {
        format!("{}:{}", self.repository_uri, self.tag)
    }

    /// `repository_uri@digest`, when the digest is known.
    pub fn digest_uri(&self) -> Option<String> {
        self.digest
            .as_ref()
            .map(|digest| format!("{}@{}", self.repository_uri, digest))
    }

    /// The URI deployers write: the digest form when known, else the tag form.
    pub fn deploy_uri(&self) -> String {
        self.digest_uri().unwrap_or_else(|| self.tag_uri())
    }

    /// Whether a live image reference names this image, by tag or by digest.
    ///
    /// `repo:tag`, `repo@digest` and `repo:tag@digest` all match; a different repository never
    /// does, even with the same tag.
    pub fn matches(&self, live: &str) -> bool {
        let (name, digest) = match live.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (live, None),
        };
        let (repo, tag) = split_tag(name);
        if repo != self.repository_uri {
            return false;
        }
        match (digest, &self.digest) {
            (Some(live_digest), Some(wanted)) => live_digest == wanted,
            (Some(_), None) => false,
            (None, _) => tag == Some(self.tag.as_str()),
        }
    }
}

/// Splits `registry:port/repo:tag` into the name and the tag (a `:` after the last `/`).
pub(crate) fn split_tag(name: &str) -> (&str, Option<&str>) {
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[slash..].rfind(':') {
        Some(colon) => (&name[..slash + colon], Some(&name[slash + colon + 1..])),
        None => (name, None),
    }
}

/// A deterministic Lambda zip built in process.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZipArtifact {
    /// The content tag: derived from the zip's SHA-256.
    pub tag: String,
    /// base64(sha256(zip)), the form Lambda reports as `CodeSha256`.
    pub sha256_b64: String,
    /// Size of the zip in bytes.
    pub size: u64,
    /// Number of files in the zip.
    pub files: usize,
    /// The zip itself (not serialized).
    #[serde(skip)]
    pub bytes: Arc<[u8]>,
}

impl fmt::Debug for ZipArtifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZipArtifact")
            .field("tag", &self.tag)
            .field("sha256_b64", &self.sha256_b64)
            .field("size", &self.size)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// A set of configuration items in its canonical form: the document `deployer-config` writes
/// (and keeps a copy of) and whose SHA-256 is the service's tag.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigArtifact {
    /// The content tag: the first 24 hex digits of `sha256`.
    pub tag: String,
    /// The hex SHA-256 of `bytes`.
    pub sha256: String,
    /// How many items (rows or parameters) the set has.
    pub items: usize,
    /// The canonical set document (not serialized; empty when only the identity is known, e.g.
    /// a set named by a record).
    #[serde(skip)]
    pub bytes: Arc<[u8]>,
}

impl ConfigArtifact {
    /// The identity recorded and compared with what the store says it holds: `sha256:<hex>`.
    pub fn id(&self) -> String {
        format!("sha256:{}", self.sha256)
    }

    /// The set named by a recorded identity (`sha256:<hex>`), without its content.
    pub fn named(identity: &str, tag: &str) -> Option<ConfigArtifact> {
        let hex = identity.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| ConfigArtifact {
            tag: tag.to_owned(),
            sha256: hex.to_owned(),
            items: 0,
            bytes: Arc::from(Vec::new()),
        })
    }
}

impl fmt::Debug for ConfigArtifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigArtifact")
            .field("tag", &self.tag)
            .field("sha256", &self.sha256)
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(digest: Option<&str>) -> ImageArtifact {
        ImageArtifact {
            repository_uri: "127.0.0.1:5000/acme/app".into(),
            tag: "abc".into(),
            digest: digest.map(Into::into),
        }
    }

    #[test]
    fn matches_by_tag_or_digest() {
        let pushed = image(Some("sha256:1"));
        assert!(pushed.matches("127.0.0.1:5000/acme/app:abc"));
        assert!(pushed.matches("127.0.0.1:5000/acme/app@sha256:1"));
        assert!(pushed.matches("127.0.0.1:5000/acme/app:old@sha256:1"));
        assert!(!pushed.matches("127.0.0.1:5000/acme/app@sha256:2"));
        assert!(!pushed.matches("127.0.0.1:5000/acme/app:def"));
        assert!(!pushed.matches("127.0.0.1:5000/acme/other:abc"));
        assert!(!pushed.matches("127.0.0.1:5000/acme/app"));
        let unpushed = image(None);
        assert!(unpushed.matches("127.0.0.1:5000/acme/app:abc"));
        assert!(!unpushed.matches("127.0.0.1:5000/acme/app@sha256:1"));
    }

    #[test]
    fn deploy_uri_prefers_digest() {
        assert_eq!(
            image(Some("sha256:1")).deploy_uri(),
            "127.0.0.1:5000/acme/app@sha256:1"
        );
        assert_eq!(image(None).deploy_uri(), "127.0.0.1:5000/acme/app:abc");
    }

    #[test]
    fn references_parse_into_images() {
        let pinned = ImageArtifact::from_reference("h:5000/a/b@sha256:1").unwrap();
        assert_eq!(pinned.repository_uri, "h:5000/a/b");
        assert_eq!(pinned.digest.as_deref(), Some("sha256:1"));
        assert_eq!(pinned.deploy_uri(), "h:5000/a/b@sha256:1");
        let tagged = ImageArtifact::from_reference("h:5000/a/b:bootstrap").unwrap();
        assert_eq!(tagged.deploy_uri(), "h:5000/a/b:bootstrap");
        assert_eq!((tagged.tag.as_str(), tagged.digest), ("bootstrap", None));
        let both = ImageArtifact::from_reference("h/a:t@sha256:2").unwrap();
        assert_eq!(
            (both.tag.as_str(), both.digest.as_deref()),
            ("t", Some("sha256:2"))
        );
        assert!(ImageArtifact::from_reference("h:5000/a/b").is_none());
    }

    #[test]
    fn a_deployer_refuses_the_other_kind_of_artifact_by_name() {
        let wanted = Artifact::Image(image(Some("sha256:1")));
        assert_eq!(
            wanted.expect_image("t").ok(),
            Some(&image(Some("sha256:1")))
        );
        let error = wanted.expect_zip("Lambda function f").unwrap_err();
        assert_eq!(
            error.to_string(),
            "Lambda function f deploys zips, not 127.0.0.1:5000/acme/app@sha256:1"
        );
        assert!(error.is_config());
    }

    #[test]
    fn a_config_set_is_named_by_its_hash() {
        let hex = "ab".repeat(32);
        let named = ConfigArtifact::named(&format!("sha256:{hex}"), "t").unwrap();
        let artifact = Artifact::Config(named);
        assert_eq!(artifact.deploy_id(), format!("sha256:{hex}"));
        assert!(artifact.matches_live(&format!("sha256:{hex}")));
        assert!(!artifact.matches_live(&format!("sha256:{}", "cd".repeat(32))));
        assert!(ConfigArtifact::named("sha256:xyz", "t").is_none());
        assert!(ConfigArtifact::named(&hex, "t").is_none());
    }

    #[test]
    fn split_tag_ignores_port() {
        assert_eq!(split_tag("host:5000/a/b"), ("host:5000/a/b", None));
        assert_eq!(split_tag("host:5000/a/b:t"), ("host:5000/a/b", Some("t")));
    }
}
