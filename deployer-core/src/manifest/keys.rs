//! Every key the manifest accepts, the kinds it applies to, and the structural check (unknown
//! keys with "did you mean", unknown kinds, keys missing for a kind).

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostics::Diagnostics;
use super::{Doc, Kind, did_you_mean};

/// A key of the `[project]` table.
#[derive(Debug)]
pub struct ProjectKey {
    /// The key.
    pub name: &'static str,
    /// Whether it must be present.
    pub required: bool,
    /// One line of documentation.
    pub doc: &'static str,
}

/// Keys of `[project]`.
pub const PROJECT: &[ProjectKey] = &[
    ProjectKey {
        name: "name",
        required: true,
        doc: "project name; default SSM prefix is /<name>",
    },
    ProjectKey {
        name: "region",
        required: false,
        doc: "AWS region; default: the AWS config chain",
    },
    ProjectKey {
        name: "ssm_prefix",
        required: false,
        doc: "prefix of the SSM parameters deployer writes; default /<name>",
    },
    ProjectKey {
        name: "registry",
        required: false,
        doc: "registry host[:port]; required when a service builds an image",
    },
    ProjectKey {
        name: "builder",
        required: false,
        doc: "docker | podman | buildah | codebuild; default: the first one found on this machine",
    },
    ProjectKey {
        name: "codebuild",
        required: false,
        doc: "{ project, bucket, compute, arm }: the CodeBuild project and S3 bucket images build with (builder = \"codebuild\")",
    },
    ProjectKey {
        name: "ssm_write",
        required: false,
        doc: "after-rollout (default) | after-push",
    },
    ProjectKey {
        name: "base_images",
        required: false,
        doc: "as-written (default) | resolve: the tag covers the digests FROM tags name now",
    },
    ProjectKey {
        name: "concurrency",
        required: false,
        doc: "services deployed at once; default 4",
    },
];

/// Which kinds a service key applies to.
#[derive(Debug, Clone, Copy)]
pub enum Applies {
    /// Every kind.
    All,
    /// Every kind that builds an image.
    Image,
    /// These kinds only.
    Only(&'static [Kind]),
}

impl Applies {
    /// Whether the key applies to `kind`.
    pub fn includes(self, kind: Kind) -> bool {
        match self {
            Applies::All => true,
            Applies::Image => kind.is_image(),
            Applies::Only(kinds) => kinds.contains(&kind),
        }
    }
}

/// A key of a `[services.<name>]` table.
#[derive(Debug)]
pub struct ServiceKey {
    /// The key.
    pub name: &'static str,
    /// The kinds it applies to.
    pub applies: Applies,
    /// Whether it must be present for those kinds.
    pub required: bool,
    /// One line of documentation.
    pub doc: &'static str,
}

const LAMBDA: &[Kind] = &[Kind::LambdaImage, Kind::LambdaZip];

/// Keys of `[services.<name>]`.
pub const SERVICE: &[ServiceKey] = &[
    ServiceKey {
        name: "kind",
        applies: Applies::All,
        required: true,
        doc: "ecs | agentcore | lambda-image | lambda-zip | sagemaker | config",
    },
    ServiceKey {
        name: "timeout",
        applies: Applies::All,
        required: false,
        doc: "rollout timeout, e.g. \"15m\" (default 15m; Lambda 10m)",
    },
    ServiceKey {
        name: "poll_interval",
        applies: Applies::All,
        required: false,
        doc: "first delay between status polls (default \"2s\", grows to 15s)",
    },
    ServiceKey {
        name: "depends_on",
        applies: Applies::All,
        required: false,
        doc: "services whose rollout must succeed before this one's starts",
    },
    ServiceKey {
        name: "smoke",
        applies: Applies::All,
        required: false,
        doc: "a check after the rollout: { http = … } | { command = [...] } | { invoke = … }",
    },
    ServiceKey {
        name: "rollback_on_smoke_failure",
        applies: Applies::All,
        required: false,
        doc: "roll back when the smoke check fails",
    },
    ServiceKey {
        name: "dockerfile",
        applies: Applies::Image,
        required: true,
        doc: "Dockerfile path",
    },
    ServiceKey {
        name: "context",
        applies: Applies::Image,
        required: false,
        doc: "build context directory (default \".\")",
    },
    ServiceKey {
        name: "platform",
        applies: Applies::Image,
        required: true,
        doc: "linux/amd64 or linux/arm64",
    },
    ServiceKey {
        name: "inputs",
        applies: Applies::Image,
        required: false,
        doc: "globs of the files whose content decides the image; default: derived from the Dockerfile's COPY/ADD sources",
    },
    ServiceKey {
        name: "repository",
        applies: Applies::Image,
        required: true,
        doc: "repository name in the registry",
    },
    ServiceKey {
        name: "build_args",
        applies: Applies::Image,
        required: false,
        doc: "table of --build-arg values",
    },
    ServiceKey {
        name: "builder",
        applies: Applies::Image,
        required: false,
        doc: "codebuild | local: where this image builds (default: [project] builder)",
    },
    ServiceKey {
        name: "codebuild",
        applies: Applies::Image,
        required: false,
        doc: "{ project, bucket, compute, arm } over [project]'s, for builder = \"codebuild\"",
    },
    ServiceKey {
        name: "iac",
        applies: Applies::Image,
        required: false,
        doc: "the IaC owning the target, for the revert guard: { cfn_stack = \"…\" } | { tf_state = \"…\", address = \"…\" }, optional ignores_image = true (default: the target's aws:cloudformation:stack-name tag)",
    },
    ServiceKey {
        name: "cluster",
        applies: Applies::Only(&[Kind::Ecs]),
        required: true,
        doc: "ECS cluster name or ARN",
    },
    ServiceKey {
        name: "service",
        applies: Applies::Only(&[Kind::Ecs]),
        required: true,
        doc: "ECS service name or ARN",
    },
    ServiceKey {
        name: "container",
        applies: Applies::Only(&[Kind::Ecs]),
        required: false,
        doc: "container whose image is replaced",
    },
    ServiceKey {
        name: "force_new_deployment",
        applies: Applies::Only(&[Kind::Ecs]),
        required: false,
        doc: "roll with --force-new-deployment (mutable tags)",
    },
    ServiceKey {
        name: "restart_on_dependency_change",
        applies: Applies::Only(&[Kind::Ecs]),
        required: false,
        doc: "force a new deployment when a dependency changed",
    },
    ServiceKey {
        name: "runtime_id",
        applies: Applies::Only(&[Kind::Agentcore]),
        required: true,
        doc: "AgentCore runtime id",
    },
    ServiceKey {
        name: "endpoints",
        applies: Applies::Only(&[Kind::Agentcore]),
        required: false,
        doc: "named runtime endpoints moved to each new version (default: none besides DEFAULT)",
    },
    ServiceKey {
        name: "endpoint",
        applies: Applies::Only(&[Kind::Sagemaker]),
        required: true,
        doc: "SageMaker endpoint name",
    },
    ServiceKey {
        name: "variant",
        applies: Applies::Only(&[Kind::Sagemaker]),
        required: false,
        doc: "production variant (default: those using the repository)",
    },
    ServiceKey {
        name: "blue_green",
        applies: Applies::Only(&[Kind::Sagemaker]),
        required: false,
        doc: "blue/green update: { traffic, canary_percent, wait_interval, rollback_alarms, … }",
    },
    ServiceKey {
        name: "keep",
        applies: Applies::Only(&[Kind::Sagemaker]),
        required: false,
        doc: "earlier models and configs kept (default 2)",
    },
    ServiceKey {
        name: "function",
        applies: Applies::Only(LAMBDA),
        required: true,
        doc: "Lambda function name or ARN",
    },
    ServiceKey {
        name: "publish",
        applies: Applies::Only(LAMBDA),
        required: false,
        doc: "publish a version after the update",
    },
    ServiceKey {
        name: "alias",
        applies: Applies::Only(LAMBDA),
        required: false,
        doc: "alias pointed at the published version",
    },
    ServiceKey {
        name: "source",
        applies: Applies::Only(&[Kind::LambdaZip, Kind::Config]),
        required: true,
        doc: "directory zipped (lambda-zip); directory of JSON, TOML and YAML item files (config)",
    },
    ServiceKey {
        name: "exclude",
        applies: Applies::Only(&[Kind::LambdaZip]),
        required: false,
        doc: "globs (relative to source) left out of the zip",
    },
    ServiceKey {
        name: "s3_bucket",
        applies: Applies::Only(&[Kind::LambdaZip, Kind::Config]),
        required: false,
        doc: "bucket for zips above the direct-upload limit (lambda-zip); bucket keeping the copy of every applied set, required (config)",
    },
    ServiceKey {
        name: "s3_key_prefix",
        applies: Applies::Only(&[Kind::LambdaZip, Kind::Config]),
        required: false,
        doc: "key prefix in s3_bucket",
    },
    ServiceKey {
        name: "schema",
        applies: Applies::Only(&[Kind::Config]),
        required: false,
        doc: "JSON Schema file every item is validated against",
    },
    ServiceKey {
        name: "dynamodb",
        applies: Applies::Only(&[Kind::Config]),
        required: false,
        doc: "write items to a table: { table = \"…\" | lookup, key = [\"pk\", \"sk\"] } (this or `ssm`)",
    },
    ServiceKey {
        name: "ssm",
        applies: Applies::Only(&[Kind::Config]),
        required: false,
        doc: "write one parameter per leaf: { prefix = \"/…\" | lookup } (this or `dynamodb`)",
    },
    ServiceKey {
        name: "secret",
        applies: Applies::Only(&[Kind::Config]),
        required: false,
        doc: "attribute or leaf names whose values are secret (redacted; SecureString in SSM)",
    },
    ServiceKey {
        name: "prune",
        applies: Applies::Only(&[Kind::Config]),
        required: false,
        doc: "delete items deployer wrote that the source no longer has (default false: reported)",
    },
    ServiceKey {
        name: "adopt",
        applies: Applies::Only(&[Kind::Config]),
        required: false,
        doc: "take over existing items without deployer's owner mark (default false: never touched)",
    },
];

/// Keys of `[ci]`.
pub const CI: &[ProjectKey] = &[ProjectKey {
    name: "install",
    required: false,
    doc: "where CI gets deployer: { release, version, sha256 } | { git, rev }",
}];

const TOP: &[&str] = &["project", "services", "ci"];

/// Reports unknown keys, unknown kinds and missing keys.
pub(super) fn check(doc: &Doc<'_, '_>, diags: &mut Diagnostics) {
    let top = doc.table.get_ref();
    for (key, _) in top.iter() {
        if !TOP.contains(&key.get_ref().as_ref()) {
            let _ = unknown(diags, key, "at the top level", TOP.iter().copied());
        }
    }
    match top.get("project").map(|v| (v.span(), v.get_ref())) {
        None => diags.error(
            0..0,
            "the manifest has no `[project]` table".into(),
            Some("start it with `[project]` and `name = \"...\"`".into()),
        ),
        Some((_, DeValue::Table(project))) => {
            let mut suggested = Vec::new();
            for (key, _) in project.iter() {
                if !PROJECT.iter().any(|k| k.name == key.get_ref().as_ref()) {
                    suggested.extend(unknown(
                        diags,
                        key,
                        "in [project]",
                        PROJECT.iter().map(|k| k.name),
                    ));
                }
            }
            let span = doc.key_span(&["project"]);
            for key in PROJECT.iter().filter(|k| k.required) {
                if project.get(key.name).is_none() && !suggested.contains(&key.name) {
                    diags.error(
                        span.clone(),
                        format!("[project] is missing `{}` ({})", key.name, key.doc),
                        None,
                    );
                }
            }
        }
        Some((span, _)) => diags.error(span, "`project` must be a table".into(), None),
    }
    match top.get("ci").map(|v| (v.span(), v.get_ref())) {
        None => {}
        Some((_, DeValue::Table(ci))) => {
            for (key, _) in ci.iter() {
                if !CI.iter().any(|k| k.name == key.get_ref().as_ref()) {
                    let _ = unknown(diags, key, "in [ci]", CI.iter().map(|k| k.name));
                }
            }
        }
        Some((span, _)) => diags.error(span, "`ci` must be a table".into(), None),
    }
    match top.get("services").map(|v| (v.span(), v.get_ref())) {
        None | Some((_, DeValue::Table(_))) => {}
        Some((span, _)) => diags.error(
            span,
            "`services` must be a table of `[services.<name>]` tables".into(),
            None,
        ),
    }
    if let Some(DeValue::Table(services)) = top.get("services").map(Spanned::get_ref) {
        for (name, value) in services.iter() {
            let name_str = name.get_ref().as_ref();
            match value.get_ref() {
                DeValue::Table(service) => check_service(doc, diags, name_str, service),
                _ => diags.error(
                    value.span(),
                    format!("`services.{name_str}` must be a table"),
                    None,
                ),
            }
        }
    }
}

fn check_service(doc: &Doc<'_, '_>, diags: &mut Diagnostics, name: &str, service: &DeTable<'_>) {
    let header = doc.key_span(&["services", name]);
    let kind = match service.get("kind").map(|v| (v.span(), v.get_ref())) {
        None => {
            let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            diags.error(
                header,
                format!("service `{name}` has no `kind`"),
                Some(format!("set `kind` to one of: {}", kinds.join(", "))),
            );
            return;
        }
        Some((span, DeValue::String(kind))) => match Kind::parse(kind) {
            Some(kind) => kind,
            None => {
                let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                let help = match did_you_mean(kind, kinds.iter().copied()) {
                    Some(suggestion) => {
                        format!("did you mean `{suggestion}`? (kinds: {})", kinds.join(", "))
                    }
                    None => format!("one of: {}", kinds.join(", ")),
                };
                diags.error(
                    span,
                    format!("unknown kind `{kind}` for service `{name}`"),
                    Some(help),
                );
                return;
            }
        },
        Some((span, _)) => {
            diags.error(span, "`kind` must be a string".into(), None);
            return;
        }
    };
    // Keys a typo was taken for: their "missing" error would only repeat the suggestion.
    let mut suggested = Vec::new();
    for (key, _) in service.iter() {
        let key_str = key.get_ref().as_ref();
        match SERVICE.iter().find(|k| k.name == key_str) {
            Some(known) if known.applies.includes(kind) => {}
            Some(known) => {
                let owners: Vec<&str> = Kind::ALL
                    .iter()
                    .filter(|k| known.applies.includes(**k))
                    .map(|k| k.as_str())
                    .collect();
                diags.error(
                    key.span(),
                    format!("`{key_str}` is not a field of kind `{kind}` (service `{name}`)"),
                    Some(format!("`{key_str}` belongs to kind {}", owners.join(", "))),
                );
            }
            None => suggested.extend(unknown(
                diags,
                key,
                &format!("in [services.{name}] (kind `{kind}`)"),
                SERVICE
                    .iter()
                    .filter(|k| k.applies.includes(kind))
                    .map(|k| k.name),
            )),
        }
    }
    for key in SERVICE
        .iter()
        .filter(|k| k.required && k.applies.includes(kind))
    {
        if service.get(key.name).is_none() && !suggested.contains(&key.name) {
            diags.error(
                header.clone(),
                format!("service `{name}` (kind `{kind}`) is missing `{}`", key.name),
                Some(format!("`{}`: {}", key.name, key.doc)),
            );
        }
    }
}

/// Reports an unknown key; returns the key it was probably meant to be.
fn unknown<'a>(
    diags: &mut Diagnostics,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    place: &str,
    known: impl Iterator<Item = &'a str> + Clone,
) -> Option<&'a str> {
    let name = key.get_ref().as_ref();
    let suggestion = did_you_mean(name, known.clone());
    let help = match suggestion {
        Some(suggestion) => format!("did you mean `{suggestion}`?"),
        None => format!("known keys: {}", known.collect::<Vec<_>>().join(", ")),
    };
    diags.error(
        key.span(),
        format!("unknown key `{name}` {place}"),
        Some(help),
    );
    suggestion
}
