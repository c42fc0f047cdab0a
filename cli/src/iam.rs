//! The least-privilege IAM policy of a CI deploy role: exactly the actions `deployer deploy`
//! (and `plan`, `status`, `wait`, `rollback`) calls for the selected services, each on the
//! resources it touches.
//!
//! [`policy`] is pure: it turns [`Facts`] — the caller's account, the manifest with its lookups
//! resolved, and what the live resources say (ARNs, roles) — into a [`Policy`]. The
//! `iam-policy` command gathers the facts.
//!
//! # What is granted, and why
//!
//! | statement | actions | resources | because |
//! |---|---|---|---|
//! | `DeployerState` | `ssm:GetParameters`, `ssm:PutParameter` | `<prefix>/<service>/image-tag` and `/deploy-state` of each service | the tag IaC reads back; the deploy record (rollback target, pending rollout, last outcome); the records of every service are read in batches of ten |
//! | `DeployerLocks` | `ssm:GetParameter`, `ssm:PutParameter`, `ssm:DeleteParameter` | `<prefix>/<service>/lock` | one deploy per service at a time: created without overwrite, renewed, deleted |
//! | `DeployerLockTakeovers` | `ssm:GetParameter`, `ssm:PutParameter`, `ssm:DeleteParameter` | `<prefix>/<service>/lock-takeover-*` | the token of the one deploy that removes a dead holder's expired lock (read to recognise its own, or a stale one) |
//! | `LookupSsmParameters` | `ssm:GetParameter` | the `ssm` lookups' parameters | lookups are resolved on every run |
//! | `LookupCloudFormationStacks` | `cloudformation:DescribeStacks` | `stack/<name>/*` of the `cfn_output` lookups | |
//! | `LookupTerraformStates` | `s3:GetObject` | the `s3://` states of the `tf_output` lookups | |
//! | `EcrLoginAcceptsOnlyStar` | `ecr:GetAuthorizationToken` | `*` | the local builder's login (only when a selected image builds here); the action has no resource |
//! | `EcrCheckBuiltOnCodeBuild` | `ecr:DescribeImages`, `ecr:BatchGetImage`, `ecr:GetDownloadUrlForLayer` | the repositories of services with `builder = "codebuild"` | the tag and platform checks; the CodeBuild project's role pushes (for those services no login and no push actions; `EcrMoveTagBuiltOnCodeBuild`: `ecr:PutImage`, which tags the recorded images `deployer-current` and `deployer-previous` and, for an ECS service with `force_new_deployment`, moves its tag) |
//! | `EcrCheckAndPush` | `ecr:DescribeImages`, `ecr:BatchGetImage`, `ecr:GetDownloadUrlForLayer`, `ecr:BatchCheckLayerAvailability`, `ecr:InitiateLayerUpload`, `ecr:UploadLayerPart`, `ecr:CompleteLayerUpload`, `ecr:PutImage` | the services' repositories | "is this tag there, as what manifest, for which platform" (API: the manifest and its config blob), then the builder's push (registry protocol, authorized as these actions) |
//! | `EcsTaskDefinitionsAcceptOnlyStar` | `ecs:DescribeTaskDefinition`, `ecs:RegisterTaskDefinition` (not for services with `force_new_deployment` only, which restart the live revision: no register, tag or pass-role) | `*` | ECS does not scope these two by resource |
//! | `<Service>EcsService` | `ecs:DescribeServices`, `ecs:UpdateService` | the service | read, roll, poll |
//! | `<Service>EcsTagOnRegister` | `ecs:TagResource` if `ecs:CreateAction` = `RegisterTaskDefinition` | `task-definition/<family>:*` | a new revision carries the live one's tags: tag-on-create is authorized as `TagResource` |
//! | `<Service>PassTaskRoles` | `iam:PassRole` if `iam:PassedToService` = `ecs-tasks.amazonaws.com` | the live task and execution roles | `RegisterTaskDefinition` passes them again |
//! | `<Service>AgentCoreRuntime` | `bedrock-agentcore:GetAgentRuntime`, `bedrock-agentcore:UpdateAgentRuntime` | the runtime | |
//! | `<Service>AgentCoreEndpoints` | `bedrock-agentcore:GetAgentRuntimeEndpoint`, `bedrock-agentcore:UpdateAgentRuntimeEndpoint` | `runtime/<id>/runtime-endpoint/<name>` of each of `endpoints` | the named endpoints are read, moved to each new version and back by a rollback (`GetAgentRuntime` of a recorded version is authorized on the runtime) |
//! | `<Service>PassRuntimeRole` | `iam:PassRole` if `iam:PassedToService` = `bedrock-agentcore.amazonaws.com` | the live runtime role | `UpdateAgentRuntime` sends the role again (a full replacement) |
//! | `<Service>LambdaFunction` | `lambda:GetFunction`, `lambda:GetFunctionConfiguration`, `lambda:UpdateFunctionCode`; with `publish`: `lambda:PublishVersion` (+ `lambda:ListVersionsByFunction` without an alias); with `alias`: `lambda:GetAlias`, `lambda:UpdateAlias`, `lambda:CreateAlias` | the function | `UpdateFunctionCode` passes no role: no `iam:PassRole` |
//! | `<Service>LambdaVersions` | `lambda:GetFunctionConfiguration` | `<function>:*` | with `publish`: a published version is read until it is active |
//! | `<Service>LambdaZipUpload` | `s3:PutObject`, `s3:GetObject` | `<s3_bucket>/<s3_key_prefix>*` | zips above the direct-upload limit (`HeadObject` is authorized as `GetObject`) |
//! | `<Service>ConfigTableItems` | `dynamodb:Scan`, `dynamodb:PutItem`, `dynamodb:UpdateItem`, `dynamodb:DeleteItem` | the config service's table | the items are read with one `Scan` and written with `TransactWriteItems`, which IAM authorizes per write it holds (put, update, delete); nothing about the table itself |
//! | `<Service>ConfigParametersRead` | `ssm:GetParametersByPath` | the config service's prefix (the path itself) | the parameters under it are read in pages |
//! | `<Service>ConfigParameters` | `ssm:GetParameters`, `ssm:PutParameter`, `ssm:DeleteParameters` | `<prefix>/*` | versions checked again before a group of writes; one parameter per leaf written; removed ones deleted (`prune`) |
//! | `SsmDescribeParametersAcceptsOnlyStar` | `ssm:DescribeParameters` | `*` | the owner marks are in the descriptions, which only this list action returns; it has no resource |
//! | `<Service>ConfigApplied` | `ssm:GetParameter`, `ssm:PutParameter` | `<ssm_prefix>/<service>/config-applied` | the marker of the set last applied completely: the no-op path's one read |
//! | `<Service>ConfigSets` | `s3:PutObject`, `s3:GetObject` | `<s3_bucket>/<s3_key_prefix>*` | the content-addressed copy of every applied set, read back by `rollback` and `status` (`HeadObject` is authorized as `GetObject`) |
//! | `SageMakerListAcceptsOnlyStar` | `sagemaker:ListModels`, `sagemaker:ListEndpointConfigs` | `*` | the cleanup finds the copies it made by name prefix; SageMaker's list actions have no resource |
//! | `<Service>SageMakerEndpoint` | `sagemaker:DescribeEndpoint`, `sagemaker:UpdateEndpoint` | the endpoint | |
//! | `<Service>SageMakerLiveConfig` | `sagemaker:DescribeEndpointConfig`, `sagemaker:ListTags`, `sagemaker:UpdateEndpoint` | the live endpoint config | copied into the new one; `UpdateEndpoint` is authorized on the config it moves to as well as on the endpoint, and a rollback moves back to this one |
//! | `<Service>SageMakerLiveModels` | `sagemaker:DescribeModel`, `sagemaker:ListTags` | the live models | copied into the new ones |
//! | `<Service>SageMakerOwnConfigs` | `sagemaker:CreateEndpointConfig`, `sagemaker:DescribeEndpointConfig`, `sagemaker:DeleteEndpointConfig`, `sagemaker:AddTags`, `sagemaker:ListTags`, `sagemaker:UpdateEndpoint` | `endpoint-config/<endpoint>-*` | the configs deployer creates (named from the endpoint), moves to and cleans up; tags on create are authorized as `AddTags` |
//! | `<Service>SageMakerOwnModels` | `sagemaker:CreateModel`, `sagemaker:DescribeModel`, `sagemaker:DeleteModel`, `sagemaker:AddTags`, `sagemaker:ListTags` | `model/<endpoint>-*` | likewise for models |
//! | `<Service>PassModelRole` | `iam:PassRole` if `iam:PassedToService` = `sagemaker.amazonaws.com` | the live models' execution roles | `CreateModel` passes it |
//! | `CodeBuildProjects` | `codebuild:StartBuild`, `codebuild:BatchGetBuilds`, `codebuild:StopBuild` | the CodeBuild projects of the services with `builder = "codebuild"` | start a build, follow it, stop it when the run is interrupted or its deadline passes |
//! | `CodeBuildContexts` | `s3:PutObject`, `s3:GetObject` | `<bucket>/deployer/<project>/contexts/*` | the build context upload (`HeadObject` first, authorized as `GetObject`) |
//! | `CodeBuildLogs` | `logs:GetLogEvents` | `log-group:/aws/codebuild/<codebuild project>:log-stream:*` | the build's log lines (CodeBuild's default log group) |
//! | `<Service>IacTemplate` | `cloudformation:GetTemplate` | `stack/<name>/*` of the stack in `iac = { cfn_stack }`, or of the stack the target's `aws:cloudformation:stack-name` tag names | `status` and `plan`: would the stack's next deploy revert the image (the IaC revert guard) |
//! | `<Service>IacOwner` | `lambda:ListTags` / `bedrock-agentcore:ListTagsForResource` | the function / the runtime (services without `iac`) | `status` and `plan` find the owning stack by the target's stack-name tag (ECS returns the service's tags with `DescribeServices`; `GetFunction` returns the tags only to a caller allowed `ListTags`) |
//! | `<Service>LogsOnFailure` | `logs:FilterLogEvents` | the service's log groups (an ECS container's `awslogs-group`, `/aws/lambda/<function>`, the runtime's, the endpoint's) | read only after a failed rollout (its diagnosis's log tail) and by `deployer logs` |
//! | `<Service>LogStreamsOnFailure` | `logs:GetLogEvents` | `log-group:<awslogs-group>:log-stream:*` | ECS: the failed tasks' containers' last lines |
//! | `ElbTargetHealthOnFailureAcceptsOnlyStar` | `elasticloadbalancing:DescribeTargetHealth` | `*` | ECS services behind load balancers: the targets that are not healthy after a failed rollout; the action has no resource |
//! | `<Service>EcsListTasksOnFailure`, `<Service>EcsTasksOnFailure` | `ecs:ListTasks` / `ecs:DescribeTasks` | `container-instance/<cluster>/*` / `task/<cluster>/*` | ECS: the tasks a failed deployment started, and why they stopped |
//! | `<Service>SmokeInvoke` | `lambda:InvokeFunction` / `bedrock-agentcore:InvokeAgentRuntime` | the alias (or function) / the runtime and the endpoint invoked (the first of `endpoints`, else `DEFAULT`) | an `invoke` smoke check |
//!
//! # Only `*`
//!
//! Some actions have no resource-level permissions, so their statements say so in the Sid:
//! `ecr:GetAuthorizationToken` (a registry-wide login token), `ecs:RegisterTaskDefinition` and
//! `ecs:DescribeTaskDefinition` (ECS authorizes task-definition reads and registrations per
//! account), `sagemaker:ListModels` and `sagemaker:ListEndpointConfigs` (list actions; what is
//! then deleted is scoped to deployer's own names), `ssm:DescribeParameters` (config services
//! on SSM: the list that carries the owner marks). Everything else is scoped to ARNs taken
//! from the manifest, the resolved lookups and the live resources.
//!
//! # Not included
//!
//! - `sts:GetCallerIdentity` needs no permission.
//! - Reading a SecureString under a customer-managed KMS key also needs `kms:Decrypt` on that
//!   key (config services write theirs with the account's default `aws/ssm` key); SageMaker endpoint configs with a `KmsKeyId` need `kms:CreateGrant` on it.
//! - A Lambda image function pulls from ECR with the repository policy IaC set up (it names
//!   `lambda.amazonaws.com`); the deploy role needs no ECR read permission for that.
//! - The CodeBuild project's own role (its ECR push, reading the context object, writing its
//!   logs) belongs to the infrastructure; the deploy role does not pass it. A project whose
//!   logs go to another log group than `/aws/codebuild/<project>` needs `logs:GetLogEvents`
//!   on that group instead.
//! - The policy is a snapshot of the live resources: regenerate it when IaC changes a role, a
//!   task-definition family or a name (the ECS `TagResource` statement appears only while the
//!   live task definition carries tags).

use std::collections::{BTreeMap, BTreeSet};

use deployer_core::manifest::Lookup;
use serde::Serialize;

/// An IAM policy document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Policy {
    #[serde(rename = "Version")]
    pub(crate) version: &'static str,
    #[serde(rename = "Statement")]
    pub(crate) statements: Vec<Statement>,
}

/// One `Allow` statement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Statement {
    #[serde(rename = "Sid")]
    pub(crate) sid: String,
    #[serde(rename = "Effect")]
    pub(crate) effect: &'static str,
    #[serde(rename = "Action")]
    pub(crate) actions: Vec<String>,
    #[serde(rename = "Resource")]
    pub(crate) resources: Vec<String>,
    /// operator → key → values
    #[serde(rename = "Condition", skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) condition: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// Where the deploy role works: the caller's partition, account and region (SSM parameters,
/// lookups and names that are not ARNs live there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) partition: String,
    pub(crate) account: String,
    pub(crate) region: String,
}

/// Everything the policy is derived from.
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    pub(crate) account: Account,
    /// `project.ssm_prefix`.
    pub(crate) ssm_prefix: String,
    /// The registry, when it is ECR and a selected service builds an image.
    pub(crate) ecr: Option<Ecr>,
    /// The distinct lookups resolved for the selected services.
    pub(crate) lookups: Vec<Lookup>,
    pub(crate) services: Vec<ServiceFacts>,
    /// The CodeBuild projects and context buckets of the services built on CodeBuild.
    pub(crate) codebuild: Vec<CodeBuildFacts>,
}

/// Where one service builds on CodeBuild (after lookups).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CodeBuildFacts {
    /// The CodeBuild project.
    pub(crate) project: String,
    pub(crate) bucket: String,
    /// `deployer/<deployer project>/contexts/`.
    pub(crate) key_prefix: String,
}

/// An ECR registry host's parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ecr {
    pub(crate) partition: String,
    pub(crate) account: String,
    pub(crate) region: String,
}

/// One selected service.
#[derive(Clone, Debug)]
pub(crate) struct ServiceFacts {
    pub(crate) name: String,
    /// The image repository (image kinds), after lookups.
    pub(crate) repository: Option<String>,
    /// Whether an `invoke` smoke check runs after its rollouts.
    pub(crate) smoke_invoke: bool,
    /// Whether its image builds on CodeBuild (whose own role pushes it).
    pub(crate) remote_build: bool,
    /// The stacks whose template `status` and `plan` read for the IaC revert guard: the
    /// manifest's `iac.cfn_stack`, or the stack the target's stack-name tag named when the
    /// policy was made.
    pub(crate) iac_stacks: Vec<String>,
    /// Whether `status` and `plan` read the target's stack-name tag (no `iac` in the manifest).
    pub(crate) reads_owner_tag: bool,
    pub(crate) live: Live,
    /// Where it logs ([`Deployer::log_sources`](deployer_core::Deployer::log_sources)): read
    /// after a failed rollout (its diagnosis) and by `deployer logs`.
    pub(crate) log_groups: Vec<LogGroupFacts>,
}

/// A log group a service writes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogGroupFacts {
    /// Its region, when it is not the account's (an `awslogs-region`).
    pub(crate) region: Option<String>,
    pub(crate) group: String,
}

/// What the live resource says. (A build without a kind's feature never reads that kind.)
#[derive(Clone, Debug)]
#[cfg_attr(
    not(all(
        feature = "ecs",
        feature = "agentcore",
        feature = "lambda",
        feature = "sagemaker",
        feature = "config"
    )),
    allow(dead_code)
)]
pub(crate) enum Live {
    Ecs {
        service_arn: String,
        task_definition_arn: String,
        family: String,
        task_role: Option<String>,
        execution_role: Option<String>,
        /// Whether the live task definition has user tags (copied into each new revision).
        tagged: bool,
        /// Whether deploys register new revisions (not with `force_new_deployment`, which
        /// restarts the live revision).
        registers: bool,
        /// Whether the service is behind load balancers (their target health is read after a
        /// failed rollout).
        load_balanced: bool,
    },
    Agentcore {
        runtime_arn: String,
        role_arn: String,
        /// The named endpoints (`endpoints`) deploys move, in manifest order.
        endpoints: Vec<String>,
    },
    Lambda {
        /// Unqualified.
        function_arn: String,
        publish: bool,
        alias: Option<String>,
        /// `(bucket, key prefix)` of zips above the direct-upload limit.
        s3: Option<(String, String)>,
    },
    /// A config service: its store, its marker parameter, where its sets are kept.
    Config {
        store: ConfigStoreFacts,
        /// `<ssm_prefix>/<service>/config-applied`.
        marker: String,
        bucket: String,
        key_prefix: String,
    },
    Sagemaker {
        endpoint_arn: String,
        /// What every model and endpoint config deployer creates for the endpoint starts with.
        name_prefix: String,
        /// ARNs of the live endpoint config and models.
        live_config_arn: String,
        live_model_arns: Vec<String>,
        /// The live models' execution roles.
        roles: Vec<String>,
    },
}

/// Where a config service writes.
#[derive(Clone, Debug)]
#[cfg_attr(not(feature = "config"), allow(dead_code))]
pub(crate) enum ConfigStoreFacts {
    /// A table, by ARN.
    Table { arn: String },
    /// SSM parameters under a prefix.
    Parameters { prefix: String },
}

/// The `iam:PassedToService` value for each kind of role deployer passes on.
pub(crate) mod passed_to {
    pub(crate) const ECS_TASKS: &str = "ecs-tasks.amazonaws.com";
    pub(crate) const AGENTCORE: &str = "bedrock-agentcore.amazonaws.com";
    pub(crate) const SAGEMAKER: &str = "sagemaker.amazonaws.com";
}

/// The parts of an ARN: `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Arn<'a> {
    pub(crate) partition: &'a str,
    pub(crate) service: &'a str,
    pub(crate) region: &'a str,
    pub(crate) account: &'a str,
    pub(crate) resource: &'a str,
}

impl<'a> Arn<'a> {
    pub(crate) fn parse(text: &'a str) -> Option<Arn<'a>> {
        let mut parts = text.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        Some(Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }
}

/// `arn:<partition>:ssm:<region>:<account>:parameter/<name>` (a name's leading `/` is not
/// doubled).
pub(crate) fn parameter_arn(account: &Account, name: &str) -> String {
    format!(
        "arn:{}:ssm:{}:{}:parameter/{}",
        account.partition,
        account.region,
        account.account,
        name.trim_start_matches('/')
    )
}

/// A SageMaker ARN as IAM sees it: the resource name in lower case.
fn sagemaker_arn(arn: &str) -> String {
    match Arn::parse(arn) {
        Some(parts) => format!(
            "arn:{}:{}:{}:{}:{}",
            parts.partition,
            parts.service,
            parts.region,
            parts.account,
            parts.resource.to_ascii_lowercase()
        ),
        None => arn.to_ascii_lowercase(),
    }
}

/// A statement Sid from a service name: `rag-ingestion` → `RagIngestion` (Sids allow only
/// ASCII letters and digits).
pub(crate) fn sid_part(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Builds the statements in a fixed order, keeping Sids unique.
#[derive(Default)]
struct Builder {
    statements: Vec<Statement>,
    sids: BTreeSet<String>,
}

impl Builder {
    fn allow(
        &mut self,
        sid: String,
        actions: &[&str],
        resources: impl IntoIterator<Item = String>,
    ) -> &mut Statement {
        let mut unique = sid.clone();
        let mut n = 2;
        while !self.sids.insert(unique.clone()) {
            unique = format!("{sid}{n}");
            n += 1;
        }
        let mut seen = BTreeSet::new();
        let resources: Vec<String> = resources
            .into_iter()
            .filter(|r| seen.insert(r.clone()))
            .collect();
        let index = self.statements.len();
        self.statements.push(Statement {
            sid: unique,
            effect: "Allow",
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            resources,
            condition: BTreeMap::new(),
        });
        &mut self.statements[index]
    }

    fn pass_role(&mut self, sid: String, roles: impl IntoIterator<Item = String>, service: &str) {
        let roles: Vec<String> = roles.into_iter().collect();
        if roles.is_empty() {
            return;
        }
        self.allow(sid, &["iam:PassRole"], roles).condition = BTreeMap::from([(
            "StringEquals".to_owned(),
            BTreeMap::from([("iam:PassedToService".to_owned(), vec![service.to_owned()])]),
        )]);
    }
}

/// The policy for `facts` (module doc).
pub(crate) fn policy(facts: &Facts) -> Policy {
    let account = &facts.account;
    let mut b = Builder::default();

    let own: Vec<String> = facts
        .services
        .iter()
        .flat_map(|s| {
            [
                parameter_arn(
                    account,
                    &format!("{}/{}/image-tag", facts.ssm_prefix, s.name),
                ),
                parameter_arn(
                    account,
                    &format!("{}/{}/deploy-state", facts.ssm_prefix, s.name),
                ),
            ]
        })
        .collect();
    if !own.is_empty() {
        b.allow(
            "DeployerState".into(),
            &["ssm:GetParameters", "ssm:PutParameter"],
            own,
        );
        let parameter = |service: &ServiceFacts, suffix: &str| {
            parameter_arn(
                account,
                &format!("{}/{}/{suffix}", facts.ssm_prefix, service.name),
            )
        };
        b.allow(
            "DeployerLocks".into(),
            &[
                "ssm:GetParameter",
                "ssm:PutParameter",
                "ssm:DeleteParameter",
            ],
            facts.services.iter().map(|s| parameter(s, "lock")),
        );
        b.allow(
            "DeployerLockTakeovers".into(),
            &[
                "ssm:GetParameter",
                "ssm:PutParameter",
                "ssm:DeleteParameter",
            ],
            facts
                .services
                .iter()
                .map(|s| parameter(s, "lock-takeover-*")),
        );
    }
    lookups(&mut b, facts);

    // Images built here are pushed with the deploy role; images built on CodeBuild are pushed
    // by the CodeBuild project's role, and only read here (the tag check, the platform check)
    // — or retagged, for an ECS service with `force_new_deployment`.
    let repositories = |remote: bool| -> Vec<&str> {
        facts
            .services
            .iter()
            .filter(|s| s.remote_build == remote)
            .filter_map(|s| s.repository.as_deref())
            .collect()
    };
    let (local, remote) = (repositories(false), repositories(true));
    let repository_arn = |ecr: &Ecr, repo: &str| {
        format!(
            "arn:{}:ecr:{}:{}:repository/{repo}",
            ecr.partition, ecr.region, ecr.account
        )
    };
    if let (Some(ecr), false) = (&facts.ecr, local.is_empty()) {
        b.allow(
            "EcrLoginAcceptsOnlyStar".into(),
            &["ecr:GetAuthorizationToken"],
            ["*".to_owned()],
        );
        b.allow(
            "EcrCheckAndPush".into(),
            &[
                "ecr:DescribeImages",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchCheckLayerAvailability",
                "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload",
                "ecr:PutImage",
            ],
            local.iter().map(|repo| repository_arn(ecr, repo)),
        );
    }
    if let (Some(ecr), false) = (&facts.ecr, remote.is_empty()) {
        b.allow(
            "EcrCheckBuiltOnCodeBuild".into(),
            &[
                "ecr:DescribeImages",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            remote.iter().map(|repo| repository_arn(ecr, repo)),
        );
        // Every recorded deploy tags its images `deployer-current`/`deployer-previous` (the
        // retention rule keeps them); `force_new_deployment` also moves the service's tag.
        let retagged: Vec<String> = facts
            .services
            .iter()
            .filter(|s| s.remote_build)
            .filter_map(|s| s.repository.as_deref())
            .map(|repo| repository_arn(ecr, repo))
            .collect();
        if !retagged.is_empty() {
            b.allow(
                "EcrMoveTagBuiltOnCodeBuild".into(),
                &["ecr:PutImage"],
                retagged,
            );
        }
    }
    let ecs: Vec<bool> = facts
        .services
        .iter()
        .filter_map(|s| match s.live {
            Live::Ecs { registers, .. } => Some(registers),
            _ => None,
        })
        .collect();
    if !ecs.is_empty() {
        let actions: &[&str] = if ecs.contains(&true) {
            &["ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition"]
        } else {
            &["ecs:DescribeTaskDefinition"]
        };
        b.allow(
            "EcsTaskDefinitionsAcceptOnlyStar".into(),
            actions,
            ["*".to_owned()],
        );
    }
    if facts
        .services
        .iter()
        .any(|s| matches!(s.live, Live::Sagemaker { .. }))
    {
        b.allow(
            "SageMakerListAcceptsOnlyStar".into(),
            &["sagemaker:ListModels", "sagemaker:ListEndpointConfigs"],
            ["*".to_owned()],
        );
    }
    if !facts.codebuild.is_empty() {
        let distinct: BTreeSet<&CodeBuildFacts> = facts.codebuild.iter().collect();
        b.allow(
            "CodeBuildProjects".into(),
            &[
                "codebuild:StartBuild",
                "codebuild:BatchGetBuilds",
                "codebuild:StopBuild",
            ],
            distinct.iter().map(|c| {
                format!(
                    "arn:{}:codebuild:{}:{}:project/{}",
                    account.partition, account.region, account.account, c.project
                )
            }),
        );
        b.allow(
            "CodeBuildContexts".into(),
            &["s3:PutObject", "s3:GetObject"],
            distinct.iter().map(|c| {
                format!(
                    "arn:{}:s3:::{}/{}*",
                    account.partition, c.bucket, c.key_prefix
                )
            }),
        );
        b.allow(
            "CodeBuildLogs".into(),
            &["logs:GetLogEvents"],
            distinct.iter().map(|c| {
                format!(
                    "arn:{}:logs:{}:{}:log-group:/aws/codebuild/{}:log-stream:*",
                    account.partition, account.region, account.account, c.project
                )
            }),
        );
    }
    for service in &facts.services {
        target(&mut b, account, service);
        on_failure(&mut b, account, service);
    }
    Policy {
        version: "2012-10-17",
        statements: b.statements,
    }
}

/// What a failed rollout's diagnosis reads (and `deployer logs`): the service's log groups;
/// for ECS the stopped tasks of the cluster and the containers' log streams.
fn on_failure(b: &mut Builder, account: &Account, service: &ServiceFacts) {
    let name = sid_part(&service.name);
    let group_arn = |group: &LogGroupFacts| {
        format!(
            "arn:{}:logs:{}:{}:log-group:{}",
            account.partition,
            group.region.as_deref().unwrap_or(&account.region),
            account.account,
            group.group
        )
    };
    if !service.log_groups.is_empty() {
        b.allow(
            format!("{name}LogsOnFailure"),
            &["logs:FilterLogEvents"],
            service.log_groups.iter().map(group_arn),
        );
    }
    let Live::Ecs {
        service_arn,
        load_balanced,
        ..
    } = &service.live
    else {
        return;
    };
    if *load_balanced {
        let sid = "ElbTargetHealthOnFailureAcceptsOnlyStar";
        if !b.sids.contains(sid) {
            b.allow(
                sid.into(),
                &["elasticloadbalancing:DescribeTargetHealth"],
                ["*".to_owned()],
            );
        }
    }
    if !service.log_groups.is_empty() {
        b.allow(
            format!("{name}LogStreamsOnFailure"),
            &["logs:GetLogEvents"],
            service
                .log_groups
                .iter()
                .map(|group| format!("{}:log-stream:*", group_arn(group))),
        );
    }
    // `service/<cluster>/<service>` → the cluster's tasks and container instances.
    let Some((head, path)) = service_arn.split_once(":service/") else {
        return;
    };
    let Some((cluster, _)) = path.split_once('/') else {
        return;
    };
    b.allow(
        format!("{name}EcsListTasksOnFailure"),
        &["ecs:ListTasks"],
        [format!("{head}:container-instance/{cluster}/*")],
    );
    b.allow(
        format!("{name}EcsTasksOnFailure"),
        &["ecs:DescribeTasks"],
        [format!("{head}:task/{cluster}/*")],
    );
}

fn lookups(b: &mut Builder, facts: &Facts) {
    let account = &facts.account;
    let (mut parameters, mut stacks, mut states) = (Vec::new(), Vec::new(), Vec::new());
    for lookup in &facts.lookups {
        match lookup {
            Lookup::Ssm { name } => parameters.push(parameter_arn(account, name)),
            Lookup::CfnOutput { stack, .. } if stack.starts_with("arn:") => {
                stacks.push(stack.clone())
            }
            Lookup::CfnOutput { stack, .. } => stacks.push(format!(
                "arn:{}:cloudformation:{}:{}:stack/{stack}/*",
                account.partition, account.region, account.account
            )),
            Lookup::TfOutput { state, .. } => {
                if let Some(location) = state.strip_prefix("s3://") {
                    states.push(format!("arn:{}:s3:::{location}", account.partition));
                }
            }
            Lookup::Env { .. } => {}
        }
    }
    if !parameters.is_empty() {
        b.allow(
            "LookupSsmParameters".into(),
            &["ssm:GetParameter"],
            parameters,
        );
    }
    if !stacks.is_empty() {
        b.allow(
            "LookupCloudFormationStacks".into(),
            &["cloudformation:DescribeStacks"],
            stacks,
        );
    }
    if !states.is_empty() {
        b.allow("LookupTerraformStates".into(), &["s3:GetObject"], states);
    }
}

/// The IaC revert guard's reads (`status`, `plan`): the owning stacks' templates, and the
/// stack-name tag where reading it takes an action of its own.
fn iac(b: &mut Builder, account: &Account, service: &ServiceFacts) {
    let name = sid_part(&service.name);
    if !service.iac_stacks.is_empty() {
        let stacks = service.iac_stacks.iter().map(|stack| {
            if stack.starts_with("arn:") {
                stack.clone()
            } else {
                format!(
                    "arn:{}:cloudformation:{}:{}:stack/{stack}/*",
                    account.partition, account.region, account.account
                )
            }
        });
        b.allow(
            format!("{name}IacTemplate"),
            &["cloudformation:GetTemplate"],
            stacks,
        );
    }
    if service.reads_owner_tag {
        // ECS returns the service's tags with DescribeServices; Lambda returns the function's
        // with GetFunction to a caller allowed ListTags; AgentCore has a call of its own.
        match &service.live {
            Live::Lambda { function_arn, .. } => {
                b.allow(
                    format!("{name}IacOwner"),
                    &["lambda:ListTags"],
                    [function_arn.clone()],
                );
            }
            Live::Agentcore { runtime_arn, .. } => {
                b.allow(
                    format!("{name}IacOwner"),
                    &["bedrock-agentcore:ListTagsForResource"],
                    [runtime_arn.clone()],
                );
            }
            _ => {}
        }
    }
}

fn target(b: &mut Builder, account: &Account, service: &ServiceFacts) {
    iac(b, account, service);
    let name = sid_part(&service.name);
    match &service.live {
        Live::Config {
            store,
            marker,
            bucket,
            key_prefix,
        } => {
            match store {
                ConfigStoreFacts::Table { arn } => {
                    // TransactWriteItems is authorized per write it holds, as these actions.
                    b.allow(
                        format!("{name}ConfigTableItems"),
                        &[
                            "dynamodb:Scan",
                            "dynamodb:PutItem",
                            "dynamodb:UpdateItem",
                            "dynamodb:DeleteItem",
                        ],
                        [arn.clone()],
                    );
                }
                ConfigStoreFacts::Parameters { prefix } => {
                    b.allow(
                        format!("{name}ConfigParametersRead"),
                        &["ssm:GetParametersByPath"],
                        [parameter_arn(account, prefix)],
                    );
                    b.allow(
                        format!("{name}ConfigParameters"),
                        &[
                            "ssm:GetParameters",
                            "ssm:PutParameter",
                            "ssm:DeleteParameters",
                        ],
                        [format!("{}/*", parameter_arn(account, prefix))],
                    );
                    let sid = "SsmDescribeParametersAcceptsOnlyStar";
                    if !b.sids.contains(sid) {
                        b.allow(sid.into(), &["ssm:DescribeParameters"], ["*".to_owned()]);
                    }
                }
            }
            b.allow(
                format!("{name}ConfigApplied"),
                &["ssm:GetParameter", "ssm:PutParameter"],
                [parameter_arn(account, marker)],
            );
            b.allow(
                format!("{name}ConfigSets"),
                &["s3:PutObject", "s3:GetObject"],
                [format!(
                    "arn:{}:s3:::{bucket}/{key_prefix}*",
                    account.partition
                )],
            );
        }
        Live::Ecs {
            service_arn,
            task_definition_arn,
            family,
            task_role,
            execution_role,
            tagged,
            registers,
            ..
        } => {
            b.allow(
                format!("{name}EcsService"),
                &["ecs:DescribeServices", "ecs:UpdateService"],
                [service_arn.clone()],
            );
            if !registers {
                return;
            }
            if *tagged {
                let revisions = match task_definition_arn.rsplit_once("task-definition/") {
                    Some((head, _)) => format!("{head}task-definition/{family}:*"),
                    None => format!("{task_definition_arn}:*"),
                };
                b.allow(
                    format!("{name}EcsTagOnRegister"),
                    &["ecs:TagResource"],
                    [revisions],
                )
                .condition = BTreeMap::from([(
                    "StringEquals".to_owned(),
                    BTreeMap::from([(
                        "ecs:CreateAction".to_owned(),
                        vec!["RegisterTaskDefinition".to_owned()],
                    )]),
                )]);
            }
            let roles = task_role.iter().chain(execution_role).cloned();
            b.pass_role(format!("{name}PassTaskRoles"), roles, passed_to::ECS_TASKS);
        }
        Live::Agentcore {
            runtime_arn,
            role_arn,
            endpoints,
        } => {
            b.allow(
                format!("{name}AgentCoreRuntime"),
                &[
                    "bedrock-agentcore:GetAgentRuntime",
                    "bedrock-agentcore:UpdateAgentRuntime",
                ],
                [runtime_arn.clone()],
            );
            if !endpoints.is_empty() {
                b.allow(
                    format!("{name}AgentCoreEndpoints"),
                    &[
                        "bedrock-agentcore:GetAgentRuntimeEndpoint",
                        "bedrock-agentcore:UpdateAgentRuntimeEndpoint",
                    ],
                    endpoints
                        .iter()
                        .map(|endpoint| format!("{runtime_arn}/runtime-endpoint/{endpoint}")),
                );
            }
            b.pass_role(
                format!("{name}PassRuntimeRole"),
                [role_arn.clone()],
                passed_to::AGENTCORE,
            );
            if service.smoke_invoke {
                b.allow(
                    format!("{name}SmokeInvoke"),
                    &["bedrock-agentcore:InvokeAgentRuntime"],
                    [
                        runtime_arn.clone(),
                        format!(
                            "{runtime_arn}/runtime-endpoint/{}",
                            endpoints.first().map_or("DEFAULT", String::as_str)
                        ),
                    ],
                );
            }
        }
        Live::Lambda {
            function_arn,
            publish,
            alias,
            s3,
        } => {
            let mut actions = vec![
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:UpdateFunctionCode",
            ];
            if *publish {
                actions.push("lambda:PublishVersion");
                if alias.is_none() {
                    actions.push("lambda:ListVersionsByFunction");
                }
            }
            if alias.is_some() {
                // Alias actions are authorized on the (unqualified) function.
                actions.extend([
                    "lambda:GetAlias",
                    "lambda:UpdateAlias",
                    "lambda:CreateAlias",
                ]);
            }
            b.allow(
                format!("{name}LambdaFunction"),
                &actions,
                [function_arn.clone()],
            );
            if *publish {
                // The state of a published version (and of the alias's) is read by its
                // qualified ARN.
                b.allow(
                    format!("{name}LambdaVersions"),
                    &["lambda:GetFunctionConfiguration"],
                    [format!("{function_arn}:*")],
                );
            }
            if let Some((bucket, prefix)) = s3 {
                let partition = Arn::parse(function_arn).map_or("aws", |arn| arn.partition);
                b.allow(
                    format!("{name}LambdaZipUpload"),
                    &["s3:PutObject", "s3:GetObject"],
                    [format!("arn:{partition}:s3:::{bucket}/{prefix}*")],
                );
            }
            if service.smoke_invoke {
                let invoked = match alias {
                    Some(alias) => format!("{function_arn}:{alias}"),
                    None => function_arn.clone(),
                };
                b.allow(
                    format!("{name}SmokeInvoke"),
                    &["lambda:InvokeFunction"],
                    [invoked],
                );
            }
        }
        Live::Sagemaker {
            endpoint_arn,
            name_prefix,
            live_config_arn,
            live_model_arns,
            roles,
        } => {
            // SageMaker ARNs carry names in lower case (whatever the case of the name): what
            // IAM matches against.
            let endpoint_arn = &sagemaker_arn(endpoint_arn);
            b.allow(
                format!("{name}SageMakerEndpoint"),
                &["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpoint"],
                [endpoint_arn.clone()],
            );
            // UpdateEndpoint is authorized on the endpoint and on the config it moves to.
            b.allow(
                format!("{name}SageMakerLiveConfig"),
                &[
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:ListTags",
                    "sagemaker:UpdateEndpoint",
                ],
                [sagemaker_arn(live_config_arn)],
            );
            if !live_model_arns.is_empty() {
                b.allow(
                    format!("{name}SageMakerLiveModels"),
                    &["sagemaker:DescribeModel", "sagemaker:ListTags"],
                    live_model_arns.iter().map(|arn| sagemaker_arn(arn)),
                );
            }
            let base = endpoint_arn
                .rsplit_once(":endpoint/")
                .map_or(endpoint_arn.as_str(), |(head, _)| head);
            let prefix = name_prefix.to_ascii_lowercase();
            b.allow(
                format!("{name}SageMakerOwnConfigs"),
                &[
                    "sagemaker:CreateEndpointConfig",
                    "sagemaker:DescribeEndpointConfig",
                    "sagemaker:DeleteEndpointConfig",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                    "sagemaker:UpdateEndpoint",
                ],
                [format!("{base}:endpoint-config/{prefix}-*")],
            );
            b.allow(
                format!("{name}SageMakerOwnModels"),
                &[
                    "sagemaker:CreateModel",
                    "sagemaker:DescribeModel",
                    "sagemaker:DeleteModel",
                    "sagemaker:AddTags",
                    "sagemaker:ListTags",
                ],
                [format!("{base}:model/{prefix}-*")],
            );
            b.pass_role(
                format!("{name}PassModelRole"),
                roles.iter().cloned(),
                passed_to::SAGEMAKER,
            );
        }
    }
}

/// What is worth a warning about `policy`: its size against IAM's limits.
pub(crate) fn warnings(policy: &Policy) -> Vec<String> {
    let compact = serde_json::to_string(policy).unwrap_or_default();
    let size = compact.chars().filter(|c| !c.is_whitespace()).count();
    let mut warnings = Vec::new();
    if size > 6144 {
        warnings.push(format!(
            "the policy has {size} characters: above the 6,144 of a managed policy (an inline role policy may have 10,240); split the services over several policies with --service"
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            partition: "aws".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    fn facts(services: Vec<ServiceFacts>) -> Facts {
        Facts {
            account: account(),
            ssm_prefix: "/acme".into(),
            ecr: None,
            lookups: Vec::new(),
            services,
            codebuild: Vec::new(),
        }
    }

    #[test]
    fn codebuild_builds_are_scoped_to_the_project_the_context_prefix_and_the_log_group() {
        let mut with = facts(vec![ecs("api"), ecs("worker")]);
        let shared = CodeBuildFacts {
            project: "acme-images".into(),
            bucket: "acme-contexts".into(),
            key_prefix: "deployer/acme/contexts/".into(),
        };
        with.codebuild = vec![shared.clone(), shared];
        let policy = policy(&with);
        let projects = statement(&policy, "CodeBuildProjects");
        assert_eq!(
            projects.resources,
            ["arn:aws:codebuild:us-east-1:123456789012:project/acme-images"]
        );
        assert_eq!(
            statement(&policy, "CodeBuildContexts").resources,
            ["arn:aws:s3:::acme-contexts/deployer/acme/contexts/*"]
        );
        assert_eq!(
            statement(&policy, "CodeBuildLogs").resources,
            [
                "arn:aws:logs:us-east-1:123456789012:log-group:/aws/codebuild/acme-images:log-stream:*"
            ]
        );
        let without = super::policy(&facts(vec![ecs("api")]));
        assert!(!sids(&without).iter().any(|s| s.starts_with("CodeBuild")));

        // With ECR: no login and no push for images CodeBuild pushes.
        let ecr = Ecr {
            partition: "aws".into(),
            account: "123456789012".into(),
            region: "us-east-1".into(),
        };
        let mut remote = ecs("api");
        remote.remote_build = true;
        let mut mixed = facts(vec![remote.clone(), ecs("worker")]);
        mixed.ecr = Some(ecr.clone());
        let policy = super::policy(&mixed);
        assert_eq!(
            statement(&policy, "EcrCheckBuiltOnCodeBuild").resources,
            ["arn:aws:ecr:us-east-1:123456789012:repository/acme/api"]
        );
        assert_eq!(
            statement(&policy, "EcrCheckAndPush").resources,
            ["arn:aws:ecr:us-east-1:123456789012:repository/acme/worker"]
        );
        let mut only_remote = facts(vec![remote]);
        only_remote.ecr = Some(ecr);
        let policy = super::policy(&only_remote);
        // The recorded images are tagged for the retention rule (`deployer-current`, …).
        assert_eq!(
            statement(&policy, "EcrMoveTagBuiltOnCodeBuild").resources,
            ["arn:aws:ecr:us-east-1:123456789012:repository/acme/api"]
        );
        for absent in ["EcrLoginAcceptsOnlyStar", "EcrCheckAndPush"] {
            assert!(
                !sids(&policy).contains(&absent),
                "{absent}: {:?}",
                sids(&policy)
            );
        }
    }

    fn ecs(name: &str) -> ServiceFacts {
        ServiceFacts {
            name: name.into(),
            repository: Some(format!("acme/{name}")),
            smoke_invoke: false,
            remote_build: false,
            log_groups: Vec::new(),
            iac_stacks: Vec::new(),
            reads_owner_tag: false,
            live: Live::Ecs {
                service_arn: format!("arn:aws:ecs:us-east-1:123456789012:service/acme/{name}"),
                task_definition_arn: format!(
                    "arn:aws:ecs:us-east-1:123456789012:task-definition/acme-{name}:7"
                ),
                family: format!("acme-{name}"),
                task_role: Some("arn:aws:iam::123456789012:role/acme-task".into()),
                execution_role: Some("arn:aws:iam::123456789012:role/acme-execution".into()),
                tagged: true,
                registers: true,
                load_balanced: false,
            },
        }
    }

    fn lambda(name: &str, publish: bool, alias: Option<&str>) -> ServiceFacts {
        ServiceFacts {
            name: name.into(),
            repository: None,
            smoke_invoke: false,
            remote_build: false,
            log_groups: Vec::new(),
            iac_stacks: Vec::new(),
            reads_owner_tag: false,
            live: Live::Lambda {
                function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:acme-{name}"),
                publish,
                alias: alias.map(str::to_owned),
                s3: None,
            },
        }
    }

    fn statement<'p>(policy: &'p Policy, sid: &str) -> &'p Statement {
        policy
            .statements
            .iter()
            .find(|s| s.sid == sid)
            .unwrap_or_else(|| {
                panic!(
                    "no statement {sid} in {}",
                    serde_json::to_string_pretty(policy).unwrap()
                )
            })
    }

    fn sids(policy: &Policy) -> Vec<&str> {
        policy.statements.iter().map(|s| s.sid.as_str()).collect()
    }

    fn config(name: &str, store: ConfigStoreFacts) -> ServiceFacts {
        ServiceFacts {
            name: name.into(),
            repository: None,
            smoke_invoke: false,
            remote_build: false,
            log_groups: Vec::new(),
            iac_stacks: Vec::new(),
            reads_owner_tag: false,
            live: Live::Config {
                store,
                marker: format!("/acme/{name}/config-applied"),
                bucket: "acme-deployer".into(),
                key_prefix: format!("deployer/acme/{name}/"),
            },
        }
    }

    #[test]
    fn the_iac_guard_reads_the_owning_stacks_template_and_the_tag_that_names_it() {
        let mut api = ecs("app-api");
        api.iac_stacks = vec!["AcmeCompute".into()];
        let mut render = lambda("render", false, None);
        render.reads_owner_tag = true;
        let policy = policy(&facts(vec![api, render, lambda("plain", false, None)]));
        let template = statement(&policy, "AppApiIacTemplate");
        assert_eq!(template.actions, ["cloudformation:GetTemplate"]);
        assert_eq!(
            template.resources,
            ["arn:aws:cloudformation:us-east-1:123456789012:stack/AcmeCompute/*"]
        );
        let owner = statement(&policy, "RenderIacOwner");
        assert_eq!(owner.actions, ["lambda:ListTags"]);
        assert_eq!(
            owner.resources,
            ["arn:aws:lambda:us-east-1:123456789012:function:acme-render"]
        );
        // No `iac` stack, no tag read: nothing for the guard.
        for absent in [
            "PlainIacTemplate",
            "PlainIacOwner",
            "AppApiIacOwner",
            "RenderIacTemplate",
        ] {
            assert!(!sids(&policy).contains(&absent), "{absent}");
        }
    }

    #[test]
    fn a_config_service_gets_its_table_items_marker_and_sets_only() {
        let table = config(
            "repos",
            ConfigStoreFacts::Table {
                arn: "arn:aws:dynamodb:us-east-1:123456789012:table/acme-repos".into(),
            },
        );
        let policy = policy(&facts(vec![table]));
        assert_eq!(
            sids(&policy)[3..],
            [
                "ReposConfigTableItems",
                "ReposConfigApplied",
                "ReposConfigSets"
            ]
        );
        let items = statement(&policy, "ReposConfigTableItems");
        assert_eq!(
            items.actions,
            [
                "dynamodb:Scan",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem"
            ]
        );
        assert_eq!(
            items.resources,
            ["arn:aws:dynamodb:us-east-1:123456789012:table/acme-repos"]
        );
        assert_eq!(
            statement(&policy, "ReposConfigApplied").resources,
            ["arn:aws:ssm:us-east-1:123456789012:parameter/acme/repos/config-applied"]
        );
        assert_eq!(
            statement(&policy, "ReposConfigSets").resources,
            ["arn:aws:s3:::acme-deployer/deployer/acme/repos/*"]
        );
        let flags = |name: &str| {
            config(
                name,
                ConfigStoreFacts::Parameters {
                    prefix: format!("/acme/{name}"),
                },
            )
        };
        let two = super::policy(&facts(vec![flags("flags"), flags("limits")]));
        assert_eq!(
            statement(&two, "FlagsConfigParameters").resources,
            ["arn:aws:ssm:us-east-1:123456789012:parameter/acme/flags/*"]
        );
        assert_eq!(
            statement(&two, "FlagsConfigParametersRead").resources,
            ["arn:aws:ssm:us-east-1:123456789012:parameter/acme/flags"]
        );
        let stars: Vec<&str> = sids(&two)
            .into_iter()
            .filter(|s| s.starts_with("SsmDescribe"))
            .collect();
        assert_eq!(stars, ["SsmDescribeParametersAcceptsOnlyStar"]);
    }

    #[test]
    fn state_parameters_are_exactly_the_services_own_two() {
        let policy = policy(&facts(vec![lambda("render", false, None)]));
        let state = statement(&policy, "DeployerState");
        assert_eq!(state.actions, ["ssm:GetParameters", "ssm:PutParameter"]);
        assert_eq!(
            state.resources,
            [
                "arn:aws:ssm:us-east-1:123456789012:parameter/acme/render/image-tag",
                "arn:aws:ssm:us-east-1:123456789012:parameter/acme/render/deploy-state"
            ]
        );
        let locks = statement(&policy, "DeployerLocks");
        assert_eq!(
            locks.resources,
            ["arn:aws:ssm:us-east-1:123456789012:parameter/acme/render/lock"]
        );
        assert!(locks.actions.contains(&"ssm:DeleteParameter".to_owned()));
        assert_eq!(
            statement(&policy, "DeployerLockTakeovers").resources,
            ["arn:aws:ssm:us-east-1:123456789012:parameter/acme/render/lock-takeover-*"]
        );
        // nothing else under the prefix (e.g. a runtime id the infrastructure wrote) is writable
        for statement in &policy.statements {
            if statement.actions.iter().any(|a| a == "ssm:PutParameter") {
                assert!(
                    statement
                        .resources
                        .iter()
                        .all(|r| !r.ends_with("/*") && !r.ends_with("render*")),
                    "{statement:?}"
                );
            }
        }
    }

    #[test]
    fn ecs_scopes_everything_but_the_task_definition_calls() {
        let policy = policy(&facts(vec![ecs("app-api")]));
        assert_eq!(
            sids(&policy)[..3],
            ["DeployerState", "DeployerLocks", "DeployerLockTakeovers"]
        );
        assert_eq!(
            sids(&policy)[3..],
            [
                "EcsTaskDefinitionsAcceptOnlyStar",
                "AppApiEcsService",
                "AppApiEcsTagOnRegister",
                "AppApiPassTaskRoles",
                "AppApiEcsListTasksOnFailure",
                "AppApiEcsTasksOnFailure"
            ]
        );
        assert_eq!(
            statement(&policy, "EcsTaskDefinitionsAcceptOnlyStar").resources,
            ["*"]
        );
        assert_eq!(
            statement(&policy, "AppApiEcsService").resources,
            ["arn:aws:ecs:us-east-1:123456789012:service/acme/app-api"]
        );
        let tag = statement(&policy, "AppApiEcsTagOnRegister");
        assert_eq!(
            tag.resources,
            ["arn:aws:ecs:us-east-1:123456789012:task-definition/acme-app-api:*"]
        );
        assert_eq!(
            tag.condition["StringEquals"]["ecs:CreateAction"],
            ["RegisterTaskDefinition"]
        );
        let pass = statement(&policy, "AppApiPassTaskRoles");
        assert_eq!(pass.actions, ["iam:PassRole"]);
        assert_eq!(
            pass.resources,
            [
                "arn:aws:iam::123456789012:role/acme-task",
                "arn:aws:iam::123456789012:role/acme-execution"
            ]
        );
        assert_eq!(
            pass.condition["StringEquals"]["iam:PassedToService"],
            ["ecs-tasks.amazonaws.com"]
        );
        // the only `*` is in the statement that says so
        for s in &policy.statements {
            assert!(
                !s.resources.iter().any(|r| r == "*") || s.sid.ends_with("OnlyStar"),
                "{s:?}"
            );
        }
    }

    #[test]
    fn force_new_deployment_registers_and_passes_nothing() {
        let mut service = ecs("worker");
        if let Live::Ecs { registers, .. } = &mut service.live {
            *registers = false;
        }
        let policy = policy(&facts(vec![service]));
        assert_eq!(
            statement(&policy, "EcsTaskDefinitionsAcceptOnlyStar").actions,
            ["ecs:DescribeTaskDefinition"]
        );
        assert_eq!(
            sids(&policy)[4..],
            [
                "WorkerEcsService",
                "WorkerEcsListTasksOnFailure",
                "WorkerEcsTasksOnFailure"
            ]
        );
    }

    #[test]
    fn untagged_task_definitions_need_no_tag_permission_and_one_role_is_passed_alone() {
        let mut service = ecs("worker");
        if let Live::Ecs {
            tagged, task_role, ..
        } = &mut service.live
        {
            *tagged = false;
            *task_role = None;
        }
        let policy = policy(&facts(vec![service]));
        assert!(!sids(&policy).contains(&"WorkerEcsTagOnRegister"));
        assert_eq!(
            statement(&policy, "WorkerPassTaskRoles").resources,
            ["arn:aws:iam::123456789012:role/acme-execution"]
        );
    }

    #[test]
    fn ecr_statements_only_for_an_ecr_registry() {
        let mut with_ecr = facts(vec![ecs("app-api")]);
        assert!(
            !sids(&policy(&with_ecr))
                .iter()
                .any(|s| s.starts_with("Ecr"))
        );
        with_ecr.ecr = Some(Ecr {
            partition: "aws".into(),
            account: "210987654321".into(),
            region: "eu-west-1".into(),
        });
        let policy = policy(&with_ecr);
        let login = statement(&policy, "EcrLoginAcceptsOnlyStar");
        assert_eq!(
            (login.actions.as_slice(), login.resources.as_slice()),
            (
                &["ecr:GetAuthorizationToken".to_owned()][..],
                &["*".to_owned()][..]
            )
        );
        let push = statement(&policy, "EcrCheckAndPush");
        assert_eq!(
            push.resources,
            ["arn:aws:ecr:eu-west-1:210987654321:repository/acme/app-api"]
        );
        for action in [
            "ecr:DescribeImages",
            "ecr:BatchGetImage",
            "ecr:GetDownloadUrlForLayer",
            "ecr:InitiateLayerUpload",
            "ecr:UploadLayerPart",
            "ecr:CompleteLayerUpload",
            "ecr:PutImage",
            "ecr:BatchCheckLayerAvailability",
        ] {
            assert!(push.actions.iter().any(|a| a == action), "{action}");
        }
        // a zip-only selection builds no image: no ECR at all
        let mut zip_only = facts(vec![lambda("render", false, None)]);
        zip_only.ecr = with_ecr.ecr.clone();
        assert!(
            !sids(&super::policy(&zip_only))
                .iter()
                .any(|s| s.starts_with("Ecr"))
        );
    }

    #[test]
    fn lambda_actions_follow_publish_and_alias() {
        let plain = policy(&facts(vec![lambda("render", false, None)]));
        let statement_of = |policy: &Policy| statement(policy, "RenderLambdaFunction").clone();
        let s = statement_of(&plain);
        assert_eq!(
            s.actions,
            [
                "lambda:GetFunction",
                "lambda:GetFunctionConfiguration",
                "lambda:UpdateFunctionCode"
            ]
        );
        assert_eq!(
            s.resources,
            ["arn:aws:lambda:us-east-1:123456789012:function:acme-render"]
        );
        assert!(
            !plain
                .statements
                .iter()
                .any(|s| s.actions.iter().any(|a| a == "iam:PassRole")),
            "UpdateFunctionCode passes no role"
        );

        let published_policy = policy(&facts(vec![lambda("render", true, None)]));
        let published = statement_of(&published_policy);
        assert!(
            published
                .actions
                .contains(&"lambda:PublishVersion".to_owned())
        );
        assert!(
            published
                .actions
                .contains(&"lambda:ListVersionsByFunction".to_owned())
        );
        let versions = statement(&published_policy, "RenderLambdaVersions");
        assert_eq!(versions.actions, ["lambda:GetFunctionConfiguration"]);
        assert_eq!(
            versions.resources,
            ["arn:aws:lambda:us-east-1:123456789012:function:acme-render:*"]
        );

        let mut aliased = lambda("render", true, Some("live"));
        aliased.smoke_invoke = true;
        let policy = policy(&facts(vec![aliased]));
        let s = statement_of(&policy);
        assert!(
            !s.actions
                .contains(&"lambda:ListVersionsByFunction".to_owned())
        );
        for action in [
            "lambda:GetAlias",
            "lambda:UpdateAlias",
            "lambda:CreateAlias",
        ] {
            assert!(s.actions.contains(&action.to_owned()), "{action}");
        }
        let invoke = statement(&policy, "RenderSmokeInvoke");
        assert_eq!(invoke.actions, ["lambda:InvokeFunction"]);
        assert_eq!(
            invoke.resources,
            ["arn:aws:lambda:us-east-1:123456789012:function:acme-render:live"]
        );
    }

    #[test]
    fn large_zips_add_the_bucket_prefix() {
        let mut service = lambda("render", false, None);
        if let Live::Lambda { s3, .. } = &mut service.live {
            *s3 = Some(("acme-artifacts".into(), "deployer/acme/render/".into()));
        }
        let policy = policy(&facts(vec![service]));
        let upload = statement(&policy, "RenderLambdaZipUpload");
        assert_eq!(upload.actions, ["s3:PutObject", "s3:GetObject"]);
        assert_eq!(
            upload.resources,
            ["arn:aws:s3:::acme-artifacts/deployer/acme/render/*"]
        );
    }

    #[test]
    fn a_failure_reads_only_the_services_log_groups_and_its_clusters_tasks() {
        let mut web = ecs("app-api");
        web.log_groups = vec![
            LogGroupFacts {
                region: None,
                group: "/ecs/app-api".into(),
            },
            LogGroupFacts {
                region: Some("eu-west-1".into()),
                group: "/ecs/sidecar".into(),
            },
        ];
        let mut function = lambda("render", false, None);
        function.log_groups = vec![LogGroupFacts {
            region: None,
            group: "/aws/lambda/acme-render".into(),
        }];
        let policy = policy(&facts(vec![
            web,
            function,
            config(
                "repos",
                ConfigStoreFacts::Parameters {
                    prefix: "/acme/repos".into(),
                },
            ),
        ]));
        assert_eq!(
            statement(&policy, "AppApiLogsOnFailure").resources,
            [
                "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/app-api",
                "arn:aws:logs:eu-west-1:123456789012:log-group:/ecs/sidecar"
            ]
        );
        assert_eq!(
            statement(&policy, "AppApiLogStreamsOnFailure").resources[0],
            "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/app-api:log-stream:*"
        );
        assert_eq!(
            statement(&policy, "AppApiEcsListTasksOnFailure").resources,
            ["arn:aws:ecs:us-east-1:123456789012:container-instance/acme/*"]
        );
        assert_eq!(
            statement(&policy, "AppApiEcsTasksOnFailure").resources,
            ["arn:aws:ecs:us-east-1:123456789012:task/acme/*"]
        );
        assert_eq!(
            statement(&policy, "RenderLogsOnFailure").actions,
            ["logs:FilterLogEvents"]
        );
        let sids = sids(&policy);
        assert!(!sids.contains(&"RenderLogStreamsOnFailure"), "{sids:?}");
        assert!(
            !sids.contains(&"ElbTargetHealthOnFailureAcceptsOnlyStar"),
            "no load balancer, no target health: {sids:?}"
        );
        let mut balanced = ecs("web");
        if let Live::Ecs { load_balanced, .. } = &mut balanced.live {
            *load_balanced = true;
        }
        assert_eq!(
            statement(
                &crate::iam::policy(&facts(vec![balanced])),
                "ElbTargetHealthOnFailureAcceptsOnlyStar"
            )
            .actions,
            ["elasticloadbalancing:DescribeTargetHealth"]
        );
        assert!(
            !sids
                .iter()
                .any(|sid| sid.starts_with("Repos") && sid.ends_with("OnFailure")),
            "a config service writes no logs: {sids:?}"
        );
    }

    #[test]
    fn agentcore_passes_the_runtime_role_to_agentcore_only() {
        let runtime_arn =
            "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/acme_inference-AbCdE12345";
        let policy = policy(&facts(vec![ServiceFacts {
            name: "inference-api".into(),
            repository: Some("acme/inference-api".into()),
            smoke_invoke: true,
            remote_build: false,
            log_groups: Vec::new(),
            iac_stacks: Vec::new(),
            reads_owner_tag: false,
            live: Live::Agentcore {
                runtime_arn: runtime_arn.into(),
                role_arn: "arn:aws:iam::123456789012:role/acme-agentcore".into(),
                endpoints: Vec::new(),
            },
        }]));
        let runtime = statement(&policy, "InferenceApiAgentCoreRuntime");
        assert_eq!(runtime.resources, [runtime_arn]);
        let pass = statement(&policy, "InferenceApiPassRuntimeRole");
        assert_eq!(
            pass.condition["StringEquals"]["iam:PassedToService"],
            ["bedrock-agentcore.amazonaws.com"]
        );
        assert_eq!(
            statement(&policy, "InferenceApiSmokeInvoke").resources[1],
            format!("{runtime_arn}/runtime-endpoint/DEFAULT")
        );
    }

    #[test]
    fn agentcore_endpoints_are_granted_on_their_own_arns_only() {
        let runtime_arn =
            "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/acme_inference-AbCdE12345";
        let service = |endpoints: Vec<String>| ServiceFacts {
            name: "inference-api".into(),
            repository: Some("acme/inference-api".into()),
            smoke_invoke: true,
            remote_build: false,
            log_groups: Vec::new(),
            iac_stacks: Vec::new(),
            reads_owner_tag: false,
            live: Live::Agentcore {
                runtime_arn: runtime_arn.into(),
                role_arn: "arn:aws:iam::123456789012:role/acme-agentcore".into(),
                endpoints,
            },
        };
        let policy = policy(&facts(vec![service(vec!["prod".into(), "beta".into()])]));
        let endpoints = statement(&policy, "InferenceApiAgentCoreEndpoints");
        assert_eq!(
            endpoints.actions,
            [
                "bedrock-agentcore:GetAgentRuntimeEndpoint",
                "bedrock-agentcore:UpdateAgentRuntimeEndpoint"
            ]
        );
        assert_eq!(
            endpoints.resources,
            [
                format!("{runtime_arn}/runtime-endpoint/prod"),
                format!("{runtime_arn}/runtime-endpoint/beta")
            ]
        );
        assert_eq!(
            statement(&policy, "InferenceApiSmokeInvoke").resources,
            [
                runtime_arn.to_owned(),
                format!("{runtime_arn}/runtime-endpoint/prod")
            ]
        );
        // No endpoints: no endpoint statement at all.
        let without = super::policy(&facts(vec![service(Vec::new())]));
        assert!(
            !without
                .statements
                .iter()
                .any(|s| s.sid == "InferenceApiAgentCoreEndpoints")
        );
    }

    #[test]
    fn sagemaker_creates_and_deletes_only_its_own_names() {
        let base = "arn:aws:sagemaker:us-east-1:123456789012";
        let policy = policy(&facts(vec![ServiceFacts {
            name: "embeddings".into(),
            repository: Some("acme/embeddings".into()),
            smoke_invoke: false,
            remote_build: false,
            log_groups: Vec::new(),
            iac_stacks: Vec::new(),
            reads_owner_tag: false,
            live: Live::Sagemaker {
                endpoint_arn: format!("{base}:endpoint/Acme-Embeddings"),
                name_prefix: "Acme-Embeddings".into(),
                live_config_arn: format!("{base}:endpoint-config/Acme-Embeddings-Cfg"),
                live_model_arns: vec![format!("{base}:model/acme-embeddings-model")],
                roles: vec!["arn:aws:iam::123456789012:role/acme-sagemaker".into()],
            },
        }]));
        let list = statement(&policy, "SageMakerListAcceptsOnlyStar");
        assert_eq!(list.resources, ["*"]);
        let configs = statement(&policy, "EmbeddingsSageMakerOwnConfigs");
        assert_eq!(
            configs.resources,
            [format!("{base}:endpoint-config/acme-embeddings-*")]
        );
        assert!(
            configs
                .actions
                .contains(&"sagemaker:UpdateEndpoint".to_owned())
        );
        let models = statement(&policy, "EmbeddingsSageMakerOwnModels");
        assert_eq!(
            models.resources,
            [format!("{base}:model/acme-embeddings-*")]
        );
        assert!(models.actions.contains(&"sagemaker:DeleteModel".to_owned()));
        for sid in [
            "EmbeddingsSageMakerLiveConfig",
            "EmbeddingsSageMakerLiveModels",
        ] {
            assert!(
                !statement(&policy, sid)
                    .actions
                    .iter()
                    .any(|a| a.contains("Delete") || a.contains("Create")),
                "IaC's own model and config are never deleted"
            );
        }
        assert_eq!(
            statement(&policy, "EmbeddingsSageMakerLiveConfig").resources,
            [format!("{base}:endpoint-config/acme-embeddings-cfg")],
            "names in lower case, as in SageMaker's ARNs"
        );
        assert_eq!(
            statement(&policy, "EmbeddingsSageMakerLiveModels").resources,
            [format!("{base}:model/acme-embeddings-model")]
        );
        assert_eq!(
            statement(&policy, "EmbeddingsSageMakerEndpoint").resources,
            [format!("{base}:endpoint/acme-embeddings")]
        );
        assert_eq!(
            statement(&policy, "EmbeddingsPassModelRole").condition["StringEquals"]["iam:PassedToService"],
            ["sagemaker.amazonaws.com"]
        );
    }

    #[test]
    fn lookups_are_scoped_to_what_they_name() {
        let mut facts = facts(vec![lambda("render", false, None)]);
        facts.lookups = vec![
            Lookup::Ssm {
                name: "/acme/render/function".into(),
            },
            Lookup::Env { var: "X".into() },
            Lookup::CfnOutput {
                stack: "AcmeCompute".into(),
                output: "Fn".into(),
            },
            Lookup::TfOutput {
                state: "s3://acme-tf/prod/terraform.tfstate".into(),
                output: "o".into(),
            },
            Lookup::TfOutput {
                state: "infra/terraform.tfstate".into(),
                output: "o".into(),
            },
        ];
        let policy = policy(&facts);
        assert_eq!(
            statement(&policy, "LookupSsmParameters").resources,
            ["arn:aws:ssm:us-east-1:123456789012:parameter/acme/render/function"]
        );
        assert_eq!(
            statement(&policy, "LookupCloudFormationStacks").resources,
            ["arn:aws:cloudformation:us-east-1:123456789012:stack/AcmeCompute/*"]
        );
        assert_eq!(
            statement(&policy, "LookupTerraformStates").resources,
            ["arn:aws:s3:::acme-tf/prod/terraform.tfstate"]
        );
    }

    #[test]
    fn sids_are_alphanumeric_and_unique() {
        assert_eq!(sid_part("rag-ingestion"), "RagIngestion");
        assert_eq!(sid_part("api_v2.internal"), "ApiV2Internal");
        let policy = policy(&facts(vec![
            lambda("a-b", false, None),
            lambda("a_b", false, None),
        ]));
        assert_eq!(
            sids(&policy)[3..],
            ["ABLambdaFunction", "ABLambdaFunction2"]
        );
        for statement in &policy.statements {
            assert!(
                statement.sid.chars().all(|c| c.is_ascii_alphanumeric()),
                "{}",
                statement.sid
            );
        }
        let json = serde_json::to_value(&policy).unwrap();
        assert_eq!(json["Version"], "2012-10-17");
        assert!(json["Statement"][0].get("Condition").is_none());
    }

    #[test]
    fn arns_parse_and_parameters_keep_one_slash() {
        let arn = Arn::parse("arn:aws-cn:ecs:cn-north-1:123456789012:service/c/s").unwrap();
        assert_eq!(
            (arn.partition, arn.account, arn.resource),
            ("aws-cn", "123456789012", "service/c/s")
        );
        assert_eq!(
            parameter_arn(&account(), "plain"),
            "arn:aws:ssm:us-east-1:123456789012:parameter/plain"
        );
    }
}
