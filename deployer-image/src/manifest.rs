//! What a registry holds under a tag (manifest media type, image or index, platform), and
//! whether a target accepts it.
//!
//! Lambda and AgentCore take a single-platform image manifest only (Docker v2 schema 2 or
//! OCI); given an index — what `docker buildx build` pushes by default, with provenance
//! attestations — Lambda fails remotely with "image manifest media type not supported".
//! [`check_accepted`] says so before anything is changed, and also refuses an image built for
//! another platform than the service's (a tag built elsewhere is reported, not reused).

use deployer_core::manifest::Platform;

use crate::ImageError;

/// Docker v2 schema 2 image manifest.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Every manifest type deployer reads (the `Accept` header, ECR's `acceptedMediaTypes`).
pub(crate) const ACCEPTED: [&str; 4] = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST];

/// What the registry holds under a tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestInfo {
    /// The reference asked about, `registry/repository:tag` (or `@digest`), for messages.
    pub reference: String,
    /// The manifest's digest, `sha256:…`.
    pub digest: String,
    /// The manifest's media type.
    pub media_type: String,
    /// An image manifest or an index.
    pub kind: ManifestKind,
    /// The image's platform, from its config blob; `None` for an index, or when the config
    /// names none.
    pub platform: Option<Platform>,
    /// Why the platform could not be read, when the registry would not serve the config blob
    /// (ECR's `GetDownloadUrlForLayer` refused): the platform is then not checked.
    pub platform_unread: Option<String>,
}

/// An image manifest or an index of manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    /// One image.
    Image,
    /// An image index (OCI) or manifest list (Docker).
    Index {
        /// What it lists.
        manifests: Vec<IndexEntry>,
    },
}

/// One entry of an index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The manifest's digest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// The platform the index gives it.
    pub platform: Option<Platform>,
    /// Whether it is an attestation manifest (buildx's provenance or SBOM:
    /// `vnd.docker.reference.type: attestation-manifest`, platform `unknown/unknown`).
    pub attestation: bool,
}

impl ManifestInfo {
    /// Whether this is one image manifest of a type Lambda and AgentCore take (Docker v2
    /// schema 2 or OCI).
    pub fn is_single_image(&self) -> bool {
        self.kind == ManifestKind::Image
            && [DOCKER_MANIFEST, OCI_MANIFEST].contains(&self.media_type.as_str())
    }
}

/// Whether a target can run the image `info` describes: `Ok` when it can, else a configuration
/// error ([`ImageError::is_config`]) naming the problem and the fix.
///
/// - `needs_single_manifest` (Lambda, AgentCore): an index, or a manifest type other than
///   Docker v2 schema 2 / OCI image, is refused ([`ImageError::NotSingleManifest`]).
/// - Otherwise an index must list a (non-attestation) image for `wanted_platform`.
/// - An image whose config names another platform than `wanted_platform` is refused
///   ([`ImageError::WrongPlatform`]): it was built elsewhere under the same tag. `arm64` and
///   `arm64/v8` are the same platform; variants are compared only when both name one.
pub fn check_accepted(
    info: &ManifestInfo,
    wanted_platform: &str,
    needs_single_manifest: bool,
) -> Result<(), ImageError> {
    let wanted = Platform::parse(wanted_platform).map_err(|_| ImageError::InvalidPlatform {
        platform: wanted_platform.to_owned(),
    })?;
    match &info.kind {
        ManifestKind::Index { manifests } => {
            if needs_single_manifest {
                return Err(ImageError::NotSingleManifest {
                    image: info.reference.clone(),
                    what: describe_index(manifests),
                    media_type: info.media_type.clone(),
                });
            }
            let listed = manifests.iter().any(|entry| {
                !entry.attestation
                    && entry
                        .platform
                        .as_ref()
                        .is_some_and(|platform| same_platform(platform, &wanted))
            });
            if listed {
                Ok(())
            } else {
                Err(ImageError::WrongPlatform {
                    image: info.reference.clone(),
                    found: describe_index(manifests),
                    wanted: wanted.to_string(),
                })
            }
        }
        ManifestKind::Image => {
            if needs_single_manifest && !info.is_single_image() {
                return Err(ImageError::NotSingleManifest {
                    image: info.reference.clone(),
                    what: "a manifest of another type".into(),
                    media_type: info.media_type.clone(),
                });
            }
            match &info.platform {
                Some(found) if !same_platform(found, &wanted) => Err(ImageError::WrongPlatform {
                    image: info.reference.clone(),
                    found: found.to_string(),
                    wanted: wanted.to_string(),
                }),
                _ => Ok(()),
            }
        }
    }
}

/// `os` and architecture equal; variants equal when both are named (`arm64` = `arm64/v8`).
fn same_platform(found: &Platform, wanted: &Platform) -> bool {
    let variant = |platform: &Platform| {
        platform
            .variant
            .clone()
            .filter(|variant| !(platform.arch == "arm64" && variant == "v8"))
    };
    found.os == wanted.os
        && found.arch == wanted.arch
        && match (variant(found), variant(wanted)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

/// `an image index of linux/amd64, linux/arm64 with 2 attestation manifests`.
fn describe_index(manifests: &[IndexEntry]) -> String {
    let platforms: Vec<String> = manifests
        .iter()
        .filter(|entry| !entry.attestation)
        .map(|entry| {
            entry
                .platform
                .as_ref()
                .map_or_else(|| "an image of no platform".to_owned(), ToString::to_string)
        })
        .collect();
    let attestations = manifests.iter().filter(|entry| entry.attestation).count();
    let mut text = if platforms.is_empty() {
        "an image index of no image".to_owned()
    } else {
        format!("an image index of {}", platforms.join(", "))
    };
    match attestations {
        0 => {}
        1 => text.push_str(" with 1 attestation manifest"),
        n => text.push_str(&format!(" with {n} attestation manifests")),
    }
    text
}

/// A manifest as read, before its config blob is.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub(crate) media_type: String,
    pub(crate) kind: ManifestKind,
    /// The config blob's digest (image manifests).
    pub(crate) config: Option<String>,
}

/// Reads a manifest; `declared` is the media type the registry gave beside it, if any.
pub(crate) fn parse(body: &[u8], declared: Option<&str>) -> Result<Parsed, String> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| format!("the manifest is not JSON: {error}"))?;
    let text = |value: &serde_json::Value, key: &str| {
        value.get(key).and_then(|v| v.as_str()).map(str::to_owned)
    };
    let entries = json.get("manifests").and_then(|m| m.as_array());
    let media_type = text(&json, "mediaType")
        .or_else(|| declared.map(str::to_owned))
        .unwrap_or_else(|| {
            // OCI makes `mediaType` optional: tell by the shape.
            if json.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1) {
                "application/vnd.docker.distribution.manifest.v1+prettyjws".to_owned()
            } else if entries.is_some() {
                OCI_INDEX.to_owned()
            } else {
                OCI_MANIFEST.to_owned()
            }
        });
    let is_index = media_type == OCI_INDEX
        || media_type == DOCKER_LIST
        || (entries.is_some() && json.get("config").is_none());
    if is_index {
        let manifests = entries
            .map(|entries| {
                entries
                    .iter()
                    .map(|entry| {
                        let platform = entry.get("platform").and_then(platform_of);
                        let reference_type = entry
                            .get("annotations")
                            .and_then(|a| a.get("vnd.docker.reference.type"))
                            .and_then(|v| v.as_str());
                        let unknown = platform
                            .as_ref()
                            .is_some_and(|p| p.os == "unknown" && p.arch == "unknown");
                        IndexEntry {
                            digest: text(entry, "digest").unwrap_or_default(),
                            media_type: text(entry, "mediaType").unwrap_or_default(),
                            attestation: unknown || reference_type == Some("attestation-manifest"),
                            platform,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        return Ok(Parsed {
            media_type,
            kind: ManifestKind::Index { manifests },
            config: None,
        });
    }
    Ok(Parsed {
        media_type,
        kind: ManifestKind::Image,
        config: json.get("config").and_then(|config| text(config, "digest")),
    })
}

/// The platform an image config blob names (`os`, `architecture`, `variant`).
pub(crate) fn config_platform(body: &[u8]) -> Result<Option<Platform>, String> {
    let json: serde_json::Value = serde_json::from_slice(body)
        .map_err(|error| format!("the image config is not JSON: {error}"))?;
    Ok(platform_of(&json))
}

fn platform_of(value: &serde_json::Value) -> Option<Platform> {
    let field = |key: &str| {
        value
            .get(key)
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    Some(Platform {
        os: field("os")?,
        arch: field("architecture")?,
        variant: field("variant"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(platform: &str, media_type: &str) -> ManifestInfo {
        ManifestInfo {
            reference: "127.0.0.1:5000/acme/api:3f2a".into(),
            digest: "sha256:aa".into(),
            media_type: media_type.into(),
            kind: ManifestKind::Image,
            platform: Some(Platform::parse(platform).unwrap()),
            platform_unread: None,
        }
    }

    /// What `docker buildx build --push` makes by default: the image and a provenance
    /// attestation in one OCI index.
    const BUILDX_INDEX: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.oci.image.index.v1+json",
      "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:11", "size": 1,
         "platform": {"architecture": "arm64", "os": "linux"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:22", "size": 1,
         "annotations": {"vnd.docker.reference.digest": "sha256:11", "vnd.docker.reference.type": "attestation-manifest"},
         "platform": {"architecture": "unknown", "os": "unknown"}}
      ]
    }"#;

    fn index() -> ManifestInfo {
        let parsed = parse(BUILDX_INDEX.as_bytes(), None).unwrap();
        ManifestInfo {
            reference: "127.0.0.1:5000/acme/api:3f2a".into(),
            digest: "sha256:ii".into(),
            media_type: parsed.media_type,
            kind: parsed.kind,
            platform: None,
            platform_unread: None,
        }
    }

    #[test]
    fn parses_a_buildx_index_with_its_attestation() {
        let info = index();
        assert_eq!(info.media_type, OCI_INDEX);
        let ManifestKind::Index { manifests } = &info.kind else {
            panic!("{info:?}")
        };
        assert_eq!(manifests.len(), 2);
        assert_eq!(
            manifests[0].platform.as_ref().map(ToString::to_string),
            Some("linux/arm64".into())
        );
        assert!(!manifests[0].attestation);
        assert!(manifests[1].attestation);
    }

    #[test]
    fn parses_image_manifests_with_and_without_a_media_type() {
        let docker = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
            "config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:cc","size":1},"layers":[]}"#;
        let parsed = parse(docker.as_bytes(), None).unwrap();
        assert_eq!(parsed.media_type, DOCKER_MANIFEST);
        assert_eq!(parsed.kind, ManifestKind::Image);
        assert_eq!(parsed.config.as_deref(), Some("sha256:cc"));
        // OCI leaves `mediaType` optional: the shape decides, or the registry's header.
        let bare = r#"{"schemaVersion":2,"config":{"digest":"sha256:cc"},"layers":[]}"#;
        assert_eq!(
            parse(bare.as_bytes(), None).unwrap().media_type,
            OCI_MANIFEST
        );
        assert_eq!(
            parse(bare.as_bytes(), Some(DOCKER_MANIFEST))
                .unwrap()
                .media_type,
            DOCKER_MANIFEST
        );
        let bare_index = r#"{"schemaVersion":2,"manifests":[]}"#;
        let parsed = parse(bare_index.as_bytes(), None).unwrap();
        assert_eq!(parsed.media_type, OCI_INDEX);
        assert!(matches!(parsed.kind, ManifestKind::Index { .. }));
        assert!(parse(b"<html>", None).is_err());
    }

    #[test]
    fn reads_the_platform_from_the_config() {
        let config = br#"{"architecture":"arm64","os":"linux","variant":"v8","rootfs":{}}"#;
        assert_eq!(
            config_platform(config).unwrap().map(|p| p.to_string()),
            Some("linux/arm64/v8".into())
        );
        assert_eq!(config_platform(br#"{"rootfs":{}}"#).unwrap(), None);
    }

    /// Lambda and AgentCore: an index is refused before the deploy, naming the media type,
    /// what the index holds, and how to push a single manifest.
    #[test]
    fn an_index_is_refused_where_a_single_manifest_is_needed() {
        let error = check_accepted(&index(), "linux/arm64", true).unwrap_err();
        assert!(error.is_config(), "{error:?}");
        assert_eq!(
            error.to_string(),
            "`127.0.0.1:5000/acme/api:3f2a` is an image index of linux/arm64 with 1 attestation manifest (application/vnd.oci.image.index.v1+json), but Lambda and AgentCore accept only a single-platform image manifest: build it for one platform without attestations (`docker buildx build --provenance=false --sbom=false --platform …`, as deployer's own builds do) and push it again, or delete the tag so deployer builds it"
        );
        // ECS and SageMaker take an index that lists the platform.
        check_accepted(&index(), "linux/arm64", false).unwrap();
        let error = check_accepted(&index(), "linux/amd64", false).unwrap_err();
        assert!(
            matches!(&error, ImageError::WrongPlatform { found, .. } if found == "an image index of linux/arm64 with 1 attestation manifest"),
            "{error:?}"
        );
    }

    #[test]
    fn an_image_of_another_platform_is_reported_not_reused() {
        let info = image("linux/amd64", DOCKER_MANIFEST);
        for single in [true, false] {
            let error = check_accepted(&info, "linux/arm64", single).unwrap_err();
            assert!(error.is_config());
            assert_eq!(
                error.to_string(),
                "`127.0.0.1:5000/acme/api:3f2a` in the registry is linux/amd64, the service wants linux/arm64: it was built elsewhere and deployer does not reuse it; delete the tag or fix `platform`"
            );
        }
        check_accepted(&info, "linux/amd64", true).unwrap();
        check_accepted(&image("linux/arm64/v8", OCI_MANIFEST), "linux/arm64", true).unwrap();
        check_accepted(&image("linux/arm64", OCI_MANIFEST), "linux/arm64/v8", true).unwrap();
        assert!(
            check_accepted(&image("linux/arm/v6", OCI_MANIFEST), "linux/arm/v7", true).is_err()
        );
        // An image whose config names no platform cannot be judged: it passes.
        let mut unknown = image("linux/amd64", DOCKER_MANIFEST);
        unknown.platform = None;
        check_accepted(&unknown, "linux/arm64", true).unwrap();
    }

    #[test]
    fn an_old_manifest_type_is_refused_where_a_single_manifest_is_needed() {
        let info = image(
            "linux/amd64",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
        );
        let error = check_accepted(&info, "linux/amd64", true).unwrap_err();
        assert!(
            matches!(error, ImageError::NotSingleManifest { .. }),
            "{error:?}"
        );
        check_accepted(&info, "linux/amd64", false).unwrap();
    }

    #[test]
    fn a_bad_wanted_platform_is_a_config_error() {
        let error = check_accepted(&index(), "arm64", true).unwrap_err();
        assert!(
            matches!(error, ImageError::InvalidPlatform { .. }),
            "{error:?}"
        );
        assert!(error.is_config());
    }
}
