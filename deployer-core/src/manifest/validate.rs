//! Validation: the raw tables turned into the model, every problem reported with its span.

use std::collections::BTreeMap;
use std::path::{Component, Path};
use std::time::Duration;

use super::diagnostics::Diagnostics;
use super::raw::*;
use super::*;
use toml::Spanned;
use toml::de::DeValue;

/// Turns the raw tables into the model, reporting every problem it finds.
pub(super) struct Validator<'a, 'b, 'i> {
    pub(super) root: &'a Path,
    pub(super) doc: &'a Doc<'b, 'i>,
    pub(super) diags: &'a mut Diagnostics,
}

impl Validator<'_, '_, '_> {
    fn err_value(&mut self, path: &[&str], message: String, help: Option<String>) {
        let span = self.doc.value_span(path);
        self.diags.error(span, message, help);
    }

    pub(super) fn manifest(&mut self, path: &Path, raw: RawManifest) -> Option<Manifest> {
        let project = self.project(raw.project);
        let build_on = project.as_ref().map(|p| p.build_on).unwrap_or_default();
        let mut services = BTreeMap::new();
        for (name, raw_service) in raw.services {
            if let Some(service) = self.service(&name, raw_service, build_on) {
                services.insert(name, service);
            }
        }
        let ci = match raw.ci.and_then(|ci| ci.install) {
            None => Some(Ci::default()),
            Some(value) => self.ci_install(&value).map(|install| Ci {
                install: Some(install),
            }),
        };
        if services.is_empty() && !self.diags.has_errors() {
            self.diags.error(
                0..0,
                "the manifest has no `[services.<name>]` table".into(),
                Some("add one per deployed service; see README.md".into()),
            );
        }
        for (service, message, help) in order::check(&services) {
            self.err_value(&["services", &service, "depends_on"], message, help);
        }
        let project = project?;
        for service in services.values() {
            self.check_codebuild(&project, service);
        }
        let ci = ci?;
        if project.registry.is_none()
            && let Some(service) = services.values().find(|s| s.kind.is_image())
        {
            self.err_value(
                &["project"],
                format!("service `{}` builds an image but `[project]` has no `registry`", service.name),
                Some("set `registry = \"<host[:port]>\"`, e.g. the ECR host `123456789012.dkr.ecr.us-east-1.amazonaws.com`".into()),
            );
        }
        Some(Manifest {
            path: path.to_owned(),
            root: self.root.to_owned(),
            project,
            services,
            ci,
        })
    }

    /// A service building on CodeBuild has a project and a bucket (its own or `[project]`'s),
    /// and `arm` matches its platform.
    fn check_codebuild(&mut self, project: &Project, service: &Service) {
        let Some(image) = &service.image else { return };
        if image.build_on != BuildOn::CodeBuild {
            return;
        }
        let at = |key: &'static str| ["services", service.name.as_str(), key];
        let own = &image.codebuild;
        for (key, mine, shared) in [
            ("project", &own.project, &project.codebuild.project),
            ("bucket", &own.bucket, &project.codebuild.bucket),
        ] {
            if mine.is_none() && shared.is_none() {
                let path = if self.doc.get(&at("codebuild")).is_some() {
                    at("codebuild").to_vec()
                } else if self.doc.get(&at("builder")).is_some() {
                    at("builder").to_vec()
                } else {
                    vec!["project", "builder"]
                };
                self.err_value(
                    &path,
                    format!("service `{}` builds on CodeBuild but no `codebuild.{key}` is set", service.name),
                    Some(format!("set `codebuild = {{ project = \"…\", bucket = \"…\" }}` under [project] or in the service (values may be lookups); `{key}` names the CodeBuild {} your infrastructure code made", if key == "project" { "project" } else { "S3 bucket for build contexts" })),
                );
            }
        }
        let arm = own.arm.or(project.codebuild.arm);
        let wants_arm = image.platform.arch == "arm64";
        if let Some(arm) = arm
            && arm != wants_arm
        {
            let path = if own.arm.is_some() {
                vec!["services", service.name.as_str(), "codebuild", "arm"]
            } else {
                vec!["project", "codebuild", "arm"]
            };
            self.err_value(
                &path,
                format!(
                    "service `{}` is {}, but `codebuild.arm = {arm}` builds it on CodeBuild's {} fleet",
                    service.name,
                    image.platform,
                    if arm { "ARM" } else { "x86" }
                ),
                Some(format!("leave `arm` out (it follows the platform) or set `arm = {wants_arm}`")),
            );
        }
    }

    /// A `codebuild = { project, bucket, compute, arm }` table at `path` (`project` and
    /// `bucket` may be lookups, recorded as `codebuild.project` / `codebuild.bucket`).
    fn codebuild_table(
        &mut self,
        path: &[&str],
        value: &toml::Value,
        lookups: &mut BTreeMap<String, Lookup>,
    ) -> Option<CodeBuildSettings> {
        let example = "codebuild = { project = \"acme-images\", bucket = \"acme-build-contexts\", compute = \"BUILD_GENERAL1_SMALL\", arm = true }";
        let Some(table) = value.as_table() else {
            self.err_value(
                path,
                "`codebuild` must be a table".into(),
                Some(example.into()),
            );
            return None;
        };
        const KEYS: [&str; 4] = ["project", "bucket", "compute", "arm"];
        let mut ok = true;
        for key in table.keys() {
            if !KEYS.contains(&key.as_str()) {
                let help = did_you_mean(key, KEYS.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("its keys are {}", KEYS.join(", ")));
                let mut at = path.to_vec();
                at.push(key);
                self.err_value(
                    &at,
                    format!("unknown key `{key}` in `codebuild`"),
                    Some(help),
                );
                ok = false;
            }
        }
        let mut settings = CodeBuildSettings::default();
        for key in ["project", "bucket"] {
            let Some(value) = table.get(key) else {
                continue;
            };
            let mut at = path.to_vec();
            at.push(key);
            let mut found = BTreeMap::new();
            let text = self.field(&at, value, &mut found);
            ok &= text.is_some();
            for (_, lookup) in found {
                lookups.insert(format!("codebuild.{key}"), lookup);
            }
            if let Some(text) = &text
                && !text.is_empty()
                && key == "bucket"
                && !valid_bucket(text)
            {
                self.err_value(
                    &at,
                    format!("`{text}` is not an S3 bucket name"),
                    Some("3 to 63 lowercase letters, digits, `.` and `-`".into()),
                );
                ok = false;
            }
            match key {
                "project" => settings.project = text,
                _ => settings.bucket = text,
            }
        }
        if let Some(value) = table.get("compute") {
            let mut at = path.to_vec();
            at.push("compute");
            match value.as_str() {
                Some(text)
                    if text.starts_with("BUILD_")
                        && text
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') =>
                {
                    settings.compute = Some(text.to_owned());
                }
                _ => {
                    self.err_value(
                        &at,
                        "`compute` is a CodeBuild compute type".into(),
                        Some("e.g. \"BUILD_GENERAL1_SMALL\", \"BUILD_GENERAL1_MEDIUM\", \"BUILD_GENERAL1_LARGE\"".into()),
                    );
                    ok = false;
                }
            }
        }
        if let Some(value) = table.get("arm") {
            let mut at = path.to_vec();
            at.push("arm");
            match value.as_bool() {
                Some(arm) => settings.arm = Some(arm),
                None => {
                    self.err_value(&at, "`arm` must be true or false".into(), None);
                    ok = false;
                }
            }
        }
        ok.then_some(settings)
    }

    /// `[ci] install`: `{ release = URL, version = V, sha256 = HEX }` or `{ git = URL, rev = COMMIT }`.
    fn ci_install(&mut self, value: &toml::Value) -> Option<CiInstall> {
        let path = ["ci", "install"];
        let help = "install = { release = \"https://github.com/acme/deployer/releases/download/v0.1.0\", version = \"0.1.0\", sha256 = \"<sha256 of the release's SHA256SUMS>\" } or install = { git = \"https://github.com/acme/deployer\", rev = \"<full commit id>\" }";
        let Some(table) = value.as_table() else {
            self.err_value(&path, "`install` must be a table".into(), Some(help.into()));
            return None;
        };
        let text = |key: &str| {
            table
                .get(key)
                .and_then(toml::Value::as_str)
                .map(str::to_owned)
        };
        let mut keys: Vec<&str> = table.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let hex = |text: &str, len: usize| {
            text.len() == len
                && text
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        };
        let url_ok = |url: &str| {
            url.starts_with("https://")
                && url.len() > "https://".len()
                && !url.contains(char::is_whitespace)
        };
        match keys.as_slice() {
            ["release", "sha256", "version"] => {
                let (Some(url), Some(version), Some(sha256)) =
                    (text("release"), text("version"), text("sha256"))
                else {
                    self.err_value(
                        &path,
                        "`release`, `version` and `sha256` must be strings".into(),
                        Some(help.into()),
                    );
                    return None;
                };
                let mut ok = true;
                if !url_ok(&url) {
                    self.err_value(&["ci", "install", "release"], format!("`{url}` is not an https URL"), Some("the release's download URL, e.g. https://github.com/acme/deployer/releases/download/v0.1.0".into()));
                    ok = false;
                }
                if version.is_empty()
                    || !version
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                {
                    self.err_value(
                        &["ci", "install", "version"],
                        format!("`{version}` is not a version"),
                        Some("e.g. \"0.1.0\"".into()),
                    );
                    ok = false;
                }
                if !hex(&sha256, 64) {
                    self.err_value(&["ci", "install", "sha256"], "`sha256` must be 64 lowercase hex digits".into(), Some("the SHA-256 of the release's SHA256SUMS file (`sha256sum SHA256SUMS`; `cargo xtask dist` prints it)".into()));
                    ok = false;
                }
                ok.then_some(CiInstall::Release {
                    url: url.trim_end_matches('/').to_owned(),
                    version,
                    sha256,
                })
            }
            ["git", "rev"] => {
                let (Some(url), Some(rev)) = (text("git"), text("rev")) else {
                    self.err_value(
                        &path,
                        "`git` and `rev` must be strings".into(),
                        Some(help.into()),
                    );
                    return None;
                };
                let mut ok = true;
                if !url_ok(&url) {
                    self.err_value(
                        &["ci", "install", "git"],
                        format!("`{url}` is not an https URL"),
                        Some(
                            "the repository of deployer, e.g. https://github.com/acme/deployer"
                                .into(),
                        ),
                    );
                    ok = false;
                }
                if !hex(&rev, 40) {
                    self.err_value(
                        &["ci", "install", "rev"],
                        "`rev` must be a full commit id (40 lowercase hex digits)".into(),
                        Some("a branch or tag can move; the workflow pins the commit".into()),
                    );
                    ok = false;
                }
                ok.then_some(CiInstall::Git { url, rev })
            }
            _ => {
                self.err_value(&path, format!("`install` takes either `release`, `version` and `sha256`, or `git` and `rev` (found {})", if keys.is_empty() { "no key".to_owned() } else { keys.join(", ") }), Some(help.into()));
                None
            }
        }
    }

    fn project(&mut self, raw: RawProject) -> Option<Project> {
        let mut ok = true;
        if raw.name.is_empty()
            || !raw
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            self.err_value(
                &["project", "name"],
                format!(
                    "project name `{}` must be non-empty letters, digits, `-`, `_` or `.`",
                    raw.name
                ),
                None,
            );
            ok = false;
        }
        let ssm_prefix = raw.ssm_prefix.unwrap_or_else(|| format!("/{}", raw.name));
        if !valid_ssm_prefix(&ssm_prefix) {
            self.err_value(
                &["project", "ssm_prefix"],
                format!("ssm_prefix `{ssm_prefix}` must start with `/`, not end with `/`, and hold only letters, digits and `_.-/`"),
                None,
            );
            ok = false;
        }
        let mut lookups = BTreeMap::new();
        let registry = match &raw.registry {
            None => None,
            Some(value) => {
                let registry = self.field(&["project", "registry"], value, &mut lookups);
                if let Some(registry) = &registry
                    && !lookups.contains_key("registry")
                    && let Err(message) = check_registry(registry)
                {
                    self.err_value(
                        &["project", "registry"],
                        message,
                        Some("write `host[:port]` without scheme or path, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com` or `127.0.0.1:5000`".into()),
                    );
                    ok = false;
                }
                ok &= registry.is_some();
                registry
            }
        };
        if let Some(region) = &raw.region
            && (region.is_empty()
                || !region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
        {
            self.err_value(
                &["project", "region"],
                format!("region `{region}` is not an AWS region name"),
                Some("e.g. `us-east-1`".into()),
            );
            ok = false;
        }
        let mut build_on = BuildOn::Local;
        let builder = match raw.builder.as_deref() {
            None => None,
            Some("codebuild") => {
                build_on = BuildOn::CodeBuild;
                None
            }
            Some(name) => match Builder::parse(name) {
                Some(builder) => Some(builder),
                None => {
                    let names = Builder::ALL.map(Builder::as_str);
                    self.err_value(
                        &["project", "builder"],
                        format!("unknown builder `{name}`"),
                        Some(format!("one of: {}, codebuild", names.join(", "))),
                    );
                    ok = false;
                    None
                }
            },
        };
        let codebuild = match &raw.codebuild {
            None => CodeBuildSettings::default(),
            Some(value) => {
                match self.codebuild_table(&["project", "codebuild"], value, &mut lookups) {
                    Some(settings) => settings,
                    None => {
                        ok = false;
                        CodeBuildSettings::default()
                    }
                }
            }
        };
        let ssm_write = match raw.ssm_write.as_deref() {
            None | Some("after-rollout") => SsmWrite::AfterRollout,
            Some("after-push") => SsmWrite::AfterPush,
            Some(other) => {
                self.err_value(
                    &["project", "ssm_write"],
                    format!("unknown ssm_write `{other}`"),
                    Some("one of: after-rollout (default), after-push".into()),
                );
                ok = false;
                SsmWrite::AfterRollout
            }
        };
        let base_images = match raw.base_images.as_deref() {
            None | Some("as-written") => BaseImages::AsWritten,
            Some("resolve") => BaseImages::Resolve,
            Some(other) => {
                self.err_value(
                    &["project", "base_images"],
                    format!("unknown base_images `{other}`"),
                    Some("one of: as-written (default), resolve".into()),
                );
                ok = false;
                BaseImages::AsWritten
            }
        };
        let concurrency = match raw.concurrency {
            None => 4,
            Some(n) if (1..=64).contains(&n) => usize::try_from(n).unwrap_or(4),
            Some(n) => {
                self.err_value(
                    &["project", "concurrency"],
                    format!("concurrency {n} is out of range"),
                    Some("use 1 to 64".into()),
                );
                ok = false;
                4
            }
        };
        ok.then_some(Project {
            name: raw.name,
            region: raw.region,
            ssm_prefix,
            registry,
            builder,
            build_on,
            codebuild,
            ssm_write,
            base_images,
            concurrency,
            lookups,
        })
    }

    /// A field that may be a lookup: the literal (or "" for a lookup, recorded in `lookups`).
    fn field(
        &mut self,
        path: &[&str],
        value: &toml::Value,
        lookups: &mut BTreeMap<String, Lookup>,
    ) -> Option<String> {
        let key = path[path.len() - 1];
        match lookup::parse(value) {
            Ok(lookup::Value::Literal(text)) if text.is_empty() => {
                self.err_value(path, format!("`{key}` is empty"), None);
                None
            }
            Ok(lookup::Value::Literal(text)) => Some(text),
            Ok(lookup::Value::Lookup(found)) => {
                lookups.insert(key.to_owned(), found);
                Some(String::new())
            }
            Err((message, help)) => {
                self.err_value(path, format!("`{key}`: {message}"), help);
                None
            }
        }
    }

    /// A duration field of a nested table (`blue_green`, …).
    fn optional_duration(
        &mut self,
        path: &[&str],
        text: Option<&str>,
    ) -> Result<Option<Duration>, ()> {
        match text {
            None => Ok(None),
            Some(text) => self
                .duration(path, Some(text), Duration::ZERO)
                .map(Some)
                .ok_or(()),
        }
    }

    fn service(&mut self, name: &str, raw: RawService, build_on: BuildOn) -> Option<Service> {
        let at = |key: &'static str| ["services", name, key];
        let mut ok = true;
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            let span = self.doc.key_span(&["services", name]);
            self.diags.error(
                span,
                format!("service name `{name}` may hold only letters, digits, `-`, `_` and `.`"),
                None,
            );
            ok = false;
        }
        // keys::check has already proven the kind valid and the required keys present.
        let kind = Kind::parse(&raw.kind)?;
        let timeout = self.duration(
            &at("timeout"),
            raw.timeout.as_deref(),
            kind.default_timeout(),
        );
        let poll_interval = self.duration(
            &at("poll_interval"),
            raw.poll_interval.as_deref(),
            Duration::from_secs(2),
        );
        let (Some(timeout), Some(poll_interval)) = (timeout, poll_interval) else {
            return None;
        };
        let mut lookups = BTreeMap::new();
        let mut field =
            |this: &mut Self, key: &'static str, value: &Option<toml::Value>| -> String {
                match value {
                    None => String::new(),
                    Some(value) => match this.field(&at(key), value, &mut lookups) {
                        Some(text) => text,
                        None => {
                            ok = false;
                            String::new()
                        }
                    },
                }
            };
        let cluster = field(self, "cluster", &raw.cluster);
        let ecs_service = field(self, "service", &raw.service);
        let runtime_id = field(self, "runtime_id", &raw.runtime_id);
        let function = field(self, "function", &raw.function);
        let endpoint = field(self, "endpoint", &raw.endpoint);
        let repository = field(self, "repository", &raw.repository);
        let image = if kind.is_image() {
            let image = self.image(name, &raw, repository, lookups.contains_key("repository"));
            let build = self.service_builder(name, &raw, build_on, &mut lookups);
            ok &= image.is_some() && build.is_some();
            image
                .zip(build)
                .map(|(image, (build_on, codebuild))| ImageBuild {
                    build_on,
                    codebuild,
                    ..image
                })
        } else {
            None
        };
        let lambda = LambdaTarget {
            function,
            publish: raw.publish,
            alias: raw.alias.clone(),
        };
        if raw.alias.is_some() && !raw.publish {
            self.err_value(
                &at("alias"),
                "`alias` needs `publish = true`: an alias points at a published version".into(),
                None,
            );
            ok = false;
        }
        let smoke = match &raw.smoke {
            None => None,
            Some(smoke) => {
                let smoke = self.smoke(name, kind, smoke);
                ok &= smoke.is_some();
                smoke
            }
        };
        if raw.rollback_on_smoke_failure && smoke.is_none() {
            self.err_value(
                &at("rollback_on_smoke_failure"),
                "`rollback_on_smoke_failure` needs a `smoke` check".into(),
                None,
            );
            ok = false;
        }
        let iac = match &raw.iac {
            None => None,
            Some(iac) => {
                let iac = self.iac(name, iac);
                ok &= iac.is_some();
                iac
            }
        };
        let target = match kind {
            Kind::Ecs => Target::Ecs(EcsTarget {
                cluster,
                service: ecs_service,
                container: raw.container.clone(),
                force_new_deployment: raw.force_new_deployment,
            }),
            Kind::Agentcore => {
                if let Some(platform) = image.as_ref().map(|i| &i.platform)
                    && platform.to_string() != "linux/arm64"
                {
                    self.err_value(
                        &at("platform"),
                        format!("AgentCore runtimes run linux/arm64 images, not {platform}"),
                        Some("set `platform = \"linux/arm64\"`".into()),
                    );
                    ok = false;
                }
                let endpoints = raw.endpoints.clone().unwrap_or_default();
                ok &= self.endpoints(name, &endpoints);
                Target::Agentcore(AgentcoreTarget {
                    runtime_id,
                    endpoints,
                })
            }
            Kind::LambdaImage => {
                if let Some(platform) = image.as_ref().map(|i| &i.platform)
                    && !["linux/amd64", "linux/arm64"].contains(&platform.to_string().as_str())
                {
                    self.err_value(
                        &at("platform"),
                        format!("Lambda runs linux/amd64 or linux/arm64 images, not {platform}"),
                        None,
                    );
                    ok = false;
                }
                Target::LambdaImage(lambda)
            }
            Kind::LambdaZip => {
                let source = raw.source.clone().unwrap_or_default();
                ok &= self.path_in_repo(&at("source"), &source, PathKind::Dir);
                for (index, pattern) in raw.exclude.iter().enumerate() {
                    ok &= self.glob(&["services", name, "exclude"], index, pattern);
                }
                let s3_bucket = match &raw.s3_bucket {
                    None => None,
                    Some(toml::Value::String(bucket)) => Some(bucket.clone()),
                    Some(_) => {
                        self.err_value(
                            &at("s3_bucket"),
                            "`s3_bucket` of a lambda-zip service is a bucket name (a string)"
                                .into(),
                            None,
                        );
                        ok = false;
                        None
                    }
                };
                Target::LambdaZip(LambdaZipTarget {
                    lambda,
                    source,
                    exclude: raw.exclude.clone(),
                    s3_bucket,
                    s3_key_prefix: raw.s3_key_prefix.clone(),
                })
            }
            Kind::Config => {
                let target = self.config(name, &raw, &mut lookups);
                ok &= target.is_some();
                Target::Config(target?)
            }
            Kind::Sagemaker => {
                let blue_green = match &raw.blue_green {
                    None => None,
                    Some(raw_bg) => {
                        let blue_green = self.blue_green(name, raw_bg);
                        ok &= blue_green.is_some();
                        blue_green
                    }
                };
                let keep = match raw.keep {
                    None => 2,
                    Some(n) if (1..=100).contains(&n) => usize::try_from(n).unwrap_or(2),
                    Some(n) => {
                        self.err_value(&at("keep"), format!("keep = {n} is out of range"), Some("keep 1 to 100 earlier models and configs (the previous one is always kept)".into()));
                        ok = false;
                        2
                    }
                };
                Target::Sagemaker(SagemakerTarget {
                    endpoint,
                    variant: raw.variant.clone(),
                    blue_green,
                    keep,
                })
            }
        };
        ok.then(|| Service {
            name: name.to_owned(),
            kind,
            image,
            target,
            timeout,
            poll_interval,
            depends_on: raw.depends_on.clone(),
            restart_on_dependency_change: raw.restart_on_dependency_change,
            smoke,
            rollback_on_smoke_failure: raw.rollback_on_smoke_failure,
            iac,
            lookups,
        })
    }

    /// `kind = "config"`: the source and schema, exactly one store, the names marked secret,
    /// the bucket keeping the applied sets.
    fn config(
        &mut self,
        name: &str,
        raw: &RawService,
        lookups: &mut BTreeMap<String, Lookup>,
    ) -> Option<ConfigTarget> {
        let at = |key: &'static str| ["services", name, key];
        let mut ok = true;
        let source = raw.source.clone().unwrap_or_default();
        ok &= self.path_in_repo(&at("source"), &source, PathKind::Dir);
        if let Some(schema) = &raw.schema {
            ok &= self.path_in_repo(&at("schema"), schema, PathKind::File);
        }
        let store = match (&raw.dynamodb, &raw.ssm) {
            (Some(dynamodb), None) => {
                let path = ["services", name, "dynamodb", "table"];
                let table = match &dynamodb.table {
                    Some(value) => self.field(&path, value, lookups),
                    None => {
                        self.err_value(
                            &at("dynamodb"),
                            "`dynamodb` needs `table`".into(),
                            Some("dynamodb = { table = \"acme-repositories\", key = [\"pk\", \"sk\"] }".into()),
                        );
                        None
                    }
                };
                let key = dynamodb.key.clone().unwrap_or_default();
                let key_ok = (1..=2).contains(&key.len())
                    && key.iter().all(|k| !k.is_empty())
                    && key.first() != key.get(1);
                if !key_ok {
                    self.err_value(
                        &["services", name, "dynamodb", "key"],
                        "`dynamodb.key` names the table's key attributes: the partition key, and the sort key when the table has one".into(),
                        Some("key = [\"pk\"] or key = [\"pk\", \"sk\"]".into()),
                    );
                }
                match (table, key_ok) {
                    (Some(table), true) => Some(ConfigStore::Dynamodb { table, key }),
                    _ => None,
                }
            }
            (None, Some(ssm)) => {
                let path = ["services", name, "ssm", "prefix"];
                let prefix = match &ssm.prefix {
                    Some(value) => self.field(&path, value, lookups),
                    None => {
                        self.err_value(
                            &at("ssm"),
                            "`ssm` needs `prefix`".into(),
                            Some("ssm = { prefix = \"/acme/flags\" }".into()),
                        );
                        None
                    }
                };
                match prefix {
                    Some(prefix)
                        if !lookups.contains_key("prefix") && !valid_ssm_prefix(&prefix) =>
                    {
                        self.err_value(
                            &path,
                            format!("ssm prefix `{prefix}` must start with `/`, not end with `/`, and hold only letters, digits and `_.-/`"),
                            None,
                        );
                        None
                    }
                    Some(prefix) => Some(ConfigStore::Ssm { prefix }),
                    None => None,
                }
            }
            (Some(_), Some(_)) => {
                self.err_value(
                    &at("ssm"),
                    format!("service `{name}` sets both `dynamodb` and `ssm`: a config service writes to one store"),
                    Some("split it into two services".into()),
                );
                None
            }
            (None, None) => {
                let span = self.doc.key_span(&["services", name]);
                self.diags.error(
                    span,
                    format!("service `{name}` (kind `config`) needs `dynamodb` or `ssm`"),
                    Some("dynamodb = { table = \"…\", key = [\"pk\", \"sk\"] } or ssm = { prefix = \"/…\" }".into()),
                );
                None
            }
        };
        for (index, secret) in raw.secret.iter().enumerate() {
            if secret.is_empty() || secret.split('.').any(str::is_empty) {
                let span = match self.doc.get(&at("secret")).map(Spanned::get_ref) {
                    Some(DeValue::Array(items)) => items.get(index).map(Spanned::span),
                    _ => None,
                }
                .unwrap_or_else(|| self.doc.value_span(&at("secret")));
                self.diags.error(
                    span,
                    format!("`secret` entry `{secret}` is not a key name or a dotted path"),
                    Some("e.g. secret = [\"webhook_secret\", \"github.token\"]".into()),
                );
                ok = false;
            }
        }
        let s3_bucket = match &raw.s3_bucket {
            Some(value) => self.field(&at("s3_bucket"), value, lookups),
            None => {
                let span = self.doc.key_span(&["services", name]);
                self.diags.error(
                    span,
                    format!("service `{name}` (kind `config`) is missing `s3_bucket`"),
                    Some("the bucket where every applied set is kept under its content hash: what `deployer rollback` re-applies".into()),
                );
                None
            }
        };
        let (Some(store), Some(s3_bucket), true) = (store, s3_bucket, ok) else {
            return None;
        };
        Some(ConfigTarget {
            source,
            schema: raw.schema.clone(),
            store,
            secret: raw.secret.clone(),
            prune: raw.prune,
            adopt: raw.adopt,
            s3_bucket,
            s3_key_prefix: raw.s3_key_prefix.clone(),
        })
    }

    /// `iac = { cfn_stack }` or `iac = { tf_state, address }`, with `ignores_image`.
    fn iac(&mut self, name: &str, raw: &RawIac) -> Option<Iac> {
        let at = ["services", name, "iac"];
        let example = "e.g. iac = { cfn_stack = \"AcmeCompute\" } or iac = { tf_state = \"infra/terraform.tfstate\", address = \"aws_ecs_task_definition.app\" }";
        let source = match (&raw.cfn_stack, &raw.tf_state, &raw.address) {
            (Some(stack), None, None) if !stack.trim().is_empty() => {
                IacSource::CfnStack(stack.clone())
            }
            (None, Some(state), Some(address)) if !address.trim().is_empty() => {
                if let Err(message) = relative_inside(state) {
                    self.err_value(
                        &at,
                        format!("`iac.tf_state` {message}"),
                        Some("paths are relative to the directory holding deployer.toml".into()),
                    );
                    return None;
                }
                IacSource::TfState {
                    state: state.clone(),
                    address: address.clone(),
                }
            }
            (None, Some(_), None) => {
                self.err_value(
                    &at,
                    "`iac.tf_state` needs `address`: the resource holding the image".into(),
                    Some(example.into()),
                );
                return None;
            }
            (Some(_), None, Some(_)) => {
                self.err_value(
                    &at,
                    "`iac.address` belongs to `tf_state`, not `cfn_stack`".into(),
                    Some(example.into()),
                );
                return None;
            }
            _ => {
                self.err_value(
                    &at,
                    "`iac` names exactly one of `cfn_stack` or `tf_state` (with `address`)".into(),
                    Some(example.into()),
                );
                return None;
            }
        };
        Some(Iac {
            source,
            ignores_image: raw.ignores_image,
        })
    }

    fn smoke(&mut self, name: &str, kind: Kind, raw: &RawSmoke) -> Option<Smoke> {
        let at = ["services", name, "smoke"];
        let chosen = [
            raw.http.is_some(),
            raw.command.is_some(),
            raw.invoke.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if chosen != 1 {
            self.err_value(
                &at,
                "a smoke check has exactly one of `http`, `command`, `invoke`".into(),
                Some("e.g. smoke = { http = \"https://api.example.com/health\", expect_status = 200, timeout_s = 60 }".into()),
            );
            return None;
        }
        let timeout = match raw.timeout_s {
            None => Duration::from_secs(60),
            Some(s) if (1..=3600).contains(&s) => {
                Duration::from_secs(u64::try_from(s).unwrap_or(60))
            }
            Some(s) => {
                self.err_value(
                    &at,
                    format!("smoke timeout_s = {s} is out of range (1 to 3600)"),
                    None,
                );
                return None;
            }
        };
        let check = if let Some(url) = &raw.http {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.err_value(
                    &at,
                    format!("smoke url `{url}` must start with http:// or https://"),
                    None,
                );
                return None;
            }
            let expect_status = match raw.expect_status {
                None => 200,
                Some(code) if (100..=599).contains(&code) => u16::try_from(code).unwrap_or(200),
                Some(code) => {
                    self.err_value(
                        &at,
                        format!("expect_status {code} is not an HTTP status"),
                        None,
                    );
                    return None;
                }
            };
            SmokeCheck::Http {
                url: url.clone(),
                expect_status,
                expect: raw.expect.clone(),
            }
        } else if let Some(argv) = &raw.command {
            if argv.first().is_none_or(String::is_empty) {
                self.err_value(
                    &at,
                    "smoke `command` must name a program: [\"./scripts/smoke.sh\", \"arg\"]".into(),
                    None,
                );
                return None;
            }
            SmokeCheck::Command { argv: argv.clone() }
        } else {
            if !matches!(kind, Kind::Agentcore | Kind::LambdaImage | Kind::LambdaZip) {
                self.err_value(
                    &at,
                    format!("smoke `invoke` works for agentcore and lambda services, not {kind}"),
                    Some("use `http` or `command`".into()),
                );
                return None;
            }
            let payload = match &raw.invoke {
                Some(toml::Value::String(text)) => text.clone(),
                Some(toml::Value::Table(table)) => match serde_json::to_string(table) {
                    Ok(json) => json,
                    Err(error) => {
                        self.err_value(
                            &at,
                            format!("the invoke payload cannot be turned into JSON: {error}"),
                            None,
                        );
                        return None;
                    }
                },
                _ => {
                    self.err_value(
                        &at,
                        "`invoke` is the payload: a JSON string or a table".into(),
                        None,
                    );
                    return None;
                }
            };
            SmokeCheck::Invoke {
                payload,
                expect: raw.expect.clone(),
            }
        };
        if raw.expect_status.is_some() && raw.http.is_none() {
            self.err_value(
                &at,
                "`expect_status` applies to `http` checks only".into(),
                None,
            );
            return None;
        }
        Some(Smoke { check, timeout })
    }

    fn blue_green(&mut self, name: &str, raw: &RawBlueGreen) -> Option<BlueGreen> {
        let at = ["services", name, "blue_green"];
        let percent = |this: &mut Self, value: Option<i64>, key: &str| -> Option<u8> {
            match value {
                Some(p) if (1..=99).contains(&p) => u8::try_from(p).ok(),
                Some(p) => {
                    this.err_value(&at, format!("{key} = {p} must be 1 to 99"), None);
                    None
                }
                None => {
                    this.err_value(&at, format!("this traffic shift needs `{key}`"), None);
                    None
                }
            }
        };
        let traffic = match raw.traffic.as_deref().unwrap_or("all-at-once") {
            "all-at-once" => Traffic::AllAtOnce,
            "canary" => Traffic::Canary {
                percent: percent(self, raw.canary_percent, "canary_percent")?,
            },
            "linear" => Traffic::Linear {
                percent: percent(self, raw.linear_percent, "linear_percent")?,
            },
            other => {
                self.err_value(
                    &at,
                    format!("unknown traffic shift `{other}`"),
                    Some("one of: all-at-once, canary, linear".into()),
                );
                return None;
            }
        };
        let wait_interval = self.duration(
            &["services", name, "blue_green", "wait_interval"],
            raw.wait_interval.as_deref(),
            Duration::from_secs(300),
        )?;
        let termination_wait = self
            .optional_duration(
                &["services", name, "blue_green", "termination_wait"],
                raw.termination_wait.as_deref(),
            )
            .ok()?;
        let max_execution = self
            .optional_duration(
                &["services", name, "blue_green", "max_execution"],
                raw.max_execution.as_deref(),
            )
            .ok()?;
        Some(BlueGreen {
            traffic,
            wait_interval,
            rollback_alarms: raw.rollback_alarms.clone(),
            termination_wait,
            max_execution,
        })
    }

    fn duration(
        &mut self,
        path: &[&str],
        text: Option<&str>,
        default: Duration,
    ) -> Option<Duration> {
        let Some(text) = text else {
            return Some(default);
        };
        match humantime::parse_duration(text) {
            Ok(duration) if !duration.is_zero() => Some(duration),
            Ok(_) => {
                self.err_value(
                    path,
                    format!("`{}` must be longer than zero", path[path.len() - 1]),
                    None,
                );
                None
            }
            Err(error) => {
                self.err_value(
                    path,
                    format!("`{text}` is not a duration: {error}"),
                    Some("e.g. \"90s\", \"15m\", \"1h 30m\"".into()),
                );
                None
            }
        }
    }

    /// A service's `builder` (`codebuild` or `local`; default: `[project]`'s) and its own
    /// `codebuild` table.
    fn service_builder(
        &mut self,
        name: &str,
        raw: &RawService,
        default: BuildOn,
        lookups: &mut BTreeMap<String, Lookup>,
    ) -> Option<(BuildOn, CodeBuildSettings)> {
        let mut ok = true;
        let build_on = match raw.builder.as_deref() {
            None => default,
            Some("codebuild") => BuildOn::CodeBuild,
            Some("local") => BuildOn::Local,
            Some(other) => {
                let hint = if Builder::parse(other).is_some() {
                    format!(
                        "the program that builds on this machine is `[project] builder = \"{other}\"`; a service says `local` or `codebuild`"
                    )
                } else {
                    "one of: codebuild, local".to_owned()
                };
                self.err_value(
                    &["services", name, "builder"],
                    format!("unknown builder `{other}` for service `{name}`"),
                    Some(hint),
                );
                ok = false;
                default
            }
        };
        let codebuild = match &raw.codebuild {
            None => CodeBuildSettings::default(),
            Some(value) => {
                match self.codebuild_table(&["services", name, "codebuild"], value, lookups) {
                    Some(settings) => settings,
                    None => {
                        ok = false;
                        CodeBuildSettings::default()
                    }
                }
            }
        };
        ok.then_some((build_on, codebuild))
    }

    fn image(
        &mut self,
        name: &str,
        raw: &RawService,
        repository: String,
        repository_is_lookup: bool,
    ) -> Option<ImageBuild> {
        let at = |key: &'static str| ["services", name, key];
        let mut ok = true;
        let dockerfile = raw.dockerfile.clone().unwrap_or_default();
        ok &= self.path_in_repo(&at("dockerfile"), &dockerfile, PathKind::File);
        let context = raw.context.clone().unwrap_or_else(|| ".".into());
        ok &= self.path_in_repo(&at("context"), &context, PathKind::Dir);
        let platform = match Platform::parse(raw.platform.as_deref().unwrap_or_default()) {
            Ok(platform) => Some(platform),
            Err(message) => {
                self.err_value(&at("platform"), message, None);
                None
            }
        };
        let inputs = raw.inputs.clone();
        if inputs.as_ref().is_some_and(Vec::is_empty) {
            self.err_value(
                &at("inputs"),
                "`inputs` is empty: the image's tag would not depend on any file".into(),
                Some(
                    "list the globs whose content decides the image, e.g. [\"backend/src/app/**\"], or leave `inputs` out to derive them from the Dockerfile"
                        .into(),
                ),
            );
            ok = false;
        }
        for (index, pattern) in inputs.iter().flatten().enumerate() {
            ok &= self.glob(&["services", name, "inputs"], index, pattern);
        }
        if !repository_is_lookup
            && !repository.is_empty()
            && let Err(message) = check_repository(&repository)
        {
            self.err_value(
                &at("repository"),
                message,
                Some("lowercase letters and digits separated by `.`, `_`, `-` and `/`, e.g. `acme/app-api`".into()),
            );
            ok = false;
        }
        for key in raw.build_args.keys() {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.err_value(
                    &["services", name, "build_args", key],
                    format!("build arg name `{key}` may hold only letters, digits and `_`"),
                    None,
                );
                ok = false;
            }
        }
        let platform = platform?;
        ok.then(|| ImageBuild {
            dockerfile,
            context,
            platform,
            inputs,
            repository,
            build_args: raw.build_args.clone(),
            build_on: BuildOn::Local,
            codebuild: CodeBuildSettings::default(),
        })
    }

    /// Checks that `value` names an existing file or directory inside the repository.
    fn path_in_repo(&mut self, path: &[&str], value: &str, kind: PathKind) -> bool {
        let key = path[path.len() - 1];
        if let Err(message) = relative_inside(value) {
            self.err_value(
                path,
                format!("`{key}` {message}"),
                Some("paths are relative to the directory holding deployer.toml".into()),
            );
            return false;
        }
        let full = self.root.join(value);
        let meta = match std::fs::metadata(&full) {
            Ok(meta) => meta,
            Err(_) => {
                self.err_value(
                    path,
                    format!(
                        "{key} `{value}` does not exist (looked for {})",
                        full.display()
                    ),
                    None,
                );
                return false;
            }
        };
        let right_kind = match kind {
            PathKind::File => meta.is_file(),
            PathKind::Dir => meta.is_dir(),
        };
        if !right_kind {
            let want = match kind {
                PathKind::File => "a file",
                PathKind::Dir => "a directory",
            };
            self.err_value(path, format!("{key} `{value}` is not {want}"), None);
            return false;
        }
        if let Err(message) = stays_inside(self.root, value) {
            self.err_value(path, format!("{key} `{value}` {message}"), None);
            return false;
        }
        true
    }

    /// Checks `endpoints` of an agentcore service: AgentCore's endpoint name pattern
    /// (`[a-zA-Z][a-zA-Z0-9_]{0,47}`), no duplicates, no `DEFAULT` (it follows the latest
    /// version by itself: moving it is AgentCore's job).
    fn endpoints(&mut self, service: &str, endpoints: &[String]) -> bool {
        let path = ["services", service, "endpoints"];
        let mut ok = true;
        for (index, endpoint) in endpoints.iter().enumerate() {
            let problem = if !is_endpoint_name(endpoint) {
                Some((
                    format!(
                        "`{endpoint}` is not an AgentCore endpoint name (a letter, then up to 47 letters, digits or `_`)"
                    ),
                    None,
                ))
            } else if endpoint == "DEFAULT" {
                Some((
                    "`DEFAULT` follows the latest version by itself; list only named endpoints"
                        .to_owned(),
                    Some("remove `DEFAULT` from `endpoints`".to_owned()),
                ))
            } else if endpoints[..index].contains(endpoint) {
                Some((format!("endpoint `{endpoint}` is listed twice"), None))
            } else {
                None
            };
            if let Some((message, help)) = problem {
                let span = match self.doc.get(&path).map(Spanned::get_ref) {
                    Some(DeValue::Array(items)) => items.get(index).map(Spanned::span),
                    _ => None,
                }
                .unwrap_or_else(|| self.doc.value_span(&path));
                self.diags.error(span, message, help);
                ok = false;
            }
        }
        ok
    }

    /// Checks one glob of `inputs` or `exclude`.
    fn glob(&mut self, path: &[&str], index: usize, pattern: &str) -> bool {
        let report = |this: &mut Self, message: String| {
            let span = match this.doc.get(path).map(Spanned::get_ref) {
                Some(DeValue::Array(items)) => items.get(index).map(Spanned::span),
                _ => None,
            }
            .unwrap_or_else(|| this.doc.value_span(path));
            this.diags.error(span, message, None);
            false
        };
        if pattern.is_empty() {
            return report(self, "empty glob".into());
        }
        if let Err(message) = relative_inside(pattern) {
            return report(self, format!("glob `{pattern}` {message}"));
        }
        if let Err(error) = globset::GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
        {
            return report(
                self,
                format!("glob `{pattern}` is invalid: {}", error.kind()),
            );
        }
        // The literal directory prefix of the glob must not lead out through a symlink.
        if path.last() == Some(&"inputs") {
            let prefix = literal_prefix(pattern);
            if !prefix.is_empty()
                && self.root.join(&prefix).exists()
                && let Err(message) = stays_inside(self.root, &prefix)
            {
                return report(self, format!("glob `{pattern}`: `{prefix}` {message}"));
            }
        }
        true
    }
}

#[derive(Clone, Copy)]
enum PathKind {
    File,
    Dir,
}

/// Rejects absolute paths and any `..` component.
fn relative_inside(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    let path = Path::new(value);
    if path.is_absolute() || value.starts_with('/') || value.starts_with('\\') {
        return Err("is absolute: it must stay inside the repository");
    }
    if path.components().any(|c| {
        matches!(
            c,
            Component::ParentDir | Component::Prefix(_) | Component::RootDir
        )
    }) || value.split('/').any(|part| part == "..")
    {
        return Err("leaves the repository (`..`)");
    }
    Ok(())
}

/// Resolves symlinks and checks that `value` still lies inside `root`.
fn stays_inside(root: &Path, value: &str) -> Result<(), String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("cannot be checked: the repository root cannot be resolved ({e})"))?;
    let full = root
        .join(value)
        .canonicalize()
        .map_err(|e| format!("cannot be resolved ({e})"))?;
    if full.starts_with(&root) {
        Ok(())
    } else {
        Err(format!(
            "leads out of the repository through a symlink (to {})",
            full.display()
        ))
    }
}

/// The directories of a glob before its first metacharacter: `a/b/**/*.py` → `a/b`.
pub fn literal_prefix(pattern: &str) -> String {
    let mut parts = Vec::new();
    let segments: Vec<&str> = pattern.split('/').collect();
    for (i, segment) in segments.iter().enumerate() {
        if segment.contains(['*', '?', '[', '{']) {
            break;
        }
        if i + 1 == segments.len() {
            // a literal last segment is the file itself
            parts.push(*segment);
            break;
        }
        parts.push(*segment);
    }
    parts.join("/")
}

fn valid_ssm_prefix(prefix: &str) -> bool {
    prefix.len() > 1
        && prefix.starts_with('/')
        && !prefix.ends_with('/')
        && !prefix.contains("//")
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
}

/// Checks a registry host (`host[:port]`), e.g. a looked-up value.
pub fn check_registry(registry: &str) -> Result<(), String> {
    if valid_registry(registry) {
        Ok(())
    } else {
        Err(format!("registry `{registry}` is not a registry host"))
    }
}

/// Checks a repository name, e.g. a looked-up value.
pub fn check_repository(repository: &str) -> Result<(), String> {
    if valid_repository(repository) {
        Ok(())
    } else {
        Err(format!(
            "repository `{repository}` is not a valid repository name"
        ))
    }
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

fn valid_repository(repository: &str) -> bool {
    !repository.is_empty()
        && repository.split('/').all(|component| {
            !component.is_empty()
                && component
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && component.starts_with(|c: char| c.is_ascii_alphanumeric())
                && component.ends_with(|c: char| c.is_ascii_alphanumeric())
        })
}

/// An S3 bucket name: 3 to 63 lowercase letters, digits, `.` and `-`, starting and ending with
/// a letter or digit.
fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// AgentCore's `EndpointName` pattern: `[a-zA-Z][a-zA-Z0-9_]{0,47}`.
fn is_endpoint_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && name.len() <= 48
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
