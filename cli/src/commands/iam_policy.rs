//! `deployer iam-policy`: the least-privilege IAM policy of the CI role that deploys the
//! selected services (see [`crate::iam`] for what it grants and why).
//!
//! It reads, never writes: the manifest, the lookups (resolved as a deploy resolves them), the
//! caller's account (`sts:GetCallerIdentity`), and per service the live resource (its ARN and
//! the roles it runs with, which a deploy passes on). stdout carries the policy document
//! itself; with `--json`, `{"policy": …, "account": …, "partition": …, "region": …,
//! "services": […], "warnings": […]}`.

use std::collections::BTreeSet;

use anyhow::{Context as _, anyhow};
use aws_sdk_ssm::error::ProvideErrorMetadata;
use deployer_core::manifest::{Lookup, SmokeCheck};
use deployer_core::{Manifest, Service};
use serde_json::json;
use tokio::task::JoinSet;

use crate::args::Global;
use crate::context::Context;
use crate::exit::{Exit, UsageError};
use crate::iam::{self, Account, Facts, Live, ServiceFacts};
use crate::output::Printer;

pub(crate) async fn run(
    global: &Global,
    names: &[String],
    printer: &Printer,
) -> anyhow::Result<Exit> {
    // The lookups as written: resolving them replaces them with their values.
    let lookups = {
        let manifest = super::load_manifest(global)?;
        let selected: Vec<String> = super::select(&manifest, names)?
            .iter()
            .map(|s| s.name.clone())
            .collect();
        lookups_of(&manifest, &selected)
    };
    let (ctx, selected) = super::prepare_untagged(global, names, None).await?;
    let account = caller(&ctx).await?;
    let mut tasks = JoinSet::new();
    for (index, name) in selected.iter().enumerate() {
        let (ctx, name, account) = (ctx.clone(), name.clone(), account.clone());
        tasks.spawn(async move {
            let service = &ctx.manifest.services[&name];
            (
                index,
                facts_of(&ctx, &account, service)
                    .await
                    .with_context(|| format!("service `{name}`")),
            )
        });
    }
    let mut services = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (index, facts) = joined?;
        services.push((index, facts?));
    }
    services.sort_by_key(|(index, _)| *index);
    // A build without CodeBuild support refuses those services at deploy time.
    #[cfg(feature = "codebuild")]
    let codebuild = selected
        .iter()
        .filter_map(|name| ctx.manifest.codebuild(&ctx.manifest.services[name]))
        .map(|settings| iam::CodeBuildFacts {
            project: settings.project,
            bucket: settings.bucket,
            key_prefix: deployer_codebuild::key_prefix(&ctx.manifest.project.name),
        })
        .collect();
    #[cfg(not(feature = "codebuild"))]
    let codebuild = Vec::new();
    let facts = Facts {
        codebuild,
        ecr: ecr(&ctx, &selected, &account),
        account,
        ssm_prefix: ctx.manifest.project.ssm_prefix.clone(),
        lookups,
        services: services.into_iter().map(|(_, facts)| facts).collect(),
    };
    let policy = iam::policy(&facts);
    let warnings = iam::warnings(&policy);
    for warning in &warnings {
        printer.warn(warning);
    }
    // The text keeps IAM's order (Version, Statement; Sid, Effect, Action, Resource, Condition).
    let text = serde_json::to_string_pretty(&policy)?;
    printer.result(
        &text,
        &json!({
            "policy": policy,
            "account": facts.account.account,
            "partition": facts.account.partition,
            "region": facts.account.region,
            "services": selected,
            "warnings": warnings,
        }),
    );
    Ok(Exit::Success)
}

/// The distinct lookups a run resolves for `selected` (as [`crate::lookups::resolve`] picks
/// them: `[project]`'s only when an image service is selected).
fn lookups_of(manifest: &Manifest, selected: &[String]) -> Vec<Lookup> {
    let needs_registry = selected
        .iter()
        .any(|name| manifest.services[name].kind.is_image());
    let project = manifest.project.lookups.values().filter(|_| needs_registry);
    let services = selected
        .iter()
        .flat_map(|name| manifest.services[name].lookups.values());
    project
        .chain(services)
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The caller's partition and account (STS), and the region of the run (which
/// [`crate::aws::preflight`] made sure of when the context was built).
async fn caller(ctx: &Context) -> anyhow::Result<Account> {
    let region = ctx
        .sdk
        .region()
        .map(|r| r.to_string())
        .context("no AWS region (the preflight check passed without one)")?;
    let identity = aws_sdk_sts::Client::new(&ctx.sdk)
        .get_caller_identity()
        .send()
        .await
        .map_err(|error| {
            anyhow!(
                "sts:GetCallerIdentity failed (are AWS credentials configured?): {}",
                deployer_aws::error_line(&error)
            )
        })?;
    let arn = identity
        .arn()
        .context("GetCallerIdentity returned no Arn")?;
    let partition = iam::Arn::parse(arn)
        .map(|a| a.partition.to_owned())
        .context("GetCallerIdentity returned an Arn that is not an ARN")?;
    let account = identity
        .account()
        .context("GetCallerIdentity returned no Account")?
        .to_owned();
    Ok(Account {
        partition,
        account,
        region,
    })
}

/// The ECR registry's parts, when the registry is ECR and an image service is selected.
#[cfg(feature = "image")]
fn ecr(ctx: &Context, selected: &[String], account: &Account) -> Option<iam::Ecr> {
    if !selected
        .iter()
        .any(|name| ctx.manifest.services[name].kind.is_image())
    {
        return None;
    }
    let host = ctx.manifest.project.registry.as_deref()?;
    let parsed = deployer_image::EcrHost::parse(host)?;
    let partition = if host.ends_with(".amazonaws.com.cn") {
        "aws-cn".to_owned()
    } else {
        account.partition.clone()
    };
    Some(iam::Ecr {
        partition,
        account: parsed.account,
        region: parsed.region,
    })
}

#[cfg(not(feature = "image"))]
fn ecr(_: &Context, _: &[String], _: &Account) -> Option<iam::Ecr> {
    None
}

/// A failed read of a live resource: a configuration error (exit 2) when the resource does not
/// exist, else a failure (exit 1).
#[cfg_attr(
    not(any(
        feature = "ecs",
        feature = "agentcore",
        feature = "lambda",
        feature = "sagemaker"
    )),
    allow(dead_code)
)]
fn read_failed<E: ProvideErrorMetadata + std::error::Error + 'static>(
    operation: &str,
    what: &str,
    error: &aws_sdk_ssm::error::SdkError<E, aws_sdk_ssm::config::http::HttpResponse>,
) -> anyhow::Error {
    if deployer_aws::classify(error) == deployer_aws::ErrorClass::NotFound {
        return UsageError(format!("{what} does not exist ({operation}: {}); check deployer.toml and the AWS account and region", deployer_aws::error_line(error))).into();
    }
    anyhow!(
        "{operation} on {what} failed: {}",
        deployer_aws::error_line(error)
    )
}

async fn facts_of(
    ctx: &Context,
    account: &Account,
    service: &Service,
) -> anyhow::Result<ServiceFacts> {
    let smoke_invoke = service
        .smoke
        .as_ref()
        .is_some_and(|smoke| matches!(smoke.check, SmokeCheck::Invoke { .. }));
    // The IaC revert guard of status and plan: the stack named in `iac`, else the one the
    // target's stack-name tag names now (found by reading the tag, as status does).
    let (iac_stacks, reads_owner_tag) = match &service.iac {
        Some(iac) => match (&iac.source, iac.ignores_image) {
            (deployer_core::manifest::IacSource::CfnStack(stack), false) => {
                (vec![stack.clone()], false)
            }
            _ => (Vec::new(), false),
        },
        None if service.kind.is_image() => {
            use deployer_engine::Targets as _;
            let stack = match crate::targets::CliTargets::new(ctx).deployer(service) {
                Ok(deployer) => deployer.owning_stack().await.ok().flatten(),
                Err(_) => None,
            };
            (stack.into_iter().collect(), true)
        }
        None => (Vec::new(), false),
    };
    Ok(ServiceFacts {
        name: service.name.clone(),
        repository: service.image.as_ref().map(|image| image.repository.clone()),
        smoke_invoke,
        remote_build: ctx.manifest.codebuild(service).is_some(),
        iac_stacks,
        reads_owner_tag,
        live: live(ctx, account, service).await?,
        log_groups: log_groups(ctx, service).await?,
    })
}

/// Where the service logs, as its deployer says ([`Deployer::log_sources`]).
///
/// [`Deployer::log_sources`]: deployer_core::Deployer::log_sources
async fn log_groups(ctx: &Context, service: &Service) -> anyhow::Result<Vec<iam::LogGroupFacts>> {
    use deployer_engine::Targets as _;
    let target = crate::targets::CliTargets::new(ctx)
        .deployer(service)
        .map_err(anyhow::Error::new)?;
    let live = target.read_live().await?;
    let mut groups: Vec<iam::LogGroupFacts> = target
        .log_sources(&live)
        .await?
        .into_iter()
        .map(|source| iam::LogGroupFacts {
            region: source.region,
            group: source.group,
        })
        .collect();
    groups.dedup();
    Ok(groups)
}

#[allow(unused_variables)]
async fn live(ctx: &Context, ctx_account: &Account, service: &Service) -> anyhow::Result<Live> {
    #[allow(unused_imports)]
    use deployer_core::manifest::Target;
    let sdk = &ctx.sdk;
    match &service.target {
        #[cfg(feature = "ecs")]
        Target::Ecs(target) => {
            use aws_sdk_ecs::types::TaskDefinitionField;
            let ecs = aws_sdk_ecs::Client::new(sdk);
            let what = format!("ECS service {}/{}", target.cluster, target.service);
            let described = ecs
                .describe_services()
                .cluster(&target.cluster)
                .services(&target.service)
                .send()
                .await
                .map_err(|error| read_failed("DescribeServices", &what, &error))?;
            let live = described
                .services()
                .iter()
                .find(|s| s.status() != Some("INACTIVE"))
                .ok_or_else(|| UsageError(format!("{what} does not exist (no ACTIVE service by that name); check deployer.toml and the AWS account and region")))?;
            let service_arn = live
                .service_arn()
                .context("DescribeServices returned no services[0].serviceArn")?
                .to_owned();
            let task_definition_arn = live
                .task_definition()
                .context("DescribeServices returned no services[0].taskDefinition")?
                .to_owned();
            let output = ecs
                .describe_task_definition()
                .task_definition(&task_definition_arn)
                .include(TaskDefinitionField::Tags)
                .send()
                .await
                .map_err(|error| {
                    read_failed("DescribeTaskDefinition", &task_definition_arn, &error)
                })?;
            let definition = output
                .task_definition()
                .context("DescribeTaskDefinition returned no taskDefinition")?;
            Ok(Live::Ecs {
                family: definition
                    .family()
                    .context("DescribeTaskDefinition returned no taskDefinition.family")?
                    .to_owned(),
                task_role: definition.task_role_arn().map(str::to_owned),
                execution_role: definition.execution_role_arn().map(str::to_owned),
                // `aws:` tags are not copied into a new revision (deployer-ecs)
                tagged: output.tags().iter().any(|tag| {
                    !tag.key()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                        .starts_with("aws:")
                }),
                registers: !target.force_new_deployment,
                load_balanced: live
                    .load_balancers()
                    .iter()
                    .any(|lb| lb.target_group_arn().is_some()),
                service_arn,
                task_definition_arn,
            })
        }
        #[cfg(feature = "agentcore")]
        Target::Agentcore(target) => {
            let what = format!("AgentCore runtime {}", target.runtime_id);
            let runtime = aws_sdk_bedrockagentcorecontrol::Client::new(sdk)
                .get_agent_runtime()
                .agent_runtime_id(&target.runtime_id)
                .send()
                .await
                .map_err(|error| read_failed("GetAgentRuntime", &what, &error))?;
            // IAM names a runtime `runtime/<id>` (what AWS returns as agentRuntimeArn); built
            // from the id, in the returned ARN's partition, region and account.
            let returned = iam::Arn::parse(runtime.agent_runtime_arn());
            let (partition, region, account) = match &returned {
                Some(arn) => (arn.partition, arn.region, arn.account),
                None => (
                    ctx_account.partition.as_str(),
                    ctx_account.region.as_str(),
                    ctx_account.account.as_str(),
                ),
            };
            Ok(Live::Agentcore {
                runtime_arn: format!(
                    "arn:{partition}:bedrock-agentcore:{region}:{account}:runtime/{}",
                    target.runtime_id
                ),
                role_arn: runtime.role_arn().to_owned(),
                endpoints: target.endpoints.clone(),
            })
        }
        #[cfg(feature = "lambda-image")]
        Target::LambdaImage(target) => lambda(sdk, target, None).await,
        #[cfg(feature = "lambda-zip")]
        Target::LambdaZip(target) => {
            let s3 = target.s3_bucket.clone().map(|bucket| {
                let prefix = target.s3_key_prefix.clone().unwrap_or_else(|| {
                    format!("deployer/{}/{}/", ctx.manifest.project.name, service.name)
                });
                (bucket, prefix)
            });
            lambda(sdk, &target.lambda, s3).await
        }
        #[cfg(feature = "sagemaker")]
        Target::Sagemaker(target) => sagemaker(sdk, target).await,
        #[cfg(feature = "config")]
        Target::Config(target) => Ok(config(ctx, ctx_account, service, target)),
        #[allow(unreachable_patterns)]
        _ => Err(crate::targets::require(service).err().map_or_else(
            || anyhow!("kind {} is not compiled into this build", service.kind),
            anyhow::Error::new,
        )),
    }
}

/// A config service's facts come from the manifest (its lookups resolved): the table's ARN
/// in the caller's account and region (or as written, when it is one), the prefix, the bucket.
#[cfg(feature = "config")]
fn config(
    ctx: &Context,
    account: &Account,
    service: &Service,
    target: &deployer_core::manifest::ConfigTarget,
) -> Live {
    use deployer_core::manifest::ConfigStore;
    let project = &ctx.manifest.project;
    let names = deployer_config::Names::of(
        &project.name,
        &project.ssm_prefix,
        &service.name,
        target.s3_key_prefix.as_deref(),
    );
    let store = match &target.store {
        ConfigStore::Dynamodb { table, .. } if table.starts_with("arn:") => {
            iam::ConfigStoreFacts::Table { arn: table.clone() }
        }
        ConfigStore::Dynamodb { table, .. } => iam::ConfigStoreFacts::Table {
            arn: format!(
                "arn:{}:dynamodb:{}:{}:table/{table}",
                account.partition, account.region, account.account
            ),
        },
        ConfigStore::Ssm { prefix } => iam::ConfigStoreFacts::Parameters {
            prefix: prefix.clone(),
        },
    };
    Live::Config {
        store,
        marker: names.marker,
        bucket: target.s3_bucket.clone(),
        key_prefix: names.key_prefix,
    }
}

#[cfg(feature = "lambda")]
async fn lambda(
    sdk: &aws_config::SdkConfig,
    target: &deployer_core::manifest::LambdaTarget,
    s3: Option<(String, String)>,
) -> anyhow::Result<Live> {
    let what = format!("Lambda function {}", target.function);
    let function = aws_sdk_lambda::Client::new(sdk)
        .get_function()
        .function_name(&target.function)
        .send()
        .await
        .map_err(|error| read_failed("GetFunction", &what, &error))?;
    let arn = function
        .configuration()
        .and_then(|c| c.function_arn())
        .context("GetFunction returned no Configuration.FunctionArn")?;
    Ok(Live::Lambda {
        function_arn: arn.trim_end_matches(":$LATEST").to_owned(),
        publish: target.publish,
        alias: target.alias.clone(),
        s3,
    })
}

#[cfg(feature = "sagemaker")]
async fn sagemaker(
    sdk: &aws_config::SdkConfig,
    target: &deployer_core::manifest::SagemakerTarget,
) -> anyhow::Result<Live> {
    let client = aws_sdk_sagemaker::Client::new(sdk);
    let what = format!("SageMaker endpoint {}", target.endpoint);
    let endpoint = client
        .describe_endpoint()
        .endpoint_name(&target.endpoint)
        .send()
        .await
        .map_err(|error| read_failed("DescribeEndpoint", &what, &error))?;
    let endpoint_arn = endpoint
        .endpoint_arn()
        .context("DescribeEndpoint returned no EndpointArn")?
        .to_owned();
    let config_name = endpoint
        .endpoint_config_name()
        .context("DescribeEndpoint returned no EndpointConfigName")?;
    let config = client
        .describe_endpoint_config()
        .endpoint_config_name(config_name)
        .send()
        .await
        .map_err(|error| read_failed("DescribeEndpointConfig", config_name, &error))?;
    let mut roles: Vec<String> = config
        .execution_role_arn()
        .map(str::to_owned)
        .into_iter()
        .collect();
    let mut live_model_arns = Vec::new();
    for variant in config.production_variants() {
        let Some(model_name) = variant.model_name() else {
            continue;
        };
        let model = client
            .describe_model()
            .model_name(model_name)
            .send()
            .await
            .map_err(|error| read_failed("DescribeModel", model_name, &error))?;
        live_model_arns.extend(model.model_arn().map(str::to_owned));
        roles.extend(model.execution_role_arn().map(str::to_owned));
    }
    roles.sort();
    roles.dedup();
    Ok(Live::Sagemaker {
        live_config_arn: config
            .endpoint_config_arn()
            .context("DescribeEndpointConfig returned no EndpointConfigArn")?
            .to_owned(),
        endpoint_arn,
        name_prefix: sagemaker_name_prefix(&target.endpoint),
        live_model_arns,
        roles,
    })
}

/// What every model and endpoint-config name deployer-sagemaker creates for `endpoint` starts
/// with: the endpoint name, characters other than ASCII letters and digits as `-`, cut to 36
/// characters (its `names::prefix`).
#[cfg(any(feature = "sagemaker", test))]
fn sagemaker_name_prefix(endpoint: &str) -> String {
    endpoint
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(36)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sagemaker_prefix_is_the_cut_endpoint_name() {
        assert_eq!(sagemaker_name_prefix("acme-embeddings"), "acme-embeddings");
        assert_eq!(sagemaker_name_prefix(&"e".repeat(50)).len(), 36);
    }

    #[test]
    fn lookups_follow_the_selection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deployer.toml");
        let source = r#"
[project]
name = "acme"
registry = { env = "ACME_REGISTRY" }

[services.api]
kind = "agentcore"
dockerfile = "Dockerfile"
platform = "linux/arm64"
inputs = ["src/**"]
repository = "acme/api"
runtime_id = { ssm = "/acme/api/runtime-id" }

[services.render]
kind = "lambda-zip"
source = "render"
function = { cfn_output = { stack = "Acme", output = "Render" } }
"#;
        std::fs::write(&path, source).unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir_all(dir.path().join("render")).unwrap();
        let manifest = Manifest::load(&path).unwrap();
        let zip_only = lookups_of(&manifest, &["render".to_owned()]);
        assert_eq!(
            zip_only,
            [Lookup::CfnOutput {
                stack: "Acme".into(),
                output: "Render".into()
            }],
            "no registry lookup without an image service"
        );
        let all = lookups_of(&manifest, &["api".to_owned(), "render".to_owned()]);
        assert_eq!(all.len(), 3);
        assert!(all.contains(&Lookup::Env {
            var: "ACME_REGISTRY".into()
        }));
    }
}
