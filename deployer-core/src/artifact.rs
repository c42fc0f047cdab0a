//! What a service should run: an image in a registry, or a zip built in process.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The artifact a deploy rolls a service over to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Artifact {
    /// A container image in a registry.
    Image(ImageArtifact),
    /// A Lambda deployment package built in process.
    Zip(ZipArtifact),
}

impl Artifact {
    /// The content tag (the hash of the service's inputs).
    pub fn tag(&self) -> &str {
        match self {
            Artifact::Image(image) => &image.tag,
            Artifact::Zip(zip) => &zip.tag,
        }
    }

    /// The identity a deployer writes into the live service: the digest-pinned image URI when
    /// the digest is known (else the tag URI), or the zip's base64 SHA-256.
    pub fn deploy_id(&self) -> String {
        match self {
            Artifact::Image(image) => image.deploy_uri(),
            Artifact::Zip(zip) => zip.sha256_b64.clone(),
        }
    }

    /// Whether the live artifact identity (as the service reports it) is this artifact.
    pub fn matches_live(&self, live: &str) -> bool {
        match self {
            Artifact::Image(image) => image.matches(live),
            Artifact::Zip(zip) => zip.sha256_b64 == live,
        }
    }
}

impl fmt::Display for Artifact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Artifact::Image(image) => f.write_str(&image.deploy_uri()),
            Artifact::Zip(zip) => write!(f, "zip {} (sha256 {})", zip.tag, zip.sha256_b64),
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
    fn split_tag_ignores_port() {
        assert_eq!(split_tag("host:5000/a/b"), ("host:5000/a/b", None));
        assert_eq!(split_tag("host:5000/a/b:t"), ("host:5000/a/b", Some("t")));
    }
}
